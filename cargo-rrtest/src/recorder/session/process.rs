//! The process tree: clone, fork and vfork events (a new task, the buffer
//! a new process copies or borrows), `PTRACE_EVENT_STOP`s, and a
//! successful `execve` (the new image, its file in the trace).
//!
//! Must not: handle syscall entries or exits (`syscall`) beyond finishing
//! an `execve`.

use std::io;

use tracing::{debug, trace};

use super::{jobctl, ptrace_err, Error, Pending, Session, State, Task};
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
                        if copy.borrowed
                            && space.controls_now.desched_fd != rrtest_abi::DESCHED_POLLED
                        {
                            // The child runs on the parent's locals: it
                            // must not arm the parent's event.
                            let controls = syscallbuf::Controls {
                                desched_fd: rrtest_abi::DESCHED_POLLED,
                                ..space.controls_now
                            };
                            syscallbuf::write_controls(tid, controls)
                                .map_err(ptrace_err("writing the desched descriptor", tid))?;
                            space.controls_now = controls;
                            copy.controls_now = controls;
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
                    Some(t) => {
                        t.pid = pid;
                        t.awaits_clone_event = false;
                    }
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
                // A tracee's new thread or process, auto-attached to its
                // tracer (ptrace emulated), starts held in a stop of its
                // own, which its tracer's wait finds once it is taken.
                let traced = self.traced_clone(tid, child, flags);
                if traced || flags & libc::CLONE_CHILD_SETTID as u64 != 0 {
                    self.await_first_stop(child)?;
                }
                if self.held_in_vfork(tid) {
                    // A traced vfork parent stays in this stop, its
                    // tracer's PTRACE_EVENT_VFORK, until resumed by it.
                    return Ok(());
                }
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
                    // A group stop came first (the interrupt is moot).
                    State::Running if jobctl::is_stop_signal(sig) && task.traced.is_none() => {
                        self.group_stop(tid, sig)
                    }
                    State::Running => self.interrupted(tid),
                    // It reached a syscall first: the interrupt came late.
                    State::InSyscall { .. } => self.resume_in_syscall(tid),
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
                        self.resume_in_syscall(tid)
                    }
                    Some(t) if jobctl::is_stop_signal(sig) && t.traced.is_none() => {
                        // A group stop (SIGSTOP and friends): held there
                        // until the process is continued.
                        self.group_stop(tid, sig)
                    }
                    Some(_) => {
                        // A moot interrupt's stop, the notice of a
                        // SIGCONT, a group stop of a thread its (emulated)
                        // tracer holds: keep running.
                        trace!(tid, sig, "group stop");
                        self.go_on(tid)
                    }
                    None => {
                        // A new thread's first stop, before its parent's clone event.
                        let mut task = Task::new(tid, State::Ready(Pending::Nothing));
                        // Where the program traces, the event may make it a
                        // tracee, stopped before it runs: it waits for it.
                        task.awaits_clone_event = self.emulating_ptrace;
                        self.tasks.insert(tid, task);
                        Ok(())
                    }
                }
            }
            _ => ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid)),
        }
    }

    /// Takes the first stop of the new thread `child` now, unless it came
    /// already.
    ///
    /// The kernel writes a `CLONE_CHILD_SETTID` child's id into its memory
    /// only as the child first runs, just before that stop: a parent that
    /// shares the memory (or a shared mapping) would otherwise see the word
    /// still zero, or not, as the machine's scheduler fell, while replay
    /// always writes it at the clone event (a `CLONE_VM` parent's loop on
    /// the word took another path there and diverged).
    fn await_first_stop(&mut self, child: Tid) -> Result<(), Error> {
        if self.tasks.get(&child).map(|t| t.state) != Some(State::Unborn) {
            return Ok(());
        }
        let ev = ptrace::wait_tid(child).map_err(ptrace_err("waitpid", child))?;
        self.handle(ev)
    }

    /// A successful `execve`: let it return, prepare the new image exactly as
    /// at the start, and write an `Exec` event (which also ends the syscall).
    ///
    /// An `execve` by a thread other than its process's main thread: the
    /// kernel kills the other threads and gives the exec'ing thread the
    /// process id as its thread id (`tid` here; the old id is the event's
    /// message). Its entry is written first (`SyscallEntry` under the old
    /// id: replay runs that thread into it), and the `ThreadExit` of each
    /// killed thread after the `Exec`.
    fn exec(&mut self, tid: Tid) -> Result<(), Error> {
        if self.tasks.get(&tid).is_some_and(|t| t.pid == self.leader) {
            // Another executable: its sites are not the recorded one's.
            self.exe = None;
        }
        if let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) {
            self.code.exec(pid, tid);
        }
        let former =
            ptrace::geteventmsg(tid).map_err(ptrace_err("PTRACE_GETEVENTMSG", tid))? as Tid;
        if former != tid {
            self.exec_from_thread(tid, former)?;
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
        let facts = crate::tracee::prepare_after_exec(tid, crate::tracee::VdsoCopyAt::Kernel)
            .map_err(ptrace_err("preparing the tracee after exec", tid))?;
        let pid = self.tasks[&tid].pid;
        self.spaces.remove(&pid);
        self.vdso_images.insert(pid, facts.vdso_images());
        let task = self.tasks.get_mut(&tid).expect("task exists");
        // Its event's descriptor closed with the exec (close-on-exec);
        // dropping our copy ends the counter.
        task.desched = None;
        task.desched_refused = false;
        let exec_file = task.exec_file.take();
        task.state = State::Running;
        task.resumed_at = ptrace::getregs(tid).ok();
        // What the kernel ran: the file opened at the entry, as the thread
        // saw it (a `#!` script stays the script), else its exe link now.
        let proc_exe = std::path::PathBuf::from(format!("/proc/{tid}/exe"));
        let (exe, source) = match &exec_file {
            Some(f) => (
                f.name.clone(),
                f.source().unwrap_or_else(|| proc_exe.clone()),
            ),
            None => (String::new(), proc_exe.clone()),
        };
        let root = std::path::PathBuf::from(format!("/proc/{tid}/root"));
        let exe_file = self.writer.add_file(&source)?;
        crate::tracee::interp::keep_loader(&mut self.writer, &source, &exe_file, &root);
        crate::tracee::interp::keep_script_interpreter(
            &mut self.writer,
            &source,
            &exe_file,
            &proc_exe,
            &root,
        );
        self.emit(Event::Exec(ExecEvent {
            tid,
            exe,
            exe_file,
            at_random: facts.at_random,
            sp: facts.sp,
            ip: facts.ip,
            vdso_copy: crate::tracee::vdso_copy_to_record(&facts),
        }))?;
        for gone in std::mem::take(&mut self.killed_by_exec) {
            self.task_gone(gone, rrtest_trace::ExitStatus::Exited(0))?;
        }
        if self.exec_stop(tid) {
            // Traced: it stops for its tracer (ptrace emulated).
            return Ok(());
        }
        self.current = Some(tid);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// The exec stop of thread `former`, which took the process id `tid`:
    /// writes its entry under the old id, makes its task the process's main
    /// one (the old main thread is gone, unreported), and collects the
    /// other threads' deaths, whose events follow the `Exec`.
    fn exec_from_thread(&mut self, tid: Tid, former: Tid) -> Result<(), Error> {
        let Some(mut task) = self.tasks.remove(&former) else {
            return Err(Error::Ptrace {
                op: "execve from a thread",
                tid,
                source: io::Error::other(format!("thread {former} is not known")),
            });
        };
        debug!(tid, former, "execve by a thread other than the main one");
        if let State::InSyscall { entered, .. } = task.state {
            self.emit(Event::SyscallEntry {
                tid: former,
                nr: entered.nr,
                args: entered.args,
            })?;
        }
        task.pid = tid;
        self.tasks.insert(tid, task);
        if self.current == Some(former) {
            self.current = Some(tid);
        }
        self.sched.add(tid);
        // The kernel killed every other thread before this stop: reap those
        // it has not reported yet (their deaths are plain exits).
        let siblings: Vec<Tid> = self
            .tasks
            .iter()
            .filter(|&(&t, task)| task.pid == tid && t != tid)
            .map(|(&t, _)| t)
            .collect();
        for t in siblings {
            loop {
                match ptrace::wait_tid(t) {
                    Ok(WaitEvent::Exited { .. } | WaitEvent::Signaled { .. }) | Err(_) => break,
                    Ok(_) => {
                        let _ = ptrace::cont(t, 0);
                    }
                }
            }
            if !self.killed_by_exec.contains(&t) {
                self.killed_by_exec.push(t);
            }
        }
        Ok(())
    }

    /// Whether a thread of `tid`'s process other than `tid` is inside an
    /// `execve` (its exit is then the exec's doing).
    pub(super) fn sibling_in_execve(&self, tid: Tid) -> bool {
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return false;
        };
        self.tasks
            .iter()
            .any(|(&t, task)| t != tid && task.pid == pid && task.exec_file.is_some())
    }

    /// Remembers which file an `execve` runs, to copy it into the trace if
    /// the exec succeeds: opened now, as the thread sees it (its root, its
    /// working directory, its descriptor table: a close-on-exec descriptor
    /// is gone by the exec stop), with the name the kernel gives the new
    /// image (`AT_EXECFN`).
    pub(super) fn note_exec_file(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<(), Error> {
        let (dirfd, path_arg) = if nr == libc::SYS_execveat {
            (args[0] as i32, args[1])
        } else {
            (libc::AT_FDCWD, args[0])
        };
        let Ok(raw) = RemoteMem::new(tid).read_cstr(path_arg, 4096) else {
            return Ok(()); // The kernel will fail it with EFAULT.
        };
        let name = String::from_utf8_lossy(&raw).into_owned();
        let (name, source) = exec_target(tid, dirfd, name);
        let file = std::fs::File::open(&source).ok();
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.exec_file = Some(ExecFile { name, file, source });
        }
        Ok(())
    }

    /// A failed `execve` returned: it runs nothing.
    pub(super) fn exec_failed(&mut self, tid: Tid) {
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.exec_file = None;
        }
    }
}

