//! The tool-calling loop: LLM -> tool calls (one turn's calls run concurrently) -> LLM …
//!
//! Owns the budgets of one run: at most `spec.agent.max_iterations` LLM calls and a deadline
//! given by the caller (in Lambda: the remaining time minus a margin). On any exit it knows what
//! happened so far (iterations, tool calls, tokens), so a 504 can say it. It must not know
//! about HTTP or sessions: it takes messages in and gives a report out.

mod output;
mod sequential;

pub use output::{OutputCheck, OutputError};
pub(crate) use sequential::template_env;
pub use sequential::{Sequential, TaskInputs};

use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;
use tracing::Instrument;

use crate::config::AgentSpec;
use crate::llm::{
    ChatRequest, ChatResponse, LlmClient, LlmError, Message, ResponseFormat, Role, ToolCall, Usage,
};
use crate::mcp::McpPool;
use crate::telemetry::metrics;
use crate::tools::{ToolError, Toolbox};

/// One tool call made during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ToolCallRecord {
    pub tool: String,
    /// The MCP server or remote plugin it went to (`None`: unknown tool).
    pub server: Option<String>,
    pub is_error: bool,
    pub ms: u64,
}

/// What a run did, complete or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunTrace {
    pub iterations: u32,
    pub usage: Usage,
    pub tool_calls: Vec<ToolCallRecord>,
    /// What the run was waiting for last (`llm`, `mcp:NAME`, `plugin:NAME`): the upstream a
    /// deadline names.
    #[serde(skip)]
    pub waiting_on: Option<String>,
    /// Time spent waiting for the LLM (metrics only; not in error bodies).
    #[serde(skip)]
    pub llm_time: std::time::Duration,
}

/// A run stopped before tool calls that need a human's approval: everything needed to go on
/// (kept in the task store until someone decides).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PausedRun {
    /// The conversation so far, without the system prompt, ending with the assistant turn
    /// that asked for the calls and the results of its calls that needed no approval.
    pub messages: Vec<Message>,
    /// The calls waiting for approval.
    pub pending: Vec<ToolCall>,
    pub trace: RunTrace,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub output: String,
    pub trace: RunTrace,
    /// The conversation as it ended (without the system prompt): the input, then every
    /// assistant turn and tool result of the run.
    pub transcript: Vec<Message>,
    /// The output parsed as JSON when the run had to produce structured output.
    pub structured: Option<serde_json::Value>,
}

/// Progress of a run, for streaming (SSE) callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    ToolStarted {
        tool: String,
        call_id: String,
    },
    ToolFinished {
        tool: String,
        call_id: String,
        is_error: bool,
        ms: u64,
    },
    /// A piece of the answer's text, as the LLM streamed it (Teal's `partial-response`).
    Text {
        text: String,
    },
    /// A Sequential task other than the last finished (Teal's `intermediate-task-response`).
    TaskFinished {
        task_no: u32,
        task_name: String,
        output: String,
        usage: Usage,
    },
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("LLM call failed")]
    Llm {
        #[source]
        source: LlmError,
        trace: RunTrace,
    },
    #[error("tool call failed")]
    Tool {
        #[source]
        source: ToolError,
        trace: RunTrace,
    },
    #[error("deadline reached after {} iteration(s) and {} tool call(s)", trace.iterations, trace.tool_calls.len())]
    Deadline { trace: RunTrace },
    /// Tool calls need a human's approval first (not a failure: the run waits).
    #[error("waiting for approval of {} tool call(s)", .0.pending.len())]
    Paused(Box<PausedRun>),
    /// The agent was switched off (`teal disable`) while it ran: it stopped before its next
    /// LLM or tool call.
    #[error("{disabled}")]
    Disabled { disabled: crate::governance::Disabled, trace: RunTrace },
    /// A run budget of the agent (`max_tool_calls`, `max_tokens_total`) was reached.
    #[error("the run reached its budget {budget} = {limit}")]
    Budget { budget: &'static str, limit: u64, trace: RunTrace },
    #[error("no final answer after {max} iteration(s) (max_iterations)")]
    IterationLimit { max: u32, trace: RunTrace },
    /// A Sequential task's instructions could not be rendered with this request's input.
    #[error("task `{task}`: its instructions could not be rendered with this input")]
    Instructions {
        task: String,
        #[source]
        source: minijinja::Error,
        trace: RunTrace,
    },
    /// The answer did not match the output type, even after one repair.
    #[error("the answer does not match {type_name}")]
    Output {
        type_name: String,
        #[source]
        source: OutputError,
        trace: RunTrace,
    },
}

