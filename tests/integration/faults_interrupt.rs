//! Interruptions, leftovers, concurrent runs and atomic outputs:
//!
//! - `faults::replay_ignored_ctrl_c`, `faults::verify_ignored_ctrl_c`: a
//!   SIGINT, SIGTERM or SIGHUP to a long `replay` or `verify` ends it within
//!   2 s with 128 + the signal, its tracee gone, its temporary directory
//!   removed (it once ran to its end, 21 s);
//! - `faults::replay_signal_moments`: the same at seeded random moments,
//!   from the first milliseconds (before the tracee starts) to late;
//! - `faults::replay_dirs_left_by_kill`: a replay killed by SIGKILL leaves
//!   its directory; the next replay removes it;
//! - `faults::concurrent_runs_corrupt_each_other`: two recorded runs in one
//!   target directory: the second waits for the first (saying so once), and
//!   both reports are whole, every kept trace in them there and verified;
//!   no tool log line lands in a test's captured stderr (a timed-out test's
//!   once had the recorder's "termination requested");
//! - `faults::interrupted_report_omits_running_test`: a run stopped by
//!   SIGTERM exits 143 and its report (and JUnit file) say it was
//!   interrupted, listing the running test as `interrupted`;
//! - `faults::full_disk_truncates_report`: a report that cannot be written
//!   (a full tmpfs) leaves the old file whole, and no temporary file;
//! - `faults::server_death_reported_as_timeout`: a recorder server that dies
//!   during an attempt makes it a `recorder_error` naming how it died;
//! - `faults::record_signal_moments`, `faults::run_signal_moments`: SIGINT
//!   or SIGTERM at seeded moments of `record` and of a whole recorded run:
//!   a usable trace (it replays to the recorded status) or a whole report;
//! - `faults::full_disk_while_recording`: a full tmpfs under `record`: exit
//!   105 with one error line, and `replay` refuses the partial trace in one
//!   line;
//! - `faults::full_disk_warns_once`: a tmpfs too small for the program's
//!   libraries: one warning that the trace is unreplayable and one that
//!   counts the rest, not one per file that could not be copied (there
//!   were a dozen);
//! - `faults::unclear_messages`: `record -o FILE/sub` and `--retries -1`;
//! - `faults::stuck_replay_ends_on_sigterm`: a replay blocked waiting for a
//!   process's main thread, whose death the kernel holds back until its
//!   other (dead, traced) threads are reaped, ends on SIGTERM with 143 and
//!   leaves nothing (it waited for ever: an exec from a thread hung so).
//!
//! Every case also checks that no process of it is left (by a variable in
//! the environment of everything it starts) and no temporary directory.
//! The full-disk cases mount a tmpfs (root only; skipped with a message).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The trials.
pub fn trials() -> Vec<Trial> {
    let skip = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    vec![
        Trial::test("faults::replay_ignored_ctrl_c", || {
            replay_stops("faults::replay_ignored_ctrl_c", false)
        })
        .with_ignored_flag(skip),
        Trial::test("faults::verify_ignored_ctrl_c", || {
            replay_stops("faults::verify_ignored_ctrl_c", true)
        })
        .with_ignored_flag(skip),
        Trial::test("faults::replay_signal_moments", || {
            replay_signal_moments("faults::replay_signal_moments")
        })
        .with_ignored_flag(skip),
        Trial::test("faults::replay_dirs_left_by_kill", || {
            replay_dirs_left_by_kill("faults::replay_dirs_left_by_kill")
        })
        .with_ignored_flag(skip),
        Trial::test(
            "faults::concurrent_runs_corrupt_each_other",
            concurrent_runs,
        )
        .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test(
            "faults::interrupted_report_omits_running_test",
            interrupted_report,
        ),
        Trial::test("faults::full_disk_truncates_report", full_disk_report),
        Trial::test("faults::server_death_reported_as_timeout", server_death)
            .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("faults::record_signal_moments", || {
            record_signal_moments("faults::record_signal_moments")
        })
        .with_ignored_flag(skip),
        Trial::test("faults::run_signal_moments", run_signal_moments)
            .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("faults::full_disk_while_recording", || {
            full_disk_recording("faults::full_disk_while_recording")
        })
        .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("faults::full_disk_warns_once", || {
            full_disk_warns_once("faults::full_disk_warns_once")
        })
        .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("faults::unclear_messages", unclear_messages),
        Trial::test("faults::stuck_replay_ends_on_sigterm", || {
            stuck_replay_ends("faults::stuck_replay_ends_on_sigterm")
        })
        .with_ignored_flag(skip),
    ]
}

