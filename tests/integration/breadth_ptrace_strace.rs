//! Breadth trials for a strace-like tracer (issue #20): the program's own
//! ptrace following a child syscall by syscall with PTRACE_SYSCALL,
//! emulated. Each `ptrace_mini_strace` variant runs natively, and is
//! recorded, verified and replayed identically (output and exit status
//! compared), once and a few times more (`::repeated`).
//!
//! - `ptrace_mini_strace`: PTRACE_TRACEME, PTRACE_GET_SYSCALL_INFO: each
//!   entry and exit (getpid, write, kill, a handler's getppid and
//!   rt_sigreturn, execve); getpid's exit stop resumed with SIGUSR1, which
//!   the kernel sends (a signal-delivery stop, si_code SI_KERNEL, passed on
//!   with PTRACE_SYSCALL: the handler runs); the kill's SIGUSR1 passed on
//!   likewise; execve's exit stop with the new image's registers (rax 0),
//!   then the exec's SIGTRAP (a signal-delivery stop, not passed on);
//! - `ptrace_mini_strace_traceexec`: the same with PTRACE_O_TRACEEXEC:
//!   PTRACE_EVENT_EXEC between execve's entry and exit stops, resumed with
//!   SIGUSR1, which the kernel ignores at an event stop;
//! - `ptrace_mini_strace_getregs`: as the first, the syscall numbers and
//!   results read with PTRACE_GETREGS (orig_rax, rax);
//! - `ptrace_mini_strace_detach`: the tracer detaches at getpid's exit
//!   stop with SIGUSR1, which the kernel sends: the child, untraced, runs
//!   its handler (it exits 3 unless its handler ran twice) and execs;
//! - `ptrace_mini_strace::under_chaos`: the four recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

/// What the tracer prints up to the exec, in every variant.
const BEFORE_EXEC: [&str; 18] = [
    "tracer: the child stopped itself with signal 19\n",
    "tracer: entry getpid (39)\n",
    "tracer: exit getpid, the child's id: 1\n",
    "tracer: signal-delivery stop 10, si_code 128 (in a call: 0)\n",
    "tracer: entry getppid (110)\n",
    "tracer: exit getppid, the tracer's id: 1\n",
    "tracer: entry rt_sigreturn (15)\n",
    "tracer: exit rt_sigreturn, the child's id\n",
    "tracer: entry write (1)\n",
    "tracer: exit write = 1\n",
    "tracer: entry kill (62)\n",
    "tracer: exit kill = 0\n",
    "tracer: signal-delivery stop 10, si_code 0 (in a call: 0)\n",
    "tracer: entry getppid (110)\n",
    "tracer: exit getppid, the tracer's id: 1\n",
    "tracer: entry rt_sigreturn (15)\n",
    "tracer: exit rt_sigreturn = 0\n",
    "tracer: entry execve (59)\n",
];

/// The exec's exit stop and what follows it, in every variant.
const EXEC_EXIT: [&str; 4] = [
    "tracer: exit execve = 0\n",
    "tracer: execve's exit stop: orig_rax 59, rax 0\n",
    "tracer: after the exec: calls seen 1, exit_group's entry 1\n",
    "tracer: the child exited with 0\n",
];

const LEGACY_TRAP: &str = "tracer: the exec's SIGTRAP, not passed on\n";

const EXEC_EVENT: &str = "tracer: event stop 4 (in a call: 1)\n";

/// Every line of a variant, `extra` among them.
const fn lines(extra: &'static str) -> [&'static str; 23] {
    let mut all = [""; 23];
    let mut i = 0;
    while i < BEFORE_EXEC.len() {
        all[i] = BEFORE_EXEC[i];
        i += 1;
    }
    let mut j = 0;
    while j < EXEC_EXIT.len() {
        all[i + j] = EXEC_EXIT[j];
        j += 1;
    }
    all[22] = extra;
    all
}

const LEGACY: [&str; 23] = lines(LEGACY_TRAP);
const TRACEEXEC: [&str; 23] = lines(EXEC_EVENT);

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &LEGACY,
        ..c("ptrace_mini_strace", CBuild::pie("ptrace_mini_strace"))
    },
    Spec {
        stdout_has: &TRACEEXEC,
        ..c(
            "ptrace_mini_strace_traceexec",
            with_defines("ptrace_mini_strace", &["USE_TRACEEXEC"]),
        )
    },
    Spec {
        stdout_has: &LEGACY,
        ..c(
            "ptrace_mini_strace_getregs",
            with_defines("ptrace_mini_strace", &["USE_GETREGS"]),
        )
    },
    Spec {
        stdout_has: &[
            BEFORE_EXEC[0],
            BEFORE_EXEC[1],
            BEFORE_EXEC[2],
            "tracer: detached at getpid's exit with SIGUSR1\n",
            EXEC_EXIT[3],
        ],
        ..c(
            "ptrace_mini_strace_detach",
            with_defines("ptrace_mini_strace", &["USE_DETACH"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_mini_strace::under_chaos")
}
