//! What the metrics and spans of one invoke cost, measured on their own: the calls a run with one
//! tool call makes (a request, its run times, two LLM calls, one tool call, the cache outcome, a
//! session write), then the exporter's per-invocation work (EMF: the flush; Prometheus: nothing
//! until a scrape), and the run's three GenAI spans through a JSON subscriber.
//!
//!   cargo run --release -p teal-core --example telemetry_overhead -- MODE [INVOKES]
//!
//! MODE: `off` (no recorder, no subscriber: the facade's no-ops), `emf`, `prometheus` (needs
//! `--features prometheus`), `spans` (JSON logs to a sink, no metrics recorder). One process per
//! mode: a process has one recorder. Prints nanoseconds per invoke.

use std::io::Write;
use std::time::{Duration, Instant};

use teal_core::llm::Usage;
use teal_core::telemetry::metrics;
use tracing::Instrument;

fn one_invoke() {
    let usage = Usage { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 };
    metrics::llm_call("gpt-4o-mini", Some(usage), Duration::from_millis(3));
    metrics::tool_call(Some("fs"), "fs_read_file", false, Duration::from_micros(400));
    metrics::llm_call("gpt-4o-mini", Some(usage), Duration::from_millis(3));
    metrics::run_times("fs-assistant", "0.1", Duration::from_millis(6), Duration::from_micros(400));
    metrics::session_written("fs-assistant", "0.1");
    metrics::cache("fs-assistant", "0.1", "miss");
    metrics::request(Some(("fs-assistant", "0.1")), 200, Duration::from_millis(7));
}

async fn spans() {
    let run = tracing::info_span!(
        "invoke_agent",
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.agent.name" = "fs-assistant",
        "enduser.id" = "anonymous",
    );
    async {
        for _ in 0..2 {
            let chat = tracing::info_span!(
                "chat",
                "gen_ai.request.model" = "gpt-4o-mini",
                "gen_ai.usage.input_tokens" = tracing::field::Empty,
            );
            async {}.instrument(chat.clone()).await;
            chat.record("gen_ai.usage.input_tokens", 10);
        }
        let tool = tracing::info_span!("execute_tool", "gen_ai.tool.name" = "fs_read_file");
        async { tracing::info!(tool = "fs_read_file", ms = 0, "tool call") }.instrument(tool).await;
    }
    .instrument(run)
    .await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("off", String::as_str);
    let invokes: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut emf = None;
    match mode {
        "off" => {}
        "emf" => emf = Some(teal_core::telemetry::emf::builder("bench").init().expect("recorder")),
        #[cfg(feature = "prometheus")]
        "prometheus" => {
            teal_core::telemetry::prometheus::install().expect("recorder");
        }
        "spans" => tracing_subscriber::fmt().json().with_span_list(true).with_writer(std::io::sink).init(),
        other => panic!("unknown mode {other} (off, emf, prometheus, spans)"),
    }
    let spans_on = mode == "spans";
    let mut timed = Duration::ZERO;
    for i in 0..(invokes + 1000) {
        let started = Instant::now();
        if spans_on {
            spans().await;
        } else {
            one_invoke();
        }
        if let Some(c) = emf {
            c.flush(std::io::sink()).expect("flush");
        }
        if i >= 1000 {
            timed += started.elapsed();
        }
    }
    let ns = timed.as_nanos() as f64 / f64::from(invokes);
    let _ = writeln!(std::io::stdout(), "{mode}: {ns:.0} ns per invoke ({invokes} invokes)");
}
