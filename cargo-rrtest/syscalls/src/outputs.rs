//! Output functions shared by many table entries, and the helpers the
//! structured ones build on.
//!
//! Every function here is correct for any result, not only for success: it
//! records nothing for a failed call unless the kernel writes memory on that
//! failure too (see [`super::writes_on_failure`]). The recorder may therefore
//! call them unconditionally.
//!
//! The argument-indexed functions take the indices as const generics so one
//! body serves every syscall with the same shape, and still coerces to the
//! plain [`OutputsFn`](super::OutputsFn) pointer the table stores.

use super::layout;
use super::{Call, MemReader, Region, Unsupported};

/// `-EINTR`, and the in-kernel restart codes a tracer can see at a syscall's
/// exit stop when a signal interrupted it (`ERESTARTSYS` .. `ERESTART_RESTARTBLOCK`).
pub(crate) fn interrupted(ret: i64) -> bool {
    ret == -i64::from(libc::EINTR) || (-516..=-512).contains(&ret)
}

/// Appends a region unless its address is null or its length zero.
pub(crate) fn push(out: &mut Vec<Region>, addr: u64, len: u64) {
    if addr != 0 && len != 0 {
        out.push(Region {
            addr,
            len: len as usize,
        });
    }
}

/// Reads a u32 from the tracee, naming what it was on failure.
pub(crate) fn read_u32(
    c: &Call,
    mem: &dyn MemReader,
    addr: u64,
    what: &str,
) -> Result<u32, Unsupported> {
    mem.read_u32(addr)
        .map_err(|e| unreadable(c, addr, what, &e))
}

/// Reads a u64 from the tracee, naming what it was on failure.
pub(crate) fn read_u64(
    c: &Call,
    mem: &dyn MemReader,
    addr: u64,
    what: &str,
) -> Result<u64, Unsupported> {
    mem.read_u64(addr)
        .map_err(|e| unreadable(c, addr, what, &e))
}

fn unreadable(c: &Call, addr: u64, what: &str, e: &std::io::Error) -> Unsupported {
    Unsupported(format!(
        "{}: cannot read {what} at {addr:#x} after the call: {e}",
        super::name(c.nr)
    ))
}

/// The result as a byte count (0 for failures).
pub(crate) fn ret_len(c: &Call) -> u64 {
    u64::try_from(c.ret).unwrap_or(0)
}

/// Writes nothing.
pub(crate) fn none(_: &Call, _: &dyn MemReader, _: &mut Vec<Region>) -> Result<(), Unsupported> {
    Ok(())
}

/// Not supported: once it succeeds the trace becomes unreplayable, named
/// after the call. A failed call changed nothing, so replay can return the
/// same error (programs probe `ptrace(PTRACE_TRACEME)`, `perf_event_open`...).
pub(crate) fn unsupported(
    c: &Call,
    _: &dyn MemReader,
    _: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    Err(Unsupported(format!(
        "{} is not supported",
        super::name(c.nr)
    )))
}

/// `io_uring_*`: the kernel reads and writes the rings behind our back. A
/// failed probe (libuv and others try `io_uring_setup` and fall back) is
/// harmless, as for [`unsupported`].
pub(crate) fn io_uring(
    c: &Call,
    _: &dyn MemReader,
    _: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    Err(Unsupported("io_uring is not supported".into()))
}

/// `args[BUF]` holds `min(ret, args[LEN])` bytes: read, pread64, recvfrom's
/// data, getdents64, readlink, getrandom, getcwd, sched_getaffinity, ...
///
/// The bound by `args[LEN]` matters for `recv(MSG_TRUNC)` on datagram
/// sockets, whose result is the datagram's full length.
pub(crate) fn ret_bytes<const BUF: usize, const LEN: usize>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    push(out, c.args[BUF], ret_len(c).min(c.args[LEN]));
    Ok(())
}

/// Like [`ret_bytes`], but nothing is written when `args[LEN]` is 0 (the call
/// only reports the size it needs): getxattr, listxattr.
pub(crate) fn ret_bytes_sized<const BUF: usize, const LEN: usize>(
    c: &Call,
    m: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.args[LEN] == 0 {
        return Ok(());
    }
    ret_bytes::<BUF, LEN>(c, m, out)
}

