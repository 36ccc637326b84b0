//! Oracle's network load balancer case, step by step on simulated time: "create a backend set,
//! then add a backend server that depends on it". Prints each job's progress the way a
//! long-polling client sees it, then runs the variant where the first job fails.
//!
//! Run: `cargo run -p jobstate --example oracle`

use jobstate::{
    Condition, Config, Directive, Duration, Instant, JobId, JobTable, NewJob, Revision, Severity,
};

#[derive(Clone, Debug, PartialEq)]
enum LbOp {
    CreateBackendSet { name: &'static str },
    AddBackend { set: &'static str, ip: &'static str },
}

type Table = JobTable<LbOp, 8>;

fn main() {
    println!("== backend set succeeds, backend server follows ==");
    run(false);
    println!();
    println!("== backend set fails, backend server ends DependencyFailed ==");
    run(true);
}

fn run(set_fails: bool) {
    let mut table: Table = JobTable::new(Config {
        retention: Duration::from_secs(300),
    });
    let mut clock = Instant::from_secs(0);

    let set = table
        .submit(
            NewJob::new(LbOp::CreateBackendSet { name: "bs1" })
                .description("create backend set bs1"),
            clock,
        )
        .expect("room for the job");
    let server = table
        .submit(
            NewJob::new(LbOp::AddBackend {
                set: "bs1",
                ip: "10.0.0.7",
            })
            .description("add backend 10.0.0.7:80 to bs1")
            .depends_on(&[set]),
            clock,
        )
        .expect("room for the job");
    println!(
        "202 Accepted: {set} ({}), {server} ({})",
        describe(&table, set),
        describe(&table, server)
    );

    // The client long-polls from the last revision it saw; the worker advances in steps.
    let mut seen = table.revision();
    let poll = |table: &Table, seen: &mut Revision| {
        let changed: Vec<_> = [set, server]
            .into_iter()
            .filter(|id| {
                matches!(
                    table.check(*id, Condition::ChangedSince(*seen)),
                    Ok(Some(_))
                )
            })
            .collect();
        for id in changed {
            println!("  poll  {id}: {}", describe(table, id));
        }
        *seen = table.revision();
    };

    while let Some(id) = table.start_next(clock) {
        let op = table.get(id).expect("just started").spec().clone();
        println!("worker starts {id}: {op:?}");
        poll(&table, &mut seen);
        for (step, pct) in [(1, 30u8), (2, 70), (3, 100)] {
            clock += Duration::from_secs(1);
            let msg = match (&op, step) {
                (LbOp::CreateBackendSet { .. }, 1) => "validating policy",
                (LbOp::CreateBackendSet { .. }, 2) => "programming data plane",
                (LbOp::AddBackend { .. }, 1) => "health check configured",
                (LbOp::AddBackend { .. }, 2) => "backend registered",
                _ => "finishing",
            };
            if set_fails && id == set && step == 2 {
                table
                    .fail(id, 409, "backend set name already in use", clock)
                    .expect("running job can fail");
                break;
            }
            table.progress(id, pct, msg, clock).expect("running job");
            if table.checkpoint(id, clock).expect("running job") != Directive::Continue {
                break;
            }
            poll(&table, &mut seen);
            if step == 3 {
                table
                    .succeed(id, Severity::Normal, "done", clock)
                    .expect("running job");
            }
        }
        poll(&table, &mut seen);
    }
    for id in [set, server] {
        println!("final {id}: {}", describe(&table, id));
    }
}

fn describe(table: &Table, id: JobId) -> String {
    match table.get(id) {
        Ok(job) => {
            let mut s = format!("{} {:>3}%", job.state(), job.progress());
            if !job.message().is_empty() {
                s.push_str(&format!(" \"{}\"", job.message()));
            }
            if let Some(outcome) = job.outcome() {
                s.push_str(&format!(" {outcome:?}"));
            }
            s
        }
        Err(e) => format!("{e}"),
    }
}
