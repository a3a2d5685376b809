//! The filesystem operations, as blocking functions from (context, arguments) to the text the
//! client sees.
//!
//! Each function resolves its paths through [`AllowedDirs`] first and touches the disk only
//! through the pinned [`Handle`]s it gets back. They are synchronous on purpose (a recursive
//! walk is simpler and cheaper as plain `std::fs`); the MCP layer runs them on tokio's blocking
//! pool. They know nothing about MCP, HTTP, logging or the read-only switch (the MCP layer
//! refuses mutating tools before they get here).

use std::{
    fs::{self, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, SecondsFormat, TimeDelta};
use globset::{GlobBuilder, GlobMatcher};
use serde_json::{Value, json};

use crate::listing::{Entry, entries};
pub(crate) use crate::listing::{list_directory, list_directory_with_sizes};
use crate::{
    confine::{AllowedDirs, EntryError, Handle, Pinned, WriteTarget, is_missing, slash_path},
    error::FsError,
    size::{ByteSize, Size},
};

/// Text printed by `search_files` when nothing matched (same as the reference server).
pub(crate) const NO_MATCHES: &str = "No matches found";

/// Directories deeper than this below the start of `directory_tree` are shown without their
/// children (and marked `"truncated": true`), so a pathological tree cannot exhaust the stack.
const MAX_TREE_DEPTH: usize = 64;

/// What every operation works within.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub dirs: AllowedDirs,
    pub max_file_size: ByteSize,
}

/// One `edit_file` replacement.
#[derive(Debug, Clone)]
pub(crate) struct Edit {
    pub old_text: String,
    pub new_text: String,
}

/// The whole text of a file, or its first `head` / last `tail` lines (with their line ends,
/// so the result is an exact slice of the file; a final newline does not start an empty line).
pub(crate) fn read_text_file(
    ctx: &Ctx,
    path: &str,
    head: Option<usize>,
    tail: Option<usize>,
) -> Result<String, FsError> {
    if head.is_some() && tail.is_some() {
        return Err(FsError::HeadAndTail);
    }
    let text = read_text(ctx, path, ctx.max_file_size.bytes(), |size| match size {
        Some(size) => too_large(format!("file {path}"), size, ctx.max_file_size),
        None => FsError::GrewTooLarge { path: path.to_owned(), limit: ctx.max_file_size },
    })?;
    Ok(match (head, tail) {
        (Some(n), _) => first_lines(&text, n).to_owned(),
        (_, Some(n)) => last_lines(&text, n).to_owned(),
        (None, None) => text,
    })
}

/// Each file as `path:\ncontent\n` or `path: Error - reason`, separated by `\n---\n` (the
/// reference server's format). One failing file does not fail the call. All files together
/// return at most one size limit of content: a file that would go past it is an error entry.
pub(crate) fn read_multiple_files(ctx: &Ctx, paths: &[String]) -> String {
    let limit = ctx.max_file_size;
    let mut left = limit.bytes();
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        let result = read_text(ctx, path, left, |size| match size {
            Some(size) if size > limit.bytes() => too_large(format!("file {path}"), size, limit),
            Some(size) => {
                FsError::CombinedTooLarge { path: path.clone(), size: Size(size), left: Size(left), limit }
            }
            None => FsError::GrewTooLarge { path: path.clone(), limit },
        });
        parts.push(match result {
            Ok(text) => {
                left -= text.len() as u64;
                format!("{path}:\n{text}\n")
            }
            Err(error) => format!("{path}: Error - {error}"),
        });
    }
    parts.join("\n---\n")
}

/// Replaces the file atomically: the content goes to a new file in the same directory, which
/// is then renamed over the target. Concurrent writers each win whole; a reader never sees a
/// mix. An existing file keeps its permission bits (not its owner, nor its other hard links).
pub(crate) fn write_file(ctx: &Ctx, path: &str, content: &str) -> Result<String, FsError> {
    let size = content.len() as u64;
    if size > ctx.max_file_size.bytes() {
        return Err(too_large(format!("content for {path}"), size, ctx.max_file_size));
    }
    let target = ctx.dirs.for_write(path)?;
    replace(&target, content.as_bytes()).map_err(|e| FsError::io("write", path, e))?;
    Ok(format!("Successfully wrote to {path}"))
}

