//! The program's own ptrace, emulated between processes of the recording.
//!
//! The recorder is the real tracer of every thread, so the kernel would
//! refuse the program's requests; where tracer and tracee are both
//! processes of the recording, the recorder plays the kernel's part: it keeps who traces whom
//! ([`Traced`]), holds a tracee in an emulated stop (it is not scheduled
//! until its tracer resumes it), answers the tracer's requests from the
//! real tracee, and answers the tracer's `wait4`/`waitid` with the stop.
//! Everything the tracer sees is a syscall result (recorded and replayed
//! as any); what it changes in the tracee (`PTRACE_POKEDATA`,
//! `PTRACE_SETREGS`, `PTRACE_SETREGSET` of `NT_PRSTATUS`,
//! `PTRACE_POKEUSER` of a general register; `PTRACE_SETFPREGS` and
//! `PTRACE_SETREGSET` of `NT_PRFPREG`; `PTRACE_SETREGSET` of
//! `NT_X86_XSTATE`; `PTRACE_SETSIGMASK`) is made on the real tracee and
//! recorded as a [`Event::TraceeWrite`] of its kind ([`WriteKind`]:
//! memory, registers, x87/SSE registers, signal mask, extended state with
//! this host's `XCR0`, whose layout replay must share to apply it), which
//! replay applies at the same point. A request naming a process
//! outside the recording, or one not emulated, fails at once (EPERM, or
//! EIO/EINVAL with a warning naming it).
//!
//! Reads: `PTRACE_PEEK*`, `PTRACE_GETREGS`, `PTRACE_GETFPREGS`,
//! `PTRACE_GETREGSET` (any note type, asked of the kernel on the real
//! tracee with the program's length, so its checks and lengths are the
//! answer), `PTRACE_GETSIGMASK` (the real tracee's), `PTRACE_GETSIGINFO`,
//! `PTRACE_GETEVENTMSG` and `PTRACE_GET_SYSCALL_INFO` (built from the
//! registers as `<linux/ptrace.h>` lays it out; ENTRY or EXIT at a
//! `PTRACE_SYSCALL` stop whose si_code is `SIGTRAP | 0x80`, as the kernel
//! tells them, else NONE), `PTRACE_ARCH_PRCTL` of `ARCH_GET_FS`/`_GS`
//! (the real tracee's base) and `PTRACE_GET_THREAD_AREA` (asked of the
//! kernel on the real tracee), `PTRACE_PEEKSIGINFO` (the real tracee's
//! queues, the recorder's desched signal left out; refused while the
//! recorder holds a signal back for it, whose queue a siginfo does not
//! tell). `PTRACE_ARCH_PRCTL` of `ARCH_SET_FS`/`_GS`
//! is a register write (the base in `user_regs_struct`). At a
//! `PTRACE_SYSCALL` entry stop (the real tracee held at the call's seccomp
//! stop, nothing of it done) the general registers and memory are written
//! on the real tracee too, and the call then made is the one its
//! registers name when it is resumed (its entry handled again from them:
//! another number, other arguments, or `orig_rax` -1, skipped, -ENOSYS in
//! `rax` and the exit stop still made); they are recorded as writes that
//! replay makes when its tracee reaches that entry
//! ([`WriteKind::RegsAtEntry`], [`WriteKind::MemoryAtEntry`], format
//! version 7: where the tracer's request is, replay's tracee has not got
//! there yet). Not emulated, named: the x87/SSE registers, the extended
//! state and the mask written at a syscall-entry stop, any register write
//! at a `PTRACE_EVENT_EXIT` stop (held at the exit call's entry, which a
//! changed number would make another call) or at a vfork's event stop, a
//! DR7 that enables all four debug registers,
//! `PTRACE_SETREGSET` of the sets but `NT_PRSTATUS`, `NT_PRFPREG` and
//! `NT_X86_XSTATE`. The mask a tracer reads and sets is the real thread's: at a stop
//! it is the program's (the recorder's traps that unblock a blocked
//! `SIGTRAP` block it again at their stop, `tracee::trap_mask`).
//!
//! Stops: `PTRACE_ATTACH`'s SIGSTOP, `PTRACE_INTERRUPT`'s event stop, the
//! SIGTRAP after an exec (or `PTRACE_EVENT_EXEC` with
//! `PTRACE_O_TRACEEXEC`), `PTRACE_EVENT_EXIT` at an `exit` or `exit_group`
//! call with `PTRACE_O_TRACEEXIT`, and a signal that reaches a tracee at a point
//! replay finds again (at a syscall's exit, held back to a syscall's entry
//! or to an execution point, or a fault, whose instruction is made a
//! `Preempt` point): the signal is not delivered but reported;
//! `PTRACE_SINGLESTEP` runs one instruction, its trap a stop as a fault's
//! (a step over a syscall stops at the syscall's exit); `PTRACE_SYSCALL`
//! stops it at its next traced syscall's entry (held at the seccomp stop,
//! handled when it goes on, as its registers then say) and exit; a successful `execve` under it makes
//! its exit stop too, in the kernel's order ([`Session::exec_stop`]). The
//! signal a resume request carries is treated as the kernel does: at a
//! signal-delivery stop it is delivered when the tracee next runs; at an
//! event stop it is ignored; at a syscall-exit stop it is sent anew
//! (`SI_KERNEL`), a signal-delivery stop at once. Not emulated (EIO,
//! named): a signal at a syscall-entry stop (pending while the call runs),
//! at a `PTRACE_SYSEMU` stop or at an exec's exit stop the legacy `SIGTRAP`
//! follows, and `PTRACE_SINGLESTEP` with a signal at a signal-delivery
//! stop.
//!
//! `PTRACE_SYSEMU` and `PTRACE_SYSEMU_SINGLESTEP` (a tracer that plays the
//! kernel for its tracee): the tracee's next traced syscall stops at its
//! entry, and the call is not run ([`Session::sysemu_entry`]): the recorder
//! skips it at once (its number -1, `rax` -ENOSYS, run to the skipped
//! call's exit stop) and records it as a complete call that returned
//! -ENOSYS, which replay skips whatever the call (format version 6). So
//! for replay the tracee's stop is after the call, and what its tracer
//! writes there (the call's result in `rax`, memory) is recorded and
//! replayed as at a syscall-exit stop. The tracer sees the kernel's
//! syscall-entry stop: `orig_rax` the call (kept in the stop, `EmuStop::sysemu`,
//! for the register reads; the real one stays -1, also when the tracer
//! writes another, which it reads back), `rax` -ENOSYS, event message 1,
//! `PTRACE_GET_SYSCALL_INFO` an entry; resumed with `PTRACE_SYSCALL`, the
//! skipped call's exit stop follows, as from the kernel. Under
//! `PTRACE_SYSEMU_SINGLESTEP` a step that is not a syscall stops with the
//! step's `SIGTRAP`. Resumed so from a `PTRACE_SYSCALL` entry stop or an
//! event stop inside a call, that call runs and makes no exit stop
//! ([`Session::step_over_syscall_done`]), as the kernel decided at its
//! entry. Calls the recorder's seccomp filter lets through
//! without a stop (`munmap`, `mprotect`, `brk`, an anonymous `mmap`, ...)
//! are not seen, and run. A stop becomes visible to the tracer once the tracee
//! is stopped by the recorder (a tracee blocked in a syscall is interrupted
//! first: the syscall restarts, as under a real SIGSTOP); a tracer blocked
//! in the kernel's wait by then is interrupted so that its wait starts
//! again and finds the stop. The tracer is sent the stop's `SIGCHLD`
//! (`CLD_TRAPPED`), as from the kernel.
//!
//! Clones and forks (`PTRACE_O_TRACECLONE`, `PTRACE_O_TRACEFORK`): at a
//! tracee's clone event ([`Session::traced_clone`]) the new thread or
//! process is traced by the same tracer with the same options and held in
//! its first stop (`SIGSTOP`; `PTRACE_EVENT_STOP` when seized), taken at
//! once; the tracee owes the event stop, which it makes at the syscall's
//! exit (the new id its message; resumed with `PTRACE_SYSCALL`, the exit
//! stop follows at once). The new tracee's stop shows once its parent's
//! event stop is there. Such a tracee is not the tracer's child (a thread,
//! a grandchild), so the kernel's wait knows nothing of it: its exit is
//! kept ([`EmuExit`], at [`Session::tracee_gone`]) and reported by the
//! emulated wait, and a wait for it with nothing to report, which the
//! kernel would fail with ECHILD, is held at its entry
//! ([`Session::park_wait`]) until [`Session::kick_tracers`] finds a report
//! due.
//!
//! Attaching (`PTRACE_ATTACH`, `PTRACE_SEIZE`): any thread of another
//! process of the recording, as the kernel lets the program's credentials
//! attach it ([`may_attach`]: the same user, or `CAP_SYS_PTRACE`, and
//! Yama's `ptrace_scope` where the kernel has it; else EPERM, as
//! natively). A thread that is not its process's main one is traced alone,
//! and one that is not the tracer's child, like a grandchild, has its exit
//! reported by the emulated wait, as above. The thread that attached is
//! the tracing one ([`Traced::thread`]): only it may make requests (ESRCH
//! for the tracer's other threads, as the kernel's `ptrace_check_attach`
//! answers), any thread of the tracer's process may wait for the tracee
//! unless it asks with `__WNOTHREAD` for its own alone, and its end lets
//! its tracees go, as its process's end does.
//!
//! Group stops (`groupstop.rs`): a stop signal a tracer resumes its tracee
//! with at the signal's delivery stop makes the job-control trap its wait
//! reports (`PTRACE_EVENT_STOP` with the signal when seized, a plain stop
//! with it else), held as the other stops; `PTRACE_LISTEN` at a
//! `PTRACE_EVENT_STOP` holds it out of reach of requests until a `SIGCONT`
//! or `PTRACE_INTERRUPT` traps it again. Not emulated (EIO, named): the
//! group stop of `SIGTSTP`, `SIGTTIN`, `SIGTTOU` left to their default
//! action, and of a tracee whose process has other threads.
//!
//! Vforks (`PTRACE_O_TRACEVFORK`, `PTRACE_O_TRACEVFORKDONE`): the vfork
//! parent's event stop cannot wait for the syscall's exit, which comes only
//! once the child released the parent (exec or exit), and a tracer may hold
//! the child in its first stop until it saw the parent's event. So the
//! parent is held where the recorder's own `PTRACE_EVENT_VFORK` stops it,
//! inside the call, before the kernel waits for the child: its task stays
//! in the syscall (`Traced::vfork_held`), and its stop shows to the tracer
//! as `PTRACE_EVENT_VFORK` (message: the child's id; its registers the real
//! ones there, `rax` -ENOSYS as natively). Resumed, it goes on into the
//! kernel's wait for the child, blocked as in any syscall; register writes
//! there are refused (EIO, named: replay's parent is in the kernel by
//! then). With `PTRACE_O_TRACEVFORKDONE` (with or without the other, as
//! the kernel), `PTRACE_EVENT_VFORK_DONE` (message: the child's id) is
//! shown at the syscall's exit, before its syscall-exit stop; there its
//! registers hold the call's result, where natively `rax` is still
//! -ENOSYS. Not emulated: `PTRACE_O_TRACESECCOMP`: EINVAL, named.
//!
//! Debug registers (`debugregs.rs`): the program's hardware breakpoints and
//! watchpoints go into the real slots 1-3 (DR0 is the recorder's; the
//! program's slot 0 moves to a free one), what it wrote kept per thread
//! for its reads; a trap of one of its slots is a stop as a fault's (a
//! `Preempt` point, then the signal-delivery stop with the kernel's
//! `TRAP_HWBKPT` siginfo), so replay never sets them.
//!
//! The requests are answered in `requests.rs`, the tracer's waits and the
//! `SIGCHLD`s it is sent in `wait.rs`, a tracee's clones, forks and vforks
//! in `clones.rs`, the debug registers in `debugregs.rs`; this file keeps
//! who traces whom and the stops.
//!
//! Must not: pick threads (`schedule`) or classify signals (`signals`).

