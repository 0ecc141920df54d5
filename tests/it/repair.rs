//! The repair in the cloud: each region's state machine (a Distributed Map
//! over key ranges) repairs its bucket, on a schedule or from
//! `sync --in-cloud`; the function's metrics; the alarms and the dashboard.

use std::time::Duration;

use serde_json::{Value, json};
use toastrep::ops::health::StatusResult;
use toastrep::ops::sync::CloudRun;
use toastrep_replication::protocol::Reason;

use crate::harness::{self, ACCOUNT, Json, REGIONS, eventually, scheduler, unique_name};
use crate::sync::Emu;

/// First characters spread over the first run's ranges (by first character).
const FIRSTS: [char; 10] = ['0', '5', 'B', 'J', 'Q', 'X', 'b', 'f', 'n', 'w'];

/// The replicator's log lines in `region`.
async fn log_lines(name: &str, region: &str) -> Vec<String> {
    let function = format!("toastrep-{name}-replicator");
    let config = harness::lambda(region)
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunctionConfiguration");
    let group = config
        .logging_config()
        .and_then(|c| c.log_group())
        .map_or_else(|| format!("/aws/lambda/{function}"), str::to_owned);
    let mut lines = Vec::new();
    let mut token = None;
    loop {
        let Ok(page) = harness::logs(region)
            .filter_log_events()
            .log_group_name(&group)
            .set_next_token(token)
            .send()
            .await
        else {
            return lines;
        };
        lines.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned)),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return lines;
        }
    }
}

/// The Embedded Metric Format documents among `lines`.
fn emf_documents(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|d| d.get("_aws").is_some())
        .collect()
}

