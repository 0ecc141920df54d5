//! The settings of a set's functions, alarms and repair: what becomes the
//! base stacks' parameters, with the template's bounds checked up front.
//!
//! Each setting is declared once, in the table at [`settings_table!`]'s one
//! call below: its help, its Rust name (the flag and the set-file key are
//! its kebab-case: `part_size` is `--part-size` and `part-size = ...`), its
//! type and its default for a new set, its base-stack parameter, the
//! function's environment variable that carries it (when the function reads
//! it) and its check. Everything else is generated from it: the flags and
//! the set file's `[settings]` ([`SettingsLayer`], one type for both), the
//! layering, the settings a set runs ([`FunctionSettings`]), its stack
//! parameters and back, and `plan`'s change lines ([`Requested::changes`]).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use toastrep_replication::CopySettings;

use crate::error::InputError;
use crate::model::architecture::Architecture;
use crate::model::schedule;

/// One setting, as the table names it outside Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its Rust name: the field of [`SettingsLayer`] and [`FunctionSettings`].
    pub name: &'static str,
    /// The base stacks' parameter that holds it.
    pub parameter: &'static str,
    /// The function's environment variable the base template sets from the
    /// parameter, when the function reads the setting.
    pub env: Option<&'static str>,
}

impl Setting {
    /// Its key in the set file's `[settings]`, e.g. `part-size`: its name in
    /// kebab-case, as serde's `rename_all` makes it.
    pub fn key(&self) -> String {
        key_of(self.name)
    }

    /// Its flag, e.g. `--part-size`: its name in kebab-case, as clap's
    /// `long` makes it.
    pub fn flag(&self) -> String {
        format!("--{}", self.key())
    }

    /// The setting whose Rust name is `name`.
    pub fn named(name: &str) -> Option<Setting> {
        SETTINGS.iter().copied().find(|s| s.name == name)
    }
}

fn key_of(name: &str) -> String {
    name.replace('_', "-")
}

/// The flag of the setting whose Rust name is given, e.g.
/// `setting_flag!(replicate_deletes)` is `--replicate-deletes`: a name the
/// table lacks does not compile, so no other code spells a flag out.
macro_rules! setting_flag {
    ($name:ident) => {{
        let _ = |layer: &$crate::model::function::SettingsLayer| {
            let _ = &layer.$name;
        };
        $crate::model::function::Setting::named(stringify!($name))
            .expect("a field of SettingsLayer is a setting")
            .flag()
    }};
}
pub(crate) use setting_flag;

