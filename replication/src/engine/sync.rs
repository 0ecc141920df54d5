//! Anti-entropy for one key: the winner among every region's current
//! object goes, through the write primitive, wherever it is missing or
//! beaten; or, where a delete deletes it and the set carries deletes, a
//! delete marker goes wherever an object is left. Used by `sync`,
//! `add-region`'s backfill and the simulation.

use futures::future::join_all;

use super::{Carried, Decision, ROUNDS, ReplicateError, Replicator};
use crate::protocol::{Reason, Seen, State, SyncPlan, decide_sync};
use crate::store::{Bucket, ObjectStore, Unreplicable};

/// What sync's copies are marked as made by.
const SYNC: &str = "sync";

/// A copy sync made (or would make, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedCopy {
    /// Index of the region copied from.
    pub source: usize,
    /// Index of the region copied into.
    pub destination: usize,
    pub reason: Reason,
    pub bytes: u64,
}

/// A delete sync carried (or would carry, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedDelete {
    /// Index of the region given a delete marker.
    pub region: usize,
}

/// A region of a key that could not be examined or repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairFailure {
    pub region: usize,
    /// The region copied from, for a failed copy.
    pub source: Option<usize>,
    pub error: String,
}

/// What sync did for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRepair {
    pub copies: Vec<RepairedCopy>,
    pub deletes: Vec<RepairedDelete>,
    /// Deletes not carried (or, on a dry run, that would not be): the
    /// region's mass-delete breaker holds the regions that made them.
    pub held: Vec<RepairedDelete>,
    /// Regions whose delete of the key stays there (the set does not carry
    /// deletes), while others hold it.
    pub kept_deletes: Vec<usize>,
    /// Versions a check put back on top after a copy.
    pub restores: u32,
    pub failures: Vec<RepairFailure>,
    /// Regions the winner can never be copied into as it is, and why:
    /// reported, not failed (see [`Unreplicable`]).
    pub not_replicable: Vec<(usize, Unreplicable)>,
}

impl KeyRepair {
    /// The key differs between regions only by a delete kept where it was
    /// made (the set does not carry deletes): nothing was copied or carried.
    pub fn differs_only_by_delete(&self) -> bool {
        !self.kept_deletes.is_empty()
            && self.copies.is_empty()
            && self.deletes.is_empty()
            && self.held.is_empty()
    }
}

/// A key's current state in every region, as one round of a repair read it.
struct Regions {
    /// Each region's state; a region that could not be read counts as
    /// holding nothing.
    known: Vec<State>,
    /// Which regions may be written this round: those asked to be repaired
    /// that could be read.
    writable: Vec<bool>,
}

impl<S: ObjectStore> Replicator<S> {
    /// Makes every region in `buckets` whose `repair` flag is set hold the
    /// winning write of `key`. On a dry run nothing is written and the plan
    /// is returned as copies.
    ///
    /// Each round reads every region, decides, and acts; a round whose
    /// conditional writes found the key changed decides again, at most
    /// [`ROUNDS`] times.
    pub async fn repair_key(
        &self,
        key: &str,
        buckets: &[Bucket],
        repair: &[bool],
        dry_run: bool,
    ) -> KeyRepair {
        let mut result = KeyRepair::default();
        for _ in 0..ROUNDS {
            result.failures.clear();
            result.not_replicable.clear();
            let Some(regions) = self.read_regions(key, buckets, repair, &mut result).await else {
                return result;
            };
            let Some(plan) = self.plan_repair(key, &regions, &mut result).await else {
                return result;
            };
            result.kept_deletes = plan.kept_deletes.clone();
            result.held.clear();
            // The regions whose delete deletes the winner, by name: a
            // region's breaker holding any of them holds the delete.
            let deleters: Vec<&str> = plan
                .deleted_in
                .iter()
                .map(|&i| buckets[i].region.as_str())
                .collect();
            let winner = regions.known[plan.source]
                .object()
                .cloned()
                .expect("the source holds the winner");
            if dry_run {
                self.preview(buckets, &plan, &winner, &deleters, &mut result)
                    .await;
                return result;
            }
            let deletes_changed = self
                .carry_deletes_of(key, buckets, &regions, &plan, &deleters, &mut result)
                .await;
            let copies_changed = self
                .copy_winner(key, buckets, &plan, &winner, &mut result)
                .await;
            if !deletes_changed && !copies_changed {
                return result;
            }
        }
        result.failures.push(RepairFailure {
            region: 0,
            source: None,
            error: format!(
                "{key} changed under {ROUNDS} decisions in a row; the next sync decides again"
            ),
        });
        result
    }

    /// Reads `key` in every region. `None` when a region holds an object
    /// no one can read as it is (SSE-C): it may hold the winner, so the key
    /// is reported into every other region and left alone, rather than
    /// decided without it.
    async fn read_regions(
        &self,
        key: &str,
        buckets: &[Bucket],
        repair: &[bool],
        result: &mut KeyRepair,
    ) -> Option<Regions> {
        let states = join_all(buckets.iter().map(|b| self.state(b, key))).await;
        if let Some((at, why)) = states
            .iter()
            .enumerate()
            .find_map(|(i, state)| match state {
                Err(ReplicateError::Store(error)) => error.unreplicable().map(|why| (i, why)),
                _ => None,
            })
        {
            result.not_replicable = (0..buckets.len())
                .filter(|&i| i != at && repair[i])
                .map(|i| (i, why))
                .collect();
            return None;
        }
        // A region that cannot be read is neither a source nor repaired
        // this time.
        let mut known = Vec::with_capacity(buckets.len());
        let mut writable = repair.to_vec();
        for (i, state) in states.into_iter().enumerate() {
            match state {
                Ok(state) => known.push(state),
                Err(error) => {
                    writable[i] = false;
                    known.push(State::Absent);
                    result.failures.push(self.failure(i, None, &error));
                }
            }
        }
        Some(Regions { known, writable })
    }

