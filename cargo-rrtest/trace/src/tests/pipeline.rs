//! The event stream's two halves: records framed in a [`Batch`] write the
//! same bytes as pushing them one by one, on the recorder's thread or the
//! stream's, and a write error on the stream's thread reaches the caller.

use std::io::Read;

use super::gen::Rng;
use super::roundtrip::{decode_stream, encode_stream};
use crate::pipeline::{Pipeline, Spill, BATCH};
use crate::stream::{Batch, StreamWriter};
use crate::Event;

fn events(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.event()).collect()
}

/// The decoded stream in `file`, a zstd frame.
fn decompress(file: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(file).expect("open"))
        .expect("zstd")
        .read_to_end(&mut out)
        .expect("a complete zstd frame");
    out
}

#[test]
fn batches_write_the_bytes_and_checksum_of_single_pushes() {
    let events = events(7, 500);
    let mut w = StreamWriter::new(Vec::new()).expect("vec");
    // Uneven batches, an empty one included.
    for chunk in [&events[..0], &events[..1], &events[1..120], &events[120..]] {
        let mut batch = Batch::default();
        for e in chunk {
            batch.push(e).expect("encodable");
        }
        assert_eq!(batch.events(), chunk.len());
        w.write_batch(&batch).expect("vec");
    }
    assert_eq!(w.events(), 500);
    let batched = w.finish().expect("vec");
    assert_eq!(batched, encode_stream(&events));
    let (read, err) = decode_stream(&batched);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(read, events);
}

/// A stream large enough to start the stream's thread, spilled from memory
/// to a file halfway, holds every event, in order, with a valid end record.
#[test]
fn a_threaded_stream_spilled_to_a_file_reads_back_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("events.zst");
    let events = events(11, 6000);
    let mut p = Pipeline::new(Spill::Memory(Vec::new())).expect("pipeline");
    let mut framed = 0usize;
    for (i, e) in events.iter().enumerate() {
        p.push(e).expect("push");
        framed += 1;
        if i == events.len() / 2 {
            p.flush().expect("flush");
            assert!(p.held() > 0, "the first half is held in memory");
            p.spill_to(std::fs::File::create(&path).expect("create"))
                .expect("spill");
        }
    }
    assert_eq!(p.events(), framed as u64);
    assert!(
        format!("{p:?}").contains("threaded: true"),
        "{} framed bytes should have started the thread (BATCH {BATCH})",
        framed
    );
    p.finish().expect("finish");
    let (read, err) = decode_stream(&decompress(&path));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(read, events);
}

/// A stream too small to start the thread is written at its end, on the
/// recorder's thread, the same way.
#[test]
fn a_short_stream_is_written_without_a_thread() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("events.zst");
    let events = events(12, 20);
    let mut p = Pipeline::new(Spill::File(std::fs::File::create(&path).expect("create")))
        .expect("pipeline");
    for e in &events {
        p.push(e).expect("push");
    }
    p.flush().expect("flush");
    assert!(format!("{p:?}").contains("threaded: false"), "{p:?}");
    p.finish().expect("finish");
    let (read, err) = decode_stream(&decompress(&path));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(read, events);
}

/// A full disk (`/dev/full`: every write fails with ENOSPC) met by the
/// stream's thread is reported to the recorder's thread at its next call,
/// once; the stream then writes nothing more.
#[test]
fn a_write_error_on_the_streams_thread_reaches_the_caller() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    for threaded in [false, true] {
        let mut p = Pipeline::new(Spill::Memory(Vec::new())).expect("pipeline");
        let mut rng = Rng::new(3);
        let n = if threaded { 6000 } else { 10 };
        for _ in 0..n {
            p.push(&rng.event()).expect("push");
        }
        // Spilling does not wait for the thread: its error shows later,
        // at the latest when the caller waits.
        let spilled = p.spill_to(full());
        let waited = spilled.and_then(|()| p.flush());
        let err = waited.expect_err("a write to /dev/full fails");
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ENOSPC),
            "threaded {threaded}: {err}"
        );
        assert!(format!("{p:?}").contains(&format!("threaded: {threaded}")));
        p.push(&rng.event())
            .expect_err("a closed stream takes no more events");
        p.finish().expect_err("nor finishes");
    }
}

/// Buffered records written in place frame the bytes of the event itself;
/// a fill that fails adds nothing.
#[test]
fn buffered_records_filled_in_place_frame_like_the_event() {
    let records: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let before = Event::Rdtsc {
        tid: 3,
        ip: 0x1234,
        tsc: 99,
        aux: None,
    };
    let event = Event::Buffered {
        tid: -5,
        records: records.clone(),
    };
    let mut batch = Batch::default();
    batch.push(&before).expect("encodable");
    let refused = batch
        .push_buffered(-5, records.len(), |out| {
            out[0] = 1;
            false
        })
        .expect("encodable");
    assert!(!refused);
    assert_eq!(batch.events(), 1, "a failed fill adds no record");
    let filled = batch
        .push_buffered(-5, records.len(), |out| {
            out.copy_from_slice(&records);
            true
        })
        .expect("encodable");
    assert!(filled);
    let empty = batch
        .push_buffered(7, 0, |out| out.is_empty())
        .expect("encodable");
    assert!(empty);
    let mut w = StreamWriter::new(Vec::new()).expect("vec");
    w.write_batch(&batch).expect("vec");
    let expected = [
        before,
        event,
        Event::Buffered {
            tid: 7,
            records: Vec::new(),
        },
    ];
    assert_eq!(w.finish().expect("vec"), encode_stream(&expected));
}

/// An emptied batch keeps the memory a full buffer's records need, not a
/// huge event's.
#[test]
fn an_emptied_batch_does_not_keep_a_huge_events_memory() {
    let mut batch = Batch::default();
    let mb = 1 << 20;
    assert!(batch
        .push_buffered(1, mb, |out| !out.is_empty())
        .expect("ok"));
    batch.clear();
    assert_eq!((batch.events(), batch.len()), (0, 0));
    assert!(batch.capacity() >= mb, "a flush's memory is kept");
    let huge = Event::Buffered {
        tid: 1,
        records: vec![7; 3 * Batch::RETAINED],
    };
    batch.push(&huge).expect("encodable");
    assert!(batch.capacity() > 2 * Batch::RETAINED);
    batch.clear();
    assert!(
        batch.capacity() <= 2 * Batch::RETAINED,
        "{}",
        batch.capacity()
    );
}
