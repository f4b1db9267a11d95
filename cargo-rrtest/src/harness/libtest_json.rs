//! `--message-format libtest-json[-plus]`: the run's test events on stdout
//! as the JSON lines libtest writes with `--format json`, for IDEs and tools
//! that read them.
//!
//! One suite for the whole run (tests of all binaries run interleaved, as
//! in cargo-nextest's equivalent): `{"type":"suite","event":"started",
//! "test_count":N}`, then per test `started` and `ok`/`failed`/`ignored`
//! with `exec_time` in seconds (a failure also carries the test's output as
//! `stdout`, and `reason` when it was not a plain failure), and the suite's
//! `ok`/`failed` event with the counts. A test is named
//! `BINARY_ID$NAME`, the way cargo-nextest names them in this format, since
//! names alone repeat across binaries. `libtest-json-plus` adds an `rrtest`
//! object to each finished test: binary id, name, outcome (`flaky` is `ok`
//! in libtest's words), attempts, and the kept trace.
//!
//! This module formats and writes the lines; it must not decide outcomes
//! or write anything but these lines to stdout (the human output goes to
//! stderr in this mode: `output::Reporter`).

use std::io::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::list::TestCase;
use super::runner::{RunEvent, TestResult};
use rrtest_report::{Outcome, Summary};

/// `--message-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MessageFormat {
    /// Lines for people (a line per test, failures' output, a summary).
    #[default]
    Human,
    /// libtest's JSON test events, one object a line.
    LibtestJson,
    /// libtest's JSON events with an `rrtest` object on finished tests.
    LibtestJsonPlus,
}

/// Writes the JSON lines of one run to stdout.
#[derive(Debug)]
pub struct LibtestJson {
    plus: bool,
}

impl LibtestJson {
    /// The writer for `format`, or None for the human format.
    pub fn new(format: MessageFormat) -> Option<Self> {
        match format {
            MessageFormat::Human => None,
            MessageFormat::LibtestJson => Some(LibtestJson { plus: false }),
            MessageFormat::LibtestJsonPlus => Some(LibtestJson { plus: true }),
        }
    }

    /// The suite starts: `test_count` tests to run or report as ignored.
    pub fn suite_started(&self, test_count: usize) {
        emit(&json!({"type": "suite", "event": "started", "test_count": test_count}));
    }

    /// One runner event.
    pub fn event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { test } => emit(&started(test)),
            RunEvent::Retrying { .. } => {}
            // Under stress each run is a test event of its own.
            RunEvent::Finished { result } | RunEvent::Ran { result } => {
                emit(&finished(result, self.plus))
            }
        }
    }

    /// A test that is not run (`#[ignore]`d and not asked for).
    pub fn ignored(&self, test: &TestCase) {
        emit(&started(test));
        emit(&json!({"type": "test", "name": name(test), "event": "ignored"}));
    }

    /// The suite ends, with the report's counts.
    pub fn suite_finished(&self, summary: &Summary, filtered_out: usize, elapsed: Duration) {
        emit(&suite_finished(summary, filtered_out, elapsed));
    }
}

/// One line on stdout; a closed stdout is ignored (as the human output).
fn emit(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// `BINARY_ID$NAME`.
fn name(test: &TestCase) -> String {
    format!("{}${}", test.binary.binary_id, test.name)
}

fn started(test: &TestCase) -> Value {
    json!({"type": "test", "event": "started", "name": name(test)})
}

/// The finished event of `result`.
fn finished(result: &TestResult, plus: bool) -> Value {
    let last = result.attempts.last();
    let exec_time = last.map_or(0.0, |a| a.duration.as_secs_f64());
    let mut line = json!({
        "type": "test",
        "name": name(&result.test),
        "exec_time": exec_time,
    });
    let passed = matches!(result.outcome, Outcome::Passed | Outcome::Flaky);
    let event = match result.outcome {
        Outcome::Ignored => "ignored",
        _ if passed => "ok",
        _ => "failed",
    };
    line["event"] = json!(event);
    if event == "failed" {
        // libtest captures both streams into one; so does this, stdout first.
        let mut text = String::new();
        if let Some(a) = last {
            text.push_str(&a.stdout.text());
            text.push_str(&a.stderr.text());
        }
        line["stdout"] = json!(text);
        let reason = match result.outcome {
            Outcome::TimedOut => Some("time limit exceeded".to_string()),
            Outcome::Interrupted => Some("interrupted".to_string()),
            Outcome::RecorderError => Some(format!(
                "recorder error: {}",
                result
                    .attempts
                    .iter()
                    .find_map(|a| a.recorder_error.as_deref())
                    .unwrap_or("the recorder failed")
            )),
            _ => None,
        };
        if let Some(reason) = reason {
            line["reason"] = json!(reason);
        }
    }
    if plus {
        let trace = result
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.trace.as_ref())
            .map(|p| p.display().to_string());
        line["rrtest"] = json!({
            "binary_id": result.test.binary.binary_id,
            "test": result.test.name,
            "outcome": result.outcome,
            "attempts": result.attempts.len(),
            "trace": trace,
        });
    }
    line
}

