//! Rolling a plan out: the package into every region's artifact bucket,
//! every base stack in parallel, then every pair (grant, then subscription)
//! in parallel. Regions new to a deployed set are then backfilled with the
//! objects the set already holds, and the set is verified; each carries its
//! joining marker ([`super::membership`]) until both have passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::aws::Aws;
use crate::aws::artifacts;
use crate::aws::change_set;
use crate::aws::stack::{ResourceFailure, StackAction};
use crate::model::function::SettingChange;
use crate::model::topology::{CODE_VERSION_PARAMETER, DeployPlan, MARKER_KEY_PARAMETER, StackPlan};
use crate::ops::discover;
use crate::ops::membership::{self, set_joining_marker};
use crate::ops::preview::Prepared;
use crate::ops::sync::{self, SyncOptions, SyncReport};
use crate::ops::verify::{self, VerifyOptions, VerifyResult};
use crate::package::Package;
use crate::progress::Reporter;
use toastrep_replication::MarkerKey;
use toastrep_replication::function::log_keys;

#[derive(Serialize, JsonSchema)]
pub struct DeployResult {
    pub name: String,
    pub account: String,
    pub regions: Vec<String>,
    pub package: PackageResult,
    pub stacks: Vec<StackRow>,
    /// Regions new to an already deployed set: backfilled, then verified.
    pub added: Vec<String>,
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
#[derive(Serialize, JsonSchema)]
pub struct PackageResult {
    #[serde(flatten)]
    pub package: Package,
    pub uploaded_to: Vec<String>,
}

/// One stack's line in the result: an action, or an error with its causes.
#[derive(Serialize, JsonSchema)]
pub struct StackRow {
    pub stack_name: String,
    pub region: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<StackAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ResourceFailure>,
    /// Not attempted, because a stack it depends on failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// Rolls out a deploy [`crate::ops::preview::prepare`] decided.
pub async fn roll_out_prepared(
    prepared: &Prepared,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<DeployResult> {
    roll_out(
        &prepared.aws,
        &prepared.account,
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
    aws: &Aws,
    account: &str,
    plan: &DeployPlan,
    package: &Package,
    members: &BTreeSet<String>,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<DeployResult> {
    let name = &plan.spec.name;
    // A brand-new set has nothing to backfill.
    let added = membership::added(members, &plan.spec.regions);
    let (uploaded_to, versions) = upload_package(aws, plan, account, package, reporter).await?;
    for region in &added {
        set_joining_marker(aws, name, account, region, true).await?;
    }

    let permits = Arc::new(Semaphore::new(concurrency));
    // Each region's function is pinned to the package version checked there.
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
    let mut rows: Vec<StackRow> = join_all(
        bases
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
                let data = aws.objects(&base.region, name.data_bucket(&base.region, account));
                let artifacts =
                    aws.objects(&base.region, name.artifact_bucket(&base.region, account));
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
    let (mut backfill_report, mut verify_report, mut error) = (None, None, None);
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
            backfill_report = Some(backfill);
            reporter.note("verifying the set");
            let located = discover::Located {
                aws: aws.clone(),
                account: account.to_owned(),
                found: discover::discover(aws, name, account, &plan.spec.regions).await?,
            };
            let verify = verify::verify(&located, name, &VerifyOptions::default(), reporter)
                .await
                .context("verifying the set")?;
            let verified = verify.ok;
            verify_report = Some(verify);
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
            package: package.clone(),
            uploaded_to,
        },
        stacks: rows,
        added,
        backfill: backfill_report,
        verify: verify_report,
        error,
        setting_changes: Vec::new(),
        up_to_date,
        ok,
    };
    Ok(result)
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
) -> Result<SyncReport> {
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
    aws: &Aws,
    plan: &DeployPlan,
    account: &str,
    package: &Package,
    reporter: &dyn Reporter,
) -> Result<(Vec<String>, BTreeMap<String, String>)> {
    let results = join_all(plan.spec.regions.iter().map(|region| async move {
        let bucket = plan.spec.name.artifact_bucket(region, account);
        reporter.started(region, &bucket, "uploading the function package");
        let change = artifacts::ensure_package(
            &aws.objects(region, &bucket),
            plan.spec.partition,
            &artifacts::state_writer(&plan.spec.name, region, account, plan.spec.partition),
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
        change.map(|c| (region.clone(), c))
    }))
    .await;
    let mut uploaded = Vec::new();
    let mut versions = BTreeMap::new();
    for result in results {
        let (region, ensured) = result?;
        if ensured.change.package_uploaded {
            uploaded.push(region.clone());
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