/// Applies `edits` in order, each to the result of the previous one; each `old_text` must occur
/// exactly once (byte-exact, whitespace and line ends included; overlapping occurrences count).
/// Returns a git-style unified diff; unless `dry_run`, writes the result like `write_file`. Any
/// failing edit fails the call and nothing is written.
pub(crate) fn edit_file(ctx: &Ctx, path: &str, edits: &[Edit], dry_run: bool) -> Result<String, FsError> {
    if edits.is_empty() {
        return Err(FsError::NoEdits { path: path.to_owned() });
    }
    let limit = ctx.max_file_size;
    let original = read_text(ctx, path, limit.bytes(), |size| match size {
        Some(size) => too_large(format!("file {path}"), size, limit),
        None => FsError::GrewTooLarge { path: path.to_owned(), limit },
    })?;
    let mut text = original.clone();
    for (i, edit) in edits.iter().enumerate() {
        let index = i + 1;
        if edit.old_text.is_empty() {
            return Err(FsError::EmptyOldText { path: path.to_owned(), index });
        }
        let found = occurrences(&text, &edit.old_text);
        match found.as_slice() {
            [] => return Err(FsError::NoMatch { path: path.to_owned(), index }),
            [at] => text.replace_range(*at..*at + edit.old_text.len(), &edit.new_text),
            more => return Err(FsError::AmbiguousMatch { path: path.to_owned(), index, count: more.len() }),
        }
    }
    if text.len() as u64 > limit.bytes() {
        return Err(too_large(format!("the edited {path}"), text.len() as u64, limit));
    }
    let diff = unified_diff(path, &original, &text);
    if !dry_run {
        let target = ctx.dirs.for_write(path)?;
        replace(&target, text.as_bytes()).map_err(|e| FsError::io("write", path, e))?;
    }
    Ok(diff)
}

