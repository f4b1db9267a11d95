//! Rows of their own for 32-bit calls (`int $0x80`) that mean no x86-64
//! call with the same memory written, but whose i386 layouts are simple:
//! the 32-bit time calls (a 4-byte `time_t`, the 8-byte `old_timespec32`
//! and `old_timeval32` of two 32-bit fields), the seeks, the 32-bit
//! resource limits and usage, and `mmap2`, replayed like
//! `mmap` through [`crate::x86_64_call`]. Looked up by their trace
//! numbers (`COMPAT_32 | i386 number`, [`crate::compat_nr`]), named by
//! [`crate::name`] as the other 32-bit calls.
//!
//! The entry points (the kernel's i386 table): `time` is `sys_time32`, it
//! returns the seconds and stores them as a 32-bit value at its pointer
//! when that is not null; `gettimeofday` is `compat_sys_gettimeofday`, an
//! `old_timeval32` at its first pointer and the `struct timezone` (two
//! ints, as on x86-64) at its second, each when not null; `clock_gettime`
//! and `clock_getres` are `sys_clock_gettime32` and
//! `sys_clock_getres_time32`, an `old_timespec32` at their second
//! argument (for `clock_getres`, when not null); `mmap2` is
//! `sys_mmap_pgoff`, writing no memory; `lseek` is `compat_sys_lseek`
//! (its offset a signed 32-bit value), writing none; `_llseek` is
//! `sys_llseek`, the offset split in two registers and the new position
//! stored as a 64-bit `loff_t` at its fourth argument; `getrlimit` and
//! `ugetrlimit` are `compat_sys_old_getrlimit` and `compat_sys_getrlimit`,
//! a `compat_rlimit` of two 32-bit values (infinite limits clamped) at
//! their second argument; `getrusage` is `compat_sys_getrusage`, a
//! `compat_rusage` (two `old_timeval32`s, fourteen 32-bit counters) at its
//! second argument.

use super::layout::TIMEZONE;
use super::outputs::{fixed, fixed2, none};
use super::{ReplayAction, SyscallDesc, COMPAT_32};

/// An i386 `old_time32_t`.
pub const OLD_TIME32: u64 = 4;
/// An i386 `struct old_timespec32` (`tv_sec`, `tv_nsec`: 32 bits each).
pub const OLD_TIMESPEC32: u64 = 8;
/// An i386 `struct old_timeval32` (`tv_sec`, `tv_usec`: 32 bits each).
pub const OLD_TIMEVAL32: u64 = 8;
/// An i386 `struct compat_rlimit` (`rlim_cur`, `rlim_max`: 32 bits each).
pub const COMPAT_RLIMIT: u64 = 8;
/// An i386 `struct compat_rusage`: two `old_timeval32`s and fourteen
/// 32-bit counters.
pub const COMPAT_RUSAGE: u64 = 2 * OLD_TIMEVAL32 + 14 * 4;
/// The `loff_t` `_llseek` stores the new position in.
pub const LOFF_T: u64 = 8;

const fn d(
    i386: i64,
    name: &'static str,
    replay: ReplayAction,
    outputs: super::OutputsFn,
) -> SyscallDesc {
    SyscallDesc {
        nr: COMPAT_32 | i386,
        name,
        may_block: false,
        replay,
        outputs,
    }
}

/// The rows, sorted by number.
pub static COMPAT_ROWS: &[SyscallDesc] = &[
    d(13, "time", ReplayAction::Emulate, fixed::<0, OLD_TIME32>),
    d(19, "lseek", ReplayAction::Emulate, none),
    d(
        76,
        "getrlimit",
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RLIMIT>,
    ),
    d(
        77,
        "getrusage",
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RUSAGE>,
    ),
    d(
        78,
        "gettimeofday",
        ReplayAction::Emulate,
        fixed2::<0, OLD_TIMEVAL32, 1, TIMEZONE>,
    ),
    d(140, "_llseek", ReplayAction::Emulate, fixed::<3, LOFF_T>),
    d(
        191,
        "ugetrlimit",
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RLIMIT>,
    ),
    d(192, "mmap2", ReplayAction::Mmap, none),
    d(
        265,
        "clock_gettime",
        ReplayAction::Emulate,
        fixed::<1, OLD_TIMESPEC32>,
    ),
    d(
        266,
        "clock_getres",
        ReplayAction::Emulate,
        fixed::<1, OLD_TIMESPEC32>,
    ),
];

/// The row of the 32-bit call `nr` (a trace number), if it has one here.
pub fn lookup(nr: i64) -> Option<&'static SyscallDesc> {
    COMPAT_ROWS
        .binary_search_by_key(&nr, |d| d.nr)
        .ok()
        .map(|i| &COMPAT_ROWS[i])
}
