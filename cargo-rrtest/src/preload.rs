//! The syscall-buffer preload library, embedded in the binary, and its
//! on-disk copy.
//!
//! `build.rs` compiles `preload/` into a `no_std` cdylib; [`PRELOAD_SO`] holds
//! its bytes, so an installed `cargo-rrtest` needs nothing else to record.
//! [`preload_path`] writes them once per content hash into a cache
//! directory (`$XDG_CACHE_HOME/cargo-rrtest`, else `~/.cache/cargo-rrtest`,
//! else a per-user directory under the system temp dir), atomically (a
//! temp file in the same directory, then a rename), mode 0755, and reuses an
//! existing copy whose content is right.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rrtest_sys::dirs::{own_uid, user_cache_dirs};
use sha2::{Digest, Sha256};

/// The preload library's bytes (empty on targets it is not built for).
pub static PRELOAD_SO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/librrtest_preload.so"));

/// The file name of the library with content `bytes`:
/// `preload-<first 16 hex digits of its SHA-256>.so`.
pub fn file_name(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("preload-{hex}.so")
}

/// Whether `path` names a library [`file_name`] could have made: this build's
/// or another build's preload, as a recorded `LD_PRELOAD` holds it.
pub fn is_preload_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.strip_prefix("preload-")
        .and_then(|rest| rest.strip_suffix(".so"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The path of the embedded library on disk, writing it first if needed.
pub fn preload_path() -> io::Result<PathBuf> {
    if PRELOAD_SO.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this cargo-rrtest was built without the preload library (x86_64 Linux only)",
        ));
    }
    let dirs = user_cache_dirs()?;
    let mut failures = Vec::new();
    for dir in &dirs {
        match install_in(dir, PRELOAD_SO) {
            Ok(path) => return Ok(path),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(io::Error::other(format!(
        "cannot write the preload library to any cache directory ({})",
        failures.join("; ")
    )))
}

/// Writes `bytes` into `dir` under [`file_name`], unless an executable file
/// with that exact content is already there; returns its path.
pub fn install_in(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.uid() != own_uid()? {
        // In a shared directory (the temp fallback) someone else could
        // replace the file between our check and the tracee's exec.
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "directory is owned by another user",
        ));
    }
    let path = dir.join(file_name(bytes));
    if let Ok(existing) = fs::metadata(&path) {
        if existing.is_file()
            && existing.permissions().mode() & 0o777 == 0o755
            && fs::read(&path).is_ok_and(|b| b == bytes)
        {
            return Ok(path);
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".preload-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))?;
    // rename(2): readers see the old file or the complete new one.
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_library_is_a_shared_object() {
        assert!(PRELOAD_SO.len() > 64, "preload library is empty");
        assert_eq!(&PRELOAD_SO[..4], b"\x7fELF");
        assert_eq!(PRELOAD_SO[4], 2, "ELFCLASS64");
        assert_eq!(
            u16::from_le_bytes([PRELOAD_SO[16], PRELOAD_SO[17]]),
            3,
            "ET_DYN"
        );
        assert!(
            PRELOAD_SO.windows(12).any(|w| w == b"syscall_hook"),
            "exports syscall_hook"
        );
    }

    #[test]
    fn installs_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        let bytes = b"\x7fELF not really".as_slice();
        let path = install_in(&sub, bytes).unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            file_name(bytes)
        );
        assert_eq!(fs::read(&path).unwrap(), bytes);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);

        // Reused: same inode, no leftover temp files.
        let again = install_in(&sub, bytes).unwrap();
        assert_eq!(again, path);
        assert_eq!(fs::metadata(&again).unwrap().ino(), meta.ino());
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);
    }

    #[test]
    fn a_damaged_copy_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"library v1".as_slice();
        let path = install_in(dir.path(), bytes).unwrap();
        fs::write(&path, b"truncat").unwrap();
        let fixed = install_in(dir.path(), bytes).unwrap();
        assert_eq!(fixed, path);
        assert_eq!(fs::read(&fixed).unwrap(), bytes);

        // Right content, wrong mode: replaced too.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let fixed = install_in(dir.path(), bytes).unwrap();
        assert_eq!(
            fs::metadata(&fixed).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn different_content_gets_a_different_name() {
        assert_ne!(file_name(b"one"), file_name(b"two"));
        let name = file_name(b"one");
        assert!(name.starts_with("preload-") && name.ends_with(".so"));
        assert_eq!(name.len(), "preload-".len() + 16 + ".so".len());
    }

    #[test]
    fn preload_file_names_are_recognised() {
        assert!(is_preload_file(&Path::new("/c").join(file_name(b"x"))));
        assert!(!is_preload_file(Path::new("/opt/rrtest-tools/libfoo.so")));
        assert!(!is_preload_file(Path::new("/c/preload-xyz.so")));
        assert!(!is_preload_file(Path::new(
            "/c/preload-0123456789abcdef.so.1"
        )));
    }

    #[test]
    fn preload_path_writes_the_embedded_library() {
        let path = preload_path().unwrap();
        assert_eq!(fs::read(&path).unwrap(), PRELOAD_SO);
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            file_name(PRELOAD_SO)
        );
    }
}
