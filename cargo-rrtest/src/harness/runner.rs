//! Running tests: a pool of `jobs` worker threads, each running one test at a
//! time, every attempt in its own process.
//!
//! An attempt is first described as a value, [`AttemptSpec`] (program, args,
//! cwd, env, attempt number), and turned into a process by one function,
//! [`AttemptSpec::to_command`]. Recording will wrap exactly that function
//! (`cargo-rrtest record -o TRACE -- <bin> <args>`), so the runner does not care
//! whether an attempt is recorded.
//!
//! Each attempt runs with null stdin, in its own process group, with stdout and
//! stderr on pipes. The worker waits with poll(2) on the pipes (so full pipes
//! never block the test), checking the child with `waitid(WNOWAIT)` and the
//! deadline at each wake-up; at the timeout or on cancellation it kills the
//! whole process group with SIGKILL. After the child exits, any processes left
//! in its group are killed before the child is reaped (while it is a zombie
//! its pid, which is the group id, cannot be reused).

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::list::TestCase;
use super::panic::parse_first_panic;
use crate::report::{AttemptOutcome, Outcome};

/// How much of each stream is kept in memory per attempt (the end of it).
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// How long to keep reading a test's pipes after it exited, if a process it
/// left behind holds them open.
const PIPE_GRACE: Duration = Duration::from_millis(100);

/// Longest sleep between checks of the deadline and the cancel flag.
const MAX_TICK: Duration = Duration::from_millis(100);

/// How the runner runs tests.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Worker threads (tests run at once).
    pub jobs: usize,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// Extra attempts for a failed or timed-out test.
    pub retries: u32,
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
        }
    }

    /// The process for this attempt: the single place where an attempt becomes a
    /// command (recording will wrap it here).
    pub fn to_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
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
    pub panic: Option<crate::report::Panic>,
    /// It was stopped because the run was cancelled (Ctrl-C).
    pub cancelled: bool,
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
    Retrying(usize, AttemptResult),
    Finished(usize, TestResult),
}

/// Runs `tests` and returns their results in the same order (tests not started
/// because the run was cancelled are missing). `on_event` sees progress.
pub fn run_tests(
    tests: &[TestCase],
    config: &RunnerConfig,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    let next = AtomicUsize::new(0);
    let total_attempts = config.retries.saturating_add(1);
    let (tx, rx) = mpsc::channel::<WorkerMessage>();
    let mut results: Vec<Option<TestResult>> = vec![None; tests.len()];
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.clamp(1, tests.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(test) = tests.get(i) else {
                    return;
                };
                let _ = tx.send(WorkerMessage::Started(i));
                let result = run_test(test, config, total_attempts, cancel, |a| {
                    let _ = tx.send(WorkerMessage::Retrying(i, a.clone()));
                });
                let _ = tx.send(WorkerMessage::Finished(i, result));
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
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Runs every attempt of one test.
fn run_test(
    test: &TestCase,
    config: &RunnerConfig,
    total_attempts: u32,
    cancel: &AtomicBool,
    mut on_retry: impl FnMut(&AttemptResult),
) -> TestResult {
    let mut attempts: Vec<AttemptResult> = Vec::new();
    for n in 1..=total_attempts {
        let spec = AttemptSpec::new(test, n, total_attempts);
        let result = run_attempt(&spec, config.timeout, cancel);
        let done = result.outcome.is_pass() || result.cancelled || n == total_attempts;
        if !done {
            on_retry(&result);
        }
        attempts.push(result);
        if done {
            break;
        }
    }
    let last = attempts.last().expect("at least one attempt").outcome;
    let outcome = match last {
        AttemptOutcome::Passed if attempts.len() == 1 => Outcome::Passed,
        AttemptOutcome::Passed => Outcome::Flaky,
        AttemptOutcome::Failed => Outcome::Failed,
        AttemptOutcome::TimedOut => Outcome::TimedOut,
        AttemptOutcome::RecorderError => Outcome::RecorderError,
    };
    TestResult {
        test: test.clone(),
        outcome,
        attempts,
    }
}

/// Runs one attempt to completion, timeout, or cancellation.
pub fn run_attempt(
    spec: &AttemptSpec,
    timeout: Option<Duration>,
    cancel: &AtomicBool,
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
    };
    let mut child = match spec.to_command().spawn() {
        Ok(child) => child,
        Err(e) => {
            result.stderr.push(
                format!(
                    "cargo-rrtest: could not start {}: {e}\n",
                    spec.program.display()
                )
                .as_bytes(),
            );
            result.duration = start.elapsed();
            return result;
        }
    };
    let deadline = timeout.map(|t| start + t);
    let killed = watch(&mut child, deadline, cancel, &mut result);
    let status = child.wait();
    result.duration = start.elapsed();
    match status {
        Ok(status) => {
            result.exit_code = status.code();
            result.signal = status.signal().map(signal_name);
            result.outcome = if killed == Some(Kill::Timeout) {
                AttemptOutcome::TimedOut
            } else if status.success() {
                AttemptOutcome::Passed
            } else {
                AttemptOutcome::Failed
            };
        }
        Err(e) => {
            result
                .stderr
                .push(format!("cargo-rrtest: waiting for the test: {e}\n").as_bytes());
        }
    }
    result.cancelled = killed == Some(Kill::Cancel);
    result.panic = parse_first_panic(&result.stderr.text());
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout,
    Cancel,
}

/// Reads the child's output until it exits (and its pipes close, or
/// [`PIPE_GRACE`] passes), killing its process group at the deadline or on
/// cancellation. Leaves the child unreaped, its group empty.
fn watch(
    child: &mut Child,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    result: &mut AttemptResult,
) -> Option<Kill> {
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut killed: Option<Kill> = None;
    let mut exited_at: Option<Instant> = None;
    let mut idle_tick = Duration::from_millis(1);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if exited_at.is_none() && has_exited(pid) {
            exited_at = Some(now);
        }
        if let Some(at) = exited_at {
            if (out.is_none() && err.is_none()) || now.duration_since(at) >= PIPE_GRACE {
                break;
            }
        }
        if killed.is_none() {
            let kill = if cancel.load(Ordering::Relaxed) {
                Some(Kill::Cancel)
            } else if deadline.is_some_and(|d| now >= d) {
                Some(Kill::Timeout)
            } else {
                None
            };
            if let Some(k) = kill {
                let _ = killpg(pid, Signal::SIGKILL);
                killed = Some(k);
            }
        }
        let mut wait = MAX_TICK;
        if let (Some(d), None) = (deadline, killed) {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(at) = exited_at {
            wait = wait.min((at + PIPE_GRACE).saturating_duration_since(now));
        }
        if out.is_none() && err.is_none() {
            // Both pipes closed, the process not yet gone (it is exiting, or
            // closed its output): nothing to poll, back off gently.
            std::thread::sleep(wait.min(idle_tick));
            idle_tick = (idle_tick * 2).min(MAX_TICK);
            continue;
        }
        let (out_ready, err_ready) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(o) = &out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            if let Some(e) = &err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
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
                        _ => (false, first),
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
    // Processes the test left behind in its group do not outlive it.
    let _ = killpg(pid, Signal::SIGKILL);
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
}
