//! The recording event loop and scheduler.
//!
//! Invariant: at most one tracee thread runs user code at any moment (the
//! `current` thread). Other threads are either stopped by us (`Ready`), or
//! inside a syscall we let them enter because it may block (`InSyscall`);
//! those may finish in the kernel while another thread runs, and then wait,
//! stopped, until the scheduler picks them. The order in which the loop
//! writes events is therefore the schedule, and replay follows it.
//!
//! ```text
//!            schedule (emit pending SyscallExit, PTRACE_CONT)
//!   Ready ------------------------------------------------> Running
//!     ^                                                       |
//!     |  exit stop        may-block syscall entry (emit       |
//!     +--------------- InSyscall <--- SyscallEntry, SYSCALL) -+
//!                                                             |
//!       other syscall: SYSCALL, exit stop, emit Syscall, CONT |
//!                                                   <---------+
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use tracing::{debug, trace, warn};

use super::capture::capture;
use super::syscalls::{self, Call, MemReader, ReplayAction};
use super::{Error, RecordOptions};
use crate::sys::ptrace::{self, Regs, WaitEvent};
use crate::sys::spawn::{spawn, SpawnSpec};
use crate::sys::{cpu, seccomp, signals, RemoteMem};
use crate::trace::{
    Event, ExecEvent, ExitStatus, Header, Outcome, SignalEvent, SignalKind, Stats, SyscallEvent,
    SyscallResult, Tid, TraceWriter, FORMAT_VERSION,
};

/// After this many consecutive syscalls of one thread, the scheduler lets
/// another runnable thread run.
const SLICE_SYSCALLS: u32 = 64;

/// The result of a recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// How the recorded program ended.
    pub status: ExitStatus,
    /// Counters, as written to the header.
    pub stats: Stats,
    /// Why the trace is not replayable (empty when it is).
    pub unreplayable: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stopped by us, runnable.
    Ready(Pending),
    /// Inside a syscall whose exit stop has not come yet. `split`: its
    /// `SyscallEntry` was already written and other threads may run.
    InSyscall {
        nr: i64,
        args: [u64; 6],
        split: bool,
        forced_ret: Option<i64>,
    },
    /// The current thread.
    Running,
    /// Announced by a clone event; its first stop has not been seen.
    Unborn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing: resume user code.
    Nothing,
    /// A syscall's exit stop: its `SyscallExit` is written when scheduled.
    Exit {
        nr: i64,
        args: [u64; 6],
        forced_ret: Option<i64>,
    },
}

#[derive(Debug)]
struct Task {
    /// Thread group (process) id.
    pid: Tid,
    state: State,
    /// Registers when last resumed from a stop, to tell a signal delivered
    /// right there (before any user instruction ran: a deterministic point
    /// replay can reproduce) from one that interrupted user code.
    resumed_at: Option<Regs>,
    /// The file an `execve` in progress executes: (the filename as passed,
    /// a path to it the recorder can open).
    exec_file: Option<(String, std::path::PathBuf)>,
    /// The last syscall that returned `-ERESTART_RESTARTBLOCK`: what a
    /// following `restart_syscall` resumes.
    restart_block: Option<Call>,
}

struct Session {
    writer: TraceWriter,
    tasks: BTreeMap<Tid, Task>,
    run_queue: VecDeque<Tid>,
    current: Option<Tid>,
    /// Syscalls the current thread made since it was scheduled.
    slice_syscalls: u32,
    stats: Stats,
    unreplayable: Vec<String>,
    /// The recorded program's process id and how it ended.
    leader: Tid,
    leader_status: Option<ExitStatus>,
}

fn ptrace_err(op: &'static str, tid: Tid) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Ptrace { op, tid, source }
}

