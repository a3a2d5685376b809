//! The Redis, Secrets Manager and S3 adapters against real servers: the machine's redis-server
//! (each test under its own random key prefix), redis-server processes of our own for the fault
//! tests, and moto_server for the AWS APIs. The task store has its own module, `tasks`; backup and
//! restore theirs, `backup` and `snapshots`.

mod backup;
mod helpers;
mod snapshots;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helpers::*;
use secrecy::ExposeSecret;
use serde_json::json;
use teal_core::config::s3::{Refresh, S3ConfigSource, s3_client};
use teal_core::llm::Message;
use teal_core::secrets::{SecretError, SecretStore, SecretsManagerSettings, SecretsManagerStore};
use teal_core::store::{
    CacheKey, CachePut, CatalogCache, CatalogEntry, CatalogKey, CatalogLookup, CatalogSettings, DailyBudgets,
    Outcome, RateLimitSettings, RateLimiter, RedisCatalogCache, RedisConnection, RedisRateLimiter,
    RedisResponseCache, RedisSessionStore, ResponseCache, SessionId, SessionStore, StoreError,
    lookup_catalog,
};

/// Polls the async `ready` until it holds or `deadline` passes.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !ready().await {
        assert!(Instant::now() < until, "{what} did not happen within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Awaits `fut`, asserting it took less than a second (Redis calls are bounded by 250 ms).
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = fut.await;
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?} while Redis was down", t.elapsed());
    out
}

async fn pttl(conn: &RedisConnection, key: &str) -> i64 {
    let mut raw = raw(&redis_url()).await;
    redis::cmd("PTTL").arg(format!("{}{key}", conn.prefix())).query_async(&mut raw).await.expect("pttl")
}

// ---------------------------------------------------------------- Redis: sessions, cache, catalog, limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_appends_to_one_session_all_land() {
    let conn = shared_redis().await;
    let store = Arc::new(RedisSessionStore::new(conn.clone(), Duration::from_secs(60)));
    let id = SessionId::generate();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.append(&id, &[Message::user(format!("m{i}"))]).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("append");
    }
    let got = store.load(&id).await.expect("load");
    assert_eq!(got.len(), 50);
    let mut texts: Vec<String> = got.iter().filter_map(|m| m.content.clone()).collect();
    texts.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(texts, want);
    let ttl = pttl(&conn, &format!("session:{}", id.as_str())).await;
    assert!(ttl > 50_000 && ttl <= 60_000, "TTL set with every append: {ttl}");
}

#[tokio::test]
async fn sessions_round_trip_messages_in_order_and_unknown_ones_are_empty() {
    let conn = shared_redis().await;
    let store = RedisSessionStore::new(conn, Duration::from_secs(60));
    let id = SessionId::generate();
    let turn =
        [Message::user("hi"), Message::assistant("hello"), Message::tool_result("call-1", "{\"ok\":true}")];
    store.append(&id, &turn).await.expect("append");
    store.append(&id, &[Message::user("again")]).await.expect("append");
    store.append(&id, &[]).await.expect("empty append");
    let got = store.load(&id).await.expect("load");
    assert_eq!(got.len(), 4);
    assert_eq!(got[..3], turn);
    assert_eq!(got[3].content.as_deref(), Some("again"));
    assert!(store.load(&SessionId::generate()).await.expect("load").is_empty());
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "redis");
}

#[tokio::test]
async fn the_response_cache_hits_misses_expires_and_skips_entries_over_the_cap() {
    let conn = shared_redis().await;
    let cache = RedisResponseCache::new(conn.clone(), 1024);
    let key = CacheKey::new("agent", "0.1", &json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(cache.get(&key).await.expect("get"), None);
    let body = br#"{"output_raw":"hello"}"#;
    assert_eq!(cache.put(&key, body, Duration::from_secs(30)).await.expect("put"), CachePut::Stored);
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&body[..]));
    let ttl = pttl(&conn, &format!("cache:{key}")).await;
    assert!(ttl > 25_000 && ttl <= 30_000, "{ttl}");

    let big = CacheKey::new("agent", "0.1", &json!("big"));
    assert_eq!(
        cache.put(&big, &vec![b'x'; 1025], Duration::from_secs(30)).await.expect("put"),
        CachePut::TooLarge { size: 1025, limit: 1024 }
    );
    assert_eq!(cache.get(&big).await.expect("get"), None, "nothing stored");

    let brief = CacheKey::new("agent", "0.1", &json!("brief"));
    cache.put(&brief, b"x", Duration::from_millis(1)).await.expect("put");
    eventually("expiry", Duration::from_secs(2), || async {
        cache.get(&brief).await.expect("get").is_none()
    })
    .await;
}

