//! Build a table from operations, encode it, mutate the body, re-seal it, restore it, then keep
//! operating on whatever was accepted: nothing panics, and the table keeps its round trip.
#![no_main]

use jobstate::Instant;
use jobstate_fuzz::{assert_same, decode, restore, run_ops, seal, table, IMAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(data[0]).min(data.len() - 1) / 3 * 3;
    let (ops, rest) = data[1..].split_at(split.min(data.len() - 1));
    let (mutations, later) = rest.split_at(rest.len() / 2);

    let mut t = Box::new(table());
    let mut ids = Vec::new();
    let mut now = Instant::from_secs(0);
    run_ops(&mut t, &mut ids, &mut now, ops);
    let mut buf = vec![0u8; IMAGE];
    let len = t.encode(&mut buf).expect("the bound is enough");
    let mut body = buf[jobstate::persist::HEADER_LEN..len].to_vec();
    // Mutations: (position, xor) pairs.
    for m in mutations.chunks_exact(2) {
        if !body.is_empty() {
            let at = usize::from(m[0]) % body.len();
            body[at] ^= m[1];
        }
    }
    let mut image = Vec::new();
    seal(&body, &mut image);
    let Ok((mut restored, _)) = restore(&image, now) else {
        return;
    };
    run_ops(&mut restored, &mut ids, &mut now, later);
    let len = restored.encode(&mut buf).expect("the bound is enough");
    let back = decode(&buf[..len]).expect("own image decodes");
    assert_same(&restored, &back, &ids);
});
