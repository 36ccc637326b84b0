//! R-PERSIST: power-safe A/B images on NOR flash. A save cut at every byte operation, and every
//! single-bit flip in a stored record, leave exactly the previous image or the new one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod persist_support;

use jobstate::flash::{AbStore, RamFlash, RECORD_HEADER};
use jobstate::Instant;
use persist_support::*;

/// 2 slots of 2 KiB, 4-byte write words, 512-byte erase blocks.
type Flash = RamFlash<4096, 4, 512>;
type Store = AbStore<Flash>;
const SLOT: u32 = 2048;
const BUF: usize = Store::buffer_len(IMAGE);

/// A sequence of tables, each some operations after the one before.
fn tables() -> Vec<Vec<u8>> {
    use Op::*;
    let submit = |spec, deps: Vec<usize>| Submit {
        spec,
        deps,
        restartable: spec % 2 == 0,
        pausable: true,
        cancelable: true,
        run_timeout: None,
        lease: Some(5),
        long_text: false,
        priority: (spec % 4) as u8,
    };
    let steps: Vec<Vec<Op>> = vec![
        vec![submit(1, vec![]), submit(2, vec![0])],
        vec![StartNext, Progress(0, 30), submit(3, vec![])],
        vec![Succeed(0), StartNext, Pause(1), Checkpoint(1)],
        vec![Advance(20), submit(4, vec![2]), StartNext, Cancel(3)],
    ];
    let mut t = table();
    let mut run = Run::new();
    let mut images = Vec::new();
    for step in steps {
        run.apply_all(&mut t, &step);
        images.push(encode(&t));
    }
    images
}

/// What a reboot finds: a fresh store over the flash, loading the newest valid image.
fn reboot(flash: &Flash) -> Option<Vec<u8>> {
    let mut store = Store::new(flash.clone(), 0, SLOT).unwrap();
    let mut buf = vec![0u8; BUF];
    store.load(&mut buf).unwrap().map(<[u8]>::to_vec)
}

fn save(
    store: &mut Store,
    image: &[u8],
) -> Result<u32, jobstate::flash::StoreError<jobstate::flash::RamFlashError>> {
    let mut buf = vec![0u8; BUF];
    let area = Store::HEADER_AREA;
    buf[area..area + image.len()].copy_from_slice(image);
    store.save(&mut buf, image.len())
}

/// R-PERSIST: for every save of a sequence, cut the power after every possible number of byte
/// operations; a reboot finds exactly the previous image or the new one (the new one once the
/// save completed), it restores to a table, and the next save after the reboot works.
#[test]
fn r_persist_power_cut_at_every_byte_keeps_previous_or_new() {
    let images = tables();
    let mut flash = Flash::new();
    let mut previous: Option<Vec<u8>> = None;
    let mut trials = 0usize;
    for image in &images {
        // How many byte operations a complete save takes.
        let full = {
            let mut probe = Store::new(flash.clone(), 0, SLOT).unwrap();
            let before = probe.flash_mut().ops();
            save(&mut probe, image).unwrap();
            probe.flash_mut().ops() - before
        };
        for cut in 0..=full {
            let mut store = Store::new(flash.clone(), 0, SLOT).unwrap();
            store.flash_mut().cut_after(cut);
            let result = save(&mut store, image);
            assert_eq!(result.is_ok(), cut == full, "cut {cut} of {full}");
            let mut after = store.into_inner();
            after.power_on();
            let found = reboot(&after);
            if cut == full {
                assert_eq!(found.as_ref(), Some(image), "complete save");
            } else {
                assert!(
                    found == previous || found.as_ref() == Some(image),
                    "cut {cut}: neither the previous image nor the new one"
                );
                // A cut before the header is written never shows the new image.
                if cut < full - Store::HEADER_AREA {
                    assert_eq!(found, previous, "cut {cut} before the header");
                }
            }
            if let Some(found) = &found {
                restore(found, Instant::from_secs(100)).unwrap();
            }
            // After the reboot, saving again works and is found.
            if cut % 97 == 0 {
                let mut again = Store::new(after.clone(), 0, SLOT).unwrap();
                save(&mut again, image).unwrap();
                assert_eq!(reboot(&again.into_inner()).as_ref(), Some(image));
            }
            trials += 1;
        }
        // The save completes this time.
        let mut store = Store::new(flash, 0, SLOT).unwrap();
        save(&mut store, image).unwrap();
        flash = store.into_inner();
        previous = Some(image.clone());
    }
    assert!(trials > images.len() * SLOT as usize);
}

/// R-PERSIST: flip every bit of the newest record (and of the older one): the load answers the
/// other image, never nothing, never a corrupted table.
#[test]
fn r_persist_bit_flip_in_stored_image_falls_back() {
    let images = tables();
    let (old, new) = (&images[2], &images[3]);
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    save(&mut store, old).unwrap(); // slot A
    save(&mut store, new).unwrap(); // slot B
    let flash = store.into_inner();
    assert_eq!(reboot(&flash).as_ref(), Some(new));

    for (slot, len, other) in [(1usize, new.len(), old), (0, old.len(), new)] {
        let start = slot * SLOT as usize;
        let record = Store::HEADER_AREA + len;
        for bit in 0..record * 8 {
            let at = start + bit / 8;
            // Padding after the 16 header bytes is not part of the record.
            if (RECORD_HEADER..Store::HEADER_AREA).contains(&(bit / 8)) {
                continue;
            }
            let mut bad = flash.clone();
            bad.bytes_mut()[at] ^= 1 << (bit % 8);
            let found = reboot(&bad);
            assert_eq!(found.as_ref(), Some(other), "slot {slot} bit {bit}");
            restore(found.as_ref().unwrap(), Instant::from_secs(100)).unwrap();
        }
    }
}

