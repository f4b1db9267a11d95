//! The gdb remote-protocol server over a replay (`cargo rrtest replay
//! --gdb`, `--gdb-port`): gdb connects to 127.0.0.1, reads registers and
//! memory, sets breakpoints and watchpoints, and runs the replay forwards
//! and backwards.
//!
//! | file         | concern |
//! |--------------|---------|
//! | `wire.rs`    | the socket: one connection, later ones refused; packet framing; Ctrl-C while running |
//! | `session.rs` | gdbstub's state machine over one connection; malformed packets answered |
//! | `target.rs`  | the gdbstub `Target`: what each request does, and what is refused |
//! | `hostio.rs`  | gdb's read-only file access (`vFile:`), `/proc` names translated to the replay's |
//! | `arch.rs`    | x86-64 registers in gdb's order, and the target description |
//! | `engine.rs`  | the operations the server needs from a debugger ([`Engine`]) |
//! | `adapter.rs` | [`Engine`] for the replayer's debugger |
//! | `processes.rs` | the recorded processes, and which one `--process` names |
//! | `sysroot.rs` | the session's sysroot: the recorded files by their recorded paths |
//!
//! The server never changes the replayed program: memory and register
//! writes, `run` and `attach` get error replies (and a line on the
//! server's stderr that says why). When gdb disconnects, quits, is killed,
//! or kills the program, [`serve`] returns and the engine is dropped,
//! which ends the replay and kills every tracee.
//!
//! This module must not replay anything itself: the engine does.

mod adapter;
mod arch;
mod engine;
mod hostio;
mod processes;
mod session;
mod sysroot;
mod target;
mod wire;

pub use adapter::{start, Debugged};
pub use engine::{Direction, Engine, Resume, Stop, WatchKind};
pub use processes::{pick, processes, RecordedProcess};
pub use session::End;
pub use sysroot::Sysroot;
pub use wire::{Listener, BUSY_MESSAGE};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Serves the first connection to `listener` over `engine` until the
/// session ends; later connections are refused meanwhile. `log` gets the
/// lines meant for the user on the server's side (refusals, protocol
/// errors). The engine is dropped on return (the replay ends).
pub fn serve<E: Engine>(
    engine: E,
    listener: Listener,
    log: &mut dyn FnMut(&str),
) -> std::io::Result<End> {
    serve_with(engine, listener, &mut || false, log).map(|end| end.unwrap_or(End::Closed))
}

/// [`serve`], giving up waiting for the connection (None) once `gave_up`
/// says so (it is asked ten times a second until a debugger connects).
pub fn serve_with<E: Engine>(
    engine: E,
    listener: Listener,
    gave_up: &mut dyn FnMut() -> bool,
    log: &mut dyn FnMut(&str),
) -> std::io::Result<Option<End>> {
    let done = Arc::new(AtomicBool::new(false));
    let accepted = listener.accept(Arc::clone(&done), gave_up);
    let result = match accepted {
        Ok(Some((stream, _peer))) => {
            let mut target = target::GdbTarget::new(engine);
            session::serve(&mut target, stream, log).map(Some)
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    done.store(true, Ordering::Relaxed);
    result
}
