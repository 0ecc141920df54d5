//! The cloud repair in the simulation: a region's repair state machine as
//! `templates/base.yaml` defines it (plan, a Distributed Map of ranges
//! each invoked until `done`, report), driving the function's own
//! [`RepairSteps`] over the simulated S3, an artifact bucket that fails as
//! a real one can, and a control plane that knows which executions run.
//!
//! As on AWS, a step failing with `RepairStepFailed` is retried with the
//! state machine's backoff; a range that leaves keys unrepaired fails its
//! map item, and the run reports as not ok: the next run repairs what it
//! left.

use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::executor::yield_now;
use super::s3::SimS3;
use super::services::MemoryArtifacts;
use crate::clock::Clock;
use crate::engine::{Replicator, SetBuckets};
use crate::function::repair::steps::{RepairSteps, StepError, Stepped, StepsSetup};
use crate::function::repair::{ManifestItem, RangeRequest, RepairRequest, RunReport};
use crate::store::services::{Artifacts, ControlPlane, Execution, ServiceError, ServiceResult};

/// Attempts of one step: the first, and the Retry's `MaxAttempts` of 4.
const STEP_ATTEMPTS: u32 = 5;
/// The Retry's `IntervalSeconds` (2) and `BackoffRate` (2), in ms.
const RETRY_INTERVAL_MS: i64 = 2_000;
/// The function's timeout: each invocation's deadline is this far off.
const FUNCTION_TIMEOUT_MS: i64 = 900_000;
/// The base stack's default `RepairToleratedFailurePercentage`.
const TOLERATED_FAILURE_PERCENT: usize = 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A region's artifact bucket that fails `fail` calls in 1,000: half
/// before the call acts, half after (a write that landed, reported lost).
#[derive(Debug, Clone)]
pub struct FlakyArtifacts {
    pub inner: MemoryArtifacts,
    faults: Arc<Mutex<(fastrand::Rng, u32)>>,
}

enum Fault {
    None,
    Before,
    After,
}

impl FlakyArtifacts {
    pub fn new(seed: u64) -> FlakyArtifacts {
        FlakyArtifacts {
            inner: MemoryArtifacts::default(),
            faults: Arc::new(Mutex::new((fastrand::Rng::with_seed(seed), 0))),
        }
    }

    /// Calls in 1,000 that fail from now on.
    pub fn set_faults(&self, fail: u32) {
        lock(&self.faults).1 = fail;
    }

    fn roll(&self) -> Fault {
        let (rng, fail) = &mut *lock(&self.faults);
        if rng.u32(0..1000) >= *fail {
            Fault::None
        } else if rng.bool() {
            Fault::Before
        } else {
            Fault::After
        }
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        key: &str,
        act: impl Future<Output = ServiceResult<T>>,
    ) -> ServiceResult<T> {
        let failed = || Err(ServiceError::new(operation, key, "503 Slow Down"));
        match self.roll() {
            Fault::None => act.await,
            Fault::Before => {
                yield_now().await;
                failed()
            }
            Fault::After => {
                act.await?;
                failed()
            }
        }
    }
}

impl Artifacts for FlakyArtifacts {
    async fn put_empty(&self, key: &str) -> ServiceResult<()> {
        self.call("PutObject", key, self.inner.put_empty(key)).await
    }

    async fn count(&self, prefix: &str, at_most: u32) -> ServiceResult<u32> {
        let counted = self.inner.count(prefix, at_most);
        self.call("ListObjectsV2", prefix, counted).await
    }

