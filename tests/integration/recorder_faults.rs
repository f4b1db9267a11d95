//! Recorder trials about what goes wrong, and about `info`:
//!
//! - `divergence`: a trace whose copy of the executable is swapped for a build
//!   that makes one extra `getpid()`, or that writes other bytes of the same
//!   length, must replay to a divergence error (exit 103) naming the event
//!   index, the thread and the syscall (or the output);
//! - `corrupt`: damaged traces (flipped or truncated event stream, missing
//!   files, a future format version, a header that is not JSON) make `replay`
//!   and `info` exit 104 with a message, never a panic;
//! - `info`: `info --json` reports the format version, the command and the
//!   counters;
//! - `unknown_syscall`: a syscall number the kernel answers with ENOSYS is
//!   recorded and replayed like any result;
//! - `faults::trace_write_error`: a trace that cannot be written (a file
//!   size limit, as a full disk would) ends the recording with exit 105 and
//!   the write's own error, and its partial trace is refused by `replay`;
//! - `faults::buffer_header_overwritten`: a program that writes over its
//!   syscall buffer's header ends the recording with exit 105 and a message
//!   that says so, never a huge allocation or read;
//! - `faults::interrupted_verification`: a SIGINT while `record` verifies the
//!   trace ends it at once; the trace stays, finished and unverified;
//! - `faults::leaked_daemon_is_killed`: a program that exits and leaves a
//!   daemon running (20 s of sleep) is recorded to its exit, not the
//!   daemon's: the recording ends at once, the daemon is killed (none is
//!   left), the header counts it and `info` says so.

use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};

use crate::recorder::{invocation, Args, Source, Spec};
use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, TrialDir};

/// `replay`'s exit status for a divergence (docs/exit-codes.md).
const EXIT_DIVERGENCE: i32 = 103;
/// `replay`'s and `info`'s exit status for an unreadable trace.
const EXIT_BAD_TRACE: i32 = 104;

/// A damage done to a copy of a good trace.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// XOR the zstd frame header's descriptor byte (sets its reserved bit).
    EventsFrameHeaderFlipped,
    /// XOR 32 bytes in the middle of events.zst.
    EventsMiddleFlipped,
    /// Cut events.zst in half.
    EventsTruncated,
    /// Delete events.zst.
    EventsMissing,
    /// Set header.json's format_version to 999.
    FutureVersion,
    /// Delete header.json.
    HeaderMissing,
    /// Replace header.json with bytes that are not JSON.
    HeaderGarbage,
}

const DAMAGES: &[(&str, Damage)] = &[
    (
        "events_frame_header_flipped",
        Damage::EventsFrameHeaderFlipped,
    ),
    ("events_middle_flipped", Damage::EventsMiddleFlipped),
    ("events_truncated", Damage::EventsTruncated),
    ("events_missing", Damage::EventsMissing),
    ("header_future_version", Damage::FutureVersion),
    ("header_missing", Damage::HeaderMissing),
    ("header_garbage", Damage::HeaderGarbage),
];

/// The fault trials.
pub fn trials() -> Vec<Trial> {
    // Every fault trial records a C fixture first (the reasons are printed
    // by recorder::trials).
    let skip = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    let mut trials = vec![
        Trial::test("recorder::divergence::other_output_bytes", || {
            divergence(
                "recorder::divergence::other_output_bytes",
                Variant {
                    fixture: "hello",
                    define: "OTHER_GREETING",
                    args: &[],
                    names: "output of write",
                },
            )
        }),
        Trial::test("recorder::divergence::extra_getpid", || {
            divergence(
                "recorder::divergence::extra_getpid",
                Variant {
                    fixture: "syscall_loop",
                    define: "EXTRA_SYSCALL",
                    args: &["50"],
                    names: "getpid",
                },
            )
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::divergence::swapped_buffered_pair", || {
            divergence(
                "recorder::divergence::swapped_buffered_pair",
                Variant {
                    fixture: "syscall_loop",
                    define: "SWAPPED_PAIR",
                    args: &["50"],
                    names: "buffered write",
                },
            )
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::info::json_fields", || {
            info_fields("recorder::info::json_fields")
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::faults::trace_write_error", || {
            trace_write_error("recorder::faults::trace_write_error")
        })
        .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("recorder::faults::buffer_header_overwritten", || {
            buffer_header_overwritten("recorder::faults::buffer_header_overwritten")
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::faults::interrupted_verification", || {
            interrupted_verification("recorder::faults::interrupted_verification")
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::unknown_syscall::enosys_replays", || {
            unknown_syscall("recorder::unknown_syscall::enosys_replays")
        })
        .with_ignored_flag(skip),
        Trial::test("recorder::faults::leaked_daemon_is_killed", || {
            leaked_daemon_is_killed("recorder::faults::leaked_daemon_is_killed")
        }),
        Trial::test("recorder::initial_signal_mask", || {
            initial_signal_mask("recorder::initial_signal_mask")
        })
        .with_ignored_flag(skip),
    ];
    for &(name, damage) in DAMAGES {
        let trial = format!("recorder::corrupt::{name}");
        let t = trial.clone();
        trials.push(Trial::test(trial, move || corrupt(&t, damage)).with_ignored_flag(skip));
    }
    trials
}

