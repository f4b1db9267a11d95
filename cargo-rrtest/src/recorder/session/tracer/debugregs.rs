//! The program's debug registers for its tracees: a tracer's hardware
//! breakpoints and watchpoints (`PTRACE_POKEUSER`/`PTRACE_PEEKUSER` of
//! `u_debugreg`).
//!
//! Debug register 0 of every real thread is the recorder's own (its
//! execution-point searches: `ptrace::exec_breakpoint`, which keeps the
//! other slots' DR7 bits), so the program's slots go into real slots 1-3:
//! each slot 1-3 into its own, slot 0 into the first one of those its DR7
//! leaves free (gdb takes slot 0 first). Enabling all four gets EIO, named.
//! What the program wrote (DR0-3, DR7) and its DR6 are kept per thread
//! ([`DebugRegs`]) and are what `PTRACE_PEEKUSER` reads; the real registers
//! are written with the program's values, translated, so that the kernel's
//! checks (a kernel address, a length the address is not aligned to, a
//! length other than 1 for an execution breakpoint) answer as natively.
//!
//! A `SIGTRAP` whose real DR6 shows a program slot ([`Session::program_hw_trap`])
//! is the program's: its tracer sees a signal-delivery stop for it with
//! the kernel's siginfo (`TRAP_HWBKPT`, the trapping ip; `TRAP_TRACE` when
//! it was also the tracer's own single step) and reads in DR6 the
//! program's slot bits (BS with a step of its own; BS alone after a step
//! of its own that hit no slot, as the kernel starts DR6 anew at each
//! debug exception). The stop is made as a
//! fault's is: an execution point (`Preempt`) replay runs the thread to,
//! then the emulated stop. Replay never sets the program's debug
//! registers: a write of them is only a syscall result, what they read is
//! recorded, and each trap is replayed as its point; so the trace format
//! is unchanged and a replay debugger's watchpoints (slots 1-3 there) meet
//! no slot of the program's. A trap of the recorder's own slot at the same
//! time (its search's breakpoint, or a step of its own) gives way: the
//! search is dropped (a signal it held back waits for another point), the
//! program's stop made. The real DR6 is cleared after each program trap,
//! so that a later `SIGTRAP` that is no debug exception (an `int3`) is not
//! taken for one.
//!
//! An exec clears them (as the kernel does, the real ones too). A
//! `PTRACE_DETACH` or the tracer's end leaves them armed on the real
//! thread, as natively: a later hit is a `SIGTRAP` for the program itself
//! (`TRAP_HWBKPT`, `si_addr` the ip), which kills it by default or runs its
//! handler. The recorder tells it from its own traps by the real DR6 bits of
//! slots 1-3 (only the program's slots are ever there), and delivers it as
//! it delivers a held-back signal, at an execution point
//! (`SignalKind::AtPoint`), since replay never sets the program's debug
//! registers and so meets no trap there. Nothing is kept for such a thread
//! but the real registers: the kernel clears them at an exec and gives a
//! forked child none.

use tracing::warn;

use super::{neg, Session, Step};
use crate::recorder::session::{ptrace_err, Error};
use rrtest_sys::ptrace::{self, Regs, SIGINFO_SIZE};
use rrtest_trace::Tid;

/// DR6's trap bits (B0-B3: which slot fired).
const DR6_TRAP_BITS: u64 = 0xf;
/// DR6's single-step bit (BS).
const DR6_BS: u64 = 0x4000;
/// What the kernel answers for DR6 with nothing reported: its reserved
/// bits, in the architecture's polarity.
const DR6_RESERVED: u64 = 0xffff_0ff0;
/// The first address past user space (`TASK_SIZE_MAX`): a breakpoint
/// address there gets EINVAL.
const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;
/// `si_code` of a hardware breakpoint's `SIGTRAP`.
const TRAP_HWBKPT: i32 = 4;

/// The real slots (1-3) the program's slots may be in: DR6 bits B1-B3.
const REAL_PROGRAM_BITS: u64 = 0b1110;

/// A thread's debug registers as its tracer wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::recorder::session) struct DebugRegs {
    /// DR0-DR3.
    addr: [u64; 4],
    /// DR6 as the program reads it.
    dr6: u64,
    /// DR7 as the program wrote it.
    dr7: u64,
    /// The real slot each slot DR7 enables is in.
    map: Slots,
}

/// The real slot (1-3) of each of the program's slots, where enabled.
type Slots = [Option<usize>; 4];

