//! Finding an execution point inside a hot loop without a ptrace stop per
//! pass: a conditional breakpoint compiled into the replayed program.
//!
//! Replay finds an execution point by stopping each time the thread is
//! about to execute the point's instruction and comparing its state
//! ([`Session::run_to_point`]). A point deep inside a loop that turns
//! millions of times (a compute loop waiting for the very signal the
//! recorder held back) costs a stop per turn, about 40 µs each on a virtual
//! machine, and without a hardware branch counter nothing counts turns for
//! free. Here, in the replay only and only while the thread searches, the
//! instruction(s) at the point's ip are replaced by a `jmp` to a trampoline
//! in a page mapped near them. The trampoline counts passes in its own
//! memory and traps (`int3`) only when the sixteen general-purpose registers
//! equal the point's. At the trap the tracer puts the thread back at the
//! point's ip and checks the whole state as before (registers, flags,
//! segment bases, digest); on a mismatch the thread goes on through the
//! displaced instructions, relocated, and jumps back.
//!
//! ```text
//!  site:   jmp tramp            page (rwx, anonymous, ~1 GiB below the site)
//!          (rest of the            +0x00 saved rax | +0x08 saved flags
//!           displaced bytes:       +0x10 passes
//!           int3)                  +0x20 rax..r15 of the point
//!                                  +0x100 tramp: save rax and flags (lahf, seto)
//!                                         passes += 1
//!                                         a register differs? -> miss
//!                                         restore; int3        (the tracer checks)
//!                                  miss:  restore rax and flags
//!                                  resume: displaced instructions; jmp site + len
//! ```
//!
//! The search switches to the filter after [`FILTER_AFTER`] passes, with
//! the thread stopped at the site by the debug-register breakpoint (a
//! signal stop, where the page's `mmap` can be injected); it goes on at the
//! relocated copy of the site's instruction, so that pass is not counted
//! twice. No stack memory is touched (the flags go through `ah`/`al` into
//! the page); the page is anonymous, so outside an execution point's
//! digest, and far below the site, where neither the heap nor the kernel's
//! top-down mmap placement reaches; it and the patched bytes are removed
//! before the event goes on. The pass count becomes the event's hit count,
//! exactly as the debug-register search counts; a replay of a verified
//! trace checks it against the stored one. The search keeps its time
//! limit: the tracer polls for the thread's stop and interrupts it at the
//! deadline.
//!
//! Not used (the stop-per-pass search goes on) when a displaced instruction
//! calls, traps, makes a syscall, or branches into the displaced bytes, or
//! follows a jump or return (it is reached only by a branch), when a direct
//! branch in the code around the site (up to 256 bytes either side, within
//! its page) targets the inside of the displaced bytes ([`branch_into`]),
//! when the site is in writable memory (generated code, which the digest
//! may cover) or in the fixed page, or when no free page is within reach.
//! Known limit: code farther away (or an indirect jump) that jumps into
//! the middle of the displaced bytes while the patch is in place would
//! execute the `jmp`'s displacement (or an `int3`); this shows as a
//! divergence, never as a false match, since a match is only ever declared
//! by the tracer's full comparison. (Before the neighbourhood check, a
//! point on the `jmp` closing `crossbeam_utils::Backoff::spin`'s loop,
//! right after `pause`, diverged this way: the loop's `je` lands on the
//! instruction after it, which the patch covered.)

use std::time::{Duration, Instant};

use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderOptions, FlowControl, Instruction,
    InstructionBlock, MemoryOperand, Register,
};
use tracing::{debug, trace};

use super::{perr, Session, State, RESUME_FLAG};
use crate::replayer::ReplayError;
use crate::tracee::inject_via_fixed_page;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{ExecPoint, Tid};

/// Passes through the point's ip that the stop-per-pass search makes before
/// it installs the filter (most points are found within a few passes, where
/// the filter's setup would cost more than it saves).
pub(super) const FILTER_AFTER: u64 = 64;

/// Bytes of code before and after a site searched for branches into its
/// displaced bytes ([`branch_into`]).
const NEIGHBOURHOOD: u64 = 256;

