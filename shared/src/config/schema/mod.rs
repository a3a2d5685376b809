//! The Teal Agents schema: one positioned YAML document in, one [`AgentConfig`] out.
//!
//! Owns every rule about fields (required, defaults, ranges, refused kinds and transports,
//! Teal fields we cannot honour as errors with the way forward, unknown fields as warnings) and
//! keeps going after a problem so a file's errors are all reported at once. It must not parse
//! YAML text (that is `tree`), read values itself (that is `reader`: types, duplicates, merge
//! keys, where a message points) nor touch the filesystem (that is `load`, through
//! [`ParseEnv::sidecar`]).
//!
//! Parts: `agent` (one agent's fields), `mcp` (one MCP server), `sequential` (agents and tasks
//! of `kind: Sequential`), `io` (input and output types and their JSON Schemas).

mod agent;
mod io;
mod mcp;
mod sequential;

use std::collections::HashMap;
use std::time::Duration;

use crate::config::reader::{Ctx, Field, Fields};
use crate::config::tree::Node;
use crate::config::types::{AgentConfig, AgentKind, ApiVersion, InputType};

/// What a document may refer to outside itself.
pub struct ParseEnv<'a> {
    /// What a `${NAME}` in a server `url` expands to.
    pub vars: &'a HashMap<String, String>,
    /// The text of a file beside the config (`input_schema: types/x.json`,
    /// `NumbersInput.schema.json`): `Ok(None)` when there is no such file.
    pub sidecar: &'a dyn Fn(&str) -> Result<Option<String>, String>,
}

/// No variables and no files beside the text.
pub(crate) fn no_sidecar(_: &str) -> Result<Option<String>, String> {
    Ok(None)
}

const ORCHESTRATOR_KINDS: [&str; 5] = [
    "AssistantOrchestrator",
    "CollaborationOrchestrator",
    "PlanningOrchestrator",
    "TeamOrchestrator",
    "WorkflowOrchestrator",
];

/// `[A-Za-z0-9._-]+`: agent names and versions appear in URLs and cache keys.
fn ident(cx: &mut Ctx, f: &Field<'_>, what: &str, value: String) -> Option<String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Some(value);
    }
    f.error(cx, format!("invalid {what} `{value}`: use only letters, digits, `.`, `_` and `-`"));
    None
}

/// One document (already known not to be empty) as an agent; `None` when it had errors.
pub(super) fn agent_config(cx: &mut Ctx, root: &Node, env: &ParseEnv<'_>) -> Option<AgentConfig> {
    let errors_before = cx.errors.len();
    let mut f = Fields::document(cx, root)?;

    let api_version = f.req(cx, "apiVersion").and_then(|v| api_version(cx, &v));
    let kind = kind(cx, &mut f, api_version);
    let name = name(cx, &mut f, api_version);
    let version = f.req(cx, "version").and_then(|v| {
        let s = v.text(cx)?;
        ident(cx, &v, "version", s)
    });
    let description = f.opt("description").and_then(|d| d.string(cx));
    let metadata_description = metadata(cx, &mut f);
    // A kind we cannot run: its types and spec mean something else, so they are not read.
    if kind.is_none() {
        for key in ["input_type", "output_type", "input_schema", "output_schema"] {
            f.take(key);
        }
    }
    let input = kind
        .as_ref()
        .map_or(Some(InputType::BaseInput), |k| io::input_type(cx, &mut f, api_version, Some(k), env));
    let output = kind.as_ref().map_or(Some(None), |k| io::output_type(cx, &mut f, Some(k), env));

    let body = match &kind {
        None => {
            f.take("spec");
            None
        }
        Some(kind) => f.req(cx, "spec").and_then(|s| s.map(cx)).and_then(|mut spec| {
            let body = match kind {
                AgentKind::Chat => {
                    chat_agent(cx, &mut spec, env.vars).map(|(a, ttl)| (vec![a], Vec::new(), ttl))
                }
                AgentKind::Sequential => {
                    sequential::agents_and_tasks(cx, &mut spec, env.vars).map(|(a, t)| (a, t, None))
                }
            };
            spec.finish(cx);
            body
        }),
    };
    f.finish(cx);

    if cx.errors.len() > errors_before {
        return None;
    }
    let (agents, tasks, cache_ttl) = body?;
    Some(AgentConfig {
        api_version: api_version?,
        kind: kind?,
        name: name?,
        version: version?,
        description: description.or(metadata_description),
        input: input?,
        output: output?,
        agents: agents.into_iter().map(std::sync::Arc::new).collect(),
        tasks,
        cache_ttl,
        source: cx.source().to_owned(),
    })
}

