//! The cloud repair's three steps, as a region's state machine invokes the
//! function (see [`super`] for the protocol). Each region repairs only its
//! own bucket, reading every member region: the role's own permissions
//! (write here, read the others through the grant stacks) are all it needs.
//!
//! The member regions are the topics allowed to invoke the function (its
//! resource policy: the grant stacks' permissions and its own region's):
//! exactly the regions whose buckets its role may read. A request naming
//! any other region is refused.
//!
//! What a run keeps lives in the region's artifact bucket, under `repair/`:
//! - `repair/runs/RUN/plan.json` and `ranges.json` (the map's manifest);
//! - `repair/runs/RUN/parts/INDEX-PART.json`: one per range invocation;
//! - `repair/runs/RUN/report.json`, and a copy in `repair/last.json`;
//! - `repair/bounds.json`: range bounds learned from the last whole run.
//!
//! The steps run on the [`services`](crate::store::services) traits and an
//! injected clock: the function runs them on AWS, the simulation in memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    ManifestItem, Plan, RangePart, RangeRequest, RepairRequest, RunReport, first_bounds,
    learned_bounds, sample_every, summarise,
};
use crate::clock::Clock;
use crate::engine::{KeyRange, Replicator, ScanLimit, ScanOptions, ScanStep, SetBuckets};
use crate::function::metrics::repair_documents;
use crate::store::ObjectStore;
use crate::store::services::{Artifacts, ControlPlane, ServiceError};

/// A range invocation stops scanning this long (ms) before the
/// invocation's deadline, so the keys in flight finish and its part is
/// written.
const DEADLINE_MARGIN_MS: i64 = 60_000;

/// How long (ms) a range invocation trusts the member regions it read.
const MEMBERS_FRESH_MS: i64 = 300_000;

/// How long (ms) a running execution, once Step Functions said so, is
/// trusted without asking again: a range's invocations follow each other
/// closely, and DescribeExecution is rate-limited.
const EXECUTION_FRESH_MS: i64 = 60_000;

/// Why a step failed. Its [`StepError::error_type`] is what the state
/// machine sees: it retries `RepairStepFailed` and nothing else.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The request is not one the function acts on.
    #[error("{0}")]
    Invalid(String),
    /// The request does not come from a running execution of the set's
    /// state machine.
    #[error("repair step for run {run:?} refused: {why}")]
    Unauthenticated { run: String, why: String },
    /// A service call failed (retried by the state machine).
    #[error(transparent)]
    Failed(#[from] ServiceError),
    /// A run's record could not be read or written as JSON.
    #[error("{0}")]
    Record(String),
    /// The range finished with keys unrepaired or a region unread.
    #[error("{0}")]
    RangeIncomplete(String),
    /// The run's report is not ok: its summary, and the run's metric
    /// documents, printed all the same.
    #[error("{summary}")]
    RepairIncomplete {
        summary: String,
        metrics: Vec<Value>,
    },
}

impl StepError {
    /// The error type the state machine matches on.
    pub fn error_type(&self) -> &'static str {
        match self {
            StepError::Invalid(_) => "InvalidRepairRequest",
            StepError::Unauthenticated { .. } => "UnauthenticatedRepairStep",
            StepError::Failed(_) | StepError::Record(_) => "RepairStepFailed",
            StepError::RangeIncomplete(_) => "RangeIncomplete",
            StepError::RepairIncomplete { .. } => "RepairIncomplete",
        }
    }
}

/// A step's answer to the state machine, and the metric documents (EMF) to
/// print.
#[derive(Debug)]
pub struct Stepped {
    pub answer: Value,
    pub metrics: Vec<Value>,
}

impl From<Value> for Stepped {
    fn from(answer: Value) -> Stepped {
        Stepped {
            answer,
            metrics: Vec::new(),
        }
    }
}

/// Range bounds learned from a whole run.
#[derive(Debug, serde::Deserialize, Serialize)]
struct Bounds {
    run: String,
    bounds: Vec<String>,
}

/// Whether `payload` is a repair step rather than an SNS event. SNS
/// delivers its envelope (`Records`), never a top-level `toastrep`.
pub fn is_repair(payload: &Value) -> bool {
    payload.get("toastrep").is_some()
}

/// A run's id names objects: only what an execution name can be, so it
/// never escapes its prefix.
fn run_id(run: &str) -> Result<&str, StepError> {
    let fine = !run.is_empty()
        && run.len() <= 80
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(run)
    } else {
        Err(StepError::Invalid(format!(
            "run {run:?} is not an execution name (letters, digits, - and _)"
        )))
    }
}

