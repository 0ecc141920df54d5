//! Who is a member of a set, and how a region joins or leaves.
//!
//! A region being added carries a marker object in its artifact bucket
//! (which only toastrep writes, and which is not replicated) from before its
//! base stack is created until the backfill and the verify have passed. A
//! run that was interrupted leaves the marker, so the next deploy or
//! add-region knows the region still needs its backfill, and `status`
//! flags it.
//!
//! Leaving: the region's subscriptions and the other regions'
//! subscriptions to it go first (no event is sent into a half-removed
//! region), then the grants, then its base stack, then its artifact bucket.
//! Its data bucket is kept, as in teardown, unless asked for. The other
//! regions' stacks are not touched, so they keep replicating among
//! themselves.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws::stack::StackAction;
use crate::bail_input;
use crate::model::function::FunctionSettings;
use crate::model::regions;
use crate::model::regions::Region;
use crate::model::templates::Template;
use crate::model::topology::{self, DeployPlan, Pair, SetSpec, StackAt};
use crate::ops::context::SetContext;
use crate::ops::discover::{self, DeployedSet};
use crate::ops::marker_key;
use crate::ops::sync::{SyncOptions, SyncReport, sync_set};
use crate::ops::teardown::{self, BucketRow, StackRow};
use crate::package::Package;
use crate::progress::Reporter;

/// Finds the set in every region of the partition: a member missing from the
/// region list must be noticed, wherever it is.
pub async fn discover_in_partition(set: &SetContext, partition: &str) -> Result<DeployedSet> {
    let candidates: Vec<Region> = regions::regions_in(partition).collect();
    discover::discover(set, &candidates).await
}

/// The regions holding a base stack of the set.
pub fn deployed_regions(found: &DeployedSet) -> Vec<Region> {
    found.bases.keys().cloned().collect()
}

/// A deploy never deletes a region: removing one is a separate, deliberate
/// command, since it stops replication there.
pub fn check_no_dropped_members(found: &DeployedSet, spec: &SetSpec) -> Result<()> {
    let dropped: Vec<Region> = found
        .bases
        .keys()
        .filter(|r| !spec.regions.contains(r))
        .copied()
        .collect();
    if let Some(region) = dropped.first() {
        let members: Vec<Region> = found.bases.keys().copied().collect();
        bail_input!(
            "set '{}' is deployed in {}, and --regions leaves out {}: deploy never removes a region; to remove it, run `toastrep remove-region --name {} --region {region}`, or add it to --regions",
            spec.name,
            regions::list(&members),
            regions::list(&dropped),
            spec.name
        );
    }
    Ok(())
}

/// The marker key in a region's artifact bucket while the region is being added.
const JOINING_MARKER: &str = "toastrep/joining";

/// The regions with a base stack whose addition has finished (no marker).
pub async fn complete_members(set: &SetContext, found: &DeployedSet) -> Result<BTreeSet<Region>> {
    let joining = joining_regions(set, found).await?;
    Ok(found
        .bases
        .keys()
        .filter(|r| !joining.contains(*r))
        .cloned()
        .collect())
}

/// The regions of `regions` new to a set whose finished `members` these
/// are: backfilled and verified once their stacks are in place. A
/// brand-new set (no members) has nothing to backfill.
pub fn added(members: &BTreeSet<Region>, regions: &[Region]) -> Vec<Region> {
    if members.is_empty() {
        return Vec::new();
    }
    regions
        .iter()
        .filter(|r| !members.contains(*r))
        .cloned()
        .collect()
}

/// The regions with a base stack whose addition has not finished.
pub async fn joining_regions(set: &SetContext, found: &DeployedSet) -> Result<BTreeSet<Region>> {
    let checks = found
        .bases
        .keys()
        .filter(|r| found.artifact_buckets.contains(*r))
        .map(|region| async move {
            let bucket = set.artifact_bucket(*region);
            let joining = set
                .aws
                .objects(*region, bucket)
                .holds(JOINING_MARKER)
                .await?;
            anyhow::Ok(joining.then_some(*region))
        });
    let mut joining = BTreeSet::new();
    for result in join_all(checks).await {
        joining.extend(result?);
    }
    Ok(joining)
}

pub async fn set_joining_marker(set: &SetContext, region: Region, joining: bool) -> Result<()> {
    let bucket = set.aws.objects(region, set.artifact_bucket(region));
    if joining {
        let note = b"added by toastrep; removed once the backfill and verify passed\n";
        bucket.put(JOINING_MARKER, note.to_vec()).await?;
    } else {
        bucket.delete(JOINING_MARKER).await?;
    }
    Ok(())
}

