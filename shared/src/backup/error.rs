//! Why a backup or a restore failed, and whether running it again may help.
//!
//! [`BackupError::is_retryable`] is exhaustive: a new variant does not compile until someone
//! decides. The Lambda functions put the answer in the error type they report
//! (`Backup.Retryable` / `Backup.Fatal`); AWS errors are classified from the response
//! ([`AwsError`]: throttling, 5xx, timeouts and connection failures are retryable; access
//! denied, missing buckets and bad parameters are not). Sources are kept, so
//! [`crate::telemetry::error_chain`] logs the whole cause.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::names::BackupId;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// A failed AWS call: which one, on what, and whether it is worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("{op} {target}")]
pub struct AwsError {
    pub op: &'static str,
    /// `s3://bucket/key`, a snapshot name, …
    pub target: String,
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// The service's error code (`NoSuchKey`, `SnapshotAlreadyExistsFault`, …).
    pub code: Option<String>,
    pub retryable: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl AwsError {
    /// Classifies `e`: no response (timeout, connection) and 429/5xx/throttling are retryable.
    pub fn new<E>(op: &'static str, target: impl Into<String>, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let retryable = match &e {
            SdkError::ConstructionFailure(_) => false,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                status.is_some_and(|s| s == 429 || s >= 500)
                    || code.as_deref().is_some_and(|c| {
                        c.contains("Throttl") || matches!(c, "SlowDown" | "RequestTimeout" | "InternalError")
                    })
            }
            // SdkError is non-exhaustive: an unknown kind is most likely transient.
            _ => true,
        };
        Self { op, target: target.into(), status, code, retryable, source: Box::new(e) }
    }

    /// A failure found on our side of a call (a refused listing, a request that cannot be built).
    pub fn local(
        op: &'static str,
        target: impl Into<String>,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { op, target: target.into(), status: None, code: None, retryable, source: source.into() }
    }

    /// A conditional write lost: the object exists (412), or another conditional write to it
    /// is in flight (409 `ConditionalRequestConflict`).
    pub fn is_precondition_failed(&self) -> bool {
        self.status == Some(412) || self.code.as_deref() == Some("ConditionalRequestConflict")
    }

    /// The object is not there (a missing bucket is not this: it is an error).
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref() != Some("NoSuchBucket")
            && (self.status == Some(404) || matches!(self.code.as_deref(), Some("NoSuchKey" | "NotFound")))
    }
}

/// Why a backup, a restore or a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A request field (restore event, CLI argument) is wrong.
    #[error("{field}: {detail}")]
    BadInput { field: &'static str, detail: String },
    #[error("nothing to back up: set TA_BACKUP_CONFIGS (or an s3:// TA_SERVICE_CONFIG) or TA_REDIS_URL")]
    NothingToBackUp,
    /// Another run holds the claim on this backup name.
    #[error(
        "backup {id} is being written by run {run_id} (its claim holds until {until}); try again after it"
    )]
    InProgress { id: BackupId, run_id: String, until: String },
    /// The run's claim expired or was taken over before the manifest could be written.
    #[error("backup {id}: the claim on it was lost ({detail}); the manifest was not written")]
    ClaimLost { id: BackupId, detail: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("redis")]
    Redis(#[from] StoreError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Restore refusals: checked before anything is written.
    #[error(
        "{backup} has no manifest.json: the backup is incomplete (a run failed or is still writing); nothing was written"
    )]
    NoManifest { backup: String },
    #[error("{backup}/manifest.json cannot be trusted: {detail}; nothing was written")]
    BadManifest { backup: String, detail: String },
    #[error("{backup}/{key} does not match the manifest: {detail}; nothing was written")]
    Mismatch { backup: String, key: String, detail: String },
    #[error("no complete backup under s3://{bucket}/backups/")]
    NoCompleteBackup { bucket: String },
    /// The logical backup is complete, but the snapshot steps after it failed.
    #[error("backup {id} is complete, but {} snapshot step(s) failed: {}", failures.len(), failures.join("; "))]
    Snapshot { id: BackupId, failures: Vec<String>, retryable: bool },
}

impl BackupError {
    /// Whether running the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Aws(e) => e.retryable,
            Self::Snapshot { retryable, .. } => *retryable,
            Self::Redis(_) | Self::InProgress { .. } | Self::ClaimLost { .. } => true,
            Self::Settings(_)
            | Self::BadInput { .. }
            | Self::NothingToBackUp
            | Self::Io { .. }
            | Self::NoManifest { .. }
            | Self::BadManifest { .. }
            | Self::Mismatch { .. }
            | Self::NoCompleteBackup { .. } => false,
        }
    }

    /// The error type a Lambda function reports.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() { "Backup.Retryable" } else { "Backup.Fatal" }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}
