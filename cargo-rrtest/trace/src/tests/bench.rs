//! Throughput of the writer and the reader on a syscall-heavy mix (a
//! measurement, not a test: `#[ignore]`d; run it in release):
//! `cargo test --release -p cargo-rrtest --lib trace::tests::bench -- --ignored --nocapture`.

use std::time::Instant;

use super::gen::{header, Rng};
use crate::{Event, MemWrite, SyscallEvent, SyscallExtra, SyscallResult, TraceReader, TraceWriter};

/// What a test binary's recording mostly holds: small syscalls, time reads,
/// short reads and writes, the occasional page.
fn realistic(rng: &mut Rng, i: u64, pages: bool) -> Event {
    let tid = 4242 + (i % 3) as i32;
    let page = vec![(i as u8).wrapping_mul(7); 4096];
    let pick = if pages { rng.below(10) } else { rng.below(9) };
    let pick = if !pages && pick == 8 { 9 } else { pick };
    let (nr, args, ret, writes, extra) = match pick {
        0..=2 => (39, [0; 6], 4242, vec![], SyscallExtra::None), // getpid
        3..=4 => (
            228, // clock_gettime
            [1, 0x7ffc_0000_1000, 0, 0, 0, 0],
            0,
            vec![MemWrite {
                addr: 0x7ffc_0000_1000,
                data: (i * 1_000_003).to_le_bytes().repeat(2),
            }],
            SyscallExtra::None,
        ),
        5..=6 => (
            0, // read 64
            [3, 0x5555_5555_a000, 64, 0, 0, 0],
            64,
            vec![MemWrite {
                addr: 0x5555_5555_a000,
                data: format!("{:<63}\n", format!("line {i} of some text file")).into_bytes(),
            }],
            SyscallExtra::None,
        ),
        7 => (
            1, // write to stdout
            [1, 0x5555_5555_b000, 20, 0, 0, 0],
            20,
            vec![],
            SyscallExtra::Output {
                fd: 1,
                data: format!("test t{i:08} ... ok\n").into_bytes(),
            },
        ),
        8 => (
            0, // read a page
            [4, 0x7fff_f000_0000, 4096, 0, 0, 0],
            4096,
            vec![MemWrite {
                addr: 0x7fff_f000_0000,
                data: page,
            }],
            SyscallExtra::None,
        ),
        _ => (
            202, // futex wake
            [0x5555_5555_c000, 0x81, 1, 0, 0, 0],
            0,
            vec![],
            SyscallExtra::None,
        ),
    };
    Event::Syscall(SyscallEvent {
        tid,
        nr,
        args,
        result: SyscallResult { ret, writes, extra },
    })
}

#[test]
#[ignore = "a measurement; run in release with --nocapture"]
fn bench_write_and_read() {
    eprintln!("small syscalls only:");
    run(false);
    eprintln!("with 10% 4 KiB page reads:");
    run(true);
}

fn run(pages: bool) {
    let n = 1_000_000u64;
    let mut rng = Rng::new(99);
    let events: Vec<Event> = (0..n).map(|i| realistic(&mut rng, i, pages)).collect();
    let payload: usize = events
        .iter()
        .map(|e| match e {
            Event::Syscall(s) => s.result.writes.iter().map(|w| w.data.len()).sum::<usize>(),
            _ => 0,
        })
        .sum();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let t = Instant::now();
    let mut w = TraceWriter::create(&dir, header()).expect("create");
    for e in &events {
        w.push(e).expect("push");
    }
    w.finish().expect("finish");
    let write = t.elapsed();
    let size = std::fs::metadata(dir.join("events.zst"))
        .expect("meta")
        .len();
    let t = Instant::now();
    let mut r = TraceReader::open(&dir).expect("open");
    let mut count = 0u64;
    while let Some(e) = r.next_event().expect("event") {
        std::hint::black_box(&e);
        count += 1;
    }
    let read = t.elapsed();
    assert_eq!(count, n);
    let decoded = r.stream_offset();
    // The whole-stream check replay makes before its first event.
    let r = TraceReader::open(&dir).expect("open");
    let t = Instant::now();
    assert_eq!(r.check_stream().expect("check"), n);
    let check = t.elapsed();
    eprintln!(
        "{n} events, {payload} bytes of memory writes, decoded stream {decoded} bytes, events.zst {size} bytes ({:.1}x)",
        decoded as f64 / size as f64
    );
    eprintln!(
        "write: {:.0} ns/event ({:.0} MB/s decoded); read: {:.0} ns/event ({:.0} MB/s decoded)",
        write.as_nanos() as f64 / n as f64,
        decoded as f64 / write.as_secs_f64() / 1e6,
        read.as_nanos() as f64 / n as f64,
        decoded as f64 / read.as_secs_f64() / 1e6,
    );
    eprintln!(
        "check_stream: {:.0} ms ({:.0} MB/s decoded, {:.0}% of a full read)",
        check.as_secs_f64() * 1e3,
        decoded as f64 / check.as_secs_f64() / 1e6,
        100.0 * check.as_secs_f64() / read.as_secs_f64()
    );
}

#[test]
#[ignore = "a measurement; run in release with --nocapture"]
fn bench_add_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("test-binary");
    let mut rng = Rng::new(5);
    let data: Vec<u8> = (0..64 << 20).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(&src, &data).expect("write");
    let mut w1 = TraceWriter::create(&tmp.path().join("t1"), header()).expect("create");
    let t = Instant::now();
    w1.add_file(&src).expect("add");
    let first = t.elapsed();
    let mut w2 = TraceWriter::create(&tmp.path().join("t2"), header()).expect("create");
    let t = Instant::now();
    w2.add_file(&src).expect("add");
    let second = t.elapsed();
    let t = Instant::now();
    w2.add_file(&src).expect("add");
    let third = t.elapsed();
    eprintln!(
        "64 MiB file: first trace {:.1} ms (hash {:.0} MB/s + link), another trace {:.3} ms (link only), same trace again {:.3} ms",
        first.as_secs_f64() * 1e3,
        64.0 * 1.048576 / first.as_secs_f64(),
        second.as_secs_f64() * 1e3,
        third.as_secs_f64() * 1e3
    );
}

/// The whole-stream check against a full read, on a real trace:
/// `RRTEST_BENCH_TRACE=DIR cargo test --release -p rrtest-trace --lib
/// tests::bench::bench_check_stream -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run in release with --nocapture"]
fn bench_check_stream() {
    let Some(dir) = std::env::var_os("RRTEST_BENCH_TRACE") else {
        eprintln!("set RRTEST_BENCH_TRACE to a trace directory");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let (mut checks, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let r = TraceReader::open(&dir).expect("open");
        let t = Instant::now();
        r.check_stream().expect("check");
        checks.push(t.elapsed());
        let mut r = TraceReader::open(&dir).expect("open");
        let t = Instant::now();
        while r.next_event().expect("event").is_some() {}
        reads.push(t.elapsed());
    }
    checks.sort();
    reads.sort();
    eprintln!(
        "{}: check_stream median {:.1} ms, full read median {:.1} ms (9 runs)",
        dir.display(),
        checks[4].as_secs_f64() * 1e3,
        reads[4].as_secs_f64() * 1e3
    );
}
