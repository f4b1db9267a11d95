//! A changed trace is never read as the recording (docs/threat-model.md):
//! the whole-stream check before reading ahead, files that are not regular
//! files, missing copies in `files/`, and size limits on what is read.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::gen::{write_trace, Rng};
use super::roundtrip::encode_stream;
use crate::{
    self as trace, Error, Event, MemWrite, SyscallEvent, SyscallExtra, SyscallResult, TraceReader,
};

/// A trace whose third event's memory write holds `secret`.
fn trace_with(dir: &Path, secret: &[u8]) -> Vec<Event> {
    let mut rng = Rng::new(5);
    let mut events: Vec<Event> = vec![rng.event_of(0)];
    events.extend((0..50).map(|_| rng.event_of(1)));
    events.insert(
        2,
        Event::Syscall(SyscallEvent {
            tid: 7,
            nr: 0,
            args: [3, 0x1000, secret.len() as u64, 0, 0, 0],
            result: SyscallResult {
                ret: secret.len() as i64,
                writes: vec![MemWrite {
                    addr: 0x1000,
                    data: secret.to_vec(),
                }],
                extra: SyscallExtra::None,
            },
        }),
    );
    write_trace(dir, &events);
    events
}

fn decoded(dir: &Path) -> Vec<u8> {
    zstd::decode_all(&std::fs::read(dir.join(trace::EVENTS_FILE)).expect("read")[..])
        .expect("decompress")
}

fn recompress(dir: &Path, frames: &[&[u8]]) {
    let mut out = Vec::new();
    for f in frames {
        out.extend(zstd::encode_all(*f, 1).expect("compress"));
    }
    std::fs::write(dir.join(trace::EVENTS_FILE), out).expect("write");
}

fn read_ahead_error(dir: &Path) -> Option<String> {
    let reader = TraceReader::open(dir).expect("open");
    reader.read_ahead().err().map(|e| e.to_string())
}

/// Regression: replay reads ahead and stops at the program's exit, before
/// the end record, so an edit that still decodes (recompressed: zstd's own
/// checksum holds) was replayed, and verified. Reading ahead now checks the
/// whole stream first and hands out nothing.
#[test]
fn read_ahead_refuses_an_edited_stream_before_its_first_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    trace_with(&dir, b"the recorded bytes");
    assert_eq!(read_ahead_error(&dir), None, "the good trace");
    let mut stream = decoded(&dir);
    let at = stream
        .windows(8)
        .position(|w| w == b"recorded")
        .expect("the bytes are in the stream");
    stream[at..at + 8].copy_from_slice(b"REPLACED");
    recompress(&dir, &[&stream]);
    // The edit decodes: only the checksum tells.
    let mut r = TraceReader::open(&dir).expect("open");
    for _ in 0..3 {
        r.next_event().expect("the edited events decode");
    }
    let err = read_ahead_error(&dir).expect("an edited stream read ahead");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains("events.zst"), "{err}");
}

/// Regression: a stream cut at a record (and zstd frame) boundary, before
/// its end record, read ahead as far as replay needed.
#[test]
fn read_ahead_refuses_a_stream_cut_at_a_frame_boundary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    trace_with(&dir, b"x");
    let stream = decoded(&dir);
    let end = stream.len() - end_record_len(&stream);
    recompress(&dir, &[&stream[..end], &stream[end..]]);
    assert_eq!(read_ahead_error(&dir), None, "two frames read as one");
    recompress(&dir, &[&stream[..end]]);
    let err = read_ahead_error(&dir).expect("a cut stream read ahead");
    assert!(err.contains("without its end record"), "{err}");
}

/// Length of the end record at the end of `stream`: tag 0xff, a one-byte
/// length, the count and checksum.
fn end_record_len(stream: &[u8]) -> usize {
    (11..=20)
        .find(|&len| {
            let at = stream.len() - len;
            stream[at] == 0xff && usize::from(stream[at + 1]) == len - 2
        })
        .expect("an end record")
}

