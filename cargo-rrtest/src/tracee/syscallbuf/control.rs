//! The words the tracer writes to steer the hook (the header's
//! `force_bail` and `abort_commit`, the locals' [`Controls`]),
//! a thread's desched event, and spotting and unwinding a buffered syscall
//! that blocked in the untraced gate.
//!
//! It must not choose when to arm or unwind: the recorder's scheduler and
//! signal handling do; replay never arms a desched event.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rrtest_abi::{header, locals, DESCHED_POLLED, THREAD_LOCALS_ADDR};
use rrtest_sys::perf;
use rrtest_sys::ptrace::{self, Regs};
use rrtest_sys::RemoteMem;

use super::BUFFER_ADDR;

/// Writes the buffer header's `force_bail` (non-zero: the hook bails at
/// once, so the thread stops at its next syscall).
pub fn set_force_bail(tid: i32, on: bool) -> io::Result<()> {
    RemoteMem::new(tid).write(
        BUFFER_ADDR + header::FORCE_BAIL,
        &u32::from(on).to_le_bytes(),
    )
}

/// What the recorder tells the running thread's hook through the locals:
/// their `desched_fd`, `flags` and `bail_after`, adjacent, written at once
/// ([`write_controls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    /// The running thread's desched event, which the hook arms around
    /// may-block syscalls, or [`DESCHED_POLLED`].
    pub desched_fd: i32,
    /// [`rrtest_abi::locals_flags`] bits.
    pub flags: u32,
    /// The records the buffer may hold before every syscall bails (0: no
    /// limit; see [`rrtest_abi::budget_spent`]).
    pub bail_after: u32,
}

impl Default for Controls {
    /// What a new buffer's locals hold.
    fn default() -> Self {
        Controls {
            desched_fd: DESCHED_POLLED,
            flags: 0,
            bail_after: 0,
        }
    }
}

/// Writes `controls` into the locals of `tid`'s address space.
pub fn write_controls(tid: i32, controls: Controls) -> io::Result<()> {
    const _: () = assert!(locals::FLAGS == locals::DESCHED_FD + 4);
    const _: () = assert!(locals::BAIL_AFTER == locals::FLAGS + 4);
    let mut words = [0u8; 12];
    words[..4].copy_from_slice(&controls.desched_fd.to_le_bytes());
    words[4..8].copy_from_slice(&controls.flags.to_le_bytes());
    words[8..].copy_from_slice(&controls.bail_after.to_le_bytes());
    RemoteMem::new(tid).write(THREAD_LOCALS_ADDR + locals::DESCHED_FD, &words)
}

/// The lowest descriptor number a desched event takes in the tracee, out
/// of the way of the descriptors programs number themselves (rr keeps its
/// own above a floor too). Below it only when the limit is lower.
const DESCHED_FD_FLOOR: u64 = 800;

/// A thread's desched event: a software context-switch counter on the
/// thread, open in its process (the hook enables it around may-block
/// buffered syscalls) and in the recorder, whose copy makes the counter
/// signal the thread with [`perf::DESCHED_SIGNAL`].
#[derive(Debug)]
pub struct DeschedEvent {
    /// The descriptor in the tracee.
    pub fd: i32,
    /// The recorder's copy: the `si_fd` of its signals; disables it.
    pub ours: OwnedFd,
}

impl DeschedEvent {
    /// Whether a signal `signo` with `info` is this event's.
    pub fn sent(&self, signo: i32, info: &[u8; ptrace::SIGINFO_SIZE]) -> bool {
        // siginfo: si_code at 8; for SIGPOLL, si_band at 16, si_fd at 24.
        let code = i32::from_le_bytes(info[8..12].try_into().expect("4 bytes"));
        let fd = i32::from_le_bytes(info[24..28].try_into().expect("4 bytes"));
        signo == perf::DESCHED_SIGNAL && code == perf::POLL_IN && fd == self.ours.as_raw_fd()
    }
}

/// What opening a desched event for a thread gave.
#[derive(Debug)]
pub enum DeschedSetup {
    /// The event, open in the thread's process.
    Opened(DeschedEvent),
    /// The kernel refused a step (the errno): `perf_event_open` refuses
    /// kernel-side counting to unprivileged users when
    /// `kernel.perf_event_paranoid` is 2 or more, or seccomp forbids it.
    Refused(i32),
}

