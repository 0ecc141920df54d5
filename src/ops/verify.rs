//! `toastrep verify`: prove the set replicates, pair by pair.
//!
//! Probe objects go into the regions' buckets (one per region by default, K
//! spread over the regions with `--objects K`). Each destination region is then
//! listed repeatedly until it holds every other region's probes with the same
//! ETag (the MD5 of the bytes, for these single-part SSE-S3 objects); a probe's
//! latency runs from the end of its upload to the first listing that shows it.
//! In the default mode every replica is also read back and compared byte for
//! byte. Probes are removed afterwards, every version, replicas included.
//!
//! Before removing them, verify counts the replica copies: every object version
//! under the run's prefix, in every checked region, that is not one of the
//! uploads. Probe keys are unique to the run, so each version beyond the upload
//! is one copy the replicator wrote (a redundant copy or a copy echoed back to
//! the origin region shows up as an extra version). The count comes from the
//! buckets' version history rather than the function's decision logs: it needs
//! no log permissions and no wait for log ingestion, and it counts what was
//! actually written. Exactly N-1 copies per upload is required.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use futures::future::join_all;
use futures::{StreamExt, TryStreamExt, stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aws::Aws;
use crate::model::regions::Region;
use crate::ops::context::SetContext;
use crate::ops::discover::Located;
use crate::progress::Reporter;

/// Where probes live; outside any prefix a user is likely to have.
const PROBE_PREFIX: &str = ".toastrep/verify";

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct VerifyResult {
    pub name: String,
    pub regions: Vec<Region>,
    pub objects: usize,
    pub timeout_seconds: u64,
    /// Seconds from the first upload to the last replica seen.
    pub seconds: f64,
    /// Replicas seen per second over that time.
    pub replicas_per_second: f64,
    pub pairs: Vec<PairResult>,
    /// Pairs that did not converge in time, as "source -> destination".
    pub failed: Vec<String>,
    pub copies: CopyCount,
    pub ok: bool,
}

/// Replica copies of this run's probes, from the buckets' version history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CopyCount {
    pub uploads: usize,
    /// Object versions under the run's prefix in the checked regions, minus
    /// the uploads; `None` when the versions could not be listed.
    pub copies: Option<usize>,
    /// `uploads × (regions − 1)`: one copy per upload into every other region.
    pub expected: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_upload: Option<f64>,
    /// Whether `copies == expected`.
    pub exact: bool,
}

impl CopyCount {
    fn new(uploads: usize, regions: usize, versions: Option<usize>) -> CopyCount {
        let expected = uploads * regions.saturating_sub(1);
        let copies = versions.map(|v| v.saturating_sub(uploads));
        CopyCount {
            uploads,
            copies,
            expected,
            per_upload: copies.map(|c| c as f64 / uploads.max(1) as f64),
            exact: copies == Some(expected),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PairResult {
    pub source: Region,
    pub destination: Region,
    pub converged: bool,
    pub objects: usize,
    pub replicated: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
}

/// The probes uploaded so far, shared with the watchers.
#[derive(Default)]
struct Uploaded {
    /// Key → (region, ETag).
    probes: Mutex<HashMap<String, (Region, String)>>,
    /// Set once every upload has ended: the watchers stop at this instant.
    deadline: OnceLock<Instant>,
}

/// A probe uploaded into one region.
struct Probe {
    region: Region,
    key: String,
    etag: String,
    body: Vec<u8>,
    uploaded: Instant,
}

/// How verify probes.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long every pair has to converge.
    pub timeout: Duration,
    /// Bytes per probe.
    pub probe_size: usize,
    /// Probes in all, spread over the regions (a load check); none: one a
    /// region, each read back and compared byte for byte.
    pub objects: Option<usize>,
    /// Probe uploads in flight at once.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            probe_size: 64 * 1024,
            objects: None,
            concurrency: 16,
        }
    }
}

