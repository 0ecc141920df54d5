//! `toastrep add-region`: grow a deployed set by one region.
//!
//! The new region runs exactly what the members run
//! ([`crate::ops::membership::plan_joining`]). Then it is the roll-out of the
//! grown set ([`crate::ops::rollout::roll_out`]): the new base stack, every
//! pair in both directions, the backfill of the objects the set already
//! holds, and a verify. Running it again after an interruption finishes the
//! job.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report, deploy};
use crate::ops::context::SetContext;
use crate::ops::membership;
use crate::ops::rollout;
use crate::settings::AddRegionSettings;
use crate::settings::set_file;

pub async fn add_region(context: &Context, settings: &AddRegionSettings) -> Result<Report> {
    let (name, region) = (&settings.name, settings.region);
    let set = SetContext::connect(&context.aws, name, region).await?;
    let joining = membership::plan_joining(&set, region).await?;
    let result = rollout::roll_out(
        &set,
        &joining.plan,
        &joining.package,
        &joining.members,
        settings.concurrency,
        context.reporter.as_ref(),
    )
    .await?;
    let mut text = deploy::summary(&result);
    // The set file follows the set, so the next deploy keeps the region.
    if let Some(path) = settings.set_file.as_deref().filter(|_| result.ok) {
        let listed = set_file::edit_regions(path, region, true)?;
        let _ = writeln!(text, "{} lists {} now.", path.display(), listed.join(", "));
    }
    Ok(Report::new(&result, text, result.ok))
}
