//! A mutation fuzzer for the trace readers, on stable Rust, run by the
//! normal test run for a bounded time.
//!
//! The seed corpus is traces this test writes (random events of every
//! kind, with their `files/`), the golden trace, and a packed archive of a
//! trace. Each case mutates one seed (flipped bits, inserted, deleted and
//! overwritten bytes, a truncation, a splice of another seed) at one of
//! its layers: `header.json`, the compressed `events.zst`, the decoded
//! stream (recompressed, so the decoder sees the damage), the compressed
//! archive or its tar stream (recompressed). It then reads the result as
//! cargo-rrtest would: the header parser, the stream reader (every event,
//! then the whole-stream check) and the unpacker (into a fresh directory,
//! with small limits). A case passes when it does not panic, ends within
//! [`CASE_LIMIT`], writes nothing outside its directory (no link, no file
//! elsewhere), and every error of a decoded stream it damaged is a
//! [`crate::Error::Corrupt`] or `VersionMismatch` whose offset lies
//! within that stream.
//!
//! `RRTEST_FUZZ_SECS` (default 20) bounds the run; `RRTEST_FUZZ_SEED`
//! picks the seed (default fixed, printed); `RRTEST_FUZZ_CASE=N` runs case
//! N alone, as a failure message says.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::gen::{write_trace, Rng};
use crate::pack::{self, Limits};
use crate::{self as trace, Error, Event, TraceReader};

/// How long one case may take: the slowest legitimate case (a few hundred
/// kilobytes decompressed in a debug build) takes milliseconds.
const CASE_LIMIT: Duration = Duration::from_secs(10);

const DEFAULT_SEED: u64 = 0x7261_6365_6675_7a7a;

/// One seed of the corpus: a trace directory's two files.
#[derive(Clone)]
struct Seed {
    name: String,
    header: Vec<u8>,
    events: Vec<u8>,
    /// The copies the events name: (id, content).
    files: Vec<(String, Vec<u8>)>,
}

struct Corpus {
    traces: Vec<Seed>,
    archive: Vec<u8>,
}

fn write_seed_trace(dir: &Path, seed: u64, n: usize) -> Seed {
    let mut rng = Rng::new(seed);
    let events: Vec<Event> = (0..n).map(|_| rng.event()).collect();
    write_trace(dir, &events);
    read_seed(dir, &format!("generated-{seed}"))
}

fn read_seed(dir: &Path, name: &str) -> Seed {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join(trace::FILES_DIR)) {
        for e in entries {
            let e = e.expect("entry");
            let content = std::fs::read(e.path()).expect("read a copy");
            files.push((e.file_name().to_string_lossy().into_owned(), content));
        }
    }
    files.sort();
    Seed {
        name: name.into(),
        header: std::fs::read(dir.join(trace::HEADER_FILE)).expect("header"),
        events: std::fs::read(dir.join(trace::EVENTS_FILE)).expect("events"),
        files,
    }
}

fn corpus(scratch: &Path) -> Corpus {
    let mut traces = vec![
        write_seed_trace(&scratch.join("a"), 1, 30),
        write_seed_trace(&scratch.join("b"), 2, 200),
    ];
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests-data/golden-v1");
    if golden.join(trace::HEADER_FILE).is_file() {
        traces.push(read_seed(&golden, "golden-v1"));
    }
    let archive = scratch.join("a.tar.zst");
    pack::pack(&scratch.join("a"), &archive).expect("pack");
    Corpus {
        traces,
        archive: std::fs::read(&archive).expect("archive"),
    }
}

