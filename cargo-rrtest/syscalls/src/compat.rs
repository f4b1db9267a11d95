//! 32-bit syscalls (`int $0x80`) made by a 64-bit program: how the recorder
//! and the replayer tell them apart from 64-bit ones and name them.
//!
//! The kernel serves `int $0x80` from a 64-bit process with the i386 table,
//! arguments in ebx, ecx, edx, esi, edi, ebp. Those numbers mean other calls
//! in the x86-64 table (4 is `write` for i386 and `stat` for x86-64), so a
//! 32-bit call is carried in the trace as [`COMPAT_32`] `|` its i386 number:
//! a number no row of [`crate::TABLE`] has. The recorder records its result
//! (a call the kernel answers with ENOSYS replays like any invalid number)
//! and marks the trace unreplayable for any other result, naming the call:
//! the memory a 32-bit call writes is not described here. This module must
//! not describe outputs.

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
    (37, "kill"),
    (45, "brk"),
    (90, "mmap"),
    (91, "munmap"),
    (122, "uname"),
    (125, "mprotect"),
    (174, "rt_sigaction"),
    (175, "rt_sigprocmask"),
    (192, "mmap2"),
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
