//! Comparing two recordings of one test ([`compare`]): reads both event
//! streams and runs `rrtest_trace::diff` with the syscall table's argument
//! counts and renderings; [`summary`] condenses the result into the
//! report's `first_difference` of a flaky test.
//!
//! It owns the glue only: the rules are `rrtest_trace::diff`'s, the human
//! and JSON output of `cargo rrtest diff` is `cli/diff.rs`'s. It must not
//! keep or delete traces.

use std::path::Path;

use super::signals::signal_name;
use rrtest_report::FirstDifference;
use rrtest_trace::diff::{self, Action, Diff, ScheduleDifference};
use rrtest_trace::{Event, TraceReader};

/// The longest output text shown in one action's rendering.
const OUTPUT_PREVIEW: usize = 100;

/// The events of the trace in `dir`.
pub fn load(dir: &Path) -> Result<Vec<Event>, rrtest_trace::Error> {
    let mut reader = TraceReader::open(dir)?;
    let mut events = Vec::new();
    while let Some(event) = reader.next_event()? {
        events.push(event);
    }
    Ok(events)
}

/// The comparison's options: this build's syscall table.
pub fn options(context: usize) -> diff::Options<'static> {
    diff::Options {
        arg_count: &rrtest_syscalls::arg_count,
        describe: &describe,
        context,
    }
}

/// Compares the recordings in `a` and `b`.
pub fn compare(a: &Path, b: &Path) -> Result<Diff, rrtest_trace::Error> {
    let (ea, eb) = (load(a)?, load(b)?);
    Ok(diff::diff(&ea, &eb, &options(diff::DEFAULT_CONTEXT)))
}

/// One action, for people: `futex(0x7f.., FUTEX_WAIT, 2, NULL) = 0`.
pub fn describe(action: &Action) -> String {
    match action {
        Action::Exec { exe, .. } => format!("exec {exe}"),
        Action::Syscall {
            nr,
            args,
            ret,
            output,
            buffered,
            blocked,
            ..
        } => {
            let mut s = match args {
                Some(args) => rrtest_syscalls::describe(&rrtest_syscalls::Call {
                    nr: *nr,
                    args: *args,
                    ret: *ret,
                }),
                None => {
                    let call = rrtest_syscalls::describe(&rrtest_syscalls::Call {
                        nr: *nr,
                        args: [0; 6],
                        ret: *ret,
                    });
                    // The buffer records no arguments: `name(...) = result`.
                    match (call.find('('), call.rfind(") = ")) {
                        (Some(open), Some(close)) => {
                            format!("{}(...){}", &call[..open], &call[close + 1..])
                        }
                        _ => call,
                    }
                }
            };
            if let Some(out) = output {
                let mut text: String = out.text.chars().take(OUTPUT_PREVIEW).collect();
                if text.len() < out.text.len() {
                    text.push_str("...");
                }
                s.push_str(&format!(
                    " [{} {text:?}]",
                    if out.fd == 1 { "stdout" } else { "stderr" }
                ));
            }
            if *buffered {
                s.push_str(" (buffered)");
            }
            if *blocked {
                s.push_str(" (blocked)");
            }
            s
        }
        Action::Rdtsc { .. } => "rdtsc".into(),
        Action::Signal { signo, delivery } => {
            format!("signal {} ({delivery})", signal_name(*signo))
        }
        Action::NewTask { child, .. } => format!("new thread {child}"),
        Action::Preempt { ip } => format!("preempted at {ip:#x}"),
        Action::TraceeWrite {
            target,
            what,
            addr,
            len,
            mask,
        } => {
            let mut s = format!("ptrace write into {target}: {what}");
            if let Some(addr) = addr {
                s.push_str(&format!(" at {addr:#x}"));
            }
            match mask {
                Some(mask) => s.push_str(&format!(" {mask:#x}")),
                None => s.push_str(&format!(" ({len} bytes)")),
            }
            s
        }
        Action::ThreadExit => "thread exit".into(),
        Action::ProcessExit { code, signal } => match (code, signal) {
            (Some(c), _) => format!("process exit {c}"),
            (_, Some(s)) => format!("process killed by {}", signal_name(*s)),
            _ => "process exit".into(),
        },
        Action::Unsupported { what } => format!("unsupported: {what}"),
    }
}

/// The schedule difference in a line: `after 12 shared stretches, main.1
/// ran 4 actions then main.2 (failing); main.1 ran 6 then main (passing)`.
pub fn schedule_line(s: &ScheduleDifference, a: &str, b: &str) -> String {
    let side = |x: &Option<diff::Stretch>| match x {
        Some(x) => format!(
            "{} ran to its action {}, then {}",
            x.thread,
            x.actions_done,
            x.then.as_deref().unwrap_or("the end")
        ),
        None => "the recording had ended".into(),
    };
    format!(
        "after {} shared {}: {} ({a}); {} ({b})",
        s.same_runs,
        if s.same_runs == 1 {
            "stretch"
        } else {
            "stretches"
        },
        side(&s.a),
        side(&s.b)
    )
}

/// The command that compares two kept traces.
pub fn diff_command(failing: &Path, passing: &Path) -> String {
    format!(
        "cargo rrtest diff {} {}",
        super::shell_word(&failing.display().to_string()),
        super::shell_word(&passing.display().to_string())
    )
}

/// The report's condensed form of `diff` (A failing, B passing).
pub fn summary(
    diff: &Diff,
    failing_attempt: u32,
    passing_attempt: u32,
    diff_command: Option<String>,
) -> FirstDifference {
    let first = diff.first_difference.as_ref();
    FirstDifference {
        failing_attempt,
        passing_attempt,
        identical: diff.identical,
        thread: first.map(|f| f.thread.clone()),
        what: first.map(|f| f.what.clone()),
        failing: first.and_then(|f| f.a.as_ref()).map(|l| l.text.clone()),
        passing: first.and_then(|f| f.b.as_ref()).map(|l| l.text.clone()),
        schedule: diff
            .schedule
            .as_ref()
            .map(|s| schedule_line(s, "failing", "passing")),
        diff_command,
        error: None,
    }
}

/// The report's entry when the recordings could not be compared.
pub fn failed_summary(failing_attempt: u32, passing_attempt: u32, why: String) -> FirstDifference {
    FirstDifference {
        failing_attempt,
        passing_attempt,
        identical: false,
        thread: None,
        what: None,
        failing: None,
        passing: None,
        schedule: None,
        diff_command: None,
        error: Some(why),
    }
}
