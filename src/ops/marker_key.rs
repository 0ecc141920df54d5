//! The set's marker key: one secret per set, the same in every region.
//!
//! The replicator authenticates the origin marker on every copy with it
//! ([`MarkerKey`], from `toastrep-replication`), and so do `sync`, `replay` and
//! the backfill of an added region. It is kept in one place: the `MARKER_KEY`
//! environment variable of each region's function, which the base stack sets
//! from its NoEcho parameter `MarkerKey`. CloudFormation never shows a NoEcho
//! value back (DescribeStacks answers `****`), so the function's configuration
//! is where toastrep reads it, and every deploy passes the deployed key back:
//! an update never rotates it by accident, and a plan of an unchanged set shows
//! no change.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use futures::future::join_all;

use toastrep_replication::Rotation;
use toastrep_replication::protocol::key_ring::RING_VARIABLE;
pub use toastrep_replication::{MarkerKey, MarkerKeys};

use crate::aws::functions::Environment;
use crate::error::InputError;
use crate::model::names::SetName;
use crate::model::regions::Region;
use crate::ops::context::SetContext;

/// The base-stack parameter holding the key (NoEcho in `templates/base.yaml`).
pub const PARAMETER: &str = crate::model::topology::MARKER_KEY_PARAMETER;
/// The function's environment variable holding the key.
pub const VARIABLE: &str = toastrep_replication::protocol::key_ring::KEY_VARIABLE;
/// A variable every toastrep function has had from the start. An environment
/// without it was not read (Lambda may withhold it, e.g. when the caller may
/// not decrypt it), which must never pass for "no key yet": a deploy would
/// then make a new one.
const ALWAYS_SET: &str = "DESTINATION_BUCKET";

/// What one region's function says about the key.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// No function (a region whose base stack failed to create, say).
    NoFunction,
    /// A function deployed before sets had a marker key.
    NoKey,
    Key(MarkerKeys),
}

/// The key the set's functions hold in `regions`: `None` when none holds one
/// (not deployed there, or deployed before sets had a marker key). Regions
/// holding different keys are an error naming them and the fix, as is a
/// function whose configuration cannot be read.
pub async fn existing(set: &SetContext, regions: &[Region]) -> Result<Option<MarkerKeys>> {
    let SetContext { name, .. } = set;
    agree(name, per_region(set, regions).await?)
}

/// The key ring each region's function holds, for the regions whose
/// function holds one: `rotate-key` reads them without asking them to
/// agree, since an interrupted rotation leaves regions a step apart.
pub async fn per_region(set: &SetContext, regions: &[Region]) -> Result<Vec<(Region, MarkerKeys)>> {
    let reads = join_all(regions.iter().map(|&region| async move {
        let found = read(set, region).await;
        (region, found)
    }))
    .await;
    let mut keys = Vec::new();
    for (region, found) in reads {
        if let Found::Key(key) = found? {
            keys.push((region, key));
        }
    }
    Ok(keys)
}

/// The deployed set's key, for the commands that write markers (`sync`,
/// `replay`): an error naming the fix when its functions hold none.
pub async fn for_set(set: &SetContext, regions: &[Region]) -> Result<MarkerKeys> {
    let SetContext { name, .. } = set;
    match existing(set, regions).await? {
        Some(key) => Ok(key),
        None => Err(InputError::new(format!(
            "no function of set '{name}' in {} holds a marker key ({VARIABLE}): the set is not \
             deployed there, or was deployed by a toastrep from before marker keys; run \
             `toastrep deploy --name {name} --regions {}` to give it one",
            list(regions),
            regions.join(",")
        ))
        .into()),
    }
}

/// The key a deploy passes to every base stack: the one the set's functions
/// in `deployed` hold, read before any stack changes, or a new one for a set
/// that has none yet.
pub async fn for_deploy(set: &SetContext, deployed: &[Region]) -> Result<MarkerKeys> {
    if let Some(key) = existing(set, deployed).await? {
        return Ok(key);
    }
    generate().map(MarkerKeys::from)
}

/// A new random key, from the operating system's generator: the one place
/// a set's marker key is made.
pub fn generate() -> Result<MarkerKey> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random bytes from the operating system: {e}"))
        .context("generating the set's marker key")?;
    Ok(MarkerKey::from_bytes(bytes))
}

