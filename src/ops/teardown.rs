//! `toastrep teardown`: delete a set, keeping its data unless told otherwise.
//!
//! Subscription stacks go first (no new events), then grant stacks, then base
//! stacks, then buckets. CloudFormation never deletes a data bucket (its
//! DeletionPolicy retains it); toastrep deletes one itself only when it holds
//! no object version, or when --delete-data was confirmed.

use std::borrow::Cow;

use anyhow::Result;
use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws::Aws;
use crate::aws::stack::{self, StackAction, StackError};
use crate::bail_input;
use crate::model::regions::Region;
use crate::model::templates::Template;
use crate::model::topology::{self, StackAt};
use crate::ops::context::SetContext;
use crate::ops::discover::Located;
use crate::progress::Reporter;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TeardownResult {
    pub name: String,
    pub account: String,
    pub regions: Vec<Region>,
    pub stacks: Vec<StackRow>,
    pub buckets: Vec<BucketRow>,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StackRow {
    pub stack_name: String,
    pub region: Region,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<StackAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a stack was left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketRow {
    pub bucket: String,
    pub region: Region,
    // `Cow`s, so that a result read back from JSON owns them.
    pub kind: Cow<'static, str>,
    /// deleted, or kept (it holds objects and --delete-data was not given).
    pub action: Cow<'static, str>,
    /// Object versions found in it (for a kept bucket, at least this many).
    pub versions: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Versions counted before a bucket is called non-empty and kept.
pub const COUNT_LIMIT: u64 = 10_000;

/// What teardown may delete besides the stacks.
#[derive(Debug, Clone, Copy)]
pub struct TeardownOptions {
    /// Every object version in the data buckets, and the buckets.
    pub delete_data: bool,
    /// Messages left in the dead-letter and held-deletes queues.
    pub discard_dead_letters: bool,
}

/// Deletes everything of set `name` that `located` found.
pub async fn teardown(
    located: &Located,
    options: TeardownOptions,
    reporter: &dyn Reporter,
) -> Result<TeardownResult> {
    let Located { set, found } = located;
    let SetContext { aws, name, account } = set;
    let regions: Vec<Region> = found.regions().into_iter().collect();
    if !options.discard_dead_letters {
        refuse_unread_queues(set, found.bases.keys()).await?;
    }

    let pairs = topology::pairs(name, &regions);
    let mut stacks = Vec::new();
    // Subscriptions first: no event is sent to a function whose permission
    // is gone.
    let subscriptions = pairs.iter().map(|pair| pair.subscription.clone());
    stacks.extend(
        delete_all(
            set,
            Template::Subscription,
            subscriptions.collect(),
            reporter,
        )
        .await,
    );
    let grants = pairs.iter().map(|pair| pair.grant.clone());
    stacks.extend(delete_all(set, Template::Grant, grants.collect(), reporter).await);
    let bases = found.bases.keys().map(|region| StackAt {
        name: name.base_stack(),
        region: *region,
    });
    stacks.extend(delete_all(set, Template::Base, bases.collect(), reporter).await);
    // Only stacks that existed are worth a line.
    stacks.retain(|row| row.action != Some(StackAction::Absent));
    let stacks_ok = stacks.iter().all(|row| row.error.is_none());

    let mut bucket_rows = Vec::new();
    if stacks_ok {
        let data = found.data_buckets.iter().map(|region| {
            let bucket = name.data_bucket(*region, account);
            remove_bucket(aws, *region, bucket, "data", options.delete_data, reporter)
        });
        bucket_rows.extend(join_all(data).await);
        // The artifact buckets hold only toastrep's own packages.
        let artifacts = found.artifact_buckets.iter().map(|region| {
            let bucket = name.artifact_bucket(*region, account);
            remove_bucket(aws, *region, bucket, "artifact", true, reporter)
        });
        bucket_rows.extend(join_all(artifacts).await);
    }
    let ok = stacks_ok && bucket_rows.iter().all(|row| row.error.is_none());
    let result = TeardownResult {
        name: name.to_string(),
        account: account.clone(),
        regions,
        stacks,
        buckets: bucket_rows,
        ok,
    };
    Ok(result)
}

/// A queue of the set that still holds messages: its base stack would
/// delete them with it.
struct Unread {
    region: Region,
    queue: String,
    messages: u64,
    /// What the messages are, and how to deal with them first.
    what: String,
}

/// Refuses (changing nothing) when a dead-letter queue holds failed
/// replications, or a held-deletes queue holds deletes the breaker kept:
/// deleting a base stack deletes its queues, and with them the only record
/// of what was not replicated. `--discard-dead-letters` accepts that.
pub async fn refuse_unread_queues(
    set: &SetContext,
    regions: impl IntoIterator<Item = &Region>,
) -> Result<()> {
    let SetContext { aws, name, .. } = set;
    let checks = regions.into_iter().flat_map(|region| {
        [
            (
                region,
                name.dead_letter_queue(),
                format!("replications that failed; replay them first with `toastrep replay --name {name}`"),
            ),
            (
                region,
                name.held_deletes_queue(),
                format!("deletes the breaker held; release or discard them first with `toastrep deletes --name {name}`"),
            ),
        ]
    });
    let found = join_all(checks.map(|(region, queue, what)| async move {
        let depth = aws.queue_depth_if_exists(*region, &queue).await?;
        Ok::<_, anyhow::Error>(depth.map(|(_, waiting, in_flight)| Unread {
            region: *region,
            queue,
            messages: waiting + in_flight,
            what,
        }))
    }))
    .await;
    let mut unread = Vec::new();
    for depth in found {
        unread.extend(depth?.filter(|queue| queue.messages > 0));
    }
    if unread.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = unread
        .iter()
        .map(|q| {
            format!(
                "  {} in {} holds {} messages: {}",
                q.queue, q.region, q.messages, q.what
            )
        })
        .collect();
    bail_input!(
        "the set's queues still hold messages, which deleting its stacks would delete:\n{}\nnothing was deleted; deal with them first, or add --discard-dead-letters to delete them with the set",
        lines.join("\n")
    )
}

/// Deletes set `name`'s stacks of one `kind`, given as (name, region), in
/// parallel. A stack of that name that is not the set's is left alone and
/// reported, and does not stop the rest.
pub async fn delete_all(
    set: &SetContext,
    kind: Template,
    stacks: Vec<StackAt>,
    reporter: &dyn Reporter,
) -> Vec<StackRow> {
    let SetContext { aws, name, .. } = set;
    join_all(stacks.into_iter().map(|stack| async move {
        let StackAt {
            name: stack_name,
            region,
        } = stack;
        let result = stack::delete_stack(
            aws,
            &stack_name,
            region,
            name.as_str(),
            kind.kind(),
            reporter,
        )
        .await;
        match result {
            Ok(outcome) => {
                if outcome.action == StackAction::Deleted {
                    reporter.finished(&region, &stack_name, "deleted", true);
                }
                StackRow {
                    stack_name,
                    region,
                    action: Some(outcome.action),
                    error: None,
                    note: None,
                }
            }
            Err(error @ StackError::NotOursToDelete { .. }) => {
                reporter.finished(&region, &stack_name, "left alone: not this set's", true);
                StackRow {
                    stack_name,
                    region,
                    action: Some(StackAction::LeftAlone),
                    error: None,
                    note: Some(error.to_string()),
                }
            }
            Err(error) => {
                reporter.finished(&region, &stack_name, "failed", false);
                StackRow {
                    stack_name,
                    region,
                    action: None,
                    error: Some(error.to_string()),
                    note: None,
                }
            }
        }
    }))
    .await
}

/// Deletes a bucket that holds no object version, or (`delete_data`) one
/// that does, after emptying it; otherwise keeps it and says how full it is.
pub async fn remove_bucket(
    aws: &Aws,
    region: Region,
    bucket: String,
    kind: &'static str,
    delete_data: bool,
    reporter: &dyn Reporter,
) -> BucketRow {
    let objects = aws.objects(region, &bucket);
    let result: Result<(&'static str, u64)> = async {
        let contents = objects.count(COUNT_LIMIT).await?;
        if contents.versions > 0 && !delete_data {
            return Ok(("kept", contents.versions));
        }
        reporter.started(&region, &bucket, "emptying and deleting");
        // Without --delete-data only delete markers are removed: no data.
        objects.purge(!delete_data).await?;
        objects.delete_bucket().await?;
        reporter.finished(&region, &bucket, "deleted", true);
        Ok(("deleted", contents.versions))
    }
    .await;
    match result {
        Ok((action, versions)) => BucketRow {
            bucket,
            region: region.to_owned(),
            kind: kind.into(),
            action: action.into(),
            versions,
            error: None,
        },
        Err(error) => BucketRow {
            bucket,
            region: region.to_owned(),
            kind: kind.into(),
            action: "failed".into(),
            versions: 0,
            error: Some(format!("{error:#}")),
        },
    }
}
