//! Anti-entropy: make every region of a set hold every object, whatever
//! events were lost on the way.
//!
//! Every region's bucket is listed in key order (ListObjectsV2 returns keys in
//! UTF-8 binary order: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>),
//! one task per region prefetching at most [`PAGES_AHEAD`] pages, and the
//! listings are merged as streams. Memory therefore depends on the page size,
//! the number of regions and the concurrency, never on how many objects the
//! buckets hold.
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

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt;
use serde::Serialize;
use toastrep_replication::protocol::Reason;
use toastrep_replication::{
    Bucket, CopySettings, MarkerKey, ObjectStore, RegionalClients, Replicator, SdkStore,
    SetBuckets as SetNaming,
};
use tokio::sync::mpsc;

use crate::aws::Aws;
use crate::names::SetName;
use crate::plan::FunctionSettings;
use crate::progress::Reporter;

/// Listing pages (up to 1,000 keys each) a region's lister may run ahead of
/// the merge.
const PAGES_AHEAD: usize = 2;
/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// A region bitmask holds every region of a partition (the largest has 30-odd).
const MAX_REGIONS: usize = 64;

/// What `sync` does.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Plan only: list the copies that would be made, make none.
    pub dry_run: bool,
    /// Keys examined and copied at once.
    pub concurrency: usize,
    /// Repair only these regions (the others are still read, as sources).
    pub only_into: Option<Vec<String>>,
    /// The set carries deletes: a delete that deletes the winner goes to
    /// every region.
    pub carry_deletes: bool,
}

/// Why a region gets a copy: it lacks the key, or holds a losing write.
pub type CopyReason = Reason;

/// One copy, made or (on a dry run) planned.
#[derive(Debug, Clone, Serialize)]
pub struct SyncCopy {
    pub key: String,
    /// The region the winning version is copied from.
    pub source: String,
    pub destination: String,
    pub reason: CopyReason,
    pub bytes: u64,
}

/// A delete carried (or, on a dry run, planned): a delete marker put on a
/// region's object of the key.
#[derive(Debug, Clone, Serialize)]
pub struct SyncDelete {
    pub key: String,
    pub region: String,
}

/// A key that could not be examined or copied.
#[derive(Debug, Clone, Serialize)]
pub struct SyncFailure {
    pub key: String,
    /// The region whose call failed.
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub error: String,
}

/// A region whose bucket could not be listed: it was neither read nor repaired.
#[derive(Debug, Clone, Serialize)]
pub struct UnreachableRegion {
    pub region: String,
    pub error: String,
}

/// What `sync` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub name: String,
    pub regions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_into: Option<Vec<String>>,
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
    /// Keys that differ between regions only by a delete the set keeps
    /// where it was made (it does not carry deletes).
    pub keys_differing_by_delete: u64,
    pub failures: Vec<SyncFailure>,
    pub unreachable: Vec<UnreachableRegion>,
    pub seconds: f64,
    /// No failure and every region reached.
    pub ok: bool,
}

/// One object as a listing shows it.
struct Listed {
    key: String,
    etag: Option<String>,
}

/// A key that needs a closer look, with what the listings showed.
struct Divergent {
    key: String,
    /// Regions still reachable when the key was merged.
    live: u64,
}

/// What the merge reports when it is done.
struct Scanned {
    keys: u64,
    unreachable: Vec<UnreachableRegion>,
}

/// The result of one divergent key.
#[derive(Default)]
struct KeyOutcome {
    copies: Vec<SyncCopy>,
    deletes: Vec<SyncDelete>,
    differs_by_delete: bool,
    skipped: u64,
    failures: Vec<SyncFailure>,
}