async fn read(set: &SetContext, region: Region) -> Result<Found> {
    let SetContext { aws, name, .. } = set;
    match aws.function(region, &name.function()).configuration().await {
        Ok(Some(config)) => from_environment(name, region, Some(&config.environment)),
        Ok(None) => Ok(Found::NoFunction),
        Err(error) => Err(unreadable(name, region, &error.to_string())),
    }
}

fn from_environment(
    name: &SetName,
    region: Region,
    environment: Option<&Environment>,
) -> Result<Found> {
    if let Some((code, message)) = environment.and_then(|e| e.error.as_ref()) {
        // Lambda reports an environment it could not decrypt for the caller
        // here, instead of failing the call.
        return Err(unreadable(
            name,
            region,
            &format!("Lambda could not decrypt its environment: {code}: {message}"),
        ));
    }
    let variables = environment.and_then(|e| e.variables.as_ref());
    let Some(variables) = variables.filter(|v| v.contains_key(ALWAYS_SET)) else {
        return Err(unreadable(
            name,
            region,
            &format!("its environment came back without {ALWAYS_SET}, so it was not read"),
        ));
    };
    let Some(hex) = variables.get(VARIABLE) else {
        return Ok(Found::NoKey);
    };
    // The value is never printed, not even when it is malformed.
    let key = MarkerKey::from_hex(hex).with_context(|| {
        format!(
            "{VARIABLE} of function {} in {region} is not a marker key: run `toastrep deploy` \
             for the set's regions to set it again from its base stack",
            name.function()
        )
    })?;
    // A release before rotation sets no ring: the key alone.
    let ring = variables.get(RING_VARIABLE).map_or("", String::as_str);
    let keys = MarkerKeys::from_config(key, ring).with_context(|| {
        format!(
            "the key ring of function {} in {region} cannot be read: run `toastrep rotate-key` \
             to finish the set's rotation, or `toastrep deploy` with the release that set it",
            name.function()
        )
    })?;
    Ok(Found::Key(keys))
}

fn unreadable(name: &SetName, region: Region, detail: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the set's marker key could not be read from its function {} in {region}: {detail}; \
         toastrep needs lambda:GetFunctionConfiguration on that function, and kms:Decrypt \
         (through Lambda) on the set's key alias/{} in {region}",
        name.function(),
        name.base_stack()
    )
}

/// The one key of every region that holds one; an error naming the regions
/// of each key (never the keys) when they differ.
fn agree(name: &SetName, keys: Vec<(Region, MarkerKeys)>) -> Result<Option<MarkerKeys>> {
    let mut groups: BTreeMap<(String, String), Vec<Region>> = BTreeMap::new();
    for (region, key) in &keys {
        groups.entry(key.to_config()).or_default().push(*region);
    }
    if groups.len() <= 1 {
        return Ok(keys.into_iter().next().map(|(_, key)| key));
    }
    if keys
        .iter()
        .any(|(_, key)| key.rotation() != Rotation::Steady)
    {
        return Err(InputError::new(format!(
            "a rotation of the marker key of set '{name}' stopped with its regions a step \
             apart; run `toastrep rotate-key --name {name}` again to finish it"
        ))
        .into());
    }
    let mut groups: Vec<Vec<Region>> = groups.into_values().collect();
    // Largest group first; equal sizes by region, so the message is stable.
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    let described: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, regions)| format!("key {} in {}", i + 1, list(regions)))
        .collect();
    let function = name.function();
    let stack = name.base_stack();
    let keep = if groups[0].len() > groups[1].len() {
        format!(
            "give {} the key of {} (key 1, held by most regions)",
            list(&groups[1..].concat()),
            list(&groups[0])
        )
    } else {
        "decide which key the set keeps (the one most of its replicas were written with: \
         normally that of the regions deployed first), and give it to the other regions"
            .to_owned()
    };
    Err(InputError::new(format!(
        "the functions of set '{name}' hold different marker keys ({}); every region of a set \
         must hold the same one, or its copies pass for original writes elsewhere. To fix it, \
         {keep}: read {VARIABLE} from function {function} in a region that holds the key to \
         keep, and in each other region update its base stack {stack} with that value as its \
         {PARAMETER} parameter (`aws cloudformation update-stack --region REGION --stack-name \
         {stack} --use-previous-template --capabilities CAPABILITY_NAMED_IAM --parameters \
         ParameterKey={PARAMETER},ParameterValue=KEY` and UsePreviousValue=true for its other \
         parameters); then run this command again",
        described.join("; ")
    ))
    .into())
}

