//! The Redis part: the durable state exported as gzip NDJSON, checked, and loaded back.
//!
//! Export: `SCAN` over the prefix (never `KEYS`), disposable kinds skipped and counted, the rest
//! read in batches of [`READ_BATCH`] keys (type, value and TTL in one script) and streamed
//! through gzip into a multipart upload: memory holds one batch and one part, whatever the
//! number of keys. A key `SCAN` returns twice (it may, while Redis rehashes) is written twice;
//! a restore writes it once and counts the second as present.
//!
//! Restore reads the export twice: first to check it whole (size, SHA-256, every record
//! parses, the record count) before anything is written, then, with `If-Match` on the checked
//! ETag, to write batches of [`WRITE_BATCH`] records, each batch one script. A Redis call that
//! fails is tried again twice (the store's own timeout bounds each attempt).

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::error::BackupError;
use super::manifest::RedisPart;
use super::names::BackupRef;
use super::progress::Progress;
use super::record::{self, GzLines};
use super::s3::{PART_BYTES, S3, Upload};
use crate::store::{KeyDump, KeyKind, KeyRead, RedisConnection, RestoreCounts, StoreError};
use crate::util::hex;

/// Keys asked of one `SCAN` step.
const SCAN_COUNT: u32 = 1000;
/// Keys read by one script.
pub const READ_BATCH: usize = 100;
/// Records written by one script, and the most payload bytes one batch may carry.
pub const WRITE_BATCH: usize = 200;
const WRITE_BATCH_BYTES: usize = 4 << 20;
/// The compressed buffer: a part, plus room for the batch that fills it past a part.
const BUFFER_BYTES: usize = PART_BYTES + (2 << 20);
/// Level 1 of 9: the export is mostly JSON text, which compresses well even at the fastest level.
const GZIP_LEVEL: u32 = 1;

