//! The preload library's handshake ([`init`]): checking its `InitParams`,
//! mapping the thread-locals page and the buffer area with one `mmap`,
//! writing the buffer header, the locals and the reply; and
//! [`replace_syscall`], running another syscall in place of the one a
//! thread is stopped at.
//!
//! It must not patch sites or read records: it leaves an empty buffer and an
//! empty output table for the other files to drive.

use std::io;

use rrtest_abi::{
    area, locals, InitParams, ThreadLocals, AREA_ADDR, BUFFER_MAGIC, DESCHED_POLLED,
    PROTOCOL_VERSION, THREAD_LOCALS_ADDR, THREAD_LOCALS_SIZE,
};
use rrtest_sys::ptrace::{self, Regs, WaitEvent};
use rrtest_sys::RemoteMem;

use super::output::write_output_fds;
use super::records::RECORDS_CAPACITY;
use super::{read_struct, u32_at, u64_at, BUFFER_ADDR};

/// Buffer slots in the area: one, shared by all threads (see the module doc).
const SLOTS: u64 = 1;

/// Runs syscall `nr(args)` in place of the syscall thread `tid` is stopped
/// at the entry of (a seccomp stop), to its exit stop. Returns its result;
/// the thread stays at the exit stop with the program's registers restored
/// from `entry` (the caller sets `rip`/`rax` as it needs).
pub(super) fn replace_syscall(tid: i32, entry: &Regs, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    let mut regs = *entry;
    regs.orig_rax = nr as u64;
    ptrace::set_syscall_args(&mut regs, &args);
    ptrace::setregs(tid, &regs)?;
    ptrace::syscall(tid, 0)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::SyscallStop { .. } => {}
        ev => {
            return Err(io::Error::other(format!(
                "replacing a syscall with {nr}: unexpected stop {ev:?}"
            )))
        }
    }
    let ret = ptrace::getregs(tid)?.rax as i64;
    let mut back = *entry;
    back.rax = ret as u64;
    ptrace::setregs(tid, &back)?;
    Ok(ret)
}

/// The handshake, at the seccomp stop of `magic::INIT` (`regs`): checks the
/// library's `InitParams`, maps the locals page and the area, writes the
/// buffer header, the locals and the reply, and answers 0 (or `-EPROTO`
/// for a library of another protocol). Leaves the thread at the syscall's
/// exit stop. Returns the hook entry when the buffer is on.
pub fn init(tid: i32, regs: &Regs) -> io::Result<Option<u64>> {
    let mem = RemoteMem::new(tid);
    let params_addr = regs.rdi;
    let raw: [u8; 48] = read_struct(&mem, params_addr)?;
    let version = u32_at(&raw, 0);
    let size = u32_at(&raw, 4);
    let hook_entry = u64_at(&raw, 8);
    let supported = version == PROTOCOL_VERSION
        && size as usize == std::mem::size_of::<InitParams>()
        && hook_entry != 0;
    let len = THREAD_LOCALS_SIZE + area::size(SLOTS);
    let mapped = if supported {
        replace_syscall(
            tid,
            regs,
            libc::SYS_mmap,
            crate::tracee::anon_mmap_args(
                THREAD_LOCALS_ADDR,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            ),
        )?
    } else {
        replace_syscall(tid, regs, libc::SYS_getpid, [0; 6])?;
        -1
    };
    let mut exit = ptrace::getregs(tid)?;
    if mapped as u64 != THREAD_LOCALS_ADDR {
        exit.rax = -(libc::EPROTO as i64) as u64;
        ptrace::setregs(tid, &exit)?;
        return Ok(None);
    }
    // The alt stack's guard page.
    crate::tracee::inject_via_fixed_page(
        tid,
        libc::SYS_mprotect,
        [AREA_ADDR, area::GUARD_SIZE, libc::PROT_NONE as u64, 0, 0, 0],
    )?;
    let capacity = RECORDS_CAPACITY as u32;
    mem.write(BUFFER_ADDR, &BUFFER_MAGIC.to_le_bytes())?;
    mem.write(BUFFER_ADDR + 4, &capacity.to_le_bytes())?;
    let tl = ThreadLocals {
        alt_stack_top: AREA_ADDR + area::ALT_STACK_TOP,
        buffer: BUFFER_ADDR,
        buffer_size: area::BUFFER_SIZE,
        desched_fd: DESCHED_POLLED,
        ..ThreadLocals::default()
    };
    let mut bytes = Vec::with_capacity(64);
    for v in [tl.saved_rsp, tl.alt_stack_top, tl.buffer, tl.buffer_size] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&tl.desched_fd.to_le_bytes());
    debug_assert_eq!(bytes.len() as u64, locals::DESCHED_FD + 4);
    mem.write(THREAD_LOCALS_ADDR, &bytes)?;
    write_output_fds(tid, &[])?;
    // InitParams: reply_area at 24, reply_area_size at 32.
    mem.write(params_addr + 24, &AREA_ADDR.to_le_bytes())?;
    mem.write(params_addr + 32, &area::size(SLOTS).to_le_bytes())?;
    exit.rax = 0;
    ptrace::setregs(tid, &exit)?;
    Ok(Some(hook_entry))
}
