//! A small positioned YAML tree built from saphyr-parser events.
//!
//! Owns the only contact with the YAML parser: documents, anchors/aliases (shared with `Rc`, so
//! building costs nothing, but everything that reads the tree walks each alias again: the nodes
//! aliases add are counted and bounded by [`MAX_ALIAS_NODES`], and an alias may not nest deeper
//! than [`MAX_DEPTH`] either), a nesting limit, and the YAML 1.2 core-schema resolution of plain
//! scalars. Every node keeps its 1-based line; scalars keep their text exactly as the
//! parser gave it and whether they were plain. It must not know anything about agent configs.

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deeper nesting than this is refused (it also keeps recursive drops far from the stack limit).
pub(crate) const MAX_DEPTH: usize = 128;

/// How many nodes the aliases of one document may add, counted expanded (an alias of a
/// sequence of ten scalars adds eleven). Generous for sharing blocks of a config; an alias bomb
/// (each level repeating the one before) crosses it within a few lines and fails there.
pub(crate) const MAX_ALIAS_NODES: u64 = 10_000;

/// One YAML node with its position.
#[derive(Debug)]
pub(crate) struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    pub value: Value,
    /// Nodes in this one with every alias expanded, itself included.
    size: u64,
    /// Levels of collections below it with aliases expanded (0 for a scalar).
    height: usize,
}

#[derive(Debug)]
pub(crate) enum Value {
    Scalar(Scalar),
    Seq(Vec<Rc<Node>>),
    /// Entries in document order, duplicates and `<<` merge keys included (the reader decides).
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

#[derive(Debug)]
pub(crate) struct Scalar {
    /// The scalar's content as written (after YAML unescaping/folding for quoted and block styles).
    pub text: String,
    /// Quoted or block scalar: always a string, never resolved to null/bool/number.
    pub quoted: bool,
    /// `!!str` (or the non-specific `!`): also always a string.
    pub str_tag: bool,
}

/// What a scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Resolved<'_> {
        if self.quoted || self.str_tag {
            return Resolved::Str(&self.text);
        }
        resolve_plain(&self.text)
    }
}

impl Node {
    /// "a mapping", "a string", "null"…, for `expected X, found Y` messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a sequence",
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => "null",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) | Resolved::Float(_) => "a number",
                Resolved::Str(_) => "a string",
            },
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// YAML 1.2 core schema (10.3.2) for a plain scalar.
pub(crate) fn resolve_plain(t: &str) -> Resolved<'_> {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let (neg, unsigned) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Resolved::Float(if neg { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<i64>() {
            Ok(i) => Resolved::Int(i),
            // Out of i64 range: still a number, just not one we can hold exactly.
            Err(_) => t.parse::<f64>().map_or(Resolved::Str(t), Resolved::Float),
        };
    }
    // Octal and hex have no sign in the core schema.
    if let Some(oct) = t.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return i64::from_str_radix(oct, 8).map_or(Resolved::Str(t), Resolved::Int);
    }
    if let Some(hex) = t.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return i64::from_str_radix(hex, 16).map_or(Resolved::Str(t), Resolved::Int);
    }
    if is_core_float(unsigned)
        && let Ok(f) = t.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(t)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, sign already stripped.
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_digits = digits(&mut i);
        if int_digits == 0 && frac_digits == 0 {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Where and why the text could not be turned into a tree.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TreeError {
    pub line: usize,
    pub message: String,
}

/// The one YAML document of `text` as JSON (for YAML files that are not agent configs: OpenAPI
/// documents, catalogs), read by the same parser as the configs.
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, TreeError> {
    let (docs, error) = parse(text);
    if let Some(e) = error {
        return Err(e);
    }
    match docs.as_slice() {
        [doc] => to_json(doc).map_err(|message| TreeError { line: doc.line, message }),
        [] => Err(TreeError { line: 1, message: "no YAML document".to_owned() }),
        [_, second, ..] => {
            Err(TreeError { line: second.line, message: "more than one YAML document".to_owned() })
        }
    }
}

/// The node as JSON: mappings (scalar keys as written), sequences, and scalars resolved by the
/// YAML core schema. Merge keys (`<<`) are kept as ordinary keys.
pub(crate) fn to_json(node: &Node) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match &node.value {
        Value::Seq(items) => J::Array(items.iter().map(|n| to_json(n)).collect::<Result<_, _>>()?),
        Value::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                // JSON keys are text: a scalar key is taken as written (`200:` is "200").
                let key = match k.scalar() {
                    Some(s) if s.resolve() != Resolved::Null => s.text.clone(),
                    _ => return Err(format!("line {}: mapping keys must be strings or numbers", k.line)),
                };
                map.insert(key, to_json(v)?);
            }
            J::Object(map)
        }
        Value::Scalar(s) => match s.resolve() {
            Resolved::Null => J::Null,
            Resolved::Bool(b) => J::Bool(b),
            Resolved::Int(i) => J::from(i),
            Resolved::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
            Resolved::Str(t) => J::String(t.to_owned()),
        },
    })
}

