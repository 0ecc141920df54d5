//! `toastrep deploy`: bring a replica set to its plan.
//!
//! Order: check all input and build the plan; check credentials; build the
//! package; upload it to every region's artifact bucket; deploy every base
//! stack in parallel; then every pair (grant, then subscription) in parallel.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Result;
use futures::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{Context, Report};
use crate::artifacts;
use crate::aws::Aws;
use crate::bail_input;
use crate::cli::DeployArgs;
use crate::discover;
use crate::package::Package;
use crate::plan::{DeployPlan, SetSpec, StackPlan};
use crate::progress::Reporter;
use crate::stack::{self, ResourceFailure, StackAction};

#[derive(Serialize)]
struct DeployResult {
    name: String,
    account: String,
    regions: Vec<String>,
    package: PackageResult,
    stacks: Vec<StackRow>,
    /// True when the deploy changed nothing at all.
    up_to_date: bool,
    ok: bool,
}

#[derive(Serialize)]
struct PackageResult {
    key: String,
    sha256: String,
    bytes: usize,
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
    let settings = args.function.settings();
    settings.check()?;
    let prebuilt = args
        .function
        .lambda_zip
        .as_deref()
        .map(Package::from_file)
        .transpose()?;
    let reporter = context.reporter.as_ref();
    let aws = context.aws(&spec.regions[0]).await;
    let account = aws.account_id().await?;
    check_no_leftover_buckets(&aws, &spec, &account).await?;

    let package = match prebuilt {
        Some(package) => package,
        None => Package::build(reporter).await?,
    };
    let plan = DeployPlan::new(spec, package.key.clone(), &settings);
    let uploaded_to = upload_package(&aws, &plan, &account, &package, reporter).await?;

    let permits = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let mut rows: Vec<StackRow> = join_all(
        plan.bases
            .iter()
            .map(|base| apply(&aws, base, &permits, reporter)),
    )
    .await;
    let failed_bases: Vec<&str> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.region.as_str())
        .collect();
    let failed_bases: Vec<String> = failed_bases.into_iter().map(str::to_owned).collect();
    let pair_rows = join_all(plan.pairs.iter().map(|pair| {
        let permits = permits.clone();
        let aws = &aws;
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

    let ok = rows.iter().all(|r| r.error.is_none() && !r.skipped);
    let up_to_date = ok
        && uploaded_to.is_empty()
        && rows
            .iter()
            .all(|r| r.action == Some(StackAction::Unchanged));
    let result = DeployResult {
        name: plan.spec.name.to_string(),
        account,
        regions: plan.spec.regions.clone(),
        package: PackageResult {
            key: package.key.clone(),
            sha256: package.sha256.clone(),
            bytes: package.bytes,
            uploaded_to,
        },
        stacks: rows,
        up_to_date,
        ok,
    };
    let text = summary(&result);
    Ok(Report::new(&result, text, ok))
}

/// A data bucket kept by an earlier teardown (it held objects) blocks the
/// base stack's create; say so before anything is changed.
async fn check_no_leftover_buckets(aws: &Aws, spec: &SetSpec, account: &str) -> Result<()> {
    let found = discover::discover(aws, &spec.name, account, &spec.regions).await?;
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
    } else {
        text.push_str("The deploy failed; fix the cause above and run it again to finish.\n");
    }
    text
}
