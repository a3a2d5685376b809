//! Each tool's happy path and its ordinary failures, through an rmcp client.

use std::collections::BTreeSet;

use serde_json::json;
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Error, Outcome, call, read, spawn};

fn names(value: Option<&serde_json::Value>) -> BTreeSet<String> {
    value
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn list_tools_returns_the_five_tools_with_their_input_schemas() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    let tools = client.list_all_tools().await?;

    let listed: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(listed, set(&["get_file_info", "list_directory", "read_file", "search_files", "write_file"]));
    let expected = [
        ("read_file", &["path"][..], &["path"][..]),
        ("write_file", &["path", "content"][..], &["path", "content"][..]),
        ("list_directory", &["path"][..], &["path"][..]),
        ("search_files", &["path", "pattern", "excludePatterns"][..], &["path", "pattern"][..]),
        ("get_file_info", &["path"][..], &["path"][..]),
    ];
    for (name, properties, required) in expected {
        let tool = tools.iter().find(|t| t.name == name).ok_or_else(|| format!("{name} not listed"))?;
        let schema = &tool.input_schema;
        assert_eq!(schema.get("type"), Some(&json!("object")), "{name}");
        let listed_properties: BTreeSet<String> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(listed_properties, set(properties), "{name} properties");
        assert_eq!(names(schema.get("required")), set(required), "{name} required");
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()), "{name} has a description");
    }
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn read_file_returns_the_text_of_a_file() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("notes/today.md", "# Today\nship it ✓\n")?;
    let client = server.client().await?;

    let outcome = call(&client, "read_file", json!({"path": "notes/today.md"})).await?;
    assert_eq!(outcome, Outcome::ok("# Today\nship it ✓\n"));
    // `./` and `a/..` are normalised; the full absolute path inside the root is accepted too.
    let outcome = call(&client, "read_file", json!({"path": "./notes/../notes/today.md"})).await?;
    assert_eq!(outcome, Outcome::ok("# Today\nship it ✓\n"));
    let absolute = server.root.join("notes/today.md").display().to_string();
    let outcome = call(&client, "read_file", json!({ "path": absolute })).await?;
    assert_eq!(outcome, Outcome::ok("# Today\nship it ✓\n"));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn write_file_creates_a_new_file_and_overwrites_an_existing_one() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    std::fs::create_dir(server.root.join("out"))?;
    let client = server.client().await?;

    let outcome = call(&client, "write_file", json!({"path": "out/new.txt", "content": "v1"})).await?;
    assert_eq!(outcome, Outcome::ok("Successfully wrote to out/new.txt"));
    assert_eq!(read(&server.root.join("out/new.txt"))?, "v1");

    let outcome = call(&client, "write_file", json!({"path": "out/new.txt", "content": "2"})).await?;
    assert_eq!(outcome, Outcome::ok("Successfully wrote to out/new.txt"));
    assert_eq!(read(&server.root.join("out/new.txt"))?, "2", "truncated, not appended");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn list_directory_lists_entries_sorted_with_kind_markers() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("zeta.txt", "z")?;
    server.put("alpha.txt", "a")?;
    server.put("middle/inner.txt", "m")?;
    std::fs::create_dir(server.root.join("empty"))?;
    let client = server.client().await?;

    let outcome = call(&client, "list_directory", json!({"path": ""})).await?;
    assert_eq!(outcome, Outcome::ok("[FILE] alpha.txt\n[DIR] empty\n[DIR] middle\n[FILE] zeta.txt"));
    let outcome = call(&client, "list_directory", json!({"path": "middle"})).await?;
    assert_eq!(outcome, Outcome::ok("[FILE] inner.txt"));
    let outcome = call(&client, "list_directory", json!({"path": "empty"})).await?;
    assert_eq!(outcome, Outcome::ok(""));
    let outcome = call(&client, "list_directory", json!({"path": "zeta.txt"})).await?;
    assert_eq!(outcome, Outcome::err("not a directory: zeta.txt"));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn search_files_matches_names_by_substring_or_glob_and_honours_excludes() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("docs/Readme.MD", "")?;
    server.put("docs/guide.md", "")?;
    server.put("src/main.rs", "")?;
    server.put("src/bin/tool.rs", "")?;
    server.put("node_modules/pkg/readme.md", "")?;
    let client = server.client().await?;
    let search = |args: serde_json::Value| call(&client, "search_files", args);

    assert_eq!(
        search(json!({"path": ".", "pattern": "README"})).await?,
        Outcome::ok("docs/Readme.MD\nnode_modules/pkg/readme.md")
    );
    assert_eq!(
        search(json!({"path": ".", "pattern": "readme", "excludePatterns": ["NODE_MODULES"]})).await?,
        Outcome::ok("docs/Readme.MD")
    );
    assert_eq!(
        search(json!({"path": "", "pattern": "*.rs"})).await?,
        Outcome::ok("src/bin/tool.rs\nsrc/main.rs")
    );
    assert_eq!(search(json!({"path": "", "pattern": "src/*.rs"})).await?, Outcome::ok("src/main.rs"));
    assert_eq!(
        search(json!({"path": "src", "pattern": "*.rs", "excludePatterns": ["bin"]})).await?,
        Outcome::ok("src/main.rs"),
        "results are relative to the root, not to the searched directory"
    );
    assert_eq!(
        search(json!({"path": "", "pattern": "bin"})).await?,
        Outcome::ok("src/bin"),
        "directories match too"
    );
    assert_eq!(
        search(json!({"path": "", "pattern": "nothing-like-this"})).await?,
        Outcome::ok("No matches found")
    );
    assert_eq!(
        search(json!({"path": "", "pattern": "[a-"})).await?,
        Outcome::err("invalid pattern \"[a-\": unclosed character class; missing ']'")
    );
    client.cancel().await?;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn get_file_info_reports_size_kind_times_and_permissions() -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;

    let server = spawn(SessionMode::Stateful).await?;
    let file = server.put("data/hello.txt", "hello")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640))?;
    let client = server.client().await?;

    let outcome = call(&client, "get_file_info", json!({"path": "data/hello.txt"})).await?;
    assert!(!outcome.is_error, "{outcome:?}");
    let lines: Vec<&str> = outcome.text.lines().collect();
    assert_eq!(lines.first(), Some(&"size: 5"));
    assert_eq!(lines[lines.len() - 3..], ["isDirectory: false", "isFile: true", "permissions: 640"]);
    let modified = lines.iter().find_map(|l| l.strip_prefix("modified: ")).ok_or("no modified line")?;
    assert_eq!(modified.len(), "2026-01-01T00:00:00Z".len(), "{modified}");
    assert!(modified.starts_with("20") && modified.ends_with('Z'), "{modified}");
    for line in &lines {
        let key = line.split(": ").next().unwrap_or_default();
        assert!(
            ["size", "created", "modified", "accessed", "isDirectory", "isFile", "permissions"]
                .contains(&key),
            "unexpected line {line}"
        );
    }

    let outcome = call(&client, "get_file_info", json!({"path": "data"})).await?;
    assert!(outcome.text.contains("\nisDirectory: true\nisFile: false\n"), "{outcome:?}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_file_is_an_error_result() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    assert_eq!(
        call(&client, "read_file", json!({"path": "missing.txt"})).await?,
        Outcome::err("not found: missing.txt")
    );
    assert_eq!(
        call(&client, "get_file_info", json!({"path": "no/such/dir"})).await?,
        Outcome::err("not found: no/such/dir")
    );
    assert_eq!(
        call(&client, "list_directory", json!({"path": "gone"})).await?,
        Outcome::err("not found: gone")
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn reading_a_non_utf8_file_or_a_directory_is_an_error_result() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("blob.bin", [0xff_u8, 0xfe, 0x00, 0x80])?;
    std::fs::create_dir(server.root.join("dir"))?;
    let client = server.client().await?;
    assert_eq!(
        call(&client, "read_file", json!({"path": "blob.bin"})).await?,
        Outcome::err("cannot read blob.bin: the file is not valid UTF-8 text")
    );
    assert_eq!(
        call(&client, "read_file", json!({"path": "dir"})).await?,
        Outcome::err("is a directory: dir")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "dir", "content": "x"})).await?,
        Outcome::err("is a directory: dir")
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn write_file_into_a_missing_parent_is_an_error_result_and_creates_nothing() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("file.txt", "f")?;
    let client = server.client().await?;
    assert_eq!(
        call(&client, "write_file", json!({"path": "nope/deeper/new.txt", "content": "x"})).await?,
        Outcome::err("cannot write nope/deeper/new.txt: parent directory nope/deeper does not exist")
    );
    assert!(!server.root.join("nope").exists());
    assert_eq!(
        call(&client, "write_file", json!({"path": "file.txt/new.txt", "content": "x"})).await?,
        Outcome::err("not a directory: file.txt")
    );
    assert_eq!(read(&server.root.join("file.txt"))?, "f");
    client.cancel().await?;
    Ok(())
}
