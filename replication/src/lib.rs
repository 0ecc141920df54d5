//! toastrep's replication: the protocol, its I/O shell, and the stores it
//! runs on, shared by the replicator Lambda, the CLI and the simulation.
//!
//! - [`protocol`]: every decision, as pure functions of observed states;
//! - [`store`]: every S3 call, behind the [`store::ObjectStore`] trait, with
//!   the `aws-sdk-s3` implementation;
//! - [`engine`]: runs the decisions against a store (a notice, a check, a
//!   key's repair);
//! - [`function`]: the replicator function's logic over the engine;
//! - [`event`]: S3 notifications, as SNS delivers them;
//! - [`clock`]: the wall clock, read in one place;
//! - [`sim`] (feature `sim`): the simulated S3 and the deterministic world
//!   the simulation tests run.

pub mod clock;
pub mod engine;
pub mod event;
pub mod function;
pub mod protocol;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;

pub use engine::{
    CopySettings, Decision, DeleteGate, Gate, KeyRestore, MAX_CONCURRENCY, MAX_COPY_SIZE,
    MIN_PART_SIZE, Outcome, ReplicateError, Replicator, SetBuckets, SettingsError, Undo, deadline,
};
pub use event::{EventError, S3Notice, decode_event_key, parse_s3_message, parse_sns_event};
pub use protocol::{MarkerKey, MarkerKeys, RingError, Rotation};
pub use store::s3::SdkStore;
pub use store::{Bucket, ObjectStore, Unreplicable};
