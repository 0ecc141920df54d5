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
//! A delete marker on top deletes the write it removed and every write
//! that loses to it (see [`delete`]); a write that wins over it survives.
//!
//! Four decisions keep it so:
//! - [`decide_source`] / [`decide_copy`]: a region's new original is copied
//!   where it wins over what the destination holds (a delete included);
//! - [`delete::decide_delete`]: a region's delete is carried where it
//!   deletes the destination's current object, when the set carries deletes;
//! - [`decide_check`]: after any write lands in a bucket (a copy, a restore,
//!   or a user's write), the current object must win over every version
//!   and delete that landed beside it; if one of them wins, it is put back
//!   on top;
//! - [`decide_sync`]: anti-entropy over every region's state of a key.
//!
//! Writes are conditional on what the decision saw (`If-Match` /
//! `If-None-Match`), and checked afterwards, since a store may ignore the
//! condition.

pub mod delete;
pub mod key_ring;
pub mod marker;
pub mod observed;
pub mod write;

pub use delete::{DeleteDecision, State, Tombstone, decide_delete};
pub use key_ring::{RingError, Rotation};
pub use marker::{MarkerKey, MarkerKeys, SKEW};
pub use observed::{Headers, ObjectHead, Precondition, VersionEntry};
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
    /// For toastrep's copies: what made it (see [`marker::MarkerKeys::seal`]).
    pub by: Option<String>,
    /// A copy whose marker verifies only under a key the ring still accepts
    /// but no longer seals with: a rotation's sync seals it again (see
    /// [`Reason::Reseal`]) before the old key is dropped, after which it
    /// would read as an original.
    pub retired_key: bool,
}

