//! The binary's configuration: flags and environment variables, parsed once at startup with
//! precise errors naming the variable (and its flag).
//!
//! | variable | flag | default (binary) | meaning |
//! |---|---|---|---|
//! | `MCP_FILESYSTEM_ALLOWED_DIRS` | `--allowed-dirs` | – | comma-separated directories; the first is where relative paths resolve |
//! | `MCP_FILESYSTEM_ROOT` | `--root` | – | one directory (shorthand; not together with the above) |
//! | `MCP_FILESYSTEM_READONLY` | `--readonly` | `false` | mutating tools refused and not listed |
//! | `MCP_FILESYSTEM_MAX_FILE_SIZE` | `--max-file-size` | `10MB` | reads and writes over it refused; binary units (1 KB = 1024 bytes) |
//! | `MCP_BIND` | `--bind` | `0.0.0.0:8080` | listen address |
//! | `MCP_STATELESS` | `--stateless` | `true` | no MCP sessions (any replica answers any request) |
//! | `MCP_ALLOWED_HOSTS` | `--allowed-hosts` | loopback | comma-separated `Host` values accepted on `/mcp`; `*` accepts any |
//! | `MCP_AUTH_TOKEN` | – (env only) | unset | bearer token required on `/mcp` |
//!
//! Booleans are `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off` (any case); anything else is an
//! error rather than a silent `false` (a mistyped `MCP_FILESYSTEM_READONLY=ture` must not
//! leave the server writable).

use std::{ffi::OsString, net::SocketAddr};

use secrecy::SecretString;

use crate::{ByteSize, ConfigError, FsConfig, ServerOptions, SessionMode};

/// The raw values, as the flag or environment variable gave them (`None` when neither did).
#[derive(Default, Clone)]
pub struct RawSettings {
    pub root: Option<String>,
    pub allowed_dirs: Option<String>,
    pub readonly: Option<String>,
    pub max_file_size: Option<String>,
    pub bind: Option<String>,
    pub stateless: Option<String>,
    pub allowed_hosts: Option<String>,
    /// From `MCP_AUTH_TOKEN` only (never a flag: command lines are visible to other processes).
    pub auth_token: Option<OsString>,
}

/// Everything the binary needs to serve.
#[derive(Debug)]
pub struct Settings {
    pub fs: FsConfig,
    pub server: ServerOptions,
    pub bind: SocketAddr,
}

impl Settings {
    pub const DEFAULT_BIND: &str = "0.0.0.0:8080";

    pub fn parse(raw: RawSettings) -> Result<Self, ConfigError> {
        let dirs: Vec<String> = match (raw.root, raw.allowed_dirs) {
            (Some(_), Some(_)) => return Err(ConfigError::RootAndAllowedDirs),
            (Some(root), None) => vec![root],
            (None, Some(list)) => {
                list.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned).collect()
            }
            (None, None) => return Err(ConfigError::NothingToServe),
        };
        if dirs.is_empty() {
            return Err(ConfigError::NothingToServe);
        }
        let read_only = parse_bool(raw.readonly, "MCP_FILESYSTEM_READONLY", "--readonly", false)?;
        let max_file_size = match raw.max_file_size {
            None => ByteSize::DEFAULT,
            Some(value) => ByteSize::parse(&value).map_err(|reason| ConfigError::InvalidValue {
                var: "MCP_FILESYSTEM_MAX_FILE_SIZE",
                flag: "--max-file-size",
                value,
                expected: format!("{reason}; expected a size such as 10MB, 512KB, 1GB or a number of bytes"),
            })?,
        };
        let fs =
            FsConfig::with_allowed_dirs(&dirs)?.with_read_only(read_only).with_max_file_size(max_file_size);

