//! `toastrep status`: the health of a deployed set, region by region (see
//! [`crate::ops::health`]).

use std::fmt::Write as _;

use anyhow::Result;
use indicatif::HumanBytes;

use super::words::{deletes_phrase, kept_phrase};
use super::{Context, Report};
use crate::ops::discover;
use crate::ops::health::{RepairRun, StatusResult};
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
        crate::ops::health::status(&located, package.as_ref(), context.reporter.as_ref()).await?;
    let text = summary(&result);
    Ok(Report::new(&result, text, result.ok))
}

pub(super) fn summary(result: &StatusResult) -> String {
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
        repair_lines(&mut text, region.last_repair.as_ref(), &result.name);
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

/// The region's last repair run, and what it found it can never copy.
fn repair_lines(text: &mut String, last_repair: Option<&RepairRun>, name: &str) {
    match last_repair {
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
            if run.not_replicable > 0 {
                let _ = writeln!(
                    text,
                    "  not replicable {} object(s) cannot be copied here as they are (not failures):",
                    run.not_replicable
                );
                for object in &run.not_replicable_objects {
                    let _ = writeln!(text, "    {}: {}", object.key, object.why.why());
                }
                let listed = run.not_replicable_objects.len() as u64;
                if run.not_replicable > listed {
                    let _ = writeln!(
                        text,
                        "    ... and {} more (a `toastrep sync --name {}` lists them all)",
                        run.not_replicable - listed,
                        name
                    );
                }
            }
        }
        None => {
            let _ = writeln!(text, "  last repair   none yet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::health::{RegionStatus, RepairRun};
    use crate::ops::sync::NotReplicable;
    use toastrep_replication::Unreplicable;

    fn region_after(run: RepairRun) -> RegionStatus {
        RegionStatus {
            region: "eu-west-2".into(),
            healthy: true,
            problems: Vec::new(),
            joining: false,
            stacks: Vec::new(),
            function: None,
            dead_letter_queue: None,
            delete_breaker: None,
            bucket: None,
            last_repair: Some(run),
        }
    }

    #[test]
    fn status_names_each_object_the_last_repair_could_not_copy_and_why_yet_stays_healthy() {
        let listed = |key: &str, why| NotReplicable {
            key: key.into(),
            region: "eu-west-2".into(),
            why,
        };
        let run = RepairRun {
            run: "scheduled-1".into(),
            finished_ms: now_ms(),
            seconds: 1.0,
            ranges: 4,
            ranges_failed: 0,
            keys_examined: 10,
            copies_made: 0,
            failures: 0,
            not_replicable: 3,
            not_replicable_objects: vec![
                listed("cold/a", Unreplicable::Archived),
                listed("secret/b", Unreplicable::CustomerKey),
            ],
            ok: true,
        };
        let result = StatusResult {
            name: "media".into(),
            account: "000000000000".into(),
            deletes: None,
            regions: vec![region_after(run)],
            healthy: true,
            ok: true,
        };
        let text = summary(&result);
        assert!(text.contains("not replicable 3 object(s)"), "{text}");
        assert!(
            text.contains(&format!("cold/a: {}", Unreplicable::Archived.why())),
            "{text}"
        );
        assert!(
            text.contains(&format!("secret/b: {}", Unreplicable::CustomerKey.why())),
            "{text}"
        );
        assert!(text.contains("... and 1 more"), "{text}");
        assert!(text.contains("Healthy: 1 regions."), "{text}");
    }
}
