//! Everything a deploy decides before it changes anything, shared by
//! `deploy` and `plan`: what is deployed, who the members are, the settings
//! (flags over the set file over what is deployed), the package and the
//! plan of every stack. `plan` then previews each stack's change set;
//! `deploy` rolls them out ([`super::rollout`]).

use std::borrow::Cow;
use std::collections::BTreeSet;

use anyhow::Result;
use futures::{StreamExt, stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws::AwsOptions;
use crate::aws::change_set::{self, PreviewAction, ResourceChange, StackPreview};
use crate::aws::stack::StackError;
use crate::model::function::{FunctionRequest, FunctionSettings, SettingChange};
use crate::model::regions::Region;
use crate::model::topology::{DeployPlan, SetSpec, StackPlan};
use crate::ops::context::SetContext;
use crate::ops::discover::DeployedSet;
use crate::ops::marker_key;
use crate::ops::membership;
use crate::package::Package;
use crate::progress::Reporter;

/// A deploy of `spec`, decided.
pub struct Prepared {
    pub set: SetContext,
    pub found: DeployedSet,
    /// The members whose addition finished.
    pub members: BTreeSet<Region>,
    /// What the set runs now (none for a new set).
    pub deployed: Option<FunctionSettings>,
    /// The settings the deploy changes on a deployed set.
    pub changes: Vec<SettingChange>,
    pub package: Package,
    pub plan: DeployPlan,
}

impl Prepared {
    /// Regions new to a deployed set: backfilled and verified once their
    /// stacks are in place. A brand-new set has nothing to backfill.
    pub fn added(&self) -> Vec<Region> {
        membership::added(&self.members, &self.plan.spec.regions)
    }
}

/// What a prepared deploy does with the set's marker key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// Reads the deployed one (or makes one): the deploy passes it on.
    Read,
    /// Leaves it unread: a plan previews updates that keep the deployed one.
    KeepDeployed,
    /// Deploys this ring: a step of `rotate-key`.
    Rotate(marker_key::MarkerKeys),
}

/// Checks all input, finds what is deployed (a region list that drops a
/// member is refused: that is remove-region's job), resolves the settings
/// and builds (or reads) the package and the plan.
pub async fn prepare(
    options: &AwsOptions,
    spec: SetSpec,
    function: &FunctionRequest,
    key: KeyUse,
    reporter: &dyn Reporter,
) -> Result<Prepared> {
    function.requested.resolve(None).check()?;
    let prebuilt = Package::prebuilt(function.lambda_zip.as_deref(), function.architecture())?;
    let set = SetContext::connect(options, &spec.name, spec.regions[0]).await?;
    let found = membership::discover_in_partition(&set, spec.partition).await?;
    membership::check_no_leftover_buckets(&found, &spec, &set.account)?;
    membership::check_no_dropped_members(&found, &spec)?;
    let members = membership::complete_members(&set, &found).await?;
    let deployed = found.settings();
    let settings = function.requested.resolve(deployed.as_ref());
    settings.check()?;
    let changes = deployed
        .as_ref()
        .map(|d| function.requested.changes(d))
        .unwrap_or_default();
    // A deploy reads the key back before any stack changes, so a redeploy
    // keeps it (and an unchanged set shows no change: the NoEcho value is
    // the same, though no API shows it). A plan never reads it: the deployed
    // stacks keep theirs (UsePreviousValue), so `plan` needs no right to
    // the functions' secrets and can run where anyone may read its output.
    let marker_key = match key {
        KeyUse::Read => {
            Some(marker_key::for_deploy(&set, &membership::deployed_regions(&found)).await?)
        }
        KeyUse::KeepDeployed => None,
        KeyUse::Rotate(keys) => Some(keys),
    };
    let package = Package::for_function(
        prebuilt,
        settings.architecture,
        function.function_source.as_deref(),
        reporter,
    )
    .await?;
    let plan = DeployPlan::new(spec, package.key.clone(), &settings, marker_key.as_ref());
    Ok(Prepared {
        set,
        found,
        members,
        deployed,
        changes,
        package,
        plan,
    })
}

/// What a deploy would do.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PlanResult {
    pub name: String,
    pub account: String,
    pub regions: Vec<Region>,
    pub package: PackagePlan,
    /// Every setting the deploy would give the set.
    pub settings: FunctionSettings,
    /// The settings whose deployed value it would change, and who asks.
    pub setting_changes: Vec<SettingChange>,
    pub stacks: Vec<StackRow>,
    /// Regions new to the deployed set: they would be backfilled and verified.
    pub added: Vec<Region>,
    /// Whether a deploy would change anything.
    pub changes: bool,
    pub ok: bool,
}

/// The package a deploy would ship, and where it would upload it.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PackagePlan {
    #[serde(flatten)]
    pub package: Package,
    /// Regions whose artifact bucket lacks the package.
    pub upload_to: Vec<Region>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StackRow {
    pub stack_name: String,
    pub region: Region,
    // A `Cow`, so that a result read back from JSON owns it.
    pub kind: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<PreviewAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ResourceChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What deploying `prepared` would do, changing nothing.
pub async fn preview(
    prepared: &Prepared,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<PlanResult> {
    let Prepared {
        set,
        found,
        plan,
        package,
        ..
    } = prepared;
    let mut upload_to = Vec::new();
    for region in &plan.spec.regions {
        let bucket = set.artifact_bucket(*region);
        let present = found.artifact_buckets.contains(region)
            && set
                .aws
                .objects(*region, &bucket)
                .holds(&package.key)
                .await
                .unwrap_or(false);
        if !present {
            upload_to.push(*region);
        }
    }
    let stacks: Vec<StackRow> = stream::iter(plan.stacks())
        .map(|stack_plan| async move {
            reporter.started(&stack_plan.region, &stack_plan.stack_name, "planning");
            let preview = change_set::preview_stack(&set.aws, stack_plan).await;
            let row = row(stack_plan, preview);
            reporter.finished(
                &stack_plan.region,
                &stack_plan.stack_name,
                &row.action.map_or("failed".to_owned(), |a| a.to_string()),
                row.error.is_none(),
            );
            row
        })
        .buffered(concurrency)
        .collect()
        .await;
    let added = prepared.added();
    let ok = stacks.iter().all(|s| s.error.is_none());
    let changes = !upload_to.is_empty()
        || !added.is_empty()
        || stacks
            .iter()
            .any(|s| s.action != Some(PreviewAction::NoChange));
    Ok(PlanResult {
        name: plan.spec.name.to_string(),
        account: set.account.clone(),
        regions: plan.spec.regions.clone(),
        package: PackagePlan {
            package: package.clone(),
            upload_to,
        },
        settings: plan.settings.clone(),
        setting_changes: prepared.changes.clone(),
        stacks,
        added,
        changes,
        ok,
    })
}

fn row(plan: &StackPlan, preview: Result<StackPreview, StackError>) -> StackRow {
    let mut row = StackRow {
        stack_name: plan.stack_name.clone(),
        region: plan.region,
        kind: plan.template.kind().into(),
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
