//! The Teal Agents `Chat` schema: one positioned YAML document in, one [`AgentConfig`] out.
//!
//! Owns every rule about fields (required, defaults, ranges, refused transports, unknown fields
//! as warnings) and keeps going after a problem so a file's errors are all reported at once.
//! It must not parse YAML text (that is `tree`), read values itself (that is `reader`: types,
//! duplicates, merge keys, where a message points) nor touch the filesystem (that is `load`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use globset::GlobSet;

use crate::config::reader::{Ctx, Field, Fields};
use crate::config::template::{expand_vars, is_header_name};
use crate::config::tree::Node;
use crate::config::types::{
    AgentConfig, AgentSpec, ApiVersion, HeaderTemplate, McpServerConfig, McpTransport, ToolFilter,
};

const STDIO_REFUSED: &str = "stdio MCP servers cannot run in AWS Lambda; run the server \
     on ECS Fargate and give its streamable HTTP url";
const DEFAULT_AGENT_NAME: &str = "default";
const DEFAULT_MAX_ITERATIONS: u32 = 10;
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// A call cannot outlive the Lambda invocation that makes it.
const MAX_TIMEOUT_SECS: f64 = 900.0;

/// `[A-Za-z0-9._-]+`: agent names and versions appear in URLs and cache keys.
fn ident(cx: &mut Ctx, f: &Field<'_>, what: &str, value: String) -> Option<String> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Some(value);
    }
    f.error(cx, format!("invalid {what} `{value}`: use only letters, digits, `.`, `_` and `-`"));
    None
}

/// One document (already known not to be empty) as an agent; `None` when it had errors.
/// `vars` are what a `${NAME}` in a server `url` expands to.
pub(super) fn agent_config(cx: &mut Ctx, root: &Node, vars: &HashMap<String, String>) -> Option<AgentConfig> {
    let errors_before = cx.errors.len();
    let mut f = Fields::document(cx, root)?;

    let api_version = f.req(cx, "apiVersion").and_then(|v| {
        let s = v.string(cx)?;
        match s.as_str() {
            "tealagents/v1alpha1" => Some(ApiVersion::TealAgentsV1Alpha1),
            "skagents/v1" => Some(ApiVersion::SkAgentsV1),
            _ => {
                let msg =
                    format!("unsupported apiVersion `{s}`: expected tealagents/v1alpha1 or skagents/v1");
                v.error(cx, msg);
                None
            }
        }
    });

    if let Some(kind) = f.req(cx, "kind")
        && let Some(k) = kind.string(cx)
        && k != "Chat"
    {
        kind.error(cx, format!("unsupported kind `{k}`: only Chat is supported"));
    }

    let name_field = f.take("name");
    // `service_name` is the skagents/v1 spelling; with an unknown apiVersion accept both.
    let service_name = match api_version {
        Some(ApiVersion::TealAgentsV1Alpha1) => None,
        _ => f.take("service_name"),
    };
    let name_field = match (name_field, service_name) {
        (Some(n), Some(s)) => {
            s.error_at_key(cx, "give either name or service_name, not both");
            Some(n)
        }
        (n, s) => n.or(s),
    };
    let name = match name_field {
        Some(n) => n.string(cx).and_then(|s| ident(cx, &n, "name", s)),
        None => {
            let key = match api_version {
                Some(ApiVersion::SkAgentsV1) => "service_name",
                _ => "name",
            };
            f.missing(cx, key);
            None
        }
    };

    let version = f.req(cx, "version").and_then(|v| {
        let s = v.text(cx)?;
        ident(cx, &v, "version", s)
    });
    let description = f.opt("description").and_then(|d| d.string(cx));

    let agent = f.req(cx, "spec").and_then(|s| s.map(cx)).and_then(|mut spec| {
        let agent = spec.req(cx, "agent").and_then(|a| a.map(cx)).and_then(|a| agent_spec(cx, a, vars));
        spec.finish(cx);
        agent
    });
    f.finish(cx);

    if cx.errors.len() > errors_before {
        return None;
    }
    Some(AgentConfig {
        api_version: api_version?,
        name: name?,
        version: version?,
        description,
        agent: agent?,
        source: cx.source().to_owned(),
    })
}