/// Opens a desched event for thread `tid` of process `pid`, stopped at a
/// stop that allows injecting syscalls (not a syscall entry): the thread
/// opens it itself (injected `perf_event_open` through the fixed page),
/// moves it to a descriptor at or above [`DESCHED_FD_FLOOR`]
/// (close-on-exec), and the recorder takes a copy and points its signals
/// at the thread. Nothing the program sees runs: the injected syscalls
/// are not program syscalls and are not recorded; replay never arms.
pub fn open_desched(tid: i32, pid: i32) -> io::Result<DeschedSetup> {
    let scratch = THREAD_LOCALS_ADDR + locals::RECORDER_SCRATCH;
    RemoteMem::new(tid).write(scratch, &perf::desched_attr())?;
    const PERF_FLAG_FD_CLOEXEC: u64 = 8;
    let opened = crate::tracee::inject_via_fixed_page(
        tid,
        libc::SYS_perf_event_open,
        [scratch, 0, u64::MAX, u64::MAX, PERF_FLAG_FD_CLOEXEC, 0],
    )?;
    if opened < 0 {
        return Ok(DeschedSetup::Refused(-opened as i32));
    }
    let mut fd = opened;
    let high = crate::tracee::inject_via_fixed_page(
        tid,
        libc::SYS_fcntl,
        [
            opened as u64,
            libc::F_DUPFD_CLOEXEC as u64,
            DESCHED_FD_FLOOR,
            0,
            0,
            0,
        ],
    )?;
    if high >= 0 {
        crate::tracee::inject_via_fixed_page(tid, libc::SYS_close, [opened as u64, 0, 0, 0, 0, 0])?;
        fd = high;
    }
    let ours = perf::take_fd(pid, fd as i32).and_then(|ours| {
        perf::signal_thread(&ours, tid)?;
        Ok(ours)
    });
    match ours {
        Ok(ours) => Ok(DeschedSetup::Opened(DeschedEvent {
            fd: fd as i32,
            ours,
        })),
        Err(e) => {
            crate::tracee::inject_via_fixed_page(tid, libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
            Ok(DeschedSetup::Refused(e.raw_os_error().unwrap_or(libc::EIO)))
        }
    }
}

/// Replay: empties the buffer before the thread runs (the recorder took the
/// records at each stop), and sets `force_bail`.
pub fn reset_for_replay(tid: i32, force_bail: bool) -> io::Result<()> {
    let mem = RemoteMem::new(tid);
    mem.write(BUFFER_ADDR + header::USED, &[0; 8])?;
    set_force_bail(tid, force_bail)
}

/// Whether running thread `tid` sleeps in a syscall made through the
/// untraced gate (a buffered syscall that blocked): `/proc/TID/syscall`
/// names the gate as its user-space pc.
pub fn blocked_in_untraced(tid: i32) -> bool {
    let mut buf = [0u8; SYSCALL_FILE_MAX];
    let Some(n) = read_syscall_file(tid, &mut buf) else {
        return false;
    };
    syscall_file_pc(&buf[..n]) == Some(rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED))
}

/// More than `/proc/TID/syscall` ever holds: a number and eight words in
/// hex, about 170 bytes.
const SYSCALL_FILE_MAX: usize = 256;

/// How many `/proc/TID/syscall` descriptors a recording thread keeps open.
const SYSCALL_FILES_KEPT: usize = 16;

