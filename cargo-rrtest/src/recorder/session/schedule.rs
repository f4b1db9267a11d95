//! Who runs next and for how long: picking the next ready thread, resuming
//! it (writing the exit of the syscall it waited in), the timer's ticks
//! that preempt a thread running too long or stop it for a held-back
//! signal.
//!
//! The decisions themselves go through a [`SchedulePolicy`]: which ready
//! thread runs next, how long a slice is, whether to switch at a syscall.
//! [`DefaultPolicy`] is the recorder's (round robin, fixed slices); another
//! policy (a seeded random one, to shake out races) replaces it without
//! touching the ptrace mechanics here. The schedule a policy makes is the
//! event order, and replay follows it whatever the policy was.
//!
//! Must not: deliver signals or read the syscall buffer's records itself
//! (it asks `signals`, `points` and `syscallbuf`), write events other than
//! a resumed thread's `SyscallExit`, or let a policy see or drive ptrace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::signals::SIGNAL_DELAY;
use super::{ptrace_err, Error, Pending, Session, State, Task};
use crate::tracee::syscallbuf;
use rrtest_sys::ptrace;
use rrtest_sys::signals as sys_signals;
use rrtest_trace::Tid;

/// After this many consecutive syscalls of one thread, the scheduler lets
/// another runnable thread run.
const SLICE_SYSCALLS: u32 = 64;

/// How often the recorder checks on the running thread.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// The tick while a lone thread runs with no signal held back for it:
/// nothing for a tick to do (no one to preempt it for, nothing to deliver),
/// so the recorder wakes less often on the program's CPU. Not stopped, as
/// a safety net.
const LONE_TICK: Duration = Duration::from_millis(10);

/// How long a thread may run user code without a syscall while another
/// thread waits, before the recorder preempts it at an execution point.
const TIMESLICE: Duration = Duration::from_millis(20);

/// The CPU time a thread runs, after its slice's end, before it is
/// interrupted when stops (spin checks that found it computing) cleared
/// its request to bail (see `Session::tick`). 250 ms until 2026-12-06,
/// when points in compute loops were costly to find in replay; with
/// loop exits and the in-tracee filter, 50 ms: the threads fixture's
/// `stealers_all_served` (debug), whose producer computes while eight
/// stealers wait for its items, recorded in 0.32x the time (median of 9
/// pairs), 0.61 s against 1.81 s.
const STUCK_SLICE: Duration = Duration::from_millis(50);

/// How long a thread of a process with a syscall buffer may run while
/// another waits before the recorder asks its hook to bail (so it yields at
/// its next syscall, a cheap place; the buffer hides its syscalls).
const BAIL_SLICE: Duration = Duration::from_millis(5);

/// The shortest [`Slice::run`] [`DefaultPolicy`] gives when many threads
/// wait (each preemption costs an execution point, in recording and in
/// replay).
const MIN_TIMESLICE: Duration = Duration::from_millis(5);

/// How long a thread may run user code without making a syscall (traced or
/// buffered) while another waits before the recorder checks whether it
/// spins: it interrupts it and probes for a spin loop (the thread comes
/// back to the same instruction in the same state, a point replay finds at
/// its first turn). A spinning thread is preempted at once, since it waits
/// for a thread that cannot run until it does; one that computes keeps its
/// slice, and is checked again after another `SPIN_SLICE`.
pub(super) const SPIN_SLICE: Duration = Duration::from_millis(2);

/// [`SPIN_SLICE`] for a thread whose last check found it spinning: one that
/// waits by spinning is likely to again (a hand-off back and forth), and a
/// check that finds it computing puts it back to `SPIN_SLICE`. Its time
/// is wasted while the thread it waits for cannot run: each hand-off of a
/// spin-waiting pair costs this, the tick's delay and a probe.
const SPIN_SLICE_AGAIN: Duration = Duration::from_micros(200);

/// The tick while the running thread's last check found it spinning and
/// another thread waits: at [`TICK`] the check came up to a whole tick
/// after [`SPIN_SLICE_AGAIN`] (the recorder, not the program, takes these
/// ticks; only while a known spinner runs).
const SPIN_TICK: Duration = Duration::from_micros(100);

/// How long the running thread may sit in a traced syscall that was not
/// split (one that does not block, by the table: a `pread64`, a `close`)
/// while others wait, before a tick splits it there: its `SyscallEntry`
/// written then, and the others run. Such a call can wait after all: for a
/// fanotify listener that is another thread of the recording (a
/// permission event), a FUSE server, a lingering `close`; the recorder
/// waited for its exit for ever (the watchdog saw a thread in a syscall of
/// its own, not a stall). Splitting it late is what splitting it at its
/// entry would have recorded: no other thread ran in between.
pub(super) const LATE_SPLIT: Duration = Duration::from_millis(50);

/// How long a `PTRACE_INTERRUPT` of the running thread may go without its
/// stop before it is sent again. Any ptrace stop the thread makes between
/// the request and the interrupt's taking effect (the seccomp stop of a
/// syscall it was entering, say) clears the kernel's pending stop trap, so
/// that interrupt's own stop never comes; the recorder cannot tell that
/// from an interrupt whose stop is still on its way (one sent while the
/// thread sat in such a stop stays pending), and waited for ever: a thread
/// whose interrupt was swallowed at a syscall, then blocked in a buffered
/// read of a child's pipe, kept that child from running (the recording
/// stalled: 2 of 5 recordings of `rust_spawn_threads` on a loaded
/// machine). Sent again, it stops the thread either way; a stop that then
/// comes twice is a moot one, which is let go on.
pub(super) const INTERRUPT_RESEND: Duration = Duration::from_millis(20);

/// Where a thread's slice ends, short of its time slice (see
/// [`SchedulePolicy::steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Steps {
    /// Instructions to single-step.
    pub(crate) steps: u32,
    /// Then, rather than preempting there: run on to the `hits`-th arrival
    /// at one of the addresses just stepped through (the `pick`-th, modulo
    /// how many there were), at full speed with a breakpoint, and preempt
    /// there. A slice deep into a loop at the cost of a stop per arrival.
    pub(crate) count: Option<(u32, u32)>,
}

