//! `toastrep remove-region`: take one region out of a deployed set.
//!
//! The region's subscriptions and the other regions' subscriptions to it go
//! first (no event is sent into a half-removed region), then the grants, then
//! its base stack, then its artifact bucket. Its data bucket is kept, as in
//! teardown, unless --delete-data was confirmed. The other regions' stacks
//! are not touched, so they keep replicating among themselves.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::teardown::{self, BucketRow, StackRow, bucket_line};
use super::{Context, Report};
use crate::aws::stack::StackAction;
use crate::bail_input;
use crate::cli::RemoveRegionArgs;
use crate::model::names::SetName;
use crate::model::regions;
use crate::model::templates::Template;
use crate::model::topology::{self, parse_regions};

#[derive(Serialize)]
struct RemoveResult {
    name: String,
    account: String,
    region: String,
    /// The set's regions afterwards.
    remaining: Vec<String>,
    stacks: Vec<StackRow>,
    buckets: Vec<BucketRow>,
    ok: bool,
}

pub async fn remove_region(context: &Context, args: &RemoveRegionArgs) -> Result<Report> {
    let name = SetName::parse(&args.set.name)?;
    let region = parse_regions(std::slice::from_ref(&args.region))?.remove(0);
    if args.delete_data && !args.yes {
        teardown::confirm(&name, &format!("the data bucket of '{name}' in {region}"))?;
    }
    let reporter = context.reporter.as_ref();
    let aws = context.aws(&region).await;
    let account = aws.account_id().await?;
    let partition = regions::partition_of(&region).expect("regions are checked");
    let found = super::deploy::discover_in_partition(&aws, &name, &account, partition).await?;
    let members = crate::ops::discover::require_deployed(&found, &name)?;
    if !members.contains(&region) {
        bail_input!(
            "{region} is not a region of set '{name}' (it is deployed in {}): check --region",
            members.join(", ")
        );
    }
    let remaining: Vec<String> = members.iter().filter(|r| **r != region).cloned().collect();
    if remaining.len() < 2 {
        bail_input!(
            "removing {region} would leave set '{name}' with only {}, and a replica set needs two regions: to delete the whole set, run `toastrep teardown --name {name}`",
            remaining.join(", ")
        );
    }
    if !args.discard_dead_letters {
        teardown::refuse_unread_queues(&aws, &name, [&region]).await?;
    }

    let (subscriptions, grants) = topology::pair_stacks_of(&name, &region, &members);
    let mut stacks =
        teardown::delete_all(&aws, &name, Template::Subscription, subscriptions, reporter).await;
    if stacks.iter().all(|r| r.error.is_none()) {
        stacks.extend(teardown::delete_all(&aws, &name, Template::Grant, grants, reporter).await);
    }
    if stacks.iter().all(|r| r.error.is_none()) {
        let base = vec![(name.base_stack(), region.clone())];
        stacks.extend(teardown::delete_all(&aws, &name, Template::Base, base, reporter).await);
    }
    let stacks_ok = stacks.iter().all(|r| r.error.is_none());
    stacks.retain(|row| row.action != Some(StackAction::Absent));

    let mut buckets = Vec::new();
    if stacks_ok {
        if found.data_buckets.contains(&region) {
            let bucket = name.data_bucket(&region, &account);
            buckets.push(
                teardown::remove_bucket(&aws, &region, bucket, "data", args.delete_data, reporter)
                    .await,
            );
        }
        if found.artifact_buckets.contains(&region) {
            // Only toastrep's own packages (and markers) live there.
            let bucket = name.artifact_bucket(&region, &account);
            buckets.push(
                teardown::remove_bucket(&aws, &region, bucket, "artifact", true, reporter).await,
            );
        }
    }
    let ok = stacks_ok && buckets.iter().all(|b| b.error.is_none());
    let result = RemoveResult {
        name: name.to_string(),
        account,
        region,
        remaining,
        stacks,
        buckets,
        ok,
    };
    let text = summary(&result, stacks_ok);
    Ok(Report::new(&result, text, ok))
}

fn summary(result: &RemoveResult, stacks_ok: bool) -> String {
    let mut text = format!(
        "Removing {} from replica set '{}'\n",
        result.region, result.name
    );
    for row in &result.stacks {
        let outcome = match (&row.action, &row.error, &row.note) {
            (Some(action), _, Some(note)) => format!("{action}: {note}"),
            (Some(action), _, None) => action.to_string(),
            (None, error, _) => format!("FAILED: {}", error.as_deref().unwrap_or_default()),
        };
        let _ = writeln!(
            text,
            "stack  {:<44} {:<16} {outcome}",
            row.stack_name, row.region
        );
    }
    for row in &result.buckets {
        text.push_str(&bucket_line(row));
    }
    if stacks_ok {
        let _ = writeln!(
            text,
            "Removed. The set replicates among {}.",
            result.remaining.join(", ")
        );
    } else {
        text.push_str("Some stacks could not be deleted, so the buckets were left alone; fix the cause above and run remove-region again.\n");
    }
    text
}
