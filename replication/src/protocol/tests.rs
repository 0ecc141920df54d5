use std::collections::BTreeMap;

use super::*;

fn head(version: &str, last_modified: i64) -> ObjectHead {
    ObjectHead {
        version_id: version.into(),
        etag: format!("e{version}"),
        last_modified,
        size: 1,
        etag_is_md5: false,
        metadata: BTreeMap::new(),
        headers: Headers::default(),
    }
}

fn original(region: &str, version: &str, time: i64) -> Seen {
    Seen::of(
        region,
        "k",
        head(version, time),
        &MarkerKey::for_tests("t").into(),
    )
}

fn replica(region: &str, version: &str, written: i64, of: &Seen) -> Seen {
    let key = MarkerKey::for_tests("t");
    let mut h = head(version, written);
    h.metadata.insert(
        marker::MARKER.into(),
        MarkerKeys::from(key.clone()).seal(
            "k",
            region,
            &of.write,
            written,
            "test",
            &marker::Copied {
                size: 1,
                md5: None,
                parts: None,
                source_etag: None,
            },
        ),
    );
    Seen::of(region, "k", h, &key.into())
}

#[test]
fn a_replica_is_recognised_and_a_restored_original_replicates() {
    let a = original("us-east-1", "a1", 10);
    let copy = replica("eu-west-2", "b1", 11, &a);
    assert_eq!(copy.kind, Kind::Replica);
    assert_eq!(copy.write, a.write);
    assert_eq!(
        decide_source(Some("b1"), Some(&copy)),
        SourceDecision::Replica
    );
    let restored = replica("us-east-1", "a2", 12, &a);
    assert_eq!(restored.kind, Kind::Restored);
    assert_eq!(restored.write, a.write);
    assert_eq!(
        decide_source(Some("a2"), Some(&restored)),
        SourceDecision::Replicate
    );
    assert_eq!(
        decide_source(Some("a1"), Some(&restored)),
        SourceDecision::Gone
    );
}

#[test]
fn copy_decisions() {
    let a = original("us-east-1", "a1", 10);
    assert_eq!(
        decide_copy(&a, &State::Absent, &Histories::default()).unwrap(),
        CopyDecision::Copy(Precondition::IfNoneMatch)
    );
    let held = replica("eu-west-2", "b1", 11, &a);
    assert_eq!(
        decide_copy(&a, &State::Object(held.clone()), &Histories::default()).unwrap(),
        CopyDecision::Holds
    );
    let later = original("eu-west-2", "b2", 12);
    assert_eq!(
        decide_copy(&a, &State::Object(later.clone()), &Histories::default()).unwrap(),
        CopyDecision::Beaten
    );
    // A later write of the same region wins by its time, whatever its
    // region's current object is.
    let older = original("us-east-1", "a0", 8);
    let older_copy = replica("eu-west-2", "b3", 31, &older);
    assert_eq!(
        decide_copy(
            &a,
            &State::Object(older_copy.clone()),
            &Histories::default()
        )
        .unwrap(),
        CopyDecision::Copy(Precondition::IfMatch("eb3".into()))
    );
}

#[test]
fn a_check_restores_a_buried_winner_and_settles_otherwise() {
    let eu = original("eu-west-2", "e1", 10);
    let ap = original("ap-northeast-1", "p1", 10);
    let us_local = original("us-east-1", "u1", 10);
    let ap_copy = replica("us-east-1", "u2", 10, &ap);
    let eu_copy = replica("us-east-1", "u3", 11, &eu);
    // The race: the eu copy lands on top of the ap copy it loses to.
    let history: Vec<VersionEntry> = [&eu_copy, &ap_copy, &us_local]
        .iter()
        .map(|s| VersionEntry::Object {
            version_id: s.head.version_id.clone(),
            etag: s.head.etag.clone(),
            last_modified: s.head.last_modified,
        })
        .collect();
    assert_eq!(
        check_candidates(&history, &eu_copy),
        vec!["u2".to_owned(), "u1".to_owned()]
    );
    let decision = decide_check(
        &eu_copy,
        &[ap_copy.clone(), us_local.clone()],
        None,
        &Histories::default(),
    );
    assert_eq!(
        decision,
        Ok(CheckDecision::Restore {
            version: "u2".into(),
            precondition: Precondition::IfMatch("eu3".into())
        })
    );
    assert_eq!(
        decide_check(&ap_copy, &[eu_copy, us_local], None, &Histories::default()),
        Ok(CheckDecision::Settled)
    );
}

#[test]
fn a_delete_marker_ends_the_candidates() {
    let top = original("us-east-1", "u2", 10);
    let history = vec![
        VersionEntry::Object {
            version_id: "u2".into(),
            etag: "e".into(),
            last_modified: 10,
        },
        VersionEntry::DeleteMarker {
            version_id: "d".into(),
            last_modified: 10,
        },
        VersionEntry::Object {
            version_id: "u1".into(),
            etag: "e".into(),
            last_modified: 10,
        },
    ];
    assert!(check_candidates(&history, &top).is_empty());
}

