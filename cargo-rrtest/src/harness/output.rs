//! Human output: a live progress bar (indicatif, only when stderr is a
//! terminal), one line per finished test on stdout (`PASS`, `FAIL`, `FLAKY`,
//! `TIMEOUT`, with the duration; `TRY n FAIL` for a failed attempt that is
//! retried), the failing tests' output at the end (on GitHub Actions inside a
//! `::group::`, fenced by `::stop-commands::`), and a summary.
//!
//! Colours only when stdout is a terminal (or `--color always`), never with
//! `NO_COLOR` set under `--color auto`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::runner::{AttemptResult, Repeat, RunEvent, TestResult};
use rrtest_report::{AttemptOutcome, Outcome, Report};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Green,
    Red,
    Yellow,
    Bold,
}

/// The human reporter.
#[derive(Debug)]
pub struct Reporter {
    color: bool,
    bar: Option<ProgressBar>,
    /// The `::stop-commands::` token when on GitHub Actions.
    github_token: Option<String>,
    /// Under `cargo rrtest stress`: the progress so far.
    stress: Option<StressProgress>,
    /// Write the lines to stderr (stdout carries `--message-format` JSON).
    to_stderr: bool,
}

/// Progress of a stress run: runs and failures so far; the bar counts
/// runs (`--count`) or seconds (`--duration`).
#[derive(Debug)]
struct StressProgress {
    started: std::time::Instant,
    by_time: bool,
    runs: u64,
    failures: u64,
}

impl Reporter {
    /// A reporter; `github_token` turns on GitHub Actions grouping and fencing.
    pub fn new(color: ColorChoice, github_token: Option<String>) -> Self {
        Reporter {
            color: color.enabled(),
            bar: None,
            github_token,
            stress: None,
            to_stderr: false,
        }
    }

    /// Sends the lines that go to stdout to stderr instead, for when
    /// stdout carries machine-readable events (`--message-format`).
    pub fn on_stderr(mut self) -> Self {
        self.to_stderr = true;
        self
    }

