//! Corruption: flipped bytes and truncations of the decoded stream and of the
//! compressed file give errors (with the right offset for truncations), never
//! panics, hangs or huge allocations.

use std::path::Path;

use super::gen::{add_file_copies, header, write_trace, Rng};
use super::roundtrip::{decode_stream, encode_stream};
use crate::codec::{self, tag};
use crate::stream::StreamError;
use crate::{Error, Event, TraceReader, TraceWriter};

fn random_events(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.event()).collect()
}

/// Reads a whole trace: the events, and the error that ended it.
fn read_all(dir: &Path) -> (Vec<Event>, Option<Error>, bool) {
    let mut r = match TraceReader::open(dir) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e), false),
    };
    let mut out = Vec::new();
    loop {
        match r.next_event() {
            Ok(Some(e)) => out.push(e),
            Ok(None) => return (out, None, false),
            Err(e) => return (out, Some(e), r.is_truncated()),
        }
    }
}

#[test]
fn every_single_byte_flip_of_the_decoded_stream_is_an_error() {
    for seed in 0..8 {
        let events = random_events(seed, 40);
        let bytes = encode_stream(&events);
        let mut rng = Rng::new(1000 + seed);
        for pos in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[pos] ^= 1 + rng.below(255) as u8;
            let (_, err) = decode_stream(&bad);
            assert!(
                err.is_some(),
                "seed {seed}: flipping byte {pos} of {} went unnoticed",
                bytes.len()
            );
        }
    }
}

#[test]
fn random_multi_byte_damage_of_the_decoded_stream_is_an_error() {
    let events = random_events(42, 300);
    let bytes = encode_stream(&events);
    let mut rng = Rng::new(43);
    for _ in 0..3_000 {
        let mut bad = bytes.clone();
        for _ in 0..1 + rng.below(8) {
            let pos = rng.below(bad.len() as u64) as usize;
            bad[pos] = rng.next_u64() as u8;
        }
        if bad == bytes {
            continue;
        }
        let (_, err) = decode_stream(&bad);
        assert!(err.is_some(), "damage went unnoticed");
    }
}

#[test]
fn every_truncation_of_the_decoded_stream_keeps_the_complete_events() {
    let events = random_events(5, 60);
    let bytes = encode_stream(&events);
    for cut in 0..bytes.len() {
        let (got, err) = decode_stream(&bytes[..cut]);
        let err = err.unwrap_or_else(|| panic!("cut at {cut} read as complete"));
        assert!(events.starts_with(&got), "cut at {cut}: events changed");
        if cut >= codec::STREAM_MAGIC.len() {
            assert!(err.is_truncation(), "cut at {cut}: {err:?}");
            assert_eq!(err.offset(), cut as u64, "cut at {cut}: {err:?}");
        }
    }
    // Cutting off just the end record keeps every event.
    let (got, err) = decode_stream(&bytes[..bytes.len() - 11]);
    assert_eq!(got, events);
    assert!(err.expect("no end record").is_truncation());
}

fn stream_with_record(tag: u8, len_and_payload: &[u8]) -> Vec<u8> {
    let mut v = codec::stream_header().to_vec();
    v.push(tag);
    v.extend_from_slice(len_and_payload);
    v
}

