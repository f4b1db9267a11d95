//! The syscall buffer (issue 5), judged on real recordings:
//!
//! - `syscallbuf::loop::*`: syscall loops (glibc's wrappers, the
//!   recorder's own vDSO, raw `syscall` instructions in Rust code, a mix of every kind
//!   of buffered syscall) record with at least
//!   95% of their syscalls buffered through patched sites, verify, and
//!   replay the same output; with `--no-syscallbuf` nothing is buffered and
//!   the output is the same;
//! - `syscallbuf::desched::pipe_block`: a thread blocked in a buffered read
//!   while another writes later is unwound (`desched_events`);
//!   `syscallbuf::desched::pipe_pingpong`: 200 rounds over two pipes, each
//!   blocking a buffered read, unwound by desched events' signals where the
//!   kernel grants them (`desched_signals`), and by the recorder looking
//!   with `--no-desched-events`;
//! - `syscallbuf::signals::handler_redirect`: timer signals during buffered
//!   syscalls, handlers that make buffered syscalls, walk the stack (never
//!   seeing a stub) and rewrite the interrupted context.
//! - `syscallbuf::output::*` (fixtures/c/print_loop.c): writes to the
//!   program's output (stdout, stderr, a dup of stdout; write and writev)
//!   are buffered with their bytes: a print loop has at least 95% of its
//!   syscalls buffered and records, replays and (without the buffer)
//!   records again the native output byte for byte; two threads printing
//!   interleaved lines replay in the recorded order; fd 1 redirected to
//!   /dev/null and back, and a dup2'd descriptor, keep the output table
//!   exact; writes too large for
//!   the buffer are traced and still replayed; a build that writes other
//!   bytes, one more byte, or another writev piece in place of the
//!   recorded one diverges (exit 103, naming the event and the output).
//! - `syscallbuf::rdtsc::*` (fixtures/c/rdtsc_loop.c, and the Rust
//!   `_rdtsc` site of rust_raw_syscalls): a trapped `rdtsc`'s site is
//!   patched, and at least 95% of the loop's rdtsc then go through it
//!   (`rdtsc_buffered`) with the counter never going backwards (across
//!   the always-trapped rdtscp too); the trace verifies and replays the
//!   same output; with `--no-syscallbuf` every rdtsc traps, and the trace
//!   verifies too; a thread spinning on rdtsc is preempted for the thread
//!   it waits for, with and without the buffer; readings from the patched
//!   site and the trapped rdtscp in two threads and a forked child never go
//!   backwards.
//!
//! Output, exit status and the events themselves are compared by the
//! `recorder::*::record_replay` trials of the same fixtures; these trials
//! check what the buffer itself promises.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::recorder::{self, Args, Source, Spec, C_SPECS, RUST_SPECS};
use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, Run, TrialDir};

fn spec(name: &str) -> Spec {
    *C_SPECS
        .iter()
        .chain(RUST_SPECS)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no fixture spec {name}"))
}

/// `info --json`'s `stats`, and `verified`.
fn stats(trace: &Path) -> Result<serde_json::Value, Failed> {
    let json = run::info_value(trace)?;
    check!(
        json["verified"] == true,
        "the trace is not verified: {}",
        json["verification_failure"]
    );
    Ok(json["stats"].clone())
}

fn stat(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

/// Records `spec` with and without the buffer: `loop_syscalls` of its
/// syscalls are in its loop, and at least 95% of them must be buffered.
fn loop_buffered(trial: &str, spec: &Spec, loop_syscalls: u64) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = recorder::invocation(spec, dir.sub("work")?)?;
    let buffered_trace = dir.path.join("buffered");
    let rec = inv.record(&buffered_trace)?;
    rec.expect_code(0)?;
    let st = stats(&buffered_trace)?;
    let buffered = stat(&st, "buffered_syscalls");
    check!(
        buffered * 100 >= loop_syscalls * 95,
        "only {buffered} of the loop's {loop_syscalls} syscalls were buffered (stats {st})"
    );
    check!(
        stat(&st, "patched_sites") >= 1,
        "no site patched (stats {st})"
    );
    let rep = inv.replay(&buffered_trace)?;
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;

    let plain_trace = dir.path.join("unbuffered");
    let plain = inv.record_with(&plain_trace, &["--no-syscallbuf"])?;
    plain.expect_code(0)?;
    let st = stats(&plain_trace)?;
    check!(
        stat(&st, "buffered_syscalls") == 0 && stat(&st, "patched_sites") == 0,
        "--no-syscallbuf still buffered (stats {st})"
    );
    check!(
        stat(&st, "traced_syscalls") >= loop_syscalls,
        "--no-syscallbuf traced fewer syscalls than the loop makes (stats {st})"
    );
    run::expect_same_bytes_of(
        "stdout",
        ("buffered", &rec.stdout),
        ("unbuffered", &plain.stdout),
    )?;
    dir.finish();
    Ok(())
}

