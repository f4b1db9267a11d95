//! The recording session: the core of the recorder's event loop.
//!
//! Invariant: at most one tracee thread runs user code at any moment (the
//! `current` thread). Other threads are either stopped by us (`Ready`), or
//! inside a syscall we let them enter because it may block (`InSyscall`);
//! those may finish in the kernel while another thread runs, and then wait,
//! stopped, until the scheduler picks them. The order in which the loop
//! writes events is therefore the schedule, and replay follows it.
//!
//! ```text
//!            schedule (emit pending SyscallExit, PTRACE_CONT)
//!   Ready ------------------------------------------------> Running
//!     ^                                                       |
//!     |  exit stop        may-block syscall entry (emit       |
//!     +--------------- InSyscall <--- SyscallEntry, SYSCALL) -+
//!                                                             |
//!       other syscall: SYSCALL, exit stop, emit Syscall, CONT |
//!                                                   <---------+
//! ```
//!
//! This file owns the `Session`, `Task` and `State` types, [`record`] (set
//! up, run, finish), the wait loop and the dispatch of each stop to the
//! concern that handles it, writing events, and task lifetime (a thread's
//! exit, the end of the recording). It must not grow the concerns' logic
//! back: each is an `impl Session` block in its own file,
//! - [`schedule`]: who runs next and for how long (the policy seam);
//!   [`chaos`]: the seeded random policy (`--chaos`); [`prescribed`]: some
//!   of a seed's chaos decisions (`diff --minimize`); [`steps`]: preempting
//!   a thread after an exact number of instructions (chaos's short slices);
//! - [`signals`]: signals, held-back signals and their delivery;
//! - [`points`]: execution points (moving an interruption to a cheap one);
//! - [`syscallbuf`]: the syscall buffer (flushing, handshake, desched);
//! - [`patching`]: syscall- and rdtsc-site patching;
//! - [`rdtsc`]: trapped rdtsc emulation;
//! - [`process`]: clone/fork/vfork/exec and the process tree;
//! - [`tracer`]: the program's own ptrace, emulated (tracees held in
//!   emulated stops, the tracer's requests and waits);
//! - [`syscall`]: traced syscall entry and exit;
//! - [`watchdog`]: a stalled recording ends in an error, not a hang.

mod chaos;
mod code;
mod futex;
mod jobctl;
mod patching;
mod points;
mod prescribed;
mod process;
mod rdtsc;
mod schedule;
mod shared;
mod signals;
mod steps;
mod syscall;
mod syscallbuf;
mod timeouts;
mod tracer;
mod watchdog;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

/// How long the processes a program leaves behind when its first process
/// exits are recorded before they are killed (cargo-nextest waits 100 ms
/// for a leaky test's output to close; a recorded program runs slower).
const LEAK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

use tracing::{debug, trace, warn};

use super::capture;
use super::{Error, RecordOptions};
use crate::tracee::syscallbuf::{HeadBuf, Space};
use crate::tracee::VdsoMode;
use patching::{exe_key, ExeKey};
use points::Seek;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::signals as sys_signals;
use rrtest_sys::spawn::{spawn, SpawnSpec};
use rrtest_sys::{cpu, seccomp};
use rrtest_syscalls::Call;
use rrtest_trace::{
    Event, ExecEvent, ExitStatus, Header, Outcome, PointDigest, SignalEvent, SignalKind, Stats,
    Tid, TraceWriter, FORMAT_VERSION,
};
use schedule::{DefaultPolicy, Scheduler, TICK};
use syscallbuf::Desched;

/// The result of a recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// How the recorded program ended.
    pub status: ExitStatus,
    /// Counters, as written to the header.
    pub stats: Stats,
    /// Why the trace is not replayable (empty when it is).
    pub unreplayable: Vec<String>,
    /// The program passed and, as asked, nothing was written.
    pub discarded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Stopped by us, runnable.
    Ready(Pending),
    /// Inside a syscall whose exit stop has not come yet. `split`: its
    /// `SyscallEntry` was already written and other threads may run.
    InSyscall { entered: Entered, split: bool },
    /// The current thread.
    Running,
    /// Announced by a clone event; its first stop has not been seen.
    Unborn,
    /// Killed while we handled it: only its exit report is still to come.
    Dying,
    /// Held in its process's group stop (job control) until a `SIGCONT`
    /// ([`jobctl`]).
    JobStopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing: resume user code.
    Nothing,
    /// A syscall's exit stop: its `SyscallExit` is written when scheduled.
    Exit(Entered),
    /// A syscall's exit stop whose `SyscallExit` is written already (before
    /// another thread's execution point: [`Session::write_due_exits`]):
    /// the call's number and the registers it left.
    ExitWritten(i64, Regs),
}

/// What the recorder learned at a syscall's entry and needs at its exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entered {
    nr: i64,
    args: [u64; 6],
    /// The result the recorder imposes (rseq: -ENOSYS).
    forced_ret: Option<i64>,
    /// For a write to the recorder's own stdout (1) or stderr (2): which.
    /// Found once, at the entry, where it decides whether to split.
    output: Option<i32>,
    /// The instruction pointer at the entry (right after the `syscall`).
    ip: u64,
    /// The scheduler switches at this syscall, which does not block: at
    /// its exit, so that its effects are in memory by its event (split at
    /// the entry, it ran in the kernel while others ran, and another
    /// thread's execution point could hash memory it wrote before its
    /// `SyscallExit`, which replay applies only there).
    switch_after: bool,
}

