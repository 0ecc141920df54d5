//! What an operation fails with. Every failure keeps its source: the AWS
//! call (`CallError`, `StackError`), the replication engine's error, or
//! the user's input (`InputError`, exit status 2), with what the
//! operation was doing when it failed. Callers can tell them apart
//! ([`OpError::is_input`]) instead of reading messages.

use std::fmt::Display;

use crate::aws::{AwsError, CallError};
use crate::aws::stack::StackError;
use crate::error::InputError;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The user's to fix: nothing was changed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An AWS call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A CloudFormation stack did not reach the state asked for.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The replication engine failed on a key.
    #[error(transparent)]
    Replicate(#[from] toastrep_replication::ReplicateError),
    /// A document (a report, a manifest, a set file) did not read or write.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The set is not as the operation found it must be, and nothing
    /// below failed: a check's finding.
    #[error("{0}")]
    Finding(String),
    /// A step of the operation failed: what it was doing, and why.
    #[error("{doing}")]
    Step {
        doing: String,
        #[source]
        source: Box<OpError>,
    },
}

pub type Result<T, E = OpError> = std::result::Result<T, E>;

impl OpError {
    /// A finding of the operation itself, in its own words.
    pub fn finding(message: impl Into<String>) -> Self {
        Self::Finding(message.into())
    }

    /// Whether the user must fix the input (exit status 2), however deep
    /// in the steps it was found.
    pub fn is_input(&self) -> bool {
        match self {
            Self::Input(_) | Self::Aws(AwsError::Input(_)) => true,
            Self::Step { source, .. } => source.is_input(),
            _ => false,
        }
    }
}

/// Says what a step was doing when it failed, as `anyhow::Context` does,
/// keeping the typed error underneath.
pub trait Context<T> {
    fn context(self, doing: impl Display) -> Result<T>;
    fn with_context<D: Display>(self, doing: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<OpError>> Context<T> for std::result::Result<T, E> {
    fn context(self, doing: impl Display) -> Result<T> {
        self.map_err(|error| OpError::Step {
            doing: doing.to_string(),
            source: Box::new(error.into()),
        })
    }

    fn with_context<D: Display>(self, doing: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|error| OpError::Step {
            doing: doing().to_string(),
            source: Box::new(error.into()),
        })
    }
}
