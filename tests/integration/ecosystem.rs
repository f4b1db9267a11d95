//! How users reach a kept trace: `replay NAME` with the name as they type
//! it (exact, a unique `::` suffix, a unique part; several matches listed
//! with a command each, exit 2), and CI artifacts as they download them (a
//! `.zip` of the archives, or a folder of them), including zips that must be
//! refused (an entry escaping the folder, an oversized entry).
//!
//! They share one recorded run of three demo tests (two fail, one is
//! flaky) with `--retries 1 --artifact-name rrtest-traces-1`, in a target
//! directory of their own (a copy of the built demo's), which no other
//! trial records into.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::harness::{copy_demo_target, demo_manifest, report_of, rrtest, tests_by_key, RunOutput};
use crate::product::replay;

/// This module's target directory.
fn target() -> PathBuf {
    common::scratch_dir("ecosystem-target")
}

/// This module's report.
fn report_path() -> PathBuf {
    common::scratch_dir("ecosystem-out").join("report.json")
}

/// The recorded run the trials share.
fn ecosystem_run() -> &'static RunOutput {
    static RUN: OnceLock<RunOutput> = OnceLock::new();
    RUN.get_or_init(|| {
        let target = target();
        copy_demo_target(&target).expect("a copy of the built demo's target directory");
        let manifest = demo_manifest();
        rrtest(
            &[
                "--manifest-path",
                utf8(&manifest),
                "--target-dir",
                utf8(&target),
                "--retries",
                "1",
                "--timeout",
                "30",
                "--artifact-name",
                "rrtest-traces-1",
                "--cargo-quiet",
                "checksum_matches",
                "worker_panics",
                "flaky_first_attempt",
            ],
            &[],
            &report_path(),
        )
    })
}

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("ecosystem::replay_names_as_typed", replay_names_as_typed),
        Trial::test(
            "ecosystem::replay_names_by_scanning",
            replay_names_by_scanning,
        ),
        Trial::test(
            "ecosystem::replay_from_zip_and_folder",
            replay_from_zip_and_folder,
        ),
        Trial::test("ecosystem::hostile_zips_refused", hostile_zips_refused),
    ]
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The demo's checksum test panics with this; worker_panics with the other.
const CHECKSUM_PANIC: &str = "left: 295";
const WORKER_PANIC: &str = "worker got an empty list";

