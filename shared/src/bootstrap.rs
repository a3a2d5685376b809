//! Building the process-wide [`AppState`] once, from typed settings read at start.
//!
//! Owns reading `TA_*` variables (failing fast with the variable and value at fault), choosing
//! the LLM adapter, loading the agent registry and pre-warming MCP connections. Lambda functions
//! and `teal serve` both call this; it must not serve requests itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::api::AppState;
use crate::config::s3::{ConfigLocation, S3ConfigSource};
use crate::config::{self, AgentSource, ConfigErrors, Registry};
use crate::llm::{
    ClientError, KeyError, Llm, LlmClient, OfflineModel, OpenAiClient, Provider, Providers, RotatingKeyLlm,
};
use crate::mcp::McpPool;
use crate::secrets::{EnvSecretStore, SecretStore, SecretsBackend, SecretsManagerStore, aws_sdk_config};
use crate::settings::{ApiKeySource, Env, Settings, SettingsError};
use crate::store::Stores;
use crate::tools::hitl_catalog::{self, HitlCatalogError};
use crate::tools::openapi::{
    OpenApiClient, OpenApiError, OpenApiSettings, RemotePlugin, RemotePluginCatalog, RemotePlugins,
};

/// How long loading the remote plugins' OpenAPI documents may take at start.
const PLUGIN_LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// What the agents may call besides MCP servers: Teal's remote plugins, by name, and the tools a
/// plugin catalog holds for human approval.
#[derive(Default)]
pub struct ToolSources {
    pub plugins: HashMap<String, Arc<RemotePlugin>>,
    pub held: HashSet<String>,
}

/// Loads the remote plugins the `registry`'s agents list (from the `TA_REMOTE_PLUGIN_PATH`
/// catalog; their OpenAPI documents are fetched now) and reads `TA_PLUGIN_CATALOG_FILE`.
pub async fn load_tool_sources(settings: &Settings, registry: &Registry) -> Result<ToolSources, BootError> {
    let held = match &settings.teal.plugin_catalog_file {
        Some(path) => hitl_catalog::held_tools(path)?,
        None => HashSet::new(),
    };
    let mut names: Vec<&str> = registry
        .iter()
        .flat_map(|a| a.agents.iter())
        .flat_map(|s| s.remote_plugins.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(ToolSources { plugins: HashMap::new(), held });
    }
    let Some(path) = &settings.teal.remote_plugin_path else {
        return Err(SettingsError::missing(
            "TA_REMOTE_PLUGIN_PATH",
            "the remote plugin catalog, since agents list remote_plugins",
        )
        .into());
    };
    let catalog = RemotePluginCatalog::load(path)?;
    let client = OpenApiClient::new(OpenApiSettings::default())?;
    let loaded = RemotePlugins::load(&catalog, &names, &client, Instant::now() + PLUGIN_LOAD_TIMEOUT).await?;
    let plugins = loaded.iter().map(|p| (p.name().as_str().to_owned(), p.clone())).collect();
    Ok(ToolSources { plugins, held })
}

