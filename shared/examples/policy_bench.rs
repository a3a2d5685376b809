//! Cost of one tool-policy decision (`call_tool`, arguments included), as the agent loop pays
//! it before every tool call, with 10 and with 1,000 policies.
//!
//! `cargo run --release -p teal-core --example policy_bench [-- N]` (N decisions per case after
//! 1,000 warm-up ones; default 20,000).
//!
//! Cases: the shipped example policies (5); `scoped`: one `permit` plus per-caller policies
//! (`principal == Caller::"user-i"`, a tool each), the shape of generated per-tenant rules,
//! which the decision slices down to the caller's own; `unscoped`: every policy a `when`
//! condition on the tool and its arguments, all evaluated on every call (the worst case).

use std::time::{Duration, Instant};

use serde_json::json;
use teal_core::governance::{Decision, Policies, PolicyFile, ToolRequest};

const SCHEMA: &str = "type Arguments = { owner?: String, repo?: String, path?: String };";

fn compile(n: usize, scoped: bool) -> Policies {
    let mut text = String::from("@id(\"base\")\npermit(principal, action, resource);\n");
    for i in 0..n - 1 {
        if scoped {
            text.push_str(&format!(
                "@id(\"p{i}\")\nforbid(principal == Caller::\"user-{i}\", action == Action::\"call_tool\", resource == Tool::\"github/delete_repo_{i}\");\n"
            ));
        } else {
            text.push_str(&format!(
                "@id(\"p{i}\")\nforbid(principal, action == Action::\"call_tool\", resource) when {{ resource.server == \"github\" && context.arguments has owner && context.arguments.owner == \"org-{i}\" }};\n"
            ));
        }
    }
    let files = [
        PolicyFile { source: "bench/policies/schema.cedarschema".into(), text: SCHEMA.into() },
        PolicyFile { source: "bench/policies/p.cedar".into(), text },
    ];
    Policies::compile(&files).expect("bench policies compile")
}

fn examples() -> Policies {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/governance");
    let vars = [("TEAL_BUNDLED_FS_URL".to_owned(), "http://127.0.0.1/mcp".to_owned())].into();
    let parsed =
        teal_core::config::load_path_with_vars(std::path::Path::new(dir), &vars).expect("examples load");
    Policies::compile(&parsed.policy_files).expect("examples compile")
}

fn measure(name: &str, policies: &Policies, n: usize) {
    let args = json!({"owner": "acme", "repo": "website", "title": "a bug", "body": "steps to reproduce"});
    let req = ToolRequest {
        caller: "user-7",
        agent: "github-agent",
        version: "1",
        server: "github",
        tool: "create_issue",
        arguments: Some(&args),
    };
    for _ in 0..1000 {
        assert_eq!(policies.decide(&req), Decision::Allow);
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(policies.decide(std::hint::black_box(&req)));
            started.elapsed()
        })
        .collect();
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6;
    println!(
        "{name:<28} {:>5} policies   p50 {:>7.1} µs   p99 {:>7.1} µs",
        policies.len(),
        at(0.5),
        at(0.99)
    );
}

fn main() {
    let n = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    measure("examples/governance", &examples(), n);
    for count in [10, 1000] {
        measure("scoped (per caller)", &compile(count, true), n);
        measure("unscoped (when conditions)", &compile(count, false), n);
    }
}
