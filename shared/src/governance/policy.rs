//! Cedar policy files in, one validated policy set out; one decision per tool listed or called.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex as StdMutex};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Request, ResourceConstraint,
    RestrictedExpression, Schema, SchemaFragment, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde_json::Value;

use crate::config::{ConfigError, ConfigErrors};

/// The schema every policy is validated against. `Arguments` (what `context.arguments` holds)
/// is declared by the operator in a `*.cedarschema` file beside the policies, with the argument
/// names and types the policies read (`type Arguments = { owner?: String, repo?: String };`);
/// without one it is an empty record, so a policy that reads an argument fails validation.
/// `list_tools` carries an empty `arguments` record (nothing is called yet), so one policy can
/// cover both actions.
pub const SCHEMA: &str = r#"entity Caller;
entity Tool = { server: String, tool: String };
action call_tool appliesTo {
  principal: Caller, resource: Tool,
  context: { agent: String, version: String, arguments: Arguments }
};
action list_tools appliesTo {
  principal: Caller, resource: Tool,
  context: { agent: String, version: String, arguments: Arguments }
};
"#;

/// The `Arguments` type when no schema file declares one.
const NO_ARGUMENTS: &str = "type Arguments = {};";

/// (caller, tool) policy sets kept; past this the cache starts again.
const MAX_SLICES: usize = 4096;

/// Arguments nested deeper than this are left out of the context.
const MAX_ARGUMENT_DEPTH: usize = 16;

/// The policy named when a call is denied because no `permit` matched it.
pub const NO_PERMIT: &str = "default-deny";

/// One file read from beside the agent configs: `*.cedar` (policies) or `*.cedarschema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// The path or `s3://…` key, for messages.
    pub source: String,
    pub text: String,
}

impl PolicyFile {
    /// Whether `path` (`/`-separated) names a policy or schema file in a `policies` folder:
    /// `…/policies/*.cedar` or `…/policies/*.cedarschema`.
    pub fn is_policy_path(path: &str) -> bool {
        let mut parts = path.rsplit('/');
        let file = parts.next().unwrap_or_default().to_ascii_lowercase();
        parts.next() == Some("policies") && (file.ends_with(".cedar") || file.ends_with(".cedarschema"))
    }

    fn is_schema(&self) -> bool {
        self.source.to_ascii_lowercase().ends_with(".cedarschema")
    }
}

/// The validated policies of a registry. Empty (the default): nothing is decided here.
#[derive(Clone, Default)]
pub struct Policies(Option<Arc<Compiled>>);

struct Compiled {
    /// Every policy.
    set: PolicySet,
    /// The policies whose scope names no one caller or tool: asked about every request.
    shared: Arc<PolicySet>,
    /// Policies scoped to one caller (`principal == Caller::"id"`), by id…
    by_caller: HashMap<String, Vec<Policy>>,
    /// … and to one tool (`resource == Tool::"server/tool"`): a request is asked only the
    /// policies that can apply to it, so a thousand per-caller policies cost what a few do.
    by_tool: HashMap<String, Vec<Policy>>,
    /// `shared` plus the scoped policies of a (caller, tool), built on first use.
    slices: StdMutex<HashMap<(String, String), Arc<PolicySet>>>,
    authorizer: Authorizer,
    caller: EntityTypeName,
    tool: EntityTypeName,
    call: EntityUid,
    list: EntityUid,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Policies({})", self.len())
    }
}

/// One question: may `caller` list (`arguments: None`) or call this tool?
#[derive(Debug, Clone, Copy)]
pub struct ToolRequest<'a> {
    pub caller: &'a str,
    pub agent: &'a str,
    pub version: &'a str,
    /// The MCP server or remote plugin.
    pub server: &'a str,
    /// The tool's own name on that server.
    pub tool: &'a str,
    /// The call's parsed arguments; `None` asks about listing the tool.
    pub arguments: Option<&'a Value>,
}

/// What the policies say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Denied),
}

