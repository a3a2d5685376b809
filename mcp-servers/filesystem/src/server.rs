//! The MCP face of the crate: tool names, argument shapes and descriptions, and the mapping of
//! every outcome to a `CallToolResult`.
//!
//! Tool names and argument names follow `@modelcontextprotocol/server-filesystem`, so agents
//! written for it work unchanged. Every failure (refusal, missing file, bad pattern, even a
//! panicking blocking task) becomes a result with `isError: true`; so do arguments that miss
//! the schema (rmcp 3.11 reports `failed to deserialize parameters: …` that way, before our
//! code runs). One `tracing` event per call records tool, path, outcome and duration, never
//! file contents.

use std::{sync::Arc, time::Instant};

use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{confine::Root, error::FsError, ops};

/// Arguments of `read_file`, `list_directory` and `get_file_info`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PathArgs {
    /// Path relative to the allowed directory ("" or "." is the directory itself). An absolute
    /// path is accepted only if it lies inside the allowed directory.
    pub path: String,
}

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteFileArgs {
    /// Path of the file, relative to the allowed directory. Its parent directory must exist.
    pub path: String,
    /// Complete new content of the file (UTF-8 text).
    pub content: String,
}

/// Arguments of `search_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchFilesArgs {
    /// Directory to search in, relative to the allowed directory.
    pub path: String,
    /// Case-insensitive substring of the name, or a glob (`*.md`; with a `/` it is matched
    /// against the path relative to `path`, e.g. `src/**/*.rs`).
    pub pattern: String,
    /// Globs of names (or, with a `/`, relative paths) to skip; an excluded directory is not
    /// searched.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

/// One MCP server instance (rmcp builds one per session, or per request when stateless).
#[derive(Debug, Clone)]
pub struct FilesystemServer {
    root: Arc<Root>,
    tool_router: ToolRouter<Self>,
}

impl FilesystemServer {
    pub(crate) fn new(root: Arc<Root>) -> Self {
        Self { root, tool_router: Self::tool_router() }
    }

    /// Runs `op` on the blocking pool, logs the one line for this call, and turns the outcome
    /// into a tool result.
    async fn run<F>(&self, tool: &'static str, path: String, op: F) -> CallToolResult
    where
        F: FnOnce(&Root, &str) -> Result<String, FsError> + Send + 'static,
    {
        let started = Instant::now();
        let root = Arc::clone(&self.root);
        let op_path = path.clone();
        let outcome = tokio::task::spawn_blocking(move || op(&root, &op_path)).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(Ok(text)) => {
                tracing::info!(tool, path, outcome = "ok", duration_ms, "tool call");
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            Ok(Err(error)) => {
                tracing::warn!(tool, path, outcome = "error", duration_ms, %error, "tool call");
                CallToolResult::error(vec![ContentBlock::text(error.to_string())])
            }
            Err(join_error) => {
                tracing::error!(tool, path, outcome = "error", duration_ms, %join_error, "tool call");
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "internal error: {tool} did not complete"
                ))])
            }
        }
    }
}

#[tool_router]
impl FilesystemServer {
    #[tool(
        name = "read_file",
        description = "Read the complete contents of a UTF-8 text file inside the allowed directory.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_file(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        self.run("read_file", args.path, ops::read_file).await
    }

    #[tool(
        name = "write_file",
        description = "Create a new file or completely overwrite an existing file with the given \
                       text. The parent directory must already exist inside the allowed directory.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn write_file(&self, Parameters(args): Parameters<WriteFileArgs>) -> CallToolResult {
        let WriteFileArgs { path, content } = args;
        self.run("write_file", path, move |root, path| ops::write_file(root, path, &content)).await
    }

    #[tool(
        name = "list_directory",
        description = "List the entries of a directory, one per line, sorted by name: \
                       `[DIR] name` for directories and `[FILE] name` for everything else.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_directory(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        self.run("list_directory", args.path, ops::list_directory).await
    }

    #[tool(
        name = "search_files",
        description = "Recursively search a directory for files and directories whose name \
                       contains `pattern` (case-insensitive) or matches it as a glob. Returns the \
                       matching paths relative to the allowed directory, one per line, or \
                       `No matches found`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_files(&self, Parameters(args): Parameters<SearchFilesArgs>) -> CallToolResult {
        let SearchFilesArgs { path, pattern, exclude_patterns } = args;
        self.run("search_files", path, move |root, path| {
            ops::search_files(root, path, &pattern, &exclude_patterns)
        })
        .await
    }

    #[tool(
        name = "get_file_info",
        description = "Metadata of a file or directory, one `key: value` per line: size, \
                       created, modified, accessed (when available), isDirectory, isFile, \
                       permissions (octal).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_file_info(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        self.run("get_file_info", args.path, ops::get_file_info).await
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "teal-mcp-filesystem",
    instructions = "Files under one allowed directory. Paths are relative to it; nothing outside \
                    it (through `..`, absolute paths or symlinks) can be read or written."
)]
impl ServerHandler for FilesystemServer {}