/// Probes every pair of set `name`'s member regions.
pub async fn verify(
    located: &Located,
    options: &VerifyOptions,
    reporter: &dyn Reporter,
) -> Result<VerifyResult> {
    let Located { set, .. } = located;
    let SetContext { aws, name, account } = set;
    let regions = located.members("verify")?;
    let buckets: HashMap<Region, String> = regions
        .iter()
        .map(|&r| (r, name.data_bucket(r, account)))
        .collect();
    let run = run_id();
    let prefix = format!("{PROBE_PREFIX}/{run}/");
    let count = options.objects.unwrap_or(regions.len());
    reporter.note(&format!(
        "uploading {count} probe objects into {} regions",
        regions.len()
    ));
    // The destinations are watched while the probes are uploaded, so a
    // probe's latency runs from the end of its own upload, not of the last.
    let start = Instant::now();
    let uploaded = Uploaded::default();
    let uploading = async {
        let probes: Result<Vec<Probe>> = stream::iter((0..count).map(|i| {
            let region = regions[i % regions.len()];
            let key = format!("{prefix}{region}/{i:06}");
            upload_probe(aws, region, &buckets, key, options.probe_size, &uploaded)
        }))
        .buffer_unordered(options.concurrency)
        .try_collect()
        .await;
        // Set even when an upload failed, so the watchers stop.
        let _ = uploaded.deadline.set(Instant::now() + options.timeout);
        probes
    };
    let watching =
        join_all(regions.iter().map(|destination| {
            watch(aws, *destination, &buckets[destination], &prefix, &uploaded)
        }));
    let (probes, sightings) = futures::join!(uploading, watching);
    let deadline = *uploaded.deadline.get().expect("set once uploading ended");
    let probes = match probes {
        Ok(probes) => probes,
        Err(error) => {
            // The probes written before the failure replicate all the same:
            // once their copies have settled, every one goes, so a failed
            // run leaves nothing behind in any region.
            settled_version_count(aws, &buckets, &prefix, deadline).await;
            remove_probes(aws, &buckets, &prefix).await;
            return Err(error);
        }
    };
    let mut seen: HashMap<(Region, &str), Duration> = HashMap::new();
    for (destination, sighting) in regions.iter().zip(&sightings) {
        for probe in probes.iter().filter(|p| &p.region != destination) {
            if let Some((etag, at)) = sighting.get(&probe.key)
                && *etag == probe.etag
            {
                seen.insert(
                    (*destination, probe.key.as_str()),
                    at.saturating_duration_since(probe.uploaded),
                );
            }
        }
    }
    let elapsed = start.elapsed();
    if options.objects.is_none() {
        compare_bytes(aws, &buckets, &probes, &mut seen).await;
    }
    let versions = settled_version_count(aws, &buckets, &prefix, deadline).await;
    remove_probes(aws, &buckets, &prefix).await;
    let copies = CopyCount::new(probes.len(), regions.len(), versions);

    let pairs = pair_results(&regions, &probes, &seen);
    let failed: Vec<String> = pairs
        .iter()
        .filter(|p| !p.converged)
        .map(|p| format!("{} -> {}", p.source, p.destination))
        .collect();
    let replicas = pairs.iter().map(|p| p.replicated).sum::<usize>();
    let result = VerifyResult {
        name: name.to_string(),
        regions,
        objects: count,
        timeout_seconds: options.timeout.as_secs(),
        seconds: elapsed.as_secs_f64(),
        replicas_per_second: replicas as f64 / elapsed.as_secs_f64().max(0.001),
        ok: failed.is_empty() && copies.exact,
        pairs,
        failed,
        copies,
    };
    Ok(result)
}

/// Unique per run, so runs (and their cleanups) never touch each other.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

/// Probe content derived from its key: different for every probe and run.
fn probe_body(key: &str, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 32);
    let mut block = Sha256::digest(key.as_bytes());
    while body.len() < size {
        body.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    body.truncate(size);
    body
}

async fn upload_probe(
    aws: &Aws,
    region: Region,
    buckets: &HashMap<Region, String>,
    key: String,
    size: usize,
    uploaded: &Uploaded,
) -> Result<Probe> {
    let body = probe_body(&key, size);
    let bucket = &buckets[&region];
    let etag = aws
        .objects(region, bucket)
        .put(&key, body.clone())
        .await
        .with_context(|| format!("uploading the probe s3://{bucket}/{key} in {region}"))?;
    uploaded
        .probes
        .lock()
        .expect("no panic holds the lock")
        .insert(key.clone(), (region, etag.clone()));
    Ok(Probe {
        etag,
        region,
        key,
        body,
        uploaded: Instant::now(),
    })
}

