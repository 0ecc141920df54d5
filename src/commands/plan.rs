//! `toastrep plan` (and `deploy --dry-run`): what a deploy would do, changing
//! nothing. An absent stack would be created; for a present one a
//! CloudFormation change set gives the resource-level changes and is deleted
//! again; the package would be uploaded where its key is missing.

use std::fmt::Write as _;

use anyhow::Result;
use futures::{StreamExt, stream};
use serde::Serialize;

use super::deploy;
use super::{Context, Report};
use crate::aws::lifecycle::{deletes_phrase, kept_phrase};
use crate::aws::stack::{self, PreviewAction, ResourceChange};
use crate::cli::{FunctionArgs, PlanArgs};
use crate::model::architecture::Architecture;
use crate::model::names::SetName;
use crate::model::topology::{DeployPlan, SetSpec, StackPlan};
use crate::ops::discover;
use crate::ops::marker_key;
use crate::package::Package;

#[derive(Serialize)]
struct PlanResult {
    name: String,
    account: String,
    regions: Vec<String>,
    package: PackagePlan,
    /// The instruction set the function runs on, deployed and planned.
    function: FunctionPlan,
    /// How deletes and old versions are treated, deployed and planned.
    deletes: DeletesPlan,
    stacks: Vec<StackRow>,
    /// Regions new to the deployed set: they would be backfilled and verified.
    added: Vec<String>,
    /// Whether a deploy would change anything.
    changes: bool,
    ok: bool,
}

#[derive(Serialize)]
struct DeletesPlan {
    /// The deployed setting (none for a new set).
    #[serde(skip_serializing_if = "Option::is_none")]
    replicated_now: Option<bool>,
    replicated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_noncurrent_days_now: Option<u32>,
    keep_noncurrent_days: u32,
}

#[derive(Serialize)]
struct FunctionPlan {
    /// The deployed architecture (none for a new set).
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture_now: Option<Architecture>,
    architecture: Architecture,
    /// The deployed repair schedule (none for a new set).
    #[serde(skip_serializing_if = "Option::is_none")]
    repair_schedule_now: Option<String>,
    repair_schedule: String,
}

#[derive(Serialize)]
struct PackagePlan {
    key: String,
    sha256: String,
    bytes: usize,
    /// What its binary runs on (none for a script).
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<Architecture>,
    /// Regions whose artifact bucket lacks the package.
    upload_to: Vec<String>,
}

