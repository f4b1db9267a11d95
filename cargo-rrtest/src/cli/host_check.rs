//! `cargo rrtest replay --check` and the check every replay makes first:
//! can this host replay the trace? Compares the recording host in the
//! trace's header with this one (`tracee::host`), prints what differs, and
//! refuses (exit 106, `Error::OtherHost`) where the CPUs differ in what the
//! program can observe, unless `--force`. It does not replay anything.

use std::path::Path;
use std::process::ExitCode;

use crate::errors::{exit_codes, Error, Result};
use crate::tracee::host;

/// Before a replay of the trace in `dir`: with `check`, prints the verdict
/// and returns the exit code to end with; else prints the warnings, and
/// refuses with the differences unless `force` (then they are warnings).
pub fn before_replay(dir: &Path, check: bool, force: bool) -> Result<Option<ExitCode>> {
    let header = rrtest_trace::read_header(dir)?;
    let verdict = host::check(&header);
    if check {
        print!("{}", render(dir, &header, &verdict));
        let code = if verdict.can_replay() {
            exit_codes::SUCCESS
        } else {
            exit_codes::OTHER_HOST
        };
        return Ok(Some(ExitCode::from(code)));
    }
    for w in &verdict.warnings {
        eprintln!("warning: {w}");
    }
    if !verdict.can_replay() {
        if !force {
            return Err(Error::OtherHost(format!(
                "this host cannot replay {}: {}; `cargo rrtest replay --check` explains, `--force` replays anyway",
                dir.display(),
                verdict.refusals.join("; ")
            )));
        }
        for r in &verdict.refusals {
            eprintln!("warning: replaying anyway (--force): {r}");
        }
    }
    Ok(None)
}

/// `--check`'s report.
fn render(dir: &Path, header: &rrtest_trace::Header, verdict: &host::Check) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let recorded = match &header.host {
        Some(h) => format!(
            "{}, {}, {}",
            h.cpu_model,
            header.kernel,
            if h.libc.is_empty() {
                "libc unknown"
            } else {
                &h.libc
            }
        ),
        None => format!("{}, {}", host::model_of(&header.cpuid), header.kernel),
    };
    let this = host::facts();
    let _ = writeln!(s, "trace:       {}", dir.display());
    let _ = writeln!(s, "recorded on: {recorded}");
    let _ = writeln!(
        s,
        "this host:   {}, {}, {}",
        this.cpu_model,
        host::kernel(),
        this.libc
    );
    for n in &verdict.notes {
        let _ = writeln!(s, "note:        {n}");
    }
    for w in &verdict.warnings {
        let _ = writeln!(s, "warning:     {w}");
    }
    for r in &verdict.refusals {
        let _ = writeln!(s, "differs:     {r}");
    }
    if verdict.can_replay() {
        let _ = writeln!(s, "verdict:     this host can replay the trace");
    } else {
        let _ = writeln!(
            s,
            "verdict:     this host cannot replay the trace (the program would observe another CPU); --force tries anyway"
        );
    }
    s
}
