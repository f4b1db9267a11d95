//! Running things for the recorder trials: a program natively, under
//! `cargo-rrtest record`, `replay` and `info`, with captured output, wall time
//! and a deadline; per-trial directories; snapshots of a directory tree to
//! prove replay had no side effects; and comparisons that explain themselves.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use libtest_mimic::Failed;

use crate::common;

/// Longest any single command of a trial may run before it is killed.
const DEADLINE: Duration = Duration::from_secs(60);

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// What ran, for messages.
    pub what: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Run {
    /// The status as a shell reports it: the exit code, or 128 + the signal
    /// number for a process killed by a signal (the recorder's convention).
    pub fn code(&self) -> i32 {
        shell_code(self.status)
    }

    /// stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A description with the status and the output tails, for failures.
    pub fn describe(&self) -> String {
        format!(
            "`{}` ended with {} after {:?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.what,
            self.status,
            self.elapsed,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }

    /// Fails unless the shell-style status is `want`.
    pub fn expect_code(&self, want: i32) -> Result<(), Failed> {
        if self.code() == want {
            Ok(())
        } else {
            Err(format!(
                "expected exit status {want}, got {}\n{}",
                self.code(),
                self.describe()
            )
            .into())
        }
    }
}

/// The shell-style status: exit code, or 128 + signal.
pub fn shell_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

fn tail(bytes: &[u8]) -> String {
    const KEEP: usize = 3000;
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= KEEP {
        return text.into_owned();
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes]{}", &text[start..])
}

/// Runs `cmd` to completion (null stdin, captured stdout/stderr, its own
/// process group, killed with the group after [`DEADLINE`]).
pub fn run(cmd: &mut Command) -> Result<Run, Failed> {
    run_within(cmd, DEADLINE)
}

/// [`run`], killed after `deadline` instead.
pub fn run_within(cmd: &mut Command, deadline: Duration) -> Result<Run, Failed> {
    let what = describe_command(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{what}`: {e}"))?;
    let mut out_pipe = child.stdout.take().ok_or("no stdout pipe")?;
    let mut err_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > deadline => {
                // The whole group: a recorder and its tracees.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{what}` ran for more than {deadline:?}; killed").into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for `{what}`: {e}").into()),
        }
    };
    let elapsed = start.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Run {
        what,
        status,
        stdout,
        stderr,
        elapsed,
    })
}

fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Why this host cannot record, if it cannot: `None` when ptrace and
/// seccomp filters are available (Yama's ptrace_scope 3 forbids all ptrace;
/// a kernel without seccomp has no `Seccomp:` line in /proc/self/status).
pub fn recording_unavailable() -> Option<&'static str> {
    static WHY: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *WHY.get_or_init(|| {
        let scope =
            std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
        if scope.trim() == "3" {
            return Some("ptrace is disabled on this host (kernel.yama.ptrace_scope = 3)");
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if !status.lines().any(|l| l.starts_with("Seccomp:")) {
            return Some("this kernel has no seccomp support");
        }
        None
    })
}

/// How a program under test is started: its executable, arguments and the
/// environment the trials give every run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The executable.
    pub exe: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The directory it may write in: its cwd and `$TMPDIR`.
    pub work: PathBuf,
}

impl Invocation {
    pub(crate) fn env(&self, cmd: &mut Command) {
        cmd.current_dir(&self.work)
            .env("TMPDIR", &self.work)
            // Backtraces read debug info: slow, noisy, and not the point.
            .env("RUST_BACKTRACE", "0")
            .env_remove("RUST_LIB_BACKTRACE");
    }

