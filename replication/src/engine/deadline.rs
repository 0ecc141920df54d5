//! The time an invocation has left. A Lambda function is stopped at its
//! timeout wherever it is: a multipart copy still running then leaves its
//! upload (and the parts' billed storage) behind, and every retry of the
//! event another one. So a copy that cannot finish in time is stopped, and
//! its upload aborted, while there is still time to do so.
//!
//! The deadline is scoped to one invocation's future ([`within`]) rather
//! than held by the replicator, which serves every invocation of a warm
//! function; outside a scope (the CLI) there is no deadline. It is read
//! against the replicator's [`crate::clock::Clock`], so the simulation's
//! time drives it too.

use std::future::Future;
use std::time::Duration;

/// Kept back from the deadline: the abort, the decision line and the
/// function's answer must still fit.
pub const ABORT_MARGIN: Duration = Duration::from_secs(10);

tokio::task_local! {
    static DEADLINE: i64;
}

/// Runs `work` with `deadline_ms` (Unix milliseconds) as the time its
/// copies must be done by.
pub async fn within<F: Future>(deadline_ms: i64, work: F) -> F::Output {
    DEADLINE.scope(deadline_ms, work).await
}

/// When copies must stop (Unix milliseconds), [`ABORT_MARGIN`] before the
/// deadline, if there is one.
pub(crate) fn copies_stop_at() -> Option<i64> {
    DEADLINE
        .try_with(|deadline| *deadline)
        .ok()
        .map(|deadline| deadline.saturating_sub(ABORT_MARGIN.as_millis() as i64))
}
