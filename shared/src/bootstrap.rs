//! Building the process-wide [`AppState`] once, from typed settings read at start.
//!
//! Owns reading `TA_*` variables (failing fast with the variable and value at fault), choosing
//! the LLM adapter, loading the agent registry and pre-warming MCP connections. Lambda functions
//! and `teal serve` both call this; it must not serve requests itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::api::{ApiSettings, AppState};
use crate::config::s3::{ConfigLocation, S3ConfigSource};
use crate::config::{self, AgentSource, ConfigErrors, Registry};
use crate::llm::{Llm, OfflineModel, OpenAiClient, OpenAiSettings};
use crate::mcp::{McpPool, McpSettings};
use crate::secrets::SecretStore;
use crate::secrets::{
    EnvSecretStore, SecretsBackend, SecretsManagerSettings, SecretsManagerStore, aws_sdk_config,
};
use crate::store::{StoreSettings, Stores, env};

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("invalid env var {name}={value} ({expected})")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("agent configs are invalid:\n{0}")]
    Config(ConfigErrors),
    #[error("{0}")]
    Llm(String),
    #[error("{0}")]
    Store(String),
}

/// Settings read from the environment once per process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TA_SERVICE_CONFIG`: a YAML file or a folder of them.
    pub config_path: Option<PathBuf>,
    pub api: ApiSettings,
    pub mcp: McpSettings,
    /// Redis, response cache, catalog, rate limit and session settings (`TA_REDIS_*`, …).
    pub stores: StoreSettings,
}

impl Settings {
    /// Reads `TA_SERVICE_CONFIG`, `TA_REQUEST_TIMEOUT`, `TA_BODY_LIMIT`, `TA_CATALOG_TTL`,
    /// `TA_SESSION_TTL` through `get` (the process env in production, a map in tests).
    pub fn from_env_map(get: impl Fn(&str) -> Option<String>) -> Result<Self, BootError> {
        let g: env::Get<'_> = &get;
        let store_err = |e: crate::store::SettingsError| BootError::Store(e.to_string());
        let body_limit =
            env::bytes(g, "TA_BODY_LIMIT", ApiSettings::default().body_limit).map_err(store_err)?;
        let request_timeout = env::secs(g, "TA_REQUEST_TIMEOUT", 120).map_err(store_err)?;
        let stores = StoreSettings::from_env_map(&get).map_err(store_err)?;
        Ok(Self {
            config_path: get("TA_SERVICE_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from),
            api: ApiSettings { body_limit, request_timeout, cache_ttl: stores.cache.default_ttl },
            mcp: McpSettings { catalog_ttl: stores.catalog.fresh_for },
            stores,
        })
    }

    pub fn from_env() -> Result<Self, BootError> {
        Self::from_env_map(|k| std::env::var(k).ok())
    }
}

/// Whether the offline model may stand in when no LLM is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflinePolicy {
    /// Local runs and demos: no key means the offline model, said loudly at start.
    Allow,
    /// Deployments: no key is a start-up error, never a silent fallback.
    Refuse,
}

/// Chooses the LLM adapter from `TA_BASE_URL` / `TA_API_KEY` (see [`OpenAiSettings`]).
pub fn build_llm(get: impl Fn(&str) -> Option<String>, policy: OfflinePolicy) -> Result<Llm, BootError> {
    match OpenAiSettings::from_env_map(get).map_err(|e| BootError::Llm(e.to_string()))? {
        Some(settings) => {
            Ok(Llm::OpenAi(OpenAiClient::new(settings).map_err(|e| BootError::Llm(e.to_string()))?))
        }
        None if policy == OfflinePolicy::Allow => Ok(Llm::Offline(OfflineModel)),
        None => Err(BootError::Llm(
            "no LLM configured: set TA_API_KEY (and TA_BASE_URL for Azure OpenAI, Ollama or vLLM)".into(),
        )),
    }
}

