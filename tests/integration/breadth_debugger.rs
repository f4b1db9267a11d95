//! Breadth trials for debuggers and other tools that run a program, run as
//! the program under test (issue #20): software breakpoints written into a
//! tracee, a real gdb session, Valgrind.
//!
//! - `ptrace_breakpoint`: a tracer writes an int3 over a function of its
//!   child with PTRACE_POKETEXT, continues it, and at each of three SIGTRAP
//!   stops puts the byte back, steps over it and writes it again, as gdb's
//!   `break`/`continue` do; it also sets a variable of the child's. Replay
//!   must stop the child at the trap where the recording did, and twice
//!   over: the second replay reaches that point with the hit count the
//!   verification stored (a counted breakpoint), where the program's own
//!   trap comes first;
//! - `ptrace_breakpoint_proc_mem`: the same through
//!   `/proc/PID/task/TID/mem` (gdb's way), a write into another process of
//!   the recording, recorded as a tracee write;
//! - `ptrace_breakpoint_vm_writev`: the variable set with
//!   `process_vm_writev` into the child;
//! - `ptrace_fault_refault`: `ptrace_fault` with a fourth child that its
//!   tracer resumes where it faulted, without a signal: it faults again at
//!   the same instruction (a second stop with the same registers, which
//!   replay must find as a second point), then is moved past it;
//! - `debugger::gdb_batch`: gdb itself (`gdb -batch`: a breakpoint, `run`,
//!   a backtrace, prints, `continue` to the end) on the `gdb_target`
//!   fixture, recorded, verified and replayed twice with the same output
//!   and exit status. Needs gdb (skipped, said, without it);
//! - `debugger::gdb_steps`: gdb stepping the same fixture (`finish`,
//!   `next`, `stepi`, the registers after them): the same stops natively
//!   and recorded, verified and replayed twice;
//! - `debugger::gdb_shell_vfork`: gdb running `/bin/sh -c 'echo hi;
//!   /bin/true'` (dash vforks for `/bin/true`; gdb single-steps the vfork
//!   child once before it detaches from it, while the child still blocks
//!   every signal): replayed twice after its verification, the second
//!   counting its way to that step's point (a counter whose signal the
//!   child blocked never stopped it: every second replay diverged);
//! - `debugger::valgrind`: `valgrind -q` running the `hello` fixture,
//!   recorded, verified and replayed twice (the program's code runs on
//!   Valgrind's synthetic CPU, where the syscall buffer's fixed page is
//!   out of reach: the preload library sees Valgrind and stays off). Needs
//!   Valgrind (skipped without it; `.ci/run` installs it).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::{self, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, TrialDir};

