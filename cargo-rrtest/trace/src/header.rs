//! The trace header: `header.json` in the trace directory.

use serde::{Deserialize, Serialize};

/// `header.json`: everything about a recording except its events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// Trace format version ([`super::FORMAT_VERSION`] when written by us).
    pub format_version: u32,
    /// Version of the cargo-rrtest that recorded it.
    pub recorder_version: String,
    /// The recorder <-> preload protocol version (`rrtest_abi::PROTOCOL_VERSION`).
    pub protocol_version: u32,
    /// The command as given: argv[0] is the program as the user named it.
    pub argv: Vec<String>,
    /// The executable's absolute path, as exec'd.
    pub exe: String,
    /// The environment the program started with, `NAME=value` strings, in order.
    pub env: Vec<String>,
    /// The working directory it started in.
    pub cwd: String,
    /// `uname -srm` of the recording machine.
    pub kernel: String,
    /// The CPUID table of the recording machine.
    pub cpuid: Vec<CpuidLeaf>,
    /// When the recording started (RFC 3339, UTC).
    pub recorded_at: String,
    /// The CPU the recorded program was bound to (replay binds to it too:
    /// `cpuid` tells the executing CPU's APIC id, which the loader keeps in
    /// memory). `None`: not bound (older traces, or binding failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracee_cpu: Option<u32>,
    /// The signal mask the recorded program started with (bit `n - 1` for
    /// signal `n`): it inherits it across `execve`, and replay starts it
    /// with the same one. `None`: not recorded (older traces); replay then
    /// starts it with the replayer's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_sigmask: Option<u64>,
    /// The signals the recorded program started with ignored (bit `n - 1`
    /// for signal `n`): `SIG_IGN` survives `execve` (handlers do not), and
    /// replay starts the program with the same ones. `None`: not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_ignored: Option<u64>,
    /// The stack size limit (`RLIMIT_STACK`'s soft limit, bytes) the
    /// recorded program started with: how deep its stack may grow before
    /// it faults, which replay must reproduce. `None`: not recorded (older
    /// traces: 8 MiB, or the hard limit if lower, as then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_limit: Option<u64>,
    /// Names of the variables removed from the program's environment
    /// because they looked like credentials (names only, never values;
    /// `docs/secrets.md`). Empty: none removed, or an older trace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_removed: Vec<String>,
    /// Paths the recorded program saw as empty (`--hide-path`). Empty: none
    /// hidden, or an older trace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_paths: Vec<String>,
    /// Whether the recorder cleared the trap fields (`err`, `trapno`,
    /// `cr2`) of each signal frame it delivered that no instruction raised
    /// (they tell only which trap the recorder itself caused last); replay
    /// clears them too. False: an older trace, whose frames hold the
    /// kernel's values, which replay leaves as they come.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signal_traps_cleared: bool,
    /// Whether the recorder replaced the kernel's vDSO (and vvar pages) in
    /// the program by its own, at a fixed address, after each exec; replay
    /// does the same. False: an older trace (format version 2 or 1), whose
    /// program kept the kernel's vDSO mapped but hidden from it
    /// (`AT_SYSINFO_EHDR` made `AT_IGNORE`), which replay does too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_vdso: bool,
    /// How the recording ended; `None` while it is being written (a recorder
    /// that died leaves it so).
    pub outcome: Option<Outcome>,
    /// Why the trace cannot be replayed, if it cannot (unknown syscalls etc.).
    #[serde(default)]
    pub unreplayable: Vec<String>,
    /// Counters.
    #[serde(default)]
    pub stats: Stats,
    /// The result of the verification replay (`cargo rrtest verify`), if one ran.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// The ELF interpreters (dynamic loaders) the kernel loaded for the
    /// recorded executables, kept in `files/`: replay runs them, not the
    /// replay host's. Empty in older traces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loaders: Vec<LoaderCopy>,
    /// The interpreters the kernel ran for recorded `#!` scripts, kept in
    /// `files/` (their own loaders are in `loaders`): replay runs them, not
    /// the replay host's. Empty in older traces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpreters: Vec<InterpreterCopy>,
    /// Facts about the recording host that decide whether another host can
    /// replay the trace (`tracee::host`). `None` in older traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacts>,
    /// The chaos scheduler the program was recorded under (`--chaos`).
    /// `None`: the default scheduler, or an older trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<Chaos>,
    /// The hash behind every execution point's `digest` ([`PointDigest`]
    /// names): replay computes the same one to confirm a point. `None`: a
    /// trace from before the field, whose digests are
    /// [`PointDigest::Sha256`]. A name this build does not know is refused
    /// when the trace is opened ([`crate::Error::UnknownDigest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_digest: Option<String>,
}

