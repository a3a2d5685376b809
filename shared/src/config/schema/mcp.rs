//! `mcp_servers[i]`: one MCP server an agent reaches over streamable HTTP.
//!
//! Refuses what a Lambda cannot do (stdio, SSE, WebSocket transports) and what we do not do yet
//! with the way forward (per-user headers, disabling TLS verification), so a Teal config never
//! loses its safety silently. Teal's OAuth fields (`auth_server` + `scopes`, `oauth_client_id`,
//! `oauth_client_secret`, `canonical_uri`) are read into [`McpOAuth`], with our `oauth_grant`. Tools that
//! `tool_governance_overrides` marks `requires_hitl: true`, and every tool of a server whose
//! `trust_level` makes Teal ask a human, pause the run for approval (`tealagents/v1alpha1`
//! agents; other agents never offer them).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use globset::GlobSet;

use crate::config::reader::{Ctx, Field, Fields};
use crate::config::template::{expand_vars, is_header_name};
use crate::config::types::{HeaderTemplate, McpOAuth, McpServerConfig, McpTransport, OAuthGrant, ToolFilter};

pub(super) const STDIO_REFUSED: &str = "stdio MCP servers cannot run in AWS Lambda; run the server \
     on ECS Fargate and give its streamable HTTP url";
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// A call cannot outlive the Lambda invocation that makes it.
const MAX_TIMEOUT_SECS: f64 = 900.0;

/// One entry of `mcp_servers`; `seen` holds the names (and lines) of the servers before it.
pub(super) fn mcp_server(
    cx: &mut Ctx,
    mut f: Fields<'_>,
    seen: &mut Vec<(String, usize)>,
    vars: &HashMap<String, String>,
) -> Option<McpServerConfig> {
    let name = f.req(cx, "name").and_then(|n| server_name(cx, &n, seen));
    refuse_unsupported(cx, &mut f);
    let oauth = oauth(cx, &mut f, vars);
    // Refused transports first: a stdio server has no url to complain about.
    let stdio = refuse_stdio(cx, &mut f);
    let url = if stdio {
        // Not checked: the refusal is the stdio server's one error.
        f.take("url");
        None
    } else {
        f.req(cx, "url").and_then(|u| server_url(cx, &u, vars))
    };
    let headers =
        f.opt("headers").and_then(|h| h.map(cx)).map(|h| headers(cx, h, matches!(oauth, Some(Some(_)))));
    let timeout = call_timeout(cx, &mut f);
    let prefix_tools = match f.opt("tool_names") {
        None => Some(true),
        Some(t) => match t.string(cx).as_deref() {
            Some("prefixed") => Some(true),
            Some("as-served") => Some(false),
            Some(other) => {
                t.error(cx, format!("unknown tool_names `{other}`: expected prefixed or as-served"));
                None
            }
            None => None,
        },
    };
    let held = held_tools(cx, &mut f);
    let tools = tool_filter(cx, f.opt("tools"), held.as_deref().unwrap_or_default());
    held.as_ref()?;
    f.finish(cx);

    Some(McpServerConfig {
        name: name?,
        url: url?,
        transport: McpTransport::StreamableHttp,
        headers: headers.unwrap_or_default(),
        timeout: timeout?,
        tools: tools?,
        prefix_tools: prefix_tools?,
        oauth: oauth?,
    })
}

/// Teal fields we do not implement and that change what the server is allowed or how it is
/// reached: each is an error naming the way forward. Fields that change nothing here are
/// taken without a word (`sse_read_timeout`: calls are bounded by `timeout`; `verify_ssl:
/// true`; `protocol_version`, negotiated by the client; `enable_metadata_discovery` and
/// `metadata_cache_ttl`, which only matter with OAuth).
fn refuse_unsupported(cx: &mut Ctx, f: &mut Fields<'_>) {
    if let Some(field) = f.opt("enable_dynamic_registration")
        && field.bool(cx) == Some(true)
        && !f.has("oauth_client_id")
    {
        field.warn(
            cx,
            "dynamic client registration is not done here: the client id is TA_OAUTH_CLIENT_NAME \
             unless `oauth_client_id` gives one",
        );
    }
    for key in ["user_id_header", "user_id_source", "user_id_env_var"] {
        if let Some(field) = f.opt(key) {
            field.error_at_key(
                cx,
                "per-user MCP headers are not supported yet: a Lambda's MCP connections are shared                  by every caller; put a fixed value in `headers` or remove this field",
            );
        }
    }
    if let Some(v) = f.opt("verify_ssl")
        && v.bool(cx) == Some(false)
    {
        v.error(
            cx,
            "TLS verification cannot be turned off: give the server a certificate from a trusted              CA (or a private CA the container trusts), or use http:// inside the VPC",
        );
    }
    for key in ["sse_read_timeout", "protocol_version", "enable_metadata_discovery", "metadata_cache_ttl"] {
        f.take(key);
    }
}

