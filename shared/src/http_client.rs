//! The TLS configuration every outbound `reqwest` client shares: the platform's root certificates
//! are read and parsed once per process, not once per client. The LLM client, the MCP pool, the
//! OpenAPI tools and the OTLP exporter each build a client at start; each used to read the whole
//! root store again (on Debian, one file per certificate).

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls_platform_verifier::Verifier;

/// Built on first use; `None` when the platform verifier could not be built (no root
/// certificates), in which case each client is built by `reqwest` itself and reports that error.
static TLS: OnceLock<Option<ClientConfig>> = OnceLock::new();

/// A `reqwest` client builder using the shared TLS configuration: the crypto provider `reqwest`
/// would pick (the process default, else aws-lc-rs), TLS 1.2 and 1.3, the platform's roots, and
/// ALPN offering HTTP/2 then HTTP/1.1, as `reqwest` sets for its own configuration.
pub(crate) fn builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match TLS.get_or_init(build) {
        Some(tls) => builder.tls_backend_preconfigured(tls.clone()),
        None => builder,
    }
}

fn build() -> Option<ClientConfig> {
    config(Vec::new())
        .inspect_err(|e| {
            tracing::warn!(error = %e, "the shared TLS configuration could not be built; each HTTP client builds its own");
        })
        .ok()
}

/// The configuration: the platform's roots (plus `extra_roots`, for tests), the verifier
/// `reqwest` would build, ALPN `h2` then `http/1.1`.
fn config(extra_roots: Vec<CertificateDer<'static>>) -> Result<ClientConfig, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = Verifier::new_with_extra_roots(extra_roots, provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
