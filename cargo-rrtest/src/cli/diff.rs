//! `cargo rrtest diff A B [--json]`, `cargo rrtest diff TEST`: where two
//! recordings of the same test part ways (docs/stress-and-diff.md).
//!
//! A and B are trace directories or archives (`.tar.zst`, unpacked
//! privately); a TEST (as `replay` takes it: `cli/select.rs`) stands for
//! its kept failing and passing traces, from the last report or the
//! traces directory. It owns finding and opening the two recordings, the
//! check that they record the same test, and the human and JSON output;
//! the comparison is `rrtest_trace::diff`'s (through
//! [`crate::harness::tracediff`]). It must not run or replay anything
//! itself: `--minimize` hands the checked pair to
//! [`crate::harness::minimize`], which re-runs the test, and prints what it
//! found.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rrtest_report::Report;
use rrtest_trace::diff::{self as tdiff, Diff, Located};
use rrtest_trace::{pack, Header};
use serde::Serialize;

use super::select::{self, Candidate, Pick};
use crate::errors::{Error, Result};
use crate::harness::{minimize, record::sanitize, shell_word, tracediff};

/// The version of `diff --json`'s output (bumped when a field is removed
/// or changes meaning; fields are added without a bump).
pub const JSON_VERSION: u32 = 1;

/// Options of `cargo rrtest diff`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Threads are aligned by their place in the thread tree (main, main.1, \
main.1.2: the n-th thread a thread created), not by their ids. Values that differ between any \
two runs (times, random bytes, thread ids, addresses, numbers in output) are named but not \
counted as differences. See docs/stress-and-diff.md.\n\n\
Exit codes: 0 compared (whether or not they differ), 2 usage error, 104 a trace cannot be read."
)]
pub struct DiffArgs {
    /// The first recording (conventionally the failing one): a trace directory or archive, or a
    /// test name whose kept traces include a failing and a passing one.
    #[arg(value_name = "A|TEST")]
    pub a: String,
    /// The second recording (the passing one): a trace directory or archive.
    #[arg(value_name = "B")]
    pub b: Option<PathBuf>,
    /// Print JSON (docs/stress-and-diff.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Events of context to show before a difference.
    #[arg(long, value_name = "N", default_value_t = tdiff::DEFAULT_CONTEXT)]
    pub context: usize,
    /// With a test name: the workspace's Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// With a test name: the target directory the tests ran in.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// With a test name: the report to look it up in [default: TARGET_DIR/rrtest/report.json].
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Narrow the failing chaos recording's scheduling decisions to the fewest that still make
    /// the test fail, re-running it live (delta debugging), and show where they switched
    /// threads, as file:line (docs/stress-and-diff.md).
    #[arg(long)]
    pub minimize: bool,
    /// With --minimize: re-runs of each candidate schedule; it fails only if every one does.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "minimize",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub check_runs: u32,
    /// With --minimize: the most re-runs in all (then the smallest failing schedule found is
    /// shown, marked not minimal).
    #[arg(long, value_name = "N", default_value_t = 80, requires = "minimize",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_runs: u32,
    /// With --minimize: the most time in all (`90s`, `5m`).
    #[arg(long, value_name = "DURATION", default_value = "5m", requires = "minimize",
          value_parser = super::stress::parse_duration)]
    pub budget: std::time::Duration,
}

/// One side of the comparison, opened.
struct Side {
    /// As the user gave it (or as found).
    shown: PathBuf,
    /// The trace directory.
    dir: PathBuf,
    header: Header,
    /// Keeps an unpacked archive until the end.
    _tmp: Option<pack::PrivateTempDir>,
}

/// `--json`'s description of one recording.
#[derive(Debug, Serialize)]
struct SideJson {
    path: String,
    outcome: String,
    events: usize,
}

/// `--json`'s output.
#[derive(Debug, Serialize)]
struct DiffJson<'a> {
    version: u32,
    a: SideJson,
    b: SideJson,
    #[serde(flatten)]
    diff: &'a Diff,
}

