//! The `mcp-probe` function fed `events/mcp-probe.json`: one live MCP server (the real
//! filesystem server) and one stopped one, each judged, logged and published as
//! `teal_mcp_server_up` through the same EMF exporter the function installs.

use std::collections::BTreeMap;

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use teal_core::lambda::{self, Endpoint};
use teal_core::settings::Env;

use crate::helpers::{Stack, event_text, secrets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_the_live_server_up_and_the_stopped_one_down() {
    let collector =
        teal_core::telemetry::emf::builder("teal-mcp-probe").init().expect("the only metrics recorder");
    teal_core::telemetry::metrics::describe();
    let stack = Stack::start().await;
    // A stopped server: nothing listens on its port any more.
    let stopped = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/mcp", listener.local_addr().expect("addr"))
    };
    let live = &stack.env["TEAL_BUNDLED_FS_URL"];
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("probed.yaml"),
        format!(
            "apiVersion: skagents/v1\nkind: Chat\nservice_name: probed\nversion: 1\nspec:\n  agent:\n    name: default\n    model: m\n    system_prompt: hi\n    mcp_servers:\n      - name: live\n        url: {live}\n        timeout: 5\n      - name: stopped\n        url: {stopped}\n        timeout: 5\n"
        ),
    )
    .expect("write config");
    let mut env = stack.env.clone();
    env.insert("TA_SERVICE_CONFIG".into(), dir.path().display().to_string());
    let state =
        lambda::boot_state_with(Endpoint::McpProbe, &Env::from(env), secrets()).await.expect("cold start");

    let payload: serde_json::Value = serde_json::from_str(&event_text("mcp-probe.json")).expect("event JSON");
    let answer = lambda::probe::handle(&state, LambdaEvent::new(payload, Context::default()))
        .await
        .expect("a down server is a result, not a function error");
    assert!(!answer.up);
    let checks: BTreeMap<&str, _> = answer.servers.iter().map(|c| (c.name.as_str(), c)).collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks["mcp:live"].ok && checks["mcp:live"].tools.is_some_and(|n| n >= 10), "{checks:?}");
    let down = checks["mcp:stopped"];
    assert!(!down.ok && down.error.as_deref().is_some_and(|e| e.contains("stopped")), "{down:?}");

    let mut out = Vec::new();
    collector.flush(&mut out).expect("flush");
    let docs: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("EMF JSON"))
        .collect();
    let up = |server: &str| {
        let doc = docs
            .iter()
            .find(|d| d["server"] == server && d.get("teal_mcp_server_up").is_some())
            .unwrap_or_else(|| panic!("no teal_mcp_server_up for {server} in {docs:?}"));
        assert_eq!(doc["function"], "teal-mcp-probe");
        (doc["teal_mcp_server_up"].as_f64(), doc["teal_mcp_probe_duration"].as_array().map(Vec::len))
    };
    assert_eq!(up("live"), (Some(1.0), Some(1)));
    assert_eq!(up("stopped"), (Some(0.0), Some(1)));
}