/// Makes every region of set `name` hold the winning version of every key
/// (under `options.prefix`), copying only where a region lacks it or holds
/// a losing write. Regions whose bucket cannot be listed are reported in
/// [`SyncReport::unreachable`]; the others are still repaired.
#[allow(clippy::too_many_arguments)]
pub async fn sync_set(
    aws: &Aws,
    name: &SetName,
    account: &str,
    regions: &[String],
    marker_key: &MarkerKey,
    settings: &CopySettings,
    options: &SyncOptions,
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let started = Instant::now();
    if regions.is_empty() || regions.len() > MAX_REGIONS {
        bail!(
            "sync needs between 1 and {MAX_REGIONS} regions, not {}",
            regions.len()
        );
    }
    let mut in_scope = u64::MAX;
    if let Some(only) = &options.only_into {
        in_scope = 0;
        for region in only {
            let Some(index) = regions.iter().position(|r| r == region) else {
                bail!("sync into {region}: it is not one of the set's regions ({regions:?})");
            };
            in_scope |= 1 << index;
        }
    }
    // One store for every region (clients per region), owned by the set's
    // account: the same engine the function runs, with the deployed
    // copy settings.
    let replicator = set_replicator(aws, name, account, regions, marker_key, settings)
        .carrying_deletes(options.carry_deletes);
    let set = Arc::new(SetBuckets {
        regions: regions.to_vec(),
        buckets: regions.iter().map(|r| replicator.set().bucket(r)).collect(),
        replicator,
    });
    let concurrency = options.concurrency.max(1);
    let scanned_keys = Arc::new(AtomicU64::new(0));

    // Listers → merge → divergent keys, each step bounded.
    let (work_tx, mut work_rx) = mpsc::channel::<Divergent>(concurrency * 2);
    let merge = tokio::spawn(merge_listings(
        Arc::clone(&set),
        options.prefix.clone(),
        in_scope,
        work_tx,
        Arc::clone(&scanned_keys),
    ));
    let work = futures::stream::poll_fn(move |cx| work_rx.poll_recv(cx));
    let dry_run = options.dry_run;
    let mut outcomes = work
        .map(|divergent| {
            let set = Arc::clone(&set);
            async move { repair_key(&set, divergent, in_scope, dry_run).await }
        })
        .buffer_unordered(concurrency);

    let what = if dry_run { "planning" } else { "repairing" };
    reporter.started(
        name.as_str(),
        "sync",
        &format!("listing {} regions, {what}", regions.len()),
    );
    let mut examined = 0u64;
    let mut copies = Vec::new();
    let mut deletes = Vec::new();
    let mut differing_by_delete = 0u64;
    let mut skipped = 0u64;
    let mut failures = Vec::new();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let progress = |copies: usize| {
        let verb = if dry_run { "planned" } else { "done" };
        format!(
            "{} keys scanned, {copies} copies {verb}",
            scanned_keys.load(Relaxed)
        )
    };
    loop {
        tokio::select! {
            next = outcomes.next() => {
                let Some(outcome) = next else { break };
                examined += 1;
                copies.extend(outcome.copies);
                deletes.extend(outcome.deletes);
                differing_by_delete += u64::from(outcome.differs_by_delete);
                skipped += outcome.skipped;
                failures.extend(outcome.failures);
            }
            _ = ticker.tick() => reporter.progressed(name.as_str(), "sync", &progress(copies.len())),
        }
    }
    let scanned = merge.await.context("the listing merge stopped")?;
    let ok = failures.is_empty() && scanned.unreachable.is_empty();
    let summary = progress(copies.len());
    reporter.finished(name.as_str(), "sync", &summary, ok);

    copies.sort_by(|a, b| (&a.key, &a.destination).cmp(&(&b.key, &b.destination)));
    failures.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
    deletes.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
    let count = copies.len() as u64;
    let deleted = deletes.len() as u64;
    Ok(SyncReport {
        name: name.to_string(),
        regions: regions.to_vec(),
        prefix: options.prefix.clone(),
        only_into: options.only_into.clone(),
        dry_run,
        keys_scanned: scanned.keys,
        keys_examined: examined,
        copies_made: if dry_run { 0 } else { count },
        copies_planned: if dry_run { count } else { 0 },
        copies_skipped: skipped,
        bytes_copied: if dry_run {
            0
        } else {
            copies.iter().map(|c| c.bytes).sum()
        },
        copies,
        carry_deletes: options.carry_deletes,
        deletes_made: if dry_run { 0 } else { deleted },
        deletes_planned: if dry_run { deleted } else { 0 },
        deletes,
        keys_differing_by_delete: differing_by_delete,
        failures,
        unreachable: scanned.unreachable,
        seconds: started.elapsed().as_secs_f64(),
        ok,
    })
}