/// A data bucket kept by an earlier teardown (it held objects) blocks the
/// base stack's create; say so before anything is changed.
pub fn check_no_leftover_buckets(found: &DeployedSet, spec: &SetSpec, account: &str) -> Result<()> {
    for region in &spec.regions {
        if found.data_buckets.contains(region) && !found.bases.contains_key(region) {
            bail_input!(
                "bucket {} in {region} is left from an earlier deployment of '{}' (teardown keeps buckets that hold objects), and a new base stack cannot take it over: copy its objects elsewhere and delete it, or use another set name",
                spec.name.data_bucket(*region, account),
                spec.name
            );
        }
    }
    Ok(())
}

/// What a region joining a deployed set runs: exactly what the members
/// run, the package their base stacks name (copied from a member's artifact
/// bucket, not rebuilt) and the same settings, so no member changes.
pub struct Joining {
    pub plan: DeployPlan,
    pub package: Package,
    /// The members whose addition finished.
    pub members: BTreeSet<Region>,
}

/// The plan of set `name` grown by `region`.
pub async fn plan_joining(set: &SetContext, region: Region) -> Result<Joining> {
    let SetContext { name, account, .. } = set;
    crate::model::names::check_lengths(name, [region])?;
    let found = discover_in_partition(set, region.partition()).await?;
    let deployed = discover::require_deployed(&found, name)?;
    let members = complete_members(set, &found).await?;
    if members.contains(&region) {
        bail_input!(
            "{region} is already a region of set '{name}' (it is deployed in {}): to bring it up to date run `toastrep deploy`, to see its health `toastrep status --name {name}`",
            regions::list(&deployed)
        );
    }
    // A member to copy from: the package and settings the set runs.
    let Some(source) = members.iter().next() else {
        bail_input!(
            "set '{name}' has no region whose deployment finished (only {}, being added): finish it with `toastrep deploy --name {name} --regions ...` listing its regions",
            regions::list(&deployed)
        );
    };
    let mut regions: Vec<Region> = deployed.clone();
    if !regions.contains(&region) {
        regions.push(region);
    }
    let spec = SetSpec::new(name.clone(), regions)?;
    check_no_leftover_buckets(&found, &spec, account)?;

    let base = &found.bases[source];
    let parameters = &base.parameters;
    let mut settings = FunctionSettings::from_parameters(parameters);
    settings.dashboard_home = found.dashboard_home();
    let Some(code_key) = parameters.get("CodeKey") else {
        bail_input!(
            "the base stack of '{name}' in {source} has no CodeKey parameter, so it was not made by this toastrep: redeploy the set with `toastrep deploy`"
        );
    };
    let package = deployed_package(set, *source, code_key).await?;
    // Older toastreps shipped packages unchecked; the new region must run it.
    package.check_runs_on(settings.architecture)?;
    // The members' key, read before any stack changes: the new region must
    // hold the same one.
    let marker_key = marker_key::for_deploy(set, &deployed).await?;
    let plan = DeployPlan::new(spec, package.key.clone(), &settings, Some(&marker_key));
    Ok(Joining {
        plan,
        package,
        members,
    })
}

