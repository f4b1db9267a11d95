//! The chaos scheduling policy (`--chaos`): a seeded random
//! [`SchedulePolicy`] that makes the interleavings a plain recording
//! hides happen (rr's chaos mode, without a branch counter).
//!
//! What it decides, each draw from a seeded generator: the recording's
//! for who runs (priorities, start order, picks, pauses), and each
//! thread's own (seeded from the seed and its place in join order) for
//! where its slices end (grain, budgets, steps, syscall switches), so that
//! a thread's slices end at the same places in its run whatever the other
//! threads did (what `diff --minimize`'s prescribed schedules rely on):
//! - priorities: every thread is high or low; a low one runs only when no
//!   high one is ready, so it starves for a while. All are drawn again
//!   every few picks (so no starvation lasts).
//! - thread start order: a new thread is, half the time, made high and run
//!   at the next pick (before its creator goes on).
//! - among ready threads of the top priority, a random one, passing over
//!   the one that just ran where there is a choice;
//! - the slice: a run of 1 to 64 traced syscalls, and, for a thread drawn
//!   fine or coarse grained (drawn again every 4 to 32 of its slices), an
//!   exact number of instructions (1 to 48,
//!   or 48 to 2048) after which it is preempted where it is (the session
//!   single-steps it there: [`super::steps`]), so a thread can be switched
//!   out between a load and its store;
//!   or, for a thread drawn counted, a few steps and then the N-th (1 to
//!   2000) arrival at one of the addresses stepped through, found at full
//!   speed with a breakpoint: a preemption deep inside a loop;
//! - a switch at a quarter of traced syscalls besides the default's;
//! - now and then a pause: nothing is scheduled for 1 to 20 ms, while
//!   blocked syscalls (timeouts) go on in the kernel;
//! - at one wait with a timeout of up to 100 ms in four (a `poll`, a futex
//!   wait, ...: `timeouts.rs` reads it), a pause that outlasts the timeout,
//!   so that the wait times out as on a loaded machine.
//!
//! No slice ends by the clock: a thread runs until its instruction count,
//! its arrival count or its syscall budget is spent (or it blocks), so the
//! same seed on the same program and input makes the same decisions, and
//! so the same digest ([`ChaosPolicy::summary`], written into the trace
//! header). The time slice is only a safety net ([`SAFETY_SLICE`] of the
//! thread's CPU time) for a thread drawn to end at a syscall that makes
//! none.
//!
//! Must not: see or drive ptrace, or read the clock for anything but the
//! end of a pause (time-based preemption is the session's, from the slice).

use std::time::{Duration, Instant};

use tracing::trace;

use super::schedule::{AtSyscall, SchedulePolicy, Slice, Steps, Summary, Threads};
use rrtest_trace::Tid;

/// Picks between two draws of all threads' priorities: from 4 to this.
const MAX_EPOCH_PICKS: u32 = 32;
/// One pick in this many starts a pause.
const PAUSE_ONE_IN: u64 = 50;
/// The longest pause.
const MAX_PAUSE_MS: u64 = 20;
/// One wait with a timeout in this many starts a pause longer than its
/// timeout.
const TIMEOUT_PAUSE_ONE_IN: u64 = 4;
/// The longest timeout a pause outlasts: a longer wait is not a race a
/// loaded machine makes.
const MAX_TIMEOUT_PAUSE: Duration = Duration::from_millis(100);
/// How much longer than the timeout such a pause lasts (and a quarter of
/// the timeout): the thread enters its wait a little after the decision.
const TIMEOUT_PAUSE_MARGIN: Duration = Duration::from_millis(5);
/// The time slice (CPU time): a safety net only. Slices end by counts
/// (instructions, arrivals, syscalls), which repeat with the seed; the
/// clock's ends do not.
const SAFETY_SLICE: Duration = Duration::from_millis(250);
/// One traced syscall in this many switches besides the default's reasons.
const SWITCH_ONE_IN: u64 = 4;
/// Fine-grained instruction budgets: 1 to this.
const FINE_STEPS: u64 = 48;
/// Coarse budgets: log-uniform from [`FINE_STEPS`] to this.
const COARSE_STEPS: u64 = 2048;

