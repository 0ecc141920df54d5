//! Original writes, and the one rule that says which of two writes wins.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// An original write: a user's write of a key in one region's bucket. A
/// copy of it anywhere in the set names it through its marker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Write {
    /// The region whose bucket took the write.
    pub region: String,
    /// Its Last-Modified, in whole seconds: the resolution S3 returns over
    /// HTTP, so a replica's marker and the original always agree.
    pub time: i64,
    /// Its version id in that bucket (`null` on an unversioned bucket).
    pub version: String,
    /// Its ETag, without quotes.
    pub etag: String,
}

impl Write {
    /// The same original write: the same region and version.
    pub fn same(&self, other: &Write) -> bool {
        self.region == other.region && self.version == other.version
    }
}

/// Two writes of one region in the same second are ordered by that
/// region's own history, which the caller may have to fetch first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedHistory(pub String);

/// What is known of the order of writes within regions.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    /// Region → version ids of the key there, newest first.
    listed: BTreeMap<String, Vec<String>>,
    /// Region → the version known to be its newest write of the key.
    latest: BTreeMap<String, String>,
}

impl Histories {
    /// `version` is the newest write of its region (it is that bucket's
    /// current original).
    pub fn latest(mut self, region: &str, version: &str) -> Histories {
        self.latest.insert(region.to_owned(), version.to_owned());
        self
    }

    /// The region's versions of the key, newest first.
    pub fn listed(&mut self, region: &str, versions: Vec<String>) {
        self.listed.insert(region.to_owned(), versions);
    }

    fn order(&self, region: &str, a: &str, b: &str) -> Option<Ordering> {
        if let Some(latest) = self.latest.get(region) {
            if latest == a {
                return Some(Ordering::Greater);
            }
            if latest == b {
                return Some(Ordering::Less);
            }
        }
        let listed = self.listed.get(region)?;
        let position = |v: &str| listed.iter().position(|l| l == v);
        Some(match (position(a), position(b)) {
            // Newest first: a smaller position is a later write.
            (Some(a), Some(b)) => b.cmp(&a),
            // A version no longer listed was expired as noncurrent, so it
            // is older than one that is still there.
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            // Neither is left: any fixed order converges.
            (None, None) => a.cmp(b),
        })
    }
}

/// The winner rule, the only statement of it: `Greater` means `a` wins.
///
/// 1. The later write wins, by its origin time in whole seconds.
/// 2. In the same second, the region whose name sorts first wins: an
///    arbitrary order, but one every region applies alike.
/// 3. Two writes of one region in the same second: the later in that
///    region's own history wins, as it does in that bucket; the caller
///    fetches the history. A version no longer there (expired, or deleted
///    by its id) is the older.
pub fn compare(a: &Write, b: &Write, histories: &Histories) -> Result<Ordering, NeedHistory> {
    if a.same(b) {
        return Ok(Ordering::Equal);
    }
    match a.time.cmp(&b.time) {
        Ordering::Equal if a.region == b.region => {
            // Several writes of one bucket share a second: its own history
            // orders them. Time decides otherwise, even within one region,
            // so a write deleted by its version id keeps its place
            // wherever a copy of it is compared.
            histories
                .order(&a.region, &a.version, &b.version)
                .ok_or_else(|| NeedHistory(a.region.clone()))
        }
        Ordering::Equal => Ok(b.region.cmp(&a.region)),
        order => Ok(order),
    }
}

/// Whether `a` wins over `b`.
pub fn beats(a: &Write, b: &Write, histories: &Histories) -> Result<bool, NeedHistory> {
    Ok(compare(a, b, histories)? == Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(region: &str, time: i64, version: &str) -> Write {
        Write {
            region: region.into(),
            time,
            version: version.into(),
            etag: format!("e-{version}"),
        }
    }

    #[test]
    fn later_time_wins_whatever_the_region() {
        let none = Histories::default();
        assert!(beats(&w("us-east-1", 11, "a"), &w("eu-west-2", 10, "b"), &none).unwrap());
        assert!(!beats(&w("eu-west-2", 10, "b"), &w("us-east-1", 11, "a"), &none).unwrap());
    }

    #[test]
    fn a_tie_goes_to_the_region_sorting_first() {
        let none = Histories::default();
        assert!(beats(&w("eu-west-2", 10, "a"), &w("us-east-1", 10, "b"), &none).unwrap());
        assert!(!beats(&w("us-east-1", 10, "b"), &w("eu-west-2", 10, "a"), &none).unwrap());
    }

    #[test]
    fn one_regions_same_second_writes_need_its_history() {
        let (a, b) = (w("us-east-1", 10, "a"), w("us-east-1", 10, "b"));
        assert_eq!(
            compare(&a, &b, &Histories::default()),
            Err(NeedHistory("us-east-1".into()))
        );
        let latest = Histories::default().latest("us-east-1", "a");
        assert!(beats(&a, &b, &latest).unwrap());
        let mut listed = Histories::default();
        listed.listed("us-east-1", vec!["b".into(), "a".into()]);
        assert!(beats(&b, &a, &listed).unwrap());
        listed.listed("us-east-1", vec!["a".into()]);
        assert!(
            beats(&a, &b, &listed).unwrap(),
            "an expired version is older"
        );
    }

    #[test]
    fn the_same_write_is_equal() {
        let a = w("us-east-1", 10, "a");
        assert_eq!(
            compare(&a, &a.clone(), &Histories::default()),
            Ok(Ordering::Equal)
        );
    }
}
