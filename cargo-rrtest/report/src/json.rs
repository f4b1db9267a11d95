//! The JSON report, `target/rrtest/report.json` by default.
//!
//! Versioning rule: [`SCHEMA_VERSION`] is bumped when a field is removed or
//! renamed or its meaning changes; adding a field does not bump it, so readers
//! must ignore fields they do not know. docs/report.md documents every field
//! with an example; docs/report.schema.json is the JSON Schema, checked against
//! real reports by the integration tests.
//!
//! ```json
//! { "schema_version": 1, "tool": {"name": "cargo-rrtest", "version": "0.1.0"},
//!   "started_at": "2026-01-02T03:04:05Z", "duration_ms": 1234, "partition": null,
//!   "summary": {"total": 1, "passed": 0, "failed": 1, ...},
//!   "tests": [{"binary_id": "demo-core", "name": "tests::checksum_matches",
//!              "outcome": "failed", "duration_ms": 3, "trace": null,
//!              "attempts": [{"attempt": 1, "outcome": "failed", "exit_code": 101, ...}]}] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;

/// The report schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How many bytes of each attempt's stdout and stderr the report keeps (the end).
pub const OUTPUT_TAIL_BYTES: usize = 16 * 1024;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The tool that wrote the report.
    pub tool: Tool,
    /// When the run started, RFC 3339 UTC (`2026-01-02T03:04:05.678Z`).
    pub started_at: String,
    /// Wall time of the whole run (build included), in milliseconds.
    pub duration_ms: u64,
    /// The partition this run covered (`hash:1/2`), or null for all tests.
    pub partition: Option<String>,
    /// Whether tests were recorded (false with `--no-record`).
    pub recording: bool,
    /// Why tests were not recorded: `--no-record`, or what the preflight
    /// check found missing; null when recording.
    #[serde(default)]
    pub recording_disabled_reason: Option<String>,
    /// Names of the variables removed from the tests' environments because
    /// they looked like credentials (names only; docs/secrets.md).
    #[serde(default)]
    pub env_removed: Vec<String>,
    /// Paths recorded tests saw as empty (`--hide-path`,
    /// `--hide-credential-files`).
    #[serde(default)]
    pub hidden_paths: Vec<String>,
    /// Whether a signal (Ctrl-C, SIGTERM, SIGHUP) stopped the run: the
    /// tests that were running are listed as `interrupted`, and the tests
    /// not started yet are missing.
    #[serde(default)]
    pub interrupted: bool,
    /// The signal that stopped the run (`SIGINT`), or null.
    #[serde(default)]
    pub interrupted_by: Option<String>,
    /// Set by `cargo rrtest stress` (absent in reports of `cargo rrtest run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressSettings>,
    /// A count per outcome.
    pub summary: Summary,
    /// Every selected test, sorted by binary id then name.
    pub tests: Vec<TestReport>,
}

/// The tool that wrote a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `cargo-rrtest`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Tool {
    /// This build of cargo-rrtest.
    pub fn current() -> Self {
        Tool {
            name: "cargo-rrtest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// A count of tests per final outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// All tests in the report.
    pub total: u64,
    /// Passed on the first attempt.
    pub passed: u64,
    /// Failed on every attempt.
    pub failed: u64,
    /// Failed, then passed on a retry.
    pub flaky: u64,
    /// The last attempt was killed at the timeout.
    pub timed_out: u64,
    /// Ignored and not run.
    pub ignored: u64,
    /// The recorder failed (the test's own result is in its attempts).
    pub recorder_error: u64,
    /// Running when a signal stopped the run.
    #[serde(default)]
    pub interrupted: u64,
}

impl Summary {
    /// Counts the outcomes of `tests`.
    pub fn of(tests: &[TestReport]) -> Self {
        let mut s = Summary::default();
        for t in tests {
            s.total += 1;
            *match t.outcome {
                Outcome::Passed => &mut s.passed,
                Outcome::Failed => &mut s.failed,
                Outcome::Flaky => &mut s.flaky,
                Outcome::TimedOut => &mut s.timed_out,
                Outcome::Ignored => &mut s.ignored,
                Outcome::RecorderError => &mut s.recorder_error,
                Outcome::Interrupted => &mut s.interrupted,
            } += 1;
        }
        s
    }
}

/// The final outcome of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Passed on the first attempt.
    Passed,
    /// Failed on every attempt.
    Failed,
    /// Failed or timed out, then passed on a retry.
    Flaky,
    /// The last attempt timed out.
    TimedOut,
    /// Ignored (`#[ignore]`) and not run.
    Ignored,
    /// The recorder failed.
    RecorderError,
    /// Running when a signal stopped the run (its last attempt was killed).
    Interrupted,
}

