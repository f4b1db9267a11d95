//! Recorder trials: every fixture program (fixtures/c, fixtures/programs) in
//! every mode.
//!
//! - `native`: the program alone behaves as its spec says (exit status,
//!   `EXIT-SUCCESS` last, expected text), and where it is about
//!   nondeterminism, two native runs print different things, so that a replay
//!   printing the recorded output proves it reproduced values rather than
//!   recomputing them.
//! - `record_replay`: `cargo-rrtest record` passes the program's output and
//!   exit status through; `cargo-rrtest replay` then writes the same stdout
//!   and stderr bytes and exits with the same status, creates and changes no
//!   file (the work directory is emptied after recording and must stay
//!   empty), and does not sleep through recorded sleeps; and `info --json`
//!   says the trace is `verified` (record's verification replay passed).
//!
//! The fault trials (divergence, corrupt traces, `info`, unreplayable
//! traces) are in `recorder_faults.rs`; building the fixtures is in
//! `recorder_build.rs`; running and comparing in `recorder_run.rs`.
//! docs/testing.md says how to add a fixture.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};

use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// Where a fixture's executable comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A C fixture build.
    C(CBuild),
    /// A binary of fixtures/programs/src/bin.
    RustBin(&'static str),
    /// A test of the fixture library, run by its libtest binary as
    /// `--exact NAME --nocapture`.
    RustTest(&'static str),
}

/// Arguments a fixture takes.
#[derive(Debug, Clone, Copy)]
pub enum Args {
    /// None.
    None,
    /// The trial's work directory (where it creates files).
    WorkDir,
    /// Fixed arguments.
    Fixed(&'static [&'static str]),
}

/// What a fixture must do, natively and recorded.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The trial name's middle part, e.g. `c::hello-pie`.
    pub name: &'static str,
    /// Its executable.
    pub source: Source,
    /// Its arguments.
    pub args: Args,
    /// Shell-style exit status (128 + N for killed by signal N).
    pub code: i32,
    /// Whether stdout's last line must be `EXIT-SUCCESS`.
    pub success_marker: bool,
    /// Text stdout must contain.
    pub stdout_has: &'static [&'static str],
    /// Text stderr must contain.
    pub stderr_has: &'static [&'static str],
    /// Whether two native runs print different stdout.
    pub differs: bool,
    /// Whether it leaves files in its work directory (so the no-side-effect
    /// check of replay has something to not recreate).
    pub leaves_files: bool,
    /// The program sleeps at least this long: recording takes at least this,
    /// replay must take under half of it.
    pub sleeps: Option<Duration>,
}

impl Spec {
    /// A fixture that runs without arguments, exits 0 after printing
    /// `EXIT-SUCCESS`, and prints nothing else the trials check.
    pub const fn new(name: &'static str, source: Source) -> Self {
        Spec {
            name,
            source,
            args: Args::None,
            code: 0,
            success_marker: true,
            stdout_has: &[],
            stderr_has: &[],
            differs: false,
            leaves_files: false,
            sleeps: None,
        }
    }
    const fn c(name: &'static str, build: CBuild) -> Self {
        Spec::new(name, Source::C(build))
    }
    pub const fn args(mut self, args: Args) -> Self {
        self.args = args;
        self
    }
    const fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
    const fn differs(mut self) -> Self {
        self.differs = true;
        self
    }
    const fn leaves_files(mut self) -> Self {
        self.leaves_files = true;
        self
    }
    const fn stdout_has(mut self, s: &'static [&'static str]) -> Self {
        self.stdout_has = s;
        self
    }
    const fn stderr_has(mut self, s: &'static [&'static str]) -> Self {
        self.stderr_has = s;
        self
    }
}

const fn c_link(name: &'static str, link: Link) -> CBuild {
    CBuild {
        name,
        link,
        defines: &[],
    }
}

