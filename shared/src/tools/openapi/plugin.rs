//! A loaded remote plugin: its tools for the model and a route per tool, loaded once per process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::try_join_all;
use serde_json::{Map, Value};
use url::Url;

use super::catalog::{CatalogEntry, DocumentSource, PluginName, RemotePluginCatalog};
use super::client::{AuthHeaders, OpenApiClient};
use super::operation::{self, Skipped};
use super::request::{self, Route};
use super::spec::{Document, DocumentError};
use super::{OpenApiError, ToolOutcome};
use crate::llm::ToolSpec;

/// One plugin of the catalog, ready to call. Share it in an `Arc`.
#[derive(Debug)]
pub struct RemotePlugin {
    name: PluginName,
    headers: std::collections::BTreeMap<String, crate::config::HeaderTemplate>,
    client: OpenApiClient,
    tools: Arc<[ToolSpec]>,
    routes: HashMap<String, Endpoint>,
    skipped: Vec<Skipped>,
}

/// Where and how one tool is called.
#[derive(Debug)]
struct Endpoint {
    base: Url,
    route: Route,
}

impl RemotePlugin {
    /// Reads `entry`'s document (over HTTP with `client`, bounded by `deadline`, or from disk)
    /// and builds its tools.
    pub async fn load(
        entry: &CatalogEntry,
        client: &OpenApiClient,
        deadline: Instant,
    ) -> Result<Self, OpenApiError> {
        let text = match &entry.document {
            DocumentSource::Url(url) => client.fetch_document(entry.name.as_str(), url, deadline).await?,
            DocumentSource::File(path) => read_file(path, client.settings().max_document_bytes)
                .await
                .map_err(|source| document_error(entry, source))?,
        };
        Self::from_document(entry, &text, client)
    }

    /// Builds the tools of `entry` from the document `text` already at hand. Relative server
    /// URLs are resolved against the entry's document URL.
    pub fn from_document(
        entry: &CatalogEntry,
        text: &str,
        client: &OpenApiClient,
    ) -> Result<Self, OpenApiError> {
        let doc = Document::parse(text).map_err(|source| document_error(entry, source))?;
        let (built, skipped) = operation::build(&entry.name, &doc);
        let default_base = server_base(entry, doc.spec.servers.first());
        let mut tools = Vec::with_capacity(built.len());
        let mut routes = HashMap::with_capacity(built.len());
        for tool in built {
            let base = match (&entry.server_url, &tool.server) {
                (None, Some(own)) => server_base(entry, Some(own)),
                _ => default_base.clone(),
            }
            .map_err(|detail| document_error(entry, DocumentError::Server(detail)))?;
            routes.insert(tool.spec.name.clone(), Endpoint { base, route: tool.route });
            tools.push(tool.spec);
        }
        if !skipped.is_empty() {
            let list: Vec<String> = skipped.iter().map(ToString::to_string).collect();
            tracing::warn!(plugin = %entry.name, skipped = %list.join("; "), "remote plugin: parts of the OpenAPI document are not offered");
        }
        tracing::info!(plugin = %entry.name, tools = tools.len(), "remote plugin loaded");
        Ok(Self {
            name: entry.name.clone(),
            headers: entry.headers.clone(),
            client: client.clone(),
            tools: tools.into(),
            routes,
            skipped,
        })
    }

    pub fn name(&self) -> &PluginName {
        &self.name
    }

    /// The catalog's headers for this plugin, to render with the secret store per call.
    pub fn headers(&self) -> &std::collections::BTreeMap<String, crate::config::HeaderTemplate> {
        &self.headers
    }

    /// The tools for the model; clone the `Arc` per request.
    pub fn tools(&self) -> &Arc<[ToolSpec]> {
        &self.tools
    }

    /// Whether `tool` (a full `{plugin}-{function}` name) is one of this plugin's.
    pub fn has_tool(&self, tool: &str) -> bool {
        self.routes.contains_key(tool)
    }

    /// What of the document no tool offers, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Calls `tool` with the model's `arguments` (JSON text) and the caller's `auth` headers,
    /// finished before `deadline`. Anything the model can fix is an error outcome; `Err` means
    /// the plugin could not be reached in time.
    pub async fn call(
        &self,
        tool: &str,
        arguments: &str,
        auth: &AuthHeaders,
        deadline: Instant,
    ) -> Result<ToolOutcome, OpenApiError> {
        let Some(endpoint) = self.routes.get(tool) else {
            let known: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
            return Ok(error(format!("unknown tool {tool}; {} offers: {}", self.name, known.join(", "))));
        };
        let args = match parse_arguments(arguments) {
            Ok(args) => args,
            Err(text) => return Ok(error(text)),
        };
        let prepared = match request::prepare(&endpoint.base, &endpoint.route, &args) {
            Ok(p) => p,
            Err(text) => return Ok(error(text)),
        };
        self.client.call(self.name.as_str(), tool, prepared, auth, deadline).await
    }
}

