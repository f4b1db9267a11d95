//! Applying a recorded syscall to a replay thread stopped at its entry: the
//! mirror of `recorder/capture.rs`.
//!
//! - Emulated syscalls are skipped (`orig_rax = -1`); at the exit stop the
//!   recorded result goes into `rax` and the recorded bytes into memory.
//! - A file-backed `mmap` maps the trace's copy of the file, privately, at
//!   the recorded address, through syscalls injected at the exit stop.
//! - An anonymous `mmap` runs at the recorded address (`MAP_FIXED_NOREPLACE`
//!   unless the program asked for `MAP_FIXED`), so a layout difference is a
//!   divergence, not a silent overlap.
//! - A System V `shmat` becomes a shared anonymous `mmap` at the recorded
//!   address (a child forked after it shares it, as it shared the segment),
//!   filled with the segment's recorded contents, then given the attach's
//!   protection (an injected `mprotect` for a read-only or executable
//!   attach); its `shmdt` becomes the `munmap` of that mapping.
//! - An AIO `io_setup` maps its ring the same way at the
//!   recorded address ([`shared_mapping`]); `io_destroy` unmaps it.

use std::io::Write;
use std::path::Path;

use rrtest_abi::FIXED_PAGE_ADDR;

use super::Error;
use crate::tracee::inject_via_fixed_page;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{SyscallExtra, SyscallResult};

/// Scratch area in the fixed page for paths passed to injected syscalls.
pub const SCRATCH_OFFSET: u64 = 0x100;
const SCRATCH_LEN: usize = 0x600;

fn perr(op: &'static str, tid: i32) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Ptrace { op, tid, source }
}

/// Resumes a thread stopped at a syscall entry to that syscall's exit stop.
pub fn run_to_exit(tid: i32) -> Result<Regs, Error> {
    ptrace::syscall(tid, 0).map_err(perr("PTRACE_SYSCALL", tid))?;
    match ptrace::wait_tid(tid).map_err(perr("waitpid", tid))? {
        WaitEvent::SyscallStop { .. } => ptrace::getregs(tid).map_err(perr("PTRACE_GETREGS", tid)),
        ev => Err(Error::Ptrace {
            op: "waiting for a syscall exit",
            tid,
            source: std::io::Error::other(format!("unexpected stop {ev:?}")),
        }),
    }
}

/// Skips the syscall the thread is stopped at the entry of, and stops at its exit.
pub fn skip_syscall(tid: i32, regs: &mut Regs) -> Result<Regs, Error> {
    regs.orig_rax = u64::MAX;
    ptrace::setregs(tid, regs).map_err(perr("PTRACE_SETREGS", tid))?;
    run_to_exit(tid)
}

/// Sets the return value at an exit stop.
pub fn set_ret(tid: i32, mut regs: Regs, ret: i64) -> Result<(), Error> {
    regs.rax = ret as u64;
    ptrace::setregs(tid, &regs).map_err(perr("PTRACE_SETREGS", tid))
}

/// Emulates a syscall: skip it, and inject its recorded result. At a seccomp
/// stop, a syscall number of -1 skips the syscall and leaves `rax` as we set
/// it, so this costs no further stop.
pub fn emulate(tid: i32, regs: &mut Regs, result: &SyscallResult, echo: bool) -> Result<(), Error> {
    // -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK:
    // the kernel's signal code restarts the syscall (or turns it into
    // restart_syscall) when it sees these in rax *and* a syscall number in
    // orig_rax, which a skipped syscall no longer has. Put it back at the
    // exit stop.
    const RESTART: std::ops::RangeInclusive<i64> = -516..=-512;
    if RESTART.contains(&result.ret) {
        let nr = regs.orig_rax;
        let mut exit = skip_syscall(tid, regs)?;
        exit.orig_rax = nr;
        exit.rax = result.ret as u64;
        ptrace::setregs(tid, &exit).map_err(perr("PTRACE_SETREGS", tid))?;
        return write_back(tid, result);
    }
    regs.orig_rax = u64::MAX;
    regs.rax = result.ret as u64;
    ptrace::setregs(tid, regs).map_err(perr("PTRACE_SETREGS", tid))?;
    write_back(tid, result)?;
    if echo {
        echo_output(&result.extra);
    }
    Ok(())
}

/// Writes the recorded memory effects into the tracee.
pub fn write_back(tid: i32, result: &SyscallResult) -> Result<(), Error> {
    let mem = RemoteMem::new(tid);
    for w in &result.writes {
        mem.write(w.addr, &w.data)
            .map_err(perr("writing recorded syscall output", tid))?;
    }
    Ok(())
}

/// Writes recorded program output to our own stdout/stderr.
pub fn echo_output(extra: &SyscallExtra) {
    if let SyscallExtra::Output { fd, data } = extra {
        // Our own stdout/stderr being closed must not end the replay.
        let _ = match fd {
            1 => {
                let mut out = std::io::stdout().lock();
                out.write_all(data).and_then(|_| out.flush())
            }
            _ => std::io::stderr().lock().write_all(data),
        };
    }
}

