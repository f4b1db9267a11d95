//! Portable traces: a trace recorded on one userland replays on another.
//!
//! - Simulated (always, as root): in a private mount namespace another file
//!   is bind-mounted over this host's dynamic loader (the trixie root's
//!   loader, else a copy of `true`), and the trace recorded outside replays
//!   there; the same trace with its loader dropped from the header (as an
//!   older cargo-rrtest wrote it) diverges at event 1, proving the loader was
//!   really replaced.
//! - Real: a minimal Debian 13 root (glibc 2.41; this host is Debian 12,
//!   glibc 2.36) built by `scripts/make-other-root.sh`, entered with chroot
//!   in a private mount namespace (`unshare -m`: /proc, /dev and the trial's
//!   directory are bind-mounted there and vanish with the namespace, so
//!   nothing is left mounted whatever happens): C programs recorded here
//!   replay there, one recorded there replays here, and a failing demo
//!   test's archive replays there showing the panic. Ignored, with the
//!   reason printed, when the root is missing.
//! - A Rust program whose code is chosen by the CPU at run time
//!   (fixtures/simd: the `memchr` crate's `is_x86_feature_detected!`
//!   dispatch, glibc's memchr/strlen ifuncs), passing and failing, recorded
//!   here replays here and there, and recorded there replays here.
//! - Sizes: the demo run's report and summary give each kept archive's
//!   size, and `info` breaks an archive down into the event stream, the
//!   executable, the loader, the libraries and other files.
//! - The CPU check: `replay --check` and the refusal (exit 106) where the
//!   recorded CPU features differ, `--force`.
//! - `#!` scripts (fixtures/c/shebang_exec: a program execs a `#!/bin/sh`
//!   script): the trace keeps the interpreter the kernel ran and its
//!   loader, and replay runs those: simulated (another program bind-mounted
//!   over this host's `/bin/sh` in a mount namespace) and in the other
//!   root (whose `/bin/sh` is Debian 13's dash). In both, the same trace
//!   with its `interpreters` dropped from the header (as an older
//!   cargo-rrtest wrote it) diverges, proving the host's was not used.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, expect_same_bytes, Run, TrialDir};

const EXIT_OTHER_HOST: i32 = 106;
const EXIT_DIVERGENCE: i32 = 103;
/// `replay`'s exit status when the replayer fails otherwise.
const EXIT_REPLAY_FAILED: i32 = 102;

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    let mut cannot: Option<String> = run::recording_unavailable().map(str::to_owned);
    if cannot.is_none() {
        cannot = build::gcc_missing().map(str::to_owned);
    }
    if cannot.is_none() && !is_root() {
        cannot = Some("not root (mount namespaces and chroot need it)".into());
    }
    if let Some(why) = &cannot {
        eprintln!("portable trials: ignored: {why}");
    }
    let no_root = cannot.clone().or_else(other_root_missing);
    if let (None, Some(why)) = (&cannot, &no_root) {
        eprintln!("portable trials: the chroot trials are ignored: {why}");
    }
    let basic = cannot.is_some();
    let chroot = no_root.is_some();
    vec![
        Trial::test(
            "portable::loader::simulated_other_loader",
            simulated_other_loader,
        )
        .with_ignored_flag(basic),
        Trial::test("portable::cpu::check_and_force", check_and_force).with_ignored_flag(basic),
        Trial::test(
            "portable::archive_sizes_are_reported",
            archive_sizes_are_reported,
        )
        .with_ignored_flag(run::recording_unavailable().is_some()),
        Trial::test("portable::old_trace_without_host_facts", old_trace_replays)
            .with_ignored_flag(basic),
        Trial::test(
            "portable::chroot::hello_recorded_here_replays_there",
            || here_to_there("portable::chroot::hello_here_there", "hello"),
        )
        .with_ignored_flag(chroot),
        Trial::test(
            "portable::chroot::threads_recorded_here_replay_there",
            || here_to_there("portable::chroot::threads_here_there", "threads_basic"),
        )
        .with_ignored_flag(chroot),
        Trial::test(
            "portable::chroot::recorded_there_replays_here",
            there_to_here,
        )
        .with_ignored_flag(chroot),
        Trial::test("portable::simd::memchr_replays_here", || {
            simd_here_to_there(false)
        })
        .with_ignored_flag(basic),
        Trial::test(
            "portable::chroot::simd_memchr_recorded_here_replays_there",
            || simd_here_to_there(true),
        )
        .with_ignored_flag(chroot),
        Trial::test(
            "portable::chroot::simd_memchr_recorded_there_replays_here",
            simd_there_to_here,
        )
        .with_ignored_flag(chroot),
        Trial::test(
            "portable::chroot::demo_archive_replays_there",
            demo_archive_replays_there,
        )
        .with_ignored_flag(chroot),
        Trial::test(
            "portable::shebang::simulated_other_interpreter",
            simulated_other_interpreter,
        )
        .with_ignored_flag(basic),
        Trial::test(
            "portable::chroot::shebang_recorded_here_replays_there",
            shebang_here_to_there,
        )
        .with_ignored_flag(chroot),
    ]
}

pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// The other root: `$RRTEST_OTHER_ROOT`, else target/other-root/trixie.
fn other_root() -> PathBuf {
    match std::env::var_os("RRTEST_OTHER_ROOT") {
        Some(p) => PathBuf::from(p),
        None => common::repo_root().join("target/other-root/trixie"),
    }
}

/// Why there is no usable other root, if there is none.
fn other_root_missing() -> Option<String> {
    let root = other_root();
    if !root.join(".rrtest-root-complete").exists() {
        return Some(format!(
            "no Debian 13 root at {} (build it with scripts/make-other-root.sh, or set RRTEST_OTHER_ROOT)",
            root.display()
        ));
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        return Some("unshare(1) is not installed".into());
    }
    None
}

/// `cmd` run as root in a private mount namespace, with `setup` (shell
/// commands, `$1`.. = `args`) run there first. The namespace's mounts are
/// private (`unshare -m` makes them so), so they end with it.
fn in_namespace(setup: &str, args: &[&Path], cmd: &[&str]) -> Result<Run, Failed> {
    let script = format!("set -e\n{setup}\nshift {}\nexec \"$@\"", args.len());
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .args(args)
    .args(cmd)
    .env("RUST_BACKTRACE", "0")
    .env_remove("RUST_LIB_BACKTRACE");
    run::run(&mut c)
}

/// Why the chroot trials cannot run here, if they cannot (for other
/// modules' trials in the other root).
pub(crate) fn chroot_unavailable() -> Option<String> {
    if let Some(why) = run::recording_unavailable() {
        return Some(why.to_owned());
    }
    if !is_root() {
        return Some("not root (mount namespaces and chroot need it)".into());
    }
    other_root_missing()
}

/// `cmd` run inside the other root, whose `/mnt` is `work` (a directory of
/// this host's).
pub(crate) fn in_other_root(work: &Path, cmd: &[&str]) -> Result<Run, Failed> {
    let root = other_root();
    let setup = "mount --bind /proc \"$1/proc\"\nmount --bind /dev \"$1/dev\"\nmount --bind \"$2\" \"$1/mnt\"";
    let root_s = root.to_str().ok_or("root path not UTF-8")?.to_owned();
    // The other root's own environment: none of this host's paths.
    let mut full = vec![
        "chroot",
        &root_s,
        "/usr/bin/env",
        "-i",
        "HOME=/root",
        "PATH=/usr/bin:/bin",
        "RUST_BACKTRACE=0",
    ];
    full.extend_from_slice(cmd);
    in_namespace(setup, &[&root, work], &full)
}

/// Hard-links (else copies) `from` to `to`.
fn place(from: &Path, to: &Path) -> Result<(), Failed> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| format!("copying {}: {e}", from.display()))?;
    }
    Ok(())
}

/// A trial directory holding the cargo-rrtest binary (as `cargo-rrtest`)
/// and the fixture `name` (as `prog`).
fn work_dir(trial: &str, fixture: &'static str) -> Result<(TrialDir, PathBuf), Failed> {
    let dir = TrialDir::new(trial)?;
    place(common::cargo_rrtest(), &dir.path.join("cargo-rrtest"))?;
    let exe = build::c_fixture(CBuild::pie(fixture))?;
    place(&exe, &dir.path.join("prog"))?;
    Ok((dir, exe))
}

fn record_here(dir: &Path) -> Result<(Run, PathBuf), Failed> {
    let (rec, trace) = record_here_as(dir, "trace", &[])?;
    rec.expect_code(0)?;
    Ok((rec, trace))
}

