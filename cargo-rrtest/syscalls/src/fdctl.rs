//! `ioctl` and `fcntl`: one syscall number each, many requests, each with its
//! own output. ioctl requests the table does not know are unsupported, so the
//! trace is marked unreplayable rather than silently missing a write.

use super::layout;
use super::outputs::{push, read_u32, read_u64};
use super::{Call, MemReader, Region, Unsupported};

/// One known ioctl request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlDesc {
    /// The request number (the kernel takes it as an `unsigned int`).
    pub request: u32,
    /// Its name, as in `ioctl_tty(2)` / `ioctl(2)`.
    pub name: &'static str,
    /// Bytes the kernel stores at the argument pointer on success (for
    /// `FS_IOC_FIEMAP` and `SIOCGIFCONF` the fixed part: [`ioctl`] adds
    /// the extents and the interface records after reading how many).
    pub writes: u64,
}

const fn io(request: u32, name: &'static str, writes: u64) -> IoctlDesc {
    IoctlDesc {
        request,
        name,
        writes,
    }
}

/// Every ioctl request the recorder knows, sorted by number (x86-64 values,
/// from `asm-generic/ioctls.h`; the sizes are the kernel's structures).
pub static IOCTLS: &[IoctlDesc] = &[
    // Block mapping queries (`linux/fs.h`): an int each.
    io(0x0001, "FIBMAP", 4),
    io(0x0002, "FIGETBSZ", 4),
    // A program's own perf events (`linux/perf_event.h`).
    io(0x2400, "PERF_EVENT_IOC_ENABLE", 0),
    io(0x2401, "PERF_EVENT_IOC_DISABLE", 0),
    io(0x2402, "PERF_EVENT_IOC_REFRESH", 0),
    io(0x2403, "PERF_EVENT_IOC_RESET", 0),
    io(0x2405, "PERF_EVENT_IOC_SET_OUTPUT", 0),
    io(0x5401, "TCGETS", layout::KERNEL_TERMIOS),
    io(0x5402, "TCSETS", 0),
    io(0x5403, "TCSETSW", 0),
    io(0x5404, "TCSETSF", 0),
    io(0x5405, "TCGETA", layout::KERNEL_TERMIO),
    io(0x5406, "TCSETA", 0),
    io(0x5407, "TCSETAW", 0),
    io(0x5408, "TCSETAF", 0),
    io(0x5409, "TCSBRK", 0),
    io(0x540A, "TCXONC", 0),
    io(0x540B, "TCFLSH", 0),
    io(0x540C, "TIOCEXCL", 0),
    io(0x540D, "TIOCNXCL", 0),
    io(0x540E, "TIOCSCTTY", 0),
    io(0x540F, "TIOCGPGRP", 4),
    io(0x5410, "TIOCSPGRP", 0),
    io(0x5411, "TIOCOUTQ", 4),
    io(0x5413, "TIOCGWINSZ", layout::WINSIZE),
    io(0x5414, "TIOCSWINSZ", 0),
    io(0x541B, "FIONREAD", 4),
    io(0x5421, "FIONBIO", 0),
    io(0x5422, "TIOCNOTTY", 0),
    io(0x5429, "TIOCGSID", 4),
    io(0x5441, "TIOCGPTPEER", 0),
    io(0x5450, "FIONCLEX", 0),
    io(0x5451, "FIOCLEX", 0),
    io(0x5452, "FIOASYNC", 0),
    io(0x5460, "FIOQSIZE", 8),
    // Network interface queries (`linux/sockios.h`): each stores the whole
    // 40-byte `struct ifreq`; `SIOCGIFCONF` a `struct ifconf` and records.
    // Socket queries (`linux/sockios.h`): an int, or a 16-byte time.
    io(0x8905, "SIOCATMARK", 4),
    io(0x8906, "SIOCGSTAMP", 16),
    io(0x8907, "SIOCGSTAMPNS", 16),
    io(0x8910, "SIOCGIFNAME", IFREQ),
    io(0x8912, "SIOCGIFCONF", IFCONF),
    io(0x8913, "SIOCGIFFLAGS", IFREQ),
    io(0x8915, "SIOCGIFADDR", IFREQ),
    io(0x8917, "SIOCGIFDSTADDR", IFREQ),
    io(0x8919, "SIOCGIFBRDADDR", IFREQ),
    io(0x891B, "SIOCGIFNETMASK", IFREQ),
    io(0x891D, "SIOCGIFMETRIC", IFREQ),
    io(0x8921, "SIOCGIFMTU", IFREQ),
    io(0x8927, "SIOCGIFHWADDR", IFREQ),
    io(0x8933, "SIOCGIFINDEX", IFREQ),
    io(0x8942, "SIOCGIFTXQLEN", IFREQ),
    io(0x894B, "SIOCOUTQNSD", 4),
    io(0x8970, "SIOCGIFMAP", IFREQ),
    io(0x4004_5431, "TIOCSPTLCK", 0),
    io(0x4008_2404, "PERF_EVENT_IOC_PERIOD", 0),
    io(0x4008_6602, "FS_IOC_SETFLAGS", 0),
    io(0x4008_7602, "FS_IOC_SETVERSION", 0),
    io(0x401C_5820, "FS_IOC_FSSETXATTR", 0),
    io(0x402C_542B, "TCSETS2", 0),
    io(0x402C_542C, "TCSETSW2", 0),
    io(0x402C_542D, "TCSETSF2", 0),
    io(0x8004_5200, "RNDGETENTCNT", 4),
    io(0x8004_5430, "TIOCGPTN", 4),
    io(0x8004_5439, "TIOCGPTLCK", 4),
    io(0x8008_2407, "PERF_EVENT_IOC_ID", 8),
    // The inode flags and generation: the requests encode a long, but the
    // kernel stores an int (`ioctl_iflags(2)`).
    io(0x8008_6601, "FS_IOC_GETFLAGS", 4),
    io(0x8008_7601, "FS_IOC_GETVERSION", 4),
    io(0x8011_1500, "FS_IOC_GETFSUUID", FSUUID2),
    io(0x801C_581F, "FS_IOC_FSGETXATTR", FSXATTR),
    io(0x802C_542A, "TCGETS2", layout::KERNEL_TERMIOS2),
    io(0x8100_9431, "FS_IOC_GETFSLABEL", FSLABEL_MAX),
    io(0xC020_660B, "FS_IOC_FIEMAP", FIEMAP),
];

