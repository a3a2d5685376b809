//! `teal bench`: measures the numbers the README promises, against `teal serve` running as a
//! child process (so start-up and memory are the real process's), a fake OpenAI-compatible LLM
//! answering instantly on loopback, and the filesystem MCP server with a request counter.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Measured requests per scenario (after a warm-up).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// How many times to start the server to time start-up.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    #[arg(long, default_value = "examples/agents")]
    config: PathBuf,
    #[arg(long, default_value = "examples/data")]
    data: PathBuf,
    /// Back the servers with this Redis (response cache, sessions, shared tool catalog) and
    /// also measure cache hits and a cold process over a warm shared catalog.
    #[arg(long)]
    redis: Option<String>,
    /// Tracing on: the server exports its spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT) to a
    /// receiver on loopback that counts the exports and answers at once.
    #[arg(long)]
    otlp: bool,
}

/// The fake LLM: a tool call to `fs_read_file` when the user asks `[use-tool]` and tools are
/// offered, the final answer after a tool result, otherwise a short answer. No delay.
async fn fake_llm(Json(body): Json<Value>) -> Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let message = if last["role"] == "tool" {
        json!({"role": "assistant", "content": format!("read {} bytes", last["content"].as_str().map_or(0, str::len))})
    } else if has_tools && last["content"].as_str().is_some_and(|c| c.contains("[use-tool]")) {
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call-1", "type": "function",
            "function": {"name": "fs_read_file", "arguments": "{\"path\":\"hello.txt\"}"}
        }]})
    } else {
        json!({"role": "assistant", "content": "ok"})
    };
    let finish = if message.get("tool_calls").is_some() { "tool_calls" } else { "stop" };
    Json(json!({
        "id": "bench", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    }))
}

async fn count_requests(State(counter): State<Arc<AtomicU64>>, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    next.run(req).await
}

/// The OTLP/HTTP receiver of `--otlp`: counts exports and their bytes, answers an empty success.
async fn otlp_sink(State(seen): State<Arc<[AtomicU64; 2]>>, body: axum::body::Bytes) -> &'static [u8] {
    seen[0].fetch_add(1, Ordering::Relaxed);
    seen[1].fetch_add(body.len() as u64, Ordering::Relaxed);
    &[]
}

