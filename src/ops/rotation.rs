//! `toastrep rotate-key`: the set's marker key replaced by a new one, in
//! the steps of [`crate::model::rotation`], each a deploy of every region
//! with the step's ring. Between the first two steps, and before the old
//! key is retired, toastrep waits until no invocation of the earlier
//! configuration can still run: the functions' timeout, since Lambda runs
//! an invocation that started before an update to its end under the
//! configuration it started with.

use std::time::Duration;

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws::AwsOptions;
use crate::error::InputError;
use crate::model::function::FunctionSettings;
use crate::model::regions::Region;
use crate::model::rotation::{self, Step};
use crate::ops::context::SetContext;
use crate::ops::marker_key::{self, MarkerKeys};
use crate::ops::membership;
use crate::ops::preview::{self, KeyUse};
use crate::ops::rollout::{self, DeployResult};
use crate::ops::sync::{SyncOptions, SyncReport, sync_set};
use crate::progress::Reporter;
use crate::settings::DeploySettings;

/// What a rotation did.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct RotationResult {
    pub name: String,
    pub regions: Vec<Region>,
    /// The id of the key the set sealed with before (8 hex digits, as
    /// markers name it; never the key).
    pub old_key_id: String,
    /// The id of the key it seals with now.
    pub new_key_id: String,
    /// The steps taken, in order (a resumed rotation starts where the
    /// last one stopped).
    pub steps: Vec<StepResult>,
    /// The deep sync that sealed again the copies the old key sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resealed: Option<SyncReport>,
    pub ok: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct StepResult {
    pub step: Step,
    /// Seconds waited after it, for invocations of the earlier ring to end.
    pub drained_seconds: u64,
    pub deploy: DeployResult,
}