fn agent_spec(cx: &mut Ctx, mut f: Fields<'_>, vars: &HashMap<String, String>) -> Option<AgentSpec> {
    let name = match f.opt("name") {
        Some(n) => n.non_empty_string(cx),
        None => Some(DEFAULT_AGENT_NAME.to_owned()),
    };
    let model = f.req(cx, "model").and_then(|m| m.non_empty_string(cx));
    let system_prompt = f.req(cx, "system_prompt").and_then(|p| p.string(cx));

    let temperature = match f.opt("temperature") {
        None => Some(None),
        Some(t) => t.number(cx).and_then(|v| {
            if (0.0..=2.0).contains(&v) {
                #[allow(clippy::cast_possible_truncation)] // within 0..=2
                Some(Some(v as f32))
            } else {
                t.error(cx, "must be between 0 and 2");
                None
            }
        }),
    };
    let max_tokens = match f.opt("max_tokens") {
        None => Some(None),
        Some(t) => t.integer(cx).and_then(|v| {
            if v <= 0 {
                t.error(cx, "must be greater than 0");
                None
            } else if let Ok(v) = u32::try_from(v) {
                Some(Some(v))
            } else {
                t.error(cx, format!("must be at most {}", u32::MAX));
                None
            }
        }),
    };
    let max_iterations = match f.opt("max_iterations") {
        None => Some(DEFAULT_MAX_ITERATIONS),
        Some(t) => t.integer(cx).and_then(|v| match u32::try_from(v) {
            Ok(v @ 1..=100) => Some(v),
            _ => {
                t.error(cx, "must be between 1 and 100");
                None
            }
        }),
    };
    let cache_ttl = match f.opt("cache_ttl") {
        None => Some(None),
        Some(t) => t.integer(cx).and_then(|v| match u64::try_from(v) {
            Ok(v @ 0..=604_800) => Some(Some(Duration::from_secs(v))),
            _ => {
                t.error(cx, "must be a whole number of seconds from 0 (no caching) to 604800");
                None
            }
        }),
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
    f.finish(cx);

    Some(AgentSpec {
        name: name?,
        model: model?,
        system_prompt: system_prompt?,
        temperature: temperature?,
        max_tokens: max_tokens?,
        max_iterations: max_iterations?,
        cache_ttl: cache_ttl?,
        mcp_servers: servers,
    })
}

/// One entry of `mcp_servers`; `seen` holds the names (and lines) of the servers before it.
fn mcp_server(
    cx: &mut Ctx,
    mut f: Fields<'_>,
    seen: &mut Vec<(String, usize)>,
    vars: &HashMap<String, String>,
) -> Option<McpServerConfig> {
    let name = f.req(cx, "name").and_then(|n| server_name(cx, &n, seen));
    // Refused transports first: a stdio server has no url to complain about.
    let stdio = refuse_stdio(cx, &mut f);
    let url = if stdio {
        // Not checked: the refusal is the stdio server's one error.
        f.take("url");
        None
    } else {
        f.req(cx, "url").and_then(|u| server_url(cx, &u, vars))
    };
    let headers = f.opt("headers").and_then(|h| h.map(cx)).map(|h| headers(cx, h));
    let timeout = timeout(cx, f.opt("timeout"));
    let tools = tool_filter(cx, f.opt("tools"));
    f.finish(cx);

    Some(McpServerConfig {
        name: name?,
        url: url?,
        transport: McpTransport::StreamableHttp,
        headers: headers.unwrap_or_default(),
        timeout: timeout?,
        tools: tools?,
    })
}

/// `[A-Za-z0-9-]+` (tools are exposed as `{server}_{tool}`), and unique within the agent.
fn server_name(cx: &mut Ctx, n: &Field<'_>, seen: &mut Vec<(String, usize)>) -> Option<String> {
    let s = n.string(cx)?;
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        let msg = format!(
            "invalid MCP server name `{s}`: use only letters, digits and `-` \
             (tools are exposed as `{{server}}_{{tool}}`)"
        );
        n.error(cx, msg);
        return None;
    }
    if let Some((_, first)) = seen.iter().find(|(seen_name, _)| *seen_name == s) {
        n.error(cx, format!("duplicate MCP server name `{s}` (first at line {first})"));
        return None;
    }
    seen.push((s.clone(), n.line()));
    Some(s)
}

