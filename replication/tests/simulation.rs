//! The deterministic simulation of the replication protocol: thousands of
//! seeded schedules of the real engine over the simulated S3. A failure
//! prints its seed; `TOASTREP_SIM_SEED=<seed>` replays exactly that one.
//!
//! `TOASTREP_SIM_SCHEDULES` sets how many random schedules run (default
//! 10,000), `TOASTREP_SIM_FIRST` the first seed (default 0). Seeds that once
//! failed run the scenarios recorded in `tests/regressions.json`.

use std::time::Instant;

use std::collections::BTreeMap;

use toastrep_replication::sim::s3::Faults;
use toastrep_replication::sim::{Scenario, UserOp, run, run_burst, run_cloud_repair, run_scenario};
use toastrep_replication::{CopySettings, Unreplicable};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `seeds` on every core; returns the failures, seed first.
fn run_all(seeds: Vec<u64>, one: impl Fn(u64) -> Result<(), String> + Sync) -> Vec<(u64, String)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let one = &one;
    let mut failures: Vec<(u64, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .filter_map(|seed| one(seed).err().map(|e| (seed, e)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    failures.sort();
    failures
}

fn report(name: &str, failures: &[(u64, String)]) {
    for (seed, error) in failures.iter().take(5) {
        eprintln!(
            "{name}: seed {seed} failed: {error}\n  replay: TOASTREP_SIM_SEED={seed} cargo test -p toastrep-replication --test simulation {name}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} schedules failed; first seeds: {:?}",
        failures.len(),
        failures.iter().take(10).map(|f| f.0).collect::<Vec<_>>()
    );
}

#[test]
fn random_schedules_converge_on_the_documented_winner_and_go_quiet() {
    let seeds: Vec<u64> = match std::env::var("TOASTREP_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("TOASTREP_SIM_SEED is a number")],
        Err(_) => {
            let first = env_u64("TOASTREP_SIM_FIRST", 0);
            (first..first + env_u64("TOASTREP_SIM_SCHEDULES", 10_000)).collect()
        }
    };
    let started = Instant::now();
    let count = seeds.len();
    let failures = run_all(seeds, |seed| run(seed).map(|_| ()));
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "simulation: {count} schedules in {seconds:.1} s ({:.0} per second)",
        count as f64 / seconds
    );
    report(
        "random_schedules_converge_on_the_documented_winner_and_go_quiet",
        &failures,
    );
}

/// A replicator over the simulated S3, timed by its clock, sealing with
/// the test key `key`.
fn on_sim(
    s3: &toastrep_replication::sim::s3::SimS3,
    key: &str,
    set: toastrep_replication::SetBuckets,
) -> toastrep_replication::Replicator<toastrep_replication::sim::s3::SimS3> {
    toastrep_replication::Replicator::new(
        s3.clone(),
        toastrep_replication::MarkerKey::for_tests(key),
        set,
        CopySettings::default(),
    )
    .clocked(std::sync::Arc::new(s3.clone()))
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 7, 4242] {
        let (a, b) = (run(seed).unwrap(), run(seed).unwrap());
        assert!(!a.end.objects.is_empty() && !a.end.trace.is_empty());
        // The first delivery that went otherwise, where there is one: the
        // whole of two such summaries is too long to read.
        if let Some((i, (x, y))) = a
            .end
            .trace
            .iter()
            .zip(&b.end.trace)
            .enumerate()
            .find(|(_, (x, y))| x != y)
        {
            panic!("seed {seed}: delivery {i} went otherwise:\n{x:?}\n{y:?}");
        }
        assert_eq!(a.end.objects, b.end.objects, "seed {seed}: the buckets");
        assert_eq!(a, b, "seed {seed}");
    }
}

#[test]
fn the_schedules_exercise_what_they_claim() {
    // Losses, duplicates, retries, dead letters, sync repairs and every
    // region count all happen somewhere in the first schedules.
    let runs: Vec<_> = (0..300).map(|seed| run(seed).unwrap()).collect();
    assert!(runs.iter().any(|r| r.dropped > 0));
    assert!(runs.iter().any(|r| r.duplicated > 0));
    assert!(runs.iter().any(|r| r.retried > 0));
    assert!(runs.iter().any(|r| r.dead_lettered > 0));
    assert!(runs.iter().any(|r| r.sync_copies > 0));
    // The cloud repair's way (per region, by resumed ranges) as well as
    // the local sync's, and each of them repairing something.
    assert!(
        runs.iter()
            .any(|r| r.cloud_repairs > 0 && r.sync_copies > 0)
    );
    assert!(
        runs.iter()
            .any(|r| r.cloud_repairs == 0 && r.sync_copies > 0)
    );
    // Deletes: carried, raced and lost by writes, kept local, by version.
    assert!(runs.iter().any(|r| r.user_deletes > 0));
    assert!(runs.iter().any(|r| r.version_deletes > 0));
    assert!(runs.iter().any(|r| r.deleted_everywhere > 0));
    assert!(runs.iter().any(|r| r.survived_deletes > 0));
    assert!(runs.iter().any(|r| r.kept_local > 0));
    for regions in [2, 3, 5] {
        assert!(
            runs.iter().any(|r| r.regions == regions),
            "{regions} regions"
        );
    }
}

/// A burst of deletes past the breaker's limit, with notices duplicated,
/// reordered and dropped, runs the function's own breaker (its counts, its
/// open breaker, its sealed held deletes): it opens and raises its alarm;
/// it holds, and no repair carries what it holds (`sync`, `sync --deep`,
/// the cloud repair, any number of times); released as `toastrep deletes
/// --release` releases (sealed messages only, in passes), every delete
/// reaches every region and the set goes quiet. `TOASTREP_SIM_BURSTS`
/// sets how many (default 10,000).
#[test]
fn a_burst_of_duplicated_reordered_deletes_opens_the_breaker_which_holds_until_released() {
    let seeds: Vec<u64> = match std::env::var("TOASTREP_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("TOASTREP_SIM_SEED is a number")],
        Err(_) => (0..env_u64("TOASTREP_SIM_BURSTS", 10_000)).collect(),
    };
    let failures = run_all(seeds, |seed| run_burst(seed).map(|_| ()));
    report(
        "a_burst_of_duplicated_reordered_deletes_opens_the_breaker_which_holds_until_released",
        &failures,
    );
    // The schedules do what they claim: breakers open, repairs meet held
    // deletes, by the local sync's way and the cloud repair's, and the
    // releases carry them, with notices doubled along the way.
    let runs: Vec<_> = (0..200).map(|seed| run_burst(seed).unwrap()).collect();
    assert!(runs.iter().all(|r| r.breakers_opened > 0));
    assert!(
        runs.iter()
            .any(|r| r.repair_held > 0 && r.cloud_repairs > 0)
    );
    assert!(
        runs.iter()
            .any(|r| r.repair_held > 0 && r.cloud_repairs == 0)
    );
    assert!(runs.iter().all(|r| r.held_deletes > 0));
    assert!(runs.iter().any(|r| r.duplicated > 0 && r.dropped > 0));
    assert!(runs.iter().any(|r| r.deleted_everywhere > 0));
}

/// The cloud repair repairs what lost and failed notifications left (the
/// dead letters replayed first), as each region's state machine runs the
/// function's repair steps (plan, ranges resumed until done, report):
/// first while S3 and the artifact buckets fail (a step that fails is retried as the state
/// machine's Retry does; a range that leaves keys fails, and so does its
/// run), then on a healthy platform, where one run repairs everything and
/// the set goes quiet. A step in the name of a finished execution is
/// refused. `TOASTREP_SIM_REPAIRS` sets how many (default 10,000).
#[test]
fn a_cloud_repair_whose_ranges_fail_is_retried_and_converges() {
    let seeds: Vec<u64> = match std::env::var("TOASTREP_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("TOASTREP_SIM_SEED is a number")],
        Err(_) => (0..env_u64("TOASTREP_SIM_REPAIRS", 10_000)).collect(),
    };
    let started = Instant::now();
    let count = seeds.len();
    let failures = run_all(seeds, |seed| run_cloud_repair(seed, true).map(|_| ()));
    eprintln!(
        "simulation: {count} cloud repairs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    report(
        "a_cloud_repair_whose_ranges_fail_is_retried_and_converges",
        &failures,
    );
    // The schedules do what they claim: steps retried, runs failed and
    // repaired by a later one, and the cloud repair copying.
    let runs: Vec<_> = (0..300)
        .map(|seed| run_cloud_repair(seed, true).unwrap())
        .collect();
    let retried = runs.iter().filter(|r| r.steps_retried > 0).count();
    let failed = runs.iter().filter(|r| r.runs_failed > 0).count();
    let copied = runs.iter().filter(|r| r.sync_copies > 0).count();
    eprintln!(
        "simulation: of 300 cloud repairs, {retried} retried a step, {failed} had a run fail, {copied} copied"
    );
    assert!(retried > 0 && failed > 0 && copied > 0);
    assert!(
        runs.iter()
            .any(|r| r.runs_failed > 0 && r.steps_retried > 0)
    );
    // Three runs on a failing platform, then one on a healthy one.
    assert!(runs.iter().all(|r| r.cloud_repairs >= 4));
}

/// A known gap, found by the scenario above with the replay after the
/// faulty runs: a delivery copies an older write over a newer one and
/// fails before its check (its notice is dead-lettered, owing the check);
/// a faulty repair run then copies over that copy and its own check fails
/// too. The replayed notice's check is owed only while its own copy is on
/// top, so nothing puts the newer write back: the set converges on the
/// older one (the newer stays a noncurrent version). Replaying the
/// dead-letter queue before a repair, as the runbook says, avoids it.
#[test]
#[ignore = "known gap: a check owed by a dead letter is lost once a repair writes over its copy"]
fn a_repair_whose_check_fails_while_a_notice_owes_one() {
    run_cloud_repair(3309, false).unwrap();
}

/// The set's marker key rotated while users write, in `rotate-key`'s two
/// steps (every region accepts the new key, then every region seals with
/// it): every schedule converges on the documented winner, read under the
/// new key ring; then the old key is retired and nothing moves.
/// `TOASTREP_SIM_ROTATIONS` sets how many (default 2,000).
#[test]
fn a_key_rotated_in_two_steps_under_concurrent_writes_converges() {
    let seeds: Vec<u64> = match std::env::var("TOASTREP_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("TOASTREP_SIM_SEED is a number")],
        Err(_) => (0..env_u64("TOASTREP_SIM_ROTATIONS", 2_000)).collect(),
    };
    let failures = run_all(seeds, |seed| {
        run_scenario(seed, &Scenario::rotation(seed, true)).map(|_| ())
    });
    report(
        "a_key_rotated_in_two_steps_under_concurrent_writes_converges",
        &failures,
    );
}

/// Why two steps: a region that seals with the new key before every other
/// region accepts it has its copies read elsewhere as original writes made
/// at the copy's time, which win over later writes. Some schedule of a
/// one-step rollout shows it.
#[test]
fn a_key_rotated_in_one_step_breaks_some_schedule() {
    let failures = run_all((0..2_000).collect(), |seed| {
        run_scenario(seed, &Scenario::rotation(seed, false)).map(|_| ())
    });
    assert!(
        !failures.is_empty(),
        "a one-step rotation never failed: the two-step test proves nothing"
    );
    eprintln!(
        "one-step rotation: {} of 2000 schedules failed, e.g. seed {}: {}",
        failures.len(),
        failures[0].0,
        failures[0].1.chars().take(300).collect::<String>()
    );
}

/// The race of a concurrent-writers run on the emulator: us-east-1,
/// eu-west-2 and ap-northeast-1 write one key in the same second, so
/// ap-northeast-1's write wins the tie everywhere. There, a check put the
/// eu-west-2 copy back on top after the ap-northeast-1 copy had landed,
/// and nothing checked that restore. With destination conditions ignored,
/// as on the emulator, and with faults.
#[test]
fn same_second_three_region_race() {
    let scenario = |ignore: bool| Scenario {
        regions: 3,
        ops: vec![
            (
                0,
                UserOp::Put {
                    region: 1,
                    key: "race/18".into(),
                },
            ),
            (
                5,
                UserOp::Put {
                    region: 2,
                    key: "race/18".into(),
                },
            ),
            (
                10,
                UserOp::Put {
                    region: 0,
                    key: "race/18".into(),
                },
            ),
            (
                200,
                UserOp::Put {
                    region: 1,
                    key: "race/18".into(),
                },
            ),
        ],
        faults: Faults {
            fail: 20,
            timeout: 10,
        },
        drop: 0,
        duplicate: 50,
        ignore_copy_conditions: ignore,
        max_size: 50,
        settings: CopySettings {
            multipart_threshold: 1 << 40,
            part_size: 64,
            concurrency: 2,
        },
        carry_deletes: false,
        restore_at: None,
        breaker: None,
        final_keys: (0, Vec::new()),
        retire: false,
        deep_sync: true,
    };
    let failures = run_all((0..2_000).collect(), |seed| {
        run_scenario(seed, &scenario(seed % 4 != 0)).map(|_| ())
    });
    report("same_second_three_region_race", &failures);
}

/// A scenario of three regions without losses or faults (so every region
/// holds what it heard of when the next operation comes), duplicates and
/// ignored copy conditions left to the seed.
fn deletes_scenario(seed: u64, ops: Vec<(u64, UserOp)>, carry_deletes: bool) -> Scenario {
    Scenario {
        regions: 3,
        ops,
        faults: Faults::default(),
        drop: 0,
        duplicate: 100,
        ignore_copy_conditions: seed.is_multiple_of(2),
        max_size: 50,
        settings: CopySettings {
            multipart_threshold: 1 << 40,
            part_size: 64,
            concurrency: 2,
        },
        carry_deletes,
        restore_at: None,
        breaker: None,
        final_keys: (0, Vec::new()),
        retire: false,
        deep_sync: true,
    }
}

fn put(region: usize) -> UserOp {
    UserOp::Put {
        region,
        key: "k".into(),
    }
}

#[test]
fn a_key_deleted_after_its_last_write_is_deleted_everywhere() {
    let failures = run_all((0..500).collect(), |seed| {
        let ops = vec![
            (0, put(0)),
            (300, put(1)),
            (600, UserOp::Quiesce),
            (
                601,
                UserOp::Delete {
                    region: 2,
                    key: "k".into(),
                },
            ),
        ];
        let summary = run_scenario(seed, &deletes_scenario(seed, ops, true))?;
        match summary.deleted_everywhere {
            1 => Ok(()),
            _ => Err(format!("not deleted everywhere: {summary:?}")),
        }
    });
    report(
        "a_key_deleted_after_its_last_write_is_deleted_everywhere",
        &failures,
    );
}

#[test]
fn a_write_racing_a_delete_survives_everywhere() {
    let failures = run_all((0..500).collect(), |seed| {
        // us-east-1's delete removes the first write; eu-west-2's write a
        // second later has not reached it yet.
        let ops = vec![
            (0, put(2)),
            (100, UserOp::Quiesce),
            (1100, put(1)),
            (
                1101,
                UserOp::Delete {
                    region: 0,
                    key: "k".into(),
                },
            ),
        ];
        let summary = run_scenario(seed, &deletes_scenario(seed, ops, true))?;
        match summary.survived_deletes {
            1 => Ok(()),
            _ => Err(format!("the racing write did not survive: {summary:?}")),
        }
    });
    report("a_write_racing_a_delete_survives_everywhere", &failures);
}

#[test]
fn a_delete_kept_local_is_never_resurrected_and_a_version_delete_never_spreads() {
    let failures = run_all((0..500).collect(), |seed| {
        let ops = vec![
            (0, put(0)),
            (100, UserOp::Quiesce),
            (
                101,
                UserOp::Delete {
                    region: 1,
                    key: "k".into(),
                },
            ),
            (
                102,
                UserOp::DeleteVersion {
                    region: 2,
                    key: "k".into(),
                },
            ),
        ];
        // Sync runs at the end: us-east-1 keeps the write, eu-west-2 its
        // delete, and ap-northeast-1 gets back the write it deleted a copy
        // of by version id.
        let summary = run_scenario(seed, &deletes_scenario(seed, ops, false))?;
        match (summary.kept_local, summary.version_deletes) {
            (1, 1) => Ok(()),
            _ => Err(format!("not kept local: {summary:?}")),
        }
    });
    report(
        "a_delete_kept_local_is_never_resurrected_and_a_version_delete_never_spreads",
        &failures,
    );
}

/// Two writes in the first second, restored to; then overwrites and deletes
/// in later seconds, some racing; restore runs once the set is quiet.
fn restore_schedule(seed: u64) -> Result<(), String> {
    let ops = vec![
        (0, put(seed as usize % 3)),
        (100, put((seed as usize + 1) % 3)),
        (1500, put(2)),
        (1600, UserOp::Quiesce),
        (2100, put(0)),
        (
            2200,
            UserOp::Delete {
                region: 1,
                key: "k".into(),
            },
        ),
        (3300, put(1)),
        (
            3400,
            UserOp::Delete {
                region: 2,
                key: "k".into(),
            },
        ),
    ];
    let mut scenario = deletes_scenario(seed, ops, !seed.is_multiple_of(3));
    scenario.restore_at = Some(999);
    run_scenario(seed, &scenario).map(|_| ())
}

#[test]
fn restore_brings_every_region_back_to_the_winner_of_a_past_second() {
    let failures = run_all((0..2_000).collect(), restore_schedule);
    report(
        "restore_brings_every_region_back_to_the_winner_of_a_past_second",
        &failures,
    );
}

/// Restore schedules that failed once.
#[test]
fn restore_seeds_that_once_failed() {
    let seeds = vec![
        // Restore's copies were conditional on what it saw before its own
        // new write, which the functions copied meanwhile: each copy now
        // decides on what it sees.
        1, 3, 5, 7, 9,
        // A region's object at the time was a copy on top of a version it
        // loses to, which its check put back a second later: restore now
        // takes each region's value then, not its top.
        12, 180, 354, 400, 424,
    ];
    report(
        "restore_seeds_that_once_failed",
        &run_all(seeds, restore_schedule),
    );
}

/// Seeds that failed once, each kept as a regression test.
#[test]
fn seeds_that_once_failed() {
    let seeds = [
        // A local write's check restored a copy on top of the user's newer
        // write (the store ignored the condition), then failed; its retries
        // found the notified version superseded and skipped without the
        // check they owed. Fixed: a retry finds its earlier attempts' writes
        // by their markers and runs the check they owe.
        1876,
        // A check's restore landed on a newer user write (conditions
        // ignored), the check failed before looking again, its retry found
        // its notice superseded and skipped, and the restore's own notice
        // was lost. Fixed: a superseded local notice, or a source beaten by
        // toastrep's write, still runs the check it may owe.
        54792, 92765,
        // A stale check restored an older write of eu-west-2 over a newer
        // one of the same second, and the restore's notice copied it over
        // the newer one elsewhere, as if a region's current object were
        // always its newest write. Fixed: a restored source is ordered by
        // its region's history; a retry finds its own earlier writes by
        // their markers.
        427970,
        // A copy stamped before a long pause landed after it: its marker's
        // window had passed, so the copy counted as a new write. Time now
        // jumps only while the set is idle (S3 refuses requests signed more
        // than 15 minutes earlier, so no write lands that late).
        3, 74,
        // Deletes. A check's own delete marker, put back over a copy a
        // delete deletes, hid what the user's delete below it removed: what
        // a delete removed is now read through earlier delete markers.
        36, 67,
        // A delete carried against a copy on top that loses to a version
        // beside it (conditions ignored): a delete is now decided against
        // the destination's value, what its check leaves on top.
        113, 162, 1064,
        // A conditional delete landed on another write's copy of the same
        // bytes (an ETag names bytes); sync stopped on a region whose value
        // won over the delete. Deleted-with-it is allowed; sync leaves that
        // region's check to restore its value.
        1019, 8094, 10188,
        // A write deleted by its version id in its own region: its order
        // in one second, and a check of what its deletion left on top.
        261, 562, 846, 6931, 8730, 33760,
        // Deletes kept local: a write deleted before it was copied.
        61,
    ];
    // Each seed runs the scenario it found, as recorded: a change to the
    // random generator gives a seed another scenario, not this one.
    let recorded = recorded_scenarios(&seeds);
    let failures: Vec<(u64, String)> = seeds
        .into_iter()
        .filter_map(|seed| {
            run_scenario(seed, &recorded[&seed])
                .err()
                .map(|e| (seed, e))
        })
        .collect();
    report("seeds_that_once_failed", &failures);
}

/// Where the regression seeds' scenarios are kept.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/regressions.json");

/// The recorded scenario of each of `seeds`. With `TOASTREP_SIM_RECORD=1`,
/// records `Scenario::random` of each seed first (a seed newly found).
fn recorded_scenarios(seeds: &[u64]) -> std::collections::BTreeMap<u64, Scenario> {
    let mut recorded: std::collections::BTreeMap<u64, Scenario> =
        std::fs::read_to_string(REGRESSIONS)
            .ok()
            .map(|text| serde_json::from_str(&text).expect("tests/regressions.json is readable"))
            .unwrap_or_default();
    if std::env::var_os("TOASTREP_SIM_RECORD").is_some() {
        for &seed in seeds {
            recorded.entry(seed).or_insert_with(|| {
                // As found: the generator made no rebadged replicas then.
                let mut scenario = Scenario::random(seed);
                scenario
                    .ops
                    .retain(|(_, op)| !matches!(op, UserOp::Rebadged { .. }));
                scenario
            });
        }
        let text = serde_json::to_string_pretty(&recorded).unwrap();
        std::fs::write(REGRESSIONS, text + "\n").expect("writing tests/regressions.json");
    }
    for seed in seeds {
        assert!(
            recorded.contains_key(seed),
            "seed {seed} has no recorded scenario: record it with TOASTREP_SIM_RECORD=1 cargo test -p toastrep-replication --test simulation seeds_that_once_failed"
        );
    }
    recorded
}

/// On AWS, S3 events name the writer: an own-region notice of the
/// function's own copy is known as such without a request. A user's write
/// is checked as before.
#[test]
fn an_own_region_notice_of_the_functions_own_write_needs_no_request() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use toastrep_replication::sim::executor::Executor;
    use toastrep_replication::sim::s3::SimS3;
    use toastrep_replication::{Decision, S3Notice, SetBuckets};

    let set = SetBuckets::new("id", "000000000000");
    let bucket = set.bucket("us-east-1");
    let s3 = SimS3::new(1, std::slice::from_ref(&bucket), false);
    let version = s3.user_put(
        &bucket.name,
        "k",
        3,
        Default::default(),
        Default::default(),
        vec![],
    );
    let replicator = Rc::new(on_sim(&s3, "id", set).writing_as_role("AROAEXAMPLE"));
    let decide = |principal: &str| {
        let notice = S3Notice {
            event_name: "ObjectCreated:Copy".into(),
            region: bucket.region.clone(),
            bucket: bucket.name.clone(),
            key: "k".into(),
            version_id: Some(version.version_id.clone()),
            etag: Some(version.etag.clone()),
            sequencer: None,
            size: Some(3),
            event_time: None,
            principal: Some(principal.to_owned()),
        };
        let before = s3.calls();
        let decided = Rc::new(RefCell::new(None));
        let (replicator, destination, slot) =
            (Rc::clone(&replicator), bucket.clone(), Rc::clone(&decided));
        let mut executor = Executor::default();
        executor.spawn(async move {
            let outcome = replicator.replicate(&notice, &destination).await.unwrap();
            *slot.borrow_mut() = Some(outcome.decision);
        });
        while !executor.is_empty() {
            executor.step(0);
        }
        let decision = decided.borrow().expect("decided");
        (decision, s3.calls() - before)
    };
    assert_eq!(
        decide("AWS:AROAEXAMPLE:toastrep-id-replicator"),
        (Decision::SkippedCopy, 0)
    );
    let (decision, calls) = decide("AWS:AIDAEXAMPLEUSER");
    assert_eq!(decision, Decision::SkippedUpToDate);
    assert!(
        calls >= 2,
        "a user's write is looked at and checked: {calls} calls"
    );
}

