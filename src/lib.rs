//! toastrep: provision and run an active-active, multi-region S3 replica set.
//!
//! The layers, each calling only those below it:
//! - `main.rs` parses the command line ([`cli`]) and prints;
//! - [`settings`] resolves flags, the set file and defaults once, into
//!   typed settings for one command;
//! - [`commands`] run one operation each and turn its typed result into
//!   text or JSON; they make no AWS call themselves;
//! - [`ops`] are the operations: discover, membership, rollout, preview,
//!   teardown, verify, health, sync, replay, repair, ...;
//! - [`aws`] is the AWS side (clients, CloudFormation stacks, buckets) and
//!   [`model`] the pure values (names, regions, the stacks of a set).
//!
//! The replication itself lives in the `toastrep-replication` crate, shared
//! with the Lambda function.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod error;
pub mod model;
pub mod ops;
pub mod package;
pub mod progress;
pub mod settings;
