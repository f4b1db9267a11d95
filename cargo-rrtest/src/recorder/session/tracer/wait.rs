//! The tracer's side of a stop: its `wait4`/`waitid` answered from the
//! emulation ([`Session::emulated_wait`]) or held until a report is due
//! ([`Session::park_wait`], [`Session::kick_tracers`]), the exits of
//! tracees the kernel's wait does not know of, and the `SIGCHLD`s a tracer
//! is sent. Must not: hold or release stops (`mod.rs`).

use super::*;

impl Session {
    /// A tracer's `wait4`/`waitid` entry: when a stop of one of its
    /// tracees it waits for is there, or the exit of one that is not its
    /// child, writes what the call returns (status, or siginfo) and returns
    /// its result; [`WaitAnswer::Kernel`]: the call runs (a child's exit,
    /// `WNOHANG`, or a wait the kernel ends when a stop comes, see
    /// [`Session::kick_tracers`]); [`WaitAnswer::Park`]: it waits for a
    /// tracee the kernel's wait does not know of (a thread, a grandchild),
    /// and the kernel would not wait (a `WNOHANG` poll for one gets 0,
    /// nothing yet, where the kernel would say ECHILD).
    pub(in crate::recorder::session) fn emulated_wait(
        &mut self,
        tid: Tid,
        pid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<WaitAnswer, Error> {
        if !self.emulating_ptrace || (nr != libc::SYS_wait4 && nr != libc::SYS_waitid) {
            return Ok(WaitAnswer::Kernel);
        }
        let Some(report) = self.report_for(tid, pid, nr, args) else {
            if !self.waits_on_emulation(tid, pid, nr, args) {
                return Ok(WaitAnswer::Kernel);
            }
            if wait_options(nr, args) & libc::WNOHANG as u64 == 0 {
                return Ok(WaitAnswer::Park);
            }
            // A poll: nothing yet (0), where the kernel would say ECHILD.
            if nr == libc::SYS_waitid && args[2] != 0 {
                // The kernel's waitid clears the fields it reports.
                let cleared = [0u8; 28];
                if RemoteMem::new(tid).write(args[2], &cleared).is_err() {
                    return Ok(WaitAnswer::Now(neg(libc::EFAULT)));
                }
            }
            return Ok(WaitAnswer::Now(0));
        };
        let (tracee, status, code) = match report {
            Report::Stop(tracee, status) => (tracee, status, CLD_TRAPPED),
            Report::Exit(i) => {
                let e = &self.emu_exits[i];
                let (status, code) = exit_status(e.status);
                (e.tracee, status, code)
            }
        };
        let mem = RemoteMem::new(tid);
        let nowait;
        if nr == libc::SYS_wait4 {
            nowait = false;
            if args[1] != 0 && mem.write(args[1], &status.to_ne_bytes()).is_err() {
                return Ok(WaitAnswer::Now(neg(libc::EFAULT)));
            }
            if args[3] != 0 {
                let _ = mem.write(args[3], &[0u8; 144]);
            }
        } else {
            nowait = args[3] & libc::WNOWAIT as u64 != 0;
            let si_status = if code == CLD_TRAPPED {
                status >> 8
            } else if code == CLD_EXITED {
                (status >> 8) & 0xff
            } else {
                status & 0x7f
            };
            let mut info = [0u8; SIGINFO_SIZE];
            info[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
            info[8..12].copy_from_slice(&code.to_ne_bytes());
            info[16..20].copy_from_slice(&tracee.to_ne_bytes());
            info[24..28].copy_from_slice(&si_status.to_ne_bytes());
            if args[2] != 0 && mem.write(args[2], &info).is_err() {
                return Ok(WaitAnswer::Now(neg(libc::EFAULT)));
            }
            if args[4] != 0 {
                let _ = mem.write(args[4], &[0u8; 144]);
            }
        }
        if !nowait {
            match report {
                Report::Stop(..) => {
                    if let Some(stop) = self.traced_mut(tracee).and_then(|t| t.stop.as_mut()) {
                        stop.reported = true;
                    }
                }
                Report::Exit(i) => {
                    self.emu_exits.remove(i);
                }
            }
        }
        Ok(WaitAnswer::Now(if nr == libc::SYS_wait4 {
            i64::from(tracee)
        } else {
            0
        }))
    }

    /// What wait call `nr` with `args` by thread `waiter` of tracer process
    /// `pid` reports now from the emulation: an unreported stop of a tracee
    /// it waits for, else the exit of one that is not its child (`waitid`
    /// only with `WEXITED`, which `wait4` implies). Any thread of the
    /// tracer's process waits for its tracees, but with `__WNOTHREAD` only
    /// the tracing thread ([`answers`]).
    fn report_for(&self, waiter: Tid, pid: Tid, nr: i64, args: &[u64; 6]) -> Option<Report> {
        let unannounced = self.unannounced();
        let stop = self.tasks.iter().find_map(|(&t, task)| {
            let tr = task.traced.as_ref()?;
            let stop = tr.stop.as_ref()?;
            (tr.tracer == pid
                && answers(tr.thread, waiter, nr, args)
                && !stop.reported
                && shows(t, task, &unannounced)
                && waits_for(nr, args, t))
            .then_some(Report::Stop(t, stop.status))
        });
        if stop.is_some() {
            return stop;
        }
        if !wants_exits(nr, args) {
            return None;
        }
        self.emu_exits
            .iter()
            .position(|e| {
                e.tracer == pid
                    && answers(e.thread, waiter, nr, args)
                    && waits_for(nr, args, e.tracee)
            })
            .map(Report::Exit)
    }

    /// The new tracees whose parent's event stop is still to come: their
    /// first stops do not show yet (as the kernel stops the parent at once
    /// in the clone, where the emulation stops it at the syscall's exit, a
    /// tracer would otherwise see the new tracee's stop, and even its exit,
    /// well before its parent's event).
    fn unannounced(&self) -> Vec<Tid> {
        self.tasks
            .values()
            .filter_map(|p| p.traced.as_ref()?.clone_event.map(|(_, c)| c))
            .collect()
    }

    /// Whether wait call `nr` with `args` by thread `waiter` of tracer
    /// process `pid`, with nothing to report, is the emulation's to answer:
    /// it waits for a live tracee the kernel's wait does not know of (a
    /// thread, a grandchild, one attached by another thread), and for no
    /// child of the tracer's (of `waiter`'s alone with `__WNOTHREAD`), so
    /// that the kernel would fail it with ECHILD at once. (With a child it
    /// waits for, the kernel's wait blocks, or polls, as it would natively;
    /// blocked, it is interrupted when a report is due:
    /// [`Session::kick_tracers`].)
    fn waits_on_emulation(&self, waiter: Tid, pid: Tid, nr: i64, args: &[u64; 6]) -> bool {
        let own = wait_options(nr, args) & WNOTHREAD != 0;
        // (Tracee, the tracer's child.)
        let tracees: Vec<(Tid, bool)> = self
            .tasks
            .iter()
            .filter_map(|(&t, task)| {
                let tr = task.traced.as_ref()?;
                (tr.tracer == pid && answers(tr.thread, waiter, nr, args) && waits_for(nr, args, t))
                    .then_some((t, tr.child))
            })
            .collect();
        // (Only children of the process's, which the kernel's wait knows
        // of, without __WNOTHREAD: no need to read /proc.)
        if tracees.iter().all(|&(_, child)| child && !own) {
            return false;
        }
        let children = if own {
            children_of_thread(pid, waiter)
        } else {
            children_of(pid)
        };
        // (Children unknown: the kernel's wait answers, as before.)
        let Some(children) = children else {
            return false;
        };
        let covers = tracees.iter().any(|(t, _)| !children.contains(t));
        covers && !children.into_iter().any(|c| waits_for(nr, args, c))
    }

    /// Holds tracer thread `tid` at the entry of its wait call `nr` with
    /// `args` ([`WaitAnswer::Park`]): not run until a report is due for it
    /// or it no longer waits on the emulation ([`Session::kick_tracers`]);
    /// then its entry is handled again. Nothing of the call is written
    /// yet, so replay sees one wait.
    pub(in crate::recorder::session) fn park_wait(&mut self, tid: Tid, nr: i64, args: [u64; 6]) {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        tracing::debug!(tid, nr, "a tracer's wait held for its tracees");
        task.parked = Some((nr, args));
        task.at_entry_stop = true;
        task.set_ready(Pending::Nothing);
        if self.current == Some(tid) {
            self.current = None;
        }
    }

    /// Thread `tid` (its task `task`, removed) is gone with `status`: a
    /// tracee that is not its tracer's child has its exit reported by the
    /// emulated wait, and its tracer is sent the `SIGCHLD`; a thread that
    /// was not its process's main one lets its own tracees go.
    pub(in crate::recorder::session) fn tracee_gone(
        &mut self,
        tid: Tid,
        task: &crate::recorder::session::Task,
        status: ExitStatus,
    ) {
        if task.pid != tid {
            self.tracing_thread_gone(task.pid, tid);
        }
        let Some(tr) = task.traced.as_ref().filter(|t| !t.child) else {
            return;
        };
        if !self.tasks.values().any(|t| t.pid == tr.tracer) {
            return;
        }
        self.emu_exits.push(EmuExit {
            tracer: tr.tracer,
            thread: tr.thread,
            tracee: tid,
            status,
        });
        let (wstatus, code) = exit_status(status);
        let si_status = if code == CLD_EXITED {
            (wstatus >> 8) & 0xff
        } else {
            wstatus & 0x7f
        };
        self.send_sigchld(tr.tracer, tid, code, si_status);
    }

    /// Interrupts each tracer thread blocked in the kernel's wait for a
    /// tracee whose stop (or emulated exit) is now there: its wait returns
    /// to be restarted, and the restarted one finds it
    /// ([`Session::emulated_wait`]). A wait held by the emulation
    /// ([`Session::park_wait`]) is let go when a report is due for it, or
    /// when it no longer waits on the emulation (its entry is then handled
    /// again: the report, or the kernel's wait).
    pub(in crate::recorder::session) fn kick_tracers(&mut self) -> Result<(), Error> {
        if !self.emulating_ptrace {
            return Ok(());
        }
        let unannounced = self.unannounced();
        // (Tracee, tracer, its tracing thread, an exit.)
        let mut due: Vec<(Tid, Tid, Option<Tid>, bool)> = self
            .tasks
            .iter()
            .filter_map(|(&t, task)| {
                let tr = task.traced.as_ref()?;
                let stop = tr.stop.as_ref()?;
                (!stop.reported && shows(t, task, &unannounced))
                    .then_some((t, tr.tracer, tr.thread, false))
            })
            .collect();
        for &(tracee, tracer, _, _) in &due {
            self.notify_tracer(tracee, tracer);
        }
        due.extend(
            self.emu_exits
                .iter()
                .map(|e| (e.tracee, e.tracer, e.thread, true)),
        );
        for (tracee, tracer, thread, exit) in due {
            let waiting: Vec<Tid> = self
                .tasks
                .iter()
                .filter(|(&wt, w)| {
                    w.pid == tracer
                        && !w.kicked
                        && matches!(w.state, State::InSyscall { entered, split: true }
                            if entered.forced_ret.is_none()
                                && waits_for(entered.nr, &entered.args, tracee)
                                && answers(thread, wt, entered.nr, &entered.args)
                                && (!exit || wants_exits(entered.nr, &entered.args)))
                })
                .map(|(&w, _)| w)
                .collect();
            for w in waiting {
                match ptrace::interrupt(w) {
                    Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                        return Err(ptrace_err("PTRACE_INTERRUPT", w)(e))
                    }
                    _ => {}
                }
                self.tasks.get_mut(&w).expect("listed").kicked = true;
            }
        }
        let parked: Vec<(Tid, Tid, i64, [u64; 6])> = self
            .tasks
            .iter()
            .filter_map(|(&w, task)| task.parked.map(|(nr, args)| (w, task.pid, nr, args)))
            .collect();
        for (w, pid, nr, args) in parked {
            if self.report_for(w, pid, nr, &args).is_some()
                || !self.waits_on_emulation(w, pid, nr, &args)
            {
                if let Some(task) = self.tasks.get_mut(&w) {
                    task.parked = None;
                    task.ready_since = Some(std::time::Instant::now());
                }
            }
        }
        Ok(())
    }

    /// The `SIGCHLD` the kernel sends a tracer when its tracee stops
    /// (`CLD_TRAPPED`), once per stop ([`Session::send_sigchld`]).
    fn notify_tracer(&mut self, tracee: Tid, tracer: Tid) {
        let Some(stop) = self.traced_mut(tracee).and_then(|t| t.stop.as_mut()) else {
            return;
        };
        if stop.notified {
            return;
        }
        stop.notified = true;
        // (A job-control trap's: CLD_STOPPED, the group stop's signal.)
        let (code, status) = match stop.group {
            Some(status) => (CLD_STOPPED, status),
            None => (CLD_TRAPPED, (stop.status >> 8) & 0x7f),
        };
        self.send_sigchld(tracer, tracee, code, status);
    }

    /// Sends tracer process `tracer` the `SIGCHLD` of a change of `tracee`
    /// (`code`, `CLD_*`, and `status`, its `si_status`): sent from here (a
    /// signal like any, recorded where it is delivered), its siginfo put in
    /// at its delivery ([`Session::sigchld_info`]).
    fn send_sigchld(&mut self, tracer: Tid, tracee: Tid, code: i32, status: i32) {
        let mut info = [0u8; SIGINFO_SIZE];
        info[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
        info[8..12].copy_from_slice(&code.to_ne_bytes());
        info[16..20].copy_from_slice(&tracee.to_ne_bytes());
        // The tracee's uid (its /proc directory is owned by it; the
        // recorder's own for one gone).
        let uid = std::fs::metadata(format!("/proc/{tracee}"))
            .or_else(|_| std::fs::metadata("/proc/self"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        info[20..24].copy_from_slice(&uid.to_ne_bytes());
        info[24..28].copy_from_slice(&status.to_ne_bytes());
        self.chld_infos.insert(tracer, info);
        if let Err(e) = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(tracer),
            nix::sys::signal::Signal::SIGCHLD,
        ) {
            tracing::debug!(tracer, %e, "sending a tracer its SIGCHLD");
        }
    }

    /// The siginfo of the `SIGCHLD` `tid` stops for, when the recorder
    /// sent it for an emulated stop ([`Session::notify_tracer`]).
    pub(in crate::recorder::session) fn sigchld_info(
        &mut self,
        tid: Tid,
        signo: i32,
        info: &[u8; SIGINFO_SIZE],
    ) -> Option<[u8; SIGINFO_SIZE]> {
        if signo != libc::SIGCHLD || !self.emulating_ptrace {
            return None;
        }
        let sender = i32::from_ne_bytes(info[16..20].try_into().expect("4 bytes"));
        if ptrace::siginfo_code(info) != SI_USER || sender != std::process::id() as i32 {
            return None;
        }
        let pid = self.tasks.get(&tid)?.pid;
        self.chld_infos.remove(&pid)
    }

    /// Process `pid`, a tracer, is gone: its tracees are let go (killed,
    /// with `PTRACE_O_EXITKILL`; a vfork parent held in its event stop
    /// goes on into its vfork), and the exits it was to hear of are
    /// dropped.
    pub(in crate::recorder::session) fn tracer_gone(&mut self, pid: Tid) {
        self.let_tracees_go(pid, None);
    }

    /// Thread `tid` of process `pid` is gone, the process living on: the
    /// tracees it attached are let go as at its process's end (the kernel
    /// detaches a thread's tracees at its exit, `exit_ptrace`).
    fn tracing_thread_gone(&mut self, pid: Tid, tid: Tid) {
        if self.emulating_ptrace {
            self.let_tracees_go(pid, Some(tid));
        }
    }

    /// Lets go the tracees of process `pid` (those of its thread `thread`
    /// alone when given), as [`Session::tracer_gone`] says.
    fn let_tracees_go(&mut self, pid: Tid, thread: Option<Tid>) {
        let ours = |tr: &Traced| tr.tracer == pid && (thread.is_none() || tr.thread == thread);
        self.emu_exits
            .retain(|e| !(e.tracer == pid && (thread.is_none() || e.thread == thread)));
        let tracees: Vec<Tid> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.traced.as_ref().is_some_and(ours))
            .map(|(&tid, _)| tid)
            .collect();
        for tid in tracees {
            self.keep_program_slots(tid);
        }
        let mut in_vfork = Vec::new();
        for (&tid, task) in self.tasks.iter_mut() {
            let Some(tr) = task.traced.as_ref().filter(|t| ours(t)) else {
                continue;
            };
            if tr.options & PTRACE_O_EXITKILL != 0 {
                let _ = ptrace::tgkill(task.pid, tid, libc::SIGKILL);
            }
            if tr.vfork_held {
                in_vfork.push(tid);
            }
            task.traced = None;
            task.ready_since = Some(std::time::Instant::now());
        }
        for tid in in_vfork {
            if let Err(e) = self.release_vfork_parent(tid) {
                // (Its stall is then the watchdog's to report.)
                warn!(tid, %e, "resuming a vfork parent whose tracer is gone");
            }
        }
    }
}

/// What an emulated wait reports.
#[derive(Debug, Clone, Copy)]
enum Report {
    /// A tracee's stop: its id and status.
    Stop(Tid, i32),
    /// The exit at this index of `Session::emu_exits`.
    Exit(usize),
}

/// Whether the emulated stop of tracee `t` (its task `task`) shows to its
/// tracer: the recorder has it stopped (ready, or held at its vfork event
/// stop), and it is not a new tracee's first
/// stop whose parent's event stop is still to come (`unannounced`).
fn shows(t: Tid, task: &crate::recorder::session::Task, unannounced: &[Tid]) -> bool {
    let held = matches!(task.state, State::Ready(_))
        || task.traced.as_ref().is_some_and(|tr| tr.vfork_held);
    held && !unannounced.contains(&t)
}

/// The options of wait call `nr` with `args` (`wait4`'s or `waitid`'s).
fn wait_options(nr: i64, args: &[u64; 6]) -> u64 {
    if nr == libc::SYS_wait4 {
        args[2]
    } else {
        args[3]
    }
}

/// Whether wait call `nr` with `args` reports exits: `wait4` always,
/// `waitid` with `WEXITED`.
fn wants_exits(nr: i64, args: &[u64; 6]) -> bool {
    nr == libc::SYS_wait4 || (nr == libc::SYS_waitid && args[3] & libc::WEXITED as u64 != 0)
}

/// A wait status for an exit (`wait4`'s), and its `SIGCHLD` code.
fn exit_status(status: ExitStatus) -> (i32, i32) {
    match status {
        ExitStatus::Exited(code) => ((code & 0xff) << 8, CLD_EXITED),
        ExitStatus::Signaled { signo, core: true } => (signo | 0x80, CLD_DUMPED),
        ExitStatus::Signaled { signo, core: false } => (signo, CLD_KILLED),
    }
}

/// The children of process `pid`, zombies among them (the
/// `/proc/PID/task/TID/children` of its threads); None when none of those
/// can be read (a kernel without `CONFIG_PROC_CHILDREN`). A thread gone
/// meanwhile is passed over.
fn children_of(pid: Tid) -> Option<Vec<Tid>> {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let lists: Vec<String> = threads
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .collect();
    if lists.is_empty() {
        return None;
    }
    Some(
        lists
            .iter()
            .flat_map(|text| text.split_whitespace().filter_map(|c| c.parse().ok()))
            .collect(),
    )
}

/// `__WNOTHREAD`: a wait for the calling thread's own children and
/// tracees only.
const WNOTHREAD: u64 = 0x2000_0000;

/// Whether wait call `nr` with `args` by thread `waiter` may report a tracee
/// traced by thread `thread` of the waiter's process (None: not known, any):
/// any thread of the tracer's process may wait for it, unless it asks with
/// `__WNOTHREAD` for its own alone (the kernel's `do_wait` looks at each
/// thread's tracees).
fn answers(thread: Option<Tid>, waiter: Tid, nr: i64, args: &[u64; 6]) -> bool {
    wait_options(nr, args) & WNOTHREAD == 0 || thread.is_none_or(|t| t == waiter)
}

/// The children of thread `tid` of process `pid` alone (those it forked,
/// `/proc/PID/task/TID/children`); None when it cannot be read.
fn children_of_thread(pid: Tid, tid: Tid) -> Option<Vec<Tid>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect(),
    )
}