async fn spawn_local(router: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

struct Server {
    child: Child,
    base: String,
}

/// Starts `teal serve` and returns once it printed its address, with the time to first `/health`.
async fn start_server(
    args: &BenchArgs,
    llm: &str,
    fs: &str,
    http: &reqwest::Client,
    redis: Option<(&str, &str)>,
    otlp: Option<&str>,
) -> anyhow::Result<(Server, Duration)> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    if let Some((url, prefix)) = redis {
        cmd.env("TA_REDIS_URL", url).env("TA_REDIS_PREFIX", prefix);
    }
    if let Some(endpoint) = otlp {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    let mut child = cmd
        .args(["serve", "--addr", "127.0.0.1:0", "--no-bundled-fs", "--config"])
        .arg(&args.config)
        .env("TA_BASE_URL", format!("{llm}/v1"))
        .env("TA_API_KEY", "bench-key")
        .env(crate::serve::BUNDLED_FS_VAR, format!("{fs}/mcp"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting teal serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let Some(line) = lines.next_line().await? else { bail!("teal serve exited before listening") };
        if let Some(rest) = line.strip_prefix("teal serve: listening on ") {
            break rest.trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let health = http.get(format!("{base}/health")).send().await?;
    if !health.status().is_success() {
        bail!("/health answered {}", health.status());
    }
    Ok((Server { child, base }, started.elapsed()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

async fn timed(n: usize, mut f: impl AsyncFnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

async fn invoke(http: &reqwest::Client, url: &str, text: &str) -> anyhow::Result<()> {
    let body = json!({"items": [{"content_type": "text", "content": text}]});
    let resp = http.post(url).json(&body).send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {v}");
    }
    Ok(())
}

/// Stops `server` as a container runtime does (SIGTERM) and waits for it to exit.
async fn stop_gracefully(mut server: Server, pid: u32) -> anyhow::Result<()> {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("kill -TERM")?;
    anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
    tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .context("teal serve did not exit within 10 s of SIGTERM")??;
    Ok(())
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let llm = spawn_local(Router::new().route("/v1/chat/completions", post(fake_llm))).await?;
    let mcp_posts = Arc::new(AtomicU64::new(0));
    let fs = teal_mcp_filesystem::FsConfig::new(&args.data)?;
    let fs_router = teal_mcp_filesystem::router(fs, teal_mcp_filesystem::SessionMode::Stateful)
        .layer(axum::middleware::from_fn_with_state(mcp_posts.clone(), count_requests));
    let fs_url = spawn_local(fs_router).await?;
    let otlp_seen = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let otlp = match args.otlp {
        true => Some(
            spawn_local(Router::new().route("/v1/traces", post(otlp_sink)).with_state(otlp_seen.clone()))
                .await?,
        ),
        false => None,
    };

    let mut starts = Vec::new();
    for _ in 0..args.starts.max(1) {
        let (mut server, took) = start_server(&args, &llm, &fs_url, &http, None, otlp.as_deref()).await?;
        starts.push(took.as_secs_f64() * 1000.0);
        let _ = server.child.kill().await;
    }
    starts.sort_by(f64::total_cmp);

    let prefix = format!("teal-bench-{}:", std::process::id());
    let redis = args.redis.as_deref().map(|url| (url, prefix.as_str()));
    let (server, _) = start_server(&args, &llm, &fs_url, &http, redis, otlp.as_deref()).await?;
    let pid = server.child.id().context("server pid")?;
    let chat = format!("{}/chat/1.0", server.base);
    let fs_agent = format!("{}/fs-assistant/0.1", server.base);
    let llm_direct = format!("{llm}/v1/chat/completions");
    let direct_body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});

    // Warm-up: connections, sessions, catalogs.
    for _ in 0..50 {
        invoke(&http, &chat, "hello").await?;
        invoke(&http, &fs_agent, "[use-tool] read hello.txt").await?;
    }
    let n = args.requests.max(1);
    let llm_ms = timed(n, async || {
        http.post(&llm_direct).json(&direct_body).send().await?.error_for_status()?.bytes().await?;
        Ok(())
    })
    .await?;
    let chat_ms = timed(n, async || invoke(&http, &chat, "hello").await).await?;
    let before = mcp_posts.load(Ordering::Relaxed);
    let tool_ms = timed(n, async || invoke(&http, &fs_agent, "[use-tool] read hello.txt").await).await?;
    let mcp_per_call = (mcp_posts.load(Ordering::Relaxed) - before) as f64 / n as f64;
    // The MCP server's own time, through the same pool code, to separate it from our overhead.
    let yaml = format!(
        "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: b\nversion: 1\nspec:\n  agent:\n    model: m\n    \
         system_prompt: s\n    mcp_servers:\n      - name: fs\n        url: {fs_url}/mcp\n"
    );
    let parsed = teal_core::config::parse_documents("bench", &yaml)?;
    let agent = parsed.agents.into_iter().next().context("bench agent")?.agents[0].clone();
    let pool = teal_core::mcp::McpPool::new(
        teal_core::mcp::McpSettings::default(),
        Arc::new(teal_core::secrets::EnvSecretStore::new()),
    );
    let tools = pool.agent_tools(&agent).await?;
    let route = tools.route("fs_read_file").context("fs_read_file offered")?.clone();
    for _ in 0..50 {
        pool.call(&route, r#"{"path":"hello.txt"}"#).await?;
    }
    let mcp_ms = timed(n, async || {
        pool.call(&route, r#"{"path":"hello.txt"}"#).await?;
        Ok(())
    })
    .await?;
    // Cache hits: the same chat_history again and again (after one miss).
    let cached_body = json!({"chat_history": [{"role": "user", "content": "cache me"}]});
    let cache_hit = async || {
        let resp = http.post(&chat).json(&cached_body).send().await?.error_for_status()?;
        let hit = resp.headers().get("x-cache").is_some_and(|v| v == "hit");
        resp.bytes().await?;
        Ok::<bool, anyhow::Error>(hit)
    };
    cache_hit().await?;
    let hit_ms = timed(n, async || {
        if !cache_hit().await? {
            bail!("expected a cache hit");
        }
        Ok(())
    })
    .await?;
    // A fresh process over the shared catalog: MCP requests before its first LLM call.
    let cold_posts = match redis {
        Some(_) => {
            let (fresh, _) = start_server(&args, &llm, &fs_url, &http, redis, otlp.as_deref()).await?;
            let before = mcp_posts.load(Ordering::Relaxed);
            invoke(&http, &format!("{}/fs-assistant/0.1", fresh.base), "hello").await?;
            Some(mcp_posts.load(Ordering::Relaxed) - before)
        }
        None => None,
    };
    let rss = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);

    let llm_p50 = percentile(&llm_ms, 0.5);
    let mcp_p50 = percentile(&mcp_ms, 0.5);
    let row = |name: &str, v: &[f64], llm_calls: f64, mcp_calls: f64| {
        let p50 = percentile(v, 0.5);
        println!(
            "{name:<34} p50 {p50:>7.3} ms  p99 {:>7.3} ms  overhead beyond LLM+MCP (p50) {:>6.3} ms",
            percentile(v, 0.99),
            p50 - llm_calls * llm_p50 - mcp_calls * mcp_p50
        );
    };
    println!(
        "teal bench: {n} requests per scenario, fake LLM on loopback, release={}, tracing={}",
        !cfg!(debug_assertions),
        if args.otlp { "OTLP" } else { "off" }
    );
    println!(
        "{:<34} median {:>7.2} ms  (min {:.2}, max {:.2}; {} starts)",
        "process start -> first /health",
        percentile(&starts, 0.5),
        starts[0],
        starts[starts.len() - 1],
        starts.len()
    );
    println!(
        "{:<34} p50 {llm_p50:>7.3} ms  p99 {:>7.3} ms",
        "fake LLM call, direct",
        percentile(&llm_ms, 0.99)
    );
    println!(
        "{:<34} p50 {mcp_p50:>7.3} ms  p99 {:>7.3} ms",
        "MCP read_file call, direct (pool)",
        percentile(&mcp_ms, 0.99)
    );
    row("warm invoke, no tools (1 LLM call)", &chat_ms, 1.0, 0.0);
    row("warm invoke, 1 MCP tool (2 LLM)", &tool_ms, 2.0, 1.0);
    println!("{:<34} {mcp_per_call:.3}", "MCP HTTP requests per tool call");
    let backend = if args.redis.is_some() { "redis" } else { "memory" };
    println!(
        "{:<34} p50 {:>7.3} ms  p99 {:>7.3} ms  ({backend} cache)",
        "cache-hit invoke",
        percentile(&hit_ms, 0.5),
        percentile(&hit_ms, 0.99)
    );
    if let Some(posts) = cold_posts {
        println!("{:<34} {posts}", "MCP requests, fresh process, 1st run");
    }
    println!(
        "{:<34} {:.1} MB (peak {:.1} MB) after {} requests",
        "server RSS",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        100 + 2 * n
    );
    if args.otlp {
        // Stopped with SIGTERM, so the spans of the last two seconds are exported too.
        stop_gracefully(server, pid).await?;
        println!(
            "{:<34} {} exports, {:.1} KB (spans of {} requests, flushed every 2 s and at exit)",
            "OTLP (tracing on)",
            otlp_seen[0].load(Ordering::Relaxed),
            otlp_seen[1].load(Ordering::Relaxed) as f64 / 1024.0,
            100 + 2 * n
        );
    }
    Ok(())
}
