//! The table itself: every syscall the recorder knows, by x86-64 number.
//!
//! Each row says whether the call may block on another task (the recorder
//! then lets other threads run while it is in the kernel), what replay does
//! with it, and which function computes the memory it wrote. The numbers are
//! written out here and checked against the `libc` crate's `SYS_*` constants
//! in the tests; the output functions live in the sibling modules by area.
//!
//! Choices worth knowing when reading the rows:
//! - `may_block` is true for anything that can wait for another thread or
//!   process: I/O on descriptors that may be pipes, sockets, ttys or FIFOs
//!   (including `open`, which blocks on a FIFO), futex, the poll family,
//!   sleeps, waits, file locks (`fcntl` for `F_SETLKW`, `flock`), `ioctl`
//!   (`TCSBRK`/`TCSETSW` wait for the tty to drain), and `clone`/`clone3`/
//!   `vfork`, whose `CLONE_VFORK` parent waits for the child, and `execve`/
//!   `execveat`, which in a multi-threaded process waits for the other
//!   threads to exit (each stopping at its ptrace exit event). The positional
//!   calls `pread64`/`pwrite64`/`preadv`/`pwritev` are false: pipes, sockets
//!   and ttys refuse them with `ESPIPE`. (`preadv2`/`pwritev2` accept offset
//!   -1, meaning the current position, so they can block.)
//! - `mlock*` and `msync` are emulated: they do not change what memory holds,
//!   and executing them in replay could only fail differently (limits) or
//!   write to files.
//! - `set_tid_address` returns the caller's tid, which replay must translate
//!   like the ids `Clone` returns.
//! - A few regions cover more than the kernel may have written, when the
//!   exact extent is not knowable at the exit stop (a returned address is
//!   bounded by 128 bytes, not by the caller's buffer length, which the
//!   kernel overwrote; `waitid`'s whole siginfo; fd_sets sized by `nfds`
//!   before the kernel clamps it). Recording bytes the kernel left alone is
//!   harmless: the recorder stores what memory holds at that exit stop.
//! - `ptrace` never runs: the recorder emulates it between processes of the
//!   recording and fails the rest with EPERM at its entry (the program is
//!   traced by us already); a request that reads the tracee stores at
//!   `data` ([`ptrace`](super::process::ptrace)).
//! - `modify_ldt` is executed: the LDT it writes is task state later
//!   segment loads use; the rest of the administration calls (`acct`,
//!   `iopl`/`ioperm`, `quotactl`, NUMA policy, `ioprio_*`, clock discipline)
//!   are emulated: what they change is outside the recording, or invisible
//!   to the program but through calls that are recorded themselves.
//! - `restart_syscall` is described by the call it resumes, through
//!   [`restarted_outputs`]; on its own it is unsupported.

use super::admin::{
    get_mempolicy, keyctl, modify_ldt, mq_timedreceive, quotactl, sysfs, syslog, MQ_ATTR, TIMEX,
};
use super::aio::{io_getevents, io_setup, io_submit};
use super::fdctl::{fcntl, ioctl};
use super::ipc::{msgctl, msgrcv, semctl, shmat, shmctl};
use super::layout::{
    EPOLL_EVENT, ITIMERSPEC, ITIMERVAL, KERNEL_SIGACTION, RLIMIT, RUSAGE, SCHED_PARAM, STACK_T,
    STAT, STATFS, STATX, SYSINFO, TIMESPEC, TIMEVAL, TIMEZONE, TMS, UTSNAME,
};
use super::net::{getsockopt, recvfrom, recvmmsg, recvmsg, sendmmsg, sockaddr_out};
use super::newer::{move_pages, name_to_handle_at, process_madvise, statmount, CACHESTAT};
use super::observe::{bpf, perf_event_open, process_vm_readv, process_vm_writev};
use super::outputs::{
    fixed, fixed2, getgroups, io_uring, iov_ret, mincore, none, ret_bytes, ret_bytes_sized,
    ret_elems, sched_setattr, sized_by_arg, three_u32, unsupported,
};
use super::poll::{poll, ppoll, select};
use super::process::{
    arch_prctl, capget, clock_nanosleep, clone, clone3, futex, nanosleep, prctl, ptrace,
    restart_syscall, rt_sigtimedwait, seccomp, wait4, waitid,
};
use super::{Call, MemReader, OutputsFn, Region, ReplayAction, SyscallDesc, Unsupported};

