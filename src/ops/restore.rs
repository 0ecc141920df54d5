//! `toastrep restore`: every key under a prefix gets back, in every region,
//! the object the set held at a past time. Deletes and overwrites made
//! since are undone by new writes; no version is ever deleted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt;
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toastrep_replication::{Bucket, KeyRestore, ReplicateError};

use crate::aws::objects::Versioning;
use crate::bail_input;
use crate::model::regions::Region;
use crate::ops::context::SetContext;
use crate::ops::discover::Located;
use crate::ops::sync::set_engine;
use crate::progress::Reporter;

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RestoreResult {
    pub name: String,
    pub prefix: String,
    /// The time restored to, RFC 3339.
    pub at: String,
    pub dry_run: bool,
    /// Keys under the prefix with any version in any region.
    pub keys: u64,
    /// Keys written again (or, on a dry run, that would be).
    pub restored: Vec<RestoredKey>,
    /// Keys every region already held as they were then.
    pub unchanged: u64,
    /// Keys the set held no object of then (not written yet, or deleted):
    /// left as they are.
    pub none_then: u64,
    pub failures: Vec<RestoreFailure>,
    pub seconds: f64,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RestoredKey {
    pub key: String,
    /// The region whose version is written again, and that version.
    pub source: Region,
    pub version: String,
    pub bytes: u64,
    /// The regions that get it.
    pub regions: Vec<Region>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RestoreFailure {
    pub key: String,
    pub error: String,
}

/// What to restore.
pub struct RestoreRequest {
    pub prefix: String,
    pub at: Timestamp,
    pub dry_run: bool,
    pub concurrency: usize,
}

pub async fn restore(
    located: &Located,
    request: &RestoreRequest,
    reporter: &dyn Reporter,
) -> Result<RestoreResult> {
    let Located { set, found } = located;
    let name = &set.name;
    let regions = located.members("restore")?;
    let buckets: Vec<Bucket> = regions
        .iter()
        .map(|r| Bucket::new(r.as_str(), set.data_bucket(*r)))
        .collect();
    require_versioning(set, &regions, &buckets).await?;
    let mut keys = BTreeSet::new();
    for (&region, bucket) in regions.iter().zip(&buckets) {
        keys.extend(
            set.aws
                .objects(region, &bucket.name)
                .keys_with_versions(&request.prefix)
                .await?,
        );
    }
    if keys.is_empty() {
        bail_input!(
            "no key under the prefix {:?} has a version in set '{name}' (regions {}): check the prefix; nothing was changed",
            request.prefix,
            regions.join(", ")
        );
    }

    let settings = found.settings().unwrap_or_default();
    let (_, replicator) = set_engine(set, &regions, &settings).await?;
    let started = Instant::now();
    let what = if request.dry_run {
        "planning"
    } else {
        "restoring"
    };
    reporter.started(
        name.as_str(),
        "restore",
        &format!("{what} {} keys", keys.len()),
    );
    let total = keys.len() as u64;
    let (replicator, buckets, at) = (&replicator, &buckets, request.at);
    let outcomes = futures::stream::iter(keys)
        .map(|key| async move {
            let outcome = replicator
                .restore_key(&key, buckets, at.as_second(), request.dry_run)
                .await;
            (key, outcome)
        })
        .buffer_unordered(request.concurrency);
    let mut result = RestoreResult {
        name: name.to_string(),
        prefix: request.prefix.clone(),
        at: at.to_string(),
        dry_run: request.dry_run,
        keys: total,
        restored: Vec::new(),
        unchanged: 0,
        none_then: 0,
        failures: Vec::new(),
        seconds: 0.0,
        ok: true,
    };
    let done = tally(outcomes, &regions, &mut result, |done| {
        reporter.counted(name.as_str(), "restore", &done);
    })
    .await;
    result.restored.sort_by(|a, b| a.key.cmp(&b.key));
    result.failures.sort_by(|a, b| a.key.cmp(&b.key));
    result.ok = result.failures.is_empty();
    result.seconds = started.elapsed().as_secs_f64();
    reporter.finished(name.as_str(), "restore", &done, result.ok);
    Ok(result)
}

/// Versions are what restore restores from: every bucket must keep them.
async fn require_versioning(
    set: &SetContext,
    regions: &[Region],
    buckets: &[Bucket],
) -> Result<()> {
    for (&region, bucket) in regions.iter().zip(buckets) {
        let versioning = set
            .aws
            .objects(region, &bucket.name)
            .versioning()
            .await
            .with_context(|| format!("reading the versioning of s3://{}", bucket.name))?;
        if versioning != Versioning::Enabled {
            bail_input!(
                "s3://{} in {} does not have versioning enabled ({}), so it keeps no versions to restore from: redeploy the set with `toastrep deploy` to enable it (versions written from then on can be restored)",
                bucket.name,
                bucket.region,
                match versioning {
                    Versioning::Suspended => "suspended",
                    _ => "never enabled",
                }
            );
        }
    }
    Ok(())
}

/// Adds every key's outcome to `result` as it comes, showing the count
/// every so often; returns the last count's line.
async fn tally(
    mut outcomes: impl futures::Stream<Item = (String, Result<KeyRestore, ReplicateError>)> + Unpin,
    regions: &[Region],
    result: &mut RestoreResult,
    show: impl Fn(String),
) -> String {
    let total = result.keys;
    let mut done = 0u64;
    let mut last = Instant::now();
    let line = |done: u64, result: &RestoreResult| {
        format!("{done}/{total} keys, {} restored", result.restored.len())
    };
    while let Some((key, outcome)) = outcomes.next().await {
        done += 1;
        match outcome {
            Ok(KeyRestore::Unchanged) => result.unchanged += 1,
            Ok(KeyRestore::NoneThen) => result.none_then += 1,
            Ok(KeyRestore::Restored {
                source,
                version,
                bytes,
                regions: into,
            }) => result.restored.push(RestoredKey {
                key,
                source: regions[source],
                version,
                bytes,
                regions: into.iter().map(|&i| regions[i]).collect(),
            }),
            Err(error) => result.failures.push(RestoreFailure {
                key,
                error: error.to_string(),
            }),
        }
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            show(line(done, result));
        }
    }
    line(done, result)
}

/// `--at`: an RFC 3339 time, not in the future.
pub fn parse_time(at: &str) -> Result<Timestamp> {
    let Ok(time) = at.parse::<Timestamp>() else {
        bail_input!(
            "--at {at:?} is not a time toastrep can read: use RFC 3339 in UTC, e.g. 2026-11-27T09:30:00Z"
        );
    };
    if time > Timestamp::now() {
        bail_input!(
            "--at {at} is in the future: restore brings back what the set held at a past time; give a time before now"
        );
    }
    Ok(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_must_be_rfc_3339_and_past() {
        assert_eq!(
            parse_time("2024-05-01T12:00:00Z").unwrap().as_second(),
            1714564800
        );
        for bad in ["yesterday", "2024-05-01", "2999-01-01T00:00:00Z"] {
            let error = parse_time(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&error), 2, "{bad}: {error}");
        }
    }
}