/// Damages `data` in 1 to 4 ways, `other` the splice source.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) -> String {
    let mut done = Vec::new();
    for _ in 0..=rng.below(3) {
        let len = data.len() as u64;
        let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) as usize };
        match rng.below(7) {
            0 if len > 0 => {
                let i = at(rng);
                data[i] ^= 1 << rng.below(8);
                done.push(format!("flip@{i}"));
            }
            1 => {
                let i = at(rng);
                let n = 1 + rng.below(16) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(i..i, bytes);
                done.push(format!("insert{n}@{i}"));
            }
            2 if len > 0 => {
                let i = at(rng);
                let n = (1 + rng.below(64) as usize).min(data.len() - i);
                data.drain(i..i + n);
                done.push(format!("delete{n}@{i}"));
            }
            3 if len > 0 => {
                let i = at(rng);
                data.truncate(i);
                done.push(format!("truncate@{i}"));
            }
            4 if len > 0 && !other.is_empty() => {
                let i = at(rng);
                let j = rng.below(other.len() as u64) as usize;
                data.truncate(i);
                data.extend_from_slice(&other[j..]);
                done.push(format!("splice@{i}<-{j}"));
            }
            5 if len > 0 => {
                let i = at(rng);
                let v = [0u8, 0xff, 0x7f, 0x80, 0x01][rng.below(5) as usize];
                let n = (1 + rng.below(8) as usize).min(data.len() - i);
                data[i..i + n].fill(v);
                done.push(format!("fill{n}x{v:#x}@{i}"));
            }
            _ if len > 0 => {
                // A varint-sized field set to something large.
                let i = at(rng);
                let n = 5.min(data.len() - i);
                data[i..i + n].fill(0xff);
                done.push(format!("huge@{i}"));
            }
            _ => {}
        }
    }
    done.join(",")
}

/// Which layer a case damages.
#[derive(Debug, Clone, Copy)]
enum Layer {
    Header,
    Compressed,
    Decoded,
    Archive,
    Tar,
}

/// Runs case `index`; `Err` says what went wrong.
fn run_case(corpus: &Corpus, seed: u64, index: u64, root: &Path) -> Result<String, String> {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let pick = rng.below(corpus.traces.len() as u64) as usize;
    let base = &corpus.traces[pick];
    let other = &corpus.traces[(pick + 1) % corpus.traces.len()];
    let layer = match rng.below(10) {
        0 | 1 => Layer::Header,
        2 | 3 => Layer::Compressed,
        4..=6 => Layer::Decoded,
        7 => Layer::Archive,
        _ => Layer::Tar,
    };
    let case_dir = root.join(format!("case-{index}"));
    std::fs::create_dir(&case_dir).map_err(|e| e.to_string())?;
    let what;
    match layer {
        Layer::Header | Layer::Compressed | Layer::Decoded => {
            let mut s = base.clone();
            let mut decoded_len = None;
            what = match layer {
                Layer::Header => mutate(&mut rng, &mut s.header, &other.header),
                Layer::Compressed => mutate(&mut rng, &mut s.events, &other.events),
                _ => {
                    let mut d = zstd::decode_all(&s.events[..]).map_err(|e| e.to_string())?;
                    let o = zstd::decode_all(&other.events[..]).map_err(|e| e.to_string())?;
                    let m = mutate(&mut rng, &mut d, &o);
                    decoded_len = Some(d.len() as u64);
                    s.events = zstd::encode_all(&d[..], 1).map_err(|e| e.to_string())?;
                    m
                }
            };
            let dir = case_dir.join("trace");
            std::fs::create_dir_all(dir.join(trace::FILES_DIR)).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(trace::HEADER_FILE), &s.header).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(trace::EVENTS_FILE), &s.events).map_err(|e| e.to_string())?;
            for (id, content) in &s.files {
                std::fs::write(dir.join(trace::FILES_DIR).join(id), content)
                    .map_err(|e| e.to_string())?;
            }
            let _ = trace::read_header(&dir);
            let read = read_all(&dir);
            if let (Err(e), Some(len)) = (&read, decoded_len) {
                check_error(e, len)?;
            }
            if let Ok(r) = TraceReader::open(&dir) {
                let checked = r.check_stream();
                if let (Err(e), Some(len)) = (&checked, decoded_len) {
                    check_error(e, len)?;
                }
                // The check and the reader agree on whether it is whole.
                if checked.is_ok() != read.is_ok() {
                    let files_missing = matches!(&read, Err(Error::Corrupt { reason, .. }) if reason.contains("files/"));
                    if !files_missing {
                        return Err(format!(
                            "the stream check says {:?}, reading every event {:?}",
                            checked.map_err(|e| e.to_string()),
                            read.map_err(|e| e.to_string())
                        ));
                    }
                }
            }
        }
        Layer::Archive | Layer::Tar => {
            let mut archive = corpus.archive.clone();
            what = if matches!(layer, Layer::Archive) {
                let other = other.events.clone();
                mutate(&mut rng, &mut archive, &other)
            } else {
                let mut tar = zstd::decode_all(&archive[..]).map_err(|e| e.to_string())?;
                let m = mutate(&mut rng, &mut tar, &[]);
                archive = zstd::encode_all(&tar[..], 1).map_err(|e| e.to_string())?;
                m
            };
            let file = case_dir.join("t.tar.zst");
            std::fs::write(&file, &archive).map_err(|e| e.to_string())?;
            let dest = case_dir.join("dest");
            std::fs::create_dir(&dest).map_err(|e| e.to_string())?;
            let limits = Limits {
                max_entries: 1000,
                max_total_bytes: 16 << 20,
                max_file_bytes: 8 << 20,
                ..Limits::default()
            };
            let unpacked = pack::unpack(&file, &dest, limits);
            check_tree(&dest, &dest)?;
            let mut beside: Vec<String> = std::fs::read_dir(&case_dir)
                .map_err(|e| e.to_string())?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            beside.sort();
            if beside != ["dest", "t.tar.zst"] {
                return Err(format!("unpacking wrote beside its directory: {beside:?}"));
            }
            if let Ok(dir) = unpacked {
                let _ = read_all(&dir);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&case_dir);
    Ok(format!("{} {layer:?} {what}", base.name))
}

