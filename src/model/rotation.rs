//! The steps of a marker-key rotation, as rings (see `toastrep rotate-key`).
//! Pure: which ring the set moves to next, given the rings its regions
//! hold. Each step is a deploy that gives every region the same ring:
//!
//! 1. **accept**: the old key still seals, the new key is accepted too. The
//!    deploy also brings every region the release that reads markers naming
//!    their key, so no region meets a marker it cannot read.
//! 2. **seal**: once no invocation of step 1's configuration runs, the new
//!    key seals (naming itself) and the old key is still accepted. Two steps,
//!    because a region sealing with a key another region does not accept yet
//!    makes copies that pass there for original writes (the simulation's
//!    one-step rotation shows it).
//! 3. a deep sync seals again every copy the old key sealed.
//! 4. **retire**: the old key no longer seals or verifies anything written
//!    from now on; it still reads the versions written before, so the copies
//!    left below the current objects keep their meaning.
//!
//! Each ring records its step, so a rotation that stopped (regions a step
//! apart) resumes where it stopped.

use toastrep_replication::{MarkerKey, MarkerKeys, Rotation};

/// A step of a rotation, named as the command reports it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Accept,
    Seal,
    Retire,
}

/// The ring the set holds: the regions' one ring, or, when a rotation
/// stopped between regions, the later of two consecutive steps. `None`
/// when the regions hold rings no rotation explains.
pub fn combined(rings: &[MarkerKeys]) -> Option<MarkerKeys> {
    let first = rings.first()?;
    let other = rings.iter().find(|r| *r != first);
    match other {
        None => Some(first.clone()),
        Some(other) => {
            let (earlier, later) = if follows(first, other) {
                (first, other)
            } else if follows(other, first) {
                (other, first)
            } else {
                return None;
            };
            rings
                .iter()
                .all(|r| r == earlier || r == later)
                .then(|| later.clone())
        }
    }
}

/// Whether `later` is the ring one step after `earlier`.
fn follows(earlier: &MarkerKeys, later: &MarkerKeys) -> bool {
    match (earlier.rotation(), later.rotation()) {
        (Rotation::Steady, Rotation::Accepting) => later.current_id() == earlier.current_id(),
        (Rotation::Accepting, Rotation::Sealing) => {
            earlier.accepted().any(|key| key.id() == later.current_id())
        }
        (Rotation::Sealing, Rotation::Steady) => later.current_id() == earlier.current_id(),
        _ => false,
    }
}

/// The step after `ring` and the ring it deploys: `new` is the key a
/// rotation starting from a steady ring brings in, `now` the time (seconds
/// since the epoch) a retirement is dated. `None` for a steady ring when
/// `start` is false: the rotation is done.
pub fn next(
    ring: &MarkerKeys,
    start: bool,
    new: MarkerKey,
    now: i64,
) -> Option<(Step, MarkerKeys)> {
    let keep = |keys: MarkerKeys, names: bool| {
        let keys = ring
            .retired()
            .fold(keys, |keys, (key, at)| keys.retiring(key.clone(), at));
        if names { keys.naming_keys() } else { keys }
    };
    match ring.rotation() {
        Rotation::Steady if !start => None,
        Rotation::Steady => {
            let keys = MarkerKeys::new(ring.current().clone(), vec![new]);
            Some((
                Step::Accept,
                keep(keys, ring.names_keys()).rotating(Rotation::Accepting),
            ))
        }
        Rotation::Accepting => {
            let new = ring.accepted().next()?.clone();
            let keys = MarkerKeys::new(new, vec![ring.current().clone()]);
            Some((Step::Seal, keep(keys, true).rotating(Rotation::Sealing)))
        }
        Rotation::Sealing => {
            let keys = ring
                .accepted()
                .fold(MarkerKeys::from(ring.current().clone()), |keys, old| {
                    keys.retiring(old.clone(), now)
                });
            Some((Step::Retire, keep(keys, true)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(label: &str) -> MarkerKey {
        MarkerKey::for_tests(label)
    }

    #[test]
    fn a_rotation_accepts_then_seals_then_retires_and_keeps_earlier_retirements() {
        let (a, b) = (key("a"), key("b"));
        let before = MarkerKeys::from(a.clone()).retiring(key("z"), 100);
        let (step, accepting) = next(&before, true, b.clone(), 0).unwrap();
        assert_eq!(step, Step::Accept);
        assert_eq!(accepting.current_id(), a.id());
        assert_eq!(
            accepting.accepted().map(MarkerKey::id).collect::<Vec<_>>(),
            [b.id()]
        );
        assert!(
            !accepting.names_keys(),
            "no region may name keys before all read them"
        );
        let (step, sealing) = next(&accepting, false, key("unused"), 0).unwrap();
        assert_eq!(step, Step::Seal);
        assert_eq!(sealing.current_id(), b.id());
        assert!(sealing.names_keys());
        assert_eq!(
            sealing.accepted().map(MarkerKey::id).collect::<Vec<_>>(),
            [a.id()]
        );
        let (step, retired) = next(&sealing, false, key("unused"), 500).unwrap();
        assert_eq!(step, Step::Retire);
        assert_eq!(retired.current_id(), b.id());
        assert_eq!(retired.accepted().count(), 0);
        let retirements: Vec<(String, i64)> =
            retired.retired().map(|(k, at)| (k.id(), at)).collect();
        assert!(retirements.contains(&(a.id(), 500)), "{retirements:?}");
        assert!(
            retirements.contains(&(key("z").id(), 100)),
            "{retirements:?}"
        );
        assert_eq!(retired.rotation(), Rotation::Steady);
        assert_eq!(next(&retired, false, key("unused"), 0), None);
    }

    #[test]
    fn regions_a_step_apart_resume_at_the_later_step_and_others_are_refused() {
        let (a, b) = (key("a"), key("b"));
        let steady = MarkerKeys::from(a.clone());
        let (_, accepting) = next(&steady, true, b.clone(), 0).unwrap();
        let (_, sealing) = next(&accepting, false, b.clone(), 0).unwrap();
        let (_, retired) = next(&sealing, false, b.clone(), 9).unwrap();
        for (x, y) in [
            (&steady, &accepting),
            (&accepting, &sealing),
            (&sealing, &retired),
        ] {
            let rings = [x.clone(), y.clone(), x.clone()];
            assert_eq!(combined(&rings).as_ref(), Some(y));
            let rings = [y.clone(), x.clone()];
            assert_eq!(combined(&rings).as_ref(), Some(y));
        }
        // Two steps apart, or another key altogether: no rotation explains it.
        assert_eq!(combined(&[steady.clone(), sealing.clone()]), None);
        assert_eq!(combined(&[steady, MarkerKeys::from(b)]), None);
        assert_eq!(combined(&[accepting, sealing, retired]), None);
    }
}
