//! `toastrep remove-region`: take one region out of a deployed set (see
//! [`crate::ops::membership::remove_region`]).

use std::fmt::Write as _;

use anyhow::Result;

use super::teardown::{bucket_line, confirm};
use super::{Context, Report};
use crate::ops::context::SetContext;
use crate::ops::membership::RemoveResult;
use crate::ops::teardown::TeardownOptions;
use crate::settings::RemoveRegionSettings;
use crate::settings::set_file;

pub async fn remove_region(context: &Context, settings: &RemoveRegionSettings) -> Result<Report> {
    let (name, region) = (&settings.name, settings.region);
    if settings.delete_data && !settings.yes {
        confirm(name, &format!("the data bucket of '{name}' in {region}"))?;
    }
    let set = SetContext::connect(&context.aws, name, region).await?;
    let options = TeardownOptions {
        delete_data: settings.delete_data,
        discard_dead_letters: settings.discard_dead_letters,
    };
    let result =
        crate::ops::membership::remove_region(&set, region, options, context.reporter.as_ref())
            .await?;
    let stacks_ok = result.stacks.iter().all(|r| r.error.is_none());
    let mut text = summary(&result, stacks_ok);
    // The set file follows the set: the next deploy must not add it back.
    if let Some(path) = settings.set_file.as_deref().filter(|_| stacks_ok) {
        let listed = set_file::edit_regions(path, region, false)?;
        let _ = writeln!(text, "{} lists {} now.", path.display(), listed.join(", "));
    }
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn summary(result: &RemoveResult, stacks_ok: bool) -> String {
    let mut text = format!(
        "Removing {} from replica set '{}'\n",
        result.region, result.name
    );
    for row in &result.stacks {
        let outcome = match (&row.action, &row.error, &row.note) {
            (Some(action), _, Some(note)) => format!("{action}: {note}"),
            (Some(action), _, None) => action.to_string(),
            (None, error, _) => format!("FAILED: {}", error.as_deref().unwrap_or_default()),
        };
        let _ = writeln!(
            text,
            "stack  {:<44} {:<16} {outcome}",
            row.stack_name, row.region
        );
    }
    if let Some(sync) = &result.sync {
        let _ = writeln!(
            text,
            "sync   into {}: {} keys scanned, {} copies made, {} deletes carried, {} failed{}",
            result.remaining.join(", "),
            sync.keys_scanned,
            sync.copies_made,
            sync.deletes_made,
            sync.failures.len() + sync.unreachable.len(),
            if sync.ok {
                ""
            } else {
                "; the data bucket is kept until a sync leaves nothing out (run remove-region again)"
            }
        );
    }
    for row in &result.buckets {
        text.push_str(&bucket_line(row));
    }
    if stacks_ok {
        let _ = writeln!(
            text,
            "Removed. The set replicates among {}.",
            result.remaining.join(", ")
        );
    } else {
        text.push_str("Some stacks could not be deleted, so the buckets were left alone; fix the cause above and run remove-region again.\n");
    }
    text
}