#[test]
fn sync_copies_the_winner_from_its_own_region_into_the_others() {
    let a = original("ap-northeast-1", "p1", 10);
    let in_us = replica("us-east-1", "u1", 11, &a);
    let eu = original("eu-west-2", "e1", 9);
    let currents = vec![
        State::Object(in_us),
        State::Object(a),
        State::Object(eu),
        State::Absent,
    ];
    let plan = decide_sync(&currents, &[true; 4], true, &Histories::default())
        .unwrap()
        .unwrap();
    assert_eq!(plan.source, 1);
    assert_eq!(
        plan.copies,
        vec![
            (2, Reason::Stale, Precondition::IfMatch("ee1".into())),
            (3, Reason::Missing, Precondition::IfNoneMatch)
        ]
    );
    let plan = decide_sync(
        &currents,
        &[true, true, false, false],
        true,
        &Histories::default(),
    )
    .unwrap();
    assert_eq!(plan.unwrap().copies, vec![]);
}

#[test]
fn same_second_writes_of_one_region_ask_for_its_history() {
    let a1 = original("us-east-1", "a1", 10);
    let a2 = original("us-east-1", "a2", 10);
    let c1 = replica("eu-west-2", "b1", 10, &a1);
    let c2 = replica("ap-northeast-1", "p1", 10, &a2);
    assert_eq!(histories_needed([&c1, &c2]), vec!["us-east-1".to_owned()]);
    let currents = vec![State::Object(c1), State::Object(c2)];
    assert!(decide_sync(&currents, &[true, true], true, &Histories::default()).is_err());
    let mut histories = Histories::default();
    histories.listed("us-east-1", vec!["a2".into(), "a1".into()]);
    let plan = decide_sync(&currents, &[true, true], true, &histories)
        .unwrap()
        .unwrap();
    assert_eq!(plan.source, 1);
}

#[test]
fn a_restored_source_is_ordered_by_its_regions_history() {
    // eu-west-2 wrote e1 then e2 in one second; a stale check put e1 back
    // on top there. Its notice must not bury e2 elsewhere.
    let e1 = original("eu-west-2", "e1", 10);
    let e2 = original("eu-west-2", "e2", 10);
    let restored = replica("eu-west-2", "e3", 11, &e1);
    let e2_in_us = replica("us-east-1", "u1", 10, &e2);
    assert_eq!(
        decide_copy(
            &restored,
            &State::Object(e2_in_us.clone()),
            &Histories::default()
        ),
        Err(NeedHistory("eu-west-2".into()))
    );
    let mut histories = Histories::default();
    histories.listed("eu-west-2", vec!["e3".into(), "e2".into(), "e1".into()]);
    assert_eq!(
        decide_copy(&restored, &State::Object(e2_in_us.clone()), &histories),
        Ok(CopyDecision::Beaten)
    );
}

fn deleted(removed: Option<&Seen>) -> State {
    State::Deleted(Tombstone {
        marker: "dm".into(),
        removed: removed.map(|s| s.write.clone()),
    })
}

#[test]
fn a_delete_deletes_the_removed_write_and_what_loses_to_it() {
    let none = Histories::default();
    let w1 = original("us-east-1", "a1", 10);
    let older = original("eu-west-2", "e0", 9);
    let later = original("eu-west-2", "e2", 11);
    let gone = deleted(Some(&w1));
    let delete = |held: &Seen| decide_delete(&gone, &State::Object(held.clone()), &none);
    assert_eq!(
        delete(&replica("eu-west-2", "e1", 12, &w1)),
        Ok(DeleteDecision::Delete)
    );
    assert_eq!(delete(&older), Ok(DeleteDecision::Delete));
    // Add-wins: a write that wins over the removed one stays.
    assert_eq!(delete(&later), Ok(DeleteDecision::Survives));
    // Nothing to delete, or nothing deleted.
    assert_eq!(
        decide_delete(&gone, &State::Absent, &none),
        Ok(DeleteDecision::Holds)
    );
    assert_eq!(
        decide_delete(&deleted(None), &State::Object(older.clone()), &none),
        Ok(DeleteDecision::Gone)
    );
    // The source took a write since: that write's notice carries it.
    assert_eq!(
        decide_delete(&State::Object(later), &State::Object(older), &none),
        Ok(DeleteDecision::Gone)
    );
}

#[test]
fn a_write_is_not_copied_over_a_delete_that_deletes_it() {
    let none = Histories::default();
    let w1 = original("us-east-1", "a1", 10);
    let older = original("eu-west-2", "e0", 9);
    let later = original("eu-west-2", "e2", 11);
    assert_eq!(
        decide_copy(&older, &deleted(Some(&w1)), &none),
        Ok(CopyDecision::Deleted)
    );
    assert_eq!(
        decide_copy(&later, &deleted(Some(&w1)), &none),
        Ok(CopyDecision::Copy(Precondition::IfNoneMatch))
    );
    assert_eq!(
        decide_copy(&older, &deleted(None), &none),
        Ok(CopyDecision::Copy(Precondition::IfNoneMatch))
    );
}

