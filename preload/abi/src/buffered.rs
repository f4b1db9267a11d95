//! Which syscalls the hook buffers, and where their output goes (the
//! recorder and the replayer read the same table).
//!
//! A buffered syscall's output is written by the kernel into the record (the
//! output pointer argument is redirected there) and then copied to the user's
//! pointer, so that replay, which fills the record instead of running the
//! syscall, reproduces the memory write through the same code.

/// Syscall numbers (x86-64) of the buffered set.
#[allow(missing_docs)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const FSTAT: u64 = 5;
    pub const POLL: u64 = 7;
    pub const LSEEK: u64 = 8;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const ACCESS: u64 = 21;
    pub const GETPID: u64 = 39;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const UNAME: u64 = 63;
    pub const SCHED_YIELD: u64 = 24;
    pub const FCNTL: u64 = 72;
    pub const FSYNC: u64 = 74;
    pub const FDATASYNC: u64 = 75;
    pub const FTRUNCATE: u64 = 77;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const UNLINK: u64 = 87;
    pub const READLINK: u64 = 89;
    pub const FCHMOD: u64 = 91;
    pub const UMASK: u64 = 95;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETUID: u64 = 102;
    pub const GETGID: u64 = 104;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const GETPPID: u64 = 110;
    pub const GETTID: u64 = 186;
    pub const TIME: u64 = 201;
    pub const FUTEX: u64 = 202;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const GETDENTS64: u64 = 217;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const EPOLL_WAIT: u64 = 232;
    pub const PWRITEV: u64 = 296;
    pub const OPENAT: u64 = 257;
    pub const MKDIRAT: u64 = 258;
    pub const NEWFSTATAT: u64 = 262;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const READLINKAT: u64 = 267;
    pub const FCHMODAT: u64 = 268;
    pub const FACCESSAT: u64 = 269;
    pub const RENAMEAT2: u64 = 316;
    pub const PRLIMIT64: u64 = 302;
    pub const GETRANDOM: u64 = 318;
    pub const STATX: u64 = 332;
    pub const FACCESSAT2: u64 = 439;
}

/// `sizeof(struct stat)` on x86-64.
pub const STAT_SIZE: u32 = 144;
/// `sizeof(struct statx)`.
pub const STATX_SIZE: u32 = 256;
/// `sizeof(struct timespec)`.
pub const TIMESPEC_SIZE: u32 = 16;
/// `sizeof(struct timeval)`.
pub const TIMEVAL_SIZE: u32 = 16;
/// `sizeof(time_t)`.
pub const TIME_T_SIZE: u32 = 8;
/// `sizeof(struct utsname)`.
pub const UTSNAME_SIZE: u32 = 390;
/// `sizeof(struct rlimit64)`.
pub const RLIMIT64_SIZE: u32 = 16;
/// The `fcntl` commands the hook takes: `F_GETFD`, `F_SETFD`, `F_GETFL`,
/// `F_SETFL` (no output, no new descriptor).
pub const FCNTL_PLAIN_CMDS: [u64; 4] = [1, 2, 3, 4];
/// `sizeof(struct pollfd)`.
pub const POLLFD_SIZE: u32 = 8;
/// `sizeof(struct epoll_event)` (packed on x86-64).
pub const EPOLL_EVENT_SIZE: u32 = 12;
/// `FUTEX_WAKE`.
pub const FUTEX_WAKE: u64 = 1;
/// The command bits of a futex op (without `FUTEX_PRIVATE_FLAG` and
/// `FUTEX_CLOCK_REALTIME`).
pub const FUTEX_CMD_MASK: u64 = 0x7f;

/// How long a syscall's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutLen {
    /// A fixed-size structure, written when the result is 0.
    Fixed(u32),
    /// A fixed-size value, written when the result is not an error
    /// (`time`: the result is the value).
    FixedOnSuccess(u32),
    /// Up to argument `n` bytes; the result says how many were written.
    Arg(usize),
    /// An array of argument `count` elements of `size` bytes, all written
    /// back when the result is not an error (`poll`'s `revents`).
    Array { count: usize, size: u32 },
    /// Up to argument `count` elements of `size` bytes; the result says how
    /// many were written (`epoll_wait`).
    Elements { count: usize, size: u32 },
}

