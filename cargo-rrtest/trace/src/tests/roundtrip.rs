//! Round trips: every event variant and field, through the payload codec, the
//! framed stream, and a whole trace directory.

use super::gen::{header, Rng, KINDS};
use crate::codec::{self, Record};
use crate::stream::{StreamReader, StreamWriter};
use crate::{
    Event, ExitStatus, Outcome, SyscallEvent, SyscallExtra, SyscallResult, TraceReader,
    TraceWriter, WriteKind,
};

/// Encodes `events` as a decoded stream (no compression).
pub fn encode_stream(events: &[Event]) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new()).expect("writing to a Vec");
    for e in events {
        w.push(e).expect("encodable event");
    }
    w.finish().expect("writing to a Vec")
}

/// Decodes a stream to its events and the error that stopped it, if any.
pub fn decode_stream(bytes: &[u8]) -> (Vec<Event>, Option<crate::stream::StreamError>) {
    let mut out = Vec::new();
    let mut r = match StreamReader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (out, Some(e)),
    };
    loop {
        match r.next_event() {
            Ok(Some(e)) => out.push(e),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn every_variant_round_trips_through_the_payload_codec() {
    let mut rng = Rng::new(1);
    let mut buf = Vec::new();
    let mut seen = [0u32; KINDS as usize];
    for i in 0..2_000 * KINDS {
        let ev = rng.event_of(i);
        buf.clear();
        let tag = codec::encode_payload(&mut buf, &ev).expect("encodable");
        let back = codec::decode_payload(tag, &buf)
            .unwrap_or_else(|e| panic!("event {i} {ev:?} does not decode: {e:?}"));
        assert_eq!(back, Record::Event(ev.clone()), "event {i}");
        seen[(i % KINDS) as usize] += 1;
    }
    assert!(seen.iter().all(|n| *n == 2_000));
}

#[test]
fn random_sequences_round_trip_through_the_stream() {
    for seed in 0..20 {
        let mut rng = Rng::new(100 + seed);
        let n = rng.below(500) as usize;
        let events: Vec<Event> = (0..n).map(|_| rng.event()).collect();
        let bytes = encode_stream(&events);
        let (back, err) = decode_stream(&bytes);
        assert_eq!(err, None, "seed {seed}");
        assert_eq!(back, events, "seed {seed}");
    }
}

#[test]
fn varint_edges_round_trip() {
    let mut buf = Vec::new();
    for shift in 0..64 {
        for v in [
            (1u64 << shift).wrapping_sub(1),
            1u64 << shift,
            (1u64 << shift) + 1,
        ] {
            buf.clear();
            codec::put_uvarint(&mut buf, v);
            assert!(buf.len() <= codec::MAX_VARINT_LEN);
            let mut d = codec::Dec::new(&buf);
            assert_eq!(d.uvarint("v"), Ok(v));
            d.finish().expect("whole varint consumed");
            let mut arr = [0u8; codec::MAX_VARINT_LEN];
            let n = codec::uvarint_into(&mut arr, v);
            assert_eq!(&arr[..n], &buf[..]);
        }
    }
    for v in [0i64, -1, 1, i64::MIN, i64::MAX, -64, 63, -65, 64] {
        assert_eq!(codec::unzigzag(codec::zigzag(v)), v);
    }
    assert_eq!(codec::zigzag(-1), 1);
    assert_eq!(codec::zigzag(1), 2);
}

#[test]
fn common_syscalls_encode_compactly() {
    // getpid(): tid, nr, no args, ret, no writes, no extra.
    let ev = Event::Syscall(SyscallEvent {
        tid: 4_000_000,
        nr: 39,
        args: [0; 6],
        result: SyscallResult {
            ret: 4_000_000,
            writes: vec![],
            extra: SyscallExtra::None,
        },
    });
    let mut buf = Vec::new();
    codec::encode_payload(&mut buf, &ev).expect("encodable");
    // tid (4) + nr (1) + mask (1) + ret (4) + count (1) + extra (1)
    assert_eq!(buf.len(), 12, "{buf:02x?}");

    // read(3, buf, 64) = 64: the 64 bytes plus 25 bytes, 14 of them the
    // two 47-bit addresses (which zstd then finds repeated).
    let ev = Event::Syscall(SyscallEvent {
        tid: 1234,
        nr: 0,
        args: [3, 0x7ffc_1234_5678, 64, 0, 0, 0],
        result: SyscallResult {
            ret: 64,
            writes: vec![crate::MemWrite {
                addr: 0x7ffc_1234_5678,
                data: vec![7; 64],
            }],
            extra: SyscallExtra::None,
        },
    });
    buf.clear();
    codec::encode_payload(&mut buf, &ev).expect("encodable");
    assert_eq!(buf.len(), 64 + 25, "{buf:02x?}");
}

#[test]
fn an_rdtsc_sites_patch_is_flag_bit_2_and_older_patches_read_the_same() {
    let patch = |rdtsc| {
        Event::Patch(crate::PatchEvent {
            tid: 7,
            nr: 0,
            new_page: None,
            stub_addr: 0x1000,
            stub: vec![0xcc; 3],
            site: 0x2000,
            site_bytes: vec![0xe9, 0, 0, 0, 0],
            resume: 0x1000,
            ahead: None,
            rdtsc,
        })
    };
    let mut buf = Vec::new();
    let tag = codec::encode_payload(&mut buf, &patch(true)).expect("encodable");
    // tid (1), nr (1), then the flags byte.
    assert_eq!(buf[2], 0b100, "{buf:02x?}");
    match codec::decode_payload(tag, &buf).expect("decodable") {
        Record::Event(e) => assert_eq!(e, patch(true)),
        other => panic!("{other:?}"),
    }
    // A syscall site's patch (what older traces hold): bit 2 clear.
    buf.clear();
    codec::encode_payload(&mut buf, &patch(false)).expect("encodable");
    assert_eq!(buf[2], 0, "{buf:02x?}");
    match codec::decode_payload(tag, &buf).expect("decodable") {
        Record::Event(e) => assert_eq!(e, patch(false)),
        other => panic!("{other:?}"),
    }
    // No flag beyond bit 2.
    buf[2] = 0b1000;
    assert!(codec::decode_payload(tag, &buf).is_err());
}

/// An `Exec` record of format version 4 ends with the vDSO copy's address
/// (0: none); one of an older version ends at `ip` and reads as
/// `Unrecorded`; an address of 0 cannot be written, and nothing may follow
/// the address.
#[test]
fn an_execs_vdso_copy_is_last_and_older_execs_read_as_unrecorded() {
    let exec = |vdso_copy| {
        Event::Exec(crate::ExecEvent {
            tid: 7,
            exe: "/x".into(),
            exe_file: crate::FileId("0123456789abcdef0123456789abcdef".into()),
            at_random: [1; 16],
            sp: 0x10,
            ip: 0x20,
            vdso_copy,
        })
    };
    let encoded = |e: &Event| {
        let mut buf = Vec::new();
        let tag = codec::encode_payload(&mut buf, e).expect("encodable");
        (tag, buf)
    };
    let (tag, older) = encoded(&exec(crate::VdsoCopy::Unrecorded));
    let (_, absent) = encoded(&exec(crate::VdsoCopy::Absent));
    let (_, at) = encoded(&exec(crate::VdsoCopy::At(0x7fff_f7fc_7000)));
    // The same record with one field more: 0, or the address's varint.
    assert_eq!(absent, [older.as_slice(), &[0]].concat());
    assert_eq!(&at[..older.len()], older.as_slice());
    assert_eq!(at.len(), older.len() + 7);
    for (bytes, copy) in [
        (&older, crate::VdsoCopy::Unrecorded),
        (&absent, crate::VdsoCopy::Absent),
        (&at, crate::VdsoCopy::At(0x7fff_f7fc_7000)),
    ] {
        assert_eq!(
            codec::decode_payload(tag, bytes).expect("decodable"),
            Record::Event(exec(copy))
        );
    }
    let mut more = at.clone();
    more.push(0);
    assert!(codec::decode_payload(tag, &more).is_err());
    let mut buf = Vec::new();
    assert!(codec::encode_payload(&mut buf, &exec(crate::VdsoCopy::At(0))).is_err());
}

#[test]
fn a_whole_trace_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t");
    let mut rng = Rng::new(7);
    let events: Vec<Event> = (0..5_000).map(|_| rng.event()).collect();
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    for e in &events {
        w.push(e).expect("push");
    }
    w.header_mut().outcome = Some(Outcome::Exited { code: 3 });
    w.header_mut()
        .unreplayable
        .push("syscall 442 (unknown)".into());
    w.header_mut().stats.traced_syscalls = 17;
    w.finish().expect("finish");
    super::gen::add_file_copies(&trace, &events);

    let mut r = TraceReader::open(&trace).expect("open");
    let mut expected = header();
    expected.outcome = Some(Outcome::Exited { code: 3 });
    expected.unreplayable.push("syscall 442 (unknown)".into());
    expected.stats.traced_syscalls = 17;
    expected.stats.events = events.len() as u64;
    assert_eq!(r.header(), &expected);
    let mut back = Vec::new();
    while let Some(e) = r.next_event().expect("event") {
        back.push(e);
    }
    assert_eq!(back, events);
    assert!(!r.is_truncated());
    // The end is sticky.
    assert!(r.next_event().expect("still the end").is_none());
    // The iterator view gives the same.
    let again: Vec<Event> = TraceReader::open(&trace)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("events");
    assert_eq!(again, events);
}

#[test]
fn an_empty_trace_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("empty");
    TraceWriter::create(&trace, header())
        .expect("create")
        .finish()
        .expect("finish");
    let mut r = TraceReader::open(&trace).expect("open");
    assert_eq!(r.next_event().expect("end"), None);
    assert_eq!(r.header().stats.events, 0);
    assert_eq!(r.header().outcome, None);
}

