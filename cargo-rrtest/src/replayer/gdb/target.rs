//! The gdbstub `Target` over an [`Engine`]: registers, memory, threads,
//! breakpoints and watchpoints, forward and reverse resumes, the auxiliary
//! vector, and the refusals (writes to memory or registers, `run`,
//! `attach`), each with an error reply gdb shows.
//!
//! gdbstub asks for a resume by calling the resume methods; this target
//! only notes the request ([`GdbTarget::take_request`]) and the session
//! loop (`session.rs`) runs it, so that the socket can be watched for
//! Ctrl-C while the replay runs. This file must not read or write the
//! socket, and must not change the replayed program in any way.

use std::num::NonZeroUsize;

use gdbstub::common::{Pid, Signal};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{
    ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::extended_mode::{
    Args, AttachKind, CurrentActivePid, CurrentActivePidOps, ExtendedMode, ExtendedModeOps,
    ShouldTerminate,
};
use gdbstub::target::ext::host_io::{
    HostIo, HostIoClose, HostIoCloseOps, HostIoError, HostIoFstat, HostIoFstatOps, HostIoOpen,
    HostIoOpenFlags, HostIoOpenMode, HostIoOpenOps, HostIoOps, HostIoPread, HostIoPreadOps,
    HostIoResult, HostIoStat,
};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use rrtest_trace::{ExitStatus, Tid};

use super::arch::{GdbRegs, X86_64};
use super::engine::{Direction, Engine, Resume, Stop, WatchKind};
use super::hostio::{self, Files};

/// The errno-style code of a refused write in the `E` reply (EPERM). gdb
/// shows it as "Could not write register" / "Cannot access memory".
const REFUSED: u8 = 1;

/// A resume gdb asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// How.
    pub how: Resume,
    /// Which way.
    pub direction: Direction,
}

/// A fatal error of the target: the replay cannot go on.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Fatal(pub crate::replayer::ReplayError);

/// The target gdbstub serves.
pub struct GdbTarget<E: Engine> {
    /// The engine.
    pub engine: E,
    pid: Tid,
    /// The thread a `vCont` steps, if any.
    step: Option<Tid>,
    request: Option<Request>,
    /// The refusals gdb was sent since the last look ([`Self::take_notes`]):
    /// what the user is told on the server's side.
    notes: Vec<String>,
    auxv: Vec<u8>,
    files: Files,
    /// Whether registers include the AVX upper halves (the first thread
    /// had AVX state at the start): one register layout for the session.
    avx: bool,
}

impl<E: Engine> std::fmt::Debug for GdbTarget<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdbTarget")
            .field("pid", &self.pid)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// A Linux x86-64 signal number in gdb's own numbering, which the remote
/// protocol speaks (`enum gdb_signal`: SIGUSR1 is 30 there, SIGBUS 10,
/// SIGCHLD 20), not the host's. Real-time signals: 32 is gdb's 77, 33-63
/// are 45-75, 64 is 78. One gdb has no name for is `UNKNOWN` (143).
pub(crate) fn gdb_signal(linux: i32) -> Signal {
    let n = match linux {
        1..=6 | 8 | 9 | 11 | 13 | 14 | 15 => linux as u8, // the same numbers
        libc::SIGBUS => 10,
        libc::SIGUSR1 => 30,
        libc::SIGUSR2 => 31,
        libc::SIGCHLD => 20,
        libc::SIGCONT => 19,
        libc::SIGSTOP => 17,
        libc::SIGTSTP => 18,
        libc::SIGTTIN => 21,
        libc::SIGTTOU => 22,
        libc::SIGURG => 16,
        libc::SIGXCPU => 24,
        libc::SIGXFSZ => 25,
        libc::SIGVTALRM => 26,
        libc::SIGPROF => 27,
        libc::SIGWINCH => 28,
        libc::SIGIO => 23,
        libc::SIGPWR => 32,
        libc::SIGSYS => 12,
        32 => 77,
        33..=63 => (linux - 33 + 45) as u8,
        64 => 78,
        _ => return Signal::UNKNOWN,
    };
    Signal(n)
}

fn gdb_tid(tid: Tid) -> Option<NonZeroUsize> {
    usize::try_from(tid).ok().and_then(NonZeroUsize::new)
}

fn rec_tid(tid: NonZeroUsize) -> Tid {
    Tid::try_from(tid.get()).unwrap_or(Tid::MAX)
}

