//! Counted execution breakpoints: a `PERF_TYPE_BREAKPOINT` event on one
//! thread that overflows after N executions of an address and then sends
//! the thread a signal. No PMU is needed: these use the debug registers.
//! Replay uses them to stop once at an execution point whose hit count the
//! verification replay stored (DESIGN.md §6.3).
//!
//! The signal comes one of two ways. A `sigtrap` event (Linux 5.13) sends
//! `SIGTRAP` (`TRAP_PERF`) from the breakpoint's own exception, on the way
//! back to the thread (task work, since Linux 6.1): the thread stops about
//! to execute the address, exactly. Otherwise the overflow signal is sent
//! from an interrupt the kernel raises for it ([`OVERFLOW_SIGNAL`], through
//! the descriptor's `F_SETSIG`), and the thread may run on a little before
//! it arrives: such a counter is armed one pass early, and the caller
//! finds the last pass itself, reading [`BreakpointCounter::passes`] to
//! know where the thread stopped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The signal an asynchronous counter sends its thread on overflow (rr
/// uses the same one for its time slices; programs do not use it).
pub const OVERFLOW_SIGNAL: i32 = libc::SIGSTKFLT;

/// Whether a thread that blocks the signals of `mask` is stopped by an
/// asynchronous counter: its overflow signal must not be blocked, or it
/// waits pending and the thread runs on past the address (glibc blocks
/// every signal around `clone` in `pthread_create`, a shell around
/// `vfork`).
pub fn counter_stops(mask: u64) -> bool {
    !blocks(mask, OVERFLOW_SIGNAL)
}

fn blocks(mask: u64, signo: i32) -> bool {
    mask & (1 << (signo - 1)) != 0
}

const PERF_TYPE_BREAKPOINT: u32 = 5;
const HW_BREAKPOINT_X: u32 = 4;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;
// perf_event_attr.flags bits.
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const REMOVE_ON_EXEC: u64 = 1 << 36;
const SIGTRAP: u64 = 1 << 37;

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
    /// The event; closing it disarms the counter.
    fd: OwnedFd,
    /// The pass at which it overflows.
    period: u64,
    /// The signal it sends: `SIGTRAP` for a synchronous counter.
    signal: i32,
}

impl BreakpointCounter {
    /// Arms a counter on thread `tid` (stopped, blocking the signals of
    /// `mask`) for its `pass`th execution of `addr` from now (1 is the
    /// next): a synchronous one (if `may_trap`: its caller can tell its
    /// `SIGTRAP` from others) overflows at that pass, an asynchronous one
    /// a pass earlier where it can. Refused where neither kind's signal
    /// would stop the thread.
    pub fn arm(tid: i32, addr: u64, pass: u64, mask: u64, may_trap: bool) -> io::Result<Self> {
        let pass = pass.max(1);
        if may_trap && !blocks(mask, libc::SIGTRAP) {
            match open(tid, addr, pass, SIGTRAP | REMOVE_ON_EXEC) {
                Ok(fd) => {
                    return Ok(BreakpointCounter {
                        fd,
                        period: pass,
                        signal: libc::SIGTRAP,
                    })
                }
                // A kernel before 5.13 knows no `sigtrap`.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        if !counter_stops(mask) {
            return Err(io::Error::other("the thread blocks the counter's signals"));
        }
        let period = pass.saturating_sub(1).max(1);
        let fd = open(tid, addr, period, 0)?;
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
        Ok(BreakpointCounter {
            fd,
            period,
            signal: OVERFLOW_SIGNAL,
        })
    }

    /// The pass at which the counter overflows.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The signal the counter sends its thread.
    pub fn signal(&self) -> i32 {
        self.signal
    }

    /// Whether its signal stops the thread exactly at the pass it
    /// overflows at (see the module's notes).
    pub fn synchronous(&self) -> bool {
        self.signal == libc::SIGTRAP
    }

    /// How many times the thread has been about to execute the address
    /// since the counter was armed (the count runs on past the overflow).
    pub fn passes(&self) -> io::Result<u64> {
        let mut value = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer of 8.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), value.as_mut_ptr().cast(), value.len()) };
        if n != value.len() as isize {
            return Err(if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::other(format!("a counter read of {n} bytes"))
            });
        }
        Ok(u64::from_ne_bytes(value))
    }
}