#[test]
fn absurd_lengths_and_tags_are_refused_cheaply() {
    // A 4 GiB record with 3 bytes present: truncation, nothing huge allocated.
    let (_, err) = decode_stream(&stream_with_record(
        tag::SYSCALL,
        &[0x80, 0x80, 0x80, 0x80, 0x10, 1, 2, 3],
    ));
    let err = err.expect("error");
    assert!(err.is_truncation(), "{err:?}");
    assert_eq!(err.offset(), 12 + 1 + 5 + 3);
    // Above the maximum record length.
    let (_, err) = decode_stream(&stream_with_record(
        tag::SYSCALL,
        &[0x81, 0x80, 0x80, 0x80, 0x10],
    ));
    assert!(
        matches!(
            err,
            Some(StreamError::Corrupt {
                truncated: false,
                offset: 13,
                ..
            })
        ),
        "{err:?}"
    );
    // A length varint that never ends.
    let (_, err) = decode_stream(&stream_with_record(tag::SYSCALL, &[0xff; 20]));
    assert!(
        matches!(
            err,
            Some(StreamError::Corrupt {
                truncated: false,
                ..
            })
        ),
        "{err:?}"
    );
    // Unknown tags, zero included.
    for t in [0x00, 0x11, 0x7f, 0xfe] {
        let (_, err) = decode_stream(&stream_with_record(t, &[0]));
        match err {
            Some(StreamError::Corrupt {
                offset: 12,
                reason,
                truncated: false,
            }) => {
                assert!(reason.contains("unknown record tag"), "{reason}")
            }
            other => panic!("tag {t:#x}: {other:?}"),
        }
    }
    // A memory write claiming more bytes than the record holds.
    // Syscall: tid 1, nr 0, no args, ret 0, 1 write at 0 of 2^40 bytes.
    let payload = [2, 0, 0, 0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0];
    let mut rec = vec![payload.len() as u8];
    rec.extend_from_slice(&payload);
    let (_, err) = decode_stream(&stream_with_record(tag::SYSCALL, &rec));
    match err {
        Some(StreamError::Corrupt {
            offset,
            reason,
            truncated: false,
        }) => {
            assert_eq!(offset, 12 + 2 + 6, "{reason}");
            assert!(reason.contains("memory write length"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A write count far beyond what the record can hold.
    let payload = [2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
    let mut rec = vec![payload.len() as u8];
    rec.extend_from_slice(&payload);
    let (_, err) = decode_stream(&stream_with_record(tag::SYSCALL, &rec));
    assert!(
        matches!(err, Some(StreamError::Corrupt { offset: 18, .. })),
        "{err:?}"
    );
    // Bad magic.
    let (_, err) = decode_stream(b"RRTEVNX\0\x01\0\0\0");
    assert!(
        matches!(err, Some(StreamError::Corrupt { offset: 0, .. })),
        "{err:?}"
    );
}

#[test]
fn byte_flips_of_the_compressed_file_are_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good");
    let events = random_events(9, 400);
    write_trace(&good, &events);
    let original = std::fs::read(good.join("events.zst")).expect("read");
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::copy(good.join("header.json"), bad.join("header.json")).expect("copy");
    let mut rng = Rng::new(10);
    let mut harmless = 0;
    for i in 0..600 {
        // Every byte of the first 64 (frame and block headers), then at random.
        let pos = if i < 64 {
            i
        } else {
            rng.below(original.len() as u64) as usize
        };
        let mut data = original.clone();
        data[pos] ^= 1 << rng.below(8);
        std::fs::write(bad.join("events.zst"), &data).expect("write");
        let (got, err, _) = read_all(&bad);
        if err.is_none() {
            // Only a flip that changes nothing decoded may pass: the window
            // size in zstd's frame header can grow without harm, and a few
            // bits of entropy-table descriptions do not change the tables.
            // The decoded stream is then identical (zstd's content checksum
            // and ours both hold), so nothing is silently wrong.
            assert_eq!(got, events, "flip at {pos} changed events silently");
            harmless += 1;
        }
    }
    assert!(harmless < 10, "{harmless} harmless flips");
}

#[test]
fn truncations_of_the_compressed_file_keep_a_prefix_of_the_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good");
    let events = random_events(11, 300);
    write_trace(&good, &events);
    let original = std::fs::read(good.join("events.zst")).expect("read");
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::copy(good.join("header.json"), bad.join("header.json")).expect("copy");
    let step = (original.len() / 200).max(1);
    for cut in (0..original.len()).step_by(step) {
        std::fs::write(bad.join("events.zst"), &original[..cut]).expect("write");
        let (got, err, _) = read_all(&bad);
        let err = err.unwrap_or_else(|| panic!("cut at {cut} read as complete"));
        assert!(matches!(err, Error::Corrupt { .. }), "cut at {cut}: {err}");
        assert!(events.starts_with(&got), "cut at {cut}");
    }
}

#[test]
fn a_writer_dropped_unfinished_leaves_a_readable_truncated_trace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let events = random_events(12, 1000);
    let mut w = TraceWriter::create(&dir, header()).expect("create");
    for e in &events {
        w.push(e).expect("push");
    }
    drop(w);
    add_file_copies(&dir, &events);
    let (got, err, truncated) = read_all(&dir);
    assert_eq!(got, events);
    let err = err.expect("no end record");
    assert!(truncated, "{err}");
    assert!(err.to_string().contains("cut short"), "{err}");
    let r = TraceReader::open(&dir).expect("open");
    assert_eq!(r.header().outcome, None);
}

#[test]
fn flush_makes_pushed_events_readable_while_recording() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    let events = random_events(13, 50);
    let mut w = TraceWriter::create(&dir, header()).expect("create");
    for e in &events {
        w.push(e).expect("push");
    }
    w.flush().expect("flush");
    add_file_copies(&dir, &events);
    // Read while the writer is still open, as after a SIGKILL.
    let (got, err, truncated) = read_all(&dir);
    assert_eq!(got, events);
    assert!(err.is_some() && truncated);
    w.finish().expect("finish");
    let (got, err, _) = read_all(&dir);
    assert_eq!(got, events);
    assert!(err.is_none());
}

#[test]
fn damaged_headers_are_errors_with_an_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("t");
    write_trace(&dir, &[]);
    let text = std::fs::read_to_string(dir.join("header.json")).expect("read");
    let cases: Vec<(String, &str)> = vec![
        (text[..text.len() / 2].to_owned(), "not JSON"),
        ("[1, 2]".to_owned(), "not a JSON object"),
        (
            "{\"recorder_version\": \"0.1.0\"}".to_owned(),
            "format_version",
        ),
        (text.replace("\"argv\"", "\"argx\""), "argv"),
        (
            "{\n  \"format_version\": 1,\n  oops\n}".to_owned(),
            "not JSON",
        ),
    ];
    for (bad, want) in cases {
        std::fs::write(dir.join("header.json"), &bad).expect("write");
        match TraceReader::open(&dir) {
            Err(Error::Corrupt {
                what: "header",
                reason,
                offset,
                ..
            }) => {
                assert!(reason.contains(want), "{reason}");
                assert!(offset <= bad.len() as u64);
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // The offset of a syntax error is where it is.
    std::fs::write(
        dir.join("header.json"),
        "{\n  \"format_version\": 1,\n  oops\n}",
    )
    .expect("write");
    match TraceReader::open(&dir) {
        Err(Error::Corrupt { offset, reason, .. }) => assert_eq!(offset, 27, "{reason}"),
        other => panic!("{other:?}"),
    }
    // Missing files are I/O errors naming the file.
    std::fs::remove_file(dir.join("header.json")).expect("rm");
    let err = TraceReader::open(&dir).expect_err("no header");
    assert!(
        matches!(err, Error::Io { .. })
            && err
                .to_string()
                .contains("not a cargo-rrtest trace directory"),
        "{err}"
    );
}

/// Reads a whole trace through [`crate::ReadAhead`]: the events, and
/// the error that ended it (asked twice: the same error again).
fn read_all_ahead(dir: &Path) -> (Vec<Event>, Option<String>) {
    let mut r = match TraceReader::open(dir).and_then(TraceReader::read_ahead) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e.to_string())),
    };
    let mut out = Vec::new();
    loop {
        match r.next_event() {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {
                assert!(matches!(r.next_event(), Ok(None)), "the end again");
                return (out, None);
            }
            Err(e) => {
                let again = r.next_event().expect_err("the error again").to_string();
                assert_eq!(again, e.to_string());
                return (out, Some(e.to_string()));
            }
        }
    }
}