fn list(regions: &[Region]) -> String {
    regions.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_new_each_time_and_reads_back() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert_eq!(MarkerKey::from_hex(&a.to_hex()).unwrap(), a);
    }

    fn name() -> SetName {
        SetName::parse("demo").unwrap()
    }

    fn environment(variables: &[(&str, &str)]) -> Environment {
        Environment {
            error: None,
            variables: Some(
                variables
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn reads_the_key_and_tells_an_older_deployment_from_an_unread_environment() {
        let key = MarkerKey::for_tests("a");
        let found = from_environment(
            &name(),
            "us-east-1".into(),
            Some(&environment(&[
                (ALWAYS_SET, "b"),
                (VARIABLE, &key.to_hex()),
            ])),
        )
        .unwrap();
        assert_eq!(found, Found::Key(key.into()));
        let older = from_environment(
            &name(),
            "us-east-1".into(),
            Some(&environment(&[(ALWAYS_SET, "b")])),
        );
        assert_eq!(older.unwrap(), Found::NoKey);
        for unread in [None, Some(environment(&[]))] {
            let err = from_environment(&name(), "eu-west-2".into(), unread.as_ref())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(
                    "could not be read from its function toastrep-demo-replicator in eu-west-2"
                ),
                "{err}"
            );
            assert!(err.contains("lambda:GetFunctionConfiguration"), "{err}");
        }
        let denied = Environment {
            error: Some((
                "AccessDeniedException".into(),
                "not allowed to decrypt".into(),
            )),
            variables: None,
        };
        let err = from_environment(&name(), "eu-west-2".into(), Some(&denied))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AccessDeniedException"), "{err}");
        assert!(err.contains("kms:Decrypt"), "{err}");
    }

    #[test]
    fn a_malformed_key_is_an_error_that_does_not_show_it() {
        let err = from_environment(
            &name(),
            "us-east-1".into(),
            Some(&environment(&[
                (ALWAYS_SET, "b"),
                (VARIABLE, "secret-but-bad"),
            ])),
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("is not a marker key"), "{text}");
        assert!(!text.contains("secret-but-bad"), "{text}");
    }

    #[test]
    fn regions_that_disagree_are_named_with_the_fix_and_no_key() {
        let (a, b) = (MarkerKey::for_tests("a"), MarkerKey::for_tests("b"));
        let same = agree(
            &name(),
            vec![
                ("us-east-1".into(), a.clone().into()),
                ("eu-west-2".into(), a.clone().into()),
            ],
        )
        .unwrap();
        assert_eq!(same, Some(a.clone().into()));
        assert_eq!(agree(&name(), Vec::new()).unwrap(), None);

        let err = agree(
            &name(),
            vec![
                ("us-east-1".into(), a.clone().into()),
                ("ap-northeast-1".into(), b.clone().into()),
                ("eu-west-2".into(), a.clone().into()),
            ],
        )
        .unwrap_err();
        assert!(err.is::<InputError>());
        let text = err.to_string();
        assert!(
            text.contains("key 1 in us-east-1, eu-west-2; key 2 in ap-northeast-1"),
            "{text}"
        );
        assert!(
            text.contains("give ap-northeast-1 the key of us-east-1, eu-west-2"),
            "{text}"
        );
        assert!(text.contains("ParameterKey=MarkerKey"), "{text}");
        assert!(!text.contains(&a.to_hex()) && !text.contains(&b.to_hex()));

        let tie = agree(
            &name(),
            vec![
                ("us-east-1".into(), a.clone().into()),
                ("eu-west-2".into(), b.clone().into()),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(tie.contains("decide which key the set keeps"), "{tie}");

        // Regions a rotation's step apart: finish the rotation.
        let accepting = MarkerKeys::new(a.clone(), vec![b.clone()]).rotating(Rotation::Accepting);
        let rotating = agree(
            &name(),
            vec![
                ("us-east-1".into(), a.into()),
                ("eu-west-2".into(), accepting),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            rotating.contains("run `toastrep rotate-key --name demo` again"),
            "{rotating}"
        );
    }
}
