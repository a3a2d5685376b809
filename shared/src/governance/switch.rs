//! The kill switch: `teal disable NAME[/VERSION]` turns an agent off in every container within a
//! second, `teal enable` turns it back on.
//!
//! The switches live in the [`SwitchStore`] (one Redis hash). Each container keeps the whole map
//! and reads it again at most once a second, lazily: the first request (or run step) that finds
//! it older than [`REFRESH_EVERY`] reads it (one request at a time; the others wait for that
//! read rather than read too), every other one decides from memory. The admission script of the
//! rate limit and daily budgets can bring the map along in its own round trip ([`KillSwitch::absorb`]).
//! A new request for a disabled agent gets 503 naming the switch; a run in flight stops before
//! its next LLM or tool call. If the store cannot be read, the last map read stays in force and
//! is tried again a second later. Without a store (no Redis: `teal serve` alone) nothing is ever
//! off.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::SwitchStore;

/// The oldest a container's view of the switches may be.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What a switch names: every version of an agent, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchTarget {
    pub name: String,
    pub version: Option<String>,
}

impl SwitchTarget {
    /// `NAME` or `NAME/VERSION`, each 1-128 characters of `A-Z a-z 0-9 . _ : -`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        };
        let (name, version) = match text.split_once('/') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        if !ok(name) || version.is_some_and(|v| !ok(v)) {
            return Err(format!(
                "`{text}`: expected NAME or NAME/VERSION, each 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"
            ));
        }
        Ok(Self { name: name.to_owned(), version: version.map(str::to_owned) })
    }

    /// The field it is stored under: `NAME` or `NAME/VERSION`.
    pub fn key(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The switch fields that turn `name`/`version` off: `NAME` and `NAME/VERSION`.
pub fn switch_keys(name: &str, version: &str) -> [String; 2] {
    [name.to_owned(), format!("{name}/{version}")]
}

/// Why an agent does not run: the switch that is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "agent {agent}/{version} is disabled by the kill switch `{switch}`{note}; enable it with `teal enable {switch}`"
)]
pub struct Disabled {
    pub agent: String,
    pub version: String,
    /// The switch field: `NAME` or `NAME/VERSION`.
    pub switch: String,
    /// ` (set at …: reason)`, from the note `teal disable` wrote.
    note: String,
}

/// What `teal disable` writes as a switch's note: now, and why.
pub fn note(reason: Option<&str>) -> String {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::json!({"at": at, "reason": reason}).to_string()
}

fn describe(note: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(note).unwrap_or_default();
    let at = v["at"].as_str().filter(|s| s.len() <= 64);
    let reason = v["reason"].as_str().map(|r| r.chars().take(200).collect::<String>());
    match (at, reason) {
        (Some(at), Some(r)) => format!(" (set at {at}: {r})"),
        (Some(at), None) => format!(" (set at {at})"),
        (None, Some(r)) => format!(" ({r})"),
        (None, None) => String::new(),
    }
}

struct View {
    /// When the map was last read (or tried); `None`: never.
    read_at: Option<Instant>,
    switches: Arc<HashMap<String, String>>,
}

/// A container's view of the switches (see the module doc).
pub struct KillSwitch {
    store: Option<Arc<dyn SwitchStore>>,
    view: RwLock<View>,
    reading: tokio::sync::Mutex<()>,
    every: Duration,
}

impl KillSwitch {
    /// Switches read from `store`; `None`: no switch can be flipped (no shared store).
    pub fn new(store: Option<Arc<dyn SwitchStore>>) -> Self {
        Self {
            store,
            view: RwLock::new(View { read_at: None, switches: Arc::default() }),
            reading: tokio::sync::Mutex::new(()),
            every: REFRESH_EVERY,
        }
    }

    /// The same, with the view kept for `every` instead of [`REFRESH_EVERY`] (tests).
    pub fn refreshed_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Whether there is a shared store to read the switches from.
    pub fn is_shared(&self) -> bool {
        self.store.is_some()
    }

    /// Whether the view is older than [`REFRESH_EVERY`] (and there is a store to read).
    pub fn is_stale(&self) -> bool {
        self.store.is_some()
            && self
                .view
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .read_at
                .is_none_or(|t| t.elapsed() >= self.every)
    }

