//! The tracer's requests about a tracee ([`Session::tracee_request`]): the
//! reads answered from the real tracee, the writes made into it and
//! recorded as tracee writes, and what the kernel's checks of them are
//! (the user area's offsets, register sets, `PTRACE_GET_SYSCALL_INFO`'s
//! layout). Must not: hold or release stops (`mod.rs`), answer waits
//! (`wait.rs`).

use super::*;

impl Session {
    /// A request about tracee `target` of process `pid`.
    pub(super) fn tracee_request(
        &mut self,
        tid: Tid,
        pid: Tid,
        request: i32,
        target: Tid,
        addr: u64,
        data: u64,
    ) -> Result<i64, Error> {
        let Some(traced) = self
            .tasks
            .get(&target)
            .and_then(|t| t.traced.as_ref())
            .filter(|t| t.tracer == pid && t.thread.is_none_or(|th| th == tid))
            .cloned()
        else {
            // (Not traced by this thread: another thread of the tracer's
            // process may wait for it, but not make requests.)
            return Ok(neg(libc::ESRCH));
        };
        // (A vfork parent held in its event stop is stopped inside the
        // call: its task is in the syscall.)
        let stopped = traced.stop.is_some()
            && (traced.vfork_held
                || self
                    .tasks
                    .get(&target)
                    .is_some_and(|t| matches!(t.state, State::Ready(_))));
        let listening = traced.stop.as_ref().is_some_and(|s| s.listening);
        if listening && request != req::INTERRUPT && request != req::KILL {
            // (Not in a ptrace stop: the kernel's ptrace_check_attach.)
            return Ok(neg(libc::ESRCH));
        }
        match request {
            req::INTERRUPT => {
                if !traced.seized {
                    return Ok(neg(libc::EIO));
                }
                if listening {
                    // Trapped again, the same PTRACE_EVENT_STOP (its
                    // signal the stop signal while the group stop lasts).
                    if let Some(s) = self.traced_mut(target).and_then(|t| t.stop.as_mut()) {
                        s.listening = false;
                        s.reported = false;
                        s.notified = false;
                    }
                    return Ok(0);
                }
                if traced.stop.is_none() {
                    let event = libc::SIGTRAP | (libc::PTRACE_EVENT_STOP << 8);
                    let info = user_siginfo(libc::SIGTRAP, pid);
                    self.emu_stop(target, (event << 8) | 0x7f, info, SignalKind::AtSyscallExit)?;
                }
                return Ok(0);
            }
            req::KILL => {
                // It dies where it is; replay kills it where its exit is.
                let tgid = self.tasks[&target].pid;
                let _ = ptrace::tgkill(tgid, target, libc::SIGKILL);
                return Ok(0);
            }
            req::SETOPTIONS => {
                if let Some(option) = unemulated_option(data) {
                    warn!("PTRACE_SETOPTIONS: the recorder does not emulate {option}");
                    return Ok(neg(libc::EINVAL));
                }
                if let Some(t) = self.traced_mut(target) {
                    t.options = data;
                }
                return Ok(0);
            }
            _ => {}
        }
        if !stopped {
            return Ok(neg(libc::ESRCH));
        }
        let stop = traced.stop.clone().expect("stopped");
        let mem = RemoteMem::new(target);
        let tracer_mem = RemoteMem::new(tid);
        match request {
            req::SINGLESTEP | req::SYSEMU_SINGLESTEP if data != 0 && stop.takes_signal() => {
                // The signal would be delivered and its handler's frame
                // stepped into: not emulated.
                warn!(
                    "{} with a signal at a signal-delivery stop: the recorder does not emulate it (the program gets EIO)",
                    request_name(request)
                );
                Ok(neg(libc::EIO))
            }
            req::CONT
            | req::DETACH
            | req::SYSCALL
            | req::SINGLESTEP
            | req::SYSEMU
            | req::SYSEMU_SINGLESTEP => {
                let mut signo = data as i64;
                if !(0..=64).contains(&signo) {
                    return Ok(neg(libc::EIO));
                }
                if let Some(answer) =
                    self.group_stop_resume(target, request, &mut signo, &traced)?
                {
                    return Ok(answer);
                }
                let at_syscall_stop = stop.syscall && stop.status >> 16 == 0;
                if signo != 0
                    && at_syscall_stop
                    && (stop.trap_next
                        || stop.sysemu.is_some()
                        || self.tasks[&target].at_entry_stop)
                {
                    // Sent at a syscall-entry stop, the signal is pending
                    // while the call runs (it may interrupt it); at an
                    // exec's exit stop, after the exec's SIGTRAP. (At a
                    // PTRACE_SYSEMU stop replay's thread is at the skipped
                    // call's seccomp stop, where a signal to resume with is
                    // not taken as at the recorder's exit stop.)
                    warn!(
                        "{} with a signal at a syscall-entry stop, a PTRACE_SYSEMU stop or an exec's exit stop: the recorder does not emulate it (the program gets EIO)",
                        request_name(request)
                    );
                    return Ok(neg(libc::EIO));
                }
                if signo != 0 && at_syscall_stop && request != req::DETACH {
                    // At a syscall-exit stop the kernel sends the signal to
                    // the tracee (`send_sig`, si_code SI_KERNEL), which
                    // makes a signal-delivery stop on its way back to user
                    // code; that stop's own resume request then applies.
                    let info = kernel_siginfo(signo as i32);
                    self.hold_stopped(target, EmuStop::delivery(signo as i32, info));
                    return Ok(0);
                }
                if request != req::DETACH && stop.trap_next {
                    // The exit stop of an exec (legacy, no
                    // PTRACE_O_TRACEEXEC): the exec's SIGTRAP, queued
                    // then, is delivered now, a signal-delivery stop.
                    let tracee_pid = self.tasks[&target].pid;
                    let trap =
                        EmuStop::delivery(libc::SIGTRAP, user_siginfo(libc::SIGTRAP, tracee_pid));
                    self.hold_stopped(target, trap);
                    return Ok(0);
                }
                if request == req::SYSCALL && stop.exit_next {
                    // At an event stop inside a syscall (a clone's, an
                    // exec's) or a PTRACE_SYSEMU stop: its exit stop comes
                    // at once (after PTRACE_SYSEMU, the skipped call's).
                    self.syscall_stop(target, false);
                    if let Some(s) = self.traced_mut(target).and_then(|t| t.stop.as_mut()) {
                        s.sysemu = stop.sysemu;
                    }
                    return Ok(0);
                }
                let sysemu = matches!(request, req::SYSEMU | req::SYSEMU_SINGLESTEP);
                let in_vfork = traced.vfork_held;
                if request == req::DETACH {
                    self.keep_program_slots(target);
                }
                let task = self.tasks.get_mut(&target).expect("checked");
                // (Under PTRACE_SYSEMU too: its syscalls are traced, and the
                // next one stops at its entry, `Session::sysemu_entry`.)
                task.syscall_stops = request == req::SYSCALL || sysemu;
                task.step = match request {
                    // Inside the vfork: its step ends at the call's exit.
                    req::SINGLESTEP | req::SYSEMU_SINGLESTEP if in_vfork => Step::InSyscall,
                    req::SINGLESTEP | req::SYSEMU_SINGLESTEP => Step::Asked,
                    _ => Step::No,
                };
                // The signal, delivered when it next runs: at a
                // signal-delivery stop the one asked for (ignored at an
                // event stop); detached at a syscall-exit stop, the one
                // sent there, or at an exec's exit stop the exec's
                // SIGTRAP, delivered untraced.
                let resumption = if stop.trap_next {
                    let tracee_pid = task.pid;
                    Some((
                        libc::SIGTRAP,
                        user_siginfo(libc::SIGTRAP, tracee_pid),
                        stop.kind,
                    ))
                } else if signo != 0 && at_syscall_stop {
                    // Detached at a syscall-exit stop: sent, and delivered
                    // untraced.
                    Some((signo as i32, kernel_siginfo(signo as i32), stop.kind))
                } else if signo != 0 && stop.takes_signal() {
                    let signo = signo as i32;
                    let info = if signo == stop.status >> 8 {
                        stop.info
                    } else {
                        user_siginfo(signo, pid)
                    };
                    Some((signo, info, stop.kind))
                } else {
                    None
                };
                if resumption.is_some() {
                    task.resume_signal = resumption;
                }
                if request == req::DETACH {
                    task.traced = None;
                } else if let Some(t) = task.traced.as_mut() {
                    t.stop = None;
                    t.vfork_held = false;
                    t.sysemu = sysemu;
                }
                task.ready_since = Some(std::time::Instant::now());
                if in_vfork {
                    // Held in its vfork event stop: it goes on into the
                    // kernel's wait for the child (its exit stop comes when
                    // the child execs or exits).
                    self.release_vfork_parent(target)?;
                }
                Ok(0)
            }
            req::LISTEN => {
                // Only at a seized tracee's PTRACE_EVENT_STOP, as the
                // kernel takes it.
                if !traced.seized {
                    // (Named: before 2026-12-06 every PTRACE_LISTEN was
                    // refused so; `ptrace_refused` asks for it.)
                    warn!("PTRACE_LISTEN of a tracee not seized: EIO, as the kernel answers");
                    return Ok(neg(libc::EIO));
                }
                if !stop.event_stop() {
                    return Ok(neg(libc::EIO));
                }
                if let Some(s) = self.traced_mut(target).and_then(|t| t.stop.as_mut()) {
                    s.listening = true;
                    s.reported = true;
                }
                Ok(0)
            }
            req::PEEKTEXT | req::PEEKDATA => {
                let Ok(word) = mem.read_vec(addr, 8) else {
                    return Ok(neg(libc::EIO));
                };
                Ok(store(&tracer_mem, data, &word))
            }
            req::PEEKUSER => {
                let regs = shown_regs(target, &stop)?;
                let bytes = ptrace::regs_to_bytes(&regs);
                let at = addr as usize;
                // (Any offset the program gives: aligned and below the
                // registers' size, so `at + 8` cannot overflow.)
                let word = if !at.is_multiple_of(8) {
                    return Ok(neg(libc::EIO));
                } else if at < bytes.len() {
                    bytes[at..at + 8].to_vec()
                } else if (848..848 + 64).contains(&at) {
                    // Debug registers: what the program wrote (the
                    // recorder's own are not its; `debugregs.rs`).
                    self.peek_debugreg(target, (at - 848) / 8)
                        .to_ne_bytes()
                        .to_vec()
                } else {
                    warn!(offset = at, "PTRACE_PEEKUSER: this offset is not emulated");
                    return Ok(neg(libc::EIO));
                };
                Ok(store(&tracer_mem, data, &word))
            }
            req::POKETEXT | req::POKEDATA => {
                let held = self.held_at(target);
                if held == HeldAt::ExitEvent {
                    return Ok(refused_at_exit_event(&request_name(request)));
                }
                let bytes = data.to_ne_bytes().to_vec();
                if mem.write(addr, &bytes).is_err() {
                    return Ok(neg(libc::EIO));
                }
                // At a syscall-entry stop, replay's tracee is not at the
                // entry yet (the code it runs to get there may write the
                // same memory): it writes it there.
                let kind = if held == HeldAt::SyscallEntry {
                    WriteKind::MemoryAtEntry
                } else {
                    WriteKind::Memory
                };
                self.emit(Event::TraceeWrite {
                    tid,
                    target,
                    kind,
                    addr,
                    bytes,
                })?;
                Ok(0)
            }
            req::GETREGS => {
                let regs = shown_regs(target, &stop)?;
                Ok(store(&tracer_mem, data, &ptrace::regs_to_bytes(&regs)))
            }
            req::GETFPREGS => {
                let fp =
                    ptrace::getfpregs(target).map_err(ptrace_err("PTRACE_GETFPREGS", target))?;
                Ok(store(&tracer_mem, data, &fp))
            }
            req::SETREGS => {
                if let Some(r) = self.refuse_regs_write_here(target, "PTRACE_SETREGS") {
                    return Ok(r);
                }
                let Ok(bytes) = tracer_mem.read_vec(data, ptrace::REGS_SIZE) else {
                    return Ok(neg(libc::EFAULT));
                };
                let bytes: [u8; ptrace::REGS_SIZE] = bytes[..].try_into().expect("REGS_SIZE");
                let before = ptrace::regs_to_bytes(&shown_regs(target, &stop)?);
                self.set_tracee_regs(tid, target, &before, &bytes)
            }
            req::GETSIGINFO => Ok(store(&tracer_mem, data, &stop.info)),
            req::PEEKSIGINFO => self.peek_siginfo(target, &tracer_mem, addr, data),
            req::ARCH_PRCTL => self.arch_prctl(tid, target, &tracer_mem, &stop, data, addr),
            req::GET_THREAD_AREA => {
                // The kernel takes the index from `addr` as an int.
                let Ok(idx) = u32::try_from(addr as i32) else {
                    return Ok(neg(libc::EIO));
                };
                Ok(match ptrace::get_thread_area(target, idx) {
                    Ok(desc) => store(&tracer_mem, data, &desc),
                    Err(e) => neg(e.raw_os_error().unwrap_or(libc::EIO)),
                })
            }
            req::GETREGSET => Ok(get_regset(target, &tracer_mem, addr, data, stop.sysemu)),
            req::SETREGSET => self.set_regset(tid, target, &tracer_mem, addr, data),
            req::POKEUSER => self.poke_user(tid, target, addr, data),
            req::GETSIGMASK => {
                if addr != SIGSET_SIZE {
                    return Ok(neg(libc::EINVAL));
                }
                Ok(match ptrace::getsigmask(target) {
                    Ok(mask) => store(&tracer_mem, data, &mask.to_ne_bytes()),
                    Err(e) => neg(e.raw_os_error().unwrap_or(libc::EIO)),
                })
            }
            req::SETSIGMASK => {
                if addr != SIGSET_SIZE {
                    return Ok(neg(libc::EINVAL));
                }
                let Ok(raw) = tracer_mem.read_vec(data, SIGSET_SIZE as usize) else {
                    return Ok(neg(libc::EFAULT));
                };
                let mask = u64::from_ne_bytes(raw[..8].try_into().expect("8 bytes"));
                self.set_tracee_mask(tid, target, mask)
            }
            req::SETFPREGS => {
                let Ok(raw) = tracer_mem.read_vec(data, FPREGS_SIZE) else {
                    return Ok(neg(libc::EFAULT));
                };
                let fp: [u8; FPREGS_SIZE] = raw[..].try_into().expect("512 bytes");
                self.set_tracee_fpregs(tid, target, &fp, FpWrite::SetFpRegs)
            }
            req::GET_SYSCALL_INFO => {
                let regs = shown_regs(target, &stop)?;
                // The kernel tells syscall stops by their si_code, which
                // has 0x80 only under PTRACE_O_TRACESYSGOOD.
                let op = if stop.syscall && ptrace::siginfo_code(&stop.info) == libc::SIGTRAP | 0x80
                {
                    // (A PTRACE_SYSEMU stop is an entry stop: message 1.)
                    let sysemu_entry = stop.sysemu.is_some() && stop.msg == Some(1);
                    if self.tasks[&target].at_entry_stop || sysemu_entry {
                        InfoOp::Entry
                    } else {
                        InfoOp::Exit
                    }
                } else {
                    InfoOp::None
                };
                let (info, size) = syscall_info(op, &regs);
                let n = usize::try_from(addr).unwrap_or(usize::MAX).min(size);
                if n > 0 && store(&tracer_mem, data, &info[..n]) != 0 {
                    return Ok(neg(libc::EFAULT));
                }
                Ok(size as i64)
            }
            req::SETSIGINFO => {
                // What a signal the tracer resumes it with carries.
                let Ok(bytes) = tracer_mem.read_vec(data, SIGINFO_SIZE) else {
                    return Ok(neg(libc::EFAULT));
                };
                if let Some(s) = self.traced_mut(target).and_then(|t| t.stop.as_mut()) {
                    s.info.copy_from_slice(&bytes);
                }
                Ok(0)
            }
            req::GETEVENTMSG => {
                // At an exit stop, the status to come; after an exec, the
                // thread that exec'd (it, here).
                let msg = traced
                    .stop
                    .as_ref()
                    .and_then(|s| s.msg)
                    .unwrap_or(u64::try_from(target).unwrap_or(0));
                Ok(store(&tracer_mem, data, &msg.to_ne_bytes()))
            }
            other => {
                warn!(
                    "{}: the recorder does not emulate this request (the program gets EIO)",
                    request_name(other)
                );
                Ok(neg(libc::EIO))
            }
        }
    }
}

