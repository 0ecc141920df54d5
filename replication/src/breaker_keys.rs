//! Where the mass-delete breaker keeps its state, in each region's artifact
//! bucket: the function writes it, the CLI reads and clears it, and a
//! lifecycle rule expires the counts.

/// One empty object per delete counted, under
/// `COUNTS/SOURCE/MINUTE/MARKER`.
pub const COUNTS: &str = "breaker/deletes/";

/// The open breakers, one object per source region.
pub const OPEN: &str = "breaker/open/";

/// The deletes from `source` counted in the minute starting at `minute`
/// (unix seconds).
pub fn count_prefix(source: &str, minute: i64) -> String {
    format!("{COUNTS}{source}/{minute}/")
}

/// The open breaker for deletes from `source`.
pub fn open_key(source: &str) -> String {
    format!("{OPEN}{source}")
}
