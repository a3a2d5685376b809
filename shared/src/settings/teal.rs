//! Teal Agents' own environment variables, so a Teal deployment's settings keep their meaning.
//!
//! Honoured: `TA_REDIS_HOST`/`PORT`/`DB`/`PWD`/`SSL` build the Redis URL (when `TA_REDIS_URL`
//! is not set), `TA_REDIS_TTL` is the session and task lifetime (when `TA_SESSION_TTL` is not
//! set), `TA_STATE_MANAGEMENT` must agree with them, `TA_REMOTE_PLUGIN_PATH` names the remote
//! plugin catalog, `TA_PLUGIN_CATALOG_FILE` the plugin catalog whose `requires_hitl` tools are
//! held, `TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL` the model that repairs structured output,
//! `TA_LOG_LEVEL` the default log level. Refused, with what to use instead: the variables
//! that load Python classes (`*_MODULE`, `*_CLASS`), A2A, OTLP metrics (`TA_METRICS_ENABLED`), and
//! `TA_TELEMETRY_ENABLED=true` unless OTLP trace export is configured ([`super::otlp`]).
//! Teal's OAuth variables (`TA_OAUTH_*`, `TA_MCP_OAUTH_*`) configure outbound OAuth to MCP servers
//! ([`oauth`]); a switch that would turn off what the MCP specification requires is refused.
//! Variables that only configure what is not served (A2A card fields) are accepted.

use std::path::PathBuf;

use super::{Env, SettingsError};
use crate::oauth::OAuthSettings;

/// Teal's Python-class variables and Teal's own default values: a deployment that spells out a
/// default changes nothing and is accepted.
const PYTHON_CLASS_VARS: [(&str, Option<&str>, &str); 16] = [
    (
        "TA_PLUGIN_MODULE",
        None,
        "serve the plugins as an MCP server and list it under mcp_servers (docs/migrating-from-teal.md)",
    ),
    (
        "TA_TYPES_MODULE",
        None,
        "give each custom type's JSON Schema (input_schema / output_schema, or {Type}.schema.json beside the config)",
    ),
    (
        "TA_CUSTOM_CHAT_COMPLETION_FACTORY_MODULE",
        None,
        "point TA_BASE_URL at any OpenAI-compatible endpoint (Azure OpenAI: also TA_AZURE_API_VERSION)",
    ),
    (
        "TA_CUSTOM_CHAT_COMPLETION_FACTORY_CLASS_NAME",
        None,
        "point TA_BASE_URL at any OpenAI-compatible endpoint (Azure OpenAI: also TA_AZURE_API_VERSION)",
    ),
    (
        "TA_AUTHORIZER_MODULE",
        Some("src/sk_agents/authorization/dummy_authorizer.py"),
        "callers are authenticated by the API Gateway authorizer (API keys in TA_API_KEYS_SECRET)",
    ),
    (
        "TA_AUTHORIZER_CLASS",
        Some("DummyAuthorizer"),
        "callers are authenticated by the API Gateway authorizer (API keys in TA_API_KEYS_SECRET)",
    ),
    (
        "TA_PERSISTENCE_MODULE",
        Some("persistence/in_memory_persistence_manager.py"),
        "tasks are kept in Redis when TA_REDIS_URL or TA_REDIS_HOST is set, in memory otherwise",
    ),
    (
        "TA_PERSISTENCE_CLASS",
        Some("InMemoryPersistenceManager"),
        "tasks are kept in Redis when TA_REDIS_URL or TA_REDIS_HOST is set, in memory otherwise",
    ),
    (
        "TA_PLUGIN_CATALOG_MODULE",
        Some("src/sk_agents/plugin_catalog/local_plugin_catalog.py"),
        "give the catalog file in TA_PLUGIN_CATALOG_FILE",
    ),
    (
        "TA_PLUGIN_CATALOG_CLASS",
        Some("FileBasedPluginCatalog"),
        "give the catalog file in TA_PLUGIN_CATALOG_FILE",
    ),
    (
        "TA_AUTH_STORAGE_MANAGER_MODULE",
        None,
        "OAuth tokens are kept sealed in Redis (TA_REDIS_URL) or in memory, with the key in TA_OAUTH_TOKEN_KEY_SECRET",
    ),
    (
        "TA_AUTH_STORAGE_MANAGER_CLASS",
        None,
        "OAuth tokens are kept sealed in Redis (TA_REDIS_URL) or in memory, with the key in TA_OAUTH_TOKEN_KEY_SECRET",
    ),
    (
        "TA_MCP_DISCOVERY_MODULE",
        Some("sk_agents.mcp_discovery.in_memory_discovery_manager"),
        "MCP tool catalogs are shared through Redis when it is configured (TA_CATALOG_TTL)",
    ),
    (
        "TA_MCP_DISCOVERY_CLASS",
        Some("InMemoryStateManager"),
        "MCP tool catalogs are shared through Redis when it is configured (TA_CATALOG_TTL)",
    ),
    ("TA_CUSTOM_USER_CONTEXT_MODULE", None, "send user_context in the request body"),
    ("TA_WORKFLOW_MODULE", None, "workflow orchestrators are out of scope: keep running them with Teal"),
];

