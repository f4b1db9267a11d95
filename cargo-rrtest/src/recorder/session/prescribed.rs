//! A prescribed schedule ([`PrescribedPolicy`]): the chaos decisions of a
//! seed, only some of them carried out, for `cargo rrtest diff --minimize`
//! (`harness/minimize.rs`), which re-runs a test live under fewer and
//! fewer of a failing chaos recording's decisions until it has the fewest
//! that still make it fail.
//!
//! The chaos policy of the seed runs underneath and stops each thread
//! where it would: where a thread's slices end comes from the thread's own
//! generator (`chaos.rs`), so the stops fall at the same places in its run
//! whatever the other threads do. The decisions are the stops where the
//! chaos policy lets another thread run and the default policy would not:
//! - `preempt`: a slice that ends after a count of instructions or
//!   arrivals ([`SchedulePolicy::steps`]);
//! - `switch`: a switch at a traced syscall the default would run through;
//! - `first`: a new thread run before its creator goes on;
//! - `pause`: nothing scheduled for a while.
//!
//! A decision is named by its thread and the number of the stop among
//! that thread's (`crate::recorder::Kept`), so that dropping one decision
//! leaves the others' names as they were. At a kept decision the thread
//! the failing run ran next runs next (if ready; else the chaos pick); at
//! any other the stopped thread goes on (the default's answer). With every
//! decision kept the schedule is the seed's.
//!
//! With a log ([`Log`]), it writes JSON lines: each thread as it joins
//! (`{"thread":N,"tid":T}`, N from 1 in join order), each decision
//! (`{"decision":ID,"label":"N.K","kind":K,"tid":T,"kept":B}`), and, from
//! the session, each switch between threads with where the thread switched
//! out was (`{"switch":T,"to":U,"state":S,"ip":..,"file":..,"addr":..,
//! "syscall":..,"stack":[{"file":..,"addr":..}]}`: `file` and `addr` name
//! the mapped file and the address in it that `addr2line` takes; `stack`
//! the calls found on its stack, innermost first).
//!
//! Must not: see or drive ptrace (the session reads the switched-out
//! thread's registers and maps for the log).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tracing::warn;

use super::chaos::ChaosPolicy;
use super::schedule::{AtSyscall, SchedulePolicy, Slice, Steps, Summary, Threads};
use super::{Session, State};
use crate::recorder::Prescribed;
use rrtest_sys::ptrace;
use rrtest_trace::Tid;

/// The default policy's syscall run before a switch (`schedule.rs`'s
/// `SLICE_SYSCALLS`): a chaos switch at a syscall before it is a decision.
const DEFAULT_SLICE_SYSCALLS: u32 = 64;

/// The low half of a `first` decision's identity.
const FIRST: u64 = 0xffff_ffff;

/// The log of a prescribed recording, shared by the policy and the
/// session (one writer: the recorder is one thread).
#[derive(Clone)]
pub(super) struct Log(Arc<Mutex<std::io::BufWriter<std::fs::File>>>);

impl Log {
    pub(super) fn create(path: &Path) -> std::io::Result<Log> {
        let file = std::fs::File::create(path)?;
        Ok(Log(Arc::new(Mutex::new(std::io::BufWriter::new(file)))))
    }

    fn line(&self, v: Value) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(w, "{v}").and_then(|()| w.flush()) {
            warn!(error = %e, "cannot write the prescribed schedule's log");
        }
    }
}

/// Who runs at the next pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// This thread (it goes on).
    Tid(Tid),
    /// The thread with this number.
    Thread(u32),
}

/// The policy (see the module comment).
pub(super) struct PrescribedPolicy {
    chaos: ChaosPolicy,
    /// The decisions carried out, with the thread to run at each (None:
    /// all, with the chaos pick).
    keep: Option<BTreeMap<u64, Option<u32>>>,
    /// Threads announced, in join order (number N is `joined[N - 1]`).
    joined: Vec<Tid>,
    /// Each thread's stops that were decisions so far.
    stops: HashMap<Tid, u64>,
    /// Pauses drawn so far.
    pauses: u64,
    /// Who runs at the next pick, if a decision said.
    next: Option<Next>,
    /// Every decision so far, in order.
    seen: Vec<u64>,
    log: Option<Log>,
}

