//! `cargo rrtest info [--json] TRACE`: describe a recording; with
//! `--events [--around EVENT [--context N]]`, list the program's actions
//! event by event instead (the rendering `diff` uses).
//!
//! `TRACE` is a trace directory or a trace archive (`.tar.zst`, unpacked
//! into a private temporary directory first, as replay does). Reads the
//! header and every event (so a damaged trace is reported here rather than
//! halfway through a replay), and prints versions, the command, the outcome,
//! whether the trace can be replayed, thread and event counts, the recorder's
//! counters and the trace's size broken down: the event stream, and every
//! kept file in `files/` with its size and what it is (the executable, a
//! dynamic loader, a library, another mapped file), named by the events that
//! use it; and the archive's size when given one. [`TraceInfo`] is the JSON
//! shape; an unreadable trace exits with `BAD_TRACE` (104). It only reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::errors::{Error, Result};
use crate::harness::shell_word;
use rrtest_report::human_bytes as human;
use rrtest_trace::{
    self as trace, pack, Event, Outcome, ScheduleStats, SyscallExtra, TraceReader, EVENTS_FILE,
    FILES_DIR,
};

/// Options of `cargo rrtest info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// List the program's actions event by event (syscalls with their
    /// arguments and results, signals, new threads and processes,
    /// preemptions, exits) instead of the summary.
    #[arg(long)]
    pub events: bool,
    /// With --events: only the events near this index (the one a
    /// divergence names, say).
    #[arg(long, value_name = "EVENT", requires = "events")]
    pub around: Option<u64>,
    /// With --around: how many events before and after it.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "around")]
    pub context: u64,
    /// The trace directory or archive (.tar.zst).
    pub trace: PathBuf,
}

/// What `cargo rrtest info --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TraceInfo {
    /// The trace directory or archive, as given.
    pub trace: String,
    /// `header.json`'s `format_version`.
    pub format_version: u32,
    /// The cargo-rrtest that recorded it.
    pub recorder_version: String,
    /// The recorder <-> preload protocol version.
    pub protocol_version: u32,
    /// The hash of its execution points' digests (`header.json`'s
    /// `point_digest`; `sha256` in version 1 traces).
    pub point_digest: String,
    /// The recorded command (argv).
    pub command: Vec<String>,
    /// The executable's absolute path.
    pub exe: String,
    /// The working directory.
    pub cwd: String,
    /// The recording machine's kernel.
    pub kernel: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// How the program ended; `null` if the recording did not finish.
    pub outcome: Option<Outcome>,
    /// Whether the trace can be replayed.
    pub replayable: bool,
    /// Why not, if it cannot.
    pub unreplayable: Vec<String>,
    /// Whether a verification replay proved it replays: `null` when none ran.
    pub verified: Option<bool>,
    /// Why verification failed, when it did.
    pub verification_failure: Option<String>,
    /// Distinct threads (and processes) in the events.
    pub threads: u64,
    /// Events in the stream.
    pub events: u64,
    /// Sizes on disk.
    pub bytes: Bytes,
    /// Variables removed from the program's environment as credentials
    /// (names only).
    pub env_removed: Vec<String>,
    /// Paths the program saw as empty (`--hide-path`).
    pub hidden_paths: Vec<String>,
    /// The chaos scheduler it was recorded under (`--chaos`): seed,
    /// decisions, digest; `null` without.
    pub chaos: Option<trace::Chaos>,
    /// The recorder's counters.
    pub stats: InfoStats,
    /// The recording host (CPU, XSAVE, C library, CPUID faulting);
    /// `null` for traces recorded before it was kept.
    pub recording_host: Option<trace::HostFacts>,
    /// The dynamic loaders the trace keeps (`PT_INTERP` paths).
    pub loaders: Vec<String>,
    /// Every entry of `files/`, largest first.
    pub files: Vec<KeptFile>,
}

/// Sizes on disk, in bytes (of the unpacked trace, for an archive).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Bytes {
    /// Every file in the trace directory.
    pub total: u64,
    /// `events.zst`.
    pub events: u64,
    /// `files/`.
    pub files: u64,
    /// Of `files`: the executables (each exec's program).
    pub executables: u64,
    /// Of `files`: the dynamic loaders (`PT_INTERP`).
    pub loaders: u64,
    /// Of `files`: shared libraries the program mapped (`*.so`, `*.so.N`).
    pub libraries: u64,
    /// Of `files`: other mapped files, and files no event names.
    pub other_files: u64,
    /// The archive (`.tar.zst`) when `info` was given one, else null.
    pub archive: Option<u64>,
}

/// What a kept file is to the program.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A program exec'd (an `Exec` event's file).
    Executable,
    /// A dynamic loader the header names.
    Loader,
    /// A mapped shared library.
    Library,
    /// Another mapped file.
    Mapped,
    /// A file no event and no header field names.
    Unreferenced,
}

impl FileKind {
    fn word(self) -> &'static str {
        match self {
            FileKind::Executable => "executable",
            FileKind::Loader => "loader",
            FileKind::Library => "library",
            FileKind::Mapped => "mapped",
            FileKind::Unreferenced => "unreferenced",
        }
    }
}

