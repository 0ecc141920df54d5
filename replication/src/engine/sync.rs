//! Anti-entropy for one key: the winner among every region's current
//! object goes, through the write primitive, wherever it is missing or
//! beaten. Used by `sync`, `add-region`'s backfill and the simulation.

use futures::future::join_all;

use super::{ROUNDS, ReplicateError, Replicator};
use crate::protocol::{Reason, Seen, decide_sync};
use crate::store::{Bucket, ObjectStore};

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
    /// Versions a check put back on top after a copy.
    pub restores: u32,
    pub failures: Vec<RepairFailure>,
}

impl<S: ObjectStore> Replicator<S> {
    /// Makes every region in `buckets` whose `repair` flag is set hold the
    /// winning write of `key`. On a dry run nothing is written and the plan
    /// is returned as copies.
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
            // Every region's current object; a region that cannot be read
            // is neither a source nor repaired this time.
            let heads = join_all(buckets.iter().map(|b| self.seen(b, key, None))).await;
            let mut currents: Vec<Option<Seen>> = Vec::with_capacity(buckets.len());
            let mut writable = repair.to_vec();
            for (i, head) in heads.into_iter().enumerate() {
                match head {
                    Ok(seen) => currents.push(seen),
                    Err(error) => {
                        writable[i] = false;
                        currents.push(None);
                        result.failures.push(RepairFailure {
                            region: i,
                            source: None,
                            error: error.to_string(),
                        });
                    }
                }
            }
            let plan = match self
                .with_histories(key, |h| decide_sync(&currents, &writable, h))
                .await
            {
                Ok(Some(plan)) => plan,
                Ok(None) => return result,
                Err(error) => {
                    result.failures.push(RepairFailure {
                        region: 0,
                        source: None,
                        error: error.to_string(),
                    });
                    return result;
                }
            };
            let winner = currents[plan.source]
                .clone()
                .expect("the source holds the winner");
            let source = &buckets[plan.source];
            if dry_run {
                result.copies = plan
                    .targets
                    .iter()
                    .map(|(destination, reason, _)| RepairedCopy {
                        source: plan.source,
                        destination: *destination,
                        reason: *reason,
                        bytes: winner.head.size,
                    })
                    .collect();
                return result;
            }
            let writes = join_all(plan.targets.iter().map(
                |(destination, reason, precondition)| {
                    let winner = &winner;
                    async move {
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
                    }
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
                    Err(error) => result.failures.push(RepairFailure {
                        region: destination,
                        source: Some(plan.source),
                        error: error.to_string(),
                    }),
                }
            }
            if !changed {
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
}