/// Every single-byte flip of the decoded stream fails the whole-stream
/// check, which decodes no event (so the checksum alone catches a flip
/// inside a payload).
#[test]
fn every_byte_flip_fails_the_stream_check() {
    let mut rng = Rng::new(17);
    let events: Vec<Event> = (0..40).map(|_| rng.event()).collect();
    let good = encode_stream(&events);
    let mut r = trace::stream::StreamReader::new(&good[..]).expect("header");
    assert_eq!(r.check_to_end(), Ok(events.len() as u64));
    for pos in 0..good.len() {
        let mut bad = good.clone();
        bad[pos] ^= 1 << (pos % 8);
        let res = trace::stream::StreamReader::new(&bad[..]).and_then(|mut r| r.check_to_end());
        assert!(res.is_err(), "flip at {pos} of {} passed", good.len());
    }
    for cut in 0..good.len() {
        let res = trace::stream::StreamReader::new(&good[..cut]).and_then(|mut r| r.check_to_end());
        assert!(res.is_err(), "cut at {cut} passed");
    }
}

/// Runs `f` on a thread; fails the test if it takes more than 10 s (it
/// blocked).
fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} blocked"))
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

fn read_everything(dir: &Path) -> Result<u64, Error> {
    let mut r = TraceReader::open(dir)?;
    while r.next_event()?.is_some() {}
    Ok(r.events_read())
}

/// Regression: a FIFO put in place of `header.json`, `events.zst` or a
/// `files/` copy made `info` and `replay` wait for a writer forever.
#[test]
fn a_fifo_in_place_of_a_trace_file_is_refused_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good");
    let events = trace_with(&good, b"x");
    let trace::Event::Exec(exec) = &events[0] else {
        panic!("the first event is an exec");
    };
    let exe = format!("{}/{}", trace::FILES_DIR, exec.exe_file.0);
    for rel in [trace::HEADER_FILE, trace::EVENTS_FILE, exe.as_str()] {
        let dir = tmp.path().join(rel.replace('/', "-"));
        std::fs::create_dir_all(dir.join(trace::FILES_DIR)).expect("mkdir");
        for f in [trace::HEADER_FILE, trace::EVENTS_FILE, exe.as_str()] {
            std::fs::copy(good.join(f), dir.join(f)).expect("copy");
        }
        mkfifo(&dir.join(rel));
        let d = dir.clone();
        let err = within_10s(rel, move || read_everything(&d).map_err(|e| e.to_string()))
            .expect_err("a FIFO accepted");
        assert!(err.contains("FIFO"), "{rel}: {err}");
    }
}

#[test]
fn a_missing_file_copy_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let events = trace_with(&dir, b"x");
    let trace::Event::Exec(exec) = &events[0] else {
        panic!("the first event is an exec");
    };
    std::fs::remove_file(dir.join(trace::FILES_DIR).join(&exec.exe_file.0)).expect("rm");
    let err = read_everything(&dir)
        .expect_err("a missing copy")
        .to_string();
    assert!(
        err.contains(&format!("files/{} is missing", exec.exe_file.0)),
        "{err}"
    );
}

#[test]
fn reads_are_bounded_and_regular_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("f");
    std::fs::write(&f, [7u8; 100]).expect("write");
    assert_eq!(
        trace::read_regular_bounded(&f, 100, "a test file").expect("100"),
        [7u8; 100]
    );
    let err = trace::read_regular_bounded(&f, 99, "a test file").expect_err("over");
    assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
    assert!(
        err.to_string()
            .contains("a test file is 100 bytes, over the limit of 99 bytes"),
        "{err}"
    );
    let err = within_10s("/dev/zero", || {
        trace::read_regular_bounded(Path::new("/dev/zero"), 1 << 20, "a report")
            .map_err(|e| e.to_string())
    })
    .expect_err("/dev/zero read");
    assert!(err.contains("character device"), "{err}");
    let err = trace::read_regular_bounded(tmp.path(), 1, "a report").expect_err("a dir");
    assert!(err.to_string().contains("directory"), "{err}");
    assert_eq!(trace::human_bytes(256 << 20), "256 MiB");
    assert_eq!(trace::human_bytes(1536 << 20), "1.5 GiB");
    assert_eq!(trace::human_bytes(1000), "1000 bytes");
}

