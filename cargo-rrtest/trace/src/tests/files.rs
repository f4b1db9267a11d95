//! `files/`: content addressing, deduplication, the identity cache, hard
//! links and the copy fallback.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::gen::header;
use crate::{file_id_of, FileId, Stored, TraceReader, TraceWriter};

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("files"))
        .expect("files/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_id_is_the_first_16_bytes_of_sha256_in_lowercase_hex() {
    // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a3...
    assert_eq!(
        file_id_of(b"abc"),
        FileId("ba7816bf8f01cfea414140de5dae2223".into())
    );
    // SHA-256("") = e3b0c44298fc1c149afbf4c8996fb924 27ae41e4...
    assert_eq!(
        file_id_of(b""),
        FileId("e3b0c44298fc1c149afbf4c8996fb924".into())
    );
}

#[test]
fn same_file_and_same_content_are_stored_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a.so");
    let b = tmp.path().join("b.so");
    let c = tmp.path().join("c.so");
    std::fs::write(&a, b"shared content").expect("write");
    std::fs::write(&b, b"shared content").expect("write");
    std::fs::write(&c, b"other content").expect("write");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let (ida, how) = w.add_file_with(&a).expect("a");
    assert_eq!(how, Stored::Linked);
    assert_eq!(ida, file_id_of(b"shared content"));
    assert_eq!(
        w.add_file_with(&a).expect("a again"),
        (ida.clone(), Stored::Cached)
    );
    assert_eq!(
        w.add_file_with(&b).expect("b"),
        (ida.clone(), Stored::Deduplicated)
    );
    let (idc, _) = w.add_file_with(&c).expect("c");
    assert_ne!(idc, ida);
    w.finish().expect("finish");
    let mut want = vec![ida.0.clone(), idc.0.clone()];
    want.sort();
    assert_eq!(files_in(&trace), want);
    let r = TraceReader::open(&trace).expect("open");
    assert_eq!(
        std::fs::read(r.file_path(&ida)).expect("read"),
        b"shared content"
    );
    assert_eq!(
        std::fs::read(r.file_path(&idc)).expect("read"),
        b"other content"
    );
}

#[test]
fn on_one_file_system_the_copy_is_a_hard_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("lib.so");
    std::fs::write(&src, b"library").expect("write");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let id = w.add_file(&src).expect("add");
    let copy = w.file_path(&id);
    let (m1, m2) = (
        std::fs::metadata(&src).expect("src"),
        std::fs::metadata(&copy).expect("copy"),
    );
    assert_eq!((m1.dev(), m1.ino()), (m2.dev(), m2.ino()));
    assert_eq!(m1.nlink(), 2);
    // Nothing temporary is left behind.
    assert_eq!(files_in(&trace), vec![id.0]);
}

#[test]
fn a_symlink_is_stored_as_the_file_it_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("libfoo.so.1.2");
    std::fs::write(&src, b"versioned").expect("write");
    let link = tmp.path().join("libfoo.so");
    std::os::unix::fs::symlink(&src, &link).expect("symlink");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let id = w.add_file(&link).expect("add");
    let copy = w.file_path(&id);
    assert!(std::fs::symlink_metadata(&copy).expect("copy").is_file());
    assert_eq!(std::fs::read(&copy).expect("read"), b"versioned");
}

#[test]
fn a_changed_file_is_hashed_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("data");
    std::fs::write(&src, b"version 1").expect("write");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let id1 = w.add_file(&src).expect("add");
    // Replaced, as a build would: a new inode.
    std::fs::remove_file(&src).expect("rm");
    std::fs::write(&src, b"version 2!").expect("write");
    let id2 = w.add_file(&src).expect("add again");
    assert_ne!(id1, id2);
    assert_eq!(id2, file_id_of(b"version 2!"));
    assert_eq!(
        std::fs::read(w.file_path(&id1)).expect("read"),
        b"version 1"
    );
}

