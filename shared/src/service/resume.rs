//! Human approval of tool calls (HITL), in Teal's shape: a `tealagents/v1alpha1` run stops
//! before calls that need approval ([`pause`]: the task is `Paused`, the answer Teal's
//! `HitlResponse`), and `POST /tealagents/v1alpha1/resume/{request_id}` decides ([`resume`]).
//!
//! The paused run (its messages, the held calls, what it used so far) is the `pending` value of
//! the task's last item, in the task store (Redis in production, with the task's TTL), so any
//! container resumes it after a cold start. A decision is applied exactly once: it is written
//! with the task's revision check, so of two decisions the second finds the task changed (409).
//! Only the task's user or a key id listed in `TA_HITL_APPROVERS` may decide (403); a run
//! undecided after `TA_HITL_TIMEOUT` cannot be resumed (410).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::agent::{OutputCheck, PausedRun, Run, RunEvent};
use crate::api::types::{
    HitlResponse, InputError, RejectedToolResponse, StateContent, StateResponse, StateStatus,
};
use crate::config::{AgentConfig, AgentKind};
use crate::service::AppState;
use crate::service::task::complete;
use crate::store::{RequestId, TaskId, TaskItem, TaskRole, TaskStatus, TaskStoreError};
use crate::util::unix_ms;

/// Where the resume route lives (Teal's).
pub const RESUME_PATH: &str = "/tealagents/v1alpha1/resume";

/// A human's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Approve,
    Reject,
}

/// Teal's `ResumeRequest` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub action: Action,
}

/// What a paused task keeps: which agent, until when, and the run.
#[derive(Debug, Serialize, Deserialize)]
struct Held {
    agent: String,
    version: String,
    /// Unix ms after which the run cannot be resumed.
    expires_at: u64,
    run: PausedRun,
}

/// Keeps `paused` in the task (status `Paused`) and answers Teal's `HitlResponse`.
pub(crate) async fn pause(
    state: &AppState,
    agent: &AgentConfig,
    task_id: &TaskId,
    request_id: RequestId,
    paused: PausedRun,
) -> Result<StateResponse, Error> {
    let expires_at = unix_ms() + state.settings.hitl_timeout.as_millis() as u64;
    let tool_calls = paused
        .pending
        .iter()
        .map(|c| {
            let arguments = serde_json::from_str::<serde_json::Value>(&c.arguments)
                .unwrap_or_else(|_| serde_json::Value::String(c.arguments.clone()));
            serde_json::json!({"id": c.id, "name": c.name, "arguments": arguments})
        })
        .collect();
    let held = Held { agent: agent.name.clone(), version: agent.version.clone(), expires_at, run: paused };
    let mut item = TaskItem::text(request_id.clone(), TaskRole::Assistant, "HITL intervention required.");
    item.pending = Some(serde_json::to_value(&held).map_err(|e| {
        tracing::error!(error = %e, "a paused run could not be encoded");
        Error::Misconfigured("a paused run could not be kept".into())
    })?);
    let task = state.tasks.append_item(task_id, item, TaskStatus::Paused).await.map_err(Error::TaskStore)?;
    tracing::info!(task_id = %task_id, request_id = %request_id, calls = held.run.pending.len(), "run paused for human approval");
    let content = HitlResponse {
        task_id: task.task_id.to_string(),
        session_id: task.session_id.to_string(),
        request_id: request_id.to_string(),
        message: "Human intervention required.".into(),
        approval_url: format!("{RESUME_PATH}/{request_id}?action=approve"),
        rejection_url: format!("{RESUME_PATH}/{request_id}?action=reject"),
        tool_calls,
        expires_at: chrono::DateTime::from_timestamp_millis(expires_at as i64)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    };
    Ok(StateResponse {
        session_id: content.session_id.clone(),
        task_id: content.task_id.clone(),
        request_id: content.request_id.clone(),
        status: StateStatus::Paused,
        content: StateContent::Hitl(content),
    })
}

/// Per-request facts of a decision.
pub struct Decision<'a> {
    /// The authorizer's caller id.
    pub caller: &'a str,
    pub deadline: Instant,
    pub on_event: Option<&'a (dyn Fn(RunEvent) + Send + Sync)>,
}

