//! Idempotent CloudFormation stack operations.
//!
//! `apply_stack` creates a stack that is absent and updates one that is
//! present; "no updates are to be performed" is success, not an error. A stack
//! left in `ROLLBACK_COMPLETE` by a failed create cannot be updated, so it is
//! deleted and created again; a stack in progress (another toastrep, or a
//! person in the console) is waited for, not raced.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack, StackEvent, Tag};
use serde::Serialize;

use crate::model::topology::{StackPlan, TAG_SET, TAG_STACK};
use crate::progress::Reporter;

/// What an operation did to a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackAction {
    Created,
    /// Deleted after a failed create, then created again.
    Recreated,
    Updated,
    Unchanged,
    Deleted,
    /// There was nothing to delete.
    Absent,
    /// A stack of the name exists but another set (or not toastrep) made
    /// it: not deleted.
    LeftAlone,
}

impl fmt::Display for StackAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StackAction::Created => "created",
            StackAction::Recreated => "recreated",
            StackAction::Updated => "updated",
            StackAction::Unchanged => "unchanged",
            StackAction::Deleted => "deleted",
            StackAction::Absent => "absent",
            StackAction::LeftAlone => "left alone",
        })
    }
}

/// The result of a successful operation.
#[derive(Debug, Clone, Serialize)]
pub struct StackOutcome {
    pub stack_name: String,
    pub region: String,
    pub action: StackAction,
    pub seconds: f64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

/// A resource CloudFormation could not create, update or delete, with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceFailure {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(
        "stack {stack} in {region} ended {status}{}",
        render_failures(failures)
    )]
    Failed {
        stack: String,
        region: String,
        status: String,
        failures: Vec<ResourceFailure>,
    },
    #[error(
        "stack {stack} in {region} exists but belongs to set '{owner}', not '{wanted}': choose another set name"
    )]
    NotOurs {
        stack: String,
        region: String,
        owner: String,
        wanted: String,
    },
    #[error(
        "stack {stack} in {region} is not this set's to delete (its tags say {found}; wanted {wanted}): left alone"
    )]
    NotOursToDelete {
        stack: String,
        region: String,
        found: String,
        wanted: String,
    },
    #[error("stack {stack} in {region} is {status}: {hint}")]
    Stuck {
        stack: String,
        region: String,
        status: String,
        hint: &'static str,
    },
    #[error("CloudFormation call {operation} for stack {stack} in {region} failed: {message}")]
    Call {
        operation: &'static str,
        stack: String,
        region: String,
        message: String,
    },
}

impl StackError {
    pub fn failures(&self) -> &[ResourceFailure] {
        match self {
            StackError::Failed { failures, .. } => failures,
            _ => &[],
        }
    }
}

fn render_failures(failures: &[ResourceFailure]) -> String {
    let mut text = String::new();
    for failure in failures {
        text.push_str(&format!(
            "\n  - {} ({}) {}: {}{}",
            failure.logical_id,
            failure.resource_type,
            failure.status,
            failure.reason,
            hint_for(&failure.reason)
        ));
    }
    text
}

/// Fixes for failures whose cause is well known.
fn hint_for(reason: &str) -> &'static str {
    if reason.contains("already exists") && reason.contains("AWS::S3::Bucket") {
        "\n    hint: bucket names are global: this one is taken, by an earlier deployment or by another account; delete it (after saving its objects) or choose another set name"
    } else if reason.contains("not authorized") || reason.contains("AccessDenied") {
        "\n    hint: the credentials lack a permission CloudFormation needs; see the README's 'Permissions' section"
    } else {
        ""
    }
}

/// Looks a stack up by name; `None` if it does not exist.
pub async fn describe_stack(
    cfn: &Client,
    stack: &str,
    region: &str,
) -> Result<Option<Stack>, StackError> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out
            .stacks
            .unwrap_or_default()
            .into_iter()
            .find(|s| status_of(s) != "DELETE_COMPLETE")),
        Err(error) if is_missing_stack(&error) => Ok(None),
        Err(error) => Err(call_error("DescribeStacks", stack, region, &error)),
    }
}

