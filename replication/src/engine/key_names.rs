//! How the engine names object keys in its log lines and failure
//! messages. Keys are whatever bucket writers make them, and often hold
//! personal data: the function names each by a keyed hash
//! ([`crate::function::log_keys::LogKeys`]); the CLI, whose messages go to
//! the operator who ran it, names them as they are ([`PlainKeys`]).

use std::borrow::Cow;
use std::fmt;

pub trait KeyNames: Send + Sync + fmt::Debug {
    /// `key` as logs and messages show it.
    fn name<'k>(&self, key: &'k str) -> Cow<'k, str>;

    /// Whether keys are hidden: then no text that holds keys (a raw
    /// message) is logged either.
    fn hides_keys(&self) -> bool;
}

/// Keys as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainKeys;

impl KeyNames for PlainKeys {
    fn name<'k>(&self, key: &'k str) -> Cow<'k, str> {
        Cow::Borrowed(key)
    }

    fn hides_keys(&self) -> bool {
        false
    }
}
