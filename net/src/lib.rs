//! The one serve loop of our long-running HTTP servers (`teal serve`, the filesystem MCP server
//! on Fargate): what `axum::serve` leaves open, bounded.
//!
//! `axum::serve` sets no timer, so hyper's header timeout never runs: a client that connects and
//! sends nothing, sends its headers a byte at a time, or stops half-way through its body holds
//! the connection (and its memory) for ever, and a few hundred of them starve `/health`. Here:
//! - a connection that is idle between requests or slow to send its headers is closed after
//!   [`Limits::header_read`] (hyper's header timer runs from the moment the connection is ready
//!   for a request head, so it is the keep-alive idle limit too);
//! - a request body not received in full within [`Limits::body_read`] of its head fails with an
//!   `io::ErrorKind::TimedOut` body error (the API answers 408);
//! - at most [`Limits::max_connections`] connections are served at once: past it, new ones wait
//!   in the listen backlog until one closes;
//! - every accepted socket gets `TCP_NODELAY` (small answers must not wait for a delayed ACK);
//! - on shutdown, connections finish their current request and close (graceful).
//!
//! It must not know about routes or the API's error bodies.

mod body;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

pub use body::DeadlineBody;

/// What one server tolerates from its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Idle keep-alive and time to send a request's headers.
    pub header_read: Duration,
    /// Time to send a request's body, from its head.
    pub body_read: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets open
/// connections finish their request and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read).keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_read = limits.body_read;
        let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let req = req.map(|b| axum::body::Body::new(DeadlineBody::new(b, body_read)));
            app.clone().oneshot(req)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