thread_local! {
    /// The `/proc/TID/syscall` files of the last threads looked at, kept
    /// open (in the order opened: the first goes when a seventeenth thread
    /// is looked at): the ticks look at the running thread every
    /// millisecond while others wait, and a `pread` at 0 is one syscall
    /// where opening, reading to the end and closing were five or six.
    /// The kernel makes the text again at each read from offset 0. A
    /// descriptor pins its thread, not its number: once that thread is
    /// gone (its id perhaps another thread's now) reading fails, and the
    /// file is opened again.
    static SYSCALL_FILES: std::cell::RefCell<Vec<(i32, std::fs::File)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads `/proc/TID/syscall` into `buf`: its length, `None` when it cannot
/// be read (no such thread) or does not fit.
fn read_syscall_file(tid: i32, buf: &mut [u8; SYSCALL_FILE_MAX]) -> Option<usize> {
    use std::os::unix::fs::FileExt;
    let whole = |n: usize| n > 0 && n < SYSCALL_FILE_MAX;
    SYSCALL_FILES.with_borrow_mut(|files| {
        if let Some(i) = files.iter().position(|&(t, _)| t == tid) {
            match files[i].1.read_at(buf, 0) {
                Ok(n) if whole(n) => return Some(n),
                _ => drop(files.remove(i)),
            }
        }
        let file = std::fs::File::open(format!("/proc/{tid}/syscall")).ok()?;
        let n = file.read_at(buf, 0).ok().filter(|&n| whole(n))?;
        if files.len() >= SYSCALL_FILES_KEPT {
            files.remove(0);
        }
        files.push((tid, file));
        Some(n)
    })
}

/// The user-space pc `/proc/TID/syscall`'s text names (its last word), if
/// the thread is in a syscall (not `running`).
fn syscall_file_pc(text: &[u8]) -> Option<u64> {
    let last = text
        .split(|b| b.is_ascii_whitespace())
        .rfind(|w| !w.is_empty())?;
    let word = std::str::from_utf8(last).ok()?;
    u64::from_str_radix(word.trim_start_matches("0x"), 16).ok()
}

/// Sets `abort_commit`: the hook discards the record in flight and bails.
pub fn set_abort_commit(tid: i32) -> io::Result<()> {
    RemoteMem::new(tid).write(BUFFER_ADDR + header::ABORT_COMMIT, &1u32.to_le_bytes())
}

/// Whether a thread stopped with `regs` is inside a buffered syscall that
/// the kernel interrupted and would restart (it blocked): the untraced
/// gate, with a restart code or `-EINTR` as result, and still the syscall's
/// number in `orig_rax` ([`abort_untraced`] clears it: a second stop there,
/// a desched signal and an interrupt for the same block, finds it done).
pub fn in_interrupted_untraced(regs: &Regs) -> bool {
    const EINTR: i64 = -4;
    let ret = regs.rax as i64;
    regs.rip == rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED)
        && (ret == EINTR || (-516..=-512).contains(&ret))
        && (regs.orig_rax as i64) >= 0
}

/// Unwinds a thread stopped inside an interrupted buffered syscall (see
/// [`in_interrupted_untraced`]): the syscall returns `-EINTR` instead of
/// restarting and the hook discards its record, so the stub issues it again,
/// traced.
pub fn abort_untraced(tid: i32, regs: &Regs) -> io::Result<()> {
    set_abort_commit(tid)?;
    let mut r = *regs;
    r.rax = -(libc::EINTR as i64) as u64;
    r.orig_rax = u64::MAX;
    ptrace::setregs(tid, &r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    #[test]
    fn the_pc_is_the_syscall_files_last_word() {
        let gate = rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED);
        let line = format!("202 0x7f0 0x80 0x0 0x0 0x0 0x0 0x7ffd8 {gate:#x}\n");
        assert_eq!(syscall_file_pc(line.as_bytes()), Some(gate));
        assert_eq!(syscall_file_pc(b"-1 0x7ffd8 0x401000\n"), Some(0x401000));
        assert_eq!(syscall_file_pc(b"running\n"), None);
        assert_eq!(syscall_file_pc(b""), None);
    }

    /// The syscall number `/proc/TID/syscall` names, as read through the
    /// kept descriptor.
    fn syscall_nr(tid: i32) -> Option<i64> {
        let mut buf = [0u8; SYSCALL_FILE_MAX];
        let n = read_syscall_file(tid, &mut buf)?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }

    /// Waits until `tid` sleeps in syscall `nr` (as the kept descriptor
    /// reads it).
    fn wait_for_nr(tid: i32, nr: i64) {
        let start = Instant::now();
        while syscall_nr(tid) != Some(nr) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "thread {tid} never sleeps in syscall {nr}: {:?}",
                syscall_nr(tid)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_kept_syscall_file_reads_the_threads_state_now() {
        let (mut ours, mut theirs) = UnixStream::pair().expect("socketpair");
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).expect("send");
            let mut byte = [0u8; 1];
            // Blocks in `recvfrom` (a socket's read), then in `futex`.
            theirs.read_exact(&mut byte).expect("read");
            go_rx.recv().expect("recv");
        });
        let tid = rx.recv().expect("tid");
        wait_for_nr(tid, libc::SYS_recvfrom);
        ours.write_all(b"x").expect("write");
        // The same descriptor, read again, says where the thread is now.
        wait_for_nr(tid, libc::SYS_futex);
        let kept = |tid| SYSCALL_FILES.with_borrow(|f| f.iter().filter(|(t, _)| *t == tid).count());
        assert_eq!(kept(tid), 1);
        go_tx.send(()).expect("send");
        thread.join().expect("join");
        // A thread that is gone: its kept file fails, and is let go.
        assert_eq!(syscall_nr(tid), None);
        assert_eq!(kept(tid), 0);
    }
}