        let bind = Self::parse_bind(raw.bind)?;
        let stateless = parse_bool(raw.stateless, "MCP_STATELESS", "--stateless", true)?;
        let mut server =
            ServerOptions::new(if stateless { SessionMode::Stateless } else { SessionMode::Stateful });
        if let Some(value) = raw.allowed_hosts {
            let hosts: Vec<&str> = value.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
            server.allowed_hosts = match hosts.as_slice() {
                [] => {
                    return Err(ConfigError::InvalidValue {
                        var: "MCP_ALLOWED_HOSTS",
                        flag: "--allowed-hosts",
                        value,
                        expected: "expected comma-separated host names (or host:port), or * for any"
                            .to_owned(),
                    });
                }
                ["*"] => Vec::new(),
                hosts => hosts.iter().map(|h| (*h).to_owned()).collect(),
            };
        }
        if let Some(token) = raw.auth_token {
            let token = token.into_string().map_err(|_| ConfigError::InvalidValue {
                var: "MCP_AUTH_TOKEN",
                flag: "env only",
                value: "[REDACTED]".to_owned(),
                expected: "expected UTF-8 text".to_owned(),
            })?;
            if token.trim().is_empty() {
                return Err(ConfigError::EmptyAuthToken);
            }
            server = server.with_auth_token(SecretString::from(token.trim().to_owned()));
        }
        Ok(Self { fs, server, bind })
    }

    /// `MCP_BIND` alone (the health check needs nothing else).
    pub fn parse_bind(value: Option<String>) -> Result<SocketAddr, ConfigError> {
        let value = value.unwrap_or_else(|| Self::DEFAULT_BIND.to_owned());
        value.parse().map_err(|_| ConfigError::InvalidValue {
            var: "MCP_BIND",
            flag: "--bind",
            value,
            expected: "expected an address such as 0.0.0.0:8080 or [::]:8080".to_owned(),
        })
    }
}

