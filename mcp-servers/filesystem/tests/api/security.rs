//! The security model against the running server over HTTP: read-only mode, the size limit,
//! hostile names, concurrent writers, several allowed directories, the bearer token and what the
//! logs hold. Each refusal is asserted exactly, and that nothing was read or changed.

use std::{
    ffi::OsStr,
    io::Write,
    os::unix::ffi::OsStrExt,
    sync::{Arc, Mutex, OnceLock},
};

use rmcp::{
    model::CallToolRequestParams, transport::streamable_http_client::StreamableHttpClientTransportConfig,
};
use serde_json::{Value, json};
use teal_mcp_filesystem::{ByteSize, ServerOptions, SessionMode};

use crate::{
    helpers::{
        Error, Outcome, Spec, call, post_mcp_with, put, read, secret_token, snapshot, spawn, spawn_spec,
    },
    tools::ALL_TOOLS,
};

const MUTATING: [&str; 4] = ["create_directory", "edit_file", "move_file", "write_file"];

fn read_only_refusal(tool: &str) -> Outcome {
    Outcome::err(format!(
        "access denied: {tool} is disabled because the server is read-only (MCP_FILESYSTEM_READONLY)"
    ))
}

#[tokio::test]
async fn read_only_mode_neither_lists_nor_runs_the_mutating_tools() -> Result<(), Error> {
    for mode in [SessionMode::Stateful, SessionMode::Stateless] {
        let server = spawn_spec(Spec { read_only: true, ..Spec::new(mode) }).await?;
        server.put("notes.txt", "keep me")?;
        server.put("dir/inner.txt", "inner")?;
        let before = snapshot(&server.root)?;
        let client = server.client().await?;

        let listed: Vec<String> = client.list_all_tools().await?.iter().map(|t| t.name.to_string()).collect();
        let expected: Vec<&str> = ALL_TOOLS.iter().copied().filter(|t| !MUTATING.contains(t)).collect();
        assert_eq!(listed, expected, "{mode:?}");

        let secret = server.outside.join("secret.txt").display().to_string();
        for (tool, args) in [
            ("write_file", json!({"path": "notes.txt", "content": "changed"})),
            ("write_file", json!({"path": "new.txt", "content": "new"})),
            ("write_file", json!({"path": secret, "content": "pwned"})),
            ("edit_file", json!({"path": "notes.txt", "edits": [{"oldText": "keep", "newText": "lose"}]})),
            (
                "edit_file",
                json!({"path": "notes.txt", "edits": [{"oldText": "keep", "newText": "x"}], "dryRun": true}),
            ),
            ("create_directory", json!({"path": "made"})),
            ("move_file", json!({"source": "notes.txt", "destination": "moved.txt"})),
            ("move_file", json!({"source": "dir", "destination": "../escaped"})),
        ] {
            assert_eq!(call(&client, tool, args.clone()).await?, read_only_refusal(tool), "{mode:?} {args}");
        }
        assert_eq!(snapshot(&server.root)?, before, "{mode:?}: nothing changed");
        assert_eq!(
            call(&client, "read_text_file", json!({"path": "notes.txt"})).await?,
            Outcome::ok("keep me")
        );
        assert_eq!(
            call(&client, "list_directory", json!({"path": ""})).await?,
            Outcome::ok("[DIR] dir\n[FILE] notes.txt")
        );
        client.cancel().await?;
        server.assert_outside_untouched()?;
    }
    Ok(())
}

