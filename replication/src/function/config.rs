//! The function's configuration: what its base stack puts in its
//! environment (`templates/base.yaml`, the function's `Environment`), and
//! what Lambda itself sets, read once, in one place, into one typed value.
//! Every variable's name is here and nowhere else in the function; the CLI's
//! tests check the template sets exactly [`FROM_THE_STACK`].

use std::time::Duration;

use crate::engine::{CopySettings, SettingsError};
use crate::function::log_keys::LogKeys;
use crate::protocol::key_ring::{KEY_VARIABLE, RING_VARIABLE};
use crate::protocol::marker::MarkerKeyError;
use crate::protocol::{MarkerKey, MarkerKeys, RingError};

/// The variables' names.
pub mod var {
    pub const DESTINATION_BUCKET: &str = "DESTINATION_BUCKET";
    pub const SET_NAME: &str = "SET_NAME";
    pub const ACCOUNT_ID: &str = "ACCOUNT_ID";
    pub const MULTIPART_THRESHOLD: &str = "MULTIPART_THRESHOLD";
    pub const PART_SIZE: &str = "PART_SIZE";
    pub const COPY_CONCURRENCY: &str = "COPY_CONCURRENCY";
    pub const MARKER_KEY: &str = super::KEY_VARIABLE;
    pub const MARKER_KEY_RING: &str = super::RING_VARIABLE;
    pub const REPLICATOR_ROLE_ID: &str = "REPLICATOR_ROLE_ID";
    pub const REPLICATE_DELETES: &str = "REPLICATE_DELETES";
    pub const DELETE_BREAKER_PER_MINUTE: &str = "DELETE_BREAKER_PER_MINUTE";
    pub const HELD_DELETES_QUEUE_URL: &str = "HELD_DELETES_QUEUE_URL";
    pub const BREAKER_BUCKET: &str = "BREAKER_BUCKET";
    pub const BREAKER_ALARM: &str = "BREAKER_ALARM";
    pub const LOG_KEYS: &str = "LOG_KEYS";
    pub const REPAIR_INVOCATION_SECONDS: &str = "REPAIR_INVOCATION_SECONDS";
    pub const REPAIR_KEY_CONCURRENCY: &str = "REPAIR_KEY_CONCURRENCY";
    /// The log filter; read by `tracing-subscriber`, not here.
    pub const RUST_LOG: &str = "RUST_LOG";
    /// Set by Lambda.
    pub const AWS_REGION: &str = "AWS_REGION";
    /// Set by Lambda.
    pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
}

/// Every variable the base stack sets. (`REPAIR_KEY_CONCURRENCY` is not
/// among them: it has a default, and only tests change it.)
pub const FROM_THE_STACK: &[&str] = &[
    var::DESTINATION_BUCKET,
    var::MULTIPART_THRESHOLD,
    var::PART_SIZE,
    var::COPY_CONCURRENCY,
    var::MARKER_KEY,
    var::MARKER_KEY_RING,
    var::SET_NAME,
    var::REPLICATOR_ROLE_ID,
    var::ACCOUNT_ID,
    var::REPLICATE_DELETES,
    var::DELETE_BREAKER_PER_MINUTE,
    var::HELD_DELETES_QUEUE_URL,
    var::BREAKER_BUCKET,
    var::BREAKER_ALARM,
    var::LOG_KEYS,
    var::REPAIR_INVOCATION_SECONDS,
    var::RUST_LOG,
];

/// Where the mass-delete breaker keeps its state and sends what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    pub per_minute: u32,
    /// The artifact bucket, which holds the breaker's counts and its state.
    pub bucket: String,
    pub held_deletes_queue_url: String,
    pub alarm: String,
}

/// Everything the function is configured with.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The region the function runs in, and so its destination's.
    pub region: String,
    pub destination_bucket: String,
    pub set_name: String,
    pub account: String,
    pub function_name: String,
    pub copy: CopySettings,
    pub marker_keys: MarkerKeys,
    /// How log lines name object keys: a keyed hash unless the set says plain.
    pub log_keys: LogKeys,
    /// The role the function writes as: S3 events name its session as the
    /// writer of the function's own copies.
    pub role_id: Option<String>,
    /// Deletes from other regions are carried here, through this breaker;
    /// `None`: deletes stay where they are made.
    pub deletes: Option<BreakerConfig>,
    /// How long one repair step may run before it hands over.
    pub repair_invocation: Duration,
    /// Keys one repair step examines at once.
    pub repair_key_concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("environment variable MARKER_KEY: {0}")]
    Key(#[from] MarkerKeyError),
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error(transparent)]
    Copy(#[from] SettingsError),
}