/// Runs `cargo rrtest diff`.
pub fn exec(args: DiffArgs) -> Result<ExitCode> {
    let (a, b) = match &args.b {
        Some(b) => (open(Path::new(&args.a))?, open(b)?),
        None => {
            if Path::new(&args.a).exists() {
                return Err(Error::Usage(format!(
                    "{}: give a second trace to compare it with (`cargo rrtest diff A B`), or a \
                     test name whose kept traces include a failing and a passing one",
                    args.a
                )));
            }
            let (fa, fb) = find_pair(&args.a, &args)?;
            eprintln!(
                "cargo-rrtest: comparing {} (failing) with {} (passing)",
                fa.display(),
                fb.display()
            );
            (open(&fa)?, open(&fb)?)
        }
    };
    same_test(&a, &b)?;
    if args.minimize {
        return minimize(&a, &b, &args);
    }
    let ea = tracediff::load(&a.dir)?;
    let eb = tracediff::load(&b.dir)?;
    let diff = tdiff::diff(&ea, &eb, &tracediff::options(args.context));
    let text = if args.json {
        let out = DiffJson {
            version: JSON_VERSION,
            a: side_json(&a, ea.len()),
            b: side_json(&b, eb.len()),
            diff: &diff,
        };
        let mut s = serde_json::to_string_pretty(&out)
            .map_err(|e| Error::Other(format!("cannot serialize the comparison: {e}")))?;
        s.push('\n');
        s
    } else {
        render(&a, &b, &diff)
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(ExitCode::SUCCESS)
}

/// `--minimize --json`'s description of one recording.
#[derive(Debug, Serialize)]
struct SideBrief {
    path: String,
    outcome: String,
}

/// `--minimize --json`'s output.
#[derive(Debug, Serialize)]
struct MinimizeJson<'a> {
    version: u32,
    failing: SideBrief,
    passing: SideBrief,
    #[serde(flatten)]
    found: &'a minimize::Minimized,
}

/// `--minimize`: the failing recording `a` must be a chaos one and fail,
/// the passing one `b` pass.
fn minimize(a: &Side, b: &Side, args: &DiffArgs) -> Result<ExitCode> {
    let target = minimize::Target::of(&a.header, &a.shown)?;
    if !passed(&b.header) {
        return Err(Error::Usage(format!(
            "{} did not pass ({}): --minimize takes a failing recording and then a passing one",
            b.shown.display(),
            outcome(&b.header)
        )));
    }
    let limits = minimize::Limits {
        check_runs: args.check_runs,
        max_runs: args.max_runs,
        budget: args.budget,
    };
    let found = minimize::minimize(&target, limits)?;
    let text = if args.json {
        let out = MinimizeJson {
            version: JSON_VERSION,
            failing: SideBrief {
                path: a.shown.display().to_string(),
                outcome: outcome(&a.header),
            },
            passing: SideBrief {
                path: b.shown.display().to_string(),
                outcome: outcome(&b.header),
            },
            found: &found,
        };
        let mut s = serde_json::to_string_pretty(&out)
            .map_err(|e| Error::Other(format!("cannot serialize the result: {e}")))?;
        s.push('\n');
        s
    } else {
        render_minimized(a, b, &found)
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(ExitCode::SUCCESS)
}

/// `--minimize`'s human output.
fn render_minimized(a: &Side, b: &Side, m: &minimize::Minimized) -> String {
    let mut s = format!(
        "Failing: {} ({}), chaos seed {}\nPassing: {} ({})\n",
        a.shown.display(),
        outcome(&a.header),
        m.seed,
        b.shown.display(),
        outcome(&b.header)
    );
    let how = if m.minimal {
        "dropping any one of them makes it pass".to_string()
    } else {
        format!(
            "not minimal: {}",
            m.stopped.as_deref().unwrap_or("stopped early")
        )
    };
    s.push_str(&format!(
        "{} of the seed's {} scheduling decisions still make the test fail (exit {}) on every \
         re-run; {how}.\n",
        m.kept.len(),
        m.decisions,
        m.failing_exit
    ));
    s.push_str(&format!(
        "Re-runs: {} in {:.1} s.\n",
        m.runs,
        m.elapsed_ms as f64 / 1000.0
    ));
    for c in &m.cuts {
        s.push_str(&format!(
            "  decision {} ({}): {}\n",
            c.decision, c.kind, c.text
        ));
    }
    if let Some(note) = &m.note {
        s.push_str(&format!("Note: {note}\n"));
    }
    s
}

fn side_json(s: &Side, events: usize) -> SideJson {
    SideJson {
        path: s.shown.display().to_string(),
        outcome: outcome(&s.header),
        events,
    }
}

/// Opens a trace directory, or unpacks an archive.
fn open(path: &Path) -> Result<Side> {
    if !path.exists() {
        return Err(Error::Usage(format!(
            "{}: no such trace directory or archive",
            path.display()
        )));
    }
    let (dir, tmp) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let tmp = pack::PrivateTempDir::new("diff").map_err(rrtest_trace::Error::from)?;
        let dir = pack::unpack(path, tmp.path(), pack::Limits::default())
            .map_err(rrtest_trace::Error::from)?;
        (dir, Some(tmp))
    };
    let header = rrtest_trace::read_header(&dir)?;
    Ok(Side {
        shown: path.to_path_buf(),
        dir,
        header,
        _tmp: tmp,
    })
}

