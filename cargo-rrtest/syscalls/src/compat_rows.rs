//! Rows of their own for 32-bit calls (`int $0x80`) that mean no x86-64
//! call with the same memory written, but whose i386 layouts are simple:
//! the 32-bit time calls (a 4-byte `time_t`, the 8-byte `old_timespec32`
//! and `old_timeval32` of two 32-bit fields), the seeks, the 32-bit
//! resource limits and usage, `times`, `sysinfo`, `nanosleep`,
//! `clock_nanosleep`, `ppoll` and `pselect6`, the
//! i386 `struct stat64` and
//! `compat_statfs64`, the old `compat_stat` and `compat_statfs`, the
//! oldest `__old_kernel_stat`, `getdents`, `readdir`, `olduname` and
//! `oldolduname`, the file-time calls of 32-bit times, `fcntl64`'s int,
//! lock and owner commands (and the old `fcntl`'s, the same), the calls
//! of 32-bit iovecs and of split offsets and lengths, `sendfile`'s 32-bit
//! offset, `recvmsg`'s `compat_msghdr`, `recvmmsg`'s and `sendmmsg`'s
//! `compat_mmsghdr`s, the i386 `restart_syscall`, and
//! `mmap2` and the old `mmap` (90), replayed like `mmap` through
//! [`crate::x86_64_call`], `socketcall` (102), the message queue
//! calls of i386 structures (`mq_open`, `mq_notify`, `mq_getsetattr`),
//! and the System V calls of i386 structures (`semctl`, `shmctl`,
//! `msgsnd`, `msgrcv`, `msgctl`, 394, 396 and 400-402, and the `ipc`
//! multiplexer, 117).
//! Looked up by their trace numbers (`COMPAT_32 | i386 number`,
//! [`crate::compat_nr`]), named by [`crate::name`] as the other 32-bit
//! calls; those that mean an x86-64 call (`readv`, `writev`, `pread64`,
//! `pwrite64`, `truncate64`, `ftruncate64`, `preadv`, `pwritev`,
//! `preadv2`, `pwritev2`, `fcntl64`, `fcntl`, `sendfile`, `readahead`,
//! `fadvise64`, `fadvise64_64`, `sync_file_range`, `fallocate`,
//! `vmsplice`, `process_vm_readv`, `sendmsg`, `recvmsg`, `recvmmsg`,
//! `recvmmsg_time64`, `sendmmsg`, `mq_open`,
//! `mq_notify`, `mq_getsetattr`, `semctl`, `msgsnd`, `msgrcv`, `msgctl`,
//! and the signal-state calls) are followed by
//! its number ([`crate::row_nr`]), and may block where the x86-64 call's
//! row says it may.
//!
//! The entry points (the kernel's i386 table): `time` is `sys_time32`, it
//! returns the seconds and stores them as a 32-bit value at its pointer
//! when that is not null; `gettimeofday` is `compat_sys_gettimeofday`, an
//! `old_timeval32` at its first pointer and the `struct timezone` (two
//! ints, as on x86-64) at its second, each when not null; `clock_gettime`
//! and `clock_getres` are `sys_clock_gettime32` and
//! `sys_clock_getres_time32`, an `old_timespec32` at their second
//! argument (for `clock_getres`, when not null); `mmap2` is
//! `sys_mmap_pgoff`, writing no memory; `lseek` is `compat_sys_lseek`
//! (its offset a signed 32-bit value), writing none; `_llseek` is
//! `sys_llseek`, the offset split in two registers and the new position
//! stored as a 64-bit `loff_t` at its fourth argument; `getrlimit` and
//! `ugetrlimit` are `compat_sys_old_getrlimit` and `compat_sys_getrlimit`,
//! a `compat_rlimit` of two 32-bit values (infinite limits clamped) at
//! their second argument; `getrusage` is `compat_sys_getrusage`, a
//! `compat_rusage` (two `old_timeval32`s, fourteen 32-bit counters) at its
//! second argument. `stat64`, `lstat64`, `fstat64` and `fstatat64` are
//! `compat_sys_x86_stat64` and its siblings (`compat_sys_x86_fstatat` for
//! the last), a packed 96-byte i386 `struct stat64` at their second
//! argument (the third for `fstatat64`) on success; `statfs64` and
//! `fstatfs64` are `compat_sys_statfs64`/`compat_sys_fstatfs64`, which
//! fail with EINVAL unless their second argument is 84, the size of the
//! packed `compat_statfs64` they store at their third. `readv` and
//! `writev` are `sys_readv`/`sys_writev` (`compat_sys_*` in older
//! kernels), `preadv`, `pwritev`, `preadv2` and `pwritev2` their
//! `compat_sys_*` entries (the offset split in two registers): each reads
//! an array of 8-byte `compat_iovec`s (a 32-bit base and length) for a
//! 32-bit caller, and the reads scatter their result's bytes over it in
//! order. `pread64` and `pwrite64` are `compat_sys_x86_pread`/`_pwrite`
//! (fd, buffer, count, then the offset's low and high halves): `pread64`
//! fills its buffer with as many bytes as it returns; `truncate64` and
//! `ftruncate64` the `compat_sys_x86_*` wrappers of `truncate` and
//! `ftruncate`, the length split likewise, writing no memory. `times` is
//! `compat_sys_times`, a 16-byte `compat_tms` (four 32-bit clock ticks) at
//! its pointer when not null, and it returns the ticks since boot cut to
//! a signed 32-bit value, which may look negative: the only failure is
//! EFAULT, so any other result wrote the structure ([`WRITES_ON_FAILURE`]).
//! The old `stat`, `lstat` and `fstat` (106-108) are `compat_sys_newstat`
//! and its siblings: a 64-byte `compat_stat` (16-bit device, mode, link
//! count and ids, 32-bit inode, size and times) at their second argument
//! on success, EOVERFLOW (nothing written) where the device, inode, link
//! count or size does not fit. `statfs` and `fstatfs` (99, 100) are
//! `compat_sys_statfs`/`compat_sys_fstatfs`: a 64-byte `compat_statfs` of
//! 32-bit counts at their second argument, EOVERFLOW where one does not
//! fit. `getdents` (141) is `compat_sys_getdents`: `compat_linux_dirent`
//! records (32-bit inode and offset, 16-bit length, the name, the type in
//! the record's last byte) filling as many bytes of its buffer as it
//! returns. `fcntl64` (221) is `compat_sys_fcntl64`, which hands every
//! command but the locks to the kernel's `do_fcntl` as the x86-64 `fcntl`
//! does (its argument a 32-bit value, zero-extended): those are described
//! by the x86-64 row (`fdctl::fcntl`: the commands of an int or none,
//! leases, notifications, pipe sizes and seals write no memory,
//! `F_GETOWN_EX` its 8-byte `f_owner_ex` on both ABIs, the write-hint
//! queries a `u64`); the locks it serves itself: `F_GETLK`, `F_SETLK`,
//! `F_SETLKW` read a 16-byte `compat_flock` (32-bit start, length and
//! pid) and `F_GETLK` stores the lock found there (EOVERFLOW, nothing
//! stored, where it does not fit), `F_GETLK64`, `F_SETLK64`, `F_SETLKW64`
//! and the `F_OFD_*` commands likewise with the packed 24-byte
//! `compat_flock64`; the `*LKW` commands wait (the row may block). A
//! command neither knows that succeeds is refused, named. The old `fcntl` (55)
//! is the same `compat_sys_fcntl64` in the i386 table (the kernel's
//! `compat_sys_fcntl`, which fails the 64-bit lock commands with EINVAL,
//! serves other architectures' 32-bit tables): `fcntl64`'s row, the 64-bit locks included.
//! `readahead` (225), `fadvise64` (250), `fadvise64_64` (272),
//! `sync_file_range` (314) and `fallocate` (324) are the `ia32_*`
//! wrappers of the x86-64 calls, their offsets and lengths split in two
//! registers (low half first; `fadvise64`'s length one 32-bit value):
//! no memory written. `sendfile` (187) is `compat_sys_sendfile`: it reads
//! a 32-bit `compat_off_t` at its third argument when that is not null
//! and stores the new offset there ([`COMPAT_OFF_T`]; on failure the
//! value it stores is the one it read, so only a success is recorded),
//! and fails with EOVERFLOW where its offset is 2 GiB - 1 or past (a
//! copy that would pass it is cut short).
//! `vmsplice` (316) and `process_vm_readv` (347) read 32-bit iovecs (the
//! latter its remote ones too) and fill the local ones with the bytes
//! they return, in order (a `vmsplice` into a pipe only reads them, as
//! the x86-64 row records). `sendmsg` (370) only reads its
//! `compat_msghdr`; `recvmsg` (372, `compat_sys_recvmsg`) stores through
//! the 28-byte [`COMPAT_MSGHDR`]: the sender's address and
//! `msg_namelen` when `msg_name` is not null, the data over its 32-bit
//! iovecs, its 32-bit control messages (12-byte `compat_cmsghdr`s:
//! descriptors, credentials) and their length `msg_controllen`, and
//! `msg_flags`. `rt_sigtimedwait` (177) and `rt_sigtimedwait_time64`
//! (421) are `compat_sys_rt_sigtimedwait_time32`/`_time64`: they block
//! until a signal of their set (an 8-byte sigset of two 32-bit words) is
//! pending, the timeout (a 32-bit or 64-bit timespec) passes (EAGAIN) or
//! a handled signal interrupts them (EINTR, no restart), and store the
//! signal they took as a 128-byte `compat_siginfo` ([`COMPAT_SIGINFO`]:
//! 32-bit fields, the union at 12) when `info` is not null. The signal is
//! taken in the kernel, never delivered: the recorder sees only the
//! result, as for the x86-64 call.
//! The oldest `stat`, `lstat` and `fstat` (18, 84, 28: `oldstat`,
//! `oldlstat`, `oldfstat`) are the kernel's `sys_stat` and its siblings:
//! a 32-byte `__old_kernel_stat` (16-bit device, inode, mode, link count,
//! ids and rdev, 32-bit size and times) at their second argument on
//! success, EOVERFLOW (nothing written) where the inode or the link count
//! does not fit 16 bits. `readdir` (89) is `compat_sys_old_readdir`: one
//! `compat_old_linux_dirent` (32-bit inode and offset, 16-bit name length,
//! the name and a zero) and the result 1, or 0 at the end. `olduname`
//! (109) is the kernel's `sys_uname`, a 325-byte `old_utsname`;
//! `oldolduname` (59) its `sys_olduname`, a 45-byte `oldold_utsname` of
//! 9-byte strings. `utime` (30, `sys_utime32`: an `old_utimbuf32` of two
//! 32-bit times), `utimes` (271) and `futimesat` (299) (two
//! `old_timeval32`s), `utimensat` (320, two `old_timespec32`s; NULL times,
//! `UTIME_NOW`, `UTIME_OMIT` as for the x86-64 call) only read their
//! times: they write no memory.
//! `sysinfo` is `compat_sys_sysinfo`, a 64-byte `compat_sysinfo` (memory
//! sizes in 32 bits, rescaled by `mem_unit` when they do not fit).
//! `nanosleep` is `sys_nanosleep_time32`: it blocks, and stores the time
//! left as an `old_timespec32` at its second pointer when a signal
//! interrupts it (`-EINTR`, or a restart code at the exit stop), as the
//! x86-64 row records. The kernel resumes one interrupted without a
//! handler (a `SIGSTOP` and the `SIGCONT` that ends it) with the i386
//! `restart_syscall` (0), not the x86-64 one (219, the i386 `madvise`):
//! its row here is the x86-64 row's, described as the call it resumes
//! ([`crate::restarted_outputs`], the recorder keeping the thread's last
//! call that returned `-ERESTART_RESTARTBLOCK`), and replay puts 0 in rax
//! when it resumes a 32-bit call so ([`crate::restart_syscall_rax`]).
//! `clock_nanosleep` (267) is `sys_clock_nanosleep_time32`: as
//! `nanosleep`, the time left stored at its fourth argument for a relative
//! sleep only (`TIMER_ABSTIME` stores none), resumed likewise. `ppoll`
//! (309) is `compat_sys_ppoll_time32`: it blocks, stores the `revents` of
//! its 8-byte `struct pollfd`s (one layout for both ABIs) on success and
//! when interrupted, and the time left as an `old_timespec32` on the way
//! out whatever the result but EFAULT; its 8-byte sigset is the x86-64
//! one, and it means `ppoll` ([`crate::row_nr`]), so replay swaps its mask
//! in as the x86-64 call's. `pselect6` (308) and `pselect6_time64` (413)
//! are `compat_sys_pselect6_time32`/`_time64`: they block, store their
//! fd_sets of 32-bit `compat_ulong_t` words (4 bytes per 32 descriptors,
//! [`compat_fd_set_bytes`]) on success and the time left (an
//! `old_timespec32`, or the 16-byte `timespec`) whatever the result but
//! EFAULT; they mean `pselect6`, and the replayer reads the pointer to
//! their mask as the first of the two 32-bit values (`struct
//! compat_sigset_argpack`) their sixth argument points to. `_newselect`
//! (142) and the old `select` (82, its arguments a struct of five 32-bit
//! values in memory, read at the exit) store the same fd_sets and an
//! 8-byte `old_timeval32` time left. `futex` (240) and `futex_time64`
//! (422) need no row here: they mean the x86-64 `futex`
//! ([`crate::compat`]'s equivalents).
//! `socketcall` (102) is `compat_sys_socketcall`: it copies as many
//! 32-bit words as its sub-call takes (`SYS_SOCKET` 1 to `SYS_SENDMMSG`
//! 20; EINVAL for any other, EFAULT where they cannot be read) from its
//! second argument at the entry and hands them to the socket call the
//! sub-call names (`SYS_ACCEPT` is `accept4` with no flags, `SYS_SEND` and
//! `SYS_RECV` `sendto` and `recvfrom` with no address); the trace carries
//! those words in its arguments ([`crate::entry_args`]), and its row
//! describes what that call writes as the row of the i386 call of its own
//! number (359-373, and `recvmmsg` of a 32-bit timespec, 337, and
//! `sendmmsg`, 345, for `SYS_RECVMMSG` and `SYS_SENDMMSG`,
//! [`crate::socketcall_sub`]), kept on failure as that row keeps it.
//! `recvmmsg` (337), `recvmmsg_time64` (417) and `sendmmsg` (345) are
//! `compat_sys_recvmmsg_time32`/`_time64` and `compat_sys_sendmmsg`:
//! arrays of 32-byte [`COMPAT_MMSGHDR`]s (a `compat_msghdr` and a 32-bit
//! `msg_len`); `sendmmsg` stores the `msg_len` of each message it sent,
//! `recvmmsg` what `recvmsg` stores for each message it received (with
//! `msg_len` bytes of data) and its `msg_len`, and the time left in its
//! timeout (an `old_timespec32`, or a 64-bit timespec) when one came. The
//! old `mmap` (90) is `compat_sys_ia32_mmap`: it copies a `struct
//! mmap_arg_struct32` (six 32-bit words: addr, len, prot, flags, fd, and
//! the offset in bytes, EINVAL unless page-aligned) at the entry and maps
//! as `mmap`; the trace carries the words ([`crate::entry_args`]) and it
//! is recorded and replayed as the `mmap` they mean
//! ([`crate::x86_64_call`]), as `mmap2` is.
//! `mq_open` (277, `compat_sys_mq_open`) reads a 32-byte `compat_mq_attr`
//! ([`COMPAT_MQ_ATTR`], eight 32-bit longs) when it creates a queue with
//! one, and `mq_notify` (281, `compat_sys_mq_notify`) a 64-byte
//! `compat_sigevent` when not null: neither writes memory (a signal the
//! notification raises later is delivered and recorded as any signal; a
//! `SIGEV_THREAD` notification is a message on the program's netlink
//! socket, which its receive records). `mq_getsetattr` (282,
//! `compat_sys_mq_getsetattr`) reads a `compat_mq_attr` at its second
//! argument and, on success, stores one at its third when not null (its
//! reserved words zeroed). The sends and receives of 32-bit and 64-bit
//! timespecs are the x86-64 rows' ([`crate::compat`]'s equivalents).
//! `semctl` (394) and `msgctl` (402) are `compat_sys_semctl` and
//! `compat_sys_msgctl`: their stat commands store the i386
//! [`COMPAT_SEMID64_DS`] and [`COMPAT_MSQID64_DS`] (a 36-byte
//! [`COMPAT_IPC64_PERM`], 32-bit counts and time halves) whatever the
//! command's `IPC_64` bit, their info commands the `struct seminfo` and
//! `msginfo` of ints both ABIs share, `GETALL` a `u16` per semaphore;
//! `msgsnd` (400) reads and `msgrcv` (401) stores a `compat_msgbuf` of a
//! 32-bit `mtype` ([`COMPAT_MTYPE`]) and the text. `ipc` (117,
//! `compat_sys_ipc`) makes the sub-call in the low 16 bits of its first
//! argument: `SEMCTL` with the `union semun` word at its pointer and
//! `MSGRCV` of version 0 with the `struct compat_ipc_kludge` there, both
//! read at the entry, whose words the trace carries in its sixth
//! argument ([`crate::entry_args`]); its `SEMCTL` and `MSGCTL` store the
//! old [`COMPAT_SEMID_DS`] and [`COMPAT_MSQID_DS`] (a 16-byte
//! [`COMPAT_IPC_PERM`] of 16-bit ids) unless the command has `IPC_64`.
//! `shmctl` (396, `compat_sys_shmctl`) stores the 84-byte
//! [`COMPAT_SHMID64_DS`] whatever `IPC_64` says; `ipc`'s `SHMCTL` the
//! old 48-byte [`COMPAT_SHMID_DS`] without it. `ipc`'s `SHMAT` returns
//! 0 and stores the address attached at in a 32-bit word: that word and
//! the segment's contents there are its outputs; the recorder and the
//! replayer follow its attach as `shmat`'s ([`crate::shm_op`]).
//! `shmget`, `shmat` and `shmdt` of their own numbers (395, 397, 398)
//! are the x86-64 rows. `io_setup` (245, `compat_sys_io_setup`) stores a
//! 32-bit context and `io_submit` (248, `compat_sys_io_submit`) reads
//! 32-bit iocb pointers: the x86-64 AIO code with the i386 sizes
//! (`aio::I386`); the other 32-bit AIO calls are the x86-64 rows.
//! The signal-state calls (2026-12-06): `rt_sigprocmask` (175,
//! `compat_sys_rt_sigprocmask`) stores the old 8-byte sigset at its third
//! argument (EINVAL unless its size is 8), `sigprocmask` (126,
//! `compat_sys_sigprocmask`) the old 4-byte [`COMPAT_OLD_SIGSET`] of the
//! first 32 signals; `sigpending` (73) stores a [`COMPAT_OLD_SIGSET`] and
//! `rt_sigpending` (176) as many bytes of the 8-byte set as it is asked
//! (at most 8); `rt_sigaction` (174, `compat_sys_rt_sigaction`) stores
//! the old action as a 20-byte [`COMPAT_SIGACTION`], `sigaction` (67,
//! `compat_sys_sigaction`) as a 16-byte [`COMPAT_OLD_SIGACTION`], each
//! when not null and on success; `signal` (48, `sys_signal`) returns the
//! old handler; `sigaltstack` (186, `compat_sys_sigaltstack`) stores the
//! old stack as a 12-byte [`COMPAT_STACK_T`] (the stack itself must lie
//! below 4 GiB). All are executed in replay as the x86-64 calls are
//! (the pending queries emulated); they mean those calls
//! ([`crate::row_nr`]). One that installs a handler (neither `SIG_DFL`
//! nor `SIG_IGN`) is refused, named: the kernel marks the action
//! `SA_IA32_ABI` and delivers its signal with an i386 frame, the handler
//! run in 32-bit mode, left by the i386 `sigreturn`.

