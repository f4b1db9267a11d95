//! What the recorder and the replayer do to a tracee in exactly the same way,
//! so that both see the same address space: the fixed page, the auxiliary
//! vector edits, and syscalls injected on the tracer's behalf.
//!
//! Recorder and replayer each call [`prepare_after_exec`] at the exec stop;
//! any difference here between record and replay would be a divergence.

use std::io;

use rrtest_abi::{entry, fixed_page_code, FIXED_PAGE_ADDR, FIXED_PAGE_SIZE};

use crate::sys::ptrace::{self, Regs, WaitEvent};
use crate::sys::RemoteMem;

const AT_NULL: u64 = 0;
const AT_IGNORE: u64 = 1;
const AT_RANDOM: u64 = 25;
const AT_SYSINFO_EHDR: u64 = 33;

/// A syscall injected into a stopped thread failed to run as expected.
fn unexpected(what: &str, ev: WaitEvent) -> io::Error {
    io::Error::other(format!("injected syscall {what}: unexpected stop {ev:?}"))
}

/// Executes syscall `nr(args)` in thread `tid`, which must be stopped at a
/// stop that is not a syscall entry (an exec stop, a syscall-exit stop, a
/// signal stop), using the `syscall` instruction at `insn`. All registers
/// are restored afterwards. Returns the syscall's result.
pub fn inject_syscall(tid: i32, insn: u64, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    let saved = ptrace::getregs(tid)?;
    let mut regs: Regs = saved;
    regs.rip = insn;
    regs.rax = nr as u64;
    regs.orig_rax = u64::MAX;
    ptrace::set_syscall_args(&mut regs, &args);
    ptrace::setregs(tid, &regs)?;
    ptrace::cont(tid, 0)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_SECCOMP => {}
        ev => return Err(unexpected(&format!("{nr}"), ev)),
    }
    ptrace::syscall(tid, 0)?;
    match ptrace::wait_tid(tid)? {
        WaitEvent::SyscallStop { .. } => {}
        ev => return Err(unexpected(&format!("{nr}"), ev)),
    }
    let ret = ptrace::getregs(tid)?.rax as i64;
    ptrace::setregs(tid, &saved)?;
    Ok(ret)
}

/// Executes a syscall through the fixed page's privileged entry point (the
/// page must be mapped).
pub fn inject_via_fixed_page(tid: i32, nr: i64, args: [u64; 6]) -> io::Result<i64> {
    inject_syscall(tid, FIXED_PAGE_ADDR + entry::PRIVILEGED, nr, args)
}

/// Facts about the fresh image, read at the exec stop.
#[derive(Debug, Clone, Copy)]
pub struct ExecFacts {
    /// Initial stack pointer.
    pub sp: u64,
    /// Entry instruction pointer.
    pub ip: u64,
    /// Address of the 16 `AT_RANDOM` bytes.
    pub at_random_addr: u64,
    /// Their value.
    pub at_random: [u8; 16],
}

/// Prepares a thread stopped at its exec stop: maps the fixed page and hides
/// the vDSO from the program (so time reads are syscalls, which are recorded).
pub fn prepare_after_exec(tid: i32) -> io::Result<ExecFacts> {
    let regs = ptrace::getregs(tid)?;
    let mem = RemoteMem::new(tid);

    // Map the fixed page, borrowing the entry point's first two bytes for a
    // `syscall` instruction.
    let mut saved = [0u8; 2];
    mem.read_exact(regs.rip, &mut saved)?;
    mem.write(regs.rip, &[0x0f, 0x05])?;
    let mapped = inject_syscall(
        tid,
        regs.rip,
        libc::SYS_mmap,
        [
            FIXED_PAGE_ADDR,
            FIXED_PAGE_SIZE,
            (libc::PROT_READ | libc::PROT_EXEC) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
            u64::MAX,
            0,
        ],
    );
    mem.write(regs.rip, &saved)?;
    let mapped = mapped?;
    if mapped as u64 != FIXED_PAGE_ADDR {
        return Err(io::Error::other(format!(
            "could not map the fixed page at {FIXED_PAGE_ADDR:#x}: mmap returned {mapped}"
        )));
    }
    mem.write(FIXED_PAGE_ADDR, &fixed_page_code())?;

    // Walk the initial stack to the auxiliary vector.
    let sp = regs.rsp;
    let argc = read_u64(&mem, sp)?;
    let mut p = sp + 8 + (argc + 1) * 8;
    while read_u64(&mem, p)? != 0 {
        p += 8;
    }
    p += 8;
    let mut at_random_addr = 0;
    loop {
        let key = read_u64(&mem, p)?;
        if key == AT_NULL {
            break;
        }
        match key {
            AT_SYSINFO_EHDR => mem.write(p, &AT_IGNORE.to_le_bytes())?,
            AT_RANDOM => at_random_addr = read_u64(&mem, p + 8)?,
            _ => {}
        }
        p += 16;
    }
    let mut at_random = [0u8; 16];
    if at_random_addr != 0 {
        mem.read_exact(at_random_addr, &mut at_random)?;
    }
    Ok(ExecFacts {
        sp,
        ip: regs.rip,
        at_random_addr,
        at_random,
    })
}

fn read_u64(mem: &RemoteMem, addr: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    mem.read_exact(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Decodes an `rdtsc` (`0f 31`) or `rdtscp` (`0f 01 f9`) at `ip`: returns
/// `(is_rdtscp, length)`.
pub fn decode_rdtsc(mem: &RemoteMem, ip: u64) -> Option<(bool, u64)> {
    let mut b = [0u8; 3];
    mem.read_exact(ip, &mut b[..2]).ok()?;
    if b[..2] == [0x0f, 0x31] {
        return Some((false, 2));
    }
    mem.read_exact(ip, &mut b).ok()?;
    (b == [0x0f, 0x01, 0xf9]).then_some((true, 3))
}
