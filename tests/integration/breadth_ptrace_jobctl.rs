//! Breadth trials for job control and the program's own ptrace together
//! (issue #20): emulated. Each `ptrace_jobctl` variant runs natively, and
//! is recorded, verified and replayed identically (output and exit status
//! compared), once and a few times more (`::repeated`: the order of stops
//! and waits depends on the schedule).
//!
//! - `ptrace_jobctl_killed`: a tracer killed while its seized child is held
//!   in a `PTRACE_INTERRUPT` stop: with `PTRACE_O_EXITKILL` (it raises
//!   `SIGKILL` itself) the child dies with it; without (its parent's
//!   `SIGHUP`), the child is let go and goes on to its end;
//! - `ptrace_jobctl`: a seized child and an attached one, each sent
//!   `SIGSTOP` (a signal-delivery stop) and resumed with it: the group
//!   stop its tracer's wait reports (`PTRACE_EVENT_STOP` with `SIGSTOP`
//!   for the seized one, a plain `SIGSTOP` stop for the other), state `t`,
//!   nothing more for a `WUNTRACED` poll; after a `SIGCONT`, resumed, the
//!   seized one traps once more (`PTRACE_EVENT_STOP` with `SIGTRAP`), then
//!   each stops for the `SIGCONT`; stopped again and resumed without one,
//!   each runs on to its end;
//! - `ptrace_jobctl_listen`: `PTRACE_LISTEN` in a seized child's group
//!   stop (EIO at the signal-delivery stop before it; for an attached
//!   tracee, `ptrace_refused`'s): no report while it listens, ESRCH for a request, a `SIGUSR1`
//!   does not wake it, `PTRACE_INTERRUPT` traps it again
//!   (`PTRACE_EVENT_STOP` with `SIGSTOP`), and after a second listen a
//!   `SIGCONT` does (`PTRACE_EVENT_STOP` with `SIGTRAP`), then the two
//!   signals' delivery stops;
//! - `ptrace_jobctl::under_chaos`: the three recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::Spec;

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &["tracer with PTRACE_O_EXITKILL: killed by signal 9\n\
             its tracee said: \"(nothing: killed)\"\n\
             tracer without it: killed by signal 1\n\
             its tracee said: \"child: went on after its tracer's end\n\"\n"],
        ..c(
            "ptrace_jobctl_killed",
            with_defines("ptrace_jobctl", &["MODE_KILLED"]),
        )
    },
    Spec {
        stdout_has: &["-- seized\n\
             after kill(SIGSTOP): stopped, signal 19, event 0\n\
             resumed with SIGSTOP: stopped, signal 19, event 128\n\
             its state: t\n\
             a WNOHANG|WUNTRACED wait in the group stop: 0\n\
             after kill(SIGCONT), resumed: stopped, signal 5, event 128\n\
             resumed: stopped, signal 18, event 0\n\
             after kill(SIGSTOP) again: stopped, signal 19, event 0\n\
             resumed with SIGSTOP again: stopped, signal 19, event 128\n\
             resumed without a SIGCONT: exited with 0\n\
             -- attached\n\
             attached: stopped, signal 19, event 0\n\
             after kill(SIGSTOP): stopped, signal 19, event 0\n\
             resumed with SIGSTOP: stopped, signal 19, event 0\n\
             its state: t\n\
             a WNOHANG|WUNTRACED wait in the group stop: 0\n\
             after kill(SIGCONT), resumed: stopped, signal 18, event 0\n\
             after kill(SIGSTOP) again: stopped, signal 19, event 0\n\
             resumed with SIGSTOP again: stopped, signal 19, event 0\n\
             resumed without a SIGCONT: exited with 0\n"],
        ..c("ptrace_jobctl", with_defines("ptrace_jobctl", &[]))
    },
    Spec {
        stdout_has: &["after kill(SIGSTOP): stopped, signal 19, event 0\n\
             PTRACE_LISTEN at the signal-delivery stop: -1, errno 5 (Input/output error)\n\
             resumed with SIGSTOP: stopped, signal 19, event 128\n\
             PTRACE_LISTEN: 0\n\
             its state: t\n\
             a WNOHANG|WUNTRACED wait while it listens: 0\n\
             PTRACE_PEEKDATA while it listens: -1, errno 3 (No such process)\n\
             a WNOHANG|WUNTRACED wait after a SIGUSR1: 0\n\
             PTRACE_INTERRUPT while it listens: 0\n\
             interrupted: stopped, signal 19, event 128\n\
             PTRACE_LISTEN again: 0\n\
             after kill(SIGCONT): stopped, signal 5, event 128\n\
             PTRACE_PEEKDATA: 0\n\
             resumed: stopped, signal 10, event 0\n\
             resumed with it: stopped, signal 18, event 0\n\
             resumed: exited with 10\n"],
        ..c(
            "ptrace_jobctl_listen",
            with_defines("ptrace_jobctl", &["MODE_LISTEN"]),
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_jobctl::under_chaos")
}