use super::aio::{io_setup32, io_submit32};
use super::layout::{POLLFD, SOCKADDR_STORAGE, TIMESPEC, TIMEZONE};
use super::outputs::{
    fixed, fixed2, interrupted, iov_ret, none, push, read_u32, ret_bytes, ret_len, scatter,
    sized_by_arg,
};
use super::{Call, MemReader, Region, ReplayAction, SyscallDesc, Unsupported, COMPAT_32};

/// An i386 `old_time32_t`.
pub const OLD_TIME32: u64 = 4;
/// An i386 `struct old_timespec32` (`tv_sec`, `tv_nsec`: 32 bits each).
pub const OLD_TIMESPEC32: u64 = 8;
/// An i386 `struct old_timeval32` (`tv_sec`, `tv_usec`: 32 bits each).
pub const OLD_TIMEVAL32: u64 = 8;
/// An i386 `struct compat_rlimit` (`rlim_cur`, `rlim_max`: 32 bits each).
pub const COMPAT_RLIMIT: u64 = 8;
/// An i386 `struct compat_rusage`: two `old_timeval32`s and fourteen
/// 32-bit counters.
pub const COMPAT_RUSAGE: u64 = 2 * OLD_TIMEVAL32 + 14 * 4;
/// The `loff_t` `_llseek` stores the new position in.
pub const LOFF_T: u64 = 8;
/// An i386 `struct compat_tms`: four 32-bit `compat_clock_t`s.
pub const COMPAT_TMS: u64 = 4 * 4;
/// An i386 `struct compat_sysinfo`: the 32-bit uptime, three loads, six
/// memory sizes, `procs` and its padding (two u16), two high-memory sizes,
/// `mem_unit` and 8 bytes of padding.
pub const COMPAT_SYSINFO: u64 = 4 + 3 * 4 + 6 * 4 + 2 * 2 + 2 * 4 + 4 + 8;