fn parse_bool(
    value: Option<String>,
    var: &'static str,
    flag: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => {
            Err(ConfigError::InvalidValue { var, flag, value, expected: "expected true or false".to_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn error(raw: RawSettings) -> String {
        Settings::parse(raw).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_binary_defaults_are_stateless_on_all_interfaces_read_write_10mb() -> TestResult {
        let dir = tempfile::tempdir()?;
        let settings = Settings::parse(RawSettings {
            root: Some(dir.path().display().to_string()),
            ..Default::default()
        })?;
        assert_eq!(settings.bind, "0.0.0.0:8080".parse()?);
        assert_eq!(settings.server.mode, SessionMode::Stateless);
        assert!(settings.server.allows_only_loopback_hosts());
        assert!(settings.server.auth_token.is_none());
        assert!(!settings.fs.read_only());
        assert_eq!(settings.fs.max_file_size().bytes(), 10 * 1024 * 1024);
        assert_eq!(settings.fs.allowed_dirs(), [dir.path().canonicalize()?]);
        Ok(())
    }

    #[test]
    fn every_variable_is_honoured() -> TestResult {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        let settings = Settings::parse(RawSettings {
            allowed_dirs: Some(format!(" {} ,{},", a.path().display(), b.path().display())),
            readonly: Some("TRUE".into()),
            max_file_size: Some("512KB".into()),
            bind: Some("127.0.0.1:9000".into()),
            stateless: Some("off".into()),
            allowed_hosts: Some("fs.teal.local, fs.teal.local:8080".into()),
            auth_token: Some(" s3cret ".into()),
            ..Default::default()
        })?;
        assert_eq!(settings.fs.allowed_dirs(), [a.path().canonicalize()?, b.path().canonicalize()?]);
        assert!(settings.fs.read_only());
        assert_eq!(settings.fs.max_file_size().bytes(), 512 * 1024);
        assert_eq!(settings.bind, "127.0.0.1:9000".parse()?);
        assert_eq!(settings.server.mode, SessionMode::Stateful);
        assert_eq!(settings.server.allowed_hosts, ["fs.teal.local", "fs.teal.local:8080"]);
        assert_eq!(
            settings.server.auth_token.as_ref().map(|t| t.expose_secret().to_owned()).as_deref(),
            Some("s3cret")
        );
        assert!(!format!("{settings:?}").contains("s3cret"), "the token is never printed");

        let any = Settings::parse(RawSettings {
            root: Some(a.path().display().to_string()),
            allowed_hosts: Some("*".into()),
            ..Default::default()
        })?;
        assert!(any.server.allowed_hosts.is_empty(), "* disables the Host check");
        Ok(())
    }

    #[test]
    fn invalid_values_are_startup_errors_naming_the_variable() -> TestResult {
        let dir = tempfile::tempdir()?;
        let base = || RawSettings { root: Some(dir.path().display().to_string()), ..Default::default() };
        assert_eq!(
            error(RawSettings { max_file_size: Some("10XB".into()), ..base() }),
            "invalid MCP_FILESYSTEM_MAX_FILE_SIZE=\"10XB\" (--max-file-size): unknown unit \"XB\"; expected a \
             size such as 10MB, 512KB, 1GB or a number of bytes"
        );
        assert_eq!(
            error(RawSettings { max_file_size: Some("0".into()), ..base() }),
            "invalid MCP_FILESYSTEM_MAX_FILE_SIZE=\"0\" (--max-file-size): must be at least 1 byte; expected a \
             size such as 10MB, 512KB, 1GB or a number of bytes"
        );
        assert_eq!(
            error(RawSettings { readonly: Some("ture".into()), ..base() }),
            "invalid MCP_FILESYSTEM_READONLY=\"ture\" (--readonly): expected true or false"
        );
        assert_eq!(
            error(RawSettings { stateless: Some("maybe".into()), ..base() }),
            "invalid MCP_STATELESS=\"maybe\" (--stateless): expected true or false"
        );
        assert_eq!(
            error(RawSettings { bind: Some("8080".into()), ..base() }),
            "invalid MCP_BIND=\"8080\" (--bind): expected an address such as 0.0.0.0:8080 or [::]:8080"
        );
        assert_eq!(
            error(RawSettings { allowed_hosts: Some(" , ".into()), ..base() }),
            "invalid MCP_ALLOWED_HOSTS=\" , \" (--allowed-hosts): expected comma-separated host names (or \
             host:port), or * for any"
        );
        assert_eq!(
            error(RawSettings { auth_token: Some("  ".into()), ..base() }),
            "MCP_AUTH_TOKEN is set but empty: unset it to disable authentication"
        );
        Ok(())
    }

    #[test]
    fn the_directories_must_be_given_once_and_exist() -> TestResult {
        let dir = tempfile::tempdir()?;
        let shown = dir.path().display().to_string();
        assert_eq!(
            error(RawSettings::default()),
            "no directory to serve: set MCP_FILESYSTEM_ALLOWED_DIRS (comma-separated) or MCP_FILESYSTEM_ROOT"
        );
        assert_eq!(
            error(RawSettings { allowed_dirs: Some(" ,".into()), ..Default::default() }),
            "no directory to serve: set MCP_FILESYSTEM_ALLOWED_DIRS (comma-separated) or MCP_FILESYSTEM_ROOT"
        );
        assert_eq!(
            error(RawSettings {
                root: Some(shown.clone()),
                allowed_dirs: Some(shown.clone()),
                ..Default::default()
            }),
            "MCP_FILESYSTEM_ROOT (--root) and MCP_FILESYSTEM_ALLOWED_DIRS (--allowed-dirs) are both set: use one \
             (ROOT is the single-directory shorthand)"
        );
        let missing = format!("{shown}/nope");
        let message =
            error(RawSettings { allowed_dirs: Some(format!("{shown},{missing}")), ..Default::default() });
        assert!(
            message.starts_with(&format!("allowed directory {missing} cannot be resolved: ")),
            "{message}"
        );
        Ok(())
    }
}
