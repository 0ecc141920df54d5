//! The templates' parameter constraints and the names they build, held
//! against the CLI's own checks and `names.rs`: a value the CLI lets through
//! must never fail as a rolled-back stack, and the CLI must find every
//! resource it names.

use std::collections::BTreeMap;

use regex::Regex;
use serde_yaml::Value;

use super::architecture::Architecture;
use super::function::{
    FunctionSettings, MAX_BREAKER, MAX_KEEP_DAYS, MAX_REPAIR_CONCURRENCY, RETENTION_DAYS,
};
use super::names::{self, SetName};
use super::regions::{self, Region};
use super::schedule;
use super::templates::Template;
use super::topology::{DeployPlan, SetSpec};

const TEMPLATES: [Template; 3] = [Template::Base, Template::Grant, Template::Subscription];

fn document(template: Template) -> Value {
    serde_yaml::from_str(template.body()).expect("the templates are YAML")
}

fn parameter(template: Template, key: &str) -> Value {
    document(template)["Parameters"][key].clone()
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value:?} is a number"))
}

/// A CloudFormation AllowedPattern (a Java regex; these need nothing the
/// regex crate lacks), anchored as CloudFormation anchors it.
fn pattern(template: Template, key: &str) -> Regex {
    let pattern = parameter(template, key)["AllowedPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} has an AllowedPattern"))
        .to_owned();
    Regex::new(&format!("^(?:{pattern})$")).expect("the pattern compiles")
}

fn every_region() -> Vec<Region> {
    ["aws", "aws-cn", "aws-us-gov"]
        .into_iter()
        .flat_map(regions::regions_in)
        .collect()
}

/// The longest set name the CLI accepts for a set in any region.
fn longest_set_name() -> usize {
    let regions = every_region();
    (2..64)
        .take_while(|n| {
            let name = SetName::parse(&"a".repeat(*n)).unwrap();
            names::check_lengths(&name, regions.iter().copied()).is_ok()
        })
        .last()
        .unwrap()
}

#[test]
fn every_template_takes_exactly_the_set_names_the_cli_takes() {
    let longest = longest_set_name();
    let corpus = [
        "ab",
        "a1",
        "media",
        "media-eu-2",
        "a-b-c",
        "x9-y8",
        "a",
        "1a",
        "-ab",
        "ab-",
        "a--b",
        "Media",
        "me_dia",
        "mé",
        "a.b",
        "",
    ];
    for template in TEMPLATES {
        let set_name = parameter(template, "SetName");
        assert_eq!(
            number(&set_name["MaxLength"]) as usize,
            longest,
            "SetName's MaxLength in {template:?}"
        );
        assert_eq!(number(&set_name["MinLength"]), 2, "{template:?}");
        let allowed = pattern(template, "SetName");
        for name in corpus
            .iter()
            .map(|n| (*n).to_owned())
            .chain([longest, longest + 1].map(|n| "a".repeat(n)))
        {
            let cli = SetName::parse(&name).is_ok() && name.len() <= longest;
            let template_takes = allowed.is_match(&name) && (2..=longest).contains(&name.len());
            assert_eq!(cli, template_takes, "set name {name:?} in {template:?}");
        }
    }
}

#[test]
fn the_region_parameters_take_every_region_the_cli_takes() {
    for (template, key) in [
        (Template::Grant, "SourceRegion"),
        (Template::Subscription, "DestinationRegion"),
    ] {
        let allowed = pattern(template, key);
        for region in every_region() {
            assert!(
                allowed.is_match(&region),
                "{region} in {template:?}'s {key}"
            );
        }
    }
}

#[test]
fn the_base_parameters_bound_what_the_cli_bounds() {
    let bounds = |key: &str| {
        let p = parameter(Template::Base, key);
        (number(&p["MinValue"]), number(&p["MaxValue"]))
    };
    let copy = toastrep_replication::MAX_COPY_SIZE;
    assert_eq!(bounds("MultipartThreshold"), (1, copy));
    assert_eq!(bounds("PartSize"), (1, copy));
    assert_eq!(
        bounds("CopyConcurrency"),
        (1, toastrep_replication::MAX_CONCURRENCY as u64)
    );
    assert_eq!(bounds("KeepNoncurrentDays"), (0, u64::from(MAX_KEEP_DAYS)));
    assert_eq!(
        bounds("DeleteBreakerPerMinute"),
        (1, u64::from(MAX_BREAKER))
    );
    assert_eq!(
        bounds("RepairMaxConcurrency"),
        (1, u64::from(MAX_REPAIR_CONCURRENCY))
    );
    let allowed = |key: &str| -> Vec<String> {
        parameter(Template::Base, key)["AllowedValues"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => number(other).to_string(),
            })
            .collect()
    };
    let retention: Vec<String> = RETENTION_DAYS.iter().map(u32::to_string).collect();
    assert_eq!(allowed("LogRetentionDays"), retention);
    let architectures: Vec<String> = Architecture::ALL.iter().map(|a| a.to_string()).collect();
    assert_eq!(allowed("Architecture"), architectures);
    assert_eq!(allowed("LogKeys"), ["hashed", "plain"]);
    assert_eq!(allowed("ReplicateDeletes"), ["true", "false"]);
}

