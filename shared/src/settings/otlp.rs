//! The OpenTelemetry variables that configure OTLP/HTTP trace export
//! (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>): read here, used by
//! `telemetry::otlp` (feature `otlp`).
//!
//! Honoured: `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL; traces go to `/v1/traces` under it) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), `OTEL_EXPORTER_OTLP_HEADERS` /
//! `_TRACES_HEADERS` (`key=value,…`, percent-decoded; the values are secrets: never logged nor
//! shown by `Debug`), `OTEL_EXPORTER_OTLP_TIMEOUT` / `_TRACES_TIMEOUT` (milliseconds, default
//! 10000: one export, and the per-invocation flush in Lambda), `OTEL_SERVICE_NAME` (default: the
//! Lambda function's name, else `teal`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED=true`
//! (no export). The SDK itself reads the sampler (`OTEL_TRACES_SAMPLER`, `_ARG`) and span limits.
//! Refused, with the way forward: a protocol other than `http/protobuf` (gRPC is not built),
//! compression (not built), a collector CA or client certificate and key (`_CERTIFICATE`,
//! `_CLIENT_CERTIFICATE`, `_CLIENT_KEY`: the platform's roots are trusted; `SSL_CERT_FILE`
//! replaces them for every HTTPS client), and any of it in a build without the `otlp` feature.

use std::time::Duration;

use secrecy::SecretString;

use super::{Env, SettingsError};

/// Where and how spans are exported. `Debug` never shows the header values.
#[derive(Clone)]
pub struct OtlpSettings {
    /// The traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// Sent with every export (an API key for a hosted backend): secret values.
    pub headers: Vec<(String, SecretString)>,
    /// One export's limit, and the per-invocation flush's in Lambda.
    pub timeout: Duration,
    /// `service.name`.
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, besides `service.name`.
    pub resource: Vec<(String, String)>,
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .finish()
    }
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// Variables of the specification whose values are not served: the variables (generic and
/// traces-only), the one value that changes nothing (`None`: any value is refused), and what to
/// do instead.
const NOT_SERVED: [(&[&str], Option<&str>, &str); 3] = [
    (
        &["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
        Some("http/protobuf"),
        "spans are exported over OTLP/HTTP with protobuf only: set it to http/protobuf (a collector \
         listens on port 4318 for it)",
    ),
    (
        &["OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"],
        Some("none"),
        "exports are not compressed (the collector is local): set it to none or unset it",
    ),
    (
        &[
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        ],
        None,
        "the exporter trusts the platform's root certificates and sends no client certificate: \
         unset it and add the collector's CA to the system store, or point SSL_CERT_FILE at a \
         bundle of the system's roots plus that CA (it replaces the store for every HTTPS client), \
         or export to a local collector (the ADOT layer) over http",
    ),
];

/// Whether this build can export (teal-core's `otlp` feature).
pub const BUILT: bool = cfg!(feature = "otlp");

/// The export settings, `None` when no endpoint is set (or `OTEL_SDK_DISABLED=true`): then
/// nothing is built and nothing costs anything.
pub fn read(env: &Env) -> Result<Option<OtlpSettings>, SettingsError> {
    let disabled = env.parse("OTEL_SDK_DISABLED", "true or false", super::teal::parse_bool)?;
    let (name, endpoint) = match (env.var(TRACES_ENDPOINT), env.var(ENDPOINT)) {
        (Some(url), _) => (TRACES_ENDPOINT, url.to_owned()),
        (None, Some(base)) => (ENDPOINT, format!("{}/v1/traces", base.trim_end_matches('/'))),
        (None, None) => return Ok(None),
    };
    if disabled == Some(true) {
        return Ok(None);
    }
    if !BUILT {
        return Err(SettingsError::Refused {
            name,
            value: env.var(name).unwrap_or_default().to_owned(),
            instead: "this build has no OTLP exporter: build with the `otlp` feature (cargo build \
                      --features otlp; `teal` has it; for the Lambda functions see docs/deploy.md, \
                      \"Traces\"), or unset it",
        });
    }
    let url = url::Url::parse(&endpoint).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    if url.is_none() {
        return Err(SettingsError::Invalid {
            name,
            value: env.var(name).unwrap_or_default().to_owned(),
            expected: "an absolute http(s) URL (OTLP/HTTP, e.g. http://localhost:4318)",
        });
    }
    for (names, served, instead) in NOT_SERVED {
        for name in names {
            env.refuse_unless(name, served, instead)?;
        }
    }
    let headers = match env.var("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
        Some(v) => pairs("OTEL_EXPORTER_OTLP_TRACES_HEADERS", v, true)?,
        None => match env.var("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(v) => pairs("OTEL_EXPORTER_OTLP_HEADERS", v, true)?,
            None => Vec::new(),
        },
    };
    let timeout = match env.var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
        Some(_) => env.millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 10_000)?,
        None => env.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
    };
    let resource = match env.var("OTEL_RESOURCE_ATTRIBUTES") {
        Some(v) => pairs("OTEL_RESOURCE_ATTRIBUTES", v, false)?,
        None => Vec::new(),
    };
    let service_name = env
        .var("OTEL_SERVICE_NAME")
        .or_else(|| env.var("AWS_LAMBDA_FUNCTION_NAME"))
        .unwrap_or("teal")
        .to_owned();
    Ok(Some(OtlpSettings {
        endpoint,
        headers: headers.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect(),
        timeout,
        service_name,
        resource,
    }))
}