#[test]
fn across_file_systems_the_file_is_copied_owner_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let other = Path::new("/dev/shm");
    let same_fs = std::fs::metadata(other)
        .map(|m| m.dev() == std::fs::metadata(tmp.path()).expect("tmp").dev())
        .unwrap_or(true);
    if same_fs {
        eprintln!("skipped: /dev/shm is missing or on the same file system as the temp dir");
        return;
    }
    let src_dir = tempfile::tempdir_in(other).expect("tempdir in /dev/shm");
    let plain = src_dir.path().join("plain");
    let exe = src_dir.path().join("exe");
    std::fs::write(&plain, b"plain bytes").expect("write");
    std::fs::write(&exe, b"exe bytes").expect("write");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let (idp, how) = w.add_file_with(&plain).expect("plain");
    assert_eq!(how, Stored::Copied);
    let (ide, _) = w.add_file_with(&exe).expect("exe");
    let mode = |id: &FileId| {
        std::fs::metadata(w.file_path(id))
            .expect("copy")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&idp), 0o600);
    assert_eq!(mode(&ide), 0o700);
    assert_eq!(
        std::fs::read(w.file_path(&idp)).expect("read"),
        b"plain bytes"
    );
    assert_eq!(idp, file_id_of(b"plain bytes"));
    assert_eq!(files_in(&trace).len(), 2);
}

#[test]
fn only_regular_files_can_be_added() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    let err = w.add_file(tmp.path()).expect_err("a directory");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = w
        .add_file(&tmp.path().join("missing"))
        .expect_err("missing");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn another_trace_of_the_process_links_a_known_file_without_hashing_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("big-test-binary");
    std::fs::write(&src, vec![0x5a; 300_000]).expect("write");
    let mut first = TraceWriter::create(&tmp.path().join("t1"), header()).expect("create");
    let (id1, how) = first.add_file_with(&src).expect("add");
    assert_eq!(how, Stored::Linked);
    let mut second = TraceWriter::create(&tmp.path().join("t2"), header()).expect("create");
    let (id2, how) = second.add_file_with(&src).expect("add");
    assert_eq!((id2.clone(), how), (id1.clone(), Stored::Linked));
    assert_eq!(second.files_hashed_bytes(), 0);
    assert_eq!(
        std::fs::metadata(second.file_path(&id2))
            .expect("copy")
            .ino(),
        std::fs::metadata(&src).expect("src").ino()
    );
    // The same file after a rewrite is a new file again.
    std::fs::remove_file(&src).expect("rm");
    std::fs::write(&src, vec![0xa5; 300_000]).expect("write");
    let (id3, _) = second.add_file_with(&src).expect("add");
    assert_ne!(id3, id1);
    assert_eq!(second.files_hashed_bytes(), 300_000);
}

/// Records `src` into a finished trace in `dir`, as the test harness does
/// (links, nothing hashed twice, nothing fsynced), and returns its id.
fn disposable_trace(dir: &Path, src: &Path) -> FileId {
    let mut w = TraceWriter::create(dir, header()).expect("create");
    let id = w.add_file(src).expect("add");
    w.finish().expect("finish");
    id
}

#[test]
fn a_kept_trace_has_private_copies_that_survive_the_original_changing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("test-binary");
    std::fs::write(&src, b"the recorded program").expect("write");
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let trace = tmp.path().join("t");
    let id = disposable_trace(&trace, &src);
    let copy = TraceReader::open(&trace).expect("open").file_path(&id);
    // While recording: a hard link.
    assert_eq!(
        std::fs::metadata(&copy).expect("copy").ino(),
        std::fs::metadata(&src).expect("src").ino()
    );
    let kept = crate::keep(&trace).expect("keep");
    assert_eq!((kept.copied, kept.checked), (1, 0));
    let meta = std::fs::metadata(&copy).expect("copy");
    assert_ne!(meta.ino(), std::fs::metadata(&src).expect("src").ino());
    assert_eq!((meta.nlink(), meta.mode() & 0o777), (1, 0o700));
    // Rewritten in place (the same inode), then replaced (a new inode).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"THE CHANGED PROGRAM!"))
        .expect("rewrite");
    assert_eq!(std::fs::read(&copy).expect("read"), b"the recorded program");
    std::fs::remove_file(&src).expect("rm");
    std::fs::write(&src, b"rebuilt").expect("write");
    assert_eq!(std::fs::read(&copy).expect("read"), b"the recorded program");
    // Keeping again finds private copies and only checks them.
    let again = crate::keep(&trace).expect("keep again");
    assert_eq!((again.copied, again.checked), (0, 1));
    assert_eq!(files_in(&trace), vec![id.0.clone()]);
}