/// The repair steps of one region's function.
pub struct RepairSteps<'a, S, A, C> {
    pub replicator: &'a Replicator<S>,
    pub region: String,
    pub set: SetBuckets,
    /// This region's artifact bucket, and its name for the answers.
    pub artifacts: A,
    pub artifact_bucket: String,
    /// The function's name, whose resource policy names the members.
    pub function: String,
    /// The longest (ms) a range invocation scans before it hands on its
    /// cursor.
    pub budget_ms: i64,
    /// Keys examined at once within a range.
    pub concurrency: usize,
    pub control: C,
    pub clock: Arc<dyn Clock>,
    /// The member regions, and when (ms) they were read.
    members: Mutex<Option<(i64, BTreeSet<String>)>>,
    /// Executions Step Functions said were running, and when (ms).
    executions: Mutex<HashMap<String, i64>>,
}

/// Where a region's repair steps read and write, and what they may take.
pub struct StepsSetup<A, C> {
    pub region: String,
    pub artifacts: A,
    pub artifact_bucket: String,
    pub function: String,
    pub budget_ms: i64,
    pub concurrency: usize,
    pub control: C,
    pub clock: Arc<dyn Clock>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'a, S: ObjectStore, A: Artifacts, C: ControlPlane> RepairSteps<'a, S, A, C> {
    pub fn new(replicator: &'a Replicator<S>, setup: StepsSetup<A, C>) -> Self {
        RepairSteps {
            set: replicator.set().clone(),
            replicator,
            region: setup.region,
            artifacts: setup.artifacts,
            artifact_bucket: setup.artifact_bucket,
            function: setup.function,
            budget_ms: setup.budget_ms,
            concurrency: setup.concurrency,
            control: setup.control,
            clock: setup.clock,
            members: Mutex::new(None),
            executions: Mutex::new(HashMap::new()),
        }
    }

    /// Runs the step `payload` asks for; `deadline` is the invocation's,
    /// in Unix milliseconds.
    pub async fn handle(&self, payload: Value, deadline: i64) -> Result<Stepped, StepError> {
        let request: RepairRequest = serde_json::from_value(payload)
            .map_err(|e| StepError::Invalid(format!("not a repair step: {e}")))?;
        match request {
            RepairRequest::RepairPlan {
                run,
                execution,
                input,
            } => {
                self.authenticate(&execution, &run).await?;
                self.plan(&run, &input).await.map(Stepped::from)
            }
            RepairRequest::RepairRange(range) => {
                self.authenticate(&range.execution, &range.run).await?;
                self.range(range, deadline).await.map(Stepped::from)
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

    /// The member regions: the set's topics allowed to invoke this
    /// function, read afresh.
    async fn read_members(&self) -> Result<BTreeSet<String>, StepError> {
        let policy = self.control.function_policy(&self.function).await?;
        let policy: Value = serde_json::from_str(&policy)
            .map_err(|e| StepError::Record(format!("the function's policy: {e}")))?;
        let mut members: BTreeSet<String> = policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Condition"]["ArnLike"]["AWS:SourceArn"].as_str())
            .filter_map(|arn| self.set.topic_region(arn))
            .map(str::to_owned)
            .collect();
        members.insert(self.region.clone());
        *lock(&self.members) = Some((self.clock.now_ms(), members.clone()));
        Ok(members)
    }

    /// The member regions as read within [`MEMBERS_FRESH_MS`]: a range's
    /// invocations check their requests against it without a control-plane
    /// call each (GetPolicy is rate-limited), and a warm process still
    /// learns of a region added or removed.
    async fn members(&self) -> Result<BTreeSet<String>, StepError> {
        let now = self.clock.now_ms();
        if let Some((read, members)) = lock(&self.members).as_ref()
            && now - read < MEMBERS_FRESH_MS
        {
            return Ok(members.clone());
        }
        self.read_members().await
    }

    async fn put_json(&self, key: &str, value: &impl Serialize) -> Result<(), StepError> {
        let body = serde_json::to_vec(value).map_err(|e| StepError::Record(e.to_string()))?;
        Ok(self.artifacts.put(key, body, "application/json").await?)
    }

    /// The record at `key`, or `None` if there is none.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StepError> {
        let Some(bytes) = self.artifacts.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StepError::Record(format!("s3://{}/{key}: {e}", self.artifact_bucket)))
    }

    /// Step 1: the ranges, as the map's manifest.
    pub async fn plan(&self, run: &str, input: &Value) -> Result<Value, StepError> {
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
            started_ms: self.clock.now_ms(),
        };
        self.put_json(&format!("repair/runs/{run}/plan.json"), &plan)
            .await?;
        let mut answer =
            serde_json::to_value(&plan).map_err(|e| StepError::Record(e.to_string()))?;
        // `deep` (examine every key) is the execution's choice.
        answer["deep"] = json!(input["deep"].as_bool().unwrap_or(false));
        answer["artifacts"] = json!(self.artifact_bucket);
        tracing::info!(target: "toastrep::repair", run, ranges = plan.ranges, regions = ?plan.regions, "repair planned");
        Ok(answer)
    }

    /// Step 2: one range, until its budget; the answer is the next
    /// request, `done` when the range is finished.
    pub async fn range(
        &self,
        mut request: RangeRequest,
        deadline: i64,
    ) -> Result<Value, StepError> {
        run_id(&request.run)?;
        let own = self.own_index(&request.regions).await?;
        let buckets: Vec<_> = request.regions.iter().map(|r| self.set.bucket(r)).collect();
        // At least one batch of keys goes through, however little time is left.
        let now = self.clock.now_ms();
        let latest = deadline.saturating_sub(DEADLINE_MARGIN_MS).max(now);
        let stop = now.saturating_add(self.budget_ms).min(latest);
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
        part.millis = self.clock.now_ms().saturating_sub(now).max(0) as u64;
        part.done = end.resume_after.is_none();
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
            return Err(StepError::RangeIncomplete(format!(
                "range {} of run {run} left keys unrepaired or a region unread (see repair/runs/{run}/report.json)",
                request.index
            )));
        }
        serde_json::to_value(RepairRequest::RepairRange(request))
            .map_err(|e| StepError::Record(e.to_string()))
    }

