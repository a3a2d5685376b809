use std::io::Write;
use std::sync::{Arc, Mutex};

use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{API_KEY, MCP_SECRET, mount_script, spawn_stack};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each nextest test is its own process, so this global subscriber sees this test's logs only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_never_the_api_key() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .init();

    let app = spawn_stack().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.llm)
        .await;
    mount_script(&app).await;
    let (status, _, body) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"hello.txt"}"#).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = app.say("ghost/1", "hi").await;
    assert_eq!(status, 404);

    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    let request_id = body["request_id"].as_str().expect("id");
    let finished: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 2, "one line per request:\n{text}");
    assert_eq!(finished[0]["span"]["request_id"], request_id);
    assert!(finished[0]["fields"]["duration_ms"].as_f64().is_some());
    assert!(text.contains("\"agent run finished\""), "{text}");
    assert!(text.contains("429"), "the retry is logged:\n{text}");
    assert!(!text.contains(API_KEY), "the API key leaked into the logs");
}

/// A run with an LLM key and a secret MCP header: neither reaches any log line or span, while
/// the lines carry the request id and caller and the spans the OpenTelemetry GenAI names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_and_spans_which_carry_the_genai_names() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .init();
    let app =
        crate::helpers::spawn_stack_with(crate::helpers::StackOptions::with_secret_mcp_header(vec![])).await;
    mount_script(&app).await;
    let (status, _, body) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"hello.txt"}"#).await;
    assert_eq!(status, 200, "{body}");

    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    assert!(!text.contains(API_KEY), "the LLM key leaked into the logs");
    assert!(!text.contains(MCP_SECRET), "the MCP header secret leaked into the logs");
    let lines: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let closed = |name: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == "close" && l["span"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span in:\n{text}"))
    };
    let agent = &closed("invoke_agent")["span"];
    assert_eq!(
        (agent["gen_ai.operation.name"].as_str(), agent["gen_ai.agent.name"].as_str()),
        (Some("invoke_agent"), Some("fs-agent"))
    );
    assert_eq!(agent["enduser.id"], "anonymous");
    assert_eq!(agent["gen_ai.conversation.id"], body["session_id"]);
    let chat = &closed("chat")["span"];
    assert_eq!(
        (chat["gen_ai.operation.name"].as_str(), chat["gen_ai.request.model"].as_str()),
        (Some("chat"), Some("gpt-e2e"))
    );
    assert!(chat["gen_ai.usage.input_tokens"].as_u64().is_some(), "{chat}");
    let tool = closed("execute_tool");
    assert_eq!(tool["span"]["gen_ai.tool.name"], "fs_read_file");
    let parents: Vec<&str> =
        tool["spans"].as_array().expect("span list").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(parents, ["request", "invoke_agent"], "execute_tool nests in the run, in the request");
    let request_id = body["request_id"].as_str().expect("id");
    let tool_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "tool call" && l["target"] == "teal_core::agent")
        .unwrap_or_else(|| panic!("no tool call line in:\n{text}"));
    assert_eq!(tool_line["spans"][0]["request_id"], request_id, "every line of the request carries its id");
    assert_eq!(tool_line["spans"][0]["caller"], "anonymous");
    assert!(tool_line["fields"]["ms"].is_u64(), "durations: {tool_line}");
    let finished = lines.iter().find(|l| l["fields"]["message"] == "request finished").expect("finished");
    assert_eq!(
        (finished["span"]["agent"].as_str(), finished["span"]["version"].as_str()),
        (Some("fs-agent"), Some("1"))
    );
}
