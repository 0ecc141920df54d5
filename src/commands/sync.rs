//! `toastrep sync`: anti-entropy over every region of a set (see [`crate::ops::sync`]).

use std::fmt::Write as _;

use anyhow::Result;

use super::{Context, Located, Report};
use crate::bail_input;
use crate::cli::SyncArgs;
use crate::model::names::SetName;
use crate::model::topology::parse_regions;
use crate::ops::discover;
use crate::ops::repair;
use crate::ops::sync::{SyncOptions, SyncReport, sync_set};

pub async fn sync(context: &Context, args: &SyncArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    let given = parse_regions(&args.regions)?;
    if args.prefix.as_deref() == Some("") {
        bail_input!(
            "--prefix is empty: leave it out to sync every key, or give the start of the keys to sync"
        );
    }
    let Located {
        aws,
        account,
        found,
    } = context.locate(&name, &given).await?;
    let regions = discover::require_members(&found, &name, "sync")?;
    let settings = found.settings().unwrap_or_default();
    if args.in_cloud {
        return in_cloud(
            context,
            args,
            &aws,
            &name,
            &account,
            &regions,
            settings.replicate_deletes,
        )
        .await;
    }
    let options = SyncOptions {
        prefix: args.prefix.clone(),
        dry_run: args.dry_run,
        deep: args.deep,
        concurrency: usize::from(args.concurrency),
        only_into: None,
        carry_deletes: settings.replicate_deletes,
    };
    let marker_key = crate::ops::marker_key::for_set(&aws, &name, &regions).await?;
    let report = sync_set(
        &aws,
        &name,
        &account,
        &regions,
        &marker_key,
        // The deployed part size and concurrency, as the functions copy.
        &settings.copy_settings(),
        &options,
        context.reporter.as_ref(),
    )
    .await?;
    let text = render_text(&report);
    Ok(Report::new(&report, text, report.ok))
}

/// `sync --in-cloud`: each region's repair run, started now.
async fn in_cloud(
    context: &Context,
    args: &SyncArgs,
    aws: &crate::aws::Aws,
    name: &SetName,
    account: &str,
    regions: &[String],
    carry_deletes: bool,
) -> Result<Report> {
    if args.dry_run || args.prefix.is_some() {
        bail_input!(
            "--in-cloud repairs every key and changes what it finds: leave out --dry-run and --prefix, or run the local `toastrep sync` for those"
        );
    }
    if args.no_wait {
        let run = repair::start(aws, name, account, regions, args.deep).await?;
        let text = format!(
            "repair run {} started in {} regions; `toastrep status --name {name}` shows each region's last run\n",
            run.run,
            run.executions.len()
        );
        return Ok(Report::new(&run, text, true));
    }
    let report = repair::sync_in_cloud(
        aws,
        name,
        account,
        regions,
        carry_deletes,
        args.deep,
        context.reporter.as_ref(),
    )
    .await?;
    let mut text = render_text(&report);
    if let Some(run) = &report.in_cloud {
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
    Ok(Report::new(&report, text, report.ok))
}

fn render_text(report: &SyncReport) -> String {
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
    if report.keys_differing_by_delete > 0 {
        let _ = writeln!(
            text,
            "{} keys differ only by a delete kept in the region that made it (the set does not carry deletes: `toastrep deploy --replicate-deletes on` carries them)",
            report.keys_differing_by_delete
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
    text
}
