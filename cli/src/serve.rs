//! `teal serve`: the real API router on a local port, with embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use teal_core::bootstrap::{self, BootError, OfflinePolicy};
use teal_core::secrets::EnvSecretStore;
use teal_core::settings::{Env, Settings};
use teal_mcp_filesystem::{FsConfig, SessionMode};

/// The variable the example agents use for the bundled filesystem server's URL.
pub const BUNDLED_FS_VAR: &str = "TEAL_BUNDLED_FS_URL";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Agent config file or folder [env: TA_SERVICE_CONFIG] [default: examples/agents]
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder the bundled filesystem MCP server exposes.
    #[arg(long, default_value = "examples/data")]
    data: PathBuf,
    /// Do not start the bundled filesystem MCP server (take TEAL_BUNDLED_FS_URL from the env).
    #[arg(long)]
    no_bundled_fs: bool,
}

/// Variables a config's `url` may reference: the process env, with `bundled_fs` on top.
pub fn config_vars(bundled_fs: Option<&str>) -> Env {
    let env = Env::process();
    match bundled_fs {
        Some(url) => env.with(BUNDLED_FS_VAR, url),
        None => env,
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    teal_core::telemetry::init_json_logs();
    teal_core::telemetry::prometheus::install();
    let settings = Settings::read(&Env::process())?;
    // With OTEL_EXPORTER_OTLP_ENDPOINT set: the finished spans go out every 2 s (and at the end).
    let _flusher = teal_core::telemetry::otlp::spawn_flusher(std::time::Duration::from_secs(2));
    let config_path = match (args.config, &settings.agents.location) {
        (Some(path), _) => path,
        (None, Some(teal_core::config::s3::ConfigLocation::Path(path))) => path.clone(),
        (None, Some(s3)) => {
            anyhow::bail!("teal serve loads agents from a folder; TA_SERVICE_CONFIG={s3} is S3")
        }
        (None, None) => PathBuf::from("examples/agents"),
    };

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let bundled = if args.no_bundled_fs {
        None
    } else {
        let fs = FsConfig::new(&args.data)
            .with_context(|| format!("bundled filesystem MCP server: --data {}", args.data.display()))?;
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the bundled MCP server")?;
        let url = format!("http://{}/mcp", listener.local_addr()?);
        let mut rx = shutdown_rx.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            if let Err(e) = teal_mcp_filesystem::serve(listener, fs, SessionMode::Stateful, stop).await {
                tracing::error!(error = %e, "bundled filesystem MCP server stopped");
            }
        });
        Some(url)
    };

    let vars = config_vars(bundled.as_deref());
    // The same loader as every Lambda: agents and the tool policies beside them.
    let (registry, warnings) = bootstrap::load_registry(&config_path, vars.vars()).map_err(|e| match e {
        BootError::Config(e) => {
            anyhow::anyhow!("agent configs in {} are invalid:\n{e}", config_path.display())
        }
        e => anyhow::anyhow!("{e}"),
    })?;
    for w in &warnings {
        tracing::warn!(warning = %w, "config");
    }
    bootstrap::check_prices(&settings, &registry)?;
    let secrets: Arc<dyn teal_core::secrets::SecretStore> = Arc::new(EnvSecretStore::new());
    let llm = bootstrap::build_llm(&settings, secrets.clone(), OfflinePolicy::Allow, true).await?;
    let llm_desc = llm.describe();
    let offline = settings.llm.is_none();
    // In-memory cache, sessions and catalog unless TA_REDIS_URL points at a Redis.
    let stores = bootstrap::build_stores(&settings, secrets.clone()).await?;
    let store_backend = stores.sessions.backend();
    let tools = bootstrap::load_tool_sources(&settings, &registry).await?;
    let state = Arc::new(bootstrap::build_state(&settings, registry, llm, secrets, stores, tools));

    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("teal serve: listening on http://{addr}");
    println!("  metrics (Prometheus text): GET http://{addr}/metrics");
    println!("  sessions, response cache and tool catalog: {store_backend}");
    if let Some(url) = &bundled {
        println!("  bundled filesystem MCP server at {url} (serving {})", args.data.display());
    }
    for agent in state.registry().iter() {
        println!(
            "  agent {}/{}: POST http://{addr}/{}/{}  model {} via {llm_desc}",
            agent.name,
            agent.version,
            agent.name,
            agent.version,
            agent.answering_agent().model
        );
    }
    if offline {
        println!(
            "  no LLM configured: the offline model answers. Set TA_API_KEY (and TA_BASE_URL for Azure OpenAI, Ollama or vLLM) to use a real model."
        );
    }
    bootstrap::prewarm(&state);
    // What the mcp-probe function does in AWS: every minute, `teal_mcp_server_up` per server.
    // The first probe waits a minute too, so a fresh process sends no MCP request before its
    // first run needs one (the shared catalog serves that run); `/ready` probes at once.
    let probed = state.clone();
    tokio::spawn(async move {
        let minute = std::time::Duration::from_secs(60);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
        loop {
            every.tick().await;
            teal_core::service::probe::probe(&probed).await;
        }
    });

    // `GET /metrics`: the Prometheus text of every metric (infra/prometheus/ scrapes it).
    let app = teal_core::api::router(state).merge(teal_core::telemetry::prometheus::router());
    // Read timeouts, idle keep-alive and a connection cap (teal_net::Limits), TCP_NODELAY.
    teal_net::serve(listener, app, teal_net::Limits::default(), async move {
        stop_requested().await;
        let _ = shutdown_tx.send(true);
    })
    .await
    .context("serving")?;
    teal_core::telemetry::otlp::flush().await;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what `docker stop`, ECS and systemd send): the server
/// then stops accepting, finishes the requests in flight and exports their spans before it exits.
async fn stop_requested() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM cannot be handled; only Ctrl-C stops the server gracefully")
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