/// A denial and the policy that made it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A `forbid` matched.
    #[error("tool call denied by policy `{0}`")]
    Forbidden(String),
    /// No `permit` matched.
    #[error("tool call denied: no policy permits it (`{NO_PERMIT}`)")]
    NoPermit,
    /// A `forbid` could not be evaluated on these arguments (denied: fail closed).
    #[error("tool call denied by policy `{0}`: it could not be evaluated on these arguments")]
    Unevaluable(String),
}

impl Denied {
    /// The policy id, for logs and the `Policy` metric dimension.
    pub fn policy(&self) -> &str {
        match self {
            Denied::Forbidden(id) | Denied::Unevaluable(id) => id,
            Denied::NoPermit => NO_PERMIT,
        }
    }
}

impl Policies {
    /// Parses and validates `files` (policies and schema fragments). Every error of every file is
    /// returned with its file and line. No policy file: the empty set.
    pub fn compile(files: &[PolicyFile]) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let schema = schema(files.iter().filter(|f| f.is_schema()), &mut errors);
        let mut set = PolicySet::new();
        // Where each policy starts: its file and line, for validation messages.
        let mut origin: HashMap<PolicyId, (usize, usize)> = HashMap::new();
        let mut any = false;
        for (i, _) in files.iter().enumerate().filter(|(_, f)| !f.is_schema()) {
            any = true;
            add_file(files, i, &mut set, &mut origin, &mut errors);
        }
        if !any {
            return if errors.is_empty() { Ok(Self::default()) } else { Err(ConfigErrors(errors)) };
        }
        if let Some(schema) = &schema {
            let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            for e in result.validation_errors() {
                let (file, start) = origin.get(e.policy_id()).copied().unwrap_or((0, 1));
                let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
                let line = offset.map_or(start, |o| line_of(&files[file].text, o));
                let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
                let error = located(&files[file].source, line, format!("{e}{help}"));
                // The same mistake is found once per action: say it once.
                let same = |o: &ConfigError| o.source == error.source && o.line == error.line;
                if !errors.iter().any(same) {
                    errors.push(error);
                }
            }
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
            return Err(ConfigErrors(errors));
        }
        let caller = type_name("Caller");
        let tool = type_name("Tool");
        let (mut by_caller, mut by_tool) =
            (HashMap::<String, Vec<Policy>>::new(), HashMap::<String, Vec<Policy>>::new());
        let mut shared = PolicySet::new();
        for p in set.policies() {
            match (p.principal_constraint(), p.resource_constraint()) {
                (PrincipalConstraint::Eq(uid), _) if uid.type_name() == &caller => {
                    by_caller.entry(uid.id().unescaped().to_owned()).or_default().push(p.clone());
                }
                (_, ResourceConstraint::Eq(uid)) if uid.type_name() == &tool => {
                    by_tool.entry(uid.id().unescaped().to_owned()).or_default().push(p.clone());
                }
                // Ids are unique in `set`, so adding to a subset cannot fail.
                _ => drop(shared.add(p.clone())),
            }
        }
        Ok(Self(Some(Arc::new(Compiled {
            set,
            shared: Arc::new(shared),
            by_caller,
            by_tool,
            slices: StdMutex::new(HashMap::new()),
            authorizer: Authorizer::new(),
            caller,
            tool,
            call: action("call_tool"),
            list: action("list_tools"),
        }))))
    }

    /// Whether there are no policies (the globs alone decide).
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.set.policies().count())
    }

    /// Whether `req` is allowed. Without policies, always.
    pub fn decide(&self, req: &ToolRequest<'_>) -> Decision {
        let Some(c) = &self.0 else { return Decision::Allow };
        let tool_id = format!("{}/{}", req.server, req.tool);
        let policies = c.slice(req.caller, &tool_id);
        let resource = EntityUid::from_type_name_and_id(c.tool.clone(), EntityId::new(tool_id));
        let mut context = vec![
            ("agent".to_owned(), RestrictedExpression::new_string(req.agent.to_owned())),
            ("version".to_owned(), RestrictedExpression::new_string(req.version.to_owned())),
        ];
        let args = match req.arguments {
            Some(args @ Value::Object(_)) => expression(args, 0),
            _ => None,
        };
        let Ok(args) = args.map_or_else(|| RestrictedExpression::new_record([]), Ok) else {
            return Decision::Deny(Denied::Unevaluable("arguments".to_owned()));
        };
        context.push(("arguments".to_owned(), args));
        let action = if req.arguments.is_some() { &c.call } else { &c.list };
        let Ok(context) = Context::from_pairs(context) else {
            return Decision::Deny(Denied::Unevaluable("context".to_owned()));
        };
        let attrs = HashMap::from([
            ("server".to_owned(), RestrictedExpression::new_string(req.server.to_owned())),
            ("tool".to_owned(), RestrictedExpression::new_string(req.tool.to_owned())),
        ]);
        let entities = Entity::new(resource.clone(), attrs, Default::default())
            .ok()
            .and_then(|e| Entities::from_entities([e], None).ok());
        let principal = EntityUid::from_type_name_and_id(c.caller.clone(), EntityId::new(req.caller));
        let (Some(entities), Ok(request)) =
            (entities, Request::new(principal, action.clone(), resource, context, None))
        else {
            return Decision::Deny(Denied::Unevaluable("request".to_owned()));
        };
        let response = c.authorizer.is_authorized(&request, &policies, &entities);
        // A forbid that failed might have matched: deny (a failed permit just does not permit).
        for e in response.diagnostics().errors() {
            let AuthorizationError::PolicyEvaluationError(e) = e;
            let id = e.policy_id();
            if c.set.policy(id).is_some_and(|p| p.effect() == Effect::Forbid) {
                return Decision::Deny(Denied::Unevaluable(id.to_string()));
            }
        }
        match response.decision() {
            CedarDecision::Allow => Decision::Allow,
            CedarDecision::Deny => match response.diagnostics().reason().next() {
                Some(id) => Decision::Deny(Denied::Forbidden(id.to_string())),
                None => Decision::Deny(Denied::NoPermit),
            },
        }
    }
}

