//! R-DURABLE when a sync fails: the record written before a failed `fdatasync` may read back
//! whole from a page cache yet be lost on disk. `AbStore::retract_last_save` makes the next save
//! rewrite that slot and leave the other — the last record known to be durable — untouched.
#![cfg(feature = "persist")]

use jobstate::flash::{AbStore, RamFlash};

type Flash = RamFlash<16384, 4, 1024>;
type Store = AbStore<Flash>;
const SLOT: u32 = 8192;

fn save(store: &mut Store, payload: &[u8]) -> u32 {
    let mut buf = vec![0u8; Store::buffer_len(payload.len())];
    buf[Store::HEADER_AREA..Store::HEADER_AREA + payload.len()].copy_from_slice(payload);
    store.save(&mut buf, payload.len()).unwrap()
}

fn slot_bytes(store: &mut Store, slot: u32) -> Vec<u8> {
    let start = (slot * SLOT) as usize;
    store.flash_mut_unchanged().bytes()[start..start + SLOT as usize].to_vec()
}

#[test]
fn r_durable_a_save_whose_sync_failed_is_rewritten_in_place_and_the_durable_record_stays() {
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    assert_eq!(save(&mut store, b"first, durable"), 1); // slot A
    assert_eq!(save(&mut store, b"second, durable"), 2); // slot B
    assert_eq!(save(&mut store, b"third, sync failed"), 3); // slot A again
                                                            // The sync after the third save failed: A may not be on disk. B is the durable record.
    store.retract_last_save();
    let durable = slot_bytes(&mut store, 1);
    // The next save goes to A again (same sequence number), never to B.
    assert_eq!(save(&mut store, b"fourth"), 3);
    assert_eq!(
        slot_bytes(&mut store, 1),
        durable,
        "the durable record was touched"
    );
    let mut buf = vec![0u8; Store::buffer_len(64)];
    assert_eq!(store.load(&mut buf).unwrap(), Some(&b"fourth"[..]));
}

#[test]
fn r_durable_without_the_retraction_the_next_save_would_overwrite_the_durable_record() {
    // The case the retraction exists for: scanning again after the failed sync trusts the
    // unsynced record (it reads back whole) and targets the other slot, the durable one.
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    save(&mut store, b"first, durable");
    save(&mut store, b"second, durable");
    save(&mut store, b"third, sync failed");
    let durable = slot_bytes(&mut store, 1);
    store.flash_mut(); // forget, scan again
    save(&mut store, b"fourth");
    assert_ne!(slot_bytes(&mut store, 1), durable);
}
