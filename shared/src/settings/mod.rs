//! Every environment variable the process reads, read in one place, once, at start.
//!
//! [`Env`] is the one reader: a snapshot of the variables with typed accessors that all fail
//! the same way ([`SettingsError`], whose message names the variable, the value and what was
//! expected: `invalid env var TA_REQUEST_TIMEOUT=abc (a whole number of seconds > 0)`).
//! [`Settings::read`] builds every layer's typed settings from it, so an operator finds every
//! `TA_*` variable in this file. The layers own their settings *types* (`RedisSettings` in
//! `store`, `OpenAiSettings` in `llm`, …) and never read the environment themselves.
//!
//! A variable that is set to an empty or blank value counts as unset. Secret values never reach
//! an error message: `TA_API_KEY` is only ever named.

mod backup;
pub mod otlp;
mod prices;
mod runtime_api;
mod teal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use redis::IntoConnectionInfo;
use secrecy::SecretString;
use url::Url;

use crate::api::ApiSettings;
use crate::config::s3::ConfigLocation;
use crate::llm::retry::RetryPolicy;
use crate::llm::{BedrockSettings, OpenAiSettings};
use crate::mcp::McpSettings;
use crate::secrets::{SecretsBackend, SecretsManagerSettings};
use crate::store::{
    CacheSettings, CatalogSettings, DailyBudgets, RateLimitSettings, RedisSettings, StoreSettings,
};
pub use backup::{BackupSettings, S3Prefix};
pub use otlp::OtlpSettings;
pub use runtime_api::RuntimeApiSettings;
pub use teal::TealSettings;

/// Why the settings could not be read. Display names the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable holds a value that does not parse (or is missing where it is required: the
    /// value is then empty).
    #[error("invalid env var {name}={value} ({expected})")]
    Invalid { name: &'static str, value: String, expected: &'static str },
    /// A value that is well-formed but unusable (a file that cannot be read, a client that
    /// refuses it). Never holds a secret value.
    #[error("{name}: {detail}")]
    Unusable { name: &'static str, detail: String },
    /// A Teal variable whose meaning cannot be honoured here, with what to use instead.
    #[error("{name}={value} is not supported: {instead}")]
    Refused { name: &'static str, value: String, instead: &'static str },
}

impl SettingsError {
    pub(crate) fn missing(name: &'static str, expected: &'static str) -> Self {
        Self::Invalid { name, value: String::new(), expected }
    }
}

/// A snapshot of the environment with typed accessors: the one way settings are parsed.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl From<HashMap<String, String>> for Env {
    fn from(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }
}

impl Env {
    /// The process environment, as it is now.
    pub fn process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    /// An environment made of `pairs` (tests, other hosts).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())).collect(),
        }
    }

    /// Sets one variable (e.g. the bundled MCP server's URL that `teal serve` adds).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// Every variable: what a config's `${NAME}` may reference.
    pub fn vars(&self) -> &HashMap<String, String> {
        &self.vars
    }

    /// The variable, trimmed, when set and not blank.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Whether the variable is set and not blank.
    pub fn is_set(&self, name: &str) -> bool {
        self.var(name).is_some()
    }

    /// The variable parsed by `parse`, or the error naming it with `expected`.
    pub fn parse<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, SettingsError> {
        match self.var(name) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or_else(|| SettingsError::Invalid {
                name,
                value: v.to_owned(),
                expected,
            }),
        }
    }

    fn positive<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, SettingsError> {
        self.parse(name, expected, |v| v.parse::<T>().ok().filter(|n| *n > T::default()))
    }

    /// Whole seconds > 0.
    pub fn secs(&self, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
        let n = self.positive::<u64>(name, "a whole number of seconds > 0")?;
        Ok(Duration::from_secs(n.unwrap_or(default)))
    }

    /// Whole milliseconds > 0.
    pub fn millis(&self, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
        let n = self.positive::<u64>(name, "a whole number of milliseconds > 0")?;
        Ok(Duration::from_millis(n.unwrap_or(default)))
    }

    /// Seconds > 0, fractions allowed.
    pub fn fractional_secs(&self, name: &'static str, default: Duration) -> Result<Duration, SettingsError> {
        let d = self.parse(name, "a number of seconds > 0", |v| {
            v.parse::<f64>().ok().filter(|s| *s > 0.0).and_then(|s| Duration::try_from_secs_f64(s).ok())
        })?;
        Ok(d.unwrap_or(default))
    }

    /// A number of bytes > 0.
    pub fn bytes(&self, name: &'static str, default: usize) -> Result<usize, SettingsError> {
        Ok(self.positive::<usize>(name, "a number of bytes > 0")?.unwrap_or(default))
    }

    /// A finite number > 0.
    pub fn positive_f64(&self, name: &'static str) -> Result<Option<f64>, SettingsError> {
        self.parse(name, "a number > 0", |v| v.parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0))
    }

    /// A whole number > 0.
    pub fn positive_u32(&self, name: &'static str) -> Result<Option<u32>, SettingsError> {
        self.positive::<u32>(name, "a whole number > 0")
    }

    /// Refuses `name` when it is set to anything but `served` (the one value that changes
    /// nothing here; `None`: every value is refused), naming what to do `instead`.
    pub fn refuse_unless(
        &self,
        name: &'static str,
        served: Option<&str>,
        instead: &'static str,
    ) -> Result<(), SettingsError> {
        match self.var(name) {
            Some(v) if Some(v) != served => {
                Err(SettingsError::Refused { name, value: v.to_owned(), instead })
            }
            _ => Ok(()),
        }
    }

    /// A whole number > 0 (64 bits).
    pub fn positive_u64(&self, name: &'static str) -> Result<Option<u64>, SettingsError> {
        self.positive::<u64>(name, "a whole number > 0")
    }

    /// A whole number ≥ 0.
    pub fn count(&self, name: &'static str, default: u32) -> Result<u32, SettingsError> {
        Ok(self.parse(name, "a whole number >= 0", |v| v.parse::<u32>().ok())?.unwrap_or(default))
    }

    /// An absolute http(s) URL.
    pub fn http_url(&self, name: &'static str) -> Result<Option<Url>, SettingsError> {
        self.parse(name, "an absolute http(s) URL", |v| {
            Url::parse(v).ok().filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
        })
    }
}

