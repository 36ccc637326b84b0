//! R-PERSIST: encode/decode round trip, restore policy, size bound, refused images.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod persist_support;

use jobstate::persist::{image_now, DecodeError, Inconsistency, FORMAT_VERSION, HEADER_LEN};
use jobstate::{
    Compacted, Config, Duration, FailReason, Instant, JobOptions, JobTable, LookupError, NewJob,
    Outcome, Revision, State,
};
use persist_support::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// R-PERSIST: any table reachable by operations decodes to a table with every observable
    /// answer equal — now, and after any further operations applied to both.
    #[test]
    fn r_persist_roundtrip_every_answer_equal(before in ops(40), after in ops(25)) {
        let mut t = table();
        let mut run = Run::new();
        run.apply_all(&mut t, &before);

        let image = encode(&t);
        prop_assert!(image.len() <= IMAGE);
        let mut d = Table::decode(&image).unwrap();
        assert_same(&t, &d, &run.ids);
        prop_assert_eq!(start_order(&t), start_order(&d));
        // The journal is not persisted: readers before the stored revision re-list.
        if t.revision() > Revision::ZERO {
            let r = d.journal(Revision::new(t.revision().get() - 1)).map(|e| e.count());
            prop_assert_eq!(r, Err(Compacted { oldest: t.revision().next_for_test() }));
        }
        prop_assert_eq!(d.journal(t.revision()).map(|e| e.count()).ok(), Some(0));

        // Both go on the same way: same answers, same state, same new ids.
        let mut run_d = run.clone();
        for op in &after {
            let a = run.apply(&mut t, op);
            let b = run_d.apply(&mut d, op);
            prop_assert_eq!(a, b, "answer to {:?}", op);
        }
        assert_same(&t, &d, &run.ids);
        // Once both moved on, the decoded table's journal serves the new events.
        let since = image_now(&image).map(|_| Table::decode(&image).unwrap().revision()).unwrap();
        let ev_t: Vec<_> = t.journal(since).map(|e| e.cloned().collect()).unwrap_or_default();
        let ev_d: Vec<_> = d.journal(since).map(|e| e.cloned().collect()).unwrap_or_default();
        prop_assert_eq!(ev_t, ev_d);
    }

    /// R-PERSIST: restore keeps queued jobs queued in order, fails running and paused jobs with
    /// `Interrupted` (dependents with `DependencyFailed`), re-queues restartable ones, advances
    /// the epoch and continues the revision.
    #[test]
    fn r_persist_restore_policy(before in ops(40)) {
        let mut t = table();
        let mut run = Run::new();
        run.apply_all(&mut t, &before);
        let image = encode(&t);
        let (r, report) = Table::restore(&image, t.now()).unwrap();

        prop_assert_eq!(r.epoch(), t.epoch() + 1);
        prop_assert!(r.revision() >= t.revision());
        prop_assert_eq!(report.jobs, t.len());
        let live_before = t.iter().filter(|j| matches!(j.state(), State::Running | State::Paused)).count();
        prop_assert_eq!(report.interrupted + report.requeued + report.canceled, live_before);
        let mut requeued = Vec::new();
        let mut changes = 0u64;
        for job in t.iter() {
            let after = r.get(job.id()).unwrap();
            match job.state() {
                State::Running | State::Paused => {
                    changes += 1;
                    if job.cancel_requested() {
                        let ok = matches!(after.outcome(), Some(Outcome::Failed { reason: FailReason::Canceled, .. }));
                        prop_assert!(ok);
                    } else if job.options().restartable {
                        prop_assert_eq!(after.state(), State::Queued);
                        requeued.push(job.id());
                    } else {
                        let ok = matches!(after.outcome(), Some(Outcome::Failed { reason: FailReason::Interrupted, code: 5 }));
                        prop_assert!(ok);
                    }
                    prop_assert!(after.revision() > t.revision());
                }
                State::Queued => {
                    if after.state() == State::Queued {
                        prop_assert_eq!(after, job);
                    } else {
                        changes += 1;
                        let ok = matches!(after.outcome(), Some(Outcome::Failed { reason: FailReason::DependencyFailed, .. }));
                        prop_assert!(ok);
                    }
                }
                State::Succeeded | State::Failed => prop_assert_eq!(after, job),
            }
        }
        // Every change took exactly one new revision after the stored one.
        prop_assert_eq!(r.revision().get(), t.revision().get() + changes);
        // Runnable order: what was runnable before, in order, then the re-queued jobs (in the
        // order they had started).
        let expected: Vec<_> = start_order(&t)
            .into_iter()
            .filter(|id| r.get(*id).map(|j| j.state() == State::Queued).unwrap_or(false))
            .collect();
        let got = start_order(&r);
        prop_assert_eq!(got.len(), expected.len() + requeued.len());
        prop_assert_eq!(&got[..expected.len()], &expected[..]);
        let mut rest = got[expected.len()..].to_vec();
        rest.sort();
        requeued.sort();
        prop_assert_eq!(rest, requeued);
        // Old ids of jobs not restored answer Stale (or Expired with a tombstone); all ids the
        // table kept still work.
        for id in &run.ids {
            match (t.get(*id), r.get(*id)) {
                (Ok(_), got) => prop_assert!(got.is_ok()),
                (Err(LookupError::Expired(Some(ts))), got) => prop_assert_eq!(got, Err(LookupError::Expired(Some(ts)))),
                (Err(_), got) => { let ok = matches!(got, Err(LookupError::Stale | LookupError::Expired(_))); prop_assert!(ok) }
            }
        }
    }

    /// R-PERSIST, R-INPUT: decoding arbitrary bytes, raw or under a valid header, never panics;
    /// whatever decodes round-trips exactly and keeps working.
    #[test]
    fn r_persist_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), more in ops(10)) {
        for image in [bytes.clone(), seal(&bytes)] {
            let _ = Table::restore(&image, Instant::from_secs(1));
            if let Ok(mut t) = Table::decode(&image) {
                let again = encode(&t);
                let back = Table::decode(&again).unwrap();
                assert_same(&t, &back, &t.iter().map(|j| j.id()).collect::<Vec<_>>());
                let mut run = Run::new();
                run.ids = t.iter().map(|j| j.id()).collect();
                run.apply_all(&mut t, &more);
            }
        }
    }

    /// R-PERSIST: a valid image with bytes of its body changed (and the CRC made to fit) is
    /// refused with a typed error or loads a table that is consistent: it re-encodes to an
    /// equal table and every operation still works.
    #[test]
    fn r_persist_mutated_body_refused_or_consistent(
        before in ops(30),
        flips in prop::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        more in ops(15),
    ) {
        let mut t = table();
        let mut run = Run::new();
        run.apply_all(&mut t, &before);
        let image = encode(&t);
        let mut body = image[HEADER_LEN..].to_vec();
        for (at, x) in flips {
            let n = body.len();
            body[at % n] ^= x;
        }
        if let Ok((mut r, _)) = Table::restore(&seal(&body), t.now()) {
            let copy = Table::decode(&encode(&r)).unwrap();
            assert_same(&r, &copy, &run.ids);
            run.apply_all(&mut r, &more);
            let copy = Table::decode(&encode(&r)).unwrap();
            assert_same(&r, &copy, &run.ids);
        }
    }
}