/// Replays a file-backed mmap from the trace's copy of the file. Returns the
/// address the injected mmap produced.
pub fn mmap_file(
    tid: i32,
    regs: &mut Regs,
    args: &[u64; 6],
    recorded_ret: i64,
    file: &Path,
) -> Result<i64, Error> {
    let exit_regs = skip_syscall(tid, regs)?;
    let mem = RemoteMem::new(tid);
    let mut path = file.as_os_str().as_encoded_bytes().to_vec();
    path.push(0);
    if path.len() > SCRATCH_LEN {
        return Err(Error::Ptrace {
            op: "mapping a file from the trace",
            tid,
            source: std::io::Error::other(format!("trace path too long: {}", file.display())),
        });
    }
    let scratch = FIXED_PAGE_ADDR + SCRATCH_OFFSET;
    mem.write(scratch, &path)
        .map_err(perr("writing a path into the fixed page", tid))?;
    let fd = inject_via_fixed_page(
        tid,
        libc::SYS_openat,
        [
            libc::AT_FDCWD as u64,
            scratch,
            (if args[3] as i32 & libc::MAP_SHARED != 0 && args[2] as i32 & libc::PROT_WRITE != 0 {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            } | libc::O_CLOEXEC) as u64,
            0,
            0,
            0,
        ],
    )
    .map_err(perr("opening the trace's copy of a mapped file", tid))?;
    if fd < 0 {
        return Err(Error::Ptrace {
            op: "opening the trace's copy of a mapped file",
            tid,
            source: std::io::Error::from_raw_os_error(-fd as i32),
        });
    }
    // A shared mapping keeps its sharing (writes through it must survive
    // MADV_DONTNEED and show in other mappings of the file): the caller
    // passes a replay-private copy of the file for it. Everything else maps
    // the trace's copy privately, so the trace never changes.
    let shared = args[3] as i32 & (libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE) != 0;
    let flags = if shared {
        args[3] as i32 | libc::MAP_FIXED
    } else {
        args[3] as i32 | libc::MAP_PRIVATE | libc::MAP_FIXED
    };
    let mapped = inject_via_fixed_page(
        tid,
        libc::SYS_mmap,
        [
            recorded_ret as u64,
            args[1],
            args[2],
            flags as u64,
            fd as u64,
            args[5],
        ],
    )
    .map_err(perr("mapping the trace's copy of a file", tid))?;
    inject_via_fixed_page(tid, libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])
        .map_err(perr("close", tid))?;
    set_ret(tid, exit_regs, mapped)?;
    Ok(mapped)
}

/// Runs an anonymous mmap at the recorded address. Returns its result.
/// A mapping of `/dev/zero` (recorded with no file: its descriptor is not
/// there in replay) is made anonymous, as the kernel makes it (shared:
/// shmem, private: zero pages).
pub fn mmap_anonymous(tid: i32, regs: &mut Regs, recorded_ret: i64) -> Result<i64, Error> {
    let (addr, flags) = (regs.rdi, regs.r10);
    let mut want = flags as i32 | libc::MAP_ANONYMOUS;
    if flags as i32 & libc::MAP_FIXED == 0 {
        regs.rdi = recorded_ret as u64;
        want |= libc::MAP_FIXED_NOREPLACE;
    }
    if want as u64 != flags || regs.rdi != addr {
        regs.r10 = want as u64;
        ptrace::setregs(tid, regs).map_err(perr("PTRACE_SETREGS", tid))?;
    }
    let mut exit = run_to_exit(tid)?;
    // The program must not see our edits in its registers.
    if exit.rdi != addr || exit.r10 != flags {
        exit.rdi = addr;
        exit.r10 = flags;
        ptrace::setregs(tid, &exit).map_err(perr("PTRACE_SETREGS", tid))?;
    }
    Ok(exit.rax as i64)
}

/// Replays an anonymous mapping made by a call whose registers are not
/// `mmap`'s (a 32-bit `mmap2`, `args` the x86-64 `mmap` it means): the
/// call is skipped, and an x86-64 `mmap` through the fixed page maps at
/// the recorded address (`MAP_FIXED_NOREPLACE` unless the program asked
/// for `MAP_FIXED`, as [`mmap_anonymous`] does). Returns its result,
/// which the program sees.
pub fn mmap_anonymous_injected(
    tid: i32,
    regs: &mut Regs,
    args: &[u64; 6],
    recorded_ret: i64,
) -> Result<i64, Error> {
    let exit_regs = skip_syscall(tid, regs)?;
    let mut flags = args[3] as i32 | libc::MAP_ANONYMOUS;
    if flags & libc::MAP_FIXED == 0 {
        flags |= libc::MAP_FIXED_NOREPLACE;
    }
    let mapped = inject_via_fixed_page(
        tid,
        libc::SYS_mmap,
        [
            recorded_ret as u64,
            args[1],
            args[2],
            flags as u64,
            u64::MAX,
            0,
        ],
    )
    .map_err(perr("mapping anonymous memory", tid))?;
    set_ret(tid, exit_regs, mapped)?;
    Ok(mapped)
}