const HELLO: Spec = Spec::new("hello", Source::C(CBuild::pie("hello")));

/// Records `spec` into `dir/trace`, requiring a clean exit 0.
fn record_ok(dir: &TrialDir, spec: &Spec) -> Result<PathBuf, Failed> {
    let inv = invocation(spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    if !trace.join("header.json").is_file() || !trace.join("events.zst").is_file() {
        return Err(format!(
            "{} lacks header.json or events.zst after recording\n{}",
            trace.display(),
            rec.describe()
        )
        .into());
    }
    Ok(trace)
}

/// A program recorded with SIGUSR2 blocked and SIGUSR1 ignored (inherited
/// from whoever started the recorder: a blocked mask and `SIG_IGN` survive
/// `execve`) starts so in replay too, though the replayer runs with neither:
/// otherwise its own `sigprocmask` and `sigaction` (executed in replay)
/// report something else, and its output differs. (A harness that blocks
/// Ctrl-C while it runs verifications made traces fail to verify so.)
fn initial_signal_mask(trial: &str) -> Result<(), Failed> {
    use nix::sys::signal::{SigSet, Signal};
    let dir = TrialDir::new(trial)?;
    let spec = Spec::new("initial_mask", Source::C(CBuild::pie("initial_mask")));
    let inv = invocation(&spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let mut usr2 = SigSet::empty();
    usr2.add(Signal::SIGUSR2);
    // This trial's thread only: the recorder and the program inherit it.
    usr2.thread_block()
        .map_err(|e| format!("blocking SIGUSR2: {e}"))?;
    let rec = inv.record_wrapped(
        &["env", "--ignore-signal=SIGUSR1"],
        &trace,
        &["--no-verify"],
    );
    usr2.thread_unblock()
        .map_err(|e| format!("unblocking SIGUSR2: {e}"))?;
    let rec = rec?;
    rec.expect_code(0)?;
    let want = "SIGUSR2 blocked at start: 1\nSIGUSR1 ignored at start: 1\n";
    if rec.stdout_text() != want {
        return Err(format!("recorded output: {}", rec.describe()).into());
    }
    let replay = inv.replay(&trace)?;
    replay.expect_code(0)?;
    if replay.stdout_text() != want {
        return Err(format!("replayed output: {}", replay.describe()).into());
    }
    Ok(())
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, Failed> {
    Ok(run::snapshot(dir)?
        .into_iter()
        .filter(|(_, (kind, _))| kind.starts_with("file"))
        .map(|(rel, _)| dir.join(rel))
        .collect())
}

/// Swap the trace's copy of the executable for a build with one extra
/// syscall; replay must diverge at that syscall.
/// A build of a fixture that behaves differently from the plain one.
struct Variant {
    fixture: &'static str,
    /// The `-D` that makes the variant.
    define: &'static str,
    args: &'static [&'static str],
    /// What the divergence message must name.
    names: &'static str,
}

fn divergence(trial: &str, v: Variant) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let plain = build::c_fixture(CBuild::pie(v.fixture))?;
    let defines: &'static [&'static str] = Box::leak(vec![v.define].into_boxed_slice());
    let extra = build::c_fixture(CBuild {
        name: v.fixture,
        link: Link::Pie,
        defines,
    })?;
    let spec = Spec {
        name: v.fixture,
        source: Source::C(CBuild::pie(v.fixture)),
        args: Args::Fixed(v.args),
        ..HELLO
    };
    let trace = record_ok(&dir, &spec)?;

    // Control: the untouched trace replays cleanly, so what follows is caused
    // by the swap alone.
    let control = run::replay_in(&trace, None)?;
    control.expect_code(0).map_err(|e| {
        format!(
            "the untouched trace does not replay: {}",
            e.message().unwrap_or("")
        )
    })?;

    let plain_bytes = std::fs::read(&plain).map_err(|e| format!("{}: {e}", plain.display()))?;
    let extra_bytes = std::fs::read(&extra).map_err(|e| format!("{}: {e}", extra.display()))?;
    let copies: Vec<PathBuf> = files_under(&trace.join("files"))?
        .into_iter()
        .filter(|p| std::fs::read(p).map(|b| b == plain_bytes).unwrap_or(false))
        .collect();
    if copies.is_empty() {
        return Err(format!(
            "no file under {}/files has the executable's bytes ({})",
            trace.display(),
            plain.display()
        )
        .into());
    }
    for copy in &copies {
        // Unlink first: the copy may be a hard link to the fixture binary,
        // which must stay intact.
        let perms = std::fs::metadata(copy)
            .map(|m| m.permissions())
            .map_err(|e| format!("{e}"))?;
        std::fs::remove_file(copy).map_err(|e| format!("removing {}: {e}", copy.display()))?;
        std::fs::write(copy, &extra_bytes)
            .map_err(|e| format!("writing {}: {e}", copy.display()))?;
        std::fs::set_permissions(copy, perms)
            .map_err(|e| format!("chmod {}: {e}", copy.display()))?;
    }

    let rep = run::replay_in(&trace, None)?;
    rep.expect_code(EXIT_DIVERGENCE)?;
    let err = rep.stderr_text();
    let lower = err.to_ascii_lowercase();
    let mut missing = Vec::new();
    if !lower.contains("diverged") {
        missing.push("the word \"diverged\"");
    }
    if !run::names_event_index(&err) {
        missing.push("the event index");
    }
    if !lower.contains("thread") && !lower.contains("tid") {
        missing.push("the thread");
    }
    if !lower.contains(v.names) {
        missing.push(v.names);
    }
    no_panic(&rep)?;
    if !missing.is_empty() {
        return Err(format!(
            "the divergence message lacks {}\n{}",
            missing.join(", "),
            rep.describe()
        )
        .into());
    }
    dir.finish();
    Ok(())
}

