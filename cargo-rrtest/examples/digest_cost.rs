//! Where an execution-point digest's time goes, on a real stopped tracee:
//! `scripts/bench-digest.sh` runs it (release build) on a thread fixture.
//!
//! Usage: `digest_cost [--rounds N] -- COMMAND [ARGS...]`: runs COMMAND,
//! lets it run for 100 ms (its threads start, its heap grows), stops its
//! main thread with ptrace, and times, N rounds each (median, µs): the
//! parts of a digest (the FPU registers, reading `/proc/TID/maps`, parsing
//! it, reading the memory with one `process_vm_readv` per range or with
//! one for all, hashing with SHA-256 or XXH3-64) and the whole digest of
//! each kind. Prints one JSON object. Then kills COMMAND.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cargo_rrtest::tracee;
use rrtest_sys::ptrace;
use rrtest_sys::RemoteMem;
use rrtest_trace::PointDigest;

fn median_us(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 200;
    let mut i = 0;
    while i < args.len() && args[i] != "--" {
        match args[i].as_str() {
            "--rounds" => {
                rounds = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(200);
                i += 2;
            }
            other => {
                eprintln!("digest_cost: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let cmd = &args[(i + 1).min(args.len())..];
    if cmd.is_empty() {
        eprintln!("usage: digest_cost [--rounds N] -- COMMAND [ARGS...]");
        std::process::exit(2);
    }
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("digest_cost: cannot run {}: {e}", cmd[0]);
            std::process::exit(2)
        });
    std::thread::sleep(Duration::from_millis(100));
    let tid = child.id() as i32;
    let result = measure(tid, rounds);
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("digest_cost: {e}");
            std::process::exit(1);
        }
    }
}

fn measure(tid: i32, rounds: usize) -> std::io::Result<String> {
    ptrace::seize(tid)?;
    ptrace::interrupt(tid)?;
    ptrace::wait_tid(tid)?;
    let rsp = ptrace::getregs(tid)?.rsp;
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
    let ranges = tracee::digest_ranges(&maps, rsp);
    let bytes: u64 = ranges.iter().map(|&(lo, hi)| hi - lo).sum();
    let mut buf = Vec::new();
    let read = tracee::read_ranges(tid, &ranges, &mut buf);
    let fpregs = ptrace::getfpregs(tid)?;
    // The two ways of reading give the same bytes, so the same digests.
    let mut per_range = Vec::new();
    let mem = RemoteMem::new(tid);
    for &(lo, hi) in &ranges {
        let mut b = vec![0u8; (hi - lo) as usize];
        if mem.read_exact(lo, &mut b).is_ok() {
            per_range.push((lo, b));
        }
    }
    let same = per_range.len() == read.len()
        && per_range
            .iter()
            .zip(&read)
            .all(|((a, b), (lo, r))| a == lo && b[..] == buf[r.clone()]);

    let fp_us = median_us(rounds, || {
        let _ = ptrace::getfpregs(tid);
    });
    let maps_us = median_us(rounds, || {
        let _ = std::fs::read_to_string(format!("/proc/{tid}/maps"));
    });
    let maps_file = std::fs::File::open(format!("/proc/{tid}/maps"))?;
    let maps_pread_us = median_us(rounds, || {
        use std::os::unix::fs::FileExt;
        let mut text = vec![0u8; 64 << 10];
        let mut at = 0;
        while let Ok(n) = maps_file.read_at(&mut text[at..], at as u64) {
            if n == 0 {
                break;
            }
            at += n;
            if at == text.len() {
                text.resize(at * 2, 0);
            }
        }
    });
    let parse_us = median_us(rounds, || {
        let _ = tracee::digest_ranges(&maps, rsp);
    });
    let read_each_us = median_us(rounds, || {
        for &(lo, hi) in &ranges {
            let mut b = vec![0u8; (hi - lo) as usize];
            let _ = mem.read_exact(lo, &mut b);
        }
    });
    let read_batch_us = median_us(rounds, || {
        let _ = tracee::read_ranges(tid, &ranges, &mut buf);
    });
    let sha_us = median_us(rounds, || {
        let _ = tracee::hash_state(PointDigest::Sha256, &fpregs, &read, &buf);
    });
    let xxh3_us = median_us(rounds, || {
        let _ = tracee::hash_state(PointDigest::Xxh3, &fpregs, &read, &buf);
    });
    let sha_total_us = median_us(rounds, || {
        let _ = tracee::state_digest_as(PointDigest::Sha256, tid, rsp);
    });
    let xxh3_total_us = median_us(rounds, || {
        let _ = tracee::state_digest_as(PointDigest::Xxh3, tid, rsp);
    });
    let json = serde_json::json!({
        "rounds": rounds,
        "ranges": ranges.len(),
        "maps_lines": maps.lines().count(),
        "bytes": bytes,
        "batched_read_same_bytes": same,
        "median_us": {
            "fpregs": fp_us,
            "maps_read": maps_us,
            "maps_pread_open_fd": maps_pread_us,
            "maps_parse": parse_us,
            "read_per_range": read_each_us,
            "read_batched": read_batch_us,
            "hash_sha256": sha_us,
            "hash_xxh3": xxh3_us,
            "digest_sha256": sha_total_us,
            "digest_xxh3": xxh3_total_us,
        },
    });
    Ok(serde_json::to_string_pretty(&json).expect("json"))
}
