//! Files mapped `MAP_SHARED`, and writes through `/proc/PID/mem`.
//!
//! Replay maps one replay-private copy of each file that the recording
//! mapped shared, and every shared mapping of the file maps that copy, so
//! writes through one mapping show in the others (and in the mappings a
//! forked child inherits). The calls that change the file without a
//! mapping (`write`, `pwrite64`, `writev`, `pwritev`, `pwritev2`,
//! `ftruncate`, `fallocate`) are emulated in replay, so they would not reach
//! the copy: once a file is mapped shared, every process's such calls are
//! traced (the locals' `TRACE_FILE_WRITES`: the hook bails them), and each
//! one on a shared-mapped file stores the file's new contents in the trace
//! (`SyscallExtra::MappedFile` on that call), which replay writes into the
//! copy in place (`replayer::exe::ExecDir::sync_shared`). The mappings'
//! `path` is a key naming the file (its path at its first shared mapping,
//! made unique), the same for each of them and for those calls. A
//! read-only mapping, through a read-only descriptor, of a file older than
//! the recording turns no tracing on (glibc maps its gconv cache so, in any
//! program that sets a locale); its file's changes are mirrored only while
//! some other mapping has turned tracing on.
//!
//! A write through `/proc/PID/mem` (or `/proc/PID/task/TID/mem`) changes
//! memory: one into the writer's own process is recorded as the memory it
//! wrote (read back after the call, replayed as any syscall output); one
//! into another process of the recording (a debugger's breakpoint in its
//! inferior) as an `Event::TraceeWrite` of the bytes now there, which
//! replay writes into that process at the same point, or, when the thread
//! written into is held by its tracer at a syscall-entry stop, at that
//! thread's syscall entry (`WriteKind::MemoryAtEntry`)
//! ([`Session::foreign_write`]; `process_vm_writev` likewise); one into a
//! process outside the recording is refused, named. Opens under `/proc/`
//! bail in the hook, so the recorder sees a `/proc/PID/mem` opened and
//! traces writes from then on.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rrtest_sys::RemoteMem;
use rrtest_syscalls::Call;
use rrtest_trace::{Event, MemWrite, SyscallExtra, SyscallResult, Tid, WriteKind};
use tracing::debug;

use super::{ptrace_err, Error, Session};
use crate::recorder::capture::is_write_family;
use crate::tracee::syscallbuf;

/// The most bytes the copies of shared-mapped files that writes store may
/// add up to in one recording (each write stores the whole file again):
/// past it the trace is unreplayable rather than huge.
pub const MAX_RESYNC_BYTES: u64 = 256 << 20;

/// What the recording knows of shared-mapped files.
#[derive(Debug)]
pub struct SharedFiles {
    /// When the recording started.
    started: SystemTime,
    /// (device, inode) of each file mapped `MAP_SHARED` to its key.
    keys: HashMap<(u64, u64), String>,
    /// Writes are traced in every process (`TRACE_FILE_WRITES`).
    pub trace_writes: bool,
    /// Bytes of file copies stored for writes so far.
    resync_bytes: u64,
}

impl SharedFiles {
    /// Nothing mapped yet; the recording starts now.
    pub fn new() -> SharedFiles {
        SharedFiles {
            started: SystemTime::now(),
            keys: HashMap::new(),
            trace_writes: false,
            resync_bytes: 0,
        }
    }

