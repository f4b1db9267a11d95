//! What a finished syscall did, as the tracee can see it: its result, the
//! memory the kernel wrote (from the syscall table), the bytes written to
//! stdout/stderr, and the file behind a file-backed mapping.

use std::path::Path;

use rrtest_sys::RemoteMem;
use rrtest_syscalls::{self as syscalls, Call, Region};
use rrtest_trace::{MemWrite, SyscallExtra, SyscallResult, TraceWriter};

/// Mapped files larger than this (their size, holes included) are not
/// copied into the trace, which is then unreplayable. Copies keep holes
/// (`rrtest_trace::files`), but replay makes a dense copy of a file mapped
/// shared, and hashes all of it.
pub const MAX_MAPPED_FILE: u64 = 1 << 30;

/// Regions larger than this are refused (a corrupt size would otherwise
/// make us read gigabytes).
const MAX_REGION: usize = 1 << 30;

/// Captures the effects of the syscall `call` made by thread `tid`. Problems
/// that make the trace unreplayable are appended to `unsupported`.
///
/// `restarted` is the call that `restart_syscall` resumes (the thread's last
/// call that returned `-ERESTART_RESTARTBLOCK`), when `call` is one.
/// `output` is [`OurOutputs::target`] as found at the syscall's entry.
pub fn capture(
    tid: i32,
    call: &Call,
    restarted: Option<&Call>,
    output: Option<i32>,
    writer: &mut TraceWriter,
    memo: &mut MappedMemo,
    unsupported: &mut Vec<String>,
) -> SyscallResult {
    let mem = RemoteMem::new(tid);
    let mut result = SyscallResult {
        ret: call.ret,
        ..SyscallResult::default()
    };
    let desc = syscalls::lookup(call.nr);
    // Number -1 is no call: the kernel skips it (a tracer set `orig_rax`
    // -1 at its syscall-entry stop), and its result is whatever `rax` holds
    // then (-ENOSYS, or what that tracer wrote there): recorded as it is,
    // replay emulates it.
    let skipped = call.nr == -1;
    if desc.is_none() && call.ret != -(libc::ENOSYS as i64) && !skipped {
        // Not an invalid number (those get ENOSYS and did nothing): a call
        // the table cannot describe did something.
        unsupported.push(unknown_call(call));
    }
    if call.ret < 0 && !syscalls::writes_on_failure(call.nr) {
        return result;
    }
    let Some(desc) = desc else {
        return result;
    };
    let mut regions: Vec<Region> = Vec::new();
    let described = match restarted {
        Some(original) if syscalls::is_restart_syscall(call.nr) => {
            syscalls::restarted_outputs(original, call.ret, &mem, &mut regions)
        }
        _ => (desc.outputs)(call, &mem, &mut regions),
    };
    if let Err(e) = described {
        unsupported.push(e.0);
    }
    for r in regions {
        if r.len == 0 {
            continue;
        }
        if r.len > MAX_REGION {
            unsupported.push(format!(
                "{}: output of {} bytes is too large",
                desc.name, r.len
            ));
            continue;
        }
        match mem.read_vec(r.addr, r.len) {
            Ok(data) => result.writes.push(MemWrite { addr: r.addr, data }),
            Err(e) => unsupported.push(format!(
                "{}: cannot read its output at {:#x}+{}: {e}",
                desc.name, r.addr, r.len
            )),
        }
    }
    if matches!(call.nr, libc::SYS_clone | libc::SYS_clone3) && call.ret > 0 {
        drop_settid_words(tid, call, &mut result.writes);
    }
    result.extra = extra(tid, call, output, &mem, writer, memo, unsupported);
    result
}

/// A clone's `CLONE_PARENT_SETTID` and `CLONE_CHILD_SETTID` words are not
/// part of its exit: the kernel wrote the new id before either thread ran,
/// and replay writes the recorded one there at the same point, as the new
/// task appears (`replayer/session/process.rs`). The exit is captured only
/// when the thread is next scheduled, and a child sharing the memory
/// (`CLONE_VM`) may have run, and exited, by then, its
/// `CLONE_CHILD_CLEARTID` zeroing the word: what is there then must not be
/// written again at the exit (replay wrote that 0 before the child read its
/// id, or wrote the id back after the child cleared it).
fn drop_settid_words(tid: i32, call: &Call, writes: &mut Vec<MemWrite>) {
    let fields = crate::tracee::clone_tid_fields(tid, call.nr, &call.args);
    writes.retain(|w| {
        !fields
            .iter()
            .any(|&(addr, _)| addr == w.addr && w.data.len() == 4)
    });
}

/// Why an unknown syscall that did not fail with ENOSYS makes the trace
/// unreplayable: what it was, what it returned, what the user can do.
fn unknown_call(call: &Call) -> String {
    if syscalls::is_compat(call.nr) {
        format!(
            "the 32-bit syscall {} returned {}: what it did is not described (of the \
             32-bit calls, only those listed in docs/breadth.md are recorded; make the \
             call with the x86-64 `syscall` instruction)",
            syscalls::name(call.nr),
            call.ret
        )
    } else {
        format!(
            "unknown syscall {} returned {}: the recorder does not know what it \
             did (only an invalid number, answered with ENOSYS, is recorded)",
            call.nr, call.ret
        )
    }
}

