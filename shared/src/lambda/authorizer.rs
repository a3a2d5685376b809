//! The API Gateway Lambda authorizer, in both shapes: the HTTP API's (payload format 2.0,
//! simple responses) and the REST API's request authorizer (the streaming route, which only a
//! REST API can stream).
//!
//! Reads the key from the `x-api-key` header (the route's identity source), the agent from
//! the `name`/`version` path parameters, asks [`ApiKeyAuthorizer`] and answers
//! `{"isAuthorized": bool, "context": {"caller": id}}` (HTTP API) or an IAM policy allowing or
//! denying `execute-api:Invoke` on the request's own method ARN, with the same context (REST
//! API). API Gateway turns a refusal into 403 (401 when the header is missing, before this
//! function is called) and never reaches the agent. The log says why a request was refused,
//! never the key.

use std::collections::HashMap;
use std::sync::Arc;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

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

/// A REST API request authorizer event (`type: REQUEST`): what the decision needs of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestAuthorizerEvent {
    pub method_arn: String,
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    #[serde(default)]
    pub path_parameters: Option<HashMap<String, String>>,
}

/// The REST authorizer's answer: a policy for this request's method only (results are not
/// cached: the decision depends on the agent in the path), and the caller as context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    pub principal_id: String,
    pub policy_document: serde_json::Value,
    pub context: HashMap<String, String>,
}

/// Decides one REST API request.
pub async fn authorize_rest(auth: &ApiKeyAuthorizer, event: &RestAuthorizerEvent) -> PolicyResponse {
    let key = event
        .headers
        .iter()
        .flatten()
        .find(|(name, _)| name.eq_ignore_ascii_case(API_KEY_HEADER))
        .map(|(_, v)| v.as_str());
    let agent = event
        .path_parameters
        .as_ref()
        .and_then(|p| Some(format!("{}/{}", p.get("name")?, p.get("version")?)));
    let (effect, principal, context) = match auth.authorize(key, agent.as_deref()).await {
        Decision::Allowed { caller } => {
            tracing::info!(caller = %caller, method = %event.method_arn, "authorized");
            ("Allow", caller.clone(), HashMap::from([("caller".to_owned(), caller)]))
        }
        Decision::Denied(reason) => {
            tracing::warn!(reason = ?reason, method = %event.method_arn, "denied");
            ("Deny", "anonymous".to_owned(), HashMap::new())
        }
    };
    PolicyResponse {
        principal_id: principal,
        policy_document: serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event.method_arn}],
        }),
        context,
    }
}

/// Decides an event of either shape: a `methodArn` marks the REST API's.
pub async fn authorize_any(
    auth: &ApiKeyAuthorizer,
    event: serde_json::Value,
) -> Result<serde_json::Value, serde_json::Error> {
    if event.get("methodArn").is_some() {
        let event: RestAuthorizerEvent = serde_json::from_value(event)?;
        serde_json::to_value(authorize_rest(auth, &event).await)
    } else {
        let event: AuthorizerEvent = serde_json::from_value(event)?;
        serde_json::to_value(authorize(auth, &event).await)
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
    let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let auth = auth.clone();
        async move { authorize_any(&auth, event.payload).await.map_err(lambda_runtime::Error::from) }
    });
    lambda_runtime::Runtime::new(handler)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(crate::telemetry::runtime::layer())
        .run()
        .await
}
