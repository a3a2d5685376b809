//! Errors of the filesystem tools and of the server configuration.
//!
//! [`FsError`] is what a tool call can fail with; its `Display` text is sent to the MCP client
//! verbatim as an `isError: true` tool result, so every message names the path *as the client
//! wrote it* and never the host path of the root, another host path, or any file content.
//! [`ConfigError`] is what building an [`FsConfig`](crate::FsConfig) can fail with, at startup.

use std::{io, path::PathBuf};

/// Why a tool call failed. Each variant is an expected outcome reported to the client as a tool
/// result with `isError: true`, never as a JSON-RPC or HTTP error.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path (after `..`, absolute-path and symlink resolution) leaves the root.
    #[error("access denied: {path} resolves outside the allowed directory")]
    OutsideRoot { path: String },
    /// A symbolic link whose target does not exist: writing through it could create a file
    /// anywhere, so it is refused whatever it points at.
    #[error("access denied: {path} is a symbolic link whose target does not exist")]
    DanglingSymlink { path: String },
    #[error("not found: {path}")]
    NotFound { path: String },
    #[error("not a directory: {path}")]
    NotADirectory { path: String },
    #[error("is a directory: {path}")]
    IsADirectory { path: String },
    #[error("cannot read {path}: the file is not valid UTF-8 text")]
    NotUtf8 { path: String },
    #[error("cannot write {path}: parent directory {parent} does not exist")]
    MissingParent { path: String, parent: String },
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    /// Any other I/O failure (permissions, too many symlink levels…). `io::Error`'s text never
    /// contains a path, so this leaks nothing about the host.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl FsError {
    pub(crate) fn io(action: &'static str, path: &str, source: io::Error) -> Self {
        Self::Io { action, path: path.to_owned(), source }
    }
}

/// Why the configured root cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is in the message rather than `source()`, so `anyhow`'s `main` prints it
    /// once.
    #[error("filesystem root {} cannot be resolved: {error}", path.display())]
    Unresolvable { path: PathBuf, error: io::Error },
    #[error("filesystem root {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
}
