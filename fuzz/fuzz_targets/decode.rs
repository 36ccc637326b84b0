//! Decoding arbitrary bytes never panics; an image that decodes re-encodes to the same bytes.
#![no_main]

use jobstate_fuzz::{seal, Table, IMAGE};
use libfuzzer_sys::fuzz_target;

fn check(image: &[u8]) {
    if let Ok(table) = Table::decode(image) {
        let mut buf = vec![0u8; IMAGE];
        let len = table.encode(&mut buf).expect("the bound is enough");
        let again = Table::decode(&buf[..len]).expect("own image decodes");
        let mut buf2 = vec![0u8; IMAGE];
        let len2 = again.encode(&mut buf2).expect("the bound is enough");
        assert_eq!(&buf[..len], &buf2[..len2]);
    }
    let _ = Table::restore(image, jobstate::Instant::from_secs(1));
}

fuzz_target!(|data: &[u8]| {
    // As raw bytes (header checks), and as a body under a valid header (body checks).
    check(data);
    let mut sealed = Vec::new();
    seal(data, &mut sealed);
    check(&sealed);
});
