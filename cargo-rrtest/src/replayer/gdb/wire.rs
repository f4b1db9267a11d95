//! The bytes between gdb and the server: the listening socket, which hands
//! out one connection and refuses later ones with a message
//! ([`Listener`]); the framing of what gdb sends into whole packets
//! ([`Framer`]), so that a corrupt or malformed packet is answered instead
//! of reaching gdbstub (which gives up the session on one); the writing
//! half gdbstub answers through ([`Wire`]); and the watch on the socket
//! while the replay runs ([`watch_while`]), which turns gdb's Ctrl-C, or
//! its disconnecting, into an interruption of the replay.
//!
//! Packet syntax (gdb's remote protocol):
//!
//! ```text
//!   $ body # c c      body: any bytes but '$' and '#'; cc: two hex digits,
//!                     the sum of the body's bytes modulo 256
//!   0x03              interrupt (outside a packet)
//!   + / -             acknowledgement / request to resend (until no-ack mode)
//! ```
//!
//! This file must not interpret packets beyond their framing and checksum,
//! and must not touch the replay except through the interrupter it is given.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The longest packet the server accepts (gdb's own packets are far
/// shorter; a memory write is refused anyway).
pub const MAX_PACKET: usize = 64 * 1024;

/// What the server tells a second debugger, before closing its connection.
pub const BUSY_MESSAGE: &str =
    "cargo-rrtest: this replay already has a debugger attached; only one connection is served";

/// The listening socket of one replay: the first connection is served;
/// every later one gets [`BUSY_MESSAGE`] as an error reply and is closed.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Listens on 127.0.0.1:`port` (0: a free port the system picks).
    pub fn bind(port: u16) -> std::io::Result<Listener> {
        Ok(Listener {
            listener: TcpListener::bind(("127.0.0.1", port))?,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits for the debugger's connection (None: `gave_up` said so
    /// first; it is asked ten times a second). From then on, a thread
    /// turns away every further connection until `done` is set (the
    /// session ended), which it notices within a tenth of a second.
    pub fn accept(
        self,
        done: Arc<AtomicBool>,
        gave_up: &mut dyn FnMut() -> bool,
    ) -> std::io::Result<Option<(TcpStream, SocketAddr)>> {
        let listener = self.listener;
        listener.set_nonblocking(true)?;
        let (stream, peer) = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if gave_up() {
                        return Ok(None);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        std::thread::Builder::new()
            .name("gdb-refuser".into())
            .spawn(move || refuse_others(listener, done))?;
        Ok(Some((stream, peer)))
    }
}

/// Turns away connections until `done`.
fn refuse_others(listener: TcpListener, done: Arc<AtomicBool>) {
    while !done.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut other, peer)) => {
                eprintln!("cargo-rrtest: refused a second debugger connection from {peer}");
                let _ = other.set_nonblocking(false);
                let _ = other.set_write_timeout(Some(std::time::Duration::from_secs(1)));
                // `E.message` is gdb's error reply with text; sent at once,
                // before the client's first packet, then the connection ends.
                let _ = other.write_all(&frame(format!("E.{BUSY_MESSAGE}").as_bytes()));
                let _ = other.shutdown(std::net::Shutdown::Both);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// `$body#cc`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// What gdb sent, framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole packet with a correct checksum: `$body#cc` as received.
    Packet(Vec<u8>),
    /// Ctrl-C (0x03 outside a packet).
    Interrupt,
    /// A packet whose checksum is wrong or not hex.
    BadChecksum,
    /// A packet longer than [`MAX_PACKET`] (its bytes were dropped).
    TooLong,
    /// The connection ended.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameState {
    Between,
    Body,
    Sum1,
    Sum2,
}

/// Splits the bytes gdb sends into [`Incoming`] items.
#[derive(Debug)]
pub struct Framer {
    state: FrameState,
    packet: Vec<u8>,
    too_long: bool,
    /// Bytes read but not yet framed.
    pending: std::collections::VecDeque<u8>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: FrameState::Between,
            packet: Vec::new(),
            too_long: false,
            pending: Default::default(),
        }
    }
}

impl Framer {
    /// Frames one byte; Some when it completes an item.
    pub fn push(&mut self, byte: u8) -> Option<Incoming> {
        match self.state {
            FrameState::Between => match byte {
                b'$' => {
                    self.packet.clear();
                    self.packet.push(b'$');
                    self.too_long = false;
                    self.state = FrameState::Body;
                    None
                }
                0x03 => Some(Incoming::Interrupt),
                // Acknowledgements, and noise between packets, which the
                // protocol says to skip.
                _ => None,
            },
            FrameState::Body => {
                if byte == b'#' {
                    self.state = FrameState::Sum1;
                } else if byte == b'$' {
                    // A new packet started before this one ended: drop it.
                    self.packet.clear();
                    self.too_long = false;
                    self.packet.push(b'$');
                    return None;
                }
                if self.packet.len() < MAX_PACKET {
                    self.packet.push(byte);
                } else {
                    self.too_long = true;
                }
                None
            }
            FrameState::Sum1 => {
                self.packet.push(byte);
                self.state = FrameState::Sum2;
                None
            }
            FrameState::Sum2 => {
                self.packet.push(byte);
                self.state = FrameState::Between;
                if self.too_long {
                    return Some(Incoming::TooLong);
                }
                let n = self.packet.len();
                let body = &self.packet[1..n - 3];
                let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
                let given = std::str::from_utf8(&self.packet[n - 2..])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if given == Some(sum) {
                    Some(Incoming::Packet(std::mem::take(&mut self.packet)))
                } else {
                    Some(Incoming::BadChecksum)
                }
            }
        }
    }