impl OutLen {
    /// The most bytes the syscall may write, given its arguments.
    pub const fn max(self, args: &[u64; 6]) -> u64 {
        // No indexing that can panic: the preload library has no panic
        // machinery (an out-of-range index gives an impossible length).
        const fn arg(args: &[u64; 6], i: usize) -> u64 {
            if i < 6 {
                args[i]
            } else {
                u64::MAX
            }
        }
        match self {
            OutLen::Fixed(n) | OutLen::FixedOnSuccess(n) => n as u64,
            OutLen::Arg(i) => arg(args, i),
            OutLen::Array { count, size } | OutLen::Elements { count, size } => {
                arg(args, count).saturating_mul(size as u64)
            }
        }
    }

    /// The bytes written, given the result and the maximum.
    pub const fn written(self, result: i64, max: u64) -> u64 {
        if result < 0 {
            return 0;
        }
        let n = match self {
            OutLen::Fixed(n) => {
                if result == 0 {
                    n as u64
                } else {
                    0
                }
            }
            OutLen::FixedOnSuccess(n) => n as u64,
            OutLen::Arg(_) => result as u64,
            OutLen::Array { .. } => max,
            OutLen::Elements { size, .. } => (result as u64).saturating_mul(size as u64),
        };
        if n < max {
            n
        } else {
            max
        }
    }
}

/// The output of a buffered syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// Which argument is the output pointer.
    pub ptr_arg: usize,
    /// How long the output is.
    pub len: OutLen,
    /// A null pointer means no output (`time(NULL)`), not an error.
    pub nullable: bool,
    /// The kernel also reads it (`poll`'s array): the hook copies it into
    /// the record before the syscall.
    pub in_out: bool,
}

/// How the hook handles a buffered syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Its output, if it writes user memory.
    pub output: Option<Output>,
    /// It may block indefinitely (pipes, sockets, FIFOs): buffered only with
    /// a desched event armed around it.
    pub may_block: bool,
}

const fn plan(output: Option<Output>, may_block: bool) -> Option<Plan> {
    Some(Plan { output, may_block })
}

const fn out(ptr_arg: usize, len: OutLen) -> Option<Output> {
    Some(Output {
        ptr_arg,
        len,
        nullable: false,
        in_out: false,
    })
}

