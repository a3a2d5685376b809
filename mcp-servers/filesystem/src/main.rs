//! `teal-mcp-filesystem`: serve allowed directories over MCP streamable HTTP.
//!
//! Thin binary: parse flags/env (see the library's `settings` docs and the README), set up JSON
//! logs, hand over to the library, stop on Ctrl-C or SIGTERM. `--healthcheck` instead GETs the
//! running server's `/health` and exits 0 or 1 (for the container `HEALTHCHECK`). No logic
//! lives here.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use teal_mcp_filesystem::{RawSettings, Settings, check_health, serve_with_options};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(version, about = "Filesystem MCP server over streamable HTTP, confined to allowed directories")]
struct Args {
    /// Check the health of the server running with this configuration, exit 0 or 1.
    #[arg(long)]
    healthcheck: bool,
    /// Comma-separated allowed directories; relative paths resolve against the first.
    #[arg(long, env = "MCP_FILESYSTEM_ALLOWED_DIRS")]
    allowed_dirs: Option<String>,
    /// One allowed directory (shorthand for a single-entry --allowed-dirs).
    #[arg(long, env = "MCP_FILESYSTEM_ROOT")]
    root: Option<String>,
    /// Refuse (and do not list) write_file, edit_file, create_directory and move_file.
    #[arg(long, env = "MCP_FILESYSTEM_READONLY", num_args = 0..=1, default_missing_value = "true")]
    readonly: Option<String>,
    /// Largest file read or written: 10MB, 512KB, 1GB or bytes (1 KB = 1024 bytes). Default 10MB.
    #[arg(long, env = "MCP_FILESYSTEM_MAX_FILE_SIZE")]
    max_file_size: Option<String>,
    /// Address to listen on. Default 0.0.0.0:8080.
    #[arg(long, env = "MCP_BIND")]
    bind: Option<String>,
    /// No MCP sessions (true, the default here) or classic sessions (false).
    #[arg(long, env = "MCP_STATELESS", num_args = 0..=1, default_missing_value = "true")]
    stateless: Option<String>,
    /// Comma-separated Host headers accepted on /mcp (`*` for any). Default: loopback only.
    #[arg(long, env = "MCP_ALLOWED_HOSTS")]
    allowed_hosts: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.healthcheck {
        let checked = Settings::parse_bind(args.bind)
            .map_err(|e| e.to_string())
            .and_then(|addr| check_health(addr, Duration::from_secs(3)));
        return match checked {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let raw = RawSettings {
        root: args.root,
        allowed_dirs: args.allowed_dirs,
        readonly: args.readonly,
        max_file_size: args.max_file_size,
        bind: args.bind,
        stateless: args.stateless,
        allowed_hosts: args.allowed_hosts,
        auth_token: std::env::var_os("MCP_AUTH_TOKEN"),
    };
    match run(raw) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "filesystem MCP server failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(raw: RawSettings) -> anyhow::Result<()> {
    let settings = Settings::parse(raw)?;
    if !settings.bind.ip().is_loopback() && settings.server.allows_only_loopback_hosts() {
        tracing::warn!(
            bind = %settings.bind,
            "MCP_ALLOWED_HOSTS is not set: /mcp answers 403 to any Host but localhost, 127.0.0.1 and ::1 \
             (set it to the service's DNS name)"
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.bind).await?;
    serve_with_options(listener, settings.fs, &settings.server, shutdown_signal()).await?;
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