/// Whether wait call `nr` with `args` waits for child `tracee` (a process
/// group counts as any child).
fn waits_for(nr: i64, args: &[u64; 6], tracee: Tid) -> bool {
    if nr == libc::SYS_wait4 {
        let pid = args[0] as i32;
        pid <= 0 || pid == tracee
    } else if nr == libc::SYS_waitid {
        let (idtype, id) = (args[0] as u32, args[1] as i32);
        match idtype {
            libc::P_ALL | libc::P_PGID => true,
            libc::P_PID => id == tracee,
            _ => false,
        }
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_waits_for_the_child_it_names_or_any() {
        let wait4 = |pid: i32| [pid as u64, 0, 0, 0, 0, 0];
        assert!(waits_for(libc::SYS_wait4, &wait4(-1), 42));
        assert!(waits_for(libc::SYS_wait4, &wait4(42), 42));
        assert!(!waits_for(libc::SYS_wait4, &wait4(43), 42));
        // A process group counts as any child.
        assert!(waits_for(libc::SYS_wait4, &wait4(0), 42));
        assert!(waits_for(libc::SYS_wait4, &wait4(-7), 42));
        let waitid = |idtype: u32, id: i32| [u64::from(idtype), id as u64, 0, 0, 0, 0];
        assert!(waits_for(libc::SYS_waitid, &waitid(libc::P_ALL, 0), 42));
        assert!(waits_for(libc::SYS_waitid, &waitid(libc::P_PID, 42), 42));
        assert!(!waits_for(libc::SYS_waitid, &waitid(libc::P_PID, 43), 42));
        // A pidfd is not followed.
        assert!(!waits_for(libc::SYS_waitid, &waitid(3, 5), 42));
        assert!(!waits_for(libc::SYS_read, &wait4(-1), 42));
    }

    #[test]
    fn wnothread_waits_for_the_waiters_own_tracees() {
        let wait4 = |options: u64| [u64::MAX, 0, options, 0, 0, 0];
        assert!(answers(Some(7), 8, libc::SYS_wait4, &wait4(0)));
        assert!(!answers(Some(7), 8, libc::SYS_wait4, &wait4(WNOTHREAD)));
        assert!(answers(Some(8), 8, libc::SYS_wait4, &wait4(WNOTHREAD)));
        // Not known (PTRACE_TRACEME): any thread.
        assert!(answers(None, 8, libc::SYS_wait4, &wait4(WNOTHREAD)));
        let waitid = [u64::from(libc::P_ALL), 0, 0, WNOTHREAD | 4, 0, 0];
        assert!(!answers(Some(7), 8, libc::SYS_waitid, &waitid));
    }

    #[test]
    fn wait4_reports_exits_and_waitid_with_wexited() {
        let any = [u64::MAX, 0, 0, 0, 0, 0];
        assert!(wants_exits(libc::SYS_wait4, &any));
        let waitid = |options: i32| [u64::from(libc::P_ALL), 0, 0, options as u64, 0, 0];
        assert!(wants_exits(libc::SYS_waitid, &waitid(libc::WEXITED)));
        assert!(!wants_exits(libc::SYS_waitid, &waitid(libc::WSTOPPED)));
        assert!(!wants_exits(libc::SYS_read, &any));
    }

    #[test]
    fn a_process_children_are_listed() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let me = std::process::id() as Tid;
        let listed = children_of(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed
            .expect("children readable")
            .contains(&(child.id() as Tid)));
        assert_eq!(children_of(-1), None);
    }

    #[test]
    fn exits_are_wait_statuses_and_sigchld_codes() {
        assert_eq!(exit_status(ExitStatus::Exited(11)), (11 << 8, CLD_EXITED));
        // Only the low byte of the code is the status's.
        assert_eq!(exit_status(ExitStatus::Exited(0x105)), (5 << 8, CLD_EXITED));
        let killed = ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        };
        assert_eq!(exit_status(killed), (libc::SIGKILL, CLD_KILLED));
        let dumped = ExitStatus::Signaled {
            signo: libc::SIGSEGV,
            core: true,
        };
        assert_eq!(exit_status(dumped), (libc::SIGSEGV | 0x80, CLD_DUMPED));
    }
}
