//! A filesystem MCP server over streamable HTTP, confined to one root directory.
//!
//! It exposes the tools of `@modelcontextprotocol/server-filesystem` that agents use most —
//! `read_file`, `write_file`, `list_directory`, `search_files`, `get_file_info` — with the same
//! names and argument shapes, at `/mcp`, plus `GET /health`.
//!
//! What it owns: resolving client paths inside the root (the private `confine` module, the only
//! place that may), the five operations, and the HTTP wiring for both [`SessionMode`]s.
//! What it must not do: touch anything outside the canonical root (symlinks included), return
//! file contents anywhere but the tool result (logs carry tool, path, outcome and duration
//! only), or turn an expected failure into a panic, a JSON-RPC error or an HTTP 500 — every
//! failure is a tool result with `isError: true`.
//!
//! Paths are relative to the root; `""` and `"."` are the root itself. An absolute path is
//! accepted only when it lies under the canonical root; any other absolute path is refused.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use teal_mcp_filesystem::{FsConfig, SessionMode, serve};
//! let cfg = FsConfig::new("/srv/workspace")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, cfg, SessionMode::Stateless, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod confine;
mod error;
mod http;
mod ops;
mod server;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, FsError};
pub use http::{ServerOptions, SessionMode, router, router_with_options, serve, serve_with_options};
pub use server::{FilesystemServer, PathArgs, SearchFilesArgs, WriteFileArgs};

/// Which directory is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// The canonical root (absolute, symlinks resolved). Build it with [`FsConfig::new`]: a root
    /// that is not canonical fails closed (every path is refused).
    pub root: PathBuf,
}

impl FsConfig {
    /// Canonicalises `root` and checks that it is a directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let given = root.as_ref();
        let root = given
            .canonicalize()
            .map_err(|error| ConfigError::Unresolvable { path: given.to_owned(), error })?;
        if !root.is_dir() {
            return Err(ConfigError::NotADirectory { path: given.to_owned() });
        }
        Ok(Self { root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_canonicalises_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("sub"))?;
        let cfg = FsConfig::new(dir.path().join("sub/../sub/."))?;
        assert_eq!(cfg.root, dir.path().canonicalize()?.join("sub"));
        Ok(())
    }

    #[test]
    fn config_refuses_a_missing_root_or_a_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope");
        let err = FsConfig::new(&missing).err().map(|e| e.to_string());
        let expected = format!("filesystem root {} cannot be resolved: ", missing.display());
        assert!(err.as_deref().is_some_and(|e| e.starts_with(&expected)), "{err:?}");

        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x")?;
        let err = FsConfig::new(&file).err().map(|e| e.to_string());
        assert_eq!(err, Some(format!("filesystem root {} is not a directory", file.display())));
        Ok(())
    }
}
