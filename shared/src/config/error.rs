//! Config errors and warnings: where (file, line, YAML path) and what.
//!
//! Owns the one display format every config message uses, `{source}:{line} {path}: {message}`,
//! so `teal validate`, the Lambda cold start and tests all print the same text. It must not
//! decide what is an error: the loader does.

use std::fmt;

use serde::Serialize;

/// One problem that stops a config from loading.
///
/// Display: `{source}:{line} {path}: {message}`; without a line `{source} {path}: {message}`;
/// with an empty path (syntax errors, file-level problems) the path and its space are left out:
/// `{source}:{line}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The file (as given, so relative paths stay relative) or `s3://…` key.
    pub source: String,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// YAML path with dots and `[i]`: `spec.agent.mcp_servers[0].url`; empty for the whole file.
    pub path: String,
    pub message: String,
}

/// Something in a config that was accepted but will not be used (unknown fields).
/// Same Display format as [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    pub source: String,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

/// Every error found, in file order; Display is one error per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn write_located(
    f: &mut fmt::Formatter<'_>,
    source: &str,
    line: Option<usize>,
    path: &str,
    message: &str,
) -> fmt::Result {
    f.write_str(source)?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
    }
    if !path.is_empty() {
        write!(f, " {path}")?;
    }
    write!(f, ": {message}")
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.source, self.line, &self.path, &self.message)
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.source, self.line, &self.path, &self.message)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

// Not derived with thiserror: it would take the `source` field for `Error::source`.
impl std::error::Error for ConfigError {}
impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(line: Option<usize>, path: &str) -> ConfigError {
        ConfigError {
            source: "agents/x.yaml".into(),
            line,
            path: path.into(),
            message: "relative URL without a base".into(),
        }
    }

    #[test]
    fn display_formats() {
        assert_eq!(
            e(Some(14), "spec.agent.mcp_servers[0].url").to_string(),
            "agents/x.yaml:14 spec.agent.mcp_servers[0].url: relative URL without a base"
        );
        assert_eq!(e(None, "name").to_string(), "agents/x.yaml name: relative URL without a base");
        assert_eq!(e(Some(3), "").to_string(), "agents/x.yaml:3: relative URL without a base");
        assert_eq!(e(None, "").to_string(), "agents/x.yaml: relative URL without a base");
        let w = ConfigWarning {
            source: "a.yaml".into(),
            line: Some(2),
            path: "metadata".into(),
            message: "ignored: not used by teal-serverless".into(),
        };
        assert_eq!(w.to_string(), "a.yaml:2 metadata: ignored: not used by teal-serverless");
    }

    #[test]
    fn errors_display_one_per_line() {
        let all = ConfigErrors(vec![e(Some(1), "a"), e(Some(2), "b")]);
        assert_eq!(
            all.to_string(),
            "agents/x.yaml:1 a: relative URL without a base\n\
             agents/x.yaml:2 b: relative URL without a base"
        );
        assert_eq!(all.len(), 2);
    }
}
