//! GitHub Actions output (when `GITHUB_ACTIONS=true`).
//!
//! - Annotations: `::error` for failed, timed-out and recorder-error tests,
//!   `::warning` for flaky ones. GitHub shows at most [`ANNOTATION_CAP`] of each
//!   kind per step, so past the cap the last slot becomes one annotation that
//!   names the rest.
//! - Test output is printed inside `::group::` and fenced with
//!   `::stop-commands::TOKEN` ... `::TOKEN::` (TOKEN random per run), so a test
//!   that prints `::error::` or `::set-env` cannot issue workflow commands.
//! - A Markdown summary is appended to `$GITHUB_STEP_SUMMARY`, kept under
//!   GitHub's 1 MiB limit (rows are dropped, with a note, when it would not
//!   fit): the counts, every failed, flaky, timed-out or recorder-error test
//!   with its location, whether its trace was verified, and the exact command
//!   that replays it; with `--artifact-name NAME`, the artifact holding the
//!   trace archives, as the run page downloads it (`NAME.zip`, which
//!   `cargo rrtest replay NAME.zip TEST` reads as it is) and the `gh` command
//!   that downloads it into a folder `NAME` (which the same command reads).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::json::{AttemptOutcome, Outcome, Report, TestReport};

/// GitHub's per-step cap for each of error and warning annotations.
pub const ANNOTATION_CAP: usize = 10;

/// GitHub's limit on a step summary; we stay [`SUMMARY_MARGIN`] under it.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// Room left under [`SUMMARY_LIMIT`] for other steps' additions and our note.
const SUMMARY_MARGIN: usize = 16 * 1024;

/// Whether we are running on GitHub Actions.
pub fn is_github_actions() -> bool {
    std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true")
}

/// Context for paths in annotations: GitHub wants them relative to the
/// repository checkout (`$GITHUB_WORKSPACE`); panic locations are relative to
/// the cargo workspace root.
#[derive(Debug, Clone)]
pub struct PathContext {
    /// The cargo workspace root.
    pub workspace_root: PathBuf,
    /// `$GITHUB_WORKSPACE`, if set.
    pub github_workspace: Option<PathBuf>,
}

impl PathContext {
    /// The path to put in `file=` for a panic location.
    fn annotation_path(&self, file: &str) -> String {
        let abs = self.workspace_root.join(file);
        if let Some(gw) = &self.github_workspace {
            if let Ok(rel) = abs.strip_prefix(gw) {
                return rel.display().to_string();
            }
        }
        file.to_string()
    }
}

/// Renders the annotation lines (each ending in a newline).
pub fn annotations(report: &Report, paths: &PathContext) -> String {
    let errors: Vec<&TestReport> = report
        .tests
        .iter()
        .filter(|t| t.outcome.fails_run(false))
        .collect();
    let warnings: Vec<&TestReport> = report
        .tests
        .iter()
        .filter(|t| t.outcome == Outcome::Flaky)
        .collect();
    let mut out = String::new();
    capped(&mut out, "error", &errors, paths);
    capped(&mut out, "warning", &warnings, paths);
    out
}

fn capped(out: &mut String, level: &str, tests: &[&TestReport], paths: &PathContext) {
    let shown = if tests.len() > ANNOTATION_CAP {
        ANNOTATION_CAP - 1
    } else {
        tests.len()
    };
    for test in &tests[..shown] {
        annotation(out, level, test, paths);
    }
    let rest = &tests[shown..];
    if !rest.is_empty() {
        let mut names = String::new();
        for t in rest {
            let _ = write!(
                names,
                "\n{} {} ({})",
                t.binary_id,
                t.name,
                t.outcome.as_str()
            );
        }
        let title = format!(
            "{} more {} tests",
            rest.len(),
            if level == "error" { "failing" } else { "flaky" }
        );
        let _ = writeln!(
            out,
            "::{level} title={}::{}",
            escape_property(&title),
            escape_data(&format!("{title} (see the step summary):{names}"))
        );
    }
}

