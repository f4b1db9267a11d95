//! Recording test attempts: where traces and archives go, the preflight check,
//! deciding whether a recording worked, and verifying and packing kept traces.
//!
//! Each attempt runs as `<recorder> record --no-verify --disposable -o TRACE --
//! <bin> ARGS` (see [`super::runner::AttemptSpec::to_command`]): disposable,
//! because most traces are deleted when their test passes, so the recorder
//! only hard-links the files the test maps (hashing none it has seen before,
//! in any process: `trace/files.rs`) and fsyncs nothing. A trace the keep
//! policy keeps is made self-contained and durable by [`keep_trace`] as soon
//! as its attempt ends. Layout, all owner-only
//! (directories 0700, files 0600):
//! ```text
//! TARGET/rrtest/traces/<binary id>/<test name>/attempt-<N>/        trace dirs
//! TARGET/rrtest/archives/<binary id>/<test name>/attempt-<N>.tar.zst
//! ```
//! with binary ids and test names made file-name safe by [`sanitize`]. A
//! test's directories are emptied when it starts, so what is there after a
//! run belongs to that run.
//!
//! A recording is trusted only when the recorder did not exit with
//! [`RECORDER_FAILED`](crate::errors::exit_codes::RECORDER_FAILED) and the
//! trace's header says how the program ended; otherwise the attempt is a
//! recorder error, and the runner re-runs it without recording.
//!
//! Verification replays a kept trace in a child process
//! (`cargo-rrtest verify DIR`, which writes its result into the trace's
//! header): a child, not a thread, because the replayer traces and reaps its
//! own processes and must not share a process with the runner's waits.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::errors::exit_codes;
use rrtest_trace::{self as trace, pack};

/// `--keep`: which attempts' traces survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeepPolicy {
    /// Failed and timed-out attempts (of failed, timed-out and flaky tests).
    #[default]
    Failed,
    /// Every attempt's trace, passing ones too.
    All,
    /// No trace is kept.
    None,
}

impl KeepPolicy {
    /// Whether an attempt that passed (`passed`) keeps its trace.
    pub fn keeps(self, passed: bool) -> bool {
        match self {
            KeepPolicy::Failed => !passed,
            KeepPolicy::All => true,
            KeepPolicy::None => false,
        }
    }
}

/// How a run records.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The executable whose `record` verb records an attempt (this
    /// cargo-rrtest, unless the hidden `--recorder-path` says otherwise).
    pub recorder: PathBuf,
    /// The executable whose `verify` verb verifies a trace (this cargo-rrtest).
    pub verifier: PathBuf,
    /// `TARGET/rrtest/traces`.
    pub traces_dir: PathBuf,
    /// `TARGET/rrtest/archives`.
    pub archives_dir: PathBuf,
    /// Which traces are kept.
    pub keep: KeepPolicy,
    /// Record with the syscall buffer.
    pub syscallbuf: bool,
    /// Record through one recorder server per worker (`super::server`)
    /// rather than a `record` process per attempt.
    pub serve: bool,
    /// The run's chaos seed (`--chaos`): each attempt records under the
    /// chaos scheduler with [`attempt_seed`] of it.
    pub chaos: Option<u64>,
}

/// The chaos seed of one attempt: the run's seed mixed with the test's
/// binary and name and the attempt number, so that tests and retries get
/// different schedules, and `--chaos --seed S` gives each the same again.
pub fn attempt_seed(run_seed: u64, binary_id: &str, test: &str, attempt: u32) -> u64 {
    // FNV-1a of the names, then SplitMix64's finalizer over the mix.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in binary_id.bytes().chain([0]).chain(test.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = run_seed ^ h ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    // Below 2^48, like drawn seeds: exact in any JSON reader.
    (z ^ (z >> 31)) & ((1 << 48) - 1)
}

/// A name made safe as one path component: ASCII letters, digits, `-`, `_`
/// and `.` stay, `::` becomes `__`, anything else becomes `_`; never empty,
/// `.` or `..`; at most 200 bytes.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = format!("_{out}");
    }
    out.truncate(200);
    out
}

/// Creates `dir` and missing parents with mode 0700, and makes `dir` 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl Recording {
    /// The directory of every trace of one test.
    pub fn test_traces(&self, binary_id: &str, name: &str) -> PathBuf {
        self.traces_dir
            .join(sanitize(binary_id))
            .join(sanitize(name))
    }

    /// The directory of every archive of one test.
    pub fn test_archives(&self, binary_id: &str, name: &str) -> PathBuf {
        self.archives_dir
            .join(sanitize(binary_id))
            .join(sanitize(name))
    }

    /// The trace directory of one attempt.
    pub fn attempt_trace(&self, binary_id: &str, name: &str, attempt: u32) -> PathBuf {
        self.test_traces(binary_id, name)
            .join(format!("attempt-{attempt}"))
    }

    /// The archive of one attempt's trace.
    pub fn attempt_archive(&self, binary_id: &str, name: &str, attempt: u32) -> PathBuf {
        self.test_archives(binary_id, name)
            .join(format!("attempt-{attempt}{}", pack::ARCHIVE_SUFFIX))
    }

    /// Removes a test's traces and archives from earlier runs. (Its trace
    /// directory is made, owner-only, by the first trace written into it:
    /// most tests pass and leave none.)
    pub fn prepare_test(&self, binary_id: &str, name: &str) -> std::io::Result<()> {
        remove_if_present(&self.test_traces(binary_id, name))?;
        remove_if_present(&self.test_archives(binary_id, name))
    }
}

