//! The MCP face of the crate: tool names, argument shapes and descriptions, the read-only
//! switch, and the mapping of every outcome to a `CallToolResult`.
//!
//! Tool names and argument names follow `@modelcontextprotocol/server-filesystem`, so agents
//! written for it work unchanged. Every failure (refusal, missing file, bad pattern, even a
//! panicking blocking task) becomes a result with `isError: true`; so do arguments that miss
//! the schema (rmcp 3.11 reports `failed to deserialize parameters: …` that way, before our
//! code runs). One `tracing` event per call records tool, path, outcome (`ok`, `error` or
//! `denied`) and duration, never file contents.
//!
//! Read-only mode: the mutating tools (those whose `read_only_hint` is not `true`) are left out
//! of `tools/list`, and calling one anyway is refused before any path is looked at.

use std::{sync::Arc, time::Instant};

use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams, Tool},
    service::RequestContext,
    tool, tool_handler, tool_router,
};

use crate::{
    args::{
        DirectoryTreeArgs, EditFileArgs, ListWithSizesArgs, MoveFileArgs, PathArgs, ReadMultipleFilesArgs,
        ReadTextFileArgs, SearchFilesArgs, WriteFileArgs,
    },
    error::FsError,
    media,
    ops::{self, Ctx, Edit},
};

/// What every server instance shares: built once, cloned by `Arc` per session (or per request
/// when stateless), so building an instance costs two reference counts.
#[derive(Debug)]
pub(crate) struct Shared {
    ctx: Arc<Ctx>,
    read_only: bool,
    router: ToolRouter<FilesystemServer>,
    listed: Vec<Tool>,
}

impl Shared {
    pub(crate) fn new(ctx: Ctx, read_only: bool) -> Self {
        let router = FilesystemServer::tool_router();
        let listed = router
            .list_all()
            .into_iter()
            .filter(|tool| !read_only || !is_mutating(tool))
            .map(|mut tool| {
                tool.output_schema = Some(Arc::new(output_schema(&tool.name)));
                // Strict even where there are no arguments to deny (`list_allowed_directories`).
                Arc::make_mut(&mut tool.input_schema).entry("additionalProperties").or_insert(false.into());
                tool
            })
            .collect();
        Self { ctx: Arc::new(ctx), read_only, router, listed }
    }
}

/// Every tool answers `structuredContent: {"content": …}`: the text it also sends, or (for
/// `read_media_file`) the one content block it sends.
fn output_schema(tool: &str) -> serde_json::Map<String, serde_json::Value> {
    let content = if tool == "read_media_file" {
        serde_json::json!({"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": 1})
    } else {
        serde_json::json!({"type": "string"})
    };
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"content": content},
        "required": ["content"],
        "additionalProperties": false,
    });
    match schema {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn is_mutating(tool: &Tool) -> bool {
    tool.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true)
}

/// One MCP server instance (rmcp builds one per session, or per request when stateless).
#[derive(Debug, Clone)]
pub struct FilesystemServer {
    shared: Arc<Shared>,
}