fn annotation(out: &mut String, level: &str, test: &TestReport, paths: &PathContext) {
    let failing = test.attempts.iter().rev().find(|a| !a.outcome.is_pass());
    let what = match test.outcome {
        Outcome::Flaky => format!(
            "flaky: failed {} of {} attempts",
            test.attempts
                .iter()
                .filter(|a| !a.outcome.is_pass())
                .count(),
            test.attempts.len()
        ),
        Outcome::TimedOut => "timed out".to_string(),
        Outcome::Interrupted => "interrupted".to_string(),
        Outcome::RecorderError => format!(
            "could not be recorded ({} without recording)",
            test.attempts
                .last()
                .map_or("not run", |a| attempt_verdict(a.outcome))
        ),
        _ => "failed".to_string(),
    };
    let title = format!("{} {} {what}", test.binary_id, test.name);
    let mut props = String::new();
    let mut message = title.clone();
    if let Some(p) = failing.and_then(|a| a.panic.as_ref()) {
        let _ = write!(
            props,
            "file={},line={},col={},",
            escape_property(&paths.annotation_path(&p.file)),
            p.line,
            p.column
        );
        message = format!(
            "{}\n(panicked at {}:{}:{})",
            p.message, p.file, p.line, p.column
        );
    }
    if let Some(why) = test
        .attempts
        .iter()
        .find_map(|a| a.recorder_error.as_deref())
    {
        message.push_str(&format!("\nRecorder: {why}"));
    }
    if let Some(command) = &test.replay_command {
        message.push_str(&format!("\nReplay the recording: {command}"));
    }
    let _ = writeln!(
        out,
        "::{level} {props}title={}::{}",
        escape_property(&title),
        escape_data(&message)
    );
}

/// How an attempt ended, as a word for messages.
fn attempt_verdict(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Passed => "passed",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed out",
        AttemptOutcome::RecorderError => "recorder error",
        AttemptOutcome::Interrupted => "interrupted",
    }
}

/// Escapes a workflow command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A random token for `::stop-commands::`, unguessable by the test.
pub fn stop_token() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        // No /dev/urandom: mix time and pid; still not printed before the fence.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let seed = t ^ (u128::from(std::process::id()) << 64);
        bytes = seed.to_le_bytes();
    }
    let mut s = String::from("rrtest-");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes `body` inside a `::group::TITLE` and fenced so it cannot issue
/// workflow commands.
pub fn write_fenced_group(
    w: &mut dyn std::io::Write,
    title: &str,
    token: &str,
    body: &str,
) -> std::io::Result<()> {
    writeln!(w, "::group::{}", escape_data(title))?;
    writeln!(w, "::stop-commands::{token}")?;
    w.write_all(body.as_bytes())?;
    if !body.ends_with('\n') {
        writeln!(w)?;
    }
    writeln!(w, "::{token}::")?;
    writeln!(w, "::endgroup::")
}

/// Where the trace archives went, for the step summary.
#[derive(Debug, Clone, Default)]
pub struct ArtifactContext {
    /// The artifact name the workflow uploads `target/rrtest/archives/` as.
    pub name: Option<String>,
    /// `$GITHUB_RUN_ID`.
    pub run_id: Option<String>,
    /// `$GITHUB_REPOSITORY` (`owner/repo`).
    pub repository: Option<String>,
}

impl ArtifactContext {
    /// From `--artifact-name` and the GitHub Actions environment.
    pub fn from_env(name: Option<String>) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        ArtifactContext {
            name,
            run_id: var("GITHUB_RUN_ID"),
            repository: var("GITHUB_REPOSITORY"),
        }
    }
}

