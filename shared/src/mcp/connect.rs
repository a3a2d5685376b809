//! Setting up a client for one server: its headers, its transport, and the start its revision
//! calls for ([`revision::Start`]): none, `initialize`, or a probe. What the server turned out
//! to speak is remembered here and, when a shared catalog is configured, for every container.

use std::time::{Duration, Instant};

use rmcp::model::{ProtocolVersion, ServerCapabilities, ServerPeerInfo};
use rmcp::service::{ClientInitializeError, serve_directly};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientCacheConfig, ClientServiceExt};
use secrecy::SecretString;

use super::McpPool;
use super::error::{AuthStep, HeaderError, McpError};
use super::handler::TealClient;
use super::headers::Headers;
use super::pool::{Live, ServerConn, timeout_error};
use super::revision::{self, Known, Start};
use crate::config::McpServerConfig;
use crate::store::{CatalogEntry, CatalogKey};

/// How an SSE stream that broke is resumed: once, at once (a proxy that cut a stream is back
/// at once; a second attempt would wait the server's `retry:` hint, 3 s for rmcp servers).
/// rmcp's default retries for ever with growing pauses, so a call in flight when its server
/// died waited for the tool's whole timeout instead of failing when the connection dropped.
fn sse_retry() -> std::sync::Arc<dyn rmcp::transport::common::client_side_sse::SseRetryPolicy> {
    let mut policy = rmcp::transport::common::client_side_sse::ExponentialBackoff::default();
    policy.max_times = Some(1);
    policy.base_duration = Duration::from_millis(50);
    policy.max_delay = Some(Duration::from_millis(200));
    std::sync::Arc::new(policy)
}

impl McpPool {
    /// A new client for `conn`'s server (`headers` when the caller already rendered them), with
    /// an OAuth token when the server has OAuth (`refused`: the one it just refused).
    pub(super) async fn connect(
        &self,
        conn: &ServerConn,
        headers: Option<&Headers>,
        refused: Option<&SecretString>,
    ) -> Result<Live, McpError> {
        let cfg = &conn.cfg;
        let mut headers = match headers {
            Some(rendered) => rendered.clone(),
            None => self.render_headers(conn).await?,
        };
        let mut token_expires = None;
        if cfg.oauth.is_some() {
            let bearer = self.bearer(conn, refused).await?;
            token_expires = bearer.expires_at;
            headers = headers.with_bearer(&bearer.token).map_err(|source| McpError::Header {
                server: cfg.name.clone(),
                source: HeaderError::Value { header: "Authorization".into(), source },
            })?;
            *super::pool::lock(&conn.token) = Some(bearer.token);
        }
        let mut start = Start::for_known(self.known_revision(cfg).await);
        if refused.is_some() && matches!(start, Start::Direct(_)) {
            // After a refused token, check the new one with a probe: a 401 then surfaces here,
            // with its challenge, rather than as a closed client on the first call.
            start = Start::Probe;
        }
        let started = Instant::now();
        let live = loop {
            let mut transport_cfg = StreamableHttpClientTransportConfig::with_uri(cfg.url.as_str())
                .custom_headers(headers.clone().into_map());
            transport_cfg.retry_config = sse_retry();
            let transport =
                StreamableHttpClientTransport::with_client(self.inner.http.clone(), transport_cfg);
            let handler = TealClient::default();
            if let Start::Direct(v) = &start {
                let info = ServerPeerInfo::new(v.clone(), ServerCapabilities::default());
                break Live::new(serve_directly(handler, transport, Some(info)), true, token_expires);
            }
            let serve = handler.serve_with_lifecycle(transport, start.lifecycle());
            match tokio::time::timeout(cfg.timeout, serve).await {
                Ok(Ok(client)) => break Live::new(client, false, token_expires),
                Ok(Err(e)) if e.auth_challenge().is_some() || e.is_authorization_required() => {
                    return Err(McpError::Auth {
                        server: cfg.name.clone(),
                        step: AuthStep::Server,
                        source: Some(Box::new(e)),
                    });
                }
                // It knows `server/discover` but not 2026-07-28: an older revision it is.
                Ok(Err(ClientInitializeError::NoCompatibleProtocolVersion { .. }))
                    if start == Start::Probe =>
                {
                    start = Start::Initialize;
                }
                Ok(Err(e)) => {
                    return Err(McpError::Connect { server: cfg.name.clone(), source: Box::new(e) });
                }
                Err(_) => return Err(timeout_error(cfg)),
            }
        };
        // The shared catalog is ours: rmcp's per-client response cache would hide a re-list.
        live.set_response_cache_config(ClientCacheConfig::disabled()).await;
        let spoken = live.peer_info().map(|info| info.protocol_version.clone());
        if let Some(v) = &spoken {
            self.learn_revision(cfg, v.clone(), Duration::ZERO, true).await;
        }
        tracing::info!(
            server = %cfg.name,
            url = %cfg.url,
            protocol = spoken.as_ref().map_or("unknown", |v| v.as_str()),
            handshake = start.describe(),
            ms = started.elapsed().as_millis() as u64,
            "MCP client ready"
        );
        Ok(live)
    }

    /// `conn`'s configured headers, standing for its OAuth credential when it has one (the token
    /// itself is added when a client is made).
    pub(super) async fn render_headers(&self, conn: &ServerConn) -> Result<Headers, McpError> {
        let headers = Headers::render(&conn.cfg, self.inner.secrets.as_ref()).await?;
        Ok(match &conn.cfg.oauth {
            Some(oauth) => headers.with_identity(format!(
                "{}\0{}\0{}",
                conn.caller.as_deref().unwrap_or(""),
                oauth.auth_server,
                oauth.scopes.join(" ")
            )),
            None => headers,
        })
    }

    /// What `cfg`'s server speaks: learned in this process, else the shared per-server record
    /// (an older revision only while younger than the catalog TTL).
    async fn known_revision(&self, cfg: &McpServerConfig) -> Option<ProtocolVersion> {
        let (url, trust_old_for) = (cfg.url.as_str(), self.inner.settings.catalog_ttl);
        match self.inner.revisions.get(url, trust_old_for) {
            Known::Speaks(v) => return Some(v),
            Known::Refused => return None,
            Known::Nothing => {}
        }
        let shared = self.inner.shared.as_ref()?;
        let record = shared.cache.get(&CatalogKey::server(url)).await.ok()??;
        let v = revision::parse(record.protocol.as_deref()?)?;
        self.inner.revisions.learn(url, v, record.age());
        match self.inner.revisions.get(url, trust_old_for) {
            Known::Speaks(v) => Some(v),
            Known::Nothing | Known::Refused => None,
        }
    }

    /// Records that `cfg`'s server spoke `v` `age` ago; `share`: also in the shared per-server
    /// record, when it is news here.
    pub(super) async fn learn_revision(
        &self,
        cfg: &McpServerConfig,
        v: ProtocolVersion,
        age: Duration,
        share: bool,
    ) {
        let url = cfg.url.as_str();
        if !self.inner.revisions.learn(url, v.clone(), age) || !share {
            return;
        }
        if let Some(shared) = &self.inner.shared {
            let record = CatalogEntry::new(Vec::new(), Some(v.as_str().to_owned()), None);
            // Failures are logged by the adapter; the next container probes once more.
            let _ = shared.cache.put(&CatalogKey::server(url), &record, shared.settings.keep_for).await;
        }
    }
}
