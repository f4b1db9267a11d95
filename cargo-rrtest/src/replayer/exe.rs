//! Executing the trace's copy of the program under a path exactly as long as
//! the recorded one.
//!
//! The kernel lays out the initial stack from argv, envp and the path given
//! to `execve` (`AT_EXECFN`). Replay passes the recorded argv and envp, and a
//! symbolic link to the trace's copy of the executable whose path has the
//! recorded path's length, so every stack address, and hence every pointer
//! the program passes to a syscall, is the same as while recording.

use std::io;
use std::path::{Path, PathBuf};

/// A path to exec: the recorded one, or a temporary link of the same length
/// (removed on drop).
#[derive(Debug)]
pub struct SameLengthPath {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl SameLengthPath {
    /// The link's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The path to exec for a program recorded as `recorded` whose copy in the
/// trace is `copy`: `recorded` itself when it still holds the same bytes,
/// else a same-length link to the copy.
pub fn exec_path(copy: &Path, recorded: &Path) -> io::Result<SameLengthPath> {
    let unchanged = match (std::fs::read(copy), std::fs::read(recorded)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if unchanged {
        return Ok(SameLengthPath {
            _dir: None,
            path: recorded.to_path_buf(),
        });
    }
    same_length_link(copy, recorded.as_os_str().len())
}

/// Creates a symbolic link to `target` whose path is `len` bytes long.
pub fn same_length_link(target: &Path, len: usize) -> io::Result<SameLengthPath> {
    let dir = tempfile::Builder::new()
        .prefix("r")
        .rand_bytes(6)
        .tempdir()?;
    let base = dir.path().to_path_buf();
    let base_len = base.as_os_str().len();
    // base + "/" + at least one byte of name.
    if len < base_len + 2 {
        return Err(io::Error::other(format!(
            "the recorded program path is {len} bytes long; replay needs a path of that length and the shortest it can make is {} bytes ({})",
            base_len + 2,
            base.display()
        )));
    }
    let mut remaining = len - base_len - 1;
    let mut parent = base;
    // Directory components of at most 200 bytes, then the link's name.
    while remaining > 255 {
        let take = 200.min(remaining - 2);
        parent = parent.join("d".repeat(take));
        std::fs::create_dir(&parent)?;
        remaining -= take + 1;
    }
    let path = parent.join("x".repeat(remaining));
    std::os::unix::fs::symlink(target, &path)?;
    debug_assert_eq!(path.as_os_str().len(), len);
    Ok(SameLengthPath {
        _dir: Some(dir),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match() {
        let target = Path::new("/bin/true");
        for len in [40usize, 100, 255, 256, 300, 700, 1500] {
            let p = same_length_link(target, len).unwrap();
            assert_eq!(p.path().as_os_str().len(), len, "len {len}");
            assert_eq!(std::fs::read_link(p.path()).unwrap(), target);
        }
        assert!(same_length_link(target, 3).is_err());
    }
}
