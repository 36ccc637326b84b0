//! Shared pieces of the fuzz targets: a small table type, an operation interpreter driven by
//! bytes, and the observable-answer comparison used after an encode/decode round trip.

use jobstate::persist::{FORMAT_VERSION, HEADER_LEN, MAGIC};
use jobstate::{
    Condition, Config, Duration, Instant, JobId, JobOptions, JobTable, NewJob, Severity,
};

/// The table under fuzz: 8 slots, 16-byte texts, 3 dependencies, 8 journal events.
pub type Table = JobTable<u16, 8, 16, 3, 8>;

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
                let job = NewJob::new(u16::from(a) << 8 | u16::from(b))
                    .description("job")
                    .depends_on(&deps)
                    .options(options);
                if let Ok(id) = table.submit(job, *now) {
                    ids.push(id);
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
                }
            }
        }
    }
}

/// Every observable answer of `a` and `b` is equal (the journal aside: a decoded table starts
/// compacted at its revision).
pub fn assert_same(a: &Table, b: &Table, ids: &[JobId]) {
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(a.now(), b.now());
    assert_eq!(a.len(), b.len());
    assert_eq!(a.peek_runnable(), b.peek_runnable());
    assert_eq!(a.next_timer(), b.next_timer());
    assert!(a.iter().eq(b.iter()));
    assert!(a.tombstones().eq(b.tombstones()));
    for id in ids {
        assert_eq!(a.get(*id), b.get(*id));
        assert_eq!(
            a.check(*id, Condition::Terminal),
            b.check(*id, Condition::Terminal)
        );
    }
}

/// A fresh table with the default config.
pub fn table() -> Table {
    Table::new(Config {
        retention: Duration::from_secs(5),
    })
}
