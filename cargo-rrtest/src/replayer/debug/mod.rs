//! The replay debugger engine: a [`Debugger`] stops a verified replay
//! *between* events (software breakpoints, single steps, hardware
//! watchpoints, an interrupt), resumes it, and goes backwards by re-running
//! the deterministic replay from the start.
//!
//! This file owns the public API and the client side of it: the replay
//! itself runs on an OS thread of its own, the *engine thread* (ptrace ties
//! tracees to the thread that spawned them), which is the only thread that
//! makes ptrace requests; every method here sends it a [`Request`] and
//! waits for its [`Answer`]. The engine's logic (where a stop happens
//! inside an event, positions, reverse execution) is the session's:
//! `replayer/session/debugger.rs`. This file must not touch a tracee.
//!
//! A divergence during a resume is an `Err` from [`Debugger::resume`]: the
//! replay stays verified while it is debugged, and a session that diverged
//! cannot go on (later calls return [`Error::Ended`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Error, ReplayError, ReplayOptions, Thread};
/// The general registers (`struct user_regs_struct`), as returned by
/// [`Debugger::registers`].
pub use rrtest_sys::ptrace::Regs;
use rrtest_trace::Tid;

pub(crate) mod protocol;
pub(crate) use protocol::{Answer, Link, Request, Shared, Watch};
pub use protocol::{Direction, FpRegs, Resume, Stop, WatchKind};

/// A debugger over a replay. See the module doc. It is `Send` (the
/// tracees belong to its engine thread, not to the caller's) but not `Sync`:
/// one caller at a time.
pub struct Debugger {
    requests: Option<Sender<Request>>,
    answers: Receiver<Answer>,
    shared: Arc<Shared>,
    engine: Option<JoinHandle<()>>,
    real_pid: i32,
    exe: PathBuf,
    /// The replay failed or the engine is gone: why, for every later call.
    ended: std::cell::RefCell<Option<String>>,
}

impl std::fmt::Debug for Debugger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debugger")
            .field("real_pid", &self.real_pid)
            .field("exe", &self.exe)
            .finish()
    }
}

/// Stops a running [`Debugger::resume`] from another thread (Ctrl-C): the
/// resume returns [`Stop::Interrupted`] soon after.
#[derive(Debug, Clone)]
pub struct Interrupter {
    shared: Arc<Shared>,
}

