//! A reader of positioned YAML mappings: fields are taken by name, read as typed values, and
//! every problem is reported at the line and YAML path where it was written.
//!
//! Owns the [`Ctx`] that collects one file's errors and warnings, the reading of a mapping
//! (a duplicate key is an error, `<<` merge keys are expanded once, fields nobody took become
//! warnings), the `expected X, found Y` messages of the typed accessors, and glob lists. An
//! accessor that finds a problem reports it and returns `None`, so the caller can go on to the
//! next field and a file's errors all come out together.
//!
//! It must not know any field name or rule of the agent schema (which fields are required,
//! defaults, ranges, refused transports: that is `schema`), nor parse YAML text (that is `tree`).

use std::collections::HashSet;
use std::rc::Rc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::error::{ConfigError, ConfigWarning};
use crate::config::tree::{Node, Resolved, Value};

/// The warning for a field that was not taken.
pub(super) const IGNORED: &str = "ignored: not used by teal-serverless";
const MISSING: &str = "missing required field";

/// The errors and warnings of one file (`source` names it in every message).
pub(super) struct Ctx {
    source: String,
    pub(super) errors: Vec<ConfigError>,
    pub(super) warnings: Vec<ConfigWarning>,
}

impl Ctx {
    pub(super) fn new(source: &str) -> Self {
        Self { source: source.to_owned(), errors: Vec::new(), warnings: Vec::new() }
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    pub(super) fn error(&mut self, line: Option<usize>, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            source: self.source.clone(),
            line,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn err(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.error(Some(line), path, message);
    }

    fn warn_ignored(&mut self, line: usize, path: &str) {
        self.warnings.push(ConfigWarning {
            source: self.source.clone(),
            line: Some(line),
            path: path.to_owned(),
            message: IGNORED.to_owned(),
        });
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// A mapping being read: fields are taken one by one; what is left over is warned about.
pub(super) struct Fields<'n> {
    /// Where the mapping is introduced (its key's line, or its own line): missing fields point here.
    line: usize,
    path: String,
    entries: Vec<Entry<'n>>,
}

struct Entry<'n> {
    key: &'n str,
    key_line: usize,
    value: &'n Node,
    used: bool,
}

/// One field's value with what is needed to talk about it.
pub(super) struct Field<'n> {
    /// The key as written (empty for sequence items).
    key: &'n str,
    key_line: usize,
    node: &'n Node,
    path: String,
}

/// Reads `node` as a mapping (with `<<` merge keys), reporting a wrong type.
fn fields<'n>(cx: &mut Ctx, node: &'n Node, line: usize, path: &str) -> Option<Fields<'n>> {
    if !matches!(node.value, Value::Map(_)) {
        cx.err(node.line, path, format!("expected a mapping, found {}", node.kind()));
        return None;
    }
    let mut entries = Vec::new();
    let mut merged = HashSet::new();
    collect_entries(cx, node, path, true, &mut entries, &mut merged);
    Some(Fields { line, path: path.to_owned(), entries })
}