fn no_panic(r: &run::Run) -> Result<(), Failed> {
    if r.stderr_text().contains("panicked") {
        return Err(format!("cargo-rrtest panicked\n{}", r.describe()).into());
    }
    Ok(())
}

/// Damage a copy of a good trace; `replay` and `info` must both refuse it
/// with exit 104 and a message.
fn corrupt(trial: &str, damage: Damage) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let good = record_ok(&dir, &HELLO)?;
    let bad = dir.path.join("damaged");
    run::copy_tree(&good, &bad)?;
    let events = bad.join("events.zst");
    let header = bad.join("header.json");
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    match damage {
        Damage::EventsFrameHeaderFlipped
        | Damage::EventsMiddleFlipped
        | Damage::EventsTruncated => {
            let mut bytes = std::fs::read(&events).map_err(|e| io(&events, e))?;
            if bytes.len() < 16 {
                return Err(format!("events.zst is only {} bytes", bytes.len()).into());
            }
            match damage {
                // Bytes 0..4 are the zstd magic; byte 4 the frame header
                // descriptor, whose bit 3 is reserved and must be zero.
                Damage::EventsFrameHeaderFlipped => bytes[4] ^= 0xff,
                Damage::EventsMiddleFlipped => {
                    let mid = bytes.len() / 2;
                    let end = (mid + 32).min(bytes.len());
                    bytes[mid..end].iter_mut().for_each(|b| *b ^= 0xff);
                }
                _ => bytes.truncate(bytes.len() / 2),
            }
            std::fs::write(&events, bytes).map_err(|e| io(&events, e))?;
        }
        Damage::EventsMissing => std::fs::remove_file(&events).map_err(|e| io(&events, e))?,
        Damage::FutureVersion => {
            let text = std::fs::read_to_string(&header).map_err(|e| io(&header, e))?;
            let mut json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("header.json is not JSON: {e}"))?;
            if json.get("format_version").is_none() {
                return Err("header.json has no format_version".into());
            }
            json["format_version"] = 999.into();
            std::fs::write(&header, json.to_string()).map_err(|e| io(&header, e))?;
        }
        Damage::HeaderMissing => std::fs::remove_file(&header).map_err(|e| io(&header, e))?,
        Damage::HeaderGarbage => {
            std::fs::write(&header, b"{\"format_version\": 1, \"argv\": [\x00\xff")
                .map_err(|e| io(&header, e))?
        }
    }

    for r in [run::replay_in(&bad, None)?, run::info_json(&bad)?] {
        r.expect_code(EXIT_BAD_TRACE)?;
        no_panic(&r)?;
        if r.stderr_text().trim().is_empty() {
            return Err(format!("no message on stderr\n{}", r.describe()).into());
        }
        if matches!(damage, Damage::FutureVersion) && !r.stderr_text().contains("999") {
            return Err(format!(
                "the message does not name the trace's version (999)\n{}",
                r.describe()
            )
            .into());
        }
    }
    dir.finish();
    Ok(())
}

