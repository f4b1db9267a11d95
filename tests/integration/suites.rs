//! Shapes found in real crates' thread-heavy suites (issue 19: parking_lot
//! and crossbeam-channel measured with `scripts/bench-threads.sh --suite`,
//! docs/testing.md):
//!
//! - `suites::yield_handoff::{native,record_replay}`: two threads hand a
//!   token back and forth (`spin_wait_threads` built with `YIELD`), each
//!   waiting in a `sched_yield` loop (crossbeam's
//!   `Backoff::snooze`, `yield_now` spin loops); every yield returns 0, and
//!   the recording verifies and replays with the same output;
//! - `suites::yield_handoff::switches_at_yield`: the recording switches at
//!   the yields (`stats.schedule.yields`, one per hand-off or more: the
//!   path crossbeam-channel's slowest recorded tests spend their switches
//!   on), every yield returns 0 under recording, and the trace verifies.

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, spec_trials, with_defines};
use crate::recorder::{self, expect_verified, invocation, Spec};
use crate::recorder_build as build;
use crate::recorder_run::{self as run, TrialDir};
use crate::threads::{count, stats};

/// The hand-offs the fixture makes (its `HANDOFFS`, each way).
const HANDOFFS: u64 = 2000;

/// `spin_wait_threads` waiting in `sched_yield` loops (`YIELD`).
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "2000 handoffs each way, sum 14757395258967641292\n",
        "yields that failed: 0\n",
    ],
    ..c(
        "yield_handoff",
        with_defines("spin_wait_threads", &["YIELD", "HANDOFFS=2000"]),
    )
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    let skip = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    let mut trials = spec_trials("suites", SPECS, recorder::record_replay);
    trials.push(
        Trial::test("suites::yield_handoff::switches_at_yield", || {
            switches_at_yield("suites::yield_handoff::switches_at_yield")
        })
        .with_ignored_flag(skip),
    );
    trials
}

fn switches_at_yield(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let trace = dir.path.join("trace");
    let inv = invocation(&SPECS[0], dir.sub("work")?)?;
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text().contains("yields that failed: 0\n"),
        "a sched_yield returned nonzero under recording\n{}",
        rec.describe()
    );
    expect_verified(&trace)?;
    let st = stats(&trace)?;
    let sch = &st["schedule"];
    // Each hand-off is waited for with at least one yield while the other
    // thread is ready: a switch at sched_yield.
    check!(
        count(sch, "yields") >= HANDOFFS && count(sch, "switches") >= count(sch, "yields"),
        "fewer switches at sched_yield than hand-offs ({HANDOFFS}): {sch}"
    );
    dir.finish();
    Ok(())
}
