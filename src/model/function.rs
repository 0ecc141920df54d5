//! The settings of a set's functions, alarms and repair: what becomes the
//! base stacks' parameters, with the template's bounds checked up front.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use toastrep_replication::CopySettings;

use crate::error::InputError;
use crate::model::architecture::Architecture;

/// Function settings that become base-stack parameters.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunctionSettings {
    pub log_retention_days: u32,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub copy_concurrency: u32,
    pub memory_size: u32,
    pub timeout: u32,
    /// Whether deletes are carried to the other regions.
    pub replicate_deletes: bool,
    /// Days a noncurrent version is kept before it expires; 0 keeps them.
    pub keep_noncurrent_days: u32,
    /// Deletes a minute from one region past which its deletes are held.
    pub delete_breaker_per_minute: u32,
    /// Whether the function logs object keys as their keyed hash
    /// (`LogKeys=hashed`) rather than plainly.
    pub hash_logged_keys: bool,
    /// The instruction set the function runs on.
    pub architecture: Architecture,
    /// When each region's repair runs (a Scheduler expression), or `off`.
    pub repair_schedule: String,
    /// Ranges a repair run repairs at once.
    pub repair_max_concurrency: u32,
    /// The p99 replication latency past which the latency alarm fires.
    pub latency_alarm_seconds: u32,
    /// Copies in one repair run past which the repair alarm fires.
    pub repair_copies_threshold: u64,
    /// An SNS topic every alarm notifies ("" for none).
    pub alarm_topic_arn: String,
    /// An email address every alarm notifies ("" for none).
    pub alarm_email: String,
    /// The region whose base stack holds the set's dashboard, once
    /// deployed: it stays there when regions are added, so adding one
    /// updates only that dashboard and never moves it.
    pub dashboard_home: Option<String>,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        // How copies are made is the replication crate's to say, once.
        let copy = CopySettings::default();
        Self {
            log_retention_days: 30,
            multipart_threshold: copy.multipart_threshold,
            part_size: copy.part_size,
            copy_concurrency: u32::try_from(copy.concurrency).unwrap_or(u32::MAX),
            memory_size: 512,
            timeout: 900,
            // Off until asked for: a set that never carried deletes keeps
            // them where they are made.
            replicate_deletes: false,
            // A month to undo a delete or an overwrite with `restore`.
            keep_noncurrent_days: 30,
            // A full DeleteObjects batch (1,000 keys) a minute passes; a
            // bigger burst from one region waits for a person.
            delete_breaker_per_minute: 1000,
            // Keys often hold personal data; logs are read more widely, and
            // kept longer, than the objects.
            hash_logged_keys: true,
            // Lambda's own default; arm64 is the cheaper option, asked for.
            architecture: Architecture::default(),
            // Daily, as the original design's readers asked for a periodic
            // sync; often enough that a lost event is repaired within a day.
            repair_schedule: "rate(1 day)".into(),
            repair_max_concurrency: 10,
            // S3 Replication Time Control's promise.
            latency_alarm_seconds: 900,
            repair_copies_threshold: 1000,
            alarm_topic_arn: String::new(),
            alarm_email: String::new(),
            dashboard_home: None,
        }
    }
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

    /// The settings a deployed base stack was given (its parameters), so a
    /// region added later gets the same; defaults for any that are missing.
    pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Self {
        fn get<T: std::str::FromStr>(p: &BTreeMap<String, String>, key: &str, default: T) -> T {
            p.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
        }
        let d = Self::default();
        Self {
            log_retention_days: get(parameters, "LogRetentionDays", d.log_retention_days),
            multipart_threshold: get(parameters, "MultipartThreshold", d.multipart_threshold),
            part_size: get(parameters, "PartSize", d.part_size),
            copy_concurrency: get(parameters, "CopyConcurrency", d.copy_concurrency),
            memory_size: get(parameters, "MemorySize", d.memory_size),
            timeout: get(parameters, "Timeout", d.timeout),
            replicate_deletes: get(parameters, "ReplicateDeletes", d.replicate_deletes),
            keep_noncurrent_days: get(parameters, "KeepNoncurrentDays", d.keep_noncurrent_days),
            delete_breaker_per_minute: get(
                parameters,
                "DeleteBreakerPerMinute",
                d.delete_breaker_per_minute,
            ),
            hash_logged_keys: parameters
                .get("LogKeys")
                .map_or(d.hash_logged_keys, |v| v != "plain"),
            architecture: get(parameters, "Architecture", d.architecture),
            repair_schedule: get(parameters, "RepairScheduleExpression", d.repair_schedule),
            repair_max_concurrency: get(
                parameters,
                "RepairMaxConcurrency",
                d.repair_max_concurrency,
            ),
            latency_alarm_seconds: get(parameters, "LatencyAlarmSeconds", d.latency_alarm_seconds),
            repair_copies_threshold: get(
                parameters,
                "RepairCopiesThreshold",
                d.repair_copies_threshold,
            ),
            alarm_topic_arn: get(parameters, "AlarmTopicArn", d.alarm_topic_arn),
            alarm_email: get(parameters, "AlarmEmail", d.alarm_email),
            // Which stack holds it is known from all of them: see
            // `DeployedSet::settings`.
            dashboard_home: None,
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

impl FunctionSettings {
    /// The same bounds as the base template's parameters, checked before any
    /// AWS call so a bad value fails fast rather than as a rolled-back stack.
    pub fn check(&self) -> Result<(), InputError> {
        if !(1..=MAX_COPY).contains(&self.multipart_threshold) {
            return Err(InputError::new(format!(
                "--multipart-threshold {} is out of range: use 1 to {MAX_COPY} bytes (S3 copies at most 5 GiB in one request)",
                self.multipart_threshold
            )));
        }
        if !(1..=MAX_COPY).contains(&self.part_size) {
            return Err(InputError::new(format!(
                "--part-size {} is out of range: use {MIN_PART} (5 MiB, S3's minimum) to {MAX_COPY} bytes",
                self.part_size
            )));
        }
        if !(1..=MAX_COPY_CONCURRENCY).contains(&self.copy_concurrency) {
            return Err(InputError::new(format!(
                "--copy-concurrency {} is out of range: use 1 to {MAX_COPY_CONCURRENCY}",
                self.copy_concurrency
            )));
        }
        if self.keep_noncurrent_days > MAX_KEEP_DAYS {
            return Err(InputError::new(format!(
                "--keep-noncurrent-days {} is out of range: use 1 to {MAX_KEEP_DAYS} days, or 0 to keep noncurrent versions forever",
                self.keep_noncurrent_days
            )));
        }
        if !(1..=MAX_BREAKER).contains(&self.delete_breaker_per_minute) {
            return Err(InputError::new(format!(
                "--delete-breaker {} is out of range: use 1 to {MAX_BREAKER} deletes a minute",
                self.delete_breaker_per_minute
            )));
        }
        crate::model::schedule::check(&self.repair_schedule)?;
        if !(1..=MAX_REPAIR_CONCURRENCY).contains(&self.repair_max_concurrency) {
            return Err(InputError::new(format!(
                "--repair-concurrency {} is out of range: use 1 to {MAX_REPAIR_CONCURRENCY} ranges at once (a Distributed Map's limit)",
                self.repair_max_concurrency
            )));
        }
        if self.latency_alarm_seconds == 0 {
            return Err(InputError::new(
                "--latency-alarm-seconds 0 would always alarm: use 1 or more (900, S3 Replication Time Control's 15 minutes, is the default)",
            ));
        }
        crate::model::schedule::check_alarm_targets(&self.alarm_topic_arn, &self.alarm_email)?;
        if !RETENTION_DAYS.contains(&self.log_retention_days) {
            return Err(InputError::new(format!(
                "--log-retention-days {} is not a period CloudWatch Logs offers: use one of {RETENTION_DAYS:?}",
                self.log_retention_days
            )));
        }
        Ok(())
    }
}

/// How the functions name object keys in their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogKeys {
    Hashed,
    Plain,
}

/// The settings a person asks for, each left out or given: one layer of
/// flags, or of the set file. Named as the flags are (`part-size`, ...), so
/// the set file and the command line speak one vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SettingsLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart_threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicate_deletes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_noncurrent_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_breaker: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_keys: Option<LogKeys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_alarm_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_copies_alarm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_email: Option<String>,
}

