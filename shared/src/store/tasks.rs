//! Stateful tasks of the `tealagents/v1alpha1` API: their types, the [`TaskStore`] port and the
//! in-memory adapter (the Redis one is `redis/tasks.rs`).
//!
//! A task is one thread of work of one user: the items exchanged (user inputs, assistant
//! answers), a status, and for a run paused for human approval the state needed to resume it
//! ([`TaskItem::pending`], opaque here). The handler creates a task on the first message, loads it
//! by task id on the next ones, loads it by request id to resume a paused run, and appends the
//! assistant's item with the new status.
//!
//! Every stored task has a [`revision`](AgentTask::revision): [`TaskStore::update`] writes only if
//! the stored revision is still the one the caller read, and fails with
//! [`TaskStoreError::Conflict`] otherwise. Two containers writing one task therefore never
//! overwrite each other's items; [`TaskStore::append_item`] reloads and retries on a conflict.
//! Tasks are durable state: a backend failure is [`TaskStoreError::Unavailable`], never bypassed.
//! Timestamps are Unix milliseconds (UTC).
//!
//! What must not live here: deciding who may see a task (the API compares
//! [`AgentTask::user_id`] with the caller, see [`AgentTask::belongs_to`]), running the agent, HTTP.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{InvalidId, SessionId, StoreError, validated_id};
use crate::util::unix_ms;

validated_id!(
    /// A validated task id: 1–128 characters of `[A-Za-z0-9._:-]` (Teal makes UUIDs).
    TaskId
);

validated_id!(
    /// A validated request id (one per call of the API; a paused run is resumed by it).
    RequestId
);

/// Where a task stands, serialised as Teal's strings (`"Running"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Running,
    /// Waiting for a human to approve or reject tool calls.
    Paused,
    Completed,
    Failed,
    /// The human rejected the paused tool calls.
    Canceled,
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "Running",
            Self::Paused => "Paused",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
        })
    }
}

/// Who wrote an item: `"user"` or `"assistant"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskRole {
    User,
    Assistant,
}

/// The content of one item, shaped like Teal's `MultiModalItem`:
/// `{"content_type": "text", "content": "..."}`, or `"image"` with a `data:` URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "content_type", content = "content", rename_all = "lowercase")]
pub enum TaskContent {
    Text(String),
    Image(String),
}

/// One item of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    /// The request that wrote it.
    pub request_id: RequestId,
    pub role: TaskRole,
    pub content: TaskContent,
    /// When it was written (Unix ms).
    pub updated: u64,
    /// A paused run's state, kept for the resume after human approval. Opaque to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<serde_json::Value>,
}