/// Creates the directory and any missing parents; fine if it already exists.
pub(crate) fn create_directory(ctx: &Ctx, path: &str) -> Result<String, FsError> {
    let done = || Ok(format!("Successfully created directory {path}"));
    let (mut current, rest) = match ctx.dirs.pin(path)? {
        Pinned::Existing(handle) if handle.meta().is_dir() => return done(),
        Pinned::Existing(_) => return Err(FsError::FileInTheWay { path: path.to_owned() }),
        Pinned::Missing { ancestor, rest } => (ancestor, rest),
    };
    if !current.meta().is_dir() {
        return Err(FsError::NotADirectory { path: ctx.dirs.display(current.real()) });
    }
    for name in rest {
        match fs::create_dir(current.child(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(FsError::io("create directory", path, e)),
        }
        current = current.open_child(&name, &ctx.dirs, path)?;
        if !current.meta().is_dir() {
            return Err(FsError::Changed { action: "create directory", path: path.to_owned() });
        }
    }
    done()
}

/// Pretty JSON `[{"name", "type": "file"|"directory", "children": [...]}]`, sorted by name;
/// directories always have `children`. Symlinks are `file`s and never entered. Exclude
/// patterns work as in `search_files`.
pub(crate) fn directory_tree(ctx: &Ctx, path: &str, exclude_patterns: &[String]) -> Result<String, FsError> {
    let start = ctx.dirs.existing_dir(path)?;
    let excludes = exclude_patterns.iter().map(|p| Matcher::new(p, false)).collect::<Result<Vec<_>, _>>()?;
    let tree = tree(ctx, &start, &start, &excludes, 0, path)?;
    serde_json::to_string_pretty(&tree).map_err(|e| FsError::io("list", path, io::Error::other(e)))
}

fn tree(
    ctx: &Ctx,
    dir: &Handle,
    start: &Handle,
    excludes: &[Matcher],
    depth: usize,
    path: &str,
) -> Result<Value, FsError> {
    let entries = entries(dir).map_err(|e| FsError::io("list", path, e))?;
    let mut nodes = Vec::with_capacity(entries.len());
    for Entry { name, shown, kind } in entries {
        let full = dir.real().join(&name);
        if excludes.iter().any(|m| m.is_match(&shown, &relative_slash_path(&full, start.real()))) {
            continue;
        }
        if !kind.is_dir() {
            nodes.push(json!({"name": shown, "type": "file"}));
            continue;
        }
        if depth + 1 >= MAX_TREE_DEPTH {
            nodes.push(json!({"name": shown, "type": "directory", "children": [], "truncated": true}));
            continue;
        }
        // Unreadable or vanished subdirectories are shown empty rather than failing the tree.
        let children = match dir.open_child(&name, &ctx.dirs, path) {
            Ok(child) if child.meta().is_dir() => {
                tree(ctx, &child, start, excludes, depth + 1, path).unwrap_or_else(|_| json!([]))
            }
            Ok(_) | Err(_) => json!([]),
        };
        nodes.push(json!({"name": shown, "type": "directory", "children": children}));
    }
    Ok(Value::Array(nodes))
}

/// Moves a file or directory (the entry itself: a symlink is moved as a link). Fails if the
/// destination exists. A file is moved with `link` + `unlink`, which can never replace a
/// destination created meanwhile; a directory with `rename`, which could still replace an
/// *empty* directory created in the instant between the check and the rename.
pub(crate) fn move_file(ctx: &Ctx, source: &str, destination: &str) -> Result<String, FsError> {
    let (from_dir, from_name) = ctx.dirs.entry(source).map_err(|e| match e {
        EntryError::Fs(e) => e,
        EntryError::MissingParent => FsError::NotFound { path: source.to_owned() },
    })?;
    let (to_dir, to_name) = ctx.dirs.entry(destination).map_err(|e| match e {
        EntryError::Fs(e) => e,
        EntryError::MissingParent => FsError::MissingParent {
            action: "move to",
            path: destination.to_owned(),
            parent: Path::new(destination).parent().map(|p| p.display().to_string()).unwrap_or_default(),
        },
    })?;
    let from = from_dir.child(&from_name);
    let to = to_dir.child(&to_name);
    let source_meta = match fs::symlink_metadata(&from) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => return Err(FsError::NotFound { path: source.to_owned() }),
        Err(e) => return Err(FsError::io("move", source, e)),
    };
    let exists =
        || FsError::DestinationExists { source_path: source.to_owned(), destination: destination.to_owned() };
    match fs::symlink_metadata(&to) {
        Ok(_) => return Err(exists()),
        Err(e) if is_missing(&e) => {}
        Err(e) => return Err(FsError::io("move", source, e)),
    }
    let moved = if source_meta.is_dir() {
        fs::rename(&from, &to)
    } else {
        match fs::hard_link(&from, &to) {
            Ok(()) => fs::remove_file(&from).inspect_err(|_| {
                let _ = fs::remove_file(&to);
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
            // Cross-device fails either way; a filesystem without hard links can still rename.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => Err(e),
            Err(_) => fs::rename(&from, &to),
        }
    };
    moved.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => exists(),
        _ => FsError::io("move", source, e),
    })?;
    Ok(format!("Successfully moved {source} to {destination}"))
}

/// Recursive search under `path`; matching entries as displayed paths, sorted, one a line.
///
/// `pattern` with a glob character (`*?[{`) is a case-insensitive glob, otherwise a
/// case-insensitive substring. A pattern (or exclude pattern) containing `/` is matched against
/// the path relative to `path`, otherwise against the entry name. An excluded directory is not
/// entered. Symlinked directories are never entered (no loops), and symlinks that resolve
/// outside are skipped; unreadable subdirectories are skipped silently.
pub(crate) fn search_files(
    ctx: &Ctx,
    path: &str,
    pattern: &str,
    exclude_patterns: &[String],
) -> Result<String, FsError> {
    let start = ctx.dirs.existing_dir(path)?;
    let matcher = Matcher::new(pattern, true)?;
    let excludes = exclude_patterns.iter().map(|p| Matcher::new(p, false)).collect::<Result<Vec<_>, _>>()?;

    let mut found = Vec::new();
    let mut pending = Vec::new();
    let search = Search { ctx, start: start.real(), matcher: &matcher, excludes: &excludes };
    search.visit(&start, &mut found, &mut pending).map_err(|e| FsError::io("search", path, e))?;
    while let Some(next) = pending.pop() {
        // Each directory is pinned and re-checked before it is listed; one that cannot be
        // (unreadable, vanished, swapped for a link) is skipped.
        match Handle::open(&next, &ctx.dirs, path) {
            Ok(dir) if dir.meta().is_dir() => {
                let _ = search.visit(&dir, &mut found, &mut pending);
            }
            Ok(_) | Err(_) => {}
        }
    }
    if found.is_empty() {
        return Ok(NO_MATCHES.to_owned());
    }
    found.sort();
    Ok(found.join("\n"))
}