/// The LLM of a deployment: like [`build_llm`], but when `TA_API_KEY_SECRET` names a secret
/// (and `TA_API_KEY` is not set) the key is read from `secrets` and re-read once on a 401.
pub async fn build_llm_with_secrets(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    secrets: Arc<dyn SecretStore>,
    policy: OfflinePolicy,
) -> Result<Arc<dyn crate::llm::LlmClient>, BootError> {
    let secret = get("TA_API_KEY_SECRET").filter(|v| !v.trim().is_empty());
    let key_set = get("TA_API_KEY").is_some_and(|v| !v.trim().is_empty());
    match secret {
        Some(secret) if !key_set => {
            // A placeholder key makes the settings "configured"; the real one comes from the secret.
            let with_key = |k: &str| if k == "TA_API_KEY" { Some("from-secret".to_owned()) } else { get(k) };
            let settings = OpenAiSettings::from_env_map(with_key)
                .map_err(|e| BootError::Llm(e.to_string()))?
                .ok_or_else(|| BootError::Llm("TA_API_KEY_SECRET is set but no LLM is configured".into()))?;
            let llm = crate::llm::RotatingKeyLlm::new(settings, secret, secrets)
                .await
                .map_err(|e| BootError::Llm(format!("TA_API_KEY_SECRET: {e}")))?;
            Ok(Arc::new(llm))
        }
        _ => Ok(Arc::new(build_llm(get, policy)?)),
    }
}

/// Loads the registry from a file or folder; every error of every file is reported. `vars` are
/// what a server `url` may reference as `${NAME}`.
pub fn load_registry(
    path: &std::path::Path,
    vars: &std::collections::HashMap<String, String>,
) -> Result<(Registry, Vec<config::ConfigWarning>), BootError> {
    let parsed = config::load_path_with_vars(path, vars).map_err(BootError::Config)?;
    let registry = Registry::new(parsed.agents).map_err(BootError::Config)?;
    Ok((registry, parsed.warnings))
}

/// The secret store of this process: Secrets Manager (TTL-cached, `id#field`) when
/// `TA_SECRETS_BACKEND=secretsmanager` or an AWS region is set (every Lambda), environment
/// variables otherwise. The AWS SDK config is built at most once and returned for S3 to reuse.
pub async fn build_secrets(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(Arc<dyn SecretStore>, Option<aws_config::SdkConfig>), BootError> {
    let store_err = |e: crate::store::SettingsError| BootError::Store(e.to_string());
    match SecretsBackend::from_env_map(get).map_err(store_err)? {
        SecretsBackend::Env => Ok((Arc::new(EnvSecretStore::new()), None)),
        SecretsBackend::SecretsManager => {
            let sdk = aws_sdk_config(get("TA_AWS_ENDPOINT_URL").as_deref()).await;
            let settings = SecretsManagerSettings::from_env_map(get).map_err(store_err)?;
            Ok((Arc::new(SecretsManagerStore::from_sdk_config(&sdk, settings)), Some(sdk)))
        }
    }
}

/// Loads the agents `TA_SERVICE_CONFIG` names: a file or folder (loaded once), or
/// `s3://bucket/prefix/` (kept fresh: ETag-conditional refresh after `TA_CONFIG_TTL`). `vars`
/// are what a server `url` may reference as `${NAME}`.
pub async fn load_agents(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
    vars: &std::collections::HashMap<String, String>,
    sdk: Option<aws_config::SdkConfig>,
) -> Result<(AgentSource, Vec<config::ConfigWarning>), BootError> {
    let store_err = |e: crate::store::SettingsError| BootError::Store(e.to_string());
    match ConfigLocation::from_env_map(get).map_err(store_err)? {
        None => Err(BootError::Env {
            name: "TA_SERVICE_CONFIG",
            value: String::new(),
            expected: "a config file or folder, or s3://bucket/prefix/",
        }),
        Some(ConfigLocation::Path(path)) => {
            let (registry, warnings) = load_registry(&path, vars)?;
            Ok((registry.into(), warnings))
        }
        Some(ConfigLocation::S3 { bucket, prefix }) => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => aws_sdk_config(get("TA_AWS_ENDPOINT_URL").as_deref()).await,
            };
            let ttl = config::s3::refresh_ttl_from_env_map(get).map_err(store_err)?;
            let (source, warnings) =
                S3ConfigSource::load(config::s3::s3_client(&sdk), bucket, prefix, vars.clone(), ttl)
                    .await
                    .map_err(BootError::Config)?;
            Ok((AgentSource::S3(Arc::new(source)), warnings))
        }
    }
}

