//! The variables Lambda sets for a runtime, read for the streaming function's own Runtime API
//! loop ([`crate::lambda::stream_runtime`]). The other functions leave them to lambda_runtime,
//! which panics on a missing one; here a missing or malformed one is a [`SettingsError`] naming it.

use http::Uri;
use lambda_http::lambda_runtime::Config;

use super::{Env, SettingsError};

/// Where the Runtime API is and what Lambda says about the function.
#[derive(Debug, Clone)]
pub struct RuntimeApiSettings {
    /// `AWS_LAMBDA_RUNTIME_API`: `host:port` in Lambda (`127.0.0.1:9001`), or a URL with a base
    /// path (`cargo lambda watch` hands out `http://127.0.0.1:9000/.rt/NAME`).
    pub endpoint: Uri,
    /// `AWS_LAMBDA_FUNCTION_NAME`, `_MEMORY_SIZE`, `_VERSION`, `AWS_LAMBDA_LOG_STREAM_NAME`,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`: the context's configuration, as lambda_runtime reads it.
    pub config: Config,
    /// `AWS_LAMBDA_MAX_CONCURRENCY` (Lambda Managed Instances): the loop still answers one
    /// invocation at a time, as lambda_runtime's `run` does, and says so in the log.
    pub max_concurrency: Option<u32>,
}

const SET_BY_LAMBDA: &str = "set by Lambda; outside it, run the function under `cargo lambda watch`";

impl RuntimeApiSettings {
    /// Reads the variables above; the first three function variables and the endpoint are required.
    pub fn read(env: &Env) -> Result<Self, SettingsError> {
        let endpoint = required(env, "AWS_LAMBDA_RUNTIME_API", "host:port or an http:// URL", |v| {
            v.parse::<Uri>()
                .ok()
                .filter(|u| u.authority().is_some() && u.scheme_str().is_none_or(|s| s == "http"))
        })?;
        let memory =
            required(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "megabytes, a whole number > 0", |v| {
                v.parse::<i32>().ok().filter(|m| *m > 0)
            })?;
        if env.var("AWS_LAMBDA_INITIALIZATION_TYPE") == Some("snap-start") {
            return Err(SettingsError::Refused {
                name: "AWS_LAMBDA_INITIALIZATION_TYPE",
                value: "snap-start".into(),
                instead: "the streaming function's Runtime API loop has no SnapStart hooks (Lambda offers SnapStart only for managed runtimes); turn SnapStart off for it",
            });
        }
        let config = Config {
            function_name: required(env, "AWS_LAMBDA_FUNCTION_NAME", "a name", |v| Some(v.to_owned()))?,
            memory,
            version: required(env, "AWS_LAMBDA_FUNCTION_VERSION", "a version", |v| Some(v.to_owned()))?,
            log_stream: env.var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default().to_owned(),
            log_group: env.var("AWS_LAMBDA_LOG_GROUP_NAME").unwrap_or_default().to_owned(),
        };
        Ok(Self { endpoint, config, max_concurrency: env.positive_u32("AWS_LAMBDA_MAX_CONCURRENCY")? })
    }
}

/// A variable Lambda always sets: parsed by `parse` (else invalid, naming `expected`), or missing.
fn required<T>(
    env: &Env,
    name: &'static str,
    expected: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, SettingsError> {
    env.parse(name, expected, parse)?.ok_or_else(|| SettingsError::missing(name, SET_BY_LAMBDA))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAMBDA: [(&str, &str); 4] = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("AWS_LAMBDA_FUNCTION_NAME", "teal-stream"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
    ];

    #[test]
    fn lambdas_host_and_port_and_the_emulators_url_are_both_endpoints() {
        let s = RuntimeApiSettings::read(&Env::from_pairs(LAMBDA)).expect("Lambda's variables");
        assert_eq!(s.endpoint.authority().map(|a| a.as_str()), Some("127.0.0.1:9001"));
        assert_eq!(
            (s.config.function_name.as_str(), s.config.memory, s.config.log_group.as_str()),
            ("teal-stream", 512, "")
        );
        let watch =
            Env::from_pairs(LAMBDA).with("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9000/.rt/teal-stream");
        let s = RuntimeApiSettings::read(&watch).expect("the emulator's URL");
        assert_eq!(s.endpoint.path(), "/.rt/teal-stream");
    }

    #[test]
    fn snapstart_is_refused_with_the_way_forward_and_the_concurrency_is_read() {
        let env = Env::from_pairs(LAMBDA).with("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start");
        let e = RuntimeApiSettings::read(&env).expect_err("snap-start");
        assert!(
            e.to_string().starts_with("AWS_LAMBDA_INITIALIZATION_TYPE=snap-start is not supported: "),
            "{e}"
        );
        let env = Env::from_pairs(LAMBDA)
            .with("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances")
            .with("AWS_LAMBDA_MAX_CONCURRENCY", "8");
        assert_eq!(RuntimeApiSettings::read(&env).expect("managed instances").max_concurrency, Some(8));
    }

    #[test]
    fn a_missing_or_malformed_variable_is_named() {
        for (name, value) in [
            ("AWS_LAMBDA_RUNTIME_API", ""),
            ("AWS_LAMBDA_RUNTIME_API", "https://127.0.0.1:9001"),
            ("AWS_LAMBDA_RUNTIME_API", "/no/host"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ""),
            ("AWS_LAMBDA_FUNCTION_NAME", ""),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "0"),
        ] {
            let pairs = LAMBDA
                .into_iter()
                .filter(|(n, _)| *n != name)
                .chain((!value.is_empty()).then_some((name, value)));
            let e = RuntimeApiSettings::read(&Env::from_pairs(pairs)).expect_err(name);
            assert!(
                e.to_string().starts_with(&format!("invalid env var {name}={value} (")),
                "{name}={value}: {e}"
            );
        }
    }
}
