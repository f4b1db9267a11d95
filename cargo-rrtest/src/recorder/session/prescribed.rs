//! A prescribed schedule ([`PrescribedPolicy`]): the chaos decisions of a
//! seed, only some of them carried out, for `cargo rrtest diff --minimize`
//! (`harness/minimize.rs`), which re-runs a test live under fewer and
//! fewer of a failing chaos recording's decisions until it has the fewest
//! that still make it fail.
//!
//! The chaos policy of the seed runs underneath and makes every draw it
//! would make. Its answers that make a switch the default policy would not
//! make are the decisions, numbered in the order they come:
//! - `preempt`: a slice that ends after a count of instructions or
//!   arrivals ([`SchedulePolicy::steps`]);
//! - `switch`: a switch at a traced syscall the default would run through;
//! - `first`: a new thread run before its creator goes on;
//! - `pause`: nothing scheduled for a while.
//!
//! A decision whose number is kept is carried out; for any other the
//! default policy's answer stands (no preemption, no switch, the new
//! thread waits its turn, no pause). Which thread runs at a pick stays the
//! chaos policy's. With every decision kept the schedule is the seed's.
//!
//! With a log ([`Log`]), it writes JSON lines: each thread as it joins
//! (`{"thread":N,"tid":T}`, N from 1 in join order), each decision
//! (`{"decision":I,"kind":K,"tid":T,"kept":B}`), and, from the session,
//! each switch between threads with where the thread switched out was
//! (`{"switch":T,"to":U,"state":S,"ip":..,"file":..,"addr":..,"syscall":..}`:
//! `file` and `addr` name the mapped file and the address in it that
//! `addr2line` takes).
//!
//! Must not: see or drive ptrace (the session reads the switched-out
//! thread's registers and maps for the log).

use std::collections::BTreeSet;
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

/// The policy (see the module comment).
pub(super) struct PrescribedPolicy {
    chaos: ChaosPolicy,
    /// The decisions carried out (None: all).
    keep: Option<BTreeSet<u64>>,
    /// The next decision's number.
    next: u64,
    /// Threads announced, in join order.
    joined: Vec<Tid>,
    log: Option<Log>,
}

impl PrescribedPolicy {
    pub(super) fn new(p: &Prescribed, log: Option<Log>) -> Self {
        PrescribedPolicy {
            chaos: ChaosPolicy::new(p.seed),
            keep: p.keep.as_ref().map(|k| k.iter().copied().collect()),
            next: 0,
            joined: Vec::new(),
            log,
        }
    }

    /// Numbers a decision of `kind` about thread `tid` and says whether it
    /// is carried out.
    fn decide(&mut self, kind: &str, tid: Option<Tid>) -> bool {
        let n = self.next;
        self.next += 1;
        let kept = self.keep.as_ref().is_none_or(|k| k.contains(&n));
        if let Some(log) = &self.log {
            log.line(json!({"decision": n, "kind": kind, "tid": tid, "kept": kept}));
        }
        kept
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
        self.chaos.add(tid);
        if self.chaos.runs_first() == Some(tid) && !self.decide("first", Some(tid)) {
            self.chaos.cancel_first();
        }
    }

