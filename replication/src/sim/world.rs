//! One simulated replica set: user writes, the notifications they cause,
//! every region's replicator, the platform's retries and dead-letter
//! queue, a replay and a sync at the end, and the checks that the set
//! converged on the documented winner and then stopped copying.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use super::breaker::{BreakerState, Breakers, SimGate};
use super::executor::Executor;
use super::repair::{FlakyArtifacts, Run, RunOutcome, SimControl};
use super::s3::{Faults, SimS3, Version, head_of};
use crate::engine::{
    CopySettings, KeyRange, Outcome, Replicator, ScanLimit, ScanOptions, ScanStep, SetBuckets,
};
use crate::event::S3Notice;
use crate::function::repair::Tally;
use crate::protocol::marker::{MARKER, RESERVED_PREFIX};
use crate::protocol::{Headers, Kind, MarkerKey, MarkerKeys, Seen};
use crate::store::Bucket;

/// Region names, in an order that is not their sorted order, so the
/// tie-break is exercised both ways.
const REGIONS: [&str; 5] = [
    "us-east-1",
    "eu-west-2",
    "ap-northeast-1",
    "us-west-2",
    "eu-central-1",
];
/// Steps after which a schedule that has not gone quiet fails.
const STEP_LIMIT: u64 = 400_000;

/// Passes of one release over the held-deletes queues (`deletes`' own).
const RELEASE_PASSES: usize = 5;

/// Runs of the cloud repair while the platform fails.
const FAULTY_CLOUD_RUNS: usize = 3;

/// Releases an operator runs before the breakers must be quiet.
const RELEASE_ROUNDS: usize = 5;

/// What a user does, at a time in the schedule.
/// Serialized as recorded regressions are (`tests/regressions.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserOp {
    /// PutObject of new bytes.
    Put { region: usize, key: String },
    /// A server-side copy of whatever is current at `from` to `to`, within
    /// one bucket, metadata and tags included.
    Copy {
        region: usize,
        from: String,
        to: String,
    },
    /// The current object of `key` in region `from` uploaded again, bytes
    /// and metadata (a replica's marker included), into region `region`.
    Reupload {
        region: usize,
        from: usize,
        key: String,
    },
    /// An upload whose metadata claims another region and a far-future time.
    Forged { region: usize, key: String },
    /// Other bytes uploaded at `key` in `region` with the metadata of its
    /// current object there (a fresh replica's marker included): of the
    /// same size, or not.
    Rebadged {
        region: usize,
        key: String,
        same_size: bool,
    },
    /// DeleteObject without a version id: a delete marker on top.
    Delete { region: usize, key: String },
    /// DeleteObject of the current version by its id: never carried.
    DeleteVersion { region: usize, key: String },
    /// Nothing happens until every delivery in flight is done, so what
    /// follows comes after every write that arrived.
    Quiesce,
    /// Time passes: longer than a marker's window.
    Wait { seconds: u64 },
    /// `region`'s function is updated to seal with key `current` and to
    /// accept markers of `accepted` too (see [`marker_key`]): one step of a
    /// key rotation. Deliveries already running finish under the old keys.
    Rekey {
        region: usize,
        current: u8,
        accepted: Vec<u8>,
    },
}

/// The simulation's marker key number `n`: key 0 is every set's first.
pub fn marker_key(n: u8) -> MarkerKey {
    if n == 0 {
        MarkerKey::for_tests("sim")
    } else {
        MarkerKey::for_tests(&format!("sim rotated {n}"))
    }
}

/// The ring sealing with key `current`; once rotated (a key other than the
/// first), its markers name their key, as after `rotate-key`'s first step
/// every region reads them.
fn marker_keys(current: u8, accepted: &[u8]) -> MarkerKeys {
    let keys = MarkerKeys::new(
        marker_key(current),
        accepted.iter().map(|&n| marker_key(n)).collect(),
    );
    if current == 0 {
        keys
    } else {
        keys.naming_keys()
    }
}

/// A schedule's setting: everything but the interleaving, which the seed picks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scenario {
    pub regions: usize,
    /// (milliseconds from the start, operation), in time order.
    pub ops: Vec<(u64, UserOp)>,
    pub faults: Faults,
    /// Notifications dropped and duplicated, per 1,000.
    pub drop: u32,
    pub duplicate: u32,
    /// CopyObject ignores destination conditions, as the emulator does.
    pub ignore_copy_conditions: bool,
    /// Object sizes up to this; copies above `multipart_threshold` go in parts.
    pub max_size: u64,
    pub settings: CopySettings,
    /// The set carries deletes from region to region.
    pub carry_deletes: bool,
    /// Once the set is quiet, every key is restored to what the set held
    /// this many milliseconds from the start (`restore --at`).
    pub restore_at: Option<u64>,
    /// Sync examines every key, not only the keys whose listings differ
    /// (see `ScanOptions::deep`).
    pub deep_sync: bool,
    /// The set's mass-delete breaker: deletes a region's notices carry from
    /// one source, per minute, before it holds that source's deletes.
    pub breaker: Option<u32>,
    /// The keys the checks and the repairs read markers under, once every
    /// [`UserOp::Rekey`] is done: (current, accepted). `(0, [])` unless the
    /// scenario rotates the key.
    #[serde(default)]
    pub final_keys: (u8, Vec<u8>),
    /// Once the repairs are done, every region and the repairs drop the
    /// accepted keys of `final_keys`: `rotate-key`'s last step.
    #[serde(default)]
    pub retire: bool,
}

/// What a random scenario is drawn with: the generator, and the regions and
/// keys drawn first.
struct Draw {
    rng: fastrand::Rng,
    regions: usize,
    keys: usize,
}

impl Draw {
    fn region(&mut self) -> usize {
        self.rng.usize(0..self.regions)
    }

    fn key(&mut self) -> String {
        ["k", "a b+c/ü", "k2"][self.rng.usize(0..self.keys)].to_owned()
    }

    /// The users' writes: puts, and now and then a server-side copy, a
    /// re-upload of another region's object, a forged marker, and a
    /// re-upload after the marker's window.
    fn writes(&mut self, ops: &mut Vec<(u64, UserOp)>) {
        for _ in 0..self.rng.usize(2..=7) {
            let op = UserOp::Put {
                region: self.region(),
                key: self.key(),
            };
            ops.push((self.rng.u64(0..2500), op));
        }
        if self.rng.u32(0..10) < 3 {
            let from = self.key();
            let op = UserOp::Copy {
                region: self.region(),
                to: format!("copy-of-{from}"),
                from,
            };
            ops.push((self.rng.u64(1500..4000), op));
        }
        if self.rng.u32(0..10) < 3 {
            let from = self.region();
            let region = (from + self.rng.usize(1..self.regions)) % self.regions;
            let op = UserOp::Reupload {
                region,
                from,
                key: self.key(),
            };
            ops.push((self.rng.u64(1500..4000), op));
        }
        if self.rng.u32(0..10) < 2 {
            let op = UserOp::Forged {
                region: self.region(),
                key: self.key(),
            };
            ops.push((self.rng.u64(0..4000), op));
        }
        if self.rng.u32(0..10) < 1 {
            // A replica re-uploaded to its own key and region after the
            // marker's window: a new write.
            let at = self.rng.u64(4000..5000);
            ops.push((at, UserOp::Wait { seconds: 16 * 60 }));
            let region = self.region();
            let key = self.key();
            ops.push((
                at + 1,
                UserOp::Reupload {
                    region,
                    from: region,
                    key,
                },
            ));
        }
    }