#[tokio::test]
async fn a_read_over_the_size_limit_is_refused_from_metadata_without_reading() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?; // default limit: 10 MB
    let big = server.root.join("big.bin");
    std::fs::File::create(&big)?.set_len(12 * 1024 * 1024)?; // sparse: instant
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
    std::fs::File::open(&big)?.set_times(std::fs::FileTimes::new().set_accessed(old).set_modified(old))?;
    server.put("small.txt", "small")?;
    server.put("exact.txt", "x".repeat(10 * 1024 * 1024))?;
    // A 10 MB file comes back twice (the text, and `structuredContent` as the output schema
    // promises, as the reference server does): past rmcp's default 16 MiB response limit.
    let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
        server.mcp_url(),
    )
    .max_json_response_size(32 << 20)
    .max_sse_event_size(32 << 20);
    let client = server.client_with(config).await?;

    let refusal = Outcome::err(
        "file big.bin is 12.0 MB (12582912 bytes), over the 10 MB limit (MCP_FILESYSTEM_MAX_FILE_SIZE)",
    );
    assert_eq!(call(&client, "read_text_file", json!({"path": "big.bin"})).await?, refusal);
    assert_eq!(call(&client, "read_file", json!({"path": "big.bin", "head": 1})).await?, refusal);
    assert_eq!(
        call(&client, "edit_file", json!({"path": "big.bin", "edits": [{"oldText": "a", "newText": "b"}]}))
            .await?,
        refusal
    );
    assert_eq!(
        call(&client, "read_multiple_files", json!({"paths": ["big.bin", "small.txt"]})).await?,
        Outcome::ok(format!("big.bin: Error - {}\n---\nsmall.txt:\nsmall\n", refusal.text))
    );
    let info = call(&client, "get_file_info", json!({"path": "big.bin"})).await?;
    assert!(info.text.starts_with("size: 12582912\n"), "metadata is still available: {info:?}");
    assert_eq!(std::fs::metadata(&big)?.accessed()?, old, "the refused file was never read");

    let exact = call(&client, "read_text_file", json!({"path": "exact.txt"})).await?;
    assert_eq!(
        (exact.is_error, exact.text.len()),
        (false, 10 * 1024 * 1024),
        "a file at the limit is served"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn writes_edits_and_combined_reads_over_the_size_limit_are_refused() -> Result<(), Error> {
    let limit = ByteSize::parse("1KB")?;
    let server = spawn_spec(Spec { max_file_size: Some(limit), ..Spec::new(SessionMode::Stateless) }).await?;
    server.put("f.txt", "a".repeat(1000))?;
    server.put("a.txt", "a".repeat(600))?;
    server.put("b.txt", "b".repeat(600))?;
    let before = snapshot(&server.root)?;
    let client = server.client().await?;

    assert_eq!(
        call(&client, "write_file", json!({"path": "new.txt", "content": "x".repeat(1025)})).await?,
        Outcome::err(
            "content for new.txt is 1.0 KB (1025 bytes), over the 1 KB limit (MCP_FILESYSTEM_MAX_FILE_SIZE)"
        )
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "f.txt", "content": "y".repeat(4096)})).await?,
        Outcome::err(
            "content for f.txt is 4.0 KB (4096 bytes), over the 1 KB limit (MCP_FILESYSTEM_MAX_FILE_SIZE)"
        )
    );
    let grow = json!({"path": "f.txt", "edits": [{"oldText": "a".repeat(10), "newText": "b".repeat(110)}]});
    let outcome = call(&client, "edit_file", grow).await?;
    assert_eq!(
        outcome,
        Outcome::err(
            "edit_file f.txt: edit 1 oldText matches 991 times, it must match exactly once (include more \
             surrounding lines); nothing was changed"
        )
    );
    let grow =
        json!({"path": "f.txt", "edits": [{"oldText": "a".repeat(1000), "newText": "b".repeat(1100)}]});
    assert_eq!(
        call(&client, "edit_file", grow).await?,
        Outcome::err(
            "the edited f.txt is 1.0 KB (1100 bytes), over the 1 KB limit (MCP_FILESYSTEM_MAX_FILE_SIZE)"
        )
    );
    assert_eq!(snapshot(&server.root)?, before, "nothing was written");
    assert_eq!(
        call(&client, "read_multiple_files", json!({"paths": ["a.txt", "b.txt"]})).await?,
        Outcome::ok(format!(
            "a.txt:\n{}\n\n---\nb.txt: Error - file b.txt is 600 bytes, over the 424 bytes left of the 1 KB limit \
             (MCP_FILESYSTEM_MAX_FILE_SIZE) that one read_multiple_files call shares between its files",
            "a".repeat(600)
        ))
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "new.txt", "content": "x".repeat(1024)})).await?,
        Outcome::ok("Successfully wrote to new.txt"),
        "content at the limit is written"
    );
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[tokio::test]
async fn overlong_names_and_paths_are_refused_and_a_255_byte_name_works() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    let longest = "n".repeat(255);
    assert_eq!(
        call(&client, "write_file", json!({"path": longest, "content": "ok"})).await?,
        Outcome::ok(format!("Successfully wrote to {longest}"))
    );
    assert_eq!(call(&client, "read_text_file", json!({"path": longest})).await?, Outcome::ok("ok"));

    let too_long_name = format!("dir/{}", "é".repeat(128)); // 256 bytes, 128 characters
    let expected = Outcome::err(format!(
        "invalid path dir/{}…: a component is 256 bytes long, over the 255-byte limit",
        "é".repeat(60)
    ));
    for tool in ["write_file", "read_text_file", "create_directory", "get_file_info"] {
        let args = if tool == "write_file" {
            json!({"path": too_long_name, "content": "x"})
        } else {
            json!({"path": too_long_name})
        };
        assert_eq!(call(&client, tool, args).await?, expected, "{tool}");
    }
    let too_long_path = "a/".repeat(2100) + "f";
    let expected = Outcome::err(format!(
        "invalid path {}…: it is 4201 bytes long, over the 4096-byte limit",
        "a/".repeat(32)
    ));
    for tool in ["write_file", "read_text_file", "create_directory", "list_directory"] {
        let args = if tool == "write_file" {
            json!({"path": too_long_path, "content": "x"})
        } else {
            json!({"path": too_long_path})
        };
        assert_eq!(call(&client, tool, args).await?, expected, "{tool}");
    }
    assert_eq!(
        call(&client, "read_text_file", json!({"path": "a\u{0}b"})).await?,
        Outcome::err("invalid path a\u{0}b: it contains a NUL byte")
    );
    assert_eq!(snapshot(&server.root)?.len(), 1, "only the 255-byte file exists");
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[tokio::test]
async fn non_utf8_names_are_shown_lossily_walked_into_and_never_misaddressed() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    std::fs::write(server.root.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin-1 name")?;
    std::fs::create_dir(server.root.join(OsStr::from_bytes(b"d\xff")))?;
    std::fs::write(server.root.join(OsStr::from_bytes(b"d\xff/inner.txt")), "inner")?;
    let client = server.client().await?;

    assert_eq!(
        call(&client, "list_directory", json!({"path": ""})).await?,
        Outcome::ok("[FILE] caf\u{FFFD}.txt\n[DIR] d\u{FFFD}")
    );
    assert_eq!(
        call(&client, "read_text_file", json!({"path": "caf\u{FFFD}.txt"})).await?,
        Outcome::err("not found: caf\u{FFFD}.txt"),
        "the lossy name is not the file's name"
    );
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "inner"})).await?,
        Outcome::ok("d\u{FFFD}/inner.txt"),
        "the search walks into a directory whose name is not UTF-8"
    );
    let tree: Value =
        serde_json::from_str(&call(&client, "directory_tree", json!({"path": ""})).await?.text)?;
    assert_eq!(
        tree,
        json!([
            {"name": "caf\u{FFFD}.txt", "type": "file"},
            {"name": "d\u{FFFD}", "type": "directory", "children": [{"name": "inner.txt", "type": "file"}]},
        ])
    );
    client.cancel().await?;
    Ok(())
}

