//! The per-user cache directories cargo-rrtest writes to (the preload
//! library's copy, the file-identity cache of traces, replay's executable
//! copies): `$XDG_CACHE_HOME/cargo-rrtest`, else `~/.cache/cargo-rrtest`,
//! else a per-user directory under the system temp dir.
//!
//! Only the candidates, best first: callers create and check them (the
//! temp-dir one may be anyone's, so they verify ownership before trusting it).

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The per-user cache directories, best first (see [`cache_dirs`]).
pub fn user_cache_dirs() -> io::Result<Vec<PathBuf>> {
    Ok(cache_dirs(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
        &std::env::temp_dir(),
        own_uid()?,
    ))
}

/// This process's effective uid: the owner of its `/proc/self` directory
/// (no `getuid` call needed).
pub fn own_uid() -> io::Result<u32> {
    Ok(fs::metadata("/proc/self")?.uid())
}

/// The candidate directories, best first. Relative `XDG_CACHE_HOME` or
/// `HOME` values are ignored (the XDG spec says so for the former).
pub fn cache_dirs(
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
    temp: &Path,
    uid: u32,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(xdg) = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        dirs.push(xdg.join("cargo-rrtest"));
    }
    if let Some(home) = home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        dirs.push(home.join(".cache").join("cargo-rrtest"));
    }
    dirs.push(temp.join(format!("cargo-rrtest-{uid}")));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_directory_preference() {
        let tmp = Path::new("/tmp");
        assert_eq!(
            cache_dirs(Some("/x/cache".into()), Some("/home/u".into()), tmp, 7),
            vec![
                PathBuf::from("/x/cache/cargo-rrtest"),
                PathBuf::from("/home/u/.cache/cargo-rrtest"),
                PathBuf::from("/tmp/cargo-rrtest-7"),
            ]
        );
        // Relative values are ignored.
        assert_eq!(
            cache_dirs(Some("rel".into()), Some("".into()), tmp, 0),
            vec![PathBuf::from("/tmp/cargo-rrtest-0")]
        );
    }

    #[test]
    fn the_own_uid_is_the_owner_of_a_new_file() {
        let dir = std::env::temp_dir();
        let file = tempfile_in(&dir);
        let owner = fs::metadata(&file).map(|m| m.uid());
        let _ = fs::remove_file(&file);
        assert_eq!(own_uid().ok(), owner.ok());
    }

    fn tempfile_in(dir: &Path) -> PathBuf {
        let path = dir.join(format!("rrtest-sys-uid-{}", std::process::id()));
        fs::write(&path, b"").expect("write a temp file");
        path
    }
}
