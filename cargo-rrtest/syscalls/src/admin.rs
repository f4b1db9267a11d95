//! Output functions of the rarer calls real programs and their tests make:
//! the kernel log, file system types, the LDT, keys, POSIX message queues,
//! NUMA policy, disk quotas and clock discipline. Layouts from the man pages
//! and the kernel's uapi headers (x86-64).
//!
//! Like every output function, each is correct for any result; a sub-command
//! whose layout is not described here makes the trace unreplayable by name.

use super::outputs::{push, ret_len};
use super::{Call, MemReader, Region, Unsupported};

/// `sizeof(struct timex)` (adjtimex, clock_adjtime).
pub(crate) const TIMEX: u64 = 208;
/// `sizeof(struct mq_attr)`.
pub(crate) const MQ_ATTR: u64 = 64;

/// `syslog(type, buf, len)`: the read actions (2 `SYSLOG_ACTION_READ`,
/// 3 `READ_ALL`, 4 `READ_CLEAR`) write the bytes they return to `buf`.
pub(crate) fn syslog(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if matches!(c.args[0], 2..=4) {
        push(out, c.args[1], ret_len(c));
    }
    Ok(())
}

/// `sysfs(option, ...)`: option 2 (`fs_index`, `buf`) writes the file
/// system's name, NUL-terminated, to `buf`; options 1 and 3 write nothing.
pub(crate) fn sysfs(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.args[0] != 2 || c.ret < 0 {
        return Ok(());
    }
    // The name the kernel copied, up to its NUL (file system type names
    // are short; 256 bytes bounds one that is not). Byte by byte: the name
    // may end right before an unmapped page.
    let mut len = 0u64;
    for i in 0..256u64 {
        let mut b = [0u8; 1];
        if mem.read(c.args[2] + i, &mut b).is_err() {
            break;
        }
        if b[0] == 0 {
            len = i + 1;
            break;
        }
    }
    if len == 0 {
        return Err(Unsupported(
            "sysfs: the file system name it wrote has no end".into(),
        ));
    }
    push(out, c.args[2], len);
    Ok(())
}

/// `modify_ldt(func, ptr, bytecount)`: func 0 (read) and 2 (read the
/// default LDT) write the bytes they return to `ptr`; 1 and 0x11 write an
/// entry (the call is executed in replay, so the kernel does it again).
pub(crate) fn modify_ldt(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if matches!(c.args[0], 0 | 2) {
        push(out, c.args[1], ret_len(c));
    }
    Ok(())
}

/// `keyctl(op, ...)`: the operations that fill a caller's buffer (`buf` in
/// arg 2, its length in arg 3, the result the size of the whole answer):
/// 6 `DESCRIBE`, 11 `READ`, 17 `GET_SECURITY`, 23 `DH_COMPUTE`. The
/// public-key operations (24 to 28) are not described; the others write
/// nothing.
pub(crate) fn keyctl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[0] {
        6 | 11 | 17 | 23 => push(out, c.args[2], ret_len(c).min(c.args[3])),
        24..=28 => {
            return Err(Unsupported(format!(
                "keyctl operation {} is not supported",
                c.args[0]
            )))
        }
        _ => {}
    }
    Ok(())
}

/// `mq_timedreceive(mqdes, msg_ptr, msg_len, msg_prio, abs_timeout)`: the
/// message (its length is the result) and, if asked, its priority.
pub(crate) fn mq_timedreceive(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    push(out, c.args[1], ret_len(c));
    push(out, c.args[3], 4);
    Ok(())
}

/// `get_mempolicy(mode, nodemask, maxnode, addr, flags)`: the mode (an
/// int) and the node mask, `maxnode` bits rounded up to whole longs.
pub(crate) fn get_mempolicy(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    push(out, c.args[0], 4);
    let longs = c.args[2].div_ceil(64);
    if longs > 1 << 16 {
        return Err(Unsupported(format!(
            "get_mempolicy: a node mask of {} bits is too large",
            c.args[2]
        )));
    }
    push(out, c.args[1], longs * 8);
    Ok(())
}

/// `quotactl(cmd, special, id, addr)`: the reading sub-commands of the
/// generic interface write a structure at `addr` (`Q_GETFMT` a u32,
/// `Q_GETINFO` `struct if_dqinfo`, `Q_GETQUOTA` `struct if_dqblk`,
/// `Q_GETNEXTQUOTA` `struct if_nextdqblk`); the setting ones write
/// nothing; the XFS ones (`Q_X*`) are not described.
pub(crate) fn quotactl(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let sub = (c.args[0] as u32) >> 8;
    let len = match sub {
        0x80_0004 => 4,  // Q_GETFMT
        0x80_0005 => 24, // Q_GETINFO
        0x80_0007 => 72, // Q_GETQUOTA
        0x80_0009 => 80, // Q_GETNEXTQUOTA
        0x80_0001..=0x80_0008 => 0,
        _ if sub >> 8 == 0x58 => {
            return Err(Unsupported(format!(
                "quotactl XFS command {sub:#x} is not supported"
            )))
        }
        _ => 0,
    };
    push(out, c.args[3], len);
    Ok(())
}
