//! Watching a running attempt ([`watch`]): reading its stdout and stderr
//! with poll(2) so full pipes never block it, noticing its end
//! (`waitid(WNOWAIT)`, a pidfd, or the recorder server's reply), and
//! killing it at the deadline or on cancellation (SIGTERM first to a
//! recorder at a timeout, then SIGKILL to the whole process group).
//!
//! It must not reap the process nor judge the outcome: the caller does,
//! with [`Ended`] and [`Finished`] (defined here, for both kinds of attempt).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{AttemptResult, Captured, MAX_TICK, TERM_GRACE};
use crate::harness::server::RecorderServer;
use crate::recorder::server::Reply;

/// How long to keep reading a test's pipes after it exited, if a process it
/// left behind holds them open.
const PIPE_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kill {
    Timeout,
    Cancel,
}

/// What the runner watches while an attempt runs.
pub(super) enum Running<'a> {
    /// A process of its own (the test, or `record` wrapping it) leading its
    /// process group; `pidfd` is readable once it exits.
    Process { pid: Pid, pidfd: Option<OwnedFd> },
    /// A request to a recorder server; its socket is readable once the
    /// reply comes or the server dies.
    Served {
        server: &'a mut RecorderServer,
        reply: Option<std::io::Result<Reply>>,
    },
}

impl Running<'_> {
    /// Whether it has ended (a process is left unreaped).
    fn finished(&mut self) -> bool {
        match self {
            Running::Process { pid, .. } => has_exited(*pid),
            Running::Served { server, reply } => {
                if reply.is_none() && readable(server.socket()) {
                    match server.reply() {
                        Ok(None) => {}
                        Ok(Some(r)) => *reply = Some(Ok(r)),
                        Err(e) => *reply = Some(Err(e)),
                    }
                }
                reply.is_some()
            }
        }
    }

    /// A descriptor that becomes readable when it ends, if there is one.
    fn done_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Running::Process { pidfd, .. } => pidfd.as_ref().map(|f| f.as_fd()),
            Running::Served { server, .. } => Some(server.socket()),
        }
    }

    /// SIGTERM: a recorder closes the trace and ends the recording.
    fn terminate(&self) {
        match self {
            Running::Process { pid, .. } => {
                let _ = nix::sys::signal::kill(*pid, Signal::SIGTERM);
            }
            Running::Served { server, .. } => server.terminate(),
        }
    }

    /// SIGKILL to the whole process group (a server's too: its tracees die
    /// with it, and the worker starts another).
    fn kill(&self) {
        let pid = match self {
            Running::Process { pid, .. } => *pid,
            Running::Served { server, .. } => server.pid(),
        };
        let _ = killpg(pid, Signal::SIGKILL);
    }

    /// After it ended: processes the test left behind in its group do not
    /// outlive it. (A server's recording ends only when every process it
    /// traced has.)
    fn reap_group(&self) {
        if let Running::Process { pid, .. } = self {
            let _ = killpg(*pid, Signal::SIGKILL);
        }
    }
}

/// Whether `fd` is readable now.
fn readable(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Reads the attempt's output until it ends (and its pipes close, or
/// [`PIPE_GRACE`] passes), killing it at the deadline or on cancellation
/// (`graceful`: SIGTERM first at the deadline, then SIGKILL to the group
/// after [`TERM_GRACE`]). Leaves a process unreaped, its group empty.
#[allow(clippy::too_many_arguments)]
pub(super) fn watch(
    running: &mut Running<'_>,
    mut out: Option<File>,
    mut err: Option<File>,
    deadline: Option<Instant>,
    cancel: &AtomicBool,
    graceful: bool,
    result: &mut AttemptResult,
) -> Option<Kill> {
    let mut killed: Option<Kill> = None;
    let mut term_until: Option<Instant> = None;
    let mut exited_at: Option<Instant> = None;
    let mut idle_tick = Duration::from_millis(1);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if exited_at.is_none() && running.finished() {
            exited_at = Some(now);
        }
        if let Some(at) = exited_at {
            if (out.is_none() && err.is_none()) || now.duration_since(at) >= PIPE_GRACE {
                break;
            }
        }
        if exited_at.is_none() {
            if killed.is_none() {
                let kill = if cancel.load(Ordering::Relaxed) {
                    Some(Kill::Cancel)
                } else if deadline.is_some_and(|d| now >= d) {
                    Some(Kill::Timeout)
                } else {
                    None
                };
                match kill {
                    Some(Kill::Timeout) if graceful => {
                        running.terminate();
                        term_until = Some(now + TERM_GRACE);
                    }
                    Some(_) => running.kill(),
                    None => {}
                }
                killed = kill;
            } else if let Some(until) = term_until {
                if now >= until || cancel.load(Ordering::Relaxed) {
                    running.kill();
                    term_until = None;
                }
            }
        }
        let mut wait = MAX_TICK;
        if let (Some(d), None) = (deadline, killed) {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(until) = term_until {
            wait = wait.min(until.saturating_duration_since(now));
        }
        if let Some(at) = exited_at {
            wait = wait.min((at + PIPE_GRACE).saturating_duration_since(now));
        }
        let done = if exited_at.is_none() {
            running.done_fd()
        } else {
            None
        };
        if out.is_none() && err.is_none() && done.is_none() {
            // Both pipes closed, the end not yet seen and nothing to poll
            // for it: back off gently.
            std::thread::sleep(wait.min(idle_tick));
            idle_tick = (idle_tick * 2).min(MAX_TICK);
            continue;
        }
        let (out_ready, err_ready) = {
            let mut fds = Vec::with_capacity(3);
            if let Some(o) = &out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            if let Some(e) = &err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            if let Some(d) = done {
                fds.push(PollFd::new(d, PollFlags::POLLIN));
            }
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => (false, false),
                Ok(_) => {
                    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
                    let first = fds.first().map(ready).unwrap_or(false);
                    let second = fds.get(1).map(ready).unwrap_or(false);
                    match (&out, &err) {
                        (Some(_), Some(_)) => (first, second),
                        (Some(_), None) => (first, false),
                        (None, Some(_)) => (false, first),
                        (None, None) => (false, false),
                    }
                }
                Err(_) => (false, false),
            }
        };
        if out_ready {
            drain(&mut out, &mut buf, &mut result.stdout);
        }
        if err_ready {
            drain(&mut err, &mut buf, &mut result.stderr);
        }
    }
    running.reap_group();
    killed
}

/// Reads what is available from a ready pipe; closes it at end of file.
fn drain<R: Read>(pipe: &mut Option<R>, buf: &mut [u8], into: &mut Captured) {
    if let Some(p) = pipe {
        match p.read(buf) {
            Ok(0) => *pipe = None,
            Ok(n) => into.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => *pipe = None,
        }
    }
}

/// Whether the child has exited, without reaping it.
fn has_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

/// How an attempt's process (or recorder server request) ended.
pub(super) enum Ended {
    Code(i32),
    Signal(i32),
    /// The recorded program exited with status 0 and, as asked, the
    /// recorder server wrote no trace.
    Discarded,
}

/// What [`run_process`] and [`run_served`] return: how it ended (or why we
/// cannot tell) and whether we killed it.
pub(super) type Finished = (std::io::Result<Ended>, Option<Kill>);
