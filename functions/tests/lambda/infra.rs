//! What `infra/template.yaml` promises about backups, beyond what cfn-lint and `sam validate`
//! check (`scripts/lint-infra.sh`): the schedule, the retries, the failure queue, the alarms,
//! the lifecycle rule, and policies that name their actions and resources.

use yaml_serde::Value;

use crate::helpers::repo;

fn template() -> Value {
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    yaml_serde::from_str(&text).expect("the template is YAML")
}

/// `!Ref X` / `!GetAtt X.Y` as (tag, value).
fn tagged(v: &Value) -> (String, String) {
    match v {
        Value::Tagged(t) => (t.tag.to_string(), t.value.as_str().unwrap_or_default().to_owned()),
        other => panic!("expected a tagged value, got {other:?}"),
    }
}

#[test]
fn the_backup_runs_on_a_schedule_with_retries_a_failure_queue_and_alarms() {
    let t = template();
    let r = &t["Resources"];
    let backup = &r["BackupFunction"];
    assert_eq!(backup["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("teal-backup"));
    let p = &backup["Properties"];
    let event = &p["Events"]["Nightly"];
    assert_eq!(event["Type"].as_str(), Some("Schedule"));
    assert_eq!(tagged(&event["Properties"]["Schedule"]), ("!Ref".into(), "BackupSchedule".into()));
    assert_eq!(t["Parameters"]["BackupSchedule"]["Default"].as_str(), Some("cron(0 3 * * ? *)"), "daily");
    assert_eq!(tagged(&event["Properties"]["DeadLetterConfig"]["Arn"]).1, "BackupFailureQueue.Arn");
    let invoke = &p["EventInvokeConfig"];
    assert_eq!(invoke["MaximumRetryAttempts"].as_u64(), Some(2));
    assert_eq!(invoke["DestinationConfig"]["OnFailure"]["Type"].as_str(), Some("SQS"));
    assert_eq!(tagged(&invoke["DestinationConfig"]["OnFailure"]["Destination"]).1, "BackupFailureQueue.Arn");
    let errors = &r["BackupErrorsAlarm"]["Properties"];
    assert_eq!(
        (errors["Namespace"].as_str(), errors["MetricName"].as_str()),
        (Some("AWS/Lambda"), Some("Errors"))
    );
    assert_eq!(tagged(&errors["Dimensions"][0]["Value"]), ("!Ref".into(), "BackupFunction".into()));
    let queued = &r["BackupFailuresQueuedAlarm"]["Properties"];
    assert_eq!(queued["MetricName"].as_str(), Some("ApproximateNumberOfMessagesVisible"));
    assert_eq!(tagged(&p["Environment"]["Variables"]["TA_BACKUP_REPLICATION_GROUP"]).1, "Cache");
    assert_eq!(tagged(&p["MemorySize"]).1, "BackupMemory");
    assert_eq!(t["Parameters"]["BackupMemory"]["Default"].as_u64(), Some(256));
    assert_eq!(r["RestoreFunction"]["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("teal-restore"));
    assert!(r["RestoreFunction"]["Properties"]["Events"].is_null(), "restore runs only when invoked by hand");

    let rules = &r["BackupBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0];
    assert_eq!(tagged(&rules["ExpirationInDays"]), ("!Ref".into(), "BackupRetentionDays".into()));
    assert_eq!(rules["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_u64(), Some(7));
}

#[test]
fn backup_and_restore_policies_name_their_actions_and_resources() {
    let t = template();
    for function in ["BackupFunction", "RestoreFunction"] {
        let policies = t["Resources"][function]["Properties"]["Policies"].as_sequence().expect("policies");
        for statement in policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten() {
            let actions: Vec<&str> = match &statement["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Sequence(a) => a.iter().filter_map(Value::as_str).collect(),
                other => panic!("{function}: unexpected Action {other:?}"),
            };
            assert!(
                actions.iter().all(|a| !a.ends_with('*')),
                "{function}: no wildcard actions: {actions:?}"
            );
            let sid = statement["Sid"].as_str().unwrap_or_default();
            if statement["Resource"].as_str() == Some("*") {
                assert_eq!(
                    sid, "FindOurSnapshots",
                    "{function}: only describing snapshots needs every resource"
                );
                assert!(
                    actions
                        .iter()
                        .all(|a| a.starts_with("elasticache:Describe") || a.starts_with("elasticache:List"))
                );
            }
            if function == "RestoreFunction" {
                assert!(
                    actions.iter().all(|a| !a.contains("Delete")),
                    "a restore deletes nothing: {actions:?}"
                );
            }
            if actions.contains(&"s3:PutObject") && function == "BackupFunction" {
                assert_eq!(
                    tagged(&statement["Resource"]),
                    ("!Sub".into(), "${BackupBucket.Arn}/backups/*".into())
                );
            }
            if actions.contains(&"elasticache:DeleteSnapshot") {
                let condition = &statement["Condition"]["StringEquals"]["aws:ResourceTag/teal:backup"];
                assert_eq!(
                    tagged(condition),
                    ("!Ref".into(), "Cache".into()),
                    "only snapshots tagged as ours"
                );
            }
        }
    }
}

/// Every metric name our code records (`teal_core::telemetry::metrics`).
fn recorded_metrics() -> Vec<&'static str> {
    use teal_core::telemetry::metrics as m;
    vec![
        m::REQUESTS,
        m::REQUEST_DURATION,
        m::REQUEST_LLM_DURATION,
        m::REQUEST_TOOL_DURATION,
        m::LLM_CALLS,
        m::LLM_RETRIES,
        m::LLM_INPUT_TOKENS,
        m::LLM_OUTPUT_TOKENS,
        m::LLM_DURATION,
        m::TOOL_CALLS,
        m::TOOL_DURATION,
        m::TOOL_CALLS_DENIED,
        m::MCP_CONNECTION_FAILURES,
        m::MCP_RECONNECTS,
        m::MCP_CATALOG_LOOKUPS,
        m::MCP_SERVER_UP,
        m::MCP_PROBE_DURATION,
        m::CACHE_REQUESTS,
        m::SESSIONS_WRITTEN,
        m::RATE_LIMITED,
        m::REDIS_BYPASS,
        m::REDIS_UNAVAILABLE,
        m::COLD_STARTS,
        m::INIT_DURATION,
        m::MAX_RSS,
    ]
}

/// The `teal_…` names a text mentions.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("teal_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

#[test]
fn the_guides_alerts_are_alarms_on_one_topic_and_the_dashboard_shows_what_we_record() {
    let t = template();
    let r = &t["Resources"];
    let alarms = [
        "ApiErrorRateAlarm",
        "McpServerDownAlarm",
        "InvokeMemoryAlarm",
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "CacheCpuAlarm",
        "CacheMemoryAlarm",
        "BackupErrorsAlarm",
        "BackupFailuresQueuedAlarm",
    ];
    for name in alarms {
        let actions = r[name]["Properties"]["AlarmActions"].as_sequence().unwrap_or_else(|| panic!("{name}"));
        assert_eq!(tagged(&actions[0]), ("!Ref".into(), "AlarmTopic".into()), "{name} notifies the topic");
    }
    assert_eq!(r["AlarmEmailSubscription"]["Properties"]["Protocol"].as_str(), Some("email"));
    assert_eq!(t["Globals"]["Function"]["Tracing"].as_str(), Some("Active"), "X-Ray active tracing");

    let probe = &r["McpProbeFunction"];
    assert_eq!(probe["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("teal-mcp-probe"));
    let schedule = &probe["Properties"]["Events"]["EveryMinute"];
    assert_eq!(
        (schedule["Type"].as_str(), schedule["Properties"]["Schedule"].as_str()),
        (Some("Schedule"), Some("rate(1 minute)"))
    );
    let down = &r["McpServerDownAlarm"]["Properties"];
    assert_eq!(down["Metrics"][0]["Period"].as_u64(), Some(60));
    assert_eq!(down["EvaluationPeriods"].as_u64(), Some(1), "0 for one minute");
    assert_eq!(down["TreatMissingData"].as_str(), Some("breaching"), "a silent probe is a down server");
    let memory = &r["InvokeMemoryAlarm"]["Properties"];
    assert_eq!((memory["Threshold"].as_u64(), memory["EvaluationPeriods"].as_u64()), (Some(80), Some(10)));
    let errors = &r["ApiErrorRateAlarm"]["Properties"];
    assert_eq!(errors["Metrics"][1]["MetricStat"]["Period"].as_u64(), Some(300), "over 5 minutes");

    // The dashboard body is JSON once CloudFormation substitutes ${…}.
    let body = match &r["Dashboard"]["Properties"]["DashboardBody"] {
        Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().expect("a string").to_owned(),
        other => panic!("DashboardBody is not a !Sub string: {other:?}"),
    };
    let substituted = body.replace("${AWS::Region}", "us-east-1").replace("${Cache}", "teal-dev-cache");
    assert!(!substituted.contains("${"), "only known substitutions");
    let dashboard: serde_json::Value = serde_json::from_str(&substituted).expect("the dashboard is JSON");
    let titles: Vec<String> = dashboard["widgets"]
        .as_array()
        .expect("widgets")
        .iter()
        .map(|w| w["properties"]["title"].as_str().expect("title").to_lowercase())
        .collect();
    for topic in ["requests", "latency", "tool", "llm", "cache"] {
        assert!(titles.iter().any(|t| t.contains(topic)), "a {topic} widget in {titles:?}");
    }
    let known = recorded_metrics();
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("template");
    for name in metric_names(&text) {
        assert!(known.contains(&name.as_str()), "the template names {name}, which nothing records");
    }
    assert!(metric_names(&text).len() > 20);
}

#[test]
fn the_streaming_route_is_behind_the_rest_api_authorizer_and_bedrock_is_limited_to_the_model_arns() {
    let t = template();
    let r = &t["Resources"];
    let stream = &r["StreamFunction"]["Properties"];
    assert!(stream["FunctionUrlConfig"].is_null(), "no function URL outside the authorizer");
    let event = &stream["Events"]["Stream"];
    assert_eq!(event["Type"].as_str(), Some("Api"));
    assert_eq!(tagged(&event["Properties"]["RestApiId"]).1, "StreamApi");
    assert_eq!(event["Properties"]["ResponseTransferMode"].as_str(), Some("RESPONSE_STREAM"));
    let api = &r["StreamApi"]["Properties"];
    let auth = &api["Auth"];
    assert_eq!(auth["DefaultAuthorizer"].as_str(), Some("ApiKeyAuthorizer"));
    let authorizer = &auth["Authorizers"]["ApiKeyAuthorizer"];
    assert_eq!(tagged(&authorizer["FunctionArn"]).1, "AuthorizerFunction.Arn", "the HTTP API's authorizer");
    assert_eq!(authorizer["FunctionPayloadType"].as_str(), Some("REQUEST"));
    assert_eq!(authorizer["Identity"]["ReauthorizeEvery"].as_u64(), Some(0));
    assert_eq!(tagged(&api["MethodSettings"][0]["ThrottlingRateLimit"]).1, "ApiRateLimit");
    assert_eq!(tagged(&auth["UsagePlan"]["Throttle"]["BurstLimit"]).1, "ApiBurstLimit");
    for function in ["InvokeFunction", "StreamFunction"] {
        let policies = r[function]["Properties"]["Policies"].as_sequence().expect("policies");
        let bedrock = policies
            .iter()
            .find_map(|p| match p {
                Value::Tagged(t) if t.tag == "!If" => Some(t.value[1]["Statement"][0].clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{function}: a Bedrock statement"));
        assert_eq!(bedrock["Action"][0].as_str(), Some("bedrock:InvokeModel"));
        assert_eq!(bedrock["Action"][1].as_str(), Some("bedrock:InvokeModelWithResponseStream"));
        assert_eq!(
            tagged(&bedrock["Resource"]).1,
            "BedrockModelArns",
            "{function}: the configured models only"
        );
    }
}

#[test]
fn the_template_holds_what_a_production_account_needs() {
    let t = template();
    let r = t["Resources"].as_mapping().expect("resources");
    let of_type = |ty: &str| -> Vec<(String, &Value)> {
        r.iter()
            .filter(|(_, v)| v["Type"].as_str() == Some(ty))
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
            .collect()
    };
    // Every function invoked asynchronously (a schedule) keeps its failures somewhere.
    for (name, f) in of_type("AWS::Serverless::Function") {
        let events = f["Properties"]["Events"].as_mapping().cloned().unwrap_or_default();
        for (_, e) in events.iter().filter(|(_, e)| e["Type"].as_str() == Some("Schedule")) {
            assert!(!e["Properties"]["DeadLetterConfig"].is_null(), "{name}: schedule without a DLQ");
            let on_failure = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
            assert!(!on_failure.is_null(), "{name}: async invoke without an on-failure destination");
        }
        // Reserved concurrency: the function's own, or the Globals' parameter.
        let own = &f["Properties"]["ReservedConcurrentExecutions"];
        assert!(
            !own.is_null() || !t["Globals"]["Function"]["ReservedConcurrentExecutions"].is_null(),
            "{name}: no reserved concurrency"
        );
    }
    for p in ["InvokeReservedConcurrency", "StreamReservedConcurrency", "UtilityReservedConcurrency"] {
        assert_eq!(t["Parameters"][p]["Default"].as_i64(), Some(-1), "{p}: unreserved unless asked");
    }
    // Every MCP service scales on CPU (70 %) and memory (80 %) between parameters, circuit breaker on.
    let services = of_type("AWS::ECS::Service");
    assert_eq!(services.len(), 2);
    for (name, s) in &services {
        let breaker = &s["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"];
        assert_eq!(
            (breaker["Enable"].as_bool(), breaker["Rollback"].as_bool()),
            (Some(true), Some(true)),
            "{name}"
        );
        let target = of_type("AWS::ApplicationAutoScaling::ScalableTarget")
            .into_iter()
            .find(|(_, v)| format!("{:?}", v["Properties"]["ResourceId"]).contains(&format!("{name}.Name")))
            .unwrap_or_else(|| panic!("{name}: no scalable target"));
        assert_eq!(tagged(&target.1["Properties"]["MinCapacity"]).1, "McpMinCount");
        assert_eq!(tagged(&target.1["Properties"]["MaxCapacity"]).1, "McpMaxCount");
        let mut targets: Vec<(String, u64)> = of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
            .into_iter()
            .filter(|(_, v)| tagged(&v["Properties"]["ScalingTargetId"]).1 == target.0)
            .map(|(_, v)| {
                let c = &v["Properties"]["TargetTrackingScalingPolicyConfiguration"];
                let metric =
                    c["PredefinedMetricSpecification"]["PredefinedMetricType"].as_str().unwrap_or_default();
                (metric.to_owned(), c["TargetValue"].as_u64().unwrap_or_default())
            })
            .collect();
        targets.sort();
        assert_eq!(
            targets,
            [
                ("ECSServiceAverageCPUUtilization".into(), 70),
                ("ECSServiceAverageMemoryUtilization".into(), 80)
            ],
            "{name}"
        );
    }
    // Private subnets without NAT: endpoints for Secrets Manager and S3 behind one parameter.
    let endpoints: Vec<String> = of_type("AWS::EC2::VPCEndpoint")
        .into_iter()
        .map(|(_, v)| format!("{:?}", v["Properties"]["ServiceName"]))
        .collect();
    for service in ["secretsmanager", "s3", "elasticache", "logs", "ecr.api", "ecr.dkr"] {
        assert!(endpoints.iter().any(|e| e.contains(&format!("}}.{service}\""))), "{service}: {endpoints:?}");
    }
    // Every log group can be encrypted with the KMS key parameter.
    for (name, g) in of_type("AWS::Logs::LogGroup") {
        assert!(format!("{:?}", g["Properties"]["KmsKeyId"]).contains("LogsKmsKeyArn"), "{name}");
    }
    // An optional WAF web ACL on the streaming REST API's stage (the HTTP API cannot carry one).
    let waf = &t["Resources"]["StreamApiWebAcl"];
    assert_eq!(waf["Type"].as_str(), Some("AWS::WAFv2::WebACLAssociation"));
    assert_eq!(waf["Condition"].as_str(), Some("StreamWaf"));
    assert_eq!(tagged(&waf["Properties"]["WebACLArn"]).1, "StreamWebAclArn");
    assert!(
        tagged(&waf["Properties"]["ResourceArn"])
            .1
            .contains("/restapis/${StreamApi}/stages/${StreamApi.Stage}")
    );
    // Where data lives, a stack deletion or replacement keeps it.
    for name in ["Cache", "ConfigBucket", "BackupBucket", "McpFileSystem"] {
        let res = &t["Resources"][name];
        assert!(
            matches!(res["DeletionPolicy"].as_str(), Some("Retain" | "Snapshot"))
                && matches!(res["UpdateReplacePolicy"].as_str(), Some("Retain" | "Snapshot")),
            "{name}"
        );
    }
}