/// What Teal's variables add to the settings.
#[derive(Debug, Clone, Default)]
pub struct TealSettings {
    /// `TA_REMOTE_PLUGIN_PATH`: the remote plugin catalog (YAML).
    pub remote_plugin_path: Option<PathBuf>,
    /// `TA_PLUGIN_CATALOG_FILE`: the plugin catalog (JSON) whose `requires_hitl` tools are held.
    pub plugin_catalog_file: Option<PathBuf>,
    /// `TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL`: the model that turns an answer into the output
    /// type when the agent's own answer does not validate.
    pub structured_output_model: Option<String>,
    /// `TA_LOG_LEVEL`: the log level when `RUST_LOG` is not set.
    pub log_level: Option<String>,
}

/// Checks the refused variables and reads the honoured ones.
/// `otlp_configured`: OTLP trace export is on (what `TA_TELEMETRY_ENABLED=true` asks for).
pub(super) fn read(env: &Env, otlp_configured: bool) -> Result<TealSettings, SettingsError> {
    for (name, teal_default, instead) in PYTHON_CLASS_VARS {
        env.refuse_unless(name, teal_default, instead)?;
    }
    if env.parse("TA_A2A_ENABLED", "true or false", parse_bool)?.unwrap_or(false) {
        return Err(SettingsError::Refused {
            name: "TA_A2A_ENABLED",
            value: "true".to_owned(),
            instead: "A2A (deprecated in Teal) is not served: call the agents' invoke API, or set it to false",
        });
    }
    // Teal's switch for traces: served by the OTLP exporter, which `OTEL_EXPORTER_OTLP_ENDPOINT`
    // turns on (Teal's own TA_OTEL_ENDPOINT is gRPC, which is not built).
    if env.parse("TA_TELEMETRY_ENABLED", "true or false", parse_bool)?.unwrap_or(false) && !otlp_configured {
        return Err(SettingsError::Refused {
            name: "TA_TELEMETRY_ENABLED",
            value: "true".to_owned(),
            instead: "traces are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (e.g. \
                      http://localhost:4318, in a build with the `otlp` feature; Teal's TA_OTEL_ENDPOINT \
                      is gRPC, not served): set that, or set this to false",
        });
    }
    if env.parse("TA_METRICS_ENABLED", "true or false", parse_bool)?.unwrap_or(false) {
        return Err(SettingsError::Refused {
            name: "TA_METRICS_ENABLED",
            value: "true".to_owned(),
            instead: "metrics are not exported over OTLP: they are always on (EMF lines in Lambda, \
                      Prometheus text at teal serve's /metrics); set it to false",
        });
    }
    Ok(TealSettings {
        remote_plugin_path: env.var("TA_REMOTE_PLUGIN_PATH").map(PathBuf::from),
        plugin_catalog_file: env.var("TA_PLUGIN_CATALOG_FILE").map(PathBuf::from),
        structured_output_model: env.var("TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL").map(str::to_owned),
        log_level: env.var("TA_LOG_LEVEL").map(str::to_owned),
    })
}

