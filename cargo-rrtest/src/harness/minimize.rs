//! `cargo rrtest diff --minimize FAILING PASSING`: the fewest of a failing
//! chaos recording's scheduling decisions that still make the test fail,
//! as source locations (docs/stress-and-diff.md).
//!
//! The failing recording names its chaos seed; the test is re-run live
//! (recorded, not replayed: `cargo rrtest record` under a prescribed
//! schedule, `recorder/session/prescribed.rs`) under some of that seed's
//! decisions, the default scheduler's answer standing for the others.
//! Delta debugging ([`ddmin`]) narrows the decisions to a set that fails
//! on every one of `--check-runs` re-runs while dropping any one of them
//! makes a run pass (or, stopped by `--max-runs` or `--budget`, the
//! smallest failing set found). The last failing run's log then says where
//! each kept decision switched a thread out and where the threads that ran
//! in between were, resolved to file:line by `addr2line` (binutils).
//!
//! It owns the re-runs, the search and the report; `cli/diff.rs` finds and
//! checks the two recordings and prints. It must not keep traces: every
//! re-run's trace is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::errors::{Error, Result};
use rrtest_trace::{Header, Outcome};

/// How a search is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Re-runs of each candidate: it fails only if every one fails.
    pub check_runs: u32,
    /// Re-runs in all.
    pub max_runs: u32,
    /// Time in all.
    pub budget: Duration,
}

/// The longest one re-run may take before it is killed (and counted as
/// not failing).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What the search found.
#[derive(Debug, Serialize)]
pub struct Minimized {
    /// The chaos seed of the failing recording.
    pub seed: u64,
    /// The exit status the failure has (the failing recording's).
    pub failing_exit: i32,
    /// Decisions the seed's schedule made (that the default would not).
    pub decisions: u64,
    /// The decisions kept, by name (`THREAD.STOP`: the thread's stop
    /// number; `THREAD.first`; `pause.N`).
    pub kept: Vec<String>,
    /// Whether the search finished (dropping any one kept decision makes a
    /// run pass); false when a cap stopped it first.
    pub minimal: bool,
    /// What stopped the search early, if anything.
    pub stopped: Option<String>,
    /// Re-runs made.
    pub runs: u32,
    /// Wall time of the search.
    pub elapsed_ms: u64,
    /// Each kept decision, where it took effect.
    pub cuts: Vec<Cut>,
    /// Why places have no file:line (no `addr2line`), if so.
    pub note: Option<String>,
}

/// One kept decision, as it took effect in the last failing re-run.
#[derive(Debug, Serialize)]
pub struct Cut {
    /// Its name (see [`Minimized::kept`]).
    pub decision: String,
    /// `preempt`, `switch`, `first` or `pause`.
    pub kind: String,
    /// The thread it was about (1: the first, in the order they started).
    pub thread: Option<u32>,
    /// Where that thread was switched out.
    pub switched_out_at: Option<Place>,
    /// The threads that ran before it ran again, each where it stopped.
    pub in_between: Vec<Ran>,
    /// The sentence for people.
    pub text: String,
}

/// A thread that ran in between.
#[derive(Debug, Serialize)]
pub struct Ran {
    /// The thread (1: the first).
    pub thread: u32,
    /// Where it stopped running.
    pub at: Place,
}

/// Where a thread was.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// `ready` (stopped in user code), `syscall` (at a syscall),
    /// `blocked` (waiting in one), `exited`.
    pub state: String,
    /// The syscall, when at or in one.
    pub syscall: Option<String>,
    /// The instruction pointer.
    pub ip: Option<u64>,
    /// The mapped file there and the address in it.
    pub object: Option<String>,
    pub addr: Option<u64>,
    /// `addr2line`'s function and `file:line` (the file's full path).
    pub function: Option<String>,
    pub source: Option<String>,
    /// Where the function was inlined, innermost first: `function at
    /// file:line`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlined_in: Vec<String>,
    /// The calls found on the thread's stack that `addr2line` places,
    /// innermost first: `function at file:line` (a scan, not an unwind:
    /// docs/stress-and-diff.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub called_from: Vec<String>,
}

