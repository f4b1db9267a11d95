//! Socket calls whose outputs depend on structures in tracee memory:
//! returned addresses, `struct msghdr` / `struct mmsghdr`, socket options.

use super::layout::{self, mmsghdr, msghdr};
use super::outputs::{push, read_u32, read_u64, ret_len, scatter};
use super::{Call, MemReader, Region, Unsupported};

/// Largest option value we accept from getsockopt before calling it
/// implausible (the kernel's largest fixed options are a few hundred bytes;
/// `SO_PEERGROUPS` and friends grow with the data).
const MAX_OPTLEN: u32 = 1 << 20;

/// An address returned through `addr` / `*addrlen` (accept, getsockname,
/// recvfrom, recvmsg's msg_name): the kernel stores the address's real
/// length in `*addrlen` and copies `min(buffer length, real length)` bytes.
/// The buffer length was only in `*addrlen` before the call, so we record
/// `min(real length, sizeof(struct sockaddr_storage))` bytes: possibly more
/// than the kernel wrote when the caller's buffer was smaller than the
/// address, never less.
fn sockaddr(
    c: &Call,
    mem: &dyn MemReader,
    addr: u64,
    addrlen: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if addr == 0 || addrlen == 0 {
        return Ok(());
    }
    let real = read_u32(c, mem, addrlen, "the address length")?;
    push(out, addrlen, 4);
    push(out, addr, u64::from(real).min(layout::SOCKADDR_STORAGE));
    Ok(())
}

/// accept, accept4, getsockname, getpeername: `args[ADDR]`, `args[LEN]`.
pub(crate) fn sockaddr_out<const ADDR: usize, const LEN: usize>(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    sockaddr(c, mem, c.args[ADDR], c.args[LEN], out)
}

/// `recvfrom(fd, buf, len, flags, src_addr, addrlen)`.
pub(crate) fn recvfrom(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    push(out, c.args[1], ret_len(c).min(c.args[2]));
    sockaddr(c, mem, c.args[4], c.args[5], out)
}

/// What recvmsg wrote through the `struct msghdr` at `hdr`, having received
/// `received` bytes of data:
///
/// ```text
///  0 msg_name ----> address, min(new msg_namelen, 128) bytes
///  8 msg_namelen    written (the address's real length)
/// 16 msg_iov -----> data scattered over the iovecs, `received` bytes
/// 24 msg_iovlen
/// 32 msg_control -> ancillary data, new msg_controllen bytes
/// 40 msg_controllen written (bytes of ancillary data)
/// 48 msg_flags      written
/// ```
fn received_msghdr(
    c: &Call,
    mem: &dyn MemReader,
    hdr: u64,
    received: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    let name = read_u64(c, mem, hdr + msghdr::NAME, "msghdr.msg_name")?;
    let iov = read_u64(c, mem, hdr + msghdr::IOV, "msghdr.msg_iov")?;
    let iovlen = read_u64(c, mem, hdr + msghdr::IOVLEN, "msghdr.msg_iovlen")?;
    let control = read_u64(c, mem, hdr + msghdr::CONTROL, "msghdr.msg_control")?;
    let controllen = read_u64(c, mem, hdr + msghdr::CONTROLLEN, "msghdr.msg_controllen")?;
    if name != 0 {
        let namelen = read_u32(c, mem, hdr + msghdr::NAMELEN, "msghdr.msg_namelen")?;
        push(out, hdr + msghdr::NAMELEN, 4);
        push(out, name, u64::from(namelen).min(layout::SOCKADDR_STORAGE));
    }
    scatter(c, mem, iov, iovlen, received, out)?;
    if control != 0 {
        push(out, control, controllen);
    }
    push(out, hdr + msghdr::CONTROLLEN, 8);
    push(out, hdr + msghdr::FLAGS, 4);
    Ok(())
}

/// `recvmsg(fd, msg, flags)`.
pub(crate) fn recvmsg(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    received_msghdr(c, mem, c.args[1], ret_len(c), out)
}

