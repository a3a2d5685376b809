//! The functions that are not HTTP endpoints: `backup` (an EventBridge schedule) and `restore`
//! (invoked by hand). Like [`super::Endpoint`], a closed set with one boot path: settings read
//! once, the secret store and the AWS SDK configuration built once, the [`BackupService`]'s
//! clients made once per container.
//!
//! The backup handler names the backup after the event's `time` (the scheduled minute), so a
//! repeated delivery of one event lands on the same backup and writes nothing the second time;
//! its claim holds until the invocation's deadline. A failure ends the invocation with an error
//! whose `errorType` is `Backup.Retryable` or `Backup.Fatal` and whose message is the cause
//! chain. The restore handler takes `{"backup": "s3://bucket/backups/ID" | "latest",
//! "overwrite": false, "dry_run": false}`, answers the [`RestoreReport`] and the readiness checks
//! that follow a restore (the MCP servers of every agent, the stores).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

use crate::api::types::Readiness;
use crate::backup::{
    BackupError, BackupId, BackupRef, BackupReport, BackupRequest, BackupService, LogProgress, RestoreReport,
    RestoreRequest,
};
use crate::bootstrap::{self, BootError};
use crate::secrets::{SecretStore, aws_sdk_config};
use crate::settings::{Env, Settings};
use crate::telemetry::error_chain;

/// The functions that run jobs rather than serve HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Scheduled by EventBridge: back up the configs and Redis, snapshot ElastiCache.
    Backup,
    /// Invoked by hand: restore a backup, then check readiness.
    Restore,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Backup => "backup",
            Job::Restore => "restore",
        }
    }
}

/// What a job function keeps across invocations.
pub struct JobApp {
    pub service: BackupService,
    settings: Settings,
    env: Env,
    secrets: Arc<dyn SecretStore>,
    sdk: aws_config::SdkConfig,
}

/// Builds `job`'s app from the process environment: call once, before [`run`].
pub async fn boot(job: Job) -> Result<Arc<JobApp>, BootError> {
    let env = Env::process();
    let app = match Settings::read(&env) {
        Ok(settings) => {
            let (secrets, sdk) = bootstrap::build_secrets(&settings).await;
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => aws_sdk_config(settings.aws_endpoint_url.as_deref()).await,
            };
            boot_with(job, env, settings, secrets, sdk).await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = &app {
        tracing::error!(error = %error_chain(e), job = job.name(), "cold start failed");
    }
    app
}

/// [`boot`] with every part given (tests, other hosts).
pub async fn boot_with(
    job: Job,
    env: Env,
    settings: Settings,
    secrets: Arc<dyn SecretStore>,
    sdk: aws_config::SdkConfig,
) -> Result<Arc<JobApp>, BootError> {
    let service = BackupService::connect(&settings, secrets.clone(), &sdk).await?;
    if job == Job::Backup {
        // Checked now rather than at the first event: a function that cannot back up fails
        // its cold start, which the errors alarm sees at once.
        service.bucket()?;
    }
    tracing::info!(job = job.name(), "cold start finished");
    crate::telemetry::init_finished();
    Ok(Arc::new(JobApp { service, settings, env, secrets, sdk }))
}

fn diagnostic(e: &BackupError) -> Diagnostic {
    Diagnostic { error_type: e.error_type().to_owned(), error_message: error_chain(e) }
}

/// The invocation's deadline, when the runtime gave one.
fn deadline(ctx: &lambda_runtime::Context) -> Option<DateTime<Utc>> {
    let t = UNIX_EPOCH.checked_add(Duration::from_millis(ctx.deadline))?;
    Some(DateTime::<Utc>::from(t)).filter(|d| *d > crate::backup::names::utc_now())
}

/// One scheduled backup.
pub async fn handle_backup(
    app: &JobApp,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<BackupReport, Diagnostic> {
    let e = &event.payload;
    let time = e.time.unwrap_or_else(crate::backup::names::utc_now);
    let rule = e.resources.as_ref().and_then(|r| r.first()).map_or("-", String::as_str);
    let req = BackupRequest {
        id: BackupId::at(time),
        trigger: format!("{} from {rule} (event {})", e.detail_type, e.id.as_deref().unwrap_or("-")),
        deadline: deadline(&event.context),
    };
    // Boxed: the backup's future is deep enough to overflow the compiler's layout depth inline.
    Box::pin(app.service.backup(&req, &LogProgress)).await.map_err(|e| diagnostic(&e))
}

/// The restore function's input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreEvent {
    /// `s3://bucket/backups/ID`, or `latest` (the newest complete one in `TA_BACKUP_BUCKET`).
    pub backup: String,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// What the restore function answers.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreAnswer {
    pub restore: RestoreReport,
    /// The readiness checks after the restore (absent in a dry run).
    pub readiness: Option<Readiness>,
}

fn parse_restore(v: serde_json::Value) -> Result<RestoreEvent, BackupError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = if path == "." { inner.to_string() } else { format!("{path}: {inner}") };
        BackupError::BadInput { field: "restore event", detail }
    })
}