impl FunctionConfig {
    /// The configuration from the process's environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration from `lookup`, which answers a variable's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let read = Reader(&lookup);
        let key = MarkerKey::from_hex(&read.required(var::MARKER_KEY)?)?;
        // The rest of the ring: empty until the set's first `rotate-key`.
        let ring = read.optional(var::MARKER_KEY_RING).unwrap_or_default();
        let marker_keys = MarkerKeys::from_config(key, &ring)?;
        let log_keys = match read.optional(var::LOG_KEYS).as_deref() {
            None | Some("hashed") => LogKeys::hashed(marker_keys.current()),
            Some("plain") => LogKeys::Plain,
            Some(other) => return Err(read.invalid(var::LOG_KEYS, other, "hashed or plain")),
        };
        let carry_deletes = match read.optional(var::REPLICATE_DELETES).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(read.invalid(var::REPLICATE_DELETES, other, "true or false"));
            }
        };
        let deletes = match carry_deletes {
            false => None,
            true => Some(BreakerConfig {
                per_minute: read.number(var::DELETE_BREAKER_PER_MINUTE, None)?,
                bucket: read.required(var::BREAKER_BUCKET)?,
                held_deletes_queue_url: read.required(var::HELD_DELETES_QUEUE_URL)?,
                alarm: read.required(var::BREAKER_ALARM)?,
            }),
        };
        Ok(FunctionConfig {
            region: read.required(var::AWS_REGION)?,
            destination_bucket: read.required(var::DESTINATION_BUCKET)?,
            set_name: read.required(var::SET_NAME)?,
            account: read.required(var::ACCOUNT_ID)?,
            function_name: read.required(var::AWS_LAMBDA_FUNCTION_NAME)?,
            copy: CopySettings::from_lookup(&lookup)?,
            marker_keys,
            log_keys,
            role_id: read.optional(var::REPLICATOR_ROLE_ID),
            deletes,
            repair_invocation: Duration::from_secs(
                read.number(var::REPAIR_INVOCATION_SECONDS, Some(300))?,
            ),
            repair_key_concurrency: read.number(var::REPAIR_KEY_CONCURRENCY, Some(32))?,
        })
    }
}

/// Reads variables through a lookup, naming the variable in every error.
struct Reader<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name)
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A positive number; `default` when unset (`None`: it must be set).
    fn number<T: std::str::FromStr + Default + PartialEq>(
        &self,
        name: &'static str,
        default: Option<T>,
    ) -> Result<T, ConfigError> {
        let Some(value) = self.optional(name) else {
            return default.ok_or(ConfigError::Missing(name));
        };
        match value.trim().parse::<T>() {
            Ok(n) if n != T::default() => Ok(n),
            _ => Err(self.invalid(name, &value, "a positive integer")),
        }
    }

    fn invalid(&self, name: &'static str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError::Invalid {
            name,
            value: value.to_owned(),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn environment(extra: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        let mut vars: HashMap<&'static str, String> = [
            (var::AWS_REGION, "eu-west-2"),
            (
                var::DESTINATION_BUCKET,
                "toastrep-demo-eu-west-2-111122223333",
            ),
            (var::SET_NAME, "demo"),
            (var::ACCOUNT_ID, "111122223333"),
            (var::AWS_LAMBDA_FUNCTION_NAME, "toastrep-demo-replicator"),
            (var::MARKER_KEY, KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        vars
    }

    fn config(vars: &HashMap<&'static str, String>) -> Result<FunctionConfig, ConfigError> {
        FunctionConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_least_a_stack_sets_gives_the_defaults() {
        let config = config(&environment(&[])).unwrap();
        assert_eq!(config.region, "eu-west-2");
        assert!(matches!(config.log_keys, LogKeys::Hashed(_)));
        assert_eq!(config.deletes, None);
        assert_eq!(config.role_id, None);
        assert_eq!(config.repair_invocation, Duration::from_secs(300));
        assert_eq!(config.repair_key_concurrency, 32);
        assert_eq!(config.copy, CopySettings::default());
    }

    #[test]
    fn carried_deletes_need_the_whole_breaker() {
        let vars = environment(&[
            (var::REPLICATE_DELETES, "true"),
            (var::DELETE_BREAKER_PER_MINUTE, "100"),
            (
                var::BREAKER_BUCKET,
                "toastrep-demo-eu-west-2-111122223333-code",
            ),
            (var::HELD_DELETES_QUEUE_URL, "https://sqs/held"),
        ]);
        let error = config(&vars).unwrap_err().to_string();
        assert_eq!(error, "environment variable BREAKER_ALARM must be set");
        let mut vars = vars;
        vars.insert(var::BREAKER_ALARM, "toastrep-demo-breaker".into());
        let breaker = config(&vars).unwrap().deletes.unwrap();
        assert_eq!(breaker.per_minute, 100);
        assert_eq!(breaker.alarm, "toastrep-demo-breaker");
    }

    #[test]
    fn a_bad_value_is_named_with_what_it_should_be() {
        for (name, value, expected) in [
            (var::LOG_KEYS, "maybe", "hashed or plain"),
            (var::REPLICATE_DELETES, "yes", "true or false"),
            (var::REPAIR_INVOCATION_SECONDS, "0", "a positive integer"),
            (var::REPAIR_KEY_CONCURRENCY, "many", "a positive integer"),
        ] {
            let error = config(&environment(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!("environment variable {name} is {value:?}: {expected}")
            );
        }
        let error = config(&environment(&[(var::MARKER_KEY, "abc")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("environment variable MARKER_KEY: "),
            "{error}"
        );
    }
}