impl Compiled {
    /// The policies that can apply to `caller` using `tool`.
    fn slice(&self, caller: &str, tool: &str) -> Arc<PolicySet> {
        let (mine, its) = (self.by_caller.get(caller), self.by_tool.get(tool));
        if mine.is_none() && its.is_none() {
            return self.shared.clone();
        }
        let key = (caller.to_owned(), tool.to_owned());
        let mut slices = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slices.get(&key) {
            return s.clone();
        }
        let mut set = (*self.shared).clone();
        for p in mine.into_iter().chain(its).flatten() {
            drop(set.add(p.clone()));
        }
        if slices.len() >= MAX_SLICES {
            slices.clear();
        }
        let set = Arc::new(set);
        slices.insert(key, set.clone());
        set
    }
}

/// The built-in schema with the operator's fragments; `None` (and errors) when one is invalid.
fn schema<'a>(files: impl Iterator<Item = &'a PolicyFile>, errors: &mut Vec<ConfigError>) -> Option<Schema> {
    let mut fragments = Vec::new();
    let mut sources = Vec::new();
    let mut declares_arguments = false;
    let before = errors.len();
    for file in files {
        match SchemaFragment::from_cedarschema_str(&file.text) {
            Ok((fragment, _)) => {
                declares_arguments |= fragment.clone().to_json_value().is_ok_and(|v| {
                    v.get("").and_then(|ns| ns.get("commonTypes")?.get("Arguments")).is_some()
                });
                fragments.push(fragment);
                sources.push(file.source.as_str());
            }
            Err(e) => {
                let line =
                    e.labels().and_then(|mut l| l.next()).map_or(1, |l| line_of(&file.text, l.offset()));
                errors.push(located(&file.source, line, format!("schema: {e}")));
            }
        }
    }
    let built_in = [SCHEMA, if declares_arguments { "" } else { NO_ARGUMENTS }].concat();
    match SchemaFragment::from_cedarschema_str(&built_in) {
        Ok((f, _)) => fragments.push(f),
        Err(e) => {
            tracing::error!(error = %e, "the built-in policy schema does not parse");
            return None;
        }
    }
    if errors.len() > before {
        return None;
    }
    match Schema::from_schema_fragments(fragments) {
        Ok(s) => Some(s),
        Err(e) => {
            let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
            let source = if sources.is_empty() { "policy schema".to_owned() } else { sources.join(", ") };
            errors.push(ConfigError {
                source,
                line: None,
                path: String::new(),
                message: format!("schema: {e}{help}"),
            });
            None
        }
    }
}

