//! toastrep's replicator Lambda: wires `lambda_runtime` to
//! `toastrep-replication`. All decisions live in the library, which the CLI
//! shares; this file only reads configuration and maps results.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use std::sync::Arc;

use serde_json::{Value, json};
use toastrep_replication::clock::{SystemClock, now_ms};
use toastrep_replication::engine::KeyNames;
use toastrep_replication::function::breaker::Breaker;
use toastrep_replication::function::config::FunctionConfig;
use toastrep_replication::function::handler::{HandleError, handle_sns_event_observed};
use toastrep_replication::function::metrics::ReplicationMetrics;
use toastrep_replication::function::repair::steps::{
    RepairSteps, StepError, StepsSetup, is_repair,
};
use toastrep_replication::store::aws::{
    CloudWatchAlarm, S3Artifacts, SdkControlPlane, SqsHeldDeletes,
};
use toastrep_replication::store::s3::RegionalClients;
use toastrep_replication::{Bucket, Decision, Replicator, SdkStore, SetBuckets, deadline};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let sdk_config = aws_config::load_from_env().await;
    let config = FunctionConfig::from_env()?;
    let destination = Bucket::new(&config.region, &config.destination_bucket);
    tracing::info!(
        destination_bucket = %destination.name,
        destination_region = %destination.region,
        multipart_threshold = config.copy.multipart_threshold,
        part_size = config.copy.part_size,
        concurrency = config.copy.concurrency,
        carry_deletes = config.deletes.is_some(),
        "replicator starting"
    );
    let replicator = replicator(&sdk_config, &config);
    let repair = repair_steps(&sdk_config, &config, &replicator);

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        if is_repair(&event.payload) {
            let deadline = deadline_of(&event.context);
            return step(&repair, event.payload, deadline).await;
        }
        handle(&replicator, &destination, event).await
    }))
    .await
}

/// One JSON object per line, no colours: CloudWatch Logs stores lines, and
/// Logs Insights parses JSON lines into fields (`decision`, `key`, ...).
fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Custom endpoints (emulators, S3-compatible stores) need path-style
/// addressing; real S3 wants virtual-hosted style, so only then.
fn s3_config(sdk_config: &aws_config::SdkConfig) -> aws_sdk_s3::Config {
    let builder = aws_sdk_s3::config::Builder::from(sdk_config);
    match sdk_config.endpoint_url() {
        Some(_) => builder.force_path_style(true).build(),
        None => builder.build(),
    }
}

/// The replicator for this region's bucket, gating carried deletes through
/// the mass-delete breaker when the set carries deletes.
fn replicator(sdk_config: &aws_config::SdkConfig, config: &FunctionConfig) -> Replicator<SdkStore> {
    let set = SetBuckets::new(&config.set_name, &config.account);
    // Every call names the set's own account as the bucket owner, so a
    // bucket of the same name elsewhere is never read or written.
    let store =
        SdkStore::new(RegionalClients::new(s3_config(sdk_config))).expecting_owner(&set.account);
    let mut replicator =
        Replicator::new(store, config.marker_keys.clone(), set, config.copy.clone())
            .carrying_deletes(config.deletes.is_some())
            .naming_keys(Arc::new(config.log_keys.clone()));
    if let Some(breaker) = &config.deletes {
        replicator = replicator.gating_deletes(Arc::new(Breaker {
            region: config.region.clone(),
            key: config.marker_keys.current().clone(),
            log_keys: config.log_keys.clone(),
            per_minute: breaker.per_minute,
            artifacts: S3Artifacts {
                s3: aws_sdk_s3::Client::from_conf(s3_config(sdk_config)),
                bucket: breaker.bucket.clone(),
                account: config.account.clone(),
            },
            held: SqsHeldDeletes {
                sqs: aws_sdk_sqs::Client::new(sdk_config),
                queue_url: breaker.held_deletes_queue_url.clone(),
            },
            alarm: CloudWatchAlarm {
                cloudwatch: aws_sdk_cloudwatch::Client::new(sdk_config),
                name: breaker.alarm.clone(),
            },
            clock: Arc::new(SystemClock),
        }));
    }
    match &config.role_id {
        Some(role_id) => replicator.writing_as_role(role_id),
        None => replicator,
    }
}