/// A breakpoint event on thread `tid` at `addr`, overflowing every
/// `period` executions, with the extra `flags`.
fn open(tid: i32, addr: u64, period: u64, flags: u64) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_BREAKPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        sample_period: period,
        flags: EXCLUDE_KERNEL | EXCLUDE_HV | flags,
        wakeup_events: 1,
        bp_type: HW_BREAKPOINT_X,
        bp_addr: addr,
        bp_len: std::mem::size_of::<libc::c_long>() as u64,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid, initialized perf_event_attr of the size it
    // declares; the other arguments are integers.
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
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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
    let size = std::mem::size_of::<PerfEventAttr>() as u32;
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

    /// The address the child of [`counted_stop`] passes again and again.
    #[inline(never)]
    extern "C" fn pass_here(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_add(1)
    }

    /// A traced child running a loop through [`pass_here`], a counter
    /// armed (with `may_trap`) for its 5th pass: the counter, the stop
    /// (signal, si_code), the passes counted and the child's ip.
    fn counted_stop(may_trap: bool) -> (BreakpointCounter, i32, i32, u64, u64) {
        use crate::ptrace;
        // SAFETY: the child only calls ptrace, raise and a pure function
        // (async-signal-safe) until it is killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: integer arguments; the child stops itself for its tracer.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
            }
            let mut x = 0;
            loop {
                x = pass_here(x);
            }
        }
        assert!(pid > 0, "fork: {}", io::Error::last_os_error());
        let ev = ptrace::wait_tid(pid).expect("waitpid");
        assert!(
            matches!(
                ev,
                ptrace::WaitEvent::Signal {
                    signo: libc::SIGSTOP,
                    ..
                }
            ),
            "{ev:?}"
        );
        let addr = pass_here as *const () as u64;
        let counter = BreakpointCounter::arm(pid, addr, 5, 0, may_trap).expect("perf_event_open");
        ptrace::cont(pid, 0).expect("PTRACE_CONT");
        let ev = ptrace::wait_tid(pid).expect("waitpid");
        let ptrace::WaitEvent::Signal { signo, .. } = ev else {
            panic!("not a signal stop: {ev:?}");
        };
        let code = ptrace::siginfo_code(&ptrace::getsiginfo(pid).expect("PTRACE_GETSIGINFO"));
        let passes = counter.passes().expect("reading the counter");
        let rip = ptrace::getregs(pid).expect("PTRACE_GETREGS").rip;
        // SAFETY: kills our own child; then reaps it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        while !matches!(
            ptrace::wait_tid(pid),
            Ok(ptrace::WaitEvent::Exited { .. } | ptrace::WaitEvent::Signaled { .. }) | Err(_)
        ) {}
        (counter, signo, code, passes, rip.wrapping_sub(addr))
    }

    #[test]
    fn a_synchronous_counter_stops_the_thread_at_its_pass() {
        let (counter, signo, code, passes, off) = counted_stop(true);
        if !counter.synchronous() {
            // A kernel before 5.13: the asynchronous kind, tried below.
            return;
        }
        assert_eq!(counter.period(), 5);
        assert_eq!((signo, code), (libc::SIGTRAP, crate::ptrace::TRAP_PERF));
        assert_eq!(
            (passes, off),
            (5, 0),
            "stopped after {passes} passes, {off:#x} past the address"
        );
    }

    #[test]
    fn an_asynchronous_counter_stops_the_thread_a_pass_early_or_after() {
        let (counter, signo, _, passes, off) = counted_stop(false);
        assert!(!counter.synchronous());
        assert_eq!(counter.period(), 4);
        assert_eq!(signo, OVERFLOW_SIGNAL);
        // Its signal comes with the overflow, at the address, about to make
        // the 4th pass; or later, and the count says so.
        assert!(
            passes > 4 || (passes == 4 && off == 0),
            "stopped after {passes} passes, {off:#x} past the address"
        );
    }
}