impl Outcome {
    /// The name used in the report (`timed_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Flaky => "flaky",
            Outcome::TimedOut => "timed_out",
            Outcome::Ignored => "ignored",
            Outcome::RecorderError => "recorder_error",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether this outcome fails the run (flaky fails only with `flaky_fails`).
    pub fn fails_run(self, flaky_fails: bool) -> bool {
        match self {
            Outcome::Failed | Outcome::TimedOut | Outcome::RecorderError => true,
            Outcome::Flaky => flaky_fails,
            // The run's exit status says it was interrupted.
            Outcome::Passed | Outcome::Ignored | Outcome::Interrupted => false,
        }
    }
}

/// One test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// `crate` for a library's unit tests, `crate::target` for an integration
    /// test target, `crate::bin/name` for a binary's unit tests (as nextest).
    pub binary_id: String,
    /// The test's name as libtest lists it (`tests::adds`).
    pub name: String,
    /// The package the test belongs to.
    pub package: String,
    /// The final outcome.
    pub outcome: Outcome,
    /// Sum of the attempts' durations, in milliseconds.
    pub duration_ms: u64,
    /// Every attempt, in order (empty for ignored tests).
    pub attempts: Vec<Attempt>,
    /// The test's kept trace: the last failing attempt's (the last attempt's
    /// with `--keep all`), or null.
    pub trace: Option<String>,
    /// That trace's archive (`.tar.zst`), or null.
    #[serde(default)]
    pub archive: Option<String>,
    /// That archive's size in bytes, or null.
    #[serde(default)]
    pub archive_bytes: Option<u64>,
    /// The command that replays that trace, or null.
    #[serde(default)]
    pub replay_command: Option<String>,
    /// Whether that trace replays to its end (null: no trace, or not verified).
    #[serde(default)]
    pub verified: Option<bool>,
    /// Why it does not, when `verified` is false.
    #[serde(default)]
    pub verification_failure: Option<String>,
    /// `cargo rrtest stress`: how many times the test ran (absent in
    /// reports of `cargo rrtest run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u64>,
    /// `cargo rrtest stress`: how many of those runs failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    /// Where a failing and a passing recording of this test first part
    /// ways (a flaky test, or a stress run that kept both), or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<FirstDifference>,
}

/// The first point where a failing and a passing recording of the same
/// test part ways (`cargo rrtest diff`, docs/stress-and-diff.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstDifference {
    /// The failing attempt (or stress run) compared.
    pub failing_attempt: u32,
    /// The passing one.
    pub passing_attempt: u32,
    /// No meaningful difference and the same schedule.
    pub identical: bool,
    /// The thread whose actions first differ (`main`, `main.1`: threads are
    /// named by their place in the thread tree), or null.
    pub thread: Option<String>,
    /// What differs there (`result`, `syscall`, `output`, `signal`, ...), or null.
    pub what: Option<String>,
    /// That thread's action in the failing recording, or null (it had none).
    pub failing: Option<String>,
    /// In the passing recording.
    pub passing: Option<String>,
    /// The first difference in the schedule, in a line, or null.
    pub schedule: Option<String>,
    /// The command that shows the whole comparison, or null when the
    /// passing recording was not kept.
    #[serde(default)]
    pub diff_command: Option<String>,
    /// Why the recordings could not be compared (then the fields above
    /// are empty), or null.
    #[serde(default)]
    pub error: Option<String>,
}

/// `cargo rrtest stress`: how the tests were run again and again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StressSettings {
    /// `--count`: runs per test, or null.
    pub count: Option<u64>,
    /// `--duration`, in milliseconds, or null.
    pub duration_ms: Option<u64>,
    /// `--keep-going`: a test went on after its first failure.
    pub keep_going: bool,
}

