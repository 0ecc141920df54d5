//! CloudFormation stacks: their status, their events while an operation
//! runs, the causes of a failure, and their deletion. Creating and updating
//! go through change sets ([`super::change_set`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudformation::types::{
    Parameter, ResourceStatus, Stack, StackEvent, StackStatus, Tag,
};
use serde::{Deserialize, Serialize};

use crate::model::regions::Region;
use crate::model::topology::{StackPlan, TAG_SET, TAG_STACK};
use crate::progress::Reporter;

/// What an operation did to a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    pub region: Region,
    pub action: StackAction,
    pub seconds: f64,
}

/// A resource CloudFormation could not create, update or delete, with its reason.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
        region: Region,
        status: String,
        failures: Vec<ResourceFailure>,
    },
    #[error(
        "stack {stack} in {region} exists but belongs to set '{owner}', not '{wanted}': choose another set name"
    )]
    NotOurs {
        stack: String,
        region: Region,
        owner: String,
        wanted: String,
    },
    #[error(
        "stack {stack} in {region} is not this set's to delete (its tags say {found}; wanted {wanted}): left alone"
    )]
    NotOursToDelete {
        stack: String,
        region: Region,
        found: String,
        wanted: String,
    },
    #[error("stack {stack} in {region} is {status}: {hint}")]
    Stuck {
        stack: String,
        region: Region,
        status: String,
        hint: &'static str,
    },
    #[error("CloudFormation call {operation} for stack {stack} in {region} failed: {message}")]
    Call {
        operation: &'static str,
        stack: String,
        region: Region,
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
        "\n    hint: the credentials lack a permission CloudFormation needs; see docs/permissions.md"
    } else {
        ""
    }
}

/// A deployed stack as toastrep reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedStack {
    pub name: String,
    /// Its status as CloudFormation names it, for people.
    pub status: String,
    pub phase: Phase,
    pub tags: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl DeployedStack {
    fn of(stack: &Stack) -> DeployedStack {
        DeployedStack {
            name: stack.stack_name().unwrap_or_default().to_owned(),
            status: status_of(stack).to_owned(),
            phase: Phase::of_stack(stack),
            tags: stack
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            parameters: parameters_of(stack),
        }
    }

    /// The value of a tag.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// Its last operation succeeded.
    pub fn is_healthy(&self) -> bool {
        self.phase == Phase::Healthy
    }
}

impl crate::aws::Aws {
    /// Stack `name` in `region`; `None` if it does not exist.
    pub async fn stack(
        &self,
        region: Region,
        name: &str,
    ) -> Result<Option<DeployedStack>, StackError> {
        let cfn = self.cloudformation(region);
        Ok(describe_stack(&cfn, name, region)
            .await?
            .as_ref()
            .map(DeployedStack::of))
    }
}

/// Looks a stack up by name; `None` if it does not exist.
pub(super) async fn describe_stack(
    cfn: &Client,
    stack: &str,
    region: Region,
) -> Result<Option<Stack>, StackError> {
    match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(out) => Ok(out
            .stacks
            .unwrap_or_default()
            .into_iter()
            .find(|s| Phase::of_stack(s) != Phase::Deleted)),
        Err(error) if is_missing_stack(&error) => Ok(None),
        Err(error) => Err(call_error("DescribeStacks", stack, region, &error)),
    }
}

/// Deletes a stack of set `owner` and of `kind` (its `toastrep:set` and
/// `toastrep:stack` tags) if it exists, and waits until it is gone. A stack
/// of that name made by another set, or not by toastrep, is left alone:
/// names are derived, and a derived name is no proof of ownership.
pub async fn delete_stack(
    aws: &crate::aws::Aws,
    name: &str,
    region: Region,
    owner: &str,
    kind: &str,
    reporter: &dyn Reporter,
) -> Result<StackOutcome, StackError> {
    let start = Instant::now();
    let cfn = &aws.cloudformation(region);
    let action = match describe_stack(cfn, name, region).await? {
        None => StackAction::Absent,
        Some(stack) => {
            let found = (tag_of(&stack, TAG_SET), tag_of(&stack, TAG_STACK));
            if found != (Some(owner), Some(kind)) {
                return Err(StackError::NotOursToDelete {
                    stack: name.into(),
                    region,
                    found: match found {
                        (Some(set), Some(found_kind)) => format!("set '{set}', {found_kind} stack"),
                        (Some(set), None) => format!("set '{set}'"),
                        (None, _) => "none: not made by toastrep".to_owned(),
                    },
                    wanted: format!("set '{owner}', {kind} stack"),
                });
            }
            reporter.started(&region, name, "deleting");
            delete_existing(cfn, name, region, reporter).await?;
            StackAction::Deleted
        }
    };
    Ok(StackOutcome {
        stack_name: name.into(),
        region,
        action,
        seconds: start.elapsed().as_secs_f64(),
    })
}

pub(super) async fn delete_existing(
    cfn: &Client,
    name: &str,
    region: Region,
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

/// The value of a stack tag.
pub(super) fn tag_of<'a>(stack: &'a Stack, key: &str) -> Option<&'a str> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The stack's status as CloudFormation names it, for people.
pub(super) fn status_of(stack: &Stack) -> &str {
    stack.stack_status().map_or("UNKNOWN", |s| s.as_str())
}

/// Where a stack stands: what its status means for the next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An operation runs: wait for it, never race it.
    Busy,
    /// Made by a change set never executed (`REVIEW_IN_PROGRESS`): it has
    /// no resources, and a create change set takes it over.
    Review,
    /// Its last operation succeeded.
    Healthy,
    /// An update failed and was rolled back: it runs as before, and can be
    /// updated again.
    UpdateRolledBack,
    /// Its create failed: it cannot be updated, only deleted and created again.
    CreateFailed,
    /// Needs a person (a failed rollback or delete).
    Stuck,
    Deleted,
}

