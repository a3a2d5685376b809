//! Errors of the filesystem tools and of the server configuration.
//!
//! [`FsError`] is what a tool call can fail with; its `Display` text is sent to the MCP client
//! verbatim as an `isError: true` tool result, so every message names the path *as the client
//! wrote it* (or as the tools display paths: relative to the first allowed directory, absolute
//! in the others) and never another host path or any file content. [`ConfigError`] is what
//! building an [`FsConfig`](crate::FsConfig) or the binary's [`Settings`](crate::Settings) can
//! fail with, at startup.

use std::{io, path::PathBuf};

use crate::size::{ByteSize, Size};

/// The variable named in size refusals (the library is configured the same way by code).
const SIZE_VAR: &str = "MCP_FILESYSTEM_MAX_FILE_SIZE";

/// Why a tool call failed. Each variant is an expected outcome reported to the client as a tool
/// result with `isError: true`, never as a JSON-RPC or HTTP error.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path (after `..`, absolute-path and symlink resolution) leaves the allowed dirs.
    #[error("access denied: {path} resolves outside the allowed directories")]
    OutsideAllowed { path: String },
    /// A symbolic link whose target does not exist (the path itself or a directory on it):
    /// writing through it could create a file anywhere, so it is refused whatever it points at.
    #[error("access denied: {path} is or goes through a symbolic link whose target does not exist")]
    DanglingSymlink { path: String },
    /// Moving an allowed directory itself (or onto one) would change what is allowed.
    #[error("access denied: {path} is an allowed directory itself")]
    AllowedDirItself { path: String },
    /// A mutating tool on a read-only server.
    #[error("access denied: {tool} is disabled because the server is read-only (MCP_FILESYSTEM_READONLY)")]
    ReadOnly { tool: &'static str },
    /// Not a path the kernel could take (NUL byte, name or path too long); `path` is shortened.
    #[error("invalid path {path}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("not found: {path}")]
    NotFound { path: String },
    #[error("not a directory: {path}")]
    NotADirectory { path: String },
    #[error("is a directory: {path}")]
    IsADirectory { path: String },
    /// A FIFO, socket or device: reading one could block or have side effects.
    #[error("not a regular file: {path}")]
    NotAFile { path: String },
    #[error("cannot create directory {path}: a file with that name already exists")]
    FileInTheWay { path: String },
    #[error("cannot move {source_path} to {destination}: the destination already exists")]
    DestinationExists { source_path: String, destination: String },
    #[error("cannot read {path}: the file is not valid UTF-8 text")]
    NotUtf8 { path: String },
    #[error("cannot {action} {path}: parent directory {parent} does not exist")]
    MissingParent { action: &'static str, path: String, parent: String },
    /// A file, or content to write, over the size limit. `subject` is `file x` or `content for
    /// x`; the size comes from metadata, before anything is read.
    #[error("{subject} is {size}, over the {limit} limit ({SIZE_VAR})")]
    TooLarge { subject: String, size: Size, limit: ByteSize },
    /// The file was within the limit when checked and grew past it while being read.
    #[error("file {path} grew past the {limit} limit ({SIZE_VAR}) while being read")]
    GrewTooLarge { path: String, limit: ByteSize },
    /// `read_multiple_files` returns at most one limit's worth of content in total.
    #[error(
        "file {path} is {size}, over the {left} left of the {limit} limit ({SIZE_VAR}) that one \
         read_multiple_files call shares between its files"
    )]
    CombinedTooLarge { path: String, size: Size, left: Size, limit: ByteSize },
    #[error("cannot use both head and tail")]
    HeadAndTail,
    #[error("edit_file {path}: no edits given")]
    NoEdits { path: String },
    #[error("edit_file {path}: edit {index} has an empty oldText; nothing was changed")]
    EmptyOldText { path: String, index: usize },
    #[error(
        "edit_file {path}: edit {index} oldText was not found (matching is exact, whitespace \
         included); nothing was changed"
    )]
    NoMatch { path: String, index: usize },
    #[error(
        "edit_file {path}: edit {index} oldText matches {count} times, it must match exactly \
         once (include more surrounding lines); nothing was changed"
    )]
    AmbiguousMatch { path: String, index: usize, count: usize },
    /// The path changed under us between resolution and use (a component was swapped for a
    /// symlink): refused rather than followed.
    #[error("cannot {action} {path}: it changed while being accessed, try again")]
    Changed { action: &'static str, path: String },
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

    /// `true` for refusals of the security model (logged as `outcome = "denied"`), `false` for
    /// ordinary failures. Exhaustive on purpose: a new variant must be classified.
    pub fn is_denial(&self) -> bool {
        match self {
            Self::OutsideAllowed { .. }
            | Self::DanglingSymlink { .. }
            | Self::AllowedDirItself { .. }
            | Self::ReadOnly { .. }
            | Self::TooLarge { .. }
            | Self::GrewTooLarge { .. }
            | Self::CombinedTooLarge { .. } => true,
            Self::InvalidPath { .. }
            | Self::NotFound { .. }
            | Self::NotADirectory { .. }
            | Self::IsADirectory { .. }
            | Self::NotAFile { .. }
            | Self::FileInTheWay { .. }
            | Self::DestinationExists { .. }
            | Self::NotUtf8 { .. }
            | Self::MissingParent { .. }
            | Self::HeadAndTail
            | Self::NoEdits { .. }
            | Self::EmptyOldText { .. }
            | Self::NoMatch { .. }
            | Self::AmbiguousMatch { .. }
            | Self::Changed { .. }
            | Self::InvalidPattern { .. }
            | Self::Io { .. } => false,
        }
    }
}

/// Why the configuration cannot be served. Raised once, at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is in the message rather than `source()`, so `anyhow`'s `main` prints it
    /// once.
    #[error("allowed directory {} cannot be resolved: {error}", path.display())]
    Unresolvable { path: PathBuf, error: io::Error },
    #[error("allowed directory {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("no allowed directory given")]
    NoAllowedDirs,
    /// An environment variable (or the flag standing for it) that does not parse.
    #[error("invalid {var}={value:?} ({flag}): {expected}")]
    InvalidValue { var: &'static str, flag: &'static str, value: String, expected: String },
    #[error(
        "MCP_FILESYSTEM_ROOT (--root) and MCP_FILESYSTEM_ALLOWED_DIRS (--allowed-dirs) are both \
         set: use one (ROOT is the single-directory shorthand)"
    )]
    RootAndAllowedDirs,
    #[error(
        "no directory to serve: set MCP_FILESYSTEM_ALLOWED_DIRS (comma-separated) or \
         MCP_FILESYSTEM_ROOT"
    )]
    NothingToServe,
    #[error("MCP_AUTH_TOKEN is set but empty: unset it to disable authentication")]
    EmptyAuthToken,
}