    /// The users' deletes: racing the writes, of one version, and after
    /// the writes have spread.
    fn deletes(&mut self, ops: &mut Vec<(u64, UserOp)>) {
        if self.rng.u32(0..10) < 5 {
            for _ in 0..self.rng.usize(1..=3) {
                let op = UserOp::Delete {
                    region: self.region(),
                    key: self.key(),
                };
                ops.push((self.rng.u64(0..4000), op));
            }
        }
        if self.rng.u32(0..10) < 2 {
            let op = UserOp::DeleteVersion {
                region: self.region(),
                key: self.key(),
            };
            ops.push((self.rng.u64(500..4000), op));
        }
        if self.rng.u32(0..10) < 2 {
            // A delete after the writes: every region that heard of them
            // holds them by then.
            let key = self.key();
            ops.push((5000, UserOp::Quiesce));
            let region = self.region();
            ops.push((5001, UserOp::Delete { region, key }));
        }
    }
}

impl Scenario {
    /// A random scenario for `seed`.
    pub fn random(seed: u64) -> Scenario {
        let mut draw = Draw {
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_5eed),
            regions: 0,
            keys: 0,
        };
        draw.regions = [2, 3, 5][draw.rng.usize(0..3)];
        draw.keys = draw.rng.usize(1..=3);
        let mut ops = Vec::new();
        draw.writes(&mut ops);
        draw.deletes(&mut ops);
        // Drawn apart, so the scenarios of earlier seeds stay as they were.
        let mut more = Draw {
            rng: fastrand::Rng::with_seed(seed ^ 0x00b0_d1e5),
            ..draw
        };
        if more.rng.u32(0..10) < 2 {
            let op = UserOp::Rebadged {
                region: more.region(),
                key: more.key(),
                same_size: more.rng.bool(),
            };
            ops.push((more.rng.u64(500..4000), op));
        }
        let Draw {
            mut rng, regions, ..
        } = draw;
        ops.sort_by_key(|(at, _)| *at);
        let multipart = rng.bool();
        Scenario {
            regions,
            ops,
            faults: Faults {
                fail: rng.u32(0..=60),
                timeout: rng.u32(0..=30),
            },
            drop: rng.u32(0..=100),
            duplicate: rng.u32(0..=150),
            ignore_copy_conditions: rng.bool(),
            max_size: 400,
            settings: CopySettings {
                multipart_threshold: if multipart { 100 } else { 1 << 40 },
                part_size: 64,
                concurrency: 3,
            },
            carry_deletes: rng.u32(0..4) > 0,
            restore_at: None,
            // Schedules write the same bytes again (copies, re-uploads,
            // equal sizes): a listing cannot tell those writes apart.
            deep_sync: true,
            breaker: None,
            final_keys: (0, Vec::new()),
            retire: false,
        }
    }

    /// A key rotation from key 0 to key 1 while users write, on the random
    /// scenario of `seed`. In two steps (`toastrep rotate-key`): every
    /// region accepts key 1 while sealing with key 0; once no delivery of
    /// the old configuration runs (the operator waits out the function's
    /// timeout), every region seals with key 1 and accepts key 0. In one
    /// step (`two_steps` false), each region goes straight to sealing with
    /// key 1, at its own time, as a careless rollout would.
    pub fn rotation(seed: u64, two_steps: bool) -> Scenario {
        let mut scenario = Scenario::random(seed);
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x4e4e_4e4e);
        let regions = scenario.regions;
        // Writes throughout, so that copies race every step.
        for _ in 0..rng.usize(3..=8) {
            let op = UserOp::Put {
                region: rng.usize(0..regions),
                key: ["k", "a b+c/ü", "k2"][rng.usize(0..3)].to_owned(),
            };
            scenario.ops.push((rng.u64(0..6000), op));
        }
        for region in 0..regions {
            if two_steps {
                let op = UserOp::Rekey {
                    region,
                    current: 0,
                    accepted: vec![1],
                };
                scenario.ops.push((rng.u64(0..2000), op));
                let op = UserOp::Rekey {
                    region,
                    current: 1,
                    accepted: vec![0],
                };
                scenario.ops.push((rng.u64(2001..4500), op));
            } else {
                let op = UserOp::Rekey {
                    region,
                    current: 1,
                    accepted: vec![0],
                };
                scenario.ops.push((rng.u64(0..4500), op));
            }
        }
        if two_steps {
            scenario.ops.push((2000, UserOp::Quiesce));
        }
        // Stable: of two ops at one time, the earlier pushed goes first.
        scenario.ops.sort_by_key(|(at, _)| *at);
        scenario.final_keys = (1, vec![0]);
        scenario.retire = two_steps;
        scenario
    }

    /// A burst of deletes for `seed`: keys written anywhere and replicated,
    /// then every one of them deleted in one region within seconds, past
    /// the breaker's limit, under faults and lost or doubled notices.
    pub fn burst(seed: u64) -> Scenario {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0xb0b5_b0b5);
        let regions = [2, 3, 5][rng.usize(0..3)];
        let per_minute = rng.u32(1..=3);
        // More than twice the limit: however the burst falls across a
        // minute's end, one minute sees more than the limit.
        let keys = rng.usize(2 * per_minute as usize + 2..=12);
        let mut ops = Vec::new();
        for k in 0..keys {
            let op = UserOp::Put {
                region: rng.usize(0..regions),
                key: format!("burst/{k}"),
            };
            ops.push((rng.u64(0..1000), op));
        }
        ops.push((1500, UserOp::Quiesce));
        let deleting = rng.usize(0..regions);
        for k in 0..keys {
            let op = UserOp::Delete {
                region: deleting,
                key: format!("burst/{k}"),
            };
            ops.push((rng.u64(1501..4000), op));
        }
        ops.sort_by_key(|(at, _)| *at);
        Scenario {
            regions,
            ops,
            faults: Faults {
                fail: rng.u32(0..=40),
                timeout: rng.u32(0..=20),
            },
            drop: rng.u32(0..=100),
            duplicate: rng.u32(0..=150),
            ignore_copy_conditions: rng.bool(),
            max_size: 400,
            settings: CopySettings {
                multipart_threshold: 1 << 40,
                part_size: 64,
                concurrency: 3,
            },
            carry_deletes: true,
            restore_at: None,
            deep_sync: rng.bool(),
            breaker: Some(per_minute),
            final_keys: (0, Vec::new()),
            retire: false,
        }
    }
}

/// What a schedule did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub regions: usize,
    pub user_writes: usize,
    pub user_deletes: usize,
    pub version_deletes: usize,
    /// Keys the set converged on deleting everywhere.
    pub deleted_everywhere: usize,
    /// Keys whose winning write survived a delete that raced it.
    pub survived_deletes: usize,
    /// Regions that kept their delete while others hold the key.
    pub kept_local: usize,
    pub deliveries: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub store_writes: u64,
    pub sync_copies: usize,
    /// Runs of every region's cloud repair.
    pub cloud_repairs: usize,
    /// Cloud repair steps retried after a failure (`RepairStepFailed`).
    pub steps_retried: u64,
    /// Region runs of the cloud repair that failed (a range left keys
    /// unrepaired, or a step failed every attempt); a later run repaired.
    pub runs_failed: usize,
    /// Deletes the breakers held, then released.
    pub held_deletes: u64,
    /// Deletes a repair would have carried, held by a breaker.
    pub repair_held: usize,
    /// Breakers that opened (each raised its region's alarm).
    pub breakers_opened: usize,
    pub steps: u64,
    /// What the schedule left behind, and how it got there.
    pub end: Snapshot,
}

