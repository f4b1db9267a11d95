//! Job control with threads, terminal stops and pty ioctls (docs/breadth.md):
//!
//! - `job_control_threads`: a child of four threads (two blocked in
//!   `read`, one in a futex wait, one computing) in a process group of its
//!   own, stopped by `SIGSTOP`, by `SIGTSTP`, and by `SIGTSTP` whose handler
//!   raises `SIGSTOP`, each stop seen with `WUNTRACED` (and checked to be a
//!   stop: the computing thread makes no progress for 20 ms), continued and
//!   seen with `WCONTINUED`, every thread working after, a `SIGCONT` handler
//!   counting; then a process that stops itself from a thread with
//!   `raise(SIGSTOP)` and is continued by a sibling;
//! - `pty_session`: `posix_openpt`, `grantpt`, `unlockpt`, `ptsname` and
//!   `TIOCGPTN`, `TIOCSPTLCK`/`TIOCGPTLCK`, `openpty` in raw mode, the pty
//!   as the controlling terminal of a new session (`setsid`, `TIOCSCTTY`,
//!   `TIOCGSID`), `TCGETS`/`TCSETS`, `TIOCGWINSZ`/`TIOCSWINSZ`,
//!   `FIONREAD`, `TIOCGPGRP`/`TIOCSPGRP`, lines both ways, and background
//!   jobs stopped by `SIGTTOU` (under `TOSTOP`) and `SIGTTIN`, seen, given
//!   the terminal and continued.
//!
//! - `stop_self`: a process of two threads stops itself with
//!   `raise(SIGSTOP)` and is continued from outside the recording (the
//!   trial sends the `SIGCONT`), `::continued_from_outside`.
//!
//! Each of the first two is recorded, verified and replayed [`ROUNDS`] times (stops and
//! continues race with the schedule), the replay's output and exit compared
//! with the recording's; `breadth::tty::under_chaos` records both with
//! --chaos at seeds 1-3 (the chaos steps took a thread's group stop for a
//! late interrupt and stepped it on).

use libtest_mimic::{Failed, Trial};

use std::time::Duration;

use crate::breadth::{all_under_chaos, repeated, spec_trials};
use crate::recorder::{self, invocation, Args, Source, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// How many times each fixture is recorded, verified and replayed.
const ROUNDS: usize = 4;

const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[
            "parent: SIGSTOP stopped the child (stop signal SIGSTOP)\n",
            "parent: SIGTSTP stopped the child (stop signal SIGTSTP)\n",
            "parent: SIGTSTP stopped the child (stop signal SIGSTOP)\n",
            "parent: the SIGTSTP handler ran 1 time(s) and stopped with SIGSTOP; every thread works\n",
            "parent: stopped and continued 4 times, every thread works after each\n",
            "parent: the second child stopped itself with SIGSTOP\n",
            "parent: its sibling continued it\n",
            "parent: the second child went on, its SIGCONT handler ran, exit 0\n",
        ],
        ..Spec::new(
            "job_control_threads",
            Source::C(CBuild::pie("job_control_threads")),
        )
    },
    Spec {
        stdout_has: &[
            "posix_openpt: ptsname agrees with TIOCGPTN\n",
            "TIOCSPTLCK: locked, the slave's open failed with EIO; unlocked again\n",
            "openpty: a raw pair, 81x25, bytes both ways unchanged\n",
            "leader: window 101x33\n",
            "parent: the master sees the window the leader set: 120x40\n",
            "parent: read the leader's line at the master (FIONREAD 24)\n",
            "leader: the background job stopped with SIGTTOU\n",
            "parent: read the background job's line at the master\n",
            "leader: the background job stopped with SIGTTIN\n",
            "leader: the reader read its line, exit 0\n",
        ],
        ..Spec::new("pty_session", Source::C(CBuild::pie("pty_session")))
    },
];

/// The trials: `breadth::tty::NAME::native` and `::record_replay`.
pub fn trials() -> Vec<Trial> {
    let gcc = build::gcc_missing();
    let skip = gcc.is_some() || run::recording_unavailable().is_some();
    let mut trials = spec_trials("breadth::tty", SPECS, |t, s| repeated(t, s, ROUNDS));
    trials.push(
        Trial::test("breadth::tty::stop_self::continued_from_outside", || {
            continued_from_outside("breadth::tty::stop_self::continued_from_outside")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::tty::under_chaos", || {
            all_under_chaos("breadth::tty::under_chaos", SPECS, Duration::from_secs(60))
        })
        .with_ignored_flag(skip),
    );
    trials
}

/// `stop_self` recorded while the trial, outside the recording, waits for
/// it to stop (the pid file it writes, then 300 ms), checks the kernel
/// shows it stopped (`t`, a tracing stop: the recorder holds it), and
/// sends the `SIGCONT`, which the recorder sees at a tick. The recording
/// ends with status 0 within 20 s, the program saw itself stopped for at
/// least 200 ms (so the stop was not run through), the trace verifies, and
/// replay, with no `SIGCONT` to wait for, prints the same.
fn continued_from_outside(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = Spec {
        args: Args::WorkDir,
        stdout_has: &[
            "continued; stopped for at least 200 ms: yes\n",
            "the blocked thread woke and read its byte\n",
        ],
        ..Spec::new("stop_self", Source::C(CBuild::pie("stop_self")))
    };
    let work = dir.sub("work")?;
    let inv = invocation(&spec, work.clone())?;
    let trace = dir.path.join("trace");
    let pid_file = work.join("stop_self.pid");
    let recording = {
        let inv = inv.clone();
        let trace = trace.clone();
        std::thread::spawn(move || inv.record(&trace))
    };
    let start = std::time::Instant::now();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break pid;
        }
        if recording.is_finished() || start.elapsed() > Duration::from_secs(20) {
            let run = recording
                .join()
                .map_err(|_| "the recording thread panicked")??;
            return Err(format!("no pid file from the program\n{}", run.describe()).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(300));
    let state = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("State:"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let sent = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGCONT,
    );
    let rec = recording
        .join()
        .map_err(|_| "the recording thread panicked")??;
    check!(
        state.contains("t (tracing stop)"),
        "300 ms after its pid file the program was not held stopped: {state:?}\n{}",
        rec.describe()
    );
    check!(sent.is_ok(), "sending SIGCONT to {pid}: {sent:?}");
    rec.expect_code(0)?;
    check!(
        rec.elapsed < Duration::from_secs(20),
        "the recording took {:?}",
        rec.elapsed
    );
    for want in spec.stdout_has {
        check!(
            rec.stdout_text().contains(want),
            "no {want:?}\n{}",
            rec.describe()
        );
    }
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}
