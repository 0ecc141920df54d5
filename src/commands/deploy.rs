//! `toastrep deploy`: bring a replica set to its plan.
//!
//! Order: check all input and build the plan; check credentials; find what is
//! deployed (a region list that drops a member is refused: that is
//! remove-region's job); build the package; upload it to every region's
//! artifact bucket; deploy every base stack in parallel; then every pair
//! (grant, then subscription) in parallel. Regions new to a deployed set are
//! then backfilled with the objects the set already holds and the set is
//! verified: the same as `add-region`, which calls [`roll_out`] too.
//!
//! A region being added carries a marker object in its artifact bucket (which
//! only toastrep writes, and which is not replicated) from before its base
//! stack is created until the backfill and the verify have passed. A run that
//! was interrupted leaves the marker, so the next deploy or add-region knows
//! the region still needs its backfill, and `status` flags it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{Context, Report};
use crate::aws::Aws;
use crate::aws::artifacts;
use crate::aws::lifecycle;
use crate::aws::stack::{self, ResourceFailure, StackAction};
use crate::bail_input;
use crate::cli::{DeployArgs, SetArgs, VerifyArgs};
use crate::model::architecture::Architecture;
use crate::model::names::SetName;
use crate::model::regions;
use crate::model::topology::{DeployPlan, SetSpec, StackPlan};
use crate::ops::discover::{self, DeployedSet};
use crate::ops::marker_key;
use crate::ops::sync::{self, SyncOptions};
use crate::package::Package;
use crate::progress::Reporter;

#[derive(Serialize)]
struct DeployResult {
    name: String,
    account: String,
    regions: Vec<String>,
    package: PackageResult,
    stacks: Vec<StackRow>,
    /// Regions new to an already deployed set: backfilled, then verified.
    added: Vec<String>,
    /// The backfill's report (the objects copied into the added regions).
    #[serde(skip_serializing_if = "Option::is_none")]
    backfill: Option<serde_json::Value>,
    /// verify's report, run once regions were added.
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<serde_json::Value>,
    /// Why the backfill or the verify failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// True when the deploy changed nothing at all.
    up_to_date: bool,
    ok: bool,
}

#[derive(Serialize)]
struct PackageResult {
    key: String,
    sha256: String,
    bytes: usize,
    /// What its binary runs on (none for a script).
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<Architecture>,
    uploaded_to: Vec<String>,
}

/// One stack's line in the result: an action, or an error with its causes.
#[derive(Serialize)]
struct StackRow {
    stack_name: String,
    region: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<StackAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failures: Vec<ResourceFailure>,
    /// Not attempted, because a stack it depends on failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    skipped: bool,
}

pub async fn deploy(context: &Context, args: &DeployArgs) -> Result<Report> {
    let spec = SetSpec::parse(&args.set.name, &args.regions)?;
    args.function.settings(None).check()?;
    let prebuilt = Package::prebuilt(
        args.function.lambda_zip.as_deref(),
        args.function.architecture,
    )?;
    if args.dry_run {
        return super::plan::preview(context, spec, &args.function, prebuilt, args.concurrency)
            .await;
    }
    let reporter = context.reporter.as_ref();
    let aws = context.aws(&spec.regions[0]).await;
    let account = aws.account_id().await?;
    let found = discover_in_partition(&aws, &spec.name, &account, spec.partition).await?;
    check_no_leftover_buckets(&found, &spec, &account)?;
    check_no_dropped_members(&found, &spec)?;
    let members = complete_members(&aws, &spec.name, &account, &found).await?;
    let settings = args.function.settings(found.settings().as_ref());
    settings.check()?;
    // Read back before any stack changes, so a redeploy keeps the set's key.
    let marker_key = marker_key::for_deploy(&aws, &spec.name, &deployed_regions(&found)).await?;

    let package = Package::for_function(
        prebuilt,
        settings.architecture,
        args.function.source.function_source.as_deref(),
        reporter,
    )
    .await?;
    let plan = DeployPlan::new(spec, package.key.clone(), &settings, &marker_key);
    roll_out(
        context,
        &aws,
        &account,
        &plan,
        &package,
        &members,
        args.concurrency,
    )
    .await
}

/// Finds the set in every region of the partition: a member missing from the
/// region list must be noticed, wherever it is.
pub(crate) async fn discover_in_partition(
    aws: &Aws,
    name: &SetName,
    account: &str,
    partition: &str,
) -> Result<DeployedSet> {
    let candidates: Vec<String> = regions::regions_in(partition).map(str::to_owned).collect();
    discover::discover(aws, name, account, &candidates).await
}