/// Creates or updates a stack to match its plan, waiting until it settles.
pub async fn apply_stack(
    cfn: &Client,
    plan: &StackPlan,
    reporter: &dyn Reporter,
) -> Result<StackOutcome, StackError> {
    let start = Instant::now();
    let (name, region) = (plan.stack_name.as_str(), plan.region.as_str());
    let mut recreated = false;
    loop {
        let Some(stack) = describe_stack(cfn, name, region).await? else {
            reporter.started(region, name, "creating");
            let seen = seen_events(cfn, name).await;
            cfn.create_stack()
                .stack_name(name)
                .template_body(plan.template.body())
                .set_parameters(Some(parameters(plan)))
                .set_tags(Some(tags(plan)))
                .capabilities(Capability::CapabilityNamedIam)
                .send()
                .await
                .map_err(|e| call_error("CreateStack", name, region, &e))?;
            let stack = wait_settled(cfn, name, region, seen, reporter).await?;
            expect_status(&stack, name, region, "CREATE_COMPLETE", cfn).await?;
            let action = if recreated {
                StackAction::Recreated
            } else {
                StackAction::Created
            };
            return Ok(outcome(plan, action, &stack, start));
        };
        let status = status_of(&stack);
        if status.ends_with("_IN_PROGRESS") {
            reporter.started(region, name, &format!("waiting: {status}"));
            wait_settled(cfn, name, region, HashSet::new(), reporter).await?;
            continue;
        }
        check_owner(&stack, plan)?;
        match status {
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" if !recreated => {
                // CloudFormation cannot update a stack whose create failed.
                reporter.note(&format!(
                    "[{region}] {name}: left {status} by an earlier failed create; deleting it to create it again"
                ));
                delete_existing(cfn, name, region, reporter).await?;
                recreated = true;
                continue;
            }
            "UPDATE_ROLLBACK_FAILED" => {
                return Err(StackError::Stuck {
                    stack: name.into(),
                    region: region.into(),
                    status: status.into(),
                    hint: "fix the cause shown in its events, then run `aws cloudformation continue-update-rollback` and deploy again",
                });
            }
            "DELETE_FAILED" => {
                return Err(StackError::Stuck {
                    stack: name.into(),
                    region: region.into(),
                    status: status.into(),
                    hint: "run `toastrep teardown` for this set, or delete the stack by hand, then deploy again",
                });
            }
            _ => {}
        }
        reporter.started(region, name, "updating");
        let seen = seen_events(cfn, name).await;
        let update = cfn
            .update_stack()
            .stack_name(name)
            .template_body(plan.template.body())
            .set_parameters(Some(parameters(plan)))
            .set_tags(Some(tags(plan)))
            .capabilities(Capability::CapabilityNamedIam)
            .send()
            .await;
        match update {
            Ok(_) => {}
            Err(error) if is_no_update(&error) => {
                return Ok(outcome(plan, StackAction::Unchanged, &stack, start));
            }
            Err(error) => return Err(call_error("UpdateStack", name, region, &error)),
        }
        let stack = wait_settled(cfn, name, region, seen, reporter).await?;
        expect_status(&stack, name, region, "UPDATE_COMPLETE", cfn).await?;
        return Ok(outcome(plan, StackAction::Updated, &stack, start));
    }
}

