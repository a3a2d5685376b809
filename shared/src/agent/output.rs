//! Structured output: the answer of a config with an `output_type` must be JSON valid against
//! its schema.
//!
//! Every LLM call of such a run asks for the schema (`response_format`); the final answer is
//! parsed and validated here. An answer that fails gets one repair: the model is told what is
//! wrong and asked again, without tools (by `TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL` when set,
//! as Teal's output transformer, else by the agent's own model). A second failure ends the run
//! with the schema error, never with unchecked output.

use std::sync::Arc;
use std::time::Instant;

use crate::config::SchemaType;
use crate::llm::{ChatRequest, LlmError, Message, ResponseFormat, Role};

use super::{AgentError, Run, RunTrace};

/// How many validation errors a message lists.
const MAX_ERRORS_SHOWN: usize = 5;

/// Why an answer is not the output type.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the answer is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The output type of one config, ready to check answers.
#[derive(Debug, Clone)]
pub struct OutputCheck {
    format: ResponseFormat,
    schema: SchemaType,
    /// The model that repairs a failed answer (`None`: the agent's).
    repair_model: Option<Arc<str>>,
}

impl OutputCheck {
    pub fn new(schema: &SchemaType, repair_model: Option<Arc<str>>) -> Self {
        let name: String = schema
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .take(64)
            .collect();
        Self {
            format: ResponseFormat { name, schema: schema.schema.clone() },
            schema: schema.clone(),
            repair_model,
        }
    }

    pub fn format(&self) -> &ResponseFormat {
        &self.format
    }

    /// The answer as JSON when it is valid.
    pub fn check(&self, answer: &str) -> Result<serde_json::Value, OutputError> {
        let value: serde_json::Value =
            serde_json::from_str(strip_fence(answer)).map_err(OutputError::NotJson)?;
        let errors: Vec<String> = self
            .schema
            .validator
            .iter_errors(&value)
            .take(MAX_ERRORS_SHOWN)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect();
        if errors.is_empty() { Ok(value) } else { Err(OutputError::Invalid(errors.join("; "))) }
    }

    /// The checked output of `run`'s answer, repaired once if needed. A repair pushes the
    /// request and the new answer onto `messages`.
    pub(super) async fn enforce(
        &self,
        run: &Run<'_>,
        messages: &mut Vec<Message>,
        answer: &str,
        mut trace: RunTrace,
    ) -> Result<(serde_json::Value, RunTrace), AgentError> {
        let first = match self.check(answer) {
            Ok(v) => return Ok((v, trace)),
            Err(e) => e,
        };
        tracing::info!(output_type = %self.schema.name, error = %first, "answer does not match the output type; asking once more");
        messages.push(Message::user(format!(
            "Your answer does not match the required JSON Schema ({first}). Reply with only the JSON \
             value, valid against the schema, and nothing else."
        )));
        if Instant::now() >= run.deadline {
            return Err(AgentError::Deadline { trace });
        }
        trace.iterations += 1;
        trace.waiting_on = Some("llm".to_owned());
        let model = self.repair_model.as_deref().unwrap_or(&run.agent.model);
        let mut request = ChatRequest::new(model, messages, &[]);
        request.response_format = Some(&self.format);
        request.temperature = run.agent.temperature;
        request.max_tokens = run.agent.max_tokens;
        // The transformer model (`TA_STRUCTURED_OUTPUT_TRANSFORMER_MODEL`) is the deployment's.
        request.endpoint = if self.repair_model.is_some() { None } else { run.agent.provider.as_ref() };
        let answer = match super::chat(
            model,
            run.prices.get(model),
            run.deadline,
            &mut trace,
            run.llm.complete(request, run.deadline),
        )
        .await
        {
            Err(LlmError::Deadline) => return Err(AgentError::Deadline { trace }),
            Err(source) => return Err(AgentError::Llm { source, trace }),
            Ok(answer) => answer,
        };
        let mut reply = answer.message;
        reply.role = Role::Assistant;
        let text = reply.content.clone().unwrap_or_default();
        messages.push(reply);
        match self.check(&text) {
            Ok(v) => Ok((v, trace)),
            Err(source) => Err(AgentError::Output { type_name: self.schema.name.clone(), source, trace }),
        }
    }
}

/// Models sometimes wrap JSON in a Markdown fence even in JSON mode: take what is inside.
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> OutputCheck {
        let schema = serde_json::json!({"type": "object", "properties": {"result": {"type": "integer"}}, "required": ["result"]});
        OutputCheck::new(&SchemaType::new("Add Output", schema).expect("valid schema"), None)
    }

    #[test]
    fn valid_answers_parse_and_invalid_ones_name_the_problem() {
        let c = check();
        assert_eq!(c.format().name, "Add_Output");
        assert_eq!(c.check(r#"{"result": 3}"#).expect("valid"), serde_json::json!({"result": 3}));
        assert_eq!(
            c.check("```json\n{\"result\": 3}\n```").expect("fenced"),
            serde_json::json!({"result": 3})
        );
        let e = c.check(r#"{"result": "three"}"#).expect_err("wrong type").to_string();
        assert!(e.starts_with("/result: "), "{e}");
        assert!(matches!(c.check("three"), Err(OutputError::NotJson(_))));
        let e = c.check("{}").expect_err("missing").to_string();
        assert!(e.contains("result"), "{e}");
    }
}