impl Header {
    /// The digest kind of the trace's execution points, or `None` when the
    /// header names one this build does not know.
    pub fn point_digest_kind(&self) -> Option<PointDigest> {
        match &self.point_digest {
            None => Some(PointDigest::Sha256),
            Some(name) => PointDigest::from_name(name),
        }
    }
}

/// How an execution point's 64-bit `digest` (of the memory and FPU state
/// its registers do not show) is computed: which hash, and how the main
/// thread's stack window is taken (`tracee::state_digest` says which
/// bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointDigest {
    /// The first 8 bytes (little-endian) of SHA-256: every trace without
    /// `point_digest` in its header (format version 1).
    Sha256,
    /// XXH3, 64 bits: not cryptographic, which a digest compared with the
    /// one recorded at the same place does not need, and about ten times
    /// faster (docs/trace-format.md).
    Xxh3,
    /// XXH3, 64 bits, with the stack window below the start of the main
    /// thread's grows-down `[stack]` mapping hashed as zeros, so that the
    /// digest does not depend on how far the kernel has grown that mapping
    /// (a point taken after a stack-growth fault, before its instruction
    /// ran again, saw the grown mapping; replay, stopping before the
    /// fault, did not).
    Xxh3StackZeros,
}

impl PointDigest {
    /// The kind this build records with.
    pub const CURRENT: PointDigest = PointDigest::Xxh3StackZeros;
    /// Every kind this build can check, for messages.
    pub const KNOWN: [PointDigest; 3] = [
        PointDigest::Sha256,
        PointDigest::Xxh3,
        PointDigest::Xxh3StackZeros,
    ];

    /// Its name in `header.json`.
    pub const fn name(self) -> &'static str {
        match self {
            PointDigest::Sha256 => "sha256",
            PointDigest::Xxh3 => "xxh3-64",
            PointDigest::Xxh3StackZeros => "xxh3-64-stack-zeros",
        }
    }

    /// Whether the stack window below the `[stack]` mapping's start is
    /// hashed as zeros (else it is cut at that start).
    pub const fn stack_zeros(self) -> bool {
        matches!(self, PointDigest::Xxh3StackZeros)
    }

    /// The kind named `name` in `header.json`, if this build knows it.
    pub fn from_name(name: &str) -> Option<PointDigest> {
        PointDigest::KNOWN.into_iter().find(|k| k.name() == name)
    }
}

/// The chaos scheduler of a recording: its seed, and what it decided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Chaos {
    /// The seed: `--chaos --seed SEED` makes the same decisions again on
    /// the same program and input.
    pub seed: u64,
    /// How many decisions it made (0 while recording).
    #[serde(default)]
    pub decisions: u64,
    /// A digest of the decisions in order (16 hex digits; empty while
    /// recording): equal for equal schedules.
    #[serde(default)]
    pub digest: String,
}

/// The interpreter of one recorded `#!` script.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InterpreterCopy {
    /// Content id of the script (as in its `Exec` event).
    pub script_file: String,
    /// The interpreter's path as the script's `#!` line names it.
    pub path: String,
    /// Content id of the interpreter's copy (an ELF executable).
    pub file: String,
}

/// The loader of one recorded executable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoaderCopy {
    /// Content id of the executable (as in its `Exec` event).
    pub exe_file: String,
    /// The loader's path as the executable names it (`PT_INTERP`).
    pub path: String,
    /// Content id of the loader's copy.
    pub file: String,
}

/// The recording host, as `cargo rrtest info` shows it and as
/// `replay --check` compares it with the replay host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostFacts {
    /// The CPU's brand string (CPUID 0x80000002..4).
    pub cpu_model: String,
    /// The CPU features a program can observe and choose code by
    /// (`tracee::host::FEATURES` names), present on the host.
    pub cpu_features: Vec<String>,
    /// `XCR0`: the register states the kernel enables (`xgetbv`), which
    /// decide the XSAVE layout together with CPUID leaf 0xd.
    pub xcr0: u64,
    /// The size of the XSAVE area for the enabled states (CPUID 0xd.0 ebx).
    pub xsave_size: u32,
    /// The C library the recorder ran with (the program's, unless it
    /// brings its own), e.g. `glibc 2.36`; empty when unknown.
    pub libc: String,
    /// Whether the host can make `cpuid` fault (`ARCH_SET_CPUID`), so that
    /// replay there could answer it from the recorded table.
    pub cpuid_faulting: bool,
}

