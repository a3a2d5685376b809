//! Teal drop-in behaviour over real HTTP: structured output and its repair, Teal's own Redis
//! variables reaching a real Redis.

use std::path::Path;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{StackOptions, start_api};

fn answer(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    }))
}

/// Teal's demo 02 (a Sequential adder with typed input and output), with its schemas beside it.
fn adder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/teal");
    std::fs::copy(fixtures.join("demos__02_input_output__config.yaml"), dir.path().join("config.yaml"))
        .expect("copy");
    for t in ["NumbersInput", "AddOutput"] {
        let file = format!("{t}.schema.json");
        std::fs::copy(
            fixtures.join("schemas/demos__02_input_output__config").join(&file),
            dir.path().join(&file),
        )
        .expect("copy schema");
    }
    dir
}

/// Starts an API over the adder with `llm` and asks it to add 2 and 3.
async fn add(llm: &MockServer) -> (u16, Value) {
    let dir = adder();
    let (base, _) = start_api(dir.path(), &llm.uri(), &StackOptions::default()).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/AdderAgent/0.1"))
        .json(&json!({"number_1": 2, "number_2": 3}))
        .send()
        .await
        .expect("post");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

async fn bodies(llm: &MockServer) -> Vec<Value> {
    llm.received_requests()
        .await
        .expect("recorded")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_output_is_requested_validated_and_returned_as_output_pydantic() {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(answer(r#"{"result": 5}"#))
        .mount(&llm)
        .await;
    let (status, body) = add(&llm).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_pydantic"], json!({"result": 5}));
    assert_eq!(body["output_raw"], r#"{"result": 5}"#);
    let sent = bodies(&llm).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["response_format"]["type"], "json_schema");
    assert_eq!(sent[0]["response_format"]["json_schema"]["name"], "AddOutput");
    assert_eq!(sent[0]["response_format"]["json_schema"]["schema"]["required"], json!(["result"]));
    assert_eq!(sent[0]["messages"][1]["content"], "Add the following two numbers together 2 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_misses_the_schema_is_repaired_once() {
    let llm = MockServer::start().await;
    // The repair request carries the schema error; it gets a valid answer.
    Mock::given(method("POST"))
        .and(body_string_contains("does not match the required JSON Schema"))
        .respond_with(answer(r#"{"result": 5}"#))
        .with_priority(1)
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .respond_with(answer(r#"{"result": "five"}"#))
        .with_priority(2)
        .mount(&llm)
        .await;
    let (status, body) = add(&llm).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_pydantic"], json!({"result": 5}));
    assert_eq!(body["token_usage"]["total_tokens"], 12, "both calls are counted");
    let sent = bodies(&llm).await;
    assert_eq!(sent.len(), 2, "one repair, no more");
    let repair = sent[1]["messages"].as_array().expect("messages").last().expect("last").clone();
    assert!(
        repair["content"].as_str().expect("text").contains("/result"),
        "the error names the field: {repair}"
    );
    assert!(sent[1].get("tools").is_none(), "the repair offers no tools");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_stays_invalid_is_a_502_naming_the_schema_error() {
    let llm = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("five")).mount(&llm).await;
    let (status, body) = add(&llm).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "output_schema_mismatch");
    assert_eq!(body["error"]["upstream"], "llm");
    assert_eq!(
        body["error"]["message"],
        "the answer does not match the output type AddOutput: the answer is not JSON"
    );
    assert_eq!(bodies(&llm).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_input_that_misses_its_schema_is_a_400_naming_the_field() {
    let llm = MockServer::start().await;
    let dir = adder();
    let (base, _) = start_api(dir.path(), &llm.uri(), &StackOptions::default()).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/AdderAgent/0.1"))
        .json(&json!({"number_1": "two", "number_2": 3}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error"]["message"].as_str().expect("message").starts_with("number_1: "), "{body}");
    assert!(bodies(&llm).await.is_empty(), "nothing reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teals_redis_variables_put_sessions_in_a_real_redis() {
    let llm = MockServer::start().await;
    Mock::given(method("POST")).respond_with(answer("noted")).mount(&llm).await;
    let configs = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        configs.path().join("plain.yaml"),
        "apiVersion: skagents/v1\nkind: Chat\nservice_name: plain\nversion: 1\nspec:\n  agent:\n    model: m\n    system_prompt: s\n",
    )
    .expect("write");
    let prefix = format!("teal-e2e-tealvars-{}:", uuid::Uuid::new_v4());
    let opts = StackOptions {
        env: vec![
            ("TA_REDIS_HOST", "127.0.0.1".to_owned()),
            ("TA_REDIS_PORT", "6379".to_owned()),
            ("TA_REDIS_SSL", "false".to_owned()),
            ("TA_REDIS_TTL", "120".to_owned()),
            ("TA_REDIS_PREFIX", prefix.clone()),
        ],
        ..StackOptions::default()
    };
    let (base, state) = start_api(configs.path(), &llm.uri(), &opts).await;
    assert_eq!(state.sessions.backend(), "redis");
    let session = format!("s-{}", uuid::Uuid::new_v4());
    let resp = reqwest::Client::new()
        .post(format!("{base}/plain/1"))
        .json(&json!({"session_id": session, "items": [{"content_type": "text", "content": "remember me"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);

    let client = redis::Client::open("redis://127.0.0.1:6379").expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let key = format!("{prefix}session:{session}");
    let len: i64 = redis::cmd("LLEN").arg(&key).query_async(&mut conn).await.expect("LLEN");
    assert_eq!(len, 2, "the turn is in the real Redis under {key}");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut conn).await.expect("TTL");
    assert!((1..=120).contains(&ttl), "TA_REDIS_TTL is the session lifetime: {ttl}");
    let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.expect("DEL");
}

/// The migration example: a Teal Python plugin served by examples/teal-plugin-mcp/server.py
/// (PyPI `mcp`), reached by the example agent with the plugin's own tool names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teal_python_plugin_served_over_mcp_keeps_its_tool_names() {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("examples/teal-plugin-mcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = std::process::Command::new("python3")
        .arg(root.join("server.py"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the example server (scripts/test.sh installs PyPI mcp)");
    // Ready when uvicorn says it listens (its log goes to stderr, which is drained to the end so
    // the server never writes to a closed pipe); EOF first means it died.
    let stderr = child.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut ready_tx = Some(ready_tx);
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Uvicorn running on") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(Ok(()));
                }
            } else if ready_tx.is_some() {
                seen.push(line);
            }
        }
        if let Some(tx) = ready_tx {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match tokio::time::timeout(std::time::Duration::from_secs(60), ready_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(log))) => panic!("the example server exited:\n{log}"),
        other => panic!("the example server did not start within 60 s: {other:?}"),
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::new();

    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(answer("it is warm"))
        .with_priority(1)
        .mount(&llm)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "WeatherPlugin-get_temperature", "arguments": "{\"city\": \"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })))
        .with_priority(2)
        .mount(&llm)
        .await;
    let configs = tempfile::tempdir().expect("tempdir");
    std::fs::copy(root.join("agent.yaml"), configs.path().join("agent.yaml")).expect("copy");
    let opts = StackOptions { env: vec![("WEATHER_MCP_URL", url)], ..StackOptions::default() };
    let (base, _) = start_api(configs.path(), &llm.uri(), &opts).await;
    let resp = http
        .post(format!("{base}/weather/0.1"))
        .json(&json!({"chat_history": [{"role": "user", "content": "how warm is Oslo?"}]}))
        .send()
        .await
        .expect("post");
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "it is warm");
    let sent = bodies(&llm).await;
    let names: Vec<&str> = sent[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["WeatherPlugin-get_forecast", "WeatherPlugin-get_temperature"]);
    let result = sent[1]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("tool result")
        .clone();
    assert!(result["content"].as_str().is_some_and(|c| c.starts_with("Oslo: 21.5 C")), "{result}");
}
