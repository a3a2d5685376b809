//! `teal-mcp-filesystem`: serve one directory over MCP streamable HTTP.
//!
//! Thin binary: parse flags/env, set up JSON logs, hand over to the library, stop on Ctrl-C or
//! SIGTERM. No logic lives here.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use teal_mcp_filesystem::{FsConfig, ServerOptions, SessionMode, serve_with_options};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(version, about = "Filesystem MCP server over streamable HTTP, confined to one directory")]
struct Args {
    /// Directory to serve; nothing outside it is reachable.
    #[arg(long, env = "MCP_FILESYSTEM_ROOT")]
    root: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "MCP_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// No MCP sessions: JSON responses, any request answered on its own.
    #[arg(long, env = "MCP_STATELESS")]
    stateless: bool,
    /// Accepted Host header (repeat, or comma-separated in the env var). Default: loopback.
    #[arg(long = "allowed-host", env = "MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();
    let cfg = FsConfig::new(&args.root)?;
    let mode = if args.stateless { SessionMode::Stateless } else { SessionMode::Stateful };
    let mut options = ServerOptions::new(mode);
    if !args.allowed_hosts.is_empty() {
        options = options.with_allowed_hosts(args.allowed_hosts);
    }
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    serve_with_options(listener, cfg, &options, shutdown_signal()).await?;
    tracing::info!("filesystem MCP server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, draining");
}
