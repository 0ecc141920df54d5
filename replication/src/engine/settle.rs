//! The check after every write: the bucket's current object must win over
//! every version that landed beside it. Not best effort: if the check
//! cannot complete, the caller's record fails as retryable and runs again.

use super::{ROUNDS, ReplicateError, Replicator};
use crate::protocol::delete::delete_candidate;
use crate::protocol::{CheckDecision, Seen, VersionEntry, check_candidates, decide_check};
use crate::store::{Bucket, ObjectStore};

/// What a check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Versions put back on top because they won over the current object.
    pub restores: u32,
    /// Bytes those restores copied.
    pub bytes: u64,
    /// Delete markers put back on top because a delete beside the current
    /// object deleted it.
    pub deletes: u32,
}

impl<S: ObjectStore> Replicator<S> {
    /// Makes `bucket`'s current object of `key` the winner among the
    /// versions that may beat it, restoring the best one on top until none
    /// does. Each restore is itself a write under a condition, checked by
    /// the next round.
    /// Restores are marked as made `by` the caller's cause (a notice, or
    /// sync), so a retry of that notice knows the check it owes.
    pub async fn settle(
        &self,
        bucket: &Bucket,
        key: &str,
        by: &str,
    ) -> Result<Settled, ReplicateError> {
        self.settle_knowing(bucket, key, None, by).await
    }

    /// [`Replicator::settle`], given a version of the key the caller has
    /// just looked at: no second HeadObject when it is still on top.
    pub(crate) async fn settle_knowing(
        &self,
        bucket: &Bucket,
        key: &str,
        mut known: Option<Seen>,
        by: &str,
    ) -> Result<Settled, ReplicateError> {
        let mut settled = Settled::default();
        for _ in 0..ROUNDS {
            let history = self.store.versions(bucket, key).await?;
            let Some(VersionEntry::Object { version_id, .. }) = history.first() else {
                // No versions, or a delete marker on top: nothing is current.
                return Ok(settled);
            };
            let top = match known.take() {
                Some(seen) if seen.head.version_id == *version_id => seen,
                _ => match self.seen(bucket, key, Some(version_id)).await? {
                    Some(seen) => seen,
                    None => continue, // Removed since the listing: look again.
                },
            };
            let mut candidates = Vec::new();
            for version in check_candidates(&history, &top) {
                if let Some(seen) = self.seen(bucket, key, Some(&version)).await? {
                    candidates.push(seen);
                }
            }
            let tombstone = match delete_candidate(&history, &top) {
                Some(index) => match self.tombstone(bucket, key, &history[index..]).await? {
                    Some(tombstone) => Some(tombstone),
                    None => continue, // Changed since the listing: look again.
                },
                None => None,
            };
            let decision = self
                .with_histories(key, |h| {
                    decide_check(&top, &candidates, tombstone.as_ref(), h)
                })
                .await?;
            let (version, precondition) = match decision {
                CheckDecision::Settled => return Ok(settled),
                CheckDecision::Restore {
                    version,
                    precondition,
                } => (version, precondition),
                CheckDecision::Delete(etag) => {
                    match self.store.delete_object(bucket, key, &etag).await {
                        Ok(_) => {
                            settled.deletes += 1;
                            tracing::info!(
                                target: "toastrep::decision",
                                decision = "deleted",
                                key = %self.key_names.name(key),
                                bucket = %bucket.name,
                                region = %bucket.region,
                                "a delete beside the current object deletes it: put back on top"
                            );
                        }
                        Err(error) if error.is_condition() || error.is_not_found() => {}
                        Err(error) => return Err(error.into()),
                    }
                    continue;
                }
            };
            let winner: &Seen = candidates
                .iter()
                .find(|c| c.head.version_id == version)
                .expect("the decision names a candidate");
            match self
                .write_copy(bucket, key, winner, bucket, precondition, by)
                .await
            {
                Ok(_) => {
                    settled.restores += 1;
                    settled.bytes += winner.head.size;
                    tracing::info!(
                        target: "toastrep::decision",
                        decision = "restored",
                        key = %self.key_names.name(key),
                        bucket = %bucket.name,
                        region = %bucket.region,
                        origin_region = %winner.write.region,
                        origin_version = %winner.write.version,
                        "a winning version was put back on top"
                    );
                }
                // The bucket changed since the listing: look again.
                Err(error) if error.is_condition() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(ReplicateError::Contended {
            region: bucket.region.clone(),
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            rounds: ROUNDS,
        })
    }
}
