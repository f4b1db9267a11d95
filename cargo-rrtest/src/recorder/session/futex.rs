//! Private futex waits held at their entry (issue #19: hand-offs cheap).
//!
//! A thread that waits on a futex while another thread can run would block
//! in the kernel, be woken there by the other's `FUTEX_WAKE` (buffered,
//! unseen by the recorder), run to its syscall-exit stop at once (taking the
//! CPU from its waker) and then wait there for its turn: two stops and two
//! needless switches per wait. Instead, under the default policy, a private
//! `FUTEX_WAIT`/`FUTEX_WAIT_BITSET` without a timeout is held at its entry
//! stop ([`Session::futex_entry`]): its `SyscallEntry` is written as for
//! any wait that may block (a split syscall), but the thread is not resumed
//! into the kernel. For the program the call has not reached the kernel
//! yet; it does when it is let go ([`Session::release_futex_waits`]):
//! - the futex word no longer holds the value it waits on: the call returns
//!   `EAGAIN`, as the kernel's would made at that moment, skipped at its
//!   entry stop (its `SyscallExit` written when the thread runs again): one
//!   stop for the wait instead of two;
//! - the word still holds it after [`KERNEL_AFTER`], or no thread is left to
//!   run: the call goes into the kernel as any traced wait (for a wake that
//!   does not change the word, a signal, the end of the process).
//!
//! A wait whose word differs already at its entry is let go at once.
//!
//! The words are read when a wake may have come (a buffered or traced futex
//! call, a thread exit, in the waiter's process: [`Session::futex_woken`]),
//! at each tick, and at each `sched_yield` (a thread that yields waits for
//! another, maybe the held one: while a wait is held in its process its
//! yields are traced, the locals' `TRACE_YIELD`). Before this, a thread
//! that let a held waiter's lock go and then yielded until the waiter had
//! it yielded, buffered, until the next tick: a slice per hand-off
//! (crossbeam-channel's `ready::fairness2`, 100000 rounds: 49.9 s
//! recorded). A wait is not held while a thread found spinning can run:
//! its wake (buffered, no stop) would show only at a tick. The waker's
//! `FUTEX_WAKE` returns the kernel's count, without the held waiters: as
//! if they had not reached the kernel yet, which the futex contract allows
//! (a waiter rechecks its condition). Replay sees a split syscall and its result, as for any
//! wait: the holding is the recorder's schedule only.
//!
//! A thread let go from a wait (woken, or `EAGAIN`) that waits again on the
//! same word for the same value at its next traced syscall, with no
//! buffered syscall in between, lost the word: another thread took it back
//! before this one ran (a lock its holder releases and takes again in a
//! loop, preempted each time while holding it: a spinning thread is
//! preempted at the same spin point each turn, which may lie inside its
//! critical section). (A condition variable's waiter that finds nothing
//! after a wake waits again on the same word, but for the sequence value
//! the wake's notify moved on: not a lost word.) Natively the waiter runs
//! beside the holder and gets the word when it is released; here it could
//! lose it for ever (crossbeam-channel's `select_macro::loop_try` failed so
//! every recording). The [`LOSSES`]th such wait in a row asks for a
//! hand-off ([`HandOff`]): it is held at its entry even while a spinning
//! thread can run, and every other thread of its process resumed before it
//! runs again (for at most [`HANDOFF_FOR`]) stops at its next traced
//! syscall (its syscall buffer asked to bail) and is not preempted at its
//! spin point: the holder's next syscall is the release's wake, where it
//! stops with the word released, and the waiter, let go as its word
//! changed, runs next.
//!
//! Must not: pick threads (`schedule`), or hold a thread that its tracer,
//! a held-back signal or a chaos policy has a claim on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rrtest_sys::ptrace::{self, Regs};
use rrtest_sys::RemoteMem;
use rrtest_trace::{Event, Tid};
use tracing::trace;

use super::{ptrace_err, Entered, Error, Pending, Session, State};
use crate::tracee::syscallbuf;

/// How long a held wait whose word keeps its value waits before it goes
/// into the kernel (a wake that left the word as it was, or none yet).
pub(super) const KERNEL_AFTER: Duration = Duration::from_millis(20);

