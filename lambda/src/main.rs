//! toastrep's replicator Lambda: wires `lambda_runtime` to
//! `toastrep-replication`. All decisions live in the library, which the CLI
//! shares; this file only reads configuration and maps results.

mod repair;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use toastrep_replication::clock::{SystemClock, now_ms};
use toastrep_replication::engine::KeyNames;
use toastrep_replication::function::breaker::Breaker;
use toastrep_replication::function::config::FunctionConfig;
use toastrep_replication::function::handler::{HandleError, handle_sns_event_observed};
use toastrep_replication::function::metrics::ReplicationMetrics;
use toastrep_replication::store::aws::{CloudWatchAlarm, S3Artifacts, SqsHeldDeletes};
use toastrep_replication::store::s3::RegionalClients;
use toastrep_replication::{Bucket, Decision, Replicator, SdkStore, SetBuckets, deadline};

use repair::Repair;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // One JSON object per line, no colours: CloudWatch Logs stores lines, and
    // Logs Insights parses JSON lines into fields (`decision`, `key`, ...).
    tracing_subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let sdk_config = aws_config::load_from_env().await;
    let mut s3_config = aws_sdk_s3::config::Builder::from(&sdk_config);
    // Custom endpoints (emulators, S3-compatible stores) need path-style
    // addressing; real S3 wants virtual-hosted style, so only then.
    if sdk_config.endpoint_url().is_some() {
        s3_config = s3_config.force_path_style(true);
    }

    let config = FunctionConfig::from_env()?;
    let destination = Bucket::new(&config.region, &config.destination_bucket);
    let set = SetBuckets::new(&config.set_name, &config.account);
    let key = config.marker_keys.current().clone();
    let log_keys = config.log_keys.clone();
    let settings = config.copy.clone();
    tracing::info!(
        destination_bucket = %destination.name,
        destination_region = %destination.region,
        multipart_threshold = settings.multipart_threshold,
        part_size = settings.part_size,
        concurrency = settings.concurrency,
        carry_deletes = config.deletes.is_some(),
        "replicator starting"
    );
    // Every call names the set's own account as the bucket owner, so a
    // bucket of the same name elsewhere is never read or written.
    let store = SdkStore::new(RegionalClients::new(s3_config.clone().build()))
        .expecting_owner(&set.account);
    let mut replicator = Replicator::new(store, config.marker_keys.clone(), set, settings)
        .carrying_deletes(config.deletes.is_some())
        .naming_keys(std::sync::Arc::new(log_keys.clone()));
    // Deletes carried from other regions pass the mass-delete breaker.
    if let Some(breaker) = &config.deletes {
        replicator = replicator.gating_deletes(std::sync::Arc::new(Breaker {
            region: config.region.clone(),
            key: key.clone(),
            log_keys,
            per_minute: breaker.per_minute,
            artifacts: S3Artifacts {
                s3: aws_sdk_s3::Client::from_conf(s3_config.clone().build()),
                bucket: breaker.bucket.clone(),
                account: config.account.clone(),
            },
            held: SqsHeldDeletes {
                sqs: aws_sdk_sqs::Client::new(&sdk_config),
                queue_url: breaker.held_deletes_queue_url.clone(),
            },
            alarm: CloudWatchAlarm {
                cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk_config),
                name: breaker.alarm.clone(),
            },
            clock: std::sync::Arc::new(SystemClock),
        }));
    }
    if let Some(role_id) = &config.role_id {
        replicator = replicator.writing_as_role(role_id);
    }
    // The state machine's steps: the same engine, scanning ranges.
    let repair = Repair::new(
        &replicator,
        config.region.clone(),
        format!(
            "toastrep-{}-{}-{}-code",
            config.set_name, config.region, config.account
        ),
        config.function_name.clone(),
        config.repair_invocation,
        config.repair_key_concurrency,
        aws_sdk_s3::Client::from_conf(s3_config.clone().build()),
        aws_sdk_lambda::Client::new(&sdk_config),
        aws_sdk_sfn::Client::new(&sdk_config),
    );

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        if repair::is_repair(&event.payload) {
            let deadline = deadline_of(&event.context);
            return repair.handle(event.payload, deadline).await;
        }
        handle(&replicator, &destination, event).await
    }))
    .await
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

/// An Err makes the platform retry the whole event (twice for async
/// invokes) and then dead-letter it; retrying is safe because copied records
/// come back `skipped_up_to_date`.
///
/// A malformed or non-S3 message is an Err too (`MalformedEvent`), logged
/// with the raw event. Deliberately so: returning Ok would drop it silently,
/// while an Err sends it, after the platform's bounded two retries (never
/// more: SNS invokes asynchronously), to the dead-letter queue, where a human
/// can read it and `replay` it.
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

/// The invocation's deadline, in Unix milliseconds (the replicator's clock).
fn deadline_of(context: &lambda_runtime::Context) -> i64 {
    i64::try_from(context.deadline).unwrap_or(i64::MAX)
}