fn suite_finished(summary: &Summary, filtered_out: usize, elapsed: Duration) -> Value {
    let failed = summary.failed + summary.timed_out + summary.recorder_error + summary.interrupted;
    json!({
        "type": "suite",
        "event": if failed == 0 { "ok" } else { "failed" },
        "passed": summary.passed + summary.flaky,
        "failed": failed,
        "ignored": summary.ignored,
        "measured": 0,
        "filtered_out": filtered_out,
        "exec_time": elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::harness::build::{BinaryKind, TestBinary};
    use crate::harness::runner::{AttemptResult, Captured};
    use rrtest_report::AttemptOutcome;

    fn test_case() -> TestCase {
        TestCase {
            binary: Arc::new(TestBinary {
                binary_id: "demo-core".into(),
                path: "/t/debug/deps/demo_core-1234".into(),
                kind: BinaryKind::Lib,
                target_name: "demo_core".into(),
                manifest_dir: "/w/demo-core".into(),
                manifest_path: "/w/demo-core/Cargo.toml".into(),
                env: Vec::new(),
                package: "demo-core".into(),
            }),
            name: "tests::checksum_matches".into(),
            ignored: false,
        }
    }

    fn attempt(n: u32, outcome: AttemptOutcome, out: &str, err: &str) -> AttemptResult {
        AttemptResult {
            attempt: n,
            outcome,
            duration: Duration::from_millis(250),
            exit_code: Some(if outcome == AttemptOutcome::Passed {
                0
            } else {
                101
            }),
            signal: None,
            stdout: Captured {
                bytes: out.as_bytes().to_vec(),
                omitted: 0,
            },
            stderr: Captured {
                bytes: err.as_bytes().to_vec(),
                omitted: 0,
            },
            panic: None,
            cancelled: false,
            recorded: true,
            trace: (outcome != AttemptOutcome::Passed)
                .then(|| PathBuf::from(format!("/t/attempt-{n}"))),
            recorder_error: None,
            checked: None,
            unrecorded_rerun: None,
            chaos_seed: None,
        }
    }

    #[test]
    fn a_failure_carries_its_output_and_a_timeout_its_reason() {
        let failed = TestResult {
            test: test_case(),
            outcome: Outcome::Failed,
            attempts: vec![attempt(1, AttemptOutcome::Failed, "out\n", "panicked\n")],
            runs: None,
            first_difference: None,
        };
        let line = finished(&failed, false);
        assert_eq!(line["type"], "test");
        assert_eq!(line["event"], "failed");
        assert_eq!(line["name"], "demo-core$tests::checksum_matches");
        assert_eq!(line["stdout"], "out\npanicked\n");
        assert_eq!(line["exec_time"], 0.25);
        assert!(line.get("reason").is_none() && line.get("rrtest").is_none());

        let timed_out = TestResult {
            outcome: Outcome::TimedOut,
            ..failed
        };
        assert_eq!(finished(&timed_out, false)["reason"], "time limit exceeded");
    }

    #[test]
    fn a_flaky_test_is_ok_and_plus_says_flaky() {
        let flaky = TestResult {
            test: test_case(),
            outcome: Outcome::Flaky,
            attempts: vec![
                attempt(1, AttemptOutcome::Failed, "", "boom\n"),
                attempt(2, AttemptOutcome::Passed, "", ""),
            ],
            runs: None,
            first_difference: None,
        };
        let plain = finished(&flaky, false);
        assert_eq!(plain["event"], "ok");
        assert!(plain.get("stdout").is_none());
        let plus = finished(&flaky, true);
        assert_eq!(plus["rrtest"]["outcome"], "flaky");
        assert_eq!(plus["rrtest"]["attempts"], 2);
        assert_eq!(plus["rrtest"]["trace"], "/t/attempt-1");
        assert_eq!(plus["rrtest"]["binary_id"], "demo-core");
    }

    #[test]
    fn the_suite_counts_flaky_as_passed_and_timeouts_as_failed() {
        let summary = Summary {
            total: 6,
            passed: 2,
            flaky: 1,
            failed: 1,
            timed_out: 1,
            ignored: 1,
            ..Summary::default()
        };
        let line = suite_finished(&summary, 3, Duration::from_secs(2));
        assert_eq!(line["event"], "failed");
        assert_eq!(
            (&line["passed"], &line["failed"], &line["ignored"]),
            (&json!(3), &json!(2), &json!(1))
        );
        assert_eq!(line["filtered_out"], 3);
        assert_eq!(line["measured"], 0);
        let ok = suite_finished(&Summary::default(), 0, Duration::ZERO);
        assert_eq!(ok["event"], "ok");
    }
}
