//! The recording event loop and scheduler.
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use super::capture::{self, capture};
use super::{Error, RecordOptions};
use crate::tracee::exec_point;
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::spawn::{spawn, SpawnSpec};
use rrtest_sys::{cpu, seccomp, signals, RemoteMem};
use rrtest_syscalls::{self as syscalls, Call, MemReader, ReplayAction};
use rrtest_trace::{
    Event, ExecEvent, ExitStatus, Header, Outcome, SignalEvent, SignalKind, Stats, SyscallEvent,
    SyscallResult, Tid, TraceWriter, FORMAT_VERSION,
};

/// `RF` in rflags: suppresses an instruction breakpoint for one instruction.
const RESUME_FLAG: u64 = 1 << 16;
/// After this many consecutive syscalls of one thread, the scheduler lets
/// another runnable thread run.
const SLICE_SYSCALLS: u32 = 64;

/// How often the recorder checks on the running thread.
const TICK: Duration = Duration::from_millis(1);

/// The tick while a lone thread runs with no signal held back for it:
/// nothing for a tick to do (no one to preempt it for, nothing to deliver),
/// so the recorder wakes less often on the program's CPU. Not stopped, as
/// a safety net.
const LONE_TICK: Duration = Duration::from_millis(10);

/// How long a thread may run user code without a syscall while another
/// thread waits, before the recorder preempts it at an execution point.
const TIMESLICE: Duration = Duration::from_millis(20);

/// How long a thread of a process with a syscall buffer may run while
/// another waits before the recorder asks its hook to bail (so it yields at
/// its next syscall, a cheap place; the buffer hides its syscalls).
const BAIL_SLICE: Duration = Duration::from_millis(5);

/// How long a held-back asynchronous signal may wait for the thread's next
/// syscall before the recorder delivers it at an execution point.
const SIGNAL_DELAY: Duration = Duration::from_millis(5);

/// How long the recorder waits for an interrupted thread to come round its
/// loop again (to tell a spin loop).
const PROBE_LIMIT: Duration = Duration::from_millis(20);

/// How long the recorder waits for an interrupted thread to reach the
/// return address it chose as a cheaper execution point.
const SEEK_LIMIT: Duration = Duration::from_millis(1000);

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing: resume user code.
    Nothing,
    /// A syscall's exit stop: its `SyscallExit` is written when scheduled.
    Exit(Entered),
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
}

/// An interruption being moved to an execution point that replay can find
/// cheaply (see [`Session::interrupted`]).
#[derive(Debug, Clone, Copy)]
struct Seek {
    /// The address with an execution breakpoint on it.
    target: u64,
    /// What reaching it means.
    kind: SeekKind,
    /// When to give up and act wherever the thread is.
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
enum SeekKind {
    /// Is the thread spinning? `target` is where it was interrupted; it is
    /// if it gets there again in the same state.
    Probe(rrtest_trace::ExecPoint),
    /// `target` is a return address; the frame has returned when the
    /// thread gets there with a stack pointer above `rsp`.
    Return { rsp: u64 },
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
    /// Asynchronous signals held back until the thread's next syscall or an
    /// execution point.
    pending_signals: Vec<(i32, [u8; ptrace::SIGINFO_SIZE])>,
    /// Since when the oldest held-back signal waits.
    pending_since: Option<Instant>,
    /// Moving an interruption to a cheaper execution point: the return
    /// address the thread is running towards (see [`Session::interrupted`]).
    seeking: Option<Seek>,
    /// A `PTRACE_INTERRUPT` was sent; its stop has not been seen.
    interrupt_requested: bool,
    /// The file an `execve` in progress executes: (the filename as passed,
    /// a path to it the recorder can open).
    exec_file: Option<(String, std::path::PathBuf)>,
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
    desched: Option<syscallbuf::DeschedEvent>,
    /// Opening one failed for this thread (out of descriptors): it polls.
    desched_refused: bool,
}

impl Task {
    fn new(pid: Tid, state: State) -> Self {
        Task {
            pid,
            state,
            resumed_at: None,
            restart_block: None,
            exec_file: None,
            pending_signals: Vec::new(),
            pending_since: None,
            seeking: None,
            interrupt_requested: false,
            bail_requested: None,
            bailed: None,
            blocked_buffered: false,
            desched: None,
            desched_refused: false,
        }
    }
}

struct Session {
    writer: TraceWriter,
    tasks: BTreeMap<Tid, Task>,
    run_queue: VecDeque<Tid>,
    current: Option<Tid>,
    /// Syscalls the current thread made since it was scheduled.
    slice_syscalls: u32,
    /// When the current thread was last resumed into user code.
    slice_started: Instant,
    stats: Stats,
    unreplayable: Vec<String>,
    /// The recorded program's process id and how it ended.
    leader: Tid,
    leader_status: Option<ExitStatus>,
    /// The syscall buffer of each process that has one, by process id.
    spaces: HashMap<Tid, Space>,
    /// Our stdout and stderr: where the program's output goes.
    outputs: capture::OurOutputs,
    /// The last mapped file stored.
    mapped: capture::MappedMemo,
    /// The recorded executable's identity while the program's first
    /// process still runs it (no execve yet): the key of the sites it
    /// patches, which later recordings patch ahead ([`known_sites`]).
    exe: Option<ExeKey>,
    /// Use desched events (else every blocked buffered syscall is found by
    /// polling).
    desched_events: bool,
    /// The kernel refused a desched event (the errno): poll from then on.
    desched_refused: Option<i32>,
    /// Arming was wanted for the current thread when last looked at.
    desched_was_wanted: bool,
    /// The tick period the timer runs with.
    tick: Duration,
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
    let header = Header {
        format_version: FORMAT_VERSION,
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
        kernel: kernel_string(),
        cpuid: cpuid_table_of(bound_self.as_ref().ok().copied()),
        recorded_at: crate::util::rfc3339_now(),
        tracee_cpu: None,
        // The program inherits our mask (the recorder unblocks only its own
        // handlers' signals, before this).
        initial_sigmask: None,
        initial_ignored: None,
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
        outcome: None,
        unreplayable: Vec::new(),
        stats: Stats::default(),
        verification: None,
        loaders: Vec::new(),
        host: Some(crate::tracee::host::facts()),
    };
    let mut writer = if opts.discard_if_passed {
        TraceWriter::create_deferred(&opts.trace_dir, header)?
    } else {
        TraceWriter::create(&opts.trace_dir, header)?
    };
    signals::catch_termination();
    signals::start_ticks(TICK);
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
    };
    writer.header_mut().initial_sigmask = Some(signals::current_mask());
    writer.header_mut().initial_ignored = Some(signals::ignored());
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
    let facts = crate::tracee::prepare_after_exec(pid)
        .map_err(ptrace_err("preparing the tracee after exec", pid))?;
    let exe_file = writer.add_file(&opts.program)?;
    crate::tracee::interp::keep_loader(&mut writer, &opts.program, &exe_file);
    writer.push(&Event::Exec(ExecEvent {
        tid: pid,
        exe: opts.program.to_string_lossy().into_owned(),
        exe_file,
        at_random: facts.at_random,
        sp: facts.sp,
        ip: facts.ip,
    }))?;

