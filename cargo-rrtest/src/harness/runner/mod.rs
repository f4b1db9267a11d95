//! Running tests: a pool of `jobs` worker threads, each running one test at a
//! time, every attempt in its own process.
//!
//! An attempt is first described as a value, [`AttemptSpec`] (program, args,
//! cwd, env, attempt number, and the trace directory when recorded), and
//! turned into a process by one function, [`AttemptSpec::to_command`], which
//! wraps a recorded attempt as `<recorder> record --no-verify --disposable -o
//! TRACE -- <bin> <args>` (the recorder passes the test's output through).
//!
//! A recorded attempt is checked afterwards ([`super::record`]): a recorder
//! failure (exit 105, or no finished trace) makes it a `recorder_error`, and
//! the same attempt runs again without recording so its verdict is known.
//! Traces the keep policy does not keep are deleted as soon as the attempt
//! ends (`--disposable` made them cheap: no file content hashed or copied,
//! nothing fsynced); kept ones are made self-contained and durable at once
//! ([`record::keep_trace`]), then verified and packed by the same worker threads, which
//! take verification jobs before new tests, so verification shares the job
//! limit and overlaps the rest of the run.
//!
//! Each attempt runs with null stdin, in its own process group, with stdout and
//! stderr on pipes. The worker waits with poll(2) on the pipes (so full pipes
//! never block the test), checking the child with `waitid(WNOWAIT)` and the
//! deadline at each wake-up; at the timeout or on cancellation it kills the
//! whole process group with SIGKILL (a recorded attempt at its timeout first
//! gets SIGTERM to the recorder, which kills the test and closes the trace,
//! and [`TERM_GRACE`] to exit). After the child exits, any processes left
//! in its group are killed before the child is reaped (while it is a zombie
//! its pid, which is the group id, cannot be reused).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::list::TestCase;
use super::panic::parse_first_panic;
use super::record::{self, Recording};
use super::server::{self, RecorderServer, ServerSlot};
use crate::recorder::server::Reply;
use rrtest_report::{AttemptOutcome, Outcome};
use rrtest_trace as trace;

/// How much of each stream is kept in memory per attempt (the end of it).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// How long to keep reading a test's pipes after it exited, if a process it
/// left behind holds them open.
const PIPE_GRACE: Duration = Duration::from_millis(100);

/// Longest sleep between checks of the deadline and the cancel flag.
const MAX_TICK: Duration = Duration::from_millis(100);

/// How long a recorder gets to close the trace after SIGTERM at a timeout
/// before its process group is killed.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// The least time a verification replay gets (more for slow tests: 20 times
/// the recorded attempt).
const VERIFY_MIN_LIMIT: Duration = Duration::from_secs(60);

/// How the runner runs tests.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Worker threads (tests run at once).
    pub jobs: usize,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Extra attempts for a failed or timed-out test.
    pub retries: u32,
    /// How to record attempts; None runs them natively (`--no-record`).
    pub recording: Option<Arc<Recording>>,
    /// Inherited variables removed from tests' environments (credentials).
    pub env_remove: Vec<OsString>,
    /// Paths recorded tests see as empty (`--hide-path`; absolute).
    pub hide_paths: Vec<PathBuf>,
}

/// Where and with what a recorded attempt is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// The executable with the `record` verb.
    pub recorder: PathBuf,
    /// The trace directory to write.
    pub trace_dir: PathBuf,
    /// Record with the syscall buffer.
    pub syscallbuf: bool,
    /// The CPU to record on.
    pub cpu: Option<usize>,
    /// Send the attempt to the worker's recorder server (`super::server`)
    /// rather than start `record` for it.
    pub serve: bool,
    /// Ask the server to write no trace if the test passes (its trace
    /// would be deleted anyway).
    pub discard_if_passed: bool,
    /// Paths the test is to see as empty (`--hide-path`).
    pub hide_paths: Vec<PathBuf>,
}

/// One attempt of one test, as a value: what to execute, where, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSpec {
    /// The test binary.
    pub program: PathBuf,
    /// `--exact NAME --nocapture` (and `--include-ignored` for ignored tests).
    pub args: Vec<OsString>,
    /// The package directory.
    pub cwd: PathBuf,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Attempts allowed in all (retries + 1).
    pub total_attempts: u32,
    /// Inherited variables to remove from the environment.
    pub env_remove: Vec<OsString>,
    /// Record the attempt, or None to run it natively.
    pub record: Option<RecordSpec>,
}

