//! One debugging session: gdbstub's state machine driven over one
//! connection, the replay resumed on this thread while the socket is
//! watched for Ctrl-C, and the session's end.
//!
//! gdbstub gives up a session on a packet it cannot parse. Such a packet
//! is answered here with an error reply instead, and a fresh gdbstub takes
//! over the connection: it is first fed, with its answers dropped, the
//! packets that set the connection's state (`qSupported`,
//! `QStartNoAckMode`, `!`, `Hg`, `Hc`), so gdb notices nothing but the
//! error.
//!
//! This file must not decide anything about the replay: it passes
//! requests to the target (`target.rs`) and its engine.

use std::net::TcpStream;

use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, GdbStubError, MultiThreadStopReason};

use super::engine::Engine;
use super::target::{Fatal, GdbTarget};
use super::wire::{self, Framer, Incoming, Wire};
use crate::replayer::ReplayError;

/// How a session ended. In every case the caller drops the engine, which
/// ends the replay and kills its tracees.
#[derive(Debug)]
pub enum End {
    /// gdb detached (`detach`, or `quit` after attaching).
    Detached,
    /// gdb killed the program (`kill`).
    Killed,
    /// The connection closed (gdb exited or was killed).
    Closed,
    /// The replay failed (a divergence, a ptrace error): it cannot go on.
    Failed(ReplayError),
}

type Machine<'a, E> = GdbStubStateMachine<'a, GdbTarget<E>, Wire>;
type StubError = GdbStubError<Fatal, std::io::Error>;

/// The packets that set a connection's state, latest of each kind.
#[derive(Debug, Default)]
struct Sticky {
    packets: Vec<(&'static str, Vec<u8>)>,
}

impl Sticky {
    const KINDS: [&'static str; 5] = ["qSupported", "QStartNoAckMode", "!", "Hg", "Hc"];

    fn note(&mut self, packet: &[u8]) {
        let body = &packet[1..];
        if let Some(kind) = Self::KINDS.iter().find(|k| body.starts_with(k.as_bytes())) {
            self.packets.retain(|(k, _)| k != kind);
            self.packets.push((kind, packet.to_vec()));
        }
    }
}

/// Serves one gdb connection over `target` until it ends.
pub fn serve<E: Engine>(
    target: &mut GdbTarget<E>,
    stream: TcpStream,
    log: &mut dyn FnMut(&str),
) -> std::io::Result<End> {
    let mut reader = stream.try_clone()?;
    let mut framer = Framer::default();
    let mut sticky = Sticky::default();
    let mut machine = fresh(target, &stream, &sticky)?;
    loop {
        for note in target.take_notes() {
            log(&note);
        }
        machine = match machine {
            GdbStubStateMachine::Idle(mut gdb) => match framer.next(&mut reader) {
                Incoming::Packet(bytes) => {
                    match feed(GdbStubStateMachine::Idle(gdb), target, &bytes) {
                        Ok(next) => {
                            // Only packets gdbstub took: they replay cleanly.
                            sticky.note(&bytes);
                            next
                        }
                        Err(e) if e.is_connection_error() => return Ok(End::Closed),
                        Err(e) if e.is_target_error() => {
                            return Ok(End::Failed(fatal_of(e)));
                        }
                        Err(e) => {
                            log(&format!(
                                "cargo-rrtest: answered a malformed packet from gdb with an error ({e}): {}",
                                shown(&bytes)
                            ));
                            let mut next = fresh(target, &stream, &sticky)?;
                            if let GdbStubStateMachine::Idle(gdb) = &mut next {
                                gdb.borrow_conn()
                                    .send_raw(&wire::frame(b"E.cargo-rrtest: malformed packet"))?;
                            }
                            next
                        }
                    }
                }
                Incoming::Interrupt => step_stub(gdb.incoming_data(target, 0x03))?,
                Incoming::BadChecksum => {
                    // Ask for it again (what the protocol does with a
                    // corrupt packet while acknowledgements are on; after
                    // no-ack mode gdb ignores it).
                    gdb.borrow_conn().send_raw(b"-")?;
                    GdbStubStateMachine::Idle(gdb)
                }
                Incoming::TooLong => {
                    gdb.borrow_conn()
                        .send_raw(&wire::frame(b"E.cargo-rrtest: packet too long"))?;
                    GdbStubStateMachine::Idle(gdb)
                }
                Incoming::Closed => return Ok(End::Closed),
            },
            GdbStubStateMachine::Running(gdb) => {
                let Some(request) = target.take_request() else {
                    // Running without a request cannot happen with this
                    // target; report where the replay stands.
                    let tid = target.engine.current_thread();
                    let stop = target.stop_reason(super::engine::Stop::Interrupted { tid });
                    machine = step_stub(gdb.report_stop(target, stop))?;
                    continue;
                };
                let tid = target.engine.current_thread();
                let (result, watched) = if framer.take_pending_interrupt() {
                    (
                        Ok(super::engine::Stop::Interrupted { tid }),
                        wire::Watched {
                            interrupted: true,
                            closed: false,
                        },
                    )
                } else {
                    let interrupter = target.engine.interrupter();
                    wire::watch_while(&stream, interrupter, || {
                        target.engine.resume(request.how, request.direction)
                    })?
                };
                if watched.closed {
                    return Ok(End::Closed);
                }
                match result {
                    Ok(stop) => {
                        let reason = target.stop_reason(stop);
                        step_stub(gdb.report_stop(target, reason))?
                    }
                    Err(e) => {
                        // gdb sees the program end; the caller reports why.
                        let reason: MultiThreadStopReason<u64> =
                            MultiThreadStopReason::Terminated(gdbstub::common::Signal::SIGKILL);
                        let _ = gdb.report_stop(target, reason);
                        return Ok(End::Failed(e));
                    }
                }
            }
            GdbStubStateMachine::CtrlCInterrupt(gdb) => {
                step_stub(gdb.interrupt_handled(target, None::<MultiThreadStopReason<u64>>))?
            }
            GdbStubStateMachine::Disconnected(gdb) => match gdb.get_reason() {
                // The program ended: gdb may still look around (and quit).
                DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_) => {
                    gdb.return_to_idle()
                }
                DisconnectReason::Disconnect => return Ok(End::Detached),
                DisconnectReason::Kill => return Ok(End::Killed),
            },
        };
    }
}

/// A new gdbstub on the connection, brought to the state of `sticky`.
fn fresh<'a, E: Engine>(
    target: &mut GdbTarget<E>,
    stream: &TcpStream,
    sticky: &Sticky,
) -> std::io::Result<Machine<'a, E>> {
    let wire = Wire::new(stream.try_clone()?);
    let stub = GdbStub::builder(wire)
        .packet_buffer_size(wire::MAX_PACKET + 8)
        .build()
        .map_err(|e| std::io::Error::other(format!("gdbstub: {e:?}")))?;
    let mut machine = stub
        .run_state_machine(target)
        .map_err(|e| std::io::Error::other(format!("gdbstub: {e}")))?;
    if sticky.packets.is_empty() {
        return Ok(machine);
    }
    mute(&mut machine, true);
    for (_, packet) in &sticky.packets {
        machine = feed(machine, target, packet)
            .map_err(|e| std::io::Error::other(format!("gdbstub: {e}")))?;
    }
    mute(&mut machine, false);
    Ok(machine)
}