    let mut session = Session {
        writer,
        tasks: BTreeMap::new(),
        run_queue: VecDeque::new(),
        current: None,
        slice_syscalls: 0,
        slice_started: Instant::now(),
        stats: Stats {
            threads: 1,
            ..Stats::default()
        },
        unreplayable: Vec::new(),
        leader: pid,
        leader_status: None,
        spaces: HashMap::new(),
        outputs: capture::OurOutputs::current(),
        mapped: capture::MappedMemo::default(),
        exe: exe_key(&opts.program),
        desched_events: opts.desched_events,
        desched_refused: None,
        desched_was_wanted: false,
        tick: TICK,
    };
    session
        .tasks
        .insert(pid, Task::new(pid, State::Ready(Pending::Nothing)));
    session.run_queue.push_back(pid);
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

/// An executable's identity: device, inode, size, mtime (seconds,
/// nanoseconds).
type ExeKey = (u64, u64, u64, i64, i64);

fn exe_key(program: &std::path::Path) -> Option<ExeKey> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(program).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The syscall sites (address of the `syscall`, its number) that recordings
/// made by this process patched in an executable's first process, by
/// executable: a recorder server records the tests of one binary one after
/// another, and the same libraries load at the same addresses (no ASLR).
/// The next recording of that executable patches them ahead, at the
/// buffer's handshake, each checked against the code it finds there, and
/// saves a stop per site.
fn known_sites() -> &'static std::sync::Mutex<KnownSites> {
    static SITES: std::sync::OnceLock<std::sync::Mutex<KnownSites>> = std::sync::OnceLock::new();
    SITES.get_or_init(Default::default)
}

/// Per executable, its patched sites: (address of the `syscall`, number).
type KnownSites = HashMap<ExeKey, Vec<(u64, i64)>>;

/// The most sites remembered per executable.
const MAX_KNOWN_SITES: usize = 256;

