//! Processes and threads of the replay: spawning the program and its first
//! start (its initial stack and auxiliary vector checked and made the
//! recorded ones),
//! each `execve` (the trace's copy of the new program, under a name of the
//! recorded length), and each clone or fork (the new thread registered under
//! its recorded id, which is written where the program asked for its id);
//! at the end, wherever replay stopped, killing and reaping every tracee.
//!
//! Mirrors the recorder's `session/process.rs`. It must not decide when a
//! thread runs (the event order does) nor check syscall results (`syscall.rs`).

use std::collections::{BTreeSet, HashMap};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use tracing::{debug, trace};

use super::{perr, Session, State, Task};
use crate::replayer::exe::ExecDir;
use crate::replayer::{gate, inject, watchdog};
use crate::replayer::{Divergence, Error, ReplayError, ReplayOptions};
use crate::tracee::syscallbuf::FrameFix;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::spawn::{spawn, SpawnSpec};
use rrtest_sys::{seccomp, RemoteMem};
use rrtest_syscalls as syscalls;
use rrtest_trace::{Event, ExecEvent, ExitStatus, PointDigest, Tid, TraceReader};

impl Session {
    /// Spawns the program of the trace in `opts.trace_dir` and replays its
    /// exec (event 0): the session stops before event 1. The program is
    /// killed and reaped when the session is dropped.
    pub(super) fn spawn(opts: &ReplayOptions) -> Result<Session, ReplayError> {
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
            // The recorded stack size limit: where the stack ends decides
            // how deep a recursion goes before it faults.
            stack_limit: header
                .stack_limit
                .unwrap_or_else(rrtest_sys::spawn::program_stack_limit),
        };
        let hard = rrtest_sys::spawn::stack_hard_limit();
        if spec.stack_limit > hard {
            return Err(Error::Spawn {
                program: exec.exe.clone(),
                source: std::io::Error::other(format!(
                    "the program was recorded with a stack size limit of {} KiB, above this \
                     host's hard limit of {} KiB (`ulimit -Hs`): its stack would end elsewhere \
                     (raise the hard limit to replay it)",
                    spec.stack_limit >> 10,
                    hard >> 10
                )),
            }
            .into());
        }
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
            leader: exec.tid,
            leader_status: None,
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
            watchdog: watchdog::Watchdog::start(),
            spaces: HashMap::new(),
            vdso_images: HashMap::new(),
            buffered: HashMap::new(),
            clone3_flags: HashMap::new(),
            loaded: HashMap::new(),
            gate_stop_ip: gate::routine().1,
            upcoming: None,
            debug: None,
            // Checked when the trace was opened: a kind this build knows.
            point_digest: header.point_digest_kind().unwrap_or(PointDigest::Sha256),
            traps_cleared: header.signal_traps_cleared,
            vdso: crate::tracee::VdsoMode::of_trace(header.own_vdso, header.format_version),
        };
        crate::tracee::set_point_digest(session.point_digest);
        crate::tracee::set_vdso_mode(session.vdso);
        session.tasks.insert(
            exec.tid,
            Task {
                real: pid,
                real_pid: pid,
                state: State::Idle { deliver: 0 },
                restart_pending: None,
                mask_after_handler: None,
                frame_fix: FrameFix::default(),
                sigcont_notice: false,
                entry_writes: Vec::new(),
            },
        );
        session.watchdog.watch(pid, pid);
        session.watched(|s| s.start(&exec))?;
        Ok(session)
    }

    /// Kills every tracee of the replay and reaps it, so that none is left
    /// behind (a stopped tracee would otherwise live on until this process
    /// exits). A process's leader is reaped after its other threads: the
    /// kernel reports it only once they are gone.
    pub(super) fn kill_all(&mut self) {
        let mut threads: Vec<(i32, i32)> = Vec::new();
        for t in self.tasks.values() {
            if let State::Gone(_) = t.state {
                continue;
            }
            let _ = ptrace::tgkill(t.real_pid, t.real, libc::SIGKILL);
            threads.push((t.real_pid, t.real));
        }
        // Threads of those processes not (yet) registered, such as one whose
        // clone did not match: the kernel attached them to this tracer too.
        let pids: BTreeSet<i32> = threads.iter().map(|&(pid, _)| pid).collect();
        for pid in pids {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for tid in dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
            {
                if !threads.iter().any(|&(_, t)| t == tid) {
                    threads.push((pid, tid));
                }
            }
        }
        threads.sort_by_key(|&(pid, tid)| pid == tid);
        for (_, tid) in threads {
            reap(tid);
        }
        self.tasks.clear();
    }
}

