//! The policies as one request's toolbox asks them: for this caller and this agent.

use std::sync::Arc;

use serde_json::Value;

use super::{Decision, Denied, Policies, ToolRequest};

/// The policies, the caller and the agent of one request.
pub struct Gate {
    policies: Policies,
    caller: Arc<str>,
    agent: Arc<str>,
    version: Arc<str>,
}

impl Gate {
    /// `None` without policies: the globs alone decide and nothing is evaluated.
    pub fn new(policies: &Policies, caller: &str, agent: &str, version: &str) -> Option<Self> {
        (!policies.is_empty()).then(|| Self {
            policies: policies.clone(),
            caller: caller.into(),
            agent: agent.into(),
            version: version.into(),
        })
    }

    fn request<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: Option<&'a Value>,
    ) -> ToolRequest<'a> {
        ToolRequest {
            caller: &self.caller,
            agent: &self.agent,
            version: &self.version,
            server,
            tool,
            arguments,
        }
    }

    /// Whether the caller may be offered `server`'s `tool` at all.
    pub fn may_list(&self, server: &str, tool: &str) -> bool {
        self.policies.decide(&self.request(server, tool, None)) == Decision::Allow
    }

    /// Whether the caller may call `server`'s `tool` (namespaced `name`) with `arguments` (the
    /// model's JSON text; unparsable text is an empty record). A denial is logged and counted
    /// (`teal_tool_calls_denied` by agent, tool and policy).
    pub fn authorize(&self, name: &str, server: &str, tool: &str, arguments: &str) -> Result<(), Denied> {
        let args = serde_json::from_str::<Value>(arguments).unwrap_or(Value::Null);
        match self.policies.decide(&self.request(server, tool, Some(&args))) {
            Decision::Allow => Ok(()),
            Decision::Deny(denied) => {
                let policy = denied.policy();
                tracing::warn!(agent = %self.agent, version = %self.version, caller = %self.caller, tool = %name, policy, "tool call denied by policy");
                crate::telemetry::metrics::tool_call_denied(&self.agent, name, policy);
                Err(denied)
            }
        }
    }
}