/// One restore.
pub async fn handle_restore(
    app: &JobApp,
    event: LambdaEvent<serde_json::Value>,
) -> Result<RestoreAnswer, Diagnostic> {
    let run = async {
        let input = parse_restore(event.payload)?;
        let backup = match input.backup.as_str() {
            "latest" => app.service.latest(app.service.bucket()?).await?,
            url => BackupRef::parse(url)?,
        };
        let req = RestoreRequest { backup, overwrite: input.overwrite, dry_run: input.dry_run };
        let restore = Box::pin(app.service.restore(&req, &LogProgress)).await?;
        let readiness = if req.dry_run {
            None
        } else {
            let checked = Box::pin(bootstrap::check_readiness(
                &app.settings,
                &app.env,
                app.secrets.clone(),
                Some(app.sdk.clone()),
            ))
            .await;
            match checked {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "readiness could not be checked after the restore");
                    None
                }
            }
        };
        Ok::<_, BackupError>(RestoreAnswer { restore, readiness })
    };
    run.await.map_err(|e| diagnostic(&e))
}

/// Serves `job`'s events until the runtime stops; with the EMF exporter installed, its
/// metrics are flushed after each event.
pub async fn run(job: Job, app: Arc<JobApp>) -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::layers::TracingLayer;
    match job {
        Job::Backup => {
            let handler = service_fn(move |event: LambdaEvent<EventBridgeEvent>| {
                let app = app.clone();
                async move { handle_backup(&app, event).await }
            });
            let runtime = lambda_runtime::Runtime::new(handler).layer(TracingLayer::new());
            Box::pin(runtime.layer(crate::telemetry::runtime::layer()).run()).await
        }
        Job::Restore => {
            let handler = service_fn(move |event: LambdaEvent<serde_json::Value>| {
                let app = app.clone();
                async move { handle_restore(&app, event).await }
            });
            let runtime = lambda_runtime::Runtime::new(handler).layer(TracingLayer::new());
            Box::pin(runtime.layer(crate::telemetry::runtime::layer()).run()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_events_name_the_field_at_fault() {
        let ok = parse_restore(serde_json::json!({"backup": "latest"})).expect("minimal");
        assert!(!ok.overwrite && !ok.dry_run);
        let cases = [
            (serde_json::json!({}), "restore event: missing field `backup`"),
            (
                serde_json::json!({"backup": "latest", "overwrite": "yes"}),
                "restore event: overwrite: invalid type",
            ),
            (
                serde_json::json!({"backup": "latest", "dryrun": true}),
                "restore event: dryrun: unknown field `dryrun`",
            ),
        ];
        for (event, want) in cases {
            let e = parse_restore(event).expect_err("bad").to_string();
            assert!(e.starts_with(want), "{e}");
        }
        assert_eq!(BackupError::NothingToBackUp.error_type(), "Backup.Fatal");
    }
}