/// Calls `$m` for every setting: its name in a layer, its field in
/// [`FunctionSettings`], and how a layer's value becomes the field's.
macro_rules! each_setting {
    ($m:ident) => {
        $m!(architecture, architecture, v => v);
        $m!(multipart_threshold, multipart_threshold, v => v);
        $m!(part_size, part_size, v => v);
        $m!(copy_concurrency, copy_concurrency, v => v);
        $m!(log_retention_days, log_retention_days, v => v);
        $m!(replicate_deletes, replicate_deletes, v => v);
        $m!(keep_noncurrent_days, keep_noncurrent_days, v => v);
        $m!(delete_breaker, delete_breaker_per_minute, v => v);
        $m!(log_keys, hash_logged_keys, v => v == LogKeys::Hashed);
        $m!(repair_schedule, repair_schedule, v => v);
        $m!(repair_concurrency, repair_max_concurrency, v => v);
        $m!(latency_alarm_seconds, latency_alarm_seconds, v => v);
        $m!(repair_copies_alarm, repair_copies_threshold, v => v);
        $m!(alarm_topic, alarm_topic_arn, v => v);
        $m!(alarm_email, alarm_email, v => v);
    };
}

impl SettingsLayer {
    /// This layer, with `lower`'s values where this one has none.
    pub fn over(mut self, lower: &SettingsLayer) -> SettingsLayer {
        macro_rules! fill {
            ($layer:ident, $field:ident, $v:ident => $to:expr) => {
                if self.$layer.is_none() {
                    self.$layer = lower.$layer.clone();
                }
            };
        }
        each_setting!(fill);
        self
    }

