//! Anti-entropy over a range of keys: every region's bucket is listed in
//! key order over the range, the listings are merged, and every key that a
//! region lacks or whose ETags differ is repaired by [`Replicator::repair_key`].
//!
//! `toastrep sync` scans the whole key space in one process; the cloud
//! repair scans one range per Distributed Map item, and resumes a range
//! where the last invocation stopped (see [`ScanLimit`]). Both run this.
//!
//! ListObjectsV2 returns keys in UTF-8 binary order
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>),
//! so a range is `(after, upto]` in byte order, and each page starts after
//! the last key seen (StartAfter): a range needs no continuation token, and a
//! cursor is just a key.

use std::collections::VecDeque;

use futures::StreamExt;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::Replicator;
use super::sync::KeyRepair;
use crate::store::{Bucket, ObjectStore};

/// A region bitmask holds every region of a partition (the largest has 30-odd).
pub const MAX_REGIONS: usize = 64;

/// Keys `k` with `after < k <= upto` in byte order; `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upto: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange::default()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|a| key > a)
            && self.upto.as_deref().is_none_or(|u| key <= u)
    }

    /// Whether `key` is past the range's end.
    fn beyond(&self, key: &str) -> bool {
        self.upto.as_deref().is_some_and(|u| key > u)
    }

    /// The key space split at `bounds` (sorted, distinct): each bound ends
    /// one range, and the last range is unbounded above.
    pub fn split_at(bounds: &[String]) -> Vec<KeyRange> {
        let mut ranges = Vec::with_capacity(bounds.len() + 1);
        let mut after = None;
        for bound in bounds {
            ranges.push(KeyRange {
                after: after.clone(),
                upto: Some(bound.clone()),
            });
            after = Some(bound.clone());
        }
        ranges.push(KeyRange { after, upto: None });
        ranges
    }
}

/// When a scan stops before its range's end. A stopped scan returns a
/// cursor; a scan of the rest of the range from there goes on as if it
/// had never stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanLimit {
    /// Stop once this many keys were merged (the simulation's budget).
    pub keys: Option<u64>,
    /// Stop at this time, in Unix milliseconds on the replicator's clock
    /// (a Lambda invocation's budget).
    pub deadline: Option<i64>,
}

impl ScanLimit {
    fn reached(&self, keys: u64, now_ms: i64) -> bool {
        self.keys.is_some_and(|k| keys >= k) || self.deadline.is_some_and(|d| now_ms >= d)
    }
}

/// What to scan, and what to repair.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub range: KeyRange,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Per region (as `buckets`): whether it is repaired. Every region is
    /// read, as a source.
    pub repair: Vec<bool>,
    pub dry_run: bool,
    /// Examine every key, not only those a region lacks or whose ETags
    /// differ. An ETag names bytes, not a write: a later write of the same
    /// bytes (new metadata or tags, or the same file uploaded again) whose
    /// every notice was lost looks in sync to a listing. A deep scan costs
    /// a HeadObject per region and key.
    pub deep: bool,
    /// Keys examined and repaired at once.
    pub concurrency: usize,
    pub limit: ScanLimit,
}

/// What a scan saw and where it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEnd {
    /// Distinct keys merged.
    pub keys_scanned: u64,
    /// Keys that needed a closer look.
    pub keys_examined: u64,
    /// Regions (by index) whose listing failed, with the error: neither
    /// read nor repaired after that.
    pub unreachable: Vec<(usize, String)>,
    /// Where to resume, if the limit stopped the scan before the range's
    /// end: every key up to and including it was handled.
    pub resume_after: Option<String>,
}

/// What a scan reports as it goes.
pub enum ScanStep<'a> {
    /// A key merged from the listings (every key of the range, in order).
    Merged(&'a str),
    /// A key that needed a closer look, and what its repair did.
    Repaired(&'a str, &'a KeyRepair),
    /// Keys merged so far.
    Scanned(u64),
}

/// One region's listing over the range.
struct Cursor {
    page: VecDeque<(String, String)>,
    /// The last key listed: the next page starts after it.
    after: Option<String>,
    done: bool,
}

