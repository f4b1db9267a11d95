//! Execution points: where an interrupted thread gets its held-back signal
//! or is preempted. The recorder moves the interruption to a point replay
//! finds cheaply (a spin loop's head, a return address), with a hardware
//! breakpoint, and acts there.
//!
//! Must not: decide whether to interrupt a thread (`schedule`) or how a
//! signal is delivered (`signals`).

use std::io;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use super::schedule::Steps;
use super::{ptrace_err, Error, Pending, Session};
use crate::tracee::exec_point;
use crate::tracee::syscallbuf;
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, SignalKind, Tid};

/// How long the recorder waits for an interrupted thread to come round its
/// loop again (to tell a spin loop).
const PROBE_LIMIT: Duration = Duration::from_millis(20);

/// How long the recorder waits for an interrupted thread to reach the
/// return address it chose as a cheaper execution point. Where none comes
/// (a compute loop that never returns), the point is where the thread then
/// is, and replay counts every pass through its ip since the thread's last
/// event, the wait's passes too: about 25 ns each through the in-tracee
/// filter, against about 1 ns natively, so a second's wait put a tight
/// loop's point past replay's 30 s search limit (a thread spinning in a
/// four-instruction loop in a child killed by its parent: unverifiable;
/// with 200 ms, verified, 2026-12-06).
const SEEK_LIMIT: Duration = Duration::from_millis(200);

/// How long the recorder waits for an interrupted thread to reach the exit
/// of the loop it is in ([`crate::tracee::loop_exit`]), before it tries
/// the return address instead (for [`SEEK_LIMIT`]): a loop's exit comes
/// after a run of its turns, microseconds in the loops it is chosen for;
/// one that does not come soon was a wrong guess (a loop left by a `break`
/// from its middle).
const LOOP_EXIT_LIMIT: Duration = Duration::from_millis(20);

/// How long a thread about to be preempted at a point may take to come
/// back there once more, for the point's memory words
/// ([`Session::confirm_point`]): a loop's turn, not a compute's.
const CONFIRM_LIMIT: Duration = Duration::from_millis(5);

/// How many states of passes through a probed address a [`SpinProbe`]
/// keeps: a loop that passes it up to this many times per turn is told
/// from one that computes.
const PROBE_STATES: usize = 4;

/// How long a probe armed at a spin point as its thread resumed
/// ([`Session::arm_spin_point`]) waits for the thread's first arrival
/// there; then the thread is probed where it is, as a spin check from
/// the tick probes it.
const ARMED_LIMIT: Duration = Duration::from_millis(1);

/// The most passes an armed probe takes (each a stop) before the thread is
/// taken to compute: its passes restart the probe at each buffered syscall
/// between them, which a thread working through the address makes.
const ARMED_PASSES: u32 = 16;

/// What a probe for a spin loop has seen: the state of the thread at each
/// pass through the address it was interrupted at, since it was. A loop
/// that waits by spinning comes back to a state it was in once per turn;
/// when its turn goes through shared code (a channel's `try_recv` and
/// `try_send` both taking one lock, a helper called from two places), the
/// address is passed in other states in between, so the first pass is not
/// enough to tell: a pass in any state already seen is a spin. A buffered
/// syscall between passes is progress: the probe starts again from there.
///
/// The memory digest of a state (a hash of the heap, the data and the
/// stack: the costly part) is read only for a pass whose registers match a
/// state seen, and for the first: a pass in new registers is remembered by
/// them alone, and its digest read when they come round again. A pass in
/// registers seen with another digest is another state (a loop may toggle
/// a flag in memory with the same registers), and takes a slot: a probe
/// ends after at most twice [`PROBE_STATES`] passes.
#[derive(Debug, Clone, Copy)]
pub(super) struct SpinProbe {
    /// The registers of each state seen, with its digest once read.
    states: [Option<([u64; rrtest_trace::POINT_REGS], Option<u64>)>; PROBE_STATES],
    /// The records in the thread's syscall buffer when the probe began
    /// (None: it has no buffer).
    committed: Option<u32>,
    /// The first pass's digest ranges (`tracee::ranges_token`): the passes
    /// after it read the same memory without reading the maps again (no
    /// syscall comes between passes: one ends the probe, or starts it anew).
    maps: u64,
    /// Armed as the thread resumed, at its last spin point's address
    /// ([`Session::arm_spin_point`]); no state is kept until its first
    /// pass there.
    armed: bool,
    /// Passes seen (the first included).
    passes: u32,
    /// When the probe's first pass was seen (the stop it began at, or an
    /// armed probe's first hit), and the time spent reading digests since:
    /// for the debug log's account of a hand-off.
    began: Instant,
    digest_time: Duration,
}

/// What a pass through a probed address shows (see [`SpinProbe::pass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// A state seen: the thread spins.
    Spins,
    /// A state not seen (or whose digest was not read yet): remembered.
    New,
    /// A state not seen and no room left: the thread computes.
    Full,
}

impl SpinProbe {
    fn new(first: &rrtest_trace::ExecPoint, committed: Option<u32>) -> Self {
        let mut states = [None; PROBE_STATES];
        states[0] = Some((first.regs, Some(first.digest)));
        SpinProbe {
            states,
            committed,
            maps: crate::tracee::ranges_token(),
            armed: false,
            passes: 1,
            began: Instant::now(),
            digest_time: Duration::ZERO,
        }
    }

    /// A probe armed at a spin point's address, before any pass there.
    fn armed() -> Self {
        SpinProbe {
            states: [None; PROBE_STATES],
            committed: None,
            maps: 0,
            armed: true,
            passes: 0,
            began: Instant::now(),
            digest_time: Duration::ZERO,
        }
    }

    /// A probe at a place ahead of where its thread was interrupted
    /// ([`super::code::CodeMaps::probe_place`]), before its first pass
    /// there.
    fn ahead() -> Self {
        SpinProbe {
            armed: false,
            ..SpinProbe::armed()
        }
    }

    /// No pass seen yet (an armed probe, or one ahead, before its first hit).
    fn unhit(&self) -> bool {
        self.states[0].is_none()
    }

    /// The probe started again at a pass in state `first` (the records in
    /// the buffer now: `committed`), keeping its count and times.
    fn restart(&self, first: &rrtest_trace::ExecPoint, committed: Option<u32>) -> Self {
        let began = if self.unhit() {
            Instant::now()
        } else {
            self.began
        };
        SpinProbe {
            armed: self.armed,
            passes: self.passes,
            began,
            digest_time: self.digest_time,
            ..SpinProbe::new(first, committed)
        }
    }

    /// A pass in registers `regs`; `digest` reads the state's digest (only
    /// called when a state seen has these registers).
    fn pass<E>(
        &mut self,
        regs: &[u64; rrtest_trace::POINT_REGS],
        digest: impl FnOnce() -> Result<u64, E>,
    ) -> Result<Pass, E> {
        let seen = self.states.iter().flatten().any(|(r, _)| r == regs);
        let unread = self
            .states
            .iter_mut()
            .flatten()
            .find(|(r, d)| r == regs && d.is_none());
        let new = match unread {
            // Seen once, by its registers: read its digest now (the state
            // to come back to is this pass's).
            Some((_, unread)) => {
                *unread = Some(digest()?);
                return Ok(Pass::New);
            }
            None if seen => {
                let now = digest()?;
                if self
                    .states
                    .iter()
                    .flatten()
                    .any(|(r, d)| r == regs && *d == Some(now))
                {
                    return Ok(Pass::Spins);
                }
                // Same registers, other memory: another state.
                (*regs, Some(now))
            }
            None => (*regs, None),
        };
        match self.states.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(new);
                Ok(Pass::New)
            }
            None => Ok(Pass::Full),
        }
    }
}

