//! `GET /oauth/callback`: where an authorization server sends the caller's browser back after a
//! challenge. Finishes the exchange (PKCE verifier, `iss`, audience) and keeps the caller's
//! tokens; the caller then sends its request again (the challenge's `resume_url`). Answers as
//! Teal's callback does: `{status, message, server_name, scopes, expires_at}`.
//!
//! It needs no API key (a browser comes here, sent by the authorization server): the `state`
//! is what proves the flow, a random value that works once and expires with the flow. Nothing
//! in the answer or the log holds a code, a token or the state.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::SharedState;
use crate::oauth::OAuthError;

/// `GET /oauth/callback`
pub fn oauth_callback_router() -> Router<SharedState> {
    Router::new().route("/oauth/callback", get(callback))
}

/// The redirect's query: `code` and `state`, `iss` (RFC 9207), or `error` (the user said no).
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({"status": "error", "message": message}))).into_response()
}

async fn callback(State(state): State<SharedState>, Query(query): Query<CallbackQuery>) -> Response {
    if let Some(error) = &query.error {
        let error: String =
            error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return answer(StatusCode::BAD_REQUEST, &format!("the authorization server answered error={error}"));
    }
    let (Some(code), Some(flow)) = (query.code.as_deref(), query.state.as_deref()) else {
        return answer(StatusCode::BAD_REQUEST, "code and state are required");
    };
    let Some(oauth) = state.mcp.oauth() else {
        return answer(StatusCode::NOT_FOUND, "no MCP server of this deployment uses OAuth");
    };
    let registry = state.registry();
    let find = |name: &str, url: &str| {
        registry
            .iter()
            .flat_map(|agent| agent.mcp_servers())
            .find(|s| s.name == name && s.url.as_str() == url && s.oauth.is_some())
            .cloned()
    };
    match oauth.complete(find, code, flow, query.iss.as_deref()).await {
        Ok(done) => Json(serde_json::json!({
            "status": "success",
            "message": format!("Successfully authenticated to {}", done.server_name),
            "server_name": done.server_name,
            "scopes": done.scopes,
            "expires_at": done.expires_at,
        }))
        .into_response(),
        Err(OAuthError::UnknownState) => {
            answer(StatusCode::BAD_REQUEST, "Invalid or expired state parameter")
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "OAuth callback failed");
            answer(StatusCode::BAD_GATEWAY, &format!("OAuth callback failed: {e}"))
        }
    }
}
