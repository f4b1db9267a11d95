//! [`Engine`] for the replayer's [`Debugger`]: the two vocabularies mapped
//! onto each other, and the registers of both register sets merged into
//! gdb's one.
//!
//! This file must not add behaviour: every method is one call.

use std::path::PathBuf;

use rrtest_trace::Tid;

use super::arch::GdbRegs;
use super::engine::{Direction, Engine, Resume, Stop, WatchKind};
use crate::replayer::debug::{self, Debugger};
use crate::replayer::{ReplayError, ReplayOptions};

/// A debugger, with the recorded pid of the debugged process (the
/// program's first thread: its main thread).
#[derive(Debug)]
pub struct Debugged {
    debugger: Debugger,
    pid: Tid,
}

/// Starts the replay of `opts` under a debugger, stopped at the program's
/// first instruction.
pub fn start(opts: &ReplayOptions) -> Result<Debugged, ReplayError> {
    let debugger = Debugger::start(opts)?;
    let pid = debugger.current_thread();
    Ok(Debugged { debugger, pid })
}

fn watch(kind: WatchKind) -> debug::WatchKind {
    match kind {
        WatchKind::Write => debug::WatchKind::Write,
        WatchKind::Read => debug::WatchKind::Read,
        WatchKind::Access => debug::WatchKind::Access,
    }
}

impl Engine for Debugged {
    fn threads(&self) -> Vec<Tid> {
        self.debugger
            .threads()
            .into_iter()
            .map(|t| t.recorded)
            .collect()
    }

    fn current_thread(&self) -> Tid {
        self.debugger.current_thread()
    }

    fn registers(&self, tid: Tid) -> Result<GdbRegs, ReplayError> {
        let mut regs = GdbRegs::from_user_regs(&self.debugger.registers(tid)?);
        regs.set_fxsave(&self.debugger.fp_registers(tid)?.fxsave);
        Ok(regs)
    }

    fn read_memory(&self, tid: Tid, addr: u64, len: usize) -> Result<Vec<u8>, ReplayError> {
        self.debugger.read_memory(tid, addr, len)
    }

    fn set_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError> {
        self.debugger.set_breakpoint(addr)
    }

    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), ReplayError> {
        self.debugger.remove_breakpoint(addr)
    }

    fn set_watchpoint(&mut self, addr: u64, len: u64, kind: WatchKind) -> Result<(), ReplayError> {
        self.debugger.set_watchpoint(addr, len, watch(kind))
    }

    fn remove_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> Result<(), ReplayError> {
        self.debugger.remove_watchpoint(addr, len, watch(kind))
    }

    fn resume(&mut self, how: Resume, direction: Direction) -> Result<Stop, ReplayError> {
        let how = match how {
            Resume::Continue => debug::Resume::Continue,
            Resume::Step(tid) => debug::Resume::Step(tid),
        };
        let direction = match direction {
            Direction::Forward => debug::Direction::Forward,
            Direction::Reverse => debug::Direction::Reverse,
        };
        let kind = |k: debug::WatchKind| match k {
            debug::WatchKind::Write => WatchKind::Write,
            debug::WatchKind::Read => WatchKind::Read,
            debug::WatchKind::Access => WatchKind::Access,
        };
        Ok(match self.debugger.resume(how, direction)? {
            debug::Stop::Breakpoint { tid, addr } => Stop::Breakpoint { tid, addr },
            debug::Stop::Watchpoint { tid, addr, kind: k } => Stop::Watchpoint {
                tid,
                addr,
                kind: kind(k),
            },
            debug::Stop::Stepped { tid } => Stop::Stepped { tid },
            debug::Stop::Signal { tid, signo } => Stop::Signal { tid, signo },
            debug::Stop::Exited(status) => Stop::Exited(status),
            debug::Stop::ReplayStart => Stop::ReplayStart,
            debug::Stop::Interrupted { tid } => Stop::Interrupted { tid },
        })
    }

    fn interrupter(&self) -> Box<dyn Fn() + Send> {
        let interrupter = self.debugger.interrupter();
        Box::new(move || interrupter.interrupt())
    }

    fn real_pid(&self) -> i32 {
        self.debugger.real_pid()
    }

    fn recorded_pid(&self) -> Tid {
        self.pid
    }

    fn real_tid(&self, tid: Tid) -> Option<i32> {
        self.debugger
            .threads()
            .into_iter()
            .find(|t| t.recorded == tid)
            .map(|t| t.real)
    }

    fn exe(&self) -> PathBuf {
        self.debugger.exe().to_path_buf()
    }
}
