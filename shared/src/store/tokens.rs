//! The OAuth token store port: sealed (encrypted) bytes by key with a lifetime, and leases.
//!
//! Holds what the OAuth layer keeps across containers: each caller's tokens for each server,
//! each service token, and the state of authorizations in flight. Values arrive already sealed
//! (the OAuth layer encrypts before and decrypts after; nothing here can read a token), keys are
//! hashes (no caller id, URL or scope appears in a key). A lease (`SET NX PX`) lets one container
//! ask a token endpoint while the others wait for its answer instead of asking too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::StoreError;

/// Sealed token records shared across containers.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put(&self, key: &str, sealed: &[u8], keep_for: Duration) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Takes the lease `key` for `lease` if nobody holds it: `true` means "you do it".
    async fn try_lease(&self, key: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Gives a lease back early (its holder finished).
    async fn release(&self, key: &str) -> Result<(), StoreError>;
    fn backend(&self) -> &'static str;
}

/// Takes the in-process lease `key` for `lease` unless someone holds it (expired ones dropped).
pub(super) fn take_lease<K: std::hash::Hash + Eq>(
    leases: &mut HashMap<K, Instant>,
    key: K,
    lease: Duration,
) -> bool {
    let now = Instant::now();
    leases.retain(|_, until| *until > now);
    if leases.contains_key(&key) {
        return false;
    }
    leases.insert(key, now + lease);
    true
}

#[derive(Default)]
struct Inner {
    values: HashMap<String, (Vec<u8>, Instant)>,
    leases: HashMap<String, Instant>,
}

/// In-process token store: the embedded default (one process shares with itself). Bounded:
/// past `max_entries`, expired records and then the one expiring first are dropped.
pub struct MemoryTokenStore {
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl MemoryTokenStore {
    pub fn new(max_entries: usize) -> Self {
        Self { max_entries: max_entries.max(1), inner: Mutex::new(Inner::default()) }
    }
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new(10_000)
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.inner.lock().await;
        Ok(inner.values.get(key).filter(|(_, until)| *until > Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn put(&self, key: &str, sealed: &[u8], keep_for: Duration) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        if !inner.values.contains_key(key) && inner.values.len() >= self.max_entries {
            inner.values.retain(|_, (_, until)| *until > now);
            if inner.values.len() >= self.max_entries
                && let Some(first) =
                    inner.values.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| k.clone())
            {
                inner.values.remove(&first);
            }
        }
        inner.values.insert(key.to_owned(), (sealed.to_vec(), now + keep_for));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.lock().await.values.remove(key);
        Ok(())
    }

    async fn try_lease(&self, key: &str, lease: Duration) -> Result<bool, StoreError> {
        Ok(take_lease(&mut self.inner.lock().await.leases, key.to_owned(), lease))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.inner.lock().await.leases.remove(key);
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_expire_and_one_caller_holds_a_lease() {
        let store = MemoryTokenStore::new(2);
        store.put("a", b"sealed-a", Duration::from_secs(60)).await.expect("put");
        assert_eq!(store.get("a").await.expect("get").as_deref(), Some(&b"sealed-a"[..]));
        store.put("gone", b"x", Duration::ZERO).await.expect("put");
        assert_eq!(store.get("gone").await.expect("get"), None);
        store.put("b", b"b", Duration::from_secs(60)).await.expect("put");
        store.put("c", b"c", Duration::from_secs(30)).await.expect("put over the bound");
        assert!(store.get("c").await.expect("get").is_some());
        assert!(store.try_lease("k", Duration::from_secs(5)).await.expect("lease"));
        assert!(!store.try_lease("k", Duration::from_secs(5)).await.expect("held"));
        store.release("k").await.expect("release");
        assert!(store.try_lease("k", Duration::from_secs(5)).await.expect("free again"));
        store.delete("a").await.expect("delete");
        assert_eq!(store.get("a").await.expect("get"), None);
    }
}
