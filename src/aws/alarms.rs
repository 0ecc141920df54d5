//! The set's CloudWatch alarms as the CLI reads them.

use super::{Aws, CallError};
use crate::model::regions::Region;

impl Aws {
    /// The state of alarm `name` in `region` (`OK`, `ALARM`,
    /// `INSUFFICIENT_DATA`); `None` when there is no such alarm.
    pub async fn alarm_state(
        &self,
        region: Region,
        name: &str,
    ) -> Result<Option<String>, CallError> {
        let out = self
            .cloudwatch(region)
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .map_err(|e| CallError::of("DescribeAlarms", format!("{name} in {region}"), e))?;
        Ok(out
            .metric_alarms()
            .first()
            .and_then(|a| a.state_value())
            .map(|s| s.as_str().to_owned()))
    }
}
