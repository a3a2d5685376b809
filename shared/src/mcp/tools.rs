//! The tool set of one agent: the specs its LLM is offered and where each namespaced name leads.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;

use super::pool::ServerConn;
use super::{McpError, McpPool};
use crate::config::AgentConfig;
use crate::llm::ToolSpec;

/// Where a namespaced tool name leads.
#[derive(Clone)]
pub struct ToolRoute {
    pub(super) server: Arc<ServerConn>,
    pub(super) tool: String,
}

impl ToolRoute {
    pub fn server_name(&self) -> &str {
        &self.server.cfg.name
    }
    pub fn tool_name(&self) -> &str {
        &self.tool
    }
}

/// The tools one agent may use in one request: specs for the LLM and routes for the calls.
#[derive(Clone, Default)]
pub struct AgentTools {
    pub specs: Vec<ToolSpec>,
    routes: HashMap<String, ToolRoute>,
}

impl AgentTools {
    pub fn route(&self, namespaced: &str) -> Option<&ToolRoute> {
        self.routes.get(namespaced)
    }
    pub fn len(&self) -> usize {
        self.specs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

impl McpPool {
    /// The tools of every server of `agent`, listed concurrently (cached per server for the
    /// catalog TTL). Any server that cannot be listed fails the whole call: an agent must not
    /// silently run without the tools its config promises.
    pub async fn agent_tools(&self, agent: &AgentConfig) -> Result<AgentTools, McpError> {
        let servers = &agent.agent.mcp_servers;
        if servers.is_empty() {
            return Ok(AgentTools::default());
        }
        let lists = join_all(servers.iter().map(|cfg| async move {
            let conn = self.conn(cfg);
            let tools = self.catalog(&conn).await?;
            Ok::<_, McpError>((conn, tools))
        }))
        .await;
        let mut out = AgentTools::default();
        for listed in lists {
            let (conn, tools) = listed?;
            for (spec, tool) in tools.iter() {
                if out.routes.contains_key(&spec.name) {
                    tracing::warn!(tool = %spec.name, "two MCP tools share one namespaced name; keeping the first");
                    continue;
                }
                out.routes.insert(spec.name.clone(), ToolRoute { server: conn.clone(), tool: tool.clone() });
                out.specs.push(spec.clone());
            }
        }
        Ok(out)
    }
}
