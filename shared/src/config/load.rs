//! Reading agent configs from disk: one file, or a folder of `*.yaml` / `*.yml` files.
//!
//! Owns the walk (recursive, sorted, dot-entries skipped, symlinks followed to a bounded depth),
//! reading the tool policy files found on the way (`policies/*.cedar`, `*.cedarschema`), and turns I/O failures into [`ConfigError`]s naming the path. It must not interpret YAML:
//! every file's text goes to [`parse_documents_in`], with the files beside it readable as sidecars, and every file's errors are
//! collected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::error::{ConfigError, ConfigErrors};
use crate::config::{ParseEnv, Parsed, parse_documents_in};
use crate::governance::PolicyFile;

/// The largest file beside a config that is read (a JSON Schema).
const MAX_SIDECAR_BYTES: u64 = 1024 * 1024;

/// Folder nesting deeper than this is refused (it also ends symlink loops).
const MAX_DIR_DEPTH: usize = 32;

/// Loads a file, or every `*.yaml` / `*.yml` under a folder in sorted path order.
///
/// `source` in messages is `path` joined with the file, so relative paths stay relative.
/// Entries whose name starts with `.` are skipped (editor backups, Kubernetes `..data` links).
pub fn load_path(path: &Path) -> Result<Parsed, ConfigErrors> {
    load_path_with_vars(path, &HashMap::new())
}

/// [`load_path`], with `${NAME}` in MCP server `url`s replaced from `vars` (for instance the
/// process environment plus the URL of a server `teal serve` started itself).
pub fn load_path_with_vars(path: &Path, vars: &HashMap<String, String>) -> Result<Parsed, ConfigErrors> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    let mut errors = Vec::new();
    let mut policy_paths = Vec::new();
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, 0, &mut files, &mut errors);
        files.sort();
        (files, policy_paths) = files.into_iter().partition(|f| !is_policy(f));
        if files.is_empty() && errors.is_empty() {
            errors.push(ConfigError {
                source: path.display().to_string(),
                line: None,
                path: String::new(),
                message: "no agent configs (*.yaml, *.yml) found".to_owned(),
            });
        }
        files
    } else {
        vec![path.to_path_buf()]
    };

    let mut parsed = Parsed::default();
    for file in &policy_paths {
        match read_policy(file) {
            Ok(text) => parsed.policy_files.push(PolicyFile { source: file.display().to_string(), text }),
            Err(e) => errors.push(io_error(file, &e)),
        }
    }
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(io_error(file, &e));
                continue;
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let sidecar = |name: &str| read_sidecar(&dir, name);
        match parse_documents_in(&file.display().to_string(), &text, &ParseEnv { vars, sidecar: &sidecar }) {
            Ok(p) => {
                parsed.agents.extend(p.agents);
                parsed.warnings.extend(p.warnings);
            }
            Err(e) => errors.extend(e),
        }
    }
    tracing::debug!(
        path = %path.display(),
        files = files.len(),
        agents = parsed.agents.len(),
        errors = errors.len(),
        "loaded agent configs"
    );
    if errors.is_empty() { Ok(parsed) } else { Err(ConfigErrors(errors)) }
}