#[test]
fn a_check_puts_back_a_delete_that_landed_beside_a_copy_it_deletes() {
    let none = Histories::default();
    let w1 = original("us-east-1", "a1", 10);
    let older = replica("us-east-1", "u2", 12, &original("eu-west-2", "e0", 9));
    let State::Deleted(tombstone) = deleted(Some(&w1)) else {
        unreachable!()
    };
    assert_eq!(
        decide_check(&older, &[], Some(&tombstone), &none),
        Ok(CheckDecision::Delete("eu2".into()))
    );
    let later = original("us-east-1", "a3", 12);
    assert_eq!(
        decide_check(&later, &[], Some(&tombstone), &none),
        Ok(CheckDecision::Settled)
    );
    let history = vec![
        VersionEntry::Object {
            version_id: "u2".into(),
            etag: "eu2".into(),
            last_modified: 12,
        },
        VersionEntry::DeleteMarker {
            version_id: "dm".into(),
            last_modified: 11,
        },
    ];
    assert_eq!(delete::delete_candidate(&history, &older), Some(1));
    let long_after = original("us-east-1", "a9", 100);
    assert_eq!(delete::delete_candidate(&history, &long_after), None);
}

#[test]
fn sync_carries_a_delete_or_keeps_it_where_it_was_made() {
    let none = Histories::default();
    let w1 = original("us-east-1", "a1", 10);
    let copy = replica("eu-west-2", "e1", 11, &w1);
    let older = original("ap-northeast-1", "p0", 9);
    let states = vec![
        deleted(Some(&w1)),
        State::Object(copy),
        State::Object(older),
        State::Absent,
    ];
    let plan = decide_sync(&states, &[true; 4], true, &none)
        .unwrap()
        .unwrap();
    assert_eq!(plan.deleted_in, vec![0]);
    assert_eq!(plan.deletes, vec![1, 2]);
    assert!(plan.copies.is_empty());
    // Kept where it was made: the others still converge, the deleting
    // region is left alone, and nothing is resurrected there.
    let plan = decide_sync(&states, &[true; 4], false, &none)
        .unwrap()
        .unwrap();
    assert!(plan.deletes.is_empty());
    assert_eq!(plan.kept_deletes, vec![0]);
    assert_eq!(
        plan.copies,
        vec![
            (2, Reason::Stale, Precondition::IfMatch("ep0".into())),
            (3, Reason::Missing, Precondition::IfNoneMatch)
        ]
    );
    // A write that wins over the delete goes everywhere (add-wins).
    let later = original("ap-northeast-1", "p2", 12);
    let states = vec![deleted(Some(&w1)), State::Object(later)];
    let plan = decide_sync(&states, &[true; 2], true, &none)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.copies,
        vec![(0, Reason::Deleted, Precondition::IfNoneMatch)]
    );
}

#[test]
fn sync_seals_again_a_copy_of_the_winner_sealed_by_a_key_being_retired() {
    let (old, new) = (MarkerKey::for_tests("t"), MarkerKey::for_tests("new"));
    let a = original("us-east-1", "a1", 10);
    // A copy sealed by the old key, read while the ring seals with the new
    // one and still accepts the old.
    let ring = MarkerKeys::new(new.clone(), vec![old]).naming_keys();
    let old_copy = replica("eu-west-2", "b1", 11, &a);
    let old_copy = Seen::of("eu-west-2", "k", old_copy.head, &ring);
    assert_eq!(old_copy.kind, Kind::Replica);
    assert!(old_copy.retired_key);
    // A copy the new key sealed is left alone.
    let mut h = head("c1", 11);
    h.metadata.insert(
        marker::MARKER.into(),
        ring.seal(
            "k",
            "ap-northeast-1",
            &a.write,
            11,
            "test",
            &marker::Copied {
                size: 1,
                md5: None,
                parts: None,
                source_etag: None,
            },
        ),
    );
    let new_copy = Seen::of("ap-northeast-1", "k", h, &ring);
    assert_eq!(new_copy.kind, Kind::Replica);
    assert!(!new_copy.retired_key);
    let a = Seen::of("us-east-1", "k", a.head, &ring);
    assert!(!a.retired_key, "an original has no marker to seal again");
    let states = [a, old_copy, new_copy].map(State::Object);
    let plan = decide_sync(&states, &[true; 3], true, &Histories::default())
        .unwrap()
        .unwrap();
    assert_eq!(plan.source, 0);
    assert_eq!(
        plan.copies,
        vec![(1, Reason::Reseal, Precondition::IfMatch("eb1".into()))]
    );
    // A region sync may not write keeps its old copy.
    let plan = decide_sync(&states, &[true, false, true], true, &Histories::default())
        .unwrap()
        .unwrap();
    assert!(plan.copies.is_empty());
}
