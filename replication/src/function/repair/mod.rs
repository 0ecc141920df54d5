//! The cloud repair's protocol: what the state machine asks the function,
//! and what the function keeps of each range, with no I/O. Each region's
//! state machine repairs its own region's bucket from every member region:
//!
//! 1. **plan**: splits the key space into ranges (learned from the last run,
//!    or by first character) and writes them as the Distributed Map's
//!    manifest;
//! 2. **range**, once per map item and again until it says `done`: scans
//!    its range with [`crate::engine::scan`] until its time budget, keeping
//!    what it did as a [`RangePart`];
//! 3. **report**: adds the parts up into a [`RunReport`], the run's
//!    metrics, and the next run's range bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::{KeyRange, KeyRepair};

pub mod steps;

/// What the state machine asks the function; `toastrep` names the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "toastrep", rename_all = "kebab-case")]
pub enum RepairRequest {
    RepairPlan {
        /// The execution's name: the run's id.
        run: String,
        /// The execution's ARN (`$$.Execution.Id`): the function acts on a
        /// step only while that execution of the set's state machine runs.
        #[serde(default)]
        execution: String,
        /// The execution's input (`{"deep": true}` examines every key).
        #[serde(default)]
        input: serde_json::Value,
    },
    RepairRange(RangeRequest),
    RepairReport {
        run: String,
        #[serde(default)]
        execution: String,
        /// The map's error, when it failed (too many ranges failed).
        #[serde(default)]
        error: Option<serde_json::Value>,
    },
}

/// One range's repair, resumed until `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub run: String,
    /// The ARN of the execution whose map sent it (see
    /// [`RepairRequest::RepairPlan`]).
    #[serde(default)]
    pub execution: String,
    /// The member regions, this one among them.
    pub regions: Vec<String>,
    pub index: usize,
    pub range: KeyRange,
    /// Where the last invocation of this range stopped.
    #[serde(default)]
    pub resume_after: Option<String>,
    /// Invocations of this range so far.
    #[serde(default)]
    pub part: u32,
    /// Every this many keys, one is kept as a candidate range bound.
    pub sample_every: u64,
    /// Examine every key, not only those whose listings differ.
    #[serde(default)]
    pub deep: bool,
    /// Set on the answer: the range is finished.
    #[serde(default)]
    pub done: bool,
    /// Some part of this range so far failed a key or a region.
    #[serde(default)]
    pub failed: bool,
}

/// The plan's answer, the map's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub run: String,
    pub regions: Vec<String>,
    /// The manifest's key in the artifact bucket: a JSON array of
    /// [`ManifestItem`].
    pub manifest: String,
    pub ranges: usize,
    pub sample_every: u64,
    /// Unix milliseconds.
    pub started_ms: i64,
}

/// One Distributed Map item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    pub index: usize,
    pub range: KeyRange,
}

/// A copy or delete a range made, for the report's list (capped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeCopy {
    pub key: String,
    pub source: String,
    pub reason: crate::protocol::Reason,
    pub bytes: u64,
}

/// A key a range could not repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeFailure {
    pub key: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub error: String,
}

/// What a range invocation, or a whole run, repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub keys_scanned: u64,
    pub keys_examined: u64,
    pub copies_made: u64,
    pub bytes_copied: u64,
    pub deletes_made: u64,
    /// Deletes the regions' mass-delete breakers hold: not carried.
    #[serde(default)]
    pub deletes_held: u64,
    pub keys_differing_by_delete: u64,
    pub copies_by_source: BTreeMap<String, u64>,
    /// The first [`LISTED`] copies, by key.
    pub copies: Vec<RangeCopy>,
    pub deletes: Vec<String>,
    pub failure_count: u64,
    /// The first [`LISTED`] failures.
    pub failures: Vec<RangeFailure>,
    /// Regions whose listing failed, with the error.
    pub unreachable: Vec<(String, String)>,
    /// Objects that can never be copied into the range's region as they
    /// are: how many, and the first [`LISTED`] with why. Not failures.
    #[serde(default)]
    pub not_replicable_count: u64,
    #[serde(default)]
    pub not_replicable: Vec<(String, crate::store::Unreplicable)>,
}

impl Tally {
    /// Whether everything was repaired.
    pub fn ok(&self) -> bool {
        self.failure_count == 0 && self.unreachable.is_empty()
    }

