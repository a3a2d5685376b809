//! Inbound API keys: who may call which agent.
//!
//! Owns the key set's format (a JSON secret of key id -> SHA-256 of the key or the key itself,
//! and the agents it may call), checking a presented key in constant time, and keeping the set
//! for a TTL so a warm container reads the secret once per TTL, not once per request. It reads
//! the set through the [`SecretStore`] port only, so the Secrets Manager adapter plugs in where
//! [`EnvSecretStore`](crate::secrets::EnvSecretStore) is used today. It must not know about
//! HTTP or Lambda events: the authorizer function and the streaming function adapt those.
//!
//! The secret's shape:
//!
//! ```json
//! {
//!   "ci-bot":  {"sha256": "9f86d081…(64 hex digits)", "agents": ["*"]},
//!   "partner": {"key": "a-long-random-key", "agents": ["chat/*", "fs-assistant/0.1"]}
//! }
//! ```
//!
//! `agents` are globs over `name/version`; a pattern without `/` means every version of that
//! name. A presented key is hashed once and compared with every entry's hash, all of them,
//! without an early exit, so the time taken does not tell which entry (or how much of one)
//! matched.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secrets::{SecretError, SecretStore};

/// Why a key set could not be used. Messages name the key id and field, never a key or hash.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("API key set is not valid JSON of the expected shape: {0}")]
    Format(String),
    #[error("API key set entry {id:?}: {problem}")]
    Entry { id: String, problem: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    sha256: Option<String>,
    /// Hashed as soon as it is read; only the hash is kept.
    #[serde(default)]
    key: Option<String>,
    agents: Vec<String>,
}

/// One caller: its id, the hash of its key and the agents it may call.
struct Entry {
    id: String,
    hash: [u8; 32],
    agents: GlobSet,
}

/// A parsed key set.
pub struct ApiKeys {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.entries.iter().map(|e| e.id.as_str()).collect();
        f.debug_struct("ApiKeys").field("ids", &ids).finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// Parses the secret's JSON. Every entry needs exactly one of `sha256`/`key` and an `agents`
    /// list (empty: the key works only where no agent is named, e.g. `/ready`).
    pub fn parse(json: &str) -> Result<Self, AuthError> {
        let raw: BTreeMap<String, RawEntry> =
            serde_json::from_str(json).map_err(|e| AuthError::Format(e.to_string()))?;
        let mut entries = Vec::with_capacity(raw.len());
        for (id, e) in raw {
            let problem = |p: &str| AuthError::Entry { id: id.clone(), problem: p.to_owned() };
            let hash = match (&e.sha256, &e.key) {
                (Some(h), None) => {
                    parse_hex32(h).ok_or_else(|| problem("sha256 must be 64 hexadecimal digits"))?
                }
                (None, Some(k)) if k.len() >= 16 => sha256(k.as_bytes()),
                (None, Some(_)) => return Err(problem("key must be at least 16 characters")),
                _ => return Err(problem("give exactly one of `sha256` or `key`")),
            };
            let mut globs = GlobSetBuilder::new();
            for pattern in &e.agents {
                let full = if pattern.contains('/') || pattern == "*" {
                    pattern.clone()
                } else {
                    format!("{pattern}/*")
                };
                let glob = Glob::new(&full)
                    .map_err(|err| problem(&format!("agents: invalid glob {pattern:?}: {err}")))?;
                globs.add(glob);
            }
            let agents = globs.build().map_err(|err| problem(&format!("agents: {err}")))?;
            entries.push(Entry { id, hash, agents });
        }
        Ok(Self { entries })
    }

    /// The id of the entry whose key is `presented`. Every entry is compared, in constant time.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let hash = sha256(presented.as_bytes());
        let mut found: Option<&str> = None;
        for e in &self.entries {
            let matched: bool = e.hash.ct_eq(&hash).into();
            if matched {
                found = Some(&e.id);
            }
        }
        found
    }

    fn allows(&self, id: &str, agent: &str) -> bool {
        self.entries.iter().any(|e| e.id == id && e.agents.is_match(agent))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed { caller: String },
    Denied(Denial),
}

/// Why a request was refused. Only the log sees which; the client gets 401/403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    MissingKey,
    UnknownKey,
    AgentNotAllowed {
        caller: String,
        agent: String,
    },
    /// The key set could not be read or parsed: fail closed.
    KeysUnavailable,
}

impl Denial {
    /// 401 when the caller is not known, 403 when it is known but not allowed.
    pub fn status(&self) -> u16 {
        match self {
            Denial::MissingKey | Denial::UnknownKey | Denial::KeysUnavailable => 401,
            Denial::AgentNotAllowed { .. } => 403,
        }
    }
}

