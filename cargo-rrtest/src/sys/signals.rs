//! The recorder's own signal handling: termination requests (SIGTERM,
//! SIGHUP, SIGINT) set a flag and interrupt `waitpid` instead of killing
//! the recorder, so it can kill its tracees and close the trace cleanly.
//!
//! Handlers are installed without `SA_RESTART`, so a blocking `waitpid`
//! returns `EINTR`. A request that lands between the flag check and the
//! `waitpid` call is seen at the next tracee event; whoever sends SIGTERM
//! (the harness on a timeout) follows up with SIGKILL after a grace period.

use std::sync::atomic::{AtomicI32, Ordering};

static REQUEST: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // An atomic store is async-signal-safe.
    REQUEST.store(signo, Ordering::SeqCst);
}

/// Installs the handlers. Caught signals revert to their defaults in the
/// tracee at `execve`, so the program sees the usual dispositions.
pub fn catch_termination() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; we set a handler that only
        // performs an atomic store, and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The termination signal received since the last call, if any.
pub fn take_request() -> Option<i32> {
    match REQUEST.swap(0, Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
