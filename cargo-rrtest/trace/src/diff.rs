//! Where two recordings of the same program part ways ([`diff`]): the
//! first *meaningful* difference in what one thread did, and the first
//! difference in the schedule (which thread ran, and for how long).
//!
//! Pure over two event streams: it reads no file and knows no syscall
//! table (the caller passes the syscall argument counts and a describer
//! in [`Options`]). The rules are documented in docs/stress-and-diff.md;
//! in short:
//!
//! - Threads are aligned by their place in the thread tree, not by their
//!   recorded ids (the kernel numbers them differently every run): the
//!   first exec'd thread is `main`, the n-th thread or process a thread
//!   `T` creates is `T.n`.
//! - Each thread's events become *actions*: a syscall (a blocking one's
//!   entry and exit joined; the syscall buffer's records unpacked, so a
//!   buffered and a traced syscall compare equal), a signal, an `rdtsc`,
//!   a thread creation, an exit. The recorder's own machinery (syscall
//!   site patches, the buffer's handshake and aborts) is left out, and so
//!   are preemptions, which are the schedule's.
//! - Values that differ between any two runs are *noise*, counted and
//!   named but not a difference: times (clock reads, `rdtsc`, file
//!   timestamps), random bytes (`getrandom`, `AT_RANDOM`), the CPUs a
//!   thread may run on (`sched_getaffinity`, `getcpu`), thread and
//!   process ids (compared through the thread alignment: in any argument
//!   or result, two values that are ids of the same aligned thread, and
//!   in the arguments and results that are ids, two ids of processes
//!   outside the recording), addresses
//!   (two differing values both in the user address range above 4 GiB,
//!   as arguments, results or 8-byte words of written memory), and
//!   numbers inside program output (durations such as `finished in
//!   0.01s`).
//! - The first difference is the thread whose first meaningful
//!   difference comes earliest in the first recording (then the second).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Event, ExitStatus, SignalKind, SyscallExtra, SyscallResult, Tid, WriteKind};

/// Values at or above this, below [`USER_TOP`], are taken for addresses.
pub const ADDRESS_FLOOR: u64 = 1 << 32;
/// The end of the x86-64 user address range.
pub const USER_TOP: u64 = 1 << 47;

/// How many events of context a difference carries by default.
pub const DEFAULT_CONTEXT: usize = 5;

/// What the caller knows that this module does not.
pub struct Options<'a> {
    /// How many argument registers syscall `nr` reads (the rest are left
    /// over from earlier code and not compared).
    pub arg_count: &'a dyn Fn(i64) -> usize,
    /// A one-line rendering of an action, for people.
    pub describe: &'a dyn Fn(&Action) -> String,
    /// Events of context before a difference.
    pub context: usize,
}

impl std::fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// One thing a thread did, as compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// The program image after `execve`.
    Exec {
        /// The executable.
        exe: String,
        /// The initial instruction pointer (an address).
        ip: u64,
    },
    /// A syscall, complete.
    Syscall {
        /// Its number.
        nr: i64,
        /// The argument registers; None for a buffered syscall (the
        /// buffer records no arguments).
        args: Option<[u64; 6]>,
        /// The result (negative errno on failure).
        ret: i64,
        /// The bytes the kernel wrote into memory, in order (not
        /// serialized; `written` counts them).
        #[serde(skip)]
        data: Vec<Vec<u8>>,
        /// How many bytes the kernel wrote.
        written: usize,
        /// What the program wrote to stdout (1) or stderr (2).
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<Output>,
        /// It went through the syscall buffer.
        buffered: bool,
        /// Other threads ran while it blocked.
        blocked: bool,
    },
    /// An emulated `rdtsc`/`rdtscp`.
    Rdtsc {
        /// The value returned.
        tsc: u64,
    },
    /// A delivered signal.
    Signal {
        /// The signal number.
        signo: i32,
        /// How it was delivered: `synchronous`, `at_syscall_exit`,
        /// `asynchronous`, `before_syscall`, `at_point`.
        delivery: &'static str,
    },
    /// The thread created a thread or process.
    NewTask {
        /// The new one's aligned name.
        child: String,
        /// The clone flags.
        flags: u64,
    },
    /// The recorder stopped the thread in user code and let another run
    /// (schedule only: never compared as an action).
    Preempt {
        /// Where (an address).
        ip: u64,
    },
    /// The thread's emulated ptrace changed a tracee it holds stopped
    /// (a [`Event::TraceeWrite`]: shown, never compared, as the tracer's
    /// `ptrace` call that made it is).
    TraceeWrite {
        /// The tracee's aligned name.
        target: String,
        /// What was changed: memory, registers, fp registers, signal mask.
        what: &'static str,
        /// Where, for memory.
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<u64>,
        /// How many bytes were written.
        len: usize,
        /// The mask set, for a signal mask.
        #[serde(skip_serializing_if = "Option::is_none")]
        mask: Option<u64>,
    },
    /// The thread exited.
    ThreadExit,
    /// The recorded process ended.
    ProcessExit {
        /// Exit code, or None when killed.
        code: Option<i32>,
        /// The killing signal, if killed.
        signal: Option<i32>,
    },
    /// Something the recorder could not make replayable.
    Unsupported {
        /// What.
        what: String,
    },
}

/// Bytes a syscall wrote to the program's stdout or stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Output {
    /// 1 or 2.
    pub fd: i32,
    /// The bytes, as lossy UTF-8.
    pub text: String,
}

/// One action in one recording, located.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    /// The event's index in its recording's event stream (buffered
    /// syscalls share their `Buffered` event's index).
    pub event: u64,
    /// The thread's aligned name.
    pub thread: String,
    /// Its recorded id.
    pub tid: Tid,
    /// The action's index among its thread's actions.
    pub index: usize,
    /// The action.
    pub action: Action,
    /// It, for people.
    pub text: String,
}

