//! Both session modes over real HTTP, the raw wire shape of the stateless mode, `/health`, the
//! health-check client and the `Host` allow-list.

use std::time::Duration;

use serde_json::{Value, json};
use teal_mcp_filesystem::{ServerOptions, SessionMode, check_health};

use crate::helpers::{Error, Outcome, call, post_mcp, spawn, spawn_with};

fn read_file_call(id: u64, path: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": path}}
    })
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn both_session_modes_serve_the_tools_to_an_rmcp_client() -> Result<(), Error> {
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let server = spawn(mode).await?;
        let client = server.client().await?;
        assert_eq!(client.list_all_tools().await?.len(), 14, "{mode:?}");
        assert_eq!(
            call(&client, "write_file", json!({"path": "m.txt", "content": "mode"})).await?,
            Outcome::ok("Successfully wrote to m.txt"),
            "{mode:?}"
        );
        assert_eq!(
            call(&client, "read_file", json!({"path": "m.txt"})).await?,
            Outcome::ok("mode"),
            "{mode:?}"
        );
        assert_eq!(
            call(&client, "read_file", json!({"path": "../m.txt"})).await?,
            Outcome::err("access denied: ../m.txt resolves outside the allowed directories"),
            "{mode:?}"
        );
        client.cancel().await?;
    }
    Ok(())
}

#[tokio::test]
async fn stateful_mode_issues_a_session_id_and_requires_it() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}
        }
    });
    let response = post_mcp(&server, &init).await?;
    assert_eq!(response.status(), 200);
    let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(!session.is_empty(), "initialize must hand out Mcp-Session-Id");

    let response = post_mcp(&server, &read_file_call(2, "x.txt")).await?;
    assert_eq!(response.status(), 400, "a tools/call without a session is rejected");
    Ok(())
}

#[tokio::test]
async fn stateless_mode_answers_a_tools_call_without_initialize_with_json() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateless).await?;
    server.put("hello.txt", "hi there")?;

    let response = post_mcp(&server, &read_file_call(7, "hello.txt")).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/json");
    assert!(response.headers().get("mcp-session-id").is_none());
    let body: Value = response.json().await?;
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["content"], json!([{"type": "text", "text": "hi there"}]));
    assert_ne!(body["result"]["isError"], json!(true));

    // A refusal is still a 200 with a JSON result, flagged isError.
    let response = post_mcp(&server, &read_file_call(8, "../../etc/passwd")).await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["id"], 8);
    assert_eq!(body["result"]["isError"], json!(true));
    assert_eq!(
        body["result"]["content"][0]["text"],
        "access denied: ../../etc/passwd resolves outside the allowed directories"
    );
    Ok(())
}

#[tokio::test]
async fn stateless_mode_answers_arguments_that_miss_the_schema_with_an_error_result() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateless).await?;
    let call = json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"file": "x"}}
    });
    let response = post_mcp(&server, &call).await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["id"], 3);
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    assert_eq!(
        body["result"]["content"][0]["text"],
        "failed to deserialize parameters: unknown field `file`, expected one of `path`, `head`, `tail`"
    );
    Ok(())
}

#[tokio::test]
async fn health_answers_ok() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateless).await?;
    let response = reqwest::get(server.url("/health")).await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body, json!({"status": "ok"}));
    Ok(())
}

#[tokio::test]
async fn only_allowed_host_headers_reach_the_mcp_endpoint() -> Result<(), Error> {
    let post = |url: String, host: &'static str| {
        reqwest::Client::new()
            .post(url)
            .header("Host", host)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(read_file_call(1, "a.txt").to_string())
            .send()
    };

    let default = spawn(SessionMode::Stateless).await?;
    assert_eq!(post(default.mcp_url(), "evil.example").await?.status(), 403);
    assert_eq!(post(default.mcp_url(), "localhost").await?.status(), 200);

    let custom =
        spawn_with(ServerOptions::new(SessionMode::Stateless).with_allowed_hosts(["mcp.internal"])).await?;
    assert_eq!(post(custom.mcp_url(), "mcp.internal").await?.status(), 200);
    assert_eq!(post(custom.mcp_url(), "localhost").await?.status(), 403);
    Ok(())
}

#[tokio::test]
async fn the_healthcheck_flag_logic_passes_on_a_live_server_and_fails_on_a_closed_port() -> Result<(), Error>
{
    let server = spawn(SessionMode::Stateless).await?;
    let addr = server.addr;
    let live = tokio::task::spawn_blocking(move || check_health(addr, Duration::from_secs(3))).await?;
    assert_eq!(live, Ok(()));
    // An unspecified bind address is checked on loopback.
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], addr.port()));
    assert_eq!(tokio::task::spawn_blocking(move || check_health(any, Duration::from_secs(3))).await?, Ok(()));

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };
    let dead = tokio::task::spawn_blocking(move || check_health(closed, Duration::from_secs(3))).await?;
    let message = dead.err().unwrap_or_default();
    assert!(message.starts_with(&format!("health check of {closed} failed to connect: ")), "{message}");

    // Something that answers, but not 200.
    let not_health = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let wrong = not_health.local_addr()?;
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if let Ok((mut socket, _)) = not_health.accept().await {
            let mut request = [0u8; 512];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let refused = tokio::task::spawn_blocking(move || check_health(wrong, Duration::from_secs(3))).await?;
    assert_eq!(
        refused,
        Err(format!("health check of {wrong} got \"HTTP/1.1 503 Service Unavailable\", expected status 200"))
    );
    Ok(())
}