/// Where the LLM key comes from.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// `TA_API_KEY`: the key itself.
    Env(SecretString),
    /// `TA_API_KEY_SECRET`: the name of the secret holding it (re-read once on a 401).
    Secret(String),
}

/// The LLM endpoint and where its key comes from.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Endpoint, timeouts and retries; its `api_key` is filled from `key` when the client is
    /// built.
    pub endpoint: OpenAiSettings,
    /// `None` for local servers that need no key (Ollama, vLLM).
    pub key: Option<ApiKeySource>,
}

/// Where secrets are read.
#[derive(Debug, Clone)]
pub struct SecretsSettings {
    pub backend: SecretsBackend,
    /// `TA_SECRETS_TTL` seconds (default 300, 0 disables): how long a Secrets Manager value is
    /// reused.
    pub manager: SecretsManagerSettings,
}

/// Where the agents come from.
#[derive(Debug, Clone)]
pub struct AgentsSettings {
    /// `TA_SERVICE_CONFIG`: a file, a folder, or `s3://bucket/prefix/`.
    pub location: Option<ConfigLocation>,
    /// `TA_CONFIG_TTL` seconds (default 300): how often a warm container looks for changed
    /// configs in S3.
    pub refresh_ttl: Duration,
}

/// Lambda-only settings.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    /// `TA_DEADLINE_MARGIN_MS` (default 500): a run stops this long before Lambda would kill
    /// it, leaving time to answer 504 with what the run did so far.
    pub deadline_margin: Duration,
    /// `TA_API_KEYS_SECRET`: name (ARN in AWS) of the API key set secret.
    pub api_keys_secret: Option<String>,
    /// `TA_API_KEYS_TTL` seconds (default 300): how long a container reuses the key set.
    pub api_keys_ttl: Duration,
}

impl Default for LambdaSettings {
    fn default() -> Self {
        Self {
            deadline_margin: Duration::from_millis(500),
            api_keys_secret: None,
            api_keys_ttl: Duration::from_secs(300),
        }
    }
}

/// Every setting of the process, read once at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub agents: AgentsSettings,
    pub api: ApiSettings,
    pub mcp: McpSettings,
    /// Redis, response cache, catalog, rate limit and session settings.
    pub stores: StoreSettings,
    /// `None`: no LLM configured (neither `TA_API_KEY`, `TA_API_KEY_SECRET` nor `TA_BASE_URL`).
    pub llm: Option<LlmSettings>,
    /// Amazon Bedrock, for agents whose `model` is `bedrock:<model-id>`.
    pub bedrock: BedrockSettings,
    pub secrets: SecretsSettings,
    pub lambda: LambdaSettings,
    /// `TA_AWS_ENDPOINT_URL`: an endpoint override for the AWS SDK (moto, LocalStack).
    pub aws_endpoint_url: Option<String>,
    /// Teal Agents' own variables that keep their meaning here.
    pub teal: TealSettings,
    /// `TA_BACKUP_*`: the backup and restore functions and commands.
    pub backup: BackupSettings,
    /// Outbound OAuth to MCP servers (`TA_OAUTH_*`, `TA_MCP_OAUTH_*`).
    pub oauth: crate::oauth::OAuthSettings,
    /// `OTEL_EXPORTER_OTLP_*`: trace export, `None` when off.
    pub otlp: Option<OtlpSettings>,
}

