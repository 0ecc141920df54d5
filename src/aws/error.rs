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
    source: Box<dyn std::error::Error + Send + Sync>,
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
            source: Box::new(error),
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
            source: Box::new(error),
        }
    }

    /// The service's error code (`NoSuchKey`, `AccessDenied`), if it sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}