/// Deletes a stack of set `owner` and of `kind` (its `toastrep:set` and
/// `toastrep:stack` tags) if it exists, and waits until it is gone. A stack
/// of that name made by another set, or not by toastrep, is left alone:
/// names are derived, and a derived name is no proof of ownership.
pub async fn delete_stack(
    cfn: &Client,
    name: &str,
    region: &str,
    owner: &str,
    kind: &str,
    reporter: &dyn Reporter,
) -> Result<StackOutcome, StackError> {
    let start = Instant::now();
    let action = match describe_stack(cfn, name, region).await? {
        None => StackAction::Absent,
        Some(stack) => {
            let found = (tag_of(&stack, TAG_SET), tag_of(&stack, TAG_STACK));
            if found != (Some(owner), Some(kind)) {
                return Err(StackError::NotOursToDelete {
                    stack: name.into(),
                    region: region.into(),
                    found: match found {
                        (Some(set), Some(found_kind)) => format!("set '{set}', {found_kind} stack"),
                        (Some(set), None) => format!("set '{set}'"),
                        (None, _) => "none: not made by toastrep".to_owned(),
                    },
                    wanted: format!("set '{owner}', {kind} stack"),
                });
            }
            reporter.started(region, name, "deleting");
            delete_existing(cfn, name, region, reporter).await?;
            StackAction::Deleted
        }
    };
    Ok(StackOutcome {
        stack_name: name.into(),
        region: region.into(),
        action,
        seconds: start.elapsed().as_secs_f64(),
        outputs: BTreeMap::new(),
    })
}

async fn delete_existing(
    cfn: &Client,
    name: &str,
    region: &str,
    reporter: &dyn Reporter,
) -> Result<(), StackError> {
    let seen = seen_events(cfn, name).await;
    cfn.delete_stack()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| call_error("DeleteStack", name, region, &e))?;
    match wait_gone(cfn, name, region, seen, reporter).await? {
        None => Ok(()),
        Some(stack) => Err(failed(cfn, &stack, name, region).await),
    }
}

/// The stack's outputs as a map.
pub fn outputs_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// The value of a stack tag.
pub fn tag_of<'a>(stack: &'a Stack, key: &str) -> Option<&'a str> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub fn status_of(stack: &Stack) -> &str {
    stack.stack_status().map_or("UNKNOWN", |s| s.as_str())
}

fn check_owner(stack: &Stack, plan: &StackPlan) -> Result<(), StackError> {
    let wanted = &plan.tags[TAG_SET];
    match tag_of(stack, TAG_SET) {
        Some(owner) if owner == wanted => Ok(()),
        owner => Err(StackError::NotOurs {
            stack: plan.stack_name.clone(),
            region: plan.region.clone(),
            owner: owner.unwrap_or("none (not made by toastrep)").to_owned(),
            wanted: wanted.clone(),
        }),
    }
}

fn outcome(plan: &StackPlan, action: StackAction, stack: &Stack, start: Instant) -> StackOutcome {
    StackOutcome {
        stack_name: plan.stack_name.clone(),
        region: plan.region.clone(),
        action,
        seconds: start.elapsed().as_secs_f64(),
        outputs: outputs_of(stack),
    }
}

