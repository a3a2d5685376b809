//! Teal Agents' remote plugins: every operation of an OpenAPI document becomes a tool.
//!
//! Owns the remote plugin catalog ([`RemotePluginCatalog`], the YAML file that
//! `TA_REMOTE_PLUGIN_PATH` names), reading OpenAPI 3.0 and 3.1 documents (JSON or YAML),
//! turning their operations into [`ToolSpec`]s, and calling an operation over HTTP with one
//! pooled client ([`OpenApiClient`]). A [`RemotePlugin`] is loaded once per process and
//! shared; per request it hands out its specs by refcount. This module must not know about the
//! LLM or the agent loop: it takes the model's argument text and gives back a [`ToolOutcome`].
//!
//! # The tool shape (Semantic Kernel's, as Teal configures it)
//!
//! Teal loads remote plugins with Semantic Kernel's OpenAPI plugin, `enable_dynamic_payload`
//! on (SK's default) and `enable_payload_namespacing=True`. That shape is kept:
//!
//! - **Name**: `{plugin}-{operationId}`, SK's fully qualified function name, which Teal's HITL
//!   catalog uses. Plugin names are `[A-Za-z0-9_]{1,40}` (checked in the catalog, as SK checks
//!   them), so the first `-` always splits plugin from function. In the function part every
//!   character outside `[A-Za-z0-9_]` becomes `_`. An operation without `operationId` is named
//!   from its method and path: `GET /users/{id}/posts` -> `get_users_id_posts`. When the name
//!   would pass 64 characters (the OpenAI limit), the function part is cut and `_` plus the first
//!   8 hex digits of the SHA-256 of the unsanitised `operationId` (or `METHOD /path`) are
//!   appended; a name that collides with an earlier tool of the same plugin gets the same
//!   suffix (and if even that collides, the operation is skipped). Names a valid Teal config
//!   produces never change.
//! - **Description**: the operation's `summary`, else its `description`.
//! - **Arguments**: one JSON Schema object. Path, query and header parameters are properties
//!   named after the parameter with every run of characters outside `[A-Za-z0-9_]` turned into
//!   `_` (SK's `alternative_name`). The JSON request body is flattened: each leaf property of the
//!   body object is a top-level argument; a nested object's leaves are named
//!   `parent_child` (SK's namespaced `parent.child`, sanitised the same way). A leaf is a property
//!   that has no `properties` of its own. `required` follows the spec.
//!
//! # Where this differs from Teal / SK (on purpose)
//!
//! - Path-level parameters are merged into each operation (SK reads only operation-level ones);
//!   `allOf` members of a body object are merged; `readOnly` body properties are not offered.
//! - A nested leaf is required only when it and every object above it are required (SK uses the
//!   root's `required` list at every depth). Flattening stops at depth 10 (SK fails there): the
//!   object at that depth becomes one argument.
//! - A JSON body that is not an object with properties (an array, a string, a free-form object)
//!   is one argument named `payload` holding the whole body (SK offers no argument at all).
//! - A required argument the model leaves out that has a schema `default` is sent with that
//!   default (SK fails the call). The schema still lists it as required.
//! - `openapi_json_path` in the catalog is relative to the catalog file, not to the working
//!   directory; unknown catalog keys and duplicate plugin names are errors (Teal ignores them).
//! - A non-2xx answer is a tool error for the model (`HTTP 404: <body start>`) instead of an
//!   exception; redirects are followed only within the same origin, so caller-supplied auth
//!   headers never travel to another host.
//! - Auth headers come from the caller per call ([`AuthHeaders`]); Teal's plugins send none.
//!
//! # What is skipped, never silently
//!
//! Cookie parameters, parameters described by `content`, non-JSON request bodies, `matrix` and
//! `label` path styles, the `Accept`/`Content-Type`/`Authorization` header parameters (the
//! OpenAPI spec says to ignore them), callbacks, webhooks, path items given by `$ref`, `$ref`s
//! outside the document, and operations whose argument names collide. Whatever is dropped is
//! listed in [`RemotePlugin::skipped`] and in one warning log line per plugin. An operation that
//! cannot be called without the dropped part (a required cookie, a required non-JSON body) is
//! skipped whole.
//!
//! # Failures
//!
//! Anything the model can fix is a [`ToolOutcome`] with `is_error` set: arguments that are not
//! a JSON object, a missing required argument, an unknown tool, an HTTP error status, a response
//! larger than the limit. An [`OpenApiError`] is for the caller: the plugin could not be reached
//! or did not answer in time (a 502 `upstream: plugin:NAME`), or it could not be loaded.

