//! Reverse execution for the debugger engine, without an instruction
//! counter (DESIGN.md §8): going back re-runs the deterministic replay from
//! the start, with a *goal* that decides at each stop whether it is the one
//! wanted.
//!
//! Positions. Only an event's thread runs between two events, so inside an
//! event the stops of that thread are totally ordered. A position is named:
//! - between events: the index of the next event ([`Here::Boundary`]);
//! - at a stop inside event `e` of thread `t`, first by its state (the
//!   execution point: ip, registers, digest, as the recorder names
//!   preemption points) and, once a re-run has found it, by an *anchor*: the
//!   `n`-th trap of one breakpoint address or one watchpoint in that event
//!   ([`Mark`]), which every later re-run with that anchor armed from the
//!   start meets again;
//! - a base (either of the above) plus `k` single steps of its thread.
//!
//! Reverse-continue: a *scan* re-run (the user's breakpoints and
//! watchpoints armed, and a probe breakpoint at the current ip) notes the
//! last user stop before the current position, stops when it reaches that
//! position, and a *reach* re-run goes to the noted stop, where the user
//! drives again; with no stop before, the replay restarts at its first
//! instruction ([`Stop::ReplayStart`]). A watchpoint trap at the current
//! position itself counts as before it (the access that led there). When
//! the noted stop is a watchpoint's, the stop is moved to the accessing
//! instruction, before it executes, as gdb expects going backwards: a
//! counting re-run single-steps the thread from the trap before the hit in
//! its event (or the event's start) to the hit, `k` steps not counting the
//! accessing one, and the reach re-run stops `k` steps after that base.
//! Reverse-step: the scan notes the
//! thread's last anchor in the event (an earlier pass through the current
//! ip, or the start of the event), a counting re-run single-steps from it
//! to the current position (`k` steps), and a reach re-run stops `k - 1`
//! steps after it. Going forward after going back runs the same replay on,
//! so it reaches the same states.
//!
//! Known limits: a position's state is assumed unique among the passes of
//! its thread through its ip in its event (the same assumption execution
//! points make); each reverse resume costs two or three replays up to the
//! position (no fork checkpoints yet), and a reverse watchpoint stop
//! single-steps its thread twice from the last trap before it in its event.
//!
//! It must not decide anything about the replay itself: it only says which
//! stop of a re-run is the one to report.

use std::collections::BTreeSet;

use super::{perr, Session};
use crate::replayer::debug::protocol::{Resume, Stop, Watch};
use crate::replayer::{Error, ReplayError};
use rrtest_sys::ptrace;
use rrtest_trace::{Event, ExecPoint, Tid};

/// Why an event in progress is abandoned.
#[derive(Debug, Clone, Copy)]
pub(super) enum Abandon {
    /// The debugger is gone.
    Quit,
    /// A reverse resume: the engine re-runs the replay.
    Reverse(Resume),
    /// A re-run reached its goal (below).
    GoalDone,
}

/// What a re-run's goal says about a stop.
pub(super) enum Act {
    /// Not the goal: go on.
    Resume,
    /// The goal: report this stop to the user.
    Serve(Stop),
    /// The goal of a scan: unwind the re-run.
    Abandon,
}

/// What a trap is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Anchor {
    /// An `int3` at this address (a user's breakpoint or a probe).
    Breakpoint(u64),
    /// A watchpoint.
    Watch(Watch),
}

/// The `nth` trap of `anchor` in event `event` (whose thread is `tid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    event: u64,
    tid: Tid,
    anchor: Anchor,
    nth: u64,
}

/// Where the last stop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Here {
    /// Between events, before event `.0`.
    Boundary(u64),
    /// Inside `event`, at a stop of its thread `tid`.
    Inside { event: u64, tid: Tid },
    /// The program ended.
    End,
}

