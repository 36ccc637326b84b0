//! Shared pieces of the fuzz targets: a small table type, an operation interpreter driven by
//! bytes, and the observable-answer comparison used after an encode/decode round trip.
//!
//! Tables are decoded and restored in place (`decode_in_place`, `restore_in_place`), into a
//! table on the heap, as a program does with a `static` or a `Box`.

use jobstate::persist::{DecodeError, Restored, FORMAT_VERSION, HEADER_LEN, MAGIC};
use jobstate::{
    Condition, Config, Duration, FailReason, Instant, Job, JobId, JobOptions, JobTable, NewJob,
    Priority, Severity,
};

/// The table under fuzz: 8 slots, 16-byte texts, 8 journal events, a 64-byte log ring, a pool
/// of 8 dependency edges, 4 tombstones.
pub type Table = JobTable<u16, 8, 16, 8, 64, 8, 4>;

/// Enough for any image of [`Table`] (a `u16` spec encodes to at most 3 bytes).
pub const IMAGE: usize = Table::image_size_bound(3);

/// Wrap `body` in a valid header (magic, version, length, CRC), so the fuzzer reaches the body
/// checks instead of failing the CRC.
pub fn seal(body: &[u8], out: &mut Vec<u8>) {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let mut d = CRC.digest();
    d.update(&out[..9]);
    d.update(body);
    out.extend_from_slice(&d.finalize().to_le_bytes());
    out.extend_from_slice(body);
    debug_assert_eq!(out.len(), HEADER_LEN + body.len());
}

/// Decode `image` into a new table on the heap.
pub fn decode(image: &[u8]) -> Result<Box<Table>, DecodeError> {
    let mut t = Box::new(table());
    t.decode_in_place(image)?;
    Ok(t)
}

/// Restore `image` into a new table on the heap.
pub fn restore(image: &[u8], now: Instant) -> Result<(Box<Table>, Restored), DecodeError> {
    let mut t = Box::new(table());
    let report = t.restore_in_place(image, now)?;
    Ok((t, report))
}

/// Run operations encoded 3 bytes each (opcode, a, b) on `table`; every id the table hands out
/// is remembered in `ids`. Time moves forward by `b` seconds on the clock op.
pub fn run_ops(table: &mut Table, ids: &mut Vec<JobId>, now: &mut Instant, data: &[u8]) {
    for op in data.chunks_exact(3) {
        let (code, a, b) = (op[0], op[1], op[2]);
        let pick = |k: u8| ids.get(usize::from(k) % ids.len().max(1)).copied();
        match code % 12 {
            0 | 1 => {
                let deps: Vec<JobId> = (0..(b % 3))
                    .filter_map(|k| pick(a.wrapping_add(k)))
                    .collect();
                let options = JobOptions {
                    restartable: a & 1 == 1,
                    pausable: a & 2 == 0,
                    cancelable: a & 4 == 0,
                    run_timeout: (a & 8 == 8).then(|| Duration::from_secs(u64::from(b))),
                    lease: (a & 16 == 16).then(|| Duration::from_secs(u64::from(b) + 1)),
                };
                let spec = u16::from(a) << 8 | u16::from(b);
                let job = NewJob::new(spec)
                    .description("job")
                    .depends_on(&deps)
                    .options(options)
                    .priority(Priority::of_level(a >> 5));
                match table.submit(job, *now) {
                    Ok(id) => ids.push(id),
                    // A refused job comes back whole.
                    Err(refused) => assert_eq!(refused.into_spec(), spec),
                }
            }
            2 => {
                let _ = table.start_next(*now);
            }
            3 => {
                if let Some(id) = pick(a) {
                    let _ = table.progress(id, b % 110, "step", *now);
                }
            }
            4 => {
                if let Some(id) = pick(a) {
                    let _ = table.succeed(id, Severity::Warning, "ok", *now);
                }
            }
            5 => {
                if let Some(id) = pick(a) {
                    let _ = table.fail(id, i32::from(b), "bad", *now);
                }
            }
            6 => {
                if let Some(id) = pick(a) {
                    let _ = table.request_cancel(id, *now);
                }
            }
            7 => {
                if let Some(id) = pick(a) {
                    let _ = table.request_pause(id, *now);
                }
            }
            8 => {
                if let Some(id) = pick(a) {
                    let _ = table.request_resume(id, *now);
                }
            }
            9 => {
                if let Some(id) = pick(a) {
                    let _ = table.checkpoint(id, *now);
                }
            }
            10 => {
                *now = Instant::from_ticks(
                    now.as_ticks()
                        .saturating_add(Duration::from_secs(u64::from(b)).as_ticks()),
                );
                let _ = table.expire(*now);
            }
            _ => {
                if let Some(id) = pick(a) {
                    let _ = table.log(id, "line", *now);
                    let _ = table.heartbeat(id, *now);
                    if b % 4 == 0 {
                        let _ = table.fail_with(id, FailReason::Interrupted, None, "", *now);
                    }
                }
            }
        }
    }
}

/// Every observable answer of `a` and `b` is equal (the journal aside: a decoded table starts
/// compacted at its revision).
pub fn assert_same(a: &Table, b: &Table, ids: &[JobId]) {
    fn owned(job: jobstate::JobRef<'_, u16>) -> Job<u16, 16> {
        job.snapshot()
    }
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(a.now(), b.now());
    assert_eq!(a.len(), b.len());
    assert_eq!(a.retired(), b.retired());
    assert_eq!(a.config(), b.config());
    assert_eq!(a.peek_runnable(), b.peek_runnable());
    assert_eq!(a.next_timer(), b.next_timer());
    assert_eq!(a.next_free_at(), b.next_free_at());
    assert!(a.iter().map(owned).eq(b.iter().map(owned)));
    assert!(a.tombstones().eq(b.tombstones()));
    for id in ids {
        assert_eq!(a.get(*id).map(owned), b.get(*id).map(owned));
        assert_eq!(
            a.check(*id, Condition::Terminal).map(|j| j.map(owned)),
            b.check(*id, Condition::Terminal).map(|j| j.map(owned))
        );
    }
}

/// A fresh table with the default config.
pub fn table() -> Table {
    Table::new(Config {
        retention: Duration::from_secs(5),
    })
}
