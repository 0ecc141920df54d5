//! The set's CloudWatch dashboard: replication latency per pair, copies and
//! failures, and the repair's copies, over every region of the set. Each
//! widget searches the `toastrep` namespace (the function's EMF metrics) in
//! each region, so a pair added later shows up without a new body; a region
//! added or removed re-renders it (`deploy`, `add-region`).

use serde_json::{Value, json};

use crate::model::names::SetName;
use crate::model::regions::Region;

/// The dashboard body for set `name` in `regions`, as one JSON string
/// (CloudFormation's `DashboardBody`).
pub fn body(name: &SetName, regions: &[Region]) -> String {
    // In one order whatever order the regions come in: an unchanged set
    // renders an unchanged body.
    let mut regions = regions.to_vec();
    regions.sort();
    let widget = |title: &str, metric: &str, stat: &str, y: u32| {
        let metrics: Vec<Value> = regions
            .iter()
            .map(|region| {
                json!([{
                    "expression": format!(
                        "SEARCH('{{toastrep,SetName,Pair}} SetName=\"{name}\" {metric}','{stat}',300)"
                    ),
                    "region": region,
                }])
            })
            .collect();
        json!({
            "type": "metric",
            "x": 0,
            "y": y,
            "width": 24,
            "height": 6,
            "properties": {"title": title, "metrics": metrics, "region": regions[0]},
        })
    };
    let mut widgets = vec![
        widget(
            "Latency p99 per pair (ms)",
            r#"MetricName="ReplicationLatency""#,
            "p99",
            0,
        ),
        widget("Copies per pair", r#"MetricName="Copies""#, "Sum", 6),
        widget(
            "Failures per pair",
            r#"(MetricName="FailuresRetryable" OR MetricName="FailuresPermanent")"#,
            "Sum",
            12,
        ),
        widget(
            "Repair copies per pair",
            r#"MetricName="RepairCopies""#,
            "Sum",
            18,
        ),
    ];
    // A CloudFormation parameter holds 4,096 bytes: past five regions or so
    // the last widgets give way (the metrics are all still there).
    loop {
        let body = json!({ "widgets": widgets }).to_string();
        if body.len() <= MAX_BODY || widgets.len() == 1 {
            return body;
        }
        widgets.pop();
    }
}

/// The longest value a CloudFormation parameter takes.
const MAX_BODY: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_widget_searches_every_region() {
        let name = SetName::parse("photos").unwrap();
        let regions: Vec<Region> = vec!["eu-west-2".into(), "us-east-1".into()];
        let body: Value = serde_json::from_str(&body(&name, &regions)).unwrap();
        let widgets = body["widgets"].as_array().unwrap();
        assert_eq!(widgets.len(), 4);
        for widget in widgets {
            let metrics = widget["properties"]["metrics"].as_array().unwrap();
            assert_eq!(metrics.len(), 2);
            assert_eq!(metrics[1][0]["region"], "us-east-1");
            assert!(
                metrics[0][0]["expression"]
                    .as_str()
                    .unwrap()
                    .contains("SetName=\"photos\"")
            );
        }
    }

    #[test]
    fn the_body_fits_a_cloudformation_parameter_for_five_regions() {
        let name = SetName::parse("a-twenty-one-letters1").unwrap();
        let regions: Vec<Region> = [
            "ap-southeast-1",
            "ap-northeast-1",
            "eu-central-1",
            "us-east-1",
            "sa-east-1",
        ]
        .map(Region::from)
        .to_vec();
        let body = body(&name, &regions);
        assert!(body.len() <= 4096, "{} bytes", body.len());
        let widgets: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(widgets["widgets"].as_array().unwrap().len(), 4);
    }
}
