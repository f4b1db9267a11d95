//! The one syscall gate and the hook entry, in assembly.
//!
//! `rrtest_syscall_gate(entry, nr, a0..a5)` moves its SysV arguments into the
//! syscall registers and tail-jumps to a `syscall; ret` entry point of the
//! fixed page, whose `ret` returns straight to the gate's caller. The
//! untraced entry's ip is the one address the seccomp filter lets through.
//!
//! `rrtest_hook_entry` is what every stub calls, on the alt stack, with the
//! registers of the intercepted `syscall` (rax = nr, rdi, rsi, rdx, r10, r8,
//! r9). Frame on the alt stack:
//!
//! ```text
//!  alt_stack_top
//!   -0x08  user rflags            (pushfq in the stub)
//!   -0x10  return address = bail  (call in the stub)
//!   -0x150 .. -0x10: xmm0..xmm15 (0x100 bytes) above SyscallRequest (0x40)
//! ```
//!
//! It calls the Rust hook with a pointer to the [`SyscallRequest`], restores
//! every register the hook may clobber (xmm0-15 included: a raw `syscall`
//! site assumes they survive; rcx and r11 are clobbered, as by `syscall`),
//! then either returns to the stub's bail label with rax = nr, or restores
//! rflags and rsp itself and jumps to the resume label
//! (`bail + stub::BAIL_TO_RESUME`) with rax = the result, rcx = that label
//! and r11 = the flags at the call (as `syscall` sets them: nothing of the
//! hook's own computation, which may differ in replay, reaches the program).
//!
//! An rdtsc site's stub calls the same entry; the entry knows it by the
//! `rdtsc` at `bail + stub::BAIL_TO_TRAP` (a syscall site's stub has its
//! `syscall` there). Then it calls `rdtsc_hook_impl` (`crate::buffer::synthetic_tsc`)
//! instead, restores every register but rax and rdx (rcx and r11 too:
//! `rdtsc` keeps them), and either returns to the bail label (whose `rdtsc`
//! traps and is emulated) or, with `edx:eax` = the synthesized TSC and the
//! upper halves zero, to the stub's done label
//! (`bail + stub::RDTSC_BAIL_TO_DONE`), which restores rflags and rsp.
//!
//! [`SyscallRequest`]: crate::SyscallRequest

use rrtest_abi::{entry, FIXED_PAGE_ADDR};