    async fn exists(&self, key: &str) -> ServiceResult<bool> {
        self.call("HeadObject", key, self.inner.exists(key)).await
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> ServiceResult<()> {
        let put = self.inner.put(key, body, content_type);
        self.call("PutObject", key, put).await
    }

    async fn get(&self, key: &str) -> ServiceResult<Option<Vec<u8>>> {
        self.call("GetObject", key, self.inner.get(key)).await
    }

    async fn list(&self, prefix: &str) -> ServiceResult<Vec<String>> {
        self.call("ListObjectsV2", prefix, self.inner.list(prefix))
            .await
    }

    async fn create(&self, key: &str, body: Vec<u8>, content_type: &str) -> ServiceResult<bool> {
        let created = self.inner.create(key, body, content_type);
        self.call("PutObject", key, created).await
    }
}

/// Lambda and Step Functions as the repair steps see them: every region's
/// function may be invoked by every member region's topic, and an
/// execution runs from its start until it reports.
#[derive(Debug, Clone)]
pub struct SimControl {
    policy: String,
    running: Arc<Mutex<BTreeSet<String>>>,
}

impl SimControl {
    pub fn new(set: &SetBuckets, regions: &[String]) -> SimControl {
        let statements: Vec<Value> = regions
            .iter()
            .map(|region| {
                let topic = format!("arn:aws:sns:{region}:{}:{}", set.account, set.topic());
                json!({"Effect": "Allow", "Condition": {"ArnLike": {"AWS:SourceArn": topic}}})
            })
            .collect();
        SimControl {
            policy: json!({ "Statement": statements }).to_string(),
            running: Arc::default(),
        }
    }

    fn start(&self, execution: &str) {
        lock(&self.running).insert(execution.to_owned());
    }

    fn finish(&self, execution: &str) {
        lock(&self.running).remove(execution);
    }
}

impl ControlPlane for SimControl {
    async fn function_policy(&self, _function: &str) -> ServiceResult<String> {
        yield_now().await;
        Ok(self.policy.clone())
    }

    async fn execution(&self, arn: &str) -> ServiceResult<Execution> {
        yield_now().await;
        let running = lock(&self.running).contains(arn);
        // arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME
        let machine = arn.split(':').take(7).collect::<Vec<_>>().join(":");
        Ok(Execution {
            running,
            status: if running { "RUNNING" } else { "SUCCEEDED" }.to_owned(),
            state_machine_arn: machine.replacen(":execution:", ":stateMachine:", 1),
        })
    }
}

/// One run of one region's repair state machine.
pub struct Run {
    pub region: String,
    pub run: String,
    pub artifacts: FlakyArtifacts,
    pub control: SimControl,
    pub clock: SimS3,
    /// The longest a range invocation scans (`RepairInvocationSeconds`).
    pub budget_ms: i64,
    pub deep: bool,
    /// The order the map starts its items in.
    pub shuffle: u64,
}

/// What a run came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    pub region: String,
    /// The report said ok.
    pub ok: bool,
    /// Steps retried after `RepairStepFailed`.
    pub retried: u64,
    /// Map items that failed.
    pub items_failed: usize,
    /// The run's report, if it got that far.
    pub report: Option<RunReport>,
    /// The error the execution failed with, if it did.
    pub error: Option<String>,
}

