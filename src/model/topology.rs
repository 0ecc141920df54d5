//! The whole deployment of a replica set, computed before any AWS call.
//!
//! `render`, `deploy` and `plan` share this one value: which stacks,
//! in which regions, from which template, with which parameters and tags.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use toastrep_replication::MarkerKeys;

use crate::error::InputError;
use crate::model::function::FunctionSettings;
use crate::model::names::{self, SetName};
use crate::model::regions::{self, Region};
use crate::model::templates::Template;

/// Tag keys on every stack of a set. Stacks, not buckets, carry them: they
/// are how a set is found again from its name.
pub const TAG_SET: &str = "toastrep:set";
pub const TAG_STACK: &str = "toastrep:stack";

/// A replica set's name and regions, checked.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SetSpec {
    pub name: SetName,
    pub regions: Vec<Region>,
    pub partition: &'static str,
}

impl SetSpec {
    /// Checks a name and a region list as the user typed them (a set
    /// file's).
    pub fn parse(name: &str, regions: &[String]) -> Result<Self, InputError> {
        let name = SetName::parse(name)?;
        Self::new(name, parse_regions(regions)?)
    }

    /// Checks known regions for a set: at least two, none twice, one
    /// partition, and short enough for every derived name.
    pub fn new(name: SetName, regions: Vec<Region>) -> Result<Self, InputError> {
        let regions = regions::distinct(regions)?;
        if regions.len() < 2 {
            return Err(InputError::new(format!(
                "a replica set needs at least two regions, got {}: pass --regions with two or more, e.g. --regions us-east-1,eu-west-2",
                regions.len()
            )));
        }
        let partition = same_partition(&regions)?;
        names::check_lengths(&name, regions.iter().copied())?;
        Ok(Self {
            name,
            regions,
            partition,
        })
    }
}

/// Checks region names: each known, none twice. Keeps the user's order.
pub fn parse_regions(input: &[String]) -> Result<Vec<Region>, InputError> {
    let regions = input
        .iter()
        .map(|raw| Region::parse(raw))
        .collect::<Result<_, _>>()?;
    regions::distinct(regions)
}

fn same_partition(regions: &[Region]) -> Result<&'static str, InputError> {
    let first = regions[0].partition();
    if let Some(other) = regions.iter().find(|r| r.partition() != first) {
        return Err(InputError::new(format!(
            "regions '{}' and '{other}' are in different AWS partitions, which cannot deliver \
             events to each other: use regions of one partition",
            regions[0]
        )));
    }
    Ok(first)
}

/// Parameters CloudFormation keeps secret (`NoEcho: true` in the templates):
/// toastrep shows them as `****`, as CloudFormation does.
/// The base stacks' parameter holding the set's marker key.
pub const MARKER_KEY_PARAMETER: &str = "MarkerKey";
/// The base stacks' parameter holding the rest of the key ring (see
/// `toastrep_replication::protocol::key_ring`).
pub const MARKER_KEY_RING_PARAMETER: &str = "MarkerKeyRing";
/// The base stacks' parameter pinning the function's code to the package
/// version deploy checked, given per region once the package is in place.
pub const CODE_VERSION_PARAMETER: &str = "CodeVersion";

const SECRET_PARAMETERS: &[&str] = &[MARKER_KEY_PARAMETER, MARKER_KEY_RING_PARAMETER];

/// One stack to deploy.
#[derive(Clone, Serialize, schemars::JsonSchema)]
pub struct StackPlan {
    pub stack_name: String,
    pub region: Region,
    pub template: Template,
    /// The values to deploy. Serialized (plan.json, `--output json`) and
    /// debug-printed with the secret ones masked.
    #[serde(serialize_with = "serialize_shown")]
    pub parameters: BTreeMap<String, String>,
    /// Parameters an update keeps as deployed (`UsePreviousValue`), whose
    /// values the plan does not know: `plan` never reads the marker key. A
    /// plan with any is previewed only, never applied.
    #[serde(skip)]
    pub keep_previous: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for StackPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackPlan")
            .field("stack_name", &self.stack_name)
            .field("region", &self.region)
            .field("template", &self.template)
            .field("parameters", &shown_parameters(&self.parameters))
            .field("tags", &self.tags)
            .finish()
    }
}

/// Parameters as they may be shown: secret values as `****`.
pub fn shown_parameters(parameters: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    parameters
        .iter()
        .map(|(k, v)| {
            let secret = SECRET_PARAMETERS.contains(&k.as_str());
            (k.as_str(), if secret { "****" } else { v.as_str() })
        })
        .collect()
}

