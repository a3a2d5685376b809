//! One backup run: claim the id, snapshot, copy the configs, export Redis, write the manifest,
//! then prune and export snapshots; one summary log line and one EMF metrics line at the end.
//!
//! A run that finds the backup complete already (a repeated event, a retry after the manifest
//! was written) writes nothing and only redoes the snapshot steps, which are idempotent. A run
//! that fails before its manifest gives its claim up, so the retry need not wait for it.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::claim::{self, Begin, Claim};
use super::manifest::{CLAIM, EXPORT, FORMAT, MANIFEST, Manifest, SnapshotPart};
use super::names::{BACKUPS, BackupId, rfc3339, utc_now};
use super::progress::Progress;
use super::s3::Put;
use super::snapshot::SnapshotReport;
use super::{BackupError, BackupService, configs, state};
use crate::telemetry::error_chain;

/// What to back up, and for whom.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub id: BackupId,
    /// Who asked: `schedule (event …)`, `cli`, … (goes in the manifest).
    pub trigger: String,
    /// When this run must be done (Lambda's deadline): its claim holds until then. `None`:
    /// `TA_BACKUP_CLAIM_TTL` from now.
    pub deadline: Option<DateTime<Utc>>,
}

impl BackupRequest {
    /// A backup of this minute.
    pub fn now(trigger: impl Into<String>) -> Self {
        Self { id: BackupId::now(), trigger: trigger.into(), deadline: None }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// `s3://bucket/backups/{id}`.
    pub backup: String,
    /// `false`: the backup was complete already, nothing was written.
    pub written: bool,
    pub objects: u64,
    pub bytes: u64,
    pub keys: u64,
    pub excluded_keys: u64,
    pub duration_ms: u64,
    pub snapshot: Option<SnapshotReport>,
    pub failures: u64,
}

impl BackupService {
    /// Runs one backup. `Err` when the backup could not be made, or when it was made but a
    /// snapshot step failed ([`BackupError::Snapshot`]); either way one summary line is logged.
    pub async fn backup(
        &self,
        req: &BackupRequest,
        progress: &dyn Progress,
    ) -> Result<BackupReport, BackupError> {
        let started = Instant::now();
        let mut report = BackupReport::default();
        let result = self.backup_steps(req, progress, &mut report).await;
        report.duration_ms = started.elapsed().as_millis() as u64;
        let snapshot_failures = report.snapshot.as_ref().map_or(0, |s| s.failures.len() as u64);
        report.failures = snapshot_failures + u64::from(result.is_err() && snapshot_failures == 0);
        emit_metrics(&report);
        // One line either way, with the same fields; a failure at error level, with its cause.
        macro_rules! summary {
            ($level:ident, $($extra:tt)*) => {
                tracing::$level!(
                    backup = %report.backup,
                    written = report.written,
                    objects = report.objects,
                    bytes = report.bytes,
                    keys = report.keys,
                    excluded_keys = report.excluded_keys,
                    duration_ms = report.duration_ms,
                    snapshot = report.snapshot.as_ref().and_then(|s| s.created.as_deref()),
                    failures = report.failures,
                    $($extra)*
                )
            };
        }
        match &result {
            Ok(()) => summary!(info, "backup finished"),
            Err(e) => summary!(error, retryable = e.is_retryable(), error = %error_chain(e), "backup failed"),
        }
        result.map(|()| report)
    }

