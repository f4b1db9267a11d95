//! The syscall buffer (issue 5), judged on real recordings:
//!
//! - `syscallbuf::loop::*`: syscall loops (glibc's wrappers, the vDSO's
//!   fallback, raw `syscall` instructions in Rust code, a mix of every kind
//!   of buffered syscall) record with at least
//!   95% of their syscalls buffered through patched sites, verify, and
//!   replay the same output; with `--no-syscallbuf` nothing is buffered and
//!   the output is the same;
//! - `syscallbuf::desched::pipe_block`: a thread blocked in a buffered read
//!   while another writes later is unwound (`desched_events`);
//! - `syscallbuf::signals::handler_redirect`: timer signals during buffered
//!   syscalls, handlers that make buffered syscalls, walk the stack (never
//!   seeing a stub) and rewrite the interrupted context.
//!
//! Output, exit status and the events themselves are compared by the
//! `recorder::*::record_replay` trials of the same fixtures; these trials
//! check what the buffer itself promises.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::recorder::{self, Args, Spec, C_SPECS, RUST_SPECS};
use crate::recorder_run::{self as run, TrialDir};

fn spec(name: &str) -> Spec {
    *C_SPECS
        .iter()
        .chain(RUST_SPECS)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no fixture spec {name}"))
}

/// `info --json`'s `stats`, and `verified`.
fn stats(trace: &Path) -> Result<serde_json::Value, Failed> {
    let info = run::info_json(trace)?;
    info.expect_code(0)?;
    let json: serde_json::Value = serde_json::from_slice(&info.stdout)
        .map_err(|e| format!("info --json printed no JSON ({e})\n{}", info.describe()))?;
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
    run::expect_same_bytes(
        "stdout (with and without the buffer)",
        &rec.stdout,
        &plain.stdout,
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

fn handlers_used_the_buffer(st: &serde_json::Value) -> Result<(), Failed> {
    check!(stat(st, "signals") >= 30, "fewer than 30 signals delivered");
    // 40 syscalls in each of 30 handlers, plus the loop's.
    check!(
        stat(st, "buffered_syscalls") >= 1200,
        "the handlers' syscalls were not buffered"
    );
    Ok(())
}

/// All syscall-buffer trials.
pub fn trials() -> Vec<Trial> {
    let gcc = crate::recorder_build::gcc_missing();
    let cannot_record = run::recording_unavailable();
    let mut trials = Vec::new();
    let loops: [(&str, u64); 5] = [
        // 2000 write + pread pairs; glibc's wrappers.
        ("syscall_loop-pie", 4000),
        // 200 rounds of 18: open, close, lseek, getdents64, gettimeofday,
        // time twice, writev, pwritev, poll, epoll_wait, sendto, recvfrom,
        // sendmsg, recvfrom, futex wake, lseek, readv.
        ("buffered_mix-pie", 3600),
        // 200 rounds of 22 identity, permission and file-system syscalls.
        ("buffered_more-pie", 4400),
        // 2000 clock_gettime: glibc's vDSO fallback.
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
    for (area, name, expect) in others {
        let s = spec(name);
        trials.push(
            Trial::test(format!("syscallbuf::{area}::{name}"), move || {
                recorded_stats(&format!("syscallbuf-{area}-{name}"), &s, expect)
            })
            .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
        );
    }
    trials
}