#[test]
fn a_trace_whose_original_changed_in_place_before_it_was_kept_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("lib.so");
    std::fs::write(&src, b"library version 1").expect("write");
    let trace = tmp.path().join("t");
    let id = disposable_trace(&trace, &src);
    // The same inode, same size, other bytes: the link shows them.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"library version 2"))
        .expect("rewrite");
    let err = crate::keep(&trace).expect_err("changed");
    let text = err.to_string();
    assert!(
        text.contains(&id.0) && text.contains("changed in place"),
        "{text}"
    );
    // No entry with wrong bytes is left for a replay to use.
    assert!(files_in(&trace).is_empty(), "{:?}", files_in(&trace));
    assert_eq!(std::fs::read(&src).expect("src"), b"library version 2");
}

#[test]
fn keeping_removes_leftover_temporary_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("data");
    std::fs::write(&src, b"data").expect("write");
    let trace = tmp.path().join("t");
    let id = disposable_trace(&trace, &src);
    std::fs::write(trace.join("files").join(".tmp-1-2"), b"half").expect("write");
    crate::keep(&trace).expect("keep");
    assert_eq!(files_in(&trace), vec![id.0]);
}

/// Records `sources` (name, bytes) into a finished disposable trace in
/// `dir` and returns their ids, in order.
fn disposable_trace_of(dir: &Path, sources: &[(&str, Vec<u8>)]) -> Vec<FileId> {
    let mut w = TraceWriter::create(&dir.join("t"), header()).expect("create");
    let ids = sources
        .iter()
        .map(|(name, bytes)| {
            let src = dir.join(name);
            std::fs::write(&src, bytes).expect("write");
            w.add_file(&src).expect("add")
        })
        .collect();
    w.finish().expect("finish");
    ids
}

/// Several entries, small and large (copied and fsynced concurrently):
/// each is replaced by its own private copy with the recorded bytes, and
/// nothing temporary is left.
#[test]
fn keeping_copies_every_entry_of_a_trace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sources: Vec<(&str, Vec<u8>)> = vec![
        ("big", (0..3_000_000u32).map(|i| (i % 251) as u8).collect()),
        ("small", b"small".to_vec()),
        ("empty", Vec::new()),
        ("medium", vec![9u8; 300_000]),
    ];
    let ids = disposable_trace_of(tmp.path(), &sources);
    let trace = tmp.path().join("t");
    let kept = crate::keep(&trace).expect("keep");
    let total: usize = sources.iter().map(|(_, b)| b.len()).sum();
    assert_eq!((kept.copied, kept.checked), (4, 0));
    assert_eq!(kept.bytes, total as u64);
    let mut want: Vec<String> = ids.iter().map(|id| id.0.clone()).collect();
    want.sort();
    assert_eq!(
        files_in(&trace),
        want,
        "only the entries, nothing temporary"
    );
    let r = TraceReader::open(&trace).expect("open");
    for ((name, bytes), id) in sources.iter().zip(&ids) {
        let copy = r.file_path(id);
        let meta = std::fs::metadata(&copy).expect("copy");
        assert_eq!(meta.nlink(), 1, "{name} is private");
        assert_ne!(
            meta.ino(),
            std::fs::metadata(tmp.path().join(name)).expect("src").ino()
        );
        assert_eq!(&std::fs::read(&copy).expect("read"), bytes, "{name}");
    }
}

