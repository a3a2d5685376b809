//! `teal backup`, `teal backups` and `teal restore` as an operator runs them, against moto_server
//! (S3) and a redis-server of their own on free ports: plain progress lines when stderr is not a
//! terminal, the dry run, the restore and the readiness checks after it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::teal;

/// A server process on a free loopback port, killed on drop.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(program: &str, args: impl FnOnce(&str) -> Vec<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new(program)
            .args(args(&port.to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}): scripts/test.sh installs it"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < until, "{program} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_cli(redis: &Server, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Stack {
    moto: Server,
    redis: Server,
    http: reqwest::Client,
}

impl Stack {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.moto.port)
    }

    /// A path-style request with a made-up signature: moto does not check it, but treats a
    /// request without one as anonymous (refused on objects).
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20261123/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
        self.http.request(method, self.url(path)).header("authorization", auth)
    }

    async fn put(&self, path: &str, body: &'static [u8]) {
        let r = self.request(reqwest::Method::PUT, path).body(body).send().await.expect("put");
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    }

    async fn get(&self, path: &str) -> Option<Vec<u8>> {
        let r = self.request(reqwest::Method::GET, path).send().await.expect("get");
        r.status().is_success().then_some(r.bytes().await.expect("body").to_vec())
    }

    async fn delete(&self, path: &str) {
        let r = self.request(reqwest::Method::DELETE, path).send().await.expect("delete");
        assert!(r.status().is_success(), "DELETE {path}: {}", r.status());
    }

    /// What an operator would export: the backup variables, the emulators, dummy credentials.
    fn teal_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TA_BACKUP_BUCKET", "teal-backups".into()),
            ("TA_BACKUP_CONFIGS", "s3://teal-configs/agents/".into()),
            ("TA_REDIS_URL", format!("redis://127.0.0.1:{}", self.redis.port)),
            ("TA_AWS_ENDPOINT_URL", self.url("")),
            ("TA_SECRETS_BACKEND", "env".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }

    fn teal(&self, args: &[&str]) -> Output {
        teal().args(args).envs(self.teal_env()).stdin(Stdio::null()).output().expect("teal runs")
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

const CHAT: &[u8] = b"apiVersion: skagents/v1\nkind: Chat\nservice_name: chat\nversion: 1.0\n";
const SESSION: &str = r#"{"role":"user","content":"hello"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_list_and_restore_from_the_command_line() {
    let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto-server.py");
    let moto = Server::start("python3", |port| {
        vec![shim.into(), "-H".into(), "127.0.0.1".into(), "-p".into(), port.into()]
    });
    let redis = Server::start("redis-server", |port| {
        ["--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            .map(str::to_owned)
            .to_vec()
    });
    let stack = Stack { moto, redis, http: reqwest::Client::new() };
    stack.put("teal-configs", b"").await;
    stack.put("teal-backups", b"").await;
    stack.put("teal-configs/agents/chat.yaml", CHAT).await;
    redis_cli(&stack.redis, &["RPUSH", "teal:session:s-1", SESSION]);
    redis_cli(&stack.redis, &["PEXPIRE", "teal:session:s-1", "600000"]);
    redis_cli(&stack.redis, &["SET", "teal:cache:abc", "disposable"]);

    let out = stack.teal(&["backups"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no backups under s3://teal-backups/backups/\n");

    let out = stack.teal(&["backup"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("backup s3://teal-backups/backups/") && stdout.contains(" written: 2 objects"),
        "{stdout}"
    );
    assert!(stdout.contains("1 keys (1 disposable left out)"), "{stdout}");
    assert!(
        stderr.contains("configs: 1 objects") && stderr.contains("redis export: 1 keys (1 session)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "no bar, no escape codes off a terminal: {stderr:?}"
    );

    let out = stack.teal(&["backups"]);
    let listing = text(&out.stdout);
    assert!(listing.contains("4 objects  complete"), "manifest, claim, config, export: {listing}");

    stack.delete("teal-configs/agents/chat.yaml").await;
    redis_cli(&stack.redis, &["FLUSHALL"]);
    let out = stack.teal(&["restore", "--latest", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("would create s3://teal-configs/agents/chat.yaml"), "{stdout}");
    assert!(stdout.contains("1 keys would be written, 0 present and kept"), "{stdout}");
    assert_eq!(stack.get("teal-configs/agents/chat.yaml").await, None, "a dry run writes nothing");
    assert_eq!(redis_cli(&stack.redis, &["DBSIZE"]), "0");

    let backup = listing.split_whitespace().next().expect("the backup's URL").to_owned();
    let out = stack.teal(&["restore", &backup]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("created    s3://teal-configs/agents/chat.yaml"), "{stdout}");
    assert!(stdout.contains("readiness: ready") && stdout.contains("ok    redis"), "{stdout}");
    assert_eq!(stack.get("teal-configs/agents/chat.yaml").await.as_deref(), Some(CHAT));
    assert_eq!(redis_cli(&stack.redis, &["LRANGE", "teal:session:s-1", "0", "-1"]), SESSION);
    let ttl: i64 = redis_cli(&stack.redis, &["PTTL", "teal:session:s-1"]).parse().expect("pttl");
    assert!(ttl > 590_000 && ttl <= 600_000, "the TTL it had: {ttl}");
    assert_eq!(
        redis_cli(&stack.redis, &["EXISTS", "teal:cache:abc"]),
        "0",
        "disposable keys are not restored"
    );

    // On a terminal (a pseudo-terminal from util-linux `script`): a bar, redrawn in place.
    stack.put("teal-tty", b"").await;
    let command = format!("{} backup --bucket teal-tty", env!("CARGO_BIN_EXE_teal"));
    let mut script = Command::new("script");
    script.args(["-qec", &command, "/dev/null"]);
    for (k, v) in stack.teal_env() {
        script.env(k, v);
    }
    let out = script.stdin(Stdio::null()).output().expect("script (util-linux) runs");
    let tty = text(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("[====") && tty.contains("\r\u{1b}[2K"), "a bar on a terminal: {tty:?}");

    // The readiness checks cover every agent's MCP servers: one that is down fails the command.
    let agents = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        agents.path().join("down.yaml"),
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: down\nversion: 1.0\nspec:\n  agent:\n    name: default\n    model: m\n    system_prompt: hi\n    mcp_servers:\n      - name: gone\n        url: http://127.0.0.1:9/mcp\n",
    )
    .expect("write");
    let out = teal()
        .args(["restore", &backup])
        .envs(stack.teal_env())
        .env("TA_SERVICE_CONFIG", agents.path())
        .stdin(Stdio::null())
        .output()
        .expect("teal runs");
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("readiness: not_ready") && stdout.contains("FAIL  mcp:gone"), "{stdout}");
    assert!(text(&out.stderr).contains("error: restored, but not ready: mcp:gone"), "{}", text(&out.stderr));

    let out = stack.teal(&["restore", "s3://teal-backups/elsewhere"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("error: backup: `s3://teal-backups/elsewhere`: expected s3://teal-backups/backups/ID")
    );
}
