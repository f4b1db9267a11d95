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
//!
//! The program's ELF interpreter (dynamic loader) comes from the trace too,
//! when the trace kept it (header `loaders`): the kernel loads the loader the
//! executable names in `PT_INTERP`, so replay runs a private copy of the
//! executable whose `PT_INTERP` is a relative name of the recorded name's
//! length (resolved in this directory too), a link to the trace's copy of
//! the recorded loader. After the exec, [`ExecDir::restore_interp`] writes
//! the recorded name back into the program's memory, so memory is what it
//! was while recording. Nothing here runs or reads the replay host's loader.

use std::io;
use std::path::{Path, PathBuf};

use crate::tracee::interp::{read_interp, read_shebang, rewrite_interp, Interp, Shebang};
use rrtest_syscalls::MemReader;
use rrtest_trace::{FileId, Header};

/// The directory holding the links (`CACHE/replay/r-<pid>-<random>`);
/// removed on drop. One a killed replay left is removed by the next
/// ([`sweep_stale`]).
#[derive(Debug)]
pub struct ExecDir {
    dir: tempfile::TempDir,
    /// The `PT_INTERP` of the program the next exec runs, when it was
    /// rewritten: [`ExecDir::restore_interp`] puts the recorded name back.
    pending_interp: Option<Interp>,
    /// The `#!` line of the script the next exec runs, when its interpreter
    /// was renamed: [`ExecDir::restore_script_args`] puts the recorded
    /// names back into its arguments.
    pending_script: Option<Shebang>,
}