/// The regions holding a base stack of the set.
pub(crate) fn deployed_regions(found: &DeployedSet) -> Vec<String> {
    found.bases.keys().cloned().collect()
}

/// A deploy never deletes a region: removing one is a separate, deliberate
/// command, since it stops replication there.
pub(crate) fn check_no_dropped_members(found: &DeployedSet, spec: &SetSpec) -> Result<()> {
    let dropped: Vec<&String> = found
        .bases
        .keys()
        .filter(|r| !spec.regions.contains(r))
        .collect();
    if let Some(region) = dropped.first() {
        let members: Vec<&str> = found.bases.keys().map(String::as_str).collect();
        bail_input!(
            "set '{}' is deployed in {}, and --regions leaves out {}: deploy never removes a region; to remove it, run `toastrep remove-region --name {} --region {region}`, or add it to --regions",
            spec.name,
            members.join(", "),
            dropped
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            spec.name
        );
    }
    Ok(())
}

/// The marker key in a region's artifact bucket while the region is being added.
const JOINING_MARKER: &str = "toastrep/joining";

/// The regions with a base stack whose addition has finished (no marker).
pub(crate) async fn complete_members(
    aws: &Aws,
    name: &SetName,
    account: &str,
    found: &DeployedSet,
) -> Result<BTreeSet<String>> {
    let joining = joining_regions(aws, name, account, found).await?;
    Ok(found
        .bases
        .keys()
        .filter(|r| !joining.contains(*r))
        .cloned()
        .collect())
}

/// The regions with a base stack whose addition has not finished.
pub(crate) async fn joining_regions(
    aws: &Aws,
    name: &SetName,
    account: &str,
    found: &DeployedSet,
) -> Result<BTreeSet<String>> {
    let checks = found
        .bases
        .keys()
        .filter(|r| found.artifact_buckets.contains(*r))
        .map(|region| async move {
            let bucket = name.artifact_bucket(region, account);
            let head = aws
                .s3(region)
                .head_object()
                .bucket(&bucket)
                .key(JOINING_MARKER)
                .send()
                .await;
            match head {
                Ok(_) => Ok(Some(region.clone())),
                Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                    Ok(None)
                }
                Err(error) => Err(anyhow::Error::new(error).context(format!(
                    "checking s3://{bucket}/{JOINING_MARKER} in {region}"
                ))),
            }
        });
    let mut joining = BTreeSet::new();
    for result in join_all(checks).await {
        joining.extend(result?);
    }
    Ok(joining)
}