/// Chooses the stores (Redis when `TA_REDIS_URL` is set, in-memory otherwise). Never waits for
/// Redis: a cache that is down at cold start is bypassed until it answers.
pub async fn build_stores(settings: &Settings, secrets: Arc<dyn SecretStore>) -> Result<Stores, BootError> {
    Stores::build(&settings.stores, secrets).await.map_err(|e| BootError::Store(e.to_string()))
}

/// Assembles the shared state from parts built once. The MCP pool shares tool catalogs through
/// `stores.catalog`, so a cold container reuses what another one listed.
pub fn build_state(
    settings: &Settings,
    agents: impl Into<AgentSource>,
    llm: Arc<dyn crate::llm::LlmClient>,
    secrets: Arc<dyn SecretStore>,
    stores: Stores,
) -> AppState {
    AppState {
        agents: agents.into(),
        llm,
        mcp: McpPool::new(settings.mcp.clone(), secrets)
            .with_shared_catalog(stores.catalog, settings.stores.catalog.clone()),
        sessions: stores.sessions,
        cache: stores.cache,
        rate_limiter: stores.rate_limiter,
        redis: stores.redis,
        settings: settings.api.clone(),
        started: Instant::now(),
    }
}

/// Connects to every agent's MCP servers and lists their tools in the background, so the first
/// request finds warm sessions and a cached catalog. Failures are logged, not fatal.
pub fn prewarm(state: &Arc<AppState>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let agents: Vec<_> = state.registry().iter().cloned().collect();
        let results = futures::future::join_all(agents.iter().map(|a| state.mcp.agent_tools(a))).await;
        for (agent, r) in agents.iter().zip(results) {
            match r {
                Ok(t) => tracing::info!(agent = %agent.name, tools = t.len(), "MCP tools ready"),
                Err(e) => {
                    tracing::warn!(agent = %agent.name, error = %e, "MCP pre-warm failed; will retry on first use")
                }
            }
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "pre-warm finished");
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_have_defaults_and_name_bad_variables() {
        let s = Settings::from_env_map(env(&[])).expect("defaults");
        assert_eq!(s.api.body_limit, 1024 * 1024);
        assert_eq!(s.api.request_timeout, Duration::from_secs(120));
        assert!(s.config_path.is_none());
        let e = Settings::from_env_map(env(&[("TA_REQUEST_TIMEOUT", "abc")])).expect_err("bad");
        assert_eq!(e.to_string(), "invalid env var TA_REQUEST_TIMEOUT=abc (a whole number of seconds > 0)");
        let e = Settings::from_env_map(env(&[("TA_BODY_LIMIT", "-1")])).expect_err("bad");
        assert_eq!(e.to_string(), "invalid env var TA_BODY_LIMIT=-1 (a number of bytes > 0)");
    }

    #[test]
    fn offline_model_only_where_allowed() {
        assert!(matches!(build_llm(env(&[]), OfflinePolicy::Allow), Ok(Llm::Offline(_))));
        let e = build_llm(env(&[]), OfflinePolicy::Refuse).expect_err("refused");
        assert!(e.to_string().starts_with("no LLM configured: set TA_API_KEY"));
        let llm = build_llm(env(&[("TA_API_KEY", "k")]), OfflinePolicy::Refuse).expect("configured");
        assert!(matches!(llm, Llm::OpenAi(_)));
    }
}
