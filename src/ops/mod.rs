//! The operations on a replica set. Each takes typed values (never a
//! command-line type) and returns a typed result that `commands` prints.

pub mod breaker;
pub mod context;
pub mod deletes;
pub mod discover;
pub mod health;
pub mod marker_key;
pub mod membership;
pub mod preview;
pub mod repair;
pub mod replay;
pub mod restore;
pub mod rollout;
pub mod rotation;
pub mod sync;
pub mod teardown;
pub mod verify;