    /// The next item from `stream`, reading as needed.
    pub fn next(&mut self, stream: &mut TcpStream) -> Incoming {
        loop {
            while let Some(b) = self.pending.pop_front() {
                if let Some(item) = self.push(b) {
                    return item;
                }
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => return Incoming::Closed,
                Ok(n) => self.pending.extend(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Incoming::Closed,
            }
        }
    }

    /// Whether a Ctrl-C is among the bytes read but not yet framed (taken
    /// out if so): one that arrived with the resume packet.
    pub fn take_pending_interrupt(&mut self) -> bool {
        if self.state == FrameState::Between {
            if let Some(at) = self.pending.iter().position(|b| *b == 0x03) {
                self.pending.remove(at);
                return true;
            }
        }
        false
    }
}

/// The connection as gdbstub writes to it. Writes are collected and sent
/// at each flush (gdbstub flushes after each reply). While `muted`, what
/// gdbstub writes is dropped: the server replays a few state-setting
/// packets to a fresh gdbstub after a malformed packet, and their answers
/// must not reach gdb.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    out: Vec<u8>,
    /// Drop what is written.
    pub muted: bool,
}

impl Wire {
    /// Writes through `stream` (a clone of the connection).
    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            out: Vec::new(),
            muted: false,
        }
    }

    /// Sends bytes at once, past gdbstub (an error reply of the server's own).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self.stream, bytes)
    }
}

impl gdbstub::conn::Connection for Wire {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        if !self.muted {
            self.out.push(byte);
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if !self.muted {
            self.out.extend_from_slice(buf);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        std::io::Write::write_all(&mut self.stream, &out)?;
        std::io::Write::flush(&mut self.stream)
    }
}

/// How a watch on the socket ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watched {
    /// gdb sent Ctrl-C (the byte was consumed).
    pub interrupted: bool,
    /// The connection closed (gdb quit or was killed).
    pub closed: bool,
}

/// Runs `work` (a resume of the replay, on this thread: ptrace ties the
/// tracees to it) while another thread watches `stream`: a Ctrl-C from gdb
/// or the connection closing calls `interrupt`, so that a long
/// continue stops. Bytes of a packet are left in the socket for the framer.
pub fn watch_while<R>(
    stream: &TcpStream,
    interrupt: Box<dyn Fn() + Send>,
    work: impl FnOnce() -> R,
) -> std::io::Result<(R, Watched)> {
    let watched_stream = stream.try_clone()?;
    let (wake_rx, mut wake_tx) = std::os::unix::net::UnixStream::pair()?;
    let watcher = std::thread::Builder::new()
        .name("gdb-watch".into())
        .spawn(move || watch(watched_stream, wake_rx, interrupt))?;
    let result = work();
    let _ = wake_tx.write_all(&[1]);
    let watched = watcher.join().unwrap_or_default();
    Ok((result, watched))
}

fn watch(
    mut stream: TcpStream,
    wake: std::os::unix::net::UnixStream,
    interrupt: Box<dyn Fn() + Send>,
) -> Watched {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut watched = Watched::default();
    loop {
        let mut fds = [
            PollFd::new(AsFd::as_fd(&stream), PollFlags::POLLIN),
            PollFd::new(AsFd::as_fd(&wake), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return watched,
        }
        let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
        let sock = fds[0].revents().unwrap_or(PollFlags::empty());
        if woken {
            return watched;
        }
        if sock.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            watched.closed = true;
            interrupt();
            return watched;
        }
        if sock.contains(PollFlags::POLLIN) {
            let mut byte = [0u8; 1];
            match stream.peek(&mut byte) {
                Ok(0) | Err(_) => {
                    watched.closed = true;
                    interrupt();
                    return watched;
                }
                Ok(_) if byte[0] == 0x03 => {
                    let _ = stream.read(&mut byte);
                    watched.interrupted = true;
                    interrupt();
                    return watched;
                }
                // A packet while the program runs: left for the framer,
                // which reads it once the replay stops.
                Ok(_) => {
                    let _ = poll(
                        &mut [PollFd::new(AsFd::as_fd(&wake), PollFlags::POLLIN)],
                        PollTimeout::NONE,
                    );
                    return watched;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(bytes: &[u8]) -> Vec<Incoming> {
        let mut f = Framer::default();
        bytes.iter().filter_map(|b| f.push(*b)).collect()
    }

    #[test]
    fn packets_interrupts_and_noise_are_framed() {
        let good = frame(b"qSupported:multiprocess+");
        let mut input = b"+junk".to_vec();
        input.extend_from_slice(&good);
        input.push(0x03);
        input.extend_from_slice(b"-$m0,1#00");
        assert_eq!(
            frame_all(&input),
            vec![
                Incoming::Packet(good),
                Incoming::Interrupt,
                Incoming::BadChecksum
            ]
        );
        assert_eq!(frame_all(b"$g#zz"), vec![Incoming::BadChecksum]);
        // A packet restarted inside another keeps only the second one.
        let mut restarted = b"$m12".to_vec();
        restarted.extend_from_slice(&frame(b"g"));
        assert_eq!(frame_all(&restarted), vec![Incoming::Packet(frame(b"g"))]);
    }

    #[test]
    fn an_oversized_packet_is_dropped_whole() {
        let mut big = vec![b'$'];
        big.extend(std::iter::repeat_n(b'a', MAX_PACKET + 10));
        big.extend_from_slice(b"#00");
        big.extend_from_slice(&frame(b"?"));
        assert_eq!(
            frame_all(&big),
            vec![Incoming::TooLong, Incoming::Packet(frame(b"?"))]
        );
    }

    #[test]
    fn frame_computes_the_checksum() {
        assert_eq!(frame(b"OK"), b"$OK#9a");
        assert_eq!(frame(b""), b"$#00");
    }
}