/// A thread of both recordings.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadPair {
    /// The aligned name.
    pub thread: String,
    /// Its recorded id in the first recording (None: not there).
    pub tid_a: Option<Tid>,
    /// In the second.
    pub tid_b: Option<Tid>,
    /// Its actions in the first.
    pub actions_a: usize,
    /// In the second.
    pub actions_b: usize,
}

/// The first meaningful difference in what one thread did.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The thread.
    pub thread: String,
    /// What differs: `syscall`, `argument N`, `result`, `data`,
    /// `output`, `signal`, `signal delivery`, `kind`, `exit status`,
    /// `clone flags`, `executable`, `unsupported`, `missing` (one thread
    /// has no more actions).
    pub what: String,
    /// The thread's action there in the first recording (None: it had
    /// no more).
    pub a: Option<Located>,
    /// In the second.
    pub b: Option<Located>,
    /// The thread's actions just before, in the first recording (they
    /// match the second's up to noise).
    pub thread_before_a: Vec<Located>,
    /// In the second.
    pub thread_before_b: Vec<Located>,
    /// The events of every thread just before it, in the first recording:
    /// what ran in between.
    pub before_a: Vec<Located>,
    /// In the second.
    pub before_b: Vec<Located>,
}

/// The first difference in the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleDifference {
    /// How many stretches of one thread running the two schedules share
    /// before this one.
    pub same_runs: usize,
    /// The thread running there in the first recording, and how many of
    /// its actions it had done when it was switched out (None: the
    /// schedule ended).
    pub a: Option<Stretch>,
    /// In the second.
    pub b: Option<Stretch>,
    /// The last events of the stretch where the schedules part ways and
    /// the first of the next, in the first recording.
    pub around_a: Vec<Located>,
    /// In the second.
    pub around_b: Vec<Located>,
}

/// A stretch of one thread running without another in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stretch {
    /// The thread.
    pub thread: String,
    /// Its actions done when the stretch ended.
    pub actions_done: usize,
    /// The next thread to run (None: the recording ended).
    pub then: Option<String>,
}

/// Values that differed but are not counted as differences.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    /// What kind of value: `time`, `random`, `cpu`, `thread id`,
    /// `address`, `file metadata`, `numbers in output`.
    pub what: &'static str,
    /// How many actions had such a difference (before each thread's first
    /// meaningful difference).
    pub count: usize,
    /// The first one, for people: the two actions.
    pub example: String,
}

/// The comparison of two recordings.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// No meaningful difference and the same schedule.
    pub identical: bool,
    /// The threads, aligned.
    pub threads: Vec<ThreadPair>,
    /// The first meaningful difference in what a thread did.
    pub first_difference: Option<Difference>,
    /// The first difference in the schedule.
    pub schedule: Option<ScheduleDifference>,
    /// Noise: values that differ between any two runs.
    pub ignored: Vec<Ignored>,
}

/// One recording as threads of actions and a schedule.
struct Timeline {
    /// Every action in stream order (preemptions included).
    entries: Vec<Located>,
    /// Per aligned thread: its recorded id and the indices in `entries`
    /// of its actions (preemptions excluded).
    threads: BTreeMap<String, (Tid, Vec<usize>)>,
    /// Thread names in order of first appearance.
    order: Vec<String>,
    /// Aligned names of every recorded id the recording used.
    names: BTreeMap<Tid, String>,
}

/// The program's actions, made one event at a time: what [`actions`] and
/// the comparison read, for a listing that prints each action as its
/// event is read instead of holding the whole stream (a trace of a program
/// that polls through its buffer has millions of records).
pub struct ActionStream<'o> {
    opts: &'o Options<'o>,
    /// Aligned names of every recorded id seen.
    names: BTreeMap<Tid, String>,
    /// The threads alive, by id (an id may be reused).
    live: BTreeMap<Tid, String>,
    /// Children started per thread name (the next child's suffix).
    children: BTreeMap<String, usize>,
    /// Entered syscalls, by thread, waiting for their exit.
    pending: BTreeMap<Tid, (i64, [u64; 6])>,
    /// Per thread name: its actions so far (preemptions excluded).
    counts: BTreeMap<String, usize>,
}