/// More entries than keeping has fsyncs under way at once (32): all are
/// copied; kept again, all are checked in place.
#[test]
fn keeping_many_entries_copies_then_checks_them_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..70).map(|i| format!("lib{i}.so")).collect();
    let sources: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|n| (n.as_str(), format!("contents of {n}").into_bytes()))
        .collect();
    let ids = disposable_trace_of(tmp.path(), &sources);
    let trace = tmp.path().join("t");
    let kept = crate::keep(&trace).expect("keep");
    assert_eq!((kept.copied, kept.checked), (70, 0));
    assert_eq!(files_in(&trace).len(), 70, "nothing temporary");
    let again = crate::keep(&trace).expect("keep again");
    assert_eq!((again.copied, again.checked), (0, 70));
    let r = TraceReader::open(&trace).expect("open");
    for ((_, bytes), id) in sources.iter().zip(&ids) {
        assert_eq!(&std::fs::read(r.file_path(id)).expect("read"), bytes);
    }
}

/// One entry of several changed in place before keeping: keeping still
/// makes every other one a private copy, removes that one, and fails
/// naming it; no temporary file is left.
#[test]
fn one_changed_entry_of_several_is_removed_and_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sources: Vec<(&str, Vec<u8>)> = vec![
        ("a.so", vec![1u8; 200_000]),
        ("b.so", b"library b, version 1".to_vec()),
        ("c.so", vec![3u8; 50_000]),
    ];
    let ids = disposable_trace_of(tmp.path(), &sources);
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("b.so"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"LIBRARY B, VERSION 2"))
        .expect("rewrite");
    let trace = tmp.path().join("t");
    let text = crate::keep(&trace).expect_err("b.so changed").to_string();
    assert!(
        text.contains(&ids[1].0) && text.contains("changed in place"),
        "{text}"
    );
    let mut want = vec![ids[0].0.clone(), ids[2].0.clone()];
    want.sort();
    assert_eq!(files_in(&trace), want);
    let r = TraceReader::open(&trace).expect("open");
    for i in [0, 2] {
        let copy = r.file_path(&ids[i]);
        assert_eq!(std::fs::metadata(&copy).expect("copy").nlink(), 1);
        assert_eq!(std::fs::read(&copy).expect("read"), sources[i].1);
    }
}

/// A trace whose `files/` is missing (a recording that stopped early) is
/// kept: its other files are fsynced.
#[test]
fn a_trace_without_files_is_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("t");
    TraceWriter::create(&trace, header())
        .and_then(TraceWriter::finish)
        .expect("trace");
    std::fs::remove_dir(trace.join("files")).expect("rmdir");
    assert_eq!(crate::keep(&trace).expect("keep"), crate::Kept::default());
    // A trace directory that is not there is an error, naming it.
    let gone = tmp.path().join("gone");
    let text = crate::keep(&gone).expect_err("missing").to_string();
    assert!(text.contains(&gone.display().to_string()), "{text}");
}

#[test]
fn a_file_the_program_may_write_is_copied_not_linked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("data");
    std::fs::write(&src, b"mapped read-write").expect("write");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create(&trace, header()).expect("create");
    // Known and linked first (e.g. mapped read-only earlier)...
    let (linked, how) = w.add_file_with(&src).expect("add");
    assert_eq!(how, Stored::Linked);
    // ...then mapped from a writable descriptor: the link becomes a copy.
    let id = w.add_file_copy(&src).expect("copy");
    assert_eq!(id, linked);
    let meta = std::fs::metadata(w.file_path(&id)).expect("copy");
    assert_eq!(meta.nlink(), 1);
    assert_ne!(meta.ino(), std::fs::metadata(&src).expect("src").ino());
    // The program writes to it: the trace keeps what was mapped.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"MAPPED"))
        .expect("rewrite");
    w.finish().expect("finish");
    crate::keep(&trace).expect("keep");
    assert_eq!(
        std::fs::read(trace.join("files").join(&id.0)).expect("read"),
        b"mapped read-write"
    );
}

