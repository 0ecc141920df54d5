//! The replicator function's own logic, over the engine: an invocation's
//! handling, its metrics, the cloud repair's steps, where the mass-delete
//! breaker keeps its state, and how its logs name object keys. The Lambda
//! crate only wires the runtime to it; the CLI's `replay` handles events
//! through the same code.

pub mod breaker;
pub mod breaker_keys;
pub mod config;
pub mod handler;
pub mod log_keys;
pub mod metrics;
pub mod repair;
