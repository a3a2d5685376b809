//! Confinement: turning a client-supplied path into something on disk that is inside one of the
//! allowed directories, and keeping it there until it is used.
//!
//! This module owns the one security rule of the crate: no tool may touch anything outside the
//! canonical allowed directories. Every tool goes through [`AllowedDirs`]; nothing else in the
//! crate joins client strings onto host paths.
//!
//! Path convention: a relative path is resolved against the *first* allowed directory (`""` and
//! `"."` name it). An absolute path must lie, lexically, under one of the allowed directories,
//! in their canonical form or as configured (so `/data/x` works when `/data` is a symlink to the
//! real mount). A relative path may climb into another allowed directory with `..` (it is
//! joined onto the first one and normalised before the check).
//!
//! Resolution, in order:
//! 1. syntax: a NUL byte, a component over 255 bytes or a path over 4096 bytes is refused;
//! 2. lexical: `.` is dropped, `..` pops a component, and the result must lie under an allowed
//!    directory before the filesystem is consulted (so `../x` is refused whether or not `x`
//!    exists, and nothing outside is even `stat`ed);
//! 3. the path is canonicalised (symlinks followed) and must lie inside an allowed directory;
//! 4. for a path that does not exist, its deepest existing ancestor is canonicalised and must be
//!    inside, so a missing file under a symlink that points outside is refused rather than
//!    reported as "not found" (no probing of the host).
//!
//! Closing the check-then-use race (Linux on x86_64 and aarch64, std only): what resolution
//! returns is a [`Handle`], an `O_PATH | O_NOFOLLOW` descriptor of the canonical path whose real
//! location is read back from `/proc/self/fd/N` and checked again *after* opening. Everything
//! afterwards goes through that descriptor: files are read by reopening `/proc/self/fd/N`,
//! directories are listed through it, and new names are created, renamed or linked as
//! `/proc/self/fd/N/<name>` (the std equivalent of `openat`/`renameat` on a pinned directory).
//! So a directory swapped for a symlink between the check and the use is either refused (the
//! re-check sees the real target) or never reached (the descriptor still names the original).
//! Elsewhere (other OSes or architectures) [`Handle`] falls back to plain paths and that window
//! remains; see the README.

use std::{
    ffi::{OsStr, OsString},
    fs::{self, Metadata},
    io,
    path::{Component, Path, PathBuf},
};

use crate::error::FsError;

/// Linux `PATH_MAX` and `NAME_MAX`: longer paths cannot be opened anyway.
const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

/// One allowed directory: canonical (what is checked against) and the spellings accepted at the
/// start of an absolute client path (canonical, and as configured: absolute, normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedDir {
    canonical: PathBuf,
    /// Normal components of the canonical and the configured path.
    prefixes: Vec<Vec<OsString>>,
}

impl AllowedDir {
    /// `canonical` must be canonical (see [`crate::FsConfig`]); `configured` is the path the
    /// operator wrote (relative to the working directory if not absolute).
    pub(crate) fn new(canonical: PathBuf, configured: &Path) -> Self {
        let mut prefixes: Vec<Vec<OsString>> = normalise(&canonical).into_iter().collect();
        if let Some(spelling) = std::path::absolute(configured).ok().and_then(|p| normalise(&p))
            && !prefixes.contains(&spelling)
        {
            prefixes.push(spelling);
        }
        Self { canonical, prefixes }
    }

    pub(crate) fn canonical(&self) -> &Path {
        &self.canonical
    }
}

/// The directories every path is confined to (at least one; the first is the default for
/// relative paths).
#[derive(Debug, Clone)]
pub(crate) struct AllowedDirs {
    dirs: Vec<AllowedDir>,
}

/// Outcome of resolving a client path that stayed inside.
pub(crate) enum Resolved {
    /// The path exists; its canonical form is inside.
    Existing(PathBuf),
    /// The path does not exist. `ancestor` is the canonical form of its deepest existing
    /// ancestor (inside) and `rest` the components below it that are missing.
    Missing { ancestor: PathBuf, rest: Vec<OsString> },
}

/// A resolved path, pinned: the object itself if it exists, else its deepest existing ancestor.
pub(crate) enum Pinned {
    Existing(Handle),
    Missing { ancestor: Handle, rest: Vec<OsString> },
}