/// A position a re-run looks for.
// An execution point (with its memory words, about 300 bytes) makes
// `Inside` the large variant: one target per re-run.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Boundary(u64),
    Inside {
        event: u64,
        tid: Tid,
        point: ExecPoint,
    },
    End,
}

/// Where a counting re-run stops counting.
#[allow(clippy::large_enum_variant)] // As `Target`.
#[derive(Debug, Clone, Copy)]
pub(super) enum CountTo {
    /// At this position (after the step that reaches it).
    Target(Target),
    /// At this trap, not counting the step that caused it: the count is
    /// the steps *before* the instruction that hit the watchpoint.
    Hit(Mark),
}

/// Where a reach re-run starts stepping from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    Boundary(u64),
    Hit(Mark),
}

/// How far after a function's entry [`Session::step_back_probes`] looks
/// for the call that entered it.
const ENTRY_REACH: u64 = 4096;

/// How many of the instructions before the ip are probes of a reverse step.
const FALLTHROUGH_PROBES: usize = 8;

/// A user stop a scan noted: its mark, the stop, and the trap of its
/// thread just before it in its event (any anchor), if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct Noted {
    mark: Mark,
    stop: Stop,
    before: Option<Mark>,
}

/// What a scan found before its target: the last user stop, and the last
/// anchor of the target's thread in the target's event.
type Scanned = (Option<Noted>, Option<Mark>);

/// A re-run's goal.
#[derive(Debug, Clone)]
pub(super) enum Goal {
    /// Run to `target`, noting the last user stop and the last anchor of
    /// the target's thread in its event before it (`prev`: the last trap
    /// of the event in progress).
    Scan {
        target: Target,
        last_user: Option<Noted>,
        last_anchor: Option<Mark>,
        prev: Option<Mark>,
        reached: bool,
    },
    /// Run to `base`, then single-step `tid`: `steps` times and report
    /// (`count_to` none), or until `count_to`, counting the steps.
    Reach {
        base: Base,
        reached: bool,
        tid: Option<Tid>,
        steps: u64,
        count_to: Option<CountTo>,
        counted: u64,
        arrived: bool,
        stop: Stop,
    },
}

/// A re-run's result, or (`Err`) the stop it ended at instead when the
/// user took it over (Ctrl-C during a reverse resume): the answer to the
/// reverse resume.
type Ran<T> = Result<T, Stop>;

/// The value of a re-run's [`Ran`], or return its stop as the answer.
macro_rules! or_served {
    ($ran:expr) => {
        match $ran? {
            Ok(v) => v,
            Err(stop) => return Ok(stop),
        }
    };
}

impl Session {
    /// A reverse resume from the current stop; the stop it reaches (or,
    /// when that stop is inside an event, the result of the commands the
    /// user gave from there: they are served inside the re-run).
    pub(super) fn reverse(&mut self, how: Resume) -> Result<Stop, ReplayError> {
        let here = self.ctl().here;
        let target = self.target_of(here)?;
        match how {
            Resume::Continue => match or_served!(self.scan(target, BTreeSet::new())).0 {
                None => self.restart(),
                Some(
                    noted @ Noted {
                        stop: Stop::Watchpoint { .. },
                        ..
                    },
                ) => self.before_access(noted),
                Some(Noted { mark, stop, .. }) => {
                    self.reach(Base::Hit(mark), Some(mark.tid), 0, stop)
                }
            },
            Resume::Step(_) => self.reverse_step(target),
        }
    }

    /// A watchpoint stop reached backwards: at the instruction that
    /// accessed the memory, before it executes (as gdb expects going
    /// backwards: the memory holds the value from before the access). A
    /// counting re-run single-steps the thread from the trap before it in
    /// its event (or the event's start) to the watchpoint's trap: `k`
    /// steps before the accessing instruction; a reach re-run stops there.
    fn before_access(&mut self, noted: Noted) -> Result<Stop, ReplayError> {
        let Noted { mark, stop, before } = noted;
        let base = match before {
            Some(m) if m.event == mark.event => Base::Hit(m),
            _ => Base::Boundary(mark.event),
        };
        let k = or_served!(self.count(base, Some(mark.tid), CountTo::Hit(mark)));
        self.reach(base, Some(mark.tid), k, stop)
    }

