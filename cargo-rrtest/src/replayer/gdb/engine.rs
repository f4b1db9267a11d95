//! What the gdb server needs from a debugger engine, as a trait
//! ([`Engine`]) with its own small vocabulary ([`Resume`], [`Direction`],
//! [`Stop`], [`WatchKind`]). The replayer's debugger implements it in
//! `adapter.rs`; the protocol side (`target.rs`) sees only this, so that
//! it can be read (and tried) without a replay.
//!
//! This file must not hold logic: it names operations.

use std::path::PathBuf;

use rrtest_trace::{ExitStatus, Tid};

use super::arch::GdbRegs;
use crate::replayer::ReplayError;

/// How to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Every thread, in the recorded order, until something stops it.
    Continue,
    /// One instruction of this thread.
    Step(Tid),
}

/// Which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the end of the recording.
    Forward,
    /// Towards its start.
    Reverse,
}

/// A watchpoint's trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// A write.
    Write,
    /// A read.
    Read,
    /// A read or a write.
    Access,
}

/// Why a resume stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A thread reached a breakpoint.
    Breakpoint {
        /// The thread.
        tid: Tid,
        /// The breakpoint's address.
        addr: u64,
    },
    /// A thread touched a watched location.
    Watchpoint {
        /// The thread.
        tid: Tid,
        /// The watched address.
        addr: u64,
        /// What it did.
        kind: WatchKind,
    },
    /// The single step is done.
    Stepped {
        /// The thread.
        tid: Tid,
    },
    /// A signal reached the program, as recorded.
    Signal {
        /// The thread.
        tid: Tid,
        /// The signal.
        signo: i32,
    },
    /// The program ended, as recorded.
    Exited(ExitStatus),
    /// Reverse execution reached the start of the recording.
    ReplayStart,
    /// The interrupter stopped it.
    Interrupted {
        /// The thread it stopped in.
        tid: Tid,
    },
}

/// The operations the gdb server drives. Thread ids are the recorded ones.
pub trait Engine {
    /// The live threads of the debugged process.
    fn threads(&self) -> Vec<Tid>;
    /// The thread of the last stop.
    fn current_thread(&self) -> Tid;
    /// A thread's registers, general and x87/SSE.
    fn registers(&self, tid: Tid) -> Result<GdbRegs, ReplayError>;
    /// `len` bytes of memory at `addr`, as the program sees it.
    fn read_memory(&self, tid: Tid, addr: u64, len: usize) -> Result<Vec<u8>, ReplayError>;
    /// A software breakpoint.
    fn set_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError>;
    /// Removes one.
    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError>;
    /// A hardware watchpoint.
    fn set_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> Result<(), ReplayError>;
    /// Removes one.
    fn remove_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> Result<(), ReplayError>;
    /// Runs until a stop.
    fn resume(&mut self, how: Resume, direction: Direction) -> Result<Stop, ReplayError>;
    /// A callable, from any thread, that makes a running `resume` stop
    /// with [`Stop::Interrupted`].
    fn interrupter(&self) -> Box<dyn Fn() + Send>;
    /// The real pid of the debugged process in this replay.
    fn real_pid(&self) -> i32;
    /// The recorded pid of the debugged process.
    fn recorded_pid(&self) -> Tid;
    /// The real id in this replay of a live recorded thread.
    fn real_tid(&self, tid: Tid) -> Option<i32>;
    /// The debugged program's executable, as it can be read here.
    fn exe(&self) -> PathBuf;
    /// The trace's copy of a file the recording mapped, by the path it had
    /// while recording (the program, its loader, its libraries).
    fn recorded_file(&self, path: &str) -> Option<PathBuf>;
}
