//! Every metric the service records, through the `metrics` facade: the one place that names
//! them, gives them units and chooses their labels.
//!
//! The process installs one exporter: CloudWatch EMF in Lambda ([`super::emf`], flushed after
//! each invocation) or Prometheus text under `teal serve` (`super::prometheus`); without one
//! (tests, CLI commands) every call here is a no-op. Labels are bounded on purpose, so a
//! dashboard can slice by them without a cardinality explosion: agent and version (from the
//! registry, or `-`), model (from the configs), MCP server and tool (configured servers, tools
//! they listed; `-` for a tool name the model made up), status class, operation. Never a
//! session, request or caller id: those are in the log lines and EMF properties.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::llm::Usage;

/// CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "TealServerless";

pub const REQUESTS: &str = "teal_requests";
pub const REQUEST_DURATION: &str = "teal_request_duration";
pub const REQUEST_LLM_DURATION: &str = "teal_request_llm_duration";
pub const REQUEST_TOOL_DURATION: &str = "teal_request_tool_duration";
pub const LLM_CALLS: &str = "teal_llm_calls";
pub const LLM_RETRIES: &str = "teal_llm_retries";
pub const LLM_INPUT_TOKENS: &str = "teal_llm_input_tokens";
pub const LLM_OUTPUT_TOKENS: &str = "teal_llm_output_tokens";
pub const LLM_DURATION: &str = "teal_llm_duration";
pub const TOOL_CALLS: &str = "teal_tool_calls";
pub const TOOL_DURATION: &str = "teal_tool_duration";
pub const TOOL_CALLS_DENIED: &str = "teal_tool_calls_denied";
pub const MCP_CONNECTION_FAILURES: &str = "teal_mcp_connection_failures";
pub const MCP_RECONNECTS: &str = "teal_mcp_reconnects";
pub const MCP_CATALOG_LOOKUPS: &str = "teal_mcp_catalog_lookups";
pub const MCP_SERVER_UP: &str = "teal_mcp_server_up";
pub const MCP_PROBE_DURATION: &str = "teal_mcp_probe_duration";
pub const CACHE_REQUESTS: &str = "teal_cache_requests";
pub const SESSIONS_WRITTEN: &str = "teal_sessions_written";
pub const RATE_LIMITED: &str = "teal_rate_limited";
pub const REDIS_BYPASS: &str = "teal_redis_bypass";
pub const REDIS_UNAVAILABLE: &str = "teal_redis_unavailable";
pub const COLD_STARTS: &str = "teal_cold_starts";
pub const INIT_DURATION: &str = "teal_init_duration";
pub const MAX_RSS: &str = "teal_max_rss";
pub const BACKUP_OBJECTS: &str = "teal_backup_objects";
pub const BACKUP_BYTES: &str = "teal_backup_bytes";
pub const BACKUP_KEYS: &str = "teal_backup_keys";
pub const BACKUP_DURATION: &str = "teal_backup_duration";
pub const BACKUP_FAILURES: &str = "teal_backup_failures";

/// The label value for "none" (a route without an agent, a tool nobody serves).
pub const NONE: &str = "-";

