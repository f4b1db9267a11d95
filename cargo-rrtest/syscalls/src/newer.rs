//! Output functions of calls added to Linux since 5.10 that test suites of
//! system crates make: `move_pages`' status array, `process_madvise`'s
//! advice (only advice that leaves memory as it was is described) and
//! `statmount`'s variable-size answer. (`cachestat` and `listmount` are
//! plain layouts in the table; `futex_waitv` writes nothing.) And, older
//! but missed until now, `name_to_handle_at`'s `struct file_handle` and
//! mount id. Layouts from the kernel's uapi headers (x86-64).

use super::outputs::{push, read_u32};
use super::{Call, MemReader, Region, Unsupported};

/// `sizeof(struct cachestat)`: five u64 counters.
pub(crate) const CACHESTAT: u64 = 40;

/// `move_pages(pid, count, pages, nodes, status, flags)`: one `int` per page
/// in `status` (the node it is on, or a negative errno for it). Moving a
/// page does not change what it holds, so replay needs no more.
pub(crate) fn move_pages(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[4], c.args[1].saturating_mul(4));
    }
    Ok(())
}

/// `MADV_WILLNEED`, `MADV_COLD`, `MADV_PAGEOUT`, `MADV_COLLAPSE`: advice
/// that moves pages between memory and swap or the page cache, or merges
/// them, and leaves what the process reads unchanged.
const KEEPS_CONTENTS: &[u64] = &[3, 20, 21, 25];

/// `process_madvise(pidfd, iovec, vlen, advice, flags)`: writes no tracee
/// memory. Advice that changes what memory holds (a kernel that lets a
/// process give itself `MADV_DONTNEED` or `MADV_FREE` this way) would need
/// replay to redo it on a process it only knows by a descriptor the
/// recording emulated: unsupported, by name. A call that advised nothing
/// (it returns the bytes advised: 0 for an empty iovec array) changed
/// nothing, whatever its advice.
pub(crate) fn process_madvise(
    c: &Call,
    _: &dyn MemReader,
    _: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret > 0 && !KEEPS_CONTENTS.contains(&c.args[3]) {
        return Err(Unsupported(format!(
            "process_madvise with advice {}: it may change memory, which replay does not redo",
            c.args[3]
        )));
    }
    Ok(())
}

/// `statmount(req, buf, bufsize, flags)`: a `struct statmount` and its
/// strings, `buf->size` bytes in all (at most `bufsize`).
pub(crate) fn statmount(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 && c.args[1] != 0 {
        let size = read_u32(c, mem, c.args[1], "struct statmount's size")?;
        push(out, c.args[1], u64::from(size).min(c.args[2]));
    }
    Ok(())
}

/// `sizeof(struct file_handle)` before its `f_handle` bytes: the u32
/// `handle_bytes` and the int `handle_type`.
const FILE_HANDLE_HEADER: u64 = 8;

/// `MAX_HANDLE_SZ`: the kernel refuses a larger `handle_bytes` (`EINVAL`).
const MAX_HANDLE_SZ: u64 = 128;

/// `AT_HANDLE_MNT_ID_UNIQUE`: the mount id stored is the 64-bit unique one.
const AT_HANDLE_MNT_ID_UNIQUE: u64 = 0x001;

/// `name_to_handle_at(dirfd, path, handle, mount_id, flags)`: on success
/// the `struct file_handle` header and its `handle_bytes` bytes of handle;
/// on `EOVERFLOW` (the buffer too small, or a size query with
/// `handle_bytes` 0) the header alone, holding the size needed. In both
/// cases the mount id: an int, or a u64 with `AT_HANDLE_MNT_ID_UNIQUE`.
pub(crate) fn name_to_handle_at(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    let overflow = c.ret == -i64::from(libc::EOVERFLOW);
    if c.ret != 0 && !overflow {
        return Ok(());
    }
    let handle = if overflow {
        0
    } else {
        let n = read_u32(c, mem, c.args[2], "struct file_handle's handle_bytes")?;
        u64::from(n).min(MAX_HANDLE_SZ)
    };
    push(out, c.args[2], FILE_HANDLE_HEADER + handle);
    let id = if c.args[4] & AT_HANDLE_MNT_ID_UNIQUE != 0 {
        8
    } else {
        4
    };
    push(out, c.args[3], id);
    Ok(())
}
