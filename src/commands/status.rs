//! `toastrep status`: the health of a deployed set, region by region (see
//! [`crate::ops::health`]).

use std::fmt::Write as _;

use anyhow::Result;
use indicatif::HumanBytes;

use super::words::{deletes_phrase, kept_phrase};
use super::{Context, Report};
use crate::ops::discover;
use crate::ops::health::StatusResult;
use crate::package::Package;
use crate::settings::StatusSettings;
use toastrep_replication::clock::now_ms;

pub async fn status(context: &Context, settings: &StatusSettings) -> Result<Report> {
    let name = &settings.target.name;
    let package = settings
        .lambda_zip
        .as_deref()
        .map(Package::from_file)
        .transpose()?;
    let located = discover::locate(&context.aws, name, &settings.target.regions).await?;
    let result =
        crate::ops::health::status(&located, name, package.as_ref(), context.reporter.as_ref())
            .await?;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

fn summary(result: &StatusResult) -> String {
    let mut text = format!("Replica set '{}'\n", result.name);
    if let Some(deletes) = &result.deletes {
        let _ = writeln!(
            text,
            "deletes {}; overwritten and deleted versions kept {}",
            deletes_phrase(deletes.replicated),
            kept_phrase(deletes.keep_noncurrent_days)
        );
    }
    for region in &result.regions {
        let _ = writeln!(
            text,
            "{} {}",
            region.region,
            if region.healthy { "ok" } else { "UNHEALTHY" }
        );
        let complete = region.stacks.iter().filter(|s| s.healthy).count();
        let _ = writeln!(
            text,
            "  stacks        {complete}/{} complete",
            region.stacks.len()
        );
        if let Some(function) = &region.function {
            let _ = writeln!(
                text,
                "  function      {}, last update {}, code {}",
                function.state,
                function.last_update_status,
                if function.code_matches {
                    "is the deployed package"
                } else {
                    "DIFFERS from the deployed package"
                }
            );
        }
        if let Some(queue) = &region.dead_letter_queue {
            let _ = writeln!(
                text,
                "  dead letters  {} ({} in flight)",
                queue.messages, queue.in_flight
            );
        }
        if let Some(breaker) = &region.delete_breaker
            && (breaker.held > 0 || !breaker.open_for.is_empty())
        {
            let sources: Vec<&str> = breaker.open_for.iter().map(|o| o.source.as_str()).collect();
            let _ = writeln!(
                text,
                "  held deletes  {} (breaker open for {}; alarm {})",
                breaker.held,
                if sources.is_empty() {
                    "none".to_owned()
                } else {
                    sources.join(", ")
                },
                breaker.alarm.as_deref().unwrap_or("unknown")
            );
        }
        match &region.last_repair {
            Some(run) => {
                let _ = writeln!(
                    text,
                    "  last repair   {} ({}, {:.0} s ago), {:.1} s, {} keys examined, {} copies, {} failures",
                    if run.ok { "ok" } else { "FAILED" },
                    run.run,
                    (now_ms() - run.finished_ms).max(0) as f64 / 1000.0,
                    run.seconds,
                    run.keys_examined,
                    run.copies_made,
                    run.failures + run.ranges_failed as u64
                );
            }
            None => {
                let _ = writeln!(text, "  last repair   none yet");
            }
        }
        if let Some(bucket) = &region.bucket {
            let _ = writeln!(
                text,
                "  bucket        {} objects, {}",
                bucket.objects,
                HumanBytes(bucket.bytes)
            );
        }
        for problem in &region.problems {
            let _ = writeln!(text, "  ! {problem}");
        }
    }
    if result.healthy {
        let _ = writeln!(text, "Healthy: {} regions.", result.regions.len());
    } else {
        let bad: Vec<&str> = result
            .regions
            .iter()
            .filter(|r| !r.healthy)
            .map(|r| r.region.as_str())
            .collect();
        let _ = writeln!(text, "UNHEALTHY: {}", bad.join(", "));
    }
    text
}