/// The program and its arguments, as compared: the executable's file
/// name (two builds of one test live in different directories) and the
/// arguments.
fn what_ran(h: &Header) -> Vec<String> {
    let exe = Path::new(&h.exe)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| h.exe.clone());
    std::iter::once(exe)
        .chain(h.argv.iter().skip(1).cloned())
        .collect()
}

/// Refuses recordings of two different programs or tests.
fn same_test(a: &Side, b: &Side) -> Result<()> {
    let (wa, wb) = (what_ran(&a.header), what_ran(&b.header));
    if wa != wb {
        return Err(Error::Usage(format!(
            "{} records `{}` but {} records `{}`: diff compares two recordings of the same test",
            a.shown.display(),
            wa.join(" "),
            b.shown.display(),
            wb.join(" ")
        )));
    }
    Ok(())
}

fn outcome(h: &Header) -> String {
    match h.outcome {
        Some(rrtest_trace::Outcome::Exited { code }) => format!("exit {code}"),
        Some(rrtest_trace::Outcome::Signaled { signo }) => {
            format!("killed by {}", crate::harness::signals::signal_name(signo))
        }
        None => "unfinished".into(),
    }
}

fn passed(h: &Header) -> bool {
    h.outcome == Some(rrtest_trace::Outcome::Exited { code: 0 })
}

/// A test's kept traces: (attempt, path, passed).
type Kept = Vec<(u32, PathBuf, bool)>;

/// The failing and the passing trace of the test `name` names: from the
/// last report, else from the traces directory.
fn find_pair(name: &str, args: &DiffArgs) -> Result<(PathBuf, PathBuf)> {
    let target = select::target_dir(
        args.target_dir.as_deref(),
        args.manifest_path.as_deref(),
        &args.a,
    )?;
    let rrtest = target.join("rrtest");
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| rrtest.join("report.json"));
    let mut found: Vec<(Candidate, Kept)> = Vec::new();
    match Report::read(&report_path) {
        Ok(report) => {
            for t in &report.tests {
                let kept: Kept = t
                    .attempts
                    .iter()
                    .filter_map(|a| {
                        let dir = a.trace.as_ref().map(PathBuf::from).filter(|d| d.is_dir());
                        // A later run may have replaced the directory: its
                        // header says how this recording ended.
                        let passed = match &dir {
                            Some(d) => passed(&rrtest_trace::read_header(d).ok()?),
                            None => a.outcome.is_pass(),
                        };
                        let archive = a
                            .archive
                            .as_ref()
                            .map(PathBuf::from)
                            .filter(|p| p.is_file());
                        Some((a.attempt, dir.or(archive)?, passed))
                    })
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                found.push((
                    candidate(&t.binary_id, &t.name, false, rrtest.join("traces")),
                    kept,
                ));
            }
        }
        Err(rrtest_report::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && args.report.is_none() => {}
        Err(e) => return Err(Error::Usage(format!("reading the report: {e}"))),
    }
    if found.is_empty() {
        found = scan(&rrtest.join("traces"));
    }
    let by_path: Vec<Candidate> = found.iter().map(|(c, _)| c.clone()).collect();
    let chosen = match select::pick(name, by_path) {
        Pick::One(c) => c,
        Pick::None => {
            return Err(Error::Usage(format!(
                "no kept traces of a test named `{name}` or with a name containing it (looked in \
                 {} and {}); `cargo rrtest stress {name}` keeps a failing and a passing one",
                report_path.display(),
                rrtest.join("traces").display()
            )))
        }
        Pick::Many(cs) => {
            return Err(Error::Usage(format!(
                "`{name}` matches {} tests with kept traces; name one:\n{}",
                cs.len(),
                select::listing(&cs).replace("cargo rrtest replay", "cargo rrtest diff")
            )))
        }
    };
    let kept = found
        .into_iter()
        .find(|(c, _)| c.binary_id == chosen.binary_id && c.name == chosen.name)
        .map(|(_, k)| k)
        .unwrap_or_default();
    let failing = kept.iter().find(|(_, _, passed)| !passed);
    let passing = kept.iter().find(|(_, _, passed)| *passed);
    match (failing, passing) {
        (Some(f), Some(p)) => Ok((f.1.clone(), p.1.clone())),
        (None, _) => Err(Error::Usage(format!(
            "{} {} has no kept failing trace to compare",
            chosen.binary_id, chosen.name
        ))),
        (_, None) => Err(Error::Usage(format!(
            "{} {} has a failing trace but no passing one to compare it with; \
             `cargo rrtest stress {}` keeps one of each (or run with `--keep all`)",
            chosen.binary_id,
            chosen.name,
            shell_word(&chosen.name)
        ))),
    }
}