/// The C fixtures, one scenario each (fixtures/c/NAME.c).
pub const C_SPECS: &[Spec] = &[
    Spec::c("hello-pie", CBuild::pie("hello"))
        .stdout_has(&["hello from a recorded program"])
        .stderr_has(&["hello on stderr"]),
    Spec::c("hello-nopie", c_link("hello", Link::NoPie)).stderr_has(&["hello on stderr"]),
    Spec::c("hello-static", c_link("hello", Link::Static)).stderr_has(&["hello on stderr"]),
    Spec::c(
        "file_io_random_names-pie",
        CBuild::pie("file_io_random_names"),
    )
    .args(Args::WorkDir)
    .stdout_has(&["read back: content of rrfx", "renamed to rrfx-"])
    .differs()
    .leaves_files(),
    Spec::c("time_sources-pie", CBuild::pie("time_sources"))
        .stdout_has(&["clock_gettime REALTIME", "rdtscp"])
        .differs(),
    Spec::c("time_sources-nopie", c_link("time_sources", Link::NoPie)).differs(),
    Spec::c("randomness-pie", CBuild::pie("randomness"))
        .stdout_has(&["/dev/urandom"])
        .differs(),
    Spec::c("getpid_ids-pie", CBuild::pie("getpid_ids"))
        .stdout_has(&["pid ", "uname Linux"])
        .differs(),
    Spec::c("threads_basic-pie", CBuild::pie("threads_basic")).stdout_has(&["counter 4000"]),
    Spec::c(
        "threads_basic-static",
        c_link("threads_basic", Link::Static),
    )
    .stdout_has(&["counter 4000"]),
    Spec::c("racy_threads-pie", CBuild::pie("racy_threads"))
        .stdout_has(&["final counter", "finish order:"])
        .differs(),
    Spec::c("pipe_block-pie", CBuild::pie("pipe_block"))
        .stdout_has(&["reader got", "writer wrote"])
        .differs(),
    // A signal delivered at an execution point right after a buffered
    // syscall: replay must leave rcx and r11 as the syscall did.
    Spec::c("syscall_then_spin-pie", CBuild::pie("syscall_then_spin"))
        .stdout_has(&["the alarm ended the spin"]),
    // The same after two buffered syscalls with a pass through the loop
    // between them (replay stops there and resumes the thread): the
    // point's r11 must not say where the second one's record went.
    Spec::c("syscall_pass_spin-pie", CBuild::pie("syscall_pass_spin"))
        .stdout_has(&["the alarm ended the spin after two buffered syscalls"]),
    Spec::c("pipe_pingpong-pie", CBuild::pie("pipe_pingpong"))
        .args(Args::Fixed(&["200", "20000"]))
        .stdout_has(&["rounds 200 checksum"]),
    Spec::c("syscall_loop-pie", CBuild::pie("syscall_loop"))
        .args(Args::Fixed(&["1000"]))
        .stdout_has(&["1000 iterations, 2000 syscalls"]),
    Spec::c("file_loop-pie", CBuild::pie("file_loop"))
        .args(Args::Fixed(&["2000"]))
        .stdout_has(&["2000 rounds, 4000 syscalls in the loop, 1 truncations"]),
    Spec::c("syscall_loop-nopie", c_link("syscall_loop", Link::NoPie))
        .args(Args::Fixed(&["1000"]))
        .stdout_has(&["1000 iterations"]),
    Spec::c("clock_loop-pie", CBuild::pie("clock_loop"))
        .args(Args::Fixed(&["2000"]))
        .stdout_has(&["2000 clock_gettime calls, none went backwards"]),
    Spec::c("buffered_mix-pie", CBuild::pie("buffered_mix"))
        .args(Args::Fixed(&["200"]))
        .stdout_has(&[
            "200 rounds: 200 getdents, 400 ready, 1600 bytes received, 200 wakes, 200 times, 200 ELF headers",
        ]),
    Spec::c("getpid_signals-pie", CBuild::pie("getpid_signals"))
        .stdout_has(&["getpid right every time across 100 signals"]),
    Spec::c("buffered_more-pie", CBuild::pie("buffered_more"))
        .args(Args::Fixed(&["200"]))
        .stdout_has(&["200 rounds of identity, permission and file-system calls"]),
    Spec::c("restart_frames-pie", CBuild::pie("restart_frames"))
        .stdout_has(&["read restarted across 3 handlers; 0 anonymous frames"]),
    Spec::c("masked_waits-pie", CBuild::pie("masked_waits")).stdout_has(&[
        "ppoll: EINTR after 1 handled, SIGUSR1 blocked again: 1",
        "pselect: EINTR after 2 handled, SIGUSR1 blocked again: 1",
        "epoll_pwait: EINTR after 3 handled, SIGUSR1 blocked again: 1",
    ]),
    Spec::c("handler_redirect-pie", CBuild::pie("handler_redirect")).stdout_has(&[
        "30 escapes; 1200 handler syscalls; 0 anonymous frames; 0 interrupted ips outside objects",
    ]),
    Spec::c("mmap_file-pie", CBuild::pie("mmap_file"))
        .args(Args::WorkDir)
        .stdout_has(&["pread reads: SECOND page"])
        .differs(),
    Spec::c("epoll_eventfd-pie", CBuild::pie("epoll_eventfd")).stdout_has(&["eventfd value 7"]),
    Spec::c("poll_pipe-pie", CBuild::pie("poll_pipe")).stdout_has(&["read ping"]),
    Spec::c("socket_loopback-pie", CBuild::pie("socket_loopback"))
        .stdout_has(&[
            "server received: hello server",
            "client received: hello client",
        ])
        .differs(),
    Spec::c("timerfd-pie", CBuild::pie("timerfd")).stdout_has(&["timerfd fired"]),
    Spec {
        sleeps: Some(Duration::from_millis(500)),
        ..Spec::c("sleep_nanosleep-pie", CBuild::pie("sleep_nanosleep")).differs()
    },
    Spec::c("dup_fcntl-pie", CBuild::pie("dup_fcntl"))
        .stdout_has(&["via dup\nvia dup2\nvia F_DUPFD_CLOEXEC\n"]),
    Spec::c("readv_writev-pie", CBuild::pie("readv_writev"))
        .args(Args::WorkDir)
        .stdout_has(&[
            "writev to stdout",
            "readv split: [writ] [ev to] [ stdout\n]",
        ])
        .differs(),
    Spec::c("statx-pie", CBuild::pie("statx"))
        .args(Args::WorkDir)
        .stdout_has(&["statx size="])
        .differs(),
    Spec::c("fork_wait-pie", CBuild::pie("fork_wait"))
        .stdout_has(&[
            "a refused clone failed with EINVAL",
            "says hi\"; child",
            "exited with 7",
        ])
        .differs(),
    Spec::c("ioctl_fionread-pie", CBuild::pie("ioctl_fionread"))
        .stdout_has(&["FIONREAD: 5 bytes", "stdout is not a terminal"]),
    Spec::c("sched_limits-pie", CBuild::pie("sched_limits")).stdout_has(&["sched_getaffinity:"]),
    Spec::c("flock_mkdir-pie", CBuild::pie("flock_mkdir"))
        .args(Args::WorkDir)
        .stdout_has(&["shared locks coexist"])
        .differs(),
    Spec::c("condvar-pie", CBuild::pie("condvar")).stdout_has(&["consumed 2000 items"]),
    Spec::c("exit_live_threads-pie", CBuild::pie("exit_live_threads"))
        .stdout_has(&["3 threads still running"]),
    Spec::c("memory_ops-pie", CBuild::pie("memory_ops")).stdout_has(&["mremap kept contents"]),
    // A daemon outlives the program: the recording ends with the program.
    Spec::c("leaky_daemon-pie", CBuild::pie("leaky_daemon"))
        .stdout_has(&["left a daemon running"]),
    Spec::c("exit_code-pie", CBuild::pie("exit_code"))
        .code(3)
        .stderr_has(&["exit_code: stderr line"]),
    Spec::c("abort_signal-pie", CBuild::pie("abort_signal"))
        .code(128 + 6)
        .stderr_has(&["abort_signal: stderr line"]),
    // Process trees, signals and asynchronous events (issue 4).
    Spec::c("fork_exec_pipes-pie", CBuild::pie("fork_exec_pipes"))
        .stdout_has(&[
            "sh -c wrote: shell pid ",
            "echo wrote: hello from echo",
            "posix_spawn wrote: posix_spawn says hi",
            "killed by signal 15",
            "exited with 127",
        ])
        .differs(),
    Spec::c("spawn_tree-pie", CBuild::pie("spawn_tree"))
        .stdout_has(&[
            "exited with 15 (grandchild exit + 10)",
            "leader handled SIGUSR1",
            "no children left",
        ])
        .differs(),
    Spec::c(
        "timer_compute_segv_altstack-pie",
        CBuild::pie("timer_compute_segv_altstack"),
    )
    .stdout_has(&[
        "checksum 1ee4fbbf5d832484",
        "SIGSEGV recovered 3 times with siglongjmp",
        "every handler ran on the alternate stack",
    ]),
    Spec::c(
        "timer_compute_segv_altstack-static",
        c_link("timer_compute_segv_altstack", Link::Static),
    )
    .stdout_has(&["SIGSEGV recovered 3 times"]),
    Spec::c("spin_wait_threads-pie", CBuild::pie("spin_wait_threads"))
        .stdout_has(&["6 handoffs each way, sum 37324"]),
    Spec::c("racy_threads_many-pie", CBuild::pie("racy_threads_many"))
        .stdout_has(&["final counter "]),
    Spec::c(
        "signal_during_syscall-pie",
        CBuild::pie("signal_during_syscall"),
    )
    .stdout_has(&[
        "reader: read 5 bytes after the signals",
        "sleeper: nanosleep returned EINTR",
        "main: SIGALRM arrived during read",
        "6 signals handled",
    ])
    .differs(),
    Spec::c(
        "synchronous_signals-pie",
        CBuild::pie("synchronous_signals"),
    )
    .args(Args::WorkDir)
    .stdout_has(&[
        "caught Illegal instruction",
        "caught Floating point exception",
        "caught Trace/breakpoint trap",
        "caught Bus error",
        "child killed by Floating point exception",
    ]),
    Spec::c("sigsegv_recovery-pie", CBuild::pie("sigsegv_recovery"))
        .stdout_has(&["last page reads 0 after 4 faults"]),
    Spec {
        sleeps: Some(Duration::from_millis(1000)),
        ..Spec::c("alarm_pause-pie", CBuild::pie("alarm_pause")).stdout_has(&[
            "sigsuspend returned after SIGALRM (2 alarms)",
            "pending SIGALRM delivered on unblock (3 alarms)",
        ])
    },
    Spec::c("signal_storm-pie", CBuild::pie("signal_storm"))
        .stdout_has(&["SIGRTMIN: 2000 delivered, sum of values 2001000"])
        .differs(),
    // Ends in exit(3) from a thread: no EXIT-SUCCESS.
    Spec {
        success_marker: false,
        ..Spec::c(
            "exit_group_live_threads_signal-pie",
            CBuild::pie("exit_group_live_threads_signal"),
        )
        .code(3)
        .stdout_has(&["exiter: calling exit(3)", "atexit handler ran"])
    },
];