/// Renders the step summary, at most `limit` bytes.
pub fn step_summary(report: &Report, limit: usize, artifact: &ArtifactContext) -> String {
    let s = &report.summary;
    let mut head = String::new();
    let icon = if s.failed + s.timed_out + s.recorder_error > 0 {
        "❌"
    } else {
        "✅"
    };
    let _ = writeln!(head, "### {icon} cargo rrtest\n");
    if let Some(p) = &report.partition {
        let _ = writeln!(head, "Partition `{}`.\n", markdown_cell(p));
    }
    head.push_str("| total | passed | failed | flaky | timed out | ignored | recorder error |\n");
    head.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        head,
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        s.total, s.passed, s.failed, s.flaky, s.timed_out, s.ignored, s.recorder_error
    );
    let notable: Vec<&TestReport> = report
        .tests
        .iter()
        .filter(|t| !matches!(t.outcome, Outcome::Passed | Outcome::Ignored))
        .collect();
    if notable.is_empty() {
        head.truncate(limit.min(head.len()));
        return head;
    }
    if let Some(name) = &artifact.name {
        if notable.iter().any(|t| t.archive.is_some()) {
            let _ = write!(
                head,
                "Trace archives are in the artifact **`{name}`**. Download **`{name}.zip`** from \
                 this run's page",
                name = markdown_cell(name)
            );
            if let (Some(run), Some(repo)) = (&artifact.run_id, &artifact.repository) {
                let _ = write!(
                    head,
                    " or into a folder with `gh run download {} -R {} -n {} -D {}`",
                    markdown_cell(run),
                    markdown_cell(repo),
                    markdown_cell(name),
                    markdown_cell(name)
                );
            }
            head.push_str(
                ", then run the replay command where it is: it reads the zip, or the folder of \
                 that name, as it is (no checkout or build needed).\n\n",
            );
        }
    }
    head.push_str("| outcome | test | attempts | duration | location | trace | replay |\n");
    head.push_str("|---|---|---:|---:|---|---|---|\n");
    let mut out = head;
    for (i, t) in notable.iter().enumerate() {
        let location = t
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.panic.as_ref())
            .map(|p| format!("`{}:{}:{}`", markdown_cell(&p.file), p.line, p.column))
            .unwrap_or_default();
        let recorder_error = t.attempts.iter().find_map(|a| a.recorder_error.as_deref());
        let mut trace = match (&t.trace, t.verified) {
            (None, _) if recorder_error.is_some() => format!(
                "recorder failed: {}; {} without recording",
                markdown_cell(recorder_error.unwrap_or_default()),
                t.attempts
                    .last()
                    .map_or("not run", |a| attempt_verdict(a.outcome))
            ),
            (None, _) => String::new(),
            (Some(_), Some(true)) => "verified".to_string(),
            (Some(_), Some(false)) => format!(
                "does not replay: {}",
                markdown_cell(
                    t.verification_failure
                        .as_deref()
                        .unwrap_or("unknown reason")
                )
            ),
            (Some(_), None) => "not verified".to_string(),
        };
        if let Some(rerun) = t.attempts.iter().rev().find_map(|a| a.unrecorded_rerun) {
            if !trace.is_empty() {
                trace.push_str("; ");
            }
            trace.push_str(&rerun.summary());
        }
        let replay = t
            .replay_command
            .as_deref()
            .map(|c| format!("`{}`", markdown_cell(c)))
            .unwrap_or_default();
        let row = format!(
            "| {} | `{}` `{}` | {} | {:.3}s | {} | {} | {} |\n",
            t.outcome.as_str(),
            markdown_cell(&t.binary_id),
            markdown_cell(&t.name),
            // A recorder error's native re-run repeats its attempt number;
            // under stress: failures/runs.
            match (t.failures, t.runs) {
                (Some(f), Some(r)) => format!("{f}/{r} failed"),
                _ => t.attempts.last().map_or(0, |a| a.attempt).to_string(),
            },
            t.duration_ms as f64 / 1000.0,
            location,
            trace,
            replay
        );
        let note_room = 128;
        if out.len() + row.len() + note_room > limit {
            let _ = writeln!(
                out,
                "\n_{} more rows omitted to stay under GitHub's step summary limit; see report.json._",
                notable.len() - i
            );
            return out;
        }
        out.push_str(&row);
    }
    let differences: Vec<String> = notable
        .iter()
        .filter_map(|t| {
            let d = t.first_difference.as_ref()?;
            Some(format!(
                "- `{}` `{}`: {}\n",
                markdown_cell(&t.binary_id),
                markdown_cell(&t.name),
                markdown_cell(&first_difference_text(d))
            ))
        })
        .collect();
    if !differences.is_empty() {
        let head = "\n**Where the failing and the passing recording first differ:**\n\n";
        if out.len() + head.len() < limit {
            out.push_str(head);
            for line in differences {
                if out.len() + line.len() > limit {
                    break;
                }
                out.push_str(&line);
            }
        }
    }
    out
}