    fn reverse_step(&mut self, target: Target) -> Result<Stop, ReplayError> {
        let mut next = match target {
            Target::Inside { event, tid, point } => {
                let probes = self.step_back_probes(tid, &point)?;
                let base = match or_served!(self.scan(target, probes)).1 {
                    Some(mark) => Base::Hit(mark),
                    None => Base::Boundary(event),
                };
                let k = or_served!(self.count(base, Some(tid), CountTo::Target(target)));
                if k > 0 {
                    return self.reach(base, Some(tid), k - 1, Stop::Stepped { tid });
                }
                // Not one step from the event's start: the position is
                // the event's first instruction; go on before it.
                event
            }
            Target::Boundary(i) => i,
            Target::End => self.index,
        };
        // Before the start of event `next`: the last instruction of the
        // latest earlier event that ran one.
        while next > self.ctl().start_index {
            let base = Base::Boundary(next - 1);
            let k = or_served!(self.count(base, None, CountTo::Target(Target::Boundary(next))));
            if k > 0 {
                return self.reach(base, None, k - 1, Stop::ReplayStart);
            }
            next -= 1;
        }
        self.restart()
    }

    /// The current position as a re-run looks for it.
    fn target_of(&mut self, here: Here) -> Result<Target, ReplayError> {
        Ok(match here {
            Here::Boundary(i) => Target::Boundary(i),
            Here::End => Target::End,
            Here::Inside { event, tid } => {
                let real = self.task(tid)?.real;
                let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
                let point = crate::tracee::exec_point(real, &regs)
                    .map_err(perr("reading an execution point", real))?;
                Target::Inside { event, tid, point }
            }
        })
    }

    /// A fresh replay of the trace, stopped at its start, the debugger's
    /// breakpoints and watchpoints kept, with `goal` and `probes`.
    fn respawn(&mut self, goal: Option<Goal>, probes: BTreeSet<u64>) -> Result<(), ReplayError> {
        let Some(mut ctl) = self.debug.take() else {
            return Err(Error::Debugger("no debugger state to re-run with".into()).into());
        };
        ctl.forget_inserted();
        self.kill_all();
        let fresh = match Session::spawn(&ctl.opts) {
            Ok(s) => s,
            Err(e) => {
                self.debug = Some(ctl);
                return Err(e);
            }
        };
        *self = fresh;
        self.peek();
        ctl.goal = goal;
        ctl.probes = probes;
        self.debug = Some(ctl);
        self.reset_debug_run();
        self.ctl().set_resume(Resume::Continue);
        Ok(())
    }

    /// Re-runs to the start (of the debugged process: its first
    /// instruction): [`Stop::ReplayStart`].
    fn restart(&mut self) -> Result<Stop, ReplayError> {
        self.respawn(None, BTreeSet::new())?;
        self.run_to_debugged()?;
        Ok(Stop::ReplayStart)
    }

    /// Runs a re-run whose goal ends it; the goal as it ended, or the
    /// user's stop when an interrupt ended the goal (see [`Ran`]).
    fn run_goal(&mut self) -> Result<Ran<Goal>, ReplayError> {
        let r = self.forward(None);
        let goal = self.ctl().goal.take();
        self.ctl().probes.clear();
        match r {
            Err(e) => match self.ctl().abandon.take() {
                Some(Abandon::GoalDone) => {}
                other => {
                    self.ctl().abandon = other;
                    return Err(e);
                }
            },
            Ok(stop) if goal.is_none() => return Ok(Err(stop)),
            Ok(_) => {}
        }
        goal.map(Ok)
            .ok_or_else(|| Error::Debugger("a re-run lost its goal".into()).into())
    }

