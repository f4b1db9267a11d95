//! Trials of the replay debugger engine, `cargo_rrtest::replayer::Debugger`:
//! C fixtures (`fixtures/c/dbg_*.c`, built `-no-pie` so that `nm` gives
//! run-time addresses) are recorded by the real `cargo-rrtest record`, then
//! debugged here with real ptrace: breakpoints, single steps, watchpoints,
//! reverse execution, threads, the end, and a trace that diverges.
//!
//! - `debug::engine::breakpoint_in_a_loop`: a breakpoint at `step_fn`
//!   stops five times, with `rdi` = 0..4 and `rip` at the function, then
//!   the replay runs to the recorded exit status;
//! - `debug::engine::single_step`: from the breakpoint, each step moves
//!   `rip` forward by one instruction inside `step_fn`, and a step never
//!   skips a breakpoint's hit count (continuing reaches the next round);
//! - `debug::engine::write_watchpoint`: a write watchpoint on `watched`
//!   stops after each store, with the new value (0, 3, 6, 9, 12) in memory;
//! - `debug::engine::threads_listed`: at `in_thread` in `dbg_threads`, all
//!   four threads are listed with registers; reverse-continue goes back to
//!   the previous thread's stop there, and forward again to the next;
//! - `debug::engine::step_over_buffered_syscalls`: stepping through a late
//!   `io_round` of `dbg_buffered` (its write and read sites patched) never
//!   shows an ip outside the program and libc, steps over its `rdtsc`
//!   (patched) to the next instruction, reads each patched site as the original code
//!   (not the jump /proc/PID/mem holds); a breakpoint then set inside a
//!   patched site's jump does not break it;
//! - `debug::engine::watchpoint_in_the_hook`: a watchpoint on the buffer a
//!   buffered `read` fills (the hook copies into it) stops outside the hook,
//!   in the program or libc, with the value read;
//! - `debug::engine::reverse_watchpoint_in_the_hook`: from the end, back
//!   to the last such write: before the buffered `read` that made it (the
//!   earlier value in memory), in the program or libc, and forward again to
//!   the same stop as before;
//! - `debug::engine::divergence_is_an_error`: a trace whose program was
//!   swapped for one printing other bytes fails a resume with the
//!   divergence, within a bound, and the session refuses to go on;
//! - `debug::engine::reverse_continue` and `reverse_step`: going back lands
//!   on the earlier stop with the registers of the forward visit, and going
//!   forward again reaches the same states;
//! - `debug::engine::reverse_watchpoint`: reverse-continue with a write
//!   watchpoint stops at the writing instruction before it executes (the
//!   old value in memory), and forward again at the forward stop;
//! - `debug::engine::reverse_watchpoint_finds_the_other_threads_write`:
//!   in `gdb_target`, from main after the worker thread exited, back to the
//!   worker's write (before it), a reverse step and a step from there, on
//!   back to main's write, forward again through the same states; from the
//!   end, back to the worker's write.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cargo_rrtest::replayer::debug::Regs;
use cargo_rrtest::replayer::{Debugger, Direction, ReplayOptions, Resume, Stop, WatchKind};
use libtest_mimic::{Failed, Trial};
use rrtest_trace::ExitStatus;

use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, Invocation, TrialDir};

type TrialFn = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let why_not = build::gcc_missing().or(run::recording_unavailable());
    let list: Vec<(&str, TrialFn)> = vec![
        ("breakpoint_in_a_loop", breakpoint_in_a_loop),
        ("single_step", single_step),
        ("write_watchpoint", write_watchpoint),
        ("threads_listed", threads_listed),
        ("step_over_buffered_syscalls", step_over_buffered_syscalls),
        ("watchpoint_in_the_hook", watchpoint_in_the_hook),
        (
            "reverse_watchpoint_in_the_hook",
            reverse_watchpoint_in_the_hook,
        ),
        ("divergence_is_an_error", divergence_is_an_error),
        ("reverse_continue", reverse_continue),
        ("reverse_step", reverse_step),
        ("reverse_watchpoint", reverse_watchpoint),
        (
            "reverse_watchpoint_finds_the_other_threads_write",
            reverse_watchpoint_finds_the_other_threads_write,
        ),
        ("fp_registers", fp_registers),
        ("interrupt", interrupt),
        ("program_sigtraps_delivered", program_sigtraps_delivered),
    ];
    let mut trials: Vec<Trial> = list
        .into_iter()
        .map(|(name, f)| {
            Trial::test(format!("debug::engine::{name}"), f).with_ignored_flag(why_not.is_some())
        })
        .collect();
    // A benchmark, not a test: run by scripts/bench-debug.sh.
    trials.push(Trial::test("debug::bench::engine_vs_replay", bench).with_ignored_flag(true));
    trials
}

pub(crate) const fn no_pie(name: &'static str) -> CBuild {
    CBuild {
        name,
        link: Link::NoPie,
        defines: &[],
    }
}

/// A recorded fixture: the trace, its binary, and the trial directory
/// (removed when the trial passes).
pub(crate) struct Recorded {
    pub(crate) trace: PathBuf,
    pub(crate) exe: PathBuf,
    _dir: TrialDir,
}