#[derive(Debug)]
struct Task {
    /// Thread group (process) id.
    pid: Tid,
    state: State,
    /// Registers when last resumed from a stop, to tell a signal delivered
    /// right there (before any user instruction ran: a deterministic point
    /// replay can reproduce) from one that interrupted user code.
    resumed_at: Option<Regs>,
    /// When it was last resumed into the kernel for a traced syscall
    /// (a tick splits one that is not split and takes long:
    /// [`schedule::LATE_SPLIT`]).
    in_kernel_since: Option<Instant>,
    /// Asynchronous signals held back until the thread's next syscall or an
    /// execution point.
    pending_signals: Vec<(i32, [u8; ptrace::SIGINFO_SIZE])>,
    /// Since when the oldest held-back signal waits.
    pending_since: Option<Instant>,
    /// Moving an interruption to a cheaper execution point: the return
    /// address the thread is running towards (see [`Session::interrupted`]).
    seeking: Option<Seek>,
    /// The thread's memory at the pass a [`Seek`] confirming a point began
    /// at (`points.rs`, `Session::confirm_point`).
    point_snapshot: Option<crate::tracee::words::Snapshot>,
    /// Chaos: what is left of the slice's steps when a traced syscall
    /// interrupted them; they go on at its exit, if the thread goes on
    /// there (see [`Session::run_steps`]).
    steps_left: Option<schedule::Steps>,
    /// A `PTRACE_INTERRUPT` was sent; its stop has not been seen.
    interrupt_requested: bool,
    /// Since when a tick has found [`Task::interrupt_requested`] set with
    /// the thread running: past [`schedule::INTERRUPT_RESEND`] the
    /// interrupt is sent again (another stop can swallow it).
    interrupt_outstanding: Option<Instant>,
    /// It was interrupted because it made no syscall for a while as others
    /// waited ([`schedule::SPIN_SLICE`]): it is preempted only if it spins
    /// (the probe for a spin loop finds one); else its search for a point
    /// is dropped and it keeps running.
    spin_check: bool,
    /// Its last spin check found it spinning: it is checked sooner.
    spun: bool,
    /// A spin check found it spinning once.
    spun_ever: bool,
    /// Where that check preempted it (the spin point's address): when it
    /// is resumed while others wait, a probe is armed there
    /// ([`Session::arm_spin_point`]).
    spin_ip: Option<u64>,
    /// It is ready because a spin check preempted it spinning, and it did
    /// nothing else in its slice (it waits for another thread's progress).
    /// Cleared whenever it becomes ready otherwise.
    cut_spinning: bool,
    /// Since it was last scheduled, a spin check found it computing (not
    /// spinning): its slice made progress, whatever ends it.
    computed: bool,
    /// The file an `execve` in progress executes, opened at its entry as
    /// the thread saw it (`process::ExecFile`).
    exec_file: Option<process::ExecFile>,
    /// The last syscall that returned `-ERESTART_RESTARTBLOCK`: what a
    /// following `restart_syscall` resumes.
    restart_block: Option<Call>,
    /// Since when the buffer's `force_bail` is set for this thread (the
    /// recorder wants it at a syscall stop: to deliver a signal, or to let
    /// another thread run).
    bail_requested: Option<Instant>,
    /// At this stop: `force_bail` had been set, since then (the thread may
    /// have come here because of it; at a syscall, let others run).
    bailed: Option<Instant>,
    /// It was found blocked in a buffered syscall while others waited: it
    /// gets a desched event at its next stop.
    blocked_buffered: bool,
    /// Its desched event (see [`Session::update_desched`]).
    desched: Option<crate::tracee::syscallbuf::DeschedEvent>,
    /// Opening one failed for this thread (out of descriptors): it polls.
    desched_refused: bool,
    /// When it last became ready (see [`Task::set_ready`]): the default
    /// policy runs the thread woken last first (`schedule::DefaultPolicy`).
    ready_since: Option<Instant>,
    /// A held-back signal that interrupted a blocked buffered syscall: it
    /// is sent again at the entry of the traced call the stub then makes,
    /// so that it interrupts that call as it did the buffered one.
    signal_in_syscall: Option<i32>,
    /// That signal, sent again, with the siginfo it came with (restored at
    /// its delivery stop).
    redeliver: Option<(i32, [u8; rrtest_sys::ptrace::SIGINFO_SIZE])>,
    /// Traced by another process of the recording (ptrace emulated,
    /// [`tracer`]).
    traced: Option<tracer::Traced>,
    /// A signal its tracer resumed it with, delivered when it next runs.
    resume_signal: Option<tracer::Resumption>,
    /// A tracer blocked in a wait that was interrupted for an emulated
    /// stop ([`Session::kick_tracers`]); cleared at its next syscall.
    kicked: bool,
    /// Its tracer asked for one instruction (`PTRACE_SINGLESTEP`).
    step: tracer::Step,
    /// Its tracer resumed it with `PTRACE_SYSCALL`: it stops at its next
    /// syscall's entry or exit.
    syscall_stops: bool,
    /// Held at an emulated syscall-entry stop: stopped at the syscall's
    /// seccomp stop, which is handled when it runs again.
    at_entry_stop: bool,
    /// A tracer's wait (the call's number and arguments) that waits for a
    /// tracee the kernel's wait does not know of, with nothing to report
    /// yet: held at its entry until something is ([`Session::park_wait`]).
    parked: Option<(i64, [u64; 6])>,
    /// Its first stop came before its parent's clone event, while the
    /// program uses ptrace: not run until that event, which may make it a
    /// tracee held in a first stop of its own ([`Session::traced_clone`]).
    awaits_clone_event: bool,
    /// The traced syscall it is in was broken by the recorder's own
    /// `PTRACE_INTERRUPT` (a restart code at its exit, no signal pending):
    /// the kernel restarts it, and that entry stop is not a new syscall
    /// (`Session::syscall_exit`).
    restarting: bool,
    /// A private futex wait held at its entry stop ([`futex`]).
    futex: Option<futex::Parked>,
    /// Ready at the entry stop of a call it skips (a held futex wait let
    /// go), with the registers it stopped with: its exit is written with
    /// the call's number cleared.
    skip_at_entry: Option<Regs>,
    /// The word and value of the futex wait it was last let go from
    /// (woken, or `EAGAIN`), until its next traced syscall ([`futex`]'s
    /// hand-offs).
    last_wait: Option<(u64, u32)>,
    /// How many times in a row it lost its futex word ([`futex`]).
    lost_streak: u32,
    /// Resumed while another thread waits for a hand-off ([`futex`]): its
    /// next traced syscall lets others run.
    handoff_stop: bool,
}