/// Records `dir/prog ARGS` into `dir/NAME`, whatever its exit status.
fn record_here_as(dir: &Path, name: &str, args: &[&str]) -> Result<(Run, PathBuf), Failed> {
    let trace = dir.join(name);
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("record")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(dir.join("prog"))
        .args(args)
        .current_dir(dir);
    let rec = run::run(&mut cmd)?;
    Ok((rec, trace))
}

/// fixtures/simd's `simd_memchr`, built once per test run (offline: its
/// one dependency is the `memchr` that cargo-rrtest itself is built with).
fn simd_fixture() -> Result<PathBuf, Failed> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = common::scratch_dir("fixture-simd-target");
        let dir = common::fixtures_dir().join("simd");
        let out = Command::new(cargo)
            .current_dir(&dir)
            .args(["build", "--locked", "--offline", "--target-dir"])
            .arg(&target)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build in {} failed ({}):\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target.join("debug/simd_memchr"))
    });
    built.clone().map_err(Failed::from)
}

/// What the simd fixture must print for a run to count: its CPU line, the
/// crate's and glibc's results, and its verdict.
fn expect_simd_output(what: &str, run: &Run, pass: bool) -> Result<(), Failed> {
    let out = run.stdout_text();
    let verdict = if pass {
        "all results agree"
    } else {
        "1 wrong result(s)"
    };
    check!(
        run.code() == if pass { 0 } else { 1 }
            && out.starts_with("cpu: sse2=true sse4.2=")
            && out.contains(" avx2=")
            && out.contains("memchr::memmem::find: Some(")
            && out.contains("libc strlen: Some(")
            && out.contains(verdict),
        "{what}: not the simd fixture's {} run:\n{}",
        if pass { "passing" } else { "failing" },
        run.describe()
    );
    Ok(())
}

/// The simd fixture recorded here (a passing run, and a failing one: a
/// wrong expected position) replays here, and with `there`, in the other
/// root too: the same output and exit status each time.
fn simd_here_to_there(there: bool) -> Result<(), Failed> {
    let trial = if there {
        "portable::chroot::simd_here_there"
    } else {
        "portable::simd::here"
    };
    let dir = TrialDir::new(trial)?;
    place(common::cargo_rrtest(), &dir.path.join("cargo-rrtest"))?;
    place(&simd_fixture()?, &dir.path.join("prog"))?;
    for (name, args, pass) in [("pass", &[][..], true), ("fail", &["5"][..], false)] {
        let (rec, trace) = record_here_as(&dir.path, name, args)?;
        expect_simd_output(&format!("recording ({name})"), &rec, pass)?;
        let here = run::replay_in(&trace, None)?;
        expect_same_run(&format!("replay here ({name})"), &rec, &here)?;
        if there {
            let mnt = format!("/mnt/{name}");
            let replayed = in_other_root(&dir.path, &["/mnt/cargo-rrtest", "replay", &mnt])?;
            expect_same_run(
                &format!("replay in the other root ({name})"),
                &rec,
                &replayed,
            )?;
        }
    }
    dir.finish();
    Ok(())
}

/// The simd fixture (built against this host's glibc, run there with
/// glibc 2.41) recorded in the other root replays here.
fn simd_there_to_here() -> Result<(), Failed> {
    let dir = TrialDir::new("portable::chroot::simd_there_here")?;
    place(common::cargo_rrtest(), &dir.path.join("cargo-rrtest"))?;
    place(&simd_fixture()?, &dir.path.join("prog"))?;
    for (name, arg, pass) in [("pass", None, true), ("fail", Some("5"), false)] {
        let out = format!("/mnt/{name}");
        let mut cmd = vec!["/mnt/cargo-rrtest", "record", "-o", &out, "--", "/mnt/prog"];
        cmd.extend(arg);
        let rec = in_other_root(&dir.path, &cmd)?;
        expect_simd_output(&format!("recording there ({name})"), &rec, pass)?;
        let trace = dir.path.join(name);
        let header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
        let libc = header["host"]["libc"].as_str().unwrap_or_default();
        check!(
            libc.starts_with("glibc 2.") && libc != this_libc(),
            "recorded in the other root with {libc:?}, this host has {:?}",
            this_libc()
        );
        let replayed = run::replay_in(&trace, None)?;
        expect_same_run(&format!("replay here ({name})"), &rec, &replayed)?;
    }
    dir.finish();
    Ok(())
}

