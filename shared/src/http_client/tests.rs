//! The shared configuration against a real TLS server on loopback: a certificate chain made by
//! the `openssl` command (a CA and a leaf for 127.0.0.1), served by rustls.

use std::path::Path;
use std::process::Command;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a leaf for 127.0.0.1 signed by it: (CA certificate, leaf chain, leaf key).
fn certificates(
    dir: &Path,
) -> (CertificateDer<'static>, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=teal-test-ca"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[&["req"], &ec[..], &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]].concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write");
    #[rustfmt::skip]
    openssl(dir, &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "1", "-extfile", "leaf.ext"]);
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).expect("CA");
    let leaf = CertificateDer::from_pem_file(dir.join("leaf.pem")).expect("leaf");
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).expect("key");
    (ca, vec![leaf], key)
}

/// Accepts one connection and completes the handshake: the ALPN protocol agreed, or the error.
async fn serve_once(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> (u16, JoinHandle<Result<Option<Vec<u8>>, String>>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshake = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    });
    (port, handshake)
}

async fn get(client: reqwest::Client, port: u16) -> Result<reqwest::Response, reqwest::Error> {
    client.get(format!("https://127.0.0.1:{port}/")).send().await
}

#[tokio::test]
async fn a_trusted_server_is_reached_over_h2_and_an_untrusted_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, chain, key) = certificates(dir.path());

    // Trusted (the CA added to the platform's roots): the handshake completes and HTTP/2 is
    // agreed. The server then closes, so the request itself fails; the handshake is the point.
    let (port, handshake) = serve_once(chain.clone(), key.clone_key()).await;
    let trusting = config(vec![ca]).expect("config");
    let client = reqwest::Client::builder().tls_backend_preconfigured(trusting).build().expect("client");
    let _ = get(client, port).await;
    assert_eq!(handshake.await.expect("join"), Ok(Some(b"h2".to_vec())));

    // The shared configuration (platform roots only) refuses the same server: the certificate
    // is verified, not merely accepted.
    let (port, handshake) = serve_once(chain, key).await;
    let err = get(builder().build().expect("client"), port).await.expect_err("an unknown issuer is refused");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    assert!(handshake.await.expect("join").is_err(), "the server saw the handshake fail");
}