impl Seen {
    /// Interprets a version of `key` in `region`'s bucket.
    pub fn of(region: &str, key: &str, head: ObjectHead, keys: &MarkerKeys) -> Seen {
        let object = marker::Object {
            key,
            region,
            metadata: &head.metadata,
            last_modified: head.last_modified,
            etag: &head.etag,
            size: head.size,
            etag_is_md5: head.etag_is_md5,
        };
        let opened = keys.open_with_key(&object);
        let retired_key = opened
            .as_ref()
            .is_some_and(|(_, _, kid)| *kid != keys.current_id());
        let (write, kind, by) = match opened {
            Some((write, by, _)) if write.region == region => (write, Kind::Restored, Some(by)),
            Some((write, by, _)) => (write, Kind::Replica, Some(by)),
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
            retired_key,
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
    /// The destination deleted this write, or one that wins over it.
    Deleted,
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
    destination: &State,
    histories: &Histories,
) -> Result<CopyDecision, NeedHistory> {
    let current = match destination {
        State::Object(current) => current,
        State::Absent => return Ok(CopyDecision::Copy(Precondition::IfNoneMatch)),
        State::Deleted(tombstone) => {
            return Ok(if tombstone.covers(&source.write, histories)? {
                CopyDecision::Deleted
            } else {
                CopyDecision::Copy(Precondition::IfNoneMatch)
            });
        }
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
    /// A delete that landed beside it deletes the winner: put a delete
    /// marker back on top, on condition the current object's ETag is
    /// still this one.
    Delete(String),
}

/// Decides whether the current object `top` must give way to one of the
/// `candidates` (see [`check_candidates`]) or to the delete that landed
/// beside it (see [`delete::delete_candidate`]).
pub fn decide_check(
    top: &Seen,
    candidates: &[Seen],
    tombstone: Option<&Tombstone>,
    histories: &Histories,
) -> Result<CheckDecision, NeedHistory> {
    let best = match best_of(
        candidates.iter().filter(|c| !c.write.same(&top.write)),
        histories,
    )? {
        Some(best) if beats(&best.write, &top.write, histories)? => Some(best),
        _ => None,
    };
    let winner = best.unwrap_or(top);
    if let Some(tombstone) = tombstone
        && tombstone.covers(&winner.write, histories)?
    {
        return Ok(CheckDecision::Delete(top.head.etag.clone()));
    }
    Ok(match best {
        Some(best) => CheckDecision::Restore {
            version: best.head.version_id.clone(),
            precondition: Seen::precondition(Some(top)),
        },
        None => CheckDecision::Settled,
    })
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The region holds no current object for the key.
    Missing,
    /// The region holds a write that loses to the winner.
    Stale,
    /// The region deleted an older write; the winner won over the delete
    /// (add-wins).
    Deleted,
    /// The region holds the winner, in a copy sealed by a key being
    /// retired: copied again, its marker is sealed by the current key.
    Reseal,
}

/// Sync's plan for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The index (into the regions given) of a region holding the winning
    /// write: the one to copy from.
    pub source: usize,
    /// Regions to copy the winner into, why, and on what condition.
    pub copies: Vec<(usize, Reason, Precondition)>,
    /// Regions whose delete deletes the winner.
    pub deleted_in: Vec<usize>,
    /// Regions to carry that delete into: the set carries deletes, and
    /// they hold an object.
    pub deletes: Vec<usize>,
    /// Regions that deleted the winner, left so: the set keeps deletes
    /// where they were made.
    pub kept_deletes: Vec<usize>,
}

impl SyncPlan {
    /// Whether the regions differ only by deletes kept where they were made.
    pub fn only_kept_deletes(&self) -> bool {
        self.copies.is_empty() && self.deletes.is_empty() && !self.kept_deletes.is_empty()
    }
}

/// What sync does for one key. `states[i]` is region i's state of it;
/// `repair[i]` whether region i may be written; `carry_deletes` whether the
/// set carries deletes. The winner is the best write any region holds; if
/// a region's delete deletes it, the key is deleted: everywhere when the
/// set carries deletes, else only there. `None` when no region holds an
/// object.
pub fn decide_sync(
    states: &[State],
    repair: &[bool],
    carry_deletes: bool,
    histories: &Histories,
) -> Result<Option<SyncPlan>, NeedHistory> {
    let Some(winner) = best_of(states.iter().filter_map(State::object), histories)? else {
        return Ok(None);
    };
    let mut deleting = Vec::new();
    for (i, state) in states.iter().enumerate() {
        if let State::Deleted(tombstone) = state
            && tombstone.covers(&winner.write, histories)?
        {
            deleting.push(i);
        }
    }
    // Copy from the winner's own region where it is current there, else
    // from any region holding it.
    let holds = |i: usize| {
        states[i]
            .object()
            .is_some_and(|s| s.write.same(&winner.write))
    };
    let resealed = |i: usize| states[i].object().is_some_and(|s| s.retired_key);
    let source = (0..states.len())
        .filter(|&i| holds(i))
        .max_by_key(|&i| states[i].object().is_some_and(|s| s.kind != Kind::Replica))
        .expect("the winner is held somewhere");
    let mut plan = SyncPlan {
        source,
        copies: Vec::new(),
        deleted_in: deleting.clone(),
        deletes: Vec::new(),
        kept_deletes: Vec::new(),
    };
    if !deleting.is_empty() && carry_deletes {
        // Every object left loses to the winner, so the delete deletes it.
        plan.deletes = (0..states.len())
            .filter(|&i| repair[i] && states[i].object().is_some())
            .collect();
        return Ok(Some(plan));
    }
    plan.kept_deletes = deleting;
    plan.copies = states
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            repair[*i] && (!holds(*i) || resealed(*i)) && !plan.kept_deletes.contains(i)
        })
        .map(|(i, state)| {
            let reason = match state {
                State::Object(_) if holds(i) => Reason::Reseal,
                State::Object(_) => Reason::Stale,
                State::Deleted(_) => Reason::Deleted,
                State::Absent => Reason::Missing,
            };
            (i, reason, state.precondition())
        })
        .collect();
    Ok(Some(plan))
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