fn expect_same_run(what: &str, recorded: &Run, replayed: &Run) -> Result<(), Failed> {
    check!(
        replayed.code() == recorded.code(),
        "{what}: exit {} instead of the recorded {}\n{}",
        replayed.code(),
        recorded.code(),
        replayed.describe()
    );
    expect_same_bytes(
        &format!("{what} stdout"),
        &recorded.stdout,
        &replayed.stdout,
    )?;
    // The recorder's own lines (verification) are not the program's.
    let program_err = |r: &Run| -> Vec<u8> {
        r.stderr_text()
            .lines()
            .filter(|l| !l.starts_with("cargo-rrtest") && !l.starts_with("warning:"))
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    };
    expect_same_bytes(
        &format!("{what} stderr"),
        &program_err(recorded),
        &program_err(replayed),
    )
}

/// Drops the keys `keys` from the trace's header, as an older recorder
/// wrote it.
fn drop_header_keys(trace: &Path, keys: &[&str]) -> Result<(), Failed> {
    let path = trace.join("header.json");
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    for k in keys {
        h.as_object_mut()
            .ok_or("header is not an object")?
            .remove(*k);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&h)?)?;
    Ok(())
}

/// The loader path the host's programs name.
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

fn simulated_other_loader() -> Result<(), Failed> {
    let trial = "portable::loader::simulated_other_loader";
    let (dir, _) = work_dir(trial, "hello")?;
    let (rec, trace) = record_here(&dir.path)?;
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
    check!(
        header["loaders"][0]["path"] == LOADER,
        "the trace does not keep the loader: {}",
        header["loaders"]
    );
    // Another file where this host's loader was: the trixie root's loader,
    // or (no root) a program that is no loader at all.
    let root_loader = other_root().join("lib64/ld-linux-x86-64.so.2");
    let other = if root_loader.exists() {
        std::fs::canonicalize(&root_loader)?
    } else {
        PathBuf::from("/usr/bin/true")
    };
    let substitute = dir.path.join("other-loader");
    std::fs::copy(&other, &substitute)?;
    check!(
        std::fs::read(&substitute)? != std::fs::read(LOADER)?,
        "{} is this host's loader",
        other.display()
    );
    // cargo-rrtest itself starts through a copy of the real loader at
    // another path: the host's path is taken.
    let own_loader = dir.path.join("own-loader");
    std::fs::copy(LOADER, &own_loader)?;
    let setup = "mount --bind \"$1\" /lib64/ld-linux-x86-64.so.2";
    let bin = dir.path.join("cargo-rrtest");
    let replay = |trace: &Path| -> Result<Run, Failed> {
        let args = [
            own_loader.to_str().ok_or("utf-8")?,
            bin.to_str().ok_or("utf-8")?,
            "replay",
            trace.to_str().ok_or("utf-8")?,
        ];
        in_namespace(setup, &[&substitute], &args)
    };
    let replayed = replay(&trace)?;
    expect_same_run("replay under another loader", &rec, &replayed)?;
    // The control: without the kept loader, the kernel loads the other one.
    drop_header_keys(&trace, &["loaders"])?;
    let old = replay(&trace)?;
    check!(
        other_loader_refused(&old),
        "without the kept loader, replay should diverge at event 1, or refuse the \
         place of its copy of the vDSO:\n{}",
        old.describe()
    );
    dir.finish();
    Ok(())
}

fn here_to_there(trial: &str, fixture: &'static str) -> Result<(), Failed> {
    let (dir, _) = work_dir(trial, fixture)?;
    let (rec, _) = record_here(&dir.path)?;
    let check = in_other_root(
        &dir.path,
        &["/mnt/cargo-rrtest", "replay", "--check", "/mnt/trace"],
    )?;
    check!(
        check.code() == 0
            && check
                .stdout_text()
                .contains("dynamic loader: from the trace"),
        "replay --check in the other root:\n{}",
        check.describe()
    );
    let replayed = in_other_root(&dir.path, &["/mnt/cargo-rrtest", "replay", "/mnt/trace"])?;
    expect_same_run("replay in the other root", &rec, &replayed)?;
    dir.finish();
    Ok(())
}

