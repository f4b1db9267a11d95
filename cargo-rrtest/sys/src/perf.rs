//! Perf events without a PMU: the per-thread software context-switch
//! counter of the syscall buffer's desched (created by the tracee itself
//! from [`desched_attr`], signalled to the thread), and the helpers around
//! it.
//!
//! Replay once also stopped threads at execution points with
//! `PERF_TYPE_BREAKPOINT` counters of known pass counts. On the development
//! VM their signal came late, even `sigtrap`'s (the thread ran on to the
//! next `pause`), so replay searches with a debug-register breakpoint
//! instead (`replayer/session/points.rs`; docs/design.md).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

/// The size of a `struct perf_event_attr` up to `bp_len`
/// (`PERF_ATTR_SIZE_VER1`), the one the desched event declares.
const PERF_ATTR_SIZE_VER1: u32 = 72;

#[repr(C)]
struct FOwnerEx {
    type_: libc::c_int,
    pid: libc::pid_t,
}

/// The signal a thread's desched event sends it when the thread is switched
/// out while the event is enabled (rr uses the same one). The recorder
/// suppresses every one it recognizes (`si_code` `POLL_IN`, `si_fd` the
/// recorder's copy of the event).
pub const DESCHED_SIGNAL: i32 = libc::SIGPWR;

/// `si_code` of a signal sent for a readable descriptor (`POLL_IN`).
pub const POLL_IN: i32 = 1;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CONTEXT_SWITCHES: u64 = 3;
const DISABLED: u64 = 1;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;

/// The `perf_event_attr` of a desched event, as bytes to write into a
/// tracee that opens it itself: a software context-switch counter (no PMU
/// involved), created disabled, overflowing at every switch. It counts in
/// the kernel too (that is where the switch happens), which
/// `perf_event_paranoid` 2 and above refuse to unprivileged users.
pub fn desched_attr() -> Vec<u8> {
    let size = PERF_ATTR_SIZE_VER1;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(&PERF_TYPE_SOFTWARE.to_le_bytes());
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(&PERF_COUNT_SW_CONTEXT_SWITCHES.to_le_bytes());
    // sample_period 1: every switch overflows.
    b.extend_from_slice(&1u64.to_le_bytes());
    // sample_type, read_format.
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&DISABLED.to_le_bytes());
    b.resize(size as usize, 0);
    b
}

/// Keeps the kernel's per-thread perf event hooks on for the rest of this
/// process's life, by holding one disabled desched-like event on the
/// calling thread (once; a no-op after, or if refused). The kernel turns
/// the hooks on when the first per-thread event is created, which costs
/// several milliseconds, and off about a second after the last one is
/// gone: a recorder server that opens desched events for one test after
/// another would pay that at every test.
pub fn keep_hooks_on() {
    static HELD: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let attr = desched_attr();
        // SAFETY: `attr` holds a valid perf_event_attr of the size it
        // declares; the other arguments are integers.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                0,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        // SAFETY: a fresh descriptor perf_event_open gave us; we own it.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    });
}

/// A copy, in this process, of descriptor `fd` of process `pid`
/// (`pidfd_getfd`, Linux 5.6; needs ptrace access to `pid`).
pub fn take_fd(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    let pidfd = super::fdpass::pidfd_open(pid)?;
    // SAFETY: pidfd_getfd takes descriptors and flags and returns a new
    // descriptor or -1; no memory is passed.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor the kernel gave us; we are its only owner.
    // pidfd_getfd sets close-on-exec on it.
    Ok(unsafe { OwnedFd::from_raw_fd(got as i32) })
}

/// Makes the perf event behind `fd` send [`DESCHED_SIGNAL`] to thread
/// `tid` at each overflow, with `si_fd` = `fd`'s number here. The settings
/// belong to the open file, which the tracee's descriptor shares.
pub fn signal_thread(fd: &OwnedFd, tid: i32) -> io::Result<()> {
    let owner = FOwnerEx {
        type_: F_OWNER_TID,
        pid: tid,
    };
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on our own descriptor with integer arguments, and a
    // pointer to a live f_owner_ex for F_SETOWN_EX.
    let ok = unsafe {
        libc::fcntl(raw, F_SETOWN_EX, &owner as *const FOwnerEx) == 0
            && libc::fcntl(raw, F_SETSIG, DESCHED_SIGNAL) == 0
            && libc::fcntl(raw, libc::F_SETFL, libc::O_ASYNC) == 0
    };
    if !ok {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Disables the perf event behind `fd` (which the tracee enables around
/// each may-block buffered syscall).
pub fn disable(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: an ioctl without argument memory on our own descriptor.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PERF_EVENT_IOC_DISABLE, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desched_attr_is_a_disabled_software_context_switch_counter() {
        let a = desched_attr();
        assert_eq!(a.len(), 72);
        assert_eq!(u32::from_le_bytes(a[0..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(a[4..8].try_into().unwrap()), 72);
        assert_eq!(u64::from_le_bytes(a[8..16].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(a[16..24].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(a[40..48].try_into().unwrap()), 1);
        assert!(a[48..].iter().all(|&b| b == 0));
    }
}