/// Why the process could not start. The cause chain (`source()`) says the rest; log it with
/// [`crate::telemetry::error_chain`].
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("agent configs are invalid:\n{0}")]
    Config(ConfigErrors),
    #[error("no LLM configured: set TA_API_KEY (and TA_BASE_URL for Azure OpenAI, Ollama or vLLM)")]
    NoLlm,
    #[error("TA_API_KEY_SECRET")]
    LlmKey(#[from] KeyError),
    #[error("TA_API_KEY / TA_BASE_URL")]
    LlmClient(#[from] ClientError),
    #[error("TA_REMOTE_PLUGIN_PATH")]
    RemotePlugins(#[from] OpenApiError),
    #[error("TA_PLUGIN_CATALOG_FILE")]
    PluginCatalog(#[from] HitlCatalogError),
}

/// Whether the offline model may stand in when no LLM is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflinePolicy {
    /// Local runs and demos: no key means the offline model, said loudly at start.
    Allow,
    /// Deployments: no key is a start-up error, never a silent fallback.
    Refuse,
}

/// The LLM of this process, from [`Settings::llm`]: the OpenAI-compatible adapter with the key
/// from `TA_API_KEY`, or from the secret `TA_API_KEY_SECRET` names (read now, and again once on
/// a 401), or none (local servers). Without any LLM settings: the offline model where `policy`
/// allows it, a start-up error otherwise.
///
/// Whatever the default, an agent with its own `provider:` goes there and a `bedrock:<model-id>`
/// model to Amazon Bedrock ([`Providers`]); when no agent needs the default (`needs_default`
/// false), a deployment starts without one.
pub async fn build_llm(
    settings: &Settings,
    secrets: Arc<dyn SecretStore>,
    policy: OfflinePolicy,
    needs_default: bool,
) -> Result<Arc<dyn LlmClient>, BootError> {
    let default = match (&settings.llm, policy) {
        (Some(_), _) => Some(build_default_llm(settings, secrets.clone()).await?),
        (None, OfflinePolicy::Allow) => Some(Arc::new(Llm::Offline(OfflineModel)) as Arc<dyn LlmClient>),
        (None, OfflinePolicy::Refuse) if !needs_default => None,
        (None, OfflinePolicy::Refuse) => return Err(BootError::NoLlm),
    };
    let providers = Providers::new(default, settings.bedrock.clone(), settings.aws_endpoint_url.clone());
    Ok(Arc::new(providers.with_secrets(secrets)))
}

/// Whether some agent of `registry` uses the deployment's LLM: no `provider:` of its own and
/// not a `bedrock:` model (an empty registry needs it too, for agents that come later).
pub fn needs_default_llm(registry: &Registry) -> bool {
    let mut specs = registry.iter().flat_map(|a| a.agents.iter()).peekable();
    specs.peek().is_none()
        || specs.any(|s| s.provider.is_none() && matches!(Provider::of(&s.model), Provider::Default(_)))
}

/// The OpenAI-compatible client [`Settings::llm`] describes.
async fn build_default_llm(
    settings: &Settings,
    secrets: Arc<dyn SecretStore>,
) -> Result<Arc<dyn LlmClient>, BootError> {
    let Some(llm) = &settings.llm else { return Err(BootError::NoLlm) };
    let mut endpoint = llm.endpoint.clone();
    match &llm.key {
        Some(ApiKeySource::Secret(name)) => {
            Ok(Arc::new(RotatingKeyLlm::new(endpoint, name.clone(), secrets).await?))
        }
        Some(ApiKeySource::Env(key)) => {
            endpoint.api_key = Some(key.clone());
            Ok(Arc::new(Llm::OpenAi(OpenAiClient::new(endpoint)?)))
        }
        None => Ok(Arc::new(Llm::OpenAi(OpenAiClient::new(endpoint)?))),
    }
}

/// Loads the registry from a file or folder; every error of every file is reported. `vars` are
/// what a server `url` may reference as `${NAME}`.
pub fn load_registry(
    path: &std::path::Path,
    vars: &std::collections::HashMap<String, String>,
) -> Result<(Registry, Vec<config::ConfigWarning>), BootError> {
    let parsed = config::load_path_with_vars(path, vars).map_err(BootError::Config)?;
    let policies = crate::governance::Policies::compile(&parsed.policy_files).map_err(BootError::Config)?;
    let registry = Registry::new(parsed.agents).map_err(BootError::Config)?.with_policies(policies);
    Ok((registry, parsed.warnings))
}

/// The secret store of this process: Secrets Manager (TTL-cached, `id#field`) when
/// `TA_SECRETS_BACKEND=secretsmanager` or an AWS region is set (every Lambda), environment
/// variables otherwise. The AWS SDK config is built at most once and returned for S3 to reuse.
pub async fn build_secrets(settings: &Settings) -> (Arc<dyn SecretStore>, Option<aws_config::SdkConfig>) {
    match settings.secrets.backend {
        SecretsBackend::Env => (Arc::new(EnvSecretStore::new()), None),
        SecretsBackend::SecretsManager => {
            let sdk = aws_sdk_config(settings.aws_endpoint_url.as_deref()).await;
            (Arc::new(SecretsManagerStore::from_sdk_config(&sdk, settings.secrets.manager)), Some(sdk))
        }
    }
}

/// Loads the agents `TA_SERVICE_CONFIG` names: a file or folder (loaded once), or
/// `s3://bucket/prefix/` (kept fresh: ETag-conditional refresh after `TA_CONFIG_TTL`). `env`'s
/// variables are what a server `url` may reference as `${NAME}`.
pub async fn load_agents(
    settings: &Settings,
    env: &Env,
    sdk: Option<aws_config::SdkConfig>,
) -> Result<(AgentSource, Vec<config::ConfigWarning>), BootError> {
    match &settings.agents.location {
        None => Err(SettingsError::missing(
            "TA_SERVICE_CONFIG",
            "a config file or folder, or s3://bucket/prefix/",
        )
        .into()),
        Some(ConfigLocation::Path(path)) => {
            let (registry, warnings) = load_registry(path, env.vars())?;
            Ok((registry.into(), warnings))
        }
        Some(ConfigLocation::S3 { bucket, prefix }) => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => aws_sdk_config(settings.aws_endpoint_url.as_deref()).await,
            };
            let client = config::s3::s3_client(&sdk);
            let ttl = settings.agents.refresh_ttl;
            let (source, warnings) =
                S3ConfigSource::load(client, bucket.clone(), prefix.clone(), env.vars().clone(), ttl)
                    .await
                    .map_err(BootError::Config)?;
            Ok((AgentSource::S3(Arc::new(source)), warnings))
        }
    }
}

/// Chooses the stores (Redis when `TA_REDIS_URL` is set, in-memory otherwise). Never waits for
/// Redis: a cache that is down at cold start is bypassed until it answers.
pub async fn build_stores(settings: &Settings, secrets: Arc<dyn SecretStore>) -> Result<Stores, BootError> {
    Ok(Stores::build(&settings.stores, secrets).await?)
}