/// `sizeof(struct ifreq)`: a 16-byte name and a 24-byte union.
const IFREQ: u64 = 40;
/// `sizeof(struct ifconf)`: `ifc_len`, padding, and the buffer pointer.
const IFCONF: u64 = 16;
/// `sizeof(struct fsuuid2)`: a length byte and 16 bytes of uuid.
const FSUUID2: u64 = 17;
/// `sizeof(struct fsxattr)`.
const FSXATTR: u64 = 28;
/// `FSLABEL_MAX`: the label buffer.
const FSLABEL_MAX: u64 = 256;
/// `sizeof(struct fiemap)` before its extents.
const FIEMAP: u64 = 32;
/// `sizeof(struct fiemap_extent)`.
const FIEMAP_EXTENT: u64 = 56;
/// `FS_IOC_FIEMAP`'s and `SIOCGIFCONF`'s request numbers.
const FS_IOC_FIEMAP: u32 = 0xC020_660B;
const SIOCGIFCONF: u32 = 0x8912;

/// Looks up ioctl request `request`.
pub fn lookup_ioctl(request: u32) -> Option<&'static IoctlDesc> {
    IOCTLS
        .binary_search_by_key(&request, |d| d.request)
        .ok()
        .map(|i| &IOCTLS[i])
}

