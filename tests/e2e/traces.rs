//! Traces over OTLP/HTTP: the process's subscriber as `teal_core::telemetry` installs it from
//! `OTEL_EXPORTER_OTLP_*`, a run with one tool call against the real MCP server and the fake
//! LLM, then the flush every Lambda invocation ends with. An OTLP/HTTP receiver in the test
//! decodes what arrives with the upstream protobuf types (`opentelemetry-proto`) and checks the
//! GenAI span tree (joined to the caller's `traceparent`), its attributes, the resource and the
//! backend header, and that no secret (the LLM key, a secret MCP header, the backend's own
//! header) is in any span.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use teal_core::settings::Env;
use teal_core::telemetry::otlp;
use tokio::sync::mpsc;

use crate::helpers::{API_KEY, MCP_SECRET, StackOptions, mount_script, spawn_stack_with};

/// One export the receiver took: its headers, raw body and decoded request.
struct Export {
    headers: HeaderMap,
    body: Bytes,
    request: ExportTraceServiceRequest,
}

/// An OTLP/HTTP receiver on a free loopback port (`POST /v1/traces`, protobuf); every export
/// goes to the channel. A body that does not decode is a 400 and a failed test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Result<Export, String>>) {
    type Tx = mpsc::UnboundedSender<Result<Export, String>>;
    async fn export(
        State(tx): State<Tx>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (axum::http::StatusCode, Vec<u8>) {
        match ExportTraceServiceRequest::decode(body.clone()) {
            Ok(request) => {
                let _ = tx.send(Ok(Export { headers, body, request }));
                (axum::http::StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
            }
            Err(e) => {
                let _ = tx.send(Err(format!("not an ExportTraceServiceRequest: {e}")));
                (axum::http::StatusCode::BAD_REQUEST, Vec::new())
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(export)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (url, rx)
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> &'a str {
    match attr(&span.attributes, key) {
        Some(Any::StringValue(s)) => s,
        other => panic!("{} has no string {key}: {other:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(&span.attributes, key) {
        Some(Any::IntValue(n)) => *n,
        other => panic!("{} has no integer {key}: {other:?}", span.name),
    }
}

/// Each nextest test is its own process, so the global subscriber and exporter are this test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exports_its_genai_span_tree_over_otlp_and_no_secret() {
    const BACKEND_TOKEN: &str = "otlp-backend-token-55aa31";
    let (endpoint, mut exports) = receiver().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("x-otlp-token={BACKEND_TOKEN}")),
        ("OTEL_SERVICE_NAME", "teal-e2e".to_owned()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test".to_owned()),
    ];
    teal_core::telemetry::init_json_logs_from(&Env::from_pairs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    assert!(otlp::installed(), "the endpoint set: an exporter is built");
    let app = spawn_stack_with(StackOptions::with_secret_mcp_header(env)).await;
    mount_script(&app).await;
    // The caller's own trace (W3C trace context): the run's spans must join it.
    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = app
        .http
        .post(format!("{}/fs-agent/1", app.base))
        .header("traceparent", format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({"items": [{"content_type": "text",
            "content": r#"call:fs_read_file {"path":"hello.txt"}"#}]}))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("JSON body");
    assert_eq!(status, 200, "{body}");
    // What the Lambda runtime layer runs after each invocation.
    otlp::flush().await;

    // Exports until the run's span tree is in (a request span may come in a later one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut received: Vec<Export> = Vec::new();
    let spans = loop {
        let spans: Vec<&Span> = received
            .iter()
            .flat_map(|e| &e.request.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let named = |n: &str| spans.iter().filter(|s| s.name == n).count();
        if named("invoke_agent") == 1 && named("chat") == 2 && named("execute_tool") == 1 {
            break spans.into_iter().cloned().collect::<Vec<Span>>();
        }
        match tokio::time::timeout_at(deadline, exports.recv()).await {
            Ok(Some(Ok(export))) => received.push(export),
            Ok(Some(Err(e))) => panic!("{e}"),
            Ok(None) | Err(_) => {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                panic!("the run's spans were not exported within 20 s; got {names:?}")
            }
        }
    };

    let one = |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name}"));
    let agent = one("invoke_agent");
    assert_eq!(text(agent, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(text(agent, "gen_ai.agent.name"), "fs-agent");
    assert_eq!(text(agent, "enduser.id"), "anonymous");
    assert_eq!(text(agent, "gen_ai.conversation.id"), body["session_id"].as_str().expect("session id"));
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(&agent.trace_id), CALLER_TRACE, "the run joined the caller's trace");
    let chats: Vec<&Span> = spans.iter().filter(|s| s.name == "chat").collect();
    for chat in &chats {
        assert_eq!(chat.trace_id, agent.trace_id, "one trace");
        assert_eq!(chat.parent_span_id, agent.span_id, "chat is a child of invoke_agent");
        assert_eq!(text(chat, "gen_ai.operation.name"), "chat");
        assert_eq!(text(chat, "gen_ai.request.model"), "gpt-e2e");
        // The fake LLM's usage: 10 prompt and 5 completion tokens per call.
        assert_eq!(
            (int(chat, "gen_ai.usage.input_tokens"), int(chat, "gen_ai.usage.output_tokens")),
            (10, 5)
        );
    }
    let tool = one("execute_tool");
    assert_eq!(
        (tool.trace_id.as_slice(), tool.parent_span_id.as_slice()),
        (agent.trace_id.as_slice(), agent.span_id.as_slice())
    );
    assert_eq!(text(tool, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(text(tool, "gen_ai.tool.name"), "fs_read_file");
    // The tool ran between the two LLM calls.
    let (first, second) = (
        chats.iter().map(|c| c.start_time_unix_nano).min(),
        chats.iter().map(|c| c.end_time_unix_nano).max(),
    );
    assert!(first < Some(tool.start_time_unix_nano) && Some(tool.end_time_unix_nano) < second);
    assert!(
        agent.start_time_unix_nano <= tool.start_time_unix_nano
            && tool.end_time_unix_nano <= agent.end_time_unix_nano
    );

    let first = &received[0];
    let resource = first.request.resource_spans[0].resource.as_ref().expect("a resource");
    let service = attr(&resource.attributes, "service.name");
    assert_eq!(service, Some(&Any::StringValue("teal-e2e".into())), "OTEL_SERVICE_NAME");
    let env = attr(&resource.attributes, "deployment.environment");
    assert_eq!(env, Some(&Any::StringValue("test".into())), "OTEL_RESOURCE_ATTRIBUTES");
    assert_eq!(first.headers["x-otlp-token"], BACKEND_TOKEN, "OTEL_EXPORTER_OTLP_HEADERS are sent");
    assert_eq!(first.headers["content-type"], "application/x-protobuf");

    // No secret in any attribute, event or name: the decoded text and the raw bytes.
    for export in &received {
        let decoded = format!("{:?}", export.request);
        for secret in [API_KEY, MCP_SECRET, BACKEND_TOKEN] {
            assert!(!decoded.contains(secret), "{secret} is in an exported span");
            assert!(
                !export.body.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in the bytes"
            );
        }
    }
}