impl Task {
    fn new(pid: Tid, state: State) -> Self {
        Task {
            pid,
            state,
            resumed_at: None,
            in_kernel_since: None,
            restart_block: None,
            exec_file: None,
            pending_signals: Vec::new(),
            pending_since: None,
            seeking: None,
            point_snapshot: None,
            steps_left: None,
            interrupt_requested: false,
            interrupt_outstanding: None,
            spin_check: false,
            spun: false,
            spun_ever: false,
            spin_ip: None,
            cut_spinning: false,
            computed: false,
            bail_requested: None,
            bailed: None,
            blocked_buffered: false,
            desched: None,
            desched_refused: false,
            ready_since: matches!(state, State::Ready(_)).then(Instant::now),
            signal_in_syscall: None,
            redeliver: None,
            traced: None,
            resume_signal: None,
            kicked: false,
            step: tracer::Step::No,
            syscall_stops: false,
            at_entry_stop: false,
            parked: None,
            awaits_clone_event: false,
            restarting: false,
            futex: None,
            last_wait: None,
            lost_streak: 0,
            handoff_stop: false,
            skip_at_entry: None,
        }
    }

    /// Stopped by us and free to run: ready, not held in a stop by its
    /// (emulated) tracer, nor in a wait for its own tracees.
    fn runnable(&self) -> bool {
        matches!(self.state, State::Ready(_))
            && !self.traced.as_ref().is_some_and(|t| t.stopped())
            && self.parked.is_none()
            && !self.awaits_clone_event
    }

    /// The thread is stopped and may run, `pending` what its resume owes:
    /// it became ready now.
    fn set_ready(&mut self, pending: Pending) {
        self.state = State::Ready(pending);
        self.ready_since = Some(Instant::now());
        self.cut_spinning = false;
    }
}

struct Session {
    writer: TraceWriter,
    tasks: BTreeMap<Tid, Task>,
    current: Option<Tid>,
    /// The running thread's memory that its digest leaves out, as early in
    /// its slice as it was read: as the slice started
    /// ([`Session::snapshot_slice_start`]), or at the first pass of the
    /// slice's first spin probe. One thread's, the running one's: dropped
    /// at each resume.
    slice_snapshot: Option<(Tid, crate::tracee::words::Snapshot)>,
    /// Who runs next and for how long.
    sched: Scheduler,
    stats: Stats,
    unreplayable: Vec<String>,
    /// The recorded program's process id and how it ended.
    leader: Tid,
    leader_status: Option<ExitStatus>,
    /// When the leader's process exited while others of the program lived
    /// on: they are killed [`LEAK_GRACE`] later.
    leader_gone_at: Option<Instant>,
    /// The syscall buffer of each process that has one, by process id.
    spaces: HashMap<Tid, Space>,
    /// The images of the recorder's own vDSO with their stub pages
    /// (`tracee::ExecFacts::vdso_images`) of each process exec'd and not
    /// yet through the buffer's handshake, which gives them to its space.
    vdso_images: HashMap<Tid, Vec<crate::tracee::vdso::Placed>>,
    /// Where a flush reads a buffer's first page (kept: a flush comes at
    /// nearly every stop).
    head: HeadBuf,
    /// Our stdout and stderr: where the program's output goes.
    outputs: capture::OurOutputs,
    /// The last mapped file stored.
    mapped: capture::MappedMemo,
    /// System V shared memory segments attached now: segment id to the
    /// process and address of its one attach (a second is refused).
    shm_attached: std::collections::HashMap<u64, (Tid, u64)>,
    /// Files mapped `MAP_SHARED` and `/proc/PID/mem` writes
    /// ([`shared::SharedFiles`]).
    shared: shared::SharedFiles,
    /// The recorded executable's identity while the program's first
    /// process still runs it (no execve yet): the key of the sites it
    /// patches, which later recordings patch ahead
    /// ([`patching::known_sites`]).
    exe: Option<ExeKey>,
    /// Desched events, recording-wide (each thread's is in its `Task`).
    desched: Desched,
    /// When the last tracee stop was handled ([`watchdog`]).
    last_stop: Instant,
    /// When the recording started (`stats.schedule.wall_ms`).
    started: Instant,
    /// How long no thread ran (`stats.schedule.idle_ms`).
    idle: std::time::Duration,
    /// A prescribed schedule's log ([`prescribed`]): switches are written
    /// to it.
    switch_log: Option<prescribed::Log>,
    /// Whose code each process's executable mappings hold (chaos steps
    /// count the program's only).
    code: code::CodeMaps,
    /// Threads that died while a sibling was inside an `execve` (the exec
    /// kills them): their `ThreadExit` is written after the `Exec`, which
    /// replay must run before they can die there.
    killed_by_exec: Vec<Tid>,
    /// Some thread was traced by another (ptrace emulated, [`tracer`]):
    /// until then the per-stop checks of `tracer` are skipped.
    emulating_ptrace: bool,
    /// Some thread kept the program's debug registers past its tracer (a
    /// `PTRACE_DETACH`, the tracer's end; `tracer::debugregs`): only then
    /// are the real DR6 bits of an untraced thread's traps looked at (a
    /// read of DR6 per step otherwise spared). Never reset: a stale true
    /// costs that read only.
    kept_debug_slots: bool,
    /// The calls answered -ENOSYS at their entry this recording, as a
    /// kernel built without them answers ([`syscall::absent_feature`]):
    /// each warned of once.
    features_denied: HashSet<&'static str>,
    /// Private futex waits are held at their entry ([`futex`]; off with
    /// `RRTEST_FUTEX_PARK=0`, to measure).
    futex_parking: bool,
    /// A thread last preempted spinning gives way at its futex wakes
    /// (`SchedulePolicy::switches_at_spinner_wakes`; off with
    /// `RRTEST_WAKE_SWITCH=0`, to measure).
    wake_switching: bool,
    /// Every syscall bails to a traced one (`TRACE_ALL`): a fanotify group
    /// of a permission class exists ([`Session::note_permission_group`]).
    trace_all_syscalls: bool,
    /// Processes where a wake may have come since the held waits' words
    /// were last read ([`Session::futex_woken`]).
    futex_due: HashSet<Tid>,
    /// Held waits' words read with a syscall buffer at this stop.
    read_words: futex::ReadWords,
    /// A thread that lost its futex word again, for which the others stop
    /// at their next syscall ([`futex`]).
    handoff: Option<futex::HandOff>,
    /// The siginfo of the `SIGCHLD` sent to each tracer process for an
    /// emulated stop, until it is delivered ([`tracer`]).
    chld_infos: HashMap<Tid, [u8; ptrace::SIGINFO_SIZE]>,
    /// Exits of tracees that are not their tracer's children, which the
    /// kernel's wait would not report to it: reported by the emulated wait
    /// ([`tracer`]).
    emu_exits: Vec<tracer::EmuExit>,
}