#[tokio::test]
async fn stale_catalog_entries_are_served_while_exactly_one_caller_refreshes() {
    let conn = shared_redis().await;
    let cache = Arc::new(RedisCatalogCache::new(conn.clone()));
    let key = CatalogKey::new("http://tools.internal:8080/mcp", "sha256-of-headers");
    let settings = CatalogSettings {
        fresh_for: Duration::from_secs(300),
        keep_for: Duration::from_secs(3600),
        refresh_lease: Duration::from_secs(30),
    };
    let keys = [key.clone(), CatalogKey::public("http://tools.internal:8080/mcp")];
    assert_eq!(lookup_catalog(cache.as_ref(), &keys, &settings).await, CatalogLookup::Missing);
    let tools = vec![json!({"name": "read_file", "inputSchema": {"type": "object"}})];
    let written = CatalogEntry::new(tools.clone(), Some("2026-07-28".into()), Some(60_000));
    cache.put(&key, &written, settings.keep_for).await.expect("put");
    // One MGET for both keys: the caller's own list is found behind a missing public one.
    let CatalogLookup::Fresh(entry) = lookup_catalog(cache.as_ref(), &keys, &settings).await else {
        panic!("fresh entry expected")
    };
    assert_eq!(entry.tools, tools);
    assert_eq!((entry.protocol.as_deref(), entry.ttl_ms), (Some("2026-07-28"), Some(60_000)));
    assert!(entry.age() < Duration::from_secs(5));
    let ttl = pttl(&conn, &format!("catalog:{}", key.as_str())).await;
    assert!(ttl > 3_500_000, "kept for keep_for, not fresh_for: {ttl}");

    // Every entry is stale now: ten callers at once all get it, one of them refreshes.
    let stale = CatalogSettings { fresh_for: Duration::ZERO, ..settings };
    cache.put(&key, &CatalogEntry::new(tools.clone(), None, None), stale.keep_for).await.expect("put");
    let lookups = futures::future::join_all((0..10).map(|_| {
        let (cache, key, stale) = (cache.clone(), key.clone(), stale.clone());
        async move { lookup_catalog(cache.as_ref(), &[key], &stale).await }
    }))
    .await;
    let mut refreshers = 0;
    for l in &lookups {
        match l {
            CatalogLookup::Stale { entry, refresh } => {
                assert_eq!(entry.tools, tools);
                refreshers += usize::from(*refresh);
            }
            other => panic!("stale entry expected, got {other:?}"),
        }
    }
    assert_eq!(refreshers, 1);
    assert_eq!(cache.backend(), "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_allows_the_burst_then_refuses_with_a_retry_after() {
    let conn = shared_redis().await;
    let limiter = Arc::new(RedisRateLimiter::new(
        conn,
        Some(RateLimitSettings { rate_per_sec: 0.5, burst: 5 }),
        DailyBudgets::default(),
    ));
    // Twenty concurrent requests from one key: exactly the burst passes (the script is atomic).
    let decisions = futures::future::join_all((0..20).map(|_| {
        let limiter = limiter.clone();
        async move { limiter.admit("key-a", None).await.outcome }
    }))
    .await;
    assert_eq!(decisions.iter().filter(|d| **d == Outcome::Allowed).count(), 5);
    let retry_after = decisions
        .iter()
        .find_map(|d| match d {
            Outcome::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        })
        .expect("refusals");
    assert!(
        retry_after > Duration::from_millis(1000) && retry_after <= Duration::from_millis(2000),
        "one token every 2 s: {retry_after:?}"
    );
    let other = limiter.admit("key-b", None).await.outcome;
    assert_eq!(other, Outcome::Allowed, "buckets are per key");
}

// ---------------------------------------------------------------- Redis faults

#[tokio::test]
async fn a_redis_that_goes_down_is_bypassed_quickly_and_used_again_when_it_comes_back() {
    let mut server = RedisProcess::start();
    let conn = RedisConnection::open(&isolated_settings(&server.url()), None).expect("open");
    let cache = RedisResponseCache::new(conn.clone(), 1 << 20);
    let catalog = RedisCatalogCache::new(conn.clone());
    let sessions = RedisSessionStore::new(conn.clone(), Duration::from_secs(60));
    let limiter = RedisRateLimiter::new(
        conn.clone(),
        Some(RateLimitSettings { rate_per_sec: 1.0, burst: 1 }),
        DailyBudgets::default(),
    );
    let key = CacheKey::new("a", "1", &json!("q"));
    let ckey = CatalogKey::new("http://mcp/mcp", "");
    let id = SessionId::generate();
    cache.put(&key, b"v", Duration::from_secs(60)).await.expect("put while up");
    assert_eq!(limiter.admit("k", None).await.outcome, Outcome::Allowed);
    assert_ne!(limiter.admit("k", None).await.outcome, Outcome::Allowed, "limited while Redis is up");

    emf_metrics();
    flush_emf();
    server.kill();
    let (logs_buf, guard) = capture_logs();
    assert!(within(cache.get(&key)).await.is_err(), "an error the caller treats as a miss");
    assert!(within(cache.lookup(&key)).await.is_none());
    assert!(within(cache.put(&key, b"v", Duration::from_secs(60))).await.is_err());
    assert_eq!(
        within(lookup_catalog(&catalog, std::slice::from_ref(&ckey), &CatalogSettings::default())).await,
        CatalogLookup::Missing
    );
    assert!(within(catalog.try_lock_refresh(&ckey, Duration::from_secs(1))).await.is_err());
    assert!(matches!(within(sessions.load(&id)).await, Err(StoreError::Unavailable(_))));
    let appended = within(sessions.append(&id, &[Message::user("x")])).await;
    assert!(matches!(appended, Err(StoreError::Unavailable(_))));
    assert_eq!(within(limiter.admit("k", None)).await.outcome, Outcome::Allowed, "the limiter fails open");
    assert!(within(conn.ping()).await.is_err());
    drop(guard);
    let logs = logs(&logs_buf);
    let emf = flush_emf();
    let count = |metric: &str, op: &str| {
        emf.iter().find(|d| d["operation"] == op).and_then(|d| d[metric].as_u64()).unwrap_or(0)
    };
    assert!(count("teal_redis_bypass", "cache_get") >= 1, "the cache went around Redis: {emf:?}");
    assert!(count("teal_redis_unavailable", "session_load") >= 1, "{emf:?}");
    assert!(logs.contains("bypassing Redis"), "warning logged: {logs}");

    server.restart();
    eventually("the cache to work again", Duration::from_secs(15), || async {
        cache.put(&key, b"back", Duration::from_secs(60)).await.is_ok()
    })
    .await;
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"back"[..]));
    sessions.append(&id, &[Message::user("x")]).await.expect("sessions work again");
    assert_eq!(sessions.load(&id).await.expect("load").len(), 1);
    conn.ping().await.expect("ping");
}

