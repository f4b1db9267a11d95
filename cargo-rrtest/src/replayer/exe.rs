//! Executing the trace's copies of programs under names exactly as long as
//! the recorded ones.
//!
//! The kernel lays out a new program's initial stack from argv, envp and the
//! filename given to `execve` (`AT_EXECFN`). Replay passes the recorded argv
//! and envp, and a filename of the recorded length: a relative name inside a
//! private directory that is the replay tracee's working directory (its
//! `chdir` calls are emulated, so it stays there). Every stack address, and
//! every pointer the program passes to a syscall, is then the same as while
//! recording, whatever the paths on this machine.

use std::io;
use std::path::{Path, PathBuf};

/// The directory holding the links; removed on drop.
#[derive(Debug)]
pub struct ExecDir {
    dir: tempfile::TempDir,
}

impl ExecDir {
    /// Creates the directory, in the user's cache directory (not in
    /// `$TMPDIR`, which the recorded program may have used: replay must leave
    /// no trace in the program's world).
    pub fn new() -> io::Result<Self> {
        let mut last = None;
        for base in rrtest_sys::dirs::user_cache_dirs()? {
            let base = base.join("replay");
            let made = std::fs::create_dir_all(&base)
                .and_then(|()| tempfile::Builder::new().prefix("r-").tempdir_in(&base));
            match made {
                Ok(dir) => return Ok(ExecDir { dir }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no cache directory for replay")))
    }

    /// The directory (the tracee's working directory).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A writable copy of `source` (the trace's copy of file `id`) for
    /// `MAP_SHARED` mappings, made once per replay: every shared mapping of
    /// the file in this replay shares it, as they shared the file while
    /// recording, and the trace itself is never written.
    pub fn shared_copy(&self, source: &Path, id: &str) -> io::Result<PathBuf> {
        let dest = self.dir.path().join(format!("shared-{id}"));
        if !dest.exists() {
            std::fs::copy(source, &dest)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(dest)
    }

    /// Points a relative name of exactly `len` bytes (relative to
    /// [`ExecDir::path`]) at `target`, and returns the name. The same length
    /// always gives the same name: the link is replaced, which is fine since
    /// it is only read during the `execve` that follows.
    pub fn link(&self, target: &Path, len: usize) -> io::Result<String> {
        if len == 0 {
            return Err(io::Error::other("the recorded program name is empty"));
        }
        // Directory components of at most 200 bytes, then the link's name.
        let mut rel = PathBuf::new();
        let mut remaining = len;
        while remaining > 255 {
            let take = 200.min(remaining - 2);
            rel.push("d".repeat(take));
            std::fs::create_dir_all(self.dir.path().join(&rel))?;
            remaining -= take + 1;
        }
        rel.push("x".repeat(remaining));
        let full = self.dir.path().join(&rel);
        match std::fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(target, &full)?;
        let name = rel.to_string_lossy().into_owned();
        debug_assert_eq!(name.len(), len);
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_the_recorded_length() {
        let dir = ExecDir::new().unwrap();
        let target = Path::new("/bin/true");
        for len in [1usize, 3, 40, 255, 256, 300, 700, 1500] {
            let name = dir.link(target, len).unwrap();
            assert_eq!(name.len(), len, "len {len}");
            assert_eq!(std::fs::read_link(dir.path().join(&name)).unwrap(), target);
        }
        // Re-pointing the same length replaces the link.
        let other = Path::new("/bin/false");
        let name = dir.link(other, 3).unwrap();
        assert_eq!(std::fs::read_link(dir.path().join(name)).unwrap(), other);
        assert!(dir.link(target, 0).is_err());
    }
}
