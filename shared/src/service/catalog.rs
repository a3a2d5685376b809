//! The tools an agent is offered, as the LLM sees them (`GET /{name}/{version}/tools`).

use crate::Error;
use crate::api::types::{CatalogTool, ToolCatalog};
use crate::service::AppState;

/// Namespaced name, server, original name, description and schema of each tool of the agent.
pub async fn tool_catalog(state: &AppState, name: &str, version: &str) -> Result<ToolCatalog, Error> {
    let agent = state.find_agent(name, version)?;
    let tools = state.mcp.agent_tools(&agent).await.map_err(|e| Error::Mcp(e, Default::default()))?;
    let list = tools
        .specs
        .iter()
        .map(|spec| {
            let route = tools.route(&spec.name);
            CatalogTool {
                name: spec.name.clone(),
                server: route.map(|r| r.server_name().to_owned()),
                tool: route.map(|r| r.tool_name().to_owned()),
                description: spec.description.clone(),
                input_schema: spec.parameters.clone(),
            }
        })
        .collect();
    Ok(ToolCatalog { agent: format!("{}:{}", agent.name, agent.version), tools: list })
}
