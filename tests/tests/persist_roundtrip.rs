//! R-PERSIST: encode/decode round trip, restore policy, size bound, refused images.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod persist_support;

use jobstate::persist::{
    image_now, DecodeError, Inconsistency, FORMAT_VERSION, HEADER_LEN, RESTORE_GAP,
};
use jobstate::{
    Compacted, Config, Duration, EventKind, FailReason, Instant, JobId, JobOptions, JobTable,
    LookupError, NewJob, Outcome, Priority, Revision, State,
};
use jobstate_tests::JobView;
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
        prop_assert_eq!(image_now(&image), Ok(Instant::from_millis(t.now().as_millis())));
        let mut d = decode(&image).unwrap();
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
        // Once both moved on, the decoded table's journal serves the new events. The log ring
        // is not persisted: a line both still hold reads the same.
        let since = decode(&image).unwrap().revision();
        let ev_t = events(&t, since);
        let ev_d = events(&d, since);
        prop_assert_eq!(ev_t.len(), ev_d.len());
        for (a, b) in ev_t.iter().zip(&ev_d) {
            prop_assert_eq!(&a.0, &b.0);
            if let (Some(x), Some(y)) = (&a.1, &b.1) {
                prop_assert_eq!(x, y);
            }
        }
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
        let (r, report) = restore(&image, t.now()).unwrap();

        prop_assert_eq!(r.epoch(), t.epoch() + 1);
        prop_assert!(r.revision() > t.revision());
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
                        prop_assert_eq!(unchanged(after), unchanged(job));
                    } else {
                        changes += 1;
                        let ok = matches!(after.outcome(), Some(Outcome::Failed { reason: FailReason::DependencyFailed, .. }));
                        prop_assert!(ok);
                    }
                }
                State::Succeeded | State::Failed => prop_assert_eq!(unchanged(after), unchanged(job)),
                _ => unreachable!(),
            }
            // Every restored job took a new revision, after the gap.
            prop_assert!(after.revision().get() > t.revision().get() + RESTORE_GAP);
        }
        // Revisions continue RESTORE_GAP after the stored one; every restored job is touched
        // once (`Restored`), every change of the restart policy takes one more.
        let first = t.revision().get() + RESTORE_GAP;
        prop_assert_eq!(r.revision().get(), first + t.len() as u64 + changes);
        // Readers from before the restore re-list; from the gap on, the journal has every
        // event (while it keeps them): first the restored jobs, in slot order.
        prop_assert!(r.journal(Revision::new(first - 1)).is_err());
        if let Ok(events) = r.journal(Revision::new(first)) {
            let touched: Vec<JobId> = events
                .take(t.len())
                .map(|e| {
                    assert_eq!(e.kind, EventKind::Restored);
                    e.job
                })
                .collect();
            let ids: Vec<JobId> = t.iter().map(|j| j.id()).collect();
            prop_assert_eq!(touched, ids);
        }
        // Runnable order, level by level from the highest: what was runnable before, in
        // order, then the re-queued jobs of that level (in the order they had started).
        let level = |id: &JobId| r.get(*id).map(|j| j.priority()).ok();
        let before_order: Vec<_> = start_order(&t)
            .into_iter()
            .filter(|id| r.get(*id).map(|j| j.state() == State::Queued).unwrap_or(false))
            .collect();
        let got = start_order(&r);
        prop_assert_eq!(got.len(), before_order.len() + requeued.len());
        let mut at = 0;
        for p in [Priority::Urgent, Priority::High, Priority::Normal, Priority::Low] {
            let expected: Vec<_> = before_order.iter().copied().filter(|id| level(id) == Some(p)).collect();
            let mut again: Vec<_> = requeued.iter().copied().filter(|id| level(id) == Some(p)).collect();
            let n = expected.len() + again.len();
            prop_assert_eq!(&got[at..at + expected.len()], &expected[..]);
            let mut rest = got[at + expected.len()..at + n].to_vec();
            rest.sort();
            again.sort();
            prop_assert_eq!(rest, again);
            at += n;
        }
        // Old ids of jobs not restored answer Stale (or Expired with a tombstone); all ids the
        // table kept still work.
        for id in &run.ids {
            match (t.get(*id), r.get(*id)) {
                (Ok(_), got) => prop_assert!(got.is_ok()),
                (Err(LookupError::Expired(Some(ts))), got) => prop_assert_eq!(got.map(|_| ()), Err(LookupError::Expired(Some(ts)))),
                (Err(_), got) => { let ok = matches!(got, Err(LookupError::Stale | LookupError::Expired(_))); prop_assert!(ok) }
            }
        }
    }

    /// R-PERSIST, R-INPUT: decoding arbitrary bytes, raw or under a valid header, never panics;
    /// whatever decodes round-trips exactly and keeps working.
    #[test]
    fn r_persist_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), more in ops(10)) {
        for image in [bytes.clone(), seal(&bytes)] {
            let _ = restore(&image, Instant::from_secs(1));
            if let Ok(mut t) = decode(&image) {
                let again = encode(&t);
                let back = decode(&again).unwrap();
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
        if let Ok((mut r, _)) = restore(&seal(&body), t.now()) {
            let copy = decode(&encode(&r)).unwrap();
            assert_same(&r, &copy, &run.ids);
            run.apply_all(&mut r, &more);
            let copy = decode(&encode(&r)).unwrap();
            assert_same(&r, &copy, &run.ids);
        }
    }
}

/// A job as its getters answer, except the revision (a restore touches every job).
fn unchanged(job: jobstate::JobRef<'_, u32>) -> JobView<u32> {
    JobView {
        revision: Revision::ZERO,
        ..JobView::of(job)
    }
}

/// The journal after `since`: each event, and its log line while the ring holds it.
type Seen = ((Revision, JobId, EventKind), Option<String>);

fn events(t: &Table, since: Revision) -> Vec<Seen> {
    t.journal(since)
        .map(|e| {
            e.map(|e| ((e.revision, e.job, e.kind), e.line().map(String::from)))
                .collect()
        })
        .unwrap_or_default()
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
        let e = decode(&image[..len]).err();
        assert!(
            matches!(e, Some(DecodeError::Truncated)),
            "cut at {len}: {e:?}"
        );
    }
    for bit in 0..image.len() * 8 {
        let mut bad = image.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let e = decode(&bad).err();
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
        decode(&seal(&dup)).err(),
        Some(DecodeError::Inconsistent(Inconsistency::DuplicateSlot))
    );
    let mut out_of_range = body.to_vec();
    out_of_range[n - 1] = 5;
    assert_eq!(
        decode(&seal(&out_of_range)).err(),
        Some(DecodeError::Inconsistent(Inconsistency::SlotIndex))
    );
    // Swapped order is a valid (different) image: start order follows it.
    let mut swapped = body.to_vec();
    swapped.swap(n - 1, n - 2);
    let t = decode(&seal(&swapped)).unwrap();
    assert_eq!(t.peek_runnable().map(|id| id.index()), Some(1));
    // Trailing bytes.
    let mut longer = body.to_vec();
    longer.push(0);
    assert_eq!(decode(&seal(&longer)).err(), Some(DecodeError::Malformed));
}