    /// Whether a shared mapping of the file behind `meta`, through a
    /// descriptor open for writing or not (`writable`), with protection
    /// `prot`, makes the recorder trace writes: when the program can write
    /// the file through it, or changed the file recently (its mtime is
    /// within 3 s of the recording's start, or after it). A read-only
    /// mapping of a file older than the recording (glibc maps
    /// `gconv-modules.cache` so) does not: it would cost every later
    /// write of the recording a stop.
    fn makes_writes_traced(&self, meta: &std::fs::Metadata, writable: bool, prot: i32) -> bool {
        const MARGIN: Duration = Duration::from_secs(3);
        if writable || prot & libc::PROT_WRITE != 0 {
            return true;
        }
        let settled = self
            .started
            .checked_sub(MARGIN)
            .and_then(|t| meta.modified().ok().map(|m| m < t));
        settled != Some(true)
    }
    /// The key of the file `id`, first seen at `path`: unique among the
    /// recording's shared-mapped files.
    fn key(&mut self, id: (u64, u64), path: &str) -> String {
        if let Some(k) = self.keys.get(&id) {
            return k.clone();
        }
        let base = path.strip_suffix(" (deleted)").unwrap_or(path);
        let mut key = base.to_string();
        let mut n = 1;
        while self.keys.values().any(|k| *k == key) {
            n += 1;
            key = format!("{base} #{n}");
        }
        self.keys.insert(id, key.clone());
        key
    }
}

/// (device, inode) of the tracee's descriptor `fd`.
fn file_id(tid: Tid, fd: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{tid}/fd/{fd}")).ok()?;
    m.is_file().then(|| (m.dev(), m.ino()))
}

/// What the tracee's descriptor `fd` names (its /proc link).
fn fd_link(tid: Tid, fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{tid}/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The process or thread whose memory a `/proc/PID/mem` or
/// `/proc/PID/task/TID/mem` name is: PID, or TID.
pub fn proc_mem_pid(link: &str) -> Option<i32> {
    let id = link.strip_prefix("/proc/")?.strip_suffix("/mem")?;
    let id = match id.split_once("/task/") {
        Some((pid, tid)) => {
            pid.parse::<i32>().ok()?;
            tid
        }
        None => id,
    };
    id.parse().ok()
}

/// The file position of the tracee's descriptor `fd` (fdinfo's `pos:`).
fn fd_pos(tid: Tid, fd: i32) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("pos:"))?
        .trim()
        .parse()
        .ok()
}

impl Session {
    /// Turns on `TRACE_FILE_WRITES` for every process: now for `tid`'s,
    /// which is stopped (it must not make one more buffered write), at
    /// their next slice for the others ([`Session::update_desched`]).
    pub(super) fn trace_file_writes(&mut self, tid: Tid) -> Result<(), Error> {
        if !self.shared.trace_writes {
            debug!(tid, "writes are traced from now on");
            self.shared.trace_writes = true;
        }
        let pid = self.tasks[&tid].pid;
        let Some(space) = self.spaces.get_mut(&pid) else {
            return Ok(());
        };
        let controls = syscallbuf::Controls {
            flags: space.controls_now.flags | rrtest_abi::locals_flags::TRACE_FILE_WRITES,
            ..space.controls_now
        };
        if controls != space.controls_now {
            syscallbuf::write_controls(tid, controls)
                .map_err(ptrace_err("writing the locals' flags", tid))?;
            space.controls_now = controls;
        }
        Ok(())
    }