    fn pick(&mut self, threads: &Threads<'_>) -> Option<Tid> {
        loop {
            let was_paused = self.chaos.paused();
            let picked = self.chaos.pick(threads);
            if picked.is_none() && !was_paused && self.chaos.paused() {
                // A new pause: kept, or the pick is made again (the chaos
                // policy draws on, as it would after the pause).
                if self.decide("pause", None) {
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
            let tid = self.chaos.last();
            return self.decide("switch", tid);
        }
        chaos
    }

    fn steps(&mut self) -> Option<Steps> {
        let steps = self.chaos.steps()?;
        let tid = self.chaos.last();
        self.decide("preempt", tid).then_some(steps)
    }

    fn settles(&self) -> bool {
        self.chaos.settles()
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
    /// stopped; the file mapped there).
    pub(super) fn note_switch(&mut self, from: Tid, to: Tid) {
        let Some(log) = &self.switch_log else {
            return;
        };
        let (state, syscall) = match self.tasks.get(&from).map(|t| t.state) {
            None => ("exited", None),
            Some(State::Ready(super::Pending::Exit(e))) => ("syscall", Some(e.nr)),
            Some(State::Ready(_)) => ("ready", None),
            Some(State::InSyscall { entered, .. }) => ("blocked", Some(entered.nr)),
            Some(_) => ("other", None),
        };
        let ip = match state {
            "ready" | "syscall" => ptrace::getregs(from).ok().map(|r| r.rip),
            _ => None,
        };
        let place = ip.and_then(|ip| file_address(from, ip));
        log.line(json!({
            "switch": from,
            "to": to,
            "state": state,
            "syscall": syscall,
            "ip": ip,
            "file": place.as_ref().map(|p| p.0.clone()),
            "addr": place.map(|p| p.1),
        }));
    }
}

/// The file mapped at `ip` in thread `tid`'s address space and the address
/// in that file as its symbols name it (`addr2line`'s): `ip` itself in a
/// fixed-address executable, the offset from the file's lowest mapping in
/// a position-independent one (whose first loadable segment is at 0).
fn file_address(tid: Tid, ip: u64) -> Option<(String, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    let mut rows = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let path = f.nth(4).unwrap_or("");
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        rows.push((lo, hi, path));
    }
    let &(_, _, path) = rows
        .iter()
        .find(|(lo, hi, p)| (*lo..*hi).contains(&ip) && p.starts_with('/'))?;
    let base = rows
        .iter()
        .filter(|(_, _, p)| *p == path)
        .map(|r| r.0)
        .min()?;
    let mut head = [0u8; 18];
    std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut head).ok()?;
    const ET_DYN: u16 = 3;
    let addr = if u16::from_le_bytes([head[16], head[17]]) == ET_DYN {
        ip - base
    } else {
        ip
    };
    Some((path.to_string(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::session::schedule::tests_support::threads_of;
    use crate::recorder::session::Pending;

    const READY: State = State::Ready(Pending::Nothing);

    /// One round's answers: the pick, the steps, the switch at a syscall.
    type Answer = (Option<Tid>, Option<Steps>, bool);

    /// The decisions a policy makes over a fixed run of queries, and its
    /// answers.
    fn drive(keep: Option<Vec<u64>>) -> (u64, Vec<Answer>) {
        let mut p = PrescribedPolicy::new(
            &Prescribed {
                seed: 11,
                keep,
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
            let _ = p.slice();
            let steps = p.steps();
            let switch = p.switch_at_syscall(&AtSyscall {
                nr: libc::SYS_write,
                syscalls: 1,
                stop_requested: false,
            });
            out.push((picked, steps, switch));
        }
        (p.next, out)
    }

    #[test]
    fn all_kept_is_the_chaos_schedule_and_none_kept_makes_no_extra_switch() {
        let (n, all) = drive(None);
        assert!(n > 20, "only {n} decisions");
        assert!(all.iter().any(|a| a.1.is_some()) && all.iter().any(|a| a.2));
        let (_, none) = drive(Some(Vec::new()));
        // Neither a preemption nor a switch the default would not make.
        assert!(none.iter().all(|a| a.1.is_none() && !a.2), "{none:?}");
        // Every pick still picks a ready thread (no pause is kept).
        assert!(none.iter().all(|a| a.0.is_some()));
    }

    #[test]
    fn a_kept_decision_is_carried_out_by_its_number() {
        let (n, all) = drive(None);
        let (_, again) = drive(Some((0..n).collect()));
        assert_eq!(again, all, "keeping every number is keeping all");
        // Keeping one number: exactly one preemption or extra switch.
        let extra = |run: &[Answer]| {
            run.iter()
                .map(|a| usize::from(a.1.is_some()) + usize::from(a.2))
                .sum::<usize>()
        };
        let ones: Vec<usize> = (0..n).map(|k| extra(&drive(Some(vec![k])).1)).collect();
        assert!(ones.iter().all(|&e| e <= 1), "{ones:?}");
        assert!(ones.iter().filter(|&&e| e == 1).count() > 10, "{ones:?}");
    }
}