/// What a policy's decisions were in one recording, for the trace header
/// (chaos's; [`DefaultPolicy`] has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Decisions made.
    pub(crate) decisions: u64,
    /// FNV-1a over every decision (its kind, the thread by join order, the
    /// value drawn).
    pub(crate) digest: u64,
}

/// Makes the scheduling decisions; the session carries them out. Called
/// once per decision (never per buffered syscall), and only with
/// something to decide: `pick` when no thread runs, `switch_at_syscall`
/// when the recording has more than one thread.
pub(super) trait SchedulePolicy {
    /// A thread joined the recording (the first one, or a clone event's
    /// child; a thread may be announced more than once).
    fn add(&mut self, tid: Tid);
    /// Which thread runs next: one that `threads` says is ready, or None
    /// when none is.
    fn pick(&mut self, threads: &Threads<'_>) -> Option<Tid>;
    /// The slice of a thread being scheduled.
    fn slice(&mut self) -> Slice;
    /// The slice of a thread being scheduled while `waiting` other threads
    /// are ready (they wait for it). By default, [`Self::slice`].
    fn slice_for(&mut self, waiting: usize) -> Slice {
        let _ = waiting;
        self.slice()
    }
    /// Whether the current thread, at a traced syscall's entry, lets
    /// another thread run (if one is ready; the session checks).
    fn switch_at_syscall(&mut self, at: &AtSyscall) -> bool;
    /// Asked after `slice` when the recording has more than one thread:
    /// preempt the thread after an exact number of instructions, where it
    /// is then (the session single-steps it), or None (the slice's time
    /// decides).
    fn steps(&mut self) -> Option<Steps> {
        None
    }
    /// Whether, before each pick, the session waits for the stops that
    /// are due without any thread running (a new thread's first stop, the
    /// exit of a syscall that does not wait for others): then which
    /// threads are ready does not depend on timing, and neither do the
    /// policy's decisions.
    fn settles(&self) -> bool {
        false
    }
    /// Whether a slice's budget of buffered syscalls ([`Slice::syscalls`])
    /// is counted by the thread's hook, which bails at that count (the
    /// locals' `bail_after`), rather than seen by a tick (cheaper: a lone
    /// thread polling through its buffer never stops; but where the slice
    /// ends depends on when the tick looked).
    fn counts_buffered(&self) -> bool {
        false
    }
    /// Whether a slice's time is the thread's CPU time rather than the
    /// wall clock's (a thread the machine's load keeps off the CPU does not
    /// use up its slice: the slice ends where the program is, not where the
    /// load was).
    fn cpu_time_slices(&self) -> bool {
        false
    }
    /// What a chaos policy decided, for the trace header.
    fn summary(&self) -> Option<Summary> {
        None
    }
    /// Whether a thread last preempted spinning, resumed while others
    /// wait, is probed for its spin from its first arrival at the spin
    /// point's address (a breakpoint armed as it resumes) rather than
    /// after [`SPIN_SLICE_AGAIN`] without a syscall. Where it is preempted
    /// then depends on the program only, not on the ticks; a policy whose
    /// decisions must not change with it (chaos, a prescribed schedule)
    /// keeps the ticks' checks.
    fn arms_spin_points(&self) -> bool {
        false
    }

    /// Whether a private futex wait is held at its entry while another
    /// thread can run (`futex.rs`): which calls return `EAGAIN` then
    /// depends on when the recorder looks at their words, so a policy
    /// whose decisions must not change with the clock (chaos, a prescribed
    /// schedule) runs them as any traced wait.
    fn parks_futex_waits(&self) -> bool {
        false
    }

    /// Whether a thread last preempted spinning (`Task::spun`) has its
    /// `FUTEX_WAKE`s traced (the locals' `TRACE_WAKE`), and gives way at
    /// the exit of one that woke a thread: it would spin next for what
    /// that thread does. Which wakes are traced depends on the spin
    /// checks, found by the clock, so a policy whose decisions must not
    /// change with it (chaos, a prescribed schedule) does not.
    fn switches_at_spinner_wakes(&self) -> bool {
        false
    }

    /// Whether [`AtSyscall::timeout`] is wanted: the session reads a wait's
    /// timeout from the program's memory only for a policy that may pause
    /// past it (chaos).
    fn pauses_at_timeouts(&self) -> bool {
        false
    }
}

/// How long the current thread may run while another waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slice {
    /// Running user code without a syscall: then it is preempted at an
    /// execution point (a buffered thread, whose hook was asked to bail,
    /// too).
    pub(super) run: Duration,
    /// Running in a process with a syscall buffer: then its hook is asked
    /// to bail, so that it stops at its next syscall.
    pub(super) bail_after: Duration,
    /// Buffered syscalls since its last event (a thread polling through
    /// its buffer): then its hook is asked to bail.
    pub(super) syscalls: u32,
}

/// What the policy knows at a traced syscall's entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct AtSyscall {
    /// The syscall.
    pub(super) nr: i64,
    /// Traced syscalls the thread made since it was scheduled, this one
    /// included.
    pub(super) syscalls: u32,
    /// The recorder wanted the thread stopped here (it asked its hook to
    /// bail, or sought an execution point to preempt it at).
    pub(super) stop_requested: bool,
    /// How long the call waits at most before it returns on its own (a
    /// `poll`'s or a futex wait's timeout: `timeouts.rs`), where the
    /// policy asked for it ([`SchedulePolicy::pauses_at_timeouts`]).
    pub(super) timeout: Option<Duration>,
}

/// The policy's view of the threads: which exist and which are ready.
pub(super) struct Threads<'a> {
    tasks: &'a BTreeMap<Tid, Task>,
}

impl Threads<'_> {
    /// Whether `tid` is (still) a thread of the recording.
    pub(super) fn exists(&self, tid: Tid) -> bool {
        self.tasks.contains_key(&tid)
    }

    /// Whether `tid` is stopped by the recorder and may run.
    pub(super) fn is_ready(&self, tid: Tid) -> bool {
        self.tasks.get(&tid).is_some_and(|t| t.runnable())
    }

    /// When ready thread `tid` became ready (None: not ready, or not
    /// known).
    pub(super) fn ready_since(&self, tid: Tid) -> Option<Instant> {
        self.tasks
            .get(&tid)
            .filter(|t| t.runnable())
            .and_then(|t| t.ready_since)
    }

    /// Whether ready thread `tid` is ready because its slice was cut short
    /// spinning (it waits for another thread's progress).
    pub(super) fn cut_spinning(&self, tid: Tid) -> bool {
        self.tasks
            .get(&tid)
            .is_some_and(|t| t.runnable() && t.cut_spinning)
    }
}

