//! Breadth trials for a debugger's hardware breakpoints and watchpoints
//! (issue #20): the program's own debug registers, written and read with
//! `PTRACE_POKEUSER`/`PTRACE_PEEKUSER` at `u_debugreg`, emulated in the
//! real slots 1-3 (slot 0 is the recorder's; the program's slot 0 is moved
//! to a free one). The fixture runs natively, and is recorded, verified
//! and replayed identically (output and exit status compared), once and a
//! few times more (`::repeated`), and recorded under the chaos scheduler
//! at three seeds (`breadth::ptrace_debugregs::under_chaos`).
//!
//! - `ptrace_debugregs`: an execution breakpoint on a function in slot 1,
//!   a 4-byte write watchpoint in slot 2 and an 8-byte read/write
//!   watchpoint in slot 3: twelve traps, each with the slot DR6 names
//!   (cleared by the tracer), `TRAP_HWBKPT`, `si_addr` the rip, the rip at
//!   the function for the breakpoint, and the watched values; then a
//!   watchpoint in slot 0 alone, which the tracer's single steps reach
//!   (the thirteenth: the step's `TRAP_TRACE`, DR6's BS and B0; after
//!   each step before it that hit no slot, DR6 BS alone); DR7 and
//!   DR0-3 read back;
//!   the kernel's EINVAL for a kernel address and for a misaligned
//!   watchpoint;
//! - `ptrace_debugregs_detach` (the fixture with the argument `detach`): a
//!   write watchpoint in slot 2, then `PTRACE_DETACH`; the child, untraced,
//!   writes the watched word twice and catches each `SIGTRAP` in a
//!   handler (`TRAP_HWBKPT`, `si_addr` inside the writing function): the
//!   slot stays armed after the detach, as natively, and replay delivers
//!   the trap at its execution point;
//! - `breadth::ptrace_debugregs::gdb_watch`: gdb itself (`gdb -batch`,
//!   `watch` on a global of `gdb_target`: a hardware watchpoint, in slot
//!   0, in the main thread and in the second thread gdb follows) stops
//!   where it stops natively, with the same old and new values; the trace
//!   verifies and replays twice. Needs gdb (skipped, said, without it);
//! - `breadth::ptrace_debugregs::gdb_hbreak_rwatch`: gdb's `hbreak` (an
//!   execution breakpoint, slot 0) and `rwatch` (a read watchpoint, slot
//!   1) stop where they stop natively, in both threads.

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, variant_trials, REPEATS};
use crate::breadth_debugger::{gdb, gdb_session};
use crate::recorder::{Args, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run as run;

/// The fixtures.
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "DR6 before any trap: low bits 0\n",
        "DR0 of a kernel address: -1, errno 22\n",
        "DR7 with a misaligned slot 0: -1, errno 22, DR7 now 0\n",
        "DR7 reads back what was written: 1, DR1 target's address: 1\n",
        "hit 1: DR6 slots 0x2, BS 0, si_code 4, si_addr the rip 1, at target 1, argument 1, counter 0, wide 5\n",
        "hit 2: DR6 slots 0x4, BS 0, si_code 4, si_addr the rip 1, at target 0, argument -1, counter 10, wide 5\n",
        "hit 3: DR6 slots 0x8, BS 0, si_code 4, si_addr the rip 1, at target 0, argument -1, counter 10, wide 5\n",
        "hit 4: DR6 slots 0x8, BS 0, si_code 4, si_addr the rip 1, at target 0, argument -1, counter 10, wide 1\n",
        "hit 9: DR6 slots 0x2, BS 0, si_code 4, si_addr the rip 1, at target 1, argument 3, counter 20, wide 2\n",
        "hit 12: DR6 slots 0x8, BS 0, si_code 4, si_addr the rip 1, at target 0, argument -1, counter 30, wide 3\n",
        "slot 0 alone: DR7 reads back 1, DR0 counter's address 1\n",
        // Emulated since 2026-12-05 (before, DR6 kept the last trap's).
        "steps that hit no slot: DR6 BS alone after each 1\n",
        // (The number of steps depends on the compiler.)
        " steps: DR6 slots 0x1, BS 1, si_code 2, counter 30 before the step, 40 after\n",
        "all disabled: DR7 0\n",
        "hits: 13, child exit 7\n",
    ],
    ..c("ptrace_debugregs", CBuild::pie("ptrace_debugregs"))
}, Spec {
    name: "ptrace_debugregs_detach",
    args: Args::Fixed(&["detach"]),
    stdout_has: &[
        "parent: a write watchpoint on counter in slot 2, DR7 reads back 1; detaching\n",
        // Kept armed after the detach since 2026-12-06 (before, the
        // recorder took it off the real thread and the child got no trap).
        "child: after the first write: traps 1, si_code 4 (TRAP_HWBKPT 1), si_addr in the writing function 1\n",
        "child: after the second write: traps 2, counter 22\n",
        "parent: the child exited with 7\n",
    ],
    ..c("ptrace_debugregs", CBuild::pie("ptrace_debugregs"))
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = variant_trials(SPECS, REPEATS, "breadth::ptrace_debugregs::under_chaos");
    let skip =
        build::gcc_missing().is_some() || run::recording_unavailable().is_some() || gdb().is_none();
    trials.push(
        Trial::test("breadth::ptrace_debugregs::gdb_watch", || {
            gdb_watch("breadth::ptrace_debugregs::gdb_watch")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::ptrace_debugregs::gdb_hbreak_rwatch", || {
            gdb_hbreak_rwatch("breadth::ptrace_debugregs::gdb_hbreak_rwatch")
        })
        .with_ignored_flag(skip),
    );
    trials
}