    /// Probes for a reverse step from `point` of thread `tid`: places that
    /// ran shortly before it in the thread, so that the count of single
    /// steps starts near the position and not at its event's start, which
    /// may be millions of steps back (a panic that printed a backtrace ran
    /// its symbolization since the last event). Any pass through a probe
    /// before the position in the event is a valid anchor (a poor one only
    /// costs steps); every probe is a known instruction boundary, so its
    /// breakpoint cannot change the code the program runs:
    /// - the call that entered the function (the innermost return address
    ///   on the stack whose `call rel32` or `call *disp32(%rip)` targets an
    ///   address at most [`ENTRY_REACH`] bytes before the ip; a breakpoint
    ///   stops after a function's prologue, not at its entry);
    /// - the last [`FALLTHROUGH_PROBES`] instructions before the ip, found
    ///   by decoding from that function's entry up to the ip (none when
    ///   the decoding does not land on the ip).
    fn step_back_probes(
        &mut self,
        tid: Tid,
        point: &ExecPoint,
    ) -> Result<BTreeSet<u64>, ReplayError> {
        let task = self.task(tid)?;
        let (real, real_pid) = (task.real, task.real_pid);
        let mem = rrtest_sys::RemoteMem::new(real);
        let mut probes = BTreeSet::new();
        let Some((site, entry)) = entering_call(&mem, point) else {
            return Ok(probes);
        };
        probes.insert(site);
        let mut code = vec![0u8; (point.ip - entry) as usize];
        if mem.read_exact(entry, &mut code).is_ok() {
            // Decoded as the original code, not the patches' jumps.
            if let Some(space) = self.spaces.get(&real_pid) {
                space.unpatch(entry, &mut code);
            }
            let mut decoder =
                iced_x86::Decoder::with_ip(64, &code, entry, iced_x86::DecoderOptions::NONE);
            let mut starts = Vec::new();
            while decoder.can_decode() {
                let insn = decoder.decode();
                if insn.is_invalid() {
                    starts.clear();
                    break;
                }
                starts.push(insn.ip());
            }
            // The decoding must end exactly at the ip.
            if decoder.ip() == point.ip {
                probes.extend(starts.iter().rev().take(FALLTHROUGH_PROBES));
            }
        }
        Ok(probes)
    }

    /// A scan re-run to `target`: the last user stop and the last anchor
    /// of the target's thread in its event before it (a trap of a
    /// breakpoint, of a probe at the target's ip, or of one in `extra`).
    fn scan(&mut self, target: Target, extra: BTreeSet<u64>) -> Result<Ran<Scanned>, ReplayError> {
        let mut probes = extra;
        if let Target::Inside { point, .. } = target {
            probes.insert(point.ip);
        }
        self.respawn(
            Some(Goal::Scan {
                target,
                last_user: None,
                last_anchor: None,
                prev: None,
                reached: false,
            }),
            probes,
        )?;
        let goal = match self.run_goal()? {
            Ok(goal) => goal,
            Err(stop) => return Ok(Err(stop)),
        };
        match goal {
            Goal::Scan {
                last_user,
                last_anchor,
                reached,
                ..
            } if reached || matches!(target, Target::End) => Ok(Ok((last_user, last_anchor))),
            _ => Err(lost(target)),
        }
    }

    /// Steps from `base` to `to`: how many single steps of the thread.
    fn count(
        &mut self,
        base: Base,
        tid: Option<Tid>,
        to: CountTo,
    ) -> Result<Ran<u64>, ReplayError> {
        self.respawn(
            Some(Goal::Reach {
                base,
                reached: false,
                tid,
                steps: 0,
                count_to: Some(to),
                counted: 0,
                arrived: false,
                stop: Stop::ReplayStart,
            }),
            probes_for(base),
        )?;
        let goal = match self.run_goal()? {
            Ok(goal) => goal,
            Err(stop) => return Ok(Err(stop)),
        };
        match goal {
            Goal::Reach {
                arrived: true,
                counted,
                ..
            } => Ok(Ok(counted)),
            _ => Err(match to {
                CountTo::Target(target) => lost(target),
                CountTo::Hit(mark) => Error::Debugger(format!(
                    "reverse execution re-ran the replay but did not find thread {}'s \
                     watchpoint trap {} in event {} again",
                    mark.tid, mark.nth, mark.event
                ))
                .into(),
            }),
        }
    }