    /// Takes a map read elsewhere (the admission script's round trip) as the view.
    pub fn absorb(&self, switches: HashMap<String, String>) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) =
            View { read_at: Some(Instant::now()), switches: Arc::new(switches) };
    }

    /// The switch that turns `name`/`version` off, in the view as it is (no read).
    pub fn cached(&self, name: &str, version: &str) -> Option<Disabled> {
        let switches = self.view.read().unwrap_or_else(|p| p.into_inner()).switches.clone();
        if switches.is_empty() {
            return None;
        }
        switch_keys(name, version).into_iter().find_map(|key| {
            switches.get(&key).map(|n| Disabled {
                agent: name.to_owned(),
                version: version.to_owned(),
                switch: key.clone(),
                note: describe(n),
            })
        })
    }

    /// The switch that turns `name`/`version` off, reading the map first when it is stale.
    pub async fn check(&self, name: &str, version: &str) -> Option<Disabled> {
        if self.is_stale() {
            self.refresh().await;
        }
        self.cached(name, version)
    }

    /// Reads the map (one reader at a time; who waited finds it fresh and reads nothing).
    pub async fn refresh(&self) {
        let Some(store) = &self.store else { return };
        let _one = self.reading.lock().await;
        if !self.is_stale() {
            return;
        }
        match store.read_all().await {
            Ok(switches) => self.absorb(switches),
            // Redis is down: the last map read stays in force; tried again in a second.
            Err(_) => self.view.write().unwrap_or_else(|p| p.into_inner()).read_at = Some(Instant::now()),
        }
    }

    /// The guard a run of `name`/`version` checks before each LLM and tool call.
    pub fn guard<'a>(&'a self, name: &'a str, version: &'a str) -> SwitchGuard<'a> {
        SwitchGuard { switch: self, name, version }
    }
}

/// One agent's switch, as a run checks it.
#[derive(Clone, Copy)]
pub struct SwitchGuard<'a> {
    switch: &'a KillSwitch,
    name: &'a str,
    version: &'a str,
}

impl SwitchGuard<'_> {
    pub async fn check(&self) -> Option<Disabled> {
        self.switch.check(self.name, self.version).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::{MemorySwitchStore, StoreError};

    /// The memory store, counting reads.
    #[derive(Default)]
    struct Counted {
        inner: MemorySwitchStore,
        reads: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl SwitchStore for Counted {
        async fn read_all(&self) -> Result<HashMap<String, String>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.read_all().await
        }
        async fn set(&self, target: &str, note: &str) -> Result<bool, StoreError> {
            self.inner.set(target, note).await
        }
        async fn clear(&self, target: &str) -> Result<bool, StoreError> {
            self.inner.clear(target).await
        }
        fn backend(&self) -> &'static str {
            "counted"
        }
    }

    #[test]
    fn targets_are_a_name_or_a_name_and_version() {
        let t = SwitchTarget::parse("fs-assistant/0.1").expect("ok");
        assert_eq!(
            (t.name.as_str(), t.version.as_deref(), t.key()),
            ("fs-assistant", Some("0.1"), "fs-assistant/0.1".into())
        );
        assert_eq!(SwitchTarget::parse("chat").expect("ok").key(), "chat");
        for bad in ["", "a/", "/1", "a/b/c", "has space", &"x".repeat(129)] {
            assert!(SwitchTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_view_is_read_once_per_period_and_names_the_switch() {
        let store = Arc::new(Counted::default());
        let switch = KillSwitch::new(Some(store.clone())).refreshed_every(Duration::from_secs(3600));
        assert!(switch.check("a", "1").await.is_none());
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);
        store.set("a", &note(Some("incident 42"))).await.expect("set");
        // Within the period the container decides from memory: no read, the old view.
        assert!(switch.check("a", "1").await.is_none());
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);

        let fresh = KillSwitch::new(Some(store.clone())).refreshed_every(Duration::ZERO);
        let d = fresh.check("a", "1").await.expect("disabled by the whole-agent switch");
        assert_eq!(d.switch, "a");
        let text = d.to_string();
        assert!(text.starts_with("agent a/1 is disabled by the kill switch `a` (set at "), "{text}");
        assert!(text.ends_with(": incident 42); enable it with `teal enable a`"), "{text}");
        assert!(fresh.check("b", "1").await.is_none(), "other agents run");
        store.clear("a").await.expect("clear");
        store.set("a/2", "{}").await.expect("set");
        assert!(fresh.check("a", "1").await.is_none(), "a switch on one version leaves the others");
        assert_eq!(fresh.check("a", "2").await.map(|d| d.switch).as_deref(), Some("a/2"));
    }

    #[tokio::test]
    async fn a_view_brought_by_another_read_counts_as_fresh() {
        let store = Arc::new(Counted::default());
        let switch = KillSwitch::new(Some(store.clone())).refreshed_every(Duration::from_secs(3600));
        assert!(switch.is_stale());
        switch.absorb(HashMap::from([("a".to_owned(), "{}".to_owned())]));
        assert!(!switch.is_stale());
        assert!(switch.check("a", "1").await.is_some());
        assert_eq!(store.reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn without_a_store_nothing_is_off_and_nothing_is_read() {
        let switch = KillSwitch::new(None);
        assert!(!switch.is_shared() && !switch.is_stale());
        assert!(switch.check("a", "1").await.is_none());
    }
}