/// Teal's `auth_server` + `scopes` (both or neither), `oauth_client_id`, `oauth_client_secret`
/// (a `${secret:NAME}` template), `canonical_uri`, and `oauth_grant` (`authorization_code`, per
/// user, Teal's flow and the default; or `client_credentials`, the platform's own token).
/// `Some(None)`: no OAuth; `None`: an error was reported.
fn oauth(cx: &mut Ctx, f: &mut Fields<'_>, vars: &HashMap<String, String>) -> Option<Option<McpOAuth>> {
    let auth_server = f.opt("auth_server").filter(|a| !a.is_empty_collection());
    let scopes = f.opt("scopes").filter(|s| !s.is_empty_collection());
    let (client_id, client_secret) = (f.opt("oauth_client_id"), f.opt("oauth_client_secret"));
    let (canonical, grant) = (f.opt("canonical_uri"), f.opt("oauth_grant"));
    let (auth_server, scopes) = match (auth_server, scopes) {
        (None, None) => {
            for field in [client_id, client_secret, canonical, grant].into_iter().flatten() {
                field.error_at_key(cx, "only used with OAuth: give `auth_server` and `scopes` too");
            }
            return Some(None);
        }
        (Some(a), None) => {
            a.error_at_key(cx, "`auth_server` needs `scopes` (Teal requires both for OAuth)");
            return None;
        }
        (None, Some(s)) => {
            s.error_at_key(cx, "`scopes` needs `auth_server` (Teal requires both for OAuth)");
            return None;
        }
        (Some(a), Some(s)) => (a, s),
    };
    let server = server_url(cx, &auth_server, vars);
    let scopes = scope_list(cx, &scopes);
    let grant = match grant.map(|g| (g.string(cx), g)) {
        None => Some(OAuthGrant::AuthorizationCode),
        Some((Some(g), _)) if g == "authorization_code" => Some(OAuthGrant::AuthorizationCode),
        Some((Some(g), _)) if g == "client_credentials" => Some(OAuthGrant::ClientCredentials),
        Some((Some(g), field)) => {
            field.error(
                cx,
                format!("unknown oauth_grant `{g}`: expected authorization_code or client_credentials"),
            );
            None
        }
        Some((None, _)) => None,
    };
    let client_id = match client_id {
        None => Some(None),
        Some(c) => match c.non_empty_string(cx).map(|id| expand_vars(&id, |n| vars.get(n).cloned())) {
            Some(Ok(id)) => Some(Some(id)),
            Some(Err(msg)) => {
                c.error(cx, msg);
                None
            }
            None => None,
        },
    };
    let client_secret = match client_secret {
        None => Some(None),
        Some(field) => {
            let written = field.written(cx)?;
            match HeaderTemplate::parse(&written) {
                Ok(t) if t.secret_names().next().is_none() => {
                    field.warn(cx, "a client secret written in the config: give it as ${secret:NAME} (read from Secrets Manager)");
                    Some(Some(t))
                }
                Ok(t) => Some(Some(t)),
                Err(msg) => {
                    field.error(cx, msg);
                    None
                }
            }
        }
    };
    if grant == Some(OAuthGrant::ClientCredentials) && matches!(client_secret, Some(None)) {
        auth_server.error_at_key(cx, "oauth_grant: client_credentials needs `oauth_client_secret`");
        return None;
    }
    let resource = match canonical {
        None => Some(None),
        Some(c) => server_url(cx, &c, vars).map(Some),
    };
    Some(Some(McpOAuth {
        auth_server: server?,
        scopes: scopes?,
        grant: grant?,
        client_id: client_id?,
        client_secret: client_secret?,
        resource: resource?,
    }))
}

/// `scopes`: a list of non-empty strings without spaces (Teal also takes one string).
fn scope_list(cx: &mut Ctx, field: &Field<'_>) -> Option<Vec<String>> {
    let written: Vec<String> = if field.is_string() {
        field.string(cx)?.split_whitespace().map(str::to_owned).collect()
    } else {
        let mut out = Vec::new();
        for item in field.items(cx)? {
            let scope = item.non_empty_string(cx)?;
            if scope.contains(char::is_whitespace) {
                item.error(cx, "a scope has no spaces: give each as its own list item");
                return None;
            }
            out.push(scope);
        }
        out
    };
    if written.is_empty() {
        field.error(cx, "give at least one scope");
        return None;
    }
    Some(written)
}