/// How many times in a row a thread loses its futex word before a hand-off
/// is asked for: a few losses are contention as it comes (parking_lot's
/// lock, whose waiters park on their own word, loses some each round; a
/// hand-off at each doubled its stops), a run of them is starvation.
const LOSSES: u32 = 4;

/// How long the other threads stop at their next syscall for a thread that
/// lost its futex word ([`HandOff`]) while it has not run again.
const HANDOFF_FOR: Duration = Duration::from_millis(20);

/// A thread that waits again on the futex word it was just let go from:
/// the other threads of its process stop at their next syscall until it
/// runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HandOff {
    /// The thread that lost its word.
    waiter: Tid,
    /// Its process.
    pid: Tid,
    /// When it lost it.
    since: Instant,
}

/// A wait held at its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Parked {
    /// The futex word.
    uaddr: u64,
    /// The value the call waits on.
    val: u32,
    /// When it was held.
    since: Instant,
    /// Its registers at the entry stop.
    regs: Regs,
}

/// Held waits' futex words read at a stop with the stopped thread's
/// syscall buffer (one `process_vm_readv` for both: [`Session::flush`]),
/// for [`Session::release_futex_waits`] to use instead of reading them
/// again: at a hand-off through a held wait (one stop per item of a
/// one-slot queue) that read was a syscall of seven per stop. Valid until
/// a thread is resumed (any ptrace resume request: `ptrace::resumes`):
/// until then no thread of the process runs user code that could change
/// them. (A word read a little early is what a wait made then would see:
/// the held call has not reached the kernel. One kept too long would let a
/// thread that yields while it waits for the held one yield again, a stop
/// more, before the wait is let go.)
#[derive(Debug, Default)]
pub(super) struct ReadWords {
    /// The process whose words these are.
    pid: Option<Tid>,
    /// `ptrace::resumes()` when they were read.
    resumes: u64,
    /// The words' addresses, and what they held.
    addrs: Vec<u64>,
    words: Vec<u32>,
    /// The word of a wait about to be held, to read with the next buffer
    /// read (its thread's entry's flush).
    wanted: Option<u64>,
}

impl ReadWords {
    /// Starts a read of one process's words: those of the waits `held`
    /// there and the one [`Self::wanted`], into [`Self::addrs`] and
    /// [`Self::words`] (which [`Self::done`], told the process, then keeps
    /// or not).
    pub(super) fn begin(&mut self, held: impl Iterator<Item = u64>) {
        self.pid = None;
        self.addrs.clear();
        for a in held.chain(self.wanted) {
            if !self.addrs.contains(&a) {
                self.addrs.push(a);
            }
        }
        self.words.clear();
        self.words.resize(self.addrs.len(), 0);
    }

    /// The addresses to read, and room for their words.
    pub(super) fn slots(&mut self) -> (&[u64], &mut [u32]) {
        (&self.addrs, &mut self.words)
    }

    /// The read [`Self::begin`] started, of process `pid`, is over: `read`,
    /// whether the words were read.
    pub(super) fn done(&mut self, pid: Tid, read: bool) {
        self.pid = (read && !self.addrs.is_empty()).then_some(pid);
        self.resumes = ptrace::resumes();
    }

    /// The words read in `pid` at `addrs`, if all were.
    fn get(&self, pid: Tid, addrs: &[u64]) -> Option<Vec<u32>> {
        if self.pid != Some(pid) || self.resumes != ptrace::resumes() {
            return None;
        }
        addrs
            .iter()
            .map(|a| {
                let i = self.addrs.iter().position(|x| x == a)?;
                Some(self.words[i])
            })
            .collect()
    }
}

impl Parked {
    /// The futex word's address.
    pub(super) fn uaddr(&self) -> u64 {
        self.uaddr
    }
}

/// How a held wait goes on once let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// The word changed: the call returns `EAGAIN`.
    Changed,
    /// Into the kernel, as any traced wait.
    Kernel,
}

/// The command of futex op `op`: without `FUTEX_PRIVATE_FLAG` and
/// `FUTEX_CLOCK_REALTIME`.
fn command(op: u64) -> u64 {
    op & rrtest_abi::buffered::FUTEX_CMD_MASK
}