/// The replication engine the function runs, on S3 with the operator's
/// credentials, for set `name`'s buckets in `account` and `regions` only.
/// Each region's client is made from the first region's on first use.
pub fn set_replicator(
    aws: &Aws,
    name: &SetName,
    account: &str,
    regions: &[String],
    marker_key: &MarkerKey,
    settings: &CopySettings,
) -> Replicator<SdkStore> {
    let clients = RegionalClients::new(aws.s3_config(&regions[0]));
    // Only the set's buckets in its member regions: a notice or a listing
    // that names any other bucket is refused.
    let naming = SetNaming::new(name.as_str(), account).within(regions);
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
    aws: &Aws,
    name: &SetName,
    account: &str,
    regions: &[String],
    settings: &FunctionSettings,
) -> Result<(Vec<Bucket>, Replicator<SdkStore>)> {
    let marker_key = crate::marker_key::for_set(aws, name, regions).await?;
    let replicator = set_replicator(
        aws,
        name,
        account,
        regions,
        &marker_key,
        &settings.copy_settings(),
    )
    .carrying_deletes(settings.replicate_deletes);
    let buckets = regions.iter().map(|r| replicator.set().bucket(r)).collect();
    Ok((buckets, replicator))
}

/// The set's buckets, by region index, and the engine that repairs them.
struct SetBuckets {
    regions: Vec<String>,
    buckets: Vec<Bucket>,
    replicator: Replicator<SdkStore>,
}

/// One region's listing as the merge consumes it.
struct Cursor {
    rx: mpsc::Receiver<Result<Vec<Listed>, String>>,
    page: VecDeque<Listed>,
    /// The listing ended (or failed).
    done: bool,
}

impl Cursor {
    /// Makes sure a head entry is buffered unless the listing is over.
    /// `Err` carries the listing's error; the region is then dead.
    async fn fill(&mut self) -> Result<(), String> {
        while self.page.is_empty() && !self.done {
            match self.rx.recv().await {
                Some(Ok(page)) => self.page = page.into(),
                Some(Err(error)) => {
                    self.done = true;
                    return Err(error);
                }
                None => self.done = true,
            }
        }
        Ok(())
    }
}

/// Lists every region in key order and merges the listings, sending every
/// key that needs a closer look to `work`.
async fn merge_listings(
    set: Arc<SetBuckets>,
    prefix: Option<String>,
    in_scope: u64,
    work: mpsc::Sender<Divergent>,
    scanned: Arc<AtomicU64>,
) -> Scanned {
    let mut cursors: Vec<Cursor> = (0..set.regions.len())
        .map(|index| {
            let (tx, rx) = mpsc::channel(PAGES_AHEAD);
            tokio::spawn(list_bucket(Arc::clone(&set), index, prefix.clone(), tx));
            Cursor {
                rx,
                page: VecDeque::new(),
                done: false,
            }
        })
        .collect();
    let mut live: u64 = (1u64 << set.regions.len()).wrapping_sub(1);
    if set.regions.len() == MAX_REGIONS {
        live = u64::MAX;
    }
    let mut unreachable = Vec::new();
    let mut keys = 0u64;
    loop {
        for (index, cursor) in cursors.iter_mut().enumerate() {
            if let Err(error) = cursor.fill().await {
                live &= !(1 << index);
                unreachable.push(UnreachableRegion {
                    region: set.regions[index].clone(),
                    error,
                });
            }
        }
        let Some(key) = cursors
            .iter()
            .filter_map(|c| c.page.front().map(|l| &l.key))
            .min()
            .cloned()
        else {
            break;
        };
        let mut present = Vec::new();
        for (index, cursor) in cursors.iter_mut().enumerate() {
            if cursor.page.front().is_some_and(|l| l.key == key) {
                let listed = cursor.page.pop_front().expect("the front was just seen");
                if live & (1 << index) != 0 {
                    present.push((index, listed.etag));
                }
            }
        }
        keys += 1;
        scanned.store(keys, Relaxed);
        if needs_repair(&present, live, in_scope)
            && work.send(Divergent { key, live }).await.is_err()
        {
            break;
        }
    }
    Scanned { keys, unreachable }
}