fn replay_names_as_typed() -> Result<(), Failed> {
    report_of(ecosystem_run())?;
    let demo = common::fixtures_dir().join("demo");
    let target = target();
    let report = report_path();
    let with = |name: &str| -> (i32, String) {
        replay(
            &demo,
            &[
                "--target-dir",
                utf8(&target),
                "--report",
                utf8(&report),
                name,
            ],
        )
    };
    // Exact, a unique `::` suffix, a unique part.
    for name in [
        "demo-core::tests::checksum_matches",
        "checksum_matches",
        "checksum_match",
    ] {
        let (code, text) = with(name);
        check!(
            code == 101 && text.contains(CHECKSUM_PANIC),
            "replay {name}: exit {code}:\n{text}"
        );
    }
    let (code, text) = with("worker_panics");
    check!(
        code == 101 && text.contains(WORKER_PANIC),
        "replay worker_panics: exit {code}:\n{text}"
    );
    // Ambiguous: both `tests::` failures; each listed with its binary id and
    // a command that replays it alone.
    let (code, text) = with("tests");
    check!(code == 2, "ambiguous: exit {code}:\n{text}");
    check!(
        text.contains("`tests` matches 2 tests")
            && text.contains("demo-core tests::checksum_matches")
            && text.contains("demo-app tests::worker_panics_on_empty_input"),
        "ambiguous listing:\n{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("demo-core tests::checksum_matches"))
        .unwrap_or_default();
    let command = line
        .split_once("cargo rrtest replay ")
        .map(|(_, c)| c)
        .ok_or_else(|| format!("no command in `{line}`"))?;
    let words: Vec<&str> = command.split_whitespace().collect();
    let (code, listed) = replay(&demo, &words);
    check!(
        code == 101 && listed.contains(CHECKSUM_PANIC),
        "the listed command `{command}`: exit {code}:\n{listed}"
    );
    // No match.
    let (code, text) = with("no_such_test_anywhere");
    check!(
        code == 2 && text.contains("no kept trace of a test named `no_such_test_anywhere`"),
        "no match: exit {code}:\n{text}"
    );
    Ok(())
}

fn replay_names_by_scanning() -> Result<(), Failed> {
    report_of(ecosystem_run())?;
    let demo = common::fixtures_dir().join("demo");
    let target = target();
    let missing = common::scratch_dir("ecosystem-out").join("no-such-report.json");
    let with = |name: &str| -> (i32, String) {
        replay(
            &demo,
            &[
                "--target-dir",
                utf8(&target),
                "--report",
                utf8(&missing),
                name,
            ],
        )
    };
    // Without a report, the trace directories' file-name-safe names match
    // names as typed too.
    let (code, text) = with("api::flaky_first_attempt");
    check!(
        code == 101 && text.contains("first attempt fails"),
        "flaky by suffix: exit {code}:\n{text}"
    );
    let (code, text) = with("checksum");
    check!(
        code == 101 && text.contains(CHECKSUM_PANIC),
        "checksum by part: exit {code}:\n{text}"
    );
    let (code, text) = with("tests");
    check!(
        code == 2
            && text.contains("demo-core tests__checksum_matches")
            && text.contains("demo-app tests__worker_panics_on_empty_input"),
        "ambiguous by scanning: exit {code}:\n{text}"
    );
    Ok(())
}

/// The archives of the demo run, relative to `archives/`, as the example
/// workflow uploads them.
fn demo_archives() -> Result<(PathBuf, Vec<PathBuf>), Failed> {
    let root = target().join("rrtest/archives");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".tar.zst") {
                out.push(p.strip_prefix(&root)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok((root, out))
}

/// Writes a zip of `files` (name in the zip, path on disk), stored as
/// `compression-level: 0` uploads are, or deflated.
pub(crate) fn write_zip(
    zip: &Path,
    files: &[(String, PathBuf)],
    deflate: bool,
) -> Result<(), Failed> {
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let mut w = zip::ZipWriter::new(std::fs::File::create(zip)?);
    for (name, path) in files {
        w.start_file(
            name.as_str(),
            zip::write::SimpleFileOptions::default().compression_method(method),
        )?;
        w.write_all(&std::fs::read(path)?)?;
    }
    w.finish()?;
    Ok(())
}

fn replay_from_zip_and_folder() -> Result<(), Failed> {
    let tests = tests_by_key(report_of(ecosystem_run())?);
    let (root, archives) = demo_archives()?;
    check!(
        archives.len() >= 3,
        "too few archives to make an artifact of: {archives:?}"
    );
    let elsewhere = tempfile::tempdir()?;
    let files: Vec<(String, PathBuf)> = archives
        .iter()
        .map(|rel| (rel.to_string_lossy().into_owned(), root.join(rel)))
        .collect();
    let zip = elsewhere.path().join("rrtest-traces-1.zip");
    write_zip(&zip, &files, true)?;
    // The report's command, as given, in a directory with only the zip.
    let command = tests["demo-core tests::checksum_matches"]["replay_command"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    check!(
        words.len() == 5 && words[..3] == ["cargo", "rrtest", "replay"],
        "replay command {command}"
    );
    let (code, text) = replay(elsewhere.path(), &words[3..]);
    check!(
        code == 101 && text.contains(CHECKSUM_PANIC),
        "`{command}` on the zip: exit {code}:\n{text}"
    );
    // A name as typed.
    let (code, text) = replay(elsewhere.path(), &["rrtest-traces-1.zip", "worker_panics"]);
    check!(
        code == 101 && text.contains(WORKER_PANIC),
        "zip + worker_panics: exit {code}:\n{text}"
    );
    // No TEST: the zip holds several; they are listed.
    let (code, text) = replay(elsewhere.path(), &["rrtest-traces-1.zip"]);
    check!(
        code == 2
            && text.contains("holds the traces of")
            && text.contains("demo-core tests__checksum_matches")
            && text.contains(
                "cargo rrtest replay rrtest-traces-1.zip demo-core/tests__checksum_matches/attempt-2.tar.zst"
            ),
        "zip listing: exit {code}:\n{text}"
    );
    // A zip with one archive replays it without a name (stored, as
    // `compression-level: 0` uploads it).
    let one = elsewhere.path().join("one.zip");
    let worker: Vec<(String, PathBuf)> = files
        .iter()
        .filter(|(n, _)| n.contains("worker_panics"))
        .take(1)
        .cloned()
        .collect();
    check!(worker.len() == 1, "no worker archive in {files:?}");
    write_zip(&one, &worker, false)?;
    let (code, text) = replay(elsewhere.path(), &["one.zip"]);
    check!(
        code == 101 && text.contains(WORKER_PANIC),
        "one.zip: exit {code}:\n{text}"
    );
    // A folder of the archives (unzipped, or `gh run download -D`); the
    // report's `NAME.zip` command finds the folder `NAME` when the zip is
    // not there.
    let folder_home = tempfile::tempdir()?;
    let folder = folder_home.path().join("rrtest-traces-1");
    for (name, path) in &files {
        let to = folder.join(name);
        std::fs::create_dir_all(to.parent().ok_or("no parent")?)?;
        std::fs::copy(path, &to)?;
    }
    let (code, text) = replay(folder_home.path(), &["rrtest-traces-1", "checksum"]);
    check!(
        code == 101 && text.contains(CHECKSUM_PANIC),
        "folder + checksum: exit {code}:\n{text}"
    );
    let (code, text) = replay(folder_home.path(), &words[3..]);
    check!(
        code == 101 && text.contains(CHECKSUM_PANIC) && text.contains("reading the folder"),
        "`{command}` on the folder: exit {code}:\n{text}"
    );
    let (code, text) = replay(folder_home.path(), &["rrtest-traces-1", "nothing_like_it"]);
    check!(
        code == 2 && text.contains("matches `nothing_like_it`"),
        "folder, no match: exit {code}:\n{text}"
    );
    // Nothing extracted is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("cargo-rrtest-replay-")
        })
        .collect();
    check!(leftovers.is_empty(), "extracted copies left: {leftovers:?}");
    Ok(())
}

/// A one-entry zip whose central directory says, in a zip64 field, that
/// the stored entry `name` inflates to `declared` bytes while it holds
/// `data`: what a hostile artifact can claim.
fn zip64_declaring(name: &str, data: &[u8], declared: u64) -> Vec<u8> {
    let mut z = Vec::new();
    let le16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let le32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    let le64 = |v: &mut Vec<u8>, x: u64| v.extend_from_slice(&x.to_le_bytes());
    let extra = |v: &mut Vec<u8>| {
        le16(v, 0x0001);
        le16(v, 16);
        le64(v, declared);
        le64(v, data.len() as u64);
    };
    // Local file header.
    le32(&mut z, 0x0403_4b50);
    le16(&mut z, 45);
    le16(&mut z, 0);
    le16(&mut z, 0); // stored
    le16(&mut z, 0);
    le16(&mut z, 0x21);
    le32(&mut z, 0);
    le32(&mut z, u32::MAX);
    le32(&mut z, u32::MAX);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 20);
    z.extend_from_slice(name.as_bytes());
    extra(&mut z);
    z.extend_from_slice(data);
    // Central directory.
    let cd = z.len();
    le32(&mut z, 0x0201_4b50);
    le16(&mut z, 0x031e);
    le16(&mut z, 45);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0x21);
    le32(&mut z, 0);
    le32(&mut z, u32::MAX);
    le32(&mut z, u32::MAX);
    le16(&mut z, name.len() as u16);
    le16(&mut z, 20);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le32(&mut z, 0o100_644 << 16);
    le32(&mut z, 0);
    z.extend_from_slice(name.as_bytes());
    extra(&mut z);
    let cd_len = z.len() - cd;
    // End of central directory.
    le32(&mut z, 0x0605_4b50);
    le16(&mut z, 0);
    le16(&mut z, 0);
    le16(&mut z, 1);
    le16(&mut z, 1);
    le32(&mut z, cd_len as u32);
    le32(&mut z, cd as u32);
    le16(&mut z, 0);
    z
}