/// What a trace's stats must show.
type Expect = fn(&serde_json::Value) -> Result<(), Failed>;

/// Records `spec` and checks its stats with `expect`.
fn recorded_stats(trial: &str, spec: &Spec, expect: Expect) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = recorder::invocation(spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    let st = stats(&trace)?;
    expect(&st).map_err(|e| format!("{} (stats {st})", e.message().unwrap_or("")))?;
    let rep = inv.replay(&trace)?;
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    dir.finish();
    Ok(())
}

fn blocked_reader_was_unwound(st: &serde_json::Value) -> Result<(), Failed> {
    check!(
        stat(st, "desched_events") >= 1 && stat(st, "aborted_records") >= 1,
        "the blocked buffered read was never unwound"
    );
    Ok(())
}

/// Whether this user may open desched events (the probe fixture, run
/// natively, tries what the recorder's tracees do).
fn desched_events_available() -> Result<bool, Failed> {
    let exe = build::c_fixture(CBuild::pie("perf_probe"))?;
    let probe = run::run(&mut std::process::Command::new(exe))?;
    probe.expect_code(0)?;
    let text = probe.stdout_text();
    check!(
        text.contains("desched events: "),
        "the probe said nothing\n{}",
        probe.describe()
    );
    Ok(text.contains("desched events: available"))
}

/// Two threads pass a counter over two pipes 200 times (the main thread
/// computing a little between its write and its read, when the other
/// thread already waits to run): every round blocks at least one buffered
/// read, which must be unwound (else the
/// other thread never runs). With desched events (where the kernel grants
/// them) some of those unwinds come from the event's signal; with
/// `--no-desched-events` none do, and the recorder finds every one by
/// looking. Both verify and replay the native output.
fn pingpong_unwinds() -> Result<(), Failed> {
    const ROUNDS: u64 = 200;
    let dir = TrialDir::new("syscallbuf-desched-pingpong")?;
    let inv = recorder::invocation(&spec("pipe_pingpong-pie"), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    same_output("recorded vs native", &native, &rec)?;
    check!(
        stat(&st, "desched_events") >= ROUNDS,
        "fewer unwound blocked reads than rounds (stats {st})"
    );
    if desched_events_available()? {
        check!(
            stat(&st, "desched_signals") >= 1,
            "desched events are available, and none signalled a blocked read (stats {st})"
        );
    } else {
        check!(
            stat(&st, "desched_signals") == 0,
            "desched events are refused here, yet signals were counted (stats {st})"
        );
    }
    let polled_trace = dir.path.join("polled");
    let polled = inv.record_with(&polled_trace, &["--no-desched-events"])?;
    polled.expect_code(0)?;
    same_output("polled vs native", &native, &polled)?;
    let pst = stats(&polled_trace)?;
    check!(
        stat(&pst, "desched_signals") == 0 && stat(&pst, "desched_events") >= ROUNDS,
        "--no-desched-events: signals counted, or fewer unwinds than rounds (stats {pst})"
    );
    let rep = inv.replay(&polled_trace)?;
    same_output("replayed vs recorded, polled", &polled, &rep)?;
    dir.finish();
    Ok(())
}

fn handlers_used_the_buffer(st: &serde_json::Value) -> Result<(), Failed> {
    check!(stat(st, "signals") >= 30, "fewer than 30 signals delivered");
    // 40 syscalls in each of 30 handlers, plus the loop's.
    check!(
        stat(st, "buffered_syscalls") >= 1200,
        "the handlers' syscalls were not buffered"
    );
    Ok(())
}

/// print_loop in `mode` with argument `n`.
fn print_loop(args: &'static [&'static str]) -> Spec {
    Spec::new("print_loop-pie", Source::C(CBuild::pie("print_loop"))).args(Args::Fixed(args))
}

