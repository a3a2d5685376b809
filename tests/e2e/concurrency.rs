use crate::helpers::{mount_script, spawn_stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_invokes_on_one_process_all_get_their_own_answer() {
    let app = spawn_stack().await;
    mount_script(&app).await;
    for i in 0..50 {
        std::fs::write(app.data.path().join(format!("f{i}.txt")), format!("content-{i}")).expect("write");
    }
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let agent_and_text = if i % 5 == 0 {
                    ("plain/1", format!("plain-{i}"))
                } else {
                    ("fs-agent/1", format!(r#"call:fs_read_file {{"path":"f{i}.txt"}}"#))
                };
                let (status, _, body) = app.say(agent_and_text.0, &agent_and_text.1).await;
                (i, status, body)
            })
        })
        .collect();
    let mut sessions = std::collections::HashSet::new();
    for t in tasks {
        let (i, status, body) = t.await.expect("task");
        assert_eq!(status, 200, "request {i}: {body}");
        let want = if i % 5 == 0 { format!("ECHO: plain-{i}") } else { format!("TOOL SAID: content-{i}") };
        assert_eq!(body["output_raw"], want.as_str(), "request {i}");
        assert!(sessions.insert(body["session_id"].as_str().expect("session").to_owned()));
    }
    assert_eq!(sessions.len(), 50);
}