impl ExecDir {
    /// Creates the directory, in the user's cache directory (not in
    /// `$TMPDIR`, which the recorded program may have used: replay must leave
    /// no trace in the program's world).
    pub fn new() -> io::Result<Self> {
        let mut last = None;
        for base in rrtest_sys::dirs::user_cache_dirs()? {
            let base = base.join("replay");
            sweep_stale(&base);
            let prefix = format!("r-{}-", std::process::id());
            let made = std::fs::create_dir_all(&base)
                .and_then(|()| tempfile::Builder::new().prefix(&prefix).tempdir_in(&base));
            match made {
                Ok(dir) => {
                    return Ok(ExecDir {
                        dir,
                        pending_interp: None,
                        pending_script: None,
                    })
                }
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
        self.link_named(target, len, ('d', 'x'))
    }

    /// What replay execs for the trace's executable `exe` whose recorded
    /// name is `len` bytes long: [`ExecDir::link`] to the trace's copy, or,
    /// when `header` keeps the executable's loader, to a private copy whose
    /// `PT_INTERP` names (through a link here) the trace's copy of that loader (the next
    /// [`ExecDir::restore_interp`] then undoes the rename in memory).
    pub fn program(
        &mut self,
        header: &Header,
        file_path: impl Fn(&FileId) -> PathBuf,
        exe: &FileId,
        len: usize,
    ) -> io::Result<String> {
        self.pending_interp = None;
        self.pending_script = None;
        if let Some(kept) = header.interpreters.iter().find(|i| i.script_file == exe.0) {
            return self.script(header, &file_path, exe, &kept.file, len);
        }
        let source = file_path(exe);
        let Some(loader) = header.loaders.iter().find(|l| l.exe_file == exe.0) else {
            return self.link(&source, len);
        };
        let Some(interp) = read_interp(&source)? else {
            return Err(io::Error::other(format!(
                "the trace keeps a loader for {}, but the trace's copy of it names none",
                exe.0
            )));
        };
        let copy = self.dir.path().join(format!("prog-{}", exe.0));
        if !copy.exists() {
            let part = self.dir.path().join(format!("prog-{}.part", exe.0));
            std::fs::copy(&source, &part)?;
            set_mode(&part, 0o700)?;
            // The trace's loader under a name as long as the recorded one,
            // resolved (relative) in this directory, the tracee's working
            // directory; a link, as for the executable: its bytes do not change.
            let loader_file = file_path(&FileId(loader.file.clone()));
            let name = self.link_named(&loader_file, interp.path.len(), ('e', 'l'))?;
            rewrite_interp(&part, &interp, name.as_bytes())?;
            std::fs::rename(&part, &copy)?;
        }
        let name = self.link(&copy, len)?;
        self.pending_interp = Some(interp);
        Ok(name)
    }

    /// What replay execs for the trace's `#!` script `exe` (recorded name
    /// `len` bytes long) whose interpreter the trace keeps (`interp`): a
    /// private copy of the script whose `#!` line names, under a name as
    /// long as the recorded one, what [`ExecDir::program`] makes of the
    /// interpreter (so its loader is the trace's too). The kernel passes
    /// the interpreter's name and the script's to the interpreter as its
    /// first arguments: [`ExecDir::restore_script_args`] then writes the
    /// recorded ones back.
    fn script(
        &mut self,
        header: &Header,
        file_path: &dyn Fn(&FileId) -> PathBuf,
        exe: &FileId,
        interp: &str,
        len: usize,
    ) -> io::Result<String> {
        let source = file_path(exe);
        let Some(shebang) = read_shebang(&source)? else {
            return Err(io::Error::other(format!(
                "the trace keeps an interpreter for {}, but the trace's copy of it is no script",
                exe.0
            )));
        };
        let interp_name = self.program(
            header,
            file_path,
            &FileId(interp.to_string()),
            shebang.interp.len(),
        )?;
        let copy = self.dir.path().join(format!("script-{}", exe.0));
        let mut bytes = std::fs::read(&source)?;
        bytes[shebang.offset..shebang.offset + shebang.interp.len()]
            .copy_from_slice(interp_name.as_bytes());
        let part = self.dir.path().join(format!("script-{}.part", exe.0));
        std::fs::write(&part, &bytes)?;
        set_mode(&part, 0o700)?;
        std::fs::rename(&part, &copy)?;
        let name = self.link_named(&copy, len, ('s', 't'))?;
        self.pending_script = Some(shebang);
        Ok(name)
    }

    /// Right after the exec of a script made by [`ExecDir::script`], before
    /// the interpreter runs: writes the recorded interpreter name and
    /// script name `exe` over the renamed ones in its arguments (`argv[0]`,
    /// and `argv[1]` or, after the `#!` line's argument, `argv[2]`) in
    /// thread `tid`'s memory, its stack pointer at `sp`.
    pub fn restore_script_args(&mut self, tid: i32, sp: u64, exe: &[u8]) -> io::Result<()> {
        let Some(shebang) = self.pending_script.take() else {
            return Ok(());
        };
        let mem = rrtest_sys::RemoteMem::new(tid);
        let argv = |i: u64| mem.read_u64(sp + 8 + 8 * i);
        mem.write(argv(0)?, &shebang.interp)?;
        mem.write(argv(1 + u64::from(shebang.has_arg))?, exe)
    }

    /// Right after the exec of a [`ExecDir::program`] with a rewritten
    /// `PT_INTERP`, before the program runs: writes the recorded loader name
    /// back over the rewritten one in thread `tid`'s memory (the loader
    /// reads its own name there). A program exec'd by plain link: nothing.
    pub fn restore_interp(&mut self, tid: i32) -> io::Result<()> {
        let Some(interp) = self.pending_interp.take() else {
            return Ok(());
        };
        let phdr = auxv_entry(tid, AT_PHDR)?
            .ok_or_else(|| io::Error::other("the program has no AT_PHDR"))?;
        let addr = phdr
            .wrapping_sub(interp.phdr_vaddr)
            .wrapping_add(interp.vaddr);
        rrtest_sys::RemoteMem::new(tid).write(addr, &interp.path)
    }

    /// [`ExecDir::link`] with the filler characters of the directories and
    /// of the name: links of different purposes never share a name.
    fn link_named(&self, target: &Path, len: usize, fill: (char, char)) -> io::Result<String> {
        if len == 0 {
            return Err(io::Error::other("the recorded program name is empty"));
        }
        // Directory components of at most 200 bytes, then the link's name.
        let mut rel = PathBuf::new();
        let mut remaining = len;
        while remaining > 255 {
            let take = 200.min(remaining - 2);
            rel.push(fill.0.to_string().repeat(take));
            std::fs::create_dir_all(self.dir.path().join(&rel))?;
            remaining -= take + 1;
        }
        rel.push(fill.1.to_string().repeat(remaining));
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

const AT_PHDR: u64 = 3;

/// The value of auxiliary vector entry `key` of thread `tid`'s process.
fn auxv_entry(tid: i32, key: u64) -> io::Result<Option<u64>> {
    let auxv = std::fs::read(format!("/proc/{tid}/auxv"))?;
    for pair in auxv.chunks_exact(16) {
        let k = u64::from_ne_bytes(pair[..8].try_into().expect("8 bytes"));
        if k == key {
            return Ok(Some(u64::from_ne_bytes(
                pair[8..].try_into().expect("8 bytes"),
            )));
        }
    }
    Ok(None)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
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
