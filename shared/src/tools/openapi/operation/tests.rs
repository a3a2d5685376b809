use serde_json::json;

use super::*;

const WEATHER: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openapi/teal-demo-openapi_weather.json"
));
const PETSTORE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi/petstore-3.0.json"));
const INVENTORY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi/inventory-3.1.yaml"));

fn built(plugin: &str, text: &str) -> (Vec<OperationTool>, Vec<Skipped>) {
    let doc = Document::parse(text).expect("document");
    build(&PluginName::parse(plugin).expect("plugin name"), &doc)
}

fn tool<'a>(tools: &'a [OperationTool], name: &str) -> &'a OperationTool {
    tools.iter().find(|t| t.spec.name == name).unwrap_or_else(|| panic!("no tool {name}"))
}

#[test]
fn teal_demo_weather_document_gives_sk_shaped_tools() {
    let (tools, skipped) = built("api_weather", WEATHER);
    assert!(skipped.is_empty(), "{skipped:?}");
    let specs: Vec<&ToolSpec> = tools.iter().map(|t| &t.spec).collect();
    insta::assert_json_snapshot!("teal_demo_weather_tools", specs);
}

#[test]
fn petstore_3_0_tools_and_what_was_skipped() {
    let (tools, skipped) = built("petstore", PETSTORE);
    let names: Vec<&str> = tools.iter().map(|t| t.spec.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "petstore-listPets",
            "petstore-createPet",
            "petstore-getPet",
            "petstore-delete_pets_petId",
            "petstore-getPhoto",
            "petstore-getBig",
            "petstore-getBigStream",
            "petstore-slow",
            "petstore-moved",
        ]
    );
    let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        skipped,
        [
            "GET /pets: cookie parameter session is not supported, left out",
            "POST /pets: callbacks ignored (onAdopted)",
            "GET /pets/{petId}: header parameter Accept ignored, as the OpenAPI specification says",
            "POST /upload: operation skipped: request body without a JSON media type (multipart/form-data) (and it is required)",
        ]
    );
}

#[test]
fn body_properties_are_flattened_with_namespaced_nested_leaves() {
    let (tools, _) = built("petstore", PETSTORE);
    let create = tool(&tools, "petstore-createPet");
    assert_eq!(create.spec.description, "Create a pet");
    insta::assert_json_snapshot!(create.spec.parameters, @r#"
    {
      "type": "object",
      "properties": {
        "name": {
          "type": "string",
          "description": "The pet's name"
        },
        "tag": {
          "type": [
            "string",
            "null"
          ]
        },
        "owner_email": {
          "type": "string",
          "format": "email"
        },
        "owner_city": {
          "type": "string"
        },
        "callbackUrl": {
          "type": "string",
          "format": "uri"
        }
      },
      "required": [
        "name",
        "owner_email"
      ]
    }
    "#);
    let body = create.route.body.as_ref().expect("body");
    let email = body.fields.iter().find(|f| f.arg == "owner_email").expect("owner_email");
    assert_eq!(email.path, ["owner", "email"]);
}

#[test]
fn parameters_are_merged_from_path_and_operation_and_upgraded_from_3_0() {
    let (tools, _) = built("petstore", PETSTORE);
    let get = tool(&tools, "petstore-getPet");
    assert_eq!(get.spec.description, "Get one pet");
    let props = get.spec.parameters["properties"].as_object().expect("properties");
    assert_eq!(props.keys().collect::<Vec<_>>(), ["petId", "X_Request_Id", "X_Api_Key"]);
    assert_eq!(props["petId"], json!({"type": "integer", "description": "The pet's id"}));
    assert_eq!(get.spec.parameters["required"], json!(["petId"]));

    let list = tool(&tools, "petstore-listPets");
    let props = &list.spec.parameters["properties"];
    assert_eq!(props["limit"], json!({"type": "integer", "default": 20, "exclusiveMinimum": 0}));
    assert_eq!(props["name"], json!({"type": ["string", "null"]}));
    assert_eq!(
        list.route.params.iter().find(|p| p.name == "limit").and_then(|p| p.default.clone()),
        Some(json!(20))
    );
}

#[test]
fn openapi_3_1_yaml_gives_a_payload_argument_for_a_non_object_body() {
    let (tools, skipped) = built("inventory", INVENTORY);
    assert_eq!(
        skipped.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["webhooks: webhooks are not tools (restocked)"]
    );
    let replace = tool(&tools, "inventory-replaceTags");
    insta::assert_json_snapshot!(replace.spec.parameters, @r#"
    {
      "type": "object",
      "properties": {
        "petId": {
          "type": "integer"
        },
        "version": {
          "type": [
            "integer",
            "null"
          ],
          "exclusiveMinimum": 0
        },
        "payload": {
          "items": {
            "type": "string"
          },
          "type": "array",
          "description": "The new tags"
        }
      },
      "required": [
        "petId",
        "payload"
      ]
    }
    "#);
    let search = tool(&tools, "inventory-stock_search");
    assert_eq!(search.spec.description, "Search the stock");
    assert_eq!(search.server, None);
}

fn doc_with(paths: serde_json::Value) -> String {
    json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}).to_string()
}

