//! Errors that are the user's to fix, told apart from failures of the work itself.
//!
//! The binary maps an [`InputError`] anywhere in an error chain to exit status 2
//! (like clap's usage errors); everything else is a failure, exit status 1.

/// Bad input or an environment that cannot work: nothing was changed.
/// Every message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    message: String,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Shorthand for returning an [`InputError`] from a function returning `anyhow::Result`.
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err($crate::error::InputError::new(format!($($arg)*)).into())
    };
}

/// The exit status for an error: 2 when the user must fix the input, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    // A typed error that can be the input's fault says so itself: its
    // transparent variant hides the `InputError` from the chain.
    let is_input = |cause: &(dyn std::error::Error + 'static)| {
        cause.is::<InputError>()
            || cause
                .downcast_ref::<crate::aws::AwsError>()
                .is_some_and(crate::aws::AwsError::is_input)
    };
    if error.chain().any(is_input) { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsError;

    #[test]
    fn an_input_error_inside_a_typed_error_exits_2() {
        let error = anyhow::Error::from(AwsError::from(InputError::new("the name is taken")))
            .context("ensuring the artifact bucket");
        assert_eq!(exit_code(&error), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("a call failed")), 1);
    }
}
