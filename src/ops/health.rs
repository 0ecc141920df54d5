//! The health of a deployed set, region by region (`toastrep status`).
//!
//! Per region: every stack of the set there (its base, a grant from and a
//! subscription to every other member), the function (state, last update,
//! and whether its code is the package the base stack names), the
//! dead-letter queue's depth, and the data bucket's object count and size.
//! Anything unhealthy is flagged, and makes the exit status 1.

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::join_all;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::aws::stack::DeployedStack;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::model::topology;
use crate::ops::context::SetContext;
use crate::ops::discover::Located;
use crate::ops::membership;
use crate::package::Package;
use crate::progress::Reporter;

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusResult {
    pub name: String,
    pub account: String,
    /// How the set treats deletes and old versions.
    pub deletes: Option<DeleteSettings>,
    pub regions: Vec<RegionStatus>,
    pub healthy: bool,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RegionStatus {
    pub region: Region,
    pub healthy: bool,
    /// What is wrong, one line each; empty when healthy.
    pub problems: Vec<String>,
    /// Being added: add-region (or a deploy) has not finished its backfill and verify.
    pub joining: bool,
    pub stacks: Vec<StackStatus>,
    pub function: Option<FunctionStatus>,
    pub dead_letter_queue: Option<QueueStatus>,
    pub delete_breaker: Option<BreakerStatus>,
    pub bucket: Option<BucketStatus>,
    /// The last repair run into this region, if one ever ran.
    pub last_repair: Option<RepairRun>,
}

/// A region's last repair run, from its report.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RepairRun {
    pub run: String,
    /// When it ended, Unix milliseconds.
    pub finished_ms: i64,
    pub seconds: f64,
    pub ranges: usize,
    pub ranges_failed: usize,
    pub keys_examined: u64,
    pub copies_made: u64,
    pub failures: u64,
    /// Objects the run found that can never be copied here as they are
    /// (archived, SSE-C, metadata too large): not failures, and the
    /// run's `ok` does not count them.
    pub not_replicable: u64,
    /// The first of them, with why.
    pub not_replicable_objects: Vec<crate::ops::sync::NotReplicable>,
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BreakerStatus {
    /// Regions whose deletes this region holds.
    pub open_for: Vec<crate::ops::breaker::OpenBreaker>,
    /// Deletes waiting in the held-deletes queue.
    pub held: u64,
    /// The breaker alarm's state, when it could be read.
    pub alarm: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DeleteSettings {
    /// Deletes are carried to every region (else kept where they are made).
    pub replicated: bool,
    /// Days noncurrent versions are kept; 0: forever.
    pub keep_noncurrent_days: u32,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StackStatus {
    pub stack_name: String,
    /// CloudFormation's status, or MISSING.
    pub status: String,
    pub healthy: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct FunctionStatus {
    pub function_name: String,
    pub state: String,
    pub last_update_status: String,
    /// Base64 SHA-256 of the deployed code, as Lambda reports it.
    pub code_sha256: String,
    /// Base64 SHA-256 of the package it should run.
    pub expected_sha256: Option<String>,
    pub code_matches: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct QueueStatus {
    pub queue_name: String,
    /// Messages waiting: events the function gave up on.
    pub messages: u64,
    /// Messages received by someone and not yet deleted.
    pub in_flight: u64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketStatus {
    pub bucket: String,
    pub objects: u64,
    pub bytes: u64,
}

/// The health of the located set; its functions' code is compared with
/// `package` when given, else with the package its base stacks name.
pub async fn status(
    located: &Located,
    package: Option<&Package>,
    reporter: &dyn Reporter,
) -> Result<StatusResult> {
    let Located { set, found } = located;
    let members = located.deployed()?;
    let joining = membership::joining_regions(set, found).await?;
    reporter.note(&format!("checking {} regions", members.len()));

    let regions = join_all(members.iter().map(|region| {
        // The package the base stack deployed, unless --lambda-zip names another.
        let expected = match &package {
            Some(package) => Some(package.sha256.clone()),
            None => found.bases[region]
                .parameters
                .get("CodeKey")
                .and_then(|key| sha256_in_key(key)),
        };
        let member = Member {
            region: *region,
            members: &members,
            base: &found.bases[region],
            joining: joining.contains(region),
        };
        region_status(set, member, expected)
    }))
    .await;
    let healthy = regions.iter().all(|r| r.healthy);
    // Versions expire by the bucket's own rules: read them there.
    let first = &members[0];
    let kept = set
        .aws
        .objects(*first, set.data_bucket(*first))
        .noncurrent_days()
        .await
        .ok();
    let deletes = found.settings().map(|s| DeleteSettings {
        replicated: s.replicate_deletes,
        keep_noncurrent_days: kept.unwrap_or(s.keep_noncurrent_days),
    });
    let result = StatusResult {
        name: set.name.to_string(),
        account: set.account.clone(),
        deletes,
        regions,
        healthy,
        ok: healthy,
    };
    Ok(result)
}

/// The hex SHA-256 in a content-addressed package key
/// (`toastrep/replicator-HEX.zip`).
fn sha256_in_key(key: &str) -> Option<String> {
    let hex = key
        .strip_prefix("toastrep/replicator-")?
        .strip_suffix(".zip")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_owned())
}

/// One member region, as its status is asked.
struct Member<'a> {
    region: Region,
    members: &'a [Region],
    base: &'a DeployedStack,
    joining: bool,
}

/// One region's status: every part is asked at once, and a part that
/// cannot be read is a problem of its own rather than the end of the report.
async fn region_status(
    set: &SetContext,
    member: Member<'_>,
    expected_hex: Option<String>,
) -> RegionStatus {
    let Member {
        region, joining, ..
    } = member;
    let name = &set.name;
    let mut problems = Vec::new();
    if joining {
        problems.push(format!(
            "being added: the backfill and verify have not finished; run `toastrep add-region --name {name} --region {region}` again"
        ));
    }
    let (stacks, function, queue, bucket, breaker, repair) = tokio::join!(
        stacks_status(set, &member),
        function_status(set, region, expected_hex),
        queue_status(set, region),
        bucket_status(set, region),
        breaker_status(set, region),
        crate::ops::repair::last_run(set, region),
    );
    for stack in stacks.iter().filter(|s| !s.healthy) {
        problems.push(format!("stack {} is {}", stack.stack_name, stack.status));
    }
    let last_repair = part(repair, "last repair run", &mut problems)
        .flatten()
        .map(|report| repair_run(report, name, region, &mut problems));
    let breaker = part(breaker, "delete breaker", &mut problems);
    if let Some(breaker) = &breaker {
        problems.extend(breaker_problems(breaker, name));
    }
    let function = part(function, "function", &mut problems);
    if let Some(function) = &function {
        problems.extend(function_problems(function));
    }
    let queue = part(queue, "dead-letter queue", &mut problems);
    if let Some(queue) = queue.as_ref().filter(|q| q.messages + q.in_flight > 0) {
        problems.push(format!(
            "dead-letter queue holds {} messages ({} in flight): events the function failed on",
            queue.messages, queue.in_flight
        ));
    }
    let bucket = part(bucket, "bucket", &mut problems);
    RegionStatus {
        region: region.to_owned(),
        healthy: problems.is_empty(),
        problems,
        joining,
        stacks,
        function,
        dead_letter_queue: queue,
        delete_breaker: breaker,
        bucket,
        last_repair,
    }
}

/// A part of a region's status, or its error as one of the region's problems.
fn part<T>(read: Result<T>, what: &str, problems: &mut Vec<String>) -> Option<T> {
    read.map_err(|error| problems.push(format!("{what}: {error:#}")))
        .ok()
}

/// The region's base stack and its side of every pair it is in: a grant
/// from, and a subscription to, every other member.
async fn stacks_status(set: &SetContext, member: &Member<'_>) -> Vec<StackStatus> {
    let name = &set.name;
    let mut stacks = vec![StackStatus {
        stack_name: name.base_stack(),
        status: member.base.status.clone(),
        healthy: member.base.is_healthy(),
    }];
    let pair_names: Vec<String> = topology::pairs(name, member.members)
        .iter()
        .flat_map(|pair| {
            pair.stacks_in(member.region)
                .map(|stack| stack.name.clone())
        })
        .collect();
    let described = join_all(
        pair_names
            .iter()
            .map(|stack_name| set.aws.stack(member.region, stack_name)),
    )
    .await;
    for (stack_name, described) in pair_names.into_iter().zip(described) {
        // A stack is healthy when its last operation succeeded.
        let (status, healthy) = match described {
            Ok(Some(stack)) => (stack.status.clone(), stack.is_healthy()),
            Ok(None) => ("MISSING".to_owned(), false),
            Err(error) => (format!("UNKNOWN ({error})"), false),
        };
        stacks.push(StackStatus {
            healthy,
            stack_name,
            status,
        });
    }
    stacks
}

/// The region's last repair run, and a problem when it did not finish.
fn repair_run(
    r: crate::ops::repair::RunReport,
    name: &SetName,
    region: Region,
    problems: &mut Vec<String>,
) -> RepairRun {
    if !r.ok {
        problems.push(format!(
            "the last repair run ({}) did not finish: {} of {} ranges failed, {} keys failed{}; the next run repairs them again (now: `toastrep sync --name {name} --in-cloud`)",
            r.run,
            r.ranges_failed,
            r.ranges,
            r.tally.failure_count,
            r.tally.failures
                .first()
                .map(|f| format!(", e.g. {} in {}: {}", f.key, f.region, f.error))
                .or_else(|| r.tally.unreachable.first().map(|(region, e)| format!(", {region} unreadable: {e}")))
                .unwrap_or_default()
        ));
    }
    RepairRun {
        seconds: (r.finished_ms - r.started_ms) as f64 / 1000.0,
        run: r.run,
        finished_ms: r.finished_ms,
        ranges: r.ranges,
        ranges_failed: r.ranges_failed,
        keys_examined: r.tally.keys_examined,
        copies_made: r.tally.copies_made,
        failures: r.tally.failure_count,
        not_replicable: r.tally.not_replicable_count,
        not_replicable_objects: r
            .tally
            .not_replicable
            .into_iter()
            .map(|(key, why)| crate::ops::sync::NotReplicable {
                key,
                region: region.to_owned(),
                why,
            })
            .collect(),
        ok: r.ok,
    }
}

fn breaker_problems(breaker: &BreakerStatus, name: &SetName) -> Vec<String> {
    let mut problems: Vec<String> = breaker
        .open_for
        .iter()
        .map(|open| format!(
            "delete breaker OPEN for deletes from {}: they are held, not carried here; look with `toastrep deletes --name {name}`, then --release or --discard them",
            open.source
        ))
        .collect();
    if breaker.held > 0 && breaker.open_for.is_empty() {
        problems.push(format!(
            "{} deletes held: see `toastrep deletes --name {name}`",
            breaker.held
        ));
    }
    problems
}

fn function_problems(function: &FunctionStatus) -> Vec<String> {
    let mut problems = Vec::new();
    if function.state != "Active" {
        problems.push(format!("function is {}", function.state));
    }
    if function.last_update_status == "Failed" {
        problems.push("the function's last update failed".to_owned());
    }
    if !function.code_matches {
        problems.push(format!(
            "function code {} is not the deployed package {}: redeploy with `toastrep deploy`",
            function.code_sha256,
            function.expected_sha256.as_deref().unwrap_or("(unknown)")
        ));
    }
    problems
}

async fn breaker_status(set: &SetContext, region: Region) -> Result<BreakerStatus> {
    let (open_for, held, alarm) = tokio::join!(
        crate::ops::breaker::open_breakers(set, region),
        crate::ops::breaker::held_count(set, region),
        crate::ops::breaker::alarm_state(set, region),
    );
    Ok(BreakerStatus {
        open_for: open_for?,
        held: held?,
        alarm,
    })
}

async fn function_status(
    set: &SetContext,
    region: Region,
    expected_hex: Option<String>,
) -> Result<FunctionStatus> {
    let function_name = set.name.function();
    let config = set
        .aws
        .function(region, &function_name)
        .configuration()
        .await?
        .with_context(|| format!("function {function_name} does not exist in {region}"))?;
    let (state, last_update_status, code_sha256) =
        (config.state, config.last_update_status, config.code_sha256);
    // Lambda reports the base64 of the zip's SHA-256; the package key holds its hex.
    let expected_sha256 = expected_hex.as_deref().and_then(hex_to_base64);
    let code_matches = expected_sha256.as_deref() == Some(code_sha256.as_str());
    Ok(FunctionStatus {
        function_name,
        state,
        last_update_status,
        code_sha256,
        expected_sha256,
        code_matches,
    })
}

async fn queue_status(set: &SetContext, region: Region) -> Result<QueueStatus> {
    let queue_name = set.name.dead_letter_queue();
    let (_, messages, in_flight) = set.aws.queue_depth(region, &queue_name).await?;
    Ok(QueueStatus {
        queue_name,
        messages,
        in_flight,
    })
}

/// Current objects and their bytes, from a full listing (S3's CloudWatch
/// size metrics are a day old, and absent for new buckets).
async fn bucket_status(set: &SetContext, region: Region) -> Result<BucketStatus> {
    let bucket = set.data_bucket(region);
    let listed = set.aws.objects(region, &bucket).list("").await?;
    Ok(BucketStatus {
        bucket,
        objects: listed.len() as u64,
        bytes: listed.iter().map(|o| o.size).sum(),
    })
}

fn hex_to_base64(hex: &str) -> Option<String> {
    Some(BASE64.encode(hex::decode(hex).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_is_lambdas_base64_of_the_key_hex() {
        // SHA-256 of the empty string, in both spellings.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            hex_to_base64(hex).unwrap(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            sha256_in_key(&format!("toastrep/replicator-{hex}.zip")).as_deref(),
            Some(hex)
        );
    }
}
