//! Names no other test, and no earlier run, uses: tests run in parallel
//! against one emulator that outlives them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `{prefix}-{suffix}`, at most 21 characters of lowercase letters, digits
/// and hyphens: a valid set name, and short enough that the set's longest
/// bucket name (`toastrep-{name}-ap-northeast-1-{account}-code`) stays
/// within S3's 63 characters.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("{prefix}-{:x}{n}", nanos ^ std::process::id());
    name.truncate(21);
    name.trim_end_matches('-').to_owned()
}
