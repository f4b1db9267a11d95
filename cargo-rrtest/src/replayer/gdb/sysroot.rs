//! A per-session sysroot for gdb: a private temporary directory holding,
//! at each path a file had while recording (the program, its loader, its
//! libraries), a symlink to the trace's copy. `set sysroot DIR` makes gdb
//! read those files locally, by the names the program's link map gives
//! (`info sharedlibrary`, `bt` through libraries), instead of through
//! `vFile:` one packet at a time (which still serves any file gdb asks
//! for by a name not linked here).
//!
//! A recording names a file by the path the kernel resolved (`/usr/lib/...`
//! on a merged-`/usr` system) while the link map names it as the loader
//! found it (`/lib/...`): each file is linked under both spellings of
//! the merged-`/usr` directories. `usr/lib/debug` links to this machine's
//! separate debug files (gdb checks them by build id).
//!
//! The directory is `$TMPDIR/cargo-rrtest-sysroot-<pid>-...`, removed when
//! the [`Sysroot`] is dropped; one a killed session left is removed by the
//! next replay (`cli/tempdirs.rs`).
//!
//! This file must not read the trace: it is given the files.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use rrtest_trace::pack::PrivateTempDir;

/// The directory's prefix after `cargo-rrtest-` (see the module doc).
pub const WHAT: &str = "sysroot";

/// A sysroot directory, removed on drop.
#[derive(Debug)]
pub struct Sysroot {
    dir: PrivateTempDir,
    /// How many files it links.
    pub linked: usize,
}

impl Sysroot {
    /// Links `files` (recorded absolute path -> the trace's copy) into a
    /// fresh directory. Paths that are not absolute or hold `..` are
    /// skipped (a trace names them; it must not place links outside).
    pub fn build(files: &HashMap<String, PathBuf>) -> std::io::Result<Sysroot> {
        let dir = PrivateTempDir::new(WHAT).map_err(std::io::Error::other)?;
        let mut linked = 0;
        let mut paths: Vec<(String, &PathBuf)> = files
            .iter()
            .flat_map(|(p, copy)| spellings(p).into_iter().map(move |p| (p, copy)))
            .collect();
        paths.sort();
        let debug = Path::new("/usr/lib/debug");
        if debug.is_dir() {
            let at = dir.path().join("usr/lib");
            std::fs::create_dir_all(&at)?;
            std::os::unix::fs::symlink(debug, at.join("debug"))?;
        }
        for (recorded, copy) in paths {
            let Some(at) = inside(dir.path(), &recorded) else {
                continue;
            };
            let copy = std::path::absolute(copy)?;
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // A path named twice, or below a name that is a link already:
            // the first one stays.
            if std::os::unix::fs::symlink(&copy, &at).is_ok() {
                linked += 1;
            }
        }
        Ok(Sysroot { dir, linked })
    }

    /// The directory, for `set sysroot`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The names a file at `path` has on a merged-`/usr` system: `path`, and
/// `/lib/x` for `/usr/lib/x` (and so on for `lib64`, `bin`, `sbin`), or
/// the other way round.
fn spellings(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    for dir in ["lib", "lib64", "lib32", "libx32", "bin", "sbin"] {
        let short = format!("/{dir}/");
        let long = format!("/usr/{dir}/");
        if let Some(rest) = path.strip_prefix(&long) {
            out.push(format!("{short}{rest}"));
        } else if let Some(rest) = path.strip_prefix(&short) {
            out.push(format!("{long}{rest}"));
        }
    }
    out
}

/// `recorded` (absolute, without `..`) under `root`.
fn inside(root: &Path, recorded: &str) -> Option<PathBuf> {
    let path = Path::new(recorded);
    let mut out = root.to_path_buf();
    let mut parts = path.components();
    if parts.next() != Some(Component::RootDir) {
        return None;
    }
    for part in parts {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (out != root).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_recorded_paths_to_the_copies_and_removes_them() {
        let trace = tempfile::tempdir().unwrap();
        let copy = trace.path().join("abc");
        std::fs::write(&copy, b"ELF").unwrap();
        let files = HashMap::from([
            (
                "/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                copy.clone(),
            ),
            ("/lib64/ld-linux-x86-64.so.2".to_string(), copy.clone()),
            ("/opt/app/prog".to_string(), copy.clone()),
            ("relative/lib.so".to_string(), copy.clone()),
            ("/lib/../../etc/passwd".to_string(), copy.clone()),
        ]);
        let root = Sysroot::build(&files).unwrap();
        let dir = root.path().to_path_buf();
        assert_eq!(root.linked, 5);
        for libc in [
            "lib/x86_64-linux-gnu/libc.so.6",
            "usr/lib/x86_64-linux-gnu/libc.so.6",
        ] {
            let libc = dir.join(libc);
            assert_eq!(std::fs::read(&libc).unwrap(), b"ELF");
            assert_eq!(std::fs::read_link(&libc).unwrap(), copy);
        }
        assert!(dir.join("usr/lib64/ld-linux-x86-64.so.2").exists());
        assert!(dir.join("opt/app/prog").exists());
        assert!(!dir.join("relative").exists() && !dir.join("etc").exists());
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("cargo-rrtest-sysroot-"), "{name}");
        drop(root);
        assert!(!dir.exists());
    }
}