/// EIO, with a warning naming request `name`, for a write into a tracee
/// held at the `PTRACE_EVENT_EXIT` stop of an exit (see
/// [`Session::refuse_regs_write_here`]).
fn refused_at_exit_event(name: &str) -> i64 {
    warn!("{name} at a PTRACE_EVENT_EXIT stop: the recorder does not emulate it (the program gets EIO)");
    neg(libc::EIO)
}

/// The most pending signals `PTRACE_PEEKSIGINFO` reads of a queue (the
/// kernel's default `RLIMIT_SIGPENDING` is in the tens of thousands; a
/// queue that long is not a tracer's case).
const PEEKSIGINFO_MAX: usize = 4096;

/// Offset of `orig_rax` in `struct user_regs_struct`.
const ORIG_RAX: usize = 120;

/// `arch_prctl` codes (`<asm/prctl.h>`).
const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

/// The name of an `arch_prctl` code that `PTRACE_ARCH_PRCTL` passes to the
/// kernel's `do_arch_prctl_64` and the recorder does not emulate (the
/// vDSO mappings, linear address masking, shadow stacks); None for the
/// four it does and for a code the kernel does not know there (EINVAL).
fn unemulated_arch_prctl(code: u64) -> Option<&'static str> {
    Some(match code {
        0x2001 => "ARCH_MAP_VDSO_X32",
        0x2002 => "ARCH_MAP_VDSO_32",
        0x2003 => "ARCH_MAP_VDSO_64",
        0x4001 => "ARCH_GET_UNTAG_MASK",
        0x4002 => "ARCH_ENABLE_TAGGED_ADDR",
        0x4003 => "ARCH_GET_MAX_TAG_BITS",
        0x4004 => "ARCH_FORCE_TAGGED_SVA",
        0x5001 => "ARCH_SHSTK_ENABLE",
        0x5002 => "ARCH_SHSTK_DISABLE",
        0x5003 => "ARCH_SHSTK_LOCK",
        0x5004 => "ARCH_SHSTK_UNLOCK",
        0x5005 => "ARCH_SHSTK_STATUS",
        _ => return None,
    })
}

