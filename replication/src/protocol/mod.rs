//! The replication protocol, with no I/O: every decision is a pure function
//! of object states the caller observed. The function, `sync`, `replay` and
//! `add-region`'s backfill all decide here, and the simulation proves these
//! decisions converge (see `tests/simulation.rs`).
//!
//! A region's bucket holds, per key, a history of versions. Each version is
//! either an *original* (a user's write there) or a toastrep copy naming
//! the original it copies (see [`marker`]). The set converges when every
//! region's current object is a copy of (or is) the same write: the winner
//! by [`write::compare`] among every write of the key.
//!
//! Three decisions keep it so:
//! - [`decide_source`] / [`decide_copy`]: a region's new original is copied
//!   where it wins over what the destination holds;
//! - [`decide_check`]: after any write lands in a bucket (a copy, a restore,
//!   or a user's write), the current object must win over every version
//!   that landed beside it; if one of them wins, it is put back on top;
//! - [`decide_sync`]: anti-entropy over every region's current object.
//!
//! Writes are conditional on what the decision saw (`If-Match` /
//! `If-None-Match`), and checked afterwards, since a store may ignore the
//! condition.

pub mod marker;
pub mod write;

use crate::store::{ObjectHead, Precondition, VersionEntry};
pub use marker::{MarkerKey, SKEW};
pub use write::{Histories, NeedHistory, Write, beats, compare};

/// What a version is, once its marker is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user's write in this bucket (or anything whose marker does not verify).
    Original,
    /// toastrep's copy of another region's write.
    Replica,
    /// toastrep's copy of this bucket's own earlier write, put back on top.
    /// It stands for that write, which replicates from here like an original.
    Restored,
}

/// One version of a key in one region, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub head: ObjectHead,
    /// The original write this version is or copies.
    pub write: Write,
    pub kind: Kind,
    /// For toastrep's copies: what made it (see [`marker::MarkerKey::seal`]).
    pub by: Option<String>,
}

impl Seen {
    /// Interprets a version of `key` in `region`'s bucket.
    pub fn of(region: &str, key: &str, head: ObjectHead, marker_key: &MarkerKey) -> Seen {
        let (write, kind, by) =
            match marker_key.open(key, region, &head.metadata, head.last_modified) {
                Some((write, by)) if write.region == region => (write, Kind::Restored, Some(by)),
                Some((write, by)) => (write, Kind::Replica, Some(by)),
                None => (
                    Write {
                        region: region.to_owned(),
                        time: head.last_modified,
                        version: head.version_id.clone(),
                        etag: head.etag.clone(),
                    },
                    Kind::Original,
                    None,
                ),
            };
        Seen {
            head,
            write,
            kind,
            by,
        }
    }

    /// Whether this is toastrep's write, made for `cause`.
    pub fn made_by(&self, cause: &str) -> bool {
        self.by.as_deref() == Some(cause)
    }

    /// The destination condition for a write that replaces this version.
    pub fn precondition(current: Option<&Seen>) -> Precondition {
        match current {
            Some(seen) => Precondition::IfMatch(seen.head.etag.clone()),
            None => Precondition::IfNoneMatch,
        }
    }
}

/// What to do with a notice of a write in a source region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDecision {
    /// The notified version is no longer current there: deleted, or
    /// superseded by a write that brings its own notice.
    Gone,
    /// The current version is toastrep's copy of another region's write:
    /// that write's own notices carry it; copying it on would loop.
    Replica,
    /// Replicate the current object (an original, or a restored one).
    Replicate,
}

/// Whether a notice of `notified` (a version id) in `region` is to be
/// replicated, given the source's current object.
pub fn decide_source(notified: Option<&str>, current: Option<&Seen>) -> SourceDecision {
    let Some(current) = current else {
        return SourceDecision::Gone;
    };
    if notified.is_some_and(|v| v != current.head.version_id) {
        return SourceDecision::Gone;
    }
    match current.kind {
        Kind::Replica => SourceDecision::Replica,
        Kind::Original | Kind::Restored => SourceDecision::Replicate,
    }
}

/// What to do in a destination about a source write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyDecision {
    /// Copy it, on condition the destination is still as seen.
    Copy(Precondition),
    /// The destination already holds this very write.
    Holds,
    /// The destination holds a write that wins over it.
    Beaten,
}

/// Whether `source`, its region's current object, is copied over the
/// destination's current object.
///
/// An original on top of its bucket is that region's newest write, which
/// orders it against any other write of the region with no history. A
/// restored write on top is not (it may be an older write put back over a
/// newer one that a later check puts back in turn): against a write of its
/// own region it is ordered by the region's history, fetched on demand.
pub fn decide_copy(
    source: &Seen,
    destination: Option<&Seen>,
    histories: &Histories,
) -> Result<CopyDecision, NeedHistory> {
    let Some(current) = destination else {
        return Ok(CopyDecision::Copy(Precondition::IfNoneMatch));
    };
    let write = &source.write;
    if current.write.same(write) {
        return Ok(CopyDecision::Holds);
    }
    let known = match source.kind {
        Kind::Original => histories.clone().latest(&write.region, &write.version),
        Kind::Replica | Kind::Restored => histories.clone(),
    };
    Ok(if beats(write, &current.write, &known)? {
        CopyDecision::Copy(Seen::precondition(Some(current)))
    } else {
        CopyDecision::Beaten
    })
}