/// A value reused for a TTL. `now` is passed in so expiry is testable without sleeping.
#[derive(Debug)]
pub struct TtlCache<T> {
    ttl: Duration,
    slot: tokio::sync::Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> TtlCache<T> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, slot: tokio::sync::Mutex::new(None) }
    }

    /// The cached value if younger than the TTL at `now`, else the result of `load` (cached on
    /// success). If `load` fails with a transient error and an older value exists, the older value
    /// is kept and returned: a Secrets Manager blip must not lock every caller out.
    pub async fn get_or_load<E, F>(
        &self,
        now: Instant,
        load: impl FnOnce() -> F,
        transient: impl Fn(&E) -> bool,
    ) -> Result<Arc<T>, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = slot.as_ref()
            && now.saturating_duration_since(*at) < self.ttl
        {
            return Ok(v.clone());
        }
        match load().await {
            Ok(v) => {
                let v = Arc::new(v);
                *slot = Some((now, v.clone()));
                Ok(v)
            }
            Err(e) if transient(&e) => match slot.as_ref() {
                Some((_, older)) => Ok(older.clone()),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

/// Checks presented keys against the key set kept in a secret.
pub struct ApiKeyAuthorizer {
    store: Arc<dyn SecretStore>,
    secret_name: String,
    keys: TtlCache<ApiKeys>,
}

impl std::fmt::Debug for ApiKeyAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuthorizer").field("secret_name", &self.secret_name).finish()
    }
}

impl ApiKeyAuthorizer {
    pub fn new(store: Arc<dyn SecretStore>, secret_name: impl Into<String>, ttl: Duration) -> Self {
        Self { store, secret_name: secret_name.into(), keys: TtlCache::new(ttl) }
    }

    async fn keys(&self) -> Result<Arc<ApiKeys>, AuthError> {
        self.keys
            .get_or_load(
                Instant::now(),
                || async {
                    let value = self.store.get(&self.secret_name).await?;
                    ApiKeys::parse(value.expose_secret())
                },
                |e: &AuthError| matches!(e, AuthError::Secret(s) if s.is_transient()),
            )
            .await
    }

    /// Decides whether `key` may call `agent` (`name/version`; `None` for routes that name no
    /// agent, where any known key is enough).
    pub async fn authorize(&self, key: Option<&str>, agent: Option<&str>) -> Decision {
        let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
            return Decision::Denied(Denial::MissingKey);
        };
        let keys = match self.keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(secret = %self.secret_name, error = %e, "API key set unavailable; denying");
                return Decision::Denied(Denial::KeysUnavailable);
            }
        };
        let Some(caller) = keys.identify(key) else {
            return Decision::Denied(Denial::UnknownKey);
        };
        match agent {
            Some(agent) if !keys.allows(caller, agent) => Decision::Denied(Denial::AgentNotAllowed {
                caller: caller.to_owned(),
                agent: agent.to_owned(),
            }),
            _ => Decision::Allowed { caller: caller.to_owned() },
        }
    }
}