trait NextForTest {
    fn next_for_test(self) -> Revision;
}
impl NextForTest for Revision {
    fn next_for_test(self) -> Revision {
        Revision::new(self.get() + 1)
    }
}

fn two_queued() -> (Table, Vec<u8>) {
    let mut t = table();
    let t0 = Instant::from_secs(0);
    t.submit(NewJob::new(1), t0).unwrap();
    t.submit(NewJob::new(2), t0).unwrap();
    let image = encode(&t);
    (t, image)
}

/// R-PERSIST: every truncation and every single-bit flip of an image is refused, typed.
#[test]
fn r_persist_truncated_or_flipped_image_refused() {
    let mut t = table();
    let mut run = Run::new();
    let t0 = Instant::from_secs(0);
    let a = t.submit(NewJob::new(7).description("first"), t0).unwrap();
    run.ids.push(a);
    t.submit(NewJob::new(8).depends_on(&[a]), t0).unwrap();
    t.start(a, t0).unwrap();
    let image = encode(&t);
    for len in 0..image.len() {
        let e = Table::decode(&image[..len]).err();
        assert!(
            matches!(e, Some(DecodeError::Truncated)),
            "cut at {len}: {e:?}"
        );
    }
    for bit in 0..image.len() * 8 {
        let mut bad = image.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let e = Table::decode(&bad).err();
        assert!(
            matches!(
                e,
                Some(
                    DecodeError::Checksum
                        | DecodeError::BadMagic
                        | DecodeError::UnsupportedVersion(_)
                        | DecodeError::Truncated
                )
            ),
            "bit {bit}: {e:?}"
        );
    }
}

