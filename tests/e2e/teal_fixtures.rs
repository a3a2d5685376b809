//! Teal Agents' own shipped configs (tests/fixtures/teal, 39 files): each one either loads and
//! runs against the fake LLM (as shipped, or with the JSON Schemas of its Python types beside
//! it), or is refused with the message that says why and what to do instead.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::helpers::{StackOptions, start_api};

/// What each shipped file does here.
enum Outcome {
    /// Loads as shipped and answers `body`.
    Runs(Value),
    /// Loads once the JSON Schemas of its Python types are beside it, and answers `body`.
    RunsWithSchemas(Value),
    /// Loads as shipped, but cannot run here: its MCP servers are Teal's example hosts.
    Loads,
    /// Refused: every error line contains one of these.
    Refused(&'static [&'static str]),
}

const PLUGINS: &str = "Python plugins cannot run here";
const ORCHESTRATOR: &str = "is an orchestrator, which is out of scope for teal-serverless";
const STDIO: &str = "stdio MCP servers cannot run in AWS Lambda";
const PYTHON_TYPE: &str = "is a Python class in Teal: give its JSON Schema";

fn chat(text: &str) -> Value {
    json!({"chat_history": [{"role": "user", "content": text}]})
}

fn outcomes() -> Vec<(&'static str, Outcome)> {
    use Outcome::*;
    let agents = json!([{"name": "MathAgent", "description": "does math"}]);
    vec![
        ("demos__01_getting_started__config.yaml", Runs(chat("hello"))),
        ("demos__02_input_output__config.yaml", RunsWithSchemas(json!({"number_1": 2, "number_2": 3}))),
        ("demos__03_plugins__config.yaml", Refused(&[PLUGINS])),
        ("demos__04_remote_plugins__config.yaml", Runs(chat("weather in Berlin?"))),
        ("demos__05_deployment__agents__config.yaml", Refused(&[PLUGINS])),
        (
            "demos__07_task_output__config.yaml",
            RunsWithSchemas(json!({"number_1": 2, "number_2": 3, "number_3": 4})),
        ),
        (
            "demos__08_multi_modal__config.yaml",
            Runs(json!({"chat_history": [{"role": "user", "items": [
                {"content_type": "text", "content": "what is this?"},
                {"content_type": "image", "content": "data:image/png;base64,iVBORw0KGgo="}
            ]}]})),
        ),
        (
            "demos__08_multi_modal__config_alt.yaml",
            RunsWithSchemas(
                json!({"guess": 3, "embedded_image": {"format": "image/jpeg", "data": "/9j/4AAQ"}}),
            ),
        ),
        ("demos__09_chat_simple__config.yaml", Runs(chat("hello"))),
        ("demos__10_chat_plugins__config.yaml", Refused(&[PLUGINS])),
        ("demos__11_hitl__config.yaml", Refused(&[PLUGINS])),
        (
            "demos__12_test_multimodal__config.yaml",
            Runs(
                json!({"chat_history": [{"role": "user", "content": "who am I?"}], "user_context": {"user_id": "u-1"}}),
            ),
        ),
        ("demos__ZZ_wikipedia_demo__config.yaml", Refused(&[PLUGINS])),
        ("examples__mcp-agent-config.yaml", Refused(&[STDIO])),
        // Five HTTP MCP servers behind OAuth at api.github.com, *.example.com: it loads.
        ("examples__mcp-http-config.yaml", Loads),
        ("examples__mcp-multi-transport-config.yaml", Refused(&[STDIO])),
        ("examples__mcp-simplified-config.yaml", Refused(&[STDIO])),
        ("orch__assistant-orchestrator__example__ao__config-w-test-agent.yaml", Refused(&[ORCHESTRATOR])),
        ("orch__assistant-orchestrator__example__ao__config.yaml", Refused(&[ORCHESTRATOR])),
        (
            "orch__assistant-orchestrator__example__general__config.yaml",
            RunsWithSchemas(json!({"chat_history": [{"role": "user", "content": "hi"}], "agents": agents})),
        ),
        ("orch__assistant-orchestrator__example__image__config.yaml", Runs(chat("describe"))),
        ("orch__assistant-orchestrator__example__math__config.yaml", Runs(chat("2+2?"))),
        (
            "orch__assistant-orchestrator__example__recipient__config.yaml",
            RunsWithSchemas(json!({
                "conversation_history": {"history": [{"content": "hi", "recipient": "MathAgent"}]},
                "agent_list": agents, "current_message": "2+2?"
            })),
        ),
        ("orch__assistant-orchestrator__example__weather__config.yaml", Refused(&[PLUGINS])),
        ("orch__assistant-orchestrator__orchestrator__conf__config.yaml", Refused(&[ORCHESTRATOR])),
        (
            "orch__collab-orchestrator__orchestrator__conf__config_combo_alt_planner.yaml",
            Refused(&[ORCHESTRATOR]),
        ),
        (
            "orch__collab-orchestrator__orchestrator__conf__config_combo_main_team.yaml",
            Refused(&[ORCHESTRATOR]),
        ),
        ("orch__collab-orchestrator__orchestrator__conf__config_planning.yaml", Refused(&[ORCHESTRATOR])),
        ("orch__collab-orchestrator__orchestrator__conf__config_team.yaml", Refused(&[ORCHESTRATOR])),
        (
            "orch__collab-orchestrator__orchestrator__example__arxiv-search-agent__config.yaml",
            Refused(&[PLUGINS]),
        ),
        (
            "orch__collab-orchestrator__orchestrator__example__assistant-agent__config.yaml",
            Runs(chat("hello")),
        ),
        (
            "orch__collab-orchestrator__orchestrator__example__manager__config.yaml",
            RunsWithSchemas(json!({"overall_goal": "add", "agent_list": agents})),
        ),
        (
            "orch__collab-orchestrator__orchestrator__example__planning-agent__config.yaml",
            RunsWithSchemas(json!({"overall_goal": "add", "agent_list": agents})),
        ),
        (
            "orch__collab-orchestrator__orchestrator__example__wikipedia-agent__config.yaml",
            Refused(&[PLUGINS]),
        ),
        ("orch__workflow-orchestrator__examples__01_simple_workflow__config.yaml", Refused(&[ORCHESTRATOR])),
        (
            "orch__workflow-orchestrator__examples__02_advanced_workflow__config.yaml",
            Refused(&[ORCHESTRATOR]),
        ),
        ("orch__workflow-orchestrator__examples__03_agents_basic__config.yaml", Refused(&[ORCHESTRATOR])),
        (
            "orch__workflow-orchestrator__examples__03_agents_basic__memorizer-agent__config.yaml",
            Refused(&[PYTHON_TYPE, PLUGINS]),
        ),
        (
            "orch__workflow-orchestrator__examples__03_agents_basic__recall-agent__config.yaml",
            Refused(&[PYTHON_TYPE, PLUGINS]),
        ),
    ]
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The fake LLM: answers with JSON valid for the output type when the request asks for one
/// (Teal's demos 02, 07, manager, planning), with a call to the weather plugin when it is
/// offered and not called yet, and with `ANSWER` otherwise.
struct FixtureLlm;

impl Respond for FixtureLlm {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        let offered = |name: &str| {
            body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["function"]["name"] == name))
        };
        let message = if let Some(name) = body["response_format"]["json_schema"]["name"].as_str() {
            let content = match name {
                "ManagerOutput" => json!({"next_action": "abort", "action_detail": {"abort_reason": "done"}}),
                "PlanningAgentOutput" => json!({"can_succeed": true}),
                _ => json!({"result": 5}),
            };
            json!({"role": "assistant", "content": content.to_string()})
        } else if offered("api_weather-GetForecast") && last["role"] != "tool" {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "w1", "type": "function",
                "function": {"name": "api_weather-GetForecast", "arguments": "{\"latitude\": 52.52, \"longitude\": 13.41}"}}]})
        } else if last["role"] == "tool" {
            json!({"role": "assistant", "content": format!("PLUGIN SAID: {}", last["content"].as_str().unwrap_or(""))})
        } else {
            json!({"role": "assistant", "content": "ANSWER"})
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        }))
    }
}