/// `info --json` has the format version, the command and the counters.
fn info_fields(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let trace = record_ok(&dir, &HELLO)?;
    let exe = build::c_fixture(CBuild::pie("hello"))?;
    let json = run::info_value(&trace)?;
    let fail = |what: &str| -> Failed { format!("info --json: {what}\n{json:#}").into() };

    if json["format_version"].as_u64().is_none_or(|v| v < 1) {
        return Err(fail("format_version is not a version number"));
    }
    let command = json
        .get("argv")
        .or_else(|| json.get("command"))
        .ok_or_else(|| fail("no argv or command"))?;
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !command.to_string().contains(&exe_name) {
        return Err(fail(&format!(
            "argv/command does not name the program {exe_name}"
        )));
    }
    let stats = json.get("stats").ok_or_else(|| fail("no stats"))?;
    for key in [
        "traced_syscalls",
        "buffered_syscalls",
        "patched_sites",
        "signals",
        "async_events",
    ] {
        if stats[key].as_u64().is_none() {
            return Err(fail(&format!("stats.{key} is not a number")));
        }
    }
    if stats["traced_syscalls"].as_u64() == Some(0) {
        return Err(fail("stats.traced_syscalls is 0"));
    }
    let events = json["events"]
        .as_u64()
        .or_else(|| stats["events"].as_u64())
        .ok_or_else(|| fail("no event count (events or stats.events)"))?;
    if events == 0 {
        return Err(fail("the event count is 0"));
    }
    dir.finish();
    Ok(())
}

