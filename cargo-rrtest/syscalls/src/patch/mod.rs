//! Syscall-site (and rdtsc-site) patching (DESIGN.md §5): pure functions
//! over bytes.
//!
//! At a traced syscall the recorder reads a window of code around the
//! `syscall` instruction and asks [`analyze`] (or [`analyze_with`]) for a
//! [`PatchSite`]: a region of at least 5 bytes containing the `syscall`
//! whose instructions can be moved elsewhere. [`build_stub`] relocates them
//! into an extended jump patch ([`Stub`]) with the seed layout, and
//! [`patch_bytes`] gives the `jmp rel32` (+ `nop`s) to write over the region.
//! [`Stub::stub_to_original`] and [`Stub::original_to_stub`] map
//! instruction pointers between the two, for signal frames and for threads
//! whose ip lies in a region being patched.
//!
//! The same holds for a trapped `rdtsc` ([`Anchor::Rdtsc`]): the stub calls
//! the same hook entry, which synthesizes the TSC, and its bail path runs
//! the original `rdtsc` (which traps) where a syscall site's stub runs its
//! traced `syscall` ([`build_stub`] shows the difference).
//!
//! Nothing here touches a tracee: the recorder reads the bytes, allocates
//! the stub page within ±2 GiB, writes the results, and records the patch.
//! (The end-to-end test through the real preload library is the main
//! crate's `tracee/patch_exec_tests.rs`: the library is embedded there.)
//!
//! ```text
//!  original code                         stub (stub_addr)
//!  +--------------------------+          +--------------------------------+
//!  | ...                      |          | <displaced code before syscall>|
//!  | region start:            |  jmp     | setup: save rsp, alt stack,    |
//!  |   jmp stub     (5 bytes) | -------> |        pushfq, cld             |
//!  |   nop...                 |          | call [rip+hook_slot]           |
//!  | region end:  <-----------+---+      | bail: popfq, restore rsp       |
//!  | ...                      |   |      | syscall            (traced)    |
//!  +--------------------------+   |      | resume: <displaced code after> |
//!                                 +----- | jmp region end                 |
//!                                        | hook_slot: .quad hook_entry    |
//!                                        +--------------------------------+
//! ```

mod analyze;
mod stub;
#[cfg(test)]
mod tests;

pub use analyze::{
    analyze, analyze_with, branch_into_region, check_syscall, AnalyzeOptions, Anchor, PatchSite,
};
pub use stub::{build_stub, patch_bytes, Stub, StubIp, StubLayout};

/// Length of the `jmp rel32` written at a patch site.
pub const JMP_REL32_LEN: usize = 5;

/// Why a site is not patched. Refusals are normal: the syscall simply stays
/// traced at that site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The `syscall` instruction is not inside the code window given.
    #[error("syscall address {addr:#x} is outside the code window")]
    OutsideWindow {
        /// The address asked about.
        addr: u64,
    },
    /// The bytes at the address are not `syscall` (0f 05).
    #[error("no syscall instruction at {addr:#x}")]
    NotASyscall {
        /// The address asked about.
        addr: u64,
    },
    /// The bytes at the address are not `rdtsc` (0f 31).
    #[error("no rdtsc instruction at {addr:#x}")]
    NotAnRdtsc {
        /// The address asked about.
        addr: u64,
    },
    /// An instruction the region would need does not decode.
    #[error("undecodable instruction at {addr:#x}")]
    Undecodable {
        /// Where.
        addr: u64,
    },
    /// Fewer than 5 bytes can be displaced around the syscall.
    #[error("only {len} bytes can be displaced at {addr:#x} ({why})")]
    TooShort {
        /// Where the region would start.
        addr: u64,
        /// How long it could be made.
        len: usize,
        /// What stopped it.
        why: &'static str,
    },
    /// A branch in the code window targets the inside of the region.
    #[error("branch at {from:#x} targets {target:#x}, inside the region")]
    BranchIntoRegion {
        /// The branch instruction.
        from: u64,
        /// Its target.
        target: u64,
    },
    /// An instruction in the region cannot run from another address.
    #[error("instruction at {addr:#x} cannot be displaced: {why}")]
    NotRelocatable {
        /// Where.
        addr: u64,
        /// Why.
        why: &'static str,
    },
    /// The syscall itself must never be patched.
    #[error("syscall {nr} is never patched")]
    UnpatchableSyscall {
        /// Its number.
        nr: i64,
    },
    /// The instruction boundary given does not lead to the syscall.
    #[error("decoding from {boundary:#x} does not reach the syscall at {addr:#x}")]
    BoundaryMismatch {
        /// The boundary given.
        boundary: u64,
        /// The syscall.
        addr: u64,
    },
    /// The stub (or a displaced memory operand) is out of rel32 range.
    #[error("{what}: {from:#x} -> {to:#x} is beyond ±2 GiB")]
    OutOfRange {
        /// What needed the range.
        what: &'static str,
        /// From.
        from: u64,
        /// To.
        to: u64,
    },
    /// iced-x86 could not encode the relocated code.
    #[error("cannot relocate the displaced code: {0}")]
    Encode(String),
}

/// `rel32` for a branch ending at `next_ip` to `target`, if in range.
fn rel32(next_ip: u64, target: u64) -> Option<i32> {
    i32::try_from(target.wrapping_sub(next_ip) as i64).ok()
}
