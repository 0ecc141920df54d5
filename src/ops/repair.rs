//! The repair in the cloud: each region's state machine (`templates/base.yaml`,
//! RepairStateMachine) repairs that region's bucket from every member
//! region, on its schedule or when `sync --in-cloud` starts it. Here: start
//! a run in every region, follow it, and read what it kept
//! (`repair/runs/RUN/report.json` and `repair/last.json` in each region's
//! artifact bucket, written by the function's report step).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use futures::future::join_all;
pub use toastrep_replication::function::repair::RunReport;

use crate::aws::Aws;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::ops::context::SetContext;
use crate::ops::sync::{
    CloudRun, MapItems, NotReplicable, RegionRun, SyncCopy, SyncDelete, SyncFailure, SyncReport,
    UnreachableRegion,
};
use crate::progress::Reporter;

/// How often a followed run is looked at.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The ARN of the repair state machine of set `name` in `region`.
fn state_machine_arn(name: &SetName, region: Region, account: &str) -> String {
    let partition = region.partition();
    format!("arn:{partition}:states:{region}:{account}:stateMachine:toastrep-{name}-repair")
}

/// The last run's report of `region`, if it ever ran.
pub async fn last_run(set: &SetContext, region: Region) -> Result<Option<RunReport>> {
    read_report(set, region, "repair/last.json").await
}

async fn read_report(set: &SetContext, region: Region, key: &str) -> Result<Option<RunReport>> {
    let SetContext { aws, name, account } = set;
    let bucket = name.artifact_bucket(region, account);
    let Some(bytes) = aws.objects(region, &bucket).get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("s3://{bucket}/{key} is not a repair report"))
}

