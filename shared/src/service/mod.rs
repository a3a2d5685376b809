//! The use cases the routes call: run an agent ([`invoke`]), check readiness ([`ready`]), list
//! an agent's tools ([`catalog`]). They take plain values and give typed results or a
//! [`crate::Error`]; they know nothing of HTTP requests, headers or responses, so the buffered
//! route, the SSE route and any future adapter share one flow.
//!
//! [`AppState`] is everything they share, built once per process (per Lambda container) by
//! [`crate::bootstrap`].

pub mod catalog;
pub mod invoke;
pub mod openapi;
pub mod probe;
pub mod ready;
pub mod resume;
pub mod task;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::config::{AgentConfig, AgentKind, AgentSource, AgentSpec, ApiVersion, Registry};
use crate::governance::{Gate, KillSwitch};
use crate::llm::LlmClient;
use crate::mcp::McpPool;
use crate::store::{RateLimiter, RedisConnection, ResponseCache, SessionStore, TaskStore};
use crate::tools::Toolbox;
use crate::tools::openapi::RemotePlugin;

/// Per-process API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest accepted request body (default 1 MiB).
    pub body_limit: usize,
    /// Deadline of one run when the caller gives none (Lambda gives its own).
    pub request_timeout: Duration,
    /// How long a cached response is served when the agent sets no `cache_ttl` (default 3600 s).
    pub cache_ttl: Duration,
    /// `TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL`: the model that repairs structured output.
    pub structured_output_model: Option<Arc<str>>,
    /// `TA_HITL_TIMEOUT`: how long a run paused for human approval may be decided (default 1 h).
    pub hitl_timeout: Duration,
    /// `TA_HITL_APPROVERS`: API key ids that may approve or reject any caller's paused run.
    pub approvers: Arc<[String]>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(120),
            cache_ttl: Duration::from_secs(3600),
            structured_output_model: None,
            hitl_timeout: Duration::from_secs(3600),
            approvers: Arc::from([]),
        }
    }
}

/// Everything the use cases share, built once per process (per Lambda container).
pub struct AppState {
    /// The agents: loaded once from files, or kept fresh from S3.
    pub agents: AgentSource,
    pub llm: Arc<dyn LlmClient>,
    pub mcp: McpPool,
    pub sessions: Arc<dyn SessionStore>,
    /// Secrets (Secrets Manager in Lambda, the environment locally), TTL-cached.
    pub secrets: Arc<dyn crate::secrets::SecretStore>,
    /// `tealagents/v1alpha1` tasks (Redis or in-memory).
    pub tasks: Arc<dyn TaskStore>,
    /// Teal's remote plugins, loaded once from `TA_REMOTE_PLUGIN_PATH`, by name.
    pub plugins: Arc<HashMap<String, Arc<RemotePlugin>>>,
    /// Tools a plugin catalog (`TA_PLUGIN_CATALOG_FILE`) says need human approval.
    pub held_tools: Arc<HashSet<String>>,
    /// Complete, successful responses by agent and input (Redis or in-memory).
    pub cache: Arc<dyn ResponseCache>,
    /// Per-caller token buckets; `None` is unlimited.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    /// Which agents are switched off (`teal disable`), read at most once a second.
    pub switch: KillSwitch,
    /// The shared Redis connection, when Redis backs the stores (for `/ready`).
    pub redis: Option<RedisConnection>,
    pub settings: ApiSettings,
    pub started: Instant,
}

impl AppState {
    /// The agent registry as it is now.
    pub fn registry(&self) -> Arc<Registry> {
        self.agents.current()
    }

    /// What one agent (`spec`) of `config` may call this request: its MCP tools (listed through
    /// the warm pool) and its remote plugins, without held tools, governed by the registry's
    /// tool policies for `caller`.
    pub async fn toolbox(
        &self,
        config: &AgentConfig,
        spec: &Arc<AgentSpec>,
        caller: &str,
    ) -> Result<Toolbox, Error> {
        let mcp = self.mcp.agent_tools(spec).await.map_err(Error::from)?;
        let mut plugins = Vec::with_capacity(spec.remote_plugins.len());
        for name in &spec.remote_plugins {
            match self.plugins.get(name) {
                Some(p) => plugins.push(p.clone()),
                None => {
                    tracing::error!(agent = %spec.name, plugin = %name, "remote plugin not loaded (TA_REMOTE_PLUGIN_PATH)");
                    return Err(Error::Misconfigured(format!("remote plugin {name} is not loaded")));
                }
            }
        }
        let gate = Gate::new(self.registry().policies(), caller, &config.name, &config.version);
        // A task's run can pause for approval; other agents' answers cannot wait.
        let pause = config.api_version == ApiVersion::TealAgentsV1Alpha1 && config.kind == AgentKind::Chat;
        Ok(Toolbox::new(mcp, plugins, &self.held_tools, Some(self.secrets.clone()), pause).governed(gate))
    }

    /// The agent `name`/`version` (after a refresh of stale S3 configs), or 404 listing the
    /// known ones.
    pub fn find_agent(&self, name: &str, version: &str) -> Result<Arc<AgentConfig>, Error> {
        self.agents.refresh_if_stale();
        let registry = self.registry();
        registry.get(name, version).ok_or_else(|| Error::AgentNotFound {
            name: name.to_owned(),
            version: version.to_owned(),
            known: registry.known(),
        })
    }
}
