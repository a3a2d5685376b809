//! One agent's fields: `spec.agent`, each of `spec.agents`, or (in the simplified
//! `tealagents/v1alpha1` shape) `spec` itself.
//!
//! Refuses Teal's Python `plugins` with the way forward (serve them as an MCP server), so an
//! agent never runs without the tools its config promises.

use std::collections::HashMap;

use crate::config::reader::{Ctx, Fields};
use crate::config::types::AgentSpec;
use crate::llm::{Cost, Endpoint};

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
    let max_tool_calls =
        positive(cx, f, "max_tool_calls").map(|v| v.map(|v| v.min(u64::from(u32::MAX)) as u32));
    let max_tokens_total = positive(cx, f, "max_tokens_total");
    let reasoning_effort = match f.opt("reasoning_effort") {
        None => Some(None),
        Some(r) => r.non_empty_string(cx).map(Some),
    };
    let max_cost_usd = max_cost_usd(cx, f);
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

    let provider = match f.opt("provider") {
        None => Some(None),
        Some(p) => p.map(cx).and_then(|p| provider(cx, p)).map(Some),
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
        max_tool_calls: max_tool_calls?,
        max_tokens_total: max_tokens_total?,
        max_cost_usd: max_cost_usd?,
        mcp_servers: servers,
        provider: provider?,
    })
}

/// `provider: {type, base_url, api_version, api_key_secret, region}`. Every field this type
/// does not use, and every unknown one, is an error: a setting that would be ignored is a
/// mistake in the file.
fn provider(cx: &mut Ctx, mut f: Fields<'_>) -> Option<Endpoint> {
    let kind = f.req(cx, "type").and_then(|t| t.non_empty_string(cx).map(|v| (t, v)));
    let url = |cx: &mut Ctx, f: &mut Fields<'_>, required: bool| -> Option<Option<url::Url>> {
        let Some(u) = f.opt("base_url") else {
            if required {
                f.missing(cx, "base_url");
                return None;
            }
            return Some(None);
        };
        let text = u.non_empty_string(cx)?;
        match url::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(Some(url)),
            _ => {
                u.error(cx, "must be an absolute http(s) URL");
                None
            }
        }
    };
    let secret = |cx: &mut Ctx, f: &mut Fields<'_>| -> Option<Option<String>> {
        match f.opt("api_key_secret") {
            None => Some(None),
            Some(s) => s.non_empty_string(cx).map(Some),
        }
    };
    let (t, kind) = kind?;
    let endpoint = match kind.as_str() {
        "openai" => {
            let base_url = match url(cx, &mut f, false)? {
                Some(u) => u,
                None => url::Url::parse(crate::llm::openai::DEFAULT_BASE_URL).ok()?,
            };
            Endpoint::OpenAi { base_url, api_key_secret: secret(cx, &mut f)? }
        }
        "openai-compatible" => {
            let base_url = url(cx, &mut f, true)??;
            Endpoint::OpenAi { base_url, api_key_secret: secret(cx, &mut f)? }
        }
        "azure-openai" => {
            let base_url = url(cx, &mut f, true)??;
            let api_version = f.req(cx, "api_version").and_then(|v| v.non_empty_string(cx))?;
            Endpoint::AzureOpenAi { base_url, api_version, api_key_secret: secret(cx, &mut f)? }
        }
        "bedrock" => {
            let region = match f.opt("region") {
                None => None,
                Some(r) => Some(r.non_empty_string(cx)?),
            };
            Endpoint::Bedrock { region }
        }
        other => {
            t.error(cx, format!("unknown provider type `{other}`: expected openai, azure-openai, openai-compatible or bedrock"));
            return None;
        }
    };
    let mut ok = true;
    let takes = match endpoint {
        Endpoint::OpenAi { .. } => "type, base_url, api_key_secret",
        Endpoint::AzureOpenAi { .. } => "type, base_url, api_version, api_key_secret",
        Endpoint::Bedrock { .. } => "type, region (credentials are the function's IAM role)",
    };
    for extra in f.rest() {
        extra.error_at_key(
            cx,
            format!("provider type `{kind}` has no field `{}` (it takes {takes})", extra.key()),
        );
        ok = false;
    }
    ok.then_some(endpoint)
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

/// An optional whole number > 0 (a run budget).
fn positive(cx: &mut Ctx, f: &mut Fields<'_>, key: &str) -> Option<Option<u64>> {
    let Some(t) = f.opt(key) else {
        return Some(None);
    };
    match u64::try_from(t.integer(cx)?) {
        Ok(v) if v > 0 => Some(Some(v)),
        _ => {
            t.error(cx, "must be a whole number greater than 0");
            None
        }
    }
}

/// `max_cost_usd`: US dollars > 0 as a plain decimal, at most 12 decimals (priced by
/// `TA_MODEL_PRICES`, checked at start).
fn max_cost_usd(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Option<Cost>> {
    let Some(t) = f.opt("max_cost_usd") else {
        return Some(None);
    };
    t.number(cx)?;
    match Cost::parse_usd(&t.text(cx)?) {
        Some(c) if c > Cost::default() => Some(Some(c)),
        _ => {
            t.error(cx, "must be US dollars greater than 0, written as a plain decimal (e.g. 0.50)");
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
