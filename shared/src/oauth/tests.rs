//! The OAuth layer without a network: records, keys and what a caller may see.

use std::sync::Arc;

use super::records::{Sealed, credential_key, key};
use super::seal::Seal;
use crate::config::parse_documents;
use crate::store::{MemoryTokenStore, TokenStore};

fn server(extra: &str) -> crate::config::McpServerConfig {
    let yaml = format!(
        "apiVersion: tealagents/v1alpha1\nkind: Chat\nname: t\nversion: 1\nspec:\n  agent:\n    model: m\n    \
         system_prompt: s\n    mcp_servers:\n      - name: gh\n        url: http://127.0.0.1:1/mcp\n        \
         auth_server: http://127.0.0.1:2\n        scopes: [repo]\n{extra}"
    );
    parse_documents("test", &yaml).expect("agent").agents.remove(0).agents[0].mcp_servers[0].clone()
}

#[test]
fn each_caller_has_its_own_record_and_keys_reveal_nothing() {
    let cfg = server("");
    let oauth = cfg.oauth.clone().expect("oauth");
    let (alice, bob, platform) = (
        credential_key(&cfg, &oauth, Some("alice")),
        credential_key(&cfg, &oauth, Some("bob")),
        credential_key(&cfg, &oauth, None),
    );
    assert_ne!(alice, bob);
    assert_ne!(alice, platform);
    for k in [&alice, &bob, &platform, &key("flow", &["state-123"])] {
        assert_eq!(k.len(), 64, "a hex SHA-256");
        assert!(!k.contains("alice") && !k.contains("127.0.0.1"));
    }
}

#[tokio::test]
async fn records_are_sealed_in_the_store() {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::default());
    let sealed = Sealed { store: store.clone(), seal: Arc::new(Seal::ephemeral().expect("key")) };
    sealed
        .save("k", &serde_json::json!({"access_token": "tok-SECRET"}), std::time::Duration::from_secs(60))
        .await
        .expect("save");
    let raw = store.get("k").await.expect("get").expect("stored");
    assert!(!raw.windows(6).any(|w| w == b"SECRET"), "no token in clear in the store");
    let back: serde_json::Value = sealed.load("k").await.expect("load").expect("present");
    assert_eq!(back["access_token"], "tok-SECRET");
    let stranger = Sealed { store, seal: Arc::new(Seal::ephemeral().expect("other key")) };
    assert!(
        stranger.load::<serde_json::Value>("k").await.expect("load").is_none(),
        "another key opens nothing"
    );
}
