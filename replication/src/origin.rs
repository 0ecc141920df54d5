//! Origin markers and the rule that decides which write wins.
//!
//! Every replica carries, in its user metadata, where and when the write it
//! copies was originally made. An object without markers is an *original*,
//! written in its own bucket's region; its origin time is its Last-Modified.
//!
//! Concurrent writes of one key in two regions are resolved the same way in
//! every region, so all regions converge: the later origin time wins, and on
//! equal seconds the region whose name sorts first wins (see [`compare`]).

use std::cmp::Ordering;
use std::collections::HashMap;

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};

/// User-metadata names of the markers. S3 lowercases metadata names
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html>),
/// so they are lowercase here to match what HeadObject returns.
pub const ORIGIN_REGION: &str = "toastrep-origin-region";
pub const ORIGIN_TIME: &str = "toastrep-origin-time";
pub const ORIGIN_VERSION: &str = "toastrep-origin-version";
pub const ORIGIN_ETAG: &str = "toastrep-origin-etag";

/// Where and when a write was originally made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub region: String,
    /// Whole seconds: Last-Modified has one-second resolution over HTTP, so
    /// finer precision would differ between an object and its replica's marker.
    pub time: DateTime,
    /// The original's version id (`None` on an unversioned bucket).
    pub version: Option<String>,
    /// The original's ETag, without quotes.
    pub etag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("marker {ORIGIN_TIME} is {value:?}, not an RFC 3339 time")]
    BadTime { value: String },
    #[error("marker {ORIGIN_REGION} is present but {missing} is not")]
    Incomplete { missing: &'static str },
    #[error("the object has no Last-Modified")]
    NoLastModified,
}

impl Origin {
    /// The origin of an object as HeadObject describes it: its markers if it
    /// is a replica, else itself (an original in `bucket_region`).
    pub fn of_object(
        bucket_region: &str,
        metadata: Option<&HashMap<String, String>>,
        last_modified: Option<&DateTime>,
        version_id: Option<&str>,
        etag: Option<&str>,
    ) -> Result<Origin, OriginError> {
        if let Some(origin) = metadata.map(Origin::from_markers).transpose()?.flatten() {
            return Ok(origin);
        }
        let time = last_modified.ok_or(OriginError::NoLastModified)?;
        Ok(Origin {
            region: bucket_region.to_owned(),
            time: DateTime::from_secs(time.secs()),
            version: version_id.filter(|v| *v != "null").map(str::to_owned),
            etag: etag.map(unquote),
        })
    }

    /// Reads the markers; `Ok(None)` when the object has none.
    pub fn from_markers(metadata: &HashMap<String, String>) -> Result<Option<Origin>, OriginError> {
        let Some(region) = metadata.get(ORIGIN_REGION) else {
            return Ok(None);
        };
        let raw_time = metadata.get(ORIGIN_TIME).ok_or(OriginError::Incomplete {
            missing: ORIGIN_TIME,
        })?;
        let time = DateTime::from_str(raw_time, DateTimeFormat::DateTime).map_err(|_| {
            OriginError::BadTime {
                value: raw_time.clone(),
            }
        })?;
        Ok(Some(Origin {
            region: region.clone(),
            time: DateTime::from_secs(time.secs()),
            version: metadata
                .get(ORIGIN_VERSION)
                .filter(|v| !v.is_empty())
                .cloned(),
            etag: metadata.get(ORIGIN_ETAG).filter(|v| !v.is_empty()).cloned(),
        }))
    }

    /// The four markers, to add to a replica's user metadata.
    pub fn to_markers(&self) -> [(String, String); 4] {
        [
            (ORIGIN_REGION.to_owned(), self.region.clone()),
            (ORIGIN_TIME.to_owned(), format_time(&self.time)),
            (
                ORIGIN_VERSION.to_owned(),
                self.version.clone().unwrap_or_default(),
            ),
            (
                ORIGIN_ETAG.to_owned(),
                self.etag.clone().unwrap_or_default(),
            ),
        ]
    }

    /// Whether both describe the same original write: same region and the
    /// same version id, or (unversioned) the same ETag.
    pub fn same_write(&self, other: &Origin) -> bool {
        if self.region != other.region {
            return false;
        }
        match (&self.version, &other.version) {
            (Some(a), Some(b)) => a == b,
            _ => self.etag.is_some() && self.etag == other.etag,
        }
    }
}

/// RFC 3339 UTC to the second, e.g. `2024-05-01T12:00:00Z`.
pub fn format_time(time: &DateTime) -> String {
    DateTime::from_secs(time.secs())
        .fmt(DateTimeFormat::DateTime)
        .expect("whole seconds within S3's date range always format")
}

/// Orders two writes by precedence: `Greater` means `a` wins.
/// The later origin time wins; on equal seconds the region whose name sorts
/// FIRST wins (an arbitrary but global tie-break, so every region picks the
/// same winner without talking to the others).
pub fn compare(a: &Origin, b: &Origin) -> Ordering {
    a.time
        .secs()
        .cmp(&b.time.secs())
        .then_with(|| b.region.cmp(&a.region))
}

