//! Breadth trials for Linux native AIO (issue #20): `fixtures/c/aio.c`
//! makes raw `io_setup`, `io_submit` (PREAD + PREADV, PWRITE + PWRITEV of a
//! regular file: completed inside the call), `io_getevents` (with and
//! without a timeout), `io_pgetevents` (with a mask; a sigset size of 4,
//! EINVAL; a wait with nothing to take that a child's SIGUSR1, let
//! through by the call's mask only, interrupts: EINTR, the handler run,
//! the thread's mask back after), `io_cancel` and `io_destroy` calls, and
//! reads the ring's header and events in place as libaio does.
//!
//! - `native`: the program alone prints its checks;
//! - `record_replay`: recorded, verified, and replayed three times with the
//!   recorded output (replay maps the ring and writes what the kernel
//!   wrote; no AIO runs; it swaps in `io_pgetevents`' mask when the
//!   SIGUSR1 that interrupted it is delivered);
//! - `under_chaos`: recorded with --chaos at three seeds, verified, and
//!   each replayed with the recorded output;
//! - `refused_named`: an iocb still in flight when `io_submit` returns (an
//!   `IOCB_CMD_POLL` of an empty pipe) and an `IOCB_FLAG_RESFD` read: the
//!   program runs to its end, the trace is unreplayable with the reason,
//!   and replay refuses it.

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, refused_cases};
use crate::recorder::{self, invocation, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// What the fixture prints, natively and recorded.
const WANT: &[&str] = &[
    "io_setup: ring magic 0xa10a10a1, head 0, tail 0, header 32 bytes\n",
    "io_submit of PREAD + PREADV: 2\n",
    "ring after the submit: magic ok 1, head 0, tail 2\n",
    "read buffers: \"0123456789abcdef\" \"GHIJKLMNop\" \"qrstuv\"\n",
    "io_getevents without a timeout: 1, data 100, res 16, obj is the PREAD: 1\n",
    "io_getevents with a 1 s timeout: 1, data 200, res 16, obj is the PREADV: 1\n",
    "ring head 2, tail 2\n",
    "io_getevents with nothing left, zero timeout: 0\n",
    "io_submit of a PREAD: 1\n",
    "io_pgetevents with a mask: 1, data 500, res 8, obj is the PREAD: 1, read \"89abcdef\"\n",
    "io_pgetevents with a sigset size of 4: -1, errno 22\n",
    "io_pgetevents interrupted by the SIGUSR1 its mask lets through: -1, errno 4, handled 1, SIGUSR1 blocked again 1\n",
    "io_submit of PWRITE + PWRITEV: 2\n",
    "  reaped from the ring: data 300, res 8\n  reaped from the ring: data 400, res 8\n",
    "reaped 2 in place; io_getevents then: 0\n",
    "file now: 0123WRITTEN!cdefGHIJ<v1><v2>stuv\n",
    "io_cancel of a completed iocb: -1, errno 22\n",
    "io_destroy: 0\n",
    "io_getevents after io_destroy: -1, errno 22\n",
];

const SPEC: Spec = Spec {
    stdout_has: WANT,
    leaves_files: true,
    ..c("aio", CBuild::pie("aio"))
};

/// How many times `record_replay` replays the trace.
const REPLAYS: usize = 3;

/// The trials.
pub fn trials() -> Vec<Trial> {
    let gcc = build::gcc_missing();
    let skip = gcc.is_some() || run::recording_unavailable().is_some();
    vec![
        Trial::test("breadth::aio::native", || {
            recorder::native("breadth::aio::native", &SPEC)
        })
        .with_ignored_flag(gcc.is_some()),
        Trial::test("breadth::aio::record_replay", || {
            recorded_replays("breadth::aio::record_replay", &[], REPLAYS)
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::aio::under_chaos", || {
            for seed in ["1", "2", "3"] {
                recorded_replays(
                    &format!("breadth::aio::under_chaos-{seed}"),
                    &["--chaos", "--seed", seed],
                    1,
                )
                .map_err(|e| format!("seed {seed}: {}", e.message().unwrap_or("")))?;
            }
            Ok(())
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::aio::refused_named", || {
            let cases: [(&'static str, &'static [&'static str], &str); 2] = [
                (
                    "aio_poll_pipe",
                    &["POLL_PIPE"],
                    "io_submit: iocb 0 of 1 (opcode 5) had not completed when io_submit returned",
                ),
                (
                    "aio_resfd",
                    &["RESFD"],
                    "io_submit with IOCB_FLAG_RESFD (an eventfd notified at completion) is not recorded",
                ),
            ];
            refused_cases("breadth::aio::refused_named", "aio", &cases)
        })
        .with_ignored_flag(skip),
    ]
}

/// Records the fixture with `flags`, checks the recording printed what it
/// must and the trace verifies, then replays it `replays` times in an
/// emptied work directory: each exits 0 with the recorded stdout and
/// leaves no file.
fn recorded_replays(trial: &str, flags: &[&str], replays: usize) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let work = dir.sub("work")?;
    let inv = invocation(&SPEC, work.clone())?;
    let trace = dir.path.join("trace");
    let rec = inv.record_with(&trace, flags)?;
    rec.expect_code(0)?;
    let text = rec.stdout_text();
    for w in WANT.iter().chain(&["EXIT-SUCCESS\n"]) {
        check!(text.contains(w), "recorded: no {w:?}\n{}", rec.describe());
    }
    recorder::expect_verified(&trace)?;
    for round in 0..replays {
        run::empty_dir(&work)?;
        let before = run::snapshot(&work)?;
        let rep = inv.replay(&trace)?;
        rep.expect_code(0)
            .map_err(|e| format!("replay {round}: {}", e.message().unwrap_or("")))?;
        check!(
            rep.stdout == rec.stdout,
            "replay {round} printed something else than the recording:\n{}",
            rep.describe()
        );
        check!(
            run::snapshot(&work)? == before,
            "replay {round} changed the work directory {}",
            work.display()
        );
    }
    dir.finish();
    Ok(())
}