impl Phase {
    pub(super) fn of(status: &StackStatus) -> Phase {
        use StackStatus as S;
        match status {
            S::CreateComplete | S::UpdateComplete | S::ImportComplete => Phase::Healthy,
            S::UpdateRollbackComplete | S::ImportRollbackComplete => Phase::UpdateRolledBack,
            S::RollbackComplete | S::RollbackFailed | S::CreateFailed => Phase::CreateFailed,
            S::ReviewInProgress => Phase::Review,
            S::DeleteComplete => Phase::Deleted,
            S::CreateInProgress
            | S::UpdateInProgress
            | S::UpdateCompleteCleanupInProgress
            | S::UpdateRollbackInProgress
            | S::UpdateRollbackCompleteCleanupInProgress
            | S::RollbackInProgress
            | S::DeleteInProgress
            | S::ImportInProgress
            | S::ImportRollbackInProgress => Phase::Busy,
            // UPDATE_ROLLBACK_FAILED, DELETE_FAILED, UPDATE_FAILED,
            // IMPORT_ROLLBACK_FAILED, and any status newer than this SDK.
            _ => Phase::Stuck,
        }
    }

    /// A stack without a status is taken as busy: asked again, it has one.
    pub(super) fn of_stack(stack: &Stack) -> Phase {
        stack.stack_status().map_or(Phase::Busy, Phase::of)
    }
}

pub(super) fn check_owner(stack: &Stack, plan: &StackPlan) -> Result<(), StackError> {
    let wanted = &plan.tags[TAG_SET];
    match tag_of(stack, TAG_SET) {
        Some(owner) if owner == wanted => Ok(()),
        owner => Err(StackError::NotOurs {
            stack: plan.stack_name.clone(),
            region: plan.region,
            owner: owner.unwrap_or("none (not made by toastrep)").to_owned(),
            wanted: wanted.clone(),
        }),
    }
}

pub(super) fn parameters(plan: &StackPlan) -> Vec<Parameter> {
    let given = plan.parameters.iter().map(|(k, v)| {
        Parameter::builder()
            .parameter_key(k)
            .parameter_value(v)
            .build()
    });
    let kept = plan.keep_previous.iter().map(|k| {
        Parameter::builder()
            .parameter_key(k)
            .use_previous_value(true)
            .build()
    });
    given.chain(kept).collect()
}

pub(super) fn tags(plan: &StackPlan) -> Vec<Tag> {
    plan.tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The stack's last operation succeeded, or the failure with its causes.
pub(super) async fn expect_healthy(
    stack: &Stack,
    name: &str,
    region: Region,
    cfn: &Client,
) -> Result<(), StackError> {
    if Phase::of_stack(stack) == Phase::Healthy {
        Ok(())
    } else {
        Err(failed(cfn, stack, name, region).await)
    }
}

async fn failed(cfn: &Client, stack: &Stack, name: &str, region: Region) -> StackError {
    StackError::Failed {
        stack: name.into(),
        region,
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
            e.resource_status().is_some_and(|s| {
                matches!(
                    s,
                    ResourceStatus::CreateFailed
                        | ResourceStatus::UpdateFailed
                        | ResourceStatus::DeleteFailed
                        | ResourceStatus::ImportFailed
                        | ResourceStatus::ImportRollbackFailed
                        | ResourceStatus::RollbackFailed
                        | ResourceStatus::UpdateRollbackFailed
                        | ResourceStatus::ExportFailed
                        | ResourceStatus::ExportRollbackFailed
                )
            })
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
                s,
                ResourceStatus::CreateInProgress
                    | ResourceStatus::UpdateInProgress
                    | ResourceStatus::DeleteInProgress
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
pub(super) async fn seen_events(cfn: &Client, stack: &str) -> HashSet<String> {
    recent_events(cfn, stack)
        .await
        .into_iter()
        .filter_map(|e| e.event_id)
        .collect()
}

/// Polls until the stack is no longer in progress, reporting new events.
pub(super) async fn wait_settled(
    cfn: &Client,
    name: &str,
    region: Region,
    seen: HashSet<String>,
    reporter: &dyn Reporter,
) -> Result<Stack, StackError> {
    match wait(cfn, name, region, seen, reporter).await? {
        Some(stack) => Ok(stack),
        None => Err(StackError::Stuck {
            stack: name.into(),
            region,
            status: "DELETED".into(),
            hint: "it was deleted while toastrep waited for it; run the command again",
        }),
    }
}

/// Polls until the stack is gone (`None`) or settled in another state.
async fn wait_gone(
    cfn: &Client,
    name: &str,
    region: Region,
    seen: HashSet<String>,
    reporter: &dyn Reporter,
) -> Result<Option<Stack>, StackError> {
    wait(cfn, name, region, seen, reporter).await
}

async fn wait(
    cfn: &Client,
    name: &str,
    region: Region,
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
            reporter.progressed(&region, name, &describe_event(&event));
        }
        match stack {
            Some(stack) if Phase::of_stack(&stack) == Phase::Busy => {}
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

pub(super) fn call_error<E>(
    operation: &'static str,
    stack: &str,
    region: Region,
    error: &aws_sdk_cloudformation::error::SdkError<E>,
) -> StackError
where
    E: std::error::Error + 'static,
{
    StackError::Call {
        operation,
        stack: stack.into(),
        region,
        message: DisplayErrorContext(error).to_string(),
    }
}

/// The stack's parameter values as a map.
pub(super) fn parameters_of(stack: &Stack) -> BTreeMap<String, String> {
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
