//! Execution points in replay: running a thread to the place the recorder
//! interrupted it (a `Preempt` event, or a signal held back to a point),
//! the first time since its last event that it is about to execute the
//! point's ip with the point's registers and memory digest, having
//! consumed its buffered syscalls (they all came before the point). A debug-register
//! breakpoint and a comparison at each pass, the pass checked against the
//! one a verification found; `point_filter.rs` for hot loops.
//!
//! Mirrors the recorder's `session/points.rs`. It must not deliver the
//! signal (`signals.rs`) nor accept a stop whose state is not exactly the
//! recorded point's.

use tracing::trace;

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
        trace!(tid, ip = point.ip, regs = ?point.regs, "searching for an execution point");
        let known = self.known_hits.get(&self.index).copied();
        let mut hits = 0u64;
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
            let regs = {
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
            // The registers, then the point's words (one read), then the
            // digest (the costly part).
            let regs_equal = crate::tracee::point_regs(&regs) == point.regs
                && crate::tracee::words::hold(real, &point.words);
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
                // A verification found it at the same pass, or the replay
                // is not the recording's (unless a debugger's breakpoints,
                // watches or steps stop the thread in between).
                if !self.fast_point_search() {
                    return Ok(());
                }
                return self.check_known_hits(tid, point, known);
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
