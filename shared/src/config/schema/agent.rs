//! One agent's fields: `spec.agent`, each of `spec.agents`, or (in the simplified
//! `tealagents/v1alpha1` shape) `spec` itself.
//!
//! Refuses Teal's Python `plugins` with the way forward (serve them as an MCP server), so an
//! agent never runs without the tools its config promises.

use std::collections::HashMap;

use crate::config::reader::{Ctx, Fields};
use crate::config::types::AgentSpec;

use super::mcp::mcp_server;

const DEFAULT_AGENT_NAME: &str = "default";
const DEFAULT_MAX_ITERATIONS: u32 = 10;
pub(super) const PLUGINS_REFUSED: &str = "Python plugins cannot run here: serve the plugin as an MCP \
     server on ECS Fargate (its tools keep their names) and list it under `mcp_servers`; see \
     docs/migrating-from-teal.md";

/// The agent in `f`. `cache_ttl` is read by the caller (it belongs to the whole config).
pub(super) fn agent_spec(
    cx: &mut Ctx,
    f: &mut Fields<'_>,
    vars: &HashMap<String, String>,
) -> Option<AgentSpec> {
    let name = match f.opt("name") {
        Some(n) => n.non_empty_string(cx),
        None => Some(DEFAULT_AGENT_NAME.to_owned()),
    };
    let model = f.req(cx, "model").and_then(|m| m.non_empty_string(cx));
    let system_prompt = f.req(cx, "system_prompt").and_then(|p| p.string(cx));
    let temperature = temperature(cx, f);
    let max_tokens = max_tokens(cx, f);
    let max_iterations = max_iterations(cx, f);
    let reasoning_effort = match f.opt("reasoning_effort") {
        None => Some(None),
        Some(r) => r.non_empty_string(cx).map(Some),
    };
    // `role` names the agent for people reading the file; Teal does not send it to the model
    // either: left for the unknown-field warning.
    if let Some(p) = f.opt("plugins")
        && !p.is_empty_collection()
    {
        p.error_at_key(cx, PLUGINS_REFUSED);
    }
    let remote_plugins = match f.opt("remote_plugins") {
        None => Some(Vec::new()),
        Some(list) => {
            list.items(cx).map(|items| items.iter().filter_map(|i| i.non_empty_string(cx)).collect())
        }
    };

    let mut servers = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    if let Some(list) = f.opt("mcp_servers") {
        for item in list.items(cx).unwrap_or_default() {
            if let Some(s) = item.map(cx).and_then(|s| mcp_server(cx, s, &mut seen, vars)) {
                servers.push(s);
            }
        }
    }

    Some(AgentSpec {
        name: name?,
        model: model?,
        system_prompt: system_prompt?,
        temperature: temperature?,
        max_tokens: max_tokens?,
        reasoning_effort: reasoning_effort?,
        remote_plugins: remote_plugins?,
        max_iterations: max_iterations?,
        mcp_servers: servers,
    })
}

fn temperature(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Option<f32>> {
    let Some(t) = f.opt("temperature") else {
        return Some(None);
    };
    let v = t.number(cx)?;
    if (0.0..=2.0).contains(&v) {
        #[allow(clippy::cast_possible_truncation)] // within 0..=2
        return Some(Some(v as f32));
    }
    t.error(cx, "must be between 0 and 2");
    None
}

fn max_tokens(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Option<u32>> {
    let Some(t) = f.opt("max_tokens") else {
        return Some(None);
    };
    let v = t.integer(cx)?;
    if v <= 0 {
        t.error(cx, "must be greater than 0");
        return None;
    }
    match u32::try_from(v) {
        Ok(v) => Some(Some(v)),
        Err(_) => {
            t.error(cx, format!("must be at most {}", u32::MAX));
            None
        }
    }
}

fn max_iterations(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<u32> {
    let Some(t) = f.opt("max_iterations") else {
        return Some(DEFAULT_MAX_ITERATIONS);
    };
    match u32::try_from(t.integer(cx)?) {
        Ok(v @ 1..=100) => Some(v),
        _ => {
            t.error(cx, "must be between 1 and 100");
            None
        }
    }
}
