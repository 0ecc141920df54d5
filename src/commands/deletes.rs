//! `toastrep deletes`: what the mass-delete breaker holds, and the
//! operator's decision on it. Without `--yes`, it only shows what it would
//! do.
//! - `--release` carries the held deletes, as the function would have;
//! - `--discard` undoes them: each deleted key gets back, in the region that
//!   deleted it, the object the set held just before the delete (as a new
//!   write, which then replicates); the other regions kept it all along.
//!
//! Either way the breakers close, and deletes are carried again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use toastrep_replication::{Bucket, KeyRestore, ObjectStore};

use super::{Context, Located, Report};
use crate::cli::DeletesArgs;
use crate::model::names::SetName;
use crate::model::topology::parse_regions;
use crate::ops::breaker::{self, HeldDelete, OpenBreaker};
use crate::ops::discover;
use crate::ops::sync::set_engine;

/// How long held deletes stay hidden while they are read (then shown
/// again) or acted on (then deleted, or back after this long).
const LOOK_SECONDS: i32 = 30;
const ACT_SECONDS: i32 = 300;
/// Passes over every region's held deletes when acting, at most.
const PASSES: usize = 5;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Look,
    Release,
    Discard,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Look => "look",
            Action::Release => "release",
            Action::Discard => "discard",
        }
    }
}

#[derive(Serialize)]
struct DeletesResult {
    name: String,
    /// What was asked: look, release or discard.
    action: Action,
    /// Whether it was done (`--yes`), or only shown.
    done: bool,
    regions: Vec<RegionDeletes>,
    failures: Vec<String>,
    ok: bool,
}

#[derive(Serialize)]
struct RegionDeletes {
    region: String,
    open_for: Vec<OpenBreaker>,
    held: Vec<HeldKey>,
}

#[derive(Serialize)]
struct HeldKey {
    key: String,
    /// The region the delete was made in.
    source: String,
    /// Its delete marker there.
    marker: String,
    /// What was done with it: released (carried), discarded (undone at its
    /// source), or nothing yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
}