impl<E: Engine> GdbTarget<E> {
    /// Serves `engine`. The auxiliary vector is the replayed process's own
    /// (`/proc/PID/auxv`, read once: it does not change after exec) as the
    /// program saw it: `AT_SYSINFO_EHDR` names the recorder's own vDSO
    /// (`tracee::auxv_as_seen`; this is the replay's thread).
    pub fn new(engine: E) -> GdbTarget<E> {
        let kernel = std::fs::read(format!("/proc/{}/auxv", engine.real_pid())).unwrap_or_default();
        let auxv = crate::tracee::auxv_as_seen(&kernel);
        let avx = engine
            .registers(engine.current_thread())
            .is_ok_and(|r| r.ymm_hi.is_some());
        GdbTarget {
            avx,
            pid: engine.recorded_pid(),
            engine,
            step: None,
            request: None,
            notes: Vec::new(),
            auxv,
            files: Files::default(),
        }
    }

    /// The resume gdbstub asked for since the last call, if any.
    pub fn take_request(&mut self) -> Option<Request> {
        self.request.take()
    }

    /// What was refused since the last call, one line each.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The gdbstub stop reason for an engine stop.
    pub fn stop_reason(&self, stop: Stop) -> MultiThreadStopReason<u64> {
        let t = |tid: Tid| gdb_tid(tid).unwrap_or(NonZeroUsize::MIN);
        match stop {
            Stop::Breakpoint { tid, .. } => MultiThreadStopReason::SwBreak(t(tid)),
            Stop::Watchpoint { tid, addr, kind } => MultiThreadStopReason::Watch {
                tid: t(tid),
                kind: match kind {
                    WatchKind::Write => gdbstub::target::ext::breakpoints::WatchKind::Write,
                    WatchKind::Read => gdbstub::target::ext::breakpoints::WatchKind::Read,
                    WatchKind::Access => gdbstub::target::ext::breakpoints::WatchKind::ReadWrite,
                },
                addr,
            },
            Stop::Stepped { tid } => MultiThreadStopReason::SignalWithThread {
                tid: t(tid),
                signal: Signal::SIGTRAP,
            },
            Stop::Signal { tid, signo } => MultiThreadStopReason::SignalWithThread {
                tid: t(tid),
                signal: gdb_signal(signo),
            },
            Stop::Exited(ExitStatus::Exited(code)) => MultiThreadStopReason::Exited(code as u8),
            Stop::Exited(ExitStatus::Signaled { signo, .. }) => {
                MultiThreadStopReason::Terminated(gdb_signal(signo))
            }
            Stop::ReplayStart => MultiThreadStopReason::ReplayLog {
                tid: gdb_tid(self.engine.current_thread()),
                pos: gdbstub::target::ext::base::reverse_exec::ReplayLogPosition::Begin,
            },
            Stop::Interrupted { tid } => MultiThreadStopReason::SignalWithThread {
                tid: t(tid),
                signal: Signal::SIGINT,
            },
        }
    }

    /// The recorded thread gdbstub names, or the current thread when it
    /// names none that is live (a client that never sent `Hg` asks for
    /// "any thread": gdbstub's default id).
    fn live(&self, tid: NonZeroUsize) -> Tid {
        let tid = rec_tid(tid);
        if self.engine.threads().contains(&tid) {
            tid
        } else {
            self.engine.current_thread()
        }
    }

    fn refuse<T>(&mut self, what: &str) -> TargetResult<T, Self> {
        self.notes.push(format!(
            "cargo-rrtest: refused {what}: a replay shows the recording as it was; \
             it cannot be changed (step or continue instead)"
        ));
        Err(TargetError::Errno(REFUSED))
    }
}

impl<E: Engine> Target for GdbTarget<E> {
    type Arch = X86_64;
    type Error = Fatal;

    fn base_ops(&mut self) -> BaseOps<'_, X86_64, Fatal> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_extended_mode(&mut self) -> Option<ExtendedModeOps<'_, Self>> {
        Some(self)
    }

    fn support_auxv(&mut self) -> Option<gdbstub::target::ext::auxv::AuxvOps<'_, Self>> {
        Some(self)
    }

    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }

    fn support_host_io(&mut self) -> Option<HostIoOps<'_, Self>> {
        Some(self)
    }

    fn support_exec_file(
        &mut self,
    ) -> Option<gdbstub::target::ext::exec_file::ExecFileOps<'_, Self>> {
        Some(self)
    }
}