/// Everything a schedule leaves behind, and every delivery's outcome on
/// the way: two runs of one seed must agree on all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Bucket name → key → its history, oldest first: every version's
    /// bytes, metadata (markers included), headers and tags, and every
    /// delete marker.
    pub objects: BTreeMap<String, BTreeMap<String, Vec<Version>>>,
    /// Every delivery, in the order its attempt finished.
    pub trace: Vec<Traced>,
    /// Deliveries left in the dead-letter queue.
    pub dead_letters: Vec<(S3Notice, usize, u32)>,
    /// The breakers' counts, open breakers, held and admitted deletes.
    pub breakers: Option<BreakerState>,
    pub open_uploads: usize,
    pub clock_ms: u64,
}

/// One delivery's attempt and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    pub notice: S3Notice,
    pub destination: usize,
    pub attempt: u32,
    /// The outcome, or the failure's message.
    pub result: Result<Outcome, String>,
}

#[derive(Debug, Clone)]
struct Delivery {
    notice: S3Notice,
    destination: usize,
    attempt: u32,
}

/// The mutable state the delivery tasks share with the world.
#[derive(Default)]
struct Mail {
    pending: Vec<Delivery>,
    dead: Vec<Delivery>,
    retried: u64,
    trace: Vec<Traced>,
}

struct World {
    rng: fastrand::Rng,
    /// Sync examines every key (see [`ScanOptions::deep`]).
    deep_sync: bool,
    s3: SimS3,
    buckets: Vec<Bucket>,
    replicators: Vec<Rc<Replicator<SimS3>>>,
    set: SetBuckets,
    settings: CopySettings,
    /// Every key the set's markers may verify under, for the checks.
    key: MarkerKeys,
    /// The numbers of `key`'s keys (see [`marker_key`]): (current, accepted).
    key_numbers: (u8, Vec<u8>),
    executor: Executor,
    mail: Rc<RefCell<Mail>>,
    /// Every notification ever emitted, for the re-delivery at the end.
    log: Vec<S3Notice>,
    /// Ground truth: every user write, in the order it was made.
    user_writes: Vec<(usize, String, Version)>,
    /// The regions' mass-delete breakers, when the set has them.
    breakers: Option<Arc<Breakers>>,
    /// Every user delete: region, key, and its delete marker.
    user_deletes: Vec<(usize, String, String)>,
    /// Versions users deleted by id: (region, version id).
    version_deletes: Vec<(usize, String)>,
    /// Regions left deleted while others hold the key (deletes not carried).
    kept_local: std::cell::Cell<usize>,
    /// Each region's artifact bucket, where its cloud repair keeps its runs.
    artifacts: Vec<FlakyArtifacts>,
    /// Lambda and Step Functions, for the cloud repair.
    control: SimControl,
    /// Whether a repair runs in the cloud; `None`: as the seed picks.
    in_cloud: Option<bool>,
    carry_deletes: bool,
    drop: u32,
    duplicate: u32,
    summary: Summary,
}

/// Runs the random scenario of `seed` under the schedule of `seed`.
pub fn run(seed: u64) -> Result<Summary, String> {
    run_scenario(seed, &Scenario::random(seed))
}

/// Runs `scenario` under the schedule of `seed`.
pub fn run_scenario(seed: u64, scenario: &Scenario) -> Result<Summary, String> {
    let mut world = World::new(seed, scenario);
    let start = world.write(scenario)?;
    world.repair()?;
    if scenario.retire {
        world.retire()?;
    }
    world.check_quiet(start, scenario)
}

/// Runs the burst of deletes of `seed` (see [`Scenario::burst`]): while the
/// breaker holds a region's deletes, no sync, deep sync or cloud repair
/// carries them; released, every delete reaches every region.
pub fn run_burst(seed: u64) -> Result<Summary, String> {
    let scenario = Scenario::burst(seed);
    let mut world = World::new(seed, &scenario);
    let start = world.write(&scenario)?;
    world.repair_held()?;
    world.check_held()?;
    world.release()?;
    world.repair()?;
    world.check_quiet(start, &scenario)
}

/// Runs the random scenario of `seed`, repaired by the cloud repair while
/// S3 and the artifact buckets still fail: steps are retried, ranges fail
/// and leave keys, and runs report as not ok, until a run on a healthy
/// platform repairs everything (see [`World::repair_in_cloud`]).
///
/// With `replay_first`, the operator replays the dead-letter queue before
/// the faulty runs, as `toastrep replay` is run once a failure is seen.
/// Without it, a faulty run's copy can land on a key whose dead-lettered
/// notice still owes its check, and the check the copy owes then fails
/// too: the known gap of `a_repair_whose_check_fails_while_a_notice_owes_one`
/// in `tests/simulation.rs`.
pub fn run_cloud_repair(seed: u64, replay_first: bool) -> Result<Summary, String> {
    let scenario = Scenario::random(seed);
    let mut world = World::new(seed, &scenario);
    world.in_cloud = Some(true);
    let start = world.write(&scenario)?;
    if replay_first {
        world.replay()?;
    }
    world.repair_in_cloud(&scenario)?;
    world.repair()?;
    world.check_quiet(start, &scenario)
}

impl World {
    fn new(seed: u64, scenario: &Scenario) -> World {
        let set = SetBuckets::new("sim", "000000000000");
        let buckets: Vec<Bucket> = REGIONS[..scenario.regions]
            .iter()
            .map(|r| set.bucket(r))
            .collect();
        let s3 = SimS3::new(seed, &buckets, scenario.ignore_copy_conditions);
        let regions: Vec<String> = buckets.iter().map(|b| b.region.clone()).collect();
        let breakers = scenario.breaker.map(|per_minute| {
            let key = marker_keys(0, &[]);
            Arc::new(Breakers::new(&regions, per_minute, key.current(), &s3))
        });
        let control = SimControl::new(&set, &regions);
        let mut world = World {
            rng: fastrand::Rng::with_seed(seed),
            deep_sync: scenario.deep_sync,
            s3,
            buckets,
            replicators: Vec::new(),
            set,
            settings: scenario.settings.clone(),
            key: marker_keys(scenario.final_keys.0, &scenario.final_keys.1),
            key_numbers: scenario.final_keys.clone(),
            executor: Executor::default(),
            mail: Rc::default(),
            log: Vec::new(),
            user_writes: Vec::new(),
            breakers,
            user_deletes: Vec::new(),
            version_deletes: Vec::new(),
            kept_local: Default::default(),
            artifacts: (0..scenario.regions as u64)
                .map(|r| FlakyArtifacts::new(seed ^ r))
                .collect(),
            control,
            in_cloud: None,
            carry_deletes: scenario.carry_deletes,
            drop: scenario.drop,
            duplicate: scenario.duplicate,
            summary: Summary {
                regions: scenario.regions,
                ..Summary::default()
            },
        };
        world.replicators = (0..scenario.regions)
            .map(|region| world.replicator(region, marker_keys(0, &[])))
            .collect();
        world
    }

    /// `region`'s function, reading and sealing markers under `keys`.
    fn replicator(&self, region: usize, keys: MarkerKeys) -> Rc<Replicator<SimS3>> {
        let mut replicator = Replicator::new(
            self.s3.clone(),
            keys,
            self.set.clone(),
            self.settings.clone(),
        )
        .carrying_deletes(self.carry_deletes)
        .clocked(Arc::new(self.s3.clone()));
        if let Some(breakers) = &self.breakers {
            replicator = replicator.gating_deletes(Arc::new(SimGate {
                region: self.buckets[region].region.clone(),
                breakers: Arc::clone(breakers),
            }));
        }
        Rc::new(replicator)
    }