const fn rust(name: &'static str, source: Source) -> Spec {
    Spec::new(name, source)
}

const fn rust_test(name: &'static str, test: &'static str, passes: bool) -> Spec {
    Spec {
        code: if passes { 0 } else { 101 },
        success_marker: false,
        stdout_has: if passes {
            &["test result: ok. 1 passed"]
        } else {
            &["test result: FAILED. 0 passed; 1 failed"]
        },
        ..rust(name, Source::RustTest(test))
    }
}

/// The Rust fixtures: programs and real libtest tests.
pub const RUST_SPECS: &[Spec] = &[
    rust("rust::rust_threads", Source::RustBin("rust_threads"))
        .stdout_has(&["worker 3 sum"])
        .stderr_has(&["rust_threads: done"])
        .differs(),
    rust("rust::rust_fs", Source::RustBin("rust_fs"))
        .args(Args::WorkDir)
        .stdout_has(&["listing [\"a.txt\", \"b.tmp\"]"])
        .differs()
        .leaves_files(),
    rust(
        "rust::rust_time_random",
        Source::RustBin("rust_time_random"),
    )
    .stdout_has(&["RandomState hash"])
    .differs(),
    rust(
        "rust::rust_raw_syscalls",
        Source::RustBin("rust_raw_syscalls"),
    )
    .args(Args::Fixed(&["1000"]))
    .stdout_has(&["1000 raw getpid, 10000 bytes written raw"]),
    rust_test("rust_test::trivial", "tests::trivial", true),
    rust_test(
        "rust_test::passes_with_threads",
        "tests::passes_with_threads",
        true,
    ),
    rust_test(
        "rust_test::passes_with_time_and_randomness",
        "tests::passes_with_time_and_randomness",
        true,
    )
    .differs(),
    rust_test(
        "rust_test::fails_assert_eq",
        "tests::fails_assert_eq",
        false,
    )
    .stderr_has(&["assertion `left == right` failed: sum_of_squares(3) is not 15"])
    .differs(),
    rust_test(
        "rust_test::panics_in_spawned_thread",
        "tests::panics_in_spawned_thread",
        false,
    )
    .stderr_has(&["boom in a spawned thread"]),
];

