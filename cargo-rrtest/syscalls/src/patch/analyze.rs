//! Choosing the region to displace around a `syscall` (or `rdtsc`)
//! instruction, the site's [`Anchor`].
//!
//! The region grows forward from the anchor until it holds at least
//! [`JMP_REL32_LEN`] bytes, stopping after an instruction that does not fall
//! through (`ret`, `jmp`): the bytes after it may be another function's
//! entry. If that is not enough and the caller knows an instruction boundary
//! before the syscall (a function start from the symbol table), the region
//! also grows backward over fall-through instructions. Every instruction of
//! the window is then scanned for branches into the region's inside.
//!
//! A branch from outside the window can still target the region; that risk
//! is inherent to patching without whole-program knowledge (rr takes it
//! too) and is why the window should be as large as the recorder can read.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};

use super::{Refusal, JMP_REL32_LEN};

/// Syscalls whose sites are never patched: they create or replace threads
/// and address spaces or rewrite the whole register state, which the stub's
/// stack switch and ip mapping must not be in the middle of.
const NEVER_PATCHED: [i64; 7] = [
    56,  // clone
    57,  // fork
    58,  // vfork
    59,  // execve
    15,  // rt_sigreturn
    322, // execveat
    435, // clone3
];

/// Refuses a site that issued syscall `nr` (clone, fork, vfork, execve,
/// execveat, clone3, rt_sigreturn).
pub fn check_syscall(nr: i64) -> Result<(), Refusal> {
    if NEVER_PATCHED.contains(&nr) {
        return Err(Refusal::UnpatchableSyscall { nr });
    }
    Ok(())
}

/// The instruction a site is patched for: the one the stub's hook call
/// stands in for, and that the stub's bail path executes (and traps at).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Anchor {
    /// `syscall` (`0f 05`): the hook buffers it.
    #[default]
    Syscall,
    /// `rdtsc` (`0f 31`): the hook synthesizes the TSC with a buffered
    /// clock read (`rrtest_abi::tsc`).
    Rdtsc,
}

impl Anchor {
    /// The instruction's bytes (both are 2 bytes long).
    pub const fn bytes(self) -> [u8; 2] {
        match self {
            Anchor::Syscall => [0x0f, 0x05],
            Anchor::Rdtsc => rrtest_abi::stub::RDTSC,
        }
    }

    fn code(self) -> Code {
        match self {
            Anchor::Syscall => Code::Syscall,
            Anchor::Rdtsc => Code::Rdtsc,
        }
    }
}

/// What the caller knows beyond the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyzeOptions {
    /// An address inside the window known to start an instruction, at or
    /// before the syscall (e.g. the enclosing function's start). Enables
    /// displacing instructions before the syscall, and anchors the scan.
    pub boundary: Option<u64>,
    /// The instruction at the address analyzed (default: `syscall`).
    pub anchor: Anchor,
}

/// A region chosen for patching, with its decoded instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchSite {
    /// First byte of the region (where the `jmp` goes).
    pub start: u64,
    /// The region's original bytes (check them before writing the patch).
    pub original: Vec<u8>,
    /// Address of the anchor: the `syscall` (or `rdtsc`) instruction.
    pub syscall_addr: u64,
    /// Which instruction that is.
    pub anchor: Anchor,
    /// Displaced instructions before the syscall, in order.
    pub before: Vec<Instruction>,
    /// Displaced instructions after the syscall, in order.
    pub after: Vec<Instruction>,
}

impl PatchSite {
    /// One past the region's last byte: where the stub jumps back to.
    pub fn end(&self) -> u64 {
        self.start + self.original.len() as u64
    }

    /// Length of the region.
    pub fn len(&self) -> usize {
        self.original.len()
    }

    /// Always false: a region holds at least the `syscall`.
    pub fn is_empty(&self) -> bool {
        self.original.is_empty()
    }

    /// Whether `ip` is strictly inside the region (the region's start is a
    /// fine place to be: the `jmp` is there). The recorder must not write
    /// the patch while a thread's ip, or a restartable syscall's restart
    /// address, is inside, except by moving that thread into the stub with
    /// [`Stub::original_to_stub`](super::Stub::original_to_stub).
    pub fn contains_inside(&self, ip: u64) -> bool {
        ip > self.start && ip < self.end()
    }
}