/// Found when sync first ran as a scan of listings in the simulation: in
/// seed 433, us-east-1 writes "k" twice with the same bytes (v2, then v7
/// with other metadata), and the notices of v7 to ap-northeast-1 are lost.
/// Every listing shows the same ETag, so a scan that compares listings
/// leaves ap-northeast-1 holding v2; a deep scan (`sync --deep`, the cloud
/// repair's `deep` input) examines every key and converges.
#[test]
fn a_later_write_of_the_same_bytes_is_found_by_a_deep_scan_not_a_listing() {
    let mut scenario = Scenario::random(433);
    scenario.deep_sync = false;
    let quick = run_scenario(433, &scenario);
    assert!(
        quick.as_ref().is_err_and(|e| e.contains("regions hold")),
        "the listing's blind spot: {quick:?}"
    );
    scenario.deep_sync = true;
    run_scenario(433, &scenario).expect("a deep scan converges");
}

/// `deletes --discard` undoes a held delete only while it is the last thing
/// that happened to the key: a key written again since, where it was
/// deleted or anywhere else, keeps that later write.
#[test]
fn discarding_a_delete_never_overwrites_a_later_write() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use toastrep_replication::sim::executor::Executor;
    use toastrep_replication::sim::s3::SimS3;
    use toastrep_replication::{KeyRestore, SetBuckets, Undo};

    let set = SetBuckets::new("undo", "000000000000");
    let buckets = vec![set.bucket("us-east-1"), set.bucket("eu-west-2")];
    let put = |s3: &SimS3, region: usize, size: u64| {
        s3.advance(2_000);
        s3.user_put(
            &buckets[region].name,
            "k",
            size,
            Default::default(),
            Default::default(),
            vec![],
        )
    };
    // Undoes the delete `marker` in region 0; returns what it did and the
    // current ETag of each region afterwards.
    let undo = |s3: &SimS3, marker: &str| {
        let replicator = Rc::new(on_sim(s3, "undo", set.clone()));
        let done = Rc::new(RefCell::new(None));
        let (slot, all, marker) = (Rc::clone(&done), buckets.clone(), marker.to_owned());
        let mut executor = Executor::default();
        executor.spawn(async move {
            let undone = replicator.undo_delete("k", &all, 0, &marker).await;
            *slot.borrow_mut() = Some(undone.unwrap());
        });
        while !executor.is_empty() {
            executor.step(0);
        }
        let tops: Vec<Option<String>> = buckets
            .iter()
            .map(|b| {
                s3.history(&b.name, "k")
                    .last()
                    .filter(|v| !v.delete_marker)
                    .map(|v| v.etag.clone())
            })
            .collect();
        (done.borrow_mut().take().expect("undone"), tops)
    };

    // Written again where it was deleted.
    let s3 = SimS3::new(1, &buckets, false);
    put(&s3, 0, 10);
    s3.advance(2_000);
    let marker = s3.user_delete(&buckets[0].name, "k");
    let later = put(&s3, 0, 20);
    let (undone, tops) = undo(&s3, &marker);
    assert_eq!(undone, Undo::WrittenSince { region: 0 });
    assert_eq!(tops, vec![Some(later.etag), None]);

    // Written again in another region, the delete still on top here.
    let s3 = SimS3::new(2, &buckets, false);
    put(&s3, 0, 10);
    s3.advance(2_000);
    let marker = s3.user_delete(&buckets[0].name, "k");
    let later = put(&s3, 1, 20);
    let (undone, tops) = undo(&s3, &marker);
    assert_eq!(undone, Undo::WrittenSince { region: 1 });
    assert_eq!(tops, vec![None, Some(later.etag)]);

    // Nothing since: the removed write is back in both regions.
    let s3 = SimS3::new(3, &buckets, false);
    let removed = put(&s3, 0, 10);
    s3.advance(2_000);
    let marker = s3.user_delete(&buckets[0].name, "k");
    let (undone, tops) = undo(&s3, &marker);
    assert!(
        matches!(undone, Undo::Done(KeyRestore::Restored { .. })),
        "{undone:?}"
    );
    assert_eq!(tops, vec![Some(removed.etag.clone()), Some(removed.etag)]);
}

