//! The ElastiCache part: a snapshot of the replication group per backup, pruning of our old
//! snapshots, and the export of our snapshots to a bucket.
//!
//! "Ours" is strict, because deleting a snapshot is final: the name is `{group}-teal-{id}` (the
//! backup id in lower case) *and* the snapshot carries the tag `teal:backup={group}` we set
//! when creating it. Snapshots made by hand, by ElastiCache's automatic schedule or by another
//! stack never match both. Pruning deletes ours older than the retention, but always keeps the
//! newest one (a schedule that stopped must not end with no snapshot at all).
//!
//! `CreateSnapshot` returns while the snapshot is still `creating`, and `CopySnapshot` needs it
//! `available`: so each run exports every one of ours that is available and not yet exported
//! (tag `teal:exported`), usually the previous run's. Every call is idempotent across retries:
//! a snapshot that exists already counts as created.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_elasticache::types::Tag;

use super::error::AwsError;
use super::names::{BackupId, utc_now};

/// The tag that marks our snapshots (value: the replication group).
pub const TAG: &str = "teal:backup";
/// The tag set once a snapshot was exported (value: the bucket).
pub const EXPORTED_TAG: &str = "teal:exported";

/// The snapshot name for backup `id` of `group`.
pub fn name(group: &str, id: &BackupId) -> String {
    format!("{group}-teal-{}", id.as_str().to_ascii_lowercase())
}

/// The backup id in one of our names, if it is one.
fn id_of(group: &str, name: &str) -> Option<BackupId> {
    let id = name.strip_prefix(group)?.strip_prefix("-teal-")?;
    BackupId::parse(&id.to_ascii_uppercase()).ok()
}

/// One of our snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ours {
    pub name: String,
    pub id: BackupId,
    pub arn: String,
    pub status: String,
    pub exported: bool,
}

/// What the snapshot steps of a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotReport {
    pub created: Option<String>,
    pub pruned: Vec<String>,
    pub exported: Vec<String>,
    /// Each failed call, with its cause; `retryable` says whether all of them may pass later.
    pub failures: Vec<String>,
    pub retryable: bool,
}

/// ElastiCache snapshots of one replication group.
#[derive(Debug, Clone)]
pub struct Snapshots {
    client: aws_sdk_elasticache::Client,
    group: String,
}

impl Snapshots {
    pub fn new(sdk: &aws_config::SdkConfig, group: &str) -> Self {
        Self { client: aws_sdk_elasticache::Client::new(sdk), group: group.to_owned() }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Creates (starts) the snapshot of backup `id`; one that exists already is fine.
    pub async fn create(&self, id: &BackupId) -> Result<String, AwsError> {
        let name = name(&self.group, id);
        let sent = self
            .client
            .create_snapshot()
            .replication_group_id(&self.group)
            .snapshot_name(&name)
            .tags(Tag::builder().key(TAG).value(&self.group).build())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(name),
            Err(e) => {
                let e = AwsError::new("CreateSnapshot", &name, e);
                if e.code.as_deref() == Some("SnapshotAlreadyExistsFault") { Ok(name) } else { Err(e) }
            }
        }
    }

    /// Our snapshots of the group, oldest first.
    pub async fn ours(&self) -> Result<Vec<Ours>, AwsError> {
        let mut marker: Option<String> = None;
        let mut found = Vec::new();
        loop {
            let out = self
                .client
                .describe_snapshots()
                .replication_group_id(&self.group)
                .snapshot_source("manual")
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| AwsError::new("DescribeSnapshots", &self.group, e))?;
            for s in out.snapshots() {
                let (Some(name), Some(arn)) = (s.snapshot_name(), s.arn()) else { continue };
                let Some(id) = id_of(&self.group, name) else { continue };
                found.push((
                    name.to_owned(),
                    id,
                    arn.to_owned(),
                    s.snapshot_status().unwrap_or_default().to_owned(),
                ));
            }
            match out.marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        let mut ours = Vec::with_capacity(found.len());
        for (name, id, arn, status) in found {
            let tags = self.tags(&arn).await?;
            if tags.get(TAG).map(String::as_str) == Some(self.group.as_str()) {
                ours.push(Ours { name, id, arn, status, exported: tags.contains_key(EXPORTED_TAG) });
            }
        }
        ours.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(ours)
    }