impl AgentError {
    pub fn trace(&self) -> &RunTrace {
        match self {
            AgentError::Paused(paused) => &paused.trace,
            AgentError::Budget { trace, .. } | AgentError::Disabled { trace, .. } => trace,
            AgentError::Llm { trace, .. }
            | AgentError::Tool { trace, .. }
            | AgentError::Deadline { trace }
            | AgentError::IterationLimit { trace, .. }
            | AgentError::Instructions { trace, .. }
            | AgentError::Output { trace, .. } => trace,
        }
    }
}

/// Everything one agent's run needs, borrowed from the process-wide state.
pub struct Run<'a> {
    pub agent: &'a AgentSpec,
    pub llm: &'a dyn LlmClient,
    pub pool: &'a McpPool,
    pub tools: &'a Toolbox,
    pub deadline: Instant,
    pub on_event: &'a (dyn Fn(RunEvent) + Send + Sync),
    /// Structured output: every call asks for this schema, and the answer is checked.
    pub output: Option<&'a OutputCheck>,
    /// Stream the LLM's answers: each piece of text goes to `on_event` as [`RunEvent::Text`] as
    /// it arrives. Not with structured output, whose answer is checked (and maybe repaired)
    /// before anyone may see it.
    pub stream: bool,
    /// The agent's kill switch, checked before every LLM call and every round of tool calls.
    pub switch: Option<crate::governance::SwitchGuard<'a>>,
}