/// Both streams of `a` and `b` are the same bytes.
fn same_output(what: &str, a: &Run, b: &Run) -> Result<(), Failed> {
    run::expect_same_bytes(&format!("stdout ({what})"), &a.stdout, &b.stdout)?;
    run::expect_same_bytes(&format!("stderr ({what})"), &a.stderr, &b.stderr)
}

/// Records `spec` with the buffer; checks the exit status and the success
/// marker, that the trace verifies, and that replay writes the recorded
/// stdout and stderr byte for byte. Returns the recording and its stats.
fn record_and_replay(
    dir: &TrialDir,
    inv: &run::Invocation,
) -> Result<(Run, serde_json::Value), Failed> {
    let trace = dir.path.join("buffered");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text().lines().last() == Some("EXIT-SUCCESS"),
        "the recorded run did not finish\n{}",
        rec.describe()
    );
    let st = stats(&trace)?;
    let rep = inv.replay(&trace)?;
    rep.expect_code(0)?;
    same_output("replayed vs recorded", &rec, &rep)?;
    Ok((rec, st))
}

/// The print loop: 4 output syscalls a round, at least 95% of them
/// buffered; native, recorded, replayed and unbuffered output identical.
fn output_loop() -> Result<(), Failed> {
    const ROUNDS: u64 = 1000;
    let dir = TrialDir::new("syscallbuf-output-loop")?;
    let inv = recorder::invocation(&print_loop(&["loop", "1000"]), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    same_output("recorded vs native", &native, &rec)?;
    let buffered = stat(&st, "buffered_syscalls");
    check!(
        buffered * 100 >= 4 * ROUNDS * 95,
        "only {buffered} of the loop's {} output syscalls were buffered (stats {st})",
        4 * ROUNDS
    );
    let plain_trace = dir.path.join("unbuffered");
    let plain = inv.record_with(&plain_trace, &["--no-syscallbuf"])?;
    plain.expect_code(0)?;
    let pst = stats(&plain_trace)?;
    check!(
        stat(&pst, "buffered_syscalls") == 0 && stat(&pst, "traced_syscalls") >= 4 * ROUNDS,
        "--no-syscallbuf buffered, or traced fewer syscalls than the loop makes (stats {pst})"
    );
    same_output("unbuffered vs buffered recording", &rec, &plain)?;
    let rep = inv.replay(&plain_trace)?;
    same_output("replayed vs recorded, unbuffered", &plain, &rep)?;
    dir.finish();
    Ok(())
}

/// The lines `name N` of `text`, in order, as numbers.
fn thread_lines(text: &str, name: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .collect()
}

/// Two threads print without ordering between them: the recording
/// interleaves their lines, and replay prints them in the recorded order.
fn output_threads() -> Result<(), Failed> {
    const LINES: u64 = 3000;
    let dir = TrialDir::new("syscallbuf-output-threads")?;
    let inv = recorder::invocation(&print_loop(&["threads", "3000"]), dir.sub("work")?)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    let text = rec.stdout_text();
    for name in ["thread-a ", "thread-b "] {
        check!(
            thread_lines(&text, name) == (0..LINES).collect::<Vec<_>>(),
            "{name}lines lost, repeated or out of order in the recording"
        );
    }
    let switches = text
        .lines()
        .filter(|l| l.starts_with("thread-"))
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0].as_bytes()[7] != w[1].as_bytes()[7])
        .count();
    check!(
        switches >= 2,
        "the recording did not interleave the threads' lines ({switches} switches)"
    );
    check!(
        stat(&st, "buffered_syscalls") >= LINES,
        "the threads' writes were not buffered (stats {st})"
    );
    dir.finish();
    Ok(())
}

