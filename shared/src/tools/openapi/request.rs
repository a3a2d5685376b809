//! How one operation is called ([`Route`]) and the pure step from the model's arguments to an
//! HTTP request ([`prepare`]): no I/O, so every placement rule is unit-tested.
//!
//! Values are placed as OpenAPI's `style`/`explode` say for the styles kept: `simple` (path,
//! header), `form`, `spaceDelimited`, `pipeDelimited` and `deepObject` (query). Path values are
//! percent-encoded except for RFC 3986's unreserved characters (so a value cannot add a `/`), and
//! a path that would hold a `.` or `..` segment is refused: the URL parser would fold it and reach
//! another resource. Anything wrong with the arguments is an `Err(text)` for the model.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use url::Url;

/// Everything but RFC 3986's unreserved characters.
const PATH_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Simple,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

/// A path, query or header parameter.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    /// The argument the model fills.
    pub arg: String,
    /// The name on the wire.
    pub name: String,
    pub location: Location,
    pub required: bool,
    /// Sent when the argument is required, missing and the schema has a default.
    pub default: Option<Value>,
    pub style: Style,
    pub explode: bool,
}

/// One argument that goes into the JSON body, at `path` (empty: the argument is the body).
#[derive(Debug, Clone)]
pub(crate) struct BodyField {
    pub arg: String,
    pub path: Vec<String>,
    pub required: bool,
    pub default: Option<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub media_type: String,
    pub required: bool,
    pub fields: Vec<BodyField>,
}

/// How to call one operation.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub method: http::Method,
    /// The path template, e.g. `/pets/{petId}`.
    pub path: String,
    pub params: Vec<Param>,
    pub body: Option<Body>,
}

/// A request ready to send (auth headers are added by the client).
#[derive(Debug)]
pub(crate) struct Prepared {
    pub method: http::Method,
    pub url: Url,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Media type and JSON bytes.
    pub body: Option<(String, Vec<u8>)>,
}

/// The request for `route` at `base` with the model's `args`, or what the model got wrong.
pub(crate) fn prepare(base: &Url, route: &Route, args: &Map<String, Value>) -> Result<Prepared, String> {
    let value =
        |arg: &str, required: bool, default: &Option<Value>| match args.get(arg).filter(|v| !v.is_null()) {
            Some(v) => Some(v.clone()),
            None if required => default.clone(),
            None => None,
        };
    let missing: Vec<&str> = route
        .params
        .iter()
        .map(|p| (&p.arg, p.required, &p.default))
        .chain(route.body.iter().flat_map(|b| b.fields.iter().map(|f| (&f.arg, f.required, &f.default))))
        .filter(|(arg, required, default)| *required && value(arg, true, default).is_none())
        .map(|(arg, _, _)| arg.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing required argument(s): {}", missing.join(", ")));
    }

    let mut path = route.path.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    let mut headers = Vec::new();
    for p in &route.params {
        let Some(v) = value(&p.arg, p.required, &p.default) else { continue };
        match p.location {
            Location::Path => {
                let encoded = simple(&v, p.explode, |s| utf8_percent_encode(s, PATH_VALUE).to_string());
                path = path.replace(&format!("{{{}}}", p.name), &encoded);
            }
            Location::Query => query.extend(query_pairs(p, &v)),
            Location::Header => {
                let text = simple(&v, p.explode, str::to_owned);
                let value = http::HeaderValue::from_str(&text)
                    .map_err(|_| format!("argument {}: not a valid HTTP header value", p.arg))?;
                let name = http::HeaderName::from_bytes(p.name.as_bytes())
                    .map_err(|_| format!("header {} has an invalid name in the OpenAPI document", p.name))?;
                headers.push((name, value));
            }
        }
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(format!("the path {path} would hold a '.' or '..' segment; use another value"));
    }

    let mut url = base.clone();
    url.set_path(&format!("{}{}", base.path().trim_end_matches('/'), path));
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let body = match &route.body {
        Some(b) => body(b, |f| value(&f.arg, f.required, &f.default))?,
        None => None,
    };
    Ok(Prepared { method: route.method.clone(), url, headers, body })
}

/// The JSON body, when the body is required or any of its arguments was given.
fn body(b: &Body, value: impl Fn(&BodyField) -> Option<Value>) -> Result<Option<(String, Vec<u8>)>, String> {
    let mut root: Option<Value> = None;
    for field in &b.fields {
        let Some(v) = value(field) else { continue };
        let Some((last, parents)) = field.path.split_last() else {
            root = Some(v);
            continue;
        };
        let mut node = root.get_or_insert_with(|| Value::Object(Map::new()));
        for key in parents {
            node = node
                .as_object_mut()
                .map(|m| m.entry(key.clone()).or_insert_with(|| Value::Object(Map::new())))
                .ok_or_else(|| format!("argument {}: the body does not fit the schema", field.arg))?;
        }
        if let Some(map) = node.as_object_mut() {
            map.insert(last.clone(), v);
        }
    }
    if root.is_none() && b.required {
        root = Some(Value::Object(Map::new()));
    }
    root.map(|v| serde_json::to_vec(&v).map(|bytes| (b.media_type.clone(), bytes)).map_err(|e| e.to_string()))
        .transpose()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 6570 simple expansion (path and header parameters).
fn simple(v: &Value, explode: bool, encode: impl Fn(&str) -> String) -> String {
    match v {
        Value::Array(items) => items.iter().map(|i| encode(&text(i))).collect::<Vec<_>>().join(","),
        Value::Object(map) if explode => map
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(&text(v))))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(map) => {
            map.iter().flat_map(|(k, v)| [encode(k), encode(&text(v))]).collect::<Vec<_>>().join(",")
        }
        scalar => encode(&text(scalar)),
    }
}