/// Makes a kept trace self-contained and durable ([`trace::keep`]): private
/// copies of its files, checked against their content ids, and everything
/// fsynced; or why it cannot be kept as a replayable trace.
pub fn keep_trace(dir: &Path) -> Result<(), String> {
    trace::keep(dir)
        .map(|_| ())
        .map_err(|e| format!("the trace cannot be kept replayable: {e}"))
}

/// Removes a directory tree if it exists.
pub fn remove_if_present(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Records `/bin/true` with `recorder` into a temporary directory and checks
/// the trace, so a host where recording cannot work (ptrace denied, seccomp
/// unavailable, ...) is found once, before the tests run. Returns why not,
/// with what the host's settings suggest ([`host_hints`]). With `syscallbuf`,
/// first checks that the syscall buffer's library can be installed, and
/// records with it: `Ok(Some(why))` when recording works only without it.
pub fn preflight(recorder: &Path, syscallbuf: bool) -> Result<Option<String>, String> {
    let no_buffer = if syscallbuf {
        crate::preload::preload_path()
            .err()
            .map(|e| format!("its library cannot be installed ({e})"))
    } else {
        None
    };
    let with_buffer = syscallbuf && no_buffer.is_none();
    preflight_once(recorder, with_buffer)
        .map(|()| no_buffer)
        .map_err(|why| {
            let hints = host_hints();
            if hints.is_empty() {
                why
            } else {
                format!("{why} ({})", hints.join("; "))
            }
        })
}

/// Host settings known to stop a ptrace recorder, as readable phrases.
pub fn host_hints() -> Vec<String> {
    let mut hints = Vec::new();
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok();
    if let Some(scope) = scope.as_deref().map(str::trim) {
        if scope == "3" {
            hints.push("kernel.yama.ptrace_scope is 3: ptrace is disabled on this host".into());
        } else if scope == "2" {
            hints.push("kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may trace".into());
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    if field("Seccomp:").as_deref() == Some("2") {
        hints.push(
            "cargo-rrtest itself runs under a seccomp filter (a container profile?) that may deny ptrace"
                .into(),
        );
    }
    hints
}

fn preflight_once(recorder: &Path, syscallbuf: bool) -> Result<(), String> {
    let program = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or("neither /bin/true nor /usr/bin/true exists to record as a check")?;
    let dir = pack::PrivateTempDir::new("preflight").map_err(|e| e.to_string())?;
    let trace_dir = dir.path().join("trace");
    let mut child = Command::new(recorder)
        .args(["record", "--no-verify", "--disposable"])
        .args((!syscallbuf).then_some("--no-syscallbuf"))
        .arg("-o")
        .arg(&trace_dir)
        .arg("--")
        .arg(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start the recorder {}: {e}", recorder.display()))?;
    let (status, stderr) = wait_with_deadline(
        &mut child,
        Instant::now() + Duration::from_secs(30),
        &AtomicBool::new(false),
    );
    let Some(status) = status else {
        return Err(format!(
            "recording {} did not finish within 30 s",
            program.display()
        ));
    };
    if !status.success() {
        let why = stderr_reason(&stderr);
        return Err(format!(
            "recording {} failed ({}){}",
            program.display(),
            describe_status(status),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ));
    }
    match finished_outcome(&trace_dir) {
        Ok(trace::Outcome::Exited { code: 0 }) => Ok(()),
        Ok(other) => Err(format!(
            "recording {} gave a trace that ends with {other:?}, not exit 0",
            program.display()
        )),
        Err(why) => Err(why),
    }
}

/// How the recorded program ended, from a finished trace's header; or why
/// the trace is not a finished one.
pub fn finished_outcome(dir: &Path) -> Result<trace::Outcome, String> {
    let header = trace::read_header(dir).map_err(|e| format!("no usable trace header: {e}"))?;
    header
        .outcome
        .ok_or_else(|| "the trace is unfinished (its header has no outcome)".to_string())
}

/// Whether the recorder's exit status says it failed itself.
pub fn is_recorder_failure(exit_code: Option<i32>) -> bool {
    exit_code == Some(i32::from(exit_codes::RECORDER_FAILED))
}

/// The recorder's own complaint from the end of a stderr mixed with the
/// test's (terminal colour codes removed): its last `error: ...` line, else
/// its last lines that name cargo-rrtest or the recorder, else the last three
/// lines.
pub fn stderr_reason(stderr: &str) -> String {
    let plain = strip_ansi(stderr);
    let lines: Vec<&str> = plain.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(error) = lines.iter().rev().find(|l| l.starts_with("error: ")) {
        return error.to_string();
    }
    let ours: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("cargo-rrtest") || l.contains("recorder"))
        .collect();
    let pick = if ours.is_empty() { &lines } else { &ours };
    let start = pick.len().saturating_sub(3);
    pick[start..].join(" / ")
}

/// `text` without ANSI CSI sequences (`ESC [ ... final byte`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// Waits for `child` until `deadline` or cancellation (then kills its process
/// group); returns its status (None if killed) and its stderr.
fn wait_with_deadline(
    child: &mut std::process::Child,
    deadline: Instant,
    cancel: &AtomicBool,
) -> (Option<std::process::ExitStatus>, String) {
    let reader = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = e.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    });
    let mut tick = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline || cancel.load(Ordering::Relaxed) {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(tick);
        tick = (tick * 2).min(Duration::from_millis(50));
    };
    let stderr = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    (status, stderr)
}

/// The result of verifying and packing one kept trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Whether the trace replays to its end (None: not verified, e.g. cancelled).
    pub verified: Option<bool>,
    /// Why not, when `verified` is false.
    pub failure: Option<String>,
    /// The archive, if it was written.
    pub archive: Option<PathBuf>,
}