/// Tracee `target`'s general registers as its tracer sees them at `stop`:
/// the real thread's, with at a `PTRACE_SYSEMU` stop the `orig_rax` the
/// tracer sees (the real one is -1: the call is skipped).
fn shown_regs(target: Tid, stop: &EmuStop) -> Result<ptrace::Regs, Error> {
    let mut regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
    if let Some(shown) = stop.sysemu {
        regs.orig_rax = shown;
    }
    Ok(regs)
}

impl Session {
    /// `PTRACE_ARCH_PRCTL` of `code` with argument `arg` on tracee
    /// `target` for tracer thread `tid` (the kernel passes `data` as the
    /// code and `addr` as the argument). `ARCH_GET_FS`/`ARCH_GET_GS`
    /// write the base (the real tracee's `fs_base`/`gs_base`) at `arg` in
    /// the tracer's memory. `ARCH_SET_FS`/`ARCH_SET_GS` set it to `arg` as
    /// a register write (the kernel sets the same base either way), made
    /// on the real tracee and recorded as one; a base the kernel refuses
    /// (past user space) gets the EPERM `arch_prctl` answers, nothing
    /// changed. Refused where register writes are. The codes the kernel
    /// has beside these are refused, named (EIO); another gets its EINVAL.
    fn arch_prctl(
        &mut self,
        tid: Tid,
        target: Tid,
        tracer_mem: &RemoteMem,
        stop: &EmuStop,
        code: u64,
        arg: u64,
    ) -> Result<i64, Error> {
        match code {
            ARCH_GET_FS | ARCH_GET_GS => {
                let regs = shown_regs(target, stop)?;
                let base = if code == ARCH_GET_FS {
                    regs.fs_base
                } else {
                    regs.gs_base
                };
                Ok(store(tracer_mem, arg, &base.to_ne_bytes()))
            }
            ARCH_SET_FS | ARCH_SET_GS => {
                let name = if code == ARCH_SET_FS {
                    "PTRACE_ARCH_PRCTL of ARCH_SET_FS"
                } else {
                    "PTRACE_ARCH_PRCTL of ARCH_SET_GS"
                };
                if let Some(r) = self.refuse_regs_write_here(target, name) {
                    return Ok(r);
                }
                let mut regs = self.tracee_regs(target)?;
                let before = ptrace::regs_to_bytes(&regs);
                if code == ARCH_SET_FS {
                    regs.fs_base = arg;
                } else {
                    regs.gs_base = arg;
                }
                let r =
                    self.set_tracee_regs(tid, target, &before, &ptrace::regs_to_bytes(&regs))?;
                // The register write's EIO for a base past user space is
                // arch_prctl's EPERM.
                Ok(if r == neg(libc::EIO) {
                    neg(libc::EPERM)
                } else {
                    r
                })
            }
            _ => match unemulated_arch_prctl(code) {
                Some(name) => {
                    warn!("PTRACE_ARCH_PRCTL of {name}: the recorder does not emulate it (the program gets EIO)");
                    Ok(neg(libc::EIO))
                }
                None => Ok(neg(libc::EINVAL)),
            },
        }
    }

