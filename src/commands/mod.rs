//! One module per command: each runs one operation (`ops`) with its
//! resolved settings and turns the typed result into a [`Report`], text for
//! people and JSON for scripts. No command calls AWS itself.

mod add_region;
mod completions;
mod deletes;
mod deploy;
mod hash_key;
mod init;
mod package;
mod plan;
mod remove_region;
mod render;
mod replay;
mod restore;
mod status;
mod sync;
mod teardown;
mod verify;

use anyhow::Result;
use serde::Serialize;

use crate::aws::AwsOptions;
use crate::progress::Reporter;
use crate::settings::CommandSettings;

/// What every command gets: how to reach AWS and how to report progress.
pub struct Context {
    pub aws: AwsOptions,
    pub reporter: Box<dyn Reporter>,
}

/// A command's result.
pub struct Report {
    pub json: serde_json::Value,
    pub text: String,
    /// false: the command ran but its check failed (exit status 1).
    pub ok: bool,
}

impl Report {
    pub fn new(result: &impl Serialize, text: String, ok: bool) -> Self {
        Self {
            json: serde_json::to_value(result).expect("results serialise"),
            text,
            ok,
        }
    }
}

/// Runs one command.
pub async fn run(context: &Context, command: CommandSettings) -> Result<Report> {
    match command {
        CommandSettings::Init(settings) => init::init(&settings),
        CommandSettings::Deploy(settings) => deploy::deploy(context, &settings).await,
        CommandSettings::Plan(settings) => plan::plan(context, &settings).await,
        CommandSettings::Render(settings) => render::render(context, &settings).await,
        CommandSettings::AddRegion(settings) => add_region::add_region(context, &settings).await,
        CommandSettings::RemoveRegion(settings) => {
            remove_region::remove_region(context, &settings).await
        }
        CommandSettings::Verify(settings) => verify::verify(context, &settings).await,
        CommandSettings::Teardown(settings) => teardown::teardown(context, &settings).await,
        CommandSettings::Package(settings) => package::package(context, &settings).await,
        CommandSettings::Replay(settings) => replay::replay(context, &settings).await,
        CommandSettings::Sync(settings) => sync::sync(context, &settings).await,
        CommandSettings::Restore(settings) => restore::restore(context, &settings).await,
        CommandSettings::Deletes(settings) => deletes::deletes(context, &settings).await,
        CommandSettings::Status(settings) => status::status(context, &settings).await,
        CommandSettings::HashKey(settings) => hash_key::hash_key(context, &settings).await,
        CommandSettings::Completions(shell) => completions::completions(shell),
        CommandSettings::Man(out) => completions::man(out.as_deref()),
    }
}
