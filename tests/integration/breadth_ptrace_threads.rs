//! Breadth trials for the program's own ptrace of what is not its own
//! child's main thread, and for waits from a thread that does not trace
//! (issue #20): emulated. Each `ptrace_threads` variant runs natively, and is
//! recorded, verified and replayed identically (output and exit status
//! compared), once and a few times more (`::repeated`: the order of stops
//! and waits depends on the schedule).
//!
//! - `ptrace_threads`: the parent attaches its child's second thread by its
//!   id (`PTRACE_ATTACH`, its `SIGSTOP` waited for with `__WALL` by its id,
//!   its siginfo the kernel's, `SI_KERNEL` and no sender,
//!   its fs base read with `PTRACE_GETREGS`, a word read and written,
//!   `PTRACE_DETACH`, then ECHILD for a wait for it), then seizes it
//!   (`PTRACE_SEIZE`, `PTRACE_INTERRUPT`, `waitpid(-1)` without `__WALL`,
//!   `PTRACE_CONT`, another interrupt, `PTRACE_CONT`, its exit waited for
//!   by its id: the emulated wait's, the kernel's knowing nothing of a
//!   thread); the child's main thread, not traced, gets ESRCH;
//! - `ptrace_threads_grandchild`: the parent attaches and seizes its
//!   grandchild the same way, waits for its exit (the emulated wait's: not
//!   the tracer's child), then, without `CAP_SYS_PTRACE`, is refused
//!   (EPERM, as natively) a second grandchild running as another user;
//! - `ptrace_threads_waiter`: the parent's main thread seizes its child; a
//!   second thread finds nothing with `__WNOTHREAD` (ECHILD), waits for the
//!   stop and is refused requests (ESRCH: it does not trace); a third is
//!   blocked in `waitpid(-1, __WALL)` when the child stops again; a fourth
//!   seizes the child and ends, which lets it go (the main thread seizes
//!   it again);
//! - `ptrace_threads::under_chaos`: the three recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[
            "parent: found the child's second thread\n\
             parent: attached the thread, its SIGSTOP seen with __WALL\n\
             parent: its siginfo: signal 19, code 128, from pid 0\n\
             parent: its fs base is its own pthread_self: 1\n\
             parent: read 0x7417 from it\n\
             parent: PTRACE_PEEKDATA of the main thread: -1, errno 3 (No such process)\n\
             parent: a wait for the detached thread: -1, errno 10 (No child processes)\n\
             parent: seized and interrupted the thread, waitpid(-1) saw it\n\
             parent: read 0x600d from it\n\
             parent: resumed and interrupted it again\n\
             parent: the traced thread exited with 0\n\
             parent: the child exited with 0\n",
        ],
        ..c("ptrace_threads", CBuild::pie("ptrace_threads"))
    },
    Spec {
        stdout_has: &[
            "parent: the grandchild is up\n\
             parent: attached the grandchild, its SIGSTOP seen\n\
             parent: read 0x7417 from it\n\
             parent: seized and interrupted the grandchild\n\
             parent: read 0x600d from it\n\
             parent: resumed and interrupted it again\n\
             parent: the traced grandchild exited with 0\n\
             parent: the child exited with 3\n\
             parent: PTRACE_ATTACH of another user's grandchild: -1, errno 1 (Operation not permitted)\n\
             parent: PTRACE_SEIZE of another user's grandchild: -1, errno 1 (Operation not permitted)\n\
             parent: the second child exited with 23\n",
        ],
        ..c(
            "ptrace_threads_grandchild",
            with_defines("ptrace_threads", &["MODE_GRANDCHILD"]),
        )
    },
    Spec {
        stdout_has: &[
            "parent: seized and interrupted the child; its stop is there\n\
             waiter: a __WNOTHREAD poll: -1, errno 10 (No child processes)\n\
             waiter: saw the child's stop\n\
             waiter: PTRACE_PEEKDATA: -1, errno 3 (No such process)\n\
             waiter: PTRACE_CONT: -1, errno 3 (No such process)\n\
             parent: read 0x7417 from the child\n\
             waiter: saw the child's second stop\n\
             parent: seized again after the seizing thread's end: 0\n\
             parent: the child exited with 0\n",
        ],
        ..c(
            "ptrace_threads_waiter",
            with_defines("ptrace_threads", &["MODE_WAITER"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_threads::under_chaos")
}
