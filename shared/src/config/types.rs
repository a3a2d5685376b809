//! The typed, validated agent configuration. Once a value of these types exists, the rest of the
//! code trusts it: names are valid, URLs are absolute http(s), filters compiled.

use std::collections::BTreeMap;
use std::time::Duration;

/// Which Teal Agents schema a file declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `tealagents/v1alpha1`
    TealAgentsV1Alpha1,
    /// `skagents/v1`
    SkAgentsV1,
}

/// One agent, loaded from one YAML document.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub api_version: ApiVersion,
    /// Top-level `name` (or `service_name` in `skagents/v1` files). Matches `[A-Za-z0-9._-]+`.
    pub name: String,
    /// Top-level `version`, kept as written (`0.1` stays "0.1", `1.10` stays "1.10").
    pub version: String,
    pub description: Option<String>,
    pub agent: AgentSpec,
    /// Where it was loaded from (file path or `s3://…` key), for messages.
    pub source: String,
}

/// `spec.agent`
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// `spec.agent.max_iterations`, default 10, 1..=100.
    pub max_iterations: u32,
    /// `spec.agent.cache_ttl` seconds: how long responses are cached; `0` disables the cache for
    /// this agent; absent means `TA_CACHE_TTL` (default 3600).
    pub cache_ttl: Option<Duration>,
    pub mcp_servers: Vec<McpServerConfig>,
}

/// The closed set of MCP transports we can reach from a Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpTransport {
    /// MCP streamable HTTP (`transport: http` or `streamable_http` or `streamable-http`, or inferred from `url`).
    StreamableHttp,
}

/// `spec.agent.mcp_servers[i]`
#[derive(Debug, Clone)]
pub struct McpServerConfig {
    /// Matches `[A-Za-z0-9-]+` (no `_`, since tools are namespaced `{server}_{tool}`); unique per agent.
    pub name: String,
    /// Absolute `http` or `https` URL.
    pub url: url::Url,
    pub transport: McpTransport,
    /// Header name -> value template; names are valid HTTP header names.
    pub headers: BTreeMap<String, HeaderTemplate>,
    /// Per-call timeout; `timeout` in seconds (number) in YAML, default 30 s.
    pub timeout: Duration,
    pub tools: ToolFilter,
}

/// A header value that may reference secrets: `Bearer ${secret:GITHUB_TOKEN}`. `${NAME}` is
/// accepted as a shorthand for `${secret:NAME}` (Teal Agents configs write `${API_TOKEN}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Secret(String),
}

impl HeaderTemplate {
    /// Names of the secrets this value needs, in order of appearance.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Secret(n) => Some(n.as_str()),
            TemplatePart::Literal(_) => None,
        })
    }

    /// Fills in the secrets with `lookup`; the first lookup error is returned.
    pub fn render<E>(&self, mut lookup: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Secret(n) => out.push_str(&lookup(n)?),
            }
        }
        Ok(out)
    }
}

/// `tools.allow` / `tools.deny`: globs over the server's own tool names (before namespacing).
/// A tool is offered when it matches `allow` (or `allow` is absent) and does not match `deny`.
#[derive(Debug, Clone)]
pub struct ToolFilter {
    pub allow: Option<globset::GlobSet>,
    pub deny: globset::GlobSet,
}

impl Default for ToolFilter {
    fn default() -> Self {
        Self { allow: None, deny: globset::GlobSet::empty() }
    }
}

impl ToolFilter {
    pub fn permits(&self, tool: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(tool)) && !self.deny.is_match(tool)
    }
}
