//! Waiting for a condition, never for a fixed time: on a busy machine any
//! fixed time is too short one day, and on an idle one always too long.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long to wait between two looks at a condition.
const POLL: Duration = Duration::from_millis(200);

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, limit, POLL, check).await
}

/// As [`eventually`], looking every `poll`: for a test that must act as soon
/// as something happens, before the code under test moves on.
pub async fn eventually_every<T, F, Fut>(
    what: &str,
    limit: Duration,
    poll: Duration,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(poll).await;
    }
}

/// The wall clock in whole seconds since the epoch. The emulator runs on
/// this host, so this is the clock its Last-Modified times come from.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until the clock is in a later whole second than `seconds` (a
/// Last-Modified time), so that a write from now on is later than it.
/// S3 keeps Last-Modified in whole seconds, and the replicator orders
/// writes by it: two writes in one second are a tie.
pub async fn wait_past(seconds: i64) -> i64 {
    eventually(
        &format!("the clock to pass {seconds} s"),
        Duration::from_secs(10),
        || async {
            let now = now_secs();
            (now > seconds).then_some(now)
        },
    )
    .await
}

/// Polls `look` until what it sees has not changed for `quiet`, and returns
/// that; panics with `what` if it never settles within `limit`. For work the
/// emulator does on its own after a call returns (event deliveries, the
/// functions' copies): the caller then asserts what settled is what it
/// expects, so a late or extra change still fails the test.
pub async fn settled<T, F, Fut>(what: &str, quiet: Duration, limit: Duration, mut look: F) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let start = Instant::now();
    let mut last = look().await;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(POLL).await;
        let now = look().await;
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= quiet {
            return last;
        }
        assert!(
            start.elapsed() < limit,
            "{what} never settled within {limit:?}; last seen: {last:?}"
        );
    }
}