/// Assembles the shared state from parts built once. The MCP pool shares tool catalogs through
/// `stores.catalog`, so a cold container reuses what another one listed.
pub fn build_state(
    settings: &Settings,
    agents: impl Into<AgentSource>,
    llm: Arc<dyn crate::llm::LlmClient>,
    secrets: Arc<dyn SecretStore>,
    stores: Stores,
    tools: ToolSources,
) -> AppState {
    AppState {
        agents: agents.into(),
        tasks: stores.tasks,
        plugins: Arc::new(tools.plugins),
        held_tools: Arc::new(tools.held),
        llm,
        mcp: McpPool::new(settings.mcp.clone(), secrets.clone())
            .with_shared_catalog(stores.catalog, settings.stores.catalog.clone())
            .with_oauth(Arc::new(crate::oauth::OAuth::new(
                settings.oauth.clone(),
                stores.tokens,
                secrets.clone(),
            ))),
        secrets,
        sessions: stores.sessions,
        cache: stores.cache,
        rate_limiter: stores.rate_limiter,
        switch: crate::governance::KillSwitch::new(stores.switches),
        redis: stores.redis,
        settings: settings.api.clone(),
        started: Instant::now(),
    }
}

/// Builds the state from `settings` as a deployment would (agents, stores, tools; the offline
/// model, since no check calls the LLM) and runs the readiness checks: every agent's MCP
/// servers list their tools, the session store and Redis answer. Without `TA_SERVICE_CONFIG`
/// only the stores are checked. What `teal restore` and the restore function run last.
pub async fn check_readiness(
    settings: &Settings,
    env: &Env,
    secrets: Arc<dyn SecretStore>,
    sdk: Option<aws_config::SdkConfig>,
) -> Result<crate::api::types::Readiness, BootError> {
    let agents = match &settings.agents.location {
        None => AgentSource::from(Registry::default()),
        Some(_) => load_agents(settings, env, sdk).await?.0,
    };
    let stores = build_stores(settings, secrets.clone()).await?;
    let tools = load_tool_sources(settings, &agents.current()).await?;
    let llm: Arc<dyn LlmClient> = Arc::new(Llm::Offline(OfflineModel));
    let state = build_state(settings, agents, llm, secrets, stores, tools);
    Ok(crate::service::ready::readiness(&state).await)
}

/// Connects to every agent's MCP servers and lists their tools in the background, so the first
/// request finds warm sessions and a cached catalog. Failures are logged, not fatal.
pub fn prewarm(state: &Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let agents: Vec<_> = state.registry().iter().flat_map(|a| a.agents.iter().cloned()).collect();
        let results = futures::future::join_all(agents.iter().map(|a| state.mcp.agent_tools(a))).await;
        for (agent, r) in agents.iter().zip(results) {
            match r {
                Ok(t) => tracing::info!(agent = %agent.name, tools = t.len(), "MCP tools ready"),
                Err(e) => {
                    tracing::warn!(agent = %agent.name, error = %crate::telemetry::error_chain(&e), "MCP pre-warm failed; will retry on first use")
                }
            }
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "pre-warm finished");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn llm(pairs: &[(&str, &str)], policy: OfflinePolicy) -> Result<Arc<dyn LlmClient>, BootError> {
        let settings = Settings::read(&Env::from_pairs(pairs.iter().copied())).expect("settings");
        let secrets: Arc<dyn SecretStore> = Arc::new(EnvSecretStore::new().with("LLM_KEY", "sk-from-secret"));
        build_llm(&settings, secrets, policy, true).await
    }

    #[tokio::test]
    async fn offline_model_only_where_allowed() {
        assert!(llm(&[], OfflinePolicy::Allow).await.expect("offline").describe().starts_with("offline"));
        let e = llm(&[], OfflinePolicy::Refuse).await.err().expect("refused");
        assert!(e.to_string().starts_with("no LLM configured: set TA_API_KEY"));
        let c = llm(&[("TA_API_KEY", "k")], OfflinePolicy::Refuse).await.expect("configured");
        assert_eq!(c.describe(), "openai-compatible at https://api.openai.com/v1");
    }

    #[tokio::test]
    async fn the_key_comes_from_the_secret_that_is_named() {
        let c = llm(&[("TA_API_KEY_SECRET", "LLM_KEY")], OfflinePolicy::Refuse).await.expect("from secret");
        assert!(c.describe().ends_with("(key from secret LLM_KEY)"), "{}", c.describe());
        let e = llm(&[("TA_API_KEY_SECRET", "UNSET_KEY")], OfflinePolicy::Refuse).await.err().expect("unset");
        assert_eq!(
            crate::telemetry::error_chain(&e),
            "TA_API_KEY_SECRET: the LLM key secret UNSET_KEY could not be read: secret UNSET_KEY is not set"
        );
    }
}
