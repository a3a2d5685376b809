#![allow(clippy::unwrap_used)]
use super::mcp::STDIO_REFUSED;
use super::*;
use crate::config::reader::IGNORED;
use crate::config::types::McpTransport;
use crate::config::types::TemplatePart;
use crate::config::{Parsed, parse_documents};

fn ok(text: &str) -> Parsed {
    match parse_documents("a.yaml", text) {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse_documents("a.yaml", text) {
        Ok(p) => panic!("expected errors, loaded {:?}", p.agents),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// A valid agent; `extra_agent` lines go under `spec.agent` (4-space indented) at line 9.
fn with_agent(extra_agent: &str) -> String {
    format!(
        "apiVersion: tealagents/v1alpha1\n\
             kind: Chat\n\
             name: fs-assistant\n\
             version: 0.1\n\
             spec:\n  \
               agent:\n    \
                 model: gpt-4o-mini\n    \
                 system_prompt: You help.\n{extra_agent}"
    )
}

/// A valid agent with one server; `extra` lines go under the server (8-space indented) at
/// line 12.
fn with_server(extra: &str) -> String {
    with_agent(&format!(
        "    mcp_servers:\n      \
               - name: fs\n        \
                 url: http://127.0.0.1:8931/mcp\n{extra}"
    ))
}

#[test]
fn minimal_agent_gets_defaults() {
    let p = ok(&with_agent(""));
    assert!(p.warnings.is_empty());
    let [a] = p.agents.as_slice() else { panic!() };
    assert_eq!(a.api_version, ApiVersion::TealAgentsV1Alpha1);
    assert_eq!((a.name.as_str(), a.version.as_str()), ("fs-assistant", "0.1"));
    assert_eq!(a.description, None);
    assert_eq!(a.source, "a.yaml");
    assert_eq!(a.agents[0].name, "default");
    assert_eq!(a.agents[0].model, "gpt-4o-mini");
    assert_eq!(a.agents[0].system_prompt, "You help.");
    assert_eq!((a.agents[0].temperature, a.agents[0].max_tokens), (None, None));
    assert_eq!(a.agents[0].max_iterations, 10);
    assert!(a.agents[0].mcp_servers.is_empty());
}

#[test]
fn the_documented_example_loads_completely() {
    let text = r#"apiVersion: tealagents/v1alpha1
kind: Chat
name: fs-assistant
version: 0.1
description: Reads files
spec:
  agent:
    name: reader
    model: gpt-4o-mini
    system_prompt: |
      You are careful.
    temperature: 0.2
    max_tokens: 800
    max_iterations: 25
    mcp_servers:
      - name: fs
        url: https://fs.internal:8931/mcp
        transport: streamable-http
        headers:
          Authorization: "Bearer ${secret:FS_TOKEN}"
          X-Tenant: ${TENANT}
          X-Retries: 3
        timeout: 2.5
        tools:
          allow: ["read_*", "list_directory"]
          deny: ["write_*", "read_secret*"]
      - name: search-2
        url: http://127.0.0.1:9000/mcp
"#;
    let p = ok(text);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let a = &p.agents[0];
    assert_eq!(a.description.as_deref(), Some("Reads files"));
    assert_eq!(a.agents[0].name, "reader");
    assert_eq!(a.agents[0].system_prompt, "You are careful.\n");
    assert_eq!(a.agents[0].temperature, Some(0.2));
    assert_eq!(a.agents[0].max_tokens, Some(800));
    assert_eq!(a.agents[0].max_iterations, 25);
    let [fs, search] = a.agents[0].mcp_servers.as_slice() else { panic!() };
    assert_eq!(fs.name, "fs");
    assert_eq!(fs.url.as_str(), "https://fs.internal:8931/mcp");
    assert_eq!(fs.transport, McpTransport::StreamableHttp);
    assert_eq!(fs.timeout, Duration::from_millis(2500));
    assert_eq!(
        fs.headers["Authorization"].parts,
        vec![TemplatePart::Literal("Bearer ".into()), TemplatePart::Secret("FS_TOKEN".into())]
    );
    assert_eq!(fs.headers["X-Tenant"].parts, vec![TemplatePart::Secret("TENANT".into())]);
    assert_eq!(fs.headers["X-Retries"].parts, vec![TemplatePart::Literal("3".into())]);
    assert!(fs.tools.permits("read_file"));
    assert!(fs.tools.permits("list_directory"));
    assert!(!fs.tools.permits("read_secrets"));
    assert!(!fs.tools.permits("write_file"));
    assert!(!fs.tools.permits("delete_file"));
    assert_eq!(search.timeout, Duration::from_secs(30));
    assert!(search.headers.is_empty());
    assert!(search.tools.permits("anything"));
}

#[test]
fn version_text_is_kept_as_written() {
    for (written, kept) in
        [("0.1", "0.1"), ("1.10", "1.10"), ("\"2\"", "2"), ("1.0", "1.0"), ("'0.10'", "0.10"), ("3", "3")]
    {
        let text = with_agent("").replace("version: 0.1", &format!("version: {written}"));
        assert_eq!(ok(&text).agents[0].version, kept, "{written}");
    }
    let text = with_agent("").replace("version: 0.1", "version: true");
    assert_eq!(errs(&text), ["a.yaml:4 version: expected a string or a number, found a boolean"]);
    let text = with_agent("").replace("version: 0.1", "version: 1 beta");
    assert_eq!(
        errs(&text),
        ["a.yaml:4 version: invalid version `1 beta`: use only letters, digits, `.`, `_` and `-`"]
    );
}

#[test]
fn all_missing_required_fields_are_reported_at_their_parent_line() {
    let text = "apiVersion: tealagents/v1alpha1
kind: Chat
spec:
  agent:
    mcp_servers:
      - transport: http
";
    assert_eq!(
        errs(text),
        [
            "a.yaml:1 name: missing required field",
            "a.yaml:1 version: missing required field",
            "a.yaml:4 spec.agent.model: missing required field",
            "a.yaml:4 spec.agent.system_prompt: missing required field",
            "a.yaml:6 spec.agent.mcp_servers[0].name: missing required field",
            "a.yaml:6 spec.agent.mcp_servers[0].url: missing required field",
        ]
    );
    assert_eq!(
        errs("name: x\n"),
        [
            "a.yaml:1 apiVersion: missing required field",
            "a.yaml:1 kind: missing required field",
            "a.yaml:1 version: missing required field",
            "a.yaml:1 spec: missing required field",
        ]
    );
    let text = with_agent("")
        .replace("  agent:\n    model: gpt-4o-mini\n    system_prompt: You help.\n", "  other: 1\n");
    assert_eq!(errs(&text), ["a.yaml:5 spec.agent: missing required field"]);
}

#[test]
fn wrong_types_name_what_was_expected_and_found() {
    let text = "apiVersion: tealagents/v1alpha1
kind: Chat
name: [a]
version: 0.1
description: 12
spec:
  agent:
    model: {id: gpt}
    system_prompt:
    temperature: hot
    max_tokens: \"800\"
    max_iterations: 2.5
    mcp_servers: fs
";
    assert_eq!(
        errs(text),
        [
            "a.yaml:3 name: expected a string, found a sequence",
            "a.yaml:5 description: expected a string, found a number",
            "a.yaml:8 spec.agent.model: expected a string, found a mapping",
            "a.yaml:9 spec.agent.system_prompt: expected a string, found null",
            "a.yaml:10 spec.agent.temperature: expected a number, found a string",
            "a.yaml:11 spec.agent.max_tokens: expected an integer, found a string",
            "a.yaml:12 spec.agent.max_iterations: expected an integer, found `2.5`",
            "a.yaml:13 spec.agent.mcp_servers: expected a sequence, found a string",
        ]
    );
    assert_eq!(
        errs("apiVersion: tealagents/v1alpha1\nkind: Chat\nname: a\nversion: 1\nspec: 3\n"),
        ["a.yaml:5 spec: expected a mapping, found a number"]
    );
    assert_eq!(errs("- a\n- b\n"), ["a.yaml:1: expected a mapping, found a sequence"]);
}

#[test]
fn ranges() {
    let text = with_agent("    temperature: 2.5\n    max_tokens: 0\n    max_iterations: 101\n");
    assert_eq!(
        errs(&text),
        [
            "a.yaml:9 spec.agent.temperature: must be between 0 and 2",
            "a.yaml:10 spec.agent.max_tokens: must be greater than 0",
            "a.yaml:11 spec.agent.max_iterations: must be between 1 and 100",
        ]
    );
    let text = with_agent("    temperature: -0.1\n    max_tokens: 4294967296\n    max_iterations: 0\n");
    assert_eq!(
        errs(&text),
        [
            "a.yaml:9 spec.agent.temperature: must be between 0 and 2",
            "a.yaml:10 spec.agent.max_tokens: must be at most 4294967295",
            "a.yaml:11 spec.agent.max_iterations: must be between 1 and 100",
        ]
    );
    let text = with_agent("    temperature: 0\n    max_tokens: 1\n    max_iterations: 100\n");
    let a = &ok(&text).agents[0].agents[0];
    assert_eq!((a.temperature, a.max_tokens, a.max_iterations), (Some(0.0), Some(1), 100));
    let text = with_agent("    temperature: 2\n    max_iterations: 1\n");
    let a = &ok(&text).agents[0].agents[0];
    assert_eq!((a.temperature, a.max_iterations), (Some(2.0), 1));
    assert_eq!(
        errs(&with_agent("    model: ''\n").replace("    model: gpt-4o-mini\n", "")),
        ["a.yaml:8 spec.agent.model: must not be empty"]
    );
}

#[test]
fn timeouts() {
    for (t, msg) in [
        ("0", "must be a number of seconds greater than 0"),
        ("-1", "must be a number of seconds greater than 0"),
        (".nan", "must be a number of seconds greater than 0"),
        ("901", "must be at most 900 seconds (the Lambda time limit)"),
        (".inf", "must be at most 900 seconds (the Lambda time limit)"),
        ("soon", "expected a number, found a string"),
    ] {
        assert_eq!(
            errs(&with_server(&format!("        timeout: {t}\n"))),
            [format!("a.yaml:12 spec.agent.mcp_servers[0].timeout: {msg}")],
            "{t}"
        );
    }
    let a = ok(&with_server("        timeout: 900\n"));
    assert_eq!(a.agents[0].agents[0].mcp_servers[0].timeout, Duration::from_secs(900));
}

#[test]
fn only_chat_kind_and_known_api_versions() {
    let text = with_agent("").replace("kind: Chat", "kind: Sequential");
    assert_eq!(errs(&text), ["a.yaml:2 kind: unsupported kind `Sequential`: expected Chat"]);
    let text = with_agent("").replace("tealagents/v1alpha1", "tealagents/v2");
    assert_eq!(
        errs(&text),
        ["a.yaml:1 apiVersion: unsupported apiVersion `tealagents/v2`: expected \
                 tealagents/v1alpha1, skagents/v1 or skagents/v2alpha1"]
    );
}

#[test]
fn stdio_sse_and_websocket_servers_are_refused() {
    let stdio = format!("a.yaml:11 spec.agent.mcp_servers[0].command: {STDIO_REFUSED}");
    let text =
        with_agent("    mcp_servers:\n      - name: fs\n        command: npx\n        args: [-y, server]\n");
    assert_eq!(errs(&text), [stdio.as_str()]);
    // No url is demanded from a refused stdio server, and a given one is not a second error.
    let text =
        with_agent("    mcp_servers:\n      - name: fs\n        transport: stdio\n        command: npx\n");
    assert_eq!(errs(&text), [stdio.replace("command", "transport")]);
    for t in ["sse", "websocket"] {
        assert_eq!(
            errs(&with_server(&format!("        transport: {t}\n"))),
            [format!(
                "a.yaml:12 spec.agent.mcp_servers[0].transport: transport `{t}` is not \
                     supported: only streamable HTTP MCP servers are (transport: http)"
            )]
        );
    }
    assert_eq!(
        errs(&with_server("        transport: grpc\n")),
        ["a.yaml:12 spec.agent.mcp_servers[0].transport: unknown transport `grpc`: \
                 expected http, streamable_http or streamable-http"]
    );
    for t in ["http", "streamable_http", "streamable-http"] {
        let p = ok(&with_server(&format!("        transport: {t}\n")));
        assert_eq!(p.agents[0].agents[0].mcp_servers[0].transport, McpTransport::StreamableHttp);
    }
}

#[test]
fn url_variables() {
    use crate::config::parse_documents_with_vars;
    let text = with_server("").replace("http://127.0.0.1:8931/mcp", "${FS_URL}/mcp");
    let vars = HashMap::from([("FS_URL".to_owned(), "http://10.0.0.5:8080".to_owned())]);
    let p = parse_documents_with_vars("a.yaml", &text, &vars).unwrap();
    assert_eq!(p.agents[0].agents[0].mcp_servers[0].url.as_str(), "http://10.0.0.5:8080/mcp");
    assert_eq!(errs(&text), ["a.yaml:11 spec.agent.mcp_servers[0].url: variable `FS_URL` is not set"]);
}

#[test]
fn urls_must_be_absolute_http() {
    let text = |u: &str| with_server("").replace("http://127.0.0.1:8931/mcp", u);
    assert_eq!(errs(&text("/mcp")), ["a.yaml:11 spec.agent.mcp_servers[0].url: relative URL without a base"]);
    assert_eq!(
        errs(&text("ftp://host/mcp")),
        ["a.yaml:11 spec.agent.mcp_servers[0].url: unsupported URL scheme `ftp`: use http or https"]
    );
    assert_eq!(errs(&text("http://")), ["a.yaml:11 spec.agent.mcp_servers[0].url: empty host"]);
    assert_eq!(
        errs(&text("8931")),
        ["a.yaml:11 spec.agent.mcp_servers[0].url: expected a string, found a number"]
    );
}

#[test]
fn headers_are_checked_by_name_and_template() {
    let text = with_server(
        "        headers:
          Bad Name: x
          Authorization: Bearer ${secret:T
          X-Empty: ${}
          x-a: 1
          X-A: 2
          X-List: [1]
          X-Ok: $$5 ${OK}
",
    );
    let h = "a.yaml:{} spec.agent.mcp_servers[0].headers";
    let line = |n: usize, rest: &str| format!("{}{rest}", h.replace("{}", &n.to_string()));
    assert_eq!(
        errs(&text),
        [
            line(13, ".Bad Name: invalid header name `Bad Name`: use only HTTP token characters"),
            line(14, ".Authorization: unclosed `${` in `Bearer ${secret:T`"),
            line(15, ".X-Empty: empty secret name in `${}`"),
            line(17, ".X-A: duplicate header `X-A` (first at line 16; header names ignore case)"),
            line(18, ".X-List: expected a string, found a sequence"),
        ]
    );
}

#[test]
fn invalid_globs_name_their_index() {
    let text = with_server(
        "        tools:\n          allow: [\"read_*\", \"list_[a\"]\n          deny:\n            - \"{a,b\"\n",
    );
    assert_eq!(
        errs(&text),
        [
            "a.yaml:13 spec.agent.mcp_servers[0].tools.allow[1]: invalid glob `list_[a`: \
                 unclosed character class; missing ']'",
            "a.yaml:15 spec.agent.mcp_servers[0].tools.deny[0]: invalid glob `{a,b`: \
                 unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)",
        ]
    );
    let p = ok(&with_server("        tools:\n          allow: []\n"));
    assert!(!p.agents[0].agents[0].mcp_servers[0].tools.permits("read_file"));
}

#[test]
fn server_names_are_checked_and_unique() {
    let text = with_agent(
        "    mcp_servers:
      - name: fs
        url: http://a/mcp
      - name: fs_tools
        url: http://b/mcp
      - name: fs
        url: http://c/mcp
      - just a string
",
    );
    assert_eq!(
        errs(&text),
        [
            "a.yaml:12 spec.agent.mcp_servers[1].name: invalid MCP server name `fs_tools`: \
                 use only letters, digits and `-` (tools are exposed as `{server}_{tool}`)",
            "a.yaml:14 spec.agent.mcp_servers[2].name: duplicate MCP server name `fs` \
                 (first at line 10)",
            "a.yaml:16 spec.agent.mcp_servers[3]: expected a mapping, found a string",
        ]
    );
}

#[test]
fn a_realistic_teal_config_refuses_what_changes_behaviour_and_warns_about_the_rest() {
    let text = r#"apiVersion: skagents/v1
kind: Chat
description: >
  A chatbot
service_name: ChatBot
version: 0.1
input_type: BaseInput
output_type: BaseOutput
metadata:
  description: Demo
  skills:
    - id: chat
spec:
  agent:
    name: default
    role: Default Agent
    model: gpt-4o
    system_prompt: >
      You are a helpful assistant.
    plugins:
      - DemoPlugin
    remote_plugins: []
    mcp_servers:
      - name: github
        url: https://api.githubcopilot.com/mcp/
        headers:
          Authorization: Bearer ${GITHUB_TOKEN}
        auth_server: https://github.com/login/oauth
        scopes: [repo]
        tools:
          allow: ["get_*"]
          include_resources: true
  integration_mode: standalone
"#;
    let e = errs(text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("a.yaml:20 spec.agent.plugins: Python plugins cannot run here"), "{}", e[0]);
    assert!(e[0].contains("docs/migrating-from-teal.md"));
    assert_eq!(
        e[1],
        "a.yaml:27 spec.agent.mcp_servers[0].headers.Authorization: with OAuth (`auth_server`) the \
         Authorization header is the token's: remove it"
    );

    // Without them, it loads; what changes nothing at run time is a warning.
    let text = text
        .replace("    plugins:\n      - DemoPlugin\n", "")
        .replace("        auth_server: https://github.com/login/oauth\n        scopes: [repo]\n", "");
    let p = ok(&text);
    let a = &p.agents[0];
    assert_eq!(a.api_version, ApiVersion::SkAgentsV1);
    assert_eq!((a.name.as_str(), a.version.as_str()), ("ChatBot", "0.1"));
    assert_eq!(a.description.as_deref(), Some("A chatbot\n"));
    assert_eq!(a.input, crate::config::InputType::BaseInput);
    assert_eq!(a.agents[0].system_prompt, "You are a helpful assistant.\n");
    let gh = &a.agents[0].mcp_servers[0];
    assert_eq!(gh.headers["Authorization"].secret_names().collect::<Vec<_>>(), ["GITHUB_TOKEN"]);
    let warnings: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    let w = |line: usize, path: &str| format!("a.yaml:{line} {path}: {IGNORED}");
    assert_eq!(
        warnings,
        [
            "a.yaml:8 output_type: ignored: only Sequential agents produce structured output (as in Teal)"
                .to_owned(),
            "a.yaml:11 metadata.skills: ignored: A2A agent card metadata (A2A is not served)".to_owned(),
            w(16, "spec.agent.role"),
            w(28, "spec.agent.mcp_servers[0].tools.include_resources"),
            w(29, "spec.integration_mode"),
        ]
    );
}

#[test]
fn name_and_service_name_per_api_version() {
    let sk = with_agent("").replace("tealagents/v1alpha1", "skagents/v1");
    assert_eq!(ok(&sk).agents[0].name, "fs-assistant");
    let both = sk.replace("name: fs-assistant\n", "name: a\nservice_name: b\n");
    assert_eq!(errs(&both), ["a.yaml:4 service_name: give either name or service_name, not both"]);
    let neither = sk.replace("name: fs-assistant\n", "");
    assert_eq!(errs(&neither), ["a.yaml:1 service_name: missing required field"]);
    // In tealagents/v1alpha1, service_name is not a name: it is ignored, and name is missing.
    let teal = with_agent("").replace("name: fs-assistant", "service_name: fs");
    assert_eq!(errs(&teal), ["a.yaml:1 name: missing required field"]);
    let bad = with_agent("").replace("name: fs-assistant", "name: fs assistant");
    assert_eq!(
        errs(&bad),
        ["a.yaml:3 name: invalid name `fs assistant`: use only letters, digits, `.`, `_` and `-`"]
    );
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let text = r#"apiVersion: tealagents/v1alpha1
kind: Chat
name: a
version: 1
spec:
  agent:
    model: &model gpt-4o
    system_prompt: &prompt Be brief.
    mcp_servers:
      - &fs
        name: fs
        url: http://fs/mcp
        timeout: 5
        headers: &auth
          Authorization: Bearer ${secret:T}
      - <<: *fs
        name: fs-2
        headers: *auth
---
apiVersion: tealagents/v1alpha1
kind: Chat
name: b
version: 1
spec:
  agent:
    model: gpt-4o
    system_prompt: x
"#;
    let p = ok(text);
    let [a, b] = p.agents.as_slice() else { panic!() };
    assert_eq!(a.agents[0].model, "gpt-4o");
    let [fs, fs2] = a.agents[0].mcp_servers.as_slice() else { panic!() };
    assert_eq!(fs2.name, "fs-2");
    assert_eq!(fs2.url, fs.url);
    assert_eq!(fs2.timeout, Duration::from_secs(5));
    assert_eq!(fs2.headers, fs.headers);
    assert_eq!(b.name, "b");
    // An aliased node's problems are reported where it is written (the anchor's line),
    // under each path that uses it.
    let text = with_agent("    mcp_servers:\n      - &s {name: s, url: /x}\n      - *s\n");
    assert_eq!(
        errs(&text),
        [
            "a.yaml:10 spec.agent.mcp_servers[0].url: relative URL without a base",
            "a.yaml:10 spec.agent.mcp_servers[1].name: duplicate MCP server name `s` \
                 (first at line 10)",
            "a.yaml:10 spec.agent.mcp_servers[1].url: relative URL without a base",
        ]
    );
    let text = with_agent("    mcp_servers:\n      - <<: 3\n        name: s\n        url: http://s\n");
    assert_eq!(
        errs(&text),
        ["a.yaml:10 spec.agent.mcp_servers[0].<<: expected a mapping to merge, found a number"]
    );
}

#[test]
fn merge_chains_are_expanded_once() {
    let mut text = String::from("x0: &x0 {a: 1}\n");
    for i in 1..60 {
        text.push_str(&format!("x{i}: &x{i} {{<<: [*x{p}, *x{p}, *x{p}]}}\n", p = i - 1));
    }
    text.push_str("spec:\n  <<: *x59\n");
    // Each level merges the one before three times: refused at the line where the aliases
    // cross the bound, before anything reads the tree.
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("a.yaml:8: aliases expand to more than 10000 nodes"), "{e:?}");
    // A short chain is read with each mapping merged once.
    let text =
        "x0: &x0 {model: m}\nx1: &x1 {<<: [*x0, *x0]}\nspec:\n  agent:\n    <<: *x1\n    system_prompt: p\n";
    let e = errs(text);
    assert!(!e.iter().any(|e| e.contains("spec.agent.model")), "{e:?}");
}

#[test]
fn multiple_documents_report_errors_with_their_own_lines() {
    let text = format!("{}---\n{}", with_agent(""), with_agent("").replace("gpt-4o-mini", "{}"));
    assert_eq!(errs(&text), ["a.yaml:16 spec.agent.model: expected a string, found a mapping"]);
    let text = format!("{}---\n{}---\n", with_agent(""), with_agent("").replace("fs-assistant", "b"));
    let p = ok(&text);
    assert_eq!(p.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["fs-assistant", "b"]);
}

#[test]
fn duplicate_keys_are_errors() {
    let text = with_agent("    model: other\n");
    assert_eq!(errs(&text), ["a.yaml:9 spec.agent.model: duplicate key (first at line 7)"]);
}

#[test]
fn syntax_errors_and_empty_files() {
    let e = parse_documents("a.yaml", "name: a\nspec: [1, 2\nkind: Chat\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e.0[0].line, Some(3));
    assert_eq!(e.0[0].path, "");
    assert!(e.to_string().starts_with("a.yaml:3: "), "{e}");
    assert_eq!(errs("# nothing here\n"), ["a.yaml: no agent document found (the file is empty)"]);
    assert_eq!(errs("---\n...\n"), ["a.yaml: no agent document found (the file is empty)"]);
    // A syntax error after a complete document: that document's own errors come too.
    let text = "kind: Chat\n---\na: [\n";
    let e = errs(text);
    assert_eq!(e[0], "a.yaml:1 apiVersion: missing required field");
    assert!(e.last().unwrap().starts_with("a.yaml:4: "), "{e:?}");
}

#[test]
fn no_panics_on_odd_input() {
    for text in [
        "",
        "\t",
        ":",
        "- - -",
        "{",
        "}",
        "&a",
        "*a",
        "!!int x",
        "? [a]\n: b",
        "%YAML 1.2\n---\n",
        "apiVersion: !!binary aGk=\n",
        "spec: {agent: {mcp_servers: [{tools: {allow: [[]]}}]}}",
        "spec: {agent: {mcp_servers: [{headers: {[a]: b}}]}}",
        "\u{feff}a: 1",
        "a: \"\\xZZ\"",
        "version: 99999999999999999999999",
        "spec: {agent: {max_tokens: -99999999999999999999}}",
    ] {
        let _ = parse_documents("a.yaml", text);
    }
}

#[test]
fn teal_oauth_fields_are_read_and_half_of_them_is_an_error() {
    let server = |extra: &str| {
        format!(
            "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: t\nversion: 1\nspec:\n  agent:\n    model: m\n    \
             system_prompt: s\n    mcp_servers:\n      - name: gh\n        url: https://mcp.example.com/mcp\n{extra}"
        )
    };
    let teal = server(
        "        auth_server: https://auth.example.com\n        scopes: [repo, \"read:user\"]\n        \
         oauth_client_id: teal-agents\n        oauth_client_secret: ${secret:GH_CLIENT_SECRET}\n        \
         canonical_uri: https://mcp.example.com\n        enable_dynamic_registration: true\n",
    );
    let p = ok(&teal);
    let oauth = p.agents[0].agents[0].mcp_servers[0].oauth.clone().expect("oauth");
    assert_eq!(oauth.auth_server.as_str(), "https://auth.example.com/");
    assert_eq!(oauth.scopes, ["repo", "read:user"]);
    assert_eq!(oauth.grant, crate::config::OAuthGrant::AuthorizationCode, "Teal's per-user flow by default");
    assert_eq!(oauth.client_id.as_deref(), Some("teal-agents"));
    assert_eq!(oauth.client_secret.expect("secret").secret_names().collect::<Vec<_>>(), ["GH_CLIENT_SECRET"]);
    assert_eq!(oauth.resource.map(String::from).as_deref(), Some("https://mcp.example.com/"));

    let service = server(
        "        auth_server: https://auth.example.com\n        scopes: tools.read\n        \
         oauth_grant: client_credentials\n        oauth_client_secret: ${secret:S}\n",
    );
    let oauth = ok(&service).agents[0].agents[0].mcp_servers[0].oauth.clone().expect("oauth");
    assert_eq!(oauth.grant, crate::config::OAuthGrant::ClientCredentials);
    assert_eq!(oauth.scopes, ["tools.read"]);

    let cases = [
        ("        auth_server: https://auth.example.com\n", "auth_server: `auth_server` needs `scopes`"),
        ("        scopes: [repo]\n", "scopes: `scopes` needs `auth_server`"),
        ("        oauth_client_id: x\n", "oauth_client_id: only used with OAuth"),
        (
            "        auth_server: https://a.example.com\n        scopes: [x]\n        oauth_grant: implicit\n",
            "oauth_grant: unknown oauth_grant `implicit`",
        ),
        (
            "        auth_server: https://a.example.com\n        scopes: [x]\n        oauth_grant: client_credentials\n",
            "auth_server: oauth_grant: client_credentials needs `oauth_client_secret`",
        ),
        (
            "        auth_server: ftp://a.example.com\n        scopes: [x]\n",
            "auth_server: unsupported URL scheme `ftp`",
        ),
    ];
    for (extra, want) in cases {
        let e = errs(&server(extra));
        assert!(e.iter().any(|m| m.contains(want)), "{extra}: {e:?}");
    }
}

#[test]
fn an_agent_may_name_its_own_provider_and_key_secret() {
    use crate::llm::Endpoint;
    let cases = [
        (
            "    provider:\n      type: openai\n      api_key_secret: OPENAI_KEY\n",
            Endpoint::OpenAi {
                base_url: "https://api.openai.com/v1".parse().unwrap(),
                api_key_secret: Some("OPENAI_KEY".into()),
            },
        ),
        (
            "    provider:\n      type: openai-compatible\n      base_url: http://localhost:11434/v1\n",
            Endpoint::OpenAi { base_url: "http://localhost:11434/v1".parse().unwrap(), api_key_secret: None },
        ),
        (
            "    provider:\n      type: azure-openai\n      base_url: https://r.openai.azure.com\n      api_version: 2024-10-21\n      api_key_secret: prod/azure#key\n",
            Endpoint::AzureOpenAi {
                base_url: "https://r.openai.azure.com".parse().unwrap(),
                api_version: "2024-10-21".into(),
                api_key_secret: Some("prod/azure#key".into()),
            },
        ),
        (
            "    provider:\n      type: bedrock\n      region: us-west-2\n",
            Endpoint::Bedrock { region: Some("us-west-2".into()) },
        ),
    ];
    for (yaml, want) in cases {
        let p = ok(&with_agent(yaml));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.agents[0].agents[0].provider, Some(want), "{yaml}");
    }
    assert_eq!(ok(&with_agent("")).agents[0].agents[0].provider, None);
}

#[test]
fn a_provider_field_that_would_be_ignored_is_an_error_naming_it() {
    let e = errs(&with_agent("    provider:\n      type: openai\n      region: us-east-1\n"));
    assert_eq!(
        e,
        [
            "a.yaml:11 spec.agent.provider.region: provider type `openai` has no field `region` (it takes type, base_url, api_key_secret)"
        ]
    );
    let e = errs(&with_agent("    provider:\n      type: bedrock\n      api_key: sk-oops\n"));
    assert!(
        e[0].ends_with("spec.agent.provider.api_key: provider type `bedrock` has no field `api_key` (it takes type, region (credentials are the function's IAM role))"),
        "{e:?}"
    );
    let e = errs(&with_agent("    provider:\n      type: anthropic\n"));
    assert!(
        e[0].ends_with(
            "unknown provider type `anthropic`: expected openai, azure-openai, openai-compatible or bedrock"
        ),
        "{e:?}"
    );
    let e = errs(&with_agent(
        "    provider:\n      type: azure-openai\n      base_url: ftp://x\n      api_version: v\n",
    ));
    assert!(e[0].ends_with("spec.agent.provider.base_url: must be an absolute http(s) URL"), "{e:?}");
    let e = errs(&with_agent("    provider:\n      type: openai-compatible\n"));
    assert!(e[0].contains("spec.agent.provider.base_url"), "{e:?}");
}

#[test]
fn a_cost_budget_is_refused_with_the_budgets_that_are_enforced() {
    let e = errs(&with_agent("    max_cost_usd: 0.5\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("a.yaml:9 spec.agent.max_cost_usd: a cost budget is not enforced yet"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("max_tokens_total"), "{}", e[0]);
    let p = ok(&with_agent("    max_tokens_total: 1000\n    max_tool_calls: 3\n"));
    assert_eq!(p.agents[0].agents[0].max_tokens_total, Some(1000));
}