#[tokio::test]
async fn a_redis_down_at_cold_start_does_not_block_and_is_used_once_it_starts() {
    let mut server = RedisProcess::not_started();
    let t = Instant::now();
    let conn = RedisConnection::open(&isolated_settings(&server.url()), None).expect("open without Redis");
    let cache = RedisResponseCache::new(conn.clone(), 1 << 20);
    let key = CacheKey::new("a", "1", &json!("cold"));
    assert!(cache.get(&key).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(1), "start-up and a first call took {:?}", t.elapsed());

    server.restart();
    eventually("the first connection", Duration::from_secs(15), || async {
        cache.put(&key, b"v", Duration::from_secs(60)).await.is_ok()
    })
    .await;
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"v"[..]));
}

// ---------------------------------------------------------------- Secrets Manager (moto)

async fn secrets_client(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await)
}

#[tokio::test]
async fn secrets_are_read_plain_and_by_json_field_and_cached_until_invalidated() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let admin = secrets_client(&moto).await;
    admin.create_secret().name("llm/key").secret_string("sk-one").send().await.expect("create");
    admin
        .create_secret()
        .name("mcp/creds")
        .secret_string(r#"{"token":"t-1","port":8080}"#)
        .send()
        .await
        .expect("create");
    let store = SecretsManagerStore::from_sdk_config(&sdk, SecretsManagerSettings::default());

    assert_eq!(store.get("llm/key").await.expect("plain").expose_secret(), "sk-one");
    assert_eq!(store.get("mcp/creds#token").await.expect("field").expose_secret(), "t-1");
    assert_eq!(store.get("mcp/creds#port").await.expect("field").expose_secret(), "8080");
    assert_eq!(store.fetches(), 2, "both fields share one read");
    assert!(matches!(store.get("mcp/creds#nope").await, Err(SecretError::NotFound { .. })));
    let e = store.get("llm/key#field").await.expect_err("not JSON");
    assert!(!e.is_transient() && !e.to_string().contains("sk-one"), "{e}");

    // Rotated in Secrets Manager: the cached value is served until invalidated.
    admin.put_secret_value().secret_id("llm/key").secret_string("sk-two").send().await.expect("rotate");
    assert_eq!(store.get("llm/key").await.expect("cached").expose_secret(), "sk-one");
    assert_eq!(store.fetches(), 2, "served from the cache");
    store.invalidate("llm/key");
    assert_eq!(store.get("llm/key").await.expect("fresh").expose_secret(), "sk-two");
    assert_eq!(store.fetches(), 3);

    // Deleted: still cached, gone once invalidated; an unknown secret is NotFound.
    admin
        .delete_secret()
        .secret_id("mcp/creds")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete");
    assert_eq!(store.get("mcp/creds#token").await.expect("cached").expose_secret(), "t-1");
    store.invalidate("mcp/creds#token");
    let e = store.get("mcp/creds#token").await.expect_err("deleted");
    assert!(matches!(e, SecretError::NotFound { .. }), "{e:?}");
    let e = store.get("never/created").await.expect_err("unknown");
    assert_eq!(e.to_string(), "secret never/created is not set");
    assert!(!format!("{store:?}").contains("sk-"));
}