    /// 1. The users write while replication runs, under faults and losses.
    ///    Returns the simulated time it started at.
    fn write(&mut self, scenario: &Scenario) -> Result<u64, String> {
        self.s3.set_faults(scenario.faults);
        let start = self.s3.clock_ms();
        let mut ops = scenario.ops.iter().peekable();
        loop {
            while let Some((at, op)) = ops.peek() {
                if self.s3.clock_ms() < start + at {
                    break;
                }
                // Time jumps only while the set is idle: no request is in
                // flight for longer than S3's 15-minute signature limit.
                if matches!(op, UserOp::Wait { .. } | UserOp::Quiesce) && !self.quiet() {
                    break;
                }
                self.user(op, scenario.max_size);
                ops.next();
            }
            self.announce();
            if ops.peek().is_none() && self.quiet() {
                return Ok(start);
            }
            self.step()?;
        }
    }

    /// The operator replays the dead-letter queue, then runs one sync. No
    /// more faults or losses from here: these are the repairs.
    fn replay_and_sync(&mut self) -> Result<usize, String> {
        self.replay()?;
        let copies = self.sync()?;
        self.settle()?;
        Ok(copies)
    }

    /// The operator replays the dead-letter queue, on a healthy platform.
    fn replay(&mut self) -> Result<(), String> {
        self.s3.set_faults(Faults::default());
        self.drop = 0;
        self.duplicate = 0;
        let dead = std::mem::take(&mut self.mail.borrow_mut().dead);
        self.summary.dead_lettered += dead.len() as u64;
        self.mail
            .borrow_mut()
            .pending
            .extend(dead.into_iter().map(|d| Delivery { attempt: 0, ..d }));
        self.settle()
    }

    /// 2. The repairs, after which the set has converged.
    fn repair(&mut self) -> Result<(), String> {
        self.summary.sync_copies += self.replay_and_sync()?;
        self.check_converged()
    }

    /// 2b. The old keys are retired (`rotate-key`'s last step, after its
    ///     sync): every function and repair seals and accepts the current
    ///     key alone, and reads a retired key's markers only on versions
    ///     written before now. The sync sealed every current copy again, so
    ///     each verifies under the current key; the quiet check that follows
    ///     proves that nothing moves under the new ring.
    fn retire(&mut self) -> Result<(), String> {
        let now = (self.s3.clock_ms() / 1000) as i64 + 1;
        let current = marker_keys(self.key_numbers.0, &[]);
        let ring = self.key_numbers.1.iter().fold(current.clone(), |ring, &n| {
            ring.retiring(marker_key(n), now)
        });
        for region in 0..self.buckets.len() {
            self.replicators[region] = self.replicator(region, ring.clone());
        }
        for key in self.s3.keys() {
            for (region, bucket) in self.buckets.iter().enumerate() {
                let Some(top) = self.s3.history(&bucket.name, &key).last().cloned() else {
                    continue;
                };
                if top.delete_marker {
                    continue;
                }
                let seen = Seen::of(REGIONS[region], &key, head_of(&top), &current);
                let own = self
                    .user_writes
                    .iter()
                    .any(|(r, k, v)| *r == region && *k == key && v.version_id == top.version_id);
                if seen.kind == Kind::Original && !own {
                    return Err(format!(
                        "{key:?}: {}'s current copy {} is still sealed by a retired key; {}",
                        REGIONS[region],
                        top.version_id,
                        self.describe_key(&key)
                    ));
                }
            }
        }
        Ok(())
    }

    /// 3. Converged means quiet: every notification delivered again, and
    ///    another sync, write nothing.
    fn check_quiet(mut self, start: u64, scenario: &Scenario) -> Result<Summary, String> {
        let before = self.s3.writes();
        let log = self.log.clone();
        for notice in log {
            for destination in 0..self.buckets.len() {
                self.mail.borrow_mut().pending.push(Delivery {
                    notice: notice.clone(),
                    destination,
                    attempt: 0,
                });
            }
        }
        self.settle()?;
        let copies = self.sync()?;
        self.settle()?;
        let after = self.s3.writes();
        // A write deleted by its version id in its own region may be left
        // only below another write elsewhere: a check whose notice was lost
        // finds it when the notice comes again. Then the set must still be
        // converged.
        let hidden_winner = !self.version_deletes.is_empty();
        if hidden_winner {
            self.check_converged()?;
        } else if after != before || copies != 0 {
            return Err(format!(
                "copying went on after convergence: {} writes and {copies} sync copies",
                after - before
            ));
        }
        if let Some(at) = scenario.restore_at {
            self.restore(((start + at) / 1000) as i64)?;
        }
        self.summary.store_writes = after;
        self.summary.user_writes = self.user_writes.len();
        self.summary.user_deletes = self.user_deletes.len();
        self.summary.version_deletes = self.version_deletes.len();
        self.summary.kept_local = self.kept_local.get();
        self.summary.retried = self.mail.borrow().retried;
        self.summary.end = self.snapshot();
        Ok(self.summary)
    }

    fn snapshot(&self) -> Snapshot {
        let mail = self.mail.borrow();
        Snapshot {
            objects: self.s3.objects(),
            trace: mail.trace.clone(),
            dead_letters: mail
                .dead
                .iter()
                .map(|d| (d.notice.clone(), d.destination, d.attempt))
                .collect(),
            breakers: self.breakers.as_ref().map(|b| b.state()),
            open_uploads: self.s3.open_uploads(),
            clock_ms: self.s3.clock_ms(),
        }
    }

    fn breakers(&self) -> Arc<Breakers> {
        Arc::clone(self.breakers.as_ref().expect("a set with a breaker"))
    }

    /// The repairs while breakers hold deletes: the dead letters replayed,
    /// then a sync (local or cloud, deep or not, as seeded).
    fn repair_held(&mut self) -> Result<(), String> {
        self.summary.sync_copies += self.replay_and_sync()?;
        // Once more: a repair never carries what the breaker holds, however
        // often it runs.
        self.summary.sync_copies += self.sync()?;
        self.settle()
    }

    /// Every key whose delete a region's breaker holds (and let through by
    /// no other notice) is still current there: no repair carried it.
    fn check_held(&self) -> Result<(), String> {
        let breakers = self.breakers();
        // A schedule that drops or spreads enough of the burst's notices
        // over minutes opens no breaker: then nothing is held, and the rest
        // of the run checks it like any other. The test asserts that the
        // schedules do open breakers (`held_deletes`).
        for (region, notice) in &breakers.held_only() {
            let bucket = &self.buckets[self.index_of(region)];
            let history = self.s3.history(&bucket.name, &notice.key);
            if history.last().is_none_or(|top| top.delete_marker) {
                return Err(format!(
                    "{region}'s breaker holds the delete of {:?} from {}, yet it is deleted there: {}",
                    notice.key,
                    notice.region,
                    self.describe_key(&notice.key)
                ));
            }
        }
        Ok(())
    }

    fn index_of(&self, region: &str) -> usize {
        self.buckets
            .iter()
            .position(|b| b.region == region)
            .expect("a region of the set")
    }

    /// The operator releases every held delete (`toastrep deletes
    /// --release`): the sealed messages of every region's queue are carried
    /// there, by the engine with no gate, in passes (a carried delete's own
    /// notices may be held again in a region not yet done); then the
    /// breakers close. An operator who finds a breaker open again (late
    /// echoes of the burst, counted in a new minute) releases again.
    fn release(&mut self) -> Result<(), String> {
        let breakers = self.breakers();
        self.summary.held_deletes = breakers.held_count() as u64;
        for round in 0.. {
            if round == RELEASE_ROUNDS {
                return Err(format!(
                    "the breakers still hold deletes after {RELEASE_ROUNDS} releases: {:?}",
                    breakers.state()
                ));
            }
            for _ in 0..RELEASE_PASSES {
                let held = breakers.take_sealed()?;
                if held.is_empty() {
                    break;
                }
                for (region, notice) in held {
                    let destination = self.index_of(&region);
                    let replicator = Rc::new(
                        Replicator::new(
                            self.s3.clone(),
                            marker_keys(0, &[]),
                            self.set.clone(),
                            self.settings.clone(),
                        )
                        .carrying_deletes(true)
                        .clocked(Arc::new(self.s3.clone())),
                    );
                    let bucket = self.buckets[destination].clone();
                    let breakers = Arc::clone(&breakers);
                    self.executor.spawn(async move {
                        // A failed release stays in the queue for the next
                        // pass, as `deletes` leaves it.
                        if replicator.replicate(&notice, &bucket).await.is_err() {
                            breakers.keep(&region, &notice).await;
                        }
                    });
                }
                self.settle()?;
            }
            breakers.close_all();
            if !breakers.any_holding() {
                break;
            }
        }
        self.summary.breakers_opened = breakers.opened();
        self.settle()
    }

