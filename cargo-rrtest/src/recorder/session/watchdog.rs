//! The recorder's watchdog: a recording in which no tracee stop came for
//! [`STALL_LIMIT`] while some thread waits on the recorder (stopped and
//! never scheduled, announced and never seen, killed and never reported
//! gone, or asked to stop by a tick and never stopping) is a recorder bug:
//! it ends with [`Error::Stalled`], which describes every thread's state,
//! instead of hanging. A stop counts wherever the recorder waited for it
//! (`ptrace::last_event`), in its main loop or in one of its own (single
//! steps): a recorder busy with a thread is not stalled. It is checked at
//! the main loop's ticks, so a recorder blocked in a wait of its own (for
//! one thread's stop) is not seen by it.
//!
//! A program that waits on its own (threads blocked in syscalls, or one
//! computing without syscalls) is not stalled, however long it takes. This
//! file only looks at the session; it must not change it.

use std::time::Duration;

use super::{Entered, Pending, Session, State, Task};
use crate::recorder::Error;
use rrtest_sys::ptrace;
use rrtest_trace::Tid;

/// How long no tracee stop may come while a thread waits on the recorder.
pub(super) const STALL_LIMIT: Duration = Duration::from_secs(30);

/// [`STALL_LIMIT`], unless `RRTEST_RECORD_STALL_MS` sets another (in
/// milliseconds; for tests, which provoke a stall in seconds rather than
/// half a minute; not meant for users).
fn stall_limit() -> Duration {
    static LIMIT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("RRTEST_RECORD_STALL_MS")
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(STALL_LIMIT, Duration::from_millis)
    })
}

impl Session {
    /// Ends the recording with [`Error::Stalled`] when it has stalled.
    pub(super) fn check_stall(&self) -> Result<(), Error> {
        // The last stop of any tracee, wherever the recorder waited for it:
        // not only in its main loop (`last_stop`) but in the loops of its
        // own too (chaos's single steps, a settle, an injected syscall).
        // Counting the main loop's alone took a recorder busy stepping a
        // thread for seconds (a slice cut where no point can be, stepped
        // on to where one can) for a stalled one.
        let last = ptrace::last_event().map_or(self.last_stop, |at| at.max(self.last_stop));
        let quiet = last.elapsed();
        if quiet < stall_limit() {
            return Ok(());
        }
        match stuck_state(&self.tasks, self.current) {
            Some(state) => Err(Error::Stalled {
                secs: quiet.as_secs(),
                state,
            }),
            None => Ok(()),
        }
    }
}

/// Whether `task`, with no stop for a long time, waits on the recorder
/// rather than on the kernel or its own code.
fn waits_on_us(task: &Task) -> bool {
    match task.state {
        // Waits on the kernel, or for a SIGCONT.
        State::InSyscall { .. } | State::JobStopped => false,
        State::Running => task.interrupt_requested,
        // Held by its tracer: it waits on the program.
        // Held by its tracer, or waiting for its tracees: it waits on the
        // program.
        State::Ready(_) => {
            !task.traced.as_ref().is_some_and(|t| t.stopped()) && task.parked.is_none()
        }
        State::Unborn | State::Dying => true,
    }
}

fn describe(task: &Task) -> String {
    if let Some(t) = task.traced.as_ref().filter(|t| t.stopped()) {
        return t.describe();
    }
    if task.awaits_clone_event {
        return "created, its first stop seen, its parent's clone event never seen".into();
    }
    if let Some((nr, _)) = task.parked {
        return format!(
            "in {}, waiting for its tracees (ptrace emulated)",
            rrtest_syscalls::name(nr)
        );
    }
    match task.state {
        State::Ready(Pending::Nothing) => "stopped by the recorder, ready to run".into(),
        State::Ready(Pending::Exit(Entered { nr, .. }) | Pending::ExitWritten(nr, _)) => format!(
            "stopped at the exit of {}, ready to run",
            rrtest_syscalls::name(nr)
        ),
        State::InSyscall { entered, split } => format!(
            "in {}{}",
            rrtest_syscalls::name(entered.nr),
            if split { " (others may run)" } else { "" }
        ),
        State::Running if task.interrupt_requested => {
            "running, asked to stop (PTRACE_INTERRUPT) and not stopping".into()
        }
        State::Running => "running".into(),
        State::Unborn => "created, its first stop never seen".into(),
        State::Dying => "killed, its exit never reported".into(),
        State::JobStopped => "held in a group stop until SIGCONT".into(),
    }
}