/// Offsets in the trampoline page.
const SAVED_RAX: u64 = 0x00;
const SAVED_FLAGS: u64 = 0x08;
const PASSES: u64 = 0x10;
const REGS: u64 = 0x20;
const CODE: u64 = 0x100;
const PAGE: u64 = 4096;

/// Length of `jmp rel32`.
const JMP_LEN: u64 = 5;

/// The point's general-purpose registers, in `ExecPoint::regs` order.
const GPRS: [Register; 16] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::RBP,
    Register::RSP,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// Why the filter is not used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal(String);

/// A trampoline built for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Trampoline {
    /// The page's address.
    pub page: u64,
    /// The page's contents (data, then code).
    pub bytes: Vec<u8>,
    /// The bytes to write at the site.
    pub patch: Vec<u8>,
    /// The instruction pointer right after the `int3`.
    pub trap_ip: u64,
    /// The first relocated displaced instruction (where a thread stopped at
    /// the site goes on without counting a pass again).
    pub resume_ip: u64,
}

/// Decodes the whole instructions covering at least a `jmp rel32` at `site`.
pub(super) fn displaced(code: &[u8], site: u64) -> Result<Vec<Instruction>, Refusal> {
    let mut decoder = Decoder::with_ip(64, code, site, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut len = 0;
    while len < JMP_LEN {
        if !decoder.can_decode() {
            return Err(Refusal("the site's code ends too soon".into()));
        }
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Err(Refusal(format!("undecodable code at {:#x}", insn.ip())));
        }
        match insn.flow_control() {
            FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::Interrupt
            | FlowControl::Exception
            | FlowControl::XbeginXabortXend => {
                return Err(Refusal(format!(
                    "a displaced instruction at {:#x} calls or traps",
                    insn.ip()
                )))
            }
            _ => {}
        }
        if matches!(insn.code(), Code::Syscall | Code::Sysenter) {
            return Err(Refusal("a displaced syscall".into()));
        }
        if let Some(prev) = out.last().filter(|p: &&Instruction| ends_flow(p)) {
            // Reached only by a branch from elsewhere, into the patch.
            return Err(Refusal(format!(
                "the displaced instruction at {:#x} follows a jump or return at {:#x}",
                insn.ip(),
                prev.ip()
            )));
        }
        len += insn.len() as u64;
        out.push(insn);
    }
    let branches_in = |i: &Instruction| {
        // jcc, jmp, loop, jrcxz (near_branch_target is 0 for indirect ones).
        matches!(
            i.flow_control(),
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
        ) && (site..site + len).contains(&i.near_branch_target())
    };
    if let Some(i) = out.iter().find(|i| branches_in(i)) {
        return Err(Refusal(format!(
            "a displaced branch at {:#x} targets the displaced bytes",
            i.ip()
        )));
    }
    Ok(out)
}

/// Whether execution never falls through `i` (a jump, a return).
fn ends_flow(i: &Instruction) -> bool {
    matches!(
        i.flow_control(),
        FlowControl::UnconditionalBranch | FlowControl::IndirectBranch | FlowControl::Return
    )
}

/// A direct branch near `site` that targets the inside of the displaced
/// bytes `site + 1 .. site + len`, where the patch's `jmp` would be
/// executed from its middle: found in `after` (the code from `site` on)
/// and in `before` (the bytes just before `site`), decoded from each start
/// offset whose instructions end exactly at `site` (x86 decoding falls into
/// step within a few instructions, so those are the real ones). Best
/// effort: a branch from farther away is not seen (the module comment's
/// known limit).
pub(super) fn branch_into(before: &[u8], after: &[u8], site: u64, len: u64) -> Option<u64> {
    let inside = |i: &Instruction| {
        matches!(
            i.flow_control(),
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
        ) && (site + 1..site + len).contains(&i.near_branch_target())
    };
    let mut d = Decoder::with_ip(64, after, site, DecoderOptions::NONE);
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            break;
        }
        if inside(&i) {
            return Some(i.ip());
        }
    }
    let base = site - before.len() as u64;
    for start in 0..before.len() {
        let mut d = Decoder::with_ip(
            64,
            &before[start..],
            base + start as u64,
            DecoderOptions::NONE,
        );
        let mut found = None;
        let mut synced = false;
        while d.can_decode() {
            let i = d.decode();
            if i.is_invalid() {
                break;
            }
            if found.is_none() && inside(&i) {
                found = Some(i.ip());
            }
            if i.next_ip() == site {
                synced = true;
                break;
            }
        }
        if synced && found.is_some() {
            return found;
        }
    }
    None
}