fn ptrace_err(op: &'static str, tid: Tid) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Ptrace { op, tid, source }
}

fn cstring(s: &std::ffi::OsStr) -> CString {
    CString::new(
        s.as_bytes()
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .expect("NULs were removed")
}

/// The digest kind of a new recording's execution points: the current
/// one, unless `RRTEST_POINT_DIGEST` names another (`sha256` records a
/// version 1 trace as older recorders did, so that tests can check that
/// such traces still replay; not meant for users).
fn point_digest_to_record() -> PointDigest {
    match std::env::var("RRTEST_POINT_DIGEST") {
        Ok(name) => PointDigest::from_name(&name).unwrap_or_else(|| {
            warn!(
                name,
                "RRTEST_POINT_DIGEST names no digest this cargo-rrtest knows: recording with {}",
                PointDigest::CURRENT.name()
            );
            PointDigest::CURRENT
        }),
        Err(_) => PointDigest::CURRENT,
    }
}

/// What a new recording does with the vDSO: the recorder's own, unless
/// `RRTEST_VDSO=hidden` (or a version 1 trace: `RRTEST_POINT_DIGEST=sha256`)
/// asks for a trace as recorders before format version 3 wrote it, whose
/// program keeps the kernel's vDSO, hidden, or `RRTEST_VDSO=own-v3` for
/// one as recorders of format version 3 wrote it (no stub page mapped
/// with the vDSO), so that tests can check that such traces still replay;
/// not meant for users.
fn vdso_mode_to_record(digest: PointDigest) -> VdsoMode {
    match std::env::var("RRTEST_VDSO").as_deref() {
        Ok("hidden") => VdsoMode::Hidden,
        _ if digest == PointDigest::Sha256 => VdsoMode::Hidden,
        Ok("own-v3") => VdsoMode::OwnV3,
        Ok("own") | Err(_) => VdsoMode::Own,
        Ok(other) => {
            warn!(
                other,
                "RRTEST_VDSO is not `own`, `own-v3` or `hidden`: recording with the recorder's own vDSO"
            );
            VdsoMode::Own
        }
    }
}

/// Records `opts.program` into `opts.trace_dir`.
pub fn record(opts: &RecordOptions) -> Result<Recording, Error> {
    let env = match opts.syscallbuf.then(|| with_preload(&opts.env)) {
        Some(Ok(env)) => env,
        Some(Err(e)) => {
            // Slower, not wrong: every syscall stops in the recorder.
            warn!(error = %e, "recording without the syscall buffer");
            opts.env.clone()
        }
        None => opts.env.clone(),
    };
    // Run on one CPU, the program with us: its `cpuid` then answers the
    // same in replay (`cpu::bind_to_cpu`), and each ptrace stop is a
    // context switch on that CPU rather than a wake-up on another (traced
    // syscalls cost about a third). The CPU is the one given (the harness
    // spreads parallel recordings) or the one we run on now.
    let chosen = opts.cpu.map(Ok).unwrap_or_else(cpu::current_cpu);
    let bound_self = chosen.and_then(|c| cpu::bind_to_cpu(0, c).map(|()| c));
    if let Err(e) = &bound_self {
        warn!(error = %e, "could not bind the recorder to one CPU");
    }
    let digest = point_digest_to_record();
    let vdso = vdso_mode_to_record(digest);
    let header = Header {
        // SHA-256 digests: a version 1 trace, exactly as older recorders
        // wrote it (no `point_digest`, the vDSO hidden); the vDSO hidden: a
        // version 2 trace.
        format_version: match (digest, vdso) {
            (PointDigest::Sha256, _) => 1,
            (_, VdsoMode::Hidden) => 2,
            (_, VdsoMode::OwnV3) => 3,
            (_, VdsoMode::Own) => FORMAT_VERSION,
        },
        recorder_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: rrtest_abi::PROTOCOL_VERSION,
        argv: opts
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exe: opts.program.to_string_lossy().into_owned(),
        env: env
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd: opts.cwd.to_string_lossy().into_owned(),
        kernel: crate::tracee::host::kernel(),
        cpuid: cpuid_table_of(bound_self.as_ref().ok().copied()),
        recorded_at: crate::util::rfc3339_now(),
        tracee_cpu: None,
        // The program inherits our mask (the recorder unblocks only its own
        // handlers' signals, before this).
        initial_sigmask: None,
        initial_ignored: None,
        stack_limit: None,
        env_removed: opts
            .env_removed
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
        hidden_paths: opts
            .hide_paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        signal_traps_cleared: true,
        own_vdso: vdso.own(),
        loaders: Vec::new(),
        interpreters: Vec::new(),
        host: Some(crate::tracee::host::facts()),
        chaos: opts.chaos.map(|seed| rrtest_trace::Chaos {
            seed,
            decisions: 0,
            digest: String::new(),
        }),
        point_digest: (digest != PointDigest::Sha256).then(|| digest.name().to_owned()),
        outcome: None,
        unreplayable: Vec::new(),
        stats: Stats::default(),
        verification: None,
    };
    // This thread reads the program's execution points: with the kind the
    // header names (a replay of an older trace on it may have set another).
    crate::tracee::set_point_digest(digest);
    crate::tracee::set_vdso_mode(vdso);
    let mut writer = if opts.discard_if_passed {
        TraceWriter::create_deferred(&opts.trace_dir, header)?
    } else {
        TraceWriter::create(&opts.trace_dir, header)?
    };
    sys_signals::catch_termination();
    sys_signals::start_ticks(TICK);
    // Left over from a recording that failed in the middle of an injection.
    drop(crate::tracee::take_stashed_signals());

    let spec = SpawnSpec {
        path: cstring(opts.program.as_os_str()),
        argv: opts.argv.iter().map(|a| cstring(a)).collect(),
        envp: env.iter().map(|a| cstring(a)).collect(),
        cwd: Some(cstring(opts.cwd.as_os_str())),
        filter: seccomp::filter(rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED)),
        sigmask: None,
        ignored: None,
        hide: opts
            .hide_paths
            .iter()
            .map(|p| (cstring(p.as_os_str()), p.is_dir()))
            .collect(),
        stack_limit: rrtest_sys::spawn::program_stack_limit(),
    };
    writer.header_mut().stack_limit = Some(spec.stack_limit);
    writer.header_mut().initial_sigmask = Some(sys_signals::current_mask());
    writer.header_mut().initial_ignored = Some(sys_signals::ignored());
    let pid = spawn(&spec).map_err(|source| Error::Spawn {
        program: opts.program.display().to_string(),
        source,
    })?;
    // Before the program runs an instruction (it inherited our mask, unless
    // binding ourselves failed).
    let bound = bound_self
        .or_else(|_| cpu::current_cpu())
        .and_then(|c| cpu::bind_to_cpu(pid, c).map(|()| c));
    match bound {
        Ok(c) => writer.header_mut().tracee_cpu = u32::try_from(c).ok(),
        Err(e) => warn!(error = %e, "could not bind the program to one CPU: replay may diverge"),
    }
    let facts = crate::tracee::prepare_after_exec(pid, crate::tracee::VdsoCopyAt::Kernel)
        .map_err(ptrace_err("preparing the tracee after exec", pid))?;
    let exe_file = writer.add_file(&opts.program)?;
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    crate::tracee::interp::keep_loader(&mut writer, &opts.program, &exe_file, &root);
    crate::tracee::interp::keep_script_interpreter(
        &mut writer,
        &opts.program,
        &exe_file,
        std::path::Path::new(&format!("/proc/{pid}/exe")),
        &root,
    );
    writer.push(&Event::Exec(ExecEvent {
        tid: pid,
        exe: opts.program.to_string_lossy().into_owned(),
        exe_file,
        at_random: facts.at_random,
        sp: facts.sp,
        ip: facts.ip,
        vdso_copy: crate::tracee::vdso_copy_to_record(&facts),
    }))?;

    let switch_log = match opts.prescribed.as_ref().and_then(|p| p.log.as_ref()) {
        Some(path) => Some(prescribed::Log::create(path).map_err(|e| {
            Error::Trace(rrtest_trace::Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        })?),
        None => None,
    };
    let mut session = Session {
        writer,
        tasks: BTreeMap::new(),
        current: None,
        sched: Scheduler::new(match (&opts.prescribed, opts.chaos) {
            (Some(p), _) => Box::new(prescribed::PrescribedPolicy::new(p, switch_log.clone())),
            (None, Some(seed)) => Box::new(chaos::ChaosPolicy::new(seed)),
            (None, None) => Box::new(DefaultPolicy::default()),
        }),
        stats: Stats {
            threads: 1,
            ..Stats::default()
        },
        unreplayable: Vec::new(),
        leader: pid,
        leader_status: None,
        leader_gone_at: None,
        spaces: HashMap::new(),
        vdso_images: HashMap::from([(pid, facts.vdso_images())]),
        head: HeadBuf::default(),
        outputs: capture::OurOutputs::current(),
        mapped: capture::MappedMemo::default(),
        shm_attached: std::collections::HashMap::new(),
        shared: shared::SharedFiles::new(),
        exe: exe_key(&opts.program),
        desched: Desched::new(opts.desched_events),
        last_stop: Instant::now(),
        started: Instant::now(),
        idle: std::time::Duration::ZERO,
        switch_log,
        code: code::CodeMaps::default(),
        killed_by_exec: Vec::new(),
        emulating_ptrace: false,
        kept_debug_slots: false,
        features_denied: HashSet::new(),
        futex_parking: std::env::var_os("RRTEST_FUTEX_PARK").is_none_or(|v| v != "0"),
        wake_switching: std::env::var_os("RRTEST_WAKE_SWITCH").is_none_or(|v| v != "0"),
        slice_snapshot: None,
        trace_all_syscalls: false,
        futex_due: HashSet::new(),
        read_words: futex::ReadWords::default(),
        handoff: None,
        chld_infos: HashMap::new(),
        emu_exits: Vec::new(),
    };
    session
        .tasks
        .insert(pid, Task::new(pid, State::Ready(Pending::Nothing)));
    session.sched.add(pid);
    let result = session.run();
    if let Err(e) = &result {
        // Leave no tracee behind: PTRACE_O_EXITKILL only fires when we exit.
        for &tid in session.tasks.keys() {
            let _ = ptrace::tgkill(session.tasks[&tid].pid, tid, libc::SIGKILL);
        }
        warn!(error = %e, "recording failed");
    }
    session.finish(result, opts.discard_if_passed)
}

/// `env` with the preload library in front of `LD_PRELOAD` (the user's own
/// entries are kept after it).
fn with_preload(env: &[std::ffi::OsString]) -> Result<Vec<std::ffi::OsString>, Error> {
    let lib = crate::preload::preload_path().map_err(|source| Error::Spawn {
        program: "the syscall-buffer library".into(),
        source,
    })?;
    let mut value = lib.into_os_string();
    let mut out: Vec<std::ffi::OsString> = Vec::with_capacity(env.len() + 1);
    for kv in env {
        match kv.as_bytes().strip_prefix(b"LD_PRELOAD=") {
            Some(rest) if !rest.is_empty() => {
                value.push(":");
                value.push(std::ffi::OsStr::from_bytes(rest));
            }
            Some(_) => {}
            None => out.push(kv.clone()),
        }
    }
    let mut kv = std::ffi::OsString::from("LD_PRELOAD=");
    kv.push(value);
    out.push(kv);
    Ok(out)
}

/// The CPUID table of `cpu` (the one we are bound to; None: wherever we
/// run), read once per CPU per process: each `cpuid` is a VM exit on a
/// virtual machine, and a recorder server (`super::server`) records many
/// programs on its CPU.
fn cpuid_table_of(cpu: Option<usize>) -> Vec<rrtest_trace::CpuidLeaf> {
    use std::sync::Mutex;
    static TABLES: Mutex<Vec<(usize, Vec<rrtest_trace::CpuidLeaf>)>> = Mutex::new(Vec::new());
    let Some(cpu) = cpu else {
        return cpu::cpuid_table();
    };
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, table)) = tables.iter().find(|(c, _)| *c == cpu) {
        return table.clone();
    }
    let table = cpu::cpuid_table();
    tables.push((cpu, table.clone()));
    table
}