/// On success, `LEN` bytes at `args[ARG]` when that pointer is not null.
pub(crate) fn fixed<const ARG: usize, const LEN: u64>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[ARG], LEN);
    }
    Ok(())
}

/// On success, `LEN1` bytes at `args[A1]` and `LEN2` at `args[A2]`, each when
/// not null: gettimeofday, getcpu, get_robust_list, splice, copy_file_range.
pub(crate) fn fixed2<const A1: usize, const LEN1: u64, const A2: usize, const LEN2: u64>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[A1], LEN1);
        push(out, c.args[A2], LEN2);
    }
    Ok(())
}

/// On success, `args[ARG]` holds `args[LEN]` bytes: rt_sigprocmask's old set,
/// rt_sigpending, sched_getattr (the kernel rejects sizes over a page).
pub(crate) fn sized_by_arg<const ARG: usize, const LEN: usize>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[ARG], c.args[LEN]);
    }
    Ok(())
}

/// On success, `ret` elements of `SIZE` bytes at `args[ARG]`: epoll_wait
/// (12-byte events), getgroups (4-byte gids, see [`getgroups`]).
pub(crate) fn ret_elems<const ARG: usize, const SIZE: u64>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    push(out, c.args[ARG], ret_len(c).saturating_mul(SIZE));
    Ok(())
}

/// Records the bytes the kernel scattered into the iovec array at `iov`
/// (`cnt` entries), `total` bytes in all, in order: 16-byte `struct
/// iovec`s, or a 32-bit call's 8-byte `compat_iovec`s ([`crate::read_iovec`]).
pub(crate) fn scatter(
    c: &Call,
    mem: &dyn MemReader,
    iov: u64,
    cnt: u64,
    total: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if cnt > layout::UIO_MAXIOV {
        return Err(Unsupported(format!(
            "{}: {cnt} iovecs (the kernel allows {})",
            super::name(c.nr),
            layout::UIO_MAXIOV
        )));
    }
    let mut left = total;
    for i in 0..cnt {
        if left == 0 {
            break;
        }
        let (base, len) = crate::read_iovec(mem, c.nr, iov, i).map_err(|e| {
            let (what, size) = if crate::is_compat(c.nr) {
                ("struct compat_iovec", 8)
            } else {
                ("struct iovec", layout::IOVEC)
            };
            unreadable(c, iov + i * size, what, &e)
        })?;
        let n = len.min(left);
        push(out, base, n);
        left -= n;
    }
    Ok(())
}

/// readv, preadv, preadv2, vmsplice (and their 32-bit forms, of
/// `compat_iovec`s: [`scatter`]): the iovec array at `args[IOV]` with
/// `args[CNT]` entries holds `ret` bytes.
pub(crate) fn iov_ret<const IOV: usize, const CNT: usize>(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    scatter(c, mem, c.args[IOV], c.args[CNT], ret_len(c), out)
}

/// `getgroups(size, list)`: `size == 0` only counts the groups.
pub(crate) fn getgroups(
    c: &Call,
    m: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.args[0] == 0 {
        return Ok(());
    }
    ret_elems::<1, 4>(c, m, out)
}

/// Three u32 out pointers in `args[0..3]`: getresuid, getresgid.
pub(crate) fn three_u32(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        for &p in &c.args[..3] {
            push(out, p, 4);
        }
    }
    Ok(())
}

/// `mincore(addr, length, vec)`: one byte per page of the range.
pub(crate) fn mincore(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[2], c.args[1].div_ceil(layout::PAGE));
    }
    Ok(())
}

/// `sched_setattr(pid, attr, flags)`: writes nothing, except that a
/// structure larger than the kernel knows (`E2BIG`) gets the kernel's size
/// stored in its leading `size` field.
pub(crate) fn sched_setattr(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret == -i64::from(libc::E2BIG) {
        push(out, c.args[1], 4);
    }
    Ok(())
}
