//! Per caller per UTC day budgets in the real Redis: the request budget admits exactly its limit,
//! the token budget refuses once a day's runs used it, the 429 names the budget and when it
//! resets (next UTC midnight, `Retry-After`), the counters live in one hash that expires a
//! minute after its day and start again on a new day. With a rate limit, budgets and the kill
//! switch on, a request costs the one admission script (what the rate limit alone cost) plus one
//! write of its tokens after the run, counted on a Redis of the test's own.

use serde_json::{Value, json};

use crate::helpers::{OwnRedis, StackOptions, redis_env, scripted_llm, start_api};

const PLAIN: &str = "apiVersion: skagents/v1\nkind: Chat\nservice_name: plain\nversion: 1\nspec:\n  agent:\n    \
                     model: gpt-e2e\n    system_prompt: s\n";

struct Stack {
    base: String,
    prefix: String,
    redis: redis::aio::MultiplexedConnection,
    _configs: tempfile::TempDir,
    _llm: wiremock::MockServer,
}

async fn stack(env: Vec<(&'static str, String)>) -> Stack {
    let configs = tempfile::tempdir().expect("configs");
    std::fs::write(configs.path().join("plain.yaml"), PLAIN).expect("write");
    let llm = scripted_llm().await;
    let prefix = env.iter().find(|(k, _)| *k == "TA_REDIS_PREFIX").map(|(_, v)| v.clone()).expect("prefix");
    let url = env.iter().find(|(k, _)| *k == "TA_REDIS_URL").map(|(_, v)| v.clone()).expect("url");
    let opts = StackOptions { env, ..StackOptions::default() };
    let (base, _) = start_api(configs.path(), &llm.uri(), &opts).await;
    let client = redis::Client::open(url).expect("client");
    let redis = client.get_multiplexed_async_connection().await.expect("redis");
    Stack { base, prefix, redis, _configs: configs, _llm: llm }
}

async fn say(base: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let body = json!({"items": [{"content_type": "text", "content": "hi"}]});
    let resp =
        reqwest::Client::new().post(format!("{base}/plain/1")).json(&body).send().await.expect("request");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.json().await.expect("JSON"))
}

fn tomorrow_utc() -> (String, u64) {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let midnight = (now / 86_400_000 + 1) * 86_400_000;
    let text = chrono::DateTime::from_timestamp_millis(midnight as i64)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (text, (midnight - now) / 1000)
}

#[tokio::test]
async fn a_caller_gets_exactly_its_daily_requests_then_429_naming_the_budget_until_midnight() {
    let mut env = redis_env();
    env.push(("TA_DAILY_REQUEST_BUDGET", "2".into()));
    env.push(("TA_RATE_LIMIT_RPS", "1000".into()));
    let mut s = stack(env).await;
    assert_eq!(say(&s.base).await.0, 200);
    assert_eq!(say(&s.base).await.0, 200);
    let (status, headers, body) = say(&s.base).await;
    assert_eq!(status, 429, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], "daily_budget_exceeded");
    assert_eq!(e["budget"], "TA_DAILY_REQUEST_BUDGET");
    let (midnight, secs_left) = tomorrow_utc();
    assert_eq!(e["resets_at"], midnight.as_str());
    assert_eq!(
        e["message"],
        format!(
            "the daily request budget of this API key is used up (TA_DAILY_REQUEST_BUDGET = 2 requests per UTC day, 2 used); it resets at {midnight}"
        )
    );
    let retry: u64 = headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry.abs_diff(secs_left) <= 5, "Retry-After {retry}, {secs_left} s to midnight");

    // One hash per caller, expiring a minute after its day.
    let key = format!("{}budget:anonymous", s.prefix);
    let requests: u64 =
        redis::cmd("HGET").arg(&key).arg("requests").query_async(&mut s.redis).await.expect("HGET");
    assert_eq!(requests, 2, "a refused request is not counted");
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut s.redis).await.expect("PTTL");
    let want = (secs_left * 1000 + 60_000) as i64;
    assert!((want - 6_000..=want + 1_000).contains(&ttl), "PTTL {ttl}, want about {want}");

    // A new day: the hash still says yesterday, so the counters start again.
    let day: u64 = redis::cmd("HGET").arg(&key).arg("day").query_async(&mut s.redis).await.expect("HGET");
    let _: () =
        redis::cmd("HSET").arg(&key).arg("day").arg(day - 1).query_async(&mut s.redis).await.expect("HSET");
    assert_eq!(say(&s.base).await.0, 200);
    let requests: u64 =
        redis::cmd("HGET").arg(&key).arg("requests").query_async(&mut s.redis).await.expect("HGET");
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn the_token_budget_refuses_once_the_days_runs_used_it() {
    let mut env = redis_env();
    // Each scripted LLM answer uses 15 tokens.
    env.push(("TA_DAILY_TOKEN_BUDGET", "30".into()));
    let mut s = stack(env).await;
    assert_eq!(say(&s.base).await.0, 200);
    assert_eq!(say(&s.base).await.0, 200, "15 of 30 used: admitted");
    let (status, _, body) = say(&s.base).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["budget"], "TA_DAILY_TOKEN_BUDGET");
    assert!(
        body["error"]["message"].as_str().unwrap_or_default().contains("30 tokens per UTC day, 30 used"),
        "{body}"
    );
    let key = format!("{}budget:anonymous", s.prefix);
    let tokens: u64 =
        redis::cmd("HGET").arg(&key).arg("tokens").query_async(&mut s.redis).await.expect("HGET");
    assert_eq!(tokens, 30);
}