fn there_to_here() -> Result<(), Failed> {
    let (dir, _) = work_dir("portable::chroot::there_to_here", "threads_basic")?;
    let rec = in_other_root(
        &dir.path,
        &[
            "/mnt/cargo-rrtest",
            "record",
            "-o",
            "/mnt/trace",
            "--",
            "/mnt/prog",
        ],
    )?;
    rec.expect_code(0)?;
    let trace = dir.path.join("trace");
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
    let libc = header["host"]["libc"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    check!(
        libc.starts_with("glibc 2.") && libc != this_libc(),
        "recorded in the other root with {libc:?}, this host has {:?}",
        this_libc()
    );
    let replayed = run::replay_in(&trace, None)?;
    expect_same_run("replay here of a recording there", &rec, &replayed)?;
    dir.finish();
    Ok(())
}

/// This host's C library as the recorder writes it (from a trace).
fn this_libc() -> String {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn demo_archive_replays_there() -> Result<(), Failed> {
    let dir = TrialDir::new("portable::chroot::demo_archive_replays_there")?;
    place(common::cargo_rrtest(), &dir.path.join("cargo-rrtest"))?;
    {
        let run = crate::product::product_run();
        let _lock = crate::product::recording_lock();
        let tests = crate::harness::tests_by_key(crate::harness::report_of(run)?);
        let archive = tests
            .get("demo-core tests::checksum_matches")
            .and_then(|t| t["archive"].as_str())
            .ok_or("the demo run kept no archive for tests::checksum_matches")?;
        std::fs::copy(archive, dir.path.join("trace.tar.zst"))
            .map_err(|e| format!("copying {archive}: {e}"))?;
    }
    let replayed = in_other_root(
        &dir.path,
        &["/mnt/cargo-rrtest", "replay", "/mnt/trace.tar.zst"],
    )?;
    let text = format!("{}{}", replayed.stdout_text(), replayed.stderr_text());
    check!(
        replayed.code() == 101,
        "the failing test's archive replayed with exit {} in the other root:\n{}",
        replayed.code(),
        replayed.describe()
    );
    check!(
        text.contains("panicked at demo-core/src/lib.rs") && text.contains("left: 295"),
        "the panic is not shown in the other root:\n{text}"
    );
    dir.finish();
    Ok(())
}

fn archive_sizes_are_reported() -> Result<(), Failed> {
    let run = crate::product::product_run();
    let _lock = crate::product::recording_lock();
    let tests = crate::harness::tests_by_key(crate::harness::report_of(run)?);
    let t = tests
        .get("demo-core tests::checksum_matches")
        .ok_or("no checksum_matches in the demo report")?;
    let archive = t["archive"]
        .as_str()
        .ok_or("the demo run kept no archive for tests::checksum_matches")?;
    let size = std::fs::metadata(archive)
        .map_err(|e| format!("{archive}: {e}"))?
        .len();
    check!(
        t["archive_bytes"] == size,
        "report archive_bytes {} for a {size}-byte archive",
        t["archive_bytes"]
    );
    check!(
        run.stdout
            .lines()
            .any(|l| l.contains("Trace demo-core tests::checksum_matches:")
                && l.contains("(archive "))
            && run.stdout.lines().any(
                |l| l.trim_start().starts_with("Archives ") && l.contains(" archives packed, ")
            ),
        "the summary does not give archive sizes:\n{}",
        run.stdout
    );
    let info = run::info_json(Path::new(archive))?;
    info.expect_code(0)?;
    let v: serde_json::Value = serde_json::from_slice(&info.stdout)?;
    let b = &v["bytes"];
    check!(
        b["archive"] == size,
        "info's archive size: {}",
        b["archive"]
    );
    let files = v["files"].as_array().ok_or("no files in info")?;
    let sum = |kind: Option<&str>| -> u64 {
        files
            .iter()
            .filter(|f| kind.is_none_or(|k| f["kind"] == k))
            .filter_map(|f| f["bytes"].as_u64())
            .sum()
    };
    check!(
        b["files"] == sum(None)
            && b["loaders"] == sum(Some("loader"))
            && b["libraries"] == sum(Some("library"))
            && b["executables"] == sum(Some("executable")),
        "the breakdown does not add up:\n{}",
        info.stdout_text()
    );
    let has = |kind: &str, path: &dyn Fn(&str) -> bool| {
        files
            .iter()
            .any(|f| f["kind"] == kind && path(f["path"].as_str().unwrap_or_default()))
    };
    check!(
        has("loader", &|p| p == LOADER)
            && has("library", &|p| p.ends_with("/libc.so.6"))
            && has("executable", &|p| p.contains("/deps/demo_core-")),
        "info does not name the loader, libc and the test binary:\n{}",
        info.stdout_text()
    );
    Ok(())
}

/// Clears `bit` of register `reg` of CPUID leaf `leaf`.`subleaf` in the
/// trace's header (the recording host "lacked" that feature).
fn edit_cpuid(
    trace: &Path,
    leaf: u64,
    subleaf: u64,
    reg: usize,
    bit: u32,
    set: bool,
) -> Result<(), Failed> {
    let path = trace.join("header.json");
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let table = h["cpuid"].as_array_mut().ok_or("no cpuid table")?;
    let l = table
        .iter_mut()
        .find(|l| l["leaf"] == leaf && l["subleaf"] == subleaf)
        .ok_or("leaf missing from the table")?;
    let v = l["regs"][reg].as_u64().ok_or("bad regs")?;
    l["regs"][reg] = if set { v | 1 << bit } else { v & !(1 << bit) }.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&h)?)?;
    Ok(())
}

