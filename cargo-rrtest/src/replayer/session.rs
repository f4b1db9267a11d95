//! The replay event loop: runs each recorded event, in order, on its thread.
//!
//! Every replay thread is stopped between events. To replay an event, the
//! loop resumes that thread alone until the stop the event describes (a
//! syscall entry, a signal, an rdtsc trap), checks it against the
//! recording, and applies the recorded effects.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use tracing::{debug, trace};

use super::exe::ExecDir;
use super::gate;
use super::inject;
use super::{Divergence, Error, ReplayError, ReplayOptions};
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::spawn::{spawn, SpawnSpec};
use rrtest_sys::{seccomp, RemoteMem};
use rrtest_syscalls::{self as syscalls, ReplayAction};
use rrtest_trace::{
    Event, ExecPoint, ExitStatus, PatchEvent, ReadAhead, SignalEvent, SignalKind, SyscallResult,
    Tid, TraceReader,
};

/// A buffered syscall replay will see at the untraced gate.
#[derive(Debug)]
enum Buffered {
    /// It completed: emulate it.
    Done(syscallbuf::Record),
    /// The recorder unwound it: it returns -EINTR with `abort_commit` set.
    Aborted { nr: i64 },
}

mod point_filter;

/// The result of a replay that reached the end of the recording.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// How the program ended (equal to the recorded status).
    pub status: ExitStatus,
    /// Events replayed.
    pub events: u64,
    /// (event index, hits before the match) of every execution point, as
    /// found by scanning or known beforehand.
    pub point_hits: Vec<[u64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stopped between events; `deliver` is a signal to deliver on resume.
    Idle { deliver: i32 },
    /// Stopped at a syscall entry, the rest of the syscall comes later.
    AtEntry { nr: i64, args: [u64; 6] },
    /// A clone-family syscall stopped at its clone event.
    InClone { nr: i64 },
    /// In an exit syscall: it will not stop again.
    Exiting,
    /// A thread other than its process's leader that made `exit`: already
    /// gone, reaped at its syscall entry, with this status.
    Gone(ExitStatus),
}

struct Task {
    /// Real (replay) thread id.
    real: i32,
    /// Real process id.
    real_pid: i32,
    state: State,
    /// The thread's last syscall returned a restart code (-ERESTART*) that
    /// the kernel acted on while recording without delivering a signal to
    /// it (another thread took the signal): replay does the restart itself
    /// when the thread next runs, unless a signal is delivered there.
    restart_pending: Option<i64>,
    /// The mask to restore when the handler of the signal that ended an
    /// emulated `rt_sigsuspend` returns (see [`Session::sigsuspend_mask`]).
    mask_after_handler: Option<u64>,
}

struct Session {
    reader: ReadAhead,
    tasks: HashMap<Tid, Task>,
    index: u64,
    echo: bool,
    exec_dir: ExecDir,
    /// Hit counts of execution points from an earlier verification.
    known_hits: HashMap<u64, u64>,
    /// Hit counts found (or used) by this replay.
    point_hits: Vec<[u64; 2]>,
    /// Ends a replay that stops making progress.
    watchdog: std::sync::Arc<super::watchdog::Watchdog>,
    /// The syscall buffer of each replayed process that has one, by real pid.
    spaces: HashMap<i32, Space>,
    /// Each thread's buffered syscalls still to come, in order.
    buffered: HashMap<Tid, VecDeque<Buffered>>,
    /// Threads whose queue region holds records: where each record ends.
    loaded: HashMap<Tid, VecDeque<usize>>,
    /// The ip of a stop in the gate routine's slow path.
    gate_stop_ip: u64,
}

fn perr(op: &'static str, tid: i32) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Ptrace { op, tid, source }
}

fn cstr(b: &[u8]) -> CString {
    CString::new(b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>()).expect("NULs removed")
}

/// Replays the trace in `opts.trace_dir` to its end.
pub fn replay(opts: &ReplayOptions) -> Result<Replayed, ReplayError> {
    // Absolute: the tracee opens the trace's files from its own directory.
    let dir = std::path::absolute(&opts.trace_dir).unwrap_or_else(|_| opts.trace_dir.clone());
    let mut reader = TraceReader::open(&dir)?;
    let header = reader.header().clone();
    if !header.unreplayable.is_empty() {
        return Err(Error::NotReplayable(header.unreplayable.clone()).into());
    }
    if header.outcome.is_none() {
        return Err(Error::NotReplayable(vec![
            "the recording did not finish (the recorder was killed, or failed)".into(),
        ])
        .into());
    }
    let Some(Event::Exec(exec)) = reader.next_event()? else {
        return Err(Error::Malformed {
            index: 0,
            reason: "the first event is not an exec".into(),
        }
        .into());
    };
    // The rest is decoded on a thread of its own, off the CPU this thread
    // and the program will share (started before binding, so it is free).
    let reader = reader.read_ahead()?;
    let mut exec_dir = ExecDir::new().map_err(|source| Error::Spawn {
        program: exec.exe.clone(),
        source,
    })?;
    let name = exec_dir
        .program(
            &header,
            |f| reader.file_path(f),
            &exec.exe_file,
            exec.exe.len(),
        )
        .map_err(|source| Error::Spawn {
            program: exec.exe.clone(),
            source,
        })?;
    let spec = SpawnSpec {
        path: cstr(name.as_bytes()),
        argv: header.argv.iter().map(|a| cstr(a.as_bytes())).collect(),
        envp: header.env.iter().map(|a| cstr(a.as_bytes())).collect(),
        cwd: Some(cstr(exec_dir.path().as_os_str().as_bytes())),
        // Nothing is untraced: the buffer's syscalls stop, and replay
        // answers them from the recorded records.
        filter: seccomp::filter(0),
        // The recorded one, not ours (a harness that blocks Ctrl-C while it
        // runs the verifier would otherwise pass its mask on: the program's
        // sigprocmask results, and so its memory, would differ).
        sigmask: header.initial_sigmask,
        // Likewise the signals it started with ignored (`nohup`).
        ignored: header.initial_ignored,
        hide: Vec::new(),
    };
    // Replay on the CPU the recording ran on, with the program (see the
    // recorder): `cpuid` tells it, and stops are cheaper.
    if let Some(c) = header.tracee_cpu {
        if let Err(e) = rrtest_sys::cpu::bind_to_cpu(0, c as usize) {
            tracing::warn!(cpu = c, error = %e, "could not bind the replayer to the recorded CPU");
        }
    }
    let pid = spawn(&spec).map_err(|source| Error::Spawn {
        program: exec.exe.clone(),
        source,
    })?;
    // The CPU the recording ran on: `cpuid` tells it (`cpu::bind_to_cpu`).
    if let Some(c) = header.tracee_cpu {
        if let Err(e) = rrtest_sys::cpu::bind_to_cpu(pid, c as usize) {
            tracing::warn!(cpu = c, error = %e, "could not bind the program to the recorded CPU");
        }
    }
    let mut session = Session {
        reader,
        tasks: HashMap::new(),
        index: 1,
        echo: opts.echo_output,
        exec_dir,
        known_hits: header
            .verification
            .as_ref()
            .filter(|v| v.verified)
            .map(|v| v.point_hits.iter().map(|&[i, n]| (i, n)).collect())
            .unwrap_or_default(),
        point_hits: Vec::new(),
        watchdog: super::watchdog::Watchdog::start(),
        spaces: HashMap::new(),
        buffered: HashMap::new(),
        loaded: HashMap::new(),
        gate_stop_ip: gate::routine().1,
    };
    session.tasks.insert(
        exec.tid,
        Task {
            real: pid,
            real_pid: pid,
            state: State::Idle { deliver: 0 },
            restart_pending: None,
            mask_after_handler: None,
        },
    );
    session.watchdog.watch(pid, pid);
    let result = session.start(&exec).and_then(|()| session.run());
    for t in session.tasks.values() {
        let _ = ptrace::tgkill(t.real_pid, t.real, libc::SIGKILL);
    }
    while let Ok(Some(_)) = ptrace::wait_any_nohang() {}
    result
}