    /// A reach re-run: to `base`, `steps` single steps of its thread, and
    /// the user drives from there (`stop` is reported at `base` itself).
    fn reach(
        &mut self,
        base: Base,
        tid: Option<Tid>,
        steps: u64,
        stop: Stop,
    ) -> Result<Stop, ReplayError> {
        self.respawn(
            Some(Goal::Reach {
                base,
                reached: false,
                tid,
                steps,
                count_to: None,
                counted: 0,
                arrived: false,
                stop,
            }),
            probes_for(base),
        )?;
        let r = self.forward(None);
        if self.ctl().goal.is_some() {
            // The run ended before its goal.
            self.ctl().goal = None;
            self.ctl().probes.clear();
            return match r {
                Err(e) => Err(e),
                Ok(_) => Err(Error::Debugger(format!(
                    "reverse execution did not find its stop again ({base:?})"
                ))
                .into()),
            };
        }
        r
    }

    /// A re-run's goal between events (before event `self.index`).
    pub(super) fn goal_at_boundary(&mut self) -> Result<Act, ReplayError> {
        let index = self.index;
        let upcoming = self.upcoming().map(Event::tid);
        match self.ctl().goal.as_mut() {
            Some(Goal::Scan {
                target: Target::Boundary(i),
                reached,
                ..
            }) if *i == index => {
                *reached = true;
                return Ok(Act::Abandon);
            }
            Some(Goal::Reach {
                base,
                reached,
                tid,
                count_to,
                arrived,
                ..
            }) => {
                if !*reached && *base == Base::Boundary(index) {
                    *reached = true;
                    *tid = tid.or(upcoming);
                } else if *reached
                    && matches!(count_to, Some(CountTo::Target(Target::Boundary(i))) if *i == index)
                {
                    *arrived = true;
                    return Ok(Act::Abandon);
                } else {
                    return Ok(Act::Resume);
                }
            }
            _ => return Ok(Act::Resume),
        }
        let act = self.goal_progress(false, None)?;
        if let Act::Serve(stop) = act {
            self.note_served(stop, Here::Boundary(index));
        }
        Ok(act)
    }

    /// A re-run's goal after a step of `tid` that ended at an event's stop.
    pub(super) fn goal_step(&mut self, tid: Tid) -> Result<Act, ReplayError> {
        let ours = matches!(self.ctl().goal, Some(Goal::Reach { reached: true, tid: Some(t), .. }) if t == tid);
        if !ours {
            return Ok(Act::Resume);
        }
        let act = self.goal_progress(true, None)?;
        if let Act::Serve(stop) = act {
            self.note_served(stop, Here::Boundary(self.index));
        }
        Ok(act)
    }