/// The word and value of `futex(args)` when it is a private wait without a
/// timeout (`FUTEX_WAIT` or `FUTEX_WAIT_BITSET`, `FUTEX_PRIVATE_FLAG`).
pub(super) fn private_wait(nr: i64, args: &[u64; 6]) -> Option<(u64, u32)> {
    let op = args[1];
    wait_word(nr, args).filter(|_| {
        op & libc::FUTEX_PRIVATE_FLAG as u64 != 0
            && args[3] == 0
            && (command(op) != libc::FUTEX_WAIT_BITSET as u64 || args[5] as u32 != 0)
    })
}

/// Whether `futex(args)` is a wake (`FUTEX_WAKE` or `FUTEX_WAKE_BITSET`,
/// private or not): it returns how many waiters the kernel woke. (The
/// x86-64 call only: a 32-bit one has a number of its own.)
pub(super) fn wake(nr: i64, args: &[u64; 6]) -> bool {
    let cmd = command(args[1]);
    nr == libc::SYS_futex
        && (cmd == libc::FUTEX_WAKE as u64 || cmd == libc::FUTEX_WAKE_BITSET as u64)
}

/// The word and value of `futex(args)` when it is a wait (`FUTEX_WAIT` or
/// `FUTEX_WAIT_BITSET`, private or not, with a timeout or without).
pub(super) fn wait_word(nr: i64, args: &[u64; 6]) -> Option<(u64, u32)> {
    let cmd = command(args[1]);
    (nr == libc::SYS_futex
        && (cmd == libc::FUTEX_WAIT as u64 || cmd == libc::FUTEX_WAIT_BITSET as u64))
        .then_some((args[0], args[2] as u32))
}

