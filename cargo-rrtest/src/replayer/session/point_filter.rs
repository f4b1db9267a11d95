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
//!                                         a word differs? -> miss
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
//! before the event goes on. A point's words are its memory at the point,
//! which the thread may map only on its way there (a buffer it grows): a
//! pass in the point's registers whose word load faults is a miss (the
//! tracer moves it to the miss path; the fault is not delivered). The pass
//! count becomes the event's hit count, exactly as the debug-register
//! search counts; a replay of a verified trace checks it against the
//! stored one. The search keeps its time limit: the tracer polls for the
//! thread's stop and interrupts it at the deadline.
//!
//! Where the patch goes and what it displaces is `tracee::filter_site`'s
//! choice: at the point's ip, or, where a branch lands inside the bytes a
//! patch there would cover, on the straight-line instructions just before
//! it (a lead-in, run in the trampoline before the comparison). A displaced
//! direct call is emulated: the original return address pushed, a jump to
//! the callee.
//!
//! Not used (the stop-per-pass search goes on) when a displaced instruction
//! traps, makes a syscall or another kind of call, or branches into the
//! patched bytes, or follows a jump or return (it is reached only by a
//! branch), when a direct branch in the code around the site (up to 256
//! bytes either side) targets the inside of the patch,
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
    BlockEncoder, BlockEncoderOptions, Code, Instruction, InstructionBlock, MemoryOperand, Register,
};
use tracing::{debug, trace};

use super::{perr, Session, State, RESUME_FLAG};
use crate::replayer::ReplayError;
use crate::tracee::filter_site::{self, Refusal, Site, JMP_LEN};
use crate::tracee::inject_via_fixed_page;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{ExecPoint, PointWords, Tid};

/// Passes through the point's ip that the stop-per-pass search makes before
/// it installs the filter (most points are found within a few passes, where
/// the filter's setup would cost more than it saves).
pub(super) const FILTER_AFTER: u64 = 64;

/// Offsets in the trampoline page.
const SAVED_RAX: u64 = 0x00;
const SAVED_FLAGS: u64 = 0x08;
const PASSES: u64 = 0x10;
const REGS: u64 = 0x20;
/// The point's memory words' values ([`rrtest_trace::MAX_POINT_WORDS`]).
const WORDS: u64 = REGS + 8 * 16;
const CODE: u64 = 0x100;
const _: () = assert!(WORDS + 8 * rrtest_trace::MAX_POINT_WORDS as u64 <= CODE);
const PAGE: u64 = 4096;

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

/// A trampoline built for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Trampoline {
    /// The page's address.
    pub page: u64,
    /// The page's contents (data, then code).
    pub bytes: Vec<u8>,
    /// Where the patch goes (the point's ip, or its lead-in's start).
    pub patch_at: u64,
    /// The bytes to write there.
    pub patch: Vec<u8>,
    /// The instruction pointer right after the `int3`.
    pub trap_ip: u64,
    /// The first relocated displaced instruction (where a thread stopped at
    /// the site goes on without counting a pass again).
    pub resume_ip: u64,
    /// The loads of the point's memory words, one per word: a pass whose
    /// registers match may reach one before the word's page is mapped
    /// (the point's words are the memory at the point, which the thread
    /// may map on its way there). The load faults; the tracer takes it for
    /// a miss ([`Self::miss_ip`], rax as the page saved it).
    pub word_loads: Vec<u64>,
    /// The miss path: restores rax and the flags and runs on.
    pub miss_ip: u64,
}

