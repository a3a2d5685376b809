//! Teal's plugin catalog (`TA_PLUGIN_CATALOG_FILE`, JSON): which tools need a human to approve
//! each call (`governance.requires_hitl`).
//!
//! Until approvals exist here, such tools are held: never offered to the model, never run. The
//! catalog's other fields (cost, data sensitivity, auth) are labels nothing here acts on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The largest catalog read.
const MAX_CATALOG_BYTES: u64 = 4 * 1024 * 1024;

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HitlCatalogError {
    #[error("plugin catalog {}: cannot be read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin catalog {}: larger than {MAX_CATALOG_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("plugin catalog {}: not a Teal plugin catalog", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Catalog {
    plugins: Vec<Plugin>,
}

#[derive(Deserialize)]
struct Plugin {
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    tool_id: String,
    governance: Governance,
}

#[derive(Deserialize)]
struct Governance {
    #[serde(default)]
    requires_hitl: bool,
}

/// The `tool_id`s (`{plugin}-{function}`) whose calls need human approval.
pub fn held_tools(path: &Path) -> Result<HashSet<String>, HitlCatalogError> {
    let read = |source| HitlCatalogError::Read { path: path.to_owned(), source };
    if std::fs::metadata(path).map_err(read)?.len() > MAX_CATALOG_BYTES {
        return Err(HitlCatalogError::TooLarge { path: path.to_owned() });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(&text).map_err(|source| HitlCatalogError::Json { path: path.to_owned(), source })
}

fn parse(text: &str) -> Result<HashSet<String>, serde_json::Error> {
    let catalog: Catalog = serde_json::from_str(text)?;
    Ok(catalog
        .plugins
        .into_iter()
        .flat_map(|p| p.tools)
        .filter(|t| t.governance.requires_hitl)
        .map(|t| t.tool_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teals_own_catalog_holds_its_requires_hitl_tools() {
        let text = r#"{"plugins": [
          {"plugin_id": "finance_plugin", "name": "finance_plugin", "description": "d", "version": "1.0",
           "owner": "system", "plugin_type": {"type_name": "code"}, "tools": [
            {"tool_id": "finance_plugin-initiate_transfer", "name": "initiate_transfer", "description": "t",
             "governance": {"requires_hitl": true, "cost": "high", "data_sensitivity": "sensitive"}, "auth": null},
            {"tool_id": "finance_plugin-get_balance", "name": "get_balance", "description": "b",
             "governance": {"requires_hitl": false, "cost": "low", "data_sensitivity": "proprietary"}, "auth": null}
          ]}
        ]}"#;
        let held = parse(text).expect("valid");
        assert_eq!(held, HashSet::from(["finance_plugin-initiate_transfer".to_owned()]));
        assert!(parse(r#"{"plugins": [{"tools": [{"tool_id": "x"}]}]}"#).is_err(), "governance is required");
    }

    #[test]
    fn an_unreadable_catalog_names_its_path() {
        let e = held_tools(Path::new("/nonexistent/catalog.json")).expect_err("missing");
        assert_eq!(e.to_string(), "plugin catalog /nonexistent/catalog.json: cannot be read");
    }
}
