//! Backup and restore against real parts: moto_server (S3) and redis-server processes of our own
//! on free ports. The round trip, the refusals (each leaves the target untouched), concurrent
//! runs, claims, dry runs and `--overwrite`, listings, the multipart upload, and the Lambda
//! handlers fed `events/backup-schedule.json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use teal_core::backup::configs::Action;
use teal_core::backup::s3::{Put, S3, Upload};
use teal_core::backup::{
    BackupError, BackupId, BackupRef, BackupRequest, BackupService, Completeness, LogProgress, RestoreRequest,
};
use teal_core::config::s3::s3_client;
use teal_core::llm::Message;
use teal_core::settings::{BackupSettings, S3Prefix};
use teal_core::store::{
    AgentTask, CacheKey, CatalogCache, CatalogKey, DailyBudgets, RateLimitSettings, RateLimiter,
    RedisCatalogCache, RedisConnection, RedisRateLimiter, RedisResponseCache, RedisSessionStore,
    RedisSettings, RedisTaskStore, RequestId, ResponseCache, SessionId, SessionStore, TaskId, TaskItem,
    TaskRole, TaskStore,
};

use crate::helpers::*;

const CONFIGS: &str = "teal-configs";
const BACKUPS: &str = "teal-backups";

/// Every key under a prefix with its type, canonical value and PTTL, read with plain commands.
type RawState = BTreeMap<String, (String, Vec<Vec<u8>>, i64)>;

/// moto with the two buckets (versioned, like the template's) and a redis-server of our own.
pub struct Rig {
    pub moto: Moto,
    pub redis: RedisProcess,
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub conn: RedisConnection,
}

impl Rig {
    pub async fn start() -> Self {
        let moto = Moto::start();
        let redis = RedisProcess::start();
        let sdk = moto.sdk_config().await;
        let s3 = s3_client(&sdk);
        for bucket in [CONFIGS, BACKUPS] {
            s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .expect("versioning");
        }
        let conn =
            RedisConnection::open(&teal_core::backup::batch_settings(&RedisSettings::new(redis.url())), None)
                .expect("open");
        Self { moto, redis, sdk, s3, conn }
    }

    pub fn settings(&self) -> BackupSettings {
        BackupSettings {
            bucket: Some(BACKUPS.into()),
            configs: Some(S3Prefix { bucket: CONFIGS.into(), prefix: "agents/".into() }),
            ..BackupSettings::default()
        }
    }

    pub fn service(&self) -> BackupService {
        BackupService::new(&self.sdk, self.settings(), Some(self.conn.clone()))
    }

    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let body = ByteStream::from(body.to_vec());
        self.s3.put_object().bucket(bucket).key(key).body(body).send().await.expect("put");
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
        Some(out.body.collect().await.expect("body").to_vec())
    }

    /// Every object of `bucket` under `prefix` and its bytes.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let list = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
        let mut out = BTreeMap::new();
        for o in list.contents() {
            let key = o.key().expect("key").to_owned();
            let body = self.get(bucket, &key).await.expect("get");
            out.insert(key, body);
        }
        out
    }

    pub async fn wipe_bucket(&self, bucket: &str) {
        for key in self.objects(bucket, "").await.into_keys() {
            self.s3.delete_object().bucket(bucket).key(key).send().await.expect("delete");
        }
    }

    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        raw(&self.redis.url()).await
    }

    pub async fn flush(&self) {
        let mut r = self.raw().await;
        redis::cmd("FLUSHALL").query_async::<()>(&mut r).await.expect("flushall");
    }

    pub async fn dbsize(&self) -> u64 {
        let mut r = self.raw().await;
        redis::cmd("DBSIZE").query_async(&mut r).await.expect("dbsize")
    }
}

