//! Execution points in replay: running a thread to the place the recorder
//! interrupted it (a `Preempt` event, or a signal held back to a point),
//! the first time since its last event that it is about to execute the
//! point's ip with the point's registers and memory digest, having
//! consumed its buffered syscalls (they all came before the point). A debug-register
//! breakpoint and a comparison at each pass; a perf counter first when a
//! verification already knows the pass count (one stop, or two where the
//! counter's signal is asynchronous); `point_filter.rs` for hot loops.
//!
//! Mirrors the recorder's `session/points.rs`. It must not deliver the
//! signal (`signals.rs`) nor accept a stop whose state is not exactly the
//! recorded point's.

use tracing::{debug, trace};

use super::{perr, point_filter, Session, State};
use crate::replayer::{Error, ReplayError};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_trace::{ExecPoint, Tid};

impl Session {
    /// Runs `tid` to the first time since its last event that it is about
    /// to execute `point.ip` with `point`'s registers: an execution
    /// breakpoint at the ip, and a comparison at each hit.
    pub(super) fn run_to_point(&mut self, tid: Tid, point: &ExecPoint) -> Result<(), ReplayError> {
        /// How long replay searches before it gives up: a point deep in a
        /// hot loop costs a stop per turn, and the recording is then not
        /// replayable in practice; verification says so.
        const SEARCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
        let started = std::time::Instant::now();
        let real = self.task(tid)?.real;
        let known = self.known_hits.get(&self.index).copied();
        // Passes through the ip already made without the point's state,
        // and whether the thread is stopped about to make another (not
        // yet compared).
        let (mut hits, mut at_pass) = (0u64, false);
        if let Some(known) =
            known.filter(|&k| k > 0 && k < point_filter::FILTER_AFTER && self.fast_point_search())
        {
            (hits, at_pass) = self.run_counted(tid, point, known)?;
        }
        self.point_breakpoint(real, Some(point.ip))
            .map_err(perr("setting a breakpoint", real))?;
        // Each pass's trap unblocks a blocked SIGTRAP, which the recorder
        // did not let happen either: blocked again at each pass (the mask
        // cannot change between passes: a traced syscall would be an event
        // before the point).
        let trap_blocked =
            crate::tracee::trap_mask::blocks_trap(real).map_err(perr("PTRACE_GETSIGMASK", real))?;
        // Passes in the point's registers whose memory differed: the
        // divergence names them (the state replay got wrong is in memory).
        let mut other_memory = 0u64;
        loop {
            let regs = if std::mem::take(&mut at_pass) {
                ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?
            } else {
                let (real, ev) = self.resume_to_stop(tid, Some(libc::SIGTRAP))?;
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                if trap_blocked && trapped_at(&ev, &regs, point.ip) {
                    crate::tracee::trap_mask::reblock_trap(real)
                        .map_err(perr("PTRACE_SETSIGMASK", real))?;
                }
                if !trapped_at(&ev, &regs, point.ip) {
                    let _ = self.point_breakpoint(real, None);
                    let mut seen = self.describe_stop(real, &ev);
                    if hits > 0 {
                        seen.push_str(&format!(
                            " after {hits} passes through the ip ({other_memory} in the point's registers with another memory digest)"
                        ));
                    }
                    return Err(self.diverged(
                        tid,
                        "execution point",
                        format!("reaching ip {:#x}", point.ip),
                        seen,
                    ));
                }
                regs
            };
            trace!(tid, hits, regs = ?crate::tracee::point_regs(&regs), "a pass through the point's ip");
            let regs_equal = crate::tracee::point_regs(&regs) == point.regs;
            let drained = regs_equal && self.buffered_drained(tid);
            let digest = if drained {
                Some(
                    crate::tracee::state_digest(real, regs.rsp)
                        .map_err(perr("reading an execution point", real))?,
                )
            } else {
                None
            };
            if regs_equal {
                trace!(
                    tid,
                    hits,
                    drained,
                    ?digest,
                    recorded = point.digest,
                    "a pass in the point's registers"
                );
            }
            if digest.is_some_and(|d| d != point.digest) {
                other_memory += 1;
            }
            if digest == Some(point.digest) {
                self.point_breakpoint(real, None)
                    .map_err(perr("clearing a breakpoint", real))?;
                self.set_state(tid, State::Idle { deliver: 0 });
                trace!(tid, hits, "reached the execution point");
                self.point_hits.push([self.index, hits]);
                return Ok(());
            }
            hits += 1;
            // Many passes: a hot loop. Search on inside the program, then
            // check a count known from the verification.
            if hits == point_filter::FILTER_AFTER
                && self.fast_point_search()
                && self.filtered_search(tid, point, hits, started + SEARCH_LIMIT)?
            {
                return self.check_known_hits(tid, point, known);
            }
            if hits.is_multiple_of(1024) && started.elapsed() >= SEARCH_LIMIT {
                let _ = self.point_breakpoint(real, None);
                return Err(self.diverged(
                    tid,
                    "execution point",
                    format!("registers {:x?} at ip {:#x}", point.regs, point.ip),
                    format!(
                        "{hits} passes through ip in {} s without them (a point inside a hot loop: too costly to find)",
                        SEARCH_LIMIT.as_secs()
                    ),
                ));
            }
            // Go on past the instruction: the resume flag suppresses the
            // breakpoint for exactly one instruction, so no single-step
            // stop is needed.
            let mut regs = regs;
            regs.eflags |= RESUME_FLAG;
            ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
            self.set_state(tid, State::Idle { deliver: 0 });
        }
    }

