//! `teal serve`'s `GET /metrics` scraped by a real Prometheus (the Debian `prometheus` package,
//! on PATH) with the shipped `infra/prometheus/prometheus.yml` and its alert rules: after one
//! invoke, the series come back through Prometheus's HTTP API.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Killed, teal};

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

/// `teal serve` on a free port; its base URL.
fn serve() -> (Killed, String) {
    let mut cmd = teal();
    cmd.args(["serve", "--addr", "127.0.0.1:0"]);
    super::serve(cmd)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Asks Prometheus `query` until it gives a non-empty vector (or 30 s pass).
async fn query(http: &reqwest::Client, prom: &str, q: &str) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let url =
            reqwest::Url::parse_with_params(&format!("{prom}/api/v1/query"), [("query", q)]).expect("url");
        let resp = http.get(url).send().await;
        if let Ok(r) = resp
            && let Ok(v) = r.json::<Value>().await
            && let Some(result) = v["data"]["result"].as_array()
            && !result.is_empty()
        {
            return result.clone();
        }
        assert!(Instant::now() < until, "Prometheus never had {q}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_teal_serve_with_the_shipped_config_and_reads_back_a_run() {
    let (_served, base) = serve();
    let http = reqwest::Client::new();
    let body =
        json!({"items": [{"content_type": "text", "content": "fs_read_file {\"path\": \"hello.txt\"}"}]});
    let resp = http.post(format!("{base}/fs-assistant/0.1")).json(&body).send().await.expect("invoke");
    assert_eq!(resp.status(), 200);
    let missing = http.post(format!("{base}/nobody/1")).json(&body).send().await.expect("invoke");
    assert_eq!(missing.status(), 404);

    // `/ready` runs the probe at once (the minutely one first runs a minute after the start).
    let ready = http.get(format!("{base}/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    let text = http.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(text.contains("# TYPE teal_requests_total counter"), "{text}");
    assert!(text.contains("teal_max_rss_bytes "), "{text}");

    // The shipped config, pointed at this server and scraping every second.
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(repo("infra/prometheus/prometheus.yml")).expect("prometheus.yml");
    let target = base.trim_start_matches("http://");
    assert!(shipped.contains("127.0.0.1:8000") && shipped.contains("15s"), "{shipped}");
    let config = shipped.replace("127.0.0.1:8000", target).replace("15s", "1s");
    std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
    std::fs::copy(repo("infra/prometheus/alerts.yml"), dir.path().join("alerts.yml")).expect("copy rules");
    let port = free_port();
    let prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus on PATH (apt-get install prometheus)"),
    );
    let api = format!("http://127.0.0.1:{port}");

    let requests = query(&http, &api, r#"teal_requests_total{agent="fs-assistant",version="0.1"}"#).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["metric"]["status"], "2xx");
    assert_eq!(requests[0]["metric"]["job"], "teal");
    assert_eq!(requests[0]["value"][1], "1");
    let unknown = query(&http, &api, r#"teal_requests_total{agent="-",status="4xx"}"#).await;
    assert_eq!(unknown[0]["value"][1], "1", "an unknown agent is not a label value of its own");
    let tools =
        query(&http, &api, r#"teal_tool_calls_total{server="fs",tool="fs_read_file",status="ok"}"#).await;
    assert_eq!(tools[0]["value"][1], "1");
    let llm = query(&http, &api, "teal_llm_calls_total").await;
    assert_eq!(llm[0]["metric"]["model"], "gpt-4o-mini");
    assert_eq!(llm[0]["value"][1], "2", "one call for the tool, one for the answer");
    let latency = query(&http, &api, r#"teal_request_duration_seconds_count{agent="fs-assistant"}"#).await;
    assert_eq!(latency[0]["value"][1], "1");
    let up = query(&http, &api, r#"teal_mcp_server_up{server="fs"}"#).await;
    assert_eq!(up[0]["value"][1], "1", "the probe found the bundled server up");

    let rules: Value =
        http.get(format!("{api}/api/v1/rules")).send().await.expect("rules").json().await.expect("json");
    let mut names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("the shipped rules are loaded")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["AgentHighErrorRate", "AgentMemoryUsage", "MCPServerDown"]);
    drop(prom);
}