/// Own entries first (duplicates are errors), then those of `<<` merge sources that are not
/// overridden. `merged` stops the same anchored mapping from being expanded twice.
fn collect_entries<'n>(
    cx: &mut Ctx,
    node: &'n Node,
    path: &str,
    report: bool,
    out: &mut Vec<Entry<'n>>,
    merged: &mut HashSet<*const Node>,
) {
    let Value::Map(pairs) = &node.value else {
        return;
    };
    let own_start = out.len();
    let mut merges: Vec<&'n Rc<Node>> = Vec::new();
    for (k, v) in pairs {
        let Some(ks) = k.scalar() else {
            if report {
                cx.err(k.line, path, format!("expected a string key, found {}", k.kind()));
            }
            continue;
        };
        if !ks.quoted && ks.text == "<<" {
            merges.push(v);
            continue;
        }
        if let Some(first) = out[own_start..].iter().find(|e| e.key == ks.text) {
            if report {
                let msg = format!("duplicate key (first at line {})", first.key_line);
                cx.err(k.line, &join(path, &ks.text), msg);
            }
            continue;
        }
        out.push(Entry { key: &ks.text, key_line: k.line, value: v, used: false });
    }
    for m in merges {
        let sources: Vec<&'n Node> = match &m.value {
            Value::Seq(items) => items.iter().map(|n| &**n).collect(),
            _ => vec![&**m],
        };
        for src in sources {
            if !matches!(src.value, Value::Map(_)) {
                if report {
                    let msg = format!("expected a mapping to merge, found {}", src.kind());
                    cx.err(src.line, &join(path, "<<"), msg);
                }
                continue;
            }
            if !merged.insert(std::ptr::from_ref(src)) {
                continue;
            }
            let mut theirs = Vec::new();
            collect_entries(cx, src, path, false, &mut theirs, merged);
            for e in theirs {
                if !out[own_start..].iter().any(|o| o.key == e.key) {
                    out.push(e);
                }
            }
        }
    }
}

impl<'n> Fields<'n> {
    /// A whole document as a mapping: its fields' paths start at the root (`name`, `spec`).
    pub(super) fn document(cx: &mut Ctx, root: &'n Node) -> Option<Self> {
        fields(cx, root, root.line, "")
    }

    /// The field, even when its value is null.
    pub(super) fn take(&mut self, name: &str) -> Option<Field<'n>> {
        let e = self.entries.iter_mut().find(|e| e.key == name)?;
        e.used = true;
        Some(Field { key: e.key, key_line: e.key_line, node: e.value, path: join(&self.path, name) })
    }

    /// An optional field: absent and null are the same.
    pub(super) fn opt(&mut self, name: &str) -> Option<Field<'n>> {
        self.take(name).filter(|f| !f.node.is_null())
    }

    /// A required field: absence is an error at the mapping's line.
    pub(super) fn req(&mut self, cx: &mut Ctx, name: &str) -> Option<Field<'n>> {
        let f = self.take(name);
        if f.is_none() {
            self.missing(cx, name);
        }
        f
    }

    /// Reports `name` as a missing required field, at the mapping's line.
    pub(super) fn missing(&self, cx: &mut Ctx, name: &str) {
        cx.err(self.line, &join(&self.path, name), MISSING);
    }

    /// Every remaining entry, marked used (for free-form mappings such as HTTP headers).
    pub(super) fn rest(&mut self) -> Vec<Field<'n>> {
        self.entries
            .iter_mut()
            .filter(|e| !e.used)
            .map(|e| {
                e.used = true;
                Field { key: e.key, key_line: e.key_line, node: e.value, path: join(&self.path, e.key) }
            })
            .collect()
    }

    /// Unknown fields become warnings.
    pub(super) fn finish(self, cx: &mut Ctx) {
        for e in self.entries.iter().filter(|e| !e.used) {
            cx.warn_ignored(e.key_line, &join(&self.path, e.key));
        }
    }
}