impl Run {
    /// The execution's ARN, as `$$.Execution.Id` gives it.
    pub fn execution(&self, set: &SetBuckets) -> String {
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.region,
            set.account,
            set.repair_state_machine(),
            self.run
        )
    }

    /// A fresh instance of the region's function, as a cold start makes.
    pub fn steps<'a>(
        &self,
        replicator: &'a Replicator<SimS3>,
    ) -> RepairSteps<'a, SimS3, FlakyArtifacts, SimControl> {
        RepairSteps::new(
            replicator,
            StepsSetup {
                region: self.region.clone(),
                artifacts: self.artifacts.clone(),
                artifact_bucket: format!("artifacts-{}", self.region),
                function: format!("toastrep-{}-replicator", replicator.set().set),
                budget_ms: self.budget_ms,
                concurrency: 2,
                control: self.control.clone(),
                clock: Arc::new(self.clock.clone()),
            },
        )
    }

    /// Runs the execution to its end on `replicator` (the region's
    /// function).
    pub async fn execute(self, replicator: Rc<Replicator<SimS3>>) -> RunOutcome {
        let execution = self.execution(replicator.set());
        let steps = self.steps(&replicator);
        let mut outcome = RunOutcome {
            region: self.region.clone(),
            ..RunOutcome::default()
        };
        self.control.start(&execution);
        let result = self.states(&steps, &execution, &mut outcome).await;
        self.control.finish(&execution);
        if let Err(error) = result {
            outcome.error = Some(format!("{}: {error}", error.error_type()));
        }
        let report = format!("repair/runs/{}/report.json", self.run);
        outcome.report = self
            .artifacts
            .inner
            .get(&report)
            .await
            .ok()
            .flatten()
            .and_then(|body| serde_json::from_slice(&body).ok());
        outcome
    }

    /// Plan, Ranges, Report; the error that ends the execution, if one does.
    async fn states(
        &self,
        steps: &RepairSteps<'_, SimS3, FlakyArtifacts, SimControl>,
        execution: &str,
        outcome: &mut RunOutcome,
    ) -> Result<(), StepError> {
        let plan = json!({
            "toastrep": "repair-plan", "run": self.run, "execution": execution,
            "input": {"deep": self.deep},
        });
        let plan = self.invoke(steps, plan, &mut outcome.retried).await?.answer;
        // The map's ItemReader: Step Functions' own read of the manifest.
        let manifest = plan["manifest"].as_str().unwrap_or_default();
        let body = self
            .artifacts
            .inner
            .get(manifest)
            .await?
            .unwrap_or_default();
        let mut items: Vec<ManifestItem> = serde_json::from_slice(&body)
            .map_err(|e| StepError::Record(format!("the manifest: {e}")))?;
        fastrand::Rng::with_seed(self.shuffle).shuffle(&mut items);
        let ranges = items.len();
        let regions: Vec<String> = serde_json::from_value(plan["regions"].clone())
            .map_err(|e| StepError::Record(e.to_string()))?;
        let requests = items.into_iter().map(|item| RangeRequest {
            run: self.run.clone(),
            execution: execution.to_owned(),
            regions: regions.clone(),
            index: item.index,
            range: item.range,
            resume_after: None,
            part: 0,
            sample_every: plan["sample_every"].as_u64().unwrap_or(100),
            deep: self.deep,
            done: false,
            failed: false,
        });
        let items = futures::future::join_all(requests.map(|r| self.item(steps, r))).await;
        outcome.retried += items.iter().map(|(_, retried)| retried).sum::<u64>();
        outcome.items_failed = items.iter().filter(|(ok, _)| !ok).count();
        let error = (outcome.items_failed * 100 > ranges * TOLERATED_FAILURE_PERCENT).then(|| {
            json!({"Error": "States.ExceedToleratedFailureThreshold",
                   "Cause": format!("{} of {ranges} items failed", outcome.items_failed)})
        });
        let report = json!({
            "toastrep": "repair-report", "run": self.run, "execution": execution, "error": error,
        });
        match self.invoke(steps, report, &mut outcome.retried).await {
            Ok(_) => outcome.ok = true,
            Err(StepError::RepairIncomplete { .. }) => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// One map item: its range invoked until `done`; whether it succeeded,
    /// and the steps retried.
    async fn item(
        &self,
        steps: &RepairSteps<'_, SimS3, FlakyArtifacts, SimControl>,
        request: RangeRequest,
    ) -> (bool, u64) {
        let mut retried = 0;
        let mut payload = serde_json::to_value(RepairRequest::RepairRange(request))
            .expect("a range request is JSON");
        loop {
            match self.invoke(steps, payload, &mut retried).await {
                Ok(Stepped { answer, .. }) if answer["done"] == json!(true) => {
                    return (true, retried);
                }
                Ok(Stepped { answer, .. }) => payload = answer,
                Err(_) => return (false, retried),
            }
        }
    }

    /// One Task state: the invocation, retried as the state machine's
    /// Retry retries it.
    async fn invoke(
        &self,
        steps: &RepairSteps<'_, SimS3, FlakyArtifacts, SimControl>,
        payload: Value,
        retried: &mut u64,
    ) -> Result<Stepped, StepError> {
        let mut wait = RETRY_INTERVAL_MS;
        for attempt in 1.. {
            let deadline = self.clock.now_ms() + FUNCTION_TIMEOUT_MS;
            match steps.handle(payload.clone(), deadline).await {
                Err(error)
                    if error.error_type() == "RepairStepFailed" && attempt < STEP_ATTEMPTS =>
                {
                    *retried += 1;
                    self.clock.sleep_until(self.clock.now_ms() + wait).await;
                    wait *= 2;
                }
                answer => return answer,
            }
        }
        unreachable!("the loop returns")
    }
}
