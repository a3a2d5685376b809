//! Agent configs from S3: every `*.yaml` / `*.yml` object under `s3://bucket/prefix` (and the
//! tool policies, `policies/*.cedar`), parsed exactly like local files, with the object's `s3://bucket/key` as the message source.
//!
//! Owns listing (paginated, sorted, dot-entries skipped), fetching, the ETag of every object,
//! and refreshing after a TTL: the listing's ETags tell which objects changed, only those are
//! fetched again (a conditional GET with `If-None-Match`, 304 keeps the old text) and reparsed;
//! new and removed keys count as changes. A refresh whose result does not validate (a YAML
//! error, a duplicate agent, S3 unreachable) changes nothing: the last good registry stays and
//! the errors are reported. It must not interpret YAML itself ([`parse_documents_in`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_s3::error::DisplayErrorContext;

use crate::config::error::{ConfigError, ConfigErrors, ConfigWarning};
use crate::config::{ParseEnv, Parsed, Registry, parse_documents_in};
use crate::governance::{Policies, PolicyFile};

/// Objects larger than this are refused (an agent config is a few KiB).
const MAX_OBJECT_BYTES: i64 = 1024 * 1024;

/// Where `TA_SERVICE_CONFIG` points: a local file or folder, or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLocation {
    Path(PathBuf),
    /// `s3://bucket/prefix` (the prefix may be empty; end it with `/` to mean a folder).
    S3 {
        bucket: String,
        prefix: String,
    },
}