/// Reads `transport` and `command`; true for a stdio server, which is refused with one error
/// (its `args`, `env` and `cwd` are taken without a warning each).
fn refuse_stdio(cx: &mut Ctx, f: &mut Fields<'_>) -> bool {
    let command = f.take("command");
    let mut stdio = f.opt("transport").is_some_and(|t| transport_is_stdio(cx, &t));
    if let Some(c) = &command {
        if !stdio {
            c.error_at_key(cx, STDIO_REFUSED);
        }
        stdio = true;
    }
    if stdio {
        for k in ["args", "env", "cwd"] {
            f.take(k);
        }
    }
    stdio
}

/// Only streamable HTTP is accepted: every other transport is an error. True for `stdio`.
fn transport_is_stdio(cx: &mut Ctx, t: &Field<'_>) -> bool {
    let Some(s) = t.string(cx) else {
        return false;
    };
    match s.as_str() {
        "http" | "streamable_http" | "streamable-http" => false,
        "stdio" => {
            t.error(cx, STDIO_REFUSED);
            true
        }
        "sse" | "websocket" => {
            let msg = format!(
                "transport `{s}` is not supported: only streamable HTTP MCP servers are \
                 (transport: http)"
            );
            t.error(cx, msg);
            false
        }
        _ => {
            let msg = format!("unknown transport `{s}`: expected http, streamable_http or streamable-http");
            t.error(cx, msg);
            false
        }
    }
}

/// An absolute http(s) URL, after `${NAME}` is replaced from `vars`.
fn server_url(cx: &mut Ctx, u: &Field<'_>, vars: &HashMap<String, String>) -> Option<url::Url> {
    let written = u.string(cx)?;
    let s = match expand_vars(&written, |n| vars.get(n).cloned()) {
        Ok(s) => s,
        Err(msg) => {
            u.error(cx, msg);
            return None;
        }
    };
    match url::Url::parse(&s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(url) => {
            u.error(cx, format!("unsupported URL scheme `{}`: use http or https", url.scheme()));
            None
        }
        Err(e) => {
            u.error(cx, e.to_string());
            None
        }
    }
}

/// Seconds, more than 0 and at most the Lambda time limit; [`DEFAULT_TIMEOUT_SECS`] when absent.
fn timeout(cx: &mut Ctx, t: Option<Field<'_>>) -> Option<Duration> {
    let Some(t) = t else {
        return Some(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS));
    };
    let v = t.number(cx)?;
    let msg = if v.is_nan() || v <= 0.0 {
        "must be a number of seconds greater than 0".to_owned()
    } else if v > MAX_TIMEOUT_SECS {
        format!("must be at most {MAX_TIMEOUT_SECS} seconds (the Lambda time limit)")
    } else {
        return Duration::try_from_secs_f64(v).ok();
    };
    t.error(cx, msg);
    None
}

/// `tools.allow` and `tools.deny` glob lists; no `tools` mapping lets every tool through.
fn tool_filter(cx: &mut Ctx, t: Option<Field<'_>>) -> Option<ToolFilter> {
    let Some(mut t) = t.and_then(|t| t.map(cx)) else {
        return Some(ToolFilter::default());
    };
    let allow = t.opt("allow").map(|a| a.globs(cx));
    let deny = t.opt("deny").map(|d| d.globs(cx));
    t.finish(cx);
    match (allow, deny) {
        (Some(None), _) | (_, Some(None)) => None,
        (allow, deny) => {
            Some(ToolFilter { allow: allow.flatten(), deny: deny.flatten().unwrap_or_else(GlobSet::empty) })
        }
    }
}

/// Header names are HTTP tokens, unique ignoring case; values are [`HeaderTemplate`]s.
fn headers(cx: &mut Ctx, mut f: Fields<'_>) -> BTreeMap<String, HeaderTemplate> {
    let mut out: BTreeMap<String, HeaderTemplate> = BTreeMap::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for h in f.rest() {
        let key = h.key().to_owned();
        if !is_header_name(&key) {
            h.error_at_key(cx, format!("invalid header name `{key}`: use only HTTP token characters"));
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == lower) {
            let msg = format!("duplicate header `{key}` (first at line {first}; header names ignore case)");
            h.error_at_key(cx, msg);
            continue;
        }
        seen.push((lower, h.key_line()));
        // Header values are text on the wire: numbers and booleans are taken as written.
        let Some(value) = h.written(cx) else {
            continue;
        };
        match HeaderTemplate::parse(&value) {
            Ok(t) => {
                out.insert(key, t);
            }
            Err(msg) => h.error(cx, msg),
        }
    }
    out
}

#[cfg(test)]
mod tests;