impl FilesystemServer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Refuses a mutating tool on a read-only server (the tool's `read_only_hint` annotation
    /// decides, the same one that hides it from `tools/list`), else runs `op` on the blocking
    /// pool; logs the one line for this call and turns the outcome into a tool result.
    async fn run<F>(&self, tool: &'static str, path: String, op: F) -> CallToolResult
    where
        F: FnOnce(&Ctx) -> Result<String, FsError> + Send + 'static,
    {
        self.run_blocks(tool, path, move |ctx| {
            let text = op(ctx)?;
            let structured = serde_json::json!({ "content": text });
            Ok((ContentBlock::text(text), structured))
        })
        .await
    }

    /// [`Self::run`] for a tool whose result is one content block and its structured content.
    async fn run_blocks<F>(&self, tool: &'static str, path: String, op: F) -> CallToolResult
    where
        F: FnOnce(&Ctx) -> Result<(ContentBlock, serde_json::Value), FsError> + Send + 'static,
    {
        let started = Instant::now();
        let refused = self.shared.read_only && self.shared.router.get(tool).is_none_or(is_mutating);
        let outcome = if refused {
            Ok(Err(FsError::ReadOnly { tool }))
        } else {
            let ctx = Arc::clone(&self.shared.ctx);
            tokio::task::spawn_blocking(move || op(&ctx)).await
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(Ok((block, structured))) => {
                tracing::info!(tool, path, outcome = "ok", duration_ms, "tool call");
                let mut result = CallToolResult::success(vec![block]);
                result.structured_content = Some(structured);
                result
            }
            Ok(Err(error)) => {
                let outcome = if error.is_denial() { "denied" } else { "error" };
                tracing::warn!(tool, path, outcome, duration_ms, %error, "tool call");
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
        name = "read_text_file",
        description = "Read a UTF-8 text file: all of it, or only its first `head` or last \
                       `tail` lines. Files over the server's size limit are refused.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_text_file(&self, Parameters(args): Parameters<ReadTextFileArgs>) -> CallToolResult {
        let ReadTextFileArgs { path, head, tail } = args;
        self.run("read_text_file", path.clone(), move |ctx| ops::read_text_file(ctx, &path, head, tail)).await
    }

    #[tool(
        name = "read_file",
        description = "Same as read_text_file (kept for older clients).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_file(&self, Parameters(args): Parameters<ReadTextFileArgs>) -> CallToolResult {
        let ReadTextFileArgs { path, head, tail } = args;
        self.run("read_file", path.clone(), move |ctx| ops::read_text_file(ctx, &path, head, tail)).await
    }

    #[tool(
        name = "read_multiple_files",
        description = "Read several text files at once. Each comes back as `path:` and its \
                       content, or `path: Error - reason`, separated by `---`; one failure does \
                       not fail the others. Together they may hold at most the size limit.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_multiple_files(
        &self,
        Parameters(args): Parameters<ReadMultipleFilesArgs>,
    ) -> CallToolResult {
        let paths = args.paths;
        self.run("read_multiple_files", paths.join(","), move |ctx| Ok(ops::read_multiple_files(ctx, &paths)))
            .await
    }

    #[tool(
        name = "write_file",
        description = "Create a new file or completely replace an existing one with the given \
                       text (atomically). The parent directory must already exist.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn write_file(&self, Parameters(args): Parameters<WriteFileArgs>) -> CallToolResult {
        let WriteFileArgs { path, content } = args;
        self.run("write_file", path.clone(), move |ctx| ops::write_file(ctx, &path, &content)).await
    }

    #[tool(
        name = "edit_file",
        description = "Replace text in a file. Each edit's oldText must occur exactly once, \
                       byte for byte (whitespace and indentation included); edits apply in \
                       order. Returns a git-style unified diff. With dryRun: true nothing is \
                       written. If any edit fails, nothing is written.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn edit_file(&self, Parameters(args): Parameters<EditFileArgs>) -> CallToolResult {
        let EditFileArgs { path, edits, dry_run } = args;
        let edits: Vec<Edit> =
            edits.into_iter().map(|e| Edit { old_text: e.old_text, new_text: e.new_text }).collect();
        self.run("edit_file", path.clone(), move |ctx| ops::edit_file(ctx, &path, &edits, dry_run)).await
    }

    #[tool(
        name = "create_directory",
        description = "Create a directory, and any missing parents. Succeeds if it already exists.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn create_directory(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let path = args.path;
        self.run("create_directory", path.clone(), move |ctx| ops::create_directory(ctx, &path)).await
    }

    #[tool(
        name = "list_directory",
        description = "List the entries of a directory, one per line, sorted by name: \
                       `[DIR] name` for directories and `[FILE] name` for everything else.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_directory(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let path = args.path;
        self.run("list_directory", path.clone(), move |ctx| ops::list_directory(ctx, &path)).await
    }

    #[tool(
        name = "list_directory_with_sizes",
        description = "List the entries of a directory with their sizes: `[DIR] name` or \
                       `[FILE] name  size` a line, sorted by name (or by size, largest first, with \
                       sortBy: \"size\"), then the number of files and directories and their \
                       combined size.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_directory_with_sizes(
        &self,
        Parameters(args): Parameters<ListWithSizesArgs>,
    ) -> CallToolResult {
        let ListWithSizesArgs { path, sort_by } = args;
        self.run("list_directory_with_sizes", path.clone(), move |ctx| {
            ops::list_directory_with_sizes(ctx, &path, sort_by.unwrap_or_default())
        })
        .await
    }

    #[tool(
        name = "read_media_file",
        description = "Read an image or audio file (or any other file) as base64 with its MIME \
                       type: images and audio come back as image/audio content, anything else as \
                       an embedded resource. Files over the server's size limit are refused.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_media_file(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let path = args.path;
        self.run_blocks("read_media_file", path.clone(), move |ctx| media::read_media_file(ctx, &path)).await
    }

    #[tool(
        name = "directory_tree",
        description = "Recursive tree of a directory as JSON: [{name, type: \"file\"|\"directory\", \
                       children}] (directories always have children; symlinks are files).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn directory_tree(&self, Parameters(args): Parameters<DirectoryTreeArgs>) -> CallToolResult {
        let DirectoryTreeArgs { path, exclude_patterns } = args;
        self.run("directory_tree", path.clone(), move |ctx| {
            ops::directory_tree(ctx, &path, &exclude_patterns)
        })
        .await
    }

    #[tool(
        name = "move_file",
        description = "Move or rename a file or directory. Fails if the destination exists.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn move_file(&self, Parameters(args): Parameters<MoveFileArgs>) -> CallToolResult {
        let MoveFileArgs { source, destination } = args;
        let logged = format!("{source} -> {destination}");
        self.run("move_file", logged, move |ctx| ops::move_file(ctx, &source, &destination)).await
    }

    #[tool(
        name = "search_files",
        description = "Recursively search a directory for files and directories whose name \
                       contains `pattern` (case-insensitive) or matches it as a glob. Returns the \
                       matching paths, one per line, or `No matches found`.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_files(&self, Parameters(args): Parameters<SearchFilesArgs>) -> CallToolResult {
        let SearchFilesArgs { path, pattern, exclude_patterns } = args;
        self.run("search_files", path.clone(), move |ctx| {
            ops::search_files(ctx, &path, &pattern, &exclude_patterns)
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
        let path = args.path;
        self.run("get_file_info", path.clone(), move |ctx| ops::get_file_info(ctx, &path)).await
    }

    #[tool(
        name = "list_allowed_directories",
        description = "The directories this server may access, one absolute path per line. \
                       Relative paths are resolved against the first one.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_allowed_directories(&self) -> CallToolResult {
        self.run("list_allowed_directories", String::new(), |ctx| Ok(ops::list_allowed_directories(ctx)))
            .await
    }
}

/// How long a client may reuse `tools/list` (2026-07-28 `ttlMs`): five minutes.
const LIST_TTL_MS: u64 = 300_000;

#[tool_handler(
    router = self.shared.router,
    name = "teal-mcp-filesystem",
    instructions = "Files under the allowed directories (see list_allowed_directories). Relative \
                    paths resolve against the first one; nothing outside them (through `..`, \
                    absolute paths or symlinks) can be read or written."
)]
impl ServerHandler for FilesystemServer {
    /// The router's tools, less the mutating ones on a read-only server.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<rmcp::RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        let supports_cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= rmcp::model::ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools: self.shared.listed.clone(),
            meta: None,
            next_cursor: None,
            // The list changes only when the server restarts with other settings.
            ttl_ms: supports_cache_hints.then_some(LIST_TTL_MS),
            cache_scope: supports_cache_hints.then_some(rmcp::model::CacheScope::Public),
        })
    }
}