impl Run<'_> {
    /// Runs the loop over `conversation` (history and new user messages, without the system
    /// prompt). Returns the final answer and what it took.
    pub async fn execute(&self, conversation: Vec<Message>) -> Result<RunReport, AgentError> {
        self.execute_with(conversation, RunTrace::default()).await
    }

    /// [`Run::execute`], adding to `trace` (a Sequential config's earlier tasks).
    pub async fn execute_with(
        &self,
        conversation: Vec<Message>,
        trace: RunTrace,
    ) -> Result<RunReport, AgentError> {
        let mut messages = Vec::with_capacity(conversation.len() + 4);
        messages.push(Message::system(self.agent.system_prompt.clone()));
        messages.extend(conversation);
        self.finish(messages, trace).await
    }

    /// Goes on with a paused run whose pending calls a human approved: runs them (the tool
    /// policies still apply), then the loop as usual. It may pause again.
    pub async fn resume(&self, paused: PausedRun) -> Result<RunReport, AgentError> {
        let PausedRun { messages: conversation, pending, mut trace } = paused;
        let mut messages = Vec::with_capacity(conversation.len() + pending.len() + 4);
        messages.push(Message::system(self.agent.system_prompt.clone()));
        messages.extend(conversation);
        if let Some(disabled) = self.switched_off().await {
            return Err(AgentError::Disabled { disabled, trace });
        }
        let round = join_all(pending.iter().map(|call| self.call_tool(call, true)));
        let results = match tokio::time::timeout_at(self.deadline.into(), round).await {
            Ok(results) => results,
            Err(_) => return Err(AgentError::Deadline { trace }),
        };
        trace = self.absorb(&pending, results, &mut messages, trace)?;
        self.finish(messages, trace).await
    }

    /// The loop over `messages` (system prompt first), then the output check.
    async fn finish(&self, mut messages: Vec<Message>, trace: RunTrace) -> Result<RunReport, AgentError> {
        let (output, mut trace) = self.turns(&mut messages, trace).await?;
        let structured = match self.output {
            None => None,
            Some(check) => {
                let (value, t) = check.enforce(self, &mut messages, &output, trace).await?;
                trace = t;
                Some(value)
            }
        };
        let output = match &structured {
            // The repaired answer is the output when there was a repair.
            Some(_) => messages.last().and_then(|m| m.content.clone()).unwrap_or(output),
            None => output,
        };
        messages.remove(0);
        Ok(RunReport { output, trace, transcript: messages, structured })
    }

    /// LLM calls and tool rounds until an answer without tool calls, which is pushed onto
    /// `messages` and returned.
    async fn turns(
        &self,
        messages: &mut Vec<Message>,
        mut trace: RunTrace,
    ) -> Result<(String, RunTrace), AgentError> {
        let max = self.agent.max_iterations;
        let mut iterations = 0;
        loop {
            if iterations >= max {
                return Err(AgentError::IterationLimit { max, trace });
            }
            iterations += 1;
            if let Some(limit) = self.agent.max_tokens_total
                && trace.usage.total_tokens >= limit
            {
                return Err(AgentError::Budget { budget: "max_tokens_total", limit, trace });
            }
            let reply = match self.complete(messages, self.output.map(OutputCheck::format), &mut trace).await
            {
                Ok(reply) => reply,
                Err(failure) => return Err(failure.with(trace)),
            };
            if reply.tool_calls.is_empty() {
                let output = reply.content.clone().unwrap_or_default();
                messages.push(reply);
                return Ok((output, trace));
            }
            messages.push(reply);
            let turn = messages.len() - 1;
            trace.waiting_on = messages[turn]
                .tool_calls
                .iter()
                .find_map(|c| self.tools.route(&c.name))
                .map(|r| r.upstream());
            let calls = messages[turn].tool_calls.clone();
            if let Some(limit) = self.agent.max_tool_calls
                && trace.tool_calls.len() + calls.len() > limit as usize
            {
                return Err(AgentError::Budget { budget: "max_tool_calls", limit: u64::from(limit), trace });
            }
            if let Some(disabled) = self.switched_off().await {
                return Err(AgentError::Disabled { disabled, trace });
            }
            let round = join_all(calls.iter().map(|call| self.call_tool(call, false)));
            let results = match tokio::time::timeout_at(self.deadline.into(), round).await {
                Ok(results) => results,
                Err(_) => return Err(AgentError::Deadline { trace }),
            };
            trace = self.absorb(&calls, results, messages, trace)?;
        }
    }

    /// Puts one round's results onto `messages`. Calls held for approval pause the run once
    /// the others are in (as Teal runs the calls that need no approval first).
    #[allow(clippy::result_large_err)] // the loop's own error, returned at once by its callers
    fn absorb(
        &self,
        calls: &[ToolCall],
        results: Vec<CallResult>,
        messages: &mut Vec<Message>,
        mut trace: RunTrace,
    ) -> Result<RunTrace, AgentError> {
        let mut pending = Vec::new();
        for (call, result) in calls.iter().zip(results) {
            match result {
                Ok(Some((text, record))) => {
                    trace.tool_calls.push(record);
                    messages.push(Message::tool_result(call.id.clone(), text));
                }
                Ok(None) => pending.push(call.clone()),
                Err((ToolError::Plugin(crate::tools::openapi::OpenApiError::Deadline { .. }), record)) => {
                    trace.tool_calls.push(record);
                    return Err(AgentError::Deadline { trace });
                }
                Err((source, record)) => {
                    trace.tool_calls.push(record);
                    return Err(AgentError::Tool { source, trace });
                }
            }
        }
        if pending.is_empty() {
            return Ok(trace);
        }
        let messages = messages[1..].to_vec();
        Err(AgentError::Paused(Box::new(PausedRun { messages, pending, trace })))
    }

    /// One LLM call within the deadline; its usage is added to `trace`.
    async fn complete(
        &self,
        messages: &[Message],
        format: Option<&ResponseFormat>,
        trace: &mut RunTrace,
    ) -> Result<Message, Failure> {
        if Instant::now() >= self.deadline {
            return Err(Failure::Deadline);
        }
        if let Some(disabled) = self.switched_off().await {
            return Err(Failure::Disabled(disabled));
        }
        trace.iterations += 1;
        trace.waiting_on = Some("llm".to_owned());
        let spec = self.agent;
        let request = ChatRequest {
            model: &spec.model,
            messages,
            tools: self.tools.specs(),
            temperature: spec.temperature,
            max_tokens: spec.max_tokens,
            reasoning_effort: spec.reasoning_effort.as_deref(),
            response_format: format,
            endpoint: spec.provider.as_ref(),
        };
        let on_text = |text: &str| (self.on_event)(RunEvent::Text { text: text.to_owned() });
        let call = async {
            if self.stream && self.output.is_none() {
                self.llm.stream(request, self.deadline, &on_text).await
            } else {
                self.llm.complete(request, self.deadline).await
            }
        };
        let answer = match chat(&spec.model, self.deadline, trace, call).await {
            Err(LlmError::Deadline) => return Err(Failure::Deadline),
            Err(source) => return Err(Failure::Llm(source)),
            Ok(answer) => answer,
        };
        let mut reply = answer.message;
        reply.role = Role::Assistant;
        Ok(reply)
    }

    /// The switch that turned the agent off since the run started, if any.
    async fn switched_off(&self) -> Option<crate::governance::Disabled> {
        match &self.switch {
            Some(guard) => guard.check().await,
            None => None,
        }
    }

    /// One call, in an OpenTelemetry GenAI `execute_tool` span (its arguments are never
    /// recorded: they may be sensitive): its result for the model, or `None` when it waits for
    /// approval (`approved`: a human already gave it).
    async fn call_tool(&self, call: &ToolCall, approved: bool) -> CallResult {
        let span = tracing::info_span!(
            "execute_tool",
            "gen_ai.operation.name" = "execute_tool",
            "gen_ai.tool.name" = %call.name,
            "gen_ai.tool.call.id" = %call.id,
        );
        self.call_tool_in_span(call, approved).instrument(span).await
    }

    async fn call_tool_in_span(&self, call: &ToolCall, approved: bool) -> CallResult {
        let route = self.tools.route(&call.name);
        let verdict = route.as_ref().map(|r| self.tools.authorize(&call.name, r, &call.arguments));
        if !approved && matches!(verdict, Some(Ok(true))) {
            tracing::info!(tool = %call.name, "tool call held for human approval");
            return Ok(None);
        }
        let started = Instant::now();
        (self.on_event)(RunEvent::ToolStarted { tool: call.name.clone(), call_id: call.id.clone() });
        let finished = |is_error: bool, ms: u64| {
            (self.on_event)(RunEvent::ToolFinished {
                tool: call.name.clone(),
                call_id: call.id.clone(),
                is_error,
                ms,
            });
        };
        let (Some(route), Some(verdict)) = (route, verdict) else {
            let known: Vec<&str> = self.tools.specs().iter().map(|s| s.name.as_str()).collect();
            let text = format!("unknown tool {}; available tools: {}", call.name, known.join(", "));
            metrics::tool_call(None, &call.name, true, started.elapsed());
            finished(true, 0);
            return Ok(Some((
                text,
                ToolCallRecord { tool: call.name.clone(), server: None, is_error: true, ms: 0 },
            )));
        };
        if let Err(denied) = verdict {
            finished(true, 0);
            let server = Some(route.source_name().to_owned());
            return Ok(Some((
                denied.to_string(),
                ToolCallRecord { tool: call.name.clone(), server, is_error: true, ms: 0 },
            )));
        }
        let outcome = self.tools.call(self.pool, &call.name, &route, &call.arguments, self.deadline).await;
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis() as u64;
        let is_error = outcome.as_ref().map_or(true, |o| o.is_error);
        let server = route.source_name().to_owned();
        metrics::tool_call(Some(&server), &call.name, is_error, elapsed);
        tracing::info!(tool = %call.name, server = %server, is_error, ms, "tool call");
        finished(is_error, ms);
        let record = ToolCallRecord { tool: call.name.clone(), server: Some(server), is_error, ms };
        match outcome {
            Ok(o) if o.is_error => Ok(Some((format!("tool error: {}", o.text), record))),
            Ok(o) => Ok(Some((o.text, record))),
            Err(e) => Err((e, record)),
        }
    }
}

