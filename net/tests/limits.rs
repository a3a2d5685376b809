//! The serve loop against real sockets on loopback: idle, slow-header and slow-body clients are
//! cut at their limits, and the connection cap holds.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use teal_net::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_len(req: axum::extract::Request) -> (StatusCode, String) {
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => (StatusCode::OK, b.len().to_string()),
        Err(e) => {
            let inner = e.into_inner();
            let timed_out =
                std::iter::successors(Some(&*inner as &(dyn std::error::Error + 'static)), |e| e.source())
                    .any(|e| {
                        e.downcast_ref::<std::io::Error>()
                            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                    });
            (if timed_out { StatusCode::REQUEST_TIMEOUT } else { StatusCode::BAD_REQUEST }, inner.to_string())
        }
    }
}

async fn start(limits: Limits) -> String {
    let app = Router::new()
        .route("/health", get(|| async { Bytes::from_static(b"ok") }))
        .route("/echo", post(echo_len));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(teal_net::serve(listener, app, limits, std::future::pending()));
    addr
}

fn limits(ms: u64, max_connections: usize) -> Limits {
    Limits { header_read: Duration::from_millis(ms), body_read: Duration::from_millis(ms), max_connections }
}

/// Reads until the server closes; `None` if it has not closed within `bound`.
async fn read_to_close(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(bound, stream.read_to_end(&mut out)).await.ok().map(|r| {
        let _ = r;
        out
    })
}

#[tokio::test]
async fn an_idle_connection_and_a_slow_header_are_closed_at_the_header_limit() {
    let addr = start(limits(300, 16)).await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    assert!(read_to_close(&mut idle, Duration::from_secs(5)).await.is_some(), "idle connection still open");
    assert!(read_to_close(&mut slow, Duration::from_secs(5)).await.is_some(), "slow header still open");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the limit: {:?}",
        started.elapsed()
    );

    // Keep-alive: after an answer, an idle connection is closed at the same limit.
    let mut kept = TcpStream::connect(&addr).await.expect("connect");
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let got = read_to_close(&mut kept, Duration::from_secs(5)).await.expect("closed after the idle limit");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn a_body_that_stops_half_way_fails_with_a_timeout_at_the_body_limit() {
    let addr = start(limits(300, 16)).await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab").await.expect("write");
    let got = read_to_close(&mut s, Duration::from_secs(5)).await.expect("answered and closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request body not received within 0.3 s"), "{text}");

    // A complete body is read as usual.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab")
        .await
        .expect("write");
    let got = read_to_close(&mut s, Duration::from_secs(5)).await.expect("answered");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_a_connection_closes() {
    let addr = start(limits(800, 2)).await;
    let _a = TcpStream::connect(&addr).await.expect("connect");
    let _b = TcpStream::connect(&addr).await.expect("connect");
    let started = Instant::now();
    let mut c = TcpStream::connect(&addr).await.expect("connect (backlog)");
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let got = read_to_close(&mut c, Duration::from_secs(10)).await.expect("answered once a slot freed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // Served only after the two idle connections were cut at the idle limit.
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
}
