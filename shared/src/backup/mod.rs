//! Disaster recovery: backing up the agent configs and the durable Redis state to S3 (with an
//! ElastiCache snapshot beside), listing backups, and restoring one, proven byte for byte.
//!
//! A backup is `s3://{TA_BACKUP_BUCKET}/backups/{id}/` (`id`: the UTC minute, `20261123T0300Z`):
//! `configs/…` (a copy of every object under the configs prefix), `redis.ndjson.gz` (the logical
//! export of sessions and tasks; disposable caches left out, [`record`]), and `manifest.json`,
//! written last and conditionally ([`manifest`]): no manifest, no backup. A claim decides which
//! of two runs for the same id writes it ([`claim`]). A restore refuses before writing anything
//! unless every object matches the manifest ([`restore`]).
//!
//! [`BackupService`] holds the clients (made once per container or command) and runs the use
//! cases: [`BackupService::backup`], [`BackupService::restore`], [`BackupService::list`]. The
//! Lambda functions (`crate::lambda::job`) and `teal backup|restore|backups` call it. This module
//! is behind teal-core's `backup` feature: the HTTP functions never link it.

pub mod claim;
pub mod configs;
pub mod error;
pub mod list;
pub mod manifest;
pub mod names;
pub mod progress;
pub mod record;
pub mod restore;
mod run;
pub mod s3;
pub mod snapshot;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;

pub use error::{AwsError, BackupError};
pub use list::{BackupListing, Completeness};
pub use names::{BackupId, BackupRef};
pub use progress::{LogProgress, Progress};
pub use restore::{RestoreReport, RestoreRequest};
pub use run::{BackupReport, BackupRequest};

use crate::secrets::SecretStore;
use crate::settings::{BackupSettings, Settings, SettingsError};
use crate::store::{RedisConnection, RedisSettings};

/// The shortest per-call Redis timeout of a backup or restore: a batch carries up to hundreds
/// of keys, more than the hot path's 250 ms default is meant for.
const MIN_REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients and settings of backups and restores.
#[derive(Debug, Clone)]
pub struct BackupService {
    s3: s3::S3,
    snapshots: Option<snapshot::Snapshots>,
    redis: Option<RedisConnection>,
    settings: BackupSettings,
}

impl BackupService {
    /// From the process settings: the S3 and ElastiCache clients of `sdk`, and the Redis of
    /// `TA_REDIS_URL` (its AUTH token from `secrets`) with a batch-sized timeout.
    pub async fn connect(
        settings: &Settings,
        secrets: Arc<dyn SecretStore>,
        sdk: &SdkConfig,
    ) -> Result<Self, SettingsError> {
        let redis = match &settings.stores.redis {
            Some(r) => Some(RedisConnection::connect(&batch_settings(r), secrets).await?),
            None => None,
        };
        Ok(Self::new(sdk, settings.backup.clone(), redis))
    }

    /// From parts (tests, other hosts).
    pub fn new(sdk: &SdkConfig, settings: BackupSettings, redis: Option<RedisConnection>) -> Self {
        let snapshots = settings.replication_group.as_deref().map(|g| snapshot::Snapshots::new(sdk, g));
        Self { s3: s3::S3::new(sdk), snapshots, redis, settings }
    }

    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    /// The Redis connection, when one is configured.
    pub fn redis(&self) -> Option<&RedisConnection> {
        self.redis.as_ref()
    }

    /// The bucket of `TA_BACKUP_BUCKET`, or the error naming it.
    pub fn bucket(&self) -> Result<&str, SettingsError> {
        self.settings
            .bucket
            .as_deref()
            .ok_or_else(|| SettingsError::missing("TA_BACKUP_BUCKET", "the S3 bucket backups are written to"))
    }
}

/// `settings` with a per-call timeout fit for batches.
pub fn batch_settings(settings: &RedisSettings) -> RedisSettings {
    let mut s = settings.clone();
    s.timeout = s.timeout.max(MIN_REDIS_TIMEOUT);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_calls_get_at_least_five_seconds() {
        let hot = RedisSettings::new("redis://127.0.0.1:6379");
        assert_eq!(hot.timeout, Duration::from_millis(250));
        assert_eq!(batch_settings(&hot).timeout, MIN_REDIS_TIMEOUT);
        let mut slow = hot.clone();
        slow.timeout = Duration::from_secs(10);
        assert_eq!(batch_settings(&slow).timeout, Duration::from_secs(10), "a longer one is kept");
        assert_eq!(batch_settings(&slow).prefix, "teal:");
    }
}