/// The hex SHA-256 of a key, as the `sha256` field wants it (`teal`-side helper and tests).
pub fn key_digest_hex(key: &str) -> String {
    crate::util::sha256_hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::secrets::EnvSecretStore;

    const KEY_A: &str = "key-a-0123456789abcdef";
    const KEY_B: &str = "key-b-0123456789abcdef";

    fn keys_json() -> String {
        format!(
            r#"{{"ci-bot": {{"sha256": "{}", "agents": ["*"]}},
                "partner": {{"key": "{KEY_B}", "agents": ["chat", "fs-assistant/0.*"]}}}}"#,
            key_digest_hex(KEY_A)
        )
    }

    #[test]
    fn keys_are_identified_by_hash_or_plain_value() {
        let keys = ApiKeys::parse(&keys_json()).expect("valid");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.identify(KEY_A), Some("ci-bot"));
        assert_eq!(keys.identify(KEY_B), Some("partner"));
        assert_eq!(keys.identify("key-a-0123456789abcdeX"), None);
        assert_eq!(keys.identify(""), None);
        assert!(keys.allows("partner", "chat/1.0"));
        assert!(keys.allows("partner", "fs-assistant/0.1"));
        assert!(!keys.allows("partner", "fs-assistant/1.0"));
        assert!(keys.allows("ci-bot", "anything/9"));
    }

    #[test]
    fn bad_entries_are_named_without_their_values() {
        let cases = [
            (
                r#"{"x": {"sha256": "abc", "agents": []}}"#,
                "entry \"x\": sha256 must be 64 hexadecimal digits",
            ),
            (r#"{"x": {"key": "short", "agents": []}}"#, "entry \"x\": key must be at least 16 characters"),
            (r#"{"x": {"agents": []}}"#, "entry \"x\": give exactly one of `sha256` or `key`"),
            (r#"{"x": {"key": "0123456789abcdefg", "agents": ["[a"]}}"#, "entry \"x\": agents: invalid glob"),
            (r#"{"x": {"key": "0123456789abcdefg"}}"#, "missing field `agents`"),
            (r#"["k"]"#, "not valid JSON of the expected shape"),
        ];
        for (json, want) in cases {
            let err = ApiKeys::parse(json).expect_err(json).to_string();
            assert!(err.contains(want), "{json}: {err}");
            assert!(!err.contains("0123456789abcdefg"), "{err}");
        }
        let shown = format!("{:?}", ApiKeys::parse(&keys_json()).expect("valid"));
        assert!(!shown.contains(KEY_B) && shown.contains("partner"), "{shown}");
    }

    #[tokio::test]
    async fn decisions_cover_missing_unknown_forbidden_and_allowed() {
        let store = Arc::new(EnvSecretStore::new().with("KEYS", keys_json()));
        let auth = ApiKeyAuthorizer::new(store, "KEYS", Duration::from_secs(60));
        assert_eq!(auth.authorize(None, Some("chat/1.0")).await, Decision::Denied(Denial::MissingKey));
        assert_eq!(auth.authorize(Some("  "), None).await, Decision::Denied(Denial::MissingKey));
        assert_eq!(auth.authorize(Some("nope"), None).await, Decision::Denied(Denial::UnknownKey));
        let forbidden = auth.authorize(Some(KEY_B), Some("secret-agent/1")).await;
        assert_eq!(
            forbidden,
            Decision::Denied(Denial::AgentNotAllowed {
                caller: "partner".into(),
                agent: "secret-agent/1".into()
            })
        );
        assert_eq!(Denial::UnknownKey.status(), 401);
        assert_eq!(Denial::AgentNotAllowed { caller: String::new(), agent: String::new() }.status(), 403);
        assert_eq!(
            auth.authorize(Some(KEY_B), Some("chat/1.0")).await,
            Decision::Allowed { caller: "partner".into() }
        );
        assert_eq!(auth.authorize(Some(KEY_A), None).await, Decision::Allowed { caller: "ci-bot".into() });
    }

    #[tokio::test]
    async fn a_missing_or_broken_key_set_denies_everyone() {
        let auth = ApiKeyAuthorizer::new(
            Arc::new(EnvSecretStore::new()),
            "TEAL_SURELY_UNSET_KEYS_42",
            Duration::from_secs(60),
        );
        assert_eq!(auth.authorize(Some(KEY_A), None).await, Decision::Denied(Denial::KeysUnavailable));
        let store = Arc::new(EnvSecretStore::new().with("KEYS", "{not json"));
        let auth = ApiKeyAuthorizer::new(store, "KEYS", Duration::from_secs(60));
        assert_eq!(auth.authorize(Some(KEY_A), None).await, Decision::Denied(Denial::KeysUnavailable));
    }

    #[tokio::test]
    async fn the_cache_reloads_after_its_ttl_and_survives_transient_failures() {
        let cache: TtlCache<u32> = TtlCache::new(Duration::from_secs(10));
        let loads = Cell::new(0u32);
        let load = |result: Result<u32, &'static str>| {
            loads.set(loads.get() + 1);
            async move { result }
        };
        let transient = |e: &&str| *e == "blip";
        let t0 = Instant::now();
        assert_eq!(*cache.get_or_load(t0, || load(Ok(1)), transient).await.expect("load"), 1);
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(*cache.get_or_load(t5, || load(Ok(2)), transient).await.expect("cached"), 1);
        assert_eq!(loads.get(), 1, "a fresh value is not reloaded");
        let t11 = t0 + Duration::from_secs(11);
        assert_eq!(*cache.get_or_load(t11, || load(Err("blip")), transient).await.expect("stale"), 1);
        assert_eq!(cache.get_or_load(t11, || load(Err("gone")), transient).await.expect_err("fatal"), "gone");
        assert_eq!(*cache.get_or_load(t11, || load(Ok(3)), transient).await.expect("reload"), 3);
        assert_eq!(loads.get(), 4);
        let empty: TtlCache<u32> = TtlCache::new(Duration::from_secs(10));
        assert_eq!(empty.get_or_load(t0, || load(Err("blip")), transient).await.expect_err("none"), "blip");
    }
}
