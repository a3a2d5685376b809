//! What the SSE route adds to a streamed answer: time to first token at the client minus the
//! LLM's own time to first token, and the delay each later token takes from the LLM to the
//! client.
//!
//! `cargo run --release -p teal-core --example stream_overhead [-- RUNS [BASE_URL]]`
//! (default 50 runs). Starts a fake OpenAI-compatible LLM on loopback that streams 20 text
//! deltas (first after 30 ms, then one every 5 ms) and stamps each with the instant it wrote it.
//! Without BASE_URL the real API router runs in this process (offline stores, one `plain` agent)
//! and the client posts to `/plain/1/sse`; with BASE_URL (e.g. a `cargo lambda watch` function
//! URL path, `http://127.0.0.1:9000/lambda-url/teal-stream`) the fake listens on
//! `TEAL_FAKE_LLM_PORT` (default 9911) and the function must be started with
//! `TA_BASE_URL=http://127.0.0.1:9911/v1`. Prints medians and p95 of:
//! - TTFT overhead = (client's first `partial-response` - request sent)
//!   - (fake's first delta written - fake's request received);
//! - per-token delay = client's receipt of delta i - fake's write of delta i (i > 0).
//!
//! The TTFT overhead is the sum of two legs, printed too: the request's (request sent -> the
//! fake receives the LLM call: routing, auth, agent load, and under `cargo lambda watch` the
//! emulator handing the event to the function) and the first token's (fake writes it -> client
//! reads it). `scripts/stream-ttft.sh` runs the `cargo lambda watch` case.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use futures::StreamExt;
use serde_json::json;
use teal_core::bootstrap;
use teal_core::llm::{Llm, OpenAiClient, OpenAiSettings};
use teal_core::secrets::EnvSecretStore;
use teal_core::settings::{Env, Settings};

const DELTAS: usize = 20;
const FIRST: Duration = Duration::from_millis(30);
const GAP: Duration = Duration::from_millis(5);

/// What the fake saw of the last request: when it arrived and when each delta was written.
#[derive(Default)]
struct Stamps {
    received: Option<Instant>,
    written: Vec<Instant>,
}

async fn answer(State(stamps): State<Arc<Mutex<Stamps>>>, _body: Bytes) -> impl IntoResponse {
    {
        let mut s = stamps.lock().unwrap_or_else(|p| p.into_inner());
        *s = Stamps { received: Some(Instant::now()), written: Vec::new() };
    }
    let frames = futures::stream::unfold(0usize, move |i| {
        let stamps = stamps.clone();
        async move {
            if i > DELTAS {
                return None;
            }
            let data = if i == DELTAS {
                tokio::time::sleep(GAP).await;
                "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]"
                    .to_owned()
            } else {
                tokio::time::sleep(if i == 0 { FIRST } else { GAP }).await;
                stamps.lock().unwrap_or_else(|p| p.into_inner()).written.push(Instant::now());
                json!({"choices": [{"index": 0, "delta": {"content": format!("t{i} ")}}]}).to_string()
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(format!("data: {data}\n\n"))), i + 1))
        }
    });
    ([("content-type", "text/event-stream")], Body::from_stream(frames))
}

async fn in_process_api(llm_uri: &str) -> Result<String, Box<dyn std::error::Error>> {
    let configs = tempfile::tempdir()?;
    std::fs::write(
        configs.path().join("plain.yaml"),
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: plain\nversion: 1\nspec:\n  agent:\n    model: m\n    system_prompt: s\n",
    )?;
    let mut llm = OpenAiSettings::new(format!("{llm_uri}/v1").parse()?);
    llm.api_key = Some("sk-bench".to_owned().into());
    let env = Env::from_pairs(std::iter::empty::<(&str, &str)>());
    let settings = Settings::read(&env)?;
    let (registry, _) = bootstrap::load_registry(configs.path(), env.vars())?;
    let secrets: Arc<dyn teal_core::secrets::SecretStore> = Arc::new(EnvSecretStore::new());
    let stores = bootstrap::build_stores(&settings, secrets.clone()).await?;
    let tools = bootstrap::load_tool_sources(&settings, &registry).await?;
    let state = Arc::new(bootstrap::build_state(
        &settings,
        registry,
        Arc::new(Llm::OpenAi(OpenAiClient::new(llm)?)),
        secrets,
        stores,
        tools,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = teal_core::api::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    std::mem::forget(configs);
    Ok(base)
}

/// One line: `label`'s median and p95 in milliseconds.
fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms.get(((ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    println!("{label}: median {:.3} ms, p95 {:.3} ms", at(0.5), at(0.95));
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let external = args.get(1).cloned();
    let stamps = Arc::new(Mutex::new(Stamps::default()));
    let fake = Router::new().route("/v1/chat/completions", post(answer)).with_state(stamps.clone());
    let port = match &external {
        Some(_) => std::env::var("TEAL_FAKE_LLM_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9911),
        None => 0,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let llm_uri = format!("http://{}", listener.local_addr()?);
    // A real LLM endpoint pushes each chunk out at once; so does the fake (no Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, fake).await;
    });
    let base = match external {
        Some(b) => b,
        None => in_process_api(&llm_uri).await?,
    };
    // A run takes ~0.15 s; a function that died (or never booted) fails the run instead of hanging.
    let http = reqwest::Client::builder().tcp_nodelay(true).timeout(Duration::from_secs(30)).build()?;
    let (mut ttft, mut request_leg, mut token_leg, mut per_token) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let body = json!({"chat_history": [{"role": "user", "content": format!("run {run}")}]});
        let sent = Instant::now();
        let resp = http
            .post(format!("{base}/plain/1/sse"))
            .header("x-api-key", "teal-local-test-key-0001")
            .header("cache-control", "no-cache")
            .json(&body)
            .send()
            .await?;
        let mut events = std::pin::pin!(sse_stream::SseStream::from_bytes_stream(resp.bytes_stream()));
        let mut got = Vec::new();
        while let Some(event) = events.next().await {
            if event?.event.as_deref() == Some("partial-response") {
                got.push(Instant::now());
            }
        }
        let s = stamps.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(received), Some(first)) = (s.received, s.written.first()) else {
            return Err("the fake LLM was not called".into());
        };
        if got.len() != s.written.len() {
            return Err(format!("{} partial responses for {} deltas", got.len(), s.written.len()).into());
        }
        if run == 0 {
            continue; // warm-up: connections, first agent load
        }
        let client_ttft = got[0].duration_since(sent).as_secs_f64() * 1e3;
        let llm_ttft = first.duration_since(received).as_secs_f64() * 1e3;
        ttft.push(client_ttft - llm_ttft);
        request_leg.push(received.duration_since(sent).as_secs_f64() * 1e3);
        token_leg.push(got[0].duration_since(*first).as_secs_f64() * 1e3);
        for (at, written) in got.iter().zip(&s.written).skip(1) {
            per_token.push(at.duration_since(*written).as_secs_f64() * 1e3);
        }
    }
    println!("{runs} runs of {DELTAS} deltas through {base}/plain/1/sse");
    report("TTFT overhead (client TTFT - LLM TTFT)", ttft);
    report("  request leg (sent -> LLM called)", request_leg);
    report("  first-token leg (LLM wrote -> client read)", token_leg);
    report("per-token delay (LLM write -> client read)", per_token);
    Ok(())
}