impl Place {
    /// `race_counter.c:20 (work)`, `libc.so.6+0x10990d`, `its futex
    /// syscall`.
    fn short(&self) -> String {
        let base = |p: &str| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.to_string())
        };
        let caller = self
            .called_from
            .first()
            .and_then(|c| c.split_once(" at "))
            .map(|(f, at)| format!(", called from {} ({f})", base(at)))
            .unwrap_or_default();
        let at = match (&self.source, &self.object, self.addr) {
            (Some(src), _, _) => {
                let f = self.function.as_deref().unwrap_or("?");
                let inlined: String = self
                    .inlined_in
                    .iter()
                    .map(|i| match i.split_once(" at ") {
                        Some((f, at)) => format!(", inlined in {f} at {}", base(at)),
                        None => format!(", inlined in {i}"),
                    })
                    .collect();
                Some(format!("{} ({f}{inlined}){caller}", base(src)))
            }
            (None, Some(obj), Some(addr)) => Some(format!("{}+{addr:#x}", base(obj))),
            // Code no file holds: the recorder's syscall stubs, JIT code.
            (None, None, _) => self.ip.map(|ip| format!("{ip:#x} (no file mapped)")),
            _ => None,
        };
        match (self.state.as_str(), &self.syscall, at) {
            ("exited", _, _) => "its end".into(),
            ("blocked", Some(s), _) => format!("a blocking {s} call"),
            ("syscall", Some(s), Some(at)) if self.object.is_some() => {
                format!("its {s} call at {at}")
            }
            ("syscall", Some(s), _) => format!("its {s} call{caller}"),
            (_, _, Some(at)) => at,
            _ => "an unknown place".into(),
        }
    }
}

/// What is re-run: the failing recording's program, arguments,
/// environment and directory, and its seed.
#[derive(Debug)]
pub struct Target {
    exe: PathBuf,
    args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    seed: u64,
    fail_code: i32,
}

impl Target {
    /// The failing recording `h` (its path `shown`, for messages).
    pub fn of(h: &Header, shown: &Path) -> Result<Target> {
        let fail_code = match h.outcome {
            Some(Outcome::Exited { code: 0 }) => {
                return Err(Error::Usage(format!(
                    "{} passed (exit 0): give the failing recording first, then the passing one",
                    shown.display()
                )))
            }
            Some(Outcome::Exited { code }) => code,
            Some(Outcome::Signaled { signo }) => 128 + signo,
            None => {
                return Err(Error::Usage(format!(
                    "{} did not finish: it has no outcome to reproduce",
                    shown.display()
                )))
            }
        };
        let Some(chaos) = &h.chaos else {
            return Err(Error::Usage(format!(
                "{} was not recorded under the chaos scheduler: --minimize re-runs the test \
                 under a chaos recording's decisions (record one with --chaos, or find one with \
                 `cargo rrtest stress --chaos`)",
                shown.display()
            )));
        };
        let exe = PathBuf::from(&h.exe);
        if !exe.is_file() {
            return Err(Error::Usage(format!(
                "{}: the recorded program {} is gone; --minimize runs it again (rebuild it, or \
                 record anew)",
                shown.display(),
                exe.display()
            )));
        }
        let ours = crate::preload::preload_path().ok();
        let env = h
            .env
            .iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                if k != "LD_PRELOAD" {
                    return Some((k.into(), v.into()));
                }
                // The recorder put its library in front: it does so again.
                let rest: Vec<&str> = v
                    .split(':')
                    .filter(|p| {
                        !p.is_empty()
                            && ours.as_deref() != Some(Path::new(p))
                            && !crate::preload::is_preload_file(Path::new(p))
                    })
                    .collect();
                (!rest.is_empty()).then(|| (k.into(), rest.join(":").into()))
            })
            .collect();
        Ok(Target {
            exe,
            args: h.argv.iter().skip(1).cloned().collect(),
            env,
            cwd: PathBuf::from(&h.cwd),
            seed: chaos.seed,
            fail_code,
        })
    }
}