impl Interrupter {
    /// Asks the running resume to stop. Harmless when none runs: the next
    /// resume then stops before it runs anything.
    pub fn interrupt(&self) {
        self.shared.interrupt.store(true, Ordering::SeqCst);
        let running = self.shared.running.load(Ordering::SeqCst);
        if running != 0 {
            let (pid, tid) = ((running >> 32) as i32, running as i32);
            self.shared.stops_sent.fetch_add(1, Ordering::SeqCst);
            if rrtest_sys::ptrace::tgkill(pid, tid, libc::SIGSTOP).is_err() {
                self.shared.stops_sent.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl Debugger {
    /// Starts the replay of the trace in `opts.trace_dir`, stopped at the
    /// program's first instruction after its exec (before event 1).
    pub fn start(opts: &ReplayOptions) -> Result<Debugger, ReplayError> {
        Debugger::start_process(opts, None)
    }

    /// [`Debugger::start`], debugging the recorded process `process` (its
    /// recorded pid; `None`: the program's first process) of a recorded
    /// tree: the replay runs (unstopped) until that process exists, and
    /// stops at its first instruction (for a forked one, the return from
    /// `fork` in the child). Breakpoints, watchpoints, steps, threads and
    /// signal stops are that process's; the others run through them. A
    /// reverse resume back to the start stops there again.
    pub fn start_process(
        opts: &ReplayOptions,
        process: Option<Tid>,
    ) -> Result<Debugger, ReplayError> {
        let (req_tx, req_rx) = channel();
        let (ans_tx, ans_rx) = channel();
        let (start_tx, start_rx) = channel();
        let shared = Arc::new(Shared::default());
        let link = Link {
            requests: req_rx,
            answers: ans_tx,
            shared: Arc::clone(&shared),
        };
        let opts = opts.clone();
        let engine = std::thread::Builder::new()
            .name("rrtest-debug-engine".into())
            .spawn(move || super::session::debugger::run(opts, process, link, start_tx))
            .map_err(|source| Error::Spawn {
                program: "the replay debugger's engine thread".into(),
                source,
            })?;
        let started = match start_rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = engine.join();
                return Err(e);
            }
            Err(_) => {
                let _ = engine.join();
                return Err(gone("the engine thread ended while starting"));
            }
        };
        Ok(Debugger {
            requests: Some(req_tx),
            answers: ans_rx,
            shared,
            engine: Some(engine),
            real_pid: started.real_pid,
            exe: started.exe,
            ended: std::cell::RefCell::new(None),
        })
    }

    fn ask(&self, req: Request) -> Result<Answer, ReplayError> {
        if let Some(why) = self.ended.borrow().as_ref() {
            return Err(gone(why));
        }
        let sent = self.requests.as_ref().map(|r| r.send(req));
        match (sent, self.answers.recv()) {
            (Some(Ok(())), Ok(a)) => Ok(a),
            _ => {
                *self.ended.borrow_mut() = Some("the replay ended".into());
                Err(gone("the replay ended"))
            }
        }
    }

    /// The live threads of the replay (recorded ids), stopped.
    pub fn threads(&self) -> Vec<Thread> {
        match self.ask(Request::Threads) {
            Ok(Answer::Threads(t)) => t,
            _ => Vec::new(),
        }
    }

    /// The thread that stopped last (at the start: the program's first thread).
    pub fn current_thread(&self) -> Tid {
        match self.ask(Request::Current) {
            Ok(Answer::Current(t)) => t,
            _ => 0,
        }
    }

    /// The general registers of `tid` (`fs_base`, `gs_base` included).
    pub fn registers(&self, tid: Tid) -> Result<Regs, ReplayError> {
        match self.ask(Request::Registers(tid))? {
            Answer::Registers(r) => r,
            other => Err(confused(other)),
        }
    }

    /// The x87/SSE (and AVX, when present) registers of `tid`.
    pub fn fp_registers(&self, tid: Tid) -> Result<FpRegs, ReplayError> {
        match self.ask(Request::FpRegisters(tid))? {
            Answer::FpRegisters(r) => r.map(|b| *b),
            other => Err(confused(other)),
        }
    }

    /// `len` bytes at `addr` in `tid`'s address space, as the program sees
    /// them (breakpoints hidden).
    pub fn read_memory(&self, tid: Tid, addr: u64, len: usize) -> Result<Vec<u8>, ReplayError> {
        match self.ask(Request::Read { tid, addr, len })? {
            Answer::Memory(r) => r,
            other => Err(confused(other)),
        }
    }

    /// Sets a software breakpoint at `addr` in the debugged process (an
    /// existing one is kept).
    pub fn set_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError> {
        self.done(Request::SetBreakpoint(addr))
    }

    /// Removes the breakpoint at `addr` (an error when there is none).
    pub fn remove_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError> {
        self.done(Request::RemoveBreakpoint(addr))
    }

    /// Sets a hardware watchpoint over `len` bytes at `addr` (1, 2, 4 or 8,
    /// aligned to its length; at most three at once).
    pub fn set_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> Result<(), ReplayError> {
        self.done(Request::SetWatchpoint(Watch { addr, len, kind }))
    }

    /// Removes a watchpoint set with the same arguments.
    pub fn remove_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> Result<(), ReplayError> {
        self.done(Request::RemoveWatchpoint(Watch { addr, len, kind }))
    }

    /// Resumes the replay and waits until it stops. An `Err` is the end
    /// of the session (a divergence, a stall, a failed ptrace request).
    pub fn resume(&mut self, how: Resume, dir: Direction) -> Result<Stop, ReplayError> {
        match self.ask(Request::Resume(how, dir))? {
            Answer::Stopped(Ok(stop)) => Ok(stop),
            Answer::Stopped(Err(e)) => {
                *self.ended.borrow_mut() = Some(format!("the replay failed: {e}"));
                Err(e)
            }
            other => Err(confused(other)),
        }
    }

    /// A handle that stops a running [`Debugger::resume`] from another thread.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The real pid of the debugged process (for `/proc/PID/maps`, `auxv`).
    /// A reverse resume re-runs the replay: the pid changes then.
    pub fn real_pid(&self) -> i32 {
        match self.ask(Request::RealPid) {
            Ok(Answer::Current(pid)) => pid,
            _ => self.real_pid,
        }
    }

    /// The program file gdb should load symbols from: the trace's copy of
    /// the program the recording started with.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    fn done(&mut self, req: Request) -> Result<(), ReplayError> {
        match self.ask(req)? {
            Answer::Done(r) => r,
            other => Err(confused(other)),
        }
    }
}

impl Drop for Debugger {
    /// Ends the replay: the engine thread kills and reaps every tracee.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(engine) = self.engine.take() {
            let _ = engine.join();
        }
    }
}

fn gone(why: &str) -> ReplayError {
    Error::Ended {
        index: 0,
        why: why.to_string(),
    }
    .into()
}

fn confused(a: Answer) -> ReplayError {
    gone(&format!("the engine answered out of turn ({a:?})"))
}