/// Teal's OAuth variables, and `TA_OAUTH_TOKEN_KEY_SECRET`. PKCE, resource indicators and audience
/// checks are what the MCP specification requires: `TA_MCP_OAUTH_ENABLE_PKCE=false` and
/// `TA_MCP_OAUTH_ENABLE_RESOURCE_PARAMETER=false` are refused; audience validation and metadata
/// discovery always happen (Teal enforces audience for HTTP servers too), so their switches change
/// nothing. Dynamic client registration is not done: `TA_MCP_OAUTH_ENABLE_DYNAMIC_REGISTRATION=
/// true` is refused.
pub(super) fn oauth(env: &Env) -> Result<OAuthSettings, SettingsError> {
    let d = OAuthSettings::default();
    for (name, instead) in [
        (
            "TA_MCP_OAUTH_ENABLE_PKCE",
            "PKCE is required by OAuth 2.1 and the MCP specification: remove it or set it to true",
        ),
        (
            "TA_MCP_OAUTH_ENABLE_RESOURCE_PARAMETER",
            "resource indicators (RFC 8707) are required by the MCP specification: remove it or set it to true",
        ),
    ] {
        if env.parse(name, "true or false", parse_bool)? == Some(false) {
            return Err(SettingsError::Refused { name, value: "false".to_owned(), instead });
        }
    }
    for name in ["TA_MCP_OAUTH_ENABLE_AUDIENCE_VALIDATION", "TA_MCP_OAUTH_ENABLE_SERVER_DISCOVERY"] {
        env.parse(name, "true or false", parse_bool)?;
    }
    if env.parse("TA_MCP_OAUTH_ENABLE_DYNAMIC_REGISTRATION", "true or false", parse_bool)? == Some(true) {
        return Err(SettingsError::Refused {
            name: "TA_MCP_OAUTH_ENABLE_DYNAMIC_REGISTRATION",
            value: "true".to_owned(),
            instead: "dynamic client registration is not done: give each server's oauth_client_id (or TA_OAUTH_CLIENT_NAME)",
        });
    }
    Ok(OAuthSettings {
        redirect_uri: env.http_url("TA_OAUTH_REDIRECT_URI")?.map_or(d.redirect_uri, String::from),
        client_name: env.var("TA_OAUTH_CLIENT_NAME").map_or(d.client_name, str::to_owned),
        base_url: env.http_url("TA_OAUTH_BASE_URL")?.map_or(d.base_url, String::from),
        refresh: env.parse("TA_MCP_OAUTH_ENABLE_TOKEN_REFRESH", "true or false", parse_bool)?.unwrap_or(true),
        strict_https: env
            .parse("TA_MCP_OAUTH_STRICT_HTTPS_VALIDATION", "true or false", parse_bool)?
            .unwrap_or(true),
        key_secret: env.var("TA_OAUTH_TOKEN_KEY_SECRET").map(str::to_owned),
        ..d
    })
}

/// `TA_REDIS_HOST` and friends as a Redis URL, when `TA_REDIS_URL` is not set. Teal's
/// `TA_REDIS_SSL` defaults to true (so `rediss://`); the port defaults to 6379.
pub(super) fn redis_url(env: &Env) -> Result<Option<String>, SettingsError> {
    let state = env.parse("TA_STATE_MANAGEMENT", "in-memory or redis", |v| match v {
        "in-memory" => Some(false),
        "redis" => Some(true),
        _ => None,
    })?;
    let from_host = match env.var("TA_REDIS_HOST") {
        None => None,
        Some(host) => {
            let port =
                env.parse("TA_REDIS_PORT", "a port number", |v| v.parse::<u16>().ok())?.unwrap_or(6379);
            let db = env.parse("TA_REDIS_DB", "a database number", |v| v.parse::<u32>().ok())?.unwrap_or(0);
            let tls = env.parse("TA_REDIS_SSL", "true or false", parse_bool)?.unwrap_or(true);
            let auth = match env.var("TA_REDIS_PWD") {
                Some(pwd) => {
                    format!(":{}@", url::form_urlencoded::byte_serialize(pwd.as_bytes()).collect::<String>())
                }
                None => String::new(),
            };
            let scheme = if tls { "rediss" } else { "redis" };
            Some(format!("{scheme}://{auth}{host}:{port}/{db}"))
        }
    };
    let url = env.var("TA_REDIS_URL").map(str::to_owned).or(from_host);
    match (state, &url) {
        (Some(true), None) => Err(SettingsError::missing(
            "TA_REDIS_HOST",
            "a Redis host (or TA_REDIS_URL), since TA_STATE_MANAGEMENT=redis",
        )),
        (Some(false), Some(_)) => Err(SettingsError::Refused {
            name: "TA_STATE_MANAGEMENT",
            value: "in-memory".to_owned(),
            instead: "it contradicts TA_REDIS_URL / TA_REDIS_HOST: unset one of them",
        }),
        _ => Ok(url),
    }
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
