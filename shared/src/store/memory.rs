//! In-memory session store: the embedded default. Bounded by bytes (the oldest sessions are
//! evicted once the stored messages pass `max_bytes`, counted as their JSON size), expiring
//! (`ttl` since the last write) and safe under concurrent appends. One session that alone would
//! pass the bound is refused with [`StoreError::Unavailable`] naming it, never truncated.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::{SessionId, SessionStore, StoreError};
use crate::llm::Message;

struct Entry {
    messages: Vec<Message>,
    /// JSON size of `messages`.
    bytes: usize,
    touched: Instant,
    /// Write order, for eviction (instants can tie).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<SessionId, Entry>,
    next_seq: u64,
    /// Sum of the entries' `bytes`.
    bytes: usize,
}

pub struct MemorySessionStore {
    ttl: Duration,
    max_bytes: usize,
    sessions: Mutex<Inner>,
}

/// The default bound: 64 MiB of messages.
pub const DEFAULT_MEMORY_SESSION_BYTES: usize = 64 << 20;

impl MemorySessionStore {
    /// Sessions expire `ttl` after their last write; all of them together hold at most
    /// `max_bytes` of messages (JSON size).
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Self { ttl, max_bytes: max_bytes.max(1), sessions: Mutex::new(Inner::default()) }
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new(Duration::from_secs(3600), DEFAULT_MEMORY_SESSION_BYTES)
    }
}

/// What a message costs: its JSON size.
fn json_size(m: &Message) -> usize {
    serde_json::to_vec(m).map_or(0, |v| v.len())
}

#[async_trait::async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, id: &SessionId) -> Result<Vec<Message>, StoreError> {
        let sessions = self.sessions.lock().await;
        Ok(sessions
            .map
            .get(id)
            .filter(|e| e.touched.elapsed() < self.ttl)
            .map(|e| e.messages.clone())
            .unwrap_or_default())
    }

    async fn append(&self, id: &SessionId, messages: &[Message]) -> Result<(), StoreError> {
        let added: usize = messages.iter().map(json_size).sum();
        let mut guard = self.sessions.lock().await;
        let Inner { map: sessions, next_seq, bytes: total } = &mut *guard;
        let now = Instant::now();
        *next_seq += 1;
        let kept =
            sessions.get(id).filter(|e| now.duration_since(e.touched) < self.ttl).map_or(0, |e| e.bytes);
        if kept + added > self.max_bytes {
            return Err(StoreError::Unavailable(format!(
                "session {id} would hold {} bytes, more than the in-memory store's bound of {} bytes",
                kept + added,
                self.max_bytes
            )));
        }
        if *total + added > self.max_bytes {
            sessions.retain(|_, e| {
                let live = now.duration_since(e.touched) < self.ttl;
                if !live {
                    *total -= e.bytes;
                }
                live
            });
        }
        // Oldest first, never the session being written.
        while *total + added > self.max_bytes {
            let Some(oldest) =
                sessions.iter().filter(|(k, _)| *k != id).min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = sessions.remove(&oldest) {
                *total -= e.bytes;
            }
        }
        let entry = sessions.entry(id.clone()).or_insert_with(|| Entry {
            messages: Vec::new(),
            bytes: 0,
            touched: now,
            seq: 0,
        });
        if now.duration_since(entry.touched) >= self.ttl {
            *total -= entry.bytes;
            entry.messages.clear();
            entry.bytes = 0;
        }
        entry.messages.extend_from_slice(messages);
        entry.bytes += added;
        *total += added;
        entry.touched = now;
        entry.seq = *next_seq;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_appends_all_land() {
        let store = Arc::new(MemorySessionStore::default());
        let id = SessionId::parse("s1").expect("valid");
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (store, id) = (store.clone(), id.clone());
            tasks.push(tokio::spawn(
                async move { store.append(&id, &[Message::user(format!("m{i}"))]).await },
            ));
        }
        for t in tasks {
            t.await.expect("join").expect("append");
        }
        let got = store.load(&id).await.expect("load");
        assert_eq!(got.len(), 50);
        for i in 0..50 {
            assert!(got.iter().any(|m| m.content.as_deref() == Some(&format!("m{i}"))), "m{i} lost");
        }
    }

    #[tokio::test]
    async fn expired_sessions_read_empty_and_the_oldest_is_evicted_past_the_byte_bound() {
        let store = MemorySessionStore::new(Duration::from_millis(0), 1 << 20);
        let id = SessionId::parse("gone").expect("valid");
        store.append(&id, &[Message::user("hi")]).await.expect("append");
        assert!(store.load(&id).await.expect("load").is_empty());

        // Room for two sessions of one 1 KB message each, not three.
        let one = json_size(&Message::user("x".repeat(1000)));
        let store = MemorySessionStore::new(Duration::from_secs(60), 2 * one + one / 2);
        let ids: Vec<SessionId> =
            ["a", "b", "c"].iter().map(|s| SessionId::parse(s).expect("valid")).collect();
        for id in &ids {
            store.append(id, &[Message::user("x".repeat(1000))]).await.expect("append");
        }
        assert!(store.load(&ids[0]).await.expect("load").is_empty(), "oldest evicted");
        assert_eq!(store.load(&ids[1]).await.expect("load").len(), 1);
        assert_eq!(store.load(&ids[2]).await.expect("load").len(), 1);
        assert!(store.sessions.lock().await.bytes <= 2 * one + one / 2);

        // Many small sessions are not limited by their count, only by their bytes.
        let store = MemorySessionStore::new(Duration::from_secs(60), 1 << 20);
        for i in 0..20_000 {
            let id = SessionId::parse(&format!("s{i}")).expect("valid");
            store.append(&id, &[Message::user("hi")]).await.expect("append");
        }
        assert!(!store.load(&SessionId::parse("s0").expect("valid")).await.expect("load").is_empty());
    }

    #[tokio::test]
    async fn a_session_larger_than_the_whole_bound_is_refused_not_truncated() {
        let store = MemorySessionStore::new(Duration::from_secs(60), 3000);
        let id = SessionId::parse("big").expect("valid");
        store.append(&id, &[Message::user("x".repeat(1000))]).await.expect("fits");
        let err = store.append(&id, &[Message::user("y".repeat(2500))]).await.expect_err("too big");
        assert!(err.to_string().contains("more than the in-memory store's bound of 3000 bytes"), "{err}");
        assert_eq!(store.load(&id).await.expect("load").len(), 1, "the stored history is intact");
    }
}
