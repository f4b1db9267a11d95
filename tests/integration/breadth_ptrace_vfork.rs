//! Breadth trials for the program's own ptrace following a vfork (issue
//! #20): PTRACE_O_TRACEVFORK and PTRACE_O_TRACEVFORKDONE, emulated. Each
//! `ptrace_vfork` variant runs natively, and is recorded, verified and
//! replayed identically (output and exit status compared), once and a few
//! times more (`::repeated`: the order of stops, exits and waits depends on
//! the schedule).
//!
//! - `ptrace_vfork`: a tracer (PTRACE_TRACEME) sees its child's
//!   PTRACE_EVENT_VFORK (the grandchild's id its message; orig_rax vfork,
//!   rax -ENOSYS: inside the call) and, holding the child in that stop,
//!   the grandchild's first stop (SIGSTOP), resumes it and follows it by
//!   its id through its exec of /bin/true to its exit, then resumes the
//!   child: a vfork parent held in its event stop while its child runs to
//!   its end (the case that made the option refused before);
//! - `ptrace_vfork_seize`: the same, seized (first stop PTRACE_EVENT_STOP);
//! - `ptrace_vfork_done_exit`: with PTRACE_O_TRACEVFORKDONE, the
//!   grandchild `_exit`ing: PTRACE_EVENT_VFORK_DONE (the grandchild's id)
//!   once the grandchild is gone;
//! - `ptrace_vfork_syscall`: as strace -f, every tracee resumed with
//!   PTRACE_SYSCALL as its stops come (the child at its event stop at once):
//!   the vfork's syscall-exit stop returns the grandchild's id;
//! - `ptrace_vfork_seize_syscall_done`: seized, PTRACE_SYSCALL, VFORK_DONE
//!   before the exit stop, the grandchild `_exit`ing;
//! - `ptrace_vfork_done_only`: PTRACE_O_TRACEVFORKDONE alone: no
//!   PTRACE_EVENT_VFORK, the grandchild not traced, the VFORK_DONE stop
//!   all the same (the kernel's rule);
//! - `ptrace_vfork::gdb_thread_breakpoint`: gdb (which asks
//!   PTRACE_O_TRACEVFORK, and without it runs with none of its options)
//!   with a breakpoint that `gdb_target`'s second thread hits too: both
//!   hits shown, the program's exit 3, natively and recorded; the trace
//!   verifies and replays (before, the second thread's hit killed the
//!   program with SIGTRAP under the recorder). Needs gdb;
//! - `ptrace_vfork::under_chaos`: the six recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::breadth_debugger::{gdb, gdb_session};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

const TRACEME: &str = "tracer: the child stopped after PTRACE_TRACEME; options set\n";
const SEIZED: &str = "tracer: seized the child\n";
const EXEC: &str = "grandchild: running, then exec /bin/true\n";
const EXIT: &str = "grandchild: running, then _exit\n";
const ECHILD: &str = "tracer: a last wait got ECHILD\n";
const EVENT: &str = "tracer: PTRACE_EVENT_VFORK's message is the grandchild's id: 1\n";
const REGS: &str = "tracer: at the event stop, orig_rax is vfork and rax -ENOSYS: 1\n";
const DONE: &str = "tracer: PTRACE_EVENT_VFORK_DONE's message is the grandchild's id: 1\n";
const GONE: &str = "tracer: the grandchild had exited by then: 1\n";
const EXIT_STOP: &str = "tracer: the vfork's exit stop returned the grandchild's id: 1\n";
const FIRST: &str = "tracer: the grandchild's first stop seen: 1\n";
const EXITS_0: &str = "tracer: the grandchild exited with 0, the child with 3\n";
const EXITS_7: &str = "tracer: the grandchild exited with 7, the child with 3\n";
const UNTRACED: &str = "tracer: no PTRACE_EVENT_VFORK, the grandchild not traced: 1\n";
const CHILD_3: &str = "tracer: the child exited with 3\n";

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[TRACEME, EXEC, ECHILD, EVENT, REGS, FIRST, EXITS_0],
        ..c("ptrace_vfork", CBuild::pie("ptrace_vfork"))
    },
    Spec {
        stdout_has: &[SEIZED, EXEC, ECHILD, EVENT, REGS, FIRST, EXITS_0],
        ..c(
            "ptrace_vfork_seize",
            with_defines("ptrace_vfork", &["USE_SEIZE"]),
        )
    },
    Spec {
        stdout_has: &[
            TRACEME, EXIT, ECHILD, EVENT, REGS, DONE, GONE, FIRST, EXITS_7,
        ],
        ..c(
            "ptrace_vfork_done_exit",
            with_defines("ptrace_vfork", &["USE_DONE", "USE_EXIT"]),
        )
    },
    Spec {
        stdout_has: &[
            TRACEME, EXEC, ECHILD, EVENT, REGS, EXIT_STOP, FIRST, EXITS_0,
        ],
        ..c(
            "ptrace_vfork_syscall",
            with_defines("ptrace_vfork", &["USE_SYSCALL"]),
        )
    },
    Spec {
        stdout_has: &[
            SEIZED, EXIT, ECHILD, EVENT, REGS, DONE, EXIT_STOP, FIRST, EXITS_7,
        ],
        ..c(
            "ptrace_vfork_seize_syscall_done",
            with_defines(
                "ptrace_vfork",
                &["USE_SEIZE", "USE_SYSCALL", "USE_DONE", "USE_EXIT"],
            ),
        )
    },
    Spec {
        stdout_has: &[TRACEME, EXEC, ECHILD, UNTRACED, DONE, CHILD_3],
        ..c(
            "ptrace_vfork_done_only",
            with_defines("ptrace_vfork", &["USE_DONE_ONLY"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = variant_trials(SPECS, REPEATS, "breadth::ptrace_vfork::under_chaos");
    let skip = crate::recorder_build::gcc_missing().is_some()
        || crate::recorder_run::recording_unavailable().is_some()
        || gdb().is_none();
    trials.push(
        Trial::test("breadth::ptrace_vfork::gdb_thread_breakpoint", || {
            gdb_session(
                "breadth::ptrace_vfork::gdb_thread_breakpoint",
                &["break area", "run", "continue", "continue"],
                &[
                    "Breakpoint 1, area (p=",
                    "scale=scale@entry=1) at ",
                    "area 42\n",
                    "Thread 2 \"gdb_target-pie\" hit Breakpoint 1, area (p=",
                    "scale=scale@entry=2) at ",
                    "worker 84, watched 84\n",
                    "EXIT-SUCCESS\n",
                    "exited with code 03]",
                ],
            )
        })
        .with_ignored_flag(skip),
    );
    trials
}