impl Session {
    fn diverged(
        &self,
        tid: Tid,
        what: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> ReplayError {
        Divergence {
            index: self.index,
            tid,
            what: what.into(),
            expected: expected.into(),
            seen: seen.into(),
        }
        .into()
    }

    /// A successful `execve` of thread `e.tid`, stopped at its entry: run
    /// the trace's copy of the program under a name of the recorded length.
    fn exec(&mut self, e: rrtest_trace::ExecEvent) -> Result<(), ReplayError> {
        // The exec'ing thread stays current while recording, so its entry
        // is not an event of its own: run it to the entry now.
        if let State::Idle { .. } = self.task(e.tid)?.state {
            let (real, ev) = self.resume_to_stop(e.tid, None)?;
            let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            let nr = regs.orig_rax as i64;
            let is_exec = matches!(
                ev,
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                }
            ) && (nr == libc::SYS_execve || nr == libc::SYS_execveat);
            if !is_exec {
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(e.tid, "execve", format!("execve of {}", e.exe), seen));
            }
            self.set_state(
                e.tid,
                State::AtEntry {
                    nr,
                    args: ptrace::syscall_args(&regs),
                },
            );
        }
        let task = self.task(e.tid)?;
        let real = task.real;
        let State::AtEntry { nr, .. } = task.state else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("exec of thread {} outside an execve", e.tid),
            }
            .into());
        };
        let reader = &self.reader;
        let name = self
            .exec_dir
            .program(
                reader.header(),
                |f| reader.file_path(f),
                &e.exe_file,
                e.exe.len(),
            )
            .map_err(perr("linking the trace's copy of the program", real))?;
        let mut bytes = name.into_bytes();
        bytes.push(0);
        let scratch = rrtest_abi::FIXED_PAGE_ADDR + inject::SCRATCH_OFFSET;
        RemoteMem::new(real)
            .write(scratch, &bytes)
            .map_err(perr("writing the program name", real))?;
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        if nr == libc::SYS_execveat {
            regs.rsi = scratch;
        } else {
            regs.rdi = scratch;
        }
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        ptrace::syscall(real, 0).map_err(perr("PTRACE_SYSCALL", real))?;
        match ptrace::wait_tid(real).map_err(perr("waitpid", real))? {
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_EXEC,
                ..
            } => {}
            ev => {
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(e.tid, "execve", format!("exec of {}", e.exe), seen));
            }
        }
        inject::run_to_exit(real)?;
        let real_pid = self.task(e.tid)?.real_pid;
        self.spaces.remove(&real_pid);
        self.loaded.remove(&e.tid);
        self.set_state(e.tid, State::Idle { deliver: 0 });
        self.start(&e)
    }

    fn start(&mut self, exec: &rrtest_trace::ExecEvent) -> Result<(), ReplayError> {
        let real = self.tasks[&exec.tid].real;
        let facts = crate::tracee::prepare_after_exec(real)
            .map_err(perr("preparing the tracee after exec", real))?;
        gate::install(real).map_err(perr("installing the replay gate", real))?;
        if facts.sp != exec.sp || facts.ip != exec.ip {
            return Err(Divergence {
                index: self.index,
                tid: exec.tid,
                what: "initial stack and entry point".into(),
                expected: format!("sp={:#x} ip={:#x}", exec.sp, exec.ip),
                seen: format!("sp={:#x} ip={:#x}", facts.sp, facts.ip),
            }
            .into());
        }
        let mem = RemoteMem::new(real);
        mem.write(facts.at_random_addr, &exec.at_random)
            .map_err(perr("writing AT_RANDOM", real))?;
        // The name we exec'd has the recorded name's length, not its bytes:
        // put those back, so memory is what it was while recording.
        if facts.execfn_addr != 0 {
            mem.write(facts.execfn_addr, exec.exe.as_bytes())
                .map_err(perr("writing AT_EXECFN", real))?;
        }
        self.exec_dir
            .restore_interp(real)
            .map_err(perr("restoring the recorded loader name", real))?;
        Ok(())
    }

    fn run(&mut self) -> Result<Replayed, ReplayError> {
        loop {
            let ev = match self.reader.next_event()? {
                Some(ev) => ev,
                None => {
                    return Err(Error::Malformed {
                        index: self.index,
                        reason: "the event stream ended before the program's exit".into(),
                    }
                    .into())
                }
            };
            trace!(index = self.index, ?ev, "replay");
            self.watchdog
                .index
                .store(self.index, std::sync::atomic::Ordering::SeqCst);
            let stepped = self.step(ev);
            if self
                .watchdog
                .fired
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(Error::Stalled {
                    index: self.index,
                    secs: super::watchdog::STALL_LIMIT.as_secs(),
                }
                .into());
            }
            if let Some(status) = stepped? {
                return Ok(Replayed {
                    status,
                    events: self.index + 1,
                    point_hits: std::mem::take(&mut self.point_hits),
                });
            }
            self.index += 1;
        }
    }

    fn task(&self, tid: Tid) -> Result<&Task, ReplayError> {
        self.tasks.get(&tid).ok_or_else(|| {
            Error::Malformed {
                index: self.index,
                reason: format!("event for unknown thread {tid}"),
            }
            .into()
        })
    }

    fn set_state(&mut self, tid: Tid, state: State) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.state = state;
        }
    }

    /// Replays one event; returns the exit status when the recorded program ended.
    fn step(&mut self, ev: Event) -> Result<Option<ExitStatus>, ReplayError> {
        match ev {
            Event::Syscall(e) => {
                let mut regs = self.run_to_entry(e.tid, e.nr, &e.args)?;
                self.apply(e.tid, e.nr, &e.args, &mut regs, &e.result, false)?;
            }
            Event::SyscallEntry { tid, nr, args } => {
                let _regs = self.run_to_entry(tid, nr, &args)?;
                let real = self.task(tid)?.real;
                if syscalls::lookup(nr).map(|d| d.replay) == Some(ReplayAction::Exit) {
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                    self.set_state(tid, State::Exiting);
                    if nr == libc::SYS_exit && real != self.task(tid)?.real_pid {
                        // Gone before anything else runs: its exit clears
                        // its `CLONE_CHILD_CLEARTID` word and wakes the
                        // futex on it, which a thread joining it may meet
                        // at its very next step (it did while recording:
                        // the recorder resumed no one in between).
                        let status = self.wait_gone(tid, real)?;
                        self.set_state(tid, State::Gone(status));
                    }
                } else {
                    self.set_state(tid, State::AtEntry { nr, args });
                }
            }
            Event::SyscallExit { tid, nr, result } => {
                let task = self.task(tid)?;
                let real = task.real;
                match task.state {
                    State::AtEntry { nr: entered, args } if entered == nr => {
                        let mut regs =
                            ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                        self.apply(tid, nr, &args, &mut regs, &result, true)?;
                    }
                    State::InClone { nr: entered } if entered == nr => {
                        let regs = inject::run_to_exit(real)?;
                        inject::write_back(real, &result)?;
                        inject::set_ret(real, regs, result.ret)?;
                        self.set_state(tid, State::Idle { deliver: 0 });
                    }
                    other => {
                        return Err(Error::Malformed {
                            index: self.index,
                            reason: format!(
                                "exit of {} for thread {tid} in state {other:?}",
                                syscalls::name(nr)
                            ),
                        }
                        .into())
                    }
                }
            }
            Event::NewTask {
                parent,
                child,
                flags,
            } => self.new_task(parent, child, flags)?,
            Event::Rdtsc { tid, ip, tsc, aux } => self.rdtsc(tid, ip, tsc, aux)?,
            Event::Preempt { tid, point } => self.run_to_point(tid, &point)?,
            Event::Signal(s) => self.signal(s)?,
            Event::ThreadExit { tid } => {
                let real = self.task(tid)?.real;
                self.wait_gone(tid, real)?;
                self.tasks.remove(&tid);
                self.no_buffered_left(tid)?;
            }
            Event::ProcessExit { pid, status } => {
                let real = self.task(pid)?.real;
                let seen = self.wait_gone(pid, real)?;
                self.tasks.remove(&pid);
                self.no_buffered_left(pid)?;
                self.spaces.remove(&real);
                // Whether a core was dumped depends on the machine, not the program.
                let same = match (seen, status) {
                    (
                        ExitStatus::Signaled { signo: a, .. },
                        ExitStatus::Signaled { signo: b, .. },
                    ) => a == b,
                    (a, b) => a == b,
                };
                if !same {
                    return Err(self.diverged(
                        pid,
                        "process exit",
                        format!("{status:?}"),
                        format!("{seen:?}"),
                    ));
                }
                if self.tasks.is_empty() {
                    return Ok(Some(status));
                }
            }
            Event::Exec(e) => self.exec(e)?,
            Event::BufferInit { tid, hook_entry } => self.buffer_init(tid, hook_entry)?,
            Event::Buffered { tid, records } if syscallbuf::is_output_table(&records) => {
                self.output_table(tid, &records)?;
            }
            Event::Buffered { tid, records } => {
                let records =
                    syscallbuf::parse_records(records).map_err(|reason| Error::Malformed {
                        index: self.index,
                        reason: format!("buffered records of thread {tid}: {reason}"),
                    })?;
                self.buffered
                    .entry(tid)
                    .or_default()
                    .extend(records.into_iter().map(Buffered::Done));
            }
            Event::BufferAbort { tid, nr } => {
                self.buffered
                    .entry(tid)
                    .or_default()
                    .push_back(Buffered::Aborted { nr });
            }
            Event::Patch(p) => self.patch(p)?,
            Event::Unsupported { what, .. } => return Err(Error::NotReplayable(vec![what]).into()),
        }
        Ok(None)
    }

    /// Waits until thread `real` has exited; returns how.
    fn wait_gone(&mut self, tid: Tid, real: i32) -> Result<ExitStatus, ReplayError> {
        let state = self.task(tid)?.state;
        let mut early = None;
        match state {
            State::Gone(status) => return Ok(status),
            // A thread dying of a signal we stopped it for dies once resumed with it.
            State::Idle { deliver } if deliver != 0 => {
                ptrace::cont(real, deliver).map_err(perr("PTRACE_CONT", real))?;
                self.set_state(tid, State::Exiting);
            }
            State::Exiting => {}
            // It died without an exit of its own or a signal it was given: a
            // sibling's exit_group (then it is already gone or going), or a
            // SIGKILL from another process, whose kill() replay emulates:
            // kill it here, where the recording says it died.
            _ => {
                let real_pid = self.task(tid)?.real_pid;
                let group_exiting = self
                    .tasks
                    .values()
                    .any(|t| t.real_pid == real_pid && t.state == State::Exiting);
                early = ptrace::wait_tid_nohang(real).map_err(perr("waitpid", real))?;
                if early.is_none() && !group_exiting {
                    let _ = ptrace::tgkill(real_pid, real, libc::SIGKILL);
                    self.set_state(tid, State::Exiting);
                }
            }
        }
        loop {
            let ev = match early.take() {
                Some(ev) => ev,
                None => ptrace::wait_tid(real).map_err(perr("waitpid", real))?,
            };
            match ev {
                WaitEvent::Exited { code, .. } => return Ok(ExitStatus::Exited(code)),
                WaitEvent::Signaled { signo, core, .. } => {
                    return Ok(ExitStatus::Signaled { signo, core })
                }
                // A thread killed by exit_group reports PTRACE_EVENT_EXIT-like
                // stops only if asked; anything else is unexpected here.
                ev => {
                    if let State::Exiting = self.task(tid)?.state {
                        ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                        continue;
                    }
                    return Err(self.diverged(
                        tid,
                        "thread exit",
                        "the thread to exit",
                        format!("{ev:?}"),
                    ));
                }
            }
        }
    }

    /// Resumes `tid` to its next stop, delivering its pending signal.
    /// `expect_signal`: the signal the next event says arrives.
    fn resume_to_stop(
        &mut self,
        tid: Tid,
        expect_signal: Option<i32>,
    ) -> Result<(i32, WaitEvent), ReplayError> {
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        let State::Idle { deliver } = task.state else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("thread {tid} must run, but is in state {:?}", task.state),
            }
            .into());
        };
        if let Some(ret) = self
            .tasks
            .get_mut(&tid)
            .and_then(|t| t.restart_pending.take())
        {
            // What the kernel's signal code does with no handler to run:
            // back up to the syscall instruction, and run the syscall again
            // (or restart_syscall, for -ERESTART_RESTARTBLOCK).
            let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            regs.rax = if ret == -516 {
                libc::SYS_restart_syscall as u64
            } else {
                regs.orig_rax
            };
            regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        }
        if self.spaces.contains_key(&real_pid) {
            let none_left = self.buffered.get(&tid).is_none_or(|q| q.is_empty());
            syscallbuf::reset_for_replay(real, none_left)
                .map_err(perr("resetting the syscall buffer", real))?;
            self.load_queue(tid, real)?;
        }
        match self.spaces.get(&real_pid).filter(|_| deliver != 0) {
            // A signal to a thread that may be in a stub: its frame must
            // not show the stub.
            Some(space) => {
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                syscallbuf::deliver_signal(real, &regs, deliver, Some(space))
                    .map_err(perr("delivering a signal", real))?;
            }
            None => ptrace::cont(real, deliver).map_err(perr("PTRACE_CONT", real))?,
        }
        self.set_state(tid, State::Idle { deliver: 0 });
        let gate = self.gate_stop_ip;
        loop {
            let ev = ptrace::wait_tid(real).map_err(perr("waitpid", real))?;
            self.sync_loaded_queue(tid, real)?;
            match ev {
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } if self.spaces.contains_key(&real_pid)
                    && ptrace::getregs(real).map(|r| r.rip).ok() == Some(gate) =>
                {
                    // The gate's slow path: the queue region ran out, or
                    // its next record is not this syscall.
                    self.replay_buffered(tid, real)?;
                    self.load_queue(tid, real)?;
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                }
                // Signals the replay itself causes (SIGCHLD when a replayed
                // child really exits): every signal the program got is in the
                // recording, and replay delivers exactly those, at their events.
                WaitEvent::Signal { signo, .. }
                    if Some(signo) != expect_signal && !is_synchronous(signo) =>
                {
                    trace!(tid, signo, "discarding a signal the replay caused");
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                }
                ev => return Ok((real, ev)),
            }
        }
    }

    fn describe_stop(&self, real: i32, ev: &WaitEvent) -> String {
        match *ev {
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {
                match ptrace::getregs(real) {
                    Ok(r) => format!(
                        "{} at ip {:#x}",
                        syscalls::describe_entry(r.orig_rax as i64, &ptrace::syscall_args(&r)),
                        r.rip
                    ),
                    Err(_) => "a syscall".into(),
                }
            }
            WaitEvent::Signal { signo, .. } => {
                let ip = ptrace::getregs(real).map(|r| r.rip).unwrap_or(0);
                format!("signal {signo} at ip {ip:#x}")
            }
            WaitEvent::Exited { code, .. } => format!("the thread exited with {code}"),
            WaitEvent::Signaled { signo, .. } => format!("the thread was killed by signal {signo}"),
            ref other => format!("{other:?}"),
        }
    }

    fn run_to_entry(&mut self, tid: Tid, nr: i64, args: &[u64; 6]) -> Result<Regs, ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, None)?;
        let expected = || syscalls::describe_entry(nr, args);
        match ev {
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                let seen_nr = regs.orig_rax as i64;
                let seen_args = ptrace::syscall_args(&regs);
                // Only the registers the syscall reads: the others hold
                // whatever the caller left there.
                let used = syscalls::arg_count(nr);
                if seen_nr != nr || seen_args[..used] != args[..used] {
                    return Err(self.diverged(
                        tid,
                        format!("syscall {}", syscalls::name(nr)),
                        expected(),
                        syscalls::describe_entry(seen_nr, &seen_args),
                    ));
                }
                debug!(index = self.index, tid, nr, "syscall entry");
                Ok(regs)
            }
            ev => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(
                    tid,
                    format!("syscall {}", syscalls::name(nr)),
                    expected(),
                    seen,
                ))
            }
        }
    }

    /// Applies a recorded syscall to `tid`, stopped at its entry.
    fn apply(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
        regs: &mut Regs,
        result: &SyscallResult,
        _split: bool,
    ) -> Result<(), ReplayError> {
        let real = self.task(tid)?.real;
        let action = syscalls::lookup(nr)
            .map(|d| d.replay)
            .unwrap_or(ReplayAction::Emulate);
        let name = syscalls::name(nr);
        match action {
            ReplayAction::Emulate => {
                // Replay writes the recorded output; the program must be
                // writing the same bytes, or it has diverged (its
                // arguments can match while its data does not).
                if let rrtest_trace::SyscallExtra::Output { data, .. } = &result.extra {
                    let mem = RemoteMem::new(real);
                    let seen = crate::tracee::written_bytes(&mem, nr, args, data.len())
                        .unwrap_or_default();
                    if seen != *data {
                        return Err(self.diverged(
                            tid,
                            format!("output of {name}"),
                            format!("{:?}", String::from_utf8_lossy(data)),
                            format!("{:?}", String::from_utf8_lossy(&seen)),
                        ));
                    }
                }
                inject::emulate(real, regs, result, self.echo)?;
                if (-516..=-512).contains(&result.ret) {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.restart_pending = Some(result.ret);
                    }
                }
                if (-516..=-512).contains(&result.ret) || result.ret == -(libc::EINTR as i64) {
                    if let Some(mask_ptr) = temporary_mask(real, nr, args) {
                        if result.ret == -(libc::EINTR as i64) {
                            // Still at the (skipped) entry: injecting needs
                            // the exit stop.
                            inject::run_to_exit(real)?;
                        }
                        self.sigsuspend_mask(tid, real, mask_ptr)?;
                    }
                }
            }
            ReplayAction::Execute | ReplayAction::ExecuteUnchecked => {
                if nr == libc::SYS_rt_sigreturn {
                    let real_pid = self.task(tid)?.real_pid;
                    if let Some(space) = self.spaces.get(&real_pid) {
                        // Best effort, as while recording.
                        let _ = syscallbuf::fix_sigreturn(real, regs, space);
                    }
                }
                let exit = inject::run_to_exit(real)?;
                let ret = exit.rax as i64;
                // The signal mask sigsuspend swapped in lasts until the
                // handler returns (or the program sets a mask itself).
                let restore = match nr {
                    libc::SYS_rt_sigreturn | libc::SYS_rt_sigprocmask => self
                        .tasks
                        .get_mut(&tid)
                        .and_then(|t| t.mask_after_handler.take()),
                    _ => None,
                };
                if let (Some(old), libc::SYS_rt_sigreturn) = (restore, nr) {
                    set_signal_mask(real, old).map_err(perr("restoring the signal mask", real))?;
                }
                if nr == libc::SYS_set_tid_address {
                    // Returns the caller's thread id: the recorded one, not ours.
                    inject::set_ret(real, exit, result.ret)?;
                } else if action == ReplayAction::Execute && ret != result.ret {
                    return Err(self.diverged(
                        tid,
                        format!("result of {name}"),
                        result.ret.to_string(),
                        ret.to_string(),
                    ));
                }
            }
            ReplayAction::Mmap => {
                let ret = if result.ret < 0 {
                    inject::emulate(real, regs, result, false)?;
                    result.ret
                } else if let rrtest_trace::SyscallExtra::MappedFile { file, .. } = &result.extra {
                    let mut path = self.reader.file_path(file);
                    if args[3] as i32 & libc::MAP_SHARED != 0 {
                        path = self
                            .exec_dir
                            .shared_copy(&path, &file.0)
                            .map_err(perr("copying a shared-mapped file", real))?;
                    }
                    inject::mmap_file(real, regs, args, result.ret, &path)?
                } else {
                    inject::mmap_anonymous(real, regs, result.ret)?
                };
                if ret != result.ret {
                    return Err(self.diverged(
                        tid,
                        "result of mmap",
                        format!("{:#x}", result.ret),
                        format!("{ret:#x}"),
                    ));
                }
            }
            ReplayAction::Execve if result.ret < 0 => inject::emulate(real, regs, result, false)?,
            ReplayAction::Clone | ReplayAction::Exit | ReplayAction::Execve => {
                return Err(Error::Malformed {
                    index: self.index,
                    reason: format!("{name} recorded as a complete syscall"),
                }
                .into())
            }
        }
        self.set_state(tid, State::Idle { deliver: 0 });
        Ok(())
    }

    /// Loads thread `tid`'s buffered syscalls into its queue region, for
    /// the gate routine (see [`super::gate`]).
    fn load_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let entries = self
            .buffered
            .get(&tid)
            .into_iter()
            .flatten()
            .map(|b| match b {
                Buffered::Done(r) => gate::Entry::Done(r),
                Buffered::Aborted { nr } => gate::Entry::Aborted { nr: *nr },
            });
        let (bytes, ends, complete) = gate::serialize(entries);
        gate::load(real, &bytes, complete).map_err(perr("loading buffered syscalls", real))?;
        self.loaded.insert(tid, ends.into());
        Ok(())
    }

    /// [`Session::sync_queue`] when `tid` has a queue loaded: after every
    /// stop of a thread that ran with one, whichever way it was resumed
    /// (the next resume loads what is left, so a stop that is not synced
    /// would feed the thread its consumed records again).
    fn sync_loaded_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        if self.loaded.contains_key(&tid) {
            self.sync_queue(tid, real)?;
        }
        Ok(())
    }

    /// Drops from `tid`'s queue what the gate routine consumed since
    /// [`Session::load_queue`].
    fn sync_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let consumed = match gate::consumed(real) {
            Ok(c) => c,
            // The thread is gone (its exit is checked against the queue).
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(perr("reading the queue region", real)(e).into()),
        };
        let Some(ends) = self.loaded.get_mut(&tid) else {
            return Ok(());
        };
        let mut n = 0;
        while ends.front().is_some_and(|&e| e as u64 <= consumed) {
            ends.pop_front();
            n += 1;
        }
        if let Some(q) = self.buffered.get_mut(&tid) {
            for b in q.drain(..n.min(q.len())) {
                if let Buffered::Done(rec) = b {
                    echo_buffered_output(self.echo, rec);
                }
            }
        }
        Ok(())
    }

    /// The output table the recorder wrote into `tid`'s process after its
    /// last event: the same here, so that the hook takes the recording's
    /// path for every write.
    fn output_table(&mut self, tid: Tid, records: &[u8]) -> Result<(), ReplayError> {
        let table = syscallbuf::parse_output_table(records).map_err(|reason| Error::Malformed {
            index: self.index,
            reason: format!("output table of thread {tid}: {reason}"),
        })?;
        let real = self.task(tid)?.real;
        syscallbuf::write_output_fds(real, &table)
            .map_err(perr("writing the output table", real))?;
        Ok(())
    }

    /// A thread that exits must have made every buffered syscall recorded.
    fn no_buffered_left(&mut self, tid: Tid) -> Result<(), ReplayError> {
        self.loaded.remove(&tid);
        match self.buffered.remove(&tid) {
            Some(q) if !q.is_empty() => Err(self.diverged(
                tid,
                "buffered syscalls",
                format!("{} more buffered syscalls", q.len()),
                "the thread exited",
            )),
            _ => Ok(()),
        }
    }

    /// The preload library's handshake: the same mapping and answer as
    /// while recording.
    fn buffer_init(&mut self, tid: Tid, hook_entry: u64) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, None)?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let at_init = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_SECCOMP,
                ..
            }
        ) && regs.orig_rax == rrtest_abi::magic::INIT;
        if !at_init {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(tid, "syscall-buffer handshake", "the handshake", seen));
        }
        let hook =
            syscallbuf::init(real, &regs).map_err(perr("the syscall-buffer handshake", real))?;
        if hook.unwrap_or(0) != hook_entry {
            return Err(self.diverged(
                tid,
                "syscall-buffer handshake",
                format!("hook entry {hook_entry:#x}"),
                format!("{:#x}", hook.unwrap_or(0)),
            ));
        }
        if let Some(h) = hook {
            let real_pid = self.task(tid)?.real_pid;
            let mapped = crate::tracee::inject_via_fixed_page(
                real,
                libc::SYS_mmap,
                crate::tracee::anon_mmap_args(
                    gate::QUEUE_ADDR,
                    gate::QUEUE_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                ),
            )
            .map_err(perr("mapping the replay queue", real))?;
            if mapped as u64 != gate::QUEUE_ADDR {
                return Err(Error::Ptrace {
                    op: "mapping the replay queue",
                    tid: real,
                    source: std::io::Error::other(format!("mmap returned {mapped:#x}")),
                }
                .into());
            }
            self.spaces.insert(real_pid, Space::new(h));
        }
        self.set_state(tid, State::Idle { deliver: 0 });
        Ok(())
    }

    /// Runs the thread of patch `e` to the entry of the syscall whose site
    /// the recorder patched there; returns its real tid and registers.
    fn run_to_patched_syscall(&mut self, e: &PatchEvent) -> Result<(i32, Regs), ReplayError> {
        let (real, ev) = self.resume_to_stop(e.tid, None)?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let at_entry = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_SECCOMP,
                ..
            }
        ) && regs.orig_rax as i64 == e.nr;
        if !at_entry {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(
                e.tid,
                format!("patch at {}", syscalls::name(e.nr)),
                format!("entry of {}", syscalls::name(e.nr)),
                seen,
            ));
        }
        Ok((real, regs))
    }

    /// Runs the thread of rdtsc-site patch `e` to the trap (`SIGSEGV`) of
    /// the `rdtsc` the recorder patched there; returns its real tid and
    /// registers.
    fn run_to_patched_rdtsc(&mut self, e: &PatchEvent) -> Result<(i32, Regs), ReplayError> {
        let (real, ev) = self.resume_to_stop(e.tid, Some(libc::SIGSEGV))?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let trapped = matches!(
            ev,
            WaitEvent::Signal {
                signo: libc::SIGSEGV,
                ..
            }
        ) && crate::tracee::decode_rdtsc(&RemoteMem::new(real), regs.rip)
            == Some((false, 2));
        if !trapped {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(e.tid, "rdtsc-site patch", "an rdtsc's trap", seen));
        }
        Ok((real, regs))
    }

    /// A syscall (or rdtsc) site the recorder patched: plan the same patch
    /// from the replayed code, check it is the recorded one, and apply it.
    /// The thread is at the site's syscall entry (or rdtsc trap), or, for a
    /// patch made `ahead`, still at the buffer's handshake.
    fn patch(&mut self, e: PatchEvent) -> Result<(), ReplayError> {
        let (real, at_site) = match e.ahead {
            Some(_) => (self.task(e.tid)?.real, None),
            None if e.rdtsc => {
                let (real, regs) = self.run_to_patched_rdtsc(&e)?;
                (real, Some(regs))
            }
            None => {
                let (real, regs) = self.run_to_patched_syscall(&e)?;
                (real, Some(regs))
            }
        };
        let real_pid = self.task(e.tid)?.real_pid;
        let Some(space) = self.spaces.get(&real_pid) else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("a patch in thread {} without a syscall buffer", e.tid),
            }
            .into());
        };
        let stub = match syscallbuf::replan(real, space, &e) {
            Ok(stub) => stub,
            Err(why) => {
                return Err(self.diverged(
                    e.tid,
                    "syscall-site patch",
                    format!("the recorded patch of {:#x}", e.site),
                    why,
                ))
            }
        };
        let applied = match &at_site {
            Some(regs) if e.rdtsc => syscallbuf::apply_rdtsc(real, regs, &e),
            Some(regs) => syscallbuf::apply_patch(real, regs, &e).map(drop),
            None => syscallbuf::apply_ahead(real, &e),
        };
        applied.map_err(perr("patching a syscall site", real))?;
        if let Some(space) = self.spaces.get_mut(&real_pid) {
            syscallbuf::note_patch(space, &e, stub);
        }
        self.set_state(e.tid, State::Idle { deliver: 0 });
        Ok(())
    }

    /// Thread `tid` stopped at the untraced gate: the next buffered syscall
    /// the recording has for it. Emulates it (its output goes where the
    /// hook pointed the output argument: into its record).
    fn replay_buffered(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let nr = regs.orig_rax as i64;
        let args = ptrace::syscall_args(&regs);
        let what = || format!("buffered {}", syscalls::name(nr));
        let ret = match self.buffered.get_mut(&tid).and_then(|q| q.pop_front()) {
            None => {
                return Err(self.diverged(
                    tid,
                    what(),
                    "no further buffered syscall before the thread's next event",
                    syscalls::describe_entry(nr, &args),
                ))
            }
            Some(Buffered::Done(rec)) => {
                if rec.nr != nr {
                    return Err(self.diverged(
                        tid,
                        what(),
                        format!("buffered {}", syscalls::name(rec.nr)),
                        syscalls::describe_entry(nr, &args),
                    ));
                }
                if let Some(out) = rec.output {
                    // Program output: the program must write the same
                    // bytes, and ask for as many (the record has the ones
                    // written). Replay writes them; the hook copies them
                    // into its record itself.
                    let mem = RemoteMem::new(real);
                    let asked = syscallbuf::output_asked(&mem, nr, &args).unwrap_or(u64::MAX);
                    let seen = crate::tracee::written_bytes(&mem, nr, &args, rec.data.len())
                        .unwrap_or_default();
                    if asked != out.asked || seen[..] != rec.data[..] {
                        return Err(self.diverged(
                            tid,
                            format!("output of {} (buffered)", syscalls::name(nr)),
                            format!(
                                "{:?} ({} bytes asked)",
                                String::from_utf8_lossy(&rec.data),
                                out.asked
                            ),
                            format!("{:?} ({asked} bytes asked)", String::from_utf8_lossy(&seen)),
                        ));
                    }
                    let result = rec.result;
                    echo_buffered_output(self.echo, rec);
                    result
                } else {
                    if !rec.data.is_empty() {
                        let addr = syscallbuf::record_data_address(real)
                            .map_err(perr("reading the syscall buffer", real))?;
                        RemoteMem::new(real)
                            .write(addr, &rec.data)
                            .map_err(perr("writing a buffered syscall's output", real))?;
                    }
                    rec.result
                }
            }
            Some(Buffered::Aborted { nr: recorded }) => {
                if recorded != nr {
                    return Err(self.diverged(
                        tid,
                        what(),
                        format!("unwound {}", syscalls::name(recorded)),
                        syscalls::describe_entry(nr, &args),
                    ));
                }
                syscallbuf::set_abort_commit(real).map_err(perr("setting abort_commit", real))?;
                -(libc::EINTR as i64)
            }
        };
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        if self.buffered.get(&tid).is_none_or(|q| q.is_empty()) {
            // The recording has nothing more: the next hook call bailed.
            syscallbuf::set_force_bail(real, true).map_err(perr("setting force_bail", real))?;
        }
        Ok(())
    }

    fn new_task(&mut self, parent: Tid, child: Tid, flags: u64) -> Result<(), ReplayError> {
        let task = self.task(parent)?;
        let (real, real_pid) = (task.real, task.real_pid);
        let State::AtEntry { nr, .. } = task.state else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("new task while thread {parent} is not in a clone"),
            }
            .into());
        };
        ptrace::syscall(real, 0).map_err(perr("PTRACE_SYSCALL", real))?;
        let ev = ptrace::wait_tid(real).map_err(perr("waitpid", real))?;
        let same_process = match ev {
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_CLONE,
                ..
            } => true,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK,
                ..
            } => false,
            ev => {
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(
                    parent,
                    format!("{} creating thread {child}", syscalls::name(nr)),
                    "a new task",
                    seen,
                ));
            }
        };
        let new_real = ptrace::geteventmsg(real).map_err(perr("PTRACE_GETEVENTMSG", real))? as i32;
        // Its first stop.
        match ptrace::wait_tid(new_real).map_err(perr("waitpid", new_real))? {
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_STOP,
                ..
            } => {}
            ev => {
                return Err(self.diverged(
                    child,
                    "first stop of a new thread",
                    "PTRACE_EVENT_STOP",
                    format!("{ev:?}"),
                ))
            }
        }
        // The kernel stored the new thread's real id where the program asked
        // (CLONE_PARENT_SETTID, CLONE_CHILD_SETTID) before either thread
        // runs again; store the recorded id there instead, right now.
        let args = match self.task(parent)?.state {
            State::AtEntry { args, .. } => args,
            _ => [0; 6],
        };
        for (addr, in_child) in tid_fields(real, nr, &args) {
            let mem = RemoteMem::new(if in_child { new_real } else { real });
            mem.write(addr, &child.to_le_bytes())
                .map_err(perr("writing the recorded thread id", real))?;
        }
        let pid = if same_process { real_pid } else { new_real };
        if !same_process {
            if let Some(space) = self.spaces.get(&real_pid) {
                let mut copy = space.clone();
                copy.borrowed = flags & libc::CLONE_VM as u64 != 0;
                self.spaces.insert(new_real, copy);
            }
        }
        self.watchdog.watch(pid, new_real);
        self.tasks.insert(
            child,
            Task {
                real: new_real,
                real_pid: pid,
                state: State::Idle { deliver: 0 },
                restart_pending: None,
                mask_after_handler: None,
            },
        );
        self.set_state(parent, State::InClone { nr });
        Ok(())
    }

    /// An emulated `rt_sigsuspend` (or `ppoll`, `pselect6`, `epoll_pwait`
    /// with a mask) did not swap in its temporary signal mask,
    /// but the signal that ended it while recording was delivered under that
    /// mask (and may be blocked under the thread's own). Swap it in now, at
    /// the syscall's exit stop, and put the thread's own mask back when the
    /// handler returns, as the kernel does.
    fn sigsuspend_mask(&mut self, tid: Tid, real: i32, mask_ptr: u64) -> Result<(), ReplayError> {
        let mut raw = [0u8; 8];
        RemoteMem::new(real)
            .read_exact(mask_ptr, &mut raw)
            .map_err(perr("reading sigsuspend's mask", real))?;
        let old =
            crate::tracee::blocked_signals(real).map_err(perr("reading the signal mask", real))?;
        set_signal_mask(real, u64::from_le_bytes(raw))
            .map_err(perr("setting sigsuspend's mask", real))?;
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.mask_after_handler = Some(old);
        }
        Ok(())
    }

    /// Runs `tid` to the first time since its last event that it is about
    /// to execute `point.ip` with `point`'s registers: an execution
    /// breakpoint at the ip, and a comparison at each hit.
    fn run_to_point(&mut self, tid: Tid, point: &ExecPoint) -> Result<(), ReplayError> {
        /// How long replay searches before it gives up: a point deep in a
        /// hot loop costs a stop per turn, and the recording is then not
        /// replayable in practice; verification says so.
        const SEARCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
        let started = std::time::Instant::now();
        let real = self.task(tid)?.real;
        let known = self.known_hits.get(&self.index).copied();
        if let Some(known) = known.filter(|&k| k < point_filter::FILTER_AFTER) {
            match rrtest_sys::perf::BreakpointCounter::arm(real, point.ip, known + 1) {
                Ok(counter) => return self.run_to_counted_point(tid, point, known, counter),
                // perf_event_open refused (a container's seccomp policy,
                // perf_event_paranoid): search instead, one stop per pass.
                Err(e) => debug!(tid, error = %e, "no counted breakpoint: searching"),
            }
        }
        ptrace::exec_breakpoint(real, Some(point.ip))
            .map_err(perr("setting a breakpoint", real))?;
        let mut hits = 0u64;
        loop {
            let (real, ev) = self.resume_to_stop(tid, Some(libc::SIGTRAP))?;
            let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            if !trapped_at(&ev, &regs, point.ip) {
                let _ = ptrace::exec_breakpoint(real, None);
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("reaching ip {:#x}", point.ip),
                    seen,
                ));
            }
            if crate::tracee::point_regs(&regs) == point.regs
                && crate::tracee::exec_point(real, &regs)
                    .map_err(perr("reading an execution point", real))?
                    == *point
            {
                ptrace::exec_breakpoint(real, None).map_err(perr("clearing a breakpoint", real))?;
                self.set_state(tid, State::Idle { deliver: 0 });
                trace!(tid, hits, "reached the execution point");
                self.point_hits.push([self.index, hits]);
                return Ok(());
            }
            hits += 1;
            // Many passes: a hot loop. Search on inside the program, then
            // check a count known from the verification.
            if hits == point_filter::FILTER_AFTER
                && self.filtered_search(tid, point, hits, started + SEARCH_LIMIT)?
            {
                return self.check_known_hits(tid, point, known);
            }
            if hits.is_multiple_of(1024) && started.elapsed() >= SEARCH_LIMIT {
                let _ = ptrace::exec_breakpoint(real, None);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("registers {:x?} at ip {:#x}", point.regs, point.ip),
                    format!(
                        "{hits} passes through ip in {} s without them (a point inside a hot loop: too costly to find)",
                        SEARCH_LIMIT.as_secs()
                    ),
                ));
            }
            // Go on past the instruction: the resume flag suppresses the
            // breakpoint for exactly one instruction, so no single-step
            // stop is needed.
            let mut regs = regs;
            regs.eflags |= RESUME_FLAG;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            self.set_state(tid, State::Idle { deliver: 0 });
        }
    }

    /// [`Session::run_to_point`] with the hit count a verification found:
    /// `counter`, armed by the caller, stops the thread at the `hits + 1`th
    /// execution of the ip, where the state must match (one stop instead of
    /// one per hit).
    fn run_to_counted_point(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        hits: u64,
        counter: rrtest_sys::perf::BreakpointCounter,
    ) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, Some(rrtest_sys::perf::OVERFLOW_SIGNAL))?;
        drop(counter);
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let stopped = matches!(ev, WaitEvent::Signal { signo, .. } if signo == rrtest_sys::perf::OVERFLOW_SIGNAL);
        let matches = stopped
            && regs.rip == point.ip
            && crate::tracee::point_regs(&regs) == point.regs
            && crate::tracee::exec_point(real, &regs)
                .map_err(perr("reading an execution point", real))?
                == *point;
        if !matches {
            let seen = if stopped {
                format!(
                    "ip {:#x} after {} hits with other state",
                    regs.rip,
                    hits + 1
                )
            } else {
                self.describe_stop(real, &ev)
            };
            return Err(self.diverged(
                tid,
                "execution point",
                format!("reaching ip {:#x}", point.ip),
                seen,
            ));
        }
        // The overflow signal is not delivered: the thread just stops here.
        self.set_state(tid, State::Idle { deliver: 0 });
        self.point_hits.push([self.index, hits]);
        Ok(())
    }

    fn rdtsc(&mut self, tid: Tid, ip: u64, tsc: u64, aux: Option<u32>) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, Some(libc::SIGSEGV))?;
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let decoded = crate::tracee::decode_rdtsc(&RemoteMem::new(real), regs.rip);
        match (ev, decoded) {
            (
                WaitEvent::Signal {
                    signo: libc::SIGSEGV,
                    ..
                },
                Some((is_rdtscp, len)),
            ) if regs.rip == ip && is_rdtscp == aux.is_some() => {
                regs.rax = tsc & 0xffff_ffff;
                regs.rdx = tsc >> 32;
                if let Some(aux) = aux {
                    regs.rcx = u64::from(aux);
                }
                regs.rip += len;
                // As the recorder does: the fault's resume flag must not
                // hide an execution point at the next instruction.
                regs.eflags &= !RESUME_FLAG;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                Ok(())
            }
            (ev, _) => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(tid, "rdtsc", format!("rdtsc at ip {ip:#x}"), seen))
            }
        }
    }

    fn signal(&mut self, s: SignalEvent) -> Result<(), ReplayError> {
        if s.signo == libc::SIGKILL {
            // The recorder killed the program here (a timeout, an
            // interrupt): kill it at the same point.
            for t in self.tasks.values_mut() {
                let _ = ptrace::tgkill(t.real_pid, t.real, libc::SIGKILL);
                t.state = State::Exiting;
            }
            return Ok(());
        }
        let tid = s.tid;
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        match s.kind {
            SignalKind::Synchronous { .. } => {}
            SignalKind::AtSyscallExit => {
                // The kernel restarts an interrupted syscall as it delivers.
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.restart_pending = None;
                }
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::AtPoint(point) => {
                self.run_to_point(tid, &point)?;
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::BeforeSyscall { nr } => {
                // Held back to the thread's next syscall: stop it there, skip
                // the syscall and back up to its instruction, then deliver.
                let (real, ev) = self.resume_to_stop(tid, None)?;
                let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                let at_entry = matches!(
                    ev,
                    WaitEvent::Event {
                        event: libc::PTRACE_EVENT_SECCOMP,
                        ..
                    }
                );
                if !at_entry || regs.orig_rax as i64 != nr {
                    let seen = self.describe_stop(real, &ev);
                    return Err(self.diverged(
                        tid,
                        format!("signal {} before {}", s.signo, syscalls::name(nr)),
                        format!("entry of {}", syscalls::name(nr)),
                        seen,
                    ));
                }
                regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
                regs.rax = regs.orig_rax;
                regs.orig_rax = u64::MAX;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                ptrace::tgkill(real_pid, real, s.signo).map_err(perr("tgkill", real))?;
            }
            SignalKind::Asynchronous { ip } => {
                return Err(Error::NotReplayable(vec![format!(
                    "signal {} delivered asynchronously at {ip:#x} (execution points are issue 4)",
                    s.signo
                )])
                .into())
            }
        }
        let (real, ev) = self.resume_to_stop(tid, Some(s.signo))?;
        match ev {
            WaitEvent::Signal { signo, .. } if signo == s.signo => {
                if let Ok(info) = <[u8; ptrace::SIGINFO_SIZE]>::try_from(s.siginfo.as_slice()) {
                    ptrace::setsiginfo(real, &info).map_err(perr("PTRACE_SETSIGINFO", real))?;
                }
                self.set_state(tid, State::Idle { deliver: s.signo });
                Ok(())
            }
            ev => {
                let seen = self.describe_stop(real, &ev);
                Err(self.diverged(tid, "signal", format!("signal {}", s.signo), seen))
            }
        }
    }
}

