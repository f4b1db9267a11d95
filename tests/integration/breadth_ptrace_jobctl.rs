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
//! - `ptrace_jobctl::under_chaos`: it recorded under the chaos
//!   scheduler at three seeds each, verified.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, with_defines, REPEATS};
use crate::recorder::Spec;

const SPECS: &[Spec] = &[Spec {
    stdout_has: &["tracer with PTRACE_O_EXITKILL: killed by signal 9\n\
             its tracee said: \"(nothing: killed)\"\n\
             tracer without it: killed by signal 1\n\
             its tracee said: \"child: went on after its tracer's end\n\"\n"],
    ..c(
        "ptrace_jobctl_killed",
        with_defines("ptrace_jobctl", &["MODE_KILLED"]),
    )
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_jobctl::under_chaos")
}