fn check_and_force() -> Result<(), Failed> {
    let (dir, _) = work_dir("portable::cpu::check_and_force", "hello")?;
    let (rec, trace) = record_here(&dir.path)?;
    let rrtest = |args: &[&str]| -> Result<Run, Failed> {
        let mut c = Command::new(common::cargo_rrtest());
        c.arg("replay").args(args).arg(&trace);
        run::run(&mut c)
    };
    let same = rrtest(&["--check"])?;
    check!(
        same.code() == 0 && same.stdout_text().contains("this host can replay"),
        "--check on the recording host:\n{}",
        same.describe()
    );
    // The recording host "had" popcnt flipped: SSE4.2-era popcnt (leaf 1
    // ecx bit 23) is on every x86-64 host that runs this suite's glibc
    // paths, so flipping it makes the tables differ in one feature.
    let host_has = std::fs::read_to_string("/proc/cpuinfo")?.contains(" popcnt");
    edit_cpuid(&trace, 1, 0, 2, 23, !host_has)?;
    let refused = rrtest(&["--check"])?;
    check!(
        refused.code() == EXIT_OTHER_HOST && refused.stdout_text().contains("popcnt"),
        "--check should name popcnt and exit {EXIT_OTHER_HOST}:\n{}",
        refused.describe()
    );
    let plain = rrtest(&[])?;
    check!(
        plain.code() == EXIT_OTHER_HOST
            && plain.stderr_text().contains("popcnt")
            && plain.stderr_text().contains("--force")
            && plain.stdout.is_empty(),
        "replay should refuse before replaying:\n{}",
        plain.describe()
    );
    let forced = rrtest(&["--force"])?;
    expect_same_run("replay --force", &rec, &forced)?;
    check!(
        forced.stderr_text().contains("replaying anyway (--force)"),
        "--force should say what it overrides:\n{}",
        forced.describe()
    );
    dir.finish();
    Ok(())
}

/// A trace without the new header fields (an older recorder's) still
/// replays here, and --check says the loader is the host's.
fn old_trace_replays() -> Result<(), Failed> {
    let (dir, _) = work_dir("portable::old_trace_without_host_facts", "hello")?;
    let (rec, trace) = record_here(&dir.path)?;
    drop_header_keys(&trace, &["loaders", "host"])?;
    let replayed = run::replay_in(&trace, None)?;
    expect_same_run("replay of an old trace", &rec, &replayed)?;
    let mut c = Command::new(common::cargo_rrtest());
    c.args(["replay", "--check"]).arg(&trace);
    let check = run::run(&mut c)?;
    check!(
        check.code() == 0 && check.stdout_text().contains("keeps no dynamic loader"),
        "--check of an old trace:\n{}",
        check.describe()
    );
    dir.finish();
    Ok(())
}

/// Records fixtures/c/shebang_exec here (it writes a `#!/bin/sh` script
/// into `dir/work` and execs it): the trace keeps `/bin/sh`'s program and
/// its loader. Returns the recording and the trace.
fn record_script(dir: &TrialDir) -> Result<(Run, PathBuf), Failed> {
    let work = dir.sub("work")?;
    let (rec, trace) = record_here_as(&dir.path, "trace", &[work.to_str().ok_or("utf-8")?])?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text()
            .contains("script ran with 1 arguments: one"),
        "the script did not run while recording:\n{}",
        rec.describe()
    );
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
    let kept = &header["interpreters"][0];
    check!(
        kept["path"] == "/bin/sh",
        "the trace does not keep the script's interpreter: {}",
        header["interpreters"]
    );
    // Its loader too (keyed by the interpreter's copy).
    check!(
        header["loaders"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["exe_file"] == kept["file"])),
        "the trace does not keep the interpreter's loader: {}",
        header["loaders"]
    );
    Ok((rec, trace))
}