pub(crate) fn record(trial: &str, build: CBuild) -> Result<Recorded, Failed> {
    let exe = build::c_fixture(build)?;
    let dir = TrialDir::new(trial)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: Vec::new(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    check!(
        trace.join("header.json").exists(),
        "recording {} wrote no trace: {}",
        build.name,
        rec.describe()
    );
    Ok(Recorded {
        trace,
        exe,
        _dir: dir,
    })
}

pub(crate) fn start(trace: &Path) -> Result<Debugger, Failed> {
    Debugger::start(&ReplayOptions {
        trace_dir: trace.to_path_buf(),
        echo_output: false,
    })
    .map_err(|e| format!("starting the debugger: {e}").into())
}

/// The address of symbol `name` in `exe`, from `nm`.
pub(crate) fn symbol(exe: &Path, name: &str) -> Result<u64, Failed> {
    symbol_range(exe, name).map(|r| r.start)
}

/// The addresses symbol `name` covers in `exe`, from `nm -S`.
fn symbol_range(exe: &Path, name: &str) -> Result<std::ops::Range<u64>, Failed> {
    let out = Command::new("nm")
        .arg("-S")
        .arg(exe)
        .output()
        .map_err(|e| format!("running nm: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [addr, size, _kind, sym] if sym == name => {
                    let a = u64::from_str_radix(addr, 16).ok()?;
                    Some(a..a + u64::from_str_radix(size, 16).ok()?)
                }
                _ => None,
            }
        })
        .ok_or_else(|| format!("no symbol {name} in {}", exe.display()).into())
}

pub(crate) fn forward(dbg: &mut Debugger, how: Resume) -> Result<Stop, Failed> {
    dbg.resume(how, Direction::Forward)
        .map_err(|e| format!("resume {how:?}: {e}").into())
}

fn reverse(dbg: &mut Debugger, how: Resume) -> Result<Stop, Failed> {
    dbg.resume(how, Direction::Reverse)
        .map_err(|e| format!("reverse {how:?}: {e}").into())
}

pub(crate) fn regs(dbg: &Debugger, tid: i32) -> Result<Regs, Failed> {
    dbg.registers(tid)
        .map_err(|e| format!("registers of {tid}: {e}").into())
}

/// Continues until the end; the exit status.
fn to_the_end(dbg: &mut Debugger) -> Result<ExitStatus, Failed> {
    for _ in 0..1000 {
        if let Stop::Exited(status) = forward(dbg, Resume::Continue)? {
            return Ok(status);
        }
    }
    Err("no end after 1000 stops".into())
}