/// A test's first difference in a line, for people: the thread, what
/// differs, the two actions, and the schedule difference.
pub fn first_difference_text(d: &crate::json::FirstDifference) -> String {
    let pair = format!(
        "attempt {} (failing) vs {} (passing)",
        d.failing_attempt, d.passing_attempt
    );
    if let Some(why) = &d.error {
        return format!("{pair}: not compared: {why}");
    }
    let mut text = match (&d.thread, &d.what) {
        (Some(thread), Some(what)) => format!(
            "{pair}: thread {thread} first differs in {what}: failing `{}`, passing `{}`",
            d.failing.as_deref().unwrap_or("(nothing more)"),
            d.passing.as_deref().unwrap_or("(nothing more)")
        ),
        _ if d.identical => format!("{pair}: no meaningful difference"),
        _ => format!("{pair}: the threads did the same"),
    };
    if let Some(s) = &d.schedule {
        text.push_str(&format!("; schedule: {s}"));
    }
    if let Some(c) = &d.diff_command {
        text.push_str(&format!(" (`{c}`)"));
    }
    text
}

/// Makes text safe inside a Markdown table cell and inline code.
fn markdown_cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
        .replace('<', "&lt;")
}

/// Appends the step summary to `path` (the `$GITHUB_STEP_SUMMARY` file),
/// sizing it to what is left of GitHub's limit.
pub fn append_step_summary(
    report: &Report,
    path: &Path,
    artifact: &ArtifactContext,
) -> std::io::Result<()> {
    let existing = std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let limit = SUMMARY_LIMIT
        .saturating_sub(SUMMARY_MARGIN)
        .saturating_sub(existing);
    let text = step_summary(report, limit, artifact);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Attempt, AttemptOutcome};

    fn test(name: &str, outcome: Outcome) -> TestReport {
        TestReport {
            binary_id: "crate".into(),
            name: name.into(),
            package: "crate".into(),
            outcome,
            duration_ms: 1,
            attempts: vec![Attempt {
                attempt: 1,
                outcome: AttemptOutcome::Failed,
                duration_ms: 1,
                exit_code: Some(101),
                signal: None,
                stdout: String::new(),
                stdout_omitted_bytes: 0,
                stderr: String::new(),
                stderr_omitted_bytes: 0,
                panic: None,
                recorded: false,
                recorder_error: None,
                unrecorded_rerun: None,
                trace: None,
                archive: None,
                verified: None,
                verification_failure: None,
                chaos_seed: None,
            }],
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
    fn the_step_summary_says_where_a_flaky_test_first_differs() {
        let mut t = test("flaky_one", Outcome::Flaky);
        t.runs = Some(12);
        t.failures = Some(1);
        t.first_difference = Some(crate::json::FirstDifference {
            failing_attempt: 7,
            passing_attempt: 1,
            identical: false,
            thread: Some("main.1".into()),
            what: Some("result".into()),
            failing: Some("futex(0x1, FUTEX_WAIT, 2, NULL) = 0".into()),
            passing: Some("futex(0x1, FUTEX_WAIT, 2, NULL) = -1 EAGAIN".into()),
            schedule: Some("after 3 shared stretches: ...".into()),
            diff_command: Some("cargo rrtest diff a b".into()),
            error: None,
        });
        let report = Report::new(String::new(), 0, None, true, vec![t]);
        let text = step_summary(&report, 100_000, &ArtifactContext::default());
        assert!(text.contains("| 1/12 failed |"), "{text}");
        assert!(
            text.contains("- `crate` `flaky_one`: attempt 7 (failing) vs 1 (passing): thread main.1 first differs in result: failing 'futex(0x1, FUTEX_WAIT, 2, NULL) = 0'"),
            "{text}"
        );
        assert!(
            text.contains("schedule: after 3 shared stretches"),
            "{text}"
        );
    }

    #[test]
    fn caps_annotations_with_one_summary() {
        let tests = (0..25)
            .map(|i| test(&format!("t{i:02}"), Outcome::Failed))
            .collect();
        let report = Report::new(String::new(), 0, None, false, tests);
        let paths = PathContext {
            workspace_root: "/w".into(),
            github_workspace: None,
        };
        let out = annotations(&report, &paths);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), ANNOTATION_CAP);
        assert!(lines[9].contains("16 more failing tests"), "{}", lines[9]);
        assert!(lines[9].contains("crate t24"));
    }

    #[test]
    fn summary_stays_under_limit() {
        let tests = (0..5000)
            .map(|i| test(&format!("module::test_{i:05}"), Outcome::Failed))
            .collect();
        let report = Report::new(String::new(), 0, None, false, tests);
        let text = step_summary(&report, 20_000, &ArtifactContext::default());
        assert!(text.len() <= 20_000, "{}", text.len());
        assert!(text.contains("rows omitted"));
    }

    #[test]
    fn escapes_commands() {
        assert_eq!(escape_data("50%\na"), "50%25%0Aa");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn summary_names_artifact_and_replay_command() {
        let mut t = test("tests::fails", Outcome::Failed);
        t.trace = Some("/t/rrtest/traces/crate/tests__fails/attempt-1".into());
        t.archive = Some("/t/rrtest/archives/crate/tests__fails/attempt-1.tar.zst".into());
        t.verified = Some(true);
        t.replay_command = Some("cargo rrtest replay traces-1.zip crate::tests::fails".into());
        let report = Report::new(String::new(), 0, None, true, vec![t]);
        let ctx = ArtifactContext {
            name: Some("traces-1".into()),
            run_id: Some("42".into()),
            repository: Some("o/r".into()),
        };
        let text = step_summary(&report, 100_000, &ctx);
        assert!(
            text.contains("**`traces-1`**") && text.contains("**`traces-1.zip`**"),
            "{text}"
        );
        assert!(
            text.contains("`gh run download 42 -R o/r -n traces-1 -D traces-1`"),
            "{text}"
        );
        assert!(
            text.contains("| verified | `cargo rrtest replay traces-1.zip crate::tests::fails` |"),
            "{text}"
        );
    }

    #[test]
    fn recorder_errors_say_why_and_the_verdict() {
        let mut t = test("tests::odd", Outcome::RecorderError);
        t.attempts[0].outcome = AttemptOutcome::RecorderError;
        t.attempts[0].recorder_error = Some("error: recorder: PTRACE_GETREGS".into());
        let mut native = t.attempts[0].clone();
        native.outcome = AttemptOutcome::Failed;
        native.recorder_error = None;
        native.recorded = false;
        t.attempts.push(native);
        let report = Report::new(String::new(), 0, None, true, vec![t]);
        let paths = PathContext {
            workspace_root: "/w".into(),
            github_workspace: None,
        };
        let out = annotations(&report, &paths);
        assert!(
            out.contains("could not be recorded (failed without recording)")
                && out.contains("Recorder: error: recorder: PTRACE_GETREGS"),
            "{out}"
        );
        let text = step_summary(&report, 100_000, &ArtifactContext::default());
        assert!(
            text.contains("| recorder_error | `crate` `tests::odd` | 1 |")
                && text.contains(
                    "recorder failed: error: recorder: PTRACE_GETREGS; failed without recording"
                ),
            "{text}"
        );
    }
}
