//! ElastiCache snapshots: moto_server answers CreateSnapshot, DescribeSnapshots, DeleteSnapshot
//! and the tag calls; CopySnapshot, which moto lacks, is answered by a proxy in front of moto
//! with a recorded response (`fixtures/elasticache/`), after checking the request it got.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use teal_core::backup::snapshot::{self, Snapshots};
use teal_core::backup::{BackupId, BackupRequest, BackupService, LogProgress};
use teal_core::settings::BackupSettings;

use crate::helpers::*;

const GROUP: &str = "teal-dev-cache";
const RECORDED: &str = include_str!("../fixtures/elasticache/copy-snapshot-response.xml");

fn id(s: &str) -> BackupId {
    BackupId::parse(s).expect("id")
}

async fn elasticache(sdk: &aws_config::SdkConfig) -> aws_sdk_elasticache::Client {
    let client = aws_sdk_elasticache::Client::new(sdk);
    client
        .create_replication_group()
        .replication_group_id(GROUP)
        .replication_group_description("teal dev")
        .engine("valkey")
        .cache_node_type("cache.t4g.micro")
        .num_cache_clusters(1)
        .send()
        .await
        .expect("create replication group");
    client
}

/// A snapshot made by hand (no tag of ours).
async fn manual_snapshot(client: &aws_sdk_elasticache::Client, name: &str) {
    client
        .create_snapshot()
        .replication_group_id(GROUP)
        .snapshot_name(name)
        .send()
        .await
        .expect("manual snapshot");
}

async fn names(client: &aws_sdk_elasticache::Client) -> Vec<String> {
    let out = client.describe_snapshots().send().await.expect("describe");
    let mut names: Vec<String> =
        out.snapshots().iter().filter_map(|s| s.snapshot_name().map(str::to_owned)).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_only_our_old_snapshots_and_keeps_the_newest() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = elasticache(&sdk).await;
    let snaps = Snapshots::new(&sdk, GROUP);
    for old in ["20200101T0300Z", "20200102T0300Z"] {
        assert_eq!(snaps.create(&id(old)).await.expect("create"), snapshot::name(GROUP, &id(old)));
    }
    // Not ours: made by hand, and one named like ours but without our tag.
    manual_snapshot(&client, "before-upgrade").await;
    let lookalike = snapshot::name(GROUP, &id("20190101T0000Z"));
    manual_snapshot(&client, &lookalike).await;

    // Only old ones of ours: the newest of them stays.
    let report = snaps.maintain(Duration::from_secs(7 * 86_400), None).await;
    assert_eq!(report.pruned, [snapshot::name(GROUP, &id("20200101T0300Z"))]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    // Creating again is idempotent; a new one makes the last old one prunable.
    let today = BackupId::now();
    snaps.create(&today).await.expect("create");
    snaps.create(&today).await.expect("created already: fine");
    let report = snaps.maintain(Duration::from_secs(7 * 86_400), None).await;
    assert_eq!(report.pruned, [snapshot::name(GROUP, &id("20200102T0300Z"))]);
    let mut want = vec!["before-upgrade".to_owned(), lookalike, snapshot::name(GROUP, &today)];
    want.sort();
    assert_eq!(names(&client).await, want, "snapshots we did not make are untouched");
}

/// A proxy to moto that answers CopySnapshot itself with the recorded response and keeps the
/// request bodies it answered.
async fn proxy(moto: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let copies = Arc::new(Mutex::new(Vec::new()));
    let (upstream, seen) = (moto.to_owned(), copies.clone());
    let http = reqwest::Client::new();
    let app =
        axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (upstream, seen, http) = (upstream.clone(), seen.clone(), http.clone());
            async move {
                let text = String::from_utf8_lossy(&body).into_owned();
                if text.contains("Action=CopySnapshot") {
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(text);
                    return Response::builder()
                        .header("content-type", "text/xml")
                        .body(Body::from(RECORDED))
                        .expect("response");
                }
                let mut req = http.request(method, format!("{upstream}{uri}")).body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        req = req.header(name, value);
                    }
                }
                match req.send().await {
                    Ok(r) => {
                        let status = r.status();
                        let ct = r.headers().get("content-type").cloned();
                        let bytes = r.bytes().await.unwrap_or_default();
                        let mut resp = (status, bytes).into_response();
                        if let Some(ct) = ct {
                            resp.headers_mut().insert("content-type", ct);
                        }
                        resp
                    }
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, copies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_snapshots_of_ours_are_exported_once_with_copy_snapshot() {
    let moto = Moto::start();
    let (endpoint, copies) = proxy(&moto.endpoint).await;
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ));
    let sdk = teal_core::secrets::aws_sdk_config_from(loader, Some(&endpoint)).await;
    let client = elasticache(&sdk).await;
    manual_snapshot(&client, "before-upgrade").await;
    let s3 = teal_core::config::s3::s3_client(&sdk);
    s3.create_bucket().bucket("teal-backups").send().await.expect("bucket");

    // A whole backup run: snapshot, nothing else to copy but the (empty) configs, then upkeep.
    s3.create_bucket().bucket("teal-configs").send().await.expect("bucket");
    let settings = BackupSettings {
        bucket: Some("teal-backups".into()),
        configs: Some(teal_core::settings::S3Prefix { bucket: "teal-configs".into(), prefix: String::new() }),
        replication_group: Some(GROUP.into()),
        export_bucket: Some("teal-exports".into()),
        ..BackupSettings::default()
    };
    let service = BackupService::new(&sdk, settings, None);
    let req = BackupRequest { id: id("20261123T0300Z"), trigger: "test".into(), deadline: None };
    let report = service.backup(&req, &LogProgress).await.expect("backup");
    let steps = report.snapshot.expect("snapshot steps");
    let ours = snapshot::name(GROUP, &id("20261123T0300Z"));
    assert_eq!(steps.created.as_deref(), Some(ours.as_str()));
    assert_eq!(steps.exported, std::slice::from_ref(&ours));
    let seen = copies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen.len(), 1, "only ours is exported, not the manual snapshot");
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(seen[0].as_bytes()).into_owned().collect();
    assert_eq!(form.get("SourceSnapshotName"), Some(&ours));
    assert_eq!(form.get("TargetSnapshotName"), Some(&ours));
    assert_eq!(form.get("TargetBucket").map(String::as_str), Some("teal-exports"));
    let manifest = service
        .open_manifest(&teal_core::backup::BackupRef {
            bucket: "teal-backups".into(),
            id: id("20261123T0300Z"),
        })
        .await
        .expect("manifest");
    assert_eq!(manifest.snapshot.map(|s| s.name), Some(ours.clone()));

    // Tagged as exported: the next run (a repeated event) does not export it again.
    let again = service.backup(&req, &LogProgress).await.expect("again");
    assert!(!again.written);
    assert!(again.snapshot.expect("steps").exported.is_empty());
    assert_eq!(copies.lock().unwrap_or_else(|p| p.into_inner()).len(), 1);
}