/// `timeout` (HTTP) and Teal's `request_timeout` (per MCP operation): a call is bounded by the
/// smaller of the two; [`DEFAULT_TIMEOUT_SECS`] when neither is given.
fn call_timeout(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Duration> {
    let http = f.opt("timeout").map(|t| timeout(cx, &t));
    let op = f.opt("request_timeout").map(|t| timeout(cx, &t));
    match (http, op) {
        (Some(None), _) | (_, Some(None)) => None,
        (Some(Some(a)), Some(Some(b))) => Some(a.min(b)),
        (Some(Some(a)), None) | (None, Some(Some(a))) => Some(a),
        (None, None) => Some(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS)),
    }
}

/// The tools a human must approve before they run: `tool_governance_overrides.{tool}
/// .requires_hitl: true`, or every tool when `trust_level` is `untrusted` or `sandboxed`
/// (Teal forces approval for those). Each call pauses the run (with a warning at load).
fn held_tools(cx: &mut Ctx, f: &mut Fields<'_>) -> Option<Vec<String>> {
    let mut held = Vec::new();
    if let Some(trust) = f.opt("trust_level") {
        match trust.string(cx)?.as_str() {
            "trusted" => {}
            level @ ("untrusted" | "sandboxed") => {
                trust.error(
                    cx,
                    format!(
                        "trust_level `{level}` makes every tool of this server wait for human                          approval, which is not available yet; use `trusted` and restrict the                          tools with `tools.allow` / `tools.deny`"
                    ),
                );
                return None;
            }
            other => {
                trust.error(
                    cx,
                    format!("unknown trust_level `{other}`: expected trusted, sandboxed or untrusted"),
                );
                return None;
            }
        }
    }
    let Some(overrides) = f.opt("tool_governance_overrides") else {
        return Some(held);
    };
    let mut tools = overrides.map(cx)?;
    for tool in tools.rest() {
        let mut gov = tool.map(cx)?;
        if let Some(hitl) = gov.opt("requires_hitl")
            && hitl.bool(cx)?
        {
            hitl.warn(
                cx,
                format!(
                    "tool `{}` requires human approval: on a tealagents/v1alpha1 agent each call                      pauses the run until someone approves or rejects it; other agents never                      offer it",
                    tool.key()
                ),
            );
            held.push(tool.key().to_owned());
        }
        // Cost and data sensitivity are labels for catalogs: nothing here acts on them.
        gov.take("cost");
        gov.take("data_sensitivity");
        gov.finish(cx);
    }
    tools.finish(cx);
    Some(held)
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

/// Seconds, more than 0 and at most the Lambda time limit.
fn timeout(cx: &mut Ctx, t: &Field<'_>) -> Option<Duration> {
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
/// `held` tools are never permitted.
fn tool_filter(cx: &mut Ctx, t: Option<Field<'_>>, held: &[String]) -> Option<ToolFilter> {
    let held = held.to_vec();
    let Some(mut t) = t.and_then(|t| t.map(cx)) else {
        return Some(ToolFilter { held, ..ToolFilter::default() });
    };
    let allow = t.opt("allow").map(|a| a.globs(cx));
    let deny = t.opt("deny").map(|d| d.globs(cx));
    t.finish(cx);
    match (allow, deny) {
        (Some(None), _) | (_, Some(None)) => None,
        (allow, deny) => Some(ToolFilter {
            allow: allow.flatten(),
            deny: deny.flatten().unwrap_or_else(GlobSet::empty),
            held,
        }),
    }
}

/// Header names are HTTP tokens, unique ignoring case; values are [`HeaderTemplate`]s. With
/// OAuth, `Authorization` is the token's: a configured one is refused, never silently dropped.
fn headers(cx: &mut Ctx, mut f: Fields<'_>, oauth: bool) -> BTreeMap<String, HeaderTemplate> {
    let mut out: BTreeMap<String, HeaderTemplate> = BTreeMap::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for h in f.rest() {
        let key = h.key().to_owned();
        if !is_header_name(&key) {
            h.error_at_key(cx, format!("invalid header name `{key}`: use only HTTP token characters"));
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if oauth && lower == "authorization" {
            h.error_at_key(
                cx,
                "with OAuth (`auth_server`) the Authorization header is the token's: remove it",
            );
            continue;
        }
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