impl AttemptSpec {
    /// The spec of attempt `attempt` of `total_attempts` of `test`.
    pub fn new(test: &TestCase, attempt: u32, total_attempts: u32) -> Self {
        let mut args: Vec<OsString> = vec![
            "--exact".into(),
            test.name.clone().into(),
            "--nocapture".into(),
        ];
        if test.ignored {
            args.push("--include-ignored".into());
        }
        let mut env: Vec<(OsString, OsString)> = test
            .binary
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.clone()))
            .collect();
        env.push(("RRTEST_ATTEMPT".into(), attempt.to_string().into()));
        env.push((
            "RRTEST_TOTAL_ATTEMPTS".into(),
            total_attempts.to_string().into(),
        ));
        AttemptSpec {
            program: test.binary.path.clone(),
            args,
            cwd: test.binary.manifest_dir.clone(),
            env,
            attempt,
            total_attempts,
            env_remove: Vec::new(),
            record: None,
        }
    }

    /// The process for this attempt: the single place where an attempt becomes a
    /// command, recorded (`<recorder> record --no-verify --disposable -o TRACE
    /// -- <bin> <args>`) or not.
    pub fn to_command(&self) -> Command {
        let mut cmd = match &self.record {
            None => {
                let mut cmd = Command::new(&self.program);
                cmd.args(&self.args);
                cmd
            }
            Some(r) => {
                let mut cmd = Command::new(&r.recorder);
                // The environment is filtered here already (`env_remove`);
                // the recorder writes down what was removed.
                cmd.args(["record", "--no-verify", "--disposable", "--keep-env"])
                    .args(
                        self.env_remove
                            .iter()
                            .flat_map(|n| ["--env-removed".into(), n.clone()]),
                    )
                    .args(
                        r.hide_paths
                            .iter()
                            .flat_map(|p| ["--hide-path".into(), p.clone().into_os_string()]),
                    )
                    .args((!r.syscallbuf).then_some("--no-syscallbuf"))
                    .args(r.cpu.map(|c| format!("--cpu={c}")))
                    .arg("-o")
                    .arg(&r.trace_dir)
                    .arg("--")
                    .arg(&self.program)
                    .args(&self.args);
                cmd
            }
        };
        for name in &self.env_remove {
            cmd.env_remove(name);
        }
        cmd.current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }
}

/// The end of a stream: at most [`CAPTURE_LIMIT`] bytes, and how many were cut.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The kept bytes.
    pub bytes: Vec<u8>,
    /// Bytes dropped from the front.
    pub omitted: u64,
}

impl Captured {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > 2 * CAPTURE_LIMIT {
            let cut = self.bytes.len() - CAPTURE_LIMIT;
            self.bytes.drain(..cut);
            self.omitted += cut as u64;
        }
    }

    /// The kept bytes as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// 1-based attempt number.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Wall time.
    pub duration: Duration,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The killing signal's name, if killed.
    pub signal: Option<String>,
    /// Its stdout.
    pub stdout: Captured,
    /// Its stderr.
    pub stderr: Captured,
    /// The first panic it printed.
    pub panic: Option<rrtest_report::Panic>,
    /// It was stopped because the run was cancelled (Ctrl-C).
    pub cancelled: bool,
    /// It ran under the recorder.
    pub recorded: bool,
    /// Its kept trace (None when not recorded or not kept).
    pub trace: Option<PathBuf>,
    /// Why the recorder failed, for a `recorder_error` attempt.
    pub recorder_error: Option<String>,
    /// Verification and packing of the kept trace (filled after the test).
    pub checked: Option<record::Checked>,
}

/// A test's result: its final outcome and every attempt.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The test.
    pub test: TestCase,
    /// The final outcome.
    pub outcome: Outcome,
    /// The attempts, in order.
    pub attempts: Vec<AttemptResult>,
}

impl TestResult {
    /// Whether the run was cancelled while this test ran.
    pub fn cancelled(&self) -> bool {
        self.attempts.iter().any(|a| a.cancelled)
    }

    /// Total wall time of the attempts.
    pub fn duration(&self) -> Duration {
        self.attempts.iter().map(|a| a.duration).sum()
    }
}

/// Progress events, delivered on the thread that called [`run_tests`].
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A test started.
    Started {
        /// The test.
        test: &'a TestCase,
    },
    /// An attempt failed and the test will be retried.
    Retrying {
        /// The test.
        test: &'a TestCase,
        /// The failed attempt.
        attempt: &'a AttemptResult,
        /// Attempts allowed in all.
        total_attempts: u32,
    },
    /// A test finished (all its attempts done).
    Finished {
        /// Its result.
        result: &'a TestResult,
    },
}

enum WorkerMessage {
    Started(usize),
    Retrying(usize, Box<AttemptResult>),
    Finished(usize, TestResult),
    Checked(usize, usize, record::Checked),
}

/// A kept trace waiting for verification: test index, attempt index, dir,
/// archive, time limit.
struct VerifyJob {
    test: usize,
    attempt: usize,
    dir: PathBuf,
    archive: PathBuf,
    limit: Duration,
}

/// The work queue shared by the workers.
struct Queue {
    next_test: usize,
    running: usize,
    verify: VecDeque<VerifyJob>,
}

enum Work {
    Test(usize),
    Verify(VerifyJob),
}