struct Search<'a> {
    ctx: &'a Ctx,
    start: &'a Path,
    matcher: &'a Matcher,
    excludes: &'a [Matcher],
}

impl Search<'_> {
    /// Matches the entries of `dir`, queueing its subdirectories (never symlinks).
    fn visit(&self, dir: &Handle, found: &mut Vec<String>, pending: &mut Vec<PathBuf>) -> io::Result<()> {
        for Entry { name, shown, kind } in entries(dir)? {
            let full = dir.real().join(&name);
            let dirs = &self.ctx.dirs;
            if kind.is_symlink()
                && !full.canonicalize().is_ok_and(|t| dirs.canonical().any(|d| t.starts_with(d)))
            {
                continue;
            }
            let below_start = relative_slash_path(&full, self.start);
            if self.excludes.iter().any(|m| m.is_match(&shown, &below_start)) {
                continue;
            }
            if self.matcher.is_match(&shown, &below_start) {
                found.push(dirs.display(&full));
            }
            if kind.is_dir() {
                pending.push(full);
            }
        }
        Ok(())
    }
}

/// `key: value` lines: size, created/modified/accessed (RFC 3339 UTC, when the platform reports
/// them), isDirectory, isFile, permissions (octal, unix only). Symlinks are followed.
pub(crate) fn get_file_info(ctx: &Ctx, path: &str) -> Result<String, FsError> {
    let handle = ctx.dirs.existing(path)?;
    let meta = handle.meta();
    let mut lines = vec![format!("size: {}", meta.len())];
    for (key, time) in
        [("created", meta.created()), ("modified", meta.modified()), ("accessed", meta.accessed())]
    {
        if let Some(text) = time.ok().and_then(rfc3339) {
            lines.push(format!("{key}: {text}"));
        }
    }
    lines.push(format!("isDirectory: {}", meta.is_dir()));
    lines.push(format!("isFile: {}", meta.is_file()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        lines.push(format!("permissions: {:03o}", meta.permissions().mode() & 0o777));
    }
    Ok(lines.join("\n"))
}

/// `Allowed directories:` and one canonical path a line (the reference server's format).
pub(crate) fn list_allowed_directories(ctx: &Ctx) -> String {
    std::iter::once("Allowed directories:".to_owned())
        .chain(ctx.dirs.canonical().map(|d| d.display().to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a regular file as UTF-8 text, refusing more than `cap` bytes (see [`read_bytes`]).
fn read_text(
    ctx: &Ctx,
    path: &str,
    cap: u64,
    over: impl Fn(Option<u64>) -> FsError,
) -> Result<String, FsError> {
    let (bytes, _) = read_bytes(ctx, path, cap, over)?;
    String::from_utf8(bytes).map_err(|_| FsError::NotUtf8 { path: path.to_owned() })
}

/// Reads a regular file, refusing more than `cap` bytes: first from its metadata, before
/// reading anything (`over(Some(size))`), then while reading, in case it grew (`over(None)`).
/// Gives the bytes and the pinned file.
pub(crate) fn read_bytes(
    ctx: &Ctx,
    path: &str,
    cap: u64,
    over: impl Fn(Option<u64>) -> FsError,
) -> Result<(Vec<u8>, Handle), FsError> {
    let handle = ctx.dirs.existing(path)?;
    let meta = handle.meta();
    if meta.is_dir() {
        return Err(FsError::IsADirectory { path: path.to_owned() });
    }
    if !meta.is_file() {
        return Err(FsError::NotAFile { path: path.to_owned() });
    }
    if meta.len() > cap {
        return Err(over(Some(meta.len())));
    }
    let file = handle.open_read().map_err(|e| FsError::io("read", path, e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| FsError::io("read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(over(None));
    }
    Ok((bytes, handle))
}

pub(crate) fn too_large(subject: String, size: u64, limit: ByteSize) -> FsError {
    FsError::TooLarge { subject, size: Size(size), limit }
}

/// Writes `bytes` to a fresh temporary file in the target's pinned directory and renames it
/// over the target. The temporary file is created with `O_EXCL` (never through a symlink) and
/// removed if anything fails.
fn replace(target: &WriteTarget, bytes: &[u8]) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (tmp, mut file) = loop {
        let name =
            format!(".teal-mcp-fs-{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let tmp = target.dir.child(&name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        file.write_all(bytes)?;
        if let Some(existing) = &target.existing {
            file.set_permissions(existing.permissions())?;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, target.dir.child(&target.name))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Byte offsets of every occurrence of `needle` in `haystack`, overlapping ones included.
fn occurrences(haystack: &str, needle: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = haystack.get(from..).and_then(|rest| rest.find(needle)) {
        let at = from + at;
        found.push(at);
        from = at + haystack[at..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// `--- a/path` / `+++ b/path` (an absolute path as is) and hunks with 3 lines of context;
/// only the two header lines when nothing changed. Minimal (Myers) unless that takes over 2 s.
fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let shown = path.trim_start_matches("./");
    let (a, b) = if shown.starts_with('/') {
        (shown.to_owned(), shown.to_owned())
    } else {
        (format!("a/{shown}"), format!("b/{shown}"))
    };
    let diff = similar::TextDiff::configure().timeout(Duration::from_secs(2)).diff_lines(old, new);
    let mut out = format!("--- {a}\n+++ {b}\n");
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out
}

fn first_lines(text: &str, n: usize) -> &str {
    match n.checked_sub(1).and_then(|last| text.match_indices('\n').nth(last)) {
        Some((at, _)) => &text[..=at],
        None if n == 0 => "",
        None => text,
    }
}

fn last_lines(text: &str, n: usize) -> &str {
    let body = text.strip_suffix('\n').unwrap_or(text);
    match n.checked_sub(1).and_then(|last| body.rmatch_indices('\n').nth(last)) {
        Some((at, _)) => &text[at + 1..],
        None if n == 0 => "",
        None => text,
    }
}

fn relative_slash_path(path: &Path, base: &Path) -> String {
    slash_path(path.strip_prefix(base).unwrap_or(path))
}

/// A search or exclude pattern, compiled once per call.
enum Matcher {
    /// Lower-cased needle, matched as a substring of the lower-cased name.
    Substring(String),
    Glob {
        glob: GlobMatcher,
        on_path: bool,
    },
}

impl Matcher {
    /// `substring_allowed`: a search pattern without glob characters is a substring; an exclude
    /// pattern without them is a glob, i.e. an exact (case-insensitive) name or path.
    fn new(pattern: &str, substring_allowed: bool) -> Result<Self, FsError> {
        let is_glob = pattern.contains(['*', '?', '[', '{']);
        if substring_allowed && !is_glob {
            return Ok(Self::Substring(pattern.to_lowercase()));
        }
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| FsError::InvalidPattern {
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        Ok(Self::Glob { glob, on_path: pattern.contains('/') })
    }

    fn is_match(&self, name: &str, relative_path: &str) -> bool {
        match self {
            Self::Substring(needle) => name.to_lowercase().contains(needle.as_str()),
            Self::Glob { glob, on_path } => glob.is_match(if *on_path { relative_path } else { name }),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a system time (UTC, whole seconds, rounded towards the past, so
/// 0.5 s before the epoch is `1969-12-31T23:59:59Z`). `None` past the years chrono can hold
/// (about ±262,000), which no real file time reaches.
fn rfc3339(time: SystemTime) -> Option<String> {
    let since_epoch = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => TimeDelta::from_std(after).ok()?,
        Err(before) => -TimeDelta::from_std(before.duration()).ok()?,
    };
    let at = DateTime::UNIX_EPOCH.checked_add_signed(since_epoch)?;
    Some(at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs)).unwrap_or_default()
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)).as_deref(), Some("1969-12-31T23:59:59Z"));
    }

    #[test]
    fn timestamps_drop_the_fraction_towards_the_past_and_refuse_what_chrono_cannot_hold() {
        let half = Duration::from_millis(500);
        assert_eq!(rfc3339(UNIX_EPOCH + half).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(UNIX_EPOCH - half).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
        if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(1 << 62)) {
            assert_eq!(rfc3339(far), None);
        }
    }

    #[test]
    fn search_pattern_without_glob_characters_is_a_case_insensitive_substring() -> Result<(), FsError> {
        let m = Matcher::new("ReadMe", true)?;
        assert!(m.is_match("README.md", "docs/README.md"));
        assert!(m.is_match("old-readme", "old-readme"));
        assert!(!m.is_match("read.me", "read.me"));
        Ok(())
    }

    #[test]
    fn glob_patterns_match_names_or_slash_paths() -> Result<(), FsError> {
        let name = Matcher::new("*.RS", true)?;
        assert!(name.is_match("main.rs", "src/main.rs"));
        assert!(!name.is_match("main.rsx", "src/main.rsx"));
        let path = Matcher::new("src/*.rs", true)?;
        assert!(path.is_match("main.rs", "src/main.rs"));
        assert!(!path.is_match("main.rs", "src/bin/main.rs"));
        let exclude = Matcher::new("node_modules", false)?;
        assert!(exclude.is_match("Node_Modules", "a/Node_Modules"));
        assert!(!exclude.is_match("node_modules_old", "node_modules_old"));
        Ok(())
    }

    #[test]
    fn head_and_tail_are_exact_slices_of_whole_lines() {
        let text = "a\nb\nc\n";
        assert_eq!(first_lines(text, 0), "");
        assert_eq!(first_lines(text, 2), "a\nb\n");
        assert_eq!(first_lines(text, 9), text);
        assert_eq!(last_lines(text, 0), "");
        assert_eq!(last_lines(text, 1), "c\n");
        assert_eq!(last_lines(text, 2), "b\nc\n");
        assert_eq!(last_lines(text, 9), text);
        assert_eq!(first_lines("x\ny", 1), "x\n");
        assert_eq!(last_lines("x\ny", 1), "y", "no final newline");
    }

    #[test]
    fn occurrences_count_overlaps_and_respect_char_boundaries() {
        assert_eq!(occurrences("aaa", "aa"), [0, 1]);
        assert_eq!(occurrences("héhé", "hé"), [0, 3]);
        assert_eq!(occurrences("abc", "x"), Vec::<usize>::new());
    }

    #[test]
    fn the_diff_is_git_style_with_three_lines_of_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n";
        assert_eq!(
            unified_diff("./notes.txt", old, new),
            "--- a/notes.txt\n+++ b/notes.txt\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
        assert_eq!(unified_diff("/abs/x", "a", "a"), "--- /abs/x\n+++ /abs/x\n");
        assert_eq!(
            unified_diff("x", "a\n", "a"),
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n"
        );
    }

    /// `/proc/self/status` reports size 0 but holds hundreds of bytes: a file whose metadata
    /// understates it, as one that grows after the check. The read stops at the limit.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_that_outgrows_its_metadata_is_refused_while_reading() -> Result<(), Box<dyn std::error::Error>>
    {
        use crate::confine::AllowedDir;
        let proc_self = std::path::PathBuf::from("/proc/self").canonicalize()?;
        let ctx = Ctx {
            dirs: AllowedDirs::new(vec![AllowedDir::new(proc_self.clone(), &proc_self)]),
            max_file_size: ByteSize::new(10).ok_or("zero")?,
        };
        assert_eq!(fs::metadata(proc_self.join("status"))?.len(), 0);
        let refused = read_text_file(&ctx, "status", None, None).err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("file status grew past the 10 B limit (MCP_FILESYSTEM_MAX_FILE_SIZE) while being read")
        );
        Ok(())
    }

    #[test]
    fn an_invalid_glob_is_reported_with_its_pattern() {
        let err = Matcher::new("[a-", true).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.starts_with("invalid pattern \"[a-\": ")), "{err:?}");
    }
}
