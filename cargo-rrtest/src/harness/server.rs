//! The harness's side of a recorder server (`recorder::server`): each
//! worker starts one `cargo-rrtest record-server` on first use and sends it
//! its recorded attempts, so an attempt costs no recorder start-up.
//!
//! The server runs in its own process group (like a `record` process, out
//! of reach of the terminal's Ctrl-C). The runner treats it like an
//! attempt's process: it polls the socket with the attempt's pipes, sends
//! SIGTERM at a timeout (the recording ends cleanly and the server goes
//! on), and kills the server's group when the grace period ends or the run
//! is cancelled; a server that died is replaced at the next attempt. A
//! server that dies on its own (not killed by us) is not started again by
//! that worker: its attempts fall back to one `record` process each, whose
//! errors the user can read. A server that dies during an attempt, other
//! than by our SIGKILL, makes the attempt a recorder error that says how it
//! ended, even past the attempt's deadline: the test did not time out, its
//! recorder failed.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::recorder::server::{Reply, Request, MAX_REQUEST};
use crate::recorder::RecordOptions;
use rrtest_sys::fdpass;

/// One running server.
#[derive(Debug)]
pub struct RecorderServer {
    child: Child,
    /// Our end of the socket (taken only when dropped).
    sock: Option<OwnedFd>,
    /// A request was sent and its reply has not been read.
    busy: bool,
}

impl RecorderServer {
    /// Starts `recorder record-server`.
    pub fn start(recorder: &Path) -> io::Result<RecorderServer> {
        let (ours, theirs) = fdpass::seqpacket_pair()?;
        let mut cmd = Command::new(recorder);
        cmd.arg("record-server")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            // Its own log lines (warnings) reach the user as ours do; the
            // recorded tests' output goes to their attempts' pipes.
            .stderr(Stdio::inherit())
            .process_group(0);
        let child = rrtest_sys::spawn::with_empty_signal_mask(&mut cmd).spawn()?;
        Ok(RecorderServer {
            child,
            sock: Some(ours),
            busy: false,
        })
    }

    /// The server's process id (also its process group's).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The socket: readable when a reply came or the server died.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_ref().expect("open until dropped").as_fd()
    }

    /// Sends one recording, the program's stdout and stderr attached.
    /// `InvalidInput` when the request is too large to send (record it in a
    /// process of its own).
    pub fn submit(
        &mut self,
        opts: &RecordOptions,
        stdout: BorrowedFd<'_>,
        stderr: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let bytes = Request { opts: opts.clone() }.encode();
        if bytes.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the request is too large for the recorder server",
            ));
        }
        fdpass::send(self.socket(), &bytes, &[stdout, stderr])?;
        self.busy = true;
        Ok(())
    }

    /// The reply to the request in flight, if it came; `Ok(None)` while
    /// recording; an error when the server is gone. Call it when
    /// [`Self::socket`] is readable, or it blocks.
    pub fn reply(&mut self) -> io::Result<Option<Reply>> {
        let mut buf = [0u8; 16];
        match fdpass::recv(self.socket(), &mut buf) {
            Ok(Some((len, _))) => {
                self.busy = false;
                Reply::decode(&buf[..len])
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Ok(None) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the recorder server exited",
            )),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How the server ended, once its socket said it is gone: waits up to
    /// a second for it to exit (its socket closes as it exits). None if it
    /// is still running.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                _ => return None,
            }
        }
    }

    /// Asks the recording in progress to end (the server stays).
    pub fn terminate(&self) {
        let _ = kill(self.pid(), Signal::SIGTERM);
    }

    /// Kills the server's process group (its tracees die with it) and reaps
    /// the server.
    pub fn kill(self) {
        let _ = killpg(self.pid(), Signal::SIGKILL);
        // Drop reaps it.
    }
}

impl Drop for RecorderServer {
    fn drop(&mut self) {
        if self.busy {
            let _ = killpg(self.pid(), Signal::SIGKILL);
        }
        // Closing our end makes an idle server exit.
        drop(self.sock.take());
        let _ = self.child.wait();
    }
}

/// A worker's server, started on first use.
#[derive(Debug, Default)]
pub struct ServerSlot {
    server: Option<RecorderServer>,
    /// A server died on its own, or could not start: record in processes.
    given_up: bool,
}

impl ServerSlot {
    /// The running server, started if need be; None when this worker has
    /// given up on servers.
    pub fn get(&mut self, recorder: &Path) -> Option<&mut RecorderServer> {
        if self.given_up {
            return None;
        }
        if self.server.is_none() {
            match RecorderServer::start(recorder) {
                Ok(s) => {
                    tracing::debug!(pid = s.pid().as_raw(), "started a recorder server");
                    self.server = Some(s);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a recorder server; recording in one process per test");
                    self.given_up = true;
                    return None;
                }
            }
        }
        self.server.as_mut()
    }

    /// The server, if one is running (or has died and is not yet discarded).
    pub fn current(&mut self) -> Option<&mut RecorderServer> {
        self.server.as_mut()
    }

    /// Drops the server after it died or was killed; `expected`: we killed
    /// it (a timeout or cancellation), so a new one may start.
    pub fn discard(&mut self, expected: bool) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
        if !expected {
            self.given_up = true;
        }
    }
}

/// The environment a process would get from `std::process::Command` with
/// `remove` removed and `set` set: `NAME=value` entries.
pub fn resulting_env(remove: &[OsString], set: &[(OsString, OsString)]) -> Vec<OsString> {
    let mut out: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !remove.contains(k) && !set.iter().any(|(s, _)| s == k))
        .collect();
    for (k, v) in set {
        out.retain(|(o, _)| o != k);
        out.push((k.clone(), v.clone()));
    }
    out.into_iter()
        .filter(|(k, _)| !k.as_bytes().contains(&b'='))
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resulting_env_removes_and_overrides() {
        let path = std::env::var_os("PATH").expect("PATH is set in tests");
        let env = resulting_env(
            &["PATH".into()],
            &[
                ("RRTEST_X".into(), "1".into()),
                ("RRTEST_X".into(), "2".into()),
            ],
        );
        let mut path_kv = OsString::from("PATH=");
        path_kv.push(&path);
        assert!(!env.contains(&path_kv));
        assert_eq!(
            env.iter()
                .filter(|kv| kv.as_bytes().starts_with(b"RRTEST_X="))
                .count(),
            1
        );
        assert!(env.contains(&OsString::from("RRTEST_X=2")));
    }
}