/// [`analyze_with`] with no knowledge of instruction boundaries: the region
/// only grows forward from the syscall.
///
/// `code` is a window of the tracee's code starting at `code_addr`;
/// `syscall_addr` is the address of the `syscall` instruction (the ip the
/// kernel reports at the syscall stop, minus 2).
pub fn analyze(code: &[u8], code_addr: u64, syscall_addr: u64) -> Result<PatchSite, Refusal> {
    analyze_with(code, code_addr, syscall_addr, &AnalyzeOptions::default())
}

/// Chooses and checks the region to patch around the `syscall` at
/// `syscall_addr` (see the module doc).
pub fn analyze_with(
    code: &[u8],
    code_addr: u64,
    syscall_addr: u64,
    options: &AnalyzeOptions,
) -> Result<PatchSite, Refusal> {
    let window_end = code_addr + code.len() as u64;
    if syscall_addr < code_addr || syscall_addr + 2 > window_end {
        return Err(Refusal::OutsideWindow { addr: syscall_addr });
    }
    let at = (syscall_addr - code_addr) as usize;
    let first = decode_one(code, code_addr, syscall_addr)?;
    if first.code() != options.anchor.code() {
        return Err(match options.anchor {
            Anchor::Syscall => Refusal::NotASyscall { addr: syscall_addr },
            Anchor::Rdtsc => Refusal::NotAnRdtsc { addr: syscall_addr },
        });
    }
    debug_assert_eq!(at + 2, (first.next_ip() - code_addr) as usize);

    // Forward.
    let mut after = Vec::new();
    let mut end = first.next_ip();
    let mut stop = None;
    while end - syscall_addr < JMP_REL32_LEN as u64 {
        if end >= window_end {
            stop = Some("end of the code window");
            break;
        }
        let insn = decode_one(code, code_addr, end)?;
        check_relocatable(&insn)?;
        end = insn.next_ip();
        let falls_through = matches!(
            insn.flow_control(),
            FlowControl::Next | FlowControl::ConditionalBranch
        );
        after.push(insn);
        if !falls_through {
            stop = Some("an instruction that does not fall through");
            break;
        }
    }

    // Backward, when needed and possible.
    let mut start = syscall_addr;
    let mut before = Vec::new();
    if end - start < JMP_REL32_LEN as u64 {
        let why = stop.unwrap_or("end of the code window");
        let Some(boundary) = options.boundary else {
            return Err(Refusal::TooShort {
                addr: start,
                len: (end - start) as usize,
                why,
            });
        };
        let preceding = sweep(code, code_addr, boundary, syscall_addr)?;
        if preceding.last().map(Instruction::next_ip) != Some(syscall_addr)
            && boundary != syscall_addr
        {
            return Err(Refusal::BoundaryMismatch {
                boundary,
                addr: syscall_addr,
            });
        }
        for insn in preceding.iter().rev() {
            if end - start >= JMP_REL32_LEN as u64 {
                break;
            }
            if insn.flow_control() != FlowControl::Next {
                return Err(Refusal::TooShort {
                    addr: start,
                    len: (end - start) as usize,
                    why: "a branch precedes the syscall",
                });
            }
            check_relocatable(insn)?;
            start = insn.ip();
            before.insert(0, *insn);
        }
        if end - start < JMP_REL32_LEN as u64 {
            return Err(Refusal::TooShort {
                addr: start,
                len: (end - start) as usize,
                why: "start of the known code",
            });
        }
    }

    // No branch anywhere in the window may land strictly inside the region.
    // The sweep from the window's start may begin mid-instruction (it
    // resynchronizes within a few instructions); the one from a known
    // boundary is exact from there on. Scanning both misses nothing either
    // sees; a spurious branch from a misaligned decode only costs a refusal.
    let mut scanned = sweep(code, code_addr, code_addr, window_end)?;
    if let Some(boundary) = options.boundary.filter(|&b| b != code_addr) {
        scanned.extend(sweep(code, code_addr, boundary, window_end)?);
    }
    scanned.extend(before.iter().chain(after.iter()).copied());
    for insn in &scanned {
        if let Some(target) = branch_target(insn) {
            if target > start && target < end {
                return Err(Refusal::BranchIntoRegion {
                    from: insn.ip(),
                    target,
                });
            }
        }
    }

    let lo = (start - code_addr) as usize;
    let hi = (end - code_addr) as usize;
    Ok(PatchSite {
        start,
        original: code.get(lo..hi).unwrap_or_default().to_vec(),
        syscall_addr,
        anchor: options.anchor,
        before,
        after,
    })
}

