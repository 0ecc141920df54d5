//! The time an invocation has left. A Lambda function is stopped at its
//! timeout wherever it is: a multipart copy still running then leaves its
//! upload (and the parts' billed storage) behind, and every retry of the
//! event another one. So a copy that cannot finish in time is stopped, and
//! its upload aborted, while there is still time to do so.
//!
//! The deadline is scoped to one invocation's future ([`within`]) rather
//! than held by the replicator, which serves every invocation of a warm
//! function; outside a scope (the CLI) there is no deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Kept back from the deadline: the abort, the decision line and the
/// function's answer must still fit.
pub const ABORT_MARGIN: Duration = Duration::from_secs(10);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the time its copies must be done by.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// When copies must stop, [`ABORT_MARGIN`] before the deadline, if there
/// is one.
pub(crate) fn copies_stop_at() -> Option<Instant> {
    DEADLINE
        .try_with(|deadline| *deadline)
        .ok()
        .map(|deadline| deadline.checked_sub(ABORT_MARGIN).unwrap_or(deadline))
}
