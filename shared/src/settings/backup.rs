//! The backup and restore variables (`TA_BACKUP_*`): where backups go, what they copy, and the
//! ElastiCache snapshot policy. Read by every process (a bad value names its variable at start),
//! used by the backup and restore functions and `teal backup|restore|backups`.
//!
//! The type lives here rather than in `backup` because that module is behind teal-core's
//! `backup` feature, which the HTTP functions leave off; these are plain values.

use std::time::Duration;

use super::{Env, SettingsError};
use crate::config::s3::{ConfigLocation, is_bucket_name};

/// An S3 bucket and a key prefix (`s3://bucket/prefix/`; the prefix may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    pub bucket: String,
    pub prefix: String,
}

impl std::fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Backup and restore settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// `TA_BACKUP_BUCKET`: the bucket backups are written to, as `backups/{id}/…`. Required to
    /// back up; `teal restore|backups` take the bucket from their argument instead.
    pub bucket: Option<String>,
    /// `TA_BACKUP_CONFIGS`: `s3://bucket/prefix/` whose objects a backup copies and a restore
    /// writes back. Default: `TA_SERVICE_CONFIG` when that is an S3 location. Unset: configs
    /// are skipped (with a log line).
    pub configs: Option<S3Prefix>,
    /// `TA_BACKUP_REPLICATION_GROUP`: the ElastiCache replication group to snapshot. Unset:
    /// no snapshot (with a log line).
    pub replication_group: Option<String>,
    /// `TA_BACKUP_SNAPSHOT_RETENTION_DAYS` (default 7): our snapshots older than this are
    /// deleted (the newest one is always kept).
    pub snapshot_retention: Duration,
    /// `TA_BACKUP_EXPORT_BUCKET`: when set, our available snapshots are copied (exported) to
    /// this bucket with `CopySnapshot`.
    pub export_bucket: Option<String>,
    /// `TA_BACKUP_CLAIM_TTL` seconds (default 900): how long a run's claim on a backup name
    /// holds when the run has no deadline of its own (the CLI; Lambda uses its deadline). A
    /// claim older than this is taken over by the next run.
    pub claim_ttl: Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            bucket: None,
            configs: None,
            replication_group: None,
            snapshot_retention: Duration::from_secs(7 * 86_400),
            export_bucket: None,
            claim_ttl: Duration::from_secs(900),
        }
    }
}

/// `TA_BACKUP_*`, with `service_config` (`TA_SERVICE_CONFIG`) as the configs' default source.
pub(super) fn read(
    env: &Env,
    service_config: Option<&ConfigLocation>,
) -> Result<BackupSettings, SettingsError> {
    let d = BackupSettings::default();
    let bucket = |name: &'static str| {
        env.parse(name, "an S3 bucket name", |v| is_bucket_name(v).then(|| v.to_owned()))
    };
    let configs = env.parse("TA_BACKUP_CONFIGS", "s3://bucket/prefix/ with a valid bucket name", |v| {
        match ConfigLocation::parse(v) {
            Ok(ConfigLocation::S3 { bucket, prefix }) => Some(S3Prefix { bucket, prefix }),
            _ => None,
        }
    })?;
    let configs = configs.or_else(|| match service_config {
        Some(ConfigLocation::S3 { bucket, prefix }) => {
            Some(S3Prefix { bucket: bucket.clone(), prefix: prefix.clone() })
        }
        _ => None,
    });
    let replication_group = env.parse(
        "TA_BACKUP_REPLICATION_GROUP",
        "an ElastiCache replication group id (1-40 of a-z, 0-9 and -)",
        |v| is_replication_group_id(v).then(|| v.to_owned()),
    )?;
    let days = env.positive_u32("TA_BACKUP_SNAPSHOT_RETENTION_DAYS")?;
    Ok(BackupSettings {
        bucket: bucket("TA_BACKUP_BUCKET")?,
        configs,
        replication_group,
        snapshot_retention: days.map_or(d.snapshot_retention, |n| Duration::from_secs(u64::from(n) * 86_400)),
        export_bucket: bucket("TA_BACKUP_EXPORT_BUCKET")?,
        claim_ttl: env.secs("TA_BACKUP_CLAIM_TTL", d.claim_ttl.as_secs())?,
    })
}