fn extra(
    tid: i32,
    call: &Call,
    output: Option<i32>,
    mem: &RemoteMem,
    writer: &mut TraceWriter,
    memo: &mut MappedMemo,
    unsupported: &mut Vec<String>,
) -> SyscallExtra {
    // By the trace's number and arguments: a 32-bit `writev`'s iovecs
    // are 32-bit ones.
    if let (Some(out), true) = (output, call.ret > 0) {
        let data = crate::tracee::written_bytes(mem, call.nr, &call.args, call.ret as usize);
        return match data {
            Ok(data) => SyscallExtra::Output { fd: out, data },
            Err(_) => SyscallExtra::None,
        };
    }
    // A 32-bit `mmap2` as the `mmap` it means.
    let call = &syscalls::x86_64_call(call);
    match call.nr {
        _ if call.ret < 0 => SyscallExtra::None,
        libc::SYS_mmap => {
            let flags = call.args[3] as i32;
            let mfd = call.args[4] as i32;
            if flags & libc::MAP_ANONYMOUS != 0 || mfd < 0 {
                return SyscallExtra::None;
            }
            // Code is linked (libraries and binaries are replaced, not
            // rewritten): executable mappings, and any mapping of an
            // executable file (the loader maps a whole library read-only
            // first). So is data from a read-only descriptor that nobody
            // modified since before the recording (a 0644 library, the
            // loader's cache). Data the program may have written, or may
            // write through this very descriptor, is copied as it is now.
            let exec = call.args[2] as i32 & libc::PROT_EXEC != 0;
            // A shared mapping is always copied (never linked: a later
            // change of the file must not show through the trace's copy):
            // its contents now, which replay's copy of the file takes.
            let shared = flags & libc::MAP_SHARED != 0;
            match device_mapping(tid, mfd) {
                // As anonymous memory (shared: shmem, as the kernel makes
                // it); replay maps that (`replayer::inject::mmap_anonymous`).
                Some(Device::Zero) => SyscallExtra::None,
                Some(Device::Other(link)) => {
                    unsupported.push(format!(
                        "mmap of {link}: mappings of devices other than /dev/zero are not recorded"
                    ));
                    SyscallExtra::None
                }
                None => mapped_file(tid, mfd, exec, shared, writer, memo, unsupported),
            }
        }
        _ => SyscallExtra::None,
    }
}

/// A mapped descriptor that is not a regular file.
enum Device {
    /// `/dev/zero` (its device number): zeroed memory, like `MAP_ANONYMOUS`.
    Zero,
    /// Anything else (its /proc link): refused.
    Other(String),
}

/// What the tracee's descriptor `fd` is when it is not a regular file (or
/// unreadable: then the copy reports it).
fn device_mapping(tid: i32, fd: i32) -> Option<Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = format!("/proc/{tid}/fd/{fd}");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.is_file() {
        return None;
    }
    if meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 5) {
        return Some(Device::Zero);
    }
    let link = std::fs::read_link(&path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or(path);
    Some(Device::Other(link))
}

/// The files behind the recorder's own stdout and stderr when a recording
/// starts: the program's output is what reaches them, whatever descriptor
/// numbers it used (dup2 to a pipe takes fd 1 away; a dup of fd 1 still
/// writes there). Taken per recording, because a recorder server
/// (`recorder::server`) points its fds 1 and 2 at each attempt's pipes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OurOutputs {
    /// (device, inode) of fd 1 and fd 2; None for /dev/null or unreadable.
    ids: [Option<(u64, u64)>; 2],
}

impl OurOutputs {
    /// Our fds 1 and 2 as they are now.
    pub fn current() -> OurOutputs {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        // Output sent to /dev/null is no output: a program's own /dev/null
        // descriptors are the same file, and must not count as output.
        let null = std::fs::metadata("/dev/null").ok().map(|m| m.rdev());
        let id = |p: &str| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| !(m.file_type().is_char_device() && Some(m.rdev()) == null))
                .map(|m| (m.dev(), m.ino()))
        };
        OurOutputs {
            ids: [id("/proc/self/fd/1"), id("/proc/self/fd/2")],
        }
    }

    /// Which of our streams (1 or 2) syscall `nr(args)` of thread `tid`
    /// writes to, if it is a write to one of them.
    pub fn target(&self, tid: i32, nr: i64, args: &[u64; 6]) -> Option<i32> {
        if is_write_family(nr) {
            self.stream(tid, args[0] as i32)
        } else {
            None
        }
    }

    /// Which of our streams (1 or 2) the tracee's `fd` writes to, if any.
    pub fn stream(&self, tid: i32, fd: i32) -> Option<i32> {
        use std::os::unix::fs::MetadataExt;
        if self.ids == [None, None] {
            return None;
        }
        let theirs = std::fs::metadata(format!("/proc/{tid}/fd/{fd}"))
            .ok()
            .map(|m| (m.dev(), m.ino()))?;
        // The same terminal can be both: prefer the number the program used.
        let order = if fd == 2 { [2, 1] } else { [1, 2] };
        order
            .into_iter()
            .find(|&n| self.ids[n as usize - 1] == Some(theirs))
    }
}