/// Builds the trampoline for `site`, whose displaced instructions are
/// `moved`, in the page at `page`, trapping when the general-purpose
/// registers equal `regs`.
pub(super) fn build(
    page: u64,
    site: u64,
    moved: &[Instruction],
    regs: [u64; 16],
) -> Result<Trampoline, Refusal> {
    let bad = |e: iced_x86::IcedError| Refusal(format!("encoding the trampoline: {e}"));
    let at = |off: u64| MemoryOperand::with_base_displ(Register::RIP, (page + off) as i64);
    let save_rax = Instruction::with2(Code::Mov_rm64_r64, at(SAVED_RAX), Register::RAX);
    let load_rax = Instruction::with2(Code::Mov_r64_rm64, Register::RAX, at(SAVED_RAX));
    let (save_rax, load_rax) = (save_rax.map_err(bad)?, load_rax.map_err(bad)?);
    // Labels are fake original ips, in kernel space, so that no branch of
    // the displaced code can mean one of them.
    const MISS: u64 = 0xffff_8000_0000_0000;
    let mut generated = vec![
        save_rax,
        Instruction::with(Code::Lahf),
        Instruction::with1(Code::Seto_rm8, Register::AL).map_err(bad)?,
        Instruction::with2(Code::Mov_rm16_r16, at(SAVED_FLAGS), Register::AX).map_err(bad)?,
        Instruction::with2(Code::Add_rm64_imm8, at(PASSES), 1i32).map_err(bad)?,
        load_rax,
    ];
    let miss = Instruction::with_branch(Code::Jne_rel32_64, MISS).map_err(bad)?;
    for (k, reg) in GPRS.iter().enumerate() {
        let off = REGS + 8 * k as u64;
        generated.push(Instruction::with2(Code::Cmp_r64_rm64, *reg, at(off)).map_err(bad)?);
        generated.push(miss);
    }
    // (`lahf`/`sahf` in 64-bit mode need CPUID 0x8000_0001 ECX bit 0, which
    // every x86-64 CPU since 2005 has.)
    // Restoring rax and the flags: `add al, 0x7f` sets OF exactly when al
    // (the saved OF) is 1; `sahf` restores SF, ZF, AF, PF and CF from ah.
    let restore = [
        save_rax,
        Instruction::with2(Code::Mov_r16_rm16, Register::AX, at(SAVED_FLAGS)).map_err(bad)?,
        Instruction::with2(Code::Add_rm8_imm8, Register::AL, 0x7fi32).map_err(bad)?,
        Instruction::with(Code::Sahf),
        load_rax,
    ];
    generated.extend_from_slice(&restore);
    let trap_index = generated.len();
    generated.push(Instruction::with(Code::Int3));
    let miss_index = generated.len();
    generated.extend_from_slice(&restore);
    for (k, insn) in generated.iter_mut().enumerate() {
        insn.set_ip(MISS + 16 * (k as u64 + 1));
    }
    generated[miss_index].set_ip(MISS);

    let resume_index = generated.len();
    let mut code = generated;
    code.extend_from_slice(moved);
    let len: u64 = moved.iter().map(|i| i.len() as u64).sum();
    let mut back = Instruction::with_branch(Code::Jmp_rel32_64, site + len).map_err(bad)?;
    back.set_ip(MISS - 16);
    code.push(back);

    let encoded = BlockEncoder::encode(
        64,
        InstructionBlock::new(&code, page + CODE),
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )
    .map_err(|e| Refusal(format!("encoding the trampoline: {e}")))?;
    if CODE as usize + encoded.code_buffer.len() > PAGE as usize {
        return Err(Refusal("the trampoline does not fit its page".into()));
    }
    let mut bytes = vec![0u8; CODE as usize];
    for (k, v) in regs.iter().enumerate() {
        let off = (REGS + 8 * k as u64) as usize;
        bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&encoded.code_buffer);
    let offset = |k: usize| u64::from(encoded.new_instruction_offsets[k]);
    let rel = (page + CODE).wrapping_sub(site + JMP_LEN) as i64;
    let rel = i32::try_from(rel).map_err(|_| Refusal("the page is out of jump range".into()))?;
    let mut patch = vec![0xe9];
    patch.extend_from_slice(&rel.to_le_bytes());
    patch.resize(len.max(JMP_LEN) as usize, 0xcc);
    Ok(Trampoline {
        page,
        bytes,
        patch,
        trap_ip: page + CODE + offset(trap_index) + 1,
        resume_ip: page + CODE + offset(resume_index),
    })
}