impl PrescribedPolicy {
    pub(super) fn new(p: &Prescribed, log: Option<Log>) -> Self {
        PrescribedPolicy {
            chaos: ChaosPolicy::new(p.seed),
            keep: p
                .keep
                .as_ref()
                .map(|k| k.iter().map(|k| (k.decision, k.next)).collect()),
            joined: Vec::new(),
            stops: HashMap::new(),
            pauses: 0,
            next: None,
            seen: Vec::new(),
            log,
        }
    }

    /// The number of thread `tid` (1: the first to join; 0: unknown).
    fn number(&self, tid: Tid) -> u64 {
        self.joined
            .iter()
            .position(|&t| t == tid)
            .map_or(0, |i| i as u64 + 1)
    }

    /// The identity of thread `tid`'s next stop that is a decision.
    fn stop_id(&mut self, tid: Tid) -> (u64, String) {
        let n = self.number(tid);
        let k = self.stops.entry(tid).or_insert(0);
        let id = n << 32 | *k;
        let label = format!("{n}.{k}");
        *k += 1;
        (id, label)
    }

    /// Whether the decision `id` is carried out, and the thread to run at
    /// it (logged).
    fn decide(
        &mut self,
        id: u64,
        label: &str,
        kind: &str,
        tid: Option<Tid>,
    ) -> Option<Option<u32>> {
        self.seen.push(id);
        let kept = match &self.keep {
            None => Some(None),
            Some(k) => k.get(&id).copied(),
        };
        if let Some(log) = &self.log {
            log.line(json!({
                "decision": id,
                "label": label,
                "kind": kind,
                "tid": tid,
                "kept": kept.is_some(),
            }));
        }
        kept
    }

    /// A thread's stop that is a decision: at the next pick, the thread the
    /// decision names runs (or the chaos pick), or the stopped one goes on.
    fn stop(&mut self, kind: &str) {
        let Some(tid) = self.chaos.last() else {
            return;
        };
        let (id, label) = self.stop_id(tid);
        self.next = match self.decide(id, &label, kind, Some(tid)) {
            Some(next) => next.map(Next::Thread),
            None => Some(Next::Tid(tid)),
        };
    }
}

impl SchedulePolicy for PrescribedPolicy {
    fn add(&mut self, tid: Tid) {
        if self.joined.contains(&tid) {
            return;
        }
        self.joined.push(tid);
        if let Some(log) = &self.log {
            log.line(json!({"thread": self.joined.len(), "tid": tid}));
        }
        let creator = self.chaos.last();
        self.chaos.add(tid);
        if self.chaos.runs_first() == Some(tid) {
            let n = self.number(tid);
            let label = format!("{n}.first");
            if self
                .decide(n << 32 | FIRST, &label, "first", Some(tid))
                .is_none()
            {
                self.chaos.cancel_first();
                self.next = creator.map(Next::Tid);
            }
        }
    }

    fn pick(&mut self, threads: &Threads<'_>) -> Option<Tid> {
        if !self.chaos.paused() {
            let next = match self.next.take() {
                Some(Next::Tid(t)) => Some(t),
                Some(Next::Thread(n)) => self.joined.get((n as usize).wrapping_sub(1)).copied(),
                None => None,
            };
            if let Some(tid) = next.filter(|&t| threads.is_ready(t)) {
                self.chaos.picked(tid);
                return Some(tid);
            }
        }
        loop {
            let was_paused = self.chaos.paused();
            let picked = self.chaos.pick(threads);
            if picked.is_none() && !was_paused && self.chaos.paused() {
                // A new pause: kept, or the pick is made again (the chaos
                // policy draws on, as it would after the pause).
                let k = self.pauses;
                self.pauses += 1;
                if self
                    .decide(k, &format!("pause.{k}"), "pause", None)
                    .is_some()
                {
                    return None;
                }
                self.chaos.cancel_pause();
                continue;
            }
            return picked;
        }
    }

    fn slice(&mut self) -> Slice {
        self.chaos.slice()
    }

    fn slice_for(&mut self, waiting: usize) -> Slice {
        self.chaos.slice_for(waiting)
    }

    fn switch_at_syscall(&mut self, at: &AtSyscall) -> bool {
        let chaos = self.chaos.switch_at_syscall(at);
        let default = at.stop_requested
            || at.nr == libc::SYS_sched_yield
            || at.syscalls >= DEFAULT_SLICE_SYSCALLS;
        if chaos && !default {
            // Switched at either way: a thread that goes on is picked again
            // and starts a slice, as it would have after the switch.
            self.stop("switch");
        }
        chaos
    }

