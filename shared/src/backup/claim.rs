//! Who writes a backup: a claim object, created with `If-None-Match: *` before anything else.
//!
//! EventBridge delivers a scheduled event at least once and Lambda retries a failed one, so two
//! runs may start for the same backup id (the same minute). The conditional manifest alone would
//! keep one manifest, but both runs would have overwritten the data objects, leaving a manifest
//! whose hashes match the other run's export: broken. So a run first claims the id: the winner
//! writes; a loser writes nothing and ends with a retryable [`BackupError::InProgress`] (its
//! retry then finds the manifest and succeeds without work). A claim holds until its run's
//! deadline (Lambda's, or `TA_BACKUP_CLAIM_TTL` for the CLI); a run that died leaves a claim that
//! expires, and the next run takes it over with `If-Match` on the stale claim's ETag (only one
//! taker wins) and clears what the dead run left. Before the manifest is written, the run checks
//! that the claim is still its own and unexpired; the manifest itself is written with
//! `If-None-Match: *` too.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::BackupError;
use super::manifest::{CLAIM, MANIFEST};
use super::names::{BackupId, parse_rfc3339, rfc3339, utc_now};
use super::s3::{Put, S3};

#[derive(Debug, Serialize, Deserialize)]
struct ClaimBody {
    run_id: String,
    claimed_at: String,
    expires_at: String,
}

/// This run's claim on a backup id.
#[derive(Debug, Clone)]
pub struct Claim {
    pub run_id: String,
    pub expires: DateTime<Utc>,
    /// Whether it was taken over from a run that died.
    pub took_over: bool,
}

/// What trying to claim found.
#[derive(Debug)]
pub enum Begin {
    Claimed(Claim),
    /// The backup has a manifest already: nothing to write.
    Complete,
}

fn body(run_id: &str, expires: DateTime<Utc>) -> Vec<u8> {
    let b =
        ClaimBody { run_id: run_id.to_owned(), claimed_at: rfc3339(utc_now()), expires_at: rfc3339(expires) };
    serde_json::to_vec(&b).unwrap_or_default()
}

fn key(id: &BackupId, name: &str) -> String {
    format!("{}{name}", id.folder())
}

async fn read(s3: &S3, bucket: &str, id: &BackupId) -> Result<Option<(ClaimBody, String)>, BackupError> {
    let Some((bytes, etag)) = s3.get_small(bucket, &key(id, CLAIM), 64 << 10).await? else { return Ok(None) };
    // An unreadable claim is treated as expired: it cannot be anyone's.
    let claim = serde_json::from_slice(&bytes).unwrap_or(ClaimBody {
        run_id: "unreadable".into(),
        claimed_at: String::new(),
        expires_at: String::new(),
    });
    Ok(Some((claim, etag)))
}

/// Claims backup `id` for `run_id` until `expires`, unless it is complete or held by a live run.
pub async fn begin(
    s3: &S3,
    bucket: &str,
    id: &BackupId,
    run_id: &str,
    expires: DateTime<Utc>,
) -> Result<Begin, BackupError> {
    if s3.exists(bucket, &key(id, MANIFEST)).await? {
        return Ok(Begin::Complete);
    }
    let claimed = |took_over| Begin::Claimed(Claim { run_id: run_id.to_owned(), expires, took_over });
    // Twice: a claim deleted between our put and our read (its run failed) is simply retried.
    for _ in 0..2 {
        if let Put::Written(_) = s3.put_new(bucket, &key(id, CLAIM), body(run_id, expires)).await? {
            return Ok(claimed(false));
        }
        let Some((held, etag)) = read(s3, bucket, id).await? else { continue };
        let until = parse_rfc3339(&held.expires_at);
        if until.is_some_and(|t| t > utc_now()) {
            if s3.exists(bucket, &key(id, MANIFEST)).await? {
                return Ok(Begin::Complete);
            }
            return Err(BackupError::InProgress {
                id: id.clone(),
                run_id: held.run_id,
                until: held.expires_at,
            });
        }
        return match s3.put_replacing(bucket, &key(id, CLAIM), body(run_id, expires), &etag).await? {
            Put::Written(_) => {
                tracing::warn!(backup = %id, stale_run = %held.run_id, "took over the claim of a run that did not finish");
                Ok(claimed(true))
            }
            Put::Exists => Err(BackupError::InProgress {
                id: id.clone(),
                run_id: "another run".into(),
                until: "unknown".into(),
            }),
        };
    }
    Err(BackupError::InProgress { id: id.clone(), run_id: "another run".into(), until: "unknown".into() })
}

/// Checks that `claim` is still this run's and unexpired (just before the manifest is written).
pub async fn check(s3: &S3, bucket: &str, id: &BackupId, claim: &Claim) -> Result<(), BackupError> {
    let lost = |detail: String| BackupError::ClaimLost { id: id.clone(), detail };
    if utc_now() >= claim.expires {
        return Err(lost(format!("it expired at {}", rfc3339(claim.expires))));
    }
    match read(s3, bucket, id).await? {
        Some((held, _)) if held.run_id == claim.run_id => Ok(()),
        Some((held, _)) => Err(lost(format!("run {} holds it now", held.run_id))),
        None => Err(lost("the claim object is gone".into())),
    }
}

/// Gives the claim up after a failure, so a retry need not wait for it to expire.
pub async fn release(s3: &S3, bucket: &str, id: &BackupId, claim: &Claim) {
    let mine = matches!(read(s3, bucket, id).await, Ok(Some((held, _))) if held.run_id == claim.run_id);
    if mine && let Err(e) = s3.delete(bucket, &[key(id, CLAIM)]).await {
        tracing::warn!(backup = %id, error = %crate::telemetry::error_chain(&e), "claim left to expire");
    }
}