/// A mode's trial body: (trial name, fixture) -> outcome.
type TrialBody = fn(&str, &Spec) -> Result<(), Failed>;

/// All recorder trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    let gcc = build::gcc_missing();
    if let Some(why) = gcc {
        eprintln!("recorder trials: C fixture trials are ignored: {why}");
    }
    let cannot_record = run::recording_unavailable();
    if let Some(why) = cannot_record {
        eprintln!("recorder trials: recording trials are ignored: {why}");
    }
    for spec in C_SPECS.iter().chain(RUST_SPECS) {
        let needs_gcc = matches!(spec.source, Source::C(_));
        let no_gcc = needs_gcc && gcc.is_some();
        let s = *spec;
        let modes: [(&str, TrialBody); 2] = [("native", native), ("record_replay", record_replay)];
        for (mode, body) in modes {
            let name = format!("recorder::{}::{mode}", qualified(spec));
            let trial_name = name.clone();
            let ignored = no_gcc || (mode != "native" && cannot_record.is_some());
            trials
                .push(Trial::test(name, move || body(&trial_name, &s)).with_ignored_flag(ignored));
        }
    }
    trials.extend(crate::recorder_faults::trials());
    trials
}

fn qualified(spec: &Spec) -> String {
    match spec.source {
        Source::C(_) => format!("c::{}", spec.name),
        _ => spec.name.to_string(),
    }
}

