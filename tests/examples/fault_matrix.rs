//! The fault matrix of issue 15, printed (a benchmark, not a test: the numbers depend on the
//! machine and its load). `cargo run --release -p teal-e2e --example fault_matrix [REQUESTS]`
//!
//! - concurrent invokes (16 at a time, half new conversations, half continuing one of 20
//!   sessions) against a redis-server of its own, killed a third of the way in and restarted at
//!   two thirds: new-conversation success rate, session turns lost, time to recover;
//! - the API process's RSS with 600 idle connections open (the serve loop of `teal serve`);
//! - `teal validate`'s parse of the worst configs of the fuzz classes (an alias bomb, 40,000 keys).

#![allow(clippy::unwrap_used)]

#[path = "../e2e/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use helpers::{OwnRedis, StackOptions, mount_script, spawn_stack_with};
use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()))
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3000);
    println!("measured on a shared, loaded 2-core machine; loopback only\n");

    // 1. Redis killed and restarted under load.
    let mut redis = OwnRedis::start();
    let prefix = format!("teal-matrix-{}:", uuid::Uuid::new_v4());
    let env = vec![("TA_REDIS_URL", redis.url()), ("TA_REDIS_PREFIX", prefix.clone())];
    let app = Arc::new(spawn_stack_with(StackOptions { env, ..Default::default() }).await);
    mount_script(&app).await;
    const SESSIONS: usize = 20;
    let done = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default()); // fresh ok, fresh failed, session ok, session 503
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..SESSIONS).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (app, done, next, counts, acked) =
                (app.clone(), done.clone(), next.clone(), counts.clone(), acked.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        break;
                    }
                    let item = json!([{"content_type": "text", "content": format!("turn {i}")}]);
                    if i % 2 == 0 {
                        let (status, _, _) = app.post_json("plain/1", &json!({"items": item})).await;
                        counts[if status == 200 { 0 } else { 1 }].fetch_add(1, Ordering::SeqCst);
                    } else {
                        let s = (i / 2) % SESSIONS;
                        let (status, _, _) = app
                            .post_json("plain/1", &json!({"session_id": format!("m-{s}"), "items": item}))
                            .await;
                        if status == 200 {
                            acked[s].fetch_add(1, Ordering::SeqCst);
                            counts[2].fetch_add(1, Ordering::SeqCst);
                        } else {
                            counts[3].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < requests / 3 {
        tokio::task::yield_now().await;
    }
    redis.kill();
    while done.load(Ordering::SeqCst) < 2 * requests / 3 {
        tokio::task::yield_now().await;
    }
    redis.restart();
    let restarted = Instant::now();
    let recovered = loop {
        let body = json!({"session_id": "probe", "items": [{"content_type": "text", "content": "back?"}]});
        if app.post_json("plain/1", &body).await.0 == 200 {
            break restarted.elapsed();
        }
    };
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut lost = 0usize;
    for (s, n) in acked.iter().enumerate() {
        let len: usize =
            redis::cmd("LLEN").arg(format!("{prefix}session:m-{s}")).query_async(&mut conn).await.unwrap();
        lost += (2 * n.load(Ordering::SeqCst)).saturating_sub(len) / 2;
    }
    let c = |i: usize| counts[i].load(Ordering::SeqCst);
    println!(
        "| Redis killed at 1/3, restarted at 2/3 of {requests} invokes (16 concurrent, {elapsed:.2?}) | result |"
    );
    println!("|---|---|");
    println!(
        "| new conversations answered | {} / {} ({:.1} %) |",
        c(0),
        c(0) + c(1),
        100.0 * c(0) as f64 / (c(0) + c(1)) as f64
    );
    println!("| session turns answered / refused 503 | {} / {} |", c(2), c(3));
    println!("| acknowledged session turns lost | {lost} |");
    println!("| recovery (restart -> first kept session turn) | {recovered:.0?} |");

    // 2. RSS under 600 idle connections.
    let before = rss_kib();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let t = Instant::now();
    let (status, _) = app.get("/health").await;
    let health = t.elapsed();
    let during = rss_kib();
    println!(
        "| process RSS before / with 600 idle connections (server and client sockets in one process) | {:.1} / {:.1} MiB |",
        before as f64 / 1024.0,
        during as f64 / 1024.0
    );
    println!("| /health with 600 idle connections open | {status} in {health:.2?} |");
    drop(idle);

    // 3. `teal validate` on the worst configs.
    let head = "apiVersion: skagents/v1\nkind: Chat\nservice_name: bomb\nversion: 1\n";
    let mut bomb = format!("{head}x:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..40 {
        bomb.push_str(&format!("  a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    bomb.push_str("spec:\n  agent:\n    model: m\n    system_prompt: p\n");
    let keys: String = (0..40_000).map(|i| format!("    k{i}: v\n")).collect();
    let keys = format!("{head}spec:\n  agent:\n    model: m\n    system_prompt: p\n{keys}");
    for (name, text) in [("alias bomb (10^40 nodes expanded)", &bomb), ("40,000 keys in one mapping", &keys)]
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yaml"), text).unwrap();
        let t = Instant::now();
        let ok = teal_core::config::load_path_with_vars(dir.path(), &Default::default()).is_ok();
        println!(
            "| teal validate, {name} ({} KB) | {:.1?} ({}) |",
            text.len() / 1024,
            t.elapsed(),
            if ok { "loads" } else { "refused at its line" }
        );
    }
}