impl Session {
    /// Resumes `tid` and waits for its next stop, discarding signals the
    /// replay causes (as `resume_to_stop` does), but polling, so that a
    /// filtered search that never traps ends at `deadline`: then the thread
    /// is interrupted and `None` returned.
    fn resume_until(
        &mut self,
        tid: Tid,
        deadline: Instant,
    ) -> Result<Option<(i32, WaitEvent)>, ReplayError> {
        const MAX_NAP: Duration = Duration::from_millis(10);
        let real = self.task(tid)?.real;
        ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
        let mut nap = Duration::from_micros(20);
        loop {
            match ptrace::wait_tid_nohang(real).map_err(perr("waitpid", real))? {
                Some(WaitEvent::Signal { signo, .. })
                    if signo != libc::SIGTRAP && !super::is_synchronous(signo) =>
                {
                    trace!(tid, signo, "discarding a signal the replay caused");
                    ptrace::cont(real, 0).map_err(perr("PTRACE_CONT", real))?;
                }
                Some(ev) => {
                    self.sync_loaded_queue(tid, real)?;
                    return Ok(Some((real, ev)));
                }
                None if Instant::now() >= deadline => {
                    ptrace::interrupt(real).map_err(perr("PTRACE_INTERRUPT", real))?;
                    ptrace::wait_tid(real).map_err(perr("waitpid", real))?;
                    self.sync_loaded_queue(tid, real)?;
                    return Ok(None);
                }
                None => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(MAX_NAP);
                }
            }
        }
    }
}

/// Whether the mapping holding `addr` in `maps` (the text of
/// `/proc/PID/maps`) is writable; unknown counts as writable.
pub(super) fn mapping_is_writable(maps: &str, addr: u64) -> bool {
    maps.lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            let (a, b) = parts.next()?.split_once('-')?;
            let (a, b) = (
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            );
            (a..b)
                .contains(&addr)
                .then(|| parts.next().map(|p| p.contains('w')))?
        })
        .unwrap_or(true)
}

/// Free page-aligned addresses within `jmp rel32` reach of `site`, at least
/// 16 MiB from every mapping in `maps` (the text of `/proc/PID/maps`), best
/// first: 1 GiB below the site, where neither the heap (above the program)
/// nor the kernel's top-down placement of new mappings comes soon, then
/// other distances below, then above.
pub(super) fn free_pages_near(maps: &str, site: u64) -> Vec<u64> {
    const MARGIN: u64 = 16 << 20;
    const USER_END: u64 = 0x7fff_ffff_f000;
    let ranges: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    let free = |p: u64| {
        p >= MARGIN
            && p + PAGE + MARGIN <= USER_END
            && ranges
                .iter()
                .all(|&(a, b)| p + PAGE + MARGIN <= a || p >= b + MARGIN)
    };
    let step = 1u64 << 28;
    let base = site & !(PAGE - 1);
    [4u64, 5, 6, 3, 7, 2, 1]
        .iter()
        .filter_map(|k| base.checked_sub(k * step))
        .chain((1..=7u64).map(|k| base + k * step))
        .filter(|&p| free(p))
        .collect()
}