/// The executable of a fixture, built if needed.
pub fn executable(source: Source) -> Result<(PathBuf, Vec<OsString>), Failed> {
    Ok(match source {
        Source::C(b) => (build::c_fixture(b)?, Vec::new()),
        Source::RustBin(name) => {
            let progs = build::rust_programs()?;
            let exe = progs
                .bins
                .get(name)
                .ok_or_else(|| format!("fixtures/programs has no binary `{name}`"))?;
            (exe.clone(), Vec::new())
        }
        Source::RustTest(test) => {
            let progs = build::rust_programs()?;
            let args = ["--exact", test, "--nocapture"]
                .map(OsString::from)
                .to_vec();
            (progs.lib_tests.clone(), args)
        }
    })
}

/// The invocation of `spec` with `work` as its work directory.
pub fn invocation(spec: &Spec, work: PathBuf) -> Result<Invocation, Failed> {
    let (exe, mut args) = executable(spec.source)?;
    match spec.args {
        Args::None => {}
        Args::WorkDir => args.push(work.clone().into_os_string()),
        Args::Fixed(fixed) => args.extend(fixed.iter().map(OsString::from)),
    }
    Ok(Invocation { exe, args, work })
}

/// Checks a run (native or recorded) against the spec.
fn check_shape(spec: &Spec, r: &run::Run) -> Result<(), Failed> {
    r.expect_code(spec.code)?;
    let stdout = r.stdout_text();
    let stderr = r.stderr_text();
    if spec.success_marker && stdout.lines().last() != Some("EXIT-SUCCESS") {
        return Err(format!("stdout's last line is not EXIT-SUCCESS\n{}", r.describe()).into());
    }
    if stderr.contains("FAILED: ") {
        return Err(format!("a fixture check failed\n{}", r.describe()).into());
    }
    for want in spec.stdout_has {
        if !stdout.contains(want) {
            return Err(format!("stdout lacks {want:?}\n{}", r.describe()).into());
        }
    }
    for want in spec.stderr_has {
        if !stderr.contains(want) {
            return Err(format!("stderr lacks {want:?}\n{}", r.describe()).into());
        }
    }
    Ok(())
}