fn serialize_shown<S: serde::Serializer>(
    parameters: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    shown_parameters(parameters).serialize(serializer)
}

/// The link from one region's topic to another region's function: two stacks,
/// because the subscription must live in the topic's region and the invoke
/// permission in the function's region.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PairPlan {
    pub source: Region,
    pub destination: Region,
    /// In the destination region; deployed first.
    pub grant: StackPlan,
    /// In the source region; deployed once the grant is in place.
    pub subscription: StackPlan,
}

/// Every stack of a replica set, in dependency order.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeployPlan {
    pub spec: SetSpec,
    /// The S3 key of the function package in every region's artifact bucket.
    pub code_key: String,
    pub settings: FunctionSettings,
    pub bases: Vec<StackPlan>,
    pub pairs: Vec<PairPlan>,
}

impl DeployPlan {
    /// `marker_key` is the set's: the deployed one for a deployed set (see
    /// [`marker_key::for_deploy`]), the same for every base stack. `None`
    /// for a plan that only previews: the base stacks keep the deployed key
    /// without anyone reading it.
    pub fn new(
        spec: SetSpec,
        code_key: String,
        settings: &FunctionSettings,
        marker_key: Option<&MarkerKeys>,
    ) -> Self {
        let bases = BaseParameters::new(&spec, &code_key, settings, marker_key);
        let bases = spec
            .regions
            .iter()
            .map(|region| bases.stack(&spec.name, *region))
            .collect();
        let pairs = pairs(&spec.name, &spec.regions)
            .into_iter()
            .map(|pair| pair_plan(&spec.name, pair))
            .collect();
        Self {
            spec,
            code_key,
            settings: settings.clone(),
            bases,
            pairs,
        }
    }

    /// Every stack, bases first, then each pair's grant and subscription.
    pub fn stacks(&self) -> impl Iterator<Item = &StackPlan> {
        self.bases.iter().chain(
            self.pairs
                .iter()
                .flat_map(|pair| [&pair.grant, &pair.subscription]),
        )
    }
}

/// What every base stack of a plan is given, but the dashboard, which one
/// region's stack holds.
struct BaseParameters {
    shared: BTreeMap<String, String>,
    /// The marker key's and the key ring's parameters; none for a preview.
    marker_key: Option<(String, String)>,
    dashboard_home: Option<Region>,
    dashboard: String,
}

impl BaseParameters {
    fn new(
        spec: &SetSpec,
        code_key: &str,
        settings: &FunctionSettings,
        marker_key: Option<&MarkerKeys>,
    ) -> Self {
        let shared = BTreeMap::from([
            ("SetName".into(), spec.name.to_string()),
            ("CodeKey".into(), code_key.to_owned()),
        ])
        .into_iter()
        .chain(settings.parameters())
        .collect();
        // The deployed home while it is a member, else the region that
        // sorts first.
        let dashboard_home = settings
            .dashboard_home
            .filter(|home| spec.regions.contains(home))
            .or_else(|| spec.regions.iter().min().copied());
        Self {
            shared,
            marker_key: marker_key.map(MarkerKeys::to_config),
            dashboard_home,
            dashboard: crate::model::dashboard::body(&spec.name, &spec.regions),
        }
    }

    fn stack(&self, name: &SetName, region: Region) -> StackPlan {
        // The set's one dashboard lives in one region's stack.
        let dashboard = if Some(region) == self.dashboard_home {
            self.dashboard.clone()
        } else {
            String::new()
        };
        let marker_key = self.marker_key.iter().flat_map(|(key, ring)| {
            [
                (MARKER_KEY_PARAMETER.into(), key.clone()),
                (MARKER_KEY_RING_PARAMETER.into(), ring.clone()),
            ]
        });
        StackPlan {
            stack_name: name.base_stack(),
            region,
            template: Template::Base,
            parameters: self
                .shared
                .clone()
                .into_iter()
                .chain([("DashboardBody".into(), dashboard)])
                .chain(marker_key)
                .collect(),
            // A preview keeps the key and the code's version as
            // deployed (a deploy gives both; see rollout).
            keep_previous: match self.marker_key {
                Some(_) => BTreeSet::new(),
                None => BTreeSet::from([
                    MARKER_KEY_PARAMETER.to_owned(),
                    MARKER_KEY_RING_PARAMETER.to_owned(),
                    CODE_VERSION_PARAMETER.to_owned(),
                ]),
            },
            tags: tags(name, Template::Base, []),
        }
    }
}

