//! The cloud repair's three steps, as this region's state machine invokes
//! them (see `toastrep_replication::function::repair` for the protocol). Each region
//! repairs only its own bucket, reading every member region: the role's
//! own permissions (write here, read the others through the grant stacks)
//! are all it needs.
//!
//! The member regions are the topics allowed to invoke this function (its
//! resource policy: the grant stacks' permissions and its own region's):
//! exactly the regions whose buckets its role may read. A request naming
//! any other region is refused.
//!
//! What a run keeps lives in this region's artifact bucket, under
//! `repair/`:
//! - `repair/runs/RUN/plan.json` and `ranges.json` (the map's manifest);
//! - `repair/runs/RUN/parts/INDEX-PART.json`: one per range invocation;
//! - `repair/runs/RUN/report.json`, and a copy in `repair/last.json`;
//! - `repair/bounds.json`: range bounds learned from the last whole run.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use toastrep_replication::clock::now_ms;
use toastrep_replication::engine::{KeyRange, ScanLimit, ScanOptions, ScanStep};
use toastrep_replication::function::metrics::repair_documents;
use toastrep_replication::function::repair::{
    ManifestItem, Plan, RangePart, RangeRequest, RepairRequest, RunReport, first_bounds,
    learned_bounds, sample_every, summarise,
};
use toastrep_replication::{Replicator, SdkStore, SetBuckets};
use tokio::sync::Mutex;

/// A range invocation stops scanning this long before Lambda's deadline,
/// so the keys in flight finish and its part is written.
const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// How long a range invocation trusts the member regions it read.
const MEMBERS_FRESH: Duration = Duration::from_secs(300);

/// How long a running execution, once Step Functions said so, is trusted
/// without asking again: a range's invocations follow each other closely,
/// and DescribeExecution is rate-limited.
const EXECUTION_FRESH: Duration = Duration::from_secs(60);

/// Range bounds learned from a whole run.
#[derive(Debug, serde::Deserialize, Serialize)]
struct Bounds {
    run: String,
    bounds: Vec<String>,
}

pub struct Repair<'a> {
    pub replicator: &'a Replicator<SdkStore>,
    pub region: String,
    pub set: SetBuckets,
    /// This region's artifact bucket.
    pub artifacts: String,
    pub function: String,
    /// The longest a range invocation scans before it hands on its cursor.
    pub budget: Duration,
    /// Keys examined at once within a range.
    pub concurrency: usize,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// The member regions, and when they were read.
    members: Mutex<Option<(tokio::time::Instant, BTreeSet<String>)>>,
    /// Executions Step Functions said were running, and when.
    executions: Mutex<HashMap<String, tokio::time::Instant>>,
}

fn fail(error_type: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message.into(),
    }
}

fn internal(error: impl std::fmt::Display) -> Diagnostic {
    fail("RepairStepFailed", error.to_string())
}

/// A run's id names objects: only what an execution name can be, so it
/// never escapes its prefix.
fn run_id(run: &str) -> Result<&str, Diagnostic> {
    let fine = !run.is_empty()
        && run.len() <= 80
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(run)
    } else {
        Err(fail(
            "InvalidRepairRequest",
            format!("run {run:?} is not an execution name (letters, digits, - and _)"),
        ))
    }
}

