//! Ctrl-C handling without `unsafe`: SIGINT, SIGTERM and SIGHUP are blocked
//! in the calling (main) thread before any other thread starts, so every
//! thread inherits the mask, and one thread takes them with sigwait(2). The
//! first sets the cancel flag (workers then kill their tests' process groups
//! and stop); a second ends the process at once.
//!
//! Children inherit the spawning thread's signal mask (std's `Command` does
//! not reset it here). A recorder must be able to receive SIGTERM (the
//! harness asks it to close its trace at a timeout), so attempts are spawned
//! by [`spawn_with_sigterm`], which unblocks SIGTERM in the calling thread
//! just around the spawn. Changing the child's mask after fork would need
//! `unsafe` (`pre_exec`); the cost of this way is a window of one spawn in
//! which a SIGTERM sent to cargo-rrtest ends it at once instead of cancelling
//! the run. SIGINT and SIGHUP stay blocked in children, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::sys::signal::{SigSet, Signal};

/// Exit status of a run stopped by a signal (128 + SIGINT, the shell convention).
pub const INTERRUPTED_EXIT: u8 = 130;

/// Installs the handler (once) and returns the cancel flag.
pub fn cancel_flag() -> &'static AtomicBool {
    static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(s);
        }
        if set.thread_block().is_ok() {
            let spawned = std::thread::Builder::new()
                .name("rrtest-signals".into())
                .spawn(move || loop {
                    if set.wait().is_ok() {
                        if flag.swap(true, Ordering::SeqCst) {
                            std::process::exit(i32::from(INTERRUPTED_EXIT));
                        }
                        eprintln!("cargo-rrtest: cancelling: killing running tests (press Ctrl-C again to exit now)");
                    }
                });
            if spawned.is_err() {
                let _ = set.thread_unblock();
            }
        }
        flag
    })
}

/// Runs `spawn` (which starts a child process) with SIGTERM unblocked in
/// this thread, so the child starts with SIGTERM deliverable.
pub fn spawn_with_sigterm<T>(spawn: impl FnOnce() -> T) -> T {
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    let was_blocked = SigSet::thread_get_mask().is_ok_and(|m| m.contains(Signal::SIGTERM));
    if was_blocked {
        let _ = term.thread_unblock();
    }
    let out = spawn();
    if was_blocked {
        let _ = term.thread_block();
    }
    out
}