mod clones;
mod debugregs;
mod groupstop;
mod requests;
mod wait;

use tracing::warn;

use super::{ptrace_err, Error, Pending, Session, State};
use debugregs::DebugRegs;
use rrtest_sys::ptrace::{self, WaitEvent, SIGINFO_SIZE};
use rrtest_sys::RemoteMem;
use rrtest_trace::{
    Event, ExitStatus, SignalKind, SyscallEvent, SyscallExtra, SyscallResult, Tid, WriteKind,
};

/// Requests, from `<sys/ptrace.h>`.
mod req {
    pub const TRACEME: i32 = 0;
    pub const PEEKTEXT: i32 = 1;
    pub const PEEKDATA: i32 = 2;
    pub const PEEKUSER: i32 = 3;
    pub const POKETEXT: i32 = 4;
    pub const POKEDATA: i32 = 5;
    pub const POKEUSER: i32 = 6;
    pub const CONT: i32 = 7;
    pub const SINGLESTEP: i32 = 9;
    pub const KILL: i32 = 8;
    pub const GETREGS: i32 = 12;
    pub const SYSCALL: i32 = 24;
    pub const GET_THREAD_AREA: i32 = 25;
    pub const ARCH_PRCTL: i32 = 30;
    pub const SYSEMU: i32 = 31;
    pub const SYSEMU_SINGLESTEP: i32 = 32;
    pub const SETREGS: i32 = 13;
    pub const GETFPREGS: i32 = 14;
    pub const SETFPREGS: i32 = 15;
    pub const ATTACH: i32 = 16;
    pub const DETACH: i32 = 17;
    pub const SETOPTIONS: i32 = 0x4200;
    pub const GETEVENTMSG: i32 = 0x4201;
    pub const GETSIGINFO: i32 = 0x4202;
    pub const SETSIGINFO: i32 = 0x4203;
    pub const GETREGSET: i32 = 0x4204;
    pub const SETREGSET: i32 = 0x4205;
    pub const SEIZE: i32 = 0x4206;
    pub const INTERRUPT: i32 = 0x4207;
    pub const LISTEN: i32 = 0x4208;
    pub const PEEKSIGINFO: i32 = 0x4209;
    pub const GETSIGMASK: i32 = 0x420a;
    pub const SETSIGMASK: i32 = 0x420b;
    pub const GET_SYSCALL_INFO: i32 = 0x420e;
}