    fn steps(&mut self) -> Option<Steps> {
        let steps = self.chaos.steps()?;
        // Stopped there either way (so its later stops are where they were).
        self.stop("preempt");
        Some(steps)
    }

    fn settles(&self) -> bool {
        self.chaos.settles()
    }

    fn counts_buffered(&self) -> bool {
        self.chaos.counts_buffered()
    }

    fn pauses_at_timeouts(&self) -> bool {
        self.chaos.pauses_at_timeouts()
    }

    fn cpu_time_slices(&self) -> bool {
        self.chaos.cpu_time_slices()
    }

    fn summary(&self) -> Option<Summary> {
        self.chaos.summary()
    }
}

impl Session {
    /// With a prescribed schedule's log: writes the switch from thread
    /// `from` to `to`, with where `from` is (its registers, if it is
    /// stopped; the file mapped there; the return addresses on its stack).
    pub(super) fn note_switch(&mut self, from: Tid, to: Tid) {
        let Some(log) = &self.switch_log else {
            return;
        };
        let (state, syscall) = match self.tasks.get(&from).map(|t| t.state) {
            None => ("exited", None),
            Some(State::Ready(super::Pending::Exit(e))) => ("syscall", Some(e.nr)),
            Some(State::Ready(super::Pending::ExitWritten(nr, _))) => ("syscall", Some(nr)),
            Some(State::Ready(_)) => ("ready", None),
            Some(State::InSyscall { entered, .. }) => ("blocked", Some(entered.nr)),
            Some(_) => ("other", None),
        };
        let regs = match state {
            "ready" | "syscall" => ptrace::getregs(from).ok(),
            _ => None,
        };
        let maps = regs.and_then(|_| Maps::of(from));
        let place = regs
            .zip(maps.as_ref())
            .and_then(|(r, m)| m.file_address(r.rip));
        let stack: Vec<Value> = match (regs, &maps) {
            (Some(r), Some(m)) => m
                .return_addresses(from, r.rsp)
                .into_iter()
                .map(|(file, addr)| json!({"file": file, "addr": addr}))
                .collect(),
            _ => Vec::new(),
        };
        log.line(json!({
            "switch": from,
            "to": to,
            "state": state,
            "syscall": syscall,
            "ip": regs.map(|r| r.rip),
            "file": place.as_ref().map(|p| p.0.clone()),
            "addr": place.map(|p| p.1),
            "stack": stack,
        }));
    }
}

/// How much of a stack [`Maps::return_addresses`] looks at.
const STACK_SCAN: u64 = 8192;
/// The most return addresses it gives.
const STACK_FRAMES: usize = 8;

/// A thread's memory mappings (`/proc/TID/maps`): start, end, whether
/// executable, path.
struct Maps(Vec<(u64, u64, bool, String)>);