/// The rows whose outputs are recorded whatever the result (the recorder
/// asks [`crate::writes_on_failure`]): `times`, whose result may look
/// negative, `nanosleep` and `clock_nanosleep`, which store the time left
/// when interrupted, `ppoll`, which stores the `revents` when
/// interrupted and the time left whatever its result, `pselect6`,
/// `pselect6_time64` and the two older `select` calls (82, 142), which
/// store the time left whatever their result, `getsockopt` (365, the
/// x86-64 row's), which stores the length it needs on `ERANGE`,
/// `socketcall` (102), which keeps what its sub-call's row keeps;
/// and so, by their
/// trace numbers (the x86-64 list has the x86-64 ones), the calls that
/// the x86-64 `clock_nanosleep` and `ppoll` rows describe:
/// `clock_nanosleep_time64` and `ppoll_time64`.
pub(crate) const WRITES_ON_FAILURE: &[i64] = &[
    COMPAT_32 | 43,
    COMPAT_32 | 82,
    COMPAT_32 | 102,
    COMPAT_32 | 142,
    COMPAT_32 | 162,
    COMPAT_32 | 267,
    COMPAT_32 | 308,
    COMPAT_32 | 309,
    COMPAT_32 | 365,
    COMPAT_32 | 407,
    COMPAT_32 | 413,
    COMPAT_32 | 414,
];

/// The i386 `struct stat64` (packed): `st_dev` (8), 4 bytes of padding,
/// the 32-bit `__st_ino`, `st_mode`, `st_nlink`, `st_uid`, `st_gid` (4
/// each), `st_rdev` (8), 4 bytes of padding, `st_size` (8), `st_blksize`
/// (4), `st_blocks` (8), three times a 32-bit seconds and nanoseconds
/// pair, and the 64-bit `st_ino`.
pub const STAT64: u64 = 96;
/// Offsets in [`STAT64`] the tests check.
#[cfg_attr(not(test), allow(dead_code))]
pub mod stat64 {
    /// `unsigned int st_mode`.
    pub const MODE: u64 = 16;
    /// `long long st_size`.
    pub const SIZE: u64 = 44;
    /// `long long st_blocks`.
    pub const BLOCKS: u64 = 56;
    /// `unsigned long long st_ino`.
    pub const INO: u64 = 88;
}
/// The i386 `struct compat_statfs64` (packed, 4-byte aligned): two u32s,
/// five u64 counts, the 8-byte `f_fsid`, `f_namelen`, `f_frsize`,
/// `f_flags` and four spare u32s.
pub const COMPAT_STATFS64: u64 = 2 * 4 + 5 * 8 + 8 + 3 * 4 + 4 * 4;

/// The i386 `struct compat_stat` of the old `stat`, `lstat`, `fstat`:
/// the 16-bit `st_dev` and its padding, the 32-bit `st_ino`, the 16-bit
/// `st_mode`, `st_nlink`, `st_uid`, `st_gid`, the 16-bit `st_rdev` and its
/// padding, the 32-bit `st_size`, `st_blksize`, `st_blocks`, three 32-bit
/// seconds and nanoseconds pairs and two unused u32s.
pub const COMPAT_STAT: u64 = 2 + 2 + 4 + 4 * 2 + 2 + 2 + 3 * 4 + 6 * 4 + 2 * 4;
/// Offsets in [`COMPAT_STAT`] the tests check.
#[cfg_attr(not(test), allow(dead_code))]
pub mod compat_stat {
    /// `u32 st_ino`.
    pub const INO: u64 = 4;
    /// `u16 st_mode`.
    pub const MODE: u64 = 8;
    /// `u32 st_size`.
    pub const SIZE: u64 = 20;
    /// `u32 st_mtime`.
    pub const MTIME: u64 = 40;
}
/// The i386 `struct compat_statfs` of the old `statfs`, `fstatfs`: seven
/// 32-bit values (type, block size, five counts), the 8-byte `f_fsid`,
/// `f_namelen`, `f_frsize`, `f_flags` and four spare ints.
pub const COMPAT_STATFS: u64 = 7 * 4 + 8 + 3 * 4 + 4 * 4;

