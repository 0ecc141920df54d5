//! The AWS regions toastrep knows, and the partition each belongs to.
//!
//! A replica set spans regions of one partition only: SNS cannot deliver to a
//! Lambda function in another partition, and ARNs carry the partition.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use crate::error::InputError;

/// An AWS region toastrep knows (so with a partition): only
/// [`Region::parse`] makes one, so a `Region` is never a typo. It is one of
/// the table's names, so it is `Copy`, and reads as a `&str` wherever one
/// is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(&'static str);

impl Region {
    /// Where a command with no region of its own begins (the credentials
    /// check, the global ListBuckets): the `aws` partition's oldest region.
    pub const US_EAST_1: Region = Region("us-east-1");

    /// A region as the user typed it: known, or an error naming the closest
    /// known one.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let input = input.trim();
        match REGIONS.iter().find(|(name, _)| *name == input) {
            Some((name, _)) => Ok(Self(name)),
            None => {
                let hint = match closest(input) {
                    Some(near) => format!("did you mean '{near}'?"),
                    None => "use an AWS region code such as us-east-1 or eu-west-2".to_owned(),
                };
                Err(InputError::new(format!(
                    "'{input}' is not an AWS region: {hint}"
                )))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The partition the region belongs to (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(self) -> &'static str {
        partition_of(self.0).expect("a Region is a known region")
    }
}

impl Deref for Region {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl Borrow<str> for Region {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// Pads as a string does: tables align region columns with `{:width$}`.
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl PartialEq<str> for Region {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Region {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Region {
    fn eq(&self, other: &String) -> bool {
        self.0 == other
    }
}

impl PartialEq<Region> for String {
    fn eq(&self, other: &Region) -> bool {
        self == other.0
    }
}

impl PartialEq<Region> for &str {
    fn eq(&self, other: &Region) -> bool {
        *self == other.0
    }
}

/// Tests name regions as literals; a literal that is not a region is a
/// broken test.
#[cfg(test)]
impl From<&str> for Region {
    fn from(name: &str) -> Self {
        Self::parse(name).expect("a test names a known region")
    }
}

impl From<Region> for String {
    fn from(region: Region) -> Self {
        region.0.to_owned()
    }
}

impl serde::Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A region's schema is a string's, inline: the result schemas name
/// regions as plain strings, as their JSON holds them.
impl schemars::JsonSchema for Region {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// Where to look for a deployed set: the regions named, or every region of
/// the partition (what a command does when no region is given). An
/// explicit value, so "none given" is never an empty list read as "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionSearch {
    These(Vec<Region>),
    /// Every region of the configured region's partition (`aws` when none
    /// is configured).
    WholePartition,
}

impl RegionSearch {
    /// The regions to ask, given the configured region: the named ones, or
    /// every region of its partition.
    pub fn candidates(&self, configured: Option<Region>) -> Vec<Region> {
        match self {
            Self::These(regions) => regions.clone(),
            Self::WholePartition => {
                regions_in(configured.map_or("aws", Region::partition)).collect()
            }
        }
    }

    /// The region to begin in: the first named, else us-east-1.
    pub fn first(&self) -> Region {
        match self {
            Self::These(regions) => regions.first().copied().unwrap_or(Region::US_EAST_1),
            Self::WholePartition => Region::US_EAST_1,
        }
    }
}

/// Regions as a message lists them: `us-east-1, eu-west-2`.
pub fn list(regions: &[Region]) -> String {
    regions
        .iter()
        .map(|region| region.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that no region is listed twice; keeps the order.
pub fn distinct(regions: Vec<Region>) -> Result<Vec<Region>, InputError> {
    for (index, region) in regions.iter().enumerate() {
        if regions[..index].contains(region) {
            return Err(InputError::new(format!(
                "region '{region}' is listed twice: list each region once"
            )));
        }
    }
    Ok(regions)
}

/// Every region toastrep accepts, with its partition. Kept sorted by name.
const REGIONS: &[(&str, &str)] = &[
    ("af-south-1", "aws"),
    ("ap-east-1", "aws"),
    ("ap-east-2", "aws"),
    ("ap-northeast-1", "aws"),
    ("ap-northeast-2", "aws"),
    ("ap-northeast-3", "aws"),
    ("ap-south-1", "aws"),
    ("ap-south-2", "aws"),
    ("ap-southeast-1", "aws"),
    ("ap-southeast-2", "aws"),
    ("ap-southeast-3", "aws"),
    ("ap-southeast-4", "aws"),
    ("ap-southeast-5", "aws"),
    ("ap-southeast-6", "aws"),
    ("ap-southeast-7", "aws"),
    ("ca-central-1", "aws"),
    ("ca-west-1", "aws"),
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    ("eu-central-1", "aws"),
    ("eu-central-2", "aws"),
    ("eu-north-1", "aws"),
    ("eu-south-1", "aws"),
    ("eu-south-2", "aws"),
    ("eu-west-1", "aws"),
    ("eu-west-2", "aws"),
    ("eu-west-3", "aws"),
    ("il-central-1", "aws"),
    ("me-central-1", "aws"),
    ("me-south-1", "aws"),
    ("mx-central-1", "aws"),
    ("sa-east-1", "aws"),
    ("us-east-1", "aws"),
    ("us-east-2", "aws"),
    ("us-gov-east-1", "aws-us-gov"),
    ("us-gov-west-1", "aws-us-gov"),
    ("us-west-1", "aws"),
    ("us-west-2", "aws"),
];

/// The partition of a known region, or `None` if the string is not a region.
pub fn partition_of(region: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, partition)| *partition)
}

/// All known regions of a partition, for discovering where a set is deployed.
pub fn regions_in(partition: &str) -> impl Iterator<Item = Region> + '_ {
    REGIONS
        .iter()
        .filter(move |(_, p)| *p == partition)
        .map(|(name, _)| Region(name))
}

/// The known region closest in spelling to `input`, to suggest a fix for a typo.
pub fn closest(input: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .map(|(name, _)| (strsim::levenshtein(input, name), *name))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_regions_and_their_partitions() {
        assert_eq!(partition_of("eu-west-2"), Some("aws"));
        assert_eq!(partition_of("cn-north-1"), Some("aws-cn"));
        assert_eq!(partition_of("us-gov-west-1"), Some("aws-us-gov"));
        assert_eq!(partition_of("mars-east-1"), None);
    }

    #[test]
    fn suggests_the_region_meant() {
        assert_eq!(closest("us-east1"), Some("us-east-1"));
        assert_eq!(closest("eu-wset-2"), Some("eu-west-2"));
        assert_eq!(closest("banana"), None);
    }

    #[test]
    fn the_default_region_is_known() {
        assert_eq!(Region::parse("us-east-1").unwrap(), Region::US_EAST_1);
    }

    #[test]
    fn list_is_sorted_and_unique() {
        let names: Vec<_> = REGIONS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
