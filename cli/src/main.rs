//! `teal`: run the API locally (`serve`), check agent configs (`validate`), measure (`bench`),
//! back up and restore (`backup`, `restore`, `backups`), switch agents off and on (`disable`,
//! `enable`).
//!
//! Thin: every behaviour lives in teal-core (the API, the agent loop) or in the filesystem MCP
//! server crate; this binary wires them with local defaults.

mod backup;
mod bench;
mod serve;
mod switch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "teal", version, about = "Teal Agents, serverless: run, check and measure agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every endpoint locally: agents from a folder, in-memory sessions, secrets from env,
    /// a bundled filesystem MCP server, and the offline model unless TA_API_KEY/TA_BASE_URL is set.
    Serve(serve::ServeArgs),
    /// Check agent configs (files or folders); exits non-zero with every error found.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Measure start-up, warm invoke overhead, MCP round trips and memory against a fake LLM.
    Bench(bench::BenchArgs),
    /// Back up the configs (TA_BACKUP_CONFIGS) and the Redis state (TA_REDIS_URL) to
    /// s3://TA_BACKUP_BUCKET/backups/ID, as the scheduled backup function does.
    Backup(backup::BackupArgs),
    /// Restore a backup (every object checked against its manifest first), then run the
    /// readiness checks.
    Restore(backup::RestoreArgs),
    /// List the backups in a bucket with their size and completeness.
    Backups(backup::ListArgs),
    /// Kill switch: stop an agent (NAME or NAME/VERSION) in every container within a second
    /// (503 to new requests; runs in flight stop before their next LLM or tool call). Needs
    /// the deployment's Redis (TA_REDIS_URL).
    Disable(switch::DisableArgs),
    /// Turn a kill switch off again (NAME or NAME/VERSION, as it was disabled).
    Enable(switch::EnableArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { paths } => validate(&paths),
        Command::Serve(args) => run_async(serve::run(args)),
        Command::Bench(args) => run_async(bench::run(args)),
        Command::Backup(args) => quiet_logs(|| run_async(backup::backup(args))),
        Command::Restore(args) => quiet_logs(|| run_async(backup::restore(args))),
        Command::Backups(args) => quiet_logs(|| run_async(backup::list(args))),
        Command::Disable(args) => quiet_logs(|| run_async(switch::disable(args))),
        Command::Enable(args) => quiet_logs(|| run_async(switch::enable(args))),
    }
}

/// Log lines to stderr only when RUST_LOG asks for them: these commands print what they did.
fn quiet_logs(run: impl FnOnce() -> ExitCode) -> ExitCode {
    teal_core::telemetry::init_cli_logs("off");
    run()
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    // Check configs as `teal serve` loads them: it provides the bundled server's URL itself.
    let env = serve::config_vars(None);
    let vars = match env.var(serve::BUNDLED_FS_VAR) {
        Some(_) => env,
        None => env.with(serve::BUNDLED_FS_VAR, "http://127.0.0.1/mcp"),
    };
    let mut failed = false;
    for path in paths {
        match teal_core::config::load_path_with_vars(path, vars.vars()) {
            Ok(parsed) => {
                match teal_core::governance::Policies::compile(&parsed.policy_files) {
                    Ok(p) if !p.is_empty() => println!("ok: {} tool policies in {}", p.len(), path.display()),
                    Ok(_) => {}
                    Err(errors) => {
                        failed = true;
                        for e in errors.iter() {
                            eprintln!("error: {e}");
                        }
                    }
                }
                for w in &parsed.warnings {
                    println!("warning: {w}");
                }
                for a in &parsed.agents {
                    println!(
                        "ok: {} {}/{} ({} MCP server(s))",
                        a.source,
                        a.name,
                        a.version,
                        a.mcp_servers().count()
                    );
                }
            }
            Err(errors) => {
                failed = true;
                for e in errors.iter() {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
