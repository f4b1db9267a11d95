//! CI artifacts as users get them: `replay ARTIFACT.zip [TEST]` (the zip a
//! browser downloads from a GitHub Actions run page) and `replay DIR [TEST]`
//! (a folder of archives: what `gh run download` or unzipping leaves).
//!
//! Both hold `.tar.zst` trace archives, laid out as the harness writes them
//! (`<binary id>/<test>/attempt-<N>.tar.zst`, the layout of
//! `target/rrtest/archives/`, which the example workflow uploads), or in any
//! other layout (each archive is then named by its path). Per test the
//! highest attempt counts. TEST picks one as `select` does; without TEST a
//! single test is replayed and several are listed.
//!
//! A zip is untrusted input, read with the `zip` crate (deflate only). Before
//! anything is extracted every entry's name is checked (relative, no `..`,
//! no NUL: an escaping name refuses the whole zip), symlink entries are
//! refused, the entry count is capped by `pack::Limits::max_entries`, and
//! the one entry extracted is capped by `pack::Limits::max_total_bytes`:
//! declared size first, then the bytes actually inflated (a zip that lies
//! about sizes stops at the cap). A deflated entry declaring more than
//! [`MAX_RATIO`] times its compressed size is refused as a zip bomb before
//! it is inflated: trace archives are zstd-compressed already and do not
//! deflate further. The entry is written owner-only into a private
//! temporary directory under a fixed name; `pack::unpack` then treats it as
//! any archive. This module must not extract anything else or write outside
//! that directory.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::errors::{Error, Result};
use crate::harness::shell_word;
use rrtest_trace::pack;

use super::select::{self, Candidate, Pick};

/// Refuse deflated entries that claim to inflate more than this many times.
pub(crate) const MAX_RATIO: u64 = 100;

/// Entries smaller than this are not judged by their ratio.
const RATIO_FLOOR: u64 = 1 << 20;

/// Folders are searched this deep for archives.
const MAX_DEPTH: usize = 8;

/// Where a chosen archive is: a file, or a zip entry extracted into a
/// private temporary directory that lives as long as this value.
#[derive(Debug)]
pub(super) struct Chosen {
    /// The `.tar.zst` file to unpack.
    pub archive: PathBuf,
    /// How to say which trace it is.
    pub shown: String,
    /// Keeps the extracted copy.
    pub _tmp: Option<pack::PrivateTempDir>,
}

/// Whether `path` names a zip artifact (by its name; the content is checked
/// when it is read).
pub(super) fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// Picks the archive `test` names (or the only one) in the zip `zip`.
pub(super) fn from_zip(zip: &Path, test: Option<&str>) -> Result<Chosen> {
    let limits = pack::Limits::default();
    let file = File::open(zip).map_err(|e| Error::io(zip.display().to_string(), e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(zip, 0, &e.to_string()))?;
    if archive.len() as u64 > limits.max_entries {
        return Err(bad(
            zip,
            0,
            &format!(
                "{} entries, more than the {} allowed",
                archive.len(),
                limits.max_entries
            ),
        ));
    }
    let mut entries: Vec<(String, usize)> = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(zip, 0, &e.to_string()))?;
        let at = entry.header_start();
        let name = entry
            .name()
            .map_err(|e| bad(zip, at, &e.to_string()))?
            .into_owned();
        if !safe_relative(&name) || entry.enclosed_name().is_none() {
            return Err(bad(
                zip,
                at,
                &format!(
                    "refusing entry `{}`: its path is absolute or leaves the folder it would be \
                     extracted into; this is not an artifact cargo rrtest wrote",
                    name.escape_debug()
                ),
            ));
        }
        if entry.is_symlink() {
            return Err(bad(
                zip,
                at,
                &format!("refusing entry `{name}`: it is a symbolic link"),
            ));
        }
        if entry.is_file() && name.ends_with(pack::ARCHIVE_SUFFIX) {
            entries.push((name, i));
        }
    }
    let shown_zip = zip.display().to_string();
    let candidates = candidates(
        entries.iter().map(|(name, _)| name.as_str()),
        &shown_zip,
        |rel| PathBuf::from(rel),
    );
    let chosen = choose(&shown_zip, candidates, test)?;
    let entry_name = chosen.path.to_string_lossy().into_owned();
    let index = entries
        .iter()
        .find(|(n, _)| *n == entry_name)
        .map(|(_, i)| *i)
        .ok_or_else(|| Error::Other(format!("{shown_zip}: entry {entry_name} vanished")))?;
    let tmp = pack::PrivateTempDir::new("replay").map_err(rrtest_trace::Error::from)?;
    let out = tmp.path().join(format!("entry{}", pack::ARCHIVE_SUFFIX));
    extract(&mut archive, zip, index, &out, limits.max_total_bytes)?;
    Ok(Chosen {
        archive: out,
        shown: format!("{shown_zip}: {entry_name}"),
        _tmp: Some(tmp),
    })
}

