//! The operations on a replica set. Each takes typed settings (never a
//! command-line type) and returns a typed result that `commands` prints.

pub mod breaker;
pub mod discover;
pub mod marker_key;
pub mod repair;
pub mod sync;
