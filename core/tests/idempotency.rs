//! R-IDEMPOTENT: idempotency keys on the bare table.

use std::collections::HashMap;

use jobstate::{Config, Duration, Idempotent, Instant, JobTable, NewJob, SubmitError};

/// 8 jobs, 16 keys.
type Table = JobTable<u32, 8, 16, 16, 64, 8, 8, 16>;

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn table() -> Box<Table> {
    Box::new(Table::new(Config {
        retention: Duration::from_millis(100),
    }))
}

#[test]
fn r_idempotent_same_key_same_request_answers_the_same_job_and_changes_nothing() {
    let mut t = table();
    let first = t
        .submit_idempotent(NewJob::new(1), b"token-1", 7, ms(0))
        .unwrap();
    let Idempotent::New(id) = first else {
        panic!("{first:?}")
    };
    let revision = t.revision();
    let again = t
        .submit_idempotent(NewJob::new(1), b"token-1", 7, ms(5))
        .unwrap();
    assert_eq!(again, Idempotent::Existing(id));
    assert_eq!((t.revision(), t.len()), (revision, 1));
    assert_eq!(t.key_job(b"token-1"), Some(id));
    // Another key is another job.
    let other = t
        .submit_idempotent(NewJob::new(1), b"token-2", 7, ms(5))
        .unwrap();
    assert!(matches!(other, Idempotent::New(o) if o != id));
}

#[test]
fn r_idempotent_same_key_other_request_is_refused_and_the_job_handed_back() {
    let mut t = table();
    let id = t
        .submit_idempotent(NewJob::new(1), b"k", 7, ms(0))
        .unwrap()
        .id();
    let revision = t.revision();
    let refused = t
        .submit_idempotent(NewJob::new(99), b"k", 8, ms(1))
        .unwrap_err();
    assert_eq!(refused.error, SubmitError::KeyConflict(id));
    assert_eq!(refused.into_spec(), 99);
    assert_eq!((t.revision(), t.len()), (revision, 1));
}

#[test]
fn r_idempotent_a_key_lapses_with_its_job_after_retention() {
    let mut t = table();
    let id = t
        .submit_idempotent(NewJob::new(1), b"k", 7, ms(0))
        .unwrap()
        .id();
    t.start_next(ms(0));
    t.succeed(id, jobstate::Severity::Normal, "", ms(10))
        .unwrap();
    // Terminal within retention: still the same job.
    assert_eq!(
        t.submit_idempotent(NewJob::new(1), b"k", 7, ms(50))
            .unwrap(),
        Idempotent::Existing(id)
    );
    t.expire(ms(110));
    assert!(t.get(id).is_err());
    let again = t
        .submit_idempotent(NewJob::new(1), b"k", 8, ms(120))
        .unwrap();
    assert!(matches!(again, Idempotent::New(n) if n != id));
}

#[test]
fn r_idempotent_keys_full_is_refused_cleanly() {
    let mut t = Box::new(JobTable::<u32, 8, 16, 16, 64, 8, 8, 2>::new(
        Config::DEFAULT,
    ));
    t.submit_idempotent(NewJob::new(1), b"a", 1, ms(0)).unwrap();
    t.submit_idempotent(NewJob::new(2), b"b", 1, ms(0)).unwrap();
    let refused = t
        .submit_idempotent(NewJob::new(3), b"c", 1, ms(0))
        .unwrap_err();
    assert_eq!(refused.error, SubmitError::KeysFull);
    assert_eq!(t.len(), 2);
    // Without a key, submits still work.
    t.submit(NewJob::new(4), ms(0)).unwrap();
}

#[cfg(feature = "persist")]
#[test]
fn r_idempotent_keys_survive_a_restart() {
    let mut t = table();
    let id = t
        .submit_idempotent(NewJob::new(1), b"k", 7, ms(0))
        .unwrap()
        .id();
    let mut buf = vec![0; Table::image_size_bound(5)];
    let len = t.encode(&mut buf).unwrap();
    let mut back = table();
    back.restore_in_place(&buf[..len], ms(1)).unwrap();
    assert_eq!(
        back.submit_idempotent(NewJob::new(1), b"k", 7, ms(2))
            .unwrap(),
        Idempotent::Existing(id)
    );
    assert_eq!(
        back.submit_idempotent(NewJob::new(1), b"k", 6, ms(2))
            .unwrap_err()
            .error,
        SubmitError::KeyConflict(id)
    );
}

/// Keys under churn: jobs come and go, keys are reused and collide in their chains; the
/// table always answers what a plain map of live keys answers.
#[test]
fn r_idempotent_matches_a_plain_map_under_churn() {
    let mut t = table();
    let mut model: HashMap<u32, (jobstate::JobId, u64)> = HashMap::new();
    let mut x: u32 = 12345;
    let mut now = 0;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        now += u64::from(x % 7);
        let key = x % 40;
        let fp = u64::from((x >> 8) % 2);
        match x % 5 {
            0..=2 => {
                let got = t.submit_idempotent(NewJob::new(key), &key.to_le_bytes(), fp, ms(now));
                match (model.get(&key), got) {
                    (Some(&(id, f)), Ok(Idempotent::Existing(g))) => {
                        assert_eq!((g, f), (id, fp))
                    }
                    (Some(&(id, f)), Err(r)) if r.error == SubmitError::KeyConflict(id) => {
                        assert_ne!(f, fp)
                    }
                    (None, Ok(Idempotent::New(id))) => {
                        model.insert(key, (id, fp));
                    }
                    (None, Err(r)) => assert!(
                        matches!(r.error, SubmitError::TableFull | SubmitError::KeysFull),
                        "{:?}",
                        r.error
                    ),
                    (m, g) => panic!("model {m:?}, table {g:?}"),
                }
            }
            3 => {
                if let Some(id) = t.start_next(ms(now)) {
                    t.succeed(id, jobstate::Severity::Normal, "", ms(now))
                        .unwrap();
                }
            }
            _ => {
                t.expire(ms(now));
            }
        }
        model.retain(|_, (id, _)| t.get(*id).is_ok());
        for k in 0..40u32 {
            let want = model.get(&k).map(|(id, _)| *id);
            assert_eq!(t.key_job(&k.to_le_bytes()), want, "key {k}");
        }
    }
}
