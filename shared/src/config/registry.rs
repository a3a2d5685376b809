//! The set of loaded agents, looked up by name and version.
//!
//! Owns uniqueness of `name/version` across every file and O(1) lookup. It must not load or
//! validate configs (that happened before), nor mutate them: agents are shared as `Arc`s.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::error::{ConfigError, ConfigErrors};
use crate::config::types::AgentConfig;
use crate::governance::Policies;

/// Loaded agents. Lookup is two `HashMap` probes (name, then version) with borrowed `&str`s,
/// so a request never allocates to find its agent.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// In the order given (load order: sorted files, then document order).
    agents: Vec<Arc<AgentConfig>>,
    by_name: HashMap<String, HashMap<String, Arc<AgentConfig>>>,
    /// The tool policies loaded with these agents (empty: the globs alone decide).
    policies: Policies,
}

impl Registry {
    /// Fails when two agents share a name and version; every such pair is reported.
    pub fn new(agents: Vec<AgentConfig>) -> Result<Self, ConfigErrors> {
        let mut reg = Self::default();
        let mut errors = Vec::new();
        for agent in agents {
            let agent = Arc::new(agent);
            let versions = reg.by_name.entry(agent.name.clone()).or_default();
            if let Some(first) = versions.get(&agent.version) {
                errors.push(ConfigError {
                    source: agent.source.clone(),
                    line: None,
                    path: "name".to_owned(),
                    message: format!(
                        "duplicate agent `{}/{}`: also defined in {}",
                        agent.name, agent.version, first.source
                    ),
                });
                continue;
            }
            versions.insert(agent.version.clone(), Arc::clone(&agent));
            reg.agents.push(agent);
        }
        if errors.is_empty() { Ok(reg) } else { Err(ConfigErrors(errors)) }
    }

    /// These agents governed by `policies` (loaded from the same place).
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn get(&self, name: &str, version: &str) -> Option<Arc<AgentConfig>> {
        self.by_name.get(name)?.get(version).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<AgentConfig>> {
        self.agents.iter()
    }

    /// Sorted `name/version` strings, for "unknown agent" messages and listings.
    pub fn known(&self) -> Vec<String> {
        let mut known: Vec<String> =
            self.agents.iter().map(|a| format!("{}/{}", a.name, a.version)).collect();
        known.sort();
        known
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::parse_documents;

    fn agent(name: &str, version: &str, source: &str) -> AgentConfig {
        let text = format!(
            "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: {name}\nversion: {version}\n\
             spec:\n  agent:\n    model: m\n    system_prompt: p\n"
        );
        parse_documents(source, &text).unwrap().agents.remove(0)
    }

    #[test]
    fn lookups_by_name_and_version() {
        let reg = Registry::new(vec![
            agent("fs", "0.1", "a.yaml"),
            agent("fs", "0.10", "a.yaml"),
            agent("chat", "1", "b.yaml"),
        ])
        .unwrap();
        assert_eq!(reg.len(), 3);
        assert!(!reg.is_empty());
        assert_eq!(reg.get("fs", "0.10").unwrap().version, "0.10");
        assert_eq!(reg.get("fs", "0.1").unwrap().version, "0.1");
        assert_eq!(reg.get("chat", "1").unwrap().source, "b.yaml");
        assert!(reg.get("fs", "0.2").is_none());
        assert!(reg.get("nope", "0.1").is_none());
        assert_eq!(reg.known(), ["chat/1", "fs/0.1", "fs/0.10"]);
        let order: Vec<&str> = reg.iter().map(|a| a.version.as_str()).collect();
        assert_eq!(order, ["0.1", "0.10", "1"]);
        // Lookups share the stored agent.
        assert!(Arc::ptr_eq(&reg.get("fs", "0.1").unwrap(), reg.iter().next().unwrap()));
        assert!(Registry::new(vec![]).unwrap().is_empty());
    }

    #[test]
    fn duplicates_name_both_sources() {
        let err = Registry::new(vec![
            agent("fs", "0.1", "agents/a.yaml"),
            agent("fs", "0.1", "agents/b.yaml"),
            agent("fs", "0.2", "agents/b.yaml"),
            agent("fs", "0.1", "agents/c.yaml"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "agents/b.yaml name: duplicate agent `fs/0.1`: also defined in agents/a.yaml\n\
             agents/c.yaml name: duplicate agent `fs/0.1`: also defined in agents/a.yaml"
        );
    }
}