fn breakpoint_in_a_loop() -> Result<(), Failed> {
    let rec = record("debug-engine-breakpoint", no_pie("dbg_loop"))?;
    let step_fn = symbol(&rec.exe, "step_fn")?;
    let mut dbg = start(&rec.trace)?;
    let first = dbg.current_thread();
    let at_start = regs(&dbg, first)?;
    check!(
        dbg.threads().len() == 1,
        "{} threads at the start",
        dbg.threads().len()
    );
    dbg.set_breakpoint(step_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    for i in 0..5u64 {
        let stop = forward(&mut dbg, Resume::Continue)?;
        let Stop::Breakpoint { tid, addr } = stop else {
            return Err(format!("round {i}: stopped with {stop:?}, not at the breakpoint").into());
        };
        check!(addr == step_fn, "round {i}: breakpoint at {addr:#x}");
        check!(tid == first, "round {i}: stopped in thread {tid}");
        let r = regs(&dbg, tid)?;
        check!(r.rip == step_fn, "round {i}: rip {:#x}", r.rip);
        check!(r.rdi == i, "round {i}: step_fn's argument is {}", r.rdi);
        // The breakpoint is hidden from memory reads.
        let code = dbg
            .read_memory(tid, step_fn, 1)
            .map_err(|e| format!("read: {e}"))?;
        check!(code[0] != 0xcc, "the int3 shows in a memory read");
    }
    check!(at_start.rip != step_fn, "the start is already at step_fn");
    let status = to_the_end(&mut dbg)?;
    check!(
        status == ExitStatus::Exited(0),
        "the replay ended with {status:?}"
    );
    check!(
        forward(&mut dbg, Resume::Continue).is_err(),
        "a resume after the end did not fail"
    );
    Ok(())
}

fn single_step() -> Result<(), Failed> {
    let rec = record("debug-engine-step", no_pie("dbg_loop"))?;
    let body = symbol_range(&rec.exe, "step_fn")?;
    let step_fn = body.start;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(step_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let Stop::Breakpoint { tid, .. } = forward(&mut dbg, Resume::Continue)? else {
        return Err("no breakpoint stop".into());
    };
    // Step out of step_fn, one instruction at a time.
    let mut ip = regs(&dbg, tid)?.rip;
    let mut steps = 0;
    while body.contains(&ip) && steps < 50 {
        let stop = forward(&mut dbg, Resume::Step(tid))?;
        check!(
            stop == Stop::Stepped { tid },
            "step {steps}: stopped with {stop:?}"
        );
        let now = regs(&dbg, tid)?.rip;
        check!(now != ip, "step {steps}: rip stayed at {ip:#x}");
        if body.contains(&now) {
            check!(
                now > ip && now - ip <= 15,
                "step {steps} inside step_fn went from {ip:#x} to {now:#x}"
            );
        }
        ip = now;
        steps += 1;
    }
    check!(
        steps >= 3,
        "step_fn was left after {steps} steps (it has at least 4 instructions)"
    );
    check!(
        !body.contains(&ip),
        "50 steps did not leave step_fn: at {ip:#x}"
    );
    // The next round still stops at the breakpoint, with its argument.
    let stop = forward(&mut dbg, Resume::Continue)?;
    check!(
        matches!(stop, Stop::Breakpoint { addr, .. } if addr == step_fn),
        "after the steps: {stop:?}"
    );
    check!(regs(&dbg, tid)?.rdi == 1, "the second round's argument");
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

fn write_watchpoint() -> Result<(), Failed> {
    let rec = record("debug-engine-watch", no_pie("dbg_loop"))?;
    let watched = symbol(&rec.exe, "watched")?;
    let body = symbol_range(&rec.exe, "step_fn")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_watchpoint(watched, 8, WatchKind::Write)
        .map_err(|e| format!("set_watchpoint: {e}"))?;
    check!(
        dbg.set_watchpoint(watched + 1, 8, WatchKind::Write)
            .is_err(),
        "a misaligned watchpoint was accepted"
    );
    for i in 0..5i64 {
        let stop = forward(&mut dbg, Resume::Continue)?;
        let Stop::Watchpoint { tid, addr, kind } = stop else {
            return Err(format!("round {i}: stopped with {stop:?}, not at the watchpoint").into());
        };
        check!(
            addr == watched && kind == WatchKind::Write,
            "round {i}: {stop:?}"
        );
        let bytes = dbg
            .read_memory(tid, watched, 8)
            .map_err(|e| format!("read: {e}"))?;
        let value = i64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
        check!(value == i * 3, "round {i}: watched holds {value}");
        let ip = regs(&dbg, tid)?.rip;
        check!(
            body.contains(&ip),
            "round {i}: the write stopped at {ip:#x}, outside step_fn"
        );
    }
    dbg.remove_watchpoint(watched, 8, WatchKind::Write)
        .map_err(|e| format!("remove_watchpoint: {e}"))?;
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

fn threads_listed() -> Result<(), Failed> {
    let rec = record("debug-engine-threads", no_pie("dbg_threads"))?;
    let in_thread = symbol(&rec.exe, "in_thread")?;
    let mut dbg = start(&rec.trace)?;
    let main_tid = dbg.current_thread();
    dbg.set_breakpoint(in_thread)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let mut seen = Vec::new();
    let mut visits = Vec::new();
    for _ in 0..3 {
        let stop = forward(&mut dbg, Resume::Continue)?;
        let Stop::Breakpoint { tid, .. } = stop else {
            return Err(format!("stopped with {stop:?}").into());
        };
        check!(tid != main_tid, "the main thread stopped in in_thread");
        let threads = dbg.threads();
        check!(
            threads.len() == 4,
            "{} threads listed at in_thread: {threads:?}",
            threads.len()
        );
        for t in &threads {
            let r = regs(&dbg, t.recorded)?;
            check!(r.rsp != 0, "thread {} has no stack pointer", t.recorded);
        }
        seen.push((tid, regs(&dbg, tid)?.rdi));
        visits.push((stop, state(&regs(&dbg, tid)?)));
    }
    // Back to the second thread's stop, and forward to the third's: the
    // same threads and registers.
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(
        stop == visits[1].0,
        "reverse-continue stopped with {stop:?}, not {:?}",
        visits[1].0
    );
    check!(
        state(&regs(&dbg, dbg.current_thread())?) == visits[1].1,
        "the second stop reached backwards has other registers"
    );
    check!(
        dbg.threads().len() == 4,
        "{} threads listed after reverse-continue",
        dbg.threads().len()
    );
    let stop = forward(&mut dbg, Resume::Continue)?;
    check!(
        stop == visits[2].0 && state(&regs(&dbg, dbg.current_thread())?) == visits[2].1,
        "forward again: {stop:?}, not the third stop as before"
    );
    let mut ids: Vec<u64> = seen.iter().map(|&(_, id)| id).collect();
    ids.sort_unstable();
    check!(ids == [1, 2, 3], "in_thread's arguments were {seen:?}");
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

/// Whether `ip` lies in a mapping of the program or of the C library (or
/// the dynamic loader) in process `pid`: not a stub page, the preload
/// library, or the replay's fixed page. The replay maps the libraries from
/// the trace's copies, which have the sizes of this process's own.
fn in_program_or_libc(pid: i32, exe: &Path, ip: u64) -> Result<bool, Failed> {
    let ours = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let lib_sizes: Vec<u64> = ours
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("/libc.so") || p.contains("/ld-linux"))
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .collect();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("reading maps: {e}"))?;
    let exe = exe.to_string_lossy();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(path)) = (f.next(), f.nth(4)) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap_or(0),
            u64::from_str_radix(b, 16).unwrap_or(0),
        );
        if (a..b).contains(&ip) {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            return Ok(path == exe || lib_sizes.contains(&size));
        }
    }
    Ok(false)
}

