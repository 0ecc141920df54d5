//! Deletes against a store: what a delete marker on top deletes, and
//! carrying one region's delete into another.

use super::replicate::Decision;
use super::{Carried, Gate, ROUNDS, ReplicateError, Replicator};
use crate::event::S3Notice;
use crate::protocol::VersionEntry;
use crate::protocol::delete::may_win;
use crate::protocol::{
    DeleteDecision, Seen, State, Tombstone, beats, best_of, check_candidates, decide_delete,
};
use crate::store::{Bucket, Lookup, ObjectStore};

impl<S: ObjectStore> Replicator<S> {
    /// A region's state of `key`: its current object, the delete on top
    /// (read from the key's history only then), or nothing.
    pub(crate) async fn state(&self, bucket: &Bucket, key: &str) -> Result<State, ReplicateError> {
        for _ in 0..ROUNDS {
            match self.store.head(bucket, key, None).await? {
                Lookup::Found(head) => {
                    return Ok(State::Object(Seen::of(
                        &bucket.region,
                        key,
                        head,
                        &self.keys,
                    )));
                }
                Lookup::Missing => return Ok(State::Absent),
                Lookup::DeleteMarker => {
                    let history = self.store.versions(bucket, key).await?;
                    match history.first() {
                        Some(VersionEntry::DeleteMarker { .. }) => {
                            if let Some(tombstone) = self.tombstone(bucket, key, &history).await? {
                                return Ok(State::Deleted(tombstone));
                            }
                        }
                        Some(VersionEntry::Object { .. }) => {
                            if let Some(seen) = self.seen(bucket, key, None).await? {
                                return Ok(State::Object(seen));
                            }
                        }
                        None => return Ok(State::Absent),
                    }
                    // Changed between the calls: look again.
                }
            }
        }
        Err(self.contended(bucket, key))
    }

