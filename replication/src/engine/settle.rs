//! The check after every write: the bucket's current object must win over
//! every version that landed beside it. Not best effort: if the check
//! cannot complete, the caller's record fails as retryable and runs again.

use super::{ROUNDS, ReplicateError, Replicator};
use crate::protocol::{CheckDecision, Histories, Seen, check_candidates, decide_check};
use crate::store::{Bucket, ObjectStore, VersionEntry};

/// What a check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Versions put back on top because they won over the current object.
    pub restores: u32,
    /// Bytes those restores copied.
    pub bytes: u64,
}

impl<S: ObjectStore> Replicator<S> {
    /// Makes `bucket`'s current object of `key` the winner among the
    /// versions that may beat it, restoring the best one on top until none
    /// does. Each restore is itself a write under a condition, checked by
    /// the next round.
    pub async fn settle(&self, bucket: &Bucket, key: &str) -> Result<Settled, ReplicateError> {
        let mut settled = Settled::default();
        for _ in 0..ROUNDS {
            let history = self.store.versions(bucket, key).await?;
            let Some(VersionEntry::Object { version_id, .. }) = history.first() else {
                // No versions, or a delete marker on top: nothing is current.
                return Ok(settled);
            };
            let Some(top) = self.seen(bucket, key, Some(version_id)).await? else {
                continue; // Removed since the listing: look again.
            };
            let mut candidates = Vec::new();
            for version in check_candidates(&history, &top) {
                if let Some(seen) = self.seen(bucket, key, Some(&version)).await? {
                    candidates.push(seen);
                }
            }
            let decision = self
                .with_histories(key, Histories::default(), |h| {
                    decide_check(&top, &candidates, h)
                })
                .await?;
            let CheckDecision::Restore {
                version,
                precondition,
            } = decision
            else {
                return Ok(settled);
            };
            let winner: &Seen = candidates
                .iter()
                .find(|c| c.head.version_id == version)
                .expect("the decision names a candidate");
            match self
                .write_copy(
                    bucket,
                    key,
                    &winner.head,
                    &winner.write,
                    bucket,
                    precondition,
                )
                .await
            {
                Ok(_) => {
                    settled.restores += 1;
                    settled.bytes += winner.head.size;
                    tracing::info!(
                        target: "toastrep::decision",
                        decision = "restored",
                        key,
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