/// The plan for syscall `nr`, or `None` when it is not buffered.
pub const fn plan_for(nr: u64) -> Option<Plan> {
    match nr {
        nr::READ => plan(out(1, OutLen::Arg(2)), true),
        nr::PREAD64 => plan(out(1, OutLen::Arg(2)), false),
        nr::WRITE => plan(None, true),
        nr::OPENAT => plan(None, true),
        nr::PWRITE64 | nr::CLOSE | nr::LSEEK | nr::GETPID | nr::GETTID => plan(None, false),
        nr::CLOCK_GETTIME => plan(out(1, OutLen::Fixed(TIMESPEC_SIZE)), false),
        nr::GETRANDOM => plan(out(0, OutLen::Arg(1)), false),
        nr::FSTAT => plan(out(1, OutLen::Fixed(STAT_SIZE)), false),
        nr::NEWFSTATAT => plan(out(2, OutLen::Fixed(STAT_SIZE)), false),
        nr::STATX => plan(out(4, OutLen::Fixed(STATX_SIZE)), false),
        nr::OPEN => plan(None, true),
        nr::WRITEV | nr::SENDTO | nr::SENDMSG => plan(None, true),
        nr::PWRITEV => plan(None, false),
        // Identity, permissions, the file system: no output but the
        // result; replay emulates them like traced ones.
        nr::GETUID | nr::GETGID | nr::GETEUID | nr::GETEGID | nr::GETPPID | nr::UMASK => {
            plan(None, false)
        }
        nr::ACCESS | nr::FACCESSAT | nr::FACCESSAT2 | nr::FCNTL => plan(None, false),
        nr::UNLINK
        | nr::UNLINKAT
        | nr::MKDIR
        | nr::MKDIRAT
        | nr::RENAME
        | nr::RENAMEAT
        | nr::RENAMEAT2
        | nr::FCHMOD
        | nr::FCHMODAT
        | nr::FTRUNCATE => plan(None, false),
        nr::FSYNC | nr::FDATASYNC => plan(None, false),
        // Only while no other thread waits to run (`locals_flags`): then
        // it is the recorder's cue to switch, and bails.
        nr::SCHED_YIELD => plan(None, false),
        nr::READLINK => plan(out(1, OutLen::Arg(2)), false),
        nr::READLINKAT => plan(out(2, OutLen::Arg(3)), false),
        nr::UNAME => plan(out(0, OutLen::Fixed(UTSNAME_SIZE)), false),
        // The kernel copies the mask's bytes and returns how many.
        nr::SCHED_GETAFFINITY => plan(out(2, OutLen::Arg(1)), false),
        // Only reading a limit (`args_ok`): setting one must happen in
        // replay too.
        nr::PRLIMIT64 => plan(out(3, OutLen::Fixed(RLIMIT64_SIZE)), false),
        // Its output is scattered over the program's iovecs: the hook
        // reads into the record through one iovec of its own and scatters
        // the bytes itself (`buffer_readv`).
        nr::READV => plan(None, true),
        // Likewise, with the message header the kernel fills (its flags)
        // in the record too; only without an address or control data.
        nr::RECVMSG => plan(None, true),
        nr::RECVFROM => plan(out(1, OutLen::Arg(2)), true),
        nr::GETDENTS64 => plan(out(1, OutLen::Arg(2)), false),
        nr::GETTIMEOFDAY => plan(out(0, OutLen::Fixed(TIMEVAL_SIZE)), false),
        nr::TIME => plan(
            Some(Output {
                ptr_arg: 0,
                len: OutLen::FixedOnSuccess(TIME_T_SIZE),
                nullable: true,
                in_out: false,
            }),
            false,
        ),
        nr::FUTEX => plan(None, false),
        nr::POLL => plan(
            Some(Output {
                ptr_arg: 0,
                len: OutLen::Array {
                    count: 1,
                    size: POLLFD_SIZE,
                },
                nullable: false,
                in_out: true,
            }),
            true,
        ),
        nr::EPOLL_WAIT => plan(
            out(
                1,
                OutLen::Elements {
                    count: 2,
                    size: EPOLL_EVENT_SIZE,
                },
            ),
            true,
        ),
        _ => None,
    }
}

/// Whether the hook takes syscall `nr` (in the table) with these
/// arguments: only `FUTEX_WAKE` of the futex ops, `gettimeofday` without a
/// timezone, `recvfrom` without a source address, `prlimit64` without a new
/// limit.
pub const fn args_ok(nr: u64, args: &[u64; 6]) -> bool {
    match nr {
        nr::FUTEX => args[1] & FUTEX_CMD_MASK == FUTEX_WAKE,
        nr::GETTIMEOFDAY => args[1] == 0,
        nr::RECVFROM => args[4] == 0,
        nr::PRLIMIT64 => args[2] == 0,
        nr::FCNTL => {
            args[1] == FCNTL_PLAIN_CMDS[0]
                || args[1] == FCNTL_PLAIN_CMDS[1]
                || args[1] == FCNTL_PLAIN_CMDS[2]
                || args[1] == FCNTL_PLAIN_CMDS[3]
        }
        _ => true,
    }
}

/// How a write to the program's output passes its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputWrite {
    /// `write`, `pwrite64`: a buffer (argument 1) and its length (2).
    Contiguous,
    /// `writev`, `pwritev`: iovecs (argument 1) and their count (2).
    Vectored,
}

/// The most bytes one buffered write to the program's output may ask for
/// (a larger one is traced): 8 pages, more than a stdio or Rust stdout
/// buffer holds, an eighth of the buffer.
pub const OUTPUT_WRITE_MAX: u64 = 32 << 10;
const _: () = assert!(OUTPUT_WRITE_MAX <= super::area::BUFFER_SIZE / 8);

/// How the hook buffers syscall `nr` when its descriptor is in the output
/// table: with the bytes it wrote in the record. `None`: it bails
/// (`sendto` and `sendmsg`, which the recorder does not count as output).
pub const fn output_write(nr: u64) -> Option<OutputWrite> {
    match nr {
        nr::WRITE | nr::PWRITE64 => Some(OutputWrite::Contiguous),
        nr::WRITEV | nr::PWRITEV => Some(OutputWrite::Vectored),
        _ => None,
    }
}

