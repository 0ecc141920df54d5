//! Point-in-time restore of one key: the set's value at a past time,
//! written again as a new write in every region. No version is deleted.

use super::{ROUNDS, ReplicateError, Replicator};
use crate::protocol::delete::history_at;
use crate::protocol::marker::user_metadata;
use crate::protocol::{CopyDecision, Seen, State, VersionEntry, beats, decide_copy, decide_sync};
use crate::store::{Bucket, ObjectStore};

/// What restore's writes are marked as made by.
const RESTORE: &str = "restore";

/// What undoing a held delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    Done(KeyRestore),
    /// The key was written again after the delete, in `region` (an index):
    /// that later write stays, and nothing is undone.
    WrittenSince {
        region: usize,
    },
}

/// What a restore did (or would do, on a dry run) for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRestore {
    /// Every region already holds the object the set held then.
    Unchanged,
    /// The set held no object of the key then (none was written yet, or a
    /// delete had deleted it): the key is left as it is.
    NoneThen,
    /// The object the set held then, written again: a new write in the
    /// region that held it (`source`, its version `version`), copied into
    /// `regions`.
    Restored {
        source: usize,
        version: String,
        bytes: u64,
        regions: Vec<usize>,
    },
}

impl<S: ObjectStore> Replicator<S> {
    /// Brings `key` back, in every region of `buckets`, to the object the
    /// set held at `at` (seconds): the winner among the objects the regions
    /// held then, each region's newest version no later than `at` (a delete
    /// then counts as the protocol counts it). That version is copied onto
    /// its own bucket as a new write (bytes, metadata, headers and tags;
    /// no marker), which wins over everything written since, and from there
    /// into every region that does not hold the same object now. Regions
    /// that kept a delete of it then (a set that does not carry deletes)
    /// are left alone.
    pub async fn restore_key(
        &self,
        key: &str,
        buckets: &[Bucket],
        at: i64,
        dry_run: bool,
    ) -> Result<KeyRestore, ReplicateError> {
        let mut then = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let history = self.store.versions(bucket, key).await?;
            then.push(self.state_in(bucket, key, history_at(&history, at)).await?);
        }
        let all = vec![true; buckets.len()];
        let Some(plan) = self
            .with_histories(key, |h| decide_sync(&then, &all, self.carry_deletes, h))
            .await?
        else {
            return Ok(KeyRestore::NoneThen);
        };
        if self.carry_deletes && !plan.deleted_in.is_empty() {
            return Ok(KeyRestore::NoneThen);
        }
        let winner = then[plan.source]
            .object()
            .cloned()
            .expect("the source held the winner");
        let skip = plan.kept_deletes.clone();
        self.bring_back(key, buckets, plan.source, &winner, &skip, dry_run)
            .await
    }

    /// Undoes the delete whose marker is `marker` in `buckets[source]`,
    /// while it is still the last thing that happened to the key: the
    /// write it removed is written again on top there (a new write, which
    /// wins over the delete wherever it was carried) and copied into every
    /// region that does not hold that object now. A key written again
    /// since, in any region, keeps that later write: [`Undo::WrittenSince`].
    pub async fn undo_delete(
        &self,
        key: &str,
        buckets: &[Bucket],
        source: usize,
        marker: &str,
    ) -> Result<Undo, ReplicateError> {
        let history = self.store.versions(&buckets[source], key).await?;
        let Some(at) = history.iter().position(|e| e.version_id() == marker) else {
            // The marker is gone: nothing is deleted by it any more.
            return Ok(Undo::Done(KeyRestore::NoneThen));
        };
        if at > 0 {
            // Something was written (or deleted) there after it.
            return Ok(Undo::WrittenSince { region: source });
        }
        let Some(removed) = self
            .removed_below(&buckets[source], key, &history[at..])
            .await?
        else {
            return Err(self.contended(&buckets[source], key));
        };
        let Some(removed) = removed else {
            return Ok(Undo::Done(KeyRestore::NoneThen));
        };
        // A region holding a write that beats the one removed was written
        // after the delete (or holds a later write the delete never saw).
        for (region, bucket) in buckets.iter().enumerate() {
            if let State::Object(current) = self.state(bucket, key).await?
                && !current.write.same(&removed.write)
                && self
                    .with_histories(key, |h| beats(&current.write, &removed.write, h))
                    .await?
            {
                return Ok(Undo::WrittenSince { region });
            }
        }
        self.bring_back(key, buckets, source, &removed, &[], false)
            .await
            .map(Undo::Done)
    }

    /// Writes `version` (held in `buckets[home]`) again on top of its
    /// bucket as a new write, and copies it into every region, but those in
    /// `skip`, whose current object is not the same object.
    async fn bring_back(
        &self,
        key: &str,
        buckets: &[Bucket],
        home: usize,
        version: &Seen,
        skip: &[usize],
        dry_run: bool,
    ) -> Result<KeyRestore, ReplicateError> {
        let mut regions = Vec::new();
        for (i, bucket) in buckets.iter().enumerate() {
            if !skip.contains(&i)
                && !same_object(self.seen(bucket, key, None).await?.as_ref(), version)
            {
                regions.push(i);
            }
        }
        if regions.is_empty() {
            return Ok(KeyRestore::Unchanged);
        }
        let restored = KeyRestore::Restored {
            source: home,
            version: version.head.version_id.clone(),
            bytes: version.head.size,
            regions: regions.clone(),
        };
        if dry_run {
            return Ok(restored);
        }
        // A new write of the old object, in the region that held it; then
        // copies of that write wherever the object is not. The set runs
        // meanwhile (the functions copy the new write too): each write
        // decides on what it sees, and again when that changed.
        let bucket = &buckets[home];
        let mut written = None;
        for _ in 0..ROUNDS {
            let state = self.state(bucket, key).await?;
            match self
                .write_original(bucket, key, version, state.precondition())
                .await
            {
                Ok(done) => {
                    written = Some(done);
                    break;
                }
                Err(error) if error.is_condition() => {}
                Err(error) => return Err(error.into()),
            }
        }
        let written = written.ok_or_else(|| self.contended(bucket, key))?;
        self.settle(bucket, key, RESTORE).await?;
        let Some(write) = self.seen(bucket, key, Some(&written.version_id)).await? else {
            return Err(self.contended(bucket, key));
        };
        for &i in regions.iter().filter(|&&i| i != home) {
            self.copy_into(bucket, key, &write, &buckets[i]).await?;
        }
        Ok(restored)
    }

    /// Copies `write` (an original, of `key` in `source`) into
    /// `destination` unless it holds it, or something that wins, already.
    async fn copy_into(
        &self,
        source: &Bucket,
        key: &str,
        write: &Seen,
        destination: &Bucket,
    ) -> Result<(), ReplicateError> {
        for _ in 0..ROUNDS {
            let state = self.state(destination, key).await?;
            let decision = self
                .with_histories(key, |h| decide_copy(write, &state, h))
                .await?;
            let CopyDecision::Copy(precondition) = decision else {
                return Ok(());
            };
            match self
                .write_copy(source, key, write, destination, precondition, RESTORE)
                .await
            {
                Ok(_) => {
                    self.settle(destination, key, RESTORE).await?;
                    return Ok(());
                }
                Err(error) if error.is_condition() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(self.contended(destination, key))
    }

    /// A region's value of `key` given its history as it was at some time
    /// (see [`history_at`]): what its check left on top, or would have.
    async fn state_in(
        &self,
        bucket: &Bucket,
        key: &str,
        history: &[VersionEntry],
    ) -> Result<State, ReplicateError> {
        match self.value_in(bucket, key, history).await? {
            Some((state, _)) => Ok(state),
            None => Err(self.contended(bucket, key)),
        }
    }
}

/// Whether `current` is the same object as `version`: bytes, the user's
/// metadata and headers.
fn same_object(current: Option<&Seen>, version: &Seen) -> bool {
    current.is_some_and(|current| {
        current.head.etag == version.head.etag
            && current.head.headers == version.head.headers
            && user_metadata(&current.head.metadata) == user_metadata(&version.head.metadata)
    })
}
