//! A filesystem MCP server over streamable HTTP, confined to one or more allowed directories.
//!
//! It exposes the tools of `@modelcontextprotocol/server-filesystem` with the same names and
//! argument shapes — `read_text_file` (and `read_file`), `read_multiple_files`, `write_file`,
//! `edit_file`, `create_directory`, `list_directory`, `directory_tree`, `move_file`,
//! `search_files`, `get_file_info`, `list_allowed_directories` — at `/mcp`, plus `GET /health`.
//!
//! What it owns: resolving client paths inside the allowed directories (the private `confine`
//! module, the only place that may), the operations, the read-only switch and the size limit,
//! and the HTTP wiring (session modes, `Host` allow-list, optional bearer token).
//! What it must not do: touch anything outside the canonical allowed directories (symlinks
//! included), return file contents anywhere but the tool result (logs carry tool, path,
//! outcome and duration only), or turn an expected failure into a panic, a JSON-RPC error or an
//! HTTP 500 — every failure is a tool result with `isError: true`.
//!
//! Paths: a relative path resolves against the first allowed directory (`""` and `"."` are that
//! directory itself); an absolute path must lie inside one of them.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use teal_mcp_filesystem::{ByteSize, FsConfig, SessionMode, serve};
//! let cfg = FsConfig::with_allowed_dirs(["/srv/workspace", "/srv/reference"])?
//!     .with_read_only(true)
//!     .with_max_file_size(ByteSize::parse("1MB").map_err(anyhow::Error::msg)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, cfg, SessionMode::Stateless, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod args;
mod confine;
mod error;
mod health;
mod http;
mod listing;
mod media;
mod ops;
mod server;
mod settings;
mod size;

use std::path::{Path, PathBuf};

pub use args::{
    DirectoryTreeArgs, EditFileArgs, EditOperation, ListWithSizesArgs, MoveFileArgs, PathArgs,
    ReadMultipleFilesArgs, ReadTextFileArgs, SearchFilesArgs, WriteFileArgs,
};
pub use error::{ConfigError, FsError};
pub use health::check_health;
pub use http::{ServerOptions, SessionMode, router, router_with_options, serve, serve_with_options};
pub use listing::SortBy;
pub use server::FilesystemServer;
pub use settings::{RawSettings, Settings};
pub use size::ByteSize;

use crate::confine::AllowedDir;

/// What is served: the allowed directories, whether writes are allowed, and the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    dirs: Vec<AllowedDir>,
    read_only: bool,
    max_file_size: ByteSize,
}

impl FsConfig {
    /// One allowed directory, read-write, [`ByteSize::DEFAULT`] size limit (10 MB).
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::with_allowed_dirs([root])
    }

    /// Several allowed directories (the first is where relative paths resolve). Each is
    /// canonicalised and must be a directory; a directory given twice is kept once.
    pub fn with_allowed_dirs<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Result<Self, ConfigError> {
        let mut allowed: Vec<AllowedDir> = Vec::new();
        for given in dirs {
            let given = given.as_ref();
            let canonical = given
                .canonicalize()
                .map_err(|error| ConfigError::Unresolvable { path: given.to_owned(), error })?;
            if !canonical.is_dir() {
                return Err(ConfigError::NotADirectory { path: given.to_owned() });
            }
            if !allowed.iter().any(|d| d.canonical() == canonical) {
                allowed.push(AllowedDir::new(canonical, given));
            }
        }
        if allowed.is_empty() {
            return Err(ConfigError::NoAllowedDirs);
        }
        Ok(Self { dirs: allowed, read_only: false, max_file_size: ByteSize::DEFAULT })
    }

    /// Read-only: the mutating tools are refused and not listed.
    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Files over `limit` are neither read nor written.
    #[must_use]
    pub fn with_max_file_size(mut self, limit: ByteSize) -> Self {
        self.max_file_size = limit;
        self
    }

    /// The canonical allowed directories (absolute, symlinks resolved), first one first.
    pub fn allowed_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.canonical().to_owned()).collect()
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn max_file_size(&self) -> ByteSize {
        self.max_file_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_canonicalises_the_dirs_and_drops_duplicates() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::create_dir(dir.path().join("other"))?;
        let cfg = FsConfig::with_allowed_dirs([
            dir.path().join("sub/../sub/."),
            dir.path().join("other"),
            dir.path().join("sub"),
        ])?;
        let base = dir.path().canonicalize()?;
        assert_eq!(cfg.allowed_dirs(), [base.join("sub"), base.join("other")]);
        assert!(!cfg.read_only());
        assert_eq!(cfg.max_file_size(), ByteSize::DEFAULT);
        Ok(())
    }

    #[test]
    fn config_refuses_a_missing_dir_a_file_or_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope");
        let err = FsConfig::new(&missing).err().map(|e| e.to_string());
        let expected = format!("allowed directory {} cannot be resolved: ", missing.display());
        assert!(err.as_deref().is_some_and(|e| e.starts_with(&expected)), "{err:?}");

        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x")?;
        let err = FsConfig::new(&file).err().map(|e| e.to_string());
        assert_eq!(err, Some(format!("allowed directory {} is not a directory", file.display())));

        let err = FsConfig::with_allowed_dirs(Vec::<PathBuf>::new()).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no allowed directory given"));
        Ok(())
    }
}