    /// Where the lines go: stdout, or stderr after [`Reporter::on_stderr`].
    fn out(&self) -> Box<dyn Write + '_> {
        if self.to_stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        }
    }

    /// A status word right-aligned in the 12-column status field, coloured.
    fn status(&self, style: Style, text: &str) -> String {
        self.paint(style, &format!("{text:>12}"))
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match style {
            Style::Green => "1;32",
            Style::Red => "1;31",
            Style::Yellow => "1;33",
            Style::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Prints a line above the progress bar.
    fn line(&self, text: &str) {
        let print = || {
            let _ = writeln!(self.out(), "{text}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Announces the run and starts the progress bar.
    pub fn start(&mut self, to_run: usize, binaries: usize, ignored: usize) {
        let mut text = format!(
            "{} {to_run} {} across {binaries} {}",
            self.status(Style::Green, "Starting"),
            plural(to_run, "test", "tests"),
            plural(binaries, "binary", "binaries"),
        );
        if ignored > 0 {
            text.push_str(&format!(" ({ignored} ignored)"));
        }
        self.line(&text);
        if std::io::stderr().is_terminal() && to_run > 0 {
            let bar =
                ProgressBar::with_draw_target(Some(to_run as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>12.green.bold} [{elapsed_precise}] {wide_bar} {pos}/{len}: {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix("Running");
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        }
    }

    /// Turns the progress bar into a stress run's (after [`Self::start`]):
    /// runs done of `count` per test, or seconds of the duration, with an
    /// estimate of the time left.
    pub fn start_stress(&mut self, tests: usize, repeat: &Repeat) {
        let mut what = Vec::new();
        if let Some(n) = repeat.count {
            what.push(format!("{n} {}", plural(n as usize, "run", "runs")));
        }
        if let Some(d) = repeat.duration {
            what.push(format!("for {:.0}s", d.as_secs_f64()));
        }
        self.line(&format!(
            "{} each test {}, {}",
            self.status(Style::Green, "Stressing"),
            what.join(" or "),
            if repeat.keep_going {
                "counting failures (--keep-going)"
            } else {
                "until its first failure"
            }
        ));
        let by_time = repeat.count.is_none();
        if let Some(bar) = &self.bar {
            let len = match (repeat.count, repeat.duration) {
                (Some(n), _) => n.saturating_mul(tests as u64),
                (None, Some(d)) => d.as_secs().max(1),
                (None, None) => 0,
            };
            bar.set_length(len);
            bar.set_position(0);
            let unit = if by_time { "s" } else { " runs" };
            let style = ProgressStyle::with_template(&format!(
                "{{prefix:>12.green.bold}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}}{unit} (ETA {{eta}}): {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix("Stressing");
        }
        self.stress = Some(StressProgress {
            started: std::time::Instant::now(),
            by_time,
            runs: 0,
            failures: 0,
        });
    }

    /// Handles one runner event.
    pub fn event(&mut self, event: RunEvent<'_>) {
        match event {
            RunEvent::Ran { result } => {
                let Some(last) = result.attempts.last() else {
                    return;
                };
                let failed = matches!(
                    last.outcome,
                    AttemptOutcome::Failed | AttemptOutcome::TimedOut
                );
                if let Some(p) = self.stress.as_mut() {
                    if !last.cancelled {
                        p.runs += 1;
                        p.failures += u64::from(failed);
                    }
                    if let Some(bar) = &self.bar {
                        if p.by_time {
                            bar.set_position(p.started.elapsed().as_secs());
                        } else {
                            bar.inc(1);
                        }
                        bar.set_message(format!("{} failed of {} runs", p.failures, p.runs));
                    }
                }
                if failed {
                    let text = format!(
                        "{} [{}] {} {}",
                        self.status(
                            Style::Red,
                            &format!("RUN {} {}", last.attempt, attempt_word(last.outcome))
                        ),
                        duration(last.duration),
                        result.test.binary.binary_id,
                        result.test.name
                    );
                    self.line(&text);
                }
            }
            RunEvent::Started { test } => {
                // Under stress the message counts failures instead.
                if let (Some(bar), None) = (&self.bar, &self.stress) {
                    bar.set_message(format!("{} {}", test.binary.binary_id, test.name));
                }
            }
            RunEvent::Retrying {
                test,
                attempt,
                total_attempts,
            } => {
                let status = format!("TRY {} {}", attempt.attempt, attempt_word(attempt.outcome));
                let text = format!(
                    "{} [{}] ({}/{total_attempts}) {} {}",
                    self.status(Style::Yellow, &status),
                    duration(attempt.duration),
                    attempt.attempt,
                    test.binary.binary_id,
                    test.name
                );
                self.line(&text);
            }
            RunEvent::Finished { result } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.line(&self.result_line(result));
            }
        }
    }

    fn result_line(&self, result: &TestResult) -> String {
        let (word, style) = if result.cancelled() {
            ("CANCEL", Style::Yellow)
        } else {
            outcome_word(result.outcome)
        };
        // A recorder error's native re-run has the same attempt number.
        let runs = result.attempts.last().map_or(0, |a| a.attempt);
        let tries = if let Some(c) = result.runs {
            format!(" {}/{}", c.failures, c.runs)
        } else if runs > 1 {
            format!(" {runs}/{runs}")
        } else {
            String::new()
        };
        let status = format!("{word}{tries}");
        let mut line = format!(
            "{} [{}] {} {}",
            self.status(style, &status),
            duration(result.duration()),
            result.test.binary.binary_id,
            result.test.name
        );
        if result.outcome == Outcome::RecorderError {
            // The test's own verdict, from its run without recording.
            if let Some(last) = result.attempts.last() {
                line.push_str(&format!(
                    " (without recording: {})",
                    attempt_word(last.outcome)
                ));
            }
        }
        line
    }

    /// Prints the failing tests' output and the summary; stops the bar.
    pub fn finish(
        &mut self,
        results: &[TestResult],
        report: &Report,
        elapsed: Duration,
        cancelled: bool,
    ) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let failing: Vec<&TestResult> = results
            .iter()
            .filter(|r| r.outcome.fails_run(false) || r.runs.is_some_and(|c| c.failures > 0))
            .collect();
        let mut out = self.out();
        for r in &failing {
            // The last failing attempt (stress keeps a passing one too).
            let Some(last) = r
                .attempts
                .iter()
                .rev()
                .find(|a| !a.outcome.is_pass())
                .or(r.attempts.last())
            else {
                continue;
            };
            let body = self.failure_output(r, last);
            match &self.github_token {
                Some(token) => {
                    let title = format!(
                        "{} {} {}",
                        outcome_word(r.outcome).0,
                        r.test.binary.binary_id,
                        r.test.name
                    );
                    let _ =
                        rrtest_report::github::write_fenced_group(&mut out, &title, token, &body);
                }
                None => {
                    let _ = out.write_all(body.as_bytes());
                }
            }
        }
        let s = &report.summary;
        let ran = s.total - s.ignored;
        let mut parts = vec![format!("{} passed", s.passed)];
        for (n, what) in [
            (s.flaky, "flaky"),
            (s.failed, "failed"),
            (s.timed_out, "timed out"),
            (s.recorder_error, "recorder errors"),
            (s.interrupted, "interrupted"),
            (s.ignored, "ignored"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let bad = s.failed + s.timed_out + s.recorder_error > 0;
        let _ = writeln!(out, "{}", "-".repeat(12));
        let _ = writeln!(
            out,
            "{} [{}] {ran} {} run: {}{}",
            self.status(if bad { Style::Red } else { Style::Green }, "Summary"),
            duration(elapsed),
            plural(ran as usize, "test", "tests"),
            parts.join(", "),
            if cancelled { " (cancelled)" } else { "" }
        );
        // Under stress every test's line: its failures of its runs.
        for r in results
            .iter()
            .filter(|r| r.outcome != Outcome::Passed || r.runs.is_some())
        {
            if r.outcome == Outcome::Ignored {
                continue;
            }
            let _ = writeln!(out, "{}", self.result_line(r));
        }
        for t in report.tests.iter().filter(|t| t.trace.is_some()) {
            let (word, style) = match t.verified {
                Some(true) => ("Trace", Style::Green),
                Some(false) => ("Unverified", Style::Yellow),
                None => ("Trace", Style::Yellow),
            };
            let mut text = format!(
                "{} {} {}: {}",
                self.status(style, word),
                t.binary_id,
                t.name,
                t.replay_command.as_deref().unwrap_or_default()
            );
            if let Some(bytes) = t.archive_bytes {
                text.push_str(&format!(" (archive {})", rrtest_report::human_bytes(bytes)));
            }
            if let Some(why) = &t.verification_failure {
                text.push_str(&format!(" (does not replay: {why})"));
            }
            let _ = writeln!(out, "{text}");
        }
        for t in &report.tests {
            if let Some(d) = &t.first_difference {
                let _ = writeln!(
                    out,
                    "{} {} {}: {}",
                    self.status(Style::Yellow, "Differs"),
                    t.binary_id,
                    t.name,
                    rrtest_report::github::first_difference_text(d)
                );
            }
        }
        if let Some(line) = archives_line(&archive_sizes(&report.tests)) {
            let _ = writeln!(out, "{} {line}", self.status(Style::Green, "Archives"));
        }
        for r in results.iter() {
            for a in r.attempts.iter().filter(|a| a.recorder_error.is_some()) {
                let _ = writeln!(
                    out,
                    "{} {} {}: attempt {} could not be recorded: {}",
                    self.status(Style::Red, "Recorder"),
                    r.test.binary.binary_id,
                    r.test.name,
                    a.attempt,
                    a.recorder_error.as_deref().unwrap_or_default()
                );
            }
        }
    }

    fn failure_output(&self, r: &TestResult, last: &AttemptResult) -> String {
        let id = format!(
            "{} {} (attempt {}/{})",
            r.test.binary.binary_id,
            r.test.name,
            last.attempt,
            r.attempts.len().max(last.attempt as usize)
        );
        let mut body = String::new();
        for (label, captured) in [("STDOUT", &last.stdout), ("STDERR", &last.stderr)] {
            body.push_str(&self.paint(Style::Bold, &format!("--- {label}: {id} ---")));
            body.push('\n');
            if captured.omitted > 0 {
                body.push_str(&format!("[{} earlier bytes omitted]\n", captured.omitted));
            }
            let text = captured.text();
            body.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                body.push('\n');
            }
        }
        body.push('\n');
        body
    }

    /// Prints a warning (to stderr, above the bar).
    pub fn warn(&self, text: &str) {
        let print = || eprintln!("{} {text}", self.status(Style::Yellow, "warning"));
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Prints a note (to stderr, above the bar).
    pub fn note(&self, text: &str) {
        let print = || eprintln!("{} {text}", self.status(Style::Yellow, "note"));
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

/// The summary's line on the archives the run packed (every kept
/// attempt's, retries included): how many, their size in all and the
/// largest; `None` when it packed none. `sizes` are their sizes.
fn archives_line(sizes: &[u64]) -> Option<String> {
    let largest = *sizes.iter().max()?;
    let total: u64 = sizes.iter().sum();
    Some(format!(
        "{} {} packed, {} in all (largest {}; `cargo rrtest info ARCHIVE` breaks one down)",
        sizes.len(),
        plural(sizes.len(), "archive", "archives"),
        rrtest_report::human_bytes(total),
        rrtest_report::human_bytes(largest)
    ))
}

/// The sizes of the archives of every attempt in `tests` (the ones still
/// there).
fn archive_sizes(tests: &[rrtest_report::TestReport]) -> Vec<u64> {
    tests
        .iter()
        .flat_map(|t| &t.attempts)
        .filter_map(|a| a.archive.as_ref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .collect()
}

fn outcome_word(outcome: Outcome) -> (&'static str, Style) {
    match outcome {
        Outcome::Passed => ("PASS", Style::Green),
        Outcome::Failed => ("FAIL", Style::Red),
        Outcome::Flaky => ("FLAKY", Style::Yellow),
        Outcome::TimedOut => ("TIMEOUT", Style::Red),
        Outcome::Ignored => ("IGNORED", Style::Yellow),
        Outcome::RecorderError => ("RECERR", Style::Red),
        Outcome::Interrupted => ("INTERRUPTED", Style::Yellow),
    }
}

fn attempt_word(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Passed => "PASS",
        AttemptOutcome::Failed => "FAIL",
        AttemptOutcome::TimedOut => "TIMEOUT",
        AttemptOutcome::RecorderError => "RECERR",
        AttemptOutcome::Interrupted => "INTERRUPTED",
    }
}

/// `   0.123s`, fixed width so columns line up.
fn duration(d: Duration) -> String {
    format!("{:>8.3}s", d.as_secs_f64())
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_line_sums_the_kept_archives() {
        assert_eq!(archives_line(&[]), None);
        assert_eq!(
            archives_line(&[3 << 20, 1 << 20]).as_deref(),
            Some("2 archives packed, 4.0 MiB in all (largest 3.0 MiB; `cargo rrtest info ARCHIVE` breaks one down)")
        );
        assert!(archives_line(&[512])
            .unwrap_or_default()
            .starts_with("1 archive packed, 512 B in all (largest 512 B;"));
    }
}