/// Why a search stopped early.
#[derive(Debug)]
enum Stop {
    Cap(String),
    Failed(Error),
}

/// The re-runs.
struct Runner<'a> {
    target: &'a Target,
    limits: Limits,
    me: PathBuf,
    scratch: tempfile::TempDir,
    runs: u32,
    started: Instant,
    /// Each candidate tried (sorted): whether it failed, and the log of
    /// its first failing run.
    tried: BTreeMap<Vec<u64>, Option<PathBuf>>,
    /// The thread the failing run ran at each decision.
    next: BTreeMap<u64, Option<u32>>,
}

impl Runner<'_> {
    /// One re-run under the decisions `keep` (None: all): whether it
    /// failed as the recording did, and its log.
    fn run_once(&mut self, keep: Option<&[u64]>) -> std::result::Result<(bool, PathBuf), Stop> {
        if self.runs >= self.limits.max_runs {
            return Err(Stop::Cap(format!(
                "stopped at --max-runs {}",
                self.limits.max_runs
            )));
        }
        let left = self.limits.budget.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Err(Stop::Cap(format!(
                "stopped when the --budget of {} s was spent",
                self.limits.budget.as_secs()
            )));
        }
        self.runs += 1;
        let n = self.runs;
        let dir = self.scratch.path().join(format!("run-{n}"));
        let log = self.scratch.path().join(format!("run-{n}.log"));
        let err = self.scratch.path().join(format!("run-{n}.err"));
        let list = keep.map(|k| {
            k.iter()
                .map(|d| match self.next.get(d).copied().flatten() {
                    Some(t) => format!("{d}:{t}"),
                    None => d.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        });
        let stderr = std::fs::File::create(&err)
            .map_err(|e| Stop::Failed(Error::io(format!("creating {}", err.display()), e)))?;
        let mut cmd = Command::new(&self.me);
        cmd.args([
            "record",
            "--no-verify",
            "--disposable",
            "--discard-if-passed",
        ])
        .arg("--keep-env")
        .arg("--prescribe-seed")
        .arg(self.target.seed.to_string());
        if let Some(list) = &list {
            cmd.arg("--prescribe-keep").arg(list);
        }
        cmd.arg("--prescribe-log")
            .arg(&log)
            .arg("-o")
            .arg(&dir)
            .arg("--")
            .arg(&self.target.exe)
            .args(&self.target.args)
            .env_clear()
            .envs(self.target.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.target.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd.spawn().map_err(|e| {
            Stop::Failed(Error::io(
                format!("running {} record", self.me.display()),
                e,
            ))
        })?;
        let deadline = Instant::now() + left.min(RUN_TIMEOUT);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(Stop::Failed(Error::io("waiting for a re-run", e))),
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        let code = status.and_then(|s| s.code());
        const RECORDER_FAILED: i32 = 105;
        if code == Some(RECORDER_FAILED) && self.target.fail_code != RECORDER_FAILED {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            return Err(Stop::Failed(Error::Other(format!(
                "a re-run under the prescribed schedule failed to record: {}",
                text.trim()
            ))));
        }
        Ok((code == Some(self.target.fail_code), log))
    }

    /// Whether the candidate `keep` fails on every check run (stopping at
    /// the first that passes), remembered per candidate.
    fn fails(&mut self, keep: &[u64]) -> std::result::Result<bool, Stop> {
        let mut key = keep.to_vec();
        key.sort_unstable();
        if let Some(known) = self.tried.get(&key) {
            return Ok(known.is_some());
        }
        let mut first_log = None;
        for _ in 0..self.limits.check_runs {
            let (failed, log) = self.run_once(Some(keep))?;
            if !failed {
                self.tried.insert(key, None);
                return Ok(false);
            }
            first_log.get_or_insert(log);
        }
        self.tried.insert(key, first_log);
        Ok(true)
    }
}

/// Runs the search for the failing recording's `target`.
pub fn minimize(target: &Target, limits: Limits) -> Result<Minimized> {
    let me = std::env::current_exe()
        .map_err(|e| Error::io("finding cargo-rrtest's own executable", e))?;
    let scratch = tempfile::Builder::new()
        .prefix("rrtest-minimize-")
        .tempdir()
        .map_err(|e| Error::io("creating a scratch directory", e))?;
    let mut r = Runner {
        target,
        limits,
        me,
        scratch,
        runs: 0,
        started: Instant::now(),
        tried: BTreeMap::new(),
        next: BTreeMap::new(),
    };
    let fatal = |s: Stop| match s {
        Stop::Failed(e) => e,
        Stop::Cap(why) => Error::Usage(format!(
            "{why} before the failure was reproduced live; raise the cap"
        )),
    };
    // The seed's whole schedule must fail live, every time.
    let mut full_log = None;
    let mut full_fails = 0;
    for _ in 0..limits.check_runs {
        let (failed, log) = r.run_once(None).map_err(fatal)?;
        if failed {
            full_fails += 1;
            full_log.get_or_insert(log);
        }
    }
    let Some(full_log) = full_log.filter(|_| full_fails == limits.check_runs) else {
        return Err(Error::Usage(format!(
            "the failure does not come back reliably when the test is re-run live under chaos seed \
             {}: {full_fails} of {} re-runs failed with exit {} (it may depend on more than the \
             schedule: time, input, the machine's load)",
            target.seed, limits.check_runs, target.fail_code
        )));
    };
    let entries = read_log(&full_log);
    r.next = next_threads(&entries);
    let all: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["decision"].as_u64())
        .collect();
    let decisions = all.len() as u64;
    let mut sorted = all.clone();
    sorted.sort_unstable();
    r.tried.insert(sorted, Some(full_log));
    // Without any decision it must pass (else the schedule is not what
    // makes it fail).
    let (none_fails, _) = r.run_once(Some(&[])).map_err(fatal)?;
    if none_fails {
        return Err(Error::Usage(format!(
            "the test fails live without any of chaos seed {}'s {decisions} decisions too: the \
             failure is not one the schedule difference makes, nothing to minimize",
            target.seed
        )));
    }
    r.tried.insert(Vec::new(), None);
    let (kept, stop) = ddmin(all, |c| r.fails(c));
    let stopped = match stop {
        Some(Stop::Failed(e)) => return Err(e),
        Some(Stop::Cap(why)) => Some(why),
        None => None,
    };
    let mut key = kept.clone();
    key.sort_unstable();
    let log = r
        .tried
        .get(&key)
        .cloned()
        .flatten()
        .ok_or_else(|| Error::Other("no log of the minimal schedule's failing run".into()))?;
    let entries = read_log(&log);
    let (cuts, note) = cuts(&entries, &kept);
    let label = |d: &u64| {
        entries
            .iter()
            .find(|e| e["decision"].as_u64() == Some(*d))
            .and_then(|e| e["label"].as_str())
            .map_or_else(|| d.to_string(), String::from)
    };
    let kept = kept.iter().map(label).collect();
    Ok(Minimized {
        seed: target.seed,
        failing_exit: target.fail_code,
        decisions,
        minimal: stopped.is_none(),
        stopped,
        kept,
        runs: r.runs,
        elapsed_ms: r.started.elapsed().as_millis() as u64,
        cuts,
        note,
    })
}