    fn quiet(&self) -> bool {
        self.executor.is_empty() && self.mail.borrow().pending.is_empty()
    }

    /// Runs until nothing is pending.
    fn settle(&mut self) -> Result<(), String> {
        loop {
            self.announce();
            if self.quiet() {
                return Ok(());
            }
            self.step()?;
        }
    }

    /// Queues the notifications of new writes: one to every region's
    /// function (its own region's included), each maybe lost or doubled.
    fn announce(&mut self) {
        for notice in self.s3.take_outbox() {
            self.log.push(notice.clone());
            for destination in 0..self.buckets.len() {
                if self.drop > 0 && self.rng.u32(0..1000) < self.drop {
                    self.summary.dropped += 1;
                    continue;
                }
                let copies = if self.rng.u32(0..1000) < self.duplicate {
                    2
                } else {
                    1
                };
                self.summary.duplicated += copies - 1;
                for _ in 0..copies {
                    self.mail.borrow_mut().pending.push(Delivery {
                        notice: notice.clone(),
                        destination,
                        attempt: 0,
                    });
                }
            }
        }
    }

    /// One scheduling step: time passes, then either a running task takes
    /// a step or a pending delivery starts (so deliveries are delayed and
    /// reordered at random).
    fn step(&mut self) -> Result<(), String> {
        self.summary.steps += 1;
        if self.summary.steps > STEP_LIMIT {
            return Err(format!("no quiescence after {STEP_LIMIT} steps"));
        }
        self.s3.advance(self.rng.u64(0..=30));
        let running = self.executor.len();
        let pending = self.mail.borrow().pending.len();
        if running + pending == 0 {
            return Ok(());
        }
        let choice = self.rng.usize(0..running + pending);
        if choice < running {
            self.executor.step(choice);
            return Ok(());
        }
        let delivery = self.mail.borrow_mut().pending.swap_remove(choice - running);
        self.summary.deliveries += 1;
        let replicator = Rc::clone(&self.replicators[delivery.destination]);
        let destination = self.buckets[delivery.destination].clone();
        let mail = Rc::clone(&self.mail);
        self.executor.spawn(async move {
            let result = replicator.replicate(&delivery.notice, &destination).await;
            if std::env::var_os("TOASTREP_SIM_TRACE").is_some() {
                let n = &delivery.notice;
                eprintln!(
                    "{} {} {:?} -> {} (attempt {}): {:?}",
                    n.region,
                    n.key,
                    n.version_id,
                    destination.region,
                    delivery.attempt,
                    result
                        .as_ref()
                        .map(|o| (o.decision, o.restores))
                        .map_err(|e| e.to_string())
                );
            }
            let mut mail = mail.borrow_mut();
            mail.trace.push(Traced {
                notice: delivery.notice.clone(),
                destination: delivery.destination,
                attempt: delivery.attempt,
                result: result
                    .as_ref()
                    .map(Clone::clone)
                    .map_err(ToString::to_string),
            });
            match result {
                Ok(_) => {}
                // The platform retries an asynchronous invocation twice.
                Err(error) if error.is_retryable() && delivery.attempt < 2 => {
                    mail.retried += 1;
                    mail.pending.push(Delivery {
                        attempt: delivery.attempt + 1,
                        ..delivery
                    });
                }
                Err(_) => mail.dead.push(delivery),
            }
        });
        Ok(())
    }

    fn user(&mut self, op: &UserOp, max_size: u64) {
        match op {
            UserOp::Put { region, key } => self.user_put(*region, key, max_size),
            UserOp::Copy { region, from, to } => {
                if let Some(version) = self.s3.user_copy(&self.buckets[*region].name, from, to) {
                    self.user_writes.push((*region, to.clone(), version));
                }
            }
            UserOp::Reupload { region, from, key } => {
                let history = self.s3.history(&self.buckets[*from].name, key);
                if let Some(source) = history.last().filter(|v| !v.delete_marker) {
                    let version = self
                        .s3
                        .user_reupload(&self.buckets[*region].name, key, source);
                    self.user_writes.push((*region, key.clone(), version));
                }
            }
            UserOp::Forged { region, key } => self.user_forges(*region, key),
            UserOp::Rebadged {
                region,
                key,
                same_size,
            } => self.user_rebadges(*region, key, *same_size, max_size),
            UserOp::Delete { region, key } => {
                let marker = self.s3.user_delete(&self.buckets[*region].name, key);
                self.user_deletes.push((*region, key.clone(), marker));
            }
            UserOp::DeleteVersion { region, key } => {
                if let Some(v) = self
                    .s3
                    .user_delete_version(&self.buckets[*region].name, key)
                {
                    self.version_deletes.push((*region, v.version_id));
                }
            }
            UserOp::Quiesce => {}
            UserOp::Wait { seconds } => self.s3.advance(seconds * 1000),
            UserOp::Rekey {
                region,
                current,
                accepted,
            } => {
                self.replicators[*region] =
                    self.replicator(*region, marker_keys(*current, accepted));
            }
        }
        if std::env::var_os("TOASTREP_SIM_TRACE").is_some() {
            eprintln!(
                "user op at {}: {op:?}; writes so far: {}",
                self.s3.clock_ms(),
                self.user_writes.len()
            );
        }
    }

    /// A user's write of new bytes, with metadata, headers and tags drawn.
    fn user_put(&mut self, region: usize, key: &str, max_size: u64) {
        let size = self.rng.u64(1..=max_size);
        let tag = self.rng.u32(0..100).to_string();
        let version = self.s3.user_put(
            &self.buckets[region].name,
            key,
            size,
            BTreeMap::from([("writer".to_owned(), format!("{region}-{tag}"))]),
            Headers {
                content_type: Some(format!("text/x-{tag}")),
                cache_control: Some("max-age=60".into()),
                storage_class: self.rng.bool().then(|| "STANDARD_IA".to_owned()),
                ..Headers::default()
            },
            vec![("t".to_owned(), tag)],
        );
        self.user_writes.push((region, key.to_owned(), version));
    }

    /// A user's write carrying a marker no key sealed: a new write, never
    /// mistaken for a replica.
    fn user_forges(&mut self, region: usize, key: &str) {
        let other = REGIONS[(region + 1) % REGIONS.len()];
        let forged = format!(
            "v1;region={other};time=4102444800;version=x;etag=y;written={};mac={}",
            self.s3.clock_ms() / 1000,
            "0".repeat(32)
        );
        let version = self.s3.user_put(
            &self.buckets[region].name,
            key,
            10,
            BTreeMap::from([(MARKER.to_owned(), forged)]),
            Headers::default(),
            Vec::new(),
        );
        self.user_writes.push((region, key.to_owned(), version));
    }