/// How long a ready thread may wait while threads woken after it run
/// first ([`DefaultPolicy`]): then it runs next.
const HANDOFF_WAIT: Duration = Duration::from_millis(10);

/// The recorder's policy. Who runs next: of the ready threads other than
/// the one that just ran (it goes behind them), the one that became ready
/// last, unless one has waited [`HANDOFF_WAIT`] or more (then the one
/// that waited longest). The thread woken last is the one a hand-off was
/// for (a consumer a producer just notified, the waiter a lock was just
/// passed to): running it at once completes the hand-off, where running
/// an older one (woken in a herd, or preempted spinning for the very
/// thing the hand-off brings) only lets it find nothing and wait again.
/// Spinners come before and after that: a thread whose slice was all spin
/// (a spin check cut it short, and it made no syscall and no check found
/// it computing) waits for another thread's progress (a slice that was
/// not all spin). Cut short before the last progress, it may find what it
/// spun for: such threads run before all others, in join order from the
/// one after the spinner that ran first after the progress before (each
/// progress is offered first to another). Cut short since, it would only
/// spin again: it runs when no other can. Without this, a producer's slice
/// was always followed by the same consumer's, which took everything,
/// while the others spun in turn, two of them back and forth, only ever
/// finding nothing (crossbeam-deque's `no_starvation` test, which stops
/// when every stealer has stolen once, ran over ten minutes recorded, six
/// seconds natively).
/// Slices ([`TIMESLICE`], [`BAIL_SLICE`]) are shared among the threads
/// that wait (down to [`MIN_TIMESLICE`] and [`TICK`]); a switch at
/// `sched_yield`, at a syscall the recorder stopped the thread for, and
/// after [`SLICE_SYSCALLS`] traced syscalls. (A syscall that may block, a
/// futex wait, always lets others run: the session splits it.)
#[derive(Debug, Default)]
pub(super) struct DefaultPolicy {
    /// The threads in the order they joined.
    threads: Vec<Tid>,
    /// The thread picked last.
    last: Option<Tid>,
    /// Slices that were not cut short spinning, counted when the next
    /// thread is picked: the program's progress, as far as the schedule
    /// sees it.
    progress: u64,
    /// Threads whose last slice was cut short spinning, with `progress`
    /// as it was then.
    spinning_since: BTreeMap<Tid, u64>,
    /// The spinner that ran first after a progress, and that progress:
    /// after the next, the first spinner after it (in join order) runs
    /// first.
    lead: Option<(Tid, u64)>,
}

impl SchedulePolicy for DefaultPolicy {
    fn arms_spin_points(&self) -> bool {
        true
    }

    fn parks_futex_waits(&self) -> bool {
        true
    }

    fn switches_at_spinner_wakes(&self) -> bool {
        true
    }

    fn add(&mut self, tid: Tid) {
        if !self.threads.contains(&tid) {
            self.threads.push(tid);
        }
    }

    fn pick(&mut self, threads: &Threads<'_>) -> Option<Tid> {
        self.threads.retain(|&t| threads.exists(t));
        self.spinning_since.retain(|&t, _| threads.exists(t));
        if let Some(last) = self.last {
            if threads.cut_spinning(last) {
                self.spinning_since.insert(last, self.progress);
            } else {
                self.spinning_since.remove(&last);
                self.progress += 1;
            }
        }
        let now = Instant::now();
        // How long each ready thread has waited (one whose start is not
        // known counts as waiting long).
        let ready = || {
            self.threads
                .iter()
                .filter(|&&t| threads.is_ready(t))
                .map(|&t| {
                    let waited = threads
                        .ready_since(t)
                        .map_or(Duration::MAX, |since| now.saturating_duration_since(since));
                    (t, waited)
                })
        };
        let last = self.last;
        let others = || ready().filter(move |&(t, _)| Some(t) != last);
        let mut pool: Vec<(Tid, Duration)> = if others().next().is_some() {
            others().collect()
        } else {
            ready().collect()
        };
        // A thread cut short spinning since the last progress would only
        // spin again: it runs when no other can. One cut short before it
        // may find what it spun for: it runs first, in join order from the
        // one after the spinner that ran first after the progress before.
        let since = |t: Tid| self.spinning_since.get(&t).copied();
        let stale = |t: Tid| since(t) == Some(self.progress);
        let primed = |t: Tid| since(t).is_some_and(|s| s < self.progress);
        if pool.iter().any(|&(t, _)| !stale(t)) {
            pool.retain(|&(t, _)| !stale(t));
        }
        let after_lead = self
            .lead
            .and_then(|(lead, _)| self.threads.iter().position(|&t| t == lead))
            .map_or(0, |k| k + 1);
        let first_primed = (0..self.threads.len())
            .map(|k| self.threads[(after_lead + k) % self.threads.len()])
            .find(|&t| primed(t) && pool.iter().any(|&(p, _)| p == t));
        if let Some(t) = first_primed {
            if self.lead.is_none_or(|(_, at)| at != self.progress) {
                self.lead = Some((t, self.progress));
            }
        }
        // Equal waits go to the thread that joined first (`pool` is in
        // join order).
        let waited_long = || {
            pool.iter()
                .enumerate()
                .filter(|&(_, &(_, waited))| waited >= HANDOFF_WAIT)
                .max_by_key(|&(i, &(_, waited))| (waited, std::cmp::Reverse(i)))
                .map(|(_, &(t, _))| t)
        };
        let tid = match first_primed.or_else(waited_long) {
            Some(t) => t,
            None => pool
                .iter()
                .enumerate()
                .min_by_key(|&(i, &(_, waited))| (waited, i))
                .map(|(_, &(t, _))| t)?,
        };
        self.last = Some(tid);
        Some(tid)
    }

