//! Output functions of calls added to Linux since 5.10 that test suites of
//! system crates make: `move_pages`' status array, `process_madvise`'s
//! advice (only advice that leaves memory as it was is described) and
//! `statmount`'s variable-size answer. (`cachestat` and `listmount` are
//! plain layouts in the table; `futex_waitv` writes nothing.) Layouts from
//! the kernel's uapi headers (x86-64).

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