/// One entry of `files/`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeptFile {
    /// Its content id (its name in `files/`).
    pub id: String,
    /// Its size.
    pub bytes: u64,
    /// What it is.
    pub kind: FileKind,
    /// The path it had while recording (the first one the trace names), or
    /// empty when nothing names it.
    pub path: String,
}

/// The counters `info` reports.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct InfoStats {
    /// Syscalls that stopped in the recorder.
    pub traced_syscalls: u64,
    /// Syscalls recorded through the in-process buffer.
    pub buffered_syscalls: u64,
    /// Syscall sites patched to jump into the buffer.
    pub patched_sites: u64,
    /// Of those, the ones patched ahead at the buffer's handshake.
    pub patched_ahead: u64,
    /// Buffered syscalls unwound by the recorder.
    pub aborted_records: u64,
    /// Of those, the ones that blocked.
    pub desched_events: u64,
    /// Desched event signals taken (perf context-switch counters).
    pub desched_signals: u64,
    /// Signals delivered.
    pub signals: u64,
    /// Asynchronous events that need an execution point to replay.
    pub async_events: u64,
    /// Emulated rdtsc/rdtscp (traps).
    pub rdtsc: u64,
    /// rdtsc executions through a patched site (no trap).
    pub rdtsc_buffered: u64,
    /// Events, as the header counts them.
    pub events: u64,
    /// Processes the program left running when it exited, killed by the
    /// recorder after a grace period.
    pub leaked_processes: u64,
    /// The scheduler's counters (all 0 in traces from before them).
    pub schedule: ScheduleStats,
}

/// Runs `cargo rrtest info`.
pub fn exec(args: InfoArgs) -> Result<ExitCode> {
    if args.events {
        return list_events(&args);
    }
    let info = if args.trace.is_file() {
        collect_archive(&args.trace)?
    } else {
        collect(&args.trace)?
    };
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&info)
            .map_err(|e| Error::Other(format!("cannot serialize the trace info: {e}")))?;
        s.push('\n');
        s
    } else {
        render_text(&info)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing to stdout", e))?;
    Ok(ExitCode::SUCCESS)
}