/// The CPU time a thread may run towards a [`SeekKind::Resume`] seek's
/// return address before its steps are given up (it runs on unstepped).
const RESUME_CPU: Duration = Duration::from_millis(50);
/// The wall-clock backstop of such a seek.
const RESUME_WALL: Duration = Duration::from_secs(10);

/// Where a point moved from a compute's interruption was taken: the
/// schedule's counters tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// At a return address.
    Return,
    /// At the exit of the loop the thread was interrupted in.
    LoopExit,
    /// Where the thread was when the search for either ran out of time.
    Anywhere,
}

/// What [`Session::probe_pass`] made of a pass.
// `Spins` holds an execution point (about 300 bytes with its words): one
// verdict per pass, whose stop costs far more.
#[allow(clippy::large_enum_variant)]
enum ProbeVerdict {
    /// A spin: the point the thread is at.
    Spins(rrtest_trace::ExecPoint),
    /// It computes (or made a buffered syscall): the probe is over.
    Computes,
    /// The probe goes on; the thread was let run.
    Continued,
}

/// An interruption being moved to an execution point that replay can find
/// cheaply (see [`Session::interrupted`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Seek {
    /// The address with an execution breakpoint on it.
    pub(super) target: u64,
    /// What reaching it means.
    kind: SeekKind,
    /// When to give up and act wherever the thread is.
    pub(super) deadline: Instant,
    /// Whether the thread blocked SIGTRAP when the breakpoint was armed:
    /// the hit's trap unblocks it, and the hit blocks it again
    /// (`tracee::trap_mask`).
    pub(super) trap_blocked: bool,
}

// A probe's states make `Probe` the large variant (about 700 bytes): one
// search per thread at most, copied at its stops, which cost far more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
enum SeekKind {
    /// Is the thread spinning? `target` is where it was interrupted; it is
    /// if it gets there again in a state it was in there.
    Probe(SpinProbe),
    /// `target` is a return address; the frame has returned when the
    /// thread gets there with a stack pointer above `rsp`.
    Return { rsp: u64 },
    /// `target` is the exit of the loop the thread was interrupted in
    /// ([`crate::tracee::loop_exit`]), with stack pointer `rsp`: the loop
    /// is left when the thread gets there with a stack pointer not below
    /// it (below: a deeper frame of a recursion).
    LoopExit { rsp: u64 },
    /// `target` is where a point was about to be taken (`place`), the
    /// thread's memory read there (`Task::point_snapshot`): the point is
    /// taken at its next arrival there with stack pointer `rsp`, with the
    /// words that changed in between ([`Session::confirm_point`]).
    Confirm { rsp: u64, place: Place },
    /// Chaos: preempt the thread at its `left`-th arrival at `target` (an
    /// address it was just stepped through), where it is then. Given up
    /// after [`RESUME_CPU`] of the thread's CPU time since `cpu_from`, as
    /// a `Resume` seek is.
    Count {
        left: u32,
        cpu_from: Option<Duration>,
    },
    /// Chaos: a stepped thread went into the buffer code (a buffered
    /// syscall) or the system's code; `target` is where it returns to the
    /// program, and there the slice's stepping goes on with what is `left`
    /// of it. Given up after [`RESUME_CPU`] of the thread's CPU time since
    /// `cpu_from` (not wall time: a loaded machine must not change where
    /// the same seed's cuts land).
    Resume {
        left: Steps,
        cpu_from: Option<Duration>,
    },
}

impl Seek {
    /// A [`SeekKind::Count`] seek: the `hits`-th arrival at `target`; the
    /// thread's CPU time now is `cpu_from`, and `deadline` the wall-clock
    /// backstop.
    pub(super) fn count(
        target: u64,
        hits: u32,
        cpu_from: Option<Duration>,
        deadline: Instant,
    ) -> Self {
        Seek {
            target,
            kind: SeekKind::Count {
                left: hits.max(1),
                cpu_from,
            },
            deadline,
            trap_blocked: false,
        }
    }

    /// A [`SeekKind::Resume`] seek: at `target`, step on with `left`; the
    /// thread's CPU time now is `cpu_from`.
    pub(super) fn resume(target: u64, left: Steps, cpu_from: Option<Duration>) -> Self {
        Seek {
            target,
            kind: SeekKind::Resume { left, cpu_from },
            // A backstop only (the CPU time decides): a thread that cannot
            // be read.
            deadline: Instant::now() + RESUME_WALL,
            trap_blocked: false,
        }
    }

    /// The seek with [`Seek::trap_blocked`] set to `blocked`.
    pub(super) fn trap_blocked(self, blocked: bool) -> Self {
        Seek {
            trap_blocked: blocked,
            ..self
        }
    }

    /// The steps left to take where a [`SeekKind::Resume`] seek ends.
    pub(super) fn steps_left(&self) -> Option<Steps> {
        match self.kind {
            SeekKind::Resume { left, .. } => Some(left),
            _ => None,
        }
    }

    /// Whether the seek is over without reaching its target: its wall-clock
    /// deadline passed, or for a [`SeekKind::Resume`] seek, `cpu_now` (the
    /// thread's CPU time, if read) is [`RESUME_CPU`] past its start.
    pub(super) fn expired(&self, cpu_now: Option<Duration>) -> bool {
        if let Some(from) = self.cpu_from() {
            if let Some(now) = cpu_now {
                return now.saturating_sub(from) >= RESUME_CPU || Instant::now() >= self.deadline;
            }
        }
        Instant::now() >= self.deadline
    }

    /// The thread's CPU time when a chaos seek (`Count`, `Resume`) began.
    pub(super) fn cpu_from(&self) -> Option<Duration> {
        match self.kind {
            SeekKind::Count { cpu_from, .. } | SeekKind::Resume { cpu_from, .. } => cpu_from,
            _ => None,
        }
    }
}

/// The wall-clock backstop of a counted slice (its limit is 50 ms of the
/// thread's CPU time, [`RESUME_CPU`]: not the clock, which a loaded
/// machine stretches, so the same seed cuts at the same places).
pub(super) const COUNT_WALL: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a counted or stepped slice may end at a point where `tid` now
/// is: not while it blocks `SIGSTKFLT`. Replay once counted its way to such
/// points with a perf counter whose signal that was, which a thread
/// blocking it ran past; replay searches every point now (a blocked
/// `SIGTRAP` included), but the chaos schedules stay what they were, a
/// slice in such a thread (a shell's vfork child, glibc's `clone`) going
/// on to where it unblocks it.
pub(super) fn point_findable(tid: Tid) -> bool {
    const SIGSTKFLT_BIT: u64 = 1 << (libc::SIGSTKFLT - 1);
    crate::tracee::blocked_signals(tid).is_ok_and(|mask| mask & SIGSTKFLT_BIT == 0)
}

