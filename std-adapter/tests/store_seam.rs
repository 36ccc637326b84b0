//! The `JobStore` seam over the in-process engine: the scenario the etcd store runs too.

#[path = "seam/scenario.rs"]
mod scenario;

use jobstate::JobTable;
use jobstate_std::{Engine, EngineConfig};

#[test]
fn the_engine_answers_the_shared_scenario_through_the_seam() {
    let engine: Engine<JobTable<String, 8>> = Engine::new(EngineConfig::default());
    futures::executor::block_on(scenario::run(&engine));
}
