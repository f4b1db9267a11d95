//! Building the extended jump patch (the stub) and the `jmp` to it, and
//! mapping instruction pointers between a stub and its original site.
//!
//! The fixed parts come from `rrtest_abi::stub` (the preload's hook entry
//! relies on them); the displaced instructions are re-encoded for their new
//! addresses with iced-x86's `BlockEncoder`, which rewrites relative
//! branches and rip-relative memory operands to reach the same absolute
//! targets (a short branch becomes a near one if it must).

use iced_x86::{BlockEncoder, BlockEncoderOptions, Instruction, InstructionBlock};
use rrtest_abi::stub::{RESTORE, SETUP};

use super::{rel32, PatchSite, Refusal, JMP_REL32_LEN};

/// Addresses of a stub's parts (all absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubLayout {
    /// (original address, stub address) of each displaced instruction
    /// before the syscall.
    pub before: Vec<(u64, u64)>,
    /// The stack setup: `mov [saved_rsp], rsp`.
    pub setup: u64,
    /// `call [rip+hook_slot]`.
    pub call: u64,
    /// The bail label (the hook's return address): the stack restore.
    pub bail: u64,
    /// The traced `syscall`.
    pub syscall: u64,
    /// The resume label (`bail + BAIL_TO_RESUME`): displaced code after the
    /// syscall, where the hook jumps when it did not bail.
    pub resume: u64,
    /// (original address, stub address) of each displaced instruction
    /// after the syscall.
    pub after: Vec<(u64, u64)>,
    /// `jmp return_addr`.
    pub jmp_back: u64,
    /// The 8-byte slot holding the hook entry's address.
    pub hook_slot: u64,
    /// One past the stub's last byte.
    pub end: u64,
}

/// A built stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    /// Where it is meant to be written.
    pub addr: u64,
    /// Its bytes.
    pub code: Vec<u8>,
    /// Where its parts are.
    pub layout: StubLayout,
    /// The original site's `syscall` address.
    pub syscall_addr: u64,
    /// Where the stub returns in the original code.
    pub return_addr: u64,
}

/// What a stub instruction pointer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubIp {
    /// The thread is at the instruction of the original code at this
    /// address, as far as anything observable goes (displaced code, the
    /// point before the stack setup, the traced syscall, the jump back): a
    /// signal frame's ip can be rewritten to it.
    Original(u64),
    /// Between the stack setup and the end of the stack restore: rsp is on
    /// the alt stack. The recorder must unwind the thread (let the hook
    /// bail, or finish the restore) before delivering a signal.
    InBuffer,
    /// Not at an instruction boundary of this stub.
    Outside,
}

impl Stub {
    /// Maps a stub ip to the equivalent original ip (see [`StubIp`]).
    pub fn stub_to_original(&self, ip: u64) -> StubIp {
        let l = &self.layout;
        if let Some(&(orig, _)) = l
            .before
            .iter()
            .chain(l.after.iter())
            .find(|(_, s)| *s == ip)
        {
            return StubIp::Original(orig);
        }
        if ip == l.setup || ip == l.syscall {
            return StubIp::Original(self.syscall_addr);
        }
        if ip == l.resume {
            // No displaced code after the syscall: resume is the jmp back.
            return StubIp::Original(self.syscall_addr + 2);
        }
        if ip == l.jmp_back {
            return StubIp::Original(self.return_addr);
        }
        if ip > l.setup && ip < l.syscall {
            return StubIp::InBuffer;
        }
        StubIp::Outside
    }

    /// Maps an original ip inside the patched region to the stub ip where
    /// the thread continues equivalently (`None` outside the region or off
    /// an instruction boundary). The syscall itself maps to the stack setup,
    /// so a thread about to issue it goes through the hook.
    pub fn original_to_stub(&self, ip: u64) -> Option<u64> {
        let l = &self.layout;
        if let Some(&(_, stub)) = l
            .before
            .iter()
            .chain(l.after.iter())
            .find(|(o, _)| *o == ip)
        {
            return Some(stub);
        }
        if ip == self.syscall_addr {
            return Some(l.setup);
        }
        if ip == self.syscall_addr + 2 && ip < self.return_addr {
            return Some(l.resume);
        }
        None
    }
}

