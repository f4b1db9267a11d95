//! Thread-heavy workloads (issue 19, fixtures/threads), recorded the way the
//! harness records one test (`<test-binary> --exact tests::NAME`):
//!
//! - `threads::NAME::record_replay`: each workload (a one-slot queue with
//!   ten producers and ten consumers, rendezvous channels, a hand-off by
//!   spinning on `try_recv`, a spin-then-park lock, a scoped join tree, an
//!   async executor with timers) records with its test passing, verifies,
//!   and replays with the same status and output byte for byte;
//! - `threads::schedule_counters`: the trace's header counts where the
//!   recording's time went (`stats.schedule`: wall time, stops, switches),
//!   and `info` prints them;
//! - `threads::timeout_only_under_recording`: a test that hangs only
//!   under a tracer times out in `cargo rrtest`; the report's attempt has
//!   an `unrecorded_rerun` that passed, and the summary says "timed out
//!   under recording; passed in N s unrecorded";
//! - `threads::herd_stays_asleep`: the one-slot queue that wakes every
//!   waiter at each hand-off (`notify_all`): the thread woken last runs
//!   first, and the rest of the herd stays ready without running, so the
//!   recording switches a few times per item (round robin ran the whole
//!   herd at each hand-off: about ten switches per item);
//! - `threads::sha256_trace_replays`: a version 1 trace (SHA-256
//!   execution-point digests, as older recorders wrote) of a workload with
//!   hundreds of execution points verifies and replays; claimed to be XXH3
//!   it does not verify; naming an unknown digest, it is refused;
//! - `threads::spin_handoff_cut_short`: regression for two threads that
//!   wait for each other by spinning without a syscall. Each hand-off took
//!   a whole timeslice (20 ms: 300 rounds took 13 s, native well under
//!   1 s); a thread found spinning while another waits is now preempted at
//!   once (`spins_cut`);
//! - `threads::futex_waits_held`: the one-slot queue recorded with private
//!   futex waits held at their entry (the default) and without
//!   (`RRTEST_FUTEX_PARK=0`): both verify; held, the header counts the
//!   waits held and those let go as their word changed, and the recording
//!   makes at most three quarters of the stops it makes without (about
//!   half, measured: one stop per hand-off's wait instead of two);
//! - `threads::lock_handed_off`: two threads poll in a loop, each taking a
//!   lock on every turn, while a third needs one of those locks
//!   (crossbeam-channel's `select_macro::loop_try`): recorded with the
//!   spinners' wake switches off (`RRTEST_WAKE_SWITCH=0`; on, they give
//!   the lock away first), it gets the lock through hand-offs (the header
//!   counts them) and the trace verifies. Before hand-offs, the poller was preempted at a spin point
//!   inside its critical section every time, and the third thread waited
//!   seconds for each round's lock, or for good (killed at 60 s);
//! - `threads::yield_reads_held_waits`: a thread that unlocks a lock a
//!   held futex wait waits for, then yields until the waiter has it: its
//!   yields are traced while a wait is held, and each yield reads the held
//!   words, so the waiter runs at once; before, the yields ran buffered
//!   until the timer's tick let the wait go, a slice expired per round
//!   (2000 of 2000, 2.0 s recorded; now none, 0.17 s);
//! - `threads::spinner_wakes_give_way`: a thread that polls a rendezvous
//!   channel without a syscall (`try_send`/`try_recv` in a loop) wakes the
//!   other thread at each hand-off, then spins for what it does: once
//!   found spinning, its wakes are traced and it gives way at each one
//!   that woke a thread (`wake_switches`), instead of spinning until a
//!   spin check preempts it (before: no such switch, 566 spins cut for
//!   200 rounds and 0.98 s recorded; after: about 450 switches at wakes,
//!   400 spins cut, 0.43 s, release recorder);
//! - `threads::stealers_all_served_ends`: eight stealers spin on a pool a
//!   producer fills, until each has taken an item: after each slice of the
//!   producer the spinners run first, a different one first each time, and
//!   spinners that found nothing do not run again before the producer.
//!   Before, the same stealer always ran right after the producer and took
//!   everything (39, 167 and 124 s to end, release recorder; 3 s to
//!   over ten minutes for crossbeam-deque's `no_starvation`). Its
//!   `record_replay` verifies more often since spin points without changed
//!   words take the words that changed since early in the slice
//!   (docs/design.md, "Point words"), but not always: it is listed in
//!   `KNOWN_DIVERGENT`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder::expect_verified;
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// The fixture's tests, each a workload.
const WORKLOADS: &[&str] = &[
    "one_slot_ten_producers_ten_consumers",
    "one_slot_notify_all_herd",
    "rendezvous_channel_stress",
    "rendezvous_channel_ping_pong",
    "spin_handoff_try_recv",
    "spin_try_send_rendezvous",
    "lock_retaken_by_pollers",
    "unlock_then_yield",
    "spin_then_park_lock_contention",
    "scoped_join_tree",
    "async_executor_with_timers",
    "stealers_all_served",
];