fn cstring(s: &std::ffi::OsStr) -> CString {
    CString::new(
        s.as_bytes()
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .expect("NULs were removed")
}

/// Records `opts.program` into `opts.trace_dir`.
pub fn record(opts: &RecordOptions) -> Result<Recording, Error> {
    let header = Header {
        format_version: FORMAT_VERSION,
        recorder_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: rrtest_abi::PROTOCOL_VERSION,
        argv: opts
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exe: opts.program.to_string_lossy().into_owned(),
        env: opts
            .env
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd: opts.cwd.to_string_lossy().into_owned(),
        kernel: kernel_string(),
        cpuid: cpu::cpuid_table(),
        recorded_at: crate::util::rfc3339_now(),
        outcome: None,
        unreplayable: Vec::new(),
        stats: Stats::default(),
        verification: None,
    };
    let mut writer = TraceWriter::create(&opts.trace_dir, header)?;
    signals::catch_termination();

    let spec = SpawnSpec {
        path: cstring(opts.program.as_os_str()),
        argv: opts.argv.iter().map(|a| cstring(a)).collect(),
        envp: opts.env.iter().map(|a| cstring(a)).collect(),
        cwd: Some(cstring(opts.cwd.as_os_str())),
        filter: seccomp::filter(rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED)),
    };
    let pid = spawn(&spec).map_err(|source| Error::Spawn {
        program: opts.program.display().to_string(),
        source,
    })?;
    let facts = crate::tracee::prepare_after_exec(pid)
        .map_err(ptrace_err("preparing the tracee after exec", pid))?;
    let exe_file = writer.add_file(&opts.program)?;
    writer.push(&Event::Exec(ExecEvent {
        tid: pid,
        exe: opts.program.to_string_lossy().into_owned(),
        exe_file,
        at_random: facts.at_random,
        sp: facts.sp,
        ip: facts.ip,
    }))?;

    let mut session = Session {
        writer,
        tasks: BTreeMap::new(),
        run_queue: VecDeque::new(),
        current: None,
        slice_syscalls: 0,
        stats: Stats {
            threads: 1,
            ..Stats::default()
        },
        unreplayable: Vec::new(),
        leader: pid,
        leader_status: None,
    };
    session.tasks.insert(
        pid,
        Task {
            pid,
            state: State::Ready(Pending::Nothing),
            resumed_at: None,
            restart_block: None,
            exec_file: None,
        },
    );
    session.run_queue.push_back(pid);
    let result = session.run();
    if let Err(e) = &result {
        // Leave no tracee behind: PTRACE_O_EXITKILL only fires when we exit.
        for &tid in session.tasks.keys() {
            let _ = ptrace::tgkill(session.tasks[&tid].pid, tid, libc::SIGKILL);
        }
        warn!(error = %e, "recording failed");
    }
    session.finish(result)
}

fn kernel_string() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => "unknown".into(),
    }
}

impl Session {
    fn emit(&mut self, event: Event) -> Result<(), Error> {
        trace!(?event, "event");
        self.writer.push(&event)?;
        Ok(())
    }

    fn unsupported(&mut self, tid: Tid, what: String) -> Result<(), Error> {
        warn!(tid, %what, "unsupported: the trace will not be replayable");
        if !self.unreplayable.contains(&what) {
            self.unreplayable.push(what.clone());
        }
        self.emit(Event::Unsupported { tid, what })
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut interrupts = 0;
        while !self.tasks.is_empty() {
            match signals::take_request() {
                // The terminal's Ctrl-C reaches the program too: let it
                // handle it; a second one ends the recording.
                Some(libc::SIGINT) if interrupts == 0 => interrupts += 1,
                Some(_) => self.kill_all()?,
                None => {}
            }
            if self.current.is_none() {
                self.schedule()?;
            }
            if let Some(ev) = ptrace::wait_any_interruptible().map_err(ptrace_err("waitpid", -1))? {
                self.handle(ev)?;
            }
        }
        Ok(())
    }