/// A pair's two stacks, each tagged with both ends.
fn pair_plan(name: &SetName, pair: Pair) -> PairPlan {
    let endpoints = [
        ("toastrep:source", pair.source.as_str()),
        ("toastrep:destination", pair.destination.as_str()),
    ];
    PairPlan {
        grant: pair_stack(
            name,
            pair.grant,
            Template::Grant,
            ("SourceRegion", pair.source),
            endpoints,
        ),
        subscription: pair_stack(
            name,
            pair.subscription,
            Template::Subscription,
            ("DestinationRegion", pair.destination),
            endpoints,
        ),
        source: pair.source,
        destination: pair.destination,
    }
}

/// One stack of a pair: where it lives, and the parameter naming the
/// pair's other end.
fn pair_stack(
    name: &SetName,
    at: StackAt,
    template: Template,
    (parameter, other): (&str, Region),
    endpoints: [(&str, &str); 2],
) -> StackPlan {
    StackPlan {
        stack_name: at.name,
        region: at.region,
        template,
        parameters: BTreeMap::from([
            ("SetName".into(), name.to_string()),
            (parameter.into(), other.to_string()),
        ]),
        keep_previous: BTreeSet::new(),
        tags: tags(name, template, endpoints),
    }
}

/// A stack by its name and the region it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackAt {
    pub name: String,
    pub region: Region,
}

/// The two stacks that link one region's topic to another's function.
#[derive(Debug, Clone)]
pub struct Pair {
    pub source: Region,
    pub destination: Region,
    /// In the destination region.
    pub grant: StackAt,
    /// In the source region.
    pub subscription: StackAt,
}

impl Pair {
    /// Whether the pair links `region` with another, either way.
    pub fn touches(&self, region: Region) -> bool {
        self.source == region || self.destination == region
    }

    /// Its stacks that live in `region`.
    pub fn stacks_in(&self, region: Region) -> impl Iterator<Item = &StackAt> {
        [&self.grant, &self.subscription]
            .into_iter()
            .filter(move |stack| stack.region == region)
    }
}

/// The one statement of a set's pairs: every ordered pair of `regions`, in
/// the regions' order. Deploy, teardown, remove-region and status all take
/// their pair stacks from here.
pub fn pairs(name: &SetName, regions: &[Region]) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for &source in regions {
        for &destination in regions.iter().filter(|d| **d != source) {
            pairs.push(Pair {
                source,
                destination,
                grant: StackAt {
                    name: name.grant_stack(source),
                    region: destination,
                },
                subscription: StackAt {
                    name: name.subscription_stack(destination),
                    region: source,
                },
            });
        }
    }
    pairs
}

