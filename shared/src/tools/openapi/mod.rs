//! Teal Agents' remote plugins: every operation of an OpenAPI document becomes a tool.
//!
//! This first part owns the remote plugin catalog ([`RemotePluginCatalog`], the YAML file that
//! `TA_REMOTE_PLUGIN_PATH` names).

mod catalog;

use std::path::PathBuf;

pub use catalog::{CATALOG_ENV, CatalogEntry, DocumentSource, PluginName, RemotePluginCatalog};

/// Why a catalog could not be loaded.
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
        source: yaml_serde::Error,
    },
    /// One entry of the catalog is unusable.
    #[error("remote plugin catalog {}: {entry}: {detail}", path.display())]
    CatalogEntry { path: PathBuf, entry: String, detail: String },
}