    /// Ends the recording now: records that the recorder killed the program
    /// here (a `SIGKILL` signal event, which replay reproduces by killing
    /// at the same point) and kills every tracee. The loop then records
    /// their exits.
    fn kill_all(&mut self) -> Result<(), Error> {
        warn!("termination requested: killing the recorded program");
        self.emit(Event::Signal(SignalEvent {
            tid: self.leader,
            signo: libc::SIGKILL,
            siginfo: vec![0; ptrace::SIGINFO_SIZE],
            kind: SignalKind::AtSyscallExit,
        }))?;
        for (&tid, task) in &self.tasks {
            let _ = ptrace::tgkill(task.pid, tid, libc::SIGKILL);
        }
        Ok(())
    }

    /// Picks the next runnable thread, round robin, and resumes it.
    fn schedule(&mut self) -> Result<(), Error> {
        for _ in 0..self.run_queue.len() {
            let Some(tid) = self.run_queue.pop_front() else {
                break;
            };
            if !self.tasks.contains_key(&tid) {
                continue;
            }
            self.run_queue.push_back(tid);
            if let State::Ready(pending) = self.tasks[&tid].state {
                self.resume(tid, pending)?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Makes `tid` the current thread, writing the exit of the syscall it is
    /// stopped in, if any.
    fn resume(&mut self, tid: Tid, pending: Pending) -> Result<(), Error> {
        self.current = Some(tid);
        self.slice_syscalls = 0;
        let from_exit;
        if let Pending::Exit {
            nr,
            args,
            forced_ret,
        } = pending
        {
            let regs = self.finish_syscall_regs(tid, forced_ret)?;
            let call = Call {
                nr,
                args,
                ret: regs.rax as i64,
            };
            let result = self.capture(tid, &call)?;
            self.emit(Event::SyscallExit { tid, nr, result })?;
            from_exit = Some(regs);
        } else {
            from_exit = ptrace::getregs(tid).ok();
        }
        let task = self.tasks.get_mut(&tid).expect("scheduled task exists");
        task.state = State::Running;
        task.resumed_at = from_exit;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Captures a finished syscall's effects, tracking restart blocks.
    fn capture(&mut self, tid: Tid, call: &Call) -> Result<SyscallResult, Error> {
        const ERESTART_RESTARTBLOCK: i64 = 516;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let restarted = if call.nr == libc::SYS_restart_syscall {
            task.restart_block.take()
        } else {
            None
        };
        if call.ret == -ERESTART_RESTARTBLOCK {
            task.restart_block = Some(*call);
        }
        let mut problems = Vec::new();
        let result = capture(
            tid,
            call,
            restarted.as_ref(),
            &mut self.writer,
            &mut problems,
        );
        for p in problems {
            self.unsupported(tid, p)?;
        }
        Ok(result)
    }

    fn finish_syscall_regs(&mut self, tid: Tid, forced_ret: Option<i64>) -> Result<Regs, Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        if let Some(ret) = forced_ret {
            regs.rax = ret as u64;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        }
        Ok(regs)
    }

    fn handle(&mut self, ev: WaitEvent) -> Result<(), Error> {
        let tid = ev.tid();
        match ev {
            WaitEvent::Exited { code, .. } => self.task_gone(tid, ExitStatus::Exited(code)),
            WaitEvent::Signaled { signo, core, .. } => {
                self.task_gone(tid, ExitStatus::Signaled { signo, core })
            }
            WaitEvent::Event { event, sig, .. } => self.ptrace_event(tid, event, sig),
            WaitEvent::SyscallStop { .. } => self.syscall_exit(tid),
            WaitEvent::Signal { signo, .. } => self.signal(tid, signo),
        }
    }

    fn ptrace_event(&mut self, tid: Tid, event: i32, sig: i32) -> Result<(), Error> {
        match event {
            libc::PTRACE_EVENT_SECCOMP => self.syscall_entry(tid),
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                let child =
                    ptrace::geteventmsg(tid).map_err(ptrace_err("PTRACE_GETEVENTMSG", tid))? as Tid;
                let (flags, same_process) = match self.tasks[&tid].state {
                    State::InSyscall { nr, args, .. } => clone_flags(tid, nr, &args),
                    _ => (libc::SIGCHLD as u64, false),
                };
                let pid = if same_process {
                    self.tasks[&tid].pid
                } else {
                    child
                };
                debug!(parent = tid, child, flags, "new task");
                self.stats.threads += 1;
                match self.tasks.get_mut(&child) {
                    // Its first stop came before our clone event.
                    Some(t) => t.pid = pid,
                    None => {
                        self.tasks.insert(
                            child,
                            Task {
                                pid,
                                state: State::Unborn,
                                resumed_at: None,
                                restart_block: None,
                                exec_file: None,
                            },
                        );
                    }
                }
                if !self.run_queue.contains(&child) {
                    self.run_queue.push_back(child);
                }
                self.emit(Event::NewTask {
                    parent: tid,
                    child,
                    flags,
                })?;
                ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
            }
            libc::PTRACE_EVENT_EXEC => self.exec(tid),
            libc::PTRACE_EVENT_STOP => {
                match self.tasks.get_mut(&tid) {
                    Some(t) if t.state == State::Unborn => {
                        t.state = State::Ready(Pending::Nothing);
                        Ok(())
                    }
                    Some(_) => {
                        // A group-stop (SIGSTOP and friends): keep running.
                        trace!(tid, sig, "group stop");
                        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
                    }
                    None => {
                        // A new thread's first stop, before its parent's clone event.
                        self.tasks.insert(
                            tid,
                            Task {
                                pid: tid,
                                state: State::Ready(Pending::Nothing),
                                resumed_at: None,
                                restart_block: None,
                                exec_file: None,
                            },
                        );
                        Ok(())
                    }
                }
            }
            _ => ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid)),
        }
    }