impl<E: Engine> MultiThreadBase for GdbTarget<E> {
    fn read_registers(&mut self, regs: &mut GdbRegs, tid: NonZeroUsize) -> TargetResult<(), Self> {
        let tid = self.live(tid);
        match self.engine.registers(tid) {
            Ok(mut r) => {
                // The session's layout: zeros for a thread without AVX
                // state (its initial state), none if the session has none.
                r.ymm_hi = match (self.avx, r.ymm_hi) {
                    (true, hi) => Some(hi.unwrap_or([[0; 16]; 16])),
                    (false, _) => None,
                };
                *regs = r;
                Ok(())
            }
            Err(_) => Err(TargetError::NonFatal),
        }
    }

    fn write_registers(&mut self, _regs: &GdbRegs, _tid: NonZeroUsize) -> TargetResult<(), Self> {
        self.refuse("a register write")
    }

    fn read_addrs(
        &mut self,
        start: u64,
        data: &mut [u8],
        tid: NonZeroUsize,
    ) -> TargetResult<usize, Self> {
        let tid = self.live(tid);
        if let Ok(bytes) = self.engine.read_memory(tid, start, data.len()) {
            let n = bytes.len().min(data.len());
            data[..n].copy_from_slice(&bytes[..n]);
            return Ok(n);
        }
        // Part of the range is unmapped: what can be read, page by page.
        let mut done = 0;
        while done < data.len() {
            let addr = start.wrapping_add(done as u64);
            let to_page_end = (4096 - (addr % 4096)) as usize;
            let len = to_page_end.min(data.len() - done);
            match self.engine.read_memory(tid, addr, len) {
                Ok(bytes) if bytes.len() == len => {
                    data[done..done + len].copy_from_slice(&bytes);
                    done += len;
                }
                _ => break,
            }
        }
        if done == 0 {
            Err(TargetError::Errno(14)) // EFAULT
        } else {
            Ok(done)
        }
    }

    fn write_addrs(
        &mut self,
        start: u64,
        data: &[u8],
        _tid: NonZeroUsize,
    ) -> TargetResult<(), Self> {
        if data.is_empty() {
            // gdb's probe for the `X` packet: refused, but nothing to say.
            return Err(TargetError::Errno(REFUSED));
        }
        self.refuse(&format!(
            "a write to memory at {start:#x} (length {})",
            data.len()
        ))
    }

    fn list_active_threads(
        &mut self,
        thread_is_active: &mut dyn FnMut(NonZeroUsize),
    ) -> Result<(), Fatal> {
        for tid in self.engine.threads() {
            if let Some(t) = gdb_tid(tid) {
                thread_is_active(t);
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<E: Engine> MultiThreadResume for GdbTarget<E> {
    fn resume(&mut self) -> Result<(), Fatal> {
        let how = match self.step.take() {
            Some(tid) => Resume::Step(tid),
            None => Resume::Continue,
        };
        self.request = Some(Request {
            how,
            direction: Direction::Forward,
        });
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Fatal> {
        self.step = None;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        _tid: NonZeroUsize,
        _signal: Option<Signal>,
    ) -> Result<(), Fatal> {
        // A signal gdb passes on is the recorded one, which the replay
        // delivers by itself; a replay cannot take another.
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, NonZeroUsize, Self>> {
        Some(self)
    }

    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, NonZeroUsize, Self>> {
        Some(self)
    }
}

impl<E: Engine> MultiThreadSingleStep for GdbTarget<E> {
    fn set_resume_action_step(
        &mut self,
        tid: NonZeroUsize,
        _signal: Option<Signal>,
    ) -> Result<(), Fatal> {
        self.step = Some(rec_tid(tid));
        Ok(())
    }
}

impl<E: Engine> MultiThreadSchedulerLocking for GdbTarget<E> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Fatal> {
        // Threads run one at a time in a replay, in the recorded order:
        // a step moves only the stepped thread either way.
        Ok(())
    }
}

impl<E: Engine> ReverseCont<NonZeroUsize> for GdbTarget<E> {
    fn reverse_cont(&mut self) -> Result<(), Fatal> {
        self.request = Some(Request {
            how: Resume::Continue,
            direction: Direction::Reverse,
        });
        Ok(())
    }
}

impl<E: Engine> ReverseStep<NonZeroUsize> for GdbTarget<E> {
    fn reverse_step(&mut self, tid: NonZeroUsize) -> Result<(), Fatal> {
        self.request = Some(Request {
            how: Resume::Step(rec_tid(tid)),
            direction: Direction::Reverse,
        });
        Ok(())
    }
}

impl<E: Engine> Breakpoints for GdbTarget<E> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<E: Engine> SwBreakpoint for GdbTarget<E> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.engine.set_breakpoint(addr).is_ok())
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.engine.remove_breakpoint(addr).is_ok())
    }
}

fn watch_kind(kind: gdbstub::target::ext::breakpoints::WatchKind) -> WatchKind {
    use gdbstub::target::ext::breakpoints::WatchKind as W;
    match kind {
        W::Write => WatchKind::Write,
        W::Read => WatchKind::Read,
        W::ReadWrite => WatchKind::Access,
    }
}

impl<E: Engine> HwWatchpoint for GdbTarget<E> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: gdbstub::target::ext::breakpoints::WatchKind,
    ) -> TargetResult<bool, Self> {
        match self.engine.set_watchpoint(addr, len, watch_kind(kind)) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.notes.push(format!(
                    "cargo-rrtest: cannot watch {len} bytes at {addr:#x}: {e}"
                ));
                Ok(false)
            }
        }
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: gdbstub::target::ext::breakpoints::WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self
            .engine
            .remove_watchpoint(addr, len, watch_kind(kind))
            .is_ok())
    }
}

