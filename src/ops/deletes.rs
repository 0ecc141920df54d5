//! `toastrep deletes`: what the mass-delete breaker holds, and the
//! operator's decision on it. Without `--yes`, it only shows what it would
//! do.
//! - `--release` carries the held deletes, as the function would have;
//! - `--discard` undoes them: each deleted key gets back, in the region that
//!   deleted it, the object the set held just before the delete (as a new
//!   write, which then replicates); the other regions kept it all along.
//!
//! Either way the breakers close, and deletes are carried again.

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toastrep_replication::{
    Bucket, KeyRestore, MarkerKeys, ObjectStore, Replicator, SdkStore, Undo,
};

use crate::aws::queues::Queue;
use crate::model::regions::Region;
use crate::ops::breaker::{self, HeldDelete, OpenBreaker};
use crate::ops::context::SetContext;
use crate::ops::discover::Located;
use crate::ops::marker_key;
use crate::ops::sync::set_replicator;
use toastrep_replication::function::breaker_keys;

/// How long held deletes stay hidden while they are read (then shown
/// again) or acted on (then deleted, or back after this long).
const LOOK_SECONDS: i32 = 30;
const ACT_SECONDS: i32 = 300;
/// Passes over every region's held deletes when acting, at most.
const PASSES: usize = 5;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Look,
    Release,
    Discard,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Look => "look",
            Action::Release => "release",
            Action::Discard => "discard",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DeletesResult {
    pub name: String,
    /// What was asked: look, release or discard.
    pub action: Action,
    /// Whether it was done (`--yes`), or only shown.
    pub done: bool,
    pub regions: Vec<RegionDeletes>,
    pub failures: Vec<String>,
    /// Messages in a held-deletes queue that the set's function did not
    /// write (no valid seal): never acted on, left in the queue to look at.
    pub refused: Vec<String>,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RegionDeletes {
    pub region: Region,
    pub open_for: Vec<OpenBreaker>,
    pub held: Vec<HeldKey>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HeldKey {
    pub key: String,
    /// The region the delete was made in.
    pub source: String,
    /// Its delete marker there.
    pub marker: String,
    /// What was done with it: released (carried), discarded (undone at its
    /// source), or nothing yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// Looks at the held deletes, or with `yes` acts on them.
pub async fn deletes(located: &Located, action: Action, yes: bool) -> Result<DeletesResult> {
    let Located { set, found } = located;
    let SetContext { name, .. } = set;
    let regions = located.members("deletes")?;
    let act = yes && action != Action::Look;
    // Releasing carries deletes, whatever the set does now.
    let settings = crate::model::function::FunctionSettings {
        replicate_deletes: true,
        ..found.settings().unwrap_or_default()
    };
    // Only acting needs the engine, and so the set's marker key: a look
    // reads the queues and the breakers, never the key.
    let engine = if act {
        let key = marker_key::for_set(set, &regions).await?;
        let replicator =
            set_replicator(set, &regions, &key, &settings.copy_settings()).carrying_deletes(true);
        let buckets: Vec<Bucket> = regions.iter().map(|r| replicator.set().bucket(r)).collect();
        Some((buckets, replicator, key))
    } else {
        None
    };

    let mut result = DeletesResult {
        name: name.to_string(),
        action,
        done: act,
        regions: Vec::new(),
        failures: Vec::new(),
        refused: Vec::new(),
        ok: true,
    };
    // Acting carries (or undoes) deletes, whose own notices may be held
    // again by a region not done yet: passes go on until nothing is held.
    let passes = if act { PASSES } else { 1 };
    let mut by_region: Vec<RegionDeletes> = Vec::new();
    for pass in 0..passes {
        let mut any = false;
        for (index, region) in regions.iter().enumerate() {
            let open_for = breaker::open_breakers(set, *region).await?;
            let hide = if act { ACT_SECONDS } else { LOOK_SECONDS };
            let (queue, held) = breaker::receive_held(set, *region, hide).await?;
            if !act {
                // Only looked at: back in the queue for whoever acts on them.
                breaker::show_again(&queue, &held).await?;
            }
            any |= !held.is_empty();
            let mut keys = Vec::new();
            for held in held {
                let outcome = match &engine {
                    Some(engine) => {
                        let acted = act_on(engine, action, index, *region, &held, &queue).await?;
                        match acted {
                            Acted::Done(outcome) => Some(outcome),
                            Acted::Failed(error) => {
                                result
                                    .failures
                                    .push(format!("{} held in {region}: {error}", held.notice.key));
                                Some(format!("failed: {error}"))
                            }
                            Acted::Refused => {
                                result.refused.push(format!(
                                    "{} held in {region}: not written by the set's function (no valid seal), left in the queue",
                                    held.notice.key
                                ));
                                Some("refused: not written by the set's function".into())
                            }
                        }
                    }
                    None => None,
                };
                let notice = held.notice;
                keys.push(HeldKey {
                    key: notice.key,
                    source: notice.region,
                    marker: notice.version_id.unwrap_or_default(),
                    outcome,
                });
            }
            merge_region(&mut by_region, index, *region, open_for, keys);
        }
        if !any && pass > 0 {
            break;
        }
    }
    if act && result.failures.is_empty() {
        for region in &regions {
            for open in breaker::open_breakers(set, *region).await? {
                breaker::close(set, *region, &open.source).await?;
            }
        }
    }
    result.regions = by_region;
    result.ok = result.failures.is_empty() && result.refused.is_empty();
    Ok(result)
}

/// What acting on a held delete needs: the set's buckets, its engine, and
/// the marker keys that seal what the set's function holds.
type Engine = (Vec<Bucket>, Replicator<SdkStore>, MarkerKeys);

/// What became of one held delete acted on.
enum Acted {
    /// Released or discarded, and taken off the queue: how.
    Done(String),
    /// Left in the queue: why.
    Failed(String),
    /// Not sealed by the set's function: left in the queue, never acted on.
    Refused,
}

/// Releases or discards one held delete, then takes it off the queue. Only
/// what the set's function wrote is acted on: a message anyone else put in
/// the queue stays there.
async fn act_on(
    (buckets, replicator, key): &Engine,
    action: Action,
    index: usize,
    region: Region,
    held: &HeldDelete,
    queue: &Queue,
) -> Result<Acted> {
    let sealed = held.seal.as_deref().is_some_and(|seal| {
        // Sealed by the current key, or by the one a rotation still accepts.
        key.live()
            .any(|key| breaker_keys::is_sealed(key, &region, &held.body, seal))
    });
    if !sealed {
        return Ok(Acted::Refused);
    }
    let done = match action {
        Action::Release => replicator
            .replicate(&held.notice, &buckets[index])
            .await
            .map(|o| o.decision.to_string())
            .map_err(|e| e.to_string()),
        Action::Discard => undo(replicator, buckets, &held.notice).await,
        Action::Look => unreachable!("a look acts on nothing"),
    };
    Ok(match done {
        Ok(outcome) => {
            queue.delete(&held.receipt).await?;
            Acted::Done(outcome)
        }
        Err(error) => Acted::Failed(error),
    })
}

/// Adds one pass's look at a region to what earlier passes saw there.
fn merge_region(
    by_region: &mut Vec<RegionDeletes>,
    index: usize,
    region: Region,
    open_for: Vec<breaker::OpenBreaker>,
    keys: Vec<HeldKey>,
) {
    match by_region.get_mut(index) {
        Some(seen) => {
            seen.held.extend(keys);
            for open in open_for {
                if !seen.open_for.iter().any(|s| s.source == open.source) {
                    seen.open_for.push(open);
                }
            }
        }
        None => by_region.push(RegionDeletes {
            region: region.to_owned(),
            open_for,
            held: keys,
        }),
    }
}

/// Undoes a held delete where it was made: the write it removed is written
/// there again (a new write, which then replicates). `Ok` too when there is
/// nothing to undo any more.
async fn undo<S: ObjectStore>(
    replicator: &toastrep_replication::Replicator<S>,
    buckets: &[Bucket],
    notice: &toastrep_replication::S3Notice,
) -> Result<String, String> {
    let Some(source) = buckets.iter().position(|b| b.region == notice.region) else {
        return Err(format!("{} is not a region of the set", notice.region));
    };
    let marker = notice.version_id.as_deref().unwrap_or_default();
    match replicator
        .undo_delete(&notice.key, buckets, source, marker)
        .await
    {
        Ok(Undo::Done(KeyRestore::Restored { .. })) => {
            Ok("discarded: the object is back".to_owned())
        }
        Ok(Undo::Done(KeyRestore::Unchanged)) => {
            Ok("discarded: the object was back already".to_owned())
        }
        Ok(Undo::Done(KeyRestore::NoneThen)) => Ok("discarded: it deleted nothing".to_owned()),
        Ok(Undo::WrittenSince { region }) => Ok(format!(
            "discarded: written again in {} since the delete; that later write stays",
            buckets[region].region
        )),
        Err(error) => Err(error.to_string()),
    }
}
