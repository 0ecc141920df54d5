//! The harness every toastrep test crate shares: the emulator and its
//! clients, unique names, waits on conditions (never on a fixed time),
//! uploads that carry every attribute a copy must keep, object keys S3
//! and its events treat specially, and events built from the recorded
//! fixtures.
//!
//! It holds what does not depend on toastrep itself: the CLI's tests keep
//! their set deployment in `tests/it`, the replication crate its buckets and
//! stores in `replication/tests/emulator`.

pub mod emulator;
pub mod events;
pub mod keys;
pub mod names;
pub mod subscriptions;
pub mod upload;
pub mod wait;

pub use emulator::{ACCOUNT, Emulator};
pub use names::unique_name;
pub use wait::{eventually, settled, wait_past};