impl<E: Engine> ExtendedMode for GdbTarget<E> {
    fn run(&mut self, _filename: Option<&[u8]>, _args: Args<'_, '_>) -> TargetResult<Pid, Self> {
        self.refuse("`run`: the program is already running from its recording")
    }

    fn attach(&mut self, _pid: Pid) -> TargetResult<(), Self> {
        self.refuse("`attach`: this server debugs its replay only")
    }

    fn query_if_attached(&mut self, _pid: Pid) -> TargetResult<AttachKind, Self> {
        // "Attached": on quit, gdb detaches, and the server ends the replay.
        Ok(AttachKind::Attach)
    }

    fn kill(&mut self, _pid: Option<Pid>) -> TargetResult<ShouldTerminate, Self> {
        Ok(ShouldTerminate::Yes)
    }

    fn restart(&mut self) -> Result<(), Fatal> {
        self.notes.push(
            "cargo-rrtest: refused a restart: start `cargo rrtest replay --gdb` again".to_owned(),
        );
        Ok(())
    }

    fn support_current_active_pid(&mut self) -> Option<CurrentActivePidOps<'_, Self>> {
        Some(self)
    }
}

impl<E: Engine> CurrentActivePid for GdbTarget<E> {
    fn current_active_pid(&mut self) -> Result<Pid, Fatal> {
        Ok(gdb_tid(self.pid).unwrap_or(NonZeroUsize::MIN))
    }
}

/// Copies `data[offset..]` into `buf`, as much as fits: a `qXfer` read.
fn xfer(data: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let n = length.min(buf.len()).min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

impl<E: Engine> TargetDescriptionXmlOverride for GdbTarget<E> {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        if annex != b"target.xml" {
            return Err(TargetError::NonFatal);
        }
        let xml = super::arch::target_xml(self.avx);
        Ok(xfer(xml.as_bytes(), offset, length, buf))
    }
}

impl<E: Engine> gdbstub::target::ext::auxv::Auxv for GdbTarget<E> {
    fn get_auxv(&self, offset: u64, length: usize, buf: &mut [u8]) -> TargetResult<usize, Self> {
        Ok(xfer(&self.auxv, offset, length, buf))
    }
}

impl<E: Engine> gdbstub::target::ext::exec_file::ExecFile for GdbTarget<E> {
    fn get_exec_file(
        &self,
        _pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        use std::os::unix::ffi::OsStrExt;
        let exe = self.engine.exe();
        Ok(xfer(exe.as_os_str().as_bytes(), offset, length, buf))
    }
}

impl<E: Engine> hostio::Ids for GdbTarget<E> {
    fn recorded_pid(&self) -> i32 {
        self.pid
    }