/// R-PERSIST: a newer format is refused explicitly; a smaller table refuses a bigger image.
#[test]
fn r_persist_version_and_capacity_refused() {
    let (_, mut image) = two_queued();
    for version in [FORMAT_VERSION + 1, 1, 0] {
        image[4] = version;
        assert_eq!(
            decode(&image).err(),
            Some(DecodeError::UnsupportedVersion(version))
        );
    }

    let mut big = table();
    let first = big.submit(NewJob::new(0), Instant::from_secs(0)).unwrap();
    for k in 1..6 {
        big.submit(NewJob::new(k).depends_on(&[first]), Instant::from_secs(0))
            .unwrap();
    }
    let image = encode(&big);
    fn decode_into<const N: usize, const T: usize, const E: usize>(
        image: &[u8],
    ) -> Result<Box<JobTable<u32, N, T, 8, 48, E, 4>>, DecodeError> {
        let mut t = Box::new(JobTable::new(Config::DEFAULT));
        t.decode_in_place(image).map(|()| t)
    }
    assert_eq!(
        decode_into::<4, 16, 6>(&image).err(),
        Some(DecodeError::CapacityTooSmall { needed: 6 })
    );
    // Fewer dependency edges than the image uses: refused too.
    assert!(matches!(
        decode_into::<6, 16, 4>(&image).err(),
        Some(DecodeError::CapacityTooSmall { .. })
    ));
    // A bigger table, longer texts, a bigger pool: loads.
    let wider = decode_into::<10, 32, 10>(&image).unwrap();
    assert_eq!(wider.len(), 6);
    // Shorter texts than stored: refused (the text does not fit the table's type).
    let mut t = table();
    t.submit(
        NewJob::new(1).description("sixteen bytes!!!"),
        Instant::from_secs(0),
    )
    .unwrap();
    assert!(matches!(
        decode_into::<6, 8, 6>(&encode(&t)).err(),
        Some(DecodeError::Malformed | DecodeError::Inconsistent(Inconsistency::JobState))
    ));
}