/// The i386 `struct __old_kernel_stat` of the oldest `stat`, `lstat` and
/// `fstat` (18, 84, 28), as the 64-bit kernel's `sys_stat` fills it: seven
/// 16-bit values (`st_dev`, `st_ino`, `st_mode`, `st_nlink`, `st_uid`,
/// `st_gid`, `st_rdev`), 2 bytes of padding, then the 32-bit `st_size`,
/// `st_atime`, `st_mtime`, `st_ctime`.
pub const OLD_KERNEL_STAT: u64 = 7 * 2 + 2 + 4 * 4;
/// The `struct old_utsname` of the i386 `olduname` (109, the kernel's
/// `sys_uname`): five 65-byte strings.
pub const OLD_UTSNAME: u64 = 5 * 65;
/// The `struct oldold_utsname` of the i386 `oldolduname` (59, the kernel's
/// `sys_olduname`): five 9-byte strings.
pub const OLDOLD_UTSNAME: u64 = 5 * 9;
/// The fixed part of the i386 `struct compat_old_linux_dirent` `readdir`
/// (89) fills: the 32-bit `d_ino` and `d_offset`, the 16-bit `d_namlen`;
/// the name and its terminating zero follow.
pub const COMPAT_OLD_DIRENT: u64 = 4 + 4 + 2;
/// The i386 `struct compat_flock` of `fcntl64`'s `F_GETLK`, `F_SETLK`,
/// `F_SETLKW`: the 16-bit `l_type` and `l_whence`, the 32-bit `l_start`,
/// `l_len` and `l_pid`.
pub const COMPAT_FLOCK: u64 = 2 + 2 + 4 + 4 + 4;
/// The i386 `struct compat_flock64` (packed) of `fcntl64`'s `F_GETLK64`,
/// `F_SETLK64`, `F_SETLKW64` and the `F_OFD_*` commands: the 16-bit
/// `l_type` and `l_whence`, the 64-bit `l_start` and `l_len` (at 4 and 12:
/// no padding), the 32-bit `l_pid`.
pub const COMPAT_FLOCK64: u64 = 2 + 2 + 8 + 8 + 4;
/// The `struct f_owner_ex` of `F_GETOWN_EX` and `F_SETOWN_EX`: two ints,
/// one layout for both ABIs (so the x86-64 row's description serves the
/// 32-bit `fcntl64`; checked against it by the unit tests).
#[cfg(test)]
pub const F_OWNER_EX: u64 = 4 + 4;
/// The i386 `compat_off_t` the old `sendfile` (187) reads its offset
/// from and stores the new one in: a signed 32-bit value.
pub const COMPAT_OFF_T: u64 = 4;
/// The i386 `compat_siginfo_t` `rt_sigtimedwait` (177, 421) stores: 128
/// bytes, as the 64-bit `siginfo_t`, but its union at 12 (the 64-bit
/// one's at 16) and its fields 32-bit.
pub const COMPAT_SIGINFO: u64 = 128;
/// The i386 `struct compat_mq_attr` of `mq_open` (277) and
/// `mq_getsetattr` (282): eight 32-bit longs (`mq_flags`, `mq_maxmsg`,
/// `mq_msgsize`, `mq_curmsgs`, four reserved ones the kernel zeroes when
/// it stores one).
pub const COMPAT_MQ_ATTR: u64 = 8 * 4;
/// The i386 `struct compat_ipc64_perm`: the 32-bit key, uid, gid, cuid
/// and cgid, the 16-bit mode, its padding, the 16-bit seq, its padding,
/// two unused 32-bit words.
pub const COMPAT_IPC64_PERM: u64 = 5 * 4 + 4 * 2 + 2 * 4;
/// The i386 `struct compat_semid64_ds` a 32-bit `semctl`'s stat commands
/// store (with `IPC_64`, or always for the call of its own number): the
/// perm, the low and high halves of `sem_otime` and `sem_ctime`,
/// `sem_nsems` and two unused words, all 32-bit.
pub const COMPAT_SEMID64_DS: u64 = COMPAT_IPC64_PERM + 7 * 4;
/// The i386 `struct compat_msqid64_ds` of a 32-bit `msgctl`'s stat
/// commands: the perm, the halves of the three times, `msg_cbytes`,
/// `msg_qnum`, `msg_qbytes`, the two pids and two unused words, all
/// 32-bit.
pub const COMPAT_MSQID64_DS: u64 = COMPAT_IPC64_PERM + 13 * 4;
/// The old i386 `struct compat_ipc_perm` (`ipc`'s commands without
/// `IPC_64`): the 32-bit key, then 16-bit uid, gid, cuid, cgid, mode and
/// seq.
pub const COMPAT_IPC_PERM: u64 = 4 + 6 * 2;
/// The old i386 `struct compat_semid_ds`: the old perm, two 32-bit times,
/// four 32-bit pointers, the 16-bit `sem_nsems`, padded to 4 bytes.
pub const COMPAT_SEMID_DS: u64 = (COMPAT_IPC_PERM + 6 * 4 + 2).next_multiple_of(4);
/// The old i386 `struct compat_msqid_ds`: the old perm, two 32-bit
/// pointers, three 32-bit times, `msg_lcbytes` and `msg_lqbytes`, then
/// 16-bit `msg_cbytes`, `msg_qnum`, `msg_qbytes` and pids, padded to 4
/// bytes.
pub const COMPAT_MSQID_DS: u64 = (COMPAT_IPC_PERM + 7 * 4 + 5 * 2).next_multiple_of(4);
/// The i386 `struct compat_shmid64_ds` a 32-bit `shmctl`'s stat commands
/// store (with `IPC_64`, or always for the call of its own number): the
/// perm, `shm_segsz`, the low and high halves of `shm_atime`,
/// `shm_dtime` and `shm_ctime`, the two pids, `shm_nattch` and two
/// unused words, all 32-bit.
pub const COMPAT_SHMID64_DS: u64 = COMPAT_IPC64_PERM + 12 * 4;
/// The old i386 `struct compat_shmid_ds` (`ipc`'s `SHMCTL` without
/// `IPC_64`): the old perm, the 32-bit `shm_segsz` and three times, the
/// 16-bit pids, `shm_nattch` and an unused short, two unused 32-bit
/// pointers.
pub const COMPAT_SHMID_DS: u64 = COMPAT_IPC_PERM + 4 * 4 + 4 * 2 + 2 * 4;
/// The i386 `struct compat_shminfo64` of `shmctl`'s `IPC_INFO` with
/// `IPC_64`: `shmmax`, `shmmin`, `shmmni`, `shmseg`, `shmall` and four
/// unused words, all 32-bit.
pub const COMPAT_SHMINFO64: u64 = 9 * 4;
/// The `struct shminfo` of `ipc`'s `SHMCTL` `IPC_INFO` without `IPC_64`:
/// five ints.
pub const COMPAT_SHMINFO: u64 = 5 * 4;
/// The i386 `struct compat_shm_info` of `shmctl`'s `SHM_INFO` (both
/// versions): the int `used_ids` and five 32-bit longs.
pub const COMPAT_SHM_INFO: u64 = 4 + 5 * 4;
/// The i386 `compat_msgbuf`'s `mtype`: a 32-bit long before the text.
pub const COMPAT_MTYPE: u64 = 4;
/// The flag of a System V control command asking for the 64-bit
/// structures (`IPC_64`).
const IPC_64: u64 = 0x100;
// The System V commands libc does not name.
const SEM_STAT_ANY: i32 = 20;
const MSG_STAT_ANY: i32 = 13;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;

/// The i386 `struct compat_msghdr` of `sendmsg` and `recvmsg` (370, 372):
/// seven 32-bit fields, at the offsets of [`compat_msghdr`].
pub const COMPAT_MSGHDR: u64 = 7 * 4;
/// The i386 `struct compat_mmsghdr` of `recvmmsg` and `sendmmsg` (337,
/// 417, 345): a [`COMPAT_MSGHDR`] and the 32-bit `msg_len` the kernel
/// stores.
pub const COMPAT_MMSGHDR: u64 = COMPAT_MSGHDR + 4;
/// Offsets in [`COMPAT_MSGHDR`].
pub mod compat_msghdr {
    /// `compat_uptr_t msg_name`.
    pub const NAME: u64 = 0;
    /// `compat_int_t msg_namelen` (stored by `recvmsg` when `msg_name` is
    /// not null).
    pub const NAMELEN: u64 = 4;
    /// `compat_uptr_t msg_iov`: an array of 8-byte `compat_iovec`s.
    pub const IOV: u64 = 8;
    /// `compat_size_t msg_iovlen`.
    pub const IOVLEN: u64 = 12;
    /// `compat_uptr_t msg_control`.
    pub const CONTROL: u64 = 16;
    /// `compat_size_t msg_controllen` (stored by `recvmsg`: the bytes of
    /// 32-bit control messages it wrote).
    pub const CONTROLLEN: u64 = 20;
    /// `compat_uint_t msg_flags` (stored by `recvmsg`).
    pub const FLAGS: u64 = 24;
}

// fcntl64's packed compat_flock64 commands, by the kernel's numbers.
const F_GETLK64: i32 = 12;
const F_SETLK64: i32 = 13;
const F_SETLKW64: i32 = 14;

/// `fcntl64(fd, cmd, arg)` that succeeded: the lock `F_GETLK` stores at
/// `arg` (a [`COMPAT_FLOCK`]; the kernel's `compat_sys_fcntl64` fails
/// with EOVERFLOW, storing nothing, where the lock's 64-bit start or
/// length does not fit), the one `F_GETLK64` and `F_OFD_GETLK` store (a
/// packed [`COMPAT_FLOCK64`]), nothing for the other locks (they only
/// read theirs); any other command is `do_fcntl`'s, as for the x86-64
/// call: described by its row ([`super::fdctl::fcntl`]), a command it
/// does not know refused, named. `F_SETLKW`, `F_SETLKW64` and
/// `F_OFD_SETLKW` wait for the lock: the row may block, as the x86-64
/// `fcntl`'s.
fn fcntl64(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    let cmd = c.args[1] as u32 as i32;
    if c.ret < 0 {
        return Ok(());
    }
    match cmd {
        libc::F_GETLK => push(out, c.args[2], COMPAT_FLOCK),
        F_GETLK64 | libc::F_OFD_GETLK => push(out, c.args[2], COMPAT_FLOCK64),
        libc::F_SETLK | libc::F_SETLKW | F_SETLK64 | F_SETLKW64 => {}
        _ => {
            return super::fdctl::fcntl(c, mem, out).map_err(|_| {
                Unsupported(format!(
                "{}: command {cmd} is not described (an fcntl command this recorder does not know)",
                super::name(c.nr)
            ))
            })
        }
    }
    Ok(())
}