impl Default for DebugRegs {
    fn default() -> Self {
        DebugRegs {
            addr: [0; 4],
            dr6: DR6_RESERVED,
            dr7: 0,
            map: [None; 4],
        }
    }
}

impl DebugRegs {
    /// Whether a slot is enabled (in a real slot).
    fn armed(&self) -> bool {
        self.map.iter().any(Option::is_some)
    }
}

/// Whether DR7 `dr7` enables slot `i` (locally or globally).
fn enabled(dr7: u64, i: usize) -> bool {
    dr7 & (3 << (2 * i)) != 0
}

/// The real slot of each slot `dr7` enables: slots 1-3 their own, slot 0
/// the first of 1-3 left free; None when all four are enabled.
fn assign(dr7: u64) -> Option<Slots> {
    let mut map = [None; 4];
    for (i, m) in map.iter_mut().enumerate().skip(1) {
        if enabled(dr7, i) {
            *m = Some(i);
        }
    }
    if enabled(dr7, 0) {
        let free = (1..4).find(|&r| map[r].is_none())?;
        map[0] = Some(free);
    }
    Some(map)
}

/// The real DR7 bits of the program's `dr7` with its slots where `map`
/// puts them (enable bits and condition; the rest of its DR7, such as the
/// exact-breakpoint bits gdb sets, means nothing to the kernel).
fn real_dr7(dr7: u64, map: &Slots) -> u64 {
    map.iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .fold(0, |v, (i, r)| {
            let enable = (dr7 >> (2 * i)) & 3;
            let cond = (dr7 >> (16 + 4 * i)) & 0xf;
            v | (enable << (2 * r)) | (cond << (16 + 4 * r))
        })
}

/// The program's DR6 trap bits for real DR6 `real`.
fn program_bits(real: u64, map: &Slots) -> u64 {
    map.iter()
        .enumerate()
        .filter(|(_, r)| r.is_some_and(|r| real & (1 << r) != 0))
        .fold(0, |v, (i, _)| v | (1 << i))
}

/// The `SIGTRAP` siginfo of a debug exception: `code`, the ip its address.
fn debug_trap(code: i32, ip: u64) -> [u8; SIGINFO_SIZE] {
    let mut info = [0u8; SIGINFO_SIZE];
    info[0..4].copy_from_slice(&libc::SIGTRAP.to_ne_bytes());
    info[8..12].copy_from_slice(&code.to_ne_bytes());
    info[16..24].copy_from_slice(&ip.to_ne_bytes());
    info
}