    async fn tags(&self, arn: &str) -> Result<HashMap<String, String>, AwsError> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| AwsError::new("ListTagsForResource", arn, e))?;
        Ok(out.tag_list().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect())
    }

    /// Deletes ours older than `retention`, keeping the newest; returns the names deleted.
    async fn prune(&self, ours: &[Ours], retention: Duration, failures: &mut Vec<AwsError>) -> Vec<String> {
        let cutoff = utc_now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut deleted = Vec::new();
        let Some((_, older)) = ours.split_last() else { return deleted };
        for s in older.iter().filter(|s| s.id.time() < cutoff && s.status == "available") {
            match self.client.delete_snapshot().snapshot_name(&s.name).send().await {
                Ok(_) => deleted.push(s.name.clone()),
                Err(e) => {
                    let e = AwsError::new("DeleteSnapshot", &s.name, e);
                    if e.code.as_deref() != Some("SnapshotNotFoundFault") {
                        failures.push(e);
                    }
                }
            }
        }
        deleted
    }

    /// Copies ours that are available and not yet exported to `bucket`, then tags them.
    async fn export(&self, ours: &[Ours], bucket: &str, failures: &mut Vec<AwsError>) -> Vec<String> {
        let mut exported = Vec::new();
        for s in ours.iter().filter(|s| s.status == "available" && !s.exported) {
            let copied = self
                .client
                .copy_snapshot()
                .source_snapshot_name(&s.name)
                .target_snapshot_name(&s.name)
                .target_bucket(bucket)
                .send()
                .await
                .map_err(|e| AwsError::new("CopySnapshot", &s.name, e));
            let tagged = match copied {
                Ok(_) => self
                    .client
                    .add_tags_to_resource()
                    .resource_name(&s.arn)
                    .tags(Tag::builder().key(EXPORTED_TAG).value(bucket).build())
                    .send()
                    .await
                    .map_err(|e| AwsError::new("AddTagsToResource", &s.arn, e)),
                Err(e) => Err(e),
            };
            match tagged {
                Ok(_) => exported.push(s.name.clone()),
                Err(e) => failures.push(e),
            }
        }
        exported
    }

    /// The upkeep of a run, after [`create`](Self::create): prune, and export when
    /// `export_bucket` is set. Failures are collected, not fatal: the backup in S3 does not
    /// depend on them.
    pub async fn maintain(&self, retention: Duration, export_bucket: Option<&str>) -> SnapshotReport {
        let mut failures: Vec<AwsError> = Vec::new();
        let mut report = SnapshotReport::default();
        match self.ours().await {
            Ok(ours) => {
                report.pruned = self.prune(&ours, retention, &mut failures).await;
                if let Some(bucket) = export_bucket {
                    let left: Vec<Ours> =
                        ours.into_iter().filter(|s| !report.pruned.contains(&s.name)).collect();
                    report.exported = self.export(&left, bucket, &mut failures).await;
                }
            }
            Err(e) => failures.push(e),
        }
        report.retryable = failures.iter().all(|e| e.retryable);
        for e in &failures {
            tracing::error!(group = %self.group, error = %crate::telemetry::error_chain(e), "snapshot step failed");
        }
        report.failures = failures.iter().map(|e| crate::telemetry::error_chain(e)).collect();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_names_carry_the_group_and_the_backup_id() {
        let id = BackupId::parse("20261123T0300Z").expect("id");
        let n = name("teal-dev-cache", &id);
        assert_eq!(n, "teal-dev-cache-teal-20261123t0300z");
        assert_eq!(id_of("teal-dev-cache", &n), Some(id));
        assert_eq!(id_of("teal-dev", &n), None, "another group's prefix does not match");
        assert_eq!(id_of("teal-dev-cache", "teal-dev-cache-manual-1"), None);
        assert_eq!(id_of("teal-dev-cache", "automatic.teal-dev-cache-2026-11-23-03-00"), None);
    }
}