impl<'n> Field<'n> {
    /// The key as written (empty for sequence items).
    pub(super) fn key(&self) -> &'n str {
        self.key
    }

    pub(super) fn key_line(&self) -> usize {
        self.key_line
    }

    /// The line of the value.
    pub(super) fn line(&self) -> usize {
        self.node.line
    }

    /// Reports a problem with the value, at the value's line.
    pub(super) fn error(&self, cx: &mut Ctx, message: impl Into<String>) {
        cx.err(self.node.line, &self.path, message);
    }

    /// Reports a problem with the field itself (its presence, its name), at the key's line.
    pub(super) fn error_at_key(&self, cx: &mut Ctx, message: impl Into<String>) {
        cx.err(self.key_line, &self.path, message);
    }

    fn resolved(&self) -> Option<Resolved<'n>> {
        self.node.scalar().map(|s| s.resolve())
    }

    fn wrong(&self, cx: &mut Ctx, expected: &str) {
        self.error(cx, format!("expected {expected}, found {}", self.node.kind()));
    }

    pub(super) fn string(&self, cx: &mut Ctx) -> Option<String> {
        match self.resolved() {
            Some(Resolved::Str(s)) => Some(s.to_owned()),
            _ => {
                self.wrong(cx, "a string");
                None
            }
        }
    }

    pub(super) fn non_empty_string(&self, cx: &mut Ctx) -> Option<String> {
        let s = self.string(cx)?;
        if s.trim().is_empty() {
            self.error(cx, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A string, or a number kept as written (`0.1`, `1.10`).
    pub(super) fn text(&self, cx: &mut Ctx) -> Option<String> {
        match (self.node.scalar(), self.resolved()) {
            (Some(s), Some(Resolved::Str(_) | Resolved::Int(_) | Resolved::Float(_))) => Some(s.text.clone()),
            _ => {
                self.wrong(cx, "a string or a number");
                None
            }
        }
    }

    /// Any scalar but null, as written (for values that are text on the wire: `3`, `true`).
    pub(super) fn written(&self, cx: &mut Ctx) -> Option<String> {
        match (self.node.scalar(), self.resolved()) {
            (Some(s), Some(r)) if r != Resolved::Null => Some(s.text.clone()),
            _ => {
                self.wrong(cx, "a string");
                None
            }
        }
    }

    pub(super) fn number(&self, cx: &mut Ctx) -> Option<f64> {
        match self.resolved() {
            #[allow(clippy::cast_precision_loss)] // config-sized integers
            Some(Resolved::Int(i)) => Some(i as f64),
            Some(Resolved::Float(f)) => Some(f),
            _ => {
                self.wrong(cx, "a number");
                None
            }
        }
    }

    pub(super) fn integer(&self, cx: &mut Ctx) -> Option<i64> {
        match (self.node.scalar(), self.resolved()) {
            (_, Some(Resolved::Int(i))) => Some(i),
            (Some(s), Some(Resolved::Float(_))) => {
                self.error(cx, format!("expected an integer, found `{}`", s.text));
                None
            }
            _ => {
                self.wrong(cx, "an integer");
                None
            }
        }
    }

    /// The value as a mapping; its missing fields are reported at this field's key line.
    pub(super) fn map(&self, cx: &mut Ctx) -> Option<Fields<'n>> {
        fields(cx, self.node, self.key_line, &self.path)
    }

    /// The value as a sequence: one field per item, with paths `path[i]`.
    pub(super) fn items(&self, cx: &mut Ctx) -> Option<Vec<Field<'n>>> {
        let Value::Seq(items) = &self.node.value else {
            self.wrong(cx, "a sequence");
            return None;
        };
        let item = |(i, node): (usize, &'n Rc<Node>)| Field {
            key: "",
            key_line: node.line,
            node,
            path: format!("{}[{i}]", self.path),
        };
        Some(items.iter().enumerate().map(item).collect())
    }

    /// A sequence of glob patterns, compiled; `None` when any was invalid (each one is reported).
    pub(super) fn globs(&self, cx: &mut Ctx) -> Option<GlobSet> {
        let items = self.items(cx)?;
        let mut builder = GlobSetBuilder::new();
        let mut ok = true;
        for item in items {
            let Some(pattern) = item.string(cx) else {
                ok = false;
                continue;
            };
            match Glob::new(&pattern) {
                Ok(g) => {
                    builder.add(g);
                }
                Err(e) => {
                    ok = false;
                    item.error(cx, format!("invalid glob `{pattern}`: {}", e.kind()));
                }
            }
        }
        if !ok {
            return None;
        }
        match builder.build() {
            Ok(set) => Some(set),
            Err(e) => {
                self.error(cx, format!("invalid globs: {e}"));
                None
            }
        }
    }
}
