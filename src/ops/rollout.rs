//! Rolling a plan out: the package into every region's artifact bucket,
//! every base stack in parallel, then every pair (grant, then subscription)
//! in parallel. Regions new to a deployed set are then backfilled with the
//! objects the set already holds, and the set is verified; each carries its
//! joining marker ([`super::membership`]) until both have passed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::aws::Aws;
use crate::aws::artifacts;
use crate::aws::change_set;
use crate::aws::stack::{ResourceFailure, StackAction};
use crate::model::function::SettingChange;
use crate::model::regions::Region;
use crate::model::topology::{CODE_VERSION_PARAMETER, DeployPlan, MARKER_KEY_PARAMETER, StackPlan};
use crate::ops::context::SetContext;
use crate::ops::discover;
use crate::ops::membership::{self, set_joining_marker};
use crate::ops::preview::Prepared;
use crate::ops::sync::{self, SyncOptions, SyncReport};
use crate::ops::verify::{self, VerifyOptions, VerifyResult};
use crate::package::Package;
use crate::progress::Reporter;
use toastrep_replication::MarkerKey;
use toastrep_replication::function::log_keys;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct DeployResult {
    pub name: String,
    pub account: String,
    pub regions: Vec<Region>,
    pub package: PackageResult,
    pub stacks: Vec<StackRow>,
    /// Regions new to an already deployed set: backfilled, then verified.
    pub added: Vec<Region>,
    /// The backfill's report (the objects copied into the added regions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<SyncReport>,
    /// verify's report, run once regions were added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyResult>,
    /// Why the backfill or the verify failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The settings this deploy changed on a deployed set, and who asked.
    pub setting_changes: Vec<SettingChange>,
    /// True when the deploy changed nothing at all.
    pub up_to_date: bool,
    pub ok: bool,
}

/// The package deployed, and where it was uploaded.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PackageResult {
    #[serde(flatten)]
    pub package: Package,
    pub uploaded_to: Vec<Region>,
}

/// One stack's line in the result: an action, or an error with its causes.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StackRow {
    pub stack_name: String,
    pub region: Region,
    // A `Cow`, so that a result read back from JSON owns it.
    pub kind: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<StackAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ResourceFailure>,
    /// Not attempted, because a stack it depends on failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// Rolls out a deploy [`crate::ops::preview::prepare`] decided.
pub async fn roll_out_prepared(
    prepared: &Prepared,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<DeployResult> {
    roll_out(
        &prepared.set,
        &prepared.plan,
        &prepared.package,
        &prepared.members,
        concurrency,
        reporter,
    )
    .await
}

/// Deploys a plan: the package, every stack, and for regions new to a set
/// whose `members` were already deployed, the backfill and a verify.
pub async fn roll_out(
    set: &SetContext,
    plan: &DeployPlan,
    package: &Package,
    members: &BTreeSet<Region>,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<DeployResult> {
    // A brand-new set has nothing to backfill.
    let added = membership::added(members, &plan.spec.regions);
    let (uploaded_to, versions) = upload_package(set, plan, package, reporter).await?;
    for region in &added {
        set_joining_marker(set, *region, true).await?;
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut rows = apply_bases(set, plan, &versions, &permits, reporter).await;
    let failed_bases: Vec<Region> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.region)
        .collect();
    keep_bucket_rules(set, plan, &failed_bases).await?;
    rows.extend(apply_pairs(set, plan, &failed_bases, &permits, reporter).await);
    let stacks_ok = rows.iter().all(|r| r.error.is_none() && !r.skipped);

    // Only once every subscription is in place: from then on the replicator
    // copies every new upload into the added regions, so the backfill's
    // listing, taken afterwards, misses nothing.
    let mut joined = Joined::default();
    if stacks_ok && !added.is_empty() {
        joined = join_added(set, plan, &added, reporter).await;
    }
    let ok = stacks_ok && joined.error.is_none();
    let up_to_date = ok
        && added.is_empty()
        && uploaded_to.is_empty()
        && rows
            .iter()
            .all(|r| r.action == Some(StackAction::Unchanged));
    Ok(DeployResult {
        name: set.name.to_string(),
        account: set.account.clone(),
        regions: plan.spec.regions.clone(),
        package: PackageResult {
            package: package.clone(),
            uploaded_to,
        },
        stacks: rows,
        added,
        backfill: joined.backfill,
        verify: joined.verify,
        error: joined.error,
        setting_changes: Vec::new(),
        up_to_date,
        ok,
    })
}

/// Every base stack, each region's function pinned to the package version
/// checked there.
async fn apply_bases(
    set: &SetContext,
    plan: &DeployPlan,
    versions: &BTreeMap<Region, String>,
    permits: &Semaphore,
    reporter: &dyn Reporter,
) -> Vec<StackRow> {
    let bases: Vec<StackPlan> = plan
        .bases
        .iter()
        .map(|base| {
            let mut base = base.clone();
            if let Some(version) = versions.get(&base.region) {
                base.parameters
                    .insert(CODE_VERSION_PARAMETER.to_owned(), version.clone());
            }
            base
        })
        .collect();
    join_all(
        bases
            .iter()
            .map(|base| apply(&set.aws, base, permits, reporter)),
    )
    .await
}

/// The buckets' lifecycle rules, as the template declares them (see
/// `lifecycle`), and the artifact bucket's: on every region whose base
/// stack is in place.
async fn keep_bucket_rules(
    set: &SetContext,
    plan: &DeployPlan,
    failed_bases: &[Region],
) -> Result<()> {
    let days = plan.settings.keep_noncurrent_days;
    futures::future::try_join_all(
        plan.bases
            .iter()
            .filter(|base| !failed_bases.contains(&base.region))
            .map(|base| async move {
                let region = &base.region;
                let data = set.aws.objects(*region, set.data_bucket(*region));
                let artifacts = set.aws.objects(*region, set.artifact_bucket(*region));
                data.keep_noncurrent_for(days).await?;
                artifacts.keep_artifacts_by_rule().await?;
                // The log key beside the package, for `hash-key`.
                if let Some(key) = base.parameters.get(MARKER_KEY_PARAMETER) {
                    let key = MarkerKey::from_hex(key).context("the plan's marker key")?;
                    artifacts::keep_log_key(&artifacts, &log_keys::log_key(&key)).await?;
                }
                anyhow::Ok(())
            }),
    )
    .await?;
    Ok(())
}

/// Every pair's stacks, skipping a pair whose base stack failed on either side.
async fn apply_pairs(
    set: &SetContext,
    plan: &DeployPlan,
    failed_bases: &[Region],
    permits: &Arc<Semaphore>,
    reporter: &dyn Reporter,
) -> Vec<StackRow> {
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
            let grant = apply(&set.aws, &pair.grant, &permits, reporter).await;
            let subscription = if grant.error.is_some() {
                skipped(&pair.subscription)
            } else {
                apply(&set.aws, &pair.subscription, &permits, reporter).await
            };
            vec![grant, subscription]
        }
    }))
    .await;
    pair_rows.into_iter().flatten().collect()
}