    fn real_pid(&self) -> i32 {
        self.engine.real_pid()
    }

    fn real_tid(&self, tid: i32) -> Option<i32> {
        self.engine.real_tid(tid)
    }
}

impl<E: Engine> HostIo for GdbTarget<E> {
    fn support_open(&mut self) -> Option<HostIoOpenOps<'_, Self>> {
        Some(self)
    }

    fn support_close(&mut self) -> Option<HostIoCloseOps<'_, Self>> {
        Some(self)
    }

    fn support_pread(&mut self) -> Option<HostIoPreadOps<'_, Self>> {
        Some(self)
    }

    fn support_fstat(&mut self) -> Option<HostIoFstatOps<'_, Self>> {
        Some(self)
    }
}

impl<E: Engine> HostIoOpen for GdbTarget<E> {
    fn open(
        &mut self,
        filename: &[u8],
        flags: HostIoOpenFlags,
        _mode: HostIoOpenMode,
    ) -> HostIoResult<u32, Self> {
        let name = String::from_utf8_lossy(filename);
        // A file the recording mapped: the trace's copy, the bytes that
        // ran (this machine's file of that name may differ).
        let path = match self.engine.recorded_file(&name) {
            Some(copy) => copy,
            None => hostio::translate(&name, self),
        };
        let write = flags.intersects(
            HostIoOpenFlags::O_WRONLY
                | HostIoOpenFlags::O_RDWR
                | HostIoOpenFlags::O_CREAT
                | HostIoOpenFlags::O_TRUNC
                | HostIoOpenFlags::O_APPEND,
        );
        if write {
            self.notes.push(format!(
                "cargo-rrtest: refused to open {name} for writing: files are read-only here"
            ));
        }
        self.files.open(path, write).map_err(HostIoError::Errno)
    }
}

impl<E: Engine> HostIoClose for GdbTarget<E> {
    fn close(&mut self, fd: u32) -> HostIoResult<(), Self> {
        self.files.close(fd).map_err(HostIoError::Errno)
    }
}

impl<E: Engine> HostIoPread for GdbTarget<E> {
    fn pread(
        &mut self,
        fd: u32,
        count: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> HostIoResult<usize, Self> {
        let n = count.min(buf.len());
        self.files
            .pread(fd, offset, &mut buf[..n])
            .map_err(HostIoError::Errno)
    }
}

impl<E: Engine> HostIoFstat for GdbTarget<E> {
    fn fstat(&mut self, fd: u32) -> HostIoResult<HostIoStat, Self> {
        self.files.fstat(fd).map_err(HostIoError::Errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfer_reads_windows_and_past_the_end() {
        let data = b"0123456789";
        let mut buf = [0u8; 4];
        assert_eq!(xfer(data, 0, 4, &mut buf), 4);
        assert_eq!(&buf, b"0123");
        assert_eq!(xfer(data, 8, 4, &mut buf), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(xfer(data, 10, 4, &mut buf), 0);
        assert_eq!(xfer(data, u64::MAX, 4, &mut buf), 0);
    }

    #[test]
    fn signals_in_gdbs_numbering() {
        for (linux, gdb) in [
            (libc::SIGINT, Signal::SIGINT),
            (libc::SIGTRAP, Signal::SIGTRAP),
            (libc::SIGABRT, Signal::SIGABRT),
            (libc::SIGSEGV, Signal::SIGSEGV),
            (libc::SIGBUS, Signal::SIGBUS),
            (libc::SIGUSR1, Signal::SIGUSR1),
            (libc::SIGUSR2, Signal::SIGUSR2),
            (libc::SIGCHLD, Signal::SIGCHLD),
            (libc::SIGALRM, Signal::SIGALRM),
            (libc::SIGSYS, Signal::SIGSYS),
            (libc::SIGSTOP, Signal::SIGSTOP),
            (libc::SIGCONT, Signal::SIGCONT),
            (libc::SIGWINCH, Signal::SIGWINCH),
            (34, Signal::SIG34),
            (libc::SIGSTKFLT, Signal::UNKNOWN),
        ] {
            assert_eq!(gdb_signal(linux), gdb, "Linux signal {linux}");
        }
        assert_eq!(gdb_signal(32), Signal(77));
        assert_eq!(gdb_signal(64), Signal(78));
        assert_eq!(gdb_signal(63), Signal(75));
    }
}