/// Workloads whose recording is known not to verify in some runs, with the
/// divergence; their `record_replay` trials are ignored (run them with
/// `--ignored`) until it is fixed. docs/design.md ("Execution points")
/// describes the cause as far as it is known.
const KNOWN_DIVERGENT: &[(&str, &str)] = &[(
    "stealers_all_served",
    "replay searches a stealer's point stop by stop and does not reach its registers \
     within 30 s: an earlier point was found at another turn (CI on 2028c5d, after 22 \
     recordings that verified; the spin points' words since early in the slice made it \
     rarer, not impossible)",
)];

/// Builds the fixture's test binary once per test run.
fn test_binary() -> Result<&'static PathBuf, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(build)
        .as_ref()
        .map_err(|e| Failed::from(e.clone()))
}

fn build() -> Result<PathBuf, String> {
    let dir = common::fixtures_dir().join("threads");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(&dir)
        .args(["test", "--no-run", "--lib", "--locked", "--offline"])
        .args(["--message-format", "json", "--target-dir"])
        .arg(common::scratch_dir("fixture-threads-target"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo test --no-run in {} failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["profile"]["test"] == true)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo test --no-run reported no test binary".to_string())
}

fn invocation(name: &str, work: PathBuf) -> Result<Invocation, Failed> {
    Ok(Invocation {
        exe: test_binary()?.clone(),
        args: vec!["--exact".into(), format!("tests::{name}").into()],
        work,
    })
}

/// The test passed: exit 0 and libtest's line for it.
fn expect_passed(name: &str, r: &run::Run) -> Result<(), Failed> {
    r.expect_code(0)?;
    let want = format!("test tests::{name} ... ok");
    check!(
        r.stdout_text().contains(&want),
        "no {want:?} in the output\n{}",
        r.describe()
    );
    Ok(())
}

fn record_replay(trial: &str, name: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let trace = dir.path.join("trace");
    let inv = invocation(name, dir.sub("work")?)?;
    let rec = inv.record(&trace)?;
    expect_passed(name, &rec).map_err(|e| format!("recording: {}", e.message().unwrap_or("")))?;
    expect_verified(&trace)?;
    let rep = inv.replay(&trace)?;
    check!(
        rep.code() == rec.code(),
        "replay exited with {}, the recording with {}\n{}",
        rep.code(),
        rec.code(),
        rep.describe()
    );
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    run::expect_same_bytes("stderr", &rec.stderr, &rep.stderr)?;
    dir.finish();
    Ok(())
}

/// The `stats` object of `info --json TRACE`.
pub(crate) fn stats(trace: &std::path::Path) -> Result<serde_json::Value, Failed> {
    let json = run::info_value(trace)?;
    Ok(json["stats"].clone())
}

pub(crate) fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Workload `name` recorded (with `flags`) in `dir`'s `trace`, its test
/// passing, verified unless `--no-verify` is among the flags: the run and
/// the trace's `stats`.
fn recorded(
    dir: &TrialDir,
    name: &str,
    flags: &[&str],
) -> Result<(run::Run, serde_json::Value), Failed> {
    let trace = dir.path.join("trace");
    let inv = invocation(name, dir.sub("work")?)?;
    let rec = inv.record_with(&trace, flags)?;
    expect_passed(name, &rec)?;
    if !flags.contains(&"--no-verify") {
        expect_verified(&trace)?;
    }
    Ok((rec, stats(&trace)?))
}

fn schedule_counters(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let (_, st) = recorded(&dir, "rendezvous_channel_ping_pong", &["--no-verify"])?;
    let trace = dir.path.join("trace");
    let sch = &st["schedule"];
    // 5000 round trips, each a wake-up of a thread blocked in a futex wait
    // or a switch at sched_yield: thousands of stops and switches.
    check!(
        count(sch, "wall_ms") > 0
            && count(sch, "idle_ms") <= count(sch, "wall_ms")
            && count(sch, "stops") >= 5000
            && count(sch, "switches") >= 5000
            && count(sch, "stops") >= count(&st, "traced_syscalls"),
        "implausible schedule counters: {sch}"
    );
    let text = run::info(&trace)?;
    text.expect_code(0)?;
    let line = format!("stops {} (", count(sch, "stops"));
    check!(
        text.stdout_text()
            .lines()
            .any(|l| l.starts_with("schedule:") && l.contains(&line)),
        "info prints no schedule line with {line:?}\n{}",
        text.describe()
    );
    dir.finish();
    Ok(())
}

fn futex_waits_held(trial: &str) -> Result<(), Failed> {
    let name = "one_slot_ten_producers_ten_consumers";
    let dir = TrialDir::new(trial)?;
    let inv = invocation(name, dir.sub("work")?)?;
    let held = dir.path.join("held");
    let rec = inv.record(&held)?;
    expect_passed(name, &rec)?;
    expect_verified(&held)?;
    let kernel = dir.path.join("kernel");
    let rec = inv.record_wrapped(&["env", "RRTEST_FUTEX_PARK=0"], &kernel, &[])?;
    expect_passed(name, &rec)?;
    expect_verified(&kernel)?;
    let (on, off) = (stats(&held)?, stats(&kernel)?);
    let (son, soff) = (&on["schedule"], &off["schedule"]);
    check!(
        count(son, "futex_parked") >= 1000
            && count(son, "futex_changed") >= 1000
            && count(soff, "futex_parked") == 0,
        "held waits not counted as they should be: held {son}, not held {soff}"
    );
    check!(
        4 * count(son, "stops") <= 3 * count(soff, "stops"),
        "holding the waits did not save stops: held {son}, not held {soff}"
    );
    dir.finish();
    Ok(())
}

fn lock_handed_off(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    // The pollers are found spinning, so their unlocks' wakes give way to
    // the third thread (`spinner_wakes_give_way`): the hand-offs are for
    // the waits those leave, and with them off, for every round.
    let name = "lock_retaken_by_pollers";
    let trace = dir.path.join("trace");
    let rec = invocation(name, dir.sub("work")?)?.record_wrapped(
        &["env", "RRTEST_WAKE_SWITCH=0"],
        &trace,
        &[],
    )?;
    expect_passed(name, &rec)?;
    expect_verified(&trace)?;
    let st = stats(&trace)?;
    let sch = &st["schedule"];
    check!(
        count(sch, "wake_switches") == 0,
        "RRTEST_WAKE_SWITCH=0 left wake switches on: {sch}"
    );
    // 20 rounds; each hand-off is one wait lost and made again.
    check!(
        count(sch, "futex_handoffs") >= 1,
        "no hand-off counted in 20 rounds (recording took {:?}): {sch}\n{}",
        rec.elapsed,
        rec.stdout_text()
    );
    dir.finish();
    Ok(())
}

fn spinner_wakes_give_way(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let (rec, st) = recorded(&dir, "spin_try_send_rendezvous", &[])?;
    let sch = &st["schedule"];
    // 200 rounds, each two hand-offs; the poller's wake of the main thread
    // blocked in `recv` makes one of them.
    check!(
        count(sch, "wake_switches") >= 100,
        "the spinner's wakes did not give way (recording took {:?}): {sch}",
        rec.elapsed
    );
    dir.finish();
    Ok(())
}

fn yield_reads_held_waits(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let (rec, st) = recorded(&dir, "unlock_then_yield", &[])?;
    let sch = &st["schedule"];
    // 2000 rounds, each a wait held while the other thread yields.
    check!(
        count(sch, "futex_parked") >= 1000 && count(sch, "slices_expired") < 500,
        "the yields did not let the held waits go (recording took {:?}): {sch}",
        rec.elapsed
    );
    dir.finish();
    Ok(())
}

fn spin_handoff_cut_short(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let (rec, st) = recorded(&dir, "spin_handoff_try_recv", &["--no-verify"])?;
    let sch = &st["schedule"];
    // 300 rounds: 600 hand-offs, each needs the spinning thread preempted.
    // Most must be cut short as spins, not wait out a slice.
    let cut = count(sch, "spins_cut");
    let preempted = count(&st, "async_events");
    check!(
        cut >= 300 && cut * 4 >= preempted * 3,
        "{cut} spins cut short of {preempted} preemptions (recording took {:?}): {sch}",
        rec.elapsed
    );
    dir.finish();
    Ok(())
}

fn stealers_all_served_ends(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    // The test ends when each of eight spinning stealers has taken an
    // item: the recording must give each a turn right after the
    // producer's (within the trial's time limit; before, 39 s to over two
    // minutes with the release recorder, and never for crossbeam-deque's
    // `no_starvation`).
    let (rec, st) = recorded(&dir, "stealers_all_served", &["--no-verify"])?;
    let sch = &st["schedule"];
    check!(
        count(sch, "spins_cut") > 0,
        "no spin cut short (recording took {:?}): {sch}",
        rec.elapsed
    );
    dir.finish();
    Ok(())
}

fn herd_stays_asleep(trial: &str) -> Result<(), Failed> {
    // The fixture's test: 10 producers and 10 consumers, 500 items each.
    let items = 10 * 500;
    let dir = TrialDir::new(trial)?;
    let (rec, st) = recorded(&dir, "one_slot_notify_all_herd", &["--no-verify"])?;
    let sch = &st["schedule"];
    // An item is two hand-offs (put, take), each a wake-up and a switch
    // or two; waking the whole herd each time costs about ten per item.
    let switches = count(sch, "switches");
    check!(
        switches >= items && switches <= 5 * items,
        "{switches} switches for {items} items (recording took {:?}): {sch}",
        rec.elapsed
    );
    dir.finish();
    Ok(())
}

fn timeout_only_under_recording(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let report = dir.path.join("report.json");
    let target = common::scratch_dir("fixture-threads-target");
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("rrtest")
        .arg("--manifest-path")
        .arg(common::fixtures_dir().join("threads").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .args([
            "--color",
            "never",
            "--ignored",
            "--timeout",
            "3",
            "--report",
        ])
        .arg(&report)
        .args(["tests::hangs_only_when_traced", "--exact"]);
    let r = run::run(&mut cmd)?;
    check!(
        r.code() != 0,
        "a timed-out test must fail the run\n{}",
        r.describe()
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report).map_err(|e| format!("reading {}: {e}", report.display()))?,
    )
    .map_err(|e| format!("the report is no JSON: {e}"))?;
    let test = &json["tests"][0];
    let attempt = &test["attempts"][0];
    check!(
        test["outcome"] == "timed_out"
            && attempt["recorded"] == true
            && attempt["outcome"] == "timed_out"
            && attempt["unrecorded_rerun"]["outcome"] == "passed"
            && attempt["unrecorded_rerun"]["duration_ms"]
                .as_u64()
                .is_some_and(|ms| ms < 3000),
        "the report does not say the test passed unrecorded: {test}"
    );
    let out = r.stdout_text() + &r.stderr_text();
    check!(
        out.lines()
            .any(|l| l.contains("tests::hangs_only_when_traced")
                && l.contains("timed out under recording; passed in")
                && l.contains("s unrecorded")),
        "no summary line saying the test passed unrecorded\n{}",
        r.describe()
    );
    dir.finish();
    Ok(())
}

/// `cargo-rrtest verify TRACE`.
fn verify(trace: &std::path::Path) -> Result<run::Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("verify").arg(trace);
    run::run(&mut cmd)
}

