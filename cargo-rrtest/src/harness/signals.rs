//! Ctrl-C handling without `unsafe`, for `run`, `replay` and `verify`:
//! SIGINT, SIGTERM and SIGHUP are blocked in the calling (main) thread
//! before any other thread starts, so every thread inherits the mask, and
//! one thread takes them with sigwait(2). The first sets the cancel flag,
//! remembers the signal and calls the hook set with [`on_cancel`] (a replay
//! kills its tracees there); workers then kill their tests' process groups
//! and stop, and the command exits with [`exit_code`] once it has cleaned
//! up. A second signal ends the process at once. A SIGHUP ignored when we
//! started (`nohup`) stays ignored; SIGINT and SIGTERM are taken even then
//! (a non-interactive shell starts background jobs with SIGINT ignored).
//!
//! Children inherit the spawning thread's signal mask, so attempts are
//! spawned through `sys::spawn::with_empty_signal_mask`: tests and recorders
//! start with nothing blocked, as under `cargo test`. (A replay tracee
//! starts with the mask its recording says.)
//!
//! It also names signals for people ([`signal_name`]: reports, summaries,
//! `diff`).
//!
//! This module must not do more than note the signal and call the hook:
//! what to kill and what to clean up is the command's business.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{SigSet, Signal};

/// Exit status of a run stopped by SIGINT (128 + 2, the shell convention);
/// SIGTERM gives 143 and SIGHUP 129 (see [`exit_code`]).
pub const INTERRUPTED_EXIT: u8 = 130;

/// Set at the first signal, once [`cancel_flag`] installed the handler.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// The signal that cancelled the command (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Called once, on the signal thread, at the first signal.
static HOOK: Mutex<Option<fn()>> = Mutex::new(None);

/// Installs the handler (once) and returns the cancel flag.
pub fn cancel_flag() -> &'static AtomicBool {
    static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag: &'static AtomicBool = &CANCELLED;
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        // `nohup` ignores SIGHUP: that stays so. (SIGINT and SIGTERM are
        // taken even when inherited ignored, as a shell does for
        // background jobs: whoever sends them means to stop us.)
        if rrtest_sys::signals::ignored() & (1 << (libc::SIGHUP - 1)) == 0 {
            set.add(Signal::SIGHUP);
        }
        if set.thread_block().is_ok() {
            let spawned = std::thread::Builder::new()
                .name("rrtest-signals".into())
                .spawn(move || loop {
                    if let Ok(sig) = set.wait() {
                        if flag.swap(true, Ordering::SeqCst) {
                            std::process::exit(i32::from(code_of(sig as i32)));
                        }
                        SIGNAL.store(sig as i32, Ordering::SeqCst);
                        let hook = *HOOK.lock().unwrap_or_else(|e| e.into_inner());
                        eprintln!(
                            "cargo-rrtest: {}: stopping (send it again to exit now)",
                            sig.as_str()
                        );
                        if let Some(hook) = hook {
                            hook();
                        }
                    }
                });
            if spawned.is_err() {
                let _ = set.thread_unblock();
            }
        }
        flag
    })
}

/// Sets the function the signal thread calls at the first signal (after
/// setting the flag). It runs on that thread: it may only send signals and
/// set flags.
pub fn on_cancel(hook: fn()) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
}

/// The signal that cancelled the command, if one did.
pub fn received() -> Option<Signal> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Signal::try_from(s).ok(),
    }
}

/// Whether a signal cancelled the command (always false unless
/// [`cancel_flag`] installed the handler; this does not install it).
pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// The exit status for the signal received: 128 + its number (130 for
/// SIGINT, 143 for SIGTERM, 129 for SIGHUP); 130 when none was recorded.
pub fn exit_code() -> u8 {
    code_of(SIGNAL.load(Ordering::SeqCst))
}

/// A signal's name (`SIGKILL` for 9), or `signal N` for a number with none.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

fn code_of(sig: i32) -> u8 {
    match u8::try_from(sig) {
        Ok(s @ 1..=64) => 128 + s,
        _ => INTERRUPTED_EXIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(code_of(libc::SIGINT), 130);
        assert_eq!(code_of(libc::SIGTERM), 143);
        assert_eq!(code_of(libc::SIGHUP), 129);
        assert_eq!(code_of(0), INTERRUPTED_EXIT);
    }
}
