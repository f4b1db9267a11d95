//! System V message queues and semaphores. Their objects live in the kernel,
//! outside the recording; replay skips every call and injects what the
//! recording saw. (System V shared memory is unsupported: the kernel would
//! change mapped memory behind our back.)

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
/// `unsigned short` per semaphore of a set whose size the call does not
/// tell, so it is unsupported.
pub(crate) fn semctl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[2] as i32 {
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => push(out, c.args[3], layout::SEMID_DS),
        IPC_INFO | SEM_INFO => push(out, c.args[3], layout::SEMINFO),
        IPC_SET | IPC_RMID | GETPID | GETVAL | GETNCNT | GETZCNT | SETVAL | SETALL => {}
        GETALL => return Err(Unsupported("semctl(GETALL) is not supported".into())),
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
    }
}
