//! Counted execution breakpoints: a `PERF_TYPE_BREAKPOINT` event on one
//! thread that overflows after exactly N executions of an address and then
//! sends the thread a signal. No PMU is needed: these use the debug
//! registers. Replay uses them to stop once at an execution point whose hit
//! count the verification replay stored (DESIGN.md §6.3).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The signal a counter sends its thread on overflow (rr uses the same one
/// for its time slices; programs do not use it).
pub const OVERFLOW_SIGNAL: i32 = libc::SIGSTKFLT;

const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_X: u32 = 4;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;
// perf_event_attr.flags bits.
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;

/// `struct perf_event_attr` up to `bp_len` (PERF_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    bp_addr: u64,
    bp_len: u64,
}
const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 72);

#[repr(C)]
struct FOwnerEx {
    type_: libc::c_int,
    pid: libc::pid_t,
}

/// An armed counter; disarmed when dropped.
#[derive(Debug)]
pub struct BreakpointCounter {
    /// Held only to keep the counter armed.
    _fd: OwnedFd,
}

impl BreakpointCounter {
    /// Arms a counter on thread `tid` (stopped) that sends it
    /// [`OVERFLOW_SIGNAL`] when it is about to execute `addr` for the
    /// `count`th time from now.
    pub fn arm(tid: i32, addr: u64, count: u64) -> io::Result<Self> {
        let attr = PerfEventAttr {
            type_: PERF_TYPE_BREAKPOINT,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            sample_period: count.max(1),
            flags: EXCLUDE_KERNEL | EXCLUDE_HV,
            wakeup_events: 1,
            bp_type: HW_BREAKPOINT_X,
            bp_addr: addr,
            bp_len: std::mem::size_of::<libc::c_long>() as u64,
            ..PerfEventAttr::default()
        };
        // SAFETY: `attr` is a valid, initialized perf_event_attr of the size
        // it declares; the other arguments are integers.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                tid,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: perf_event_open returned a fresh descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let owner = FOwnerEx {
            type_: F_OWNER_TID,
            pid: tid,
        };
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on our own descriptor with integer arguments, and a
        // pointer to a live f_owner_ex for F_SETOWN_EX.
        let ok = unsafe {
            libc::fcntl(raw, libc::F_SETFL, libc::O_ASYNC) == 0
                && libc::fcntl(raw, F_SETSIG, OVERFLOW_SIGNAL) == 0
                && libc::fcntl(raw, F_SETOWN_EX, &owner as *const FOwnerEx) == 0
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
        Ok(BreakpointCounter { _fd: fd })
    }
}
