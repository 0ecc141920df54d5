//! Replication metrics as CloudWatch Embedded Metric Format documents: one
//! JSON line in the function's log per source→destination pair and
//! invocation, which CloudWatch Logs turns into metrics with no API call on
//! the hot path.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! Every metric is in namespace [`NAMESPACE`] with dimensions `SetName` and
//! `Pair` (`SOURCE->DESTINATION`); the replicator's are also published by
//! `SetName` and `Region` (the destination), for its region's alarms; the
//! run summary of a repair has `SetName` and `Region` (the region repaired). The names are
//! docs/repair.md's list and the dashboard's and alarms' (`templates/base.yaml`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::engine::{Decision, Outcome, ReplicateError};
use crate::event::S3Notice;

pub const NAMESPACE: &str = "toastrep";

/// From the event's time to the copy's completion, per copied write.
pub const LATENCY: &str = "ReplicationLatency";
pub const COPIES: &str = "Copies";
pub const BYTES_COPIED: &str = "BytesCopied";
pub const DELETES: &str = "DeletesCarried";
/// Notices that needed no write, with dimension `Reason` as well.
pub const SKIPS: &str = "Skips";
pub const FAILURES_RETRYABLE: &str = "FailuresRetryable";
pub const FAILURES_PERMANENT: &str = "FailuresPermanent";
/// Copies (and deletes) the repair made, per pair.
pub const REPAIR_COPIES: &str = "RepairCopies";
/// The run summary, per region repaired.
pub const REPAIR_KEYS_EXAMINED: &str = "RepairKeysExamined";
pub const REPAIR_FAILURES: &str = "RepairFailures";
pub const REPAIR_RUN_COPIES: &str = "RepairRunCopies";

/// EMF allows at most 100 values in one metric's array.
const MAX_VALUES: usize = 100;

/// One pair's numbers for one invocation.
#[derive(Debug, Default, Clone, PartialEq)]
struct Pair {
    latencies_ms: Vec<f64>,
    copies: u64,
    bytes: u64,
    deletes: u64,
    skips: BTreeMap<&'static str, u64>,
    retryable: u64,
    permanent: u64,
}

/// The replicator's metrics for one invocation, by source region.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationMetrics {
    set: String,
    destination: String,
    pairs: BTreeMap<String, Pair>,
}

impl ReplicationMetrics {
    pub fn new(set: &str, destination_region: &str) -> ReplicationMetrics {
        ReplicationMetrics {
            set: set.to_owned(),
            destination: destination_region.to_owned(),
            pairs: BTreeMap::new(),
        }
    }

    /// Counts one notice's result; `now_ms` is when it completed (Unix ms).
    pub fn record(
        &mut self,
        notice: &S3Notice,
        result: &Result<Outcome, ReplicateError>,
        now_ms: i64,
    ) {
        let pair = self.pairs.entry(notice.region.clone()).or_default();
        match result {
            Ok(outcome) => match outcome.decision {
                Decision::Copied => {
                    pair.copies += 1;
                    pair.bytes += outcome.bytes;
                    if let Some(at) = notice.event_time.as_deref().and_then(unix_ms) {
                        pair.latencies_ms.push((now_ms - at).max(0) as f64);
                    }
                }
                Decision::Deleted => pair.deletes += 1,
                other => *pair.skips.entry(other.as_str()).or_default() += 1,
            },
            Err(error) if error.is_retryable() => pair.retryable += 1,
            Err(_) => pair.permanent += 1,
        }
    }

    /// The EMF documents, one per pair and one per pair and skip reason.
    pub fn documents(&self, timestamp_ms: i64) -> Vec<Value> {
        let mut documents = Vec::new();
        for (source, pair) in &self.pairs {
            let name = pair_name(source, &self.destination);
            let mut values: Vec<(&str, &str, Value)> = vec![
                (COPIES, "Count", json!(pair.copies)),
                (BYTES_COPIED, "Bytes", json!(pair.bytes)),
                (DELETES, "Count", json!(pair.deletes)),
                (FAILURES_RETRYABLE, "Count", json!(pair.retryable)),
                (FAILURES_PERMANENT, "Count", json!(pair.permanent)),
            ];
            // Percentiles come from every value: up to 100 per document,
            // so a large batch takes several.
            let mut latencies = pair.latencies_ms.chunks(MAX_VALUES);
            if let Some(first) = latencies.next() {
                values.push((LATENCY, "Milliseconds", json!(first)));
            }
            // Also by destination region alone: the latency alarm of the
            // region's stack cannot know its pairs.
            documents.push(document_in(
                timestamp_ms,
                &[
                    ("SetName", &self.set),
                    ("Pair", &name),
                    ("Region", &self.destination),
                ],
                &[&["SetName", "Pair"], &["SetName", "Region"]],
                &values,
            ));
            for more in latencies {
                documents.push(document(
                    timestamp_ms,
                    &[("SetName", &self.set), ("Pair", &name)],
                    &[(LATENCY, "Milliseconds", json!(more))],
                ));
            }
            for (reason, count) in &pair.skips {
                documents.push(document(
                    timestamp_ms,
                    &[("SetName", &self.set), ("Pair", &name), ("Reason", reason)],
                    &[(SKIPS, "Count", json!(count))],
                ));
            }
        }
        documents
    }
}

