//! Listing backups with their size and completeness, and finding the newest complete one.
//!
//! Complete means: a manifest that opens (format, id, checksum) and a folder that holds exactly
//! what it lists, each object with its listed size ([`check_listing`]). That is cheap (a
//! listing and one small read per backup); a restore additionally checks every byte.

use std::collections::BTreeMap;

use serde::Serialize;

use super::manifest::{MANIFEST, MAX_MANIFEST_BYTES, Manifest, check_listing};
use super::names::{BACKUPS, BackupId, BackupRef};
use super::{BackupError, BackupService};

/// Whether a backup can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Completeness {
    Complete,
    /// Why not: no manifest (failed or still being written), an edited manifest, a missing or
    /// resized object.
    Incomplete(String),
}

/// One backup in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupListing {
    pub id: BackupId,
    /// `s3://bucket/backups/{id}`.
    pub url: String,
    /// Objects under the folder (manifest and claim included) and their total size.
    pub objects: u64,
    pub bytes: u64,
    #[serde(flatten)]
    pub state: Completeness,
}

impl BackupService {
    /// The manifest of `backup`, opened and checked; refuses a missing or untrustworthy one.
    pub async fn open_manifest(&self, backup: &BackupRef) -> Result<Manifest, BackupError> {
        let Some((bytes, _)) =
            self.s3.get_small(&backup.bucket, &backup.key(MANIFEST), MAX_MANIFEST_BYTES).await?
        else {
            return Err(BackupError::NoManifest { backup: backup.to_string() });
        };
        Manifest::open(&bytes, &backup.id)
            .map_err(|detail| BackupError::BadManifest { backup: backup.to_string(), detail })
    }

    /// `(key inside the folder, size)` of every object of `backup`.
    pub async fn folder(&self, backup: &BackupRef) -> Result<BTreeMap<String, u64>, BackupError> {
        let folder = backup.id.folder();
        let objects = self.s3.list(&backup.bucket, &folder).await?;
        Ok(objects
            .into_iter()
            .filter_map(|o| Some((o.key.strip_prefix(&folder)?.to_owned(), o.size)))
            .collect())
    }

    async fn inspect(&self, backup: &BackupRef) -> Result<BackupListing, BackupError> {
        let folder = self.folder(backup).await?;
        let state = if !folder.contains_key(MANIFEST) {
            Completeness::Incomplete("no manifest.json (the run failed or is still writing)".into())
        } else {
            match self.open_manifest(backup).await {
                Ok(m) => match check_listing(&m, &folder) {
                    Ok(()) => Completeness::Complete,
                    Err(why) => Completeness::Incomplete(why),
                },
                Err(BackupError::BadManifest { detail, .. }) => {
                    Completeness::Incomplete(format!("manifest.json: {detail}"))
                }
                Err(BackupError::NoManifest { .. }) => Completeness::Incomplete("no manifest.json".into()),
                Err(e) => return Err(e),
            }
        };
        Ok(BackupListing {
            id: backup.id.clone(),
            url: backup.to_string(),
            objects: folder.len() as u64,
            bytes: folder.values().sum(),
            state,
        })
    }

    /// Every backup in `bucket`, oldest first. Folders under `backups/` that are not named like
    /// a backup are not ours and are left out.
    pub async fn list(&self, bucket: &str) -> Result<Vec<BackupListing>, BackupError> {
        let mut out = Vec::new();
        for id in self.ids(bucket).await? {
            out.push(self.inspect(&BackupRef { bucket: bucket.to_owned(), id }).await?);
        }
        Ok(out)
    }

    async fn ids(&self, bucket: &str) -> Result<Vec<BackupId>, BackupError> {
        let folders = self.s3.list_folders(bucket, BACKUPS).await?;
        let mut ids: Vec<BackupId> = folders
            .iter()
            .filter_map(|f| f.strip_prefix(BACKUPS)?.strip_suffix('/'))
            .filter_map(|id| BackupId::parse(id).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The newest complete backup in `bucket`.
    pub async fn latest(&self, bucket: &str) -> Result<BackupRef, BackupError> {
        for id in self.ids(bucket).await?.into_iter().rev() {
            let backup = BackupRef { bucket: bucket.to_owned(), id };
            match self.inspect(&backup).await?.state {
                Completeness::Complete => return Ok(backup),
                Completeness::Incomplete(why) => {
                    tracing::info!(backup = %backup, why, "skipping an incomplete backup")
                }
            }
        }
        Err(BackupError::NoCompleteBackup { bucket: bucket.to_owned() })
    }
}