/// The store refuses layouts that do not fit the flash's erase blocks or size.
#[test]
fn r_persist_store_layout_checked() {
    assert!(Store::new(Flash::new(), 0, 1000).is_err()); // not whole erase blocks
    assert!(Store::new(Flash::new(), 512, 2048).is_err()); // past the end
    assert!(Store::new(Flash::new(), 0, 2048).is_ok());
    // Blank flash: nothing to load, not an error.
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    let mut buf = vec![0u8; BUF];
    assert_eq!(store.load(&mut buf).unwrap(), None);
    // An image larger than a slot is refused before anything is erased.
    let mut small = AbStore::new(RamFlash::<1024, 4, 512>::new(), 0, 512).unwrap();
    let mut buf = vec![0u8; 1024];
    assert!(small.save(&mut buf, 600).is_err());
}

/// The whole firmware path: save tables through the store, restore the newest after a reboot.
#[test]
fn r_persist_store_save_and_restore_table() {
    let mut t = table();
    let mut run = Run::new();
    run.apply_all(
        &mut t,
        &[
            Op::Submit {
                spec: 9,
                deps: vec![],
                restartable: false,
                pausable: true,
                cancelable: true,
                run_timeout: None,
                lease: None,
                long_text: false,
                priority: 1,
            },
            Op::StartNext,
        ],
    );
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    let mut buf = vec![0u8; BUF];
    assert_eq!(store.save_table(&t, &mut buf).unwrap(), 1);
    assert_eq!(store.save_table(&t, &mut buf).unwrap(), 2);
    let mut store = Store::new(store.into_inner(), 0, SLOT).unwrap();
    let mut r = Box::new(table());
    let report = store
        .restore_into(&mut *r, &mut buf, Instant::from_secs(1))
        .unwrap()
        .unwrap();
    assert_eq!(report.interrupted, 1);
    assert_eq!(r.epoch(), 1);
    // The restored table was saved at once (record 3): restoring the flash again after
    // another crash, before any save of its own, gives a new epoch again — never epoch 1
    // twice (R-ID).
    let flash = store.into_inner();
    assert_eq!(reboot(&flash).as_deref(), Some(&encode(&r)[..]));
    let mut store = Store::new(flash, 0, SLOT).unwrap();
    assert_eq!(store.scan().unwrap().map(|n| n.seq), Some(3));
    let mut again = Box::new(table());
    store
        .restore_into(&mut *again, &mut buf, Instant::from_secs(2))
        .unwrap()
        .unwrap();
    assert_eq!(again.epoch(), 2);
}

/// The in-place path of the store: a table in a `static` is restored without a table-sized
/// temporary; a blank store leaves it as it was.
#[test]
fn r_persist_store_restore_into_existing_table() {
    let images = tables();
    let mut store = Store::new(Flash::new(), 0, SLOT).unwrap();
    let mut buf = vec![0u8; BUF];
    let mut target = Box::new(table());
    assert_eq!(
        store
            .restore_into(&mut *target, &mut buf, Instant::from_secs(1))
            .unwrap(),
        None
    );
    assert!(target.is_empty());
    assert_eq!(
        store.scan().unwrap(),
        None,
        "nothing restored, nothing saved"
    );
    save(&mut store, &images[3]).unwrap();
    let report = store
        .restore_into(&mut *target, &mut buf, Instant::from_secs(1))
        .unwrap()
        .unwrap();
    let (expected, expected_report) = restore(&images[3], Instant::from_secs(1)).unwrap();
    assert_eq!(report, expected_report);
    assert_eq!(encode(&target), encode(&expected));
}

/// R-PERSIST, R-ID: `restore_into` saves the restored table before it serves. Cut the power at
/// every byte operation of that save: the next boot finds the image restored before (and
/// restores it to the same epoch, no id of it was ever handed out) or the restored table's
/// own image (one epoch further) — never nothing, never a mix.
#[test]
fn r_persist_power_cut_during_the_save_after_a_restore() {
    let images = tables();
    let mut base = Store::new(Flash::new(), 0, SLOT).unwrap();
    save(&mut base, &images[2]).unwrap();
    save(&mut base, &images[3]).unwrap();
    let flash = base.into_inner();
    let mut buf = vec![0u8; BUF];
    // The whole restore, to learn how many byte operations its save takes.
    let (full, restored_image) = {
        let mut store = Store::new(flash.clone(), 0, SLOT).unwrap();
        let before = store.flash_mut().ops();
        let mut t = Box::new(table());
        store
            .restore_into(&mut *t, &mut buf, Instant::from_secs(1))
            .unwrap()
            .unwrap();
        (store.flash_mut().ops() - before, encode(&t))
    };
    for cut in 0..full {
        let mut store = Store::new(flash.clone(), 0, SLOT).unwrap();
        store.flash_mut().cut_after(cut);
        let mut t = Box::new(table());
        assert!(
            store
                .restore_into(&mut *t, &mut buf, Instant::from_secs(1))
                .is_err(),
            "cut {cut}: the save after the restore failed, and says so"
        );
        let mut after = store.into_inner();
        after.power_on();
        let found = reboot(&after).expect("an image survives");
        assert!(
            found == images[3] || found == restored_image,
            "cut {cut}: neither the image restored nor the restored table"
        );
        let (r, _) = restore(&found, Instant::from_secs(2)).unwrap();
        let stored_epoch = decode(&images[3]).unwrap().epoch();
        let expected = if found == images[3] { 1 } else { 2 };
        assert_eq!(r.epoch(), stored_epoch + expected, "cut {cut}");
    }
}
