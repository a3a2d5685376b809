//! Tasks in Redis, durable state: every failure is surfaced ([`OnError::Surface`]), never
//! bypassed.
//!
//! Keys: `{p}task:{task_id}` is a hash of `rev` (the revision, decimal) and `task` (the
//! [`AgentTask`] JSON, which carries the same revision); `{p}task-req:{request_id}` holds the id
//! of the task with an item of that request. Every write refreshes the TTL of the task and of
//! all its request keys, so they expire together `ttl` after the last write.
//!
//! Every write is one Lua script ([`WRITE`]): it checks that the task is absent (create) or still
//! at the revision the caller read (update), then writes the hash, the TTL and the request keys.
//! Redis runs a script alone, so of two concurrent updates from one revision exactly one lands
//! and the other gets [`TaskStoreError::Conflict`]. The revision sits in its own field so the
//! script compares it without decoding the JSON; the JSON is bounded (1 MiB by default) before
//! it is sent.

use std::time::Duration;

use super::{OnError, RedisConnection, ttl_ms};
use crate::store::tasks::{DEFAULT_MAX_TASK_BYTES, decode, encode};
use crate::store::{AgentTask, RequestId, StoreError, TaskId, TaskStore, TaskStoreError};

/// KEYS[1] the task hash, KEYS[2..] the request keys of its items. ARGV[1] the revision read
/// (empty: create), ARGV[2] the task's new revision, ARGV[3] its JSON, ARGV[4] the TTL in ms,
/// ARGV[5] the task id. Returns {outcome, revision}: {0, new} written, {1, stored} exists
/// (create), {2, 0} missing (update), {3, stored} conflict (update).
const WRITE: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] == '' then
  if rev then return {1, tonumber(rev)} end
elseif not rev then
  return {2, 0}
elseif rev ~= ARGV[1] then
  return {3, tonumber(rev)}
end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'task', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[5], 'PX', ARGV[4])
end
return {0, tonumber(ARGV[2])}
";

pub struct RedisTaskStore {
    conn: RedisConnection,
    ttl: Duration,
    max_task_bytes: usize,
    script: ::redis::Script,
}

impl RedisTaskStore {
    /// `ttl` is `TA_SESSION_TTL`; each task is bounded by [`DEFAULT_MAX_TASK_BYTES`].
    pub fn new(conn: RedisConnection, ttl: Duration) -> Self {
        Self { conn, ttl, max_task_bytes: DEFAULT_MAX_TASK_BYTES, script: ::redis::Script::new(WRITE) }
    }

    /// Sets the bound of one task's JSON.
    pub fn with_max_task_bytes(mut self, max_task_bytes: usize) -> Self {
        self.max_task_bytes = max_task_bytes;
        self
    }

    /// Writes `task` as it is if the stored one is at revision `read` (`None`: if there is none).
    async fn write(
        &self,
        op: &'static str,
        task: &AgentTask,
        read: Option<u64>,
    ) -> Result<(), TaskStoreError> {
        let json = encode(task, self.max_task_bytes)?;
        let key = self.conn.key("task", task.task_id.as_str());
        let mut request_keys: Vec<String> =
            task.items.iter().map(|i| self.conn.key("task-req", i.request_id.as_str())).collect();
        request_keys.sort_unstable();
        request_keys.dedup();
        let read_arg = read.map(|r| r.to_string()).unwrap_or_default();
        let (ttl, script) = (ttl_ms(self.ttl), &self.script);
        let (outcome, found): (i64, u64) = self
            .conn
            .run(op, OnError::Surface, |mut c| async move {
                let mut call = script.key(&key);
                call.key(&request_keys)
                    .arg(read_arg)
                    .arg(task.revision)
                    .arg(json)
                    .arg(ttl)
                    .arg(task.task_id.as_str());
                call.invoke_async(&mut c).await
            })
            .await?;
        let task_id = task.task_id.clone();
        match (outcome, read) {
            (0, _) => Ok(()),
            (1, None) => Err(TaskStoreError::AlreadyExists(task_id)),
            (2, Some(_)) => Err(TaskStoreError::NotFound(task_id)),
            (3, Some(expected)) => Err(TaskStoreError::Conflict { task_id, expected, found }),
            (other, _) => {
                Err(StoreError::Unavailable(format!("redis {op}: unexpected script outcome {other}")).into())
            }
        }
    }
}

#[async_trait::async_trait]
impl TaskStore for RedisTaskStore {
    async fn create(&self, task: &AgentTask) -> Result<(), TaskStoreError> {
        self.write("task_create", task, None).await
    }

    async fn load(&self, task_id: &TaskId) -> Result<Option<AgentTask>, TaskStoreError> {
        let key = self.conn.key("task", task_id.as_str());
        let json: Option<Vec<u8>> = self
            .conn
            .run("task_load", OnError::Surface, |mut c| async move {
                ::redis::cmd("HGET").arg(&key).arg("task").query_async(&mut c).await
            })
            .await?;
        json.map(|j| decode(task_id, &j)).transpose()
    }

    async fn load_by_request_id(&self, request_id: &RequestId) -> Result<Option<AgentTask>, TaskStoreError> {
        let index = self.conn.key("task-req", request_id.as_str());
        let conn = &self.conn;
        let found: Option<(String, Option<Vec<u8>>)> = self
            .conn
            .run("task_load_by_request", OnError::Surface, |mut c| async move {
                let Some(id) = ::redis::cmd("GET").arg(&index).query_async::<Option<String>>(&mut c).await?
                else {
                    return Ok(None);
                };
                let json =
                    ::redis::cmd("HGET").arg(conn.key("task", &id)).arg("task").query_async(&mut c).await?;
                Ok(Some((id, json)))
            })
            .await?;
        let Some((id, Some(json))) = found else { return Ok(None) };
        let Ok(task_id) = TaskId::parse(&id) else {
            tracing::warn!(request_id = %request_id, "the request key of a task holds no valid task id");
            return Ok(None);
        };
        // A request key can outlive the item (an update that dropped it): check the task.
        Ok(Some(decode(&task_id, &json)?).filter(|t| t.has_request(request_id)))
    }

    async fn update(&self, task: &mut AgentTask) -> Result<(), TaskStoreError> {
        let read = task.revision;
        task.revision += 1;
        let written = self.write("task_update", task, Some(read)).await;
        if written.is_err() {
            task.revision = read;
        }
        written
    }

    async fn ping(&self) -> Result<(), TaskStoreError> {
        Ok(self.conn.ping().await?)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
