//! The configs part: copying every object under the configs prefix into a backup, checking the
//! copies against the manifest, and writing them back.
//!
//! Objects stream through (a chunk at a time, hashed on the way), so an object's size never
//! reaches memory. A restore reads every copy and compares size and SHA-256 *before* anything
//! is written ([`verify`]); the writes then read each copy again with `If-Match` on the ETag
//! that was verified, so what lands is what was checked. An object that already exists at the
//! target is left alone unless `overwrite` (and one with the same bytes is never rewritten).

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use super::error::BackupError;
use super::manifest::{CONFIGS, ConfigsPart, ObjectEntry};
use super::names::{BackupId, BackupRef};
use super::progress::Progress;
use super::s3::{Put, S3, Upload, Uploaded};
use crate::settings::S3Prefix;
use crate::util::hex;

/// What restoring one object does (or would do, in a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Absent at the target: written.
    Create,
    /// Present with other bytes, and `overwrite`: replaced.
    Replace,
    /// Present with the same bytes: nothing to do.
    Unchanged,
    /// Present with other bytes, without `overwrite`: left alone.
    Kept,
}

/// One object of a restore.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigChange {
    /// `s3://bucket/key` at the target.
    pub target: String,
    pub action: Action,
}

async fn next_chunk(body: &mut ByteStream, what: &str) -> Result<Option<bytes::Bytes>, BackupError> {
    body.try_next().await.map_err(|e| BackupError::io(format!("reading {what}"), std::io::Error::other(e)))
}

/// Streams `body` into `upload`; aborts the upload on failure.
async fn pipe(mut body: ByteStream, mut upload: Upload, what: &str) -> Result<Uploaded, BackupError> {
    loop {
        match next_chunk(&mut body, what).await {
            Ok(Some(chunk)) => {
                if let Err(e) = upload.write(&chunk).await {
                    upload.abort().await;
                    return Err(e.into());
                }
            }
            Ok(None) => return Ok(upload.finish().await?),
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        }
    }
}

/// Size and SHA-256 of a download.
async fn digest(mut body: ByteStream, what: &str) -> Result<(u64, String), BackupError> {
    let (mut size, mut hasher) = (0u64, Sha256::new());
    while let Some(chunk) = next_chunk(&mut body, what).await? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Copies every object under `source` to `backups/{id}/configs/…` in `bucket`.
pub async fn copy(
    s3: &S3,
    source: &S3Prefix,
    bucket: &str,
    id: &BackupId,
    progress: &dyn Progress,
) -> Result<ConfigsPart, BackupError> {
    // Folder markers are not configs; nor are earlier backups, when the configs share the bucket.
    let own_backups = |key: &str| source.bucket == bucket && key.starts_with(super::names::BACKUPS);
    let objects: Vec<_> = s3
        .list(&source.bucket, &source.prefix)
        .await?
        .into_iter()
        .filter(|o| !o.key.ends_with('/') && !own_backups(&o.key))
        .collect();
    progress.begin("configs", Some(objects.len() as u64));
    let mut entries = Vec::with_capacity(objects.len());
    for o in objects {
        let rel = o.key.strip_prefix(source.prefix.as_str()).unwrap_or(&o.key).to_owned();
        let key = format!("{CONFIGS}{rel}");
        let from = format!("s3://{}/{}", source.bucket, o.key);
        let download = s3.open(&source.bucket, &o.key, None).await?;
        let upload = Upload::new(s3, bucket, &format!("{}{key}", id.folder()));
        let done = pipe(download.body, upload, &from).await?;
        if done.size != download.size {
            return Err(BackupError::io(
                format!("copying {from}"),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read {} of {} bytes", done.size, download.size),
                ),
            ));
        }
        entries.push(ObjectEntry {
            key,
            source_key: o.key,
            size: done.size,
            sha256: done.sha256,
            source_etag: Some(download.etag).filter(|e| !e.is_empty()),
            source_version_id: download.version_id.filter(|v| v != "null"),
        });
        progress.advance(1);
    }
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    progress.end("configs", &format!("{} objects, {bytes} bytes", entries.len()));
    Ok(ConfigsPart { source: source.to_string(), objects: entries })
}

