//! The syscall-buffer library injected into every tracee (DESIGN.md §5).
//!
//! `cargo-rrtest`'s build script compiles this file with
//! `rustc --crate-type cdylib -C panic=abort` into a ~10 KB shared object that
//! imports nothing; the recorder adds it to `LD_PRELOAD`. Its parts:
//! - [`gate`]: the one assembly gate every syscall goes through, and the
//!   hook entry the extended jump patches (stubs) call;
//! - [`table`]: which syscalls are buffered and where their output goes;
//! - [`buffer`]: appending records to the per-thread buffer;
//! - the `.init_array` constructor performing the initialization handshake,
//!   the exported [`syscall_hook`], and the rdtsc sites' hook
//!   ([`buffer::synthetic_tsc`]).
//!
//! # Rules for code in this crate
//!
//! 1. No allocation, no libc, no `std`: the library runs inside arbitrary
//!    programs, possibly before their libc is initialized, on an alt stack.
//! 2. Every syscall goes through the one gate ([`gate::untraced_syscall`],
//!    [`gate::traced_syscall`]); never an inline `syscall` instruction. The
//!    recorder's seccomp filter recognizes the untraced gate by its ip.
//! 3. Name wrappers by what the recorder sees: `traced_*` (stops in the
//!    recorder), `untraced_*` (does not).
//! 4. A may-block or traced syscall is the last syscall of a wrapper (a
//!    disarming ioctl excepted): the recorder unwinds a thread interrupted
//!    there to the stub's bail path, and nothing after it may be lost.
//! 5. No panics: no slice indexing, no `unwrap`, no formatting. CI checks the
//!    built object for panic machinery (`scripts/check-preload.sh`).
//! 6. No `memcpy`/`memset` calls can be emitted (they would be imported from
//!    libc): copies use [`buffer::copy_bytes`].
//! 7. Memory the program named (a syscall's pointer arguments) is touched
//!    only through [`user`]'s fault-tolerant copy: a bad pointer is the
//!    kernel's `EFAULT`, never a crash in the hook.
#![cfg_attr(not(test), no_std)]
// The preload is the one crate besides `rrtest-sys` (`cargo-rrtest/sys/`) that must use
// unsafe code: raw syscalls, memory it does not own, a fixed address.
#![allow(unsafe_code)]

pub mod buffer;
pub mod gate;
pub mod user;
pub use rrtest_abi::buffered as table;

use core::cell::UnsafeCell;

use rrtest_abi::{locals, InitParams, ThreadLocals, PROTOCOL_VERSION, THREAD_LOCALS_ADDR};

pub use rrtest_abi::PROTOCOL_VERSION as ABI_PROTOCOL_VERSION;

/// A syscall as the stub saw it: the registers at its `syscall` instruction.
/// Built on the alt stack by the hook entry ([`gate`]).
///
/// ```text
///  +0x00 nr  +0x08 rdi  +0x10 rsi  +0x18 rdx  +0x20 r10  +0x28 r8  +0x30 r9
///  +0x38 result (written by the hook when it does not bail)
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SyscallRequest {
    /// The syscall number (rax).
    pub nr: u64,
    /// The arguments (rdi, rsi, rdx, r10, r8, r9).
    pub args: [u64; 6],
    /// The result, when the hook handled the syscall.
    pub result: i64,
}
const _: () = assert!(core::mem::size_of::<SyscallRequest>() == 64);

/// [`syscall_hook`]'s answer: the syscall was performed and recorded.
pub const HOOK_DONE: u32 = 0;
/// [`syscall_hook`]'s answer: bail; the stub runs the syscall traced.
pub const HOOK_BAIL: u32 = 1;

// The constructor and its globals are only reachable from the
// `.init_array` entry, which unit-test builds leave out (it would run the
// handshake in the test binary, which has no fixed page).
#[cfg_attr(test, allow(dead_code))]
/// The preload's globals: the handshake structure the recorder reads and
/// answers. Written only by the constructor (one thread) and the recorder.
struct Globals(UnsafeCell<InitParams>);

// SAFETY: written once by the constructor before any other thread exists and
// by the recorder while the process is stopped; read by the hook afterwards.
unsafe impl Sync for Globals {}

// Exported (as data) so that debuggers and the smoke tests can read the
// handshake state without intercepting the syscall.
#[cfg_attr(test, allow(dead_code))]
#[export_name = "rrtest_init_params"]
static GLOBALS: Globals = Globals(UnsafeCell::new(InitParams {
    protocol_version: 0,
    size: 0,
    hook_entry: 0,
    syscall_hook: 0,
    reply_area: 0,
    reply_area_size: 0,
    reply_flags: 0,
}));