/// Runs `tests` and returns their results in the same order (tests not started
/// because the run was cancelled are missing). `on_event` sees progress.
/// Returns when every test has run and every kept trace is verified and packed.
pub fn run_tests(
    tests: &[TestCase],
    config: &RunnerConfig,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    let total_attempts = config.retries.saturating_add(1);
    let (tx, rx) = mpsc::channel::<WorkerMessage>();
    let mut results: Vec<Option<TestResult>> = vec![None; tests.len()];
    let mut checks: Vec<(usize, usize, record::Checked)> = Vec::new();
    let queue = Mutex::new(Queue {
        next_test: 0,
        running: 0,
        verify: VecDeque::new(),
    });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        let cpus = allowed_cpus();
        for worker in 0..config.jobs.clamp(1, tests.len().max(1)) {
            // Each worker records on its own CPU (round robin): a recording
            // runs on one CPU, and two on one CPU would take turns.
            let cpu = (!cpus.is_empty()).then(|| cpus[worker % cpus.len()]);
            let tx = tx.clone();
            let (queue, wake) = (&queue, &wake);
            scope.spawn(move || {
                let mut servers = ServerSlot::default();
                loop {
                    let Some(work) = next_work(queue, wake, tests.len(), cancel) else {
                        return;
                    };
                    match work {
                        Work::Verify(job) => {
                            let Some(rec) = &config.recording else {
                                continue;
                            };
                            let checked = record::verify_and_pack(
                                &rec.verifier,
                                &job.dir,
                                &job.archive,
                                job.limit,
                                cancel,
                            );
                            let _ = tx.send(WorkerMessage::Checked(job.test, job.attempt, checked));
                        }
                        Work::Test(i) => {
                            let test = &tests[i];
                            let _ = tx.send(WorkerMessage::Started(i));
                            let result = run_test(
                                test,
                                config,
                                cpu,
                                &mut servers,
                                total_attempts,
                                cancel,
                                |a| {
                                    let _ =
                                        tx.send(WorkerMessage::Retrying(i, Box::new(a.clone())));
                                },
                            );
                            let jobs = verify_jobs(i, &result, config);
                            let _ = tx.send(WorkerMessage::Finished(i, result));
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                            q.running -= 1;
                            q.verify.extend(jobs);
                            wake.notify_all();
                        }
                    }
                }
            });
        }
        drop(tx);
        for message in rx {
            match message {
                WorkerMessage::Started(i) => on_event(RunEvent::Started { test: &tests[i] }),
                WorkerMessage::Retrying(i, attempt) => on_event(RunEvent::Retrying {
                    test: &tests[i],
                    attempt: &attempt,
                    total_attempts,
                }),
                WorkerMessage::Finished(i, result) => {
                    on_event(RunEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
                WorkerMessage::Checked(i, a, checked) => checks.push((i, a, checked)),
            }
        }
    });
    for (i, a, checked) in checks {
        if let Some(attempt) = results[i].as_mut().and_then(|r| r.attempts.get_mut(a)) {
            attempt.checked = Some(checked);
        }
    }
    results.into_iter().flatten().collect()
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// The next piece of work: a verification if one waits, else the next test;
/// None when all is done (or cancelled).
fn next_work(
    queue: &Mutex<Queue>,
    wake: &Condvar,
    tests: usize,
    cancel: &AtomicBool,
) -> Option<Work> {
    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if cancel.load(Ordering::Relaxed) {
            wake.notify_all();
            return None;
        }
        if let Some(job) = q.verify.pop_front() {
            return Some(Work::Verify(job));
        }
        if q.next_test < tests {
            q.next_test += 1;
            q.running += 1;
            return Some(Work::Test(q.next_test - 1));
        }
        if q.running == 0 {
            wake.notify_all();
            return None;
        }
        // Tests still running may queue verifications; the timeout rechecks
        // the cancel flag.
        q = wake
            .wait_timeout(q, MAX_TICK)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The verification jobs for a finished test's kept traces.
fn verify_jobs(test: usize, result: &TestResult, config: &RunnerConfig) -> Vec<VerifyJob> {
    let Some(rec) = &config.recording else {
        return Vec::new();
    };
    if result.cancelled() {
        return Vec::new();
    }
    result
        .attempts
        .iter()
        .enumerate()
        .filter(|(_, attempt)| attempt.checked.is_none())
        .filter_map(|(a, attempt)| {
            let dir = attempt.trace.clone()?;
            Some(VerifyJob {
                test,
                attempt: a,
                dir,
                archive: rec.attempt_archive(
                    &result.test.binary.binary_id,
                    &result.test.name,
                    attempt.attempt,
                ),
                limit: VERIFY_MIN_LIMIT.max(attempt.duration * 20),
            })
        })
        .collect()
}

/// Runs every attempt of one test.
fn run_test(
    test: &TestCase,
    config: &RunnerConfig,
    cpu: Option<usize>,
    servers: &mut ServerSlot,
    total_attempts: u32,
    cancel: &AtomicBool,
    mut on_retry: impl FnMut(&AttemptResult),
) -> TestResult {
    let mut attempts: Vec<AttemptResult> = Vec::new();
    let binary_id = &test.binary.binary_id;
    let mut recording = config.recording.as_deref();
    if let Some(rec) = recording {
        if let Err(e) = rec.prepare_test(binary_id, &test.name) {
            eprintln!(
                "cargo-rrtest: warning: cannot prepare the trace directory of {binary_id} {}: {e}; running it without recording",
                test.name
            );
            recording = None;
        }
    }
    for n in 1..=total_attempts {
        let mut spec = AttemptSpec::new(test, n, total_attempts);
        spec.env_remove = config.env_remove.clone();
        spec.record = recording.map(|rec| RecordSpec {
            recorder: rec.recorder.clone(),
            trace_dir: rec.attempt_trace(binary_id, &test.name, n),
            syscallbuf: rec.syscallbuf,
            cpu,
            serve: rec.serve,
            discard_if_passed: !rec.keep.keeps(true),
            hide_paths: config.hide_paths.clone(),
        });
        let mut result = run_attempt_with(&spec, config.timeout, cancel, Some(&mut *servers));
        if result.outcome == AttemptOutcome::RecorderError && !result.cancelled {
            // The user still learns the test's verdict: the same attempt, natively.
            spec.record = None;
            let native = run_attempt(&spec, config.timeout, cancel);
            attempts.push(result);
            result = native;
        }
        if let (Some(rec), Some(dir)) = (recording, &result.trace) {
            if result.cancelled || !rec.keep.keeps(result.outcome.is_pass()) {
                let _ = record::remove_if_present(dir);
                result.trace = None;
            } else if let Err(why) = record::keep_trace(dir) {
                // Not replayable as it is: say why instead of verifying it.
                result.checked = Some(record::Checked {
                    verified: Some(false),
                    failure: Some(why),
                    archive: None,
                });
            }
        }
        let done = result.outcome.is_pass() || result.cancelled || n == total_attempts;
        if !done {
            on_retry(&result);
        }
        attempts.push(result);
        if done {
            break;
        }
    }
    if let Some(rec) = recording {
        // An empty directory is no kept trace (remove_dir leaves non-empty ones).
        let dir = rec.test_traces(binary_id, &test.name);
        if std::fs::remove_dir(&dir).is_ok() {
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
    let last = attempts.last().expect("at least one attempt").outcome;
    let outcome = if last == AttemptOutcome::Interrupted {
        Outcome::Interrupted
    } else if attempts
        .iter()
        .any(|a| a.outcome == AttemptOutcome::RecorderError)
    {
        Outcome::RecorderError
    } else {
        let runs = attempts.len();
        match last {
            AttemptOutcome::Passed if runs == 1 => Outcome::Passed,
            AttemptOutcome::Passed => Outcome::Flaky,
            AttemptOutcome::Failed => Outcome::Failed,
            AttemptOutcome::TimedOut => Outcome::TimedOut,
            AttemptOutcome::RecorderError => Outcome::RecorderError,
            AttemptOutcome::Interrupted => Outcome::Interrupted,
        }
    };
    TestResult {
        test: test.clone(),
        outcome,
        attempts,
    }
}

/// Runs one attempt to completion, timeout, or cancellation. A recorded
/// attempt takes its exit status from the trace's header; a recorder failure
/// makes it [`AttemptOutcome::RecorderError`] (the partial trace removed).
pub fn run_attempt(
    spec: &AttemptSpec,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
) -> AttemptResult {
    run_attempt_with(spec, timeout, cancel, None)
}

/// [`run_attempt`], sending a recorded attempt whose spec says `serve` to
/// the recorder server in `servers` (started if need be).
pub fn run_attempt_with(
    spec: &AttemptSpec,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
    servers: Option<&mut ServerSlot>,
) -> AttemptResult {
    let start = Instant::now();
    let mut result = AttemptResult {
        attempt: spec.attempt,
        outcome: AttemptOutcome::Failed,
        duration: Duration::ZERO,
        exit_code: None,
        signal: None,
        stdout: Captured::default(),
        stderr: Captured::default(),
        panic: None,
        cancelled: false,
        recorded: spec.record.is_some(),
        trace: None,
        recorder_error: None,
        checked: None,
    };
    if let Some(r) = &spec.record {
        // A trace directory left by an earlier run must not be mistaken for this one.
        let _ = record::remove_if_present(&r.trace_dir);
    }
    let deadline = timeout.map(|t| start + t);
    let served = match (&spec.record, servers) {
        (Some(r), Some(slot)) if r.serve => Some((r, slot)),
        _ => None,
    };
    let status =
        match served.map(|(r, slot)| run_served(spec, r, slot, deadline, cancel, &mut result)) {
            Some(Some(status)) => status,
            // No server (or the request could not go to it): a process of its own.
            _ => match run_process(spec, deadline, cancel, &mut result) {
                Some(status) => status,
                None => {
                    result.duration = start.elapsed();
                    return result;
                }
            },
        };
    result.duration = start.elapsed();
    let (status, killed) = status;
    let discarded = matches!(status, Ok(Ended::Discarded));
    let passed = match status {
        Ok(Ended::Discarded) => {
            result.exit_code = Some(0);
            true
        }
        Ok(Ended::Code(code)) => {
            result.exit_code = Some(code);
            code == 0
        }
        Ok(Ended::Signal(sig)) => {
            result.signal = Some(signal_name(sig));
            false
        }
        // A recorder server that died: `recorder_error` says so (not the
        // test's stderr).
        Err(_) if result.recorder_error.is_some() => false,
        Err(e) => {
            result
                .stderr
                .push(format!("cargo-rrtest: waiting for the test: {e}\n").as_bytes());
            false
        }
    };
    result.outcome = if killed == Some(Kill::Timeout) {
        AttemptOutcome::TimedOut
    } else if passed {
        AttemptOutcome::Passed
    } else {
        AttemptOutcome::Failed
    };
    result.cancelled = killed == Some(Kill::Cancel);
    if result.cancelled {
        result.outcome = AttemptOutcome::Interrupted;
    }
    if let (Some(r), false) = (&spec.record, discarded) {
        settle_recording(r, killed, &mut result);
    }
    result.panic = parse_first_panic(&result.stderr.text());
    result
}

/// How an attempt's process (or recorder server request) ended.
enum Ended {
    Code(i32),
    Signal(i32),
    /// The recorded program exited with status 0 and, as asked, the
    /// recorder server wrote no trace.
    Discarded,
}

/// What [`run_process`] and [`run_served`] return: how it ended (or why we
/// cannot tell) and whether we killed it.
type Finished = (std::io::Result<Ended>, Option<Kill>);

/// Runs the attempt as a process of its own; None when it could not start
/// (`result` says why).
fn run_process(
    spec: &AttemptSpec,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    result: &mut AttemptResult,
) -> Option<Finished> {
    let mut child = match rrtest_sys::spawn::with_empty_signal_mask(&mut spec.to_command()).spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let program = spec.record.as_ref().map_or(&spec.program, |r| &r.recorder);
            let message = format!("could not start {}: {e}", program.display());
            result
                .stderr
                .push(format!("cargo-rrtest: {message}\n").as_bytes());
            if spec.record.is_some() {
                result.outcome = AttemptOutcome::RecorderError;
                result.recorder_error = Some(message);
            }
            return None;
        }
    };
    let out = child.stdout.take().map(|p| File::from(OwnedFd::from(p)));
    let err = child.stderr.take().map(|p| File::from(OwnedFd::from(p)));
    let pid = Pid::from_raw(child.id() as i32);
    let pidfd = rrtest_sys::fdpass::pidfd_open(pid.as_raw()).ok();
    let killed = watch(
        &mut Running::Process { pid, pidfd },
        out,
        err,
        deadline,
        cancel,
        spec.record.is_some(),
        result,
    );
    let status = child.wait().map(|status| match status.signal() {
        Some(sig) => Ended::Signal(sig),
        None => Ended::Code(status.code().unwrap_or(-1)),
    });
    Some((status, killed))
}

/// Sends the recorded attempt to the worker's recorder server; None when
/// no server can take it (then it runs as a process of its own).
fn run_served(
    spec: &AttemptSpec,
    r: &RecordSpec,
    slot: &mut ServerSlot,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    result: &mut AttemptResult,
) -> Option<Finished> {
    let server = slot.get(&r.recorder)?;
    let (out_r, out_w) = std::io::pipe().ok()?;
    let (err_r, err_w) = std::io::pipe().ok()?;
    let opts = crate::recorder::RecordOptions {
        program: spec.program.clone(),
        argv: std::iter::once(spec.program.clone().into_os_string())
            .chain(spec.args.iter().cloned())
            .collect(),
        env: server::resulting_env(&spec.env_remove, &spec.env),
        cwd: spec.cwd.clone(),
        trace_dir: r.trace_dir.clone(),
        syscallbuf: r.syscallbuf,
        cpu: r.cpu,
        discard_if_passed: r.discard_if_passed,
        // The protocol carries no such flag: a server always uses them.
        desched_events: true,
        env_removed: spec.env_remove.clone(),
        hide_paths: r.hide_paths.clone(),
    };
    match server.submit(&opts, out_w.as_fd(), err_w.as_fd()) {
        Ok(()) => {}
        // Too large for a message: a `record` process takes it.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return None,
        Err(e) => {
            tracing::warn!(error = %e, "the recorder server is gone");
            slot.discard(false);
            return None;
        }
    }
    // The server and the program hold the write ends now.
    drop((out_w, err_w));
    let mut running = Running::Served {
        server,
        reply: None,
    };
    let killed = watch(
        &mut running,
        Some(File::from(OwnedFd::from(out_r))),
        Some(File::from(OwnedFd::from(err_r))),
        deadline,
        cancel,
        true,
        result,
    );
    let Running::Served { reply, .. } = running else {
        unreachable!("built as Served above")
    };
    let reply =
        reply.unwrap_or_else(|| Err(std::io::Error::other("the recorder server did not answer")));
    let mut killed = killed;
    if reply.is_err() {
        // Killed by us (SIGKILL, at the end of a timeout's grace period or
        // on cancellation), or died on its own: then the attempt is a
        // recorder error, not a timeout, whatever the time.
        let status = server_status(slot);
        let by_us = killed.is_some() && status.is_none_or(|s| s.signal() == Some(libc::SIGKILL));
        if !by_us {
            let how = match status {
                Some(s) => match (s.code(), s.signal()) {
                    (Some(code), _) => format!("with exit status {code}"),
                    (_, Some(sig)) => format!("killed by {}", signal_name(sig)),
                    _ => format!("({s})"),
                },
                None => "(its status is unknown)".to_string(),
            };
            let said = record::stderr_reason(&result.stderr.text());
            result.recorder_error = Some(format!(
                "the recorder server exited during the attempt, {how}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ));
            killed = None;
        }
        slot.discard(by_us);
    }
    let status = reply
        .map(|r| {
            if r.discarded {
                Ended::Discarded
            } else {
                Ended::Code(r.code)
            }
        })
        .map_err(|e| match killed {
            // We killed it: say why, not that it "exited".
            Some(Kill::Timeout) => std::io::Error::other(format!(
                "the recorder did not end the recording within {} s of the timeout; its server was killed",
                TERM_GRACE.as_secs()
            )),
            _ => std::io::Error::new(e.kind(), format!("the recorder server: {e}")),
        });
    Some((status, killed))
}

/// How the worker's recorder server ended, if it did.
fn server_status(slot: &mut ServerSlot) -> Option<std::process::ExitStatus> {
    slot.current().and_then(RecorderServer::exit_status)
}

/// Decides what a recorded attempt's trace says: the test's own exit status
/// comes from the header; no finished trace (or recorder exit 105) is a
/// recorder error, except after a timeout or cancellation, where the trace
/// is just dropped.
fn settle_recording(r: &RecordSpec, killed: Option<Kill>, result: &mut AttemptResult) {
    let header = record::finished_outcome(&r.trace_dir);
    let failure = match header {
        // A test may exit 105 itself: then its finished trace says so.
        Ok(trace::Outcome::Exited { code })
            if i32::from(crate::errors::exit_codes::RECORDER_FAILED) == code =>
        {
            header
        }
        _ if record::is_recorder_failure(result.exit_code) => Err(format!(
            "the recorder failed (exit {}): {}",
            crate::errors::exit_codes::RECORDER_FAILED,
            record::stderr_reason(&result.stderr.text())
        )),
        _ => header,
    };
    match failure {
        Ok(trace::Outcome::Exited { code }) => {
            result.exit_code = Some(code);
            result.signal = None;
            result.trace = Some(r.trace_dir.clone());
        }
        Ok(trace::Outcome::Signaled { signo }) => {
            result.exit_code = None;
            result.signal = Some(signal_name(signo));
            result.trace = Some(r.trace_dir.clone());
        }
        Err(_) if killed.is_some() => {
            let _ = record::remove_if_present(&r.trace_dir);
        }
        Err(why) => {
            let why = if let Some(server) = result.recorder_error.take() {
                format!("{server} ({why})")
            } else if why.starts_with("the recorder failed") {
                why
            } else {
                let said = record::stderr_reason(&result.stderr.text());
                format!(
                    "{why} (recorder exit {}){}",
                    result.exit_code.map_or_else(
                        || result.signal.clone().unwrap_or_default(),
                        |c| c.to_string()
                    ),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                )
            };
            let _ = record::remove_if_present(&r.trace_dir);
            result.outcome = AttemptOutcome::RecorderError;
            result.recorder_error = Some(why);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout,
    Cancel,
}

/// What the runner watches while an attempt runs.
enum Running<'a> {
    /// A process of its own (the test, or `record` wrapping it) leading its
    /// process group; `pidfd` is readable once it exits.
    Process { pid: Pid, pidfd: Option<OwnedFd> },
    /// A request to a recorder server; its socket is readable once the
    /// reply comes or the server dies.
    Served {
        server: &'a mut RecorderServer,
        reply: Option<std::io::Result<Reply>>,
    },
}

impl Running<'_> {
    /// Whether it has ended (a process is left unreaped).
    fn finished(&mut self) -> bool {
        match self {
            Running::Process { pid, .. } => has_exited(*pid),
            Running::Served { server, reply } => {
                if reply.is_none() && readable(server.socket()) {
                    match server.reply() {
                        Ok(None) => {}
                        Ok(Some(r)) => *reply = Some(Ok(r)),
                        Err(e) => *reply = Some(Err(e)),
                    }
                }
                reply.is_some()
            }
        }
    }

    /// A descriptor that becomes readable when it ends, if there is one.
    fn done_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Running::Process { pidfd, .. } => pidfd.as_ref().map(|f| f.as_fd()),
            Running::Served { server, .. } => Some(server.socket()),
        }
    }

    /// SIGTERM: a recorder closes the trace and ends the recording.
    fn terminate(&self) {
        match self {
            Running::Process { pid, .. } => {
                let _ = nix::sys::signal::kill(*pid, Signal::SIGTERM);
            }
            Running::Served { server, .. } => server.terminate(),
        }
    }

    /// SIGKILL to the whole process group (a server's too: its tracees die
    /// with it, and the worker starts another).
    fn kill(&self) {
        let pid = match self {
            Running::Process { pid, .. } => *pid,
            Running::Served { server, .. } => server.pid(),
        };
        let _ = killpg(pid, Signal::SIGKILL);
    }

    /// After it ended: processes the test left behind in its group do not
    /// outlive it. (A server's recording ends only when every process it
    /// traced has.)
    fn reap_group(&self) {
        if let Running::Process { pid, .. } = self {
            let _ = killpg(*pid, Signal::SIGKILL);
        }
    }
}

/// Whether `fd` is readable now.
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Reads the attempt's output until it ends (and its pipes close, or
/// [`PIPE_GRACE`] passes), killing it at the deadline or on cancellation
/// (`graceful`: SIGTERM first at the deadline, then SIGKILL to the group
/// after [`TERM_GRACE`]). Leaves a process unreaped, its group empty.
#[allow(clippy::too_many_arguments)]
fn watch(
    running: &mut Running<'_>,
    mut out: Option<File>,
    mut err: Option<File>,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    graceful: bool,
    result: &mut AttemptResult,
) -> Option<Kill> {
    let mut killed: Option<Kill> = None;
    let mut term_until: Option<Instant> = None;
    let mut exited_at: Option<Instant> = None;
    let mut idle_tick = Duration::from_millis(1);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if exited_at.is_none() && running.finished() {
            exited_at = Some(now);
        }
        if let Some(at) = exited_at {
            if (out.is_none() && err.is_none()) || now.duration_since(at) >= PIPE_GRACE {
                break;
            }
        }
        if exited_at.is_none() {
            if killed.is_none() {
                let kill = if cancel.load(Ordering::Relaxed) {
                    Some(Kill::Cancel)
                } else if deadline.is_some_and(|d| now >= d) {
                    Some(Kill::Timeout)
                } else {
                    None
                };
                match kill {
                    Some(Kill::Timeout) if graceful => {
                        running.terminate();
                        term_until = Some(now + TERM_GRACE);
                    }
                    Some(_) => running.kill(),
                    None => {}
                }
                killed = kill;
            } else if let Some(until) = term_until {
                if now >= until || cancel.load(Ordering::Relaxed) {
                    running.kill();
                    term_until = None;
                }
            }
        }
        let mut wait = MAX_TICK;
        if let (Some(d), None) = (deadline, killed) {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(until) = term_until {
            wait = wait.min(until.saturating_duration_since(now));
        }
        if let Some(at) = exited_at {
            wait = wait.min((at + PIPE_GRACE).saturating_duration_since(now));
        }
        let done = if exited_at.is_none() {
            running.done_fd()
        } else {
            None
        };
        if out.is_none() && err.is_none() && done.is_none() {
            // Both pipes closed, the end not yet seen and nothing to poll
            // for it: back off gently.
            std::thread::sleep(wait.min(idle_tick));
            idle_tick = (idle_tick * 2).min(MAX_TICK);
            continue;
        }
        let (out_ready, err_ready) = {
            let mut fds = Vec::with_capacity(3);
            if let Some(o) = &out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            if let Some(e) = &err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            if let Some(d) = done {
                fds.push(PollFd::new(d, PollFlags::POLLIN));
            }
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => (false, false),
                Ok(_) => {
                    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                    let first = fds.first().map(ready).unwrap_or(false);
                    let second = fds.get(1).map(ready).unwrap_or(false);
                    match (&out, &err) {
                        (Some(_), Some(_)) => (first, second),
                        (Some(_), None) => (first, false),
                        (None, Some(_)) => (false, first),
                        (None, None) => (false, false),
                    }
                }
                Err(_) => (false, false),
            }
        };
        if out_ready {
            drain(&mut out, &mut buf, &mut result.stdout);
        }
        if err_ready {
            drain(&mut err, &mut buf, &mut result.stderr);
        }
    }
    running.reap_group();
    killed
}

/// Reads what is available from a ready pipe; closes it at end of file.
fn drain<R: Read>(pipe: &mut Option<R>, buf: &mut [u8], into: &mut Captured) {
    if let Some(p) = pipe {
        match p.read(buf) {
            Ok(0) => *pipe = None,
            Ok(n) => into.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => *pipe = None,
        }
    }
}

/// Whether the child has exited, without reaping it.
fn has_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

/// `SIGKILL` for 9.
fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str) -> AttemptSpec {
        AttemptSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: "/".into(),
            env: vec![],
            attempt: 1,
            total_attempts: 1,
            env_remove: vec![],
            record: None,
        }
    }

    #[test]
    fn attempt_spec_is_the_cargo_test_invocation() {
        use crate::harness::build::{BinaryKind, TestBinary};
        let test = TestCase {
            binary: std::sync::Arc::new(TestBinary {
                binary_id: "demo::api".into(),
                path: "/t/debug/deps/api-1234".into(),
                kind: BinaryKind::Test,
                target_name: "api".into(),
                manifest_dir: "/w/demo".into(),
                manifest_path: "/w/demo/Cargo.toml".into(),
                env: vec![("CARGO_PKG_NAME".into(), "demo".into())],
                package: "demo".into(),
            }),
            name: "slow_one".into(),
            ignored: true,
        };
        let spec = AttemptSpec::new(&test, 2, 3);
        assert_eq!(spec.program, PathBuf::from("/t/debug/deps/api-1234"));
        assert_eq!(
            spec.args,
            ["--exact", "slow_one", "--nocapture", "--include-ignored"]
        );
        assert_eq!(spec.cwd, PathBuf::from("/w/demo"));
        let env = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(env("RRTEST_ATTEMPT"), Some("2".into()));
        assert_eq!(env("RRTEST_TOTAL_ATTEMPTS"), Some("3".into()));
        assert_eq!(env("CARGO_PKG_NAME"), Some("demo".into()));
    }

    #[test]
    fn captures_both_streams_without_deadlock() {
        // 3 MiB on stdout (more than a pipe holds) and some stderr.
        let r = run_attempt(
            &spec("head -c 3145728 /dev/zero; echo oops >&2; exit 3"),
            None,
            &AtomicBool::new(false),
        );
        assert_eq!(r.outcome, AttemptOutcome::Failed);
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(
            r.stdout.bytes.len() as u64 + r.stdout.omitted,
            3 * 1024 * 1024
        );
        assert_eq!(r.stderr.text(), "oops\n");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let started = Instant::now();
        // The grandchild holds the pipes; killing only the shell would hang.
        let r = run_attempt(
            &spec("sleep 30 & echo started; wait"),
            Some(Duration::from_millis(300)),
            &AtomicBool::new(false),
        );
        assert_eq!(r.outcome, AttemptOutcome::TimedOut);
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(r.exit_code, None);
        assert_eq!(r.stdout.text(), "started\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn leaked_background_process_does_not_hold_the_attempt() {
        let started = Instant::now();
        let r = run_attempt(&spec("sleep 30 & exit 0"), None, &AtomicBool::new(false));
        assert_eq!(r.outcome, AttemptOutcome::Passed);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A stand-in recorder: a shell script run as `<script> record --no-verify
    /// --disposable -o DIR -- PROGRAM ARGS`.
    fn fake_recorder(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("recorder.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn recorded(recorder: PathBuf, trace_dir: PathBuf) -> AttemptSpec {
        let mut s = spec("true");
        s.record = Some(RecordSpec {
            recorder,
            trace_dir,
            syscallbuf: true,
            cpu: None,
            serve: false,
            discard_if_passed: false,
            hide_paths: Vec::new(),
        });
        s
    }

    #[test]
    fn recorded_attempt_is_wrapped_in_the_recorder() {
        let s = recorded("/x/cargo-rrtest".into(), "/t/attempt-1".into());
        let cmd = s.to_command();
        assert_eq!(cmd.get_program(), "/x/cargo-rrtest");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(
            args,
            [
                "record",
                "--no-verify",
                "--disposable",
                "--keep-env",
                "-o",
                "/t/attempt-1",
                "--",
                "/bin/sh",
                "-c",
                "true"
            ]
        );
    }

    /// The harness filters the environment itself: the recorder keeps what
    /// it is given, is told the names removed (for the header), and gets
    /// the paths to hide.
    #[test]
    fn recorded_attempt_passes_removed_names_and_hidden_paths() {
        let mut s = recorded("/x/cargo-rrtest".into(), "/t/attempt-1".into());
        s.env_remove = vec!["DATABASE_URL".into(), "GITHUB_TOKEN".into()];
        if let Some(r) = &mut s.record {
            r.hide_paths = vec!["/root/.netrc".into()];
        }
        let cmd = s.to_command();
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(
            args[..10],
            [
                "record",
                "--no-verify",
                "--disposable",
                "--keep-env",
                "--env-removed",
                "DATABASE_URL",
                "--env-removed",
                "GITHUB_TOKEN",
                "--hide-path",
                "/root/.netrc",
            ]
        );
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        assert!(removed.contains(&std::ffi::OsStr::new("DATABASE_URL")));
    }

    #[test]
    fn recorder_failures_are_recorder_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let trace = tmp.path().join("attempt-1");
        // Exit 105: the recorder failed itself.
        let failing = fake_recorder(
            tmp.path(),
            "echo 'error: recorder: no ptrace' >&2; exit 105",
        );
        let r = run_attempt(
            &recorded(failing, trace.clone()),
            None,
            &AtomicBool::new(false),
        );
        assert_eq!(r.outcome, AttemptOutcome::RecorderError);
        assert!(r.recorded && r.trace.is_none());
        let why = r.recorder_error.unwrap();
        assert!(why.contains("error: recorder: no ptrace"), "{why}");
        // Exit 0 without a trace: not to be trusted either.
        let silent = fake_recorder(tmp.path(), "exit 0");
        let r = run_attempt(&recorded(silent, trace), None, &AtomicBool::new(false));
        assert_eq!(r.outcome, AttemptOutcome::RecorderError);
        assert!(r.recorder_error.unwrap().contains("no usable trace header"));
    }

    #[test]
    fn recorded_timeout_asks_the_recorder_first() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("got-term");
        // Closes "the trace" on SIGTERM, as the recorder does, and exits 137.
        let body = format!(
            "trap 'touch {}; exit 137' TERM\necho recording\nwhile :; do sleep 0.05; done",
            marker.display()
        );
        let recorder = fake_recorder(tmp.path(), &body);
        let started = Instant::now();
        let r = run_attempt(
            &recorded(recorder, tmp.path().join("attempt-1")),
            Some(Duration::from_millis(300)),
            &AtomicBool::new(false),
        );
        assert_eq!(r.outcome, AttemptOutcome::TimedOut);
        assert!(marker.exists(), "the recorder got no SIGTERM");
        assert!(started.elapsed() < TERM_GRACE, "{:?}", started.elapsed());
        assert_eq!(r.stdout.text(), "recording\n");
        // No finished trace after a timeout: dropped, not a recorder error.
        assert!(r.trace.is_none() && r.recorder_error.is_none());
    }
}