impl Session {
    /// At the entry stop of syscall `nr` of `tid`: whether it is a futex
    /// wait on the word, for the value, the thread was let go from at its
    /// last traced syscall, with no buffered syscall since (it lost the
    /// word), for the [`LOSSES`]th time in a row: then a hand-off is asked
    /// for ([`HandOff`]).
    fn lost_word(&mut self, tid: Tid, nr: i64, args: &[u64; 6], compat: bool) -> bool {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return false;
        };
        let last = task.last_wait.take();
        let streak = std::mem::take(&mut task.lost_streak);
        let pid = task.pid;
        if !self.futex_parking
            || !self.sched.parks_futex_waits()
            || compat
            || last.is_none()
            || wait_word(nr, args) != last
            || self.tasks.len() < 2
            // Buffered syscalls since it was let go: it did some work (a
            // parker's next park, after the items it was woken for).
            || (self.spaces.contains_key(&pid)
                && syscallbuf::committed_records(tid).map_or(true, |n| n > 0))
        {
            return false;
        }
        let streak = streak + 1;
        if streak < LOSSES {
            self.tasks.get_mut(&tid).expect("task exists").lost_streak = streak;
            return false;
        }
        self.handoff = Some(HandOff {
            waiter: tid,
            pid,
            since: Instant::now(),
        });
        self.stats.schedule.futex_handoffs += 1;
        trace!(tid, uaddr = args[0], "futex word lost again: a hand-off");
        true
    }

    /// The exit of `tid`'s syscall `entered`, which returned `ret`, as it
    /// is written: a futex wait let go (woken, or `EAGAIN`) is remembered
    /// until the thread's next traced syscall ([`Session::lost_word`]).
    pub(super) fn note_wait_exit(&mut self, tid: Tid, entered: &Entered, ret: i64) {
        let word = wait_word(entered.nr, &entered.args)
            .filter(|_| ret == 0 || ret == -(libc::EAGAIN as i64));
        if let Some(task) = self.tasks.get_mut(&tid) {
            task.last_wait = word;
        }
    }

    /// As `tid` resumes: whether it is to stop at its next traced syscall
    /// for a hand-off to another thread of its process. The hand-off ends
    /// when its waiter runs (or is gone), or after [`HANDOFF_FOR`].
    pub(super) fn hands_off(&mut self, tid: Tid) -> bool {
        let Some(h) = self.handoff else {
            return false;
        };
        if h.waiter == tid
            || h.since.elapsed() >= HANDOFF_FOR
            || !self.tasks.contains_key(&h.waiter)
        {
            self.handoff = None;
            return false;
        }
        self.tasks.get(&tid).is_some_and(|t| t.pid == h.pid)
    }

    /// At the entry stop of syscall `nr` (`compat`: an `int $0x80` one) of
    /// `tid`, current, its registers `regs`: holds a private futex wait
    /// while another thread can run. Its word is read at the next pick,
    /// right after (a wait whose word differs already is let go then).
    /// Returns whether it held it.
    pub(super) fn futex_entry(
        &mut self,
        tid: Tid,
        nr: i64,
        args: &[u64; 6],
        compat: bool,
        regs: &Regs,
    ) -> Result<bool, Error> {
        let lost = self.lost_word(tid, nr, args, compat);
        let Some((uaddr, val)) = private_wait(nr, args).filter(|_| !compat) else {
            return Ok(false);
        };
        let Some(task) = self.tasks.get(&tid) else {
            return Ok(false);
        };
        if !self.futex_parking
            || !self.sched.parks_futex_waits()
            || task.traced.is_some()
            || !task.pending_signals.is_empty()
            || task.seeking.is_some()
            || !self.others_ready(tid)
            || (!lost
                && self
                    .tasks
                    .iter()
                    .any(|(&t, other)| t != tid && other.runnable() && other.spun))
        {
            // (A thread found spinning would wake it without a stop: the
            // wait goes into the kernel, which shows the wake at once. Not
            // in a hand-off: the others stop at their next syscall.)
            return Ok(false);
        }
        let pid = task.pid;
        self.sched.split();
        self.read_words.wanted = Some(uaddr);
        let emitted = self.emit(Event::SyscallEntry {
            tid,
            nr,
            args: *args,
        });
        self.read_words.wanted = None;
        emitted?;
        let at = Instant::now();
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::InSyscall {
            entered: Entered {
                nr,
                args: *args,
                forced_ret: None,
                output: None,
                ip: regs.rip,
                switch_after: false,
            },
            split: true,
        };
        task.futex = Some(Parked {
            uaddr,
            val,
            since: at,
            regs: *regs,
        });
        self.futex_due.insert(pid);
        self.stats.schedule.futex_parked += 1;
        self.stats.traced_syscalls += 1;
        if self.current == Some(tid) {
            self.current = None;
        }
        trace!(tid, uaddr, val, "futex wait held at its entry");
        Ok(true)
    }

    /// A wake may have come in process `pid` (a futex call of one of its
    /// threads, buffered or traced, or a thread's exit): its held waits'
    /// words are read at the next look.
    pub(super) fn futex_woken(&mut self, pid: Tid) {
        if self
            .tasks
            .values()
            .any(|t| t.pid == pid && t.futex.is_some())
        {
            self.futex_due.insert(pid);
        }
    }

    /// Lets held waits go: those whose word changed, and into the kernel
    /// those held for [`KERNEL_AFTER`]. At a pick (`at_pick`) it reads the
    /// words in the processes where a wake may have come, and lets all go
    /// into the kernel when no thread can run; at a tick it reads them all
    /// (a thread that wakes another and runs on, spinning, makes no stop
    /// that would show its buffered wake).
    pub(super) fn release_futex_waits(&mut self, at_pick: bool) -> Result<(), Error> {
        let every = !at_pick;
        if !self.tasks.values().any(|t| t.futex.is_some()) {
            self.futex_due.clear();
            return Ok(());
        }
        let due = std::mem::take(&mut self.futex_due);
        let now = Instant::now();
        // The words to read, one read per process.
        let mut looks: HashMap<Tid, (Tid, Vec<u64>)> = HashMap::new();
        for (&tid, task) in &self.tasks {
            if let Some(p) = task.futex.filter(|_| every || due.contains(&task.pid)) {
                let (_, addrs) = looks.entry(task.pid).or_insert((tid, Vec::new()));
                if !addrs.contains(&p.uaddr) {
                    addrs.push(p.uaddr);
                }
            }
        }
        let mut words: HashMap<(Tid, u64), u32> = HashMap::new();
        for (pid, (tid, addrs)) in looks {
            let read = match self.read_words.get(pid, &addrs) {
                Some(w) => Ok(w),
                None => RemoteMem::new(tid).read_words(&addrs),
            };
            if let Ok(w) = read {
                words.extend(addrs.into_iter().map(|a| (pid, a)).zip(w));
            }
        }
        let mut releases = Vec::new();
        for (&tid, task) in self.tasks.iter_mut() {
            let Some(parked) = task.futex.as_mut() else {
                continue;
            };
            if !every && !due.contains(&task.pid) {
                continue;
            }
            match words.get(&(task.pid, parked.uaddr)) {
                Some(&w) if w != parked.val => releases.push((tid, Release::Changed)),
                Some(_) if now.duration_since(parked.since) < KERNEL_AFTER => {}
                _ => releases.push((tid, Release::Kernel)),
            }
        }
        for (tid, how) in releases {
            self.release_futex_wait(tid, how)?;
        }
        if at_pick && !self.tasks.values().any(|t| t.runnable()) {
            let held: Vec<Tid> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.futex.is_some())
                .map(|(&t, _)| t)
                .collect();
            for tid in held {
                self.release_futex_wait(tid, Release::Kernel)?;
            }
        }
        Ok(())
    }

    /// Lets held wait `tid` go, `how`.
    fn release_futex_wait(&mut self, tid: Tid, how: Release) -> Result<(), Error> {
        let Some(task) = self.tasks.get_mut(&tid) else {
            return Ok(());
        };
        let Some(parked) = task.futex.take() else {
            return Ok(());
        };
        let State::InSyscall { entered, .. } = task.state else {
            return Ok(());
        };
        trace!(tid, ?how, "held futex wait let go");
        match how {
            Release::Changed => {
                // Skipped at its entry stop, where it stays: its exit is
                // written when it runs (`finish_syscall_regs`).
                let ret = -(libc::EAGAIN as i64);
                task.skip_at_entry = Some(parked.regs);
                task.set_ready(Pending::Exit(Entered {
                    forced_ret: Some(ret),
                    ..entered
                }));
                self.stats.schedule.futex_changed += 1;
                Ok(())
            }
            Release::Kernel => ptrace::syscall(tid, 0).map_err(ptrace_err("PTRACE_SYSCALL", tid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_waits_without_a_timeout_are_held() {
        let wait = |op: i32, timeout: u64, val3: u64| {
            private_wait(libc::SYS_futex, &[0x1000, op as u64, 7, timeout, 0, val3])
        };
        let private = libc::FUTEX_PRIVATE_FLAG;
        assert_eq!(wait(libc::FUTEX_WAIT | private, 0, 0), Some((0x1000, 7)));
        assert_eq!(
            wait(libc::FUTEX_WAIT_BITSET | private, 0, u32::MAX as u64),
            Some((0x1000, 7))
        );
        // With FUTEX_CLOCK_REALTIME (meaningful with a timeout only).
        assert_eq!(
            wait(
                libc::FUTEX_WAIT_BITSET | private | libc::FUTEX_CLOCK_REALTIME,
                0,
                1
            ),
            Some((0x1000, 7))
        );
        // Shared: a process outside may wake it.
        assert_eq!(wait(libc::FUTEX_WAIT, 0, 0), None);
        // A timeout: the kernel keeps the time.
        assert_eq!(wait(libc::FUTEX_WAIT | private, 0x7000, 0), None);
        // An empty bitset is EINVAL: the kernel says so.
        assert_eq!(wait(libc::FUTEX_WAIT_BITSET | private, 0, 0), None);
        // Not waits.
        assert_eq!(wait(libc::FUTEX_WAKE | private, 0, 0), None);
        assert_eq!(wait(libc::FUTEX_LOCK_PI | private, 0, 0), None);
        assert_eq!(
            private_wait(libc::SYS_read, &[0x1000, 128, 7, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn any_wait_names_its_word_for_a_hand_off() {
        let word = |op: i32, timeout: u64| {
            wait_word(libc::SYS_futex, &[0x2000, op as u64, 2, timeout, 0, 0])
        };
        let private = libc::FUTEX_PRIVATE_FLAG;
        assert_eq!(word(libc::FUTEX_WAIT | private, 0), Some((0x2000, 2)));
        // Shared, or with a timeout (a parker's `park_timeout`): a word
        // lost all the same.
        assert_eq!(word(libc::FUTEX_WAIT, 0), Some((0x2000, 2)));
        assert_eq!(
            word(libc::FUTEX_WAIT_BITSET | private, 0x7000),
            Some((0x2000, 2))
        );
        assert_eq!(word(libc::FUTEX_WAKE | private, 0), None);
        assert_eq!(word(libc::FUTEX_LOCK_PI | private, 0), None);
        assert_eq!(wait_word(libc::SYS_read, &[0x2000, 0, 2, 0, 0, 0]), None);
    }
}