/// The errno of a failed request, as the program gets it.
fn errno_of(e: &std::io::Error) -> i64 {
    neg(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Session {
    /// The program's debug registers of tracee `target`.
    fn debug_regs(&self, target: Tid) -> DebugRegs {
        self.tasks
            .get(&target)
            .and_then(|t| t.traced.as_ref())
            .map(|t| t.debug)
            .unwrap_or_default()
    }

    /// `PTRACE_PEEKUSER` of debug register `n` of `target`: what its tracer
    /// wrote (DR6: what the last trap of its slots reported, or wrote).
    pub(super) fn peek_debugreg(&self, target: Tid, n: usize) -> u64 {
        let d = self.debug_regs(target);
        match n {
            0..=3 => d.addr[n],
            6 => d.dr6,
            7 => d.dr7,
            _ => 0,
        }
    }

    /// `PTRACE_POKEUSER` of `value` to debug register `n` of `target`:
    /// kept, and made on the real thread in the real slot its slot is in
    /// (the kernel's checks answer); DR7 moves the program's slots into the
    /// real slots, all four enabled: EIO, named.
    pub(super) fn poke_debugreg(
        &mut self,
        target: Tid,
        n: usize,
        value: u64,
    ) -> Result<i64, Error> {
        let old = self.debug_regs(target);
        let mut new = old;
        match n {
            0..=3 => {
                if let Some(r) = old.map[n] {
                    if let Err(e) = ptrace::set_debugreg(target, r, value) {
                        return Ok(errno_of(&e));
                    }
                } else if value >= TASK_SIZE_MAX {
                    // What the kernel answers for a disabled slot's
                    // address outside user space.
                    return Ok(neg(libc::EINVAL));
                }
                new.addr[n] = value;
            }
            6 => new.dr6 = value,
            7 => {
                let Some(map) = assign(value) else {
                    warn!("PTRACE_POKEUSER of DR7 enabling all four debug registers: the recorder keeps one for itself (the program gets EIO)");
                    return Ok(neg(libc::EIO));
                };
                new.dr7 = value;
                new.map = map;
                if let Err(e) = place(target, &new) {
                    place(target, &old).map_err(ptrace_err("restoring debug registers", target))?;
                    return Ok(errno_of(&e));
                }
            }
            // DR4 and DR5: the kernel's EIO.
            _ => return Ok(neg(libc::EIO)),
        }
        if let Some(t) = self.traced_mut(target) {
            t.debug = new;
        }
        Ok(0)
    }

    /// Whether the debug exception `tid` stopped at (real DR6) was one of
    /// its tracer's slots'.
    pub(in crate::recorder::session) fn program_slot_hit(&self, tid: Tid) -> bool {
        if !self.is_emulated_tracee(tid) {
            // Slots kept after a detach: any of the real slots 1-3.
            return self.kept_debug_slots
                && ptrace::get_debugreg(tid, 6).is_ok_and(|v| v & REAL_PROGRAM_BITS != 0);
        }
        let d = self.debug_regs(tid);
        d.armed() && ptrace::get_debugreg(tid, 6).is_ok_and(|v| program_bits(v, &d.map) != 0)
    }

    /// At a `SIGTRAP` stop of `tid` with `si_code` `code`: when real DR6
    /// shows one of the program's slots, the program's DR6 is set (its
    /// slot bits, BS with a step its tracer asked for), the real DR6
    /// cleared, a search of the recorder's own dropped, and the siginfo
    /// its tracer sees returned; else None (a trap of the recorder's). For
    /// a thread with no tracer, the slots a tracer left armed
    /// ([`Session::kept_slot_trap`]).
    pub(in crate::recorder::session) fn program_hw_trap(
        &mut self,
        tid: Tid,
        regs: &Regs,
        code: i32,
    ) -> Result<Option<[u8; SIGINFO_SIZE]>, Error> {
        const TRAP_TRACE: i32 = 2;
        if code != TRAP_HWBKPT && code != TRAP_TRACE {
            return Ok(None);
        }
        if !self.is_emulated_tracee(tid) {
            return self.kept_slot_trap(tid, regs);
        }
        let d = self.debug_regs(tid);
        let stepping = self
            .tasks
            .get(&tid)
            .is_some_and(|t| matches!(t.step, Step::Running { .. }));
        let bits = if d.armed() {
            let real = ptrace::get_debugreg(tid, 6).map_err(ptrace_err("reading DR6", tid))?;
            program_bits(real & DR6_TRAP_BITS, &d.map)
        } else {
            0
        };
        if bits == 0 {
            if stepping && code == TRAP_TRACE {
                // The trap of a step its tracer asked for, no slot of its
                // hit: the kernel starts the DR6 its tracer reads again at
                // each debug exception, with BS alone here.
                self.step_trap_dr6(tid);
            }
            return Ok(None);
        }
        ptrace::set_debugreg(tid, 6, 0).map_err(ptrace_err("clearing DR6", tid))?;
        let task = self.tasks.get_mut(&tid).expect("checked");
        if task.seeking.take().is_some() {
            // The recorder's search gives way (its breakpoint may have
            // fired with the program's, or be passed while the tracee is
            // stopped): a held-back signal waits for another point.
            task.spin_check = false;
            task.steps_left = None;
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
        }
        let step = if stepping { DR6_BS } else { 0 };
        if let Some(t) = self.traced_mut(tid) {
            t.debug.dr6 = DR6_RESERVED | bits | step;
        }
        let code = if stepping { TRAP_TRACE } else { TRAP_HWBKPT };
        Ok(Some(debug_trap(code, regs.rip)))
    }

    /// The trap of a single step `tid`'s tracer asked for that hit none of
    /// its slots (or an instruction the recorder emulated in the step, a
    /// trapped `rdtsc`): DR6 as the kernel leaves it for its tracer, BS
    /// alone (it starts the program's DR6 anew at each debug exception, with
    /// the real DR6's BS, and sets the bits of the slots that hit).
    pub(super) fn step_trap_dr6(&mut self, tid: Tid) {
        if let Some(t) = self.traced_mut(tid) {
            t.debug.dr6 = DR6_RESERVED | DR6_BS;
        }
    }

    /// A debug exception of `tid`, which has no tracer: when the real DR6
    /// shows one of the slots its last tracer left armed, the siginfo of
    /// the `SIGTRAP` the program gets (`TRAP_HWBKPT`, the ip its address,
    /// as the kernel sends it to an untraced thread; set as the pending
    /// signal's), the real DR6 cleared and a search of the recorder's
    /// dropped; else None.
    fn kept_slot_trap(
        &mut self,
        tid: Tid,
        regs: &Regs,
    ) -> Result<Option<[u8; SIGINFO_SIZE]>, Error> {
        if !self.kept_debug_slots {
            return Ok(None);
        }
        let real = ptrace::get_debugreg(tid, 6).map_err(ptrace_err("reading DR6", tid))?;
        if real & REAL_PROGRAM_BITS == 0 {
            return Ok(None);
        }
        ptrace::set_debugreg(tid, 6, 0).map_err(ptrace_err("clearing DR6", tid))?;
        if let Some(task) = self.tasks.get_mut(&tid) {
            if task.seeking.take().is_some() {
                task.spin_check = false;
                task.steps_left = None;
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
            }
        }
        // The siginfo the program gets: a step of the recorder's own (a
        // chaos slice's) that made the trap too left the kernel's
        // TRAP_TRACE in it, which natively, with no step, is TRAP_HWBKPT.
        let info = debug_trap(TRAP_HWBKPT, regs.rip);
        ptrace::setsiginfo(tid, &info).map_err(ptrace_err("PTRACE_SETSIGINFO", tid))?;
        Ok(Some(info))
    }

    /// `tid`'s tracer detached or ended: the program's slots stay armed on
    /// its real thread, as natively (a later hit is the program's own
    /// `SIGTRAP`, [`Session::kept_slot_trap`]).
    pub(super) fn keep_program_slots(&mut self, tid: Tid) {
        if self.debug_regs(tid).armed() {
            self.kept_debug_slots = true;
        }
    }
}

/// Writes `d`'s slots into `tid`'s real debug registers: the program's
/// slots off first (a slot may move), its addresses into the real slots,
/// then DR7 with them and the recorder's slot 0.
fn place(tid: Tid, d: &DebugRegs) -> std::io::Result<()> {
    let recorder = ptrace::dr7_with_slot0(0, ptrace::get_debugreg(tid, 7)?);
    ptrace::set_debugreg(tid, 7, recorder)?;
    for (i, r) in d.map.iter().enumerate() {
        if let Some(r) = *r {
            ptrace::set_debugreg(tid, r, d.addr[i])?;
        }
    }
    ptrace::set_debugreg(tid, 7, recorder | real_dr7(d.dr7, &d.map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_1_to_3_stay_and_slot_0_takes_the_first_free_one() {
        // gdb's first watchpoint: slot 0, len 4, write.
        let gdb = ptrace::dr7_slot(0, 1, 4) | 0x100;
        let map = assign(gdb).expect("one slot");
        assert_eq!(map, [Some(1), None, None, None]);
        assert_eq!(real_dr7(gdb, &map), ptrace::dr7_slot(1, 1, 4));
        let three =
            ptrace::dr7_slot(1, 0, 1) | ptrace::dr7_slot(2, 1, 4) | ptrace::dr7_slot(3, 3, 8);
        let map = assign(three).expect("three slots");
        assert_eq!(map, [None, Some(1), Some(2), Some(3)]);
        assert_eq!(real_dr7(three, &map), three);
        let zero_and_two = ptrace::dr7_slot(0, 3, 8) | ptrace::dr7_slot(1, 1, 2);
        let map = assign(zero_and_two).expect("two slots");
        assert_eq!(map, [Some(2), Some(1), None, None]);
        assert_eq!(
            real_dr7(zero_and_two, &map),
            ptrace::dr7_slot(2, 3, 8) | ptrace::dr7_slot(1, 1, 2)
        );
        assert_eq!(assign(0x55), None);
        assert_eq!(assign(0), Some([None; 4]));
    }

    #[test]
    fn dr6_reports_the_program_slot_of_a_real_slot() {
        let map = [Some(2), Some(1), None, Some(3)];
        assert_eq!(program_bits(0b0100, &map), 0b0001);
        assert_eq!(program_bits(0b1010, &map), 0b1010);
        // The recorder's slot 0 is none of the program's.
        assert_eq!(program_bits(0b0001, &map), 0);
        assert_eq!(program_bits(0b0001 | 0x4000, &[None; 4]), 0);
    }
}