/// `recvmsg(fd, msg, flags)` of a 32-bit caller (`compat_sys_recvmsg`):
/// through the 28-byte `compat_msghdr` at `msg`, read after the call, the
/// address (`msg_namelen`, and as many bytes of it as that says, at most
/// a `sockaddr_storage`) when `msg_name` is not null, the `ret` bytes of
/// data scattered over its 32-bit iovecs, the 32-bit control messages
/// (`msg_controllen` bytes, the length the kernel stored) when
/// `msg_control` is not null, and `msg_controllen` and `msg_flags`.
fn recvmsg32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    received_compat_msghdr(c, mem, c.args[1], ret_len(c), out)
}

/// What a 32-bit receive stored through the `compat_msghdr` at `hdr`
/// for a message of `len` bytes (read after the call): see [`recvmsg32`].
fn received_compat_msghdr(
    c: &Call,
    mem: &dyn MemReader,
    hdr: u64,
    len: u64,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    use compat_msghdr as h;
    let field = |off: u64, what: &str| read_u32(c, mem, hdr + off, what).map(u64::from);
    let name = field(h::NAME, "compat_msghdr.msg_name")?;
    let iov = field(h::IOV, "compat_msghdr.msg_iov")?;
    let iovlen = field(h::IOVLEN, "compat_msghdr.msg_iovlen")?;
    let control = field(h::CONTROL, "compat_msghdr.msg_control")?;
    let controllen = field(h::CONTROLLEN, "compat_msghdr.msg_controllen")?;
    if name != 0 {
        let namelen = field(h::NAMELEN, "compat_msghdr.msg_namelen")?;
        push(out, hdr + h::NAMELEN, 4);
        push(out, name, namelen.min(SOCKADDR_STORAGE));
    }
    scatter(c, mem, iov, iovlen, len, out)?;
    if control != 0 {
        push(out, control, controllen);
    }
    push(out, hdr + h::CONTROLLEN, 4);
    push(out, hdr + h::FLAGS, 4);
    Ok(())
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)` of a 32-bit caller
/// (`compat_sys_rt_sigtimedwait_time32`, `_time64`): the 128-byte
/// `compat_siginfo` of the signal it took at `info`, when it returns one
/// and `info` is not null; nothing on a timeout (EAGAIN), an interruption
/// (EINTR) or another failure.
fn rt_sigtimedwait32(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret > 0 {
        push(out, c.args[1], COMPAT_SIGINFO);
    }
    Ok(())
}

/// `socketcall(call, args)` of a 32-bit caller (`compat_sys_socketcall`):
/// what the sub-call it made writes ([`crate::socketcall_sub`]: the i386
/// socket call of its own number, with the words the kernel read at the
/// entry, which the trace carries in the call's arguments,
/// [`crate::entry_args`]), kept on failure where that call's row keeps it
/// (`getsockopt`'s length on `ERANGE`). A sub-call that is none, or whose
/// words were not there to read, failed (EINVAL, EFAULT) and wrote
/// nothing; one that succeeded so is refused, named.
fn socketcall32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    let Some(sub) = super::socketcall_sub(c) else {
        if c.ret < 0 {
            return Ok(());
        }
        return Err(Unsupported(format!(
            "{}: {} succeeded with argument words the recorder could not read at its entry",
            super::name(c.nr),
            super::socketcall_name(c.args[0])
        )));
    };
    if c.ret < 0 && !super::writes_on_failure(sub.nr) {
        return Ok(());
    }
    let desc = super::lookup(sub.nr).ok_or_else(|| {
        Unsupported(format!(
            "{}: {} has no row",
            super::name(c.nr),
            super::socketcall_name(c.args[0])
        ))
    })?;
    (desc.outputs)(&sub, mem, out)
}

/// The old `mmap(arg)` of a 32-bit caller (`compat_sys_ia32_mmap`): no
/// memory written; replayed as the `mmap` its struct's six words mean
/// ([`crate::x86_64_call`]), which the trace carries from the entry
/// ([`crate::entry_args`]). One that succeeded with a struct the recorder
/// could not read at the entry is refused.
fn old_mmap(c: &Call, _: &dyn MemReader, _: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret >= 0 && c.args[4] != crate::compat::MMAP_ARG_WORDS {
        return Err(Unsupported(format!(
            "{}: its struct mmap_arg_struct32 at {:#x} was not read at its entry",
            super::name(c.nr),
            c.args[0]
        )));
    }
    Ok(())
}

/// What a 32-bit `semctl(semid, semnum, cmd, arg)` that returned `c.ret`
/// stored (`compat_ksys_semctl`, its command's `IPC_64` bit masked off):
/// the stat commands a [`COMPAT_SEMID64_DS`] at `arg` (`ipc64`) or an
/// old [`COMPAT_SEMID_DS`], the info ones a `struct seminfo` (ints: one
/// layout for both ABIs), `GETALL` a `u16` per semaphore of the set (its
/// size from `/proc/sysvipc/sem`); nothing for the others. A command
/// not described that succeeded is refused.
fn sysv_semctl(
    c: &Call,
    mem: &dyn MemReader,
    [semid, cmd, arg]: [u64; 3],
    ipc64: bool,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let ds = if ipc64 {
        COMPAT_SEMID64_DS
    } else {
        COMPAT_SEMID_DS
    };
    match (cmd & !IPC_64) as u32 as i32 {
        libc::IPC_STAT | libc::SEM_STAT | SEM_STAT_ANY => push(out, arg, ds),
        libc::IPC_INFO | libc::SEM_INFO => push(out, arg, super::layout::SEMINFO),
        libc::IPC_SET
        | libc::IPC_RMID
        | libc::GETPID
        | libc::GETVAL
        | libc::GETNCNT
        | libc::GETZCNT
        | libc::SETVAL
        | libc::SETALL => {}
        libc::GETALL => {
            let nsems = super::ipc::sysv_column(c, mem, "sem", semid, 3)?;
            push(out, arg, nsems.saturating_mul(2));
        }
        other => {
            return Err(Unsupported(format!(
                "{}: semctl command {other} is not described",
                super::name(c.nr)
            )))
        }
    }
    Ok(())
}

/// What a 32-bit `msgctl(msqid, cmd, buf)` that returned `c.ret` stored
/// (`compat_ksys_msgctl`, its command's `IPC_64` bit masked off): the
/// stat commands a [`COMPAT_MSQID64_DS`] at `buf` (`ipc64`) or an old
/// [`COMPAT_MSQID_DS`], the info ones a `struct msginfo` (ints); nothing
/// for `IPC_SET` and `IPC_RMID`.
fn sysv_msgctl(
    c: &Call,
    cmd: u64,
    buf: u64,
    ipc64: bool,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let ds = if ipc64 {
        COMPAT_MSQID64_DS
    } else {
        COMPAT_MSQID_DS
    };
    match (cmd & !IPC_64) as u32 as i32 {
        libc::IPC_STAT | libc::MSG_STAT | MSG_STAT_ANY => push(out, buf, ds),
        libc::IPC_INFO | libc::MSG_INFO => push(out, buf, super::layout::MSGINFO),
        libc::IPC_SET | libc::IPC_RMID => {}
        other => {
            return Err(Unsupported(format!(
                "{}: msgctl command {other} is not described",
                super::name(c.nr)
            )))
        }
    }
    Ok(())
}

/// What a 32-bit `shmctl(shmid, cmd, buf)` that returned `c.ret` stored
/// (`compat_ksys_shmctl`, its command's `IPC_64` bit masked off): the
/// stat commands a [`COMPAT_SHMID64_DS`] at `buf` (`ipc64`) or an old
/// [`COMPAT_SHMID_DS`], `IPC_INFO` a [`COMPAT_SHMINFO64`] or an old
/// `struct shminfo` of ints, `SHM_INFO` a [`COMPAT_SHM_INFO`]; nothing
/// for `IPC_SET`, `IPC_RMID`, `SHM_LOCK` and `SHM_UNLOCK`.
fn sysv_shmctl(
    c: &Call,
    cmd: u64,
    buf: u64,
    ipc64: bool,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let (ds, info) = if ipc64 {
        (COMPAT_SHMID64_DS, COMPAT_SHMINFO64)
    } else {
        (COMPAT_SHMID_DS, COMPAT_SHMINFO)
    };
    match (cmd & !IPC_64) as u32 as i32 {
        libc::IPC_STAT | SHM_STAT | SHM_STAT_ANY => push(out, buf, ds),
        libc::IPC_INFO => push(out, buf, info),
        SHM_INFO => push(out, buf, COMPAT_SHM_INFO),
        libc::IPC_SET | libc::IPC_RMID | libc::SHM_LOCK | libc::SHM_UNLOCK => {}
        other => {
            return Err(Unsupported(format!(
                "{}: shmctl command {other} is not described",
                super::name(c.nr)
            )))
        }
    }
    Ok(())
}

/// `shmctl(shmid, cmd, buf)` of a 32-bit caller (396,
/// `compat_sys_shmctl`): the 64-bit structures whatever `IPC_64` says.
fn shmctl32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    sysv_shmctl(c, c.args[1], c.args[2], true, out)
}

/// What `ipc`'s `SHMAT(shmid, shmflg, &raddr, shmaddr)` that returned 0
/// stored: the 32-bit address at `raddr` (read back at the exit) and
/// the segment attached there, as `shmat` describes it
/// ([`super::ipc::shmat`]: its contents, the refused sizes).
fn ipc_shmat(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    let raddr = c.args[3];
    let mut word = [0u8; 4];
    mem.read(raddr, &mut word).map_err(|e| {
        Unsupported(format!(
            "{}: SHMAT's address at {raddr:#x} cannot be read back: {e}",
            super::name(c.nr)
        ))
    })?;
    push(out, raddr, 4);
    let attach = Call {
        nr: c.nr,
        args: [c.args[1], 0, c.args[2], 0, 0, 0],
        ret: i64::from(u32::from_le_bytes(word)),
    };
    super::ipc::shmat(&attach, mem, out)
}

/// What a 32-bit `msgrcv` that returned `c.ret` stored at `msgp`: the
/// `compat_msgbuf`'s 32-bit `mtype` and as many bytes of text as it
/// returned (at most `msgsz`).
fn sysv_msgrcv(c: &Call, msgp: u64, msgsz: u64, out: &mut Vec<Region>) {
    if c.ret >= 0 {
        push(out, msgp, COMPAT_MTYPE + ret_len(c).min(msgsz));
    }
}

/// `semctl(semid, semnum, cmd, arg)` of a 32-bit caller (394,
/// `compat_sys_semctl`): the 64-bit structures whatever `IPC_64` says.
fn semctl32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    sysv_semctl(c, mem, [c.args[0], c.args[2], c.args[3]], true, out)
}

/// `msgrcv(msqid, msgp, msgsz, msgtyp, msgflg)` of a 32-bit caller (401,
/// `compat_sys_msgrcv`).
fn msgrcv32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    sysv_msgrcv(c, c.args[1], c.args[2], out);
    Ok(())
}

/// `msgctl(msqid, cmd, buf)` of a 32-bit caller (402,
/// `compat_sys_msgctl`): the 64-bit structures whatever `IPC_64` says.
fn msgctl32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    sysv_msgctl(c, c.args[1], c.args[2], true, out)
}

/// The names of `ipc`'s sub-calls, by number.
fn ipc_sub_name(sub: u64) -> String {
    match sub {
        1 => "SEMOP".into(),
        2 => "SEMGET".into(),
        3 => "SEMCTL".into(),
        4 => "SEMTIMEDOP".into(),
        11 => "MSGSND".into(),
        12 => "MSGRCV".into(),
        13 => "MSGGET".into(),
        14 => "MSGCTL".into(),
        21 => "SHMAT".into(),
        22 => "SHMDT".into(),
        23 => "SHMGET".into(),
        24 => "SHMCTL".into(),
        _ => format!("sub-call {sub}"),
    }
}

/// `ipc(call, first, second, third, ptr, fifth)` of a 32-bit caller
/// (`compat_sys_ipc`, its arguments as [`crate::entry_args`] gives them):
/// what its System V sub-call (the low 16 bits of `call`) stored.
/// `SEMOP`, `SEMTIMEDOP` (a 32-bit timespec), `SEMGET`, `MSGSND` and
/// `MSGGET` store nothing; `SEMCTL(semid, semnum, cmd, &semun)` what
/// `semctl` stores with the `union semun` read at the entry, the old
/// structures unless `cmd` has `IPC_64`; `MSGRCV(msqid, msgsz, msgflg,
/// ptr, msgtyp)` the message at the `msgp` of the `struct
/// compat_ipc_kludge` read at the entry (version 0) or at `ptr` (other
/// versions); `MSGCTL(msqid, cmd, _, buf)` what `msgctl` stores, the old
/// structures unless `cmd` has `IPC_64`; `SHMAT(shmid, shmflg, &raddr,
/// shmaddr)` the 32-bit address at `raddr` and the segment's contents
/// there ([`ipc_shmat`]), `SHMDT` and `SHMGET` nothing, `SHMCTL(shmid,
/// cmd, _, buf)` what `shmctl` stores, the old structures unless `cmd`
/// has `IPC_64`. Nothing when it failed; a sub-call not named here that
/// succeeded is refused, named.
fn ipc32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret < 0 {
        return Ok(());
    }
    let a = &c.args;
    let sub = a[0] & 0xffff;
    let read = a[0] & crate::compat::IPC_WORDS_READ != 0;
    let unread = || {
        Unsupported(format!(
            "{}: {} succeeded with memory the recorder could not read at its entry",
            super::name(c.nr),
            ipc_sub_name(sub)
        ))
    };
    match sub {
        1 | 2 | 4 | 11 | 13 => Ok(()),
        crate::compat::IPC_SEMCTL => {
            if !read {
                return Err(unread());
            }
            let semun = a[5] & 0xffff_ffff;
            sysv_semctl(c, mem, [a[1], a[3], semun], a[3] & IPC_64 != 0, out)
        }
        crate::compat::IPC_MSGRCV => {
            let msgp = if (a[0] & 0xffff_ffff) >> 16 == 0 {
                if !read {
                    return Err(unread());
                }
                a[5] & 0xffff_ffff
            } else {
                a[4]
            };
            sysv_msgrcv(c, msgp, a[2], out);
            Ok(())
        }
        14 => sysv_msgctl(c, a[2], a[4], a[2] & IPC_64 != 0, out),
        crate::compat::IPC_SHMAT => ipc_shmat(c, mem, out),
        crate::compat::IPC_SHMDT | crate::compat::IPC_SHMGET => Ok(()),
        crate::compat::IPC_SHMCTL => sysv_shmctl(c, a[2], a[4], a[2] & IPC_64 != 0, out),
        _ => Err(Unsupported(format!(
            "{}: {} is not described",
            super::name(c.nr),
            ipc_sub_name(sub)
        ))),
    }
}

