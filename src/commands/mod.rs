//! One module per command. Each returns a [`Report`]: a JSON value that is the
//! command's stable machine-readable result, the text shown to people, and
//! whether the command succeeded.

mod add_region;
mod completions;
mod deletes;
mod deploy;
mod hash_key;
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

pub use add_region::add_region;
pub use completions::{completions, man};
pub use deletes::deletes;
pub use deploy::deploy;
pub use hash_key::hash_key;
pub use package::package;
pub use plan::plan;
pub use remove_region::remove_region;
pub use render::render;
pub use replay::replay;
pub use restore::restore;
pub use status::status;
pub use sync::sync;
pub use teardown::teardown;
pub use verify::verify;

use serde::Serialize;

use anyhow::Result;

use crate::aws::{Aws, AwsOptions};
use crate::model::names::SetName;
use crate::ops::discover::{self, DeployedSet};
use crate::progress::Reporter;

/// What every command gets: how to reach AWS and how to report progress.
pub struct Context {
    pub aws: AwsOptions,
    pub reporter: Box<dyn Reporter>,
}

impl Context {
    /// Loads the AWS configuration; `region` serves calls that need one.
    pub async fn aws(&self, region: &str) -> Aws {
        Aws::load(&self.aws, region).await
    }

    /// For the commands that work from `--name`: checks the credentials, then
    /// finds what is deployed of the set in the `given` regions (every region
    /// of the partition when none are given).
    pub async fn locate(&self, name: &SetName, given: &[String]) -> Result<Located> {
        let aws = self
            .aws(given.first().map_or("us-east-1", String::as_str))
            .await;
        let account = aws.account_id().await?;
        let candidates = discover::candidate_regions(given, aws.region());
        let found = discover::discover(&aws, name, &account, &candidates).await?;
        Ok(Located {
            aws,
            account,
            found,
        })
    }
}

/// A set found from its name, with the configuration that found it.
pub struct Located {
    pub aws: Aws,
    pub account: String,
    pub found: DeployedSet,
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
