//! Backup and restore of N sessions of ~2 KB: wall time and the peak RSS of the process doing it.
//!
//! `cargo run --release -p teal-core --example backup_bench [-- SESSIONS...]` (default 10000
//! and 100000). Starts its own moto_server (`scripts/moto-server.py`) and redis-server on free
//! ports, fills Redis with SESSIONS sessions (four JSON messages of ~500 bytes of word-like text
//! each, one-hour TTL) and three configs, then runs the backup and the restore (into the
//! flushed Redis) each in a child process of this binary, as the functions run them
//! (`BackupService::connect` from the same `TA_*` variables), and reports the child's time and
//! peak RSS (`VmHWM`): the backup function's memory is that process's.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use teal_core::backup::{BackupRef, BackupRequest, BackupService, LogProgress, RestoreRequest};
use teal_core::secrets::{EnvSecretStore, SecretStore, aws_sdk_config};
use teal_core::settings::{Env, Settings};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn start(program: &str, args: &[&str], port: u16) -> Result<Server, String> {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > until {
            return Err(format!("{program} did not listen on {port}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// Word-like text that compresses about as well as chat does.
fn text(seed: &mut u64, bytes: usize) -> String {
    const SYLLABLES: [&str; 16] =
        ["ka", "lo", "mi", "ren", "to", "sa", "vel", "qu", "an", "dor", "ish", "pe", "zu", "ny", "ob", "tra"];
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        for i in 0..(1 + (*seed % 4) as usize) {
            out.push_str(SYLLABLES[((*seed >> (i * 4)) & 15) as usize]);
        }
        out.push(if seed.is_multiple_of(11) { '.' } else { ' ' });
    }
    out
}

/// A plain connection whose calls may take as long as a big pipeline does.
async fn connection(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| e.to_string())
}

async fn fill(url: &str, sessions: usize) -> Result<(), String> {
    let mut c = connection(url).await?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for start in (0..sessions).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(sessions) {
            let key = format!("teal:session:bench-{i:08}");
            for role in ["user", "assistant", "user", "assistant"] {
                let m = serde_json::json!({"role": role, "content": text(&mut seed, 470)});
                pipe.cmd("RPUSH").arg(&key).arg(m.to_string()).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&key).arg(3_600_000).ignore();
        }
        pipe.query_async::<()>(&mut c).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Peak resident set of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The child: one backup or restore from the environment, then `ms peak_mib` on stdout.
async fn child(what: &str) -> Result<(), String> {
    let env = Env::process();
    let settings = Settings::read(&env).map_err(|e| e.to_string())?;
    let sdk = aws_sdk_config(settings.aws_endpoint_url.as_deref()).await;
    let secrets: Arc<dyn SecretStore> = Arc::new(EnvSecretStore::new());
    let service = BackupService::connect(&settings, secrets, &sdk).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let done = match what {
        "backup" => service.backup(&BackupRequest::now("bench"), &LogProgress).await.map(|r| r.keys),
        _ => {
            let bucket = service.bucket().map_err(|e| e.to_string())?.to_owned();
            let backup: BackupRef = service.latest(&bucket).await.map_err(|e| e.to_string())?;
            let req = RestoreRequest { backup, overwrite: false, dry_run: false };
            service.restore(&req, &LogProgress).await.map(|r| r.redis.map_or(0, |x| x.written))
        }
    };
    let keys = done.map_err(|e| teal_core::telemetry::error_chain(&e))?;
    println!("{} {:.1} {keys}", started.elapsed().as_millis(), peak_rss_mib());
    Ok(())
}

fn run_child(what: &str, env: &[(&str, String)]) -> Result<(u64, f64, u64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--child", what])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{what} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut parts = stdout.split_whitespace();
    let mut next = || parts.next().ok_or_else(|| format!("unexpected child output: {stdout}"));
    let ms = next()?.parse().map_err(|_| stdout.to_string())?;
    let mib = next()?.parse().map_err(|_| stdout.to_string())?;
    let keys = next()?.parse().map_err(|_| stdout.to_string())?;
    Ok((ms, mib, keys))
}

async fn bench(sessions: usize) -> Result<(), String> {
    let (s3_port, redis_port) = (free_port(), free_port());
    let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto-server.py");
    let _moto = start("python3", &[shim, "-H", "127.0.0.1", "-p", &s3_port.to_string()], s3_port)?;
    let port = redis_port.to_string();
    let redis_args = ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    let _redis = start("redis-server", &redis_args, redis_port)?;
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let env = vec![
        ("TA_BACKUP_BUCKET", "bench-backups".to_owned()),
        ("TA_BACKUP_CONFIGS", "s3://bench-configs/agents/".to_owned()),
        ("TA_REDIS_URL", redis_url.clone()),
        ("TA_AWS_ENDPOINT_URL", endpoint.clone()),
        ("TA_SECRETS_BACKEND", "env".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench".to_owned()),
        ("RUST_LOG", "off".to_owned()),
    ];
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("bench", "bench", None, None, "bench"));
    let sdk = teal_core::secrets::aws_sdk_config_from(loader, Some(&endpoint)).await;
    let s3 = teal_core::config::s3::s3_client(&sdk);
    for bucket in ["bench-backups", "bench-configs"] {
        s3.create_bucket().bucket(bucket).send().await.map_err(|e| format!("{e:?}"))?;
    }
    for name in ["chat", "fs", "triage"] {
        let body = format!("apiVersion: skagents/v1\nkind: Chat\nservice_name: {name}\nversion: 1.0\n");
        s3.put_object()
            .bucket("bench-configs")
            .key(format!("agents/{name}.yaml"))
            .body(body.into_bytes().into())
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    let filled = Instant::now();
    fill(&redis_url, sessions).await?;
    let fill_ms = filled.elapsed().as_millis();
    let (backup_ms, backup_mib, keys) = run_child("backup", &env)?;
    let listing = s3.list_objects_v2().bucket("bench-backups").send().await.map_err(|e| format!("{e:?}"))?;
    let export = listing
        .contents()
        .iter()
        .find(|o| o.key().is_some_and(|k| k.ends_with("redis.ndjson.gz")))
        .and_then(|o| o.size())
        .unwrap_or(0);
    let mut c = connection(&redis_url).await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut c).await.map_err(|e| e.to_string())?;
    let (restore_ms, restore_mib, written) = run_child("restore", &env)?;
    let dbsize: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.map_err(|e| e.to_string())?;
    if keys != sessions as u64 || written != keys || dbsize != keys {
        return Err(format!(
            "backed up {keys}, restored {written}, {dbsize} keys in Redis: expected {sessions}"
        ));
    }
    println!(
        "{sessions:>7} sessions (filled in {fill_ms} ms): export {:.1} MiB | backup {:.2} s, peak RSS {backup_mib:.1} MiB | restore {:.2} s, peak RSS {restore_mib:.1} MiB",
        export as f64 / (1 << 20) as f64,
        backup_ms as f64 / 1000.0,
        restore_ms as f64 / 1000.0,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        child(args.get(1).map_or("backup", String::as_str)).await
    } else {
        let counts: Vec<usize> = if args.is_empty() {
            vec![10_000, 100_000]
        } else {
            args.iter().filter_map(|a| a.parse().ok()).collect()
        };
        let mut result = Ok(());
        for n in counts {
            result = bench(n).await;
            if result.is_err() {
                break;
            }
        }
        result
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
