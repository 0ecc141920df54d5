//! `toastrep sync`: anti-entropy over every region of a set (see [`crate::ops::sync`]).

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Report};
use crate::model::function::setting_flag;
use crate::ops::discover;
use crate::ops::repair;
use crate::ops::sync::{SyncOptions, SyncReport, sync_set};
use crate::settings::SyncSettings;

pub async fn sync(context: &Context, settings: &SyncSettings) -> Result<Report> {
    let name = &settings.target.name;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let set = &located.set;
    let regions = located.members("sync")?;
    let deployed = located.found.settings().unwrap_or_default();
    let reporter = context.reporter.as_ref();
    let deep = settings.options.deep;
    if settings.in_cloud && settings.no_wait {
        let run = repair::start(set, &regions, deep).await?;
        let text = format!(
            "repair run {} started in {} regions; `toastrep status --name {name}` shows each region's last run\n",
            run.run,
            run.executions.len()
        );
        return Ok(Report::new(&run, text, true));
    }
    let report = if settings.in_cloud {
        repair::sync_in_cloud(set, &regions, deployed.replicate_deletes, deep, reporter).await?
    } else {
        let options = SyncOptions {
            carry_deletes: deployed.replicate_deletes,
            ..settings.options.clone()
        };
        let marker_key = crate::ops::marker_key::for_set(set, &regions).await?;
        // The deployed part size and concurrency, as the functions copy.
        sync_set(
            set,
            &regions,
            &marker_key,
            &deployed.copy_settings(),
            &options,
            reporter,
        )
        .await?
    };
    let text = render_text(&report);
    Ok(Report::new(&report, text, report.ok))
}

/// What each region's repair run in the cloud did.
fn in_cloud_lines(report: &SyncReport, text: &mut String) {
    let Some(run) = &report.in_cloud else {
        return;
    };
    for execution in &run.executions {
        let ranges = execution
            .ranges
            .map(|r| format!("{} ranges ({} failed)", r.total, r.failed))
            .unwrap_or_else(|| "no ranges".into());
        let _ = writeln!(
            text,
            "{}: {} in the cloud, {ranges}, {} invocations, the longest {:.1} s",
            execution.region,
            execution.status,
            execution.invocations,
            execution.longest_invocation_ms as f64 / 1000.0
        );
    }
}

pub(super) fn render_text(report: &SyncReport) -> String {
    let mut text = String::new();
    if report.dry_run {
        for copy in &report.copies {
            let _ = writeln!(
                text,
                "would copy {} {} -> {} ({:?}, {} bytes)",
                copy.key, copy.source, copy.destination, copy.reason, copy.bytes
            );
        }
        for delete in &report.deletes {
            let _ = writeln!(
                text,
                "would delete {} in {} (a delete elsewhere deletes it)",
                delete.key, delete.region
            );
        }
    }
    for held in &report.held {
        let _ = writeln!(
            text,
            "held {} in {}: its mass-delete breaker holds the delete",
            held.key, held.region
        );
    }
    for object in &report.not_replicable {
        let _ = writeln!(
            text,
            "not replicable {} into {}: {}",
            object.key,
            object.region,
            object.why.why()
        );
    }
    for failure in &report.failures {
        let _ = writeln!(
            text,
            "FAILED {} in {}: {}",
            failure.key, failure.region, failure.error
        );
    }
    for region in &report.unreachable {
        let _ = writeln!(
            text,
            "UNREACHABLE {}: {} (not repaired; the other regions were)",
            region.region, region.error
        );
    }
    let copies = if report.dry_run {
        format!("{} copies planned, none made", report.copies_planned)
    } else {
        format!(
            "{} copies made ({} bytes)",
            report.copies_made, report.bytes_copied
        )
    };
    let deletes = if report.dry_run {
        format!("{} deletes planned, none made", report.deletes_planned)
    } else {
        format!("{} deletes carried", report.deletes_made)
    };
    if report.deletes_held > 0 {
        let _ = writeln!(
            text,
            "{} deletes held by an open mass-delete breaker, not carried (`toastrep deletes` shows them; --release or --discard decides)",
            report.deletes_held
        );
    }
    if report.keys_differing_by_delete > 0 {
        let _ = writeln!(
            text,
            "{} keys differ only by a delete kept in the region that made it (the set does not carry deletes: `toastrep deploy {} on` carries them)",
            report.keys_differing_by_delete,
            setting_flag!(replicate_deletes)
        );
    }
    let _ = writeln!(
        text,
        "set '{}': {} keys scanned in {} regions, {} examined, {copies}, {deletes}, {} skipped (changed meanwhile), {} failed, {} regions unreachable, in {:.1} s",
        report.name,
        report.keys_scanned,
        report.regions.len(),
        report.keys_examined,
        report.copies_skipped,
        report.failures.len(),
        report.unreachable.len(),
        report.seconds
    );
    in_cloud_lines(report, &mut text);
    text
}
