//! `GET /{name}/{version}/openapi.json`: an OpenAPI 3.1 document of one agent's real input and
//! output, as Teal serves it (Teal's orchestrators read the first path's `post.description` to
//! learn what an agent does, so the invoke path comes first and carries the description).
//!
//! The input schema is the agent's: Teal's built-in types written out here, a custom type's own
//! JSON Schema, or `UserMessage` for `tealagents/v1alpha1`; the response is `InvokeResponse`
//! (with `output_pydantic` typed by the output schema) or `StateResponse`.

use serde_json::{Value, json};

use crate::config::{AgentConfig, ApiVersion, InputType};

/// The document for `agent`.
pub fn document(agent: &AgentConfig) -> Value {
    let base = format!("/{}/{}", agent.name, agent.version);
    let description = agent.description.clone().unwrap_or_else(|| format!("{} API", agent.name));
    let stateful = agent.api_version == ApiVersion::TealAgentsV1Alpha1;
    let response = if stateful { "StateResponse" } else { "InvokeResponse" };
    let invoke = json!({
        "post": {
            "summary": "Invoke the agent",
            "description": description,
            "operationId": format!("invoke_{}", agent.name),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Input"}}}},
            "responses": {
                "200": {"description": "The agent's answer", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{response}")}}}},
                "400": {"description": "The input is invalid; the message names the field", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "502": {"description": "An upstream (LLM, MCP server, plugin) failed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "504": {"description": "The deadline passed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        }
    });
    let sse = json!({
        "post": {
            "summary": "Invoke the agent, streamed as Server-Sent Events",
            "description": description,
            "operationId": format!("invoke_sse_{}", agent.name),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Input"}}}},
            "responses": {"200": {"description": "tool-call-started, tool-call-finished, intermediate-task-response, partial-response, final-response or error events", "content": {"text/event-stream": {}}}}
        }
    });
    let mut schemas = serde_json::Map::new();
    schemas.insert("Input".into(), input_schema(&agent.input));
    schemas.insert("InvokeResponse".into(), invoke_response(agent));
    schemas.insert("StateResponse".into(), state_response());
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {"title": format!("{}:{}", agent.name, agent.version), "version": agent.version, "description": description},
        "paths": {
            base.clone(): invoke,
            format!("{base}/sse"): sse,
            format!("{base}/tools"): {"get": {"summary": "The tools the agent is offered", "responses": {"200": {"description": "name, server, description and schema of each tool"}}}},
            format!("{base}/health"): {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            format!("{base}/health/live"): {"get": {"summary": "Liveness probe (Teal's LivenessStatus)", "responses": {"200": {"description": "alive"}}}}
        },
        "components": {"schemas": schemas}
    })
}

fn text_message() -> Value {
    json!({"type": "object", "required": ["role", "content"], "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {"type": "string"}
    }})
}

fn item() -> Value {
    json!({"type": "object", "required": ["content"], "properties": {
        "content_type": {"enum": ["text", "image"], "default": "text"},
        "content": {"type": "string", "description": "Text, or for an image a data:image/...;base64,... URI"}
    }})
}

fn multimodal_message() -> Value {
    json!({"type": "object", "required": ["role"], "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {"type": "string"},
        "items": {"type": "array", "items": item()}
    }})
}

fn user_context() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn input_schema(input: &InputType) -> Value {
    let history = |message: Value| json!({"type": "array", "items": message});
    let session = json!({"type": "string", "description": "Continue a stored session (with items)"});
    let items =
        json!({"type": "array", "items": item(), "description": "A new message continuing session_id"});
    match input {
        InputType::BaseInput => json!({"title": "BaseInput", "type": "object", "properties": {
            "chat_history": history(text_message()), "session_id": session, "items": items
        }}),
        InputType::BaseInputWithUserContext => {
            json!({"title": "BaseInputWithUserContext", "type": "object", "properties": {
                "chat_history": history(text_message()), "user_context": user_context(), "session_id": session, "items": items
            }})
        }
        InputType::BaseMultiModalInput => {
            json!({"title": "BaseMultiModalInput", "type": "object", "properties": {
                "chat_history": history(multimodal_message()), "session_id": session, "items": items
            }})
        }
        InputType::BaseMultiModalInputWithUserContext => {
            json!({"title": "BaseMultiModalInputWithUserContext", "type": "object", "properties": {
                "chat_history": history(multimodal_message()), "user_context": user_context(), "session_id": session, "items": items
            }})
        }
        InputType::UserMessage => {
            json!({"title": "UserMessage", "type": "object", "required": ["items"], "properties": {
                "task_id": {"type": "string"}, "session_id": {"type": "string"},
                "items": {"type": "array", "items": item()}, "user_context": user_context()
            }})
        }
        InputType::Custom(t) => {
            let mut schema = (*t.schema).clone();
            if let Some(o) = schema.as_object_mut() {
                o.entry("title").or_insert_with(|| Value::String(t.name.clone()));
            }
            schema
        }
    }
}

fn token_usage() -> Value {
    json!({"type": "object", "properties": {
        "completion_tokens": {"type": "integer"}, "prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}
    }})
}

fn extra_data() -> Value {
    json!({"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": {"type": "string"}
    }}}}})
}