/// Runs (or resumes) a rotation of the key of the set `settings` deploys.
/// `drain` overrides the wait after each step (the functions' timeout).
pub async fn rotate(
    options: &AwsOptions,
    settings: &DeploySettings,
    drain: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<RotationResult> {
    let spec = &settings.spec;
    let name = &spec.name;
    let set = SetContext::connect(options, name, spec.regions[0]).await?;
    let (mut ring, mut start) = deployed_rings(&set, &spec.regions, reporter).await?;
    let old_key_id = match ring.rotation() {
        toastrep_replication::Rotation::Sealing => {
            ring.accepted().next().map(|k| k.id()).unwrap_or_default()
        }
        _ => ring.current_id(),
    };
    let mut result = RotationResult {
        name: name.to_string(),
        regions: spec.regions.clone(),
        old_key_id,
        new_key_id: String::new(),
        steps: Vec::new(),
        resealed: None,
        ok: true,
    };
    let mut pending = (!start).then(|| ring.clone());
    loop {
        let (step, next) = match pending.take() {
            Some(resumed) => (None, resumed),
            None => {
                if ring.rotation() == toastrep_replication::Rotation::Sealing {
                    // Every copy the old key sealed is sealed again before
                    // the old key stops being accepted.
                    let report = reseal(&set, settings, &ring, reporter).await?;
                    let ok = report.ok;
                    result.resealed = Some(report);
                    if !ok {
                        result.ok = false;
                        break;
                    }
                }
                let now = toastrep_replication::clock::now_ms() / 1000;
                let new = marker_key::generate()?;
                match rotation::next(&ring, start, new, now as i64) {
                    Some((step, next)) => (Some(step), next),
                    None => break,
                }
            }
        };
        start = false;
        reporter.note(&format!(
            "rotate-key: {}",
            step.map_or("bringing every region to the same step".into(), |s| {
                format!("{s:?}").to_lowercase()
            })
        ));
        let deploy = deploy_ring(options, settings, next.clone(), reporter).await?;
        let ok = deploy.ok;
        let waits = next.rotation() != toastrep_replication::Rotation::Steady;
        let drained = if ok && waits {
            drain_earlier_ring(&set, settings, drain, reporter).await?
        } else {
            0
        };
        if let Some(step) = step {
            result.steps.push(StepResult {
                step,
                drained_seconds: drained,
                deploy,
            });
        }
        if !ok {
            result.ok = false;
            break;
        }
        ring = next;
    }
    result.new_key_id = ring.current_id();
    Ok(result)
}

/// The ring every region holds, and whether a rotation starts from it
/// (false: one stopped with its regions a step apart, and resumes).
async fn deployed_rings(
    set: &SetContext,
    regions: &[Region],
    reporter: &dyn Reporter,
) -> Result<(MarkerKeys, bool)> {
    let name = &set.name;
    let rings = marker_key::per_region(set, regions).await?;
    let missing: Vec<&Region> = regions
        .iter()
        .filter(|region| !rings.iter().any(|(r, _)| r == *region))
        .collect();
    if !missing.is_empty() {
        return Err(InputError::new(format!(
            "set '{name}' holds no marker key in {}: rotate-key rotates a deployed set's key; \
             run `toastrep deploy --name {name}` for these regions first",
            missing
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let all: Vec<MarkerKeys> = rings.into_iter().map(|(_, ring)| ring).collect();
    let Some(ring) = rotation::combined(&all) else {
        return Err(InputError::new(format!(
            "the regions of set '{name}' hold marker key rings no rotation explains; run \
             `toastrep deploy --name {name}` to see which regions differ"
        ))
        .into());
    };
    let start = all.iter().all(|r| *r == ring);
    if !start {
        // A rotation stopped between regions: every region gets the later
        // step's ring first.
        reporter.note(&format!(
            "resuming a rotation of set '{name}' that stopped with its regions a step apart"
        ));
    }
    Ok((ring, start))
}

/// Waits the longest an invocation of the earlier ring may still run;
/// returns the seconds waited.
async fn drain_earlier_ring(
    set: &SetContext,
    settings: &DeploySettings,
    drain: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<u64> {
    let timeout = deployed(set, settings).await?.timeout;
    let wait = drain.unwrap_or(Duration::from_secs(u64::from(timeout)));
    reporter.note(&format!(
        "waiting {} s for invocations of the earlier ring to end",
        wait.as_secs()
    ));
    tokio::time::sleep(wait).await;
    Ok(wait.as_secs())
}

/// One step: a deploy of every region with `ring`, the set's regions and
/// settings otherwise as deployed.
async fn deploy_ring(
    options: &AwsOptions,
    settings: &DeploySettings,
    ring: MarkerKeys,
    reporter: &dyn Reporter,
) -> Result<DeployResult> {
    let prepared = preview::prepare(
        options,
        settings.spec.clone(),
        &settings.function,
        KeyUse::Rotate(ring),
        reporter,
    )
    .await?;
    let added = prepared.added();
    if !added.is_empty() {
        return Err(InputError::new(format!(
            "rotate-key changes no member of the set, yet {} is not one: run `toastrep \
             add-region` first, or leave it out of --regions",
            added.join(", ")
        ))
        .into());
    }
    rollout::roll_out_prepared(&prepared, settings.concurrency, reporter).await
}

/// The set's settings as deployed.
async fn deployed(set: &SetContext, settings: &DeploySettings) -> Result<FunctionSettings> {
    let found = membership::discover_in_partition(set, settings.spec.partition).await?;
    Ok(found.settings().unwrap_or_default())
}

/// The deep sync of step 3: every region examined, every copy of the
/// winner a retiring key sealed copied again under the current key.
async fn reseal(
    set: &SetContext,
    settings: &DeploySettings,
    ring: &MarkerKeys,
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    let spec = &settings.spec;
    let deployed = deployed(set, settings).await?;
    let options = SyncOptions {
        prefix: None,
        dry_run: false,
        deep: true,
        concurrency: settings.concurrency.max(1) * 4,
        only_into: None,
        carry_deletes: deployed.replicate_deletes,
    };
    sync_set(
        set,
        &spec.regions,
        ring,
        &deployed.copy_settings(),
        &options,
        reporter,
    )
    .await
}