    fn slice(&mut self) -> Slice {
        Slice {
            run: TIMESLICE,
            bail_after: BAIL_SLICE,
            syscalls: SLICE_SYSCALLS,
        }
    }

    fn slice_for(&mut self, waiting: usize) -> Slice {
        // With n threads waiting, each waits n slices for its turn: share
        // the slice among them, so that a thread that holds what the
        // others wait for (a lock) comes round again soon.
        let n = u32::try_from(waiting.max(1)).unwrap_or(u32::MAX);
        Slice {
            run: (TIMESLICE / n).max(MIN_TIMESLICE),
            bail_after: (BAIL_SLICE / n).max(TICK),
            syscalls: SLICE_SYSCALLS,
        }
    }

    fn switch_at_syscall(&mut self, at: &AtSyscall) -> bool {
        // Give others a turn: at sched_yield, and after a long run of quick
        // syscalls (a thread polling with non-blocking calls must not starve
        // the thread it waits for).
        at.stop_requested || at.nr == libc::SYS_sched_yield || at.syscalls >= SLICE_SYSCALLS
    }
}

/// The scheduler's state: its policy and the current thread's slice.
pub(super) struct Scheduler {
    policy: Box<dyn SchedulePolicy>,
    /// The current thread's slice (the policy's, when it was scheduled).
    slice: Slice,
    /// Traced syscalls the current thread made since it was scheduled.
    slice_syscalls: u32,
    /// When the current thread was last resumed into user code.
    slice_started: Instant,
    /// The tick period the timer runs with.
    tick: Duration,
    /// The thread resumed last (to count switches).
    last_resumed: Option<Tid>,
    /// The current slice's expiry was counted (`slices_expired`).
    slice_expired: bool,
    /// The current thread's syscalls when last looked at (traced ones this
    /// slice, records in its buffer), and since when they are so: it made
    /// no progress since then.
    progress_mark: (u32, u32),
    progress_at: Instant,
    /// With CPU-time slices: the current thread's CPU time when its slice
    /// started (taken at the first tick of the slice).
    cpu_mark: Option<Duration>,
    /// When the current slice first asked its thread to bail (the request
    /// itself is cleared at each stop), and whether a stop cleared it
    /// since.
    bail_since: Option<Instant>,
    bail_renewed: bool,
    /// The thread's CPU time when a stop first cleared its request.
    bail_cpu: Option<Duration>,
}

impl Scheduler {
    pub(super) fn new(mut policy: Box<dyn SchedulePolicy>) -> Self {
        Scheduler {
            slice: policy.slice(),
            policy,
            slice_syscalls: 0,
            slice_started: Instant::now(),
            tick: TICK,
            last_resumed: None,
            slice_expired: false,
            progress_mark: (0, 0),
            progress_at: Instant::now(),
            cpu_mark: None,
            bail_since: None,
            bail_renewed: false,
            bail_cpu: None,
        }
    }

    /// Traced syscalls the current thread made since it was scheduled.
    pub(super) fn slice_syscalls(&self) -> u32 {
        self.slice_syscalls
    }

    /// A thread joined the recording.
    pub(super) fn add(&mut self, tid: Tid) {
        self.policy.add(tid);
    }

    /// The current thread was resumed into user code (its timeslice runs
    /// from now).
    pub(super) fn restart_slice(&mut self) {
        self.slice_started = Instant::now();
        self.slice_expired = false;
        self.progress_mark = (self.slice_syscalls, 0);
        self.progress_at = self.slice_started;
        self.cpu_mark = None;
        self.bail_since = None;
        self.bail_renewed = false;
        self.bail_cpu = None;
    }

    /// The current thread was checked for a spin and does not spin: the
    /// next check comes after another [`SPIN_SLICE`] without a syscall.
    pub(super) fn spin_check_failed(&mut self) {
        self.progress_at = Instant::now();
    }

    /// How long the current thread has made no syscall, given the records
    /// in its buffer now (`committed`; None: not known, or no buffer).
    fn without_progress(&mut self, committed: Option<u32>) -> Duration {
        let mark = (
            self.slice_syscalls,
            committed.unwrap_or(self.progress_mark.1),
        );
        if mark != self.progress_mark {
            self.progress_mark = mark;
            self.progress_at = Instant::now();
        }
        self.progress_at.elapsed()
    }

    /// Counts a traced syscall of the current thread and asks the policy
    /// whether to switch at it (only when there is more than one thread:
    /// `others`).
    pub(super) fn switch_at_syscall(
        &mut self,
        nr: i64,
        stop_requested: bool,
        others: bool,
        timeout: Option<Duration>,
    ) -> bool {
        self.slice_syscalls += 1;
        others
            && self.policy.switch_at_syscall(&AtSyscall {
                nr,
                syscalls: self.slice_syscalls,
                stop_requested,
                timeout,
            })
    }

    /// Whether the policy wants a wait's timeout ([`AtSyscall::timeout`]).
    pub(super) fn pauses_at_timeouts(&self) -> bool {
        self.policy.pauses_at_timeouts()
    }

    /// The current thread's syscall was split (others may run while it is
    /// in the kernel): its run of syscalls starts again.
    pub(super) fn split(&mut self) {
        self.slice_syscalls = 0;
    }

    /// Whether the policy wants the due stops taken before its decisions
    /// ([`SchedulePolicy::settles`]).
    pub(super) fn settles(&self) -> bool {
        self.policy.settles()
    }

    /// [`SchedulePolicy::parks_futex_waits`].
    pub(super) fn parks_futex_waits(&self) -> bool {
        self.policy.parks_futex_waits()
    }

    /// [`SchedulePolicy::switches_at_spinner_wakes`].
    pub(super) fn switches_at_spinner_wakes(&self) -> bool {
        self.policy.switches_at_spinner_wakes()
    }

    /// Whether the hook counts a slice's buffered syscalls
    /// ([`SchedulePolicy::counts_buffered`]).
    pub(super) fn counts_buffered(&self) -> bool {
        self.policy.counts_buffered()
    }

    /// The current slice's budget of buffered syscalls for the hook to
    /// count, if it counts them (at least 1).
    pub(super) fn hook_budget(&self) -> Option<u32> {
        self.counts_buffered().then(|| self.slice.syscalls.max(1))
    }

