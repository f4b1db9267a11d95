//! The golden trace: `tests-data/golden-v1/`, written once by this code and
//! committed. It must keep reading to exactly these events and this header
//! for as long as version 1 exists; and today's encoder must still produce
//! its decoded stream byte for byte.
//!
//! Regenerate it only on purpose (a deliberate format change comes with a new
//! version and a new golden directory):
//! `RRTEST_BLESS_GOLDEN=1 cargo test -p cargo-rrtest --lib golden -- --ignored`.

use std::io::Read;
use std::path::PathBuf;

use super::roundtrip::encode_stream;
use crate::{
    file_id_of, CpuidLeaf, Event, ExecEvent, ExitStatus, FileId, Header, MemWrite, Outcome,
    ScheduleStats, SignalEvent, SignalKind, Stats, SyscallEvent, SyscallExtra, SyscallResult,
    TraceReader, TraceWriter, VdsoCopy,
};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests-data/golden-v1")
}

/// The content of the one file in `files/`.
const EXE: &[u8] = b"\x7fELF golden executable\n";

fn exe_id() -> FileId {
    FileId("2570bf4c489a1023574021fd04562cf2".into())
}

fn golden_header() -> Header {
    Header {
        format_version: 1,
        recorder_version: "0.1.0".into(),
        protocol_version: 1,
        argv: vec!["./golden".into(), "--test-threads=1".into()],
        exe: "/work/golden".into(),
        env: vec!["PATH=/usr/bin".into(), "RUST_BACKTRACE=1".into()],
        cwd: "/work".into(),
        kernel: "Linux 6.8.0 x86_64".into(),
        cpuid: vec![
            CpuidLeaf {
                leaf: 0,
                subleaf: 0,
                regs: [0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
            },
            CpuidLeaf {
                leaf: 7,
                subleaf: 0,
                regs: [0, 0x029c_6fbf, 0x4000_0000, 0xbc00_0400],
            },
        ],
        recorded_at: "2026-11-27T05:00:00Z".into(),
        tracee_cpu: None,
        initial_sigmask: None,
        initial_ignored: None,
        stack_limit: None,
        env_removed: Vec::new(),
        hidden_paths: Vec::new(),
        signal_traps_cleared: false,
        own_vdso: false,
        point_digest: None,
        outcome: Some(Outcome::Exited { code: 101 }),
        unreplayable: vec!["syscall 451 (unknown)".into()],
        stats: Stats {
            events: 17,
            traced_syscalls: 5,
            buffered_syscalls: 0,
            patched_sites: 0,
            patched_ahead: 0,
            aborted_records: 0,
            desched_events: 0,
            desched_signals: 0,
            signals: 1,
            async_events: 0,
            threads: 2,
            rdtsc: 2,
            rdtsc_buffered: 0,
            leaked_processes: 0,
            schedule: ScheduleStats::default(),
        },
        verification: None,
        loaders: Vec::new(),
        interpreters: Vec::new(),
        host: None,
        chaos: None,
    }
}

fn golden_events() -> Vec<Event> {
    vec![
        Event::Exec(ExecEvent {
            tid: 4242,
            exe: "/work/golden".into(),
            exe_file: exe_id(),
            at_random: *b"0123456789abcdef",
            sp: 0x7fff_ffff_e3a0,
            ip: 0x7fff_f7fe_3290,
            vdso_copy: VdsoCopy::Unrecorded,
        }),
        Event::Syscall(SyscallEvent {
            tid: 4242,
            nr: 12, // brk(0)
            args: [0, 0, 0, 0, 0, 0],
            result: SyscallResult {
                ret: 0x5555_5555_9000,
                writes: vec![],
                extra: SyscallExtra::None,
            },
        }),
        Event::Syscall(SyscallEvent {
            tid: 4242,
            nr: 9, // mmap of the executable
            args: [0, 0x2000, 5, 0x802, 3, 0],
            result: SyscallResult {
                ret: 0x7fff_f7fc_0000,
                writes: vec![],
                extra: SyscallExtra::MappedFile {
                    file: exe_id(),
                    path: "/work/golden".into(),
                },
            },
        }),
        Event::Syscall(SyscallEvent {
            tid: 4242,
            nr: 0, // read(3, buf, 8) = 8
            args: [3, 0x7fff_ffff_d000, 8, 0, 0, 0],
            result: SyscallResult {
                ret: 8,
                writes: vec![
                    MemWrite {
                        addr: 0x7fff_ffff_d000,
                        data: b"hello\0\0\x01".to_vec(),
                    },
                    MemWrite {
                        addr: 0x1000,
                        data: vec![],
                    },
                ],
                extra: SyscallExtra::None,
            },
        }),
        Event::Rdtsc {
            tid: 4242,
            ip: 0x5555_5555_1234,
            tsc: 0x0123_4567_89ab_cdef,
            aux: None,
        },
        Event::Rdtsc {
            tid: 4242,
            ip: 0x5555_5555_1240,
            tsc: u64::MAX,
            aux: Some(3),
        },
        Event::Syscall(SyscallEvent {
            tid: 4242,
            nr: 56, // clone
            args: [
                0x003d_0f00,
                0x7fff_f700_0000,
                0x7fff_f7ff_f990,
                0x7fff_f7ff_f990,
                0x7fff_f7ff_f6c0,
                0,
            ],
            result: SyscallResult {
                ret: 4243,
                writes: vec![],
                extra: SyscallExtra::None,
            },
        }),
        Event::NewTask {
            parent: 4242,
            child: 4243,
            flags: 0x003d_0f00,
        },
        Event::SyscallEntry {
            tid: 4243,
            nr: 202,
            args: [0x7fff_f7ff_f990, 0x80, 4243, 0, 0, u64::MAX],
        },
        Event::Signal(SignalEvent {
            tid: 4242,
            signo: 11,
            siginfo: (0..128u8).collect(),
            kind: SignalKind::Synchronous {
                ip: 0x5555_5555_2000,
            },
        }),
        Event::Signal(SignalEvent {
            tid: 4242,
            signo: 10,
            siginfo: vec![10, 0, 0, 0],
            kind: SignalKind::AtSyscallExit,
        }),
        Event::SyscallExit {
            tid: 4243,
            nr: 202,
            result: SyscallResult {
                ret: -110, // -ETIMEDOUT
                writes: vec![],
                extra: SyscallExtra::Output {
                    fd: 2,
                    data: b"thread panicked\n".to_vec(),
                },
            },
        },
        Event::Unsupported {
            tid: 4243,
            what: "syscall 451 (unknown)".into(),
        },
        Event::ThreadExit { tid: 4243 },
        Event::Signal(SignalEvent {
            tid: 4242,
            signo: 14,
            siginfo: vec![],
            kind: SignalKind::Asynchronous {
                ip: 0xffff_ffff_ffff_fff0,
            },
        }),
        Event::ProcessExit {
            pid: 4242,
            status: ExitStatus::Signaled {
                signo: 6,
                core: true,
            },
        },
        Event::ProcessExit {
            pid: -1,
            status: ExitStatus::Exited(i32::MIN),
        },
    ]
}

#[test]
fn the_golden_trace_reads_to_the_same_header_and_events() {
    let r = TraceReader::open(&golden_dir()).expect("open the golden trace");
    assert_eq!(r.header(), &golden_header());
    assert_eq!(r.header().stats.events, golden_events().len() as u64);
    let path = r.file_path(&exe_id());
    assert_eq!(std::fs::read(&path).expect("files/ copy"), EXE);
    let events: Vec<Event> = r.collect::<Result<_, _>>().expect("events");
    assert_eq!(events, golden_events());
}

#[test]
fn the_golden_stream_is_what_the_encoder_writes_today() {
    let mut raw = Vec::new();
    let file = std::fs::File::open(golden_dir().join("events.zst")).expect("golden events.zst");
    zstd::stream::read::Decoder::new(file)
        .expect("decoder")
        .read_to_end(&mut raw)
        .expect("decompress");
    assert_eq!(raw, encode_stream(&golden_events()));
}

#[test]
fn the_golden_file_id_is_its_sha256_prefix() {
    assert_eq!(file_id_of(EXE), exe_id());
}

#[test]
#[ignore = "writes tests-data/golden-v1; run only to regenerate it on purpose"]
fn bless_golden() {
    if std::env::var_os("RRTEST_BLESS_GOLDEN").is_none() {
        eprintln!(
            "set RRTEST_BLESS_GOLDEN=1 to rewrite {}",
            golden_dir().display()
        );
        return;
    }
    let dir = golden_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = tmp.path().join("golden");
    std::fs::write(&exe, EXE).expect("write");
    let mut w = TraceWriter::create(&dir, golden_header()).expect("create");
    assert_eq!(w.add_file(&exe).expect("add_file"), exe_id());
    for e in golden_events() {
        w.push(&e).expect("push");
    }
    w.finish().expect("finish");
}
