//! The AWS services the function uses besides S3 objects, each behind a
//! small trait, so the function's logic (the mass-delete breaker, the
//! repair steps) runs on real services and, unchanged, in the simulation:
//!
//! - [`Artifacts`]: the region's artifact bucket, where the breaker keeps
//!   its counts and open breakers;
//! - [`HeldDeletes`]: the queue the breaker holds deletes in;
//! - [`Alarm`]: the alarm an opening breaker raises;
//! - [`ControlPlane`]: what the repair steps ask Lambda and Step Functions
//!   (the function's member regions, whether an execution runs).
//!
//! [`crate::store::aws`] implements them on the SDK; `crate::sim::services`
//! in memory.

use std::future::Future;

/// A call to a service that failed: which call, on what, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {target} failed: {message}")]
pub struct ServiceError {
    pub operation: &'static str,
    pub target: String,
    pub message: String,
}

impl ServiceError {
    pub fn new(
        operation: &'static str,
        target: impl Into<String>,
        message: impl ToString,
    ) -> ServiceError {
        ServiceError {
            operation,
            target: target.into(),
            message: message.to_string(),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// The region's artifact bucket, as the breaker and the repair use it:
/// small objects under their own prefixes.
pub trait Artifacts: Send + Sync {
    /// Writes an empty object at `key` (again, if it is there).
    fn put_empty(&self, key: &str) -> impl Future<Output = ServiceResult<()>> + Send;

    /// How many keys start with `prefix`, counted up to `at_most`.
    fn count(&self, prefix: &str, at_most: u32) -> impl Future<Output = ServiceResult<u32>> + Send;

    /// Whether `key` exists.
    fn exists(&self, key: &str) -> impl Future<Output = ServiceResult<bool>> + Send;

    /// Writes `body` at `key`, replacing what is there.
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = ServiceResult<()>> + Send;

    /// The body at `key`, or `None` when there is no such key.
    fn get(&self, key: &str) -> impl Future<Output = ServiceResult<Option<Vec<u8>>>> + Send;

    /// Every key that starts with `prefix`, in order.
    fn list(&self, prefix: &str) -> impl Future<Output = ServiceResult<Vec<String>>> + Send;

    /// Writes `body` at `key` unless `key` exists: `true` when this call
    /// created it, `false` when it was already there (conditional write).
    fn create(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = ServiceResult<bool>> + Send;
}

/// One message for the held-deletes queue: its body and string attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

impl HeldMessage {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The queue the breaker holds deletes in.
pub trait HeldDeletes: Send + Sync {
    fn send(&self, message: HeldMessage) -> impl Future<Output = ServiceResult<()>> + Send;
}

/// The alarm an opening breaker raises.
pub trait Alarm: Send + Sync {
    fn raise(&self, reason: &str) -> impl Future<Output = ServiceResult<()>> + Send;
}

/// A Step Functions execution, as DescribeExecution reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub running: bool,
    /// Its status as Step Functions names it (`RUNNING`, `SUCCEEDED`, ...).
    pub status: String,
    pub state_machine_arn: String,
}

/// What the repair steps ask the control plane.
pub trait ControlPlane: Send + Sync {
    /// The resource policy of `function`, as JSON: who may invoke it.
    fn function_policy(&self, function: &str)
    -> impl Future<Output = ServiceResult<String>> + Send;

    /// The execution `arn`.
    fn execution(&self, arn: &str) -> impl Future<Output = ServiceResult<Execution>> + Send;
}