/// Seeded moments: a small LCG, the same sequence on every run.
struct Moments(u64);

impl Moments {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Mounts a tmpfs of `size` on `mnt` (created); false with a printed
/// reason when that is not possible here.
fn mount_tmpfs(trial: &str, mnt: &Path, size: &str) -> bool {
    let _ = std::fs::create_dir_all(mnt);
    let _ = Command::new("umount")
        .arg(mnt)
        .stderr(Stdio::null())
        .status();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("{trial}: skipped: cannot mount a tmpfs here (not root?)");
    }
    mounted
}

/// Runs `body` with a tmpfs of `size` mounted at `mnt`, and unmounts it
/// after, whatever `body` returned; where none can be mounted, skips `body`
/// with a message ([`mount_tmpfs`]).
fn in_tmpfs(
    trial: &str,
    mnt: &Path,
    size: &str,
    body: impl FnOnce() -> Result<(), Failed>,
) -> Result<(), Failed> {
    if !mount_tmpfs(trial, mnt, size) {
        return Ok(());
    }
    let result = body();
    let _ = Command::new("umount").arg(mnt).status();
    result
}

/// Rounds of `syscall_loop` recorded without the syscall buffer: every
/// syscall a stop, so its replay takes seconds.
const LONG_ROUNDS: &str = "40000";

/// Rounds of `syscall_loop` that outlast any trial (minutes when recorded
/// without the syscall buffer): a recording of it ends only because it was
/// told to.
const ENDLESS_ROUNDS: &str = "100000000";

/// A recorded `syscall_loop` whose replay takes a few seconds: (trial
/// directory, trace, the fixture's path).
fn long_trace(trial: &str) -> Result<(TrialDir, PathBuf, PathBuf), Failed> {
    let dir = TrialDir::new(trial)?;
    let exe = build::c_fixture(CBuild::pie("syscall_loop"))?;
    let trace = dir.path.join("trace");
    let rec = run::run(
        Command::new(common::cargo_rrtest())
            .args(["record", "--no-verify", "--no-syscallbuf", "-o"])
            .arg(&trace)
            .arg("--")
            .arg(&exe)
            .arg(LONG_ROUNDS)
            .env(MARK, trial)
            .current_dir(&dir.path),
    )?;
    rec.expect_code(0)?;
    Ok((dir, trace, exe))
}

/// `cargo-rrtest VERB TRACE` with a private cache and temp directory.
fn spawn_replay(verb: &str, trace: &Path, home: &Path, mark: &str) -> Result<Child, Failed> {
    Ok(Command::new(common::cargo_rrtest())
        .env(MARK, mark)
        .arg(verb)
        .args((verb == "replay").then_some("--quiet"))
        .arg(trace)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("TMPDIR", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {verb}: {e}"))?)
}

/// The variable that marks a trial's processes (inherited by tests,
/// servers and recorded programs, and by replays, which run a program with
/// its recorded environment).
const MARK: &str = "RRTEST_FAULT_MARK";

/// Processes (other than zombies) whose environment has `MARK=mark`.
fn marked(mark: &str) -> Vec<u32> {
    let want = format!("{MARK}={mark}");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// The children of `parent` (started by any of its threads).
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{parent}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    children
}

/// Waits until no process of the trial marked `mark` is left (a second at
/// most).
fn none_left(mark: &str) -> Result<(), Failed> {
    for _ in 0..100 {
        if marked(mark).is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<String> = marked(mark)
        .iter()
        .map(|p| {
            let c = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p} {}", String::from_utf8_lossy(&c).replace('\0', " "))
        })
        .collect();
    Err(format!("processes left behind: {left:?}").into())
}

/// Waits for `child` to exit, at most `limit`; its status and how long it took.
fn wait_for(
    child: &mut Child,
    limit: Duration,
) -> Result<(std::process::ExitStatus, Duration), Failed> {
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, sent.elapsed()));
        }
        if sent.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running {limit:?} after the signal").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The directories left in `home`: the replay cache's and the temp dir's.
fn leftovers(home: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for dir in [home.join("cache/cargo-rrtest/replay"), home.to_path_buf()] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("r-") || name.starts_with("cargo-rrtest-") {
                left.push(e.path());
            }
        }
    }
    left
}