impl Session {
    /// Goes on with a search for `point` through the in-tracee filter. The
    /// thread is stopped at the point's ip (a breakpoint hit that did not
    /// match) after `passes` passes, this one included. Traps whose
    /// registers match but whose state does not (a spin loop changing only
    /// memory) end the search with a divergence after `deadline`, as the
    /// stop-per-pass search does. `Ok(false)`: the filter cannot be used
    /// here, nothing was changed.
    pub(super) fn filtered_search(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        passes: u64,
        deadline: Instant,
    ) -> Result<bool, ReplayError> {
        let real = self.task(tid)?.real;
        let tramp = match self.prepare_filter(real, point) {
            Ok(t) => t,
            Err(Refusal(why)) => {
                debug!(tid, ip = point.ip, %why, "no in-tracee filter: searching stop by stop");
                return Ok(false);
            }
        };
        let mem = RemoteMem::new(real);
        let original = mem
            .read_vec(point.ip, tramp.patch.len())
            .map_err(perr("reading the point's code", real))?;
        let mapped = inject_via_fixed_page(
            real,
            libc::SYS_mmap,
            crate::tracee::anon_mmap_args(
                tramp.page,
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            ),
        )
        .map_err(perr("mapping the filter's page", real))?;
        if mapped as u64 != tramp.page {
            debug!(
                tid,
                mapped, "no in-tracee filter: its page could not be mapped"
            );
            return Ok(false);
        }
        let mut bytes = tramp.bytes.clone();
        bytes[PASSES as usize..PASSES as usize + 8].copy_from_slice(&passes.to_le_bytes());
        mem.write(tramp.page, &bytes)
            .and_then(|()| mem.write(point.ip, &tramp.patch))
            .map_err(perr("writing the filter", real))?;
        self.point_breakpoint(real, None)
            .map_err(perr("clearing a breakpoint", real))?;
        // This pass was already compared: go on past it without counting it again.
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        regs.rip = tramp.resume_ip;
        regs.eflags &= !RESUME_FLAG;
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        self.set_state(tid, State::Idle { deliver: 0 });
        trace!(
            tid,
            ip = point.ip,
            page = tramp.page,
            passes,
            "in-tracee filter installed"
        );

        let result = self.run_filtered(tid, point, &tramp, deadline);
        // Take the filter out whatever happened (a dead thread excepted).
        let removed = mem.write(point.ip, &original).and_then(|()| {
            inject_via_fixed_page(real, libc::SYS_munmap, [tramp.page, PAGE, 0, 0, 0, 0])
                .map(|_| ())
        });
        match (result, removed) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(perr("removing the filter", real)(e).into()),
            (Ok(()), Ok(())) => Ok(true),
        }
    }

    /// Checks the site and finds a page for the trampoline.
    fn prepare_filter(&self, real: i32, point: &ExecPoint) -> Result<Trampoline, Refusal> {
        let site = point.ip;
        if (rrtest_abi::FIXED_PAGE_ADDR..rrtest_abi::FIXED_PAGE_ADDR + PAGE).contains(&site) {
            return Err(Refusal("the site is in the fixed page".into()));
        }
        let code = RemoteMem::new(real)
            .read_vec(site, 32)
            .or_else(|_| RemoteMem::new(real).read_vec(site, 16))
            .map_err(|e| Refusal(format!("reading the site: {e}")))?;
        let moved = displaced(&code, site)?;
        let len: u64 = moved.iter().map(|i| i.len() as u64).sum();
        // The code around the site, as far as it is readable (its page).
        let mem = RemoteMem::new(real);
        let back = NEIGHBOURHOOD.min(site % PAGE);
        let before = mem.read_vec(site - back, back as usize).unwrap_or_default();
        let ahead = NEIGHBOURHOOD.min(PAGE - site % PAGE).max(code.len() as u64);
        let after = mem.read_vec(site, ahead as usize).unwrap_or(code);
        if let Some(at) = branch_into(&before, &after, site, len) {
            return Err(Refusal(format!(
                "a branch at {at:#x} targets the inside of the displaced bytes"
            )));
        }
        let maps = std::fs::read_to_string(format!("/proc/{real}/maps"))
            .map_err(|e| Refusal(format!("reading the maps: {e}")))?;
        if mapping_is_writable(&maps, site) {
            // Code in writable memory (generated code) may be in the digest.
            return Err(Refusal("the site is in writable memory".into()));
        }
        let mut regs = [0u64; 16];
        regs.copy_from_slice(&point.regs[..16]);
        // A farther page may fail to reach a displaced rip-relative operand.
        let mut last = Refusal("no free page in reach".into());
        for page in free_pages_near(&maps, site) {
            match build(page, site, &moved, regs) {
                Ok(t) => return Ok(t),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Runs the thread through the installed filter to the point; leaves it
    /// stopped at the point's ip with the point's state.
    fn run_filtered(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        tramp: &Trampoline,
        deadline: Instant,
    ) -> Result<(), ReplayError> {
        let mut traps = 0u64;
        loop {
            let Some((real, ev)) = self.resume_until(tid, deadline)? else {
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("registers {:x?} at ip {:#x}", point.regs, point.ip),
                    format!(
                        "no pass through ip with them until the search's time limit \
                         ({traps} with them but another state)"
                    ),
                ));
            };
            let mut regs: Regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
            if !super::trapped_at(&ev, &regs, tramp.trap_ip) {
                let seen = self.describe_stop(real, &ev);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("reaching ip {:#x}", point.ip),
                    seen,
                ));
            }
            traps += 1;
            let mut pass = [0u8; 8];
            RemoteMem::new(real)
                .read_exact(tramp.page + PASSES, &mut pass)
                .map_err(perr("reading the filter's count", real))?;
            let hits = u64::from_le_bytes(pass).saturating_sub(1);
            regs.rip = point.ip;
            if crate::tracee::point_regs(&regs) == point.regs
                && self.buffered_drained(tid)
                && crate::tracee::exec_point(real, &regs)
                    .map_err(perr("reading an execution point", real))?
                    == *point
            {
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                self.set_state(tid, State::Idle { deliver: 0 });
                trace!(tid, hits, traps, "reached the execution point (filtered)");
                self.point_hits.push([self.index, hits]);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("registers {:x?} at ip {:#x}", point.regs, point.ip),
                    format!(
                        "{traps} passes through ip with them but another state (digest, \
                         flags or segment bases), {hits} passes in all, until the search's time \
                         limit"
                    ),
                ));
            }
            // The registers matched, the rest did not: go on.
            regs.rip = tramp.resume_ip;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            self.set_state(tid, State::Idle { deliver: 0 });
        }
    }
}