    /// The program on its own.
    pub fn native(&self) -> Result<Run, Failed> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args);
        self.env(&mut cmd);
        run(&mut cmd)
    }

    /// The program under `cargo-rrtest record -o TRACE`.
    pub fn record(&self, trace: &Path) -> Result<Run, Failed> {
        self.record_with(trace, &[])
    }

    /// The program under `cargo-rrtest record FLAGS -o TRACE`.
    pub fn record_with(&self, trace: &Path, flags: &[&str]) -> Result<Run, Failed> {
        self.record_wrapped(&[], trace, flags)
    }

    /// [`Invocation::record_with`], started through `wrapper` (a command
    /// and its arguments, e.g. `env --ignore-signal=...`).
    pub fn record_wrapped(
        &self,
        wrapper: &[&str],
        trace: &Path,
        flags: &[&str],
    ) -> Result<Run, Failed> {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(common::cargo_rrtest());
                cmd
            }
            None => Command::new(common::cargo_rrtest()),
        };
        cmd.arg("record")
            .args(flags)
            .arg("-o")
            .arg(trace)
            .arg("--")
            .arg(&self.exe)
            .args(&self.args);
        self.env(&mut cmd);
        run(&mut cmd)
    }

    /// `cargo-rrtest replay TRACE`, in the same environment as the recording
    /// (so a replay that wrongly re-executed a syscall would hit the same
    /// paths, where the trial looks for side effects).
    pub fn replay(&self, trace: &Path) -> Result<Run, Failed> {
        replay_in(trace, Some(self))
    }
}

/// `cargo-rrtest replay TRACE`, from `inv`'s environment if given.
pub fn replay_in(trace: &Path, inv: Option<&Invocation>) -> Result<Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("replay").arg(trace);
    if let Some(inv) = inv {
        inv.env(&mut cmd);
    }
    run(&mut cmd)
}

/// `cargo-rrtest info --json TRACE`.
pub fn info_json(trace: &Path) -> Result<Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("info").arg("--json").arg(trace);
    run(&mut cmd)
}

/// `cargo-rrtest info --json TRACE`, exiting 0, parsed.
pub fn info_value(trace: &Path) -> Result<serde_json::Value, Failed> {
    let info = info_json(trace)?;
    info.expect_code(0)?;
    serde_json::from_slice(&info.stdout)
        .map_err(|e| format!("info --json printed no JSON ({e})\n{}", info.describe()).into())
}

/// `cargo-rrtest info TRACE` (the human form).
pub fn info(trace: &Path) -> Result<Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("info").arg(trace);
    run(&mut cmd)
}

/// A fresh, empty directory for one trial: `scratch_dir("recorder-runs")/NAME`.
/// Left in place when the trial fails, for inspection; [`TrialDir::finish`]
/// removes it.
#[derive(Debug)]
pub struct TrialDir {
    /// The directory.
    pub path: PathBuf,
}

impl TrialDir {
    /// Creates (or empties) the trial's directory.
    pub fn new(trial: &str) -> Result<Self, Failed> {
        let name: String = trial
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        let path = common::scratch_dir("recorder-runs").join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| format!("clearing {}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(TrialDir { path })
    }

    /// A subdirectory, created.
    pub fn sub(&self, name: &str) -> Result<PathBuf, Failed> {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        Ok(p)
    }

    /// Removes the directory: the trial passed.
    pub fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A directory tree's entries: relative path -> (kind and size, mtime).
pub type Snapshot = BTreeMap<PathBuf, (String, Option<SystemTime>)>;

/// Lists `dir` recursively, without following symlinks; `.` is `dir` itself.
pub fn snapshot(dir: &Path) -> Result<Snapshot, Failed> {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = std::fs::symlink_metadata(entry.path())?;
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(&entry.path())
                .to_path_buf();
            let kind = if meta.is_dir() {
                "dir".to_string()
            } else if meta.file_type().is_symlink() {
                "symlink".to_string()
            } else {
                format!("file of {} bytes", meta.len())
            };
            out.insert(rel, (kind, meta.modified().ok()));
            if meta.is_dir() {
                walk(root, &entry.path(), out)?;
            }
        }
        Ok(())
    }
    let mut out = Snapshot::new();
    // The directory's own mtime too: it changes when a file is created in it
    // and removed again, which a listing alone would miss.
    let root = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    out.insert(
        PathBuf::from("."),
        ("dir".to_string(), root.modified().ok()),
    );
    walk(dir, dir, &mut out).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    Ok(out)
}

/// Deletes everything inside `dir`, keeping `dir`.
pub fn empty_dir(dir: &Path) -> Result<(), Failed> {
    let clear = || -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if std::fs::symlink_metadata(&p)?.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(())
    };
    clear().map_err(|e| format!("emptying {}: {e}", dir.display()).into())
}