    /// Counts one key's repair; `regions` names the regions by index.
    pub fn record(&mut self, key: &str, result: &KeyRepair, regions: &[String]) {
        for copy in &result.copies {
            self.copies_made += 1;
            self.bytes_copied += copy.bytes;
            let source = &regions[copy.source];
            *self.copies_by_source.entry(source.clone()).or_default() += 1;
            if self.copies.len() < LISTED {
                self.copies.push(RangeCopy {
                    key: key.to_owned(),
                    source: source.clone(),
                    reason: copy.reason,
                    bytes: copy.bytes,
                });
            }
        }
        self.deletes_made += result.deletes.len() as u64;
        self.deletes_held += result.held.len() as u64;
        if !result.deletes.is_empty() && self.deletes.len() < LISTED {
            self.deletes.push(key.to_owned());
        }
        self.keys_differing_by_delete += u64::from(result.differs_only_by_delete());
        for (_, why) in &result.not_replicable {
            self.not_replicable_count += 1;
            if self.not_replicable.len() < LISTED {
                self.not_replicable.push((key.to_owned(), *why));
            }
        }
        for failure in &result.failures {
            self.failure_count += 1;
            if self.failures.len() < LISTED {
                self.failures.push(RangeFailure {
                    key: key.to_owned(),
                    region: regions[failure.region].clone(),
                    source: failure.source.map(|s| regions[s].clone()),
                    error: failure.error.clone(),
                });
            }
        }
    }

    /// Adds `other` in; the lists stay capped at [`LISTED`].
    pub fn add(&mut self, other: &Tally) {
        self.keys_scanned += other.keys_scanned;
        self.keys_examined += other.keys_examined;
        self.copies_made += other.copies_made;
        self.bytes_copied += other.bytes_copied;
        self.deletes_made += other.deletes_made;
        self.deletes_held += other.deletes_held;
        self.keys_differing_by_delete += other.keys_differing_by_delete;
        for (source, count) in &other.copies_by_source {
            *self.copies_by_source.entry(source.clone()).or_default() += count;
        }
        self.copies.extend(other.copies.iter().cloned());
        self.copies.sort_by(|a, b| a.key.cmp(&b.key));
        self.copies.truncate(LISTED);
        self.deletes.extend(other.deletes.iter().cloned());
        self.deletes.truncate(LISTED);
        self.failure_count += other.failure_count;
        self.failures.extend(other.failures.iter().cloned());
        self.failures.truncate(LISTED);
        self.not_replicable_count += other.not_replicable_count;
        self.not_replicable
            .extend(other.not_replicable.iter().cloned());
        self.not_replicable.truncate(LISTED);
        for unreachable in &other.unreachable {
            if !self.unreachable.contains(unreachable) {
                self.unreachable.push(unreachable.clone());
            }
        }
    }
}

/// What one invocation of a range did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePart {
    pub index: usize,
    pub part: u32,
    #[serde(flatten)]
    pub tally: Tally,
    /// Candidate range bounds for the next run.
    pub samples: Vec<String>,
    pub millis: u64,
    /// This invocation finished its range.
    #[serde(default)]
    pub done: bool,
}

/// Copies and failures a part lists by name; the counts are always whole.
pub const LISTED: usize = 1000;

/// One region's repair run, as `status` and `sync --in-cloud` read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run: String,
    pub region: String,
    pub regions: Vec<String>,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub ranges: usize,
    /// Ranges with a failed key or an unreachable region, or that never
    /// reported (the map gave up on them).
    pub ranges_failed: usize,
    /// Invocations over every range.
    pub invocations: u64,
    /// The longest single invocation.
    pub longest_invocation_ms: u64,
    #[serde(flatten)]
    pub tally: Tally,
    /// The map's own error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ok: bool,
}

/// Adds a run's parts up. `ranges` is how many the plan made: a range
/// with no part at all failed before it reported.
pub fn summarise(
    plan: &Plan,
    region: &str,
    parts: &[RangePart],
    finished_ms: i64,
    error: Option<String>,
) -> RunReport {
    let mut report = RunReport {
        run: plan.run.clone(),
        region: region.to_owned(),
        regions: plan.regions.clone(),
        started_ms: plan.started_ms,
        finished_ms,
        ranges: plan.ranges,
        error,
        ..RunReport::default()
    };
    // Range → (a part failed, a part finished it).
    let mut ranges = BTreeMap::<usize, (bool, bool)>::new();
    for part in parts {
        let range = ranges.entry(part.index).or_default();
        range.0 |= !part.tally.ok();
        range.1 |= part.done;
        report.invocations += 1;
        report.longest_invocation_ms = report.longest_invocation_ms.max(part.millis);
        report.tally.add(&part.tally);
    }
    // A range failed if any of its parts did, or if none finished it: it
    // never reported, or stopped part-way (the map gave up on it after a
    // step failed every attempt, or the function died). Parts are named by
    // range and invocation, so a retried invocation replaces its part.
    let finished = ranges.values().filter(|(bad, done)| !bad && *done).count();
    report.ranges_failed = plan.ranges.saturating_sub(finished);
    report.ok = report.ranges_failed == 0 && report.tally.ok() && report.error.is_none();
    report
}

/// Range bounds for the first run of a set: by first character, spread
/// over digits and letters, where keys most often start.
pub fn first_bounds() -> Vec<String> {
    [
        "0", "4", "8", "A", "H", "O", "V", "a", "e", "i", "m", "q", "u", "y",
    ]
    .iter()
    .map(|b| (*b).to_owned())
    .collect()
}