/// Instructions stepped to find addresses for a counted slice.
const SAMPLE_STEPS: u32 = 24;
/// The most arrivals a counted slice waits for.
const MAX_ARRIVALS: u64 = 2000;

/// SplitMix64: small, fast, and fixed here (a crate's generator could
/// change between versions and with it every seed's schedule).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n)
    }

    /// Log-uniform in `lo..=hi` (`lo` >= 1): short values as likely per
    /// octave as long ones.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + (b - a) * unit).exp() as u64).clamp(lo, hi)
    }
}

#[derive(Debug)]
struct Thread {
    tid: Tid,
    /// Its place in join order (what the digest names it by: thread ids
    /// differ between runs).
    index: u64,
    high: bool,
    /// How its slices end, for `grain_left` more slices.
    grain: Grain,
    grain_left: u32,
    /// Its own generator: where its slices end.
    rng: SplitMix64,
}

impl Thread {
    fn new(seed: u64, tid: Tid, index: u64) -> Thread {
        let mut rng = SplitMix64::new(seed ^ (index + 1).wrapping_mul(0xd605_bbb5_8c8a_bb4d));
        let grain = Grain::draw(&mut rng);
        let grain_left = rng.range(4, u64::from(MAX_EPOCH_PICKS)) as u32;
        Thread {
            tid,
            index,
            high: false,
            grain,
            grain_left,
            rng,
        }
    }
}

/// How a thread's slices end for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// After 1 to [`FINE_STEPS`] instructions: chopped fine, so that a
    /// switch lands between a load and its store.
    Fine,
    /// After [`FINE_STEPS`] to [`COARSE_STEPS`] instructions.
    Coarse,
    /// After [`SAMPLE_STEPS`] instructions and then up to
    /// [`MAX_ARRIVALS`] arrivals at one of their addresses.
    Counted,
    /// At a syscall or when its time slice is over.
    Time,
}

impl Grain {
    fn draw(rng: &mut SplitMix64) -> Grain {
        match rng.range(0, 9) {
            0..4 => Grain::Fine,
            4..6 => Grain::Coarse,
            6..8 => Grain::Counted,
            _ => Grain::Time,
        }
    }
}

/// The chaos policy (see the module comment).
#[derive(Debug)]
pub(super) struct ChaosPolicy {
    seed: u64,
    /// Who runs: priorities, start order, picks, pauses.
    rng: SplitMix64,
    threads: Vec<Thread>,
    joined: u64,
    /// The thread picked last.
    last: Option<Tid>,
    /// A new thread to run at the next pick, if ready.
    first: Option<Tid>,
    /// Picks left until priorities are drawn again.
    epoch_left: u32,
    /// Nothing is picked before this.
    paused_until: Option<Instant>,
    /// The current slice's syscall budget.
    slice_syscalls: u32,
    summary: Summary,
}

/// Kinds of decisions, as the digest names them.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Priority = 1,
    First = 2,
    Pick = 3,
    Pause = 4,
    Slice = 5,
    Steps = 6,
    Switch = 7,
    TimeoutPause = 8,
}

impl ChaosPolicy {
    pub(super) fn new(seed: u64) -> Self {
        ChaosPolicy {
            seed,
            rng: SplitMix64::new(seed),
            threads: Vec::new(),
            joined: 0,
            last: None,
            first: None,
            epoch_left: 0,
            paused_until: None,
            slice_syscalls: 1,
            summary: Summary {
                decisions: 0,
                digest: 0xcbf2_9ce4_8422_2325,
            },
        }
    }