fn parameters(plan: &StackPlan) -> Vec<Parameter> {
    plan.parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

fn tags(plan: &StackPlan) -> Vec<Tag> {
    plan.tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn expect_status(
    stack: &Stack,
    name: &str,
    region: &str,
    wanted: &str,
    cfn: &Client,
) -> Result<(), StackError> {
    if status_of(stack) == wanted {
        Ok(())
    } else {
        Err(failed(cfn, stack, name, region).await)
    }
}

async fn failed(cfn: &Client, stack: &Stack, name: &str, region: &str) -> StackError {
    StackError::Failed {
        stack: name.into(),
        region: region.into(),
        status: status_of(stack).into(),
        failures: resource_failures(cfn, stack, name).await,
    }
}

/// The failed resources of the latest operation, oldest first: the first
/// failure is usually the cause, the rest its consequences.
async fn resource_failures(cfn: &Client, stack: &Stack, name: &str) -> Vec<ResourceFailure> {
    let id = stack.stack_id().unwrap_or(name);
    let events = recent_events(cfn, id).await;
    let mut failures: Vec<ResourceFailure> = events
        .iter()
        .take_while(|e| !is_operation_start(e, name))
        .filter(|e| {
            e.resource_status()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .map(|e| ResourceFailure {
            logical_id: e.logical_resource_id().unwrap_or_default().into(),
            resource_type: e.resource_type().unwrap_or_default().into(),
            status: e.resource_status().map_or("", |s| s.as_str()).into(),
            reason: e
                .resource_status_reason()
                .unwrap_or("no reason given")
                .into(),
        })
        .collect();
    failures.reverse();
    // A create that fails CloudFormation's pre-deployment validation (a
    // bucket name already taken, say) shows only "Validation failed ... Call
    // DescribeEvents" in the stack events; the resource and reason are in the
    // operation's validation events.
    let operation = events
        .iter()
        .find(|e| is_operation_start(e, name))
        .and_then(|e| e.operation_id());
    if failures
        .iter()
        .all(|f| f.resource_type == "AWS::CloudFormation::Stack")
    {
        failures.extend(validation_failures(cfn, id, operation).await);
    }
    if failures.is_empty()
        && let Some(reason) = stack.stack_status_reason()
    {
        failures.push(ResourceFailure {
            logical_id: name.into(),
            resource_type: "AWS::CloudFormation::Stack".into(),
            status: status_of(stack).into(),
            reason: reason.into(),
        });
    }
    failures
}

/// The failed pre-deployment validations of an operation: the one given,
/// or else the stack's latest.
async fn validation_failures(
    cfn: &Client,
    stack: &str,
    operation: Option<&str>,
) -> Vec<ResourceFailure> {
    let Ok(out) = cfn
        .describe_events()
        .stack_name(stack)
        .set_operation_id(operation.map(str::to_owned))
        .send()
        .await
    else {
        // An endpoint without DescribeEvents: the stack events are all there is.
        return Vec::new();
    };
    let events = out.operation_events();
    let latest = operation.or_else(|| {
        events
            .iter()
            .max_by_key(|e| e.timestamp().map(|t| (t.secs(), t.subsec_nanos())))
            .and_then(|e| e.operation_id())
    });
    events
        .iter()
        .filter(|e| e.operation_id() == latest)
        .filter(|e| {
            e.validation_status()
                .is_some_and(|s| s.as_str() == "FAILED")
        })
        .map(|e| ResourceFailure {
            logical_id: e.logical_resource_id().unwrap_or_default().into(),
            resource_type: e.resource_type().unwrap_or_default().into(),
            status: e.validation_name().unwrap_or("VALIDATION_FAILED").into(),
            reason: e
                .validation_status_reason()
                .unwrap_or("no reason given")
                .into(),
        })
        .collect()
}

/// The stack's own `*_IN_PROGRESS` event that opened the latest operation.
fn is_operation_start(event: &StackEvent, name: &str) -> bool {
    event.logical_resource_id() == Some(name)
        && event.resource_status().is_some_and(|s| {
            matches!(
                s.as_str(),
                "CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS" | "DELETE_IN_PROGRESS"
            )
        })
}

/// The newest page of events, newest first.
async fn recent_events(cfn: &Client, stack: &str) -> Vec<StackEvent> {
    cfn.describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .map(|out| out.stack_events.unwrap_or_default())
        .unwrap_or_default()
}

/// Event ids already there before an operation, so only its own are shown.
async fn seen_events(cfn: &Client, stack: &str) -> HashSet<String> {
    recent_events(cfn, stack)
        .await
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect()
}

/// Polls until the stack is no longer in progress, reporting new events.
async fn wait_settled(
    cfn: &Client,
    name: &str,
    region: &str,
    seen: HashSet<String>,
    reporter: &dyn Reporter,
) -> Result<Stack, StackError> {
    match wait(cfn, name, region, seen, reporter).await? {
        Some(stack) => Ok(stack),
        None => Err(StackError::Stuck {
            stack: name.into(),
            region: region.into(),
            status: "DELETED".into(),
            hint: "it was deleted while toastrep waited for it; run the command again",
        }),
    }
}

/// Polls until the stack is gone (`None`) or settled in another state.
async fn wait_gone(
    cfn: &Client,
    name: &str,
    region: &str,
    seen: HashSet<String>,
    reporter: &dyn Reporter,
) -> Result<Option<Stack>, StackError> {
    wait(cfn, name, region, seen, reporter).await
}

async fn wait(
    cfn: &Client,
    name: &str,
    region: &str,
    mut seen: HashSet<String>,
    reporter: &dyn Reporter,
) -> Result<Option<Stack>, StackError> {
    // Start fast (an emulator settles at once), back off to the pace of real
    // CloudFormation, which takes seconds to minutes.
    let mut delay = Duration::from_millis(200);
    loop {
        let stack = describe_stack(cfn, name, region).await?;
        let id = stack.as_ref().and_then(|s| s.stack_id()).unwrap_or(name);
        let mut new: Vec<StackEvent> = recent_events(cfn, id)
            .await
            .into_iter()
            .filter(|e| e.event_id().is_some_and(|id| !seen.contains(id)))
            .collect();
        new.reverse();
        for event in new {
            if let Some(id) = event.event_id() {
                seen.insert(id.to_owned());
            }
            reporter.progressed(region, name, &describe_event(&event));
        }
        match stack {
            Some(stack) if status_of(&stack).ends_with("_IN_PROGRESS") => {}
            other => return Ok(other),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(5));
    }
}

fn describe_event(event: &StackEvent) -> String {
    let mut text = format!(
        "{} {}",
        event.logical_resource_id().unwrap_or_default(),
        event.resource_status().map_or("", |s| s.as_str())
    );
    if let Some(reason) = event.resource_status_reason() {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

fn is_missing_stack<E: ProvideErrorMetadata>(
    error: &aws_sdk_cloudformation::error::SdkError<E>,
) -> bool {
    error.code() == Some("ValidationError")
        && error
            .message()
            .is_some_and(|m| m.contains("does not exist"))
}

fn is_no_update<E: ProvideErrorMetadata>(
    error: &aws_sdk_cloudformation::error::SdkError<E>,
) -> bool {
    error.code() == Some("ValidationError")
        && error
            .message()
            .is_some_and(|m| m.contains("No updates are to be performed"))
}

fn call_error<E>(
    operation: &'static str,
    stack: &str,
    region: &str,
    error: &aws_sdk_cloudformation::error::SdkError<E>,
) -> StackError
where
    E: std::error::Error + 'static,
{
    StackError::Call {
        operation,
        stack: stack.into(),
        region: region.into(),
        message: DisplayErrorContext(error).to_string(),
    }
}

/// What applying a stack's plan would do, found without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewAction {
    Create,
    /// Left `ROLLBACK_COMPLETE` by a failed create: deleted and created again.
    Recreate,
    Update,
    NoChange,
    /// In progress (another deploy?) or stuck: apply would wait or fail.
    Blocked,
}

impl fmt::Display for PreviewAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PreviewAction::Create => "create",
            PreviewAction::Recreate => "recreate",
            PreviewAction::Update => "update",
            PreviewAction::NoChange => "no change",
            PreviewAction::Blocked => "blocked",
        })
    }
}

/// One resource a change set would touch.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    /// Add, Modify, Remove, ...
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For a Modify: True, False or Conditional (AWS's own words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// What applying a stack's plan would do.
#[derive(Debug, Clone, Serialize)]
pub struct StackPreview {
    pub stack_name: String,
    pub region: String,
    pub action: PreviewAction,
    /// The stack's status when it is not one an update can start from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ResourceChange>,
}

/// Finds what [`apply_stack`] would do, changing nothing: an absent stack would
/// be created; for a present one a CloudFormation change set lists the
/// resource-level changes, and is deleted again.
pub async fn preview_stack(cfn: &Client, plan: &StackPlan) -> Result<StackPreview, StackError> {
    let (name, region) = (plan.stack_name.as_str(), plan.region.as_str());
    let preview = |action, status: Option<&str>, changes| StackPreview {
        stack_name: name.into(),
        region: region.into(),
        action,
        status: status.map(str::to_owned),
        changes,
    };
    let Some(stack) = describe_stack(cfn, name, region).await? else {
        return Ok(preview(PreviewAction::Create, None, Vec::new()));
    };
    check_owner(&stack, plan)?;
    let status = status_of(&stack);
    match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => {
            return Ok(preview(PreviewAction::Recreate, Some(status), Vec::new()));
        }
        s if s.ends_with("_IN_PROGRESS") || s.ends_with("_FAILED") => {
            return Ok(preview(PreviewAction::Blocked, Some(status), Vec::new()));
        }
        _ => {}
    }
    // Unique per call, so two plans never touch each other's change sets.
    let change_set = format!(
        "toastrep-plan-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    cfn.create_change_set()
        .stack_name(name)
        .change_set_name(&change_set)
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Update)
        .template_body(plan.template.body())
        .set_parameters(Some(parameters(plan)))
        .set_tags(Some(tags(plan)))
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(|e| call_error("CreateChangeSet", name, region, &e))?;
    let result = read_change_set(cfn, name, region, &change_set).await;
    // Always removed, also after an error: a plan leaves nothing behind.
    if let Err(error) = cfn
        .delete_change_set()
        .stack_name(name)
        .change_set_name(&change_set)
        .send()
        .await
    {
        tracing::warn!(
            stack = name,
            region,
            "could not delete change set {change_set}: {}",
            DisplayErrorContext(&error)
        );
    }
    let changes = result?;
    let action = if changes.is_empty() {
        PreviewAction::NoChange
    } else {
        PreviewAction::Update
    };
    Ok(preview(action, None, changes))
}

/// Waits for a change set to be computed and returns its resource changes;
/// empty when there are none.
async fn read_change_set(
    cfn: &Client,
    name: &str,
    region: &str,
    change_set: &str,
) -> Result<Vec<ResourceChange>, StackError> {
    let mut delay = Duration::from_millis(100);
    loop {
        let mut changes = Vec::new();
        let mut next_token = None;
        let status = loop {
            let out = cfn
                .describe_change_set()
                .stack_name(name)
                .change_set_name(change_set)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| call_error("DescribeChangeSet", name, region, &e))?;
            let status = out.status().map_or("", |s| s.as_str()).to_owned();
            if status == "FAILED" {
                let reason = out.status_reason().unwrap_or_default();
                // An empty change set fails: "The submitted information didn't
                // contain changes" (AWS), likewise on the emulator.
                if reason.contains("didn't contain changes")
                    || reason.contains("No updates are to be performed")
                {
                    return Ok(Vec::new());
                }
                return Err(StackError::Failed {
                    stack: name.into(),
                    region: region.into(),
                    status: "change set FAILED".into(),
                    failures: vec![ResourceFailure {
                        logical_id: change_set.into(),
                        resource_type: "AWS::CloudFormation::ChangeSet".into(),
                        status: status.clone(),
                        reason: reason.into(),
                    }],
                });
            }
            if status != "CREATE_COMPLETE" {
                break status;
            }
            changes.extend(out.changes().iter().filter_map(|c| {
                let rc = c.resource_change()?;
                Some(ResourceChange {
                    action: rc.action().map_or("", |a| a.as_str()).to_owned(),
                    logical_id: rc.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: rc.resource_type().unwrap_or_default().to_owned(),
                    replacement: rc.replacement().map(|r| r.as_str().to_owned()),
                })
            }));
            match out.next_token() {
                Some(token) => next_token = Some(token.to_owned()),
                None => return Ok(changes),
            }
        };
        tracing::debug!(stack = name, region, status, "change set not ready");
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(3));
    }
}

/// The stack's parameter values as a map.
pub fn parameters_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .collect()
}