/// What joining the added regions did: the backfill and the verify that
/// ran, and why it stopped if it did not finish.
#[derive(Default)]
struct Joined {
    backfill: Option<SyncReport>,
    verify: Option<VerifyResult>,
    error: Option<String>,
}

/// Backfills the added regions, verifies the set, and only then takes the
/// joining markers away: an add that stopped half-way says so in `status`.
async fn join_added(
    set: &SetContext,
    plan: &DeployPlan,
    added: &[Region],
    reporter: &dyn Reporter,
) -> Joined {
    let mut joined = Joined::default();
    let result = async {
        reporter.note(&format!(
            "backfilling the set's objects into {}",
            added.join(", ")
        ));
        let backfill = backfill(set, plan, added, reporter)
            .await
            .context("backfilling the added regions")?;
        joined.backfill = Some(backfill);
        reporter.note("verifying the set");
        let located = discover::Located {
            set: set.clone(),
            found: discover::discover(set, &plan.spec.regions).await?,
        };
        let verify = verify::verify(&located, &VerifyOptions::default(), reporter)
            .await
            .context("verifying the set")?;
        let verified = verify.ok;
        joined.verify = Some(verify);
        if !verified {
            anyhow::bail!("verify did not converge (see its report)");
        }
        for region in added {
            set_joining_marker(set, *region, false).await?;
        }
        Ok(())
    }
    .await;
    joined.error = result.err().map(|e| format!("{e:#}"));
    joined
}

/// Keys examined and copied at once by the backfill.
const BACKFILL_CONCURRENCY: usize = 32;

/// Copies every object the set holds into the added regions, with the
/// replicator's rule for which write wins; a key deleted where the set
/// carries deletes is not copied.
async fn backfill(
    set: &SetContext,
    plan: &DeployPlan,
    into: &[Region],
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let regions = &plan.spec.regions;
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
    let marker_key = crate::ops::marker_key::for_set(set, regions).await?;
    // The set's own part size and concurrency, as its functions copy.
    let settings = plan.settings.copy_settings();
    let report = sync::sync_set(set, regions, &marker_key, &settings, &options, reporter).await?;
    if !report.ok {
        anyhow::bail!(
            "the backfill did not copy everything: {} failures, unreachable regions {:?}",
            report.failures.len(),
            report.unreachable
        );
    }
    Ok(report)
}

async fn upload_package(
    set: &SetContext,
    plan: &DeployPlan,
    package: &Package,
    reporter: &dyn Reporter,
) -> Result<(Vec<Region>, BTreeMap<Region, String>)> {
    let results = join_all(plan.spec.regions.iter().map(|region| async move {
        let bucket = set.artifact_bucket(*region);
        reporter.started(region, &bucket, "uploading the function package");
        let change = artifacts::ensure_package(
            &set.aws.objects(*region, &bucket),
            plan.spec.partition,
            &artifacts::state_writer(&set.name, *region, &set.account, plan.spec.partition),
            package,
        )
        .await;
        match &change {
            Ok(ensured) => reporter.finished(
                region,
                &bucket,
                if ensured.change.package_uploaded {
                    "package uploaded"
                } else {
                    "package already there"
                },
                true,
            ),
            Err(error) => reporter.finished(region, &bucket, &format!("{error:#}"), false),
        }
        change.map(|c| (*region, c))
    }))
    .await;
    let mut uploaded = Vec::new();
    let mut versions = BTreeMap::new();
    for result in results {
        let (region, ensured) = result?;
        if ensured.change.package_uploaded {
            uploaded.push(region);
        }
        versions.insert(region, ensured.version);
    }
    Ok((uploaded, versions))
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
    let result = change_set::apply_stack(aws, plan, reporter).await;
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
        region: plan.region,
        kind: plan.template.kind().into(),
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
