//! Real backends for the adapter tests: the machine's Redis (isolated by a random key prefix),
//! redis-server and moto_server processes started on free loopback ports (killed on drop), and
//! an AWS SDK configuration with dummy credentials pointed at moto.
//!
//! A missing backend fails the test with the command that installs it: these tests never skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use teal_core::store::{RedisConnection, RedisSettings};

/// The shared Redis of the machine (or `TEAL_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Settings for the shared Redis under a prefix no other test (or run) uses.
pub fn isolated_settings(url: &str) -> RedisSettings {
    let mut s = RedisSettings::new(url);
    s.prefix = format!("teal-test:{}:", uuid::Uuid::new_v4());
    s
}

/// A connection to the shared Redis with a fresh prefix; fails with install instructions when no
/// Redis answers.
pub async fn shared_redis() -> RedisConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("valid TEAL_TEST_REDIS_URL");
    let reachable = tokio::time::timeout(Duration::from_secs(2), async {
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    })
    .await;
    if !matches!(reachable, Ok(Ok(_))) {
        panic!(
            "no Redis answers at {url}: these tests need a real redis-server. Install and start one \
             (`apt-get install -y redis-server && redis-server --daemonize yes`) or set TEAL_TEST_REDIS_URL"
        );
    }
    RedisConnection::open(&isolated_settings(&url), None).expect("open")
}

/// A raw client of `url`, to look at what the adapters wrote.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).expect("url").get_multiplexed_async_connection().await.expect("raw connection")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `ready` until it holds or `deadline` passes.
pub fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ready() {
        assert!(Instant::now() < until, "{what} not ready after {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A redis-server of our own on a free port, for the fault tests: no persistence, killed on drop.
pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    pub fn start() -> Self {
        let mut p = Self { port: free_port(), child: None };
        p.restart();
        p
    }

    /// A handle for `port` with no server running yet (start it with [`restart`](Self::restart)).
    pub fn not_started() -> Self {
        Self { port: free_port(), child: None }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the fault tests start their own. Install it: \
                     `apt-get install -y redis-server`"
                )
            });
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server", Duration::from_secs(10), || redis_answers(port));
    }

    /// Kills the server and waits until its port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        wait_until("redis-server gone", Duration::from_secs(5), || !redis_answers(port));
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// moto in server mode on a free port, killed on drop.
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        // moto_server with the one fix the Rust SDK needs (multipart completions): see the script.
        let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto-server.py");
        let child = Command::new("python3")
            .args([shim, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run moto_server ({e}): the S3 and Secrets Manager tests need it. Install it: \
                     `pip install 'moto[server]'`"
                )
            });
        let mut moto = Self { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child) };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("moto_server", Duration::from_secs(30), || {
            if let Some(c) = moto.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("moto_server exited at start ({status})");
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        moto
    }

    /// Stops moto (the endpoint then refuses connections).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The production SDK configuration, with dummy credentials, a region and few fast retries.
    pub async fn sdk_config(&self) -> SdkConfig {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .retry_config(
                RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(10)),
            );
        teal_core::secrets::aws_sdk_config_from(loader, Some(&self.endpoint)).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Log lines written while the returned guard lives (this thread's subscriber: use it from a
/// current-thread runtime).
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

pub fn logs(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// A minimal valid agent document.
pub fn agent_yaml(name: &str, version: &str) -> String {
    format!(
        "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: {name}\nversion: {version}\n\
         spec:\n  agent:\n    model: m\n    system_prompt: p\n"
    )
}

/// A TLS-only redis-server with `requirepass`, like ElastiCache with in-transit encryption and
/// an AUTH token, and the CA that signed its certificate (`ca_file`). Killed on drop.
pub struct TlsRedis {
    pub port: u16,
    pub ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl TlsRedis {
    pub fn start(password: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("write");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let steps: Vec<Vec<String>> = vec![
            [
                &["req", "-x509"][..],
                &ec,
                &["-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "1", "-subj", "/CN=teal-test-ca"],
            ]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect(),
            [&["req"][..], &ec, &["-keyout", &p("srv.key"), "-out", &p("srv.csr"), "-subj", "/CN=localhost"]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            [
                "x509",
                "-req",
                "-in",
                &p("srv.csr"),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-out",
                &p("srv.pem"),
                "-days",
                "1",
                "-extfile",
                &p("ext.cnf"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ];
        for args in steps {
            let out = Command::new("openssl").args(&args).output().unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}) to make test certificates. Install it: `apt-get install -y openssl`")
            });
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--tls-cert-file",
                &p("srv.pem"),
                "--tls-key-file",
                &p("srv.key"),
                "--tls-ca-cert-file",
                &p("ca.pem"),
            ])
            .args(["--tls-auth-clients", "no", "--requirepass", password, "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}). Install it: `apt-get install -y redis-server`")
            });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("redis-server (TLS)", Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        Self { port, ca_file: dir.path().join("ca.pem"), _dir: dir, child }
    }
}

impl TlsRedis {
    /// A plain client (trusting the test CA) authenticated with `password`.
    pub async fn admin(&self, password: &str) -> redis::aio::MultiplexedConnection {
        let pem = std::fs::read(&self.ca_file).expect("ca");
        let url = format!("rediss://:{password}@localhost:{}", self.port);
        let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
        redis::Client::build_with_tls(url, certs)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("admin")
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret whose value the test changes (a rotation), counting invalidations.
#[derive(Debug)]
pub struct RotatingSecret {
    value: Mutex<String>,
    invalidations: std::sync::atomic::AtomicUsize,
}

impl RotatingSecret {
    pub fn new(value: &str) -> Self {
        Self { value: Mutex::new(value.to_owned()), invalidations: Default::default() }
    }
    pub fn set(&self, value: &str) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = value.to_owned();
    }
    pub fn invalidations(&self) -> usize {
        self.invalidations.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl teal_core::secrets::SecretStore for RotatingSecret {
    async fn get(&self, _name: &str) -> Result<secrecy::SecretString, teal_core::secrets::SecretError> {
        Ok(secrecy::SecretString::from(self.value.lock().unwrap_or_else(|p| p.into_inner()).clone()))
    }
    fn invalidate(&self, _name: &str) {
        self.invalidations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The EMF exporter the Lambda functions install, as this process's metrics recorder (once);
/// [`flush_emf`] reads what was recorded since the last flush.
pub fn emf_metrics() -> &'static metrics_cloudwatch_embedded::Collector {
    static COLLECTOR: std::sync::OnceLock<&'static metrics_cloudwatch_embedded::Collector> =
        std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = teal_core::telemetry::emf::builder("test").init().expect("the only metrics recorder");
        teal_core::telemetry::metrics::describe();
        c
    })
}

/// The EMF documents recorded since the last flush, one JSON value each.
pub fn flush_emf() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    emf_metrics().flush(&mut out).expect("flush to memory");
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
        .collect()
}
