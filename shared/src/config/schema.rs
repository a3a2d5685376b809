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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::reader::IGNORED;
    use crate::config::types::TemplatePart;
    use crate::config::{Parsed, parse_documents};

    fn ok(text: &str) -> Parsed {
        match parse_documents("a.yaml", text) {
            Ok(p) => p,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn errs(text: &str) -> Vec<String> {
        match parse_documents("a.yaml", text) {
            Ok(p) => panic!("expected errors, loaded {:?}", p.agents),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// A valid agent; `extra_agent` lines go under `spec.agent` (4-space indented) at line 9.
    fn with_agent(extra_agent: &str) -> String {
        format!(
            "apiVersion: tealagents/v1alpha1\n\
             kind: Chat\n\
             name: fs-assistant\n\
             version: 0.1\n\
             spec:\n  \
               agent:\n    \
                 model: gpt-4o-mini\n    \
                 system_prompt: You help.\n{extra_agent}"
        )
    }

    /// A valid agent with one server; `extra` lines go under the server (8-space indented) at
    /// line 12.
    fn with_server(extra: &str) -> String {
        with_agent(&format!(
            "    mcp_servers:\n      \
               - name: fs\n        \
                 url: http://127.0.0.1:8931/mcp\n{extra}"
        ))
    }

    #[test]
    fn minimal_agent_gets_defaults() {
        let p = ok(&with_agent(""));
        assert!(p.warnings.is_empty());
        let [a] = p.agents.as_slice() else { panic!() };
        assert_eq!(a.api_version, ApiVersion::TealAgentsV1Alpha1);
        assert_eq!((a.name.as_str(), a.version.as_str()), ("fs-assistant", "0.1"));
        assert_eq!(a.description, None);
        assert_eq!(a.source, "a.yaml");
        assert_eq!(a.agent.name, "default");
        assert_eq!(a.agent.model, "gpt-4o-mini");
        assert_eq!(a.agent.system_prompt, "You help.");
        assert_eq!((a.agent.temperature, a.agent.max_tokens), (None, None));
        assert_eq!(a.agent.max_iterations, 10);
        assert!(a.agent.mcp_servers.is_empty());
    }

    #[test]
    fn the_documented_example_loads_completely() {
        let text = r#"apiVersion: tealagents/v1alpha1
kind: Chat
name: fs-assistant
version: 0.1
description: Reads files
spec:
  agent:
    name: reader
    model: gpt-4o-mini
    system_prompt: |
      You are careful.
    temperature: 0.2
    max_tokens: 800
    max_iterations: 25
    mcp_servers:
      - name: fs
        url: https://fs.internal:8931/mcp
        transport: streamable-http
        headers:
          Authorization: "Bearer ${secret:FS_TOKEN}"
          X-Tenant: ${TENANT}
          X-Retries: 3
        timeout: 2.5
        tools:
          allow: ["read_*", "list_directory"]
          deny: ["write_*", "read_secret*"]
      - name: search-2
        url: http://127.0.0.1:9000/mcp
"#;
        let p = ok(text);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let a = &p.agents[0];
        assert_eq!(a.description.as_deref(), Some("Reads files"));
        assert_eq!(a.agent.name, "reader");
        assert_eq!(a.agent.system_prompt, "You are careful.\n");
        assert_eq!(a.agent.temperature, Some(0.2));
        assert_eq!(a.agent.max_tokens, Some(800));
        assert_eq!(a.agent.max_iterations, 25);
        let [fs, search] = a.agent.mcp_servers.as_slice() else { panic!() };
        assert_eq!(fs.name, "fs");
        assert_eq!(fs.url.as_str(), "https://fs.internal:8931/mcp");
        assert_eq!(fs.transport, McpTransport::StreamableHttp);
        assert_eq!(fs.timeout, Duration::from_millis(2500));
        assert_eq!(
            fs.headers["Authorization"].parts,
            vec![TemplatePart::Literal("Bearer ".into()), TemplatePart::Secret("FS_TOKEN".into())]
        );
        assert_eq!(fs.headers["X-Tenant"].parts, vec![TemplatePart::Secret("TENANT".into())]);
        assert_eq!(fs.headers["X-Retries"].parts, vec![TemplatePart::Literal("3".into())]);
        assert!(fs.tools.permits("read_file"));
        assert!(fs.tools.permits("list_directory"));
        assert!(!fs.tools.permits("read_secrets"));
        assert!(!fs.tools.permits("write_file"));
        assert!(!fs.tools.permits("delete_file"));
        assert_eq!(search.timeout, Duration::from_secs(30));
        assert!(search.headers.is_empty());
        assert!(search.tools.permits("anything"));
    }

    #[test]
    fn version_text_is_kept_as_written() {
        for (written, kept) in
            [("0.1", "0.1"), ("1.10", "1.10"), ("\"2\"", "2"), ("1.0", "1.0"), ("'0.10'", "0.10"), ("3", "3")]
        {
            let text = with_agent("").replace("version: 0.1", &format!("version: {written}"));
            assert_eq!(ok(&text).agents[0].version, kept, "{written}");
        }
        let text = with_agent("").replace("version: 0.1", "version: true");
        assert_eq!(errs(&text), ["a.yaml:4 version: expected a string or a number, found a boolean"]);
        let text = with_agent("").replace("version: 0.1", "version: 1 beta");
        assert_eq!(
            errs(&text),
            ["a.yaml:4 version: invalid version `1 beta`: use only letters, digits, `.`, `_` and `-`"]
        );
    }

    #[test]
    fn all_missing_required_fields_are_reported_at_their_parent_line() {
        let text = "apiVersion: tealagents/v1alpha1
kind: Chat
spec:
  agent:
    mcp_servers:
      - transport: http
";
        assert_eq!(
            errs(text),
            [
                "a.yaml:1 name: missing required field",
                "a.yaml:1 version: missing required field",
                "a.yaml:4 spec.agent.model: missing required field",
                "a.yaml:4 spec.agent.system_prompt: missing required field",
                "a.yaml:6 spec.agent.mcp_servers[0].name: missing required field",
                "a.yaml:6 spec.agent.mcp_servers[0].url: missing required field",
            ]
        );
        assert_eq!(
            errs("name: x\n"),
            [
                "a.yaml:1 apiVersion: missing required field",
                "a.yaml:1 kind: missing required field",
                "a.yaml:1 version: missing required field",
                "a.yaml:1 spec: missing required field",
            ]
        );
        let text = with_agent("")
            .replace("  agent:\n    model: gpt-4o-mini\n    system_prompt: You help.\n", "  other: 1\n");
        assert_eq!(errs(&text), ["a.yaml:5 spec.agent: missing required field"]);
    }

    #[test]
    fn wrong_types_name_what_was_expected_and_found() {
        let text = "apiVersion: tealagents/v1alpha1
kind: Chat
name: [a]
version: 0.1
description: 12
spec:
  agent:
    model: {id: gpt}
    system_prompt:
    temperature: hot
    max_tokens: \"800\"
    max_iterations: 2.5
    mcp_servers: fs
";
        assert_eq!(
            errs(text),
            [
                "a.yaml:3 name: expected a string, found a sequence",
                "a.yaml:5 description: expected a string, found a number",
                "a.yaml:8 spec.agent.model: expected a string, found a mapping",
                "a.yaml:9 spec.agent.system_prompt: expected a string, found null",
                "a.yaml:10 spec.agent.temperature: expected a number, found a string",
                "a.yaml:11 spec.agent.max_tokens: expected an integer, found a string",
                "a.yaml:12 spec.agent.max_iterations: expected an integer, found `2.5`",
                "a.yaml:13 spec.agent.mcp_servers: expected a sequence, found a string",
            ]
        );
        assert_eq!(
            errs("apiVersion: tealagents/v1alpha1\nkind: Chat\nname: a\nversion: 1\nspec: 3\n"),
            ["a.yaml:5 spec: expected a mapping, found a number"]
        );
        assert_eq!(errs("- a\n- b\n"), ["a.yaml:1: expected a mapping, found a sequence"]);
    }

    #[test]
    fn ranges() {
        let text = with_agent("    temperature: 2.5\n    max_tokens: 0\n    max_iterations: 101\n");
        assert_eq!(
            errs(&text),
            [
                "a.yaml:9 spec.agent.temperature: must be between 0 and 2",
                "a.yaml:10 spec.agent.max_tokens: must be greater than 0",
                "a.yaml:11 spec.agent.max_iterations: must be between 1 and 100",
            ]
        );
        let text = with_agent("    temperature: -0.1\n    max_tokens: 4294967296\n    max_iterations: 0\n");
        assert_eq!(
            errs(&text),
            [
                "a.yaml:9 spec.agent.temperature: must be between 0 and 2",
                "a.yaml:10 spec.agent.max_tokens: must be at most 4294967295",
                "a.yaml:11 spec.agent.max_iterations: must be between 1 and 100",
            ]
        );
        let text = with_agent("    temperature: 0\n    max_tokens: 1\n    max_iterations: 100\n");
        let a = &ok(&text).agents[0].agent;
        assert_eq!((a.temperature, a.max_tokens, a.max_iterations), (Some(0.0), Some(1), 100));
        let text = with_agent("    temperature: 2\n    max_iterations: 1\n");
        let a = &ok(&text).agents[0].agent;
        assert_eq!((a.temperature, a.max_iterations), (Some(2.0), 1));
        assert_eq!(
            errs(&with_agent("    model: ''\n").replace("    model: gpt-4o-mini\n", "")),
            ["a.yaml:8 spec.agent.model: must not be empty"]
        );
    }

    #[test]
    fn timeouts() {
        for (t, msg) in [
            ("0", "must be a number of seconds greater than 0"),
            ("-1", "must be a number of seconds greater than 0"),
            (".nan", "must be a number of seconds greater than 0"),
            ("901", "must be at most 900 seconds (the Lambda time limit)"),
            (".inf", "must be at most 900 seconds (the Lambda time limit)"),
            ("soon", "expected a number, found a string"),
        ] {
            assert_eq!(
                errs(&with_server(&format!("        timeout: {t}\n"))),
                [format!("a.yaml:12 spec.agent.mcp_servers[0].timeout: {msg}")],
                "{t}"
            );
        }
        let a = ok(&with_server("        timeout: 900\n"));
        assert_eq!(a.agents[0].agent.mcp_servers[0].timeout, Duration::from_secs(900));
    }

    #[test]
    fn only_chat_kind_and_known_api_versions() {
        let text = with_agent("").replace("kind: Chat", "kind: Sequential");
        assert_eq!(errs(&text), ["a.yaml:2 kind: unsupported kind `Sequential`: only Chat is supported"]);
        let text = with_agent("").replace("tealagents/v1alpha1", "tealagents/v2");
        assert_eq!(
            errs(&text),
            ["a.yaml:1 apiVersion: unsupported apiVersion `tealagents/v2`: expected \
                 tealagents/v1alpha1 or skagents/v1"]
        );
    }

    #[test]
    fn stdio_sse_and_websocket_servers_are_refused() {
        let stdio = format!("a.yaml:11 spec.agent.mcp_servers[0].command: {STDIO_REFUSED}");
        let text = with_agent(
            "    mcp_servers:\n      - name: fs\n        command: npx\n        args: [-y, server]\n",
        );
        assert_eq!(errs(&text), [stdio.as_str()]);
        // No url is demanded from a refused stdio server, and a given one is not a second error.
        let text = with_agent(
            "    mcp_servers:\n      - name: fs\n        transport: stdio\n        command: npx\n",
        );
        assert_eq!(errs(&text), [stdio.replace("command", "transport")]);
        for t in ["sse", "websocket"] {
            assert_eq!(
                errs(&with_server(&format!("        transport: {t}\n"))),
                [format!(
                    "a.yaml:12 spec.agent.mcp_servers[0].transport: transport `{t}` is not \
                     supported: only streamable HTTP MCP servers are (transport: http)"
                )]
            );
        }
        assert_eq!(
            errs(&with_server("        transport: grpc\n")),
            ["a.yaml:12 spec.agent.mcp_servers[0].transport: unknown transport `grpc`: \
                 expected http, streamable_http or streamable-http"]
        );
        for t in ["http", "streamable_http", "streamable-http"] {
            let p = ok(&with_server(&format!("        transport: {t}\n")));
            assert_eq!(p.agents[0].agent.mcp_servers[0].transport, McpTransport::StreamableHttp);
        }
    }

    #[test]
    fn url_variables() {
        use crate::config::parse_documents_with_vars;
        let text = with_server("").replace("http://127.0.0.1:8931/mcp", "${FS_URL}/mcp");
        let vars = HashMap::from([("FS_URL".to_owned(), "http://10.0.0.5:8080".to_owned())]);
        let p = parse_documents_with_vars("a.yaml", &text, &vars).unwrap();
        assert_eq!(p.agents[0].agent.mcp_servers[0].url.as_str(), "http://10.0.0.5:8080/mcp");
        assert_eq!(errs(&text), ["a.yaml:11 spec.agent.mcp_servers[0].url: variable `FS_URL` is not set"]);
    }

    #[test]
    fn urls_must_be_absolute_http() {
        let text = |u: &str| with_server("").replace("http://127.0.0.1:8931/mcp", u);
        assert_eq!(
            errs(&text("/mcp")),
            ["a.yaml:11 spec.agent.mcp_servers[0].url: relative URL without a base"]
        );
        assert_eq!(
            errs(&text("ftp://host/mcp")),
            ["a.yaml:11 spec.agent.mcp_servers[0].url: unsupported URL scheme `ftp`: use http or https"]
        );
        assert_eq!(errs(&text("http://")), ["a.yaml:11 spec.agent.mcp_servers[0].url: empty host"]);
        assert_eq!(
            errs(&text("8931")),
            ["a.yaml:11 spec.agent.mcp_servers[0].url: expected a string, found a number"]
        );
    }

    #[test]
    fn headers_are_checked_by_name_and_template() {
        let text = with_server(
            "        headers:
          Bad Name: x
          Authorization: Bearer ${secret:T
          X-Empty: ${}
          x-a: 1
          X-A: 2
          X-List: [1]
          X-Ok: $$5 ${OK}
",
        );
        let h = "a.yaml:{} spec.agent.mcp_servers[0].headers";
        let line = |n: usize, rest: &str| format!("{}{rest}", h.replace("{}", &n.to_string()));
        assert_eq!(
            errs(&text),
            [
                line(13, ".Bad Name: invalid header name `Bad Name`: use only HTTP token characters"),
                line(14, ".Authorization: unclosed `${` in `Bearer ${secret:T`"),
                line(15, ".X-Empty: empty secret name in `${}`"),
                line(17, ".X-A: duplicate header `X-A` (first at line 16; header names ignore case)"),
                line(18, ".X-List: expected a string, found a sequence"),
            ]
        );
    }

    #[test]
    fn invalid_globs_name_their_index() {
        let text = with_server(
            "        tools:\n          allow: [\"read_*\", \"list_[a\"]\n          deny:\n            - \"{a,b\"\n",
        );
        assert_eq!(
            errs(&text),
            [
                "a.yaml:13 spec.agent.mcp_servers[0].tools.allow[1]: invalid glob `list_[a`: \
                 unclosed character class; missing ']'",
                "a.yaml:15 spec.agent.mcp_servers[0].tools.deny[0]: invalid glob `{a,b`: \
                 unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)",
            ]
        );
        let p = ok(&with_server("        tools:\n          allow: []\n"));
        assert!(!p.agents[0].agent.mcp_servers[0].tools.permits("read_file"));
    }

    #[test]
    fn server_names_are_checked_and_unique() {
        let text = with_agent(
            "    mcp_servers:
      - name: fs
        url: http://a/mcp
      - name: fs_tools
        url: http://b/mcp
      - name: fs
        url: http://c/mcp
      - just a string
",
        );
        assert_eq!(
            errs(&text),
            [
                "a.yaml:12 spec.agent.mcp_servers[1].name: invalid MCP server name `fs_tools`: \
                 use only letters, digits and `-` (tools are exposed as `{server}_{tool}`)",
                "a.yaml:14 spec.agent.mcp_servers[2].name: duplicate MCP server name `fs` \
                 (first at line 10)",
                "a.yaml:16 spec.agent.mcp_servers[3]: expected a mapping, found a string",
            ]
        );
    }

    #[test]
    fn a_realistic_teal_config_loads_with_warnings_for_unused_fields() {
        let text = r#"apiVersion: skagents/v1
kind: Chat
description: >
  A chatbot
service_name: ChatBot
version: 0.1
input_type: BaseInput
output_type: BaseOutput
metadata:
  description: Demo
  skills:
    - id: chat
spec:
  agent:
    name: default
    role: Default Agent
    model: gpt-4o
    system_prompt: >
      You are a helpful assistant.
    plugins:
      - DemoPlugin
    remote_plugins: []
    mcp_servers:
      - name: github
        url: https://api.githubcopilot.com/mcp/
        headers:
          Authorization: Bearer ${GITHUB_TOKEN}
        auth_server: https://github.com/login/oauth
        scopes: [repo]
        tools:
          allow: ["get_*"]
          include_resources: true
  integration_mode: standalone
"#;
        let p = ok(text);
        let a = &p.agents[0];
        assert_eq!(a.api_version, ApiVersion::SkAgentsV1);
        assert_eq!((a.name.as_str(), a.version.as_str()), ("ChatBot", "0.1"));
        assert_eq!(a.description.as_deref(), Some("A chatbot\n"));
        assert_eq!(a.agent.system_prompt, "You are a helpful assistant.\n");
        let gh = &a.agent.mcp_servers[0];
        assert_eq!(gh.headers["Authorization"].secret_names().collect::<Vec<_>>(), ["GITHUB_TOKEN"]);
        let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
        let w = |line: usize, path: &str| format!("a.yaml:{line} {path}: {IGNORED}");
        assert_eq!(
            warnings,
            [
                w(7, "input_type"),
                w(8, "output_type"),
                w(9, "metadata"),
                w(16, "spec.agent.role"),
                w(20, "spec.agent.plugins"),
                w(22, "spec.agent.remote_plugins"),
                w(28, "spec.agent.mcp_servers[0].auth_server"),
                w(29, "spec.agent.mcp_servers[0].scopes"),
                w(32, "spec.agent.mcp_servers[0].tools.include_resources"),
                w(33, "spec.integration_mode"),
            ]
        );
    }

    #[test]
    fn name_and_service_name_per_api_version() {
        let sk = with_agent("").replace("tealagents/v1alpha1", "skagents/v1");
        assert_eq!(ok(&sk).agents[0].name, "fs-assistant");
        let both = sk.replace("name: fs-assistant\n", "name: a\nservice_name: b\n");
        assert_eq!(errs(&both), ["a.yaml:4 service_name: give either name or service_name, not both"]);
        let neither = sk.replace("name: fs-assistant\n", "");
        assert_eq!(errs(&neither), ["a.yaml:1 service_name: missing required field"]);
        // In tealagents/v1alpha1, service_name is not a name: it is ignored, and name is missing.
        let teal = with_agent("").replace("name: fs-assistant", "service_name: fs");
        assert_eq!(errs(&teal), ["a.yaml:1 name: missing required field"]);
        let bad = with_agent("").replace("name: fs-assistant", "name: fs assistant");
        assert_eq!(
            errs(&bad),
            ["a.yaml:3 name: invalid name `fs assistant`: use only letters, digits, `.`, `_` and `-`"]
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = r#"apiVersion: tealagents/v1alpha1
kind: Chat
name: a
version: 1
spec:
  agent:
    model: &model gpt-4o
    system_prompt: &prompt Be brief.
    mcp_servers:
      - &fs
        name: fs
        url: http://fs/mcp
        timeout: 5
        headers: &auth
          Authorization: Bearer ${secret:T}
      - <<: *fs
        name: fs-2
        headers: *auth
---
apiVersion: tealagents/v1alpha1
kind: Chat
name: b
version: 1
spec:
  agent:
    model: gpt-4o
    system_prompt: x
"#;
        let p = ok(text);
        let [a, b] = p.agents.as_slice() else { panic!() };
        assert_eq!(a.agent.model, "gpt-4o");
        let [fs, fs2] = a.agent.mcp_servers.as_slice() else { panic!() };
        assert_eq!(fs2.name, "fs-2");
        assert_eq!(fs2.url, fs.url);
        assert_eq!(fs2.timeout, Duration::from_secs(5));
        assert_eq!(fs2.headers, fs.headers);
        assert_eq!(b.name, "b");
        // An aliased node's problems are reported where it is written (the anchor's line),
        // under each path that uses it.
        let text = with_agent("    mcp_servers:\n      - &s {name: s, url: /x}\n      - *s\n");
        assert_eq!(
            errs(&text),
            [
                "a.yaml:10 spec.agent.mcp_servers[0].url: relative URL without a base",
                "a.yaml:10 spec.agent.mcp_servers[1].name: duplicate MCP server name `s` \
                 (first at line 10)",
                "a.yaml:10 spec.agent.mcp_servers[1].url: relative URL without a base",
            ]
        );
        let text = with_agent("    mcp_servers:\n      - <<: 3\n        name: s\n        url: http://s\n");
        assert_eq!(
            errs(&text),
            ["a.yaml:10 spec.agent.mcp_servers[0].<<: expected a mapping to merge, found a number"]
        );
    }

    #[test]
    fn merge_chains_are_expanded_once() {
        let mut text = String::from("x0: &x0 {a: 1}\n");
        for i in 1..60 {
            text.push_str(&format!("x{i}: &x{i} {{<<: [*x{p}, *x{p}, *x{p}]}}\n", p = i - 1));
        }
        text.push_str("spec:\n  <<: *x59\n");
        // Finishes quickly; the only errors are the missing fields.
        let e = errs(&text);
        assert!(e.iter().any(|e| e == "a.yaml:61 spec.agent: missing required field"), "{e:?}");
    }

    #[test]
    fn multiple_documents_report_errors_with_their_own_lines() {
        let text = format!("{}---\n{}", with_agent(""), with_agent("").replace("gpt-4o-mini", "{}"));
        assert_eq!(errs(&text), ["a.yaml:16 spec.agent.model: expected a string, found a mapping"]);
        let text = format!("{}---\n{}---\n", with_agent(""), with_agent("").replace("fs-assistant", "b"));
        let p = ok(&text);
        assert_eq!(p.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["fs-assistant", "b"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let text = with_agent("    model: other\n");
        assert_eq!(errs(&text), ["a.yaml:9 spec.agent.model: duplicate key (first at line 7)"]);
    }

    #[test]
    fn syntax_errors_and_empty_files() {
        let e = parse_documents("a.yaml", "name: a\nspec: [1, 2\nkind: Chat\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e.0[0].line, Some(3));
        assert_eq!(e.0[0].path, "");
        assert!(e.to_string().starts_with("a.yaml:3: "), "{e}");
        assert_eq!(errs("# nothing here\n"), ["a.yaml: no agent document found (the file is empty)"]);
        assert_eq!(errs("---\n...\n"), ["a.yaml: no agent document found (the file is empty)"]);
        // A syntax error after a complete document: that document's own errors come too.
        let text = "kind: Chat\n---\na: [\n";
        let e = errs(text);
        assert_eq!(e[0], "a.yaml:1 apiVersion: missing required field");
        assert!(e.last().unwrap().starts_with("a.yaml:4: "), "{e:?}");
    }

    #[test]
    fn no_panics_on_odd_input() {
        for text in [
            "",
            "\t",
            ":",
            "- - -",
            "{",
            "}",
            "&a",
            "*a",
            "!!int x",
            "? [a]\n: b",
            "%YAML 1.2\n---\n",
            "apiVersion: !!binary aGk=\n",
            "spec: {agent: {mcp_servers: [{tools: {allow: [[]]}}]}}",
            "spec: {agent: {mcp_servers: [{headers: {[a]: b}}]}}",
            "\u{feff}a: 1",
            "a: \"\\xZZ\"",
            "version: 99999999999999999999999",
            "spec: {agent: {max_tokens: -99999999999999999999}}",
        ] {
            let _ = parse_documents("a.yaml", text);
        }
    }
}