    /// Where this region is among a range request's regions, each of which
    /// must be a member of the set: a request naming any other is refused.
    async fn own_index(&self, regions: &[String]) -> Result<usize, StepError> {
        let members = self.members().await?;
        if let Some(stranger) = regions.iter().find(|r| !members.contains(*r)) {
            return Err(StepError::Invalid(format!(
                "{stranger} is not a member region of set {} (members: {members:?})",
                self.set.set
            )));
        }
        regions
            .iter()
            .position(|r| *r == self.region)
            .ok_or_else(|| {
                StepError::Invalid(format!(
                    "the request's regions do not include this one, {}",
                    self.region
                ))
            })
    }

    /// Step 3: the run's report, metrics and the next run's bounds.
    pub async fn report(&self, run: &str, error: Option<&Value>) -> Result<Stepped, StepError> {
        let run = run_id(run)?;
        let Some(plan) = self
            .get_json::<Plan>(&format!("repair/runs/{run}/plan.json"))
            .await?
        else {
            return Err(StepError::Invalid(format!("run {run} has no plan")));
        };
        let keys = self
            .artifacts
            .list(&format!("repair/runs/{run}/parts/"))
            .await?;
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
        let report = summarise(&plan, &self.region, &parts, self.clock.now_ms(), error);
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
        let metrics = repair_documents(
            &self.set.set,
            &self.region,
            &report.tally.copies_by_source,
            report.tally.keys_examined,
            report.tally.copies_made + report.tally.deletes_made,
            report.tally.failure_count + report.ranges_failed as u64,
            report.finished_ms,
        );
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
            Ok(Stepped {
                answer: summary,
                metrics,
            })
        } else {
            // The execution fails, and with it the repair alarm.
            Err(StepError::RepairIncomplete {
                summary: summary.to_string(),
                metrics,
            })
        }
    }

    /// Acts on a step only while the execution it names runs, and is an
    /// execution of this set's repair state machine in this region, named
    /// as its run: anyone else allowed to invoke the function (a step is an
    /// ordinary invoke) cannot start a scan or write the run's records.
    /// Step Functions says so (DescribeExecution); an answer is trusted for
    /// [`EXECUTION_FRESH_MS`].
    async fn authenticate(&self, execution: &str, run: &str) -> Result<(), StepError> {
        let state_machine = self.set.repair_state_machine();
        let refuse = |why: String| {
            Err(StepError::Unauthenticated {
                run: run.to_owned(),
                why,
            })
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
        let now = self.clock.now_ms();
        if lock(&self.executions)
            .get(execution)
            .is_some_and(|seen| now - seen < EXECUTION_FRESH_MS)
        {
            return Ok(());
        }
        let described = match self.control.execution(execution).await {
            Ok(described) => described,
            Err(error) => return refuse(error.to_string()),
        };
        let ours = described
            .state_machine_arn
            .ends_with(&format!(":stateMachine:{state_machine}"));
        if !(described.running && ours) {
            return refuse(format!(
                "{execution} is {} ({})",
                described.status, described.state_machine_arn
            ));
        }
        lock(&self.executions).insert(execution.to_owned(), now);
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
            include_str!("../../../tests/fixtures/sns-put.json"),
            include_str!("../../../tests/fixtures/sns-multi.json"),
            include_str!("../../../tests/fixtures/sns-test-event.json"),
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
