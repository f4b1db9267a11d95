//! Sizes and field offsets of the kernel structures the table reads or
//! records, for x86-64. Each is checked against the `libc` crate's
//! definition (or the kernel header's layout where `libc` has none) in the
//! tests at the bottom.
//!
//! These are the *kernel's* layouts, which differ from glibc's in places
//! (`struct termios` is 36 bytes to the kernel, 60 to glibc; `struct
//! sigaction` is 32 bytes to the kernel).

/// `struct stat` (fstat, newfstatat, ...).
pub const STAT: u64 = 144;
/// `struct statx`.
pub const STATX: u64 = 256;
/// `struct statfs`.
pub const STATFS: u64 = 120;
/// `struct timespec`.
pub const TIMESPEC: u64 = 16;
/// `struct timeval`.
pub const TIMEVAL: u64 = 16;
/// `struct timezone`.
pub const TIMEZONE: u64 = 8;
/// `struct itimerspec`.
pub const ITIMERSPEC: u64 = 32;
/// `struct itimerval`.
pub const ITIMERVAL: u64 = 32;
/// `struct tms`.
pub const TMS: u64 = 32;
/// `struct rusage`.
pub const RUSAGE: u64 = 144;
/// `struct rlimit` (and `struct rlimit64`).
pub const RLIMIT: u64 = 16;
/// `struct sysinfo`.
pub const SYSINFO: u64 = 112;
/// `struct utsname` (six 65-byte fields).
pub const UTSNAME: u64 = 390;
/// `siginfo_t`.
pub const SIGINFO: u64 = 128;
/// The kernel's `sigset_t` for the `rt_sig*` calls.
pub const KERNEL_SIGSET: u64 = 8;
/// The kernel's `struct sigaction`: handler, flags, restorer, mask.
pub const KERNEL_SIGACTION: u64 = 24 + KERNEL_SIGSET;
/// `stack_t`.
pub const STACK_T: u64 = 24;
/// `struct sched_param`.
pub const SCHED_PARAM: u64 = 4;
/// `struct flock`.
pub const FLOCK: u64 = 32;
/// `struct f_owner_ex`.
pub const F_OWNER_EX: u64 = 8;
/// `struct pollfd`.
pub const POLLFD: u64 = 8;
/// `struct epoll_event` (packed on x86-64).
pub const EPOLL_EVENT: u64 = 12;
/// `struct __user_cap_data_struct`.
pub const CAP_DATA: u64 = 12;
/// `struct seccomp_notif_sizes`: three u16.
pub const SECCOMP_NOTIF_SIZES: u64 = 6;
/// `struct iovec`.
pub const IOVEC: u64 = 16;
/// `struct sockaddr_storage`: the bound on an address the kernel copies out.
pub const SOCKADDR_STORAGE: u64 = 128;
/// The kernel's `struct termios` (`TCGETS`): four flags, `c_line`, 19 `c_cc`.
pub const KERNEL_TERMIOS: u64 = 36;
/// `struct termios2` (`TCGETS2`): the kernel termios plus two speeds.
pub const KERNEL_TERMIOS2: u64 = 44;
/// `struct termio` (`TCGETA`): four u16 flags, `c_line`, 8 `c_cc`, padding.
pub const KERNEL_TERMIO: u64 = 18;
/// `struct winsize`.
pub const WINSIZE: u64 = 8;
/// `struct msqid_ds` (the kernel's `msqid64_ds`).
pub const MSQID_DS: u64 = 120;
/// `struct msginfo`: eight ints.
pub const MSGINFO: u64 = 32;
/// `struct semid_ds` (the kernel's `semid64_ds`).
pub const SEMID_DS: u64 = 104;
/// `sizeof(struct shmid_ds)`.
pub const SHMID_DS: u64 = 112;
/// `sizeof(struct shminfo)` (five longs and four unused).
pub const SHMINFO: u64 = 72;
/// `sizeof(struct shm_info)`.
pub const SHM_INFO: u64 = 48;
/// `struct seminfo`: ten ints.
pub const SEMINFO: u64 = 40;
/// Page size on x86-64 (mincore reports one byte per page).
pub const PAGE: u64 = 4096;
/// Most iovecs/messages one call takes (`UIO_MAXIOV`).
pub const UIO_MAXIOV: u64 = 1024;

/// `struct msghdr` field offsets.
pub mod msghdr {
    /// `void *msg_name`.
    pub const NAME: u64 = 0;
    /// `socklen_t msg_namelen` (written back by recvmsg).
    pub const NAMELEN: u64 = 8;
    /// `struct iovec *msg_iov`.
    pub const IOV: u64 = 16;
    /// `size_t msg_iovlen`.
    pub const IOVLEN: u64 = 24;
    /// `void *msg_control`.
    pub const CONTROL: u64 = 32;
    /// `size_t msg_controllen` (written back by recvmsg).
    pub const CONTROLLEN: u64 = 40;
    /// `int msg_flags` (written back by recvmsg).
    pub const FLAGS: u64 = 48;
    /// Size of the structure (checked against libc; mmsghdr embeds it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub const SIZE: u64 = 56;
}

/// `struct mmsghdr`: a msghdr then `unsigned int msg_len`.
pub mod mmsghdr {
    /// `unsigned int msg_len`.
    pub const LEN: u64 = 56;
    /// Size of the structure (padded).
    pub const SIZE: u64 = 64;
}

