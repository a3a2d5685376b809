//! The `tealagents/v1alpha1` stateful API: a message continues (or starts) a task, the task is
//! kept in the task store with its status, and the answer is Teal's `StateResponse`.
//!
//! As Teal's `TealAgentsV1Alpha1Handler`: `session_id` and `task_id` are the request's or new
//! UUIDs; the user id is the caller the authorizer vouched for; a task belongs to the user who
//! created it; the history sent to the model is the user context (when given) and then every
//! item of the task. Where we differ, on purpose: Teal fails every follow-up message that names
//! an existing task ("Agent task not created") and never stores its items; here the message is
//! appended to the task and the turn continues it. A task waiting for approval (`Paused`) takes
//! no new message (409).

use std::time::Instant;

use crate::Error;
use crate::agent::{RunEvent, RunReport, TaskInputs};
use crate::api::input::InvokeInput;
use crate::api::types::{ExtraData, InputError, KeyValue, StateResponse, StateStatus, TealAgentsResponse};
use crate::config::AgentConfig;
use crate::llm::{Message, Role};
use crate::service::AppState;
use crate::service::invoke::execute;
use crate::store::{AgentTask, RequestId, SessionId, TaskContent, TaskId, TaskItem, TaskRole, TaskStatus};

/// Per-request facts of a task turn.
pub struct TaskTurn<'a> {
    pub request_id: &'a str,
    /// The authorizer's caller id: the task's user.
    pub user_id: &'a str,
    pub deadline: Instant,
    pub on_event: Option<&'a (dyn Fn(RunEvent) + Send + Sync)>,
}

/// Runs one message of a task: appends it, runs the agent over the task's history, appends the
/// answer and marks the task `Completed` (or `Failed`, when the run fails).
pub async fn invoke_task(
    state: &AppState,
    agent: &AgentConfig,
    input: InvokeInput,
    turn: &TaskTurn<'_>,
) -> Result<StateResponse, Error> {
    let request_id = RequestId::parse(turn.request_id)
        .map_err(|e| Error::BadRequest(InputError::new(format!("x-request-id: {e}"))))?;
    let session_id = input.session_id.clone().unwrap_or_else(SessionId::generate);
    let task_id = match &input.task_id {
        Some(id) => id.clone(),
        None => TaskId::generate(),
    };
    let items = items_of(&input.messages, &request_id, TaskRole::User);
    let task = match state.tasks.load(&task_id).await.map_err(Error::TaskStore)? {
        None => {
            let task = AgentTask::new(task_id.clone(), session_id, turn.user_id, items);
            state.tasks.create(&task).await.map_err(Error::TaskStore)?;
            task
        }
        Some(existing) => {
            if !existing.belongs_to(turn.user_id) {
                return Err(Error::Forbidden(format!("task {task_id} belongs to another user")));
            }
            if existing.status == TaskStatus::Paused {
                return Err(Error::Conflict(format!("task {task_id} is waiting for a human decision")));
            }
            let mut task = existing;
            for item in items {
                task = state
                    .tasks
                    .append_item(&task_id, item, TaskStatus::Running)
                    .await
                    .map_err(Error::TaskStore)?;
            }
            task
        }
    };

    let mut conversation: Vec<Message> = input.context.into_iter().collect();
    conversation.extend(history(&task));
    let inputs = TaskInputs { fields: input.fields, image: input.image };
    let report =
        execute(state, agent, conversation, inputs, turn.user_id, turn.deadline, turn.on_event, false).await;
    let RunReport { output, trace, .. } = match report {
        Ok(r) => r,
        Err(e) => {
            let failed = TaskItem::text(request_id.clone(), TaskRole::Assistant, "The run failed.");
            if let Err(store) = state.tasks.append_item(&task_id, failed, TaskStatus::Failed).await {
                tracing::warn!(task_id = %task_id, error = %crate::telemetry::error_chain(&store), "could not mark the task failed");
            }
            return Err(e);
        }
    };
    let answer = TaskItem::text(request_id, TaskRole::Assistant, output.clone());
    let task =
        state.tasks.append_item(&task_id, answer, TaskStatus::Completed).await.map_err(Error::TaskStore)?;
    let content = TealAgentsResponse {
        task_id: task.task_id.to_string(),
        session_id: task.session_id.to_string(),
        request_id: turn.request_id.to_owned(),
        output,
        source: format!("{}:{}", agent.name, agent.version),
        token_usage: trace.usage.into(),
        extra_data: ExtraData {
            items: vec![
                KeyValue { key: "iterations".into(), value: trace.iterations.to_string() },
                KeyValue { key: "tool_calls".into(), value: trace.tool_calls.len().to_string() },
            ],
        },
    };
    Ok(StateResponse {
        session_id: content.session_id.clone(),
        task_id: content.task_id.clone(),
        request_id: content.request_id.clone(),
        status: StateStatus::Completed,
        content,
    })
}

/// A message's text and images as task items (Teal keeps one item per content part).
fn items_of(messages: &[Message], request_id: &RequestId, role: TaskRole) -> Vec<TaskItem> {
    let mut out = Vec::new();
    for m in messages {
        if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
            out.push(TaskItem::text(request_id.clone(), role, text));
        }
        for image in &m.images {
            let mut item = TaskItem::text(request_id.clone(), role, "");
            item.content = TaskContent::Image(image.clone());
            out.push(item);
        }
    }
    out
}

/// The task's items as messages: consecutive items of one request and role form one message.
fn history(task: &AgentTask) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut last: Option<(&RequestId, TaskRole)> = None;
    for item in &task.items {
        let role = match item.role {
            TaskRole::User => Role::User,
            TaskRole::Assistant => Role::Assistant,
        };
        let same = last == Some((&item.request_id, item.role));
        if !same {
            out.push(Message {
                role,
                content: None,
                tool_calls: Vec::new(),
                tool_call_id: None,
                images: Vec::new(),
            });
        }
        last = Some((&item.request_id, item.role));
        let Some(message) = out.last_mut() else { continue };
        match &item.content {
            TaskContent::Text(t) => match &mut message.content {
                Some(c) => {
                    c.push('\n');
                    c.push_str(t);
                }
                None => message.content = Some(t.clone()),
            },
            TaskContent::Image(uri) => message.images.push(uri.clone()),
        }
    }
    for m in &mut out {
        m.content.get_or_insert_with(String::new);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_messages_by_request_and_role() {
        let r1 = RequestId::parse("r1").expect("id");
        let r2 = RequestId::parse("r2").expect("id");
        let mut items = items_of(
            &[Message::user_with_images("look", vec!["data:image/png;base64,AA==".into()])],
            &r1,
            TaskRole::User,
        );
        items.push(TaskItem::text(r1.clone(), TaskRole::Assistant, "a cat"));
        items.extend(items_of(&[Message::user("and now?")], &r2, TaskRole::User));
        let task =
            AgentTask::new(TaskId::parse("t").expect("id"), SessionId::parse("s").expect("id"), "u", items);
        let h = history(&task);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], Message::user_with_images("look", vec!["data:image/png;base64,AA==".into()]));
        assert_eq!(h[1], Message::assistant("a cat"));
        assert_eq!(h[2], Message::user("and now?"));
    }
}