#[cfg_attr(test, allow(dead_code))]
/// The initialization handshake (see `rrtest_abi::magic::INIT`).
fn traced_init_handshake() -> i64 {
    let params = GLOBALS.0.get();
    // SAFETY: the constructor runs once, before user code creates threads.
    unsafe {
        core::ptr::write_volatile(
            params,
            InitParams {
                protocol_version: PROTOCOL_VERSION,
                size: core::mem::size_of::<InitParams>() as u32,
                hook_entry: gate::hook_entry_addr(),
                syscall_hook: syscall_hook as *const () as u64,
                reply_area: 0,
                reply_area_size: 0,
                reply_flags: 0,
            },
        );
    }
    gate::traced_syscall(
        rrtest_abi::magic::INIT,
        [
            params as u64,
            u64::from(PROTOCOL_VERSION),
            core::mem::size_of::<InitParams>() as u64,
            0,
            0,
            0,
        ],
    )
}

#[cfg_attr(test, allow(dead_code))]
/// The `.init_array` constructor. The recorder maps the fixed page before
/// the dynamic loader runs, so the gate is usable here.
extern "C" fn rrtest_preload_init() {
    // Under Valgrind the program's code runs on Valgrind's synthetic CPU,
    // which knows nothing of the pages the recorder mapped: a call into the
    // fixed page is a jump to an address it takes for unmapped (SIGSEGV).
    // No buffer then: every syscall Valgrind makes for it stops in the
    // recorder, as with `--no-syscallbuf`.
    if under_valgrind() {
        return;
    }
    // The result needs no handling here: on success the recorder has filled
    // the thread locals; on failure every stub call bails (no buffer).
    let _ = traced_init_handshake();
}

/// Whether the program runs under Valgrind: Valgrind's client request
/// `RUNNING_ON_VALGRIND` (0x1001), made with its marker sequence (`rdi`
/// rotated by 3, 13, 61 and 51 bits, 128 in all, then `xchg rbx, rbx`: no
/// effect on a real CPU, which leaves the default 0 in `rdx`), answers how
/// many Valgrinds the program runs under.
fn under_valgrind() -> bool {
    const RUNNING_ON_VALGRIND: u64 = 0x1001;
    let request: [u64; 6] = [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0];
    let answer: u64;
    // SAFETY: rotations of rdi that restore it and an exchange of rbx with
    // itself; Valgrind reads the six words at rax and writes rdx only.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") request.as_ptr(),
            inout("rdx") 0u64 => answer,
            inout("rdi") 0u64 => _,
            options(nostack, readonly),
        );
    }
    answer != 0
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = rrtest_preload_init;

/// The locals of the running thread.
fn locals() -> *mut ThreadLocals {
    THREAD_LOCALS_ADDR as *mut ThreadLocals
}

/// The syscall hook: performs `req` through the untraced entry and records
/// it in the running thread's buffer, or answers [`HOOK_BAIL`] (no buffer,
/// syscall not buffered, output too large, buffer full, record aborted).
///
/// # Safety
/// `req` must point to a valid request, and the thread-locals page must be
/// mapped (it is, in any process the recorder runs).
#[no_mangle]
pub unsafe extern "C" fn syscall_hook(req: *mut SyscallRequest) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { hook_impl(req) }
}

/// The first bytes of the zero-terminated name at `ptr`, up to 6 (the
/// zero and what follows it are left 0); `None` when the program's memory
/// there cannot be read before the name ends (the kernel's `EFAULT`).
fn name_prefix(ptr: u64) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    // SAFETY: `out` is ours; the program's side may be bad: the copy stops
    // at a fault, which may lie after the name's end.
    let left = unsafe { user::copy(out.as_mut_ptr(), ptr as *const u8, out.len()) };
    let read = out.len() - left;
    match out.iter().take(read).position(|&c| c == 0) {
        Some(end) => {
            // The bytes from the zero on cleared, as one word (a loop
            // would become a `memset` call, rule 6).
            let [a, b, c, d, e, f] = out;
            let word = u64::from_le_bytes([a, b, c, d, e, f, 0, 0]) & ((1u64 << (8 * end)) - 1);
            let [a, b, c, d, e, f, _, _] = word.to_le_bytes();
            Some([a, b, c, d, e, f])
        }
        None if left == 0 => Some(out),
        None => None,
    }
}