/// Runs syscall `nr` with `args` instead of the one `tid` is stopped at
/// the entry of, to its exit; puts back the registers the program had
/// (the argument registers and `orig_rax`) with `ret` in `rax`. Returns what
/// the substitute returned.
fn substitute(tid: i32, regs: &Regs, nr: i64, args: [u64; 6], ret: i64) -> Result<i64, Error> {
    let mut r = *regs;
    r.orig_rax = nr as u64;
    r.rdi = args[0];
    r.rsi = args[1];
    r.rdx = args[2];
    r.r10 = args[3];
    r.r8 = args[4];
    r.r9 = args[5];
    ptrace::setregs(tid, &r).map_err(perr("PTRACE_SETREGS", tid))?;
    let mut exit = run_to_exit(tid)?;
    let got = exit.rax as i64;
    exit.orig_rax = regs.orig_rax;
    exit.rdi = regs.rdi;
    exit.rsi = regs.rsi;
    exit.rdx = regs.rdx;
    exit.r10 = regs.r10;
    exit.r8 = regs.r8;
    exit.r9 = regs.r9;
    exit.rax = ret as u64;
    ptrace::setregs(tid, &exit).map_err(perr("PTRACE_SETREGS", tid))?;
    Ok(got)
}

/// Replays a successful call that mapped shared memory the program reads
/// in place at `addr`: `shmat` (its segment at its result) and `io_setup`
/// (its AIO ring at the recorded `*ctxp`; the kernel's ring is a shared
/// mapping too, which a child forked later shares). A shared anonymous
/// read-write mapping there, as long as the recorded contents
/// ([`recorded_mapping_len`]), which are then written into it with the
/// call's other writes; then the mapping gets `prot`, the protection the
/// call gave it (a read-only or executable attach: [`protect`]); the call
/// returns its recorded result. Returns the mapping's address (`addr`, or
/// the divergence).
pub fn shared_mapping(
    tid: i32,
    regs: &Regs,
    result: &SyscallResult,
    addr: u64,
    prot: i32,
) -> Result<i64, Error> {
    let len = recorded_mapping_len(result, addr);
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let flags = (libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let args = [addr, len, rw, flags, u64::MAX, 0];
    let got = substitute(tid, regs, libc::SYS_mmap, args, result.ret)?;
    if got == addr as i64 {
        write_back(tid, result)?;
        let changed = protect(tid, addr, len, prot)?;
        if changed != 0 {
            return Ok(changed);
        }
    }
    Ok(got)
}

/// Gives the read-write mapping of `len` bytes at `addr` that replay made
/// for an attach (and filled) the attach's protection `prot`, where it is
/// not read-write (`SHM_RDONLY`: `PROT_READ`; `SHM_EXEC` adds
/// `PROT_EXEC`), with an `mprotect` injected at the thread's syscall-exit
/// stop (its registers kept). Returns `mprotect`'s result (0 where there
/// was nothing to change).
pub fn protect(tid: i32, addr: u64, len: u64, prot: i32) -> Result<i64, Error> {
    if prot == libc::PROT_READ | libc::PROT_WRITE {
        return Ok(0);
    }
    inject_via_fixed_page(tid, libc::SYS_mprotect, [addr, len, prot as u64, 0, 0, 0])
        .map_err(perr("giving an attach its protection", tid))
}

/// The length of the mapping a call made at `addr` whose contents it
/// recorded there (a segment, an AIO ring): that write's, in whole pages,
/// at least one.
pub fn recorded_mapping_len(result: &SyscallResult, addr: u64) -> u64 {
    result
        .writes
        .iter()
        .find(|w| w.addr == addr)
        .map_or(0, |w| w.data.len() as u64)
        .next_multiple_of(4096)
        .max(4096)
}

/// Where the mapping of thread `tid` that starts at `addr` ends (its
/// /proc maps), if one starts there.
pub fn mapping_end(tid: i32, addr: u64) -> Result<Option<u64>, Error> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))
        .map_err(perr("reading /proc/TID/maps", tid))?;
    Ok(maps.lines().find_map(|l| {
        let (range, _) = l.split_once(' ')?;
        let (start, end) = range.split_once('-')?;
        (u64::from_str_radix(start, 16).ok()? == addr).then(|| u64::from_str_radix(end, 16).ok())?
    }))
}

/// Replays a successful `shmdt(addr)` (or `io_destroy`): unmaps the
/// mapping [`shared_mapping`] made at `addr` (its length from the
/// thread's /proc maps). Returns `munmap`'s result.
pub fn shm_detach(tid: i32, regs: &Regs, addr: u64) -> Result<i64, Error> {
    let Some(end) = mapping_end(tid, addr)? else {
        // No mapping there: as the kernel would say.
        return Ok(-(libc::EINVAL as i64));
    };
    substitute(
        tid,
        regs,
        libc::SYS_munmap,
        [addr, end - addr, 0, 0, 0, 0],
        0,
    )
}
