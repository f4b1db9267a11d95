//! A recorder server: one process that records many programs, one at a
//! time, for the test harness (`cargo-rrtest record-server`, hidden).
//!
//! Starting `cargo-rrtest record` for every test costs a process start
//! (the exec, the loader, our own start-up) plus, once per process, the
//! CPUID table, iced-x86's tables, the preload's check and the file-id
//! cache lookups: a large share of a tiny test's recording. A harness
//! worker starts one server and sends it each attempt instead.
//!
//! The protocol, over a `SOCK_SEQPACKET` socket that is the server's fd 0:
//!
//! ```text
//! harness -> server   Request (REQUEST_MAGIC, fields below), with two
//!                     descriptors attached: the attempt's stdout and stderr
//! server  -> harness  Reply (REPLY_MAGIC, i32 exit code as `record` would
//!                     exit: the program's status, or 105 when recording
//!                     failed; u8 flags, bit 0: the trace was discarded, as
//!                     asked, because the program passed)
//! ```
//!
//! For each request the server points its own fds 1 and 2 at the attempt's
//! descriptors (so the program inherits them, its output is known as
//! output, and the recorder's error line lands in the attempt's stderr,
//! where the harness reads it; its log lines, `tracing`'s, go to the
//! stderr the server was started with, the harness's own),
//! records, points them back at /dev/null (the attempt's pipes then reach
//! end of file), and replies. A SIGTERM while recording ends that recording
//! cleanly, as it does for `record`, and the server goes on. The server
//! exits when the harness closes its end. It is single-threaded, and every
//! tracee of a recording is gone when the recording ends.
//!
//! Request fields, all integers little-endian: `u8` flags (bit 0: record with
//! the syscall buffer; bit 1: write no trace if the program exits with
//! status 0, see `RecordOptions::discard_if_passed`; bit 2: record under
//! the chaos scheduler), `u32` CPU + 1 (0: none), `u64` the chaos seed
//! (0 without bit 2), then byte strings (`u32`
//! length, bytes): trace directory, program, working directory; then `u32`
//! argc and argc strings; then `u32` envc and envc `NAME=value` strings;
//! then the same way the names removed from the environment as credentials
//! (for the header), and the paths to hide (`RecordOptions::hide_paths`).

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::RecordOptions;
use crate::errors::exit_codes;
use rrtest_sys::fdpass;

/// The first bytes of a request.
pub const REQUEST_MAGIC: &[u8; 4] = b"RRQ3";
/// The first bytes of a reply.
pub const REPLY_MAGIC: &[u8; 4] = b"RRA1";
/// The largest request (the socket's send buffer is about 200 KiB): a
/// larger one is recorded by a `record` process instead.
pub const MAX_REQUEST: usize = 128 * 1024;

/// One recording to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to record and where (`trace_dir`, `program`, `cwd` absolute).
    pub opts: RecordOptions,
}

/// A malformed request or reply.
#[derive(Debug, thiserror::Error)]
#[error("malformed recorder-server message: {0}")]
pub struct Malformed(&'static str);

impl Request {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let o = &self.opts;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(REQUEST_MAGIC);
        out.push(
            u8::from(o.syscallbuf)
                | u8::from(o.discard_if_passed) << 1
                | u8::from(o.chaos.is_some()) << 2,
        );
        let cpu = o.cpu.and_then(|c| u32::try_from(c + 1).ok()).unwrap_or(0);
        out.extend_from_slice(&cpu.to_le_bytes());
        out.extend_from_slice(&o.chaos.unwrap_or(0).to_le_bytes());
        put_bytes(&mut out, o.trace_dir.as_os_str().as_bytes());
        put_bytes(&mut out, o.program.as_os_str().as_bytes());
        put_bytes(&mut out, o.cwd.as_os_str().as_bytes());
        let hide: Vec<OsString> = o.hide_paths.iter().map(|p| p.clone().into()).collect();
        for list in [&o.argv, &o.env, &o.env_removed, &hide] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for s in list {
                put_bytes(&mut out, s.as_bytes());
            }
        }
        out
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Request, Malformed> {
        let mut r = Reader(bytes);
        if r.take(4)? != REQUEST_MAGIC {
            return Err(Malformed("not a request"));
        }
        let flags = r.take(1)?[0];
        let cpu = r.u32()?;
        let seed = r.take(8)?;
        let seed = u64::from_le_bytes(seed.try_into().expect("8 bytes"));
        let path = |r: &mut Reader<'_>| r.bytes().map(|b| PathBuf::from(os(b)));
        let trace_dir = path(&mut r)?;
        let program = path(&mut r)?;
        let cwd = path(&mut r)?;
        let mut lists = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = r.u32()?;
            for _ in 0..n {
                list.push(os(r.bytes()?));
            }
        }
        if !r.0.is_empty() {
            return Err(Malformed("trailing bytes"));
        }
        let [argv, env, env_removed, hide] = lists;
        let hide_paths: Vec<PathBuf> = hide.into_iter().map(PathBuf::from).collect();
        if hide_paths.iter().any(|p| !p.is_absolute()) {
            return Err(Malformed("a relative path to hide"));
        }
        if argv.is_empty() || !program.is_absolute() || !cwd.is_absolute() {
            return Err(Malformed("no argv, or a relative program or directory"));
        }
        Ok(Request {
            opts: RecordOptions {
                program,
                argv,
                env,
                cwd,
                trace_dir,
                syscallbuf: flags & 1 != 0,
                cpu: cpu.checked_sub(1).map(|c| c as usize),
                discard_if_passed: flags & 2 != 0,
                desched_events: true,
                env_removed,
                hide_paths,
                chaos: (flags & 4 != 0).then_some(seed),
                prescribed: None,
            },
        })
    }
}

