//! The repair state machines as the CLI drives them: start an execution,
//! and look at how it is doing (its status, and its Distributed Map run's
//! item counts).

use super::{Aws, CallError};
use crate::model::regions::Region;

/// An execution as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Step Functions' status: `RUNNING`, `SUCCEEDED`, `FAILED`, ...
    pub status: String,
    /// Its error and cause, once it ended other than in success.
    pub error: Option<String>,
    /// The item counts of its map run, once it has one.
    pub items: Option<ItemCounts>,
}

/// A Distributed Map run's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCounts {
    pub total: i64,
    pub succeeded: i64,
    /// Failed, timed out or aborted.
    pub failed: i64,
    /// Running or pending.
    pub running: i64,
}

impl Aws {
    /// Starts an execution named `run` of state machine `arn` in `region`;
    /// returns the execution's ARN.
    pub async fn start_execution(
        &self,
        region: Region,
        arn: &str,
        run: &str,
        input: &str,
    ) -> Result<String, CallError> {
        let out = self
            .sfn(region)
            .start_execution()
            .state_machine_arn(arn)
            .name(run)
            .input(input)
            .send()
            .await
            .map_err(|e| CallError::of("StartExecution", arn, e))?;
        Ok(out.execution_arn().to_owned())
    }

    /// Execution `arn` in `region` as it is now.
    pub async fn execution(&self, region: Region, arn: &str) -> Result<Execution, CallError> {
        use aws_sdk_sfn::types::ExecutionStatus;
        let sfn = self.sfn(region);
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| CallError::of("DescribeExecution", arn, e))?;
        let ended_badly = !matches!(
            described.status(),
            ExecutionStatus::Succeeded | ExecutionStatus::Running
        );
        let error = ended_badly.then(|| {
            format!(
                "{}: {}",
                described.error().unwrap_or("failed"),
                described.cause().unwrap_or("")
            )
        });
        let runs = sfn
            .list_map_runs()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| CallError::of("ListMapRuns", arn, e))?;
        let mut items = None;
        for map_run in runs.map_runs() {
            let described = sfn
                .describe_map_run()
                .map_run_arn(map_run.map_run_arn())
                .send()
                .await
                .map_err(|e| CallError::of("DescribeMapRun", map_run.map_run_arn(), e))?;
            if let Some(counts) = described.item_counts() {
                items = Some(ItemCounts {
                    total: counts.total(),
                    succeeded: counts.succeeded(),
                    failed: counts.failed() + counts.timed_out() + counts.aborted(),
                    running: counts.running() + counts.pending(),
                });
            }
        }
        Ok(Execution {
            status: described.status().as_str().to_owned(),
            error,
            items,
        })
    }
}