#[test]
fn a_new_set_gets_the_templates_defaults() {
    let spec = SetSpec::parse("demo", &["us-east-1".into(), "eu-west-2".into()]).unwrap();
    let key = toastrep_replication::MarkerKey::for_tests("k");
    let plan = DeployPlan::new(
        spec,
        "k.zip".into(),
        &FunctionSettings::default(),
        Some(&key.into()),
    );
    // The dashboard's body is the set's own; the others are settings.
    let base = plan.bases.iter().find(|b| b.region == "eu-west-2").unwrap();
    let document = document(Template::Base);
    for (key, definition) in document["Parameters"].as_mapping().unwrap() {
        let key = key.as_str().unwrap();
        let Some(default) = definition.get("Default") else {
            continue;
        };
        if key == "DashboardBody" {
            continue;
        }
        let default = match default {
            Value::String(s) => s.clone(),
            other => number(other).to_string(),
        };
        if let Some(given) = base.parameters.get(key) {
            assert_eq!(
                *given, default,
                "{key}: the CLI's default and the template's"
            );
        }
    }
}

#[test]
fn the_schedule_and_alarm_patterns_take_what_the_cli_takes() {
    let schedule_pattern = pattern(Template::Base, "RepairScheduleExpression");
    for expression in [
        "off",
        "rate(1 day)",
        "rate(6 hours)",
        "rate(30 minutes)",
        "cron(0 3 * * ? *)",
        "rate(0 days)",
        "rate(1 days)",
        "rate(2 day)",
        "daily",
        "cron(0 3 * *)",
        "cron((0) 3 * * ? *)",
    ] {
        if schedule::check(expression).is_ok() {
            assert!(
                schedule_pattern.is_match(expression),
                "the CLI takes {expression:?}, the template must too"
            );
        }
    }
    let topic = pattern(Template::Base, "AlarmTopicArn");
    let email = pattern(Template::Base, "AlarmEmail");
    for arn in [
        "",
        "arn:aws:sns:us-east-1:123456789012:pager",
        "arn:aws-cn:sns:cn-north-1:123456789012:a_b-c",
        "arn:aws:sns:us-east-1:12345:pager",
        "arn:aws:sqs:us-east-1:123456789012:q",
    ] {
        if schedule::check_alarm_targets(arn, "").is_ok() {
            assert!(topic.is_match(arn), "the CLI takes {arn:?}");
        }
    }
    for address in [
        "",
        "oncall@example.com",
        "a@b.c",
        "no-at.example.com",
        "a b@c.d",
    ] {
        if schedule::check_alarm_targets("", address).is_ok() {
            assert!(email.is_match(address), "the CLI takes {address:?}");
        }
    }
}

/// The limits AWS puts on the names the templates give resources.
fn limit(property: &str) -> usize {
    match property {
        "BucketName" => 63,
        "RoleName" | "FunctionName" | "Name" => 64,
        "QueueName" | "StateMachineName" => 80,
        "PolicyName" => 128,
        "AlarmName" | "DashboardName" | "TopicName" | "AliasName" => 255,
        "LogGroupName" => 512,
        other => panic!("no limit known for {other}: add AWS's"),
    }
}

/// Every `*Name` a template's resources get from `!Sub`, rendered.
fn built_names(template: Template, values: &BTreeMap<&str, &str>) -> Vec<(String, String)> {
    let document = document(template);
    let mut built = Vec::new();
    for (_, resource) in document["Resources"].as_mapping().unwrap() {
        let Some(properties) = resource["Properties"].as_mapping() else {
            continue;
        };
        for (property, value) in properties {
            let property = property.as_str().unwrap();
            let Value::Tagged(tagged) = value else {
                continue;
            };
            if !property.ends_with("Name") || tagged.tag != "!Sub" {
                continue;
            }
            // `!Sub [text, {variables}]` or `!Sub text`.
            let text = match &tagged.value {
                Value::String(text) => text.clone(),
                Value::Sequence(parts) => parts[0].as_str().unwrap().to_owned(),
                other => panic!("{other:?}"),
            };
            let mut name = text;
            for (variable, value) in values {
                name = name.replace(&format!("${{{variable}}}"), value);
            }
            built.push((property.to_owned(), name));
        }
    }
    built
}

#[test]
fn the_names_the_templates_build_are_the_clis_and_fit_for_the_longest_set_name() {
    let longest = longest_set_name();
    let set = SetName::parse(&"a".repeat(longest)).unwrap();
    let account = "123456789012";
    for region in every_region() {
        let other = if region == "us-east-1" {
            "eu-west-2"
        } else {
            "us-east-1"
        };
        let values = BTreeMap::from([
            ("SetName", set.as_str()),
            ("AWS::Region", region.as_str()),
            ("AWS::AccountId", account),
            ("SourceRegion", other),
            ("DestinationRegion", other),
            ("StackUuid", "0123456789abcdef0123456789abcdef"),
        ]);
        // What the CLI derives itself, each of which a template must build
        // the very same way (the CLI finds the resources by these names).
        let cli = [
            set.data_bucket(region, account),
            set.role(region),
            set.function(),
            set.dead_letter_queue(),
            set.held_deletes_queue(),
            set.breaker_alarm(region),
        ];
        let mut built_by_templates = Vec::new();
        for template in TEMPLATES {
            for (property, name) in built_names(template, &values) {
                assert!(
                    !name.contains("${"),
                    "{name} in {template:?} is fully rendered"
                );
                assert!(
                    name.len() <= limit(&property),
                    "{property} {name} ({} characters) in {region} passes AWS's {}",
                    name.len(),
                    limit(&property)
                );
                // Scoped to the set: IAM policies and teardown rely on it.
                assert!(
                    name.starts_with(&format!("toastrep-{set}"))
                        || name.starts_with(&format!("alias/toastrep-{set}"))
                        || name.starts_with(&format!("/aws/lambda/toastrep-{set}-")),
                    "{property} {name} in {template:?} names the set"
                );
                built_by_templates.push(name);
            }
        }
        for name in cli {
            assert!(
                built_by_templates.contains(&name),
                "names.rs derives {name}, and no template builds it"
            );
        }
    }
}