async fn set_joining_marker(
    aws: &Aws,
    name: &SetName,
    account: &str,
    region: &str,
    joining: bool,
) -> Result<()> {
    let bucket = name.artifact_bucket(region, account);
    let s3 = aws.s3(region);
    let result = if joining {
        s3.put_object()
            .bucket(&bucket)
            .key(JOINING_MARKER)
            .body(
                b"added by toastrep; removed once the backfill and verify passed\n"
                    .to_vec()
                    .into(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(anyhow::Error::new)
    } else {
        s3.delete_object()
            .bucket(&bucket)
            .key(JOINING_MARKER)
            .send()
            .await
            .map(|_| ())
            .map_err(anyhow::Error::new)
    };
    result.with_context(|| format!("writing s3://{bucket}/{JOINING_MARKER} in {region}"))
}

/// Deploys a plan: the package, every stack, and for regions new to a set
/// whose `members` were already deployed, the backfill and a verify.
pub(crate) async fn roll_out(
    context: &Context,
    aws: &Aws,
    account: &str,
    plan: &DeployPlan,
    package: &Package,
    members: &BTreeSet<String>,
    concurrency: u16,
) -> Result<Report> {
    let reporter = context.reporter.as_ref();
    let name = &plan.spec.name;
    // A brand-new set has nothing to backfill.
    let added: Vec<String> = if members.is_empty() {
        Vec::new()
    } else {
        plan.spec
            .regions
            .iter()
            .filter(|r| !members.contains(*r))
            .cloned()
            .collect()
    };
    let uploaded_to = upload_package(aws, plan, account, package, reporter).await?;
    for region in &added {
        set_joining_marker(aws, name, account, region, true).await?;
    }

    let permits = Arc::new(Semaphore::new(usize::from(concurrency)));
    let mut rows: Vec<StackRow> = join_all(
        plan.bases
            .iter()
            .map(|base| apply(aws, base, &permits, reporter)),
    )
    .await;
    let failed_bases: Vec<String> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.region.clone())
        .collect();
    // The buckets' lifecycle rules, as the template declares them (see
    // `lifecycle`), and the artifact bucket's: on every region whose base
    // stack is in place.
    let days = plan.settings.keep_noncurrent_days;
    futures::future::try_join_all(
        plan.bases
            .iter()
            .filter(|base| !failed_bases.contains(&base.region))
            .map(|base| async move {
                let s3 = aws.s3(&base.region);
                lifecycle::apply(&s3, &name.data_bucket(&base.region, account), days).await?;
                lifecycle::apply_artifacts(&s3, &name.artifact_bucket(&base.region, account)).await
            }),
    )
    .await?;
    let pair_rows = join_all(plan.pairs.iter().map(|pair| {
        let permits = permits.clone();
        let blocked =
            failed_bases.contains(&pair.source) || failed_bases.contains(&pair.destination);
        async move {
            if blocked {
                return vec![skipped(&pair.grant), skipped(&pair.subscription)];
            }
            // The grant first: the function must accept the topic's
            // invocations before the subscription starts sending them.
            let grant = apply(aws, &pair.grant, &permits, reporter).await;
            let subscription = if grant.error.is_some() {
                skipped(&pair.subscription)
            } else {
                apply(aws, &pair.subscription, &permits, reporter).await
            };
            vec![grant, subscription]
        }
    }))
    .await;
    rows.extend(pair_rows.into_iter().flatten());
    let stacks_ok = rows.iter().all(|r| r.error.is_none() && !r.skipped);

    // Only once every subscription is in place: from then on the replicator
    // copies every new upload into the added regions, so the backfill's
    // listing, taken afterwards, misses nothing.
    let (mut backfill_json, mut verify_json, mut error) = (None, None, None);
    let mut added_ok = true;
    if stacks_ok && !added.is_empty() {
        let result = async {
            reporter.note(&format!(
                "backfilling the set's objects into {}",
                added.join(", ")
            ));
            let backfill = backfill(aws, plan, account, &added, reporter)
                .await
                .context("backfilling the added regions")?;
            backfill_json = Some(backfill);
            reporter.note("verifying the set");
            let verify = super::verify(
                context,
                &VerifyArgs {
                    set: SetArgs {
                        name: name.to_string(),
                    },
                    regions: plan.spec.regions.clone(),
                    timeout: 60,
                    probe_size: 64 * 1024,
                    objects: None,
                    concurrency: 16,
                },
            )
            .await
            .context("verifying the set")?;
            let verified = verify.ok;
            verify_json = Some(verify.json);
            if !verified {
                anyhow::bail!("verify did not converge (see its report)");
            }
            for region in &added {
                set_joining_marker(aws, name, account, region, false).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            added_ok = false;
            error = Some(format!("{e:#}"));
        }
    }

    let ok = stacks_ok && added_ok;
    let up_to_date = ok
        && added.is_empty()
        && uploaded_to.is_empty()
        && rows
            .iter()
            .all(|r| r.action == Some(StackAction::Unchanged));
    let result = DeployResult {
        name: name.to_string(),
        account: account.to_owned(),
        regions: plan.spec.regions.clone(),
        package: PackageResult {
            key: package.key.clone(),
            sha256: package.sha256.clone(),
            bytes: package.bytes,
            architecture: package.architecture,
            uploaded_to,
        },
        stacks: rows,
        added,
        backfill: backfill_json,
        verify: verify_json,
        error,
        up_to_date,
        ok,
    };
    let text = summary(&result);
    Ok(Report::new(&result, text, ok))
}

/// Keys examined and copied at once by the backfill.
const BACKFILL_CONCURRENCY: usize = 32;

/// Copies every object the set holds into the added regions, with the
/// replicator's rule for which write wins; a key deleted where the set
/// carries deletes is not copied.
async fn backfill(
    aws: &Aws,
    plan: &DeployPlan,
    account: &str,
    into: &[String],
    reporter: &dyn Reporter,
) -> Result<serde_json::Value> {
    let (name, regions) = (&plan.spec.name, &plan.spec.regions);
    let options = SyncOptions {
        prefix: None,
        dry_run: false,
        // A new region lacks every key: the listing finds them all.
        deep: false,
        concurrency: BACKFILL_CONCURRENCY,
        only_into: Some(into.to_vec()),
        carry_deletes: plan.settings.replicate_deletes,
    };
    // The same key as the set's functions: the added regions' copies must
    // carry markers they can verify.
    let marker_key = crate::ops::marker_key::for_set(aws, name, regions).await?;
    // The set's own part size and concurrency, as its functions copy.
    let settings = plan.settings.copy_settings();
    let report = sync::sync_set(
        aws,
        name,
        account,
        regions,
        &marker_key,
        &settings,
        &options,
        reporter,
    )
    .await?;
    let ok = report.ok;
    let json = serde_json::to_value(&report).expect("reports serialise");
    if !ok {
        anyhow::bail!(
            "the backfill did not copy everything: {} failures, unreachable regions {:?}",
            report.failures.len(),
            report.unreachable
        );
    }
    Ok(json)
}

/// A data bucket kept by an earlier teardown (it held objects) blocks the
/// base stack's create; say so before anything is changed.
pub(crate) fn check_no_leftover_buckets(
    found: &DeployedSet,
    spec: &SetSpec,
    account: &str,
) -> Result<()> {
    for region in &spec.regions {
        if found.data_buckets.contains(region) && !found.bases.contains_key(region) {
            bail_input!(
                "bucket {} in {region} is left from an earlier deployment of '{}' (teardown keeps buckets that hold objects), and a new base stack cannot take it over: copy its objects elsewhere and delete it, or use another set name",
                spec.name.data_bucket(region, account),
                spec.name
            );
        }
    }
    Ok(())
}

async fn upload_package(
    aws: &Aws,
    plan: &DeployPlan,
    account: &str,
    package: &Package,
    reporter: &dyn Reporter,
) -> Result<Vec<String>> {
    let results = join_all(plan.spec.regions.iter().map(|region| async move {
        let bucket = plan.spec.name.artifact_bucket(region, account);
        reporter.started(region, &bucket, "uploading the function package");
        let change = artifacts::ensure_package(
            &aws.s3(region),
            &bucket,
            region,
            plan.spec.partition,
            package,
        )
        .await;
        match &change {
            Ok(change) => reporter.finished(
                region,
                &bucket,
                if change.package_uploaded {
                    "package uploaded"
                } else {
                    "package already there"
                },
                true,
            ),
            Err(error) => reporter.finished(region, &bucket, &format!("{error:#}"), false),
        }
        change.map(|c| (region.clone(), c.package_uploaded))
    }))
    .await;
    let mut uploaded = Vec::new();
    for result in results {
        let (region, was_uploaded) = result?;
        if was_uploaded {
            uploaded.push(region);
        }
    }
    Ok(uploaded)
}

async fn apply(
    aws: &Aws,
    plan: &StackPlan,
    permits: &Semaphore,
    reporter: &dyn Reporter,
) -> StackRow {
    let _permit = permits
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let cfn = aws.cloudformation(&plan.region);
    let result = stack::apply_stack(&cfn, plan, reporter).await;
    let (region, name) = (plan.region.as_str(), plan.stack_name.as_str());
    match result {
        Ok(outcome) => {
            reporter.finished(region, name, &outcome.action.to_string(), true);
            StackRow {
                action: Some(outcome.action),
                ..row(plan)
            }
        }
        Err(error) => {
            reporter.finished(region, name, "failed", false);
            StackRow {
                failures: error.failures().to_vec(),
                error: Some(error.to_string()),
                ..row(plan)
            }
        }
    }
}

fn row(plan: &StackPlan) -> StackRow {
    StackRow {
        stack_name: plan.stack_name.clone(),
        region: plan.region.clone(),
        kind: plan.template.kind(),
        action: None,
        error: None,
        failures: Vec::new(),
        skipped: false,
    }
}

fn skipped(plan: &StackPlan) -> StackRow {
    StackRow {
        skipped: true,
        ..row(plan)
    }
}

fn summary(result: &DeployResult) -> String {
    let mut text = format!(
        "Replica set '{}' in {} regions: {}\n",
        result.name,
        result.regions.len(),
        result.regions.join(", ")
    );
    let _ = writeln!(
        text,
        "Package {} ({} bytes): {}",
        result.package.key,
        result.package.bytes,
        if result.package.uploaded_to.is_empty() {
            "already in every region".to_owned()
        } else {
            format!("uploaded to {}", result.package.uploaded_to.join(", "))
        }
    );
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
            let _ = writeln!(text, "Backfill: {}", backfill_line(backfill));
        }
        if let Some(verify) = &result.verify {
            let ok = verify["ok"] == true;
            let _ = writeln!(
                text,
                "Verify: {}",
                if ok {
                    "every pair converged".to_owned()
                } else {
                    format!("NOT converged: {}", verify["failed"])
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

/// One line from the backfill's JSON report: its counters.
fn backfill_line(report: &serde_json::Value) -> String {
    match report.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(_, v)| v.is_number())
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        None => report.to_string(),
    }
}