/// Picks the archive `test` names (or the only one) under the folder `dir`.
pub(super) fn from_folder(dir: &Path, test: Option<&str>) -> Result<Chosen> {
    let limits = pack::Limits::default();
    let mut found = Vec::new();
    walk(dir, dir, 0, &mut found, limits.max_entries);
    let rels: Vec<String> = found
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let shown_dir = dir.display().to_string();
    let candidates = candidates(rels.iter().map(String::as_str), &shown_dir, |rel| {
        dir.join(rel)
    });
    if candidates.is_empty() {
        return Err(Error::Usage(format!(
            "{shown_dir} is neither a trace directory (no {}) nor a folder holding trace archives \
             (*{}); give a trace directory, an archive, a zip artifact or a test name",
            rrtest_trace::HEADER_FILE,
            pack::ARCHIVE_SUFFIX
        )));
    }
    let chosen = choose(&shown_dir, candidates, test)?;
    Ok(Chosen {
        shown: chosen.path.display().to_string(),
        archive: chosen.path,
        _tmp: None,
    })
}

/// Refuses an entry name that is absolute, has `..`/`.` parts, a NUL, a
/// backslash (a Windows separator) or is empty.
fn safe_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\0')
        && !name.contains('\\')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The `.tar.zst` files under `dir`, relative to `root`, sorted; symbolic
/// links are not followed.
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>, max: u64) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() as u64 >= max {
            return;
        }
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        if kind.is_dir() {
            walk(root, &path, depth + 1, out, max);
        } else if kind.is_file()
            && e.file_name()
                .to_string_lossy()
                .ends_with(pack::ARCHIVE_SUFFIX)
        {
            if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
}

/// One candidate per test: `<binary id>/<test>/attempt-<N>.tar.zst` keeps
/// the highest N of each test; an archive in another layout stands alone,
/// named by its folder and file name.
fn candidates<'a>(
    rels: impl Iterator<Item = &'a str>,
    source: &str,
    path_of: impl Fn(&str) -> PathBuf,
) -> Vec<Candidate> {
    let mut best: std::collections::BTreeMap<(String, String), (u32, &str)> = Default::default();
    for rel in rels {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let file = parts.last().copied().unwrap_or(rel);
        let stem = file.strip_suffix(pack::ARCHIVE_SUFFIX).unwrap_or(file);
        let attempt = stem
            .strip_prefix("attempt-")
            .and_then(|n| n.parse::<u32>().ok());
        let key = match (attempt, parts.len()) {
            (Some(_), n) if n >= 3 => (parts[n - 3].to_string(), parts[n - 2].to_string()),
            _ => {
                let folder = parts[..parts.len().saturating_sub(1)].join("/");
                (folder, stem.to_string())
            }
        };
        let n = attempt.unwrap_or(0);
        match best.get(&key) {
            Some((have, _)) if *have >= n => {}
            _ => {
                best.insert(key, (n, rel));
            }
        }
    }
    best.into_iter()
        .map(|((binary_id, name), (_, rel))| Candidate {
            aliases: vec![rel.to_string(), format!("{binary_id}/{name}")],
            replay_args: format!("{} {}", shell_word(source), shell_word(rel)),
            path: path_of(rel),
            binary_id,
            name,
            sanitized: true,
        })
        .collect()
}