/// `key=value,key2=value2` with percent-encoded values (the W3C baggage format the
/// specification uses for headers and resource attributes). A secret's value never reaches the
/// error: only the key is named.
fn pairs(name: &'static str, v: &str, secret: bool) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(SettingsError::Invalid {
                name,
                value: if secret { "[hidden]".to_owned() } else { item.to_owned() },
                expected: "key=value pairs separated by commas",
            });
        };
        let decoded = percent_encoding::percent_decode_str(value.trim()).decode_utf8();
        let (key, value) = match decoded {
            Ok(value) if !key.trim().is_empty() => (key.trim().to_owned(), value.into_owned()),
            _ => {
                return Err(SettingsError::Unusable {
                    name,
                    detail: format!("the value of {} is empty or not percent-encoded UTF-8", key.trim()),
                });
            }
        };
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_pairs(pairs: &[(&str, &str)]) -> Result<Option<OtlpSettings>, SettingsError> {
        read(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn nothing_is_configured_without_an_endpoint() {
        assert!(read_pairs(&[("OTEL_SERVICE_NAME", "x")]).expect("ok").is_none());
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert!(read_pairs(&off).expect("ok").is_none());
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn a_build_without_the_exporter_refuses_the_endpoint_naming_the_feature() {
        let e = read_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).expect_err("refused");
        assert!(e.to_string().contains("`otlp` feature"), "{e}");
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn a_collector_ca_or_client_certificate_is_refused_naming_the_way_forward() {
        for name in ["OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"] {
            let e = read_pairs(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example"),
                (name, "/ca.pem"),
            ])
            .expect_err("refused");
            let text = e.to_string();
            assert!(text.contains(name) && text.contains("SSL_CERT_FILE"), "{text}");
        }
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn the_endpoint_headers_and_names_are_read_and_secrets_never_shown() {
        let s = read_pairs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt-value, x-team = blue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=dev"),
            ("AWS_LAMBDA_FUNCTION_NAME", "teal-invoke"),
        ])
        .expect("ok")
        .expect("configured");
        assert_eq!(s.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(s.service_name, "teal-invoke");
        assert_eq!(s.timeout, Duration::from_secs(10));
        use secrecy::ExposeSecret as _;
        let headers: Vec<(&str, &str)> =
            s.headers.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        assert_eq!(headers, [("x-api-key", "s3cr=t-value"), ("x-team", "blue")]);
        assert_eq!(s.resource, [("deployment.environment".to_owned(), "dev".to_owned())]);
        assert!(!format!("{s:?}").contains("s3cr"), "Debug shows no header value");

        let s = read_pairs(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector.example/custom"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_SERVICE_NAME", "agents"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ])
        .expect("ok")
        .expect("configured");
        assert_eq!(
            (s.endpoint.as_str(), s.service_name.as_str(), s.timeout),
            ("https://collector.example/custom", "agents", Duration::from_millis(2500))
        );
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn what_is_not_built_is_refused_and_bad_values_name_their_variable() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let err = |extra: (&str, &str)| read_pairs(&[base, extra]).expect_err("refused").to_string();
        assert!(err(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")).contains("http/protobuf"));
        assert!(err(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")).contains("not compressed"));
        assert!(err(("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")).contains("OTEL_EXPORTER_OTLP_TIMEOUT=soon"));
        let bad = err(("OTEL_EXPORTER_OTLP_HEADERS", "authorization"));
        assert!(bad.contains("OTEL_EXPORTER_OTLP_HEADERS") && bad.contains("key=value"), "{bad}");
        let e = read_pairs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]).expect_err("bad URL");
        assert!(e.to_string().contains("OTLP/HTTP"), "{e}");
        assert!(read_pairs(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).is_ok());
    }
}
