//! The tool set of one agent: the specs its LLM is offered and where each namespaced name leads.
//!
//! Built from the catalogs of the agent's servers and kept per agent until one of those
//! catalogs is listed again, so a warm request copies two reference counts, not the tools'
//! schemas. An agent is the `Arc` of its config: configs are immutable, and a reloaded config is
//! a new `Arc`, hence a new agent here.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex as StdMutex, Weak};

use futures::future::join_all;

use super::catalog::Catalog;
use super::pool::{ServerConn, lock};
use super::{McpError, McpPool};
use crate::config::AgentSpec;
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
    /// Whether the server's `tool_governance_overrides` mark the tool `requires_hitl`.
    pub fn requires_approval(&self) -> bool {
        self.server.cfg.tools.held.iter().any(|h| h == &self.tool)
    }
}

/// The tools one agent may use: specs for the LLM and routes for the calls. Cheap to clone
/// (shared, never copied).
#[derive(Clone, Default)]
pub struct AgentTools {
    /// What the LLM is offered, in the order of the agent's servers and of their lists.
    pub specs: Arc<[ToolSpec]>,
    routes: Arc<HashMap<String, ToolRoute>>,
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

    /// The tools of `catalogs` (one per server, in the agent's order) that the agent's
    /// allow/deny of that server permits. Of two tools with one namespaced name, the first is
    /// kept.
    fn build(agent: &AgentSpec, servers: &[Arc<ServerConn>], catalogs: &[Arc<Catalog>]) -> Self {
        let mut specs = Vec::new();
        let mut routes = HashMap::new();
        for ((cfg, conn), catalog) in agent.mcp_servers.iter().zip(servers).zip(catalogs) {
            for tool in catalog.tools.iter().filter(|t| cfg.tools.permits(&t.name)) {
                match routes.entry(tool.spec.name.clone()) {
                    Entry::Occupied(_) => {
                        tracing::warn!(tool = %tool.spec.name, "two MCP tools share one namespaced name; keeping the first");
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(ToolRoute { server: conn.clone(), tool: tool.name.clone() });
                        specs.push(tool.spec.clone());
                    }
                }
            }
        }
        Self { specs: specs.into(), routes: Arc::new(routes) }
    }
}

/// Each agent's servers and last tool set, by the address of the agent's config (and, for an
/// agent with per-user OAuth servers, the caller: its connections are the caller's).
#[derive(Default)]
pub(super) struct AgentCache(StdMutex<HashMap<AgentKey, Arc<AgentEntry>>>);

/// The address of an agent's config, and the caller for an agent with per-user servers.
type AgentKey = (usize, Option<Arc<str>>);

/// Agents' entries kept for callers of per-user servers before idle ones are dropped.
const MAX_CALLER_ENTRIES: usize = 4096;

#[cfg(test)]
impl AgentCache {
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

pub(super) struct AgentEntry {
    /// Holds the config's allocation (not the config): while this entry exists no other config
    /// can be at its address, so the address identifies the agent.
    agent: Weak<AgentSpec>,
    /// The pool's server for each of the agent's, in order: fixed for the life of the config.
    servers: Vec<Arc<ServerConn>>,
    built: StdMutex<Option<Built>>,
}

/// A tool set and the catalogs it was built from.
struct Built {
    catalogs: Vec<Arc<Catalog>>,
    tools: AgentTools,
}

impl McpPool {
    /// The tools of every server of `agent`, listed concurrently (cached per server for the
    /// catalog TTL). Any server that cannot be listed fails the whole call: an agent must not
    /// silently run without the tools its config promises.
    pub async fn agent_tools(&self, agent: &Arc<AgentSpec>) -> Result<AgentTools, McpError> {
        if agent.mcp_servers.is_empty() {
            return Ok(AgentTools::default());
        }
        if let Some(needed) = self.challenges(agent).await? {
            return Err(McpError::AuthorizationRequired(Box::new(needed)));
        }
        let entry = self.agent_entry(agent);
        let listed = join_all(entry.servers.iter().map(|conn| self.catalog(conn))).await;
        let catalogs = listed.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut built = lock(&entry.built);
        if let Some(b) = built.as_ref()
            && b.catalogs.iter().zip(&catalogs).all(|(was, is)| Arc::ptr_eq(was, is))
        {
            return Ok(b.tools.clone());
        }
        let tools = AgentTools::build(agent, &entry.servers, &catalogs);
        tracing::debug!(agent = %agent.name, tools = tools.len(), "MCP tool set built");
        *built = Some(Built { catalogs, tools: tools.clone() });
        Ok(tools)
    }

    fn agent_entry(&self, agent: &Arc<AgentSpec>) -> Arc<AgentEntry> {
        let caller = agent.mcp_servers.iter().find_map(super::authorize::caller_for);
        let id = (Arc::as_ptr(agent).addr(), caller);
        let mut agents = lock(&self.inner.agents.0);
        if let Some(entry) = agents.get(&id) {
            return entry.clone();
        }
        // A new agent: forget the ones whose config is gone (replaced by a reload), and idle
        // callers' when there are too many.
        agents.retain(|_, e| e.agent.strong_count() > 0);
        if id.1.is_some() && agents.len() >= MAX_CALLER_ENTRIES {
            agents.retain(|(_, caller), e| caller.is_none() || Arc::strong_count(e) > 1);
        }
        let entry = Arc::new(AgentEntry {
            agent: Arc::downgrade(agent),
            servers: agent.mcp_servers.iter().map(|cfg| self.conn(cfg)).collect(),
            built: StdMutex::new(None),
        });
        agents.insert(id, entry.clone());
        entry
    }
}
