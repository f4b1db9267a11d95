//! Breadth trials of issue #20's limit "several signals delivered at one
//! return": when one return to user space makes several pending signals
//! deliverable (a `sigprocmask`, `sigsuspend` or a handler's `rt_sigreturn`
//! unblocks them), the kernel builds a frame for each before any handler
//! runs, so the handler of the frame built last (the highest-numbered
//! signal, the thread's own queue taken before the process's) starts first.
//! The recorder delivers them the same way, at the same return, and replay
//! makes the same deliveries at the same places.
//!
//! `signal_order` (fixtures/c/signal_order.c) prints, for each of nine
//! sections, the signals (and values) in the order their handlers started:
//! real-time signals queued by `sigqueue`, `rt_sigqueueinfo` and
//! `rt_tgsigqueueinfo`; SIGUSR1 and SIGUSR2 with plain handlers; standard
//! and real-time mixed; unblocked by `sigsuspend`; by a handler's own
//! `sigprocmask`; by a handler's return; SA_NODEFER; a handler's `sa_mask`
//! holding one back; sent by another thread that ended before they were
//! unblocked. A tenth section: a child whose SIGUSR2 handler has no room
//! for its frame (its alternate stack a `PROT_NONE` page) dies of
//! SIGSEGV, as the kernel decides when it cannot write a frame (the
//! recorder steps into each handler: there the step ends at the forced
//! signal's stop instead). Built as a PIE (the syscall hook loaded) and
//! statically (no hook).
//!
//! Trials: `::native` (the output below, natively), `::record_replay`
//! (recorded, verified and replayed identically), `::recorded_as_native`
//! (a recording prints what a native run prints, byte for byte), and
//! `breadth::signals::under_chaos` (each recorded under the chaos
//! scheduler at three seeds: the same output, verified).

use libtest_mimic::Trial;

use crate::breadth::{c, native_alike_trials};
use crate::recorder::Spec;
use crate::recorder_build::{CBuild, Link};

/// What every native run of signal_order prints (100 runs alike).
const ORDER: &[&str] = &[
    "real-time unblocked: RTMIN+2/10 RTMIN+2/12 RTMIN+1/11 RTMIN+1/14 RTMIN+0/16 RTMIN+0/13 RTMIN+0/15\n",
    "USR1 USR2 unblocked: USR2 USR1\n",
    "mixed unblocked: RTMIN+1/21 RTMIN+1/23 USR2/22 USR1\n",
    "sigsuspend: RTMIN+1/32 RTMIN+0/31 USR1\n  sigsuspend returned -1 errno 4, mask back 1\n",
    "unblocked in a handler: USR1 RTMIN+2/43 RTMIN+1/42 RTMIN+0/41\n",
    "unblocked by a handler's return: USR1 RTMIN+1/52 RTMIN+0/51 RTMIN+0/53\n",
    "SA_NODEFER: RTMIN+3/63 RTMIN+3/62 RTMIN+3/61\n",
    "sa_mask holds one back: RTMIN+1/72 RTMIN+0/71 RTMIN+2/73\n",
    "sent by another thread: RTMIN+2/83 USR1 RTMIN+1/81 RTMIN+0/82 RTMIN+0/84\n",
    "no room for a frame: child killed by signal 11\n",
];

/// The fixture, dynamically and statically linked.
const SPECS: &[Spec] = &[
    Spec {
        stdout_has: ORDER,
        ..c("signal_order", CBuild::pie("signal_order"))
    },
    Spec {
        stdout_has: ORDER,
        ..c(
            "signal_order-static",
            CBuild {
                name: "signal_order",
                link: Link::Static,
                defines: &[],
            },
        )
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    native_alike_trials("breadth::signals", SPECS)
}
