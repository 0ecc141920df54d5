//! Classifying S3 SDK errors into what replication does about them.

use std::error::Error as StdError;
use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What a failed S3 call means for replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404, NoSuchKey, NoSuchVersion: the object (version) is gone.
    NotFound,
    /// 412 on a copy-source condition: the object changed under us.
    PreconditionFailed,
    /// Worth another attempt: throttling, 5xx, timeouts, connection
    /// failures, and AccessDenied (a role's new permissions take a while to
    /// propagate right after a deploy:
    /// <https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency>).
    Retryable,
    /// Anything else: retrying will not help.
    Permanent,
    /// InvalidObjectState: an archived source (GLACIER, DEEP_ARCHIVE) that
    /// must be restored before it can be read.
    Archived,
    /// MetadataTooLarge: the copy's user metadata is over S3's 2 KB.
    MetadataTooLarge,
    /// An SSE-C object read without its key: GetObject and CopyObject
    /// answer InvalidRequest naming server-side encryption; HeadObject
    /// answers a bare 400 (see [`S3Error::is_bare_bad_request`]).
    CustomerKey,
}

/// A failed S3 call, classified, keeping the SDK error as its source.
#[derive(Debug)]
pub struct S3Error {
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub status: Option<u16>,
    message: String,
    source: Box<dyn StdError + Send + Sync>,
}

impl S3Error {
    pub fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> S3Error
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let kind = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => ErrorKind::Retryable,
            SdkError::ServiceError(_) => classify(code.as_deref(), status, err.message()),
            _ => ErrorKind::Permanent,
        };
        let message = match (&err, &code) {
            (SdkError::ServiceError(_), Some(code)) => format!(
                "S3 answered {code} (HTTP {}): {}",
                status.unwrap_or_default(),
                err.message().unwrap_or("no message")
            ),
            (SdkError::ServiceError(_), None) => {
                format!("S3 answered HTTP {}", status.unwrap_or_default())
            }
            // DisplayErrorContext walks the chain down to the I/O cause,
            // which SdkError's own Display ("dispatch failure") leaves out.
            _ => DisplayErrorContext(&err).to_string(),
        };
        S3Error {
            kind,
            code,
            status,
            message,
            source: Box::new(err),
        }
    }

    /// A 400 without an error code: what HeadObject (which has no body to
    /// carry a code) answers for an SSE-C object asked without its key.
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html>
    pub fn is_bare_bad_request(&self) -> bool {
        self.code.is_none() && self.status == Some(400)
    }
}

fn classify(code: Option<&str>, status: Option<u16>, message: Option<&str>) -> ErrorKind {
    match code {
        // "The object was stored using a form of Server Side Encryption.
        // The correct parameters must be provided to retrieve the object."
        Some("InvalidRequest") if message.is_some_and(|m| m.contains("Server Side Encryption")) => {
            return ErrorKind::CustomerKey;
        }
        Some("NoSuchKey" | "NoSuchVersion" | "NotFound") => return ErrorKind::NotFound,
        Some("PreconditionFailed") => return ErrorKind::PreconditionFailed,
        // A missing bucket is a configuration problem, not a vanished object.
        Some("NoSuchBucket") => return ErrorKind::Permanent,
        // An archived source (GLACIER, DEEP_ARCHIVE) must be restored first.
        Some("InvalidObjectState") => return ErrorKind::Archived,
        Some("MetadataTooLarge") => return ErrorKind::MetadataTooLarge,
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "RequestLimitExceeded"
            | "InternalError"
            | "ServiceUnavailable"
            | "AccessDenied"
            | "ExpiredToken"
            | "RequestTimeTooSkewed",
        ) => return ErrorKind::Retryable,
        _ => {}
    }
    match status {
        // HeadObject errors have no body, hence no code: only the status.
        Some(404) => ErrorKind::NotFound,
        Some(412) => ErrorKind::PreconditionFailed,
        Some(403 | 408 | 429) => ErrorKind::Retryable,
        Some(s) if s >= 500 => ErrorKind::Retryable,
        _ => ErrorKind::Permanent,
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for S3Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify(Some("NoSuchVersion"), Some(404), None),
            ErrorKind::NotFound
        );
        assert_eq!(classify(None, Some(404), None), ErrorKind::NotFound);
        assert_eq!(
            classify(Some("PreconditionFailed"), Some(412), None),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(
            classify(Some("SlowDown"), Some(503), None),
            ErrorKind::Retryable
        );
        assert_eq!(
            classify(Some("AccessDenied"), Some(403), None),
            ErrorKind::Retryable
        );
        assert_eq!(classify(None, Some(500), None), ErrorKind::Retryable);
        assert_eq!(
            classify(Some("NoSuchBucket"), Some(404), None),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(Some("InvalidObjectState"), Some(403), None),
            ErrorKind::Archived
        );
        assert_eq!(
            classify(Some("MetadataTooLarge"), Some(400), None),
            ErrorKind::MetadataTooLarge
        );
        assert_eq!(
            classify(Some("InvalidArgument"), Some(400), None),
            ErrorKind::Permanent
        );
        assert_eq!(
            classify(
                Some("InvalidRequest"),
                Some(400),
                Some(
                    "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                )
            ),
            ErrorKind::CustomerKey
        );
        assert_eq!(
            classify(
                Some("InvalidRequest"),
                Some(400),
                Some("Invalid copy source")
            ),
            ErrorKind::Permanent
        );
    }
}
