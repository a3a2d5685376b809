//! The Redis task store against the machine's redis-server (and one of our own for the fault
//! test): what it writes, its expiry, its size bound and its compare-and-set under concurrency.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use teal_core::store::{
    AgentTask, RedisConnection, RedisTaskStore, RequestId, SessionId, StoreError, TaskContent, TaskId,
    TaskItem, TaskRole, TaskStatus, TaskStore, TaskStoreError,
};

use super::{eventually, pttl, within};
use crate::helpers::*;

const TTL: Duration = Duration::from_secs(60);

fn new_task(text: &str) -> (AgentTask, RequestId) {
    let request = RequestId::generate();
    let item = TaskItem::text(request.clone(), TaskRole::User, text);
    (AgentTask::new(TaskId::generate(), SessionId::generate(), "alice", vec![item]), request)
}

fn answer(text: &str) -> TaskItem {
    TaskItem::text(RequestId::generate(), TaskRole::Assistant, text)
}

fn texts(task: &AgentTask) -> Vec<String> {
    let mut texts: Vec<String> = task
        .items
        .iter()
        .map(|i| match &i.content {
            TaskContent::Text(t) | TaskContent::Image(t) => t.clone(),
        })
        .collect();
    texts.sort();
    texts
}

/// Two stores on two connections (two containers) sharing one fresh key prefix.
fn two_containers() -> (RedisTaskStore, RedisTaskStore) {
    let settings = isolated_settings(&redis_url());
    let open = || RedisTaskStore::new(RedisConnection::open(&settings, None).expect("open"), TTL);
    (open(), open())
}

async fn raw_hget(conn: &RedisConnection, task: &TaskId, field: &str) -> Option<String> {
    let mut raw = raw(&redis_url()).await;
    redis::cmd("HGET")
        .arg(format!("{}task:{task}", conn.prefix()))
        .arg(field)
        .query_async(&mut raw)
        .await
        .expect("hget")
}

#[tokio::test]
async fn tasks_are_created_once_found_by_task_and_request_id_and_expire_with_both_keys() {
    let conn = shared_redis().await;
    let store = RedisTaskStore::new(conn.clone(), TTL);
    let (task, request) = new_task("hello");
    store.create(&task).await.expect("create");
    let e = store.create(&task).await.expect_err("twice");
    assert!(matches!(&e, TaskStoreError::AlreadyExists(id) if *id == task.task_id), "{e:?}");

    assert_eq!(store.load(&task.task_id).await.expect("load"), Some(task.clone()));
    assert_eq!(store.load_by_request_id(&request).await.expect("load"), Some(task.clone()));
    assert_eq!(store.load(&TaskId::generate()).await.expect("load"), None);
    assert_eq!(store.load_by_request_id(&RequestId::generate()).await.expect("load"), None);
    assert_eq!(raw_hget(&conn, &task.task_id, "rev").await.as_deref(), Some("0"));
    for key in [format!("task:{}", task.task_id), format!("task-req:{request}")] {
        let ttl = pttl(&conn, &key).await;
        assert!(ttl > 55_000 && ttl <= 60_000, "{key} expires with the session TTL: {ttl}");
    }
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), "redis");

    let brief = RedisTaskStore::new(conn, Duration::from_millis(1));
    let (gone, gone_request) = new_task("brief");
    brief.create(&gone).await.expect("create");
    eventually("both keys to expire", Duration::from_secs(2), || async {
        brief.load(&gone.task_id).await.expect("load").is_none()
            && brief.load_by_request_id(&gone_request).await.expect("load").is_none()
    })
    .await;
    brief.create(&gone).await.expect("created again once expired");
}

