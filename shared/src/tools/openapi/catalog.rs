//! The remote plugin catalog: which OpenAPI document each plugin name stands for.
//!
//! Teal's format, read once at start from the file `TA_REMOTE_PLUGIN_PATH` names:
//!
//! ```yaml
//! remote_plugins:
//!   - plugin_name: api_weather
//!     openapi_json_path: ./openapi_weather.json   # or https://host/openapi.json
//!     server_url: https://api.open-meteo.com      # optional: replaces the document's servers
//! ```
//!
//! Everything is checked here, so the rest of the module trusts the types: plugin names are
//! [`PluginName`]s, document locations are an http(s) URL or a file path (relative paths are
//! taken from the catalog file's folder), server URLs are absolute http(s) URLs. Every error
//! names the catalog file and the entry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::HeaderTemplate;
use url::Url;

use super::OpenApiError;

/// The environment variable naming the catalog file (read by `settings`, not here).
pub const CATALOG_ENV: &str = "TA_REMOTE_PLUGIN_PATH";

/// A plugin name as Semantic Kernel accepts it: `[A-Za-z0-9_]{1,40}`. Having no `-` keeps
/// `{plugin}-{function}` tool names splittable; the length leaves room for the function part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginName(String);

impl PluginName {
    pub const MAX_LEN: usize = 40;

    /// The name if it is acceptable, else what is wrong with it.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(format!("plugin_name must have 1 to {} characters", Self::MAX_LEN));
        }
        match name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            Some(c) => Err(format!("plugin_name may only hold A-Z, a-z, 0-9 and _ (found {c:?})")),
            None => Ok(Self(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a plugin's OpenAPI document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSource {
    /// Fetched with the plugins' HTTP client.
    Url(Url),
    /// Read from disk.
    File(PathBuf),
}

impl fmt::Display for DocumentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentSource::Url(url) => write!(f, "{url}"),
            DocumentSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One plugin of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: PluginName,
    pub document: DocumentSource,
    /// Replaces every server the document declares (SK's `server_url_override`).
    pub server_url: Option<Url>,
    /// Headers sent with every call (our extension of Teal's catalog, for the plugin's auth):
    /// values may reference secrets, `Bearer ${secret:NAME}`, read through the secret store.
    pub headers: BTreeMap<String, HeaderTemplate>,
}

/// The parsed catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePluginCatalog {
    path: PathBuf,
    entries: Vec<CatalogEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    remote_plugins: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    plugin_name: String,
    openapi_json_path: String,
    #[serde(default)]
    server_url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl RemotePluginCatalog {
    /// Reads and checks the catalog file.
    pub fn load(path: &Path) -> Result<Self, OpenApiError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| OpenApiError::CatalogRead { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Checks catalog text; `path` is where it came from (for messages and relative paths).
    pub fn parse(yaml: &str, path: &Path) -> Result<Self, OpenApiError> {
        let value = crate::config::yaml_to_json(yaml)
            .map_err(|source| OpenApiError::CatalogYaml { path: path.to_owned(), source })?;
        let raw: RawCatalog = serde_path_to_error::deserialize(value)
            .map_err(|source| OpenApiError::CatalogShape { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut entries: Vec<CatalogEntry> = Vec::with_capacity(raw.remote_plugins.len());
        for (i, e) in raw.remote_plugins.into_iter().enumerate() {
            let fail = |detail: String| OpenApiError::CatalogEntry {
                path: path.to_owned(),
                entry: format!("remote_plugins[{i}] ({})", e.plugin_name),
                detail,
            };
            let name = PluginName::parse(&e.plugin_name).map_err(fail)?;
            if entries.iter().any(|known| known.name == name) {
                return Err(fail("plugin_name is already used by an earlier entry".into()));
            }
            let document = document_source(&e.openapi_json_path, base).map_err(fail)?;
            let server_url = match e.server_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(s) => Some(http_url(s).map_err(|d| fail(format!("server_url: {d}")))?),
            };
            let mut headers = BTreeMap::new();
            for (header, value) in &e.headers {
                if !crate::config::is_header_name(header) {
                    return Err(fail(format!("headers: `{header}` is not an HTTP header name")));
                }
                let template =
                    HeaderTemplate::parse(value).map_err(|d| fail(format!("headers.{header}: {d}")))?;
                headers.insert(header.clone(), template);
            }
            entries.push(CatalogEntry { name, document, server_url, headers });
        }
        Ok(Self { path: path.to_owned(), entries })
    }

    /// The file the catalog was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// The entry of plugin `name`.
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.name.as_str() == name)
    }
}

