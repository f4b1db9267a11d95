//! Trials of the replayer's public handle, `cargo_rrtest::replayer::Replay`,
//! driven from this process the way a debugger drives it: a C fixture is
//! recorded by the real `cargo-rrtest record`, then replayed here one event
//! at a time, with real ptrace.
//!
//! - `replayer::api::steps_to_the_end::<fixture>`: stepping advances the
//!   position by exactly one event each time, always names a live thread
//!   for the next event, reaches the end with the recorded status and as
//!   many events as a plain `replay()` of the same trace;
//! - `replayer::api::registers_and_memory`: at the first stop the stack
//!   pointer points at `argc` and `argv[0]` reads as the recorded one; at
//!   every stop each live thread's `rsp` and `rip` lie in a mapping of its
//!   process (`rip` in an executable one), and a read through the handle
//!   equals the same bytes read from `/proc/PID/mem`;
//! - `replayer::api::concurrent_replays_keep_their_own_stops`: `replay()`
//!   run over and over on one thread while another steps a replay: each
//!   waits for its own tracees only (a `waitpid(-1)` sweep at the end of
//!   `replay()` once took the stepping replay's stops, and it stalled);
//! - `replayer::api::end_in_the_middle`, `drop_in_the_middle`: ending (or
//!   dropping) the handle with several threads live leaves none of the replay's processes or threads
//!   in `/proc`.
//!
//! Each trial replays on a thread of its own: ptrace ties tracees to the
//! thread that spawned them, and the replay binds its thread to the
//! recorded CPU.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cargo_rrtest::replayer::{self, Replay, ReplayOptions, Step};
use libtest_mimic::{Failed, Trial};
use rrtest_trace::{self as trace, Event, ExitStatus, Outcome};

use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// Fixtures stepped through to their end: threads (four live at once in
/// `exit_live_threads`, whose main thread exits the process under them), an
/// exit code, a fatal signal, and a process tree with exec.
const STEPPED: &[&str] = &[
    "threads_basic",
    "exit_live_threads",
    "exit_code",
    "abort_signal",
    "fork_exec_pipes",
];

pub fn trials() -> Vec<Trial> {
    let why_not = build::gcc_missing().or(run::recording_unavailable());
    let mut trials = Vec::new();
    for &name in STEPPED {
        trials.push(Trial::test(
            format!("replayer::api::steps_to_the_end::{name}"),
            move || steps_to_the_end(name),
        ));
    }
    trials.push(Trial::test(
        "replayer::api::registers_and_memory",
        registers_and_memory,
    ));
    trials.push(Trial::test(
        "replayer::api::concurrent_replays_keep_their_own_stops",
        concurrent_replays_keep_their_own_stops,
    ));
    trials.push(Trial::test("replayer::api::end_in_the_middle", || {
        end_in_the_middle(true)
    }));
    trials.push(Trial::test("replayer::api::drop_in_the_middle", || {
        end_in_the_middle(false)
    }));
    trials
        .into_iter()
        .map(|t| t.with_ignored_flag(why_not.is_some()))
        .collect()
}