/// The configs: YAML at two depths, a binary object, something outside the prefix.
pub async fn fill_configs(rig: &Rig) -> BTreeMap<String, Vec<u8>> {
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    rig.put(CONFIGS, "agents/chat.yaml", agent_yaml("chat", "1.0").as_bytes()).await;
    rig.put(CONFIGS, "agents/nested/fs.yaml", agent_yaml("fs", "0.1").as_bytes()).await;
    rig.put(CONFIGS, "agents/data/blob.bin", &blob).await;
    rig.put(CONFIGS, "other/outside.yaml", b"not: backed up").await;
    rig.objects(CONFIGS, "agents/").await
}

/// `n` sessions (1-3 messages, TTL one or two hours), three tasks, keys of every disposable
/// kind, and durable keys of the other types (one not UTF-8, one without TTL).
pub async fn fill_redis(conn: &RedisConnection, n: usize) -> Vec<SessionId> {
    let hour = RedisSessionStore::new(conn.clone(), Duration::from_secs(3600));
    let two = RedisSessionStore::new(conn.clone(), Duration::from_secs(7200));
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = SessionId::generate();
        let store = if i % 2 == 0 { &hour } else { &two };
        let turn: Vec<Message> =
            (0..=i % 3).map(|j| Message::user(format!("message {j} of session {i}: ✓"))).collect();
        store.append(&id, &turn).await.expect("append");
        ids.push(id);
    }
    let tasks = RedisTaskStore::new(conn.clone(), Duration::from_secs(600));
    for t in 0..3 {
        let item = TaskItem::text(RequestId::generate(), TaskRole::User, format!("task {t}"));
        tasks
            .create(&AgentTask::new(TaskId::generate(), SessionId::generate(), "alice", vec![item]))
            .await
            .expect("task");
    }
    let cache = RedisResponseCache::new(conn.clone(), 1 << 20);
    cache
        .put(&CacheKey::new("chat", "1.0", &serde_json::json!("q")), b"cached", Duration::from_secs(60))
        .await
        .expect("cache");
    let catalog = RedisCatalogCache::new(conn.clone());
    catalog
        .put(
            &CatalogKey::new("http://mcp/mcp", ""),
            &teal_core::store::CatalogEntry::new(vec![serde_json::json!({"name": "t"})], None, None),
            Duration::from_secs(60),
        )
        .await
        .expect("catalog");
    assert!(
        catalog
            .try_lock_refresh(&CatalogKey::new("http://mcp/mcp", ""), Duration::from_secs(60))
            .await
            .expect("lease")
    );
    RedisRateLimiter::new(
        conn.clone(),
        Some(RateLimitSettings { rate_per_sec: 1.0, burst: 1 }),
        DailyBudgets::default(),
    )
    .admit("ci-bot", None)
    .await;
    let url = format!("redis://{}", conn.addr());
    let mut r = raw(&url).await;
    let p = conn.prefix();
    redis::pipe()
        .cmd("SET")
        .arg(format!("{p}other:binary"))
        .arg(&b"\xff\x00\xfe"[..])
        .ignore()
        .cmd("SADD")
        .arg(format!("{p}other:set"))
        .arg("a")
        .arg("b")
        .ignore()
        .cmd("ZADD")
        .arg(format!("{p}other:zset"))
        .arg("1.5")
        .arg("m")
        .arg("-2")
        .arg("n")
        .ignore()
        .cmd("PEXPIRE")
        .arg(format!("{p}other:zset"))
        .arg(90_000)
        .ignore()
        .cmd("SET")
        .arg("not-ours:key")
        .arg("x")
        .ignore()
        .query_async::<()>(&mut r)
        .await
        .expect("raw keys");
    ids
}

