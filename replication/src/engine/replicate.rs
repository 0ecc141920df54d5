//! One notice, into one destination: decide, write, check, and log one
//! decision line.

use serde::Serialize;

use super::{ROUNDS, ReplicateError, Replicator};
use crate::event::S3Notice;
use crate::protocol::{CopyDecision, Kind, SourceDecision, decide_copy, decide_source};
use crate::store::{Bucket, ErrorKind, ObjectStore, Unreplicable};

/// What was done with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The source's write was copied to the destination.
    Copied,
    /// The source's current object is toastrep's copy of another region's
    /// write: that write's own notices carry it.
    SkippedCopy,
    /// The destination holds this write, or one that wins over it.
    SkippedUpToDate,
    /// The notified version is no longer the source's current object
    /// (deleted, or superseded by a write that brings its own notice).
    SkippedGone,
    /// A check put a winning version back on top.
    Restored,
    /// The destination deleted this write, or one that wins over it.
    SkippedDeleted,
    /// A delete was carried: a delete marker put on top.
    Deleted,
    /// A delete stays where it was made: the set does not carry deletes,
    /// or it deleted one version (never carried).
    KeptLocal,
    /// A delete held by the gate (the mass-delete breaker), not carried.
    Held,
    /// The object can never be copied as it is (see [`Unreplicable`]):
    /// reported once, neither retried nor counted as a failure.
    NotReplicable(Unreplicable),
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Copied => "copied",
            Decision::SkippedCopy => "skipped_copy",
            Decision::SkippedUpToDate => "skipped_up_to_date",
            Decision::SkippedGone => "skipped_gone",
            Decision::Restored => "restored",
            Decision::SkippedDeleted => "skipped_deleted",
            Decision::Deleted => "deleted",
            Decision::KeptLocal => "kept_local",
            Decision::Held => "held",
            Decision::NotReplicable(Unreplicable::Archived) => "not_replicable_archived",
            Decision::NotReplicable(Unreplicable::MetadataTooLarge) => {
                "not_replicable_metadata_too_large"
            }
            Decision::NotReplicable(Unreplicable::CustomerKey) => "not_replicable_customer_key",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Bytes written (copies and restores).
    pub bytes: u64,
    /// Versions a check put back on top.
    pub restores: u32,
    pub millis: u64,
}

impl Outcome {
    /// An outcome, before its time is measured.
    fn of(decision: Decision, bytes: u64, restores: u32) -> Self {
        Self {
            decision,
            bytes,
            restores,
            millis: 0,
        }
    }
}

impl<S: ObjectStore> Replicator<S> {
    /// Replicates `notice` into `destination` and logs exactly one
    /// `toastrep::decision` line.
    pub async fn replicate(
        &self,
        notice: &S3Notice,
        destination: &Bucket,
    ) -> Result<Outcome, ReplicateError> {
        let started = self.clock.now_ms();
        let result = match self.decide_and_write(notice, destination).await {
            // Reading the source (or the destination) showed an object no
            // one can copy as it is: decided once, like a refused copy.
            Err(ReplicateError::Store(error)) if let Some(why) = error.unreplicable() => {
                Ok(Outcome::of(Decision::NotReplicable(why), 0, 0))
            }
            result => result,
        };
        let millis = self.clock.now_ms().saturating_sub(started).max(0) as u64;
        match &result {
            Ok(outcome) => tracing::info!(
                target: "toastrep::decision",
                decision = outcome.decision.as_str(),
                key = %self.key_names.name(&notice.key),
                source_region = %notice.region,
                destination_region = %destination.region,
                bytes = outcome.bytes,
                restores = outcome.restores,
                ms = millis,
                version_id = notice.version_id.as_deref().unwrap_or(""),
            ),
            Err(error) => tracing::info!(
                target: "toastrep::decision",
                decision = "failed",
                key = %self.key_names.name(&notice.key),
                source_region = %notice.region,
                destination_region = %destination.region,
                ms = millis,
                version_id = notice.version_id.as_deref().unwrap_or(""),
                retryable = error.is_retryable(),
                error = %error.naming_keys(&*self.key_names),
            ),
        }
        result.map(|outcome| Outcome { millis, ..outcome })
    }

