//! `toastrep plan` (and `deploy --dry-run`): what a deploy would do,
//! changing nothing (see [`crate::ops::preview`]): every stack's change
//! set, where the package would be uploaded, and every setting whose
//! deployed value the set file or the flags would change.

use std::fmt::Write as _;

use anyhow::Result;

use super::words::{deletes_phrase, kept_phrase};
use super::{Context, Report};
use crate::aws::change_set::PreviewAction;
use crate::model::function::{SettingChange, Source};
use crate::model::regions::RegionSearch;
use crate::model::topology::SetSpec;
use crate::ops::discover;
use crate::ops::preview::{self, PlanResult};
use crate::settings::PlanSettings;

pub async fn plan(context: &Context, settings: &PlanSettings) -> Result<Report> {
    let spec = match &settings.spec {
        Some(spec) => spec.clone(),
        None => {
            // No list: plan for the regions the set is deployed in.
            let located =
                discover::locate(&context.aws, &settings.name, &RegionSearch::WholePartition)
                    .await?;
            let regions = discover::require_deployed(&located.found, &settings.name)?;
            SetSpec::new(settings.name.clone(), regions)?
        }
    };
    let reporter = context.reporter.as_ref();
    let prepared = preview::prepare(
        &context.aws,
        spec,
        &settings.function,
        preview::KeyUse::KeepDeployed,
        reporter,
    )
    .await?;
    let result = preview::preview(&prepared, settings.concurrency, reporter).await?;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

/// Who asks for a setting's value.
fn source_phrase(source: Source) -> &'static str {
    match source {
        Source::Flag => "a flag",
        Source::SetFile => "the set file",
    }
}

/// A line per setting a deploy changes: `name: deployed -> planned`.
pub(super) fn setting_lines(changes: &[SettingChange], verb: &str, text: &mut String) {
    let shown = |value: &str| {
        if value.is_empty() {
            "(none)".to_owned()
        } else {
            value.to_owned()
        }
    };
    for change in changes {
        let _ = writeln!(
            text,
            "Setting {verb}: {} {} -> {} (from {})",
            change.setting,
            shown(&change.deployed),
            shown(&change.planned),
            source_phrase(change.source)
        );
    }
}

pub(super) fn summary(result: &PlanResult) -> String {
    let mut text = format!(
        "Plan for replica set '{}' in {} regions: {}\n",
        result.name,
        result.regions.len(),
        result.regions.join(", ")
    );
    let _ = writeln!(
        text,
        "Package {} ({} bytes): {}",
        result.package.package.key,
        result.package.package.bytes,
        if result.package.upload_to.is_empty() {
            "already in every region".to_owned()
        } else {
            format!("upload to {}", result.package.upload_to.join(", "))
        }
    );
    let settings = &result.settings;
    let _ = writeln!(
        text,
        "Function on {}; repair in the cloud {}; deletes {}; overwritten and deleted versions kept {}",
        settings.architecture,
        settings.repair_schedule,
        deletes_phrase(settings.replicate_deletes),
        kept_phrase(settings.keep_noncurrent_days)
    );
    setting_lines(&result.setting_changes, "to change", &mut text);
    let _ = writeln!(
        text,
        "{:<44} {:<16} {:<13} ACTION",
        "STACK", "REGION", "KIND"
    );
    for row in &result.stacks {
        let action = match (&row.action, &row.error) {
            (Some(action), _) => match &row.status {
                Some(status) => format!("{action} (it is {status})"),
                None => action.to_string(),
            },
            (None, error) => format!("ERROR: {}", error.as_deref().unwrap_or_default()),
        };
        let _ = writeln!(
            text,
            "{:<44} {:<16} {:<13} {action}",
            row.stack_name, row.region, row.kind
        );
        for change in &row.changes {
            let replacement = match change.replacement.as_deref() {
                Some("True") => " (replaced)",
                Some("Conditional") => " (may be replaced)",
                _ => "",
            };
            let _ = writeln!(
                text,
                "    {:<8} {} {}{replacement}",
                change.action, change.resource_type, change.logical_id
            );
        }
    }
    if !result.added.is_empty() {
        let _ = writeln!(
            text,
            "New regions, to be backfilled with the set's objects and verified: {}",
            result.added.join(", ")
        );
    }
    let count = |a: PreviewAction| result.stacks.iter().filter(|r| r.action == Some(a)).count();
    if result.changes {
        let _ = writeln!(
            text,
            "{} to create, {} to update, {} unchanged. Nothing was changed.",
            count(PreviewAction::Create) + count(PreviewAction::Recreate),
            count(PreviewAction::Update),
            count(PreviewAction::NoChange)
        );
    } else {
        text.push_str("No change: the set is up to date.\n");
    }
    text
}