/// The 32-bit `compat_mmsghdr`: a [`COMPAT_MSGHDR`]-byte
/// `compat_msghdr`, then the 32-bit `msg_len`.
const COMPAT_MMSG: super::net::MmsgAbi = super::net::MmsgAbi {
    size: COMPAT_MMSGHDR,
    len_at: COMPAT_MSGHDR,
    received: received_compat_msghdr,
};

/// `recvmmsg(fd, msgvec, vlen, flags, timeout)` of a 32-bit caller
/// (`compat_sys_recvmmsg_time32`, `_time64`): for each of the `ret`
/// [`COMPAT_MMSGHDR`]s at `msgvec`, what `recvmsg` stores through its
/// `compat_msghdr` (with `msg_len` bytes of data) and `msg_len` itself;
/// the time left, `TS` bytes at `timeout` (an `old_timespec32`, or the
/// 16-byte timespec of `recvmmsg_time64`), when at least one message
/// came. Nothing when none came or it failed.
fn recvmmsg32<const TS: u64>(
    c: &Call,
    mem: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    let vlen = u64::from(c.args[2] as u32);
    super::net::received_mmsgs(c, mem, &COMPAT_MMSG, vlen, TS, out)
}

/// `sendmmsg(fd, msgvec, vlen, flags)` of a 32-bit caller
/// (`compat_sys_sendmmsg`): the `msg_len` of each message it sent, in
/// its [`COMPAT_MMSGHDR`].
fn sendmmsg32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    super::net::sent_mmsgs(c, &COMPAT_MMSG, u64::from(c.args[2] as u32), out)
}

/// `readdir(fd, dirent, count)`: one `compat_old_linux_dirent` when it
/// returns 1 (the fixed part, the `d_namlen` bytes of the name and its
/// zero); nothing at the end (0).
fn old_readdir(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret != 1 {
        return Ok(());
    }
    let at = c.args[1];
    // d_namlen: the low half of the u32 at offset 8 (little-endian).
    let namlen = read_u32(c, mem, at + 8, "struct compat_old_linux_dirent's d_namlen")? & 0xffff;
    push(out, at, COMPAT_OLD_DIRENT + u64::from(namlen) + 1);
    Ok(())
}

/// An i386 `struct compat_sigaction` (the 174 `rt_sigaction`'s): the
/// 32-bit `sa_handler`, `sa_flags` and `sa_restorer`, then the 8-byte
/// `compat_sigset_t` mask.
pub const COMPAT_SIGACTION: u64 = 3 * 4 + 8;
/// An i386 `struct compat_old_sigaction` (the old `sigaction`'s, 67): the
/// 32-bit `sa_handler`, the 32-bit `compat_old_sigset_t` mask, `sa_flags`
/// and `sa_restorer`.
pub const COMPAT_OLD_SIGACTION: u64 = 4 * 4;
/// An i386 `compat_old_sigset_t`: the first 32 signals' bits.
pub const COMPAT_OLD_SIGSET: u64 = 4;
/// An i386 `compat_stack_t`: the 32-bit `ss_sp`, the int `ss_flags` and
/// the 32-bit `ss_size`.
pub const COMPAT_STACK_T: u64 = 3 * 4;

