#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::config::load_path_with_vars;

fn file(source: &str, text: &str) -> PolicyFile {
    PolicyFile { source: source.to_owned(), text: text.to_owned() }
}

/// The policies shipped in `examples/governance/policies`, loaded as `teal serve` loads them.
fn examples() -> Policies {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/governance");
    let vars = [("TEAL_BUNDLED_FS_URL".to_owned(), "http://127.0.0.1/mcp".to_owned())].into();
    let parsed = load_path_with_vars(&dir, &vars).expect("the example loads");
    assert_eq!(parsed.policy_files.len(), 5, "{:?}", parsed.policy_files);
    Policies::compile(&parsed.policy_files).expect("the example policies validate")
}

fn call(p: &Policies, caller: &str, server: &str, tool: &str, args: Value) -> Decision {
    p.decide(&ToolRequest {
        caller,
        agent: "fs-writer",
        version: "0.1",
        server,
        tool,
        arguments: Some(&args),
    })
}

fn list(p: &Policies, caller: &str, server: &str, tool: &str) -> Decision {
    p.decide(&ToolRequest { caller, agent: "fs-writer", version: "0.1", server, tool, arguments: None })
}

fn forbidden(id: &str) -> Decision {
    Decision::Deny(Denied::Forbidden(id.to_owned()))
}

#[test]
fn the_github_allowlist_admits_only_its_repositories() {
    let p = examples();
    let allow = "github-repository-allowlist";
    let issue = |owner: &str, repo: &str| json!({"owner": owner, "repo": repo, "title": "t"});
    assert_eq!(call(&p, "ci", "github", "create_issue", issue("acme", "website")), Decision::Allow);
    assert_eq!(call(&p, "ci", "github", "create_issue", issue("acme", "docs")), Decision::Allow);
    assert_eq!(call(&p, "ci", "github", "create_issue", issue("acme", "payroll")), forbidden(allow));
    assert_eq!(call(&p, "ci", "github", "create_issue", issue("evil", "website")), forbidden(allow));
    assert_eq!(call(&p, "ci", "github", "list_repos", json!({"owner": "acme"})), forbidden(allow));
    // Calls that name no repository, and other servers' `owner` arguments, are not its business.
    assert_eq!(call(&p, "ci", "github", "get_me", json!({})), Decision::Allow);
    assert_eq!(call(&p, "ci", "gitlab", "create_issue", issue("evil", "x")), Decision::Allow);
    // An argument of another type than the schema says is not equal to any allowed one.
    assert_eq!(
        call(&p, "ci", "github", "create_issue", json!({"owner": 7, "repo": "website"})),
        forbidden(allow)
    );
}

#[test]
fn a_forbid_that_cannot_be_evaluated_denies() {
    let schema = file("p/policies/s.cedarschema", "type Arguments = { count?: Long };");
    let text = r#"permit(principal, action, resource);
@id("at-most-ten")
forbid(principal, action, resource) when { context.arguments has count && context.arguments.count > 10 };
@id("never-fails")
permit(principal, action, resource) when { context.arguments has count && context.arguments.count > 0 };
"#;
    let p = Policies::compile(&[schema, file("p/policies/p.cedar", text)]).unwrap();
    assert_eq!(call(&p, "ci", "fs", "t", json!({"count": 3})), Decision::Allow);
    assert_eq!(call(&p, "ci", "fs", "t", json!({"count": 11})), forbidden("at-most-ten"));
    // A string where a Long is declared: `>` fails; a failing forbid denies (fail closed).
    let d = call(&p, "ci", "fs", "t", json!({"count": "11"}));
    assert_eq!(d, Decision::Deny(Denied::Unevaluable("at-most-ten".to_owned())));
    let Decision::Deny(denied) = d else { unreachable!() };
    assert_eq!(
        denied.to_string(),
        "tool call denied by policy `at-most-ten`: it could not be evaluated on these arguments"
    );
}

#[test]
fn policies_scoped_to_a_caller_or_a_tool_apply_to_it_only() {
    let mut text = String::from("permit(principal, action, resource);\n");
    for i in 0..50 {
        text.push_str(&format!(
            "@id(\"c{i}\")\nforbid(principal == Caller::\"user{i}\", action, resource == Tool::\"fs/write_file\");\n"
        ));
        text.push_str(&format!("@id(\"t{i}\")\nforbid(principal, action, resource == Tool::\"fs/tool{i}\") when {{ context.agent == \"fs-writer\" }};\n"));
    }
    let p = Policies::compile(&[file("p/policies/many.cedar", &text)]).unwrap();
    assert_eq!(p.len(), 101);
    assert_eq!(call(&p, "user7", "fs", "write_file", json!({})), forbidden("c7"));
    assert_eq!(call(&p, "user7", "fs", "read_file", json!({})), Decision::Allow);
    assert_eq!(call(&p, "someone", "fs", "write_file", json!({})), Decision::Allow);
    assert_eq!(call(&p, "user7", "fs", "tool9", json!({})), forbidden("t9"));
    assert_eq!(list(&p, "user3", "fs", "tool3"), forbidden("t3"));
    // Asked again (from the slice cache), the same answers.
    assert_eq!(call(&p, "user7", "fs", "write_file", json!({})), forbidden("c7"));
    assert_eq!(call(&p, "someone", "fs", "tool9", json!({})), forbidden("t9"));
}

