//! `toastrep teardown`: delete a set, keeping its data unless told
//! otherwise (see [`crate::ops::teardown`]).

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use super::{Context, Report};
use crate::bail_input;
use crate::model::names::SetName;
use crate::ops::discover;
use crate::ops::teardown::{BucketRow, COUNT_LIMIT, TeardownOptions, TeardownResult};
use crate::settings::TeardownSettings;

pub async fn teardown(context: &Context, settings: &TeardownSettings) -> Result<Report> {
    let name = &settings.target.name;
    if settings.delete_data && !settings.yes {
        confirm(
            name,
            &format!("the buckets of replica set '{name}' in every region"),
        )?;
    }
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let options = TeardownOptions {
        delete_data: settings.delete_data,
        discard_dead_letters: settings.discard_dead_letters,
    };
    let result =
        crate::ops::teardown::teardown(&located, options, context.reporter.as_ref()).await?;
    let stacks_ok = result.stacks.iter().all(|row| row.error.is_none());
    let text = summary(&result, stacks_ok);
    Ok(Report::new(&result, text, result.ok))
}

/// --delete-data without --yes: ask at a terminal, refuse elsewhere.
/// `what` completes "This deletes every object, every version and ...".
pub(super) fn confirm(name: &SetName, what: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail_input!(
            "--delete-data deletes every object version in the set's buckets and needs confirmation: add --yes (there is no terminal to ask)"
        );
    }
    eprint!("This deletes every object, every version and {what}.\nType the set name to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != name.as_str() {
        bail_input!("not confirmed: nothing was deleted");
    }
    Ok(())
}

pub(super) fn summary(result: &TeardownResult, stacks_ok: bool) -> String {
    if result.regions.is_empty() {
        return format!(
            "Nothing of replica set '{}' was found in the regions searched: nothing to do.\n",
            result.name
        );
    }
    let mut text = format!(
        "Replica set '{}' found in {}\n",
        result.name,
        result.regions.join(", ")
    );
    for row in &result.stacks {
        match (&row.action, &row.error) {
            (Some(action), _) => {
                let _ = writeln!(
                    text,
                    "stack  {:<44} {:<16} {action}",
                    row.stack_name, row.region
                );
                if let Some(note) = &row.note {
                    let _ = writeln!(text, "       {note}");
                }
            }
            (None, error) => {
                let _ = writeln!(
                    text,
                    "stack  {:<44} {:<16} FAILED: {}",
                    row.stack_name,
                    row.region,
                    error.as_deref().unwrap_or_default()
                );
            }
        }
    }
    for row in &result.buckets {
        text.push_str(&bucket_line(row));
    }
    if !stacks_ok {
        text.push_str("Some stacks could not be deleted, so the buckets were left alone; fix the cause above and run teardown again.\n");
    }
    text
}

/// A bucket's line in teardown's and remove-region's summaries.
pub(super) fn bucket_line(row: &BucketRow) -> String {
    let detail = match (&*row.action, &row.error) {
        ("kept", _) => format!(
            "kept: holds {}{} object versions (delete with --delete-data)",
            row.versions,
            if row.versions >= COUNT_LIMIT { "+" } else { "" }
        ),
        (_, Some(error)) => format!("FAILED: {error}"),
        (action, None) => format!("{action} ({} object versions removed)", row.versions),
    };
    format!("bucket {:<44} {:<16} {detail}\n", row.bucket, row.region)
}