const HITS: [&str; 4] = [
    "hit 1: rip right after the int3, argument 1\n",
    "hit 2: rip right after the int3, argument 2\n",
    "hit 3: rip right after the int3, argument 3\n",
    "hits: 3, child exit 0\n",
];

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &HITS,
        ..c("ptrace_breakpoint", CBuild::pie("ptrace_breakpoint"))
    },
    Spec {
        stdout_has: &HITS,
        ..c(
            "ptrace_breakpoint_proc_mem",
            with_defines("ptrace_breakpoint", &["PROC_MEM"]),
        )
    },
    Spec {
        stdout_has: &HITS,
        ..c(
            "ptrace_breakpoint_vm_writev",
            with_defines("ptrace_breakpoint", &["VM_WRITEV"]),
        )
    },
    Spec {
        stdout_has: &[
            "child 0: faulted, moved past the fault, exited with 0\n",
            "child 3: resumed in place, faulted again at the same instruction\n",
            "child 3: faulted, moved past the fault, exited with 0\n",
        ],
        ..c(
            "ptrace_fault_refault",
            with_defines("ptrace_fault", &["REFAULT"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = variant_trials(SPECS, REPEATS, "breadth::ptrace_breakpoint::under_chaos");
    let skip =
        build::gcc_missing().is_some() || run::recording_unavailable().is_some() || gdb().is_none();
    trials.push(
        Trial::test("breadth::debugger::gdb_batch", || {
            gdb_batch("breadth::debugger::gdb_batch")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::debugger::gdb_steps", || {
            gdb_steps("breadth::debugger::gdb_steps")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::debugger::gdb_shell_vfork", || {
            gdb_shell_vfork("breadth::debugger::gdb_shell_vfork")
        })
        .with_ignored_flag(skip),
    );
    let skip_valgrind = build::gcc_missing().is_some()
        || run::recording_unavailable().is_some()
        || installed("valgrind").is_none();
    if installed("valgrind").is_none() {
        eprintln!("breadth::debugger::valgrind is ignored: valgrind is not installed");
    }
    trials.push(
        Trial::test("breadth::debugger::valgrind", || {
            valgrind("breadth::debugger::valgrind")
        })
        .with_ignored_flag(skip_valgrind),
    );
    trials
}

/// gdb's path, if it is installed.
pub(crate) fn gdb() -> Option<PathBuf> {
    installed("gdb")
}

/// `tool`, if `tool --version` runs.
fn installed(tool: &str) -> Option<PathBuf> {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from(tool))
}

/// `valgrind -q` running `hello`, natively and recorded: the same output
/// and status, the trace verified, and two replays to the same bytes.
fn valgrind(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let hello = build::c_fixture(CBuild::pie("hello"))?;
    let inv = Invocation {
        exe: installed("valgrind").ok_or("valgrind is not installed")?,
        args: vec![
            "-q".into(),
            "--error-exitcode=9".into(),
            hello.into_os_string(),
        ],
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let (native, rec) = native_and_recorded(&inv, &trace)?;
    run::expect_same_bytes("stdout", &native.stdout, &rec.stdout)?;
    if rec.stdout_text().lines().last() != Some("EXIT-SUCCESS") {
        return Err(format!(
            "hello did not run to its end under Valgrind\n{}",
            rec.describe()
        )
        .into());
    }
    verified_and_replayed_twice(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// gdb debugging `gdb_target` (breakpoint in `area`, run, backtrace,
/// prints, continue to its exit with status 3) natively and recorded:
/// the recorded session says what the native one says, and replays twice
/// to the same bytes and exit status.
fn gdb_batch(trial: &str) -> Result<(), Failed> {
    gdb_session(
        trial,
        &[
            "break area",
            "run",
            "bt",
            "p *p",
            "p scale",
            "delete",
            "continue",
        ],
        &[
            "Breakpoint 1, area (p=",
            "scale=scale@entry=1) at ",
            "#1  0x",
            " in main () at ",
            "$1 = {x = 6, y = 7}\n$2 = 1\n",
            "area 42\n",
            "worker 84, watched 84\n",
            "EXIT-SUCCESS\n",
            "exited with code 03]",
        ],
    )
}

/// gdb stepping `gdb_target`: `finish` out of `area` (a breakpoint at the
/// return address, and a displaced step over `area`'s own breakpoint),
/// `next` over a call, three `stepi`s, the registers read after them:
/// natively and recorded, the same lines (each `stepi` stops where it
/// stops natively, at the same address), and the trace verifies and
/// replays twice to the same bytes.
fn gdb_steps(trial: &str) -> Result<(), Failed> {
    let cmds = [
        "break area",
        "run",
        "finish",
        "next",
        "next",
        "stepi",
        "stepi",
        "stepi",
        "info registers rip",
        "delete",
        "continue",
    ];
    let want = [
        "Breakpoint 1, area (p=",
        "Value returned is $1 = 42\n",
        "area 42\n",
        "worker 84, watched 84\n",
        "EXIT-SUCCESS\n",
        "exited with code 03]",
    ];
    let (native, rec) = gdb_session_runs(trial, &cmds, &want)?;
    // The stops the steps made: gdb prints an address for each `stepi`
    // that stays on a line, and `rip` itself.
    let stops = |run: &run::Run| -> Vec<String> {
        run.stdout_text()
            .lines()
            .filter(|l| l.starts_with("0x0000") || l.starts_with("rip "))
            .map(str::to_owned)
            .collect()
    };
    let (n, r) = (stops(&native), stops(&rec));
    if n.len() < 4 || n != r {
        return Err(format!(
            "gdb's steps stopped at {r:?} recorded, at {n:?} natively (at least 4 lines wanted)"
        )
        .into());
    }
    Ok(())
}

/// `gdb -batch -ex run` on a shell that vforks, natively and recorded: both
/// print the shell's line and gdb's vfork detach and normal exit; the trace
/// verifies and replays twice to the same bytes.
fn gdb_shell_vfork(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = Invocation {
        exe: gdb().ok_or("gdb is not installed")?,
        args: [
            "-batch",
            "-nx",
            "-ex",
            "run",
            "--args",
            "/bin/sh",
            "-c",
            "echo hi; /bin/true",
        ]
        .map(OsString::from)
        .to_vec(),
        work: dir.sub("work")?,
    };
    let want = [
        "hi\n",
        "Detaching after vfork from child process",
        "exited normally]",
    ];
    let trace = dir.path.join("trace");
    let (native, rec) = native_and_recorded(&inv, &trace)?;
    expect_lines(&want, &native, &rec)?;
    verified_and_replayed_twice(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// Each of `want` in the stdout of both `native` and `rec`.
fn expect_lines(want: &[&str], native: &run::Run, rec: &run::Run) -> Result<(), Failed> {
    for (what, run) in [("natively", native), ("recorded", rec)] {
        let text = run.stdout_text();
        if let Some(missing) = want.iter().find(|w| !text.contains(*w)) {
            return Err(
                format!("gdb's session {what} lacks {missing:?}\n{}", run.describe()).into(),
            );
        }
    }
    Ok(())
}

/// `gdb -batch` running `cmds` on `gdb_target` natively and recorded: both
/// sessions print each of `want`, gdb exits 0, and the trace verifies and
/// replays twice to the same bytes and exit status.
pub(crate) fn gdb_session(trial: &str, cmds: &[&str], want: &[&str]) -> Result<(), Failed> {
    gdb_session_runs(trial, cmds, want).map(drop)
}

/// [`gdb_session`], returning the native and the recorded runs.
fn gdb_session_runs(
    trial: &str,
    cmds: &[&str],
    want: &[&str],
) -> Result<(run::Run, run::Run), Failed> {
    let dir = TrialDir::new(trial)?;
    let target = build::c_fixture(CBuild::pie("gdb_target"))?;
    let mut args: Vec<OsString> = ["-batch", "-nx"].map(OsString::from).to_vec();
    for cmd in cmds {
        args.push("-ex".into());
        args.push(cmd.into());
    }
    args.push("--args".into());
    args.push(target.into_os_string());
    let inv = Invocation {
        exe: gdb().ok_or("gdb is not installed")?,
        args,
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let (native, rec) = native_and_recorded(&inv, &trace)?;
    expect_lines(want, &native, &rec)?;
    verified_and_replayed_twice(&inv, &trace, &rec)?;
    dir.finish();
    Ok((native, rec))
}

/// `inv` run natively and recorded into `trace`, each exiting 0.
fn native_and_recorded(
    inv: &Invocation,
    trace: &std::path::Path,
) -> Result<(run::Run, run::Run), Failed> {
    let native = inv.native()?;
    native.expect_code(0)?;
    let rec = inv.record(trace)?;
    rec.expect_code(0)?;
    Ok((native, rec))
}

/// The trace of `rec` verified, and two replays exiting as it did with
/// its stdout, byte for byte (the second replay counts its way to each
/// point with what the verification stored).
fn verified_and_replayed_twice(
    inv: &Invocation,
    trace: &std::path::Path,
    rec: &run::Run,
) -> Result<(), Failed> {
    recorder::expect_verified(trace)?;
    for round in 1..=2 {
        let rep = inv.replay(trace)?;
        if rep.code() != rec.code() {
            return Err(format!(
                "replay {round} exited with {}, the recording with {}\n{}",
                rep.code(),
                rec.code(),
                rep.describe()
            )
            .into());
        }
        run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    }
    Ok(())
}