/// ElastiCache's rule for replication group ids: 1-40 characters of lower-case letters, digits
/// and hyphens, starting with a letter (upper case is folded by the service; we ask for lower).
fn is_replication_group_id(v: &str) -> bool {
    (1..=40).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.ends_with('-')
        && !v.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn read(pairs: &[(&str, &str)]) -> Result<BackupSettings, SettingsError> {
        Settings::read(&Env::from_pairs(pairs.iter().copied())).map(|s| s.backup)
    }

    #[test]
    fn defaults_leave_every_part_off() {
        let s = read(&[]).expect("defaults");
        assert_eq!(s, BackupSettings::default());
        assert_eq!(s.snapshot_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(s.claim_ttl, Duration::from_secs(900));
    }

    #[test]
    fn every_variable_is_read() {
        let s = read(&[
            ("TA_BACKUP_BUCKET", "teal-backups"),
            ("TA_BACKUP_CONFIGS", "s3://teal-configs/agents/"),
            ("TA_BACKUP_REPLICATION_GROUP", "teal-dev-cache"),
            ("TA_BACKUP_SNAPSHOT_RETENTION_DAYS", "14"),
            ("TA_BACKUP_EXPORT_BUCKET", "teal-exports"),
            ("TA_BACKUP_CLAIM_TTL", "60"),
        ])
        .expect("ok");
        assert_eq!(s.bucket.as_deref(), Some("teal-backups"));
        assert_eq!(s.configs, Some(S3Prefix { bucket: "teal-configs".into(), prefix: "agents/".into() }));
        assert_eq!(s.configs.as_ref().map(ToString::to_string).as_deref(), Some("s3://teal-configs/agents/"));
        assert_eq!(s.replication_group.as_deref(), Some("teal-dev-cache"));
        assert_eq!(s.snapshot_retention, Duration::from_secs(14 * 86_400));
        assert_eq!(s.export_bucket.as_deref(), Some("teal-exports"));
        assert_eq!(s.claim_ttl, Duration::from_secs(60));
    }

    #[test]
    fn the_configs_default_to_an_s3_service_config_only() {
        let s = read(&[("TA_SERVICE_CONFIG", "s3://teal-configs/agents/")]).expect("ok");
        assert_eq!(s.configs, Some(S3Prefix { bucket: "teal-configs".into(), prefix: "agents/".into() }));
        assert_eq!(read(&[("TA_SERVICE_CONFIG", "examples/agents")]).expect("ok").configs, None);
        let s = read(&[("TA_SERVICE_CONFIG", "s3://a-bucket/x/"), ("TA_BACKUP_CONFIGS", "s3://b-bucket/")])
            .expect("ok");
        assert_eq!(
            s.configs,
            Some(S3Prefix { bucket: "b-bucket".into(), prefix: String::new() }),
            "explicit wins"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "TA_BACKUP_BUCKET",
                "Bad_Bucket",
                "invalid env var TA_BACKUP_BUCKET=Bad_Bucket (an S3 bucket name)",
            ),
            (
                "TA_BACKUP_CONFIGS",
                "configs/",
                "invalid env var TA_BACKUP_CONFIGS=configs/ (s3://bucket/prefix/ with a valid bucket name)",
            ),
            (
                "TA_BACKUP_REPLICATION_GROUP",
                "Teal--x",
                "invalid env var TA_BACKUP_REPLICATION_GROUP=Teal--x (an ElastiCache replication group id (1-40 of a-z, 0-9 and -))",
            ),
            (
                "TA_BACKUP_SNAPSHOT_RETENTION_DAYS",
                "0",
                "invalid env var TA_BACKUP_SNAPSHOT_RETENTION_DAYS=0 (a whole number > 0)",
            ),
            ("TA_BACKUP_EXPORT_BUCKET", "x", "invalid env var TA_BACKUP_EXPORT_BUCKET=x (an S3 bucket name)"),
            (
                "TA_BACKUP_CLAIM_TTL",
                "soon",
                "invalid env var TA_BACKUP_CLAIM_TTL=soon (a whole number of seconds > 0)",
            ),
        ];
        for (name, value, want) in cases {
            let e = read(&[(name, value)]).expect_err("must fail");
            assert_eq!(e.to_string(), *want);
        }
        assert!(
            is_replication_group_id("a") && !is_replication_group_id("1a") && !is_replication_group_id("a-")
        );
    }
}