/// An unknown syscall number (1000): the kernel answers ENOSYS, which is
/// recorded like any result, so the trace verifies and replays the same
/// output (it used to make the trace unreplayable). A call the recorder
/// does not know that does something is refused: breadth::int80_syscall.
fn unknown_syscall(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = Spec {
        name: "unknown_syscall",
        source: Source::C(CBuild::pie("unknown_syscall")),
        ..HELLO
    };
    let inv = invocation(&spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    let out = rec.stdout_text();
    if out.lines().last() != Some("EXIT-SUCCESS") || !out.contains("errno 38") {
        return Err(format!(
            "the program did not run to its end with ENOSYS\n{}",
            rec.describe()
        )
        .into());
    }
    crate::recorder::expect_verified(&trace)?;
    let rep = run::replay_in(&trace, None)?;
    no_panic(&rep)?;
    rep.expect_code(0)?;
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    dir.finish();
    Ok(())
}

/// The recorder under a file size limit of 2 MiB (SIGXFSZ ignored, so a
/// write past it fails with EFBIG, as one fails with ENOSPC on a full disk)
/// records `dd` reading 32 MiB of /dev/urandom, whose buffered reads carry
/// their bytes into `events.zst`: the recording must stop with exit 105 and
/// the write's own error, naming the file, without panicking; the partial
/// trace then replays to a refusal (104), not a panic.
fn trace_write_error(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = run::Invocation {
        exe: PathBuf::from("/bin/dd"),
        args: ["if=/dev/urandom", "of=/dev/null", "bs=64k", "count=512"]
            .map(std::ffi::OsString::from)
            .to_vec(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    // dash and bash both count `ulimit -f` in 512-byte blocks here
    // (bash in POSIX mode, which `sh` is).
    let rec = inv.record_wrapped(
        &[
            "sh",
            "-c",
            "trap '' XFSZ; ulimit -f 4096; exec \"$0\" \"$@\"",
        ],
        &trace,
        &["--no-verify"],
    )?;
    no_panic(&rec)?;
    rec.expect_code(105)?;
    let err = rec.stderr_text();
    if !(err.contains("events.zst") && err.contains("File too large")) {
        return Err(format!(
            "the error does not name the trace file and the write's error\n{}",
            rec.describe()
        )
        .into());
    }
    let rep = run::replay_in(&trace, None)?;
    no_panic(&rep)?;
    rep.expect_code(EXIT_BAD_TRACE)?;
    dir.finish();
    Ok(())
}

/// `buffer_scribble` sets its syscall buffer header's `used` to nearly 4
/// GiB: the recording stops (exit 105) and says the program wrote over the
/// buffer, without panicking.
fn buffer_header_overwritten(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = Spec {
        name: "buffer_scribble",
        source: Source::C(CBuild::pie("buffer_scribble")),
        ..HELLO
    };
    let inv = invocation(&spec, dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let rec = inv.record_with(&dir.path.join("trace"), &["--no-verify"])?;
    no_panic(&rec)?;
    rec.expect_code(105)?;
    if !rec.stderr_text().contains("the program wrote over it") {
        return Err(format!(
            "the error does not say the buffer header was overwritten\n{}",
            rec.describe()
        )
        .into());
    }
    dir.finish();
    Ok(())
}

/// `record` of `signal_storm` (whose verification replays 12000 signals, a
/// second or more) gets a SIGINT as soon as the recording is over (its
/// header has an outcome), while it keeps and verifies the trace: it must
/// end at once, killed by the SIGINT as a command is, leaving the finished
/// trace unverified.
fn interrupted_verification(trial: &str) -> Result<(), Failed> {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let dir = TrialDir::new(trial)?;
    let spec = Spec {
        name: "signal_storm",
        source: Source::C(CBuild::pie("signal_storm")),
        ..HELLO
    };
    let inv = invocation(&spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let mut child = std::process::Command::new(crate::common::cargo_rrtest())
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&inv.exe)
        .args(&inv.args)
        .current_dir(&inv.work)
        .env("TMPDIR", &inv.work)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting cargo-rrtest record: {e}"))?;
    let outcome = |trace: &Path| -> bool {
        std::fs::read(trace.join("header.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|h| !h["outcome"].is_null())
    };
    let started = Instant::now();
    while !outcome(&trace) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("record ended ({status}) before its trace had an outcome").into());
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Err("the recording did not finish in 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
        .map_err(|e| format!("sending SIGINT: {e}"))?;
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting: {e}"))? {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            return Err("record went on for 5 s after a SIGINT during verification".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.signal() != Some(nix::sys::signal::Signal::SIGINT as i32) {
        return Err(format!(
            "record was not ended by the SIGINT but {status} (did the verification finish first?)"
        )
        .into());
    }
    let header: serde_json::Value = serde_json::from_slice(
        &std::fs::read(trace.join("header.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if header["outcome"].is_null() || !header["verification"].is_null() {
        return Err(format!(
            "the trace should be finished and unverified: outcome {}, verification {}",
            header["outcome"], header["verification"]
        )
        .into());
    }
    dir.finish();
    Ok(())
}

/// A program that leaves a daemon behind (fixtures/c/leaky_daemon.c): the
/// recording ends when the program does, plus the grace period, and the
/// daemon (whose sleep outlasts the trial) is gone. Before, the recorder
/// waited for the daemon, and a test run reported such a test as timed out.
fn leaked_daemon_is_killed(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = Spec::new("leaky_daemon", Source::C(CBuild::pie("leaky_daemon")));
    let exe = build::c_fixture(CBuild::pie("leaky_daemon"))?;
    let started = std::time::Instant::now();
    let trace = record_ok(&dir, &spec)?;
    let took = started.elapsed();
    // Record and its verification replay; the daemon sleeps 20 s.
    if took > std::time::Duration::from_secs(15) {
        return Err(format!("recording took {took:?}: it waited for the daemon").into());
    }
    let header: serde_json::Value = serde_json::from_slice(
        &std::fs::read(trace.join("header.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if header["stats"]["leaked_processes"].as_u64() != Some(1) {
        return Err(format!("stats.leaked_processes is not 1\n{:#}", header["stats"]).into());
    }
    if header["verification"]["verified"].as_bool() != Some(true) {
        return Err(format!("the trace did not verify\n{:#}", header["verification"]).into());
    }
    let info = run::info(&trace)?;
    info.expect_code(0)?;
    if !String::from_utf8_lossy(&info.stdout).contains("leaked:") {
        return Err(format!(
            "info does not say a process was killed\n{}",
            info.describe()
        )
        .into());
    }
    // No process of the fixture started by this trial is left: this trial's
    // runs have `TMPDIR` set to its own work directory (the fixture's native
    // trial leaves its own daemon, elsewhere, for 20 s).
    let mark = format!("TMPDIR={}", dir.path.join("work").display());
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let ours = std::fs::read_link(entry.path().join("exe")).is_ok_and(|t| t == exe)
            && std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == mark.as_bytes()));
        if ours {
            left.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if !left.is_empty() {
        return Err(format!("processes of {} are still running: {left:?}", exe.display()).into());
    }
    dir.finish();
    Ok(())
}
