//! The authorizer, fed `events/authorizer.json` (payload 2.0 REQUEST).

use serde_json::{Value, json};
use teal_core::auth::ApiKeyAuthorizer;
use teal_core::lambda::authorizer::{AuthorizerEvent, authorize};

use crate::helpers::{KEYS_SECRET, PARTNER_KEY, event_text, secrets};

fn checker() -> ApiKeyAuthorizer {
    ApiKeyAuthorizer::new(secrets(), KEYS_SECRET, std::time::Duration::from_secs(60))
}

fn event_with(edit: impl FnOnce(&mut Value)) -> AuthorizerEvent {
    let mut v: Value = serde_json::from_str(&event_text("authorizer.json")).expect("JSON");
    edit(&mut v);
    serde_json::from_value(v).expect("a payload 2.0 authorizer event")
}

async fn decide(event: AuthorizerEvent) -> Value {
    serde_json::to_value(authorize(&checker(), &event).await).expect("serializable")
}

#[tokio::test]
async fn the_event_key_is_authorized_and_the_caller_goes_in_the_context() {
    let answer = decide(event_with(|_| {})).await;
    assert_eq!(answer, json!({"isAuthorized": true, "context": {"caller": "ci-bot"}}));
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_not_authorized() {
    let wrong = decide(event_with(|v| v["headers"]["x-api-key"] = json!("teal-local-test-key-0002"))).await;
    assert_eq!(wrong, json!({"isAuthorized": false, "context": {}}));
    let missing = decide(event_with(|v| {
        v["headers"].as_object_mut().expect("headers").remove("x-api-key");
    }))
    .await;
    assert_eq!(missing["isAuthorized"], false);
}

#[tokio::test]
async fn a_key_is_limited_to_its_agents() {
    let other_agent = decide(event_with(|v| v["headers"]["x-api-key"] = json!(PARTNER_KEY))).await;
    assert_eq!(other_agent["isAuthorized"], false, "partner may call chat only");
    let chat = decide(event_with(|v| {
        v["headers"]["x-api-key"] = json!(PARTNER_KEY);
        v["pathParameters"] = json!({"name": "chat", "version": "1.0"});
    }))
    .await;
    assert_eq!(chat, json!({"isAuthorized": true, "context": {"caller": "partner"}}));
}

#[test]
fn the_invoke_event_carries_the_context_the_authorizer_returns() {
    let invoke: Value = serde_json::from_str(&event_text("invoke.json")).expect("JSON");
    assert_eq!(invoke["requestContext"]["authorizer"]["lambda"]["caller"], "ci-bot");
    let auth: Value = serde_json::from_str(&event_text("authorizer.json")).expect("JSON");
    assert_eq!(auth["headers"]["x-api-key"], invoke["headers"]["x-api-key"]);
    let sched: Value = serde_json::from_str(&event_text("backup-schedule.json")).expect("JSON");
    assert_eq!(
        (sched["source"].as_str(), sched["detail-type"].as_str()),
        (Some("aws.events"), Some("Scheduled Event"))
    );
}

/// `events/authorizer-rest.json`: the REST API's request authorizer event (the streaming route).
async fn decide_rest(edit: impl FnOnce(&mut Value)) -> Value {
    let mut v: Value = serde_json::from_str(&event_text("authorizer-rest.json")).expect("JSON");
    edit(&mut v);
    teal_core::lambda::authorizer::authorize_any(&checker(), v).await.expect("a REST authorizer event")
}

#[tokio::test]
async fn the_rest_request_authorizer_allows_the_method_it_was_asked_about_with_the_caller() {
    let arn = "arn:aws:execute-api:us-east-1:123456789012:rest123abc/prod/POST/fs-assistant/0.1/sse";
    let allowed = decide_rest(|_| {}).await;
    assert_eq!(
        allowed,
        json!({
            "principalId": "ci-bot",
            "policyDocument": {"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}]},
            "context": {"caller": "ci-bot"},
        })
    );
    let wrong = decide_rest(|v| v["headers"]["X-Api-Key"] = json!("teal-local-test-key-0002")).await;
    assert_eq!(wrong["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(wrong["context"], json!({}));
    let partner = decide_rest(|v| v["headers"]["X-Api-Key"] = json!(PARTNER_KEY)).await;
    assert_eq!(partner["policyDocument"]["Statement"][0]["Effect"], "Deny", "partner may call chat only");
    // The HTTP API's shape still gets its simple response from the same entry point.
    let v2: Value = serde_json::from_str(&event_text("authorizer.json")).expect("JSON");
    let simple = teal_core::lambda::authorizer::authorize_any(&checker(), v2).await.expect("v2 event");
    assert_eq!(simple, json!({"isAuthorized": true, "context": {"caller": "ci-bot"}}));
}
