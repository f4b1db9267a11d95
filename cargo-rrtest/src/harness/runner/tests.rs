//! The runner's tests: attempts as commands, and real attempts run through
//! [`run_attempt`] (output capture, timeouts, process groups, recorder
//! failures), with `/bin/sh` scripts as tests and as stand-in recorders.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rrtest_report::AttemptOutcome;

use super::*;
use crate::harness::list::TestCase;

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
        chaos: None,
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

/// A "test binary" that is a shell script failing on the runs `fails`
/// says (by `RRTEST_ATTEMPT`, the run's number under [`Repeat`]).
fn script_test(dir: &std::path::Path, fails: &str) -> TestCase {
    use crate::harness::build::{BinaryKind, TestBinary};
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("t.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\ncase \"$RRTEST_ATTEMPT\" in {fails}) exit 1;; esac\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    TestCase {
        binary: std::sync::Arc::new(TestBinary {
            binary_id: "demo".into(),
            path,
            kind: BinaryKind::Test,
            target_name: "demo".into(),
            manifest_dir: dir.to_path_buf(),
            manifest_path: dir.join("Cargo.toml"),
            env: vec![],
            package: "demo".into(),
        }),
        name: "t".into(),
        ignored: false,
    }
}

fn repeat(count: u64, keep_going: bool) -> Repeat {
    Repeat {
        count: Some(count),
        duration: None,
        keep_going,
        max_failing_traces: 10,
    }
}

fn config(jobs: usize) -> RunnerConfig {
    RunnerConfig {
        jobs,
        timeout: None,
        retries: 0,
        recording: None,
        env_remove: vec![],
        hide_paths: vec![],
    }
}

#[test]
fn repeated_runs_count_failures_with_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let tests = [script_test(dir.path(), "1|3|5|7|9")];
    let mut ran = 0;
    let results = run_repeated(
        &tests,
        &config(3),
        repeat(10, true),
        &AtomicBool::new(false),
        |e| ran += usize::from(matches!(e, RunEvent::Ran { .. })),
    );
    assert_eq!(ran, 10);
    let r = &results[0];
    assert_eq!(
        r.runs,
        Some(RunCounts {
            runs: 10,
            failures: 5
        })
    );
    assert_eq!(r.outcome, rrtest_report::Outcome::Flaky);
    // Only the failing runs' attempts are kept (nothing recorded here).
    let failed: Vec<u32> = r.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(failed, [1, 3, 5, 7, 9]);
}

#[test]
fn repeated_runs_stop_a_test_at_its_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let tests = [script_test(dir.path(), "4")];
    let results = run_repeated(
        &tests,
        &config(1),
        repeat(10, false),
        &AtomicBool::new(false),
        |_| {},
    );
    assert_eq!(
        results[0].runs,
        Some(RunCounts {
            runs: 4,
            failures: 1
        })
    );
    let dir2 = tempfile::tempdir().unwrap();
    let never = [script_test(dir2.path(), "never")];
    let results = run_repeated(
        &never,
        &config(2),
        repeat(7, false),
        &AtomicBool::new(false),
        |_| {},
    );
    assert_eq!(
        results[0].runs,
        Some(RunCounts {
            runs: 7,
            failures: 0
        })
    );
    assert_eq!(results[0].outcome, rrtest_report::Outcome::Passed);
    assert!(results[0].attempts.is_empty());
}

#[test]
fn repeated_runs_end_at_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let tests = [script_test(dir.path(), "never")];
    let started = Instant::now();
    let results = run_repeated(
        &tests,
        &config(1),
        Repeat {
            count: None,
            duration: Some(Duration::from_millis(300)),
            keep_going: false,
            max_failing_traces: 10,
        },
        &AtomicBool::new(false),
        |_| {},
    );
    let runs = results[0].runs.map_or(0, |c| c.runs);
    assert!(runs >= 1, "{runs}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
