//! `cargo rrtest record [-o DIR] -- PROGRAM [ARGS...]`: the recorder on its
//! own, like `rr record`. The program's stdout and stderr pass through, and
//! we exit with its exit status (128 + N when it was killed by signal N).
//!
//! The program's environment is filtered first, as the harness filters
//! tests' (`harness::secrets`: variables that look like credentials are
//! removed, and their names written into the header), unless `--keep-env`;
//! arguments that contain a credential are warned about; `--hide-path`
//! makes paths read as empty for the program (docs/secrets.md).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::errors::{Error, Result};
use crate::harness::secrets;
use crate::recorder::{self, RecordOptions};
use rrtest_trace::{self as trace, Verification};

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
    /// Keep every environment variable, credentials included (by default
    /// those that look like credentials are removed; see docs/secrets.md).
    #[arg(long)]
    pub keep_env: bool,
    /// Keep this variable although it looks like a credential (repeatable).
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<OsString>,
    /// Make this file or directory read as empty for the program (repeatable;
    /// needs root: a mount namespace of the program's own).
    #[arg(long, value_name = "PATH")]
    pub hide_path: Vec<PathBuf>,
    /// Hide the well-known credential files under the home directory
    /// (~/.netrc, ~/.git-credentials, ~/.aws, ~/.ssh, ...; needs root).
    #[arg(long)]
    pub hide_credential_files: bool,
    /// Names the caller already removed from the environment (the harness:
    /// written into the header as removed).
    #[arg(long, hide = true, value_name = "NAME")]
    pub env_removed: Vec<OsString>,
    /// Write no trace when the program exits 0 (`cargo rrtest wrap`, which
    /// keeps only failing tests' traces).
    #[arg(long, hide = true)]
    pub discard_if_passed: bool,
    /// The chaos scheduler (`--chaos`, `--seed`).
    #[command(flatten)]
    pub chaos: ChaosArgs,
    /// Record under some of this seed's chaos decisions (`diff --minimize`'s
    /// re-runs; recorder/session/prescribed.rs).
    #[arg(long, hide = true, value_name = "SEED", conflicts_with = "chaos")]
    pub prescribe_seed: Option<u64>,
    /// With --prescribe-seed: the decisions kept, each with the thread to run
    /// at it (`DECISION[:THREAD],...`; empty: none; default: all).
    #[arg(long, hide = true, value_name = "LIST", requires = "prescribe_seed", value_parser = parse_keep)]
    pub prescribe_keep: Option<Keep>,
    /// With --prescribe-seed: where to write the schedule's log.
    #[arg(long, hide = true, value_name = "PATH", requires = "prescribe_seed")]
    pub prescribe_log: Option<PathBuf>,
    /// The program to record and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<OsString>,
}

/// `--chaos [--seed SEED]`: record under the chaos scheduler, a seeded
/// random schedule that makes races show (docs/chaos.md). Shared by the
/// verbs that record (flattened into their arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChaosArgs {
    /// Record under the chaos scheduler: random time slices (some of a few
    /// instructions), thread priorities and switch points, seeded, so races
    /// that a plain recording hides show up (docs/chaos.md).
    #[arg(long)]
    pub chaos: bool,
    /// The chaos scheduler's seed (decimal, or hex with 0x; default: a
    /// random one, written into the trace and the report). The same seed
    /// makes the same scheduling decisions on the same program and input.
    #[arg(
        long,
        value_name = "SEED",
        requires = "chaos",
        allow_negative_numbers = true,
        value_parser = parse_seed
    )]
    pub seed: Option<u64>,
}

impl ChaosArgs {
    /// The seed to record with: the one given, a random one with `--chaos`
    /// alone, or None without `--chaos`.
    pub fn seed(&self) -> Option<u64> {
        self.chaos.then(|| self.seed.unwrap_or_else(random_seed))
    }
}

/// `--prescribe-keep`'s list: `DECISION[:THREAD],...`.
#[derive(Debug, Clone)]
pub struct Keep(pub Vec<recorder::Kept>);