impl<'a> Repair<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        replicator: &'a Replicator<SdkStore>,
        region: String,
        artifacts: String,
        function: String,
        budget: Duration,
        concurrency: usize,
        s3: aws_sdk_s3::Client,
        lambda: aws_sdk_lambda::Client,
        sfn: aws_sdk_sfn::Client,
    ) -> Repair<'a> {
        Repair {
            set: replicator.set().clone(),
            replicator,
            region,
            artifacts,
            function,
            budget,
            concurrency,
            s3,
            lambda,
            sfn,
            members: Mutex::new(None),
            executions: Mutex::new(HashMap::new()),
        }
    }

    /// The member regions: the set's topics allowed to invoke this
    /// function, read afresh.
    async fn read_members(&self) -> Result<BTreeSet<String>, Diagnostic> {
        let policy = self
            .lambda
            .get_policy()
            .function_name(&self.function)
            .send()
            .await
            .map_err(|e| {
                internal(format!(
                    "reading the function's policy: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        let policy: Value = serde_json::from_str(policy.policy().unwrap_or("{}"))
            .map_err(|e| internal(format!("the function's policy: {e}")))?;
        let mut members: BTreeSet<String> = policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Condition"]["ArnLike"]["AWS:SourceArn"].as_str())
            .filter_map(|arn| self.set.topic_region(arn))
            .map(str::to_owned)
            .collect();
        members.insert(self.region.clone());
        *self.members.lock().await = Some((tokio::time::Instant::now(), members.clone()));
        Ok(members)
    }

    /// The member regions as read within [`MEMBERS_FRESH`]: a range's
    /// invocations check their requests against it without a control-plane
    /// call each (GetPolicy is rate-limited), and a warm process still
    /// learns of a region added or removed.
    async fn members(&self) -> Result<BTreeSet<String>, Diagnostic> {
        if let Some((read, members)) = self.members.lock().await.as_ref()
            && read.elapsed() < MEMBERS_FRESH
        {
            return Ok(members.clone());
        }
        self.read_members().await
    }

    async fn put_json(&self, key: &str, value: &impl Serialize) -> Result<(), Diagnostic> {
        let body = serde_json::to_vec(value).map_err(internal)?;
        self.s3
            .put_object()
            .bucket(&self.artifacts)
            .expected_bucket_owner(&self.set.account)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                internal(format!(
                    "writing s3://{}/{key}: {}",
                    self.artifacts,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(())
    }

    /// The object at `key`, or `None` if there is none.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Diagnostic> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.artifacts)
            .expected_bucket_owner(&self.set.account)
            .key(key)
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                return Err(internal(format!(
                    "reading s3://{}/{key}: {}",
                    self.artifacts,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )));
            }
        };
        let bytes = object.body.collect().await.map_err(internal)?.into_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| internal(format!("s3://{}/{key}: {e}", self.artifacts)))
    }

    /// Step 1: the ranges, as the map's manifest.
    pub async fn plan(&self, run: &str, input: &Value) -> Result<Value, Diagnostic> {
        let run = run_id(run)?;
        // A run covers the members of when it starts.
        let regions: Vec<String> = self.read_members().await?.into_iter().collect();
        let bounds = match self.get_json::<Bounds>("repair/bounds.json").await? {
            Some(learned) => learned.bounds,
            None => first_bounds(),
        };
        let last = self.get_json::<RunReport>("repair/last.json").await?;
        let items: Vec<ManifestItem> = KeyRange::split_at(&bounds)
            .into_iter()
            .enumerate()
            .map(|(index, range)| ManifestItem { index, range })
            .collect();
        let manifest = format!("repair/runs/{run}/ranges.json");
        self.put_json(&manifest, &items).await?;
        let plan = Plan {
            run: run.to_owned(),
            regions,
            manifest,
            ranges: items.len(),
            sample_every: sample_every(last.map_or(0, |r| r.tally.keys_scanned)),
            started_ms: now_ms(),
        };
        self.put_json(&format!("repair/runs/{run}/plan.json"), &plan)
            .await?;
        let mut answer = serde_json::to_value(&plan).map_err(internal)?;
        // `deep` (examine every key) is the execution's choice.
        answer["deep"] = json!(input["deep"].as_bool().unwrap_or(false));
        answer["artifacts"] = json!(self.artifacts);
        tracing::info!(target: "toastrep::repair", run, ranges = plan.ranges, regions = ?plan.regions, "repair planned");
        Ok(answer)
    }

    /// Step 2: one range, until its budget; the answer is the next
    /// request, `done` when the range is finished.
    pub async fn range(
        &self,
        mut request: RangeRequest,
        deadline: i64,
    ) -> Result<Value, Diagnostic> {
        run_id(&request.run)?;
        let own = self.own_index(&request.regions).await?;
        let started = std::time::Instant::now();
        let buckets: Vec<_> = request.regions.iter().map(|r| self.set.bucket(r)).collect();
        // At least one batch of keys goes through, however little time is left.
        let now = now_ms();
        let latest = deadline
            .saturating_sub(DEADLINE_MARGIN.as_millis() as i64)
            .max(now);
        let stop = now
            .saturating_add(self.budget.as_millis() as i64)
            .min(latest);
        let options = ScanOptions {
            range: KeyRange {
                after: request.resume_after.clone().or(request.range.after.clone()),
                upto: request.range.upto.clone(),
            },
            prefix: None,
            repair: (0..request.regions.len()).map(|i| i == own).collect(),
            dry_run: false,
            deep: request.deep,
            concurrency: self.concurrency,
            limit: ScanLimit {
                keys: None,
                deadline: Some(stop),
            },
        };
        let mut part = RangePart {
            index: request.index,
            part: request.part,
            ..RangePart::default()
        };
        let regions = &request.regions;
        let every = request.sample_every.max(1);
        let mut merged = 0u64;
        let end = self
            .replicator
            .scan(&buckets, &options, |step| match step {
                ScanStep::Merged(key) => {
                    merged += 1;
                    if merged.is_multiple_of(every) {
                        part.samples.push(key.to_owned());
                    }
                }
                ScanStep::Repaired(key, result) => part.tally.record(key, result, regions),
                ScanStep::Scanned(_) => {}
            })
            .await;
        part.tally.keys_scanned = end.keys_scanned;
        part.tally.keys_examined = end.keys_examined;
        part.tally.unreachable = end
            .unreachable
            .iter()
            .map(|(i, e)| (regions[*i].clone(), e.clone()))
            .collect();
        part.millis = started.elapsed().as_millis() as u64;
        let run = request.run.clone();
        self.put_json(
            &format!(
                "repair/runs/{run}/parts/{:06}-{:06}.json",
                part.index, part.part
            ),
            &part,
        )
        .await?;
        tracing::info!(
            target: "toastrep::repair",
            run, range = part.index, part = part.part,
            keys_scanned = part.tally.keys_scanned, copies = part.tally.copies_made,
            failures = part.tally.failure_count, unreachable = part.tally.unreachable.len(),
            resume = end.resume_after.is_some(),
            "range repaired"
        );
        request.failed |= !part.tally.ok();
        request.part += 1;
        request.done = end.resume_after.is_none();
        request.resume_after = end.resume_after;
        if request.done && request.failed {
            // The map counts this item as failed; the report has the why.
            return Err(fail(
                "RangeIncomplete",
                format!(
                    "range {} of run {run} left keys unrepaired or a region unread (see repair/runs/{run}/report.json)",
                    request.index
                ),
            ));
        }
        serde_json::to_value(RepairRequest::RepairRange(request)).map_err(internal)
    }

    /// Where this region is among a range request's regions, each of which
    /// must be a member of the set: a request naming any other is refused.
    async fn own_index(&self, regions: &[String]) -> Result<usize, Diagnostic> {
        let members = self.members().await?;
        if let Some(stranger) = regions.iter().find(|r| !members.contains(*r)) {
            return Err(fail(
                "InvalidRepairRequest",
                format!(
                    "{stranger} is not a member region of set {} (members: {members:?})",
                    self.set.set
                ),
            ));
        }
        regions
            .iter()
            .position(|r| *r == self.region)
            .ok_or_else(|| {
                fail(
                    "InvalidRepairRequest",
                    format!(
                        "the request's regions do not include this one, {}",
                        self.region
                    ),
                )
            })
    }

    /// Step 3: the run's report, metrics and the next run's bounds.
    pub async fn report(&self, run: &str, error: Option<&Value>) -> Result<Value, Diagnostic> {
        let run = run_id(run)?;
        let Some(plan) = self
            .get_json::<Plan>(&format!("repair/runs/{run}/plan.json"))
            .await?
        else {
            return Err(fail(
                "InvalidRepairRequest",
                format!("run {run} has no plan"),
            ));
        };
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.artifacts)
                .expected_bucket_owner(&self.set.account)
                .prefix(format!("repair/runs/{run}/parts/"))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| internal(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let parts: Vec<RangePart> = futures::stream::iter(keys)
            .map(|key| async move { self.get_json::<RangePart>(&key).await })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(|p| p.transpose())
            .collect::<Result<_, _>>()?;
        let error = error
            .filter(|e| !e.is_null())
            .map(|e| e.get("Cause").or(e.get("Error")).unwrap_or(e).to_string());
        let report = summarise(&plan, &self.region, &parts, now_ms(), error);
        self.put_json(&format!("repair/runs/{run}/report.json"), &report)
            .await?;
        self.put_json("repair/last.json", &report).await?;
        if report.ok {
            let samples = parts.into_iter().flat_map(|p| p.samples).collect();
            let bounds = learned_bounds(samples, report.tally.keys_scanned);
            self.put_json(
                "repair/bounds.json",
                &Bounds {
                    run: run.to_owned(),
                    bounds,
                },
            )
            .await?;
        }
        for document in repair_documents(
            &self.set.set,
            &self.region,
            &report.tally.copies_by_source,
            report.tally.keys_examined,
            report.tally.copies_made + report.tally.deletes_made,
            report.tally.failure_count + report.ranges_failed as u64,
            report.finished_ms,
        ) {
            println!("{document}");
        }
        tracing::info!(
            target: "toastrep::repair",
            run, ok = report.ok, ranges = report.ranges, ranges_failed = report.ranges_failed,
            keys_scanned = report.tally.keys_scanned, copies = report.tally.copies_made,
            failures = report.tally.failure_count,
            "repair run reported"
        );
        let summary = json!({
            "run": report.run,
            "region": report.region,
            "ok": report.ok,
            "ranges": report.ranges,
            "ranges_failed": report.ranges_failed,
            "keys_scanned": report.tally.keys_scanned,
            "keys_examined": report.tally.keys_examined,
            "copies_made": report.tally.copies_made,
            "failures": report.tally.failure_count,
        });
        if report.ok {
            Ok(summary)
        } else {
            // The execution fails, and with it the repair alarm.
            Err(fail("RepairIncomplete", summary.to_string()))
        }
    }
}

/// Whether `payload` is a repair step rather than an SNS event. SNS
/// delivers its envelope (`Records`), never a top-level `toastrep`.
pub fn is_repair(payload: &Value) -> bool {
    payload.get("toastrep").is_some()
}

impl Repair<'_> {
    /// Runs the step `payload` asks for.
    pub async fn handle(&self, payload: Value, deadline: i64) -> Result<Value, Diagnostic> {
        let request: RepairRequest = serde_json::from_value(payload)
            .map_err(|e| fail("InvalidRepairRequest", format!("not a repair step: {e}")))?;
        match request {
            RepairRequest::RepairPlan {
                run,
                execution,
                input,
            } => {
                self.authenticate(&execution, &run).await?;
                self.plan(&run, &input).await
            }
            RepairRequest::RepairRange(range) => {
                self.authenticate(&range.execution, &range.run).await?;
                self.range(range, deadline).await
            }
            RepairRequest::RepairReport {
                run,
                execution,
                error,
            } => {
                self.authenticate(&execution, &run).await?;
                self.report(&run, error.as_ref()).await
            }
        }
    }

    /// Acts on a step only while the execution it names runs, and is an
    /// execution of this set's repair state machine in this region, named
    /// as its run: anyone else allowed to invoke the function (a step is an
    /// ordinary invoke) cannot start a scan or write the run's records.
    /// Step Functions says so (DescribeExecution); an answer is trusted for
    /// [`EXECUTION_FRESH`].
    async fn authenticate(&self, execution: &str, run: &str) -> Result<(), Diagnostic> {
        let state_machine = format!("toastrep-{}-repair", self.set.set);
        let refuse = |why: String| {
            Err(fail(
                "UnauthenticatedRepairStep",
                format!("repair step for run {run:?} refused: {why}"),
            ))
        };
        // arn:PARTITION:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME
        let parts: Vec<&str> = execution.split(':').collect();
        let [
            "arn",
            _partition,
            "states",
            region,
            account,
            "execution",
            machine,
            name,
        ] = parts.as_slice()
        else {
            return refuse(format!(
                "{execution:?} is not the ARN of a Step Functions execution"
            ));
        };
        if *region != self.region || *account != self.set.account || *machine != state_machine {
            return refuse(format!(
                "{execution} is not an execution of {state_machine} in {} of account {}",
                self.region, self.set.account
            ));
        }
        if *name != run {
            return refuse(format!("{execution} is not run {run}"));
        }
        if let Some(seen) = self.executions.lock().await.get(execution)
            && seen.elapsed() < EXECUTION_FRESH
        {
            return Ok(());
        }
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|e| {
                fail(
                    "UnauthenticatedRepairStep",
                    format!(
                        "repair step for run {run:?} refused: DescribeExecution {execution}: {}",
                        aws_sdk_sfn::error::DisplayErrorContext(e)
                    ),
                )
            })?;
        let running = described.status() == &aws_sdk_sfn::types::ExecutionStatus::Running;
        let ours = described
            .state_machine_arn()
            .ends_with(&format!(":stateMachine:{state_machine}"));
        if !(running && ours) {
            return refuse(format!(
                "{execution} is {} ({})",
                described.status().as_str(),
                described.state_machine_arn()
            ));
        }
        self.executions
            .lock()
            .await
            .insert(execution.to_owned(), tokio::time::Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sns_delivery_is_never_a_repair_step() {
        // What SNS delivers is its envelope: a writer's message is inside
        // it, so no bucket writer can make the function run a repair step.
        for fixture in [
            include_str!("../../replication/tests/fixtures/sns-put.json"),
            include_str!("../../replication/tests/fixtures/sns-multi.json"),
            include_str!("../../replication/tests/fixtures/sns-test-event.json"),
        ] {
            let event: Value = serde_json::from_str(fixture).unwrap();
            assert!(!is_repair(&event));
        }
        assert!(is_repair(&json!({"toastrep": "repair-plan", "run": "r"})));
    }

    #[test]
    fn a_run_id_never_leaves_its_prefix() {
        assert!(run_id("sync-1796176966940").is_ok());
        assert!(run_id("4f1c2a9e-7b7d-4f0e-9a51-2f0c6f1f3a7b").is_ok());
        for bad in ["", "../last", "a/b", "x".repeat(81).as_str()] {
            assert!(run_id(bad).is_err(), "{bad}");
        }
    }
}
