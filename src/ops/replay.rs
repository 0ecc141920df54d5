//! `toastrep replay`: re-run the replication of dead-lettered events.
//!
//! Each region's function dead-letters the events it failed on into that
//! region's queue (`toastrep-NAME-dlq`). A message is replayed with the same
//! library code the function runs (`handle_sns_event`), into the same
//! destination (that region's bucket), and deleted only once every record in
//! it succeeded. Messages that still fail, or cannot be parsed, stay in the
//! queue and are made visible again at once for the next attempt.
//!
//! Two message shapes are accepted:
//! - AWS's: the body is the original event, the error in message attributes
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq>);
//! - a Lambda-destination style wrapper, whose `requestPayload` holds the
//!   event, which is what the emulator (ministack) puts in a dead-letter queue.

use std::borrow::Cow;
use std::collections::HashSet;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use futures::{StreamExt, stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toastrep_replication::function::handler::{HandleError, handle_sns_event};
use toastrep_replication::{
    Bucket, Replicator, SdkStore, SetBuckets, parse_s3_message, parse_sns_event,
};

use crate::aws::AwsOptions;
use crate::aws::functions::Function;
use crate::aws::queues::{Queue, Received, Take};
use crate::bail_input;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::model::regions::{self, RegionSearch};
use crate::ops::context::SetContext;
use crate::ops::discover::{self, Located};
use crate::ops::sync::set_replicator;
use crate::progress::Reporter;

/// Long enough that a message being replayed is not received again in the
/// same run; messages left in the queue are made visible again at the end.
const VISIBILITY_SECONDS: i32 = 300;
/// Messages replayed at once per region (one ReceiveMessage batch).
const BATCH: i32 = 10;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReplayResult {
    pub name: String,
    pub dry_run: bool,
    pub regions: Vec<RegionReplay>,
    pub replayed: usize,
    pub failing: usize,
    pub unparseable: usize,
    pub refused: usize,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RegionReplay {
    pub region: Region,
    pub queue: String,
    /// Messages received.
    pub messages: usize,
    /// Replayed and deleted (on a dry run: would be replayed).
    pub replayed: usize,
    /// Some record still fails: left in the queue.
    pub failing: usize,
    /// Not an event toastrep can replay: left in the queue.
    pub unparseable: usize,
    /// Not from the set's own topics: never acted on, left in the queue
    /// for a person to look at.
    pub refused: usize,
    /// The region's queue could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// One row per message that was left in the queue, with the reason.
    pub left: Vec<LeftMessage>,
}

impl RegionReplay {
    /// A region's replay before any message is read.
    pub fn new(region: Region, queue: String) -> Self {
        Self {
            region,
            queue,
            messages: 0,
            replayed: 0,
            failing: 0,
            unparseable: 0,
            refused: 0,
            error: None,
            left: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct LeftMessage {
    pub message_id: String,
    /// failing, unparseable or refused.
    pub outcome: Cow<'static, str>,
    pub reason: String,
    /// The function's own error, from AWS's ErrorMessage attribute, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
}

/// Replays the dead-letter queues of set `name` (only `only`'s when given).
pub async fn replay(
    options: &AwsOptions,
    name: &SetName,
    only: Option<Region>,
    dry_run: bool,
    reporter: &dyn Reporter,
) -> Result<ReplayResult> {
    // The whole set even when --region picks one queue: a message is
    // checked against every member region, its sources' too.
    let search = match only {
        Some(region) => RegionSearch::These(regions::regions_in(region.partition()).collect()),
        None => RegionSearch::WholePartition,
    };
    let Located { set, found } = discover::locate(options, name, &search).await?;
    let aws = &set.aws;
    let regions = discover::require_deployed(&found, name)?;
    if let Some(region) = only
        && !regions.contains(&region)
    {
        bail_input!(
            "set '{name}' is not deployed in {region}: pass one of its regions to --region, or leave it out"
        );
    }
    let queues: Vec<&Region> = regions
        .iter()
        .filter(|region| only.is_none_or(|only| only == **region))
        .collect();
    let marker_key = crate::ops::marker_key::for_set(&set, &regions).await?;
    // The function's own engine, on the set's buckets in its regions only:
    // a message naming any other bucket is refused, whoever put it in the
    // queue (and so is one that did not come from the set's topics).
    let replicator = set_replicator(
        &set,
        &regions,
        &marker_key,
        // The deployed part size and concurrency, as the functions copy.
        &found.settings().unwrap_or_default().copy_settings(),
    );
    // A set that carries deletes gives a dead-lettered delete back to the
    // function, whose mass-delete breaker counts (and may hold) it: the
    // CLI has no breaker of its own to pass it through.
    let carry_deletes = found.settings().unwrap_or_default().replicate_deletes;
    let results = join_all(queues.into_iter().map(|region| async {
        reporter.started(region, &name.dead_letter_queue(), "replaying");
        let deletes_to = carry_deletes.then(|| aws.function(*region, &name.function()));
        let result = replay_region(&set, &replicator, *region, dry_run, deletes_to).await;
        let result = result.unwrap_or_else(|error| RegionReplay {
            error: Some(format!("{error:#}")),
            ..RegionReplay::new(*region, name.dead_letter_queue())
        });
        let ok = result.error.is_none() && result.left.is_empty();
        reporter.finished(
            region,
            &name.dead_letter_queue(),
            &format!(
                "{} replayed, {} failing, {} unparseable, {} refused",
                result.replayed, result.failing, result.unparseable, result.refused
            ),
            ok,
        );
        result
    }))
    .await;
    let sum = |f: fn(&RegionReplay) -> usize| results.iter().map(f).sum::<usize>();
    let result = ReplayResult {
        name: name.to_string(),
        dry_run,
        replayed: sum(|r| r.replayed),
        failing: sum(|r| r.failing),
        unparseable: sum(|r| r.unparseable),
        refused: sum(|r| r.refused),
        ok: results
            .iter()
            .all(|r| r.error.is_none() && r.left.is_empty()),
        regions: results,
    };
    Ok(result)
}

/// What became of one message.
enum Outcome {
    Replayed,
    Left(LeftMessage),
}

/// The region's function: where a dead-lettered delete goes.
type DeletesTo = Option<Function>;

async fn replay_region(
    set: &SetContext,
    replicator: &Replicator<SdkStore>,
    region: Region,
    dry_run: bool,
    deletes_to: DeletesTo,
) -> Result<RegionReplay> {
    let SetContext { aws, name, .. } = set;
    let queue = name.dead_letter_queue();
    let dead_letters = aws.queue(region, &queue).await?;
    let destination = replicator.set().bucket(&region);
    let mut result = RegionReplay::new(region, queue.clone());
    let mut seen = HashSet::new();
    let mut to_release = Vec::new();
    loop {
        let received = dead_letters
            .take(Take {
                hide_seconds: VISIBILITY_SECONDS,
                // Long polling: an empty answer means an empty queue.
                wait_seconds: 1,
                attributes: &["All"],
            })
            .await
            .with_context(|| format!("receiving from {queue} in {region}"))?;
        let fresh: Vec<Received> = received
            .into_iter()
            .filter(|m| seen.insert(m.id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        let outcomes: Vec<(Received, Outcome)> = stream::iter(fresh)
            .map(|message| async {
                let outcome = replay_message(
                    replicator,
                    &destination,
                    &message,
                    dry_run,
                    &dead_letters,
                    &deletes_to,
                )
                .await;
                (message, outcome)
            })
            .buffer_unordered(BATCH as usize)
            .collect()
            .await;
        for (message, outcome) in outcomes {
            result.messages += 1;
            match outcome {
                Outcome::Replayed => {
                    result.replayed += 1;
                    if dry_run {
                        to_release.push(message);
                    }
                }
                Outcome::Left(left) => {
                    match &*left.outcome {
                        "unparseable" => result.unparseable += 1,
                        "refused" => result.refused += 1,
                        _ => result.failing += 1,
                    }
                    result.left.push(left);
                    to_release.push(message);
                }
            }
        }
    }
    if let Err(error) = dead_letters
        .show_again(to_release.iter().map(|m| m.receipt.as_str()))
        .await
    {
        // Harmless: the messages reappear when the timeout ends.
        tracing::warn!(error = %error, "could not make left messages visible again");
    }
    Ok(result)
}

/// Replays one message; deletes it only if every record succeeded.
async fn replay_message(
    replicator: &Replicator<SdkStore>,
    destination: &Bucket,
    message: &Received,
    dry_run: bool,
    dead_letters: &Queue,
    deletes_to: &DeletesTo,
) -> Outcome {
    let message_id = message.id.clone();
    let function_error = message.attributes.get("ErrorMessage").cloned();
    let left = |outcome: &'static str, reason: String| {
        Outcome::Left(LeftMessage {
            message_id: message_id.clone(),
            outcome: outcome.into(),
            reason,
            function_error: function_error.clone(),
        })
    };
    let event = match event_of(&message.body) {
        Ok(event) => event,
        Err(reason) => return left("unparseable", reason),
    };
    if let Err(reason) = from_set_topics(&event, replicator.set()) {
        return left("refused", reason);
    }
    if dry_run {
        return Outcome::Replayed;
    }
    let deletes = parse_sns_event(&event)
        .map(|notices| notices.iter().any(|n| n.is_delete_marker()))
        .unwrap_or(false);
    match (deletes, deletes_to) {
        (true, Some(function)) => match function.invoke(event.to_string()).await {
            Ok(out) if out.function_error.is_none() => {}
            Ok(out) => {
                return left(
                    "failing",
                    format!("the function failed the delete again: {}", out.payload),
                );
            }
            Err(error) => {
                return left("failing", format!("giving the delete to it: {error}"));
            }
        },
        _ => match handle_sns_event(replicator, destination, &event).await {
            Ok(_) => {}
            Err(HandleError::Malformed(error)) => return left("unparseable", error.to_string()),
            Err(error) => return left("failing", error.to_string()),
        },
    }
    if message.receipt.is_empty() {
        return left(
            "failing",
            "the message came without a receipt handle".into(),
        );
    }
    match dead_letters.delete(&message.receipt).await {
        Ok(()) => Outcome::Replayed,
        // Replayed, but still in the queue: replaying it again is harmless
        // (copied records come back up to date).
        Err(error) => left("failing", format!("replayed, but {error}")),
    }
}

/// The Lambda SNS event a dead-lettered message carries, checked to be one
/// toastrep can replay.
fn event_of(body: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let event = match value.get("requestPayload") {
        // The wrapper may carry the payload as an object or as JSON text.
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|e| format!("requestPayload is not JSON: {e}"))?
        }
        Some(payload) => payload.clone(),
        None => value,
    };
    parse_sns_event(&event).map_err(|e| e.to_string())?;
    Ok(event)
}

/// Checks that every record of `event` came from the set's own event topic
/// in a member region, and that the S3 notices it carries are of that
/// topic's region: anyone who can send to the queue could forge the rest.
fn from_set_topics(event: &Value, set: &SetBuckets) -> Result<(), String> {
    let records = event["Records"].as_array().map_or(&[][..], Vec::as_slice);
    for record in records {
        let arn = record["Sns"]["TopicArn"].as_str().unwrap_or_default();
        let Some(region) = set.topic_region(arn) else {
            return Err(format!(
                "not from set {}'s event topics: it names topic {arn:?}",
                set.set
            ));
        };
        let message = record["Sns"]["Message"].as_str().unwrap_or_default();
        let notices = parse_s3_message(message).map_err(|e| e.to_string())?;
        if let Some(stray) = notices.iter().find(|n| n.region != region) {
            return Err(format!(
                "topic {arn} is in {region}, but its message names a bucket in {}",
                stray.region
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_MESSAGE: &str = r#"{"Records":[{"eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","versionId":"v","eTag":"e"}}}]}"#;

    fn sns_event() -> Value {
        serde_json::json!({"Records":[{"EventSource":"aws:sns","Sns":{"MessageId":"m","Message":S3_MESSAGE}}]})
    }

    #[test]
    fn accepts_the_aws_shape() {
        let body = sns_event().to_string();
        assert_eq!(event_of(&body).unwrap(), sns_event());
    }

    #[test]
    fn accepts_the_emulator_wrapper() {
        let wrapped = serde_json::json!({
            "requestContext": {"condition": "RetriesExhausted"},
            "requestPayload": sns_event(),
            "responsePayload": {"errorType": "ReplicationFailed"},
        });
        assert_eq!(event_of(&wrapped.to_string()).unwrap(), sns_event());
        let as_text = serde_json::json!({"requestPayload": sns_event().to_string()});
        assert_eq!(event_of(&as_text.to_string()).unwrap(), sns_event());
    }

    #[test]
    fn only_the_sets_own_topics_in_its_regions_are_replayed() {
        let set = SetBuckets::new("media", "111122223333").within(&["us-east-1".to_owned()]);
        let from = |topic: &str, message: &str| serde_json::json!({"Records":[{"Sns":{"TopicArn": topic, "Message": message}}]});
        let ours = "arn:aws:sns:us-east-1:111122223333:toastrep-media-events";
        from_set_topics(&from(ours, S3_MESSAGE), &set).unwrap();
        for (topic, why) in [
            (
                "arn:aws:sns:us-east-1:111122223333:other-events",
                "another topic",
            ),
            (
                "arn:aws:sns:us-east-1:444455556666:toastrep-media-events",
                "another account",
            ),
            (
                "arn:aws:sns:eu-west-2:111122223333:toastrep-media-events",
                "not a member region",
            ),
            ("", "no topic"),
        ] {
            let err = from_set_topics(&from(topic, S3_MESSAGE), &set).unwrap_err();
            assert!(
                err.contains("not from set media's event topics"),
                "{why}: {err}"
            );
        }
        // The set's topic, carrying a notice of another region's bucket.
        let both = SetBuckets::new("media", "111122223333")
            .within(&["us-east-1".to_owned(), "eu-west-2".to_owned()]);
        let elsewhere = ours.replace("us-east-1", "eu-west-2");
        let err = from_set_topics(&from(&elsewhere, S3_MESSAGE), &both).unwrap_err();
        assert!(err.contains("names a bucket in us-east-1"), "{err}");
    }

    #[test]
    fn says_why_a_body_is_unparseable() {
        assert!(event_of("not json").unwrap_err().contains("not JSON"));
        let not_s3 = serde_json::json!({"Records":[{"Sns":{"Message":"{\"hello\":1}"}}]});
        assert!(event_of(&not_s3.to_string()).is_err());
    }
}