/// Records C fixture `name` (PIE) into the trial's directory; returns the
/// trace and the directory (removed when the trial passes).
fn record(trial: &str, name: &'static str) -> Result<(PathBuf, TrialDir), Failed> {
    let exe = build::c_fixture(CBuild::pie(name))?;
    let dir = TrialDir::new(trial)?;
    let inv = Invocation {
        exe,
        args: Vec::new(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    check!(
        trace.join("header.json").exists(),
        "recording {name} wrote no trace: {}",
        rec.describe()
    );
    Ok((trace, dir))
}

fn options(trace: &Path) -> ReplayOptions {
    ReplayOptions {
        trace_dir: trace.to_path_buf(),
        echo_output: false,
    }
}

/// Runs `f` on a thread of its own (see the module doc).
fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failed> + Send + 'static,
) -> Result<T, Failed> {
    std::thread::spawn(f)
        .join()
        .unwrap_or_else(|_| Err("the replay thread panicked".into()))
}

fn recorded_status(trace: &Path) -> Result<ExitStatus, Failed> {
    let header = trace::read_header(trace).map_err(|e| format!("reading the header: {e}"))?;
    match header.outcome {
        Some(Outcome::Exited { code }) => Ok(ExitStatus::Exited(code)),
        Some(Outcome::Signaled { signo }) => Ok(ExitStatus::Signaled { signo, core: false }),
        None => Err("the recording has no outcome".into()),
    }
}

fn same_status(a: ExitStatus, b: ExitStatus) -> bool {
    match (a, b) {
        // Whether a core was dumped depends on the machine.
        (ExitStatus::Signaled { signo: x, .. }, ExitStatus::Signaled { signo: y, .. }) => x == y,
        (a, b) => a == b,
    }
}

fn steps_to_the_end(name: &'static str) -> Result<(), Failed> {
    let trial = format!("replayer-api-steps-{name}");
    let (trace, dir) = record(&trial, name)?;
    let want = recorded_status(&trace)?;
    let opts = options(&trace);
    let (stepped, events) = on_own_thread(move || {
        let mut replay = Replay::start(&opts).map_err(|e| format!("start: {e}"))?;
        let first = replay.position();
        check!(
            first.next_event == 1,
            "after start the next event is {}, not 1 (the exec is event 0)",
            first.next_event
        );
        let mut steps = 0u64;
        let mut max_threads = 0;
        loop {
            let before = replay.position();
            let Some(tid) = before.thread else {
                return Err(format!("no thread for event {}", before.next_event).into());
            };
            let threads = replay.threads();
            max_threads = max_threads.max(threads.len());
            let known = threads.iter().any(|t| t.recorded == tid);
            // A thread exit's thread may already be on its way out.
            let exiting = matches!(
                replay.next_event(),
                Some(Event::ThreadExit { .. } | Event::ProcessExit { .. })
            );
            check!(
                known || exiting,
                "event {} belongs to thread {tid}, which is not live: {threads:?}",
                before.next_event
            );
            steps += 1;
            match replay
                .step()
                .map_err(|e| format!("step {}: {e}", before.next_event))?
            {
                Step::Stopped(after) => check!(
                    after.next_event == before.next_event + 1 && after == replay.position(),
                    "the position went from {before:?} to {after:?}"
                ),
                Step::Exited(done) => {
                    check!(
                        done.events == before.next_event + 1,
                        "{} events replayed, ending at event {}",
                        done.events,
                        before.next_event
                    );
                    check!(replay.step().is_err(), "a step after the end did not fail");
                    check!(
                        replay.position().thread.is_none(),
                        "the ended replay still names a thread"
                    );
                    return Ok(((done.status, steps, max_threads), done.events));
                }
            }
        }
    })?;
    let (status, steps, max_threads) = stepped;
    check!(
        same_status(status, want),
        "stepping ended with {status:?}; the recording with {want:?}"
    );
    check!(
        steps + 1 == events,
        "{steps} steps after the exec for {events} events"
    );
    // threads_basic's main thread lives on while each thread it creates
    // runs; exit_live_threads starts three that all wait at once.
    let min_threads = match name {
        "threads_basic" => 2,
        "exit_live_threads" => 4,
        _ => 1,
    };
    check!(
        max_threads >= min_threads,
        "at most {max_threads} live threads seen; {name} has {min_threads} at once"
    );
    // The thin client, `replay()`, runs the same code to the same end.
    let opts = options(&trace);
    let plain = on_own_thread(move || replayer::replay(&opts).map_err(|e| format!("{e}").into()))?;
    check!(
        plain.events == events && same_status(plain.status, want),
        "replay() replayed {} events to {:?}; stepping {events} to {status:?}",
        plain.events,
        plain.status
    );
    dir.finish();
    Ok(())
}

/// The mappings of process `pid`: (start, end, permissions).
fn mappings(pid: i32) -> Result<Vec<(u64, u64, String)>, Failed> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("reading /proc/{pid}/maps: {e}"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        out.push((a, b, perms.to_string()));
    }
    Ok(out)
}

fn proc_mem(pid: i32, addr: u64, len: usize) -> Result<Vec<u8>, Failed> {
    let mut f = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("opening /proc/{pid}/mem: {e}"))?;
    f.seek(SeekFrom::Start(addr))
        .map_err(|e| format!("seeking /proc/{pid}/mem: {e}"))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf)
        .map_err(|e| format!("reading /proc/{pid}/mem at {addr:#x}: {e}"))?;
    Ok(buf)
}

