//! [`Engine`] for the replayer's [`Debugger`]: its calls passed through,
//! the registers of both register sets merged into gdb's one, and the
//! trace's copies of the recorded files found by their recorded paths.
//!
//! This file must not add behaviour: every method is one call.

use std::collections::HashMap;
use std::path::PathBuf;

use rrtest_trace::Tid;

use super::arch::GdbRegs;
use super::engine::{Direction, Engine, Resume, Stop, WatchKind};
use super::processes::RecordedProcess;
use crate::replayer::debug::Debugger;
use crate::replayer::{ReplayError, ReplayOptions};

/// A debugger, with the recorded pid of the debugged process (the
/// program's first thread: its main thread) and the program file gdb reads.
#[derive(Debug)]
pub struct Debugged {
    debugger: Debugger,
    pid: Tid,
    exe: PathBuf,
    trace_dir: PathBuf,
    /// Recorded path -> the trace's copy, read from the trace when gdb
    /// first asks for a file.
    files: std::cell::OnceCell<HashMap<String, PathBuf>>,
}

/// Starts the replay of `opts` under a debugger, stopped at the program's
/// first instruction, or, with `process`, at that recorded process's.
pub fn start(
    opts: &ReplayOptions,
    process: Option<&RecordedProcess>,
) -> Result<Debugged, ReplayError> {
    let debugger = Debugger::start_process(opts, process.map(|p| p.pid))?;
    let pid = debugger.current_thread();
    let exe = match process {
        Some(p) => p.exe_copy.clone(),
        None => recorded_program(&opts.trace_dir).unwrap_or_else(|| debugger.exe().to_path_buf()),
    };
    Ok(Debugged {
        debugger,
        pid,
        exe,
        trace_dir: opts.trace_dir.clone(),
        files: std::cell::OnceCell::new(),
    })
}

/// Every file the recording mapped, by the path it had while recording:
/// the program (its exec), its loader (the header's `loaders`), and each
/// file-backed `mmap` (libraries). A trace that cannot be read gives what
/// was read before the error: gdb then reads the rest from this machine.
fn recorded_files(trace_dir: &std::path::Path) -> HashMap<String, PathBuf> {
    use rrtest_trace::{Event, SyscallExtra};
    let mut files = HashMap::new();
    let Ok(mut reader) = rrtest_trace::TraceReader::open(trace_dir) else {
        return files;
    };
    for loader in &reader.header().loaders {
        let copy = reader.file_path(&rrtest_trace::FileId(loader.file.clone()));
        files.insert(loader.path.clone(), copy);
    }
    while let Ok(Some(event)) = reader.next_event() {
        let (path, id) = match event {
            Event::Exec(exec) => (exec.exe, exec.exe_file),
            Event::Syscall(rrtest_trace::SyscallEvent { result, .. })
            | Event::SyscallExit { result, .. } => match result.extra {
                SyscallExtra::MappedFile { file, path } => (path, file),
                _ => continue,
            },
            _ => continue,
        };
        let copy = reader.file_path(&id);
        files.insert(path, copy);
    }
    files
}

/// The trace's copy of the program as exec'd (event 0), byte for byte.
/// The replay runs a private copy whose loader name (`PT_INTERP`) is
/// rewritten to a relative one (`replayer/exe.rs`); gdb, given that copy,
/// looks for a loader by that name and finds none, so it is given this
/// one, which names the recorded loader.
fn recorded_program(trace_dir: &std::path::Path) -> Option<PathBuf> {
    let mut reader = rrtest_trace::TraceReader::open(trace_dir).ok()?;
    match reader.next_event().ok()?? {
        rrtest_trace::Event::Exec(exec) => Some(reader.file_path(&exec.exe_file)),
        _ => None,
    }
}

impl Debugged {
    /// Every file the recording mapped: recorded path -> the trace's copy
    /// (for the session's sysroot).
    pub fn files(&self) -> &HashMap<String, PathBuf> {
        self.files.get_or_init(|| recorded_files(&self.trace_dir))
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
        let fp = self.debugger.fp_registers(tid)?;
        regs.set_fxsave(&fp.fxsave);
        regs.ymm_hi = fp.ymm_hi;
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
        self.debugger.set_watchpoint(addr, len, kind)
    }

    fn remove_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> Result<(), ReplayError> {
        self.debugger.remove_watchpoint(addr, len, kind)
    }

    fn resume(&mut self, how: Resume, direction: Direction) -> Result<Stop, ReplayError> {
        self.debugger.resume(how, direction)
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
        self.exe.clone()
    }

    fn recorded_file(&self, path: &str) -> Option<PathBuf> {
        self.files
            .get_or_init(|| recorded_files(&self.trace_dir))
            .get(path)
            .cloned()
    }
}