fn error(text: String) -> ToolOutcome {
    ToolOutcome { text, is_error: true }
}

fn parse_arguments(text: &str) -> Result<Map<String, Value>, String> {
    match text.trim() {
        "" => Ok(Map::new()),
        text => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("arguments must be a JSON object, got: {other}")),
            Err(e) => Err(format!("arguments are not valid JSON: {e}")),
        },
    }
}

fn document_error(entry: &CatalogEntry, source: DocumentError) -> OpenApiError {
    OpenApiError::Document { plugin: entry.name.to_string(), location: entry.document.to_string(), source }
}

async fn read_file(path: &std::path::Path, limit: usize) -> Result<String, DocumentError> {
    let size = tokio::fs::metadata(path).await.map_err(DocumentError::Read)?.len();
    if size > limit as u64 {
        return Err(DocumentError::TooLarge { limit });
    }
    let bytes = tokio::fs::read(path).await.map_err(DocumentError::Read)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The base URL of calls: the catalog's `server_url`, else `server` with its variables at their
/// defaults (resolved against the document's URL when relative), else the document's origin.
fn server_base(entry: &CatalogEntry, server: Option<&oas3::spec::Server>) -> Result<Url, String> {
    if let Some(url) = &entry.server_url {
        return Ok(url.clone());
    }
    let document_url = match &entry.document {
        DocumentSource::Url(url) => Some(url),
        DocumentSource::File(_) => None,
    };
    let Some(server) = server else {
        return document_url.map(|u| u.join("/").unwrap_or_else(|_| u.clone())).ok_or_else(|| {
            "declares no server and was read from a file: set server_url in the catalog".into()
        });
    };
    let mut raw = server.url.clone();
    for (name, variable) in &server.variables {
        raw = raw.replace(&format!("{{{name}}}"), &variable.default);
    }
    let url = match (Url::parse(&raw), document_url) {
        (Ok(url), _) => url,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(doc)) => {
            doc.join(&raw).map_err(|e| format!("server URL {raw:?}: {e}"))?
        }
        (Err(url::ParseError::RelativeUrlWithoutBase), None) => {
            return Err(format!(
                "server URL {raw:?} is relative and the document was read from a file: set server_url in the catalog"
            ));
        }
        (Err(e), _) => return Err(format!("server URL {raw:?}: {e}")),
    };
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("server URL {raw:?} has scheme {other}, not http(s)")),
    }
}

/// The plugins an agent uses, by name.
#[derive(Debug, Clone, Default)]
pub struct RemotePlugins {
    plugins: Vec<Arc<RemotePlugin>>,
}

impl RemotePlugins {
    /// Loads the plugins `names` of `catalog` concurrently. A name the catalog lacks, or any
    /// plugin that cannot be loaded, fails the whole: an agent must not run without the tools
    /// its config promises.
    pub async fn load<S: AsRef<str>>(
        catalog: &RemotePluginCatalog,
        names: &[S],
        client: &OpenApiClient,
        deadline: Instant,
    ) -> Result<Self, OpenApiError> {
        let mut entries: Vec<&CatalogEntry> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let entry =
                catalog.get(name).ok_or_else(|| OpenApiError::UnknownPlugin { name: name.to_owned() })?;
            if !entries.iter().any(|e| e.name == entry.name) {
                entries.push(entry);
            }
        }
        let loaded =
            try_join_all(entries.into_iter().map(|e| RemotePlugin::load(e, client, deadline))).await?;
        Ok(Self { plugins: loaded.into_iter().map(Arc::new).collect() })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<RemotePlugin>> {
        self.plugins.iter().find(|p| p.name.as_str() == name)
    }

    /// The plugin that offers `tool` (`{plugin}-{function}`).
    pub fn plugin_for(&self, tool: &str) -> Option<&Arc<RemotePlugin>> {
        let (plugin, _) = tool.split_once('-')?;
        self.get(plugin).filter(|p| p.has_tool(tool))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<RemotePlugin>> {
        self.plugins.iter()
    }
}
