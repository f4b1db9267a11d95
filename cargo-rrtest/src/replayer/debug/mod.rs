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
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Error, ReplayError, ReplayOptions, Thread};
/// The general registers (`struct user_regs_struct`), as returned by
/// [`Debugger::registers`].
pub use rrtest_sys::ptrace::Regs;
use rrtest_trace::{ExitStatus, Tid};

/// How to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Run until a breakpoint, a watchpoint, an interrupt or the end (or,
    /// in reverse, the start).
    Continue,
    /// Execute one instruction of this thread (other threads run as the
    /// recording ran them, and may stop first at a breakpoint).
    Step(Tid),
}

/// Which way to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// As the program ran.
    Forward,
    /// Backwards, to the last stop before the current position.
    Reverse,
}

/// What a watchpoint watches for. x86 has no read-only condition: `Read`
/// stops at reads and writes alike (reported as `Read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// Writes.
    Write,
    /// Reads (and writes: see the type's doc).
    Read,
    /// Reads and writes.
    Access,
}

/// Why a resume stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Thread `tid` is at breakpoint `addr` (about to execute it).
    Breakpoint {
        /// The thread (recorded id).
        tid: Tid,
        /// The breakpoint's address (the thread's ip).
        addr: u64,
    },
    /// Thread `tid` accessed watched memory. Forward: just after (the
    /// instruction that did is complete; the memory holds the new value).
    /// Reverse: at that instruction, before it executes (the memory holds
    /// the value from before; a forward resume executes it and stops after
    /// it again), as gdb expects of a reverse watchpoint stop.
    Watchpoint {
        /// The thread (recorded id).
        tid: Tid,
        /// The watched address (as set).
        addr: u64,
        /// The watchpoint's kind.
        kind: WatchKind,
    },
    /// Thread `tid` executed one instruction (a `syscall`, or a patched
    /// syscall or `rdtsc` site with its stub, counts as one).
    Stepped {
        /// The thread (recorded id).
        tid: Tid,
    },
    /// A recorded signal is about to be delivered to `tid`. (Not reported
    /// yet: signals are delivered as recorded without a stop.)
    Signal {
        /// The thread (recorded id).
        tid: Tid,
        /// The signal.
        signo: i32,
    },
    /// Forward: the program ended, as recorded.
    Exited(ExitStatus),
    /// Reverse: the start of the replay (the first instruction after exec).
    ReplayStart,
    /// [`Interrupter::interrupt`] stopped the replay.
    Interrupted {
        /// The thread that was running (or the current one, between events).
        tid: Tid,
    },
}

/// The x87/SSE registers (`struct user_fpregs_struct`, the FXSAVE layout)
/// and, when the kernel gives the XSAVE state, the AVX upper halves.
#[derive(Clone, PartialEq, Eq)]
pub struct FpRegs {
    /// The 512-byte FXSAVE area: fcw at 0, fsw at 2, ftw at 4 (abridged),
    /// fop at 6, fip at 8, fdp at 16, mxcsr at 24, st0-7 at 32 (16 bytes
    /// apart, 10 used), xmm0-15 at 160 (16 bytes each).
    pub fxsave: [u8; 512],
    /// ymm0-15's upper 128 bits, when the thread has AVX state.
    pub ymm_hi: Option<[[u8; 16]; 16]>,
}

impl std::fmt::Debug for FpRegs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FpRegs")
            .field("mxcsr", &format_args!("{:#x}", self.mxcsr()))
            .field("xmm0", &self.xmm(0))
            .field("avx", &self.ymm_hi.is_some())
            .finish()
    }
}

impl FpRegs {
    /// The x87 control word.
    pub fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.fxsave[0], self.fxsave[1]])
    }

    /// MXCSR.
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes(self.fxsave[24..28].try_into().unwrap_or([0; 4]))
    }

    /// x87 register `st(i)` (80 bits), `i` < 8.
    pub fn st(&self, i: usize) -> [u8; 10] {
        let at = 32 + 16 * (i % 8);
        self.fxsave[at..at + 10].try_into().unwrap_or([0; 10])
    }

    /// SSE register `xmm(i)`, `i` < 16.
    pub fn xmm(&self, i: usize) -> [u8; 16] {
        let at = 160 + 16 * (i % 16);
        self.fxsave[at..at + 16].try_into().unwrap_or([0; 16])
    }
}

/// What the engine thread is asked (see `session/debugger.rs`).
#[derive(Debug)]
pub(crate) enum Request {
    Threads,
    Current,
    RealPid,
    Registers(Tid),
    FpRegisters(Tid),
    Read { tid: Tid, addr: u64, len: usize },
    SetBreakpoint(u64),
    RemoveBreakpoint(u64),
    SetWatchpoint(Watch),
    RemoveWatchpoint(Watch),
    Resume(Resume, Direction),
}

/// A watchpoint as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Watch {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

/// The engine thread's answers, one per [`Request`], in order.
#[derive(Debug)]
pub(crate) enum Answer {
    Threads(Vec<Thread>),
    Current(Tid),
    Registers(Result<Regs, ReplayError>),
    FpRegisters(Result<Box<FpRegs>, ReplayError>),
    Memory(Result<Vec<u8>, ReplayError>),
    Done(Result<(), ReplayError>),
    Stopped(Result<Stop, ReplayError>),
}

/// What the engine thread tells about itself once the replay started.
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub real_pid: i32,
    pub exe: PathBuf,
}

/// Shared between the [`Debugger`], its [`Interrupter`]s and the engine.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// An interrupt was asked and not yet reported.
    pub interrupt: AtomicBool,
    /// The thread running now: `real_pid << 32 | real_tid`, 0 when none.
    pub running: AtomicI64,
    /// `SIGSTOP`s sent to stop a running thread, not yet seen by the engine.
    pub stops_sent: AtomicI64,
}

/// The engine thread's ends of the channels.
pub(crate) struct Link {
    pub requests: Receiver<Request>,
    pub answers: Sender<Answer>,
    pub shared: Arc<Shared>,
}

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
            .spawn(move || super::session::debugger::run(opts, link, start_tx))
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