/// The file an `execve` in progress runs.
#[derive(Debug)]
pub(super) struct ExecFile {
    /// The name the kernel gives the new image (`AT_EXECFN`): the path as
    /// passed, or `/dev/fd/N[/PATH]` for `execveat` relative to a
    /// descriptor.
    name: String,
    /// The file, opened at the entry (None: it could not be; `source`
    /// then, at the exec stop).
    file: Option<std::fs::File>,
    /// Where the recorder found it (through `/proc/TID/...`).
    source: std::path::PathBuf,
}

impl ExecFile {
    /// A path that opens the file noted at the entry.
    fn source(&self) -> Option<std::path::PathBuf> {
        use std::os::fd::AsRawFd;
        match &self.file {
            Some(f) => Some(format!("/proc/self/fd/{}", f.as_raw_fd()).into()),
            None => Some(self.source.clone()),
        }
    }
}

/// For `execve(path)` or `execveat(dirfd, path)` by thread `tid`: the name
/// the kernel gives the new image, and where the recorder opens the file as
/// the thread sees it (not as the recorder would: the thread's root and
/// working directory may differ, and `dirfd` is the thread's).
fn exec_target(tid: Tid, dirfd: i32, path: String) -> (String, std::path::PathBuf) {
    use std::path::PathBuf;
    if path.starts_with('/') {
        // Names of the caller's own /proc entries, which opened by us would
        // be ours (the recorder's executable, descriptors, threads).
        let own = [
            ("/proc/self/", format!("/proc/{tid}/")),
            ("/proc/thread-self/", format!("/proc/{tid}/task/{tid}/")),
            ("/dev/fd/", format!("/proc/{tid}/fd/")),
        ];
        let source = own
            .iter()
            .find_map(|(prefix, ours)| {
                path.strip_prefix(prefix)
                    .map(|rest| PathBuf::from(format!("{ours}{rest}")))
            })
            .unwrap_or_else(|| {
                PathBuf::from(format!("/proc/{tid}/root")).join(path.trim_start_matches('/'))
            });
        (path, source)
    } else if dirfd == libc::AT_FDCWD {
        let source = PathBuf::from(format!("/proc/{tid}/cwd")).join(&path);
        (path, source)
    } else if path.is_empty() {
        // `AT_EMPTY_PATH` (fexecve): the descriptor is the file.
        (
            format!("/dev/fd/{dirfd}"),
            PathBuf::from(format!("/proc/{tid}/fd/{dirfd}")),
        )
    } else {
        (
            format!("/dev/fd/{dirfd}/{path}"),
            PathBuf::from(format!("/proc/{tid}/fd/{dirfd}")).join(&path),
        )
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

#[cfg(test)]
mod tests {
    use super::exec_target;

    /// The file an exec runs, as thread 42 sees it: its own /proc entries
    /// (not the recorder's), its root, working directory and descriptors;
    /// the name is the kernel's `AT_EXECFN`.
    #[test]
    fn exec_targets_are_the_tracee_view() {
        let t = |dirfd: i32, path: &str| {
            let (name, source) = exec_target(42, dirfd, path.to_owned());
            (name, source.to_string_lossy().into_owned())
        };
        let cwd = libc::AT_FDCWD;
        let same = |p: &str, s: &str| (p.to_owned(), s.to_owned());
        assert_eq!(
            t(cwd, "/proc/self/exe"),
            same("/proc/self/exe", "/proc/42/exe")
        );
        assert_eq!(
            t(cwd, "/proc/thread-self/exe"),
            same("/proc/thread-self/exe", "/proc/42/task/42/exe")
        );
        assert_eq!(t(cwd, "/dev/fd/3"), same("/dev/fd/3", "/proc/42/fd/3"));
        assert_eq!(
            t(cwd, "/usr/bin/env"),
            same("/usr/bin/env", "/proc/42/root/usr/bin/env")
        );
        assert_eq!(
            t(cwd, "bin/prog"),
            same("bin/prog", "/proc/42/cwd/bin/prog")
        );
        assert_eq!(t(5, ""), same("/dev/fd/5", "/proc/42/fd/5"));
        assert_eq!(t(5, "prog"), same("/dev/fd/5/prog", "/proc/42/fd/5/prog"));
        // An absolute name ignores the descriptor.
        assert_eq!(t(5, "/bin/sh"), same("/bin/sh", "/proc/42/root/bin/sh"));
    }
}