    /// `PTRACE_PEEKSIGINFO` of tracee `target`, its arguments (`struct
    /// ptrace_peeksiginfo_args`: `off`, `flags`, `nr`) at `args` in the
    /// tracer's memory, the siginfos to `data`: the real thread's pending
    /// signals (its own queue, or its process's with
    /// `PTRACE_PEEKSIGINFO_SHARED`), as the kernel keeps them: signals the
    /// program blocks, and those that came while it is stopped. The
    /// recorder's desched signal, if one is pending, is left out. Refused,
    /// named, while the recorder holds a signal back for the tracee (taken
    /// out of the kernel's queue at its delivery stop, to deliver it at a
    /// later point: natively it would be in one of the queues, but which
    /// one a siginfo does not say). The kernel's checks: EFAULT for
    /// arguments it cannot read, EINVAL for an unknown flag or a negative
    /// `nr`; the count copied, EFAULT when not even the first could be.
    fn peek_siginfo(
        &mut self,
        target: Tid,
        tracer_mem: &RemoteMem,
        args: u64,
        data: u64,
    ) -> Result<i64, Error> {
        const SHARED: u32 = 1;
        let Ok(raw) = tracer_mem.read_vec(args, 16) else {
            return Ok(neg(libc::EFAULT));
        };
        let off = u64::from_ne_bytes(raw[0..8].try_into().expect("8 bytes"));
        let flags = u32::from_ne_bytes(raw[8..12].try_into().expect("4 bytes"));
        let nr = i32::from_ne_bytes(raw[12..16].try_into().expect("4 bytes"));
        if flags & !SHARED != 0 || nr < 0 {
            return Ok(neg(libc::EINVAL));
        }
        if self
            .tasks
            .get(&target)
            .is_some_and(|t| !t.pending_signals.is_empty())
        {
            warn!("PTRACE_PEEKSIGINFO while the recorder holds a signal back for the tracee: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        // The whole queue, a chunk at a time (the desched signal may be
        // anywhere in it), up to a bound no real queue reaches.
        const CHUNK: usize = 64;
        let mut queue = Vec::new();
        while queue.len() < PEEKSIGINFO_MAX {
            let chunk = match ptrace::peek_siginfo(
                target,
                queue.len() as u64,
                flags & SHARED != 0,
                CHUNK,
            ) {
                Ok(chunk) => chunk,
                Err(e) => return Ok(neg(e.raw_os_error().unwrap_or(libc::EIO))),
            };
            let last = chunk.len() < CHUNK;
            queue.extend(chunk);
            if last {
                break;
            }
        }
        queue.retain(|info| {
            let signo = i32::from_ne_bytes(info[0..4].try_into().expect("4 bytes"));
            !self.is_desched_signal(target, signo, info)
        });
        let want = usize::try_from(off)
            .ok()
            .map_or(0, |off| queue.len().saturating_sub(off).min(nr as usize));
        let mut copied = 0;
        for info in queue.iter().skip(off as usize).take(want) {
            let at = data.wrapping_add((copied * SIGINFO_SIZE) as u64);
            if store(tracer_mem, at, info) != 0 {
                break;
            }
            copied += 1;
        }
        Ok(if copied == 0 && want > 0 {
            neg(libc::EFAULT)
        } else {
            copied as i64
        })
    }

    /// Tracee `target`'s general registers as its tracer sees them in its
    /// stop now ([`shown_regs`]).
    fn tracee_regs(&mut self, target: Tid) -> Result<ptrace::Regs, Error> {
        let sysemu = self
            .traced_mut(target)
            .and_then(|t| t.stop.as_ref())
            .and_then(|s| s.sysemu);
        let mut regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
        if let Some(shown) = sysemu {
            regs.orig_rax = shown;
        }
        Ok(regs)
    }
}

/// `sizeof(sigset_t)` for the kernel: the size `PTRACE_GETSIGMASK` and
/// `PTRACE_SETSIGMASK` want.
const SIGSET_SIZE: u64 = 8;

/// `sizeof(struct user_fpregs_struct)`: the FXSAVE area.
const FPREGS_SIZE: usize = 512;

/// Which request writes the x87/SSE registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FpWrite {
    /// `PTRACE_SETFPREGS`.
    SetFpRegs,
    /// `PTRACE_SETREGSET` of `NT_PRFPREG`.
    SetRegset,
}

impl FpWrite {
    fn name(self) -> &'static str {
        match self {
            FpWrite::SetFpRegs => "PTRACE_SETFPREGS",
            FpWrite::SetRegset => "PTRACE_SETREGSET of NT_PRFPREG",
        }
    }
}

