//! Tasks, signals and process control: clone/clone3, wait4/waitid, capget,
//! prctl, arch_prctl, seccomp, futex.

use super::layout::{self, clone_args};
use super::outputs::{interrupted, push, read_u32, read_u64, ret_len};
use super::{Call, MemReader, Region, Unsupported};

const CLONE_VM: u64 = libc::CLONE_VM as u64;
const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;
const CLONE_PARENT_SETTID: u64 = libc::CLONE_PARENT_SETTID as u64;
const CLONE_CHILD_SETTID: u64 = libc::CLONE_CHILD_SETTID as u64;

/// What a successful clone wrote into the *parent's* memory, given its flags
/// and pointers. `CLONE_CHILD_SETTID` writes into the child's address space;
/// that is the parent's only with `CLONE_VM`.
fn clone_writes(flags: u64, pidfd: u64, child_tid: u64, parent_tid: u64, out: &mut Vec<Region>) {
    if flags & CLONE_PIDFD != 0 {
        push(out, pidfd, 4);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        push(out, parent_tid, 4);
    }
    if flags & CLONE_CHILD_SETTID != 0 && flags & CLONE_VM != 0 {
        push(out, child_tid, 4);
    }
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` (x86-64 order). With
/// `CLONE_PIDFD` the pidfd goes where `parent_tid` points (the kernel refuses
/// `CLONE_PIDFD | CLONE_PARENT_SETTID` for this call).
pub(crate) fn clone(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret > 0 {
        clone_writes(c.args[0], c.args[2], c.args[3], c.args[2], out);
    }
    Ok(())
}

/// `clone3(args, size)`: the flags and pointers come from `struct clone_args`.
pub(crate) fn clone3(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    let a = c.args[0];
    if c.args[1] < clone_args::SIZE_VER0 {
        return Err(Unsupported(format!(
            "clone3: struct clone_args of {} bytes succeeded (the kernel needs {})",
            c.args[1],
            clone_args::SIZE_VER0
        )));
    }
    let flags = read_u64(c, mem, a + clone_args::FLAGS, "clone_args.flags")?;
    let pidfd = read_u64(c, mem, a + clone_args::PIDFD, "clone_args.pidfd")?;
    let child = read_u64(c, mem, a + clone_args::CHILD_TID, "clone_args.child_tid")?;
    let parent = read_u64(c, mem, a + clone_args::PARENT_TID, "clone_args.parent_tid")?;
    clone_writes(flags, pidfd, child, parent, out);
    Ok(())
}

/// `wait4(pid, status, options, rusage)`: both are written only when a child
/// was reaped (`ret > 0`; `WNOHANG` with nothing to report returns 0).
pub(crate) fn wait4(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret > 0 {
        push(out, c.args[1], 4);
        push(out, c.args[3], layout::RUSAGE);
    }
    Ok(())
}

/// `ptrace(request, pid, addr, data)`, which the recorder emulates: a
/// successful request that reads the tracee stores at `data` (the raw
/// call: `PTRACE_PEEK*` the word, `PTRACE_GETREGS` the registers,
/// `PTRACE_GETSIGINFO` the siginfo, `PTRACE_GETEVENTMSG` the message,
/// `PTRACE_GETFPREGS` the 512-byte FXSAVE area, `PTRACE_GETSIGMASK` the
/// mask); `PTRACE_GETREGSET` stores the set where `data`'s iovec points
/// and the length it wrote in the iovec (`PTRACE_SETREGSET` that length
/// only); `PTRACE_GET_SYSCALL_INFO` returns the size of its struct and
/// stores as much of it as `addr` says.
pub(crate) fn ptrace(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    const GETREGSET: u32 = 0x4204;
    const SETREGSET: u32 = 0x4205;
    const GET_SYSCALL_INFO: u32 = 0x420e;
    const PEEKSIGINFO: u32 = 0x4209;
    let (request, addr, data) = (c.args[0] as u32, c.args[2], c.args[3]);
    if request == GET_SYSCALL_INFO && c.ret > 0 {
        push(out, data, addr.min(c.ret as u64));
        return Ok(());
    }
    if request == PEEKSIGINFO && c.ret > 0 {
        // The siginfos copied, one after another.
        push(out, data, c.ret as u64 * layout::SIGINFO);
        return Ok(());
    }
    if c.ret != 0 {
        return Ok(());
    }
    if request == GETREGSET || request == SETREGSET {
        if request == GETREGSET {
            let base = read_u64(c, mem, data, "the iovec's base")?;
            let len = read_u64(c, mem, data + 8, "the iovec's length")?;
            push(out, base, len);
        }
        // Then the iovec's length, as the kernel left it (it writes that
        // last).
        push(out, data + 8, 8);
        return Ok(());
    }
    // PTRACE_ARCH_PRCTL of ARCH_GET_FS or ARCH_GET_GS: the base, at
    // `addr` (the kernel takes `data` as the code).
    if request == 30 && matches!(data, 0x1003 | 0x1004) {
        push(out, addr, 8);
        return Ok(());
    }
    // PTRACE_PEEKTEXT, _PEEKDATA, _PEEKUSER, _GETREGS, _GETFPREGS,
    // _GETEVENTMSG, _GETSIGINFO, _GETSIGMASK, _GET_THREAD_AREA (a
    // `struct user_desc`) (<sys/ptrace.h>).
    let len = match request {
        1..=3 | 0x4201 | 0x420a => 8,
        12 => std::mem::size_of::<libc::user_regs_struct>() as u64,
        14 => 512,
        25 => 16,
        0x4202 => layout::SIGINFO,
        _ => 0,
    };
    push(out, data, len);
    Ok(())
}

/// `waitid(idtype, id, infop, options, rusage)`: the kernel fills the
/// siginfo's leading fields whatever the outcome (zeroed with `WNOHANG` and
/// nothing to report, and on failures such as `ECHILD`), except when `infop`
/// itself faults; the rusage only when a child was found. We record the whole
/// siginfo, and the rusage whenever the call succeeds.
pub(crate) fn waitid(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret != -i64::from(libc::EFAULT) {
        push(out, c.args[2], layout::SIGINFO);
    }
    if c.ret >= 0 {
        push(out, c.args[4], layout::RUSAGE);
    }
    Ok(())
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: the siginfo of the
/// signal taken.
pub(crate) fn rt_sigtimedwait(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret > 0 {
        push(out, c.args[1], layout::SIGINFO);
    }
    Ok(())
}

const CAP_V1: u32 = 0x1998_0330;
const CAP_V2: u32 = 0x2007_1026;
const CAP_V3: u32 = 0x2008_0522;

/// `capget(hdr, data)`. An unknown `hdr->version` makes the kernel store the
/// version it prefers there and fail with `EINVAL`, or succeed when `data` is
/// null (libcap probes this way). Otherwise `data` gets one
/// `__user_cap_data_struct` for version 1, two for versions 2 and 3.
pub(crate) fn capget(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    let (hdr, data) = (c.args[0], c.args[1]);
    if c.ret == -i64::from(libc::EINVAL) || (c.ret == 0 && data == 0) {
        push(out, hdr, 4);
        return Ok(());
    }
    if c.ret < 0 {
        return Ok(());
    }
    let words = match read_u32(c, mem, hdr, "the capability header")? {
        CAP_V1 => 1,
        CAP_V2 | CAP_V3 => 2,
        v => return Err(Unsupported(format!("capget: version {v:#x}"))),
    };
    push(out, data, words * layout::CAP_DATA);
    Ok(())
}

/// `prctl(option, arg2, ...)`: the options that write through a pointer, the
/// ones that only return a value or change task state, and the ones that
/// would break recording. An option not listed is unsupported.
pub(crate) fn prctl(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    // Failures write nothing (x86-64 fails the other architectures' options
    // with EINVAL).
    if c.ret < 0 {
        return Ok(());
    }
    let option = c.args[0] as i32;
    match option {
        libc::PR_GET_PDEATHSIG | libc::PR_GET_TSC | libc::PR_GET_CHILD_SUBREAPER => {
            push(out, c.args[1], 4)
        }
        libc::PR_GET_NAME => push(out, c.args[1], 16),
        libc::PR_GET_TID_ADDRESS => push(out, c.args[1], 8),
        // PR_GET_AUXV copies min(size, auxv size) and returns the auxv size.
        PR_GET_AUXV => push(out, c.args[1], ret_len(c).min(c.args[2])),
        PR_SCHED_CORE if c.args[1] == PR_SCHED_CORE_GET => push(out, c.args[4], 8),
        PR_SCHED_CORE => {}
        libc::PR_SET_TSC => return Err(Unsupported(
            "prctl(PR_SET_TSC): the program changed rdtsc trapping, which the recorder relies on"
                .into(),
        )),
        libc::PR_SET_MM => return Err(Unsupported("prctl(PR_SET_MM) is not supported".into())),
        PR_SET_SYSCALL_USER_DISPATCH => {
            return Err(Unsupported(
                "prctl(PR_SET_SYSCALL_USER_DISPATCH) is not supported".into(),
            ))
        }
        libc::PR_SET_PDEATHSIG
        | libc::PR_GET_DUMPABLE
        | libc::PR_SET_DUMPABLE
        | libc::PR_GET_KEEPCAPS
        | libc::PR_SET_KEEPCAPS
        | libc::PR_GET_TIMING
        | libc::PR_SET_TIMING
        | libc::PR_SET_NAME
        | libc::PR_GET_SECCOMP
        | libc::PR_SET_SECCOMP
        | libc::PR_CAPBSET_READ
        | libc::PR_CAPBSET_DROP
        | libc::PR_GET_SECUREBITS
        | libc::PR_SET_SECUREBITS
        | libc::PR_SET_TIMERSLACK
        | libc::PR_GET_TIMERSLACK
        | libc::PR_TASK_PERF_EVENTS_DISABLE
        | libc::PR_TASK_PERF_EVENTS_ENABLE
        | libc::PR_MCE_KILL
        | libc::PR_MCE_KILL_GET
        | libc::PR_SET_CHILD_SUBREAPER
        | libc::PR_SET_NO_NEW_PRIVS
        | libc::PR_GET_NO_NEW_PRIVS
        | libc::PR_SET_THP_DISABLE
        | libc::PR_GET_THP_DISABLE
        | libc::PR_CAP_AMBIENT
        | PR_GET_SPECULATION_CTRL
        | PR_SET_SPECULATION_CTRL
        | PR_SET_IO_FLUSHER
        | PR_GET_IO_FLUSHER
        | PR_SET_MDWE
        | PR_GET_MDWE
        | PR_SET_MEMORY_MERGE
        | PR_GET_MEMORY_MERGE
        | PR_SET_VMA
        | PR_SET_PTRACER => {}
        _ => return Err(Unsupported(format!("prctl option {option}"))),
    }
    Ok(())
}

// prctl options newer than, or missing from, the libc crate (linux/prctl.h).
const PR_GET_SPECULATION_CTRL: i32 = 52;
const PR_SET_SPECULATION_CTRL: i32 = 53;
const PR_SET_IO_FLUSHER: i32 = 57;
const PR_GET_IO_FLUSHER: i32 = 58;
const PR_SET_SYSCALL_USER_DISPATCH: i32 = 59;
const PR_SCHED_CORE: i32 = 62;
const PR_SCHED_CORE_GET: u64 = 0;
const PR_SET_MDWE: i32 = 65;
const PR_GET_MDWE: i32 = 66;
const PR_SET_MEMORY_MERGE: i32 = 67;
const PR_GET_MEMORY_MERGE: i32 = 68;
const PR_GET_AUXV: i32 = 0x4155_5856;
const PR_SET_VMA: i32 = 0x5356_4d41;
const PR_SET_PTRACER: i32 = 0x5961_6d61;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
const ARCH_GET_CPUID: u64 = 0x1011;
const ARCH_GET_XCOMP_SUPP: u64 = 0x1021;
const ARCH_GET_XCOMP_PERM: u64 = 0x1022;
const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
const ARCH_GET_XCOMP_GUEST_PERM: u64 = 0x1024;
const ARCH_SHSTK_ENABLE: u64 = 0x5001;
const ARCH_SHSTK_DISABLE: u64 = 0x5002;
const ARCH_SHSTK_LOCK: u64 = 0x5003;
const ARCH_SHSTK_STATUS: u64 = 0x5005;

/// `arch_prctl(code, addr)`: the GET codes store a u64 at `addr`.
/// `ARCH_SET_CPUID` would take CPUID faulting from the replayer, and the
/// vDSO-mapping codes move mappings behind our back: those are unsupported,
/// as is any code not listed. The shadow-stack codes glibc uses at startup
/// (enable, disable, lock) write nothing; replay executes them like every
/// arch_prctl, so a host that cannot repeat them diverges loudly.
pub(crate) fn arch_prctl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[0] {
        ARCH_GET_FS
        | ARCH_GET_GS
        | ARCH_GET_XCOMP_SUPP
        | ARCH_GET_XCOMP_PERM
        | ARCH_GET_XCOMP_GUEST_PERM
        | ARCH_SHSTK_STATUS => push(out, c.args[1], 8),
        ARCH_SET_FS | ARCH_SET_GS | ARCH_GET_CPUID | ARCH_REQ_XCOMP_PERM | ARCH_SHSTK_ENABLE
        | ARCH_SHSTK_DISABLE | ARCH_SHSTK_LOCK => {}
        code => return Err(Unsupported(format!("arch_prctl code {code:#x}"))),
    }
    Ok(())
}

/// `seccomp(op, flags, args)`: `SECCOMP_GET_NOTIF_SIZES` fills a
/// `struct seccomp_notif_sizes`; the other operations write nothing.
pub(crate) fn seccomp(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 && c.args[0] == u64::from(libc::SECCOMP_GET_NOTIF_SIZES) {
        push(out, c.args[2], layout::SECCOMP_NOTIF_SIZES);
    }
    Ok(())
}

const FUTEX_CMD_MASK: u64 = !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;

/// `futex(uaddr, op, val, timeout/val2, uaddr2, val3)`. The wait and wake
/// operations write nothing; `FUTEX_WAKE_OP` modifies `*uaddr2`; the
/// priority-inheritance operations store owner tids in the futex words.
pub(crate) fn futex(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let op = c.args[1] & FUTEX_CMD_MASK;
    match op as i32 {
        libc::FUTEX_WAIT
        | libc::FUTEX_WAKE
        | libc::FUTEX_FD
        | libc::FUTEX_REQUEUE
        | libc::FUTEX_CMP_REQUEUE
        | libc::FUTEX_WAIT_BITSET
        | libc::FUTEX_WAKE_BITSET => {}
        libc::FUTEX_WAKE_OP => push(out, c.args[4], 4),
        libc::FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | libc::FUTEX_TRYLOCK_PI | libc::FUTEX_UNLOCK_PI => {
            push(out, c.args[0], 4)
        }
        libc::FUTEX_WAIT_REQUEUE_PI | libc::FUTEX_CMP_REQUEUE_PI => {
            push(out, c.args[0], 4);
            push(out, c.args[4], 4);
        }
        _ => return Err(Unsupported(format!("futex op {op}"))),
    }
    Ok(())
}

const FUTEX_LOCK_PI2: i32 = 13;

/// `nanosleep(req, rem)`: the remaining time is stored only when a signal
/// cut the sleep short.
pub(crate) fn nanosleep(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if interrupted(c.ret) {
        push(out, c.args[1], layout::TIMESPEC);
    }
    Ok(())
}

/// `clock_nanosleep(clock, flags, req, rem)`: as nanosleep, and never for an
/// absolute (`TIMER_ABSTIME`) deadline.
pub(crate) fn clock_nanosleep(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if interrupted(c.ret) && c.args[1] & libc::TIMER_ABSTIME as u64 == 0 {
        push(out, c.args[3], layout::TIMESPEC);
    }
    Ok(())
}

/// `restart_syscall()`: the kernel resumes an interrupted nanosleep, poll,
/// futex wait, ... whose outputs only the original call describes. This
/// entry cannot know which: the recorder should remember the call that
/// returned `-ERESTART_RESTARTBLOCK` on this thread and use
/// [`restarted_outputs`](super::restarted_outputs) instead.
pub(crate) fn restart_syscall(
    c: &Call,
    _: &dyn MemReader,
    _: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 && !interrupted(c.ret) {
        return Ok(());
    }
    Err(Unsupported(
        "restart_syscall is not supported on its own: the recorder must describe it as the syscall it restarts".into(),
    ))
}