impl Session {
    /// Writes an event of a stopped thread, after the syscalls it made
    /// through its buffer since its last event.
    ///
    /// The buffer is emptied only here, at an event of its thread, and at
    /// an execve's entry: replay empties it each time it resumes the thread
    /// (which it does after each of its events), so its buffer never holds
    /// more than the recording's did at the same syscall, and the hook
    /// never finds it full where it had room while recording.
    fn emit(&mut self, mut event: Event) -> Result<(), Error> {
        self.exits_before_point(&mut event)?;
        let flush = match &event {
            // Nothing new since the thread's last event (a split syscall's
            // exit: the thread was in the kernel since its entry), or no
            // memory left.
            Event::Buffered { .. }
            | Event::SyscallExit { .. }
            | Event::Exec(_)
            | Event::NewTask { .. }
            | Event::ThreadExit { .. }
            | Event::ProcessExit { .. }
            // Another thread's change, at the tracer's ptrace entry.
            | Event::TraceeWrite { .. }
            // The trace will not replay anyway (and one comes at an exec,
            // where the old image's buffer is gone).
            | Event::Unsupported { .. } => None,
            // Replay does not resume the thread there: keep the buffer's
            // records where they are, only write them.
            Event::BufferAbort { .. } => Some(false),
            _ => Some(true),
        };
        let tid = event.tid();
        if let Some(reset) = flush {
            self.flush(tid, reset)?;
        }
        self.emit_unflushed(event)?;
        self.emit_output_table(tid)
    }

