//! `teal backup`, `teal restore`, `teal backups`: the backup function's work from a laptop, the
//! restore (with the readiness checks after it), and the list of backups.
//!
//! Settings come from the same `TA_*` variables as the functions (`TA_BACKUP_BUCKET`,
//! `TA_BACKUP_CONFIGS`, `TA_REDIS_URL`, …; AWS credentials from the usual chain), the flags
//! override the bucket. Results go to stdout; progress to stderr: a bar on a terminal, plain
//! lines otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use teal_core::backup::configs::Action;
use teal_core::backup::{
    BackupError, BackupRef, BackupRequest, BackupService, Completeness, Progress, RestoreReport,
    RestoreRequest,
};
use teal_core::bootstrap;
use teal_core::secrets::{SdkConfig, SecretStore, aws_sdk_config};
use teal_core::settings::{Env, Settings};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The bucket to write to (default: TA_BACKUP_BUCKET).
    #[arg(long)]
    bucket: Option<String>,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup: s3://bucket/backups/ID (ID like 20261123T0300Z).
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    backup: Option<String>,
    /// Restore the newest complete backup in --bucket (default: TA_BACKUP_BUCKET).
    #[arg(long)]
    latest: bool,
    #[arg(long)]
    bucket: Option<String>,
    /// Replace configs and keys that exist (default: leave them alone).
    #[arg(long)]
    overwrite: bool,
    /// Check the backup and list what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The bucket (default: TA_BACKUP_BUCKET).
    bucket: Option<String>,
}

/// Progress on a terminal: one bar per phase.
struct Bars(Mutex<Option<ProgressBar>>);

impl Bars {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for Bars {
    fn begin(&self, phase: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:22} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(phase.to_owned());
        *self.bar() = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(n);
        }
    }

    fn end(&self, phase: &str, summary: &str) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
        eprintln!("{phase}: {summary}");
    }
}

/// Progress elsewhere: a line when a phase starts and one when it ends.
struct Lines;

impl Progress for Lines {
    fn begin(&self, phase: &str, total: Option<u64>) {
        match total {
            Some(n) => eprintln!("{phase}: {n} to do"),
            None => eprintln!("{phase}: started"),
        }
    }

    fn advance(&self, _n: u64) {}

    fn end(&self, phase: &str, summary: &str) {
        eprintln!("{phase}: {summary}");
    }
}

fn progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() { Box::new(Bars(Mutex::new(None))) } else { Box::new(Lines) }
}

/// The settings, secret store, SDK configuration and service of this process.
struct Ctx {
    env: Env,
    settings: Settings,
    secrets: Arc<dyn SecretStore>,
    sdk: SdkConfig,
    service: BackupService,
}

async fn ctx(bucket: Option<String>) -> anyhow::Result<Ctx> {
    let env = Env::process();
    let mut settings = Settings::read(&env)?;
    if let Some(b) = bucket {
        if !teal_core::config::s3::is_bucket_name(&b) {
            bail!("--bucket: `{b}` is not an S3 bucket name");
        }
        settings.backup.bucket = Some(b);
    }
    let (secrets, sdk) = bootstrap::build_secrets(&settings).await;
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => aws_sdk_config(settings.aws_endpoint_url.as_deref()).await,
    };
    let service = BackupService::connect(&settings, secrets.clone(), &sdk).await?;
    Ok(Ctx { env, settings, secrets, sdk, service })
}

/// The error with its whole cause chain, and whether a retry may help.
fn explain(e: BackupError) -> anyhow::Error {
    let hint = if e.is_retryable() { " (may pass if run again)" } else { "" };
    anyhow::anyhow!("{}{hint}", teal_core::telemetry::error_chain(&e))
}

/// Bytes in KiB/MiB/GiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let c = ctx(args.bucket).await?;
    let progress = progress();
    let r = c.service.backup(&BackupRequest::now("teal backup"), progress.as_ref()).await.map_err(explain)?;
    if r.written {
        println!(
            "backup {} written: {} objects, {}, {} keys ({} disposable left out) in {:.1} s",
            r.backup,
            r.objects,
            size(r.bytes),
            r.keys,
            r.excluded_keys,
            r.duration_ms as f64 / 1000.0
        );
    } else {
        println!("backup {} is complete already (made this minute): nothing written", r.backup);
    }
    if let Some(s) = &r.snapshot {
        println!(
            "snapshot {}; pruned {:?}; exported {:?}",
            s.created.as_deref().unwrap_or("-"),
            s.pruned,
            s.exported
        );
    }
    Ok(())
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let c = ctx(args.bucket).await?;
    let bucket = c.service.bucket()?;
    let backups = c.service.list(bucket).await.map_err(explain)?;
    if backups.is_empty() {
        println!("no backups under s3://{bucket}/backups/");
    }
    for b in &backups {
        let state = match &b.state {
            Completeness::Complete => "complete".to_owned(),
            Completeness::Incomplete(why) => format!("INCOMPLETE: {why}"),
        };
        println!("{}  {:>9}  {:>3} objects  {state}", b.url, size(b.bytes), b.objects);
    }
    Ok(())
}

fn print_restore(r: &RestoreReport) {
    let (done, verb) = if r.dry_run { ("would ", "") } else { ("", "d") };
    if let Some(target) = &r.configs_target {
        println!("configs -> {target}");
    }
    for c in &r.configs {
        let what = match c.action {
            Action::Create => format!("{done}create{verb}"),
            Action::Replace => format!("{done}replace{verb}"),
            Action::Unchanged => "unchanged".to_owned(),
            Action::Kept => "exists, differs: kept (--overwrite replaces it)".to_owned(),
        };
        println!("  {what:10} {}", c.target);
    }
    if let Some(x) = &r.redis {
        let kinds: Vec<String> = x.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("redis -> {}: {} records ({})", x.target, x.records, kinds.join(", "));
        println!(
            "  {} keys {}written, {} present and kept",
            x.written,
            if r.dry_run { "would be " } else { "" },
            x.kept
        );
    }
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let c = ctx(args.bucket).await?;
    let backup = match (&args.backup, args.latest) {
        (Some(url), _) => BackupRef::parse(url).map_err(explain)?,
        (None, _) => c.service.latest(c.service.bucket()?).await.map_err(explain)?,
    };
    println!("restoring {backup}{}", if args.dry_run { " (dry run: nothing is written)" } else { "" });
    let req = RestoreRequest { backup, overwrite: args.overwrite, dry_run: args.dry_run };
    let progress = progress();
    let report = c.service.restore(&req, progress.as_ref()).await.map_err(explain)?;
    print_restore(&report);
    if args.dry_run {
        return Ok(());
    }
    let readiness = bootstrap::check_readiness(&c.settings, &c.env, c.secrets.clone(), Some(c.sdk.clone()))
        .await
        .context("readiness checks after the restore")?;
    println!("readiness: {}", readiness.status);
    for check in &readiness.checks {
        let tools = check.tools.map(|n| format!(" ({n} tools)")).unwrap_or_default();
        match &check.error {
            None => println!("  ok    {}{tools} {:.0} ms", check.name, check.ms),
            Some(e) => println!("  FAIL  {}: {e}", check.name),
        }
    }
    if !readiness.is_ready() {
        bail!("restored, but not ready: {}", readiness.failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_like_a_human_wrote_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
    }
}