impl TaskItem {
    /// A text item written now, with nothing pending.
    pub fn text(request_id: RequestId, role: TaskRole, text: impl Into<String>) -> Self {
        Self { request_id, role, content: TaskContent::Text(text.into()), updated: unix_ms(), pending: None }
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTask {
    pub task_id: TaskId,
    pub session_id: SessionId,
    /// The user who created it (from the authorizer); only they may read or continue it.
    pub user_id: String,
    /// Oldest first.
    pub items: Vec<TaskItem>,
    /// Unix ms.
    pub created_at: u64,
    /// Unix ms of the last change.
    pub last_updated: u64,
    pub status: TaskStatus,
    /// How many updates the stored task had when this copy was read (0 when created). Set by
    /// the store: [`TaskStore::update`] compares it and increments it.
    #[serde(default)]
    pub revision: u64,
}

impl AgentTask {
    /// A new `Running` task created now, at revision 0.
    pub fn new(
        task_id: TaskId,
        session_id: SessionId,
        user_id: impl Into<String>,
        items: Vec<TaskItem>,
    ) -> Self {
        let now = unix_ms();
        Self {
            task_id,
            session_id,
            user_id: user_id.into(),
            items,
            created_at: now,
            last_updated: now,
            status: TaskStatus::Running,
            revision: 0,
        }
    }

    /// Whether `user_id` owns the task (Teal's `_validate_user_id`).
    pub fn belongs_to(&self, user_id: &str) -> bool {
        self.user_id == user_id
    }

    /// Whether an item of the task was written by `request_id`.
    pub fn has_request(&self, request_id: &RequestId) -> bool {
        self.items.iter().any(|i| &i.request_id == request_id)
    }

    /// Appends `item`, sets `status` and `last_updated` (to now, never backwards).
    pub fn push(&mut self, item: TaskItem, status: TaskStatus) {
        self.items.push(item);
        self.status = status;
        self.last_updated = self.last_updated.max(unix_ms());
    }
}

/// Why the task store failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    #[error("task {0} not found")]
    NotFound(TaskId),
    #[error("task {0} already exists")]
    AlreadyExists(TaskId),
    /// Another writer updated the task since this copy was read: load it again and reapply.
    #[error("task {task_id} changed since it was read (read at revision {expected}, now {found})")]
    Conflict { task_id: TaskId, expected: u64, found: u64 },
    /// The write would make the task bigger than the per-task limit; nothing was written.
    #[error("task {task_id} would take {size} bytes, over the limit of {limit}")]
    TooLarge { task_id: TaskId, size: usize, limit: usize },
    /// The stored JSON does not decode (written by an incompatible version).
    #[error("task {task_id} is not readable task JSON")]
    Json {
        task_id: TaskId,
        #[source]
        source: serde_json::Error,
    },
    /// The backend did not answer (in time). For a write, it may still have landed: load the
    /// task again before retrying.
    #[error("task store unavailable")]
    Unavailable(#[from] StoreError),
}

/// Default bound of one stored task (its JSON): 1 MiB.
pub const DEFAULT_MAX_TASK_BYTES: usize = 1 << 20;

/// Attempts of [`TaskStore::append_item`] against concurrent writers before it reports the
/// conflict.
const APPEND_ATTEMPTS: u64 = 10;

/// Persistence of tasks (Teal's `TaskPersistenceManager`).
#[async_trait::async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores a new task as it is (revision included); [`TaskStoreError::AlreadyExists`] if a
    /// live task has its id.
    async fn create(&self, task: &AgentTask) -> Result<(), TaskStoreError>;
    /// The task, or `None` if unknown or expired.
    async fn load(&self, task_id: &TaskId) -> Result<Option<AgentTask>, TaskStoreError>;
    /// The task holding an item of `request_id`, or `None`.
    async fn load_by_request_id(&self, request_id: &RequestId) -> Result<Option<AgentTask>, TaskStoreError>;
    /// Replaces the stored task by `task` if it is still at `task.revision`, and increments
    /// `task.revision` on success. [`TaskStoreError::Conflict`] if another write came first,
    /// [`TaskStoreError::NotFound`] if it is gone; `task` is unchanged on failure.
    async fn update(&self, task: &mut AgentTask) -> Result<(), TaskStoreError>;
    /// A real round trip to the backend, for `/ready`.
    async fn ping(&self) -> Result<(), TaskStoreError>;
    /// Short name of the backend, e.g. "memory" or "redis".
    fn backend(&self) -> &'static str;

    /// Appends `item` and sets `status` on the latest stored task (see [`AgentTask::push`]), and
    /// returns the task as written. Concurrent appends all land: on a conflict it loads the task
    /// again and retries (up to 10 times, with a short random pause).
    async fn append_item(
        &self,
        task_id: &TaskId,
        item: TaskItem,
        status: TaskStatus,
    ) -> Result<AgentTask, TaskStoreError> {
        let mut attempt = 1;
        loop {
            let mut task =
                self.load(task_id).await?.ok_or_else(|| TaskStoreError::NotFound(task_id.clone()))?;
            task.push(item.clone(), status);
            match self.update(&mut task).await {
                Err(TaskStoreError::Conflict { .. }) if attempt < APPEND_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=5 * attempt))).await;
                    attempt += 1;
                }
                written => return written.map(|()| task),
            }
        }
    }
}

