//! Any table reachable by operations encodes within the bound and decodes to an equal table,
//! at every step.
#![no_main]

use jobstate::Instant;
use jobstate_fuzz::{assert_same, decode, run_ops, table, IMAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = Box::new(table());
    let mut ids = Vec::new();
    let mut now = Instant::from_secs(0);
    let mut buf = vec![0u8; IMAGE];
    for step in data.chunks(3) {
        run_ops(&mut t, &mut ids, &mut now, step);
        let len = t.encode(&mut buf).expect("the bound is enough");
        let back = decode(&buf[..len]).expect("own image decodes");
        assert_same(&t, &back, &ids);
    }
});
