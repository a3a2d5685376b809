//! From a parsed document to tools: for each operation its [`ToolSpec`] (name, description,
//! arguments schema) and its [`Route`], plus the list of what had to be [`Skipped`]. The shape
//! and its rules are in the module doc of `openapi`.

use std::fmt;

use oas3::spec::{Operation, ParameterIn, ParameterStyle, PathItem, Server};
use serde_json::{Map, Value, json};

use super::catalog::PluginName;
use super::names;
use super::request::{Body, BodyField, Location, Param, Route, Style};
use super::spec::Document;
use crate::llm::ToolSpec;

/// Flattening of nested body objects stops at this depth (SK's limit).
const MAX_BODY_DEPTH: usize = 10;

/// The argument holding a whole body that is not an object with properties (SK's name).
const PAYLOAD_ARG: &str = "payload";

/// Something of the document that no tool offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// `METHOD /path`, or the part of the document (`webhooks`, a path).
    pub operation: String,
    /// What was left out and why.
    pub reason: String,
    /// The whole operation was left out (else only the part `reason` names).
    pub whole_operation: bool,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = if self.whole_operation { "operation skipped: " } else { "" };
        write!(f, "{}: {scope}{}", self.operation, self.reason)
    }
}

/// One operation as a tool.
#[derive(Debug)]
pub(crate) struct OperationTool {
    pub spec: ToolSpec,
    pub route: Route,
    /// The server the operation or its path declares, which takes precedence over the document's.
    pub server: Option<Server>,
}

/// Every operation of `doc` as a tool of `plugin`, and what was skipped. Tools come in path order
/// (sorted: the document goes through `serde_json::Value`, whose maps are sorted in this
/// workspace) and, within a path, as get, put, post, delete, options, head, patch, trace.
pub(crate) fn build(plugin: &PluginName, doc: &Document) -> (Vec<OperationTool>, Vec<Skipped>) {
    let mut tools: Vec<OperationTool> = Vec::new();
    let mut skipped = Vec::new();
    if !doc.spec.webhooks.is_empty() {
        let names: Vec<&str> = doc.spec.webhooks.keys().map(String::as_str).collect();
        skipped.push(part("webhooks", format!("webhooks are not tools ({})", names.join(", "))));
    }
    for (path, item) in doc.spec.paths.iter().flatten() {
        if let Some(reference) = &item.reference {
            skipped.push(whole(path, format!("path item given by $ref {reference} is not supported")));
            continue;
        }
        for (method, op) in item.methods() {
            let label = format!("{method} {path}");
            let mut notes = Vec::new();
            match operation(doc, path, item, method.clone(), op, &mut notes) {
                Ok((description, parameters, route)) => {
                    let function = names::function_name(op.operation_id.as_deref(), method.as_str(), path);
                    let original = op.operation_id.clone().unwrap_or_else(|| label.clone());
                    let taken = |name: &str| tools.iter().any(|t| t.spec.name == name);
                    match names::tool_name(plugin, &function, &original, taken) {
                        Some(name) => {
                            let spec = ToolSpec { name, description, parameters };
                            let server = op.servers.first().or(item.servers.first()).cloned();
                            tools.push(OperationTool { spec, route, server });
                        }
                        None => notes.push(Err(format!("tool name for {original} collides with another"))),
                    }
                }
                Err(reason) => notes.push(Err(reason)),
            }
            skipped.extend(notes.into_iter().map(|n| match n {
                Ok(reason) => part(&label, reason),
                Err(reason) => whole(&label, reason),
            }));
        }
    }
    (tools, skipped)
}

fn part(operation: &str, reason: String) -> Skipped {
    Skipped { operation: operation.to_owned(), reason, whole_operation: false }
}

fn whole(operation: &str, reason: String) -> Skipped {
    Skipped { operation: operation.to_owned(), reason, whole_operation: true }
}

/// Notes are `Ok(part left out)` or `Err(why the operation is left out)`.
type Notes = Vec<Result<String, String>>;