fn invoke_response(agent: &AgentConfig) -> Value {
    let pydantic = agent.output.as_ref().map_or(json!({"type": "null"}), |t| (*t.schema).clone());
    json!({"title": "InvokeResponse", "type": "object", "properties": {
        "session_id": {"type": "string"}, "request_id": {"type": "string"}, "source": {"type": "string"},
        "token_usage": token_usage(), "output_raw": {"type": "string"}, "output_pydantic": pydantic,
        "extra_data": extra_data()
    }})
}

fn state_response() -> Value {
    json!({"title": "StateResponse", "type": "object", "properties": {
        "session_id": {"type": "string"}, "task_id": {"type": "string"}, "request_id": {"type": "string"},
        "status": {"enum": ["Running", "Paused", "Completed", "Failed"]},
        "content": {"type": "object", "properties": {
            "task_id": {"type": "string"}, "session_id": {"type": "string"}, "request_id": {"type": "string"},
            "output": {"type": "string"}, "source": {"type": "string"}, "token_usage": token_usage(), "extra_data": extra_data()
        }}
    }})
}

fn error_schema() -> Value {
    json!({"type": "object", "properties": {"error": {"type": "object", "properties": {
        "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
        "request_id": {"type": "string"}, "upstream": {"type": "string"}
    }}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_documents;

    #[test]
    fn the_first_path_is_the_invoke_with_the_agent_description_and_the_real_input() {
        let yaml = "apiVersion: skagents/v1\nkind: Sequential\nservice_name: Adder\nversion: 0.1\ndescription: Adds two numbers\n\
                    input_type: NumbersInput\ninput_schema:\n  type: object\n  properties:\n    number_1: {type: integer}\n\
                    spec:\n  agents:\n    - name: default\n      model: m\n      system_prompt: s\n  tasks:\n    - name: t\n      \
                    task_no: 1\n      description: d\n      instructions: 'Add {{number_1}}'\n      agent: default\n";
        let agent = parse_documents("a.yaml", yaml).expect("valid").agents.remove(0);
        let doc = document(&agent);
        let (first, op) = doc["paths"].as_object().expect("paths").iter().next().expect("a path");
        assert_eq!(first, "/Adder/0.1");
        assert_eq!(op["post"]["description"], "Adds two numbers");
        assert_eq!(doc["components"]["schemas"]["Input"]["properties"]["number_1"]["type"], "integer");
        assert_eq!(doc["components"]["schemas"]["Input"]["title"], "NumbersInput");
    }
}