    async fn decide_and_write(
        &self,
        notice: &S3Notice,
        destination: &Bucket,
    ) -> Result<Outcome, ReplicateError> {
        let source = Bucket::new(&notice.region, &notice.bucket);
        // Only the set's own buckets: a notice naming any other bucket
        // (a forged message, a stray subscription) is not acted on.
        if !self.set.owns(&source) {
            return Err(ReplicateError::Foreign {
                set: self.set.set.clone(),
                region: source.region,
                bucket: source.name,
            });
        }
        let by = cause(notice);
        if notice.is_removal() {
            let decision = self.carry_delete(notice, &source, destination, &by).await?;
            return Ok(Outcome::of(decision, 0, 0));
        }
        if source == *destination {
            return self.own_region_write(notice, destination, &by).await;
        }
        // A failed condition means the source or the destination changed
        // since it was looked at (a 412 does not say which): look again.
        for _ in 0..ROUNDS {
            if let Some(outcome) = self.copy_round(notice, &source, destination, &by).await? {
                return Ok(outcome);
            }
        }
        Err(ReplicateError::Contended {
            region: destination.region.clone(),
            bucket: destination.name.clone(),
            key: notice.key.clone(),
            rounds: ROUNDS,
        })
    }

    /// A write in the function's own region: its own copy or restore needs
    /// nothing; anyone else's is checked against the rest of the set.
    async fn own_region_write(
        &self,
        notice: &S3Notice,
        destination: &Bucket,
        by: &str,
    ) -> Result<Outcome, ReplicateError> {
        // The writer's identity, where the event carries it (AWS: the role
        // session; the emulator says "EXAMPLE"): this function's own copy
        // or restore, which its writer checked. Without it, a HeadObject
        // finds the same.
        let own = self.own_writer.as_deref();
        if own.is_some_and(|own| {
            notice
                .principal
                .as_deref()
                .is_some_and(|p| p.starts_with(own))
        }) {
            return Ok(Outcome::of(Decision::SkippedCopy, 0, 0));
        }
        self.check_local_write(notice, destination, by).await
    }

