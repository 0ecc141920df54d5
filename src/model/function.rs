//! The settings of a set's functions, alarms and repair: what becomes the
//! base stacks' parameters, with the template's bounds checked up front.

use std::collections::BTreeMap;

use serde::Serialize;

use toastrep_replication::CopySettings;

use crate::error::InputError;
use crate::model::architecture::Architecture;

/// Function settings that become base-stack parameters.
#[derive(Debug, Clone, Serialize)]
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

/// S3 refuses a single CopyObject, and a part, above 5 GiB.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// The longest noncurrent-version retention the template accepts (100 years).
const MAX_KEEP_DAYS: u32 = 36_500;
/// The highest delete-breaker limit the template accepts.
const MAX_BREAKER: u32 = 1_000_000;
/// The values CloudWatch Logs accepts for a retention period.
const RETENTION_DAYS: &[u32] = &[
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
                "--part-size {} is out of range: use 5242880 (5 MiB, S3's minimum) to {MAX_COPY} bytes",
                self.part_size
            )));
        }
        if !(1..=64).contains(&self.copy_concurrency) {
            return Err(InputError::new(format!(
                "--copy-concurrency {} is out of range: use 1 to 64",
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
        if !(1..=10_000).contains(&self.repair_max_concurrency) {
            return Err(InputError::new(format!(
                "--repair-concurrency {} is out of range: use 1 to 10000 ranges at once (a Distributed Map's limit)",
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
