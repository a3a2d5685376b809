//! The invoke function's CloudWatch EMF lines, from the real binary under `cargo lambda watch`
//! (`scripts/local-invoke.sh`), checked against the EMF specification
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>)
//! and against what the run did.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{Stack, repo};

/// CloudWatch's `StandardUnit` values.
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One EMF document, checked against the specification; its dimensions and values.
#[derive(Debug)]
struct Doc {
    namespace: String,
    dimensions: BTreeMap<String, String>,
    /// name -> (unit, values)
    metrics: BTreeMap<String, (Option<String>, Vec<f64>)>,
    root: Value,
}

fn check_emf(line: &str) -> Doc {
    let root: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let aws = root["_aws"].as_object().unwrap_or_else(|| panic!("no _aws object: {line}"));
    let ts =
        aws["Timestamp"].as_u64().unwrap_or_else(|| panic!("Timestamp is not ms since the epoch: {line}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    assert!(now.abs_diff(u128::from(ts)) < 600_000, "Timestamp {ts} is not now ({now})");
    let directives =
        aws["CloudWatchMetrics"].as_array().unwrap_or_else(|| panic!("no CloudWatchMetrics: {line}"));
    assert_eq!(directives.len(), 1, "{line}");
    let d = &directives[0];
    let namespace = d["Namespace"].as_str().expect("Namespace").to_owned();
    assert!((1..=1024).contains(&namespace.len()));
    let mut dimensions = BTreeMap::new();
    for set in d["Dimensions"].as_array().expect("Dimensions") {
        let set = set.as_array().expect("a dimension set is an array");
        assert!(set.len() <= 30, "at most 30 dimensions: {line}");
        for name in set {
            let name = name.as_str().expect("a dimension name is a string");
            let value =
                root[name].as_str().unwrap_or_else(|| panic!("dimension {name} has no string value: {line}"));
            assert!(!value.is_empty() && value.len() <= 1024);
            dimensions.insert(name.to_owned(), value.to_owned());
        }
    }
    let mut metrics = BTreeMap::new();
    let defs = d["Metrics"].as_array().expect("Metrics");
    assert!(!defs.is_empty() && defs.len() <= 100, "{line}");
    for def in defs {
        let name = def["Name"].as_str().expect("Name");
        let unit = def.get("Unit").map(|u| u.as_str().expect("Unit is a string").to_owned());
        if let Some(u) = &unit {
            assert!(UNITS.contains(&u.as_str()), "{u} is not a CloudWatch unit");
        }
        let values = match &root[name] {
            Value::Number(n) => vec![n.as_f64().expect("number")],
            Value::Array(a) => {
                assert!(a.len() <= 100, "at most 100 values: {line}");
                a.iter().map(|v| v.as_f64().expect("values are numbers")).collect()
            }
            other => panic!("metric {name} has no numeric value ({other}): {line}"),
        };
        metrics.insert(name.to_owned(), (unit, values));
    }
    Doc { namespace, dimensions, metrics, root }
}

/// The docs holding `metric`.
fn with<'a>(docs: &'a [Doc], metric: &str) -> Vec<&'a Doc> {
    docs.iter().filter(|d| d.metrics.contains_key(metric)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_function_writes_emf_lines_that_follow_the_spec_and_hold_the_run() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("function.log");
    let out = Command::new(repo().join("scripts/local-invoke.sh"))
        .args(["invoke", "invoke"])
        .current_dir(repo())
        .envs(&stack.env)
        .env("RUST_LOG", "warn")
        // The first invocation waits for the watcher's own build (the target dir may be busy).
        .env("LOCAL_INVOKE_TIMEOUT", "120")
        .env("LOCAL_INVOKE_TIMES", "2")
        .env("LOCAL_INVOKE_LOG", &log)
        .kill_on_drop(true)
        .output()
        .await
        .expect("scripts/local-invoke.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&log).expect("the function's log");
    let docs: Vec<Doc> = text.lines().filter(|l| l.starts_with("{\"_aws\"")).map(check_emf).collect();
    assert!(!docs.is_empty(), "no EMF line in:\n{text}");

    // The first invocation: the one that counted the cold start.
    let cold = with(&docs, "teal_cold_starts");
    assert_eq!(cold.len(), 1, "one cold start for two invocations");
    let first = cold[0].root["request_id"].as_str().expect("the request id is a property").to_owned();
    let docs: Vec<Doc> = docs.into_iter().filter(|d| d.root["request_id"] == first.as_str()).collect();
    for d in &docs {
        assert_eq!(d.namespace, "TealServerless");
        assert_eq!(d.dimensions["function"], "teal-invoke", "{:?}", d.root);
        for forbidden in ["request_id", "session_id", "caller"] {
            assert!(!d.dimensions.contains_key(forbidden), "{forbidden} is never a dimension");
        }
    }
    let value = |metric: &str, dims: &[(&str, &str)]| -> (Option<String>, Vec<f64>) {
        let found: Vec<&Doc> = with(&docs, metric)
            .into_iter()
            .filter(|d| dims.iter().all(|(k, v)| d.dimensions.get(*k).map(String::as_str) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "{metric} {dims:?} in {docs:#?}");
        found[0].metrics[metric].clone()
    };
    let agent = [("agent", "fs-assistant"), ("version", "0.1")];
    let requests = value("teal_requests", &[agent[0], agent[1], ("status", "2xx")]);
    assert_eq!(requests, (Some("Count".into()), vec![1.0]));
    let duration = value("teal_request_duration", &agent);
    assert_eq!((duration.0.as_deref(), duration.1.len()), (Some("Seconds"), 1));
    let llm_time = value("teal_request_llm_duration", &agent).1[0];
    assert!(llm_time > 0.0 && llm_time <= duration.1[0], "LLM time within the request's");
    let model = [("model", "gpt-4o-mini")];
    assert_eq!(value("teal_llm_calls", &[model[0], ("status", "ok")]).1, [2.0]);
    assert_eq!(value("teal_llm_input_tokens", &model).1, [20.0], "10 prompt tokens per call");
    assert_eq!(value("teal_llm_output_tokens", &model).1, [4.0]);
    assert_eq!(value("teal_llm_duration", &model).1.len(), 2);
    let tool = [("server", "fs"), ("tool", "fs_read_file")];
    assert_eq!(value("teal_tool_calls", &[tool[0], tool[1], ("status", "ok")]).1, [1.0]);
    assert_eq!(value("teal_tool_duration", &tool).1.len(), 1);
    assert_eq!(value("teal_sessions_written", &agent).1, [1.0]);
    let cold = value("teal_cold_starts", &[]);
    assert_eq!(cold, (Some("Count".into()), vec![1.0]));
    let init = value("teal_init_duration", &[]);
    assert!(init.0.as_deref() == Some("Seconds") && init.1[0] > 0.0 && init.1[0] < 30.0, "{init:?}");
    let rss = value("teal_max_rss", &[]);
    assert!(rss.0.as_deref() == Some("Bytes") && rss.1[0] > 1_048_576.0, "{rss:?}");
}