/// The query pairs of one parameter.
fn query_pairs(p: &Param, v: &Value) -> Vec<(String, String)> {
    let one = |value: String| vec![(p.name.clone(), value)];
    match v {
        Value::Array(items) => match (p.style, p.explode) {
            (Style::Form, true) | (Style::DeepObject, _) | (Style::Simple, true) => {
                items.iter().map(|i| (p.name.clone(), text(i))).collect()
            }
            (style, _) => {
                let delimiter = match style {
                    Style::SpaceDelimited => " ",
                    Style::PipeDelimited => "|",
                    Style::Form | Style::Simple | Style::DeepObject => ",",
                };
                one(items.iter().map(text).collect::<Vec<_>>().join(delimiter))
            }
        },
        Value::Object(map) => match (p.style, p.explode) {
            (Style::DeepObject, _) => {
                map.iter().map(|(k, v)| (format!("{}[{k}]", p.name), text(v))).collect()
            }
            (Style::Form, true) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            _ => one(map.iter().flat_map(|(k, v)| [k.clone(), text(v)]).collect::<Vec<_>>().join(",")),
        },
        scalar => one(text(scalar)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn param(name: &str, location: Location, style: Style, explode: bool) -> Param {
        Param {
            arg: name.replace('-', "_"),
            name: name.into(),
            location,
            required: false,
            default: None,
            style,
            explode,
        }
    }

    fn route(params: Vec<Param>, body: Option<Body>) -> Route {
        Route { method: http::Method::POST, path: "/items/{id}".into(), params, body }
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn base() -> Url {
        Url::parse("http://api.test/v1/").expect("url")
    }

    #[test]
    fn parameters_land_where_the_document_says() {
        let mut id = param("id", Location::Path, Style::Simple, false);
        id.required = true;
        let r = route(
            vec![
                id,
                param("tags", Location::Query, Style::Form, true),
                param("ids", Location::Query, Style::Form, false),
                param("pipe", Location::Query, Style::PipeDelimited, false),
                param("filter", Location::Query, Style::DeepObject, true),
                param("X-Trace-Id", Location::Header, Style::Simple, false),
                param("unused", Location::Query, Style::Form, true),
            ],
            None,
        );
        let p = prepare(
            &base(),
            &r,
            &args(json!({"id": "a/b c", "tags": ["x", "y"], "ids": [1, 2], "pipe": ["p", "q"],
                "filter": {"color": "red"}, "X_Trace_Id": 7, "unused": null})),
        )
        .expect("prepared");
        assert_eq!(
            p.url.as_str(),
            "http://api.test/v1/items/a%2Fb%20c?tags=x&tags=y&ids=1%2C2&pipe=p%7Cq&filter%5Bcolor%5D=red"
        );
        assert_eq!(
            p.headers,
            vec![(http::HeaderName::from_static("x-trace-id"), http::HeaderValue::from_static("7"))]
        );
        assert!(p.body.is_none());
    }

    #[test]
    fn missing_required_arguments_are_named_and_defaults_fill_in() {
        let mut id = param("id", Location::Path, Style::Simple, false);
        id.required = true;
        let mut unit = param("unit", Location::Query, Style::Form, true);
        unit.required = true;
        unit.default = Some(json!("celsius"));
        let body = Body {
            media_type: "application/json".into(),
            required: true,
            fields: vec![BodyField {
                arg: "name".into(),
                path: vec!["name".into()],
                required: true,
                default: None,
            }],
        };
        let r = route(vec![id, unit], Some(body));
        assert_eq!(
            prepare(&base(), &r, &Map::new()).expect_err("missing"),
            "missing required argument(s): id, name"
        );
        let p = prepare(&base(), &r, &args(json!({"id": 3, "name": "n"}))).expect("prepared");
        assert_eq!(p.url.as_str(), "http://api.test/v1/items/3?unit=celsius");
    }

    #[test]
    fn body_arguments_are_nested_back_and_a_whole_payload_is_sent_as_is() {
        let field = |arg: &str, path: &[&str]| BodyField {
            arg: arg.into(),
            path: path.iter().map(|s| s.to_string()).collect(),
            required: false,
            default: None,
        };
        let body = Body {
            media_type: "application/json".into(),
            required: false,
            fields: vec![field("name", &["name"]), field("owner_city", &["owner", "city"])],
        };
        let r = route(vec![], Some(body.clone()));
        let p = prepare(&base(), &r, &args(json!({"name": "rex", "owner_city": "Oslo"}))).expect("prepared");
        let (media, bytes) = p.body.expect("body");
        assert_eq!(media, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).expect("json"),
            json!({"name": "rex", "owner": {"city": "Oslo"}})
        );
        assert!(prepare(&base(), &r, &Map::new()).expect("no body").body.is_none());

        let whole = Body { fields: vec![field("payload", &[])], ..body };
        let p = prepare(&base(), &route(vec![], Some(whole)), &args(json!({"payload": [1, 2]})))
            .expect("prepared");
        assert_eq!(p.body.map(|(_, b)| b), Some(b"[1,2]".to_vec()));
    }

    #[test]
    fn values_cannot_escape_the_path_or_break_headers() {
        let mut id = param("id", Location::Path, Style::Simple, false);
        id.required = true;
        let r = route(vec![id, param("X-A", Location::Header, Style::Simple, false)], None);
        for bad in ["..", "."] {
            let e = prepare(&base(), &r, &args(json!({ "id": bad }))).expect_err(bad);
            assert!(e.contains("'.' or '..' segment"), "{e}");
        }
        let e = prepare(&base(), &r, &args(json!({"id": 1, "X_A": "a\r\nInjected: 1"}))).expect_err("crlf");
        assert_eq!(e, "argument X_A: not a valid HTTP header value");
    }
}
