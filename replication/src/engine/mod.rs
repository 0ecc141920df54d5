//! The protocol's I/O shell: runs the decisions of [`crate::protocol`]
//! against an [`ObjectStore`]. The function, `sync`, `replay`, backfill and
//! the simulation all run this same code.

mod copy;
pub mod deadline;
mod delete;
mod key_names;
mod replicate;
mod restore;
mod scan;
mod settle;
mod sync;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use copy::{
    CopySettings, MAX_CONCURRENCY, MAX_COPY_SIZE, MIN_PART_SIZE, SettingsError,
    effective_part_size, part_ranges,
};
pub use key_names::{KeyNames, PlainKeys};
pub use replicate::{Decision, Outcome};
pub use restore::{KeyRestore, Undo};
pub use scan::{KeyRange, MAX_REGIONS, ScanEnd, ScanLimit, ScanOptions, ScanStep, needs_repair};
pub use sync::{KeyRepair, RepairFailure, RepairedCopy};

use crate::clock::{Clock, SystemClock};
use crate::event::S3Notice;
use crate::protocol::{Histories, MarkerKeys, NeedHistory, Seen};
use crate::store::{Bucket, ObjectStore, StoreError};

/// How the set names its buckets: `toastrep-SET-REGION-ACCOUNT`, the same
/// rule as the CLI's (`src/names.rs`), which the function gets through its
/// `SET_NAME` and `ACCOUNT_ID` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBuckets {
    pub set: String,
    pub account: String,
    /// The set's member regions, where the caller knows them (the CLI,
    /// which found the set's stacks). `None` in the function: its member
    /// regions are the topics subscribed to it, and only they can invoke it.
    pub members: Option<BTreeSet<String>>,
}

impl SetBuckets {
    pub fn new(set: impl Into<String>, account: impl Into<String>) -> SetBuckets {
        SetBuckets {
            set: set.into(),
            account: account.into(),
            members: None,
        }
    }

    /// Only buckets in `regions` are the set's.
    pub fn within<'a>(mut self, regions: impl IntoIterator<Item = &'a String>) -> SetBuckets {
        self.members = Some(regions.into_iter().cloned().collect());
        self
    }

    pub fn bucket(&self, region: &str) -> Bucket {
        Bucket::new(
            region,
            format!("toastrep-{}-{region}-{}", self.set, self.account),
        )
    }

    /// Whether `bucket` is this set's bucket in one of its regions: the
    /// only buckets replication reads or writes.
    pub fn owns(&self, bucket: &Bucket) -> bool {
        self.bucket(&bucket.region) == *bucket && self.is_member(&bucket.region)
    }

    fn is_member(&self, region: &str) -> bool {
        self.members.as_ref().is_none_or(|m| m.contains(region))
    }

    /// The region of the set's event topic `arn` names
    /// (`arn:PARTITION:sns:REGION:ACCOUNT:toastrep-SET-events`, as
    /// `templates/base.yaml` names it), or `None` if it is no topic of this
    /// set in a member region.
    pub fn topic_region<'a>(&self, arn: &'a str) -> Option<&'a str> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("sns"), Some(region), Some(account), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let ours = account == self.account && name == self.topic() && self.is_member(region);
        ours.then_some(region)
    }

    /// The name of the set's event topic in each region, as
    /// `templates/base.yaml` names it.
    pub fn topic(&self) -> String {
        format!("toastrep-{}-events", self.set)
    }

    /// The name of the set's repair state machine in each region, as
    /// `templates/base.yaml` names it.
    pub fn repair_state_machine(&self) -> String {
        format!("toastrep-{}-repair", self.set)
    }
}

/// Why a record could not be replicated.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", contended(.region, .bucket, .key, *.rounds))]
    Contended {
        region: String,
        bucket: String,
        key: String,
        rounds: usize,
    },
    /// The delete gate could not count or hold a delete: retry.
    #[error("the delete breaker failed: {0}")]
    Gate(String),
    #[error(
        "the notice names s3://{bucket} in {region}, which is not a bucket of set {set} in one of its regions: ignored"
    )]
    Foreign {
        set: String,
        region: String,
        bucket: String,
    },
}

fn contended(region: &str, bucket: &str, key: &str, rounds: usize) -> String {
    format!(
        "s3://{bucket}/{key} in {region} changed under {rounds} decisions in a row; another attempt will decide again"
    )
}

impl ReplicateError {
    /// The message, with keys named by `names`.
    pub fn naming_keys(&self, names: &dyn KeyNames) -> String {
        match self {
            ReplicateError::Store(error) => error.naming_key(&names.name(&error.key)),
            ReplicateError::Contended {
                region,
                bucket,
                key,
                rounds,
            } => contended(region, bucket, &names.name(key), *rounds),
            ReplicateError::Gate(_) | ReplicateError::Foreign { .. } => self.to_string(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplicateError::Store(e) => e.is_retryable() || e.is_condition(),
            ReplicateError::Contended { .. } | ReplicateError::Gate(_) => true,
            ReplicateError::Foreign { .. } => false,
        }
    }
}

/// Whether a delete is carried now or held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Carry,
    Held,
}

