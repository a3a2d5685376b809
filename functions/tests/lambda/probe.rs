//! The `mcp-probe` function fed `events/mcp-probe.json`: two real filesystem MCP servers, both
//! found up; then one is stopped (its process's server shut down, the port closed) and the next
//! probe finds it down while the other stays up, each judged, logged and published as
//! `teal_mcp_server_up` through the same EMF exporter the function installs.

use std::collections::BTreeMap;

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use teal_core::lambda::{self, Endpoint};
use teal_core::settings::Env;

use teal_mcp_filesystem::{FsConfig, SessionMode};

use crate::helpers::{Stack, event_text, repo, secrets};

/// A second real filesystem MCP server, and what stops it (the handle ends once it has).
fn start_mcp() -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let fs = FsConfig::new(repo().join("examples/data")).expect("examples/data");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.await;
        };
        teal_mcp_filesystem::serve(listener, fs, SessionMode::Stateless, stop).await.expect("MCP server");
    });
    (url, stop, served)
}

/// `teal_mcp_server_up` and the number of probe durations for `server` in `docs`.
fn up(docs: &[serde_json::Value], server: &str) -> (Option<f64>, Option<usize>) {
    let doc = docs
        .iter()
        .find(|d| d["server"] == server && d.get("teal_mcp_server_up").is_some())
        .unwrap_or_else(|| panic!("no teal_mcp_server_up for {server} in {docs:?}"));
    assert_eq!(doc["function"], "teal-mcp-probe");
    (doc["teal_mcp_server_up"].as_f64(), doc["teal_mcp_probe_duration"].as_array().map(Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_the_live_server_up_and_the_stopped_one_down() {
    let collector =
        teal_core::telemetry::emf::builder("teal-mcp-probe").init().expect("the only metrics recorder");
    teal_core::telemetry::metrics::describe();
    let stack = Stack::start().await;
    let live = &stack.env["TEAL_BUNDLED_FS_URL"];
    let (second, stop, served) = start_mcp();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("probed.yaml"),
        format!(
            "apiVersion: skagents/v1\nkind: Chat\nservice_name: probed\nversion: 1\nspec:\n  agent:\n    name: default\n    model: m\n    system_prompt: hi\n    mcp_servers:\n      - name: live\n        url: {live}\n        timeout: 5\n      - name: stopped\n        url: {second}\n        timeout: 5\n"
        ),
    )
    .expect("write config");
    let mut env = stack.env.clone();
    env.insert("TA_SERVICE_CONFIG".into(), dir.path().display().to_string());
    let state =
        lambda::boot_state_with(Endpoint::McpProbe, &Env::from(env), secrets()).await.expect("cold start");
    let payload: serde_json::Value = serde_json::from_str(&event_text("mcp-probe.json")).expect("event JSON");
    let probe = || lambda::probe::handle(&state, LambdaEvent::new(payload.clone(), Context::default()));
    // The EMF documents the collector holds since its last flush.
    let flush = || -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        collector.flush(&mut out).expect("flush");
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("EMF JSON"))
            .collect()
    };

    // Both servers running: both up.
    let answer = probe().await.expect("a probe answers");
    assert!(answer.up, "{:?}", answer.servers);
    let checks: BTreeMap<&str, _> = answer.servers.iter().map(|c| (c.name.as_str(), c)).collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    for name in ["mcp:live", "mcp:stopped"] {
        assert!(checks[name].ok && checks[name].tools.is_some_and(|n| n >= 10), "{checks:?}");
    }
    let docs = flush();
    assert_eq!(up(&docs, "live"), (Some(1.0), Some(1)));
    assert_eq!(up(&docs, "stopped"), (Some(1.0), Some(1)));

    // The second server stops: its port closes once the task has ended.
    stop.send(()).expect("the server is running");
    served.await.expect("the MCP server stopped cleanly");
    let answer = probe().await.expect("a down server is a result, not a function error");
    assert!(!answer.up);
    let checks: BTreeMap<&str, _> = answer.servers.iter().map(|c| (c.name.as_str(), c)).collect();
    assert!(checks["mcp:live"].ok && checks["mcp:live"].tools.is_some_and(|n| n >= 10), "{checks:?}");
    let down = checks["mcp:stopped"];
    assert!(!down.ok && down.error.as_deref().is_some_and(|e| e.contains("stopped")), "{down:?}");
    let docs = flush();
    assert_eq!(up(&docs, "live"), (Some(1.0), Some(1)));
    assert_eq!(up(&docs, "stopped"), (Some(0.0), Some(1)), "McpServerUp 0 for the stopped server");
}