#[tokio::test]
async fn an_update_bumps_the_revision_refreshes_every_key_and_forgets_dropped_requests() {
    let conn = shared_redis().await;
    let store = RedisTaskStore::new(conn.clone(), TTL);
    let (mut task, first_request) = new_task("hello");
    store.create(&task).await.expect("create");
    let second = answer("hi there");
    let second_request = second.request_id.clone();
    task.push(second, TaskStatus::Completed);
    store.update(&mut task).await.expect("update");
    assert_eq!(task.revision, 1);
    assert_eq!(raw_hget(&conn, &task.task_id, "rev").await.as_deref(), Some("1"));
    assert_eq!(store.load(&task.task_id).await.expect("load"), Some(task.clone()));
    let found = store.load_by_request_id(&second_request).await.expect("load").expect("task");
    assert_eq!(found.status, TaskStatus::Completed);
    let ttl = pttl(&conn, &format!("task-req:{second_request}")).await;
    assert!(ttl > 55_000, "new request keys expire too: {ttl}");

    // An update that drops the first item: its request key may linger, but finds nothing.
    task.items.remove(0);
    store.update(&mut task).await.expect("update");
    assert_eq!(store.load_by_request_id(&first_request).await.expect("load"), None);
    assert!(store.load_by_request_id(&second_request).await.expect("load").is_some());

    let (mut missing, _) = new_task("never created");
    assert!(matches!(store.update(&mut missing).await, Err(TaskStoreError::NotFound(_))));
    assert_eq!(missing.revision, 0, "unchanged on failure");
    let e = store.append_item(&missing.task_id, answer("x"), TaskStatus::Running).await.expect_err("missing");
    assert!(matches!(e, TaskStoreError::NotFound(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_updates_from_two_connections_exactly_one_wins() {
    let (a, b) = two_containers();
    let (task, _) = new_task("hello");
    a.create(&task).await.expect("create");
    for round in 0..10u64 {
        let mut from_a = a.load(&task.task_id).await.expect("load").expect("task");
        let mut from_b = b.load(&task.task_id).await.expect("load").expect("task");
        assert_eq!((from_a.revision, from_b.revision), (round, round));
        from_a.push(answer(&format!("a{round}")), TaskStatus::Completed);
        from_b.push(answer(&format!("b{round}")), TaskStatus::Failed);
        let (ra, rb) = tokio::join!(a.update(&mut from_a), b.update(&mut from_b));
        let (winner, loser) = match (ra, rb) {
            (Ok(()), Err(e)) => (from_a, e),
            (Err(e), Ok(())) => (from_b, e),
            other => panic!("round {round}: exactly one update must win, got {other:?}"),
        };
        assert!(
            matches!(loser, TaskStoreError::Conflict { expected, found, .. } if expected == round && found == round + 1),
            "{loser:?}"
        );
        assert_eq!(a.load(&task.task_id).await.expect("load"), Some(winner), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_two_connections_all_land() {
    let (a, b) = two_containers();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (task, _) = new_task("hello");
    a.create(&task).await.expect("create");
    let appends = (0..6).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = task.task_id.clone();
        async move { store.append_item(&id, answer(&format!("m{i}")), TaskStatus::Completed).await }
    });
    for written in futures::future::join_all(appends).await {
        written.expect("append");
    }
    let got = b.load(&task.task_id).await.expect("load").expect("task");
    assert_eq!((got.revision, got.status), (6, TaskStatus::Completed));
    let mut want: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    want.push("hello".into());
    want.sort();
    assert_eq!(texts(&got), want, "no item lost");
}

#[tokio::test]
async fn a_write_past_the_size_bound_is_refused_and_an_unreadable_task_is_reported() {
    let conn = shared_redis().await;
    let store = RedisTaskStore::new(conn.clone(), TTL).with_max_task_bytes(4096);
    let (task, _) = new_task("hello");
    store.create(&task).await.expect("create");
    let e = store
        .append_item(&task.task_id, answer(&"x".repeat(4096)), TaskStatus::Completed)
        .await
        .expect_err("too large");
    let TaskStoreError::TooLarge { size, limit: 4096, .. } = &e else {
        panic!("TooLarge expected, got {e:?}")
    };
    assert!(*size > 4096);
    assert_eq!(
        e.to_string(),
        format!("task {} would take {size} bytes, over the limit of 4096", task.task_id)
    );
    assert_eq!(store.load(&task.task_id).await.expect("load"), Some(task.clone()), "nothing written");

    let mut raw = raw(&redis_url()).await;
    let key = format!("{}task:{}", conn.prefix(), task.task_id);
    let _: () =
        redis::cmd("HSET").arg(&key).arg("task").arg("{not json").query_async(&mut raw).await.expect("hset");
    let e = store.load(&task.task_id).await.expect_err("unreadable");
    assert!(matches!(&e, TaskStoreError::Json { task_id, .. } if *task_id == task.task_id), "{e:?}");
    assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()), "the cause is kept");
}

#[tokio::test]
async fn a_redis_that_goes_down_makes_every_task_call_unavailable_within_the_timeout() {
    let mut server = RedisProcess::start();
    let conn = RedisConnection::open(&isolated_settings(&server.url()), None).expect("open");
    let store = RedisTaskStore::new(conn, TTL);
    let (mut task, request) = new_task("hello");
    store.create(&task).await.expect("create while up");

    server.kill();
    let unavailable = |r: Result<(), TaskStoreError>| match r {
        Err(e @ TaskStoreError::Unavailable(_)) => {
            assert!(e.source().is_some_and(|s| s.is::<StoreError>()), "the cause is kept: {e:?}");
        }
        other => panic!("Unavailable expected, got {other:?}"),
    };
    unavailable(within(store.load(&task.task_id)).await.map(drop));
    unavailable(within(store.load_by_request_id(&request)).await.map(drop));
    unavailable(within(store.create(&new_task("other").0)).await);
    unavailable(within(store.update(&mut task)).await);
    assert_eq!(task.revision, 0, "unchanged on failure");
    unavailable(within(store.append_item(&task.task_id, answer("x"), TaskStatus::Running)).await.map(drop));
    unavailable(within(store.ping()).await);

    server.restart();
    eventually("the task store to work again", Duration::from_secs(15), || async {
        store.create(&task).await.is_ok()
    })
    .await;
    assert_eq!(store.load(&task.task_id).await.expect("load"), Some(task));
}
