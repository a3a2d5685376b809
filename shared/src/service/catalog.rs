//! The tools an agent is offered, as the LLM sees them (`GET /{name}/{version}/tools`): for a
//! Sequential config, every agent's, each tool once per agent that has it.

use crate::Error;
use crate::api::types::{CatalogTool, ToolCatalog};
use crate::service::AppState;

/// Namespaced name, agent, server or plugin, original name, description and schema of each tool.
/// Tools the tool policies do not let `caller` list are left out.
pub async fn tool_catalog(
    state: &AppState,
    name: &str,
    version: &str,
    caller: &str,
) -> Result<ToolCatalog, Error> {
    let agent = state.find_agent(name, version)?;
    let mut list = Vec::new();
    for spec in &agent.agents {
        let tools = state.toolbox(&agent, spec, caller).await?;
        for t in tools.specs() {
            let route = tools.route(&t.name);
            list.push(CatalogTool {
                name: t.name.clone(),
                agent: spec.name.clone(),
                server: route.as_ref().map(|r| r.source_name().to_owned()),
                tool: route.as_ref().map(|r| r.tool_name(&t.name).to_owned()),
                description: t.description.clone(),
                input_schema: t.parameters.clone(),
            });
        }
    }
    Ok(ToolCatalog { agent: format!("{}:{}", agent.name, agent.version), tools: list })
}