    /// One look at the source and the destination, and the copy it calls
    /// for. `None` when a condition failed: something changed since it was
    /// looked at, so decide again.
    async fn copy_round(
        &self,
        notice: &S3Notice,
        source: &Bucket,
        destination: &Bucket,
        by: &str,
    ) -> Result<Option<Outcome>, ReplicateError> {
        let key = notice.key.as_str();
        let current = self.seen(source, key, None).await?;
        match decide_source(notice.version_id.as_deref(), current.as_ref()) {
            // The current object is another region's write, named by its
            // own notices; it cannot be a copy of this notice's.
            SourceDecision::Replica => return Ok(Some(Outcome::of(Decision::SkippedCopy, 0, 0))),
            SourceDecision::Gone => {
                let restores = self.owed_check(notice, destination, by).await?;
                return Ok(Some(Outcome::of(Decision::SkippedGone, 0, restores)));
            }
            SourceDecision::Replicate => {}
        }
        let current = current.expect("a write to replicate is current");
        let state = self.state(destination, key).await?;
        let decision = self
            .with_histories(key, |h| decide_copy(&current, &state, h))
            .await?;
        let held = state.object().cloned();
        let precondition = match decision {
            CopyDecision::Deleted => return Ok(Some(Outcome::of(Decision::SkippedDeleted, 0, 0))),
            CopyDecision::Beaten => {
                // What beats the source may be a restore this notice's
                // earlier attempt made before it failed: its check is owed.
                let held = held.expect("only a held write beats the source");
                let restores = if held.made_by(by) {
                    self.settle_knowing(destination, key, Some(held), by)
                        .await?
                        .restores
                } else {
                    0
                };
                return Ok(Some(Outcome::of(Decision::SkippedUpToDate, 0, restores)));
            }
            CopyDecision::Holds => {
                // A retry of a copy that landed: its check may be owed.
                let settled = self.settle_knowing(destination, key, held, by).await?;
                let outcome =
                    Outcome::of(Decision::SkippedUpToDate, settled.bytes, settled.restores);
                return Ok(Some(outcome));
            }
            CopyDecision::Copy(precondition) => precondition,
        };
        match self
            .write_copy(source, key, &current, destination, precondition, by)
            .await
        {
            Ok(_) => {
                let settled = self.settle(destination, key, by).await?;
                let bytes = current.head.size + settled.bytes;
                Ok(Some(Outcome::of(Decision::Copied, bytes, settled.restores)))
            }
            Err(error) if error.is_condition() || error.kind == ErrorKind::NotFound => Ok(None),
            Err(error) if let Some(why) = error.unreplicable() => {
                Ok(Some(Outcome::of(Decision::NotReplicable(why), 0, 0)))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// An earlier attempt at this notice may have written (a copy, or a
    /// check's restore) and failed before checking it; the source has
    /// moved on since, so this attempt copies nothing, but the check is
    /// owed still. The write's marker names the notice that made it.
    async fn owed_check(
        &self,
        notice: &S3Notice,
        destination: &Bucket,
        by: &str,
    ) -> Result<u32, ReplicateError> {
        match self.seen(destination, &notice.key, None).await? {
            Some(held) if held.made_by(by) => Ok(self
                .settle_knowing(destination, &notice.key, Some(held), by)
                .await?
                .restores),
            _ => Ok(0),
        }
    }

    /// A write in the function's own region. The other regions' functions
    /// copy it; here it is only checked: it may have landed on top of a
    /// version that wins over it (a copy of a write in the same second
    /// whose tie goes to another region), and no other notice would bring
    /// the winner back.
    async fn check_local_write(
        &self,
        notice: &S3Notice,
        bucket: &Bucket,
        by: &str,
    ) -> Result<Outcome, ReplicateError> {
        let current = self.seen(bucket, &notice.key, None).await?;
        let decision = match current {
            None => Decision::SkippedGone,
            // Superseded: the newer version's own notice checks it, unless
            // it is a restore this very check made before an attempt
            // failed, whose check is owed.
            Some(current)
                if notice
                    .version_id
                    .as_ref()
                    .is_some_and(|v| *v != current.head.version_id) =>
            {
                if current.made_by(by) {
                    let settled = self
                        .settle_knowing(bucket, &notice.key, Some(current), by)
                        .await?;
                    return Ok(Outcome::of(
                        Decision::SkippedGone,
                        settled.bytes,
                        settled.restores,
                    ));
                }
                Decision::SkippedGone
            }
            // toastrep's own write: its writer checked it, and a writer that
            // failed before checking finds the check it owes on its retry
            // (the write's marker names it).
            Some(current) if current.kind != Kind::Original => Decision::SkippedCopy,
            Some(current) => {
                let settled = self
                    .settle_knowing(bucket, &notice.key, Some(current), by)
                    .await?;
                return Ok(Outcome {
                    decision: if settled.restores > 0 {
                        Decision::Restored
                    } else {
                        Decision::SkippedUpToDate
                    },
                    bytes: settled.bytes,
                    restores: settled.restores,
                    millis: 0,
                });
            }
        };
        Ok(Outcome::of(decision, 0, 0))
    }
}

/// What a notice's writes are marked as made by: its source region and
/// version (or ETag, on an unversioned bucket).
fn cause(notice: &S3Notice) -> String {
    let id = notice
        .version_id
        .as_deref()
        .or(notice.etag.as_deref())
        .unwrap_or("");
    format!("{}:{id}", notice.region)
}
