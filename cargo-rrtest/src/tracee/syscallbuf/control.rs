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
    let Ok(s) = std::fs::read_to_string(format!("/proc/{tid}/syscall")) else {
        return false;
    };
    s.split_whitespace()
        .last()
        .and_then(|pc| u64::from_str_radix(pc.trim_start_matches("0x"), 16).ok())
        == Some(rrtest_abi::syscall_ip(rrtest_abi::entry::UNTRACED))
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
