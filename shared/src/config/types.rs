//! The typed, validated agent configuration. Once a value of these types exists, the rest of the
//! code trusts it: names are valid, URLs are absolute http(s), filters compiled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Which Teal Agents schema a file declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `tealagents/v1alpha1`: the stateful task API (`StateResponse`).
    TealAgentsV1Alpha1,
    /// `skagents/v1`
    SkAgentsV1,
    /// `skagents/v2alpha1` (`kind: Agent`, served by Teal's chat handler).
    SkAgentsV2Alpha1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::TealAgentsV1Alpha1 => "tealagents/v1alpha1",
            ApiVersion::SkAgentsV1 => "skagents/v1",
            ApiVersion::SkAgentsV2Alpha1 => "skagents/v2alpha1",
        }
    }
}

/// How the agent answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentKind {
    /// One agent over the conversation (`kind: Chat`, `kind: Agent`).
    Chat,
    /// Teal's `kind: Sequential`: [`AgentConfig::tasks`] in `task_no` order over one shared
    /// history, each run by its named agent; the last task's output is the answer.
    Sequential,
}

/// One agent, loaded from one YAML document.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub api_version: ApiVersion,
    pub kind: AgentKind,
    /// Top-level `name` (or `service_name` in `skagents/v1` files). Matches `[A-Za-z0-9._-]+`.
    pub name: String,
    /// Top-level `version`, kept as written (`0.1` stays "0.1", `1.10` stays "1.10").
    pub version: String,
    pub description: Option<String>,
    /// What a request body must be (`input_type`, or the API version's default).
    pub input: InputType,
    /// `output_type` with its schema: the answer is structured output validated against it.
    pub output: Option<SchemaType>,
    /// `spec.agent` (Chat: exactly one), or `spec.agents` (Sequential, in file order).
    pub agents: Vec<Arc<AgentSpec>>,
    /// Sequential only, sorted by `task_no`.
    pub tasks: Vec<TaskSpec>,
    /// `spec.agent.cache_ttl` seconds (Chat only): how long responses are cached; `0` disables
    /// the cache for this agent; absent means `TA_CACHE_TTL` (default 3600).
    pub cache_ttl: Option<Duration>,
    /// Where it was loaded from (file path or `s3://…` key), for messages.
    pub source: String,
}

impl AgentConfig {
    /// Every MCP server of every agent, each once by name and URL, for readiness and pre-warm.
    pub fn mcp_servers(&self) -> impl Iterator<Item = &McpServerConfig> {
        let mut seen = std::collections::HashSet::new();
        self.agents.iter().flat_map(|a| a.mcp_servers.iter()).filter(move |s| seen.insert((&s.name, &s.url)))
    }

    /// The agent that answers a Chat request, or runs a Sequential config's last task.
    pub fn answering_agent(&self) -> &AgentSpec {
        let index = self.tasks.last().map_or(0, |t| t.agent);
        &self.agents[index.min(self.agents.len() - 1)]
    }
}

/// The closed set of input shapes: Teal's built-in input types, the stateful API's
/// `UserMessage`, or a custom type given by its JSON Schema.
#[derive(Debug, Clone, PartialEq)]
pub enum InputType {
    /// `chat_history` of `{role, content}` text messages.
    BaseInput,
    /// `BaseInput` plus `user_context` (string to string), told to the model first.
    BaseInputWithUserContext,
    /// `chat_history` whose messages carry `items` of text or image content.
    BaseMultiModalInput,
    /// `BaseMultiModalInput` plus `user_context`.
    BaseMultiModalInputWithUserContext,
    /// `tealagents/v1alpha1`: `{task_id?, session_id?, items, user_context?}`.
    UserMessage,
    /// A Python class in Teal; here its JSON Schema (`input_schema`). The body is validated
    /// against it and its fields fill the task instructions' `{{ field }}`s.
    Custom(SchemaType),
}

impl InputType {
    /// Whether the type carries `user_context`.
    pub fn has_user_context(&self) -> bool {
        matches!(
            self,
            InputType::BaseInputWithUserContext
                | InputType::BaseMultiModalInputWithUserContext
                | InputType::UserMessage
        )
    }

    /// Teal's name for it.
    pub fn name(&self) -> &str {
        match self {
            InputType::BaseInput => "BaseInput",
            InputType::BaseInputWithUserContext => "BaseInputWithUserContext",
            InputType::BaseMultiModalInput => "BaseMultiModalInput",
            InputType::BaseMultiModalInputWithUserContext => "BaseMultiModalInputWithUserContext",
            InputType::UserMessage => "UserMessage",
            InputType::Custom(t) => &t.name,
        }
    }
}

