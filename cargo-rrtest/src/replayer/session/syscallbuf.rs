//! The syscall buffer in replay: the recorded buffered syscalls of each
//! thread, queued for the untraced gate (`replayer/gate.rs`) that answers
//! them inside the program, the handshake of the preload library, and the
//! output table the hook consults.
//!
//! Mirrors the recorder's `session/syscallbuf.rs`. It must not execute a
//! buffered syscall: every one is answered from its record, and a thread
//! that exits must have consumed exactly its recorded ones.

use super::{perr, Session, State};
use crate::replayer::{gate, inject};
use crate::replayer::{Error, ReplayError};
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, WaitEvent};
use rrtest_sys::RemoteMem;
use rrtest_syscalls as syscalls;
use rrtest_trace::Tid;

/// A buffered syscall replay will see at the untraced gate.
#[derive(Debug)]
pub(super) enum Buffered {
    /// It completed: emulate it.
    Done(syscallbuf::Record),
    /// The recorder unwound it: it returns -EINTR with `abort_commit` set.
    Aborted { nr: i64 },
}

impl Session {
    /// Loads thread `tid`'s buffered syscalls into its queue region, for
    /// the gate routine (see [`crate::replayer::gate`]).
    pub(super) fn load_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let entries = self
            .buffered
            .get(&tid)
            .into_iter()
            .flatten()
            .map(|b| match b {
                Buffered::Done(r) => gate::Entry::Done(r),
                Buffered::Aborted { nr } => gate::Entry::Aborted { nr: *nr },
            });
        let (bytes, ends, complete) = gate::serialize(entries);
        gate::load(real, &bytes, complete).map_err(perr("loading buffered syscalls", real))?;
        self.loaded.insert(tid, ends.into());
        Ok(())
    }

    /// Whether `tid` has consumed every buffered syscall queued for it (as
    /// of its last stop's [`Session::sync_loaded_queue`]). An execution
    /// point comes after all of them: the recorder wrote the thread's
    /// records before the point's event. A pass through the point's state
    /// with some left (a state the digest cannot tell from the point's,
    /// before buffered syscalls whose results lie outside it) is not the
    /// point.
    pub(super) fn buffered_drained(&self, tid: Tid) -> bool {
        self.buffered.get(&tid).is_none_or(|q| q.is_empty())
    }

    /// [`Session::sync_queue`] when `tid` has a queue loaded: after every
    /// stop of a thread that ran with one, whichever way it was resumed
    /// (the next resume loads what is left, so a stop that is not synced
    /// would feed the thread its consumed records again).
    pub(super) fn sync_loaded_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        if self.loaded.contains_key(&tid) {
            self.sync_queue(tid, real)?;
        }
        Ok(())
    }

    /// Drops from `tid`'s queue what the gate routine consumed since
    /// [`Session::load_queue`].
    pub(super) fn sync_queue(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let consumed = match gate::consumed(real) {
            Ok(c) => c,
            // The thread is gone (its exit is checked against the queue).
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(perr("reading the queue region", real)(e).into()),
        };
        let Some(ends) = self.loaded.get_mut(&tid) else {
            return Ok(());
        };
        let mut n = 0;
        while ends.front().is_some_and(|&e| e as u64 <= consumed) {
            ends.pop_front();
            n += 1;
        }
        if let Some(q) = self.buffered.get_mut(&tid) {
            for b in q.drain(..n.min(q.len())) {
                if let Buffered::Done(rec) = b {
                    echo_buffered_output(self.echo, rec);
                }
            }
        }
        Ok(())
    }

    /// The output table the recorder wrote into `tid`'s process after its
    /// last event: the same here, so that the hook takes the recording's
    /// path for every write.
    pub(super) fn output_table(&mut self, tid: Tid, records: &[u8]) -> Result<(), ReplayError> {
        let table = syscallbuf::parse_output_table(records).map_err(|reason| Error::Malformed {
            index: self.index,
            reason: format!("output table of thread {tid}: {reason}"),
        })?;
        let real = self.task(tid)?.real;
        syscallbuf::write_output_fds(real, &table)
            .map_err(perr("writing the output table", real))?;
        Ok(())
    }

    /// A thread that exits must have made every buffered syscall recorded.
    pub(super) fn no_buffered_left(&mut self, tid: Tid) -> Result<(), ReplayError> {
        self.loaded.remove(&tid);
        match self.buffered.remove(&tid) {
            Some(q) if !q.is_empty() => Err(self.diverged(
                tid,
                "buffered syscalls",
                format!("{} more buffered syscalls", q.len()),
                "the thread exited",
            )),
            _ => Ok(()),
        }
    }

    /// The preload library's handshake: the same mapping and answer as
    /// while recording.
    pub(super) fn buffer_init(&mut self, tid: Tid, hook_entry: u64) -> Result<(), ReplayError> {
        let (real, ev) = self.resume_to_stop(tid, None)?;
        let regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let at_init = matches!(
            ev,
            WaitEvent::Event {
                event: libc::PTRACE_EVENT_SECCOMP,
                ..
            }
        ) && regs.orig_rax == rrtest_abi::magic::INIT;
        if !at_init {
            let seen = self.describe_stop(real, &ev);
            return Err(self.diverged(tid, "syscall-buffer handshake", "the handshake", seen));
        }
        let hook =
            syscallbuf::init(real, &regs).map_err(perr("the syscall-buffer handshake", real))?;
        if hook.unwrap_or(0) != hook_entry {
            return Err(self.diverged(
                tid,
                "syscall-buffer handshake",
                format!("hook entry {hook_entry:#x}"),
                format!("{:#x}", hook.unwrap_or(0)),
            ));
        }
        if let Some(h) = hook {
            let real_pid = self.task(tid)?.real_pid;
            let mapped = crate::tracee::inject_via_fixed_page(
                real,
                libc::SYS_mmap,
                crate::tracee::anon_mmap_args(
                    gate::QUEUE_ADDR,
                    gate::QUEUE_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                ),
            )
            .map_err(perr("mapping the replay queue", real))?;
            if mapped as u64 != gate::QUEUE_ADDR {
                return Err(Error::Ptrace {
                    op: "mapping the replay queue",
                    tid: real,
                    source: std::io::Error::other(format!("mmap returned {mapped:#x}")),
                }
                .into());
            }
            let images = self.vdso_images.remove(&real_pid).unwrap_or_default();
            self.spaces.insert(real_pid, Space::new(h, &images));
        }
        self.set_state(tid, State::Idle { deliver: 0 });
        Ok(())
    }

    /// Thread `tid` stopped at the untraced gate: the next buffered syscall
    /// the recording has for it. Emulates it (its output goes where the
    /// hook pointed the output argument: into its record).
    pub(super) fn replay_buffered(&mut self, tid: Tid, real: i32) -> Result<(), ReplayError> {
        let mut regs = ptrace::getregs(real).map_err(perr("PTRACE_GETREGS", real))?;
        let nr = regs.orig_rax as i64;
        let args = ptrace::syscall_args(&regs);
        let what = || format!("buffered {}", syscalls::name(nr));
        let ret = match self.buffered.get_mut(&tid).and_then(|q| q.pop_front()) {
            None => {
                return Err(self.diverged(
                    tid,
                    what(),
                    "no further buffered syscall before the thread's next event",
                    syscalls::describe_entry(nr, &args),
                ))
            }
            Some(Buffered::Done(rec)) => {
                if rec.nr != nr {
                    return Err(self.diverged(
                        tid,
                        what(),
                        format!("buffered {}", syscalls::name(rec.nr)),
                        syscalls::describe_entry(nr, &args),
                    ));
                }
                if let Some(out) = rec.output {
                    // Program output: the program must write the same
                    // bytes, and ask for as many (the record has the ones
                    // written). Replay writes them; the hook copies them
                    // into its record itself.
                    let mem = RemoteMem::new(real);
                    let asked = syscallbuf::output_asked(&mem, nr, &args).unwrap_or(u64::MAX);
                    let seen = crate::tracee::written_bytes(&mem, nr, &args, rec.data.len())
                        .unwrap_or_default();
                    if asked != out.asked || seen[..] != rec.data[..] {
                        return Err(self.diverged(
                            tid,
                            format!("output of {} (buffered)", syscalls::name(nr)),
                            format!(
                                "{:?} ({} bytes asked)",
                                String::from_utf8_lossy(&rec.data),
                                out.asked
                            ),
                            format!("{:?} ({asked} bytes asked)", String::from_utf8_lossy(&seen)),
                        ));
                    }
                    let result = rec.result;
                    echo_buffered_output(self.echo, rec);
                    result
                } else {
                    if !rec.data.is_empty() {
                        let addr = syscallbuf::record_data_address(real)
                            .map_err(perr("reading the syscall buffer", real))?;
                        RemoteMem::new(real)
                            .write(addr, &rec.data)
                            .map_err(perr("writing a buffered syscall's output", real))?;
                    }
                    rec.result
                }
            }
            Some(Buffered::Aborted { nr: recorded }) => {
                if recorded != nr {
                    return Err(self.diverged(
                        tid,
                        what(),
                        format!("unwound {}", syscalls::name(recorded)),
                        syscalls::describe_entry(nr, &args),
                    ));
                }
                syscallbuf::set_abort_commit(real).map_err(perr("setting abort_commit", real))?;
                -(libc::EINTR as i64)
            }
        };
        regs.orig_rax = u64::MAX;
        regs.rax = ret as u64;
        ptrace::setregs(real, &regs).map_err(perr("PTRACE_SETREGS", real))?;
        if self.buffered.get(&tid).is_none_or(|q| q.is_empty()) {
            // The recording has nothing more: the next hook call bailed.
            syscallbuf::set_force_bail(real, true).map_err(perr("setting force_bail", real))?;
        }
        Ok(())
    }
}

/// Writes a replayed buffered write's bytes to our own stdout or stderr,
/// when it wrote program output and replay echoes.
pub(super) fn echo_buffered_output(echo: bool, rec: syscallbuf::Record) {
    if let (true, Some(out)) = (echo, rec.output) {
        inject::echo_output(&rrtest_trace::SyscallExtra::Output {
            fd: out.stream,
            data: rec.data.to_vec(),
        });
    }
}
