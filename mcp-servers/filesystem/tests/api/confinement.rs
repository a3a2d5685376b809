//! Nothing outside the allowed directories can be read, listed, inspected, moved or written:
//! not through `..`, not through absolute paths, not through symlinks (to files or
//! directories, existing or not). Each refusal is a tool result with an exact text, and each
//! test ends by proving the outside directory was neither listed nor read nor changed.

use serde_json::{Value, json};
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Client, Error, Outcome, SECRET, call, read, snapshot, spawn};

fn denied(path: &str) -> Outcome {
    Outcome::err(format!("access denied: {path} resolves outside the allowed directories"))
}

/// Every tool that takes a path, called on `path`, must give exactly `expected`.
async fn every_tool_refuses(client: &Client, path: &str, expected: &Outcome) -> Result<(), Error> {
    let calls: [(&str, Value); 11] = [
        ("read_text_file", json!({ "path": path })),
        ("read_file", json!({ "path": path, "head": 1 })),
        ("get_file_info", json!({ "path": path })),
        ("list_directory", json!({ "path": path })),
        ("directory_tree", json!({ "path": path })),
        ("search_files", json!({ "path": path, "pattern": "secret" })),
        ("write_file", json!({ "path": path, "content": "pwned" })),
        ("edit_file", json!({ "path": path, "edits": [{"oldText": "top", "newText": "pwned"}] })),
        ("create_directory", json!({ "path": path })),
        ("move_file", json!({ "source": path, "destination": "stolen.txt" })),
        ("move_file", json!({ "source": "inside.txt", "destination": path })),
    ];
    for (tool, args) in calls {
        assert_eq!(&call(client, tool, args.clone()).await?, expected, "{tool} {args}");
    }
    Ok(())
}