    /// What a chaos policy decided (None for the default policy).
    pub(super) fn summary(&self) -> Option<Summary> {
        self.policy.summary()
    }
}

impl Session {
    /// Resumes the next runnable thread, as the policy picks it (round
    /// robin by default).
    pub(super) fn schedule(&mut self) -> Result<(), Error> {
        if self.sched.policy.settles() {
            self.settle()?;
        }
        self.release_futex_waits(true)?;
        let threads = Threads { tasks: &self.tasks };
        let Some(tid) = self.sched.policy.pick(&threads) else {
            return Ok(());
        };
        match self.tasks.get(&tid).map(|t| t.state) {
            Some(State::Ready(pending)) => self.resume(tid, pending),
            state => {
                warn!(
                    tid,
                    ?state,
                    "the scheduling policy picked a thread that is not ready"
                );
                Ok(())
            }
        }
    }

    /// Makes `tid` the current thread, writing the exit of the syscall it is
    /// stopped in, if any.
    fn resume(&mut self, tid: Tid, pending: Pending) -> Result<(), Error> {
        self.current = Some(tid);
        self.slice_snapshot = None;
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.computed = false;
        }
        let waiting = self
            .tasks
            .iter()
            .filter(|(&t, task)| t != tid && task.runnable())
            .count();
        self.sched.slice = self.sched.policy.slice_for(waiting);
        let steps = (self.tasks.len() > 1)
            .then(|| self.sched.policy.steps())
            .flatten();
        self.sched.slice_syscalls = 0;
        self.sched.restart_slice();
        let last = self.sched.last_resumed.replace(tid);
        if last != Some(tid) {
            self.stats.schedule.switches += 1;
            if let Some(from) = last {
                self.note_switch(from, tid);
            }
        }
        let from_exit;
        // At the entry stop of a call it skips (a held futex wait let go).
        let skips_call = self
            .tasks
            .get(&tid)
            .is_some_and(|t| t.skip_at_entry.is_some());
        let exit_regs = match pending {
            Pending::Exit(entered) => Some(self.write_exit(tid, entered)?),
            Pending::ExitWritten(_, regs) => Some(regs),
            Pending::Nothing => None,
        };
        if let Some(regs) = exit_regs {
            from_exit = Some(regs);
            if self.step_over_syscall_done(tid) {
                // A tracee stepped over it: it stops for its tracer.
                return Ok(());
            }
        } else {
            from_exit = ptrace::getregs(tid).ok();
        }
        let handoff = self.hands_off(tid);
        let buffered = self.spaces.contains_key(&self.tasks[&tid].pid);
        let task = self.tasks.get_mut(&tid).expect("scheduled task exists");
        task.state = State::Running;
        task.resumed_at = from_exit;
        task.handoff_stop = handoff;
        if handoff
            && buffered
            && task.bail_requested.is_none()
            && crate::tracee::syscallbuf::set_force_bail(tid, true).is_ok()
        {
            // Its next syscall, buffered or not, stops (a hand-off:
            // `futex`).
            task.bail_requested = Some(Instant::now());
        }
        // A new slice: the last one's steps are moot.
        task.steps_left = None;
        task.spin_check = false;
        // A new slice: an interrupt sent in its last one is moot, and must
        // not keep the tick from looking at it. (Its stop, if it still
        // comes, is taken as a stray one and the thread goes on.)
        task.interrupt_requested = false;
        self.update_desched(tid, true)?;
        if let Some((signo, info, kind)) = self
            .tasks
            .get_mut(&tid)
            .and_then(|t| t.resume_signal.take())
        {
            // Its tracer resumed it with a signal (ptrace emulated).
            return self.deliver_signal_now(tid, signo, info, kind);
        }
        if skips_call {
            // It leaves that stop with PTRACE_CONT: a step or
            // PTRACE_SYSCALL would stop it at the skipped call's exit.
            if let Some(task) = self.tasks.get_mut(&tid) {
                task.skip_at_entry = None;
            }
            return ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid));
        }
        if self.resumes_at_entry(tid) {
            // Held at a syscall-entry stop: the entry is handled now.
            return self.syscall_entry(tid);
        }
        if self.watches_syscalls(tid) && self.spaces.contains_key(&self.tasks[&tid].pid) {
            // Under PTRACE_SYSCALL or a step: its buffered syscalls bail
            // to traced ones, which stop.
            if let Some(task) = self.tasks.get_mut(&tid) {
                if task.bail_requested.is_none()
                    && crate::tracee::syscallbuf::set_force_bail(tid, true).is_ok()
                {
                    task.bail_requested = Some(Instant::now());
                }
            }
        }
        if self.step_now(tid)? {
            // Its tracer asked for one instruction (ptrace emulated).
            return Ok(());
        }
        match steps {
            Some(steps) => self.run_steps(tid, steps),
            // (Not at its spin point in a hand-off: it may lie where the
            // thread holds the word another waits for.)
            None => match self.spin_point_to_arm(tid).filter(|_| !handoff) {
                Some(ip) => self.arm_spin_point(tid, ip),
                None => {
                    self.snapshot_slice_start(tid);
                    ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))
                }
            },
        }
    }

    /// The address to arm a spin probe at as `tid` resumes (see
    /// [`SchedulePolicy::arms_spin_points`]): its last spin point's, when
    /// its last check found it spinning, another thread waits for it, and
    /// no signal is held back for it.
    fn spin_point_to_arm(&self, tid: Tid) -> Option<u64> {
        if !self.sched.policy.arms_spin_points() || !self.others_ready(tid) {
            return None;
        }
        let task = self.tasks.get(&tid)?;
        if !task.spun || task.seeking.is_some() || !task.pending_signals.is_empty() {
            return None;
        }
        task.spin_ip
    }

    /// Whether a thread other than `tid` is ready to run (waits for it).
    pub(super) fn others_ready(&self, tid: Tid) -> bool {
        self.tasks
            .iter()
            .any(|(&t, task)| t != tid && task.runnable())
    }

    /// Runs the timer at [`LONE_TICK`] while the recording has one thread
    /// and no signal is held back, at [`SPIN_TICK`] while a thread found
    /// spinning at its last check runs and another waits, at [`TICK`]
    /// otherwise.
    pub(super) fn update_tick(&mut self) {
        let lone = self.tasks.len() == 1
            && self
                .tasks
                .values()
                .all(|t| t.pending_signals.is_empty() && t.seeking.is_none());
        let spinner_runs = self.current.is_some_and(|tid| {
            self.tasks.get(&tid).is_some_and(|t| t.spun) && self.others_ready(tid)
        });
        let want = if lone {
            LONE_TICK
        } else if spinner_runs {
            SPIN_TICK
        } else {
            TICK
        };
        if want != self.sched.tick {
            self.sched.tick = want;
            sys_signals::start_ticks(want);
        }
    }

    /// Splits the traced syscall `entered` that running thread `tid` has
    /// sat in for [`LATE_SPLIT`]: its `SyscallEntry` now, and another
    /// thread runs; its exit stop makes it ready, as for any split call.
    fn split_late(&mut self, tid: Tid, entered: super::Entered) -> Result<(), Error> {
        debug!(
            tid,
            nr = entered.nr,
            "a call that does not block sat in the kernel: split late"
        );
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.state = State::InSyscall {
                entered,
                split: true,
            };
        }
        self.sched.split();
        self.emit(rrtest_trace::Event::SyscallEntry {
            tid,
            nr: entered.nr,
            args: entered.args,
        })?;
        self.current = None;
        self.schedule()
    }

    /// Checks on the running thread: preempts it, or stops it to deliver a
    /// held-back signal, when it has run user code for too long.
    pub(super) fn tick(&mut self) -> Result<(), Error> {
        self.stats.schedule.ticks += 1;
        let Some(tid) = self.current else {
            return Ok(());
        };
        let others_wait = self.others_ready(tid);
        let mut elapsed = self.sched.slice_started.elapsed();
        if self.sched.policy.cpu_time_slices() {
            if let Some(now) = cpu_time(tid) {
                elapsed = now.saturating_sub(*self.sched.cpu_mark.get_or_insert(now));
            }
        }
        let slice = self.sched.slice;
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        if task.state == State::Running && task.interrupt_requested {
            let since = *task.interrupt_outstanding.get_or_insert_with(Instant::now);
            if since.elapsed() >= INTERRUPT_RESEND {
                debug!(tid, "no stop for the interrupt: sending it again");
                self.stats.schedule.interrupts_resent += 1;
                task.interrupt_outstanding = Some(Instant::now());
                return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
            }
            return Ok(());
        }
        task.interrupt_outstanding = None;
        if let State::InSyscall {
            entered,
            split: false,
        } = task.state
        {
            let late = others_wait
                && !self.sched.settles()
                && task.traced.is_none()
                && task.steps_left.is_none()
                && task
                    .in_kernel_since
                    .is_some_and(|t| t.elapsed() >= LATE_SPLIT)
                && entered.output.is_none()
                && entered.forced_ret.is_none()
                && !entered.switch_after
                && rrtest_syscalls::lookup(entered.nr)
                    .is_some_and(|d| d.replay == rrtest_syscalls::ReplayAction::Emulate);
            if late {
                return self.split_late(tid, entered);
            }
        }
        if task.state != State::Running {
            return Ok(());
        }
        if let Some(seek) = task.seeking {
            if seek.cpu_from().is_some()
                && self.spaces.contains_key(&task.pid)
                && others_wait
                && syscallbuf::blocked_in_untraced(tid)
            {
                // A chaos seek (its limit is CPU time, which a blocked
                // thread does not use) and a buffered syscall that
                // blocked: unwind it, as below.
                debug!(
                    tid,
                    "blocked in a buffered syscall while stepped: unwinding it"
                );
                task.interrupt_requested = true;
                return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
            }
            let cpu_now = seek.cpu_from().and_then(|_| cpu_time(tid));
            if seek.expired(cpu_now) {
                debug!(
                    tid,
                    "no return to the chosen address in time: interrupting where it is"
                );
                task.interrupt_requested = true;
                ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
            }
            return Ok(());
        }
        let signal_due = task
            .pending_since
            .map(|t| t.elapsed() >= SIGNAL_DELAY)
            .unwrap_or(false);
        let buffered = self.spaces.contains_key(&task.pid);
        let run_for = if buffered {
            slice.bail_after
        } else {
            slice.run
        };
        // The records in its buffer: its buffered syscalls since its last
        // event (only worth reading when others wait).
        let committed = if buffered && others_wait {
            syscallbuf::committed_records(tid).ok()
        } else {
            None
        };
        // A run of quick buffered syscalls counts like one of traced ones
        // (`slice.syscalls`): a thread polling through its buffer must not
        // keep the thread it waits for from running for a whole slice.
        // (Unless the hook counts them itself: `counts_buffered`.)
        let busy_polling = !self.sched.counts_buffered()
            && task.bail_requested.is_none()
            && committed.is_some_and(|n| n >= slice.syscalls);
        let idle_for = self.sched.without_progress(committed);
        if buffered && (others_wait || signal_due) && syscallbuf::blocked_in_untraced(tid) {
            // A buffered syscall blocked while others could run (or a signal
            // waits): unwind it (it is issued again, traced, and may block as
            // a split syscall). A `force_bail` cannot reach a thread that is
            // not calling the hook.
            debug!(tid, "blocked in a buffered syscall: unwinding it");
            task.interrupt_requested = true;
            return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
        }
        let spin_after = if task.spun {
            SPIN_SLICE_AGAIN
        } else {
            SPIN_SLICE
        };
        if others_wait && !signal_due && idle_for >= spin_after {
            // No syscall for a while, and others wait: if it spins, waiting
            // for one of them, preempt it now rather than at the slice's
            // end (`points` decides, see `Task::spin_check`).
            debug!(
                tid,
                ?idle_for,
                "no syscall while others wait: checking for a spin"
            );
            task.spin_check = true;
            task.interrupt_requested = true;
            return ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid));
        }
        if signal_due || busy_polling || (others_wait && elapsed >= run_for) {
            if !signal_due && !std::mem::replace(&mut self.sched.slice_expired, true) {
                self.stats.schedule.slices_expired += 1;
            }
            if buffered {
                // First ask the hook to bail: the thread then stops at its
                // next syscall, a cheaper place than an execution point.
                // Only a thread that makes none for a whole timeslice (or
                // keeps a signal waiting) is interrupted. Every stop clears
                // the request (a spin check's too, which lets the thread
                // go on): it is made again. A thread whose request was
                // cleared so is interrupted only after [`STUCK_SLICE`] of
                // its CPU time more (before, never: a thread computing with
                // no end, checked for a spin every few milliseconds, kept
                // the others from running for good; interrupting it at its
                // slice's end instead cut busy lock contenders on a loaded
                // machine at points replay found too slowly).
                let renewed = task.bail_requested.is_none() && self.sched.bail_since.is_some();
                let first = match self.sched.bail_since {
                    Some(first) => first,
                    None => {
                        self.stats.schedule.bail_requests += 1;
                        *self
                            .sched
                            .bail_since
                            .insert(task.bail_requested.unwrap_or_else(Instant::now))
                    }
                };
                if task.bail_requested.is_none() {
                    task.bail_requested = Some(first);
                    syscallbuf::set_force_bail(tid, true)
                        .map_err(ptrace_err("setting the buffer's force_bail", tid))?;
                }
                if first.elapsed() < SIGNAL_DELAY || (!signal_due && elapsed < slice.run) {
                    return Ok(());
                }
                if (renewed || self.sched.bail_renewed) && !signal_due {
                    // Measured in the thread's CPU time, which a loaded
                    // machine does not stretch.
                    self.sched.bail_renewed = true;
                    let now = cpu_time(tid).unwrap_or_default();
                    let from = *self.sched.bail_cpu.get_or_insert(now);
                    if now.saturating_sub(from) < STUCK_SLICE {
                        return Ok(());
                    }
                }
            }
            debug!(tid, signal_due, ?elapsed, "interrupting the running thread");
            task.interrupt_requested = true;
            task.spin_check = false;
            ptrace::interrupt(tid).map_err(ptrace_err("PTRACE_INTERRUPT", tid))?;
        }
        Ok(())
    }
}