/// A request's name, for messages.
fn request_name(r: i32) -> String {
    let name = match r {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSER",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSER",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        25 => "PTRACE_GET_THREAD_AREA",
        26 => "PTRACE_SET_THREAD_AREA",
        30 => "PTRACE_ARCH_PRCTL",
        31 => "PTRACE_SYSEMU",
        32 => "PTRACE_SYSEMU_SINGLESTEP",
        33 => "PTRACE_SINGLEBLOCK",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4201 => "PTRACE_GETEVENTMSG",
        0x4202 => "PTRACE_GETSIGINFO",
        0x4203 => "PTRACE_SETSIGINFO",
        0x4204 => "PTRACE_GETREGSET",
        0x4205 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        0x4208 => "PTRACE_LISTEN",
        0x4209 => "PTRACE_PEEKSIGINFO",
        0x420a => "PTRACE_GETSIGMASK",
        0x420b => "PTRACE_SETSIGMASK",
        0x420c => "PTRACE_SECCOMP_GET_FILTER",
        0x420d => "PTRACE_SECCOMP_GET_METADATA",
        0x420e => "PTRACE_GET_SYSCALL_INFO",
        0x420f => "PTRACE_GET_RSEQ_CONFIGURATION",
        0x4210 => "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG",
        0x4211 => "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG",
        0x4212 => "PTRACE_SET_SYSCALL_INFO",
        _ => return format!("ptrace request {r:#x}"),
    };
    name.into()
}

/// The options emulated: `PTRACE_O_TRACESYSGOOD`, `PTRACE_O_TRACEFORK`,
/// `PTRACE_O_TRACECLONE` (the event stop at the syscall's exit, the new
/// thread or process auto-attached), `PTRACE_O_TRACEEXEC`,
/// `PTRACE_O_TRACEEXIT` (at an `exit` or `exit_group` call; not at a death
/// by a signal, nor for the other threads an `exit_group` ends),
/// `PTRACE_O_EXITKILL`, `PTRACE_O_TRACEVFORK` (the parent held at the
/// recorder's own vfork event stop, before the kernel waits for the
/// child), `PTRACE_O_TRACEVFORKDONE` (at the syscall's exit). Not
/// `PTRACE_O_TRACESECCOMP`.
const OPTIONS_EMULATED: u64 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x10_0000;

/// The name of the first option in `options` that is not emulated.
fn unemulated_option(options: u64) -> Option<String> {
    const NAMES: [(u64, &str); 8] = [
        (0x2, "PTRACE_O_TRACEFORK"),
        (0x4, "PTRACE_O_TRACEVFORK"),
        (0x8, "PTRACE_O_TRACECLONE"),
        (0x20, "PTRACE_O_TRACEVFORKDONE"),
        (0x40, "PTRACE_O_TRACEEXIT"),
        (0x80, "PTRACE_O_TRACESECCOMP"),
        (0x20_0000, "PTRACE_O_SUSPEND_SECCOMP"),
        (0, ""),
    ];
    let extra = options & !OPTIONS_EMULATED;
    if extra == 0 {
        return None;
    }
    Some(
        NAMES
            .iter()
            .find(|&&(bit, _)| bit != 0 && extra & bit != 0)
            .map_or_else(|| format!("option bits {extra:#x}"), |(_, n)| n.to_string()),
    )
}

const PTRACE_O_TRACESYSGOOD: u64 = 0x1;
const PTRACE_O_TRACEFORK: u64 = 0x2;
const PTRACE_O_TRACEVFORK: u64 = 0x4;
const PTRACE_O_TRACECLONE: u64 = 0x8;
const PTRACE_O_TRACEEXEC: u64 = 0x10;
const PTRACE_O_TRACEVFORKDONE: u64 = 0x20;
const PTRACE_O_TRACEEXIT: u64 = 0x40;
const PTRACE_O_EXITKILL: u64 = 0x10_0000;
/// `si_code` of a signal sent by `kill`.
const SI_USER: i32 = 0;
/// `si_code` of `SIGCHLD` for a traced child's stop.
const CLD_TRAPPED: i32 = 4;
/// `si_code` of `SIGCHLD` for a child's group stop (a tracee's job-control
/// trap too).
const CLD_STOPPED: i32 = 5;
/// `si_code`s of `SIGCHLD` for a child's exit, death by a signal, and
/// death with a core dump.
const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_DUMPED: i32 = 3;

/// A thread traced by another process of the recording.
#[derive(Debug, Clone)]
pub(super) struct Traced {
    /// The tracer's process id.
    tracer: Tid,
    /// The tracer's thread that traces it, which alone may make requests
    /// about it (the kernel's `ptrace_check_attach`), and alone is answered
    /// a wait with `__WNOTHREAD`: the thread that attached or seized it, or
    /// its tracer's where it came in by a clone. None after
    /// `PTRACE_TRACEME`, whose tracer is the thread that forked the tracee,
    /// which `/proc` does not tell: any thread of the tracer's process
    /// then.
    thread: Option<Tid>,
    /// Attached with `PTRACE_SEIZE` (`PTRACE_INTERRUPT` allowed).
    seized: bool,
    /// `PTRACE_O_*` set.
    options: u64,
    /// The emulated stop it is held in.
    stop: Option<EmuStop>,
    /// It stopped at its exit already (`PTRACE_O_TRACEEXIT`): the exit
    /// goes on when resumed.
    exit_stopped: bool,
    /// A process that is its tracer's child: the kernel's wait reports its
    /// exit. (Otherwise, a thread or a grandchild, auto-attached at a clone
    /// or fork or attached, the emulated wait does: [`EmuExit`].)
    child: bool,
    /// A clone or fork whose event stop (`PTRACE_EVENT_CLONE`, `_FORK`) is
    /// due at the syscall's exit: the event and the new thread's id.
    clone_event: Option<(i32, Tid)>,
    /// Held in its vfork's `PTRACE_EVENT_VFORK` stop, which is the
    /// recorder's own event stop inside the call (its task is in the
    /// syscall, not ready): resumed, it goes on into the kernel's wait for
    /// the child ([`Session::traced_clone`]).
    vfork_held: bool,
    /// In a vfork that made child process `Tid`: at the syscall's exit,
    /// with `PTRACE_O_TRACEVFORKDONE` set then, `PTRACE_EVENT_VFORK_DONE`.
    vfork_child: Option<Tid>,
    /// Resumed with `PTRACE_SYSEMU` or `PTRACE_SYSEMU_SINGLESTEP`: its
    /// next syscall stops at its entry and is not run
    /// ([`Session::sysemu_entry`]).
    sysemu: bool,
    /// Its debug registers as its tracer wrote them (`debugregs.rs`).
    debug: DebugRegs,
}

/// The exit of a tracee that is not its tracer's child, until the tracer's
/// wait reports it (as the kernel's wait reports a traced thread's or
/// grandchild's exit to the tracer).
#[derive(Debug, Clone)]
pub(super) struct EmuExit {
    tracer: Tid,
    /// Its tracing thread (`Traced::thread`).
    thread: Option<Tid>,
    tracee: Tid,
    status: ExitStatus,
}

/// What a tracer's wait gets from the emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitAnswer {
    /// Nothing emulated to report: the kernel's wait runs.
    Kernel,
    /// A stop or exit reported: the call's result.
    Now(i64),
    /// Nothing to report yet, and the kernel would not wait (no child of
    /// the tracer is waited for): held at the entry until something is
    /// ([`Session::park_wait`]).
    Park,
}