/// Where a file is to be written: a name in a pinned directory.
pub(crate) struct WriteTarget {
    pub dir: Handle,
    pub name: OsString,
    /// Metadata of the file being replaced (`None` for a new file).
    pub existing: Option<Metadata>,
}

impl AllowedDirs {
    /// `dirs` must not be empty (an empty list refuses everything).
    pub(crate) fn new(dirs: Vec<AllowedDir>) -> Self {
        Self { dirs }
    }

    pub(crate) fn canonical(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.canonical.as_path())
    }

    fn contains(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path.starts_with(&d.canonical))
    }

    fn is_allowed_dir(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path == d.canonical)
    }

    /// How tools show a host path: relative to the first allowed directory with `/`
    /// separators (`""` for the directory itself), absolute in the others. Either form can be
    /// sent back as a path argument.
    pub(crate) fn display(&self, path: &Path) -> String {
        match self.dirs.first().map(|d| path.strip_prefix(&d.canonical)) {
            Some(Ok(relative)) => slash_path(relative),
            _ => path.to_string_lossy().into_owned(),
        }
    }

    /// Resolves without opening anything (symlinks followed).
    pub(crate) fn resolve(&self, raw: &str) -> Result<Resolved, FsError> {
        let (dir, components) = self.locate(raw)?;
        self.resolve_components(dir, &components, raw)
    }

    /// Resolves and pins. The handle of an existing path is the object itself (never a
    /// symlink: one found there now was swapped in since resolution, and is refused).
    pub(crate) fn pin(&self, raw: &str) -> Result<Pinned, FsError> {
        match self.resolve(raw)? {
            Resolved::Existing(path) => {
                let handle = Handle::open(&path, self, raw)?;
                if handle.meta.is_symlink() {
                    return Err(FsError::Changed { action: "access", path: raw.to_owned() });
                }
                Ok(Pinned::Existing(handle))
            }
            Resolved::Missing { ancestor, rest } => {
                Ok(Pinned::Missing { ancestor: Handle::open(&ancestor, self, raw)?, rest })
            }
        }
    }

    /// The pinned, existing file or directory `raw` names.
    pub(crate) fn existing(&self, raw: &str) -> Result<Handle, FsError> {
        match self.pin(raw)? {
            Pinned::Existing(handle) => Ok(handle),
            Pinned::Missing { .. } => Err(FsError::NotFound { path: raw.to_owned() }),
        }
    }

    /// The pinned, existing directory `raw` names.
    pub(crate) fn existing_dir(&self, raw: &str) -> Result<Handle, FsError> {
        let handle = self.existing(raw)?;
        if handle.meta.is_dir() { Ok(handle) } else { Err(FsError::NotADirectory { path: raw.to_owned() }) }
    }

    /// Where `write_file` may write `raw`: an existing regular file (through symlinks that stay
    /// inside; the link is kept and its target replaced), or a new name directly inside an
    /// existing directory.
    pub(crate) fn for_write(&self, raw: &str) -> Result<WriteTarget, FsError> {
        match self.resolve(raw)? {
            Resolved::Existing(path) => {
                let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                    return Err(FsError::IsADirectory { path: raw.to_owned() });
                };
                if self.is_allowed_dir(&path) {
                    return Err(FsError::IsADirectory { path: raw.to_owned() });
                }
                let dir = Handle::open(parent, self, raw)?;
                let meta = fs::symlink_metadata(dir.child(name)).map_err(|e| FsError::io("write", raw, e))?;
                if meta.is_dir() {
                    return Err(FsError::IsADirectory { path: raw.to_owned() });
                }
                if meta.is_symlink() || !dir.meta.is_dir() {
                    return Err(FsError::Changed { action: "write", path: raw.to_owned() });
                }
                if !meta.is_file() {
                    return Err(FsError::NotAFile { path: raw.to_owned() });
                }
                Ok(WriteTarget { dir, name: name.to_owned(), existing: Some(meta) })
            }
            Resolved::Missing { ancestor, rest } => {
                let parent = || {
                    Path::new(raw)
                        .parent()
                        .map(|p| p.display().to_string())
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| ".".to_owned())
                };
                let [name] = rest.as_slice() else {
                    return Err(FsError::MissingParent {
                        action: "write",
                        path: raw.to_owned(),
                        parent: parent(),
                    });
                };
                let dir = Handle::open(&ancestor, self, raw)?;
                if !dir.meta.is_dir() {
                    return Err(FsError::NotADirectory { path: parent() });
                }
                // `canonicalize` said "missing" but something is there: a dangling symlink.
                match fs::symlink_metadata(dir.child(name)) {
                    Ok(meta) if meta.is_symlink() => Err(FsError::DanglingSymlink { path: raw.to_owned() }),
                    Ok(_) => Err(FsError::Changed { action: "write", path: raw.to_owned() }),
                    Err(e) if is_missing(&e) => Ok(WriteTarget { dir, name: name.clone(), existing: None }),
                    Err(e) => Err(FsError::io("write", raw, e)),
                }
            }
        }
    }

    /// The entry `raw` names *as a name*: its pinned parent directory and the last component,
    /// not followed (a symlink is moved as the link itself). For moves. The path must still
    /// resolve inside like any other (a link pointing outside is refused, not moved), and an
    /// allowed directory itself is refused.
    pub(crate) fn entry(&self, raw: &str) -> Result<(Handle, OsString), EntryError> {
        let (dir, components) = self.locate(raw)?;
        self.resolve_components(dir, &components, raw)?;
        let Some((name, parent)) = components.split_last() else {
            return Err(FsError::AllowedDirItself { path: raw.to_owned() }.into());
        };
        let parent = match self.resolve_components(dir, parent, raw)? {
            Resolved::Existing(path) => Handle::open(&path, self, raw)?,
            Resolved::Missing { .. } => return Err(EntryError::MissingParent),
        };
        if !parent.meta.is_dir() {
            let shown = Path::new(raw).parent().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(FsError::NotADirectory { path: shown }.into());
        }
        if self.is_allowed_dir(&parent.real.join(name)) {
            return Err(FsError::AllowedDirItself { path: raw.to_owned() }.into());
        }
        Ok((parent, name.clone()))
    }

    /// The allowed directory `raw` lies in, lexically, and the normal components below it.
    fn locate(&self, raw: &str) -> Result<(&AllowedDir, Vec<OsString>), FsError> {
        check_syntax(raw)?;
        let outside = || FsError::OutsideAllowed { path: raw.to_owned() };
        let path = Path::new(raw);
        let first = self.dirs.first().ok_or_else(outside)?;
        let absolute = if path.is_absolute() { path.to_path_buf() } else { first.canonical.join(path) };
        let components = normalise(&absolute).ok_or_else(outside)?;
        let mut best: Option<(&AllowedDir, usize)> = None;
        for dir in &self.dirs {
            for prefix in &dir.prefixes {
                if components.starts_with(prefix) && best.is_none_or(|(_, len)| prefix.len() > len) {
                    best = Some((dir, prefix.len()));
                }
            }
        }
        let (dir, len) = best.ok_or_else(outside)?;
        Ok((dir, components[len..].to_vec()))
    }

    fn resolve_components(
        &self,
        dir: &AllowedDir,
        components: &[OsString],
        raw: &str,
    ) -> Result<Resolved, FsError> {
        let outside = || FsError::OutsideAllowed { path: raw.to_owned() };
        let inside =
            |canonical: PathBuf| if self.contains(&canonical) { Ok(canonical) } else { Err(outside()) };
        // Try the full path, then ever shorter prefixes until one exists (the dir always does).
        for depth in (0..=components.len()).rev() {
            let candidate: PathBuf = std::iter::once(dir.canonical.as_os_str())
                .chain(components[..depth].iter().map(OsString::as_os_str))
                .collect();
            match candidate.canonicalize() {
                Ok(canonical) if depth == components.len() => {
                    return inside(canonical).map(Resolved::Existing);
                }
                Ok(canonical) => {
                    let ancestor = inside(canonical)?;
                    // The first missing component exists as an entry: a dangling symlink, which
                    // could point anywhere once its target is created. (`ancestor` is canonical
                    // and inside, so this looks at nothing outside.)
                    if ancestor.join(&components[depth]).symlink_metadata().is_ok() {
                        return Err(FsError::DanglingSymlink { path: raw.to_owned() });
                    }
                    return Ok(Resolved::Missing { ancestor, rest: components[depth..].to_vec() });
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
}

/// Why [`AllowedDirs::entry`] failed: a refusal, or a missing parent (whose wording depends on
/// whether the entry is a move's source or destination).
pub(crate) enum EntryError {
    Fs(FsError),
    MissingParent,
}

impl From<FsError> for EntryError {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

/// An open, verified reference to a file or directory inside the allowed directories.
///
/// On Linux x86_64/aarch64 it holds an `O_PATH | O_NOFOLLOW` descriptor (no read permission
/// needed, no side effects of opening: a FIFO does not block, a device is not opened) and the
/// real path the kernel reports for it. Elsewhere it holds the path only.
#[derive(Debug)]
pub(crate) struct Handle {
    #[cfg(pinned_fd)]
    file: fs::File,
    real: PathBuf,
    meta: Metadata,
}

impl Handle {
    /// Opens `path` without following a symlink in its last component, then checks where the
    /// kernel actually went: a path whose directories were swapped for links pointing outside
    /// since it was resolved is refused here.
    pub(crate) fn open(path: &Path, dirs: &AllowedDirs, raw: &str) -> Result<Self, FsError> {
        let handle = Self::open_unchecked(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => FsError::Changed { action: "access", path: raw.to_owned() },
            _ => FsError::io("access", raw, e),
        })?;
        if !dirs.contains(&handle.real) {
            return Err(FsError::OutsideAllowed { path: raw.to_owned() });
        }
        Ok(handle)
    }

    #[cfg(pinned_fd)]
    fn open_unchecked(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            fs::OpenOptions::new().read(true).custom_flags(sys::O_PATH | sys::O_NOFOLLOW).open(path)?;
        let real = fs::read_link(sys::fd_path(&file))?;
        let meta = file.metadata()?;
        Ok(Self { file, real, meta })
    }

    #[cfg(not(pinned_fd))]
    fn open_unchecked(path: &Path) -> io::Result<Self> {
        let meta = fs::symlink_metadata(path)?;
        Ok(Self { real: path.to_owned(), meta })
    }

    /// A child of this directory, as a fresh, verified handle (the child itself, not followed).
    pub(crate) fn open_child(&self, name: &OsStr, dirs: &AllowedDirs, raw: &str) -> Result<Self, FsError> {
        Self::open(&self.child(name), dirs, raw)
    }

    pub(crate) fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The real path, as the kernel reported it after opening.
    pub(crate) fn real(&self) -> &Path {
        &self.real
    }

    /// The path that reaches exactly this object: `/proc/self/fd/N`.
    #[cfg(pinned_fd)]
    fn path(&self) -> PathBuf {
        sys::fd_path(&self.file)
    }

    /// The path that reaches this object (unpinned fallback: its real path).
    #[cfg(not(pinned_fd))]
    fn path(&self) -> PathBuf {
        self.real.clone()
    }

    /// `name` inside this directory: the path resolves through the pinned directory, like
    /// `openat(fd, name)`; the last component is whatever is there when it is used.
    pub(crate) fn child(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path().join(name.as_ref())
    }

    /// Opens this file for reading (a new description of the same inode).
    pub(crate) fn open_read(&self) -> io::Result<fs::File> {
        fs::File::open(self.path())
    }

    pub(crate) fn read_dir(&self) -> io::Result<fs::ReadDir> {
        fs::read_dir(self.path())
    }
}

/// `O_PATH` descriptors and their `/proc/self/fd` paths, Linux only. The flag values are the
/// kernel's uapi constants (libc-free; checked against libc 0.2 and asserted by a test):
/// `O_PATH` is `0o10000000` on both; `O_NOFOLLOW` is `0o400000` on x86_64 but `0o100000` on
/// aarch64 (which, like arm, has its own `fcntl.h`).
#[cfg(pinned_fd)]
mod sys {
    use std::{os::fd::AsRawFd, path::PathBuf};

    pub(super) const O_PATH: i32 = 0o10_000_000;
    #[cfg(target_arch = "x86_64")]
    pub(super) const O_NOFOLLOW: i32 = 0o400_000;
    #[cfg(target_arch = "aarch64")]
    pub(super) const O_NOFOLLOW: i32 = 0o100_000;

    pub(super) fn fd_path(file: &std::fs::File) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
}

/// Refuses what the kernel would refuse anyway, with a clear message and without echoing a
/// huge path back.
fn check_syntax(raw: &str) -> Result<(), FsError> {
    let invalid = |reason: String| FsError::InvalidPath { path: shorten(raw), reason };
    if raw.contains('\0') {
        return Err(invalid("it contains a NUL byte".to_owned()));
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(invalid(format!("it is {} bytes long, over the {MAX_PATH_BYTES}-byte limit", raw.len())));
    }
    if let Some(long) = raw.split('/').find(|c| c.len() > MAX_NAME_BYTES) {
        return Err(invalid(format!(
            "a component is {} bytes long, over the {MAX_NAME_BYTES}-byte limit",
            long.len()
        )));
    }
    Ok(())
}

/// At most 64 characters of `raw`, then `…`.
fn shorten(raw: &str) -> String {
    match raw.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &raw[..at]),
        None => raw.to_owned(),
    }
}

/// The normal components of an absolute path with `.` dropped and `..` applied, or `None` if
/// `..` climbs above `/` (or the path is not absolute).
fn normalise(path: &Path) -> Option<Vec<OsString>> {
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    let mut stack = Vec::new();
    for component in components {
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

pub(crate) fn slash_path(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Errors meaning "this path does not exist" (as opposed to "you may not look").
pub(crate) fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(paths: &[&str]) -> AllowedDirs {
        AllowedDirs::new(paths.iter().map(|p| AllowedDir::new(PathBuf::from(p), Path::new(p))).collect())
    }

    fn located(dirs: &AllowedDirs, raw: &str) -> Option<(String, Vec<String>)> {
        dirs.locate(raw).ok().map(|(dir, rest)| {
            (
                dir.canonical.display().to_string(),
                rest.into_iter().map(|s| s.to_string_lossy().into_owned()).collect(),
            )
        })
    }

    fn at(dir: &str, rest: &[&str]) -> Option<(String, Vec<String>)> {
        Some((dir.to_owned(), rest.iter().map(|s| (*s).to_owned()).collect()))
    }

    #[test]
    fn relative_paths_are_normalised_inside_the_first_dir() {
        let d = dirs(&["/srv/data"]);
        assert_eq!(located(&d, ""), at("/srv/data", &[]));
        assert_eq!(located(&d, "."), at("/srv/data", &[]));
        assert_eq!(located(&d, "a/./b/../c"), at("/srv/data", &["a", "c"]));
        assert_eq!(located(&d, "a/.."), at("/srv/data", &[]));
    }

    #[test]
    fn dotdot_out_of_every_dir_is_refused_lexically() {
        let d = dirs(&["/srv/data"]);
        assert_eq!(located(&d, ".."), None);
        assert_eq!(located(&d, "../etc/passwd"), None);
        assert_eq!(located(&d, "a/../../b"), None);
        assert_eq!(located(&d, "../../../../../../../.."), None);
    }

    #[test]
    fn absolute_paths_are_accepted_only_under_an_allowed_dir() {
        let d = dirs(&["/srv/data", "/mnt/shared"]);
        assert_eq!(located(&d, "/srv/data"), at("/srv/data", &[]));
        assert_eq!(located(&d, "/srv/data/x/y"), at("/srv/data", &["x", "y"]));
        assert_eq!(located(&d, "/mnt/shared/z"), at("/mnt/shared", &["z"]));
        assert_eq!(located(&d, "/srv/data/../etc"), None);
        assert_eq!(located(&d, "/srv/database"), None);
        assert_eq!(located(&d, "/etc/passwd"), None);
        assert_eq!(located(&d, "/"), None);
        assert_eq!(located(&d, "/.."), None);
    }

    #[test]
    fn a_relative_path_may_climb_into_another_allowed_dir() {
        let d = dirs(&["/srv/data", "/srv/other"]);
        assert_eq!(located(&d, "../other/f"), at("/srv/other", &["f"]));
        assert_eq!(located(&d, "../otherwise/f"), None);
    }

    #[test]
    fn the_longest_allowed_prefix_wins_for_nested_dirs() {
        let d = dirs(&["/srv", "/srv/data"]);
        assert_eq!(located(&d, "/srv/data/f"), at("/srv/data", &["f"]));
        assert_eq!(located(&d, "data/f"), at("/srv/data", &["f"]));
        assert_eq!(located(&d, "/srv/f"), at("/srv", &["f"]));
    }

    #[test]
    fn the_configured_spelling_is_accepted_and_maps_to_the_canonical_dir() {
        let d =
            AllowedDirs::new(vec![AllowedDir::new(PathBuf::from("/mnt/efs/data"), Path::new("/data/./"))]);
        assert_eq!(located(&d, "/data/x"), at("/mnt/efs/data", &["x"]));
        assert_eq!(located(&d, "/mnt/efs/data/x"), at("/mnt/efs/data", &["x"]));
        assert_eq!(located(&d, "/mnt/efs/x"), None);
    }

    #[test]
    fn nul_bytes_and_overlong_names_or_paths_are_invalid() {
        let d = dirs(&["/srv/data"]);
        let refusal = |raw: &str| d.locate(raw).err().map(|e| e.to_string());
        assert_eq!(refusal("a\0b").as_deref(), Some("invalid path a\0b: it contains a NUL byte"));
        let long_name = "n".repeat(256);
        assert_eq!(
            refusal(&format!("dir/{long_name}")),
            Some(format!(
                "invalid path dir/{}…: a component is 256 bytes long, over the 255-byte limit",
                "n".repeat(60)
            ))
        );
        assert!(d.locate(&"n".repeat(255)).is_ok(), "255 bytes is a legal name");
        let long_path = "abcdefg/".repeat(513);
        assert_eq!(
            refusal(&long_path),
            Some(format!(
                "invalid path {}…: it is 4104 bytes long, over the 4096-byte limit",
                &long_path[..64]
            ))
        );
    }

    #[test]
    fn display_is_relative_in_the_first_dir_and_absolute_elsewhere() {
        let d = dirs(&["/srv/data", "/mnt/shared"]);
        assert_eq!(d.display(Path::new("/srv/data/a/b.txt")), "a/b.txt");
        assert_eq!(d.display(Path::new("/srv/data")), "");
        assert_eq!(d.display(Path::new("/mnt/shared/c.txt")), "/mnt/shared/c.txt");
    }

    /// The flag constants are right for this architecture: with `O_PATH | O_NOFOLLOW` a
    /// symlink opens as the link itself (wrong `O_NOFOLLOW`: it would open the target; wrong
    /// `O_PATH`: the open would fail with `ELOOP`).
    #[cfg(pinned_fd)]
    #[test]
    fn o_path_and_o_nofollow_open_a_symlink_as_itself() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("target.txt"), "t")?;
        std::os::unix::fs::symlink("target.txt", dir.path().join("link"))?;
        let handle = Handle::open_unchecked(&dir.path().join("link"))?;
        assert!(handle.meta.is_symlink(), "{:?}", handle.meta.file_type());
        assert_eq!(handle.real, dir.path().canonicalize()?.join("link"));
        Ok(())
    }

    /// A directory swapped for a symlink to the outside after resolution: opening the stale
    /// path goes outside, and the `/proc/self/fd` re-check refuses it.
    #[cfg(pinned_fd)]
    #[test]
    fn a_directory_swapped_for_an_outside_link_is_refused_after_opening()
    -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        let root_path = root.path().canonicalize()?;
        std::fs::write(outside.path().join("secret.txt"), "s")?;
        let allowed = AllowedDirs::new(vec![AllowedDir::new(root_path.clone(), &root_path)]);
        std::fs::create_dir(root_path.join("sub"))?;
        std::fs::write(root_path.join("sub/secret.txt"), "inside")?;
        let Resolved::Existing(checked) = allowed.resolve("sub/secret.txt")? else {
            return Err("expected an existing file".into());
        };
        // The swap, between the check and the use.
        std::fs::rename(root_path.join("sub"), root_path.join("old"))?;
        std::os::unix::fs::symlink(outside.path(), root_path.join("sub"))?;
        let refused = Handle::open(&checked, &allowed, "sub/secret.txt").err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("access denied: sub/secret.txt resolves outside the allowed directories")
        );
        Ok(())
    }

    /// A pinned directory keeps naming the original even after it is swapped for a link: a
    /// write through it lands inside, never in the link's target.
    #[cfg(pinned_fd)]
    #[test]
    fn writes_through_a_pinned_directory_ignore_a_later_swap() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        let root_path = root.path().canonicalize()?;
        let allowed = AllowedDirs::new(vec![AllowedDir::new(root_path.clone(), &root_path)]);
        std::fs::create_dir(root_path.join("sub"))?;
        let target = allowed.for_write("sub/new.txt")?;
        std::fs::rename(root_path.join("sub"), root_path.join("moved"))?;
        std::os::unix::fs::symlink(outside.path(), root_path.join("sub"))?;
        std::fs::write(target.dir.child(&target.name), "data")?;
        assert_eq!(std::fs::read_to_string(root_path.join("moved/new.txt"))?, "data");
        assert!(!outside.path().join("new.txt").exists());
        Ok(())
    }
}
