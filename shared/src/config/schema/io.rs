//! `input_type` / `output_type`, and the JSON Schemas that stand in for Teal's Python types.
//!
//! Teal's built-in input types are understood by name. Any other type name is a Python class in
//! Teal; here it needs its JSON Schema: `input_schema:` / `output_schema:` (inline, or a path to
//! a `.json` file beside the YAML), or a file `{TypeName}.schema.json` beside the YAML. The
//! schema is compiled now, so a bad one fails at load with its path, not at the first request.

use crate::config::reader::{Ctx, Field, Fields};
use crate::config::types::{AgentKind, ApiVersion, InputType, SchemaType};

use super::ParseEnv;

/// Reads `input_type` and `input_schema`.
pub(super) fn input_type(
    cx: &mut Ctx,
    f: &mut Fields<'_>,
    api: Option<ApiVersion>,
    kind: Option<&AgentKind>,
    env: &ParseEnv<'_>,
) -> Option<InputType> {
    let field = f.opt("input_type");
    let schema = f.opt("input_schema");
    if api == Some(ApiVersion::TealAgentsV1Alpha1) {
        // Teal's stateful API always takes `UserMessage`.
        for extra in [&field, &schema].into_iter().flatten() {
            extra.warn(cx, "ignored: tealagents/v1alpha1 agents take Teal's UserMessage");
        }
        return Some(InputType::UserMessage);
    }
    let Some(field) = field else {
        if let Some(s) = &schema {
            s.error_at_key(cx, "give `input_type` (the type's name) with `input_schema`");
            return None;
        }
        return Some(match api {
            Some(ApiVersion::SkAgentsV2Alpha1) => InputType::BaseMultiModalInput,
            _ => InputType::BaseInput,
        });
    };
    let name = field.non_empty_string(cx)?;
    let builtin = match name.as_str() {
        "BaseInput" => Some(InputType::BaseInput),
        "BaseInputWithUserContext" => Some(InputType::BaseInputWithUserContext),
        "BaseMultiModalInput" => Some(InputType::BaseMultiModalInput),
        "BaseMultiModalInputWithUserContext" => Some(InputType::BaseMultiModalInputWithUserContext),
        _ => None,
    };
    if let Some(t) = builtin {
        if let Some(s) = schema {
            s.error_at_key(cx, format!("`{name}` is built in: remove `input_schema`"));
            return None;
        }
        return Some(t);
    }
    if kind == Some(&AgentKind::Chat) {
        field.error(
            cx,
            format!(
                "Chat agents take BaseInput, BaseInputWithUserContext, BaseMultiModalInput or \
                 BaseMultiModalInputWithUserContext, not `{name}`; use kind: Sequential for a typed input"
            ),
        );
        return None;
    }
    schema_type(cx, &field, name, schema, "input_schema", env).map(InputType::Custom)
}

/// Reads `output_type` and `output_schema` (Sequential agents; Teal's Chat handler ignores them).
pub(super) fn output_type(
    cx: &mut Ctx,
    f: &mut Fields<'_>,
    kind: Option<&AgentKind>,
    env: &ParseEnv<'_>,
) -> Option<Option<SchemaType>> {
    let field = f.opt("output_type");
    let schema = f.opt("output_schema");
    if kind != Some(&AgentKind::Sequential) {
        for extra in [&field, &schema].into_iter().flatten() {
            extra.warn(cx, "ignored: only Sequential agents produce structured output (as in Teal)");
        }
        return Some(None);
    }
    let Some(field) = field else {
        if let Some(s) = &schema {
            s.error_at_key(cx, "give `output_type` (the type's name) with `output_schema`");
            return None;
        }
        return Some(None);
    };
    let name = field.non_empty_string(cx)?;
    schema_type(cx, &field, name, schema, "output_schema", env).map(Some)
}

/// The schema of the type `name`: inline, a file the field names, or `{name}.schema.json`.
fn schema_type(
    cx: &mut Ctx,
    type_field: &Field<'_>,
    name: String,
    schema: Option<Field<'_>>,
    schema_key: &str,
    env: &ParseEnv<'_>,
) -> Option<SchemaType> {
    let (value, at) = match schema {
        Some(s) if s.is_string() => {
            let file = s.string(cx)?;
            let text = match (env.sidecar)(&file) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    s.error(cx, format!("schema file `{file}` not found beside this config"));
                    return None;
                }
                Err(e) => {
                    s.error(cx, format!("schema file `{file}`: {e}"));
                    return None;
                }
            };
            (parse_json(cx, &s, &file, &text)?, s)
        }
        Some(s) => (s.json(cx)?, s),
        None => {
            let file = format!("{name}.schema.json");
            match (env.sidecar)(&file) {
                Ok(Some(text)) => (parse_json(cx, type_field, &file, &text)?, type_field.clone()),
                Ok(None) => {
                    type_field.error(
                        cx,
                        format!(
                            "`{name}` is a Python class in Teal: give its JSON Schema as `{schema_key}` \
                             (inline, or the name of a .json file beside this config) or in `{file}` \
                             beside it (pydantic: `{name}.model_json_schema()`)"
                        ),
                    );
                    return None;
                }
                Err(e) => {
                    type_field.error(cx, format!("schema file `{file}`: {e}"));
                    return None;
                }
            }
        }
    };
    match SchemaType::new(name, value) {
        Ok(t) => Some(t),
        Err(e) => {
            at.error(cx, format!("not a valid JSON Schema: {e}"));
            None
        }
    }
}

fn parse_json(cx: &mut Ctx, at: &Field<'_>, file: &str, text: &str) -> Option<serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            at.error(cx, format!("schema file `{file}` is not JSON: {e}"));
            None
        }
    }
}