fn registers_and_memory() -> Result<(), Failed> {
    let (trace, dir) = record("replayer-api-registers", "threads_basic")?;
    let header = trace::read_header(&trace).map_err(|e| format!("reading the header: {e}"))?;
    let opts = options(&trace);
    on_own_thread(move || {
        let mut replay = Replay::start(&opts).map_err(|e| format!("start: {e}"))?;
        // At the entry point: rsp points at argc, then argv.
        let main = replay.position().thread.ok_or("no first thread")?;
        let regs = replay.registers(main).map_err(|e| format!("{e}"))?;
        let word = |r: &Replay, addr: u64| -> Result<u64, Failed> {
            let b = r.read_memory(main, addr, 8).map_err(|e| format!("{e}"))?;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let argc = word(&replay, regs.rsp)?;
        check!(
            argc == header.argv.len() as u64,
            "argc at rsp {:#x} is {argc}; the recording has {} arguments",
            regs.rsp,
            header.argv.len()
        );
        let argv0 = word(&replay, regs.rsp + 8)?;
        let bytes = replay
            .read_memory(main, argv0, header.argv[0].len() + 1)
            .map_err(|e| format!("{e}"))?;
        check!(
            bytes == [header.argv[0].as_bytes(), &[0]].concat(),
            "argv[0] reads {:?}; recorded {:?}",
            String::from_utf8_lossy(&bytes),
            header.argv[0]
        );
        // Unknown threads are refused with a clear error.
        let err = replay
            .registers(-1)
            .expect_err("registers of thread -1")
            .to_string();
        check!(err.contains("not a live thread"), "{err}");
        let mut stops = 0;
        loop {
            for t in replay.threads() {
                let regs = replay.registers(t.recorded).map_err(|e| format!("{e}"))?;
                let maps = mappings(t.real_pid)?;
                let find = |addr: u64| maps.iter().find(|(a, b, _)| (*a..*b).contains(&addr));
                let Some((_, _, perms)) = find(regs.rip) else {
                    return Err(format!(
                        "thread {}: rip {:#x} in no mapping",
                        t.recorded, regs.rip
                    )
                    .into());
                };
                check!(
                    perms.contains('x'),
                    "thread {}: rip {:#x} in a mapping without x ({perms})",
                    t.recorded,
                    regs.rip
                );
                check!(
                    regs.rsp != 0 && find(regs.rsp).is_some(),
                    "thread {}: rsp {:#x} in no mapping",
                    t.recorded,
                    regs.rsp
                );
                let through_handle = replay
                    .read_memory(t.recorded, regs.rsp, 64)
                    .map_err(|e| format!("{e}"))?;
                check!(
                    through_handle == proc_mem(t.real, regs.rsp, 64)?,
                    "thread {}: the stack read through the handle differs from /proc/{}/mem",
                    t.recorded,
                    t.real
                );
            }
            stops += 1;
            match replay.step().map_err(|e| format!("{e}"))? {
                Step::Stopped(_) => {}
                Step::Exited(_) => break,
            }
        }
        check!(stops > 10, "only {stops} stops");
        Ok(())
    })?;
    dir.finish();
    Ok(())
}

fn end_in_the_middle(explicit: bool) -> Result<(), Failed> {
    let (trace, dir) = record(&format!("replayer-api-end-{explicit}"), "exit_live_threads")?;
    let opts = options(&trace);
    let seen = on_own_thread(move || {
        let mut replay = Replay::start(&opts).map_err(|e| format!("start: {e}"))?;
        // Step until several threads are live.
        while replay.threads().len() < 3 {
            match replay.step().map_err(|e| format!("{e}"))? {
                Step::Stopped(_) => {}
                Step::Exited(_) => return Err("the program ended before 3 threads ran".into()),
            }
        }
        let threads = replay.threads();
        for t in &threads {
            check!(
                Path::new(&format!("/proc/{}/task/{}", t.real_pid, t.real)).exists(),
                "thread {} (real {}) is not in /proc while live",
                t.recorded,
                t.real
            );
        }
        if explicit {
            replay.end();
        } else {
            drop(replay);
        }
        Ok(threads)
    })?;
    for t in &seen {
        for path in [format!("/proc/{}", t.real), format!("/proc/{}", t.real_pid)] {
            check!(
                !Path::new(&path).exists(),
                "{path} (of recorded thread {}) still exists after the replay ended",
                t.recorded
            );
        }
    }
    dir.finish();
    Ok(())
}

fn concurrent_replays_keep_their_own_stops() -> Result<(), Failed> {
    let (stepped, dir_a) = record("replayer-api-concurrent-a", "threads_basic")?;
    let (plain, dir_b) = record("replayer-api-concurrent-b", "exit_code")?;
    let want = recorded_status(&plain)?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_b = std::sync::Arc::clone(&done);
    let opts_b = options(&plain);
    let other = std::thread::spawn(move || -> Result<u32, String> {
        let mut n = 0;
        while n == 0 || !done_b.load(std::sync::atomic::Ordering::SeqCst) {
            let r = replayer::replay(&opts_b).map_err(|e| format!("replay(): {e}"))?;
            if !same_status(r.status, want) {
                return Err(format!("replay() ended with {:?}", r.status));
            }
            n += 1;
        }
        Ok(n)
    });
    let opts_a = options(&stepped);
    let started = std::time::Instant::now();
    let result = on_own_thread(move || {
        let mut replay = Replay::start(&opts_a).map_err(|e| format!("start: {e}"))?;
        loop {
            match replay.step().map_err(|e| format!("step: {e}"))? {
                Step::Stopped(_) => std::thread::yield_now(),
                Step::Exited(done) => return Ok(done.status),
            }
        }
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = other
        .join()
        .unwrap_or_else(|_| Err("the replay() thread panicked".into()))?;
    let status = result?;
    check!(
        status == ExitStatus::Exited(0),
        "the stepped replay ended with {status:?}"
    );
    // A stolen stop shows as the watchdog's stall after 60 s.
    check!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the stepped replay took {:?} alongside {runs} replay() runs",
        started.elapsed()
    );
    dir_a.finish();
    dir_b.finish();
    Ok(())
}