/// Refuses a 32-bit call that installed a signal handler: `handler`, the
/// new action's, neither `SIG_DFL` (0) nor `SIG_IGN` (1). The kernel marks
/// an action set by a compat call `SA_IA32_ABI` (`sigaction_compat_abi`)
/// and delivers its signal with an i386 frame, the handler run in 32-bit
/// mode and left by the i386 `sigreturn`/`rt_sigreturn`: code the
/// recorder does not follow. (A 64-bit handler so installed crashes
/// natively: its code run as 32-bit code.)
fn refuse_handler(c: &Call, sig: u64, handler: u32) -> Result<(), Unsupported> {
    if c.ret < 0 || handler <= 1 {
        return Ok(());
    }
    Err(Unsupported(format!(
        "{} installed a handler ({handler:#x}) for signal {}: the kernel delivers a \
         signal to a handler set by a 32-bit call with an i386 frame, in 32-bit mode, \
         which the recorder does not follow (install it with the x86-64 call; a \
         32-bit call may query, ignore or reset an action)",
        super::name(c.nr),
        sig as u32 as i32
    )))
}

/// `rt_sigaction(sig, act, oact, sigsetsize)` of a 32-bit caller
/// (`compat_sys_rt_sigaction`): on success the old action as a 20-byte
/// [`COMPAT_SIGACTION`] at `oact` when not null. A new handler at `act`
/// is refused ([`refuse_handler`]).
fn rt_sigaction32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret >= 0 && c.args[1] != 0 {
        let handler = read_u32(c, mem, c.args[1], "struct compat_sigaction's sa_handler")?;
        refuse_handler(c, c.args[0], handler)?;
    }
    fixed::<2, COMPAT_SIGACTION>(c, mem, out)
}

/// `sigaction(sig, act, oact)` of a 32-bit caller
/// (`compat_sys_sigaction`): on success the old action as a 16-byte
/// [`COMPAT_OLD_SIGACTION`] at `oact` when not null. A new handler at
/// `act` is refused ([`refuse_handler`]).
fn sigaction32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret >= 0 && c.args[1] != 0 {
        let handler = read_u32(
            c,
            mem,
            c.args[1],
            "struct compat_old_sigaction's sa_handler",
        )?;
        refuse_handler(c, c.args[0], handler)?;
    }
    fixed::<2, COMPAT_OLD_SIGACTION>(c, mem, out)
}

/// `signal(sig, handler)` of a 32-bit caller (`sys_signal`): it returns
/// the old handler and writes no memory; a new handler is refused
/// ([`refuse_handler`]).
fn signal32(c: &Call, _: &dyn MemReader, _: &mut Vec<Region>) -> Result<(), Unsupported> {
    refuse_handler(c, c.args[0], c.args[1] as u32)
}

const fn d(
    i386: i64,
    name: &'static str,
    may_block: bool,
    replay: ReplayAction,
    outputs: super::OutputsFn,
) -> SyscallDesc {
    SyscallDesc {
        nr: COMPAT_32 | i386,
        name,
        may_block,
        replay,
        outputs,
    }
}

/// `times(buf)`: the `compat_tms` at `buf` unless it failed with EFAULT
/// (its only failure; any other result is ticks, which may look negative
/// in 32 bits).
fn times32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret != -i64::from(libc::EFAULT) {
        push(out, c.args[0], COMPAT_TMS);
    }
    Ok(())
}

/// `nanosleep(req, rem)`: the time left, an `old_timespec32` at `rem`,
/// when a signal interrupted it.
fn nanosleep32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if interrupted(c.ret) {
        push(out, c.args[1], OLD_TIMESPEC32);
    }
    Ok(())
}

/// `clock_nanosleep(clock, flags, req, rem)`: the time left, an
/// `old_timespec32` at `rem`, when a signal interrupted a relative sleep
/// (an absolute one, `TIMER_ABSTIME`, stores none).
fn clock_nanosleep32(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if interrupted(c.ret) && c.args[1] & libc::TIMER_ABSTIME as u64 == 0 {
        push(out, c.args[3], OLD_TIMESPEC32);
    }
    Ok(())
}

/// `ppoll(fds, nfds, tsp, sigmask, sigsetsize)` of a 32-bit caller: the
/// `nfds` 8-byte `struct pollfd`s (one layout for both ABIs) on success and
/// when a signal interrupted it, and the time left, an `old_timespec32` at
/// `tsp`, unless the timeout itself faulted (the kernel stores it on the
/// way out whatever the result).
fn ppoll32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret >= 0 || interrupted(c.ret) {
        push(out, c.args[0], c.args[1].saturating_mul(POLLFD));
    }
    if c.ret != -i64::from(libc::EFAULT) {
        push(out, c.args[2], OLD_TIMESPEC32);
    }
    Ok(())
}

/// Bytes of one of a 32-bit caller's fd_sets for `nfds` descriptors: whole
/// 32-bit `compat_ulong_t`s (the x86-64 call's are 64-bit words).
pub fn compat_fd_set_bytes(nfds: u64) -> u64 {
    nfds.div_ceil(32).saturating_mul(4)
}

/// `pselect6(nfds, readfds, writefds, exceptfds, tsp, sig)` of a 32-bit
/// caller (`compat_sys_pselect6_time32`, `compat_sys_pselect6_time64`):
/// the three fd_sets of 32-bit words on success (zeroed on timeout), and
/// the time left, `TS` bytes at `tsp` (an `old_timespec32`, or the 64-bit
/// `timespec` of `pselect6_time64`), whatever the result but EFAULT.
fn pselect6_32<const TS: u64>(
    c: &Call,
    _: &dyn MemReader,
    out: &mut Vec<Region>,
) -> Result<(), Unsupported> {
    if c.ret >= 0 {
        let bytes = compat_fd_set_bytes(u64::from(c.args[0] as u32));
        for &set in &c.args[1..4] {
            push(out, set, bytes);
        }
    }
    if c.ret != -i64::from(libc::EFAULT) {
        push(out, c.args[4], TS);
    }
    Ok(())
}

/// `_newselect(n, inp, outp, exp, tvp)` of a 32-bit caller
/// (`compat_sys_select`): the three fd_sets of 32-bit words on success
/// (zeroed on timeout), and the time left, an `old_timeval32` at `tvp`,
/// whatever the result but EFAULT (as the kernel's `poll_select_finish`).
fn newselect32(c: &Call, _: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    select32(
        c,
        [c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]],
        out,
    );
    Ok(())
}

/// The old `select(arg)` of a 32-bit caller (82, `compat_sys_old_select`):
/// its five arguments are a `struct compat_sel_arg_struct` of 32-bit values
/// at `arg` (`n`, `inp`, `outp`, `exp`, `tvp`), which the kernel only
/// reads; then as `_newselect`.
fn old_select32(c: &Call, mem: &dyn MemReader, out: &mut Vec<Region>) -> Result<(), Unsupported> {
    if c.ret == -i64::from(libc::EFAULT) {
        return Ok(());
    }
    let mut args = [0u64; 5];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64::from(read_u32(
            c,
            mem,
            c.args[0] + 4 * i as u64,
            "struct compat_sel_arg_struct",
        )?);
    }
    select32(c, args, out);
    Ok(())
}

/// What a 32-bit `select` of arguments `[n, inp, outp, exp, tvp]` wrote.
fn select32(c: &Call, [n, sets @ .., tvp]: [u64; 5], out: &mut Vec<Region>) {
    if c.ret >= 0 {
        let bytes = compat_fd_set_bytes(u64::from(n as u32));
        for set in sets {
            push(out, set, bytes);
        }
    }
    if c.ret != -i64::from(libc::EFAULT) {
        push(out, tvp, OLD_TIMEVAL32);
    }
}