/// `cargo rrtest info --events`: the program's actions, one a line
/// (`EVENT  THREAD(TID)  ACTION`; buffered syscalls share the index of the
/// event that carried them), or as JSON.
fn list_events(args: &InfoArgs) -> Result<ExitCode> {
    let tmp;
    let dir = if args.trace.is_file() {
        tmp = pack::PrivateTempDir::new("info").map_err(trace::Error::from)?;
        pack::unpack(&args.trace, tmp.path(), pack::Limits::default())
            .map_err(trace::Error::from)?
    } else {
        args.trace.clone()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    list_actions(&dir, args.around, args.context, args.json, &mut out)?;
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Writes the listing of [`list_events`] for the trace in `dir` to `out`,
/// each action as its event is read: a trace of a program that polls
/// through its buffer holds millions of records, which are not all held at
/// once. Around an event, nothing after its window is read.
fn list_actions(
    dir: &Path,
    around: Option<u64>,
    context: u64,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<()> {
    let window = around.map(|at| (at.saturating_sub(context), at.saturating_add(context)));
    let last = window.map_or(u64::MAX, |(_, to)| to);
    let mut reader = TraceReader::open(dir)?;
    let opts = crate::harness::tracediff::options(0);
    let mut stream = trace::diff::ActionStream::new(&opts);
    let mut read = 0u64;
    let mut shown = 0u64;
    let mut failed = None;
    while read <= last {
        let Some(event) = reader.next_event()? else {
            break;
        };
        stream.feed(read, &event, |a| {
            if failed.is_some() || window.is_some_and(|(from, to)| !(from..=to).contains(&a.event))
            {
                return;
            }
            let written = if json {
                // The array `serde_json` would print pretty, an element at
                // a time.
                let item = serde_json::to_string_pretty(&a).unwrap_or_default();
                let sep = if shown == 0 { "[\n" } else { ",\n" };
                let indented = item.lines().collect::<Vec<_>>().join("\n  ");
                write!(out, "{sep}  {indented}")
            } else {
                let who = format!("{}({})", a.thread, a.tid);
                writeln!(out, "{:>7}  {who:<16} {}", a.event, a.text)
            };
            shown += 1;
            if let Err(e) = written {
                failed = Some(e);
            }
        });
        if let Some(e) = failed.take() {
            // The reader went away (`| head`): nothing more to say.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Error::io("writing to stdout", e));
        }
        read += 1;
    }
    let end = match (json, shown) {
        (true, 0) => "[]\n".to_string(),
        (true, _) => "\n]\n".to_string(),
        (false, 0) => format!(
            "no events{}\n",
            match around {
                Some(at) if read > last => format!(" within {context} of event {at}"),
                Some(at) => format!(" within {context} of event {at} (the trace has {read})"),
                None => String::new(),
            }
        ),
        (false, _) => String::new(),
    };
    match out.write_all(end.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("writing to stdout", e))
        }
        _ => Ok(()),
    }
}

/// Unpacks the archive `archive` privately and reads it like [`collect`],
/// adding the archive's own size.
pub fn collect_archive(archive: &Path) -> Result<TraceInfo, trace::Error> {
    let size = std::fs::metadata(archive)
        .map_err(|source| trace::Error::Io {
            path: archive.display().to_string(),
            source,
        })?
        .len();
    let tmp = pack::PrivateTempDir::new("info")?;
    let dir = pack::unpack(archive, tmp.path(), pack::Limits::default())?;
    let mut info = collect(&dir)?;
    info.trace = archive.display().to_string();
    info.bytes.archive = Some(size);
    Ok(info)
}

/// Reads the trace in `dir` and everything `info` reports about it.
pub fn collect(dir: &Path) -> Result<TraceInfo, trace::Error> {
    let mut reader = TraceReader::open(dir)?;
    let mut tids = BTreeSet::new();
    let mut unsupported = Vec::new();
    // What each kept file is, by content id: the first path that names it.
    let mut named: BTreeMap<String, (FileKind, String)> = BTreeMap::new();
    let mut name = |id: &str, kind: FileKind, path: &str| {
        let e = named
            .entry(id.to_owned())
            .or_insert_with(|| (kind, path.to_owned()));
        if kind < e.0 {
            *e = (kind, path.to_owned());
        }
    };
    for l in &reader.header().loaders {
        name(&l.file, FileKind::Loader, &l.path);
    }
    // A `#!` script's interpreter: a program the kernel ran.
    for i in &reader.header().interpreters {
        name(&i.file, FileKind::Executable, &i.path);
    }
    while let Some(event) = reader.next_event()? {
        tids.insert(event.tid());
        match event {
            Event::NewTask { child, .. } => {
                tids.insert(child);
            }
            Event::Unsupported { what, .. } => unsupported.push(what),
            Event::Exec(e) => name(&e.exe_file.0, FileKind::Executable, &e.exe),
            Event::Syscall(trace::SyscallEvent { result, .. })
            | Event::SyscallExit { result, .. } => {
                if let SyscallExtra::MappedFile { file, path } = &result.extra {
                    name(&file.0, library_or_mapped(path), path);
                }
            }
            _ => {}
        }
    }
    let events = reader.events_read();
    let h = reader.header();

    let mut unreplayable: Vec<String> = Vec::new();
    if h.outcome.is_none() {
        unreplayable.push("the recording did not finish (header.json has no outcome)".into());
    }
    for why in h.unreplayable.iter().chain(&unsupported) {
        if !unreplayable.contains(why) {
            unreplayable.push(why.clone());
        }
    }
    let threads = if tids.is_empty() {
        h.stats.threads
    } else {
        tids.len() as u64
    };
    let files = kept_files(&dir.join(FILES_DIR), &named)?;
    let of = |kinds: &[FileKind]| -> u64 {
        files
            .iter()
            .filter(|f| kinds.contains(&f.kind))
            .map(|f| f.bytes)
            .sum()
    };
    let bytes = Bytes {
        total: du(dir)?,
        events: du(&dir.join(EVENTS_FILE))?,
        files: du(&dir.join(FILES_DIR))?,
        executables: of(&[FileKind::Executable]),
        loaders: of(&[FileKind::Loader]),
        libraries: of(&[FileKind::Library]),
        other_files: of(&[FileKind::Mapped, FileKind::Unreferenced]),
        archive: None,
    };
    Ok(TraceInfo {
        trace: dir.display().to_string(),
        format_version: h.format_version,
        recorder_version: h.recorder_version.clone(),
        protocol_version: h.protocol_version,
        point_digest: h
            .point_digest_kind()
            .map(|k| k.name().to_owned())
            .unwrap_or_else(|| h.point_digest.clone().unwrap_or_default()),
        command: h.argv.clone(),
        exe: h.exe.clone(),
        cwd: h.cwd.clone(),
        kernel: h.kernel.clone(),
        recorded_at: h.recorded_at.clone(),
        outcome: h.outcome,
        replayable: unreplayable.is_empty(),
        unreplayable,
        verified: h.verification.as_ref().map(|v| v.verified),
        verification_failure: h.verification.as_ref().and_then(|v| v.reason.clone()),
        threads,
        events,
        bytes,
        env_removed: h.env_removed.clone(),
        hidden_paths: h.hidden_paths.clone(),
        chaos: h.chaos.clone(),
        stats: InfoStats {
            traced_syscalls: h.stats.traced_syscalls,
            buffered_syscalls: h.stats.buffered_syscalls,
            patched_sites: h.stats.patched_sites,
            patched_ahead: h.stats.patched_ahead,
            aborted_records: h.stats.aborted_records,
            desched_events: h.stats.desched_events,
            desched_signals: h.stats.desched_signals,
            signals: h.stats.signals,
            async_events: h.stats.async_events,
            rdtsc: h.stats.rdtsc,
            rdtsc_buffered: h.stats.rdtsc_buffered,
            events: h.stats.events,
            leaked_processes: h.stats.leaked_processes,
            schedule: h.stats.schedule,
        },
        recording_host: h.host.clone(),
        loaders: h.loaders.iter().fold(Vec::new(), |mut v, l| {
            if !v.contains(&l.path) {
                v.push(l.path.clone());
            }
            v
        }),
        files,
    })
}

/// A mapped file's kind by its name: `*.so` and `*.so.N...` are libraries.
fn library_or_mapped(path: &str) -> FileKind {
    let name = path.rsplit('/').next().unwrap_or(path);
    let library = name.ends_with(".so")
        || name.split_once(".so.").is_some_and(|(_, v)| {
            !v.is_empty() && v.split('.').all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        });
    if library {
        FileKind::Library
    } else {
        FileKind::Mapped
    }
}

/// Every regular file in `files/` (none if it is missing), with what the
/// trace says it is; largest first.
fn kept_files(
    files_dir: &Path,
    named: &BTreeMap<String, (FileKind, String)>,
) -> Result<Vec<KeptFile>, trace::Error> {
    let io = |source| trace::Error::Io {
        path: files_dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(files_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        if !meta.is_file() {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        let (kind, path) = named
            .get(&id)
            .cloned()
            .unwrap_or((FileKind::Unreferenced, String::new()));
        out.push(KeptFile {
            id,
            bytes: meta.len(),
            kind,
            path,
        });
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Bytes of the regular files at or under `path` (symlinks not followed; a
/// missing path is 0).
fn du(path: &Path) -> Result<u64, trace::Error> {
    let io = |p: &Path, source| trace::Error::Io {
        path: p.display().to_string(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path, e)),
    };
    if meta.is_file() {
        return Ok(meta.len());
    }
    if !meta.is_dir() {
        return Ok(0);
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
        let entry = entry.map_err(|e| io(path, e))?;
        total += du(&entry.path())?;
    }
    Ok(total)
}

fn describe_outcome(outcome: Option<Outcome>) -> String {
    match outcome {
        Some(Outcome::Exited { code }) => format!("exited with code {code}"),
        Some(Outcome::Signaled { signo }) => match nix::sys::signal::Signal::try_from(signo) {
            Ok(sig) => format!("killed by signal {signo} ({sig})"),
            Err(_) => format!("killed by signal {signo}"),
        },
        None => "none: the recording did not finish".into(),
    }
}

/// The text form of `info`.
pub fn render_text(info: &TraceInfo) -> String {
    let mut s = String::new();
    let command: Vec<String> = info.command.iter().map(|w| shell_word(w)).collect();
    let replayable = if info.replayable {
        "yes".to_owned()
    } else {
        format!("no: {}", info.unreplayable.join("; "))
    };
    let st = &info.stats;
    let verified = match (info.verified, &info.verification_failure) {
        (None, _) => "not verified".to_owned(),
        (Some(true), _) => "yes".to_owned(),
        (Some(false), why) => format!("no: {}", why.as_deref().unwrap_or("unknown reason")),
    };
    let lines: [(&str, String); 16] = [
        ("trace", info.trace.clone()),
        ("format version", info.format_version.to_string()),
        (
            "recorded by",
            format!("cargo-rrtest {}", info.recorder_version),
        ),
        ("protocol version", info.protocol_version.to_string()),
        ("point digest", info.point_digest.clone()),
        ("command", command.join(" ")),
        ("exe", info.exe.clone()),
        ("cwd", info.cwd.clone()),
        ("kernel", info.kernel.clone()),
        ("recorded at", info.recorded_at.clone()),
        ("outcome", describe_outcome(info.outcome)),
        ("replayable", replayable),
        ("verified", verified),
        ("threads", info.threads.to_string()),
        ("events", info.events.to_string()),
        (
            "bytes",
            format!(
                "{} total ({} events.zst, {} files/)",
                info.bytes.total, info.bytes.events, info.bytes.files
            ),
        ),
    ];
    let b = &info.bytes;
    for (key, value) in lines {
        let _ = writeln!(s, "{:<17} {value}", format!("{key}:"));
    }
    // Only when there are some: names, never values.
    for (key, list) in [
        ("env removed:", &info.env_removed),
        ("hidden paths:", &info.hidden_paths),
    ] {
        if !list.is_empty() {
            let _ = writeln!(s, "{key:<17} {}", list.join(", "));
        }
    }
    if let Some(c) = &info.chaos {
        let _ = writeln!(
            s,
            "{:<17} seed {} ({} decisions, digest {}; --chaos --seed {} schedules the same)",
            "chaos:", c.seed, c.decisions, c.digest, c.seed
        );
    }
    let _ = writeln!(
        s,
        "{:<17} {} files/: executables {}, loaders {}, libraries {}, other {}",
        "files:",
        info.files.len(),
        human(b.executables),
        human(b.loaders),
        human(b.libraries),
        human(b.other_files)
    );
    for f in &info.files {
        let path = if f.path.is_empty() {
            "(named by no event)"
        } else {
            &f.path
        };
        let _ = writeln!(s, "  {:>10}  {:<12} {path}", human(f.bytes), f.kind.word());
    }
    if let Some(archive) = b.archive {
        let ratio = if b.total == 0 {
            String::new()
        } else {
            format!(
                ", {:.0}% of the unpacked trace",
                archive as f64 * 100.0 / b.total as f64
            )
        };
        let _ = writeln!(
            s,
            "{:<17} {archive} ({}{ratio})",
            "archive bytes:",
            human(archive)
        );
    }
    let _ = writeln!(
        s,
        "{:<17} traced_syscalls {}, buffered_syscalls {}, patched_sites {} ({} ahead), aborted_records {}, desched_events {} ({} signals), signals {}, async_events {}, rdtsc {}, rdtsc_buffered {}, events {}",
        "stats:",
        st.traced_syscalls,
        st.buffered_syscalls,
        st.patched_sites,
        st.patched_ahead,
        st.aborted_records,
        st.desched_events,
        st.desched_signals,
        st.signals,
        st.async_events,
        st.rdtsc,
        st.rdtsc_buffered,
        st.events
    );
    if !st.schedule.is_empty() {
        let _ = writeln!(s, "{:<17} {}", "schedule:", schedule_line(&st.schedule));
    }
    if st.leaked_processes > 0 {
        let _ = writeln!(
            s,
            "{:<17} {} process(es) still running when the program exited, killed by the recorder",
            "leaked:", st.leaked_processes
        );
    }
    render_host(&mut s, info);
    s
}

/// The recording host's lines of `info`'s text.
/// The scheduler's counters in one line: where the recording's wall time
/// went (idle: every thread waited in the kernel), how often the recorder
/// stopped and switched threads, and the slices that ended without
/// progress.
fn schedule_line(st: &ScheduleStats) -> String {
    let per_s = st
        .stops
        .saturating_mul(1000)
        .checked_div(st.wall_ms)
        .unwrap_or(0);
    let resent = if st.interrupts_resent > 0 {
        format!(", interrupts sent again {}", st.interrupts_resent)
    } else {
        String::new()
    };
    let futex = if st.futex_parked > 0 || st.futex_handoffs > 0 {
        format!(
            ", futex waits held {} ({} let go as their word changed, {} hand-offs)",
            st.futex_parked, st.futex_changed, st.futex_handoffs
        )
    } else {
        String::new()
    };
    let ahead = if st.probes_ahead > 0 {
        format!(" ({} probed ahead)", st.probes_ahead)
    } else {
        String::new()
    };
    let wakes = if st.wake_switches > 0 {
        format!(", spinners' wakes switched at {}", st.wake_switches)
    } else {
        String::new()
    };
    format!(
        "wall {} ms (idle {} ms), stops {} ({per_s}/s), switches {} ({} at sched_yield), \
         slices expired {} ({} spins cut short), bail requests {}, \
         points {} spin / {} return / {} loop exit / {} anywhere{ahead}, ticks {}{resent}{futex}{wakes}",
        st.wall_ms,
        st.idle_ms,
        st.stops,
        st.switches,
        st.yields,
        st.slices_expired,
        st.spins_cut,
        st.bail_requests,
        st.points_spin,
        st.points_return,
        st.points_loop_exit,
        st.points_anywhere,
        st.ticks
    )
}

fn render_host(s: &mut String, info: &TraceInfo) {
    let loaders = if info.loaders.is_empty() {
        "none kept (replay uses the replay host's)".to_owned()
    } else {
        format!("{} (kept in the trace)", info.loaders.join(", "))
    };
    let _ = writeln!(s, "{:<17} {loaders}", "loader:");
    let Some(h) = &info.recording_host else {
        let _ = writeln!(s, "{:<17} not recorded (older trace)", "recording host:");
        return;
    };
    let libc = if h.libc.is_empty() {
        "unknown"
    } else {
        &h.libc
    };
    let faulting = if h.cpuid_faulting { "yes" } else { "no" };
    let lines = [
        ("host cpu", h.cpu_model.clone()),
        ("host features", h.cpu_features.join(" ")),
        (
            "host xsave",
            format!("XCR0 {:#x}, {} bytes", h.xcr0, h.xsave_size),
        ),
        ("host libc", libc.to_owned()),
        ("cpuid faulting", faulting.to_owned()),
    ];
    for (key, value) in lines {
        let _ = writeln!(s, "{:<17} {value}", format!("{key}:"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rrtest_trace::{
        ExecEvent, ExitStatus, Header, LoaderCopy, Stats, SyscallEvent, SyscallExtra,
        SyscallResult, TraceWriter,
    };

    fn header() -> Header {
        Header {
            // A version 1 trace (still read): what the text and JSON show.
            format_version: 1,
            recorder_version: "0.1.0".into(),
            protocol_version: 1,
            argv: vec!["./prog".into(), "it's here".into()],
            exe: "/tmp/prog".into(),
            env: vec![],
            cwd: "/tmp".into(),
            kernel: "Linux 6.8.0 x86_64".into(),
            cpuid: vec![],
            recorded_at: "2026-11-27T05:00:00Z".into(),
            tracee_cpu: None,
            initial_sigmask: None,
            initial_ignored: None,
            stack_limit: None,
            env_removed: vec!["DATABASE_URL".into(), "GITHUB_TOKEN".into()],
            hidden_paths: vec!["/root/.netrc".into()],
            signal_traps_cleared: true,
            own_vdso: true,
            outcome: None,
            unreplayable: vec![],
            stats: Stats::default(),
            verification: None,
            loaders: Vec::new(),
            interpreters: Vec::new(),
            host: None,
            chaos: None,
            point_digest: None,
        }
    }

    fn syscall(tid: i32) -> Event {
        Event::Syscall(SyscallEvent {
            tid,
            nr: 1,
            args: [1, 0x1000, 3, 0, 0, 0],
            result: SyscallResult {
                ret: 3,
                writes: vec![],
                extra: SyscallExtra::Output {
                    fd: 1,
                    data: b"hi\n".to_vec(),
                },
            },
        })
    }

    /// A sample trace whose `files/` keeps a 10-byte file no event names.
    fn write_sample(dir: &Path) {
        let src = dir.with_extension("lib");
        std::fs::write(&src, b"0123456789").expect("write");
        let mut w = TraceWriter::create(dir, header()).expect("create");
        w.add_file(&src).expect("add_file");
        write_events(w);
    }

    fn write_events(mut w: TraceWriter) {
        for e in [
            syscall(10),
            Event::NewTask {
                parent: 10,
                child: 11,
                flags: 0x3d0f00,
            },
            syscall(11),
            Event::Unsupported {
                tid: 11,
                what: "ioctl 0x1234 on fd 3".into(),
            },
            Event::ThreadExit { tid: 11 },
            Event::ProcessExit {
                pid: 10,
                status: ExitStatus::Exited(3),
            },
        ] {
            w.push(&e).expect("push");
        }
        let h = w.header_mut();
        h.outcome = Some(Outcome::Exited { code: 3 });
        h.unreplayable.push("ioctl 0x1234 on fd 3".into());
        h.stats.traced_syscalls = 2;
        h.stats.signals = 4;
        h.stats.rdtsc = 5;
        w.finish().expect("finish");
    }

    #[test]
    fn json_shape() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        let info = collect(&dir).expect("collect");
        let v = serde_json::to_value(&info).expect("json");
        let keys: BTreeSet<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let want: BTreeSet<&str> = [
            "trace",
            "format_version",
            "recorder_version",
            "protocol_version",
            "point_digest",
            "command",
            "exe",
            "cwd",
            "kernel",
            "recorded_at",
            "outcome",
            "replayable",
            "unreplayable",
            "verified",
            "verification_failure",
            "threads",
            "events",
            "bytes",
            "env_removed",
            "hidden_paths",
            "chaos",
            "stats",
            "recording_host",
            "loaders",
            "files",
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, want);
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["chaos"], serde_json::Value::Null);
        assert_eq!(v["recorder_version"], "0.1.0");
        assert_eq!(v["command"], serde_json::json!(["./prog", "it's here"]));
        assert_eq!(v["outcome"], serde_json::json!({"exited": {"code": 3}}));
        assert_eq!(v["replayable"], false);
        // The header's reason and the event's are the same: listed once.
        assert_eq!(
            v["unreplayable"],
            serde_json::json!(["ioctl 0x1234 on fd 3"])
        );
        assert_eq!(v["verified"], serde_json::Value::Null);
        assert_eq!(
            v["env_removed"],
            serde_json::json!(["DATABASE_URL", "GITHUB_TOKEN"])
        );
        assert_eq!(v["hidden_paths"], serde_json::json!(["/root/.netrc"]));
        assert_eq!(v["threads"], 2);
        assert_eq!(v["events"], 6);
        assert_eq!(
            v["stats"],
            serde_json::json!({
                "traced_syscalls": 2, "buffered_syscalls": 0, "patched_sites": 0,
                "patched_ahead": 0, "aborted_records": 0, "desched_events": 0, "desched_signals": 0,
                "signals": 4, "async_events": 0, "rdtsc": 5, "rdtsc_buffered": 0,
                "events": 6, "leaked_processes": 0,
                "schedule": {
                    "wall_ms": 0, "idle_ms": 0, "stops": 0, "switches": 0, "yields": 0,
                    "slices_expired": 0, "spins_cut": 0, "bail_requests": 0,
                    "points_spin": 0, "points_return": 0, "points_loop_exit": 0,
                    "points_anywhere": 0, "probes_ahead": 0, "ticks": 0,
                    "interrupts_resent": 0, "futex_parked": 0, "futex_changed": 0,
                    "futex_handoffs": 0, "wake_switches": 0
                }
            })
        );
        let bytes = &v["bytes"];
        assert_eq!(bytes["files"], 10);
        assert_eq!(bytes["other_files"], 10);
        assert_eq!(bytes["archive"], serde_json::Value::Null);
        assert_eq!(v["files"][0]["kind"], "unreferenced");
        assert_eq!(v["files"][0]["bytes"], 10);
        assert_eq!(v["files"][0]["path"], "");
        let events_len = std::fs::metadata(dir.join("events.zst"))
            .expect("meta")
            .len();
        let header_len = std::fs::metadata(dir.join("header.json"))
            .expect("meta")
            .len();
        assert_eq!(bytes["events"], events_len);
        assert_eq!(bytes["total"], events_len + header_len + 10);
    }

    #[test]
    fn a_listing_around_an_event_reads_no_further_than_its_window() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        let list = |around: Option<u64>, context: u64, json: bool| {
            let mut out = Vec::new();
            list_actions(&dir, around, context, json, &mut out)
                .map(|()| String::from_utf8(out).expect("utf-8"))
        };
        let whole = list(None, 0, false).expect("the whole listing");
        assert_eq!(whole.lines().count(), 6, "{whole}");
        let window = list(Some(1), 1, false).expect("a window");
        assert_eq!(
            window
                .lines()
                .map(|l| l.split_whitespace().next())
                .collect::<Vec<_>>(),
            [Some("0"), Some("1"), Some("2")],
            "{window}"
        );
        // Cut the stream short: a window before the cut is still listed
        // (nothing after it is read), the whole listing fails.
        let events = dir.join(EVENTS_FILE);
        let bytes = std::fs::read(&events).expect("read");
        std::fs::write(&events, &bytes[..bytes.len() - 4]).expect("write");
        assert_eq!(
            list(Some(0), 0, false)
                .expect("a window before the cut")
                .lines()
                .count(),
            1
        );
        assert!(list(None, 0, false).is_err());
        let past = list(Some(1000), 2, false);
        assert!(past.is_err(), "{past:?}");
    }

    #[test]
    fn the_streamed_json_listing_is_the_array_of_all_actions() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        let all = crate::harness::tracediff::load(&dir).expect("load");
        let actions = trace::diff::actions(&all, &crate::harness::tracediff::options(0));
        let want = serde_json::to_string_pretty(&actions).expect("json") + "\n";
        let mut out = Vec::new();
        list_actions(&dir, None, 0, true, &mut out).expect("listing");
        assert_eq!(String::from_utf8(out).expect("utf-8"), want);
        let mut none = Vec::new();
        list_actions(&dir, Some(100), 1, true, &mut none).expect("listing");
        assert_eq!(none, b"[]\n");
    }

    #[test]
    fn schedule_line_gives_stops_per_second_and_is_left_out_of_older_traces() {
        let st = ScheduleStats {
            wall_ms: 2000,
            idle_ms: 150,
            stops: 9000,
            switches: 300,
            yields: 20,
            slices_expired: 7,
            spins_cut: 5,
            bail_requests: 6,
            points_spin: 4,
            points_return: 2,
            points_loop_exit: 3,
            points_anywhere: 1,
            probes_ahead: 0,
            ticks: 1900,
            interrupts_resent: 0,
            futex_parked: 0,
            futex_changed: 0,
            futex_handoffs: 0,
            wake_switches: 0,
        };
        assert_eq!(
            schedule_line(&st),
            "wall 2000 ms (idle 150 ms), stops 9000 (4500/s), switches 300 (20 at sched_yield), \
             slices expired 7 (5 spins cut short), bail requests 6, \
             points 4 spin / 2 return / 3 loop exit / 1 anywhere, ticks 1900"
        );
        // The counters shown only when not 0, each on its own.
        let optional = [
            (
                ScheduleStats {
                    probes_ahead: 8,
                    ..st
                },
                "1 anywhere (8 probed ahead), ticks 1900",
            ),
            (
                ScheduleStats {
                    interrupts_resent: 3,
                    ..st
                },
                "ticks 1900, interrupts sent again 3",
            ),
            (
                ScheduleStats {
                    futex_parked: 40,
                    futex_changed: 38,
                    futex_handoffs: 2,
                    ..st
                },
                "ticks 1900, futex waits held 40 (38 let go as their word changed, 2 hand-offs)",
            ),
            (
                ScheduleStats {
                    wake_switches: 9,
                    ..st
                },
                "ticks 1900, spinners' wakes switched at 9",
            ),
        ];
        for (stats, end) in optional {
            let line = schedule_line(&stats);
            assert!(line.ends_with(end), "{line}");
        }
        // The sample trace has no schedule counters (as traces before them).
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        let text = render_text(&collect(&dir).expect("collect"));
        assert!(!text.contains("schedule:"), "{text}");
    }

    #[test]
    fn text_output() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        let text = render_text(&collect(&dir).expect("collect"));
        for want in [
            "format version:   1\n",
            "point digest:     sha256\n",
            "command:          ./prog 'it'\\''s here'\n",
            "outcome:          exited with code 3\n",
            "replayable:       no: ioctl 0x1234 on fd 3\n",
            "threads:          2\n",
            "events:           6\n",
            "env removed:      DATABASE_URL, GITHUB_TOKEN\n",
            "hidden paths:     /root/.netrc\n",
            "stats:            traced_syscalls 2, buffered_syscalls 0, patched_sites 0 (0 ahead), aborted_records 0, desched_events 0 (0 signals), signals 4, async_events 0, rdtsc 5, rdtsc_buffered 0, events 6\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    /// A trace whose files are an executable, its loader, a library and a
    /// data file, named as the recorder names them.
    fn write_with_files(dir: &Path) {
        let src = dir.with_extension("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        let add = |name: &str, len: usize| {
            let p = src.join(name);
            std::fs::write(&p, name.repeat(len).as_bytes()).expect("write");
            p
        };
        let (prog, ld, libc, data, other) = (
            add("prog", 100),
            add("ld.so.2", 30),
            add("libc.so.6", 50),
            add("table.dat", 3),
            add("scratch", 2),
        );
        let mut h = header();
        let id = |p: &Path| trace::file_id_of(&std::fs::read(p).expect("read"));
        h.loaders.push(LoaderCopy {
            exe_file: id(&prog).0,
            path: "/lib64/ld-linux-x86-64.so.2".into(),
            file: id(&ld).0,
        });
        let mut w = TraceWriter::create(dir, h).expect("create");
        let prog_id = w.add_file(&prog).expect("add");
        w.add_file(&ld).expect("add");
        w.add_file(&other).expect("add");
        let mapped = |w: &mut TraceWriter, p: &Path, shown: &str| {
            let file = w.add_file(p).expect("add");
            Event::Syscall(SyscallEvent {
                tid: 10,
                nr: 9,
                args: [0; 6],
                result: SyscallResult {
                    ret: 0x7000_0000,
                    writes: vec![],
                    extra: SyscallExtra::MappedFile {
                        file,
                        path: shown.into(),
                    },
                },
            })
        };
        let events = [
            Event::Exec(ExecEvent {
                tid: 10,
                exe: "/work/target/debug/prog".into(),
                exe_file: prog_id,
                at_random: [0; 16],
                sp: 0,
                ip: 0,
                vdso_copy: rrtest_trace::VdsoCopy::Unrecorded,
            }),
            mapped(&mut w, &libc, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            mapped(&mut w, &data, "/work/table.dat"),
        ];
        for e in events {
            w.push(&e).expect("push");
        }
        write_events(w);
    }

    #[test]
    fn sizes_are_broken_down_by_what_each_file_is() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_with_files(&dir);
        let info = collect(&dir).expect("collect");
        let b = info.bytes;
        assert_eq!(b.executables, 400);
        assert_eq!(b.loaders, 210);
        assert_eq!(b.libraries, 450);
        assert_eq!(b.other_files, 27 + 14);
        assert_eq!(b.files, 400 + 210 + 450 + 27 + 14);
        let kinds: Vec<(FileKind, u64, &str)> = info
            .files
            .iter()
            .map(|f| (f.kind, f.bytes, f.path.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    FileKind::Library,
                    450,
                    "/usr/lib/x86_64-linux-gnu/libc.so.6"
                ),
                (FileKind::Executable, 400, "/work/target/debug/prog"),
                (FileKind::Loader, 210, "/lib64/ld-linux-x86-64.so.2"),
                (FileKind::Mapped, 27, "/work/table.dat"),
                (FileKind::Unreferenced, 14, ""),
            ]
        );
        let text = render_text(&info);
        for want in [
            "files:            5 files/: executables 400 B, loaders 210 B, libraries 450 B, other 41 B\n",
            "       450 B  library      /usr/lib/x86_64-linux-gnu/libc.so.6\n",
            "       210 B  loader       /lib64/ld-linux-x86-64.so.2\n",
            "        14 B  unreferenced (named by no event)\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("archive bytes:"), "{text}");

        // The same trace packed: the archive's size too, the rest the same.
        let archive = tmp.path().join("t.tar.zst");
        let packed = pack::pack(&dir, &archive).expect("pack");
        let from_archive = collect_archive(&archive).expect("collect");
        assert_eq!(from_archive.bytes.archive, Some(packed.archive_bytes));
        assert_eq!(from_archive.files, info.files);
        assert_eq!(from_archive.trace, archive.display().to_string());
        let text = render_text(&from_archive);
        assert!(
            text.contains(&format!("archive bytes:    {} (", packed.archive_bytes)),
            "{text}"
        );
    }

    #[test]
    fn library_names() {
        for (path, kind) in [
            ("/lib/x86_64-linux-gnu/libc.so.6", FileKind::Library),
            ("/usr/lib/libstdc++.so.6.0.30", FileKind::Library),
            ("/opt/plugin.so", FileKind::Library),
            ("/usr/lib/locale/C.utf8/LC_CTYPE", FileKind::Mapped),
            ("/data/my.so.backup", FileKind::Mapped),
            ("/data/archive.so.", FileKind::Mapped),
        ] {
            assert_eq!(library_or_mapped(path), kind, "{path}");
        }
    }

    #[test]
    fn an_unfinished_trace_is_not_replayable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        TraceWriter::create(&dir, header())
            .expect("create")
            .finish()
            .expect("finish");
        let info = collect(&dir).expect("collect");
        assert_eq!(info.outcome, None);
        assert!(!info.replayable);
        assert!(info.unreplayable[0].contains("did not finish"));
        assert!(render_text(&info).contains("outcome:          none"));
    }

    #[test]
    fn bad_traces_exit_with_bad_trace() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("trace");
        write_sample(&dir);
        // Damage the event stream: an error, not a partial report.
        let mut data = std::fs::read(dir.join("events.zst")).expect("read");
        let n = data.len();
        data.truncate(n - 5);
        std::fs::write(dir.join("events.zst"), data).expect("write");
        let err = exec(InfoArgs {
            json: true,
            events: false,
            around: None,
            context: 10,
            trace: dir.clone(),
        })
        .expect_err("damaged");
        assert_eq!(
            err.exit_code(),
            crate::errors::exit_codes::BAD_TRACE,
            "{err}"
        );
        // Listing its events reads them all: the same error.
        let err = exec(InfoArgs {
            json: false,
            events: true,
            around: None,
            context: 10,
            trace: dir.clone(),
        })
        .expect_err("damaged, events");
        assert_eq!(
            err.exit_code(),
            crate::errors::exit_codes::BAD_TRACE,
            "{err}"
        );
        // A file that is no archive.
        let junk = tmp.path().join("junk.tar.zst");
        std::fs::write(&junk, b"not zstd").expect("write");
        let err = exec(InfoArgs {
            json: false,
            events: false,
            around: None,
            context: 10,
            trace: junk,
        })
        .expect_err("junk archive");
        assert_eq!(
            err.exit_code(),
            crate::errors::exit_codes::BAD_TRACE,
            "{err}"
        );
        // A directory that is no trace at all.
        let err = exec(InfoArgs {
            json: false,
            events: false,
            around: None,
            context: 10,
            trace: tmp.path().join("missing"),
        })
        .expect_err("missing");
        assert_eq!(
            err.exit_code(),
            crate::errors::exit_codes::BAD_TRACE,
            "{err}"
        );
    }
}
