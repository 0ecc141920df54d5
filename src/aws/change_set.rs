//! One apply for deploy and plan, through CloudFormation change sets, as
//! cloudformatious applies: a change set is made for the stack's plan and
//! read back; `plan` shows it and deletes it, `deploy` executes it. A
//! change set that holds no change is the stack being up to date.
//!
//! A stack left by a failed create cannot be updated, so deploy deletes it
//! and creates it again (plan says it would); a stack in progress (another
//! toastrep, or a person in the console) is waited for, not raced.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::stack::{
    self, Phase, ResourceFailure, StackAction, StackError, StackOutcome, call_error, check_owner,
};
use crate::model::regions::Region;
use crate::model::topology::StackPlan;
use crate::progress::Reporter;

/// What applying a stack's plan would do, found without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreviewAction {
    Create,
    /// Left by a failed create: deleted and created again.
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StackPreview {
    pub stack_name: String,
    pub region: Region,
    pub action: PreviewAction,
    /// The stack's status when it is not one an update can start from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ResourceChange>,
}

/// A change set made for a plan, read back, not executed.
struct ChangeSet {
    name: String,
    /// None: it holds no change (CloudFormation fails such a change set).
    changes: Option<Vec<ResourceChange>>,
}

/// Finds what [`apply_stack`] would do, changing nothing: an absent stack
/// would be created; for a present one the change set lists the
/// resource-level changes, and is deleted again.
pub async fn preview_stack(
    aws: &crate::aws::Aws,
    plan: &StackPlan,
) -> Result<StackPreview, StackError> {
    let cfn = &aws.cloudformation(plan.region);
    let (name, region) = (plan.stack_name.as_str(), plan.region);
    let preview = |action, status: Option<&str>, changes| StackPreview {
        stack_name: name.into(),
        region,
        action,
        status: status.map(str::to_owned),
        changes,
    };
    let stack = match stack::describe_stack(cfn, name, region).await? {
        Some(stack) if Phase::of_stack(&stack) != Phase::Review => stack,
        // A create change set would leave a stack behind: plan makes none.
        _ => return Ok(preview(PreviewAction::Create, None, Vec::new())),
    };
    check_owner(&stack, plan)?;
    let status = stack::status_of(&stack);
    match Phase::of_stack(&stack) {
        Phase::CreateFailed => return Ok(preview(PreviewAction::Recreate, Some(status), vec![])),
        Phase::Busy | Phase::Stuck => {
            return Ok(preview(PreviewAction::Blocked, Some(status), vec![]));
        }
        _ => {}
    }
    // A value kept as deployed must be one the stack has: a stack made by
    // an earlier toastrep may lack a parameter added since.
    let deployed = stack::parameters_of(&stack);
    let mut plan = plan.clone();
    plan.keep_previous.retain(|k| deployed.contains_key(k));
    let plan = &plan;
    let change_set = make_change_set(cfn, plan, ChangeSetType::Update).await?;
    // Always removed: a plan leaves nothing behind.
    discard(cfn, plan, &change_set.name).await;
    Ok(match change_set.changes {
        None => preview(PreviewAction::NoChange, None, Vec::new()),
        Some(changes) => preview(PreviewAction::Update, None, changes),
    })
}

/// Creates or updates a stack to match its plan, through a change set, and
/// waits until it settles.
pub async fn apply_stack(
    aws: &crate::aws::Aws,
    plan: &StackPlan,
    reporter: &dyn Reporter,
) -> Result<StackOutcome, StackError> {
    assert!(
        plan.keep_previous.is_empty(),
        "a plan that keeps deployed values it does not know is previewed, never applied"
    );
    let start = Instant::now();
    let (name, region) = (plan.stack_name.as_str(), plan.region);
    let cfn = &aws.cloudformation(region);
    let mut recreated = false;
    loop {
        let existing = stack::describe_stack(cfn, name, region).await?;
        let phase = existing.as_ref().map(Phase::of_stack);
        if let Some(stack) = &existing
            && phase != Some(Phase::Review)
        {
            if phase == Some(Phase::Busy) {
                let status = stack::status_of(stack);
                reporter.started(&region, name, &format!("waiting: {status}"));
                stack::wait_settled(cfn, name, region, HashSet::new(), reporter).await?;
                continue;
            }
            check_owner(stack, plan)?;
            let status = stack::status_of(stack).to_owned();
            match phase {
                Some(Phase::CreateFailed) if !recreated => {
                    reporter.note(&format!(
                        "[{region}] {name}: left {status} by an earlier failed create; deleting it to create it again"
                    ));
                    stack::delete_existing(cfn, name, region, reporter).await?;
                    recreated = true;
                    continue;
                }
                Some(Phase::Stuck | Phase::CreateFailed) => {
                    return Err(StackError::Stuck {
                        stack: name.into(),
                        region,
                        hint: stuck_hint(&status),
                        status,
                    });
                }
                _ => {}
            }
        } else if let Some(stack) = &existing {
            // An earlier create change set never executed: taken over.
            check_owner(stack, plan)?;
        }
        let creating = existing.is_none() || phase == Some(Phase::Review);
        let (kind, doing) = if creating {
            (ChangeSetType::Create, "creating")
        } else {
            (ChangeSetType::Update, "updating")
        };
        reporter.started(&region, name, doing);
        let change_set = match make_change_set(cfn, plan, kind).await {
            Ok(change_set) => change_set,
            Err(error) => {
                if creating {
                    // The create change set's stack holds nothing: gone, so
                    // the next run starts clean.
                    let _ = stack::delete_existing(cfn, name, region, reporter).await;
                }
                return Err(error);
            }
        };
        let Some(_) = change_set.changes else {
            discard(cfn, plan, &change_set.name).await;
            return Ok(outcome(plan, StackAction::Unchanged, start));
        };
        let seen = stack::seen_events(cfn, name).await;
        cfn.execute_change_set()
            .stack_name(name)
            .change_set_name(&change_set.name)
            .send()
            .await
            .map_err(|e| call_error("ExecuteChangeSet", name, region, &e))?;
        let settled = stack::wait_settled(cfn, name, region, seen, reporter).await?;
        stack::expect_healthy(&settled, name, region, cfn).await?;
        let action = match (creating, recreated) {
            (true, true) => StackAction::Recreated,
            (true, false) => StackAction::Created,
            (false, _) => StackAction::Updated,
        };
        return Ok(outcome(plan, action, start));
    }
}