/// Starts a repair run in every region of `regions`, under one run id.
pub async fn start(set: &SetContext, regions: &[Region], deep: bool) -> Result<CloudRun> {
    let SetContext { aws, name, account } = set;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let run = format!("sync-{millis}");
    let input = serde_json::json!({ "deep": deep }).to_string();
    let started = join_all(regions.iter().map(|region| {
        let (run, input) = (&run, &input);
        async move {
            let arn = state_machine_arn(name, *region, account);
            aws.start_execution(*region, &arn, run, input)
                .await
                .with_context(|| {
                    format!(
                        "starting the repair in {region} ({arn}); a set deployed before the repair existed gets it with `toastrep deploy`"
                    )
                })
                .map(|execution_arn| RegionRun {
                    region: *region,
                    execution_arn,
                    status: "RUNNING".into(),
                    ranges: None,
                    invocations: 0,
                    longest_invocation_ms: 0,
                    error: None,
                })
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    Ok(CloudRun {
        run,
        executions: started,
    })
}

/// Follows `run` until every region's execution ended, showing progress.
async fn follow(set: &SetContext, run: &mut CloudRun, reporter: &dyn Reporter) -> Result<()> {
    let SetContext { aws, name, .. } = set;
    reporter.started(
        name.as_str(),
        "sync --in-cloud",
        &format!("run {}", run.run),
    );
    let mut ticker = tokio::time::interval(POLL_EVERY);
    loop {
        ticker.tick().await;
        let looked = join_all(run.executions.iter().map(|e| look(aws, e))).await;
        for (execution, looked) in run.executions.iter_mut().zip(looked) {
            let (status, ranges, error) = looked?;
            execution.status = status;
            execution.ranges = ranges.or(execution.ranges);
            execution.error = error;
        }
        let line = run
            .executions
            .iter()
            .map(|e| match e.ranges {
                Some(r) => format!(
                    "{}: {}/{} ranges ({} failed)",
                    e.region,
                    r.succeeded + r.failed,
                    r.total,
                    r.failed
                ),
                None => format!("{}: {}", e.region, e.status.to_lowercase()),
            })
            .collect::<Vec<_>>()
            .join(", ");
        reporter.counted(name.as_str(), "sync --in-cloud", &line);
        if run.executions.iter().all(|e| e.status != "RUNNING") {
            let ok = run.executions.iter().all(|e| e.status == "SUCCEEDED");
            reporter.finished(name.as_str(), "sync --in-cloud", &line, ok);
            return Ok(());
        }
    }
}

/// An execution's status, its map run's item counts, and its error.
async fn look(
    aws: &Aws,
    execution: &RegionRun,
) -> Result<(String, Option<MapItems>, Option<String>)> {
    let now = aws
        .execution(execution.region, &execution.execution_arn)
        .await
        .with_context(|| format!("following {}", execution.execution_arn))?;
    let items = now.items.map(|counts| MapItems {
        total: counts.total,
        succeeded: counts.succeeded,
        failed: counts.failed,
        running: counts.running,
    });
    Ok((now.status, items, now.error))
}

/// The runs' reports as one sync report, in the local sync's shape: copies
/// and failures of every region, each region repaired by its own run.
pub async fn report(
    set: &SetContext,
    regions: &[Region],
    carry_deletes: bool,
    run: &mut CloudRun,
    seconds: f64,
) -> Result<SyncReport> {
    let SetContext { name, .. } = set;
    let key = format!("repair/runs/{}/report.json", run.run);
    let reports = join_all(
        run.executions
            .iter()
            .map(|e| read_report(set, e.region, &key)),
    )
    .await;
    let mut sync = SyncReport {
        name: name.to_string(),
        regions: regions.to_vec(),
        carry_deletes,
        seconds,
        ok: true,
        ..SyncReport::default()
    };
    let mut unreachable = BTreeMap::new();
    for (execution, report) in run.executions.iter_mut().zip(reports) {
        let region = execution.region;
        let Some(report) = report? else {
            // The run ended before its report step (the plan failed).
            sync.failures.push(SyncFailure {
                key: String::new(),
                region,
                source: None,
                error: format!(
                    "the repair run in {region} reported nothing: {}",
                    execution.error.as_deref().unwrap_or(&execution.status)
                ),
            });
            continue;
        };
        execution.invocations = report.invocations;
        execution.longest_invocation_ms = report.longest_invocation_ms;
        add_region_report(&mut sync, region, report, &mut unreachable)?;
    }
    sync.unreachable = unreachable
        .into_iter()
        .map(|(region, error)| UnreachableRegion { region, error })
        .collect();
    sync.copies
        .sort_by(|a, b| (&a.key, &a.destination).cmp(&(&b.key, &b.destination)));
    sync.ok = sync.failures.is_empty()
        && sync.unreachable.is_empty()
        && run.executions.iter().all(|e| e.status == "SUCCEEDED");
    sync.in_cloud = Some(run.clone());
    Ok(sync)
}

/// Adds one region's run report to the set's sync report.
fn add_region_report(
    sync: &mut SyncReport,
    region: Region,
    report: RunReport,
    unreachable: &mut BTreeMap<Region, String>,
) -> Result<()> {
    // Every region lists the union of the set's keys.
    sync.keys_scanned = sync.keys_scanned.max(report.tally.keys_scanned);
    sync.keys_examined += report.tally.keys_examined;
    sync.copies_made += report.tally.copies_made;
    sync.bytes_copied += report.tally.bytes_copied;
    sync.deletes_made += report.tally.deletes_made;
    sync.deletes_held += report.tally.deletes_held;
    sync.keys_differing_by_delete += report.tally.keys_differing_by_delete;
    // The function names regions as strings; one toastrep does not know
    // is a report this toastrep cannot read.
    let named = |name: &str| {
        Region::parse(name).with_context(|| format!("reading the repair report of {region}"))
    };
    for c in report.tally.copies {
        sync.copies.push(SyncCopy {
            key: c.key,
            source: named(&c.source)?,
            destination: region,
            reason: c.reason,
            bytes: c.bytes,
        });
    }
    sync.deletes
        .extend(report.tally.deletes.into_iter().map(|key| SyncDelete {
            key,
            region: region.to_owned(),
        }));
    sync.not_replicable
        .extend(
            report
                .tally
                .not_replicable
                .into_iter()
                .map(|(key, why)| NotReplicable {
                    key,
                    region: region.to_owned(),
                    why,
                }),
        );
    for f in report.tally.failures {
        sync.failures.push(SyncFailure {
            key: f.key,
            region: named(&f.region)?,
            source: f.source.as_deref().map(named).transpose()?,
            error: f.error,
        });
    }
    if report.ranges_failed > 0 && report.tally.failure_count == 0 {
        sync.failures.push(SyncFailure {
            key: String::new(),
            region,
            source: None,
            error: format!(
                "{} of {} ranges did not finish{}",
                report.ranges_failed,
                report.ranges,
                report.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        });
    }
    for (other, error) in report.tally.unreachable {
        unreachable.entry(named(&other)?).or_insert(error);
    }
    Ok(())
}

/// Runs the repair now in every region, follows it and reports it.
pub async fn sync_in_cloud(
    set: &SetContext,
    regions: &[Region],
    carry_deletes: bool,
    deep: bool,
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let started = Instant::now();
    let mut run = start(set, regions, deep).await?;
    follow(set, &mut run, reporter).await?;
    report(
        set,
        regions,
        carry_deletes,
        &mut run,
        started.elapsed().as_secs_f64(),
    )
    .await
}
