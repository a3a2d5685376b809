//! Restoring a backup: everything is checked before anything is written.
//!
//! In order: the manifest (present, its checksum, this backup's id), the folder against the
//! manifest (every object there with its size, nothing unlisted), where each part goes (the
//! configs to `TA_BACKUP_CONFIGS` or, unset, back where they came from; Redis to `TA_REDIS_URL`
//! under `TA_REDIS_PREFIX`), every config's bytes against its SHA-256, the whole export (bytes,
//! SHA-256, every record, the count). Any difference stops the restore with nothing written.
//! Then the configs, then Redis, each reading exactly the versions that were checked. Existing
//! objects and keys are left alone unless `overwrite`; a dry run stops after the checks and says
//! what would change.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::configs::{self, Action, ConfigChange};
use super::manifest::{Manifest, check_listing};
use super::names::BackupRef;
use super::progress::Progress;
use super::{BackupError, BackupService, state};
use crate::config::s3::ConfigLocation;
use crate::settings::{S3Prefix, SettingsError};
use crate::telemetry::error_chain;

/// Which backup to restore, and how.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub backup: BackupRef,
    /// Replace objects and keys that exist (default: leave them alone).
    pub overwrite: bool,
    /// Check and report, write nothing.
    pub dry_run: bool,
}

/// What the Redis part of a restore did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedisOutcome {
    /// The target: redacted URL and prefix.
    pub target: String,
    pub records: u64,
    pub kinds: BTreeMap<String, u64>,
    pub written: u64,
    /// Present already and left alone.
    pub kept: u64,
}

/// What a restore did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub backup: String,
    pub dry_run: bool,
    pub overwrite: bool,
    /// Where the configs went, and what happened to each.
    pub configs_target: Option<String>,
    pub configs: Vec<ConfigChange>,
    pub redis: Option<RedisOutcome>,
    pub duration_ms: u64,
}

impl BackupService {
    /// Restores `req.backup` (see the module doc); one summary line is logged.
    pub async fn restore(
        &self,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, BackupError> {
        let started = Instant::now();
        let result = self.restore_steps(req, progress).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(r) => tracing::info!(
                backup = %req.backup,
                dry_run = req.dry_run,
                configs_written = r.configs.iter().filter(|c| matches!(c.action, Action::Create | Action::Replace)).count(),
                keys_written = r.redis.as_ref().map_or(0, |x| x.written),
                keys_kept = r.redis.as_ref().map_or(0, |x| x.kept),
                duration_ms = ms,
                "restore finished"
            ),
            Err(e) => {
                tracing::error!(backup = %req.backup, error = %error_chain(e), duration_ms = ms, "restore refused or failed")
            }
        }
        result.map(|r| RestoreReport { duration_ms: ms, ..r })
    }

    /// Where the configs of `manifest` are restored.
    fn configs_target(&self, manifest: &Manifest) -> Result<Option<S3Prefix>, BackupError> {
        let Some(part) = &manifest.configs else { return Ok(None) };
        if let Some(t) = &self.settings.configs {
            return Ok(Some(t.clone()));
        }
        match ConfigLocation::parse(&part.source) {
            Ok(ConfigLocation::S3 { bucket, prefix }) => Ok(Some(S3Prefix { bucket, prefix })),
            _ => Err(BackupError::BadManifest {
                backup: manifest.id.to_string(),
                detail: format!("configs.source `{}` is not an s3:// location", part.source),
            }),
        }
    }

    async fn restore_steps(
        &self,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreReport, BackupError> {
        let backup = &req.backup;
        let manifest = self.open_manifest(backup).await?;
        let folder = self.folder(backup).await?;
        check_listing(&manifest, &folder).map_err(|detail| BackupError::Mismatch {
            backup: backup.to_string(),
            key: "(folder)".into(),
            detail,
        })?;
        let configs_target = self.configs_target(&manifest)?;
        let conn = match (&manifest.redis, &self.redis) {
            (None, _) => None,
            (Some(_), Some(conn)) => Some(conn),
            (Some(_), None) => {
                return Err(SettingsError::missing(
                    "TA_REDIS_URL",
                    "the Redis to restore the backup's sessions into",
                )
                .into());
            }
        };
        let etags = match &manifest.configs {
            Some(part) => configs::verify(&self.s3, backup, part, progress).await?,
            None => Vec::new(),
        };
        let checked = match &manifest.redis {
            Some(part) => {
                Some(state::verify(&self.s3, backup, part, conn.filter(|_| req.dry_run), progress).await?)
            }
            None => None,
        };
        let mut report = RestoreReport {
            backup: backup.to_string(),
            dry_run: req.dry_run,
            overwrite: req.overwrite,
            configs_target: configs_target.as_ref().map(ToString::to_string),
            configs: Vec::new(),
            redis: None,
            duration_ms: 0,
        };
        let outcome =
            |conn: &crate::store::RedisConnection, part: &super::manifest::RedisPart| RedisOutcome {
                target: format!("{} (prefix {:?})", conn.addr(), conn.prefix()),
                records: part.records,
                kinds: part.kinds.clone(),
                written: 0,
                kept: 0,
            };
        if req.dry_run {
            if let (Some(part), Some(target)) = (&manifest.configs, &configs_target) {
                report.configs = configs::plan(&self.s3, part, target, req.overwrite).await?;
            }
            if let (Some(part), Some(conn), Some(checked)) = (&manifest.redis, conn, &checked) {
                let existing = checked.existing.unwrap_or(0);
                let kept = if req.overwrite { 0 } else { existing };
                report.redis = Some(RedisOutcome {
                    written: part.records.saturating_sub(kept),
                    kept,
                    ..outcome(conn, part)
                });
            }
            return Ok(report);
        }
        if let (Some(part), Some(target)) = (&manifest.configs, &configs_target) {
            report.configs =
                configs::write(&self.s3, backup, part, &etags, target, req.overwrite, progress).await?;
        }
        if let (Some(part), Some(conn), Some(checked)) = (&manifest.redis, conn, &checked) {
            let done = state::import(conn, &self.s3, backup, part, checked, req.overwrite, progress).await?;
            report.redis =
                Some(RedisOutcome { written: done.written, kept: done.kept, ..outcome(conn, part) });
        }
        Ok(report)
    }
}
