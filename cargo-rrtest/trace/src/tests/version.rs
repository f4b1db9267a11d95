//! Versions: a trace from another format version is refused with a message
//! that names the version and the cargo-rrtest that wrote it.

use std::io::{Read, Write};
use std::path::Path;

use super::gen::header;
use crate::{Error, TraceReader, TraceWriter, FORMAT_VERSION};

fn write_header(dir: &Path, json: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("header.json"), json).expect("write");
}

#[test]
fn a_newer_version_header_is_a_version_mismatch_naming_the_recorder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let newer = FORMAT_VERSION + 1;
    let mut h = serde_json::to_value(header()).expect("json");
    h["format_version"] = newer.into();
    h["recorder_version"] = "9.9.9".into();
    write_header(&dir, &h.to_string());
    let err = TraceReader::open(&dir).expect_err("a newer version");
    match &err {
        Error::VersionMismatch {
            found,
            expected,
            writer,
            ..
        } => {
            assert_eq!((*found, *expected), (newer, FORMAT_VERSION));
            assert_eq!(writer, "9.9.9");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("format version {newer}")), "{msg}");
    assert!(
        msg.contains(&format!("reads versions 1 to {FORMAT_VERSION}")),
        "{msg}"
    );
    assert!(msg.contains("cargo-rrtest 9.9.9"), "{msg}");
    assert!(msg.contains(env!("CARGO_PKG_VERSION")), "{msg}");
    // The command layer maps it to BAD_TRACE: cargo-rrtest's errors.rs.
}

