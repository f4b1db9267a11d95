//! A replay that stops making progress (a tracee blocked where the recording
//! says it ran on: a bug, or a trace we cannot reproduce) must end with an
//! error, never hang `verify`, `replay` or a test run. A watchdog thread
//! watches the replayed event index (and the debugger's single steps);
//! when neither has moved for [`STALL_LIMIT`] while the replayer was busy
//! replaying, it SIGKILLs the replay's tracees (again at each tick, reaping
//! the dead ones that are not a process's main thread, see
//! [`Watchdog::kill_all`]), and the replayer, whose `waitpid` then returns,
//! reports the stall.
//!
//! The thread only reads atomics, sends signals and reaps dead tracees
//! (`waitpid`, which any thread of the tracer may call): all ptrace
//! requests stay on the replayer's own thread, as ptrace requires.
//!
//! The same thread ends a replay its command was told to stop (Ctrl-C,
//! SIGTERM, SIGHUP: [`interrupt`], called from the command's signal
//! thread): it SIGKILLs the tracees of every live replay, at once and again
//! at each tick (a tracee noted after the signal dies too), and the
//! replayer's `waitpid` returns an error the command then reports as the
//! interruption ([`interrupted`]), after its usual clean-up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Set by [`interrupt`]: every replay of this process is to end.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The watchdogs of the replays in progress.
static LIVE: Mutex<Vec<Weak<Watchdog>>> = Mutex::new(Vec::new());

/// Ends every replay in progress in this process, and any started later:
/// their tracees are killed, and each replay returns an error. Only sets a
/// flag and sends signals (safe to call from a signal-handling thread).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let live = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for dog in live.iter().filter_map(Weak::upgrade) {
        dog.kill_all();
    }
}

/// Whether [`interrupt`] was called: a replay error is then the interruption.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How long replay may sit on one event.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Shared between the replayer and its watchdog thread.
#[derive(Debug, Default)]
pub struct Watchdog {
    /// The event the replayer is on.
    pub index: AtomicU64,
    /// Real (replay) thread ids to kill on a stall: (pid, tid).
    pub tracees: Mutex<Vec<(i32, i32)>>,
    /// Set while the replayer replays an event: only that time counts
    /// (a driver of `Replay` may look at a stop for as long as it likes).
    pub busy: AtomicBool,
    /// Single steps the debugger made: progress inside one event (a
    /// reverse step's counting re-run), so the stall clock restarts.
    pub steps: AtomicU64,
    /// Set when the watchdog fired.
    pub fired: AtomicBool,
    /// Set when the replay ended; the thread exits.
    pub done: AtomicBool,
}

impl Watchdog {
    /// Starts the watchdog thread.
    pub fn start() -> Arc<Watchdog> {
        let dog = Arc::new(Watchdog::default());
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&dog));
        }
        // A weak reference: the replay's end drops the watchdog, and the
        // thread sees that at its next tick (a strong one kept it, and the
        // thread, alive for ever, and a fired one would go on killing the
        // ids it noted).
        let weak = Arc::downgrade(&dog);
        let spawned = std::thread::Builder::new()
            .name("rrtest-replay-watchdog".into())
            .spawn(move || {
                let tick = Duration::from_millis(100);
                let mut last = (u64::MAX, 0);
                let mut still = Duration::ZERO;
                loop {
                    std::thread::sleep(tick);
                    let Some(seen) = weak.upgrade() else { return };
                    if seen.done.load(Ordering::SeqCst) {
                        return;
                    }
                    if interrupted() || seen.fired.load(Ordering::SeqCst) {
                        seen.kill_all();
                        continue;
                    }
                    let now = (
                        seen.index.load(Ordering::SeqCst),
                        seen.steps.load(Ordering::Relaxed),
                    );
                    if now != last || !seen.busy.load(Ordering::SeqCst) {
                        last = now;
                        still = Duration::ZERO;
                        continue;
                    }
                    still += tick;
                    if still >= STALL_LIMIT {
                        seen.fired.store(true, Ordering::SeqCst);
                        seen.kill_all();
                    }
                }
            });
        if spawned.is_err() {
            tracing::warn!("could not start the replay watchdog; a stalled replay will hang");
        }
        dog
    }

    /// Notes a new tracee thread.
    pub fn watch(&self, pid: i32, tid: i32) {
        if let Ok(mut t) = self.tracees.lock() {
            t.push((pid, tid));
        }
        if interrupted() {
            self.kill_all();
        }
    }

    /// SIGKILLs every tracee thread noted, and reaps those that are dead
    /// and not their process's main thread. A traced thread stays a zombie
    /// until its tracer reaps it, and the kernel holds back the main
    /// thread's death (and an `execve` in progress) until its other
    /// threads are reaped: the replayer, blocked waiting for one thread,
    /// would wait for ever. Any thread of the tracer may reap its tracees.
    fn kill_all(&self) {
        let tracees = self.tracees.lock().map(|t| t.clone()).unwrap_or_default();
        for &(pid, tid) in &tracees {
            let _ = rrtest_sys::ptrace::tgkill(pid, tid, libc::SIGKILL);
        }
        for &(pid, tid) in &tracees {
            if pid != tid {
                let _ = rrtest_sys::ptrace::wait_tid_nohang(tid);
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}
