//! Anti-entropy: make every region of a set hold every object, whatever
//! events were lost on the way.
//!
//! Every region's bucket is listed in key order and the listings are merged,
//! by the replication engine's scan (`toastrep_replication::engine::scan`),
//! the same code the cloud repair runs over one range at a time. Memory
//! depends on the page size, the number of regions and the concurrency,
//! never on how many objects the buckets hold.
//!
//! A key whose ETag is the same in every region is in sync and costs no
//! further call. Any other key is looked at closely, by the replication
//! engine's own anti-entropy for one key: every region's state (its current
//! object, or the delete on top of it), and the winner by the replicator's
//! rule. The winner is then copied, server-side, into every region that
//! lacks it or holds a losing write. A key a region deleted is never copied
//! back over that delete where the delete deletes the winner: the set then
//! carries the delete to the other regions if it carries deletes, and
//! otherwise leaves it there and counts the key. No version is ever deleted.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use toastrep_replication::engine::{
    KeyRange, KeyRepair, MAX_REGIONS, ScanEnd, ScanLimit, ScanOptions, ScanStep,
};
use toastrep_replication::protocol::Reason;
use toastrep_replication::{
    Bucket, CopySettings, MarkerKeys, Replicator, SdkStore, SetBuckets as SetNaming, Unreplicable,
};

use crate::model::function::FunctionSettings;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::ops::breaker::OpenBreakers;
use crate::ops::context::SetContext;
use crate::progress::Reporter;

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// One region's run of the repair.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegionRun {
    pub region: Region,
    pub execution_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    /// The Distributed Map's items (ranges): how many, and how they ended.
    pub ranges: Option<MapItems>,
    /// Invocations over every range, and the longest of them.
    pub invocations: u64,
    pub longest_invocation_ms: u64,
    /// Why the execution failed, when it failed before reporting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A map run's item counts.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct MapItems {
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub running: i64,
}

/// The runs `sync --in-cloud` started (and followed).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CloudRun {
    pub run: String,
    pub executions: Vec<RegionRun>,
}

/// What `sync` does.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Plan only: list the copies that would be made, make none.
    pub dry_run: bool,
    /// Examine every key, not only those whose listings differ.
    pub deep: bool,
    /// Keys examined and copied at once.
    pub concurrency: usize,
    /// Repair only these regions (the others are still read, as sources).
    pub only_into: Option<Vec<Region>>,
    /// The set carries deletes: a delete that deletes the winner goes to
    /// every region.
    pub carry_deletes: bool,
}

/// One copy, made or (on a dry run) planned.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncCopy {
    pub key: String,
    /// The region the winning version is copied from.
    pub source: Region,
    pub destination: Region,
    pub reason: Reason,
    pub bytes: u64,
}

/// A delete carried (or, on a dry run, planned): a delete marker put on a
/// region's object of the key.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncDelete {
    pub key: String,
    pub region: Region,
}

/// A key whose winner can never be copied into a region as it is: the
/// writer's choice, reported here and not as a failure.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotReplicable {
    pub key: String,
    /// The region it could not be copied into.
    pub region: Region,
    pub why: Unreplicable,
}

/// A key that could not be examined or copied.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncFailure {
    pub key: String,
    /// The region whose call failed.
    pub region: Region,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Region>,
    pub error: String,
}

/// A region whose bucket could not be listed: it was neither read nor repaired.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UnreachableRegion {
    pub region: Region,
    pub error: String,
}

/// What `sync` found and did.
// `Default`: a sync that has done nothing yet, which the cloud repair's
// report adds each region's run to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncReport {
    pub name: String,
    pub regions: Vec<Region>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_into: Option<Vec<Region>>,
    pub dry_run: bool,
    /// Distinct keys seen over all regions.
    pub keys_scanned: u64,
    /// Keys whose ETags differed or that some region lacked: examined closely.
    pub keys_examined: u64,
    /// Copies made (0 on a dry run).
    pub copies_made: u64,
    /// Copies planned on a dry run (0 otherwise).
    pub copies_planned: u64,
    /// Copies not made because the source changed after it was examined: the
    /// newer write brings its own event (or the next sync takes it).
    pub copies_skipped: u64,
    pub bytes_copied: u64,
    /// Every copy made, or planned on a dry run.
    pub copies: Vec<SyncCopy>,
    /// Whether the set carries deletes.
    pub carry_deletes: bool,
    /// Deletes carried (0 on a dry run).
    pub deletes_made: u64,
    /// Deletes planned on a dry run (0 otherwise).
    pub deletes_planned: u64,
    /// Every delete carried, or planned on a dry run.
    pub deletes: Vec<SyncDelete>,
    /// Deletes the region's mass-delete breaker holds: not carried by
    /// sync either, until `toastrep deletes` releases or discards them.
    pub deletes_held: u64,
    pub held: Vec<SyncDelete>,
    /// Objects that can never be copied as they are (an archived source,
    /// metadata that leaves no room for the marker): not failures.
    pub not_replicable: Vec<NotReplicable>,
    /// Keys that differ between regions only by a delete the set keeps
    /// where it was made (it does not carry deletes).
    pub keys_differing_by_delete: u64,
    pub failures: Vec<SyncFailure>,
    pub unreachable: Vec<UnreachableRegion>,
    pub seconds: f64,
    /// No failure and every region reached.
    pub ok: bool,
    /// `sync --in-cloud`: the run, and each region's execution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_cloud: Option<CloudRun>,
}

