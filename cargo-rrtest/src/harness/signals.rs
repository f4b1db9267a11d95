//! Ctrl-C handling without `unsafe`: SIGINT, SIGTERM and SIGHUP are blocked
//! in the calling (main) thread before any other thread starts, so every
//! thread inherits the mask, and one thread takes them with sigwait(2). The
//! first sets the cancel flag (workers then kill their tests' process groups
//! and stop); a second ends the process at once.
//!
//! Children inherit the spawning thread's signal mask, so attempts are
//! spawned through `sys::spawn::with_empty_signal_mask`: tests and recorders
//! start with nothing blocked, as under `cargo test`.

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
