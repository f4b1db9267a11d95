//! The debugger's vocabulary: the public words of its API ([`Resume`],
//! [`Direction`], [`WatchKind`], [`Stop`], [`FpRegs`]) and the messages the
//! client (`debug/mod.rs`) and the engine thread (`session/debugger.rs`)
//! exchange ([`Request`], [`Answer`], [`Link`], [`Shared`]). Both sides
//! import it; it imports neither.
//!
//! This file must not hold behaviour beyond reading a register set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use crate::replayer::{ReplayError, Thread};
use rrtest_sys::ptrace::Regs;
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
    /// A recorded signal is about to be delivered to `tid` (between
    /// events, before its handler runs; the next forward resume delivers
    /// it). Reported while the user drives, not by reverse re-runs.
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
    /// [`Interrupter::interrupt`](super::Interrupter::interrupt) stopped the
    /// replay (a reverse resume too: then where its re-run was). Never
    /// inside the syscall buffer's code: a thread interrupted there is
    /// single-stepped out first.
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

/// Shared between the [`Debugger`](super::Debugger), its
/// [`Interrupter`](super::Interrupter)s and the engine.
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