    /// A successful `execve`: let it return, prepare the new image exactly as
    /// at the start, and write an `Exec` event (which also ends the syscall).
    fn exec(&mut self, tid: Tid) -> Result<(), Error> {
        let former =
            ptrace::geteventmsg(tid).map_err(ptrace_err("PTRACE_GETEVENTMSG", tid))? as Tid;
        if former != tid {
            self.unsupported(
                tid,
                format!("execve by thread {former}, not its process's main thread"),
            )?;
        }
        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))?;
        match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
            WaitEvent::SyscallStop { .. } => {}
            ev => {
                return Err(Error::Ptrace {
                    op: "finishing execve",
                    tid,
                    source: io::Error::other(format!("unexpected stop {ev:?}")),
                })
            }
        }
        let facts = crate::tracee::prepare_after_exec(tid)
            .map_err(ptrace_err("preparing the tracee after exec", tid))?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let (exe, source) = task.exec_file.take().unwrap_or_else(|| {
            let p = std::path::PathBuf::from(format!("/proc/{tid}/exe"));
            (String::new(), p)
        });
        task.state = State::Running;
        task.resumed_at = ptrace::getregs(tid).ok();
        let exe_file = self.writer.add_file(&source)?;
        self.emit(Event::Exec(ExecEvent {
            tid,
            exe,
            exe_file,
            at_random: facts.at_random,
            sp: facts.sp,
            ip: facts.ip,
        }))?;
        self.current = Some(tid);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn syscall_entry(&mut self, tid: Tid) -> Result<(), Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let nr = regs.orig_rax as i64;
        let args = ptrace::syscall_args(&regs);
        self.stats.traced_syscalls += 1;
        if self.current != Some(tid) {
            warn!(tid, current = ?self.current, nr, "syscall entry of a thread that is not current");
        }
        let desc = syscalls::lookup(nr);
        if desc.is_none() {
            self.unsupported(tid, format!("unknown syscall {nr}"))?;
        }
        // rseq: the kernel would write the rseq area behind our back; make
        // registration fail as if the kernel lacked it.
        let mut forced_ret = None;
        if nr == libc::SYS_rseq {
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(-(libc::ENOSYS as i64));
        }
        let action = desc.map(|d| d.replay);
        if action == Some(ReplayAction::Execve) {
            self.note_exec_file(tid, nr, &args)?;
        }
        if action == Some(ReplayAction::Exit) {
            // It does not return: the thread (or process) ends.
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        let others = self.tasks.len() > 1;
        // execve is never split: the thread stays current until its exec
        // event, so a vfork parent the exec releases cannot run (and write
        // its syscall's exit) before the exec is in the trace.
        // Give others a turn: at sched_yield, and after a long run of quick
        // syscalls (a thread polling with non-blocking calls must not starve
        // the thread it waits for).
        self.slice_syscalls += 1;
        let yield_now = others
            && (nr == libc::SYS_sched_yield || self.slice_syscalls >= SLICE_SYSCALLS)
            && self
                .tasks
                .iter()
                .any(|(&t, task)| t != tid && matches!(task.state, State::Ready(_)));
        let split = action == Some(ReplayAction::Clone)
            || (action != Some(ReplayAction::Execve)
                && others
                && (yield_now || desc.map(|d| d.may_block).unwrap_or(true)));
        if split {
            self.slice_syscalls = 0;
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            self.current = None;
        }
        self.tasks.get_mut(&tid).expect("task exists").state = State::InSyscall {
            nr,
            args,
            split,
            forced_ret,
        };
        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
    }

    /// Remembers which file an `execve` runs, to copy it into the trace if
    /// the exec succeeds.
    fn note_exec_file(&mut self, tid: Tid, nr: i64, args: &[u64; 6]) -> Result<(), Error> {
        let path_arg = if nr == libc::SYS_execveat {
            if args[0] as i32 != libc::AT_FDCWD || args[4] != 0 {
                return self.unsupported(tid, "execveat with a directory fd or flags".into());
            }
            args[1]
        } else {
            args[0]
        };
        let Ok(raw) = RemoteMem::new(tid).read_cstr(path_arg, 4096) else {
            return Ok(()); // The kernel will fail it with EFAULT.
        };
        let name = String::from_utf8_lossy(&raw).into_owned();
        let source = if name.starts_with('/') {
            std::path::PathBuf::from(&name)
        } else {
            std::path::PathBuf::from(format!("/proc/{tid}/cwd")).join(&name)
        };
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.exec_file = Some((name, source));
        }
        Ok(())
    }

    fn syscall_exit(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let State::InSyscall {
            nr,
            args,
            split,
            forced_ret,
        } = task.state
        else {
            warn!(tid, state = ?task.state, "syscall stop outside a syscall");
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        };
        if split || self.current != Some(tid) {
            task.state = State::Ready(Pending::Exit {
                nr,
                args,
                forced_ret,
            });
            if self.current == Some(tid) {
                self.current = None;
            }
            return Ok(());
        }
        let regs = self.finish_syscall_regs(tid, forced_ret)?;
        let call = Call {
            nr,
            args,
            ret: regs.rax as i64,
        };
        let result = self.capture(tid, &call)?;
        self.emit(Event::Syscall(SyscallEvent {
            tid,
            nr,
            args,
            result,
        }))?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = Some(regs);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn signal(&mut self, tid: Tid, signo: i32) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let info = ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
        let code = ptrace::siginfo_code(&info);
        let mem = RemoteMem::new(tid);
        if signo == libc::SIGSEGV && code == 0x80 {
            if let Some((is_rdtscp, len)) = crate::tracee::decode_rdtsc(&mem, regs.rip) {
                return self.emulate_rdtsc(tid, regs, is_rdtscp, len);
            }
        }
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let kind = if task
            .resumed_at
            .as_ref()
            .map(|r| regs_eq(r, &regs))
            .unwrap_or(false)
        {
            SignalKind::AtSyscallExit
        } else if code > 0
            && matches!(
                signo,
                libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
            )
        {
            SignalKind::Synchronous { ip: regs.rip }
        } else {
            SignalKind::Asynchronous { ip: regs.rip }
        };
        task.resumed_at = None;
        self.stats.signals += 1;
        if let SignalKind::Asynchronous { ip } = kind {
            self.stats.async_events += 1;
            self.unsupported(
                tid,
                format!("signal {signo} delivered asynchronously at {ip:#x} (execution points are issue 4)"),
            )?;
        }
        self.emit(Event::Signal(SignalEvent {
            tid,
            signo,
            siginfo: info.to_vec(),
            kind,
        }))?;
        ptrace::cont(tid, signo).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn emulate_rdtsc(
        &mut self,
        tid: Tid,
        mut regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        let (tsc, aux) = cpu::rdtsc(is_rdtscp);
        let ip = regs.rip;
        regs.rax = tsc & 0xffff_ffff;
        regs.rdx = tsc >> 32;
        if let Some(aux) = aux {
            regs.rcx = u64::from(aux);
        }
        regs.rip += len;
        ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        self.stats.rdtsc += 1;
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.resumed_at = Some(regs);
        }
        self.emit(Event::Rdtsc { tid, ip, tsc, aux })?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn task_gone(&mut self, tid: Tid, status: ExitStatus) -> Result<(), Error> {
        let Some(task) = self.tasks.remove(&tid) else {
            return Ok(());
        };
        if self.current == Some(tid) {
            self.current = None;
        }
        if task.pid == tid {
            if tid == self.leader {
                self.leader_status = Some(status);
            }
            self.emit(Event::ProcessExit { pid: tid, status })
        } else {
            self.emit(Event::ThreadExit { tid })
        }
    }

    fn finish(mut self, result: Result<(), Error>) -> Result<Recording, Error> {
        // Reap anything left (after an error).
        while let Ok(Some(_)) = ptrace::wait_any_nohang() {}
        self.stats.events = 0; // the writer counts events itself
        let status = self.leader_status.unwrap_or(ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        });
        let header = self.writer.header_mut();
        header.outcome = Some(match status {
            ExitStatus::Exited(code) => Outcome::Exited { code },
            ExitStatus::Signaled { signo, .. } => Outcome::Signaled { signo },
        });
        if let Err(e) = &result {
            self.unreplayable.push(format!("the recorder failed: {e}"));
        }
        header.unreplayable = self.unreplayable.clone();
        let events = header.stats.events;
        header.stats = Stats {
            events,
            ..self.stats.clone()
        };
        let stats = header.stats.clone();
        self.writer.finish()?;
        result?;
        Ok(Recording {
            status,
            stats,
            unreplayable: self.unreplayable,
        })
    }
}