    /// A user's write of the current object's metadata (its marker
    /// included) on other bytes, or on bytes of the same size: a new write.
    fn user_rebadges(&mut self, region: usize, key: &str, same_size: bool, max_size: u64) {
        let bucket = &self.buckets[region].name;
        let history = self.s3.history(bucket, key);
        let Some(current) = history.last().filter(|v| !v.delete_marker) else {
            return;
        };
        let size = if same_size {
            current.size
        } else {
            current.size % max_size + 1
        };
        let version = self.s3.user_put(
            bucket,
            key,
            size,
            current.metadata.clone(),
            current.headers.clone(),
            current.tags.clone(),
        );
        self.user_writes.push((region, key.to_owned(), version));
    }

    /// One repair of every key; returns the copies it made. Seeded, it is
    /// either `toastrep sync` (one scan of the whole key space, repairing
    /// every region) or the cloud repair (every region's state machine
    /// running the function's repair steps, each repairing only its own
    /// region; see [`Run`]).
    fn sync(&mut self) -> Result<usize, String> {
        let in_cloud = match self.in_cloud {
            Some(in_cloud) => in_cloud,
            None => self.rng.bool(),
        };
        if in_cloud {
            let outcomes = self.cloud_repair()?;
            if let Some(failed) = outcomes.iter().find(|o| !o.ok) {
                return Err(format!(
                    "the cloud repair failed without faults: {failed:?}"
                ));
            }
            self.summary.repair_held += reported(&outcomes)
                .map(|t| t.deletes_held as usize)
                .sum::<usize>();
            return Ok(copies_made(&outcomes));
        }
        let copies = Rc::new(RefCell::new(0usize));
        let held = Rc::new(RefCell::new(0usize));
        let failures = Rc::new(RefCell::new(Vec::new()));
        let regions = self.buckets.len();
        let deep = self.deep_sync;
        let trace = std::env::var_os("TOASTREP_SIM_TRACE").is_some();
        let replicator = Rc::clone(&self.replicators[0]);
        let buckets = self.buckets.clone();
        let tally = (Rc::clone(&copies), Rc::clone(&held), Rc::clone(&failures));
        self.executor.spawn(async move {
            let (copies, held, failures) = tally;
            let mut options = ScanOptions {
                range: KeyRange::all(),
                prefix: None,
                repair: vec![true; regions],
                dry_run: false,
                deep,
                concurrency: 2,
                limit: ScanLimit::default(),
            };
            loop {
                if trace {
                    eprintln!("scan {:?} repairing {:?}", options.range, options.repair);
                }
                let end = replicator
                    .scan(&buckets, &options, |step| {
                        if let ScanStep::Repaired(key, repair) = step {
                            if trace {
                                eprintln!("  repaired {key:?}: {repair:?}");
                            }
                            *copies.borrow_mut() += repair.copies.len();
                            *held.borrow_mut() += repair.held.len();
                            failures.borrow_mut().extend(
                                repair
                                    .failures
                                    .iter()
                                    .map(|f| format!("{key}: {}", f.error)),
                            );
                        }
                    })
                    .await;
                failures
                    .borrow_mut()
                    .extend(end.unreachable.into_iter().map(|(_, e)| e));
                match end.resume_after {
                    Some(after) => options.range.after = Some(after),
                    None => break,
                }
            }
        });
        self.settle()?;
        let failures = failures.borrow();
        if !failures.is_empty() {
            return Err(format!("sync failed without faults: {failures:?}"));
        }
        self.summary.repair_held += *held.borrow();
        let copies = *copies.borrow();
        Ok(copies)
    }

    /// Every region's current object of every key is the documented
    /// winner, or nothing where a delete deleted it; no user write is lost.
    fn check_converged(&mut self) -> Result<(), String> {
        self.check_every_version_is_a_user_write()?;
        // Counted afresh by each check.
        self.kept_local.set(0);
        self.summary.deleted_everywhere = 0;
        self.summary.survived_deletes = 0;
        for (region, key, version) in &self.user_writes {
            if self
                .version_deletes
                .contains(&(*region, version.version_id.clone()))
            {
                continue;
            }
            let kept = self
                .s3
                .history(&self.buckets[*region].name, key)
                .iter()
                .any(|v| v.version_id == version.version_id);
            if !kept {
                return Err(format!(
                    "user write {} of {key:?} in {} is lost",
                    version.version_id, REGIONS[*region]
                ));
            }
        }
        let keys: BTreeSet<String> = self
            .user_writes
            .iter()
            .map(|(_, key, _)| key.clone())
            .chain(self.user_deletes.iter().map(|(_, key, _)| key.clone()))
            .collect();
        for key in &keys {
            if self.carry_deletes {
                self.check_carried_deletes(key)?;
            } else {
                self.check_kept_deletes(key)?;
            }
        }
        Ok(())
    }

