//! Redis (ElastiCache / Valkey) adapters: sessions, tasks, response cache, tool catalog, rate
//! limits.
//!
//! Owns the one [`RedisConnection`] per container (a lazily connecting, self-reconnecting
//! `ConnectionManager`), the key layout under a prefix, and the failure policy: every call is
//! bounded by [`RedisSettings::timeout`]; for 500 ms after a failure calls fail at once instead
//! of waiting again; failures are logged (at most one warning a second per connection) and
//! counted as EMF metrics. It must not decide what is cached or for how long.
//!
//! Keys (prefix `teal:` by default): `{p}session:{id}` (list of JSON messages),
//! `{p}cache:{sha256}` (bytes), `{p}catalog:{sha256}` (JSON entry), `{p}catalog-lock:{sha256}`
//! (refresh lease), `{p}rate:{subject}` (bucket hash), `{p}task:{id}` (hash of revision and JSON)
//! and `{p}task-req:{request_id}` (task id), `{p}oauth:{sha256}` (sealed OAuth record) and
//! `{p}oauth-lease:{sha256}` (token request lease), `{p}switch` (the kill switches: hash of
//! `NAME[/VERSION]` -> note). Backups copy the durable ones whole (`dump`).

mod cache;
mod catalog;
mod dump;
mod ratelimit;
mod session;
mod switch;
mod tasks;
mod tokens;

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisResult};
use secrecy::{ExposeSecret, SecretString};

pub use cache::RedisResponseCache;
pub use catalog::RedisCatalogCache;
pub use dump::{KeyDump, KeyKind, KeyRead, KeyValue, RestoreCounts};
pub use ratelimit::RedisRateLimiter;
pub use session::RedisSessionStore;
pub use switch::RedisSwitchStore;
pub use tasks::RedisTaskStore;
pub use tokens::RedisTokenStore;

use super::StoreError;
use crate::secrets::SecretStore;
use crate::settings::SettingsError;
use crate::telemetry::metrics;

/// Where Redis is and how long to wait for it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `TA_REDIS_URL`: `redis://host:6379[/db]` locally, `rediss://primary-endpoint:6379` on
    /// ElastiCache with in-transit encryption.
    pub url: String,
    /// `TA_REDIS_AUTH_SECRET`: name of the secret (in the [`SecretStore`]) holding the AUTH token;
    /// it replaces any password in the URL. A username in the URL is kept (RBAC users).
    pub auth_secret: Option<String>,
    /// `TA_REDIS_PREFIX` (default `teal:`): prepended to every key.
    pub prefix: String,
    /// `TA_REDIS_TIMEOUT_MS` (default 250): the bound of one call, connecting included.
    pub timeout: Duration,
    /// `TA_REDIS_CONNECT_TIMEOUT_MS` (default 1000): one (re)connection attempt, in the background.
    pub connect_timeout: Duration,
    /// `TA_REDIS_CA_FILE`: a PEM file of root certificates to trust for `rediss://` instead of
    /// the system's (a private CA; ElastiCache's certificates chain to the system roots).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("auth_secret", &self.auth_secret)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `url` with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable>".to_owned(),
    }
}

impl RedisSettings {
    /// Settings for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth_secret: None,
            prefix: "teal:".to_owned(),
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(1000),
            ca_file: None,
        }
    }
}

/// What a failed call means to its caller, for logging and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// The caller goes on without Redis (cache, catalog, rate limit): `RedisBypass`.
    Bypass,
    /// The caller fails (sessions): `RedisUnavailable`.
    Surface,
    /// Health checks: the caller reports it.
    Quiet,
}

/// Consecutive timeouts after which the connection is thrown away and made again (a connection
/// that stopped answering without closing is never reconnected by the manager itself).
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

