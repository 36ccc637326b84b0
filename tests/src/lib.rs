//! Reference model of the jobstate table and helpers for the scenario tests.
//!
//! * [`Model`] is the table's behaviour written the plain way with std collections
//!   (`BTreeMap`, `VecDeque`, `Vec`), independent of the real table's internals. The property
//!   test `tests/model.rs` runs random operation sequences against both and requires every
//!   answer and every observable state to match.
//! * [`Snapshot`] is everything a caller can observe of a table, as one comparable value:
//!   the tests take one before and after an operation that must fail and require them equal.
#![deny(missing_docs)]
#![allow(clippy::expect_used, clippy::indexing_slicing)]

pub mod model;
pub mod snapshot;

pub use model::{make_id, Limits, Model};
pub use snapshot::{read_journal, EventView, JobView, JournalRead, KindView, Snapshot};
