//! Finding a deployed set from its name alone.
//!
//! A set is what is deployed: its regions are those holding its base stack
//! (`toastrep-NAME`, tagged `toastrep:set=NAME`). toastrep asks CloudFormation
//! in every region of the partition (or the regions given), in parallel; no
//! local file has to be kept. Buckets are found by their derived names, since
//! the data buckets outlive their stacks on purpose.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use futures::{StreamExt, TryStreamExt, stream};

use crate::aws::AwsOptions;
use crate::aws::stack::DeployedStack;
use crate::model::names::SetName;
use crate::model::regions::{self, Region, RegionSearch};
use crate::model::topology::TAG_SET;
use crate::ops::context::SetContext;

/// A set found from its name: the context that found it, and what is
/// deployed of it.
pub struct Located {
    pub set: SetContext,
    pub found: DeployedSet,
}

/// Checks the credentials, then finds what is deployed of set `name` where
/// `search` says to look.
pub async fn locate(
    options: &AwsOptions,
    name: &SetName,
    search: &RegionSearch,
) -> Result<Located> {
    let set = SetContext::connect(options, name, search.first()).await?;
    let candidates = search.candidates(set.aws.region());
    let found = discover(&set, &candidates).await?;
    Ok(Located { set, found })
}

/// How many regions are asked at once.
const PARALLEL_REGIONS: usize = 12;

/// What is deployed of a set.
pub struct DeployedSet {
    /// Region → its base stack.
    pub bases: BTreeMap<Region, DeployedStack>,
    /// Regions whose data bucket exists (with or without a stack).
    pub data_buckets: BTreeSet<Region>,
    /// Regions whose artifact bucket exists.
    pub artifact_buckets: BTreeSet<Region>,
}

impl DeployedSet {
    /// The function settings the set runs with (its first base stack's
    /// parameters); `None` for a set with no base stack.
    pub fn settings(&self) -> Option<crate::model::function::FunctionSettings> {
        let mut settings = self.bases.values().next().map(|base| {
            crate::model::function::FunctionSettings::from_parameters(&base.parameters)
        })?;
        settings.dashboard_home = self.dashboard_home();
        Some(settings)
    }

    /// The region whose base stack holds the set's dashboard.
    pub fn dashboard_home(&self) -> Option<Region> {
        self.bases
            .iter()
            .find(|(_, base)| {
                base.parameters
                    .get("DashboardBody")
                    .is_some_and(|body| !body.is_empty())
            })
            .map(|(region, _)| *region)
    }

    /// Regions where anything of the set exists.
    pub fn regions(&self) -> BTreeSet<Region> {
        self.bases
            .keys()
            .chain(&self.data_buckets)
            .chain(&self.artifact_buckets)
            .cloned()
            .collect()
    }
}

/// Finds the set's base stacks and buckets in the candidate regions.
pub async fn discover(set: &SetContext, candidates: &[Region]) -> Result<DeployedSet> {
    let bases: Vec<(Region, Option<DeployedStack>)> = stream::iter(candidates.iter().copied())
        .map(|region| async move {
            let stack = base_stack(set, region).await?;
            Ok::<_, anyhow::Error>((region, stack))
        })
        .buffer_unordered(PARALLEL_REGIONS)
        .try_collect()
        .await?;
    let bases = bases
        .into_iter()
        .filter_map(|(region, stack)| Some((region, stack?)))
        .collect();
    let buckets = set_buckets(
        set,
        candidates.first().copied().unwrap_or(Region::US_EAST_1),
    )
    .await?;
    let mut data_buckets = BTreeSet::new();
    let mut artifact_buckets = BTreeSet::new();
    for &region in candidates {
        if buckets.contains(&set.data_bucket(region)) {
            data_buckets.insert(region);
        }
        if buckets.contains(&set.artifact_bucket(region)) {
            artifact_buckets.insert(region);
        }
    }
    Ok(DeployedSet {
        bases,
        data_buckets,
        artifact_buckets,
    })
}

async fn base_stack(set: &SetContext, region: Region) -> Result<Option<DeployedStack>> {
    let name = &set.name;
    match set.aws.stack(region, &name.base_stack()).await {
        Ok(Some(stack)) if stack.tag(TAG_SET) == Some(name.as_str()) => Ok(Some(stack)),
        Ok(_) => Ok(None),
        Err(error) => {
            // A region the account has not opted into answers with an auth
            // error; nothing of the set can be there.
            let text = error.to_string();
            if text.contains("InvalidClientTokenId") || text.contains("UnrecognizedClient") {
                tracing::debug!(%region, "region not enabled for this account; skipped");
                Ok(None)
            } else {
                Err(error.into())
            }
        }
    }
}

/// Names of the account's buckets that may belong to the set. ListBuckets is
/// global, so one call covers every region.
async fn set_buckets(set: &SetContext, region: Region) -> Result<BTreeSet<String>> {
    let prefix = format!("{}-", set.name.base_stack());
    Ok(set.aws.bucket_names(region, &prefix).await?)
}

/// The set's regions for commands that need it deployed (verify, status...):
/// an error naming the fix when it is not.
pub fn require_deployed(set: &DeployedSet, name: &SetName) -> Result<Vec<Region>> {
    let regions: Vec<Region> = set.bases.keys().copied().collect();
    if regions.is_empty() {
        return Err(crate::error::InputError::new(format!(
            "no replica set named '{name}' is deployed in the regions searched: check the name, or deploy it with `toastrep deploy --name {name} --regions ...`"
        )))
        .context("finding the set");
    }
    Ok(regions)
}

/// The set's regions for commands that work between regions (verify, sync):
/// like [`require_deployed`], and at least two of them.
pub fn require_members(set: &DeployedSet, name: &SetName, command: &str) -> Result<Vec<Region>> {
    let regions = require_deployed(set, name)?;
    if regions.len() < 2 {
        return Err(crate::error::InputError::new(format!(
            "set '{name}' is deployed only in {} among the regions searched: {command} needs at least two regions (widen --regions, or deploy more)",
            regions::list(&regions)
        ))
        .into());
    }
    Ok(regions)
}

impl Located {
    /// The set's regions, for commands that need it deployed.
    pub fn deployed(&self) -> Result<Vec<Region>> {
        require_deployed(&self.found, &self.set.name)
    }

    /// The set's regions, for commands that work between regions.
    pub fn members(&self, command: &str) -> Result<Vec<Region>> {
        require_members(&self.found, &self.set.name, command)
    }
}