/// Builds the trampoline for `site` in the page at `page`, trapping when
/// the general-purpose registers equal `regs` and the memory words
/// `words` hold their values.
pub(super) fn build(
    page: u64,
    site: &Site,
    regs: [u64; 16],
    words: &PointWords,
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
    // Each word: loaded through rax, compared with its value in the page,
    // rax reloaded (`mov` keeps the flags) before the branch, so that the
    // miss path restores the program's rax.
    let mut load_indices = Vec::new();
    for (k, &(addr, _)) in words.as_slice().iter().enumerate() {
        let off = WORDS + 8 * k as u64;
        let word = MemoryOperand::with_base_displ(Register::RAX, 0);
        load_indices.push(generated.len() + 1);
        generated.extend([
            Instruction::with2(Code::Mov_r64_imm64, Register::RAX, addr).map_err(bad)?,
            Instruction::with2(Code::Mov_r64_rm64, Register::RAX, word).map_err(bad)?,
            Instruction::with2(Code::Cmp_r64_rm64, Register::RAX, at(off)).map_err(bad)?,
            load_rax,
            miss,
        ]);
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

    // The lead-in (at its own ips, so that its rip-relative operands keep
    // their addresses), the comparison, then the displaced instructions
    // and the jump back.
    let mut code = site.lead_in.clone();
    let trap_index = code.len() + trap_index;
    let miss_index = code.len() + miss_index;
    let load_indices: Vec<usize> = load_indices.iter().map(|k| code.len() + k).collect();
    code.extend_from_slice(&generated);
    let resume_index = code.len();
    let mut fake = MISS - 16;
    for insn in &site.moved {
        if site.ends_in_call() && insn.ip() == site.moved[site.moved.len() - 1].ip() {
            code.extend(emulated_call(insn, &mut fake).map_err(bad)?);
        } else {
            code.push(*insn);
        }
    }
    if !site.ends_in_call() {
        let mut back = Instruction::with_branch(Code::Jmp_rel32_64, site.end()).map_err(bad)?;
        back.set_ip(fake);
        code.push(back);
    }

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
    for (k, &(_, v)) in words.as_slice().iter().enumerate() {
        let off = (WORDS + 8 * k as u64) as usize;
        bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&encoded.code_buffer);
    let offset = |k: usize| u64::from(encoded.new_instruction_offsets[k]);
    let rel = (page + CODE).wrapping_sub(site.start + JMP_LEN) as i64;
    let rel = i32::try_from(rel).map_err(|_| Refusal("the page is out of jump range".into()))?;
    let mut patch = vec![0xe9];
    patch.extend_from_slice(&rel.to_le_bytes());
    patch.resize(site.patch_len().max(JMP_LEN) as usize, 0xcc);
    Ok(Trampoline {
        page,
        bytes,
        patch_at: site.start,
        patch,
        trap_ip: page + CODE + offset(trap_index) + 1,
        // With nothing displaced from the point, a thread stopped there
        // goes on in place (the patch is before it).
        resume_ip: if site.moved.is_empty() {
            site.point
        } else {
            page + CODE + offset(resume_index)
        },
        word_loads: load_indices
            .iter()
            .map(|&k| page + CODE + offset(k))
            .collect(),
        miss_ip: page + CODE + offset(miss_index),
    })
}

/// The trampoline's stand-in for a displaced `call`: it pushes the
/// original return address (as the call would: the same bytes at the same
/// stack slot, the flags untouched) and jumps to the callee. The new
/// instructions take fake ips from `fake` down; the jump keeps the call's
/// own ip, for its rip-relative pointer.
fn emulated_call(
    call: &Instruction,
    fake: &mut u64,
) -> Result<Vec<Instruction>, iced_x86::IcedError> {
    let ret = call.next_ip();
    let rsp = |d: i64| MemoryOperand::with_base_displ(Register::RSP, d);
    let mut out = vec![
        Instruction::with2(Code::Lea_r64_m, Register::RSP, rsp(-8))?,
        Instruction::with2(Code::Mov_rm32_imm32, rsp(0), ret as u32)?,
        Instruction::with2(Code::Mov_rm32_imm32, rsp(4), (ret >> 32) as u32)?,
    ];
    for insn in &mut out {
        insn.set_ip(*fake);
        *fake -= 16;
    }
    let mut jump = *call;
    match call.code() {
        Code::Call_rel32_64 => {
            jump = Instruction::with_branch(Code::Jmp_rel32_64, call.near_branch_target())?;
            jump.set_ip(*fake);
            *fake -= 16;
        }
        _ => jump.set_code(Code::Jmp_rm64),
    }
    out.push(jump);
    Ok(out)
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
                // A fault of the hook's copy, as while recording.
                Some(WaitEvent::Signal { signo, .. }) if self.copy_fault(real, signo)? => {
                    trace!(tid, signo, "a fault in the hook's copy: fixed up");
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
            .read_vec(tramp.patch_at, tramp.patch.len())
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
            .and_then(|()| mem.write(tramp.patch_at, &tramp.patch))
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
            patch_at = tramp.patch_at,
            page = tramp.page,
            passes,
            "in-tracee filter installed"
        );

        let result = self.run_filtered(tid, point, &tramp, deadline);
        // Take the filter out whatever happened (a dead thread excepted).
        let removed = mem.write(tramp.patch_at, &original).and_then(|()| {
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
        let maps = std::fs::read_to_string(format!("/proc/{real}/maps"))
            .map_err(|e| Refusal(format!("reading the maps: {e}")))?;
        let site = filter_site::find(real, point.ip, &maps)?;
        let mut regs = [0u64; 16];
        regs.copy_from_slice(&point.regs[..16]);
        // A farther page may fail to reach a displaced rip-relative operand.
        let mut last = Refusal("no free page in reach".into());
        for page in free_pages_near(&maps, site.start) {
            match build(page, &site, regs, &point.words) {
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
            if word_fault(&ev, &regs, tramp) {
                // A pass in the point's registers before a word's page is
                // mapped: a miss (the fault is not delivered).
                let mut rax = [0u8; 8];
                RemoteMem::new(real)
                    .read_exact(tramp.page + SAVED_RAX, &mut rax)
                    .map_err(perr("reading the filter's saved rax", real))?;
                regs.rax = u64::from_le_bytes(rax);
                regs.rip = tramp.miss_ip;
                ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
                self.set_state(tid, State::Idle { deliver: 0 });
                trace!(tid, rip = regs.rip, "a point's word not mapped yet: a miss");
                continue;
            }
            if !super::trapped_at(&ev, &regs, tramp.trap_ip) {
                let mut seen = self.describe_stop(real, &ev);
                if traps > 0 {
                    seen.push_str(&format!(
                        " after {traps} passes through the ip in the point's registers with another state"
                    ));
                }
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
                && crate::tracee::words::hold(real, &point.words)
                && self.buffered_drained(tid)
                && crate::tracee::exec_point(real, &regs)
                    .map_err(perr("reading an execution point", real))?
                    == (ExecPoint {
                        words: PointWords::NONE,
                        ..*point
                    })
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
            trace!(
                tid,
                hits,
                traps,
                "a filtered pass in the point's registers, another state"
            );
            // The registers matched, the rest did not: go on.
            regs.rip = tramp.resume_ip;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            self.set_state(tid, State::Idle { deliver: 0 });
        }
    }
}

/// Whether the stop `ev` is a fault of one of the trampoline's loads of the
/// point's words.
fn word_fault(ev: &WaitEvent, regs: &Regs, tramp: &Trampoline) -> bool {
    matches!(ev, WaitEvent::Signal { signo, .. } if *signo == libc::SIGSEGV || *signo == libc::SIGBUS)
        && tramp.word_loads.contains(&regs.rip)
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
#[path = "point_filter_tests.rs"]
mod tests;
