//! Confinement: turning a client-supplied path into a host path that is inside the root.
//!
//! This module owns the one security rule of the crate: no tool may touch anything outside the
//! canonical root. Every tool goes through [`Root::existing`] or [`Root::for_write`]; nothing
//! else in the crate joins client strings onto host paths.
//!
//! Path convention: a client path is relative to the root (`""` and `"."` name the root). An
//! absolute path is accepted only when it lies under the canonical root (so clients of the
//! reference server that send full paths keep working); any other absolute path is refused.
//!
//! Resolution, in order:
//! 1. lexical: `.` is dropped, `..` pops a component, and popping past the root is refused
//!    before the filesystem is consulted (so `../x` is refused whether or not `x` exists);
//! 2. the path is canonicalised (symlinks followed) and must start with the canonical root;
//! 3. for a path that does not exist, its deepest existing ancestor is canonicalised and must be
//!    inside the root, so a missing file under a symlink that points outside is refused rather
//!    than reported as "not found" (no probing of the host).
//!
//! What it does not do (yet): the check and the later open are two system calls, so a process
//! that can swap a directory for a symlink in between could escape. Closing that needs
//! `openat2(RESOLVE_BENEATH)`/`cap-std`; it belongs to the hardening step, behind this API.

use std::{
    ffi::OsString,
    io,
    path::{Component, Path, PathBuf},
};

use crate::error::FsError;

/// The canonical root directory every path is confined to.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    canonical: PathBuf,
}

/// Where `write_file` may write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteTarget {
    /// An existing file, by its canonical path (symlinks already followed): truncate it.
    Existing(PathBuf),
    /// A new file in an existing directory inside the root: create it exclusively.
    New(PathBuf),
}

/// Outcome of resolving a client path that stayed inside the root.
enum Resolved {
    /// The path exists; its canonical form is inside the root.
    Existing(PathBuf),
    /// The path does not exist. `ancestor` is the canonical form of its deepest existing
    /// ancestor (inside the root) and `rest` the components below it that are missing.
    Missing { ancestor: PathBuf, rest: Vec<OsString> },
}

impl Root {
    /// Trusts `canonical` to be canonical already (see [`crate::FsConfig::new`]). A root that is
    /// not canonical fails closed: canonical paths never start with it, so everything is refused.
    pub(crate) fn new(canonical: PathBuf) -> Self {
        Self { canonical }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.canonical
    }

    /// `path` relative to the root with `/` separators, for showing to clients.
    pub(crate) fn display_relative(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.canonical).unwrap_or(path);
        relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
    }

    /// Canonical path of an existing file or directory inside the root.
    pub(crate) fn existing(&self, raw: &str) -> Result<PathBuf, FsError> {
        match self.resolve(raw)? {
            Resolved::Existing(path) => Ok(path),
            Resolved::Missing { .. } => Err(FsError::NotFound { path: raw.to_owned() }),
        }
    }

    /// Where `write_file` may write `raw`: an existing regular file (through symlinks that stay
    /// inside), or a new name directly inside an existing directory of the root.
    pub(crate) fn for_write(&self, raw: &str) -> Result<WriteTarget, FsError> {
        match self.resolve(raw)? {
            Resolved::Existing(path) if path.is_dir() => Err(FsError::IsADirectory { path: raw.to_owned() }),
            Resolved::Existing(path) => Ok(WriteTarget::Existing(path)),
            Resolved::Missing { ancestor, rest } => {
                let parent = || {
                    Path::new(raw)
                        .parent()
                        .map(|p| p.display().to_string())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| ".".to_owned())
                };
                let [name] = rest.as_slice() else {
                    return Err(FsError::MissingParent { path: raw.to_owned(), parent: parent() });
                };
                if !ancestor.is_dir() {
                    return Err(FsError::NotADirectory { path: parent() });
                }
                let target = ancestor.join(name);
                // `canonicalize` said "missing" but something is there: a dangling symlink.
                if target.symlink_metadata().is_ok() {
                    return Err(FsError::DanglingSymlink { path: raw.to_owned() });
                }
                Ok(WriteTarget::New(target))
            }
        }
    }

    fn resolve(&self, raw: &str) -> Result<Resolved, FsError> {
        let outside = || FsError::OutsideRoot { path: raw.to_owned() };
        let components = self.lexical_components(raw).ok_or_else(outside)?;
        let inside = |canonical: PathBuf| {
            if canonical.starts_with(&self.canonical) { Ok(canonical) } else { Err(outside()) }
        };
        // Try the full path, then ever shorter prefixes until one exists (the root always does).
        for depth in (0..=components.len()).rev() {
            let candidate: PathBuf = std::iter::once(self.canonical.as_os_str())
                .chain(components[..depth].iter().map(OsString::as_os_str))
                .collect();
            match candidate.canonicalize() {
                Ok(canonical) if depth == components.len() => {
                    return inside(canonical).map(Resolved::Existing);
                }
                Ok(canonical) => {
                    return inside(canonical)
                        .map(|ancestor| Resolved::Missing { ancestor, rest: components[depth..].to_vec() });
                }
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(FsError::io("access", raw, e)),
            }
        }
        Err(FsError::io(
            "access",
            raw,
            io::Error::new(io::ErrorKind::NotFound, "the allowed directory is gone"),
        ))
    }

    /// The normal components of `raw` relative to the root, or `None` if it lexically leaves
    /// the root (`..` past the top, or an absolute path elsewhere).
    fn lexical_components(&self, raw: &str) -> Option<Vec<OsString>> {
        let path = Path::new(raw);
        let relative = if path.is_absolute() { path.strip_prefix(&self.canonical).ok()? } else { path };
        let mut stack = Vec::new();
        for component in relative.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    stack.pop()?;
                }
                Component::Normal(name) => stack.push(name.to_owned()),
                Component::RootDir | Component::Prefix(_) => return None,
            }
        }
        Some(stack)
    }
}

/// Errors meaning "this path does not exist" (as opposed to "you may not look").
fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Root {
        Root::new(PathBuf::from("/srv/data"))
    }

    fn lexical(raw: &str) -> Option<Vec<String>> {
        root()
            .lexical_components(raw)
            .map(|v| v.into_iter().map(|s| s.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn relative_paths_are_normalised_inside_the_root() {
        assert_eq!(lexical(""), Some(vec![]));
        assert_eq!(lexical("."), Some(vec![]));
        assert_eq!(lexical("a/./b/../c"), Some(vec!["a".into(), "c".into()]));
        assert_eq!(lexical("a/.."), Some(vec![]));
    }

    #[test]
    fn dotdot_past_the_root_is_refused_lexically() {
        assert_eq!(lexical(".."), None);
        assert_eq!(lexical("../etc/passwd"), None);
        assert_eq!(lexical("a/../../b"), None);
    }

    #[test]
    fn absolute_paths_are_accepted_only_under_the_root() {
        assert_eq!(lexical("/srv/data"), Some(vec![]));
        assert_eq!(lexical("/srv/data/x/y"), Some(vec!["x".into(), "y".into()]));
        assert_eq!(lexical("/srv/data/../etc"), None);
        assert_eq!(lexical("/srv/database"), None);
        assert_eq!(lexical("/etc/passwd"), None);
        assert_eq!(lexical("/"), None);
    }

    #[test]
    fn display_relative_uses_forward_slashes_and_empty_for_the_root() {
        let r = root();
        assert_eq!(r.display_relative(Path::new("/srv/data/a/b.txt")), "a/b.txt");
        assert_eq!(r.display_relative(Path::new("/srv/data")), "");
    }
}
