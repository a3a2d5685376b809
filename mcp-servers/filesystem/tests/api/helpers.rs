//! Spawning a server on a free port, talking to it, and proving the outside was not touched.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, ClientConfig},
    service::RunningService,
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use secrecy::SecretString;
use serde_json::Value;
use teal_mcp_filesystem::{ByteSize, FsConfig, ServerOptions, SessionMode, serve_with_options};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Client = RunningService<RoleClient, ClientConfig>;

pub const SECRET: &str = "top secret, outside the allowed directories";

/// What to spawn: HTTP options plus the filesystem switches.
pub struct Spec {
    pub options: ServerOptions,
    pub read_only: bool,
    pub max_file_size: Option<ByteSize>,
    /// Allowed directories after the first (`TestServer::extra`).
    pub extra_dirs: usize,
}

impl Spec {
    pub fn new(mode: SessionMode) -> Self {
        Self { options: ServerOptions::new(mode), read_only: false, max_file_size: None, extra_dirs: 0 }
    }
}

/// A running server. Dropping it shuts the server down.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// The first allowed directory (canonical path).
    pub root: PathBuf,
    /// Further allowed directories (canonical), in order.
    pub extra: Vec<PathBuf>,
    /// A sibling directory outside, holding `secret.txt` = [`SECRET`], watched by
    /// [`TestServer::assert_outside_untouched`].
    pub outside: PathBuf,
    sentinel: Sentinel,
    _dirs: Vec<TempDir>,
    _stop: oneshot::Sender<()>,
}

impl TestServer {
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Writes `content` at `relative` under the first allowed dir, creating parents.
    pub fn put(&self, relative: &str, content: impl AsRef<[u8]>) -> Result<PathBuf, Error> {
        put(&self.root, relative, content)
    }

    pub async fn client(&self) -> Result<Client, Error> {
        self.client_with(StreamableHttpClientTransportConfig::with_uri(self.mcp_url())).await
    }

    pub async fn client_with(&self, config: StreamableHttpClientTransportConfig) -> Result<Client, Error> {
        let transport = StreamableHttpClientTransport::from_config(config);
        Ok(ClientConfig::default().serve(transport).await?)
    }

    /// Nothing outside was listed, read, changed or created: the outside directory and
    /// `secret.txt` keep the access and modification times set at spawn (2001 and 2002; on a
    /// `relatime` or `strictatime` mount any read or listing would move the access time, see
    /// `atime_is_tracked`), the directory holds exactly `secret.txt`, which still holds
    /// [`SECRET`]. The checks that read come last.
    pub fn assert_outside_untouched(&self) -> Result<(), Error> {
        let secret = self.outside.join("secret.txt");
        assert_eq!(
            times(&self.outside)?,
            self.sentinel.dir_times,
            "the outside directory was listed or changed"
        );
        assert_eq!(times(&secret)?, self.sentinel.file_times, "the outside file was read or changed");
        let names: Vec<String> = std::fs::read_dir(&self.outside)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, ["secret.txt"], "something was created outside");
        assert_eq!(read(&secret)?, SECRET);
        Ok(())
    }
}

/// The access and modification times of the outside directory and its file, as set at spawn.
struct Sentinel {
    dir_times: (SystemTime, SystemTime),
    file_times: (SystemTime, SystemTime),
}

const ACCESSED: Duration = Duration::from_secs(978_307_200); // 2001-01-01
const MODIFIED: Duration = Duration::from_secs(1_009_843_200); // 2002-01-01

fn set_old_times(path: &Path) -> Result<(SystemTime, SystemTime), Error> {
    let (accessed, modified) = (SystemTime::UNIX_EPOCH + ACCESSED, SystemTime::UNIX_EPOCH + MODIFIED);
    std::fs::File::open(path)?
        .set_times(std::fs::FileTimes::new().set_accessed(accessed).set_modified(modified))?;
    Ok((accessed, modified))
}

fn times(path: &Path) -> Result<(SystemTime, SystemTime), Error> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.accessed()?, meta.modified()?))
}

/// The sentinel's "not read" half relies on the mount updating access times (`relatime`
/// updates an access time older than the modification time). Checked once per test binary so
/// a `noatime` mount fails loudly instead of making those assertions vacuous.
fn atime_is_tracked() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "probe")?;
    let before = set_old_times(&probe)?;
    std::fs::read(&probe)?;
    let after = times(&probe)?;
    assert_ne!(
        after.0, before.0,
        "this mount does not track access times: the no-read checks would prove nothing"
    );
    Ok(())
}