/// Reads every copy in the backup and checks it against the manifest; returns the ETag of each
/// (in the manifest's order), for the writes to read exactly these versions.
pub async fn verify(
    s3: &S3,
    backup: &BackupRef,
    part: &ConfigsPart,
    progress: &dyn Progress,
) -> Result<Vec<String>, BackupError> {
    progress.begin("verify configs", Some(part.objects.len() as u64));
    let mut etags = Vec::with_capacity(part.objects.len());
    for e in &part.objects {
        let d = s3.open(&backup.bucket, &backup.key(&e.key), None).await?;
        let etag = d.etag.clone();
        let (size, sha256) = digest(d.body, &format!("{backup}/{}", e.key)).await?;
        let mismatch =
            |detail: String| BackupError::Mismatch { backup: backup.to_string(), key: e.key.clone(), detail };
        if size != e.size {
            return Err(mismatch(format!("{size} bytes, the manifest says {}", e.size)));
        }
        if sha256 != e.sha256 {
            return Err(mismatch(format!("SHA-256 {sha256}, the manifest says {}", e.sha256)));
        }
        etags.push(etag);
        progress.advance(1);
    }
    progress.end("verify configs", &format!("{} objects match the manifest", part.objects.len()));
    Ok(etags)
}

/// Where `e` is restored: under `target`'s prefix, at its path relative to the source prefix.
fn target_key(target: &S3Prefix, e: &ObjectEntry) -> String {
    format!("{}{}", target.prefix, e.relative())
}

/// The SHA-256 of the object at the target, `None` when absent.
async fn current(s3: &S3, bucket: &str, key: &str) -> Result<Option<String>, BackupError> {
    match s3.open(bucket, key, None).await {
        Ok(d) => Ok(Some(digest(d.body, &format!("s3://{bucket}/{key}")).await?.1)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn action(existing: Option<&str>, e: &ObjectEntry, overwrite: bool) -> Action {
    match existing {
        None => Action::Create,
        Some(sha) if sha == e.sha256 => Action::Unchanged,
        Some(_) if overwrite => Action::Replace,
        Some(_) => Action::Kept,
    }
}

/// What restoring would do to each object (a dry run: nothing is written).
pub async fn plan(
    s3: &S3,
    part: &ConfigsPart,
    target: &S3Prefix,
    overwrite: bool,
) -> Result<Vec<ConfigChange>, BackupError> {
    let mut out = Vec::with_capacity(part.objects.len());
    for e in &part.objects {
        let key = target_key(target, e);
        let existing = current(s3, &target.bucket, &key).await?;
        out.push(ConfigChange {
            target: format!("s3://{}/{key}", target.bucket),
            action: action(existing.as_deref(), e, overwrite),
        });
    }
    Ok(out)
}

/// Writes the copies back under `target`. `etags` are [`verify`]'s.
pub async fn write(
    s3: &S3,
    backup: &BackupRef,
    part: &ConfigsPart,
    etags: &[String],
    target: &S3Prefix,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<Vec<ConfigChange>, BackupError> {
    progress.begin("restore configs", Some(part.objects.len() as u64));
    let mut out = Vec::with_capacity(part.objects.len());
    for (e, etag) in part.objects.iter().zip(etags) {
        let key = target_key(target, e);
        let url = format!("s3://{}/{key}", target.bucket);
        let mut act = action(current(s3, &target.bucket, &key).await?.as_deref(), e, overwrite);
        if matches!(act, Action::Create | Action::Replace) {
            let d = s3.open(&backup.bucket, &backup.key(&e.key), Some(etag)).await?;
            let mut upload = Upload::new(s3, &target.bucket, &key);
            if act == Action::Create {
                upload = upload.if_absent();
            }
            let done = pipe(d.body, upload, &format!("{backup}/{}", e.key)).await?;
            if done.put == Put::Exists {
                // Created by someone else since we looked: theirs stays.
                act = Action::Kept;
            } else if done.sha256 != e.sha256 {
                // Only if the copy changed under the If-Match read: it cannot, but say so if it does.
                return Err(BackupError::io(
                    format!("restoring {url}"),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("written with SHA-256 {}, the manifest says {}", done.sha256, e.sha256),
                    ),
                ));
            }
        }
        out.push(ConfigChange { target: url, action: act });
        progress.advance(1);
    }
    let written = out.iter().filter(|c| matches!(c.action, Action::Create | Action::Replace)).count();
    progress.end("restore configs", &format!("{written} of {} objects written", out.len()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_objects_are_left_alone_unless_overwrite() {
        let e = ObjectEntry {
            key: "configs/a/b.yaml".into(),
            source_key: "agents/a/b.yaml".into(),
            size: 1,
            sha256: "aa".into(),
            source_etag: None,
            source_version_id: None,
        };
        assert_eq!(action(None, &e, false), Action::Create);
        assert_eq!(action(Some("aa"), &e, true), Action::Unchanged);
        assert_eq!(action(Some("bb"), &e, false), Action::Kept);
        assert_eq!(action(Some("bb"), &e, true), Action::Replace);
        let target = S3Prefix { bucket: "new-configs".into(), prefix: "live/".into() };
        assert_eq!(target_key(&target, &e), "live/a/b.yaml");
    }
}