    /// A re-run's goal at a stop of `tid` inside an event: `anchor` and
    /// its count when the stop is a breakpoint or watchpoint trap;
    /// `stepped` when the stop is (also) the end of a single step of the
    /// thread (a step whose instruction hit a watchpoint).
    pub(super) fn goal_trap(
        &mut self,
        tid: Tid,
        real: i32,
        stop: Stop,
        anchor: Option<(Anchor, u64)>,
        stepped: bool,
    ) -> Result<Act, ReplayError> {
        let index = self.index;
        let mark = anchor.map(|(anchor, nth)| Mark {
            event: index,
            tid,
            anchor,
            nth,
        });
        let user_stop = match stop {
            Stop::Breakpoint { addr, .. } => self.ctl().is_user_breakpoint(addr),
            Stop::Watchpoint { .. } => true,
            _ => false,
        };
        let at_target = match &self.ctl().goal {
            Some(Goal::Scan {
                target:
                    Target::Inside {
                        event,
                        tid: t,
                        point,
                    },
                ..
            }) if *event == index && *t == tid => {
                // Any stop there: the user's stop at the position may
                // have been a watchpoint's, or a step's, at the same state
                // as the probe's trap that follows.
                let point = *point;
                Some(self.at_point(real, &point)?)
            }
            _ => None,
        };
        match self.ctl().goal.as_mut() {
            Some(Goal::Scan {
                last_user,
                last_anchor,
                prev,
                reached,
                ..
            }) => {
                // A watchpoint trap at the position is the access that
                // led to it: going backwards, it comes first. A breakpoint
                // trap there is the position itself.
                let watch = matches!(stop, Stop::Watchpoint { .. });
                if at_target == Some(true) && !watch {
                    *reached = true;
                    return Ok(Act::Abandon);
                }
                if at_target.is_some() && mark.is_some() {
                    *last_anchor = mark;
                }
                if let (true, Some(m)) = (user_stop, mark) {
                    *last_user = Some(Noted {
                        mark: m,
                        stop,
                        before: prev.filter(|p| p.event == index),
                    });
                }
                if mark.is_some() {
                    *prev = mark;
                }
                if at_target == Some(true) {
                    *reached = true;
                    return Ok(Act::Abandon);
                }
                Ok(Act::Resume)
            }
            Some(Goal::Reach {
                base,
                reached,
                tid: step_tid,
                count_to,
                arrived,
                ..
            }) => {
                if !*reached {
                    if matches!(base, Base::Hit(m) if Some(*m) == mark) {
                        *reached = true;
                        *step_tid = Some(tid);
                        return self.goal_progress(false, Some(real));
                    }
                    return Ok(Act::Resume);
                }
                if matches!(count_to, Some(CountTo::Hit(h)) if Some(*h) == mark) {
                    // The steps before the one that hit: counted already.
                    *arrived = true;
                    return Ok(Act::Abandon);
                }
                let step = match stop {
                    Stop::Stepped { tid: s } => Some(s) == *step_tid,
                    Stop::Watchpoint { tid: s, .. } => stepped && Some(s) == *step_tid,
                    _ => false,
                };
                if step {
                    return self.goal_progress(true, Some(real));
                }
                Ok(Act::Resume)
            }
            None => Ok(Act::Serve(stop)),
        }
    }

    /// A reach goal at its base (`stepped` false) or after one more step
    /// of its thread (`real`, when stopped inside an event).
    fn goal_progress(&mut self, stepped: bool, real: Option<i32>) -> Result<Act, ReplayError> {
        let index = self.index;
        let Some(Goal::Reach {
            tid,
            steps,
            count_to,
            counted,
            stop,
            ..
        }) = self.ctl().goal.clone()
        else {
            return Ok(Act::Resume);
        };
        let counted = counted + u64::from(stepped);
        if let Some(Goal::Reach { counted: c, .. }) = self.ctl().goal.as_mut() {
            *c = counted;
        }
        if let Some(to) = count_to {
            let arrived = match (to, real) {
                (CountTo::Target(Target::Inside { point, .. }), Some(real)) => {
                    ptrace::getregs(real).map(|r| r.rip).ok() == Some(point.ip)
                        && self.at_point(real, &point)?
                }
                (CountTo::Target(Target::Boundary(i)), _) => i == index,
                // Arrives at its trap (`goal_trap`).
                (CountTo::Hit(_), _) => false,
                _ => false,
            };
            if arrived {
                if let Some(Goal::Reach { arrived: a, .. }) = self.ctl().goal.as_mut() {
                    *a = true;
                }
                return Ok(Act::Abandon);
            }
            self.ctl().step = tid;
            return Ok(Act::Resume);
        }
        if counted >= steps {
            let ctl = self.ctl();
            ctl.goal = None;
            ctl.probes.clear();
            ctl.step = None;
            // A reverse step's stop is the step of the thread (known only
            // here when it starts from a boundary); any other is as given.
            let stop = match (stop, tid) {
                (Stop::ReplayStart, Some(tid)) => Stop::Stepped { tid },
                (stop, _) => stop,
            };
            return Ok(Act::Serve(stop));
        }
        self.ctl().step = tid;
        Ok(Act::Resume)
    }