mod catalog;
mod client;
mod names;
mod operation;
mod plugin;
mod request;
mod spec;

use std::path::PathBuf;

pub use catalog::{CATALOG_ENV, CatalogEntry, DocumentSource, PluginName, RemotePluginCatalog};
pub use client::{AuthHeaders, OpenApiClient, OpenApiSettings};
pub use operation::Skipped;
pub use plugin::{RemotePlugin, RemotePlugins};
pub use spec::DocumentError;

pub use crate::llm::ToolSpec;
pub use crate::mcp::ToolOutcome;

/// Why a catalog or plugin could not be loaded, or a plugin could not be called.
///
/// `Display` names the plugin (or the catalog file) and the kind of failure, never a URL,
/// address or anything the upstream said; that stays in the source chain for the log
/// ([`crate::telemetry::error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// The catalog file could not be read.
    #[error("remote plugin catalog {}: cannot be read", path.display())]
    CatalogRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The catalog is not valid YAML of the expected shape (the source has the line).
    #[error("remote plugin catalog {}: invalid", path.display())]
    CatalogYaml {
        path: PathBuf,
        #[source]
        source: crate::config::TreeError,
    },
    /// The catalog's YAML is not a remote plugin catalog (the source names the field).
    #[error("remote plugin catalog {}: invalid", path.display())]
    CatalogShape {
        path: PathBuf,
        /// Names the field (`remote_plugins[0]: unknown field ...`).
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    /// One entry of the catalog is unusable.
    #[error("remote plugin catalog {}: {entry}: {detail}", path.display())]
    CatalogEntry { path: PathBuf, entry: String, detail: String },
    /// An agent names a plugin the catalog does not list.
    #[error("remote plugin '{name}' is not in the remote plugin catalog")]
    UnknownPlugin { name: String },
    /// The OpenAPI document could not be read, fetched or understood.
    #[error("remote plugin '{plugin}': OpenAPI document {location} could not be loaded")]
    Document {
        plugin: String,
        location: String,
        #[source]
        source: DocumentError,
    },
    /// The shared HTTP client could not be built (TLS backend).
    #[error("HTTP client for remote plugins could not be built")]
    HttpClient(#[source] reqwest::Error),
    /// The plugin's server could not be reached or dropped the connection.
    #[error("remote plugin '{plugin}' is unreachable")]
    Unreachable {
        plugin: String,
        #[source]
        source: reqwest::Error,
    },
    /// The plugin's server did not answer within the per-call timeout.
    #[error("remote plugin '{plugin}' did not answer within {timeout_ms} ms")]
    Timeout { plugin: String, timeout_ms: u128 },
    /// The request's deadline passed before the plugin answered.
    #[error("request deadline reached while calling remote plugin '{plugin}'")]
    Deadline { plugin: String },
}

impl OpenApiError {
    /// The plugin at fault, for `upstream: plugin:NAME` and the logs (`None` for catalog errors
    /// and the client build).
    pub fn plugin(&self) -> Option<&str> {
        match self {
            OpenApiError::UnknownPlugin { name: plugin }
            | OpenApiError::Document { plugin, .. }
            | OpenApiError::Unreachable { plugin, .. }
            | OpenApiError::Timeout { plugin, .. }
            | OpenApiError::Deadline { plugin } => Some(plugin),
            OpenApiError::CatalogRead { .. }
            | OpenApiError::CatalogYaml { .. }
            | OpenApiError::CatalogShape { .. }
            | OpenApiError::CatalogEntry { .. }
            | OpenApiError::HttpClient(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