/// A direct branch in `code` (at `code_addr`) that lands strictly inside
/// `site`'s region: the region's own window covers only the bytes after
/// the syscall, and compilers share a syscall's tail between paths (glibc
/// 2.36's `__futex_abstimed_wait_common` jumps from 0x93 bytes after its
/// first futex `syscall` back to the instruction right after it), so the
/// recorder scans wider code around a site before patching it. A linear
/// sweep from the start of `code`, which need not be an instruction
/// boundary; a spurious branch from a misaligned decode only costs a
/// refusal.
pub fn branch_into_region(code: &[u8], code_addr: u64, site: &PatchSite) -> Option<Refusal> {
    let end = code_addr + code.len() as u64;
    let insns = sweep(code, code_addr, code_addr, end).ok()?;
    insns.iter().find_map(|insn| {
        let target = branch_target(insn)?;
        (target > site.start && target < site.end()).then(|| Refusal::BranchIntoRegion {
            from: insn.ip(),
            target,
        })
    })
}

/// Decodes the instruction at `addr`.
fn decode_one(code: &[u8], code_addr: u64, addr: u64) -> Result<Instruction, Refusal> {
    let offset = (addr - code_addr) as usize;
    let bytes = code.get(offset..).ok_or(Refusal::Undecodable { addr })?;
    let mut decoder = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return Err(Refusal::Undecodable { addr });
    }
    Ok(insn)
}

/// Linear sweep over `[from, to)`; undecodable bytes are skipped one at a
/// time (a window need not start on an instruction boundary).
fn sweep(code: &[u8], code_addr: u64, from: u64, to: u64) -> Result<Vec<Instruction>, Refusal> {
    let window_end = code_addr + code.len() as u64;
    if from < code_addr || from > window_end {
        return Err(Refusal::OutsideWindow { addr: from });
    }
    let mut out = Vec::new();
    let mut ip = from;
    while ip < to {
        let offset = (ip - code_addr) as usize;
        let bytes = code.get(offset..).unwrap_or_default();
        let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let insn = decoder.decode();
        if insn.is_invalid() {
            ip += 1;
            continue;
        }
        ip = insn.next_ip();
        out.push(insn);
    }
    Ok(out)
}

/// The target of a direct (relative) branch, if `insn` is one.
fn branch_target(insn: &Instruction) -> Option<u64> {
    match insn.flow_control() {
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call => {
            // Far branches have no near target; `xbegin` is covered below.
            (insn.near_branch_target() != 0).then(|| insn.near_branch_target())
        }
        FlowControl::XbeginXabortXend => {
            (insn.near_branch_target() != 0).then(|| insn.near_branch_target())
        }
        _ => None,
    }
}

/// Refuses instructions whose behaviour depends on being where they are in
/// ways relocation cannot preserve.
fn check_relocatable(insn: &Instruction) -> Result<(), Refusal> {
    let addr = insn.ip();
    let why = match insn.flow_control() {
        FlowControl::Call | FlowControl::IndirectCall => {
            Some("a call would push a stub address for unwinders to see")
        }
        FlowControl::Interrupt => Some("an interrupt or trap instruction"),
        FlowControl::Exception => Some("an exception-raising instruction"),
        FlowControl::XbeginXabortXend => Some("a transactional memory instruction"),
        FlowControl::UnconditionalBranch if insn.near_branch_target() == 0 => Some("a far branch"),
        _ => None,
    };
    if let Some(why) = why {
        return Err(Refusal::NotRelocatable { addr, why });
    }
    if matches!(
        insn.code(),
        Code::Syscall | Code::Sysenter | Code::Int_imm8 | Code::Int3
    ) {
        return Err(Refusal::NotRelocatable {
            addr,
            why: "another syscall or trap in the region",
        });
    }
    Ok(())
}
