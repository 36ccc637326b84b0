//! R-PRIORITY, R-RETRY on the wire: a job record shows its priority and attempt, as
//! documented extensions of the ONTAP dialect.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

use jobstate::{JobTable, NewJob, Priority};
use jobstate_std::http::JobsApi;
use jobstate_std::{Engine, EngineConfig};

type Jobs = JobTable<String, 8>;

#[test]
fn r_priority_and_attempt_are_in_the_job_record() {
    let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
    let api = JobsApi::new(engine.clone());
    let id = engine
        .submit(NewJob::new("x".into()).priority(Priority::High))
        .unwrap();
    let snapshot = engine.get(id).unwrap();
    let json = serde_json::to_value(api.record(&snapshot)).unwrap();
    assert_eq!(json["priority"], "high");
    assert_eq!(json["attempt"], 1);
}
