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
    if error.chain().any(|cause| cause.is::<InputError>()) {
        2
    } else {
        1
    }
}
