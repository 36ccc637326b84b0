//! Decoding arbitrary bytes never panics; an image that decodes re-encodes to the same bytes.
#![no_main]

use jobstate_fuzz::{decode, restore, seal, IMAGE};
use libfuzzer_sys::fuzz_target;

fn check(image: &[u8]) {
    if let Ok(table) = decode(image) {
        let mut buf = vec![0u8; IMAGE];
        let len = table.encode(&mut buf).expect("the bound is enough");
        let again = decode(&buf[..len]).expect("own image decodes");
        let mut buf2 = vec![0u8; IMAGE];
        let len2 = again.encode(&mut buf2).expect("the bound is enough");
        assert_eq!(&buf[..len], &buf2[..len2]);
    }
    let restored = restore(image, jobstate::Instant::from_secs(1));
    // In place over a table with contents: the same answer as into a new table; on a body
    // error, empty.
    let mut t = Box::new(jobstate_fuzz::table());
    let mut ids = Vec::new();
    let mut now = jobstate::Instant::from_secs(0);
    jobstate_fuzz::run_ops(&mut t, &mut ids, &mut now, &[0, 1, 2, 2, 0, 0, 0, 3, 4]);
    match (
        t.restore_in_place(image, jobstate::Instant::from_secs(1)),
        restored,
    ) {
        (Ok(a), Ok((r, b))) => {
            assert_eq!(a, b);
            jobstate_fuzz::assert_same(&t, &r, &ids);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert!(t.len() == 0 || ids.iter().all(|id| t.get(*id).is_ok()));
        }
        (a, b) => panic!(
            "over contents {a:?} but into a new table {:?}",
            b.map(|(_, r)| r)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    // As raw bytes (header checks), and as a body under a valid header (body checks).
    check(data);
    let mut sealed = Vec::new();
    seal(data, &mut sealed);
    check(&sealed);
});