/// The result of replaying a trace right after recording it, on the machine
/// that recorded it: proof that it replays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verification {
    /// Whether the replay reached the end with the recorded exit status and
    /// every event matching.
    pub verified: bool,
    /// Why not, when `verified` is false.
    pub reason: Option<String>,
    /// When it ran (RFC 3339, UTC).
    pub verified_at: String,
    /// How long the replay took.
    pub replay_ms: u64,
    /// For each execution point (event index, hits): how many times the
    /// thread executed the point's instruction, since its previous event,
    /// before the matching time. Later replays stop there at once with a
    /// counted breakpoint instead of comparing state at every hit.
    #[serde(default)]
    pub point_hits: Vec<[u64; 2]>,
}

/// One CPUID leaf/subleaf and its answer (defined next to the code that
/// reads it; its serialized shape is part of the format).
pub use rrtest_sys::cpu::CpuidLeaf;

/// How the recorded program ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exited with this code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// Killed by this signal.
    Signaled {
        /// The signal number.
        signo: i32,
    },
}

/// Counters reported by `cargo rrtest info`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Events in the stream.
    pub events: u64,
    /// Syscalls that stopped in the recorder.
    pub traced_syscalls: u64,
    /// Syscalls recorded through the in-process buffer.
    pub buffered_syscalls: u64,
    /// Syscall sites patched to jump into the buffer.
    pub patched_sites: u64,
    /// Of those, the ones patched ahead at the buffer's handshake (sites
    /// an earlier recording of the same executable patched).
    #[serde(default)]
    pub patched_ahead: u64,
    /// Buffered syscalls the recorder unwound (their records discarded,
    /// the syscall issued again traced).
    #[serde(default)]
    pub aborted_records: u64,
    /// Of those, the ones unwound because they blocked.
    #[serde(default)]
    pub desched_events: u64,
    /// Signals of desched events (perf context-switch counters) the
    /// recorder took: a thread switched out inside an armed buffered
    /// syscall. The ones that found it blocked are in `desched_events`.
    #[serde(default)]
    pub desched_signals: u64,
    /// Signals delivered.
    pub signals: u64,
    /// Asynchronous events that need an execution point to replay.
    pub async_events: u64,
    /// Threads (and processes) that ever existed.
    pub threads: u64,
    /// Emulated rdtsc/rdtscp (traps).
    pub rdtsc: u64,
    /// rdtsc executions that went through a patched site (no trap): the
    /// buffered clock reads of the synthesized TSC, also counted in
    /// `buffered_syscalls`.
    #[serde(default)]
    pub rdtsc_buffered: u64,
    /// Processes the program left running when its first process exited,
    /// which the recorder killed after a grace period (a leaky test).
    /// Not written when 0, so headers without leaks stay as they were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaked_processes: u64,
    /// Where the recording's wall time went: the scheduler's counters.
    /// Absent in older traces (read as all 0), and not written when all 0.
    #[serde(default, skip_serializing_if = "ScheduleStats::is_empty")]
    pub schedule: ScheduleStats,
}

/// The scheduler's counters: how the recorder shared the program's one CPU
/// among its threads, to judge where a slow recording's time goes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ScheduleStats {
    /// The recording's wall time, in milliseconds.
    pub wall_ms: u64,
    /// Of that, time no thread ran user code: every thread was blocked in
    /// the kernel (or stopped between events) and the recorder waited.
    pub idle_ms: u64,
    /// Stops of the program's threads the recorder handled.
    pub stops: u64,
    /// Times a thread other than the last one was resumed.
    pub switches: u64,
    /// Of those, switches at a `sched_yield` while another thread was ready.
    pub yields: u64,
    /// Slices that ended without progress: a thread ran user code for its
    /// whole slice while another waited, and the recorder stopped it.
    pub slices_expired: u64,
    /// Of those, ended early: the thread spun (no syscall) while others
    /// waited, so its slice was cut short.
    pub spins_cut: u64,
    /// Requests to a thread's syscall-buffer hook to stop at its next
    /// syscall (to end its slice, or deliver a held-back signal).
    pub bail_requests: u64,
    /// Execution points found (a preemption or a signal delivered in user
    /// code): at a spin loop's head, at a return address, at the exit of
    /// the loop the thread was in (absent in older traces), or where the
    /// thread was when the search gave up.
    pub points_spin: u64,
    /// See `points_spin`.
    pub points_return: u64,
    /// See `points_spin`.
    pub points_loop_exit: u64,
    /// See `points_spin`.
    pub points_anywhere: u64,
    /// Spin probes made a few instructions ahead of where the thread was
    /// interrupted, at a place replay's in-tracee filter can patch (the
    /// filter cannot patch the ip itself). Absent in older traces.
    pub probes_ahead: u64,
    /// Timer ticks the recorder took (each wakes it on the program's CPU).
    pub ticks: u64,
    /// Interrupts sent again because their stop did not come (another
    /// stop of the thread swallowed the first).
    pub interrupts_resent: u64,
    /// Private futex waits held at their entry while another thread could
    /// run, instead of blocking in the kernel.
    pub futex_parked: u64,
    /// Of those, let go because their word changed: answered `EAGAIN` at
    /// the entry (one stop for the wait).
    pub futex_changed: u64,
    /// Futex waits made again on the word a thread was just let go from
    /// (it lost the word to a thread that took it back before it ran):
    /// the other threads were then stopped at their next syscall, the
    /// release's wake, so that it ran with the word free.
    pub futex_handoffs: u64,
    /// Futex wakes of a thread last preempted spinning (traced for it)
    /// that woke a thread, where it then gave way to the others.
    pub wake_switches: u64,
}