/// `struct clone_args` (clone3) field offsets.
pub mod clone_args {
    /// `u64 flags`.
    pub const FLAGS: u64 = 0;
    /// `u64 pidfd` (pointer to int).
    pub const PIDFD: u64 = 8;
    /// `u64 child_tid` (pointer to pid_t).
    pub const CHILD_TID: u64 = 16;
    /// `u64 parent_tid` (pointer to pid_t).
    pub const PARENT_TID: u64 = 24;
    /// `CLONE_ARGS_SIZE_VER0`: the smallest size the kernel accepts.
    pub const SIZE_VER0: u64 = 64;
    /// `u64 set_tid_size` (how many ids `set_tid` points to), in
    /// `CLONE_ARGS_SIZE_VER1` (80 bytes) and later.
    pub const SET_TID_SIZE: u64 = 72;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn sizes_match_libc() {
        assert_eq!(STAT as usize, size_of::<libc::stat>());
        assert_eq!(STATX as usize, size_of::<libc::statx>());
        assert_eq!(STATFS as usize, size_of::<libc::statfs>());
        assert_eq!(TIMESPEC as usize, size_of::<libc::timespec>());
        assert_eq!(TIMEVAL as usize, size_of::<libc::timeval>());
        // struct timezone { int tz_minuteswest; int tz_dsttime; } (opaque in libc).
        assert_eq!(TIMEZONE as usize, 2 * size_of::<libc::c_int>());
        assert_eq!(ITIMERSPEC as usize, size_of::<libc::itimerspec>());
        assert_eq!(ITIMERVAL as usize, size_of::<libc::itimerval>());
        assert_eq!(TMS as usize, size_of::<libc::tms>());
        assert_eq!(RUSAGE as usize, size_of::<libc::rusage>());
        assert_eq!(RLIMIT as usize, size_of::<libc::rlimit64>());
        assert_eq!(SYSINFO as usize, size_of::<libc::sysinfo>());
        assert_eq!(UTSNAME as usize, size_of::<libc::utsname>());
        assert_eq!(SIGINFO as usize, size_of::<libc::siginfo_t>());
        assert_eq!(STACK_T as usize, size_of::<libc::stack_t>());
        assert_eq!(SCHED_PARAM as usize, size_of::<libc::sched_param>());
        assert_eq!(FLOCK as usize, size_of::<libc::flock>());
        // struct f_owner_ex { int type; pid_t pid; } (not in the libc crate).
        assert_eq!(F_OWNER_EX as usize, 2 * size_of::<libc::c_int>());
        assert_eq!(POLLFD as usize, size_of::<libc::pollfd>());
        assert_eq!(EPOLL_EVENT as usize, size_of::<libc::epoll_event>());
        assert_eq!(IOVEC as usize, size_of::<libc::iovec>());
        assert_eq!(
            SOCKADDR_STORAGE as usize,
            size_of::<libc::sockaddr_storage>()
        );
        assert_eq!(WINSIZE as usize, size_of::<libc::winsize>());
        assert_eq!(MSQID_DS as usize, size_of::<libc::msqid_ds>());
        assert_eq!(MSGINFO as usize, size_of::<libc::msginfo>());
        assert_eq!(SEMID_DS as usize, size_of::<libc::semid_ds>());
        assert_eq!(SHMID_DS as usize, size_of::<libc::shmid_ds>());
        assert_eq!(SEMINFO as usize, size_of::<libc::seminfo>());
        assert_eq!(KERNEL_TERMIOS2 as usize, size_of::<libc::termios2>());
        // termios2 = termios + c_ispeed + c_ospeed.
        assert_eq!(
            KERNEL_TERMIOS as usize,
            offset_of!(libc::termios2, c_ispeed)
        );
        assert_eq!(KERNEL_TERMIOS, 4 * 4 + 1 + 19);
        assert_eq!(KERNEL_TERMIO, (4 * 2 + 1 + 8u64).next_multiple_of(2));
        // glibc's sigset_t is 128 bytes; the kernel's is one u64.
        assert_eq!(KERNEL_SIGSET * 8, 64);
        assert_eq!(KERNEL_SIGACTION, 32);
        // The ioctl encodings carry the size of what they copy out.
        assert_eq!((libc::TCGETS2 >> 16) & 0x3fff, KERNEL_TERMIOS2);
    }

    #[test]
    fn msghdr_layout_matches_libc() {
        assert_eq!(msghdr::NAME as usize, offset_of!(libc::msghdr, msg_name));
        assert_eq!(
            msghdr::NAMELEN as usize,
            offset_of!(libc::msghdr, msg_namelen)
        );
        assert_eq!(msghdr::IOV as usize, offset_of!(libc::msghdr, msg_iov));
        assert_eq!(
            msghdr::IOVLEN as usize,
            offset_of!(libc::msghdr, msg_iovlen)
        );
        assert_eq!(
            msghdr::CONTROL as usize,
            offset_of!(libc::msghdr, msg_control)
        );
        assert_eq!(
            msghdr::CONTROLLEN as usize,
            offset_of!(libc::msghdr, msg_controllen)
        );
        assert_eq!(msghdr::FLAGS as usize, offset_of!(libc::msghdr, msg_flags));
        assert_eq!(msghdr::SIZE as usize, size_of::<libc::msghdr>());
        assert_eq!(mmsghdr::LEN as usize, offset_of!(libc::mmsghdr, msg_len));
        assert_eq!(mmsghdr::SIZE as usize, size_of::<libc::mmsghdr>());
    }
}
