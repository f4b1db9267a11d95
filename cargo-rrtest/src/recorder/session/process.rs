//! The process tree: clone, fork and vfork events (a new task, the buffer
//! a new process copies or borrows), `PTRACE_EVENT_STOP`s, and a
//! successful `execve` (the new image, its file in the trace).
//!
//! Must not: handle syscall entries or exits (`syscall`) beyond finishing
//! an `execve`.

use std::io;

use tracing::{debug, trace};

use super::{ptrace_err, Error, Pending, Session, State, Task};
use crate::recorder::capture;
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::MemReader;
use rrtest_trace::{Event, ExecEvent, Tid};

impl Session {
    /// A `PTRACE_EVENT_*` stop: a seccomp stop is a syscall's entry; clone,
    /// fork and vfork add a task (and copy or lend the buffer); an exec
    /// stop finishes the `execve`; a `PTRACE_EVENT_STOP` is our interrupt, a
    /// new thread's first stop, or a group stop.
    pub(super) fn ptrace_event(&mut self, tid: Tid, event: i32, sig: i32) -> Result<(), Error> {
        match event {
            libc::PTRACE_EVENT_SECCOMP => self.syscall_entry(tid),
            libc::PTRACE_EVENT_CLONE | libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK => {
                let child =
                    ptrace::geteventmsg(tid).map_err(ptrace_err("PTRACE_GETEVENTMSG", tid))? as Tid;
                let (flags, same_process) = match self.tasks[&tid].state {
                    State::InSyscall { entered, .. } => clone_flags(tid, entered.nr, &entered.args),
                    _ => (libc::SIGCHLD as u64, false),
                };
                let pid = if same_process {
                    self.tasks[&tid].pid
                } else {
                    child
                };
                debug!(parent = tid, child, flags, "new task");
                if !same_process {
                    // A fork copies the buffer and the patches; a vfork
                    // child borrows them until it execs.
                    if let Some(space) = self.spaces.get_mut(&self.tasks[&tid].pid) {
                        let mut copy = space.clone();
                        copy.borrowed = flags & libc::CLONE_VM as u64 != 0;
                        if copy.borrowed && space.desched_now != rrtest_abi::DESCHED_POLLED {
                            // The child runs on the parent's locals: it
                            // must not arm the parent's event.
                            syscallbuf::set_desched_and_flags(
                                tid,
                                rrtest_abi::DESCHED_POLLED,
                                space.flags_now,
                            )
                            .map_err(ptrace_err("writing the desched descriptor", tid))?;
                            space.desched_now = rrtest_abi::DESCHED_POLLED;
                            copy.desched_now = rrtest_abi::DESCHED_POLLED;
                        }
                        if copy.borrowed && !copy.output_fds.is_empty() {
                            // The child shares the table: until the vfork
                            // returns, neither buffers output.
                            syscallbuf::update_output_table(tid, &mut copy)
                                .map_err(ptrace_err("writing the output descriptors", tid))?;
                            space.pending_table = copy.pending_table.take();
                            space.output_fds_stale = Some(tid);
                        }
                        self.spaces.insert(child, copy);
                    }
                }
                self.stats.threads += 1;
                match self.tasks.get_mut(&child) {
                    // Its first stop came before our clone event.
                    Some(t) => t.pid = pid,
                    None => {
                        self.tasks.insert(child, Task::new(pid, State::Unborn));
                    }
                }
                self.sched.add(child);
                self.emit(Event::NewTask {
                    parent: tid,
                    child,
                    flags,
                })?;
                ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
            }
            libc::PTRACE_EVENT_EXEC => self.exec(tid),
            libc::PTRACE_EVENT_STOP
                if self
                    .tasks
                    .get(&tid)
                    .map(|t| t.interrupt_requested)
                    .unwrap_or(false) =>
            {
                let task = self.tasks.get_mut(&tid).expect("task exists");
                task.interrupt_requested = false;
                match task.state {
                    State::Running => self.interrupted(tid),
                    // It reached a syscall first: the interrupt came late.
                    State::InSyscall { .. } => {
                        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
                    }
                    _ => Ok(()),
                }
            }
            libc::PTRACE_EVENT_STOP => {
                match self.tasks.get_mut(&tid) {
                    Some(t) if t.state == State::Unborn => {
                        t.set_ready(Pending::Nothing);
                        Ok(())
                    }
                    Some(t) if matches!(t.state, State::InSyscall { .. }) => {
                        // A stray stop (a group-stop, or a moot interrupt's)
                        // inside a syscall: its exit stop is still wanted.
                        trace!(tid, sig, "stop inside a syscall");
                        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
                    }
                    Some(_) => {
                        // A group-stop (SIGSTOP and friends), or a moot
                        // interrupt's stop: keep running.
                        trace!(tid, sig, "group stop");
                        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
                    }
                    None => {
                        // A new thread's first stop, before its parent's clone event.
                        self.tasks
                            .insert(tid, Task::new(tid, State::Ready(Pending::Nothing)));
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
        if self.tasks.get(&tid).is_some_and(|t| t.pid == self.leader) {
            // Another executable: its sites are not the recorded one's.
            self.exe = None;
        }
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
        let pid = self.tasks[&tid].pid;
        self.spaces.remove(&pid);
        let task = self.tasks.get_mut(&tid).expect("task exists");
        // Its event's descriptor closed with the exec (close-on-exec);
        // dropping our copy ends the counter.
        task.desched = None;
        task.desched_refused = false;
        let (exe, source) = task.exec_file.take().unwrap_or_else(|| {
            let p = std::path::PathBuf::from(format!("/proc/{tid}/exe"));
            (String::new(), p)
        });
        task.state = State::Running;
        task.resumed_at = ptrace::getregs(tid).ok();
        let exe_file = self.writer.add_file(&source)?;
        crate::tracee::interp::keep_loader(&mut self.writer, &source, &exe_file);
        self.emit(Event::Exec(ExecEvent {
            tid,
            exe,
            exe_file,
            at_random: facts.at_random,
            sp: facts.sp,
            ip: facts.ip,
        }))?;
        if self.exec_stop(tid) {
            // Traced: it stops for its tracer (ptrace emulated).
            return Ok(());
        }
        self.current = Some(tid);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Remembers which file an `execve` runs, to copy it into the trace if
    /// the exec succeeds.
    pub(super) fn note_exec_file(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<(), Error> {
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
}

/// The clone flags of a clone-family syscall, and whether the new task joins
/// the caller's thread group.
pub(super) fn clone_flags(tid: Tid, nr: i64, args: &[u64; 6]) -> (u64, bool) {
    let flags = match nr {
        libc::SYS_clone => args[0],
        libc::SYS_clone3 => RemoteMem::new(tid).read_u64(args[0]).unwrap_or(0),
        libc::SYS_vfork => (libc::CLONE_VFORK | libc::CLONE_VM | libc::SIGCHLD) as u64,
        _ => libc::SIGCHLD as u64,
    };
    (flags, flags & libc::CLONE_THREAD as u64 != 0)
}

/// The output table of a freshly exec'd process: its descriptors that
/// write to our stdout or stderr (1 and 2, inherited dups), with the
/// stream; fd 1 and 2 when they write elsewhere, as not output.
pub(super) fn inherited_output_fds(
    tid: Tid,
    outputs: &capture::OurOutputs,
) -> Vec<rrtest_abi::OutputFd> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{tid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut space = Space::default();
    for fd in fds {
        space.set_output_fd(fd, outputs.stream(tid, fd));
    }
    space.output_fds
}