const fn d(
    nr: i64,
    name: &'static str,
    may_block: bool,
    replay: ReplayAction,
    outputs: OutputsFn,
) -> SyscallDesc {
    SyscallDesc {
        nr,
        name,
        may_block,
        replay,
        outputs,
    }
}

use ReplayAction::*;

/// Every syscall the recorder knows, sorted by number.
pub static TABLE: &[SyscallDesc] = &[
    d(0, "read", true, Emulate, ret_bytes::<1, 2>),
    d(1, "write", true, Emulate, none),
    d(2, "open", true, Emulate, none),
    d(3, "close", false, Emulate, none),
    d(4, "stat", false, Emulate, fixed::<1, STAT>),
    d(5, "fstat", false, Emulate, fixed::<1, STAT>),
    d(6, "lstat", false, Emulate, fixed::<1, STAT>),
    d(7, "poll", true, Emulate, poll),
    d(8, "lseek", false, Emulate, none),
    d(9, "mmap", false, Mmap, none),
    d(10, "mprotect", false, Execute, none),
    d(11, "munmap", false, Execute, none),
    d(12, "brk", false, Execute, none),
    d(
        13,
        "rt_sigaction",
        false,
        Execute,
        fixed::<2, KERNEL_SIGACTION>,
    ),
    d(14, "rt_sigprocmask", false, Execute, sized_by_arg::<2, 3>),
    d(15, "rt_sigreturn", false, ExecuteUnchecked, none),
    d(16, "ioctl", true, Emulate, ioctl),
    d(17, "pread64", false, Emulate, ret_bytes::<1, 2>),
    d(18, "pwrite64", false, Emulate, none),
    d(19, "readv", true, Emulate, iov_ret::<1, 2>),
    d(20, "writev", true, Emulate, none),
    d(21, "access", false, Emulate, none),
    d(22, "pipe", false, Emulate, fixed::<0, 8>),
    d(23, "select", true, Emulate, select),
    d(24, "sched_yield", false, Emulate, none),
    d(25, "mremap", false, Execute, none),
    d(26, "msync", false, Emulate, none),
    d(27, "mincore", false, Emulate, mincore),
    d(28, "madvise", false, Execute, none),
    d(29, "shmget", false, Emulate, none),
    d(30, "shmat", false, Emulate, shmat),
    d(31, "shmctl", false, Emulate, shmctl),
    d(32, "dup", false, Emulate, none),
    d(33, "dup2", false, Emulate, none),
    d(34, "pause", true, Emulate, none),
    d(35, "nanosleep", true, Emulate, nanosleep),
    d(36, "getitimer", false, Emulate, fixed::<1, ITIMERVAL>),
    d(37, "alarm", false, Emulate, none),
    d(38, "setitimer", false, Emulate, fixed::<2, ITIMERVAL>),
    d(39, "getpid", false, Emulate, none),
    d(40, "sendfile", true, Emulate, fixed::<2, 8>),
    d(41, "socket", false, Emulate, none),
    d(42, "connect", true, Emulate, none),
    d(43, "accept", true, Emulate, sockaddr_out::<1, 2>),
    d(44, "sendto", true, Emulate, none),
    d(45, "recvfrom", true, Emulate, recvfrom),
    d(46, "sendmsg", true, Emulate, none),
    d(47, "recvmsg", true, Emulate, recvmsg),
    d(48, "shutdown", false, Emulate, none),
    d(49, "bind", false, Emulate, none),
    d(50, "listen", false, Emulate, none),
    d(51, "getsockname", false, Emulate, sockaddr_out::<1, 2>),
    d(52, "getpeername", false, Emulate, sockaddr_out::<1, 2>),
    d(53, "socketpair", false, Emulate, fixed::<3, 8>),
    d(54, "setsockopt", false, Emulate, none),
    d(55, "getsockopt", false, Emulate, getsockopt),
    d(56, "clone", true, Clone, clone),
    d(57, "fork", false, Clone, none),
    d(58, "vfork", true, Clone, none),
    d(59, "execve", true, Execve, none),
    d(60, "exit", false, Exit, none),
    d(61, "wait4", true, Emulate, wait4),
    d(62, "kill", false, Emulate, none),
    d(63, "uname", false, Emulate, fixed::<0, UTSNAME>),
    d(64, "semget", false, Emulate, none),
    d(65, "semop", true, Emulate, none),
    d(66, "semctl", false, Emulate, semctl),
    d(67, "shmdt", false, Emulate, none),
    d(68, "msgget", false, Emulate, none),
    d(69, "msgsnd", true, Emulate, none),
    d(70, "msgrcv", true, Emulate, msgrcv),
    d(71, "msgctl", false, Emulate, msgctl),
    d(72, "fcntl", true, Emulate, fcntl),
    d(73, "flock", true, Emulate, none),
    d(74, "fsync", false, Emulate, none),
    d(75, "fdatasync", false, Emulate, none),
    d(76, "truncate", false, Emulate, none),
    d(77, "ftruncate", false, Emulate, none),
    d(78, "getdents", false, Emulate, ret_bytes::<1, 2>),
    d(79, "getcwd", false, Emulate, ret_bytes::<0, 1>),
    d(80, "chdir", false, Emulate, none),
    d(81, "fchdir", false, Emulate, none),
    d(82, "rename", false, Emulate, none),
    d(83, "mkdir", false, Emulate, none),
    d(84, "rmdir", false, Emulate, none),
    d(85, "creat", true, Emulate, none),
    d(86, "link", false, Emulate, none),
    d(87, "unlink", false, Emulate, none),
    d(88, "symlink", false, Emulate, none),
    d(89, "readlink", false, Emulate, ret_bytes::<1, 2>),
    d(90, "chmod", false, Emulate, none),
    d(91, "fchmod", false, Emulate, none),
    d(92, "chown", false, Emulate, none),
    d(93, "fchown", false, Emulate, none),
    d(94, "lchown", false, Emulate, none),
    d(95, "umask", false, Emulate, none),
    d(
        96,
        "gettimeofday",
        false,
        Emulate,
        fixed2::<0, TIMEVAL, 1, TIMEZONE>,
    ),
    d(97, "getrlimit", false, Emulate, fixed::<1, RLIMIT>),
    d(98, "getrusage", false, Emulate, fixed::<1, RUSAGE>),
    d(99, "sysinfo", false, Emulate, fixed::<0, SYSINFO>),
    d(100, "times", false, Emulate, fixed::<0, TMS>),
    d(101, "ptrace", false, Emulate, ptrace),
    d(102, "getuid", false, Emulate, none),
    d(103, "syslog", false, Emulate, syslog),
    d(104, "getgid", false, Emulate, none),
    d(105, "setuid", false, Emulate, none),
    d(106, "setgid", false, Emulate, none),
    d(107, "geteuid", false, Emulate, none),
    d(108, "getegid", false, Emulate, none),
    d(109, "setpgid", false, Emulate, none),
    d(110, "getppid", false, Emulate, none),
    d(111, "getpgrp", false, Emulate, none),
    d(112, "setsid", false, Emulate, none),
    d(113, "setreuid", false, Emulate, none),
    d(114, "setregid", false, Emulate, none),
    d(115, "getgroups", false, Emulate, getgroups),
    d(116, "setgroups", false, Emulate, none),
    d(117, "setresuid", false, Emulate, none),
    d(118, "getresuid", false, Emulate, three_u32),
    d(119, "setresgid", false, Emulate, none),
    d(120, "getresgid", false, Emulate, three_u32),
    d(121, "getpgid", false, Emulate, none),
    d(122, "setfsuid", false, Emulate, none),
    d(123, "setfsgid", false, Emulate, none),
    d(124, "getsid", false, Emulate, none),
    d(125, "capget", false, Emulate, capget),
    d(126, "capset", false, Emulate, none),
    d(127, "rt_sigpending", false, Emulate, sized_by_arg::<0, 1>),
    d(128, "rt_sigtimedwait", true, Emulate, rt_sigtimedwait),
    d(129, "rt_sigqueueinfo", false, Emulate, none),
    d(130, "rt_sigsuspend", true, Emulate, none),
    d(131, "sigaltstack", false, Execute, fixed::<1, STACK_T>),
    d(132, "utime", false, Emulate, none),
    d(133, "mknod", false, Emulate, none),
    d(135, "personality", false, Execute, none),
    d(137, "statfs", false, Emulate, fixed::<1, STATFS>),
    d(138, "fstatfs", false, Emulate, fixed::<1, STATFS>),
    d(139, "sysfs", false, Emulate, sysfs),
    d(140, "getpriority", false, Emulate, none),
    d(141, "setpriority", false, Emulate, none),
    d(142, "sched_setparam", false, Emulate, none),
    d(
        143,
        "sched_getparam",
        false,
        Emulate,
        fixed::<1, SCHED_PARAM>,
    ),
    d(144, "sched_setscheduler", false, Emulate, none),
    d(145, "sched_getscheduler", false, Emulate, none),
    d(146, "sched_get_priority_max", false, Emulate, none),
    d(147, "sched_get_priority_min", false, Emulate, none),
    d(
        148,
        "sched_rr_get_interval",
        false,
        Emulate,
        fixed::<1, TIMESPEC>,
    ),
    d(149, "mlock", false, Emulate, none),
    d(150, "munlock", false, Emulate, none),
    d(151, "mlockall", false, Emulate, none),
    d(152, "munlockall", false, Emulate, none),
    d(154, "modify_ldt", false, Execute, modify_ldt),
    d(155, "pivot_root", false, Emulate, none),
    d(157, "prctl", false, Emulate, prctl),
    d(158, "arch_prctl", false, Execute, arch_prctl),
    d(159, "adjtimex", false, Emulate, fixed::<0, TIMEX>),
    d(160, "setrlimit", false, Emulate, none),
    d(161, "chroot", false, Emulate, none),
    d(162, "sync", false, Emulate, none),
    d(163, "acct", false, Emulate, none),
    d(165, "mount", false, Emulate, none),
    d(166, "umount2", false, Emulate, none),
    d(170, "sethostname", false, Emulate, none),
    d(171, "setdomainname", false, Emulate, none),
    d(172, "iopl", false, Emulate, none),
    d(173, "ioperm", false, Emulate, none),
    d(179, "quotactl", false, Emulate, quotactl),
    d(186, "gettid", false, Emulate, none),
    d(187, "readahead", false, Emulate, none),
    d(188, "setxattr", false, Emulate, none),
    d(189, "lsetxattr", false, Emulate, none),
    d(190, "fsetxattr", false, Emulate, none),
    d(191, "getxattr", false, Emulate, ret_bytes_sized::<2, 3>),
    d(192, "lgetxattr", false, Emulate, ret_bytes_sized::<2, 3>),
    d(193, "fgetxattr", false, Emulate, ret_bytes_sized::<2, 3>),
    d(194, "listxattr", false, Emulate, ret_bytes_sized::<1, 2>),
    d(195, "llistxattr", false, Emulate, ret_bytes_sized::<1, 2>),
    d(196, "flistxattr", false, Emulate, ret_bytes_sized::<1, 2>),
    d(197, "removexattr", false, Emulate, none),
    d(198, "lremovexattr", false, Emulate, none),
    d(199, "fremovexattr", false, Emulate, none),
    d(200, "tkill", false, Emulate, none),
    d(201, "time", false, Emulate, fixed::<0, 8>),
    d(202, "futex", true, Emulate, futex),
    d(203, "sched_setaffinity", false, Emulate, none),
    d(204, "sched_getaffinity", false, Emulate, ret_bytes::<2, 1>),
    d(206, "io_setup", false, Emulate, io_setup),
    d(207, "io_destroy", false, Emulate, none),
    d(208, "io_getevents", true, Emulate, io_getevents),
    d(209, "io_submit", true, Emulate, io_submit),
    // Since Linux 4.19 a cancel's event goes to the ring, not to `result`.
    d(210, "io_cancel", false, Emulate, none),
    d(213, "epoll_create", false, Emulate, none),
    d(217, "getdents64", false, Emulate, ret_bytes::<1, 2>),
    d(218, "set_tid_address", false, Execute, none),
    d(219, "restart_syscall", true, Emulate, restart_syscall),
    d(220, "semtimedop", true, Emulate, none),
    d(221, "fadvise64", false, Emulate, none),
    d(222, "timer_create", false, Emulate, fixed::<2, 4>),
    d(223, "timer_settime", false, Emulate, fixed::<3, ITIMERSPEC>),
    d(224, "timer_gettime", false, Emulate, fixed::<1, ITIMERSPEC>),
    d(225, "timer_getoverrun", false, Emulate, none),
    d(226, "timer_delete", false, Emulate, none),
    d(227, "clock_settime", false, Emulate, none),
    d(228, "clock_gettime", false, Emulate, fixed::<1, TIMESPEC>),
    d(229, "clock_getres", false, Emulate, fixed::<1, TIMESPEC>),
    d(230, "clock_nanosleep", true, Emulate, clock_nanosleep),
    d(231, "exit_group", false, Exit, none),
    d(
        232,
        "epoll_wait",
        true,
        Emulate,
        ret_elems::<1, EPOLL_EVENT>,
    ),
    d(233, "epoll_ctl", false, Emulate, none),
    d(234, "tgkill", false, Emulate, none),
    d(235, "utimes", false, Emulate, none),
    d(237, "mbind", false, Emulate, none),
    d(238, "set_mempolicy", false, Emulate, none),
    d(239, "get_mempolicy", false, Emulate, get_mempolicy),
    d(240, "mq_open", false, Emulate, none),
    d(241, "mq_unlink", false, Emulate, none),
    d(242, "mq_timedsend", true, Emulate, none),
    d(243, "mq_timedreceive", true, Emulate, mq_timedreceive),
    d(244, "mq_notify", false, Emulate, none),
    d(245, "mq_getsetattr", false, Emulate, fixed::<2, MQ_ATTR>),
    d(247, "waitid", true, Emulate, waitid),
    d(248, "add_key", false, Emulate, none),
    d(249, "request_key", true, Emulate, none),
    d(250, "keyctl", true, Emulate, keyctl),
    d(251, "ioprio_set", false, Emulate, none),
    d(252, "ioprio_get", false, Emulate, none),
    d(253, "inotify_init", false, Emulate, none),
    d(254, "inotify_add_watch", false, Emulate, none),
    d(255, "inotify_rm_watch", false, Emulate, none),
    d(257, "openat", true, Emulate, none),
    d(258, "mkdirat", false, Emulate, none),
    d(259, "mknodat", false, Emulate, none),
    d(260, "fchownat", false, Emulate, none),
    d(261, "futimesat", false, Emulate, none),
    d(262, "newfstatat", false, Emulate, fixed::<2, STAT>),
    d(263, "unlinkat", false, Emulate, none),
    d(264, "renameat", false, Emulate, none),
    d(265, "linkat", false, Emulate, none),
    d(266, "symlinkat", false, Emulate, none),
    d(267, "readlinkat", false, Emulate, ret_bytes::<2, 3>),
    d(268, "fchmodat", false, Emulate, none),
    d(269, "faccessat", false, Emulate, none),
    d(270, "pselect6", true, Emulate, select),
    d(271, "ppoll", true, Emulate, ppoll),
    d(272, "unshare", false, Emulate, none),
    d(273, "set_robust_list", false, Execute, none),
    d(274, "get_robust_list", false, Emulate, fixed2::<1, 8, 2, 8>),
    d(275, "splice", true, Emulate, fixed2::<1, 8, 3, 8>),
    d(276, "tee", true, Emulate, none),
    d(277, "sync_file_range", false, Emulate, none),
    d(278, "vmsplice", true, Emulate, iov_ret::<1, 2>),
    d(279, "move_pages", false, Emulate, move_pages),
    d(280, "utimensat", false, Emulate, none),
    d(
        281,
        "epoll_pwait",
        true,
        Emulate,
        ret_elems::<1, EPOLL_EVENT>,
    ),
    d(282, "signalfd", false, Emulate, none),
    d(283, "timerfd_create", false, Emulate, none),
    d(284, "eventfd", false, Emulate, none),
    d(285, "fallocate", false, Emulate, none),
    d(
        286,
        "timerfd_settime",
        false,
        Emulate,
        fixed::<3, ITIMERSPEC>,
    ),
    d(
        287,
        "timerfd_gettime",
        false,
        Emulate,
        fixed::<1, ITIMERSPEC>,
    ),
    d(288, "accept4", true, Emulate, sockaddr_out::<1, 2>),
    d(289, "signalfd4", false, Emulate, none),
    d(290, "eventfd2", false, Emulate, none),
    d(291, "epoll_create1", false, Emulate, none),
    d(292, "dup3", false, Emulate, none),
    d(293, "pipe2", false, Emulate, fixed::<0, 8>),
    d(294, "inotify_init1", false, Emulate, none),
    d(295, "preadv", false, Emulate, iov_ret::<1, 2>),
    d(296, "pwritev", false, Emulate, none),
    d(297, "rt_tgsigqueueinfo", false, Emulate, none),
    d(298, "perf_event_open", false, Emulate, perf_event_open),
    d(299, "recvmmsg", true, Emulate, recvmmsg),
    d(300, "fanotify_init", false, Emulate, none),
    d(301, "fanotify_mark", false, Emulate, none),
    d(302, "prlimit64", false, Emulate, fixed::<3, RLIMIT>),
    d(303, "name_to_handle_at", false, Emulate, name_to_handle_at),
    // Opens the file the handle names, which may be a FIFO (`open` blocks).
    d(304, "open_by_handle_at", true, Emulate, none),
    d(305, "clock_adjtime", false, Emulate, fixed::<1, TIMEX>),
    d(306, "syncfs", false, Emulate, none),
    d(307, "sendmmsg", true, Emulate, sendmmsg),
    d(308, "setns", false, Emulate, none),
    d(309, "getcpu", false, Emulate, fixed2::<0, 4, 1, 4>),
    d(310, "process_vm_readv", false, Emulate, process_vm_readv),
    d(311, "process_vm_writev", false, Emulate, process_vm_writev),
    d(312, "kcmp", false, Emulate, none),
    d(314, "sched_setattr", false, Emulate, sched_setattr),
    d(315, "sched_getattr", false, Emulate, sized_by_arg::<1, 2>),
    d(316, "renameat2", false, Emulate, none),
    d(317, "seccomp", false, Emulate, seccomp),
    d(318, "getrandom", false, Emulate, ret_bytes::<0, 1>),
    d(319, "memfd_create", false, Emulate, none),
    d(321, "bpf", false, Emulate, bpf),
    d(322, "execveat", true, Execve, none),
    d(323, "userfaultfd", false, Emulate, unsupported),
    d(324, "membarrier", false, Emulate, none),
    d(325, "mlock2", false, Emulate, none),
    d(326, "copy_file_range", true, Emulate, fixed2::<1, 8, 3, 8>),
    d(327, "preadv2", true, Emulate, iov_ret::<1, 2>),
    d(328, "pwritev2", true, Emulate, none),
    d(329, "pkey_mprotect", false, Execute, none),
    d(330, "pkey_alloc", false, Execute, none),
    d(331, "pkey_free", false, Execute, none),
    d(332, "statx", false, Emulate, fixed::<4, STATX>),
    d(333, "io_pgetevents", true, Emulate, io_getevents),
    d(334, "rseq", false, Emulate, none),
    d(424, "pidfd_send_signal", false, Emulate, none),
    d(425, "io_uring_setup", false, Emulate, io_uring),
    d(426, "io_uring_enter", true, Emulate, io_uring),
    d(427, "io_uring_register", false, Emulate, io_uring),
    d(428, "open_tree", false, Emulate, none),
    d(429, "move_mount", false, Emulate, none),
    d(430, "fsopen", false, Emulate, none),
    d(431, "fsconfig", false, Emulate, none),
    d(432, "fsmount", false, Emulate, none),
    d(433, "fspick", false, Emulate, none),
    d(434, "pidfd_open", false, Emulate, none),
    d(435, "clone3", true, Clone, clone3),
    d(436, "close_range", false, Emulate, none),
    d(437, "openat2", true, Emulate, none),
    d(438, "pidfd_getfd", false, Emulate, none),
    d(439, "faccessat2", false, Emulate, none),
    d(440, "process_madvise", false, Emulate, process_madvise),
    d(
        441,
        "epoll_pwait2",
        true,
        Emulate,
        ret_elems::<1, EPOLL_EVENT>,
    ),
    d(442, "mount_setattr", false, Emulate, none),
    d(444, "landlock_create_ruleset", false, Emulate, none),
    d(445, "landlock_add_rule", false, Emulate, none),
    d(446, "landlock_restrict_self", false, Emulate, none),
    d(447, "memfd_secret", false, Emulate, unsupported),
    d(449, "futex_waitv", true, Emulate, none),
    d(451, "cachestat", false, Emulate, fixed::<2, CACHESTAT>),
    d(452, "fchmodat2", false, Emulate, none),
    d(457, "statmount", false, Emulate, statmount),
    d(458, "listmount", false, Emulate, ret_elems::<1, 8>),
    d(462, "mseal", false, Execute, none),
];