/// Generates, from one row per setting, everything that names or moves a
/// setting; see the module's documentation and the call below. A row's doc
/// comment is its help (and its description in the JSON schemas); its
/// `#[arg(..)]` are clap's; its `#[serde(..)]` and `#[schemars(..)]` shape
/// only the resolved settings' JSON (the `settings` of `plan` and `render`,
/// whose field names predate the table and stay as scripts read them). The
/// rows under `fixed` are parameters no flag sets.
macro_rules! settings_table {
    (@env) => { None };
    (@env $env:literal) => { Some($env) };
    (
        $(
            $(#[doc = $doc:literal])*
            #[arg($($arg:tt)*)]
            $(#[serde($($serde:tt)*)])*
            $(#[schemars($($schemars:tt)*)])*
            $name:ident: $ty:ty = $default:expr,
            parameter $parameter:literal
            $(, env $env:literal)?
            $(, check $check:expr)?;
        )*
        fixed {
            $(
                $(#[doc = $fixed_doc:literal])*
                $fixed:ident: $fixed_ty:ty = $fixed_default:expr, parameter $fixed_parameter:literal;
            )*
        }
    ) => {
        /// Every setting, in the table's order.
        pub const SETTINGS: &[Setting] = &[$(
            Setting {
                name: stringify!($name),
                parameter: $parameter,
                env: settings_table!(@env $($env)?),
            },
        )*];

        /// The settings a person asks for, each left out or given: one layer
        /// of flags (this is the flags' clap definition) or of the set file
        /// (its `[settings]`), named alike.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, clap::Args)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct SettingsLayer {
            $(
                $(#[doc = $doc])*
                #[arg(long, $($arg)*)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        /// Function settings that become base-stack parameters.
        #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
        pub struct FunctionSettings {
            $(
                $(#[doc = $doc])*
                $(#[serde($($serde)*)])*
                $(#[schemars($($schemars)*)])*
                pub $name: $ty,
            )*
            $(
                $(#[doc = $fixed_doc])*
                pub $fixed: $fixed_ty,
            )*
            /// The region whose base stack holds the set's dashboard, once
            /// deployed: it stays there when regions are added, so adding one
            /// updates only that dashboard and never moves it.
            pub dashboard_home: Option<crate::model::regions::Region>,
        }

        impl Default for FunctionSettings {
            fn default() -> Self {
                Self {
                    $($name: $default,)*
                    $($fixed: $fixed_default,)*
                    dashboard_home: None,
                }
            }
        }

        impl FunctionSettings {
            /// The settings a deployed base stack was given (its parameters),
            /// so a region added later gets the same; defaults for any that
            /// are missing (a stack deployed before the setting existed).
            pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Self {
                fn get<T: FromStr>(p: &BTreeMap<String, String>, key: &str, default: T) -> T {
                    p.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
                }
                let d = Self::default();
                Self {
                    $($name: get(parameters, $parameter, d.$name),)*
                    $($fixed: get(parameters, $fixed_parameter, d.$fixed),)*
                    // Which stack holds it is known from all of them: see
                    // `DeployedSet::settings`.
                    dashboard_home: None,
                }
            }

            /// The base-stack parameters that hold these settings.
            pub fn parameters(&self) -> Vec<(String, String)> {
                vec![
                    $(($parameter.to_owned(), self.$name.to_string()),)*
                    $(($fixed_parameter.to_owned(), self.$fixed.to_string()),)*
                ]
            }

            /// The same bounds as the base template's parameters, checked
            /// before any AWS call so a bad value fails fast rather than as
            /// a rolled-back stack. The message names the flag, which is
            /// also the set file's key.
            pub fn check(&self) -> Result<(), InputError> {
                $($(
                    let check: fn(&$ty) -> Result<(), String> = $check;
                    check(&self.$name).map_err(|problem| {
                        InputError::new(format!("--{} {problem}", key_of(stringify!($name))))
                    })?;
                )?)*
                Ok(())
            }
        }

        impl SettingsLayer {
            /// This layer, with `lower`'s values where this one has none.
            pub fn over(self, lower: &SettingsLayer) -> SettingsLayer {
                SettingsLayer {
                    $($name: self.$name.or_else(|| lower.$name.clone()),)*
                }
            }

            /// `base` with this layer's values where it has them.
            pub fn applied_to(&self, base: FunctionSettings) -> FunctionSettings {
                FunctionSettings {
                    $($name: self.$name.clone().unwrap_or(base.$name),)*
                    ..base
                }
            }

            /// Every setting of `settings`, as a person would write it.
            pub fn of(settings: &FunctionSettings) -> SettingsLayer {
                SettingsLayer {
                    $($name: Some(settings.$name.clone()),)*
                }
            }

            /// The given settings by their set-file key, their values as text.
            fn entries(&self) -> BTreeMap<String, String> {
                let mut entries = BTreeMap::new();
                $(
                    if let Some(value) = &self.$name {
                        entries.insert(key_of(stringify!($name)), value.to_string());
                    }
                )*
                entries
            }
        }
    };
}

settings_table! {
    /// The instruction set the function runs on: x86_64 (Lambda's default)
    /// or arm64 (Graviton, about 20 % cheaper per GB-second). Left out, a
    /// deployed set keeps its architecture and a new set gets x86_64.
    #[arg(value_name = "ARCH")]
    // Lambda's own default; arm64 is the cheaper option, asked for. A set
    // deployed before the parameter existed ran on x86_64.
    architecture: Architecture = Architecture::default(),
        parameter "Architecture";

    /// Objects larger than this many bytes are copied in parts (S3's single
    /// copy limit is 5 GiB). Left out: kept, or 5368709120 (5 GiB) for a new set.
    #[arg(value_name = "BYTES")]
    // How copies are made is the replication crate's to say, once.
    multipart_threshold: u64 = CopySettings::default().multipart_threshold,
        parameter "MultipartThreshold", env "MULTIPART_THRESHOLD",
        check |v| within(v, 1..=MAX_COPY, format!("use 1 to {MAX_COPY} bytes (S3 copies at most 5 GiB in one request)"));

    /// The part size of multipart copies, in bytes (S3's minimum is 5 MiB).
    /// Left out: kept, or 268435456 (256 MiB) for a new set.
    #[arg(value_name = "BYTES")]
    part_size: u64 = CopySettings::default().part_size,
        parameter "PartSize", env "PART_SIZE",
        check |v| within(v, 1..=MAX_COPY, format!("use {MIN_PART} (5 MiB, S3's minimum) to {MAX_COPY} bytes"));

    /// Parts copied at once by one multipart copy. Left out: kept, or 8.
    #[arg(value_name = "N")]
    copy_concurrency: u32 = u32::try_from(CopySettings::default().concurrency).unwrap_or(u32::MAX),
        parameter "CopyConcurrency", env "COPY_CONCURRENCY",
        check |v| within(v, 1..=MAX_COPY_CONCURRENCY, format!("use 1 to {MAX_COPY_CONCURRENCY}"));

    /// How many days the function's logs are kept. Left out: kept, or 30.
    #[arg(value_name = "DAYS")]
    log_retention_days: u32 = 30,
        parameter "LogRetentionDays",
        check |v| if RETENTION_DAYS.contains(v) {
            Ok(())
        } else {
            Err(format!("{v} is not a period CloudWatch Logs offers: use one of {RETENTION_DAYS:?}"))
        };

    /// Carry deletes to every other region: `on` (the flag alone says on)
    /// or `off`. A delete carried removes the write it deleted, or one that
    /// loses to it, never a write that raced it. Left out, a deployed set
    /// keeps its setting and a new set keeps deletes where they are made.
    #[arg(value_name = "on|off", num_args = 0..=1, default_missing_value = "on", value_parser = on_off())]
    // Off until asked for: a set that never carried deletes keeps them
    // where they are made.
    replicate_deletes: bool = false,
        parameter "ReplicateDeletes", env "REPLICATE_DELETES";

    /// Days an overwritten or deleted version is kept, for `restore`, before
    /// it expires (expired delete markers are cleaned up too); 0 keeps every
    /// version forever. Left out, a deployed set keeps its setting and a
    /// new set keeps them 30 days.
    #[arg(value_name = "DAYS")]
    // A month to undo a delete or an overwrite with `restore`.
    keep_noncurrent_days: u32 = 30,
        parameter "KeepNoncurrentDays",
        check |v| within(v, 0..=MAX_KEEP_DAYS, format!("use 1 to {MAX_KEEP_DAYS} days, or 0 to keep noncurrent versions forever"));

    /// The mass-delete breaker: past this many deletes a minute from one
    /// region, its deletes are held (writes still replicate) until
    /// `toastrep deletes` releases or discards them. Left out, a deployed
    /// set keeps its setting and a new set gets 1000.
    #[arg(value_name = "PER_MINUTE")]
    #[serde(rename = "delete_breaker_per_minute")]
    // A full DeleteObjects batch (1,000 keys) a minute passes; a bigger
    // burst from one region waits for a person.
    delete_breaker: u32 = 1000,
        parameter "DeleteBreakerPerMinute", env "DELETE_BREAKER_PER_MINUTE",
        check |v| within(v, 1..=MAX_BREAKER, format!("use 1 to {MAX_BREAKER} deletes a minute"));

    /// How the function's log lines name object keys: `hashed` (a keyed
    /// hash; `toastrep hash-key` finds a key's lines) or `plain`. Keys often
    /// hold personal data. Left out, a deployed set keeps its setting and a
    /// new set logs them hashed.
    #[arg(value_name = "hashed|plain")]
    #[serde(rename = "hash_logged_keys", serialize_with = "LogKeys::serialize_hashed", deserialize_with = "LogKeys::deserialize_hashed")]
    #[schemars(
        with = "bool",
        description = "Whether the function logs object keys as their keyed hash (`LogKeys=hashed`) rather than plainly."
    )]
    // Keys often hold personal data; logs are read more widely, and kept
    // longer, than the objects.
    log_keys: LogKeys = LogKeys::Hashed,
        parameter "LogKeys", env "LOG_KEYS";

    /// When each region's repair runs in the cloud: an EventBridge Scheduler
    /// expression ('rate(6 hours)', 'cron(0 3 * * ? *)') or 'off'. Left
    /// out, a deployed set keeps its schedule and a new set repairs daily.
    #[arg(value_name = "EXPRESSION|off")]
    // Daily, as the original design's readers asked for a periodic sync;
    // often enough that a lost event is repaired within a day.
    repair_schedule: String = "rate(1 day)".into(),
        parameter "RepairScheduleExpression",
        check |v| schedule::check(v);

    /// Ranges one repair run repairs at once (its Distributed Map's
    /// MaxConcurrency). Left out: kept, or 10 for a new set.
    #[arg(value_name = "N")]
    #[serde(rename = "repair_max_concurrency")]
    repair_concurrency: u32 = 10,
        parameter "RepairMaxConcurrency",
        check |v| within(v, 1..=MAX_REPAIR_CONCURRENCY, format!("use 1 to {MAX_REPAIR_CONCURRENCY} ranges at once (a Distributed Map's limit)"));

    /// The latency alarm fires when the p99 from an object's event to its
    /// copy exceeds this many seconds over 15 minutes. Left out: kept, or
    /// 900 (S3 Replication Time Control's 15 minutes) for a new set.
    #[arg(value_name = "SECONDS")]
    // S3 Replication Time Control's promise.
    latency_alarm_seconds: u32 = 900,
        parameter "LatencyAlarmSeconds",
        check |v| if *v == 0 {
            Err("0 would always alarm: use 1 or more (900, S3 Replication Time Control's 15 minutes, is the default)".into())
        } else {
            Ok(())
        };

    /// The repair alarm fires when one run copies more than this many
    /// objects into a region. Left out: kept, or 1000 for a new set.
    #[arg(value_name = "COPIES")]
    #[serde(rename = "repair_copies_threshold")]
    repair_copies_alarm: u64 = 1000,
        parameter "RepairCopiesThreshold";

    /// An SNS topic (ARN) every alarm of the set notifies; '' for none.
    /// Left out: kept.
    #[arg(value_name = "ARN")]
    #[serde(rename = "alarm_topic_arn")]
    alarm_topic: String = String::new(),
        parameter "AlarmTopicArn",
        check |v| schedule::check_alarm_topic(v);

    /// An email address every alarm of the set notifies (it must confirm
    /// the subscription); '' for none. Left out: kept.
    #[arg(value_name = "ADDRESS")]
    alarm_email: String = String::new(),
        parameter "AlarmEmail",
        check |v| schedule::check_alarm_email(v);

    fixed {
        memory_size: u32 = 512, parameter "MemorySize";
        timeout: u32 = 900, parameter "Timeout";
    }
}

/// `value` within `range`, or why not.
fn within<T: PartialOrd + fmt::Display>(
    value: &T,
    range: RangeInclusive<T>,
    hint: String,
) -> Result<(), String> {
    if range.contains(value) {
        Ok(())
    } else {
        Err(format!("{value} is out of range: {hint}"))
    }
}

/// `on` or `off` (a setting switched), as a flag's value.
fn on_off() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["on", "off"]).map(|value| value == "on")
}

impl FunctionSettings {
    /// How the set's functions copy: what sync, replay, backfill, restore
    /// and `deletes --release` copy with too.
    pub fn copy_settings(&self) -> CopySettings {
        CopySettings {
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            concurrency: self.copy_concurrency as usize,
        }
    }
}

/// S3's limits, as the replication crate states them.
const MAX_COPY: u64 = toastrep_replication::MAX_COPY_SIZE;
const MIN_PART: u64 = toastrep_replication::MIN_PART_SIZE;
const MAX_COPY_CONCURRENCY: u32 = toastrep_replication::MAX_CONCURRENCY as u32;
/// The longest noncurrent-version retention the template accepts (100 years).
pub(crate) const MAX_KEEP_DAYS: u32 = 36_500;
/// The highest delete-breaker limit the template accepts.
pub(crate) const MAX_BREAKER: u32 = 1_000_000;
/// A Distributed Map's highest MaxConcurrency.
pub(crate) const MAX_REPAIR_CONCURRENCY: u32 = 10_000;
/// The values CloudWatch Logs accepts for a retention period.
pub(crate) const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// How the functions name object keys in their logs: the flag's value, the
/// set file's, the parameter's and the function's environment's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogKeys {
    Hashed,
    Plain,
}

impl LogKeys {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hashed => "hashed",
            Self::Plain => "plain",
        }
    }

    /// As the resolved settings' JSON has always shown it: whether keys are
    /// logged as their keyed hash.
    fn serialize_hashed<S: serde::Serializer>(
        value: &LogKeys,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(*value == LogKeys::Hashed)
    }

    /// Reads back what [`LogKeys::serialize_hashed`] wrote.
    fn deserialize_hashed<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<LogKeys, D::Error> {
        let hashed = <bool as Deserialize>::deserialize(deserializer)?;
        Ok(if hashed {
            LogKeys::Hashed
        } else {
            LogKeys::Plain
        })
    }
}

impl fmt::Display for LogKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogKeys {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Hashed, Self::Plain]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a way to log keys: use hashed or plain"))
    }
}

/// Who asks for a setting's new value: what neither a flag nor the set
/// file gives keeps its deployed value, and so is never a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Flag,
    SetFile,
}