/// The rows, sorted by number.
pub static COMPAT_ROWS: &[SyscallDesc] = &[
    // Described as the call it resumes (the recorder keeps the thread's
    // last call that returned `-ERESTART_RESTARTBLOCK`), as the x86-64 row.
    d(
        0,
        "restart_syscall",
        true,
        ReplayAction::Emulate,
        super::process::restart_syscall,
    ),
    d(
        13,
        "time",
        false,
        ReplayAction::Emulate,
        fixed::<0, OLD_TIME32>,
    ),
    d(
        18,
        "oldstat",
        false,
        ReplayAction::Emulate,
        fixed::<1, OLD_KERNEL_STAT>,
    ),
    d(19, "lseek", false, ReplayAction::Emulate, none),
    d(
        28,
        "oldfstat",
        false,
        ReplayAction::Emulate,
        fixed::<1, OLD_KERNEL_STAT>,
    ),
    d(30, "utime", false, ReplayAction::Emulate, none),
    d(43, "times", false, ReplayAction::Emulate, times32),
    d(48, "signal", false, ReplayAction::Execute, signal32),
    d(55, "fcntl", true, ReplayAction::Emulate, fcntl64),
    d(
        59,
        "oldolduname",
        false,
        ReplayAction::Emulate,
        fixed::<0, OLDOLD_UTSNAME>,
    ),
    d(67, "sigaction", false, ReplayAction::Execute, sigaction32),
    d(
        73,
        "sigpending",
        false,
        ReplayAction::Emulate,
        fixed::<0, COMPAT_OLD_SIGSET>,
    ),
    d(
        76,
        "getrlimit",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RLIMIT>,
    ),
    d(
        77,
        "getrusage",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RUSAGE>,
    ),
    d(
        78,
        "gettimeofday",
        false,
        ReplayAction::Emulate,
        fixed2::<0, OLD_TIMEVAL32, 1, TIMEZONE>,
    ),
    d(82, "select", true, ReplayAction::Emulate, old_select32),
    d(
        84,
        "oldlstat",
        false,
        ReplayAction::Emulate,
        fixed::<1, OLD_KERNEL_STAT>,
    ),
    d(89, "readdir", false, ReplayAction::Emulate, old_readdir),
    d(90, "mmap", false, ReplayAction::Mmap, old_mmap),
    d(
        99,
        "statfs",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_STATFS>,
    ),
    d(
        100,
        "fstatfs",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_STATFS>,
    ),
    d(102, "socketcall", true, ReplayAction::Emulate, socketcall32),
    d(
        106,
        "stat",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_STAT>,
    ),
    d(
        107,
        "lstat",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_STAT>,
    ),
    d(
        108,
        "fstat",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_STAT>,
    ),
    d(
        109,
        "olduname",
        false,
        ReplayAction::Emulate,
        fixed::<0, OLD_UTSNAME>,
    ),
    d(
        116,
        "sysinfo",
        false,
        ReplayAction::Emulate,
        fixed::<0, COMPAT_SYSINFO>,
    ),
    d(117, "ipc", true, ReplayAction::Emulate, ipc32),
    d(
        126,
        "sigprocmask",
        false,
        ReplayAction::Execute,
        fixed::<2, COMPAT_OLD_SIGSET>,
    ),
    d(
        140,
        "_llseek",
        false,
        ReplayAction::Emulate,
        fixed::<3, LOFF_T>,
    ),
    d(
        141,
        "getdents",
        false,
        ReplayAction::Emulate,
        ret_bytes::<1, 2>,
    ),
    d(142, "_newselect", true, ReplayAction::Emulate, newselect32),
    d(145, "readv", true, ReplayAction::Emulate, iov_ret::<1, 2>),
    d(146, "writev", true, ReplayAction::Emulate, none),
    d(162, "nanosleep", true, ReplayAction::Emulate, nanosleep32),
    d(
        174,
        "rt_sigaction",
        false,
        ReplayAction::Execute,
        rt_sigaction32,
    ),
    d(
        175,
        "rt_sigprocmask",
        false,
        ReplayAction::Execute,
        sized_by_arg::<2, 3>,
    ),
    d(
        176,
        "rt_sigpending",
        false,
        ReplayAction::Emulate,
        sized_by_arg::<0, 1>,
    ),
    d(
        177,
        "rt_sigtimedwait",
        true,
        ReplayAction::Emulate,
        rt_sigtimedwait32,
    ),
    d(
        180,
        "pread64",
        false,
        ReplayAction::Emulate,
        ret_bytes::<1, 2>,
    ),
    d(181, "pwrite64", false, ReplayAction::Emulate, none),
    d(
        186,
        "sigaltstack",
        false,
        ReplayAction::Execute,
        fixed::<1, COMPAT_STACK_T>,
    ),
    d(
        187,
        "sendfile",
        true,
        ReplayAction::Emulate,
        fixed::<2, COMPAT_OFF_T>,
    ),
    d(
        191,
        "ugetrlimit",
        false,
        ReplayAction::Emulate,
        fixed::<1, COMPAT_RLIMIT>,
    ),
    d(192, "mmap2", false, ReplayAction::Mmap, none),
    d(193, "truncate64", false, ReplayAction::Emulate, none),
    d(194, "ftruncate64", false, ReplayAction::Emulate, none),
    d(
        195,
        "stat64",
        false,
        ReplayAction::Emulate,
        fixed::<1, STAT64>,
    ),
    d(
        196,
        "lstat64",
        false,
        ReplayAction::Emulate,
        fixed::<1, STAT64>,
    ),
    d(
        197,
        "fstat64",
        false,
        ReplayAction::Emulate,
        fixed::<1, STAT64>,
    ),
    d(221, "fcntl64", true, ReplayAction::Emulate, fcntl64),
    d(225, "readahead", false, ReplayAction::Emulate, none),
    d(245, "io_setup", false, ReplayAction::Emulate, io_setup32),
    d(248, "io_submit", true, ReplayAction::Emulate, io_submit32),
    d(250, "fadvise64", false, ReplayAction::Emulate, none),
    d(
        265,
        "clock_gettime",
        false,
        ReplayAction::Emulate,
        fixed::<1, OLD_TIMESPEC32>,
    ),
    d(
        266,
        "clock_getres",
        false,
        ReplayAction::Emulate,
        fixed::<1, OLD_TIMESPEC32>,
    ),
    d(
        267,
        "clock_nanosleep",
        true,
        ReplayAction::Emulate,
        clock_nanosleep32,
    ),
    d(
        268,
        "statfs64",
        false,
        ReplayAction::Emulate,
        fixed::<2, COMPAT_STATFS64>,
    ),
    d(
        269,
        "fstatfs64",
        false,
        ReplayAction::Emulate,
        fixed::<2, COMPAT_STATFS64>,
    ),
    d(271, "utimes", false, ReplayAction::Emulate, none),
    d(272, "fadvise64_64", false, ReplayAction::Emulate, none),
    d(277, "mq_open", false, ReplayAction::Emulate, none),
    d(281, "mq_notify", false, ReplayAction::Emulate, none),
    d(
        282,
        "mq_getsetattr",
        false,
        ReplayAction::Emulate,
        fixed::<2, COMPAT_MQ_ATTR>,
    ),
    d(299, "futimesat", false, ReplayAction::Emulate, none),
    d(
        300,
        "fstatat64",
        false,
        ReplayAction::Emulate,
        fixed::<2, STAT64>,
    ),
    d(
        308,
        "pselect6",
        true,
        ReplayAction::Emulate,
        pselect6_32::<OLD_TIMESPEC32>,
    ),
    d(309, "ppoll", true, ReplayAction::Emulate, ppoll32),
    d(314, "sync_file_range", false, ReplayAction::Emulate, none),
    d(
        316,
        "vmsplice",
        true,
        ReplayAction::Emulate,
        iov_ret::<1, 2>,
    ),
    d(320, "utimensat", false, ReplayAction::Emulate, none),
    d(324, "fallocate", false, ReplayAction::Emulate, none),
    d(333, "preadv", false, ReplayAction::Emulate, iov_ret::<1, 2>),
    d(334, "pwritev", false, ReplayAction::Emulate, none),
    d(
        337,
        "recvmmsg",
        true,
        ReplayAction::Emulate,
        recvmmsg32::<OLD_TIMESPEC32>,
    ),
    d(345, "sendmmsg", true, ReplayAction::Emulate, sendmmsg32),
    d(
        347,
        "process_vm_readv",
        false,
        ReplayAction::Emulate,
        iov_ret::<1, 2>,
    ),
    d(370, "sendmsg", true, ReplayAction::Emulate, none),
    d(372, "recvmsg", true, ReplayAction::Emulate, recvmsg32),
    d(378, "preadv2", true, ReplayAction::Emulate, iov_ret::<1, 2>),
    d(379, "pwritev2", true, ReplayAction::Emulate, none),
    d(394, "semctl", false, ReplayAction::Emulate, semctl32),
    d(396, "shmctl", false, ReplayAction::Emulate, shmctl32),
    d(400, "msgsnd", true, ReplayAction::Emulate, none),
    d(401, "msgrcv", true, ReplayAction::Emulate, msgrcv32),
    d(402, "msgctl", false, ReplayAction::Emulate, msgctl32),
    d(
        413,
        "pselect6_time64",
        true,
        ReplayAction::Emulate,
        pselect6_32::<TIMESPEC>,
    ),
    d(
        417,
        "recvmmsg_time64",
        true,
        ReplayAction::Emulate,
        recvmmsg32::<TIMESPEC>,
    ),
    d(
        421,
        "rt_sigtimedwait_time64",
        true,
        ReplayAction::Emulate,
        rt_sigtimedwait32,
    ),
];

/// The row of the 32-bit call `nr` (a trace number), if it has one here.
pub fn lookup(nr: i64) -> Option<&'static SyscallDesc> {
    COMPAT_ROWS
        .binary_search_by_key(&nr, |d| d.nr)
        .ok()
        .map(|i| &COMPAT_ROWS[i])
}
