//! The tools an agent is offered, as the LLM sees them (`GET /{name}/{version}/tools`): for a
//! Sequential config, every agent's, each tool once per agent that has it.

use crate::Error;
use crate::api::types::{CatalogTool, ToolCatalog};
use crate::service::AppState;
use crate::tools::Route;

/// Namespaced name, agent, server or plugin, original name, description and schema of each tool.
pub async fn tool_catalog(state: &AppState, name: &str, version: &str) -> Result<ToolCatalog, Error> {
    let agent = state.find_agent(name, version)?;
    let mut list = Vec::new();
    for spec in &agent.agents {
        let tools = state.toolbox(spec).await?;
        for t in tools.specs() {
            let route = tools.route(&t.name);
            list.push(CatalogTool {
                name: t.name.clone(),
                agent: spec.name.clone(),
                server: route.as_ref().map(|r| r.source_name().to_owned()),
                tool: route.as_ref().map(|r| match r {
                    Route::Mcp(m) => m.tool_name().to_owned(),
                    Route::Plugin(_) => t.name.split_once('-').map_or(t.name.as_str(), |(_, f)| f).to_owned(),
                }),
                description: t.description.clone(),
                input_schema: t.parameters.clone(),
            });
        }
    }
    Ok(ToolCatalog { agent: format!("{}:{}", agent.name, agent.version), tools: list })
}