fn api_version(cx: &mut Ctx, v: &Field<'_>) -> Option<ApiVersion> {
    let s = v.string(cx)?;
    match s.as_str() {
        "tealagents/v1alpha1" => Some(ApiVersion::TealAgentsV1Alpha1),
        "skagents/v1" => Some(ApiVersion::SkAgentsV1),
        "skagents/v2alpha1" => Some(ApiVersion::SkAgentsV2Alpha1),
        _ => {
            let msg = format!(
                "unsupported apiVersion `{s}`: expected tealagents/v1alpha1, skagents/v1 or skagents/v2alpha1"
            );
            v.error(cx, msg);
            None
        }
    }
}

/// `kind`: Chat or Sequential (`skagents/v1`), Agent or Chat (`skagents/v2alpha1`), Chat or
/// absent (`tealagents/v1alpha1`). Orchestrators are refused by name. `None` (reported) means
/// the spec cannot be read.
fn kind(cx: &mut Ctx, f: &mut Fields<'_>, api: Option<ApiVersion>) -> Option<AgentKind> {
    let field = match api {
        Some(ApiVersion::TealAgentsV1Alpha1) => f.opt("kind"),
        _ => f.req(cx, "kind"),
    };
    let Some(field) = field else {
        return Some(AgentKind::Chat);
    };
    let k = field.string(cx)?;
    match (api, k.as_str()) {
        (_, "Chat") | (Some(ApiVersion::SkAgentsV2Alpha1), "Agent") => Some(AgentKind::Chat),
        (Some(ApiVersion::SkAgentsV1), "Sequential") => Some(AgentKind::Sequential),
        (_, orchestrator) if ORCHESTRATOR_KINDS.contains(&orchestrator) => {
            field.error(
                cx,
                format!(
                    "kind `{orchestrator}` is an orchestrator, which is out of scope for teal-serverless: \
                     keep running it with Teal and point it at these agents (each serves Teal's \
                     invoke API and /{{name}}/{{version}}/openapi.json)"
                ),
            );
            None
        }
        (_, other) => {
            let expected = match api {
                Some(ApiVersion::SkAgentsV1) => "Chat or Sequential",
                Some(ApiVersion::SkAgentsV2Alpha1) => "Agent or Chat",
                _ => "Chat",
            };
            field.error(cx, format!("unsupported kind `{other}`: expected {expected}"));
            None
        }
    }
}

/// `name`, or `service_name` in `skagents/v1` files.
fn name(cx: &mut Ctx, f: &mut Fields<'_>, api: Option<ApiVersion>) -> Option<String> {
    let name_field = f.take("name");
    // `service_name` is the skagents/v1 spelling; with an unknown apiVersion accept both.
    let service_name = match api {
        Some(ApiVersion::TealAgentsV1Alpha1 | ApiVersion::SkAgentsV2Alpha1) => None,
        _ => f.take("service_name"),
    };
    let name_field = match (name_field, service_name) {
        (Some(n), Some(s)) => {
            s.error_at_key(cx, "give either name or service_name, not both");
            Some(n)
        }
        (n, s) => n.or(s),
    };
    match name_field {
        Some(n) => n.string(cx).and_then(|s| ident(cx, &n, "name", s)),
        None => {
            let key = match api {
                Some(ApiVersion::SkAgentsV1) => "service_name",
                _ => "name",
            };
            f.missing(cx, key);
            None
        }
    }
}

/// `metadata`: Teal's A2A agent card. Its `description` describes the agent (OpenAPI); the rest
/// only feeds the A2A card, which is not served.
fn metadata(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<String> {
    let mut m = f.opt("metadata")?.map(cx)?;
    let description = m.opt("description").and_then(|d| d.string(cx));
    for rest in m.rest() {
        rest.warn(cx, "ignored: A2A agent card metadata (A2A is not served)");
    }
    description
}

/// The agent of a Chat config: `spec.agent`, or `spec` itself in the simplified
/// `tealagents/v1alpha1` shape (`spec.model`, `spec.mcp_servers`, …), with its `cache_ttl`.
fn chat_agent(
    cx: &mut Ctx,
    spec: &mut Fields<'_>,
    vars: &HashMap<String, String>,
) -> Option<(crate::config::types::AgentSpec, Option<Duration>)> {
    if spec.has("agent") || !spec.has("model") {
        let mut a = spec.req(cx, "agent").and_then(|a| a.map(cx))?;
        let agent = agent::agent_spec(cx, &mut a, vars);
        let ttl = cache_ttl(cx, &mut a);
        a.finish(cx);
        return Some((agent?, ttl?));
    }
    let agent = agent::agent_spec(cx, spec, vars);
    let ttl = cache_ttl(cx, spec);
    Some((agent?, ttl?))
}

fn cache_ttl(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Option<Duration>> {
    let Some(t) = f.opt("cache_ttl") else {
        return Some(None);
    };
    match u64::try_from(t.integer(cx)?) {
        Ok(v @ 0..=604_800) => Some(Some(Duration::from_secs(v))),
        _ => {
            t.error(cx, "must be a whole number of seconds from 0 (no caching) to 604800");
            None
        }
    }
}

#[cfg(test)]
mod tests;