#[tokio::test]
async fn a_failed_secret_refresh_serves_the_cached_value_and_reports_a_transient_error_otherwise() {
    let mut moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let admin = secrets_client(&moto).await;
    admin.create_secret().name("k").secret_string("v1").send().await.expect("create");
    let store =
        SecretsManagerStore::from_sdk_config(&sdk, SecretsManagerSettings { ttl: Duration::from_millis(1) });
    assert_eq!(store.get("k").await.expect("read").expose_secret(), "v1");
    moto.kill();
    // The 1 ms TTL has passed (killing a process takes longer): this get reads Secrets Manager,
    // which is gone.
    assert_eq!(store.get("k").await.expect("stale value").expose_secret(), "v1");
    assert_eq!(store.fetches(), 2, "it did try");
    let e = store.get("never-read").await.expect_err("nothing cached");
    assert!(e.is_transient(), "{e:?}");
}

// ---------------------------------------------------------------- S3 configs (moto)

async fn bucket(moto: &Moto) -> (aws_sdk_s3::Client, String) {
    let s3 = s3_client(&moto.sdk_config().await);
    let name = format!("teal-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    s3.create_bucket().bucket(&name).send().await.expect("create bucket");
    (s3, name)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, text: &str) {
    s3.put_object().bucket(bucket).key(key).body(text.as_bytes().to_vec().into()).send().await.expect("put");
}

#[tokio::test]
async fn s3_configs_load_sorted_and_refresh_only_what_changed() {
    let moto = Moto::start();
    let (s3, b) = bucket(&moto).await;
    put(&s3, &b, "agents/b.yaml", &agent_yaml("bee", "1")).await;
    put(&s3, &b, "agents/a.yml", &format!("{}---\n{}", agent_yaml("ant", "1"), agent_yaml("ant", "2"))).await;
    put(&s3, &b, "agents/nested/c.YAML", &agent_yaml("cat", "1")).await;
    put(&s3, &b, "agents/notes.txt", "not: [yaml").await;
    put(&s3, &b, "agents/.hidden.yaml", "not: [yaml").await;
    put(&s3, &b, "other/x.yaml", "not: [yaml").await;

    let (source, warnings) =
        S3ConfigSource::load(s3.clone(), &b, "agents/", HashMap::new(), Duration::ZERO).await.expect("load");
    assert!(warnings.is_empty(), "{warnings:?}");
    let reg = source.registry();
    assert_eq!(reg.known(), ["ant/1", "ant/2", "bee/1", "cat/1"]);
    assert_eq!(reg.get("bee", "1").expect("bee").source, format!("s3://{b}/agents/b.yaml"));
    assert_eq!(reg.get("cat", "1").expect("cat").source, format!("s3://{b}/agents/nested/c.YAML"));
    assert_eq!(source.parses(), 3);

    // Nothing changed: no object is fetched or parsed again, the registry is the same one.
    assert_eq!(source.refresh_if_stale().await, Refresh::Unchanged);
    assert_eq!(source.parses(), 3);
    assert!(Arc::ptr_eq(&reg, &source.registry()));

    // One object changed: only it is parsed again.
    put(&s3, &b, "agents/b.yaml", &agent_yaml("bee", "2")).await;
    match source.refresh().await {
        Refresh::Updated { changed, .. } => assert_eq!(changed, [format!("s3://{b}/agents/b.yaml")]),
        other => panic!("update expected, got {other:?}"),
    }
    assert_eq!(source.parses(), 4);
    assert_eq!(source.registry().known(), ["ant/1", "ant/2", "bee/2", "cat/1"]);

    // It becomes invalid: the last good registry stays and the error names the key and line.
    put(&s3, &b, "agents/b.yaml", &agent_yaml("bee", "3").replace("model: m", "model: [m]")).await;
    match source.refresh().await {
        Refresh::Rejected(errors) => assert_eq!(
            errors.to_string(),
            format!("s3://{b}/agents/b.yaml:7 spec.agent.model: expected a string, found a sequence")
        ),
        other => panic!("rejection expected, got {other:?}"),
    }
    assert_eq!(source.registry().known(), ["ant/1", "ant/2", "bee/2", "cat/1"]);

    // Fixed, and another object removed: both changes land together.
    put(&s3, &b, "agents/b.yaml", &agent_yaml("bee", "4")).await;
    s3.delete_object().bucket(&b).key("agents/a.yml").send().await.expect("delete");
    match source.refresh().await {
        Refresh::Updated { changed, .. } => {
            assert_eq!(changed, [format!("s3://{b}/agents/a.yml"), format!("s3://{b}/agents/b.yaml")])
        }
        other => panic!("update expected, got {other:?}"),
    }
    assert_eq!(source.registry().known(), ["bee/4", "cat/1"]);
}

#[tokio::test]
async fn s3_tool_policies_load_and_reload_with_the_configs() {
    use teal_core::governance::{Decision, Denied, ToolRequest};
    let moto = Moto::start();
    let (s3, b) = bucket(&moto).await;
    put(&s3, &b, "agents/a.yaml", &agent_yaml("ant", "1")).await;
    put(&s3, &b, "agents/policies/base.cedar", "permit(principal, action, resource);\n").await;
    let forbid = "@id(\"no-writes\")\nforbid(principal, action, resource == Tool::\"fs/write_file\");\n";
    put(&s3, &b, "agents/policies/no-writes.cedar", forbid).await;
    let (source, _) =
        S3ConfigSource::load(s3.clone(), &b, "agents/", HashMap::new(), Duration::ZERO).await.expect("load");
    let ask = |tool: &'static str| ToolRequest {
        caller: "ci",
        agent: "ant",
        version: "1",
        server: "fs",
        tool,
        arguments: None,
    };
    let reg = source.registry();
    assert_eq!(reg.policies().len(), 2);
    assert_eq!(
        reg.policies().decide(&ask("write_file")),
        Decision::Deny(Denied::Forbidden("no-writes".into()))
    );
    assert_eq!(reg.policies().decide(&ask("read_file")), Decision::Allow);

    // A broken policy is rejected with its key and line; the last good policies stay.
    put(&s3, &b, "agents/policies/no-writes.cedar", "\nforbid(principal action, resource);\n").await;
    match source.refresh().await {
        Refresh::Rejected(errors) => assert!(
            errors
                .to_string()
                .starts_with(&format!("s3://{b}/agents/policies/no-writes.cedar:2: unexpected token")),
            "{errors}"
        ),
        other => panic!("rejection expected, got {other:?}"),
    }
    assert_eq!(source.registry().policies().len(), 2);

    // Removed: the change reloads with the configs.
    s3.delete_object().bucket(&b).key("agents/policies/no-writes.cedar").send().await.expect("delete");
    assert!(matches!(source.refresh().await, Refresh::Updated { .. }));
    assert_eq!(source.registry().policies().decide(&ask("write_file")), Decision::Allow);
}