/// After a failed call, calls fail at once (without waiting for the timeout) for this long;
/// then one gets through again. The manager reconnects in the background meanwhile.
const SKIP_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// The Redis client of the container: cheap to clone, shared by every adapter. Creating it does
/// not connect; the first call (or the background warm-up) does, and the manager reconnects by
/// itself after a connection drops. When Redis refuses the AUTH token (rotated), the token is
/// read again from the secret store and the connection rebuilt (at most every 5 s).
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL's connection info, before the AUTH token is applied.
    info: ConnectionInfo,
    ca_pem: Option<Vec<u8>>,
    /// Where the AUTH token comes from, to read it again when Redis refuses it.
    auth: Option<(Arc<dyn SecretStore>, String)>,
    config: ConnectionManagerConfig,
    /// The client of `manager` (it holds the token in use).
    client: RwLock<Client>,
    manager: RwLock<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    created: Instant,
    consecutive_timeouts: AtomicU32,
    /// [`Inner::millis`] of the last rebuild, AUTH refresh and warning (0: never).
    last_rebuild_ms: AtomicU64,
    last_auth_refresh_ms: AtomicU64,
    last_warn_ms: AtomicU64,
    suppressed_warnings: AtomicU64,
    /// [`Inner::millis`] until which calls are skipped (see [`SKIP_AFTER_FAILURE`]).
    skip_until_ms: AtomicU64,
}

impl Inner {
    /// Milliseconds since `created`, plus one (so 0 can mean "never").
    fn millis(&self) -> u64 {
        self.created.elapsed().as_millis() as u64 + 1
    }

