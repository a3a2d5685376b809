//! Where a process's agents come from: a registry loaded once (files), or one kept fresh from
//! S3 (ETag-conditional refresh after a TTL, the last good registry kept on a bad update).

use std::sync::Arc;

use super::Registry;
use super::s3::S3ConfigSource;

/// The closed set of agent sources.
#[derive(Debug, Clone)]
pub enum AgentSource {
    Static(Arc<Registry>),
    S3(Arc<S3ConfigSource>),
}

impl AgentSource {
    /// The registry as it is now (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<Registry> {
        match self {
            AgentSource::Static(r) => r.clone(),
            AgentSource::S3(s) => s.registry(),
        }
    }

    /// Starts a refresh in the background when the TTL has passed; never waits for it.
    pub fn refresh_if_stale(&self) {
        match self {
            AgentSource::Static(_) => {}
            AgentSource::S3(s) => s.spawn_refresh_if_stale(),
        }
    }
}

impl From<Registry> for AgentSource {
    fn from(r: Registry) -> Self {
        AgentSource::Static(Arc::new(r))
    }
}