/// Verifies the trace in `dir` with `verifier verify DIR` (at most `limit`),
/// then packs it into `archive`.
pub fn verify_and_pack(
    verifier: &Path,
    dir: &Path,
    archive: &Path,
    limit: Duration,
    cancel: &AtomicBool,
) -> Checked {
    let mut checked = Checked::default();
    let mut cmd = Command::new(verifier);
    cmd.arg("verify")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // Not the runner's mask (Ctrl-C blocked): a trace too old to hold its
    // program's initial mask replays with the verifier's.
    match rrtest_sys::spawn::with_empty_signal_mask(&mut cmd).spawn() {
        Err(e) => {
            checked.verified = Some(false);
            checked.failure = Some(format!("could not start {}: {e}", verifier.display()));
        }
        Ok(mut child) => {
            let (status, stderr) = wait_with_deadline(&mut child, Instant::now() + limit, cancel);
            if cancel.load(Ordering::Relaxed) {
                return checked;
            }
            let recorded = trace::read_header(dir).ok().and_then(|h| h.verification);
            match (status, recorded) {
                (Some(s), Some(v)) if s.success() || s.code() == Some(103) => {
                    checked.verified = Some(v.verified);
                    checked.failure = v.reason;
                }
                (None, _) => {
                    checked.verified = Some(false);
                    checked.failure = Some(format!(
                        "the verification replay did not finish within {} s",
                        limit.as_secs()
                    ));
                }
                (Some(s), _) => {
                    checked.verified = Some(false);
                    let why = stderr_reason(&stderr);
                    checked.failure = Some(format!(
                        "verification failed ({}){}",
                        describe_status(s),
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(": {why}")
                        }
                    ));
                }
            }
        }
    }
    if checked.verified == Some(false) && checked.failure.is_none() {
        checked.failure = Some("the trace does not replay (no reason given)".into());
    }
    let packed = archive
        .parent()
        .map_or(Ok(()), create_private_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| pack::pack(dir, archive).map_err(|e| e.to_string()));
    match packed {
        Ok(_) => checked.archive = Some(archive.to_path_buf()),
        Err(e) => eprintln!(
            "cargo-rrtest: warning: could not pack {}: {e}",
            dir.display()
        ),
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_names_into_one_component() {
        assert_eq!(
            sanitize("tests::checksum_matches"),
            "tests__checksum_matches"
        );
        assert_eq!(sanitize("demo-app::bin/demo"), "demo-app__bin_demo");
        assert_eq!(sanitize("a b/../c"), "a_b_.._c");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize(&"x".repeat(300)).len(), 200);
    }

    #[test]
    fn keep_policy() {
        assert!(KeepPolicy::Failed.keeps(false));
        assert!(!KeepPolicy::Failed.keeps(true));
        assert!(KeepPolicy::All.keeps(true));
        assert!(!KeepPolicy::None.keeps(false));
    }

    #[test]
    fn picks_the_recorders_complaint() {
        let stderr = "test output\nthread 'x' panicked\nerror: recorder: ptrace(PTRACE_SEIZE): Operation not permitted\n";
        assert_eq!(
            stderr_reason(stderr),
            "error: recorder: ptrace(PTRACE_SEIZE): Operation not permitted"
        );
        assert_eq!(stderr_reason("a\nb\nc\nd\n"), "b / c / d");
        let coloured = "\x1b[2m2026\x1b[0m \x1b[33m WARN\x1b[0m recording failed\nerror: recorder: PTRACE_GETREGS: No such process\n";
        assert_eq!(
            stderr_reason(coloured),
            "error: recorder: PTRACE_GETREGS: No such process"
        );
        assert_eq!(
            stderr_reason("x\n\x1b[33m WARN\x1b[0m cargo-rrtest: odd\n"),
            " WARN cargo-rrtest: odd"
        );
    }

    #[test]
    fn preflight_names_a_missing_recorder() {
        let err = preflight(Path::new("/nonexistent/cargo-rrtest"), true).unwrap_err();
        assert!(err.contains("could not start the recorder"), "{err}");
    }
}