#[test]
fn colliding_names_get_a_hash_and_colliding_arguments_skip_the_operation() {
    let ok = json!({"200": {"description": "ok"}});
    let text = doc_with(json!({
        "/a": {"get": {"operationId": "get.a", "responses": ok},
               "put": {"operationId": "get_a", "responses": ok}},
        "/b": {"get": {"operationId": "clash", "responses": ok, "parameters": [
            {"name": "a-b", "in": "query", "schema": {"type": "string"}},
            {"name": "a_b", "in": "header", "schema": {"type": "string"}}]}},
        "/c/{id}": {"get": {"operationId": "undeclared", "responses": ok}}
    }));
    let (tools, skipped) = built("p", &text);
    let names: Vec<&str> = tools.iter().map(|t| t.spec.name.as_str()).collect();
    let hash = &crate::util::sha256_hex(b"get_a")[..8];
    assert_eq!(names, ["p-get_a".to_owned(), format!("p-get_a_{hash}")]);
    let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        skipped,
        [
            "GET /b: operation skipped: two arguments would both be named a_b",
            "GET /c/{id}: operation skipped: path parameter {id} is not described",
        ]
    );
}

#[test]
fn unsupported_parameter_forms_are_reported() {
    let ok = json!({"200": {"description": "ok"}});
    let text = doc_with(json!({
        "/m/{id}": {"get": {"operationId": "matrix", "responses": ok, "parameters": [
            {"name": "id", "in": "path", "required": true, "style": "matrix", "schema": {"type": "string"}}]}},
        "/q": {"get": {"operationId": "content", "responses": ok, "parameters": [
            {"name": "filter", "in": "query", "content": {"application/json": {"schema": {"type": "object"}}}}]}},
        "/r": {"get": {"operationId": "outside", "responses": ok, "parameters": [
            {"$ref": "common.yaml#/components/parameters/X"}]}},
        "/s": {"$ref": "#/paths/~1q"}
    }));
    let (tools, skipped) = built("p", &text);
    assert_eq!(tools.iter().map(|t| t.spec.name.as_str()).collect::<Vec<_>>(), ["p-content"]);
    let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        skipped,
        [
            "GET /m/{id}: operation skipped: parameter id uses style Matrix, which is not supported (and it is required)",
            "GET /q: parameter filter has no schema (`content` is not supported), left out",
            "GET /r: operation skipped: $ref common.yaml#/components/parameters/X points outside the document",
            "/s: operation skipped: path item given by $ref #/paths/~1q is not supported",
        ]
    );
}

#[test]
fn operation_servers_win_over_the_document_s() {
    let ok = json!({"200": {"description": "ok"}});
    let text = doc_with(json!({
        "/a": {"servers": [{"url": "https://path.example"}],
               "get": {"operationId": "a", "responses": ok},
               "put": {"operationId": "b", "responses": ok, "servers": [{"url": "https://op.example"}]}}
    }));
    let (tools, _) = built("p", &text);
    let urls: Vec<Option<&str>> = tools.iter().map(|t| t.server.as_ref().map(|s| s.url.as_str())).collect();
    assert_eq!(urls, [Some("https://path.example"), Some("https://op.example")]);
}
