//! Any table reachable by operations encodes within the bound and decodes to an equal table,
//! at every step.
#![no_main]

use jobstate::Instant;
use jobstate_fuzz::{assert_same, run_ops, table, Table, IMAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = table();
    let mut ids = Vec::new();
    let mut now = Instant::from_secs(0);
    let mut buf = vec![0u8; IMAGE];
    for step in data.chunks(3) {
        run_ops(&mut t, &mut ids, &mut now, step);
        let len = t.encode(&mut buf).expect("the bound is enough");
        let back: Table = Table::decode(&buf[..len]).expect("own image decodes");
        assert_same(&t, &back, &ids);
    }
});