/// The state machine's steps: the same engine, scanning ranges.
fn repair_steps<'a>(
    sdk_config: &aws_config::SdkConfig,
    config: &FunctionConfig,
    replicator: &'a Replicator<SdkStore>,
) -> RepairSteps<'a, SdkStore, S3Artifacts, SdkControlPlane> {
    let artifact_bucket = format!(
        "toastrep-{}-{}-{}-code",
        config.set_name, config.region, config.account
    );
    RepairSteps::new(
        replicator,
        StepsSetup {
            region: config.region.clone(),
            artifacts: S3Artifacts {
                s3: aws_sdk_s3::Client::from_conf(s3_config(sdk_config)),
                bucket: artifact_bucket.clone(),
                account: config.account.clone(),
            },
            artifact_bucket,
            function: config.function_name.clone(),
            budget_ms: i64::try_from(config.repair_invocation.as_millis()).unwrap_or(i64::MAX),
            concurrency: config.repair_key_concurrency,
            control: SdkControlPlane {
                lambda: aws_sdk_lambda::Client::new(sdk_config),
                sfn: aws_sdk_sfn::Client::new(sdk_config),
            },
            clock: Arc::new(SystemClock),
        },
    )
}

/// Replicates every notice in the event. An Err makes the platform retry
/// the whole event (twice for async invokes) and then dead-letter it;
/// retrying is safe because copied records come back `skipped_up_to_date`.
///
/// A malformed or non-S3 message is an Err too (`MalformedEvent`), logged
/// with the raw event. Deliberately so: returning Ok would drop it silently,
/// while an Err sends it, after the platform's bounded two retries (never
/// more: SNS invokes asynchronously), to the dead-letter queue, where a human
/// can read it and `replay` it. The two retries cost three parses of a bad
/// message and no S3 call; telling the platform "do not retry this one" is
/// not possible per invocation.
async fn handle(
    replicator: &Replicator<SdkStore>,
    destination: &Bucket,
    event: LambdaEvent<Value>,
) -> Result<Value, Diagnostic> {
    // Multipart copies stop, and abort their uploads, before the platform
    // stops the function at its timeout.
    let deadline = deadline_of(&event.context);
    let mut metrics = ReplicationMetrics::new(&replicator.set().set, &destination.region);
    let handled = deadline::within(
        deadline,
        handle_sns_event_observed(replicator, destination, &event.payload, |notice, result| {
            metrics.record(notice, result, now_ms())
        }),
    )
    .await;
    // CloudWatch Logs turns these lines into metrics (Embedded Metric
    // Format): no API call on the hot path.
    for document in metrics.documents(now_ms()) {
        println!("{document}");
    }
    match handled {
        Ok(outcomes) => {
            let count = |d: Decision| outcomes.iter().filter(|o| o.decision == d).count();
            Ok(json!({
                "records": outcomes.len(),
                "copied": count(Decision::Copied),
                "skipped_copy": count(Decision::SkippedCopy),
                "skipped_up_to_date": count(Decision::SkippedUpToDate),
                "skipped_gone": count(Decision::SkippedGone),
                "restored": count(Decision::Restored),
                "deleted": count(Decision::Deleted),
                "skipped_deleted": count(Decision::SkippedDeleted),
                "kept_local": count(Decision::KeptLocal),
                "held": count(Decision::Held),
                "not_replicable": outcomes
                    .iter()
                    .filter(|o| matches!(o.decision, Decision::NotReplicable(_)))
                    .count(),
                "restores": outcomes.iter().map(|o| o.restores).sum::<u32>(),
                "bytes": outcomes.iter().map(|o| o.bytes).sum::<u64>(),
            }))
        }
        Err(error) => Err(diagnostic(&error, replicator.key_names())),
    }
}

/// The error type names what the dead-letter reader should do next.
fn diagnostic(error: &HandleError, names: &dyn KeyNames) -> Diagnostic {
    let error_type = match error {
        HandleError::Malformed(_) => "MalformedEvent",
        HandleError::Records { .. } if error.is_retryable() => "ReplicationFailedRetryable",
        HandleError::Records { .. } => "ReplicationFailed",
    };
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: error.naming_keys(names),
    }
}

/// Runs one repair step; its metric documents go to the log (EMF), and an
/// error carries the type the state machine retries on (or not).
async fn step<S, A, C>(
    repair: &RepairSteps<'_, S, A, C>,
    payload: Value,
    deadline: i64,
) -> Result<Value, Diagnostic>
where
    S: toastrep_replication::ObjectStore,
    A: toastrep_replication::store::services::Artifacts,
    C: toastrep_replication::store::services::ControlPlane,
{
    let stepped = repair.handle(payload, deadline).await;
    let metrics = match &stepped {
        Ok(stepped) => stepped.metrics.as_slice(),
        Err(StepError::RepairIncomplete { metrics, .. }) => metrics.as_slice(),
        Err(_) => &[],
    };
    for document in metrics {
        println!("{document}");
    }
    stepped.map(|s| s.answer).map_err(|error| Diagnostic {
        error_type: error.error_type().to_owned(),
        error_message: error.to_string(),
    })
}

/// The invocation's deadline, in Unix milliseconds (the replicator's clock).
fn deadline_of(context: &lambda_runtime::Context) -> i64 {
    i64::try_from(context.deadline).unwrap_or(i64::MAX)
}