/// Where the instruction at `tid`'s `ip` ends, if it is a rep-prefixed
/// (`rep`, `repe`, `repne`) string instruction (`movs`, `stos`, `cmps`,
/// `scas`, `lods`, `ins`, `outs`); `None` for any other or unreadable code.
pub(super) fn rep_string_end(tid: Tid, ip: u64) -> Option<u64> {
    let mut code = [0u8; 15];
    // The instruction may end near the end of its mapping: read what can be.
    let mem = RemoteMem::new(tid);
    let len = (1..=code.len())
        .rev()
        .find(|&n| mem.read_exact(ip, &mut code[..n]).is_ok())?;
    rep_string_len(&code[..len], ip).map(|n| ip + n)
}

/// The length of the instruction at the start of `code` (at address `ip`)
/// if it is a rep-prefixed string instruction.
fn rep_string_len(code: &[u8], ip: u64) -> Option<u64> {
    let mut decoder = iced_x86::Decoder::with_ip(64, code, ip, iced_x86::DecoderOptions::NONE);
    let insn = decoder.decode();
    (!insn.is_invalid() && crate::tracee::filter_site::is_rep_string(&insn))
        .then_some(insn.len() as u64)
}

impl Session {
    /// The running thread stopped where we interrupted it: deliver a
    /// held-back signal there, or let another thread run. Either way the
    /// place is recorded as an execution point.
    ///
    /// Replay finds a point by stopping at every execution of its ip and
    /// comparing registers, so a point inside a loop whose state changes at
    /// each turn (a compute loop) costs a stop per turn. The recorder looks
    /// for a cheaper point first:
    /// 1. a spin loop (the thread comes back to the same ip in the same
    ///    state): replay finds it at its first turn;
    /// 2. else the return address of the current function (found by
    ///    scanning the stack), executed once per call;
    /// 3. a syscall on the way ends the search (the signal is delivered
    ///    before it, the preemption happens at it);
    /// 4. if none comes within [`SEEK_LIMIT`] (the loop waits for the very
    ///    signal we hold back), it acts wherever the thread then is, and
    ///    replay pays for the search.
    pub(super) fn interrupted(&mut self, tid: Tid) -> Result<(), Error> {
        if self.steps_for_tracer(tid) {
            // A tracee stepping for its tracer stops after one instruction
            // anyway: no point, no probe; its step goes on.
            return self.go_on(tid);
        }
        let regs = ptrace::getregs(tid).map_err(ptrace_err("PTRACE_GETREGS", tid))?;
        let pid = self.tasks[&tid].pid;
        if let Some(in_buffer_code) = self
            .spaces
            .get(&pid)
            .map(|space| space.in_buffer_code(regs.rip, regs.rsp))
        {
            // In a buffered syscall that blocked: unwind it.
            if let Some(nr) = self.unwind_interrupted(tid, &regs)? {
                debug!(tid, nr, "unwound a blocked buffered syscall");
                if let Some(task) = self.tasks.get_mut(&tid) {
                    task.blocked_buffered = true;
                    task.spin_check = false;
                }
                self.stats.desched_events += 1;
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
            if in_buffer_code {
                // Never stop a thread here: let it leave the buffer code;
                // a later tick tries again.
                trace!(
                    tid,
                    ip = regs.rip,
                    "interrupted in buffer code: not a point"
                );
                // A chaos seek whose time is not up goes on to its target
                // (the interrupt was for a blocked buffered syscall that
                // its desched event unwound first, say): dropped here, the
                // slice ended at the thread's next syscall or not as a
                // tick came.
                let expired = self.tasks[&tid].seeking.is_some_and(|seek| {
                    seek.cpu_from().is_none() || seek.expired(super::schedule::cpu_time(tid))
                });
                if expired {
                    ptrace::exec_breakpoint(tid, None)
                        .map_err(ptrace_err("clearing a breakpoint", tid))?;
                    self.tasks.get_mut(&tid).expect("task exists").seeking = None;
                }
                self.tasks.get_mut(&tid).expect("task exists").spin_check = false;
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
        }
        if let Some(end) = rep_string_end(tid, regs.rip) {
            // Interrupted at a rep string instruction, perhaps between two
            // of its iterations (rcx part-way down): a point there is not
            // one replay can find (its search stops where an instruction
            // starts), nor are a spin probe's passes. The interruption
            // moves to where the instruction ends.
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            let task = self.tasks.get_mut(&tid).expect("task exists");
            task.seeking = None;
            if task.spin_check {
                // Not a spin: a string instruction makes progress.
                return self.drop_spin_check(tid);
            }
            return self.cut_after_rep(tid, regs.rip, end, None);
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let unhit = task.seeking.and_then(|s| match s.kind {
            SeekKind::Probe(p) if p.unhit() => Some(p.armed),
            _ => None,
        });
        // A probe whose place ahead the thread did not reach: this time
        // it is probed where it is.
        let mut ahead_missed = false;
        if let Some(armed) = unhit {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            task.seeking = None;
            if armed {
                // A probe armed at its spin point as it resumed, which it
                // did not reach in time: a spin check where it is instead.
                trace!(tid, ip = regs.rip, "no arrival at the armed spin point");
                task.spin_check = true;
            } else {
                trace!(tid, ip = regs.rip, "no arrival at the probe's place ahead");
                ahead_missed = true;
            }
        } else if let Some(seek) = task.seeking.take() {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            if seek.steps_left().is_some() && !task.spin_check {
                // Out of the buffer code too late (a slow buffered
                // syscall): the slice's stepping is given up; it runs on.
                trace!(tid, ip = regs.rip, "no return from the buffer code in time");
                return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
            }
            if task.spin_check {
                // Checked for a spin, it did not come round a loop in time:
                // it computes; let it run.
                return self.drop_spin_check(tid);
            }
            // The search ran out of time: act where the thread is, once
            // it comes round there again (for the point's words, as at a
            // return address), or here if it was coming round already:
            // with the words that changed since its last arrival there,
            // which tell this pass from the ones before as well as any
            // (the values are the point's; a point's words are its memory
            // at the point, whichever addresses they are).
            if let SeekKind::Confirm { .. } = seek.kind {
                return self.act_with_changed_words(tid, &regs, Place::Anywhere);
            }
            if let SeekKind::LoopExit { .. } = seek.kind {
                // Not out of its loop in time: the return address, if any.
                if let Some(target) = find_return_address(tid, &regs) {
                    let kind = SeekKind::Return { rsp: regs.rsp };
                    return self.move_interruption(tid, &regs, target, kind, SEEK_LIMIT);
                }
            }
            let point =
                exec_point(tid, &regs).map_err(ptrace_err("reading an execution point", tid))?;
            return self.confirm_point(tid, &regs, seek, point, Place::Anywhere);
        }
        if !ahead_missed {
            if let Some(place) = self.code.probe_place(pid, tid, regs.rip) {
                // The point would be where replay searches stop by stop:
                // probe a little further on, where its filter can patch.
                trace!(tid, ip = regs.rip, place, "probing for a spin loop ahead");
                self.stats.schedule.probes_ahead += 1;
                return self.arm_probe(tid, place, SpinProbe::ahead(), PROBE_LIMIT);
            }
        }
        trace!(tid, ip = regs.rip, "probing for a spin loop");
        ptrace::exec_breakpoint(tid, Some(regs.rip))
            .map_err(ptrace_err("setting a breakpoint", tid))?;
        let first =
            exec_point(tid, &regs).map_err(ptrace_err("reading an execution point", tid))?;
        let committed = self.committed(tid);
        trace!(tid, ?committed, ?first, "a probe's first pass");
        self.snapshot_first_pass(tid, regs.rsp);
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.seeking = Some(Seek {
            target: regs.rip,
            kind: SeekKind::Probe(SpinProbe::new(&first, committed)),
            deadline: Instant::now() + PROBE_LIMIT,
            trap_blocked: false,
        });
        // The breakpoint would fire at once on the current instruction:
        // step over it first.
        self.step_then_continue(tid, regs.rip)
    }

    /// A cut that would land on a rep-prefixed string instruction at `ip`
    /// (at its start or, as a single step stops after each iteration at the
    /// same ip, inside it) lands where the instruction ends instead: the
    /// thread runs at full speed to `end` (a debug-register breakpoint, one
    /// arrival, as a counted slice's) and is preempted there. Replay's point
    /// search stops where an instruction starts (its breakpoint, its perf
    /// counter and its hot-loop filter all count instruction starts), so it
    /// could not find a point between two iterations; the instruction's
    /// remaining iterations (up to rcx, unbounded) are not stepped one by one.
    /// An instruction that ends where the thread's chaos slice started
    /// (`start_ip`: a loop of just the instruction and a jump back) gets no
    /// cut this slice. An interruption ([`Session::interrupted`]) that
    /// stopped the thread there moves the same way.
    pub(super) fn cut_after_rep(
        &mut self,
        tid: Tid,
        ip: u64,
        end: u64,
        start_ip: Option<u64>,
    ) -> Result<(), Error> {
        if Some(end) == start_ip {
            trace!(
                tid,
                ip,
                "a cut on a rep string instruction ending at the slice's start: none"
            );
            return self.let_run(tid);
        }
        trace!(
            tid,
            ip,
            end,
            "a cut on a rep string instruction: moved to its end"
        );
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.seeking = Some(Seek::count(
            end,
            1,
            super::schedule::cpu_time(tid),
            std::time::Instant::now() + COUNT_WALL,
        ));
        self.step_then_continue(tid, end)
    }

    /// The records in `tid`'s syscall buffer now (None: it has none, or
    /// they cannot be read).
    fn committed(&self, tid: Tid) -> Option<u32> {
        let pid = self.tasks.get(&tid)?.pid;
        self.spaces
            .contains_key(&pid)
            .then(|| syscallbuf::committed_records(tid).ok())
            .flatten()
    }

    /// A thread probed for a spin loop passed the probed address again, in
    /// the state `regs` shows: a spin if it is a state it was in there;
    /// else the state is remembered and the probe goes on, or the probe is
    /// over (full, out of time, or a buffered syscall came between).
    fn probe_pass(
        &mut self,
        tid: Tid,
        regs: &Regs,
        seek: Seek,
        mut probe: SpinProbe,
    ) -> Result<ProbeVerdict, Error> {
        let committed = self.committed(tid);
        trace!(tid, ?committed, regs = ?crate::tracee::point_regs(regs), "a probe's pass");
        probe.passes += 1;
        let verdict = |probe: &SpinProbe, spins: bool| {
            debug!(
                tid,
                ip = regs.rip,
                spins,
                armed = probe.armed,
                passes = probe.passes,
                probe_us = probe.began.elapsed().as_micros() as u64,
                digest_us = probe.digest_time.as_micros() as u64,
                "spin probe over"
            );
        };
        if probe.armed && probe.passes > ARMED_PASSES {
            verdict(&probe, false);
            return Ok(ProbeVerdict::Computes);
        }
        let mut seek = seek;
        let mut point = None;
        if probe.unhit() || committed != probe.committed {
            // Buffered syscalls since the probe began: progress. A thread
            // checked for a spin does not spin (unless its probe was armed
            // at its spin point as it resumed: it may make some on its way
            // there); else the probe starts again here.
            if !probe.unhit() && !probe.armed && self.tasks[&tid].spin_check {
                verdict(&probe, false);
                return Ok(ProbeVerdict::Computes);
            }
            let at = Instant::now();
            let here =
                exec_point(tid, regs).map_err(ptrace_err("reading an execution point", tid))?;
            if probe.unhit() {
                seek.deadline = Instant::now() + PROBE_LIMIT;
            }
            probe = probe.restart(&here, committed);
            self.snapshot_first_pass(tid, regs.rsp);
            probe.digest_time += at.elapsed();
        } else {
            let maps = probe.maps;
            let at = Instant::now();
            let pass = probe.pass(&crate::tracee::point_regs(regs), || {
                let here = crate::tracee::exec_point_again(tid, regs, maps)
                    .map_err(ptrace_err("reading an execution point", tid))?;
                point = Some(here);
                Ok::<_, Error>(here.digest)
            })?;
            if point.is_some() {
                probe.digest_time += at.elapsed();
            }
            match (pass, point) {
                (Pass::Spins, Some(here)) => {
                    verdict(&probe, true);
                    return Ok(ProbeVerdict::Spins(here));
                }
                (Pass::Spins | Pass::Full, _) => {
                    verdict(&probe, false);
                    return Ok(ProbeVerdict::Computes);
                }
                (Pass::New, _) if Instant::now() >= seek.deadline => {
                    verdict(&probe, false);
                    return Ok(ProbeVerdict::Computes);
                }
                (Pass::New, _) => {}
            }
        }
        trace!(tid, ip = regs.rip, "probing on: a pass in a new state");
        self.tasks.get_mut(&tid).expect("task exists").seeking = Some(Seek {
            kind: SeekKind::Probe(probe),
            ..seek
        });
        self.pass_breakpoint(tid, regs, seek.target)?;
        Ok(ProbeVerdict::Continued)
    }

    /// A thread searching for a cheap execution point stopped at its breakpoint.
    pub(super) fn seek_hit(&mut self, tid: Tid, regs: &Regs, seek: Seek) -> Result<(), Error> {
        if seek.trap_blocked {
            reblock_trap(tid)?;
        }
        let found = match seek.kind {
            SeekKind::Resume { left, .. } => {
                // Back in the program from the buffer code: the slice's
                // stepping goes on.
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
                self.tasks.get_mut(&tid).expect("task exists").seeking = None;
                return self.run_steps(tid, left);
            }
            SeekKind::Probe(probe) => match self.probe_pass(tid, regs, seek, probe)? {
                ProbeVerdict::Spins(mut point) => {
                    ptrace::exec_breakpoint(tid, None)
                        .map_err(ptrace_err("clearing a breakpoint", tid))?;
                    let task = self.tasks.get_mut(&tid).expect("task exists");
                    task.seeking = None;
                    // Its digest is the one of a pass before: what changed
                    // since the probe's first pass is outside it. Where
                    // nothing did, what changed since early in its slice.
                    if let Some(snapshot) = task.point_snapshot.take() {
                        point.words = snapshot.changed_words(tid);
                    }
                    if let Some((_, snapshot)) =
                        self.slice_snapshot.take().filter(|&(t, _)| t == tid)
                    {
                        if point.words.is_empty() {
                            point.words = snapshot.changed_words(tid);
                            trace!(tid, words = ?point.words.as_slice(), "a spin point's words since early in its slice");
                        }
                    }
                    self.stats.schedule.points_spin += 1;
                    return self.act_at(tid, point);
                }
                ProbeVerdict::Computes => false,
                ProbeVerdict::Continued => return Ok(()),
            },
            SeekKind::Return { rsp } => regs.rsp > rsp,
            SeekKind::LoopExit { rsp } => regs.rsp >= rsp,
            SeekKind::Confirm { rsp, place } if regs.rsp == rsp => {
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
                self.tasks.get_mut(&tid).expect("task exists").seeking = None;
                return self.act_with_changed_words(tid, regs, place);
            }
            // Another frame (a recursion): on to this one's next arrival.
            SeekKind::Confirm { .. } => false,
            SeekKind::Count { left, cpu_from } => {
                // At the last arrival, only where replay can find it (else
                // the next arrival, until the seek is given up).
                if left > 1 || !point_findable(tid) {
                    let task = self.tasks.get_mut(&tid).expect("task exists");
                    task.seeking = Some(Seek {
                        kind: SeekKind::Count {
                            left: left.saturating_sub(1).max(1),
                            cpu_from,
                        },
                        ..seek
                    });
                    return self.pass_breakpoint(tid, regs, seek.target);
                }
                true
            }
        };
        if found {
            let place = match seek.kind {
                SeekKind::Return { .. } => Some(Place::Return),
                SeekKind::LoopExit { .. } => Some(Place::LoopExit),
                _ => None,
            };
            if let Some(place) = place {
                let point =
                    exec_point(tid, regs).map_err(ptrace_err("reading an execution point", tid))?;
                return self.confirm_point(tid, regs, seek, point, place);
            }
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            self.tasks.get_mut(&tid).expect("task exists").seeking = None;
            match seek.kind {
                SeekKind::Probe(_) => self.stats.schedule.points_spin += 1,
                // A chaos cut: where the policy's count ended, anywhere.
                SeekKind::Count { .. } => self.count_point(Place::Anywhere),
                SeekKind::Return { .. }
                | SeekKind::LoopExit { .. }
                | SeekKind::Confirm { .. }
                | SeekKind::Resume { .. } => {}
            }
            return self.act_at_point(tid, regs);
        }
        if let SeekKind::Probe(_) = seek.kind {
            if self.tasks[&tid].spin_check {
                // Checked for a spin: it came round in another state (it
                // computes, or spins with a changing count, which a
                // return address would take long to end). Let it run.
                ptrace::exec_breakpoint(tid, None)
                    .map_err(ptrace_err("clearing a breakpoint", tid))?;
                return self.drop_spin_check(tid);
            }
            // Not a spin loop, but a loop (it came round): try the loop's
            // exit, else the return address.
            if let Some(target) = crate::tracee::loop_exit::find(tid, regs.rip) {
                let kind = SeekKind::LoopExit { rsp: regs.rsp };
                return self.move_interruption(tid, regs, target, kind, LOOP_EXIT_LIMIT);
            }
            match find_return_address(tid, regs) {
                Some(target) => {
                    let kind = SeekKind::Return { rsp: regs.rsp };
                    return self.move_interruption(tid, regs, target, kind, SEEK_LIMIT);
                }
                None => {
                    self.tasks.get_mut(&tid).expect("task exists").seeking = None;
                    ptrace::exec_breakpoint(tid, None)
                        .map_err(ptrace_err("clearing a breakpoint", tid))?;
                    self.count_point(Place::Anywhere);
                    return self.act_at_point(tid, regs);
                }
            }
        }
        // A deeper frame returning there (recursion): past it, and on.
        self.pass_breakpoint(tid, regs, seek.target)
    }

    /// Moves `tid`'s interruption, where it is stopped with `regs`, to
    /// `target` (a return address, [`find_return_address`], or a loop's
    /// exit, [`crate::tracee::loop_exit`]: `kind`), sought for `limit`.
    fn move_interruption(
        &mut self,
        tid: Tid,
        regs: &Regs,
        target: u64,
        kind: SeekKind,
        limit: Duration,
    ) -> Result<(), Error> {
        trace!(tid, ip = regs.rip, target, ?kind, "moving the interruption");
        self.tasks.get_mut(&tid).expect("task exists").seeking = Some(Seek {
            target,
            kind,
            deadline: Instant::now() + limit,
            trap_blocked: false,
        });
        self.step_then_continue(tid, target)
    }

    /// Acts at the point where `tid` is stopped with `regs`, a confirmation
    /// over (`SeekKind::Confirm`: the thread came round, or did not in
    /// time), with the memory words that changed since the read at its
    /// first arrival (`Task::point_snapshot`), counted at `place`.
    fn act_with_changed_words(&mut self, tid: Tid, regs: &Regs, place: Place) -> Result<(), Error> {
        self.count_point(place);
        let snapshot = self
            .tasks
            .get_mut(&tid)
            .expect("task exists")
            .point_snapshot
            .take();
        let mut point =
            exec_point(tid, regs).map_err(ptrace_err("reading an execution point", tid))?;
        if let Some(snapshot) = snapshot {
            point.words = snapshot.changed_words(tid);
        }
        trace!(tid, ip = regs.rip, ?place, words = ?point.words.as_slice(), "a confirmed point");
        self.act_at(tid, point)
    }

    /// Counts a point taken at `place` in the schedule's counters.
    fn count_point(&mut self, place: Place) {
        let counters = &mut self.stats.schedule;
        match place {
            Place::Return => counters.points_return += 1,
            Place::LoopExit => counters.points_loop_exit += 1,
            Place::Anywhere => counters.points_anywhere += 1,
        }
    }

    /// A spin probe's first pass (or its first since it started again):
    /// the memory its digest leaves out, read for the words of the spin
    /// point, if the probe ends so, at a later pass in the same registers
    /// and digest (`Task::point_snapshot`; [`crate::tracee::words`]).
    fn snapshot_first_pass(&mut self, tid: Tid, rsp: u64) {
        let snapshot = crate::tracee::words::Snapshot::take(tid, rsp, true);
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let earlier = std::mem::replace(&mut task.point_snapshot, snapshot);
        // (A probe that starts again, or one armed at the last spin point
        // that gave way to one where the thread then was.)
        self.keep_earliest(tid, earlier);
    }

    /// Keeps `earlier`, a spin probe's first pass in `tid`'s slice, as the
    /// slice's earliest snapshot (`Session::slice_snapshot`) if there is
    /// none yet.
    fn keep_earliest(&mut self, tid: Tid, earlier: Option<crate::tracee::words::Snapshot>) {
        if self.slice_snapshot.is_none() {
            self.slice_snapshot = earlier.map(|s| (tid, s));
        }
    }

    /// A thread that spun before, resumed while others wait without a
    /// probe armed at its spin point: the memory its digest leaves out,
    /// read as its slice starts (`Session::slice_snapshot`). Its first spin
    /// probe starts only after it ran a while without a syscall, and turns
    /// of its loop before may have passed the probe's ip in the same
    /// registers and digest with other memory: a stealer that took items
    /// (counted in memory another thread allocated) before it spun on an
    /// empty pool, where replay stopped it. A spin point where nothing
    /// changed between the probe's passes takes the words that changed
    /// since the slice's earliest snapshot.
    pub(super) fn snapshot_slice_start(&mut self, tid: Tid) {
        let wanted = self.others_ready(tid) && self.tasks.get(&tid).is_some_and(|t| t.spun_ever);
        let snapshot = wanted
            .then(|| ptrace::getregs(tid).ok())
            .flatten()
            .and_then(|regs| crate::tracee::words::Snapshot::take(tid, regs.rsp, true));
        self.slice_snapshot = snapshot.map(|s| (tid, s));
    }

    /// A point about to be taken at `point` (`place`: a return address, a
    /// loop's exit, or where a search ran out of time), where `tid` is
    /// stopped with `regs` by `seek`'s breakpoint: taken one arrival
    /// later, with the memory words that changed in between
    /// ([`crate::tracee::words`]). Where the thread's registers are the
    /// same at each turn of its loop and the digest does not see what
    /// changes (a counter in a thread's `malloc` arena), replay could not
    /// tell the turns apart. A thread that does not come back by
    /// [`CONFIRM_LIMIT`] is preempted where it is then, with the words
    /// that changed since ([`Session::interrupted`]); one whose memory is
    /// too large to read is preempted here, without words. (A spin's point
    /// gets its words from the probe's passes:
    /// [`Session::snapshot_first_pass`].) The point is counted at `place`
    /// where it is taken.
    fn confirm_point(
        &mut self,
        tid: Tid,
        regs: &Regs,
        seek: Seek,
        point: rrtest_trace::ExecPoint,
        place: Place,
    ) -> Result<(), Error> {
        let snapshot = crate::tracee::words::Snapshot::take(tid, regs.rsp, false);
        let task = self.tasks.get_mut(&tid).expect("task exists");
        let Some(snapshot) = snapshot else {
            ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
            task.seeking = None;
            self.count_point(place);
            return self.act_at(tid, point);
        };
        task.point_snapshot = Some(snapshot);
        task.seeking = Some(Seek {
            target: regs.rip,
            kind: SeekKind::Confirm {
                rsp: regs.rsp,
                place,
            },
            deadline: Instant::now() + CONFIRM_LIMIT,
            ..seek
        });
        // At a return address the breakpoint is on the ip already (the
        // seek's target); elsewhere the step re-arms it there.
        self.pass_breakpoint(tid, regs, regs.rip)
    }

    /// Delivers a held-back signal, or preempts the thread, at the execution
    /// point it is stopped at.
    fn act_at_point(&mut self, tid: Tid, regs: &Regs) -> Result<(), Error> {
        let point = exec_point(tid, regs).map_err(ptrace_err("reading an execution point", tid))?;
        self.act_at(tid, point)
    }

    /// [`Session::act_at_point`] with the point read already.
    fn act_at(&mut self, tid: Tid, point: rrtest_trace::ExecPoint) -> Result<(), Error> {
        if let Some((signo, info)) = self.take_deliverable(tid) {
            self.stats.async_events += 1;
            if self.is_emulated_tracee(tid) && signo != libc::SIGKILL {
                // A tracee's signal: it stops here for its tracer (ptrace
                // emulated), a point replay runs it to; a signal its tracer
                // resumes it with is delivered where it stands.
                self.emit(Event::Preempt { tid, point })?;
                if let Some(task) = self.tasks.get_mut(&tid) {
                    task.resumed_at = None;
                }
                self.signal_stop(tid, signo, &info, SignalKind::AtSyscallExit);
                return Ok(());
            }
            return self.deliver_now(tid, signo, info, SignalKind::AtPoint(point));
        }
        let spin_checked = self.tasks.get_mut(&tid).is_some_and(|t| {
            if t.spin_check {
                t.spun = true;
                t.spun_ever = true;
                t.spin_ip = Some(point.ip);
            }
            std::mem::take(&mut t.spin_check)
        });
        if !self.others_ready(tid) {
            self.sched.restart_slice();
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        if spin_checked {
            self.stats.schedule.spins_cut += 1;
        }
        self.stats.async_events += 1;
        self.emit(Event::Preempt { tid, point })?;
        let idle_slice = self.sched.slice_syscalls() == 0;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.set_ready(Pending::Nothing);
        task.cut_spinning = spin_checked && !task.computed && idle_slice;
        task.resumed_at = None;
        self.current = None;
        Ok(())
    }

    /// A thread checked for a spin does not spin: it runs on, its slice
    /// unchanged (its breakpoint is cleared), and is checked again after
    /// another [`super::schedule::SPIN_SLICE`] without a syscall.
    fn drop_spin_check(&mut self, tid: Tid) -> Result<(), Error> {
        trace!(tid, "not spinning: it keeps its slice");
        self.sched.spin_check_failed();
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.seeking = None;
        task.spin_check = false;
        task.spun = false;
        task.spin_ip = None;
        task.computed = true;
        // Its probe's first pass is early in the slice.
        let earlier = task.point_snapshot.take();
        self.keep_earliest(tid, earlier);
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Resumes `tid`, last preempted spinning at `ip`, with a probe for a
    /// spin armed there: it is a spin check from its first arrival at the
    /// spin point (where it likely spins again, waiting for the next
    /// hand-off), instead of after the tick finds it 0.2 ms without a
    /// syscall (`SPIN_SLICE_AGAIN`). A thread that does not arrive
    /// within [`ARMED_LIMIT`] is probed where it then is; one whose passes
    /// show it computing runs on, unarmed.
    pub(super) fn arm_spin_point(&mut self, tid: Tid, ip: u64) -> Result<(), Error> {
        trace!(tid, ip, "arming the last spin point");
        self.tasks.get_mut(&tid).expect("task exists").spin_check = true;
        self.arm_probe(tid, ip, SpinProbe::armed(), ARMED_LIMIT)
    }

    /// Resumes `tid` with `probe`, which has no pass yet, armed at `ip`:
    /// its first arrival there within `limit` is the probe's first pass;
    /// an interruption before that ends it ([`Session::interrupted`]).
    fn arm_probe(
        &mut self,
        tid: Tid,
        ip: u64,
        probe: SpinProbe,
        limit: Duration,
    ) -> Result<(), Error> {
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.seeking = Some(Seek {
            target: ip,
            kind: SeekKind::Probe(probe),
            deadline: Instant::now() + limit,
            trap_blocked: false,
        });
        let rip = ptrace::getregs(tid)
            .map_err(ptrace_err("PTRACE_GETREGS", tid))?
            .rip;
        if rip == ip {
            // Resuming at the point itself: that is no pass of the probe
            // (the resume address is never a point).
            return self.step_then_continue(tid, ip);
        }
        let trap_blocked = blocks_trap(tid)?;
        ptrace::exec_breakpoint(tid, Some(ip)).map_err(ptrace_err("setting a breakpoint", tid))?;
        if let Some(seek) = self.tasks.get_mut(&tid).and_then(|t| t.seeking.as_mut()) {
            seek.trap_blocked = trap_blocked;
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }

    /// Lets `tid`, stopped (`regs`) by its breakpoint's trap at `target`,
    /// run on to the breakpoint's next arrival with the breakpoint left
    /// armed: the kernel set the resume flag (RF) in its rflags at the
    /// trap, so the instruction there runs once without trapping again.
    /// One stop a pass, where stepping past it ([`Self::step_then_continue`])
    /// took a second debug trap (the step's) and three debug-register
    /// writes, each a new breakpoint for the kernel: a pass of a spin
    /// probe cost about 100 us on a VM, a debug trap alone about 28 us.
    /// Without RF (not stopped by that trap), it steps past.
    fn pass_breakpoint(&mut self, tid: Tid, regs: &Regs, target: u64) -> Result<(), Error> {
        if regs.rip == target && regs.eflags & ptrace::RESUME_FLAG != 0 {
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        self.step_then_continue(tid, target)
    }

    /// Steps one instruction with the breakpoint off, re-arms it at
    /// `target`, and lets the thread run. The step's trap and the
    /// breakpoint's leave a blocked SIGTRAP blocked (`tracee::trap_mask`).
    pub(super) fn step_then_continue(&mut self, tid: Tid, target: u64) -> Result<(), Error> {
        ptrace::exec_breakpoint(tid, None).map_err(ptrace_err("clearing a breakpoint", tid))?;
        let trap_blocked = blocks_trap(tid)?;
        // A step that never completes is a recorder bug (a signal stepped
        // again and again, as a fault once was): an error that says so,
        // not a recorder busy for ever, deaf to SIGTERM (its main loop,
        // which takes termination requests, never comes back).
        const MAX_TRIES: u32 = 100_000;
        for tries in 0.. {
            if tries == MAX_TRIES {
                return Err(Error::Ptrace {
                    op: "stepping past a breakpoint",
                    tid,
                    source: io::Error::other(format!(
                        "the instruction at {target:#x} did not complete in {MAX_TRIES} steps"
                    )),
                });
            }
            ptrace::singlestep(tid, 0).map_err(ptrace_err("PTRACE_SINGLESTEP", tid))?;
            match ptrace::wait_tid(tid).map_err(ptrace_err("waitpid", tid))? {
                ev @ WaitEvent::Signal {
                    signo: libc::SIGTRAP,
                    ..
                } => {
                    if trap_blocked {
                        reblock_trap(tid)?;
                    }
                    if self.program_slot_hit(tid) {
                        // The step hit a hardware breakpoint of the
                        // program's (a tracee's): its tracer's stop, the
                        // search dropped there.
                        return self.handle(ev);
                    }
                    break;
                }
                // The instruction was a syscall: handle its entry as usual
                // (the search ends there).
                WaitEvent::Event {
                    event: libc::PTRACE_EVENT_SECCOMP,
                    ..
                } => return self.syscall_entry(tid),
                // The instruction was a trapped rdtsc: emulate it, which
                // completes the step.
                WaitEvent::Signal {
                    signo: libc::SIGSEGV,
                    ..
                } if self.emulate_trapped_rdtsc(tid)? => break,
                // Another signal arrived first: hold it back too (a desched
                // event's is dropped), step again. But the instruction's
                // own fault (a stack overflowed at the breakpoint's
                // instruction, say) comes again at every step: it is the
                // program's signal, taken as at any stop, with the
                // breakpoint armed again for the search to go on after it
                // (a handler that returns there). Stepped again, it looped
                // for ever.
                ev @ WaitEvent::Signal { signo, .. } => {
                    let info =
                        ptrace::getsiginfo(tid).map_err(ptrace_err("PTRACE_GETSIGINFO", tid))?;
                    if super::signals::is_fault(signo, ptrace::siginfo_code(&info)) {
                        ptrace::exec_breakpoint(tid, Some(target))
                            .map_err(ptrace_err("setting a breakpoint", tid))?;
                        if let Some(seek) =
                            self.tasks.get_mut(&tid).and_then(|t| t.seeking.as_mut())
                        {
                            seek.trap_blocked = trap_blocked;
                        }
                        trace!(tid, signo, "the stepped instruction faulted");
                        return self.handle(ev);
                    }
                    if !self.is_desched_signal(tid, signo, &info) {
                        self.hold_back(tid, signo, info);
                    }
                }
                // A late `PTRACE_INTERRUPT`'s stop: step again.
                ev if self.took_late_interrupt(tid, &ev) => {}
                ev => {
                    return Err(Error::Ptrace {
                        op: "stepping past a breakpoint",
                        tid,
                        source: io::Error::other(format!("unexpected stop {ev:?}")),
                    })
                }
            }
        }
        ptrace::exec_breakpoint(tid, Some(target))
            .map_err(ptrace_err("setting a breakpoint", tid))?;
        if let Some(seek) = self.tasks.get_mut(&tid).and_then(|t| t.seeking.as_mut()) {
            seek.trap_blocked = trap_blocked;
        }
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
    }
}

/// A likely return address on the stack of a thread stopped at `regs`: the
/// first word above the stack pointer that points into executable memory
/// right after a call instruction. A wrong guess costs only time: the
/// recorder gives up after [`SEEK_LIMIT`].
fn find_return_address(tid: Tid, regs: &Regs) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    let mappings: Vec<(u64, u64, bool)> = maps
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let range = parts.next()?;
            let perms = parts.next()?;
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
                perms.contains('x'),
            ))
        })
        .collect();
    // Each of the words read is looked up here: the executable mappings
    // alone, as few as before the search read the others.
    let exec: Vec<(u64, u64)> = mappings
        .iter()
        .filter(|&&(a, _, x)| x && a != rrtest_abi::FIXED_PAGE_ADDR)
        .map(|&(a, b, _)| (a, b))
        .collect();
    let in_exec = |v: u64| exec.iter().any(|&(a, b)| v >= a + 8 && v < b);
    let mem = RemoteMem::new(tid);
    let mut words = [0u8; 8 * 256];
    // Up to 2 KiB, not across the end of the stack's page run, and only
    // what is mapped: a stack pointer below the main thread's stack
    // mapping (a frame not yet touched) is read from the mapping's start
    // (the words between are zeros to be). A read below it through
    // `/proc/PID/mem`, where `RemoteMem` falls back, would grow the
    // mapping (the kernel does for such reads), which the program's own
    // run, and replay's, would not have done there.
    let end = regs.rsp + words.len().min((4096 - (regs.rsp % 4096) as usize) + 4096) as u64;
    let &(start, mapped_end, _) = mappings
        .iter()
        .find(|&&(a, b, _)| b > regs.rsp && a < end)?;
    let from = start.max(regs.rsp);
    let len = (end.min(mapped_end) - from) as usize;
    mem.read_exact(from, &mut words[..len]).ok()?;
    let mut candidates = words[..len].chunks_exact(8).filter_map(|w| {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if !in_exec(v) {
            return None;
        }
        let mut before = [0u8; 7];
        mem.read_exact(v - 7, &mut before).ok()?;
        crate::tracee::ends_with_call(&before).then_some(v)
    });
    let first = candidates.next()?;
    // Replay searches a point in a hot loop with an in-program filter
    // (`replayer/session/point_filter.rs`) that traps only where the
    // registers match; where it cannot patch the site (a `pop; ret` right
    // after the call: the patch would cover the `ret`), it stops at every
    // pass. A return address there is passed once per call of a hot
    // iterator's `next`, and replay took more than its 30 s search limit
    // (`threads::spin_then_park_lock_contention`, debug build): take the
    // first caller's return address the filter can patch instead, if any
    // within the words read.
    let patchable = |v: u64| crate::tracee::filter_site::find(tid, v, &maps).is_ok();
    if patchable(first) {
        return Some(first);
    }
    let chosen = candidates
        .take(FILTER_CANDIDATES)
        .find(|&v| patchable(v))
        .unwrap_or(first);
    debug!(
        tid,
        first, chosen, "return address: replay's filter cannot patch the first"
    );
    Some(chosen)
}

/// How many return addresses after the first [`find_return_address`]
/// looks at for one that replay's filter can patch.
const FILTER_CANDIDATES: usize = 4;

/// Whether stopped thread `tid` blocks SIGTRAP, which a trap of ours
/// would unblock (`tracee::trap_mask`).
pub(super) fn blocks_trap(tid: Tid) -> Result<bool, Error> {
    crate::tracee::trap_mask::blocks_trap(tid).map_err(ptrace_err("PTRACE_GETSIGMASK", tid))
}

/// At a trap of ours in `tid`, which blocked SIGTRAP before it: blocks it
/// again (`tracee::trap_mask`).
pub(super) fn reblock_trap(tid: Tid) -> Result<(), Error> {
    crate::tracee::trap_mask::reblock_trap(tid).map_err(ptrace_err("PTRACE_SETSIGMASK", tid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rrtest_trace::{ExecPoint, POINT_REGS};

    fn point(rax: u64, digest: u64) -> ExecPoint {
        let mut regs = [0u64; POINT_REGS];
        regs[0] = rax;
        ExecPoint {
            ip: 0x1000,
            regs,
            digest,
            words: rrtest_trace::PointWords::NONE,
        }
    }

    fn pass(probe: &mut SpinProbe, p: ExecPoint) -> Pass {
        probe
            .pass(&p.regs, || Ok::<_, ()>(p.digest))
            .expect("no error")
    }

    #[test]
    fn spin_probe_finds_a_loop_that_passes_the_address_in_other_states_first() {
        // A turn passes the address twice, in states a and b (a lock taken
        // for two channels): the third pass, in a again, is a spin.
        let (a, b) = (point(1, 7), point(2, 7));
        let mut probe = SpinProbe::new(&a, Some(3));
        assert_eq!(pass(&mut probe, b), Pass::New);
        assert_eq!(pass(&mut probe, a), Pass::Spins);
        // b's digest was not read at its first pass: its second one reads
        // it, its third matches.
        assert_eq!(pass(&mut probe, b), Pass::New);
        assert_eq!(pass(&mut probe, b), Pass::Spins);
    }

    #[test]
    fn spin_probe_reads_a_digest_only_for_registers_seen() {
        let mut probe = SpinProbe::new(&point(1, 7), None);
        let read = std::cell::Cell::new(0);
        let pass_counting = |probe: &mut SpinProbe, p: ExecPoint| {
            probe
                .pass(&p.regs, || {
                    read.set(read.get() + 1);
                    Ok::<_, ()>(p.digest)
                })
                .expect("no error")
        };
        assert_eq!(pass_counting(&mut probe, point(2, 7)), Pass::New);
        assert_eq!(pass_counting(&mut probe, point(3, 7)), Pass::New);
        // Same registers as the first, other memory (a flag the loop
        // toggles): another state, and either matches when it comes back.
        assert_eq!(pass_counting(&mut probe, point(1, 8)), Pass::New);
        assert_eq!(pass_counting(&mut probe, point(1, 7)), Pass::Spins);
        assert_eq!(read.get(), 2);
        // A pass in registers seen once reads its digest; the next pass
        // in that state matches.
        assert_eq!(pass_counting(&mut probe, point(2, 5)), Pass::New);
        assert_eq!(pass_counting(&mut probe, point(2, 5)), Pass::Spins);
        assert_eq!(read.get(), 4);
    }

    #[test]
    fn spin_probe_is_full_after_its_states_whatever_changes() {
        // Same registers, memory changing at every pass (a counter): each
        // pass takes a state, and the probe ends.
        let mut probe = SpinProbe::new(&point(1, 0), None);
        for i in 1..PROBE_STATES as u64 {
            assert_eq!(pass(&mut probe, point(1, i)), Pass::New);
        }
        assert_eq!(pass(&mut probe, point(1, 99)), Pass::Full);
    }

    #[test]
    fn spin_probe_is_full_after_its_states() {
        let mut probe = SpinProbe::new(&point(0, 0), None);
        for i in 1..PROBE_STATES as u64 {
            assert_eq!(pass(&mut probe, point(i, 0)), Pass::New);
        }
        // A computing loop: every pass new, and the probe gives up.
        assert_eq!(pass(&mut probe, point(PROBE_STATES as u64, 0)), Pass::Full);
    }

    #[test]
    fn rep_string_instructions_are_told_from_others() {
        let ip = 0x1000;
        // rep stosb, rep movsb, rep movsq, repe cmpsb, repne scasb, rep lodsb.
        for code in [
            &[0xf3, 0xaa][..],
            &[0xf3, 0xa4],
            &[0xf3, 0x48, 0xa5],
            &[0xf3, 0xa6],
            &[0xf2, 0xae],
            &[0xf3, 0xac],
        ] {
            assert_eq!(
                super::rep_string_len(code, ip),
                Some(code.len() as u64),
                "{code:x?}"
            );
        }
        // A string instruction without a prefix, `rep ret`, SSE movsd (F2 0F
        // 10: the mnemonic of a string movsd), a nop, and truncated code.
        for code in [
            &[0xaa][..],
            &[0xa4],
            &[0xf3, 0xc3],
            &[0xf2, 0x0f, 0x10, 0xc1],
            &[0x90],
            &[0xf3],
            &[],
        ] {
            assert_eq!(super::rep_string_len(code, ip), None, "{code:x?}");
        }
    }

    /// A stack pointer below the main thread's stack mapping (a frame not
    /// touched yet): the search for a return address reads from the
    /// mapping's start, and leaves the mapping as it was. It read from the
    /// stack pointer, through `/proc/PID/mem` where `process_vm_readv`
    /// failed, and the kernel grew the mapping for that read: an execution
    /// point taken there then hashed a stack that replay's did not have.
    #[test]
    fn the_return_address_search_does_not_grow_the_stack() {
        use crate::tracee::test_support::{stack_start, with_stopped_sleeper};
        with_stopped_sleeper(|tid| {
            let mut regs = ptrace::getregs(tid)?;
            let start = stack_start(tid);
            regs.rsp = start - 0x1010;
            let _ = find_return_address(tid, &regs);
            assert_eq!(stack_start(tid), start);
            // The words read start at the mapping: what is on the stack
            // there is still seen (here, nothing the sleeper called).
            regs.rsp = start - 0x100;
            let _ = find_return_address(tid, &regs);
            assert_eq!(stack_start(tid), start);
            Ok(())
        });
    }
}