    /// Notes a stop a re-run serves between events.
    fn note_served(&mut self, stop: Stop, here: Here) {
        let ctl = self.ctl();
        match stop {
            Stop::Stepped { tid } | Stop::Watchpoint { tid, .. } | Stop::Breakpoint { tid, .. } => {
                ctl.current = tid;
            }
            _ => {}
        }
        ctl.here = here;
    }

    /// Whether thread `real`, stopped, is at execution point `point`.
    fn at_point(&self, real: i32, point: &ExecPoint) -> Result<bool, ReplayError> {
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        if regs.rip != point.ip || crate::tracee::point_regs(&regs) != point.regs {
            return Ok(false);
        }
        let seen = crate::tracee::exec_point(real, &regs)
            .map_err(perr("reading an execution point", real))?;
        Ok(seen == *point)
    }
}

/// The call that most likely entered the function a thread is in at
/// `point`, and that function's entry: see [`Session::step_back_probes`].
fn entering_call(mem: &rrtest_sys::RemoteMem, point: &ExecPoint) -> Option<(u64, u64)> {
    const RSP: usize = 7;
    const WORDS: usize = 64;
    let mut stack = [0u8; WORDS * 8];
    // The stack may end within the window: read what there is.
    let mut have = stack.len();
    while have > 0 && mem.read_exact(point.regs[RSP], &mut stack[..have]).is_err() {
        have -= 64;
    }
    let near = |callee: u64| callee <= point.ip && point.ip - callee <= ENTRY_REACH;
    for word in stack[..have].chunks_exact(8) {
        let ret = u64::from_le_bytes(word.try_into().ok()?);
        let Some(site) = ret.checked_sub(6) else {
            continue;
        };
        let mut call = [0u8; 6];
        if mem.read_exact(site, &mut call).is_err() {
            continue;
        }
        let rel = i64::from(i32::from_le_bytes([call[2], call[3], call[4], call[5]]));
        // `call rel32`: e8 and the displacement from the return address.
        let callee = ret.wrapping_add_signed(rel);
        if call[1] == 0xe8 && near(callee) {
            return Some((site + 1, callee));
        }
        // `call *disp32(%rip)` (ff 15): through a pointer in memory (the
        // GOT), read now: the same as at the call, short of a lazily bound
        // entry, whose guess is only dearer.
        if call[..2] == [0xff, 0x15] {
            let mut slot = [0u8; 8];
            if mem.read_exact(callee, &mut slot).is_ok() && near(u64::from_le_bytes(slot)) {
                return Some((site, u64::from_le_bytes(slot)));
            }
        }
    }
    None
}

/// The probe a re-run to `base` needs: its anchor's address (a user's
/// breakpoint there is armed anyway).
fn probes_for(base: Base) -> BTreeSet<u64> {
    match base {
        Base::Hit(Mark {
            anchor: Anchor::Breakpoint(a),
            ..
        }) => BTreeSet::from([a]),
        _ => BTreeSet::new(),
    }
}

fn lost(target: Target) -> ReplayError {
    let what = match target {
        Target::Boundary(i) => format!("the stop before event {i}"),
        Target::Inside { event, tid, point } => {
            format!("thread {tid}'s stop at {:#x} in event {event}", point.ip)
        }
        Target::End => "the end".into(),
    };
    Error::Debugger(format!(
        "reverse execution re-ran the replay but did not find {what} again"
    ))
    .into()
}
