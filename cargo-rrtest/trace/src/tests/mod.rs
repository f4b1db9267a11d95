//! Tests of the trace format: round trips of random events, corruption,
//! versions, the golden trace, and `files/`.

mod bench;
mod corrupt;
mod files;
mod fuzz;
pub(crate) use crate::test_support as gen;
mod golden;
mod integrity;
mod pipeline;
mod roundtrip;
mod version;
