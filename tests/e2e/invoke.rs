use serde_json::json;

use crate::helpers::{mount_script, spawn_stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_reads_the_file_through_mcp_and_the_final_answer_quotes_it() {
    let app = spawn_stack().await;
    mount_script(&app).await;

    let (status, headers, body) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"hello.txt"}"#).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "TOOL SAID: hello from the e2e data dir");
    assert_eq!(body["source"], "fs-agent:1");
    assert_eq!(
        body["token_usage"],
        json!({"completion_tokens": 10, "prompt_tokens": 20, "total_tokens": 30})
    );
    assert_eq!(body["extra_data"]["items"][1], json!({"key": "tool_calls", "value": "1"}));
    assert_eq!(headers["x-request-id"].to_str().expect("ascii"), body["request_id"].as_str().expect("id"));

    let sent = app.llm_requests().await;
    assert_eq!(sent.len(), 2, "one LLM call for the tool, one for the answer");
    let offered: Vec<&str> = sent[0]["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .map(|t| t["function"]["name"].as_str().expect("name"))
        .collect();
    assert!(offered.contains(&"fs_read_file"), "{offered:?}");
    assert!(!offered.contains(&"fs_write_file"), "tools.deny must hide write_*: {offered:?}");
    let tool_msg = sent[1]["messages"].as_array().expect("messages").last().cloned().expect("last");
    assert_eq!(tool_msg["role"], "tool");
    assert_eq!(tool_msg["tool_call_id"], "call-1");
    assert_eq!(sent[1]["messages"][0], json!({"role": "system", "content": "You read files."}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_process_makes_exactly_one_mcp_round_trip_per_tool_call() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    let (status, _, _) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"hello.txt"}"#).await;
    assert_eq!(status, 200);

    let before = app.mcp().posts();
    for _ in 0..5 {
        let (status, _, body) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"hello.txt"}"#).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(app.mcp().posts() - before, 5, "no re-initialize and no re-list on a warm process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_reaches_the_llm_in_order_after_the_system_prompt() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    let (status, _, body) = app
        .post_json(
            "plain/1",
            &json!({"chat_history": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "reply"},
                {"role": "user", "content": "second"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_raw"], "ECHO: second");
    let sent = app.llm_requests().await;
    let roles: Vec<&str> = sent[0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(sent[0].get("tools").is_none(), "an agent without MCP servers offers no tools");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_with_a_session_id_continue_the_conversation() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    let first =
        json!({"session_id": "conv-42", "items": [{"content_type": "text", "content": "my name is Ada"}]});
    let (status, _, body) = app.post_json("plain/1", &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], "conv-42");

    let second =
        json!({"session_id": "conv-42", "items": [{"content_type": "text", "content": "who am I?"}]});
    let (status, _, body) = app.post_json("plain/1", &second).await;
    assert_eq!(status, 200, "{body}");
    let sent = app.llm_requests().await;
    let contents: Vec<&str> = sent[1]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(contents, ["You chat.", "my name is Ada", "ECHO: my name is Ada", "who am I?"]);

    let (_, _, fresh) = app.say("plain/1", "no session").await;
    assert_ne!(fresh["session_id"], "conv-42", "a request without session_id gets a new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_go_back_to_the_llm_and_the_request_still_succeeds() {
    let app = spawn_stack().await;
    mount_script(&app).await;

    let (status, _, body) = app.say("fs-agent/1", r#"call:fs_read_file {"path":"../../etc/passwd"}"#).await;
    assert_eq!(status, 200, "{body}");
    let out = body["output_raw"].as_str().expect("output");
    assert!(out.starts_with("TOOL SAID: tool error: access denied"), "{out}");

    let (status, _, body) =
        app.say("fs-agent/1", r#"call:fs_write_file {"path":"secret-write-target.txt","content":"x"}"#).await;
    assert_eq!(status, 200, "{body}");
    let out = body["output_raw"].as_str().expect("output");
    assert!(out.starts_with("TOOL SAID: unknown tool fs_write_file; available tools: "), "{out}");
    let unchanged = std::fs::read_to_string(app.data.path().join("secret-write-target.txt")).expect("read");
    assert_eq!(unchanged, "unchanged", "a denied tool must never reach the server");

    let (status, _, body) = app.say("fs-agent/1", "call:fs_read_file {not json").await;
    assert_eq!(status, 200, "{body}");
    let out = body["output_raw"].as_str().expect("output");
    assert!(out.starts_with("TOOL SAID: tool error: arguments are not valid JSON"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_tools_describe_the_running_stack() {
    let app = spawn_stack().await;
    let (status, health) = app.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["agents"], 2);
    assert!(health["uptime_seconds"].as_f64().expect("uptime") >= 0.0);

    let (status, ready) = app.get("/ready").await;
    assert_eq!(status, 200, "{ready}");
    let names: Vec<&str> =
        ready["checks"].as_array().expect("checks").iter().map(|c| c["name"].as_str().expect("n")).collect();
    assert_eq!(names, ["mcp:fs", "sessions:memory"]);
    let listed = ready["checks"][0]["tools"].as_u64().expect("tool count");
    assert!(listed >= 5, "{ready}");

    let (status, tools) = app.get("/fs-agent/1/tools").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        tools["tools"].as_array().expect("tools").iter().map(|t| t["name"].as_str().expect("name")).collect();
    for expected in ["fs_get_file_info", "fs_list_directory", "fs_read_file", "fs_search_files"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(!names.contains(&"fs_write_file"), "tools.deny: [write_*] must filter the catalog: {names:?}");
    assert_eq!(names.len() as u64, listed - 1, "exactly the one write_* tool is filtered out");
    assert_eq!(tools["tools"][0]["server"], "fs");
    assert_eq!(tools["tools"][0]["input_schema"]["type"], "object");

    let (status, body) = app.get("/nope/1/tools").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["known_agents"], json!(["fs-agent/1", "plain/1"]));
}