/// `SOURCE->DESTINATION`, the `Pair` dimension's value.
pub fn pair_name(source: &str, destination: &str) -> String {
    format!("{source}->{destination}")
}

/// The repair's metrics: copies per pair and the run's summary for the
/// region it repaired.
pub fn repair_documents(
    set: &str,
    region: &str,
    copies_by_source: &BTreeMap<String, u64>,
    keys_examined: u64,
    copies: u64,
    failures: u64,
    timestamp_ms: i64,
) -> Vec<Value> {
    let mut documents: Vec<Value> = copies_by_source
        .iter()
        .map(|(source, count)| {
            let name = pair_name(source, region);
            document(
                timestamp_ms,
                &[("SetName", set), ("Pair", &name)],
                &[(REPAIR_COPIES, "Count", json!(count))],
            )
        })
        .collect();
    documents.push(document(
        timestamp_ms,
        &[("SetName", set), ("Region", region)],
        &[
            (REPAIR_KEYS_EXAMINED, "Count", json!(keys_examined)),
            (REPAIR_RUN_COPIES, "Count", json!(copies)),
            (REPAIR_FAILURES, "Count", json!(failures)),
        ],
    ));
    documents
}

/// One EMF document: the dimension values and metric values as top-level
/// members, described by the `_aws` metadata.
fn document(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
) -> Value {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    document_in(timestamp_ms, dimensions, &[&names], metrics)
}

/// [`document`] with several dimension sets over the same values.
fn document_in(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    sets: &[&[&str]],
    metrics: &[(&str, &str, Value)],
) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), json!(value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).to_owned(), value.clone());
    }
    Value::Object(root)
}

/// An S3 event time (`2024-05-01T12:00:00.123Z`) as Unix milliseconds.
fn unix_ms(time: &str) -> Option<i64> {
    let time: jiff::Timestamp = time.parse().ok()?;
    Some(time.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(region: &str, time: &str) -> S3Notice {
        S3Notice {
            event_name: "ObjectCreated:Put".into(),
            region: region.into(),
            bucket: format!("toastrep-s-{region}-123456789012"),
            key: "k".into(),
            version_id: None,
            etag: None,
            sequencer: None,
            size: Some(5),
            event_time: Some(time.into()),
            principal: None,
        }
    }

    fn outcome(decision: Decision, bytes: u64) -> Result<Outcome, ReplicateError> {
        Ok(Outcome {
            decision,
            bytes,
            restores: 0,
            millis: 1,
        })
    }

    #[test]
    fn copies_carry_their_latency_from_the_event_time_per_pair() {
        let mut metrics = ReplicationMetrics::new("s", "us-east-1");
        let at = unix_ms("2024-05-01T12:00:00.000Z").unwrap();
        metrics.record(
            &notice("eu-west-2", "2024-05-01T12:00:00.000Z"),
            &outcome(Decision::Copied, 5),
            at + 1500,
        );
        metrics.record(
            &notice("eu-west-2", "2024-05-01T12:00:00.000Z"),
            &outcome(Decision::SkippedUpToDate, 0),
            at,
        );
        metrics.record(
            &notice("ap-south-1", "2024-05-01T12:00:00.000Z"),
            &outcome(Decision::Copied, 7),
            at + 20,
        );
        let docs = metrics.documents(at);
        let main = docs
            .iter()
            .find(|d| d["Pair"] == "eu-west-2->us-east-1" && d.get("Reason").is_none())
            .unwrap();
        assert_eq!(main["ReplicationLatency"], json!([1500.0]));
        assert_eq!(main["Copies"], 1);
        assert_eq!(main["BytesCopied"], 5);
        assert_eq!(main["SetName"], "s");
        assert_eq!(
            main["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["SetName", "Pair"], ["SetName", "Region"]])
        );
        assert_eq!(main["Region"], "us-east-1");
        let skip = docs.iter().find(|d| d.get("Reason").is_some()).unwrap();
        assert_eq!(skip["Reason"], "skipped_up_to_date");
        assert_eq!(skip["Skips"], 1);
        assert!(docs.iter().any(|d| d["Pair"] == "ap-south-1->us-east-1"));
    }

    #[test]
    fn more_than_a_hundred_latencies_take_several_documents() {
        let mut metrics = ReplicationMetrics::new("s", "us-east-1");
        for _ in 0..250 {
            metrics.record(
                &notice("eu-west-2", "2024-05-01T12:00:00.000Z"),
                &outcome(Decision::Copied, 1),
                0,
            );
        }
        let arrays: Vec<usize> = metrics
            .documents(0)
            .iter()
            .filter_map(|d| d["ReplicationLatency"].as_array().map(Vec::len))
            .collect();
        assert_eq!(arrays, vec![100, 100, 50]);
    }
}