/// 20 writers of different lengths at once: with truncate-and-write a shorter content would
/// leave the tail of a longer one; with write-then-rename the file is always one whole content.
#[tokio::test]
async fn concurrent_writes_to_one_file_leave_exactly_one_whole_content() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("shared.txt", "initial")?;
    // A reader that opened the file before: a replacement by rename leaves it its whole old
    // file, an in-place rewrite would change what it reads.
    let mut early_reader = std::fs::File::open(server.root.join("shared.txt"))?;
    let client = server.client().await?;
    let contents: Vec<String> =
        (0..20u8).map(|i| char::from(b'a' + i).to_string().repeat(1000 + usize::from(i) * 5000)).collect();

    let mut writers = tokio::task::JoinSet::new();
    for content in contents.clone() {
        let peer = client.peer().clone();
        writers.spawn(async move {
            let mut args = serde_json::Map::new();
            args.insert("path".into(), json!("shared.txt"));
            args.insert("content".into(), json!(content));
            peer.call_tool(CallToolRequestParams::new("write_file").with_arguments(args)).await
        });
    }
    while let Some(result) = writers.join_next().await {
        let result = result??;
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    let mut seen_by_early_reader = String::new();
    std::io::Read::read_to_string(&mut early_reader, &mut seen_by_early_reader)?;
    assert_eq!(seen_by_early_reader, "initial", "the file was rewritten in place, not replaced");
    let written = read(&server.root.join("shared.txt"))?;
    assert!(contents.contains(&written), "the file is a mix of writes ({} bytes)", written.len());
    let names: Vec<String> = std::fs::read_dir(&server.root)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["shared.txt"], "no temporary file is left behind");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn several_allowed_dirs_are_reachable_and_nothing_between_or_outside_them() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn_spec(Spec { extra_dirs: 1, ..Spec::new(SessionMode::Stateful) }).await?;
    let second = server.extra[0].clone();
    put(&second, "ref/doc.md", "reference")?;
    server.put("work.txt", "work")?;
    symlink(second.join("ref/doc.md"), server.root.join("to-second.md"))?;
    let client = server.client().await?;
    let second_name = second.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or("no name")?;
    let in_second = |rel: &str| second.join(rel).display().to_string();

    assert_eq!(
        call(&client, "list_allowed_directories", json!({})).await?,
        Outcome::ok(format!("Allowed directories:\n{}\n{}", server.root.display(), second.display()))
    );
    assert_eq!(call(&client, "read_text_file", json!({"path": "work.txt"})).await?, Outcome::ok("work"));
    assert_eq!(
        call(&client, "read_text_file", json!({"path": in_second("ref/doc.md")})).await?,
        Outcome::ok("reference"),
        "absolute paths reach the second dir"
    );
    assert_eq!(
        call(&client, "read_text_file", json!({"path": format!("../{second_name}/ref/doc.md")})).await?,
        Outcome::ok("reference"),
        "a relative path may climb from the first dir into the second"
    );
    assert_eq!(
        call(&client, "read_text_file", json!({"path": "to-second.md"})).await?,
        Outcome::ok("reference"),
        "a link from one allowed dir into another is inside"
    );
    assert_eq!(
        call(&client, "search_files", json!({"path": in_second(""), "pattern": "doc"})).await?,
        Outcome::ok(in_second("ref/doc.md")),
        "paths outside the first dir are shown absolute"
    );
    assert_eq!(
        call(&client, "move_file", json!({"source": "work.txt", "destination": in_second("work.txt")}))
            .await?,
        Outcome::ok(format!("Successfully moved work.txt to {}", in_second("work.txt")))
    );
    assert_eq!(read(&second.join("work.txt"))?, "work");
    assert_eq!(
        call(&client, "move_file", json!({"source": in_second(""), "destination": "stolen"})).await?,
        Outcome::err(format!("access denied: {} is an allowed directory itself", in_second("")))
    );

    let parent = second.parent().ok_or("no parent")?.display().to_string();
    for path in [parent.clone(), format!("{parent}/x.txt"), format!("../{second_name}/../x.txt")] {
        assert_eq!(
            call(&client, "write_file", json!({"path": path, "content": "x"})).await?,
            Outcome::err(format!("access denied: {path} resolves outside the allowed directories")),
            "the directory holding the allowed dirs is not allowed"
        );
    }
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[tokio::test]
async fn the_bearer_token_guards_mcp_but_not_health() -> Result<(), Error> {
    let options = ServerOptions::new(SessionMode::Stateless).with_auth_token(secret_token("s3cret-token"));
    let server = spawn_spec(Spec { options, ..Spec::new(SessionMode::Stateless) }).await?;
    server.put("hello.txt", "hi")?;
    let call_body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_text_file", "arguments": {"path": "hello.txt"}}
    });
    let challenge = |response: &reqwest::Response| {
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    for (authorization, expected_challenge) in [
        (None, "Bearer"),
        (Some("Bearer wrong-token"), "Bearer error=\"invalid_token\""),
        (Some("Bearer s3cret-token-and-more"), "Bearer error=\"invalid_token\""),
        (Some("Bearer s3cret-toke"), "Bearer error=\"invalid_token\""),
        (Some("Basic czNjcmV0LXRva2Vu"), "Bearer"),
        (Some("s3cret-token"), "Bearer"),
    ] {
        let response = post_mcp_with(&server, &call_body, authorization).await?;
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(challenge(&response), expected_challenge, "{authorization:?}");
        let body = response.text().await?;
        assert!(!body.contains("hi"), "{body}");
    }
    for authorization in ["Bearer s3cret-token", "bearer s3cret-token"] {
        let response = post_mcp_with(&server, &call_body, Some(authorization)).await?;
        assert_eq!(response.status(), 200, "{authorization}");
        let body: Value = response.json().await?;
        assert_eq!(body["result"]["content"][0]["text"], "hi");
    }
    assert_eq!(reqwest::get(server.url("/health")).await?.status(), 200, "/health needs no token");

    let config = StreamableHttpClientTransportConfig::with_uri(server.mcp_url()).auth_header("s3cret-token");
    let client = server.client_with(config).await?;
    assert_eq!(call(&client, "read_text_file", json!({"path": "hello.txt"})).await?, Outcome::ok("hi"));
    client.cancel().await?;
    assert!(server.client().await.is_err(), "an rmcp client without the token cannot connect");
    let wrong = StreamableHttpClientTransportConfig::with_uri(server.mcp_url()).auth_header("nope");
    assert!(server.client_with(wrong).await.is_err(), "nor with a wrong one");
    Ok(())
}

