use std::io::Write;
use std::sync::{Arc, Mutex};

use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{API_KEY, mount_script, spawn_stack};

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