/// Register set note types (`<linux/elf.h>`) of an x86-64 tracee.
const NT_PRSTATUS: u64 = 1;
const NT_PRFPREG: u64 = 2;
const NT_386_IOPERM: u64 = 0x201;
const NT_X86_XSTATE: u64 = 0x202;
const NT_X86_SHSTK: u64 = 0x204;

/// The most bytes a `PTRACE_GETREGSET` is asked of the kernel: more than
/// any x86-64 register set (the XSAVE area with AMX is about 11 KiB, the
/// I/O bitmap 8 KiB).
const REGSET_MAX: u64 = 64 * 1024;

/// The length to ask the kernel for when the program's iovec says
/// `iov_len`: the same, or, past [`REGSET_MAX`], as much as that with the
/// same remainder in 8 (the kernel checks it is a multiple of its set's
/// unit, 8 bytes for every x86-64 set, before it shortens it).
fn regset_ask_len(iov_len: u64) -> usize {
    let len = if iov_len > REGSET_MAX {
        REGSET_MAX + iov_len % 8
    } else {
        iov_len
    };
    len as usize
}

/// The program's `struct iovec` at `addr`: base and length.
fn read_iov(mem: &RemoteMem, addr: u64) -> Option<(u64, u64)> {
    let raw = mem.read_vec(addr, 16).ok()?;
    let word = |at: usize| u64::from_ne_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    Some((word(0), word(8)))
}

/// `PTRACE_GETREGSET` of note type `note` into the program's iovec at
/// `iov`: read from the real tracee (its registers are the program's), so
/// the kernel's checks and lengths are the answer: it writes what it read
/// and the length into the iovec (at a `PTRACE_SYSEMU` stop, `sysemu`:
/// `NT_PRSTATUS` with the `orig_rax` its tracer sees). The request's
/// result.
fn get_regset(
    target: Tid,
    tracer_mem: &RemoteMem,
    note: u64,
    iov: u64,
    sysemu: Option<u64>,
) -> i64 {
    let Some((base, len)) = read_iov(tracer_mem, iov) else {
        return neg(libc::EFAULT);
    };
    let mut bytes = match ptrace::getregset(target, note, regset_ask_len(len)) {
        Ok(bytes) => bytes,
        Err(e) => return neg(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    if let (NT_PRSTATUS, Some(shown)) = (note, sysemu) {
        // At a PTRACE_SYSEMU stop: the orig_rax the tracer sees.
        if let Some(word) = bytes.get_mut(ORIG_RAX..ORIG_RAX + 8) {
            word.copy_from_slice(&shown.to_ne_bytes());
        }
    }
    if store(tracer_mem, base, &bytes) != 0 {
        return neg(libc::EFAULT);
    }
    store(tracer_mem, iov + 8, &(bytes.len() as u64).to_ne_bytes())
}

/// Where a `PTRACE_POKEUSER` offset writes in `struct user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserWord {
    /// A general register: its offset in `struct user_regs_struct`.
    Reg(usize),
    /// Debug register `n` (`u_debugreg[n]`, offsets 848..912).
    DebugReg(usize),
    /// Misaligned, past `struct user`, or a field the kernel does not
    /// let the tracer write: EIO.
    Invalid,
}

/// Offset of `u_debugreg` in `struct user`, and the struct's size.
const USER_DEBUGREG: u64 = 848;
const USER_SIZE: u64 = 912;

/// Which word offset `addr` of `struct user` names, with the kernel's
/// checks: 8-byte aligned, inside the struct, a register or a debug
/// register.
fn user_word(addr: u64) -> UserWord {
    if !addr.is_multiple_of(8) || addr >= USER_SIZE {
        UserWord::Invalid
    } else if addr < ptrace::REGS_SIZE as u64 {
        UserWord::Reg(addr as usize)
    } else if addr >= USER_DEBUGREG {
        UserWord::DebugReg(((addr - USER_DEBUGREG) / 8) as usize)
    } else {
        UserWord::Invalid
    }
}

/// The stop a `PTRACE_GET_SYSCALL_INFO` describes (`op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoOp {
    /// Not a syscall stop (`PTRACE_SYSCALL_INFO_NONE`).
    None,
    /// A syscall-entry stop (`PTRACE_SYSCALL_INFO_ENTRY`).
    Entry,
    /// A syscall-exit stop (`PTRACE_SYSCALL_INFO_EXIT`).
    Exit,
}

/// `AUDIT_ARCH_X86_64` (`<linux/audit.h>`).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// `sizeof(struct ptrace_syscall_info)` (`<linux/ptrace.h>`: the seccomp
/// member, the union's largest, padded to 8).
const SYSCALL_INFO_SIZE: usize = 88;