impl Maps {
    fn of(tid: Tid) -> Option<Maps> {
        let text = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
        let mut rows = Vec::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let path = f.nth(3).unwrap_or("");
            let (lo, hi) = range.split_once('-')?;
            rows.push((
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
                perms.contains('x'),
                path.to_string(),
            ));
        }
        Some(Maps(rows))
    }

    /// The file mapped at `ip` and the address in that file as its symbols
    /// name it (`addr2line`'s): `ip` itself in a fixed-address executable,
    /// the offset from the file's lowest mapping in a position-independent
    /// one (whose first loadable segment is at 0).
    fn file_address(&self, ip: u64) -> Option<(String, u64)> {
        let (_, _, _, path) = self
            .0
            .iter()
            .find(|(lo, hi, _, p)| (*lo..*hi).contains(&ip) && p.starts_with('/'))?;
        let base = self.0.iter().filter(|r| r.3 == *path).map(|r| r.0).min()?;
        let mut head = [0u8; 18];
        std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut head).ok()?;
        const ET_DYN: u16 = 3;
        let addr = if u16::from_le_bytes([head[16], head[17]]) == ET_DYN {
            ip - base
        } else {
            ip
        };
        Some((path.clone(), addr))
    }

    /// Return addresses on the stack above `sp`, as (file, address of the
    /// call): a scan for words that point just after a call instruction in
    /// a file's executable mapping. There are no unwind tables here, so a
    /// frame can be missing (a tail call) or stale (an old return address
    /// left in a local); good enough to name the caller of the function a
    /// thread was stopped in.
    fn return_addresses(&self, tid: Tid, sp: u64) -> Vec<(String, u64)> {
        let mem = rrtest_sys::RemoteMem::new(tid);
        let Some(&(_, end, _, _)) = self
            .0
            .iter()
            .find(|(lo, hi, _, _)| (*lo..*hi).contains(&sp))
        else {
            return Vec::new();
        };
        let Ok(words) = mem.read_vec(sp, (end - sp).min(STACK_SCAN) as usize) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for w in words.chunks_exact(8) {
            let ret = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            let code = self
                .0
                .iter()
                .any(|(lo, hi, x, p)| *x && p.starts_with('/') && (*lo + 8..*hi).contains(&ret));
            if !code {
                continue;
            }
            let mut before = [0u8; 7];
            if mem.read_exact(ret - 7, &mut before).is_err()
                || !crate::tracee::ends_with_call(&before)
            {
                continue;
            }
            if let Some((file, addr)) = self.file_address(ret - 1) {
                out.push((file, addr));
                if out.len() == STACK_FRAMES {
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::session::schedule::tests_support::threads_of;
    use crate::recorder::session::Pending;
    use crate::recorder::Kept;

    const READY: State = State::Ready(Pending::Nothing);

    /// One round's answers: the pick, the steps, the switch at a syscall.
    type Answer = (Option<Tid>, Option<Steps>, bool);

    /// The decisions a policy makes over a fixed run of queries, and its
    /// answers.
    fn drive(keep: Option<Vec<u64>>) -> (Vec<u64>, Vec<Answer>) {
        let mut p = PrescribedPolicy::new(
            &Prescribed {
                seed: 11,
                keep: keep.map(|k| {
                    k.into_iter()
                        .map(|decision| Kept {
                            decision,
                            next: None,
                        })
                        .collect()
                }),
                log: None,
            },
            None,
        );
        for tid in [1, 2, 3] {
            p.add(tid);
        }
        let tasks = [(1, READY), (2, READY), (3, READY)];
        let mut out = Vec::new();
        for _ in 0..100 {
            let picked = threads_of(&tasks, |t| p.pick(t));
            p.chaos.cancel_pause();
            if picked.is_none() {
                // A pause: no thread is resumed.
                continue;
            }
            let _ = p.slice();
            let steps = p.steps();
            let switch = p.switch_at_syscall(&AtSyscall {
                nr: libc::SYS_write,
                syscalls: 1,
                stop_requested: false,
                timeout: None,
            });
            out.push((picked, steps, switch));
        }
        (p.seen, out)
    }

    #[test]
    fn a_masked_stop_lets_the_thread_go_on_and_a_kept_one_may_switch() {
        let (ids, all) = drive(None);
        assert!(ids.len() > 20, "only {} decisions", ids.len());
        // The threads stop at the same places whatever is kept (their
        // slices come from their own generators): the same steps.
        let (_, none) = drive(Some(Vec::new()));
        let steps = |run: &[Answer], tid: Tid| {
            run.iter()
                .filter(|a| a.0 == Some(tid))
                .map(|a| a.1)
                .collect::<Vec<_>>()
        };
        for tid in [1, 2, 3] {
            let (a, b) = (steps(&all, tid), steps(&none, tid));
            let n = a.len().min(b.len());
            assert!(n > 0 || tid != 1);
            assert_eq!(a[..n], b[..n], "thread {tid}");
        }
        // With none kept, the thread stopped goes on; with all, others run.
        // (Each round's slice ends at a decision when it has steps or a
        // switch; the next round's pick is the answer.)
        let changes = |run: &[Answer]| {
            run.windows(2)
                .filter(|w| (w[0].1.is_some() || w[0].2) && w[1].0.is_some() && w[1].0 != w[0].0)
                .count()
        };
        assert_eq!(changes(&none), 0, "{none:?}");
        assert!(changes(&all) > 10);
    }

    #[test]
    fn keeping_every_decision_is_the_chaos_schedule() {
        let (ids, all) = drive(None);
        let (_, again) = drive(Some(ids));
        assert_eq!(again, all);
    }
}