/// What the hook entry calls (a local symbol: no PLT in between).
///
/// # Safety
/// As [`syscall_hook`].
unsafe extern "C" fn hook_impl(req: *mut SyscallRequest) -> u32 {
    // SAFETY: the caller passes a valid request; the locals page is mapped
    // and only this thread runs.
    let (request, tl) = unsafe { (&mut *req, core::ptr::read_volatile(locals())) };
    let Some(buf) = (unsafe { buffer::Buffer::from_locals(&tl) }) else {
        return HOOK_BAIL;
    };
    // The budget: a slice that ends after a count of buffered syscalls
    // (chaos) ends at that count, not where a timer saw it spent.
    if buf.budget_spent(tl.bail_after)
        || rrtest_abi::flags_bail(request.nr, tl.flags)
        || rrtest_abi::open_flags_bail(request.nr, &request.args, tl.flags)
    {
        return HOOK_BAIL;
    }
    let path = match request.nr {
        rrtest_abi::buffered::nr::OPEN => request.args[0],
        rrtest_abi::buffered::nr::OPENAT => request.args[1],
        _ => 0,
    };
    // A pointer in the first page (null included) is not read: the kernel
    // answers EFAULT. A name that cannot be read is the kernel's EFAULT
    // too: traced.
    if path >= 0x1000 {
        match name_prefix(path) {
            Some(prefix) if !rrtest_abi::open_bails(&prefix) => {}
            _ => return HOOK_BAIL,
        }
    }
    // Only a write or a close looks at the output table: the others need
    // not copy it.
    let output_fds: &[rrtest_abi::OutputFd] = if rrtest_abi::buffered::writes_to_fd(request.nr)
        || request.nr == rrtest_abi::buffered::nr::CLOSE
    {
        // SAFETY: the locals page is mapped (the buffer exists), the output
        // table lies within it, and only the recorder writes it, while this
        // thread is stopped: it does not change during the hook.
        unsafe {
            core::slice::from_raw_parts(
                (THREAD_LOCALS_ADDR + locals::OUTPUT_FDS) as *const rrtest_abi::OutputFd,
                locals::OUTPUT_FDS_MAX,
            )
        }
    } else {
        &[]
    };
    match buffer::buffer_syscall_with(
        &buf,
        request.nr,
        request.args,
        &mut gate::Untraced,
        tl.desched_fd,
        output_fds,
    ) {
        buffer::Outcome::Done(result) => {
            request.result = result;
            HOOK_DONE
        }
        buffer::Outcome::Bail(_) => HOOK_BAIL,
    }
}

/// What the hook entry calls for an rdtsc site's stub: reads the
/// synthesized TSC ([`rrtest_abi::tsc`]) with a buffered `clock_gettime`
/// into `*out` and answers [`HOOK_DONE`], or answers [`HOOK_BAIL`] (no
/// buffer, `force_bail`, buffer full, record aborted, a failed read): the
/// stub's `rdtsc` then traps and the recorder emulates it.
///
/// # Safety
/// `out` must be valid for a write; the thread-locals page must be mapped.
unsafe extern "C" fn rdtsc_hook_impl(out: *mut u64) -> u32 {
    // SAFETY: the locals page is mapped and only this thread runs.
    let tl = unsafe { core::ptr::read_volatile(locals()) };
    // SAFETY: as in `hook_impl`.
    let Some(buf) = (unsafe { buffer::Buffer::from_locals(&tl) }) else {
        return HOOK_BAIL;
    };
    match buffer::synthetic_tsc(&buf, &mut gate::Untraced, tl.desched_fd) {
        Some(tsc) => {
            // SAFETY: the caller passes a valid slot.
            unsafe { core::ptr::write_volatile(out, tsc) };
            HOOK_DONE
        }
        None => HOOK_BAIL,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable by rule 5; if it ever happens, die loudly without
    // unwinding machinery.
    // SAFETY: ud2 raises SIGILL; it touches no memory.
    unsafe { core::arch::asm!("ud2", options(noreturn, nomem, nostack)) }
}

#[cfg(test)]
mod tests {
    use super::name_prefix;
    use crate::user::tests_support::{clear_bad, set_bad};

    #[test]
    fn a_name_is_read_up_to_its_end_or_a_fault() {
        let name = *b"/proc/self\0";
        let at = name.as_ptr() as u64;
        assert_eq!(name_prefix(at), Some(*b"/proc/"));
        // A short name: the zero and what follows are 0.
        let short = *b"ab\0xyz";
        assert_eq!(name_prefix(short.as_ptr() as u64), Some(*b"ab\0\0\0\0"));
        // A fault after the name's end does not matter; one before it is
        // the kernel's EFAULT.
        let s = short.as_ptr() as u64;
        set_bad(s + 3..s + 6);
        assert_eq!(name_prefix(s), Some(*b"ab\0\0\0\0"));
        set_bad(s + 1..s + 6);
        assert_eq!(name_prefix(s), None);
        set_bad(at..at + 1);
        assert_eq!(name_prefix(at), None);
        clear_bad();
    }
}
