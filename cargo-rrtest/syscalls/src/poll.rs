//! Readiness waits whose outputs are sized by their arguments: poll, ppoll,
//! select, pselect6. (epoll_wait's events are `ret` fixed-size records and
//! use [`ret_elems`](super::outputs::ret_elems).)

use super::layout;
use super::outputs::{interrupted, push};
use super::{Call, MemReader, Region, Unsupported};

/// Whether poll copied the `revents` back: on success, and when a signal
/// interrupted the wait.
fn copied_back(ret: i64) -> bool {
    ret >= 0 || interrupted(ret)
}

/// Whether ppoll/select/pselect6 stored the remaining time: the kernel does
/// it on the way out whatever the result (`EBADF`, `EINVAL` for too many
/// descriptors, interruption), unless the timeout itself faulted; for a
/// malformed timeout it stores nothing, but the bytes were readable, so
/// recording them is harmless.
fn timeout_stored(ret: i64) -> bool {
    ret != -i64::from(libc::EFAULT)
}

/// `poll(fds, nfds, timeout)`: the kernel stores `revents` in each of the
/// `nfds` entries (we record the whole array).
pub(crate) fn poll(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if copied_back(c.ret) {
        push(out, c.args[0], c.args[1].saturating_mul(layout::POLLFD));
    }
    Ok(())
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`: as poll, plus the
/// remaining time.
pub(crate) fn ppoll(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    poll(c, mem, out)?;
    if timeout_stored(c.ret) {
        push(out, c.args[2], layout::TIMESPEC);
    }
    Ok(())
}

/// Bytes of one fd_set the kernel copies for `nfds` descriptors: whole
/// `long`s (`FDS_BYTES`). The kernel first clamps `nfds` to the size of the
/// fd table, so this may be more than it wrote, never less.
pub(crate) fn fd_set_bytes(nfds: u64) -> u64 {
    nfds.div_ceil(64).saturating_mul(8)
}

/// `select(nfds, readfds, writefds, exceptfds, timeout)` and
/// `pselect6(nfds, readfds, writefds, exceptfds, timeout, sigmask)`: the
/// three sets on success (zeroed on timeout), the remaining time (a
/// `timeval` or a `timespec`, both 16 bytes) on success and on most
/// failures (see [`timeout_stored`]).
pub(crate) fn select(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    // The kernel rejects a negative nfds (it is an int).
    let nfds = u64::from(c.args[0] as u32);
    if c.ret >= 0 {
        let bytes = fd_set_bytes(nfds);
        for &set in &c.args[1..4] {
            push(out, set, bytes);
        }
    }
    if timeout_stored(c.ret) {
        push(out, c.args[4], layout::TIMESPEC);
    }
    Ok(())
}