/// A tracee's emulated stop.
#[derive(Debug, Clone)]
struct EmuStop {
    /// What `wait4` reports (`(sig << 8) | 0x7f`, with an event above).
    status: i32,
    /// What `PTRACE_GETSIGINFO` answers.
    info: [u8; SIGINFO_SIZE],
    /// A wait returned it already.
    reported: bool,
    /// Where the stop is, as a signal delivered there is recorded.
    kind: SignalKind,
    /// A syscall-entry or -exit stop, or an event stop (a signal to resume
    /// it with is sent anew at a syscall stop, ignored at an event stop).
    syscall: bool,
    /// Its tracer was sent its `SIGCHLD`.
    notified: bool,
    /// What `PTRACE_GETEVENTMSG` answers at an event stop (None: the
    /// traced thread's id, as after an exec).
    msg: Option<u64>,
    /// A stop inside a syscall (a clone's event stop): resumed with
    /// `PTRACE_SYSCALL`, the tracee stops at once at the syscall's exit.
    exit_next: bool,
    /// The exit stop of an exec without `PTRACE_O_TRACEEXEC` (legacy
    /// tracee): however resumed, the exec's `SIGTRAP` is delivered first, a
    /// signal-delivery stop.
    trap_next: bool,
    /// A `PTRACE_SYSEMU` stop (or the exit stop `PTRACE_SYSCALL` makes
    /// after one): the call is skipped already, the real thread held at
    /// its exit stop with `orig_rax` -1, as replay's is -1 once it emulated
    /// the call; this is the `orig_rax` its tracer sees (the call's number,
    /// or what the tracer wrote there since).
    sysemu: Option<u64>,
    /// A job-control trap (the kernel's `do_jobctl_trap`): a group stop
    /// its tracer is shown, or the trap a `SIGCONT` makes of a seized
    /// tracee in one: a signal to resume it with is ignored, and its
    /// tracer's `SIGCHLD` says `CLD_STOPPED` with this `si_status` (the
    /// stop signal; 0 once continued).
    group: Option<i32>,
    /// Resumed with `PTRACE_LISTEN` from a `PTRACE_EVENT_STOP`: still
    /// held, but not in a stop its tracer may query (ESRCH), until a
    /// `SIGCONT` or `PTRACE_INTERRUPT` traps it again
    /// ([`Session::wake_listeners`]).
    listening: bool,
}

impl EmuStop {
    /// A stop the kernel reports through `ptrace_notify`, at a syscall: a
    /// syscall stop (`SIGTRAP`, with `0x80` under `PTRACE_O_TRACESYSGOOD`)
    /// or an event stop (`SIGTRAP | EVENT << 8`). `code` is its status's
    /// stop signal and its `si_code`, `pid` the tracee's (`si_pid`), `msg`
    /// its event message.
    fn notify(code: i32, pid: Tid, msg: Option<u64>) -> EmuStop {
        let mut info = user_siginfo(libc::SIGTRAP, pid);
        info[8..12].copy_from_slice(&code.to_ne_bytes());
        EmuStop {
            status: (code << 8) | 0x7f,
            info,
            reported: false,
            kind: SignalKind::AtSyscallExit,
            syscall: true,
            notified: false,
            msg,
            exit_next: false,
            trap_next: false,
            sysemu: None,
            group: None,
            listening: false,
        }
    }

    /// A stop with wait status `status` and siginfo `info` that is not a
    /// syscall stop: a signal-delivery stop, or `PTRACE_INTERRUPT`'s event
    /// stop; `kind`: where it is, as a signal delivered there is recorded.
    fn new(status: i32, info: [u8; SIGINFO_SIZE], kind: SignalKind) -> EmuStop {
        EmuStop {
            status,
            info,
            reported: false,
            kind,
            syscall: false,
            notified: false,
            msg: None,
            exit_next: false,
            trap_next: false,
            sysemu: None,
            group: None,
            listening: false,
        }
    }

    /// A signal-delivery stop of `signo` with `info` (a signal to resume
    /// it with is delivered).
    fn delivery(signo: i32, info: [u8; SIGINFO_SIZE]) -> EmuStop {
        EmuStop::new((signo << 8) | 0x7f, info, SignalKind::AtSyscallExit)
    }

    /// Whether a signal its tracer resumes it with is delivered as such:
    /// only at a signal-delivery stop (the kernel ignores it at an event
    /// stop, `PTRACE_EVENT_STOP` among them, and sends it anew at a
    /// syscall stop).
    fn takes_signal(&self) -> bool {
        !self.syscall && self.group.is_none() && self.status >> 16 == 0
    }

    /// The job-control trap of a group stop for stop signal `sig` (or, for
    /// `sig` `SIGTRAP`, a seized tracee's trap once continued): for a
    /// seized tracee `PTRACE_EVENT_STOP` with the signal, for another a
    /// plain stop with it (the kernel's `do_jobctl_trap`); `si_status` its
    /// `SIGCHLD`'s.
    fn group_trap(sig: i32, seized: bool, pid: Tid, si_status: i32) -> EmuStop {
        let event = if seized { libc::PTRACE_EVENT_STOP } else { 0 };
        let code = sig | (event << 8);
        let mut info = user_siginfo(sig, pid);
        info[8..12].copy_from_slice(&code.to_ne_bytes());
        let mut stop = EmuStop::new((code << 8) | 0x7f, info, SignalKind::AtSyscallExit);
        stop.group = Some(si_status);
        stop
    }

    /// Whether it is a `PTRACE_EVENT_STOP` (where `PTRACE_LISTEN` is taken).
    fn event_stop(&self) -> bool {
        self.status >> 16 == libc::PTRACE_EVENT_STOP
    }

    /// Its stop signal (`WSTOPSIG`).
    fn signal(&self) -> i32 {
        (self.status >> 8) & 0x7f
    }
}

/// Where a tracee is held, for what its tracer writes into it
/// ([`Session::held_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldAt {
    /// At a `PTRACE_SYSCALL` syscall-entry stop: a write of its general
    /// registers or memory is made on the real thread, and recorded as one
    /// replay applies at that syscall's entry (`WriteKind::RegsAtEntry`,
    /// `WriteKind::MemoryAtEntry`).
    SyscallEntry,
    /// At the `PTRACE_EVENT_EXIT` stop of an `exit` or `exit_group` call.
    ExitEvent,
    /// At any other stop.
    Elsewhere,
}

/// Where a tracee's `PTRACE_SINGLESTEP` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Not stepping.
    No,
    /// Asked for: it runs one instruction when it next runs.
    Asked,
    /// Running its instruction; `pushf`: the instruction pushes the flags
    /// (the trap flag with them, cleared at the step's trap: replay runs
    /// the instruction without it).
    Running { pushf: bool },
    /// Its instruction was a syscall: it stops at the syscall's exit.
    InSyscall,
}

/// `si_code` of a single step's `SIGTRAP`.
const TRAP_TRACE: i32 = 2;

/// A signal to deliver when a tracee next runs (its tracer resumed it with
/// one): number, siginfo, where.
pub(super) type Resumption = (i32, [u8; SIGINFO_SIZE], SignalKind);

impl Traced {
    /// Held in an emulated stop.
    pub(super) fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// What the watchdog says of a thread held by its tracer.
    pub(super) fn describe(&self) -> String {
        format!(
            "stopped by its tracer, process {} (ptrace emulated)",
            self.tracer
        )
    }
}

/// A siginfo for `signo` sent by the kernel (`SI_KERNEL`, no sender), as
/// `send_sig` with a private sender fills it.
fn kernel_siginfo(signo: i32) -> [u8; SIGINFO_SIZE] {
    let mut info = [0u8; SIGINFO_SIZE];
    info[0..4].copy_from_slice(&signo.to_ne_bytes());
    info[8..12].copy_from_slice(&libc::SI_KERNEL.to_ne_bytes());
    info
}

/// A siginfo for `signo` sent by process `pid` with `kill`.
fn user_siginfo(signo: i32, pid: Tid) -> [u8; SIGINFO_SIZE] {
    let mut info = [0u8; SIGINFO_SIZE];
    info[0..4].copy_from_slice(&signo.to_ne_bytes());
    info[8..12].copy_from_slice(&SI_USER.to_ne_bytes());
    info[16..20].copy_from_slice(&pid.to_ne_bytes());
    info
}

