//! CloudWatch Embedded Metric Format (EMF) lines for store degradations.
//!
//! A metric is one JSON object with an `_aws` block, written as one log line; CloudWatch turns it
//! into a metric when the whole log event is that object. Lines go through `tracing` with
//! target [`EMF_TARGET`] and the JSON as the message, so the telemetry layer decides where they
//! are written (raw on stdout in Lambda). This module must not count or aggregate.

/// The `tracing` target of EMF events: a subscriber writes their `message` verbatim.
pub const EMF_TARGET: &str = "emf";

/// The CloudWatch namespace of store metrics.
pub const NAMESPACE: &str = "TealServerless";

/// One EMF line: `metrics` (name, value; unit `Count`) with `dimensions` (name, value) at
/// `timestamp_ms`.
pub fn emf_line(
    namespace: &str,
    metrics: &[(&str, f64)],
    dimensions: &[(&str, &str)],
    timestamp_ms: u64,
) -> String {
    let counts: Vec<(&str, f64, &str)> = metrics.iter().map(|(name, v)| (*name, *v, "Count")).collect();
    emf_line_with_units(namespace, &counts, dimensions, timestamp_ms)
}

/// [`emf_line`] with a unit per metric (`Count`, `Bytes`, `Milliseconds`, …).
pub fn emf_line_with_units(
    namespace: &str,
    metrics: &[(&str, f64, &str)],
    dimensions: &[(&str, &str)],
    timestamp_ms: u64,
) -> String {
    let mut root = serde_json::Map::new();
    let dim_names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let defs: Vec<serde_json::Value> =
        metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect();
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [dim_names], "Metrics": defs}],
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), serde_json::Value::from(*v));
    }
    for (k, v, _) in metrics {
        root.insert((*k).into(), serde_json::json!(v));
    }
    serde_json::Value::Object(root).to_string()
}

/// Emits `RedisBypass = 1` for `operation` (e.g. `cache_get`): a Redis call failed or timed out
/// and the caller went on without it.
pub fn redis_bypass(operation: &'static str) {
    let line =
        emf_line(NAMESPACE, &[("RedisBypass", 1.0)], &[("Operation", operation)], crate::util::unix_ms());
    tracing::info!(target: EMF_TARGET, "{line}");
}

/// Emits `RedisUnavailable = 1` for `operation`: a Redis call failed and the caller got an error
/// (sessions).
pub fn redis_unavailable(operation: &'static str) {
    let line = emf_line(
        NAMESPACE,
        &[("RedisUnavailable", 1.0)],
        &[("Operation", operation)],
        crate::util::unix_ms(),
    );
    tracing::info!(target: EMF_TARGET, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_follow_the_specification() {
        let line = emf_line("Ns", &[("RedisBypass", 1.0)], &[("Operation", "cache_get")], 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Ns",
                        "Dimensions": [["Operation"]],
                        "Metrics": [{"Name": "RedisBypass", "Unit": "Count"}],
                    }],
                },
                "Operation": "cache_get",
                "RedisBypass": 1.0,
            })
        );
        assert!(!line.contains('\n'), "one line");
    }
}
