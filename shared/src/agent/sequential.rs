//! Teal's `kind: Sequential`: the config's tasks, in `task_no` order, over one shared history.
//!
//! As Teal's `SequentialSkagents` does it: the history starts as the request's `chat_history`;
//! each task adds one user message, its `instructions` rendered as a Jinja template with the
//! request's fields (everything but `chat_history`) and every earlier task's output as
//! `_{task name}`; then the task's agent (its own model, prompt and tools) runs over the whole
//! history, and its answer (tool calls and results included) joins the history. An
//! `embedded_image` in the input goes with the first task's message only. The last task's
//! answer is the output, checked against the output type when the config has one; the others
//! are reported as they finish (`intermediate-task-response` events). Tokens are summed over
//! every task.

use minijinja::Environment;
use serde_json::{Map, Value};

use super::{AgentError, OutputCheck, Run, RunEvent, RunReport, RunTrace};
use crate::config::AgentConfig;
use crate::llm::{LlmClient, Message, Usage};
use crate::mcp::McpPool;
use crate::tools::Toolbox;

/// Jinja as Teal writes it: Python's methods on values (`user_context.items()`,
/// `name.upper()`) work as they do in Jinja2.
pub(crate) fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env
}

/// What the tasks' templates see, and the image the first task carries.
#[derive(Debug, Clone, Default)]
pub struct TaskInputs {
    /// The request's fields except `chat_history`.
    pub fields: Map<String, Value>,
    /// `embedded_image` as a `data:` URI.
    pub image: Option<String>,
}

/// A Sequential config's run.
pub struct Sequential<'a> {
    pub config: &'a AgentConfig,
    pub llm: &'a dyn LlmClient,
    pub pool: &'a McpPool,
    /// One per agent of the config, by index.
    pub toolboxes: &'a [Toolbox],
    pub deadline: std::time::Instant,
    pub on_event: &'a (dyn Fn(RunEvent) + Send + Sync),
    /// Stream the last task's answer (as Teal does); earlier tasks are reported whole.
    pub stream: bool,
    /// The output type of the last task.
    pub output: Option<&'a OutputCheck>,
    /// The config's kill switch, checked before every step of every task.
    pub switch: Option<crate::governance::SwitchGuard<'a>>,
}

impl Sequential<'_> {
    pub async fn execute(&self, history: Vec<Message>, inputs: TaskInputs) -> Result<RunReport, AgentError> {
        let env = template_env();
        let TaskInputs { mut fields, mut image } = inputs;
        let mut history = history;
        let mut trace = RunTrace::default();
        let tasks = &self.config.tasks;
        for (i, task) in tasks.iter().enumerate() {
            let text = match env.render_str(&task.instructions, minijinja::value::Serde(&fields)) {
                Ok(text) => text,
                Err(source) => {
                    return Err(AgentError::Instructions { task: task.name.clone(), source, trace });
                }
            };
            history.push(Message::user_with_images(text, image.take().into_iter().collect()));
            let last = i + 1 == tasks.len();
            let run = Run {
                agent: &self.config.agents[task.agent],
                llm: self.llm,
                pool: self.pool,
                tools: &self.toolboxes[task.agent],
                deadline: self.deadline,
                on_event: self.on_event,
                output: if last { self.output } else { None },
                stream: self.stream && last,
                switch: self.switch,
            };
            let before = trace.usage;
            let report = run.execute_with(history, trace).await?;
            if last {
                return Ok(report);
            }
            (self.on_event)(RunEvent::TaskFinished {
                task_no: (i + 1) as u32,
                task_name: task.name.clone(),
                output: report.output.clone(),
                usage: Usage {
                    prompt_tokens: report.trace.usage.prompt_tokens - before.prompt_tokens,
                    completion_tokens: report.trace.usage.completion_tokens - before.completion_tokens,
                    total_tokens: report.trace.usage.total_tokens - before.total_tokens,
                },
            });
            fields.insert(format!("_{}", task.name), Value::String(report.output));
            trace = report.trace;
            history = report.transcript;
        }
        // A Sequential config has at least one task (checked when it was loaded).
        Ok(RunReport { output: String::new(), trace, transcript: history, structured: None })
    }
}