/// A deferred writer whose program passed leaves nothing on disk; one that
/// finishes writes the same trace an eager writer would, its files linked
/// from the descriptors it kept open (even after the path was replaced).
#[test]
fn a_deferred_trace_is_written_only_if_finished() {
    use crate::{Event, Tid};
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = tmp.path().join("lib.so");
    std::fs::write(&lib, b"library bytes").expect("write");
    let event = |tid: Tid| Event::Rdtsc {
        tid,
        ip: 0x1000,
        tsc: 42,
        aux: None,
    };

    let dropped = tmp.path().join("traces").join("dropped");
    let mut w = TraceWriter::create_deferred(&dropped, header()).expect("deferred");
    w.push(&event(1)).expect("push");
    let id = w.add_file(&lib).expect("note");
    assert_eq!(id, file_id_of(b"library bytes"));
    assert!(w.is_deferred());
    w.discard().expect("discard");
    assert!(!tmp.path().join("traces").exists(), "nothing written");
    assert_eq!(std::fs::metadata(&lib).expect("lib").nlink(), 1);

    let kept = tmp.path().join("traces").join("kept");
    let mut w = TraceWriter::create_deferred(&kept, header()).expect("deferred");
    w.push(&event(1)).expect("push");
    let (id, how) = w.add_file_with(&lib).expect("note");
    assert_eq!(how, Stored::Deferred);
    // Replaced (as a rebuild would) before the trace is written: the trace
    // holds the inode that was noted.
    std::fs::remove_file(&lib).expect("rm");
    std::fs::write(&lib, b"rebuilt").expect("write");
    w.push(&event(2)).expect("push");
    assert!(!kept.exists());
    w.finish().expect("finish");
    assert_eq!(
        std::fs::metadata(&kept).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(files_in(&kept), vec![id.0.clone()]);
    let mut r = TraceReader::open(&kept).expect("open");
    assert_eq!(
        std::fs::read(r.file_path(&id)).expect("read"),
        b"library bytes"
    );
    let events: Vec<Event> = std::iter::from_fn(|| r.next_event().expect("event")).collect();
    assert_eq!(events, vec![event(1), event(2)]);
}

/// A deferred writer writes its directory when a file must be copied now
/// (the program may change it) and when its stream outgrows memory.
#[test]
fn a_deferred_trace_materializes_when_it_must() {
    use crate::Event;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::write(&data, b"data the program wrote").expect("write");

    let copied = tmp.path().join("copied");
    let mut w = TraceWriter::create_deferred(&copied, header()).expect("deferred");
    // Written just now, so possibly by the program: a copy, now.
    let id = w.add_file_unless_modified(&data).expect("add");
    assert!(!w.is_deferred() && copied.join("files").join(&id.0).is_file());
    assert_eq!(std::fs::metadata(&data).expect("data").nlink(), 1);
    w.discard().expect("discard");
    assert!(!copied.exists(), "a discarded trace is removed");

    let big = tmp.path().join("big");
    let mut w = TraceWriter::create_deferred(&big, header()).expect("deferred");
    w.set_memory_limit(4096);
    let mut n = 0u64;
    while w.is_deferred() {
        n += 1;
        assert!(n < 1_000_000, "never spilled");
        w.push(&Event::Rdtsc {
            tid: 1,
            ip: n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            tsc: n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
            aux: None,
        })
        .expect("push");
    }
    assert!(big.join("events.zst").is_file());
    w.finish().expect("finish");
    let mut r = TraceReader::open(&big).expect("open");
    let read = std::iter::from_fn(|| r.next_event().expect("event")).count() as u64;
    assert_eq!(read, n);
}

/// A deferred writer holds a descriptor per noted file: past 256 files it
/// writes its directory and stores the rest as it goes.
#[test]
fn a_deferred_trace_materializes_past_256_open_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("t");
    let mut w = TraceWriter::create_deferred(&trace, header()).expect("deferred");
    for i in 0..=256 {
        let path = tmp.path().join(format!("lib{i}.so"));
        std::fs::write(&path, format!("library {i}")).expect("write");
        assert!(w.is_deferred(), "materialized before file {i}");
        w.add_file(&path).expect("add");
    }
    assert!(!w.is_deferred());
    w.finish().expect("finish");
    assert_eq!(files_in(&trace).len(), 257);
}