/// One attempt (run) of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// How this attempt ended.
    pub outcome: AttemptOutcome,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// The exit status, or null when the process was killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that killed the process (`SIGKILL`), or null.
    pub signal: Option<String>,
    /// The last [`OUTPUT_TAIL_BYTES`] of stdout (lossy UTF-8).
    pub stdout: String,
    /// How many bytes of stdout were cut from the front of `stdout`.
    pub stdout_omitted_bytes: u64,
    /// The last [`OUTPUT_TAIL_BYTES`] of stderr (lossy UTF-8).
    pub stderr: String,
    /// How many bytes of stderr were cut from the front of `stderr`.
    pub stderr_omitted_bytes: u64,
    /// The first panic the test printed, or null.
    pub panic: Option<Panic>,
    /// Whether this attempt ran under the recorder.
    #[serde(default)]
    pub recorded: bool,
    /// Why the recorder failed (outcome `recorder_error`), or null.
    #[serde(default)]
    pub recorder_error: Option<String>,
    /// For a recorded attempt that timed out (the test's last): how the
    /// same attempt ran again without recording, to tell a slow recording
    /// from a test that hangs. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrecorded_rerun: Option<UnrecordedRerun>,
    /// This attempt's kept trace directory, or null.
    #[serde(default)]
    pub trace: Option<String>,
    /// Its archive, or null.
    #[serde(default)]
    pub archive: Option<String>,
    /// Whether its trace replays to its end (null: no kept trace or not verified).
    #[serde(default)]
    pub verified: Option<bool>,
    /// Why it does not, when `verified` is false.
    #[serde(default)]
    pub verification_failure: Option<String>,
    /// The chaos scheduler's seed this attempt was recorded with
    /// (`--chaos`); absent without chaos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos_seed: Option<u64>,
}

/// A timed-out recorded attempt run again without recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnrecordedRerun {
    /// How the rerun ended (`passed`: the timeout was the recording's).
    pub outcome: AttemptOutcome,
    /// Its wall time, in milliseconds.
    pub duration_ms: u64,
}

impl UnrecordedRerun {
    /// What the summary says of a test whose recorded attempt timed out
    /// and was rerun so.
    pub fn summary(&self) -> String {
        let secs = self.duration_ms as f64 / 1000.0;
        match self.outcome {
            AttemptOutcome::Passed => {
                format!("timed out under recording; passed in {secs:.1} s unrecorded")
            }
            AttemptOutcome::TimedOut => {
                "timed out under recording, and unrecorded too (the test hangs or is slow)".into()
            }
            AttemptOutcome::Failed => {
                format!("timed out under recording; failed in {secs:.1} s unrecorded")
            }
            AttemptOutcome::RecorderError | AttemptOutcome::Interrupted => {
                "timed out under recording; the unrecorded rerun was interrupted".into()
            }
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Exit status 0.
    Passed,
    /// Non-zero exit status or killed by a signal.
    Failed,
    /// Killed at the timeout.
    TimedOut,
    /// The recorder failed.
    RecorderError,
    /// Killed because a signal stopped the run.
    Interrupted,
}

impl AttemptOutcome {
    /// Whether this attempt passed.
    pub fn is_pass(self) -> bool {
        self == AttemptOutcome::Passed
    }
}

/// A panic printed by the test (`thread 'x' (12) panicked at src/lib.rs:10:5:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Panic {
    /// The panicking thread's name (`<unnamed>` for unnamed threads).
    pub thread: String,
    /// The panic message (may span lines).
    pub message: String,
    /// The source file, as the compiler named it (relative to the workspace root
    /// for workspace members).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The largest report [`Report::read`] reads: a report is a few hundred
/// bytes per test, so this is millions of tests.
pub const MAX_REPORT_LEN: u64 = 256 << 20;

/// Writes `bytes` to `path` so that a reader sees the old file or the whole
/// new one, never a part (a full disk, a crash, a kill): into a temporary
/// file in the same directory (`.NAME.tmp-PID`), synced, then renamed over
/// `path`, and the directory synced. Parent directories are created. On
/// failure the temporary file is removed and `path` is left as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename itself is durable once the directory is.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Report {
    /// A report of `tests` (sorted here), with the summary computed.
    pub fn new(
        started_at: String,
        duration_ms: u64,
        partition: Option<String>,
        recording: bool,
        mut tests: Vec<TestReport>,
    ) -> Self {
        tests.sort_by(|a, b| (&a.binary_id, &a.name).cmp(&(&b.binary_id, &b.name)));
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::current(),
            started_at,
            duration_ms,
            partition,
            recording,
            recording_disabled_reason: None,
            env_removed: Vec::new(),
            hidden_paths: Vec::new(),
            interrupted: false,
            interrupted_by: None,
            stress: None,
            summary: Summary::of(&tests),
            tests,
        }
    }