/// Writes a replayed buffered write's bytes to our own stdout or stderr,
/// when it wrote program output and replay echoes.
fn echo_buffered_output(echo: bool, rec: syscallbuf::Record) {
    if let (true, Some(out)) = (echo, rec.output) {
        inject::echo_output(&rrtest_trace::SyscallExtra::Output {
            fd: out.stream,
            data: rec.data.to_vec(),
        });
    }
}

/// Where a clone-family syscall made the kernel store the new thread's id:
/// `(address, in the child's address space)`.
fn tid_fields(tid: i32, nr: i64, args: &[u64; 6]) -> Vec<(u64, bool)> {
    let (flags, child_tid, parent_tid) = match nr {
        libc::SYS_clone => (args[0], args[3], args[2]),
        libc::SYS_clone3 => {
            let mem = RemoteMem::new(tid);
            let mut raw = [0u8; 32];
            if mem.read_exact(args[0], &mut raw).is_err() {
                return Vec::new();
            }
            let word =
                |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            (word(0), word(2), word(3))
        }
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    if flags & libc::CLONE_PARENT_SETTID as u64 != 0 && parent_tid != 0 {
        out.push((parent_tid, false));
    }
    if flags & libc::CLONE_CHILD_SETTID as u64 != 0 && child_tid != 0 {
        out.push((child_tid, true));
    }
    out
}

/// Where a syscall that waits under a temporary signal mask (its own
/// argument) has it: `rt_sigsuspend`, `ppoll`, `pselect6`, `epoll_pwait`,
/// `epoll_pwait2`. None when the call has no mask.
fn temporary_mask(tid: i32, nr: i64, args: &[u64; 6]) -> Option<u64> {
    let ptr = match nr {
        libc::SYS_rt_sigsuspend => args[0],
        libc::SYS_ppoll => args[3],
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => args[4],
        // A pointer to { const sigset_t *ss; size_t ss_len; }.
        libc::SYS_pselect6 if args[5] != 0 => {
            let mut raw = [0u8; 8];
            RemoteMem::new(tid).read_exact(args[5], &mut raw).ok()?;
            u64::from_le_bytes(raw)
        }
        _ => 0,
    };
    (ptr != 0).then_some(ptr)
}

/// Signals raised by the instruction a thread executes: they recur by
/// themselves in replay and must match the recording.
fn is_synchronous(signo: i32) -> bool {
    matches!(
        signo,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS
    )
}

/// Whether a stop is a `SIGTRAP` with the thread at `ip` (a breakpoint or a
/// trap instruction there).
fn trapped_at(ev: &WaitEvent, regs: &Regs, ip: u64) -> bool {
    matches!(
        ev,
        WaitEvent::Signal {
            signo: libc::SIGTRAP,
            ..
        }
    ) && regs.rip == ip
}

/// EFLAGS.RF: the next instruction does not raise an instruction breakpoint.
const RESUME_FLAG: u64 = 1 << 16;

/// Sets stopped thread `tid`'s signal mask with an injected rt_sigprocmask
/// (the thread must be at a stop other than a syscall entry).
fn set_signal_mask(tid: i32, mask: u64) -> std::io::Result<()> {
    let scratch = rrtest_abi::FIXED_PAGE_ADDR + inject::SCRATCH_OFFSET;
    RemoteMem::new(tid).write(scratch, &mask.to_le_bytes())?;
    let ret = crate::tracee::inject_via_fixed_page(
        tid,
        libc::SYS_rt_sigprocmask,
        [libc::SIG_SETMASK as u64, scratch, 0, 8, 0, 0],
    )?;
    if ret < 0 {
        return Err(std::io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(())
}