fn candidate(binary_id: &str, name: &str, sanitized: bool, path: PathBuf) -> Candidate {
    Candidate {
        binary_id: binary_id.to_string(),
        name: name.to_string(),
        path,
        replay_args: shell_word(&format!("{binary_id}::{name}")),
        sanitized,
        aliases: Vec::new(),
    }
}

/// Every test's kept traces under `traces/<binary>/<test>/attempt-<N>`,
/// passing or not by their headers.
fn scan(traces: &Path) -> Vec<(Candidate, Kept)> {
    let dirs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for bin in dirs(traces) {
        for test in dirs(&bin) {
            let kept: Kept = dirs(&test)
                .into_iter()
                .filter_map(|d| {
                    let n: u32 = name(&d)?.strip_prefix("attempt-")?.parse().ok()?;
                    let h = rrtest_trace::read_header(&d).ok()?;
                    Some((n, d, passed(&h)))
                })
                .collect();
            if let (Some(b), Some(t), false) = (name(&bin), name(&test), kept.is_empty()) {
                debug_assert_eq!(sanitize(&t), t);
                out.push((candidate(&b, &t, true, test.clone()), kept));
            }
        }
    }
    out
}

/// The human output.
fn render(a: &Side, b: &Side, d: &Diff) -> String {
    let mut s = String::new();
    let line = |s: &mut String, l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(
        &mut s,
        format!("A: {} ({})", a.shown.display(), outcome(&a.header)),
    );
    line(
        &mut s,
        format!("B: {} ({})", b.shown.display(), outcome(&b.header)),
    );
    line(
        &mut s,
        "Threads (aligned by their place in the thread tree; tid in A / B, actions in A / B):"
            .into(),
    );
    let width = d.threads.iter().map(|t| t.thread.len()).max().unwrap_or(0);
    for t in &d.threads {
        let tid = |x: Option<i32>| x.map_or("-".to_string(), |v| v.to_string());
        line(
            &mut s,
            format!(
                "  {:width$}  tid {} / {}  {} / {} actions",
                t.thread,
                tid(t.tid_a),
                tid(t.tid_b),
                t.actions_a,
                t.actions_b
            ),
        );
    }
    let show = |s: &mut String, title: &str, items: &[Located]| {
        if items.is_empty() {
            return;
        }
        s.push_str(&format!("  {title}\n"));
        for l in items {
            s.push_str(&format!(
                "    event {:>6}  {:<8} {}\n",
                l.event, l.thread, l.text
            ));
        }
    };
    match &d.first_difference {
        Some(f) => {
            let at = |l: &Option<Located>| {
                l.as_ref().map_or("no more actions".to_string(), |l| {
                    format!("its action {}, event {}", l.index, l.event)
                })
            };
            line(
                &mut s,
                format!(
                    "First difference: thread {} differs in {} (A: {}; B: {})",
                    f.thread,
                    f.what,
                    at(&f.a),
                    at(&f.b)
                ),
            );
            let text = |l: &Option<Located>| {
                l.as_ref()
                    .map_or("(the thread has no more actions)".to_string(), |l| {
                        l.text.clone()
                    })
            };
            line(&mut s, format!("  A: {}", text(&f.a)));
            line(&mut s, format!("  B: {}", text(&f.b)));
            show(
                &mut s,
                &format!("{} just before, in A:", f.thread),
                &f.thread_before_a,
            );
            show(
                &mut s,
                &format!("{} just before, in B:", f.thread),
                &f.thread_before_b,
            );
            show(&mut s, "every thread just before it, in A:", &f.before_a);
            show(&mut s, "every thread just before it, in B:", &f.before_b);
        }
        None => line(
            &mut s,
            "No thread did anything different (up to the values below).".into(),
        ),
    }
    match &d.schedule {
        Some(sch) => {
            line(
                &mut s,
                format!("Schedule: {}", tracediff::schedule_line(sch, "A", "B")),
            );
            show(&mut s, "around it, in A:", &sch.around_a);
            show(&mut s, "around it, in B:", &sch.around_b);
        }
        None => line(&mut s, "Schedule: the same.".into()),
    }
    if d.ignored.is_empty() {
        line(&mut s, "Ignored: nothing (no value differed).".into());
    } else {
        line(
            &mut s,
            "Ignored (values that differ between any two runs, before each thread's first difference):"
                .into(),
        );
        for i in &d.ignored {
            line(
                &mut s,
                format!("  {} x{}, first: {}", i.what, i.count, i.example),
            );
        }
    }
    if d.identical {
        line(&mut s, "The recordings do not differ meaningfully.".into());
    }
    s
}
