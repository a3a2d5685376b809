//! Readiness: a real round trip to every configured MCP server ([`super::probe`]), the
//! session store and Redis, concurrently. Failures are named in the result and logged; the
//! route turns "not ready" into a 503.

use std::future::Future;
use std::time::Instant;

use crate::api::types::{Check, Readiness};
use crate::service::AppState;
use crate::telemetry::error_chain;

/// Checks every distinct MCP server of every agent, the session store and Redis.
pub async fn readiness(state: &AppState) -> Readiness {
    let mcp = super::probe::probe(state);
    let sessions = timed(format!("sessions:{}", state.sessions.backend()), async {
        state.sessions.ping().await.map(|()| None).map_err(|e| error_chain(&e))
    });
    let redis = async {
        let redis = state.redis.as_ref()?;
        Some(
            timed("redis".to_owned(), async {
                redis.ping().await.map(|()| None).map_err(|e| error_chain(&e))
            })
            .await,
        )
    };
    let (mut checks, sessions, redis) = futures::join!(mcp, sessions, redis);
    checks.push(sessions);
    checks.extend(redis);
    Readiness::from_checks(checks)
}

/// Runs one check and times it. `Ok(Some(n))` carries a tool count.
async fn timed(name: String, check: impl Future<Output = Result<Option<usize>, String>>) -> Check {
    let started = Instant::now();
    let result = check.await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(tools) => Check { name, ok: true, tools, error: None, ms },
        Err(error) => Check { name, ok: false, tools: None, error: Some(error), ms },
    }
}
