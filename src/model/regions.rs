//! The AWS regions toastrep knows, and the partition each belongs to.
//!
//! A replica set spans regions of one partition only: SNS cannot deliver to a
//! Lambda function in another partition, and ARNs carry the partition.

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
pub fn regions_in(partition: &str) -> impl Iterator<Item = &'static str> + '_ {
    REGIONS
        .iter()
        .filter(move |(_, p)| *p == partition)
        .map(|(name, _)| *name)
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
    fn list_is_sorted_and_unique() {
        let names: Vec<_> = REGIONS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