/// `ioctl(fd, request, arg)`. A failed ioctl writes nothing (the common case
/// being `ENOTTY` from `isatty`); an unknown request that succeeded is
/// unsupported.
///
/// `FS_IOC_FIEMAP` also stores `fm_mapped_extents` extents after its header
/// (at most `fm_extent_count`; none when that is 0, a count query), and
/// `SIOCGIFCONF` `ifc_len` bytes of `struct ifreq` records at `ifc_buf`
/// (none when `ifc_buf` is null, a length query).
pub(crate) fn ioctl(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let request = c.args[1] as u32;
    match lookup_ioctl(request) {
        Some(d) => {
            let arg = c.args[2];
            push(out, arg, d.writes);
            if request == FS_IOC_FIEMAP && arg != 0 {
                let mapped = read_u32(c, mem, arg + 20, "struct fiemap's fm_mapped_extents")?;
                let room = read_u32(c, mem, arg + 24, "struct fiemap's fm_extent_count")?;
                let n = u64::from(mapped.min(room));
                push(out, arg + FIEMAP, n * FIEMAP_EXTENT);
            } else if request == SIOCGIFCONF && arg != 0 {
                // An int: a negative one was refused (EINVAL) before.
                let len = read_u32(c, mem, arg, "struct ifconf's ifc_len")? as i32;
                let buf = read_u64(c, mem, arg + 8, "struct ifconf's ifc_buf")?;
                push(out, buf, u64::try_from(len).unwrap_or(0));
            }
            Ok(())
        }
        None => Err(Unsupported(format!(
            "ioctl {request:#x} (fd {})",
            c.args[0] as i32
        ))),
    }
}

// fcntl commands (linux/fcntl.h) that only take or return integers.
const F_DUPFD: i32 = 0;
const F_GETFD: i32 = 1;
const F_SETFD: i32 = 2;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const F_SETLK: i32 = 6;
const F_SETLKW: i32 = 7;
const F_SETOWN: i32 = 8;
const F_GETOWN: i32 = 9;
const F_SETSIG: i32 = 10;
const F_GETSIG: i32 = 11;
const F_SETOWN_EX: i32 = 15;
const F_OFD_SETLK: i32 = 37;
const F_OFD_SETLKW: i32 = 38;
const F_SETLEASE: i32 = 1024;
const F_GETLEASE: i32 = 1025;
const F_NOTIFY: i32 = 1026;
const F_DUPFD_QUERY: i32 = 1027;
const F_CREATED_QUERY: i32 = 1028;
const F_DUPFD_CLOEXEC: i32 = 1030;
const F_SETPIPE_SZ: i32 = 1031;
const F_GETPIPE_SZ: i32 = 1032;
const F_ADD_SEALS: i32 = 1033;
const F_GET_SEALS: i32 = 1034;
const F_SET_RW_HINT: i32 = 1036;
const F_SET_FILE_RW_HINT: i32 = 1038;
// fcntl commands that store through the pointer argument.
const F_GETLK: i32 = 5;
const F_GETOWN_EX: i32 = 16;
const F_OFD_GETLK: i32 = 36;
const F_GET_RW_HINT: i32 = 1035;
const F_GET_FILE_RW_HINT: i32 = 1037;

/// `fcntl(fd, cmd, arg)`: the lock queries store a `struct flock`,
/// `F_GETOWN_EX` a `struct f_owner_ex`, the write-hint queries a u64; the
/// other known commands write nothing, and an unknown one that succeeded is
/// unsupported.
pub(crate) fn fcntl(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    match c.args[1] as i32 {
        F_GETLK | F_OFD_GETLK => push(out, c.args[2], layout::FLOCK),
        F_GETOWN_EX => push(out, c.args[2], layout::F_OWNER_EX),
        F_GET_RW_HINT | F_GET_FILE_RW_HINT => push(out, c.args[2], 8),
        F_DUPFD | F_GETFD | F_SETFD | F_GETFL | F_SETFL | F_SETLK | F_SETLKW | F_SETOWN
        | F_GETOWN | F_SETSIG | F_GETSIG | F_SETOWN_EX | F_OFD_SETLK | F_OFD_SETLKW
        | F_SETLEASE | F_GETLEASE | F_NOTIFY | F_DUPFD_QUERY | F_CREATED_QUERY
        | F_DUPFD_CLOEXEC | F_SETPIPE_SZ | F_GETPIPE_SZ | F_ADD_SEALS | F_GET_SEALS
        | F_SET_RW_HINT | F_SET_FILE_RW_HINT => {}
        cmd => return Err(Unsupported(format!("fcntl command {cmd}"))),
    }
    Ok(())
}