/// R-PERSIST: CRC-valid images that break a rule are refused with the rule's name.
#[test]
fn r_persist_inconsistent_images_refused() {
    let (_, image) = two_queued();
    // The body ends with the runnable list: slots 0 then 1.
    let body = &image[HEADER_LEN..];
    let n = body.len();
    assert_eq!(&body[n - 2..], &[0, 1]);

    let mut dup = body.to_vec();
    dup[n - 1] = 0;
    assert_eq!(
        Table::decode(&seal(&dup)).err(),
        Some(DecodeError::Inconsistent(Inconsistency::DuplicateSlot))
    );
    let mut out_of_range = body.to_vec();
    out_of_range[n - 1] = 5;
    assert_eq!(
        Table::decode(&seal(&out_of_range)).err(),
        Some(DecodeError::Inconsistent(Inconsistency::SlotIndex))
    );
    // Swapped order is a valid (different) image: start order follows it.
    let mut swapped = body.to_vec();
    swapped.swap(n - 1, n - 2);
    let t = Table::decode(&seal(&swapped)).unwrap();
    assert_eq!(t.peek_runnable().map(|id| id.index()), Some(1));
    // Trailing bytes.
    let mut longer = body.to_vec();
    longer.push(0);
    assert_eq!(
        Table::decode(&seal(&longer)).err(),
        Some(DecodeError::Malformed)
    );
}

/// R-PERSIST: a newer format is refused explicitly; a smaller table refuses a bigger image.
#[test]
fn r_persist_version_and_capacity_refused() {
    let (_, mut image) = two_queued();
    image[4] = FORMAT_VERSION + 1;
    assert_eq!(
        Table::decode(&image).err(),
        Some(DecodeError::UnsupportedVersion(FORMAT_VERSION + 1))
    );

    let mut big: JobTable<u32, 6, 16, 3, 8> = table();
    for k in 0..6 {
        big.submit(NewJob::new(k), Instant::from_secs(0)).unwrap();
    }
    let image = encode(&big);
    assert_eq!(
        JobTable::<u32, 4, 16, 3, 8>::decode(&image).err(),
        Some(DecodeError::CapacityTooSmall { needed: 6 })
    );
    // A bigger table, longer texts, more dependencies: loads.
    let wider = JobTable::<u32, 10, 32, 4, 8>::decode(&image).unwrap();
    assert_eq!(wider.len(), 6);
    // Shorter texts than stored: refused as malformed.
    let mut t = table();
    t.submit(
        NewJob::new(1).description("sixteen bytes!!!"),
        Instant::from_secs(0),
    )
    .unwrap();
    assert_eq!(
        JobTable::<u32, 6, 8, 3, 8>::decode(&encode(&t)).err(),
        Some(DecodeError::Malformed)
    );
}

/// R-PERSIST: the const size bound holds for a worst-case table, and the measured sizes per
/// slot (printed with `--nocapture`) are what docs/persistence.md quotes.
#[test]
fn r_persist_size_bound_holds_and_measured() {
    type Big = JobTable<u32, 16, 64, 4, 8>;
    const BOUND: usize = Big::image_size_bound(5);
    let mut t = Big::new(Config::DEFAULT);
    let far = Instant::from_ticks(u64::MAX / 4);
    let text = "x".repeat(64);
    let opts = JobOptions {
        restartable: true,
        pausable: true,
        cancelable: true,
        run_timeout: Some(Duration::from_ticks(u64::MAX / 8)),
        lease: Some(Duration::from_ticks(u64::MAX / 8)),
    };
    let first: Vec<_> = (0..4)
        .map(|_| {
            t.submit(NewJob::new(u32::MAX).description(&text).options(opts), far)
                .unwrap()
        })
        .collect();
    for _ in 4..16 {
        t.submit(
            NewJob::new(u32::MAX)
                .description(&text)
                .depends_on(&first)
                .options(opts),
            far,
        )
        .unwrap();
    }
    for id in &first {
        t.start(*id, far).unwrap();
        t.progress(*id, 99, &text, far).unwrap();
        t.request_cancel(*id, far).unwrap();
    }
    let mut buf = vec![0u8; BOUND];
    let worst = t.encode(&mut buf).unwrap();
    assert!(worst <= BOUND, "{worst} > {BOUND}");

    // Typical: short texts, small spec, default options, a mix of states.
    let mut typical: JobTable<u32, 16> = JobTable::new(Config::DEFAULT);
    let t0 = Instant::from_secs(1_000);
    let ids: Vec<_> = (0..16)
        .map(|k| {
            typical
                .submit(NewJob::new(k).description("resize volume vol1"), t0)
                .unwrap()
        })
        .collect();
    for id in &ids[..8] {
        typical.start(*id, t0).unwrap();
        typical.progress(*id, 40, "copying blocks", t0).unwrap();
    }
    for id in &ids[..4] {
        typical
            .succeed(*id, jobstate::Severity::Normal, "done", t0)
            .unwrap();
    }
    let mut buf = vec![0u8; JobTable::<u32, 16>::image_size_bound(5)];
    let typ = typical.encode(&mut buf).unwrap();
    let empty = JobTable::<u32, 16>::new(Config::DEFAULT)
        .encode(&mut buf)
        .unwrap();
    println!(
        "image sizes, N=16: empty {empty} B; typical (T=64, 16 jobs) {typ} B = {:.1} B/slot; \
         worst case (T=64, D=4) {worst} B = {:.1} B/slot; bound {BOUND} B = {:.1} B/slot",
        (typ - empty) as f64 / 16.0,
        (worst - empty) as f64 / 16.0,
        BOUND as f64 / 16.0,
    );
    assert!(typ < worst);
}