/// Waits until killed tracee `tid` is gone (any stop on the way resumed).
fn reap(tid: i32) {
    loop {
        match ptrace::wait_tid(tid) {
            Ok(WaitEvent::Exited { .. } | WaitEvent::Signaled { .. }) | Err(_) => return,
            Ok(_) => {
                let _ = ptrace::cont(tid, 0);
            }
        }
    }
}

/// How many times replay makes an `execve` again that failed with ETXTBSY
/// (its copy of the program still open for writing in a process another
/// thread forked meanwhile), a millisecond apart.
const EXEC_BUSY_TRIES: u32 = 500;

/// The length of `syscall` (`0f 05`) and of `int $0x80` (`cd 80`).
const SYSCALL_INSN_LEN: u64 = 2;

impl Session {
    /// A successful `execve` of thread `e.tid`, stopped at its entry: run
    /// the trace's copy of the program under a name of the recorded length.
    pub(super) fn exec(&mut self, e: ExecEvent) -> Result<(), ReplayError> {
        // An `execve` by a thread other than the main one (the recording
        // wrote its entry under its own id): the kernel gives it the
        // process id, which the `Exec` names.
        let execer = self.execing_thread(e.tid)?;
        // The exec'ing thread stays current while recording, so its entry
        // is not an event of its own: run it to the entry now.
        if let State::Idle { .. } = self.task(execer)?.state {
            let (real, ev) = self.resume_to_stop(execer, None)?;
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
                return Err(self.diverged(execer, "execve", format!("execve of {}", e.exe), seen));
            }
            self.set_state(
                execer,
                State::AtEntry {
                    nr,
                    args: ptrace::syscall_args(&regs),
                },
            );
        }
        let task = self.task(execer)?;
        let real = task.real;
        let real_pid = task.real_pid;
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
            // Our name is relative to the working directory, and a link:
            // not to the recorded descriptor, and followed.
            regs.rdi = libc::AT_FDCWD as u64;
            regs.rsi = scratch;
            regs.r8 = 0;
        } else {
            regs.rdi = scratch;
        }
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        // The process's other threads, which the exec kills.
        let siblings: Vec<(Tid, i32)> = self
            .tasks
            .iter()
            .filter(|&(&t, task)| {
                t != execer && task.real_pid == real_pid && !matches!(task.state, State::Gone(_))
            })
            .map(|(&t, task)| (t, task.real))
            .collect();
        ptrace::syscall(real, 0).map_err(perr("PTRACE_SYSCALL", real))?;
        let mut ev = self.reap_for_exec(real, real_pid, &siblings)?;
        let mut busy_tries = 0;
        while matches!(ev, WaitEvent::SyscallStop { .. }) && busy_tries < EXEC_BUSY_TRIES {
            // The copy of the program was busy (ETXTBSY): a process forked
            // by another thread of this one while the copy was being
            // written holds it open for writing until it execs itself. The
            // same execve again, a moment later (its entry's registers, the
            // syscall instruction once more).
            let now = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            if now.rax as i64 != -i64::from(libc::ETXTBSY) || now.orig_rax != regs.orig_rax {
                break;
            }
            busy_tries += 1;
            trace!(
                tid = e.tid,
                busy_tries,
                "the program's copy is busy: execve again"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
            let mut again = regs;
            again.rip -= SYSCALL_INSN_LEN;
            again.rax = regs.orig_rax;
            ptrace::setregs(real, &again).map_err(perr("PTRACE_SETREGS", real))?;
            ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
            match ptrace::wait_tid(real).map_err(perr("waitpid", real))? {
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } => {}
                other => {
                    let seen = self.describe_stop(real, &other);
                    return Err(self.diverged(
                        e.tid,
                        "execve",
                        format!("execve of {} made again (its copy was busy)", e.exe),
                        seen,
                    ));
                }
            }
            ptrace::syscall(real, 0).map_err(perr("PTRACE_SYSCALL", real))?;
            ev = self.reap_for_exec(real, real_pid, &siblings)?;
        }
        if execer != e.tid {
            // The old main thread is gone; the exec'ing one now has its id.
            let mut task = self.tasks.remove(&execer).expect("checked above");
            task.real = real_pid;
            self.tasks.insert(e.tid, task);
            self.loaded.remove(&execer);
            self.buffered.remove(&execer);
            self.watchdog.watch(real_pid, real_pid);
        }
        let real = real_pid;
        match ev {
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

    pub(super) fn start(&mut self, exec: &ExecEvent) -> Result<(), ReplayError> {
        let real = self.tasks[&exec.tid].real;
        let copy_at = crate::tracee::VdsoCopyAt::replaying(exec.vdso_copy);
        let facts = crate::tracee::prepare_after_exec(real, copy_at)
            .map_err(perr("preparing the tracee after exec", real))?;
        let real_pid = self.tasks[&exec.tid].real_pid;
        self.vdso_images.insert(real_pid, facts.vdso_images());
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
        self.exec_dir
            .restore_script_args(real, facts.sp, exec.exe.as_bytes())
            .map_err(perr("restoring the recorded script arguments", real))?;
        Ok(())
    }

    /// While an `execve` of process `real_pid` runs: the kernel kills its
    /// other threads (`siblings`: recorded id, real id) and waits until
    /// their tracer, us, has reaped them (a traced thread stays a zombie
    /// until then), so they are reaped here as they die (their
    /// `ThreadExit`s, after the `Exec`, find them gone). Returns the next
    /// stop of the process id, the exec'ing thread's id once the exec
    /// succeeded (a thread other than the main one takes it): the exec
    /// event, or what came instead (also the death of `execer`, the
    /// exec'ing thread's own id). A main thread that is not the exec'ing
    /// one is never reported: it vanishes. Polls (the stops come from
    /// several threads, and a blocking wait for one of them is what hung):
    /// a replay killed meanwhile (the watchdog, an interruption) ends here
    /// too.
    fn reap_for_exec(
        &mut self,
        execer: i32,
        real_pid: i32,
        siblings: &[(Tid, i32)],
    ) -> Result<WaitEvent, ReplayError> {
        let mut left: Vec<(Tid, i32)> = siblings
            .iter()
            .copied()
            .filter(|&(_, real)| real != real_pid)
            .collect();
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            let mut progress = false;
            let mut i = 0;
            while i < left.len() {
                let (tid, real) = left[i];
                let status = match ptrace::wait_tid_nohang(real) {
                    Ok(None) => {
                        i += 1;
                        continue;
                    }
                    Ok(Some(WaitEvent::Exited { code, .. })) => ExitStatus::Exited(code),
                    Ok(Some(WaitEvent::Signaled { signo, core, .. })) => {
                        ExitStatus::Signaled { signo, core }
                    }
                    // A stop on its way out: let it go on.
                    Ok(Some(_)) => {
                        let _ = ptrace::cont(real, 0);
                        progress = true;
                        i += 1;
                        continue;
                    }
                    // Reaped already (or not ours): gone.
                    Err(_) => ExitStatus::Exited(0),
                };
                self.set_state(tid, State::Gone(status));
                left.swap_remove(i);
                progress = true;
            }
            match ptrace::wait_tid_nohang(real_pid).map_err(perr("waitpid", real_pid))? {
                // The old main thread's stop on its way out (not the
                // exec'ing one): let it go on.
                Some(WaitEvent::Event {
                    event: libc::PTRACE_EVENT_EXIT,
                    ..
                }) => {
                    let _ = ptrace::cont(real_pid, 0);
                    progress = true;
                }
                Some(ev) => return Ok(ev),
                None => {}
            }
            if execer != real_pid {
                match ptrace::wait_tid_nohang(execer) {
                    Ok(Some(ev @ (WaitEvent::Exited { .. } | WaitEvent::Signaled { .. }))) => {
                        return Ok(ev)
                    }
                    Ok(Some(_)) => {
                        let _ = ptrace::cont(execer, 0);
                        progress = true;
                    }
                    // Gone under this id: it took the process id.
                    Ok(None) | Err(_) => {}
                }
            }
            if self
                .watchdog
                .fired
                .load(std::sync::atomic::Ordering::SeqCst)
                || watchdog::interrupted()
            {
                return Err(perr("waiting for the exec", real_pid)(io::Error::other(
                    "the replay was stopped",
                ))
                .into());
            }
            if progress {
                pause = std::time::Duration::from_micros(50);
            } else {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(5));
            }
        }
    }

    /// The thread that runs the exec of `Exec` event of thread `tid`: `tid`
    /// itself, or the thread of its process stopped at an `execve`'s entry
    /// (an exec by a thread other than the main one).
    fn execing_thread(&self, tid: Tid) -> Result<Tid, ReplayError> {
        let task = self.task(tid)?;
        let in_exec = |s: State| matches!(s, State::AtEntry { nr, .. } if nr == libc::SYS_execve || nr == libc::SYS_execveat);
        if in_exec(task.state) {
            return Ok(tid);
        }
        let pid = task.real_pid;
        Ok(self
            .tasks
            .iter()
            .find(|(&t, other)| t != tid && other.real_pid == pid && in_exec(other.state))
            .map_or(tid, |(&t, _)| t))
    }

    pub(super) fn new_task(
        &mut self,
        parent: Tid,
        child: Tid,
        flags: u64,
    ) -> Result<(), ReplayError> {
        let task = self.task(parent)?;
        let (real, real_pid) = (task.real, task.real_pid);
        let State::AtEntry { nr, .. } = task.state else {
            return Err(Error::Malformed {
                index: self.index,
                reason: format!("new task while thread {parent} is not in a clone"),
            }
            .into());
        };
        let ev = run_clone(real)?;
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
        for (addr, in_child) in crate::tracee::clone_tid_fields(real, nr, &args) {
            let mem = RemoteMem::new(if in_child { new_real } else { real });
            mem.write(addr, &child.to_le_bytes())
                .map_err(perr("writing the recorded thread id", real))?;
        }
        // A clone made without its namespace flags: the child's registers
        // are the parent's at the call; put the recorded flags back.
        let recorded_flags =
            (nr == libc::SYS_clone && args[0] & NAMESPACE_FLAGS != 0).then_some(args[0]);
        if let Some(recorded) = recorded_flags {
            let mut regs = ptrace::getregs(new_real).map_err(perr("PTRACE_GETREGS", new_real))?;
            regs.rdi = recorded;
            ptrace::setregs(new_real, &regs).map_err(perr("PTRACE_SETREGS", new_real))?;
        }
        // A clone3 made without them: its clone_args in memory (the
        // child's copy too, when it has one).
        if let Some((at, recorded)) = self.clone3_flags.remove(&parent) {
            let mut whose = vec![real];
            if !same_process && flags & libc::CLONE_VM as u64 == 0 {
                whose.push(new_real);
            }
            for t in whose {
                RemoteMem::new(t)
                    .write(at, &recorded.to_le_bytes())
                    .map_err(perr("restoring clone3's flags", t))?;
            }
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
                frame_fix: FrameFix::default(),
                sigcont_notice: false,
                entry_writes: Vec::new(),
            },
        );
        self.set_state(
            parent,
            State::InClone {
                nr,
                flags: recorded_flags,
            },
        );
        Ok(())
    }
}

