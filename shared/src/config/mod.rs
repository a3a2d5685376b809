//! Agent configuration: Teal Agents YAML in, validated [`AgentConfig`] out, with errors that
//! name the file, the line and the YAML path.
//!
//! Owns reading `tealagents/v1alpha1` and `skagents/v1` `kind: Chat` documents (one agent per
//! YAML document), refusing what a Lambda cannot run (stdio, SSE, WebSocket MCP servers),
//! reporting every error of a file at once, and warning about Teal fields we do not use. It
//! must not resolve secrets, connect to MCP servers or call models: header values stay
//! [`HeaderTemplate`]s until the agent runs.
//!
//! Layout: `tree` (YAML events to a positioned tree), `reader` (typed fields of that tree, with
//! positioned errors), `schema` (the Teal rules: tree to [`AgentConfig`]),
//! `template` (header value syntax), `load` (files and folders), `registry` (lookup),
//! `error` (the message format), `types` (the validated output).

use std::collections::HashMap;

mod error;
mod load;
mod registry;
pub mod s3;
mod source;
pub use source::AgentSource;
mod reader;
mod schema;
mod template;
mod tree;
mod types;

pub use error::{ConfigError, ConfigErrors, ConfigWarning};
pub use load::{load_path, load_path_with_vars};
pub use registry::Registry;
pub use schema::ParseEnv;
pub(crate) use template::is_header_name;
pub use tree::{TreeError, yaml_to_json};
pub use types::*;

/// What a file (or folder) held: its agents, the fields that were ignored, and the policy files
/// beside them (`policies/*.cedar`, not yet compiled: [`crate::governance::Policies::compile`]).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub agents: Vec<AgentConfig>,
    pub warnings: Vec<ConfigWarning>,
    pub policy_files: Vec<crate::governance::PolicyFile>,
}

/// Parses every YAML document of `text` as one agent. `source` names the text in messages
/// (a path or `s3://…` key). All errors of the text are returned, in line order.
/// A `${NAME}` in a server `url` is an error here ("variable `NAME` is not set"): see
/// [`parse_documents_with_vars`].
pub fn parse_documents(source: &str, text: &str) -> Result<Parsed, ConfigErrors> {
    parse_documents_with_vars(source, text, &HashMap::new())
}

/// [`parse_documents`], with `${NAME}` in MCP server `url`s replaced from `vars` (`$$` is a
/// literal `$`). Only `url` is expanded: header values keep their `${secret:…}` references.
pub fn parse_documents_with_vars(
    source: &str,
    text: &str,
    vars: &HashMap<String, String>,
) -> Result<Parsed, ConfigErrors> {
    parse_documents_in(source, text, &ParseEnv { vars, sidecar: &schema::no_sidecar })
}

/// [`parse_documents_with_vars`], with files beside the config reachable through `env`
/// (JSON Schemas of custom input and output types).
pub fn parse_documents_in(source: &str, text: &str, env: &ParseEnv<'_>) -> Result<Parsed, ConfigErrors> {
    let (docs, syntax_error) = tree::parse(text);
    let mut cx = reader::Ctx::new(source);
    let mut agents = Vec::new();
    let mut documents = 0;
    // An empty document (`---` with nothing after it) holds no agent and is skipped.
    for doc in docs.iter().filter(|d| !d.is_null()) {
        documents += 1;
        if let Some(agent) = schema::agent_config(&mut cx, doc, env) {
            agents.push(agent);
        }
    }
    if let Some(e) = syntax_error {
        cx.error(Some(e.line), "", e.message);
    } else if documents == 0 {
        cx.error(None, "", "no agent document found (the file is empty)");
    }
    let reader::Ctx { mut errors, mut warnings, .. } = cx;
    // Line order (stable: same-line messages keep the order they were found in).
    errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
    warnings.sort_by_key(|w| w.line.unwrap_or(usize::MAX));
    if errors.is_empty() {
        Ok(Parsed { agents, warnings, policy_files: Vec::new() })
    } else {
        Err(ConfigErrors(errors))
    }
}