/// The package a member runs, read from its artifact bucket and checked
/// against the hash in its name.
async fn deployed_package(set: &SetContext, region: Region, key: &str) -> Result<Package> {
    let bucket = set.artifact_bucket(region);
    let zip = set
        .aws
        .objects(region, &bucket)
        .get(key)
        .await
        .map_err(anyhow::Error::new)
        .and_then(|zip| zip.context("there is no such object"))
        .with_context(|| {
            format!(
                "reading the deployed package s3://{bucket}/{key} in {region} (if it is gone, `toastrep deploy` with the set's regions and the new one uploads it again)"
            )
        })?;
    let mut package = Package::from_zip(zip, &format!("s3://{bucket}/{key}"))?;
    if !key.contains(&package.sha256) {
        anyhow::bail!(
            "s3://{bucket}/{key} in {region} does not hash to the SHA-256 in its name (it is {}): redeploy the set with `toastrep deploy`",
            package.sha256
        );
    }
    // The key the members' stacks name, whatever toastrep named it.
    key.clone_into(&mut package.key);
    Ok(package)
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RemoveResult {
    pub name: String,
    pub account: String,
    pub region: Region,
    /// The set's regions afterwards.
    pub remaining: Vec<Region>,
    pub stacks: Vec<StackRow>,
    /// With --delete-data: the sync from every member into the remaining
    /// regions, run before the leaving bucket's data is deleted (writes it
    /// alone held, whose events were lost, reach the others first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
    pub buckets: Vec<BucketRow>,
    pub ok: bool,
}

/// Refuses to delete a leaving region's data while a remaining region's
/// dead-letter queue holds messages: copies from it that failed are among
/// them, and once its bucket is gone they can never be replayed.
async fn refuse_dead_letters_elsewhere(
    set: &SetContext,
    region: Region,
    remaining: &[Region],
) -> Result<()> {
    let SetContext { aws, name, .. } = set;
    let queue = name.dead_letter_queue();
    let depths = join_all(remaining.iter().map(|r| {
        let queue = &queue;
        async move { (r, aws.queue_depth_if_exists(*r, queue).await) }
    }))
    .await;
    let mut holding = Vec::new();
    for (other, depth) in depths {
        if let Some((_, waiting, in_flight)) = depth?
            && waiting + in_flight > 0
        {
            holding.push(format!(
                "  {queue} in {other} holds {} messages",
                waiting + in_flight
            ));
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    bail_input!(
        "--delete-data would delete {region}'s bucket while copies may still be owed from it:\n{}\nnothing was changed; replay them first with `toastrep replay --name {name}`, then remove {region} again",
        holding.join("\n")
    )
}

/// Takes `region` out of set `name`.
pub async fn remove_region(
    set: &SetContext,
    region: Region,
    options: teardown::TeardownOptions,
    reporter: &dyn Reporter,
) -> Result<RemoveResult> {
    let SetContext { aws, name, account } = set;
    let found = discover_in_partition(set, region.partition()).await?;
    let members = discover::require_deployed(&found, name)?;
    if !members.contains(&region) {
        bail_input!(
            "{region} is not a region of set '{name}' (it is deployed in {}): check --region",
            regions::list(&members)
        );
    }
    let remaining: Vec<Region> = members.iter().filter(|r| **r != region).copied().collect();
    if remaining.len() < 2 {
        bail_input!(
            "removing {region} would leave set '{name}' with only {}, and a replica set needs two regions: to delete the whole set, run `toastrep teardown --name {name}`",
            remaining.join(", ")
        );
    }
    if !options.discard_dead_letters {
        teardown::refuse_unread_queues(set, [&region]).await?;
    }
    if options.delete_data {
        refuse_dead_letters_elsewhere(set, region, &remaining).await?;
    }

    // Its pairs with every member, both ways: subscriptions first, so no
    // event is sent to a function whose permission is already gone.
    let pairs: Vec<Pair> = topology::pairs(name, &members)
        .into_iter()
        .filter(|pair| pair.touches(region))
        .collect();
    let subscriptions = pairs.iter().map(|p| p.subscription.clone()).collect();
    let grants = pairs.iter().map(|p| p.grant.clone()).collect();
    let mut stacks =
        teardown::delete_all(set, Template::Subscription, subscriptions, reporter).await;
    if stacks.iter().all(|r| r.error.is_none()) {
        stacks.extend(teardown::delete_all(set, Template::Grant, grants, reporter).await);
    }
    // No more events from it: what only it holds now reaches the others by
    // a sync, while its function (and so the set's marker key) is still
    // there. Its data is deleted only once that sync left nothing out.
    let mut sync = None;
    let mut delete_data = options.delete_data;
    if options.delete_data && stacks.iter().all(|r| r.error.is_none()) {
        let report = sync_into_remaining(set, &found, &members, &remaining, reporter).await?;
        delete_data = report.ok;
        sync = Some(report);
    }
    if stacks.iter().all(|r| r.error.is_none()) {
        let base = vec![StackAt {
            name: name.base_stack(),
            region,
        }];
        stacks.extend(teardown::delete_all(set, Template::Base, base, reporter).await);
    }
    let stacks_ok = stacks.iter().all(|r| r.error.is_none());
    stacks.retain(|row| row.action != Some(StackAction::Absent));

    let mut buckets = Vec::new();
    if stacks_ok {
        if found.data_buckets.contains(&region) {
            let bucket = set.data_bucket(region);
            buckets.push(
                teardown::remove_bucket(aws, region, bucket, "data", delete_data, reporter).await,
            );
        }
        if found.artifact_buckets.contains(&region) {
            // Only toastrep's own packages (and markers) live there.
            let bucket = set.artifact_bucket(region);
            buckets.push(
                teardown::remove_bucket(aws, region, bucket, "artifact", true, reporter).await,
            );
        }
    }
    let synced = sync.as_ref().is_none_or(|s| s.ok);
    let ok = stacks_ok && synced && buckets.iter().all(|b| b.error.is_none());
    let result = RemoveResult {
        name: name.to_string(),
        account: account.clone(),
        region,
        remaining,
        stacks,
        sync,
        buckets,
        ok,
    };
    Ok(result)
}

/// A sync of every key from all of `members` into `remaining`, with the
/// deployed set's settings.
async fn sync_into_remaining(
    set: &SetContext,
    found: &DeployedSet,
    members: &[Region],
    remaining: &[Region],
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let settings = found.settings().unwrap_or_default();
    let marker_key = marker_key::for_set(set, members).await?;
    let options = SyncOptions {
        only_into: Some(remaining.to_vec()),
        carry_deletes: settings.replicate_deletes,
        concurrency: 16,
        ..SyncOptions::default()
    };
    sync_set(
        set,
        members,
        &marker_key,
        &settings.copy_settings(),
        &options,
        reporter,
    )
    .await
}
