//! Breadth trials for the program's own ptrace following clones and forks
//! (issue #20): PTRACE_O_TRACECLONE and PTRACE_O_TRACEFORK, emulated. Each
//! `ptrace_traceclone` variant runs natively, and is recorded, verified and
//! replayed identically (output and exit status compared), once and a few
//! times more (`::repeated`: the order of stops, exits and waits depends on
//! the schedule).
//!
//! - `ptrace_traceclone`: a tracer (PTRACE_TRACEME) follows its child's
//!   thread and forked grandchild: the event stops and their messages, the
//!   new tracees' first stops (SIGSTOP), waits by their ids (not the
//!   tracer's children) to their exits, and ECHILD once none is left;
//! - `ptrace_traceclone_seize`: the same, seized (first stops are
//!   PTRACE_EVENT_STOP);
//! - `ptrace_traceclone_syscall`, `_seize_syscall`: the child resumed with
//!   PTRACE_SYSCALL throughout, as strace -f: each event stop is followed
//!   by the call's syscall-exit stop returning the new id;
//! - `ptrace_traceclone_waitid`: the new tracees followed with
//!   `waitid(P_PID, WEXITED)`, the grandchild killed by SIGKILL
//!   (CLD_KILLED, WIFSIGNALED for its parent's wait);
//! - `ptrace_traceclone::under_chaos`: the five recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

/// Lines every variant prints (the last but `_waitid`).
const COMMON: [&str; 5] = [
    "tracer: a last wait got ECHILD\n",
    "tracer: PTRACE_EVENT_CLONE's message is the thread's id: 1\n",
    "tracer: PTRACE_EVENT_FORK's message is the grandchild's id: 1\n",
    "tracer: the thread's and the grandchild's first stops seen: 1 1\n",
    "tracer: the thread exited with 11, the grandchild with 5, the child with 3\n",
];

const SYSCALL_LINE: &str = "tracer: each event stop followed by the call's exit stop: 2\n";

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[
            "tracer: the child stopped after PTRACE_TRACEME; options set\n",
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
        ],
        ..c("ptrace_traceclone", CBuild::pie("ptrace_traceclone"))
    },
    Spec {
        stdout_has: &[
            "tracer: seized the child\n",
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
        ],
        ..c(
            "ptrace_traceclone_seize",
            with_defines("ptrace_traceclone", &["USE_SEIZE"]),
        )
    },
    Spec {
        stdout_has: &[
            "tracer: the child stopped after PTRACE_TRACEME; options set\n",
            SYSCALL_LINE,
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
        ],
        ..c(
            "ptrace_traceclone_syscall",
            with_defines("ptrace_traceclone", &["USE_SYSCALL"]),
        )
    },
    Spec {
        stdout_has: &[
            "tracer: seized the child\n",
            SYSCALL_LINE,
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
        ],
        ..c(
            "ptrace_traceclone_seize_syscall",
            with_defines("ptrace_traceclone", &["USE_SEIZE", "USE_SYSCALL"]),
        )
    },
    Spec {
        stdout_has: &[
            "tracer: the child stopped after PTRACE_TRACEME; options set\n",
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            "tracer: the thread exited with 11, the grandchild with -9, the child with 3\n",
        ],
        ..c(
            "ptrace_traceclone_waitid",
            with_defines("ptrace_traceclone", &["USE_WAITID"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_traceclone::under_chaos")
}
