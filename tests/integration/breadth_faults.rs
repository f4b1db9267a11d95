//! Bad pointers given to buffered syscalls (issue #20): the syscall
//! buffer's hook touches the program's memory only through the fixed
//! page's fault-tolerant copy, so a pointer the kernel answers with
//! `EFAULT` is `EFAULT` under the recorder too, never a crash in the hook.
//! docs/breadth.md lists it; docs/syscall-buffer.md says how.
//!
//! - `bad_pointers`: open, read, readv, poll, clock_gettime, fstat,
//!   getrandom, recvmsg and writev to stdout given an unmapped page, then
//!   a PROT_NONE page (and buffers that end in one); a poll whose array has
//!   a read-only page in its middle; with a SIGSEGV and SIGBUS handler
//!   installed, which no fault may reach. Recorded, verified and replayed
//!   identically (`::record_replay`);
//! - `bad_pointers::as_native`: the recording prints what the program
//!   prints natively, byte for byte (the results, the errnos, and the data
//!   a failed read left in the pipe); the hook met the bad pointers (the
//!   recorder fixed up faults of its copy, and the calls went through the
//!   buffer: the read-only-middle poll is a buffered record whose copy
//!   back faulted); the trace replays with the same output;
//! - `bad_pointers::debugger`: the trace under the debugger engine, with
//!   breakpoints in (the faults of the hook's copy are fixed up in its
//!   runs too): single steps from `pass` through the first `open` of a
//!   bad name reach `report` with -1, and continuing stops at every
//!   `report` call to the end, exit 0.

use std::process::Command;

use libtest_mimic::{Failed, Trial};

use cargo_rrtest::replayer::{Resume, Stop};
use rrtest_trace::ExitStatus;

use crate::breadth::{c, spec_trials};
use crate::common;
use crate::debug_engine::{self as engine, no_pie};
use crate::recorder::{self, invocation, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// What both passes print, natively and recorded.
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "unmapped: open(BAD)=-1 EFAULT\n",
        "unmapped: read(pipe, BAD, 8)=-1 EFAULT\n",
        "unmapped: readv(pipe, BAD iovecs, 1)=-1 EFAULT\n",
        "unmapped: the pipe still held [abcdefgh]\n",
        "unmapped: clock_gettime(MONOTONIC, ends in BAD)=-1 EFAULT\n",
        "PROT_NONE: open(name before BAD)=-1 ENOENT\n",
        "PROT_NONE: poll(BAD, 1, 0)=-1 EFAULT\n",
        "PROT_NONE: fstat(0, BAD)=-1 EFAULT\n",
        "PROT_NONE: recvmsg(BAD msghdr)=-1 EFAULT\n",
        "PROT_NONE: writev(1, BAD iovecs, 1)=-1 EFAULT\n",
        "read-only middle: poll(514 entries, 0)=-1 EFAULT\n",
        "read-only middle: first entry's revents 1\n",
        "no fault reached the program's SIGSEGV or SIGBUS handler\n",
    ],
    ..c("bad_pointers", CBuild::pie("bad_pointers"))
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    let gcc = build::gcc_missing();
    let skip = gcc.is_some() || run::recording_unavailable().is_some();
    let mut trials = spec_trials("breadth::faults", SPECS, recorder::record_replay);
    trials.push(
        Trial::test("breadth::faults::bad_pointers::as_native", as_native).with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::faults::bad_pointers::debugger", under_debugger)
            .with_ignored_flag(skip),
    );
    trials
}

/// The recorder's debug line for each fault of the hook's copy it fixed up.
const FIXED_UP: &str = "a fault in the hook's copy: fixed up";

fn as_native() -> Result<(), Failed> {
    let trial = "breadth::faults::bad_pointers::as_native";
    let spec = &SPECS[0];
    let dir = TrialDir::new(trial)?;
    let trace = dir.path.join("trace");
    let inv = invocation(spec, dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;

    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&inv.exe)
        .args(&inv.args)
        .env("RRTEST_LOG", "cargo_rrtest::recorder=debug");
    inv.env(&mut cmd);
    let rec = run::run(&mut cmd)?;
    rec.expect_code(0)?;
    run::expect_same_bytes("stdout (native, recorded)", &native.stdout, &rec.stdout)?;
    let fixed_up = rec.stderr_text().matches(FIXED_UP).count();
    check!(
        fixed_up > 0,
        "the recorder fixed up no fault of the hook's copy: the bad pointers did not reach \
         the hook\n{}",
        rec.describe()
    );

    let json = run::info_value(&trace)?;
    let buffered = json["stats"]["buffered_syscalls"].as_u64().unwrap_or(0);
    check!(buffered > 0, "no buffered syscall: {}", json["stats"]);
    // The read-only middle's poll: buffered with the kernel's result (1: the
    // pipe is readable), which the hook turned into EFAULT when its copy
    // back met the read-only page.
    let mut events = Command::new(common::cargo_rrtest());
    events.arg("info").arg("--events").arg(&trace);
    let events = run::run(&mut events)?;
    events.expect_code(0)?;
    check!(
        events.stdout_text().contains("poll(...) = 1 (buffered)"),
        "the read-only middle's poll is not a buffered record with the kernel's result\n{}",
        events.describe()
    );

    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// `report` calls in the fixture: 16 in each of its two passes, one for
/// the read-only middle.
const REPORTS: usize = 2 * 16 + 1;

fn under_debugger() -> Result<(), Failed> {
    let rec = engine::record("breadth-faults-debugger", no_pie("bad_pointers"))?;
    let pass = engine::symbol(&rec.exe, "pass")?;
    let report = engine::symbol(&rec.exe, "report")?;
    let mut dbg = engine::start(&rec.trace)?;
    dbg.set_breakpoint(pass)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let tid = match engine::forward(&mut dbg, Resume::Continue)? {
        Stop::Breakpoint { tid, .. } => tid,
        other => return Err(format!("stopped with {other:?}, not at pass").into()),
    };
    dbg.remove_breakpoint(pass)
        .map_err(|e| format!("remove_breakpoint: {e}"))?;
    // Step by step through open(BAD) (libc, the patched site, the hook's
    // copy meeting the bad name) to the first report.
    let mut steps = 0;
    loop {
        let r = engine::regs(&dbg, tid)?;
        if r.rip == report {
            // report(pass, what, r): r is the result, -1.
            check!(
                r.rdx as i64 == -1,
                "open(BAD) returned {} under single steps",
                r.rdx as i64
            );
            break;
        }
        check!(
            steps < 50_000,
            "no report after {steps} steps (at {:#x})",
            r.rip
        );
        let stop = engine::forward(&mut dbg, Resume::Step(tid))?;
        check!(stop == Stop::Stepped { tid }, "step {steps}: {stop:?}");
        steps += 1;
    }
    dbg.set_breakpoint(report)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let mut reports = 1;
    loop {
        match engine::forward(&mut dbg, Resume::Continue)? {
            Stop::Breakpoint { .. } => reports += 1,
            Stop::Exited(status) => {
                check!(
                    status == ExitStatus::Exited(0),
                    "the program ended with {status:?}"
                );
                break;
            }
            other => return Err(format!("stopped with {other:?}").into()),
        }
        check!(reports <= REPORTS, "more than {REPORTS} reports");
    }
    check!(
        reports == REPORTS,
        "{reports} stops at report, the program makes {REPORTS} calls"
    );
    Ok(())
}
