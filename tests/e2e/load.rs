//! Faults under load (bounded, loopback only): a Redis of this test's own killed and restarted
//! while invokes run, an LLM that sends garbage, alias and key bombs in configs. Each asserts the
//! README's outcome and that no acknowledged session turn is lost.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{OwnRedis, StackOptions, mount_script, spawn_stack, spawn_stack_with};

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    fresh_ok: AtomicUsize,
    fresh_not_kept: AtomicUsize,
    fresh_failed: AtomicUsize,
    session_ok: AtomicUsize,
    session_503: AtomicUsize,
    other: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_new_conversation_and_loses_no_turn() {
    let mut redis = OwnRedis::start();
    let prefix = format!("teal-load-{}:", uuid::Uuid::new_v4());
    let env = vec![("TA_REDIS_URL", redis.url()), ("TA_REDIS_PREFIX", prefix.clone())];
    let app = Arc::new(spawn_stack_with(StackOptions { env, ..Default::default() }).await);
    mount_script(&app).await;

    const REQUESTS: usize = 300;
    const SESSIONS: usize = 10;
    let tally = Arc::new(Tally::default());
    let acked: Arc<Vec<AtomicUsize>> = Arc::new((0..SESSIONS).map(|_| AtomicUsize::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (app, tally, acked, next) = (app.clone(), tally.clone(), acked.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= REQUESTS {
                        break;
                    }
                    let item = json!([{"content_type": "text", "content": format!("turn {i}")}]);
                    if i % 2 == 0 {
                        // A new conversation each time.
                        let (status, _, body) = app.post_json("plain/1", &json!({"items": item})).await;
                        let not_kept = body["extra_data"]["items"]
                            .as_array()
                            .is_some_and(|a| a.contains(&json!({"key": "session_stored", "value": "false"})));
                        match (status, not_kept) {
                            (200, false) => tally.fresh_ok.fetch_add(1, Ordering::SeqCst),
                            (200, true) => tally.fresh_not_kept.fetch_add(1, Ordering::SeqCst),
                            _ => tally.fresh_failed.fetch_add(1, Ordering::SeqCst),
                        };
                    } else {
                        let s = (i / 2) % SESSIONS;
                        let body = json!({"session_id": format!("load-{s}"), "items": item});
                        let (status, _, _) = app.post_json("plain/1", &body).await;
                        match status {
                            200 => {
                                acked[s].fetch_add(1, Ordering::SeqCst);
                                tally.session_ok.fetch_add(1, Ordering::SeqCst)
                            }
                            503 => tally.session_503.fetch_add(1, Ordering::SeqCst),
                            _ => tally.other.fetch_add(1, Ordering::SeqCst),
                        };
                    }
                    tally.done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Kill Redis a third of the way in, bring it back at two thirds.
    let wait_for = |n: usize| {
        let tally = tally.clone();
        async move {
            while tally.done.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait_for(REQUESTS / 3)).await.expect("load runs");
    redis.kill();
    tokio::time::timeout(Duration::from_secs(60), wait_for(2 * REQUESTS / 3)).await.expect("load runs");
    redis.restart();
    let restarted = Instant::now();
    // Recovered: a session turn is kept again.
    let recovered = loop {
        let body = json!({"session_id": "probe", "items": [{"content_type": "text", "content": "back?"}]});
        let (status, _, _) = app.post_json("plain/1", &body).await;
        if status == 200 {
            break restarted.elapsed();
        }
        assert!(restarted.elapsed() < Duration::from_secs(20), "no recovery after the restart");
    };
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w).await.expect("bounded").expect("worker");
    }

    let get = |a: &AtomicUsize| a.load(Ordering::SeqCst);
    assert_eq!(get(&tally.fresh_failed), 0, "every new conversation was answered");
    assert_eq!(get(&tally.other), 0, "session requests answer 200 or 503, nothing else");
    assert!(get(&tally.fresh_not_kept) > 0 && get(&tally.session_503) > 0, "the outage was felt");
    assert!(recovered < Duration::from_secs(5), "recovered after {recovered:?}");
    // Every acknowledged turn (user + assistant) is in Redis after the restart.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let mut lost = 0;
    for (s, n) in acked.iter().enumerate() {
        let len: usize = redis::cmd("LLEN")
            .arg(format!("{prefix}session:load-{s}"))
            .query_async(&mut conn)
            .await
            .expect("LLEN");
        lost += (2 * get(n)).saturating_sub(len) / 2;
        assert!(len >= 2 * get(n), "session load-{s}: {len} messages for {} acknowledged turns", get(n));
    }
    assert_eq!(lost, 0);
    eprintln!(
        "fresh ok {} / not kept {} / failed 0; session ok {} / 503 {}; recovered in {recovered:?}",
        get(&tally.fresh_ok),
        get(&tally.fresh_not_kept),
        get(&tally.session_ok),
        get(&tally.session_503)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_sending_garbage_gives_a_generic_502() {
    let app = spawn_stack().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>sk-garbage-0123456789abcdef</html>"))
        .mount(&app.llm)
        .await;
    let (status, _, body) = app.say("plain/1", "hi").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "llm_upstream_failed");
    assert_eq!(body["error"]["upstream"], "llm");
    assert_eq!(body["error"]["message"], "LLM upstream failed: the answer is not a valid chat completion");
    assert!(!body.to_string().contains("garbage"), "{body}");
}

fn validate(dir: &Path) -> Result<(), String> {
    teal_core::config::load_path_with_vars(dir, &Default::default()).map(|_| ()).map_err(|e| e.to_string())
}

/// An alias bomb is refused at the line that crosses the bound (an unbounded expansion would
/// never return), and 40,000 keys load. How long each takes is measured by the
/// `fault_matrix` example, not asserted here: a wall-clock bound fails on a loaded machine.
#[test]
fn alias_and_key_bombs_are_refused_at_their_line_or_load() {
    let dir = tempfile::tempdir().expect("dir");
    let head = "apiVersion: skagents/v1\nkind: Chat\nservice_name: bomb\nversion: 1\n";
    // Nested aliases, each level ten of the one before.
    let mut bomb = format!("{head}x:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        bomb.push_str(&format!("  a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    bomb.push_str("spec:\n  agent:\n    model: m\n    system_prompt: p\n");
    std::fs::write(dir.path().join("bomb.yaml"), &bomb).expect("write");
    let err = validate(dir.path()).expect_err("refused");
    assert!(err.contains("bomb.yaml:9") && err.contains("aliases expand to more than 10000 nodes"), "{err}");

    // One mapping of 40,000 keys.
    let dir = tempfile::tempdir().expect("dir");
    let keys: String = (0..40_000).map(|i| format!("    k{i}: v\n")).collect();
    std::fs::write(
        dir.path().join("keys.yaml"),
        format!("{head}spec:\n  agent:\n    model: m\n    system_prompt: p\n{keys}"),
    )
    .expect("write");
    validate(dir.path()).expect("loads, with warnings");
}