#[test]
fn filesystem_writes_stay_under_drafts() {
    let p = examples();
    let id = "fs-writes-under-drafts";
    let write = |path: &str| json!({"path": path, "content": "x"});
    assert_eq!(call(&p, "ci", "fs", "write_file", write("drafts/note.md")), Decision::Allow);
    assert_eq!(call(&p, "ci", "fs", "write_file", write("notes/note.md")), forbidden(id));
    assert_eq!(call(&p, "ci", "fs", "write_file", write("drafts/../secret.txt")), forbidden(id));
    assert_eq!(call(&p, "ci", "fs", "write_file", json!({"content": "no path"})), forbidden(id));
    let mv = |s: &str, d: &str| json!({"source": s, "destination": d});
    assert_eq!(call(&p, "ci", "fs", "move_file", mv("drafts/a", "drafts/b")), Decision::Allow);
    let moves = "fs-moves-within-drafts";
    assert_eq!(call(&p, "ci", "fs", "move_file", mv("drafts/a", "published/b")), forbidden(moves));
    assert_eq!(call(&p, "ci", "fs", "move_file", mv("drafts/../a", "drafts/b")), forbidden(moves));
    // Reads anywhere.
    assert_eq!(call(&p, "ci", "fs", "read_text_file", json!({"path": "notes/x"})), Decision::Allow);
    // Unparsable or non-object arguments are an empty record: no path, no write.
    assert_eq!(call(&p, "ci", "fs", "write_file", Value::Null), forbidden(id));
}

#[test]
fn one_caller_is_read_only() {
    let p = examples();
    let id = "auditor-is-read-only";
    let write = json!({"path": "drafts/a.md", "content": "x"});
    assert_eq!(call(&p, "auditor", "fs", "write_file", write.clone()), forbidden(id));
    assert_eq!(list(&p, "auditor", "fs", "write_file"), forbidden(id));
    assert_eq!(call(&p, "auditor", "fs", "read_text_file", json!({"path": "a"})), Decision::Allow);
    assert_eq!(list(&p, "auditor", "fs", "read_text_file"), Decision::Allow);
    assert_eq!(call(&p, "ci", "fs", "write_file", write), Decision::Allow);
    assert_eq!(list(&p, "ci", "fs", "write_file"), Decision::Allow);
}

#[test]
fn without_a_permit_everything_is_denied_and_without_policies_nothing() {
    let p = Policies::compile(&[file(
        "p/policies/only-forbid.cedar",
        "forbid(principal, action, resource) when { resource.tool == \"x\" };",
    )])
    .unwrap();
    assert_eq!(p.len(), 1);
    let d = call(&p, "ci", "fs", "read_text_file", json!({}));
    assert_eq!(d, Decision::Deny(Denied::NoPermit));
    let Decision::Deny(denied) = d else { unreachable!() };
    assert_eq!(denied.policy(), "default-deny");
    assert_eq!(denied.to_string(), "tool call denied: no policy permits it (`default-deny`)");
    // An unnamed policy is named by its file and line.
    let d = call(&p, "ci", "fs", "x", json!({}));
    assert_eq!(d, forbidden("only-forbid.cedar:1"));

    let none = Policies::compile(&[]).unwrap();
    assert!(none.is_empty());
    assert_eq!(call(&none, "ci", "fs", "anything", json!({})), Decision::Allow);
    // A schema without policies is no policy either.
    let schema_only = Policies::compile(&[file("p/policies/a.cedarschema", "type Arguments = {};")]).unwrap();
    assert!(schema_only.is_empty());
}

#[test]
fn a_syntax_error_is_named_by_file_and_line() {
    let text = "@id(\"ok\")\npermit(principal, action, resource);\n\nforbid(principal action, resource);\n";
    let e = Policies::compile(&[file("agents/policies/bad.cedar", text)]).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].source, "agents/policies/bad.cedar");
    assert_eq!(e.0[0].line, Some(4));
    assert!(e.to_string().starts_with("agents/policies/bad.cedar:4: unexpected token `action`"), "{e}");
}

#[test]
fn a_policy_that_does_not_fit_the_schema_is_named_by_file_and_line() {
    let text = "permit(principal, action, resource);\n\n@id(\"typo\")\nforbid(principal, action, resource)\n  when { context.arguments.ownr == \"x\" };\n";
    let schema = "type Arguments = { owner?: String };";
    let e =
        Policies::compile(&[file("a/policies/schema.cedarschema", schema), file("a/policies/p.cedar", text)])
            .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    let line = e.to_string();
    assert!(
        line.starts_with("a/policies/p.cedar:5: for policy `typo`, attribute `arguments.ownr`"),
        "{line}"
    );
    assert!(line.contains("ownr") && line.contains("did you mean `owner`?"), "{line}");

    // Reading an argument no schema declares fails too (the built-in `Arguments` is empty).
    let e = Policies::compile(&[file("a/policies/p.cedar", text)]).unwrap_err();
    assert!(e.to_string().contains("policy `typo`"), "{e}");

    // A broken schema file is named with its line.
    let e = Policies::compile(&[file("a/policies/s.cedarschema", "type Arguments = {\n owner: ;\n};")])
        .unwrap_err();
    assert!(e.to_string().starts_with("a/policies/s.cedarschema:2: schema: "), "{e}");
}

#[test]
fn ids_are_unique_across_files() {
    let p = "@id(\"same\")\npermit(principal, action, resource);\n";
    let e =
        Policies::compile(&[file("x/policies/a.cedar", p), file("x/policies/b.cedar", &format!("\n{p}"))])
            .unwrap_err();
    assert_eq!(e.to_string(), "x/policies/b.cedar:2: policy id `same` is also used at x/policies/a.cedar:1");
}

#[test]
fn only_files_in_a_policies_folder_count() {
    assert!(PolicyFile::is_policy_path("agents/policies/a.cedar"));
    assert!(PolicyFile::is_policy_path("policies/Schema.CEDARSCHEMA"));
    assert!(!PolicyFile::is_policy_path("agents/a.cedar"));
    assert!(!PolicyFile::is_policy_path("agents/policies/a.yaml"));
}
