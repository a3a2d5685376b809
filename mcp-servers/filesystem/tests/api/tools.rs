//! Each tool's happy path and its ordinary failures, through an rmcp client.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Error, Outcome, call, read, snapshot, spawn};

pub const ALL_TOOLS: [&str; 14] = [
    "create_directory",
    "directory_tree",
    "edit_file",
    "get_file_info",
    "list_allowed_directories",
    "list_directory",
    "list_directory_with_sizes",
    "move_file",
    "read_file",
    "read_media_file",
    "read_multiple_files",
    "read_text_file",
    "search_files",
    "write_file",
];

#[tokio::test]
async fn read_text_file_returns_the_text_or_its_head_or_tail() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("notes/today.md", "# Today\nship it ✓\nthen rest\n")?;
    let client = server.client().await?;
    let read_text = |args: Value| call(&client, "read_text_file", args);

    let whole = Outcome::ok("# Today\nship it ✓\nthen rest\n");
    assert_eq!(read_text(json!({"path": "notes/today.md"})).await?, whole);
    // `./` and `a/..` are normalised; the full absolute path inside the root is accepted too.
    assert_eq!(read_text(json!({"path": "./notes/../notes/today.md"})).await?, whole);
    let absolute = server.root.join("notes/today.md").display().to_string();
    assert_eq!(read_text(json!({ "path": absolute })).await?, whole);
    assert_eq!(
        call(&client, "read_file", json!({"path": "notes/today.md"})).await?,
        whole,
        "read_file is an alias"
    );

    assert_eq!(read_text(json!({"path": "notes/today.md", "head": 1})).await?, Outcome::ok("# Today\n"));
    assert_eq!(
        read_text(json!({"path": "notes/today.md", "tail": 2})).await?,
        Outcome::ok("ship it ✓\nthen rest\n")
    );
    assert_eq!(read_text(json!({"path": "notes/today.md", "head": 0})).await?, Outcome::ok(""));
    assert_eq!(
        read_text(json!({"path": "notes/today.md", "head": 1, "tail": 1})).await?,
        Outcome::err("cannot use both head and tail")
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn read_multiple_files_reports_each_file_or_its_error() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("a.txt", "alpha")?;
    server.put("b.txt", "beta\n")?;
    let client = server.client().await?;

    let outcome =
        call(&client, "read_multiple_files", json!({"paths": ["a.txt", "missing.txt", "b.txt"]})).await?;
    assert_eq!(
        outcome,
        Outcome::ok(
            "a.txt:\nalpha\n\n---\nmissing.txt: Error - not found: missing.txt\n---\nb.txt:\nbeta\n\n"
        )
    );
    assert_eq!(call(&client, "read_multiple_files", json!({"paths": []})).await?, Outcome::ok(""));
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn write_file_creates_a_new_file_and_replaces_an_existing_one() -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;

    let server = spawn(SessionMode::Stateful).await?;
    std::fs::create_dir(server.root.join("out"))?;
    let client = server.client().await?;

    let outcome = call(&client, "write_file", json!({"path": "out/new.txt", "content": "v1"})).await?;
    assert_eq!(outcome, Outcome::ok("Successfully wrote to out/new.txt"));
    assert_eq!(read(&server.root.join("out/new.txt"))?, "v1");
    std::fs::set_permissions(server.root.join("out/new.txt"), std::fs::Permissions::from_mode(0o600))?;

    let outcome = call(&client, "write_file", json!({"path": "out/new.txt", "content": "2"})).await?;
    assert_eq!(outcome, Outcome::ok("Successfully wrote to out/new.txt"));
    assert_eq!(read(&server.root.join("out/new.txt"))?, "2", "replaced, not appended");
    let mode = std::fs::metadata(server.root.join("out/new.txt"))?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "permissions survive the replacement");
    let names: Vec<String> = std::fs::read_dir(server.root.join("out"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["new.txt"], "no temporary file is left behind");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn edit_file_dry_run_returns_the_diff_and_changes_nothing() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let file = server.put("src/app.py", "def greet():\n    return 'hi'\n\nprint(greet())\n")?;
    let modified = std::fs::metadata(&file)?.modified()?;
    let client = server.client().await?;
    let edit =
        json!({"path": "src/app.py", "edits": [{"oldText": "'hi'", "newText": "'hello'"}], "dryRun": true});
    let diff = "--- a/src/app.py\n+++ b/src/app.py\n@@ -1,4 +1,4 @@\n def greet():\n-    return 'hi'\n+    return \
                'hello'\n \n print(greet())\n";

    assert_eq!(call(&client, "edit_file", edit.clone()).await?, Outcome::ok(diff));
    assert_eq!(read(&file)?, "def greet():\n    return 'hi'\n\nprint(greet())\n", "dry run");
    assert_eq!(std::fs::metadata(&file)?.modified()?, modified, "dry run does not even touch the file");

    let mut real = edit;
    real["dryRun"] = json!(false);
    assert_eq!(call(&client, "edit_file", real).await?, Outcome::ok(diff), "the same diff, applied");
    assert_eq!(read(&file)?, "def greet():\n    return 'hello'\n\nprint(greet())\n");
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn edit_file_applies_edits_in_order_and_each_must_match_exactly_once() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let file = server.put("f.txt", "one\ntwo\ntwo\n  three\n")?;
    let client = server.client().await?;
    let edit = |edits: Value| call(&client, "edit_file", json!({"path": "f.txt", "edits": edits}));

    assert_eq!(
        edit(json!([{"oldText": "two\n", "newText": "2\n"}])).await?,
        Outcome::err(
            "edit_file f.txt: edit 1 oldText matches 2 times, it must match exactly once (include more \
             surrounding lines); nothing was changed"
        )
    );
    assert_eq!(
        edit(json!([{"oldText": "one", "newText": "1"}, {"oldText": "three", "newText": "x"}, {"oldText": "\nthree", "newText": "3"}]))
            .await?,
        Outcome::err(
            "edit_file f.txt: edit 3 oldText was not found (matching is exact, whitespace included); nothing \
             was changed"
        ),
        "whitespace is not ignored: `\\nthree` is not `\\n  three`"
    );
    assert_eq!(
        read(&file)?,
        "one\ntwo\ntwo\n  three\n",
        "a failing edit writes nothing, not even earlier ones"
    );
    assert_eq!(
        edit(json!([{"oldText": "", "newText": "x"}])).await?,
        Outcome::err("edit_file f.txt: edit 1 has an empty oldText; nothing was changed")
    );
    assert_eq!(edit(json!([])).await?, Outcome::err("edit_file f.txt: no edits given"));

    let outcome = edit(json!([
        {"oldText": "one\ntwo", "newText": "1\n2"},
        {"oldText": "2\ntwo", "newText": "2\n2"},
    ]))
    .await?;
    assert_eq!(
        outcome,
        Outcome::ok("--- a/f.txt\n+++ b/f.txt\n@@ -1,4 +1,4 @@\n-one\n-two\n-two\n+1\n+2\n+2\n   three\n"),
        "the second edit sees the result of the first"
    );
    assert_eq!(read(&file)?, "1\n2\n2\n  three\n");
    assert_eq!(
        call(
            &client,
            "edit_file",
            json!({"path": "missing.txt", "edits": [{"oldText": "a", "newText": "b"}]})
        )
        .await?,
        Outcome::err("not found: missing.txt")
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn create_directory_makes_parents_and_accepts_an_existing_directory() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("file.txt", "f")?;
    let client = server.client().await?;
    let create = |path: &str| call(&client, "create_directory", json!({ "path": path }));

    assert_eq!(create("a/b/c").await?, Outcome::ok("Successfully created directory a/b/c"));
    assert!(server.root.join("a/b/c").is_dir());
    assert_eq!(create("a/b").await?, Outcome::ok("Successfully created directory a/b"), "already there");
    assert_eq!(create("").await?, Outcome::ok("Successfully created directory "), "the root itself");
    assert_eq!(
        create("file.txt").await?,
        Outcome::err("cannot create directory file.txt: a file with that name already exists")
    );
    assert_eq!(create("file.txt/sub").await?, Outcome::err("not a directory: file.txt"));
    assert_eq!(read(&server.root.join("file.txt"))?, "f");
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
async fn directory_tree_returns_sorted_json_with_children_for_directories() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("src/main.rs", "")?;
    server.put("src/bin/tool.rs", "")?;
    server.put("README.md", "")?;
    server.put("node_modules/pkg/index.js", "")?;
    std::fs::create_dir(server.root.join("empty"))?;
    let client = server.client().await?;

    let outcome =
        call(&client, "directory_tree", json!({"path": ".", "excludePatterns": ["node_modules"]})).await?;
    assert!(!outcome.is_error, "{outcome:?}");
    let tree: Value = serde_json::from_str(&outcome.text)?;
    assert_eq!(
        tree,
        json!([
            {"name": "README.md", "type": "file"},
            {"name": "empty", "type": "directory", "children": []},
            {"name": "src", "type": "directory", "children": [
                {"name": "bin", "type": "directory", "children": [{"name": "tool.rs", "type": "file"}]},
                {"name": "main.rs", "type": "file"},
            ]},
        ])
    );
    assert_eq!(
        call(&client, "directory_tree", json!({"path": "README.md"})).await?,
        Outcome::err("not a directory: README.md")
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn move_file_renames_files_and_directories_and_never_replaces() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    server.put("a.txt", "A")?;
    server.put("b.txt", "B")?;
    server.put("dir/inner.txt", "I")?;
    symlink("a.txt", server.root.join("link"))?;
    let client = server.client().await?;
    let mv = |source: &str, destination: &str| {
        call(&client, "move_file", json!({ "source": source, "destination": destination }))
    };

    assert_eq!(mv("a.txt", "dir/moved.txt").await?, Outcome::ok("Successfully moved a.txt to dir/moved.txt"));
    assert_eq!(read(&server.root.join("dir/moved.txt"))?, "A");
    assert!(!server.root.join("a.txt").exists());
    assert_eq!(mv("dir", "renamed").await?, Outcome::ok("Successfully moved dir to renamed"));
    assert_eq!(read(&server.root.join("renamed/inner.txt"))?, "I");

    let before = snapshot(&server.root)?;
    assert_eq!(
        mv("b.txt", "renamed/inner.txt").await?,
        Outcome::err("cannot move b.txt to renamed/inner.txt: the destination already exists")
    );
    assert_eq!(
        mv("renamed", "b.txt").await?,
        Outcome::err("cannot move renamed to b.txt: the destination already exists")
    );
    assert_eq!(mv("nope.txt", "x.txt").await?, Outcome::err("not found: nope.txt"));
    assert_eq!(mv("no/such.txt", "x.txt").await?, Outcome::err("not found: no/such.txt"));
    assert_eq!(
        mv("b.txt", "no/such/x.txt").await?,
        Outcome::err("cannot move to no/such/x.txt: parent directory no/such does not exist")
    );
    assert_eq!(mv("", "x").await?, Outcome::err("access denied:  is an allowed directory itself"));
    assert_eq!(mv("b.txt", ".").await?, Outcome::err("access denied: . is an allowed directory itself"));
    assert_eq!(snapshot(&server.root)?, before, "refused moves change nothing");

    // A link inside pointing inside is moved as the link, not as its target.
    std::fs::write(server.root.join("a.txt"), "A again")?;
    assert_eq!(mv("link", "renamed/link").await?, Outcome::ok("Successfully moved link to renamed/link"));
    assert!(server.root.join("renamed/link").symlink_metadata()?.is_symlink());
    assert_eq!(read(&server.root.join("a.txt"))?, "A again");
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
    let search = |args: Value| call(&client, "search_files", args);

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
        "results are relative to the first allowed dir, not to the searched directory"
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
async fn list_allowed_directories_gives_the_canonical_paths() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    assert_eq!(
        call(&client, "list_allowed_directories", json!({})).await?,
        Outcome::ok(format!("Allowed directories:\n{}", server.root.display()))
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_path_is_an_error_result_for_every_tool() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    for (tool, args, expected) in [
        ("read_text_file", json!({"path": "missing.txt"}), "not found: missing.txt"),
        ("get_file_info", json!({"path": "no/such/dir"}), "not found: no/such/dir"),
        ("list_directory", json!({"path": "gone"}), "not found: gone"),
        ("directory_tree", json!({"path": "gone"}), "not found: gone"),
        ("search_files", json!({"path": "gone", "pattern": "x"}), "not found: gone"),
        (
            "edit_file",
            json!({"path": "gone", "edits": [{"oldText": "a", "newText": "b"}]}),
            "not found: gone",
        ),
        ("move_file", json!({"source": "gone", "destination": "x"}), "not found: gone"),
    ] {
        assert_eq!(call(&client, tool, args).await?, Outcome::err(expected), "{tool}");
    }
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
        call(&client, "read_text_file", json!({"path": "blob.bin"})).await?,
        Outcome::err("cannot read blob.bin: the file is not valid UTF-8 text")
    );
    assert_eq!(
        call(&client, "read_text_file", json!({"path": "dir"})).await?,
        Outcome::err("is a directory: dir")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "dir", "content": "x"})).await?,
        Outcome::err("is a directory: dir")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "", "content": "x"})).await?,
        Outcome::err("is a directory: ")
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