impl Settings {
    /// Reads every section from `env`; the first bad variable stops it.
    pub fn read(env: &Env) -> Result<Self, SettingsError> {
        let stores = read_stores(env)?;
        let agents = read_agents(env)?;
        let backup = backup::read(env, agents.location.as_ref())?;
        let otlp = otlp::read(env)?;
        Ok(Self {
            agents,
            api: ApiSettings {
                body_limit: env.bytes("TA_BODY_LIMIT", ApiSettings::default().body_limit)?,
                request_timeout: env.secs("TA_REQUEST_TIMEOUT", 120)?,
                cache_ttl: stores.cache.default_ttl,
                structured_output_model: env
                    .var("TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL")
                    .map(std::sync::Arc::from),
                hitl_timeout: env.secs("TA_HITL_TIMEOUT", 3600)?,
                approvers: env
                    .var("TA_HITL_APPROVERS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                model_prices: std::sync::Arc::new(prices::read(env)?),
            },
            mcp: McpSettings { catalog_ttl: stores.catalog.fresh_for },
            stores,
            llm: read_llm(env)?,
            bedrock: read_bedrock(env)?,
            secrets: read_secrets(env)?,
            lambda: read_lambda(env)?,
            aws_endpoint_url: env.var("TA_AWS_ENDPOINT_URL").map(str::to_owned),
            teal: teal::read(env, otlp.is_some())?,
            backup,
            oauth: teal::oauth(env)?,
            otlp,
        })
    }
}

fn read_agents(env: &Env) -> Result<AgentsSettings, SettingsError> {
    Ok(AgentsSettings {
        location: env.parse(
            "TA_SERVICE_CONFIG",
            "a path, or s3://bucket/prefix/ with a valid bucket name",
            |v| ConfigLocation::parse(v).ok(),
        )?,
        refresh_ttl: env.secs("TA_CONFIG_TTL", 300)?,
    })
}

/// `TA_BASE_URL` (default OpenAI), `TA_API_KEY` or `TA_API_KEY_SECRET` (the key wins when both
/// are set), `TA_AZURE_API_VERSION`, `TA_LLM_TIMEOUT` (seconds, fractions allowed),
/// `TA_LLM_MAX_RETRIES`. `None` when no key and no base URL is set.
fn read_llm(env: &Env) -> Result<Option<LlmSettings>, SettingsError> {
    let key = match (env.var("TA_API_KEY"), env.var("TA_API_KEY_SECRET")) {
        (Some(k), _) => Some(ApiKeySource::Env(SecretString::from(k))),
        (None, Some(name)) => Some(ApiKeySource::Secret(name.to_owned())),
        (None, None) => None,
    };
    let base_url = env.http_url("TA_BASE_URL")?;
    if key.is_none() && base_url.is_none() {
        return Ok(None);
    }
    let base_url = match base_url {
        Some(url) => url,
        None => Url::parse(crate::llm::openai::DEFAULT_BASE_URL)
            .map_err(|e| SettingsError::Unusable { name: "TA_BASE_URL", detail: e.to_string() })?,
    };
    let mut endpoint = OpenAiSettings::new(base_url);
    endpoint.azure_api_version = env.var("TA_AZURE_API_VERSION").map(str::to_owned);
    endpoint.timeout = env.fractional_secs("TA_LLM_TIMEOUT", endpoint.timeout)?;
    endpoint.max_retries = env.count("TA_LLM_MAX_RETRIES", endpoint.max_retries)?;
    Ok(Some(LlmSettings { endpoint, key }))
}

/// `TA_BEDROCK_ENDPOINT_URL` (an absolute http(s) URL), `TA_BEDROCK_REGION`, and the retry
/// rules of `TA_LLM_TIMEOUT` / `TA_LLM_MAX_RETRIES` shared with the OpenAI-compatible endpoint.
fn read_bedrock(env: &Env) -> Result<BedrockSettings, SettingsError> {
    let d = OpenAiSettings::new(
        Url::parse(crate::llm::openai::DEFAULT_BASE_URL)
            .map_err(|e| SettingsError::Unusable { name: "TA_BASE_URL", detail: e.to_string() })?,
    )
    .retry_policy();
    Ok(BedrockSettings {
        endpoint_url: env.http_url("TA_BEDROCK_ENDPOINT_URL")?.map(|u| u.to_string()),
        region: env.var("TA_BEDROCK_REGION").map(str::to_owned),
        retry: RetryPolicy {
            timeout: env.fractional_secs("TA_LLM_TIMEOUT", d.timeout)?,
            max_retries: env.count("TA_LLM_MAX_RETRIES", d.max_retries)?,
            ..d
        },
    })
}

/// `TA_SECRETS_BACKEND=env|secretsmanager`; unset: Secrets Manager when an AWS region is
/// configured (`AWS_REGION`, set in every Lambda, or `AWS_DEFAULT_REGION`), else env.
fn read_secrets(env: &Env) -> Result<SecretsSettings, SettingsError> {
    let in_aws = env.is_set("AWS_REGION") || env.is_set("AWS_DEFAULT_REGION");
    let backend = env
        .parse("TA_SECRETS_BACKEND", "env or secretsmanager", |v| match v.to_ascii_lowercase().as_str() {
            "env" => Some(SecretsBackend::Env),
            "secretsmanager" | "secrets-manager" | "aws" => Some(SecretsBackend::SecretsManager),
            _ => None,
        })?
        .unwrap_or(if in_aws { SecretsBackend::SecretsManager } else { SecretsBackend::Env });
    let ttl = env
        .parse("TA_SECRETS_TTL", "a whole number of seconds (0 disables the cache)", |v| {
            v.parse::<u64>().ok()
        })?
        .map_or(SecretsManagerSettings::default().ttl, Duration::from_secs);
    Ok(SecretsSettings { backend, manager: SecretsManagerSettings { ttl } })
}

fn read_lambda(env: &Env) -> Result<LambdaSettings, SettingsError> {
    let d = LambdaSettings::default();
    Ok(LambdaSettings {
        deadline_margin: env.millis("TA_DEADLINE_MARGIN_MS", d.deadline_margin.as_millis() as u64)?,
        api_keys_secret: env.var("TA_API_KEYS_SECRET").map(str::to_owned),
        api_keys_ttl: env.secs("TA_API_KEYS_TTL", d.api_keys_ttl.as_secs())?,
    })
}

fn read_stores(env: &Env) -> Result<StoreSettings, SettingsError> {
    let cache = CacheSettings::default();
    let catalog = CatalogSettings::default();
    let fresh_for = env.secs("TA_CATALOG_TTL", catalog.fresh_for.as_secs())?;
    Ok(StoreSettings {
        redis: read_redis(env)?,
        cache: CacheSettings {
            max_entry_bytes: env.bytes("TA_CACHE_MAX_ENTRY_BYTES", cache.max_entry_bytes)?,
            default_ttl: env.secs("TA_CACHE_TTL", cache.default_ttl.as_secs())?,
        },
        catalog: CatalogSettings {
            fresh_for,
            // Never keep an entry for less time than it is fresh.
            keep_for: env.secs("TA_CATALOG_KEEP", catalog.keep_for.as_secs())?.max(fresh_for),
            refresh_lease: env.secs("TA_CATALOG_REFRESH_LEASE", catalog.refresh_lease.as_secs())?,
        },
        rate_limit: read_rate_limit(env)?,
        daily: DailyBudgets {
            requests: env.positive_u64("TA_DAILY_REQUEST_BUDGET")?,
            tokens: env.positive_u64("TA_DAILY_TOKEN_BUDGET")?,
        },
        // Teal's TA_REDIS_TTL is the lifetime of its state: ours when TA_SESSION_TTL is not set.
        session_ttl: match env.var("TA_SESSION_TTL") {
            Some(_) => env.secs("TA_SESSION_TTL", 3600)?,
            None => env.secs("TA_REDIS_TTL", 3600)?,
        },
    })
}

/// `None` when neither `TA_REDIS_URL` nor Teal's `TA_REDIS_HOST` is set (the in-memory
/// adapters).
fn read_redis(env: &Env) -> Result<Option<RedisSettings>, SettingsError> {
    let Some(url) = teal::redis_url(env)? else {
        return Ok(None);
    };
    let url = url.as_str();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok || url.into_connection_info().is_err() {
        return Err(SettingsError::Invalid {
            name: "TA_REDIS_URL",
            value: crate::store::redact_url(url),
            expected: "a redis://host:port or rediss://host:port URL",
        });
    }
    let d = RedisSettings::new(url);
    Ok(Some(RedisSettings {
        auth_secret: env.var("TA_REDIS_AUTH_SECRET").map(str::to_owned),
        // The prefix is taken as written: a blank one is "no prefix", not "unset".
        prefix: env.vars().get("TA_REDIS_PREFIX").cloned().unwrap_or(d.prefix.clone()),
        timeout: env.millis("TA_REDIS_TIMEOUT_MS", d.timeout.as_millis() as u64)?,
        connect_timeout: env.millis("TA_REDIS_CONNECT_TIMEOUT_MS", d.connect_timeout.as_millis() as u64)?,
        ca_file: env.var("TA_REDIS_CA_FILE").map(PathBuf::from),
        ..d
    }))
}

/// `None` when `TA_RATE_LIMIT_RPS` is unset. A burst without a rate is an error.
fn read_rate_limit(env: &Env) -> Result<Option<RateLimitSettings>, SettingsError> {
    let rate = env.positive_f64("TA_RATE_LIMIT_RPS")?;
    let burst = env.positive_u32("TA_RATE_LIMIT_BURST")?;
    match (rate, burst) {
        (None, None) => Ok(None),
        (None, Some(b)) => Err(SettingsError::Invalid {
            name: "TA_RATE_LIMIT_BURST",
            value: b.to_string(),
            expected: "only together with TA_RATE_LIMIT_RPS",
        }),
        (Some(rate_per_sec), burst) => Ok(Some(RateLimitSettings {
            rate_per_sec,
            burst: burst.unwrap_or_else(|| (rate_per_sec.ceil() as u32).max(1)),
        })),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::read(&Env::from_pairs(pairs.iter().copied()))
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        read(pairs).expect_err("must fail").to_string()
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = read(&[]).expect("defaults");
        assert_eq!(s.api.body_limit, 1024 * 1024);
        assert_eq!(s.api.request_timeout, Duration::from_secs(120));
        assert_eq!(s.api.cache_ttl, Duration::from_secs(3600));
        assert!(s.agents.location.is_none());
        assert_eq!(s.agents.refresh_ttl, Duration::from_secs(300));
        assert!(s.llm.is_none());
        assert!(s.stores.redis.is_none());
        assert!(s.stores.rate_limit.is_none());
        assert_eq!(s.stores.cache, CacheSettings::default());
        assert_eq!(s.stores.catalog, CatalogSettings::default());
        assert_eq!(s.stores.session_ttl, Duration::from_secs(3600));
        assert_eq!(s.secrets.backend, SecretsBackend::Env);
        assert_eq!(s.secrets.manager.ttl, Duration::from_secs(300));
        assert_eq!(s.lambda.deadline_margin, Duration::from_millis(500));
        assert_eq!(s.lambda.api_keys_ttl, Duration::from_secs(300));
        assert!(s.lambda.api_keys_secret.is_none());
    }

    #[test]
    fn every_bad_value_names_its_variable_in_one_format() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("TA_REQUEST_TIMEOUT", "abc")],
                "invalid env var TA_REQUEST_TIMEOUT=abc (a whole number of seconds > 0)",
            ),
            (&[("TA_BODY_LIMIT", "-1")], "invalid env var TA_BODY_LIMIT=-1 (a number of bytes > 0)"),
            (
                &[("TA_SESSION_TTL", "soon")],
                "invalid env var TA_SESSION_TTL=soon (a whole number of seconds > 0)",
            ),
            (
                &[("TA_CACHE_MAX_ENTRY_BYTES", "1k")],
                "invalid env var TA_CACHE_MAX_ENTRY_BYTES=1k (a number of bytes > 0)",
            ),
            (
                &[("TA_DEADLINE_MARGIN_MS", "soon")],
                "invalid env var TA_DEADLINE_MARGIN_MS=soon (a whole number of milliseconds > 0)",
            ),
            (
                &[("TA_API_KEY", "k"), ("TA_LLM_TIMEOUT", "abc")],
                "invalid env var TA_LLM_TIMEOUT=abc (a number of seconds > 0)",
            ),
            (
                &[("TA_API_KEY", "k"), ("TA_LLM_TIMEOUT", "-1")],
                "invalid env var TA_LLM_TIMEOUT=-1 (a number of seconds > 0)",
            ),
            (
                &[("TA_API_KEY", "k"), ("TA_LLM_MAX_RETRIES", "many")],
                "invalid env var TA_LLM_MAX_RETRIES=many (a whole number >= 0)",
            ),
            (
                &[("TA_BASE_URL", "localhost:11434")],
                "invalid env var TA_BASE_URL=localhost:11434 (an absolute http(s) URL)",
            ),
            (
                &[("TA_SECRETS_BACKEND", "vault")],
                "invalid env var TA_SECRETS_BACKEND=vault (env or secretsmanager)",
            ),
            (
                &[("TA_SECRETS_TTL", "5m")],
                "invalid env var TA_SECRETS_TTL=5m (a whole number of seconds (0 disables the cache))",
            ),
            (
                &[("TA_SERVICE_CONFIG", "s3:///x")],
                "invalid env var TA_SERVICE_CONFIG=s3:///x (a path, or s3://bucket/prefix/ with a valid bucket name)",
            ),
            (&[("TA_CONFIG_TTL", "0")], "invalid env var TA_CONFIG_TTL=0 (a whole number of seconds > 0)"),
            (&[("TA_RATE_LIMIT_RPS", "inf")], "invalid env var TA_RATE_LIMIT_RPS=inf (a number > 0)"),
            (
                &[("TA_DAILY_TOKEN_BUDGET", "1e6")],
                "invalid env var TA_DAILY_TOKEN_BUDGET=1e6 (a whole number > 0)",
            ),
            (
                &[("TA_DAILY_REQUEST_BUDGET", "0")],
                "invalid env var TA_DAILY_REQUEST_BUDGET=0 (a whole number > 0)",
            ),
            (
                &[("TA_RATE_LIMIT_BURST", "3")],
                "invalid env var TA_RATE_LIMIT_BURST=3 (only together with TA_RATE_LIMIT_RPS)",
            ),
            (
                &[("TA_REDIS_URL", "http://:secret@x")],
                "invalid env var TA_REDIS_URL=http://:***@x/ (a redis://host:port or rediss://host:port URL)",
            ),
            (
                &[("TA_REDIS_URL", "redis://h"), ("TA_REDIS_TIMEOUT_MS", "0")],
                "invalid env var TA_REDIS_TIMEOUT_MS=0 (a whole number of milliseconds > 0)",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(err(pairs), *want, "{pairs:?}");
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let s =
            read(&[("TA_REQUEST_TIMEOUT", " "), ("TA_API_KEY", ""), ("TA_SERVICE_CONFIG", "")]).expect("ok");
        assert_eq!(s.api.request_timeout, Duration::from_secs(120));
        assert!(s.llm.is_none());
        assert!(s.agents.location.is_none());
    }

    #[test]
    fn llm_key_source_is_explicit() {
        let s = read(&[("TA_API_KEY", " sk-1 ")]).expect("ok").llm.expect("configured");
        assert_eq!(s.endpoint.base_url.as_str(), "https://api.openai.com/v1");
        assert!(matches!(&s.key, Some(ApiKeySource::Env(k)) if k.expose_secret() == "sk-1"));
        assert_eq!((s.endpoint.timeout, s.endpoint.max_retries), (Duration::from_secs(60), 4));

        let s = read(&[("TA_API_KEY_SECRET", "prod/llm#openai")]).expect("ok").llm.expect("configured");
        assert!(matches!(&s.key, Some(ApiKeySource::Secret(n)) if n == "prod/llm#openai"));
        assert!(s.endpoint.api_key.is_none(), "the key is never a placeholder");

        let s = read(&[("TA_API_KEY", "k"), ("TA_API_KEY_SECRET", "n")]).expect("ok").llm.expect("set");
        assert!(matches!(s.key, Some(ApiKeySource::Env(_))), "the key itself wins");

        let s = read(&[
            ("TA_BASE_URL", "http://localhost:11434/v1/"),
            ("TA_AZURE_API_VERSION", "2024-10-21"),
            ("TA_LLM_TIMEOUT", "2.5"),
            ("TA_LLM_MAX_RETRIES", "0"),
        ])
        .expect("ok")
        .llm
        .expect("configured without a key");
        assert!(s.key.is_none());
        assert_eq!(s.endpoint.base_url.as_str(), "http://localhost:11434/v1/");
        assert_eq!(s.endpoint.azure_api_version.as_deref(), Some("2024-10-21"));
        assert_eq!((s.endpoint.timeout, s.endpoint.max_retries), (Duration::from_millis(2500), 0));
        assert!(read(&[("TA_LLM_TIMEOUT", "5")]).expect("ok").llm.is_none(), "no endpoint, no LLM");
    }

    #[test]
    fn stores_and_secrets_sections() {
        let s = read(&[
            ("TA_REDIS_URL", "rediss://user:pw@primary.example.cache.amazonaws.com:6379"),
            ("TA_REDIS_AUTH_SECRET", "prod/redis-token"),
            ("TA_REDIS_PREFIX", "t1:"),
            ("TA_REDIS_TIMEOUT_MS", "100"),
            ("TA_RATE_LIMIT_RPS", "2.5"),
            ("TA_CATALOG_TTL", "7200"),
            ("TA_CATALOG_KEEP", "60"),
            ("AWS_REGION", "eu-west-1"),
            ("TA_SECRETS_TTL", "0"),
        ])
        .expect("ok");
        let redis = s.stores.redis.expect("redis");
        assert_eq!(redis.auth_secret.as_deref(), Some("prod/redis-token"));
        assert_eq!(redis.prefix, "t1:");
        assert_eq!(redis.timeout, Duration::from_millis(100));
        assert_eq!(redis.connect_timeout, Duration::from_millis(1000));
        let shown = format!("{redis:?}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(shown.contains("user:***@primary"), "{shown}");
        let rl = s.stores.rate_limit.expect("rate limit");
        assert_eq!(s.stores.daily, DailyBudgets::default());
        let d =
            read(&[("TA_DAILY_REQUEST_BUDGET", "500"), ("TA_DAILY_TOKEN_BUDGET", "2000000")]).expect("ok");
        assert_eq!(d.stores.daily, DailyBudgets { requests: Some(500), tokens: Some(2_000_000) });
        assert!(d.stores.limits(), "a budget alone admits through the limiter");
        assert_eq!((rl.rate_per_sec, rl.burst), (2.5, 3));
        assert_eq!(s.stores.catalog.keep_for, Duration::from_secs(7200), "kept at least as long as fresh");
        assert_eq!(s.mcp.catalog_ttl, Duration::from_secs(7200));
        assert_eq!(s.secrets.backend, SecretsBackend::SecretsManager, "a region means AWS");
        assert_eq!(s.secrets.manager.ttl, Duration::ZERO);
        let s = read(&[("AWS_REGION", "eu-west-1"), ("TA_SECRETS_BACKEND", "env")]).expect("ok");
        assert_eq!(s.secrets.backend, SecretsBackend::Env);
        let s = read(&[("TA_SECRETS_BACKEND", "SecretsManager")]).expect("ok");
        assert_eq!(s.secrets.backend, SecretsBackend::SecretsManager);
        let s = read(&[("TA_REDIS_URL", "redis://127.0.0.1")]).expect("ok");
        assert_eq!(s.stores.redis.expect("redis").prefix, "teal:");
    }

    #[test]
    fn config_locations() {
        let s = read(&[("TA_SERVICE_CONFIG", "s3://my-bucket/agents/")]).expect("ok");
        assert_eq!(
            s.agents.location,
            Some(ConfigLocation::S3 { bucket: "my-bucket".into(), prefix: "agents/".into() })
        );
        let s = read(&[("TA_SERVICE_CONFIG", "examples/agents")]).expect("ok");
        assert_eq!(s.agents.location, Some(ConfigLocation::Path("examples/agents".into())));
    }

    #[test]
    fn teal_redis_variables_build_the_redis_url() {
        let s = read(&[
            ("TA_REDIS_HOST", "cache.internal"),
            ("TA_REDIS_PWD", "p@ss:w/rd"),
            ("TA_REDIS_TTL", "600"),
        ])
        .expect("ok");
        let redis = s.stores.redis.expect("redis from TA_REDIS_HOST");
        assert_eq!(redis.url, "rediss://:p%40ss%3Aw%2Frd@cache.internal:6379/0", "TLS is Teal's default");
        assert_eq!(s.stores.session_ttl, Duration::from_secs(600));
        let s = read(&[
            ("TA_REDIS_HOST", "127.0.0.1"),
            ("TA_REDIS_PORT", "6380"),
            ("TA_REDIS_DB", "2"),
            ("TA_REDIS_SSL", "false"),
        ])
        .expect("ok");
        assert_eq!(s.stores.redis.expect("redis").url, "redis://127.0.0.1:6380/2");
        let s = read(&[("TA_REDIS_HOST", "h"), ("TA_REDIS_URL", "redis://other:1")]).expect("ok");
        assert_eq!(s.stores.redis.expect("redis").url, "redis://other:1", "TA_REDIS_URL wins");
        assert!(err(&[("TA_STATE_MANAGEMENT", "redis")]).starts_with("invalid env var TA_REDIS_HOST="));
        assert!(
            err(&[("TA_STATE_MANAGEMENT", "in-memory"), ("TA_REDIS_HOST", "h")])
                .starts_with("TA_STATE_MANAGEMENT=in-memory is not supported")
        );
        assert!(
            err(&[("TA_REDIS_HOST", "h"), ("TA_REDIS_PORT", "x")])
                .starts_with("invalid env var TA_REDIS_PORT=x")
        );
    }

    #[test]
    fn teal_python_class_variables_stop_the_start_with_the_way_forward() {
        let e = err(&[("TA_PLUGIN_MODULE", "custom_plugins.py")]);
        assert!(
            e.starts_with(
                "TA_PLUGIN_MODULE=custom_plugins.py is not supported: serve the plugins as an MCP server"
            ),
            "{e}"
        );
        let e = err(&[("TA_TYPES_MODULE", "custom_types.py")]);
        assert!(e.contains("JSON Schema"), "{e}");
        assert!(err(&[("TA_A2A_ENABLED", "true")]).starts_with("TA_A2A_ENABLED=true is not supported"));
        assert!(err(&[("TA_TELEMETRY_ENABLED", "true")]).contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert!(err(&[("TA_METRICS_ENABLED", "true")]).contains("Prometheus"));
        let traces =
            [("TA_TELEMETRY_ENABLED", "true"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        // Served where the exporter is built; refused, naming the feature, where it is not.
        match read(&traces) {
            Ok(s) => assert!(otlp::BUILT && s.otlp.is_some()),
            Err(e) => assert!(!otlp::BUILT && e.to_string().contains("`otlp` feature"), "{e}"),
        }
        // Teal's own defaults, spelled out, change nothing.
        read(&[("TA_PERSISTENCE_CLASS", "InMemoryPersistenceManager"), ("TA_A2A_ENABLED", "false")])
            .expect("defaults pass");
        let s = read(&[
            ("TA_REMOTE_PLUGIN_PATH", "plugins/catalog.yaml"),
            ("TA_PLUGIN_CATALOG_FILE", "catalog.json"),
            ("TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL", "gpt-4o"),
        ])
        .expect("ok");
        assert_eq!(s.teal.remote_plugin_path.as_deref(), Some(std::path::Path::new("plugins/catalog.yaml")));
        assert_eq!(s.teal.structured_output_model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn teal_oauth_variables_configure_outbound_oauth_or_are_refused_with_the_reason() {
        let s = read(&[]).expect("defaults");
        assert_eq!(s.oauth.redirect_uri, "http://localhost:8000/oauth/callback", "Teal's default");
        assert_eq!(
            (s.oauth.client_name.as_str(), s.oauth.refresh, s.oauth.strict_https),
            ("teal-agents", true, true)
        );
        let s = read(&[
            ("TA_OAUTH_REDIRECT_URI", "https://api.example.com/oauth/callback"),
            ("TA_OAUTH_CLIENT_NAME", "acme-agents"),
            ("TA_OAUTH_BASE_URL", "https://api.example.com"),
            ("TA_MCP_OAUTH_ENABLE_TOKEN_REFRESH", "false"),
            ("TA_MCP_OAUTH_STRICT_HTTPS_VALIDATION", "false"),
            ("TA_MCP_OAUTH_ENABLE_AUDIENCE_VALIDATION", "false"),
            ("TA_MCP_OAUTH_ENABLE_SERVER_DISCOVERY", "false"),
            ("TA_OAUTH_TOKEN_KEY_SECRET", "prod/oauth-key"),
        ])
        .expect("ok");
        assert_eq!(s.oauth.redirect_uri, "https://api.example.com/oauth/callback");
        assert_eq!(
            (s.oauth.client_name.as_str(), s.oauth.refresh, s.oauth.strict_https),
            ("acme-agents", false, false)
        );
        assert_eq!(s.oauth.key_secret.as_deref(), Some("prod/oauth-key"));
        assert!(
            err(&[("TA_MCP_OAUTH_ENABLE_PKCE", "false")])
                .starts_with("TA_MCP_OAUTH_ENABLE_PKCE=false is not supported: PKCE")
        );
        assert!(err(&[("TA_MCP_OAUTH_ENABLE_RESOURCE_PARAMETER", "false")]).contains("RFC 8707"));
        assert!(err(&[("TA_MCP_OAUTH_ENABLE_DYNAMIC_REGISTRATION", "true")]).contains("oauth_client_id"));
        assert_eq!(
            err(&[("TA_OAUTH_REDIRECT_URI", "callback")]),
            "invalid env var TA_OAUTH_REDIRECT_URI=callback (an absolute http(s) URL)"
        );
        assert!(err(&[("TA_MCP_OAUTH_ENABLE_TOKEN_REFRESH", "maybe")]).contains("true or false"));
    }
}