/// The settings asked for: the flags over the set file. What is left out
/// keeps its deployed value, or for a new set the default: a redeploy
/// never silently reverts a setting.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    pub flags: SettingsLayer,
    pub set_file: SettingsLayer,
}

/// One setting a deploy would change on a deployed set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettingChange {
    /// The flag's (and the set file's) name for it.
    pub setting: String,
    pub deployed: String,
    pub planned: String,
    /// Who asks for the change.
    pub source: Source,
}

impl Requested {
    /// The settings to deploy over what is `deployed` (none for a new set).
    pub fn resolve(&self, deployed: Option<&FunctionSettings>) -> FunctionSettings {
        let base = deployed.cloned().unwrap_or_default();
        self.flags.clone().over(&self.set_file).applied_to(base)
    }

    /// The settings whose deployed value the resolved ones change, and why.
    pub fn changes(&self, deployed: &FunctionSettings) -> Vec<SettingChange> {
        let now = SettingsLayer::of(deployed).entries();
        let planned = SettingsLayer::of(&self.resolve(Some(deployed))).entries();
        let flags = self.flags.entries();
        planned
            .into_iter()
            .filter(|(key, value)| now.get(key) != Some(value))
            .map(|(key, planned)| SettingChange {
                source: if flags.contains_key(&key) {
                    Source::Flag
                } else {
                    Source::SetFile
                },
                deployed: now.get(&key).cloned().unwrap_or_default(),
                planned,
                setting: key,
            })
            .collect()
    }
}

