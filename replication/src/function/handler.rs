//! Handling one Lambda invocation: an SNS event carrying S3 notifications.
//! Here rather than in the Lambda crate so the CLI can replay dead-lettered
//! events through exactly the same code.

use futures::StreamExt;

use crate::engine::{KeyNames, Outcome, PlainKeys, ReplicateError, Replicator};
use crate::event::{EventError, S3Notice, parse_sns_event};
use crate::store::{Bucket, ObjectStore};

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Permanent: retrying cannot fix the message.
    #[error("{}", malformed(.0))]
    Malformed(#[from] EventError),
    /// Some records failed; the others were attempted. Retrying the whole
    /// event is safe: records already copied come back `skipped_up_to_date`.
    #[error("{}", records_failed(*.total, .failures, &PlainKeys))]
    Records {
        total: usize,
        failures: Vec<(S3Notice, ReplicateError)>,
    },
}

impl HandleError {
    /// Whether another attempt may succeed (any failed record retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            HandleError::Malformed(_) => false,
            HandleError::Records { failures, .. } => failures.iter().any(|(_, e)| e.is_retryable()),
        }
    }
}

impl HandleError {
    /// The message, with object keys named by `names` (the function's
    /// logs and answers name them by a hash).
    pub fn naming_keys(&self, names: &dyn KeyNames) -> String {
        match self {
            HandleError::Malformed(error) => {
                malformed(error.naming_keys(&|key: &str| names.name(key).into_owned()))
            }
            HandleError::Records { total, failures } => records_failed(*total, failures, names),
        }
    }
}

fn malformed(error: impl std::fmt::Display) -> String {
    format!("malformed event: {error}")
}

fn records_failed(
    total: usize,
    failures: &[(S3Notice, ReplicateError)],
    names: &dyn KeyNames,
) -> String {
    let retryable = failures.iter().filter(|(_, e)| e.is_retryable()).count();
    let summary = failures
        .iter()
        .map(|(_, e)| e.naming_keys(names))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{} of {total} records failed ({retryable} retryable): {summary}",
        failures.len()
    )
}

/// Parses a raw Lambda SNS event and replicates every notice in it into
/// `dest`, a few at a time. Every record is attempted before any failure is
/// reported, so one bad record does not hold the others back.
pub async fn handle_sns_event<S: ObjectStore>(
    replicator: &Replicator<S>,
    dest: &Bucket,
    event: &serde_json::Value,
) -> Result<Vec<Outcome>, HandleError> {
    handle_sns_event_observed(replicator, dest, event, |_, _| {}).await
}

/// [`handle_sns_event`], showing `observe` every notice's result as it is
/// known (the function's metrics).
pub async fn handle_sns_event_observed<S: ObjectStore>(
    replicator: &Replicator<S>,
    dest: &Bucket,
    event: &serde_json::Value,
    observe: impl FnMut(&S3Notice, &Result<Outcome, ReplicateError>),
) -> Result<Vec<Outcome>, HandleError> {
    let notices = parse_sns_event(event).inspect_err(|error| {
        // What was delivered goes in the log, where someone reading the
        // error looks first (the dead-letter queue keeps the whole event).
        // Not the SNS envelope: its signature and subscription URLs are no
        // help, and the unsubscribe URL is a capability. And where keys are
        // logged hashed, not the messages either: they hold object keys.
        let messages: Vec<&str> = event["Records"]
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .filter_map(|r| r["Sns"]["Message"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let names = replicator.key_names();
        let error = error.naming_keys(&|key: &str| names.name(key).into_owned());
        if names.hides_keys() {
            let bytes: Vec<usize> = messages.iter().map(|m| m.len()).collect();
            tracing::error!(target: "toastrep::event", error = %error, message_bytes = ?bytes, "malformed event");
        } else {
            tracing::error!(target: "toastrep::event", error = %error, messages = ?messages, "malformed event");
        }
    })?;
    handle_notices_observed(replicator, dest, notices, observe).await
}

/// Replicates `notices` into `dest`, a few at a time; every one is
/// attempted before any failure is reported.
pub async fn handle_notices<S: ObjectStore>(
    replicator: &Replicator<S>,
    dest: &Bucket,
    notices: Vec<S3Notice>,
) -> Result<Vec<Outcome>, HandleError> {
    handle_notices_observed(replicator, dest, notices, |_, _| {}).await
}

async fn handle_notices_observed<S: ObjectStore>(
    replicator: &Replicator<S>,
    dest: &Bucket,
    notices: Vec<S3Notice>,
    mut observe: impl FnMut(&S3Notice, &Result<Outcome, ReplicateError>),
) -> Result<Vec<Outcome>, HandleError> {
    let total = notices.len();
    let results: Vec<(S3Notice, Result<Outcome, ReplicateError>)> = futures::stream::iter(notices)
        .map(|notice| async move {
            let result = replicator.replicate(&notice, dest).await;
            (notice, result)
        })
        .buffer_unordered(replicator.settings().concurrency.max(1))
        .collect()
        .await;
    let mut outcomes = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for (notice, result) in results {
        observe(&notice, &result);
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => failures.push((notice, error)),
        }
    }
    if failures.is_empty() {
        Ok(outcomes)
    } else {
        Err(HandleError::Records { total, failures })
    }
}