#[derive(Serialize)]
struct StackRow {
    stack_name: String,
    region: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<PreviewAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<ResourceChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn plan(context: &Context, args: &PlanArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    args.function.settings(None).check()?;
    let prebuilt = Package::prebuilt(
        args.function.lambda_zip.as_deref(),
        args.function.architecture,
    )?;
    let spec = if args.regions.is_empty() {
        // No list: plan for the regions the set is deployed in.
        let aws = context.aws("us-east-1").await;
        let account = aws.account_id().await?;
        let candidates = discover::candidate_regions(&[], aws.region());
        let found = discover::discover(&aws, &name, &account, &candidates).await?;
        let regions = discover::require_deployed(&found, &name)?;
        SetSpec::parse(name.as_str(), &regions)?
    } else {
        SetSpec::parse(name.as_str(), &args.regions)?
    };
    preview(context, spec, &args.function, prebuilt, args.concurrency).await
}

/// The plan of a deploy of `spec`; shared with `deploy --dry-run`.
pub(crate) async fn preview(
    context: &Context,
    spec: SetSpec,
    function: &FunctionArgs,
    prebuilt: Option<Package>,
    concurrency: u16,
) -> Result<Report> {
    let reporter = context.reporter.as_ref();
    let aws = context.aws(&spec.regions[0]).await;
    let account = aws.account_id().await?;
    let found = deploy::discover_in_partition(&aws, &spec.name, &account, spec.partition).await?;
    deploy::check_no_leftover_buckets(&found, &spec, &account)?;
    deploy::check_no_dropped_members(&found, &spec)?;
    let members = deploy::complete_members(&aws, &spec.name, &account, &found).await?;
    let deployed = found.settings();
    let settings = function.settings(deployed.as_ref());
    settings.check()?;
    let deletes = DeletesPlan {
        replicated_now: deployed.as_ref().map(|d| d.replicate_deletes),
        replicated: settings.replicate_deletes,
        keep_noncurrent_days_now: deployed.as_ref().map(|d| d.keep_noncurrent_days),
        keep_noncurrent_days: settings.keep_noncurrent_days,
    };
    let function_plan = FunctionPlan {
        architecture_now: deployed.as_ref().map(|d| d.architecture),
        architecture: settings.architecture,
        repair_schedule_now: deployed.as_ref().map(|d| d.repair_schedule.clone()),
        repair_schedule: settings.repair_schedule.clone(),
    };
    // The deployed key, as deploy would pass it: an unchanged set then shows
    // no change (the NoEcho value is the same, though no API shows it).
    let marker_key =
        marker_key::for_deploy(&aws, &spec.name, &deploy::deployed_regions(&found)).await?;
    let package = Package::for_function(
        prebuilt,
        settings.architecture,
        function.source.function_source.as_deref(),
        reporter,
    )
    .await?;
    let plan = DeployPlan::new(spec, package.key.clone(), &settings, &marker_key);

    let mut upload_to = Vec::new();
    for region in &plan.spec.regions {
        let bucket = plan.spec.name.artifact_bucket(region, &account);
        let present = found.artifact_buckets.contains(region)
            && aws
                .s3(region)
                .head_object()
                .bucket(&bucket)
                .key(&package.key)
                .send()
                .await
                .is_ok();
        if !present {
            upload_to.push(region.clone());
        }
    }

    let aws = &aws;
    let stacks: Vec<StackRow> = stream::iter(plan.stacks())
        .map(|stack_plan| async move {
            let cfn = aws.cloudformation(&stack_plan.region);
            reporter.started(&stack_plan.region, &stack_plan.stack_name, "planning");
            let preview = stack::preview_stack(&cfn, stack_plan).await;
            let row = row(stack_plan, preview);
            reporter.finished(
                &stack_plan.region,
                &stack_plan.stack_name,
                &row.action.map_or("failed".to_owned(), |a| a.to_string()),
                row.error.is_none(),
            );
            row
        })
        .buffered(usize::from(concurrency))
        .collect()
        .await;
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
    let ok = stacks.iter().all(|s| s.error.is_none());
    let changes = !upload_to.is_empty()
        || !added.is_empty()
        || stacks
            .iter()
            .any(|s| s.action != Some(PreviewAction::NoChange));
    let result = PlanResult {
        name: plan.spec.name.to_string(),
        account,
        regions: plan.spec.regions.clone(),
        package: PackagePlan {
            key: package.key.clone(),
            sha256: package.sha256.clone(),
            bytes: package.bytes,
            architecture: package.architecture,
            upload_to,
        },
        function: function_plan,
        deletes,
        stacks,
        added,
        changes,
        ok,
    };
    let text = summary(&result);
    Ok(Report::new(&result, text, ok))
}

fn row(plan: &StackPlan, preview: Result<stack::StackPreview, stack::StackError>) -> StackRow {
    let mut row = StackRow {
        stack_name: plan.stack_name.clone(),
        region: plan.region.clone(),
        kind: plan.template.kind(),
        action: None,
        status: None,
        changes: Vec::new(),
        error: None,
    };
    match preview {
        Ok(preview) => {
            row.action = Some(preview.action);
            row.status = preview.status;
            row.changes = preview.changes;
        }
        Err(error) => row.error = Some(error.to_string()),
    }
    row
}

fn summary(result: &PlanResult) -> String {
    let mut text = format!(
        "Plan for replica set '{}' in {} regions: {}\n",
        result.name,
        result.regions.len(),
        result.regions.join(", ")
    );
    let _ = writeln!(
        text,
        "Package {} ({} bytes): {}",
        result.package.key,
        result.package.bytes,
        if result.package.upload_to.is_empty() {
            "already in every region".to_owned()
        } else {
            format!("upload to {}", result.package.upload_to.join(", "))
        }
    );
    let function = &result.function;
    let mut line = format!("Function on {}", function.architecture);
    if let Some(now) = function
        .architecture_now
        .filter(|now| *now != function.architecture)
    {
        let _ = write!(line, " (now {now})");
    }
    let _ = write!(line, "; repair in the cloud {}", function.repair_schedule);
    if let Some(now) = function
        .repair_schedule_now
        .as_ref()
        .filter(|now| **now != function.repair_schedule)
    {
        let _ = write!(line, " (now {now})");
    }
    let _ = writeln!(text, "{line}");
    let deletes = &result.deletes;
    let mut line = format!("Deletes {}", deletes_phrase(deletes.replicated));
    if let Some(now) = deletes
        .replicated_now
        .filter(|now| *now != deletes.replicated)
    {
        let _ = write!(line, " (now {})", deletes_phrase(now));
    }
    let _ = write!(
        line,
        "; overwritten and deleted versions kept {}",
        kept_phrase(deletes.keep_noncurrent_days)
    );
    if let Some(now) = deletes
        .keep_noncurrent_days_now
        .filter(|now| *now != deletes.keep_noncurrent_days)
    {
        let _ = write!(line, " (now {})", kept_phrase(now));
    }
    let _ = writeln!(text, "{line}");
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