/// The function a deploy ships, and the settings asked for.
#[derive(Debug, Clone)]
pub struct FunctionRequest {
    pub requested: Requested,
    pub lambda_zip: Option<PathBuf>,
    pub function_source: Option<PathBuf>,
}

impl FunctionRequest {
    /// The architecture asked for, by a flag or the set file.
    pub fn architecture(&self) -> Option<Architecture> {
        self.requested
            .flags
            .architecture
            .or(self.requested.set_file.architecture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_set_file_which_wins_over_what_is_deployed() {
        let deployed = FunctionSettings {
            part_size: 8 * 1024 * 1024,
            keep_noncurrent_days: 7,
            ..FunctionSettings::default()
        };
        let requested = Requested {
            flags: SettingsLayer {
                keep_noncurrent_days: Some(90),
                ..SettingsLayer::default()
            },
            set_file: SettingsLayer {
                keep_noncurrent_days: Some(60),
                log_keys: Some(LogKeys::Plain),
                ..SettingsLayer::default()
            },
        };
        let resolved = requested.resolve(Some(&deployed));
        assert_eq!(resolved.keep_noncurrent_days, 90);
        assert_eq!(resolved.log_keys, LogKeys::Plain);
        // Left out everywhere: kept, not reverted to the default.
        assert_eq!(resolved.part_size, 8 * 1024 * 1024);
        let changes = requested.changes(&deployed);
        let named: Vec<(&str, &str, &str, Source)> = changes
            .iter()
            .map(|c| {
                (
                    c.setting.as_str(),
                    c.deployed.as_str(),
                    c.planned.as_str(),
                    c.source,
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("keep-noncurrent-days", "7", "90", Source::Flag),
                ("log-keys", "hashed", "plain", Source::SetFile),
            ]
        );
    }

    #[test]
    fn nothing_asked_for_changes_nothing() {
        let deployed = FunctionSettings {
            repair_schedule: "off".into(),
            ..FunctionSettings::default()
        };
        let requested = Requested::default();
        assert!(requested.changes(&deployed).is_empty());
        assert_eq!(requested.resolve(Some(&deployed)).repair_schedule, "off");
    }

    #[test]
    fn a_layer_of_every_setting_round_trips() {
        let settings = FunctionSettings {
            architecture: Architecture::Arm64,
            log_keys: LogKeys::Plain,
            alarm_email: "ops@example.com".into(),
            ..FunctionSettings::default()
        };
        let back = SettingsLayer::of(&settings).applied_to(FunctionSettings::default());
        assert_eq!(
            SettingsLayer::of(&back),
            SettingsLayer::of(&settings),
            "every field of the layer maps to one of the settings"
        );
    }
}

/// The table against what it names: clap's flags, serde's keys, the base
/// template's parameters and the function's environment, and the rest of
/// the sources.
#[cfg(test)]
mod table_tests {
    use std::path::Path;

    use super::*;
    use crate::model::templates::Template;

    /// A setting the table sends to the function reaches a variable the
    /// function's configuration reads (`toastrep_replication::function::config`).
    #[test]
    fn the_function_reads_every_variable_the_table_sets() {
        use toastrep_replication::function::config::FROM_THE_STACK;
        let unread: Vec<&str> = SETTINGS
            .iter()
            .filter_map(|s| s.env)
            .filter(|env| !FROM_THE_STACK.contains(env))
            .collect();
        assert!(unread.is_empty(), "the function reads none of {unread:?}");
        assert!(SETTINGS.iter().filter(|s| s.env.is_some()).count() >= 5);
    }

    #[test]
    fn clap_and_serde_name_each_setting_as_the_table_does() {
        let command = <SettingsLayer as clap::Args>::augment_args(clap::Command::new("t"));
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(|long| format!("--{long}"))
            .collect();
        let table: Vec<String> = SETTINGS.iter().map(Setting::flag).collect();
        assert_eq!(flags, table);
        let every = SettingsLayer::of(&FunctionSettings::default());
        let keys: Vec<String> = serde_json::to_value(&every)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut table: Vec<String> = SETTINGS.iter().map(Setting::key).collect();
        table.sort();
        assert_eq!(keys, table);
    }

    /// The base template sets each variable the table names from the
    /// setting's parameter, and passes no setting to the function under a
    /// name the table does not give it.
    #[test]
    fn the_function_reads_each_setting_from_the_variable_the_table_names() {
        let body: serde_yaml::Value = serde_yaml::from_str(Template::Base.body()).unwrap();
        let parameters = body["Parameters"].as_mapping().unwrap();
        let variables = &crate::model::templates::function_variables();
        let reference = |value: &serde_yaml::Value| match value {
            serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Ref" => {
                tagged.value.as_str().map(str::to_owned)
            }
            _ => None,
        };
        for setting in SETTINGS {
            assert!(
                parameters.contains_key(setting.parameter),
                "{} in the base template",
                setting.parameter
            );
            if let Some(env) = setting.env {
                assert_eq!(
                    variables.get(env).and_then(reference).as_deref(),
                    Some(setting.parameter),
                    "{env}: !Ref {}",
                    setting.parameter
                );
            }
        }
        for (name, value) in variables {
            let Some(parameter) = reference(value) else {
                continue;
            };
            if let Some(setting) = SETTINGS.iter().find(|s| s.parameter == parameter) {
                assert_eq!(
                    setting.env,
                    name.as_str(),
                    "the function reads {parameter} as {name:?}: the table must say so"
                );
            }
        }
    }

    /// Mentions of a setting's flag in prose that cannot take it from the
    /// table (clap's help is doc comments), each checked to name a flag the
    /// table has: renaming a setting fails here until they follow.
    const MENTIONS: &[(&str, &str)] = &[
        // hash-key's help.
        ("src/cli.rs", "--log-keys"),
        // `package --architecture` is the package command's own flag, and
        // names the same choice.
        ("src/package/bootstrap.rs", "--architecture"),
    ];

    fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    /// The settings table is the only place a setting's name appears: no
    /// other source under `src/` spells out its flag, its set-file key, its
    /// parameter or its variable. Code names a setting by its Rust name
    /// (`settings.part_size`, `setting_flag!(part_size)`). Test code is not
    /// read: it pins the names users see.
    #[test]
    fn the_table_is_the_only_place_a_setting_is_named() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        files.sort();
        let mut found = Vec::new();
        for path in &files {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            // The table, and modules of tests only.
            if relative == "src/model/function.rs"
                || relative == "src/model/template_constraints.rs"
                || relative == "src/commands/summaries.rs"
            {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for setting in SETTINGS {
                let flag = setting.flag();
                let spelled = code.match_indices(&flag).any(|(at, _)| {
                    !code[at + flag.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                });
                let quoted = [Some(setting.key()), Some(setting.parameter.to_owned())]
                    .into_iter()
                    .chain([setting.env.map(str::to_owned)])
                    .flatten()
                    .find(|name| code.contains(&format!("\"{name}\"")));
                let mentioned = MENTIONS.contains(&(relative.as_str(), flag.as_str()));
                if spelled && !mentioned {
                    found.push(format!("{relative}: {flag}"));
                }
                if let Some(name) = quoted {
                    found.push(format!("{relative}: \"{name}\""));
                }
            }
        }
        assert!(
            found.is_empty(),
            "settings named outside the table (take the name from it, e.g. setting_flag!): {found:#?}"
        );
        for (file, flag) in MENTIONS {
            assert!(
                SETTINGS.iter().any(|s| s.flag() == *flag),
                "{file} mentions {flag}, which is no setting: update it"
            );
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            assert!(
                text.contains(flag),
                "{file} no longer mentions {flag}: drop it from MENTIONS"
            );
        }
    }
}
