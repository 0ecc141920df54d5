//! The mass-delete breaker in the simulation: each region runs the
//! function's own [`Breaker`], on in-memory services (its artifact bucket,
//! its held-deletes queue, its alarm) and the simulated clock. A notice's
//! delete passes its region's breaker; a repair's delete asks the breaker
//! of the region it would be made in, as `sync` reads the set's open
//! breakers. The operator's release is `toastrep deletes --release`'s:
//! only sealed messages are carried, in passes, then the breakers close.
//!
//! It also records what each gate let through and held, so the world can
//! check that no delete reached a region without passing it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use super::s3::SimS3;
use super::services::{MemoryAlarm, MemoryArtifacts, MemoryQueue};
use crate::engine::{DeleteGate, Gate};
use crate::event::{S3Notice, parse_s3_message};
use crate::function::breaker::Breaker;
use crate::function::breaker_keys;
use crate::function::log_keys::LogKeys;
use crate::protocol::MarkerKey;

pub type SimBreaker = Breaker<MemoryArtifacts, MemoryQueue, MemoryAlarm>;

/// Every region's breaker, and what their gates did.
#[derive(Debug)]
pub struct Breakers {
    regions: Vec<SimBreaker>,
    record: Mutex<Record>,
}

/// What the gates let through and held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    /// (destination, key) of every delete let through, by a notice or a
    /// repair.
    admitted: BTreeSet<(String, String)>,
    /// (destination, notice) of every delete held.
    held: Vec<(String, S3Notice)>,
}

/// The breakers' state at the end of a schedule: two runs of one seed
/// agree on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerState {
    /// Region → the keys in its artifact bucket (counts, open breakers).
    pub artifacts: BTreeMap<String, Vec<String>>,
    /// Region → messages still in its held-deletes queue.
    pub queued: BTreeMap<String, usize>,
    /// How often an alarm was raised.
    pub alarms: usize,
    pub admitted: BTreeSet<(String, String)>,
    pub held: Vec<(String, S3Notice)>,
}

impl Breakers {
    /// A breaker of `per_minute` for each of `regions`, sealing with `key`.
    pub fn new(regions: &[String], per_minute: u32, key: &MarkerKey, clock: &SimS3) -> Breakers {
        let regions = regions
            .iter()
            .map(|region| Breaker {
                per_minute,
                region: region.clone(),
                key: key.clone(),
                log_keys: LogKeys::Plain,
                artifacts: MemoryArtifacts::default(),
                held: MemoryQueue::default(),
                alarm: MemoryAlarm::default(),
                clock: Arc::new(clock.clone()),
            })
            .collect();
        Breakers {
            regions,
            record: Mutex::default(),
        }
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn of(&self, region: &str) -> Option<&SimBreaker> {
        self.regions.iter().find(|b| b.region == region)
    }

    /// Deletes held, by a gate, whose key no gate let through into that
    /// region since.
    pub fn held_only(&self) -> Vec<(String, S3Notice)> {
        let record = self.record();
        record
            .held
            .iter()
            .filter(|(region, notice)| {
                !record
                    .admitted
                    .contains(&(region.clone(), notice.key.clone()))
            })
            .cloned()
            .collect()
    }

    /// How many deletes were held.
    pub fn held_count(&self) -> usize {
        self.record().held.len()
    }

    /// How many breakers opened (alarms raised).
    pub fn opened(&self) -> usize {
        self.regions.iter().map(|b| b.alarm.raised()).sum()
    }

    /// Whether any breaker is open or holds a delete.
    pub fn any_holding(&self) -> bool {
        self.regions.iter().any(|b| {
            !b.held.is_empty()
                || b.artifacts
                    .keys()
                    .iter()
                    .any(|k| k.starts_with(breaker_keys::OPEN))
        })
    }

    /// `toastrep deletes --release`'s reading of each region's queue: the
    /// messages the region's function sealed, as notices, taken off the
    /// queue. A message without a valid seal is refused, never carried.
    pub fn take_sealed(&self) -> Result<Vec<(String, S3Notice)>, String> {
        let mut sealed = Vec::new();
        for breaker in &self.regions {
            for message in breaker.held.take_all() {
                let seal = message
                    .attribute(breaker_keys::SEAL_ATTRIBUTE)
                    .unwrap_or_default();
                if !breaker_keys::is_sealed(&breaker.key, &breaker.region, &message.body, seal) {
                    return Err(format!(
                        "{}'s held-deletes queue holds a message without its seal: {}",
                        breaker.region, message.body
                    ));
                }
                let notices = parse_s3_message(&message.body).map_err(|e| e.to_string())?;
                sealed.extend(notices.into_iter().map(|n| (breaker.region.clone(), n)));
            }
        }
        Ok(sealed)
    }

    /// Puts `notice` back in `region`'s queue (a release that failed).
    pub async fn keep(&self, region: &str, notice: &S3Notice) {
        if let Some(breaker) = self.of(region) {
            // In memory, holding cannot fail.
            let _ = breaker.hold(notice).await;
        }
    }

    /// Closes every open breaker, as `toastrep deletes` does once every
    /// held delete is carried.
    pub fn close_all(&self) {
        for breaker in &self.regions {
            for key in breaker.artifacts.keys() {
                if key.starts_with(breaker_keys::OPEN) {
                    breaker.artifacts.remove(&key);
                }
            }
        }
    }

    pub fn state(&self) -> BreakerState {
        let record = self.record().clone();
        BreakerState {
            artifacts: self
                .regions
                .iter()
                .map(|b| (b.region.clone(), b.artifacts.keys()))
                .collect(),
            queued: self
                .regions
                .iter()
                .map(|b| (b.region.clone(), b.held.len()))
                .collect(),
            alarms: self.opened(),
            admitted: record.admitted,
            held: record.held,
        }
    }
}

/// One region's gate over the set's [`Breakers`].
#[derive(Debug, Clone)]
pub struct SimGate {
    pub region: String,
    pub breakers: Arc<Breakers>,
}

impl DeleteGate for SimGate {
    fn admit<'a>(
        &'a self,
        notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>> {
        Box::pin(async move {
            let breaker = self
                .breakers
                .of(&self.region)
                .ok_or("a region of the set")?;
            let gate = breaker.admit(notice).await?;
            let entry = (self.region.clone(), notice.key.clone());
            let mut record = self.breakers.record();
            match gate {
                Gate::Carry => {
                    record.admitted.insert(entry);
                }
                Gate::Held => record.held.push((self.region.clone(), notice.clone())),
            }
            Ok(gate)
        })
    }

    fn holds<'a>(
        &'a self,
        destination: &'a str,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let breaker = self
                .breakers
                .of(destination)
                .ok_or_else(|| format!("{destination} is not a region of the set"))?;
            breaker.holds(destination, source).await
        })
    }
}