/// Reading ahead on a thread gives the events the reader gives for a whole
/// trace (more events than it reads ahead); for one cut short or damaged,
/// it gives no event, but an error of the same file (it checks the whole
/// stream first); dropping it midway stops its thread.
#[test]
fn reading_ahead_gives_what_the_reader_gives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good");
    let events = random_events(21, 500);
    write_trace(&good, &events);
    assert_eq!(read_all_ahead(&good), (events.clone(), None));

    let original = std::fs::read(good.join("events.zst")).expect("read");
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::copy(good.join("header.json"), bad.join("header.json")).expect("copy");
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    add_file_copies(&bad, &events);
    for data in [&original[..original.len() / 3], &flipped[..]] {
        std::fs::write(bad.join("events.zst"), data).expect("write");
        let (_, err, _) = read_all(&bad);
        assert!(err.is_some(), "the reader finds it");
        let (got, err) = read_all_ahead(&bad);
        assert!(got.is_empty(), "{} events handed out", got.len());
        let err = err.expect("an error");
        assert!(
            err.contains("events.zst") && err.contains("corrupt"),
            "{err}"
        );
    }

    let mut r = TraceReader::open(&good)
        .and_then(TraceReader::read_ahead)
        .expect("read ahead");
    assert_eq!(r.next_event().expect("event").as_ref(), events.first());
    drop(r);
}
