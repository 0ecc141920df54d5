//! toastrep: provision and run an active-active, multi-region S3 replica set.
//!
//! The binary (`main.rs`) parses arguments and prints; this library plans,
//! deploys, verifies and tears down. The replication itself lives in the
//! `toastrep-replication` crate, shared with the Lambda function.

pub mod architecture;
pub mod artifacts;
pub mod aws;
pub mod breaker;
pub mod buckets;
pub mod cli;
pub mod commands;
pub mod dashboard;
pub mod discover;
pub mod error;
pub mod lifecycle;
pub mod marker_key;
pub mod names;
pub mod package;
pub mod plan;
pub mod progress;
pub mod regions;
pub mod repair;
pub mod schedule;
pub mod stack;
pub mod sync;
pub mod templates;