    fn note(&mut self, kind: Decision, thread: u64, value: u64) {
        trace!(?kind, thread, value, "chaos decision");
        self.summary.decisions += 1;
        for word in [kind as u64, thread, value] {
            for byte in word.to_le_bytes() {
                self.summary.digest ^= u64::from(byte);
                self.summary.digest = self.summary.digest.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    fn index_of(&self, tid: Tid) -> u64 {
        self.threads
            .iter()
            .find(|t| t.tid == tid)
            .map(|t| t.index)
            .unwrap_or(u64::MAX)
    }

    /// The thread picked last (the one a slice or a syscall switch is
    /// about).
    pub(super) fn last(&self) -> Option<Tid> {
        self.last
    }

    /// `tid` runs next, picked by another (a prescribed schedule): the
    /// slice and the syscall switches that follow are its.
    pub(super) fn picked(&mut self, tid: Tid) {
        self.last = Some(tid);
    }

    /// The thread picked last, if it is still there.
    fn current(&mut self) -> Option<&mut Thread> {
        let last = self.last?;
        self.threads.iter_mut().find(|t| t.tid == last)
    }

    /// The new thread that runs at the next pick, if any.
    pub(super) fn runs_first(&self) -> Option<Tid> {
        self.first
    }

    /// Lets the new thread wait its turn after all (a prescribed schedule
    /// that does not keep that decision).
    pub(super) fn cancel_first(&mut self) {
        self.first = None;
    }

    /// Whether a pause is under way.
    pub(super) fn paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Ends the pause under way (a prescribed schedule that does not keep
    /// it).
    pub(super) fn cancel_pause(&mut self) {
        self.paused_until = None;
    }

    fn redraw_priorities(&mut self) {
        for i in 0..self.threads.len() {
            let high = self.rng.one_in(2);
            self.threads[i].high = high;
            let index = self.threads[i].index;
            self.note(Decision::Priority, index, u64::from(high));
        }
        self.epoch_left = self.rng.range(4, u64::from(MAX_EPOCH_PICKS)) as u32;
    }
}

impl SchedulePolicy for ChaosPolicy {
    fn add(&mut self, tid: Tid) {
        if self.threads.iter().any(|t| t.tid == tid) {
            return;
        }
        let index = self.joined;
        self.joined += 1;
        // The first thread has nothing to go before.
        let first = index > 0 && self.rng.one_in(2);
        let mut thread = Thread::new(self.seed, tid, index);
        thread.high = first || index == 0;
        self.note(
            Decision::First,
            index,
            u64::from(first) | (thread.grain as u64) << 1,
        );
        if first {
            self.first = Some(tid);
        }
        self.threads.push(thread);
    }

    fn pick(&mut self, threads: &Threads<'_>) -> Option<Tid> {
        self.threads.retain(|t| threads.exists(t.tid));
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return None;
            }
            self.paused_until = None;
        }
        if !self.threads.iter().any(|t| threads.is_ready(t.tid)) {
            return None;
        }
        if self.rng.one_in(PAUSE_ONE_IN) {
            let ms = self.rng.log_range(1, MAX_PAUSE_MS);
            self.note(Decision::Pause, 0, ms);
            self.paused_until = Some(Instant::now() + Duration::from_millis(ms));
            return None;
        }
        if let Some(tid) = self.first.take() {
            if threads.is_ready(tid) {
                self.last = Some(tid);
                let index = self.index_of(tid);
                self.note(Decision::Pick, index, 1);
                return Some(tid);
            }
        }
        if self.epoch_left == 0 {
            self.redraw_priorities();
        }
        self.epoch_left -= 1;
        let ready: Vec<&Thread> = self
            .threads
            .iter()
            .filter(|t| threads.is_ready(t.tid))
            .collect();
        let top = ready.iter().any(|t| t.high);
        let mut candidates: Vec<&Thread> = ready.into_iter().filter(|t| t.high == top).collect();
        if candidates.len() > 1 {
            candidates.retain(|t| Some(t.tid) != self.last);
        }
        let i = self.rng.range(0, candidates.len() as u64 - 1) as usize;
        let (tid, index) = (candidates[i].tid, candidates[i].index);
        self.note(Decision::Pick, index, 0);
        self.last = Some(tid);
        Some(tid)
    }

    fn slice(&mut self) -> Slice {
        let (thread, syscalls) = match self.current() {
            Some(t) => {
                if t.grain_left == 0 {
                    t.grain = Grain::draw(&mut t.rng);
                    t.grain_left = t.rng.range(4, u64::from(MAX_EPOCH_PICKS)) as u32;
                }
                t.grain_left -= 1;
                (t.index, t.rng.range(1, 64) as u32)
            }
            None => (0, self.rng.range(1, 64) as u32),
        };
        self.slice_syscalls = syscalls;
        self.note(Decision::Slice, thread, u64::from(syscalls));
        Slice {
            run: SAFETY_SLICE,
            bail_after: SAFETY_SLICE / 2,
            syscalls,
        }
    }

    fn steps(&mut self) -> Option<Steps> {
        let Some(t) = self.current() else {
            self.note(Decision::Steps, 0, 0);
            return None;
        };
        let (thread, rng) = (t.index, &mut t.rng);
        let steps = match t.grain {
            Grain::Fine => Some(Steps {
                steps: rng.range(1, FINE_STEPS) as u32,
                count: None,
            }),
            Grain::Coarse => Some(Steps {
                steps: rng.log_range(FINE_STEPS, COARSE_STEPS) as u32,
                count: None,
            }),
            Grain::Counted => Some(Steps {
                steps: SAMPLE_STEPS,
                count: Some((
                    rng.range(0, u64::from(SAMPLE_STEPS) - 1) as u32,
                    rng.log_range(1, MAX_ARRIVALS) as u32,
                )),
            }),
            Grain::Time => None,
        };
        let value = steps.map_or(0, |s| {
            let (pick, hits) = s.count.unwrap_or((0, 0));
            u64::from(s.steps) | u64::from(pick) << 16 | u64::from(hits) << 32
        });
        self.note(Decision::Steps, thread, value);
        steps
    }

    fn switch_at_syscall(&mut self, at: &AtSyscall) -> bool {
        if let Some(timeout) = at.timeout {
            // A wait with a timeout: now and then nothing is scheduled for
            // longer than it, so that it times out (the thread it waits
            // for is not run in time, as on a loaded machine). Drawn at
            // every such wait, whatever its length, so that the draws do
            // not depend on the clock (a deadline's distance does).
            let (thread, pause) = match self.current() {
                Some(t) => (t.index, t.rng.one_in(TIMEOUT_PAUSE_ONE_IN)),
                None => (0, self.rng.one_in(TIMEOUT_PAUSE_ONE_IN)),
            };
            self.note(Decision::TimeoutPause, thread, u64::from(pause));
            if pause && !timeout.is_zero() && timeout <= MAX_TIMEOUT_PAUSE {
                let margin = TIMEOUT_PAUSE_MARGIN + timeout / 4;
                self.paused_until = Some(Instant::now() + timeout + margin);
                return true;
            }
        }
        if at.stop_requested || at.nr == libc::SYS_sched_yield || at.syscalls >= self.slice_syscalls
        {
            return true;
        }
        let (thread, switch) = match self.current() {
            Some(t) => (t.index, t.rng.one_in(SWITCH_ONE_IN)),
            None => (0, self.rng.one_in(SWITCH_ONE_IN)),
        };
        self.note(Decision::Switch, thread, u64::from(switch));
        switch
    }

    fn settles(&self) -> bool {
        true
    }

    fn counts_buffered(&self) -> bool {
        true
    }

    fn cpu_time_slices(&self) -> bool {
        true
    }

    fn summary(&self) -> Option<Summary> {
        Some(self.summary)
    }

    fn pauses_at_timeouts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::session::schedule::tests_support::threads_of;
    use crate::recorder::session::{Pending, State};

    const READY: State = State::Ready(Pending::Nothing);

    type Answer = (Option<Tid>, Slice, Option<Steps>, bool);

    /// Drives a policy through a fixed sequence of queries and returns its
    /// answers.
    fn drive(seed: u64) -> (Vec<Answer>, Summary) {
        let mut p = ChaosPolicy::new(seed);
        let mut out = Vec::new();
        for tid in [10, 11, 12] {
            p.add(tid);
        }
        let tasks = [(10, READY), (11, READY), (12, READY)];
        for _ in 0..200 {
            // No pause is waited out: a test must not sleep.
            p.paused_until = None;
            let picked = threads_of(&tasks, |t| p.pick(t));
            let slice = p.slice();
            let steps = p.steps();
            let switch = p.switch_at_syscall(&AtSyscall {
                nr: libc::SYS_write,
                syscalls: 1,
                stop_requested: false,
                timeout: None,
            });
            out.push((picked, slice, steps, switch));
        }
        (out, p.summary)
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions_and_another_seed_others() {
        let (a, sa) = drive(7);
        let (b, sb) = drive(7);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, sc) = drive(8);
        assert_ne!(a, c);
        assert_ne!(sa.digest, sc.digest);
    }

    #[test]
    fn chaos_picks_every_thread_preempts_after_short_runs_and_pauses() {
        let answers: Vec<Answer> = (1..=3).flat_map(|seed| drive(seed).0).collect();
        for tid in [10, 11, 12] {
            assert!(
                answers.iter().any(|a| a.0 == Some(tid)),
                "thread {tid} never picked: {answers:?}"
            );
        }
        let steps: Vec<u32> = answers
            .iter()
            .filter_map(|a| a.2.filter(|s| s.count.is_none()))
            .map(|s| s.steps)
            .collect();
        let counted: Vec<(u32, u32)> = answers.iter().filter_map(|a| a.2?.count).collect();
        assert!(counted.iter().any(|&(_, hits)| hits == 1), "{counted:?}");
        assert!(counted.iter().any(|&(_, hits)| hits > 100), "{counted:?}");
        assert!(steps.iter().any(|&s| s <= 4), "{steps:?}");
        assert!(
            steps.iter().any(|&s| u64::from(s) > FINE_STEPS),
            "{steps:?}"
        );
        assert!(answers.iter().any(|a| a.2.is_none()));
        assert!(answers.iter().any(|a| a.3) && answers.iter().any(|a| !a.3));
        // No slice ends by the clock (only the safety net's).
        assert!(answers.iter().all(|a| a.1.run == SAFETY_SLICE));
        let budgets: Vec<u32> = answers.iter().map(|a| a.1.syscalls).collect();
        assert!(budgets.iter().any(|&b| b <= 4) && budgets.iter().any(|&b| b > 32));
        // Some picks are pauses (None) although every thread is ready.
        assert!(answers.iter().any(|a| a.0.is_none()));
    }

    #[test]
    fn a_pause_holds_every_thread_until_it_ends() {
        let mut p = ChaosPolicy::new(3);
        p.add(1);
        p.paused_until = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(threads_of(&[(1, READY)], |t| p.pick(t)), None);
        p.paused_until = Some(Instant::now() - Duration::from_millis(1));
        // Over: the lone ready thread runs (unless a new pause is drawn).
        let picked = (0..10)
            .map(|_| {
                p.paused_until = None;
                threads_of(&[(1, READY)], |t| p.pick(t))
            })
            .collect::<Vec<_>>();
        assert!(picked.contains(&Some(1)), "{picked:?}");
    }

    #[test]
    fn a_low_priority_thread_waits_while_a_high_one_is_ready() {
        let mut p = ChaosPolicy::new(5);
        p.add(1);
        p.add(2);
        p.first = None;
        p.redraw_priorities();
        p.threads[0].high = true;
        p.threads[1].high = false;
        p.epoch_left = 1000;
        for _ in 0..50 {
            p.paused_until = None;
            let got = threads_of(&[(1, READY), (2, READY)], |t| p.pick(t));
            assert_ne!(got, Some(2));
        }
        // Only the low one ready: it runs.
        p.paused_until = None;
        let got = (0..5)
            .map(|_| {
                p.paused_until = None;
                threads_of(&[(1, State::Running), (2, READY)], |t| p.pick(t))
            })
            .collect::<Vec<_>>();
        assert!(got.contains(&Some(2)), "{got:?}");
    }

    #[test]
    fn log_range_stays_in_bounds_and_reaches_both_ends() {
        let mut r = SplitMix64::new(9);
        let v: Vec<u64> = (0..5000).map(|_| r.log_range(1, 20)).collect();
        assert!(v.iter().all(|&x| (1..=20).contains(&x)));
        assert!(v.contains(&1) && v.contains(&20));
    }
}