pub fn put(dir: &Path, relative: &str, content: impl AsRef<[u8]>) -> Result<PathBuf, Error> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, content)?;
    Ok(path)
}

pub async fn spawn(mode: SessionMode) -> Result<TestServer, Error> {
    spawn_spec(Spec::new(mode)).await
}

pub async fn spawn_with(options: ServerOptions) -> Result<TestServer, Error> {
    spawn_spec(Spec { options, ..Spec::new(SessionMode::Stateful) }).await
}

pub async fn spawn_spec(spec: Spec) -> Result<TestServer, Error> {
    static ATIME: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ATIME.get_or_init(|| atime_is_tracked().is_ok()) {
        return Err("access times are not tracked on the temp dir's mount".into());
    }
    let mut dirs = Vec::new();
    for _ in 0..=spec.extra_dirs {
        dirs.push(tempfile::tempdir()?);
    }
    let outside_dir = tempfile::tempdir()?;
    let outside = outside_dir.path().canonicalize()?;
    std::fs::write(outside.join("secret.txt"), SECRET)?;
    let file_times = set_old_times(&outside.join("secret.txt"))?;
    let dir_times = set_old_times(&outside)?;

    let mut cfg = FsConfig::with_allowed_dirs(dirs.iter().map(TempDir::path))?.with_read_only(spec.read_only);
    if let Some(limit) = spec.max_file_size {
        cfg = cfg.with_max_file_size(limit);
    }
    let allowed = cfg.allowed_dirs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let options = spec.options;
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = serve_with_options(listener, cfg, &options, shutdown).await {
            eprintln!("test server failed: {e}");
        }
    });
    dirs.push(outside_dir);
    Ok(TestServer {
        addr,
        root: allowed[0].clone(),
        extra: allowed[1..].to_vec(),
        outside,
        sentinel: Sentinel { dir_times, file_times },
        _dirs: dirs,
        _stop: stop,
    })
}

/// The outcome of one tool call: `isError` and the text of its single content block.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub is_error: bool,
    pub text: String,
}

impl Outcome {
    pub fn ok(text: impl Into<String>) -> Self {
        Self { is_error: false, text: text.into() }
    }

    pub fn err(text: impl Into<String>) -> Self {
        Self { is_error: true, text: text.into() }
    }
}

pub async fn call(client: &Client, tool: &str, args: Value) -> Result<Outcome, Error> {
    let Value::Object(args) = args else {
        return Err("tool arguments must be a JSON object".into());
    };
    let result = client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)).await?;
    let [block] = result.content.as_slice() else {
        return Err(format!("expected one content block, got {:?}", result.content).into());
    };
    let text = block.as_text().ok_or_else(|| format!("expected text content, got {block:?}"))?.text.clone();
    Ok(Outcome { is_error: result.is_error == Some(true), text })
}

/// POSTs one JSON-RPC message to `/mcp` the way a bare HTTP client would.
pub async fn post_mcp(server: &TestServer, body: &Value) -> Result<reqwest::Response, Error> {
    post_mcp_with(server, body, None).await
}

/// Same, with an `Authorization` header value.
pub async fn post_mcp_with(
    server: &TestServer,
    body: &Value,
    authorization: Option<&str>,
) -> Result<reqwest::Response, Error> {
    let mut request = reqwest::Client::new()
        .post(server.mcp_url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    Ok(request.send().await?)
}

pub fn read(path: &Path) -> Result<String, Error> {
    Ok(std::fs::read_to_string(path)?)
}

/// Every file under `dir` (relative path → content), to show a refused call changed nothing.
pub fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let relative = path.strip_prefix(dir)?.to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                files.insert(format!("{relative}/"), Vec::new());
                pending.push(path);
            } else if kind.is_symlink() {
                files.insert(
                    format!("{relative}@"),
                    std::fs::read_link(&path)?.to_string_lossy().into_owned().into_bytes(),
                );
            } else {
                files.insert(relative, std::fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

pub fn secret_token(token: &str) -> SecretString {
    SecretString::from(token.to_owned())
}
