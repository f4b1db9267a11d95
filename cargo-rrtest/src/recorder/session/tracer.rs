//! The program's own ptrace, emulated between processes of the recording.
//!
//! The recorder is the real tracer of every thread, so the kernel would
//! refuse the program's requests; where tracer and tracee are both
//! processes of the recording (the tracee a child of the tracer), the
//! recorder plays the kernel's part: it keeps who traces whom
//! ([`Traced`]), holds a tracee in an emulated stop (it is not scheduled
//! until its tracer resumes it), answers the tracer's requests from the
//! real tracee, and answers the tracer's `wait4`/`waitid` with the stop.
//! Everything the tracer sees is a syscall result (recorded and replayed
//! as any); what it changes in the tracee (`PTRACE_POKEDATA`,
//! `PTRACE_SETREGS`, `PTRACE_SETREGSET` of `NT_PRSTATUS`,
//! `PTRACE_POKEUSER` of a general register) is a [`Event::TraceeWrite`],
//! which replay applies at the same point. A request naming a process
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
//! tells them, else NONE). Not emulated, named: register writes at a
//! syscall-entry stop (replay's tracee is not at the entry yet), debug
//! registers, the FPU and extended sets, `PTRACE_SETSIGMASK` (replay has
//! no event for them).
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
//! handled when it goes on) and exit; a successful `execve` under it makes
//! its exit stop too, in the kernel's order ([`Session::exec_stop`]). The
//! signal a resume request carries is treated as the kernel does: at a
//! signal-delivery stop it is delivered when the tracee next runs; at an
//! event stop it is ignored; at a syscall-exit stop it is sent anew
//! (`SI_KERNEL`), a signal-delivery stop at once. Not emulated (EIO,
//! named): a signal at a syscall-entry stop (pending while the call runs)
//! or at an exec's exit stop the legacy `SIGTRAP` follows, and
//! `PTRACE_SINGLESTEP` with a signal at a signal-delivery stop. A stop becomes visible to the tracer once the tracee
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
//! Must not: pick threads (`schedule`) or classify signals (`signals`).

use tracing::warn;

use super::{ptrace_err, Error, Pending, Session, State};
use rrtest_sys::ptrace::{self, SIGINFO_SIZE};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, ExitStatus, SignalKind, Tid};

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
    pub const SETREGS: i32 = 13;
    pub const GETFPREGS: i32 = 14;
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
    /// exit. (Otherwise, a thread or a grandchild auto-attached at a clone
    /// or fork, the emulated wait does: [`EmuExit`].)
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
}

/// The exit of a tracee that is not its tracer's child, until the tracer's
/// wait reports it (as the kernel's wait reports a traced thread's or
/// grandchild's exit to the tracer).
#[derive(Debug, Clone)]
pub(super) struct EmuExit {
    tracer: Tid,
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
        !self.syscall && self.status >> 16 == 0
    }
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

