//! The test side of OAuth: the authorization server (`shared/tests/oauth/authorization-server.mjs`
//! on npm's `oauth2-mock-server`, started with node) and a resource-server guard for
//! [`super::server::TestServer`]: protected-resource metadata (RFC 9728), JWT checks against the
//! authorization server's keys (signature, issuer, audience = this server, expiry), revocation,
//! `401` with `WWW-Authenticate`, and a record of which token each request carried.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex as StdMutex};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use serde_json::Value;

/// The authorization server, running until dropped.
pub struct AuthServer {
    pub issuer: String,
    counts: String,
    child: Child,
    _stdin: ChildStdin,
}

impl AuthServer {
    /// Starts it with this client secret and token lifetime (seconds).
    pub fn start(client_secret: &str, token_ttl: u64) -> Self {
        let module = std::env::var("OAUTH2_MOCK_SERVER").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            format!("{home}/.cache/teal-serverless/node/node_modules/oauth2-mock-server/dist/index.mjs")
        });
        assert!(std::path::Path::new(&module).exists(), "{module} is missing: scripts/test.sh installs it");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/authorization-server.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("OAUTH2_MOCK_SERVER", &module)
            .env("CLIENT_SECRET", client_secret)
            .env("TOKEN_TTL", token_ttl.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the authorization server");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
        let ready: Value = serde_json::from_str(&line).expect("the ready line is JSON");
        Self {
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            counts: ready["counts"].as_str().expect("counts").to_owned(),
            child,
            _stdin: stdin,
        }
    }

    /// Token requests so far, by grant type (`token` is all of them).
    pub async fn token_requests(&self, grant: &str) -> u64 {
        let counts: Value = reqwest::get(&self.counts).await.expect("counts").json().await.expect("json");
        counts[grant].as_u64().unwrap_or(0)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a protected test server checks and remembers.
#[derive(Debug)]
pub struct Guard {
    issuer: String,
    /// This server's `/mcp` URL: the audience its tokens must name.
    resource: StdMutex<String>,
    keys: StdMutex<Option<Value>>,
    revoked: StdMutex<HashSet<String>>,
    refuse_all: StdMutex<bool>,
    /// Every accepted token's `sub` and the token, in order.
    pub seen: StdMutex<Vec<String>>,
}

impl Guard {
    pub fn new(issuer: &str) -> Arc<Self> {
        Arc::new(Self {
            issuer: issuer.to_owned(),
            resource: StdMutex::new(String::new()),
            keys: StdMutex::new(None),
            revoked: StdMutex::default(),
            refuse_all: StdMutex::new(false),
            seen: StdMutex::default(),
        })
    }

    pub(super) fn set_resource(&self, url: &str) {
        *self.resource.lock().expect("resource") = url.to_owned();
    }

    /// Every token accepted so far is revoked.
    pub fn revoke_seen(&self) {
        let seen = self.seen.lock().expect("seen").clone();
        self.revoked.lock().expect("revoked").extend(seen);
    }

    /// Refuse every token from now on.
    pub fn refuse_all(&self) {
        *self.refuse_all.lock().expect("refuse") = true;
    }

    pub fn tokens_seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    /// The protected-resource metadata (RFC 9728).
    pub(super) fn metadata(&self) -> Value {
        let resource = self.resource.lock().expect("resource").clone();
        serde_json::json!({"resource": resource, "authorization_servers": [self.issuer], "bearer_methods_supported": ["header"]})
    }

    /// Whether `authorization` carries a token this server accepts (recording it if so).
    pub(super) async fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        if *self.refuse_all.lock().expect("refuse") || self.revoked.lock().expect("revoked").contains(token) {
            return false;
        }
        if self.keys.lock().expect("keys").is_none() {
            let keys: Value = match reqwest::get(format!("{}/jwks", self.issuer)).await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => return false,
            };
            *self.keys.lock().expect("keys") = Some(keys);
        }
        let keys = self.keys.lock().expect("keys").clone().unwrap_or_default();
        let ok = verify(token, &keys, &self.issuer, &self.resource.lock().expect("resource"));
        if ok {
            self.seen.lock().expect("seen").push(token.to_owned());
        }
        ok
    }
}

fn b64(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok()
}

/// RS256 signature by one of `keys`, `iss`, `aud` naming `resource`, not expired.
fn verify(token: &str, keys: &Value, issuer: &str, resource: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else { return false };
    let (Some(h), Some(p), Some(sig)) = (b64(header), b64(payload), b64(signature)) else { return false };
    let (Ok(h), Ok(p)) = (serde_json::from_slice::<Value>(&h), serde_json::from_slice::<Value>(&p)) else {
        return false;
    };
    let Some(key) = keys["keys"].as_array().and_then(|ks| ks.iter().find(|k| k["kid"] == h["kid"])) else {
        return false;
    };
    let (Some(n), Some(e)) = (key["n"].as_str().and_then(b64), key["e"].as_str().and_then(b64)) else {
        return false;
    };
    let signed = format!("{header}.{payload}");
    if (RsaPublicKeyComponents { n: &n, e: &e })
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig)
        .is_err()
    {
        return false;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    p["iss"] == issuer && p["aud"] == resource && p["exp"].as_u64().is_some_and(|exp| exp > now)
}
