//! The `teal` binary as a user runs it: `serve` with the example agents answers the README's
//! request through the bundled MCP server, and `validate` exits non-zero with precise messages.
//! `backup`, `backups` and `restore` have their module.

#[path = "cli/backup.rs"]
mod backup;
#[path = "cli/metrics.rs"]
mod metrics;
#[path = "cli/shutdown.rs"]
mod shutdown;
#[path = "cli/switch.rs"]
mod switch;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

pub fn teal() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_teal"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd.env_remove("TA_API_KEY").env_remove("TA_BASE_URL").env_remove("TA_SERVICE_CONFIG");
    cmd
}

/// Serves `router` on a free loopback port (a fake LLM, a receiver); its base URL.
pub async fn listen(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A child process, killed when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` (a `teal()` command with its arguments and environment set): the process and
/// the base URL it printed. The rest of its output is drained, or printing it would fail it.
pub fn serve(mut cmd: Command) -> (Killed, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn teal serve");
    let stdout = child.stdout.take().expect("stdout");
    let served = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("teal serve: listening on ").map(|b| b.trim().to_owned()))
        .expect("teal serve printed no listening line");
    std::thread::spawn(move || lines.for_each(drop));
    (served, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_the_readme_request_with_the_offline_model_through_mcp() {
    let mut child = teal()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let served = Killed(child);
    let mut banner = Vec::new();
    let mut base = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        banner.push(line.clone());
        if let Some(rest) = line.strip_prefix("teal serve: listening on ") {
            base = Some(rest.trim().to_owned());
        }
        if line.contains("no LLM configured") {
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("no listening line in:\n{}", banner.join("\n")));
    let banner = banner.join("\n");
    assert!(banner.contains("agent fs-assistant/0.1"), "{banner}");
    assert!(banner.contains("via offline (deterministic, no network)"), "{banner}");
    assert!(banner.contains("Set TA_API_KEY"), "the banner says how to switch to a real model:\n{banner}");

    let http = reqwest::Client::new();
    let body =
        json!({"items": [{"content_type": "text", "content": "fs_read_file {\"path\": \"hello.txt\"}"}]});
    let resp = http.post(format!("{base}/fs-assistant/0.1")).json(&body).send().await.expect("invoke");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    let want = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/hello.txt"))
        .expect("read");
    assert_eq!(v["output_raw"], want.as_str());
    assert_eq!(v["source"], "fs-assistant:0.1");

    let ready = http.get(format!("{base}/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    drop(served);
}

#[test]
fn validate_checks_tool_policies_and_names_a_bad_one_by_file_and_line() {
    let ok = teal().args(["validate", "examples/governance"]).output().expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("ok: 5 tool policies in examples/governance"), "{out}");

    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::copy("../examples/governance/fs-writer.yaml", dir.path().join("fs-writer.yaml")).expect("copy");
    let bad = dir.path().join("policies/bad.cedar");
    std::fs::write(&bad, "permit(principal, action, resource);\n\nforbid(principal action, resource);\n")
        .expect("write");
    let failed = teal().arg("validate").arg(dir.path()).output().expect("run");
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains(&format!("error: {}:3: unexpected token `action`", bad.display())), "{err}");
}

#[test]
fn validate_accepts_the_examples_and_rejects_a_bad_file_with_its_line() {
    let ok = teal().args(["validate", "examples/agents"]).output().expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("fs-assistant/0.1"), "{out}");
    assert!(out.contains("chat/1.0"), "{out}");

    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: x\nversion: 1\nspec:\n  agent:\n    model: m\n    \
         system_prompt: s\n    mcp_servers:\n      - name: fs\n        url: /relative/mcp\n",
    )
    .expect("write");
    let failed = teal().arg("validate").arg(&bad).output().expect("run");
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains(&format!(
            "{}:11 spec.agent.mcp_servers[0].url: relative URL without a base",
            bad.display()
        )),
        "{err}"
    );
}

/// `teal serve --config examples/governance` enforces the tool policies beside the agent, as the
/// Lambda functions do: a write outside `drafts/` is denied by the policy that names it (and never
/// reaches the filesystem server), a write under `drafts/` goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_enforces_the_tool_policies_beside_the_configs() {
    let data = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(data.path().join("drafts")).expect("mkdir");
    let mut cmd = teal();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--config", "examples/governance", "--data"])
        .arg(data.path());
    let (served, base) = serve(cmd);

    let http = reqwest::Client::new();
    let write = |path: &str| {
        let call = format!("fs_write_file {}", json!({"path": path, "content": "a note"}));
        json!({"items": [{"content_type": "text", "content": call}]})
    };
    let resp =
        http.post(format!("{base}/fs-writer/0.1")).json(&write("notes.txt")).send().await.expect("invoke");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    let out = v["output_raw"].as_str().unwrap_or_default();
    assert!(out.contains("fs-writes-under-drafts"), "the denial names the policy: {v}");
    assert!(!data.path().join("notes.txt").exists(), "a denied call never reaches the MCP server");

    let resp = http
        .post(format!("{base}/fs-writer/0.1"))
        .json(&write("drafts/note.txt"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(
        std::fs::read_to_string(data.path().join("drafts/note.txt")).ok().as_deref(),
        Some("a note"),
        "{v}"
    );
    drop(served);
}
