//! The recorder: runs a program under ptrace, serializes its threads, and
//! writes every nondeterministic input to a trace (DESIGN.md §4).
//!
//! - [`session`]: the recording session, a directory with one file per
//!   concern: `mod.rs` the event loop (one thread runs user code at a
//!   time; the schedule is the event order) and task lifetime;
//!   `schedule.rs` who runs next and for how long (a replaceable policy);
//!   `signals.rs` held-back signals; `points.rs` execution points;
//!   `syscallbuf.rs` the buffer's flushing and desched events;
//!   `patching.rs` site patching; `rdtsc.rs` rdtsc emulation;
//!   `process.rs` clone, fork and exec; `syscall.rs` syscall entry and exit;
//! - [`capture`]: what a finished syscall did (result, memory written,
//!   program output, mapped files);
//! - [`server`]: a process that records many programs in turn, for the harness.
//!
//! The typed syscall table and the syscall-site patcher, which the replayer
//! and `tracee/` share, are the crate `rrtest-syscalls` (`cargo-rrtest/syscalls`).
//!
//! The replayer mirrors this module file for file (`replayer/session/`,
//! `replayer/inject.rs`).

mod capture;
pub mod server;
mod session;

use std::ffi::OsString;
use std::path::PathBuf;

pub use session::{record, Recording};

/// Errors of the recorder itself (not of the program it records).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting the tracee failed.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A ptrace or memory operation on a tracee failed.
    #[error("{op} (thread {tid}): {source}")]
    Ptrace {
        /// What we were doing.
        op: &'static str,
        /// The thread.
        tid: i32,
        /// The error.
        source: std::io::Error,
    },
    /// Writing the trace failed.
    #[error(transparent)]
    Trace(#[from] rrtest_trace::Error),
    /// The recording stalled: no tracee stop for `secs` seconds while a
    /// thread waited on the recorder (a recorder bug, never the program's).
    #[error(
        "the recorder stalled (a bug in cargo-rrtest; please report it with this message): \
         no tracee stop for {secs} s while a thread waited on the recorder: {state}"
    )]
    Stalled {
        /// Seconds without a stop.
        secs: u64,
        /// Every thread's state.
        state: String,
    },
}

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    /// The program as exec'd: an absolute path.
    pub program: PathBuf,
    /// argv, argv[0] included.
    pub argv: Vec<OsString>,
    /// The environment, `NAME=value`.
    pub env: Vec<OsString>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The trace directory to create.
    pub trace_dir: PathBuf,
    /// Load the syscall buffer (the preload library) into the program.
    pub syscallbuf: bool,
    /// The CPU to record on (None: the one the recorder runs on).
    pub cpu: Option<usize>,
    /// Write nothing if the program exits with status 0: the trace grows in
    /// memory and is dropped then (`TraceWriter::create_deferred`), and is
    /// written out otherwise (the harness with `--keep failed` or `none`).
    pub discard_if_passed: bool,
    /// Unwind blocked buffered syscalls on a desched event's signal (a
    /// perf context-switch counter per thread) where the kernel grants
    /// one; else (or when refused) the recorder only polls for them.
    pub desched_events: bool,
    /// Names of the variables removed from `env` as credentials, for the
    /// header (`harness::secrets`; names only).
    pub env_removed: Vec<OsString>,
    /// Absolute paths the program is to see as empty (`--hide-path`): an
    /// empty read-only directory or `/dev/null` is bind-mounted over each,
    /// in a mount namespace of the program's own.
    pub hide_paths: Vec<PathBuf>,
    /// Record under the chaos scheduler with this seed (`--chaos`): a
    /// seeded random schedule that makes races show (docs/chaos.md).
    pub chaos: Option<u64>,
    /// Record under a prescribed schedule (`cargo rrtest diff --minimize`'s
    /// live re-runs): the chaos decisions of a seed, only some of them kept.
    /// Takes the place of `chaos`.
    pub prescribed: Option<Prescribed>,
}

/// A prescribed schedule (`recorder/session/prescribed.rs`): the chaos
/// scheduler of `seed` stops each thread where it would, but of its
/// decisions that make a switch the default scheduler would not make (a
/// thread stopped after a count of instructions or at a syscall so that
/// another runs, a new thread run before its creator, a pause), only those
/// in `keep` are carried out; at the others the thread goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescribed {
    /// The chaos seed the decisions come from.
    pub seed: u64,
    /// The decisions carried out (None: all of them).
    pub keep: Option<Vec<Kept>>,
    /// Where to write, as JSON lines, the threads, the decisions (kept or
    /// not) and every switch between threads with where the thread switched
    /// out was (docs/chaos.md).
    pub log: Option<PathBuf>,
}

/// A decision a prescribed schedule carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Its identity: for a thread's stop, the thread's number (1: the
    /// first, in join order) in the high 32 bits and its stop's number
    /// among that thread's in the low ones; for a new thread run first,
    /// its number and all ones; for a pause, the pause's number.
    pub decision: u64,
    /// The thread (by number) to run at it, if it is ready then (None:
    /// the chaos scheduler's pick).
    pub next: Option<u32>,
}

/// The shell convention for a program's exit status, as `record` exits:
/// its code, or 128 + N when signal N killed it.
pub fn exit_code_of(status: rrtest_trace::ExitStatus) -> u8 {
    match status {
        rrtest_trace::ExitStatus::Exited(code) => code as u8,
        rrtest_trace::ExitStatus::Signaled { signo, .. } => 128u8.wrapping_add(signo as u8),
    }
}