/// A stand-in for open-meteo: the path and query the weather plugin's OpenAPI document gives.
async fn weather_server(seen: Arc<Mutex<Vec<String>>>) -> String {
    use axum::extract::RawQuery;
    let app = axum::Router::new().route(
        "/v1/forecast",
        axum::routing::get(move |headers: axum::http::HeaderMap, RawQuery(q): RawQuery| {
            let seen = seen.clone();
            async move {
                let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                seen.lock().expect("lock").push(format!("{} key={key}", q.unwrap_or_default()));
                axum::Json(json!({"daily": {"temperature_2m_max": [21.5]}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("weather server") });
    url
}

/// A folder holding the config (and its schemas when asked), as a Teal user would lay it out.
fn config_dir(file: &str, with_schemas: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let teal = fixtures().join("teal");
    std::fs::copy(teal.join(file), dir.path().join(file)).expect("copy config");
    if with_schemas {
        let schemas = teal.join("schemas").join(file.trim_end_matches(".yaml"));
        for entry in std::fs::read_dir(&schemas).expect("schemas for this fixture") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy schema");
        }
    }
    dir
}

fn agent_path(dir: &Path) -> String {
    let parsed = teal_core::config::load_path(dir).expect("loads");
    let a = &parsed.agents[0];
    format!("{}/{}", a.name, a.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_teal_config_runs_or_is_refused_with_the_way_forward() {
    let list = outcomes();
    assert_eq!(list.len(), 39, "Teal ships 39 agent configs");
    let on_disk = std::fs::read_dir(fixtures().join("teal"))
        .expect("fixtures")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml")));
    assert_eq!(on_disk.count(), 39, "every fixture has an expected outcome");

    let llm = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(FixtureLlm).mount(&llm).await;
    let weather_calls = Arc::new(Mutex::new(Vec::new()));
    let weather = weather_server(weather_calls.clone()).await;
    let catalog_dir = tempfile::tempdir().expect("tempdir");
    let plugins = fixtures().join("teal-plugins");
    let catalog = catalog_dir.path().join("remote-plugin-catalog.yaml");
    std::fs::write(
        &catalog,
        format!(
            "remote_plugins:\n  - plugin_name: api_weather\n    openapi_json_path: {}\n    server_url: {weather}\n    \
             headers:\n      X-Api-Key: \"${{secret:WEATHER_KEY}}\"\n  \
             - plugin_name: api_geonames\n    openapi_json_path: {}\n",
            plugins.join("openapi_weather.json").display(),
            plugins.join("openapi_geonames.json").display()
        ),
    )
    .expect("catalog");
    let opts = StackOptions {
        env: vec![("TA_REMOTE_PLUGIN_PATH", catalog.display().to_string())],
        secrets: vec![("WEATHER_KEY", "wk-123")],
        ..StackOptions::default()
    };
    let http = reqwest::Client::new();

    let (mut runs, mut with_schemas, mut loads, mut refused) = (0, 0, 0, 0);
    for (file, outcome) in &list {
        match outcome {
            Outcome::Loads => {
                let dir = config_dir(file, false);
                let parsed = teal_core::config::load_path(dir.path()).expect("loads");
                assert!(
                    parsed.agents[0].mcp_servers().all(|s| s.oauth.is_some()),
                    "{file}: every server uses OAuth"
                );
                loads += 1;
            }
            Outcome::Refused(expected) => {
                let dir = config_dir(file, false);
                let errors = match teal_core::config::load_path(dir.path()) {
                    Ok(_) => panic!("{file} loaded but should be refused"),
                    Err(e) => e.iter().map(ToString::to_string).collect::<Vec<_>>(),
                };
                for e in &errors {
                    assert!(expected.iter().any(|x| e.contains(x)), "{file}: unexpected error {e}");
                }
                for x in *expected {
                    assert!(errors.iter().any(|e| e.contains(x)), "{file}: no error says {x:?}: {errors:?}");
                }
                refused += 1;
            }
            Outcome::Runs(body) | Outcome::RunsWithSchemas(body) => {
                let schemas = matches!(outcome, Outcome::RunsWithSchemas(_));
                if schemas {
                    let bare = config_dir(file, false);
                    let e = teal_core::config::load_path(bare.path()).expect_err("needs its schemas");
                    assert!(e.iter().all(|e| e.to_string().contains(PYTHON_TYPE)), "{file}: {e}");
                }
                let dir = config_dir(file, schemas);
                let (base, _) = start_api(dir.path(), &llm.uri(), &opts).await;
                let resp = http
                    .post(format!("{base}/{}", agent_path(dir.path())))
                    .json(body)
                    .send()
                    .await
                    .expect("post");
                let status = resp.status();
                let answer: Value = resp.json().await.expect("json");
                assert_eq!(status, 200, "{file}: {answer}");
                assert!(answer["output_raw"].as_str().is_some_and(|o| !o.is_empty()), "{file}: {answer}");
                if schemas {
                    with_schemas += 1;
                } else {
                    runs += 1;
                }
            }
        }
    }
    // The numbers the README and the closing note give.
    assert_eq!((runs, with_schemas, loads, refused), (8, 7, 1, 23));

    let sent: Vec<Value> = llm
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    // Sequential, two tasks: the second task's instructions carry the first task's output.
    let follow_on = sent.iter().find(|b| {
        b["messages"].as_array().is_some_and(|m| {
            m.iter().any(|m| m["content"].as_str().is_some_and(|c| c.starts_with("Multiply the result")))
        })
    });
    let follow_on = follow_on.expect("demo 07 ran its second task");
    let texts: Vec<&str> = follow_on["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(texts.contains(&"Add the following two numbers together 2 3"), "{texts:?}");
    // (YAML folds the template's lines: `Previous operation: {{_action_task}}`.)
    assert!(texts.contains(&"Multiply the result of the previous answer by 4 and then add 10 to it.\nPrevious operation: ANSWER"), "{texts:?}");
    // The image item reached the model as an image part.
    assert!(
        sent.iter().any(|b| b["messages"][1]["content"]
            == json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ])),
        "demo 08's image reached the LLM"
    );
    // The embedded image of a typed input goes with the first task.
    assert!(sent.iter().any(|b| b["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| m["content"][1]["image_url"]["url"] == "data:image/jpeg;base64,/9j/4AAQ")
    })));
    // user_context is a template variable for Sequential agents (Teal adds no message for it).
    // The remote plugin was called over HTTP with the query its OpenAPI document describes.
    let calls = weather_calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].contains("latitude=52.52") && calls[0].contains("longitude=13.41"), "{calls:?}");
    assert!(calls[0].ends_with("key=wk-123"), "the catalog's header carries the secret: {calls:?}");
    assert!(sent.iter().any(|b| b["messages"].as_array().is_some_and(|m| {
        m.iter().any(|m| m["role"] == "tool" && m["content"].as_str().is_some_and(|c| c.contains("21.5")))
    })));
}