/// `write`, `pwrite64`, `writev`, `pwritev`, `pwritev2` (and the 32-bit
/// `write`: [`syscalls::row_nr`]).
pub(crate) fn is_write_family(nr: i64) -> bool {
    matches!(
        syscalls::row_nr(nr),
        libc::SYS_write
            | libc::SYS_pwrite64
            | libc::SYS_writev
            | libc::SYS_pwritev
            | libc::SYS_pwritev2
    )
}

/// Whether the tracee's `fd` is open for writing (`flags:` in fdinfo; true
/// when that cannot be read, to be safe).
pub fn fd_writable(tid: i32, fd: i32) -> bool {
    use std::io::Read;
    // One read: `pos:` and `flags:` are the first two lines.
    let mut buf = [0u8; 256];
    let n = std::fs::File::open(format!("/proc/{tid}/fdinfo/{fd}"))
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|info| {
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            i32::from_str_radix(flags.trim(), 8).ok()
        })
        .is_none_or(|flags| flags & libc::O_ACCMODE != libc::O_RDONLY)
}

/// The last file [`mapped_file`] stored: the loader maps each library
/// several times in a row through one descriptor (the whole file, then each
/// segment), and each lookup costs a dozen syscalls.
#[derive(Debug, Default)]
pub struct MappedMemo {
    last: Option<Memo>,
}

#[derive(Debug)]
struct Memo {
    tid: i32,
    fd: i32,
    /// (device, inode, size, mtime seconds, mtime nanoseconds).
    ident: (u64, u64, u64, i64, i64),
    extra: SyscallExtra,
}

/// Stores the file behind `fd` in the trace. Prefers the file's own path
/// (so the entry can be a hard link) when it still names the same file.
///
/// The entry is a private copy (`add_file_copy`) when `fd` is open for
/// writing; a hard link (`add_file`) for code (`allow_link`: an executable
/// mapping) or an executable file; otherwise, a data file read-only, a link
/// only if the file was last modified before the recording started
/// (`add_file_unless_modified`): one modified since may hold bytes the
/// program wrote, which must not show through a link. The same descriptor
/// of the same thread, still open read-only on a file of the same identity
/// as at the last call, gives the last answer again. A `shared` mapping
/// is always a copy, never from the memo.
fn mapped_file(
    tid: i32,
    fd: i32,
    allow_link: bool,
    shared: bool,
    writer: &mut TraceWriter,
    memo: &mut MappedMemo,
    unsupported: &mut Vec<String>,
) -> SyscallExtra {
    use std::os::unix::fs::MetadataExt;
    let proc_path = format!("/proc/{tid}/fd/{fd}");
    let meta = std::fs::metadata(&proc_path).ok();
    let ident = meta
        .as_ref()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
    // A shared mapping is copied as it is now, like a writable one.
    let writable = shared || fd_writable(tid, fd);
    if let (Some(last), Some(ident), false) = (&memo.last, ident, writable) {
        if last.tid == tid && last.fd == fd && last.ident == ident {
            return last.extra.clone();
        }
    }
    memo.last = None;
    let link = std::fs::read_link(&proc_path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(size) = meta
        .as_ref()
        .map(|m| m.size())
        .filter(|&s| s > MAX_MAPPED_FILE)
    {
        // A trace must not grow by a whole disk for one mapping (a sparse
        // 100 GiB file mapped for its first page): not copied, said.
        unsupported.push(format!(
            "mmap of {link}: the file is {} MiB, over the {} MiB a trace copies \
             of a mapped file (it was not copied)",
            size >> 20,
            MAX_MAPPED_FILE >> 20
        ));
        return SyscallExtra::None;
    }
    let same = |p: &Path| match (std::fs::metadata(p), &meta) {
        (Ok(a), Some(b)) => a.dev() == b.dev() && a.ino() == b.ino() && a.is_file(),
        _ => false,
    };
    let source = if link.starts_with('/') && same(Path::new(&link)) {
        Path::new(&link).to_path_buf()
    } else {
        Path::new(&proc_path).to_path_buf()
    };
    let executable_file = meta
        .as_ref()
        .is_some_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    let added = if writable {
        writer.add_file_copy(&source)
    } else if allow_link || executable_file {
        writer.add_file(&source)
    } else {
        writer.add_file_unless_modified(&source)
    };
    match added {
        Ok(file) => {
            let extra = SyscallExtra::MappedFile { file, path: link };
            if let (Some(ident), false) = (ident, writable) {
                memo.last = Some(Memo {
                    tid,
                    fd,
                    ident,
                    extra: extra.clone(),
                });
            }
            extra
        }
        Err(e) => {
            unsupported.push(format!(
                "mmap of {link}: cannot copy it into the trace: {e}"
            ));
            SyscallExtra::None
        }
    }
}