core::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl rrtest_syscall_gate",
    ".hidden rrtest_syscall_gate",
    ".type rrtest_syscall_gate, @function",
    "rrtest_syscall_gate:",
    ".cfi_startproc",
    "mov rax, rsi",
    "mov r11, rdi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov r10, r9",
    "mov r8, [rsp + 8]",
    "mov r9, [rsp + 16]",
    "jmp r11",
    ".cfi_endproc",
    ".size rrtest_syscall_gate, . - rrtest_syscall_gate",
    "",
    // xmm0-15 to and from the frame (0x40 + 16 * n): a raw `syscall`
    // site, and any `rdtsc` site, assumes they survive the hook.
    ".macro rrtest_save_xmm",
    "movups [rsp + 0x40], xmm0",
    "movups [rsp + 0x50], xmm1",
    "movups [rsp + 0x60], xmm2",
    "movups [rsp + 0x70], xmm3",
    "movups [rsp + 0x80], xmm4",
    "movups [rsp + 0x90], xmm5",
    "movups [rsp + 0xa0], xmm6",
    "movups [rsp + 0xb0], xmm7",
    "movups [rsp + 0xc0], xmm8",
    "movups [rsp + 0xd0], xmm9",
    "movups [rsp + 0xe0], xmm10",
    "movups [rsp + 0xf0], xmm11",
    "movups [rsp + 0x100], xmm12",
    "movups [rsp + 0x110], xmm13",
    "movups [rsp + 0x120], xmm14",
    "movups [rsp + 0x130], xmm15",
    ".endm",
    ".macro rrtest_restore_xmm",
    "movups xmm0, [rsp + 0x40]",
    "movups xmm1, [rsp + 0x50]",
    "movups xmm2, [rsp + 0x60]",
    "movups xmm3, [rsp + 0x70]",
    "movups xmm4, [rsp + 0x80]",
    "movups xmm5, [rsp + 0x90]",
    "movups xmm6, [rsp + 0xa0]",
    "movups xmm7, [rsp + 0xb0]",
    "movups xmm8, [rsp + 0xc0]",
    "movups xmm9, [rsp + 0xd0]",
    "movups xmm10, [rsp + 0xe0]",
    "movups xmm11, [rsp + 0xf0]",
    "movups xmm12, [rsp + 0x100]",
    "movups xmm13, [rsp + 0x110]",
    "movups xmm14, [rsp + 0x120]",
    "movups xmm15, [rsp + 0x130]",
    ".endm",
    ".p2align 4",
    ".globl rrtest_hook_entry",
    ".hidden rrtest_hook_entry",
    ".type rrtest_hook_entry, @function",
    "rrtest_hook_entry:",
    ".cfi_startproc",
    // The caller's frame: the return address (bail) at CFA-8, the saved
    // flags at CFA. There is no meaningful caller to unwind to beyond the
    // stub; the recorder never lets a handler run while an ip is here.
    "sub rsp, 0x140",
    ".cfi_def_cfa_offset 0x148",
    "mov [rsp + 0x00], rax",
    // An rdtsc site's stub has `rdtsc` where a syscall site's has its
    // traced `syscall`, at the same offset from the bail label.
    "mov rax, [rsp + 0x140]",
    "cmp word ptr [rax + {bail_to_trap}], {rdtsc}",
    "je 3f",
    "mov [rsp + 0x08], rdi",
    "mov [rsp + 0x10], rsi",
    "mov [rsp + 0x18], rdx",
    "mov [rsp + 0x20], r10",
    "mov [rsp + 0x28], r8",
    "mov [rsp + 0x30], r9",
    "mov qword ptr [rsp + 0x38], 0",
    "rrtest_save_xmm",
    // alt_stack_top is 16-aligned; pushfq + call + 0x140 leave rsp 16-aligned.
    "mov rdi, rsp",
    "call {hook}",
    "mov ecx, eax",
    "rrtest_restore_xmm",
    "mov rdi, [rsp + 0x08]",
    "mov rsi, [rsp + 0x10]",
    "mov rdx, [rsp + 0x18]",
    "mov r10, [rsp + 0x20]",
    "mov r8, [rsp + 0x28]",
    "mov r9, [rsp + 0x30]",
    "mov rax, [rsp + 0x00]",
    "test ecx, ecx",
    "jnz 2f",
    ".cfi_remember_state",
    "mov rax, [rsp + 0x38]",
    "add rsp, 0x140",
    ".cfi_def_cfa_offset 8",
    "pop rcx",
    ".cfi_def_cfa_offset 0",
    ".cfi_register rip, rcx",
    "add rcx, {bail_to_resume}",
    // r11 as `syscall` leaves it: the flags at the call. Not whatever the
    // hook left there (a pointer into the buffer: where the record went,
    // which replay, resetting the buffer at each resume, does not repeat;
    // an execution point in a loop after the syscall shows r11).
    "mov r11, [rsp]",
    "popfq",
    "mov rsp, [{saved_rsp}]",
    ".cfi_undefined rip",
    "jmp rcx",
    "2:",
    ".cfi_restore_state",
    "add rsp, 0x140",
    ".cfi_def_cfa_offset 8",
    "ret",
    // An rdtsc site: every register but rax and rdx survives, as with
    // `rdtsc` (rcx and r11 included); the frame's first slot receives the
    // synthesized TSC.
    "3:",
    ".cfi_def_cfa_offset 0x148",
    "mov [rsp + 0x08], rdi",
    "mov [rsp + 0x10], rsi",
    "mov [rsp + 0x18], rcx",
    "mov [rsp + 0x20], r10",
    "mov [rsp + 0x28], r8",
    "mov [rsp + 0x30], r9",
    "mov [rsp + 0x38], r11",
    "rrtest_save_xmm",
    "mov qword ptr [rsp + 0x00], 0",
    "mov rdi, rsp",
    "call {rdtsc_hook}",
    "rrtest_restore_xmm",
    "mov rdi, [rsp + 0x08]",
    "mov rsi, [rsp + 0x10]",
    "mov rcx, [rsp + 0x18]",
    "mov r10, [rsp + 0x20]",
    "mov r8, [rsp + 0x28]",
    "mov r9, [rsp + 0x30]",
    "mov r11, [rsp + 0x38]",
    "test eax, eax",
    "mov rax, [rsp + 0x00]",
    "lea rsp, [rsp + 0x140]",
    ".cfi_def_cfa_offset 8",
    // Bail: back to the bail label, whose `rdtsc` traps.
    "jnz 4f",
    "mov rdx, rax",
    "shr rdx, 32",
    "mov eax, eax",
    // To the done label; the flags this clobbers are the stub's to restore.
    "add qword ptr [rsp], {bail_to_done}",
    "4:",
    "ret",
    ".cfi_endproc",
    ".size rrtest_hook_entry, . - rrtest_hook_entry",
    hook = sym crate::hook_impl,
    rdtsc_hook = sym crate::rdtsc_hook_impl,
    bail_to_resume = const rrtest_abi::stub::BAIL_TO_RESUME,
    bail_to_trap = const rrtest_abi::stub::BAIL_TO_TRAP,
    bail_to_done = const rrtest_abi::stub::RDTSC_BAIL_TO_DONE,
    rdtsc = const u16::from_le_bytes(rrtest_abi::stub::RDTSC),
    saved_rsp = const rrtest_abi::THREAD_LOCALS_ADDR + rrtest_abi::locals::SAVED_RSP,
);

extern "C" {
    fn rrtest_syscall_gate(
        entry: u64,
        nr: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
    ) -> i64;
    fn rrtest_hook_entry();
}

/// Address of the hook entry, for the handshake.
pub fn hook_entry_addr() -> u64 {
    rrtest_hook_entry as *const () as u64
}

/// A syscall the recorder sees (it stops in the recorder).
pub fn traced_syscall(nr: u64, a: [u64; 6]) -> i64 {
    // SAFETY: the gate only moves registers and executes the fixed page's
    // `syscall; ret`; what the syscall does is the caller's business.
    unsafe {
        rrtest_syscall_gate(
            FIXED_PAGE_ADDR + entry::TRACED,
            nr,
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
        )
    }
}

/// A syscall that runs without a recorder stop (allowed by seccomp).
pub fn untraced_syscall(nr: u64, a: [u64; 6]) -> i64 {
    // SAFETY: as in `traced_syscall`.
    unsafe {
        rrtest_syscall_gate(
            FIXED_PAGE_ADDR + entry::UNTRACED,
            nr,
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
        )
    }
}

/// Performs syscalls for [`crate::buffer`]: the real one goes through the
/// untraced gate; tests substitute a fake kernel.
pub trait Kernel {
    /// Performs syscall `nr` with arguments `args`, untraced.
    fn untraced(&mut self, nr: u64, args: [u64; 6]) -> i64;
}

/// The real kernel, through the untraced entry.
#[derive(Debug)]
pub struct Untraced;

impl Kernel for Untraced {
    fn untraced(&mut self, nr: u64, args: [u64; 6]) -> i64 {
        untraced_syscall(nr, args)
    }
}