/// Delta debugging (Zeller's ddmin) over `all`, a set `fails`: the
/// smallest failing subset found, 1-minimal unless `fails` stopped it
/// (then with why). The empty set is taken to pass.
pub(crate) fn ddmin<E>(
    all: Vec<u64>,
    mut fails: impl FnMut(&[u64]) -> std::result::Result<bool, E>,
) -> (Vec<u64>, Option<E>) {
    let mut c = all;
    let mut n = 2usize;
    while c.len() >= 2 {
        let chunks: Vec<Vec<u64>> = (0..n)
            .map(|i| c[i * c.len() / n..(i + 1) * c.len() / n].to_vec())
            .filter(|ch| !ch.is_empty())
            .collect();
        let mut next = None;
        for ch in &chunks {
            match fails(ch) {
                Ok(true) => {
                    next = Some((ch.clone(), 2));
                    break;
                }
                Ok(false) => {}
                Err(e) => return (c, Some(e)),
            }
        }
        if next.is_none() && chunks.len() > 2 {
            for ch in &chunks {
                let rest: Vec<u64> = c.iter().copied().filter(|d| !ch.contains(d)).collect();
                match fails(&rest) {
                    Ok(true) => {
                        next = Some((rest, (n - 1).max(2)));
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => return (c, Some(e)),
                }
            }
        }
        match next {
            Some((smaller, k)) => {
                c = smaller;
                n = k;
            }
            None if n >= c.len() => break,
            None => n = (2 * n).min(c.len()),
        }
    }
    (c, None)
}

/// For each decision of a log, the thread that ran next (by number) when
/// its thread stopped there and another ran: the failing run's answer.
fn next_threads(entries: &[Value]) -> BTreeMap<u64, Option<u32>> {
    let mut numbers: BTreeMap<i64, u32> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let (Some(n), Some(tid)) = (e["thread"].as_u64(), e["tid"].as_i64()) {
            numbers.insert(tid, n as u32);
        }
        let Some(d) = e["decision"].as_u64() else {
            continue;
        };
        let tid = e["tid"].as_i64();
        let stop = matches!(e["kind"].as_str(), Some("preempt" | "switch"));
        let next = entries[i + 1..]
            .iter()
            .take_while(|x| !(x.get("decision").is_some() && x["tid"].as_i64() == tid))
            .find(|x| x.get("switch").is_some() && x["switch"].as_i64() == tid)
            .and_then(|x| x["to"].as_i64())
            .filter(|_| stop);
        // Threads are announced before they run: every `to` is numbered.
        out.insert(d, next.and_then(|t| numbers.get(&t).copied()));
    }
    out
}

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Each kept decision of the log `entries`, where it took effect, and a
/// note when places cannot be resolved to file:line.
fn cuts(entries: &[Value], kept: &[u64]) -> (Vec<Cut>, Option<String>) {
    let kept: BTreeSet<u64> = kept.iter().copied().collect();
    let mut threads: BTreeMap<i64, u32> = BTreeMap::new();
    for e in entries {
        if let (Some(n), Some(tid)) = (e["thread"].as_u64(), e["tid"].as_i64()) {
            threads.insert(tid, n as u32);
        }
    }
    let resolver = Resolver::new();
    let place = |e: &Value| resolver.place(e);
    let name = |tid: Option<i64>| {
        tid.and_then(|t| threads.get(&t).copied())
            .map_or("a thread".to_string(), |n| format!("thread {n}"))
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(d) = e["decision"].as_u64().filter(|d| kept.contains(d)) else {
            continue;
        };
        let kind = e["kind"].as_str().unwrap_or("?").to_string();
        let tid = e["tid"].as_i64();
        let after = &entries[i + 1..];
        let switches = after.iter().filter(|x| x.get("switch").is_some());
        let mut cut = Cut {
            decision: e["label"]
                .as_str()
                .map_or_else(|| d.to_string(), String::from),
            kind: kind.clone(),
            thread: tid.and_then(|t| threads.get(&t).copied()),
            switched_out_at: None,
            in_between: Vec::new(),
            text: String::new(),
        };
        match kind.as_str() {
            "pause" => cut.text = "no thread ran for a while (a pause)".into(),
            "first" => {
                cut.text = format!("{} ran as soon as it started", name(tid));
                if let Some(s) = switches
                    .clone()
                    .find(|x| x["to"].as_i64() == tid && x["switch"].as_i64() != tid)
                {
                    let creator = s["switch"].as_i64();
                    cut.text = format!(
                        "{} ran as soon as it started, before {} went on from {}",
                        name(tid),
                        name(creator),
                        place(s).short()
                    );
                }
            }
            _ => {
                let mut rest = switches.skip_while(|x| x["switch"].as_i64() != tid);
                match rest.next() {
                    None => {
                        cut.text = format!(
                            "{} was stopped, but no other thread ran before it went on",
                            name(tid)
                        )
                    }
                    Some(out_of) => {
                        let at = place(out_of);
                        let mut ran: Vec<Ran> = Vec::new();
                        // The thread switched to, then each until it runs
                        // again: where each stopped.
                        for x in rest {
                            if x["switch"].as_i64() == tid {
                                break;
                            }
                            let Some(n) =
                                x["switch"].as_i64().and_then(|t| threads.get(&t).copied())
                            else {
                                continue;
                            };
                            ran.push(Ran {
                                thread: n,
                                at: place(x),
                            });
                            if x["to"].as_i64() == tid {
                                break;
                            }
                        }
                        let between = if ran.is_empty() {
                            // No switch after: the thread switched to ran
                            // until the program ended.
                            match out_of["to"].as_i64().and_then(|t| threads.get(&t)) {
                                Some(n) => format!("thread {n} ran until the program ended"),
                                None => "it did not run again".to_string(),
                            }
                        } else {
                            let mut parts: Vec<String> = Vec::new();
                            for r in &ran {
                                let p = format!("thread {} ran up to {}", r.thread, r.at.short());
                                if !parts.contains(&p) {
                                    parts.push(p);
                                }
                            }
                            format!("{} in between", parts.join(", "))
                        };
                        let how = if kind == "switch" {
                            "was switched out at a syscall"
                        } else {
                            "was switched out"
                        };
                        cut.text = format!("{} {how} at {}; {between}", name(tid), at.short());
                        cut.switched_out_at = Some(at);
                        cut.in_between = ran;
                    }
                }
            }
        }
        out.push(cut);
    }
    (out, resolver.missing())
}

