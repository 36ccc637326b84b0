//! Images store milliseconds, not ticks: an image written by the QEMU firmware, whose
//! `embassy-time` ticks at 1 kHz, decodes here — with the mock driver ticking at 1 MHz — to the
//! same instants.
//!
//! The firmware (`firmware/src/scenarios.rs`, scenario 8) writes `target/fw-image.bin` and the
//! instants it gave each job, in ms, to `target/fw-image.txt`, through semihosting.
//! `scripts/ci/30-firmware.sh` runs this test after QEMU with `JOBSTATE_FIRMWARE_IMAGE` set to
//! the image's path (the instants are read from the same path with extension `.txt`). Without
//! the variable, or without the file, the test prints a notice and passes.
#![cfg(feature = "persist")]

use std::path::PathBuf;

use jobstate::{Instant, JobRef, JobTable, State};

/// The firmware's spec type, field for field (postcard encodes fields in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Op {
    steps: u8,
    step_ms: u16,
    fail: bool,
}

/// The firmware's table type.
type Jobs = JobTable<Op, 4, 32, 16, 128>;

const VAR: &str = "JOBSTATE_FIRMWARE_IMAGE";

/// `-` is none, anything else whole milliseconds.
fn ms(field: &str) -> Option<u64> {
    match field {
        "-" => None,
        v => Some(
            v.parse()
                .unwrap_or_else(|_| panic!("not a number of ms: {v}")),
        ),
    }
}

/// `key=value` fields of a line, in order.
fn fields(line: &str) -> Vec<(&str, &str)> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

fn field<'a>(line: &'a [(&'a str, &'a str)], key: &str) -> &'a str {
    line.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key}= in the expected instants"))
}

/// An instant read on this host, in ms — and in this driver's ticks, which are µs here.
fn at(i: Instant) -> u64 {
    assert_eq!(
        i.as_ticks(),
        i.as_millis() * 1_000,
        "an instant with sub-ms ticks"
    );
    i.as_millis()
}

fn check_job(job: &JobRef<'_, Op>, line: &[(&str, &str)]) {
    let name = job.description();
    let read = |i: Option<Instant>| i.map(at);
    assert_eq!(
        Some(at(job.created())),
        ms(field(line, "created")),
        "{name}: created"
    );
    assert_eq!(
        read(job.started()),
        ms(field(line, "started")),
        "{name}: started"
    );
    assert_eq!(read(job.ended()), ms(field(line, "ended")), "{name}: ended");
    assert_eq!(
        read(job.deadline()),
        ms(field(line, "deadline")),
        "{name}: deadline"
    );
    assert_eq!(
        read(job.lease_until()),
        ms(field(line, "lease")),
        "{name}: lease"
    );
}

#[test]
fn firmware_image_decodes_to_the_same_instants_at_another_tick_rate() {
    assert_eq!(
        embassy_time::TICK_HZ,
        1_000_000,
        "the host tests' mock driver ticks at 1 MHz"
    );
    let Some(path) = std::env::var_os(VAR).map(PathBuf::from) else {
        println!("firmware_image: skipped: {VAR} is not set (scripts/ci/30-firmware.sh sets it)");
        return;
    };
    let text_path = path.with_extension("txt");
    let (Ok(image), Ok(text)) = (std::fs::read(&path), std::fs::read_to_string(&text_path)) else {
        println!(
            "firmware_image: skipped: {} or {} is missing (run the QEMU firmware first)",
            path.display(),
            text_path.display()
        );
        return;
    };

    // Exactly as written: same epoch, same states.
    let mut table = Jobs::default();
    table
        .decode_in_place(&image)
        .expect("the firmware's image decodes");
    let mut jobs = 0;
    for line in text.lines() {
        let f = fields(line);
        match line.split_whitespace().next() {
            Some("table") => {
                assert_eq!(Some(at(table.now())), ms(field(&f, "now")), "table now");
                assert_eq!(
                    Some(table.config().retention.as_millis()),
                    ms(field(&f, "retention")),
                    "retention"
                );
            }
            Some("job") => {
                let name = line.split_whitespace().nth(1).expect("a job name");
                let job = table
                    .iter()
                    .find(|j| j.description() == name)
                    .unwrap_or_else(|| panic!("job {name} is not in the image"));
                check_job(&job, &f);
                jobs += 1;
            }
            _ => {}
        }
    }
    assert!(jobs > 0, "the expected instants name no job");
    assert_eq!(jobs, table.len(), "every job of the image is checked");

    // Restored after a "restart" at the image's own `now`: every job keeps its instants; the
    // running one (and its dependent) end at `now`, interrupted.
    let now = table.now();
    let mut restored = Jobs::default();
    restored
        .restore_in_place(&image, now)
        .expect("the firmware's image restores");
    for job in table.iter() {
        let again = restored.get(job.id()).expect("restored under the same id");
        assert_eq!(again.created(), job.created());
        assert_eq!(again.started(), job.started());
        let ended = if job.is_terminal() {
            job.ended()
        } else {
            Some(now)
        };
        assert_eq!(
            again.ended(),
            ended,
            "{}: ended after the restore",
            job.description()
        );
        assert_eq!(
            again.state() == State::Failed,
            job.state() != State::Succeeded
        );
    }
    println!(
        "firmware_image: {} jobs, instants identical at 1 kHz and 1 MHz",
        jobs
    );
}
