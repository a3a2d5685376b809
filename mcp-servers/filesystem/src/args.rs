//! The tools' arguments: their names and shapes follow `@modelcontextprotocol/server-filesystem`
//! (so agents written for it work unchanged), their schemas are strict (`additionalProperties:
//! false`: an unknown argument is an error, not silently dropped), and counts take any whole JSON
//! number (`3` or `3.0`), as the reference's `number` arguments do.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::listing::SortBy;

/// Arguments of `list_directory`, `get_file_info` and `create_directory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// A path relative to the first allowed directory ("" or "." is that directory), or an
    /// absolute path inside any allowed directory.
    pub path: String,
}

/// Arguments of `read_text_file` and `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadTextFileArgs {
    /// Path of the file (relative to the first allowed directory, or absolute inside one).
    pub path: String,
    /// Return only the first N lines.
    #[serde(default, deserialize_with = "whole_number")]
    #[schemars(with = "Option<f64>")]
    pub head: Option<usize>,
    /// Return only the last N lines.
    #[serde(default, deserialize_with = "whole_number")]
    #[schemars(with = "Option<f64>")]
    pub tail: Option<usize>,
}

/// A count given as any JSON number with no fraction (`3`, `3.0`; models write both), as the
/// reference server's `number` arguments take it; `null` is "not given".
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).map(Some).map_err(serde::de::Error::custom);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= usize::MAX as f64 => Ok(Some(f as usize)),
        _ => Err(serde::de::Error::custom(format!("expected a whole number of lines >= 0, got {n}"))),
    }
}

/// Arguments of `list_directory_with_sizes`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListWithSizesArgs {
    /// Directory to list.
    pub path: String,
    /// `name` (default) or `size` (largest first).
    #[serde(default)]
    pub sort_by: Option<SortBy>,
}

/// Arguments of `read_multiple_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMultipleFilesArgs {
    /// Paths of the files to read.
    pub paths: Vec<String>,
}

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// Path of the file. Its parent directory must exist.
    pub path: String,
    /// Complete new content of the file (UTF-8 text).
    pub content: String,
}

/// One replacement of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditOperation {
    /// Text to find: must occur exactly once, byte for byte (whitespace included).
    pub old_text: String,
    /// Text to put in its place.
    pub new_text: String,
}

/// Arguments of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditFileArgs {
    /// Path of the file to edit.
    pub path: String,
    /// Replacements, applied in order (each to the result of the previous ones).
    pub edits: Vec<EditOperation>,
    /// Only return the diff; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Arguments of `move_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFileArgs {
    /// File or directory to move.
    pub source: String,
    /// New path; must not exist yet.
    pub destination: String,
}

/// Arguments of `search_files`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchFilesArgs {
    /// Directory to search in.
    pub path: String,
    /// Case-insensitive substring of the name, or a glob (`*.md`; with a `/` it is matched
    /// against the path relative to `path`, e.g. `src/**/*.rs`).
    pub pattern: String,
    /// Globs of names (or, with a `/`, relative paths) to skip; an excluded directory is not
    /// searched.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

/// Arguments of `directory_tree`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryTreeArgs {
    /// Directory at the top of the tree.
    pub path: String,
    /// Globs of names (or, with a `/`, relative paths) to leave out.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}