    /// Restores every key to what the set held at `at` (seconds), as
    /// `restore` does; then every region must hold, for each key, the
    /// winner among the user writes made by then (by the documented rule),
    /// or be left as it was where no write was made by then.
    fn restore(&mut self, at: i64) -> Result<(), String> {
        let failures = Rc::new(RefCell::new(Vec::new()));
        for key in self.s3.keys() {
            let replicator = Rc::clone(&self.replicators[0]);
            let buckets = self.buckets.clone();
            let failures = Rc::clone(&failures);
            self.executor.spawn(async move {
                if let Err(error) = replicator.restore_key(&key, &buckets, at, false).await {
                    failures.borrow_mut().push(format!("{key}: {error}"));
                }
            });
        }
        self.settle()?;
        if !failures.borrow().is_empty() {
            return Err(format!(
                "restore failed without faults: {:?}",
                failures.borrow()
            ));
        }
        for key in self.s3.keys() {
            let then = (0..self.user_writes.len())
                .filter(|&w| {
                    self.user_writes[w].1 == key && self.user_writes[w].2.last_modified <= at
                })
                .max_by(|&a, &b| self.rank(a, b));
            let Some(then) = then else { continue };
            let winner = &self.user_writes[then].2;
            for bucket in &self.buckets {
                let history = self.s3.history(&bucket.name, &key);
                let same = history.last().is_some_and(|current| {
                    !current.delete_marker
                        && current.content == winner.content
                        && user_metadata(&current.metadata) == user_metadata(&winner.metadata)
                        && current.headers == winner.headers
                        && current.tags == winner.tags
                });
                if !same {
                    return Err(format!(
                        "{key:?} in {} is not restored to {} (the winner at {at}); {}",
                        bucket.region,
                        winner.version_id,
                        self.describe_key(&key)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where the set carries deletes: every region holds the winner, the
    /// documented one (the later second wins; in one second the region
    /// sorting first; within one region, its later write), among the
    /// writes still in the set; or none holds anything, when a delete
    /// removed the winner (a delete deletes the write it removed and every
    /// write that loses to it).
    fn check_carried_deletes(&mut self, key: &str) -> Result<(), String> {
        let survivors: Vec<usize> = (0..self.user_writes.len())
            .filter(|&i| self.user_writes[i].1 == key && self.survives(i))
            .collect();
        let best =
            |writes: &mut dyn Iterator<Item = usize>| writes.max_by(|&a, &b| self.rank(a, b));
        // A write deleted by its version id in its own region may be left
        // only below another write elsewhere, where nothing looks for it:
        // the set may hold the winner with or without it.
        let mut candidates = vec![best(&mut survivors.iter().copied())];
        candidates.push(best(&mut survivors.iter().copied().filter(|&w| {
            let (region, _, version) = &self.user_writes[w];
            !self
                .version_deletes
                .contains(&(*region, version.version_id.clone()))
        })));
        let mut allowed: Vec<Option<usize>> = Vec::new();
        for winner in candidates {
            let Some(w) = winner else {
                allowed.push(None);
                continue;
            };
            let removed: Vec<Option<usize>> = self.removed_by_deletes(key);
            if removed
                .iter()
                .any(|r| r.is_some_and(|r| self.rank(r, w).is_ge()))
            {
                allowed.push(None);
                continue;
            }
            allowed.push(Some(w));
        }
        if self.same_bytes_race(key) {
            allowed.push(None);
        }
        let finals: Vec<Option<usize>> = (0..self.buckets.len())
            .map(|region| {
                let history = self.s3.history(&self.buckets[region].name, key);
                history
                    .last()
                    .filter(|v| !v.delete_marker)
                    .map(|v| self.user_write_of(region, key, v))
            })
            .collect();
        let outcome = finals[0];
        if finals.iter().any(|f| *f != outcome) || !allowed.contains(&outcome) {
            return Err(format!(
                "{key:?}: regions hold {:?}, the set may hold one of {:?}; {}",
                finals
                    .iter()
                    .map(|f| f.map(|w| &self.user_writes[w].2.version_id))
                    .collect::<Vec<_>>(),
                allowed
                    .iter()
                    .map(|f| f.map(|w| &self.user_writes[w].2.version_id))
                    .collect::<Vec<_>>(),
                self.describe_key(key),
            ));
        }
        let raced = self.user_deletes.iter().any(|(_, k, _)| k == key);
        match outcome {
            None if raced => self.summary.deleted_everywhere += 1,
            Some(_) if raced => self.summary.survived_deletes += 1,
            _ => {}
        }
        if let Some(w) = outcome {
            let winner = &self.user_writes[w].2;
            for (index, bucket) in self.buckets.iter().enumerate() {
                let history = self.s3.history(&bucket.name, key);
                let current = history.last().expect("an object");
                let same_object = current.content == winner.content
                    && user_metadata(&current.metadata) == user_metadata(&winner.metadata)
                    && current.headers == winner.headers
                    && current.tags == winner.tags;
                if !same_object {
                    return Err(format!(
                        "{key:?} in {} holds the winner {} with other bytes, metadata, headers or tags; {}",
                        REGIONS[index],
                        winner.version_id,
                        self.describe_key(key),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What each user delete of `key` removed, read now: the winner among
    /// the versions below its delete marker (which never change).
    fn removed_by_deletes(&self, key: &str) -> Vec<Option<usize>> {
        self.user_deletes
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(region, _, marker)| self.bucket_value_below(*region, key, marker))
            .collect()
    }

    /// Where deletes stay where they were made, the set cannot promise a
    /// write deleted before it was copied reaches other regions: it may
    /// never have left. It promises that every region holding an object
    /// holds the same one; that a region holds none only where its own
    /// delete deleted that write; and that a write winning over it was
    /// deleted by some delete, never lost.
    fn check_kept_deletes(&self, key: &str) -> Result<(), String> {
        let mut held = None;
        for (index, bucket) in self.buckets.iter().enumerate() {
            let history = self.s3.history(&bucket.name, key);
            if let Some(current) = history.last().filter(|v| !v.delete_marker) {
                let write = self.user_write_of(index, key, current);
                let object = (write, current.content, user_metadata(&current.metadata));
                let object = (
                    object.0,
                    object.1,
                    format!("{:?}", object.2),
                    format!("{:?}{:?}", current.headers, current.tags),
                );
                match &held {
                    None => held = Some(object),
                    Some(h) if *h == object => {}
                    Some(h) => {
                        return Err(format!(
                            "{key:?}: {} holds {:?}, another region {:?}; {}",
                            REGIONS[index],
                            object,
                            h,
                            self.describe_key(key)
                        ));
                    }
                }
            }
        }
        let held = held.map(|(write, ..)| write);
        let deleted_by = |region: Option<usize>, write: usize| {
            self.user_deletes.iter().any(|(r, k, marker)| {
                let removed = self.bucket_value_below(*r, key, marker);
                k == key
                    && region.is_none_or(|region| region == *r)
                    && (removed.is_some_and(|removed| self.rank(removed, write).is_ge())
                        || self.same_bytes_race(key))
            })
        };
        for (index, bucket) in self.buckets.iter().enumerate() {
            let history = self.s3.history(&bucket.name, key);
            let deleted = history.last().is_some_and(|v| v.delete_marker);
            let Some(write) = held else { continue };
            if deleted && !deleted_by(Some(index), write) {
                return Err(format!(
                    "{key:?} is deleted in {}, whose deletes did not delete the set's value; {}",
                    REGIONS[index],
                    self.describe_key(key)
                ));
            }
            // Never resurrected: a region whose own delete deletes the
            // set's value keeps it deleted.
            let own_delete = self.user_deletes.iter().any(|(r, k, marker)| {
                *r == index
                    && k == key
                    && self
                        .bucket_value_below(*r, key, marker)
                        .is_some_and(|removed| self.rank(removed, write).is_ge())
            });
            if own_delete && !deleted {
                return Err(format!(
                    "{key:?} in {} was deleted there and is back; {}",
                    REGIONS[index],
                    self.describe_key(key)
                ));
            }
            if deleted {
                self.kept_local.set(self.kept_local.get() + 1);
            }
        }
        for write in 0..self.user_writes.len() {
            let (_, k, version) = &self.user_writes[write];
            if k == key
                && self.survives(write)
                && held.is_none_or(|held| self.rank(write, held).is_gt())
                && !deleted_by(None, write)
            {
                return Err(format!(
                    "{key:?}: write {} won over the set's value and no delete deleted it; {}",
                    version.version_id,
                    self.describe_key(key)
                ));
            }
        }
        Ok(())
    }

    /// A delete is conditional on the ETag of what it deletes, which names
    /// bytes, not a version: where two writes of a key have the same bytes
    /// and the key is deleted, a delete may land on the other write's copy
    /// that arrived in between, and delete it (see docs/deletes.md). The set
    /// must still converge, and may then converge on deleting the key.
    fn same_bytes_race(&self, key: &str) -> bool {
        let writes: Vec<&Version> = self
            .user_writes
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, v)| v)
            .collect();
        let same_bytes = writes
            .iter()
            .enumerate()
            .any(|(i, a)| writes[i + 1..].iter().any(|b| a.etag == b.etag));
        same_bytes && self.user_deletes.iter().any(|(_, k, _)| k == key)
    }

    /// The order of two user writes (indexes into `user_writes`) by the
    /// documented rule.
    fn rank(&self, a: usize, b: usize) -> Ordering {
        let (ra, _, va) = &self.user_writes[a];
        let (rb, _, vb) = &self.user_writes[b];
        // In one region's second, a write deleted by its version id is
        // older than one still there.
        let kept = |region: usize, version: &Version| {
            !self
                .version_deletes
                .contains(&(region, version.version_id.clone()))
        };
        va.last_modified
            .cmp(&vb.last_modified)
            .then_with(|| REGIONS[*rb].cmp(REGIONS[*ra]))
            .then_with(|| kept(*ra, va).cmp(&kept(*rb, vb)))
            .then_with(|| match kept(*ra, va) || kept(*rb, vb) {
                true => a.cmp(&b),
                // Neither is left: the protocol's fixed order.
                false => va.version_id.cmp(&vb.version_id),
            })
    }

    /// Every version in every bucket is a user write or a copy of one, read
    /// under the set's keys: no copy was taken for a write of its own.
    fn check_every_version_is_a_user_write(&self) -> Result<(), String> {
        for key in self.s3.keys() {
            for (region, bucket) in self.buckets.iter().enumerate() {
                for version in self.s3.history(&bucket.name, &key) {
                    if version.delete_marker {
                        continue;
                    }
                    let seen = Seen::of(REGIONS[region], &key, head_of(&version), &self.key);
                    if !self.user_writes.iter().any(|(r, k, v)| {
                        REGIONS[*r] == seen.write.region
                            && *k == key
                            && v.version_id == seen.write.version
                    }) {
                        return Err(format!(
                            "{key:?}: {} in {} is no user write and copies none: it is read as {:?} ({:?})",
                            version.version_id, REGIONS[region], seen.write, seen.kind
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The user write a version is or copies.
    fn user_write_of(&self, region: usize, key: &str, version: &Version) -> usize {
        let seen = Seen::of(REGIONS[region], key, head_of(version), &self.key);
        self.user_writes
            .iter()
            .position(|(r, k, v)| {
                REGIONS[*r] == seen.write.region && k == key && v.version_id == seen.write.version
            })
            .expect("every version is or copies a user write")
    }

    /// The user write `region`'s bucket held as its value of `key` when
    /// `marker` was put on top (the winner among every version below it:
    /// what its checks left on top, or what a delete removed); `None` if
    /// it held none.
    fn bucket_value_below(&self, region: usize, key: &str, marker: &str) -> Option<usize> {
        self.s3
            .history(&self.buckets[region].name, key)
            .iter()
            .take_while(|v| v.version_id != marker)
            .filter(|v| !v.delete_marker)
            .map(|v| self.user_write_of(region, key, v))
            .max_by(|&a, &b| self.rank(a, b))
    }

    /// Whether a user write is still in the set: its original, or a copy
    /// of it, in some bucket.
    fn survives(&self, write: usize) -> bool {
        let key = &self.user_writes[write].1;
        (0..self.buckets.len()).any(|region| {
            self.s3
                .history(&self.buckets[region].name, key)
                .iter()
                .filter(|v| !v.delete_marker)
                .any(|v| self.user_write_of(region, key, v) == write)
        })
    }

    fn describe_key(&self, key: &str) -> String {
        format!(
            "histories: {}; user writes: {}; deletes: {}",
            self.buckets
                .iter()
                .map(|b| format!(
                    "{}: {}",
                    b.region,
                    self.describe_seen(&b.name, &b.region, key)
                ))
                .collect::<Vec<_>>()
                .join("; "),
            self.user_writes
                .iter()
                .filter(|(_, k, _)| k == key)
                .map(|(r, _, v)| format!("{} {}@{}", REGIONS[*r], v.version_id, v.last_modified))
                .collect::<Vec<_>>()
                .join(", "),
            self.user_deletes
                .iter()
                .filter(|(_, k, _)| k == key)
                .map(|(r, _, marker)| format!(
                    "{} {marker} removing {:?}",
                    REGIONS[*r],
                    self.bucket_value_below(*r, key, marker)
                        .map(|w| &self.user_writes[w].2.version_id)
                ))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

impl World {
    /// Runs of the cloud repair while S3 fails as it did for the users'
    /// writes and each artifact bucket fails its own share of calls; then
    /// the platform is healthy again, and [`World::repair`] follows with
    /// the dead letters replayed and one more cloud run that must be ok.
    /// A run that failed wrote its report or never got to, and the run
    /// after it starts afresh.
    fn repair_in_cloud(&mut self, scenario: &Scenario) -> Result<(), String> {
        self.s3.set_faults(scenario.faults);
        for artifacts in &self.artifacts {
            artifacts.set_faults(self.rng.u32(0..=200));
        }
        for _ in 0..FAULTY_CLOUD_RUNS {
            let outcomes = self.cloud_repair()?;
            self.summary.sync_copies += copies_made(&outcomes);
            for outcome in outcomes.iter().filter(|o| !o.ok) {
                self.summary.runs_failed += 1;
                let reported_failure = outcome.report.as_ref().is_some_and(|r| !r.ok);
                if outcome.error.is_none() && !reported_failure {
                    return Err(format!(
                        "a run failed yet neither its execution nor its report says so: {outcome:?}"
                    ));
                }
            }
        }
        for artifacts in &self.artifacts {
            artifacts.set_faults(0);
        }
        self.check_finished_runs_refused()
    }

    /// A step naming an execution that has ended is refused, by a fresh
    /// instance of the function: no one who may invoke it can start a scan
    /// in a run's name once the run is over.
    fn check_finished_runs_refused(&mut self) -> Result<(), String> {
        let run = self.repair_run(0, 100, 0);
        let replicator = Rc::clone(&self.replicators[0]);
        let refused = Rc::new(RefCell::new(None));
        let answer = Rc::clone(&refused);
        let execution = run.execution(&self.set);
        let request = serde_json::json!({
            "toastrep": "repair-range", "run": run.run, "execution": execution,
            "regions": [run.region], "index": 0, "range": {}, "sample_every": 100,
        });
        self.executor.spawn(async move {
            let steps = run.steps(&replicator);
            let result = steps.handle(request, i64::MAX).await;
            *answer.borrow_mut() = Some(result.map(|s| s.answer).map_err(|e| e.error_type()));
        });
        self.settle()?;
        match refused.take() {
            Some(Err("UnauthenticatedRepairStep")) => Ok(()),
            other => Err(format!(
                "a step of the finished execution {execution} was not refused: {other:?}"
            )),
        }
    }

    /// `region`'s run of the current cloud repair: its number, its
    /// artifact bucket, the set's control plane and the simulated clock.
    fn repair_run(&self, region: usize, budget_ms: i64, shuffle: u64) -> Run {
        Run {
            region: self.buckets[region].region.clone(),
            run: format!("run-{}", self.summary.cloud_repairs),
            artifacts: self.artifacts[region].clone(),
            control: self.control.clone(),
            clock: self.s3.clone(),
            budget_ms,
            deep: self.deep_sync,
            shuffle,
        }
    }

    /// One run of every region's repair state machine, all at once, each
    /// with a seeded budget and map order; what each came to.
    fn cloud_repair(&mut self) -> Result<Vec<RunOutcome>, String> {
        self.summary.cloud_repairs += 1;
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        for region in 0..self.buckets.len() {
            let budget_ms = self.rng.i64(20..=400);
            let shuffle = self.rng.u64(..);
            let run = self.repair_run(region, budget_ms, shuffle);
            let replicator = Rc::clone(&self.replicators[region]);
            let outcomes = Rc::clone(&outcomes);
            self.executor.spawn(async move {
                let outcome = run.execute(replicator).await;
                outcomes.borrow_mut().push(outcome);
            });
        }
        self.settle()?;
        let mut outcomes = outcomes.take();
        outcomes.sort_by(|a, b| a.region.cmp(&b.region));
        self.summary.steps_retried += outcomes.iter().map(|o| o.retried).sum::<u64>();
        Ok(outcomes)
    }
}

impl World {
    /// A bucket's history of `key`, newest first, each version with the
    /// write it is or copies.
    fn describe_seen(&self, bucket: &str, region: &str, key: &str) -> String {
        self.s3
            .history(bucket, key)
            .iter()
            .rev()
            .map(|v| match v.delete_marker {
                true => format!("{}:deleted", v.version_id),
                false => {
                    let seen = Seen::of(region, key, head_of(v), &self.key);
                    format!(
                        "{}@{}={:?}({} {})",
                        v.version_id,
                        v.last_modified,
                        seen.kind,
                        seen.write.region,
                        seen.write.version
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" < ")
    }
}

/// The tallies of the runs that reported.
fn reported(outcomes: &[RunOutcome]) -> impl Iterator<Item = &Tally> {
    outcomes
        .iter()
        .filter_map(|o| o.report.as_ref().map(|r| &r.tally))
}

/// The copies the runs that reported made.
fn copies_made(outcomes: &[RunOutcome]) -> usize {
    reported(outcomes).map(|t| t.copies_made as usize).sum()
}

fn user_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<&String, &String> {
    metadata
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .collect()
}
