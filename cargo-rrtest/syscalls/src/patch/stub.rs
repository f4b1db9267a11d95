//! Building the extended jump patch (the stub) and the `jmp` to it, and
//! mapping instruction pointers between a stub and its original site.
//!
//! The fixed parts come from `rrtest_abi::stub` (the preload's hook entry
//! relies on them). The displaced instructions are written for their new
//! addresses so that they reach the same absolute targets:
//!
//! - most are copied byte for byte;
//! - a rip-relative memory operand gets a new 32-bit displacement (where
//!   the decoder says the displacement is: before any immediate);
//! - `jmp rel8`/`rel32` becomes `jmp rel32` (`e9`), `jcc rel8`/`rel32`
//!   becomes `jcc rel32` (`0f 8x`) to the same target.
//!
//! The result is decoded again and checked instruction by instruction.
//! Anything else (a prefixed branch, `loop`, `jrcxz`, an eip-relative
//! operand, a check that fails) is re-encoded by iced-x86's `BlockEncoder`
//! instead. A site where the encoder must rewrite an instruction into
//! several (`loop`/`jrcxz` cannot reach a target 5 bytes or more away
//! from the stub; a branch beyond rel32 from it) is refused. Both ways are deterministic: replay plans the same
//! patch again and compares the bytes. The direct way exists because the
//! encoder builds its tables the first time it runs, about a millisecond,
//! which every recording would pay at its first patch.

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Decoder, DecoderOptions, Instruction, InstructionBlock,
    OpKind, Register,
};
use rrtest_abi::stub::{RDTSC_SKIP, RESTORE, SETUP};

use super::{rel32, Anchor, PatchSite, Refusal, JMP_REL32_LEN};

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
    /// The traced `syscall` (for an rdtsc site, the trapping `rdtsc`).
    pub syscall: u64,
    /// An rdtsc site's done label (`bail + RDTSC_BAIL_TO_DONE`): the hook
    /// entry returns there with the synthesized TSC; a second stack restore
    /// leads to `resume`. `None` for a syscall site.
    pub done: Option<u64>,
    /// The resume label: displaced code after the syscall (or rdtsc), where
    /// the hook continues when it did not bail (for a syscall site
    /// `bail + BAIL_TO_RESUME`; for an rdtsc site after the done label's
    /// restore).
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
    /// The original site's `syscall` (or `rdtsc`) address.
    pub syscall_addr: u64,
    /// Which instruction the site is patched for.
    pub anchor: Anchor,
    /// Where the stub returns in the original code.
    pub return_addr: u64,
    /// The patched region's first byte and its original bytes (what a
    /// debugger is shown there: the jump and its padding are ours).
    pub original: (u64, Vec<u8>),
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
        if ip == l.resume || (l.done.is_some() && ip == l.syscall + 2) {
            // No displaced code after the syscall: resume is the jmp back.
            // An rdtsc site's `jmp short resume` after its emulated `rdtsc`
            // is equally the point after the rdtsc.
            return StubIp::Original(self.syscall_addr + 2);
        }
        if ip == l.jmp_back {
            return StubIp::Original(self.return_addr);
        }
        if ip > l.setup && ip < l.syscall {
            return StubIp::InBuffer;
        }
        if l.done.is_some_and(|done| ip >= done && ip < l.resume) {
            // The done path: rsp is still on the alt stack.
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
/// (normally `site.end()`). An rdtsc site (`site.anchor`) gets `rdtsc` as
/// its trapping instruction and the done path (`rrtest_abi::stub`):
///
/// ```text
///  bail:   popfq; mov rsp, [saved_rsp]
///          rdtsc                     (traps: emulated by the recorder)
///          jmp short resume
///  done:   popfq; mov rsp, [saved_rsp]   <- hook done, edx:eax = TSC
///  resume: <displaced code after the rdtsc>
/// ```
pub fn build_stub(
    site: &PatchSite,
    stub_addr: u64,
    hook_addr: u64,
    return_addr: u64,
) -> Result<Stub, Refusal> {
    let mut code = Vec::with_capacity(64);

    let (bytes, before, _) = relocate(site, &site.before, stub_addr)?;
    code.extend_from_slice(&bytes);

    let setup = stub_addr + code.len() as u64;
    code.extend_from_slice(&SETUP);
    let call = stub_addr + code.len() as u64;
    code.extend_from_slice(&[0xff, 0x15, 0, 0, 0, 0]); // call [rip+hook_slot]
    let bail = stub_addr + code.len() as u64;
    code.extend_from_slice(&RESTORE);
    let syscall = stub_addr + code.len() as u64;
    code.extend_from_slice(&site.anchor.bytes());
    let done = match site.anchor {
        Anchor::Syscall => None,
        Anchor::Rdtsc => {
            code.extend_from_slice(&RDTSC_SKIP);
            let done = stub_addr + code.len() as u64;
            debug_assert_eq!(done - bail, rrtest_abi::stub::RDTSC_BAIL_TO_DONE);
            code.extend_from_slice(&RESTORE);
            Some(done)
        }
    };
    let resume = stub_addr + code.len() as u64;
    debug_assert!(done.is_some() || resume - bail == rrtest_abi::stub::BAIL_TO_RESUME);

    let (bytes, after, _) = relocate(site, &site.after, resume)?;
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
            done,
            resume,
            after,
            jmp_back,
            hook_slot,
            end,
        },
        syscall_addr: site.syscall_addr,
        anchor: site.anchor,
        return_addr,
        original: (site.start, site.original.clone()),
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

/// How [`relocate`] wrote the displaced instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relocation {
    /// Nothing to write.
    Empty,
    /// Copied, with rip-relative displacements and branches rewritten.
    Direct,
    /// Re-encoded by iced-x86's `BlockEncoder`.
    Encoder,
}