/// The control of the `#!` trials: the trace without its kept
/// interpreters replays with the replay host's `/bin/sh`, and diverges
/// before the script's line is written: at the exec (another loader's
/// entry point, in the other root) or in the loader (the same loader,
/// here, fails to load Debian 13's dash and writes why).
fn expect_host_interpreter_diverges(what: &str, replayed: &Run) -> Result<(), Failed> {
    let err = replayed.stderr_text();
    check!(
        (replayed.code() == EXIT_DIVERGENCE && err.contains("replay diverged")
            || other_loader_refused(replayed))
            && !replayed.stdout_text().contains("script ran"),
        "{what}: without the kept interpreter, replay should diverge in the script's exec, \
         or refuse the place of its copy of the vDSO:\n{}",
        replayed.describe()
    );
    Ok(())
}

/// Whether replay could not go on under a loader other than the
/// recording's: it diverged at the first event (the other loader's entry
/// point), or it stopped at the exec because the kernel laid the memory
/// out otherwise there, so that the place where the recording mapped its
/// copy of the vDSO (right below the loader) is taken (exit 102).
fn other_loader_refused(replayed: &Run) -> bool {
    let err = replayed.stderr_text();
    (replayed.code() == EXIT_DIVERGENCE && err.contains("event 1"))
        || (replayed.code() == EXIT_REPLAY_FAILED && err.contains("copy of the vDSO at"))
}

fn simulated_other_interpreter() -> Result<(), Failed> {
    let (dir, _) = work_dir(
        "portable::shebang::simulated_other_interpreter",
        "shebang_exec",
    )?;
    let (rec, trace) = record_script(&dir)?;
    // Another program where this host's /bin/sh is: the other root's dash,
    // else `true` (no shell at all).
    let root_dash = other_root().join("usr/bin/dash");
    let other = if root_dash.exists() {
        root_dash
    } else {
        PathBuf::from("/usr/bin/true")
    };
    let substitute = dir.path.join("other-sh");
    std::fs::copy(&other, &substitute)?;
    let host_sh = std::fs::canonicalize("/bin/sh")?;
    check!(
        std::fs::read(&substitute)? != std::fs::read(&host_sh)?,
        "{} is this host's /bin/sh",
        other.display()
    );
    let setup = "mount --bind \"$1\" /bin/sh";
    let bin = dir.path.join("cargo-rrtest");
    let replay = |trace: &Path| -> Result<Run, Failed> {
        let args = [
            bin.to_str().ok_or("utf-8")?,
            "replay",
            trace.to_str().ok_or("utf-8")?,
        ];
        in_namespace(setup, &[&substitute], &args)
    };
    let replayed = replay(&trace)?;
    expect_same_run("replay under another /bin/sh", &rec, &replayed)?;
    drop_header_keys(&trace, &["interpreters"])?;
    expect_host_interpreter_diverges("replay under another /bin/sh", &replay(&trace)?)?;
    dir.finish();
    Ok(())
}

fn shebang_here_to_there() -> Result<(), Failed> {
    let (dir, _) = work_dir("portable::chroot::shebang_here_there", "shebang_exec")?;
    let (rec, _) = record_script(&dir)?;
    let check = in_other_root(
        &dir.path,
        &["/mnt/cargo-rrtest", "replay", "--check", "/mnt/trace"],
    )?;
    check!(
        check.code() == 0
            && check
                .stdout_text()
                .contains("#! script interpreters: from the trace (/bin/sh)"),
        "replay --check in the other root:\n{}",
        check.describe()
    );
    let replay = || in_other_root(&dir.path, &["/mnt/cargo-rrtest", "replay", "/mnt/trace"]);
    let replayed = replay()?;
    expect_same_run("replay of a script in the other root", &rec, &replayed)?;
    drop_header_keys(&dir.path.join("trace"), &["interpreters"])?;
    expect_host_interpreter_diverges("replay of a script in the other root", &replay()?)?;
    dir.finish();
    Ok(())
}