fn mute<E: Engine>(machine: &mut Machine<'_, E>, muted: bool) {
    if let GdbStubStateMachine::Idle(gdb) = machine {
        let conn = gdb.borrow_conn();
        let _ = conn.flush();
        conn.muted = muted;
    }
}

/// Feeds a whole packet's bytes.
fn feed<'a, E: Engine>(
    mut machine: Machine<'a, E>,
    target: &mut GdbTarget<E>,
    bytes: &[u8],
) -> Result<Machine<'a, E>, StubError> {
    for &b in bytes {
        machine = match machine {
            GdbStubStateMachine::Idle(gdb) => gdb.incoming_data(target, b)?,
            GdbStubStateMachine::Running(gdb) => gdb.incoming_data(target, b)?,
            other => return Ok(other),
        };
    }
    Ok(machine)
}

fn step_stub<'a, E: Engine>(
    r: Result<Machine<'a, E>, StubError>,
) -> std::io::Result<Machine<'a, E>> {
    r.map_err(|e| std::io::Error::other(format!("gdb protocol: {e}")))
}

fn fatal_of(e: StubError) -> ReplayError {
    match e.into_target_error() {
        Some(Fatal(e)) => e,
        None => ReplayError::Other(crate::replayer::Error::Malformed {
            index: 0,
            reason: "the gdb server failed".into(),
        }),
    }
}

/// A packet for a log line: printable, at most 60 characters.
fn shown(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.len() > 60 {
        format!("{}...", &text[..57])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_keeps_the_latest_of_each_kind() {
        let mut s = Sticky::default();
        s.note(&wire::frame(b"Hg0"));
        s.note(&wire::frame(b"qSupported:multiprocess+"));
        s.note(&wire::frame(b"m1000,4"));
        s.note(&wire::frame(b"Hgp1.2"));
        let kinds: Vec<&str> = s.packets.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["qSupported", "Hg"]);
        assert_eq!(s.packets[1].1, wire::frame(b"Hgp1.2"));
    }

    #[test]
    fn shown_packets_are_printable_and_short() {
        assert_eq!(shown(b"$m\x01#00"), "$m?#00");
        assert_eq!(shown(&[b'a'; 100]).len(), 60);
    }
}