/// What one ABI's `struct mmsghdr` array holds: each element is a
/// `msghdr` of that ABI followed by its 32-bit `msg_len`, `size` bytes in
/// all; `received` describes what a receive stored through one `msghdr`
/// (`msg_len` bytes of data). [`MMSGHDR`] is the x86-64 one; the 32-bit
/// `compat_mmsghdr` is `compat_rows`'.
pub(crate) struct MmsgAbi {
    pub(crate) size: u64,
    pub(crate) len_at: u64,
    pub(crate) received: MsghdrReceived,
}

/// What a receive stored through the `msghdr` at `hdr` with `len` bytes of
/// data.
pub(crate) type MsghdrReceived =
    fn(&Call, &dyn MemReader, u64, u64, &mut Vec<Region>) -> Result<(), Unsupported>;

/// The x86-64 `struct mmsghdr`.
const MMSGHDR: MmsgAbi = MmsgAbi {
    size: mmsghdr::SIZE,
    len_at: mmsghdr::LEN,
    received: received_msghdr,
};

/// Checks the count of `mmsghdr`s the kernel says it handled (`ret`)
/// against the vector's `vlen` and the kernel's limit.
fn msg_count(c: &Call, vlen: u64) -> Result<u64, Unsupported> {
    let n = ret_len(c);
    if n > layout::UIO_MAXIOV || n > vlen {
        return Err(Unsupported(format!(
            "{}: returned {n} messages for a vector of {}",
            super::name(c.nr),
            c.args[2]
        )));
    }
    Ok(n)
}

/// `recvmmsg(fd, msgvec, vlen, flags, timeout)` of `abi`'s `mmsghdr`s
/// (`vlen` as the kernel took it): for each of the `ret` messages, what
/// recvmsg stores (with `msg_len` bytes of data) and `msg_len` itself; the
/// time left, `timespec` bytes at `timeout`, when at least one message
/// came. Nothing when none came or it failed.
pub(crate) fn received_mmsgs(
    c: &Call,
    mem: &dyn MemReader,
    abi: &MmsgAbi,
    vlen: u64,
    timespec: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret <= 0 {
        return Ok(());
    }
    for i in 0..msg_count(c, vlen)? {
        let m = c.args[1] + i * abi.size;
        let len = read_u32(c, mem, m + abi.len_at, "mmsghdr.msg_len")?;
        (abi.received)(c, mem, m, u64::from(len), out)?;
        push(out, m + abi.len_at, 4);
    }
    push(out, c.args[4], timespec);
    Ok(())
}

/// `sendmmsg(fd, msgvec, vlen, flags)` of `abi`'s `mmsghdr`s (`vlen` as
/// the kernel took it): the kernel stores `msg_len` of each message it
/// sent.
pub(crate) fn sent_mmsgs(
    c: &Call,
    abi: &MmsgAbi,
    vlen: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    for i in 0..msg_count(c, vlen)? {
        push(out, c.args[1] + i * abi.size + abi.len_at, 4);
    }
    Ok(())
}

/// `recvmmsg(fd, msgvec, vlen, flags, timeout)`.
pub(crate) fn recvmmsg(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    received_mmsgs(c, mem, &MMSGHDR, c.args[2], layout::TIMESPEC, out)
}

/// `sendmmsg(fd, msgvec, vlen, flags)`.
pub(crate) fn sendmmsg(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    sent_mmsgs(c, &MMSGHDR, c.args[2], out)
}

/// `getsockopt(fd, level, name, optval, optlen)`: the kernel stores the
/// value's length in `*optlen` and that many bytes in `optval`. When the
/// buffer is too small for `SO_PEERSEC`/`SO_PEERGROUPS` it stores the length
/// needed and fails with `ERANGE`.
pub(crate) fn getsockopt(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret == -i64::from(libc::ERANGE) {
        push(out, c.args[4], 4);
        return Ok(());
    }
    if c.ret < 0 || c.args[4] == 0 {
        return Ok(());
    }
    let len = read_u32(c, mem, c.args[4], "the option length")?;
    if len > MAX_OPTLEN {
        return Err(Unsupported(format!(
            "getsockopt(level {}, option {}): implausible option length {len}",
            c.args[1], c.args[2]
        )));
    }
    push(out, c.args[4], 4);
    push(out, c.args[3], u64::from(len));
    Ok(())
}