    /// Takes the slot `last` if `every` has passed since it was last taken.
    fn take_slot(&self, last: &AtomicU64, every: Duration) -> bool {
        let now = self.millis();
        let prev = last.load(Ordering::Relaxed);
        (prev == 0 || now.saturating_sub(prev) >= every.as_millis() as u64)
            && last.compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("addr", &self.inner.info.addr().to_string())
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

fn client(
    info: &ConnectionInfo,
    ca_pem: Option<&Vec<u8>>,
    password: Option<&SecretString>,
) -> RedisResult<Client> {
    let mut info = info.clone();
    if let Some(p) = password {
        let redis = info.redis_settings().clone().set_password(p.expose_secret());
        info = info.set_redis_settings(redis);
    }
    match ca_pem {
        None => Client::open(info),
        Some(pem) => Client::build_with_tls(
            info,
            ::redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
        ),
    }
}

fn is_auth_error(e: &::redis::RedisError) -> bool {
    let text = e.to_string();
    e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
}

impl RedisConnection {
    /// Reads the AUTH token (if `TA_REDIS_AUTH_SECRET` is set) and opens the connection. Only
    /// the secret lookup waits; Redis itself is connected in the background.
    pub async fn connect(
        settings: &RedisSettings,
        secrets: Arc<dyn SecretStore>,
    ) -> Result<Self, SettingsError> {
        let Some(name) = &settings.auth_secret else {
            return Self::build(settings, None, None);
        };
        let password = secrets
            .get(name)
            .await
            .map_err(|e| SettingsError::Unusable { name: "TA_REDIS_AUTH_SECRET", detail: e.to_string() })?;
        Self::build(settings, Some(password), Some((secrets, name.clone())))
    }

    /// Opens the connection with `password` (the AUTH token) instead of any in the URL. Does not
    /// wait for Redis. Inside a Tokio runtime, a background task connects right away so the
    /// first request finds a warm connection.
    pub fn open(settings: &RedisSettings, password: Option<SecretString>) -> Result<Self, SettingsError> {
        Self::build(settings, password, None)
    }

    fn build(
        settings: &RedisSettings,
        password: Option<SecretString>,
        auth: Option<(Arc<dyn SecretStore>, String)>,
    ) -> Result<Self, SettingsError> {
        let unusable =
            |e: ::redis::RedisError| SettingsError::Unusable { name: "TA_REDIS_URL", detail: e.to_string() };
        let info = settings.url.as_str().into_connection_info().map_err(unusable)?;
        let ca_pem = match &settings.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| SettingsError::Unusable {
                name: "TA_REDIS_CA_FILE",
                detail: format!("cannot read {}: {e}", path.display()),
            })?),
        };
        let client =
            client(&info, ca_pem.as_ref(), password.as_ref()).map_err(|e| SettingsError::Unusable {
                name: if ca_pem.is_some() { "TA_REDIS_CA_FILE" } else { "TA_REDIS_URL" },
                detail: e.to_string(),
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(1000));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config.clone()).map_err(unusable)?;
        let conn = Self {
            inner: Arc::new(Inner {
                info,
                ca_pem,
                auth,
                config,
                client: RwLock::new(client),
                manager: RwLock::new(manager),
                prefix: settings.prefix.clone(),
                timeout: settings.timeout,
                created: Instant::now(),
                consecutive_timeouts: AtomicU32::new(0),
                last_rebuild_ms: AtomicU64::new(0),
                last_auth_refresh_ms: AtomicU64::new(0),
                last_warn_ms: AtomicU64::new(0),
                suppressed_warnings: AtomicU64::new(0),
                skip_until_ms: AtomicU64::new(0),
            }),
        };
        conn.warm_up();
        Ok(conn)
    }

    /// Drives the (lazy) connection in the background, without the per-call timeout.
    fn warm_up(&self) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            rt.spawn(async move {
                let mut manager = this.manager();
                let r: RedisResult<String> = ::redis::cmd("PING").query_async(&mut manager).await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "Redis not reachable; calls will bypass it until it is");
                    if is_auth_error(&e) {
                        this.refresh_auth();
                    }
                }
            });
        }
    }

    /// Replaces the connection manager by a new one of `client`.
    fn replace_manager(&self, client: Client) -> RedisResult<()> {
        let fresh = ConnectionManager::new_lazy_with_config(client.clone(), self.inner.config.clone())?;
        *self.inner.manager.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *self.inner.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        self.inner.consecutive_timeouts.store(0, Ordering::Relaxed);
        self.inner.skip_until_ms.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Redis refused the token: read it again (bypassing the secret cache) and reconnect with
    /// it, in the background, at most every 5 s.
    fn refresh_auth(&self) {
        let Some((secrets, name)) = self.inner.auth.clone() else { return };
        if !self.inner.take_slot(&self.inner.last_auth_refresh_ms, Duration::from_secs(5)) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let this = self.clone();
        rt.spawn(async move {
            secrets.invalidate(&name);
            let rebuilt = match secrets.get(&name).await {
                Ok(token) => client(&this.inner.info, this.inner.ca_pem.as_ref(), Some(&token))
                    .and_then(|c| this.replace_manager(c))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match rebuilt {
                Ok(()) => {
                    tracing::warn!(secret = %name, "Redis refused the AUTH token; reconnecting with the token read again");
                    this.warm_up();
                }
                Err(e) => tracing::warn!(secret = %name, error = %e, "Redis AUTH token could not be read again"),
            }
        });
    }

    /// The key prefix, e.g. `teal:`.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// `host:port` of the server (no credentials).
    pub fn addr(&self) -> String {
        self.inner.info.addr().to_string()
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    pub(crate) fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.inner.prefix)
    }

    fn manager_client(&self) -> Client {
        self.inner.client.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn manager(&self) -> ConnectionManager {
        self.inner.manager.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A `PING` round trip, for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", OnError::Quiet, |mut c| async move {
            ::redis::cmd("PING").query_async::<String>(&mut c).await.map(drop)
        })
        .await
    }

    /// Runs one call with the timeout and the failure policy of `on_error`. Within
    /// [`SKIP_AFTER_FAILURE`] of a failure (and until a call succeeds), calls other than health
    /// checks fail at once.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        on_error: OnError,
        call: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let skip_until = self.inner.skip_until_ms.load(Ordering::Relaxed);
        if on_error != OnError::Quiet && self.inner.millis() < skip_until {
            let detail = "skipped: Redis failed less than 500 ms ago";
            self.report(op, on_error, detail);
            return Err(StoreError::Unavailable(format!("redis {op}: {detail}")));
        }
        let outcome = tokio::time::timeout(self.inner.timeout, call(self.manager())).await;
        let detail = match outcome {
            Ok(Ok(v)) => {
                self.inner.consecutive_timeouts.store(0, Ordering::Relaxed);
                self.inner.skip_until_ms.store(0, Ordering::Relaxed);
                return Ok(v);
            }
            Ok(Err(e)) if e.is_timeout() => {
                self.count_timeout();
                format!("timed out after {} ms", self.inner.timeout.as_millis())
            }
            Ok(Err(e)) => {
                self.inner.consecutive_timeouts.store(0, Ordering::Relaxed);
                if is_auth_error(&e) {
                    self.refresh_auth();
                }
                e.to_string()
            }
            Err(_) => {
                self.count_timeout();
                format!("timed out after {} ms", self.inner.timeout.as_millis())
            }
        };
        let until = self.inner.millis() + SKIP_AFTER_FAILURE.as_millis() as u64;
        self.inner.skip_until_ms.fetch_max(until, Ordering::Relaxed);
        self.report(op, on_error, &detail);
        Err(StoreError::Unavailable(format!("redis {op}: {detail}")))
    }

    fn count_timeout(&self) {
        let n = self.inner.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if n < TIMEOUTS_BEFORE_RECONNECT
            || !self.inner.take_slot(&self.inner.last_rebuild_ms, Duration::from_secs(1))
        {
            return;
        }
        // The current client (with the token in use) is kept: only the connection is new.
        let client = self.manager_client();
        match self.replace_manager(client) {
            Ok(()) => {
                tracing::warn!(timeouts = n, "Redis stopped answering; opening a new connection");
                self.warm_up();
            }
            Err(e) => tracing::warn!(error = %e, "Redis connection could not be recreated"),
        }
    }

    fn report(&self, op: &'static str, on_error: OnError, detail: &str) {
        match on_error {
            OnError::Bypass => metrics::redis_bypass(op),
            OnError::Surface => metrics::redis_unavailable(op),
            OnError::Quiet => return,
        }
        if self.inner.take_slot(&self.inner.last_warn_ms, Duration::from_secs(1)) {
            let suppressed = self.inner.suppressed_warnings.swap(0, Ordering::Relaxed);
            let action = if on_error == OnError::Bypass { "bypassing Redis" } else { "Redis unavailable" };
            tracing::warn!(operation = op, error = %detail, similar_warnings_suppressed = suppressed, "{action}");
        } else {
            self.inner.suppressed_warnings.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whole milliseconds of `d`, at least 1 (Redis refuses an expiry of 0).
pub(crate) fn ttl_ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_auth_token_comes_from_the_secret_store_and_replaces_the_url_password() {
        let mut s = RedisSettings::new("rediss://app:old@cache.example:6379");
        s.auth_secret = Some("REDIS_TOKEN".into());
        let secrets: Arc<dyn SecretStore> =
            Arc::new(crate::secrets::EnvSecretStore::new().with("REDIS_TOKEN", "t0ken"));
        let conn = RedisConnection::connect(&s, secrets.clone()).await.expect("opened without connecting");
        let client = conn.manager_client();
        let info = client.get_connection_info();
        assert_eq!(info.redis_settings().password(), Some("t0ken"));
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert!(!format!("{conn:?}").contains("t0ken"));

        s.auth_secret = Some("TEAL_SURELY_UNSET_SECRET_42".into());
        let e = RedisConnection::connect(&s, secrets).await.expect_err("missing secret");
        assert_eq!(e.to_string(), "TA_REDIS_AUTH_SECRET: secret TEAL_SURELY_UNSET_SECRET_42 is not set");
    }
}
