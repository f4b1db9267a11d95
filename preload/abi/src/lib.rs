//! The contract between the `cargo-rrtest` recorder/replayer and the preload
//! library injected into every tracee.
//!
//! Everything both sides must agree on lives here and nowhere else: the fixed
//! page's address and the offsets of its entry points, the magic syscall
//! numbers of the initialization handshake, and the protocol version that is
//! written into every trace header. This crate is `no_std`, has no
//! dependencies, and holds only plain constants and `#[repr(C)]` types.
//!
//! # The fixed page
//!
//! One page at [`FIXED_PAGE_ADDR`] is mapped into every tracee address space
//! right after each `execve`, by the recorder (and identically by the
//! replayer). It holds tiny `syscall; ret` entry points. The seccomp filter
//! lets a syscall through untraced only when its instruction pointer is the
//! address just after the `syscall` instruction of [`entry::UNTRACED`]; every
//! other syscall stops in the recorder.
//!
//! ```text
//!  FIXED_PAGE_ADDR
//!  +0x000  0f 05 c3   syscall; ret        entry::TRACED   (always stops)
//!  +0x010  0f 05 c3   syscall; ret        entry::UNTRACED (seccomp ALLOW)
//!  +0x020  0f 05 c3   syscall; ret        entry::PRIVILEGED (recorder-injected
//!                                         syscalls; traced so the recorder sees them)
//!  +0x030  cc         int3                entry::TRAP
//!  +0x800  ...        per-thread locals area (syscall buffer, later)
//! ```
#![no_std]

/// Version of the recorder <-> preload protocol. Written into every trace
/// header; a replayer refuses a trace whose protocol it does not speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// Address of the fixed page in every tracee (below the default mmap base,
/// above typical non-PIE executables; rr uses the same address).
pub const FIXED_PAGE_ADDR: u64 = 0x7000_0000;

/// Size of the fixed page.
pub const FIXED_PAGE_SIZE: u64 = 0x1000;

/// Length of the x86-64 `syscall` instruction (`0f 05`).
pub const SYSCALL_INSN_LEN: u64 = 2;

/// Offsets of the fixed page's entry points.
pub mod entry {
    /// `syscall; ret`: an ordinary, traced syscall.
    pub const TRACED: u64 = 0x000;
    /// `syscall; ret`: allowed through the seccomp filter without a stop.
    pub const UNTRACED: u64 = 0x010;
    /// `syscall; ret`: used by the recorder and replayer to inject their own
    /// syscalls into a stopped tracee (mmap of the page excepted).
    pub const PRIVILEGED: u64 = 0x020;
    /// `int3`: a return address for injected calls.
    pub const TRAP: u64 = 0x030;
}

/// Offset of the per-thread locals area in the fixed page.
pub const LOCALS_OFFSET: u64 = 0x800;

/// The code bytes of one `syscall; ret` entry point.
pub const SYSCALL_RET: [u8; 3] = [0x0f, 0x05, 0xc3];

/// Builds the fixed page's contents (code only; the rest is zero).
pub const fn fixed_page_code() -> [u8; 0x40] {
    let mut page = [0xccu8; 0x40];
    let entries = [entry::TRACED, entry::UNTRACED, entry::PRIVILEGED];
    let mut i = 0;
    while i < entries.len() {
        let at = entries[i] as usize;
        page[at] = SYSCALL_RET[0];
        page[at + 1] = SYSCALL_RET[1];
        page[at + 2] = SYSCALL_RET[2];
        i += 1;
    }
    page
}

/// The instruction pointer the kernel reports (and seccomp sees) for a
/// syscall issued from the entry point at `offset`: the address right after
/// its `syscall` instruction.
pub const fn syscall_ip(offset: u64) -> u64 {
    FIXED_PAGE_ADDR + offset + SYSCALL_INSN_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_hold_syscall_ret() {
        let code = fixed_page_code();
        for off in [entry::TRACED, entry::UNTRACED, entry::PRIVILEGED] {
            assert_eq!(&code[off as usize..off as usize + 3], &SYSCALL_RET);
        }
        assert_eq!(code[entry::TRAP as usize], 0xcc);
        assert_eq!(syscall_ip(entry::UNTRACED), 0x7000_0012);
    }
}