/// The versions that may win over the current object `top`: every version
/// since the newest delete marker whose Last-Modified is late enough to
/// hold a write as late as `top`'s (a copy is made after its original, so
/// an older copy holds an older write), except `top` itself.
pub fn check_candidates(history: &[VersionEntry], top: &Seen) -> Vec<String> {
    history
        .iter()
        .take_while(|entry| matches!(entry, VersionEntry::Object { .. }))
        .filter_map(|entry| match entry {
            VersionEntry::Object {
                version_id,
                last_modified,
                ..
            } if *version_id != top.head.version_id && *last_modified >= top.write.time - SKEW => {
                Some(version_id.clone())
            }
            _ => None,
        })
        .collect()
}

/// What a check of a bucket's current object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckDecision {
    /// The current object wins over every candidate.
    Settled,
    /// This version wins over the current object: copy it back on top, on
    /// condition the current object is still `top`.
    Restore {
        version: String,
        precondition: Precondition,
    },
}

/// Decides whether the current object `top` must give way to one of the
/// `candidates` (see [`check_candidates`]).
pub fn decide_check(
    top: &Seen,
    candidates: &[Seen],
    histories: &Histories,
) -> Result<CheckDecision, NeedHistory> {
    let best = best_of(
        candidates.iter().filter(|c| !c.write.same(&top.write)),
        histories,
    )?;
    match best {
        Some(best) if beats(&best.write, &top.write, histories)? => Ok(CheckDecision::Restore {
            version: best.head.version_id.clone(),
            precondition: Seen::precondition(Some(top)),
        }),
        _ => Ok(CheckDecision::Settled),
    }
}

/// The winning version among `seen`: the first of equal writes.
pub fn best_of<'a>(
    seen: impl IntoIterator<Item = &'a Seen>,
    histories: &Histories,
) -> Result<Option<&'a Seen>, NeedHistory> {
    let mut best: Option<&Seen> = None;
    for candidate in seen {
        best = match best {
            Some(b) if !beats(&candidate.write, &b.write, histories)? => Some(b),
            _ => Some(candidate),
        };
    }
    Ok(best)
}

/// Why a region gets a copy from sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The region holds no current object for the key.
    Missing,
    /// The region holds a write that loses to the winner.
    Stale,
}

/// Sync's plan for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The index (into the regions given) to copy the winner from.
    pub source: usize,
    /// Regions to copy into, why, and on what condition.
    pub targets: Vec<(usize, Reason, Precondition)>,
}

/// Which regions need the winning write of a key. `currents[i]` is region
/// i's current object (`None`: it has none); `repair[i]` whether region i
/// may be written. `None` when nobody holds the key.
pub fn decide_sync(
    currents: &[Option<Seen>],
    repair: &[bool],
    histories: &Histories,
) -> Result<Option<SyncPlan>, NeedHistory> {
    let Some(winner) = best_of(currents.iter().flatten(), histories)? else {
        return Ok(None);
    };
    // Copy from the winner's own region where it is current there, else
    // from any region holding it.
    let holds = |i: usize| {
        currents[i]
            .as_ref()
            .is_some_and(|s| s.write.same(&winner.write))
    };
    let source = (0..currents.len())
        .filter(|&i| holds(i))
        .max_by_key(|&i| {
            currents[i]
                .as_ref()
                .is_some_and(|s| s.kind != Kind::Replica)
        })
        .expect("the winner is held somewhere");
    let targets = currents
        .iter()
        .enumerate()
        .filter(|(i, _)| repair[*i] && !holds(*i))
        .map(|(i, current)| {
            let reason = if current.is_some() {
                Reason::Stale
            } else {
                Reason::Missing
            };
            (i, reason, Seen::precondition(current.as_ref()))
        })
        .collect();
    Ok(Some(SyncPlan { source, targets }))
}

/// The regions whose history orders writes that tie in `seen`: the same
/// region, the same second, different versions. Fetch them and decide again.
pub fn histories_needed<'a>(seen: impl IntoIterator<Item = &'a Seen>) -> Vec<String> {
    let seen: Vec<&Seen> = seen.into_iter().collect();
    let mut regions: Vec<String> = Vec::new();
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            if a.write.region == b.write.region
                && a.write.time == b.write.time
                && a.write.version != b.write.version
                && !regions.contains(&a.write.region)
            {
                regions.push(a.write.region.clone());
            }
        }
    }
    regions
}

#[cfg(test)]
mod tests;
