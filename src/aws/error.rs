//! One error for every failed AWS call of the CLI: what was asked, of what,
//! the service's error code, and the SDK's error kept as the source.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};

#[derive(Debug, thiserror::Error)]
#[error("{operation} {target}: {detail}")]
pub struct CallError {
    /// The API operation, as AWS names it (`GetObject`, `StartExecution`).
    pub operation: &'static str,
    /// What it was asked of: a bucket and key, a queue URL, an ARN.
    pub target: String,
    code: Option<String>,
    detail: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CallError {
    pub(super) fn of<E>(operation: &'static str, target: impl Into<String>, error: E) -> CallError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        CallError {
            operation,
            target: target.into(),
            code: error.code().map(str::to_owned),
            // DisplayErrorContext walks the chain down to the cause.
            detail: DisplayErrorContext(&error).to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// A call that failed without a service error (a body that broke off).
    pub(super) fn other<E>(
        operation: &'static str,
        target: impl Into<String>,
        error: E,
    ) -> CallError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        CallError {
            operation,
            target: target.into(),
            code: None,
            detail: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// A call the service answered, whose answer says it did not do what
    /// was asked (a batch item that failed, a version id missing).
    pub(super) fn answered(
        operation: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> CallError {
        CallError {
            operation,
            target: target.into(),
            code: None,
            detail: detail.into(),
            source: None,
        }
    }

    /// The service's error code (`NoSuchKey`, `AccessDenied`), if it sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

/// What a step of `aws/` that can also find the user's input wrong fails
/// with: a call, or the input (exit status 2, nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Input(#[from] crate::error::InputError),
}

impl AwsError {
    /// Whether the user must fix the input (exit status 2).
    pub fn is_input(&self) -> bool {
        matches!(self, Self::Input(_))
    }
}
