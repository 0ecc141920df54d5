//! The mass-delete breaker in the simulation, as the function keeps it:
//! deletes a notice carries into a region are counted per source region and
//! minute of the simulated clock; past the limit the breaker for that source
//! opens there and holds its notices, until the operator releases them. A
//! repair's delete asks whether the breaker holds its source.
//!
//! It also records what it let through, so the world can check that no
//! delete reached a region without passing it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use super::s3::SimS3;
use crate::engine::{DeleteGate, Gate};
use crate::event::S3Notice;

/// Every region's breaker, shared by the regions' gates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakers {
    /// (destination, source, minute) → the delete markers counted.
    counts: BTreeMap<(String, String, u64), BTreeSet<String>>,
    /// (destination, source) of each open breaker.
    pub open: BTreeSet<(String, String)>,
    /// Held notices, by destination region.
    pub held: Vec<(String, S3Notice)>,
    /// (destination, key) of every delete let through, by a notice or a
    /// repair.
    pub admitted: BTreeSet<(String, String)>,
    /// The operator released every held delete: nothing is held any more.
    pub released: bool,
}

/// One region's gate over the shared [`Breakers`].
#[derive(Debug, Clone)]
pub struct SimGate {
    pub region: String,
    pub per_minute: u32,
    pub clock: SimS3,
    pub breakers: Arc<Mutex<Breakers>>,
}

impl SimGate {
    fn state(&self) -> MutexGuard<'_, Breakers> {
        self.breakers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(&self, notice: &S3Notice) -> Gate {
        let minute = self.clock.clock_ms() / 60_000;
        let mut state = self.state();
        let admitted = (self.region.clone(), notice.key.clone());
        if state.released {
            state.admitted.insert(admitted);
            return Gate::Carry;
        }
        let breaker = (self.region.clone(), notice.region.clone());
        if !state.open.contains(&breaker) {
            let counted = state
                .counts
                .entry((breaker.0.clone(), breaker.1.clone(), minute))
                .or_default();
            counted.insert(notice.version_id.clone().unwrap_or_default());
            if counted.len() as u32 <= self.per_minute {
                state.admitted.insert(admitted);
                return Gate::Carry;
            }
            state.open.insert(breaker);
        }
        state.held.push((self.region.clone(), notice.clone()));
        Gate::Held
    }
}

impl DeleteGate for SimGate {
    fn admit<'a>(
        &'a self,
        notice: &'a S3Notice,
    ) -> Pin<Box<dyn Future<Output = Result<Gate, String>> + Send + 'a>> {
        Box::pin(async move { Ok(self.decide(notice)) })
    }

    fn holds<'a>(
        &'a self,
        destination: &'a str,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let state = self.state();
            Ok(!state.released && state.open.contains(&(destination.into(), source.into())))
        })
    }
}