fn hostile_zips_refused() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let archive = d.join("a.tar.zst");
    std::fs::write(&archive, b"not really an archive")?;
    // An entry that would land outside the folder it is extracted into.
    write_zip(
        &d.join("escape.zip"),
        &[
            ("demo/t/attempt-1.tar.zst".to_string(), archive.clone()),
            ("../../escaped.tar.zst".to_string(), archive.clone()),
        ],
        false,
    )?;
    let (code, text) = replay(d, &["escape.zip", "t"]);
    check!(
        code == 104
            && text.contains("refusing entry `../../escaped.tar.zst`")
            && text.contains("leaves the folder"),
        "escaping entry: exit {code}:\n{text}"
    );
    check!(
        !d.parent().unwrap_or(d).join("escaped.tar.zst").exists(),
        "an escaping entry was written"
    );
    // An entry declaring more than a trace archive may hold (16 GiB).
    std::fs::write(
        d.join("huge.zip"),
        zip64_declaring("demo/t/attempt-1.tar.zst", b"tiny", 20 << 30),
    )?;
    let (code, text) = replay(d, &["huge.zip"]);
    check!(
        code == 104 && text.contains("inflates to 21474836480 bytes, more than"),
        "oversized entry: exit {code}:\n{text}"
    );
    // A zip bomb: zeros deflate a thousandfold; refused before inflating.
    let zeros = d.join("zeros");
    std::fs::write(&zeros, vec![0u8; 16 << 20])?;
    write_zip(
        &d.join("bomb.zip"),
        &[("demo/t/attempt-1.tar.zst".to_string(), zeros)],
        true,
    )?;
    let (code, text) = replay(d, &["bomb.zip"]);
    check!(
        code == 104 && text.contains("zip bomb"),
        "zip bomb: exit {code}:\n{text}"
    );
    // Not a zip at all.
    std::fs::write(d.join("text.zip"), b"hello")?;
    let (code, text) = replay(d, &["text.zip"]);
    check!(
        code == 104 && text.contains("text.zip"),
        "not a zip: exit {code}:\n{text}"
    );
    // A missing zip, with no folder of its name either.
    let (code, text) = replay(d, &["missing.zip"]);
    check!(
        code == 2 && text.contains("no such trace directory, archive or zip artifact"),
        "missing zip: exit {code}:\n{text}"
    );
    Ok(())
}
