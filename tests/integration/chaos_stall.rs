//! Chaos recordings must not stall, nor be taken for stalled (issue 15):
//! the recorder's watchdog ends a recording in which no tracee stop came
//! for its limit while a thread waited on the recorder (exit 105). It
//! counted only the stops of its main wait, so a recorder busy taking
//! stops in a loop of its own (chaos's single steps) for longer than the
//! limit was taken for a stalled one.
//!
//! The watchdog's limit is 30 s; the trials set it to 1 s with
//! `RRTEST_RECORD_STALL_MS` (a knob for tests) so that they provoke the
//! case in seconds.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The watchdog's limit in these trials.
const STALL_MS: &str = "1000";

/// Each recording's wall-clock limit: a stalled recorder is ended by its
/// watchdog long before.
const RECORD_DEADLINE: Duration = Duration::from_secs(150);

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "chaos_stall::steps_of_a_masked_loop_are_progress",
        steps_of_a_masked_loop_are_progress,
    )]
}

/// `masked_compute` (two threads, each computing 3000 turns with every
/// signal blocked) under `--chaos --seed 2`: a slice cut inside
/// the masked loop is single-stepped to the loop's end (a cut never lands
/// where replay's counted breakpoint's signal is blocked), seconds of
/// steps with no stop in the recorder's main wait, while the other thread
/// waits. Before the fix the recording ended with exit 105 ("the recorder
/// stalled ...: no tracee stop for 1 s ...: thread ... ready to run;
/// thread ... (current) ...: running", after 2.4 s; seeds 1 and 3 alike);
/// now it ends with status 0, prints what the program prints natively,
/// and verifies.
fn steps_of_a_masked_loop_are_progress() -> Result<(), Failed> {
    let trial = "chaos_stall::steps_of_a_masked_loop_are_progress";
    let exe = build::c_fixture(CBuild::pie("masked_compute"))?;
    let dir = TrialDir::new(trial)?;
    let native = run::run(Command::new(&exe).arg("3000"))?;
    native.expect_code(0)?;
    let want = native.stdout_text();
    check!(
        want.ends_with("EXIT-SUCCESS\n") && want.contains("thread 1: "),
        "the native run printed {want:?}"
    );
    let seed = "2";
    let trace = dir.path.join(format!("seed-{seed}"));
    let rec = record_chaos(&exe, seed, &trace)?;
    check!(
        !rec.stderr_text().contains("the recorder stalled"),
        "seed {seed}: taken for a stall\n{}",
        rec.describe()
    );
    rec.expect_code(0)
        .map_err(|e| format!("seed {seed}: {}", e.message().unwrap_or("")))?;
    check!(
        rec.stdout_text() == want,
        "seed {seed}: the recording printed {:?}, natively {want:?}",
        rec.stdout_text()
    );
    crate::recorder::expect_verified(&trace)
        .map_err(|e| format!("seed {seed}: {}", e.message().unwrap_or("")))?;
    dir.finish();
    Ok(())
}

/// `cargo-rrtest record --chaos --seed SEED -o TRACE -- EXE 3000` with the
/// watchdog's limit at [`STALL_MS`].
fn record_chaos(exe: &Path, seed: &str, trace: &Path) -> Result<run::Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.env("RRTEST_RECORD_STALL_MS", STALL_MS)
        .args(["record", "--chaos", "--seed", seed, "-o"])
        .arg(trace)
        .arg("--")
        .arg(exe)
        .arg("3000");
    run::run_within(&mut cmd, RECORD_DEADLINE)
}
