//! On whose behalf the MCP pool acts during a request: the caller the authorizer vouched for
//! (its API key id; "anonymous" where none did, as on `teal serve`), and the path that was
//! called (a challenge's `resume_url`). Per-user OAuth tokens are looked up under this caller
//! only, so one caller's token never reaches a request of another; a task that runs outside a
//! request has no caller and gets no per-user token.
//!
//! A middleware sets it for the whole request ([`acting_for`]); a task spawned for the request
//! takes it along with [`carry`].

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::api::Caller;

/// Who the request acts for, and what it called.
#[derive(Debug, Clone)]
pub struct Acting {
    pub caller: Arc<str>,
    pub path: Arc<str>,
}

tokio::task_local! {
    static ACTING: Acting;
}

/// The caller of the request this task serves, if any.
pub fn current() -> Option<Acting> {
    ACTING.try_with(Acting::clone).ok()
}

/// Runs the rest of the request acting for its caller.
pub async fn acting_for(req: Request, next: Next) -> Response {
    let caller = req.extensions().get::<Caller>().map_or("anonymous", |c| c.0.as_str());
    let acting = Acting { caller: Arc::from(caller), path: Arc::from(req.uri().path()) };
    ACTING.scope(acting, next.run(req)).await
}

/// `work`, acting for the current caller (for a task spawned during a request).
pub fn carry<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let acting = current();
    async move {
        match acting {
            Some(acting) => ACTING.scope(acting, work).await,
            None => work.await,
        }
    }
}

/// `work`, acting for `acting` (tests, and adapters that know the caller themselves).
pub async fn scope<F: Future>(acting: Acting, work: F) -> F::Output {
    ACTING.scope(acting, work).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::middleware::from_fn;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// What a handler (and a task it spawns with `carry`) sees as the caller.
    async fn who() -> String {
        let direct = current().map(|a| format!("{} {}", a.caller, a.path)).unwrap_or_default();
        let spawned =
            tokio::spawn(carry(async { current().map(|a| a.caller.to_string()) })).await.ok().flatten();
        let lost = tokio::spawn(async { current().is_some() }).await.unwrap_or(true);
        format!("{direct} | {} | {lost}", spawned.unwrap_or_default())
    }

    async fn call(router: Router, caller: Option<&str>) -> String {
        let mut req = HttpRequest::get("/agents/1").body(Body::empty()).expect("request");
        if let Some(c) = caller {
            req.extensions_mut().insert(Caller(c.to_owned()));
        }
        let resp = router.oneshot(req).await.expect("infallible");
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_request_acts_for_the_caller_the_authorizer_named_and_spawned_work_carries_it() {
        let router = Router::new().route("/agents/1", get(who)).layer(from_fn(acting_for));
        assert_eq!(call(router.clone(), Some("key-alice")).await, "key-alice /agents/1 | key-alice | false");
        assert_eq!(
            call(router, None).await,
            "anonymous /agents/1 | anonymous | false",
            "no authorizer: anonymous"
        );
        assert!(current().is_none(), "outside a request nobody is acting");
    }
}