/// Copies a directory tree as fresh files (never hard links: the copy is
/// about to be damaged on purpose).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), Failed> {
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let meta = std::fs::symlink_metadata(entry.path())?;
            let dst = to.join(entry.file_name());
            if meta.is_dir() {
                copy(&entry.path(), &dst)?;
            } else if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dst)?;
            } else {
                std::fs::copy(entry.path(), &dst)?;
            }
        }
        Ok(())
    }
    copy(from, to)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()).into())
}

/// Fails with the first difference between two byte streams, shown as lines.
pub fn expect_same_bytes(what: &str, recorded: &[u8], replayed: &[u8]) -> Result<(), Failed> {
    expect_same_bytes_of(what, ("recorded", recorded), ("replayed", replayed))
}

/// [`expect_same_bytes`] for two outputs other than a recording's and its
/// replay's, each named (`native`, `recorded`): the message says which is
/// which.
pub fn expect_same_bytes_of(
    what: &str,
    (first_name, recorded): (&str, &[u8]),
    (second_name, replayed): (&str, &[u8]),
) -> Result<(), Failed> {
    if recorded == replayed {
        return Ok(());
    }
    let a = String::from_utf8_lossy(recorded);
    let b = String::from_utf8_lossy(replayed);
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let first = al
        .iter()
        .zip(&bl)
        .position(|(x, y)| x != y)
        .unwrap_or(al.len().min(bl.len()));
    let w = first_name.len().max(second_name.len());
    Err(format!(
        "the {second_name} {what} differs from the {first_name} ({} vs {} bytes); first difference at line {}:\n  {first_name:>w$}: {:?}\n  {second_name:>w$}: {:?}\n--- {first_name} {what} (tail) ---\n{}\n--- {second_name} {what} (tail) ---\n{}",
        recorded.len(),
        replayed.len(),
        first + 1,
        al.get(first).copied().unwrap_or("<end>"),
        bl.get(first).copied().unwrap_or("<end>"),
        tail(recorded),
        tail(replayed),
    )
    .into())
}

/// Whether `text` names an event index: "event" followed, within a few
/// characters (" ", "#", " index ", "="), by a number.
pub fn names_event_index(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices("event")
        .any(|(i, _)| lower[i + 5..].chars().take(10).any(|c| c.is_ascii_digit()))
}

/// A trace's header and events, read whole (for trials that edit a trace).
pub fn read_trace(
    trace: &Path,
) -> Result<(rrtest_trace::Header, Vec<rrtest_trace::Event>), Failed> {
    let mut reader = rrtest_trace::TraceReader::open(trace)?;
    let header = reader.header().clone();
    let mut events = Vec::new();
    while let Some(e) = reader.next_event()? {
        events.push(e);
    }
    Ok((header, events))
}

/// Replays `edited`, a copy of trace `recorded` (whose recording is `rec`)
/// with one record changed: replay must stop with an error whose message
/// holds each of `says`, before the program prints `not_reached`; the
/// unedited trace still replays to the recorded output. `what` names the
/// edit in the failure messages.
pub fn expect_edit_refused(
    inv: &Invocation,
    recorded: &Path,
    rec: &Run,
    edited: &Path,
    says: &[&str],
    not_reached: &str,
    what: &str,
) -> Result<(), Failed> {
    let rep = inv.replay(edited)?;
    let err = rep.stderr_text();
    check!(
        !rep.status.success() && says.iter().all(|s| err.contains(s)),
        "replay did not refuse {what}\n{}",
        rep.describe()
    );
    check!(
        !rep.stdout_text().contains(not_reached),
        "the program ran on past {what}\n{}",
        rep.describe()
    );
    let again = inv.replay(recorded)?;
    expect_same_bytes("stdout (recorded, replayed)", &rec.stdout, &again.stdout)
}

/// Writes `events` under `header` as a new trace at `to`, its `files/`
/// those of trace `from` (hard links): an edited copy of `from`.
pub fn write_edited_trace(
    from: &Path,
    to: &Path,
    header: rrtest_trace::Header,
    events: &[rrtest_trace::Event],
) -> Result<(), Failed> {
    let mut writer = rrtest_trace::TraceWriter::create(to, header)?;
    for e in events {
        writer.push(e)?;
    }
    writer.finish()?;
    for f in std::fs::read_dir(from.join("files"))? {
        let f = f?;
        std::fs::hard_link(f.path(), to.join("files").join(f.file_name()))?;
    }
    Ok(())
}