/// What every carried delete passes before it is made: the mass-delete
/// breaker. It sees only deletes that would delete something.
pub trait DeleteGate: Send + Sync + fmt::Debug {
    /// Carry the delete `notice` reports, or hold it (and keep it).
    fn admit<'a>(
        &'a self,
        notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>>;

    /// Whether `destination`'s breaker holds the deletes made in `source`.
    /// Asked for a delete a repair would carry (`sync`, a deep or cloud
    /// repair, a backfill): it has no notice to hold, so while the breaker
    /// is open it is not made, and the repair reports it as held; the
    /// notice the breaker kept is the one `toastrep deletes` acts on.
    fn holds<'a>(
        &'a self,
        destination: &'a str,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// Why a delete is carried into a region: the notice of the delete, or a
/// repair that found these regions (by name) deleting the winner.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Carried<'a> {
    Notice(&'a S3Notice),
    Repair(&'a [&'a str]),
}

/// Decisions are retried at most this often when a write's condition fails
/// (the destination changed since it was looked at) before the record is
/// failed as retryable.
const ROUNDS: usize = 8;

/// Replication over one store, for one set.
#[derive(Debug)]
pub struct Replicator<S> {
    store: S,
    /// The set's marker keys: the current one seals, every one verifies.
    keys: MarkerKeys,
    set: SetBuckets,
    settings: CopySettings,
    /// `AWS:<role id>:`: the principal of this function's own writes in
    /// S3 events, when known.
    own_writer: Option<String>,
    /// Whether the set carries deletes from region to region.
    carry_deletes: bool,
    /// What carried deletes pass first, if anything.
    gate: Option<Arc<dyn DeleteGate>>,
    /// The engine's only time: deadlines, and how long a notice took.
    clock: Arc<dyn Clock>,
    /// How log lines and failure messages name object keys.
    key_names: Arc<dyn KeyNames>,
}

impl<S: ObjectStore> Replicator<S> {
    pub fn new(
        store: S,
        keys: impl Into<MarkerKeys>,
        set: SetBuckets,
        settings: CopySettings,
    ) -> Replicator<S> {
        Replicator {
            store,
            keys: keys.into(),
            set,
            settings,
            own_writer: None,
            carry_deletes: false,
            gate: None,
            clock: Arc::new(SystemClock),
            key_names: Arc::new(PlainKeys),
        }
    }

    /// Names object keys in log lines and failure messages as `names`
    /// does (the function's hash them).
    pub fn naming_keys(mut self, names: Arc<dyn KeyNames>) -> Replicator<S> {
        self.key_names = names;
        self
    }

    pub fn key_names(&self) -> &dyn KeyNames {
        &*self.key_names
    }

    /// A store's failure, its key named as this replicator's logs name keys.
    fn naming_key_of(&self, error: &StoreError) -> String {
        error.naming_key(&self.key_names.name(&error.key))
    }

    /// Times everything by `clock` instead of the system's (the
    /// simulation's, driven by its simulated time).
    pub fn clocked(mut self, clock: Arc<dyn Clock>) -> Replicator<S> {
        self.clock = clock;
        self
    }

    /// Carried deletes pass `gate` before they are made.
    pub fn gating_deletes(mut self, gate: Arc<dyn DeleteGate>) -> Replicator<S> {
        self.gate = Some(gate);
        self
    }

    /// Carries deletes (delete markers) to the other regions, and has sync
    /// carry the ones missed. Off, a delete stays where it was made.
    pub fn carrying_deletes(mut self, carry: bool) -> Replicator<S> {
        self.carry_deletes = carry;
        self
    }

    pub fn carries_deletes(&self) -> bool {
        self.carry_deletes
    }

    /// The unique id (`AROA…`) of the role this replicator writes with. On
    /// AWS, S3 events name it as the writer of its copies, so their
    /// own-region notices are known without a request.
    pub fn writing_as_role(mut self, role_id: &str) -> Replicator<S> {
        self.own_writer = Some(format!("AWS:{role_id}:"));
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn settings(&self) -> &CopySettings {
        &self.settings
    }

    pub fn set(&self) -> &SetBuckets {
        &self.set
    }

    /// The current object (or one version) of `key` in `bucket`, interpreted.
    async fn seen(
        &self,
        bucket: &Bucket,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<Seen>, StoreError> {
        Ok(self
            .store
            .head(bucket, key, version)
            .await?
            .found()
            .map(|head| Seen::of(&bucket.region, key, head, &self.keys)))
    }

    /// Runs `decide` with the region histories it asks for, fetching each
    /// at most once.
    async fn with_histories<T>(
        &self,
        key: &str,
        mut decide: impl FnMut(&Histories) -> Result<T, NeedHistory>,
    ) -> Result<T, ReplicateError> {
        let mut histories = Histories::default();
        let mut fetched = BTreeSet::new();
        loop {
            match decide(&histories) {
                Ok(decision) => return Ok(decision),
                Err(NeedHistory(region)) => {
                    if !fetched.insert(region.clone()) {
                        unreachable!("a fetched history orders every version of its region");
                    }
                    let versions = self
                        .store
                        .versions(&self.set.bucket(&region), key)
                        .await?
                        .into_iter()
                        .map(|entry| entry.version_id().to_owned())
                        .collect();
                    histories.listed(&region, versions);
                }
            }
        }
    }
}
