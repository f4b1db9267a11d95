//! What the gdb server needs from a debugger engine, as a trait
//! ([`Engine`]) in the debugger's vocabulary ([`Resume`], [`Direction`],
//! [`Stop`], [`WatchKind`], from `replayer::debug`). The replayer's debugger implements it in
//! `adapter.rs`; the protocol side (`target.rs`) sees only this, so that
//! it can be read (and tried) without a replay.
//!
//! This file must not hold logic: it names operations.

use std::path::PathBuf;

use rrtest_trace::Tid;

use super::arch::GdbRegs;
use crate::replayer::ReplayError;

/// The engine's own vocabulary, shared with the replayer's debugger
/// (one definition: the server speaks it, the engine answers in it).
pub use crate::replayer::debug::{Direction, Resume, Stop, WatchKind};

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