/// Writes `insns` (instructions of `site`, decoded at their original
/// addresses) for address `addr`; returns the bytes, (original, new)
/// address pairs, and which way it was done (see the module doc).
pub(super) fn relocate(
    site: &PatchSite,
    insns: &[Instruction],
    addr: u64,
) -> Result<(Vec<u8>, AddressMap, Relocation), Refusal> {
    if insns.is_empty() {
        return Ok((Vec::new(), Vec::new(), Relocation::Empty));
    }
    if let Some((code, map)) = relocate_direct(site, insns, addr)? {
        return Ok((code, map, Relocation::Direct));
    }
    let (code, map) = relocate_with_encoder(insns, addr)?;
    Ok((code, map, Relocation::Encoder))
}

/// How one instruction is written by [`relocate_direct`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    /// Its bytes, unchanged.
    Copied,
    /// Its bytes with a new rip-relative displacement.
    RipRelative,
    /// A near `jmp rel32` or `jcc rel32` to its target.
    NearBranch,
}

/// The direct way: `None` when some instruction needs the encoder.
fn relocate_direct(
    site: &PatchSite,
    insns: &[Instruction],
    addr: u64,
) -> Result<Option<(Vec<u8>, AddressMap)>, Refusal> {
    let mut code = Vec::with_capacity(insns.len() * 8);
    let mut map = Vec::with_capacity(insns.len());
    let mut how = Vec::with_capacity(insns.len());
    for insn in insns {
        let new_ip = addr + code.len() as u64;
        let Some(moved) = write_moved(site, insn, new_ip, addr, &mut code)? else {
            return Ok(None);
        };
        map.push((insn.ip(), new_ip));
        how.push(moved);
    }
    Ok(still_equivalent(insns, &code, addr, &map, &how).then_some((code, map)))
}