/// Runs a Redis call, trying again twice on failure (after 0.6 s and 2.4 s: longer than the
/// store's 500 ms skip window after a failure).
async fn retried<T, F, Fut>(op: &str, mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(600);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 3 => {
                tracing::warn!(operation = op, attempt, error = %e, "Redis call failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Counts of an export.
#[derive(Debug, Default)]
struct Counts {
    records: u64,
    kinds: BTreeMap<String, u64>,
    excluded: u64,
    unsupported: u64,
}

/// Exports the durable keys under `conn`'s prefix to `s3://{bucket}/{key}`.
pub async fn export(
    conn: &RedisConnection,
    s3: &S3,
    bucket: &str,
    key: &str,
    progress: &dyn Progress,
) -> Result<RedisPart, BackupError> {
    let mut upload = Upload::new(s3, bucket, key);
    let mut gz = GzEncoder::new(Vec::with_capacity(BUFFER_BYTES), Compression::new(GZIP_LEVEL));
    let mut counts = Counts::default();
    match export_into(conn, &mut upload, &mut gz, &mut counts, progress).await {
        Ok(()) => {}
        Err(e) => {
            upload.abort().await;
            return Err(e);
        }
    }
    let tail = gz.finish().map_err(|e| BackupError::io("compressing the Redis export", e))?;
    if let Err(e) = upload.write(&tail).await {
        upload.abort().await;
        return Err(e.into());
    }
    let done = upload.finish().await?;
    let kinds = counts.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
    progress.end(
        "redis export",
        &format!(
            "{} keys ({kinds}), {} disposable left out, {} bytes",
            counts.records, counts.excluded, done.size
        ),
    );
    Ok(RedisPart {
        key: super::manifest::EXPORT.to_owned(),
        size: done.size,
        sha256: done.sha256,
        prefix: conn.prefix().to_owned(),
        records: counts.records,
        kinds: counts.kinds,
        excluded: KeyKind::disposable().into_iter().map(|k| k.name().to_owned()).collect(),
        excluded_keys: counts.excluded,
        unsupported_keys: counts.unsupported,
    })
}

async fn export_into(
    conn: &RedisConnection,
    upload: &mut Upload,
    gz: &mut GzEncoder<Vec<u8>>,
    counts: &mut Counts,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let estimate = retried("dbsize", || conn.db_size()).await?;
    progress.begin("redis export", Some(estimate));
    let mut cursor = 0;
    loop {
        let (next, keys) = retried("scan", || conn.scan_keys(cursor, SCAN_COUNT)).await?;
        let scanned = keys.len() as u64;
        let (disposable, durable): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| KeyKind::of(k).is_disposable());
        counts.excluded += disposable.len() as u64;
        for batch in durable.chunks(READ_BATCH) {
            for read in retried("read", || conn.dump_keys(batch)).await? {
                match read {
                    KeyRead::Found(dump) => {
                        *counts.kinds.entry(KeyKind::of(&dump.key).name().to_owned()).or_default() += 1;
                        counts.records += 1;
                        gz.write_all(&record::encode(&dump))
                            .map_err(|e| BackupError::io("compressing the Redis export", e))?;
                    }
                    KeyRead::Gone => {}
                    KeyRead::Unsupported(t) => {
                        counts.unsupported += 1;
                        tracing::warn!(redis_type = %t, "a key of a type the export does not copy was skipped");
                    }
                }
            }
            if gz.get_ref().len() >= PART_BYTES {
                // A fresh buffer of the same size: growing one by doubling would reach 16 MiB.
                let part = std::mem::replace(gz.get_mut(), Vec::with_capacity(BUFFER_BYTES));
                upload.write_owned(part).await?;
            }
        }
        progress.advance(scanned);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// What reading the export found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadCounts {
    pub records: u64,
    pub size: u64,
    pub sha256: String,
}

/// Streams the export's records to `each` in batches; returns the counts and the digest of the
/// bytes read. Any unreadable byte or record stops it with the line number.
async fn read_batches(
    s3: &S3,
    backup: &BackupRef,
    part: &RedisPart,
    if_match: Option<&str>,
    mut each: impl AsyncFnMut(Vec<KeyDump>) -> Result<(), BackupError>,
) -> Result<(ReadCounts, String), BackupError> {
    let name = format!("{backup}/{}", part.key);
    let bad =
        |detail: String| BackupError::Mismatch { backup: backup.to_string(), key: part.key.clone(), detail };
    let mut download = s3.open(&backup.bucket, &backup.key(&part.key), if_match).await?;
    let etag = download.etag.clone();
    let (mut hasher, mut counts) = (Sha256::new(), ReadCounts::default());
    let mut lines = GzLines::default();
    let mut batch: Vec<KeyDump> = Vec::new();
    let mut batch_bytes = 0;
    let mut take = async |lines: Vec<Vec<u8>>, counts: &mut ReadCounts| -> Result<(), BackupError> {
        for line in lines {
            counts.records += 1;
            let dump = record::decode(&line).map_err(|e| bad(format!("record {}: {e}", counts.records)))?;
            batch_bytes += dump.value.payload_bytes();
            batch.push(dump);
            if batch.len() >= WRITE_BATCH || batch_bytes >= WRITE_BATCH_BYTES {
                batch_bytes = 0;
                each(std::mem::take(&mut batch)).await?;
            }
        }
        Ok(())
    };
    loop {
        let chunk = download
            .body
            .try_next()
            .await
            .map_err(|e| BackupError::io(format!("reading {name}"), std::io::Error::other(e)))?;
        let Some(chunk) = chunk else { break };
        hasher.update(&chunk);
        counts.size += chunk.len() as u64;
        lines.push(&chunk).map_err(|e| bad(format!("not a complete gzip export: {e}")))?;
        take(lines.take_lines(), &mut counts).await?;
    }
    let rest = lines.finish().map_err(|e| bad(format!("not a complete gzip export: {e}")))?;
    take(rest, &mut counts).await?;
    if !batch.is_empty() {
        each(std::mem::take(&mut batch)).await?;
    }
    counts.sha256 = hex(&hasher.finalize());
    Ok((counts, etag))
}

/// What the check of the export found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The ETag of the checked object: the writes read exactly it.
    pub etag: String,
    pub records: u64,
    /// Keys that exist at the target now (counted only when asked: dry runs).
    pub existing: Option<u64>,
}

/// Reads the whole export and checks it against the manifest, writing nothing. With `target`,
/// also counts the keys that already exist there.
pub async fn verify(
    s3: &S3,
    backup: &BackupRef,
    part: &RedisPart,
    target: Option<&RedisConnection>,
    progress: &dyn Progress,
) -> Result<Checked, BackupError> {
    progress.begin("verify redis export", Some(part.records));
    let mut existing = 0u64;
    let (counts, etag) = read_batches(s3, backup, part, None, async |batch: Vec<KeyDump>| {
        if let Some(conn) = target {
            let keys: Vec<String> = batch.iter().map(|d| d.key.clone()).collect();
            existing += retried("exists", || conn.count_existing(&keys)).await?;
        }
        progress.advance(batch.len() as u64);
        Ok(())
    })
    .await?;
    let bad =
        |detail: String| BackupError::Mismatch { backup: backup.to_string(), key: part.key.clone(), detail };
    if counts.size != part.size {
        return Err(bad(format!("{} bytes, the manifest says {}", counts.size, part.size)));
    }
    if counts.sha256 != part.sha256 {
        return Err(bad(format!("SHA-256 {}, the manifest says {}", counts.sha256, part.sha256)));
    }
    if counts.records != part.records {
        return Err(bad(format!("{} records, the manifest says {}", counts.records, part.records)));
    }
    progress.end("verify redis export", &format!("{} records match the manifest", counts.records));
    Ok(Checked { etag, records: counts.records, existing: target.map(|_| existing) })
}

/// Writes the export's records into `conn` (under its prefix), each with its TTL as it was
/// when backed up; existing keys are left alone unless `overwrite`.
pub async fn import(
    conn: &RedisConnection,
    s3: &S3,
    backup: &BackupRef,
    part: &RedisPart,
    checked: &Checked,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<RestoreCounts, BackupError> {
    progress.begin("restore redis", Some(part.records));
    let mut total = RestoreCounts::default();
    read_batches(s3, backup, part, Some(&checked.etag), async |batch: Vec<KeyDump>| {
        let done = retried("restore", || conn.restore_keys(&batch, overwrite)).await?;
        total.written += done.written;
        total.kept += done.kept;
        progress.advance(batch.len() as u64);
        Ok(())
    })
    .await?;
    progress.end(
        "restore redis",
        &format!("{} keys written, {} already present and kept", total.written, total.kept),
    );
    Ok(total)
}