/// Runs the clone-family syscall thread `real` is stopped at the entry of
/// to its `PTRACE_EVENT_CLONE`, `_FORK` or `_VFORK` stop (or to whatever
/// other stop it makes instead: a divergence the caller reports).
///
/// A clone gives up before it creates anything when a signal is pending
/// as it begins (`-ERESTARTNOINTR`), and the kernel runs it again once the
/// signal is handled. While recording, a signal that arrived later than
/// the clone's start did not stop it; replay writes the events of other
/// processes in the recorded order, but the clone only starts in the
/// kernel at its `NewTask` event, so a signal the replay itself raised in
/// between (SIGCHLD, when a child whose exit is written between the
/// clone's entry and its new task really exits) is pending already. That
/// signal is replay's own and is discarded, as `resume_to_stop` does, and
/// the clone runs again: its exit stop with `-ERESTARTNOINTR`, the
/// signal's stops, the entry stop of the same syscall made again (and its
/// seccomp stop), then the event.
fn run_clone(real: i32) -> Result<WaitEvent, ReplayError> {
    /// The syscall stop of the restarted clone's entry comes next.
    #[derive(PartialEq)]
    enum Phase {
        Running,
        Restarting,
        Entered,
    }
    let mut phase = Phase::Running;
    // A signal again at each start could keep it restarting forever.
    let mut restarts = 0;
    loop {
        ptrace::syscall(real, 0).map_err(perr("PTRACE_SYSCALL", real))?;
        let ev = ptrace::wait_tid(real).map_err(perr("waitpid", real))?;
        match ev {
            WaitEvent::SyscallStop { .. } if phase != Phase::Restarting && restarts < 16 => {
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                if regs.rax as i64 != -(ERESTARTNOINTR as i64) {
                    return Ok(ev);
                }
                debug!(real, "the clone restarts for a signal the replay raised");
                restarts += 1;
                phase = Phase::Restarting;
            }
            // Ours: discarded (the recorded ones come at their events).
            WaitEvent::Signal { signo, .. }
                if phase == Phase::Restarting && !super::signals::is_synchronous(signo) =>
            {
                trace!(real, signo, "discarding a signal the replay caused");
            }
            WaitEvent::SyscallStop { .. } if phase == Phase::Restarting => phase = Phase::Entered,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_SECCOMP,
                ..
            } if phase == Phase::Entered => {}
            ev => return Ok(ev),
        }
    }
}

