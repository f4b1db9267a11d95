//! `cargo rrtest record [-o DIR] -- PROGRAM [ARGS...]`: the recorder on its
//! own, like `rr record`. The program's stdout and stderr pass through, and
//! we exit with its exit status (128 + N when it was killed by signal N).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::errors::{Error, Result};
use crate::recorder::{self, RecordOptions};

/// Options of `cargo rrtest record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The trace directory to write (default: target/rrtest/traces/NAME-N in a
    /// cargo project, else a cache directory; a `latest` link points to it).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Do not verify the trace by replaying it right after recording.
    #[arg(long)]
    pub no_verify: bool,
    /// Record without the syscall buffer: every syscall stops in the
    /// recorder (slower; for comparison and as a fallback).
    #[arg(long)]
    pub no_syscallbuf: bool,
    /// Find blocked buffered syscalls only by looking when another thread
    /// starts to wait and at each 1 ms tick, without per-thread desched
    /// events (perf context-switch counters): for comparison.
    #[arg(long, hide = true)]
    pub no_desched_events: bool,
    /// The CPU to record on (the harness spreads its parallel recordings).
    #[arg(long, hide = true)]
    pub cpu: Option<usize>,
    /// The trace will probably be deleted (the test harness): leave `files/`
    /// as hard links and fsync nothing; whoever keeps it calls `trace::keep`.
    #[arg(long, hide = true)]
    pub disposable: bool,
    /// The program to record and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<OsString>,
}

/// Runs `cargo rrtest record`.
pub fn exec(args: RecordArgs) -> Result<ExitCode> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let program = resolve_program(&args.command[0], &cwd)?;
    let trace_dir = match args.output {
        Some(dir) => cwd.join(dir),
        None => default_trace_dir(&cwd, &program)?,
    };
    let opts = RecordOptions {
        program,
        argv: args.command.clone(),
        env: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
        cwd,
        trace_dir: trace_dir.clone(),
        syscallbuf: !args.no_syscallbuf,
        cpu: args.cpu,
        discard_if_passed: false,
        desched_events: !args.no_desched_events,
    };
    let recording = recorder::record(&opts)?;
    if !args.disposable {
        // A recording made on its own is kept: make it self-contained.
        crate::trace::keep(&trace_dir)?;
    }
    let tty = std::io::stderr().is_terminal();
    if !args.no_verify && recording.unreplayable.is_empty() {
        let v = super::verify(&trace_dir)?;
        if !v.verified {
            // Always said: a trace that does not replay is a recorder bug.
            eprintln!(
                "cargo-rrtest: warning: the trace does not replay: {}",
                v.reason.unwrap_or_default()
            );
        }
    }
    if tty {
        eprintln!("cargo-rrtest: trace saved to {}", trace_dir.display());
        for why in &recording.unreplayable {
            eprintln!("cargo-rrtest: warning: the trace is not replayable: {why}");
        }
    }
    Ok(ExitCode::from(recorder::exit_code_of(recording.status)))
}

/// Finds the program like `execvp` would, as an absolute path.
fn resolve_program(name: &std::ffi::OsStr, cwd: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let as_path = Path::new(name);
    if name.to_string_lossy().contains('/') {
        // Lexically normal: no `.` components (the path is the program's AT_EXECFN).
        let p: PathBuf = cwd.join(as_path).components().collect();
        return if is_exec(&p) {
            Ok(p)
        } else {
            Err(Error::Usage(format!(
                "{}: not an executable file",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = cwd.join(dir).join(as_path);
        if is_exec(&p) {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "{}: command not found in PATH",
        as_path.display()
    )))
}

/// `target/rrtest/traces/NAME-N` in a cargo project, else a cache directory;
/// updates the `latest` link next to it.
fn default_trace_dir(cwd: &Path, program: &Path) -> Result<PathBuf> {
    let base = match cwd.ancestors().find(|d| d.join("Cargo.toml").is_file()) {
        Some(root) => std::env::var_os("CARGO_TARGET_DIR")
            .map(|t| cwd.join(t))
            .unwrap_or_else(|| root.join("target"))
            .join("rrtest")
            .join("traces"),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir);
            cache.join("cargo-rrtest").join("traces")
        }
    };
    std::fs::create_dir_all(&base)
        .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let dir = (0u32..)
        .map(|n| base.join(format!("{name}-{n}")))
        .find(|d| !d.exists())
        .expect("some index is free");
    let latest = base.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.file_name().expect("has a name"), &latest);
    Ok(dir)
}