/// The one JSON log line per call: tool, path, outcome and duration; never the content.
#[tokio::test]
async fn each_tool_call_logs_one_line_without_file_contents() -> Result<(), Error> {
    let logs = capture_logs();
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    let marker = "CONTENT-MARKER-7f3a9c";
    let path = format!("log-probe-{}.txt", std::process::id());

    call(&client, "write_file", json!({"path": path, "content": marker})).await?;
    assert_eq!(call(&client, "read_text_file", json!({"path": path})).await?, Outcome::ok(marker));
    let outside = format!("../{path}");
    call(&client, "read_text_file", json!({"path": outside})).await?;
    let missing = format!("missing-{path}");
    call(&client, "read_text_file", json!({"path": missing})).await?;
    client.cancel().await?;

    let text = String::from_utf8(logs.lock().map_err(|e| e.to_string())?.clone())?;
    assert!(!text.contains(marker), "file content leaked into the logs");
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let calls: Vec<(String, String, String)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "tool call")
        .filter(|l| l["fields"]["path"].as_str().is_some_and(|p| p.contains(&path)))
        .map(|l| {
            assert!(l["fields"]["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{l}");
            let field = |k: &str| l["fields"][k].as_str().unwrap_or_default().to_owned();
            (field("tool"), field("path"), field("outcome"))
        })
        .collect();
    let expected = [
        ("write_file", path.as_str(), "ok"),
        ("read_text_file", path.as_str(), "ok"),
        ("read_text_file", outside.as_str(), "denied"),
        ("read_text_file", missing.as_str(), "error"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(t, p, o)| ((*t).to_owned(), (*p).to_owned(), (*o).to_owned())).collect();
    assert_eq!(calls, expected);
    Ok(())
}

/// Installs (once per test binary) a global JSON subscriber writing into a shared buffer.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || SharedWriter(Arc::clone(&sink)))
            .finish();
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            eprintln!("a global tracing subscriber was already set");
        }
        buffer
    }))
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|e| std::io::Error::other(e.to_string()))?.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
