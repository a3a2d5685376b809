//! Nothing outside the root can be read, listed, inspected or written: not through `..`, not
//! through absolute paths, not through symlinks. Each refusal is a tool result with an exact
//! text, and the outside files are checked to be unchanged and unread.

use serde_json::json;
use teal_mcp_filesystem::SessionMode;

use crate::helpers::{Error, Outcome, SECRET, call, read, spawn};

fn denied(path: &str) -> Outcome {
    Outcome::err(format!("access denied: {path} resolves outside the allowed directory"))
}

#[tokio::test]
async fn dotdot_traversal_is_refused_for_every_tool() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    server.put("sub/inside.txt", "in")?;
    let client = server.client().await?;
    let outside_name = server
        .outside
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or("outside dir has no name")?;
    // Both tempdirs live in the same parent, so this names the real secret file.
    let to_secret = format!("../{outside_name}/secret.txt");

    assert_eq!(call(&client, "read_file", json!({"path": "../etc/passwd"})).await?, denied("../etc/passwd"));
    let outcome = call(&client, "read_file", json!({ "path": to_secret })).await?;
    assert_eq!(outcome, denied(&to_secret));
    assert_eq!(call(&client, "read_file", json!({"path": "sub/../../x"})).await?, denied("sub/../../x"));
    assert_eq!(call(&client, "list_directory", json!({"path": ".."})).await?, denied(".."));
    assert_eq!(call(&client, "get_file_info", json!({ "path": to_secret })).await?, denied(&to_secret));
    assert_eq!(
        call(&client, "search_files", json!({"path": "..", "pattern": "secret"})).await?,
        denied("..")
    );
    let evil = format!("../{outside_name}/evil.txt");
    assert_eq!(call(&client, "write_file", json!({"path": evil, "content": "pwned"})).await?, denied(&evil));
    assert!(!server.outside.join("evil.txt").exists());
    assert_eq!(read(&server.outside.join("secret.txt"))?, SECRET);
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn an_absolute_path_outside_the_root_is_refused() -> Result<(), Error> {
    let server = spawn(SessionMode::Stateful).await?;
    let client = server.client().await?;
    let secret = server.outside.join("secret.txt").display().to_string();

    assert_eq!(call(&client, "read_file", json!({ "path": secret })).await?, denied(&secret));
    assert_eq!(call(&client, "read_file", json!({"path": "/etc/passwd"})).await?, denied("/etc/passwd"));
    assert_eq!(call(&client, "list_directory", json!({"path": "/"})).await?, denied("/"));
    assert_eq!(
        call(&client, "write_file", json!({"path": secret, "content": "pwned"})).await?,
        denied(&secret)
    );
    // A sibling whose name merely starts with the root's name is not inside it.
    let sibling = format!("{}-other/x.txt", server.root.display());
    assert_eq!(call(&client, "read_file", json!({ "path": sibling })).await?, denied(&sibling));
    assert_eq!(read(&server.outside.join("secret.txt"))?, SECRET);
    client.cancel().await?;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_to_a_file_outside_is_refused_and_the_file_is_untouched() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    symlink(server.outside.join("secret.txt"), server.root.join("link.txt"))?;
    // A dangling link: writing through it would create a file outside.
    symlink(server.outside.join("planted.txt"), server.root.join("dangling.txt"))?;
    let client = server.client().await?;

    let outcome = call(&client, "read_file", json!({"path": "link.txt"})).await?;
    assert_eq!(outcome, denied("link.txt"));
    assert!(!outcome.text.contains(SECRET));
    assert_eq!(call(&client, "get_file_info", json!({"path": "link.txt"})).await?, denied("link.txt"));
    assert_eq!(
        call(&client, "write_file", json!({"path": "link.txt", "content": "pwned"})).await?,
        denied("link.txt")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "dangling.txt", "content": "pwned"})).await?,
        Outcome::err("access denied: dangling.txt is a symbolic link whose target does not exist")
    );
    assert!(!server.outside.join("planted.txt").exists());
    assert_eq!(read(&server.outside.join("secret.txt"))?, SECRET);
    client.cancel().await?;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_to_a_directory_outside_is_refused_and_not_searched() -> Result<(), Error> {
    use std::os::unix::fs::symlink;

    let server = spawn(SessionMode::Stateful).await?;
    symlink(&server.outside, server.root.join("escape"))?;
    let client = server.client().await?;

    assert_eq!(call(&client, "list_directory", json!({"path": "escape"})).await?, denied("escape"));
    assert_eq!(
        call(&client, "read_file", json!({"path": "escape/secret.txt"})).await?,
        denied("escape/secret.txt")
    );
    // Missing files behind the link are refused too, not reported "not found" (no probing).
    assert_eq!(
        call(&client, "read_file", json!({"path": "escape/missing.txt"})).await?,
        denied("escape/missing.txt")
    );
    assert_eq!(
        call(&client, "write_file", json!({"path": "escape/new.txt", "content": "pwned"})).await?,
        denied("escape/new.txt")
    );
    assert_eq!(
        call(&client, "search_files", json!({"path": "escape", "pattern": "secret"})).await?,
        denied("escape")
    );
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "secret"})).await?,
        Outcome::ok("No matches found"),
        "the search does not follow the link out"
    );
    assert!(!server.outside.join("new.txt").exists());
    assert_eq!(read(&server.outside.join("secret.txt"))?, SECRET);
    client.cancel().await?;
    Ok(())
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

    assert_eq!(call(&client, "read_file", json!({"path": "alias.txt"})).await?, Outcome::ok("real data"));
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
    assert_eq!(
        call(&client, "search_files", json!({"path": "", "pattern": "alias"})).await?,
        Outcome::ok("alias.txt\nalias_dir"),
        "links inside are listed but not descended into"
    );
    client.cancel().await?;
    Ok(())
}