/// The one candidate `test` names, or the only one there is.
fn choose(source: &str, candidates: Vec<Candidate>, test: Option<&str>) -> Result<Candidate> {
    let all = candidates.clone();
    let Some(test) = test else {
        return match candidates.len() {
            0 => Err(Error::Usage(format!(
                "{source} holds no trace archives (*{})",
                pack::ARCHIVE_SUFFIX
            ))),
            1 => Ok(candidates.into_iter().next().expect("one")),
            n => Err(Error::Usage(format!(
                "{source} holds the traces of {n} tests; name one (its name, or a unique part of it):\n{}",
                select::listing(&all)
            ))),
        };
    };
    match select::pick(test, candidates) {
        Pick::One(c) => Ok(c),
        Pick::Many(cs) => Err(Error::Usage(format!(
            "`{test}` matches {} tests in {source}; name one:\n{}",
            cs.len(),
            select::listing(&cs)
        ))),
        Pick::None if all.is_empty() => Err(Error::Usage(format!(
            "{source} holds no trace archives (*{})",
            pack::ARCHIVE_SUFFIX
        ))),
        Pick::None => Err(Error::Usage(format!(
            "no trace archive in {source} matches `{test}`; it holds:\n{}",
            select::listing(&all)
        ))),
    }
}

/// Inflates entry `index` of `archive` into a new owner-only file `out`,
/// within `cap` bytes and the ratio rule.
fn extract(
    archive: &mut zip::ZipArchive<File>,
    zip: &Path,
    index: usize,
    out: &Path,
    cap: u64,
) -> Result<()> {
    let entry = archive
        .by_index(index)
        .map_err(|e| bad(zip, 0, &e.to_string()))?;
    let at = entry.header_start();
    let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
    let (size, packed) = (entry.size(), entry.compressed_size());
    if size > cap {
        return Err(bad(
            zip,
            at,
            &format!(
                "refusing entry `{name}`: it inflates to {size} bytes, more than the {cap} a trace \
                 archive may have"
            ),
        ));
    }
    if size > RATIO_FLOOR && size / packed.max(1) > MAX_RATIO {
        return Err(bad(
            zip,
            at,
            &format!(
                "refusing entry `{name}`: {packed} bytes that claim to inflate to {size} (over \
                 {MAX_RATIO} times) look like a zip bomb; trace archives are compressed already"
            ),
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| Error::io(out.display().to_string(), e))?;
    // Never more than declared (the cap at most), whatever the stream says.
    let mut limited = entry.take(size + 1);
    let copied = std::io::copy(&mut limited, &mut file)
        .map_err(|e| bad(zip, at, &format!("entry `{name}` cannot be inflated: {e}")))?;
    if copied != size {
        return Err(bad(
            zip,
            at,
            &format!(
                "entry `{name}` inflates to {}{copied} bytes but declares {size}",
                if copied > size { "more than " } else { "" }
            ),
        ));
    }
    file.flush()
        .map_err(|e| Error::io(out.display().to_string(), e))?;
    Ok(())
}

/// A damaged or refused zip: exit 104, like a damaged archive.
fn bad(zip: &Path, offset: u64, reason: &str) -> Error {
    Error::Trace(rrtest_trace::Error::Corrupt {
        path: zip.display().to_string(),
        what: "zip",
        offset,
        reason: reason.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn write_zip(path: &Path, entries: &[(&str, &[u8], zip::CompressionMethod)]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data, method) in entries {
            w.start_file(
                *name,
                SimpleFileOptions::default().compression_method(*method),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }

    const STORED: zip::CompressionMethod = zip::CompressionMethod::Stored;
    const DEFLATED: zip::CompressionMethod = zip::CompressionMethod::Deflated;

    #[test]
    fn picks_the_latest_attempt_by_name_and_lists_several() {
        let tmp = tempfile::tempdir().unwrap();
        let z = tmp.path().join("a.zip");
        write_zip(
            &z,
            &[
                ("demo-core/tests__fails/attempt-1.tar.zst", b"one", STORED),
                ("demo-core/tests__fails/attempt-2.tar.zst", b"two", DEFLATED),
                ("demo-app/tests__other/attempt-1.tar.zst", b"x", STORED),
                ("README.txt", b"not an archive", STORED),
            ],
        );
        let chosen = from_zip(&z, Some("fails")).unwrap();
        assert!(
            chosen.shown.ends_with("attempt-2.tar.zst"),
            "{}",
            chosen.shown
        );
        assert_eq!(std::fs::read(&chosen.archive).unwrap(), b"two");
        let err = from_zip(&z, None).unwrap_err().to_string();
        assert!(
            err.contains("holds the traces of 2 tests")
                && err.contains("demo-app tests__other")
                && err.contains("a.zip demo-core/tests__fails/attempt-2.tar.zst"),
            "{err}"
        );
        let err = from_zip(&z, Some("nothing")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("matches `nothing`"), "{err}");
    }

    #[test]
    fn escaping_and_absolute_names_refuse_the_zip() {
        let tmp = tempfile::tempdir().unwrap();
        for bad_name in [
            "../evil.tar.zst",
            "/etc/evil.tar.zst",
            "a/../../evil.tar.zst",
        ] {
            let z = tmp.path().join("bad.zip");
            write_zip(
                &z,
                &[
                    ("ok/t/attempt-1.tar.zst", b"x", STORED),
                    (bad_name, b"x", STORED),
                ],
            );
            let err = from_zip(&z, None).unwrap_err();
            assert_eq!(err.exit_code(), 104, "{bad_name}: {err}");
            assert!(err.to_string().contains("refusing entry"), "{err}");
        }
    }

    #[test]
    fn a_zip_bomb_is_refused_before_inflating() {
        let tmp = tempfile::tempdir().unwrap();
        let z = tmp.path().join("bomb.zip");
        let zeros = vec![0u8; 8 << 20];
        write_zip(&z, &[("b/t/attempt-1.tar.zst", &zeros, DEFLATED)]);
        let err = from_zip(&z, None).unwrap_err();
        assert_eq!(err.exit_code(), 104);
        assert!(err.to_string().contains("zip bomb"), "{err}");
    }

    #[test]
    fn not_a_zip_is_a_bad_trace() {
        let tmp = tempfile::tempdir().unwrap();
        let z = tmp.path().join("no.zip");
        std::fs::write(&z, b"hello").unwrap();
        assert_eq!(from_zip(&z, None).unwrap_err().exit_code(), 104);
    }

    #[test]
    fn folders_of_archives_in_any_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("demo-core/tests__fails")).unwrap();
        std::fs::write(d.join("demo-core/tests__fails/attempt-1.tar.zst"), b"").unwrap();
        std::fs::write(d.join("flat-one.tar.zst"), b"").unwrap();
        let c = from_folder(d, Some("tests::fails")).unwrap();
        assert!(c
            .archive
            .ends_with("demo-core/tests__fails/attempt-1.tar.zst"));
        let c = from_folder(d, Some("flat")).unwrap();
        assert!(c.archive.ends_with("flat-one.tar.zst"));
        let empty = tempfile::tempdir().unwrap();
        let err = from_folder(empty.path(), None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("neither a trace directory"),
            "{err}"
        );
    }
}
