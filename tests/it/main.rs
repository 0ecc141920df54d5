//! toastrep's integration tests, one binary: the CLI against the emulator.
//! Run them with `tools/test`, which starts the emulator and builds the package.

mod harness;
mod input;
mod lifecycle;
mod package;
mod render;