fn step_over_buffered_syscalls() -> Result<(), Failed> {
    let rec = record("debug-engine-buffered", no_pie("dbg_buffered"))?;
    let body = symbol_range(&rec.exe, "io_round")?;
    let io_round = body.start;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(io_round)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    // Round 10: both sites were patched rounds ago.
    let mut tid = 0;
    for _ in 0..10 {
        match forward(&mut dbg, Resume::Continue)? {
            Stop::Breakpoint { tid: t, .. } => tid = t,
            other => return Err(format!("stopped with {other:?}").into()),
        }
    }
    dbg.remove_breakpoint(io_round)
        .map_err(|e| format!("remove_breakpoint: {e}"))?;
    let pid = dbg.real_pid();
    // What the replay runs: the trace's copy under a temporary name.
    let running_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| format!("reading the program's name: {e}"))?;
    let ret = {
        let r = regs(&dbg, tid)?;
        let bytes = dbg
            .read_memory(tid, r.rsp, 8)
            .map_err(|e| format!("read: {e}"))?;
        u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
    };
    let (mut steps, mut in_libc, mut over_rdtsc) = (0, 0, 0);
    let mut patched_site = None;
    let mut prev = regs(&dbg, tid)?.rip;
    loop {
        let code = dbg
            .read_memory(tid, prev, 5)
            .map_err(|e| format!("read: {e}"))?;
        let at_rdtsc = code[..2] == [0x0f, 0x31];
        // The memory as it is (the debugger shows the original code): a
        // `jmp rel32` to a stub, and where it jumps.
        let mut raw = [0u8; 5];
        {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(format!("/proc/{pid}/mem"))
                .and_then(|f| f.read_exact_at(&mut raw, prev))
                .map_err(|e| format!("reading /proc/{pid}/mem at {prev:#x}: {e}"))?;
        }
        let jump_to = (raw[0] == 0xe9).then(|| {
            let rel = i32::from_le_bytes([raw[1], raw[2], raw[3], raw[4]]);
            (prev + 5).wrapping_add(rel as i64 as u64)
        });
        check!(
            jump_to.is_none() || code[0] != 0xe9,
            "the debugger's read of the patched site at {prev:#x} shows the patch's jump: {code:02x?}"
        );
        let stop = forward(&mut dbg, Resume::Step(tid))?;
        check!(stop == Stop::Stepped { tid }, "step {steps}: {stop:?}");
        let ip = regs(&dbg, tid)?.rip;
        // Over an rdtsc, patched or not: to the next instruction (not over
        // the one a patch displaced with it).
        if at_rdtsc {
            check!(
                ip == prev + 2,
                "a step over the rdtsc at {prev:#x} went to {ip:#x}"
            );
            over_rdtsc += 1;
        }
        // A patched site: its jump to the stub (not where the step went),
        // stepped over as one instruction to the code after the syscall
        // (or rdtsc).
        if jump_to.is_some_and(|t| t != ip) && ip > prev && ip - prev <= 16 {
            patched_site.get_or_insert(prev);
        }
        prev = ip;
        check!(
            in_program_or_libc(pid, &running_exe, ip)?,
            "step {steps} stopped at {ip:#x}, outside the program and libc:\n{}",
            std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
        );
        if !body.contains(&ip) {
            in_libc += 1;
        }
        steps += 1;
        if ip == ret {
            break;
        }
        check!(steps < 5000, "5000 steps did not return from io_round");
    }
    check!(
        in_libc > 2,
        "the steps never went into libc's write and read ({steps} steps)"
    );
    check!(
        over_rdtsc == 1,
        "{over_rdtsc} steps over io_round's rdtsc, not 1"
    );
    // A breakpoint strictly inside the patched region (the jump's
    // displacement) must not break the jump: the replay goes on as
    // recorded.
    let Some(site) = patched_site else {
        return Err("no step over a patched site's jump".into());
    };
    dbg.set_breakpoint(site + 1)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