fn document_source(location: &str, base: &Path) -> Result<DocumentSource, String> {
    let location = location.trim();
    if location.is_empty() {
        return Err("openapi_json_path is empty".into());
    }
    if location.contains("://") {
        return http_url(location).map(DocumentSource::Url).map_err(|d| format!("openapi_json_path: {d}"));
    }
    Ok(DocumentSource::File(base.join(location)))
}

fn http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err(format!("{s:?} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RemotePluginCatalog, OpenApiError> {
        RemotePluginCatalog::parse(yaml, Path::new("/etc/teal/catalog.yaml"))
    }

    #[test]
    fn teal_demo_catalog_is_read_with_paths_relative_to_the_catalog() {
        let catalog = parse(
            "remote_plugins:\n  - plugin_name: api_weather\n    openapi_json_path: ./openapi_weather.json\n    \
             server_url: https://api.open-meteo.com\n  - plugin_name: api_geonames\n    \
             openapi_json_path: https://specs.example.com/geonames.json\n",
        )
        .expect("valid catalog");
        let weather = catalog.get("api_weather").expect("weather");
        assert_eq!(weather.document, DocumentSource::File("/etc/teal/./openapi_weather.json".into()));
        assert_eq!(weather.server_url.as_ref().map(Url::as_str), Some("https://api.open-meteo.com/"));
        let geonames = catalog.get("api_geonames").expect("geonames");
        assert!(
            matches!(&geonames.document, DocumentSource::Url(u) if u.host_str() == Some("specs.example.com"))
        );
        assert_eq!(geonames.server_url, None);
        assert_eq!(catalog.entries().len(), 2);
        assert!(catalog.get("nope").is_none());
    }

    #[test]
    fn errors_name_the_file_and_the_entry() {
        let cases = [
            (
                "remote_plugins:\n  - plugin_name: ok\n    openapi_json_path: a.json\n  - plugin_name: bad-name\n    openapi_json_path: b.json\n",
                "remote plugin catalog /etc/teal/catalog.yaml: remote_plugins[1] (bad-name): plugin_name may only hold A-Z, a-z, 0-9 and _ (found '-')",
            ),
            (
                "remote_plugins:\n  - plugin_name: a\n    openapi_json_path: a.json\n  - plugin_name: a\n    openapi_json_path: b.json\n",
                "remote plugin catalog /etc/teal/catalog.yaml: remote_plugins[1] (a): plugin_name is already used by an earlier entry",
            ),
            (
                "remote_plugins:\n  - plugin_name: a\n    openapi_json_path: ftp://host/a.json\n",
                "remote plugin catalog /etc/teal/catalog.yaml: remote_plugins[0] (a): openapi_json_path: \"ftp://host/a.json\" is not an http(s) URL",
            ),
            (
                "remote_plugins:\n  - plugin_name: a\n    openapi_json_path: a.json\n    server_url: /relative\n",
                "remote plugin catalog /etc/teal/catalog.yaml: remote_plugins[0] (a): server_url: \"/relative\" is not a URL (relative URL without a base)",
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(parse(yaml).expect_err(yaml).to_string(), expected);
        }
    }

    #[test]
    fn yaml_errors_keep_the_line_in_their_source() {
        let e =
            parse("remote_plugins:\n  - plugin_name: a\n    openapi_json_pth: a.json\n").expect_err("typo");
        assert_eq!(e.to_string(), "remote plugin catalog /etc/teal/catalog.yaml: invalid");
        let chain = crate::telemetry::error_chain(&e);
        assert!(chain.contains("openapi_json_pth") && chain.contains("remote_plugins[0]"), "{chain}");
    }

    #[test]
    fn load_reads_the_file_and_names_it_when_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.yaml");
        std::fs::write(&path, "remote_plugins:\n  - plugin_name: p\n    openapi_json_path: specs/p.yaml\n")
            .expect("write");
        let catalog = RemotePluginCatalog::load(&path).expect("load");
        assert_eq!(catalog.path(), path);
        assert_eq!(catalog.entries()[0].document, DocumentSource::File(dir.path().join("specs/p.yaml")));
        let missing = dir.path().join("missing.yaml");
        let e = RemotePluginCatalog::load(&missing).expect_err("missing");
        assert_eq!(e.to_string(), format!("remote plugin catalog {}: cannot be read", missing.display()));
    }

    #[test]
    fn plugin_names_follow_semantic_kernel() {
        assert!(PluginName::parse("api_weather2").is_ok());
        assert!(PluginName::parse("").is_err());
        assert!(PluginName::parse(&"x".repeat(41)).is_err());
        assert!(PluginName::parse("has space").is_err());
    }
}
