//! In-memory session store: the embedded default. Bounded (oldest session evicted past
//! `max_sessions`), expiring (`ttl` since the last write) and safe under concurrent appends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::{SessionId, SessionStore, StoreError};
use crate::llm::Message;

struct Entry {
    messages: Vec<Message>,
    touched: Instant,
    /// Write order, for eviction (instants can tie).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<SessionId, Entry>,
    next_seq: u64,
}

pub struct MemorySessionStore {
    ttl: Duration,
    max_sessions: usize,
    sessions: Mutex<Inner>,
}

impl MemorySessionStore {
    pub fn new(ttl: Duration, max_sessions: usize) -> Self {
        Self { ttl, max_sessions: max_sessions.max(1), sessions: Mutex::new(Inner::default()) }
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new(Duration::from_secs(3600), 10_000)
    }
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
        let mut guard = self.sessions.lock().await;
        let Inner { map: sessions, next_seq } = &mut *guard;
        let now = Instant::now();
        *next_seq += 1;
        if !sessions.contains_key(id) && sessions.len() >= self.max_sessions {
            sessions.retain(|_, e| now.duration_since(e.touched) < self.ttl);
            if sessions.len() >= self.max_sessions
                && let Some(oldest) = sessions.iter().min_by_key(|(_, e)| e.seq).map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        let entry = sessions.entry(id.clone()).or_insert_with(|| Entry {
            messages: Vec::new(),
            touched: now,
            seq: 0,
        });
        if now.duration_since(entry.touched) >= self.ttl {
            entry.messages.clear();
        }
        entry.messages.extend_from_slice(messages);
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
    async fn expired_sessions_read_empty_and_the_oldest_is_evicted_at_the_cap() {
        let store = MemorySessionStore::new(Duration::from_millis(0), 10);
        let id = SessionId::parse("gone").expect("valid");
        store.append(&id, &[Message::user("hi")]).await.expect("append");
        assert!(store.load(&id).await.expect("load").is_empty());

        let store = MemorySessionStore::new(Duration::from_secs(60), 2);
        let ids: Vec<SessionId> =
            ["a", "b", "c"].iter().map(|s| SessionId::parse(s).expect("valid")).collect();
        for id in &ids {
            store.append(id, &[Message::user(id.as_str())]).await.expect("append");
        }
        assert!(store.load(&ids[0]).await.expect("load").is_empty(), "oldest evicted");
        assert_eq!(store.load(&ids[2]).await.expect("load").len(), 1);
    }
}