/// Whether a key needs a closer look: a live region in scope lacks it, or
/// its ETags differ (an in-scope region may hold a losing write).
fn needs_repair(present: &[(usize, Option<String>)], live: u64, in_scope: u64) -> bool {
    let held = present.iter().fold(0u64, |mask, (i, _)| mask | (1 << i));
    if live & in_scope & !held != 0 {
        return true;
    }
    let Some((_, first)) = present.first() else {
        return false;
    };
    let differs = present
        .iter()
        .any(|(_, etag)| etag != first || etag.is_none());
    differs && present.iter().any(|(i, _)| in_scope & (1 << i) != 0)
}

/// Pages through one bucket, sending each page (or the error that ended
/// the listing) to the merge.
async fn list_bucket(
    set: Arc<SetBuckets>,
    index: usize,
    prefix: Option<String>,
    pages_tx: mpsc::Sender<Result<Vec<Listed>, String>>,
) {
    let bucket = &set.buckets[index];
    let store = set.replicator.store();
    let mut start: Option<String> = None;
    loop {
        let message = match store
            .list_keys(bucket, prefix.as_deref(), start.as_deref())
            .await
        {
            Ok(page) => {
                start = page.next;
                Ok(page
                    .keys
                    .into_iter()
                    .map(|(key, etag)| Listed {
                        key,
                        etag: Some(etag),
                    })
                    .collect())
            }
            Err(error) => Err(format!("listing s3://{}: {error}", bucket.name)),
        };
        let failed = message.is_err();
        if pages_tx.send(message).await.is_err() || failed || start.is_none() {
            return;
        }
    }
}

/// Repairs one key with the replication engine: the winner among every
/// region's current object, copied where it is missing or beaten, or the
/// delete that deletes it carried where the set carries deletes.
async fn repair_key(
    set: &SetBuckets,
    divergent: Divergent,
    in_scope: u64,
    dry_run: bool,
) -> KeyOutcome {
    let key = divergent.key.as_str();
    let repair: Vec<bool> = (0..set.regions.len())
        .map(|i| divergent.live & in_scope & (1 << i) != 0)
        .collect();
    let result = set
        .replicator
        .repair_key(key, &set.buckets, &repair, dry_run)
        .await;
    KeyOutcome {
        copies: result
            .copies
            .iter()
            .map(|c| SyncCopy {
                key: key.to_owned(),
                source: set.regions[c.source].clone(),
                destination: set.regions[c.destination].clone(),
                reason: c.reason,
                bytes: c.bytes,
            })
            .collect(),
        deletes: result
            .deletes
            .iter()
            .map(|d| SyncDelete {
                key: key.to_owned(),
                region: set.regions[d.region].clone(),
            })
            .collect(),
        differs_by_delete: !result.kept_deletes.is_empty()
            && result.copies.is_empty()
            && result.deletes.is_empty(),
        skipped: 0,
        failures: result
            .failures
            .iter()
            .map(|f| SyncFailure {
                key: key.to_owned(),
                region: set.regions[f.region].clone(),
                source: f.source.map(|s| set.regions[s].clone()),
                error: f.error.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreeing_etags_everywhere_need_nothing() {
        let tag = Some("\"a\"".to_owned());
        let all = vec![(0, tag.clone()), (1, tag.clone()), (2, tag)];
        assert!(!needs_repair(&all, 0b111, u64::MAX));
    }

    #[test]
    fn a_missing_live_region_needs_repair_unless_out_of_scope_or_dead() {
        let tag = Some("\"a\"".to_owned());
        let two = vec![(0, tag.clone()), (1, tag)];
        assert!(needs_repair(&two, 0b111, u64::MAX));
        // Region 2 is unreachable: nothing to do for the others.
        assert!(!needs_repair(&two, 0b011, u64::MAX));
        // Only region 0 is being repaired, and it holds the key.
        assert!(!needs_repair(&two, 0b111, 0b001));
        assert!(needs_repair(&two, 0b111, 0b100));
    }

    #[test]
    fn differing_etags_need_repair() {
        let mixed = vec![(0, Some("\"a\"".into())), (1, Some("\"b\"".into()))];
        assert!(needs_repair(&mixed, 0b011, u64::MAX));
    }
}
