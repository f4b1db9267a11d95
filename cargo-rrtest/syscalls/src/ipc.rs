//! System V message queues, semaphores and shared memory. Their objects
//! live in the kernel, outside the recording; replay skips every call and
//! injects what the recording saw. An attached shared memory segment is
//! recorded as a mapping whose contents are captured at the attach
//! ([`shmat`]); replay maps shared anonymous memory there and writes them
//! (`replayer/inject.rs`). The recorder refuses a segment attached twice at
//! once (`recorder/session/syscall.rs`): two mappings of one segment would
//! not share their memory in replay.
//!
//! The sizes the calls do not tell (a semaphore set's, a segment's) come
//! from `/proc/sysvipc`, as the tracee's IPC namespace sees it; a program
//! with an IPC namespace of its own gets those calls refused.

use super::layout;
use super::outputs::{push, ret_len};
use super::{Call, MemReader, Region, Unsupported};

// ipc.h / msg.h / sem.h commands (x86-64 takes them without IPC_64).
const IPC_RMID: i32 = 0;
const IPC_SET: i32 = 1;
const IPC_STAT: i32 = 2;
const IPC_INFO: i32 = 3;
const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const SHM_LOCK: i32 = 11;
const SHM_UNLOCK: i32 = 12;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
/// `shmat`'s flags of a read-only and of an executable attach: the
/// mapping's protection ([`shm_prot`]).
const SHM_RDONLY: u64 = 0o10000;
const SHM_EXEC: u64 = 0o100000;
/// Segments larger than this are not copied into the trace.
pub(crate) const MAX_SHM: u64 = 256 << 20;

/// Column `col` (0-based) of the line of `/proc/sysvipc/KIND` whose id
/// (column 1) is `id`.
pub(crate) fn sysv_column(
    c: &Call,
    mem: &dyn MemReader,
    kind: &str,
    id: u64,
    col: usize,
) -> Result<u64, Unsupported> {
    let name = super::name(c.nr);
    let table = mem.sysv_ipc(kind).ok_or_else(|| {
        Unsupported(format!(
            "{name} in an IPC namespace of the program's own is not recorded"
        ))
    })?;
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1).and_then(|v| v.parse::<u64>().ok()) == Some(id))
        .and_then(|f| f.get(col)?.parse().ok())
        .ok_or_else(|| Unsupported(format!("{name}: no {kind} object {id} in /proc/sysvipc")))
}

/// The protection an attach with `shmflg` gives its mapping (the kernel's
/// `do_shmat`): `PROT_READ` with `SHM_RDONLY`, else `PROT_READ |
/// PROT_WRITE`; `SHM_EXEC` adds `PROT_EXEC`.
pub(crate) fn shm_prot(shmflg: u64) -> i32 {
    let rw = if shmflg & SHM_RDONLY != 0 {
        libc::PROT_READ
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    if shmflg & SHM_EXEC != 0 {
        rw | libc::PROT_EXEC
    } else {
        rw
    }
}

/// `shmat(shmid, addr, flags)`: the segment, mapped at the result. Its
/// contents at the attach are its output (its size from
/// `/proc/sysvipc/shm`), whatever the flags (a read-only or executable
/// attach too: replay writes the contents before it gives the mapping
/// the attach's protection); segments over [`MAX_SHM`] are unsupported.
pub(crate) fn shmat(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let size = sysv_column(c, mem, "shm", c.args[0], 3)?;
    if size > MAX_SHM {
        return Err(Unsupported(format!(
            "shmat of a segment of {} MiB: over the {} MiB a trace copies",
            size >> 20,
            MAX_SHM >> 20
        )));
    }
    push(out, c.ret as u64, size);
    Ok(())
}

/// `shmctl(shmid, cmd, buf)`: the stat commands fill a `struct shmid_ds`,
/// `IPC_INFO` a `struct shminfo`, `SHM_INFO` a `struct shm_info`.
pub(crate) fn shmctl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[1] as i32 {
        IPC_STAT | SHM_STAT | SHM_STAT_ANY => push(out, c.args[2], layout::SHMID_DS),
        IPC_INFO => push(out, c.args[2], layout::SHMINFO),
        SHM_INFO => push(out, c.args[2], layout::SHM_INFO),
        IPC_SET | IPC_RMID | SHM_LOCK | SHM_UNLOCK => {}
        cmd => return Err(Unsupported(format!("shmctl command {cmd}"))),
    }
    Ok(())
}

/// `msgrcv(msqid, msgp, msgsz, msgtyp, msgflg)`: the message's `long mtype`
/// and `ret` bytes of `mtext` after it.
pub(crate) fn msgrcv(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        push(out, c.args[1], 8 + ret_len(c).min(c.args[2]));
    }
    Ok(())
}

/// `msgctl(msqid, cmd, buf)`: the stat commands fill a `struct msqid_ds`,
/// the info commands a `struct msginfo`.
pub(crate) fn msgctl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[1] as i32 {
        IPC_STAT | MSG_STAT | MSG_STAT_ANY => push(out, c.args[2], layout::MSQID_DS),
        IPC_INFO | MSG_INFO => push(out, c.args[2], layout::MSGINFO),
        IPC_SET | IPC_RMID => {}
        cmd => return Err(Unsupported(format!("msgctl command {cmd}"))),
    }
    Ok(())
}

/// `semctl(semid, semnum, cmd, arg)`: `arg` is a `union semun` passed by
/// value, a pointer for the commands that copy out. `GETALL` writes one
/// `unsigned short` per semaphore of the set (its size from
/// `/proc/sysvipc/sem`); `SETALL` only reads.
pub(crate) fn semctl(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[2] as i32 {
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => push(out, c.args[3], layout::SEMID_DS),
        IPC_INFO | SEM_INFO => push(out, c.args[3], layout::SEMINFO),
        IPC_SET | IPC_RMID | GETPID | GETVAL | GETNCNT | GETZCNT | SETVAL | SETALL => {}
        GETALL => {
            let nsems = sysv_column(c, mem, "sem", c.args[0], 3)?;
            push(out, c.args[3], nsems.saturating_mul(2));
        }
        cmd => return Err(Unsupported(format!("semctl command {cmd}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_libc() {
        assert_eq!(IPC_RMID, libc::IPC_RMID);
        assert_eq!(IPC_SET, libc::IPC_SET);
        assert_eq!(IPC_STAT, libc::IPC_STAT);
        assert_eq!(IPC_INFO, libc::IPC_INFO);
        assert_eq!(MSG_STAT, libc::MSG_STAT);
        assert_eq!(MSG_INFO, libc::MSG_INFO);
        assert_eq!(GETPID, libc::GETPID);
        assert_eq!(GETVAL, libc::GETVAL);
        assert_eq!(GETALL, libc::GETALL);
        assert_eq!(GETNCNT, libc::GETNCNT);
        assert_eq!(GETZCNT, libc::GETZCNT);
        assert_eq!(SETVAL, libc::SETVAL);
        assert_eq!(SETALL, libc::SETALL);
        assert_eq!(SEM_STAT, libc::SEM_STAT);
        assert_eq!(SEM_INFO, libc::SEM_INFO);
        assert_eq!(SHM_LOCK, libc::SHM_LOCK);
        assert_eq!(SHM_UNLOCK, libc::SHM_UNLOCK);
        assert_eq!(SHM_RDONLY, libc::SHM_RDONLY as u64);
        assert_eq!(SHM_EXEC, libc::SHM_EXEC as u64);
    }
}