    /// The first part of [`Session::run_to_point`] when a verification
    /// found the point after `known` passes (1 or more): a counter
    /// (`rrtest_sys::perf`) armed for the pass of the point runs the thread
    /// there, or near, in one stop. Returns the passes the thread has made
    /// and whether it is stopped about to make another (at the ip), for
    /// the search to go on from; none if no counter could be armed.
    ///
    /// The counter's count says where the thread is, so a signal that came
    /// late is seen: if the thread ran past the point, that is an error,
    /// not a divergence of the program.
    fn run_counted(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        known: u64,
    ) -> Result<(u64, bool), ReplayError> {
        let real = self.task(tid)?.real;
        // The mask cannot change before the point (a call that changes
        // it is an event). A thread that blocks the counters' signals
        // (a shell's vfork child, before it unblocks them) is searched.
        let mask = ptrace::getsigmask(real).map_err(perr("PTRACE_GETSIGMASK", real))?;
        // A debugger's session reads every SIGTRAP as its own or the
        // program's (`debugger.rs`): the asynchronous signal there.
        let may_trap = self.debug.is_none();
        let counter = match rrtest_sys::perf::BreakpointCounter::arm(
            real,
            point.ip,
            known + 1,
            mask,
            may_trap,
        ) {
            Ok(counter) => counter,
            // perf_event_open refused (a container's seccomp policy,
            // perf_event_paranoid), or the signals blocked: search
            // instead, one stop per pass.
            Err(e) => {
                debug!(tid, error = %e, "no counted breakpoint: searching");
                return Ok((0, false));
            }
        };
        let (real, ev) = loop {
            let (real, ev) = self.resume_to_stop(tid, Some(counter.signal()))?;
            // A debug-register breakpoint's trap that was pending when its
            // search ended (the resume discards those where it waits for
            // another signal than SIGTRAP): not the counter's.
            let stray = counter.synchronous()
                && matches!(
                    ev,
                    WaitEvent::Signal {
                        signo: libc::SIGTRAP,
                        ..
                    }
                )
                && ptrace::getsiginfo(real)
                    .is_ok_and(|i| ptrace::siginfo_code(&i) == ptrace::TRAP_HWBKPT)
                && ptrace::getregs(real).is_ok_and(|r| r.rip != point.ip);
            if !stray {
                break (real, ev);
            }
            trace!(tid, "discarding a stray breakpoint trap");
            self.set_state(tid, State::Idle { deliver: 0 });
        };
        let passes = counter
            .passes()
            .map_err(perr("reading a breakpoint counter", real))?;
        let (period, signal, synchronous) =
            (counter.period(), counter.signal(), counter.synchronous());
        drop(counter);
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let at_ip = regs.rip == point.ip;
        // The counter's stop; or the program's own trap instruction right
        // before the ip (a debugger's int3, written by its emulated
        // ptrace), which stops the thread there before the pass is
        // counted: the recording stopped it there for its tracer, and the
        // search takes that trap for its breakpoint's as well.
        let counted = matches!(ev, WaitEvent::Signal { signo, .. } if signo == signal)
            && (!synchronous
                || ptrace::getsiginfo(real)
                    .is_ok_and(|i| ptrace::siginfo_code(&i) == ptrace::TRAP_PERF));
        if !counted && !trapped_at(&ev, &regs, point.ip) {
            return Err(self.diverged(
                tid,
                "execution point",
                format!("reaching ip {:#x}", point.ip),
                self.describe_stop(real, &ev),
            ));
        }
        // At the ip, a counter's signal that came with its overflow finds
        // the thread about to make the pass it counted last; one that came
        // late, the thread anywhere after.
        let made = if counted && at_ip && passes == period {
            passes - 1
        } else {
            passes
        };
        trace!(
            tid,
            known,
            period,
            passes,
            at_ip,
            synchronous,
            "a counter's stop"
        );
        if made > known {
            return Err(ReplayError::Other(Error::LateCounter(format!(
                "thread {tid} ran {} passes past execution point {} (ip {:#x}) before its \
                 breakpoint counter's signal stopped it (armed for pass {period}, at \
                 ip {:#x} after {passes} passes)",
                made - known,
                self.index,
                point.ip,
                regs.rip
            ))));
        }
        Ok((made, at_ip))
    }
}

/// Whether a stop is a `SIGTRAP` with the thread at `ip` (a breakpoint or a
/// trap instruction there).
pub(super) fn trapped_at(ev: &WaitEvent, regs: &Regs, ip: u64) -> bool {
    matches!(
        ev,
        WaitEvent::Signal {
            signo: libc::SIGTRAP,
            ..
        }
    ) && regs.rip == ip
}

/// EFLAGS.RF: the next instruction does not raise an instruction breakpoint.
pub(super) const RESUME_FLAG: u64 = 1 << 16;