/// Regression: `info /nonexistent` said "no header.json here".
#[test]
fn a_missing_trace_directory_is_named_as_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = trace::read_header(&tmp.path().join("nope")).expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = trace::read_header(tmp.path()).expect_err("empty");
    assert!(err.to_string().contains("no header.json here"), "{err}");
    let file = tmp.path().join("file");
    std::fs::write(&file, "").expect("write");
    let err = trace::read_header(&file).expect_err("a file");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// The header's `loaders` name `files/` entries: replay runs them. One that
/// is not a file id (a path out of the trace) is refused; a missing copy is
/// named when its executable's exec is read.
#[test]
fn loader_copies_are_file_ids_and_checked_like_the_executable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let events = trace_with(&dir, b"x");
    let trace::Event::Exec(exec) = &events[0] else {
        panic!("the first event is an exec");
    };
    let loader = trace::file_id_of(b"a loader");
    let good = trace::read_header(&dir).expect("header");
    let with = |file: &str| {
        let mut h = good.clone();
        h.loaders = vec![trace::LoaderCopy {
            exe_file: exec.exe_file.0.clone(),
            path: "/lib64/ld-linux-x86-64.so.2".into(),
            file: file.into(),
        }];
        trace::rewrite_header(&dir, &h).expect("rewrite");
    };
    with("../../../../bin/sh");
    let err = trace::read_header(&dir).expect_err("a path as a file id");
    assert!(err.to_string().contains("loaders[0].file"), "{err}");
    with(&loader.0);
    let err = read_everything(&dir)
        .expect_err("a missing loader")
        .to_string();
    assert!(
        err.contains(&format!("files/{} is missing", loader.0)),
        "{err}"
    );
    std::fs::write(dir.join(trace::FILES_DIR).join(&loader.0), b"a loader").expect("write");
    read_everything(&dir).expect("with its loader");
}

/// The header's `interpreters` name `files/` entries too (replay runs a
/// script's kept interpreter): the same checks as for `loaders`, along the
/// chain of a script whose interpreter is a script.
#[test]
fn interpreter_copies_are_file_ids_and_checked_like_the_executable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let events = trace_with(&dir, b"x");
    let trace::Event::Exec(exec) = &events[0] else {
        panic!("the first event is an exec");
    };
    let inner = trace::file_id_of(b"#!/bin/sh\n");
    let shell = trace::file_id_of(b"a shell");
    let good = trace::read_header(&dir).expect("header");
    let with = |first: &str| {
        let mut h = good.clone();
        h.interpreters = vec![
            trace::InterpreterCopy {
                script_file: exec.exe_file.0.clone(),
                path: "/inner.sh".into(),
                file: first.into(),
            },
            trace::InterpreterCopy {
                script_file: inner.0.clone(),
                path: "/bin/sh".into(),
                file: shell.0.clone(),
            },
        ];
        trace::rewrite_header(&dir, &h).expect("rewrite");
    };
    with("../../../../bin/sh");
    let err = trace::read_header(&dir).expect_err("a path as a file id");
    assert!(err.to_string().contains("interpreters[0].file"), "{err}");
    with(&inner.0);
    std::fs::write(dir.join(trace::FILES_DIR).join(&inner.0), b"#!/bin/sh\n").expect("write");
    let err = read_everything(&dir)
        .expect_err("a missing interpreter")
        .to_string();
    assert!(
        err.contains(&format!("files/{} is missing", shell.0)),
        "{err}"
    );
    std::fs::write(dir.join(trace::FILES_DIR).join(&shell.0), b"a shell").expect("write");
    read_everything(&dir).expect("with its interpreters");
}