/// The state of a stalled recording, one clause per thread, or None when
/// no thread waits on the recorder.
fn stuck_state(
    tasks: &std::collections::BTreeMap<Tid, Task>,
    current: Option<Tid>,
) -> Option<String> {
    // The current thread in a syscall (a write to a terminal held by
    // Ctrl-S) holds the others back: they wait on the kernel too.
    let current_in_kernel = current
        .and_then(|c| tasks.get(&c))
        .is_some_and(|t| matches!(t.state, State::InSyscall { .. }));
    if current_in_kernel || !tasks.values().any(waits_on_us) {
        return None;
    }
    let threads: Vec<String> = tasks
        .iter()
        .map(|(tid, t)| {
            let mark = if current == Some(*tid) {
                " (current)"
            } else {
                ""
            };
            format!("thread {tid}{mark} of process {}: {}", t.pid, describe(t))
        })
        .collect();
    let current = match current {
        Some(_) => "",
        None => "; no thread is current",
    };
    Some(format!("{}{current}", threads.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tasks(states: &[(Tid, State, bool)]) -> BTreeMap<Tid, Task> {
        states
            .iter()
            .map(|&(tid, state, interrupt)| {
                let mut t = Task::new(100, state);
                t.interrupt_requested = interrupt;
                (tid, t)
            })
            .collect()
    }

    fn in_read() -> State {
        State::InSyscall {
            entered: super::super::Entered {
                nr: libc::SYS_read,
                args: [0; 6],
                forced_ret: None,
                output: None,
                ip: 0,
                switch_after: false,
            },
            split: true,
        }
    }

    #[test]
    fn a_program_waiting_on_its_own_is_not_stalled() {
        // Blocked in the kernel, or computing (no tick asked it to stop).
        let t = tasks(&[(100, in_read(), false), (101, State::Running, false)]);
        assert_eq!(stuck_state(&t, Some(101)), None);
        let t = tasks(&[(100, in_read(), false)]);
        assert_eq!(stuck_state(&t, None), None);
        // Others wait for the current thread's syscall.
        let t = tasks(&[
            (100, in_read(), false),
            (101, State::Ready(Pending::Nothing), false),
        ]);
        assert_eq!(stuck_state(&t, Some(100)), None);
    }

    #[test]
    fn a_thread_left_stopped_is_a_stall_described_thread_by_thread() {
        let t = tasks(&[
            (100, in_read(), false),
            (101, State::Ready(Pending::Nothing), false),
        ]);
        let s = stuck_state(&t, None).expect("stalled");
        assert!(
            s.contains("thread 100 of process 100: in read (others may run)"),
            "{s}"
        );
        assert!(
            s.contains("thread 101 of process 100: stopped by the recorder, ready to run"),
            "{s}"
        );
        assert!(s.ends_with("no thread is current"), "{s}");
    }

    #[test]
    fn an_unanswered_interrupt_an_unseen_thread_and_a_lost_exit_are_stalls() {
        for (state, interrupt, says) in [
            (
                State::Running,
                true,
                "asked to stop (PTRACE_INTERRUPT) and not stopping",
            ),
            (State::Unborn, false, "its first stop never seen"),
            (State::Dying, false, "its exit never reported"),
        ] {
            let t = tasks(&[(7, state, interrupt)]);
            let s = stuck_state(&t, Some(7)).expect("stalled");
            assert!(s.contains(says) && s.contains("thread 7 (current)"), "{s}");
        }
    }
}