pub async fn deletes(context: &Context, args: &DeletesArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    let given = parse_regions(&args.regions)?;
    let Located {
        aws,
        account,
        found,
    } = context.locate(&name, &given).await?;
    let regions = discover::require_members(&found, &name, "deletes")?;
    let action = match (args.release, args.discard) {
        (true, _) => Action::Release,
        (_, true) => Action::Discard,
        _ => Action::Look,
    };
    let act = args.yes && action != Action::Look;
    // Releasing carries deletes, whatever the set does now.
    let settings = crate::model::function::FunctionSettings {
        replicate_deletes: true,
        ..found.settings().unwrap_or_default()
    };
    let (buckets, replicator) = set_engine(&aws, &name, &account, &regions, &settings).await?;

    let mut result = DeletesResult {
        name: name.to_string(),
        action,
        done: act,
        regions: Vec::new(),
        failures: Vec::new(),
        ok: true,
    };
    // Acting carries (or undoes) deletes, whose own notices may be held
    // again by a region not done yet: passes go on until nothing is held.
    let passes = if act { PASSES } else { 1 };
    let mut by_region: Vec<RegionDeletes> = Vec::new();
    for pass in 0..passes {
        let mut any = false;
        for (index, region) in regions.iter().enumerate() {
            let open_for = breaker::open_breakers(&aws, &name, &account, region).await?;
            let hide = if act { ACT_SECONDS } else { LOOK_SECONDS };
            let (queue, held) = breaker::receive_held(&aws, &name, region, hide).await?;
            if !act {
                // Only looked at: back in the queue for whoever acts on them.
                breaker::show_again(&aws, region, &queue, &held).await?;
            }
            any |= !held.is_empty();
            let mut keys = Vec::new();
            for HeldDelete { notice, receipt } in held {
                let outcome = if act {
                    let done = match action {
                        Action::Release => replicator
                            .replicate(&notice, &buckets[index])
                            .await
                            .map(|o| o.decision.to_string())
                            .map_err(|e| e.to_string()),
                        Action::Discard => undo(&replicator, &buckets, &notice).await,
                        Action::Look => unreachable!("a look acts on nothing"),
                    };
                    match done {
                        Ok(outcome) => {
                            aws.sqs(region)
                                .delete_message()
                                .queue_url(&queue)
                                .receipt_handle(&receipt)
                                .send()
                                .await
                                .map_err(anyhow::Error::new)?;
                            Some(outcome)
                        }
                        Err(error) => {
                            result
                                .failures
                                .push(format!("{} held in {region}: {error}", notice.key));
                            Some(format!("failed: {error}"))
                        }
                    }
                } else {
                    None
                };
                keys.push(HeldKey {
                    key: notice.key,
                    source: notice.region,
                    marker: notice.version_id.unwrap_or_default(),
                    outcome,
                });
            }
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
                    region: region.clone(),
                    open_for,
                    held: keys,
                }),
            }
        }
        if !any && pass > 0 {
            break;
        }
    }
    if act && result.failures.is_empty() {
        for region in &regions {
            for open in breaker::open_breakers(&aws, &name, &account, region).await? {
                breaker::close(&aws, &name, &account, region, &open.source).await?;
            }
        }
    }
    result.regions = by_region;
    result.ok = result.failures.is_empty();
    let text = render_text(&result);
    let ok = result.ok;
    Ok(Report::new(&result, text, ok))
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
        Ok(KeyRestore::Restored { .. }) => Ok("discarded: the object is back".to_owned()),
        Ok(KeyRestore::Unchanged) => Ok("discarded: the object was back already".to_owned()),
        Ok(KeyRestore::NoneThen) => Ok("discarded: it deleted nothing".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

fn render_text(result: &DeletesResult) -> String {
    let mut text = String::new();
    let mut total = 0;
    for region in &result.regions {
        for open in &region.open_for {
            let _ = writeln!(
                text,
                "{}: breaker OPEN for deletes from {} ({})",
                region.region, open.source, open.record
            );
        }
        let mut by_source: BTreeMap<&str, Vec<&HeldKey>> = BTreeMap::new();
        for key in &region.held {
            by_source.entry(&key.source).or_default().push(key);
        }
        for (source, keys) in by_source {
            total += keys.len();
            let _ = writeln!(
                text,
                "{}: {} deletes from {source} held",
                region.region,
                keys.len()
            );
            for key in keys.iter().take(20) {
                let _ = writeln!(
                    text,
                    "  {}{}",
                    key.key,
                    key.outcome
                        .as_deref()
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                );
            }
            if keys.len() > 20 {
                let _ = writeln!(
                    text,
                    "  and {} more (all of them with --output json)",
                    keys.len() - 20
                );
            }
        }
    }
    for failure in &result.failures {
        let _ = writeln!(text, "FAILED {failure}");
    }
    let _ = match (result.action, result.done) {
        (Action::Look, _) => writeln!(
            text,
            "{total} deletes held. To carry them: `toastrep deletes --name {} --release --yes`; to undo them where they were made: `--discard --yes`.",
            result.name
        ),
        (action, false) => writeln!(
            text,
            "Would {} {total} held deletes{}. Nothing was changed: run again with --yes to do it.",
            action.as_str(),
            if action == Action::Discard {
                " (each key gets back, where it was deleted, the object it held just before)"
            } else {
                " (each is carried as the function would have)"
            }
        ),
        (action, true) => writeln!(
            text,
            "{total} held deletes: {}d, {} failed; {}",
            action.as_str(),
            result.failures.len(),
            if result.failures.is_empty() {
                "the breakers are closed"
            } else {
                "the breakers stay open until every held delete is done"
            }
        ),
    };
    text
}