    /// After [`super::capture::capture`] of `call`: a shared file mapping
    /// gets its file's key and turns write tracing on, an open of a
    /// `/proc/PID/mem` turns it on, and a write or size change of a
    /// shared-mapped file or a write through `/proc/PID/mem` gets what it
    /// changed into `result`. What cannot be recorded goes to `problems`.
    pub(super) fn track_shared(
        &mut self,
        tid: Tid,
        call: &Call,
        result: &mut SyscallResult,
        problems: &mut Vec<String>,
    ) -> Result<(), Error> {
        let fd = call.args[0] as i32;
        match call.nr {
            libc::SYS_mmap if call.ret >= 0 => {
                let flags = call.args[3] as i32;
                if flags & libc::MAP_SHARED == 0 || flags & libc::MAP_ANONYMOUS != 0 {
                    return Ok(());
                }
                let SyscallExtra::MappedFile { path, .. } = &mut result.extra else {
                    return Ok(());
                };
                let mfd = call.args[4] as i32;
                let Some(id) = file_id(tid, mfd) else {
                    return Ok(());
                };
                *path = self.shared.key(id, path);
                let traced = std::fs::metadata(format!("/proc/{tid}/fd/{mfd}")).is_ok_and(|m| {
                    self.shared.makes_writes_traced(
                        &m,
                        super::capture::fd_writable(tid, mfd),
                        call.args[2] as i32,
                    )
                });
                if traced {
                    self.trace_file_writes(tid)?;
                } else {
                    debug!(tid, key = %path, "a read-only shared mapping of a settled file: writes stay buffered");
                }
                Ok(())
            }
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat
                if call.ret >= 0 =>
            {
                let Some(link) = fd_link(tid, call.ret as i32) else {
                    return Ok(());
                };
                if proc_mem_pid(&link).is_some() {
                    return self.trace_file_writes(tid);
                }
                // An open that truncates (the hook bails those while writes
                // are traced): creat, or O_TRUNC (openat2's is in its
                // struct, read from the thread's fdinfo below).
                let truncates = match call.nr {
                    libc::SYS_creat => true,
                    libc::SYS_open => call.args[1] as i32 & libc::O_TRUNC != 0,
                    libc::SYS_openat => call.args[2] as i32 & libc::O_TRUNC != 0,
                    _ => true,
                };
                if truncates && self.shared.trace_writes {
                    self.resync(tid, call.ret as i32, &link, result, problems);
                }
                Ok(())
            }
            // The calls that write into a descriptor from another one.
            libc::SYS_copy_file_range | libc::SYS_splice | libc::SYS_sendfile
                if call.ret > 0 && self.shared.trace_writes =>
            {
                let out = match call.nr {
                    libc::SYS_sendfile => call.args[0],
                    _ => call.args[2],
                } as i32;
                if let Some(link) = fd_link(tid, out) {
                    self.resync(tid, out, &link, result, problems);
                }
                Ok(())
            }
            libc::SYS_truncate if call.ret == 0 && self.shared.trace_writes => {
                self.truncated_by_name(tid, call.args[0], result, problems);
                Ok(())
            }
            nr if is_write_family(nr) && call.ret > 0 && self.shared.trace_writes => {
                let Some(link) = fd_link(tid, fd) else {
                    return Ok(());
                };
                if let Some(target) = proc_mem_pid(&link) {
                    return self.mem_write(tid, call, target, result, problems);
                }
                self.resync(tid, fd, &link, result, problems);
                Ok(())
            }
            libc::SYS_ftruncate | libc::SYS_fallocate
                if call.ret == 0 && self.shared.trace_writes =>
            {
                if let Some(link) = fd_link(tid, fd) {
                    self.resync(tid, fd, &link, result, problems);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A write of `call.ret` bytes through `/proc/TARGET/mem` (TARGET a
    /// process or a thread): into the writer's own process, the bytes now
    /// there become the call's output; into another one of the recording, a
    /// [`Session::foreign_write`].
    fn mem_write(
        &mut self,
        tid: Tid,
        call: &Call,
        target: i32,
        result: &mut SyscallResult,
        problems: &mut Vec<String>,
    ) -> Result<(), Error> {
        let pid = self.tasks[&tid].pid;
        let foreign = self.tasks.get(&target).map_or(target, |t| t.pid) != pid;
        let len = call.ret as u64;
        let explicit = matches!(call.nr, libc::SYS_pwrite64 | libc::SYS_pwritev)
            || (call.nr == libc::SYS_pwritev2 && call.args[3] as i64 != -1);
        let offset = if explicit {
            Some(call.args[3])
        } else {
            // The position has moved past what was written.
            fd_pos(tid, call.args[0] as i32).and_then(|p| p.checked_sub(len))
        };
        let Some(addr) = offset else {
            problems.push(format!(
                "a write through /proc/{target}/mem: cannot tell where it wrote"
            ));
            return Ok(());
        };
        if foreign {
            let via = format!("a write through /proc/{target}/mem");
            return self.foreign_write(tid, target, &[(addr, len)], &via, problems);
        }
        match RemoteMem::new(tid).read_vec(addr, len as usize) {
            Ok(data) => result.writes.push(MemWrite { addr, data }),
            Err(e) => problems.push(format!(
                "a write through /proc/{target}/mem at {addr:#x}+{len}: cannot read it back: {e}"
            )),
        }
        Ok(())
    }

    /// Thread `tid` wrote `ranges` (address, length) of the memory of
    /// `target` (a process or a thread id), another process than its own,
    /// `via` a `/proc/PID/mem` write or `process_vm_writev` that has just
    /// returned: into a process of the recording, the bytes now there are
    /// an [`Event::TraceeWrite`] each (before the call's exit event), which
    /// replay writes into the same process at the same point (at a
    /// thread's syscall entry, `WriteKind::MemoryAtEntry`, when the thread
    /// is held there by its tracer); the target runs only when the
    /// recorder lets it, so they are the bytes written.
    /// Into a process outside the recording: refused, named (replay has no
    /// such process to write into).
    pub(super) fn foreign_write(
        &mut self,
        tid: Tid,
        target: i32,
        ranges: &[(u64, u64)],
        via: &str,
        problems: &mut Vec<String>,
    ) -> Result<(), Error> {
        // The thread itself, or its process's first thread still there.
        let thread = if self.tasks.contains_key(&target) {
            Some(target)
        } else {
            self.tasks
                .iter()
                .find(|(_, t)| t.pid == target)
                .map(|(&t, _)| t)
        };
        let Some(thread) = thread else {
            problems.push(format!(
                "{via} into process {target}, which is not one of the recording, is not \
                 recorded (only writes into the recording's own processes are)"
            ));
            return Ok(());
        };
        // Held by its tracer at a syscall-entry stop, replay's thread is not
        // at that entry yet (the code it runs to get there may write the
        // same memory): replay writes the bytes there, as it does the
        // tracer's pokes made at such a stop.
        let kind = if self.held_at_syscall_entry(thread) {
            WriteKind::MemoryAtEntry
        } else {
            WriteKind::Memory
        };
        for &(addr, len) in ranges.iter().filter(|&&(_, len)| len > 0) {
            match RemoteMem::new(thread).read_vec(addr, len as usize) {
                Ok(bytes) => {
                    debug!(
                        tid,
                        target = thread,
                        addr,
                        len,
                        ?kind,
                        "{via}: a tracee write"
                    );
                    self.emit(Event::TraceeWrite {
                        tid,
                        target: thread,
                        kind,
                        addr,
                        bytes,
                    })?;
                }
                Err(e) => problems.push(format!(
                    "{via} into process {target} at {addr:#x}+{len}: cannot read it back: {e}"
                )),
            }
        }
        Ok(())
    }

    /// A `truncate(name)`: when `name` (as the thread sees it) is a file
    /// mapped shared, its new contents go into the trace on the call.
    fn truncated_by_name(
        &mut self,
        tid: Tid,
        name: u64,
        result: &mut SyscallResult,
        problems: &mut Vec<String>,
    ) {
        use std::os::unix::fs::MetadataExt;
        let Ok(name) = RemoteMem::new(tid).read_cstr(name, libc::PATH_MAX as usize) else {
            return;
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        let seen = match name.strip_prefix('/') {
            Some(rest) => format!("/proc/{tid}/root/{rest}"),
            None => format!("/proc/{tid}/cwd/{name}"),
        };
        let Some(key) = std::fs::metadata(&seen)
            .ok()
            .and_then(|m| self.shared.keys.get(&(m.dev(), m.ino())).cloned())
        else {
            return;
        };
        self.store_contents(Path::new(&seen), &name, key, result, problems);
    }

    /// A write or size change through the tracee's `fd` (naming `link`):
    /// when the file is mapped shared, its new contents go into the trace
    /// on the call, for replay to write into its copy.
    fn resync(
        &mut self,
        tid: Tid,
        fd: i32,
        link: &str,
        result: &mut SyscallResult,
        problems: &mut Vec<String>,
    ) {
        let Some(key) = file_id(tid, fd).and_then(|id| self.shared.keys.get(&id).cloned()) else {
            return;
        };
        let source = format!("/proc/{tid}/fd/{fd}");
        self.store_contents(Path::new(&source), link, key, result, problems);
    }

    /// Stores the contents of `source` (the shared-mapped file `key`, named
    /// `link` in messages) in the trace, on the call whose `result` this is.
    fn store_contents(
        &mut self,
        source: &Path,
        link: &str,
        key: String,
        result: &mut SyscallResult,
        problems: &mut Vec<String>,
    ) {
        if !matches!(result.extra, SyscallExtra::None) {
            problems.push(format!(
                "{link}, a file mapped MAP_SHARED, is also the program's output: \
                 its writes are not recorded as changes of the mapped file"
            ));
            return;
        }
        let size = std::fs::metadata(source).map(|m| m.len()).unwrap_or(0);
        self.shared.resync_bytes = self.shared.resync_bytes.saturating_add(size);
        if self.shared.resync_bytes > MAX_RESYNC_BYTES {
            problems.push(format!(
                "writes to {link}, a file mapped MAP_SHARED: the trace stores the file at each \
                 write, over {} MiB so far (the copies stopped)",
                MAX_RESYNC_BYTES >> 20
            ));
            return;
        }
        match self.writer.add_file_copy(source) {
            Ok(file) => result.extra = SyscallExtra::MappedFile { file, path: key },
            Err(e) => problems.push(format!(
                "a write to {link}, a file mapped MAP_SHARED: cannot copy it into the trace: {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_mem_names() {
        assert_eq!(proc_mem_pid("/proc/123/mem"), Some(123));
        // gdb writes its breakpoints through the thread's name.
        assert_eq!(proc_mem_pid("/proc/123/task/125/mem"), Some(125));
        assert_eq!(proc_mem_pid("/proc/x/task/125/mem"), None);
        assert_eq!(proc_mem_pid("/proc/123/task/mem"), None);
        assert_eq!(proc_mem_pid("/proc/self/mem"), None);
        assert_eq!(proc_mem_pid("/proc/123/maps"), None);
        assert_eq!(proc_mem_pid("/tmp/proc/1/mem"), None);
    }

    #[test]
    fn which_shared_mappings_trace_writes() {
        let s = SharedFiles::new();
        let old = tempfile::NamedTempFile::new().unwrap();
        old.as_file()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let old = old.as_file().metadata().unwrap();
        let fresh = tempfile::NamedTempFile::new().unwrap();
        let fresh = fresh.as_file().metadata().unwrap();
        assert!(!s.makes_writes_traced(&old, false, libc::PROT_READ));
        assert!(s.makes_writes_traced(&old, true, libc::PROT_READ));
        assert!(s.makes_writes_traced(&old, false, libc::PROT_READ | libc::PROT_WRITE));
        assert!(s.makes_writes_traced(&fresh, false, libc::PROT_READ));
    }

    #[test]
    fn keys_are_per_file_and_unique() {
        let mut s = SharedFiles::new();
        assert_eq!(s.key((1, 10), "/tmp/a"), "/tmp/a");
        // The same file, renamed or unlinked since: the same key.
        assert_eq!(s.key((1, 10), "/tmp/a (deleted)"), "/tmp/a");
        // Another file under the first one's old name: another key.
        assert_eq!(s.key((1, 11), "/tmp/a (deleted)"), "/tmp/a #2");
        assert_eq!(s.key((1, 12), "/tmp/a"), "/tmp/a #3");
        assert_eq!(s.key((1, 11), "/x"), "/tmp/a #2");
    }
}