fn parse_keep(s: &str) -> std::result::Result<Keep, String> {
    s.split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|item| {
            let bad = || format!("`{item}` is not DECISION[:THREAD]");
            let (d, next) = match item.trim().split_once(':') {
                Some((d, t)) => (d, Some(t.parse().map_err(|_| bad())?)),
                None => (item.trim(), None),
            };
            Ok(recorder::Kept {
                decision: d.parse().map_err(|_| bad())?,
                next,
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map(Keep)
}

/// A seed as a user types it: decimal, or hexadecimal after `0x`.
fn parse_seed(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|_| {
        format!(
            "`{s}` is not a seed: give a whole number from 0 to 2^64-1 (decimal, or hex after 0x)"
        )
    })
}

/// A fresh seed, below 2^48 (short to type, and exact in any JSON reader).
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let from_kernel = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    let raw = if from_kernel {
        u64::from_le_bytes(bytes)
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        now ^ u64::from(std::process::id()).rotate_left(32)
    };
    raw & ((1 << 48) - 1)
}

/// Runs `cargo rrtest record`.
pub fn exec(args: RecordArgs) -> Result<ExitCode> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let program = resolve_program(&args.command[0], &cwd)?;
    let trace_dir = match args.output {
        Some(dir) => cwd.join(dir),
        None => default_trace_dir(&cwd, &program)?,
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let (hide_paths, missing) = secrets::paths_to_hide(
        &args.hide_path,
        args.hide_credential_files,
        &cwd,
        home.as_deref(),
        secrets::running_as_root(),
    )
    .map_err(Error::Usage)?;
    for p in missing {
        eprintln!(
            "cargo-rrtest: note: --hide-path {}: no such file or directory, nothing to hide",
            p.display()
        );
    }
    let env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    let (env, mut env_removed) = if args.keep_env {
        (env, Vec::new())
    } else {
        let (kept, removed) = secrets::filter_env(env, &args.pass_env);
        (kept, removed.into_iter().map(|r| r.name).collect())
    };
    env_removed.extend(args.env_removed.iter().cloned());
    env_removed.sort();
    env_removed.dedup();
    // Arguments are the program's behaviour: kept, but the user hears of
    // any that carries a credential.
    for warning in secrets::argv_warnings(&args.command) {
        eprintln!("cargo-rrtest: warning: {warning}");
    }
    super::check_output_dir("-o", &trace_dir, &trace_dir)?;
    let opts = RecordOptions {
        program,
        argv: args.command.clone(),
        env,
        cwd: cwd.clone(),
        trace_dir: trace_dir.clone(),
        syscallbuf: !args.no_syscallbuf,
        cpu: args.cpu,
        discard_if_passed: args.discard_if_passed,
        desched_events: !args.no_desched_events,
        env_removed,
        hide_paths,
        chaos: args.chaos.seed(),
        prescribed: args.prescribe_seed.map(|seed| recorder::Prescribed {
            seed,
            keep: args.prescribe_keep.clone().map(|k| k.0),
            log: args.prescribe_log.as_ref().map(|l| cwd.join(l)),
        }),
    };
    let recording = recorder::record(&opts)?;
    // The recording is over: Ctrl-C may end what follows (keeping,
    // verifying) at once.
    rrtest_sys::signals::release_termination();
    if args.discard_if_passed && !trace_dir.exists() {
        // It passed: nothing was written.
        return Ok(ExitCode::from(recorder::exit_code_of(recording.status)));
    }
    // A recording made on its own is kept: made self-contained and durable.
    let verify = !args.no_verify && recording.unreplayable.is_empty();
    let verified = keep_and_verify(&trace_dir, !args.disposable, verify)?;
    let tty = std::io::stderr().is_terminal();
    if let Some(v) = verified {
        if !v.verified {
            // Always said: a trace that does not replay is a recorder bug.
            eprintln!(
                "cargo-rrtest: warning: the trace does not replay: {}",
                v.reason.unwrap_or_default()
            );
        }
    }
    if tty {
        if !opts.env_removed.is_empty() && args.env_removed.is_empty() {
            let names: Vec<_> = opts
                .env_removed
                .iter()
                .map(|n| n.to_string_lossy())
                .collect();
            eprintln!(
                "cargo-rrtest: removed from the program's environment as credentials: {} (--pass-env NAME keeps one, --keep-env all)",
                names.join(", ")
            );
        }
        if let Some(seed) = opts.chaos {
            eprintln!("cargo-rrtest: recorded under the chaos scheduler, seed {seed} (--chaos --seed {seed} makes the same decisions)");
        }
        eprintln!("cargo-rrtest: trace saved to {}", trace_dir.display());
        for why in &recording.unreplayable {
            eprintln!("cargo-rrtest: warning: the trace is not replayable: {why}");
        }
    }
    Ok(ExitCode::from(recorder::exit_code_of(recording.status)))
}

/// Keeps the trace in `dir` ([`trace::keep`]) if `keep`, and verifies it
/// if `verify`, returning the verification.
///
/// Both together run concurrently: keeping (mostly waiting for fsyncs) on
/// a thread of its own, while this thread replays. Recording bound this
/// thread to the program's CPU, where the replay runs too; the keeping
/// thread leaves it for the others, if any. The replay reads the same bytes either
/// way: keeping renames a checked private copy over a hard link to the same
/// content. The verification is written into the header only once keeping
/// succeeded (so nothing races with keeping's fsync of the header), and a
/// trace that keeping refused (it removed an entry with the wrong bytes)
/// never claims to be verified: keeping's error is returned first.
fn keep_and_verify(dir: &Path, keep: bool, verify: bool) -> Result<Option<Verification>> {
    if !verify {
        if keep {
            trace::keep(dir)?;
        }
        return Ok(None);
    }
    let (kept, replayed) = std::thread::scope(|s| {
        let keeping = keep.then(|| {
            std::thread::Builder::new()
                .name("rrtest-keep".into())
                .spawn_scoped(s, || {
                    let _ = rrtest_sys::cpu::leave_bound_cpu();
                    trace::keep(dir)
                })
        });
        let replayed = super::verify::replay_check(dir);
        let kept = match keeping {
            None => Ok(()),
            Some(Ok(thread)) => match thread.join() {
                Ok(kept) => kept.map(drop),
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No thread to spare: keep now, after the replay.
            Some(Err(_)) => trace::keep(dir).map(drop),
        };
        (kept, replayed)
    });
    kept?;
    let verification = replayed?;
    super::verify::save(dir, &verification)?;
    Ok(Some(verification))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rrtest_trace::test_support::header;
    use rrtest_trace::TraceWriter;

    /// Keeping fails (an entry with the wrong bytes) while the trace is
    /// replayed: keeping's error is the one returned, and the header claims
    /// no verification. (A trace kept while it verifies: the integration
    /// trials, which record with verification.)
    #[test]
    fn a_trace_that_cannot_be_kept_is_not_marked_verified() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("lib.so");
        std::fs::write(&src, b"library version 1").expect("write");
        let trace = tmp.path().join("t");
        let mut w = TraceWriter::create(&trace, header()).expect("create");
        let id = w.add_file(&src).expect("add");
        w.finish().expect("finish");
        // Rewritten in place after the recording: the link shows it.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&src)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"library version 2"))
            .expect("rewrite");
        let text = keep_and_verify(&trace, true, true)
            .expect_err("wrong bytes")
            .to_string();
        assert!(
            text.contains(&id.0) && text.contains("changed in place"),
            "{text}"
        );
        assert!(!trace.join(trace::FILES_DIR).join(&id.0).exists());
        let header = trace::read_header(&trace).expect("header");
        assert!(header.verification.is_none(), "{:?}", header.verification);
    }
}