#[test]
fn trace_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("perm");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    w.push(&Event::ThreadExit { tid: 1 }).expect("push");
    w.finish().expect("finish");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&trace), 0o700);
    assert_eq!(mode(&trace.join("files")), 0o700);
    assert_eq!(mode(&trace.join("header.json")), 0o600);
    assert_eq!(mode(&trace.join("events.zst")), 0o600);
}

#[test]
fn create_refuses_a_non_empty_directory_and_accepts_an_empty_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("x"), b"x").expect("write");
    let err = TraceWriter::create(dir.path(), header()).expect_err("non-empty");
    assert!(err.to_string().contains("not empty"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    TraceWriter::create(&empty, header())
        .expect("empty dir is fine")
        .finish()
        .expect("finish");
}

#[test]
fn invalid_events_are_refused_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let bad = Event::Syscall(SyscallEvent {
        tid: 1,
        nr: 9,
        args: [0; 6],
        result: SyscallResult {
            ret: 0,
            writes: vec![],
            extra: SyscallExtra::MappedFile {
                file: crate::FileId("../../etc/passwd".into()),
                path: "/etc/passwd".into(),
            },
        },
    });
    let err = w.push(&bad).expect_err("bad file id");
    assert!(err.to_string().contains("not a file id"), "{err}");
    let good = Event::ProcessExit {
        pid: 1,
        status: ExitStatus::Exited(0),
    };
    w.push(&good).expect("push");
    w.finish().expect("finish");
    let events: Vec<Event> = TraceReader::open(&trace)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("events");
    assert_eq!(events, vec![good]);
}