/// Looks up syscall `nr` (a 32-bit call by its x86-64 equivalent's row,
/// if it has one: [`crate::compat::x86_64_equivalent`], else by a row of
/// its own, [`crate::COMPAT_ROWS`], if it has one).
pub fn lookup(nr: i64) -> Option<&'static SyscallDesc> {
    if let Some(d) = crate::compat_rows::lookup(nr) {
        return Some(d);
    }
    let nr = crate::compat::row_nr(nr);
    TABLE
        .binary_search_by_key(&nr, |d| d.nr)
        .ok()
        .map(|i| &TABLE[i])
}

/// Syscalls that write tracee memory even when they fail (each checked
/// against a live kernel where it can be provoked): the sleeps store the
/// remaining time, and poll its `revents`, when a signal interrupts them
/// (`-EINTR` or an in-kernel restart code at the exit stop); select,
/// pselect6 and ppoll store the remaining time on the way out of nearly every
/// failure (`EBADF`, `EINVAL`); `capget` stores the version it prefers on
/// `EINVAL`; `waitid` fills the siginfo even when it fails with `ECHILD`;
/// getsockopt stores the length it needs on `ERANGE`; sched_setattr and
/// perf_event_open store the kernel's structure size on `E2BIG`;
/// name_to_handle_at stores the handle size it needs and the mount id on
/// `EOVERFLOW`. (The
/// 32-bit rows have their own: `compat_rows::WRITES_ON_FAILURE`.)
const WRITES_ON_FAILURE: &[i64] = &[
    7,   // poll
    23,  // select
    35,  // nanosleep
    55,  // getsockopt
    125, // capget
    230, // clock_nanosleep
    247, // waitid
    270, // pselect6
    271, // ppoll
    298, // perf_event_open
    303, // name_to_handle_at
    314, // sched_setattr
];

/// Whether syscall `nr` may write tracee memory when it fails, so the
/// recorder must call its [`OutputsFn`] for a negative result too. (Every
/// output function is correct for any result, so calling them all
/// unconditionally is also fine.)
pub fn writes_on_failure(nr: i64) -> bool {
    WRITES_ON_FAILURE.contains(&nr) || crate::compat_rows::WRITES_ON_FAILURE.contains(&nr)
}

/// The memory written by `restart_syscall` when it resumes `original` (the
/// last call of the same thread, which returned `-ERESTART_RESTARTBLOCK`)
/// and finishes with `ret`: what `original` writes when it returns `ret`.
pub fn restarted_outputs(
    original: &Call,
    ret: i64,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    let desc = lookup(original.nr)
        .ok_or_else(|| Unsupported(format!("restart_syscall of {}", super::name(original.nr))))?;
    (desc.outputs)(&Call { ret, ..*original }, mem, out)
}