/// Every metric a document declares, with its dimension sets, checked
/// against EMF's rules: each declared metric and dimension has a value.
fn declared(document: &Value) -> Vec<(String, Vec<Vec<String>>)> {
    let directives = document["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics is an array");
    assert!(document["_aws"]["Timestamp"].is_i64(), "{document}");
    let mut metrics = Vec::new();
    for directive in directives {
        assert_eq!(directive["Namespace"], "toastrep");
        let sets: Vec<Vec<String>> =
            serde_json::from_value(directive["Dimensions"].clone()).expect("dimension sets");
        for set in &sets {
            for dimension in set {
                assert!(
                    document[dimension].is_string(),
                    "{dimension} has no value: {document}"
                );
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap().to_owned();
            let value = &document[&name];
            assert!(
                value.is_number()
                    || value
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_number)),
                "{name} has no numeric value: {document}"
            );
            metrics.push((name, sets.clone()));
        }
    }
    metrics
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_in_cloud_repairs_a_region_that_slept_through_uploads_over_many_ranges() {
    let emu = Emu::shared();
    let name = unique_name("cloud");
    let cleanup = emu.cleanup(&name);
    // Two ranges at once per region: every range is a function process on
    // the one emulator the other tests share.
    emu.deploy_with(&name, &["--repair-concurrency", "2"]);

    // eu-west-2's function hears nothing while 100 objects are uploaded all
    // over the set, under keys spread over the key space.
    let uploads: Vec<(String, &str)> = (0..100)
        .map(|i| {
            let region = REGIONS[i % REGIONS.len()];
            (
                format!("{}{i:03}/{region}", FIRSTS[i % FIRSTS.len()]),
                region,
            )
        })
        .collect();
    let before = emu.upload_while_asleep(&name, "eu-west-2", &uploads).await;
    let missing = 100 - before[1].len();
    assert!(
        missing >= 60,
        "eu-west-2 should have missed the others' uploads, holds {}",
        before[1].len()
    );

    // One run: every region's state machine repairs its own bucket.
    let (report, code) = emu.sync(&name, &["--in-cloud"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report.keys_scanned, 100, "{report}");
    assert_eq!(report.copies_made, missing as u64, "{report}");
    assert!(report.failures.is_empty(), "{report}");
    assert!(
        report
            .copies
            .iter()
            .all(|c| c.destination == "eu-west-2" && c.reason == Reason::Missing)
    );
    let executions = &report.in_cloud.as_ref().unwrap().executions;
    assert_eq!(executions.len(), 3);
    for execution in executions {
        assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
        let ranges = execution.ranges.unwrap();
        // A Distributed Map over many ranges, every one repaired.
        assert!(ranges.total > 1, "{execution:?}");
        assert_eq!(ranges.succeeded, ranges.total, "{execution:?}");
        assert_eq!(ranges.failed, 0, "{execution:?}");
    }
    let after = emu.settle(&name).await;
    for listing in &after {
        assert_eq!(listing, &after[0], "the regions differ after the repair");
    }
    assert_eq!(after[1].len(), 100);

    // Converged: a second run copies nothing.
    let (again, code) = emu.sync(&name, &["--in-cloud"]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again.copies_made, 0, "{again}");
    assert!(again.keys_scanned >= 100);

    // status shows each region's last run.
    let (status, code) = emu.toastrep_json::<StatusResult>(&["status", "--name", &name]);
    assert_eq!(code, Some(0), "{status}");
    let again_run = &again.in_cloud.as_ref().unwrap().run;
    for region in &status.regions {
        let run = region.last_repair.as_ref().expect("a last repair");
        assert!(run.ok, "{region:?}");
        assert_eq!(&run.run, again_run, "{region:?}");
        assert_eq!(run.copies_made, 0, "{region:?}");
    }

    // The metrics: the replicator's copies into us-east-1 (from the other
    // two regions), and eu-west-2's first repair run, as EMF documents.
    let lines = eventually(
        "EMF lines in us-east-1",
        Duration::from_secs(60),
        || async {
            let lines = log_lines(&name, "us-east-1").await;
            emf_documents(&lines)
                .iter()
                .any(|d| d["Pair"] == "eu-west-2->us-east-1")
                .then_some(lines)
        },
    )
    .await;
    let documents = emf_documents(&lines);
    let pair = documents
        .iter()
        .find(|d| d["Pair"] == "eu-west-2->us-east-1" && d.get("Copies").is_some())
        .expect("a pair document");
    assert_eq!(pair["SetName"], name.as_str());
    let metrics = declared(pair);
    let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    for metric in [
        "ReplicationLatency",
        "Copies",
        "BytesCopied",
        "DeletesCarried",
        "FailuresRetryable",
        "FailuresPermanent",
    ] {
        assert!(names.contains(&metric), "{metric} missing from {pair}");
    }
    assert!(
        metrics
            .iter()
            .all(|(_, sets)| sets.contains(&vec!["SetName".to_owned(), "Pair".to_owned()]))
    );
    let latency = pair["ReplicationLatency"].as_array().unwrap();
    assert!(!latency.is_empty() && latency.iter().all(|v| v.as_f64().unwrap() >= 0.0));
    assert!(
        documents
            .iter()
            .any(|d| d["Reason"].is_string() && declared(d).iter().any(|(n, _)| n == "Skips")),
        "no skips-by-reason document"
    );
    let repair_lines = log_lines(&name, "eu-west-2").await;
    let repair = emf_documents(&repair_lines);
    assert!(
        repair.iter().any(|d| d["Pair"]
            .as_str()
            .is_some_and(|p| p.ends_with("->eu-west-2"))
            && d["RepairCopies"].as_u64().is_some_and(|c| c > 0)),
        "no RepairCopies document in eu-west-2"
    );
    let run = repair
        .iter()
        .find(|d| d["RepairRunCopies"].as_u64() == Some(missing as u64))
        .expect("the first run's summary document");
    assert_eq!(run["Region"], "eu-west-2");
    declared(run);

    cleanup.teardown();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_alarms_and_dashboard_come_and_go_with_the_set() {
    let emu = Emu::shared();
    let name = unique_name("sched");
    let cleanup = emu.cleanup(&name);
    let zip = harness::lambda_zip();
    let regions = REGIONS.join(",");
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--name",
            &name,
            "--regions",
            &regions,
            "--lambda-zip",
            zip.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = emu.toastrep(&args);
        assert!(out.status.success(), "deploy {extra:?} failed");
    };
    deploy(&[
        "--repair-schedule",
        "rate(6 hours)",
        "--repair-concurrency",
        "2",
    ]);
    for region in REGIONS {
        let schedule = scheduler(region)
            .get_schedule()
            .name(format!("toastrep-{name}-repair"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the schedule in {region}: {e:?}"));
        assert_eq!(schedule.schedule_expression(), Some("rate(6 hours)"));
        let target = schedule.target().expect("a target");
        assert_eq!(
            target.arn(),
            format!("arn:aws:states:{region}:{ACCOUNT}:stateMachine:toastrep-{name}-repair")
        );
    }
    let alarms = |region: &'static str| {
        let name = name.clone();
        async move {
            let out = harness::cloudwatch(region)
                .describe_alarms()
                .alarm_name_prefix(format!("toastrep-{name}-"))
                .send()
                .await
                .expect("DescribeAlarms");
            let mut names: Vec<String> = out
                .metric_alarms()
                .iter()
                .filter_map(|a| a.alarm_name().map(str::to_owned))
                .collect();
            names.sort();
            names
        }
    };
    for region in REGIONS {
        let names = alarms(region).await;
        for kind in [
            "dead-letters",
            "errors",
            "latency",
            "repair-failed",
            "repair-copies",
            "delete-breaker",
        ] {
            let alarm = format!("toastrep-{name}-{kind}-{region}");
            assert!(
                names.contains(&alarm),
                "{alarm} missing in {region}: {names:?}"
            );
        }
    }
    // One dashboard for the set, in the region that sorts first.
    let dashboards = |region: &'static str| {
        let name = name.clone();
        async move {
            harness::cloudwatch(region)
                .list_dashboards()
                .dashboard_name_prefix(format!("toastrep-{name}"))
                .send()
                .await
                .expect("ListDashboards")
                .dashboard_entries()
                .iter()
                .filter_map(|d| d.dashboard_name().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    let home = REGIONS.iter().min().unwrap();
    let body = harness::cloudwatch(home)
        .get_dashboard()
        .dashboard_name(format!("toastrep-{name}"))
        .send()
        .await
        .expect("the set's dashboard");
    let body: Value = serde_json::from_str(body.dashboard_body().unwrap()).unwrap();
    let text = body.to_string();
    for metric in [
        "ReplicationLatency",
        "Copies",
        "FailuresRetryable",
        "RepairCopies",
    ] {
        assert!(text.contains(metric), "{metric} is not on the dashboard");
    }
    for region in REGIONS {
        assert!(text.contains(region), "{region} is not on the dashboard");
    }

    // off removes the schedule, and nothing else of the repair.
    deploy(&["--repair-schedule", "off"]);
    for region in REGIONS {
        let gone = scheduler(region)
            .get_schedule()
            .name(format!("toastrep-{name}-repair"))
            .send()
            .await;
        assert!(gone.is_err(), "the schedule in {region} is still there");
    }
    // --no-wait starts the runs and returns; status shows them once done.
    let (started, code) =
        emu.toastrep_json::<CloudRun>(&["sync", "--name", &name, "--in-cloud", "--no-wait"]);
    assert_eq!(code, Some(0), "{started}");
    let run = started.run.clone();
    assert_eq!(started.executions.len(), 3, "{started}");
    eventually(
        "the started runs in status",
        Duration::from_secs(120),
        || async {
            let out = emu.toastrep(&["status", "--name", &name, "--output", "json"]);
            let status: Json<StatusResult> = harness::try_parse(&out)?;
            status
                .regions
                .iter()
                .all(|r| {
                    r.last_repair
                        .as_ref()
                        .is_some_and(|last| last.run == run && last.ok)
                })
                .then_some(())
        },
    )
    .await;
    // A redeploy without the flag keeps it off.
    deploy(&[]);
    assert!(
        scheduler(REGIONS[0])
            .get_schedule()
            .name(format!("toastrep-{name}-repair"))
            .send()
            .await
            .is_err()
    );

    cleanup.teardown();
    for region in REGIONS {
        assert_eq!(
            alarms(region).await,
            Vec::<String>::new(),
            "alarms left in {region}"
        );
        assert_eq!(
            dashboards(region).await,
            Vec::<String>::new(),
            "dashboard left in {region}"
        );
        let machines = harness::sfn(region)
            .list_state_machines()
            .send()
            .await
            .expect("ListStateMachines");
        assert!(
            machines
                .state_machines()
                .iter()
                .all(|m| !m.name().contains(&name)),
            "a state machine of {name} is left in {region}"
        );
    }
}

/// A repair step is an ordinary invoke of the function: anyone allowed to
/// invoke it could ask for one. The function acts on a step only while the
/// execution it names, of the set's own state machine in its region and
/// named as its run, is running.
#[tokio::test(flavor = "multi_thread")]
async fn a_repair_step_from_anyone_but_a_running_execution_is_refused() {
    use crate::replicator::Set;

    let set = Set::deploy("rep-auth", &["us-east-1", "eu-west-2"], &[]);
    let region = "us-east-1";
    let machine = format!("toastrep-{}-repair", set.name);
    let other = format!("toastrep-{}x-repair", set.name);
    let arn = |machine: &str, name: &str| {
        format!("arn:aws:states:{region}:{ACCOUNT}:execution:{machine}:{name}")
    };
    for (run, execution) in [
        // None at all.
        ("forged-1", String::new()),
        // Another state machine's, another run's, and one that never ran.
        ("forged-2", arn(&other, "forged-2")),
        ("forged-3", arn(&machine, "another-run")),
        ("forged-4", arn(&machine, "forged-4")),
    ] {
        let step = json!({"toastrep": "repair-plan", "run": run, "execution": execution,
            "input": {"deep": true}});
        let (error, payload) = set.invoke(region, &step).await;
        assert!(error.is_some(), "{run}: {payload}");
        assert!(
            payload.to_string().contains("UnauthenticatedRepairStep"),
            "{run}: {payload}"
        );
        // Nothing was written for it.
        let listed = harness::s3(region)
            .list_objects_v2()
            .bucket(harness::artifact_bucket(&set.name, region))
            .prefix(format!("repair/runs/{run}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.key_count(), Some(0), "{run}");
    }
    // The state machine's own runs still repair.
    let emu = Emu::shared();
    let (report, code) = emu.sync(&set.name, &["--in-cloud"]);
    assert_eq!(code, Some(0), "{report}");
}