fn stuck_hint(status: &str) -> &'static str {
    if status == "DELETE_FAILED" {
        "run `toastrep teardown` for this set, or delete the stack by hand, then deploy again"
    } else if status.contains("ROLLBACK") && status.starts_with("UPDATE") {
        "fix the cause shown in its events, then run `aws cloudformation continue-update-rollback` and deploy again"
    } else {
        "fix the cause shown in its events (delete the stack if it must go), then deploy again"
    }
}

fn outcome(plan: &StackPlan, action: StackAction, start: Instant) -> StackOutcome {
    StackOutcome {
        stack_name: plan.stack_name.clone(),
        region: plan.region,
        action,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Makes a change set for `plan` and waits until CloudFormation has
/// computed it.
async fn make_change_set(
    cfn: &Client,
    plan: &StackPlan,
    kind: ChangeSetType,
) -> Result<ChangeSet, StackError> {
    let (name, region) = (plan.stack_name.as_str(), plan.region);
    // Unique per call, so two runs never touch each other's change sets.
    let change_set = format!(
        "toastrep-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    cfn.create_change_set()
        .stack_name(name)
        .change_set_name(&change_set)
        .change_set_type(kind)
        .template_body(plan.template.body())
        .set_parameters(Some(stack::parameters(plan)))
        .set_tags(Some(stack::tags(plan)))
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(|e| call_error("CreateChangeSet", name, region, &e))?;
    match read_change_set(cfn, name, region, &change_set).await {
        Ok(changes) => Ok(ChangeSet {
            name: change_set,
            changes,
        }),
        Err(error) => {
            discard(cfn, plan, &change_set).await;
            Err(error)
        }
    }
}

/// Deletes a change set that will not be executed. A failure to is only
/// logged: the stack is as it was, and CloudFormation drops a stack's other
/// change sets when one is executed.
async fn discard(cfn: &Client, plan: &StackPlan, change_set: &str) {
    let (name, region) = (plan.stack_name.as_str(), plan.region);
    if let Err(error) = cfn
        .delete_change_set()
        .stack_name(name)
        .change_set_name(change_set)
        .send()
        .await
    {
        tracing::warn!(
            stack = name,
            %region,
            "could not delete change set {change_set}: {}",
            DisplayErrorContext(&error)
        );
    }
}

/// Waits for a change set to be computed and returns its resource changes;
/// `None` when it holds no change at all.
async fn read_change_set(
    cfn: &Client,
    name: &str,
    region: Region,
    change_set: &str,
) -> Result<Option<Vec<ResourceChange>>, StackError> {
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
            let status = out.status().cloned();
            if status == Some(ChangeSetStatus::Failed) {
                let reason = out.status_reason().unwrap_or_default();
                // CloudFormation fails a change set with nothing to change:
                // "The submitted information didn't contain changes".
                if reason.contains("didn't contain changes") {
                    return Ok(None);
                }
                return Err(StackError::Failed {
                    stack: name.into(),
                    region,
                    status: "change set FAILED".into(),
                    failures: vec![ResourceFailure {
                        logical_id: change_set.into(),
                        resource_type: "AWS::CloudFormation::ChangeSet".into(),
                        status: "FAILED".into(),
                        reason: reason.into(),
                    }],
                });
            }
            if status != Some(ChangeSetStatus::CreateComplete) {
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
                None => return Ok(Some(changes)),
            }
        };
        tracing::debug!(stack = name, %region, ?status, "change set not ready");
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(3));
    }
}
