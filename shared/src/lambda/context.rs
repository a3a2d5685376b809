//! Per-invocation glue between `lambda_http` and the API routes.
//!
//! [`lambda_context`] turns the invocation's deadline into the API's [`Deadline`] (minus a
//! margin), makes API Gateway's request id the `x-request-id` when the client sent none, and
//! logs who called (the caller id the authorizer put in the request context). It must not
//! change what a route answers. [`require_api_key`] is the authorizer's check done in-process,
//! by the streaming function as well as behind the REST API's authorizer (defence in depth, and
//! the only check under `cargo lambda watch`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use serde_json::json;

use crate::api::{Deadline, RequestId};
use crate::auth::{ApiKeyAuthorizer, Decision};

/// The header callers put their API key in (the authorizer's identity source too).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Who called, as the authorizer or [`require_api_key`] established it (the API's type, so the
/// invoke path rate-limits per caller).
pub use crate::api::Caller;

/// Deadlines below this (2000-01-01 in epoch milliseconds) cannot be wall-clock times: they are
/// what `cargo lambda watch` sends (a constant 600000), read as a duration from now.
const EPOCH_MS_2000: u64 = 946_684_800_000;

/// When a run must stop: Lambda's deadline (milliseconds since the epoch) minus `margin`,
/// as an [`Instant`] measured from `now` / `now_wall`.
pub fn deadline_from(deadline_ms: u64, now_wall: SystemTime, now: Instant, margin: Duration) -> Instant {
    let remaining = if deadline_ms < EPOCH_MS_2000 {
        Duration::from_millis(deadline_ms)
    } else {
        let now_ms = now_wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    now + remaining.saturating_sub(margin)
}

/// The caller id an HTTP API Lambda authorizer returned in its `context`.
pub fn authorizer_caller(ctx: &RequestContext) -> Option<String> {
    match ctx {
        RequestContext::ApiGatewayV2(c) => {
            c.authorizer.as_ref()?.fields.get("caller")?.as_str().map(str::to_owned)
        }
        #[cfg(feature = "rest")]
        RequestContext::ApiGatewayV1(c) => c.authorizer.fields.get("caller")?.as_str().map(str::to_owned),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Middleware around the whole router: a REST API puts its stage before the path
/// (`/prod/{name}/{version}/sse`); the routes know the path without it.
#[cfg(feature = "rest")]
pub async fn strip_stage(mut req: Request, next: Next) -> Response {
    if let Some(uri) = without_stage(&req) {
        *req.uri_mut() = uri;
    }
    next.run(req).await
}

#[cfg(feature = "rest")]
fn without_stage(req: &Request) -> Option<axum::http::Uri> {
    let Some(RequestContext::ApiGatewayV1(c)) = req.extensions().get::<RequestContext>() else { return None };
    let stage = c.stage.as_deref()?;
    let rest = req.uri().path().strip_prefix('/')?.strip_prefix(stage)?;
    if !rest.starts_with('/') {
        return None;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    path_and_query.parse().ok()
}

fn apigw_request_id(ctx: &RequestContext) -> Option<String> {
    match ctx {
        RequestContext::ApiGatewayV2(c) => c.request_id.clone(),
        #[cfg(feature = "rest")]
        RequestContext::ApiGatewayV1(c) => c.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Middleware: deadline, request id and caller of one invocation.
pub async fn lambda_context(State(margin): State<Duration>, mut req: Request, next: Next) -> Response {
    let (now, now_wall) = (Instant::now(), SystemTime::now());
    let lambda = req.extensions().get::<lambda_http::Context>().map(|c| (c.deadline, c.request_id.clone()));
    let apigw = req.extensions().get::<RequestContext>();
    let caller = apigw.and_then(authorizer_caller);
    let apigw_id = apigw.and_then(apigw_request_id);
    if let Some(id) = apigw_id.as_deref().and_then(|v| HeaderValue::from_str(v).ok())
        && !req.headers().contains_key("x-request-id")
    {
        req.headers_mut().insert("x-request-id", id);
    }
    let mut remaining_ms = None;
    if let Some((deadline_ms, _)) = &lambda {
        let deadline = deadline_from(*deadline_ms, now_wall, now, margin);
        remaining_ms = Some(deadline.saturating_duration_since(now).as_millis() as u64);
        req.extensions_mut().insert(Deadline(deadline));
    }
    if let Some(c) = &caller {
        req.extensions_mut().insert(Caller(c.clone()));
    }
    tracing::info!(
        caller = caller.as_deref().unwrap_or("-"),
        aws_request_id = lambda.as_ref().map_or("-", |(_, id)| id.as_str()),
        apigw_request_id = apigw_id.as_deref().unwrap_or("-"),
        run_budget_ms = remaining_ms,
        "invocation"
    );
    let resp = next.run(req).await;
    crate::telemetry::metrics::max_rss();
    resp
}

/// `name/version` of the agent a path like `/{name}/{version}[/…]` names.
pub fn agent_in_path(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Some(format!("{n}/{v}")),
        _ => None,
    }
}

/// Middleware: lets the request through only with an API key that may call the agent in its
/// path. 401 for a missing or unknown key, 403 for a known key without access to the agent;
/// the body names neither the key nor which check failed beyond that.
pub async fn require_api_key(
    State(auth): State<Arc<ApiKeyAuthorizer>>,
    mut req: Request,
    next: Next,
) -> Response {
    let key = req.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let agent = agent_in_path(req.uri().path());
    match auth.authorize(key.as_deref(), agent.as_deref()).await {
        Decision::Allowed { caller } => {
            tracing::info!(caller = %caller, "API key accepted");
            req.extensions_mut().insert(Caller(caller));
            next.run(req).await
        }
        Decision::Denied(denial) => {
            tracing::warn!(reason = ?denial, agent = agent.as_deref().unwrap_or("-"), "request denied");
            let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            let (code, message) = if status == StatusCode::FORBIDDEN {
                ("forbidden", "this API key may not call this agent")
            } else {
                ("unauthorized", "missing or invalid API key (x-api-key header)")
            };
            let rid = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
            let body = json!({"error": {"status": status.as_u16(), "code": code, "message": message, "request_id": rid}});
            (status, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_keeps_a_margin_and_never_lies_in_the_past_of_now() {
        let now = Instant::now();
        let t = 1_800_000_000_000; // 2027, in epoch milliseconds
        let wall = UNIX_EPOCH + Duration::from_millis(t);
        let margin = Duration::from_millis(500);
        assert_eq!(deadline_from(t + 3_000, wall, now, margin), now + Duration::from_millis(2_500));
        assert_eq!(deadline_from(t + 200, wall, now, margin), now, "less left than the margin");
        assert_eq!(deadline_from(t - 1_000, wall, now, margin), now, "already past");
        // cargo lambda watch sends 600000: ten minutes from now, not 1970.
        assert_eq!(deadline_from(600_000, wall, now, margin), now + Duration::from_millis(599_500));
    }

    #[test]
    fn agents_are_read_from_the_path() {
        assert_eq!(agent_in_path("/chat/1.0/sse").as_deref(), Some("chat/1.0"));
        assert_eq!(agent_in_path("/chat/1.0").as_deref(), Some("chat/1.0"));
        assert_eq!(agent_in_path("/health"), None);
        assert_eq!(agent_in_path("//x"), None);
    }
}
