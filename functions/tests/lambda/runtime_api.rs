//! Where a warm invoke's ~40 ms stall under `cargo lambda watch` comes from: our Runtime API
//! client (lambda_runtime's `PooledClient`, whose connector leaves `TCP_NODELAY` off) or the
//! server it talks to. A minimal Runtime API server on loopback answers `GET /next` the way an
//! emulator does (the head, then the event in a second write) with `TCP_NODELAY` on or off on
//! its socket; the client polls it with `TCP_NODELAY` on or off on ours. A stall is an
//! exchange (`GET /next` + `POST /response`) over 30 ms: Nagle holding the server's second
//! write until our delayed ACK (~40 ms on Linux).

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use lambda_runtime_api_client::{PooledClient, body::Body, build_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const EVENT: &str = r#"{"version":"2.0","routeKey":"GET /health","rawPath":"/health","requestContext":{"http":{"method":"GET"}}}"#;

/// Reads one request (head, and the body its Content-Length announces); `None` at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The minimal Runtime API: `/next` answered in two writes, `/response` with 202.
async fn runtime_api(server_nodelay: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            s.set_nodelay(server_nodelay).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = read_request(&mut s, &mut buf).await {
                    if head.starts_with("GET ") {
                        let h = format!(
                            "HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: r-1\r\nlambda-runtime-deadline-ms: 9999999999999\r\n\
                             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            EVENT.len()
                        );
                        if s.write_all(h.as_bytes()).await.is_err()
                            || s.write_all(EVENT.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    } else if s
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// `n` warm exchanges; how many took over 30 ms, and the median.
async fn exchanges(addr: &str, client_nodelay: bool, n: usize) -> (usize, Duration) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(client_nodelay);
    let client = PooledClient::builder()
        .with_connector(connector)
        .with_endpoint(format!("http://{addr}").parse().expect("uri"))
        .build();
    let mut took = Vec::new();
    for i in 0..=n {
        let started = Instant::now();
        let next =
            build_request().uri("/2018-06-01/runtime/invocation/next").body(Body::empty()).expect("req");
        let event =
            client.call(next).await.expect("next").into_body().collect().await.expect("event").to_bytes();
        assert_eq!(event.len(), EVENT.len());
        let answer = build_request()
            .method("POST")
            .uri("/2018-06-01/runtime/invocation/r-1/response")
            .body(Body::from(r#"{"statusCode":200,"body":"{\"status\":\"ok\"}"}"#.to_owned()))
            .expect("req");
        let resp = client.call(answer).await.expect("response");
        assert_eq!(resp.status(), 202);
        let _ = resp.into_body().collect().await;
        if i > 0 {
            took.push(started.elapsed());
        }
    }
    took.sort();
    (took.iter().filter(|t| **t > Duration::from_millis(30)).count(), took[n / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_invoke_stall_is_the_servers_nagle_not_our_runtime_client() {
    let mut results = Vec::new();
    for server_nodelay in [false, true] {
        let addr = runtime_api(server_nodelay).await;
        for client_nodelay in [false, true] {
            let (stalls, median) = exchanges(&addr, client_nodelay, 20).await;
            results.push((server_nodelay, client_nodelay, stalls, median));
        }
    }
    let report: Vec<String> = results
        .iter()
        .map(|(s, c, n, m)| format!("server nodelay {s}, client nodelay {c}: {n}/20 stalled, p50 {m:?}"))
        .collect();
    eprintln!("{}", report.join("\n"));
    for (server_nodelay, _, stalls, _) in &results {
        if *server_nodelay {
            // A server that sends without Nagle: no stall, whatever our socket says.
            assert!(*stalls <= 2, "{report:#?}");
        } else {
            // A server with Nagle on that writes head and event apart: it stalls, whatever our
            // socket says (Linux quick-ACKs some, so not every one).
            assert!(*stalls >= 5, "{report:#?}");
        }
    }
}