/// The description, arguments schema and route of one operation, or why it cannot be offered.
fn operation(
    doc: &Document,
    path: &str,
    item: &PathItem,
    method: http::Method,
    op: &Operation,
    notes: &mut Notes,
) -> Result<(String, Value, Route), String> {
    if !op.callbacks.is_empty() {
        let names: Vec<&str> = op.callbacks.keys().map(String::as_str).collect();
        notes.push(Ok(format!("callbacks ignored ({})", names.join(", "))));
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    for declared in item.parameters.iter().chain(&op.parameters) {
        let p = doc.resolve(declared)?;
        // An operation-level parameter replaces the path-level one of the same name and place.
        params.retain(|(q, _): &(Param, Value)| !(q.name == p.name && same_place(q.location, p.location)));
        if let Some(param) = parameter(doc, &p, notes)? {
            params.push(param);
        }
    }
    for var in template_vars(path) {
        if !params.iter().any(|(p, _)| p.location == Location::Path && p.name == var) {
            return Err(format!("path parameter {{{var}}} is not described"));
        }
    }
    let body = match &op.request_body {
        Some(declared) => request_body(doc, &doc.resolve(declared)?, notes)?,
        None => None,
    };
    let body_args = body.iter().flat_map(|(b, schemas)| b.fields.iter().map(|f| &f.arg).zip(schemas));
    let param_args = params.iter().map(|(p, schema)| (&p.arg, schema));
    for (arg, schema) in param_args.chain(body_args) {
        if properties.insert(arg.clone(), schema.clone()).is_some() {
            return Err(format!("two arguments would both be named {arg}"));
        }
    }
    let is_required = |arg: &String| {
        params.iter().any(|(p, _)| &p.arg == arg && p.required)
            || body.iter().any(|(b, _)| b.fields.iter().any(|f| &f.arg == arg && f.required))
    };
    required.extend(properties.keys().filter(|a| is_required(a)).cloned());
    let description = op.summary.as_deref().or(op.description.as_deref()).unwrap_or("").trim().to_owned();
    let parameters = json!({"type": "object", "properties": properties, "required": required});
    let route = Route {
        method,
        path: path.to_owned(),
        params: params.into_iter().map(|(p, _)| p).collect(),
        body: body.map(|(b, _)| b),
    };
    Ok((description, parameters, route))
}

fn same_place(a: Location, b: ParameterIn) -> bool {
    matches!(
        (a, b),
        (Location::Path, ParameterIn::Path)
            | (Location::Query, ParameterIn::Query)
            | (Location::Header, ParameterIn::Header)
    )
}

/// `{name}`s of a path template.
fn template_vars(path: &str) -> impl Iterator<Item = &str> {
    path.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
}

/// One parameter and its argument schema, `None` when it is left out (noted), `Err` when the
/// operation cannot be called without it.
fn parameter(
    doc: &Document,
    p: &oas3::spec::Parameter,
    notes: &mut Notes,
) -> Result<Option<(Param, Value)>, String> {
    let required = p.required.unwrap_or(false) || p.location == ParameterIn::Path;
    let leave_out = |notes: &mut Notes, what: String| left_out(required, what, notes).map(|()| None);
    let location = match p.location {
        ParameterIn::Path => Location::Path,
        ParameterIn::Query => Location::Query,
        ParameterIn::Header => Location::Header,
        ParameterIn::Cookie => {
            return leave_out(notes, format!("cookie parameter {} is not supported", p.name));
        }
    };
    if location == Location::Header
        && ["accept", "content-type", "authorization"].contains(&p.name.to_ascii_lowercase().as_str())
    {
        notes.push(Ok(format!("header parameter {} ignored, as the OpenAPI specification says", p.name)));
        return Ok(None);
    }
    let Some(schema) = &p.schema else {
        return leave_out(notes, format!("parameter {} has no schema (`content` is not supported)", p.name));
    };
    let style = match (p.style, location) {
        (None, Location::Query) | (Some(ParameterStyle::Form), _) => Style::Form,
        (None, _) | (Some(ParameterStyle::Simple), _) => Style::Simple,
        (Some(ParameterStyle::SpaceDelimited), _) => Style::SpaceDelimited,
        (Some(ParameterStyle::PipeDelimited), _) => Style::PipeDelimited,
        (Some(ParameterStyle::DeepObject), _) => Style::DeepObject,
        (Some(other @ (ParameterStyle::Matrix | ParameterStyle::Label)), _) => {
            return leave_out(
                notes,
                format!("parameter {} uses style {other:?}, which is not supported", p.name),
            );
        }
    };
    let mut schema = doc.schema_json(schema).map_err(|e| format!("parameter {}: {e}", p.name))?;
    if let (Some(d), Some(obj)) = (&p.description, schema.as_object_mut()) {
        obj.entry("description").or_insert_with(|| d.clone().into());
    }
    let param = Param {
        arg: names::arg_name(&p.name),
        name: p.name.clone(),
        location,
        required,
        default: schema.get("default").cloned(),
        style,
        explode: p.explode.unwrap_or(style == Style::Form),
    };
    Ok(Some((param, schema)))
}

/// Notes `what` as left out, or fails the operation when it is `required`.
fn left_out(required: bool, what: String, notes: &mut Notes) -> Result<(), String> {
    if required {
        return Err(format!("{what} (and it is required)"));
    }
    notes.push(Ok(format!("{what}, left out")));
    Ok(())
}

/// The JSON body's arguments (with their schemas), `None` when the body is left out (noted).
fn request_body(
    doc: &Document,
    rb: &oas3::spec::RequestBody,
    notes: &mut Notes,
) -> Result<Option<(Body, Vec<Value>)>, String> {
    let required = rb.required.unwrap_or(false);
    let is_json = |t: &str| {
        let essence = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    };
    let chosen = rb
        .content
        .iter()
        .find(|(t, _)| t.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json")))
        .or_else(|| rb.content.iter().find(|(t, _)| is_json(t)));
    let Some((media_type, media)) = chosen else {
        let types: Vec<&str> = rb.content.keys().map(String::as_str).collect();
        let what = format!("request body without a JSON media type ({})", types.join(", "));
        return left_out(required, what, notes).map(|()| None);
    };
    let mut root = match &media.schema {
        Some(s) => doc.schema_json(s).map_err(|e| format!("request body: {e}"))?,
        None => json!({}),
    };
    let mut out = Vec::new();
    match object_parts(&root) {
        Some((props, req)) => flatten(&props, &req, &[], true, 1, &mut out),
        None => {
            if let (Some(d), Some(obj)) = (&rb.description, root.as_object_mut()) {
                obj.entry("description").or_insert_with(|| d.clone().into());
            }
            let default = root.get("default").cloned();
            out.push((BodyField { arg: PAYLOAD_ARG.into(), path: Vec::new(), required, default }, root));
        }
    }
    let (fields, schemas) = out.into_iter().unzip();
    Ok(Some((Body { media_type: media_type.clone(), required, fields }, schemas)))
}

/// The properties and required names of an object schema (its `allOf` members merged), `None`
/// when it has no properties.
fn object_parts(schema: &Value) -> Option<(Map<String, Value>, Vec<String>)> {
    let mut props = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for member in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        if let Some((p, r)) = object_parts(member) {
            props.extend(p);
            required.extend(r);
        }
    }
    (!props.is_empty()).then_some((props, required))
}

/// The leaves under `props` as body fields, nested objects named `parent_child`.
fn flatten(
    props: &Map<String, Value>,
    required: &[String],
    parent: &[String],
    parent_required: bool,
    depth: usize,
    out: &mut Vec<(BodyField, Value)>,
) {
    for (name, schema) in props {
        if schema.get("readOnly") == Some(&Value::Bool(true)) {
            continue;
        }
        let is_required = parent_required && required.contains(name);
        let path: Vec<String> = parent.iter().cloned().chain([name.clone()]).collect();
        match object_parts(schema) {
            Some((sub, sub_required)) if depth < MAX_BODY_DEPTH => {
                flatten(&sub, &sub_required, &path, is_required, depth + 1, out)
            }
            _ => {
                let field = BodyField {
                    arg: names::arg_name(&path.join(".")),
                    path,
                    required: is_required,
                    default: schema.get("default").cloned(),
                };
                out.push((field, schema.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