fn regs_eq(a: &Regs, b: &Regs) -> bool {
    a.rip == b.rip
        && a.rsp == b.rsp
        && a.rax == b.rax
        && a.rbx == b.rbx
        && a.rcx == b.rcx
        && a.rdx == b.rdx
        && a.rsi == b.rsi
        && a.rdi == b.rdi
        && a.rbp == b.rbp
        && a.r8 == b.r8
        && a.r9 == b.r9
        && a.r10 == b.r10
        && a.r11 == b.r11
        && a.r12 == b.r12
        && a.r13 == b.r13
        && a.r14 == b.r14
        && a.r15 == b.r15
        && a.eflags == b.eflags
}

/// The clone flags of a clone-family syscall, and whether the new task joins
/// the caller's thread group.
fn clone_flags(tid: Tid, nr: i64, args: &[u64; 6]) -> (u64, bool) {
    let flags = match nr {
        libc::SYS_clone => args[0],
        libc::SYS_clone3 => RemoteMem::new(tid).read_u64(args[0]).unwrap_or(0),
        libc::SYS_vfork => (libc::CLONE_VFORK | libc::CLONE_VM | libc::SIGCHLD) as u64,
        _ => libc::SIGCHLD as u64,
    };
    (flags, flags & libc::CLONE_THREAD as u64 != 0)
}
