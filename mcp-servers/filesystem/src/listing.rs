//! Directory listings: `list_directory` (names) and `list_directory_with_sizes` (names, sizes,
//! totals), in the reference server's formats, and the sorted entries both walk.

use std::{ffi::OsString, fs, io};

use crate::{confine::Handle, error::FsError, ops::Ctx};

/// `[DIR] name` / `[FILE] name` lines sorted by name; an empty directory gives an empty text.
/// Entries are classified without following symlinks (a link is a `[FILE]`), as the reference.
pub(crate) fn list_directory(ctx: &Ctx, path: &str) -> Result<String, FsError> {
    let dir = ctx.dirs.existing_dir(path)?;
    let entries = entries(&dir).map_err(|e| FsError::io("list", path, e))?;
    Ok(entries
        .iter()
        .map(|e| format!("{} {}", if e.kind.is_dir() { "[DIR]" } else { "[FILE]" }, e.shown))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// How `list_directory_with_sizes` orders its entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// By name (the default).
    #[default]
    Name,
    /// Largest first.
    Size,
}

/// `[DIR] name` / `[FILE] name  size` lines (sizes of what links point to are their own, as
/// links are not followed), then `Total: N files, M directories` and `Combined size: …`.
pub(crate) fn list_directory_with_sizes(ctx: &Ctx, path: &str, sort_by: SortBy) -> Result<String, FsError> {
    let dir = ctx.dirs.existing_dir(path)?;
    let listed = entries(&dir).map_err(|e| FsError::io("list", path, e))?;
    let mut sized: Vec<(&Entry, u64)> = listed
        .iter()
        .map(|e| {
            let size = if e.kind.is_dir() {
                0
            } else {
                fs::symlink_metadata(dir.child(&e.name)).map(|m| m.len()).unwrap_or(0)
            };
            (e, size)
        })
        .collect();
    if sort_by == SortBy::Size {
        sized.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    }
    let mut lines: Vec<String> = sized
        .iter()
        .map(|(e, size)| {
            if e.kind.is_dir() {
                format!("[DIR] {}", e.shown)
            } else {
                format!("[FILE] {:<30} {:>10}", e.shown, human_size(*size))
            }
        })
        .collect();
    let files = sized.iter().filter(|(e, _)| !e.kind.is_dir()).count();
    let total: u64 = sized.iter().map(|(_, size)| size).sum();
    lines.push(String::new());
    lines.push(format!("Total: {files} files, {} directories", sized.len() - files));
    lines.push(format!("Combined size: {}", human_size(total)));
    Ok(lines.join("\n"))
}

/// `0 B`, `1.50 KB`, `2.00 MB`, … (1024-based, as the reference server prints them).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    if bytes == 0 {
        return "0 B".to_owned();
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()).floor().min(4.0) as usize;
    if exp == 0 {
        return format!("{bytes} B");
    }
    format!("{:.2} {}", bytes as f64 / 1024f64.powi(exp as i32), UNITS[exp])
}

/// One directory entry: its name (as on disk, and lossy UTF-8 for showing and matching) and
/// its type, not followed.
pub(crate) struct Entry {
    pub(crate) name: OsString,
    pub(crate) shown: String,
    pub(crate) kind: fs::FileType,
}

/// Entries of a pinned directory, sorted by name.
pub(crate) fn entries(dir: &Handle) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in dir.read_dir()? {
        let entry = entry?;
        let Ok(kind) = entry.file_type() else { continue };
        let name = entry.file_name();
        entries.push(Entry { shown: name.to_string_lossy().into_owned(), name, kind });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_the_reference_prints_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1000), "1000 B");
        assert_eq!(human_size(1536), "1.50 KB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.00 MB");
    }
}
