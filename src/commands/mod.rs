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
mod rotate_key;
mod status;
#[cfg(test)]
mod summaries;
mod sync;
mod teardown;
mod verify;
mod words;

pub use hash_key::HashedKey;
pub use init::InitResult;

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

/// What `--output json` prints when a command fails before it has a result.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Failure {
    pub ok: bool,
    pub error: String,
}

impl Failure {
    pub fn new(error: &anyhow::Error) -> Self {
        Self {
            ok: false,
            error: format!("{error:#}"),
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
        CommandSettings::RotateKey(settings) => rotate_key::rotate_key(context, &settings).await,
        CommandSettings::HashKey(settings) => hash_key::hash_key(context, &settings).await,
        CommandSettings::Completions(shell) => completions::completions(shell),
        CommandSettings::Man(man) => completions::man(&man),
    }
}

/// Every command's JSON result is a typed struct; its schema is held here,
/// so a change to what scripts read is a reviewed change.
#[cfg(test)]
mod schemas {
    use schemars::schema_for;

    use super::*;

    macro_rules! schema {
        ($command:literal, $result:ty) => {
            insta::assert_json_snapshot!($command, schema_for!($result));
        };
    }

    #[test]
    fn every_command_prints_a_typed_json_result() {
        schema!("init", init::InitResult);
        schema!("deploy", crate::ops::rollout::DeployResult);
        schema!("add-region", crate::ops::rollout::DeployResult);
        schema!("plan", crate::ops::preview::PlanResult);
        schema!("render", render::RenderResult);
        schema!("remove-region", crate::ops::membership::RemoveResult);
        schema!("verify", crate::ops::verify::VerifyResult);
        schema!("teardown", crate::ops::teardown::TeardownResult);
        schema!("package", package::PackageResult);
        schema!("replay", crate::ops::replay::ReplayResult);
        schema!("sync", crate::ops::sync::SyncReport);
        schema!("sync-in-cloud-no-wait", crate::ops::sync::CloudRun);
        schema!("restore", crate::ops::restore::RestoreResult);
        schema!("deletes", crate::ops::deletes::DeletesResult);
        schema!("status", crate::ops::health::StatusResult);
        schema!("hash-key", Vec<hash_key::HashedKey>);
        schema!("rotate-key", crate::ops::rotation::RotationResult);
        schema!("completions", completions::Generated);
        schema!("man", completions::Generated);
        schema!("failure", Failure);
    }
}
