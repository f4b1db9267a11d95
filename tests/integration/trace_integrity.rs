//! A trace is untrusted input (docs/threat-model.md): a real recording,
//! changed after the fact, must never replay or verify as if it were the
//! recording. An event stream edited in the middle (and recompressed, so
//! zstd's own checksum holds) or cut at a record boundary fails `replay`,
//! `verify` and `info` with the bad-trace exit code (104) before the
//! program runs, and `verify` takes back an earlier "verified". A FIFO in
//! place of a trace file is refused, never waited on; a missing copy in
//! `files/` is named; inputs that never end (`/dev/zero`) are refused; the
//! messages say what is wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, Run, TrialDir};

/// This area's trials.
pub fn trials() -> Vec<Trial> {
    let no_recording = run::recording_unavailable().is_some();
    let no_head = which("head").is_none();
    let no_gcc = build::gcc_missing().is_some();
    vec![
        Trial::test(
            "trace_integrity::edited_stream_fails_replay_verify_and_info",
            edited_stream_fails_replay_verify_and_info,
        )
        .with_ignored_flag(no_recording || no_head),
        Trial::test(
            "trace_integrity::stream_cut_at_a_frame_boundary_fails",
            stream_cut_at_a_frame_boundary_fails,
        )
        .with_ignored_flag(no_recording || no_gcc),
        Trial::test(
            "trace_integrity::fifo_in_place_of_a_trace_file_is_refused",
            fifo_in_place_of_a_trace_file_is_refused,
        )
        .with_ignored_flag(no_recording || no_gcc),
        Trial::test(
            "trace_integrity::missing_file_copy_is_named",
            missing_file_copy_is_named,
        )
        .with_ignored_flag(no_recording || no_gcc),
        Trial::test(
            "trace_integrity::archives_of_gnu_tar_replay_and_a_full_temp_dir_says_so",
            archives_of_gnu_tar_replay_and_a_full_temp_dir_says_so,
        )
        .with_ignored_flag(
            no_recording
                || no_gcc
                || which("unshare").is_none()
                || which("tar").is_none()
                || !is_root(),
        ),
        Trial::test(
            "trace_integrity::endless_and_huge_inputs_are_refused",
            endless_and_huge_inputs_are_refused,
        ),
        Trial::test(
            "trace_integrity::bad_inputs_get_clear_messages",
            bad_inputs_get_clear_messages,
        ),
    ]
}

const BAD_TRACE: i32 = 104;
const USAGE: i32 = 2;

