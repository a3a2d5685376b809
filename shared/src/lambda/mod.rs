//! The Lambda adapters: everything a function binary needs beyond `main`.
//!
//! Owns booting one endpoint's app once per container ([`boot`]: typed settings, secrets, the
//! agents, the LLM client, the stores, the MCP pool and its pre-warm) and
//! the per-invocation glue ([`context`]: the Lambda deadline as the API's [`Deadline`], the
//! caller from the authorizer in the log, the API Gateway request id as `x-request-id`). The
//! routes themselves are [`crate::api`]'s, unchanged, so `teal serve` runs the same code. The
//! [`authorizer`] turns API Gateway's authorizer events into [`crate::auth`] decisions.
//! Nothing here talks to AWS directly: [`boot`] takes the same building blocks as every
//! deployment ([`bootstrap`]: Secrets Manager when an AWS region is set, configs from a path or
//! S3, Redis when `TA_REDIS_URL` is set); [`boot_with`] takes the secret store from the caller.
//!
//! [`Deadline`]: crate::api::Deadline

pub mod authorizer;
pub mod context;
#[cfg(feature = "backup")]
pub mod job;
pub mod probe;
pub mod stream_runtime;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use lambda_http::lambda_runtime::layers::TracingLayer;

use crate::api::{self, SharedState};
use crate::auth::ApiKeyAuthorizer;
use crate::bootstrap::{self, BootError, OfflinePolicy};
use crate::llm::{Llm, OfflineModel};
use crate::secrets::SecretStore;
pub use crate::settings::LambdaSettings;
use crate::settings::{Env, Settings, SettingsError};
use crate::telemetry::error_chain;

/// The HTTP endpoints, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /{name}/{version}`
    Invoke,
    /// `POST /{name}/{version}/sse` (response streaming, behind the REST API)
    Stream,
    /// `GET /health`
    Health,
    /// `GET /ready`
    Ready,
    /// `GET /{name}/{version}/tools`
    Tools,
    /// `GET /oauth/callback` (an authorization server sends the caller's browser here)
    OAuthCallback,
    /// The scheduled MCP probe: no HTTP route, its events are EventBridge's ([`probe`]).
    McpProbe,
    /// `POST /tealagents/v1alpha1/resume/{request_id}` (and `/sse`): a human decides on a paused run
    Resume,
}

impl Endpoint {
    fn router(self) -> Router<SharedState> {
        match self {
            Endpoint::Invoke => api::invoke_router(),
            Endpoint::Stream => api::stream_router(),
            Endpoint::Health => api::health_router(),
            Endpoint::Ready => api::ready_router(),
            Endpoint::Tools => api::tools_router(),
            Endpoint::OAuthCallback => api::oauth_callback_router(),
            Endpoint::McpProbe => Router::new(),
            Endpoint::Resume => api::resume_router(),
        }
    }

    /// Runs agents, so it needs a real LLM (never the offline model) and warm MCP sessions.
    fn runs_agents(self) -> bool {
        match self {
            Endpoint::Invoke | Endpoint::Stream | Endpoint::Resume => true,
            Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Tools
            | Endpoint::OAuthCallback
            | Endpoint::McpProbe => false,
        }
    }

    fn uses_tools(self) -> bool {
        match self {
            Endpoint::Invoke | Endpoint::Stream | Endpoint::Tools | Endpoint::Resume => true,
            Endpoint::Health | Endpoint::Ready | Endpoint::OAuthCallback | Endpoint::McpProbe => false,
        }
    }

    /// The stream function sits behind a function URL (API Gateway HTTP APIs cannot stream),
    /// where no authorizer runs: it checks the API key itself.
    fn checks_api_key(self) -> bool {
        self == Endpoint::Stream
    }
}

/// The API key checker from `TA_API_KEYS_SECRET`, or a start-up error naming it.
pub fn api_key_authorizer(
    lambda: &LambdaSettings,
    secrets: Arc<dyn SecretStore>,
) -> Result<ApiKeyAuthorizer, BootError> {
    let name = lambda.api_keys_secret.clone().ok_or_else(|| {
        SettingsError::missing("TA_API_KEYS_SECRET", "the name of the secret holding the API key set")
    })?;
    Ok(ApiKeyAuthorizer::new(secrets, name, lambda.api_keys_ttl))
}