impl<S: ObjectStore> Replicator<S> {
    /// Scans `options.range` of `buckets`, repairing every key that needs
    /// it; `step` sees each examined key's result, and the count of keys
    /// merged after every batch. The listing, the
    /// merge and the repairs run in this task: a page of every region is
    /// merged, its keys that need repair are repaired `concurrency` at a
    /// time, and only then is the limit looked at, so a cursor never
    /// passes a key still being repaired.
    pub async fn scan(
        &self,
        buckets: &[Bucket],
        options: &ScanOptions,
        mut step: impl FnMut(ScanStep<'_>),
    ) -> ScanEnd {
        assert!(
            !buckets.is_empty() && buckets.len() <= MAX_REGIONS,
            "a scan needs 1 to {MAX_REGIONS} regions"
        );
        let mut end = ScanEnd::default();
        let mut cursors: Vec<Cursor> = buckets
            .iter()
            .map(|_| Cursor {
                page: VecDeque::new(),
                after: options.range.after.clone(),
                done: false,
            })
            .collect();
        let mut live = vec![true; buckets.len()];
        loop {
            self.refill(buckets, options, &mut cursors, &mut live, &mut end)
                .await;
            let (batch, last) =
                self.merge_batch(buckets, options, &mut cursors, &live, &mut end, &mut step);
            let exhausted = cursors.iter().all(|c| c.done && c.page.is_empty());
            end.keys_examined += batch.len() as u64;
            self.repair_batch(batch, buckets, options, &mut step).await;
            step(ScanStep::Scanned(end.keys_scanned));
            if exhausted {
                return end;
            }
            if last.is_some() && options.limit.reached(end.keys_scanned, self.clock.now_ms()) {
                end.resume_after = last;
                return end;
            }
        }
    }

    /// Merges the listings' fronts, key by key, up to the first key where
    /// some live listing has to be fetched again (past it, that region's
    /// keys are unknown), or until a batch is full or the limit reached.
    /// The keys to examine, each with the regions to repair, and the last
    /// key merged.
    fn merge_batch(
        &self,
        buckets: &[Bucket],
        options: &ScanOptions,
        cursors: &mut [Cursor],
        live: &[bool],
        end: &mut ScanEnd,
        step: &mut impl FnMut(ScanStep<'_>),
    ) -> (Vec<(String, Vec<bool>)>, Option<String>) {
        let concurrency = options.concurrency.max(1);
        let horizon = cursors
            .iter()
            .filter(|c| !c.done)
            .filter_map(|c| c.page.back().map(|(k, _)| k.clone()))
            .min();
        let mut batch = Vec::new();
        let mut last = None;
        while let Some(key) = cursors
            .iter()
            .filter_map(|c| c.page.front().map(|(k, _)| k))
            .min()
            .cloned()
        {
            if horizon.as_ref().is_some_and(|h| key > *h) {
                break;
            }
            let mut present = Vec::new();
            for (i, cursor) in cursors.iter_mut().enumerate() {
                if cursor.page.front().is_some_and(|(k, _)| *k == key) {
                    let (_, etag) = cursor.page.pop_front().expect("the front was just seen");
                    if live[i] {
                        present.push((i, etag));
                    }
                }
            }
            end.keys_scanned += 1;
            step(ScanStep::Merged(&key));
            let repair: Vec<bool> = (0..buckets.len())
                .map(|i| live[i] && options.repair.get(i).copied().unwrap_or(false))
                .collect();
            let examine = if options.deep {
                repair.iter().any(|r| *r)
            } else {
                needs_repair(&present, live, &repair, self.carry_deletes)
            };
            if examine {
                batch.push((key.clone(), repair));
            }
            last = Some(key);
            // Look at the limit (and the clock) often enough.
            if batch.len() >= concurrency * 4
                || (options.limit.keys.is_some()
                    && options.limit.reached(end.keys_scanned, self.clock.now_ms()))
            {
                break;
            }
        }
        (batch, last)
    }

    /// Repairs a batch's keys, `options.concurrency` at a time, reporting
    /// each as it finishes.
    async fn repair_batch(
        &self,
        batch: Vec<(String, Vec<bool>)>,
        buckets: &[Bucket],
        options: &ScanOptions,
        step: &mut impl FnMut(ScanStep<'_>),
    ) {
        let mut results = futures::stream::iter(batch)
            .map(|(key, repair)| async move {
                let result = self
                    .repair_key(&key, buckets, &repair, options.dry_run)
                    .await;
                (key, result)
            })
            .buffer_unordered(options.concurrency.max(1));
        while let Some((key, result)) = results.next().await {
            step(ScanStep::Repaired(&key, &result));
        }
    }

    /// Refills every empty cursor, all regions at once. A region whose
    /// listing fails is out of the scan: it is recorded as unreachable, and
    /// nothing is repaired from or into it.
    async fn refill(
        &self,
        buckets: &[Bucket],
        options: &ScanOptions,
        cursors: &mut [Cursor],
        live: &mut [bool],
        end: &mut ScanEnd,
    ) {
        let fills = join_all(cursors.iter().enumerate().map(|(i, cursor)| async move {
            if !cursor.page.is_empty() || cursor.done {
                return None;
            }
            Some(
                self.store()
                    .list_keys(
                        &buckets[i],
                        options.prefix.as_deref(),
                        cursor.after.as_deref(),
                    )
                    .await,
            )
        }))
        .await;
        for (i, fill) in fills.into_iter().enumerate() {
            let cursor = &mut cursors[i];
            match fill {
                None => {}
                Some(Ok(page)) => {
                    let more = page.next.is_some();
                    cursor.after = page
                        .keys
                        .last()
                        .map(|(k, _)| k.clone())
                        .or(cursor.after.take());
                    let before = page.keys.len();
                    cursor.page.extend(
                        page.keys
                            .into_iter()
                            .filter(|(k, _)| !options.range.beyond(k)),
                    );
                    cursor.done = !more || cursor.page.len() < before || cursor.page.is_empty();
                }
                Some(Err(error)) => {
                    cursor.done = true;
                    cursor.page.clear();
                    live[i] = false;
                    end.unreachable.push((
                        i,
                        format!(
                            "listing s3://{}: {}",
                            buckets[i].name,
                            self.naming_key_of(&error)
                        ),
                    ));
                }
            }
        }
    }
}

/// Whether a key needs a closer look: a live region being repaired lacks
/// it, or its ETags differ and some holder is repaired (it may hold a
/// losing write), or (when the set carries deletes) a live region lacks it
/// and a holder is repaired (that region may have deleted it, a delete the
/// holder is owed; the cloud repair repairs one region at a time).
pub fn needs_repair(
    present: &[(usize, String)],
    live: &[bool],
    repair: &[bool],
    carry_deletes: bool,
) -> bool {
    let held = |i: usize| present.iter().any(|(p, _)| *p == i);
    if (0..live.len()).any(|i| live[i] && repair[i] && !held(i)) {
        return true;
    }
    if carry_deletes
        && (0..live.len()).any(|i| live[i] && !held(i))
        && present.iter().any(|(i, _)| repair[*i])
    {
        return true;
    }
    let Some((_, first)) = present.first() else {
        return false;
    };
    present.iter().any(|(_, etag)| etag != first) && present.iter().any(|(i, _)| repair[*i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(regions: &[usize], tag: &str) -> Vec<(usize, String)> {
        regions.iter().map(|&i| (i, tag.to_owned())).collect()
    }

    #[test]
    fn agreeing_etags_everywhere_need_nothing() {
        assert!(!needs_repair(
            &tagged(&[0, 1, 2], "a"),
            &[true; 3],
            &[true; 3],
            true
        ));
    }

    #[test]
    fn a_missing_live_region_needs_repair_unless_out_of_scope_or_dead() {
        let two = tagged(&[0, 1], "a");
        assert!(needs_repair(&two, &[true; 3], &[true; 3], false));
        // Region 2 is unreachable: nothing to do for the others.
        assert!(!needs_repair(&two, &[true, true, false], &[true; 3], false));
        // Only region 0 is being repaired, and it holds the key.
        assert!(!needs_repair(
            &two,
            &[true; 3],
            &[true, false, false],
            false
        ));
        assert!(needs_repair(&two, &[true; 3], &[false, false, true], false));
    }

    #[test]
    fn a_region_lacking_a_key_may_owe_its_delete_to_a_repaired_holder() {
        let two = tagged(&[0, 1], "a");
        // Region 2 may have deleted the key: where the set carries deletes,
        // region 0's own repair looks.
        assert!(needs_repair(&two, &[true; 3], &[true, false, false], true));
        // Not when region 2 is unreachable, or nothing repaired holds it.
        assert!(!needs_repair(
            &two,
            &[true, true, false],
            &[true, false, false],
            true
        ));
        let one = tagged(&[0], "a");
        assert!(!needs_repair(&one, &[true, true], &[false, false], true));
    }

    #[test]
    fn differing_etags_need_repair() {
        let mixed = vec![(0, "a".to_owned()), (1, "b".to_owned())];
        assert!(needs_repair(&mixed, &[true; 2], &[true; 2], false));
    }

    #[test]
    fn ranges_split_the_key_space_without_gaps_or_overlaps() {
        let ranges = KeyRange::split_at(&["g".to_owned(), "p".to_owned()]);
        assert_eq!(ranges.len(), 3);
        for key in ["", "a", "g", "g0", "p", "pz", "\u{10ffff}"] {
            let holders = ranges.iter().filter(|r| r.contains(key)).count();
            assert_eq!(holders, 1, "{key:?} is in {holders} ranges");
        }
        assert!(ranges[0].contains("g") && ranges[1].contains("g0"));
    }
}