    /// Writes the report as pretty JSON, creating parent directories,
    /// atomically ([`write_atomically`]).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut text = serde_json::to_string_pretty(self).expect("report serializes");
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }

    /// Reads a report (a regular file of at most [`MAX_REPORT_LEN`] bytes),
    /// checking its schema version first.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = read_regular_bounded(path, MAX_REPORT_LEN).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let parse = |source| Error::Parse {
            path: path.to_owned(),
            source,
        };
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(parse)?;
        let found = value.get("schema_version").and_then(|v| v.as_u64());
        match found {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(Error::Version {
                    path: path.to_owned(),
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                    supported: SCHEMA_VERSION,
                })
            }
            None => {
                return Err(parse(serde::de::Error::missing_field("schema_version")));
            }
        }
        serde_json::from_value(value).map_err(parse)
    }

    /// Merges shard reports into one: tests are concatenated (a test present in
    /// two reports is an error), `started_at` is the earliest, `duration_ms` the
    /// longest (shards run side by side), `recording` true if any shard recorded
    /// (else the first shard's `recording_disabled_reason`), `env_removed`
    /// and `hidden_paths` the union of the shards', sorted, `interrupted` if
    /// any shard was, `stress` the first shard's that has it.
    pub fn merge(reports: Vec<(PathBuf, Report)>) -> Result<Report, Error> {
        let mut seen: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
        let mut tests = Vec::new();
        let mut started_at: Option<String> = None;
        let mut duration_ms = 0;
        let mut recording = false;
        let mut disabled: Option<String> = None;
        let mut env_removed = std::collections::BTreeSet::new();
        let mut hidden_paths = std::collections::BTreeSet::new();
        let mut interrupted_by: Option<Option<String>> = None;
        let mut stress: Option<StressSettings> = None;
        for (path, report) in reports {
            stress = stress.or(report.stress);
            env_removed.extend(report.env_removed);
            hidden_paths.extend(report.hidden_paths);
            if report.interrupted && interrupted_by.is_none() {
                interrupted_by = Some(report.interrupted_by.clone());
            }
            // RFC 3339 UTC timestamps of one format compare as strings.
            if started_at.as_ref().is_none_or(|s| report.started_at < *s) {
                started_at = Some(report.started_at.clone());
            }
            duration_ms = duration_ms.max(report.duration_ms);
            recording |= report.recording;
            disabled = disabled.or(report.recording_disabled_reason);
            for test in report.tests {
                let key = (test.binary_id.clone(), test.name.clone());
                if let Some(first) = seen.get(&key) {
                    return Err(Error::Duplicate {
                        binary_id: key.0,
                        name: key.1,
                        first: first.clone(),
                        second: path,
                    });
                }
                seen.insert(key, path.clone());
                tests.push(test);
            }
        }
        let mut merged = Report::new(
            started_at.unwrap_or_default(),
            duration_ms,
            None,
            recording,
            tests,
        );
        if !recording {
            merged.recording_disabled_reason = disabled;
        }
        merged.stress = stress;
        merged.env_removed = env_removed.into_iter().collect();
        merged.hidden_paths = hidden_paths.into_iter().collect();
        // Interrupted if any shard was (the first one's signal).
        if let Some(by) = interrupted_by {
            merged.interrupted = true;
            merged.interrupted_by = by;
        }
        Ok(merged)
    }
}

/// The last [`OUTPUT_TAIL_BYTES`] of `bytes` as lossy UTF-8, and how many bytes
/// were cut. The cut is moved forward to a character boundary.
pub fn output_tail(bytes: &[u8], already_omitted: u64) -> (String, u64) {
    let mut start = bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
    // Skip UTF-8 continuation bytes so the tail does not start mid-character.
    while start < bytes.len() && start > 0 && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    (
        String::from_utf8_lossy(&bytes[start..]).into_owned(),
        already_omitted + start as u64,
    )
}