/// Builds the stub for `site`, to be written at `stub_addr`, calling the
/// preload's hook entry at `hook_addr` and returning to `return_addr`
/// (normally `site.end()`).
pub fn build_stub(
    site: &PatchSite,
    stub_addr: u64,
    hook_addr: u64,
    return_addr: u64,
) -> Result<Stub, Refusal> {
    let mut code = Vec::with_capacity(64);

    let (bytes, before) = relocate(&site.before, stub_addr)?;
    code.extend_from_slice(&bytes);

    let setup = stub_addr + code.len() as u64;
    code.extend_from_slice(&SETUP);
    let call = stub_addr + code.len() as u64;
    code.extend_from_slice(&[0xff, 0x15, 0, 0, 0, 0]); // call [rip+hook_slot]
    let bail = stub_addr + code.len() as u64;
    code.extend_from_slice(&RESTORE);
    let syscall = stub_addr + code.len() as u64;
    code.extend_from_slice(&[0x0f, 0x05]);
    let resume = stub_addr + code.len() as u64;
    debug_assert_eq!(resume - bail, rrtest_abi::stub::BAIL_TO_RESUME);

    let (bytes, after) = relocate(&site.after, resume)?;
    code.extend_from_slice(&bytes);

    let jmp_back = stub_addr + code.len() as u64;
    let back = rel32(jmp_back + JMP_REL32_LEN as u64, return_addr).ok_or(Refusal::OutOfRange {
        what: "jump back from the stub",
        from: jmp_back,
        to: return_addr,
    })?;
    code.push(0xe9);
    code.extend_from_slice(&back.to_le_bytes());

    while code.len() % 8 != 0 {
        code.push(0xcc);
    }
    let hook_slot = stub_addr + code.len() as u64;
    code.extend_from_slice(&hook_addr.to_le_bytes());
    let end = stub_addr + code.len() as u64;

    // The call's displacement: from the end of the 6-byte call to the slot.
    let disp = (hook_slot - (call + 6)) as i32;
    let at = (call - stub_addr) as usize + 2;
    code[at..at + 4].copy_from_slice(&disp.to_le_bytes());

    Ok(Stub {
        addr: stub_addr,
        code,
        layout: StubLayout {
            before,
            setup,
            call,
            bail,
            syscall,
            resume,
            after,
            jmp_back,
            hook_slot,
            end,
        },
        syscall_addr: site.syscall_addr,
        return_addr,
    })
}

/// The bytes to write over `site`: `jmp stub_addr`, then `nop`s (never
/// executed: nothing branches inside the region) up to the region's end.
pub fn patch_bytes(site: &PatchSite, stub_addr: u64) -> Result<Vec<u8>, Refusal> {
    let rel = rel32(site.start + JMP_REL32_LEN as u64, stub_addr).ok_or(Refusal::OutOfRange {
        what: "jump from the site to the stub",
        from: site.start,
        to: stub_addr,
    })?;
    let mut out = Vec::with_capacity(site.len());
    out.push(0xe9);
    out.extend_from_slice(&rel.to_le_bytes());
    out.resize(site.len().max(JMP_REL32_LEN), 0x90);
    Ok(out)
}

/// (original address, stub address) pairs.
type AddressMap = Vec<(u64, u64)>;

/// Re-encodes `insns` (decoded at their original addresses) at `addr`;
/// returns the bytes and (original, new) address pairs.
fn relocate(insns: &[Instruction], addr: u64) -> Result<(Vec<u8>, AddressMap), Refusal> {
    if insns.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let block = InstructionBlock::new(insns, addr);
    let result = BlockEncoder::encode(
        64,
        block,
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )
    .map_err(|e| {
        // Name the usual cause: a rip-relative operand the stub's address
        // cannot reach with a 32-bit displacement.
        let far = insns.iter().find(|i| {
            i.is_ip_rel_memory_operand() && rel32(addr, i.ip_rel_memory_address()).is_none()
        });
        match far {
            Some(i) => Refusal::OutOfRange {
                what: "a displaced rip-relative operand",
                from: addr,
                to: i.ip_rel_memory_address(),
            },
            None => Refusal::Encode(e.to_string()),
        }
    })?;
    let map = insns
        .iter()
        .zip(&result.new_instruction_offsets)
        .map(|(insn, &off)| (insn.ip(), addr + u64::from(off)))
        .collect();
    Ok((result.code_buffer, map))
}
