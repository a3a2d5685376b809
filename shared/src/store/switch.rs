//! The kill switch port: which agents are switched off, shared by every container.
//!
//! One map from a switch target (`NAME` for every version of an agent, or `NAME/VERSION`) to a
//! note (when and why it was set, JSON written by `teal disable`). [`crate::governance::KillSwitch`]
//! reads it at most once a second per container and decides; `teal disable` / `teal enable`
//! write it. It must not decide what a switch means.

use std::collections::HashMap;

use tokio::sync::Mutex;

use super::StoreError;

/// At most this many switches are kept (`teal disable` refuses more): the whole map is read at
/// once by every container.
pub const MAX_SWITCHES: usize = 1000;

/// The switches, readable by every container.
#[async_trait::async_trait]
pub trait SwitchStore: Send + Sync {
    /// Every switch that is on: target -> note.
    async fn read_all(&self) -> Result<HashMap<String, String>, StoreError>;
    /// Turns `target` off (its note says when and why). `false`: refused, [`MAX_SWITCHES`] are set.
    async fn set(&self, target: &str, note: &str) -> Result<bool, StoreError>;
    /// Turns `target` back on; `false` when it was not off.
    async fn clear(&self, target: &str) -> Result<bool, StoreError>;
    fn backend(&self) -> &'static str;
}

/// Switches of this process only (tests; a local server has nobody else to tell).
#[derive(Default)]
pub struct MemorySwitchStore {
    switches: Mutex<HashMap<String, String>>,
}

#[async_trait::async_trait]
impl SwitchStore for MemorySwitchStore {
    async fn read_all(&self) -> Result<HashMap<String, String>, StoreError> {
        Ok(self.switches.lock().await.clone())
    }

    async fn set(&self, target: &str, note: &str) -> Result<bool, StoreError> {
        let mut switches = self.switches.lock().await;
        if switches.len() >= MAX_SWITCHES && !switches.contains_key(target) {
            return Ok(false);
        }
        switches.insert(target.to_owned(), note.to_owned());
        Ok(true)
    }

    async fn clear(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self.switches.lock().await.remove(target).is_some())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
