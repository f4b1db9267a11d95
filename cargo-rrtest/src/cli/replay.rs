//! `cargo rrtest replay TRACE`: re-executes a recording deterministically to
//! its end, writing what the program wrote to stdout/stderr while recorded,
//! and exits with the recorded exit status. A divergence exits with
//! `exit_codes::DIVERGENCE` and a message naming the event.
//!
//! TRACE is, in this order:
//! - a trace directory;
//! - a trace archive (`.tar.zst`, as `cargo rrtest` packs kept traces): it is
//!   unpacked safely ([`rrtest_trace::pack::unpack`]) into a private
//!   temporary directory, removed afterwards, so it replays from anywhere,
//!   without the workspace or its target directory;
//! - a zip artifact as downloaded from a CI run page, or a folder holding
//!   trace archives (`cli/artifact.rs`), with an optional TEST to pick one;
//!   `NAME.zip` that is not there but a folder `NAME` is (what
//!   `gh run download -D NAME` leaves) is read as that folder;
//! - a test name as users type it (`cli/select.rs`: the exact name,
//!   `BINARY_ID::NAME`, its last `::` segments, or a unique part): the test's
//!   kept trace from the last report of the current workspace
//!   (`TARGET_DIR/rrtest/report.json`, or `--report`), else found by scanning
//!   `TARGET_DIR/rrtest/traces/` (the highest attempt). A name that matches
//!   several tests lists them with the command that replays each.
//!
//! SIGINT, SIGTERM and SIGHUP stop a replay at once (`harness::signals`
//! takes them; `replayer::interrupt` kills the tracees): the temporary
//! directories are removed and `replay` exits 128 + the signal. Temporary
//! directories that a killed replay left (its pid is in their names) are
//! removed by the next one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::errors::{Error, Result};
use crate::harness::{shell_word, signals};
use crate::recorder::exit_code_of;
use crate::replayer::{self, ReplayError, ReplayOptions};
use rrtest_report::Report;
use rrtest_trace::pack;

use super::artifact;
use super::gdb::GdbArgs;
use super::select::{self, Candidate, Pick};

/// Options of `cargo rrtest replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A trace directory, a trace archive (.tar.zst), a CI artifact (.zip) or a
    /// folder of archives, or a test name (its name, `BINARY_ID::NAME`, or a
    /// unique part of it: its latest kept trace in this workspace).
    #[arg(value_name = "TRACE|ARCHIVE|ARTIFACT|TEST")]
    pub trace: PathBuf,
    /// With a .zip artifact or a folder of archives: the test to replay
    /// (as above); without it, the only one, or a list of what is there.
    #[arg(value_name = "TEST")]
    pub test: Option<String>,
    /// Do not write the recorded output.
    #[arg(long)]
    pub quiet: bool,
    /// With a test name: the workspace's Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// With a test name: the target directory the tests ran in.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// With a test name: the report to look it up in [default: TARGET_DIR/rrtest/report.json].
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Only say whether this host can replay the trace, and why not (exit 0 or 106).
    #[arg(long, conflicts_with = "force")]
    pub check: bool,
    /// Replay even where the CPUs differ in what the program can observe.
    #[arg(long)]
    pub force: bool,
    /// The gdb options (`--gdb`, `--gdb-port`, ...).
    #[command(flatten)]
    pub debug: GdbArgs,
}

