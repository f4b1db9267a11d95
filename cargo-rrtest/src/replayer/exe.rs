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

use crate::tracee::interp::{read_interp, read_shebang, rewrite_interp, Interp};
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
    /// When the next exec runs a `#!` script (its interpreter kept or
    /// not): the names the kernel passes to the interpreter that are ours
    /// (the script's link, the kept interpreters' links), each with the
    /// recorded name (`None`: the exec's own, the `Exec` event's),
    /// which [`ExecDir::restore_script_args`] writes back.
    pending_script_names: Vec<(String, Option<Vec<u8>>)>,
    /// The copies of the files mapped `MAP_SHARED`, by key
    /// ([`ExecDir::sync_shared`]).
    shared: std::collections::HashMap<String, PathBuf>,
}

/// Reads into `buf` from `off` until it is full or the file ends; returns
/// how many bytes were read.
fn read_at_most(file: &std::fs::File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The fill characters of the links to the scripts of a chain (a script
/// whose interpreter is a script...), by depth: links of one length at
/// different depths must differ. The kernel follows at most 4
/// interpreters (`BINPRM_MAX_RECURSION`), and a chain of 5 scripts fails
/// to exec.
const SCRIPT_FILLS: [(char, char); 5] =
    [('s', 't'), ('u', 'v'), ('w', 'y'), ('g', 'h'), ('i', 'j')];

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
                        pending_script_names: Vec::new(),
                        shared: std::collections::HashMap::new(),
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

    /// The writable copy, for `MAP_SHARED` mappings, of the file the
    /// recording named `key` (one per file, whatever its contents: every
    /// shared mapping of the file in this replay maps it, as they shared
    /// the file while recording, and the trace itself is never written),
    /// made to hold what `source` (a trace copy of the file) holds: at each
    /// shared mapping of the file, and after each call that changed it
    /// (`recorder/session/shared.rs`). It is changed in place, so the
    /// mappings see the change. Returns its path, and whether its contents
    /// changed from an earlier copy's (they do not when the recording's
    /// changes of the file were all mirrored).
    pub fn sync_shared(&mut self, key: &str, source: &Path) -> io::Result<(PathBuf, bool)> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let next = self.shared.len();
        let existed = self.shared.contains_key(key);
        let dest = self
            .shared
            .entry(key.to_string())
            .or_insert_with(|| self.dir.path().join(format!("shared-{next}")))
            .clone();
        let mut from = std::fs::File::open(source)?;
        let to = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&dest)?;
        let len = from.metadata()?.len();
        let mut changed = existed && to.metadata()?.len() != len;
        // Chunk by chunk, writing only what differs: the page cache the
        // mappings share keeps its pages (and an equal file stays as it is).
        const CHUNK: usize = 1 << 20;
        let (mut want, mut have) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut off = 0u64;
        while off < len {
            let n = CHUNK.min((len - off) as usize);
            std::io::Read::read_exact(&mut from, &mut want[..n])?;
            let got = read_at_most(&to, &mut have[..n], off)?;
            if got != n || want[..n] != have[..n] {
                to.write_all_at(&want[..n], off)?;
                changed |= existed;
            }
            off += n as u64;
        }
        if to.metadata()?.len() != len {
            to.set_len(len)?;
        }
        Ok((dest, changed))
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
        self.pending_script_names.clear();
        let name = self.program_at(header, &file_path, exe, len, 0)?;
        if header.interpreters.iter().any(|i| i.script_file == exe.0) {
            self.pending_script_names.push((name.clone(), None));
        }
        Ok(name)
    }

    /// [`ExecDir::program`] of `exe`, an interpreter at `depth` in a chain
    /// of scripts (0: the exec'd file).
    fn program_at(
        &mut self,
        header: &Header,
        file_path: &dyn Fn(&FileId) -> PathBuf,
        exe: &FileId,
        len: usize,
        depth: usize,
    ) -> io::Result<String> {
        if let Some(kept) = header.interpreters.iter().find(|i| i.script_file == exe.0) {
            return self.script(header, file_path, exe, &kept.file, len, depth);
        }
        let source = file_path(exe);
        let Some(loader) = header.loaders.iter().find(|l| l.exe_file == exe.0) else {
            let name = self.link(&source, len)?;
            // A script whose interpreter the trace does not keep (an older
            // trace): the host's runs it, and is passed our name.
            if depth == 0 && matches!(read_shebang(&source), Ok(Some(_))) {
                self.pending_script_names.push((name.clone(), None));
            }
            return Ok(name);
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
    /// `len` bytes long, at `depth` in a chain of scripts) whose
    /// interpreter the trace keeps (`interp`): a private copy of the script
    /// whose `#!` line names, under a name as long as the recorded one,
    /// what [`ExecDir::program_at`] makes of the interpreter (a script
    /// again, or a program whose loader is the trace's too). The kernel
    /// passes those names to the final interpreter as its first arguments:
    /// [`ExecDir::restore_script_args`] then writes the recorded ones back.
    fn script(
        &mut self,
        header: &Header,
        file_path: &dyn Fn(&FileId) -> PathBuf,
        exe: &FileId,
        interp: &str,
        len: usize,
        depth: usize,
    ) -> io::Result<String> {
        let Some(&fill) = SCRIPT_FILLS.get(depth) else {
            return Err(io::Error::other(format!(
                "the trace's chain of #! interpreters for {} is over {} scripts long",
                exe.0,
                SCRIPT_FILLS.len()
            )));
        };
        let source = file_path(exe);
        let Some(shebang) = read_shebang(&source)? else {
            return Err(io::Error::other(format!(
                "the trace keeps an interpreter for {}, but the trace's copy of it is no script",
                exe.0
            )));
        };
        let interp_name = self.program_at(
            header,
            file_path,
            &FileId(interp.to_string()),
            shebang.interp.len(),
            depth + 1,
        )?;
        self.pending_script_names
            .push((interp_name.clone(), Some(shebang.interp.clone())));
        let copy = self.dir.path().join(format!("script-{}-{depth}", exe.0));
        let mut bytes = std::fs::read(&source)?;
        bytes[shebang.offset..shebang.offset + shebang.interp.len()]
            .copy_from_slice(interp_name.as_bytes());
        let part = self
            .dir
            .path()
            .join(format!("script-{}-{depth}.part", exe.0));
        std::fs::write(&part, &bytes)?;
        set_mode(&part, 0o700)?;
        std::fs::rename(&part, &copy)?;
        self.link_named(&copy, len, fill)
    }

    /// Right after the exec of a `#!` script, before the interpreter runs:
    /// writes the recorded names back over ours in its arguments, in
    /// thread `tid`'s memory (its stack pointer at `sp`). The kernel passes
    /// the final interpreter its name as the last `#!` line gives it
    /// (`argv[0]`), that line's argument if any, then the name of each
    /// script of the chain, innermost first, the exec'd one (`exe`) last;
    /// [`ExecDir::script`] renamed the interpreters, [`ExecDir::program`]
    /// the exec'd file, each to a name as long as the recorded one.
    pub fn restore_script_args(&mut self, tid: i32, sp: u64, exe: &[u8]) -> io::Result<()> {
        let mut names = std::mem::take(&mut self.pending_script_names);
        if names.is_empty() {
            return Ok(());
        }
        let longest = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let mem = rrtest_sys::RemoteMem::new(tid);
        let argc = mem.read_u64(sp)?;
        let argv = |i: u64| mem.read_u64(sp + 8 + 8 * i);
        // The kernel puts them first, before the exec's own arguments.
        for i in 0..argc.min(2 * SCRIPT_FILLS.len() as u64 + 1) {
            let at = argv(i)?;
            let arg = mem.read_cstr(at, longest + 1)?;
            if let Some(k) = names.iter().position(|(n, _)| n.as_bytes() == arg) {
                let (_, recorded) = names.swap_remove(k);
                mem.write(at, recorded.as_deref().unwrap_or(exe))?;
                if names.is_empty() {
                    break;
                }
            }
        }
        Ok(())
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
    fn shared_copies_are_one_per_key_and_changed_in_place() {
        use std::os::unix::fs::MetadataExt;
        let mut dir = ExecDir::new().unwrap();
        let src = tempfile::tempdir().unwrap();
        let (a, b) = (src.path().join("a"), src.path().join("b"));
        std::fs::write(&a, vec![7u8; 3 << 20]).unwrap();
        let (copy, changed) = dir.sync_shared("/f", &a).unwrap();
        assert!(!changed, "a new copy is no change");
        let ino = std::fs::metadata(&copy).unwrap().ino();
        // The same contents again: unchanged.
        assert_eq!(dir.sync_shared("/f", &a).unwrap(), (copy.clone(), false));
        // One byte in the second chunk, and a longer file: changed, in place.
        let mut data = vec![7u8; (3 << 20) + 10];
        data[(1 << 20) + 5] = 1;
        std::fs::write(&b, &data).unwrap();
        assert_eq!(dir.sync_shared("/f", &b).unwrap(), (copy.clone(), true));
        assert_eq!(std::fs::read(&copy).unwrap(), data);
        assert_eq!(std::fs::metadata(&copy).unwrap().ino(), ino);
        // Shorter: truncated.
        std::fs::write(&b, b"short").unwrap();
        assert!(dir.sync_shared("/f", &b).unwrap().1);
        assert_eq!(std::fs::read(&copy).unwrap(), b"short");
        // Another key: another copy.
        let (other, changed) = dir.sync_shared("/g", &a).unwrap();
        assert!(!changed);
        assert_ne!(other, copy);
        assert_eq!(std::fs::read(&copy).unwrap(), b"short");
    }

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
