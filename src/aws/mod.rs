//! The AWS side: clients from the standard credential chain, CloudFormation
//! stacks, and the set's buckets.

pub mod artifacts;
pub mod buckets;
pub mod change_set;
mod clients;
pub mod lifecycle;
pub mod stack;

pub use clients::{Aws, AwsOptions};