/// The durable keys under `prefix` (disposable kinds are checked apart), read with plain
/// commands, not the code under test.
pub async fn raw_state(url: &str, prefix: &str) -> RawState {
    let mut r = raw(url).await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut r).await.expect("keys");
    let mut out = BTreeMap::new();
    for key in keys {
        let t: String = redis::cmd("TYPE").arg(&key).query_async(&mut r).await.expect("type");
        if t == "none" {
            // Expired since KEYS listed it (the rate bucket lives 2 s): no longer part of the state.
            continue;
        }
        let mut value: Vec<Vec<u8>> = match t.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query_async(&mut r).await.expect("get")],
            "list" => {
                redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut r).await.expect("lrange")
            }
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut r).await.expect("hgetall"),
            "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut r).await.expect("smembers"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut r)
                .await
                .expect("zrange"),
            other => panic!("unexpected type {other}"),
        };
        if t == "set" {
            value.sort();
        }
        if t == "hash" {
            let mut pairs: Vec<Vec<u8>> = value.chunks(2).map(|c| c.concat()).collect();
            pairs.sort();
            value = pairs;
        }
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut r).await.expect("pttl");
        out.insert(key.strip_prefix(prefix).expect("prefixed").to_owned(), (t, value, pttl));
    }
    out
}