/// A child process that a failed trial does not leave running: on drop, if
/// it still runs, SIGTERM (it stops its tests), then SIGKILL after 5 s.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = kill(self.0.id(), nix::sys::signal::Signal::SIGTERM);
            let until = Instant::now() + Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) -> Result<(), Failed> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
        .map_err(|e| Failed::from(format!("kill {pid} {sig}: {e}")))
}

/// Signals a `replay` (or `verify`) of a long trace once its tracee runs:
/// it must end within 6 s with 128 + the signal, leaving no tracee and no
/// directory; `verify` writes no verdict into the header.
fn replay_stops(trial: &str, verify: bool) -> Result<(), Failed> {
    use nix::sys::signal::Signal;
    let (dir, trace, _) = long_trace(trial)?;
    let signals: &[Signal] = if verify {
        &[Signal::SIGHUP]
    } else {
        &[Signal::SIGINT, Signal::SIGTERM]
    };
    for &sig in signals {
        let home = dir.sub(&format!("home-{sig}"))?;
        let mut reaped = Reaped(spawn_replay(
            if verify { "verify" } else { "replay" },
            &trace,
            &home,
            trial,
        )?);
        let child = &mut reaped.0;
        let pid = child.id();
        let started = Instant::now();
        while children_of(pid).is_empty() {
            check!(
                started.elapsed() < Duration::from_secs(30),
                "the replay's tracee never started"
            );
            check!(
                child.try_wait()?.is_none(),
                "the replay ended before its tracee started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        check!(
            child.try_wait()?.is_none(),
            "the replay ended within 300 ms: the trace is too short for this trial"
        );
        kill(pid, sig)?;
        // The exit status tells a replay that stopped from one that ran on
        // (it would exit with the program's status). The time is a bound on
        // promptness, wide enough for this trial's own thread to be starved
        // on a loaded 2-core machine (it measured 3.8-4 s twice in full
        // runs; a few ms alone).
        let (status, took) = wait_for(child, Duration::from_secs(10))?;
        check!(
            status.code() == Some(128 + sig as i32),
            "{sig}: exit {status} (want {})",
            128 + sig as i32
        );
        check!(took < Duration::from_secs(6), "{sig}: took {took:?}");
        none_left(trial)?;
        let left = leftovers(&home);
        check!(left.is_empty(), "{sig}: left behind: {left:?}");
    }
    if verify {
        let header: Value = serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
        check!(
            header["verification"].is_null(),
            "an interrupted verify wrote a verdict: {}",
            header["verification"]
        );
    }
    dir.finish();
    Ok(())
}

/// SIGINT or SIGTERM at seeded random moments of a replay (0 to 1.5 s
/// after it starts): each ends it, or it had already ended; nothing stays.
fn replay_signal_moments(trial: &str) -> Result<(), Failed> {
    use nix::sys::signal::Signal;
    let (dir, trace, _) = long_trace(trial)?;
    // A small LCG: the same moments on every run.
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for round in 0..5 {
        let delay = Duration::from_millis(next() % 1500);
        let sig = if next() % 2 == 0 {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        let home = dir.sub(&format!("home-{round}"))?;
        let mut reaped = Reaped(spawn_replay("replay", &trace, &home, trial)?);
        let child = &mut reaped.0;
        std::thread::sleep(delay);
        kill(child.id(), sig)?;
        let (status, _) = wait_for(child, Duration::from_secs(3)).map_err(|e| {
            format!(
                "round {round} ({sig} after {delay:?}): {}",
                e.message().unwrap_or("")
            )
        })?;
        let code = status.code().or(status.signal().map(|s| 128 + s));
        check!(
            code == Some(128 + sig as i32) || code == Some(0),
            "round {round} ({sig} after {delay:?}): exit {status}"
        );
        none_left(trial)?;
        let left = leftovers(&home);
        check!(
            left.is_empty(),
            "round {round} ({sig} after {delay:?}): left {left:?}"
        );
    }
    dir.finish();
    Ok(())
}

/// A replay killed by SIGKILL cannot clean up: the next replay removes
/// what it left (its pid, in the directory's name, is gone).
fn replay_dirs_left_by_kill(trial: &str) -> Result<(), Failed> {
    let (dir, trace, _) = long_trace(trial)?;
    let home = dir.sub("home")?;
    let mut reaped = Reaped(spawn_replay("replay", &trace, &home, trial)?);
    let child = &mut reaped.0;
    let started = Instant::now();
    while leftovers(&home).is_empty() {
        check!(
            started.elapsed() < Duration::from_secs(30),
            "no replay directory appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(child.id(), nix::sys::signal::Signal::SIGKILL)?;
    child.wait()?;
    none_left(trial)?;
    let stale = leftovers(&home);
    check!(
        !stale.is_empty(),
        "SIGKILL left nothing: the trial proves nothing"
    );
    // A short replay: `hello`.
    let hello = build::c_fixture(CBuild::pie("hello"))?;
    let short = dir.path.join("hello-trace");
    run::run(
        Command::new(common::cargo_rrtest())
            .args(["record", "--no-verify", "-o"])
            .arg(&short)
            .arg("--")
            .arg(&hello)
            .current_dir(&dir.path),
    )?
    .expect_code(0)?;
    let mut again = spawn_replay("replay", &short, &home, trial)?;
    let (status, _) = wait_for(&mut again, Duration::from_secs(30))?;
    check!(status.success(), "the second replay failed: {status}");
    let left = leftovers(&home);
    check!(left.is_empty(), "the stale directories stayed: {left:?}");
    dir.finish();
    Ok(())
}

/// Runs of the demo: recorded, two tests (one fails: its trace is kept and
/// verified), and `hangs_forever` with `--timeout 2`, so a run lasts a
/// while.
fn demo_command(target: &Path, report: &Path, timeout: &str, mark: &str) -> Command {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.env(MARK, mark)
        .arg("--manifest-path")
        .arg(crate::harness::demo_manifest())
        .arg("--target-dir")
        .arg(target)
        .arg("--report")
        .arg(report)
        .args(["--timeout", timeout, "-j", "2"])
        .args(["checksum_matches", "adds_small_numbers", "hangs_forever"])
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for a child with piped stdout and stderr and returns its output.
fn output_of(child: &mut Reaped) -> Result<std::process::Output, Failed> {
    use std::io::Read;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut err = child.0.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    if let Some(mut out) = child.0.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    stderr.extend(reader.join().unwrap_or_default());
    let status = child.0.wait()?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Whether another process holds the run lock of `target`.
fn lock_held(target: &Path) -> bool {
    std::fs::File::open(target.join("rrtest/lock")).is_ok_and(|f| match f.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    })
}

/// `out/target`, a copy of the built demo's ([`crate::harness::copy_demo_target`]).
fn own_demo_target(out: &Path) -> Result<PathBuf, Failed> {
    let target = out.join("target");
    crate::harness::copy_demo_target(&target)?;
    Ok(target)
}

/// Two recorded runs in one target directory: the second waits (saying so
/// once) and both reports are whole; every kept trace they name is there,
/// verified, and replays.
fn concurrent_runs() -> Result<(), Failed> {
    let out = common::scratch_dir("faults-concurrent");
    let target = &own_demo_target(&out)?;
    let reports = [out.join("first.json"), out.join("second.json")];
    for r in &reports {
        let _ = std::fs::remove_file(r);
    }
    let mut first = Reaped(demo_command(target, &reports[0], "2", "concurrent").spawn()?);
    let started = Instant::now();
    while !lock_held(target) {
        check!(
            started.elapsed() < Duration::from_secs(60),
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut second = Reaped(demo_command(target, &reports[1], "2", "concurrent").spawn()?);
    let outputs = [output_of(&mut first)?, output_of(&mut second)?];
    let second_err = String::from_utf8_lossy(&outputs[1].stderr);
    check!(
        // Only cargo-rrtest's own line: cargo may also wait for its package
        // cache, held by any other cargo on the machine.
        second_err
            .lines()
            .filter(|l| l.contains("Blocking waiting for file lock") && l.contains("rrtest/lock"))
            .count()
            == 1,
        "the second run did not say once that it waits:\n{second_err}"
    );
    for (report, output) in reports.iter().zip(&outputs) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        check!(
            output.status.code() == Some(100),
            "{}: exit {} (want 100)\n{stderr}",
            report.display(),
            output.status
        );
        check!(!stderr.contains("could not pack"), "{stderr}");
        let value: Value = serde_json::from_slice(&std::fs::read(report)?)?;
        let tests = value["tests"].as_array().ok_or("no tests")?;
        check!(
            tests.len() == 3,
            "{}: {} tests",
            report.display(),
            tests.len()
        );
        // The tool's own log lines (a timeout's "termination requested")
        // once landed in the timed-out test's captured stderr.
        check!(
            !stderr.contains("WARN cargo_rrtest"),
            "tool log lines on the run's output:\n{stderr}"
        );
        for t in tests {
            for a in t["attempts"].as_array().into_iter().flatten() {
                let captured = a["stderr"].as_str().unwrap_or("");
                check!(
                    !captured.contains("cargo_rrtest::"),
                    "{}: tool log lines in the test's stderr: {captured}",
                    t["name"]
                );
            }
            check!(
                t["outcome"] != "recorder_error",
                "{}: {} {}",
                report.display(),
                t["name"],
                t["attempts"]
            );
        }
        let checksum = tests
            .iter()
            .find(|t| t["name"] == "tests::checksum_matches")
            .ok_or("checksum_matches missing")?;
        let trace = checksum["trace"]
            .as_str()
            .ok_or("checksum_matches has no trace")?;
        check!(
            checksum["verified"] == true,
            "{}: {checksum}",
            report.display()
        );
        check!(
            Path::new(trace).join("header.json").is_file(),
            "{trace} is gone"
        );
    }
    // The trace the last report names replays (exit 101: the test's panic).
    let last: Value = serde_json::from_slice(&std::fs::read(&reports[1])?)?;
    let trace = last["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "tests::checksum_matches"))
        .and_then(|t| t["trace"].as_str())
        .ok_or("no trace")?
        .to_string();
    let replay =
        run::run(Command::new(common::cargo_rrtest()).args(["replay", "--quiet", &trace]))?;
    replay.expect_code(101)?;
    none_left("concurrent")?;
    Ok(())
}

/// A run stopped by SIGTERM while `hangs_forever` runs: exit 143; the
/// report says it was interrupted, by SIGTERM, and lists the test as
/// `interrupted`; the JUnit file is whole.
fn interrupted_report() -> Result<(), Failed> {
    let target = crate::harness::demo_built();
    let out = common::scratch_dir("faults-interrupted");
    let report = out.join("report.json");
    let junit = out.join("junit.xml");
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&junit);
    let mut reaped = Reaped(
        Command::new(common::cargo_rrtest())
            .args(["--no-record", "--manifest-path"])
            .arg(crate::harness::demo_manifest())
            .arg("--target-dir")
            .arg(target)
            .arg("--report")
            .arg(&report)
            .arg("--junit")
            .arg(&junit)
            .args(["--exact", "hangs_forever"])
            .env_remove("GITHUB_ACTIONS")
            .env(MARK, "interrupted")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let child = &mut reaped.0;
    let started = Instant::now();
    // The test itself (`--exact hangs_forever --nocapture`): a child of
    // cargo-rrtest.
    while !children_of(child.id()).iter().any(|&p| {
        std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("hangs_forever") && c.contains("--nocapture")
        })
    }) {
        check!(
            started.elapsed() < Duration::from_secs(60),
            "the test never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(child.id(), nix::sys::signal::Signal::SIGTERM)?;
    let (status, _) = wait_for(child, Duration::from_secs(10))?;
    check!(status.code() == Some(143), "exit {status} (want 143)");
    none_left("interrupted")?;
    let value: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    check!(
        value["interrupted"] == true,
        "not marked interrupted: {value}"
    );
    check!(
        value["interrupted_by"] == "SIGTERM",
        "{}",
        value["interrupted_by"]
    );
    check!(value["summary"]["interrupted"] == 1, "{}", value["summary"]);
    let tests = value["tests"].as_array().ok_or("no tests")?;
    check!(
        tests.len() == 1 && tests[0]["outcome"] == "interrupted",
        "the running test is not listed as interrupted: {tests:?}"
    );
    let xml = std::fs::read_to_string(&junit)?;
    check!(
        xml.contains("interrupted") && xml.trim_end().ends_with("</testsuites>"),
        "{xml}"
    );
    Ok(())
}

/// A report on a full disk: the write fails (exit 102, the path named),
/// the old report stays whole, and no temporary file is left. Needs a
/// tmpfs mount (root); skipped with a message otherwise.
fn full_disk_report() -> Result<(), Failed> {
    let dir = common::scratch_dir("faults-full-disk");
    let mnt = dir.join("mnt");
    in_tmpfs("faults::full_disk_truncates_report", &mnt, "64k", || {
        let report = mnt.join("report.json");
        std::fs::write(&report, b"{\"old\": true}\n")?;
        // Fill the rest.
        let filler = vec![0u8; 4096];
        let mut f = std::fs::File::create(mnt.join("filler"))?;
        while std::io::Write::write_all(&mut f, &filler).is_ok() {}
        drop(f);
        let r = run::run(
            Command::new(common::cargo_rrtest())
                .args(["--no-record", "--manifest-path"])
                .arg(crate::harness::demo_manifest())
                .arg("--target-dir")
                .arg(crate::harness::demo_built())
                .arg("--report")
                .arg(&report)
                .args(["--exact", "tests::adds_small_numbers"])
                .env_remove("GITHUB_ACTIONS"),
        )?;
        r.expect_code(102)?;
        check!(
            r.stderr_text().contains(&report.display().to_string()),
            "the error does not name the report\n{}",
            r.describe()
        );
        check!(
            std::fs::read(&report)? == b"{\"old\": true}\n",
            "the old report was damaged"
        );
        let names: Vec<String> = std::fs::read_dir(&mnt)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        check!(
            names.iter().all(|n| n == "report.json" || n == "filler"),
            "left behind: {names:?}"
        );
        Ok(())
    })
}

/// The recorder server dies (SIGABRT) while it records `hangs_forever`:
/// the attempt is a `recorder_error` that says the server was killed by
/// SIGABRT, not a timeout; nothing is left running.
fn server_death() -> Result<(), Failed> {
    let out = common::scratch_dir("faults-server-death");
    let target = &own_demo_target(&out)?;
    let report = out.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut cmd = demo_command(target, &report, "4", "server-death");
    cmd.args(["--exact", "hangs_forever"]);
    // Not the three tests of demo_command: `--exact hangs_forever` matches
    // only that one.
    let mut reaped = Reaped(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    let child = &mut reaped.0;
    let started = Instant::now();
    // The server (a child of cargo-rrtest) once it records the test (its
    // child).
    let server = loop {
        let recording = children_of(child.id()).into_iter().find(|&p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("record-server")
                && children_of(p).iter().any(|&t| {
                    std::fs::read(format!("/proc/{t}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("hangs_forever"))
                })
        });
        if let Some(s) = recording {
            break s;
        }
        check!(
            started.elapsed() < Duration::from_secs(120),
            "no server recording the test"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(200));
    kill(server, nix::sys::signal::Signal::SIGABRT)?;
    let (status, _) = wait_for(child, Duration::from_secs(30))?;
    check!(status.code() == Some(100), "exit {status}");
    none_left("server-death")?;
    let value: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    let test = &value["tests"][0];
    check!(test["outcome"] == "recorder_error", "{test}");
    let why = test["attempts"][0]["recorder_error"].as_str().unwrap_or("");
    check!(
        why.contains("recorder server exited") && why.contains("SIGABRT"),
        "the recorder error does not say the server died: {why:?}"
    );
    Ok(())
}

/// SIGINT or SIGTERM to `record`'s process group (as from a terminal) at
/// seeded moments of a program that would run for minutes: it ends
/// promptly with the program's status (SIGINT: passed on to the program,
/// which leads a process group of its own when stdin is not a terminal,
/// 130) or 137 (SIGTERM: the recorder kills the program), its trace
/// finished, and the trace replays to the same status; nothing is left
/// running. (A SIGINT that stopped at the recorder left the program
/// running; the trial accepted its normal end then.)
fn record_signal_moments(trial: &str) -> Result<(), Failed> {
    use nix::sys::signal::Signal;
    let dir = TrialDir::new(trial)?;
    let exe = build::c_fixture(CBuild::pie("syscall_loop"))?;
    let mut moments = Moments(0x007e_c04d);
    for round in 0..3 {
        let delay = Duration::from_millis(50 + moments.next(1500));
        let sig = if moments.next(2) == 0 {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        let trace = dir.path.join(format!("trace-{round}"));
        let mut reaped = Reaped(
            Command::new(common::cargo_rrtest())
                .args(["record", "--no-verify", "--no-syscallbuf", "-o"])
                .arg(&trace)
                .arg("--")
                .arg(&exe)
                .arg(ENDLESS_ROUNDS)
                .env(MARK, trial)
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()?,
        );
        let child = &mut reaped.0;
        std::thread::sleep(delay);
        // To the process group, as a terminal's Ctrl-C (the program gets
        // it too; `record` alone lets the program handle a first SIGINT).
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), sig)
            .map_err(|e| format!("killpg: {e}"))?;
        let (status, _) = wait_for(child, Duration::from_secs(5))?;
        let code = run::shell_code(status);
        let what = format!("round {round} ({sig} after {delay:?})");
        check!(
            [130, 137, 143].contains(&code),
            "{what}: record exit {status}"
        );
        none_left(trial)?;
        let replay = run::run(
            Command::new(common::cargo_rrtest())
                .args(["replay", "--quiet"])
                .arg(&trace)
                .env("XDG_CACHE_HOME", dir.path.join("cache")),
        )?;
        check!(
            replay.code() == code,
            "{what}: recorded {code}, replayed {}\n{}",
            replay.code(),
            replay.describe()
        );
        none_left(trial)?;
    }
    let left = leftovers(&dir.path);
    check!(left.is_empty(), "left behind: {left:?}");
    dir.finish();
    Ok(())
}

/// SIGINT to a whole recorded `cargo rrtest` run of the demo at seeded
/// moments (from the build's end to its verifications): it exits 130, or
/// 100 when it had finished; no process is left; a report, if written, is
/// whole, and every trace it names is there.
fn run_signal_moments() -> Result<(), Failed> {
    let out = common::scratch_dir("faults-run-moments");
    let target = &own_demo_target(&out)?;
    let mut moments = Moments(0x2a2a);
    for round in 0..3 {
        let delay = Duration::from_millis(200 + moments.next(4000));
        let report = out.join(format!("report-{round}.json"));
        let _ = std::fs::remove_file(&report);
        let tmp = out.join(format!("tmp-{round}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let mut cmd = demo_command(target, &report, "2", "run-moments");
        cmd.env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut reaped = Reaped(cmd.spawn()?);
        let child = &mut reaped.0;
        std::thread::sleep(delay);
        kill(child.id(), nix::sys::signal::Signal::SIGINT)?;
        let (status, _) = wait_for(child, Duration::from_secs(10))?;
        let what = format!("round {round} (SIGINT after {delay:?})");
        check!(
            status.code() == Some(130) || status.code() == Some(100),
            "{what}: exit {status}"
        );
        none_left("run-moments")?;
        let leftover: Vec<_> = std::fs::read_dir(&tmp)?
            .flatten()
            .map(|e| e.path())
            .collect();
        check!(leftover.is_empty(), "{what}: left in TMPDIR: {leftover:?}");
        if let Ok(bytes) = std::fs::read(&report) {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{what}: the report is not whole: {e}"))?;
            check!(
                value["interrupted"] == (status.code() == Some(130)),
                "{what}: interrupted is {}",
                value["interrupted"]
            );
            for t in value["tests"].as_array().into_iter().flatten() {
                if let Some(trace) = t["trace"].as_str() {
                    check!(
                        Path::new(trace).join("header.json").is_file(),
                        "{what}: the report names {trace}, which is gone"
                    );
                }
            }
        }
    }
    Ok(())
}

/// A full disk (a 1 MiB tmpfs) under a recording: `record` ends with exit
/// 105 and an error line that says so; the partial trace is refused by
/// `replay` with a one-line error (exit 104); nothing is left running.
fn full_disk_recording(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let mnt = dir.path.join("mnt");
    in_tmpfs(trial, &mnt, "1m", || {
        let trace = mnt.join("trace");
        let rec = run::run(
            Command::new(common::cargo_rrtest())
                .args(["record", "-o"])
                .arg(&trace)
                .args(["--", "/usr/bin/head", "-c", "20000000", "/dev/urandom"])
                .env(MARK, trial)
                .current_dir(&dir.path),
        )?;
        rec.expect_code(105)?;
        let stderr = rec.stderr_text();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        check!(
            errors.len() == 1 && errors[0].contains("No space left on device"),
            "want one error line naming the full disk\n{}",
            rec.describe()
        );
        none_left(trial)?;
        let replay = run::run(
            Command::new(common::cargo_rrtest())
                .args(["replay", "--quiet"])
                .arg(&trace)
                .env("XDG_CACHE_HOME", dir.path.join("cache")),
        )?;
        replay.expect_code(104)?;
        check!(
            replay.stderr_text().trim().lines().count() == 1,
            "want a one-line error\n{}",
            replay.describe()
        );
        Ok(())
    })?;
    dir.finish();
    Ok(())
}

fn full_disk_warns_once(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let mnt = dir.path.join("mnt");
    // Room for the stream's start, not for libc and the others.
    in_tmpfs(trial, &mnt, "600k", || {
        let rec = run::run(
            Command::new(common::cargo_rrtest())
                .args(["record", "--no-verify", "-o"])
                .arg(mnt.join("trace"))
                .args(["--", "/usr/bin/ls", "/"])
                .env(MARK, trial)
                .current_dir(&dir.path),
        )?;
        let stderr = rec.stderr_text();
        let warnings = stderr
            .lines()
            .filter(|l| l.contains("unsupported: the trace will not be replayable"))
            .count();
        check!(
            warnings == 1,
            "want one warning that the trace is unreplayable, saw {warnings}\n{}",
            rec.describe()
        );
        check!(
            stderr.contains("more problems make the trace unreplayable"),
            "the other problems are not counted\n{}",
            rec.describe()
        );
        none_left(trial)?;
        Ok(())
    })?;
    dir.finish();
    Ok(())
}

/// Messages that did not say what was wrong: `record -o FILE/sub` (only
/// "File exists"), and `--retries -1` (suggested `-- -1`, a test filter).
fn unclear_messages() -> Result<(), Failed> {
    let dir = common::scratch_dir("faults-messages");
    let file = dir.join("regular_file");
    std::fs::write(&file, b"x")?;
    let rec = run::run(
        Command::new(common::cargo_rrtest())
            .args(["record", "-o"])
            .arg(file.join("sub"))
            .args(["--", "/bin/true"]),
    )?;
    rec.expect_code(2)?;
    check!(
        rec.stderr_text()
            .contains(&format!("{} is a file, not a directory", file.display())),
        "{}",
        rec.describe()
    );
    let retries = run::run(Command::new(common::cargo_rrtest()).args(["--retries", "-1"]))?;
    retries.expect_code(2)?;
    let text = retries.stderr_text();
    check!(
        text.contains("--retries takes a whole number >= 0") && !text.contains("-- -1"),
        "{}",
        retries.describe()
    );
    Ok(())
}

/// A trace whose replay blocks for good in a wait for a process's main
/// thread: `daemon_threads` (a daemon with two threads, killed after the
/// program exits) with the daemon's `ThreadExit`s moved after its
/// `ProcessExit`. Replay waits for the main thread, which the kernel
/// reports only once the two dead threads are reaped, and they are reaped
/// only at their events, after it. SIGTERM must end it at once (the
/// watchdog's kill reaps them), and the watchdog's 60 s must not be needed.
fn stuck_replay_ends(trial: &str) -> Result<(), Failed> {
    use rrtest_trace::Event;
    let dir = TrialDir::new(trial)?;
    let exe = build::c_fixture(CBuild::pie("daemon_threads"))?;
    let recorded = dir.path.join("recorded");
    let rec = run::run(
        Command::new(common::cargo_rrtest())
            .args(["record", "--no-verify", "-o"])
            .arg(&recorded)
            .arg("--")
            .arg(&exe)
            .env(MARK, trial)
            .current_dir(&dir.path),
    )?;
    rec.expect_code(0)?;
    let (header, mut events) = run::read_trace(&recorded)?;
    let last_exit = events
        .iter()
        .rposition(|e| matches!(e, Event::ProcessExit { .. }))
        .ok_or("no process exit in the trace")?;
    let mut first = last_exit;
    while first > 0 && matches!(events[first - 1], Event::ThreadExit { .. }) {
        first -= 1;
    }
    check!(
        last_exit - first == 2,
        "the daemon's exit is not preceded by its two threads' exits: {:?}",
        &events[first.saturating_sub(3)..=last_exit]
    );
    let threads: Vec<Event> = events.drain(first..last_exit).collect();
    events.extend(threads);
    let trace = dir.path.join("trace");
    run::write_edited_trace(&recorded, &trace, header, &events)?;
    let home = dir.sub("home")?;
    let mut reaped = Reaped(spawn_replay("replay", &trace, &home, trial)?);
    let child = &mut reaped.0;
    // Blocked: still running after 2 s (the whole replay takes well under 1 s).
    std::thread::sleep(Duration::from_secs(2));
    check!(
        child.try_wait()?.is_none(),
        "the replay ended by itself: the trace does not block it"
    );
    kill(child.id(), nix::sys::signal::Signal::SIGTERM)?;
    let (status, took) = wait_for(child, Duration::from_secs(20))?;
    check!(
        status.code() == Some(143),
        "exit {status} after SIGTERM (want 143)"
    );
    check!(took < Duration::from_secs(6), "SIGTERM took {took:?}");
    none_left(trial)?;
    let left = leftovers(&home);
    check!(left.is_empty(), "left behind: {left:?}");
    dir.finish();
    Ok(())
}