    /// Before `event`, if it is at an execution point of its thread (a
    /// preemption, a signal delivered there): the exits due before it
    /// ([`Session::write_due_exits`]), and the point's digest read again
    /// if one was written (the digest was read before, with their outputs
    /// in memory already, and must stay the one replay sees after them).
    fn exits_before_point(&mut self, event: &mut Event) -> Result<(), Error> {
        let (tid, point) = match event {
            Event::Preempt { tid, point } => (*tid, point),
            Event::Signal(SignalEvent {
                tid,
                kind: SignalKind::AtPoint(point),
                ..
            }) => (*tid, point),
            _ => return Ok(()),
        };
        if self.write_due_exits(tid)? {
            let rsp = ptrace::getregs(tid)
                .map_err(ptrace_err("PTRACE_GETREGS", tid))?
                .rsp;
            point.digest = crate::tracee::state_digest(tid, rsp)
                .map_err(ptrace_err("reading an execution point", tid))?;
        }
        Ok(())
    }

    fn emit_unflushed(&mut self, event: Event) -> Result<(), Error> {
        trace!(?event, "event");
        self.writer.push(&event)?;
        Ok(())
    }

    fn unsupported(&mut self, tid: Tid, what: String) -> Result<(), Error> {
        // The first problem makes the trace unreplayable; the later ones (a
        // full disk fails every file still to copy) add nothing a user must
        // read at once: they are in the header, and counted at the end.
        if self.unreplayable.is_empty() {
            warn!(tid, %what, "unsupported: the trace will not be replayable");
        } else {
            debug!(tid, %what, "unsupported");
        }
        if !self.unreplayable.contains(&what) {
            self.unreplayable.push(what.clone());
        }
        self.emit(Event::Unsupported { tid, what })
    }