/// A named type given by a JSON Schema, compiled when loaded.
#[derive(Clone)]
pub struct SchemaType {
    /// `input_type` / `output_type` as written (a Python class name in Teal).
    pub name: String,
    pub schema: Arc<serde_json::Value>,
    pub validator: Arc<jsonschema::Validator>,
}

impl SchemaType {
    /// Compiles `schema`; the error says why it is not a valid JSON Schema.
    pub fn new(name: impl Into<String>, schema: serde_json::Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(Self { name: name.into(), schema: Arc::new(schema), validator: Arc::new(validator) })
    }
}

impl std::fmt::Debug for SchemaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaType").field("name", &self.name).field("schema", &self.schema).finish()
    }
}

impl PartialEq for SchemaType {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.schema == other.schema
    }
}

/// One task of a Sequential config (`spec.tasks[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub name: String,
    pub task_no: i64,
    pub description: String,
    /// A Jinja template (checked when loaded) rendered with the input's fields and the earlier
    /// tasks' outputs as `_{task name}`.
    pub instructions: String,
    /// Index into [`AgentConfig::agents`].
    pub agent: usize,
}

/// `spec.agent`, or one of `spec.agents`.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// `reasoning_effort` (`low`, `medium`, `high`…), sent to models that take it.
    pub reasoning_effort: Option<String>,
    /// `remote_plugins`: names in the `TA_REMOTE_PLUGIN_PATH` catalog.
    pub remote_plugins: Vec<String>,
    /// `max_iterations`, default 10, 1..=100.
    pub max_iterations: u32,
    /// `max_tool_calls` (ours): a run makes at most this many tool calls.
    pub max_tool_calls: Option<u32>,
    /// `max_tokens_total` (ours): a run stops before an LLM call once it used this many tokens.
    pub max_tokens_total: Option<u64>,
    /// `max_cost_usd` (ours): a run stops before an LLM call once it cost this much, at the
    /// deployment's prices (`TA_MODEL_PRICES`).
    pub max_cost_usd: Option<crate::llm::Cost>,
    pub mcp_servers: Vec<McpServerConfig>,
    /// `provider` (our extension): this agent's own model endpoint and key source; `None`: the
    /// deployment's (`TA_BASE_URL`), or Bedrock for a `bedrock:` model.
    pub provider: Option<crate::llm::Endpoint>,
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
    /// `tool_names: prefixed` (default): tools are offered as `{server}_{tool}`; `as-served`:
    /// under the server's own names (a Teal plugin served over MCP keeps `{plugin}-{function}`).
    pub prefix_tools: bool,
    /// Teal's `auth_server` + `scopes` (and `oauth_*`): the server is reached with OAuth tokens.
    pub oauth: Option<McpOAuth>,
}

/// OAuth to one MCP server (Teal's `auth_server`, `scopes`, `oauth_client_id`,
/// `oauth_client_secret`, `canonical_uri`, and our `oauth_grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOAuth {
    /// The authorization server (its RFC 8414 metadata is read; discovered metadata must name
    /// it as `issuer`).
    pub auth_server: url::Url,
    pub scopes: Vec<String>,
    pub grant: OAuthGrant,
    /// `oauth_client_id`; `None`: `TA_OAUTH_CLIENT_NAME` (Teal's default).
    pub client_id: Option<String>,
    /// `oauth_client_secret`, usually `${secret:NAME}` (read through the SecretStore).
    pub client_secret: Option<HeaderTemplate>,
    /// `canonical_uri`: the resource indicator (RFC 8707) when it is not the server's URL.
    pub resource: Option<url::Url>,
}

/// Whose token a server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthGrant {
    /// Teal's flow: each caller authorizes (authorization code + PKCE) and gets its own token.
    AuthorizationCode,
    /// The platform's own token (`oauth_grant: client_credentials`), shared by every caller.
    ClientCredentials,
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
/// A tool is offered when it matches `allow` (or `allow` is absent) and does not match `deny`;
/// a `held` one waits for human approval on each call (or is withheld where no run can pause).
#[derive(Debug, Clone)]
pub struct ToolFilter {
    pub allow: Option<globset::GlobSet>,
    pub deny: globset::GlobSet,
    /// Tools that need human approval (`tool_governance_overrides.{tool}.requires_hitl`).
    pub held: Vec<String>,
}

impl Default for ToolFilter {
    fn default() -> Self {
        Self { allow: None, deny: globset::GlobSet::empty(), held: Vec::new() }
    }
}

impl ToolFilter {
    pub fn permits(&self, tool: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(tool)) && !self.deny.is_match(tool)
    }
}