/// A tracee write's kind is its byte after the two ids: 0 memory and 1
/// registers as the registers flag of version 4 and older (whose records
/// read the same), 2 the x87/SSE registers, 3 the blocked mask and 4 the
/// extended state (version 5); each kind but memory has its size (a range
/// for the extended state), checked both ways.
#[test]
fn tracee_writes_of_each_kind_round_trip_and_older_ones_read_the_same() {
    let mut buf = Vec::new();
    for (kind, byte, len) in [
        (WriteKind::Memory, 0u8, 3usize),
        (WriteKind::Regs, 1, 216),
        (WriteKind::FpRegs, 2, 512),
        (WriteKind::SigMask, 3, 8),
        (WriteKind::RegsAtEntry, 5, 216),
        (WriteKind::MemoryAtEntry, 6, 10),
    ] {
        let e = Event::TraceeWrite {
            tid: 1,
            target: 2,
            kind,
            addr: if kind.is_memory() { 0x1000 } else { 0 },
            bytes: (0..len).map(|i| i as u8).collect(),
        };
        buf.clear();
        let tag = codec::encode_payload(&mut buf, &e).expect("encodable");
        assert_eq!(tag, codec::tag::TRACEE_WRITE);
        // tid 1 and target 2, zigzag encoded, then the kind.
        assert_eq!(&buf[..3], &[2, 4, byte], "{kind:?}");
        assert_eq!(
            codec::decode_payload(tag, &buf).expect("decodes"),
            Record::Event(e)
        );
        // The wrong size is refused by the writer and by the reader.
        if let Some(size) = kind.size() {
            let short = Event::TraceeWrite {
                tid: 1,
                target: 2,
                kind,
                addr: 0,
                bytes: vec![0; size - 1],
            };
            let err = codec::encode_payload(&mut Vec::new(), &short).expect_err("short");
            assert!(err.to_string().contains(kind.name()), "{err}");
            let mut raw = vec![2, 4, byte, 0, (size - 1) as u8];
            if size > 0x80 {
                // A two-byte varint length.
                raw.truncate(4);
                raw.extend([((size - 1) as u8 & 0x7f) | 0x80, ((size - 1) >> 7) as u8]);
            }
            raw.extend(vec![0; size - 1]);
            let err = codec::decode_payload(tag, &raw).expect_err("short");
            assert!(err.reason.contains("not"), "{err:?}");
        }
    }
    // A version 4 record: registers flag 1, 216 bytes.
    let mut v4 = vec![2, 4, 1, 0, 0xd8, 0x01];
    v4.extend([7u8; 216]);
    assert_eq!(
        codec::decode_payload(codec::tag::TRACEE_WRITE, &v4).expect("a version 4 record"),
        Record::Event(Event::TraceeWrite {
            tid: 1,
            target: 2,
            kind: WriteKind::Regs,
            addr: 0,
            bytes: vec![7; 216],
        })
    );
    // The extended state: XCR0 and an area, at least 576 bytes of it.
    let xstate = |n: usize| Event::TraceeWrite {
        tid: 1,
        target: 2,
        kind: WriteKind::XState,
        addr: 0,
        bytes: (0..8 + n).map(|i| i as u8).collect(),
    };
    for n in [576, 2688, 11008] {
        buf.clear();
        let tag = codec::encode_payload(&mut buf, &xstate(n)).expect("encodable");
        assert_eq!(&buf[..3], &[2, 4, 4]);
        assert_eq!(
            codec::decode_payload(tag, &buf).expect("decodes"),
            Record::Event(xstate(n))
        );
    }
    let err = codec::encode_payload(&mut Vec::new(), &xstate(575)).expect_err("short");
    assert!(err.to_string().contains("extended state"), "{err}");
    let err = codec::encode_payload(&mut Vec::new(), &xstate(64 * 1024 + 1)).expect_err("long");
    assert!(err.to_string().contains("extended state"), "{err}");
    // 583 bytes (a two-byte varint length): one fewer than the least.
    let mut raw = vec![2, 4, 4, 0, 0xc7, 0x04];
    raw.extend([0u8; 8 + 575]);
    let err = codec::decode_payload(codec::tag::TRACEE_WRITE, &raw).expect_err("short");
    assert!(err.reason.contains("fewer than 584"), "{err:?}");
    // A kind this version does not know is corruption, named.
    let err =
        codec::decode_payload(codec::tag::TRACEE_WRITE, &[2, 4, 7, 0, 0]).expect_err("kind 7");
    assert!(err.reason.contains("tracee write kind is 7"), "{err:?}");
}
