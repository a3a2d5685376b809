//! What the agent loop can call: MCP tools ([`crate::mcp`]) and Teal's remote plugins
//! ([`openapi`]), behind one [`Toolbox`] per agent per request, so the loop does not care which
//! source a tool comes from.
//!
//! A toolbox is cheap: without remote plugins its specs are the MCP tool set's own `Arc`; with
//! them, the specs of both are put side by side once per request (remote plugins are rare and
//! their tool lists short). Names never collide across sources: MCP tools are `{server}_{tool}`
//! with server names free of `_`… and remote plugin tools are `{plugin}-{function}`; on a clash
//! the MCP tool is kept and the plugin's is dropped with a warning.

pub mod hitl_catalog;
pub mod openapi;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use secrecy::ExposeSecret;

use crate::governance::{Denied, Gate};
use crate::llm::ToolSpec;
use crate::mcp::{AgentTools, McpError, McpPool, ToolOutcome, ToolRoute};
use crate::secrets::{SecretError, SecretStore};
use openapi::{AuthHeaders, OpenApiError, RemotePlugin};

/// Why a tool could not be called at all (as opposed to an error outcome the model sees).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Mcp(#[from] McpError),
    #[error(transparent)]
    Plugin(#[from] OpenApiError),
    /// A header the remote plugin catalog gives could not be rendered.
    #[error("remote plugin '{plugin}': header {header} could not be made (secret or value)")]
    PluginHeader {
        plugin: String,
        header: String,
        #[source]
        source: Option<SecretError>,
    },
}

impl ToolError {
    /// `mcp:NAME` or `plugin:NAME`, for the 502 body.
    pub fn upstream(&self) -> String {
        match self {
            ToolError::Mcp(e) => format!("mcp:{}", e.server()),
            ToolError::Plugin(e) => format!("plugin:{}", e.plugin().unwrap_or("?")),
            ToolError::PluginHeader { plugin, .. } => format!("plugin:{plugin}"),
        }
    }
}

/// Where one tool name leads.
pub enum Route<'a> {
    Mcp(&'a ToolRoute),
    Plugin(&'a Arc<RemotePlugin>),
}

impl Route<'_> {
    /// The server or plugin name, for records and logs.
    pub fn source_name(&self) -> &str {
        match self {
            Route::Mcp(r) => r.server_name(),
            Route::Plugin(p) => p.name().as_str(),
        }
    }

    /// The tool's own name at its source (`namespaced` is the name the model sees).
    pub fn tool_name<'n>(&'n self, namespaced: &'n str) -> &'n str {
        match self {
            Route::Mcp(r) => r.tool_name(),
            Route::Plugin(_) => namespaced.split_once('-').map_or(namespaced, |(_, f)| f),
        }
    }

    /// `mcp:NAME` or `plugin:NAME`, as [`ToolError::upstream`] names it.
    pub fn upstream(&self) -> String {
        match self {
            Route::Mcp(r) => format!("mcp:{}", r.server_name()),
            Route::Plugin(p) => format!("plugin:{}", p.name().as_str()),
        }
    }
}

/// One agent's tools for one request.
#[derive(Clone, Default)]
pub struct Toolbox {
    specs: Arc<[ToolSpec]>,
    mcp: AgentTools,
    plugins: Arc<[Arc<RemotePlugin>]>,
    /// Where the plugins' header secrets are read (`None` without plugins).
    secrets: Option<Arc<dyn SecretStore>>,
    /// The tool policies for this request's caller (`None`: no policies, the globs decide).
    gate: Option<Arc<Gate>>,
}