/// R-PERSIST: the const size bound holds for a worst-case table, and the measured sizes per
/// slot (printed with `--nocapture`) are what docs/persistence.md quotes.
#[test]
fn r_persist_size_bound_holds_and_measured() {
    // Every job with the most dependencies: a pool of 16 * 8 edges.
    type Big = JobTable<u32, 16, 64, 8, 256, 128>;
    const BOUND: usize = Big::image_size_bound(5);
    let mut t = Box::new(Big::new(Config::DEFAULT));
    let far = Instant::from_ticks(u64::MAX / 4);
    let text = "x".repeat(64);
    let opts = JobOptions {
        restartable: true,
        pausable: true,
        cancelable: true,
        run_timeout: Some(JobOptions::MAX_DURATION),
        lease: Some(JobOptions::MAX_DURATION),
    };
    let first: Vec<_> = (0..8)
        .map(|_| {
            t.submit(NewJob::new(u32::MAX).description(&text).options(opts), far)
                .unwrap()
        })
        .collect();
    for _ in 8..16 {
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
         worst case (T=64, 8 dependencies) {worst} B = {:.1} B/slot; bound {BOUND} B = {:.1} B/slot",
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
    assert_eq!(t.epoch(), 0);
    let (mut r, _) = restore(&image, t0).unwrap();
    assert_eq!(r.get(kept).unwrap().id(), kept);
    assert_eq!(r.get(gone).err(), Some(LookupError::Stale));
    let new = r.submit(NewJob::new(4), t0).unwrap();
    assert_eq!(new.epoch(), 1);
    assert_eq!(new.index(), gone.index()); // same slot, new epoch: no confusion
    let (r2, _) = restore(&encode(&r), t0).unwrap();
    assert_eq!(r2.epoch(), 2);
    assert!(r2.get(kept).is_ok() && r2.get(new).is_ok());
    assert_eq!(r2.get(gone).err(), Some(LookupError::Stale));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// R-PERSIST: restoring in place over a table with other contents (and another config)
    /// gives the same table as restoring into a new one; a refused body leaves the table empty
    /// (config kept), a refused header leaves it unchanged — never half-loaded.
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
        let (expected, report) = restore(&image, t.now()).unwrap();

        let mut target = Box::new(Table::new(Config { retention: Duration::from_secs(99) }));
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
        let config = target.config();
        if target.restore_in_place(&seal(&body), t.now()).is_err() {
            prop_assert!(target.is_empty());
            prop_assert_eq!(target.epoch(), 0);
            prop_assert_eq!(target.revision(), Revision::ZERO);
            prop_assert_eq!(target.peek_runnable(), None);
            prop_assert_eq!(target.config(), config);
            prop_assert_eq!(target.tombstones().count(), 0);
            let fresh = encode(&Table::new(config));
            prop_assert_eq!(encode(&target), fresh);
        }
    }
}

/// R-PERSIST, R-SCHED, R-DEPS: a decoded table releases and cascades dependents in the order
/// the original does — jobs released together start in submit order, a cascade fails them
/// newest first — even when slot order is not submit order.
#[test]
fn r_persist_dependents_keep_their_order_through_an_image() {
    let t0 = Instant::from_secs(0);
    let later = Instant::from_secs(20);
    // `x` runs; `older` and `newer` wait for it; `newer` took a lower slot than `older`.
    let build = || {
        let mut t = Box::new(table());
        let x = t.submit(NewJob::new(1), t0).unwrap();
        t.start(x, t0).unwrap();
        let filler = t.submit(NewJob::new(2), t0).unwrap();
        t.request_cancel(filler, t0).unwrap();
        let older = t.submit(NewJob::new(3).depends_on(&[x]), t0).unwrap();
        t.expire(later); // frees the filler's slot
        let newer = t.submit(NewJob::new(4).depends_on(&[x]), later).unwrap();
        assert!(
            newer.index() < older.index(),
            "slot order is not submit order"
        );
        (t, x, older, newer)
    };
    let now = Instant::from_secs(21);
    let kinds = ["original", "decoded"];

    // Released together: they start in submit order.
    let (original, x, older, newer) = build();
    let decoded = decode(&encode(&original)).unwrap();
    for (kind, mut t) in kinds.into_iter().zip([original, decoded]) {
        t.succeed(x, jobstate::Severity::Normal, "", now).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| t.start_next(now)).collect();
        assert_eq!(order, [older, newer], "{kind}: start order");
    }

    // Failed together: newest dependent first, one revision each.
    let (original, ..) = build();
    let decoded = decode(&encode(&original)).unwrap();
    for (kind, mut t) in kinds.into_iter().zip([original, decoded]) {
        t.fail(x, 1, "", now).unwrap();
        let (o, n) = (
            t.get(older).unwrap().revision(),
            t.get(newer).unwrap().revision(),
        );
        assert_eq!(n.get() + 1, o.get(), "{kind}: cascade order");
    }
}