/// All documents of `text`, in order. On an error, the documents completed before it are
/// returned too, so their own problems can still be reported.
pub(crate) fn parse(text: &str) -> (Vec<Rc<Node>>, Option<TreeError>) {
    let mut b = Builder::default();
    for ev in Parser::new_from_str(text) {
        let step = match ev {
            Ok((ev, span)) => b.on_event(ev, span),
            Err(e) => Err(TreeError { line: e.marker().line(), message: e.info().to_owned() }),
        };
        if let Err(e) = step {
            return (b.docs, Some(e));
        }
    }
    (b.docs, None)
}

enum Frame {
    Seq { line: usize, anchor: usize, items: Vec<Rc<Node>> },
    Map { line: usize, anchor: usize, entries: Vec<(Rc<Node>, Rc<Node>)>, key: Option<Rc<Node>> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Completed anchored nodes of the current document.
    anchors: HashMap<usize, Rc<Node>>,
    docs: Vec<Rc<Node>>,
    /// Nodes the current document's aliases added, expanded ([`MAX_ALIAS_NODES`]).
    alias_nodes: u64,
}

impl Builder {
    fn on_event(&mut self, ev: Event<'_>, span: Span) -> Result<(), TreeError> {
        let line = span.start.line();
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            // Anchors belong to one document.
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.alias_nodes = 0;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let str_tag = tag.as_deref().is_some_and(|t| {
                    (t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
                        || (t.handle.is_empty() && t.suffix == "!")
                });
                let scalar =
                    Scalar { text: text.into_owned(), quoted: !matches!(style, ScalarStyle::Plain), str_tag };
                let node = Rc::new(Node { line, value: Value::Scalar(scalar), size: 1, height: 0 });
                if anchor > 0 {
                    self.anchors.insert(anchor, Rc::clone(&node));
                }
                self.push(node);
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = Rc::clone(node);
                    self.alias_nodes = self.alias_nodes.saturating_add(node.size);
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        let message = format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} nodes in this document \
                             (an alias bomb?): write the repeated parts out or share less"
                        );
                        return Err(TreeError { line, message });
                    }
                    if self.stack.len() + node.height > MAX_DEPTH {
                        let message = format!("nesting deeper than {MAX_DEPTH} levels (through an alias)");
                        return Err(TreeError { line, message });
                    }
                    self.push(node);
                }
                None => {
                    let open = self.stack.iter().any(|f| match f {
                        Frame::Seq { anchor, .. } | Frame::Map { anchor, .. } => *anchor == id,
                    });
                    let message = if open {
                        "alias refers to a node that contains it (recursive alias)"
                    } else {
                        // The parser keeps anchor ids across `---`; YAML does not.
                        "while parsing node, found unknown anchor (anchors do not cross `---`)"
                    };
                    return Err(TreeError { line, message: message.to_owned() });
                }
            },
            Event::SequenceStart(anchor, _) => {
                self.open(line)?;
                self.stack.push(Frame::Seq { line, anchor, items: Vec::new() });
            }
            Event::MappingStart(anchor, _) => {
                self.open(line)?;
                self.stack.push(Frame::Map { line, anchor, entries: Vec::new(), key: None });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (line, anchor, value) = match self.stack.pop() {
                    Some(Frame::Seq { line, anchor, items }) => (line, anchor, Value::Seq(items)),
                    Some(Frame::Map { line, anchor, entries, .. }) => (line, anchor, Value::Map(entries)),
                    None => return Ok(()),
                };
                let children: Box<dyn Iterator<Item = &Rc<Node>>> = match &value {
                    Value::Seq(items) => Box::new(items.iter()),
                    Value::Map(entries) => Box::new(entries.iter().flat_map(|(k, v)| [k, v])),
                    Value::Scalar(_) => Box::new(std::iter::empty()),
                };
                let (size, height) = children
                    .fold((1u64, 0usize), |(s, h), c| (s.saturating_add(c.size), h.max(c.height + 1)));
                let node = Rc::new(Node { line, value, size, height });
                if anchor > 0 {
                    self.anchors.insert(anchor, Rc::clone(&node));
                }
                self.push(node);
            }
        }
        Ok(())
    }

    fn open(&self, line: usize) -> Result<(), TreeError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(TreeError { line, message: format!("nesting deeper than {MAX_DEPTH} levels") });
        }
        Ok(())
    }

    fn push(&mut self, node: Rc<Node>) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map_get<'a>(n: &'a Node, key: &str) -> &'a Node {
        match &n.value {
            Value::Map(e) => &e.iter().find(|(k, _)| k.scalar().unwrap().text == key).unwrap().1,
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(resolve_plain(""), Resolved::Null);
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("NULL"), Resolved::Null);
        assert_eq!(resolve_plain("True"), Resolved::Bool(true));
        assert_eq!(resolve_plain("FALSE"), Resolved::Bool(false));
        // YAML 1.1 booleans are strings in 1.2.
        assert_eq!(resolve_plain("yes"), Resolved::Str("yes"));
        assert_eq!(resolve_plain("off"), Resolved::Str("off"));
        assert_eq!(resolve_plain("42"), Resolved::Int(42));
        assert_eq!(resolve_plain("-7"), Resolved::Int(-7));
        assert_eq!(resolve_plain("+7"), Resolved::Int(7));
        assert_eq!(resolve_plain("0o17"), Resolved::Int(15));
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("0.1"), Resolved::Float(0.1));
        assert_eq!(resolve_plain(".5"), Resolved::Float(0.5));
        assert_eq!(resolve_plain("1."), Resolved::Float(1.0));
        assert_eq!(resolve_plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_plain("-2.5E-1"), Resolved::Float(-0.25));
        assert_eq!(resolve_plain("-.inf"), Resolved::Float(f64::NEG_INFINITY));
        assert!(matches!(resolve_plain(".NaN"), Resolved::Float(f) if f.is_nan()));
        assert_eq!(resolve_plain("99999999999999999999"), Resolved::Float(1e20));
        for s in ["1.2.3", "0x", "0xZZ", "e3", ".", "1e", "+", "-", "1_000", "0b101", "inf", "v1"] {
            assert_eq!(resolve_plain(s), Resolved::Str(s), "{s}");
        }
    }

    #[test]
    fn nodes_keep_line_text_and_quoting() {
        let (docs, err) = parse("# c\na: 0.1\nb:\n  - \"2\"\n  - 'x'\nc: !!str 1.10\nd: ! 7\n");
        assert_eq!(err, None);
        let root = &docs[0];
        let a = map_get(root, "a");
        assert_eq!(a.line, 2);
        let s = a.scalar().unwrap();
        assert_eq!((s.text.as_str(), s.quoted), ("0.1", false));
        assert_eq!(s.resolve(), Resolved::Float(0.1));
        let Value::Seq(items) = &map_get(root, "b").value else { panic!() };
        assert_eq!(items[0].line, 4);
        assert_eq!(items[0].scalar().unwrap().resolve(), Resolved::Str("2"));
        assert!(items[1].scalar().unwrap().quoted);
        assert_eq!(map_get(root, "c").scalar().unwrap().resolve(), Resolved::Str("1.10"));
        assert_eq!(map_get(root, "d").scalar().unwrap().resolve(), Resolved::Str("7"));
    }

    #[test]
    fn aliases_share_the_anchored_node() {
        let (docs, err) = parse("a: &x {k: v}\nb: *x\n");
        assert_eq!(err, None);
        let (a, b) = (map_get(&docs[0], "a"), map_get(&docs[0], "b"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(map_get(b, "k").scalar().unwrap().text, "v");
    }

    #[test]
    fn anchors_do_not_cross_documents() {
        let (docs, err) = parse("a: &x 1\n---\nb: *x\n");
        assert_eq!(docs.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("unknown anchor"), "{}", err.message);
    }

    #[test]
    fn recursive_alias_is_an_error() {
        let (_, err) = parse("a: &x\n  b: *x\n");
        assert_eq!(
            err.unwrap(),
            TreeError {
                line: 2,
                message: "alias refers to a node that contains it (recursive alias)".into()
            }
        );
    }

    #[test]
    fn multiple_documents_and_syntax_error_line() {
        let (docs, err) = parse("a: 1\n---\nb: 2\n---\nc: [1,\n");
        assert_eq!(docs.len(), 2);
        assert!(err.is_some());
        let (_, err) = parse("a: 1\nb: : x\n  c\n");
        let err = err.unwrap();
        assert_eq!(err.line, 2, "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // Block nesting: the parser itself has no limit here.
        let text = format!("{}x\n", "- ".repeat(100_000));
        let (_, err) = parse(&text);
        let err = err.unwrap();
        assert_eq!(err, TreeError { line: 1, message: "nesting deeper than 128 levels".into() });
        let ok = format!("{}x\n", "- ".repeat(100));
        assert_eq!(parse(&ok).1, None);
        // Flow nesting: the parser's own limit answers first.
        assert!(parse(&"[".repeat(100_000)).1.is_some());
    }

    #[test]
    fn alias_bombs_fail_fast_at_the_line_that_crosses_the_bound() {
        // Each level repeats the one before ten times: 10^40 nodes expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        // Expanded, this would never finish: the error at line 4 shows the bound cut it short.
        let (_, err) = parse(&text);
        let err = err.unwrap();
        // Level 3 holds 10 * 111 + 1 nodes; levels 1-3 add 110 + 1,110 + 11,110 > 10,000.
        assert_eq!(err.line, 4, "{err:?}");
        assert!(err.message.starts_with("aliases expand to more than 10000 nodes"), "{err:?}");

        // Sharing a block a few times is fine, and so is a second document with its own budget.
        let ok = "base: &b {model: m, temperature: 0.1}\nx: [*b, *b, *b]\n---\ny: 1\n";
        assert_eq!(parse(ok).1, None);
    }

    #[test]
    fn an_alias_cannot_nest_past_the_depth_limit() {
        let deep = format!("a: &d {}x{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse(&deep).1, None);
        let err = parse(&format!("{deep}b: {}*d{}\n", "[".repeat(40), "]".repeat(40))).1.unwrap();
        assert_eq!(
            err,
            TreeError { line: 2, message: "nesting deeper than 128 levels (through an alias)".into() }
        );
    }

    #[test]
    fn yaml_documents_become_json_with_keys_as_written() {
        let v = yaml_to_json(
            "openapi: 3.1.0\npaths:\n  /a:\n    get:\n      responses:\n        200: {description: ok}\n",
        )
        .expect("one document");
        assert_eq!(v["openapi"], "3.1.0");
        assert_eq!(v["paths"]["/a"]["get"]["responses"]["200"]["description"], "ok");
        assert_eq!(
            yaml_to_json("a: 1\n---\nb: 2\n").expect_err("two").to_string(),
            "line 3: more than one YAML document"
        );
        assert!(yaml_to_json("a: [").expect_err("syntax").to_string().starts_with("line "));
        assert_eq!(yaml_to_json("").expect_err("empty").to_string(), "line 1: no YAML document");
    }
}