/// `native`: the fixture alone meets its spec; nondeterministic ones differ
/// between two runs.
pub fn native(trial: &str, spec: &Spec) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(spec, dir.sub("work")?)?;
    let first = inv.native()?;
    check_shape(spec, &first)?;
    if let Some(min) = spec.sleeps {
        if first.elapsed < min {
            return Err(format!("expected to take at least {min:?}\n{}", first.describe()).into());
        }
    }
    if spec.differs {
        let second = inv.native()?;
        check_shape(spec, &second)?;
        if first.stdout == second.stdout {
            return Err(format!(
                "two native runs printed the same stdout, but this fixture must print values \
                 that differ between runs:\n{}",
                first.stdout_text()
            )
            .into());
        }
    }
    dir.finish();
    Ok(())
}

/// `info --json TRACE` says `verified: true`: the verification replay that
/// `record` runs by default found every event again.
pub fn expect_verified(trace: &std::path::Path) -> Result<(), Failed> {
    let json = run::info_value(trace)?;
    if json["verified"] != true {
        return Err(format!(
            "the trace is not verified: verified = {}, verification_failure = {}",
            json["verified"], json["verification_failure"]
        )
        .into());
    }
    Ok(())
}

/// The recording `rec` of `inv` in `trace` verified, and `trace` replays
/// with exit 0 and the recorded stdout, byte for byte.
pub fn expect_replays_alike(
    inv: &run::Invocation,
    trace: &std::path::Path,
    rec: &run::Run,
) -> Result<(), Failed> {
    expect_verified(trace)?;
    let rep = inv.replay(trace)?;
    rep.expect_code(0)?;
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)
}

/// `inv` run natively, then recorded into `trace` (its work directory
/// emptied in between): both exit 0 and print the same stdout, byte for
/// byte. The recording, for the caller's further checks.
pub fn recorded_as_native(
    inv: &run::Invocation,
    trace: &std::path::Path,
) -> Result<run::Run, Failed> {
    let native = inv.native()?;
    native.expect_code(0)?;
    run::empty_dir(&inv.work)?;
    let rec = inv.record(trace)?;
    rec.expect_code(0)?;
    run::expect_same_bytes_of(
        "stdout",
        ("native", &native.stdout),
        ("recorded", &rec.stdout),
    )?;
    Ok(rec)
}

/// `record_replay`: record, then replay with identical output and status,
/// no side effects and no sleeping.
pub fn record_replay(trial: &str, spec: &Spec) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let work = dir.sub("work")?;
    let trace = dir.path.join("trace");
    let inv = invocation(spec, work.clone())?;

    let rec = inv.record(&trace)?;
    check_shape(spec, &rec)
        .map_err(|e| format!("while recording: {}", e.message().unwrap_or("")))?;
    if !trace.join("header.json").is_file() {
        return Err(format!(
            "record left no {}/header.json\n{}",
            trace.display(),
            rec.describe()
        )
        .into());
    }
    if let Some(min) = spec.sleeps {
        if rec.elapsed < min {
            return Err(format!(
                "recording took {:?}, less than the program sleeps ({min:?})",
                rec.elapsed
            )
            .into());
        }
    }

    // Replay must not need, create or change any file the program touched.
    let left = run::snapshot(&work)?;
    if spec.leaves_files && left.len() < 2 {
        return Err(format!("the recorded program left no file in {}", work.display()).into());
    }
    run::empty_dir(&work)?;
    let before = run::snapshot(&work)?;

    let rep = inv.replay(&trace)?;
    let after = run::snapshot(&work)?;
    if rep.code() != rec.code() {
        return Err(format!(
            "replay exited with {}, the recording with {}\n{}",
            rep.code(),
            rec.code(),
            rep.describe()
        )
        .into());
    }
    if before != after {
        return Err(format!(
            "replay changed the work directory {} (it must have no side effects):\nbefore: {before:?}\nafter: {after:?}",
            work.display()
        )
        .into());
    }
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    run::expect_same_bytes("stderr", &rec.stderr, &rep.stderr)?;
    expect_verified(&trace)?;
    if let Some(slept) = spec.sleeps {
        if rep.elapsed >= slept / 2 {
            return Err(format!(
                "replay took {:?}: it must not sleep through the recorded {slept:?} of sleeps (limit {:?})",
                rep.elapsed,
                slept / 2
            )
            .into());
        }
    }
    dir.finish();
    Ok(())
}