#[tokio::test]
async fn dotdot_traversal_is_refused_for_every_tool() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("inside.txt", "in")?;
    let client = server.client().await?;
    let outside_name =
        server.outside.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or("no name")?;
    // Both tempdirs live in the same parent, so these name the real outside files.
    let to_secret = format!("../{outside_name}/secret.txt");
    let to_new = format!("../{outside_name}/evil.txt");
    let before = snapshot(&server.root)?;

    for path in [to_secret.as_str(), to_new.as_str(), "../etc/passwd", "sub/../../x", "..", "./../.."] {
        every_tool_refuses(&client, path, &denied(path)).await?;
    }
    let outcome = call(&client, "read_multiple_files", json!({"paths": [to_secret, "inside.txt"]})).await?;
    assert_eq!(
        outcome,
        Outcome::ok(format!(
            "{to_secret}: Error - access denied: {to_secret} resolves outside the allowed directories\n---\ninside.txt:\nin\n"
        ))
    );
    assert_eq!(snapshot(&server.root)?, before, "nothing inside changed either");
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[tokio::test]
async fn an_absolute_path_outside_is_refused() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("inside.txt", "in")?;
    let client = server.client().await?;
    let secret = server.outside.join("secret.txt").display().to_string();
    let outside_dir = server.outside.display().to_string();
    // A sibling whose name merely starts with the root's name is not inside it.
    let sibling = format!("{}-other/x.txt", server.root.display());
    let outside_name =
        server.outside.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or("no name")?;
    let climbing = format!("{}/../{outside_name}/secret.txt", server.root.display());

    for path in
        [secret.as_str(), outside_dir.as_str(), "/etc/passwd", "/", sibling.as_str(), climbing.as_str()]
    {
        every_tool_refuses(&client, path, &denied(path)).await?;
    }
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_to_a_file_outside_is_refused_and_the_file_is_untouched() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    server.put("inside.txt", "in")?;
    symlink(server.outside.join("secret.txt"), server.root.join("link.txt"))?;
    // A dangling link: writing through it would create a file outside.
    symlink(server.outside.join("planted.txt"), server.root.join("dangling.txt"))?;
    let client = server.client().await?;

    for tool in ["read_text_file", "get_file_info", "list_directory", "directory_tree", "create_directory"] {
        assert_eq!(call(&client, tool, json!({"path": "link.txt"})).await?, denied("link.txt"), "{tool}");
    }
    assert_eq!(
        call(&client, "write_file", json!({"path": "link.txt", "content": "pwned"})).await?,
        denied("link.txt")
    );
    assert_eq!(
        call(
            &client,
            "edit_file",
            json!({"path": "link.txt", "edits": [{"oldText": "top", "newText": "x"}]})
        )
        .await?,
        denied("link.txt")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "dangling.txt", "content": "pwned"})).await?,
        Outcome::err(
            "access denied: dangling.txt is or goes through a symbolic link whose target does not exist"
        )
    );
    assert_eq!(
        call(&client, "create_directory", json!({"path": "dangling.txt/sub"})).await?,
        Outcome::err(
            "access denied: dangling.txt/sub is or goes through a symbolic link whose target does not exist"
        )
    );
    // Listing and searching show the link's name but never follow it.
    assert_eq!(
        call(&client, "list_directory", json!({"path": ""})).await?,
        Outcome::ok("[FILE] dangling.txt\n[FILE] inside.txt\n[FILE] link.txt")
    );
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "link"})).await?,
        Outcome::ok("No matches found"),
        "links resolving outside are skipped"
    );
    let outcome = call(&client, "read_multiple_files", json!({"paths": ["link.txt"]})).await?;
    assert!(!outcome.text.contains(SECRET), "{outcome:?}");
    assert!(!server.outside.join("planted.txt").exists());
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_to_a_directory_outside_is_refused_and_not_searched() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    server.put("inside.txt", "in")?;
    symlink(&server.outside, server.root.join("escape"))?;
    let client = server.client().await?;

    for path in ["escape", "escape/secret.txt", "escape/missing.txt", "escape/new/deeper"] {
        // Missing files behind the link are refused too, not reported "not found" (no probing).
        every_tool_refuses(&client, path, &denied(path)).await?;
    }
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "secret"})).await?,
        Outcome::ok("No matches found"),
        "the search does not follow the link out"
    );
    let tree = call(&client, "directory_tree", json!({"path": ""})).await?;
    assert_eq!(
        serde_json::from_str::<Value>(&tree.text)?,
        json!([{"name": "escape", "type": "file"}, {"name": "inside.txt", "type": "file"}]),
        "the tree shows the link as a file and does not enter it"
    );
    client.cancel().await?;
    server.assert_outside_untouched()
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_inside_pointing_inside_is_allowed() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    server.put("real/data.txt", "real data")?;
    symlink(server.root.join("real/data.txt"), server.root.join("alias.txt"))?;
    symlink("real", server.root.join("alias_dir"))?;
    let client = server.client().await?;

    assert_eq!(
        call(&client, "read_text_file", json!({"path": "alias.txt"})).await?,
        Outcome::ok("real data")
    );
    assert_eq!(
        call(&client, "list_directory", json!({"path": "alias_dir"})).await?,
        Outcome::ok("[FILE] data.txt")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "alias_dir/new.txt", "content": "via link"})).await?,
        Outcome::ok("Successfully wrote to alias_dir/new.txt")
    );
    assert_eq!(read(&server.root.join("real/new.txt"))?, "via link");
    assert_eq!(
        call(&client, "write_file", json!({"path": "alias.txt", "content": "changed"})).await?,
        Outcome::ok("Successfully wrote to alias.txt")
    );
    assert_eq!(read(&server.root.join("real/data.txt"))?, "changed");
    assert!(server.root.join("alias.txt").symlink_metadata()?.is_symlink(), "the link stays a link");
    assert_eq!(
        call(
            &client,
            "edit_file",
            json!({"path": "alias.txt", "edits": [{"oldText": "changed", "newText": "edited"}]})
        )
        .await?,
        Outcome::ok(
            "--- a/alias.txt\n+++ b/alias.txt\n@@ -1 +1 @@\n-changed\n\\ No newline at end of file\n+edited\n\\ No newline at end of file\n"
        )
    );
    assert_eq!(read(&server.root.join("real/data.txt"))?, "edited");
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "alias"})).await?,
        Outcome::ok("alias.txt\nalias_dir"),
        "links inside are listed but not descended into"
    );
    assert_eq!(
        call(&client, "create_directory", json!({"path": "alias_dir/made"})).await?,
        Outcome::ok("Successfully created directory alias_dir/made")
    );
    assert!(server.root.join("real/made").is_dir());
    client.cancel().await?;
    server.assert_outside_untouched()
}