/// R-PERSIST, R-ID: restored jobs keep their ids; other old-epoch ids are stale; new ids carry
/// the new epoch; restoring twice keeps going.
#[test]
fn r_persist_ids_across_restores() {
    let (mut t, _) = two_queued();
    let t0 = Instant::from_secs(0);
    let kept = t.peek_runnable().unwrap();
    let image = encode(&t);
    let gone = t.submit(NewJob::new(3), t0).unwrap(); // after the image was taken
    let (mut r, _) = Table::restore(&image, t0).unwrap();
    assert_eq!(r.get(kept).unwrap().id(), kept);
    assert_eq!(r.get(gone).err(), Some(LookupError::Stale));
    let new = r.submit(NewJob::new(4), t0).unwrap();
    assert_eq!(new.epoch(), 2);
    assert_eq!(new.index(), gone.index()); // same slot, new epoch: no confusion
    let (r2, _) = Table::restore(&encode(&r), t0).unwrap();
    assert_eq!(r2.epoch(), 3);
    assert!(r2.get(kept).is_ok() && r2.get(new).is_ok());
    assert_eq!(r2.get(gone).err(), Some(LookupError::Stale));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// R-PERSIST: restoring in place over a table with other contents gives the same table as
    /// `restore`; a refused body leaves the table empty (config kept), a refused header leaves
    /// it unchanged — never half-loaded.
    #[test]
    fn r_persist_restore_in_place_same_as_restore(
        image_ops in ops(30),
        other_ops in ops(30),
        flip in (any::<usize>(), 1u8..=255),
    ) {
        let mut t = table();
        let mut run = Run::new();
        run.apply_all(&mut t, &image_ops);
        let image = encode(&t);
        let (expected, report) = Table::restore(&image, t.now()).unwrap();

        let mut target = Table::new(Config { retention: Duration::from_secs(99) });
        let mut other = Run::new();
        other.apply_all(&mut target, &other_ops);
        let got = target.restore_in_place(&image, t.now()).unwrap();
        prop_assert_eq!(got, report);
        let mut ids = run.ids.clone();
        ids.extend(other.ids.iter().copied());
        assert_same(&expected, &target, &ids);

        // A header/CRC error changes nothing.
        let before = encode(&target);
        let mut bad = image.clone();
        bad[HEADER_LEN - 1] ^= 1;
        prop_assert_eq!(target.restore_in_place(&bad, t.now()).err(), Some(DecodeError::Checksum));
        prop_assert_eq!(encode(&target), before);

        // A body error leaves it empty, with its own config.
        let mut body = image[HEADER_LEN..].to_vec();
        let n = body.len();
        body[flip.0 % n] ^= flip.1;
        let config = *target.config();
        if target.restore_in_place(&seal(&body), t.now()).is_err() {
            prop_assert!(target.is_empty());
            prop_assert_eq!(target.epoch(), 1);
            prop_assert_eq!(target.revision(), Revision::ZERO);
            prop_assert_eq!(target.peek_runnable(), None);
            prop_assert_eq!(*target.config(), config);
            prop_assert_eq!(target.tombstones().count(), 0);
            let fresh = encode(&Table::new(config));
            prop_assert_eq!(encode(&target), fresh);
        }
    }
}