#[tokio::test]
async fn s3_cold_start_reports_every_invalid_key_and_waits_for_the_ttl() {
    let moto = Moto::start();
    let (s3, b) = bucket(&moto).await;
    put(&s3, &b, "cfg/good.yaml", &agent_yaml("good", "1")).await;
    put(&s3, &b, "cfg/bad.yaml", &agent_yaml("bad", "1").replace("kind: Chat", "kind: Workflow")).await;
    put(&s3, &b, "cfg/dup.yaml", &agent_yaml("good", "1")).await;
    let err = S3ConfigSource::load(s3.clone(), &b, "cfg/", HashMap::new(), Duration::ZERO)
        .await
        .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        format!("s3://{b}/cfg/bad.yaml:2 kind: unsupported kind `Workflow`: expected Chat")
    );

    s3.delete_object().bucket(&b).key("cfg/bad.yaml").send().await.expect("delete");
    let err =
        S3ConfigSource::load(s3.clone(), &b, "cfg/", HashMap::new(), Duration::ZERO).await.expect_err("dup");
    assert_eq!(
        err.to_string(),
        format!(
            "s3://{b}/cfg/good.yaml name: duplicate agent `good/1`: also defined in s3://{b}/cfg/dup.yaml"
        )
    );

    let err = S3ConfigSource::load(s3.clone(), &b, "empty/", HashMap::new(), Duration::ZERO)
        .await
        .expect_err("none");
    assert_eq!(err.to_string(), format!("s3://{b}/empty/: no agent configs (*.yaml, *.yml) found"));

    s3.delete_object().bucket(&b).key("cfg/dup.yaml").send().await.expect("delete");
    let vars = HashMap::from([("HOST".to_owned(), "tools.internal".to_owned())]);
    put(
        &s3,
        &b,
        "cfg/good.yaml",
        &format!(
            "{}    mcp_servers:\n      - name: t\n        url: http://${{HOST}}:8080/mcp\n",
            agent_yaml("good", "1")
        ),
    )
    .await;
    let (source, _) =
        S3ConfigSource::load(s3.clone(), &b, "cfg/", vars, Duration::from_secs(3600)).await.expect("load");
    let agent = source.registry().get("good", "1").expect("agent");
    assert_eq!(agent.agents[0].mcp_servers[0].url.as_str(), "http://tools.internal:8080/mcp");
    assert_eq!(source.refresh_if_stale().await, Refresh::NotDue);
    assert!(!source.is_stale());
}