/// Edits `trace`'s header.json with `edit`.
fn edit_header(
    trace: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<(), Failed> {
    let path = trace.join("header.json");
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut json: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("header.json is no JSON: {e}"))?;
    let obj = json.as_object_mut().ok_or("header.json is not an object")?;
    edit(obj);
    std::fs::write(&path, json.to_string())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// A version 1 trace, as recorders before `point_digest` wrote it (SHA-256
/// execution-point digests; `RRTEST_POINT_DIGEST=sha256` makes one), of a
/// workload with hundreds of preemptions at execution points: it verifies
/// and replays with the recorded output. The same trace whose header
/// claims XXH3 digests does not verify (so the digests are checked, with
/// the kind the header names), and one naming an unknown digest is refused
/// as a bad trace with a message naming it.
fn sha256_trace_replays(trial: &str) -> Result<(), Failed> {
    let name = "spin_handoff_try_recv";
    let dir = TrialDir::new(trial)?;
    let trace = dir.path.join("trace");
    let inv = invocation(name, dir.sub("work")?)?;
    let rec = inv.record_wrapped(
        &["env", "RRTEST_POINT_DIGEST=sha256"],
        &trace,
        &["--no-verify"],
    )?;
    expect_passed(name, &rec)?;
    let header: serde_json::Value = serde_json::from_slice(
        &std::fs::read(trace.join("header.json")).map_err(|e| format!("header.json: {e}"))?,
    )
    .map_err(|e| format!("header.json is no JSON: {e}"))?;
    check!(
        header["format_version"] == 1 && header.get("point_digest").is_none(),
        "not a version 1 trace: format_version {}, point_digest {}",
        header["format_version"],
        header["point_digest"]
    );
    let points = count(&header["stats"], "async_events");
    check!(points >= 100, "only {points} execution points recorded");
    let pristine =
        std::fs::read(trace.join("header.json")).map_err(|e| format!("header.json: {e}"))?;

    let v = verify(&trace)?;
    v.expect_code(0)?;
    expect_verified(&trace)?;
    let rep = inv.replay(&trace)?;
    check!(
        rep.code() == rec.code(),
        "replay exited with {}, the recording with {}\n{}",
        rep.code(),
        rec.code(),
        rep.describe()
    );
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;

    // The same events checked as XXH3 digests: the first point diverges.
    std::fs::write(trace.join("header.json"), &pristine).map_err(|e| format!("{e}"))?;
    edit_header(&trace, |h| {
        h.insert("format_version".into(), 2.into());
        h.insert("point_digest".into(), "xxh3-64".into());
    })?;
    let v = verify(&trace)?;
    check!(
        v.code() != 0 && v.stderr_text().contains("execution point"),
        "SHA-256 digests checked as XXH3 verified\n{}",
        v.describe()
    );

    // A digest this build does not know: refused before the program runs.
    edit_header(&trace, |h| {
        h.insert("point_digest".into(), "blake9-64".into());
    })?;
    let r = inv.replay(&trace)?;
    r.expect_code(104)?;
    check!(
        r.stderr_text().contains("\"blake9-64\"") && r.stderr_text().contains("xxh3-64"),
        "the message does not name the digest and the known ones\n{}",
        r.describe()
    );
    dir.finish();
    Ok(())
}

/// This module's trials.
pub fn trials() -> Vec<Trial> {
    let cannot_record = run::recording_unavailable();
    let mut trials = Vec::new();
    for &name in WORKLOADS {
        let trial = format!("threads::{name}::record_replay");
        let t = trial.clone();
        let known = KNOWN_DIVERGENT
            .iter()
            .find_map(|&(w, why)| (w == name).then_some(why));
        trials.push(
            Trial::test(trial, move || {
                record_replay(&t, name).map_err(|e| match known {
                    Some(why) => {
                        format!("{} (a known divergence: {why})", e.message().unwrap_or("")).into()
                    }
                    None => e,
                })
            })
            .with_ignored_flag(cannot_record.is_some() || known.is_some()),
        );
    }
    trials.push(
        Trial::test("threads::schedule_counters", || {
            schedule_counters("threads::schedule_counters")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::stealers_all_served_ends", || {
            stealers_all_served_ends("threads::stealers_all_served_ends")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::herd_stays_asleep", || {
            herd_stays_asleep("threads::herd_stays_asleep")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::spin_handoff_cut_short", || {
            spin_handoff_cut_short("threads::spin_handoff_cut_short")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::lock_handed_off", || {
            lock_handed_off("threads::lock_handed_off")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::spinner_wakes_give_way", || {
            spinner_wakes_give_way("threads::spinner_wakes_give_way")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::yield_reads_held_waits", || {
            yield_reads_held_waits("threads::yield_reads_held_waits")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::futex_waits_held", || {
            futex_waits_held("threads::futex_waits_held")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::sha256_trace_replays", || {
            sha256_trace_replays("threads::sha256_trace_replays")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials.push(
        Trial::test("threads::timeout_only_under_recording", || {
            timeout_only_under_recording("threads::timeout_only_under_recording")
        })
        .with_ignored_flag(cannot_record.is_some()),
    );
    trials
}