/// A writer with only `s3:PutObject` can write an object whose user
/// metadata leaves no room for the marker within S3's 2 KB. Such an object
/// can never be copied as it is: its notice and a sync say so once, and
/// neither fails (no retries, no dead letter, no failure alarm), while the
/// object stays untouched where it was written.
#[test]
fn an_object_whose_metadata_leaves_no_room_for_the_marker_is_reported_not_failed() {
    // 2,000 bytes of metadata: within S3's limit, but not with a marker.
    let metadata = BTreeMap::from([("note".to_owned(), "x".repeat(1996))]);
    unreplicable_is_reported_not_failed(
        |s3, bucket| s3.user_put(bucket, "k", 3, metadata, Default::default(), vec![]),
        Unreplicable::MetadataTooLarge,
    );
}

/// The same for an object written with a customer-provided key (SSE-C):
/// S3 answers its HeadObject with a bare 400, and toastrep never holds the
/// key that would let it read or copy it.
#[test]
fn an_object_encrypted_with_a_customer_key_is_reported_not_failed() {
    unreplicable_is_reported_not_failed(
        |s3, bucket| s3.user_put_customer_key(bucket, "k", 3),
        Unreplicable::CustomerKey,
    );
}

/// Writes key `k` in the east with `write`, then replicates its notice
/// into the west and deep-syncs both: each says `why` once, neither fails,
/// and nothing is written.
fn unreplicable_is_reported_not_failed(
    write: impl FnOnce(
        &toastrep_replication::sim::s3::SimS3,
        &str,
    ) -> toastrep_replication::sim::s3::Version,
    why: Unreplicable,
) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use toastrep_replication::engine::{KeyRange, ScanLimit, ScanOptions, ScanStep};
    use toastrep_replication::sim::executor::Executor;
    use toastrep_replication::sim::s3::SimS3;
    use toastrep_replication::{Decision, S3Notice, SetBuckets};

    let set = SetBuckets::new("id", "000000000000");
    let (east, west) = (set.bucket("us-east-1"), set.bucket("eu-west-2"));
    let buckets = vec![east.clone(), west.clone()];
    let s3 = SimS3::new(1, &buckets, false);
    let version = write(&s3, &east.name);
    let replicator = Rc::new(on_sim(&s3, "id", set));
    let notice = S3Notice {
        event_name: "ObjectCreated:Put".into(),
        region: east.region.clone(),
        bucket: east.name.clone(),
        key: "k".into(),
        version_id: Some(version.version_id.clone()),
        etag: Some(version.etag.clone()),
        sequencer: None,
        size: Some(3),
        event_time: None,
        principal: None,
    };
    let decided = Rc::new(RefCell::new(None));
    let repaired = Rc::new(RefCell::new(Vec::new()));
    let mut executor = Executor::default();
    {
        let (replicator, slot, west) = (Rc::clone(&replicator), Rc::clone(&decided), west.clone());
        let (repaired, buckets) = (Rc::clone(&repaired), buckets.clone());
        executor.spawn(async move {
            let outcome = replicator.replicate(&notice, &west).await;
            *slot.borrow_mut() = Some(outcome.map(|o| o.decision).map_err(|e| e.to_string()));
            let options = ScanOptions {
                range: KeyRange::all(),
                prefix: None,
                repair: vec![true, true],
                dry_run: false,
                deep: true,
                concurrency: 1,
                limit: ScanLimit {
                    keys: None,
                    deadline: None,
                },
            };
            replicator
                .scan(&buckets, &options, |step| {
                    if let ScanStep::Repaired(_, repair) = step {
                        repaired.borrow_mut().push(repair.clone());
                    }
                })
                .await;
        });
    }
    while !executor.is_empty() {
        executor.step(0);
    }
    assert_eq!(
        decided.borrow().clone().expect("decided"),
        Ok(Decision::NotReplicable(why))
    );
    let repaired = repaired.borrow();
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    assert!(repaired[0].failures.is_empty(), "{repaired:?}");
    assert_eq!(repaired[0].not_replicable, vec![(1, why)]);
    assert!(
        s3.history(&west.name, "k").is_empty(),
        "nothing was written"
    );
    assert_eq!(s3.history(&east.name, "k").len(), 1);
}