    /// What to do about `key`, reading the histories the decision needs.
    /// `None` when there is nothing to do, or the decision failed (recorded
    /// in `result`).
    async fn plan_repair(
        &self,
        key: &str,
        regions: &Regions,
        result: &mut KeyRepair,
    ) -> Option<SyncPlan> {
        let decided = self
            .with_histories(key, |h| {
                decide_sync(&regions.known, &regions.writable, self.carry_deletes, h)
            })
            .await;
        match decided {
            Ok(plan) => plan,
            Err(error) => {
                result.failures.push(self.failure(0, None, &error));
                None
            }
        }
    }

    /// A dry run: the copies the plan would make, and for each delete
    /// whether the region's breaker would hold it.
    async fn preview(
        &self,
        buckets: &[Bucket],
        plan: &SyncPlan,
        winner: &Seen,
        deleters: &[&str],
        result: &mut KeyRepair,
    ) {
        result.copies = plan
            .copies
            .iter()
            .map(|(destination, reason, _)| RepairedCopy {
                source: plan.source,
                destination: *destination,
                reason: *reason,
                bytes: winner.head.size,
            })
            .collect();
        for &region in &plan.deletes {
            match self
                .gate_holds(&buckets[region], Carried::Repair(deleters))
                .await
            {
                Ok(true) => result.held.push(RepairedDelete { region }),
                Ok(false) => result.deletes.push(RepairedDelete { region }),
                Err(error) => result.failures.push(self.failure(region, None, &error)),
            }
        }
    }

    /// Carries the winner's delete into the regions the plan names. Whether
    /// the deleting region took a write since (decide again).
    async fn carry_deletes_of(
        &self,
        key: &str,
        buckets: &[Bucket],
        regions: &Regions,
        plan: &SyncPlan,
        deleters: &[&str],
        result: &mut KeyRepair,
    ) -> bool {
        let Some(&deleting) = plan.deleted_in.first() else {
            return false;
        };
        let deleted = &regions.known[deleting];
        let deletes = join_all(plan.deletes.iter().map(|&region| async move {
            let why = Carried::Repair(deleters);
            (
                region,
                self.delete_into(&buckets[region], key, deleted, why).await,
            )
        }))
        .await;
        let mut changed = false;
        for (region, decision) in deletes {
            match decision {
                Ok(Decision::Deleted) => result.deletes.push(RepairedDelete { region }),
                Ok(Decision::Held) => result.held.push(RepairedDelete { region }),
                // The deleting region took a write since: decide again.
                Ok(Decision::SkippedGone) => changed = true,
                // Its value, beside a copy on top that loses to it, wins
                // over the delete: the copy's check owes it a restore.
                Ok(_) => {}
                Err(error) => result.failures.push(self.failure(region, None, &error)),
            }
        }
        changed
    }

    /// Copies the winner into the regions the plan names, each on its
    /// precondition, and settles each copy. Whether a region changed since
    /// it was read (decide again).
    async fn copy_winner(
        &self,
        key: &str,
        buckets: &[Bucket],
        plan: &SyncPlan,
        winner: &Seen,
        result: &mut KeyRepair,
    ) -> bool {
        let source = &buckets[plan.source];
        let writes = join_all(plan.copies.iter().map(
            |(destination, reason, precondition)| async move {
                let target = &buckets[*destination];
                let written = self
                    .write_copy(source, key, winner, target, precondition.clone(), SYNC)
                    .await
                    .map_err(ReplicateError::from);
                let settled = match written {
                    Ok(_) => self.settle(target, key, SYNC).await.map(Some),
                    Err(ReplicateError::Store(e)) if e.is_condition() => Ok(None),
                    Err(e) => Err(e),
                };
                (*destination, *reason, settled)
            },
        ))
        .await;
        let mut changed = false;
        for (destination, reason, settled) in writes {
            match settled {
                Ok(Some(settled)) => {
                    result.restores += settled.restores;
                    result.copies.push(RepairedCopy {
                        source: plan.source,
                        destination,
                        reason,
                        bytes: winner.head.size,
                    });
                }
                // Changed since it was looked at: decide again.
                Ok(None) => changed = true,
                Err(ReplicateError::Store(error)) if error.unreplicable().is_some() => {
                    let why = error.unreplicable().expect("matched");
                    result.not_replicable.push((destination, why));
                }
                Err(error) => {
                    let failure = self.failure(destination, Some(plan.source), &error);
                    result.failures.push(failure);
                }
            }
        }
        changed
    }

    fn failure(
        &self,
        region: usize,
        source: Option<usize>,
        error: &ReplicateError,
    ) -> RepairFailure {
        RepairFailure {
            region,
            source,
            error: error.naming_keys(&*self.key_names),
        }
    }
}