/// The JSON of `task`, refused past `limit` bytes.
pub(crate) fn encode(task: &AgentTask, limit: usize) -> Result<Vec<u8>, TaskStoreError> {
    let json = serde_json::to_vec(task)
        .map_err(|source| TaskStoreError::Json { task_id: task.task_id.clone(), source })?;
    if json.len() > limit {
        return Err(TaskStoreError::TooLarge { task_id: task.task_id.clone(), size: json.len(), limit });
    }
    Ok(json)
}

/// The task stored as `json` under `task_id`.
pub(crate) fn decode(task_id: &TaskId, json: &[u8]) -> Result<AgentTask, TaskStoreError> {
    serde_json::from_slice(json).map_err(|source| TaskStoreError::Json { task_id: task_id.clone(), source })
}

struct Stored {
    task: AgentTask,
    /// Size of its JSON, for the byte cap.
    bytes: usize,
    expires: Instant,
    /// Write order, for eviction (instants can tie).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<TaskId, Stored>,
    by_request: HashMap<RequestId, TaskId>,
    total_bytes: usize,
    next_seq: u64,
}

impl Inner {
    fn live(&self, id: &TaskId, now: Instant) -> Option<&AgentTask> {
        self.tasks.get(id).filter(|s| s.expires > now).map(|s| &s.task)
    }

    fn remove(&mut self, id: &TaskId) {
        let Some(gone) = self.tasks.remove(id) else { return };
        self.total_bytes -= gone.bytes;
        for item in &gone.task.items {
            if self.by_request.get(&item.request_id) == Some(id) {
                self.by_request.remove(&item.request_id);
            }
        }
    }

    /// Stores `task` in place of any entry of its id, first evicting every expired task and then
    /// the oldest ones while the total would pass `max_total`.
    fn put(&mut self, task: AgentTask, bytes: usize, now: Instant, ttl: Duration, max_total: usize) {
        self.remove(&task.task_id);
        if self.total_bytes + bytes > max_total {
            let expired: Vec<TaskId> =
                self.tasks.iter().filter(|(_, s)| s.expires <= now).map(|(id, _)| id.clone()).collect();
            expired.iter().for_each(|id| self.remove(id));
        }
        while self.total_bytes + bytes > max_total {
            let Some(oldest) = self.tasks.iter().min_by_key(|(_, s)| s.seq).map(|(id, _)| id.clone()) else {
                break;
            };
            self.remove(&oldest);
        }
        for item in &task.items {
            self.by_request.insert(item.request_id.clone(), task.task_id.clone());
        }
        self.next_seq += 1;
        self.total_bytes += bytes;
        let stored = Stored { task, bytes, expires: now + ttl, seq: self.next_seq };
        self.tasks.insert(stored.task.task_id.clone(), stored);
    }
}

/// In-process tasks: the embedded default. Bounded by the total size of the stored tasks (their
/// JSON; expired tasks are evicted first, then the least recently written), each task expiring
/// `ttl` after its last write; safe under concurrent writers.
pub struct MemoryTaskStore {
    ttl: Duration,
    max_total_bytes: usize,
    max_task_bytes: usize,
    inner: Mutex<Inner>,
}