/// Appends `insn`, moved to `new_ip`, to `code`; `None` (with `code` as
/// it was) when it is not one the direct way handles. `base` is where the
/// relocated block starts (named in an out-of-range refusal, as the
/// encoder's failure is).
fn write_moved(
    site: &PatchSite,
    insn: &Instruction,
    new_ip: u64,
    base: u64,
    code: &mut Vec<u8>,
) -> Result<Option<Moved>, Refusal> {
    let Some(bytes) = insn
        .ip()
        .checked_sub(site.start)
        .and_then(|off| site.original.get(off as usize..off as usize + insn.len()))
    else {
        return Ok(None);
    };
    let branch = (0..insn.op_count()).any(|i| {
        matches!(
            insn.op_kind(i),
            OpKind::NearBranch16
                | OpKind::NearBranch32
                | OpKind::NearBranch64
                | OpKind::FarBranch16
                | OpKind::FarBranch32
        )
    });
    if branch {
        // Only the plain encodings: no prefix (branch hints, `bnd`), no
        // `loop`/`jrcxz` (rel8 only).
        let opcode: &[u8] = match bytes {
            [0xeb, _] | [0xe9, _, _, _, _] => &[0xe9],
            [cc @ 0x70..=0x7f, _] => &[0x0f, 0x80 | (cc & 0x0f)],
            [0x0f, cc @ 0x80..=0x8f, _, _, _, _] => &[0x0f, *cc],
            _ => return Ok(None),
        };
        let end = new_ip + opcode.len() as u64 + 4;
        let Some(rel) = rel32(end, insn.near_branch_target()) else {
            // The encoder can still reach it (through an absolute jump).
            return Ok(None);
        };
        code.extend_from_slice(opcode);
        code.extend_from_slice(&rel.to_le_bytes());
        return Ok(Some(Moved::NearBranch));
    }
    if !insn.is_ip_rel_memory_operand() {
        code.extend_from_slice(bytes);
        return Ok(Some(Moved::Copied));
    }
    if insn.memory_base() != Register::RIP {
        // eip-relative (an address-size prefix): rare; let the encoder try.
        return Ok(None);
    }
    // Where the displacement is, from the decoder (it precedes any
    // immediate, whose size depends on the instruction).
    let mut decoder = Decoder::with_ip(64, bytes, insn.ip(), DecoderOptions::NONE);
    let again = decoder.decode();
    let offsets = decoder.get_constant_offsets(&again);
    let at = offsets.displacement_offset();
    if again.code() != insn.code()
        || again.len() != insn.len()
        || offsets.displacement_size() != 4
        || at + 4 > bytes.len()
    {
        return Ok(None);
    }
    let target = insn.ip_rel_memory_address();
    let disp = rel32(new_ip + insn.len() as u64, target).ok_or(Refusal::OutOfRange {
        what: "a displaced rip-relative operand",
        from: base,
        to: target,
    })?;
    let start = code.len();
    code.extend_from_slice(bytes);
    code[start + at..start + at + 4].copy_from_slice(&disp.to_le_bytes());
    Ok(Some(Moved::RipRelative))
}

/// Decodes the directly written `code` (at `addr`) again and checks that
/// each instruction is where `map` says and does what the original did:
/// the same operation and length, the same absolute rip-relative address,
/// the same branch target through a near branch, and nothing more.
fn still_equivalent(
    insns: &[Instruction],
    code: &[u8],
    addr: u64,
    map: &[(u64, u64)],
    how: &[Moved],
) -> bool {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    for ((orig, &(_, new_ip)), moved) in insns.iter().zip(map).zip(how) {
        let new = decoder.decode();
        if new.is_invalid() || new.ip() != new_ip {
            return false;
        }
        let same = match moved {
            Moved::Copied => new.code() == orig.code() && new.len() == orig.len(),
            Moved::RipRelative => {
                new.code() == orig.code()
                    && new.len() == orig.len()
                    && new.memory_base() == Register::RIP
                    && new.ip_rel_memory_address() == orig.ip_rel_memory_address()
            }
            Moved::NearBranch => {
                new.mnemonic() == orig.mnemonic()
                    && new.condition_code() == orig.condition_code()
                    && new.op_count() == 1
                    && new.op0_kind() == OpKind::NearBranch64
                    && new.near_branch_target() == orig.near_branch_target()
            }
        };
        if !same {
            return false;
        }
    }
    decoder.position() == code.len()
}

/// The general way: iced-x86's `BlockEncoder` re-encodes `insns` at `addr`.
pub(super) fn relocate_with_encoder(
    insns: &[Instruction],
    addr: u64,
) -> Result<(Vec<u8>, AddressMap), Refusal> {
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
    // An instruction the encoder had to rewrite into several (a `jrcxz` or
    // `loop` out of rel8 reach, a branch out of rel32 reach through a
    // `jmp [rip+slot]`) has no address of its own in the result (the offset
    // is u32::MAX), and its slot is placed after the block, where the stub
    // would fall through into it: refuse the site instead.
    let mut map = Vec::with_capacity(insns.len());
    for (insn, &off) in insns.iter().zip(&result.new_instruction_offsets) {
        if off == u32::MAX {
            return Err(Refusal::NotRelocatable {
                addr: insn.ip(),
                why: "a branch that cannot reach its target from the stub as one instruction",
            });
        }
        map.push((insn.ip(), addr + u64::from(off)));
    }
    Ok((result.code_buffer, map))
}
