//! Execution points in replay: running a thread to the place the recorder
//! interrupted it (a `Preempt` event, or a signal held back to a point),
//! the first time since its last event that it is about to execute the
//! point's ip with the point's registers and memory digest, having
//! consumed its buffered syscalls (they all came before the point). A debug-register
//! breakpoint and a comparison at each pass; a perf counter when a
//! verification already knows the pass count; `point_filter.rs` for hot
//! loops.
//!
//! Mirrors the recorder's `session/points.rs`. It must not deliver the
//! signal (`signals.rs`) nor accept a stop whose state is not exactly the
//! recorded point's.

use tracing::{debug, trace};

use super::{perr, point_filter, Session, State};
use crate::replayer::ReplayError;
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
        if let Some(known) =
            known.filter(|&k| k < point_filter::FILTER_AFTER && self.fast_point_search())
        {
            // The mask cannot change before the point (a call that changes
            // it is an event). A thread that blocks the counter's signal
            // (a shell's vfork child, before it unblocks them) is searched.
            let mask = ptrace::getsigmask(real).map_err(perr("PTRACE_GETSIGMASK", real))?;
            let armed = if rrtest_sys::perf::counter_stops(mask) {
                rrtest_sys::perf::BreakpointCounter::arm(real, point.ip, known + 1)
            } else {
                Err(std::io::Error::other(
                    "the thread blocks the counter's signal",
                ))
            };
            match armed {
                Ok(counter) => return self.run_to_counted_point(tid, point, known, counter),
                // perf_event_open refused (a container's seccomp policy,
                // perf_event_paranoid), or the signal blocked: search
                // instead, one stop per pass.
                Err(e) => debug!(tid, error = %e, "no counted breakpoint: searching"),
            }
        }
        self.point_breakpoint(real, Some(point.ip))
            .map_err(perr("setting a breakpoint", real))?;
        // Each pass's trap unblocks a blocked SIGTRAP, which the recorder
        // did not let happen either: blocked again at each pass (the mask
        // cannot change between passes: a traced syscall would be an event
        // before the point).
        let trap_blocked =
            crate::tracee::trap_mask::blocks_trap(real).map_err(perr("PTRACE_GETSIGMASK", real))?;
        let mut hits = 0u64;
        // Passes in the point's registers whose memory differed: the
        // divergence names them (the state replay got wrong is in memory).
        let mut other_memory = 0u64;
        loop {
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

    /// [`Session::run_to_point`] with the hit count a verification found:
    /// `counter`, armed by the caller, stops the thread at the `hits + 1`th
    /// execution of the ip, where the state must match (one stop instead of
    /// one per hit).
    pub(super) fn run_to_counted_point(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
        hits: u64,
        counter: rrtest_sys::perf::BreakpointCounter,
    ) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, Some(rrtest_sys::perf::OVERFLOW_SIGNAL))?;
        drop(counter);
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        // The counter's stop; or the program's own trap instruction right
        // before the ip (a debugger's int3, written by its emulated
        // ptrace), which stops the thread there before the ip runs again:
        // the recording stopped it there for its tracer, and the search
        // without a count takes that trap for its breakpoint's as well.
        let stopped = matches!(ev, WaitEvent::Signal { signo, .. } if signo == rrtest_sys::perf::OVERFLOW_SIGNAL)
            || trapped_at(&ev, &regs, point.ip);
        let matches = stopped
            && regs.rip == point.ip
            && self.buffered_drained(tid)
            && crate::tracee::point_regs(&regs) == point.regs
            && crate::tracee::exec_point(real, &regs)
                .map_err(perr("reading an execution point", real))?
                == *point;
        if !matches {
            let seen = if stopped {
                format!(
                    "ip {:#x} after {} hits with other state",
                    regs.rip,
                    hits + 1
                )
            } else {
                self.describe_stop(real, &ev)
            };
            return Err(self.diverged(
                tid,
                "execution point",
                format!("reaching ip {:#x}", point.ip),
                seen,
            ));
        }
        // The overflow signal is not delivered: the thread just stops here.
        self.set_state(tid, State::Idle { deliver: 0 });
        self.point_hits.push([self.index, hits]);
        Ok(())
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
