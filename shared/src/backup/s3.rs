//! S3 for backups: listing, small reads, conditional writes, streamed downloads and a streamed
//! upload ([`Upload`]) that hashes what it sends.
//!
//! Owns the calls and their bounds: a small read refuses an object over its limit before reading
//! it; an upload holds at most one part in memory ([`PART_BYTES`]), sends a single `PutObject`
//! when the whole object fits in one part and a multipart upload otherwise (aborted on failure;
//! the bucket's lifecycle rule removes any upload a crash leaves behind). Conditional writes
//! (`If-None-Match: *`, `If-Match: etag`) say "someone else was first" as [`Put::Exists`]
//! rather than an error. Every failure is an [`AwsError`] that says whether to retry. The SDK
//! retries transient failures itself first (standard mode, three attempts).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use sha2::{Digest, Sha256};

use super::error::{AwsError, BackupError};
use crate::util::hex;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB, except the last).
pub const PART_BYTES: usize = 8 << 20;

/// The most objects one listing returns; more is refused rather than held in memory.
const MAX_LISTED: usize = 1_000_000;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Always.
    None,
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Matches(&'a str),
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new ETag.
    Written(String),
    /// The condition failed: the object exists (or changed) since.
    Exists,
}

/// An object being downloaded.
pub struct Download {
    pub body: ByteStream,
    pub size: u64,
    pub etag: String,
    pub version_id: Option<String>,
}

/// The S3 client backups use: the process's SDK configuration with longer per-attempt timeouts
/// (a part is megabytes, and `teal backup` may run over a slow uplink).
#[derive(Clone, Debug)]
pub struct S3 {
    client: aws_sdk_s3::Client,
}

fn url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

impl S3 {
    pub fn new(sdk: &SdkConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(60))
            .operation_timeout(Duration::from_secs(180))
            .build();
        let mut conf = aws_sdk_s3::config::Builder::from(sdk).timeout_config(timeouts);
        if sdk.endpoint_url().is_some() {
            conf = conf.force_path_style(true);
        }
        Self { client: aws_sdk_s3::Client::from_conf(conf.build()) }
    }

    /// Every object under `prefix`, sorted by key.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, AwsError> {
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::new("ListObjectsV2", url(bucket, prefix), e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                out.push(ObjectInfo {
                    key: key.to_owned(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                });
            }
            if out.len() > MAX_LISTED {
                return Err(AwsError::local(
                    "ListObjectsV2",
                    url(bucket, prefix),
                    false,
                    format!("more than {MAX_LISTED} objects"),
                ));
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The "folders" directly under `prefix` (common prefixes up to the next `/`), sorted.
    pub async fn list_folders(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::new("ListObjectsV2", url(bucket, prefix), e))?;
            out.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
        }
        out.sort();
        Ok(out)
    }

    /// Whether the object exists.
    pub async fn exists(&self, bucket: &str, key: &str) -> Result<bool, AwsError> {
        match self.client.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::new("HeadObject", url(bucket, key), e);
                if e.is_not_found() { Ok(false) } else { Err(e) }
            }
        }
    }

    /// The whole object and its ETag, or `None` when there is none; an object over `max` bytes
    /// is refused before its body is read.
    pub async fn get_small(
        &self,
        bucket: &str,
        key: &str,
        max: u64,
    ) -> Result<Option<(Vec<u8>, String)>, BackupError> {
        let out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::new("GetObject", url(bucket, key), e);
                return if e.is_not_found() { Ok(None) } else { Err(e.into()) };
            }
        };
        let size = out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        if size > max {
            return Err(BackupError::BadManifest {
                backup: url(bucket, key),
                detail: format!("it is {size} bytes, more than the {max} allowed"),
            });
        }
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let bytes = out.body.collect().await.map_err(|e| {
            BackupError::io(format!("reading {}", url(bucket, key)), std::io::Error::other(e))
        })?;
        Ok(Some((bytes.to_vec(), etag)))
    }

    /// Starts downloading the object; with `if_match`, only the version with that ETag.
    pub async fn open(&self, bucket: &str, key: &str, if_match: Option<&str>) -> Result<Download, AwsError> {
        let mut req = self.client.get_object().bucket(bucket).key(key);
        if let Some(etag) = if_match {
            req = req.if_match(etag);
        }
        let out = req.send().await.map_err(|e| AwsError::new("GetObject", url(bucket, key), e))?;
        Ok(Download {
            size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            etag: out.e_tag().unwrap_or_default().to_owned(),
            version_id: out.version_id().map(str::to_owned),
            body: out.body,
        })
    }

    /// Writes `body` whole, under `condition`.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Put, AwsError> {
        let req = self.client.put_object().bucket(bucket).key(key).body(ByteStream::from(body));
        let req = match condition {
            Condition::None => req,
            Condition::Absent => req.if_none_match("*"),
            Condition::Matches(etag) => req.if_match(etag),
        };
        conditional(
            req.send().await.map(|o| o.e_tag().unwrap_or_default().to_owned()),
            "PutObject",
            bucket,
            key,
        )
    }

    /// Writes `body` only if no object has the key (`If-None-Match: *`).
    pub async fn put_new(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<Put, AwsError> {
        self.put(bucket, key, body, Condition::Absent).await
    }

    /// Replaces the object only if it still has `etag` (`If-Match`).
    pub async fn put_replacing(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<Put, AwsError> {
        self.put(bucket, key, body, Condition::Matches(etag)).await
    }

    /// Deletes `keys` (up to 1000 per request).
    pub async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), AwsError> {
        for chunk in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> =
                chunk.iter().filter_map(|k| ObjectIdentifier::builder().key(k).build().ok()).collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::local("DeleteObjects", url(bucket, ""), false, Box::new(e)))?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| AwsError::new("DeleteObjects", url(bucket, ""), e))?;
            if let Some(err) = out.errors().first() {
                return Err(AwsError {
                    op: "DeleteObjects",
                    target: url(bucket, err.key().unwrap_or_default()),
                    status: None,
                    code: err.code().map(str::to_owned),
                    retryable: false,
                    source: err.message().unwrap_or("refused").to_owned().into(),
                });
            }
        }
        Ok(())
    }
}