/// What one tool call gave: the text for the model, `None` (waits for approval), or a failure
/// that ends the run.
type CallResult = Result<Option<(String, ToolCallRecord)>, (ToolError, ToolCallRecord)>;

/// One LLM call (`call`, to `model`) within `deadline` (`LlmError::Deadline` when it passes):
/// its usage and time go to `trace`, and it is recorded once in the metrics, whoever calls.
pub(crate) async fn chat(
    model: &str,
    deadline: Instant,
    trace: &mut RunTrace,
    call: impl Future<Output = Result<ChatResponse, LlmError>>,
) -> Result<ChatResponse, LlmError> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "chat",
        "gen_ai.operation.name" = "chat",
        "gen_ai.request.model" = model,
        "gen_ai.usage.input_tokens" = tracing::field::Empty,
        "gen_ai.usage.output_tokens" = tracing::field::Empty,
    );
    let answer = tokio::time::timeout_at(deadline.into(), call)
        .instrument(span.clone())
        .await
        .unwrap_or(Err(LlmError::Deadline));
    if let Ok(a) = &answer {
        // As i64: OpenTelemetry has no unsigned integers (a u64 would be exported as text).
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.record("gen_ai.usage.input_tokens", int(a.usage.prompt_tokens));
        span.record("gen_ai.usage.output_tokens", int(a.usage.completion_tokens));
    }
    let elapsed = started.elapsed();
    trace.llm_time += elapsed;
    metrics::llm_call(model, answer.as_ref().ok().map(|a| a.usage), elapsed);
    if let Ok(a) = &answer {
        trace.usage += a.usage;
    }
    answer
}

/// Why one LLM call did not give an answer, before the trace is attached.
enum Failure {
    Deadline,
    Llm(LlmError),
    Disabled(crate::governance::Disabled),
}

impl Failure {
    fn with(self, trace: RunTrace) -> AgentError {
        match self {
            Failure::Deadline => AgentError::Deadline { trace },
            Failure::Llm(source) => AgentError::Llm { source, trace },
            Failure::Disabled(disabled) => AgentError::Disabled { disabled, trace },
        }
    }
}
#[cfg(test)]
mod tests;
