//! Keeping a thread's blocked SIGTRAP blocked across the traps the
//! recorder and the replayer cause (a single step, a debug-register
//! breakpoint).
//!
//! Such a trap is a forced signal: when the thread blocks SIGTRAP, the
//! kernel takes SIGTRAP out of its blocked mask before the tracer sees the
//! stop (and resets a SIGTRAP handler to the default). The program never
//! asked for that, and it shows: glibc blocks every signal around `clone`
//! in `posix_spawn` and `pthread_create`; a chaos slice stepped there made
//! the child inherit a mask without SIGTRAP, and `posix_spawn`'s child
//! wrote that mask into memory the replay then did not reproduce (docs/chaos.md).
//! Read [`blocks_trap`] before resuming a thread with a trap armed and call
//! [`reblock_trap`] at the trap's stop when it did.

use std::io;

use rrtest_sys::ptrace;

/// SIGTRAP's bit in a blocked-signal mask.
const TRAP_BIT: u64 = 1 << (libc::SIGTRAP - 1);

/// Whether stopped thread `tid` blocks SIGTRAP now.
pub fn blocks_trap(tid: i32) -> io::Result<bool> {
    Ok(ptrace::getsigmask(tid)? & TRAP_BIT != 0)
}

/// At the stop of a trap of ours in a thread that blocked SIGTRAP before
/// it: blocks SIGTRAP again (the kernel unblocked it to force the trap).
pub fn reblock_trap(tid: i32) -> io::Result<()> {
    let mask = ptrace::getsigmask(tid)?;
    if mask & TRAP_BIT == 0 {
        ptrace::setsigmask(tid, mask | TRAP_BIT)?;
    }
    Ok(())
}