    /// `base` with this layer's values where it has them.
    pub fn applied_to(&self, mut base: FunctionSettings) -> FunctionSettings {
        macro_rules! apply {
            ($layer:ident, $field:ident, $v:ident => $to:expr) => {
                if let Some($v) = self.$layer.clone() {
                    base.$field = $to;
                }
            };
        }
        each_setting!(apply);
        base
    }

    /// Every setting of `settings`, as a person would write it.
    pub fn of(settings: &FunctionSettings) -> SettingsLayer {
        SettingsLayer {
            architecture: Some(settings.architecture),
            multipart_threshold: Some(settings.multipart_threshold),
            part_size: Some(settings.part_size),
            copy_concurrency: Some(settings.copy_concurrency),
            log_retention_days: Some(settings.log_retention_days),
            replicate_deletes: Some(settings.replicate_deletes),
            keep_noncurrent_days: Some(settings.keep_noncurrent_days),
            delete_breaker: Some(settings.delete_breaker_per_minute),
            log_keys: Some(if settings.hash_logged_keys {
                LogKeys::Hashed
            } else {
                LogKeys::Plain
            }),
            repair_schedule: Some(settings.repair_schedule.clone()),
            repair_concurrency: Some(settings.repair_max_concurrency),
            latency_alarm_seconds: Some(settings.latency_alarm_seconds),
            repair_copies_alarm: Some(settings.repair_copies_threshold),
            alarm_topic: Some(settings.alarm_topic_arn.clone()),
            alarm_email: Some(settings.alarm_email.clone()),
        }
    }

    /// The given settings by name, their values as text.
    fn entries(&self) -> BTreeMap<String, String> {
        let value = serde_json::to_value(self).expect("settings serialise");
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect()
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
        assert!(!resolved.hash_logged_keys);
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
            hash_logged_keys: false,
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