/// Runs `cargo rrtest replay`.
pub fn exec(args: ReplayArgs) -> Result<ExitCode> {
    let mut _chosen: Option<artifact::Chosen> = None;
    // A trace directory, even a damaged one (it is then refused as a bad
    // trace, 104), has one of these; a folder of archives has none.
    let is_trace_dir = [
        rrtest_trace::HEADER_FILE,
        rrtest_trace::EVENTS_FILE,
        rrtest_trace::FILES_DIR,
    ]
    .iter()
    .any(|f| args.trace.join(f).exists());
    let gh_folder = args.trace.with_extension("");
    let target = if artifact::is_zip(&args.trace) && args.trace.is_file() {
        let chosen = artifact::from_zip(&args.trace, args.test.as_deref())?;
        eprintln!("cargo-rrtest: replaying {}", chosen.shown);
        let archive = chosen.archive.clone();
        _chosen = Some(chosen);
        archive
    } else if artifact::is_zip(&args.trace) && !args.trace.exists() && gh_folder.is_dir() {
        eprintln!(
            "cargo-rrtest: {} is not there; reading the folder {} (as `gh run download -D` leaves it)",
            args.trace.display(),
            gh_folder.display()
        );
        let chosen = artifact::from_folder(&gh_folder, args.test.as_deref())?;
        eprintln!("cargo-rrtest: replaying {}", chosen.shown);
        chosen.archive
    } else if args.trace.is_dir() && !is_trace_dir {
        let chosen = artifact::from_folder(&args.trace, args.test.as_deref())?;
        eprintln!("cargo-rrtest: replaying {}", chosen.shown);
        chosen.archive
    } else if let Some(test) = &args.test {
        return Err(Error::Usage(format!(
            "{}: a test name ({test}) goes only after a .zip artifact or a folder of trace \
             archives; this is {}",
            args.trace.display(),
            if args.trace.exists() {
                "a trace or an archive: replay it alone"
            } else {
                "not there"
            }
        )));
    } else if args.trace.exists() {
        args.trace.clone()
    } else {
        let text = args.trace.to_string_lossy();
        // Binary ids may contain `/` (`crate::bin/name`), paths rarely `::`.
        let path_like = text.contains('/') && !text.contains("::");
        if path_like || text.ends_with(pack::ARCHIVE_SUFFIX) || artifact::is_zip(&args.trace) {
            return Err(Error::Usage(format!(
                "{}: no such trace directory, archive or zip artifact",
                args.trace.display()
            )));
        }
        let found = find_test_trace(&text, &args)?;
        eprintln!("cargo-rrtest: replaying {}", found.display());
        found
    };
    let debugging = args.debug.gdb || args.debug.gdb_port.is_some();
    if (args.debug.break_on_panic
        || args.debug.process.is_some()
        || !args.debug.gdb_args.is_empty())
        && !debugging
    {
        return Err(Error::Usage(format!(
            "{} needs --gdb (or --gdb-port): it tells gdb what to do",
            if args.debug.break_on_panic {
                "--break-on-panic"
            } else if args.debug.process.is_some() {
                "--process"
            } else {
                "arguments after `--`"
            }
        )));
    }
    if !args.debug.gdb_args.is_empty() && !args.debug.gdb {
        return Err(Error::Usage(
            "arguments after `--` are for the gdb that --gdb starts; with --gdb-port alone, \
             give them to your debugger"
                .into(),
        ));
    }
    // Before any thread starts (see harness::signals). While debugging,
    // Ctrl-C belongs to gdb (it interrupts the replay through the
    // protocol): it is left to its default (see cli/gdb.rs).
    if !debugging {
        interruptible();
    }
    let mut _unpacked: Option<pack::PrivateTempDir> = None;
    let trace_dir = if target.is_dir() {
        target
    } else {
        super::tempdirs::sweep_stale(&std::env::temp_dir());
        let tmp = pack::PrivateTempDir::new("replay").map_err(rrtest_trace::Error::from)?;
        let dir = pack::unpack(&target, tmp.path(), pack::Limits::default())
            .map_err(rrtest_trace::Error::from)?;
        _unpacked = Some(tmp);
        dir
    };
    if let Some(code) = super::host_check::before_replay(&trace_dir, args.check, args.force)? {
        return Ok(code);
    }
    if signals::cancelled() {
        return Ok(ExitCode::from(signals::exit_code()));
    }
    let opts = ReplayOptions {
        trace_dir,
        echo_output: !args.quiet,
    };
    if debugging {
        return super::gdb::exec(&args.debug, opts);
    }
    let replayed = replayer::replay(&opts);
    if interrupted(replayed.is_err()) {
        return Ok(ExitCode::from(signals::exit_code()));
    }
    match replayed {
        Ok(done) => Ok(ExitCode::from(exit_code_of(done.status))),
        Err(ReplayError::Divergence(d)) => Err(Error::Divergence(d)),
        Err(ReplayError::Other(replayer::Error::Trace(e))) => Err(Error::Trace(e)),
        Err(ReplayError::Other(e)) => Err(Error::Replayer(e)),
    }
}

/// Lets SIGINT, SIGTERM and SIGHUP end replays: taken by the signal
/// thread, which kills the replay's tracees. Call before any thread starts.
pub(super) fn interruptible() {
    signals::cancel_flag();
    signals::on_cancel(replayer::interrupt);
}

/// Whether the replay was interrupted by a signal. A terminal's Ctrl-C
/// reaches the tracee too, which may end the replay with an error before
/// the signal thread has run: after an error, it gets a moment.
pub(super) fn interrupted(failed: bool) -> bool {
    if signals::cancelled() || replayer::interrupted() {
        return true;
    }
    if failed {
        std::thread::sleep(std::time::Duration::from_millis(50));
        return signals::cancelled();
    }
    false
}

