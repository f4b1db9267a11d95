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

/// The directory holding the links (`CACHE/replay/r-<pid>-<random>`);
/// removed on drop. One a killed replay left is removed by the next
/// ([`sweep_stale`]).
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
        for base in crate::preload::user_cache_dirs()? {
            let base = base.join("replay");
            sweep_stale(&base);
            let prefix = format!("r-{}-", std::process::id());
            let made = std::fs::create_dir_all(&base)
                .and_then(|()| tempfile::Builder::new().prefix(&prefix).tempdir_in(&base));
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

/// How old a directory of the earlier naming (`r-XXXXXX`, no pid) must be
/// to be taken for a leftover.
const UNNAMED_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the directories in `base` (`r-<pid>-...`) whose replay process
/// is gone (killed by SIGKILL, or by a signal with its default action, as
/// `record`'s verification is), and those of the earlier naming without a
/// pid (`r-XXXXXX`) untouched for a day.
pub fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("r-") else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let stale = match rest.split_once('-') {
            Some((pid, _)) => pid
                .parse::<i32>()
                .is_ok_and(|pid| !crate::util::process_alive(pid)),
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNNAMED_STALE_AFTER),
        };
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
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

    #[test]
    fn stale_directories_of_dead_replays_are_swept() {
        let base = tempfile::tempdir().unwrap();
        // A process that has exited and been reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = base.path().join(format!("r-{dead}-abc"));
        let live = base.path().join(format!("r-{}-abc", std::process::id()));
        let other = base.path().join("unrelated");
        let old_unnamed = base.path().join("r-AbC123");
        let new_unnamed = base.path().join("r-XyZ789");
        for d in [&stale, &live, &other, &old_unnamed, &new_unnamed] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
        }
        let two_days_ago = std::time::SystemTime::now() - 2 * UNNAMED_STALE_AFTER;
        std::fs::File::open(&old_unnamed)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        sweep_stale(base.path());
        assert!(!stale.exists(), "a dead replay's directory stays");
        assert!(
            !old_unnamed.exists(),
            "a day-old directory without a pid stays"
        );
        assert!(live.exists() && other.exists() && new_unnamed.exists());
    }
}