/// `struct ptrace_syscall_info` (`<linux/ptrace.h>`) at stop `op` with
/// registers `regs`, and the size the kernel answers (how much of it means
/// something): `op` (u8) at 0, `arch` (u32) at 4, `instruction_pointer` at
/// 8, `stack_pointer` at 16, then the union at 24: `entry` {`nr`,
/// `args[6]`} (size 80), `exit` {`rval` (s64), `is_error` (u8)} (size 33);
/// op NONE ends at the union (24). The rest is zero.
fn syscall_info(op: InfoOp, regs: &ptrace::Regs) -> ([u8; SYSCALL_INFO_SIZE], usize) {
    let mut info = [0u8; SYSCALL_INFO_SIZE];
    let mut put = |at: usize, v: u64| info[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put(8, regs.rip);
    put(16, regs.rsp);
    let size = match op {
        InfoOp::None => 24,
        InfoOp::Entry => {
            put(24, regs.orig_rax);
            for (i, arg) in ptrace::syscall_args(regs).into_iter().enumerate() {
                put(32 + 8 * i, arg);
            }
            80
        }
        InfoOp::Exit => {
            put(24, regs.rax);
            // An error is -4095..=-1 (the kernel's IS_ERR_VALUE).
            info[32] = u8::from(regs.rax >= 4095u64.wrapping_neg());
            33
        }
    };
    info[0] = match op {
        InfoOp::None => 0,
        InfoOp::Entry => 1,
        InfoOp::Exit => 2,
    };
    info[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_ne_bytes());
    (info, size)
}

impl Session {
    /// `PTRACE_SETREGSET` of note type `note` from the program's iovec at
    /// `iov`. `NT_PRSTATUS` (the general registers, all or the first
    /// `iov_len` bytes) is emulated as `PTRACE_SETREGS`; `NT_PRFPREG`
    /// (all 512 bytes of `struct user_fpregs_struct`) as
    /// `PTRACE_SETFPREGS`; `NT_X86_XSTATE` (the whole XSAVE area) is made
    /// on the real tracee and recorded with this host's `XCR0`
    /// (`set_xstate`); the other sets the kernel has are
    /// refused, named; another note type: EINVAL, as from the kernel.
    fn set_regset(
        &mut self,
        tid: Tid,
        target: Tid,
        tracer_mem: &RemoteMem,
        note: u64,
        iov: u64,
    ) -> Result<i64, Error> {
        let Some((base, len)) = read_iov(tracer_mem, iov) else {
            return Ok(neg(libc::EFAULT));
        };
        let name = match note {
            NT_PRSTATUS => "NT_PRSTATUS",
            NT_PRFPREG => "NT_PRFPREG",
            NT_X86_XSTATE => "NT_X86_XSTATE",
            NT_386_IOPERM => "NT_386_IOPERM",
            NT_X86_SHSTK => "NT_X86_SHSTK",
            _ => return Ok(neg(libc::EINVAL)),
        };
        if ![NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE].contains(&note) {
            warn!("PTRACE_SETREGSET of {name}: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        if !len.is_multiple_of(8) {
            return Ok(neg(libc::EINVAL));
        }
        if note == NT_X86_XSTATE {
            return self.set_xstate(tid, target, tracer_mem, base, len, iov);
        }
        if note == NT_PRFPREG {
            // The kernel takes the whole set or nothing (EINVAL for fewer
            // bytes, before it reads them), and says it took 512 of a
            // longer iovec.
            let n = len.min(FPREGS_SIZE as u64) as usize;
            if n != FPREGS_SIZE {
                return Ok(neg(libc::EINVAL));
            }
            let Ok(raw) = tracer_mem.read_vec(base, n) else {
                return Ok(neg(libc::EFAULT));
            };
            let fp: [u8; FPREGS_SIZE] = raw[..].try_into().expect("512 bytes");
            let r = self.set_tracee_fpregs(tid, target, &fp, FpWrite::SetRegset)?;
            if r != 0 {
                return Ok(r);
            }
            return Ok(store(tracer_mem, iov + 8, &(n as u64).to_ne_bytes()));
        }
        let n = len.min(ptrace::REGS_SIZE as u64) as usize;
        if let Some(r) = self.refuse_regs_write_here(target, "PTRACE_SETREGSET") {
            return Ok(r);
        }
        let Ok(new) = tracer_mem.read_vec(base, n) else {
            return Ok(neg(libc::EFAULT));
        };
        let regs = self.tracee_regs(target)?;
        let before = ptrace::regs_to_bytes(&regs);
        let mut bytes = before;
        bytes[..n].copy_from_slice(&new);
        let r = self.set_tracee_regs(tid, target, &before, &bytes)?;
        if r != 0 {
            return Ok(r);
        }
        Ok(store(tracer_mem, iov + 8, &(n as u64).to_ne_bytes()))
    }

    /// `PTRACE_POKEUSER` of `value` at offset `addr` of `struct user`: a
    /// general register is set as by `PTRACE_SETREGS` (all of them, one
    /// changed); a debug register is the program's, in a real slot of its
    /// own (`debugregs.rs`: not recorded, as replay does not set them;
    /// their traps are replayed as execution points); another offset gets
    /// the kernel's EIO.
    fn poke_user(&mut self, tid: Tid, target: Tid, addr: u64, value: u64) -> Result<i64, Error> {
        let at = match user_word(addr) {
            UserWord::Reg(at) => at,
            UserWord::DebugReg(n) => return self.poke_debugreg(target, n, value),
            UserWord::Invalid => return Ok(neg(libc::EIO)),
        };
        if let Some(r) = self.refuse_regs_write_here(target, "PTRACE_POKEUSER") {
            return Ok(r);
        }
        let regs = self.tracee_regs(target)?;
        let before = ptrace::regs_to_bytes(&regs);
        let mut bytes = before;
        bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        self.set_tracee_regs(tid, target, &before, &bytes)
    }

    /// Sets tracee `target`'s x87/SSE registers (`PTRACE_SETFPREGS`, or
    /// `PTRACE_SETREGSET` of `NT_PRFPREG`: `how`) to `fp` for tracer
    /// thread `tid`, on the real thread (the kernel's checks, an `mxcsr`
    /// with bits the CPU lacks: EINVAL), and records them for replay,
    /// which sets them the same way at the same point. Refused, named, at
    /// a syscall-entry stop (replay's tracee is not there yet: the code it
    /// runs to get there may use these registers) and at a vfork's event
    /// stop (replay's parent is in the kernel then).
    fn set_tracee_fpregs(
        &mut self,
        tid: Tid,
        target: Tid,
        fp: &[u8; FPREGS_SIZE],
        how: FpWrite,
    ) -> Result<i64, Error> {
        let name = how.name();
        if let Some(r) = self.refuse_write_here(target, name) {
            return Ok(r);
        }
        let done = match how {
            FpWrite::SetFpRegs => ptrace::setfpregs(target, fp),
            FpWrite::SetRegset => ptrace::setregset(target, NT_PRFPREG, fp).map(drop),
        };
        if let Err(e) = done {
            return Ok(neg(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        self.emit(Event::TraceeWrite {
            tid,
            target,
            kind: WriteKind::FpRegs,
            addr: 0,
            bytes: fp.to_vec(),
        })?;
        Ok(0)
    }

    /// `PTRACE_SETREGSET` of `NT_X86_XSTATE` from the program's buffer at
    /// `base` of `len` bytes (its iovec at `iov`), for tracer thread `tid`:
    /// made on the real tracee, so that the kernel's checks answer (it
    /// takes the whole XSAVE area or nothing: EFAULT for fewer bytes;
    /// EINVAL for a header or `MXCSR` it refuses), and recorded with this
    /// host's `XCR0`, which with the CPU decides the layout: replay applies
    /// it only where both are the same. Refused, named, where the
    /// registers are.
    fn set_xstate(
        &mut self,
        tid: Tid,
        target: Tid,
        tracer_mem: &RemoteMem,
        base: u64,
        len: u64,
        iov: u64,
    ) -> Result<i64, Error> {
        if let Some(r) = self.refuse_write_here(target, "PTRACE_SETREGSET of NT_X86_XSTATE") {
            return Ok(r);
        }
        // The set's size: the kernel shortens a longer iovec to it.
        let size = match ptrace::getregset(target, NT_X86_XSTATE, REGSET_MAX as usize) {
            Ok(area) => area.len(),
            Err(e) => return Ok(neg(e.raw_os_error().unwrap_or(libc::EIO))),
        };
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(size);
        if n != size {
            // Fewer bytes than the whole area: the kernel's answer, before
            // it reads them.
            return Ok(neg(libc::EFAULT));
        }
        if !(WriteKind::MIN_XSTATE_LEN..=WriteKind::MAX_XSTATE_LEN).contains(&(8 + n)) {
            // An area no trace can hold: refused before it is made.
            warn!(
                bytes = n,
                "PTRACE_SETREGSET of NT_X86_XSTATE: an XSAVE area of this size cannot be recorded (the program gets EIO)"
            );
            return Ok(neg(libc::EIO));
        }
        let Ok(area) = tracer_mem.read_vec(base, n) else {
            return Ok(neg(libc::EFAULT));
        };
        if let Err(e) = ptrace::setregset(target, NT_X86_XSTATE, &area) {
            return Ok(neg(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        let mut bytes = crate::tracee::host::facts().xcr0.to_le_bytes().to_vec();
        bytes.extend_from_slice(&area);
        self.emit(Event::TraceeWrite {
            tid,
            target,
            kind: WriteKind::XState,
            addr: 0,
            bytes,
        })?;
        Ok(store(tracer_mem, iov + 8, &(n as u64).to_ne_bytes()))
    }

    /// `PTRACE_SETSIGMASK` of `mask` on tracee `target` for tracer thread
    /// `tid`: set on the real thread (the kernel leaves `SIGKILL` and
    /// `SIGSTOP` out), and the mask it then has recorded, which replay
    /// sets at the same point. The program's mask is the real thread's at
    /// a stop (the recorder's traps that unblock `SIGTRAP` block it again
    /// at their stop, `tracee::trap_mask`), so the mask set is the
    /// program's and no bit of the recorder's is lost. Refused, named, at a
    /// syscall-entry stop and a vfork's event stop, as the registers.
    fn set_tracee_mask(&mut self, tid: Tid, target: Tid, mask: u64) -> Result<i64, Error> {
        if let Some(r) = self.refuse_write_here(target, "PTRACE_SETSIGMASK") {
            return Ok(r);
        }
        if let Err(e) = ptrace::setsigmask(target, mask) {
            return Ok(neg(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        let now = ptrace::getsigmask(target).map_err(ptrace_err("PTRACE_GETSIGMASK", target))?;
        self.emit(Event::TraceeWrite {
            tid,
            target,
            kind: WriteKind::SigMask,
            addr: 0,
            bytes: now.to_ne_bytes().to_vec(),
        })?;
        Ok(0)
    }

    /// EIO, with a warning naming request `name`, where a write of tracee
    /// `target`'s general registers is not emulated: at the
    /// `PTRACE_EVENT_EXIT` stop of an exit (the real thread is held at the
    /// call's entry, where a changed number would make another call; the
    /// kernel's exit is under way there), or held at a vfork's event stop
    /// (replay's parent is in the kernel's wait for its child by then).
    /// At a `PTRACE_SYSCALL` entry stop they are made, and replayed at the
    /// syscall's entry ([`Session::set_tracee_regs`]).
    fn refuse_regs_write_here(&self, target: Tid, name: &str) -> Option<i64> {
        if self.held_at(target) == HeldAt::ExitEvent {
            return Some(refused_at_exit_event(name));
        }
        if self.held_in_vfork(target) {
            warn!("{name} at a vfork's event stop: the recorder does not emulate it (the program gets EIO)");
            return Some(neg(libc::EIO));
        }
        None
    }

    /// EIO, with a warning naming request `name`, where a write into
    /// tracee `target` of its x87/SSE registers, extended state or mask
    /// cannot be replayed: at a syscall-entry stop (replay's tracee is not
    /// at the entry yet, and the code it runs to get there may use them;
    /// not recorded to be applied there, as the general registers and
    /// memory are), or held at a vfork's event stop.
    fn refuse_write_here(&self, target: Tid, name: &str) -> Option<i64> {
        if self.tasks[&target].at_entry_stop {
            warn!("{name} at a syscall-entry stop: the recorder does not emulate it (the program gets EIO)");
            return Some(neg(libc::EIO));
        }
        if self.held_in_vfork(target) {
            warn!("{name} at a vfork's event stop: the recorder does not emulate it (the program gets EIO)");
            return Some(neg(libc::EIO));
        }
        None
    }

    /// Sets tracee `target`'s general registers, `before` now, to `bytes`
    /// (their kernel layout) for tracer thread `tid`, and records the
    /// change for replay. A value the kernel refuses (a null code segment,
    /// a base past user space) fails the request with its error (EIO);
    /// the kernel set the registers before that one already, so what it
    /// did set, if anything, is recorded.
    fn set_tracee_regs(
        &mut self,
        tid: Tid,
        target: Tid,
        before: &[u8; ptrace::REGS_SIZE],
        bytes: &[u8; ptrace::REGS_SIZE],
    ) -> Result<i64, Error> {
        let mut regs = ptrace::regs_from_bytes(bytes).expect("REGS_SIZE bytes");
        // At a PTRACE_SYSEMU stop the real thread's number stays -1 (as
        // replay's, at the skipped entry, where another would run that
        // call: replay keeps its own -1 so), and the one the tracer wrote
        // is what it sees from now on.
        let sysemu = self
            .traced_mut(target)
            .and_then(|t| t.stop.as_ref())
            .is_some_and(|s| s.sysemu.is_some());
        if sysemu {
            regs.orig_rax = u64::MAX;
        }
        let (set, result) = match ptrace::setregs(target, &regs) {
            Ok(()) => (*bytes, 0),
            Err(e) => {
                let now = self.tracee_regs(target)?;
                (
                    ptrace::regs_to_bytes(&now),
                    neg(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            }
        };
        if sysemu {
            let orig = ptrace::regs_from_bytes(&set)
                .expect("REGS_SIZE bytes")
                .orig_rax;
            if let Some(s) = self.traced_mut(target).and_then(|t| t.stop.as_mut()) {
                s.sysemu = Some(orig);
            }
        }
        if set != *before {
            // At a syscall-entry stop the call is not made yet: the one
            // the registers name now is made when the tracee is resumed
            // (its entry handled again from them), and replay sets them
            // when its tracee reaches that entry, where its own registers
            // are those of the call as the program made it (where the
            // event is, its tracee has not got there yet).
            let kind = if self.held_at(target) == HeldAt::SyscallEntry {
                WriteKind::RegsAtEntry
            } else {
                WriteKind::Regs
            };
            self.emit(Event::TraceeWrite {
                tid,
                target,
                kind,
                addr: 0,
                bytes: set.to_vec(),
            })?;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_area_offsets_are_checked_as_the_kernel_does() {
        // rax (offset 80 in struct user_regs_struct), the first and the
        // last register.
        assert_eq!(user_word(80), UserWord::Reg(80));
        assert_eq!(user_word(0), UserWord::Reg(0));
        assert_eq!(user_word(208), UserWord::Reg(208));
        // Misaligned, past the registers (u_fpvalid, the FPU area...),
        // past struct user (912 bytes), a wrapped offset.
        assert_eq!(user_word(81), UserWord::Invalid);
        assert_eq!(user_word(216), UserWord::Invalid);
        assert_eq!(user_word(840), UserWord::Invalid);
        assert_eq!(user_word(912), UserWord::Invalid);
        assert_eq!(user_word(u64::MAX - 7), UserWord::Invalid);
        // u_debugreg[0..8].
        assert_eq!(user_word(848), UserWord::DebugReg(0));
        assert_eq!(user_word(904), UserWord::DebugReg(7));
        assert_eq!(ptrace::REGS_SIZE, 216);
    }

    #[test]
    fn orig_rax_is_where_the_kernel_lays_it() {
        let mut r = regs();
        r.orig_rax = 0x1122_3344_5566_7788;
        let bytes = ptrace::regs_to_bytes(&r);
        assert_eq!(
            u64::from_ne_bytes(bytes[ORIG_RAX..ORIG_RAX + 8].try_into().unwrap()),
            0x1122_3344_5566_7788
        );
    }

    #[test]
    fn a_regset_length_is_asked_of_the_kernel_capped_keeping_its_remainder() {
        assert_eq!(regset_ask_len(0), 0);
        assert_eq!(regset_ask_len(216), 216);
        assert_eq!(regset_ask_len(12), 12);
        assert_eq!(regset_ask_len(64 * 1024), 64 * 1024);
        assert_eq!(regset_ask_len(1 << 40), 64 * 1024);
        assert_eq!(regset_ask_len((1 << 40) + 4), 64 * 1024 + 4);
        assert_eq!(regset_ask_len(u64::MAX), 64 * 1024 + 7);
    }

    fn regs() -> ptrace::Regs {
        let mut bytes = [0u8; ptrace::REGS_SIZE];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut regs = ptrace::regs_from_bytes(&bytes).unwrap();
        regs.rip = 0x5555_0000_1234;
        regs.rsp = 0x7ffc_0000_0ff0;
        regs.orig_rax = 110; // getppid
        (regs.rdi, regs.rsi, regs.rdx) = (11, 22, 33);
        (regs.r10, regs.r8, regs.r9) = (44, 55, 66);
        regs
    }

    fn word(info: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(info[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn syscall_info_is_laid_out_as_linux_ptrace_h() {
        let mut r = regs();
        let (info, size) = syscall_info(InfoOp::None, &r);
        assert_eq!(size, 24);
        assert_eq!(info[0], 0);
        assert_eq!(&info[1..4], &[0, 0, 0]);
        assert_eq!(
            u32::from_ne_bytes(info[4..8].try_into().unwrap()),
            0xc000_003e
        );
        assert_eq!(word(&info, 8), 0x5555_0000_1234);
        assert_eq!(word(&info, 16), 0x7ffc_0000_0ff0);
        assert!(info[24..].iter().all(|&b| b == 0));

        let (info, size) = syscall_info(InfoOp::Entry, &r);
        assert_eq!((info[0], size), (1, 80));
        assert_eq!(word(&info, 24), 110);
        let args: Vec<u64> = (0..6).map(|i| word(&info, 32 + 8 * i)).collect();
        assert_eq!(args, [11, 22, 33, 44, 55, 66]);
        assert!(info[80..].iter().all(|&b| b == 0));

        r.rax = 4242;
        let (info, size) = syscall_info(InfoOp::Exit, &r);
        assert_eq!((info[0], size), (2, 33));
        assert_eq!(word(&info, 24), 4242);
        assert_eq!(info[32], 0);
        assert!(info[33..].iter().all(|&b| b == 0));
        // -EBADF, and the ends of the error range.
        for (rax, error) in [(-9i64, 1), (-4095, 1), (-1, 1), (-4096, 0), (0, 0)] {
            r.rax = rax as u64;
            let (info, _) = syscall_info(InfoOp::Exit, &r);
            assert_eq!(word(&info, 24) as i64, rax);
            assert_eq!(info[32], error, "rax {rax}");
        }
    }
}
