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
static TICKS: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // Atomic operations are async-signal-safe.
    if signo == libc::SIGALRM {
        TICKS.fetch_add(1, Ordering::SeqCst);
    } else {
        REQUEST.store(signo, Ordering::SeqCst);
    }
}

fn install(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction is valid; we set a handler that only
    // performs atomic operations, and an empty mask. The signal is then
    // unblocked: whoever started us may have blocked it (the harness does
    // while it spawns), and a blocked SIGTERM would never reach us.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Starts a `period` interval timer whose ticks interrupt `waitpid` (so the
/// recorder can preempt a thread that runs without syscalls).
pub fn start_ticks(period: std::time::Duration) {
    install(libc::SIGALRM);
    let tv = libc::timeval {
        tv_sec: period.as_secs() as libc::time_t,
        tv_usec: period.subsec_micros() as libc::suseconds_t,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: a plain syscall on a valid, initialized struct.
    unsafe {
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
}

/// Stops the interval timer.
pub fn stop_ticks() {
    let zero = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let it = libc::itimerval {
        it_interval: zero,
        it_value: zero,
    };
    // SAFETY: a plain syscall on a valid, initialized struct.
    unsafe {
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
}

/// Whether the timer ticked since the last call.
pub fn take_tick() -> bool {
    TICKS.swap(0, Ordering::SeqCst) > 0
}

/// Installs the handlers. Caught signals revert to their defaults in the
/// tracee at `execve`, so the program sees the usual dispositions.
pub fn catch_termination() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        install(sig);
    }
}

/// Gives SIGTERM, SIGHUP and SIGINT back their default action (after a
/// recording, when nothing waits for the request any more: a Ctrl-C
/// during `record`'s verification then ends it, and the replayed program
/// with it, rather than being noted and ignored). A request that came in
/// meanwhile ends the process now, as it would have.
pub fn release_termination() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with SIG_DFL is valid.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    if let Some(sig) = take_request() {
        // SAFETY: raising a signal whose action is now the default.
        unsafe {
            libc::raise(sig);
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

/// The termination signal received and not yet taken, if any (it stays
/// for [`take_request`]): long work polls it to stop early.
pub fn pending_request() -> Option<i32> {
    match REQUEST.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The calling thread's signal mask (bit `n - 1` for signal `n`): what a
/// process it forks starts with, and keeps across `execve`.
pub fn current_mask() -> u64 {
    // SAFETY: a zeroed sigset_t is valid; pthread_sigmask with SIG_BLOCK and
    // a null new set only writes the current mask into `old`.
    let old = unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        old
    };
    (1..=64)
        // SAFETY: sigismember reads an initialized sigset_t.
        .filter(|&sig| unsafe { libc::sigismember(&old, sig) } == 1)
        .fold(0u64, |m, sig| m | 1 << (sig - 1))
}

/// The signals this process ignores (`SIG_IGN`; bit `n - 1` for signal
/// `n`): what a program it execs starts with ignored.
pub fn ignored() -> u64 {
    (1..=64)
        .filter(|&sig| {
            // SAFETY: a zeroed sigaction is valid; a null new action only
            // reads the current one into `old`. Invalid numbers fail and
            // count as not ignored.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            }
        })
        .fold(0u64, |m, sig| m | 1 << (sig - 1))
}

/// Starts a thread that runs `f` with every signal blocked, so that the
/// recorder's own signals (the ticks, termination requests, SIGCHLD) always
/// reach the thread that waits for its tracees and are never taken, and
/// lost as an interruption, by a helper.
pub fn spawn_without_signals<F, T>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    // The new thread inherits the mask it is created under.
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old))?;
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(f);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    spawned
}