/// fd 1 redirected to /dev/null and back, and a dup2'd descriptor: only
/// the writes that reach stdout are output (native, recorded and replayed
/// alike), and they are all buffered.
fn output_redirect() -> Result<(), Failed> {
    const LINES: u64 = 500;
    let dir = TrialDir::new("syscallbuf-output-redirect")?;
    let inv = recorder::invocation(&print_loop(&["redirect", "500"]), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    same_output("recorded vs native", &native, &rec)?;
    check!(
        !rec.stdout_text().contains("hidden"),
        "writes to /dev/null reached the recording's stdout"
    );
    check!(
        stat(&st, "buffered_syscalls") * 100 >= 4 * LINES * 95,
        "the writes to stdout, /dev/null and fd 7 were not buffered (stats {st})"
    );
    dir.finish();
    Ok(())
}

/// Writes larger than the buffer takes are traced, and still replayed.
fn output_large() -> Result<(), Failed> {
    let dir = TrialDir::new("syscallbuf-output-large")?;
    let inv = recorder::invocation(&print_loop(&["large"]), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    same_output("recorded vs native", &native, &rec)?;
    check!(
        rec.stdout.len() > 140_000,
        "the large writes are missing from the recording's output"
    );
    check!(
        stat(&st, "traced_syscalls") >= 2,
        "the large writes were not traced (stats {st})"
    );
    dir.finish();
    Ok(())
}

/// `replay`'s exit status for a divergence (docs/exit-codes.md).
const EXIT_DIVERGENCE: i32 = 103;

/// Records print_loop's loop, swaps the trace's copy of the executable for
/// the build with `define` (same code and layout; its middle round writes
/// something else once), and expects replay to report the divergence,
/// naming `names`.
fn output_divergence(define: &'static str, names: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(&format!("syscallbuf-output-diverge-{define}"))?;
    let plain = build::c_fixture(CBuild::pie("print_loop"))?;
    let defines: &'static [&'static str] = Box::leak(vec![define].into_boxed_slice());
    let variant = build::c_fixture(CBuild {
        name: "print_loop",
        link: Link::Pie,
        defines,
    })?;
    let inv = recorder::invocation(&print_loop(&["loop", "200"]), dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    inv.record(&trace)?.expect_code(0)?;
    let plain_bytes = std::fs::read(&plain).map_err(|e| format!("{}: {e}", plain.display()))?;
    let variant_bytes =
        std::fs::read(&variant).map_err(|e| format!("{}: {e}", variant.display()))?;
    let files = trace.join("files");
    let mut swapped = 0;
    for (rel, (kind, _)) in run::snapshot(&files)? {
        let copy = files.join(rel);
        if !kind.starts_with("file") || std::fs::read(&copy).ok().as_ref() != Some(&plain_bytes) {
            continue;
        }
        // Unlink first: the copy may be a hard link to the fixture binary.
        let perms = std::fs::metadata(&copy)
            .map(|m| m.permissions())
            .map_err(|e| format!("{}: {e}", copy.display()))?;
        std::fs::remove_file(&copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        std::fs::write(&copy, &variant_bytes).map_err(|e| format!("{}: {e}", copy.display()))?;
        std::fs::set_permissions(&copy, perms).map_err(|e| format!("{}: {e}", copy.display()))?;
        swapped += 1;
    }
    check!(
        swapped > 0,
        "no copy of the executable in {}",
        files.display()
    );
    let rep = inv.replay(&trace)?;
    rep.expect_code(EXIT_DIVERGENCE)?;
    let err = rep.stderr_text();
    let lower = err.to_ascii_lowercase();
    check!(
        lower.contains("diverged") && lower.contains(names) && run::names_event_index(&err),
        "the divergence message does not name the event and {names:?}\n{}",
        rep.describe()
    );
    check!(
        !err.contains("panicked"),
        "cargo-rrtest panicked\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}

/// One of the `syscallbuf::output` trials.
type OutputTrial = fn() -> Result<(), Failed>;

/// Rounds of the rdtsc loop (an rdtscp every 1000th).
const RDTSC_ROUNDS: u64 = 20_000;

/// rdtsc_loop, `RDTSC_ROUNDS` rounds.
fn rdtsc_loop() -> Spec {
    Spec::new("rdtsc_loop-pie", Source::C(CBuild::pie("rdtsc_loop"))).args(Args::Fixed(&["20000"]))
}

/// The rdtsc loop: with the buffer at least 95% of its rdtsc go through
/// the patched site and only a few trap (the first, the rdtscp, the
/// dynamic loader's); without it every one traps. Both traces verify, and
/// native, recorded and replayed output are the same.
fn rdtsc_loop_patched() -> Result<(), Failed> {
    let dir = TrialDir::new("syscallbuf-rdtsc-loop")?;
    let inv = recorder::invocation(&rdtsc_loop(), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    let (rec, st) = record_and_replay(&dir, &inv)?;
    same_output("recorded vs native", &native, &rec)?;
    let through = stat(&st, "rdtsc_buffered");
    check!(
        through * 100 >= RDTSC_ROUNDS * 95,
        "only {through} of the loop's {RDTSC_ROUNDS} rdtsc went through a patched site (stats {st})"
    );
    let traps = stat(&st, "rdtsc");
    check!(
        traps >= RDTSC_ROUNDS / 1000 && traps * 20 < RDTSC_ROUNDS,
        "{traps} rdtsc trapped: not the rdtscp alone (stats {st})"
    );
    check!(
        stat(&st, "patched_sites") >= 1,
        "no site patched (stats {st})"
    );

    let plain_trace = dir.path.join("unbuffered");
    let plain = inv.record_with(&plain_trace, &["--no-syscallbuf"])?;
    plain.expect_code(0)?;
    let pst = stats(&plain_trace)?;
    check!(
        stat(&pst, "rdtsc_buffered") == 0
            && stat(&pst, "patched_sites") == 0
            && stat(&pst, "rdtsc") >= RDTSC_ROUNDS + RDTSC_ROUNDS / 1000,
        "--no-syscallbuf: not every rdtsc trapped (stats {pst})"
    );
    same_output("unbuffered vs buffered recording", &rec, &plain)?;
    let rep = inv.replay(&plain_trace)?;
    rep.expect_code(0)?;
    same_output("replayed vs recorded, unbuffered", &plain, &rep)?;
    dir.finish();
    Ok(())
}

/// A thread spinning on rdtsc (no syscall) until another thread runs:
/// with the buffer (a patched site, bailing to a trap while the recorder
/// wants the thread) and without it (every rdtsc traps; the recorder steps
/// over one when it searches for a point), the recorder preempts the
/// spinning thread, and both traces verify and replay the output.
fn rdtsc_spin() -> Result<(), Failed> {
    let dir = TrialDir::new("syscallbuf-rdtsc-spin")?;
    let spec = Spec::new("rdtsc_loop-pie", Source::C(CBuild::pie("rdtsc_loop")))
        .args(Args::Fixed(&["spin"]));
    let inv = recorder::invocation(&spec, dir.sub("work")?)?;
    let (rec, _) = record_and_replay(&dir, &inv)?;
    let plain_trace = dir.path.join("unbuffered");
    let plain = inv.record_with(&plain_trace, &["--no-syscallbuf"])?;
    plain.expect_code(0)?;
    stats(&plain_trace)?;
    same_output("unbuffered vs buffered recording", &rec, &plain)?;
    let rep = inv.replay(&plain_trace)?;
    rep.expect_code(0)?;
    same_output("replayed vs recorded, unbuffered", &plain, &rep)?;
    dir.finish();
    Ok(())
}

/// rdtsc_loop's readings through the patched site and the trapped rdtscp
/// in the main thread, a second thread and a forked child, in an order the
/// program enforces, never go backwards (the program checks it); the
/// patched site serves them all.
fn rdtsc_cross(st: &serde_json::Value) -> Result<(), Failed> {
    check!(
        stat(st, "rdtsc_buffered") >= 100,
        "the patched site did not serve the readings"
    );
    check!(stat(st, "rdtsc") >= 3, "the rdtscp did not trap");
    Ok(())
}

/// rust_raw_syscalls' `_rdtsc` site (1000 rounds) is patched too.
fn rust_rdtsc_patched(st: &serde_json::Value) -> Result<(), Failed> {
    check!(
        stat(st, "rdtsc_buffered") >= 950,
        "fewer than 950 of the 1000 rdtsc went through a patched site"
    );
    Ok(())
}

/// All syscall-buffer trials.
pub fn trials() -> Vec<Trial> {
    let gcc = crate::recorder_build::gcc_missing();
    let cannot_record = run::recording_unavailable();
    let mut trials = Vec::new();
    let loops: [(&str, u64); 6] = [
        // 2000 write + pread pairs; glibc's wrappers.
        ("syscall_loop-pie", 4000),
        // 2000 64-byte write + pread pairs on a file.
        ("file_loop-pie", 4000),
        // 200 rounds of 18: open, close, lseek, getdents64, gettimeofday,
        // time twice, writev, pwritev, poll, epoll_wait, sendto, recvfrom,
        // sendmsg, recvfrom, futex wake, lseek, readv.
        ("buffered_mix-pie", 3600),
        // 200 rounds of 22 identity, permission and file-system syscalls,
        // and a sched_yield.
        ("buffered_more-pie", 4600),
        // 2000 clock_gettime: glibc calls the recorder's own vDSO, whose
        // one syscall site is patched.
        ("clock_loop-pie", 2000),
        // 1000 getpid + write through a raw site in Rust code.
        ("rust::rust_raw_syscalls", 2000),
    ];
    for (name, n) in loops {
        let mut s = spec(name);
        if name == "syscall_loop-pie" {
            s = s.args(Args::Fixed(&["2000"]));
        }
        let needs_gcc = !name.starts_with("rust::");
        trials.push(
            Trial::test(format!("syscallbuf::loop::{name}"), move || {
                loop_buffered(&format!("syscallbuf-loop-{}", s.name), &s, n)
            })
            .with_ignored_flag((needs_gcc && gcc.is_some()) || cannot_record.is_some()),
        );
    }
    let others: [(&str, &str, Expect); 2] = [
        ("desched", "pipe_block-pie", blocked_reader_was_unwound),
        ("signals", "handler_redirect-pie", handlers_used_the_buffer),
    ];
    let outputs: [(&str, OutputTrial); 7] = [
        ("loop", output_loop),
        ("threads", output_threads),
        ("large", output_large),
        ("redirect", output_redirect),
        ("divergence::other_bytes", || {
            output_divergence("OTHER_BYTES", "output of write")
        }),
        ("divergence::other_length", || {
            output_divergence("OTHER_LENGTH", "output of write")
        }),
        ("divergence::other_writev_piece", || {
            output_divergence("OTHER_VEC", "output of writev")
        }),
    ];
    for (name, f) in outputs {
        trials.push(
            Trial::test(format!("syscallbuf::output::{name}"), f)
                .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
        );
    }
    trials.push(
        Trial::test("syscallbuf::desched::pipe_pingpong", pingpong_unwinds)
            .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
    );
    for (area, name, expect) in others {
        let s = spec(name);
        trials.push(
            Trial::test(format!("syscallbuf::{area}::{name}"), move || {
                recorded_stats(&format!("syscallbuf-{area}-{name}"), &s, expect)
            })
            .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
        );
    }
    trials.push(
        Trial::test("syscallbuf::rdtsc::rdtsc_loop-pie", rdtsc_loop_patched)
            .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
    );
    trials.push(
        Trial::test("syscallbuf::rdtsc::spin", rdtsc_spin)
            .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
    );
    let cross = Spec::new("rdtsc_loop-pie", Source::C(CBuild::pie("rdtsc_loop")))
        .args(Args::Fixed(&["cross"]));
    trials.push(
        Trial::test("syscallbuf::rdtsc::cross", move || {
            recorded_stats("syscallbuf-rdtsc-cross", &cross, rdtsc_cross)
        })
        .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
    );
    let rust = spec("rust::rust_raw_syscalls");
    trials.push(
        Trial::test("syscallbuf::rdtsc::rust::rust_raw_syscalls", move || {
            recorded_stats("syscallbuf-rdtsc-rust", &rust, rust_rdtsc_patched)
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials
}