/// Makes every region of the set hold the winning version of every key
/// (under `options.prefix`), copying only where a region lacks it or holds
/// a losing write. Regions whose bucket cannot be listed are reported in
/// [`SyncReport::unreachable`]; the others are still repaired.
pub async fn sync_set(
    set: &SetContext,
    regions: &[Region],
    marker_key: &MarkerKeys,
    settings: &CopySettings,
    options: &SyncOptions,
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let started = Instant::now();
    let name = &set.name;
    if regions.is_empty() || regions.len() > MAX_REGIONS {
        bail!(
            "sync needs between 1 and {MAX_REGIONS} regions, not {}",
            regions.len()
        );
    }
    let repair = regions_to_repair(regions, options.only_into.as_deref())?;
    // One store for every region (clients per region), owned by the set's
    // account: the same engine the function runs, with the deployed
    // copy settings.
    // A delete sync would carry into a region whose mass-delete breaker
    // holds the region that made it stays held, like the notices the
    // breaker keeps: only `toastrep deletes` decides.
    let replicator = set_replicator(set, regions, marker_key, settings)
        .carrying_deletes(options.carry_deletes)
        .gating_deletes(std::sync::Arc::new(OpenBreakers(set.clone())));
    let dry_run = options.dry_run;
    let what = if dry_run { "planning" } else { "repairing" };
    reporter.started(
        name.as_str(),
        "sync",
        &format!("listing {} regions, {what}", regions.len()),
    );
    let scan = ScanOptions {
        range: KeyRange::all(),
        prefix: options.prefix.clone(),
        repair,
        dry_run,
        deep: options.deep,
        concurrency: options.concurrency.max(1),
        limit: ScanLimit::default(),
    };
    let mut tally = Tally::new(regions);
    let end = scan_showing_progress(&replicator, &scan, &mut tally, name, reporter).await;
    let mut report = tally.report(name, regions, options, end);
    reporter.finished(
        name.as_str(),
        "sync",
        &progress(dry_run, report.keys_scanned, report.copies.len()),
        report.ok,
    );
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Which of `regions` a sync repairs: all, or only those `only_into` names.
fn regions_to_repair(regions: &[Region], only_into: Option<&[Region]>) -> Result<Vec<bool>> {
    let Some(only) = only_into else {
        return Ok(vec![true; regions.len()]);
    };
    let mut repair = vec![false; regions.len()];
    for region in only {
        let Some(index) = regions.iter().position(|r| r == region) else {
            bail!("sync into {region}: it is not one of the set's regions ({regions:?})");
        };
        repair[index] = true;
    }
    Ok(repair)
}

fn progress(dry_run: bool, scanned: u64, copies: usize) -> String {
    let verb = if dry_run { "planned" } else { "done" };
    format!("{scanned} keys scanned, {copies} copies {verb}")
}

/// Runs the scan into `tally`, showing its progress every so often.
async fn scan_showing_progress(
    replicator: &Replicator<SdkStore>,
    scan: &ScanOptions,
    tally: &mut Tally<'_>,
    name: &SetName,
    reporter: &dyn Reporter,
) -> ScanEnd {
    let buckets: Vec<Bucket> = tally
        .regions
        .iter()
        .map(|r| replicator.set().bucket(r))
        .collect();
    let mut shown = Instant::now();
    replicator
        .scan(&buckets, scan, |step| match step {
            ScanStep::Repaired(key, result) => tally.add(key, result),
            ScanStep::Merged(_) => {}
            ScanStep::Scanned(scanned) => {
                if shown.elapsed() >= PROGRESS_EVERY {
                    shown = Instant::now();
                    reporter.counted(
                        name.as_str(),
                        "sync",
                        &progress(scan.dry_run, scanned, tally.copies.len()),
                    );
                }
            }
        })
        .await
}

impl Tally<'_> {
    /// The report of a scan that ended with `end`, sorted by key; its
    /// `seconds` are the caller's to set.
    fn report(
        self,
        name: &SetName,
        regions: &[Region],
        options: &SyncOptions,
        end: ScanEnd,
    ) -> SyncReport {
        let unreachable: Vec<UnreachableRegion> = end
            .unreachable
            .iter()
            .map(|(i, error)| UnreachableRegion {
                region: regions[*i],
                error: error.clone(),
            })
            .collect();
        let Tally {
            mut copies,
            mut deletes,
            mut held,
            mut not_replicable,
            mut failures,
            differing_by_delete,
            ..
        } = self;
        not_replicable.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
        copies.sort_by(|a, b| (&a.key, &a.destination).cmp(&(&b.key, &b.destination)));
        failures.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
        deletes.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
        held.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
        let ok = failures.is_empty() && unreachable.is_empty();
        let dry_run = options.dry_run;
        let count = copies.len() as u64;
        let deleted = deletes.len() as u64;
        let split = |n: u64| if dry_run { (0, n) } else { (n, 0) };
        let ((copies_made, copies_planned), (deletes_made, deletes_planned)) =
            (split(count), split(deleted));
        SyncReport {
            name: name.to_string(),
            regions: regions.to_vec(),
            prefix: options.prefix.clone(),
            only_into: options.only_into.clone(),
            dry_run,
            keys_scanned: end.keys_scanned,
            keys_examined: end.keys_examined,
            copies_made,
            copies_planned,
            copies_skipped: 0,
            bytes_copied: if dry_run {
                0
            } else {
                copies.iter().map(|c| c.bytes).sum()
            },
            copies,
            carry_deletes: options.carry_deletes,
            deletes_made,
            deletes_planned,
            deletes,
            deletes_held: held.len() as u64,
            held,
            not_replicable,
            keys_differing_by_delete: differing_by_delete,
            failures,
            unreachable,
            seconds: 0.0,
            ok,
            in_cloud: None,
        }
    }
}

