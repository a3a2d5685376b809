//! Which MCP protocol revision each server speaks, and so how a connection to it starts.
//!
//! A server that speaks `2026-07-28` needs no handshake: every request carries its revision and
//! our capabilities, so a client is made without any round trip and the first request on it is
//! the real one (a tool call or a list). An older server needs `initialize` (we offer the newest
//! revision that has one, `2025-11-25`, and take the one it answers with: `2025-06-18`,
//! `2025-03-26`, …), then keeps its session as before. A server nobody has reached yet is
//! probed once (`server/discover`, falling back to `initialize` when it is refused).
//!
//! What a server speaks is remembered per URL: in this process, and in the shared catalog (the
//! revision a list was made with rides along in the catalog entry, and a per-server record
//! holds it for containers that miss the list), so no container probes a server another one
//! already probed. A remembered revision can go stale (a server downgraded, or replaced): the
//! first request on a client set up from memory that the server rejects makes the pool forget
//! it, probe again and resend once. An older revision is trusted only for the catalog TTL: a new
//! connection after that probes again, so a server upgraded to `2026-07-28` is spoken to in it
//! by every container within one TTL (its old sessions keep working meanwhile).

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use rmcp::ClientLifecycleMode;
use rmcp::model::{ErrorCode, ErrorData, ProtocolVersion};
use rmcp::service::ServiceError;
use rmcp::transport::streamable_http_client::{StreamableHttpError, StreamableHttpProtocolError};

use super::pool::lock;

/// How a connection starts, given what is known of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Start {
    /// `2026-07-28` or later: no handshake at all.
    Direct(ProtocolVersion),
    /// An older revision: `initialize`, offering `2025-11-25`.
    Initialize,
    /// Unknown: `server/discover`, then `initialize` if the server is older.
    Probe,
}

impl Start {
    pub(super) fn for_known(known: Option<ProtocolVersion>) -> Self {
        match known {
            Some(v) if !v.has_initialize() => Start::Direct(v),
            Some(_) => Start::Initialize,
            None => Start::Probe,
        }
    }

    /// rmcp's lifecycle for the starts that have one.
    pub(super) fn lifecycle(&self) -> ClientLifecycleMode {
        match self {
            Start::Probe => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
            Start::Direct(_) | Start::Initialize => ClientLifecycleMode::Initialize,
        }
    }

    /// For the log line: how many round trips the start cost.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Start::Direct(_) => "none",
            Start::Initialize => "initialize",
            Start::Probe => "discover",
        }
    }
}

/// A revision we know, from its wire name; anything else is "unknown" (probe again).
pub(super) fn parse(name: &str) -> Option<ProtocolVersion> {
    ProtocolVersion::KNOWN_VERSIONS.iter().find(|v| v.as_str() == name).cloned()
}

/// What each server URL speaks and since when, as learned in this process (bounded by the
/// configured servers). `None`: what we remembered was refused, probe (whatever others say).
#[derive(Default)]
pub(super) struct Revisions(StdMutex<HashMap<String, Option<(ProtocolVersion, Instant)>>>);

/// What this process knows of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Known {
    Speaks(ProtocolVersion),
    /// Nothing (or nothing recent enough): ask the shared catalog, else probe.
    Nothing,
    /// What we knew was refused: probe.
    Refused,
}

impl Revisions {
    /// What `url` speaks; an older revision only if learned less than `trust_old_for` ago.
    pub(super) fn get(&self, url: &str, trust_old_for: Duration) -> Known {
        match lock(&self.0).get(url) {
            None => Known::Nothing,
            Some(None) => Known::Refused,
            Some(Some((v, since))) if !v.has_initialize() || since.elapsed() < trust_old_for => {
                Known::Speaks(v.clone())
            }
            Some(Some(_)) => Known::Nothing,
        }
    }

    /// Records `v` for `url`, as seen `age` ago; true if it was not what we knew.
    pub(super) fn learn(&self, url: &str, v: ProtocolVersion, age: Duration) -> bool {
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let previous = lock(&self.0).insert(url.to_owned(), Some((v.clone(), since)));
        previous.flatten().map(|(was, _)| was).as_ref() != Some(&v)
    }

    /// What we knew of `url` was refused: the next connection probes.
    pub(super) fn forget(&self, url: &str) {
        lock(&self.0).insert(url.to_owned(), None);
    }
}

/// A JSON-RPC error that says the request's revision (or the headers it implies) is not
/// accepted: the server is not what we remembered.
pub(super) fn rejects_revision(e: &ErrorData) -> bool {
    matches!(
        e.code,
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION | ErrorCode::HEADER_MISMATCH | ErrorCode::INVALID_REQUEST
    )
}

/// A failed first request on a client set up from memory that the server answered (rather than
/// a network failure or a refused credential): the remembered revision may be wrong.
pub(super) fn answered_but_refused(e: &ServiceError) -> bool {
    match e {
        ServiceError::McpError(data) => rejects_revision(data),
        ServiceError::TransportSend(t) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(t.error.as_ref());
            while let Some(current) = source {
                if let Some(http) = current.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
                    return matches!(
                        http,
                        StreamableHttpError::UnexpectedServerResponse(_)
                            | StreamableHttpError::UnexpectedContentType(_)
                            | StreamableHttpError::SessionExpired
                            | StreamableHttpError::MissingSessionIdInResponse
                    );
                }
                if current.downcast_ref::<StreamableHttpProtocolError>().is_some() {
                    return true;
                }
                source = current.source();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_revisions_decide_the_start() {
        assert_eq!(Start::for_known(parse("2026-07-28")), Start::Direct(ProtocolVersion::V_2026_07_28));
        assert_eq!(Start::for_known(parse("2025-06-18")), Start::Initialize);
        assert_eq!(Start::for_known(parse("1999-01-01")), Start::Probe, "unknown names are probed");
        assert_eq!(Start::for_known(None), Start::Probe);
        let ClientLifecycleMode::Auto { legacy_version, .. } = Start::Probe.lifecycle() else {
            panic!("a probe falls back")
        };
        assert_eq!(legacy_version, Some(ProtocolVersion::V_2025_11_25), "never 2026-07-28 in initialize");
    }

    #[test]
    fn revisions_are_learned_and_forgotten_per_url() {
        let (r, ttl, now) = (Revisions::default(), Duration::from_secs(300), Duration::ZERO);
        assert_eq!(r.get("http://a/mcp", ttl), Known::Nothing);
        assert!(r.learn("http://a/mcp", ProtocolVersion::V_2025_06_18, now));
        assert!(!r.learn("http://a/mcp", ProtocolVersion::V_2025_06_18, now), "nothing new");
        assert_eq!(r.get("http://a/mcp", ttl), Known::Speaks(ProtocolVersion::V_2025_06_18));
        r.forget("http://a/mcp");
        assert_eq!(r.get("http://a/mcp", ttl), Known::Refused);
        // An old revision learned a TTL ago is probed again; 2026-07-28 needs no such check.
        r.learn("http://a/mcp", ProtocolVersion::V_2025_06_18, ttl);
        assert_eq!(r.get("http://a/mcp", ttl), Known::Nothing);
        r.learn("http://b/mcp", ProtocolVersion::V_2026_07_28, ttl);
        assert_eq!(r.get("http://b/mcp", ttl), Known::Speaks(ProtocolVersion::V_2026_07_28));
    }
}