/// Units and descriptions, given to the recorder once when it is installed.
pub fn describe() {
    let counters: [(&str, Unit, &str); 18] = [
        (REQUESTS, Unit::Count, "HTTP requests by agent, version and status class (2xx, 4xx, 5xx)"),
        (LLM_CALLS, Unit::Count, "LLM calls by model and outcome (ok, error)"),
        (LLM_RETRIES, Unit::Count, "LLM attempts retried (429, 5xx, connection errors, timeouts)"),
        (LLM_INPUT_TOKENS, Unit::Count, "prompt tokens by model"),
        (LLM_OUTPUT_TOKENS, Unit::Count, "completion tokens by model"),
        (TOOL_CALLS, Unit::Count, "tool calls by server, tool and outcome (ok, error)"),
        (TOOL_CALLS_DENIED, Unit::Count, "tool calls a policy denied, by agent, tool and policy id"),
        (MCP_CONNECTION_FAILURES, Unit::Count, "MCP connections that could not be set up"),
        (MCP_RECONNECTS, Unit::Count, "MCP clients set up again after the first one"),
        (MCP_CATALOG_LOOKUPS, Unit::Count, "shared tool-catalog lookups by result (hit, stale, miss)"),
        (CACHE_REQUESTS, Unit::Count, "response-cache outcomes by result (hit, miss, bypass)"),
        (SESSIONS_WRITTEN, Unit::Count, "conversation turns written to the session store"),
        (RATE_LIMITED, Unit::Count, "requests refused by the rate limit"),
        (REDIS_BYPASS, Unit::Count, "Redis calls that failed and were gone around"),
        (REDIS_UNAVAILABLE, Unit::Count, "Redis calls that failed the request"),
        (COLD_STARTS, Unit::Count, "Lambda cold starts"),
        (BACKUP_FAILURES, Unit::Count, "backup runs that failed"),
        (BACKUP_OBJECTS, Unit::Count, "objects a backup wrote"),
    ];
    for (name, unit, text) in counters {
        describe_counter!(name, unit, text);
    }
    describe_counter!(BACKUP_BYTES, Unit::Bytes, "bytes a backup wrote");
    describe_counter!(BACKUP_KEYS, Unit::Count, "Redis keys a backup exported");
    let histograms = [
        (REQUEST_DURATION, "time to answer a request (to the first byte for streams)"),
        (REQUEST_LLM_DURATION, "time a run spent waiting for the LLM"),
        (REQUEST_TOOL_DURATION, "time a run's tool calls took, added up"),
        (LLM_DURATION, "one LLM call, retries included"),
        (TOOL_DURATION, "one tool call"),
        (MCP_PROBE_DURATION, "listing a server's tools, as the probe does"),
        (INIT_DURATION, "process start to ready (cold start)"),
        (BACKUP_DURATION, "one backup run"),
    ];
    for (name, text) in histograms {
        describe_histogram!(name, Unit::Seconds, text);
    }
    describe_gauge!(
        MCP_SERVER_UP,
        Unit::Count,
        "1 when the MCP server listed its tools at the last probe, else 0"
    );
    describe_gauge!(MAX_RSS, Unit::Bytes, "peak resident memory of the process (VmHWM)");
}

/// `2xx`, `4xx`, `5xx` …
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

