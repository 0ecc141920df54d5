//! The function's own parts, beside the engine it shares with the CLI.

pub mod config;