/// Parses one policy file into `set`: each policy under its `@id("…")`, or `{file name}:{line}`.
fn add_file(
    files: &[PolicyFile],
    index: usize,
    set: &mut PolicySet,
    origin: &mut HashMap<PolicyId, (usize, usize)>,
    errors: &mut Vec<ConfigError>,
) {
    let file = &files[index];
    let parsed = match PolicySet::from_str(&file.text) {
        Ok(p) => p,
        Err(e) => {
            for d in e.iter() {
                let line =
                    d.labels().and_then(|mut l| l.next()).map_or(1, |l| line_of(&file.text, l.offset()));
                let expected = d
                    .labels()
                    .and_then(|mut l| l.next())
                    .and_then(|l| l.label().map(|s| format!(" ({s})")))
                    .unwrap_or_default();
                errors.push(located(&file.source, line, format!("{d}{expected}")));
            }
            return;
        }
    };
    if parsed.templates().next().is_some() {
        errors.push(located(
            &file.source,
            1,
            "policy templates (`?principal`, `?resource`) are not supported".into(),
        ));
        return;
    }
    let name = file.source.rsplit('/').next().unwrap_or(&file.source);
    // The parser numbers policies `policy0`, `policy1`, … in file order.
    let mut policies: Vec<_> = parsed.policies().collect();
    policies.sort_by_key(|p| p.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(0));
    let mut cursor = 0;
    for p in policies {
        let text = p.to_string();
        let start = match file.text[cursor..].find(text.as_str()) {
            Some(at) => {
                cursor += at + text.len();
                cursor - text.len()
            }
            None => cursor,
        };
        let line = line_of(&file.text, start);
        let id = p.annotation("id").map_or_else(|| format!("{name}:{line}"), str::to_owned);
        let id = PolicyId::new(id);
        if let Some((other, other_line)) = origin.get(&id) {
            let at = format!("{}:{other_line}", files[*other].source);
            errors.push(located(&file.source, line, format!("policy id `{id}` is also used at {at}")));
            continue;
        }
        if let Err(e) = set.add(p.new_id(id.clone())) {
            errors.push(located(&file.source, line, format!("policy `{id}`: {e}")));
            continue;
        }
        origin.insert(id, (index, line));
    }
}

fn located(source: &str, line: usize, message: String) -> ConfigError {
    ConfigError { source: source.to_owned(), line: Some(line), path: String::new(), message }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

fn type_name(name: &str) -> EntityTypeName {
    #[allow(clippy::expect_used)]
    EntityTypeName::from_str(name).expect("a constant type name")
}

fn action(name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name("Action"), EntityId::new(name))
}

/// A JSON value as a Cedar value: strings, booleans, integers, sets and records. Nulls,
/// fractional numbers and values nested too deep are left out (`has` is false for them).
fn expression(value: &Value, depth: usize) -> Option<RestrictedExpression> {
    match value {
        Value::String(s) => Some(RestrictedExpression::new_string(s.clone())),
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => n.as_i64().map(RestrictedExpression::new_long),
        Value::Array(items) if depth < MAX_ARGUMENT_DEPTH => {
            Some(RestrictedExpression::new_set(items.iter().filter_map(|v| expression(v, depth + 1))))
        }
        Value::Object(fields) if depth < MAX_ARGUMENT_DEPTH => RestrictedExpression::new_record(
            fields.iter().filter_map(|(k, v)| expression(v, depth + 1).map(|e| (k.clone(), e))),
        )
        .ok(),
        _ => None,
    }
}
