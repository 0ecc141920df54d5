//! `toastrep deploy`: bring a replica set to its plan.
//!
//! Order: check all input and build the plan ([`crate::ops::preview`]);
//! then roll it out ([`crate::ops::rollout`]): the package, every base
//! stack, every pair, and for regions new to a deployed set the backfill
//! and a verify, as `add-region` does. `--dry-run` shows the plan instead.

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report, plan};
use crate::aws::stack::StackAction;
use crate::ops::preview;
use crate::ops::rollout::{self, DeployResult};
use crate::settings::DeploySettings;

pub async fn deploy(context: &Context, settings: &DeploySettings) -> Result<Report> {
    let reporter = context.reporter.as_ref();
    // A dry run previews only, as plan does: it never reads the key.
    let key = if settings.dry_run {
        preview::KeyUse::KeepDeployed
    } else {
        preview::KeyUse::Read
    };
    let prepared = preview::prepare(
        &context.aws,
        settings.spec.clone(),
        &settings.function,
        key,
        reporter,
    )
    .await?;
    if settings.dry_run {
        let result = preview::preview(&prepared, settings.concurrency, reporter).await?;
        let text = plan::summary(&result);
        return Ok(Report::new(&result, text, result.ok));
    }
    let mut result = rollout::roll_out_prepared(&prepared, settings.concurrency, reporter).await?;
    result.setting_changes = prepared.changes;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn summary(result: &DeployResult) -> String {
    let mut text = format!(
        "Replica set '{}' in {} regions: {}\n",
        result.name,
        result.regions.len(),
        result.regions.join(", ")
    );
    let _ = writeln!(
        text,
        "Package {} ({} bytes): {}",
        result.package.package.key,
        result.package.package.bytes,
        if result.package.uploaded_to.is_empty() {
            "already in every region".to_owned()
        } else {
            format!("uploaded to {}", result.package.uploaded_to.join(", "))
        }
    );
    plan::setting_lines(&result.setting_changes, "changed", &mut text);
    let _ = writeln!(
        text,
        "{:<44} {:<16} {:<13} ACTION",
        "STACK", "REGION", "KIND"
    );
    for row in &result.stacks {
        let action = match (&row.action, row.skipped) {
            (Some(action), _) => action.to_string(),
            (None, true) => "skipped (a stack it needs failed)".to_owned(),
            (None, false) => "FAILED".to_owned(),
        };
        let _ = writeln!(
            text,
            "{:<44} {:<16} {:<13} {action}",
            row.stack_name, row.region, row.kind
        );
    }
    for row in result.stacks.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(
            text,
            "\nerror: {}",
            row.error.as_deref().unwrap_or_default()
        );
    }
    if !result.added.is_empty() {
        let _ = writeln!(text, "Added: {}", result.added.join(", "));
        if let Some(backfill) = &result.backfill {
            let _ = writeln!(
                text,
                "Backfill: {} keys scanned, {} copies made ({} bytes), {} failed",
                backfill.keys_scanned,
                backfill.copies_made,
                backfill.bytes_copied,
                backfill.failures.len()
            );
        }
        if let Some(verify) = &result.verify {
            let _ = writeln!(
                text,
                "Verify: {}",
                if verify.ok {
                    "every pair converged".to_owned()
                } else {
                    format!("NOT converged: {}", verify.failed.join(", "))
                }
            );
        }
    }
    if let Some(error) = &result.error {
        let _ = writeln!(
            text,
            "\nerror: {error}\nThe stacks are in place; run the same command again to finish adding {}.",
            result.added.join(", ")
        );
    }
    if result.up_to_date {
        text.push_str("The set is up to date: nothing changed.\n");
    } else if result.ok {
        let count = |a: StackAction| result.stacks.iter().filter(|r| r.action == Some(a)).count();
        let _ = writeln!(
            text,
            "Deployed: {} created, {} updated, {} unchanged.",
            count(StackAction::Created) + count(StackAction::Recreated),
            count(StackAction::Updated),
            count(StackAction::Unchanged)
        );
    } else if result.error.is_none() {
        text.push_str("The deploy failed; fix the cause above and run it again to finish.\n");
    }
    text
}