fn ok_or_error(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// One HTTP request finished: `agent` is `(name, version)` of a registered agent.
pub fn request(agent: Option<(&str, &str)>, status: u16, elapsed: Duration) {
    let (name, version) = agent.unwrap_or((NONE, NONE));
    let (name, version) = (name.to_owned(), version.to_owned());
    counter!(REQUESTS, "agent" => name.clone(), "version" => version.clone(), "status" => status_class(status))
        .increment(1);
    histogram!(REQUEST_DURATION, "agent" => name, "version" => version).record(elapsed.as_secs_f64());
}

/// Where one run's time went: waiting for the LLM, and in tool calls (added up).
pub fn run_times(agent: &str, version: &str, llm: Duration, tools: Duration) {
    let (name, version) = (agent.to_owned(), version.to_owned());
    histogram!(REQUEST_LLM_DURATION, "agent" => name.clone(), "version" => version.clone())
        .record(llm.as_secs_f64());
    histogram!(REQUEST_TOOL_DURATION, "agent" => name, "version" => version).record(tools.as_secs_f64());
}

/// One LLM call (retries included) to `model`; `usage` when it answered.
pub fn llm_call(model: &str, usage: Option<Usage>, elapsed: Duration) {
    let model = model.to_owned();
    counter!(LLM_CALLS, "model" => model.clone(), "status" => ok_or_error(usage.is_some())).increment(1);
    histogram!(LLM_DURATION, "model" => model.clone()).record(elapsed.as_secs_f64());
    if let Some(u) = usage {
        counter!(LLM_INPUT_TOKENS, "model" => model.clone()).increment(u.prompt_tokens);
        counter!(LLM_OUTPUT_TOKENS, "model" => model).increment(u.completion_tokens);
    }
}

/// An LLM attempt failed and is retried.
pub fn llm_retry(model: &str) {
    counter!(LLM_RETRIES, "model" => model.to_owned()).increment(1);
}

/// One tool call: `server` is the MCP server or remote plugin (`None`: a tool nobody serves).
pub fn tool_call(server: Option<&str>, tool: &str, is_error: bool, elapsed: Duration) {
    let (server, tool) = match server {
        Some(s) => (s.to_owned(), tool.to_owned()),
        None => (NONE.to_owned(), NONE.to_owned()),
    };
    counter!(TOOL_CALLS, "server" => server.clone(), "tool" => tool.clone(), "status" => ok_or_error(!is_error))
        .increment(1);
    histogram!(TOOL_DURATION, "server" => server, "tool" => tool).record(elapsed.as_secs_f64());
}

/// A policy denied a tool call. Policy ids come from the loaded policy files (bounded).
pub fn tool_call_denied(agent: &str, tool: &str, policy: &str) {
    counter!(TOOL_CALLS_DENIED, "agent" => agent.to_owned(), "tool" => tool.to_owned(), "policy" => policy.to_owned())
        .increment(1);
}

pub fn mcp_connection_failure(server: &str) {
    counter!(MCP_CONNECTION_FAILURES, "server" => server.to_owned()).increment(1);
}

pub fn mcp_reconnect(server: &str) {
    counter!(MCP_RECONNECTS, "server" => server.to_owned()).increment(1);
}

/// A shared tool-catalog lookup: `hit`, `stale` (used, refreshed behind) or `miss`.
pub fn catalog_lookup(server: &str, result: &'static str) {
    counter!(MCP_CATALOG_LOOKUPS, "server" => server.to_owned(), "result" => result).increment(1);
}

/// The probe's verdict on one MCP server.
pub fn mcp_probe(server: &str, up: bool, elapsed: Duration) {
    gauge!(MCP_SERVER_UP, "server" => server.to_owned()).set(if up { 1.0 } else { 0.0 });
    histogram!(MCP_PROBE_DURATION, "server" => server.to_owned()).record(elapsed.as_secs_f64());
}

/// How the response cache treated a request: `hit`, `miss` or `bypass`.
pub fn cache(agent: &str, version: &str, result: &'static str) {
    counter!(CACHE_REQUESTS, "agent" => agent.to_owned(), "version" => version.to_owned(), "result" => result)
        .increment(1);
}

pub fn session_written(agent: &str, version: &str) {
    counter!(SESSIONS_WRITTEN, "agent" => agent.to_owned(), "version" => version.to_owned()).increment(1);
}

pub fn rate_limited(agent: &str, version: &str) {
    counter!(RATE_LIMITED, "agent" => agent.to_owned(), "version" => version.to_owned()).increment(1);
}

/// A Redis call failed or timed out and the caller went on without it (`operation`: `cache_get` …).
pub fn redis_bypass(operation: &'static str) {
    counter!(REDIS_BYPASS, "operation" => operation).increment(1);
}

/// A Redis call failed and the caller got an error (sessions).
pub fn redis_unavailable(operation: &'static str) {
    counter!(REDIS_UNAVAILABLE, "operation" => operation).increment(1);
}

/// Process start to ready.
pub fn init_duration(elapsed: Duration) {
    histogram!(INIT_DURATION).record(elapsed.as_secs_f64());
}

/// The process's peak resident memory now (Linux `VmHWM`; nothing elsewhere).
pub fn max_rss() {
    if let Some(bytes) = peak_rss_bytes() {
        gauge!(MAX_RSS).set(bytes as f64);
    }
}

/// `VmHWM` of `/proc/self/status`, in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// One backup run's totals.
pub fn backup(objects: u64, bytes: u64, keys: u64, elapsed: Duration, failures: u64) {
    counter!(BACKUP_OBJECTS).increment(objects);
    counter!(BACKUP_BYTES).increment(bytes);
    counter!(BACKUP_KEYS).increment(keys);
    histogram!(BACKUP_DURATION).record(elapsed.as_secs_f64());
    counter!(BACKUP_FAILURES).increment(failures);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_peak_memory() {
        assert_eq!([200, 404, 429, 502, 504].map(status_class), ["2xx", "4xx", "4xx", "5xx", "5xx"]);
        let rss = peak_rss_bytes().expect("Linux /proc/self/status");
        assert!(rss > 1 << 20, "a test process holds more than 1 MiB: {rss}");
    }
}