/// A single step's `SIGTRAP` siginfo: `TRAP_TRACE`, `addr` its address
/// (the next instruction's; 0 after a step over a syscall).
fn step_trap(addr: u64) -> [u8; SIGINFO_SIZE] {
    let mut info = [0u8; SIGINFO_SIZE];
    info[0..4].copy_from_slice(&libc::SIGTRAP.to_ne_bytes());
    info[8..12].copy_from_slice(&TRAP_TRACE.to_ne_bytes());
    info[16..24].copy_from_slice(&addr.to_ne_bytes());
    info
}

/// The parent process of `pid` (`/proc/PID/status`).
fn parent_of(pid: Tid) -> Option<Tid> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `CAP_SYS_PTRACE`'s bit in a capability set.
const CAP_SYS_PTRACE: u32 = 19;

/// What `/proc/TID/status` says of a thread's credentials: its real,
/// effective and saved user and group ids, and whether `CAP_SYS_PTRACE` is
/// in its effective set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Creds {
    uids: [u32; 3],
    gids: [u32; 3],
    cap_sys_ptrace: bool,
}

impl Creds {
    /// Thread `tid`'s, None when they cannot be read.
    fn of(tid: Tid) -> Option<Creds> {
        Creds::parse(&std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?)
    }

    /// From the text of a `/proc/TID/status`.
    fn parse(text: &str) -> Option<Creds> {
        let ids = |key: &str| -> Option<[u32; 3]> {
            let line = text.lines().find_map(|l| l.strip_prefix(key))?;
            let v: Vec<u32> = line
                .split_whitespace()
                .take(3)
                .filter_map(|f| f.parse().ok())
                .collect();
            v.try_into().ok()
        };
        let cap_eff = text
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
        Some(Creds {
            uids: ids("Uid:")?,
            gids: ids("Gid:")?,
            cap_sys_ptrace: cap_eff & (1 << CAP_SYS_PTRACE) != 0,
        })
    }
}

/// Whether the kernel lets thread `tracer` (of process `tracer_pid`) attach
/// process `target` (by any of its threads) with its credentials: the
/// caller's real ids the target's real, effective and saved ones, or
/// `CAP_SYS_PTRACE` (`__ptrace_may_access`, with real credentials); then,
/// where Yama is in the kernel, its `ptrace_scope` (1: a descendant of the
/// tracer's, or `CAP_SYS_PTRACE`; 2: `CAP_SYS_PTRACE`; 3: never). The
/// answer where the kernel refuses: why. Not seen, so not checked: a
/// target made not dumpable (refused natively without `CAP_SYS_PTRACE`),
/// and a target's `PR_SET_PTRACER` exception under scope 1 (refused here,
/// with a warning, where natively it lets the tracer attach).
fn may_attach(tracer: Tid, tracer_pid: Tid, target: Tid) -> Result<(), String> {
    let (Some(caller), Some(traced)) = (Creds::of(tracer), Creds::of(target)) else {
        return Err("credentials unreadable".into());
    };
    let same = traced.uids.iter().all(|&u| u == caller.uids[0])
        && traced.gids.iter().all(|&g| g == caller.gids[0]);
    if !same && !caller.cap_sys_ptrace {
        return Err("another user's process, without CAP_SYS_PTRACE".into());
    }
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    match scope {
        0 => Ok(()),
        1 if caller.cap_sys_ptrace || descends_from(target, tracer_pid) => Ok(()),
        1 => {
            warn!(
                tracer = tracer_pid,
                target,
                "PTRACE_ATTACH/PTRACE_SEIZE of a process that is not a descendant under Yama ptrace_scope 1: refused (the recorder does not know of PR_SET_PTRACER exceptions)"
            );
            Err("Yama ptrace_scope 1".into())
        }
        2 if caller.cap_sys_ptrace => Ok(()),
        _ => Err(format!("Yama ptrace_scope {scope}")),
    }
}

/// Whether process `pid` descends from process `ancestor` (its parent's
/// parent's ..., as `/proc` tells them).
fn descends_from(pid: Tid, ancestor: Tid) -> bool {
    let mut p = pid;
    // (A bound, should the chain change under the walk.)
    for _ in 0..4096 {
        match parent_of(p) {
            Some(q) if q == ancestor => return true,
            Some(q) if q > 1 => p = q,
            _ => return false,
        }
    }
    false
}

fn neg(errno: i32) -> i64 {
    -i64::from(errno)
}

impl Session {
    /// Whether `tid` is traced by a process of the recording.
    pub(super) fn is_emulated_tracee(&self, tid: Tid) -> bool {
        self.tasks.get(&tid).is_some_and(|t| t.traced.is_some())
    }

    /// The program's `ptrace(request, pid, addr, data)` from thread `tid`
    /// of process `pid` (stopped at its entry, which is skipped): does it
    /// and returns the result the call gets.
    pub(super) fn emulate_ptrace(
        &mut self,
        tid: Tid,
        pid: Tid,
        args: &[u64; 6],
    ) -> Result<i64, Error> {
        let request = args[0] as u32 as i32;
        let target = args[1] as i32;
        let (addr, data) = (args[2], args[3]);
        match request {
            req::TRACEME => {
                let parent = parent_of(pid).filter(|p| self.tasks.values().any(|t| t.pid == *p));
                let task = self.tasks.get_mut(&tid).expect("task exists");
                match parent {
                    Some(parent) if task.traced.is_none() => {
                        self.emulating_ptrace = true;
                        task.traced = Some(Traced {
                            tracer: parent,
                            thread: None,
                            seized: false,
                            options: 0,
                            stop: None,
                            exit_stopped: false,
                            // (The kernel's wait reports a process, not
                            // another of its threads.)
                            child: tid == pid,
                            clone_event: None,
                            vfork_held: false,
                            vfork_child: None,
                            sysemu: false,
                            debug: DebugRegs::default(),
                        });
                        Ok(0)
                    }
                    // Traced already, or the parent is outside the
                    // recording (the recorder itself): as under a debugger.
                    _ => Ok(neg(libc::EPERM)),
                }
            }
            req::ATTACH | req::SEIZE => {
                let Some(t) = self.tasks.get(&target) else {
                    // Outside the recording: refused, as before.
                    return Ok(neg(libc::EPERM));
                };
                // (The kernel refuses a thread of the tracer's own process,
                // and one traced already.)
                if t.pid == pid || t.traced.is_some() {
                    return Ok(neg(libc::EPERM));
                }
                let tgid = t.pid;
                if let Err(why) = may_attach(tid, pid, tgid) {
                    tracing::debug!(tracer = pid, target, why, "attach refused, as natively");
                    return Ok(neg(libc::EPERM));
                }
                let seized = request == req::SEIZE;
                if seized {
                    if let Some(option) = unemulated_option(data) {
                        warn!("PTRACE_SEIZE: the recorder does not emulate {option}");
                        return Ok(neg(libc::EINVAL));
                    }
                }
                self.emulating_ptrace = true;
                // The kernel's wait reports a child process's exit; a
                // thread's (not a process's main one) or a grandchild's is
                // the emulated wait's ([`EmuExit`]).
                let child = target == tgid && parent_of(target) == Some(pid);
                self.tasks.get_mut(&target).expect("checked").traced = Some(Traced {
                    tracer: pid,
                    thread: Some(tid),
                    seized,
                    options: if seized { data } else { 0 },
                    stop: None,
                    exit_stopped: false,
                    child,
                    clone_event: None,
                    vfork_held: false,
                    vfork_child: None,
                    sysemu: false,
                    debug: DebugRegs::default(),
                });
                if !seized {
                    let status = (libc::SIGSTOP << 8) | 0x7f;
                    // The kernel sends it as its own (`SEND_SIG_PRIV`:
                    // `SI_KERNEL`, no sender).
                    let info = kernel_siginfo(libc::SIGSTOP);
                    self.emu_stop(target, status, info, SignalKind::AtSyscallExit)?;
                }
                Ok(0)
            }
            _ => self.tracee_request(tid, pid, request, target, addr, data),
        }
    }
}