/// Resolves a mapped file's address to function and file:line with
/// `addr2line`, if it is installed.
struct Resolver {
    tool: Option<PathBuf>,
}

impl Resolver {
    fn new() -> Resolver {
        let tool = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("addr2line"))
                .find(|p| p.is_file())
        });
        Resolver { tool }
    }

    fn missing(&self) -> Option<String> {
        self.tool.is_none().then(|| {
            "addr2line (binutils) is not installed: places are shown as file+address; install \
             binutils for file:line"
                .to_string()
        })
    }

    /// The place a log's switch entry names.
    fn place(&self, e: &Value) -> Place {
        let object = e["file"].as_str().map(String::from);
        let addr = e["addr"].as_u64();
        let frames = match (&self.tool, &object, addr) {
            (Some(tool), Some(obj), Some(addr)) => addr2line(tool, obj, addr),
            _ => Vec::new(),
        };
        let mut frames = frames.into_iter();
        let (function, source) = frames.next().unwrap_or((None, None));
        let inlined_in = frames
            .map(|(f, at)| {
                format!(
                    "{} at {}",
                    f.as_deref().unwrap_or("?"),
                    at.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let called_from = match &self.tool {
            Some(tool) => e["stack"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| {
                    let frames = addr2line(tool, f["file"].as_str()?, f["addr"].as_u64()?);
                    match frames.into_iter().next()? {
                        (func, Some(src)) => {
                            Some(format!("{} at {src}", func.as_deref().unwrap_or("?")))
                        }
                        _ => None,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Place {
            state: e["state"].as_str().unwrap_or("?").to_string(),
            syscall: e["syscall"]
                .as_i64()
                .map(|nr| rrtest_syscalls::name(nr).into_owned()),
            ip: e["ip"].as_u64(),
            object,
            addr,
            function,
            source,
            inlined_in,
            called_from,
        }
    }
}

/// A function and its `file:line`, each None where `addr2line` answers
/// `??`.
type Frame = (Option<String>, Option<String>);

/// `addr2line -f -C -i -e OBJ ADDR`: the frames at `addr`, the innermost
/// first and then each function it was inlined in.
fn addr2line(tool: &Path, obj: &str, addr: u64) -> Vec<Frame> {
    let Ok(out) = Command::new(tool)
        .args(["-f", "-C", "-i", "-e", obj, &format!("{addr:#x}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|pair| {
            let function = pair
                .first()
                .filter(|f| !f.starts_with("??"))
                .map(|f| f.to_string());
            let source = pair
                .get(1)
                .map(|l| l.split(" (discriminator").next().unwrap_or(l).trim())
                .filter(|l| !l.starts_with("??") && !l.ends_with(":0") && !l.ends_with(":?"))
                .map(String::from);
            (function, source)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A search over decisions 0..n where a set fails iff it holds all of
    /// `needed`, counting the tests.
    fn search(n: u64, needed: &[u64]) -> (Vec<u64>, usize) {
        let mut tests = 0;
        let (got, stop) = ddmin::<()>((0..n).collect(), |c| {
            tests += 1;
            Ok(needed.iter().all(|d| c.contains(d)))
        });
        assert!(stop.is_none());
        (got, tests)
    }

    #[test]
    fn ddmin_finds_the_needed_decisions() {
        assert_eq!(search(24, &[7]).0, vec![7]);
        assert_eq!(search(24, &[3, 17]).0, vec![3, 17]);
        assert_eq!(search(41, &[0, 20, 40]).0, vec![0, 20, 40]);
        assert_eq!(search(1, &[0]).0, vec![0]);
        // Logarithmic for one: far fewer tests than decisions.
        assert!(search(64, &[33]).1 < 20);
    }

    #[test]
    fn ddmin_stops_with_the_smallest_failing_set_so_far() {
        let mut left = 3;
        let (got, stop) = ddmin((0..16).collect(), |c| {
            if left == 0 {
                return Err("cap");
            }
            left -= 1;
            Ok(c.contains(&5))
        });
        assert_eq!(stop, Some("cap"));
        assert!(got.contains(&5) && got.len() < 16, "{got:?}");
    }

    #[test]
    fn cuts_name_the_switched_out_thread_and_who_ran_in_between() {
        let log = [
            r#"{"thread":1,"tid":100}"#,
            r#"{"thread":2,"tid":101}"#,
            r#"{"thread":3,"tid":102}"#,
            r#"{"decision":0,"kind":"preempt","tid":101,"kept":false}"#,
            r#"{"decision":1,"kind":"preempt","tid":101,"kept":true}"#,
            r#"{"switch":101,"to":102,"state":"ready","syscall":null,"ip":4096,"file":null,"addr":null}"#,
            r#"{"switch":102,"to":101,"state":"exited","syscall":null,"ip":null,"file":null,"addr":null}"#,
            r#"{"decision":2,"kind":"first","tid":102,"kept":true}"#,
        ];
        let entries: Vec<Value> = log
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (cuts, _) = cuts(&entries, &[1]);
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].thread, Some(2));
        assert_eq!(cuts[0].in_between.len(), 1);
        assert_eq!(cuts[0].in_between[0].thread, 3);
        assert!(
            cuts[0].text.starts_with("thread 2 was switched out at ")
                && cuts[0]
                    .text
                    .ends_with("thread 3 ran up to its end in between"),
            "{}",
            cuts[0].text
        );
    }
}
