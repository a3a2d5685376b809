//! The tool-calling loop: LLM -> tool calls (one turn's calls run concurrently) -> LLM …
//!
//! Owns the budgets of one run: at most `spec.agent.max_iterations` LLM calls and a deadline
//! given by the caller (in Lambda: the remaining time minus a margin). On any exit it knows what
//! happened so far (iterations, tool calls, tokens), so a 504 can say it. It must not know
//! about HTTP or sessions: it takes messages in and gives a report out.

use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;

use crate::config::AgentConfig;
use crate::llm::{ChatRequest, LlmClient, LlmError, Message, Role, Usage};
use crate::mcp::{AgentTools, McpError, McpPool};

/// One tool call made during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCallRecord {
    pub tool: String,
    pub server: Option<String>,
    pub is_error: bool,
    pub ms: u64,
}

/// What a run did, complete or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunTrace {
    pub iterations: u32,
    pub usage: Usage,
    pub tool_calls: Vec<ToolCallRecord>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub output: String,
    pub trace: RunTrace,
}

/// Progress of a run, for streaming (SSE) callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    ToolStarted { tool: String, call_id: String },
    ToolFinished { tool: String, call_id: String, is_error: bool, ms: u64 },
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{source}")]
    Llm { source: LlmError, trace: RunTrace },
    #[error("{source}")]
    Mcp { source: McpError, trace: RunTrace },
    #[error("deadline reached after {} iteration(s) and {} tool call(s)", trace.iterations, trace.tool_calls.len())]
    Deadline { trace: RunTrace },
    #[error("no final answer after {max} iteration(s) (spec.agent.max_iterations)")]
    IterationLimit { max: u32, trace: RunTrace },
}

impl AgentError {
    pub fn trace(&self) -> &RunTrace {
        match self {
            AgentError::Llm { trace, .. }
            | AgentError::Mcp { trace, .. }
            | AgentError::Deadline { trace }
            | AgentError::IterationLimit { trace, .. } => trace,
        }
    }
}

/// Everything one run needs, borrowed from the process-wide state.
pub struct Run<'a> {
    pub agent: &'a AgentConfig,
    pub llm: &'a dyn LlmClient,
    pub pool: &'a McpPool,
    pub tools: &'a AgentTools,
    pub deadline: Instant,
    pub on_event: &'a (dyn Fn(RunEvent) + Send + Sync),
}

impl Run<'_> {
    /// Runs the loop over `conversation` (history and new user messages, without the system
    /// prompt). Returns the final answer and what it took.
    pub async fn execute(&self, conversation: Vec<Message>) -> Result<RunReport, AgentError> {
        let spec = &self.agent.agent;
        let mut messages = Vec::with_capacity(conversation.len() + 4);
        messages.push(Message::system(spec.system_prompt.clone()));
        messages.extend(conversation);
        let mut trace = RunTrace::default();

        loop {
            if trace.iterations >= spec.max_iterations {
                return Err(AgentError::IterationLimit { max: spec.max_iterations, trace });
            }
            if Instant::now() >= self.deadline {
                return Err(AgentError::Deadline { trace });
            }
            trace.iterations += 1;
            let request = ChatRequest {
                model: &spec.model,
                messages: &messages,
                tools: &self.tools.specs,
                temperature: spec.temperature,
                max_tokens: spec.max_tokens,
            };
            let answer = match tokio::time::timeout_at(
                self.deadline.into(),
                self.llm.complete(request, self.deadline),
            )
            .await
            {
                Err(_) | Ok(Err(LlmError::Deadline)) => return Err(AgentError::Deadline { trace }),
                Ok(Err(source)) => return Err(AgentError::Llm { source, trace }),
                Ok(Ok(answer)) => answer,
            };
            trace.usage += answer.usage;
            let mut reply = answer.message;
            reply.role = Role::Assistant;
            if reply.tool_calls.is_empty() {
                return Ok(RunReport { output: reply.content.unwrap_or_default(), trace });
            }

            messages.push(reply);
            let turn = messages.len() - 1;
            let round = join_all(messages[turn].tool_calls.iter().map(|call| self.call_tool(call)));
            let results = match tokio::time::timeout_at(self.deadline.into(), round).await {
                Ok(results) => results,
                Err(_) => return Err(AgentError::Deadline { trace }),
            };
            for (i, result) in results.into_iter().enumerate() {
                match result {
                    Ok((text, record)) => {
                        trace.tool_calls.push(record);
                        let call_id = messages[turn].tool_calls[i].id.clone();
                        messages.push(Message::tool_result(call_id, text));
                    }
                    Err((source, record)) => {
                        trace.tool_calls.push(record);
                        return Err(AgentError::Mcp { source, trace });
                    }
                }
            }
        }
    }

    async fn call_tool(
        &self,
        call: &crate::llm::ToolCall,
    ) -> Result<(String, ToolCallRecord), (McpError, ToolCallRecord)> {
        let started = Instant::now();
        (self.on_event)(RunEvent::ToolStarted { tool: call.name.clone(), call_id: call.id.clone() });
        let Some(route) = self.tools.route(&call.name) else {
            let known: Vec<&str> = self.tools.specs.iter().map(|s| s.name.as_str()).collect();
            let text = format!("unknown tool {}; available tools: {}", call.name, known.join(", "));
            let record = ToolCallRecord { tool: call.name.clone(), server: None, is_error: true, ms: 0 };
            (self.on_event)(RunEvent::ToolFinished {
                tool: call.name.clone(),
                call_id: call.id.clone(),
                is_error: true,
                ms: 0,
            });
            return Ok((text, record));
        };
        let outcome = self.pool.call(route, &call.arguments).await;
        let ms = started.elapsed().as_millis() as u64;
        let is_error = outcome.as_ref().map_or(true, |o| o.is_error);
        let record = ToolCallRecord {
            tool: call.name.clone(),
            server: Some(route.server_name().to_owned()),
            is_error,
            ms,
        };
        tracing::info!(tool = %call.name, server = %route.server_name(), is_error, ms, "tool call");
        (self.on_event)(RunEvent::ToolFinished {
            tool: call.name.clone(),
            call_id: call.id.clone(),
            is_error,
            ms,
        });
        match outcome {
            Ok(o) if o.is_error => Ok((format!("tool error: {}", o.text), record)),
            Ok(o) => Ok((o.text, record)),
            Err(e) => Err((e, record)),
        }
    }
}

#[cfg(test)]
mod tests;
