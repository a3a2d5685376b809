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

use std::collections::{HashMap, HashSet};
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
        self.warn(line, path, IGNORED);
    }

    pub(super) fn warn(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            source: self.source.clone(),
            line: Some(line),
            path: path.to_owned(),
            message: message.into(),
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
#[derive(Clone)]
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
    // Key -> its line, for this mapping's own entries: one lookup per key, however many.
    let mut own: HashMap<&'n str, usize> = HashMap::with_capacity(pairs.len());
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
        if let Some(first) = own.get(ks.text.as_str()) {
            if report {
                let msg = format!("duplicate key (first at line {first})");
                cx.err(k.line, &join(path, &ks.text), msg);
            }
            continue;
        }
        own.insert(&ks.text, k.line);
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
                // The first source to set a key wins, as the merge-key spec says.
                if let std::collections::hash_map::Entry::Vacant(slot) = own.entry(e.key) {
                    slot.insert(e.key_line);
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

    /// Whether the mapping has the field (not taking it).
    pub(super) fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.key == name)
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

    /// A warning about the field, at the key's line.
    pub(super) fn warn(&self, cx: &mut Ctx, message: impl Into<String>) {
        cx.warn(self.key_line, &self.path, message);
    }

    /// Whether the value is a string scalar.
    pub(super) fn is_string(&self) -> bool {
        matches!(self.resolved(), Some(Resolved::Str(_)))
    }

    /// Whether the value is an empty sequence or mapping (or null).
    pub(super) fn is_empty_collection(&self) -> bool {
        match &self.node.value {
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
            Value::Scalar(_) => self.node.is_null(),
        }
    }

    /// The value as JSON (for embedded JSON Schemas): mappings with string keys, sequences,
    /// and scalars resolved by the YAML core schema. Merge keys are not expanded here.
    pub(super) fn json(&self, cx: &mut Ctx) -> Option<serde_json::Value> {
        match crate::config::tree::to_json(self.node) {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(cx, msg);
                None
            }
        }
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

    pub(super) fn bool(&self, cx: &mut Ctx) -> Option<bool> {
        match self.resolved() {
            Some(Resolved::Bool(b)) => Some(b),
            _ => {
                self.wrong(cx, "true or false");
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::tree;

    /// Runs `body` on the first document of `yaml` read as a mapping, then finishes that mapping.
    /// Returns what `body` gave, the errors and the warnings, as printed.
    fn read<T>(
        yaml: &str,
        body: impl FnOnce(&mut Ctx, &mut Fields<'_>) -> T,
    ) -> (T, Vec<String>, Vec<String>) {
        let (docs, syntax) = tree::parse(yaml);
        assert_eq!(syntax, None, "{yaml}");
        let mut cx = Ctx::new("t.yaml");
        let mut f = Fields::document(&mut cx, &docs[0]).unwrap();
        let out = body(&mut cx, &mut f);
        f.finish(&mut cx);
        let errors = cx.errors.iter().map(ToString::to_string).collect();
        let warnings = cx.warnings.iter().map(ToString::to_string).collect();
        (out, errors, warnings)
    }

    #[test]
    fn typed_accessors_return_their_type() {
        let yaml = "s: hello\nq: \"3\"\nn: 3\nf: 2.5\nv: 1.10\nb: true\n";
        let (got, errors, warnings) = read(yaml, |cx, f| {
            let mut take = |name| f.take(name).unwrap();
            let (s, q, n, fl, v, b) = (take("s"), take("q"), take("n"), take("f"), take("v"), take("b"));
            (
                [s.string(cx), q.string(cx), s.non_empty_string(cx)],
                [n.number(cx), fl.number(cx)],
                n.integer(cx),
                [v.text(cx), n.text(cx), fl.text(cx)],
                [b.written(cx), n.written(cx), q.written(cx)],
            )
        });
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(warnings, Vec::<String>::new());
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(got.0, [some("hello"), some("3"), some("hello")]);
        assert_eq!(got.1, [Some(3.0), Some(2.5)]);
        assert_eq!(got.2, Some(3));
        assert_eq!(got.3, [some("1.10"), some("3"), some("2.5")]);
        assert_eq!(got.4, [some("true"), some("3"), some("3")]);
    }

    #[test]
    fn wrong_types_name_what_was_expected_and_found_at_the_value_line() {
        let yaml = "s: 1\nn: \"1\"\ni: 1.5\nj: [1]\nt: true\nw: ~\nm: x\nl: {a: 1}\ne: \"  \"\nk:\n  7\n";
        let (got, errors, _) = read(yaml, |cx, f| {
            let mut take = |name| f.take(name).unwrap();
            [
                take("s").string(cx).is_none(),
                take("n").number(cx).is_none(),
                take("i").integer(cx).is_none(),
                take("j").integer(cx).is_none(),
                take("t").text(cx).is_none(),
                take("w").written(cx).is_none(),
                take("m").map(cx).is_none(),
                take("l").items(cx).is_none(),
                take("e").non_empty_string(cx).is_none(),
                take("k").string(cx).is_none(),
            ]
        });
        assert_eq!(got, [true; 10]);
        assert_eq!(
            errors,
            [
                "t.yaml:1 s: expected a string, found a number",
                "t.yaml:2 n: expected a number, found a string",
                "t.yaml:3 i: expected an integer, found `1.5`",
                "t.yaml:4 j: expected an integer, found a sequence",
                "t.yaml:5 t: expected a string or a number, found a boolean",
                "t.yaml:6 w: expected a string, found null",
                "t.yaml:7 m: expected a mapping, found a string",
                "t.yaml:8 l: expected a sequence, found a mapping",
                "t.yaml:9 e: must not be empty",
                // The value's line, not the key's.
                "t.yaml:11 k: expected a string, found a number",
            ]
        );
    }

    #[test]
    fn errors_point_at_the_value_or_the_key() {
        let (_, errors, _) = read("k:\n  value\n", |cx, f| {
            let k = f.take("k").unwrap();
            k.error(cx, "about the value");
            k.error_at_key(cx, "about the field");
            assert_eq!((k.key(), k.key_line(), k.line()), ("k", 1, 2));
        });
        assert_eq!(errors, ["t.yaml:2 k: about the value", "t.yaml:1 k: about the field"]);
    }

    #[test]
    fn missing_required_fields_point_at_the_line_that_introduces_the_mapping() {
        let yaml = "top: 1\ninner:\n  a: 1\nn: ~\n";
        let (got, errors, warnings) = read(yaml, |cx, f| {
            let absent = f.req(cx, "absent").is_none();
            let mut inner = f.req(cx, "inner").unwrap().map(cx).unwrap();
            let b = inner.req(cx, "b").is_none();
            let a = inner.req(cx, "a").and_then(|a| a.integer(cx));
            inner.finish(cx);
            f.missing(cx, "other");
            // Null: absent for `opt`, present for `take` (and taken either way).
            let null = (f.opt("n").is_none(), f.take("n").is_some(), f.req(cx, "n").is_some());
            (absent, b, a, null)
        });
        assert_eq!(got, (true, true, Some(1), (true, true, true)));
        assert_eq!(
            errors,
            [
                "t.yaml:1 absent: missing required field",
                "t.yaml:2 inner.b: missing required field",
                "t.yaml:1 other: missing required field",
            ]
        );
        assert_eq!(warnings, ["t.yaml:1 top: ignored: not used by teal-serverless"]);
    }

    #[test]
    fn duplicate_keys_are_errors_and_the_first_value_is_kept() {
        let yaml = "a: 1\nb: 2\na: 3\nm: {x: 1,\n  x: 2}\n";
        let (got, errors, warnings) = read(yaml, |cx, f| {
            let a = f.take("a").unwrap().integer(cx);
            let b = f.take("b").unwrap().integer(cx);
            let mut m = f.take("m").unwrap().map(cx).unwrap();
            let x = m.take("x").unwrap().integer(cx);
            m.finish(cx);
            (a, b, x)
        });
        assert_eq!(got, (Some(1), Some(2), Some(1)));
        assert_eq!(
            errors,
            ["t.yaml:3 a: duplicate key (first at line 1)", "t.yaml:5 m.x: duplicate key (first at line 4)"]
        );
        // The duplicate is neither read nor warned about.
        assert_eq!(warnings, Vec::<String>::new());
    }

    #[test]
    fn the_duplicate_key_check_is_linear_in_the_number_of_keys() {
        // 40,000 keys and one duplicate: a pairwise check made 800 million comparisons (26 s).
        let mut yaml: String = (0..40_000).map(|i| format!("k{i}: v\n")).collect();
        yaml.push_str("k7: again\n");
        // How long it takes is the `fault_matrix` example's to measure (312 ms in a debug build).
        let (taken, errors, warnings) = read(&yaml, |_, f| f.rest().len());
        assert_eq!(taken, 40_000);
        assert_eq!(errors, ["t.yaml:40001 k7: duplicate key (first at line 8)"]);
        assert!(warnings.is_empty());
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_set() {
        let yaml = "base: &b {x: 1, y: 2}\nm:\n  <<: [*b, *b]\n  y: 3\n  \"<<\": 4\nbad:\n  <<: 5\n";
        let (got, errors, warnings) = read(yaml, |cx, f| {
            f.take("base");
            let mut m = f.take("m").unwrap().map(cx).unwrap();
            let read = |m: &mut Fields<'_>, cx: &mut Ctx, k| m.take(k).and_then(|v| v.integer(cx));
            let got = (read(&mut m, cx, "x"), read(&mut m, cx, "y"), read(&mut m, cx, "<<"));
            m.finish(cx);
            let bad = f.take("bad").unwrap().map(cx).unwrap();
            bad.finish(cx);
            got
        });
        // Merged twice, yet no duplicate-key error; a quoted `<<` is an ordinary key.
        assert_eq!(got, (Some(1), Some(3), Some(4)));
        assert_eq!(errors, ["t.yaml:7 bad.<<: expected a mapping to merge, found a number"]);
        assert_eq!(warnings, Vec::<String>::new());
    }

    #[test]
    fn fields_not_taken_are_warnings_and_rest_takes_them_all() {
        let yaml = "a: 1\nb: 2\nh:\n  X-One: 1\n  X-Two: 2\n[k]: v\n";
        let (got, errors, warnings) = read(yaml, |cx, f| {
            f.take("a");
            let mut h = f.take("h").unwrap().map(cx).unwrap();
            let rest: Vec<_> =
                h.rest().iter().map(|r| (r.key().to_owned(), r.key_line(), r.written(cx))).collect();
            let again = h.rest().len();
            h.finish(cx);
            (rest, again)
        });
        assert_eq!(
            got,
            (vec![("X-One".into(), 4, Some("1".into())), ("X-Two".into(), 5, Some("2".into()))], 0)
        );
        assert_eq!(errors, ["t.yaml:6: expected a string key, found a sequence"]);
        assert_eq!(warnings, ["t.yaml:2 b: ignored: not used by teal-serverless"]);
    }

    #[test]
    fn sequence_items_are_numbered_in_their_paths() {
        let yaml = "l:\n  - a\n  - 2\n";
        let (got, errors, _) = read(yaml, |cx, f| {
            let items = f.take("l").unwrap().items(cx).unwrap();
            items.iter().map(|i| (i.key().to_owned(), i.line(), i.string(cx))).collect::<Vec<_>>()
        });
        assert_eq!(got, [(String::new(), 2, Some("a".to_owned())), (String::new(), 3, None)]);
        assert_eq!(errors, ["t.yaml:3 l[1]: expected a string, found a number"]);
    }

    #[test]
    fn glob_lists_compile_or_report_each_bad_pattern() {
        let yaml = "g: [\"read_*\", \"x[\", 3]\nok: [\"read_*\", list]\nnone: []\n";
        let (got, errors, _) = read(yaml, |cx, f| {
            let mut globs = |k| f.take(k).unwrap().globs(cx);
            (globs("g").is_none(), globs("ok").unwrap(), globs("none").unwrap())
        });
        let (bad, ok, none) = got;
        assert!(bad);
        assert!(ok.is_match("read_file") && ok.is_match("list") && !ok.is_match("write_file"));
        assert!(none.is_empty());
        assert_eq!(
            errors,
            [
                "t.yaml:1 g[1]: invalid glob `x[`: unclosed character class; missing ']'",
                "t.yaml:1 g[2]: expected a string, found a number",
            ]
        );
    }
}
