//! The API Gateway HTTP API Lambda authorizer (payload format 2.0, simple responses).
//!
//! Reads the key from the `x-api-key` header (the route's identity source), the agent from
//! the `name`/`version` path parameters, asks [`ApiKeyAuthorizer`] and answers
//! `{"isAuthorized": bool, "context": {"caller": id}}`. API Gateway turns a refusal into 403
//! (401 when the header is missing, before this function is called) and never reaches the
//! agent. The log says why a request was refused, never the key.

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::Serialize;

use super::api_key_authorizer;
use super::context::API_KEY_HEADER;
use crate::auth::{ApiKeyAuthorizer, Decision};
use crate::bootstrap::BootError;
use crate::settings::{Env, Settings};

/// The event API Gateway sends (payload format 2.0, type REQUEST).
pub type AuthorizerEvent = ApiGatewayV2CustomAuthorizerV2Request;

/// A simple response; `context` reaches the integration as `requestContext.authorizer.lambda`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    pub is_authorized: bool,
    pub context: HashMap<String, String>,
}

/// `name/version` from the route's path parameters, if the route names an agent.
pub fn agent_of(event: &AuthorizerEvent) -> Option<String> {
    let p = &event.path_parameters;
    Some(format!("{}/{}", p.get("name")?, p.get("version")?))
}

/// Decides one request.
pub async fn authorize(auth: &ApiKeyAuthorizer, event: &AuthorizerEvent) -> SimpleResponse {
    let key = event.headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    let agent = agent_of(event);
    let route = event.route_key.as_deref().unwrap_or("-");
    match auth.authorize(key, agent.as_deref()).await {
        Decision::Allowed { caller } => {
            tracing::info!(caller = %caller, route, "authorized");
            SimpleResponse { is_authorized: true, context: HashMap::from([("caller".to_owned(), caller)]) }
        }
        Decision::Denied(reason) => {
            tracing::warn!(reason = ?reason, route, "denied");
            SimpleResponse { is_authorized: false, context: HashMap::new() }
        }
    }
}

/// The checker, from `TA_API_KEYS_SECRET` / `TA_API_KEYS_TTL` and the process's secret store
/// (Secrets Manager in Lambda): call once per container.
pub async fn boot() -> Result<Arc<ApiKeyAuthorizer>, BootError> {
    let auth = match Settings::read(&Env::process()) {
        Ok(settings) => {
            let (secrets, _) = crate::bootstrap::build_secrets(&settings).await;
            api_key_authorizer(&settings.lambda, secrets)
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = &auth {
        tracing::error!(error = %crate::telemetry::error_chain(e), "cold start failed");
    }
    Ok(Arc::new(auth?))
}

/// Serves authorizer events until the runtime stops.
pub async fn run(auth: Arc<ApiKeyAuthorizer>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| {
        let auth = auth.clone();
        async move { Ok::<_, lambda_runtime::Error>(authorize(&auth, &event.payload).await) }
    }))
    .await
}
