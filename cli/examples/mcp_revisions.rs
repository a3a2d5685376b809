//! Measures, per MCP protocol revision, what a cold container costs from its start to its first
//! tool result (HTTP requests at the server, and time), and what a warm tool call costs, against
//! the bundled filesystem server (stateful and stateless) on loopback with a request counter.
//!
//! "2026-07-28" is the stateless revision without a handshake; "initialize" is every older
//! revision (2025-11-25, 2025-06-18, 2025-03-26: the server answers the one we offer, and the
//! client pays `initialize` + `notifications/initialized` + the call, plus the session's GET
//! stream), which is also what every cold container paid before this change. Both start from a
//! warm shared catalog (the usual Lambda case): the revision comes from it, so nothing is probed.
//!
//! `cargo run --release -p teal-cli --example mcp_revisions [cold-starts] [warm-calls]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use teal_core::config::{AgentSpec, parse_documents};
use teal_core::mcp::{McpPool, McpSettings};
use teal_core::secrets::EnvSecretStore;
use teal_core::store::{CatalogCache, CatalogEntry, CatalogKey, CatalogSettings, MemoryCatalogCache};
use teal_mcp_filesystem::{FsConfig, SessionMode};

static REQUESTS: AtomicUsize = AtomicUsize::new(0);

async fn serve(root: &std::path::Path, mode: SessionMode) -> anyhow::Result<String> {
    let router = teal_mcp_filesystem::router(FsConfig::new(root)?, mode).layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| {
            REQUESTS.fetch_add(1, Ordering::SeqCst);
            next.run(req)
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    // As the server's own `serve` does: without it, each SSE reply waits for a delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

fn agent(url: &str) -> anyhow::Result<Arc<AgentSpec>> {
    let yaml = format!(
        "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: bench\nversion: 1\nspec:\n  agent:\n    model: m\n    \
         system_prompt: s\n    mcp_servers:\n      - name: fs\n        url: {url}\n"
    );
    let mut parsed = parse_documents("bench.yaml", &yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(parsed.agents.remove(0).agents.remove(0))
}

fn pool(cache: &Arc<MemoryCatalogCache>) -> McpPool {
    McpPool::new(McpSettings::default(), Arc::new(EnvSecretStore::new()))
        .with_shared_catalog(cache.clone(), CatalogSettings::default())
}

/// Marks every shared record of `url` as spoken in `revision` (what a first container learned).
async fn remember(cache: &MemoryCatalogCache, url: &str, revision: &str) -> anyhow::Result<()> {
    let keep = Duration::from_secs(3600);
    cache
        .put(&CatalogKey::server(url), &CatalogEntry::new(vec![], Some(revision.into()), None), keep)
        .await?;
    for key in [CatalogKey::public(url)] {
        if let Some(mut entry) = cache.get(&key).await? {
            entry.protocol = Some(revision.into());
            cache.put(&key, &entry, keep).await?;
        }
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let starts = args.next().transpose()?.unwrap_or(50);
    let calls = args.next().transpose()?.unwrap_or(1000);
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("hello.txt"), "x".repeat(4096))?;
    println!(
        "| server | revision | cold start → first tool result: requests | time p50 | warm call: requests | p50 |"
    );
    println!("|---|---|---|---|---|---|");
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let url = serve(&dir, mode).await?;
        let agent = agent(&url)?;
        for revision in ["2026-07-28", "2025-11-25"] {
            let cache = Arc::new(MemoryCatalogCache::default());
            pool(&cache).agent_tools(&agent).await?;
            remember(&cache, &url, revision).await?;
            let (mut times, mut requests) = (Vec::new(), 0);
            for _ in 0..starts {
                let before = REQUESTS.load(Ordering::SeqCst);
                let started = Instant::now();
                let cold = pool(&cache);
                let tools = cold.agent_tools(&agent).await?;
                let route = tools.route("fs_read_text_file").ok_or_else(|| anyhow::anyhow!("no tool"))?;
                cold.call(route, r#"{"path": "hello.txt"}"#).await?;
                times.push(started.elapsed());
                requests += REQUESTS.load(Ordering::SeqCst) - before;
            }
            let warm = pool(&cache);
            let tools = warm.agent_tools(&agent).await?;
            let route = tools.route("fs_read_text_file").ok_or_else(|| anyhow::anyhow!("no tool"))?;
            warm.call(route, r#"{"path": "hello.txt"}"#).await?;
            let (before, mut warm_times) = (REQUESTS.load(Ordering::SeqCst), Vec::new());
            for _ in 0..calls {
                let started = Instant::now();
                warm.call(route, r#"{"path": "hello.txt"}"#).await?;
                warm_times.push(started.elapsed());
            }
            let warm_requests = (REQUESTS.load(Ordering::SeqCst) - before) as f64 / calls as f64;
            let label = if revision == "2026-07-28" {
                "2026-07-28 (no handshake)"
            } else {
                "initialize (≤ 2025-11-25)"
            };
            println!(
                "| {mode:?} | {label} | {:.2} | {:.2} ms | {warm_requests:.2} | {:.3} ms |",
                requests as f64 / starts as f64,
                median(times).as_secs_f64() * 1000.0,
                median(warm_times).as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("teal-mcp-revisions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
