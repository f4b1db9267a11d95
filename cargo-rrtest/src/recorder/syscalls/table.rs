//! The table itself (x86-64 numbers). Being completed in issue 3.

use super::{Call, MemReader, OutputsFn, Region, ReplayAction, SyscallDesc, Unsupported};

fn none(_: &Call, _: &dyn MemReader, _: &mut Vec<Region>) -> Result<(), Unsupported> {
    Ok(())
}

/// `buf` = arg 1, length = the result (read, pread64, getrandom, ...).
fn out_arg1_ret(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret > 0 {
        out.push(Region {
            addr: c.args[1],
            len: c.ret as usize,
        });
    }
    Ok(())
}

const fn d(
    nr: i64,
    name: &'static str,
    may_block: bool,
    replay: ReplayAction,
    outputs: OutputsFn,
) -> SyscallDesc {
    SyscallDesc {
        nr,
        name,
        may_block,
        replay,
        outputs,
    }
}

use ReplayAction::*;

/// Every syscall the recorder knows, sorted by number.
pub static TABLE: &[SyscallDesc] = &[
    d(0, "read", true, Emulate, out_arg1_ret),
    d(1, "write", true, Emulate, none),
    d(9, "mmap", false, Mmap, none),
    d(60, "exit", false, Exit, none),
    d(231, "exit_group", false, Exit, none),
];

/// Looks up syscall `nr`.
pub fn lookup(nr: i64) -> Option<&'static SyscallDesc> {
    TABLE
        .binary_search_by_key(&nr, |d| d.nr)
        .ok()
        .map(|i| &TABLE[i])
}