    /// A region's value of `key`: what its check leaves on top (the winner
    /// among the current object and the versions that landed beside it),
    /// or the delete on top; with the current object's ETag. `None` when
    /// the key changed while it was read: look again.
    async fn value(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<Option<(State, Option<String>)>, ReplicateError> {
        let history = self.store.versions(bucket, key).await?;
        self.value_in(bucket, key, &history).await
    }

    /// [`Replicator::value`] given the key's history, as it is or as it was
    /// at some time.
    pub(super) async fn value_in(
        &self,
        bucket: &Bucket,
        key: &str,
        history: &[VersionEntry],
    ) -> Result<Option<(State, Option<String>)>, ReplicateError> {
        let Some(VersionEntry::Object {
            version_id, etag, ..
        }) = history.first()
        else {
            return Ok(match history.first() {
                None => Some((State::Absent, None)),
                Some(_) => self
                    .tombstone(bucket, key, history)
                    .await?
                    .map(|t| (State::Deleted(t), None)),
            });
        };
        let Some(top) = self.seen(bucket, key, Some(version_id)).await? else {
            return Ok(None);
        };
        let mut held = vec![top];
        for version in check_candidates(history, &held[0]) {
            match self.seen(bucket, key, Some(&version)).await? {
                Some(seen) => held.push(seen),
                None => return Ok(None),
            }
        }
        let best = self
            .with_histories(key, |h| Ok(best_of(&held, h)?.cloned()))
            .await?
            .expect("the current object at least");
        Ok(Some((State::Object(best), Some(etag.clone()))))
    }

    /// What the delete marker on top of `history` (a key's history from
    /// that marker down) deletes. `None` when a version it names is gone
    /// since the listing: look again.
    pub(crate) async fn tombstone(
        &self,
        bucket: &Bucket,
        key: &str,
        history: &[VersionEntry],
    ) -> Result<Option<Tombstone>, ReplicateError> {
        let marker = history
            .first()
            .map(|entry| entry.version_id().to_owned())
            .unwrap_or_default();
        Ok(self
            .removed_below(bucket, key, history)
            .await?
            .map(|removed| Tombstone {
                marker,
                removed: removed.map(|seen| seen.write),
            }))
    }

    /// The winner among the versions below the top of `history`: what a
    /// delete marker on top removed. `None` when a version is gone since
    /// the listing.
    pub(super) async fn removed_below(
        &self,
        bucket: &Bucket,
        key: &str,
        history: &[VersionEntry],
    ) -> Result<Option<Option<Seen>>, ReplicateError> {
        let mut best: Option<Seen> = None;
        for entry in history.iter().skip(1) {
            let VersionEntry::Object {
                version_id,
                last_modified,
                ..
            } = entry
            else {
                continue;
            };
            if best.as_ref().is_some_and(|b| !may_win(*last_modified, b)) {
                break;
            }
            let Some(seen) = self.seen(bucket, key, Some(version_id)).await? else {
                return Ok(None);
            };
            best = Some(match best {
                Some(b)
                    if !self
                        .with_histories(key, |h| beats(&seen.write, &b.write, h))
                        .await? =>
                {
                    b
                }
                _ => seen,
            });
        }
        Ok(Some(best))
    }

    /// Carries the delete `notice` reports in its region into
    /// `destination`, where it deletes the destination's value.
    pub(super) async fn carry_delete(
        &self,
        notice: &S3Notice,
        source: &Bucket,
        destination: &Bucket,
        by: &str,
    ) -> Result<Decision, ReplicateError> {
        if !notice.is_delete_marker() {
            // A delete of one version stays where it was made. In its own
            // region, what it left on top is checked like a new write: it
            // may lose to a version that landed beside it.
            if source == destination {
                let settled = self.settle(destination, &notice.key, by).await?;
                if settled.restores + settled.deletes > 0 {
                    return Ok(Decision::Restored);
                }
            }
            return Ok(Decision::KeptLocal);
        }
        if !self.carry_deletes {
            return Ok(Decision::KeptLocal);
        }
        if source == destination {
            return Ok(Decision::SkippedUpToDate);
        }
        let key = notice.key.as_str();
        if !matches!(
            self.store.head(destination, key, None).await?,
            Lookup::Found(_)
        ) {
            return Ok(Decision::SkippedUpToDate);
        }
        let deleted = self.state(source, key).await?;
        self.delete_into(destination, key, &deleted, Carried::Notice(notice))
            .await
    }

    /// Whether the gate holds a delete carried into `destination` for
    /// `why`. A notice's delete is counted (and may open the breaker); a
    /// repair's is held while the breaker holds any region that made it.
    pub(super) async fn gate_holds(
        &self,
        destination: &Bucket,
        why: Carried<'_>,
    ) -> Result<bool, ReplicateError> {
        let Some(gate) = &self.gate else {
            return Ok(false);
        };
        match why {
            Carried::Notice(notice) => {
                Ok(gate.admit(notice).await.map_err(ReplicateError::Gate)? == Gate::Held)
            }
            Carried::Repair(sources) => {
                for source in sources {
                    if gate
                        .holds(&destination.region, source)
                        .await
                        .map_err(ReplicateError::Gate)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Puts a delete marker on `destination`'s object of `key` if the
    /// delete `deleted` (a region's state) deletes its value, and the
    /// mass-delete breaker lets it through.
    pub(super) async fn delete_into(
        &self,
        destination: &Bucket,
        key: &str,
        deleted: &State,
        why: Carried<'_>,
    ) -> Result<Decision, ReplicateError> {
        for _ in 0..ROUNDS {
            let Some((held, top)) = self.value(destination, key).await? else {
                continue;
            };
            let decision = self
                .with_histories(key, |h| decide_delete(deleted, &held, h))
                .await?;
            match decision {
                DeleteDecision::Delete => {
                    // Every carried delete passes the gate first (the
                    // mass-delete breaker), which may hold it instead.
                    if self.gate_holds(destination, why).await? {
                        return Ok(Decision::Held);
                    }
                    // The condition names bytes, not a version: see
                    // docs/deletes.md on a racing write of the same bytes.
                    let etag = top.expect("an object is on top");
                    match self.store.delete_object(destination, key, &etag).await {
                        Ok(_) => return Ok(Decision::Deleted),
                        // Changed since it was looked at: decide again.
                        Err(error) if error.is_condition() || error.is_not_found() => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                DeleteDecision::Holds | DeleteDecision::Survives => {
                    return Ok(Decision::SkippedUpToDate);
                }
                DeleteDecision::Gone => return Ok(Decision::SkippedGone),
            }
        }
        Err(self.contended(destination, key))
    }

    pub(super) fn contended(&self, bucket: &Bucket, key: &str) -> ReplicateError {
        ReplicateError::Contended {
            region: bucket.region.clone(),
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            rounds: ROUNDS,
        }
    }
}