fn read_all(dir: &Path) -> Result<u64, Error> {
    let mut r = TraceReader::open(dir)?;
    while r.next_event()?.is_some() {}
    Ok(r.events_read())
}

/// An error of a damaged decoded stream of `len` bytes: corruption (or
/// another version), within the stream.
fn check_error(e: &Error, len: u64) -> Result<(), String> {
    match e {
        Error::Corrupt { offset, reason, .. } if reason.contains("files/") => {
            let _ = offset;
            Ok(())
        }
        Error::Corrupt { offset, .. } if *offset <= len => Ok(()),
        Error::VersionMismatch { .. } | Error::UnknownDigest { .. } => Ok(()),
        other => Err(format!(
            "a damaged stream of {len} bytes gave {other:?}: not corruption within it"
        )),
    }
}

/// Everything under `dir` is a directory or a regular file (no link, FIFO
/// or device) and stays under `root`.
fn check_tree(dir: &Path, root: &Path) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let path = e.path();
        let kind = e.file_type().map_err(|e| e.to_string())?;
        if !path.starts_with(root) {
            return Err(format!("{} is outside {}", path.display(), root.display()));
        }
        if kind.is_dir() {
            check_tree(&path, root)?;
        } else if !kind.is_file() {
            return Err(format!("unpacking made {} ({kind:?})", path.display()));
        }
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn fuzz_trace_reader_and_unpacker() {
    let secs = env_u64("RRTEST_FUZZ_SECS").unwrap_or(20);
    let seed = env_u64("RRTEST_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let only = env_u64("RRTEST_FUZZ_CASE");
    let scratch = tempfile::tempdir().expect("tempdir");
    let corpus = std::sync::Arc::new(corpus(scratch.path()));
    let root = scratch.path().join("cases");
    std::fs::create_dir(&root).expect("mkdir");

    // One worker runs the cases; this thread times each one.
    let (to_worker, cases) = mpsc::channel::<u64>();
    let (to_us, results) = mpsc::channel::<(u64, Result<String, String>)>();
    let worker_corpus = std::sync::Arc::clone(&corpus);
    let worker_root = root.clone();
    std::thread::spawn(move || {
        for index in cases {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                run_case(&worker_corpus, seed, index, &worker_root)
            }))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("panicked: {msg}"))
            });
            if to_us.send((index, r)).is_err() {
                break;
            }
        }
    });
    let repro = |index: u64| {
        format!("seed {seed:#x}, case {index}: rerun alone with RRTEST_FUZZ_SEED={seed:#x} RRTEST_FUZZ_CASE={index}")
    };
    let started = Instant::now();
    let mut index = only.unwrap_or(0);
    let mut ran = 0u64;
    loop {
        to_worker.send(index).expect("the worker is gone");
        match results.recv_timeout(CASE_LIMIT) {
            Ok((_, Ok(_))) => {}
            Ok((_, Err(why))) => panic!("{why}\n{}", repro(index)),
            Err(_) => panic!("a case ran longer than {CASE_LIMIT:?}: {}", repro(index)),
        }
        ran += 1;
        index += 1;
        if only.is_some() || started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
    }
    eprintln!(
        "fuzz: {ran} cases in {:.1} s, seed {seed:#x}, {} seed traces and an archive",
        started.elapsed().as_secs_f64(),
        corpus.traces.len()
    );
    assert!(ran > 0);
}