/// A file beside a config, by a relative name that stays inside the config's folder.
fn read_sidecar(dir: &Path, name: &str) -> Result<Option<String>, String> {
    let rel = Path::new(name);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err("give a path relative to the config's folder, without `..`".to_owned());
    }
    let path = dir.join(rel);
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
        Ok(m) if m.len() > MAX_SIDECAR_BYTES => Err(format!("larger than {MAX_SIDECAR_BYTES} bytes")),
        Ok(_) => std::fs::read_to_string(&path).map(Some).map_err(|e| e.to_string()),
    }
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, errors: &mut Vec<ConfigError>) {
    if depth > MAX_DIR_DEPTH {
        errors.push(ConfigError {
            source: dir.display().to_string(),
            line: None,
            path: String::new(),
            message: format!("folders nested deeper than {MAX_DIR_DEPTH} levels (symlink loop?)"),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(io_error(dir, &e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(io_error(dir, &e));
                continue;
            }
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: a linked folder or file counts as what it points to.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, depth + 1, files, errors),
            Ok(_) if is_yaml(&path) || is_policy(&path) => files.push(path),
            Ok(_) => {}
            Err(e) => errors.push(io_error(&path, &e)),
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// A policy file's text (at most [`MAX_SIDECAR_BYTES`]).
fn read_policy(path: &Path) -> std::io::Result<String> {
    if std::fs::metadata(path)?.len() > MAX_SIDECAR_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_SIDECAR_BYTES} bytes")));
    }
    std::fs::read_to_string(path)
}

fn is_policy(path: &Path) -> bool {
    PolicyFile::is_policy_path(&path.to_string_lossy())
}

fn io_error(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError {
        source: path.display().to_string(),
        line: None,
        path: String::new(),
        message: format!("cannot read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn agent(name: &str) -> String {
        format!(
            "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: {name}\nversion: 0.1\n\
             spec:\n  agent:\n    model: m\n    system_prompt: p\n    role: r\n"
        )
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `dir` as a path relative to the current directory (`../../tmp/…`).
    fn relative(dir: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in cwd.components().skip(1) {
            rel.push("..");
        }
        rel.join(dir.strip_prefix("/").unwrap())
    }

    #[test]
    fn a_folder_is_read_recursively_in_sorted_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("agents");
        write(&root, "b.yml", &agent("b"));
        write(&root, "a.yaml", &format!("{}---\n{}", agent("a1"), agent("a2")));
        write(&root, "nested/deeper/c.YAML", &agent("c"));
        write(&root, "notes.txt", "not yaml: [");
        write(&root, ".hidden.yaml", "not yaml: [");
        write(&root, ".git/x.yaml", "not yaml: [");

        let rel = relative(&root);
        assert!(rel.is_relative());
        let p = load_path(&rel).unwrap();
        let names: Vec<&str> = p.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a1", "a2", "b", "c"]);
        let r = rel.display();
        assert_eq!(p.agents[0].source, format!("{r}/a.yaml"));
        assert_eq!(p.agents[3].source, format!("{r}/nested/deeper/c.YAML"));
        let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 4);
        assert_eq!(
            warnings[3],
            format!("{r}/nested/deeper/c.YAML:9 spec.agent.role: ignored: not used by teal-serverless")
        );

        // A single file works too.
        let p = load_path(&rel.join("b.yml")).unwrap();
        assert_eq!(p.agents[0].source, format!("{r}/b.yml"));
    }

    #[test]
    fn errors_of_every_file_are_collected() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "good.yaml", &agent("good"));
        write(root, "x/bad1.yaml", &agent("bad1").replace("model: m", "model: [m]"));
        write(root, "bad2.yaml", &agent("bad2").replace("kind: Chat", "kind: Workflow"));
        write(root, "bad3.yaml", "a: [\n");
        std::fs::write(root.join("bad4.yaml"), [0xff, 0xfe, b'\n']).unwrap();
        let err = load_path(root).unwrap_err();
        let d = root.display();
        let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert_eq!(lines[0], format!("{d}/bad2.yaml:2 kind: unsupported kind `Workflow`: expected Chat"));
        assert!(lines[1].starts_with(&format!("{d}/bad3.yaml:2: ")), "{}", lines[1]);
        assert!(lines[2].starts_with(&format!("{d}/bad4.yaml: cannot read: ")), "{}", lines[2]);
        assert_eq!(
            lines[3],
            format!("{d}/x/bad1.yaml:7 spec.agent.model: expected a string, found a sequence")
        );
        assert_eq!(err.to_string(), lines.join("\n"));
    }

    #[test]
    fn an_empty_folder_or_a_missing_path_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "readme.md", "# no configs");
        let err = load_path(tmp.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no agent configs (*.yaml, *.yml) found", tmp.path().display())
        );
        let missing = tmp.path().join("nope");
        let err = load_path(&missing).unwrap_err();
        assert_eq!(err.0[0].source, missing.display().to_string());
        assert_eq!(err.0[0].line, None);
        assert!(err.0[0].message.starts_with("cannot read: "), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.yaml", &agent("a"));
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("loop")).unwrap();
        let err = load_path(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("symlink loop?"), "{err}");
    }
}