/// A range holds about this many keys, once a run has seen the set.
pub const KEYS_PER_RANGE: u64 = 2_000;
/// At most this many ranges (the manifest stays small, and a Distributed
/// Map runs at most 10,000 children at once).
pub const MAX_RANGES: usize = 1_000;

/// How often a range keeps a sample, for a set of `keys` keys: about
/// [`MAX_RANGES`] × 10 samples in all, and never fewer than one per 100.
pub fn sample_every(keys: u64) -> u64 {
    (keys / (MAX_RANGES as u64 * 10)).max(100)
}

/// The next run's bounds from this run's samples (about one every
/// `sample_every` keys): ranges of about [`KEYS_PER_RANGE`] keys, never
/// fewer than the first run's split gives (more ranges cost little and keep
/// the map parallel), at most [`MAX_RANGES`].
pub fn learned_bounds(mut samples: Vec<String>, keys: u64) -> Vec<String> {
    samples.sort();
    samples.dedup();
    if samples.len() < 2 {
        return first_bounds();
    }
    let fewest = first_bounds().len() as u64 + 1;
    let wanted = (keys / KEYS_PER_RANGE).clamp(fewest, MAX_RANGES as u64) as usize;
    let step = (samples.len() / wanted).max(1);
    samples.into_iter().step_by(step).skip(1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_what_the_state_machine_sends() {
        let plan: RepairRequest =
            serde_json::from_str(r#"{"toastrep": "repair-plan", "run": "r1"}"#).unwrap();
        assert_eq!(
            plan,
            RepairRequest::RepairPlan {
                run: "r1".into(),
                execution: String::new(),
                input: serde_json::Value::Null
            }
        );
        let range: RepairRequest = serde_json::from_str(
            r#"{"toastrep": "repair-range", "run": "r1", "regions": ["a", "b"], "index": 3,
                "range": {"after": "m", "upto": "q"}, "sample_every": 100}"#,
        )
        .unwrap();
        let RepairRequest::RepairRange(range) = range else {
            panic!("{range:?}")
        };
        assert_eq!(range.range.after.as_deref(), Some("m"));
        assert_eq!(range.resume_after, None);
        assert!(!range.done);
    }

    #[test]
    fn a_not_replicable_object_is_listed_and_is_no_failure() {
        let repair = KeyRepair {
            not_replicable: vec![(1, crate::store::Unreplicable::Archived)],
            ..KeyRepair::default()
        };
        let mut range = Tally::default();
        range.record("cold/k", &repair, &["us-east-1".into(), "eu-west-2".into()]);
        let mut run = Tally::default();
        run.add(&range);
        run.add(&range);
        assert!(run.ok());
        assert_eq!(run.not_replicable_count, 2);
        assert_eq!(
            run.not_replicable[0],
            ("cold/k".to_owned(), crate::store::Unreplicable::Archived)
        );
    }

    #[test]
    fn a_range_that_never_finished_counts_as_failed() {
        let plan = Plan {
            run: "r".into(),
            regions: vec!["a".into()],
            manifest: "m".into(),
            ranges: 3,
            sample_every: 100,
            started_ms: 0,
        };
        let part = |index, failures| RangePart {
            index,
            done: true,
            tally: Tally {
                keys_scanned: 10,
                copies_made: 2,
                failure_count: failures,
                ..Tally::default()
            },
            ..RangePart::default()
        };
        let report = summarise(&plan, "a", &[part(0, 0), part(1, 1)], 5, None);
        assert_eq!(report.ranges_failed, 2);
        assert_eq!(report.tally.keys_scanned, 20);
        assert_eq!(report.tally.copies_made, 4);
        assert!(!report.ok);
        let whole = summarise(&plan, "a", &[part(0, 0), part(1, 0), part(2, 0)], 5, None);
        assert!(whole.ok);
        // A range whose invocations stopped before one finished it (its
        // next step failed every attempt) is not repaired.
        let cut = RangePart {
            done: false,
            ..part(2, 0)
        };
        let stopped = summarise(&plan, "a", &[part(0, 0), part(1, 0), cut], 5, None);
        assert_eq!(stopped.ranges_failed, 1);
        assert!(!stopped.ok);
    }

    #[test]
    fn learned_bounds_split_a_large_set_evenly() {
        let samples: Vec<String> = (0..1000).map(|i| format!("k{i:06}")).collect();
        // 100,000 keys sampled every 100: 50 ranges of 2,000 keys.
        let bounds = learned_bounds(samples, 100_000);
        assert_eq!(bounds.len(), 49);
        assert_eq!(bounds[0], "k000020");
        // Keys under one prefix, too few for 2,000 a range: still the first
        // split's count of ranges, now within that prefix.
        let samples: Vec<String> = (0..200).map(|i| format!("bench/{:06}", i * 100)).collect();
        let bounds = learned_bounds(samples, 20_000);
        assert!(bounds.len() >= first_bounds().len(), "{}", bounds.len());
        assert!(bounds.iter().all(|b| b.starts_with("bench/")));
        // Nothing learned: the first split.
        assert_eq!(learned_bounds(vec!["a".into()], 500), first_bounds());
    }
}
