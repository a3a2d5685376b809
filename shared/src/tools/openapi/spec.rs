//! Reading an OpenAPI document: JSON or YAML text, version 3.0 or 3.1, into `oas3`'s model,
//! with local `$ref`s resolved.
//!
//! `oas3` models 3.1. A 3.0 document is first brought to 3.1 where the two differ in ways that
//! fail or mislead a 3.1 reader: `nullable: true` becomes a `"null"` member of `type`, and the
//! boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric 3.1 form. References are
//! resolved here, not with `oas3`'s resolver, because that one silently drops parameters it
//! cannot resolve and ignores the file part of a `$ref`: a `$ref` must point into this document
//! (`#/...`, any JSON pointer), anything else is an error the caller reports. Schemas are handed
//! on as JSON with every `$ref` inlined; a reference back into a schema being expanded becomes
//! `{}` (any value), and expansion stops after [`MAX_EXPANSIONS`] references.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use oas3::spec::ObjectOrReference;

/// How many `$ref`s one schema may expand into (guards against exponential documents).
pub(crate) const MAX_EXPANSIONS: usize = 2_000;

/// Keys whose values are data, not schemas: never searched for `$ref`s or 3.0 keywords.
const DATA_KEYS: [&str; 5] = ["example", "examples", "default", "enum", "const"];