fn conditional<E>(
    sent: Result<String, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    op: &'static str,
    bucket: &str,
    key: &str,
) -> Result<Put, AwsError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(etag) => Ok(Put::Written(etag)),
        Err(e) => {
            let e = AwsError::new(op, url(bucket, key), e);
            if e.is_precondition_failed() { Ok(Put::Exists) } else { Err(e) }
        }
    }
}

/// What an upload wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes sent.
    pub sha256: String,
    /// `Put::Exists` when the upload was conditional and an object was there first.
    pub put: Put,
}

/// One object written a chunk at a time: hashed as it goes, at most one part held in memory.
pub struct Upload {
    s3: S3,
    bucket: String,
    key: String,
    part_bytes: usize,
    if_absent: bool,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    /// The multipart upload's id and parts, once the object is larger than one part.
    multipart: Option<(String, Vec<CompletedPart>)>,
}

impl Upload {
    pub fn new(s3: &S3, bucket: &str, key: &str) -> Self {
        Self {
            s3: s3.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            part_bytes: PART_BYTES,
            if_absent: false,
            buf: Vec::new(),
            hasher: Sha256::new(),
            size: 0,
            multipart: None,
        }
    }

    /// Parts of `bytes` (S3 refuses parts under 5 MiB but the last).
    pub fn with_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(5 << 20);
        self
    }

    /// Write only if no object has the key (`If-None-Match: *` on the put or the completion).
    pub fn if_absent(mut self) -> Self {
        self.if_absent = true;
        self
    }

    fn target(&self) -> String {
        url(&self.bucket, &self.key)
    }

    /// Adds `data`; sends a part whenever a whole part is buffered.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), AwsError> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_bytes {
            let part = std::mem::take(&mut self.buf);
            self.send_part(part).await?;
        }
        Ok(())
    }

    /// Adds `data` without copying it when it is a whole part by itself (the Redis export hands
    /// over its compressed buffer this way: one part in memory, not two).
    pub async fn write_owned(&mut self, data: Vec<u8>) -> Result<(), AwsError> {
        if !self.buf.is_empty() || data.len() < self.part_bytes {
            return self.write(&data).await;
        }
        self.hasher.update(&data);
        self.size += data.len() as u64;
        self.send_part(data).await
    }

    async fn send_part(&mut self, part: Vec<u8>) -> Result<(), AwsError> {
        if self.multipart.is_none() {
            let out = self
                .s3
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| AwsError::new("CreateMultipartUpload", self.target(), e))?;
            self.multipart = Some((out.upload_id().unwrap_or_default().to_owned(), Vec::new()));
        }
        let Some((id, parts)) = self.multipart.as_mut() else { return Ok(()) };
        let number = parts.len() as i32 + 1;
        let out = self
            .s3
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(id.as_str())
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| AwsError::new("UploadPart", url(&self.bucket, &self.key), e))?;
        parts.push(
            CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build(),
        );
        Ok(())
    }

    /// Sends what is left and completes the object.
    pub async fn finish(mut self) -> Result<Uploaded, AwsError> {
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        let size = self.size;
        let rest = std::mem::take(&mut self.buf);
        if self.multipart.is_none() {
            let condition = if self.if_absent { Condition::Absent } else { Condition::None };
            let put = self.s3.put(&self.bucket, &self.key, rest, condition).await?;
            return Ok(Uploaded { size, sha256, put });
        }
        if let Err(e) = self.send_part_or_skip(rest).await {
            self.abort().await;
            return Err(e);
        }
        let Some((id, parts)) = self.multipart.take() else {
            return Err(AwsError::local(
                "CompleteMultipartUpload",
                self.target(),
                true,
                "the upload was lost",
            ));
        };
        let mut req = self
            .s3
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if self.if_absent {
            req = req.if_none_match("*");
        }
        let done = conditional(
            req.send().await.map(|o| o.e_tag().unwrap_or_default().to_owned()),
            "CompleteMultipartUpload",
            &self.bucket,
            &self.key,
        );
        if !matches!(done, Ok(Put::Written(_))) {
            // Not completed (lost the condition, or failed): the parts would linger.
            self.multipart = Some((id, Vec::new()));
            self.abort().await;
        }
        done.map(|put| Uploaded { size, sha256, put })
    }

    async fn send_part_or_skip(&mut self, rest: Vec<u8>) -> Result<(), AwsError> {
        if rest.is_empty() { Ok(()) } else { self.send_part(rest).await }
    }

    /// Abandons the upload (best effort: the lifecycle rule removes what this cannot).
    pub async fn abort(mut self) {
        let Some((id, _)) = self.multipart.take() else { return };
        let sent = self
            .s3
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(id)
            .send()
            .await;
        if let Err(e) = sent {
            let e = AwsError::new("AbortMultipartUpload", self.target(), e);
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "multipart upload left for the lifecycle rule");
        }
    }
}
