//! The five filesystem operations, as blocking functions from (root, arguments) to the text
//! the client sees.
//!
//! Each function resolves its path through [`Root`] first and touches the disk only at the
//! resolved, confined path. They are synchronous on purpose (a recursive search is simpler and
//! cheaper as plain `std::fs`); the MCP layer runs them on tokio's blocking pool. They know
//! nothing about MCP, HTTP or logging.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use globset::{GlobBuilder, GlobMatcher};

use crate::{
    confine::{Root, WriteTarget},
    error::FsError,
};

/// Text printed by `search_files` when nothing matched (same as the reference server).
pub(crate) const NO_MATCHES: &str = "No matches found";

pub(crate) fn read_file(root: &Root, path: &str) -> Result<String, FsError> {
    let resolved = root.existing(path)?;
    if resolved.is_dir() {
        return Err(FsError::IsADirectory { path: path.to_owned() });
    }
    let bytes = fs::read(&resolved).map_err(|e| FsError::io("read", path, e))?;
    String::from_utf8(bytes).map_err(|_| FsError::NotUtf8 { path: path.to_owned() })
}

pub(crate) fn write_file(root: &Root, path: &str, content: &str) -> Result<String, FsError> {
    let mut file = match root.for_write(path)? {
        WriteTarget::Existing(target) => OpenOptions::new().write(true).truncate(true).open(target),
        // `create_new` (O_EXCL) also refuses a symlink planted since the check.
        WriteTarget::New(target) => OpenOptions::new().write(true).create_new(true).open(target),
    }
    .map_err(|e| FsError::io("write", path, e))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| FsError::io("write", path, e))?;
    Ok(format!("Successfully wrote to {path}"))
}

/// `[DIR] name` / `[FILE] name` lines sorted by name; an empty directory gives an empty text.
/// Entries are classified without following symlinks (a link is a `[FILE]`), as the reference.
pub(crate) fn list_directory(root: &Root, path: &str) -> Result<String, FsError> {
    let dir = existing_dir(root, path)?;
    let mut entries = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| FsError::io("list", path, e))? {
        let entry = entry.map_err(|e| FsError::io("list", path, e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        entries.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    entries.sort();
    Ok(entries
        .iter()
        .map(|(name, is_dir)| format!("{} {name}", if *is_dir { "[DIR]" } else { "[FILE]" }))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Recursive search under `path`; matching entries relative to the root, sorted, one a line.
///
/// `pattern` with a glob character (`*?[{`) is a case-insensitive glob, otherwise a
/// case-insensitive substring. A pattern (or exclude pattern) containing `/` is matched against
/// the path relative to `path`, otherwise against the entry name. An excluded directory is not
/// entered. Symlinked directories are never entered (no loops), and symlinks that resolve
/// outside the root are skipped; unreadable subdirectories are skipped silently.
pub(crate) fn search_files(
    root: &Root,
    path: &str,
    pattern: &str,
    exclude_patterns: &[String],
) -> Result<String, FsError> {
    let start = existing_dir(root, path)?;
    let matcher = Matcher::new(pattern, true)?;
    let excludes = exclude_patterns.iter().map(|p| Matcher::new(p, false)).collect::<Result<Vec<_>, _>>()?;

    let mut found = Vec::new();
    let mut pending = vec![start.clone()];
    let mut first = true;
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if first => return Err(FsError::io("search", path, e)),
            Err(_) => continue,
        };
        first = false;
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let full = entry.path();
            if file_type.is_symlink()
                && !full.canonicalize().is_ok_and(|target| target.starts_with(root.path()))
            {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let below_start = relative_slash_path(&full, &start);
            if excludes.iter().any(|m| m.is_match(&name, &below_start)) {
                continue;
            }
            if matcher.is_match(&name, &below_start) {
                found.push(root.display_relative(&full));
            }
            if file_type.is_dir() {
                pending.push(full);
            }
        }
    }
    if found.is_empty() {
        return Ok(NO_MATCHES.to_owned());
    }
    found.sort();
    Ok(found.join("\n"))
}

/// `key: value` lines: size, created/modified/accessed (RFC 3339 UTC, when the platform reports
/// them), isDirectory, isFile, permissions (octal, unix only). Symlinks are followed.
pub(crate) fn get_file_info(root: &Root, path: &str) -> Result<String, FsError> {
    let resolved = root.existing(path)?;
    let meta = fs::metadata(&resolved).map_err(|e| FsError::io("stat", path, e))?;
    let mut lines = vec![format!("size: {}", meta.len())];
    for (key, time) in
        [("created", meta.created()), ("modified", meta.modified()), ("accessed", meta.accessed())]
    {
        if let Ok(time) = time {
            lines.push(format!("{key}: {}", rfc3339(time)));
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

fn existing_dir(root: &Root, path: &str) -> Result<PathBuf, FsError> {
    let dir = root.existing(path)?;
    if dir.is_dir() { Ok(dir) } else { Err(FsError::NotADirectory { path: path.to_owned() }) }
}

fn relative_slash_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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

/// `YYYY-MM-DDTHH:MM:SSZ` for a system time (UTC, whole seconds).
fn rfc3339(time: SystemTime) -> String {
    let secs: i64 = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before the epoch: round towards the past, so 0.5 s before is 23:59:59.
        Err(e) => {
            let before = e.duration();
            let whole = before.as_secs() + u64::from(before.subsec_nanos() > 0);
            -i64::try_from(whole).unwrap_or(i64::MAX)
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1969-12-31T23:59:59Z");
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
    fn an_invalid_glob_is_reported_with_its_pattern() {
        let err = Matcher::new("[a-", true).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.starts_with("invalid pattern \"[a-\": ")), "{err:?}");
    }
}
