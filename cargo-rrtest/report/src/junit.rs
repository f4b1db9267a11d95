//! JUnit XML (`--junit PATH`), in the Maven Surefire dialect CI systems read:
//! one `<testsuite>` per test binary, one `<testcase>` per test; a failed test
//! has a `<failure>` for its last attempt and a `<rerunFailure>` for each earlier
//! one; a flaky test passes with a `<flakyFailure>` per failed attempt; an
//! ignored test has `<skipped/>`, a test that was running when a signal
//! stopped the run `<skipped message="interrupted ..."/>`. A recorder error is an `<error>` (type
//! `recorder_error`, with the reason), the native re-run's failure a
//! `<rerunFailure>`. A test with a kept trace has `<properties>`:
//! `rrtest.trace`, `rrtest.archive`, `rrtest.replay_command`,
//! `rrtest.verified` (and `rrtest.verification_failure`).
//!
//! Written by hand: every attribute and text node goes through [`escape`], which
//! also replaces the control characters XML 1.0 cannot carry at all.

use std::fmt::Write as _;

use super::json::{Attempt, AttemptOutcome, Outcome, Report, TestReport};

/// Renders the report as JUnit XML.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let failures = |tests: &[&TestReport]| {
        tests
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed | Outcome::TimedOut))
            .count()
    };
    let errors = |tests: &[&TestReport]| {
        tests
            .iter()
            .filter(|t| t.outcome == Outcome::RecorderError)
            .count()
    };
    let skipped = |tests: &[&TestReport]| {
        tests
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Ignored | Outcome::Interrupted))
            .count()
    };
    let all: Vec<&TestReport> = report.tests.iter().collect();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"cargo-rrtest\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
        all.len(),
        failures(&all),
        errors(&all),
        skipped(&all),
        seconds(report.duration_ms),
        escape(&report.started_at),
    );
    // Tests are sorted by binary id, so each suite is one contiguous run.
    for suite in all.chunk_by(|a, b| a.binary_id == b.binary_id) {
        let time: u64 = suite.iter().map(|t| t.duration_ms).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
            escape(&suite[0].binary_id),
            suite.len(),
            failures(suite),
            errors(suite),
            skipped(suite),
            seconds(time),
        );
        for test in suite {
            write_testcase(&mut out, test);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn write_testcase(out: &mut String, test: &TestReport) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        escape(&test.name),
        escape(&test.binary_id),
        seconds(test.duration_ms),
    );
    if test.outcome == Outcome::Ignored {
        out.push_str(">\n      <skipped/>\n    </testcase>\n");
        return;
    }
    if test.outcome == Outcome::Interrupted {
        out.push_str(
            ">\n      <skipped message=\"interrupted: the run was stopped while this test ran\"/>\n    </testcase>\n",
        );
        return;
    }
    out.push_str(">\n");
    write_properties(out, test);
    let last = test.attempts.len().saturating_sub(1);
    let mut recorder_errors = 0;
    for (i, attempt) in test.attempts.iter().enumerate() {
        if attempt.outcome.is_pass() {
            continue;
        }
        let element = match (test.outcome, attempt.outcome) {
            (_, AttemptOutcome::RecorderError) => {
                recorder_errors += 1;
                if recorder_errors == 1 {
                    "error"
                } else {
                    "rerunError"
                }
            }
            // The verdict of a test whose recording failed is secondary.
            (Outcome::RecorderError, _) => "rerunFailure",
            (Outcome::Flaky, _) => "flakyFailure",
            _ if i == last => "failure",
            _ => "rerunFailure",
        };
        write_failure(out, element, attempt);
    }
    if let Some(attempt) = test.attempts.last() {
        write_output(out, "      ", attempt);
    }
    out.push_str("    </testcase>\n");
}

/// `<properties>` naming the test's kept trace, if it has one.
fn write_properties(out: &mut String, test: &TestReport) {
    let Some(trace) = &test.trace else {
        return;
    };
    out.push_str("      <properties>\n");
    let verified = test.verified.map(|v| v.to_string());
    for (name, value) in [
        ("rrtest.trace", Some(trace)),
        ("rrtest.archive", test.archive.as_ref()),
        ("rrtest.replay_command", test.replay_command.as_ref()),
        ("rrtest.verified", verified.as_ref()),
        (
            "rrtest.verification_failure",
            test.verification_failure.as_ref(),
        ),
    ] {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "        <property name=\"{name}\" value=\"{}\"/>",
                escape(value)
            );
        }
    }
    out.push_str("      </properties>\n");
}

fn write_failure(out: &mut String, element: &str, attempt: &Attempt) {
    let (kind, message) = describe(attempt);
    let _ = writeln!(
        out,
        "      <{element} message=\"{}\" type=\"{kind}\">",
        escape(&message)
    );
    if matches!(element, "flakyFailure" | "rerunFailure" | "rerunError") {
        // Surefire puts each rerun's output inside its element.
        write_output(out, "        ", attempt);
    } else if let Some(p) = &attempt.panic {
        let _ = writeln!(
            out,
            "{}",
            escape(&format!(
                "{}:{}:{}: {}",
                p.file, p.line, p.column, p.message
            ))
        );
    }
    let _ = writeln!(out, "      </{element}>");
}

fn write_output(out: &mut String, indent: &str, attempt: &Attempt) {
    let _ = writeln!(
        out,
        "{indent}<system-out>{}</system-out>",
        escape(&attempt.stdout)
    );
    let _ = writeln!(
        out,
        "{indent}<system-err>{}</system-err>",
        escape(&attempt.stderr)
    );
}

/// The failure `type` and `message` of a failed attempt.
fn describe(attempt: &Attempt) -> (&'static str, String) {
    let status = match (&attempt.exit_code, &attempt.signal) {
        (_, Some(sig)) => format!("killed by {sig}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "no exit status".to_string(),
    };
    match attempt.outcome {
        AttemptOutcome::TimedOut => (
            "timeout",
            format!("timed out after {}", seconds(attempt.duration_ms)),
        ),
        AttemptOutcome::RecorderError => (
            "recorder_error",
            match &attempt.recorder_error {
                Some(why) => format!("recorder failed: {why}"),
                None => format!("recorder failed ({status})"),
            },
        ),
        _ => match &attempt.panic {
            Some(p) => ("panic", format!("{} ({status})", p.message)),
            None => ("failure", format!("test failed ({status})")),
        },
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Escapes text for an XML 1.0 attribute or text node. Characters XML 1.0
/// cannot represent even as references (C0 controls other than tab, newline and
/// carriage return; U+FFFE, U+FFFF) are written as `\u{XX}`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute values normalise raw newlines to spaces: keep them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c'\u{1b}[31m\u{0}\t"),
            "a&lt;b&gt;&amp;&quot;c&apos;\\u{1b}[31m\\u{0}&#9;"
        );
        assert_eq!(escape("line\nnext"), "line&#10;next");
    }
}