    /// A first SIGINT that reached us: the program gets it too. It does
    /// by itself where it shares our process group (a terminal's Ctrl-C);
    /// where it leads a group of its own (`rrtest_sys::spawn`: its stdin
    /// was not our terminal), a Ctrl-C or `kill -INT` sent to our group
    /// would stop at us, so we pass it on to the program's group, as it
    /// would have been delivered had the program stayed in ours.
    fn pass_on_interrupt(&self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::{getpgid, getpgrp, Pid};
        let Ok(group) = getpgid(Some(Pid::from_raw(self.leader))) else {
            return; // The leader is gone: nothing left to tell.
        };
        if group != getpgrp() {
            if let Err(e) = killpg(group, Signal::SIGINT) {
                debug!(%e, "passing SIGINT on to the program's process group");
            }
        }
    }

    /// The wait loop: until no task is left, takes the recorder's own
    /// signals (termination, the tick), schedules a thread when none runs,
    /// and handles the next stop.
    fn run(&mut self) -> Result<(), Error> {
        let mut interrupts = 0;
        while !self.tasks.is_empty() {
            let step = (|| {
                match sys_signals::take_request() {
                    // The terminal's Ctrl-C reaches the program too: let it
                    // handle it; a second one ends the recording.
                    Some(libc::SIGINT) if interrupts == 0 => {
                        interrupts += 1;
                        self.pass_on_interrupt();
                    }
                    Some(_) => self.kill_all()?,
                    None => {}
                }
                if sys_signals::take_tick() {
                    self.release_futex_waits(false)?;
                    self.tick()?;
                    self.check_stall()?;
                    // A SIGCONT from outside the recording.
                    self.release_continued()?;
                }
                if self
                    .leader_gone_at
                    .is_some_and(|at| at.elapsed() >= LEAK_GRACE)
                {
                    self.kill_leaked()?;
                }
                if self.current.is_none() {
                    self.schedule()?;
                    self.update_tick();
                    // Resuming a thread may stop it for its tracer (a step
                    // over a syscall, chaos steps into a syscall-entry
                    // stop): its tracer is to hear of it before we wait.
                    self.kick_tracers()?;
                }
                if self.tasks.is_empty() {
                    // Settling before the pick took the last exit.
                    return Ok(());
                }
                // No thread runs: all wait in the kernel (or for the tick).
                let idle_since = self.current.is_none().then(Instant::now);
                let ev = ptrace::wait_any_interruptible().map_err(ptrace_err("waitpid", -1))?;
                if let Some(since) = idle_since {
                    self.idle += since.elapsed();
                }
                if let Some(ev) = ev {
                    self.last_stop = Instant::now();
                    self.stats.schedule.stops += 1;
                    self.handle(ev)?;
                    self.release_continued()?;
                    self.kick_tracers()?;
                    for (tid, signo, info) in crate::tracee::take_stashed_signals() {
                        if !self.is_desched_signal(tid, signo, &info) {
                            self.hold_back(tid, signo, info);
                        }
                    }
                    if let Some(tid) = self.current {
                        self.update_desched(tid, false)?;
                    }
                    self.update_tick();
                }
                Ok(())
            })();
            match step {
                // A thread killed under our feet (another thread's exit_group,
                // a SIGKILL): it is a zombie now, and waitpid will report its
                // exit. Nothing about it was written yet.
                Err(Error::Ptrace {
                    tid, ref source, ..
                }) if source.raw_os_error() == Some(libc::ESRCH)
                    && self.tasks.contains_key(&tid) =>
                {
                    debug!(tid, "thread died while we handled it");
                    self.tasks.get_mut(&tid).expect("checked").state = State::Dying;
                    if self.current == Some(tid) {
                        self.current = None;
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Dispatches one stop of a tracee to the concern that handles it.
    fn handle(&mut self, ev: WaitEvent) -> Result<(), Error> {
        let tid = ev.tid();
        // (At an exec stop the buffer is gone with the old image: it was
        // flushed at the execve's entry.)
        if matches!(ev, WaitEvent::Event { event, .. } if event != libc::PTRACE_EVENT_EXEC)
            || matches!(ev, WaitEvent::Signal { .. })
        {
            self.note_stop(tid)?;
        }
        match ev {
            WaitEvent::Exited { .. } if self.sibling_in_execve(tid) => {
                self.killed_by_exec.push(tid);
                Ok(())
            }
            WaitEvent::Exited { code, .. } => self.task_gone(tid, ExitStatus::Exited(code)),
            WaitEvent::Signaled { signo, core, .. } => {
                self.task_gone(tid, ExitStatus::Signaled { signo, core })
            }
            WaitEvent::Event { event, sig, .. } => self.ptrace_event(tid, event, sig),
            WaitEvent::SyscallStop { .. } => self.syscall_exit(tid),
            WaitEvent::Signal { signo, .. } => self.signal(tid, signo),
        }
    }

    /// At every stop: clears a `force_bail` the thread was given
    /// (remembering it in `bailed`).
    fn note_stop(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        task.bailed = task.bail_requested.take();
        if task.bailed.is_some() {
            crate::tracee::syscallbuf::set_force_bail(tid, false)
                .map_err(ptrace_err("clearing the buffer's force_bail", tid))?;
        }
        Ok(())
    }

    /// Ends the recording now: records that the recorder killed the program
    /// here (a `SIGKILL` signal event, which replay reproduces by killing
    /// at the same point) and kills every tracee. The loop then records
    /// their exits.
    fn kill_all(&mut self) -> Result<(), Error> {
        warn!("termination requested: killing the recorded program");
        self.kill_everything()
    }

    /// The program's first process exited [`LEAK_GRACE`] ago and left
    /// others running (a daemon, a child nobody waits for): the recording
    /// is of the program, which has ended, so they are killed as at a
    /// termination request, and replay kills them at the same point.
    fn kill_leaked(&mut self) -> Result<(), Error> {
        self.leader_gone_at = None;
        let processes: std::collections::BTreeSet<Tid> =
            self.tasks.values().map(|t| t.pid).collect();
        self.stats.leaked_processes = processes.len() as u64;
        // Said in the header (`info` shows it), not on stderr: the
        // program's output and ours stay apart.
        tracing::info!(
            processes = processes.len(),
            "the program exited and left processes running: they were killed"
        );
        self.kill_everything()
    }

    fn kill_everything(&mut self) -> Result<(), Error> {
        // Not flushed: the program may be running.
        self.emit_unflushed(Event::Signal(SignalEvent {
            tid: self.leader,
            signo: libc::SIGKILL,
            siginfo: vec![0; ptrace::SIGINFO_SIZE],
            kind: SignalKind::AtSyscallExit,
        }))?;
        for (&tid, task) in &self.tasks {
            let _ = ptrace::tgkill(task.pid, tid, libc::SIGKILL);
        }
        Ok(())
    }

    /// A thread's exit report: forgets it and writes its `ThreadExit`, or
    /// its process's `ProcessExit` when it led the process.
    fn task_gone(&mut self, tid: Tid, status: ExitStatus) -> Result<(), Error> {
        let Some(task) = self.tasks.remove(&tid) else {
            return Ok(());
        };
        if self.current == Some(tid) {
            self.current = None;
        }
        self.tracee_gone(tid, &task, status);
        // Its `CLONE_CHILD_CLEARTID` word cleared, a joiner woken.
        self.futex_woken(task.pid);
        if task.pid == tid {
            self.tracer_gone(tid);
            self.spaces.remove(&tid);
            self.vdso_images.remove(&tid);
            // Its id may come back as another process's.
            self.code.forget(tid);
            if tid == self.leader {
                self.leader_status = Some(status);
                if !self.tasks.is_empty() {
                    self.leader_gone_at = Some(Instant::now());
                }
            }
            self.emit(Event::ProcessExit { pid: tid, status })
        } else {
            self.emit(Event::ThreadExit { tid })
        }
    }

    /// Closes the trace (`discard_if_passed`: drops it instead when the
    /// program exited with status 0 and the recording worked).
    fn finish(
        mut self,
        result: Result<(), Error>,
        discard_if_passed: bool,
    ) -> Result<Recording, Error> {
        sys_signals::stop_ticks();
        self.stats.schedule.wall_ms = self.started.elapsed().as_millis() as u64;
        self.stats.schedule.idle_ms = self.idle.as_millis() as u64;
        // Reap anything left (after an error).
        while let Ok(Some(_)) = ptrace::wait_any_nohang() {}
        self.stats.events = 0; // the writer counts events itself
        let status = self.leader_status.unwrap_or(ExitStatus::Signaled {
            signo: libc::SIGKILL,
            core: false,
        });
        let header = self.writer.header_mut();
        header.outcome = Some(match status {
            ExitStatus::Exited(code) => Outcome::Exited { code },
            ExitStatus::Signaled { signo, .. } => Outcome::Signaled { signo },
        });
        if let Err(e) = &result {
            self.unreplayable.push(format!("the recorder failed: {e}"));
        }
        if self.unreplayable.len() > 1 {
            warn!(
                more = self.unreplayable.len() - 1,
                "more problems make the trace unreplayable: `cargo rrtest info` lists them"
            );
        }
        header.unreplayable = self.unreplayable.clone();
        if let (Some(chaos), Some(summary)) = (header.chaos.as_mut(), self.sched.summary()) {
            chaos.decisions = summary.decisions;
            chaos.digest = format!("{:016x}", summary.digest);
        }
        let events = header.stats.events;
        header.stats = Stats {
            events,
            ..self.stats.clone()
        };
        let stats = header.stats.clone();
        let discarded = discard_if_passed && result.is_ok() && status == ExitStatus::Exited(0);
        let written = if discarded {
            self.writer.discard()
        } else {
            self.writer.finish()
        }
        .map_err(Error::from);
        match (result, written) {
            // What stopped the recording is the error to report (a full
            // disk is one), not that the trace could not be ended after it.
            (Err(e), Err(also)) => {
                warn!(error = %also, "the trace could not be finished either");
                return Err(e);
            }
            (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
            (Ok(()), Ok(())) => {}
        }
        Ok(Recording {
            status,
            stats,
            unreplayable: self.unreplayable,
            discarded,
        })
    }
}
