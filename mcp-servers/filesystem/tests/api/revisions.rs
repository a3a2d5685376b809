//! The wire requirements of each protocol revision, checked with raw HTTP (not only through our
//! own client): 2026-07-28 is stateless (no `initialize`, no session), answers
//! `server/discover`, checks `Mcp-Method`/`Mcp-Name` against the body and gives cache hints;
//! 2025-11-25, 2025-06-18 and 2025-03-26 clients get `initialize` answered in their revision
//! (with a session in stateful mode); an unsupported `MCP-Protocol-Version` is a 400. One
//! binary, one port, every revision.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Error, TestServer, spawn};

const NEW: &str = "2026-07-28";

/// `body` POSTed to `/mcp` with `headers`.
async fn post(
    server: &TestServer,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<reqwest::Response, Error> {
    let mut request = reqwest::Client::new()
        .post(server.mcp_url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(request.send().await?)
}

/// The JSON-RPC message of a response, whether sent as JSON or as one SSE event.
async fn message(response: reqwest::Response) -> Result<Value, Error> {
    let text = response.text().await?;
    // An SSE stream may open with an empty priming event.
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:").map(str::trim))
        .find(|data| !data.is_empty())
        .unwrap_or(&text);
    Ok(serde_json::from_str(json)?)
}

/// A 2026-07-28 request: its revision, who we are and what we can do ride in `_meta`.
fn modern(id: u32, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": NEW,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-http", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test]
async fn revision_2026_07_28_is_served_without_initialize_or_session_in_both_modes() -> Result<(), Error> {
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let server = spawn(mode).await?;
        server.put("hello.txt", "hi")?;
        let headers = [("MCP-Protocol-Version", NEW)];

        let discover = post(
            &server,
            &[headers[0], ("Mcp-Method", "server/discover")],
            &modern(1, "server/discover", json!({})),
        )
        .await?;
        assert_eq!(discover.status(), 200, "{mode:?}");
        let discovered = message(discover).await?;
        let versions = &discovered["result"]["supportedVersions"];
        for v in [NEW, "2025-11-25", "2025-06-18", "2025-03-26"] {
            assert!(versions.as_array().is_some_and(|a| a.contains(&json!(v))), "{mode:?} {v}: {discovered}");
        }

        let call =
            modern(2, "tools/call", json!({"name": "read_text_file", "arguments": {"path": "hello.txt"}}));
        let answered =
            post(&server, &[headers[0], ("Mcp-Method", "tools/call"), ("Mcp-Name", "read_text_file")], &call)
                .await?;
        assert_eq!(answered.status(), 200, "{mode:?}");
        assert!(answered.headers().get("mcp-session-id").is_none(), "no session in 2026-07-28: {mode:?}");
        let result = message(answered).await?;
        assert_eq!(result["result"]["content"][0]["text"], "hi", "{mode:?}: {result}");

        let list = modern(3, "tools/list", json!({}));
        let listed =
            message(post(&server, &[headers[0], ("Mcp-Method", "tools/list")], &list).await?).await?;
        assert_eq!(listed["result"]["ttlMs"], 300_000, "{mode:?}: cache hints");
        assert_eq!(listed["result"]["cacheScope"], "public", "{mode:?}");
        assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(14));

        let lying =
            post(&server, &[headers[0], ("Mcp-Method", "tools/list"), ("Mcp-Name", "x")], &call).await?;
        assert_eq!(lying.status(), 400, "Mcp-Method must match the body: {mode:?}");
        let refused = message(lying).await?;
        assert_eq!(refused["error"]["code"], -32020, "HEADER_MISMATCH: {refused}");
    }
    Ok(())
}

#[tokio::test]
async fn older_revisions_are_answered_in_the_revision_they_ask_for() -> Result<(), Error> {
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let server = spawn(mode).await?;
        for asked in ["2025-11-25", "2025-06-18", "2025-03-26"] {
            let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "raw-http", "version": "1"}}});
            let response = post(&server, &[], &init).await?;
            assert_eq!(response.status(), 200, "{mode:?} {asked}");
            let session = response.headers().get("mcp-session-id").cloned();
            assert_eq!(session.is_some(), mode == SessionMode::Stateful, "{mode:?} {asked}");
            let result = message(response).await?;
            assert_eq!(result["result"]["protocolVersion"], asked, "{mode:?}");
        }
        // 2024-11-05 and older are answered in the newest revision that still has `initialize`.
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2099-01-01", "capabilities": {}, "clientInfo": {"name": "raw-http", "version": "1"}}});
        let answered = message(post(&server, &[], &init).await?).await?;
        assert_eq!(answered["result"]["protocolVersion"], "2025-11-25", "{mode:?}: {answered}");

        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let unknown = post(&server, &[("MCP-Protocol-Version", "1999-01-01")], &list).await?;
        assert_eq!(unknown.status(), 400, "an unsupported MCP-Protocol-Version: {mode:?}");
    }
    Ok(())
}