/// The CPU time thread `tid` has run (`/proc/TID/schedstat`), if readable.
pub(super) fn cpu_time(tid: Tid) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// For the policies' tests: runs `f` on a view of threads in `states`.
#[cfg(test)]
pub(super) mod tests_support {
    use super::*;

    pub(in crate::recorder::session) fn threads_of<R>(
        states: &[(Tid, State)],
        f: impl FnOnce(&Threads<'_>) -> R,
    ) -> R {
        let tasks: BTreeMap<Tid, Task> = states
            .iter()
            .map(|&(tid, state)| (tid, Task::new(tid, state)))
            .collect();
        f(&Threads { tasks: &tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: State = State::Ready(Pending::Nothing);

    /// Tasks in `states`, each ready one ready for the given time.
    fn waited(states: &[(Tid, State, u64)]) -> BTreeMap<Tid, Task> {
        let now = Instant::now();
        states
            .iter()
            .map(|&(tid, state, ms)| {
                let mut task = Task::new(tid, state);
                task.ready_since = now.checked_sub(Duration::from_millis(ms));
                (tid, task)
            })
            .collect()
    }

    #[test]
    fn default_policy_runs_the_thread_woken_last_and_not_the_one_that_just_ran() {
        let mut policy = DefaultPolicy::default();
        for tid in [1, 2, 3, 2] {
            policy.add(tid);
        }
        let mut pick = |states: &[(Tid, State, u64)]| {
            let tasks = waited(states);
            policy.pick(&Threads { tasks: &tasks })
        };
        // 3 became ready last (it was just woken): it runs first.
        assert_eq!(
            pick(&[(1, READY, 3), (2, READY, 2), (3, READY, 1)]),
            Some(3)
        );
        // 3 just ran and is ready again, newest of all: it goes behind the
        // others, and 2 (newer than 1) runs.
        assert_eq!(
            pick(&[(1, READY, 3), (2, READY, 2), (3, READY, 0)]),
            Some(2)
        );
        // Not ready threads are passed over.
        assert_eq!(
            pick(&[(1, READY, 4), (2, State::Running, 0), (3, READY, 1)]),
            Some(3)
        );
        // The thread that just ran runs again when it is the only one ready.
        assert_eq!(
            pick(&[(1, State::Unborn, 0), (2, State::Running, 0), (3, READY, 0)]),
            Some(3)
        );
        assert_eq!(
            pick(&[
                (1, State::Unborn, 0),
                (2, State::Running, 0),
                (3, State::Running, 0)
            ]),
            None
        );
        // Equal waits: the one that joined first.
        assert_eq!(
            pick(&[(1, READY, 5), (2, READY, 5), (3, State::Running, 0)]),
            Some(1)
        );
        // A thread that is gone is dropped (and 1, which ran last, is
        // gone: 3, woken last, runs).
        assert_eq!(pick(&[(2, READY, 1), (3, READY, 0)]), Some(3));
        assert_eq!(policy.threads, vec![2, 3]);
    }

    #[test]
    fn default_policy_runs_a_thread_that_waited_too_long_first() {
        let mut policy = DefaultPolicy::default();
        for tid in [1, 2, 3] {
            policy.add(tid);
        }
        let mut pick = |states: &[(Tid, State, u64)]| {
            let tasks = waited(states);
            policy.pick(&Threads { tasks: &tasks })
        };
        let long = HANDOFF_WAIT.as_millis() as u64;
        // 1 waited past the limit: it runs before 3, woken last.
        assert_eq!(
            pick(&[(1, READY, long + 5), (2, READY, long + 1), (3, READY, 0)]),
            Some(1)
        );
        // Then 2, the longest waiting of the others.
        assert_eq!(
            pick(&[(1, READY, 0), (2, READY, long + 2), (3, READY, 1)]),
            Some(2)
        );
        // A ready thread whose start is not known counts as waiting long.
        let mut tasks = waited(&[(1, READY, 0), (2, State::Running, 0), (3, READY, 1)]);
        tasks.get_mut(&1).expect("task 1").ready_since = None;
        assert_eq!(policy.pick(&Threads { tasks: &tasks }), Some(1));
    }

    #[test]
    fn default_policy_runs_spinners_after_progress_in_turn_and_not_before() {
        let mut policy = DefaultPolicy::default();
        for tid in [1, 2, 3, 4] {
            policy.add(tid);
        }
        let long = HANDOFF_WAIT.as_millis() as u64;
        // (tid, waited ms, its slice was all spin, cut short)
        let mut pick = |states: &[(Tid, u64, bool)]| {
            let listed: Vec<_> = states.iter().map(|&(t, ms, _)| (t, READY, ms)).collect();
            let mut tasks = waited(&listed);
            for &(t, _, cut) in states {
                tasks.get_mut(&t).expect("task").cut_spinning = cut;
            }
            policy.pick(&Threads { tasks: &tasks })
        };
        // No spinner yet: the usual rules (1 waited past the limit; then
        // 2, the longest waiting of the others).
        let p = pick(&[
            (1, long + 5, false),
            (2, 1, false),
            (3, 2, false),
            (4, 3, false),
        ]);
        assert_eq!(p, Some(1));
        let p = pick(&[
            (1, 0, false),
            (2, long + 1, false),
            (3, 2, false),
            (4, 1, false),
        ]);
        assert_eq!(p, Some(2));
        // 2 spun (cut short); none waited long: the newest, 3.
        let p = pick(&[(1, 5, false), (2, 0, true), (3, 3, false), (4, 4, false)]);
        assert_eq!(p, Some(3));
        // 3 spun too: 4 runs, not 2, which spun since the last progress.
        let p = pick(&[(1, 6, false), (2, 1, true), (3, 0, true), (4, 5, false)]);
        assert_eq!(p, Some(4));
        // All three spun since 1's slice: 1 runs, though 3 is newer.
        let p = pick(&[(1, 7, false), (2, 2, true), (3, 1, true), (4, 0, true)]);
        assert_eq!(p, Some(1));
        // 1 made progress: the spinners run first, in join order (not 3,
        // which waited longest) ...
        let p = pick(&[
            (1, 0, false),
            (2, long + 1, true),
            (3, long + 3, true),
            (4, long + 2, true),
        ]);
        assert_eq!(p, Some(2));
        let p = pick(&[
            (1, 1, false),
            (2, 0, true),
            (3, long + 4, true),
            (4, long + 3, true),
        ]);
        assert_eq!(p, Some(3));
        let p = pick(&[
            (1, 2, false),
            (2, 1, true),
            (3, 0, true),
            (4, long + 4, true),
        ]);
        assert_eq!(p, Some(4));
        // ... and, all spun again, the producer.
        let p = pick(&[(1, 3, false), (2, 2, true), (3, 1, true), (4, 0, true)]);
        assert_eq!(p, Some(1));
        // After its next progress, the turn starts one further on: 3 runs
        // first, so that 2 does not take everything every time.
        let p = pick(&[(1, 0, false), (2, 3, true), (3, 2, true), (4, 1, true)]);
        assert_eq!(p, Some(3));
    }

    #[test]
    fn default_policy_switches_at_sched_yield_a_requested_stop_and_a_full_slice() {
        let mut policy = DefaultPolicy::default();
        let mut at = |nr, syscalls, stop_requested| {
            policy.switch_at_syscall(&AtSyscall {
                nr,
                syscalls,
                stop_requested,
                timeout: None,
            })
        };
        assert!(at(libc::SYS_sched_yield, 1, false));
        assert!(at(libc::SYS_write, 1, true));
        assert!(!at(libc::SYS_write, SLICE_SYSCALLS - 1, false));
        assert!(at(libc::SYS_write, SLICE_SYSCALLS, false));
    }

    #[test]
    fn default_policy_shares_the_slice_among_waiting_threads() {
        let mut policy = DefaultPolicy::default();
        assert_eq!(policy.slice_for(0), policy.slice());
        assert_eq!(policy.slice_for(1), policy.slice());
        let two = policy.slice_for(2);
        assert_eq!((two.run, two.bail_after), (TIMESLICE / 2, BAIL_SLICE / 2));
        // Never below the floors: a preemption costs an execution point.
        let many = policy.slice_for(50);
        assert_eq!((many.run, many.bail_after), (MIN_TIMESLICE, TICK));
        assert_eq!(many.syscalls, SLICE_SYSCALLS);
    }

    #[test]
    fn scheduler_measures_time_without_a_syscall() {
        let mut sched = Scheduler::new(Box::new(DefaultPolicy::default()));
        sched.restart_slice();
        std::thread::sleep(Duration::from_millis(3));
        // No traced syscall, no new buffered record: no progress since the
        // slice began.
        assert!(sched.without_progress(Some(0)) >= Duration::from_millis(3));
        assert!(sched.without_progress(None) >= Duration::from_millis(3));
        // A buffered syscall is progress: the count starts again.
        assert!(sched.without_progress(Some(1)) < Duration::from_millis(3));
        std::thread::sleep(Duration::from_millis(3));
        assert!(sched.without_progress(Some(1)) >= Duration::from_millis(3));
        // So is a traced one.
        sched.switch_at_syscall(libc::SYS_write, false, true, None);
        assert!(sched.without_progress(Some(1)) < Duration::from_millis(3));
        // A failed spin check starts it again too.
        std::thread::sleep(Duration::from_millis(3));
        sched.spin_check_failed();
        assert!(sched.without_progress(Some(1)) < Duration::from_millis(3));
    }

    #[test]
    fn scheduler_counts_syscalls_and_asks_the_policy_only_with_others() {
        let mut sched = Scheduler::new(Box::new(DefaultPolicy::default()));
        for _ in 0..SLICE_SYSCALLS - 1 {
            assert!(!sched.switch_at_syscall(libc::SYS_write, false, true, None));
        }
        // A lone thread never switches, but its syscalls count.
        assert!(!sched.switch_at_syscall(libc::SYS_sched_yield, false, false, None));
        assert!(sched.switch_at_syscall(libc::SYS_write, false, true, None));
        sched.split();
        assert!(!sched.switch_at_syscall(libc::SYS_write, false, true, None));
    }
}