/// What the server says of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The exit code `record` would have had.
    pub code: i32,
    /// No trace was written: the program passed and the request said so.
    pub discarded: bool,
}

impl Reply {
    /// The wire form.
    pub fn encode(&self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[..4].copy_from_slice(REPLY_MAGIC);
        out[4..8].copy_from_slice(&self.code.to_le_bytes());
        out[8] = u8::from(self.discarded);
        out
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Reply, Malformed> {
        match bytes {
            [m @ .., c0, c1, c2, c3, flags] if m == REPLY_MAGIC => Ok(Reply {
                code: i32::from_le_bytes([*c0, *c1, *c2, *c3]),
                discarded: flags & 1 != 0,
            }),
            _ => Err(Malformed("not a reply")),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn os(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Serves requests on the socket that is our fd 0 until the harness closes
/// it; see the module doc.
pub fn serve() -> io::Result<()> {
    // If the harness dies, so do we, and our tracees with us (they are
    // traced with PTRACE_O_EXITKILL): a hung test must not outlive it. (Had
    // it died before this, the socket reads as closed below.)
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    // A SIGTERM is meant for a recording (the harness's timeout): one that
    // comes before the first recording starts, or between two, must not
    // kill the server (the attempt would look timed out, and the server
    // gone). It interrupts the wait for a request, which goes on.
    rrtest_sys::signals::catch_termination();
    // The socket must not reach the programs we record: take it off fd 0
    // (the copy is close-on-exec) and give fd 0 /dev/null.
    let sock = io::stdin().as_fd().try_clone_to_owned()?;
    // Our own log lines go to the stderr we were started with (the
    // harness's), never into a recorded test's stderr, where fd 2 points
    // while recording. (The copy is close-on-exec.)
    if let Ok(log) = io::stderr().as_fd().try_clone_to_owned() {
        crate::util::set_log_file(std::fs::File::from(log));
    }
    let null_in = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&null_in)?;
    drop(null_in);
    let null_out = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    point_output_at(&null_out, &null_out)?;
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let (len, fds) = match fdpass::recv(sock.as_fd(), &mut buf) {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(()),
            // A SIGTERM meant for a recording that had just ended.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let failed = Reply {
            code: i32::from(exit_codes::RECORDER_FAILED),
            discarded: false,
        };
        let reply = match (Request::decode(&buf[..len]), fds.as_slice()) {
            (Ok(request), [stdout, stderr]) => {
                point_output_at(stdout, stderr)?;
                drop(fds);
                let reply = record_one(&request);
                let _ = io::stdout().flush();
                let _ = io::stderr().flush();
                point_output_at(&null_out, &null_out)?;
                reply
            }
            (Ok(_), _) => {
                tracing::warn!("a request came without its stdout and stderr");
                failed
            }
            (Err(e), _) => {
                tracing::warn!(error = %e, "bad request");
                failed
            }
        };
        match fdpass::send(sock.as_fd(), &reply.encode(), &[]) {
            Ok(()) => {}
            // The harness is gone: so are we.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Makes our fds 1 and 2 copies of `stdout` and `stderr`.
fn point_output_at(stdout: &impl AsFd, stderr: &impl AsFd) -> io::Result<()> {
    nix::unistd::dup2_stdout(stdout)?;
    nix::unistd::dup2_stderr(stderr)?;
    Ok(())
}

/// Records one request like `record --no-verify --disposable` would, and
/// says what that would have exited with.
fn record_one(request: &Request) -> Reply {
    // A termination request that came while we were idle was meant for an
    // attempt that has ended.
    let _ = rrtest_sys::signals::take_request();
    match super::record(&request.opts) {
        Ok(recording) => Reply {
            code: i32::from(super::exit_code_of(recording.status)),
            discarded: recording.discarded,
        },
        Err(e) => {
            eprintln!("error: {}", crate::errors::Error::Recorder(e));
            Reply {
                code: i32::from(exit_codes::RECORDER_FAILED),
                discarded: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            opts: RecordOptions {
                program: "/bin/echo".into(),
                argv: vec!["echo".into(), OsString::from_vec(vec![0xff, b'x'])],
                env: vec!["A=1".into(), "EMPTY=".into()],
                cwd: "/tmp".into(),
                trace_dir: "/tmp/t".into(),
                syscallbuf: true,
                cpu: Some(0),
                discard_if_passed: true,
                desched_events: true,
                env_removed: vec!["DATABASE_URL".into()],
                hide_paths: vec!["/root/.netrc".into()],
                chaos: Some(u64::MAX - 1),
                prescribed: None,
            },
        }
    }

    #[test]
    fn requests_round_trip_with_non_utf8_bytes() {
        let r = request();
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        let mut none = request();
        none.opts.cpu = None;
        none.opts.syscallbuf = false;
        none.opts.discard_if_passed = false;
        none.opts.chaos = None;
        assert_eq!(Request::decode(&none.encode()).unwrap(), none);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let bytes = request().encode();
        for cut in [0, 3, 4, 9, bytes.len() - 1] {
            assert!(Request::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Request::decode(&extra).is_err());
        let mut relative = request();
        relative.opts.program = "echo".into();
        assert!(Request::decode(&relative.encode()).is_err());
    }

    #[test]
    fn replies_round_trip() {
        for code in [0, 1, 105, 137, -1] {
            for discarded in [false, true] {
                let r = Reply { code, discarded };
                assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
            }
        }
        assert!(Reply::decode(b"RRA1\0\0").is_err());
        assert!(Reply::decode(b"XXXX\0\0\0\0\0").is_err());
    }
}