impl Toolbox {
    /// The agent's MCP tools and the remote `plugins` it lists, without the `held` ones (tools
    /// a plugin catalog says need human approval, by Teal's id `{source}-{tool}` or by name).
    pub fn new(
        mcp: AgentTools,
        plugins: Vec<Arc<RemotePlugin>>,
        held: &HashSet<String>,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> Self {
        if plugins.is_empty() && !mcp.specs.iter().any(|s| is_held(&mcp, s, held)) {
            return Self { specs: mcp.specs.clone(), mcp, plugins: Arc::from([]), secrets, gate: None };
        }
        let mut specs: Vec<ToolSpec> =
            mcp.specs.iter().filter(|s| !is_held(&mcp, s, held)).cloned().collect();
        for plugin in &plugins {
            for spec in plugin.tools().iter() {
                if mcp.route(&spec.name).is_some() {
                    tracing::warn!(tool = %spec.name, "a remote plugin tool has an MCP tool's name; keeping the MCP tool");
                    continue;
                }
                if held.contains(&spec.name) {
                    continue;
                }
                specs.push(spec.clone());
            }
        }
        Self { specs: specs.into(), mcp, plugins: plugins.into(), secrets, gate: None }
    }

    /// This toolbox under `gate`: the tools the caller may not list are no longer offered, and
    /// every call is asked first ([`Toolbox::authorize`]).
    pub fn governed(mut self, gate: Option<Gate>) -> Self {
        let Some(gate) = gate else { return self };
        let allowed: Vec<ToolSpec> = self
            .specs
            .iter()
            .filter(|s| {
                self.route(&s.name).is_some_and(|r| gate.may_list(r.source_name(), r.tool_name(&s.name)))
            })
            .cloned()
            .collect();
        self.specs = allowed.into();
        self.gate = Some(Arc::new(gate));
        self
    }

    /// Whether the policies let this call through `route` go out (always, without policies).
    pub fn authorize(&self, name: &str, route: &Route<'_>, arguments: &str) -> Result<(), Denied> {
        match &self.gate {
            None => Ok(()),
            Some(gate) => gate.authorize(name, route.source_name(), route.tool_name(name), arguments),
        }
    }

    /// What the model is offered.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Where `name` leads, if the agent is offered it (a held tool leads nowhere).
    pub fn route(&self, name: &str) -> Option<Route<'_>> {
        if !self.specs.iter().any(|s| s.name == name) {
            return None;
        }
        if let Some(r) = self.mcp.route(name) {
            return Some(Route::Mcp(r));
        }
        let (plugin, _) = name.split_once('-')?;
        self.plugins.iter().find(|p| p.name().as_str() == plugin && p.has_tool(name)).map(Route::Plugin)
    }

    /// Calls `name` through `route` with the model's `arguments`, before `deadline`.
    pub async fn call(
        &self,
        pool: &McpPool,
        name: &str,
        route: &Route<'_>,
        arguments: &str,
        deadline: Instant,
    ) -> Result<ToolOutcome, ToolError> {
        match route {
            Route::Mcp(r) => Ok(pool.call(r, arguments).await?),
            Route::Plugin(p) => {
                let headers = self.plugin_headers(p).await?;
                Ok(p.call(name, arguments, &headers, deadline).await?)
            }
        }
    }

    /// The catalog's headers of `plugin`, secrets filled in (the secret store caches them).
    async fn plugin_headers(&self, plugin: &RemotePlugin) -> Result<AuthHeaders, ToolError> {
        let mut out = AuthHeaders::new();
        for (header, template) in plugin.headers() {
            let fail = |source| ToolError::PluginHeader {
                plugin: plugin.name().as_str().to_owned(),
                header: header.clone(),
                source,
            };
            let mut values = std::collections::HashMap::new();
            for secret in template.secret_names() {
                let Some(store) = &self.secrets else {
                    return Err(fail(None));
                };
                values.insert(secret, store.get(secret).await.map_err(|e| fail(Some(e)))?);
            }
            let rendered = template
                .render(|n| values.get(n).map(|v| v.expose_secret().to_owned()).ok_or(()))
                .map_err(|()| fail(None))?;
            out = out.with(header, rendered.into()).map_err(|_| fail(None))?;
        }
        Ok(out)
    }
}

/// Whether a plugin catalog holds this MCP tool: by its name, or by Teal's `{server}-{tool}`
/// and `mcp_{server}_{tool}` ids.
fn is_held(mcp: &AgentTools, spec: &ToolSpec, held: &HashSet<String>) -> bool {
    if held.is_empty() {
        return false;
    }
    if held.contains(&spec.name) {
        return true;
    }
    mcp.route(&spec.name).is_some_and(|r| {
        held.contains(&format!("{}-{}", r.server_name(), r.tool_name()))
            || held.contains(&format!("mcp_{}_{}", r.server_name(), r.tool_name()))
    })
}