fn divergence_is_an_error() -> Result<(), Failed> {
    let rec = record("debug-engine-diverge", no_pie("dbg_loop"))?;
    let other = build::c_fixture(CBuild {
        name: "dbg_loop",
        link: Link::NoPie,
        defines: &["DIVERGE"],
    })?;
    let plain = std::fs::read(&rec.exe).map_err(|e| format!("{e}"))?;
    let swapped = std::fs::read(&other).map_err(|e| format!("{e}"))?;
    let mut replaced = 0;
    for copy in files_under(&rec.trace.join("files"))? {
        if std::fs::read(&copy).map(|b| b == plain).unwrap_or(false) {
            let perms = std::fs::metadata(&copy)
                .map(|m| m.permissions())
                .map_err(|e| format!("{e}"))?;
            // Unlink first: the copy may be a hard link to the fixture.
            std::fs::remove_file(&copy).map_err(|e| format!("{e}"))?;
            std::fs::write(&copy, &swapped).map_err(|e| format!("{e}"))?;
            std::fs::set_permissions(&copy, perms).map_err(|e| format!("{e}"))?;
            replaced += 1;
        }
    }
    check!(replaced > 0, "no copy of the program in the trace");
    let step_fn = symbol(&rec.exe, "step_fn")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(step_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let started = Instant::now();
    let mut result = Ok(Stop::ReplayStart);
    for _ in 0..10 {
        result = dbg.resume(Resume::Continue, Direction::Forward);
        if result.is_err() {
            break;
        }
    }
    check!(
        started.elapsed() < Duration::from_secs(30),
        "the divergence took {:?}",
        started.elapsed()
    );
    match result {
        Err(e) => {
            let msg = e.to_string();
            check!(
                msg.contains("diverged"),
                "the error is not a divergence: {msg}"
            );
        }
        Ok(stop) => return Err(format!("no divergence; last stop {stop:?}").into()),
    }
    check!(
        dbg.resume(Resume::Continue, Direction::Forward).is_err(),
        "the session went on after the divergence"
    );
    Ok(())
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>, Failed> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e.map_err(|e| format!("{e}"))?.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The registers that name a state (rflags without the trap and resume
/// flags the stops set).
fn state(r: &Regs) -> [u64; 20] {
    [
        r.rip,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.rsp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        r.eflags & !0x1_0100,
        r.fs_base,
        r.gs_base,
    ]
}

fn reverse_continue() -> Result<(), Failed> {
    let rec = record("debug-engine-reverse-continue", no_pie("dbg_loop"))?;
    let step_fn = symbol(&rec.exe, "step_fn")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(step_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let mut forward_visits = Vec::new();
    for i in 0..3 {
        let stop = forward(&mut dbg, Resume::Continue)?;
        let Stop::Breakpoint { tid, .. } = stop else {
            return Err(format!("round {i}: {stop:?}").into());
        };
        forward_visits.push((stop, state(&regs(&dbg, tid)?)));
    }
    // Back from round 2 to round 1, then round 0, then the start.
    for want in [1usize, 0] {
        let stop = reverse(&mut dbg, Resume::Continue)?;
        check!(
            stop == forward_visits[want].0,
            "reverse-continue stopped with {stop:?}, not at round {want}'s {:?}",
            forward_visits[want].0
        );
        let tid = dbg.current_thread();
        let now = state(&regs(&dbg, tid)?);
        check!(
            now == forward_visits[want].1,
            "round {want} reached backwards has other registers:\n{now:x?}\nforward:\n{:x?}",
            forward_visits[want].1
        );
    }
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(stop == Stop::ReplayStart, "before round 0: {stop:?}");
    // Forward again: the same states.
    for (i, (want_stop, want_regs)) in forward_visits.iter().enumerate() {
        let stop = forward(&mut dbg, Resume::Continue)?;
        check!(stop == *want_stop, "forward again, round {i}: {stop:?}");
        let now = state(&regs(&dbg, dbg.current_thread())?);
        check!(
            now == *want_regs,
            "forward again, round {i}: other registers"
        );
    }
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    // From the end back to the last round.
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(
        matches!(stop, Stop::Breakpoint { addr, .. } if addr == step_fn),
        "reverse-continue from the end: {stop:?}"
    );
    check!(
        regs(&dbg, dbg.current_thread())?.rdi == 4,
        "reverse-continue from the end did not stop at the last round"
    );
    Ok(())
}

fn reverse_step() -> Result<(), Failed> {
    let rec = record("debug-engine-reverse-step", no_pie("dbg_loop"))?;
    let step_fn = symbol(&rec.exe, "step_fn")?;
    let main = symbol_range(&rec.exe, "main")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(step_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    forward(&mut dbg, Resume::Continue)?;
    let Stop::Breakpoint { tid, .. } = forward(&mut dbg, Resume::Continue)? else {
        return Err("no second breakpoint stop".into());
    };
    let mut visits = vec![state(&regs(&dbg, tid)?)];
    for _ in 0..3 {
        forward(&mut dbg, Resume::Step(tid))?;
        visits.push(state(&regs(&dbg, tid)?));
    }
    // Back two, forward one, back two: each state is the forward one.
    for (dir, want) in [
        (Direction::Reverse, 2),
        (Direction::Reverse, 1),
        (Direction::Forward, 2),
        (Direction::Reverse, 1),
        (Direction::Reverse, 0),
    ] {
        let stop = dbg
            .resume(Resume::Step(tid), dir)
            .map_err(|e| format!("{dir:?} step to state {want}: {e}"))?;
        check!(
            stop == Stop::Stepped { tid },
            "{dir:?} step to state {want}: {stop:?}"
        );
        let now = state(&regs(&dbg, tid)?);
        check!(
            now == visits[want],
            "{dir:?} step should reach state {want}:\n{now:x?}\nforward:\n{:x?}",
            visits[want]
        );
    }
    // One more back: the call in main.
    reverse(&mut dbg, Resume::Step(tid))?;
    let ip = regs(&dbg, tid)?.rip;
    check!(
        main.contains(&ip),
        "a reverse step from step_fn's entry went to {ip:#x}, not into main"
    );
    let stop = forward(&mut dbg, Resume::Step(tid))?;
    check!(stop == Stop::Stepped { tid }, "{stop:?}");
    check!(
        state(&regs(&dbg, tid)?) == visits[0],
        "stepping the call again did not reach step_fn's entry state"
    );
    Ok(())
}

fn reverse_watchpoint() -> Result<(), Failed> {
    let rec = record("debug-engine-reverse-watch", no_pie("dbg_loop"))?;
    let watched = symbol(&rec.exe, "watched")?;
    let body = symbol_range(&rec.exe, "step_fn")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_watchpoint(watched, 8, WatchKind::Write)
        .map_err(|e| format!("set_watchpoint: {e}"))?;
    for _ in 0..4 {
        forward(&mut dbg, Resume::Continue)?;
    }
    let fourth = state(&regs(&dbg, dbg.current_thread())?);
    let value = |dbg: &Debugger| -> Result<i64, Failed> {
        let b = dbg
            .read_memory(dbg.current_thread(), watched, 8)
            .map_err(|e| format!("read: {e}"))?;
        Ok(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    check!(value(&dbg)? == 9, "the fourth write left {}", value(&dbg)?);
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(
        matches!(stop, Stop::Watchpoint { addr, kind: WatchKind::Write, .. } if addr == watched),
        "reverse-continue stopped with {stop:?}"
    );
    // The fourth write itself, undone: at its instruction, which has
    // not written yet (as gdb expects a reverse watchpoint stop).
    let back = regs(&dbg, dbg.current_thread())?;
    check!(
        value(&dbg)? == 6 && back.rdi == 3,
        "reverse-continue reached watched = {} in round {}, not the fourth write before it",
        value(&dbg)?,
        back.rdi
    );
    check!(
        body.contains(&back.rip) && back.rip < fourth[0],
        "reverse-continue stopped at {:#x}, not at the writing instruction before {:#x}",
        back.rip,
        fourth[0]
    );
    let stop = forward(&mut dbg, Resume::Continue)?;
    check!(
        matches!(stop, Stop::Watchpoint { .. })
            && value(&dbg)? == 9
            && state(&regs(&dbg, dbg.current_thread())?) == fourth,
        "forward again: {stop:?}, value {}, not the fourth write's stop",
        value(&dbg)?
    );
    // Back twice: the third write, before it.
    reverse(&mut dbg, Resume::Continue)?;
    let stop = reverse(&mut dbg, Resume::Continue)?;
    let r = regs(&dbg, dbg.current_thread())?;
    check!(
        matches!(stop, Stop::Watchpoint { .. }) && value(&dbg)? == 3 && r.rdi == 2,
        "two reverse-continues: {stop:?}, watched = {} in round {}",
        value(&dbg)?,
        r.rdi
    );
    Ok(())
}

/// `gdb_target`: main's `area()` writes 42 to `watched`, then a worker
/// thread's writes 84; main then calls `out()` to print it. Stopped at
/// that call (after the worker exited), reverse-continue with a write
/// watchpoint stops at the worker's write (the last one, in whatever
/// thread), at the writing instruction before it executes (memory still
/// 42), as gdb expects; a reverse step from there goes one instruction
/// further back and a step forward returns. Going back on reaches main's
/// write (memory still 0); forward again reaches the same states as the
/// first forward run, and the end; from the end, back to the worker's
/// write again.
fn reverse_watchpoint_finds_the_other_threads_write() -> Result<(), Failed> {
    let rec = record("debug-engine-reverse-watch-threads", no_pie("gdb_target"))?;
    let watched = symbol(&rec.exe, "watched")?;
    let area = symbol_range(&rec.exe, "area")?;
    let out = symbol(&rec.exe, "out")?;
    let mut dbg = start(&rec.trace)?;
    let main_tid = dbg.current_thread();
    let value = |dbg: &Debugger, tid: i32| -> Result<i64, Failed> {
        let b = dbg
            .read_memory(tid, watched, 8)
            .map_err(|e| format!("read: {e}"))?;
        Ok(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    // Forward: main's write, its out(), the worker's write, main's out()
    // of the result: each stop with its registers.
    dbg.set_watchpoint(watched, 8, WatchKind::Write)
        .map_err(|e| format!("set_watchpoint: {e}"))?;
    dbg.set_breakpoint(out)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let mut visits = Vec::new();
    for i in 0..4 {
        let stop = forward(&mut dbg, Resume::Continue)?;
        let tid = dbg.current_thread();
        let ok = match (i, stop) {
            (0 | 2, Stop::Watchpoint { tid: t, addr, .. }) => t == tid && addr == watched,
            (1 | 3, Stop::Breakpoint { tid: t, addr }) => t == main_tid && addr == out,
            _ => false,
        };
        check!(ok, "forward stop {i}: {stop:?} in thread {tid}");
        visits.push((stop, tid, state(&regs(&dbg, tid)?), value(&dbg, tid)?));
    }
    let worker = visits[2].1;
    check!(
        worker != main_tid && visits[0].1 == main_tid,
        "the writes were in threads {} and {worker}, main is {main_tid}",
        visits[0].1
    );
    check!(
        visits[0].3 == 42 && visits[2].3 == 84,
        "the writes left {} and {}",
        visits[0].3,
        visits[2].3
    );
    // A reverse watchpoint stop: the thread, at the writing instruction
    // (before the forward stop's ip, in area), the old value in memory.
    let before_write = |dbg: &mut Debugger, visit: usize, old: i64| -> Result<[u64; 20], Failed> {
        let (fwd_stop, tid, fwd_state, _) = visits[visit];
        let stop = reverse(dbg, Resume::Continue)?;
        check!(
            stop == fwd_stop && dbg.current_thread() == tid,
            "reverse-continue to the write by {tid}: {stop:?} in thread {}, not {fwd_stop:?}",
            dbg.current_thread()
        );
        let now = value(dbg, tid)?;
        check!(
            now == old,
            "reverse-continue to the write by {tid}: watched holds {now}, not {old}: not before the write"
        );
        let r = regs(dbg, tid)?;
        check!(
            area.contains(&r.rip) && r.rip < fwd_state[0],
            "reverse-continue to the write by {tid} stopped at {:#x}, not at the writing instruction before {:#x}",
            r.rip,
            fwd_state[0]
        );
        Ok(state(&r))
    };
    let at_worker_write = before_write(&mut dbg, 2, 42)?;
    // One instruction further back, and forward to the same state.
    let stop = reverse(&mut dbg, Resume::Step(worker))?;
    let r = regs(&dbg, worker)?;
    check!(
        stop == Stop::Stepped { tid: worker }
            && area.contains(&r.rip)
            && r.rip < at_worker_write[0],
        "reverse step from the write: {stop:?} at {:#x}",
        r.rip
    );
    let stop = forward(&mut dbg, Resume::Step(worker))?;
    check!(
        stop == Stop::Stepped { tid: worker } && state(&regs(&dbg, worker)?) == at_worker_write,
        "a step forward from there: {stop:?}, not back at the write's state"
    );
    // On back: main's out(), then main's write.
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(
        stop == visits[1].0 && state(&regs(&dbg, main_tid)?) == visits[1].2,
        "reverse-continue to main's out(): {stop:?}"
    );
    before_write(&mut dbg, 0, 0)?;
    // Forward again: the same stops and states, then the end.
    for (i, (fwd_stop, tid, fwd_state, fwd_value)) in visits.iter().enumerate() {
        let stop = forward(&mut dbg, Resume::Continue)?;
        check!(stop == *fwd_stop, "forward again, stop {i}: {stop:?}");
        check!(
            state(&regs(&dbg, *tid)?) == *fwd_state && value(&dbg, *tid)? == *fwd_value,
            "forward again, stop {i}: other registers or value than the first time"
        );
    }
    dbg.remove_breakpoint(out)
        .map_err(|e| format!("remove_breakpoint: {e}"))?;
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(3), "ended with {status:?}");
    // From the end: the worker's write again.
    let again = before_write(&mut dbg, 2, 42)?;
    check!(
        again == at_worker_write,
        "the worker's write reached from the end has other registers"
    );
    Ok(())
}

fn fp_registers() -> Result<(), Failed> {
    let rec = record("debug-engine-fp", no_pie("dbg_loop"))?;
    let fp_fn = symbol(&rec.exe, "fp_fn")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(fp_fn)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    let stop = forward(&mut dbg, Resume::Continue)?;
    let Stop::Breakpoint { tid, .. } = stop else {
        return Err(format!("{stop:?}").into());
    };
    let fp = dbg
        .fp_registers(tid)
        .map_err(|e| format!("fp_registers: {e}"))?;
    let xmm0 = f64::from_le_bytes(fp.xmm(0)[..8].try_into().unwrap_or([0; 8]));
    check!(xmm0 == 2.5, "fp_fn's argument in xmm0 reads {xmm0}");
    check!(
        fp.mxcsr() & 0xffc0 == 0x1f80,
        "mxcsr {:#x} is not the default's masks",
        fp.mxcsr()
    );
    check!(regs(&dbg, tid)?.fs_base != 0, "fs_base reads 0");
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

fn interrupt() -> Result<(), Failed> {
    let rec = record("debug-engine-interrupt", no_pie("dbg_spin"))?;
    let spin = symbol_range(&rec.exe, "spin")?;
    let mut dbg = start(&rec.trace)?;
    let stopper = dbg.interrupter();
    let asked = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        stopper.interrupt();
        Instant::now()
    });
    let stop = forward(&mut dbg, Resume::Continue)?;
    let stopped = Instant::now();
    let asked = asked
        .join()
        .map_err(|_| "the interrupting thread panicked")?;
    let Stop::Interrupted { tid } = stop else {
        return Err(format!("the resume ended with {stop:?}, not the interrupt").into());
    };
    check!(
        stopped.duration_since(asked) < Duration::from_secs(2),
        "the interrupt took {:?}",
        stopped.duration_since(asked)
    );
    let ip = regs(&dbg, tid)?.rip;
    check!(spin.contains(&ip), "interrupted at {ip:#x}, not in spin");
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    Ok(())
}

fn program_sigtraps_delivered() -> Result<(), Failed> {
    let rec = record("debug-engine-sigtrap", no_pie("dbg_sigtrap"))?;
    let on_trap = symbol(&rec.exe, "on_trap")?;
    // With a breakpoint in the handler: both SIGTRAPs reach it.
    let mut dbg = start(&rec.trace)?;
    dbg.set_breakpoint(on_trap)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    for i in 0..2 {
        // The recorded SIGTRAP is a signal stop first (before delivery),
        // then its handler's breakpoint.
        let stop = forward(&mut dbg, Resume::Continue)?;
        check!(
            matches!(stop, Stop::Signal { signo: 5, .. }),
            "SIGTRAP {i}: {stop:?}, not a SIGTRAP stop"
        );
        let stop = forward(&mut dbg, Resume::Continue)?;
        check!(
            matches!(stop, Stop::Breakpoint { addr, .. } if addr == on_trap),
            "SIGTRAP {i}: {stop:?}, not the handler's breakpoint"
        );
        check!(
            regs(&dbg, dbg.current_thread())?.rdi == libc_sigtrap(),
            "the handler's argument is not SIGTRAP"
        );
    }
    let status = to_the_end(&mut dbg)?;
    check!(status == ExitStatus::Exited(0), "ended with {status:?}");
    drop(dbg);
    // Stepping over the program's own int3 delivers it too.
    let mut dbg = start(&rec.trace)?;
    let tid = dbg.current_thread();
    let main = symbol(&rec.exe, "main")?;
    dbg.set_breakpoint(main)
        .map_err(|e| format!("set_breakpoint: {e}"))?;
    forward(&mut dbg, Resume::Continue)?;
    dbg.remove_breakpoint(main)
        .map_err(|e| format!("remove_breakpoint: {e}"))?;
    let (mut in_handler, mut signals) = (0, 0);
    for _ in 0..20000 {
        match forward(&mut dbg, Resume::Step(tid))? {
            // Each SIGTRAP stops first as a signal; the next step enters
            // its handler.
            Stop::Signal { signo: 5, .. } => signals += 1,
            Stop::Stepped { .. } => {
                if regs(&dbg, tid)?.rip == on_trap {
                    in_handler += 1;
                }
            }
            Stop::Exited(status) => {
                check!(status == ExitStatus::Exited(0), "ended with {status:?}");
                check!(
                    in_handler == 2 && signals == 2,
                    "stepping entered the handler {in_handler} times, not 2 ({signals} SIGTRAP stops)"
                );
                return Ok(());
            }
            other => return Err(format!("stepping stopped with {other:?}").into()),
        }
    }
    Err("20000 steps did not reach the end".into())
}

/// SIGTRAP's number.
fn libc_sigtrap() -> u64 {
    5
}

/// The median of `runs` timings of `f`.
fn median_secs(runs: usize, mut f: impl FnMut() -> Result<(), Failed>) -> Result<f64, Failed> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// scripts/bench-debug.sh: for `syscall_loop` (many events) and `dbg_spin`
/// (a second of compute in one event), the median wall time of a plain
/// replay and of the debugger's continue to the end (no breakpoint, then
/// one breakpoint hit once), the time to the first stop, and, on
/// `dbg_spin`, a reverse-continue from the end back to the breakpoint at
/// `spin` (across the whole second). Prints one line per number.
fn bench() -> Result<(), Failed> {
    let runs: usize = std::env::var("RRTEST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for (name, bp) in [("syscall_loop", "main"), ("dbg_spin", "spin")] {
        let rec = record(&format!("debug-bench-{name}"), no_pie(name))?;
        let opts = ReplayOptions {
            trace_dir: rec.trace.clone(),
            echo_output: false,
        };
        let addr = symbol(&rec.exe, bp)?;
        let plain = median_secs(runs, || {
            cargo_rrtest::replayer::replay(&opts)
                .map(drop)
                .map_err(|e| format!("replay: {e}").into())
        })?;
        let first_stop = median_secs(runs, || start(&rec.trace).map(drop))?;
        let engine = median_secs(runs, || {
            let mut dbg = start(&rec.trace)?;
            to_the_end(&mut dbg).map(drop)
        })?;
        let engine_bp = median_secs(runs, || {
            let mut dbg = start(&rec.trace)?;
            dbg.set_breakpoint(addr)
                .map_err(|e| format!("set_breakpoint: {e}"))?;
            to_the_end(&mut dbg).map(drop)
        })?;
        println!("{name}: plain replay {plain:.3} s");
        println!("{name}: debugger start (first stop) {first_stop:.3} s");
        println!(
            "{name}: debugger continue to the end {engine:.3} s ({:.2}x plain)",
            engine / plain
        );
        println!(
            "{name}: with a breakpoint at {bp} {engine_bp:.3} s ({:.2}x plain)",
            engine_bp / plain
        );
        if name == "dbg_spin" {
            let mut reverse_times = Vec::new();
            for _ in 0..runs {
                let mut dbg = start(&rec.trace)?;
                dbg.set_breakpoint(addr)
                    .map_err(|e| format!("set_breakpoint: {e}"))?;
                to_the_end(&mut dbg)?;
                let t = Instant::now();
                let stop = reverse(&mut dbg, Resume::Continue)?;
                reverse_times.push(t.elapsed().as_secs_f64());
                check!(
                    matches!(stop, Stop::Breakpoint { addr: a, .. } if a == addr),
                    "reverse-continue: {stop:?}"
                );
            }
            reverse_times.sort_by(f64::total_cmp);
            println!(
                "{name}: reverse-continue from the end to {bp} {:.3} s",
                reverse_times[reverse_times.len() / 2]
            );
        }
    }
    Ok(())
}

fn watchpoint_in_the_hook() -> Result<(), Failed> {
    let rec = record("debug-engine-watch-hook", no_pie("dbg_buffered"))?;
    let landed = symbol(&rec.exe, "landed")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_watchpoint(landed, 8, WatchKind::Write)
        .map_err(|e| format!("set_watchpoint: {e}"))?;
    let pid = dbg.real_pid();
    let running_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| format!("reading the program's name: {e}"))?;
    let mut values = Vec::new();
    loop {
        match forward(&mut dbg, Resume::Continue)? {
            Stop::Watchpoint { tid, addr, .. } => {
                check!(addr == landed, "watchpoint at {addr:#x}");
                let ip = regs(&dbg, tid)?.rip;
                check!(
                    in_program_or_libc(pid, &running_exe, ip)?,
                    "the watchpoint stopped at {ip:#x}, outside the program and libc"
                );
                let b = dbg
                    .read_memory(tid, landed, 8)
                    .map_err(|e| format!("read: {e}"))?;
                values.push(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            }
            Stop::Exited(status) => {
                check!(status == ExitStatus::Exited(0), "ended with {status:?}");
                break;
            }
            other => return Err(format!("stopped with {other:?}").into()),
        }
    }
    // The first rounds' reads are traced (their results injected, which no
    // watchpoint sees); the later ones go through the hook.
    check!(
        values.len() >= 10,
        "{} watchpoint stops over 20 buffered-or-traced reads: {values:?}",
        values.len()
    );
    check!(
        values.iter().all(|v| v % 11 == 0) && values.windows(2).all(|w| w[0] < w[1]),
        "the values read at the stops: {values:?}"
    );
    Ok(())
}

fn reverse_watchpoint_in_the_hook() -> Result<(), Failed> {
    let rec = record("debug-engine-reverse-watch-hook", no_pie("dbg_buffered"))?;
    let landed = symbol(&rec.exe, "landed")?;
    let mut dbg = start(&rec.trace)?;
    dbg.set_watchpoint(landed, 8, WatchKind::Write)
        .map_err(|e| format!("set_watchpoint: {e}"))?;
    let value = |dbg: &Debugger, tid: i32| -> Result<i64, Failed> {
        let b = dbg
            .read_memory(tid, landed, 8)
            .map_err(|e| format!("read: {e}"))?;
        Ok(i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let mut last = None;
    loop {
        match forward(&mut dbg, Resume::Continue)? {
            stop @ Stop::Watchpoint { tid, .. } => {
                last = Some((stop, state(&regs(&dbg, tid)?), value(&dbg, tid)?));
            }
            Stop::Exited(status) => {
                check!(status == ExitStatus::Exited(0), "ended with {status:?}");
                break;
            }
            other => return Err(format!("stopped with {other:?}").into()),
        }
    }
    let Some((last_stop, last_state, last_value)) = last else {
        return Err("no watchpoint stop".into());
    };
    check!(last_value == 19 * 11, "the last read left {last_value}");
    let pid = dbg.real_pid();
    let stop = reverse(&mut dbg, Resume::Continue)?;
    check!(
        stop == last_stop,
        "reverse-continue from the end: {stop:?}, not {last_stop:?}"
    );
    let tid = dbg.current_thread();
    check!(
        value(&dbg, tid)? == 18 * 11,
        "reverse-continue to the last read: landed holds {}, not the value before it",
        value(&dbg, tid)?
    );
    let pid_now = dbg.real_pid();
    let running_exe = std::fs::read_link(format!("/proc/{pid_now}/exe"))
        .map_err(|e| format!("reading the program's name: {e}"))?;
    let ip = regs(&dbg, tid)?.rip;
    check!(
        in_program_or_libc(pid_now, &running_exe, ip)?,
        "the reverse watchpoint stop is at {ip:#x}, outside the program and libc (pid {pid} then {pid_now})"
    );
    let stop = forward(&mut dbg, Resume::Continue)?;
    check!(
        stop == last_stop
            && value(&dbg, tid)? == last_value
            && state(&regs(&dbg, tid)?) == last_state,
        "forward again: {stop:?}, not the last read's stop as before"
    );
    Ok(())
}
