//! `rrtest-syscalls`: the syscall model the recorder and the replayer share.
//!
//! It depends on `rrtest-sys` (for [`MemReader`]) and `rrtest-abi` only, and
//! touches no tracee: the recorder and the replayer read and write tracee
//! memory and registers, and ask this crate what a syscall did or how a
//! site is patched. It must not depend on the recorder, the replayer or the
//! trace format.
//!
//! The typed syscall table: for every syscall the recorder knows, its name,
//! whether it may block, how replay treats it, and which tracee memory the
//! kernel writes (as a function of the arguments, the result, and structures
//! in tracee memory).
//!
//! The recorder consults it at every syscall exit to capture the bytes the
//! kernel wrote; the replayer consults it to decide whether to execute the
//! syscall or skip it and inject the recorded result. A syscall missing from
//! the table, or an ioctl request the table does not know, is
//! [`Unsupported`]: the recording goes on, and the trace is marked
//! unreplayable with the name.

#![forbid(unsafe_code)]

mod admin;
mod aio;
mod compat;
mod compat_rows;
mod describe;
mod fdctl;
mod ipc;
mod layout;
mod net;
mod newer;
mod observe;
mod outputs;
pub mod patch;
mod poll;
mod process;
mod table;
#[cfg(test)]
mod tests;

pub use aio::SYS_IO_PGETEVENTS;
pub use compat::{
    aio_ring_op, compat_args, compat_nr, entry_args, is_compat, is_restart_syscall, read_iovec,
    restart_syscall_rax, row_nr, shm_op, socketcall_name, socketcall_sub, x86_64_call,
    x86_64_equivalent, ShmOp, COMPAT_32, COMPAT_RESTART_SYSCALL, INT80,
};
pub use compat_rows::COMPAT_ROWS;
pub use describe::{arg_count, describe, describe_entry};
pub use fdctl::{lookup_ioctl, IoctlDesc, IOCTLS};
pub use layout::clone_args;
pub use table::{lookup, restarted_outputs, writes_on_failure, TABLE};

/// Reads tracee memory (defined in `sys`, next to its implementation over
/// `process_vm_readv`; by a byte buffer in tests).
pub use rrtest_sys::mem::MemReader;

/// A syscall as seen at its exit: number, arguments, result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Syscall number.
    pub nr: i64,
    /// Argument registers (rdi, rsi, rdx, r10, r8, r9).
    pub args: [u64; 6],
    /// Return value (negative errno on failure).
    pub ret: i64,
}

/// A range of tracee memory the kernel wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
}

/// Something the table cannot describe: the trace becomes unreplayable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Computes the regions a completed syscall wrote. Called only when the
/// syscall succeeded (`ret >= 0`) unless the descriptor says otherwise.
pub type OutputsFn = fn(&Call, &dyn MemReader, &mut Vec<Region>) -> Result<(), Unsupported>;

/// How replay treats a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayAction {
    /// Skip it; inject the recorded result and memory writes.
    Emulate,
    /// Execute it (it shapes the address space or the task's kernel state);
    /// the result must equal the recorded one, else replay has diverged.
    Execute,
    /// Execute it, and take its result as is (`rt_sigreturn` restores `rax`).
    ExecuteUnchecked,
    /// `mmap`: execute it at the recorded address; a file-backed mapping maps
    /// the trace's copy of the file.
    Mmap,
    /// `clone`/`clone3`/`fork`/`vfork`: execute; map the new task's id; inject
    /// the recorded id and writes.
    Clone,
    /// `exit`/`exit_group`: execute; it does not return.
    Exit,
    /// `execve`/`execveat`: execute the trace's copy of the program.
    Execve,
}

/// Everything the recorder and replayer know about one syscall.
#[derive(Debug, Clone, Copy)]
pub struct SyscallDesc {
    /// Syscall number (x86-64).
    pub nr: i64,
    /// Name, as in `man 2`.
    pub name: &'static str,
    /// Whether it may block for long (the recorder runs other threads meanwhile).
    pub may_block: bool,
    /// What replay does with it.
    pub replay: ReplayAction,
    /// The memory it writes.
    pub outputs: OutputsFn,
}

/// The name of syscall `nr`, or `syscall_<nr>` (a 32-bit call made with
/// `int $0x80`: its i386 name, see [`COMPAT_32`]).
pub fn name(nr: i64) -> std::borrow::Cow<'static, str> {
    if is_compat(nr) {
        return compat::compat_name(nr).into();
    }
    match lookup(nr) {
        Some(d) => d.name.into(),
        None => format!("syscall_{nr}").into(),
    }
}