impl ConfigLocation {
    /// `s3://bucket[/prefix]` or a path.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Self::Path(PathBuf::from(s)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket_name(bucket) {
            return Err("expected s3://bucket/prefix/ with a valid bucket name".to_owned());
        }
        Ok(Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

impl std::fmt::Display for ConfigLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Whether `name` can be an S3 bucket name: 3-63 characters of `a-z`, `0-9`, `.` and `-`.
pub fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Files beside a config are not read from S3 (a schema file would need its own ETag-checked
/// fetch): the message says to inline the schema.
fn s3_sidecar(name: &str) -> Result<Option<String>, String> {
    Err(format!("`{name}`: configs in S3 cannot refer to files beside them yet; give the schema inline"))
}

/// An S3 client for `sdk`; path-style addressing when an endpoint override is set (moto,
/// MinIO), since those do not serve `bucket.host` names.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk);
    if sdk.endpoint_url().is_some() {
        conf = conf.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The TTL has not passed, or another refresh is running.
    NotDue,
    /// Nothing changed in S3.
    Unchanged,
    /// The registry was replaced. `changed`: the `s3://` sources added, changed or removed.
    Updated { changed: Vec<String>, warnings: Vec<ConfigWarning> },
    /// The new state is invalid or S3 could not be read: the last good registry stays.
    Rejected(ConfigErrors),
}

struct Object {
    etag: String,
    parsed: Parsed,
}

/// Agent configs under one S3 prefix, kept current by [`refresh_if_stale`](Self::refresh_if_stale).
pub struct S3ConfigSource {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    vars: HashMap<String, String>,
    ttl: Duration,
    registry: RwLock<Arc<Registry>>,
    /// The objects of the current registry, by key. Held across a refresh (one at a time).
    objects: tokio::sync::Mutex<BTreeMap<String, Arc<Object>>>,
    last_check: StdMutex<Instant>,
    parses: AtomicU64,
}

impl std::fmt::Debug for S3ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ConfigSource")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

enum Fetched {
    Text { text: String, etag: String },
    NotModified,
}

impl S3ConfigSource {
    /// Lists and parses every config under `s3://bucket/prefix` (cold start). Every error of
    /// every object is returned, like [`crate::config::load_path_with_vars`].
    pub async fn load(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        vars: HashMap<String, String>,
        ttl: Duration,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigErrors> {
        let source = Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            vars,
            ttl,
            registry: RwLock::new(Arc::new(Registry::default())),
            objects: tokio::sync::Mutex::new(BTreeMap::new()),
            last_check: StdMutex::new(Instant::now()),
            parses: AtomicU64::new(0),
        };
        let (objects, registry, _) = source.build(&BTreeMap::new()).await?;
        let warnings = objects.values().flat_map(|o| o.parsed.warnings.iter().cloned()).collect();
        tracing::info!(
            location = %format!("s3://{}/{}", source.bucket, source.prefix),
            objects = objects.len(),
            agents = registry.len(),
            "loaded agent configs from S3"
        );
        *source.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        *source.objects.lock().await = objects;
        Ok((source, warnings))
    }

    /// The current registry (cheap: an `Arc` clone).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many objects were parsed since the start (cold start included).
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// Whether the TTL has passed since the last check.
    pub fn is_stale(&self) -> bool {
        self.last_check.lock().unwrap_or_else(|p| p.into_inner()).elapsed() >= self.ttl
    }

    /// [`refresh`](Self::refresh) when the TTL has passed since the last check, else `NotDue`.
    pub async fn refresh_if_stale(&self) -> Refresh {
        {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < self.ttl {
                return Refresh::NotDue;
            }
            *last = Instant::now();
        }
        self.refresh().await
    }

    /// When stale, refreshes in a background task (logging the outcome), so no request waits
    /// for S3. Call it at the start of a request.
    pub fn spawn_refresh_if_stale(self: &Arc<Self>) {
        if !self.is_stale() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.refresh_if_stale().await {
                Refresh::Updated { changed, warnings } => {
                    for w in &warnings {
                        tracing::warn!(warning = %w, "agent config warning");
                    }
                    tracing::info!(
                        ?changed,
                        agents = this.registry().len(),
                        "agent configs reloaded from S3"
                    );
                }
                Refresh::Rejected(errors) => {
                    tracing::error!(errors = %errors, "agent configs in S3 are invalid; keeping the last good ones")
                }
                Refresh::NotDue | Refresh::Unchanged => {}
            }
        });
    }

    /// Looks for changes now. Returns `NotDue` if another refresh is running.
    pub async fn refresh(&self) -> Refresh {
        let Ok(mut objects) = self.objects.try_lock() else {
            return Refresh::NotDue;
        };
        match self.build(&objects).await {
            Err(errors) => Refresh::Rejected(errors),
            Ok((_, _, changed)) if changed.is_empty() => Refresh::Unchanged,
            Ok((fresh, registry, changed)) => {
                let warnings = fresh.values().flat_map(|o| o.parsed.warnings.iter().cloned()).collect();
                *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
                *objects = fresh;
                Refresh::Updated { changed, warnings }
            }
        }
    }

    fn source_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn error(&self, source: String, message: String) -> ConfigError {
        ConfigError { source, line: None, path: String::new(), message }
    }

    /// Lists the prefix and parses what changed relative to `known`: the new objects, their
    /// registry and the sources that changed. Nothing is committed here.
    #[allow(clippy::type_complexity)]
    async fn build(
        &self,
        known: &BTreeMap<String, Arc<Object>>,
    ) -> Result<(BTreeMap<String, Arc<Object>>, Registry, Vec<String>), ConfigErrors> {
        let listing = self.list().await.map_err(ConfigErrors::from)?;
        if listing.is_empty() {
            return Err(self
                .error(
                    format!("s3://{}/{}", self.bucket, self.prefix),
                    "no agent configs (*.yaml, *.yml) found".into(),
                )
                .into());
        }
        let mut errors = Vec::new();
        let mut changed = Vec::new();
        let mut fresh = BTreeMap::new();
        for (key, etag, size) in listing {
            let source = self.source_of(&key);
            let old = known.get(&key);
            if let Some(o) = old.filter(|o| o.etag == etag) {
                fresh.insert(key, o.clone());
                continue;
            }
            if size > MAX_OBJECT_BYTES {
                errors.push(self.error(source, format!("object is larger than {MAX_OBJECT_BYTES} bytes")));
                continue;
            }
            match self.fetch(&key, old.map(|o| o.etag.as_str())).await {
                Ok(Fetched::NotModified) => {
                    if let Some(o) = old {
                        fresh.insert(key, o.clone());
                    }
                }
                Ok(Fetched::Text { text, etag }) => {
                    self.parses.fetch_add(1, Ordering::Relaxed);
                    let env = ParseEnv { vars: &self.vars, sidecar: &s3_sidecar };
                    let parsed = if PolicyFile::is_policy_path(&key) {
                        Ok(Parsed {
                            policy_files: vec![PolicyFile { source: source.clone(), text }],
                            ..Parsed::default()
                        })
                    } else {
                        parse_documents_in(&source, &text, &env)
                    };
                    match parsed {
                        Ok(parsed) => {
                            changed.push(source);
                            fresh.insert(key, Arc::new(Object { etag, parsed }));
                        }
                        Err(e) => errors.extend(e),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        for key in known.keys().filter(|k| !fresh.contains_key(*k)) {
            changed.push(self.source_of(key));
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        changed.sort();
        let agents = fresh.values().flat_map(|o| o.parsed.agents.iter().cloned()).collect();
        let files: Vec<PolicyFile> =
            fresh.values().flat_map(|o| o.parsed.policy_files.iter().cloned()).collect();
        let registry = Registry::new(agents)?.with_policies(Policies::compile(&files)?);
        Ok((fresh, registry, changed))
    }

    /// `(key, etag, size)` of every config object under the prefix, sorted by key.
    async fn list(&self) -> Result<Vec<(String, String, i64)>, ConfigError> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(&self.prefix).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                self.error(
                    format!("s3://{}/{}", self.bucket, self.prefix),
                    format!("cannot list: {}", DisplayErrorContext(&e)),
                )
            })?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                let rel = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
                if !(is_yaml(key) || PolicyFile::is_policy_path(rel))
                    || rel.split('/').any(|part| part.starts_with('.'))
                {
                    continue;
                }
                out.push((
                    key.to_owned(),
                    obj.e_tag().unwrap_or_default().to_owned(),
                    obj.size().unwrap_or(0),
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn fetch(&self, key: &str, if_none_match: Option<&str>) -> Result<Fetched, ConfigError> {
        let source = self.source_of(key);
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(etag) = if_none_match.filter(|e| !e.is_empty()) {
            req = req.if_none_match(etag);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                return Ok(Fetched::NotModified);
            }
            Err(e) => return Err(self.error(source, format!("cannot read: {}", DisplayErrorContext(&e)))),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.error(source.clone(), format!("cannot read: {e}")))?
            .into_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error(source, "cannot read: not valid UTF-8".into()))?;
        Ok(Fetched::Text { text, etag })
    }
}

fn is_yaml(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            ConfigLocation::parse("s3://my-bucket/agents/prod/").expect("ok"),
            ConfigLocation::S3 { bucket: "my-bucket".into(), prefix: "agents/prod/".into() }
        );
        assert_eq!(
            ConfigLocation::parse("s3://my-bucket").expect("ok"),
            ConfigLocation::S3 { bucket: "my-bucket".into(), prefix: String::new() }
        );
        assert_eq!(ConfigLocation::parse("examples/").expect("ok"), ConfigLocation::Path("examples/".into()));
        assert!(ConfigLocation::parse("s3://").is_err());
        assert!(ConfigLocation::parse("s3://Bad_Bucket/x").is_err());
        assert_eq!(ConfigLocation::parse("s3://b-1/a/").expect("ok").to_string(), "s3://b-1/a/");
        assert!(is_yaml("a/B.YML") && is_yaml("x.yaml") && !is_yaml("x.yaml.bak"));
    }
}