fn durable(state: &RawState) -> RawState {
    state
        .iter()
        .filter(|(k, _)| !teal_core::store::KeyKind::of(k).is_disposable())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Same keys, same types and values as `before`, and every TTL what the key had left when it
/// was backed up, counting down since the restore wrote it: between its TTL just after the
/// backup (`after`) less the time the restore and the read-back took (`since_restore`; at least
/// a second), and its TTL just before the backup (`before`).
fn assert_same_state(restored: &RawState, before: &RawState, after: &RawState, since_restore: Duration) {
    assert_eq!(restored.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    let slack = since_restore.as_millis().max(1000) as i64;
    for (k, (t, v, ttl)) in before {
        let (rt, rv, rttl) = &restored[k];
        assert_eq!((rt, rv), (t, v), "{k}");
        if *ttl < 0 {
            assert_eq!(rttl, ttl, "{k}: no expiry");
        } else {
            let low = after[k].2 - slack;
            assert!(
                (low..=*ttl).contains(rttl),
                "{k}: TTL {rttl} ms, {ttl} ms before the backup, {} after, {slack} ms since the restore began",
                after[k].2
            );
        }
    }
}

fn request(id: &str) -> BackupRequest {
    BackupRequest { id: BackupId::parse(id).expect("id"), trigger: "test".into(), deadline: None }
}

fn restore(id: &str) -> RestoreRequest {
    RestoreRequest {
        backup: BackupRef { bucket: BACKUPS.into(), id: BackupId::parse(id).expect("id") },
        overwrite: false,
        dry_run: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_bucket_and_redis_come_back_byte_for_byte_with_their_ttls() {
    let rig = Rig::start().await;
    let configs = fill_configs(&rig).await;
    let sessions = fill_redis(&rig.conn, 1000).await;
    let prefix = rig.conn.prefix().to_owned();
    let before = raw_state(&rig.redis.url(), &prefix).await;
    let service = rig.service();

    let report = service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("backup");
    let after_backup = raw_state(&rig.redis.url(), &prefix).await;
    assert!(report.written);
    assert_eq!(report.objects, 4, "three configs and the export");
    assert_eq!(report.keys, 1000 + 3 * 2 + 3, "sessions, tasks with their request keys, the other keys");
    assert_eq!(report.excluded_keys, 4, "cache, catalog, lease, rate bucket");
    let manifest = service
        .open_manifest(&BackupRef {
            bucket: BACKUPS.into(),
            id: BackupId::parse("20261123T0300Z").expect("id"),
        })
        .await
        .expect("manifest");
    let redis = manifest.redis.as_ref().expect("redis part");
    assert_eq!(redis.excluded, ["cache", "catalog", "catalog-lock", "rate"]);
    assert_eq!(redis.kinds["session"], 1000);
    let configs_part = manifest.configs.as_ref().expect("configs part");
    assert!(configs_part.objects.iter().all(|o| o.source_version_id.is_some() && o.source_etag.is_some()));

    rig.wipe_bucket(CONFIGS).await;
    rig.flush().await;
    assert!(rig.objects(CONFIGS, "").await.is_empty());
    let restoring = std::time::Instant::now();
    let done = service.restore(&restore("20261123T0300Z"), &LogProgress).await.expect("restore");
    assert!(done.configs.iter().all(|c| c.action == Action::Create), "{:?}", done.configs);
    assert_eq!(
        rig.objects(CONFIGS, "").await,
        configs,
        "every config byte-identical, nothing outside the prefix"
    );
    let after = raw_state(&rig.redis.url(), &prefix).await;
    assert_same_state(&after, &durable(&before), &after_backup, restoring.elapsed());
    assert!(
        after.keys().all(|k| !teal_core::store::KeyKind::of(k).is_disposable()),
        "disposable keys left out"
    );
    let store = RedisSessionStore::new(rig.conn.clone(), Duration::from_secs(3600));
    for (i, id) in sessions.iter().enumerate().step_by(97) {
        let messages = store.load(id).await.expect("load");
        assert_eq!(messages.len(), i % 3 + 1);
        assert_eq!(messages[0].content.as_deref(), Some(format!("message 0 of session {i}: ✓").as_str()));
    }

    // A new cluster that a snapshot could not be restored into: another server, another prefix.
    let other = RedisProcess::start();
    let mut to = RedisSettings::new(other.url());
    to.prefix = "restored:".into();
    let target = RedisConnection::open(&teal_core::backup::batch_settings(&to), None).expect("open");
    let elsewhere = BackupService::new(&rig.sdk, rig.settings(), Some(target));
    let restoring = std::time::Instant::now();
    elsewhere.restore(&restore("20261123T0300Z"), &LogProgress).await.expect("restore elsewhere");
    let restored = raw_state(&other.url(), "restored:").await;
    assert_same_state(&restored, &durable(&before), &after_backup, restoring.elapsed());
}

/// Restores `id` and asserts it was refused with `want` in the message and wrote nothing.
async fn assert_refused(rig: &Rig, service: &BackupService, id: &str, want: &str) {
    let e = service.restore(&restore(id), &LogProgress).await.expect_err("refused");
    let text = teal_core::telemetry::error_chain(&e);
    assert!(text.contains(want) && text.contains("nothing was written"), "{text}");
    assert!(!e.is_retryable());
    assert!(rig.objects(CONFIGS, "").await.is_empty(), "no config written");
    assert_eq!(rig.dbsize().await, 0, "no key written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_object_manifest_or_truncated_export_is_refused_before_anything_is_written() {
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    fill_redis(&rig.conn, 50).await;
    let service = rig.service();
    service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("backup");
    rig.wipe_bucket(CONFIGS).await;
    rig.flush().await;
    let folder = "backups/20261123T0300Z/";
    let original = rig.objects(BACKUPS, folder).await;
    let put_back = async |key: &str| rig.put(BACKUPS, key, &original[key]).await;

    // A config changed in place, same size: only its SHA-256 tells.
    let chat = format!("{folder}configs/chat.yaml");
    let mut tampered = original[&chat].clone();
    tampered[0] ^= 0x20;
    rig.put(BACKUPS, &chat, &tampered).await;
    assert_refused(
        &rig,
        &service,
        "20261123T0300Z",
        "configs/chat.yaml does not match the manifest: SHA-256",
    )
    .await;
    put_back(&chat).await;

    // The manifest edited (a count changed): its checksum no longer matches.
    let manifest = format!("{folder}manifest.json");
    let text = String::from_utf8(original[&manifest].clone()).expect("utf-8");
    let edited = text.replace("\"records\": 59", "\"records\": 58");
    assert_ne!(edited, text, "the manifest lists 59 records");
    rig.put(BACKUPS, &manifest, edited.as_bytes()).await;
    assert_refused(&rig, &service, "20261123T0300Z", "manifest.json cannot be trusted: checksum").await;
    // ... or gone.
    rig.s3.delete_object().bucket(BACKUPS).key(&manifest).send().await.expect("delete");
    assert_refused(&rig, &service, "20261123T0300Z", "has no manifest.json").await;
    put_back(&manifest).await;

    // The export cut in half.
    let export = format!("{folder}redis.ndjson.gz");
    let half = original[&export][..original[&export].len() / 2].to_vec();
    rig.put(BACKUPS, &export, &half).await;
    assert_refused(&rig, &service, "20261123T0300Z", "redis.ndjson.gz is").await;
    put_back(&export).await;

    // Without TA_BACKUP_CONFIGS the configs go back where they came from (the manifest's source).
    let back_home = BackupService::new(
        &rig.sdk,
        BackupSettings { configs: None, ..rig.settings() },
        Some(rig.conn.clone()),
    );
    let done = back_home
        .restore(&restore("20261123T0300Z"), &LogProgress)
        .await
        .expect("the untouched backup restores");
    assert_eq!(done.configs_target.as_deref(), Some("s3://teal-configs/agents/"));
    assert_eq!(rig.objects(CONFIGS, "agents/").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_started_at_the_same_moment_leave_complete_backups_only() {
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    fill_redis(&rig.conn, 200).await;
    let (a, b, c) = (rig.service(), rig.service(), rig.service());
    let same = request("20261123T0300Z");
    let next = request("20261123T0301Z");
    let (ra, rb, rc) = tokio::join!(
        a.backup(&same, &LogProgress),
        b.backup(&same, &LogProgress),
        c.backup(&next, &LogProgress)
    );
    assert!(rc.expect("the other minute's backup").written);
    let written = [&ra, &rb].iter().filter(|r| matches!(r, Ok(r) if r.written)).count();
    assert_eq!(written, 1, "one run wrote the backup: {ra:?} {rb:?}");
    for r in [ra, rb] {
        match r {
            Ok(_) => {}
            Err(e @ BackupError::InProgress { .. }) => assert!(e.is_retryable()),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let listed = a.list(BACKUPS).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|l| l.state == Completeness::Complete), "{listed:?}");
    // The retry of the run that lost finds the backup complete and writes nothing.
    let again = b.backup(&same, &LogProgress).await.expect("retry");
    assert!(!again.written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_claim_holds_off_a_second_run_and_a_dead_runs_claim_is_taken_over() {
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    let service = BackupService::new(&rig.sdk, rig.settings(), None);
    let folder = "backups/20261123T0300Z/";
    let claim = |until: &str| {
        format!(r#"{{"run_id":"other","claimed_at":"2026-11-23T03:00:00.000Z","expires_at":"{until}"}}"#)
    };
    rig.put(BACKUPS, &format!("{folder}claim.json"), claim("2999-01-01T00:00:00.000Z").as_bytes()).await;
    let e = service.backup(&request("20261123T0300Z"), &LogProgress).await.expect_err("held");
    assert!(matches!(&e, BackupError::InProgress { run_id, .. } if run_id == "other"), "{e}");
    assert!(e.is_retryable() && e.error_type() == "Backup.Retryable");

    rig.put(BACKUPS, &format!("{folder}claim.json"), claim("2026-01-01T00:00:00.000Z").as_bytes()).await;
    rig.put(BACKUPS, &format!("{folder}configs/left-behind.yaml"), b"from the dead run").await;
    let report = service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("taken over");
    assert!(report.written);
    let folder_objects = rig.objects(BACKUPS, folder).await;
    assert!(!folder_objects.contains_key(&format!("{folder}configs/left-behind.yaml")), "leftovers cleared");
    let listed = service.list(BACKUPS).await.expect("list");
    assert_eq!(listed[0].state, Completeness::Complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_configs_and_keys_are_kept_unless_overwrite_and_a_dry_run_writes_nothing() {
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    let sessions = fill_redis(&rig.conn, 10).await;
    let service = rig.service();
    service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("backup");
    let store = RedisSessionStore::new(rig.conn.clone(), Duration::from_secs(3600));
    // Since the backup: one config changed, one deleted; one session grew, one was deleted.
    rig.put(CONFIGS, "agents/chat.yaml", b"changed").await;
    rig.s3.delete_object().bucket(CONFIGS).key("agents/nested/fs.yaml").send().await.expect("delete");
    store.append(&sessions[0], &[Message::user("after the backup")]).await.expect("append");
    let mut r = rig.raw().await;
    redis::cmd("DEL")
        .arg(format!("{}session:{}", rig.conn.prefix(), sessions[1]))
        .query_async::<()>(&mut r)
        .await
        .expect("del");
    let configs_now = rig.objects(CONFIGS, "").await;
    let values = async || -> BTreeMap<String, (String, Vec<Vec<u8>>)> {
        let state = raw_state(&rig.redis.url(), rig.conn.prefix()).await;
        state.into_iter().map(|(k, (t, v, _))| (k, (t, v))).collect()
    };
    let redis_now = values().await;

    let mut req = restore("20261123T0300Z");
    req.dry_run = true;
    let plan = service.restore(&req, &LogProgress).await.expect("dry run");
    let action = |key: &str| plan.configs.iter().find(|c| c.target.ends_with(key)).map(|c| c.action);
    assert_eq!(action("agents/chat.yaml"), Some(Action::Kept));
    assert_eq!(action("agents/nested/fs.yaml"), Some(Action::Create));
    assert_eq!(action("agents/data/blob.bin"), Some(Action::Unchanged));
    let redis_plan = plan.redis.as_ref().expect("redis");
    assert_eq!((redis_plan.written, redis_plan.kept), (1, redis_plan.records - 1));
    assert_eq!(rig.objects(CONFIGS, "").await, configs_now, "a dry run writes no config");
    assert!(values().await == redis_now, "nor any key");

    req.dry_run = false;
    let done = service.restore(&req, &LogProgress).await.expect("restore");
    assert_eq!(done.redis.as_ref().map(|r| r.written), Some(1));
    assert_eq!(rig.get(CONFIGS, "agents/chat.yaml").await.as_deref(), Some(&b"changed"[..]), "kept");
    assert!(rig.get(CONFIGS, "agents/nested/fs.yaml").await.is_some(), "recreated");
    assert_eq!(store.load(&sessions[0]).await.expect("load").len(), 2, "the newer session is kept");
    assert_eq!(store.load(&sessions[1]).await.expect("load").len(), 2, "the deleted one is back");

    req.overwrite = true;
    let done = service.restore(&req, &LogProgress).await.expect("overwrite");
    assert!(done.configs.iter().any(|c| c.action == Action::Replace));
    assert_eq!(rig.get(CONFIGS, "agents/chat.yaml").await, Some(agent_yaml("chat", "1.0").into_bytes()));
    assert_eq!(store.load(&sessions[0]).await.expect("load").len(), 1, "rolled back to the backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_size_and_completeness_and_latest_skips_incomplete_backups() {
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    let service = BackupService::new(&rig.sdk, rig.settings(), None);
    for id in ["20261121T0300Z", "20261122T0300Z", "20261123T0300Z"] {
        service.backup(&request(id), &LogProgress).await.expect("backup");
    }
    rig.put(BACKUPS, "backups/not-a-backup/x", b"x").await;
    rig.s3
        .delete_object()
        .bucket(BACKUPS)
        .key("backups/20261123T0300Z/manifest.json")
        .send()
        .await
        .expect("delete");
    rig.put(BACKUPS, "backups/20261122T0300Z/configs/extra.yaml", b"x").await;
    let listed = service.list(BACKUPS).await.expect("list");
    let states: Vec<(&str, &Completeness)> = listed.iter().map(|l| (l.id.as_str(), &l.state)).collect();
    assert_eq!(
        states,
        [
            ("20261121T0300Z", &Completeness::Complete),
            ("20261122T0300Z", &Completeness::Incomplete("configs/extra.yaml is not in the manifest".into())),
            (
                "20261123T0300Z",
                &Completeness::Incomplete("no manifest.json (the run failed or is still writing)".into())
            ),
        ]
    );
    assert!(listed[0].bytes > 300_000 && listed[0].objects == 5, "{:?}", listed[0]);
    assert_eq!(service.latest(BACKUPS).await.expect("latest").id.as_str(), "20261121T0300Z");
    rig.wipe_bucket(BACKUPS).await;
    let e = service.latest(BACKUPS).await.expect_err("none");
    assert_eq!(e.to_string(), "no complete backup under s3://teal-backups/backups/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_go_up_in_parts_and_conditional_uploads_never_replace() {
    let rig = Rig::start().await;
    let s3 = S3::new(&rig.sdk);
    let data: Vec<u8> = (0..11u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut up = Upload::new(&s3, BACKUPS, "big.bin").if_absent();
    for chunk in data.chunks(1 << 20) {
        up.write(chunk).await.expect("write");
    }
    let done = up.finish().await.expect("finish");
    assert!(matches!(done.put, Put::Written(ref etag) if etag.contains("-2")), "two parts: {:?}", done.put);
    assert_eq!(done.size, data.len() as u64);
    assert_eq!(done.sha256, teal_core_sha256(&data));
    assert_eq!(rig.get(BACKUPS, "big.bin").await.as_deref(), Some(&data[..]));
    let mut again = Upload::new(&s3, BACKUPS, "big.bin").if_absent();
    again.write(&data).await.expect("write");
    assert_eq!(again.finish().await.expect("finish").put, Put::Exists, "multipart: not replaced");
    let mut small = Upload::new(&s3, BACKUPS, "big.bin").if_absent();
    small.write(b"small").await.expect("write");
    assert_eq!(small.finish().await.expect("finish").put, Put::Exists, "single put: not replaced");
    assert_eq!(rig.get(BACKUPS, "big.bin").await.map(|b| b.len()), Some(data.len()));
}

fn teal_core_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_event_drives_the_backup_function_and_restore_checks_readiness() {
    use teal_core::lambda::job::{self, Job};
    use teal_core::settings::{Env, Settings};
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    fill_redis(&rig.conn, 20).await;
    let env = Env::from_pairs([
        ("TA_BACKUP_BUCKET", BACKUPS.to_owned()),
        ("TA_BACKUP_CONFIGS", format!("s3://{CONFIGS}/agents/")),
        ("TA_REDIS_URL", rig.redis.url()),
        ("TA_AWS_ENDPOINT_URL", rig.moto.endpoint.clone()),
    ]);
    let settings = Settings::read(&env).expect("settings");
    let secrets: Arc<dyn teal_core::secrets::SecretStore> =
        Arc::new(teal_core::secrets::EnvSecretStore::new());
    let app = job::boot_with(Job::Backup, env.clone(), settings.clone(), secrets.clone(), rig.sdk.clone())
        .await
        .expect("boot");
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/backup-schedule.json"))
            .expect("events/backup-schedule.json");
    let event: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_str(&text).expect("an EventBridge event");
    let invoke = || {
        let mut ctx = lambda_http::lambda_runtime::Context::default();
        ctx.deadline = teal_core_now_ms() + 60_000;
        lambda_http::lambda_runtime::LambdaEvent::new(event.clone(), ctx)
    };
    let report = job::handle_backup(&app, invoke()).await.expect("backup");
    assert_eq!(report.backup, "s3://teal-backups/backups/20261123T0300Z", "named after the event's time");
    assert!(report.written && report.keys == 20 + 9);
    let again = job::handle_backup(&app, invoke()).await.expect("the same event again");
    assert!(!again.written, "a repeated delivery writes nothing");

    rig.wipe_bucket(CONFIGS).await;
    rig.flush().await;
    let restore_app =
        job::boot_with(Job::Restore, env, settings, secrets, rig.sdk.clone()).await.expect("boot");
    let ctx = lambda_http::lambda_runtime::Context::default();
    let answer = job::handle_restore(
        &restore_app,
        lambda_http::lambda_runtime::LambdaEvent::new(serde_json::json!({"backup": "latest"}), ctx.clone()),
    )
    .await
    .expect("restore");
    assert_eq!(answer.restore.backup, "s3://teal-backups/backups/20261123T0300Z");
    let readiness = answer.readiness.expect("checked after the restore");
    assert!(readiness.is_ready(), "{readiness:?}");
    assert!(readiness.checks.iter().any(|c| c.name == "redis" && c.ok));
    assert_eq!(rig.objects(CONFIGS, "").await.len(), 3);

    let refused = job::handle_restore(
        &restore_app,
        lambda_http::lambda_runtime::LambdaEvent::new(
            serde_json::json!({"backup": "s3://teal-backups/x"}),
            ctx,
        ),
    )
    .await
    .expect_err("bad input");
    assert_eq!(refused.error_type, "Backup.Fatal");
    assert!(refused.error_message.starts_with("backup: `s3://teal-backups/x`"), "{}", refused.error_message);
}

fn teal_core_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_that_share_the_backup_bucket_never_back_up_earlier_backups() {
    let rig = Rig::start().await;
    rig.put(BACKUPS, "chat.yaml", agent_yaml("chat", "1.0").as_bytes()).await;
    let settings = BackupSettings {
        configs: Some(S3Prefix { bucket: BACKUPS.into(), prefix: String::new() }),
        ..rig.settings()
    };
    let service = BackupService::new(&rig.sdk, settings, None);
    service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("first");
    let second = service.backup(&request("20261124T0300Z"), &LogProgress).await.expect("second");
    assert_eq!(second.objects, 1, "only chat.yaml, not the first backup");
}

#[tokio::test]
async fn every_run_logs_one_summary_line_and_records_its_metrics() {
    emf_metrics();
    let rig = Rig::start().await;
    fill_configs(&rig).await;
    fill_redis(&rig.conn, 5).await;
    let service = rig.service();
    let (buf, guard) = capture_logs();
    service.backup(&request("20261123T0300Z"), &LogProgress).await.expect("backup");
    let mut failing = rig.settings();
    failing.bucket = Some("no-such-bucket".into());
    let e =
        BackupService::new(&rig.sdk, failing, None).backup(&request("20261123T0300Z"), &LogProgress).await;
    drop(guard);
    assert!(!e.expect_err("no bucket").is_retryable(), "a missing bucket will not appear by itself");
    let lines: Vec<serde_json::Value> =
        logs(&buf).lines().map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    let summaries: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| matches!(l["fields"]["message"].as_str(), Some("backup finished" | "backup failed")))
        .collect();
    assert_eq!(summaries.len(), 2, "one per run");
    let ok = &summaries[0]["fields"];
    assert_eq!(
        (ok["objects"].as_u64(), ok["keys"].as_u64(), ok["failures"].as_u64()),
        (Some(4), Some(14), Some(0))
    );
    assert!(ok["bytes"].as_u64() > Some(300_000) && ok["duration_ms"].is_u64(), "{ok}");
    let failed = &summaries[1]["fields"];
    assert_eq!((failed["failures"].as_u64(), failed["retryable"].as_bool()), (Some(1), Some(false)));
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("no-such-bucket") && e.contains("NoSuchBucket")),
        "{failed}"
    );
    // The facade's metrics, as the backup function's EMF exporter flushes them: one document.
    let docs = flush_emf();
    let doc = docs.iter().find(|d| d.get("teal_backup_objects").is_some()).expect("backup metrics");
    let units: BTreeMap<&str, &str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| Some((m["Name"].as_str()?, m["Unit"].as_str()?)))
        .collect();
    assert_eq!(units["teal_backup_bytes"], "Bytes");
    assert_eq!(units["teal_backup_duration"], "Seconds");
    assert_eq!(doc["teal_backup_keys"].as_u64(), Some(14), "both runs added up: {doc}");
    assert_eq!(doc["teal_backup_objects"].as_u64(), Some(4));
    assert_eq!(doc["teal_backup_failures"].as_u64(), Some(1));
    assert_eq!(doc["teal_backup_duration"].as_array().map(Vec::len), Some(2), "one duration per run");
}
