//! Deletes: what a delete marker on top of a bucket deletes, and where a
//! delete is carried.
//!
//! A delete (DeleteObject without a version id) puts a delete marker on top
//! of its bucket. It removes the *value* the bucket held then: the winner
//! among every version below it. (Versions above an earlier delete marker
//! either won over what it removed, or were copies it deletes that a check
//! deleted again; either way the winner of all is what the bucket held.)
//! That write, and every write that loses to it, is deleted; a write that
//! wins over it is not. So a write racing a delete survives everywhere
//! (add-wins), and a delete is carried only where the destination's value
//! is the removed write or one that loses to it.
//!
//! A delete of one version (DeleteObject with a version id) is never
//! carried: nothing here decides on it, and the store has no call for it.

#[cfg(doc)]
use super::check_candidates;
use super::write::{Histories, NeedHistory, Write, beats};
use super::{Precondition, SKEW, Seen, VersionEntry};

/// A key deleted in one region: a delete marker is its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The delete marker on top.
    pub marker: String,
    /// The write the delete removed; `None` when the bucket held nothing
    /// (a delete of a missing key, or one whose versions have expired).
    pub removed: Option<Write>,
}

impl Tombstone {
    /// Whether `write` is deleted here: it is the removed write, or loses
    /// to it. A delete that removed nothing deletes nothing.
    pub fn covers(&self, write: &Write, histories: &Histories) -> Result<bool, NeedHistory> {
        match &self.removed {
            Some(removed) => Ok(!beats(write, removed, histories)?),
            None => Ok(false),
        }
    }
}

/// A region's state of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // One per region, for one decision.
pub enum State {
    /// An object is current.
    Object(Seen),
    /// A delete marker is current.
    Deleted(Tombstone),
    /// The key has no version there.
    Absent,
}

impl State {
    pub fn object(&self) -> Option<&Seen> {
        match self {
            State::Object(seen) => Some(seen),
            State::Deleted(_) | State::Absent => None,
        }
    }

    /// The destination condition for a write that replaces this state.
    pub fn precondition(&self) -> Precondition {
        Seen::precondition(self.object())
    }
}

/// Whether a version last modified at `last_modified` may hold a write
/// that wins over `best`: a copy is made after its original, so an older
/// version holds an older write. A key's versions are listed newest first,
/// so the first that cannot ends the search.
pub fn may_win(last_modified: i64, best: &Seen) -> bool {
    last_modified >= best.write.time - SKEW
}

/// The delete marker just below the objects on top of `history`, when it
/// was placed late enough to have landed beside `top` (see
/// [`check_candidates`]): its index in `history`. A copy decided before a
/// delete can land after it, on a store that ignores the copy's condition.
pub fn delete_candidate(history: &[VersionEntry], top: &Seen) -> Option<usize> {
    let index = history
        .iter()
        .position(|entry| matches!(entry, VersionEntry::DeleteMarker { .. }))?;
    match &history[index] {
        VersionEntry::DeleteMarker { last_modified, .. } if may_win(*last_modified, top) => {
            Some(index)
        }
        _ => None,
    }
}

/// What to do in a destination about a source region's delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteDecision {
    /// Put a delete marker on the destination's current object, on
    /// condition it is still the one looked at.
    Delete,
    /// The destination holds no object: deleted already, or never written.
    Holds,
    /// The destination holds a write that wins over the removed one: it
    /// stays (add-wins), and replicates to the deleting region.
    Survives,
    /// The source is no longer deleted (a later write brings its own
    /// notice), or its delete removed nothing.
    Gone,
}

/// Whether the source's delete is carried into the destination, given
/// the destination's value: the winner among its current object and the
/// versions that landed beside it (what its check leaves on top).
pub fn decide_delete(
    source: &State,
    destination: &State,
    histories: &Histories,
) -> Result<DeleteDecision, NeedHistory> {
    let State::Object(value) = destination else {
        return Ok(DeleteDecision::Holds);
    };
    let State::Deleted(tombstone) = source else {
        return Ok(DeleteDecision::Gone);
    };
    if tombstone.removed.is_none() {
        return Ok(DeleteDecision::Gone);
    }
    Ok(if tombstone.covers(&value.write, histories)? {
        DeleteDecision::Delete
    } else {
        DeleteDecision::Survives
    })
}

/// The part of a key's history (newest first) that existed at `at`
/// (seconds): from the newest version or delete marker no later than it.
pub fn history_at(history: &[VersionEntry], at: i64) -> &[VersionEntry] {
    let start = history
        .iter()
        .position(|entry| entry.last_modified() <= at)
        .unwrap_or(history.len());
    &history[start..]
}
