//! How long a traced wait may last before it returns on its own: the
//! timeout of a `poll`, `select`, `epoll_wait`, futex wait, ... read at its
//! entry, for the chaos policy's timeout pauses (`chaos.rs`): a wait for
//! another thread with a short timeout fails only where that thread is not
//! run for the whole timeout, as on a loaded machine.
//!
//! Must not: decide anything (the policy does), or read more than the
//! call's timeout argument.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};
use rrtest_sys::RemoteMem;
use rrtest_trace::Tid;

/// `FUTEX_WAIT`, `FUTEX_WAIT_BITSET` and the flags of a futex operation.
const FUTEX_WAIT: u64 = 0;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// The timeout of x86-64 syscall `nr` with `args` made by `tid`, at its
/// entry: None where it has none (an infinite wait, a call that does not
/// wait, a 32-bit call, a timeout that cannot be read); zero where its
/// deadline has passed. Absolute deadlines (`FUTEX_WAIT_BITSET`,
/// `mq_timedreceive`) are measured from now.
pub(super) fn wait_timeout(tid: Tid, nr: i64, args: &[u64; 6]) -> Option<Duration> {
    let mem = RemoteMem::new(tid);
    let millis = |v: u64| u64::try_from(v as i32).ok().map(Duration::from_millis);
    match nr {
        libc::SYS_poll => millis(args[2]),
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => millis(args[3]),
        libc::SYS_ppoll => timespec(&mem, args[2]),
        libc::SYS_pselect6 => timespec(&mem, args[4]),
        libc::SYS_epoll_pwait2 => timespec(&mem, args[3]),
        libc::SYS_rt_sigtimedwait => timespec(&mem, args[2]),
        libc::SYS_semtimedop => timespec(&mem, args[3]),
        libc::SYS_select => timeval(&mem, args[4]),
        libc::SYS_mq_timedreceive => {
            let at = timespec(&mem, args[4])?;
            Some(until(ClockId::CLOCK_REALTIME, at))
        }
        libc::SYS_futex => {
            let op = args[1] & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
            match op {
                FUTEX_WAIT => timespec(&mem, args[3]),
                FUTEX_WAIT_BITSET => {
                    let at = timespec(&mem, args[3])?;
                    let clock = if args[1] & FUTEX_CLOCK_REALTIME != 0 {
                        ClockId::CLOCK_REALTIME
                    } else {
                        ClockId::CLOCK_MONOTONIC
                    };
                    Some(until(clock, at))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// A `struct timespec` at `addr` (None for NULL, an unreadable or an
/// invalid one).
fn timespec(mem: &RemoteMem, addr: u64) -> Option<Duration> {
    let (sec, frac) = pair(mem, addr)?;
    (frac < 1_000_000_000).then(|| Duration::new(sec, frac as u32))
}

/// A `struct timeval` at `addr`.
fn timeval(mem: &RemoteMem, addr: u64) -> Option<Duration> {
    let (sec, frac) = pair(mem, addr)?;
    (frac < 1_000_000).then(|| Duration::new(sec, frac as u32 * 1000))
}

/// Two non-negative 64-bit words at `addr`.
fn pair(mem: &RemoteMem, addr: u64) -> Option<(u64, u64)> {
    if addr == 0 {
        return None;
    }
    let mut buf = [0u8; 16];
    mem.read_exact(addr, &mut buf).ok()?;
    let word = |i: usize| i64::from_ne_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
    Some((u64::try_from(word(0)).ok()?, u64::try_from(word(8)).ok()?))
}

/// How long from now until `at` on `clock` (zero once it has passed, or
/// where the clock cannot be read).
fn until(clock: ClockId, at: Duration) -> Duration {
    match clock_gettime(clock) {
        Ok(now) => at.saturating_sub(Duration::from(now)),
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts read from this process's own memory, as from a tracee's.
    #[test]
    fn timeouts_of_each_kind_of_wait() {
        let me = std::process::id() as Tid;
        let ts = [2i64, 500_000_000];
        let tv = [1i64, 250_000];
        let bad = [1i64, 2_000_000_000];
        let addr = |v: &[i64; 2]| v.as_ptr() as u64;
        let args = |i: usize, v: u64| {
            let mut a = [0u64; 6];
            a[i] = v;
            a
        };
        assert_eq!(
            wait_timeout(me, libc::SYS_poll, &args(2, 5)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(wait_timeout(me, libc::SYS_poll, &args(2, u64::MAX)), None);
        assert_eq!(
            wait_timeout(me, libc::SYS_epoll_wait, &args(3, 7)),
            Some(Duration::from_millis(7))
        );
        assert_eq!(
            wait_timeout(me, libc::SYS_ppoll, &args(2, addr(&ts))),
            Some(Duration::new(2, 500_000_000))
        );
        assert_eq!(wait_timeout(me, libc::SYS_ppoll, &args(2, 0)), None);
        assert_eq!(
            wait_timeout(me, libc::SYS_ppoll, &args(2, addr(&bad))),
            None
        );
        assert_eq!(
            wait_timeout(me, libc::SYS_select, &args(4, addr(&tv))),
            Some(Duration::new(1, 250_000_000))
        );
        let mut futex = args(3, addr(&ts));
        futex[1] = FUTEX_WAIT | FUTEX_PRIVATE_FLAG;
        assert_eq!(
            wait_timeout(me, libc::SYS_futex, &futex),
            Some(Duration::new(2, 500_000_000))
        );
        // An absolute deadline long past: zero left.
        futex[1] = FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG;
        assert_eq!(
            wait_timeout(me, libc::SYS_futex, &futex),
            Some(Duration::ZERO)
        );
        // One 10 s from now on the monotonic clock.
        let now = Duration::from(clock_gettime(ClockId::CLOCK_MONOTONIC).expect("the clock"));
        let later = [now.as_secs() as i64 + 10, i64::from(now.subsec_nanos())];
        futex[3] = addr(&later);
        let left = wait_timeout(me, libc::SYS_futex, &futex).expect("a deadline");
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        // A wake has no timeout.
        futex[1] = 1;
        assert_eq!(wait_timeout(me, libc::SYS_futex, &futex), None);
        assert_eq!(wait_timeout(me, libc::SYS_read, &args(2, 5)), None);
    }
}