impl Session {
    /// After a filtered search in a replay of a verified trace: the hit count
    /// found must be the one the verification stored.
    pub(super) fn check_known_hits(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        known: Option<u64>,
    ) -> Result<(), ReplayError> {
        let found = self.point_hits.last().map(|&[_, hits]| hits);
        match known {
            Some(k) if found != Some(k) => Err(self.diverged(
                tid,
                "execution point",
                format!("reaching ip {:#x} after {k} hits", point.ip),
                format!("its state after {} hits", found.unwrap_or(0)),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::Mnemonic;

    const SITE: u64 = 0x5555_5555_541f;

    fn decode_all(code: &[u8], ip: u64) -> Vec<Instruction> {
        let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
        let mut out = Vec::new();
        while d.can_decode() {
            out.push(d.decode());
        }
        out
    }

    #[test]
    fn displaces_whole_instructions_covering_a_jump() {
        // add rsi, 1 ; mov eax, [rip+0x2c2b] ; test eax, eax
        let code = [
            0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0,
        ];
        let moved = displaced(&code, SITE).expect("displaceable");
        let mnemonics: Vec<_> = moved.iter().map(|i| i.mnemonic()).collect();
        assert_eq!(mnemonics, [Mnemonic::Add, Mnemonic::Mov]);
        assert_eq!(moved[1].ip_rel_memory_address(), SITE + 10 + 0x2c2b);
    }

    #[test]
    fn refuses_calls_syscalls_and_branches_into_the_displaced_bytes() {
        let call = [0xe8, 0, 0, 0, 0, 0x90];
        assert!(displaced(&call, SITE).is_err());
        let syscall = [0x0f, 0x05, 0x90, 0x90, 0x90, 0x90];
        assert!(displaced(&syscall, SITE).is_err());
        // inc rax ; jne back to the site: a loop smaller than the jump.
        let tight = [0x48, 0xff, 0xc0, 0x75, 0xfb, 0x90];
        assert!(displaced(&tight, SITE).is_err());
        // nop ; je to the third instruction, also displaced.
        let inner = [0x90, 0x74, 0x01, 0x90, 0x48, 0xff, 0xc0];
        assert!(displaced(&inner, SITE).is_err());
        // A branch out of the displaced bytes is fine.
        let out = [0x48, 0xff, 0xc0, 0x75, 0x10, 0x90];
        assert!(displaced(&out, SITE).is_ok());
        assert!(
            displaced(&[0x48, 0x83], SITE).is_err(),
            "code ends too soon"
        );
    }

    #[test]
    fn refuses_a_site_that_nearby_code_branches_into() {
        // crossbeam_utils::Backoff::spin (a debug build): test rax, 1 ;
        // je +4 ; pause ; jmp back (the site) ; mov rdi, [rsp+8] ;
        // call [rip+..]. The je lands on the mov, inside the patch.
        let before = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x04, 0xf3, 0x90];
        let after = [
            0xeb, 0xe7, 0x48, 0x8b, 0x7c, 0x24, 0x08, 0xff, 0x15, 0xf6, 0xa8, 0x11, 0x00,
        ];
        // The mov follows a jmp: reached only by a branch.
        assert!(displaced(&after, SITE).is_err());
        // And the je before the site is found.
        assert_eq!(branch_into(&before, &after, SITE, 7), Some(SITE - 4));
        // One that jumps to the site itself, or past the patch, is fine.
        let to_site = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x02, 0xf3, 0x90];
        assert_eq!(branch_into(&to_site, &after, SITE, 7), None);
        let past = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x09, 0xf3, 0x90];
        assert_eq!(branch_into(&past, &after, SITE, 7), None);
        // A branch after the site back into it.
        let code = [
            0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0, 0x75, 0xf6,
        ];
        assert_eq!(branch_into(&[], &code, SITE, 10), Some(SITE + 12));
    }

    #[test]
    fn trampoline_counts_compares_traps_and_returns() {
        let code = [
            0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0,
        ];
        let moved = displaced(&code, SITE).expect("displaceable");
        let page = (SITE & !0xfff) - (7 << 28);
        let regs: [u64; 16] = std::array::from_fn(|k| 0x1000 + k as u64);
        let t = build(page, SITE, &moved, regs).expect("built");

        // The site jumps to the code; the rest of the displaced bytes trap.
        let patch = decode_all(&t.patch, SITE);
        assert_eq!(patch[0].mnemonic(), Mnemonic::Jmp);
        assert_eq!(patch[0].near_branch_target(), page + CODE);
        assert_eq!(t.patch.len(), 10);
        assert!(t.patch[5..].iter().all(|&b| b == 0xcc));

        // The data: the point's registers.
        for (k, v) in regs.iter().enumerate() {
            let off = (REGS + 8 * k as u64) as usize;
            assert_eq!(t.bytes[off..off + 8], v.to_le_bytes());
        }
        let insns = decode_all(&t.bytes[CODE as usize..], page + CODE);
        let m: Vec<_> = insns.iter().map(|i| i.mnemonic()).collect();
        // Save rax and the flags, count the pass.
        assert_eq!(
            m[..6],
            [
                Mnemonic::Mov,
                Mnemonic::Lahf,
                Mnemonic::Seto,
                Mnemonic::Mov,
                Mnemonic::Add,
                Mnemonic::Mov
            ]
        );
        assert_eq!(insns[0].ip_rel_memory_address(), page + SAVED_RAX);
        assert_eq!(insns[4].ip_rel_memory_address(), page + PASSES);
        // Sixteen compares, each with a branch to the miss path.
        let cmps: Vec<_> = insns
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Cmp)
            .collect();
        assert_eq!(cmps.len(), 16);
        for (k, c) in cmps.iter().enumerate() {
            assert_eq!(c.op0_register(), GPRS[k]);
            assert_eq!(c.ip_rel_memory_address(), page + REGS + 8 * k as u64);
        }
        let trap = insns
            .iter()
            .find(|i| i.mnemonic() == Mnemonic::Int3)
            .expect("an int3");
        assert_eq!(trap.ip() + 1, t.trap_ip);
        let miss_target = insns
            .iter()
            .find(|i| i.mnemonic() == Mnemonic::Jne)
            .expect("a jne")
            .near_branch_target();
        assert_eq!(miss_target, t.trap_ip, "the miss path follows the int3");
        // The miss path restores the flags; then the displaced code, with
        // its rip-relative operand still reaching the same address, and
        // the jump back.
        let resume = insns
            .iter()
            .position(|i| i.ip() == t.resume_ip)
            .expect("resume ip on an instruction");
        assert_eq!(insns[resume - 2].mnemonic(), Mnemonic::Sahf);
        assert_eq!(insns[resume].mnemonic(), Mnemonic::Add);
        assert_eq!(
            insns[resume + 1].ip_rel_memory_address(),
            SITE + 10 + 0x2c2b
        );
        assert_eq!(insns[resume + 2].mnemonic(), Mnemonic::Jmp);
        assert_eq!(insns[resume + 2].near_branch_target(), SITE + 10);
    }