fn kernel_string() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => "unknown".into(),
    }
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
    fn emit(&mut self, event: Event) -> Result<(), Error> {
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

    /// Writes the output table the process of `tid` got since its last
    /// event (`Space::pending_table`), right after the event that changed
    /// it: replay writes it at the same point.
    fn emit_output_table(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return Ok(());
        };
        let Some(table) = self
            .spaces
            .get_mut(&pid)
            .and_then(|s| s.pending_table.take())
        else {
            return Ok(());
        };
        self.emit_unflushed(Event::Buffered {
            tid,
            records: syscallbuf::output_table_record(&table),
        })
    }

    fn emit_unflushed(&mut self, event: Event) -> Result<(), Error> {
        trace!(?event, "event");
        self.writer.push(&event)?;
        Ok(())
    }

    fn unsupported(&mut self, tid: Tid, what: String) -> Result<(), Error> {
        warn!(tid, %what, "unsupported: the trace will not be replayable");
        if !self.unreplayable.contains(&what) {
            self.unreplayable.push(what.clone());
        }
        self.emit(Event::Unsupported { tid, what })
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut interrupts = 0;
        while !self.tasks.is_empty() {
            let step = (|| {
                match signals::take_request() {
                    // The terminal's Ctrl-C reaches the program too: let it
                    // handle it; a second one ends the recording.
                    Some(libc::SIGINT) if interrupts == 0 => interrupts += 1,
                    Some(_) => self.kill_all()?,
                    None => {}
                }
                if signals::take_tick() {
                    self.tick()?;
                }
                if self.current.is_none() {
                    self.schedule()?;
                }
                if let Some(ev) =
                    ptrace::wait_any_interruptible().map_err(ptrace_err("waitpid", -1))?
                {
                    self.handle(ev)?;
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

    /// Runs the timer at [`LONE_TICK`] while the recording has one thread
    /// and no signal is held back, at [`TICK`] otherwise.
    fn update_tick(&mut self) {
        let lone = self.tasks.len() == 1
            && self
                .tasks
                .values()
                .all(|t| t.pending_signals.is_empty() && t.seeking.is_none());
        let want = if lone { LONE_TICK } else { TICK };
        if want != self.tick {
            self.tick = want;
            signals::start_ticks(want);
        }
    }

    /// Checks on the running thread: preempts it, or stops it to deliver a
    /// held-back signal, when it has run user code for too long.
    fn tick(&mut self) -> Result<(), Error> {
        let Some(tid) = self.current else {
            return Ok(());
        };
        let others_wait = self.others_ready(tid);
        let elapsed = self.slice_started.elapsed();
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if task.state != State::Running || task.interrupt_requested {
            return Ok(());
        }
        if let Some(seek) = task.seeking {
            if Instant::now() >= seek.deadline {
                debug!(
                    tid,
                    "no return to the chosen address in time: interrupting where it is"
                );
                task.interrupt_requested = true;
                ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
            }
            return Ok(());
        }
        let signal_due = task
            .pending_since
            .map(|t| t.elapsed() >= SIGNAL_DELAY)
            .unwrap_or(false);
        let buffered = self.spaces.contains_key(&task.pid);
        let slice = if buffered { BAIL_SLICE } else { TIMESLICE };
        // A run of quick buffered syscalls counts like one of traced ones
        // (`SLICE_SYSCALLS`): a thread polling through its buffer must not
        // keep the thread it waits for from running for a whole slice.
        let busy_polling = buffered
            && others_wait
            && task.bail_requested.is_none()
            && syscallbuf::committed_records(tid).is_ok_and(|n| n >= SLICE_SYSCALLS);
        if buffered && (others_wait || signal_due) && syscallbuf::blocked_in_untraced(tid) {
            // A buffered syscall blocked while others could run (or a signal
            // waits): unwind it (it is issued again, traced, and may block as
            // a split syscall). A `force_bail` cannot reach a thread that is
            // not calling the hook.
            debug!(tid, "blocked in a buffered syscall: unwinding it");
            task.interrupt_requested = true;
            return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
        }
        if signal_due || busy_polling || (others_wait && elapsed >= slice) {
            if buffered {
                // First ask the hook to bail: the thread then stops at its
                // next syscall, a cheaper place than an execution point.
                // Only a thread that makes none for a whole timeslice (or
                // keeps a signal waiting) is interrupted.
                match task.bail_requested {
                    None => {
                        task.bail_requested = Some(Instant::now());
                        return syscallbuf::set_force_bail(tid, true)
                            .map_err(ptrace_err("setting the buffer's force_bail", tid));
                    }
                    Some(since) if since.elapsed() < SIGNAL_DELAY => return Ok(()),
                    Some(_) if !signal_due && elapsed < TIMESLICE => return Ok(()),
                    Some(_) => {}
                }
            }
            debug!(tid, signal_due, ?elapsed, "interrupting the running thread");
            task.interrupt_requested = true;
            ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
        }
        Ok(())
    }

    /// The running thread stopped where we interrupted it: deliver a
    /// held-back signal there, or let another thread run. Either way the
    /// place is recorded as an execution point.
    ///
    /// Replay finds a point by stopping at every execution of its ip and
    /// comparing registers, so a point inside a loop whose state changes at
    /// each turn (a compute loop) costs a stop per turn. The recorder looks
    /// for a cheaper point first:
    /// 1. a spin loop (the thread comes back to the same ip in the same
    ///    state): replay finds it at its first turn;
    /// 2. else the return address of the current function (found by
    ///    scanning the stack), executed once per call;
    /// 3. a syscall on the way ends the search (the signal is delivered
    ///    before it, the preemption happens at it);
    /// 4. if none comes within [`SEEK_LIMIT`] (the loop waits for the very
    ///    signal we hold back), it acts wherever the thread then is, and
    ///    replay pays for the search.
    fn interrupted(&mut self, tid: Tid) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let pid = self.tasks[&tid].pid;
        if let Some(space) = self.spaces.get(&pid) {
            if syscallbuf::in_interrupted_untraced(&regs) {
                // In a buffered syscall that blocked: unwind it. The hook
                // discards its record and the stub issues it again, traced.
                let nr = regs.orig_rax as i64;
                syscallbuf::abort_untraced(tid, &regs)
                    .map_err(ptrace_err("unwinding a buffered syscall", tid))?;
                debug!(tid, nr, "unwound a blocked buffered syscall");
                if let Some(task) = self.tasks.get_mut(&tid) {
                    task.blocked_buffered = true;
                }
                self.stats.aborted_records += 1;
                self.stats.desched_events += 1;
                self.emit(Event::BufferAbort { tid, nr })?;
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
            if space.in_buffer_code(regs.rip, regs.rsp) {
                // Never stop a thread here: let it leave the buffer code;
                // a later tick tries again.
                trace!(
                    tid,
                    ip = regs.rip,
                    "interrupted in buffer code: not a point"
                );
                if self.tasks[&tid].seeking.is_some() {
                    ptrace::exec_breakpoint(tid, None)
                        .map_err(ptrace_err("clearing a breakpoint", tid))?;
                    self.tasks.get_mut(&tid).expect("task exists").seeking = None;
                }
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        if task.seeking.take().is_some() {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            return self.act_at_point(tid, &regs);
        }
        trace!(tid, ip = regs.rip, "probing for a spin loop");
        ptrace::exec_breakpoint(tid, Some(regs.rip))
            .map_err(ptrace_err("setting a breakpoint", tid))?;
        task.seeking = Some(Seek {
            target: regs.rip,
            kind: SeekKind::Probe(
                exec_point(tid, &regs).map_err(ptrace_err("reading an execution point", tid))?,
            ),
            deadline: Instant::now() + PROBE_LIMIT,
        });
        // The breakpoint would fire at once on the current instruction:
        // step over it first.
        self.step_then_continue(tid, regs.rip)
    }

    /// Steps one instruction with the breakpoint off, re-arms it at
    /// `target`, and lets the thread run.
    fn step_then_continue(&mut self, tid: Tid, target: u64) -> Result<(), Error> {
        ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
        loop {
            ptrace::singlestep(tid, 0).map_err(ptrace_err("PTRACE_SINGLESTEP", tid))?;
            match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } => break,
                // The instruction was a syscall: handle its entry as usual
                // (the search ends there).
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } => return self.syscall_entry(tid),
                // The instruction was a trapped rdtsc: emulate it, which
                // completes the step.
                WaitEvent::Signal {
                    signo: libc::SIGSEGV,
                    ..
                } if self.emulate_trapped_rdtsc(tid)? => break,
                // Another signal arrived first: hold it back too (a desched
                // event's is dropped), step again.
                WaitEvent::Signal { signo, .. } => {
                    let info =
                        ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
                    if !self.is_desched_signal(tid, signo, &info) {
                        self.hold_back(tid, signo, info);
                    }
                }
                // A late `PTRACE_INTERRUPT`'s stop: step again.
                ev if self.took_late_interrupt(tid, &ev) => {}
                ev => {
                    return Err(Error::Ptrace {
                        op: "stepping past a breakpoint",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    })
                }
            }
        }
        ptrace::exec_breakpoint(tid, Some(target))
            .map_err(ptrace_err("setting a breakpoint", tid))?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// A thread searching for a cheap execution point stopped at its breakpoint.
    fn seek_hit(&mut self, tid: Tid, regs: &Regs, seek: Seek) -> Result<(), Error> {
        let found = match seek.kind {
            SeekKind::Probe(first) => {
                crate::tracee::point_regs(regs) == first.regs
                    && exec_point(tid, regs)
                        .map_err(ptrace_err("reading an execution point", tid))?
                        == first
            }
            SeekKind::Return { rsp } => regs.rsp > rsp,
        };
        if found {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            self.tasks.get_mut(&tid).expect("task exists").seeking = None;
            return self.act_at_point(tid, regs);
        }
        if let SeekKind::Probe(_) = seek.kind {
            // Not a spin loop: try the return address.
            let task = self.tasks.get_mut(&tid).expect("task exists");
            match find_return_address(tid, regs) {
                Some(target) => {
                    trace!(
                        tid,
                        ip = regs.rip,
                        target,
                        "moving the interruption to a return address"
                    );
                    task.seeking = Some(Seek {
                        target,
                        kind: SeekKind::Return { rsp: regs.rsp },
                        deadline: Instant::now() + SEEK_LIMIT,
                    });
                    return self.step_then_continue(tid, target);
                }
                None => {
                    task.seeking = None;
                    ptrace::exec_breakpoint(tid, None)
                        .map_err(ptrace_err("clearing a breakpoint", tid))?;
                    return self.act_at_point(tid, regs);
                }
            }
        }
        // A deeper frame returning there (recursion): step past and go on.
        self.step_then_continue(tid, seek.target)
    }

    /// Delivers a held-back signal, or preempts the thread, at the execution
    /// point it is stopped at.
    fn act_at_point(&mut self, tid: Tid, regs: &Regs) -> Result<(), Error> {
        let point = exec_point(tid, regs).map_err(ptrace_err("reading an execution point", tid))?;
        if let Some((signo, info)) = self.take_deliverable(tid) {
            self.stats.async_events += 1;
            return self.deliver_now(tid, signo, info, SignalKind::AtPoint(point));
        }
        if !self.others_ready(tid) {
            self.slice_started = Instant::now();
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        self.stats.async_events += 1;
        self.emit(Event::Preempt { tid, point })?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Ready(Pending::Nothing);
        task.resumed_at = None;
        self.current = None;
        Ok(())
    }

    /// Whether `ev`, a stop of `tid` met while the recorder drives it
    /// somewhere (delivering a held-back signal, stepping over a
    /// breakpoint), is the stop of a `PTRACE_INTERRUPT` a tick sent before
    /// the thread stopped for another reason: then it is done with.
    fn took_late_interrupt(&mut self, tid: Tid, ev: &WaitEvent) -> bool {
        let late = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_STOP,
                ..
            }
        );
        if late {
            if let Some(task) = self.tasks.get_mut(&tid) {
                task.interrupt_requested = false;
            }
        }
        late
    }

    /// Holds back an asynchronous signal (suppressed at its delivery stop).
    fn hold_back(&mut self, tid: Tid, signo: i32, info: [u8; ptrace::SIGINFO_SIZE]) {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return;
        };
        // Standard signals do not queue: a second one merges with the first.
        if signo >= libc::SIGRTMIN() || !task.pending_signals.iter().any(|&(s, _)| s == signo) {
            task.pending_signals.push((signo, info));
        }
        task.pending_since.get_or_insert_with(Instant::now);
        trace!(tid, signo, "holding back an asynchronous signal");
        // Ask the hook to bail: the thread stops at its next syscall, where
        // the signal is delivered.
        if self.spaces.contains_key(&task.pid)
            && task.bail_requested.is_none()
            && syscallbuf::set_force_bail(tid, true).is_ok()
        {
            task.bail_requested = Some(Instant::now());
        }
    }

    /// Takes the first held-back signal the thread does not block now.
    fn take_deliverable(&mut self, tid: Tid) -> Option<(i32, [u8; ptrace::SIGINFO_SIZE])> {
        let task = self.tasks.get_mut(&tid)?;
        if task.pending_signals.is_empty() {
            return None;
        }
        // Unknown: treat everything as blocked, so that nothing is delivered
        // against the program's will.
        let blocked = crate::tracee::blocked_signals(tid).unwrap_or(u64::MAX);
        let i = task
            .pending_signals
            .iter()
            .position(|&(signo, _)| blocked & (1u64 << (signo - 1)) == 0)?;
        let taken = task.pending_signals.remove(i);
        if task.pending_signals.is_empty() {
            task.pending_since = None;
        } else {
            task.pending_since = Some(Instant::now());
        }
        Some(taken)
    }

    /// Delivers a held-back signal to `tid`, stopped where no user code
    /// will run before the delivery: queue it, resume, and at its delivery
    /// stop restore the original siginfo and record the event.
    fn deliver_now(
        &mut self,
        tid: Tid,
        signo: i32,
        info: [u8; ptrace::SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        let pid = self.tasks[&tid].pid;
        ptrace::tgkill(pid, tid, signo).map_err(ptrace_err("tgkill", tid))?;
        loop {
            ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
            match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                WaitEvent::Signal { signo: got, .. } if got == signo => break,
                // A desched signal still pending from the armed syscall
                // the thread left: dropped.
                WaitEvent::Signal { signo: got, .. }
                    if ptrace::getsiginfo(tid)
                        .is_ok_and(|info| self.is_desched_signal(tid, got, &info)) => {}
                ev if self.took_late_interrupt(tid, &ev) => {}
                ev => {
                    return Err(Error::Ptrace {
                        op: "delivering a held-back signal",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    })
                }
            }
        }
        ptrace::setsiginfo(tid, &info).map_err(ptrace_err("PTRACE_SETSIGINFO", tid))?;
        self.emit_signal(tid, signo, &info, kind)?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = None;
        self.current = Some(tid);
        self.slice_started = Instant::now();
        let pid = task.pid;
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        syscallbuf::deliver_signal(tid, &regs, signo, self.spaces.get(&pid))
            .map_err(ptrace_err("delivering a signal", tid))
    }

    /// Records the delivery of `signo` to `tid` (counted in the stats).
    fn emit_signal(
        &mut self,
        tid: Tid,
        signo: i32,
        info: &[u8; ptrace::SIGINFO_SIZE],
        kind: SignalKind,
    ) -> Result<(), Error> {
        self.stats.signals += 1;
        self.emit(Event::Signal(SignalEvent {
            tid,
            signo,
            siginfo: info.to_vec(),
            kind,
        }))
    }

    /// Ends the recording now: records that the recorder killed the program
    /// here (a `SIGKILL` signal event, which replay reproduces by killing
    /// at the same point) and kills every tracee. The loop then records
    /// their exits.
    fn kill_all(&mut self) -> Result<(), Error> {
        warn!("termination requested: killing the recorded program");
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

    /// Picks the next runnable thread, round robin, and resumes it.
    fn schedule(&mut self) -> Result<(), Error> {
        for _ in 0..self.run_queue.len() {
            let Some(tid) = self.run_queue.pop_front() else {
                break;
            };
            if !self.tasks.contains_key(&tid) {
                continue;
            }
            self.run_queue.push_back(tid);
            if let State::Ready(pending) = self.tasks[&tid].state {
                self.resume(tid, pending)?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Makes `tid` the current thread, writing the exit of the syscall it is
    /// stopped in, if any.
    fn resume(&mut self, tid: Tid, pending: Pending) -> Result<(), Error> {
        self.current = Some(tid);
        self.slice_syscalls = 0;
        self.slice_started = Instant::now();
        let from_exit;
        if let Pending::Exit(entered) = pending {
            let regs = self.finish_syscall_regs(tid, entered.forced_ret)?;
            let call = Call {
                nr: entered.nr,
                args: entered.args,
                ret: regs.rax as i64,
            };
            let result = self.capture(tid, &call, entered.output)?;
            self.emit(Event::SyscallExit {
                tid,
                nr: entered.nr,
                result,
            })?;
            from_exit = Some(regs);
        } else {
            from_exit = ptrace::getregs(tid).ok();
        }
        let task = self.tasks.get_mut(&tid).expect("scheduled task exists");
        task.state = State::Running;
        task.resumed_at = from_exit;
        self.update_desched(tid, true)?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Whether arming `tid`'s desched event around its may-block buffered
    /// syscalls is worth its cost (two `ioctl`s, about 2 µs here) now:
    /// another thread waits to run, or a held-back signal waits for this
    /// one. Otherwise a blocked buffered syscall stalls nobody, and the
    /// ticks' polling finds it if that changes.
    fn desched_wanted(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| !t.pending_signals.is_empty())
            || self.others_ready(tid)
    }

    /// Whether a thread other than `tid` is ready to run (waits for it).
    fn others_ready(&self, tid: Tid) -> bool {
        self.tasks
            .iter()
            .any(|(&t, task)| t != tid && matches!(task.state, State::Ready(_)))
    }

    /// Keeps the running thread `tid` unwindable while others wait for it
    /// to block, and its `sched_yield` a stop only then (the locals'
    /// `TRACE_YIELD` flag):
    /// - a thread of a process with a buffer that was once found blocked
    ///   in a buffered syscall while others waited gets a desched event at
    ///   its next stop (`stopped`: one that allows injecting syscalls).
    ///   Only then: the kernel's first per-thread perf event costs several
    ///   milliseconds (it turns its scheduler hooks on, which
    ///   [`rrtest_sys::perf::keep_hooks_on`] then keeps on), and most
    ///   threads of a test never block in a buffered syscall;
    /// - the locals' `desched_fd` names the thread's event while arming is
    ///   wanted ([`Self::desched_wanted`]), else `DESCHED_POLLED`;
    /// - when arming becomes wanted while the thread runs, it may already
    ///   sleep in an unarmed buffered syscall: it is interrupted and
    ///   unwound now (as a tick would, up to 1 ms later).
    fn update_desched(&mut self, tid: Tid, stopped: bool) -> Result<(), Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(());
        };
        let pid = task.pid;
        // A vfork child shares its parent's memory: it polls.
        if self.spaces.get(&pid).is_none_or(|s| s.borrowed) {
            return Ok(());
        }
        if stopped
            && self.desched_events
            && task.blocked_buffered
            && task.desched.is_none()
            && !task.desched_refused
            && self.desched_refused.is_none()
            // Unreadable (a thread killed under our feet): not now.
            && crate::tracee::quiet_for_injection(tid).unwrap_or(false)
        {
            self.open_desched(tid, pid)?;
        }
        let wanted = self.desched_wanted(tid);
        let was_wanted = std::mem::replace(&mut self.desched_was_wanted, wanted);
        let became_wanted = wanted && !was_wanted;
        let task = &self.tasks[&tid];
        let fd = match (&task.desched, wanted) {
            (Some(ev), true) => ev.fd,
            _ => rrtest_abi::DESCHED_POLLED,
        };
        let check_blocked = became_wanted
            && !stopped
            && task.state == State::Running
            && !task.interrupt_requested
            && task.seeking.is_none();
        // The same condition makes `sched_yield` bail: someone to yield to.
        let flags = if wanted {
            rrtest_abi::locals_flags::TRACE_YIELD
        } else {
            0
        };
        let space = self.spaces.get_mut(&pid).expect("checked above");
        if (space.desched_now, space.flags_now) != (fd, flags) {
            syscallbuf::set_desched_and_flags(tid, fd, flags)
                .map_err(ptrace_err("writing the desched descriptor", tid))?;
            space.desched_now = fd;
            space.flags_now = flags;
        }
        if check_blocked && syscallbuf::blocked_in_untraced(tid) {
            debug!(
                tid,
                "others wait, and it sleeps in a buffered syscall: unwinding it"
            );
            self.tasks
                .get_mut(&tid)
                .expect("task exists")
                .interrupt_requested = true;
            ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
        }
        Ok(())
    }

    /// Opens `tid`'s desched event (`tid` stopped, injectable).
    fn open_desched(&mut self, tid: Tid, pid: Tid) -> Result<(), Error> {
        rrtest_sys::perf::keep_hooks_on();
        let setup = syscallbuf::open_desched(tid, pid)
            .map_err(ptrace_err("opening a desched event", tid))?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        match setup {
            syscallbuf::DeschedSetup::Opened(ev) => {
                debug!(tid, fd = ev.fd, "desched event open");
                task.desched = Some(ev);
            }
            syscallbuf::DeschedSetup::Refused(errno)
                if matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOMEM) =>
            {
                debug!(tid, errno, "no desched event for this thread: it polls");
                task.desched_refused = true;
            }
            syscallbuf::DeschedSetup::Refused(errno) => {
                debug!(
                    errno,
                    "the kernel refuses desched events: blocked buffered syscalls are polled for"
                );
                self.desched_refused = Some(errno);
            }
        }
        Ok(())
    }

    /// Whether `signo` with `info`, stopping `tid`, is its desched event's.
    fn is_desched_signal(&self, tid: Tid, signo: i32, info: &[u8; ptrace::SIGINFO_SIZE]) -> bool {
        self.tasks
            .get(&tid)
            .and_then(|t| t.desched.as_ref())
            .is_some_and(|ev| ev.sent(signo, info))
    }

    /// `tid` stopped for its desched event's signal: it was switched out
    /// inside an armed buffered syscall. The signal is never delivered.
    /// The counter is disabled at once (each ptrace stop is a switch too,
    /// which would signal again); the hook disables it again, harmlessly.
    /// If the syscall blocked (the kernel interrupted it), it is unwound:
    /// the hook discards its record and the stub issues it again, traced,
    /// where it may block while other threads run. A switch that did not
    /// block (a preemption) leaves it be.
    fn desched_signal(&mut self, tid: Tid, regs: &Regs) -> Result<(), Error> {
        self.stats.desched_signals += 1;
        if let Some(ev) = self.tasks.get(&tid).and_then(|t| t.desched.as_ref()) {
            if let Err(e) = rrtest_sys::perf::disable(&ev.ours) {
                debug!(tid, error = %e, "could not disable a desched event");
            }
        }
        if syscallbuf::in_interrupted_untraced(regs) {
            let nr = regs.orig_rax as i64;
            syscallbuf::abort_untraced(tid, regs)
                .map_err(ptrace_err("unwinding a buffered syscall", tid))?;
            debug!(tid, nr, "desched: unwound a blocked buffered syscall");
            self.stats.aborted_records += 1;
            self.stats.desched_events += 1;
            self.emit(Event::BufferAbort { tid, nr })?;
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Captures a finished syscall's effects, tracking restart blocks.
    fn capture(
        &mut self,
        tid: Tid,
        call: &Call,
        output: Option<i32>,
    ) -> Result<SyscallResult, Error> {
        const ERESTART_RESTARTBLOCK: i64 = 516;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let restarted = if call.nr == libc::SYS_restart_syscall {
            task.restart_block.take()
        } else {
            None
        };
        if call.ret == -ERESTART_RESTARTBLOCK {
            task.restart_block = Some(*call);
        }
        self.track_output_fds(tid, call)?;
        let mut problems = Vec::new();
        let result = capture(
            tid,
            call,
            restarted.as_ref(),
            output,
            &mut self.writer,
            &mut self.mapped,
            &mut problems,
        );
        for p in problems {
            self.unsupported(tid, p)?;
        }
        Ok(result)
    }

    /// Keeps the output table of `tid`'s process (which descriptors write
    /// to our stdout or stderr: the hook buffers their writes with their
    /// bytes) exact across a finished traced syscall: a `dup`-style syscall
    /// lists or unlists its new descriptor, a `close` (the hook bails those
    /// of listed descriptors) or `close_range` unlists, and the table a
    /// vfork child shared is written again when the vfork returns.
    fn track_output_fds(&mut self, tid: Tid, call: &Call) -> Result<(), Error> {
        let Some(space) = self.spaces.get_mut(&self.tasks[&tid].pid) else {
            return Ok(());
        };
        let dup = matches!(call.nr, libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3)
            || (call.nr == libc::SYS_fcntl
                && matches!(call.args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC));
        let mut changed = space.output_fds_stale == Some(tid) && !space.borrowed;
        if changed {
            space.output_fds_stale = None;
        }
        if dup && call.ret >= 0 {
            let fd = call.ret as i32;
            changed |= space.set_output_fd(fd, self.outputs.stream(tid, fd));
        } else if call.nr == libc::SYS_close && call.ret != -(libc::EBADF as i64) {
            changed |= space.forget_output_fd(call.args[0] as i32);
        } else if call.nr == libc::SYS_close_range
            && call.ret == 0
            && call.args[2] & libc::CLOSE_RANGE_CLOEXEC as u64 == 0
        {
            changed |= space.forget_output_fds(call.args[0] as u32, call.args[1] as u32);
        }
        if changed {
            syscallbuf::update_output_table(tid, space)
                .map_err(ptrace_err("writing the output descriptors", tid))?;
        }
        Ok(())
    }

    fn finish_syscall_regs(&mut self, tid: Tid, forced_ret: Option<i64>) -> Result<Regs, Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        if let Some(ret) = forced_ret {
            regs.rax = ret as u64;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        }
        Ok(regs)
    }

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
            syscallbuf::set_force_bail(tid, false)
                .map_err(ptrace_err("clearing the buffer's force_bail", tid))?;
        }
        Ok(())
    }

    /// Writes the syscalls `tid` made through its buffer that are not in
    /// the trace yet; `reset`: and empties the buffer.
    fn flush(&mut self, tid: Tid, reset: bool) -> Result<(), Error> {
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(());
        };
        if task.state == State::Unborn {
            return Ok(());
        }
        let Some(space) = self.spaces.get_mut(&task.pid) else {
            return Ok(());
        };
        let pending = syscallbuf::pending_records(tid, &mut space.flushed)
            .map_err(ptrace_err("reading the syscall buffer", tid))?;
        if pending.records > 0 {
            // The records go from the program's memory into the trace's
            // batch, with no copy in between: a full buffer is a megabyte.
            let mut failed = None;
            let mut rdtsc = 0;
            let count_rdtsc = space.rdtsc_sites;
            let pushed =
                self.writer.push_buffered(
                    tid,
                    pending.len,
                    |out| match syscallbuf::read_records(tid, &pending, out) {
                        Ok(()) => {
                            if count_rdtsc {
                                rdtsc = syscallbuf::synthetic_tsc_records(out);
                            }
                            true
                        }
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    },
                )?;
            if !pushed {
                let e = failed.unwrap_or_else(|| io::Error::other("no records read"));
                return Err(ptrace_err("reading the syscall buffer", tid)(e));
            }
            trace!(
                tid,
                records = pending.records,
                bytes = pending.len,
                "buffered"
            );
            self.stats.buffered_syscalls += u64::from(pending.records);
            self.stats.rdtsc_buffered += rdtsc;
        }
        syscallbuf::mark_flushed(tid, &mut space.flushed, &pending, reset)
            .map_err(ptrace_err("emptying the syscall buffer", tid))
    }

    /// The preload library's handshake (`tid` is at the entry of
    /// `magic::INIT`): map and fill the buffer, answer, and record it.
    fn buffer_init(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<(), Error> {
        let hook =
            syscallbuf::init(tid, regs).map_err(ptrace_err("the syscall-buffer handshake", tid))?;
        match hook {
            Some(h) => {
                debug!(tid, hook = h, "syscall buffer on");
                let mut space = Space::new(h);
                space.output_fds = inherited_output_fds(tid, &self.outputs);
                syscallbuf::update_output_table(tid, &mut space)
                    .map_err(ptrace_err("writing the output descriptors", tid))?;
                self.spaces.insert(pid, space);
            }
            None => warn!(
                tid,
                "the preload library speaks another protocol: no syscall buffer"
            ),
        }
        self.emit(Event::BufferInit {
            tid,
            hook_entry: hook.unwrap_or(0),
        })?;
        if hook.is_some() && pid == self.leader {
            self.patch_ahead(tid, pid, regs)?;
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = ptrace::getregs(tid).ok();
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Writes an applied patch's event and notes its stub in `pid`'s space.
    fn record_patch(&mut self, pid: Tid, planned: syscallbuf::Planned) -> Result<(), Error> {
        self.emit(Event::Patch(planned.event.clone()))?;
        if let Some(space) = self.spaces.get_mut(&pid) {
            syscallbuf::note_patch(space, &planned.event, planned.stub);
        }
        self.stats.patched_sites += 1;
        Ok(())
    }

    /// At the buffer's handshake in the program's first process: patches
    /// the sites earlier recordings of this executable patched
    /// ([`known_sites`]) that the code here still allows, each recorded as
    /// a `Patch` event marked `ahead`. `regs`: the thread's, at the
    /// handshake's entry (its ip is the one busy address).
    fn patch_ahead(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<(), Error> {
        let Some(key) = self.exe else {
            return Ok(());
        };
        let sites = known_sites()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
            .unwrap_or_default();
        for (syscall_addr, nr) in sites {
            let Some(space) = self.spaces.get(&pid) else {
                return Ok(());
            };
            if space.stub_at(syscall_addr).is_some() {
                continue;
            }
            let planned = syscallbuf::plan_ahead(tid, syscall_addr, nr, space, &[regs.rip])
                .map_err(ptrace_err("planning a syscall-site patch", tid))?;
            let Ok(planned) = planned else {
                continue;
            };
            syscallbuf::apply_ahead(tid, &planned.event)
                .map_err(ptrace_err("patching a syscall site ahead", tid))?;
            trace!(tid, nr, site = planned.event.site, "patched ahead");
            self.record_patch(pid, planned)?;
            self.stats.patched_ahead += 1;
        }
        Ok(())
    }

    /// Patches the site of the syscall `tid` is stopped at the entry of
    /// (`regs`), if it is one the buffer takes and the site can be patched:
    /// the thread then goes through the stub (this syscall included), and
    /// the function returns true.
    fn try_patch(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<bool, Error> {
        let nr = regs.orig_rax as i64;
        let syscall_addr = regs.rip.wrapping_sub(rrtest_abi::SYSCALL_INSN_LEN);
        let buffered = u64::try_from(nr)
            .ok()
            .and_then(rrtest_abi::buffered::plan_for)
            .is_some();
        if !buffered {
            return Ok(false);
        }
        let Some(planned) = self.plan_site(tid, pid, syscall_addr, |space, busy| {
            syscallbuf::plan_patch(tid, regs, space, busy)
                .map_err(ptrace_err("planning a syscall-site patch", tid))
        })?
        else {
            return Ok(false);
        };
        syscallbuf::apply_patch(tid, regs, &planned.event)
            .map_err(ptrace_err("patching a syscall site", tid))?;
        trace!(
            tid,
            nr,
            site = planned.event.site,
            stub = planned.event.stub_addr,
            "patched"
        );
        self.record_patch(pid, planned)?;
        if let (Some(key), true) = (self.exe, pid == self.leader) {
            let mut known = known_sites().lock().unwrap_or_else(|e| e.into_inner());
            let sites = known.entry(key).or_default();
            if sites.len() < MAX_KNOWN_SITES && !sites.iter().any(|&(a, _)| a == syscall_addr) {
                sites.push((syscall_addr, nr));
            }
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = None;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
        Ok(true)
    }

    /// Plans the patch of the site at `addr` (a `syscall` or `rdtsc`) in
    /// `tid`'s process `pid` with `plan`, given the space and where the
    /// process's other threads are. `None`: not now (no buffer, a vfork
    /// child, a thread inside the region) or never (a site in a stub or
    /// the fixed pages, or one the analysis refused, remembered).
    fn plan_site(
        &mut self,
        tid: Tid,
        pid: Tid,
        addr: u64,
        plan: impl FnOnce(
            &Space,
            &[u64],
        ) -> Result<Result<syscallbuf::Planned, syscallbuf::NotPatched>, Error>,
    ) -> Result<Option<syscallbuf::Planned>, Error> {
        let Some(space) = self.spaces.get(&pid) else {
            return Ok(None);
        };
        if space.borrowed
            || space.refused.contains(&addr)
            || space.stub_at(addr).is_some()
            || (rrtest_abi::FIXED_PAGE_ADDR..rrtest_abi::AREA_ADDR).contains(&addr)
        {
            return Ok(None);
        }
        let busy = self.busy_ips(tid, pid);
        match plan(space, &busy)? {
            Ok(p) => Ok(Some(p)),
            Err(syscallbuf::NotPatched::Busy) => Ok(None),
            Err(syscallbuf::NotPatched::Refused(why)) => {
                debug!(tid, addr, %why, "site not patched");
                if let Some(space) = self.spaces.get_mut(&pid) {
                    space.refused.insert(addr);
                }
                Ok(None)
            }
        }
    }

    /// Where the other threads of process `pid` than `tid` are, or will
    /// return to (a region holding one of them is not patched now).
    fn busy_ips(&self, tid: Tid, pid: Tid) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|&(&t, task)| t != tid && task.pid == pid)
            .filter_map(|(&t, task)| match task.state {
                State::InSyscall { entered, .. } => Some(entered.ip),
                State::Ready(_) => ptrace::getregs(t).ok().map(|r| r.rip),
                _ => None,
            })
            .collect()
    }

    /// Patches the site of the `rdtsc` whose trap `tid` is stopped at
    /// (`regs`), in a process with a syscall buffer, when the site can be
    /// patched (the safety rules of syscall sites): the thread then goes
    /// through the stub, this rdtsc included, the trap's signal discarded,
    /// and the function returns true. Sites in stubs (a bailed stub's own
    /// `rdtsc`) and in the fixed pages are never patched; nor are rdtsc
    /// sites patched ahead.
    fn try_patch_rdtsc(&mut self, tid: Tid, regs: &Regs) -> Result<bool, Error> {
        let ip = regs.rip;
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return Ok(false);
        };
        let Some(planned) = self.plan_site(tid, pid, ip, |space, busy| {
            syscallbuf::plan_rdtsc(tid, ip, space, busy)
                .map_err(ptrace_err("planning an rdtsc-site patch", tid))
        })?
        else {
            return Ok(false);
        };
        syscallbuf::apply_rdtsc(tid, regs, &planned.event)
            .map_err(ptrace_err("patching an rdtsc site", tid))?;
        trace!(
            tid,
            site = planned.event.site,
            stub = planned.event.stub_addr,
            "patched rdtsc"
        );
        self.record_patch(pid, planned)?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.resumed_at = None;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
        Ok(true)
    }

    fn ptrace_event(&mut self, tid: Tid, event: i32, sig: i32) -> Result<(), Error> {
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
                if !self.run_queue.contains(&child) {
                    self.run_queue.push_back(child);
                }
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
                        t.state = State::Ready(Pending::Nothing);
                        Ok(())
                    }
                    Some(_) => {
                        // A group-stop (SIGSTOP and friends): keep running.
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
        self.current = Some(tid);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn syscall_entry(&mut self, tid: Tid) -> Result<(), Error> {
        let mut regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let nr = regs.orig_rax as i64;
        let args = ptrace::syscall_args(&regs);
        // A syscall is a better point than the return address being sought.
        let mut seek_ended = false;
        if let Some(task) = self.tasks.get_mut(&tid) {
            if task.seeking.take().is_some() {
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
                seek_ended = true;
            }
        }
        if let Some((signo, info)) = self.take_deliverable(tid) {
            // Deliver a held-back signal as if it came just before this
            // syscall: skip the syscall, back up to its instruction (it runs
            // again after the handler), and deliver.
            regs.rip -= rrtest_abi::SYSCALL_INSN_LEN;
            regs.rax = regs.orig_rax;
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            return self.deliver_now(tid, signo, info, SignalKind::BeforeSyscall { nr });
        }
        let pid = self.tasks.get(&tid).map(|t| t.pid).unwrap_or(tid);
        if regs.orig_rax == rrtest_abi::magic::INIT {
            return self.buffer_init(tid, pid, &regs);
        }
        if let Some(space) = self.spaces.get(&pid) {
            if nr == libc::SYS_rt_sigreturn {
                // Best effort: a frame we cannot read, the kernel cannot
                // either (the program gets its SIGSEGV from rt_sigreturn).
                let _ = syscallbuf::fix_sigreturn(tid, &regs, space);
            } else if self.try_patch(tid, pid, &regs)? {
                return Ok(());
            }
        }
        let bailed = self.tasks.get(&tid).is_some_and(|t| t.bailed.is_some());
        self.stats.traced_syscalls += 1;
        if self.current != Some(tid) {
            warn!(tid, current = ?self.current, nr, "syscall entry of a thread that is not current");
        }
        let desc = syscalls::lookup(nr);
        if desc.is_none() {
            self.unsupported(tid, format!("unknown syscall {nr}"))?;
        }
        // rseq: the kernel would write the rseq area behind our back; make
        // registration fail as if the kernel lacked it.
        let mut forced_ret = None;
        if nr == libc::SYS_rseq {
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(-(libc::ENOSYS as i64));
        } else if nr == libc::SYS_sched_setaffinity
            && self.writer.header_mut().tracee_cpu.is_some()
            && (args[0] == 0 || self.tasks.contains_key(&(args[0] as Tid)))
        {
            // The program stays on the CPU it is bound to (see `record`):
            // pretend the move succeeded, as rr does.
            regs.orig_rax = u64::MAX;
            ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
            forced_ret = Some(0);
        }
        let action = desc.map(|d| d.replay);
        if action == Some(ReplayAction::Execve) {
            // The buffer goes with the old image.
            self.flush(tid, true)?;
            self.note_exec_file(tid, nr, &args)?;
        }
        if action == Some(ReplayAction::Exit) {
            // It does not return: the thread (or process) ends.
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
            let leader = self.tasks.get(&tid).is_none_or(|t| t.pid == tid);
            if nr == libc::SYS_exit && !leader {
                // A thread's exit clears its `CLONE_CHILD_CLEARTID` word and
                // wakes a thread joining it. Nobody else runs until it is
                // gone, so that no thread sees it half-exited: replay makes
                // the same exit complete at the same point.
                return match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                    WaitEvent::Exited { code, .. } => self.task_gone(tid, ExitStatus::Exited(code)),
                    WaitEvent::Signaled { signo, core, .. } => {
                        self.task_gone(tid, ExitStatus::Signaled { signo, core })
                    }
                    ev => Err(Error::Ptrace {
                        op: "waiting for a thread's exit",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    }),
                };
            }
            return Ok(());
        }
        let others = self.tasks.len() > 1;
        // Give others a turn: at sched_yield, and after a long run of quick
        // syscalls (a thread polling with non-blocking calls must not starve
        // the thread it waits for).
        self.slice_syscalls += 1;
        let yield_now = others
            && (seek_ended
                || bailed
                || nr == libc::SYS_sched_yield
                || self.slice_syscalls >= SLICE_SYSCALLS)
            && self.others_ready(tid);
        // A write to our stdout/stderr is never split either: replay echoes
        // output at the syscall's exit event, so the exit must follow the
        // entry before another thread writes, or the echoed order would
        // differ from the order the kernel wrote in. (The reader of those
        // streams is outside the recording, so the write cannot wait on a
        // thread we hold.) Nor is execve: the thread stays current until its
        // exec event, so a vfork parent the exec releases cannot run (and
        // write its syscall's exit) before the exec is in the trace.
        let output = self.outputs.target(tid, nr, &args);
        let split = action == Some(ReplayAction::Clone)
            || (action != Some(ReplayAction::Execve)
                && output.is_none()
                && others
                && (yield_now || desc.map(|d| d.may_block).unwrap_or(true)));
        if split {
            self.slice_syscalls = 0;
            self.emit(Event::SyscallEntry { tid, nr, args })?;
            self.current = None;
        }
        let entered = Entered {
            nr,
            args,
            forced_ret,
            output,
            ip: regs.rip,
        };
        self.tasks.get_mut(&tid).expect("task exists").state = State::InSyscall { entered, split };
        ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid))
    }

    /// Remembers which file an `execve` runs, to copy it into the trace if
    /// the exec succeeds.
    fn note_exec_file(&mut self, tid: Tid, nr: i64, args: &[u64; 6]) -> Result<(), Error> {
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

    fn syscall_exit(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let State::InSyscall { entered, split } = task.state else {
            warn!(tid, state = ?task.state, "syscall stop outside a syscall");
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        };
        if split || self.current != Some(tid) {
            task.state = State::Ready(Pending::Exit(entered));
            if self.current == Some(tid) {
                self.current = None;
            }
            return Ok(());
        }
        let Entered {
            nr,
            args,
            forced_ret,
            output,
            ..
        } = entered;
        let regs = self.finish_syscall_regs(tid, forced_ret)?;
        let call = Call {
            nr,
            args,
            ret: regs.rax as i64,
        };
        let result = self.capture(tid, &call, output)?;
        self.emit(Event::Syscall(SyscallEvent {
            tid,
            nr,
            args,
            result,
        }))?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = Some(regs);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    fn signal(&mut self, tid: Tid, signo: i32) -> Result<(), Error> {
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let info = ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
        if self.is_desched_signal(tid, signo, &info) {
            return self.desched_signal(tid, &regs);
        }
        let code = ptrace::siginfo_code(&info);
        if signo == libc::SIGTRAP {
            if let Some(seek) = self.tasks.get(&tid).and_then(|t| t.seeking) {
                if regs.rip == seek.target {
                    return self.seek_hit(tid, &regs, seek);
                }
            }
        }
        let mem = RemoteMem::new(tid);
        if signo == libc::SIGSEGV && code == 0x80 {
            if let Some((is_rdtscp, len)) = crate::tracee::decode_rdtsc(&mem, regs.rip) {
                let bailed = self.tasks.get(&tid).is_some_and(|t| t.bailed.is_some());
                if bailed && self.others_ready(tid) {
                    return self.yield_at_rdtsc(tid, regs, is_rdtscp, len);
                }
                self.keep_bail_request(tid)?;
                if !is_rdtscp && self.try_patch_rdtsc(tid, &regs)? {
                    return Ok(());
                }
                return self.emulate_rdtsc(tid, regs, is_rdtscp, len);
            }
        }
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let kind = if task
            .resumed_at
            .as_ref()
            .map(|r| regs_eq(r, &regs))
            .unwrap_or(false)
        {
            SignalKind::AtSyscallExit
        } else if code > 0
            && matches!(
                signo,
                libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
            )
        {
            SignalKind::Synchronous { ip: regs.rip }
        } else {
            SignalKind::Asynchronous { ip: regs.rip }
        };
        task.resumed_at = None;
        if let SignalKind::Asynchronous { .. } = kind {
            // Hold it back: deliver it at the thread's next syscall, or at an
            // execution point if none comes soon (DESIGN.md §6).
            self.hold_back(tid, signo, info);
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        self.emit_signal(tid, signo, &info, kind)?;
        let pid = self.tasks.get(&tid).map(|t| t.pid).unwrap_or(tid);
        syscallbuf::deliver_signal(tid, &regs, signo, self.spaces.get(&pid))
            .map_err(ptrace_err("delivering a signal", tid))
    }

    /// At an rdtsc's trap: a `force_bail` this stop cleared was not served
    /// (the recorder wants the thread at a syscall stop, and a patched
    /// rdtsc site bails to a trap, not a syscall): set it again, with its
    /// first request's time, so that the tick still interrupts the thread
    /// when no syscall comes (a thread spinning on rdtsc).
    fn keep_bail_request(&mut self, tid: Tid) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if let Some(since) = task.bailed.take() {
            task.bail_requested = Some(since);
            syscallbuf::set_force_bail(tid, true)
                .map_err(ptrace_err("setting the buffer's force_bail", tid))?;
        }
        Ok(())
    }

    /// A thread the recorder asked to stop, so that another runs, bailed
    /// from a patched rdtsc site to its trap (a stub's bail path has an
    /// `rdtsc`, not a `syscall`): the emulated rdtsc is an event, a place
    /// replay reaches exactly, so the switch happens here, as at a syscall.
    /// Otherwise a thread spinning on rdtsc would only be preempted at an
    /// execution point, deep in a hot loop, which replay may take longer
    /// to find than it allows itself.
    fn yield_at_rdtsc(
        &mut self,
        tid: Tid,
        regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        // This stop cleared `force_bail` (`note_stop`): the request is served.
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.bailed = None;
        task.state = State::Ready(Pending::Nothing);
        task.resumed_at = None;
        if self.current == Some(tid) {
            self.current = None;
        }
        debug!(tid, "yielded at an rdtsc trap");
        Ok(())
    }

    /// `tid` stopped at a `SIGSEGV`: when it is an `rdtsc`/`rdtscp` trap,
    /// emulates it and leaves the thread stopped after it (true).
    fn emulate_trapped_rdtsc(&mut self, tid: Tid) -> Result<bool, Error> {
        let info = ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
        if ptrace::siginfo_code(&info) != 0x80 {
            return Ok(false);
        }
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let Some((is_rdtscp, len)) = crate::tracee::decode_rdtsc(&RemoteMem::new(tid), regs.rip)
        else {
            return Ok(false);
        };
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        Ok(true)
    }

    fn emulate_rdtsc(
        &mut self,
        tid: Tid,
        regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        self.emulate_rdtsc_here(tid, regs, is_rdtscp, len)?;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Emulates the trapped rdtsc (rdtscp) of `len` bytes at `regs.rip` and
    /// records it; the thread stays stopped.
    fn emulate_rdtsc_here(
        &mut self,
        tid: Tid,
        mut regs: Regs,
        is_rdtscp: bool,
        len: u64,
    ) -> Result<(), Error> {
        // The synthesized TSC (rrtest_abi::tsc), as patched sites read it;
        // rdtscp's aux is the recorder's own.
        let tsc = cpu::synthetic_tsc();
        let aux = if is_rdtscp { cpu::rdtsc(true).1 } else { None };
        let ip = regs.rip;
        regs.rax = tsc & 0xffff_ffff;
        regs.rdx = tsc >> 32;
        if let Some(aux) = aux {
            regs.rcx = u64::from(aux);
        }
        regs.rip += len;
        // The trap (a fault) set the resume flag for the faulting
        // instruction; the next one must see an execution breakpoint.
        regs.eflags &= !RESUME_FLAG;
        ptrace::setregs(tid, &regs).map_err(ptrace_err("PTRACE_SETREGS", tid))?;
        self.stats.rdtsc += 1;
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.resumed_at = Some(regs);
        }
        self.emit(Event::Rdtsc { tid, ip, tsc, aux })
    }

    fn task_gone(&mut self, tid: Tid, status: ExitStatus) -> Result<(), Error> {
        let Some(task) = self.tasks.remove(&tid) else {
            return Ok(());
        };
        if self.current == Some(tid) {
            self.current = None;
        }
        if task.pid == tid {
            self.spaces.remove(&tid);
            if tid == self.leader {
                self.leader_status = Some(status);
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
        signals::stop_ticks();
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
        header.unreplayable = self.unreplayable.clone();
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

/// The output table of a freshly exec'd process: its descriptors that
/// write to our stdout or stderr (1 and 2, inherited dups), with the
/// stream; fd 1 and 2 when they write elsewhere, as not output.
fn inherited_output_fds(tid: Tid, outputs: &capture::OurOutputs) -> Vec<rrtest_abi::OutputFd> {
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

fn regs_eq(a: &Regs, b: &Regs) -> bool {
    a.rip == b.rip
        && a.rsp == b.rsp
        && a.rax == b.rax
        && a.rbx == b.rbx
        && a.rcx == b.rcx
        && a.rdx == b.rdx
        && a.rsi == b.rsi
        && a.rdi == b.rdi
        && a.rbp == b.rbp
        && a.r8 == b.r8
        && a.r9 == b.r9
        && a.r10 == b.r10
        && a.r11 == b.r11
        && a.r12 == b.r12
        && a.r13 == b.r13
        && a.r14 == b.r14
        && a.r15 == b.r15
        && a.eflags == b.eflags
}

/// The clone flags of a clone-family syscall, and whether the new task joins
/// the caller's thread group.
fn clone_flags(tid: Tid, nr: i64, args: &[u64; 6]) -> (u64, bool) {
    let flags = match nr {
        libc::SYS_clone => args[0],
        libc::SYS_clone3 => RemoteMem::new(tid).read_u64(args[0]).unwrap_or(0),
        libc::SYS_vfork => (libc::CLONE_VFORK | libc::CLONE_VM | libc::SIGCHLD) as u64,
        _ => libc::SIGCHLD as u64,
    };
    (flags, flags & libc::CLONE_THREAD as u64 != 0)
}

/// A likely return address on the stack of a thread stopped at `regs`: the
/// first word above the stack pointer that points into executable memory
/// right after a call instruction. A wrong guess costs only time: the
/// recorder gives up after [`SEEK_LIMIT`].
fn find_return_address(tid: Tid, regs: &Regs) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    let exec: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let range = parts.next()?;
            let perms = parts.next()?;
            let (a, b) = range.split_once('-')?;
            perms.contains('x').then(|| {
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                ))
            })?
        })
        .filter(|&(a, _)| a != rrtest_abi::FIXED_PAGE_ADDR)
        .collect();
    let in_exec = |v: u64| exec.iter().any(|&(a, b)| v >= a + 8 && v < b);
    let mem = RemoteMem::new(tid);
    let mut words = [0u8; 8 * 256];
    // Up to 2 KiB, not across the end of the stack's page run.
    let len = words.len().min((4096 - (regs.rsp % 4096) as usize) + 4096);
    mem.read_exact(regs.rsp, &mut words[..len]).ok()?;
    words[..len].chunks_exact(8).find_map(|w| {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if !in_exec(v) {
            return None;
        }
        let mut before = [0u8; 7];
        mem.read_exact(v - 7, &mut before).ok()?;
        // call rel32 (e8), or call r/m (ff /2) of 2, 3, 6 or 7 bytes.
        let is_call = before[2] == 0xe8
            || (before[5] == 0xff && before[6] & 0x38 == 0x10)
            || (before[4] == 0xff && before[5] & 0x38 == 0x10)
            || (before[1] == 0xff && before[2] & 0x38 == 0x10)
            || (before[0] == 0xff && before[1] & 0x38 == 0x10);
        is_call.then_some(v)
    })
}