/// Whether the source's current object must be copied over the destination.
///
/// `source` is the origin of the current object in source region A, which is
/// an original (replicas are never re-copied); `destination` is the origin
/// of the destination's current object, `None` when absent or deleted.
///
/// - absent destination: copy;
/// - destination replicates a write from A too: copy unless it is the same
///   write. A's current object is by definition the newest A write, so a
///   different A write in the destination is older, whatever the clocks say;
/// - otherwise the winner rule ([`compare`]): copy only if the source wins.
pub fn should_copy(source: &Origin, destination: Option<&Origin>) -> bool {
    let Some(destination) = destination else {
        return true;
    };
    if destination.region == source.region {
        return !source.same_write(destination);
    }
    compare(source, destination) == Ordering::Greater
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(region: &str, secs: i64, version: &str) -> Origin {
        Origin {
            region: region.into(),
            time: DateTime::from_secs(secs),
            version: Some(version.into()),
            etag: Some(format!("etag-{version}")),
        }
    }

    #[test]
    fn absent_destination_is_copied() {
        assert!(should_copy(&at("us-east-1", 10, "v1"), None));
    }

    #[test]
    fn same_origin_same_version_is_up_to_date() {
        let source = at("us-east-1", 10, "v1");
        assert!(!should_copy(&source, Some(&source.clone())));
    }

    #[test]
    fn same_origin_other_version_is_copied_even_if_destination_looks_newer() {
        // The destination holds an older A write whose clock read later
        // (clock skew between writers): A's current object still wins.
        let source = at("us-east-1", 10, "v2");
        let destination = at("us-east-1", 20, "v1");
        assert!(should_copy(&source, Some(&destination)));
    }

    #[test]
    fn same_origin_unversioned_compares_etags() {
        let mut source = at("us-east-1", 10, "x");
        source.version = None;
        let mut destination = source.clone();
        assert!(!should_copy(&source, Some(&destination)));
        destination.etag = Some("other".into());
        assert!(should_copy(&source, Some(&destination)));
        // No version and no ETag: nothing proves it is the same write.
        source.etag = None;
        destination.etag = None;
        assert!(should_copy(&source, Some(&destination)));
    }

    #[test]
    fn later_source_wins() {
        let source = at("eu-west-2", 11, "a");
        let destination = at("us-east-1", 10, "b");
        assert!(should_copy(&source, Some(&destination)));
        assert_eq!(compare(&source, &destination), Ordering::Greater);
    }

    #[test]
    fn later_destination_wins() {
        let source = at("us-east-1", 10, "a");
        let destination = at("eu-west-2", 11, "b");
        assert!(!should_copy(&source, Some(&destination)));
        assert_eq!(compare(&source, &destination), Ordering::Less);
    }

    #[test]
    fn tie_goes_to_the_region_sorting_first() {
        let eu = at("eu-west-2", 10, "a");
        let us = at("us-east-1", 10, "b");
        // "eu-west-2" < "us-east-1": eu wins in both directions.
        assert!(should_copy(&eu, Some(&us)));
        assert!(!should_copy(&us, Some(&eu)));
        assert_eq!(compare(&eu, &us), Ordering::Greater);
        assert_eq!(compare(&us, &eu), Ordering::Less);
    }

    #[test]
    fn tie_ignores_subsecond_differences() {
        let eu = Origin {
            time: DateTime::from_secs_and_nanos(10, 900_000_000),
            ..at("eu-west-2", 0, "a")
        };
        let us = Origin {
            time: DateTime::from_secs_and_nanos(10, 100_000_000),
            ..at("us-east-1", 0, "b")
        };
        assert!(should_copy(&eu, Some(&us)));
        assert!(!should_copy(&us, Some(&eu)));
    }

    #[test]
    fn identical_origins_compare_equal_and_are_not_copied_across_regions() {
        // Equal precedence from a third region is "destination wins or equal".
        let a = at("ap-south-1", 10, "a");
        assert_eq!(compare(&a, &a.clone()), Ordering::Equal);
    }

    #[test]
    fn markers_round_trip() {
        let origin = at(
            "eu-west-2",
            1_714_564_800,
            "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        );
        let metadata: HashMap<_, _> = origin.to_markers().into_iter().collect();
        assert_eq!(metadata[ORIGIN_TIME], "2024-05-01T12:00:00Z");
        assert_eq!(Origin::from_markers(&metadata).unwrap(), Some(origin));
    }

    #[test]
    fn object_without_markers_is_its_own_origin() {
        let metadata = HashMap::from([("colour".to_owned(), "blue".to_owned())]);
        let modified = DateTime::from_secs_and_nanos(100, 5);
        let origin = Origin::of_object(
            "us-east-1",
            Some(&metadata),
            Some(&modified),
            Some("v1"),
            Some("\"abc\""),
        )
        .unwrap();
        assert_eq!(
            origin,
            Origin {
                region: "us-east-1".into(),
                time: DateTime::from_secs(100),
                version: Some("v1".into()),
                etag: Some("abc".into()),
            }
        );
    }

    #[test]
    fn unversioned_null_version_is_no_version() {
        let modified = DateTime::from_secs(1);
        let origin =
            Origin::of_object("us-east-1", None, Some(&modified), Some("null"), None).unwrap();
        assert_eq!(origin.version, None);
    }

    #[test]
    fn replica_reports_its_markers() {
        let origin = at("eu-west-2", 50, "v9");
        let metadata: HashMap<_, _> = origin.to_markers().into_iter().collect();
        let modified = DateTime::from_secs(60);
        let got = Origin::of_object(
            "us-east-1",
            Some(&metadata),
            Some(&modified),
            Some("r1"),
            Some("x"),
        )
        .unwrap();
        assert_eq!(got, origin);
    }

    #[test]
    fn broken_markers_are_errors() {
        let bad_time = HashMap::from([
            (ORIGIN_REGION.to_owned(), "eu-west-2".to_owned()),
            (ORIGIN_TIME.to_owned(), "yesterday".to_owned()),
        ]);
        assert!(matches!(
            Origin::from_markers(&bad_time),
            Err(OriginError::BadTime { .. })
        ));
        let no_time = HashMap::from([(ORIGIN_REGION.to_owned(), "eu-west-2".to_owned())]);
        assert!(matches!(
            Origin::from_markers(&no_time),
            Err(OriginError::Incomplete { .. })
        ));
    }
}