/// All of the regular file `path`, at most `limit` bytes: a FIFO or a
/// device in place of a report must not block or stream forever. The open
/// cannot block (`O_NONBLOCK`, which does nothing to reads of a regular
/// file), then `fstat` decides; a file over `limit` is refused before it is
/// read. (cargo-rrtest reads traces the same way, in its own `rrtest-sys`
/// crate, which this crate does not depend on so that it can be published
/// alone.)
fn read_regular_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let is = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a report must be a regular file, but this is {is}; refusing to read it"),
        ));
    }
    let too_large = |size: u64| {
        std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "a report is {size} bytes, over the limit of {} MiB; refusing to read it",
                limit >> 20
            ),
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let mut bytes = vec![b'a'; OUTPUT_TAIL_BYTES];
        bytes.extend_from_slice("é".as_bytes());
        let (tail, omitted) = output_tail(&bytes, 0);
        assert!(tail.ends_with('é'));
        assert_eq!(omitted as usize + tail.len(), bytes.len());
        assert!(tail.len() <= OUTPUT_TAIL_BYTES);
        assert_eq!(output_tail(b"short", 7), ("short".to_string(), 7));
    }

    #[test]
    fn summary_counts_outcomes() {
        let t = |outcome| TestReport {
            outcome,
            ..test("n")
        };
        let s = Summary::of(&[t(Outcome::Passed), t(Outcome::Flaky), t(Outcome::Flaky)]);
        assert_eq!((s.total, s.passed, s.flaky, s.failed), (3, 1, 2, 0));
    }

    fn test(name: &str) -> TestReport {
        TestReport {
            binary_id: "b".into(),
            name: name.into(),
            package: "p".into(),
            outcome: Outcome::Flaky,
            duration_ms: 0,
            attempts: vec![],
            trace: None,
            archive: None,
            archive_bytes: None,
            replay_command: None,
            verified: None,
            verification_failure: None,
            runs: None,
            failures: None,
            first_difference: None,
        }
    }

    #[test]
    fn stress_fields_are_absent_from_run_reports_and_survive_a_merge() {
        let plain = Report::new("t".into(), 1, None, true, vec![test("a")]);
        let text = serde_json::to_string(&plain).unwrap();
        for field in [
            "\"stress\"",
            "\"runs\"",
            "\"failures\"",
            "\"first_difference\"",
        ] {
            assert!(!text.contains(field), "{field} in {text}");
        }
        let mut stressed = test("b");
        stressed.runs = Some(30);
        stressed.failures = Some(4);
        stressed.first_difference = Some(FirstDifference {
            failing_attempt: 3,
            passing_attempt: 1,
            identical: false,
            thread: Some("main.1".into()),
            what: Some("output".into()),
            failing: Some("write(...) = 4".into()),
            passing: Some("write(...) = 3".into()),
            schedule: None,
            diff_command: None,
            error: None,
        });
        let mut shard = Report::new("t".into(), 1, None, true, vec![stressed.clone()]);
        shard.stress = Some(StressSettings {
            count: Some(30),
            duration_ms: None,
            keep_going: true,
        });
        let back: Report = serde_json::from_str(&serde_json::to_string(&shard).unwrap()).unwrap();
        assert_eq!(back, shard);
        let merged = Report::merge(vec![("1".into(), plain), ("2".into(), shard.clone())]).unwrap();
        assert_eq!(merged.stress, shard.stress);
        assert_eq!(merged.tests[1], stressed);
    }

    #[test]
    fn read_refuses_a_fifo_without_blocking() {
        let dir = std::env::temp_dir().join(format!("rrtest-report-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("report.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo unavailable; skipped");
            return;
        }
        let err = Report::read(&fifo).unwrap_err().to_string();
        assert!(
            err.contains("must be a regular file, but this is a FIFO"),
            "{err}"
        );
        let err = Report::read(&dir).unwrap_err().to_string();
        assert!(err.contains("this is a directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unrecorded_rerun_says_whether_the_timeout_was_the_recordings() {
        let rerun = |outcome, duration_ms| UnrecordedRerun {
            outcome,
            duration_ms,
        };
        assert_eq!(
            rerun(AttemptOutcome::Passed, 14_300).summary(),
            "timed out under recording; passed in 14.3 s unrecorded"
        );
        assert_eq!(
            rerun(AttemptOutcome::Failed, 300).summary(),
            "timed out under recording; failed in 0.3 s unrecorded"
        );
        assert!(rerun(AttemptOutcome::TimedOut, 120_000)
            .summary()
            .contains("unrecorded too"));
        // Absent unless set: reports without it read, and stay as they were.
        let json = r#"{"attempt": 1, "outcome": "timed_out", "duration_ms": 5,
            "exit_code": null, "signal": "SIGKILL", "stdout": "", "stdout_omitted_bytes": 0,
            "stderr": "", "stderr_omitted_bytes": 0, "panic": null}"#;
        let a: Attempt = serde_json::from_str(json).expect("an attempt without the field");
        assert_eq!(a.unrecorded_rerun, None);
        let back = serde_json::to_value(&a).expect("serialize");
        assert!(back.get("unrecorded_rerun").is_none());
    }
}