/// What the server's clients sent, as MONITOR shows it while `during` runs: one line per
/// command a client sent (a round trip), commands run by scripts left out.
async fn client_commands(port: u16, during: impl std::future::Future<Output = ()>) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("monitor");
    tcp.write_all(b"MONITOR\r\n").expect("MONITOR");
    let mut lines = BufReader::new(tcp.try_clone().expect("clone"));
    let mut ok = String::new();
    lines.read_line(&mut ok).expect("+OK");
    during.await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
    let mut c = client.get_multiplexed_async_connection().await.expect("conn");
    let _: String = redis::cmd("ECHO").arg("monitor-end").query_async(&mut c).await.expect("ECHO");
    let mut seen = Vec::new();
    for line in lines.lines() {
        let line = line.expect("line");
        if line.contains("monitor-end") {
            break;
        }
        // `+1700000000.1 [0 127.0.0.1:5555] "evalsha" …`; `[0 lua]` for a script's own calls.
        if line.contains(" lua]") {
            continue;
        }
        if let Some(cmd) = line.split("] \"").nth(1).and_then(|r| r.split('"').next()) {
            seen.push(cmd.to_ascii_lowercase());
        }
    }
    drop(tcp);
    seen
}

#[tokio::test]
async fn rate_limit_budgets_and_the_kill_switch_cost_one_round_trip_beyond_the_rate_limit() {
    let own = OwnRedis::start();
    let env = |budgets: bool| {
        let mut env = vec![
            ("TA_REDIS_URL", own.url()),
            ("TA_REDIS_PREFIX", format!("rt-{budgets}:")),
            ("TA_RATE_LIMIT_RPS", "1000".to_owned()),
        ];
        if budgets {
            env.push(("TA_DAILY_REQUEST_BUDGET", "1000".to_owned()));
            env.push(("TA_DAILY_TOKEN_BUDGET", "1000000".to_owned()));
        }
        env
    };
    let mut counts = Vec::new();
    for budgets in [false, true] {
        let s = stack(env(budgets)).await;
        // The first request loads the scripts (EVALSHA misses once, then EVAL) and, its view of
        // the switches being empty, reads them inside the admission script.
        let first = client_commands(own.port, async {
            assert_eq!(say(&s.base).await.0, 200);
        })
        .await;
        assert!(!first.contains(&"hgetall".to_owned()), "the switches are read inside the script: {first:?}");
        let warm = client_commands(own.port, async {
            assert_eq!(say(&s.base).await.0, 200);
        })
        .await;
        assert!(!warm.contains(&"hgetall".to_owned()), "{warm:?}");
        counts.push(warm);
    }
    let (alone, governed) = (&counts[0], &counts[1]);
    let evalsha = |v: &Vec<String>| v.iter().filter(|c| *c == "evalsha").count();
    assert_eq!(evalsha(alone), 1, "the rate limit alone: {alone:?}");
    assert_eq!(evalsha(governed), 2, "admission + the token write: {governed:?}");
    assert_eq!(governed.len(), alone.len() + 1, "one round trip more: {alone:?} vs {governed:?}");
}