/// Whether we are root (mounting a tmpfs, even in a namespace of its own,
/// needs it): `/proc/self` belongs to the effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// `cargo-rrtest ARGS` under `timeout 30`: a command that blocks (on a
/// FIFO) exits 124 rather than hang the test run.
fn rrtest(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<Run, Failed> {
    let mut cmd = Command::new("timeout");
    cmd.arg("30").arg(common::cargo_rrtest());
    for a in args {
        cmd.arg(a.as_ref());
    }
    run::run(&mut cmd)
}

/// Expects exit code `code` and `needles` in stderr.
fn expect(run: &Run, code: i32, needles: &[&str]) -> Result<(), Failed> {
    run.expect_code(code)?;
    let err = run.stderr_text();
    for n in needles {
        check!(err.contains(n), "stderr lacks {n:?}\n{}", run.describe());
    }
    Ok(())
}

fn decoded(trace: &Path) -> Result<Vec<u8>, Failed> {
    let file = std::fs::read(trace.join("events.zst"))?;
    Ok(zstd::decode_all(&file[..])?)
}

fn write_frames(trace: &Path, frames: &[&[u8]]) -> Result<(), Failed> {
    let mut out = Vec::new();
    for f in frames {
        out.extend(zstd::encode_all(*f, 1)?);
    }
    std::fs::write(trace.join("events.zst"), out)?;
    Ok(())
}

fn verified(trace: &Path) -> Result<Option<bool>, Failed> {
    let text = std::fs::read_to_string(trace.join("header.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    Ok(v["verification"]["verified"].as_bool())
}

fn edited_stream_fails_replay_verify_and_info() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-edited-stream")?;
    let work = trial.sub("work")?;
    std::fs::write(work.join("in.txt"), "integrity-canary-0123456789\n")?;
    let inv = Invocation {
        exe: which("head").ok_or("no head")?,
        args: vec!["-n1".into(), "in.txt".into()],
        work,
    };
    let trace = trial.path.join("trace");
    let recorded = inv.record(&trace)?;
    recorded.expect_code(0)?;
    check!(
        verified(&trace)? == Some(true),
        "the recording was not verified\n{}",
        recorded.describe()
    );
    // The bytes `head` read are in the stream; change them, recompress.
    let mut stream = decoded(&trace)?;
    let at = stream
        .windows(6)
        .position(|w| w == b"canary")
        .ok_or("the bytes read are not in the decoded stream")?;
    stream[at..at + 6].copy_from_slice(b"CANARY");
    write_frames(&trace, &[&stream])?;

    let replay = inv.replay(&trace)?;
    expect(&replay, BAD_TRACE, &["corrupt", "checksum"])?;
    check!(
        !replay.stdout_text().contains("CANARY"),
        "replay printed the changed output\n{}",
        replay.describe()
    );
    let verify = rrtest(&[&"verify", &trace])?;
    expect(&verify, BAD_TRACE, &["checksum"])?;
    check!(
        !verify.stdout_text().contains("verified"),
        "verify says verified\n{}",
        verify.describe()
    );
    check!(
        verified(&trace)? == Some(false),
        "the header still says verified after verify found the stream changed"
    );
    let info = run::info_json(&trace)?;
    expect(&info, BAD_TRACE, &["checksum"])?;
    trial.finish();
    Ok(())
}

fn stream_cut_at_a_frame_boundary_fails() -> Result<(), Failed> {
    let built = build::c_fixture(CBuild::pie("hello"))?;
    let trial = TrialDir::new("trace-integrity-cut-stream")?;
    let inv = Invocation {
        exe: built,
        args: Vec::new(),
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    inv.record(&trace)?.expect_code(0)?;
    let stream = decoded(&trace)?;
    // The end record: its tag (0xff), a one-byte length, then exactly that
    // many bytes (the event count and the checksum) to the end.
    let end = (11..=20usize)
        .map(|len| stream.len() - len)
        .find(|&at| stream[at] == 0xff && usize::from(stream[at + 1]) == stream.len() - at - 2)
        .ok_or("no end record at the end of the stream")?;
    // Two frames, the second holding just the end record: reads as one.
    write_frames(&trace, &[&stream[..end], &stream[end..]])?;
    inv.replay(&trace)?.expect_code(0)?;
    // The file cut after the first frame: valid zstd, no end record.
    write_frames(&trace, &[&stream[..end]])?;
    let replay = inv.replay(&trace)?;
    expect(&replay, BAD_TRACE, &["corrupt", "without its end record"])?;
    check!(
        !replay.stdout_text().contains("hello"),
        "the cut trace replayed its output\n{}",
        replay.describe()
    );
    let verify = rrtest(&[&"verify", &trace])?;
    expect(&verify, BAD_TRACE, &["without its end record"])?;
    check!(verified(&trace)? == Some(false), "still verified");
    trial.finish();
    Ok(())
}

fn record_hello(trial: &TrialDir) -> Result<(Invocation, PathBuf), Failed> {
    let built = build::c_fixture(CBuild::pie("hello"))?;
    let inv = Invocation {
        exe: built,
        args: Vec::new(),
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    inv.record(&trace)?.expect_code(0)?;
    Ok((inv, trace))
}

fn mkfifo(path: &Path) -> Result<(), Failed> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
    Ok(())
}

fn fifo_in_place_of_a_trace_file_is_refused() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-fifo")?;
    let (_, good) = record_hello(&trial)?;
    let files: Vec<PathBuf> = std::fs::read_dir(good.join("files"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    for (case, replace) in [
        ("header", vec![PathBuf::from("header.json")]),
        ("events", vec![PathBuf::from("events.zst")]),
        (
            "files",
            files
                .iter()
                .map(|p| Path::new("files").join(p.file_name().unwrap_or_default()))
                .collect(),
        ),
    ] {
        let bad = trial.path.join(format!("bad-{case}"));
        run::copy_tree(&good, &bad)?;
        for rel in &replace {
            std::fs::remove_file(bad.join(rel))?;
            mkfifo(&bad.join(rel))?;
        }
        for verb in ["replay", "info"] {
            let r = rrtest(&[&verb, &bad])?;
            check!(r.code() != 124, "{verb} blocked on a FIFO ({case})");
            expect(&r, BAD_TRACE, &["FIFO"]).map_err(|e| {
                format!(
                    "{verb}, FIFO for {case}: {}",
                    e.message().unwrap_or_default()
                )
            })?;
        }
    }
    trial.finish();
    Ok(())
}

fn missing_file_copy_is_named() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-missing-file")?;
    let (_, trace) = record_hello(&trial)?;
    // Every copy gone: the program's own executable, named by the first
    // event, is the first one missed.
    let mut removed = Vec::new();
    for e in std::fs::read_dir(trace.join("files"))? {
        let e = e?;
        removed.push(e.file_name().to_string_lossy().into_owned());
        std::fs::remove_file(e.path())?;
    }
    for verb in ["replay", "info"] {
        let r = rrtest(&[&verb, &trace])?;
        expect(&r, BAD_TRACE, &["is missing"])?;
        let err = r.stderr_text();
        check!(
            removed
                .iter()
                .any(|id| err.contains(&format!("files/{id}"))),
            "{verb} does not name the missing files/<id>\n{}",
            r.describe()
        );
    }
    trial.finish();
    Ok(())
}

fn endless_and_huge_inputs_are_refused() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-endless-inputs")?;
    let out = trial.path.join("m.json");
    let merge = rrtest(&[&"merge-reports", &"/dev/zero", &"-o", &out])?;
    expect(&merge, USAGE, &["/dev/zero", "regular file"])?;
    // A file larger than any report, sparse: refused before it is read.
    let huge = trial.path.join("huge.json");
    std::fs::File::create(&huge)?.set_len(300 << 20)?;
    let merge = rrtest(&[&"merge-reports", &huge, &"-o", &out])?;
    expect(&merge, USAGE, &["huge.json", "over the limit of 256 MiB"])?;
    let target = trial.sub("target")?;
    let replay = rrtest(&[
        &"replay",
        &"--target-dir",
        &target,
        &"--report",
        &"/dev/zero",
        &"some_test",
    ])?;
    expect(&replay, USAGE, &["/dev/zero", "regular file"])?;
    // A header.json that is too large.
    let trace = trial.sub("trace")?;
    std::fs::File::create(trace.join("header.json"))?.set_len(100 << 20)?;
    let info = rrtest(&[&"info", &trace])?;
    expect(&info, BAD_TRACE, &["header.json", "over the limit"])?;
    trial.finish();
    Ok(())
}

fn bad_inputs_get_clear_messages() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-messages")?;
    let info = rrtest(&[&"info", &trial.path.join("nonexistent")])?;
    expect(&info, BAD_TRACE, &["does not exist"])?;
    let out = trial.path.join("m.json");
    let missing = trial.path.join("missing.json");
    let merge = rrtest(&[&"merge-reports", &missing, &"-o", &out])?;
    expect(&merge, USAGE, &["missing.json"])?;
    let broken = trial.path.join("broken.json");
    std::fs::write(&broken, "{ not json")?;
    let target = trial.sub("target")?;
    let replay = rrtest(&[
        &"replay",
        &"--target-dir",
        &target,
        &"--report",
        &broken,
        &"some_test",
    ])?;
    expect(
        &replay,
        USAGE,
        &["broken.json", "not a cargo-rrtest report"],
    )?;
    trial.finish();
    Ok(())
}

/// Regressions: unpacking an archive into a temporary directory without
/// room said the trace was corrupt, and PAX archives were refused. Archives
/// made by GNU tar replay; on a 16 MiB file system (a tmpfs mounted in a mount namespace
/// of the command's own) it is refused as an I/O error that says so.
fn archives_of_gnu_tar_replay_and_a_full_temp_dir_says_so() -> Result<(), Failed> {
    let trial = TrialDir::new("trace-integrity-full-tmp")?;
    let (_, trace) = record_hello(&trial)?;
    let stage = trial.sub("stage")?;
    run::copy_tree(&trace, &stage.join("rrtest-trace"))?;
    // Archives as GNU tar writes them replay: ustar, PAX (`posix`: an
    // extended header with times before every entry; refused as an unknown
    // entry type before) and GNU.
    for format in ["ustar", "posix", "gnu"] {
        let archive = trial.path.join(format!("hello-{format}.tar.zst"));
        let tar = run::run(
            Command::new("tar")
                .arg("--zstd")
                .arg(format!("--format={format}"))
                .arg("-cf")
                .arg(&archive)
                .arg("-C")
                .arg(&stage)
                .arg("rrtest-trace"),
        )?;
        tar.expect_code(0)?;
        let replay = rrtest(&[&"replay", &archive])?;
        replay
            .expect_code(0)
            .map_err(|e| format!("{format}: {}", e.message().unwrap_or_default()))?;
    }
    let archive = trial.path.join("hello-ustar.tar.zst");
    let small = trial.sub("small-tmp")?;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=16m none "$1" && TMPDIR="$1" exec "$2" replay "$3""#)
        .arg("sh")
        .arg(&small)
        .arg(common::cargo_rrtest())
        .arg(&archive);
    let full = run::run(&mut cmd)?;
    expect(&full, BAD_TRACE, &["not enough free space", "TMPDIR"])?;
    check!(
        !full.stderr_text().contains("corrupt"),
        "a full temporary directory reported as corruption\n{}",
        full.describe()
    );
    trial.finish();
    Ok(())
}