fn tags<'a>(
    name: &SetName,
    template: Template,
    extra: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        (TAG_SET.to_owned(), name.to_string()),
        (TAG_STACK.to_owned(), template.kind().to_owned()),
    ]);
    tags.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::architecture::Architecture;

    fn regions(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn three_regions_make_three_bases_and_six_pairs() {
        let spec = SetSpec::parse(
            "demo",
            &regions(&["us-east-1", "eu-west-2", "ap-northeast-1"]),
        )
        .unwrap();
        let plan = DeployPlan::new(
            spec,
            "k.zip".into(),
            &FunctionSettings::default(),
            Some(&toastrep_replication::MarkerKey::for_tests("demo").into()),
        );
        assert_eq!(plan.bases.len(), 3);
        assert_eq!(plan.pairs.len(), 6);
        let pair = &plan.pairs[0];
        assert_eq!(
            (pair.source.as_str(), pair.destination.as_str()),
            ("us-east-1", "eu-west-2")
        );
        assert_eq!(pair.grant.region, "eu-west-2");
        assert_eq!(pair.grant.stack_name, "toastrep-demo-from-us-east-1");
        assert_eq!(pair.subscription.region, "us-east-1");
        assert_eq!(pair.subscription.stack_name, "toastrep-demo-to-eu-west-2");
    }

    #[test]
    fn settings_round_trip_through_base_stack_parameters() {
        let settings = FunctionSettings {
            part_size: 5 * 1024 * 1024,
            log_retention_days: 7,
            architecture: Architecture::Arm64,
            ..FunctionSettings::default()
        };
        let spec = SetSpec::parse("demo", &regions(&["us-east-1", "eu-west-2"])).unwrap();
        let plan = DeployPlan::new(
            spec,
            "k.zip".into(),
            &settings,
            Some(&toastrep_replication::MarkerKey::for_tests("k").into()),
        );
        let back = FunctionSettings::from_parameters(&plan.bases[0].parameters);
        assert_eq!(back.part_size, settings.part_size);
        assert_eq!(back.log_retention_days, 7);
        assert_eq!(back.multipart_threshold, settings.multipart_threshold);
        assert_eq!(back.architecture, Architecture::Arm64);
    }

    /// A set deployed before the parameter existed ran on x86_64, the
    /// template's only value then.
    #[test]
    fn a_base_stack_without_an_architecture_ran_on_x86_64() {
        let back = FunctionSettings::from_parameters(&BTreeMap::new());
        assert_eq!(back.architecture, Architecture::X86_64);
    }

    #[test]
    fn every_base_stack_gets_the_one_marker_key_and_no_output_shows_it() {
        let key = toastrep_replication::MarkerKey::for_tests("secret");
        let accepted = toastrep_replication::MarkerKey::for_tests("next");
        let ring = MarkerKeys::new(key.clone(), vec![accepted.clone()]);
        let spec = SetSpec::parse("demo", &regions(&["us-east-1", "eu-west-2"])).unwrap();
        let plan = DeployPlan::new(
            spec,
            "k.zip".into(),
            &FunctionSettings::default(),
            Some(&ring),
        );
        for base in &plan.bases {
            assert_eq!(base.parameters[MARKER_KEY_PARAMETER], key.to_hex());
            assert_eq!(
                base.parameters[MARKER_KEY_RING_PARAMETER],
                format!("accept={}", accepted.to_hex())
            );
        }
        let json = serde_json::to_string(&plan).unwrap();
        let debug = format!("{plan:?}");
        for secret in [key.to_hex(), accepted.to_hex()] {
            assert!(!json.contains(&secret), "{json}");
            assert!(!debug.contains(&secret), "{debug}");
        }
        assert!(json.contains(r#""MarkerKey":"****""#), "{json}");
        assert!(json.contains(r#""MarkerKeyRing":"****""#), "{json}");
    }

    /// toastrep masks exactly the parameters the templates declare NoEcho.
    #[test]
    fn secret_parameters_are_the_templates_noecho_parameters() {
        for template in [Template::Base, Template::Grant, Template::Subscription] {
            let body: serde_yaml::Value = serde_yaml::from_str(template.body()).unwrap();
            let parameters = body["Parameters"].as_mapping().unwrap();
            for (key, definition) in parameters {
                let key = key.as_str().unwrap();
                let no_echo = definition["NoEcho"].as_bool().unwrap_or(false);
                assert_eq!(
                    no_echo,
                    SECRET_PARAMETERS.contains(&key),
                    "{key} in {template:?}"
                );
            }
        }
    }

    #[test]
    fn a_region_has_four_pair_stacks_per_other_member() {
        let name = SetName::parse("demo").unwrap();
        let members: Vec<Region> = ["us-east-1", "eu-west-2", "ap-northeast-1"]
            .map(Region::from)
            .to_vec();
        let touching: Vec<Pair> = pairs(&name, &members)
            .into_iter()
            .filter(|p| p.touches("ap-northeast-1".into()))
            .collect();
        assert_eq!(touching.len(), 4);
        let at = |name: &str, region: &str| StackAt {
            name: name.into(),
            region: region.into(),
        };
        assert!(
            touching
                .iter()
                .any(|p| p.subscription == at("toastrep-demo-to-ap-northeast-1", "us-east-1"))
        );
        assert!(
            touching
                .iter()
                .any(|p| p.grant == at("toastrep-demo-from-ap-northeast-1", "eu-west-2"))
        );
        // Its own region holds one stack of each pair it is in.
        let home: usize = touching
            .iter()
            .map(|p| p.stacks_in("ap-northeast-1".into()).count())
            .sum();
        assert_eq!(home, 4);
    }

    #[test]
    fn rejects_bad_region_lists() {
        let err = |list: &[&str]| {
            SetSpec::parse("demo", &regions(list))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["us-east-1"]).contains("at least two regions"));
        assert!(err(&["us-east-1", "us-east-1"]).contains("listed twice"));
        assert!(err(&["us-east-1", "us-east1"]).contains("did you mean 'us-east-1'"));
        assert!(err(&["us-east-1", "cn-north-1"]).contains("partitions"));
    }
}