/// Builds `endpoint`'s app from the process environment: call once, before `lambda_http::run`.
pub async fn boot(endpoint: Endpoint) -> Result<Router, BootError> {
    let env = Env::process();
    let settings = Settings::read(&env);
    let booted = boot_process(endpoint, &env, settings).await;
    booted.map(|(state, auth, settings)| app(endpoint, state, &settings.lambda, auth))
}

/// The state `endpoint` runs on, from the process environment (a function without HTTP
/// routes, such as [`probe`]).
pub async fn boot_state(endpoint: Endpoint) -> Result<SharedState, BootError> {
    let env = Env::process();
    let settings = Settings::read(&env);
    boot_process(endpoint, &env, settings).await.map(|(state, ..)| state)
}

type Booted = (SharedState, Option<Arc<ApiKeyAuthorizer>>, Settings);

async fn boot_process(
    endpoint: Endpoint,
    env: &Env,
    settings: Result<Settings, SettingsError>,
) -> Result<Booted, BootError> {
    let booted = match settings {
        Ok(settings) => {
            let (secrets, sdk) = bootstrap::build_secrets(&settings).await;
            boot_inner(endpoint, env, &settings, secrets, sdk).await.map(|(s, a)| (s, a, settings))
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = &booted {
        tracing::error!(error = %error_chain(e), endpoint = ?endpoint, "cold start failed");
    }
    booted
}

/// [`boot`] with the environment and secret store given (tests, other hosts).
pub async fn boot_with(
    endpoint: Endpoint,
    env: &Env,
    secrets: Arc<dyn SecretStore>,
) -> Result<Router, BootError> {
    let settings = Settings::read(env)?;
    let (state, auth) = boot_inner(endpoint, env, &settings, secrets, None).await?;
    Ok(app(endpoint, state, &settings.lambda, auth))
}

/// [`boot_state`] with the environment and secret store given (tests, other hosts).
pub async fn boot_state_with(
    endpoint: Endpoint,
    env: &Env,
    secrets: Arc<dyn SecretStore>,
) -> Result<SharedState, BootError> {
    let settings = Settings::read(env)?;
    boot_inner(endpoint, env, &settings, secrets, None).await.map(|(state, _)| state)
}

async fn boot_inner(
    endpoint: Endpoint,
    env: &Env,
    settings: &Settings,
    secrets: Arc<dyn SecretStore>,
    sdk: Option<aws_config::SdkConfig>,
) -> Result<(SharedState, Option<Arc<ApiKeyAuthorizer>>), BootError> {
    let (agents, warnings) = bootstrap::load_agents(settings, env, sdk).await?;
    bootstrap::check_prices(settings, &agents.current())?;
    for w in &warnings {
        tracing::warn!(warning = %w, "config");
    }
    let llm: Arc<dyn crate::llm::LlmClient> = if endpoint.runs_agents() {
        // `TA_API_KEY`, or the secret `TA_API_KEY_SECRET` names (re-read once on a 401).
        bootstrap::build_llm(
            settings,
            secrets.clone(),
            OfflinePolicy::Refuse,
            bootstrap::needs_default_llm(&agents.current()),
        )
        .await?
    } else {
        // No route of this function reaches the model: it gets none to configure.
        Arc::new(Llm::Offline(OfflineModel))
    };
    let auth = if endpoint.checks_api_key() {
        Some(Arc::new(api_key_authorizer(&settings.lambda, secrets.clone())?))
    } else {
        None
    };
    let stores = bootstrap::build_stores(settings, secrets.clone()).await?;
    let tools = bootstrap::load_tool_sources(settings, &agents.current()).await?;
    let state = Arc::new(bootstrap::build_state(settings, agents, llm, secrets, stores, tools));
    if endpoint.uses_tools() {
        bootstrap::prewarm(&state);
    }
    tracing::info!(
        endpoint = ?endpoint,
        agents = state.registry().len(),
        llm = %state.llm.describe(),
        "cold start finished"
    );
    crate::telemetry::init_finished();
    Ok((state, auth))
}

/// Serves `app`'s invocations until the runtime stops; with the EMF exporter installed
/// ([`crate::telemetry::init_lambda`]) its metrics are flushed after each one, and with the OTLP
/// exporter its spans ([`crate::telemetry::runtime`]).
pub async fn run(app: Router) -> Result<(), lambda_http::Error> {
    lambda_http::lambda_runtime::Runtime::new(lambda_http::Adapter::from(app))
        .layer(TracingLayer::new())
        .layer(crate::telemetry::runtime::layer())
        .run()
        .await
}

/// [`run`] for a streamed response (the SSE function), on our own Runtime API loop
/// ([`stream_runtime`]: the same layers, with `TCP_NODELAY`). Metrics recorded after the response
/// started (the rest of the run) are flushed with the next invocation's; spans are exported
/// once the stream has ended.
pub async fn run_streaming(app: Router) -> Result<(), lambda_http::Error> {
    let api = crate::settings::RuntimeApiSettings::read(&Env::process())?;
    stream_runtime::run(app, api).await
}

/// The endpoint's router with the Lambda glue around it.
pub fn app(
    endpoint: Endpoint,
    state: SharedState,
    lambda: &LambdaSettings,
    auth: Option<Arc<ApiKeyAuthorizer>>,
) -> Router {
    // Innermost: runs after the authorizer's caller is known (per-user OAuth tokens are its).
    let mut router = endpoint
        .router()
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn(crate::oauth::caller::acting_for));
    if let Some(auth) = auth {
        router = router.layer(middleware::from_fn_with_state(auth, context::require_api_key));
    }
    let app = router
        .layer(middleware::from_fn(api::request_context))
        .layer(middleware::from_fn_with_state(lambda.deadline_margin, context::lambda_context))
        .with_state(state);
    // A REST API's stage leaves the path before routing (a layer inside the router runs after).
    #[cfg(feature = "rest")]
    let app = Router::new().fallback_service(app).layer(middleware::from_fn(context::strip_stage));
    app
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::EnvSecretStore;

    fn env_store() -> Arc<dyn SecretStore> {
        Arc::new(EnvSecretStore::new())
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_key_checker_needs_its_secret_name() {
        let e = api_key_authorizer(&LambdaSettings::default(), env_store()).expect_err("no secret name");
        assert!(e.to_string().starts_with("invalid env var TA_API_KEYS_SECRET="), "{e}");
    }

    #[tokio::test]
    async fn agent_functions_refuse_to_start_without_an_llm_and_others_do_not_need_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("chat.yaml"),
            "apiVersion: skagents/v1\nkind: Chat\nservice_name: chat\nversion: 1.0\nspec:\n  agent:\n    name: default\n    model: m\n    system_prompt: hi\n",
        )
        .expect("write");
        let path = dir.path().display().to_string();
        let base = env(&[("TA_SERVICE_CONFIG", &path)]);
        let err = boot_with(Endpoint::Invoke, &base, env_store()).await.expect_err("no LLM");
        assert!(err.to_string().starts_with("no LLM configured"), "{err}");
        let err = boot_with(Endpoint::Health, &env(&[]), env_store()).await.expect_err("no config");
        assert!(err.to_string().starts_with("invalid env var TA_SERVICE_CONFIG="), "{err}");
        assert!(boot_with(Endpoint::Health, &base, env_store()).await.is_ok());
        let with_secret = env(&[("TA_SERVICE_CONFIG", &path), ("TA_API_KEY_SECRET", "LLM_KEY")]);
        let store: Arc<dyn SecretStore> = Arc::new(EnvSecretStore::new().with("LLM_KEY", "sk-test"));
        assert!(boot_with(Endpoint::Invoke, &with_secret, store).await.is_ok());
        let err = boot_with(Endpoint::Invoke, &with_secret, env_store()).await.expect_err("secret unset");
        assert_eq!(
            error_chain(&err),
            "TA_API_KEY_SECRET: the LLM key secret LLM_KEY could not be read: secret LLM_KEY is not set"
        );
        let err = boot_with(
            Endpoint::Stream,
            &env(&[("TA_SERVICE_CONFIG", &path), ("TA_API_KEY", "k")]),
            env_store(),
        )
        .await
        .expect_err("stream needs the key set");
        assert!(err.to_string().starts_with("invalid env var TA_API_KEYS_SECRET="), "{err}");
    }
}