impl MemoryTaskStore {
    /// Tasks expire `ttl` after their last write; at most `max_total_bytes` are kept, each task
    /// at most [`DEFAULT_MAX_TASK_BYTES`] (or `max_total_bytes` if smaller).
    pub fn new(ttl: Duration, max_total_bytes: usize) -> Self {
        Self {
            ttl,
            max_total_bytes,
            max_task_bytes: DEFAULT_MAX_TASK_BYTES,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Sets the bound of one task.
    pub fn with_max_task_bytes(mut self, max_task_bytes: usize) -> Self {
        self.max_task_bytes = max_task_bytes;
        self
    }

    fn encoded_len(&self, task: &AgentTask) -> Result<usize, TaskStoreError> {
        Ok(encode(task, self.max_task_bytes.min(self.max_total_bytes))?.len())
    }
}

#[async_trait::async_trait]
impl TaskStore for MemoryTaskStore {
    async fn create(&self, task: &AgentTask) -> Result<(), TaskStoreError> {
        let bytes = self.encoded_len(task)?;
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        if inner.live(&task.task_id, now).is_some() {
            return Err(TaskStoreError::AlreadyExists(task.task_id.clone()));
        }
        inner.put(task.clone(), bytes, now, self.ttl, self.max_total_bytes);
        Ok(())
    }

    async fn load(&self, task_id: &TaskId) -> Result<Option<AgentTask>, TaskStoreError> {
        Ok(self.inner.lock().await.live(task_id, Instant::now()).cloned())
    }

    async fn load_by_request_id(&self, request_id: &RequestId) -> Result<Option<AgentTask>, TaskStoreError> {
        let inner = self.inner.lock().await;
        let task = inner.by_request.get(request_id).and_then(|id| inner.live(id, Instant::now()));
        Ok(task.cloned())
    }

    async fn update(&self, task: &mut AgentTask) -> Result<(), TaskStoreError> {
        let mut next = task.clone();
        next.revision += 1;
        let bytes = self.encoded_len(&next)?;
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        let found = inner
            .live(&task.task_id, now)
            .map(|t| t.revision)
            .ok_or_else(|| TaskStoreError::NotFound(task.task_id.clone()))?;
        if found != task.revision {
            return Err(TaskStoreError::Conflict {
                task_id: task.task_id.clone(),
                expected: task.revision,
                found,
            });
        }
        inner.put(next, bytes, now, self.ttl, self.max_total_bytes);
        task.revision += 1;
        Ok(())
    }

    /// Atomic under the store's lock: never conflicts.
    async fn append_item(
        &self,
        task_id: &TaskId,
        item: TaskItem,
        status: TaskStatus,
    ) -> Result<AgentTask, TaskStoreError> {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        let mut next =
            inner.live(task_id, now).cloned().ok_or_else(|| TaskStoreError::NotFound(task_id.clone()))?;
        next.push(item, status);
        next.revision += 1;
        let bytes = self.encoded_len(&next)?;
        inner.put(next.clone(), bytes, now, self.ttl, self.max_total_bytes);
        Ok(next)
    }

    async fn ping(&self) -> Result<(), TaskStoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn task(user: &str) -> (AgentTask, RequestId) {
        let request = RequestId::generate();
        let item = TaskItem::text(request.clone(), TaskRole::User, "hello");
        (AgentTask::new(TaskId::generate(), SessionId::generate(), user, vec![item]), request)
    }

    fn store() -> MemoryTaskStore {
        MemoryTaskStore::new(Duration::from_secs(60), 1 << 20)
    }

    #[test]
    fn tasks_serialise_with_teal_strings_and_refuse_invalid_ids() {
        let mut item = TaskItem::text(RequestId::parse("r-1").expect("valid"), TaskRole::Assistant, "hi");
        item.updated = 5;
        let mut t = AgentTask::new(
            TaskId::parse("t-1").expect("valid"),
            SessionId::parse("s-1").expect("valid"),
            "alice",
            vec![item.clone()],
        );
        (t.created_at, t.last_updated, t.status) = (1, 2, TaskStatus::Canceled);
        let value = serde_json::to_value(&t).expect("json");
        assert_eq!(
            value,
            json!({
                "task_id": "t-1", "session_id": "s-1", "user_id": "alice",
                "items": [{"request_id": "r-1", "role": "assistant",
                           "content": {"content_type": "text", "content": "hi"}, "updated": 5}],
                "created_at": 1, "last_updated": 2, "status": "Canceled", "revision": 0
            })
        );
        let back: AgentTask = serde_json::from_value(value.clone()).expect("decodes");
        assert_eq!(back, t);

        item.pending = Some(json!({"tool_calls": [], "messages": [{"role": "user"}]}));
        let with_pending = serde_json::to_value(&item).expect("json");
        assert_eq!(with_pending["pending"], json!({"tool_calls": [], "messages": [{"role": "user"}]}));
        assert_eq!(serde_json::from_value::<TaskItem>(with_pending).expect("decodes"), item);

        let mut bad = value;
        bad["task_id"] = json!("has space");
        assert!(serde_json::from_value::<AgentTask>(bad).is_err(), "ids are checked when read back");
        for (status, text) in [(TaskStatus::Running, "Running"), (TaskStatus::Paused, "Paused")] {
            assert_eq!(serde_json::to_value(status).expect("json"), json!(text));
            assert_eq!(status.to_string(), text);
        }
        assert!(t.belongs_to("alice") && !t.belongs_to("bob"));
    }

    #[tokio::test]
    async fn tasks_are_created_once_and_found_by_task_and_request_id() {
        let store = store();
        let (t, request) = task("alice");
        store.create(&t).await.expect("create");
        let e = store.create(&t).await.expect_err("twice");
        assert!(matches!(&e, TaskStoreError::AlreadyExists(id) if *id == t.task_id), "{e:?}");
        assert_eq!(store.load(&t.task_id).await.expect("load"), Some(t.clone()));
        assert_eq!(store.load_by_request_id(&request).await.expect("load"), Some(t.clone()));
        assert_eq!(store.load(&TaskId::generate()).await.expect("load"), None);
        assert_eq!(store.load_by_request_id(&RequestId::generate()).await.expect("load"), None);
        store.ping().await.expect("ping");
        assert_eq!(store.backend(), "memory");
    }

    #[tokio::test]
    async fn an_update_from_a_stale_copy_conflicts_and_changes_nothing() {
        let store = store();
        let (t, _) = task("alice");
        store.create(&t).await.expect("create");
        let (mut first, mut second) = (t.clone(), t.clone());
        let answer = RequestId::generate();
        first.push(TaskItem::text(answer.clone(), TaskRole::Assistant, "first"), TaskStatus::Completed);
        store.update(&mut first).await.expect("first update");
        assert_eq!(first.revision, 1);

        second.push(TaskItem::text(RequestId::generate(), TaskRole::Assistant, "second"), TaskStatus::Failed);
        let e = store.update(&mut second).await.expect_err("stale");
        assert!(matches!(e, TaskStoreError::Conflict { expected: 0, found: 1, .. }), "{e:?}");
        assert_eq!(second.revision, 0, "unchanged on failure");
        assert_eq!(store.load(&t.task_id).await.expect("load"), Some(first.clone()));
        assert_eq!(store.load_by_request_id(&answer).await.expect("load"), Some(first.clone()));

        // A second update from the copy that won works: its revision followed.
        first.status = TaskStatus::Running;
        store.update(&mut first).await.expect("again");
        assert_eq!(store.load(&t.task_id).await.expect("load").map(|t| t.revision), Some(2));

        let (mut missing, _) = task("alice");
        assert!(matches!(store.update(&mut missing).await, Err(TaskStoreError::NotFound(_))));
        let item = TaskItem::text(RequestId::generate(), TaskRole::User, "x");
        let e = store.append_item(&missing.task_id, item, TaskStatus::Running).await.expect_err("missing");
        assert!(matches!(e, TaskStoreError::NotFound(_)), "{e:?}");
    }

    #[tokio::test]
    async fn concurrent_appends_all_land_in_memory() {
        let store = Arc::new(store());
        let (t, _) = task("alice");
        store.create(&t).await.expect("create");
        let appends: Vec<_> = (0..50)
            .map(|i| {
                let (store, id) = (store.clone(), t.task_id.clone());
                tokio::spawn(async move {
                    let item = TaskItem::text(RequestId::generate(), TaskRole::Assistant, format!("m{i}"));
                    store.append_item(&id, item, TaskStatus::Completed).await
                })
            })
            .collect();
        for a in appends {
            a.await.expect("join").expect("append");
        }
        let got = store.load(&t.task_id).await.expect("load").expect("task");
        assert_eq!((got.items.len(), got.revision, got.status), (51, 50, TaskStatus::Completed));
        for i in 0..50 {
            let text = TaskContent::Text(format!("m{i}"));
            assert!(got.items.iter().any(|item| item.content == text), "m{i} lost");
        }
    }

    #[tokio::test]
    async fn expired_tasks_are_gone_and_can_be_created_again() {
        let store = MemoryTaskStore::new(Duration::ZERO, 1 << 20);
        let (t, request) = task("alice");
        store.create(&t).await.expect("create");
        assert_eq!(store.load(&t.task_id).await.expect("load"), None);
        assert_eq!(store.load_by_request_id(&request).await.expect("load"), None);
        assert!(matches!(store.update(&mut t.clone()).await, Err(TaskStoreError::NotFound(_))));
        store.create(&t).await.expect("created again");
    }

    #[tokio::test]
    async fn the_byte_cap_evicts_expired_tasks_then_the_least_recently_written() {
        let (a, a_request) = task("alice");
        let size = encode(&a, usize::MAX).expect("json").len();
        // Room for three tasks of this size (the ids are all UUIDs of one length).
        let store = MemoryTaskStore::new(Duration::from_millis(500), 3 * size + size / 2);
        store.create(&a).await.expect("create");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (b, c, d) = (task("alice").0, task("alice").0, task("alice").0);
        for t in [&b, &c] {
            store.create(t).await.expect("create");
        }
        assert_eq!(store.inner.lock().await.tasks.len(), 3, "the expired task still takes room");
        store.create(&d).await.expect("create");
        {
            let inner = store.inner.lock().await;
            assert_eq!(inner.tasks.len(), 3, "only the expired task went");
            assert!(!inner.tasks.contains_key(&a.task_id) && !inner.by_request.contains_key(&a_request));
            assert_eq!(inner.total_bytes, 3 * size);
        }
        // b is rewritten, so c is now the least recently written.
        let mut b_now = b.clone();
        store.update(&mut b_now).await.expect("update");
        let (e, _) = task("alice");
        store.create(&e).await.expect("create");
        assert_eq!(store.load(&c.task_id).await.expect("load"), None, "least recently written evicted");
        for t in [&b, &d, &e] {
            assert!(store.load(&t.task_id).await.expect("load").is_some());
        }
    }

    #[tokio::test]
    async fn a_task_over_the_size_limit_is_refused_and_left_as_it_was() {
        let store = store().with_max_task_bytes(1024);
        let (t, _) = task("alice");
        store.create(&t).await.expect("create");
        let big = TaskItem::text(RequestId::generate(), TaskRole::Assistant, "x".repeat(1024));
        let e = store.append_item(&t.task_id, big.clone(), TaskStatus::Completed).await.expect_err("too big");
        assert!(matches!(e, TaskStoreError::TooLarge { limit: 1024, size, .. } if size > 1024), "{e:?}");
        let mut grown = t.clone();
        grown.push(big, TaskStatus::Completed);
        assert!(matches!(store.update(&mut grown).await, Err(TaskStoreError::TooLarge { .. })));
        assert!(matches!(store.create(&grown).await, Err(TaskStoreError::TooLarge { .. })));
        assert_eq!(store.load(&t.task_id).await.expect("load"), Some(t));
    }
}
