//! 32-bit syscalls (`int $0x80`) made by a 64-bit program: how the recorder
//! and the replayer tell them apart from 64-bit ones and name them.
//!
//! The kernel serves `int $0x80` from a 64-bit process with the i386 table,
//! arguments in ebx, ecx, edx, esi, edi, ebp. Those numbers mean other calls
//! in the x86-64 table (4 is `write` for i386 and `stat` for x86-64), so a
//! 32-bit call is carried in the trace as [`COMPAT_32`] `|` its i386 number:
//! a number no row of [`crate::TABLE`] has. The recorder records its result
//! (a call the kernel answers with ENOSYS replays like any invalid number).
//! The calls of [`EQUIVALENTS`] take the same arguments in the same order as
//! an x86-64 call, and write the same memory (none, `read`'s buffer, `uname`'s):
//! they are described by that call's row ([`x86_64_equivalent`]). Any other
//! 32-bit call that does not fail with ENOSYS marks the trace unreplayable,
//! named: the memory it writes is not described (the i386 layouts differ).
//! This module must not describe outputs.

/// Marks a syscall number as an i386 one made through `int $0x80`.
pub const COMPAT_32: i64 = 1 << 32;

/// The bytes of `int $0x80`.
pub const INT80: [u8; 2] = [0xcd, 0x80];

/// The trace's number of the i386 syscall `eax` (the low 32 bits of
/// `orig_rax` at its entry).
pub fn compat_nr(orig_rax: u64) -> i64 {
    COMPAT_32 | i64::from(orig_rax as u32)
}

/// Whether `nr` is a 32-bit call's number made by [`compat_nr`].
pub fn is_compat(nr: i64) -> bool {
    nr & COMPAT_32 != 0 && nr >> 33 == 0
}

/// The arguments of an `int $0x80` call, from the registers the i386 ABI
/// passes them in (ebx, ecx, edx, esi, edi, ebp), zero-extended.
pub fn compat_args(regs: &rrtest_sys::ptrace::Regs) -> [u64; 6] {
    [regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp].map(|r| u64::from(r as u32))
}

/// i386 calls that mean what an x86-64 call means, with the same
/// arguments in the same registers' order and the same memory written
/// (32-bit pointers, which the kernel zero-extends as [`compat_args`]
/// does): (i386 number, x86-64 number). The 16-bit id calls return what
/// the kernel returns, recorded as any result. `uname` (122, the kernel's
/// `newuname`) fills the same `struct new_utsname` of characters only.
/// The recorder follows `write`, `close`, `dup` and `dup2` (the program's
/// output, the output table) by [`row_nr`], so these are followed too.
/// Not here: calls whose i386 structures differ (`time`, `olduname`,
/// `stat`, `writev`'s iovecs, the `timespec` ones), calls whose arguments
/// differ (`pwrite64`'s split offset), calls that change the address space
/// or start or end threads (`brk`, `mmap`, `exit` of one thread, `clone`),
/// and signal calls the recorder handles itself (`kill`, `rt_sigaction`,
/// ...).
const EQUIVALENTS: &[(u32, i64)] = &[
    (3, 0),     // read
    (4, 1),     // write
    (6, 3),     // close
    (41, 32),   // dup
    (63, 33),   // dup2
    (122, 63),  // uname (newuname)
    (20, 39),   // getpid
    (24, 102),  // getuid (16-bit ids)
    (47, 104),  // getgid
    (49, 107),  // geteuid
    (50, 108),  // getegid
    (60, 95),   // umask
    (64, 110),  // getppid
    (65, 111),  // getpgrp
    (132, 121), // getpgid
    (147, 124), // getsid
    (158, 24),  // sched_yield
    (199, 102), // getuid32
    (200, 104), // getgid32
    (201, 107), // geteuid32
    (202, 108), // getegid32
    (224, 186), // gettid
    (252, 231), // exit_group
];

/// The x86-64 syscall whose table row describes the 32-bit call `nr` (made
/// by [`compat_nr`]), if it is one of [`EQUIVALENTS`].
pub fn x86_64_equivalent(nr: i64) -> Option<i64> {
    if !is_compat(nr) {
        return None;
    }
    let n = nr as u32;
    EQUIVALENTS.iter().find(|&&(k, _)| k == n).map(|&(_, x)| x)
}

/// The number whose x86-64 meaning `nr` has: its [`x86_64_equivalent`] for
/// a 32-bit call that has one, else `nr` itself. Code that follows a call
/// by what it does (a write to the program's output, a `close` of an
/// output descriptor) matches on this, not on the trace's number.
pub fn row_nr(nr: i64) -> i64 {
    x86_64_equivalent(nr).unwrap_or(nr)
}

/// i386 names of the calls programs make through `int $0x80` most often
/// (hand-written startup code, old inline assembly); others are named by
/// number.
const I386_NAMES: &[(u32, &str)] = &[
    (1, "exit"),
    (3, "read"),
    (4, "write"),
    (5, "open"),
    (6, "close"),
    (13, "time"),
    (20, "getpid"),
    (24, "getuid"),
    (37, "kill"),
    (41, "dup"),
    (45, "brk"),
    (47, "getgid"),
    (49, "geteuid"),
    (50, "getegid"),
    (60, "umask"),
    (63, "dup2"),
    (64, "getppid"),
    (65, "getpgrp"),
    (90, "mmap"),
    (91, "munmap"),
    (122, "uname"),
    (125, "mprotect"),
    (132, "getpgid"),
    (147, "getsid"),
    (158, "sched_yield"),
    (174, "rt_sigaction"),
    (175, "rt_sigprocmask"),
    (192, "mmap2"),
    (199, "getuid32"),
    (200, "getgid32"),
    (201, "geteuid32"),
    (202, "getegid32"),
    (224, "gettid"),
    (243, "set_thread_area"),
    (252, "exit_group"),
];

/// The name of a 32-bit call made by [`compat_nr`], e.g.
/// `i386 getpid (int $0x80 #20)`.
pub fn compat_name(nr: i64) -> String {
    let n = nr as u32;
    match I386_NAMES.iter().find(|&&(k, _)| k == n) {
        Some((_, name)) => format!("i386 {name} (int $0x80 #{n})"),
        None => format!("i386 syscall (int $0x80 #{n})"),
    }
}