/// The parent process of `pid` (`/proc/PID/status`).
fn parent_of(pid: Tid) -> Option<Tid> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
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
                if t.pid != target || target == pid || t.traced.is_some() {
                    return Ok(neg(libc::EPERM));
                }
                if parent_of(target) != Some(pid) {
                    warn!(
                        tracer = pid,
                        target,
                        "{}: only a child of the tracer is traced under the recorder",
                        request_name(request)
                    );
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
                self.tasks.get_mut(&target).expect("checked").traced = Some(Traced {
                    tracer: pid,
                    seized,
                    options: if seized { data } else { 0 },
                    stop: None,
                    exit_stopped: false,
                    child: true,
                    clone_event: None,
                    vfork_held: false,
                    vfork_child: None,
                });
                if !seized {
                    let status = (libc::SIGSTOP << 8) | 0x7f;
                    let info = user_siginfo(libc::SIGSTOP, pid);
                    self.emu_stop(target, status, info, SignalKind::AtSyscallExit)?;
                }
                Ok(0)
            }
            _ => self.tracee_request(tid, pid, request, target, addr, data),
        }
    }

    /// A request about tracee `target` of process `pid`.
    fn tracee_request(
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
            .filter(|t| t.tracer == pid)
            .cloned()
        else {
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
        match request {
            req::INTERRUPT => {
                if !traced.seized {
                    return Ok(neg(libc::EIO));
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
            req::SINGLESTEP if data != 0 && stop.takes_signal() => {
                // The signal would be delivered and its handler's frame
                // stepped into: not emulated.
                warn!("PTRACE_SINGLESTEP with a signal at a signal-delivery stop: the recorder does not emulate it (the program gets EIO)");
                Ok(neg(libc::EIO))
            }
            req::CONT | req::DETACH | req::SYSCALL | req::SINGLESTEP => {
                let signo = data as i64;
                if !(0..=64).contains(&signo) {
                    return Ok(neg(libc::EIO));
                }
                let at_syscall_stop = stop.syscall && stop.status >> 16 == 0;
                if signo != 0
                    && at_syscall_stop
                    && (stop.trap_next || self.tasks[&target].at_entry_stop)
                {
                    // Sent at a syscall-entry stop, the signal is pending
                    // while the call runs (it may interrupt it); at an
                    // exec's exit stop, after the exec's SIGTRAP.
                    warn!(
                        "{} with a signal at a syscall-entry stop or an exec's exit stop: the recorder does not emulate it (the program gets EIO)",
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
                    // exec's): its exit stop comes at once.
                    self.syscall_stop(target, false);
                    return Ok(0);
                }
                let in_vfork = traced.vfork_held;
                let task = self.tasks.get_mut(&target).expect("checked");
                task.syscall_stops = request == req::SYSCALL;
                task.step = match request {
                    // Inside the vfork: its step ends at the call's exit.
                    req::SINGLESTEP if in_vfork => Step::InSyscall,
                    req::SINGLESTEP => Step::Asked,
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
            req::PEEKTEXT | req::PEEKDATA => {
                let Ok(word) = mem.read_vec(addr, 8) else {
                    return Ok(neg(libc::EIO));
                };
                Ok(store(&tracer_mem, data, &word))
            }
            req::PEEKUSER => {
                let regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
                let bytes = ptrace::regs_to_bytes(&regs);
                let at = addr as usize;
                // (Any offset the program gives: aligned and below the
                // registers' size, so `at + 8` cannot overflow.)
                let word = if !at.is_multiple_of(8) {
                    return Ok(neg(libc::EIO));
                } else if at < bytes.len() {
                    bytes[at..at + 8].to_vec()
                } else if (848..848 + 64).contains(&at) {
                    // Debug registers: the program set none (the recorder's
                    // own are not its).
                    vec![0; 8]
                } else {
                    warn!(offset = at, "PTRACE_PEEKUSER: this offset is not emulated");
                    return Ok(neg(libc::EIO));
                };
                Ok(store(&tracer_mem, data, &word))
            }
            req::POKETEXT | req::POKEDATA | req::SETREGS if self.tasks[&target].at_entry_stop => {
                // Replay's tracee is not at the syscall's entry yet.
                warn!(
                    "{} at a syscall-entry stop: the recorder does not emulate it (the program gets EIO)",
                    request_name(request)
                );
                Ok(neg(libc::EIO))
            }
            req::SETREGS if traced.vfork_held => {
                warn!("PTRACE_SETREGS at a vfork's event stop: the recorder does not emulate it (the program gets EIO)");
                Ok(neg(libc::EIO))
            }
            req::POKETEXT | req::POKEDATA => {
                let bytes = data.to_ne_bytes().to_vec();
                if mem.write(addr, &bytes).is_err() {
                    return Ok(neg(libc::EIO));
                }
                self.emit(Event::TraceeWrite {
                    tid,
                    target,
                    regs: false,
                    addr,
                    bytes,
                })?;
                Ok(0)
            }
            req::GETREGS => {
                let regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
                Ok(store(&tracer_mem, data, &ptrace::regs_to_bytes(&regs)))
            }
            req::GETFPREGS => {
                let fp =
                    ptrace::getfpregs(target).map_err(ptrace_err("PTRACE_GETFPREGS", target))?;
                Ok(store(&tracer_mem, data, &fp))
            }
            req::SETREGS => {
                let Ok(bytes) = tracer_mem.read_vec(data, ptrace::REGS_SIZE) else {
                    return Ok(neg(libc::EFAULT));
                };
                let regs = ptrace::regs_from_bytes(&bytes).expect("REGS_SIZE bytes");
                ptrace::setregs(target, &regs).map_err(ptrace_err("PTRACE_SETREGS", target))?;
                self.emit(Event::TraceeWrite {
                    tid,
                    target,
                    regs: true,
                    addr: 0,
                    bytes,
                })?;
                Ok(0)
            }
            req::GETSIGINFO => Ok(store(&tracer_mem, data, &stop.info)),
            req::GETREGSET => Ok(get_regset(target, &tracer_mem, addr, data)),
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
                // Replay has no way to set a tracee's mask (a `TraceeWrite`
                // is memory or registers).
                warn!("PTRACE_SETSIGMASK: the recorder does not emulate it (the program gets EIO)");
                Ok(neg(libc::EIO))
            }
            req::GET_SYSCALL_INFO => {
                let regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
                // The kernel tells syscall stops by their si_code, which
                // has 0x80 only under PTRACE_O_TRACESYSGOOD.
                let op = if stop.syscall && ptrace::siginfo_code(&stop.info) == libc::SIGTRAP | 0x80
                {
                    if self.tasks[&target].at_entry_stop {
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
        if task.syscall_stops {
            // PTRACE_SYSCALL: its syscall-exit stop.
            task.syscall_stops = false;
            task.step = Step::No;
            self.syscall_stop(tid, false);
            return true;
        }
        if task.step != Step::InSyscall {
            return false;
        }
        task.step = Step::No;
        let mut info = user_siginfo(libc::SIGTRAP, 0);
        info[8..12].copy_from_slice(&TRAP_TRACE.to_ne_bytes());
        info[16..20].copy_from_slice(&[0; 4]);
        self.signal_stop(tid, libc::SIGTRAP, &info, SignalKind::AtSyscallExit)
    }

    /// At the entry of syscall `nr` with `args` (its seccomp stop, nothing
    /// done yet): a tracee resumed with `PTRACE_SYSCALL` stops there, held;
    /// then, at an `exit` or `exit_group`, one with `PTRACE_O_TRACEEXIT`
    /// stops at its exit (`PTRACE_EVENT_EXIT`, the status to come its event
    /// message), as the kernel stops it before the exit does anything. The
    /// entry is handled when it runs again ([`Session::resume_at_entry`]).
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
        let Some(t) = task.traced.as_ref() else {
            return false;
        };
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

    /// A tracer's `wait4`/`waitid` entry: when a stop of one of its
    /// tracees it waits for is there, or the exit of one that is not its
    /// child, writes what the call returns (status, or siginfo) and returns
    /// its result; [`WaitAnswer::Kernel`]: the call runs (a child's exit,
    /// `WNOHANG`, or a wait the kernel ends when a stop comes, see
    /// [`Session::kick_tracers`]); [`WaitAnswer::Park`]: it waits for a
    /// tracee the kernel's wait does not know of (a thread, a grandchild),
    /// and the kernel would not wait (a `WNOHANG` poll for one gets 0,
    /// nothing yet, where the kernel would say ECHILD).
    pub(super) fn emulated_wait(
        &mut self,
        tid: Tid,
        pid: Tid,
        nr: i64,
        args: &[u64; 6],
    ) -> Result<WaitAnswer, Error> {
        if !self.emulating_ptrace || (nr != libc::SYS_wait4 && nr != libc::SYS_waitid) {
            return Ok(WaitAnswer::Kernel);
        }
        let Some(report) = self.report_for(pid, nr, args) else {
            if !self.waits_on_emulation(pid, nr, args) {
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

    /// What wait call `nr` with `args` by tracer process `pid` reports now
    /// from the emulation: an unreported stop of a tracee it waits for,
    /// else the exit of one that is not its child (`waitid` only with
    /// `WEXITED`, which `wait4` implies).
    fn report_for(&self, pid: Tid, nr: i64, args: &[u64; 6]) -> Option<Report> {
        let unannounced = self.unannounced();
        let stop = self.tasks.iter().find_map(|(&t, task)| {
            let tr = task.traced.as_ref()?;
            let stop = tr.stop.as_ref()?;
            (tr.tracer == pid
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
            .position(|e| e.tracer == pid && waits_for(nr, args, e.tracee))
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

    /// Whether wait call `nr` with `args` by tracer process `pid`, with
    /// nothing to report, is the emulation's to answer: it waits for a live
    /// tracee the kernel's wait does not know of (a thread, a grandchild),
    /// and for no child of the tracer's, so that the kernel would fail it
    /// with ECHILD at once. (With a child it waits for, the kernel's wait
    /// blocks, or polls, as it would natively; blocked, it is interrupted
    /// when a report is due: [`Session::kick_tracers`].)
    fn waits_on_emulation(&self, pid: Tid, nr: i64, args: &[u64; 6]) -> bool {
        let covers = self.tasks.iter().any(|(&t, task)| {
            task.traced
                .as_ref()
                .is_some_and(|tr| tr.tracer == pid && !tr.child)
                && waits_for(nr, args, t)
        });
        // (Children unknown: the kernel's wait answers, as before.)
        covers
            && children_of(pid)
                .is_some_and(|children| !children.into_iter().any(|c| waits_for(nr, args, c)))
    }

    /// Holds tracer thread `tid` at the entry of its wait call `nr` with
    /// `args` ([`WaitAnswer::Park`]): not run until a report is due for it
    /// or it no longer waits on the emulation ([`Session::kick_tracers`]);
    /// then its entry is handled again. Nothing of the call is written
    /// yet, so replay sees one wait.
    pub(super) fn park_wait(&mut self, tid: Tid, nr: i64, args: [u64; 6]) {
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

    /// At a clone, fork or vfork event of `parent` (new thread or process
    /// `child`, clone `flags`): when `parent` is a tracee whose options ask
    /// for this kind of event (the kernel's rule: `CLONE_VFORK` is a
    /// vfork, an exit signal other than `SIGCHLD` a clone, else a fork;
    /// none with `CLONE_UNTRACED`), `child` is traced by the same tracer
    /// with the same options, starts held in its first stop (`SIGSTOP`, or
    /// `PTRACE_EVENT_STOP` when seized), and `parent` owes the event stop
    /// at the syscall's exit ([`Session::step_over_syscall_done`]); a
    /// vfork's parent is held in its event stop now, here, at the
    /// recorder's own event stop ([`Session::held_in_vfork`]: it is not
    /// resumed until its tracer resumes it). A traced vfork parent owes
    /// `PTRACE_EVENT_VFORK_DONE` at the exit, if its options ask for it
    /// then. Returns whether `child` is traced.
    pub(super) fn traced_clone(&mut self, parent: Tid, child: Tid, flags: u64) -> bool {
        let Some(tr) = self.tasks.get(&parent).and_then(|t| t.traced.clone()) else {
            return false;
        };
        let vfork = flags & libc::CLONE_VFORK as u64 != 0;
        if vfork {
            // (The kernel reports VFORK_DONE whatever CLONE_UNTRACED says.)
            if let Some(t) = self.traced_mut(parent) {
                t.vfork_child = Some(child);
            }
        }
        if flags & libc::CLONE_UNTRACED as u64 != 0 {
            return false;
        }
        let (event, option) = if vfork {
            (libc::PTRACE_EVENT_VFORK, PTRACE_O_TRACEVFORK)
        } else if flags & 0xff != libc::SIGCHLD as u64 {
            (libc::PTRACE_EVENT_CLONE, PTRACE_O_TRACECLONE)
        } else {
            (libc::PTRACE_EVENT_FORK, PTRACE_O_TRACEFORK)
        };
        if tr.options & option == 0 {
            return false;
        }
        let thread = flags & libc::CLONE_THREAD as u64 != 0;
        // A process made with CLONE_PARENT is the tracer's own child.
        let child_of_tracer = !thread && parent_of(child) == Some(tr.tracer);
        let first = if tr.seized {
            EmuStop::notify(libc::SIGTRAP | (libc::PTRACE_EVENT_STOP << 8), child, None)
        } else {
            // A SIGSTOP the kernel queued, without a sender.
            EmuStop::delivery(libc::SIGSTOP, user_siginfo(libc::SIGSTOP, 0))
        };
        tracing::debug!(parent, child, event, tracer = tr.tracer, "a new tracee");
        if let Some(task) = self.tasks.get_mut(&child) {
            task.traced = Some(Traced {
                tracer: tr.tracer,
                seized: tr.seized,
                options: tr.options,
                stop: Some(first),
                exit_stopped: false,
                child: child_of_tracer,
                clone_event: None,
                vfork_held: false,
                vfork_child: None,
            });
        }
        if vfork {
            // Held at the recorder's event stop, inside the call, before
            // the kernel waits for the child: the tracer sees it stopped
            // there, and may resume the child first.
            let tgid = self.tasks.get(&parent).map_or(parent, |t| t.pid);
            let code = libc::SIGTRAP | (event << 8);
            let stop = EmuStop::notify(code, tgid, u64::try_from(child).ok());
            if let Some(t) = self.traced_mut(parent) {
                t.stop = Some(stop);
                t.vfork_held = true;
            }
            if self.current == Some(parent) {
                self.current = None;
            }
        } else if let Some(t) = self.traced_mut(parent) {
            t.clone_event = Some((event, child));
        }
        true
    }

    /// Whether `tid` is held in its vfork's event stop (at the recorder's
    /// own event stop, not resumed: [`Session::traced_clone`]).
    pub(super) fn held_in_vfork(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| t.traced.as_ref())
            .is_some_and(|t| t.vfork_held)
    }

    /// Resumes vfork parent `tid`, let go from its event stop (by its
    /// tracer, or as its tracer is gone), into the kernel's wait for its
    /// child: it is in the syscall, and its exit stop comes when the child
    /// execs or exits. One killed meanwhile is passed over (its exit is
    /// reported).
    fn release_vfork_parent(&mut self, tid: Tid) -> Result<(), Error> {
        match self.resume_in_syscall(tid) {
            Err(Error::Ptrace { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                Ok(())
            }
            other => other,
        }
    }

    /// Thread `tid` (its task `task`, removed) is gone with `status`: a
    /// tracee that is not its tracer's child has its exit reported by the
    /// emulated wait, and its tracer is sent the `SIGCHLD`.
    pub(super) fn tracee_gone(&mut self, tid: Tid, task: &super::Task, status: ExitStatus) {
        let Some(tr) = task.traced.as_ref().filter(|t| !t.child) else {
            return;
        };
        if !self.tasks.values().any(|t| t.pid == tr.tracer) {
            return;
        }
        self.emu_exits.push(EmuExit {
            tracer: tr.tracer,
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
    pub(super) fn kick_tracers(&mut self) -> Result<(), Error> {
        if !self.emulating_ptrace {
            return Ok(());
        }
        let unannounced = self.unannounced();
        // (Tracee, tracer, an exit.)
        let mut due: Vec<(Tid, Tid, bool)> = self
            .tasks
            .iter()
            .filter_map(|(&t, task)| {
                let tr = task.traced.as_ref()?;
                let stop = tr.stop.as_ref()?;
                (!stop.reported && shows(t, task, &unannounced)).then_some((t, tr.tracer, false))
            })
            .collect();
        for &(tracee, tracer, _) in &due {
            self.notify_tracer(tracee, tracer);
        }
        due.extend(self.emu_exits.iter().map(|e| (e.tracee, e.tracer, true)));
        for (tracee, tracer, exit) in due {
            let waiting: Vec<Tid> = self
                .tasks
                .iter()
                .filter(|(_, w)| {
                    w.pid == tracer
                        && !w.kicked
                        && matches!(w.state, State::InSyscall { entered, split: true }
                            if entered.forced_ret.is_none()
                                && waits_for(entered.nr, &entered.args, tracee)
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
            if self.report_for(pid, nr, &args).is_some() || !self.waits_on_emulation(pid, nr, &args)
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
        let status = (stop.status >> 8) & 0x7f;
        self.send_sigchld(tracer, tracee, CLD_TRAPPED, status);
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
    pub(super) fn sigchld_info(
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
    pub(super) fn tracer_gone(&mut self, pid: Tid) {
        self.emu_exits.retain(|e| e.tracer != pid);
        let mut in_vfork = Vec::new();
        for (&tid, task) in self.tasks.iter_mut() {
            let Some(tr) = task.traced.as_ref().filter(|t| t.tracer == pid) else {
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
fn shows(t: Tid, task: &super::Task, unannounced: &[Tid]) -> bool {
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

/// Writes `bytes` at `addr` in the tracer's memory: the request's result
/// (0, or EFAULT).
fn store(mem: &RemoteMem, addr: u64, bytes: &[u8]) -> i64 {
    match mem.write(addr, bytes) {
        Ok(()) => 0,
        Err(_) => neg(libc::EFAULT),
    }
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

/// `sizeof(sigset_t)` for the kernel: the size `PTRACE_GETSIGMASK` wants.
const SIGSET_SIZE: u64 = 8;

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
/// and the length into the iovec. The request's result.
fn get_regset(target: Tid, tracer_mem: &RemoteMem, note: u64, iov: u64) -> i64 {
    let Some((base, len)) = read_iov(tracer_mem, iov) else {
        return neg(libc::EFAULT);
    };
    let bytes = match ptrace::getregset(target, note, regset_ask_len(len)) {
        Ok(bytes) => bytes,
        Err(e) => return neg(e.raw_os_error().unwrap_or(libc::EIO)),
    };
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
    /// `iov_len` bytes) is emulated as `PTRACE_SETREGS`; the other sets
    /// the kernel has are refused, named (replay could not apply them:
    /// a [`Event::TraceeWrite`] is memory or the general registers);
    /// another note type: EINVAL, as from the kernel.
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
        if note != NT_PRSTATUS {
            warn!("PTRACE_SETREGSET of {name}: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        if !len.is_multiple_of(8) {
            return Ok(neg(libc::EINVAL));
        }
        let n = len.min(ptrace::REGS_SIZE as u64) as usize;
        if self.tasks[&target].at_entry_stop {
            warn!("PTRACE_SETREGSET at a syscall-entry stop: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        if self.held_in_vfork(target) {
            warn!("PTRACE_SETREGSET at a vfork's event stop: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        let Ok(new) = tracer_mem.read_vec(base, n) else {
            return Ok(neg(libc::EFAULT));
        };
        let regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
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
    /// changed); a debug register is refused, named (the program's
    /// hardware breakpoints are not emulated), unless the value is 0, what
    /// it reads already; another offset gets the kernel's EIO.
    fn poke_user(&mut self, tid: Tid, target: Tid, addr: u64, value: u64) -> Result<i64, Error> {
        let at = match user_word(addr) {
            UserWord::Reg(at) => at,
            // The program's debug registers read 0 (`PTRACE_PEEKUSER`): a
            // write of 0 (gdb clears them in a child it detaches from, a
            // vfork's among them) leaves them so, and changes nothing.
            UserWord::DebugReg(_) if value == 0 => return Ok(0),
            UserWord::DebugReg(n) => {
                warn!("PTRACE_POKEUSER of debug register {n}: the recorder does not emulate the program's hardware breakpoints (the program gets EIO)");
                return Ok(neg(libc::EIO));
            }
            UserWord::Invalid => return Ok(neg(libc::EIO)),
        };
        if self.tasks[&target].at_entry_stop {
            warn!("PTRACE_POKEUSER at a syscall-entry stop: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        if self.held_in_vfork(target) {
            warn!("PTRACE_POKEUSER at a vfork's event stop: the recorder does not emulate it (the program gets EIO)");
            return Ok(neg(libc::EIO));
        }
        let regs = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
        let before = ptrace::regs_to_bytes(&regs);
        let mut bytes = before;
        bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        self.set_tracee_regs(tid, target, &before, &bytes)
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
        let regs = ptrace::regs_from_bytes(bytes).expect("REGS_SIZE bytes");
        let (set, result) = match ptrace::setregs(target, &regs) {
            Ok(()) => (*bytes, 0),
            Err(e) => {
                let now = ptrace::getregs(target).map_err(ptrace_err("PTRACE_GETREGS", target))?;
                (
                    ptrace::regs_to_bytes(&now),
                    neg(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            }
        };
        if set != *before {
            self.emit(Event::TraceeWrite {
                tid,
                target,
                regs: true,
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
        assert_eq!(request_name(0x4299), "ptrace request 0x4299");
    }

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