/// Whether syscall `nr` writes the data of its first argument's descriptor
/// (the hook checks the descriptor against the output table).
pub const fn writes_to_fd(nr: u64) -> bool {
    matches!(
        nr,
        nr::WRITE | nr::PWRITE64 | nr::WRITEV | nr::PWRITEV | nr::SENDTO | nr::SENDMSG
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_libc() {
        let pairs = [
            (nr::READ, libc::SYS_read),
            (nr::WRITE, libc::SYS_write),
            (nr::CLOSE, libc::SYS_close),
            (nr::FSTAT, libc::SYS_fstat),
            (nr::LSEEK, libc::SYS_lseek),
            (nr::IOCTL, libc::SYS_ioctl),
            (nr::PREAD64, libc::SYS_pread64),
            (nr::PWRITE64, libc::SYS_pwrite64),
            (nr::GETPID, libc::SYS_getpid),
            (nr::GETTID, libc::SYS_gettid),
            (nr::CLOCK_GETTIME, libc::SYS_clock_gettime),
            (nr::OPENAT, libc::SYS_openat),
            (nr::NEWFSTATAT, libc::SYS_newfstatat),
            (nr::GETRANDOM, libc::SYS_getrandom),
            (nr::STATX, libc::SYS_statx),
            (nr::OPEN, libc::SYS_open),
            (nr::POLL, libc::SYS_poll),
            (nr::WRITEV, libc::SYS_writev),
            (nr::SENDTO, libc::SYS_sendto),
            (nr::RECVFROM, libc::SYS_recvfrom),
            (nr::GETTIMEOFDAY, libc::SYS_gettimeofday),
            (nr::TIME, libc::SYS_time),
            (nr::FUTEX, libc::SYS_futex),
            (nr::GETDENTS64, libc::SYS_getdents64),
            (nr::EPOLL_WAIT, libc::SYS_epoll_wait),
            (nr::READV, libc::SYS_readv),
            (nr::PWRITEV, libc::SYS_pwritev),
            (nr::SENDMSG, libc::SYS_sendmsg),
            (nr::RECVMSG, libc::SYS_recvmsg),
            (nr::ACCESS, libc::SYS_access),
            (nr::UNAME, libc::SYS_uname),
            (nr::SCHED_GETAFFINITY, libc::SYS_sched_getaffinity),
            (nr::PRLIMIT64, libc::SYS_prlimit64),
            (nr::FCNTL, libc::SYS_fcntl),
            (nr::FSYNC, libc::SYS_fsync),
            (nr::FDATASYNC, libc::SYS_fdatasync),
            (nr::FTRUNCATE, libc::SYS_ftruncate),
            (nr::RENAME, libc::SYS_rename),
            (nr::MKDIR, libc::SYS_mkdir),
            (nr::UNLINK, libc::SYS_unlink),
            (nr::READLINK, libc::SYS_readlink),
            (nr::FCHMOD, libc::SYS_fchmod),
            (nr::UMASK, libc::SYS_umask),
            (nr::GETUID, libc::SYS_getuid),
            (nr::GETGID, libc::SYS_getgid),
            (nr::GETEUID, libc::SYS_geteuid),
            (nr::GETEGID, libc::SYS_getegid),
            (nr::GETPPID, libc::SYS_getppid),
            (nr::MKDIRAT, libc::SYS_mkdirat),
            (nr::UNLINKAT, libc::SYS_unlinkat),
            (nr::RENAMEAT, libc::SYS_renameat),
            (nr::READLINKAT, libc::SYS_readlinkat),
            (nr::FCHMODAT, libc::SYS_fchmodat),
            (nr::FACCESSAT, libc::SYS_faccessat),
            (nr::RENAMEAT2, libc::SYS_renameat2),
            (nr::FACCESSAT2, libc::SYS_faccessat2),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours, theirs as u64);
        }
        assert_eq!(STAT_SIZE as usize, core::mem::size_of::<libc::stat>());
        assert_eq!(STATX_SIZE as usize, core::mem::size_of::<libc::statx>());
        assert_eq!(
            TIMESPEC_SIZE as usize,
            core::mem::size_of::<libc::timespec>()
        );
        assert_eq!(TIMEVAL_SIZE as usize, core::mem::size_of::<libc::timeval>());
        assert_eq!(TIME_T_SIZE as usize, core::mem::size_of::<libc::time_t>());
        assert_eq!(POLLFD_SIZE as usize, core::mem::size_of::<libc::pollfd>());
        assert_eq!(
            EPOLL_EVENT_SIZE as usize,
            core::mem::size_of::<libc::epoll_event>()
        );
        assert_eq!(FUTEX_WAKE, libc::FUTEX_WAKE as u64);
        assert_eq!(UTSNAME_SIZE as usize, core::mem::size_of::<libc::utsname>());
        assert_eq!(
            FCNTL_PLAIN_CMDS,
            [
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_GETFL as u64,
                libc::F_SETFL as u64
            ]
        );
    }

    #[test]
    fn output_shapes() {
        assert_eq!(
            plan_for(nr::READ).and_then(|p| p.output),
            out(1, OutLen::Arg(2))
        );
        assert_eq!(
            plan_for(nr::STATX)
                .and_then(|p| p.output)
                .map(|o| o.ptr_arg),
            Some(4)
        );
        assert!(plan_for(nr::WRITE).is_some_and(|p| p.may_block && p.output.is_none()));
        // Never buffered: process-shape syscalls and unknown numbers.
        for n in [56, 57, 58, 59, 15, 1000] {
            assert_eq!(plan_for(n), None, "syscall {n}");
        }
        // Only futex wakes; gettimeofday without a timezone; recvfrom
        // without a source address.
        assert!(args_ok(nr::FUTEX, &[0x1000, 1 | 128, 1, 0, 0, 0]));
        assert!(!args_ok(nr::FUTEX, &[0x1000, 128, 1, 0, 0, 0]));
        assert!(!args_ok(nr::GETTIMEOFDAY, &[0x1000, 0x2000, 0, 0, 0, 0]));
        assert!(!args_ok(nr::RECVFROM, &[3, 0x1000, 10, 0, 0x2000, 0x3000]));
        // fcntl: not F_DUPFD (a new descriptor), not locks (output).
        assert!(args_ok(nr::FCNTL, &[3, 3, 0, 0, 0, 0]));
        assert!(!args_ok(nr::FCNTL, &[3, 0, 10, 0, 0, 0]));
        assert!(!args_ok(nr::FCNTL, &[3, 5, 0x1000, 0, 0, 0]));
    }

    #[test]
    fn output_lengths() {
        let args = [0x1000, 3, 5, 0, 0, 0];
        let poll = plan_for(nr::POLL).and_then(|p| p.output).expect("poll").len;
        assert_eq!(poll.max(&args), 24);
        assert_eq!(poll.written(1, 24), 24);
        assert_eq!(poll.written(-4, 24), 0);
        let epoll = plan_for(nr::EPOLL_WAIT)
            .and_then(|p| p.output)
            .expect("ep")
            .len;
        assert_eq!(epoll.max(&args), 60);
        assert_eq!(epoll.written(2, 60), 24);
        assert_eq!(epoll.written(9, 60), 60);
        let time = plan_for(nr::TIME).and_then(|p| p.output).expect("time");
        assert!(time.nullable);
        assert_eq!(time.len.written(1_700_000_000, 8), 8);
        let stat = OutLen::Fixed(STAT_SIZE);
        assert_eq!(stat.written(0, 144), 144);
        assert_eq!(stat.written(1, 144), 0);
    }

    #[test]
    fn output_writes_are_the_write_family() {
        assert_eq!(output_write(nr::WRITE), Some(OutputWrite::Contiguous));
        assert_eq!(output_write(nr::PWRITE64), Some(OutputWrite::Contiguous));
        assert_eq!(output_write(nr::WRITEV), Some(OutputWrite::Vectored));
        assert_eq!(output_write(nr::PWRITEV), Some(OutputWrite::Vectored));
        for n in [nr::SENDTO, nr::SENDMSG, nr::READ] {
            assert_eq!(output_write(n), None);
        }
        // Every output write is a buffered one that writes to its fd.
        for n in [nr::WRITE, nr::PWRITE64, nr::WRITEV, nr::PWRITEV] {
            assert!(writes_to_fd(n) && plan_for(n).is_some());
        }
    }
}