    async fn backup_steps(
        &self,
        req: &BackupRequest,
        progress: &dyn Progress,
        report: &mut BackupReport,
    ) -> Result<(), BackupError> {
        let bucket = self.bucket()?.to_owned();
        report.backup = format!("s3://{bucket}/{BACKUPS}{}", req.id);
        if self.settings.configs.is_none() && self.redis.is_none() {
            return Err(BackupError::NothingToBackUp);
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let ttl = chrono::Duration::from_std(self.settings.claim_ttl).unwrap_or(chrono::Duration::MAX);
        let expires = req.deadline.unwrap_or_else(|| utc_now() + ttl);
        let create = async || match &self.snapshots {
            Some(s) => Some(s.create(&req.id).await),
            None => None,
        };
        let created = match claim::begin(&self.s3, &bucket, &req.id, &run_id, expires).await? {
            Begin::Complete => {
                tracing::info!(backup = %report.backup, "the backup is complete already: nothing to write");
                create().await
            }
            Begin::Claimed(claim) => {
                let created = create().await;
                let named = created.as_ref().and_then(|c| c.as_ref().ok()).cloned();
                if let Err(e) = self.write(&bucket, req, &claim, named, progress, report).await {
                    claim::release(&self.s3, &bucket, &req.id, &claim).await;
                    return Err(e);
                }
                created
            }
        };
        let (Some(snapshots), Some(created)) = (&self.snapshots, created) else {
            tracing::info!("no ElastiCache snapshot: TA_BACKUP_REPLICATION_GROUP is not set");
            return Ok(());
        };
        let mut steps: SnapshotReport = snapshots
            .maintain(self.settings.snapshot_retention, self.settings.export_bucket.as_deref())
            .await;
        match created {
            Ok(name) => steps.created = Some(name),
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "snapshot step failed");
                steps.retryable &= e.retryable;
                steps.failures.insert(0, error_chain(&e));
            }
        }
        let failed = (!steps.failures.is_empty()).then(|| (steps.failures.clone(), steps.retryable));
        report.snapshot = Some(steps);
        match failed {
            None => Ok(()),
            Some((failures, retryable)) => {
                Err(BackupError::Snapshot { id: req.id.clone(), failures, retryable })
            }
        }
    }

    /// Writes the backup's objects and, last, its manifest.
    async fn write(
        &self,
        bucket: &str,
        req: &BackupRequest,
        claim: &Claim,
        snapshot: Option<String>,
        progress: &dyn Progress,
        report: &mut BackupReport,
    ) -> Result<(), BackupError> {
        let started_at = rfc3339(utc_now());
        let folder = req.id.folder();
        let leftovers: Vec<String> = self
            .s3
            .list(bucket, &folder)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !k.ends_with(CLAIM))
            .collect();
        if !leftovers.is_empty() {
            tracing::warn!(backup = %report.backup, objects = leftovers.len(), took_over = claim.took_over, "clearing what an unfinished run left");
            self.s3.delete(bucket, &leftovers).await?;
        }
        let configs = match &self.settings.configs {
            Some(source) => Some(configs::copy(&self.s3, source, bucket, &req.id, progress).await?),
            None => {
                tracing::info!(
                    "configs skipped: neither TA_BACKUP_CONFIGS nor an s3:// TA_SERVICE_CONFIG is set"
                );
                None
            }
        };
        let redis = match &self.redis {
            Some(conn) => {
                Some(state::export(conn, &self.s3, bucket, &format!("{folder}{EXPORT}"), progress).await?)
            }
            None => {
                tracing::info!("Redis skipped: TA_REDIS_URL is not set");
                None
            }
        };
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            id: req.id.clone(),
            run_id: claim.run_id.clone(),
            trigger: req.trigger.clone(),
            started_at,
            finished_at: rfc3339(utc_now()),
            configs,
            redis,
            snapshot: snapshot
                .zip(self.snapshots.as_ref())
                .map(|(name, s)| SnapshotPart { replication_group: s.group().to_owned(), name }),
            checksum: String::new(),
        };
        report.objects = manifest.files().len() as u64;
        report.bytes = manifest.bytes();
        report.keys = manifest.redis.as_ref().map_or(0, |r| r.records);
        report.excluded_keys = manifest.redis.as_ref().map_or(0, |r| r.excluded_keys);
        claim::check(&self.s3, bucket, &req.id, claim).await?;
        match self.s3.put_new(bucket, &format!("{folder}{MANIFEST}"), manifest.seal()).await? {
            Put::Written(_) => {
                report.written = true;
                Ok(())
            }
            Put::Exists => Err(BackupError::ClaimLost {
                id: req.id.clone(),
                detail: "another run wrote the manifest first".to_owned(),
            }),
        }
    }
}

/// The run's totals as metrics: objects, bytes, keys, duration and failures.
fn emit_metrics(r: &BackupReport) {
    crate::telemetry::metrics::backup(
        r.objects,
        r.bytes,
        r.keys,
        std::time::Duration::from_millis(r.duration_ms),
        r.failures,
    );
}