/// gdb's `watch` on `gdb_target`'s global `watched`, from a breakpoint at
/// `main`: a hardware watchpoint (before, the recorder refused the debug
/// registers, and gdb stopped at the `continue` with "Could not insert
/// hardware watchpoint"), which stops after each of the two writes, in
/// `area` called from the main thread and from the second thread, as
/// natively; the trace verifies and replays twice to the same bytes.
fn gdb_watch(trial: &str) -> Result<(), Failed> {
    gdb_session(
        trial,
        &[
            "break main",
            "run",
            "watch watched",
            "continue",
            "continue",
            "delete",
            "continue",
        ],
        &[
            "Hardware watchpoint 2: watched\n",
            "Old value = 0\nNew value = 42\n",
            "Thread 2 \"gdb_target-pie\" hit Hardware watchpoint 2: watched\n",
            "Old value = 42\nNew value = 84\n",
            "area 42\n",
            "EXIT-SUCCESS\n",
            "exited with code 03]",
        ],
    )
}

/// gdb's `hbreak` on `area` (an execution breakpoint in slot 0) and
/// `rwatch` on `watched` (a read watchpoint in slot 1), set from a
/// breakpoint at `main`: the breakpoint stops both calls of `area` (main
/// thread, then the second thread), the read watchpoint main's read of
/// `watched`, as natively; the trace verifies and replays twice.
fn gdb_hbreak_rwatch(trial: &str) -> Result<(), Failed> {
    gdb_session(
        trial,
        &[
            "break main",
            "run",
            "hbreak area",
            "rwatch watched",
            "continue",
            "continue",
            "continue",
            "continue",
        ],
        &[
            "Hardware assisted breakpoint 2 at 0x",
            "Hardware read watchpoint 3: watched\n",
            "\nBreakpoint 2, area (p=",
            "scale=scale@entry=1) at ",
            "hit Breakpoint 2, area (p=",
            "scale=scale@entry=2) at ",
            "hit Hardware read watchpoint 3: watched\n\nValue = 84\n",
            "worker 84, watched 84\n",
            "exited with code 03]",
        ],
    )
}
