//! Syscalls in replay: run a thread to the entry of its next recorded
//! syscall, check number and arguments, and apply the recorded result
//! (emulate, execute and compare, or map the recorded file), as the
//! syscall table's `ReplayAction` says.
//!
//! Mirrors the recorder's `session/syscall.rs`. It must not have an effect
//! outside the tracee: only syscalls that shape the address space or create
//! threads run; the rest are skipped and their results injected.

use tracing::debug;

use super::signals::{set_signal_mask, temporary_mask};
use super::{perr, Session, State};
use crate::replayer::inject;
use crate::replayer::{Error, ReplayError};
use crate::tracee::syscallbuf;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::{self as syscalls, ReplayAction};
use rrtest_trace::{ExitStatus, SyscallResult, Tid};

impl Session {
    pub(super) fn run_to_entry(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<Regs, ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, None)?;
        let expected = || syscalls::describe_entry(nr, args);
        match ev {
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {
                // What its tracer changed at this entry while recording.
                self.apply_entry_writes(tid, real)?;
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                // As recorded: a 32-bit call under its own number.
                let seen_nr = crate::tracee::seen_nr(real, &regs, nr);
                let seen_args = if syscalls::is_compat(seen_nr) {
                    // With the words a `socketcall` or an old `mmap`
                    // reads at its entry, as recorded.
                    syscalls::entry_args(
                        &RemoteMem::new(real),
                        seen_nr,
                        syscalls::compat_args(&regs),
                    )
                } else {
                    ptrace::syscall_args(&regs)
                };
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
    pub(super) fn apply(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
        regs: &mut Regs,
        result: &SyscallResult,
        _split: bool,
    ) -> Result<(), ReplayError> {
        let real = self.task(tid)?.real;
        let action = if result.ret == -i64::from(libc::ENOSYS) && nr != libc::SYS_rt_sigreturn {
            // The kernel did not run it (a number it lacks, or a call its
            // tracer had skipped: PTRACE_SYSEMU, emulated), whatever it
            // is: skipped here too. Not `rt_sigreturn`, whose result is
            // the rax it restores, any value the program had (-ENOSYS
            // too, right after a call the kernel lacks); the recorder
            // refuses a skipped one.
            ReplayAction::Emulate
        } else if installs_seccomp_filter(nr, args) {
            // The program's own filter: it decides, in the kernel and with
            // no stop, what some later syscalls return (EPERM without a
            // trace of them), so replay must have it too.
            ReplayAction::Execute
        } else if result.ret == 0 && sets_own_stack_limit(nr, args) {
            // The stack limit the kernel grows the main thread's stack
            // under: replay must grow it as far (a deep recursion's
            // overflow, execution points deep in it). The old limits it
            // writes are the recorded ones, written back after it.
            ReplayAction::Execute
        } else {
            syscalls::lookup(nr)
                .map(|d| d.replay)
                .unwrap_or(ReplayAction::Emulate)
        };
        let name = syscalls::name(nr);
        // A 32-bit attach or detach (`shmat`, `shmdt`, `ipc`'s `SHMAT`,
        // `SHMDT`), or a 32-bit `io_setup` or `io_destroy`, whose AIO ring
        // is mapped and unmapped as an attach at the 32-bit context it
        // stored: its registers are the i386 ones, so the mapping is made
        // or unmapped by an injected x86-64 call instead.
        let compat_shm = syscalls::is_compat(nr)
            .then(|| syscalls::shm_op(nr, args).or_else(|| syscalls::aio_ring_op(nr, args)))
            .flatten();
        match action {
            ReplayAction::Emulate if compat_shm.is_some() && result.ret >= 0 => {
                self.compat_shm(tid, real, regs, nr, result, compat_shm)?;
            }
            ReplayAction::Emulate if nr == libc::SYS_shmat && result.ret >= 0 => {
                let prot = match syscalls::shm_op(nr, args) {
                    Some(syscalls::ShmOp::Attach { prot, .. }) => prot,
                    _ => libc::PROT_READ | libc::PROT_WRITE,
                };
                let got = inject::shared_mapping(real, regs, result, result.ret as u64, prot)?;
                if got != result.ret {
                    return Err(self.diverged(
                        tid,
                        "the mapping of shmat",
                        format!("{:#x}", result.ret),
                        format!("{got:#x}"),
                    ));
                }
            }
            ReplayAction::Emulate if nr == libc::SYS_io_setup && result.ret == 0 => {
                // The ring the recording saw, at the address `*ctxp` got.
                let ctx = result
                    .writes
                    .iter()
                    .find(|w| w.addr == args[1] && w.data.len() == 8)
                    .map(|w| u64::from_le_bytes(w.data[..8].try_into().expect("8 bytes")));
                let Some(ctx) = ctx else {
                    return Err(self.diverged(
                        tid,
                        "the ring of io_setup",
                        "its recorded address".to_string(),
                        "no write of *ctxp in the trace".to_string(),
                    ));
                };
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                let got = inject::shared_mapping(real, regs, result, ctx, rw)?;
                if got != ctx as i64 {
                    return Err(self.diverged(
                        tid,
                        "the ring mapping of io_setup",
                        format!("{ctx:#x}"),
                        format!("{got:#x}"),
                    ));
                }
            }
            ReplayAction::Emulate if nr == libc::SYS_io_destroy && result.ret == 0 => {
                let got = inject::shm_detach(real, regs, args[0])?;
                if got != 0 {
                    return Err(self.diverged(
                        tid,
                        "the unmapping of io_destroy's ring",
                        "0".to_string(),
                        got.to_string(),
                    ));
                }
            }
            ReplayAction::Emulate if nr == libc::SYS_shmdt && result.ret == 0 => {
                let got = inject::shm_detach(real, regs, args[0])?;
                if got != 0 {
                    return Err(self.diverged(
                        tid,
                        "the unmapping of shmdt",
                        "0".to_string(),
                        got.to_string(),
                    ));
                }
            }
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
                // A write or size change of a file mapped shared: the
                // file's new contents, for the mappings to see.
                if let rrtest_trace::SyscallExtra::MappedFile { file, path: key } = &result.extra {
                    let source = self.reader.file_path(file);
                    self.exec_dir
                        .sync_shared(key, &source)
                        .map_err(perr("writing a shared-mapped file's new contents", real))?;
                }
                if (-516..=-512).contains(&result.ret) {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.restart_pending = Some((result.ret, nr));
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
                // handler returns (or the program sets a mask itself, a
                // 32-bit `rt_sigprocmask` or `sigprocmask` too: by the
                // x86-64 number).
                let restore = match syscalls::row_nr(nr) {
                    libc::SYS_rt_sigreturn | libc::SYS_rt_sigprocmask => self
                        .tasks
                        .get_mut(&tid)
                        .and_then(|t| t.mask_after_handler.take()),
                    _ => None,
                };
                if let (Some(old), libc::SYS_rt_sigreturn) = (restore, nr) {
                    set_signal_mask(real, old).map_err(perr("restoring the signal mask", real))?;
                }
                if syscalls::row_nr(nr) == libc::SYS_set_tid_address {
                    // Returns the caller's thread id: the recorded one, not
                    // ours (the i386 call's too).
                    inject::set_ret(real, exit, result.ret)?;
                } else if action == ReplayAction::Execute && ret != result.ret {
                    return Err(self.diverged(
                        tid,
                        format!("result of {name}"),
                        result.ret.to_string(),
                        ret.to_string(),
                    ));
                }
                if sets_own_stack_limit(nr, args) {
                    inject::write_back(real, result)?;
                }
            }
            ReplayAction::Mmap => {
                // A 32-bit `mmap2` as the `mmap` it means: its registers
                // are the i386 ones, so what it maps is mapped by an
                // injected x86-64 call instead.
                let compat = syscalls::is_compat(nr);
                let args = &syscalls::x86_64_call(&syscalls::Call {
                    nr,
                    args: *args,
                    ret: result.ret,
                })
                .args;
                let ret = if result.ret < 0 {
                    inject::emulate(real, regs, result, false)?;
                    result.ret
                } else if let rrtest_trace::SyscallExtra::MappedFile { file, path: key } =
                    &result.extra
                {
                    let mut path = self.reader.file_path(file);
                    if args[3] as i32 & libc::MAP_SHARED != 0 {
                        let (copy, changed) = self
                            .exec_dir
                            .sync_shared(key, &path)
                            .map_err(perr("copying a shared-mapped file", real))?;
                        if changed {
                            // Right if nothing mapped the file since its
                            // last change (a change the recording did not
                            // mirror then is seen now); a replay mapping that
                            // still shows the old contents has diverged.
                            if let Some(p) = self.maps_file(&copy) {
                                return Err(self.diverged(
                                    tid,
                                    format!("contents of {key}, a file mapped MAP_SHARED (mapped by thread {p})"),
                                    "the recorded contents",
                                    "other contents, which its mappings show: a change of the file the recording did not mirror",
                                ));
                            }
                            debug!(
                                tid,
                                key, "a shared-mapped file's copy took the recorded contents"
                            );
                        }
                        path = copy;
                    }
                    inject::mmap_file(real, regs, args, result.ret, &path)?
                } else if compat {
                    inject::mmap_anonymous_injected(real, regs, args, result.ret)?
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
            // A clone that failed while recording made no task: its error
            // is emulated. `-ERESTARTNOINTR` (a signal was pending as it
            // began) is restarted as any syscall's restart code is: the
            // thread makes the same clone again, its next recorded entry.
            ReplayAction::Clone if result.ret < 0 => {
                inject::emulate(real, regs, result, false)?;
                if (-516..=-512).contains(&result.ret) {
                    if let Some(t) = self.tasks.get_mut(&tid) {
                        t.restart_pending = Some((result.ret, nr));
                    }
                }
            }
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
}

impl Session {
    /// Replays a successful 32-bit shared memory attach or detach
    /// (`op`), or a 32-bit `io_setup` or `io_destroy` (its AIO ring):
    /// the call is skipped; an attach maps shared anonymous memory at the
    /// recorded address (the result of `shmat`, the word `ipc`'s `SHMAT`
    /// or `io_setup` stored) with an injected x86-64 `mmap`, as long as
    /// the recorded contents (page-rounded), writes the recorded outputs
    /// and gives it the attach's protection (an injected `mprotect` for a
    /// read-only or executable one); a detach unmaps the mapping at its
    /// address (its length from the thread's /proc maps) with an injected
    /// `munmap`. The program sees the recorded result.
    fn compat_shm(
        &mut self,
        tid: Tid,
        real: i32,
        regs: &mut Regs,
        nr: i64,
        result: &SyscallResult,
        op: Option<syscalls::ShmOp>,
    ) -> Result<(), ReplayError> {
        let name = syscalls::name(nr);
        match op {
            Some(syscalls::ShmOp::Attach {
                stored_at, prot, ..
            }) => {
                let addr = match stored_at {
                    None => result.ret as u64,
                    Some(word) => {
                        let w = result
                            .writes
                            .iter()
                            .find(|w| w.addr == word && w.data.len() == 4)
                            .ok_or_else(|| Error::Malformed {
                                index: self.index,
                                reason: format!("{name} recorded without the address it stored"),
                            })?;
                        u64::from(u32::from_le_bytes(w.data[..4].try_into().expect("4 bytes")))
                    }
                };
                let len = inject::recorded_mapping_len(result, addr);
                let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
                let mmap = [addr, len, rw, libc::MAP_SHARED as u64, u64::MAX, 0];
                let got = inject::mmap_anonymous_injected(real, regs, &mmap, addr as i64)?;
                if got != addr as i64 {
                    return Err(self.diverged(
                        tid,
                        format!("the mapping of {name}"),
                        format!("{addr:#x}"),
                        format!("{got:#x}"),
                    ));
                }
                inject::write_back(real, result)?;
                let changed = inject::protect(real, addr, len, prot)?;
                if changed != 0 {
                    return Err(self.diverged(
                        tid,
                        format!("the protection of {name}'s mapping"),
                        "0".to_string(),
                        changed.to_string(),
                    ));
                }
                let exit = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                inject::set_ret(real, exit, result.ret)?;
            }
            Some(syscalls::ShmOp::Detach { addr }) => {
                let end = inject::mapping_end(real, addr)?;
                let exit = inject::skip_syscall(real, regs)?;
                let got = match end {
                    Some(end) => crate::tracee::inject_via_fixed_page(
                        real,
                        libc::SYS_munmap,
                        [addr, end - addr, 0, 0, 0, 0],
                    )
                    .map_err(perr("unmapping a 32-bit shmdt's segment", real))?,
                    None => -(libc::EINVAL as i64),
                };
                if got != 0 {
                    return Err(self.diverged(
                        tid,
                        format!("the unmapping of {name}"),
                        "0".to_string(),
                        got.to_string(),
                    ));
                }
                inject::set_ret(real, exit, result.ret)?;
            }
            None => {}
        }
        Ok(())
    }

    /// A replay process (its recorded id) that maps `file` now.
    fn maps_file(&self, file: &std::path::Path) -> Option<Tid> {
        let name = file.to_string_lossy();
        self.tasks.iter().find_map(|(&tid, t)| {
            let maps = std::fs::read_to_string(format!("/proc/{}/maps", t.real)).ok()?;
            maps.lines()
                .any(|l| l.ends_with(name.as_ref()) || l.ends_with(&format!("{name} (deleted)")))
                .then_some(tid)
        })
    }
}

impl Session {
    /// A process the recording saw die of SIGSYS with no stop for it, whose
    /// program installed a seccomp filter of its own: its filter killed it
    /// (`SECCOMP_RET_KILL_*`, which no tracer sees). Replay runs it into
    /// that death again, rather than killing it where it stands.
    pub(super) fn run_into_filter_kill(
        &mut self,
        pid: Tid,
        real: i32,
        status: ExitStatus,
    ) -> Result<(), ReplayError> {
        let ExitStatus::Signaled { signo, .. } = status else {
            return Ok(());
        };
        if signo != libc::SIGSYS
            || self.task(pid)?.state != (State::Idle { deliver: 0 })
            || seccomp_filters(real) < 2
        {
            return Ok(());
        }
        ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
        self.set_state(pid, State::Exiting { killed: false });
        Ok(())
    }
}

/// How many seccomp filters thread `real` has (`Seccomp_filters` in its
/// /proc status; ours is one), 0 when unknown.
fn seccomp_filters(real: i32) -> u32 {
    std::fs::read_to_string(format!("/proc/{real}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp_filters:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Whether the syscall `nr` with `args` sets the calling process's own
/// stack size limit: `setrlimit(RLIMIT_STACK, ...)`, or `prlimit64(0,
/// RLIMIT_STACK, new, ...)` (the 32-bit calls too). Another process's
/// (a pid given) is left emulated: its pid in replay is another.
fn sets_own_stack_limit(nr: i64, args: &[u64; 6]) -> bool {
    const RLIMIT_STACK: u64 = libc::RLIMIT_STACK as u64;
    match syscalls::row_nr(nr) {
        libc::SYS_setrlimit => args[0] == RLIMIT_STACK,
        libc::SYS_prlimit64 => args[0] == 0 && args[1] == RLIMIT_STACK && args[2] != 0,
        _ => false,
    }
}

/// Whether the syscall `nr` with `args` installs a seccomp filter (or
/// strict mode) for the calling thread: `prctl(PR_SET_SECCOMP, ...)` or
/// `seccomp(SECCOMP_SET_MODE_STRICT | SECCOMP_SET_MODE_FILTER, ...)`.
fn installs_seccomp_filter(nr: i64, args: &[u64; 6]) -> bool {
    const SECCOMP_SET_MODE_STRICT: u64 = 0;
    const SECCOMP_SET_MODE_FILTER: u64 = 1;
    (nr == libc::SYS_prctl && args[0] == libc::PR_SET_SECCOMP as u64)
        || (nr == libc::SYS_seccomp
            && matches!(args[0], SECCOMP_SET_MODE_STRICT | SECCOMP_SET_MODE_FILTER))
}