/// Why an OpenAPI document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot be read")]
    Read(#[source] std::io::Error),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("was answered with HTTP {status}")]
    Status { status: u16 },
    #[error("is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("is not valid YAML")]
    Yaml(#[source] crate::config::TreeError),
    #[error("{0}")]
    Version(String),
    #[error("does not follow OpenAPI 3 at {path}")]
    Shape {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Server(String),
}

/// A parsed document and its raw JSON form (for references).
pub(crate) struct Document {
    pub(crate) spec: oas3::Spec,
    raw: Value,
}

impl Document {
    /// Parses `text`: JSON when it starts with `{`, YAML otherwise.
    pub(crate) fn parse(text: &str) -> Result<Self, DocumentError> {
        let text = text.trim_start_matches('\u{feff}');
        let mut raw: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(DocumentError::Json)?
        } else {
            crate::config::yaml_to_json(text).map_err(DocumentError::Yaml)?
        };
        let version = match (raw.get("openapi"), raw.get("swagger")) {
            (Some(Value::String(v)), _) => v.clone(),
            (_, Some(_)) => {
                return Err(DocumentError::Version(
                    "is Swagger 2.0: convert it to OpenAPI 3 (e.g. with swagger2openapi)".into(),
                ));
            }
            _ => return Err(DocumentError::Version("has no `openapi` version field".into())),
        };
        if version.starts_with("3.0") {
            upgrade_3_0(&mut raw);
        } else if !version.starts_with("3.") {
            return Err(DocumentError::Version(format!(
                "is OpenAPI {version}; versions 3.0 and 3.1 are read"
            )));
        }
        let spec = typed(&raw)?;
        Ok(Self { spec, raw })
    }

    /// The object `oor` stands for, following `$ref`s within the document.
    pub(crate) fn resolve<T: DeserializeOwned + Clone>(
        &self,
        oor: &ObjectOrReference<T>,
    ) -> Result<T, String> {
        match oor {
            ObjectOrReference::Object(t) => Ok(t.clone()),
            ObjectOrReference::Ref { ref_path, .. } => {
                let target = self.target(ref_path)?;
                let target = self.follow(target, ref_path)?;
                serde_json::from_value(target.clone()).map_err(|e| format!("$ref {ref_path}: {e}"))
            }
        }
    }

    /// `schema` as JSON Schema with every `$ref` inlined.
    pub(crate) fn schema_json(&self, schema: &oas3::spec::Schema) -> Result<Value, String> {
        let value = serde_json::to_value(schema).map_err(|e| format!("schema cannot be re-encoded: {e}"))?;
        let mut budget = MAX_EXPANSIONS;
        self.inline(&value, &mut Vec::new(), &mut budget)
    }

    /// The value a local `$ref` points at.
    fn target(&self, reference: &str) -> Result<&Value, String> {
        let Some(fragment) = reference.strip_prefix('#') else {
            return Err(format!("$ref {reference} points outside the document"));
        };
        let pointer = percent_encoding::percent_decode_str(fragment).decode_utf8_lossy();
        self.raw.pointer(&pointer).ok_or_else(|| format!("$ref {reference} points at nothing"))
    }

    /// Follows a chain of object-level `$ref`s (a parameter that is a reference to a reference).
    fn follow<'a>(&'a self, mut value: &'a Value, first: &str) -> Result<&'a Value, String> {
        for _ in 0..16 {
            match value.get("$ref").and_then(Value::as_str) {
                Some(next) => value = self.target(next)?,
                None => return Ok(value),
            }
        }
        Err(format!("$ref {first}: chain of more than 16 references"))
    }

    fn inline(&self, value: &Value, stack: &mut Vec<String>, budget: &mut usize) -> Result<Value, String> {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    return self.inline_ref(reference, map, stack, budget);
                }
                let mut out = Map::with_capacity(map.len());
                for (k, v) in map {
                    let v = if DATA_KEYS.contains(&k.as_str()) {
                        v.clone()
                    } else {
                        self.inline(v, stack, budget)?
                    };
                    out.insert(k.clone(), v);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.inline(v, stack, budget))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    /// The schema `reference` names, expanded, with the referring object's other keys (such as
    /// a `description` override) laid over it.
    fn inline_ref(
        &self,
        reference: &str,
        siblings: &Map<String, Value>,
        stack: &mut Vec<String>,
        budget: &mut usize,
    ) -> Result<Value, String> {
        let mut expanded = if stack.iter().any(|r| r == reference) {
            Value::Object(Map::new())
        } else {
            *budget = budget
                .checked_sub(1)
                .ok_or_else(|| format!("schema expands into more than {MAX_EXPANSIONS} references"))?;
            let target = self.target(reference)?;
            stack.push(reference.to_owned());
            let expanded = self.inline(target, stack, budget);
            stack.pop();
            expanded?
        };
        if let Value::Object(out) = &mut expanded {
            for (k, v) in siblings.iter().filter(|(k, _)| *k != "$ref") {
                let v =
                    if DATA_KEYS.contains(&k.as_str()) { v.clone() } else { self.inline(v, stack, budget)? };
                out.insert(k.clone(), v);
            }
        }
        Ok(expanded)
    }
}

/// The typed model of `raw`, with the JSON path of the first thing that does not fit.
fn typed(raw: &Value) -> Result<oas3::Spec, DocumentError> {
    serde_path_to_error::deserialize(raw)
        .map_err(|e| DocumentError::Shape { path: e.path().to_string(), source: e.into_inner() })
}

/// Rewrites the 3.0 schema keywords a 3.1 reader gets wrong, everywhere in the document.
fn upgrade_3_0(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(nullable) = map.remove("nullable")
                && nullable == Value::Bool(true)
                && let Some(Value::String(t)) = map.get("type")
            {
                let t = Value::String(t.clone());
                map.insert("type".into(), Value::Array(vec![t, "null".into()]));
            }
            for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
                if let Some(Value::Bool(on)) = map.get(exclusive).cloned() {
                    map.remove(exclusive);
                    if on && let Some(limit) = map.remove(bound) {
                        map.insert(exclusive.into(), limit);
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if !DATA_KEYS.contains(&k.as_str()) {
                    upgrade_3_0(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(upgrade_3_0),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Document {
        Document::parse(&v.to_string()).expect("document")
    }

    #[test]
    fn json_and_yaml_of_both_versions_are_read() {
        let yaml = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      \
                    responses:\n        200: {description: ok}\n";
        let d = Document::parse(yaml).expect("yaml with integer response keys");
        assert_eq!(d.spec.operations().count(), 1);
        let d = doc(json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}));
        assert_eq!(d.spec.openapi, "3.0.3");
    }

    #[test]
    fn other_versions_and_broken_documents_are_refused_with_the_reason() {
        let e = |text: &str| Document::parse(text).err().map(|e| crate::telemetry::error_chain(&e));
        assert_eq!(
            e(r#"{"swagger": "2.0"}"#).as_deref(),
            Some("is Swagger 2.0: convert it to OpenAPI 3 (e.g. with swagger2openapi)")
        );
        assert_eq!(
            e(r#"{"openapi": "4.0.0"}"#).as_deref(),
            Some("is OpenAPI 4.0.0; versions 3.0 and 3.1 are read")
        );
        assert!(e("{ not json").is_some_and(|m| m.starts_with("is not valid JSON")));
        let shape = e(r#"{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "paths": {"/a": {"get": {"parameters": [{"name": "x", "in": "body"}]}}}}"#)
        .expect("bad parameter location");
        assert!(shape.starts_with("does not follow OpenAPI 3 at paths./a.get.parameters"), "{shape}");
    }

    #[test]
    fn openapi_3_0_keywords_are_brought_to_3_1() {
        let mut v = json!({"type": "integer", "nullable": true, "minimum": 0, "exclusiveMinimum": true,
            "maximum": 9, "exclusiveMaximum": false, "example": {"nullable": true}});
        upgrade_3_0(&mut v);
        assert_eq!(
            v,
            json!({"type": ["integer", "null"], "exclusiveMinimum": 0, "maximum": 9, "example": {"nullable": true}})
        );
    }

    #[test]
    fn refs_are_inlined_with_overrides_and_cycles_cut() {
        let d = doc(json!({
            "openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {},
            "components": {"schemas": {
                "Node": {"type": "object", "properties": {
                    "name": {"$ref": "#/components/schemas/Name", "description": "override"},
                    "next": {"$ref": "#/components/schemas/Node"}}},
                "Name": {"type": "string", "description": "original", "default": {"$ref": "kept as data"}}
            }}
        }));
        let schema: oas3::spec::Schema =
            serde_json::from_value(json!({"$ref": "#/components/schemas/Node"})).expect("schema");
        assert_eq!(
            d.schema_json(&schema).expect("inlined"),
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "override", "default": {"$ref": "kept as data"}},
                "next": {}}})
        );
        let outside: oas3::spec::Schema =
            serde_json::from_value(json!({"$ref": "other.yaml#/components/schemas/X"})).expect("schema");
        assert_eq!(
            d.schema_json(&outside).expect_err("external"),
            "$ref other.yaml#/components/schemas/X points outside the document"
        );
    }

    #[test]
    fn exponential_documents_are_bounded() {
        let mut schemas = Map::new();
        for i in 0..20 {
            let next = format!("#/components/schemas/S{}", i + 1);
            schemas
                .insert(format!("S{i}"), json!({"properties": {"a": {"$ref": next}, "b": {"$ref": next}}}));
        }
        schemas.insert("S20".into(), json!({"type": "string"}));
        let d = doc(json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {},
            "components": {"schemas": schemas}}));
        let root: oas3::spec::Schema =
            serde_json::from_value(json!({"$ref": "#/components/schemas/S0"})).expect("schema");
        assert_eq!(
            d.schema_json(&root).expect_err("too big"),
            "schema expands into more than 2000 references"
        );
    }
}
