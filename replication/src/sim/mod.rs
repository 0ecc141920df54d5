//! The deterministic simulation: the replication engine, exactly as the
//! function and `sync` run it, over a simulated S3 whose notifications are
//! duplicated, delayed, reordered and dropped and whose calls fail, under a
//! seeded scheduler. A seed fixes everything; the same seed replays the
//! same schedule.

pub mod breaker;
pub mod executor;
pub mod repair;
pub mod s3;
pub mod services;
pub mod world;

pub use world::{
    Scenario, Snapshot, Summary, Traced, UserOp, run, run_burst, run_cloud_repair, run_scenario,
};