/// The kernel's restart code for a syscall that must be made again as it
/// was once a signal is handled (not part of the user-space ABI).
const ERESTARTNOINTR: i32 = 513;

/// `CLONE_NEWNS`, `CLONE_NEWCGROUP`, `CLONE_NEWUTS`, `CLONE_NEWIPC`,
/// `CLONE_NEWUSER`, `CLONE_NEWPID`, `CLONE_NEWNET`.
pub(super) const NAMESPACE_FLAGS: u64 = 0x0002_0000 | 0x7e00_0000;

/// A `clone` or `clone3` whose flags ask for new namespaces, stopped at
/// its entry: replay makes it without them (needing no privilege; what the
/// program saw of its namespaces came from emulated calls: `getpid` 1 in a
/// new PID namespace, a new host name). For `clone`, `new_task` and the
/// exit put the recorded flags back in `rdi`; for `clone3`, whose flags are
/// the first word of its `clone_args`, this returns that word's address and
/// recorded value, which `new_task` writes back.
pub(super) fn without_namespaces(
    real: i32,
    nr: i64,
    mut regs: Regs,
) -> Result<Option<(u64, u64)>, ReplayError> {
    if nr == libc::SYS_clone && regs.rdi & NAMESPACE_FLAGS != 0 {
        regs.rdi &= !NAMESPACE_FLAGS;
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
    }
    if nr != libc::SYS_clone3 {
        return Ok(None);
    }
    let mem = RemoteMem::new(real);
    let mut word = [0u8; 8];
    if mem.read_exact(regs.rdi, &mut word).is_err() {
        return Ok(None);
    }
    let flags = u64::from_le_bytes(word);
    if flags & NAMESPACE_FLAGS == 0 {
        return Ok(None);
    }
    mem.write(regs.rdi, &(flags & !NAMESPACE_FLAGS).to_le_bytes())
        .map_err(perr("writing clone3's flags", real))?;
    Ok(Some((regs.rdi, flags)))
}

fn cstr(b: &[u8]) -> CString {
    CString::new(b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>()).expect("NULs removed")
}