impl Session {
    /// At a syscall's exit, its event written: a tracee that stepped over
    /// it stops (its `SIGTRAP`) and is held. Returns whether it did.
    pub(super) fn step_over_syscall_done(&mut self, tid: Tid) -> bool {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return false;
        };
        let vfork_done = task.traced.as_mut().and_then(|t| {
            let child = t.vfork_child.take()?;
            (t.options & PTRACE_O_TRACEVFORKDONE != 0).then_some(child)
        });
        if let Some(child) = vfork_done {
            // A vfork under PTRACE_O_TRACEVFORKDONE, the child gone or
            // exec'd: the event stop before the call returns, the child's
            // id its message; a syscall-exit stop follows if resumed so.
            task.syscall_stops = false;
            task.step = Step::No;
            let code = libc::SIGTRAP | (libc::PTRACE_EVENT_VFORK_DONE << 8);
            let mut stop = EmuStop::notify(code, task.pid, u64::try_from(child).ok());
            stop.exit_next = true;
            self.hold_stopped(tid, stop);
            return true;
        }
        if let Some((event, child)) = task.traced.as_mut().and_then(|t| t.clone_event.take()) {
            // A clone or fork under PTRACE_O_TRACECLONE/_TRACEFORK: its
            // event stop, the new thread's id its message. A syscall-exit
            // stop (PTRACE_SYSCALL) comes after it, if resumed so.
            task.syscall_stops = false;
            task.step = Step::No;
            let code = libc::SIGTRAP | (event << 8);
            let mut stop = EmuStop::notify(code, task.pid, u64::try_from(child).ok());
            stop.exit_next = true;
            self.hold_stopped(tid, stop);
            return true;
        }
        let sysemu = task.traced.as_ref().is_some_and(|t| t.sysemu);
        if task.syscall_stops && !sysemu {
            // PTRACE_SYSCALL: its syscall-exit stop. (Not under
            // PTRACE_SYSEMU, resumed from an entry or event stop inside
            // the call: the call goes on, its exit makes no stop, the next
            // call stops at its entry.)
            task.syscall_stops = false;
            task.step = Step::No;
            self.syscall_stop(tid, false);
            return true;
        }
        if task.step != Step::InSyscall {
            return false;
        }
        task.step = Step::No;
        self.signal_stop(tid, libc::SIGTRAP, &step_trap(0), SignalKind::AtSyscallExit)
    }

    /// At the entry of syscall `nr` with `args` (its seccomp stop, nothing
    /// done yet): a tracee resumed with `PTRACE_SYSCALL` stops there, held;
    /// then, at an `exit` or `exit_group`, one with `PTRACE_O_TRACEEXIT`
    /// stops at its exit (`PTRACE_EVENT_EXIT`, the status to come its event
    /// message), as the kernel stops it before the exit does anything. The
    /// entry is handled when it runs again ([`Session::resumes_at_entry`]),
    /// from the registers it has then: a call its tracer changed there is
    /// made as changed (`nr` and `args` are then the new call's).
    /// Returns whether it stopped.
    pub(super) fn syscall_entry_stop(&mut self, tid: Tid, nr: i64, args: &[u64; 6]) -> bool {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return false;
        };
        // Resumed from a stop here: the entry goes on, or stops again at
        // the exit.
        let resumed = std::mem::take(&mut task.at_entry_stop);
        let Some(traced) = task.traced.as_mut() else {
            return false;
        };
        if !resumed && task.syscall_stops {
            task.syscall_stops = false;
            task.at_entry_stop = true;
            self.syscall_stop(tid, true);
            return true;
        }
        let exits = nr == libc::SYS_exit || nr == libc::SYS_exit_group;
        if !exits || traced.options & PTRACE_O_TRACEEXIT == 0 || traced.exit_stopped {
            return false;
        }
        traced.exit_stopped = true;
        task.at_entry_stop = true;
        let code = libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8);
        let stop = EmuStop::notify(code, task.pid, Some((args[0] & 0xff) << 8));
        self.hold_stopped(tid, stop);
        true
    }

    /// At the entry of syscall `nr` with `args` (its seccomp stop, its
    /// number `nr` as recorded: a 32-bit call's own): a tracee resumed with
    /// `PTRACE_SYSEMU` or `PTRACE_SYSEMU_SINGLESTEP` stops there, and the
    /// call is not run. As the kernel does, it is skipped before its tracer
    /// sees it: its number made -1 on the real thread, which is run to the
    /// skipped call's exit stop with `rax` -ENOSYS, and the call recorded
    /// as complete with that result (replay skips a call that returned
    /// ENOSYS whatever it is, its thread at the skipped entry). So the
    /// stop is, for replay, after the call: what the tracer writes into the
    /// tracee here (its result in `rax`) is recorded and replayed as at any
    /// stop. The tracer sees the syscall-entry stop the kernel makes
    /// (`SIGTRAP`, with `0x80` under `PTRACE_O_TRACESYSGOOD`; event message
    /// `PTRACE_EVENTMSG_SYSCALL_ENTRY`), `orig_rax` the call's number and
    /// `rax` -ENOSYS; no exit stop follows unless it resumes it with
    /// `PTRACE_SYSCALL`. Returns whether it stopped.
    pub(super) fn sysemu_entry(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<bool, Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(false);
        };
        if !task.syscall_stops
            || task.at_entry_stop
            || !task.traced.as_ref().is_some_and(|t| t.sysemu)
        {
            return Ok(false);
        }
        if nr == libc::SYS_rt_sigreturn {
            // Replay tells a skipped call by its -ENOSYS, but an
            // `rt_sigreturn`'s result is the rax it restores, which may
            // be -ENOSYS too: replay runs every one.
            self.unsupported(
                tid,
                "rt_sigreturn skipped by the program's tracer (PTRACE_SYSEMU): replay would run it"
                    .into(),
            )?;
        }
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let shown = regs.orig_rax;
        let ret = neg(libc::ENOSYS);
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        // To the skipped call's exit stop, where a thread held at a
        // syscall's exit stop is (a step from there runs one instruction).
        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))?;
        match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
            WaitEvent::SyscallStop { .. } => {}
            ev => {
                return Err(Error::Ptrace {
                    op: "skipping a syscall under PTRACE_SYSEMU",
                    tid,
                    source: std::io::Error::other(format!("unexpected stop {ev:?}")),
                })
            }
        }
        self.emit(Event::Syscall(SyscallEvent {
            tid,
            nr,
            args: *args,
            result: SyscallResult {
                ret,
                writes: Vec::new(),
                extra: SyscallExtra::None,
            },
        }))?;
        let task = self.tasks.get_mut(&tid).expect("checked");
        task.syscall_stops = false;
        // (PTRACE_SYSEMU_SINGLESTEP: the step ends here.)
        task.step = Step::No;
        if let Some(t) = task.traced.as_mut() {
            t.sysemu = false;
        }
        self.syscall_stop(tid, true);
        if let Some(s) = self.traced_mut(tid).and_then(|t| t.stop.as_mut()) {
            s.sysemu = Some(shown);
            // Resumed with PTRACE_SYSCALL, the skipped call's exit stop.
            s.exit_next = true;
        }
        Ok(true)
    }

    /// Holds `tid` in a syscall stop, at the entry or the exit (its event
    /// message `PTRACE_EVENTMSG_SYSCALL_ENTRY` or `_EXIT`, 1 or 2, as the
    /// kernel sets it).
    fn syscall_stop(&mut self, tid: Tid, entry: bool) {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        let good = task
            .traced
            .as_ref()
            .is_some_and(|t| t.options & PTRACE_O_TRACESYSGOOD != 0);
        let sig = libc::SIGTRAP | if good { 0x80 } else { 0 };
        let stop = EmuStop::notify(sig, task.pid, Some(if entry { 1 } else { 2 }));
        self.hold_stopped(tid, stop);
    }

    /// Holds tracee `tid`, stopped by the recorder, in emulated stop
    /// `stop`: ready but not run until its tracer resumes it.
    fn hold_stopped(&mut self, tid: Tid, stop: EmuStop) {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        if let Some(t) = task.traced.as_mut() {
            t.stop = Some(stop);
        }
        task.set_ready(Pending::Nothing);
        if self.current == Some(tid) {
            self.current = None;
        }
    }

    /// Whether `tid`, resumed now, is held at a syscall-entry stop (its
    /// entry is then handled, [`Session::syscall_entry`]).
    pub(super) fn resumes_at_entry(&self, tid: Tid) -> bool {
        self.tasks.get(&tid).is_some_and(|t| t.at_entry_stop)
    }

    /// Where tracee `tid` is held, for its tracer's writes: at a
    /// `PTRACE_SYSCALL` entry stop (its real thread at the call's seccomp
    /// stop, nothing of the call done: its entry is handled again, from
    /// the registers it then has, when it is resumed), at the
    /// `PTRACE_EVENT_EXIT` stop of an `exit` or `exit_group` (held at the
    /// call's entry too, but natively the exit is under way there: the
    /// call is not made again), or elsewhere.
    fn held_at(&self, tid: Tid) -> HeldAt {
        let Some(task) = self.tasks.get(&tid) else {
            return HeldAt::Elsewhere;
        };
        if !task.at_entry_stop {
            return HeldAt::Elsewhere;
        }
        match task.traced.as_ref().and_then(|t| t.stop.as_ref()) {
            Some(s) if s.syscall && s.status >> 16 == 0 => HeldAt::SyscallEntry,
            Some(_) => HeldAt::ExitEvent,
            None => HeldAt::Elsewhere,
        }
    }

    /// Whether tracee `tid` is held at a `PTRACE_SYSCALL` syscall-entry
    /// stop ([`HeldAt::SyscallEntry`]): what another process writes into
    /// its memory then (through `/proc/PID/mem` or `process_vm_writev`,
    /// `shared.rs`) is recorded as a write replay makes at that entry.
    pub(super) fn held_at_syscall_entry(&self, tid: Tid) -> bool {
        self.held_at(tid) == HeldAt::SyscallEntry
    }

    /// Whether `tid` is traced by a process of the recording (emulated
    /// ptrace). Its code is not patched (syscall or rdtsc sites) while it
    /// is: its tracer writes into that code (a debugger's breakpoints,
    /// through pokes or `/proc/PID/mem`) and puts back the bytes it saw
    /// there, which would land in the middle of a patch written meanwhile
    /// (gdb's inferior died of `SIGSEGV` at a wild address in about one
    /// recording in fifteen).
    pub(super) fn has_tracer(&self, tid: Tid) -> bool {
        self.tasks.get(&tid).is_some_and(|t| t.traced.is_some())
    }

    /// Whether `tid` is resumed under `PTRACE_SYSCALL` or a step: its
    /// syscall sites are not patched (a stub's call is untraced), and its
    /// buffered syscalls are made traced.
    pub(super) fn watches_syscalls(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| t.syscall_stops || t.step != Step::No)
    }

    /// Runs one instruction of a tracee whose tracer asked for a step
    /// (it then stops with a `SIGTRAP`, which [`Session::signal`] makes a
    /// stop). Returns false when none was asked for. A step whose trap has
    /// not come yet (the recorder stopped the thread first: a slice's end,
    /// an interrupt) is made again: the trap flag lasts one resume, and
    /// resumed without it the tracee would run on for several
    /// instructions before its tracer saw a stop.
    pub(super) fn step_now(&mut self, tid: Tid) -> Result<bool, Error> {
        if !self
            .tasks
            .get(&tid)
            .is_some_and(|t| matches!(t.step, Step::Asked | Step::Running { .. }))
        {
            return Ok(false);
        }
        let pushf = matches!(
            ptrace::getregs(tid)
                .ok()
                .and_then(|regs| super::steps::leaks_flags(tid, &regs)),
            Some(super::steps::FlagLeak::Pushf)
        );
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.step = Step::Running { pushf };
        }
        ptrace::singlestep(tid, 0).map_err(ptrace_err("PTRACE_SINGLESTEP", tid))?;
        Ok(true)
    }

    /// Lets `tid`, stopped by the recorder for a reason of its own (a moot
    /// interrupt's stop, a signal held back, a stray trap), go on as it
    /// ran: a tracee whose tracer asked for a single step steps again, any
    /// other thread continues. Such a stop comes before the step's
    /// instruction has run, or after it with the step's trap queued, which
    /// the kernel reports before the tracee runs again; `PTRACE_CONT` would
    /// drop the trap flag, and the tracee would run on, its tracer never
    /// seeing the step end (gdb's displaced step of a `ret` ran on to the
    /// program's entry, where the copy of the instruction gdb had put
    /// there ran again, and the inferior died of `SIGSEGV`).
    pub(super) fn go_on(&mut self, tid: Tid) -> Result<(), Error> {
        if self.step_now(tid)? {
            return Ok(());
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Whether `tid` is to run one instruction for its tracer, or runs it.
    pub(super) fn steps_for_tracer(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| matches!(t.step, Step::Asked | Step::Running { .. }))
    }

    /// A tracee stepping for its tracer whose instruction the recorder
    /// emulated (a trapped `rdtsc`, its event written): the step ends
    /// there, with the trap the instruction's completion raises natively
    /// (`TRAP_TRACE`, the next instruction's address `next_ip`), a stop at
    /// that event. Resumed instead, it would run on past the step.
    pub(super) fn end_step_emulated(&mut self, tid: Tid, next_ip: u64) -> Result<(), Error> {
        // (A debug exception natively: its DR6 BS alone.)
        self.step_trap_dr6(tid);
        self.end_step(tid, libc::SIGTRAP)?;
        self.signal_stop(
            tid,
            libc::SIGTRAP,
            &step_trap(next_ip),
            SignalKind::AtSyscallExit,
        );
        Ok(())
    }

    /// A synchronous signal (a step's trap among them) ends a step; a
    /// step's trap after a `pushf` takes the trap flag out of the pushed
    /// flags.
    pub(super) fn end_step(&mut self, tid: Tid, signo: i32) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let pushf = task.step == Step::Running { pushf: true };
        task.step = Step::No;
        if pushf && signo == libc::SIGTRAP {
            self.clear_pushed_trap_flag(tid)?;
        }
        Ok(())
    }

    /// At a syscall's entry: a tracee stepping is stepping over this
    /// syscall, whose instruction copied the trap flag into r11 (taken
    /// out: replay runs the syscall without it).
    pub(super) fn step_into_syscall(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if !matches!(task.step, Step::Asked | Step::Running { .. }) {
            return Ok(());
        }
        task.step = Step::InSyscall;
        self.clear_trap_flag_in_r11(tid)
    }

    fn traced_mut(&mut self, tid: Tid) -> Option<&mut Traced> {
        self.tasks.get_mut(&tid)?.traced.as_mut()
    }

    /// Puts tracee `tid` in an emulated stop. One blocked in a syscall is
    /// interrupted, so that it stops (the syscall restarts when it goes
    /// on); the stop shows once it is stopped by the recorder.
    fn emu_stop(
        &mut self,
        tid: Tid,
        status: i32,
        info: [u8; SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if let Some(t) = task.traced.as_mut() {
            t.stop = Some(EmuStop::new(status, info, kind));
        }
        if matches!(task.state, State::InSyscall { .. }) {
            match ptrace::interrupt(tid) {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                    return Err(ptrace_err("PTRACE_INTERRUPT", tid)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A signal reaching a tracee (stopped at its delivery, or held back
    /// to a syscall's entry): not delivered, but a stop its tracer sees.
    /// Returns false when `tid` is not an emulated tracee, or the signal
    /// is one its tracer resumed it with.
    pub(super) fn signal_stop(
        &mut self,
        tid: Tid,
        signo: i32,
        info: &[u8; SIGINFO_SIZE],
        kind: SignalKind,
    ) -> bool {
        if signo == libc::SIGKILL || !self.is_emulated_tracee(tid) {
            return false;
        }
        self.hold_stopped(tid, EmuStop::new((signo << 8) | 0x7f, *info, kind));
        true
    }

    /// After a successful exec of `tid`: a traced thread stops, in the
    /// kernel's order. With `PTRACE_O_TRACEEXEC`, `PTRACE_EVENT_EXEC`
    /// (then, resumed with `PTRACE_SYSCALL` from the execve's entry, the
    /// syscall-exit stop at once when resumed so again). Without it, a
    /// thread resumed with `PTRACE_SYSCALL` stops at the execve's exit (the
    /// new image's registers, rax 0), and a legacy tracee (`PTRACE_TRACEME`,
    /// `PTRACE_ATTACH`) gets the exec's `SIGTRAP`, a signal queued in the
    /// exec, delivered after that exit stop (a signal-delivery stop; a seized
    /// one gets none). Returns whether it stopped (then it is held, not
    /// current).
    pub(super) fn exec_stop(&mut self, tid: Tid) -> bool {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return false;
        };
        let Some(t) = task.traced.as_mut() else {
            return false;
        };
        // An exec clears the debug registers (the real ones too).
        t.debug = DebugRegs::default();
        let (options, seized) = (t.options, t.seized);
        let pid = task.pid;
        let syscall_exit = std::mem::take(&mut task.syscall_stops);
        task.step = Step::No;
        if options & PTRACE_O_TRACEEXEC != 0 {
            let code = libc::SIGTRAP | (libc::PTRACE_EVENT_EXEC << 8);
            let mut stop = EmuStop::notify(code, pid, None);
            // Its message: the thread that exec'd (this one).
            stop.exit_next = syscall_exit;
            self.hold_stopped(tid, stop);
            return true;
        }
        if syscall_exit {
            self.syscall_stop(tid, false);
            if !seized {
                if let Some(s) = self.traced_mut(tid).and_then(|t| t.stop.as_mut()) {
                    s.trap_next = true;
                }
            }
            return true;
        }
        if seized {
            // A seized tracee without the option gets no SIGTRAP (the
            // legacy one is for PTRACE_TRACEME and PTRACE_ATTACH).
            return false;
        }
        let stop = EmuStop::delivery(libc::SIGTRAP, user_siginfo(libc::SIGTRAP, pid));
        self.hold_stopped(tid, stop);
        true
    }
}

/// Writes `bytes` at `addr` in the tracer's memory: the request's result
/// (0, or EFAULT).
fn store(mem: &RemoteMem, addr: u64, bytes: &[u8]) -> i64 {
    match mem.write(addr, bytes) {
        Ok(()) => 0,
        Err(_) => neg(libc::EFAULT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_not_emulated_are_named() {
        assert_eq!(unemulated_option(0), None);
        // strace -f's options, and gdb's.
        assert_eq!(
            unemulated_option(0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x10_0000),
            None
        );
        assert_eq!(unemulated_option(0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20), None);
        assert_eq!(
            unemulated_option(0x4 | 0x80).as_deref(),
            Some("PTRACE_O_TRACESECCOMP")
        );
        assert_eq!(
            unemulated_option(0x20 | 0x20_0000).as_deref(),
            Some("PTRACE_O_SUSPEND_SECCOMP")
        );
        assert_eq!(
            unemulated_option(1 << 40).as_deref(),
            Some("option bits 0x10000000000")
        );
    }

    #[test]
    fn requests_are_named() {
        assert_eq!(request_name(req::TRACEME), "PTRACE_TRACEME");
        assert_eq!(request_name(req::SEIZE), "PTRACE_SEIZE");
        assert_eq!(request_name(6), "PTRACE_POKEUSER");
        assert_eq!(request_name(req::GETREGSET), "PTRACE_GETREGSET");
        assert_eq!(
            request_name(req::GET_SYSCALL_INFO),
            "PTRACE_GET_SYSCALL_INFO"
        );
        assert_eq!(request_name(0x4212), "PTRACE_SET_SYSCALL_INFO");
        assert_eq!(request_name(req::SYSEMU), "PTRACE_SYSEMU");
        assert_eq!(
            request_name(req::SYSEMU_SINGLESTEP),
            "PTRACE_SYSEMU_SINGLESTEP"
        );
        assert_eq!(request_name(0x4299), "ptrace request 0x4299");
    }

    #[test]
    fn credentials_are_read_from_proc_status() {
        let text = "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n\
                    CapEff:\t0000000000080000\n";
        assert_eq!(
            Creds::parse(text),
            Some(Creds {
                uids: [1000, 1001, 1002],
                gids: [5, 6, 7],
                cap_sys_ptrace: true,
            })
        );
        let without = text.replace("0000000000080000", "000001ffffe7ffff");
        assert!(!Creds::parse(&without).expect("parsed").cap_sys_ptrace);
        assert_eq!(Creds::parse("Uid:\t1\t1\t1\t1\n"), None);
        let me = Creds::of(std::process::id() as Tid).expect("own status readable");
        // (Its /proc directory is owned by its effective user.)
        let owner = std::fs::metadata("/proc/self").expect("/proc/self");
        assert_eq!(me.uids[1], std::os::unix::fs::MetadataExt::uid(&owner));
    }

    #[test]
    fn a_process_descends_from_its_parents() {
        let me = std::process::id() as Tid;
        let parent = parent_of(me).expect("a parent");
        assert!(descends_from(me, parent));
        assert!(!descends_from(parent, me));
    }

    #[test]
    fn a_kill_siginfo_names_the_signal_and_the_sender() {
        let info = user_siginfo(libc::SIGSTOP, 1234);
        assert_eq!(
            i32::from_ne_bytes(info[0..4].try_into().unwrap()),
            libc::SIGSTOP
        );
        assert_eq!(ptrace::siginfo_code(&info), SI_USER);
        assert_eq!(i32::from_ne_bytes(info[16..20].try_into().unwrap()), 1234);
    }
}
