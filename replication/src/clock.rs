//! The wall clock, read in one place: Unix milliseconds for reports and
//! metrics (when a run started, a notice's latency). Decisions never read it;
//! they read S3's Last-Modified and the store's own time.

/// Now, in milliseconds since the Unix epoch (0 on a clock before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
