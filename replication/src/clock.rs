//! Time, read in one place. The engine takes a [`Clock`] (the system's, or
//! the simulation's, driven by its simulated time) for everything timed:
//! an invocation's deadline, when a multipart copy must stop, how long a
//! notice took. Decisions never read it; they read S3's Last-Modified and
//! the store's own time.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use futures::future::{Either, select};

/// Milliseconds since the Unix epoch, and waiting for one.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;

    /// Resolves once [`Clock::now_ms`] has reached `at_ms`.
    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = at_ms.saturating_sub(now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// Now on the system's wall clock, in milliseconds since the Unix epoch
/// (0 on a clock before it): for what is not the engine's (reports, the
/// CLI's status, the function's metrics).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `work`'s output, or `None` if `clock` reaches `at_ms` first (`work` is
/// then dropped).
pub async fn until<F: Future>(clock: &dyn Clock, at_ms: i64, work: F) -> Option<F::Output> {
    match select(pin!(work), clock.sleep_until(at_ms)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}