/// Applies `action` to the run paused by `request_id`: reject answers `RejectedToolResponse`
/// (task `Canceled`); approve runs the held calls and goes on, answering the turn's
/// `TealAgentsResponse` (or a new `HitlResponse` if it pauses again).
pub async fn resume(
    state: &AppState,
    request_id: &str,
    action: Action,
    decision: &Decision<'_>,
) -> Result<StateContent, Error> {
    let rid = RequestId::parse(request_id)
        .map_err(|e| Error::BadRequest(InputError::new(format!("request_id: {e}"))))?;
    let unknown = || Error::NotFound(format!("no paused run for request {rid}"));
    let task = state.tasks.load_by_request_id(&rid).await.map_err(Error::TaskStore)?.ok_or_else(unknown)?;
    let approver = state.settings.approvers.iter().any(|a| a == decision.caller);
    if !task.belongs_to(decision.caller) && !approver {
        return Err(Error::Forbidden(format!(
            "only the caller who started the run, or an approver (TA_HITL_APPROVERS), may decide on request {rid}"
        )));
    }
    let item =
        task.items.iter().rev().find(|i| i.request_id == rid && i.pending.is_some()).ok_or_else(unknown)?;
    let is_last = task.items.last().is_some_and(|last| std::ptr::eq(last, item));
    if task.status != TaskStatus::Paused || !is_last {
        return Err(Error::Conflict(format!("the paused run of request {rid} was already decided")));
    }
    let held: Held = serde_json::from_value(item.pending.clone().unwrap_or_default()).map_err(|e| {
        tracing::error!(request_id = %rid, error = %e, "a paused run cannot be read");
        Error::Misconfigured("the paused run cannot be read".into())
    })?;
    if unix_ms() > held.expires_at {
        return Err(Error::Gone(format!("the paused run of request {rid} expired undecided")));
    }
    // A switched-off agent is not resumed: the run stays paused until it is switched on again.
    if action == Action::Approve
        && let Some(disabled) = state.switch.check(&held.agent, &held.version).await
    {
        return Err(Error::Disabled(disabled, None));
    }

    // The claim: written only if nobody decided since the task was read.
    let (text, status) = match action {
        Action::Approve => ("tool execution approved", TaskStatus::Running),
        Action::Reject => ("tool execution rejected", TaskStatus::Canceled),
    };
    let mut claimed = task.clone();
    claimed.push(TaskItem::text(rid.clone(), TaskRole::User, text), status);
    match state.tasks.update(&mut claimed).await {
        Ok(()) => {}
        Err(TaskStoreError::Conflict { .. }) => {
            return Err(Error::Conflict(format!("the paused run of request {rid} was already decided")));
        }
        Err(e) => return Err(Error::TaskStore(e)),
    }
    tracing::info!(request_id = %rid, task_id = %task.task_id, caller = decision.caller, ?action, "human decision");
    if action == Action::Reject {
        return Ok(StateContent::Rejected(RejectedToolResponse {
            task_id: task.task_id.to_string(),
            session_id: task.session_id.to_string(),
            request_id: rid.to_string(),
            message: "Tool excecution rejected.".into(),
        }));
    }

    let agent = state.find_agent(&held.agent, &held.version)?;
    let result = go_on(state, &agent, task.user_id.as_str(), held.run, decision).await;
    let answer = match result {
        Ok(report) => complete(state, &agent, &task.task_id, rid, report).await,
        Err(Error::Paused(paused)) => pause(state, &agent, &task.task_id, rid, *paused).await,
        Err(e) => {
            let failed = TaskItem::text(rid, TaskRole::Assistant, "The run failed.");
            if let Err(store) = state.tasks.append_item(&task.task_id, failed, TaskStatus::Failed).await {
                tracing::warn!(task_id = %task.task_id, error = %crate::telemetry::error_chain(&store), "could not mark the task failed");
            }
            Err(e)
        }
    }?;
    Ok(answer.content)
}

/// The approved calls, then the loop, as the task's user (whose policies and tokens apply).
async fn go_on(
    state: &AppState,
    agent: &AgentConfig,
    user: &str,
    paused: PausedRun,
    decision: &Decision<'_>,
) -> Result<crate::agent::RunReport, Error> {
    if agent.kind != AgentKind::Chat {
        return Err(Error::Misconfigured("only a single agent's run can be resumed".into()));
    }
    let spec = &agent.agents[0];
    let tools = state.toolbox(agent, spec, user).await?;
    let output =
        agent.output.as_ref().map(|t| OutputCheck::new(t, state.settings.structured_output_model.clone()));
    let no_events = |_: RunEvent| {};
    let run = Run {
        agent: spec,
        llm: state.llm.as_ref(),
        pool: &state.mcp,
        tools: &tools,
        deadline: decision.deadline,
        on_event: decision.on_event.unwrap_or(&no_events),
        output: output.as_ref(),
        stream: decision.on_event.is_some(),
        switch: Some(state.switch.guard(&agent.name, &agent.version)),
    };
    // The tokens before the pause were counted when it paused.
    let before = paused.trace.usage.total_tokens;
    let report = run.resume(paused).await;
    let after = match &report {
        Ok(r) => r.trace.usage.total_tokens,
        Err(e) => e.trace().usage.total_tokens,
    };
    crate::service::invoke::charge(state, user, after.saturating_sub(before)).await;
    Ok(report?)
}