#[tokio::test]
async fn moto_answers_a_matching_if_none_match_with_304() {
    // The refresh keeps an object when S3 answers 304 to `If-None-Match`; pin that S3 (and the
    // SDK) report it as an error whose raw status is 304.
    let moto = Moto::start();
    let (s3, b) = bucket(&moto).await;
    put(&s3, &b, "a.yaml", "x: 1").await;
    let etag = s3.head_object().bucket(&b).key("a.yaml").send().await.expect("head").e_tag.expect("etag");
    let err = s3.get_object().bucket(&b).key("a.yaml").if_none_match(&etag).send().await.expect_err("304");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(304));
    let ok = s3.get_object().bucket(&b).key("a.yaml").if_none_match("\"other\"").send().await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn rediss_with_an_auth_token_from_the_secret_store_works_like_elasticache_and_follows_rotation() {
    let server = TlsRedis::start("token-1");
    let (port, ca) = (server.port.to_string(), server.ca_file.display().to_string());
    let prefix = format!("teal-test:{}:", uuid::Uuid::new_v4());
    let env = teal_core::settings::Env::from_pairs([
        ("TA_REDIS_URL", format!("rediss://localhost:{port}")),
        ("TA_REDIS_AUTH_SECRET", "redis/auth".to_owned()),
        ("TA_REDIS_CA_FILE", ca),
        ("TA_REDIS_PREFIX", prefix),
    ]);
    let settings = teal_core::settings::Settings::read(&env)
        .expect("settings")
        .stores
        .redis
        .expect("TA_REDIS_URL is set");
    let secret = Arc::new(RotatingSecret::new("token-1"));
    let conn = RedisConnection::connect(&settings, secret.clone()).await.expect("connect");
    eventually("the TLS connection", Duration::from_secs(10), || async { conn.ping().await.is_ok() }).await;
    let cache = RedisResponseCache::new(conn.clone(), 1024);
    let key = CacheKey::new("a", "1", &json!("tls"));
    cache.put(&key, b"over tls", Duration::from_secs(60)).await.expect("put");
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"over tls"[..]));
    assert_eq!(secret.invalidations(), 0);

    // The token is rotated (ElastiCache `modify-replication-group --auth-token-update-strategy
    // SET` drops clients): the connection reads the secret again and carries on.
    let mut admin = server.admin("token-1").await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("token-2")
        .query_async(&mut admin)
        .await
        .expect("rotate");
    secret.set("token-2");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin)
        .await
        .expect("kill");
    eventually("a connection with the new token", Duration::from_secs(15), || async {
        cache.put(&key, b"after rotation", Duration::from_secs(60)).await.is_ok()
    })
    .await;
    assert!(secret.invalidations() >= 1, "the secret store's cache was bypassed");
    assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"after rotation"[..]));
}