impl std::fmt::Debug for ActionStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionStream")
            .field("names", &self.names)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<'o> ActionStream<'o> {
    /// A stream before its first event.
    pub fn new(opts: &'o Options<'o>) -> Self {
        ActionStream {
            opts,
            names: BTreeMap::new(),
            live: BTreeMap::new(),
            children: BTreeMap::new(),
            pending: BTreeMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// The actions of event `event`, number `i` of the stream, given to
    /// `out` in order.
    pub fn feed(&mut self, i: u64, event: &Event, mut out: impl FnMut(Located)) {
        let tid = event.tid();
        let name = match self.live.get(&tid) {
            Some(n) => n.clone(),
            None => {
                // The first thread to act is the main one.
                let n = if self.counts.is_empty() {
                    "main".to_string()
                } else {
                    format!("tid{tid}")
                };
                self.live.insert(tid, n.clone());
                self.names.insert(tid, n.clone());
                n
            }
        };
        let opts = self.opts;
        let counts = &mut self.counts;
        let mut push = |action: Action| {
            let count = counts.entry(name.clone()).or_insert(0);
            let index = *count;
            if !matches!(action, Action::Preempt { .. } | Action::TraceeWrite { .. }) {
                *count += 1;
            }
            let text = (opts.describe)(&action);
            out(Located {
                event: i,
                thread: name.clone(),
                tid,
                index,
                action,
                text,
            });
        };
        match event {
            Event::Exec(e) => push(Action::Exec {
                exe: e.exe.clone(),
                ip: e.ip,
            }),
            Event::Syscall(s) => push(syscall(s.nr, Some(s.args), &s.result, false)),
            Event::SyscallEntry { tid, nr, args } => {
                self.pending.insert(*tid, (*nr, *args));
            }
            Event::SyscallExit { tid, nr, result } => {
                let args = self.pending.remove(tid).map(|(_, a)| a);
                push(syscall(*nr, args, result, true));
            }
            Event::Rdtsc { tsc, .. } => push(Action::Rdtsc { tsc: *tsc }),
            Event::Signal(s) => push(Action::Signal {
                signo: s.signo,
                delivery: match s.kind {
                    SignalKind::Synchronous { .. } => "synchronous",
                    SignalKind::AtSyscallExit => "at_syscall_exit",
                    SignalKind::Asynchronous { .. } => "asynchronous",
                    SignalKind::BeforeSyscall { .. } => "before_syscall",
                    SignalKind::AtPoint(_) => "at_point",
                },
            }),
            Event::NewTask { child, flags, .. } => {
                let n = self.children.entry(name.clone()).or_insert(0);
                *n += 1;
                let child_name = format!("{name}.{n}");
                self.live.insert(*child, child_name.clone());
                self.names.insert(*child, child_name.clone());
                push(Action::NewTask {
                    child: child_name,
                    flags: *flags,
                });
            }
            Event::Preempt { point, .. } => push(Action::Preempt { ip: point.ip }),
            Event::Buffered { records, .. } => {
                for action in buffered(records) {
                    push(action);
                }
            }
            Event::ThreadExit { .. } => push(Action::ThreadExit),
            Event::ProcessExit { status, .. } => push(match status {
                ExitStatus::Exited(code) => Action::ProcessExit {
                    code: Some(*code),
                    signal: None,
                },
                ExitStatus::Signaled { signo, .. } => Action::ProcessExit {
                    code: None,
                    signal: Some(*signo),
                },
            }),
            Event::Unsupported { what, .. } => push(Action::Unsupported { what: what.clone() }),
            // A change the program's tracer made, seen in the tracer's
            // ptrace call: shown, not compared (as a preemption).
            Event::TraceeWrite {
                target,
                kind,
                addr,
                bytes,
                ..
            } => {
                let target = self
                    .names
                    .get(target)
                    .cloned()
                    .unwrap_or_else(|| format!("tid{target}"));
                let mask = match (kind, <[u8; 8]>::try_from(&bytes[..])) {
                    (WriteKind::SigMask, Ok(raw)) => Some(u64::from_ne_bytes(raw)),
                    _ => None,
                };
                push(Action::TraceeWrite {
                    target,
                    what: kind.name(),
                    addr: kind.is_memory().then_some(*addr),
                    // The extended state's XSAVE area, after its XCR0.
                    len: match kind {
                        WriteKind::XState => bytes.len().saturating_sub(8),
                        _ => bytes.len(),
                    },
                    mask,
                })
            }
            // The recorder's machinery.
            Event::BufferInit { .. } | Event::BufferAbort { .. } | Event::Patch(_) => {}
        }
    }
}

impl Timeline {
    fn build(events: &[Event], opts: &Options<'_>) -> Timeline {
        let mut t = Timeline {
            entries: Vec::new(),
            threads: BTreeMap::new(),
            order: Vec::new(),
            names: BTreeMap::new(),
        };
        let mut stream = ActionStream::new(opts);
        for (i, event) in events.iter().enumerate() {
            stream.feed(i as u64, event, |located| {
                let thread = t
                    .threads
                    .entry(located.thread.clone())
                    .or_insert_with(|| (located.tid, Vec::new()));
                if !matches!(
                    located.action,
                    Action::Preempt { .. } | Action::TraceeWrite { .. }
                ) {
                    thread.1.push(t.entries.len());
                }
                if !t.order.contains(&located.thread) {
                    t.order.push(located.thread.clone());
                }
                t.entries.push(located);
            });
        }
        t.names = stream.names;
        t
    }

    /// The stretches of one thread running: (thread, actions done at its
    /// end, index in `entries` of its first entry). A thread's buffered
    /// syscalls are written down just before its next event, and a thread
    /// is switched out only at one of its events, so they fall in the
    /// stretch they ran in.
    fn stretches(&self) -> Vec<(String, usize, usize)> {
        let mut out: Vec<(String, usize, usize)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let done = if matches!(
                e.action,
                Action::Preempt { .. } | Action::TraceeWrite { .. }
            ) {
                e.index
            } else {
                e.index + 1
            };
            match out.last_mut() {
                Some(last) if last.0 == e.thread => last.1 = done,
                _ => out.push((e.thread.clone(), done, i)),
            }
        }
        out
    }
}

fn syscall(nr: i64, args: Option<[u64; 6]>, result: &SyscallResult, blocked: bool) -> Action {
    let data: Vec<Vec<u8>> = result.writes.iter().map(|w| w.data.clone()).collect();
    let output = match &result.extra {
        SyscallExtra::Output { fd, data } => Some(Output {
            fd: *fd,
            text: String::from_utf8_lossy(data).into_owned(),
        }),
        _ => None,
    };
    Action::Syscall {
        nr,
        args,
        ret: result.ret,
        written: data.iter().map(Vec::len).sum(),
        data,
        output,
        buffered: false,
        blocked,
    }
}

/// The syscalls in a `Buffered` event's records (the output table's
/// record, number 0xffff, is the recorder's, not a syscall).
fn buffered(records: &[u8]) -> Vec<Action> {
    const HEADER: usize = std::mem::size_of::<rrtest_abi::RecordHeader>();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + HEADER <= records.len() {
        let h = &records[at..at + HEADER];
        let nr = u16::from_le_bytes([h[0], h[1]]);
        let flags = u16::from_le_bytes([h[2], h[3]]);
        let out_len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut ret = [0u8; 8];
        ret.copy_from_slice(&h[8..16]);
        let ret = i64::from_le_bytes(ret);
        let start = at + HEADER;
        let end = (start + out_len as usize).min(records.len());
        let bytes = records[start..end].to_vec();
        at += rrtest_abi::record_size(out_len) as usize;
        if nr == 0xffff {
            continue;
        }
        let output = rrtest_abi::record_flags::stream(flags).map(|fd| Output {
            fd,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        });
        let data = if output.is_some() || bytes.is_empty() {
            Vec::new()
        } else {
            vec![bytes]
        };
        out.push(Action::Syscall {
            nr: i64::from(nr),
            args: None,
            ret,
            written: data.iter().map(Vec::len).sum(),
            data,
            output,
            buffered: true,
            blocked: false,
        });
    }
    out
}

/// How two actions compare.
#[derive(Debug, PartialEq, Eq)]
enum Cmp {
    Same,
    /// Differ only in values that differ between runs.
    Noise(Vec<&'static str>),
    /// Differ in this.
    Differs(String),
}

/// Syscalls whose written bytes are times.
const TIME_CALLS: &[i64] = &[
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrusage,
    libc::SYS_times,
    libc::SYS_sysinfo,
    libc::SYS_timerfd_gettime,
    libc::SYS_timer_gettime,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_adjtimex,
    libc::SYS_clock_adjtime,
];

/// Syscalls whose written bytes are file metadata (times, inode numbers).
const METADATA_CALLS: &[i64] = &[
    libc::SYS_stat,
    libc::SYS_fstat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
];

/// Syscalls whose result is a thread or process id.
const PID_RESULT_CALLS: &[i64] = &[
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getppid,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_set_tid_address,
    libc::SYS_wait4,
    libc::SYS_getpgid,
    libc::SYS_getsid,
    libc::SYS_getpgrp,
    libc::SYS_setsid,
];

/// The arguments of `nr` that are thread or process ids.
fn pid_args(nr: i64) -> &'static [usize] {
    match nr {
        libc::SYS_kill
        | libc::SYS_tkill
        | libc::SYS_wait4
        | libc::SYS_getpgid
        | libc::SYS_getsid
        | libc::SYS_sched_setaffinity
        | libc::SYS_sched_getaffinity
        | libc::SYS_sched_setparam
        | libc::SYS_sched_getparam
        | libc::SYS_sched_setscheduler
        | libc::SYS_sched_getscheduler
        | libc::SYS_sched_setattr
        | libc::SYS_sched_getattr
        | libc::SYS_prlimit64
        | libc::SYS_pidfd_open
        | libc::SYS_process_vm_readv
        | libc::SYS_process_vm_writev => &[0],
        libc::SYS_tgkill | libc::SYS_rt_tgsigqueueinfo | libc::SYS_setpgid => &[0, 1],
        libc::SYS_waitid | libc::SYS_rt_sigqueueinfo => &[1],
        _ => &[],
    }
}

/// How many leading arguments of a multiplexing syscall are compared:
/// its operation and first operand (the registers an operation does not
/// use hold leftovers, which differ between runs).
fn compared_args(nr: i64, declared: usize) -> usize {
    let limit = match nr {
        libc::SYS_prctl
        | libc::SYS_arch_prctl
        | libc::SYS_fcntl
        | libc::SYS_ioctl
        | libc::SYS_keyctl => 2,
        libc::SYS_futex => 3,
        _ => 6,
    };
    declared.min(limit)
}

fn is_address(v: u64) -> bool {
    (ADDRESS_FLOOR..USER_TOP).contains(&v)
}

/// Compares two recorded thread ids through the alignment.
fn same_thread(a: u64, b: u64, ta: &Timeline, tb: &Timeline) -> bool {
    fn name(v: u64, t: &Timeline) -> Option<&String> {
        i32::try_from(v).ok().and_then(|v| t.names.get(&v))
    }
    match (name(a, ta), name(b, tb)) {
        (Some(x), Some(y)) => x == y,
        // Ids of processes outside the recording (the parent, a pid the
        // program did not create): any two are alike.
        (None, None) => (a as i64) > 0 && (b as i64) > 0,
        _ => false,
    }
}

/// Whether two values are the recorded ids of the same aligned thread
/// (whatever the syscall: `futex(&tid, FUTEX_WAIT, tid)` in a join).
fn aligned_ids(a: u64, b: u64, ta: &Timeline, tb: &Timeline) -> bool {
    let name = |v: u64, t: &Timeline| i32::try_from(v).ok().and_then(|v| t.names.get(&v).cloned());
    matches!((name(a, ta), name(b, tb)), (Some(x), Some(y)) if x == y)
}

/// Whether two memory writes of the same length differ only in 8-byte
/// words that are addresses in both.
fn only_addresses(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.chunks(8).zip(b.chunks(8)).all(|(x, y)| {
            x == y || {
                x.len() == 8
                    && is_address(u64::from_le_bytes(x.try_into().unwrap_or([0; 8])))
                    && is_address(u64::from_le_bytes(y.try_into().unwrap_or([0; 8])))
            }
        })
}

/// Text with every run of digits replaced by `#`.
fn without_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

fn compare(a: &Action, b: &Action, ta: &Timeline, tb: &Timeline, opts: &Options<'_>) -> Cmp {
    if a == b {
        return Cmp::Same;
    }
    let mut noise = Vec::new();
    let differs = |what: &str| Cmp::Differs(what.to_string());
    match (a, b) {
        (Action::Exec { exe: ea, .. }, Action::Exec { exe: eb, .. }) => {
            if ea != eb {
                return differs("executable");
            }
            noise.push("address");
        }
        (
            Action::Syscall {
                nr: na,
                args: aa,
                ret: ra,
                data: da,
                output: oa,
                ..
            },
            Action::Syscall {
                nr: nb,
                args: ab,
                ret: rb,
                data: db,
                output: ob,
                ..
            },
        ) => {
            if na != nb {
                return differs("syscall");
            }
            let nr = *na;
            // Output first: it says more than its length does. Output that
            // differs only in numbers may differ in length too.
            let mut lengths_free = false;
            if oa != ob {
                match (oa, ob) {
                    (Some(x), Some(y))
                        if x.fd == y.fd && without_numbers(&x.text) == without_numbers(&y.text) =>
                    {
                        noise.push("numbers in output");
                        lengths_free = true;
                    }
                    _ => return differs("output"),
                }
            }
            if let (Some(aa), Some(ab)) = (aa, ab) {
                let count = compared_args(nr, (opts.arg_count)(nr));
                for i in 0..count {
                    let (x, y) = (aa[i], ab[i]);
                    if x == y || (lengths_free && i == 2) {
                        continue;
                    }
                    if (pid_args(nr).contains(&i) && same_thread(x, y, ta, tb))
                        || aligned_ids(x, y, ta, tb)
                    {
                        noise.push("thread id");
                    } else if is_address(x) && is_address(y) {
                        noise.push("address");
                    } else {
                        return Cmp::Differs(format!("argument {}", i + 1));
                    }
                }
            }
            if ra != rb && !lengths_free {
                if (PID_RESULT_CALLS.contains(&nr) && same_thread(*ra as u64, *rb as u64, ta, tb))
                    || aligned_ids(*ra as u64, *rb as u64, ta, tb)
                {
                    noise.push("thread id");
                } else if is_address(*ra as u64) && is_address(*rb as u64) {
                    noise.push("address");
                } else {
                    return differs("result");
                }
            }
            if da != db {
                if TIME_CALLS.contains(&nr) {
                    noise.push("time");
                } else if nr == libc::SYS_getrandom {
                    noise.push("random");
                } else if nr == libc::SYS_sched_getaffinity || nr == libc::SYS_getcpu {
                    // The harness pins each worker to its own CPU.
                    noise.push("cpu");
                } else if METADATA_CALLS.contains(&nr) {
                    noise.push("file metadata");
                } else if PID_RESULT_CALLS.contains(&nr) || nr == libc::SYS_waitid {
                    noise.push("thread id");
                } else if da.len() == db.len()
                    && da.iter().zip(db).all(|(x, y)| only_addresses(x, y))
                {
                    noise.push("address");
                } else {
                    return differs("data");
                }
            }
        }
        (Action::Rdtsc { .. }, Action::Rdtsc { .. }) => noise.push("time"),
        (
            Action::Signal {
                signo: sa,
                delivery: da,
            },
            Action::Signal {
                signo: sb,
                delivery: db,
            },
        ) => {
            if sa != sb {
                return differs("signal");
            }
            if da != db {
                return differs("signal delivery");
            }
        }
        (Action::NewTask { flags: fa, .. }, Action::NewTask { flags: fb, .. }) => {
            if fa != fb {
                return differs("clone flags");
            }
        }
        (Action::ProcessExit { .. }, Action::ProcessExit { .. }) => return differs("exit status"),
        (Action::Unsupported { .. }, Action::Unsupported { .. }) => return differs("unsupported"),
        (Action::Preempt { .. }, Action::Preempt { .. }) => noise.push("address"),
        _ => return differs("kind"),
    }
    if noise.is_empty() {
        Cmp::Same
    } else {
        Cmp::Noise(noise)
    }
}

/// Compares two recordings' event streams (see the module comment).
/// The program's actions in `events`, in stream order, each with its event
/// index, thread and rendering (the recorder's own bookkeeping events, such
/// as buffer set-up and patches, have none).
pub fn actions(events: &[Event], opts: &Options<'_>) -> Vec<Located> {
    Timeline::build(events, opts).entries
}

pub fn diff(a: &[Event], b: &[Event], opts: &Options<'_>) -> Diff {
    let ta = Timeline::build(a, opts);
    let tb = Timeline::build(b, opts);

    // Threads in order of first appearance in A, then those only in B.
    let mut names: Vec<String> = ta.order.clone();
    for n in &tb.order {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let empty = Vec::new();
    let threads: Vec<ThreadPair> = names
        .iter()
        .map(|n| {
            let x = ta.threads.get(n);
            let y = tb.threads.get(n);
            ThreadPair {
                thread: n.clone(),
                tid_a: x.map(|t| t.0),
                tid_b: y.map(|t| t.0),
                actions_a: x.map_or(0, |t| t.1.len()),
                actions_b: y.map_or(0, |t| t.1.len()),
            }
        })
        .collect();

    let mut ignored: BTreeMap<&'static str, (usize, usize, String)> = BTreeMap::new();
    let mut seq = 0usize;
    // (key in A, key in B, difference)
    let mut best: Option<((usize, usize), Difference)> = None;
    for n in &names {
        let xa = ta.threads.get(n).map_or(&empty, |t| &t.1);
        let xb = tb.threads.get(n).map_or(&empty, |t| &t.1);
        let mut found = None;
        for i in 0..xa.len().max(xb.len()) {
            let (ea, eb) = (xa.get(i), xb.get(i));
            let (Some(&ea), Some(&eb)) = (ea, eb) else {
                found = Some((i, "missing".to_string()));
                break;
            };
            let (la, lb) = (&ta.entries[ea], &tb.entries[eb]);
            match compare(&la.action, &lb.action, &ta, &tb, opts) {
                Cmp::Same => {}
                Cmp::Noise(kinds) => {
                    for k in kinds {
                        seq += 1;
                        let e = ignored.entry(k).or_insert_with(|| {
                            (0, seq, format!("{}: {}  vs  {}", n, la.text, lb.text))
                        });
                        e.0 += 1;
                    }
                }
                Cmp::Differs(what) => {
                    found = Some((i, what));
                    break;
                }
            }
        }
        let Some((i, what)) = found else { continue };
        // Where it happened; for a thread with no more actions, just
        // after its last one.
        let at = |xs: &[usize], t: &Timeline| -> usize {
            match xs.get(i) {
                Some(&e) => e,
                None => xs.last().map_or(t.entries.len(), |&e| e + 1),
            }
        };
        let (pa, pb) = (at(xa, &ta), at(xb, &tb));
        if best.as_ref().is_some_and(|(k, _)| *k <= (pa, pb)) {
            continue;
        }
        let ctx = opts.context;
        let before = |xs: &[usize], t: &Timeline| -> Vec<Located> {
            xs[i.saturating_sub(ctx).min(xs.len())..i.min(xs.len())]
                .iter()
                .map(|&e| t.entries[e].clone())
                .collect()
        };
        let global = |p: usize, t: &Timeline| -> Vec<Located> {
            t.entries[p.saturating_sub(ctx)..p.min(t.entries.len())].to_vec()
        };
        let difference = Difference {
            thread: n.clone(),
            what,
            a: xa.get(i).map(|&e| ta.entries[e].clone()),
            b: xb.get(i).map(|&e| tb.entries[e].clone()),
            thread_before_a: before(xa, &ta),
            thread_before_b: before(xb, &tb),
            before_a: global(pa, &ta),
            before_b: global(pb, &tb),
        };
        best = Some(((pa, pb), difference));
    }
    let first_difference = best.map(|(_, d)| d);
    let schedule = schedule_difference(&ta, &tb, opts.context);
    let mut ignored: Vec<(usize, Ignored)> = ignored
        .into_iter()
        .map(|(what, (count, seq, example))| {
            (
                seq,
                Ignored {
                    what,
                    count,
                    example,
                },
            )
        })
        .collect();
    ignored.sort_by_key(|(seq, _)| *seq);
    Diff {
        identical: first_difference.is_none() && schedule.is_none(),
        threads,
        first_difference,
        schedule,
        ignored: ignored.into_iter().map(|(_, i)| i).collect(),
    }
}

fn schedule_difference(ta: &Timeline, tb: &Timeline, ctx: usize) -> Option<ScheduleDifference> {
    let (sa, sb) = (ta.stretches(), tb.stretches());
    for r in 0..sa.len().max(sb.len()) {
        let (x, y) = (sa.get(r), sb.get(r));
        let same = match (x, y) {
            (Some(x), Some(y)) => x.0 == y.0 && x.1 == y.1,
            _ => false,
        };
        if same {
            continue;
        }
        let stretch = |s: &[(String, usize, usize)]| {
            s.get(r).map(|(thread, done, _)| Stretch {
                thread: thread.clone(),
                actions_done: *done,
                then: s.get(r + 1).map(|n| n.0.clone()),
            })
        };
        // The end of the last shared stretch, and the next few entries.
        // The end of the stretch where they part ways, and the start of
        // the next one: the switch.
        let around = |s: &[(String, usize, usize)], t: &Timeline| -> Vec<Located> {
            let len = t.entries.len();
            let start = s.get(r).map_or(len, |n| n.2);
            let cut = s.get(r + 1).map_or(len, |n| n.2);
            let from = cut.saturating_sub(ctx).max(start);
            t.entries[from..(cut + ctx + 1).min(len)].to_vec()
        };
        return Some(ScheduleDifference {
            same_runs: r,
            a: stretch(&sa),
            b: stretch(&sb),
            around_a: around(&sa, ta),
            around_b: around(&sb, tb),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecEvent, FileId, MemWrite, SignalEvent, SyscallEvent};

    fn opts() -> Options<'static> {
        Options {
            arg_count: &|nr| if nr == libc::SYS_getpid { 0 } else { 3 },
            describe: &|a| format!("{a:?}"),
            context: 3,
        }
    }

    fn exec(tid: Tid, ip: u64) -> Event {
        Event::Exec(ExecEvent {
            tid,
            exe: "/bin/t".into(),
            exe_file: FileId("00".into()),
            at_random: [tid as u8; 16],
            sp: ip + 0x1000,
            ip,
            vdso_copy: crate::VdsoCopy::Unrecorded,
        })
    }

    fn sys(tid: Tid, nr: i64, args: [u64; 6], ret: i64) -> Event {
        Event::Syscall(SyscallEvent {
            tid,
            nr,
            args,
            result: SyscallResult {
                ret,
                writes: Vec::new(),
                extra: SyscallExtra::None,
            },
        })
    }

    fn with_write(e: Event, data: &[u8]) -> Event {
        let Event::Syscall(mut s) = e else {
            unreachable!()
        };
        s.result.writes.push(MemWrite {
            addr: 0x7fff_0000_0000,
            data: data.to_vec(),
        });
        Event::Syscall(s)
    }

    fn output(tid: Tid, text: &str) -> Event {
        Event::Syscall(SyscallEvent {
            tid,
            nr: libc::SYS_write,
            args: [2, 0x5555_0000_1000, text.len() as u64, 0, 0, 0],
            result: SyscallResult {
                ret: text.len() as i64,
                writes: Vec::new(),
                extra: SyscallExtra::Output {
                    fd: 2,
                    data: text.as_bytes().to_vec(),
                },
            },
        })
    }

    fn new_task(parent: Tid, child: Tid) -> Event {
        Event::NewTask {
            parent,
            child,
            flags: 0x3d0f00,
        }
    }

    fn exit(pid: Tid, code: i32) -> Event {
        Event::ProcessExit {
            pid,
            status: ExitStatus::Exited(code),
        }
    }

    /// A program: main starts a worker, both do a syscall, main exits
    /// with `code`; the kernel's ids offset by `base`; the worker runs
    /// first when `worker_first`.
    fn program(base: Tid, worker_first: bool, code: i32) -> Vec<Event> {
        let (m, w) = (base, base + 1);
        let clone = sys(
            m,
            libc::SYS_clone,
            [0x3d0f00, 0x7f00_1234_0000, 0, 0, 0, 0],
            w as i64,
        );
        let mut v = vec![
            exec(m, 0x5555_0000_0000 + base as u64),
            clone,
            new_task(m, w),
        ];
        let main_read = sys(
            m,
            libc::SYS_read,
            [3, 0x7ffd_0000_0000 + base as u64, 8, 0, 0, 0],
            8,
        );
        let worker_futex = sys(
            w,
            libc::SYS_futex,
            [0x5555_6666_0000 + base as u64, 1, 1, 0, 0, 0],
            0,
        );
        if worker_first {
            v.extend([worker_futex, main_read]);
        } else {
            v.extend([main_read, worker_futex]);
        }
        v.extend([
            Event::ThreadExit { tid: w },
            with_write(
                sys(
                    m,
                    libc::SYS_clock_gettime,
                    [1, 0x7ffd_0000_0100, 0, 0, 0, 0],
                    0,
                ),
                &(base as u64).to_le_bytes(),
            ),
            sys(m, libc::SYS_getpid, [base as u64, 0, 0, 0, 0, 0], m as i64),
            exit(m, code),
        ]);
        v
    }

    #[test]
    fn a_recording_is_identical_to_itself() {
        let a = program(100, false, 0);
        let d = diff(&a, &a, &opts());
        assert!(d.identical, "{d:#?}");
        assert!(d.ignored.is_empty());
        assert_eq!(d.threads.len(), 2);
        assert_eq!(d.threads[1].thread, "main.1");
    }

    #[test]
    fn ids_addresses_and_times_that_differ_are_noise_not_differences() {
        let d = diff(&program(100, false, 0), &program(200, false, 0), &opts());
        assert!(d.identical, "{d:#?}");
        let kinds: Vec<&str> = d.ignored.iter().map(|i| i.what).collect();
        assert_eq!(kinds, ["address", "thread id", "time"], "{d:#?}");
        assert_eq!(d.threads[0].tid_a, Some(100));
        assert_eq!(d.threads[0].tid_b, Some(200));
    }

    #[test]
    fn a_different_exit_is_the_first_difference() {
        let d = diff(&program(100, false, 101), &program(200, false, 0), &opts());
        let f = d.first_difference.expect("a difference");
        assert_eq!(f.thread, "main");
        assert_eq!(f.what, "exit status");
        assert_eq!(
            f.a.map(|l| l.action),
            Some(Action::ProcessExit {
                code: Some(101),
                signal: None
            })
        );
        assert_eq!(f.thread_before_a.len(), 3);
        assert!(d.schedule.is_none());
        assert!(!d.identical);
    }

    #[test]
    fn a_different_order_of_threads_is_a_schedule_difference() {
        let d = diff(&program(100, true, 0), &program(200, false, 0), &opts());
        assert!(d.first_difference.is_none(), "{d:#?}");
        let s = d.schedule.expect("a schedule difference");
        // Both start with main; A switches to the worker after main's
        // third action (the new task), B after its fourth (the read).
        assert_eq!(s.same_runs, 0);
        let (a, b) = (s.a.unwrap(), s.b.unwrap());
        assert_eq!((a.thread.as_str(), a.actions_done), ("main", 3));
        assert_eq!((b.thread.as_str(), b.actions_done), ("main", 4));
        assert_eq!(a.then.as_deref(), Some("main.1"));
        assert_eq!(b.then.as_deref(), Some("main.1"));
        // Around the switch: main's last three actions, then the worker's.
        let threads = |v: &[Located]| v.iter().map(|l| l.thread.clone()).collect::<Vec<_>>();
        assert_eq!(
            threads(&s.around_a),
            ["main", "main", "main", "main.1", "main", "main.1", "main"]
        );
        assert_eq!(
            threads(&s.around_b)[..4],
            ["main", "main", "main", "main.1"]
        );
    }

    #[test]
    fn the_earliest_thread_difference_wins_and_names_the_syscall() {
        let a = program(100, false, 101);
        let mut b = program(200, false, 0);
        // The worker's futex returns -EAGAIN in B: before main's exit.
        for e in &mut b {
            if let Event::Syscall(s) = e {
                if s.nr == libc::SYS_futex {
                    s.result.ret = -11;
                }
            }
        }
        let f = diff(&a, &b, &opts()).first_difference.unwrap();
        assert_eq!((f.thread.as_str(), f.what.as_str()), ("main.1", "result"));
        let Some(Action::Syscall { nr, ret, .. }) = f.b.map(|l| l.action) else {
            panic!()
        };
        assert_eq!((nr, ret), (libc::SYS_futex, -11));
        // Everything before it in B: exec, clone, new task, main's read.
        assert_eq!(f.before_b.len(), 3);
        assert_eq!(f.before_b.last().unwrap().thread, "main");
    }

    #[test]
    fn small_argument_values_are_compared_and_unused_registers_are_not() {
        let a = vec![
            exec(1, 0x5555_0000_0000),
            sys(1, libc::SYS_read, [3, 0, 8, 9, 9, 9], 8),
        ];
        let b = vec![
            exec(1, 0x5555_0000_0000),
            sys(1, libc::SYS_read, [3, 0, 8, 7, 7, 7], 8),
        ];
        assert!(diff(&a, &b, &opts()).identical);
        let c = vec![
            exec(1, 0x5555_0000_0000),
            sys(1, libc::SYS_read, [4, 0, 8, 0, 0, 0], 8),
        ];
        let f = diff(&a, &c, &opts()).first_difference.unwrap();
        assert_eq!(f.what, "argument 1");
    }

    /// Found on fixtures/flaky: `prctl(PR_SET_NAME, name)` differed in its
    /// fifth register, which PR_SET_NAME does not read.
    #[test]
    fn leftover_registers_of_multiplexed_calls_are_not_arguments() {
        let prctl = |r5: u64| {
            vec![
                exec(1, 0x5555_0000_0000),
                sys(
                    1,
                    libc::SYS_prctl,
                    [15, 0x7fff_f7da_ae00, 0xf, 0x745f, r5, 0],
                    0,
                ),
            ]
        };
        let five = Options {
            arg_count: &|_| 5,
            ..opts()
        };
        assert!(diff(&prctl(0), &prctl(0x7fff_f7f8_4a80), &five).identical);
        let other_option = vec![
            exec(1, 0x5555_0000_0000),
            sys(
                1,
                libc::SYS_prctl,
                [16, 0x7fff_f7da_ae00, 0xf, 0x745f, 0, 0],
                0,
            ),
        ];
        let f = diff(&prctl(0), &other_option, &five)
            .first_difference
            .unwrap();
        assert_eq!(f.what, "argument 1");
    }

    /// Found on fixtures/flaky: a join's `futex(&tid, FUTEX_WAIT, tid)`
    /// passes the worker's id as its value.
    #[test]
    fn a_thread_id_in_any_argument_is_compared_through_the_alignment() {
        let join = |base: Tid, val: u64| {
            vec![
                exec(base, 0x5555_0000_0000),
                sys(base, libc::SYS_clone, [0; 6], (base + 1) as i64),
                new_task(base, base + 1),
                Event::ThreadExit { tid: base + 1 },
                sys(
                    base,
                    libc::SYS_futex,
                    [0x7fff_0000_0000, 0, val, 0, 0, 0],
                    0,
                ),
            ]
        };
        let d = diff(&join(100, 101), &join(200, 201), &opts());
        assert!(d.identical, "{d:#?}");
        assert!(d.ignored.iter().any(|i| i.what == "thread id"));
        // Not the same thread's id: a difference.
        let f = diff(&join(100, 101), &join(200, 200), &opts())
            .first_difference
            .unwrap();
        assert_eq!(f.what, "argument 3");
    }

    #[test]
    fn the_cpus_a_worker_was_pinned_to_are_noise() {
        let mask = |m: &[u8]| {
            vec![
                exec(1, 0x5555_0000_0000),
                with_write(
                    sys(1, libc::SYS_sched_getaffinity, [0, 8, 0, 0, 0, 0], 8),
                    m,
                ),
            ]
        };
        let d = diff(
            &mask(&[1, 0, 0, 0, 0, 0, 0, 0]),
            &mask(&[2, 0, 0, 0, 0, 0, 0, 0]),
            &opts(),
        );
        assert!(d.identical);
        assert_eq!(d.ignored[0].what, "cpu");
    }

    #[test]
    fn output_differs_unless_only_its_numbers_do() {
        let run = |s: &str| vec![exec(1, 0x5555_0000_0000), output(1, s)];
        let d = diff(&run("ok in 0.01s\n"), &run("ok in 0.37s\n"), &opts());
        assert!(d.identical);
        assert!(
            d.ignored.iter().any(|i| i.what == "numbers in output"),
            "{d:#?}"
        );
        let f = diff(&run("ok\n"), &run("panicked at x.rs:3\n"), &opts())
            .first_difference
            .unwrap();
        assert_eq!(f.what, "output");
    }

    #[test]
    fn written_data_differs_unless_it_is_addresses_or_random() {
        let read = |data: &[u8]| {
            vec![
                exec(1, 0x5555_0000_0000),
                with_write(sys(1, libc::SYS_read, [3, 0, 8, 0, 0, 0], 8), data),
            ]
        };
        let f = diff(&read(b"aaaaaaaa"), &read(b"bbbbbbbb"), &opts())
            .first_difference
            .unwrap();
        assert_eq!(f.what, "data");
        let p1 = 0x7f12_3456_7000u64.to_le_bytes();
        let p2 = 0x7f65_4321_0000u64.to_le_bytes();
        assert!(diff(&read(&p1), &read(&p2), &opts()).identical);
        let rand = |data: &[u8]| {
            vec![
                exec(1, 0x5555_0000_0000),
                with_write(sys(1, libc::SYS_getrandom, [0, 8, 0, 0, 0, 0], 8), data),
            ]
        };
        let d = diff(&rand(b"aaaaaaaa"), &rand(b"bbbbbbbb"), &opts());
        assert!(d.identical);
        assert!(d.ignored.iter().any(|i| i.what == "random"));
    }

    #[test]
    fn buffered_and_traced_syscalls_compare_alike() {
        let mut rec = Vec::new();
        let h = rrtest_abi::RecordHeader {
            nr: libc::SYS_read as u16,
            flags: 0,
            out_len: 3,
            result: 3,
            out_addr: 0x7ffd_0000_0000,
        };
        rec.extend_from_slice(&h.nr.to_le_bytes());
        rec.extend_from_slice(&h.flags.to_le_bytes());
        rec.extend_from_slice(&h.out_len.to_le_bytes());
        rec.extend_from_slice(&h.result.to_le_bytes());
        rec.extend_from_slice(&h.out_addr.to_le_bytes());
        rec.extend_from_slice(b"abc");
        rec.resize(rrtest_abi::record_size(3) as usize, 0);
        let a = vec![
            exec(1, 0x5555_0000_0000),
            Event::Buffered {
                tid: 1,
                records: rec.clone(),
            },
            exit(1, 0),
        ];
        let b = vec![
            exec(1, 0x5555_0000_0000),
            with_write(sys(1, libc::SYS_read, [3, 0, 3, 0, 0, 0], 3), b"abc"),
            exit(1, 0),
        ];
        assert!(
            diff(&a, &b, &opts()).identical,
            "{:#?}",
            diff(&a, &b, &opts())
        );
        let mut other = rec;
        other[24] = b'x';
        let c = vec![
            exec(1, 0x5555_0000_0000),
            Event::Buffered {
                tid: 1,
                records: other,
            },
            exit(1, 0),
        ];
        assert_eq!(diff(&a, &c, &opts()).first_difference.unwrap().what, "data");
    }

    #[test]
    fn a_missing_signal_is_a_difference_in_kind() {
        let sig = Event::Signal(SignalEvent {
            tid: 1,
            signo: libc::SIGSEGV,
            siginfo: vec![0; 128],
            kind: SignalKind::Synchronous {
                ip: 0x5555_0000_0010,
            },
        });
        let a = vec![exec(1, 0x5555_0000_0000), sig, exit(1, 0)];
        let b = vec![exec(1, 0x5555_0000_0000), exit(1, 0)];
        let f = diff(&a, &b, &opts()).first_difference.unwrap();
        assert_eq!(f.what, "kind");
        assert!(matches!(
            f.a.unwrap().action,
            Action::Signal {
                signo: libc::SIGSEGV,
                ..
            }
        ));
        let f = diff(&b, &b[..1], &opts()).first_difference.unwrap();
        assert_eq!(f.what, "missing");
        assert!(f.b.is_none());
    }
}