/// A version 1 trace (SHA-256 point digests, no `point_digest` field)
/// still opens, and says SHA-256; a trace naming a digest this build does
/// not know is refused, naming it and the recorder to use.
#[test]
fn version_1_traces_open_and_unknown_digests_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let mut h = header();
    h.format_version = 1;
    h.point_digest = None;
    TraceWriter::create(&dir, h)
        .expect("create")
        .finish()
        .expect("finish");
    let read = TraceReader::open(&dir).expect("a version 1 trace opens");
    assert_eq!(read.header().format_version, 1);
    assert_eq!(
        read.header().point_digest_kind(),
        Some(crate::PointDigest::Sha256)
    );
    drop(read);

    let path = dir.join("header.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    json["format_version"] = FORMAT_VERSION.into();
    json["point_digest"] = "blake9-64".into();
    json["recorder_version"] = "9.9.9".into();
    std::fs::write(&path, json.to_string()).expect("write");
    let err = TraceReader::open(&dir).expect_err("an unknown digest");
    assert!(
        matches!(&err, Error::UnknownDigest { found, .. } if found == "blake9-64"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("\"blake9-64\""), "{msg}");
    assert!(msg.contains("sha256, xxh3-64"), "{msg}");
    assert!(msg.contains("cargo-rrtest 9.9.9"), "{msg}");
    assert!(crate::read_header(&dir).is_err());
}

#[test]
fn the_version_is_checked_before_the_rest_of_the_header() {
    // A future header need not have our fields at all.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    write_header(
        &dir,
        r#"{"format_version": 9, "recorder_version": "3.0.0", "argv": 5}"#,
    );
    match TraceReader::open(&dir) {
        Err(Error::VersionMismatch {
            found: 9, writer, ..
        }) => assert_eq!(writer, "3.0.0"),
        other => panic!("{other:?}"),
    }
    // Without a recorder version, the message says it is unknown.
    write_header(&dir, r#"{"format_version": 0}"#);
    let err = TraceReader::open(&dir).expect_err("version 0");
    assert!(
        matches!(err, Error::VersionMismatch { found: 0, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("unknown"), "{err}");
}

#[test]
fn an_event_stream_of_another_version_is_a_version_mismatch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    TraceWriter::create(&dir, header())
        .expect("create")
        .finish()
        .expect("finish");
    // Decompress, bump the stream version, recompress.
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(dir.join("events.zst")).expect("open"))
        .expect("decoder")
        .read_to_end(&mut raw)
        .expect("decompress");
    assert_eq!(&raw[..8], b"RRTEVNT\0");
    raw[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
    enc.write_all(&raw).expect("compress");
    std::fs::write(dir.join("events.zst"), enc.finish().expect("finish")).expect("write");
    match TraceReader::open(&dir) {
        Err(e @ Error::VersionMismatch { found: 2, .. }) => {
            assert!(e.to_string().contains(env!("CARGO_PKG_VERSION")), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// Format version 5 brought the x87/SSE, signal-mask and extended-state
/// tracee writes: a trace of them written now says the current version
/// and reads back; a version 4 trace (memory and register writes only)
/// still opens and reads.
#[test]
fn tracee_writes_of_the_new_kinds_are_version_5_and_version_4_traces_still_read() {
    use crate::{Event, WriteKind};
    const { assert!(FORMAT_VERSION >= 5) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, version: u32, events: &[Event]| {
        let dir = tmp.path().join(name);
        let mut h = header();
        h.format_version = version;
        let mut w = TraceWriter::create(&dir, h).expect("create");
        for e in events {
            w.push(e).expect("push");
        }
        w.finish().expect("finish");
        dir
    };
    let read = |dir: &Path| -> (u32, Vec<Event>) {
        let r = TraceReader::open(dir).expect("opens");
        let v = r.header().format_version;
        (v, r.collect::<Result<_, _>>().expect("events"))
    };
    let new = vec![
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::FpRegs,
            addr: 0,
            bytes: vec![0x5a; 512],
        },
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::SigMask,
            addr: 0,
            bytes: 0x4800u64.to_ne_bytes().to_vec(),
        },
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::XState,
            addr: 0,
            bytes: vec![0xa5; 8 + 2688],
        },
    ];
    let dir = write("v5", FORMAT_VERSION, &new);
    assert_eq!(read(&dir), (FORMAT_VERSION, new));
    let old = vec![
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::Memory,
            addr: 0x1234,
            bytes: vec![1, 2, 3],
        },
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::Regs,
            addr: 0,
            bytes: vec![0; 216],
        },
    ];
    let dir = write("v4", 4, &old);
    assert_eq!(read(&dir), (4, old));
}

/// Format version 6: a `Syscall` record with the result -ENOSYS is a call
/// the kernel did not run, which replay skips whatever the call (one a
/// tracee's `PTRACE_SYSEMU` skipped among them). The record's layout is
/// unchanged: a version 5 trace with such a record still reads, and one
/// written now says 6.
#[test]
fn a_skipped_call_is_version_6_and_version_5_traces_still_read() {
    use crate::{Event, SyscallEvent, SyscallResult};
    const { assert!(FORMAT_VERSION >= 6) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let skipped = vec![Event::Syscall(SyscallEvent {
        tid: 11,
        nr: libc::SYS_rt_sigreturn,
        args: [0; 6],
        result: SyscallResult {
            ret: -i64::from(libc::ENOSYS),
            ..Default::default()
        },
    })];
    for version in [5, FORMAT_VERSION] {
        let dir = tmp.path().join(format!("v{version}"));
        let mut h = header();
        h.format_version = version;
        let mut w = TraceWriter::create(&dir, h).expect("create");
        w.push(&skipped[0]).expect("push");
        w.finish().expect("finish");
        let r = TraceReader::open(&dir).expect("opens");
        assert_eq!(r.header().format_version, version);
        let events: Vec<Event> = r.collect::<Result<_, _>>().expect("events");
        assert_eq!(events, skipped);
    }
}

/// Format version 7 brought the tracee writes made at a syscall-entry
/// stop (registers and memory, applied by replay at that syscall's entry):
/// a trace of them written now says 7 and reads back, their kind bytes 5
/// and 6; a version 6 trace (the kinds before) still opens and reads.
#[test]
fn tracee_writes_at_a_syscall_entry_are_version_7_and_version_6_traces_still_read() {
    use crate::{codec, Event, WriteKind};
    const { assert!(FORMAT_VERSION >= 7) };
    let tmp = tempfile::tempdir().expect("tempdir");
    let at_entry = vec![
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::RegsAtEntry,
            addr: 0,
            bytes: vec![0x11; 216],
        },
        Event::TraceeWrite {
            tid: 10,
            target: 11,
            kind: WriteKind::MemoryAtEntry,
            addr: 0x5555_0000_1000,
            bytes: b"/dev/null\0".to_vec(),
        },
    ];
    let mut buf = Vec::new();
    for (e, byte) in at_entry.iter().zip([5u8, 6]) {
        buf.clear();
        codec::encode_payload(&mut buf, e).expect("encodable");
        // tid 10 and target 11, zigzag encoded, then the kind.
        assert_eq!(&buf[..3], &[20, 22, byte]);
    }
    let old = vec![Event::TraceeWrite {
        tid: 10,
        target: 11,
        kind: WriteKind::Regs,
        addr: 0,
        bytes: vec![0x22; 216],
    }];
    for (version, events) in [(FORMAT_VERSION, &at_entry), (6, &old)] {
        let dir = tmp.path().join(format!("v{version}"));
        let mut h = header();
        h.format_version = version;
        let mut w = TraceWriter::create(&dir, h).expect("create");
        for e in events {
            w.push(e).expect("push");
        }
        w.finish().expect("finish");
        let r = TraceReader::open(&dir).expect("opens");
        assert_eq!(r.header().format_version, version);
        let read: Vec<Event> = r.collect::<Result<_, _>>().expect("events");
        assert_eq!(&read, events);
    }
    assert!(WriteKind::RegsAtEntry.at_entry() && WriteKind::MemoryAtEntry.at_entry());
    assert!(!WriteKind::Regs.at_entry() && !WriteKind::Memory.at_entry());
    assert_eq!(WriteKind::RegsAtEntry.size(), Some(216));
    assert_eq!(WriteKind::MemoryAtEntry.size(), None);
}

/// Format version 8 brought memory words at execution points: a point
/// with words ends its record with them and reads back; a point without
/// is encoded byte for byte as before (so version 7 traces read as they
/// were); a word count of 0 or above the most is corruption.
#[test]
fn point_words_are_version_8_and_points_without_are_encoded_as_before() {
    use crate::{codec, Event, ExecPoint, PointWords, MAX_POINT_WORDS, POINT_REGS};
    assert_eq!(FORMAT_VERSION, 8);
    let mut words = PointWords::NONE;
    assert!(words.push(0x7fff_e000_1b00, 0x458));
    assert!(words.push(0x5555_5555_0000, u64::MAX));
    let bare = ExecPoint {
        ip: 0x5555_5555_1234,
        regs: [7; POINT_REGS],
        digest: 0xfeed,
        words: PointWords::NONE,
    };
    let with = ExecPoint { words, ..bare };
    let (mut old, mut new) = (Vec::new(), Vec::new());
    codec::encode_payload(
        &mut old,
        &Event::Preempt {
            tid: 3,
            point: bare,
        },
    )
    .expect("encodable");
    codec::encode_payload(
        &mut new,
        &Event::Preempt {
            tid: 3,
            point: with,
        },
    )
    .expect("encodable");
    // The bare point's bytes: tid, ip, 19 registers of one byte, digest.
    assert_eq!(old.len(), 1 + 7 + POINT_REGS + 8);
    assert_eq!(&new[..old.len()], &old[..]);
    // Then the count and each word's address and value.
    assert_eq!(new[old.len()], 2);
    assert_eq!(new.len(), old.len() + 1 + (7 + 8) * 2);
    for (bytes, point) in [(&old, bare), (&new, with)] {
        match codec::decode_payload(codec::tag::PREEMPT, bytes) {
            Ok(codec::Record::Event(Event::Preempt { point: read, .. })) => {
                assert_eq!(read, point)
            }
            other => panic!("{other:?}"),
        }
    }
    // A count of zero, or above the most, is refused.
    for n in [0u8, MAX_POINT_WORDS as u8 + 1] {
        let mut bad = old.clone();
        bad.push(n);
        bad.extend_from_slice(&[0u8; 9 * 12]);
        let err = codec::decode_payload(codec::tag::PREEMPT, &bad).expect_err("refused");
        assert!(err.reason.contains("words"), "{err:?}");
    }
    let mut full = PointWords::NONE;
    for k in 0..MAX_POINT_WORDS as u64 {
        assert!(full.push(k, k));
    }
    assert!(!full.push(99, 99));
    assert_eq!(full.len(), MAX_POINT_WORDS);
}