/// The latest kept trace of the test `name` names (`cli/select.rs`): its
/// directory, or its archive when the report names one and the directory
/// is gone.
fn find_test_trace(name: &str, args: &ReplayArgs) -> Result<PathBuf> {
    let target = select::target_dir(
        args.target_dir.as_deref(),
        args.manifest_path.as_deref(),
        &args.trace.display().to_string(),
    )?;
    let rrtest = target.join("rrtest");
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| rrtest.join("report.json"));
    // The flags the user gave, for the listed commands.
    let mut flags = String::new();
    for (flag, value) in [
        ("--manifest-path", &args.manifest_path),
        ("--target-dir", &args.target_dir),
        ("--report", &args.report),
    ] {
        if let Some(v) = value {
            flags.push_str(&format!("{flag} {} ", shell_word(&v.to_string_lossy())));
        }
    }
    // From the report: real names. A missing report means scanning the
    // traces; one that is there but cannot be read (not a report, not a
    // regular file, too large) is an error naming it when given with
    // `--report`, and named in a warning, then scanned past, otherwise.
    let report = match Report::read(&report_path) {
        Ok(report) => Some(report),
        Err(rrtest_report::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) if args.report.is_some() => {
            return Err(Error::Usage(format!("--report: {e}")));
        }
        Err(e) => {
            eprintln!("warning: ignoring the last report: {e}");
            None
        }
    };
    if let Some(report) = report {
        let found: Vec<Candidate> = report
            .tests
            .iter()
            .filter_map(|t| {
                let trace = PathBuf::from(t.trace.as_ref()?);
                let archive = t.archive.as_ref().map(PathBuf::from);
                let usable = if trace.is_dir() {
                    trace
                } else {
                    archive.filter(|a| a.is_file())?
                };
                Some(Candidate {
                    binary_id: t.binary_id.clone(),
                    name: t.name.clone(),
                    path: usable,
                    replay_args: format!(
                        "{flags}{}",
                        shell_word(&format!("{}::{}", t.binary_id, t.name))
                    ),
                    sanitized: false,
                    aliases: Vec::new(),
                })
            })
            .collect();
        if let Some(dir) = one_of(name, found)? {
            return Ok(dir);
        }
    }
    // Else scan the trace directories (names there are made file-name safe).
    let traces = rrtest.join("traces");
    let mut found: Vec<Candidate> = Vec::new();
    for bin in read_dirs(&traces) {
        for test in read_dirs(&bin) {
            let (Some(b), Some(t)) = (file_name(&bin), file_name(&test)) else {
                continue;
            };
            let latest = read_dirs(&test)
                .into_iter()
                .filter(|d| d.join(rrtest_trace::HEADER_FILE).is_file())
                .filter_map(|d| {
                    let n: u32 = file_name(&d)?.strip_prefix("attempt-")?.parse().ok()?;
                    Some((n, d))
                })
                .max_by_key(|(n, _)| *n);
            if let Some((_, dir)) = latest {
                found.push(Candidate {
                    replay_args: shell_word(&dir.to_string_lossy()),
                    aliases: vec![format!("{b}/{t}")],
                    binary_id: b,
                    name: t,
                    path: dir,
                    sanitized: true,
                });
            }
        }
    }
    one_of(name, found)?.ok_or_else(|| {
        Error::Usage(format!(
            "no kept trace of a test named `{name}` or with a name containing it (looked in {} and {}); \
             traces are kept for failed, timed-out and flaky tests (`--keep all` keeps every one)",
            report_path.display(),
            traces.display()
        ))
    })
}

/// The single candidate `name` picks, None for none, an error listing them
/// for several.
fn one_of(name: &str, found: Vec<Candidate>) -> Result<Option<PathBuf>> {
    match select::pick(name, found) {
        Pick::None => Ok(None),
        Pick::One(c) => Ok(Some(c.path)),
        Pick::Many(cs) => Err(Error::Usage(format!(
            "`{name}` matches {} tests with kept traces; name one:\n{}",
            cs.len(),
            select::listing(&cs)
        ))),
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(trace: &str, target: &Path) -> ReplayArgs {
        ReplayArgs {
            trace: trace.into(),
            test: None,
            quiet: true,
            manifest_path: None,
            target_dir: Some(target.to_path_buf()),
            report: Some(target.join("no-report.json")),
            check: false,
            force: false,
            debug: GdbArgs::default(),
        }
    }

    /// `traces/<bin>/<test>/attempt-<n>/header.json`.
    fn fake_trace(target: &Path, bin: &str, test: &str, attempt: u32) -> PathBuf {
        let dir = target
            .join("rrtest/traces")
            .join(bin)
            .join(test)
            .join(format!("attempt-{attempt}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(rrtest_trace::HEADER_FILE), "{}").unwrap();
        dir
    }

    #[test]
    fn finds_the_latest_attempt_by_scanning() {
        let tmp = tempfile::tempdir().unwrap();
        fake_trace(tmp.path(), "demo-core", "tests__fails", 1);
        let latest = fake_trace(tmp.path(), "demo-core", "tests__fails", 2);
        let a = args("tests::fails", tmp.path());
        assert_eq!(find_test_trace("tests::fails", &a).unwrap(), latest);
        assert_eq!(
            find_test_trace("demo-core::tests::fails", &a).unwrap(),
            latest
        );
    }

    #[test]
    fn an_ambiguous_name_lists_the_candidates() {
        let tmp = tempfile::tempdir().unwrap();
        fake_trace(tmp.path(), "demo-core", "tests__fails", 1);
        fake_trace(tmp.path(), "demo-app", "tests__fails", 1);
        let a = args("tests::fails", tmp.path());
        let err = find_test_trace("tests::fails", &a).unwrap_err().to_string();
        assert!(err.contains("matches 2 tests"), "{err}");
        assert!(
            err.contains("demo-app tests__fails") && err.contains("demo-core tests__fails"),
            "{err}"
        );
        let err = find_test_trace("tests::other", &a).unwrap_err().to_string();
        assert!(err.contains("no kept trace"), "{err}");
    }
}