/// What the scan's repairs add up to, in the report's terms.
struct Tally<'a> {
    regions: &'a [Region],
    copies: Vec<SyncCopy>,
    deletes: Vec<SyncDelete>,
    held: Vec<SyncDelete>,
    not_replicable: Vec<NotReplicable>,
    failures: Vec<SyncFailure>,
    differing_by_delete: u64,
}

impl<'a> Tally<'a> {
    fn new(regions: &'a [Region]) -> Tally<'a> {
        Tally {
            regions,
            copies: Vec::new(),
            deletes: Vec::new(),
            held: Vec::new(),
            not_replicable: Vec::new(),
            failures: Vec::new(),
            differing_by_delete: 0,
        }
    }

    fn add(&mut self, key: &str, result: &KeyRepair) {
        let regions = self.regions;
        self.copies.extend(result.copies.iter().map(|c| SyncCopy {
            key: key.to_owned(),
            source: regions[c.source],
            destination: regions[c.destination],
            reason: c.reason,
            bytes: c.bytes,
        }));
        self.deletes
            .extend(result.deletes.iter().map(|d| SyncDelete {
                key: key.to_owned(),
                region: regions[d.region],
            }));
        self.held.extend(result.held.iter().map(|d| SyncDelete {
            key: key.to_owned(),
            region: regions[d.region],
        }));
        self.not_replicable
            .extend(result.not_replicable.iter().map(|(i, why)| NotReplicable {
                key: key.to_owned(),
                region: regions[*i],
                why: *why,
            }));
        self.differing_by_delete += u64::from(result.differs_only_by_delete());
        self.failures
            .extend(result.failures.iter().map(|f| SyncFailure {
                key: key.to_owned(),
                region: regions[f.region],
                source: f.source.map(|s| regions[s]),
                error: f.error.clone(),
            }));
    }
}

/// The replication engine the function runs, on S3 with the operator's
/// credentials, for set `name`'s buckets in `account` and `regions` only.
/// Each region's client is made from the first region's on first use.
pub fn set_replicator(
    set: &SetContext,
    regions: &[Region],
    marker_key: &MarkerKeys,
    settings: &CopySettings,
) -> Replicator<SdkStore> {
    let SetContext { aws, name, account } = set;
    let clients = aws.replication_clients(regions[0]);
    // Only the set's buckets in its member regions: a notice or a listing
    // that names any other bucket is refused.
    let members: Vec<String> = regions.iter().map(ToString::to_string).collect();
    let naming = SetNaming::new(name.as_str(), account).within(&members);
    Replicator::new(
        SdkStore::new(clients).expecting_owner(account),
        marker_key.clone(),
        naming,
        settings.clone(),
    )
}

/// The set's buckets in `regions` (in that order) and the replication
/// engine over them, with the set's marker key and deployed `settings`, as
/// the functions run it.
pub async fn set_engine(
    set: &SetContext,
    regions: &[Region],
    settings: &FunctionSettings,
) -> Result<(Vec<Bucket>, Replicator<SdkStore>)> {
    let marker_key = crate::ops::marker_key::for_set(set, regions).await?;
    let replicator = set_replicator(set, regions, &marker_key, &settings.copy_settings())
        .carrying_deletes(settings.replicate_deletes);
    let buckets = regions.iter().map(|r| replicator.set().bucket(r)).collect();
    Ok((buckets, replicator))
}
