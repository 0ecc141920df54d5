//! toastrep's integration tests, one binary: the CLI against the emulator.
//! Run them with `tools/test`, which starts the emulator and builds the package.

mod cleanup;
mod deletes;
mod faults;
mod harness;
mod input;
mod lifecycle;
mod marker_key;
mod operate;
mod package;
mod render;
mod repair;
mod replicator;
mod security;
mod set_file;
mod sync;
mod terminal;