impl ScheduleStats {
    /// All 0: a trace from before these counters (or nothing recorded).
    pub fn is_empty(&self) -> bool {
        *self == ScheduleStats::default()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `env_removed` and `hidden_paths` are optional: a header without them
    /// (every trace written before them) reads as empty lists, and empty
    /// lists are not written, so such headers stay byte-identical.
    #[test]
    fn removed_env_and_hidden_paths_are_optional() {
        let mut h = crate::tests::gen::header();
        let plain = serde_json::to_value(&h).expect("json");
        assert!(plain.get("env_removed").is_none() && plain.get("hidden_paths").is_none());
        let back: Header = serde_json::from_value(plain).expect("reads");
        assert!(back.env_removed.is_empty() && back.hidden_paths.is_empty());
        h.env_removed = vec!["DATABASE_URL".into()];
        h.hidden_paths = vec!["/root/.netrc".into()];
        let text = serde_json::to_string(&h).expect("json");
        assert_eq!(serde_json::from_str::<Header>(&text).expect("reads"), h);
    }

    /// The portability fields survive a write and a read, and a header
    /// without them (an older recorder's) reads with their defaults.
    #[test]
    fn loaders_and_host_are_optional() {
        let mut h = crate::tests::gen::header();
        h.loaders = vec![LoaderCopy {
            exe_file: "00".repeat(16),
            path: "/lib64/ld-linux-x86-64.so.2".into(),
            file: "11".repeat(16),
        }];
        h.interpreters = vec![InterpreterCopy {
            script_file: "22".repeat(16),
            path: "/bin/sh".into(),
            file: "00".repeat(16),
        }];
        h.host = Some(HostFacts {
            cpu_model: "Some CPU".into(),
            cpu_features: vec!["sse3".into(), "avx2".into()],
            xcr0: 0xe7,
            xsave_size: 2432,
            libc: "glibc 2.36".into(),
            cpuid_faulting: false,
        });
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(serde_json::from_value::<Header>(json.clone()).unwrap(), h);
        let mut old = json;
        let obj = old.as_object_mut().unwrap();
        obj.remove("loaders");
        obj.remove("interpreters");
        obj.remove("host");
        let read: Header = serde_json::from_value(old).unwrap();
        assert!(read.loaders.is_empty() && read.interpreters.is_empty() && read.host.is_none());
        // Empty and absent ones are not written.
        let plain = serde_json::to_value(crate::tests::gen::header()).unwrap();
        assert!(
            plain.get("loaders").is_none()
                && plain.get("interpreters").is_none()
                && plain.get("host").is_none()
        );
    }

    /// A header without `point_digest` (every trace before it) has SHA-256
    /// digests; the current kind is written by name and read back; a name
    /// this build does not know is no kind.
    #[test]
    fn the_point_digest_defaults_to_sha256() {
        let mut h = crate::tests::gen::header();
        h.point_digest = None;
        let old = serde_json::to_value(&h).unwrap();
        assert!(old.get("point_digest").is_none());
        let read: Header = serde_json::from_value(old).unwrap();
        assert_eq!(read.point_digest_kind(), Some(PointDigest::Sha256));
        h.point_digest = Some(PointDigest::CURRENT.name().into());
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["point_digest"], "xxh3-64-stack-zeros");
        let read: Header = serde_json::from_value(json).unwrap();
        assert_eq!(read.point_digest_kind(), Some(PointDigest::Xxh3StackZeros));
        // The kind recorders before 2026-12-06 wrote is still read.
        h.point_digest = Some("xxh3-64".into());
        assert_eq!(h.point_digest_kind(), Some(PointDigest::Xxh3));
        h.point_digest = Some("blake9-64".into());
        assert_eq!(h.point_digest_kind(), None);
        for k in PointDigest::KNOWN {
            assert_eq!(PointDigest::from_name(k.name()), Some(k));
        }
    }
}
