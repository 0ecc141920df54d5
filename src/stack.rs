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

use crate::plan::{StackPlan, TAG_SET};
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
    if reason.contains("already exists") && reason.contains("bucket") {
        "\n    hint: a bucket of that name is left from an earlier set; delete it (after saving its objects) or choose another set name"
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

/// Deletes a stack if it exists and waits until it is gone.
pub async fn delete_stack(
    cfn: &Client,
    name: &str,
    region: &str,
    reporter: &dyn Reporter,
) -> Result<StackOutcome, StackError> {
    let start = Instant::now();
    let exists = describe_stack(cfn, name, region).await?.is_some();
    let action = if exists {
        reporter.started(region, name, "deleting");
        delete_existing(cfn, name, region, reporter).await?;
        StackAction::Deleted
    } else {
        StackAction::Absent
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