    #[test]
    fn free_pages_are_far_from_every_mapping_and_within_reach() {
        let maps = "555555554000-555555559000 r-xp 00000000 08:01 1 /bin/x\n\
                    7ffff7dd0000-7ffff7ff0000 r-xp 00000000 08:01 2 /lib/libc.so.6\n";
        let pages = free_pages_near(maps, SITE);
        assert_eq!(pages[0], (SITE & !0xfff) - (1 << 30), "1 GiB below first");
        for &page in &pages {
            assert_eq!(page % PAGE, 0);
            assert!(
                page.abs_diff(SITE) < (1 << 31) - PAGE,
                "reachable with rel32"
            );
            assert!(page + PAGE + (16 << 20) <= 0x5555_5555_4000 || page >= 0x5555_5655_9000);
        }
        // A mapping where the first choice would be: not offered.
        let blocked = format!(
            "{:x}-{:x} rw-p 00000000 00:00 0\n{maps}",
            pages[0] - PAGE,
            pages[0] + 2 * PAGE
        );
        let others = free_pages_near(&blocked, SITE);
        assert!(!others.is_empty() && !others.contains(&pages[0]));
        // Nowhere in reach.
        assert!(free_pages_near("0-7ffffffff000 rw-p 0 0:0 0\n", SITE).is_empty());
        // A site in a shared library: below the libraries, above the program.
        let lib_site = 0x7fff_f7de_1234;
        let pages = free_pages_near(maps, lib_site);
        assert_eq!(pages[0], 0x7fff_b7de_1000);
        assert!(pages.iter().all(|p| p.abs_diff(lib_site) < (1 << 31)));
    }

    #[test]
    fn sites_in_writable_or_unknown_memory_are_refused() {
        let maps = "555555554000-555555559000 r-xp 00000000 08:01 1 /bin/x\n\
                    555555559000-55555555a000 rwxp 00000000 00:00 0 [heap]\n";
        assert!(!mapping_is_writable(maps, 0x5555_5555_5000));
        assert!(mapping_is_writable(maps, 0x5555_5555_9100));
        assert!(mapping_is_writable(maps, 0x1000));
    }
}