/// Lists the destination's probes, from the first upload on, until every
/// other region's are there with their ETag once uploading has ended, or the
/// deadline passes. Returns key → (ETag, when first seen with it).
async fn watch(
    aws: &Aws,
    destination: Region,
    bucket: &str,
    prefix: &str,
    uploaded: &Uploaded,
) -> HashMap<String, (String, Instant)> {
    let bucket = aws.objects(destination, bucket);
    let mut seen: HashMap<String, (String, Instant)> = HashMap::new();
    let mut delay = Duration::from_millis(50);
    loop {
        // A listing that failed shows nothing new; the next one may.
        if let Ok(listed) = bucket.list(prefix).await {
            // When the listing arrived: the replica was there by then at the
            // latest, so a latency is never understated.
            let now = Instant::now();
            for object in listed {
                if seen
                    .get(&object.key)
                    .is_none_or(|(known, _)| *known != object.etag)
                {
                    seen.insert(object.key, (object.etag, now));
                }
            }
        }
        if let Some(deadline) = uploaded.deadline.get() {
            let complete = uploaded
                .probes
                .lock()
                .expect("no panic holds the lock")
                .iter()
                .filter(|(_, (region, _))| *region != destination)
                .all(|(key, (_, etag))| seen.get(key).is_some_and(|(e, _)| e == etag));
            if complete || Instant::now() >= *deadline {
                return seen;
            }
            tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        } else {
            tokio::time::sleep(delay).await;
        }
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// Counts the object versions under `prefix` in every bucket, again and again
/// until two counts a second apart agree (or the deadline passed), so a late
/// redundant copy is counted too. `None` if a listing failed.
async fn settled_version_count(
    aws: &Aws,
    buckets: &HashMap<Region, String>,
    prefix: &str,
    deadline: Instant,
) -> Option<usize> {
    let mut last = count_versions(aws, buckets, prefix).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = count_versions(aws, buckets, prefix).await?;
        if now == last || Instant::now() >= deadline {
            return Some(now);
        }
        last = now;
    }
}

async fn count_versions(
    aws: &Aws,
    buckets: &HashMap<Region, String>,
    prefix: &str,
) -> Option<usize> {
    let counts = join_all(buckets.iter().map(|(region, bucket)| async move {
        // Delete markers are not copies: only versions count.
        let total = aws
            .objects(*region, bucket)
            .version_count(prefix)
            .await
            .inspect_err(|error| {
                tracing::warn!(bucket, "could not count the probes' versions: {error:#}");
            })
            .ok()?;
        Some(total as usize)
    }))
    .await;
    counts.into_iter().sum()
}

/// Reads every replica back and drops the ones whose bytes differ.
async fn compare_bytes(
    aws: &Aws,
    buckets: &HashMap<Region, String>,
    probes: &[Probe],
    seen: &mut HashMap<(Region, &str), Duration>,
) {
    let checks = seen.keys().map(|(destination, key)| async move {
        let probe = probes
            .iter()
            .find(|p| p.key == *key)
            .expect("seen probes exist");
        let object = aws
            .objects(*destination, &buckets[destination])
            .get(key)
            .await;
        let same = matches!(object, Ok(Some(bytes)) if bytes == probe.body);
        ((*destination, *key), same)
    });
    for (entry, same) in join_all(checks).await {
        if !same {
            seen.remove(&entry);
        }
    }
}

/// Deletes every version of this run's probes in every region.
async fn remove_probes(aws: &Aws, buckets: &HashMap<Region, String>, prefix: &str) {
    join_all(buckets.iter().map(|(region, bucket)| async move {
        if let Err(error) = aws.objects(*region, bucket).purge_prefix(prefix).await {
            tracing::warn!(bucket, "could not remove the probes: {error:#}");
        }
    }))
    .await;
}

fn pair_results(
    regions: &[Region],
    probes: &[Probe],
    seen: &HashMap<(Region, &str), Duration>,
) -> Vec<PairResult> {
    let mut pairs = Vec::new();
    for source in regions {
        let sent: Vec<&Probe> = probes.iter().filter(|p| &p.region == source).collect();
        for destination in regions.iter().filter(|d| *d != source) {
            let mut latencies: Vec<u64> = sent
                .iter()
                .filter_map(|p| seen.get(&(*destination, p.key.as_str())))
                .map(|d| d.as_millis() as u64)
                .collect();
            latencies.sort_unstable();
            pairs.push(PairResult {
                source: *source,
                destination: *destination,
                converged: latencies.len() == sent.len(),
                objects: sent.len(),
                replicated: latencies.len(),
                p50_ms: percentile(&latencies, 50),
                p95_ms: percentile(&latencies, 95),
                max_ms: latencies.last().copied(),
            });
        }
    }
    pairs
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::{CopyCount, percentile};

    #[test]
    fn copies_must_be_exactly_n_minus_1_per_upload() {
        // 3 regions, 30 uploads: 30 originals + 60 replicas.
        let exact = CopyCount::new(30, 3, Some(90));
        assert_eq!((exact.copies, exact.expected), (Some(60), 60));
        assert_eq!(exact.per_upload, Some(2.0));
        assert!(exact.exact);
        // One redundant copy, one missing copy, or no count at all: not exact.
        assert!(!CopyCount::new(30, 3, Some(91)).exact);
        assert!(!CopyCount::new(30, 3, Some(89)).exact);
        assert!(!CopyCount::new(30, 3, None).exact);
        assert_eq!(CopyCount::new(20, 5, Some(100)).copies, Some(80));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
