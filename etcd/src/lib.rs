//! # jobstate-etcd: several service replicas share one job table through etcd
//!
//! A service that runs as several replicas behind a load balancer keeps its jobs in etcd
//! with [`EtcdStore`]: a job accepted by replica A is read, long-polled, paused or canceled
//! through replica B and run by a worker of replica C. etcd does the replication; this crate
//! maps jobstate's model onto etcd's, which matches it almost one to one:
//!
//! | jobstate | etcd |
//! | --- | --- |
//! | a job | one key, `<prefix>jobs/<id>`; its value is the job's [`JobRecord`] image |
//! | a transition (R-TRANS, R-CONTROL) | the core's rule applied to the record, committed in a transaction that compares the key's mod revision (read again and re-applied on a conflict) |
//! | revision (R-VERSION) | etcd's revision: a job's revision is its key's mod revision, never reused, also across replica restarts |
//! | long-poll wake-up (R-LONGPOLL) | one watch per replica from the revision it read at; a change wakes only that job's waiters, on every replica |
//! | a worker holding a job | `<prefix>claims/<id>`, put under the replica's etcd lease in the transaction that starts the job |
//! | a replica that dies mid-job | its lease expires, etcd deletes its claims; the delete events make the other replicas apply the core's `worker_lost`: `Failed(TimedOut)`, or queued again when restartable (R-CLUSTER) |
//! | capacity (R-FULL) | a cluster-wide count, raised in the submit's transaction and compared against the value read |
//! | deadlines, heartbeat leases, retention (R-DEADLINE, R-RETAIN) | the core's `expire` on each record whose timer is due, by whichever replica gets there first |
//! | ids (R-ID) | (epoch, generation): each replica start takes a new epoch by a durable increment |
//! | tombstones (R-RETAIN) | `<prefix>tombs/<id>`, put in the transaction that removes the job after its retention, under a lease that ends it |
//! | the journal, `Compacted` (R-JOURNAL) | etcd's history: [`EtcdStore::changes_since`]; a compacted revision answers `StoreError::Compacted` |
//!
//! Every rule stays in the core: a record is a one-job table ([`JobRecord`]), and the
//! store only reads it, lets the core change it at `now`, and writes it back under a
//! compare-and-swap. Instants are wall-clock microseconds since the Unix epoch, the same on
//! every replica ([`jobstate_std::Clock::unix`]).
//!
//! The clients' side is the std adapter's [`JobStore`] seam, so the HTTP binding serves every
//! dialect over an `EtcdStore` unchanged (`JobsApi::with_store`). Workers claim jobs with
//! [`EtcdStore::claim_next`] or run a pool with [`EtcdStore::work`].
//!
//! Not (yet) over etcd: dependencies between jobs (a record holds one job; a submit with
//! dependencies is refused by the core's record), job log lines, idempotency keys.
//! docs/cluster.md has the guarantees, the failure modes and how to run a cluster.
//!
//! ```no_run
//! use jobstate::NewJob;
//! use jobstate_etcd::{EtcdConfig, EtcdStore};
//!
//! # async fn run() -> Result<(), jobstate_std::StoreError> {
//! let store: EtcdStore<String> =
//!     EtcdStore::connect(EtcdConfig::new(["http://127.0.0.1:2379"])).await?;
//! let id = store.submit(NewJob::new("reboot".to_string())).await?;
//! let job = store.claim_next().await?;
//! job.progress(50, "half way").await?;
//! job.succeed(jobstate::Severity::Normal, "rebooted").await?;
//! assert!(store.get(id).await?.is_terminal());
//! # Ok(())
//! # }
//! ```
//!
//! [`JobRecord`]: jobstate::persist::JobRecord
//! [`JobStore`]: jobstate_std::JobStore

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod keys;
mod seam;
mod store;
mod sweep;
mod value;
mod watch;
mod worker;

pub use store::{EtcdConfig, EtcdStore};
pub use watch::Changes;
pub use worker::Claimed;
