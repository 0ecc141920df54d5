//! The AWS side: clients from the standard credential chain, CloudFormation
//! stacks, and the set's buckets.

pub mod artifacts;
pub mod buckets;
pub mod change_set;
mod clients;
mod error;
pub mod functions;
pub mod lifecycle;
pub mod queues;
pub mod stack;

pub use clients::{Aws, AwsOptions};
pub use error::CallError;
