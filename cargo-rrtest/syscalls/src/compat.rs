//! 32-bit syscalls (`int $0x80`) made by a 64-bit program: how the recorder
//! and the replayer tell them apart from 64-bit ones and name them.
//!
//! The kernel serves `int $0x80` from a 64-bit process with the i386 table,
//! arguments in ebx, ecx, edx, esi, edi, ebp. Those numbers mean other calls
//! in the x86-64 table (4 is `write` for i386 and `stat` for x86-64), so a
//! 32-bit call is carried in the trace as [`COMPAT_32`] `|` its i386 number:
//! a number no row of [`crate::TABLE`] has. The recorder records its result
//! (a call the kernel answers with ENOSYS replays like any invalid number).
//! The calls of [`EQUIVALENTS`] take the same arguments in the same order as
//! an x86-64 call, and write the same memory: they are described by that
//! call's row ([`x86_64_equivalent`]), and what the recorder and the
//! replayer do with a call by its meaning (follow the program's output,
//! wait for a thread's exit, execute a `brk`) they match by [`row_nr`], its
//! x86-64 number. Calls whose i386 layouts differ simply (`time`,
//! `gettimeofday`, the 32-bit `clock_gettime` and `clock_getres`, `mmap2`,
//! the `stat64` family, the old `stat` calls and the oldest ones,
//! `getdents`, `readdir`, `olduname`, the 32-bit file-time calls,
//! `fcntl64` and its locks (and the old `fcntl`, which the i386 table
//! serves with `fcntl64`'s entry), the iovec calls (`vmsplice` and
//! `process_vm_readv` too), the split-offset and split-length calls
//! (`fallocate`, `fadvise64`, `readahead`, `sync_file_range`, ...),
//! `sendfile`'s 32-bit offset, `recvmsg`'s 28-byte `compat_msghdr`,
//! `recvmmsg`'s and `sendmmsg`'s 32-byte `compat_mmsghdr`s, the
//! blocking `nanosleep`, `clock_nanosleep`, `ppoll`, `pselect6` and
//! `rt_sigtimedwait` of 32-bit timespecs, `socketcall` and the old `mmap`,
//! ...) have rows of their own ([`crate::compat_rows`]);
//! those of them that still mean an x86-64 call ([`MEANINGS`]: `writev`,
//! `pwrite64`, `ftruncate64`, `fcntl64`, `ppoll`, `pselect6`, `sendfile`,
//! `fallocate`, ...) are
//! matched by that call's number too, and [`x86_64_call`] gives
//! the x86-64 call's arguments (`mmap2` is recorded and replayed as the
//! `mmap` it means; a split offset or length is joined). An iovec array a 32-bit
//! call reads or fills is one of 8-byte `compat_iovec`s ([`read_iovec`]).
//! The calls whose arguments are in memory, which the kernel reads at
//! the entry (`socketcall`'s array of 32-bit words, the old `mmap`'s
//! `struct mmap_arg_struct32`, the `union semun` and the `struct
//! compat_ipc_kludge` of the `ipc` multiplexer's `SEMCTL` and `MSGRCV`),
//! carry the words read there in the argument
//! registers they do not use ([`entry_args`], in recording and in
//! replay's check of the entry): the exit describes the call by them
//! (`socketcall` as the i386 socket call of its sub-call's own number,
//! [`socketcall_sub`]; the old `mmap` as the `mmap` they mean,
//! [`x86_64_call`]; `ipc` as its System V sub-call), whatever the call
//! or the program wrote over them.
//! The signal-state calls (`rt_sigprocmask`, `sigprocmask`,
//! `rt_sigaction`, `sigaction`, `signal`, `sigpending`, `rt_sigpending`,
//! `sigaltstack`) have rows of their own and mean the x86-64 calls
//! ([`MEANINGS`]); a handler one of them installs is refused, named
//! ([`crate::compat_rows`]: the kernel would run it with an i386 frame).
//! Any other 32-bit call that does not fail with ENOSYS marks the trace
//! unreplayable, named: the memory it writes is not described (the i386
//! layouts differ), or it changes state the recorder does not follow
//! (threads, `set_thread_area`/`get_thread_area`, which the x86-64 table
//! does not follow either, the i386 `sigreturn`/`rt_sigreturn`). This
//! module must not describe outputs.

/// Marks a syscall number as an i386 one made through `int $0x80`.
pub const COMPAT_32: i64 = 1 << 32;

/// The bytes of `int $0x80`.
pub const INT80: [u8; 2] = [0xcd, 0x80];

/// The trace's number of the i386 syscall `eax` (the low 32 bits of
/// `orig_rax` at its entry).
pub fn compat_nr(orig_rax: u64) -> i64 {
    COMPAT_32 | i64::from(orig_rax as u32)
}

/// Whether `nr` is a 32-bit call's number made by [`compat_nr`].
pub fn is_compat(nr: i64) -> bool {
    nr & COMPAT_32 != 0 && nr >> 33 == 0
}

/// The arguments of an `int $0x80` call, from the registers the i386 ABI
/// passes them in (ebx, ecx, edx, esi, edi, ebp), zero-extended.
pub fn compat_args(regs: &rrtest_sys::ptrace::Regs) -> [u64; 6] {
    [regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp].map(|r| u64::from(r as u32))
}

/// i386 calls that mean what an x86-64 call means, with the same
/// arguments in the same registers' order and the same memory written
/// (32-bit pointers, which the kernel zero-extends as [`compat_args`]
/// does): (i386 number, x86-64 number). Each is served by the kernel's
/// `sys_*` entry of the x86-64 call (no `compat_sys_*` entry of its own),
/// except `open` and `openat`, whose compat entries differ only in not
/// adding `O_LARGEFILE` (they write no memory). The 16-bit id calls return
/// what the kernel returns, recorded as any result. `uname` (122, the
/// kernel's `newuname`) fills the same `struct new_utsname` of characters
/// only; `pipe`/`pipe2` two ints; `getrandom` and `getcwd` bytes;
/// `clock_gettime64`/`clock_getres_time64` (403, 406) the 64-bit `timespec`;
/// `prlimit64` two u64s; `getdents64` the same `linux_dirent64` records;
/// `getcpu` two unsigned ints; `readlink` the link's bytes (as many as it
/// returns); `statx` the same `struct statx` (one layout for every ABI).
/// `link`, `rename`, `symlink`, `chmod`, `fchmod`, `flock` and `fchown32`
/// (the kernel's `fchown` with 32-bit ids) write no memory, nor do `creat`,
/// `mknod` (the same `unsigned` device number), `chown32`/`lchown32` (the
/// kernel's `chown`/`lchown`), the `*at` calls but `readlinkat` (which
/// fills the link's bytes, as many as it returns), `eventfd`,
/// `epoll_create`, `epoll_create1` and `epoll_ctl`, nor do the inotify
/// calls (`inotify_init`, `inotify_init1`, `inotify_add_watch`,
/// `inotify_rm_watch`) and `utimensat_time64` (412, the kernel's
/// `utimensat` of 64-bit `timespec`s); `clock_nanosleep_time64` (407)
/// and `ppoll_time64` (414: `compat_sys_ppoll_time64`, the same pollfds,
/// 16-byte timespec and 8-byte sigset) block and store the time left as
/// the x86-64 calls do (kept on failure: `compat_rows::WRITES_ON_FAILURE`
/// has their trace numbers); `epoll_wait` fills
/// `struct epoll_event`s, packed 12 bytes on x86-64 as on i386, and
/// blocks as the x86-64 row says; so does `epoll_pwait` (319, the kernel's
/// `sys_epoll_pwait` for both ABIs), whose signal mask is an 8-byte
/// sigset on both: replay swaps it in, as for the x86-64 call, when the
/// signal that interrupted it is delivered (it matches the call by its
/// [`row_nr`]); `futex` (240) reads its timeout as a 32-bit timespec and
/// writes what the x86-64 `futex` writes, and `futex_time64` (422) is it
/// (the recorder holds no 32-bit wait at its entry: those block in the
/// kernel). `set_tid_address` (258) is `sys_set_tid_address`: the
/// pointer zero-extended, the thread's id returned (replay gives the
/// recorded one, matching the call by its [`row_nr`]), the word cleared
/// at the thread's exit the same 32-bit one. `sendfile64` (239, `sys_sendfile64`) stores the x86-64
/// `sendfile`'s 8-byte `loff_t`. The socket calls of their own numbers
/// (359-369, 371, 373) are the x86-64 calls' `sys_*` entries
/// (`recvfrom`'s compat entry only narrows its length) and write what
/// they write: `socketpair` two ints, `accept4`, `getsockname`,
/// `getpeername` and `recvfrom` an address and its 32-bit length,
/// `recvfrom` the bytes it returns; `getsockopt` stores the value's
/// length at `*optlen` and that many bytes at `optval` whatever the
/// option (those the kernel answers a 32-bit caller with a layout of its
/// own, `SO_RCVTIMEO_OLD`/`SO_SNDTIMEO_OLD` of an 8-byte `old_timeval32`,
/// `MCAST_MSFILTER`'s `compat_group_filter`, `IP_PKTOPTIONS`' 32-bit
/// control messages, netfilter's 32-bit tables, store the length of what
/// they wrote there too), and the length it needs on `ERANGE` (kept on
/// failure: `compat_rows::WRITES_ON_FAILURE`); `setsockopt` only reads
/// its value, whatever the option. The POSIX message queue calls
/// `mq_unlink` (278) and the `_time64` `mq_timedsend` and
/// `mq_timedreceive` (418, 419) are the x86-64 calls' `sys_*` entries;
/// `mq_timedsend` and `mq_timedreceive` (279, 280,
/// `sys_mq_timed*_time32`) read their absolute timeout as a 32-bit
/// timespec and write what the x86-64 calls write (the receive the
/// message, as many bytes as it returns, and its `unsigned int`
/// priority), and block as the x86-64 rows say. `semget`, `msgget` and
/// `semtimedop_time64` (393, 399, 420) are the x86-64 calls' `sys_*`
/// entries (a `struct sembuf` is three shorts on both ABIs, the timeout
/// a 64-bit timespec). `shmget` and `shmdt` (395, 398) are `sys_shmget`
/// and `sys_shmdt`; `shmat` (397, `compat_sys_shmat`) takes the same
/// arguments and returns the address attached at, which the kernel picks
/// below 4 GiB for a 32-bit caller: its segment's contents are its
/// output as the x86-64 call's are, and the recorder and the replayer
/// follow the attach and the detach by their meaning ([`shm_op`]).
/// `io_destroy` and `io_cancel` (246, 249) are `sys_io_destroy` and
/// `sys_io_cancel`; `io_getevents` (247, `sys_io_getevents_time32`)
/// reads its timeout as a 32-bit timespec and fills the same 32-byte
/// `struct io_event`s (one layout for both ABIs) and the ring's header;
/// `io_pgetevents` and `io_pgetevents_time64` (385, 416,
/// `compat_sys_io_pgetevents`/`_time64`) likewise, their 32-bit or 64-bit
/// timespec and their `struct __compat_aio_sigset` (a 32-bit mask pointer
/// and size) only read: replay finds that mask by the x86-64 number, as
/// for `pselect6`. Replay unmaps the ring at a 32-bit `io_destroy` as a
/// 32-bit detach ([`aio_ring_op`]). What the
/// recorder and the replayer do with a
/// call by its meaning they match by [`row_nr`], so these are followed as
/// the x86-64 calls are: the program's output (`write`), the output table
/// (`close`, `dup`, `dup2`, `dup3`), the address space replay changes again
/// (`brk`, `munmap`, `mprotect`, `mremap`, `madvise`, executed there),
/// a thread's `exit` (the
/// recorder waits for the thread to be gone before anything else runs, in
/// recording and replay), signals sent (`kill`, `tkill`, `tgkill`, delivered
/// and recorded as the kernel delivers them; replay skips the call and
/// delivers the recorded signal), files opened with `O_TRUNC`.
/// Not here: calls whose i386 structures differ (`time`, `olduname`,
/// `stat64`, `writev`'s iovecs, `utimes`' 32-bit `timeval`s, the 32-bit
/// `timespec`/`timeval` ones: those
/// with a simple layout have rows of their own, [`crate::compat_rows`]),
/// calls whose arguments differ (`pwrite64`'s split offset, `mmap2`'s page
/// offset: rows of their own too, see [`MEANINGS`]), calls that start
/// threads (`clone`), the signal-state calls (`compat_sys_*` entries of
/// i386 structures: rows of their own, see [`MEANINGS`]),
/// `socketcall` (102), whose arguments are an array in memory that the
/// kernel reads at the entry: a row of its own, described by the words
/// read there ([`entry_args`], [`socketcall_sub`]), and the `ipc`
/// multiplexer (117), likewise.
const EQUIVALENTS: &[(u32, i64)] = &[
    (1, 60),    // exit (of one thread)
    (3, 0),     // read
    (4, 1),     // write
    (5, 2),     // open (compat_sys_open: no forced O_LARGEFILE)
    (6, 3),     // close
    (8, 85),    // creat
    (9, 86),    // link
    (10, 87),   // unlink
    (12, 80),   // chdir
    (14, 133),  // mknod
    (15, 90),   // chmod
    (20, 39),   // getpid
    (24, 102),  // getuid (16-bit ids)
    (33, 21),   // access
    (37, 62),   // kill
    (38, 82),   // rename
    (39, 83),   // mkdir
    (40, 84),   // rmdir
    (41, 32),   // dup
    (42, 22),   // pipe
    (45, 12),   // brk
    (47, 104),  // getgid
    (49, 107),  // geteuid
    (50, 108),  // getegid
    (60, 95),   // umask
    (63, 33),   // dup2
    (64, 110),  // getppid
    (65, 111),  // getpgrp
    (83, 88),   // symlink
    (85, 89),   // readlink
    (91, 11),   // munmap
    (94, 91),   // fchmod
    (118, 74),  // fsync
    (122, 63),  // uname (newuname)
    (125, 10),  // mprotect
    (132, 121), // getpgid
    (133, 81),  // fchdir
    (143, 73),  // flock
    (147, 124), // getsid
    (148, 75),  // fdatasync
    (158, 24),  // sched_yield
    (163, 25),  // mremap
    (183, 79),  // getcwd
    (198, 94),  // lchown32 (sys_lchown, 32-bit ids)
    (199, 102), // getuid32
    (200, 104), // getgid32
    (201, 107), // geteuid32
    (202, 108), // getegid32
    (207, 93),  // fchown32
    (212, 92),  // chown32 (sys_chown)
    (219, 28),  // madvise
    (220, 217), // getdents64
    (224, 186), // gettid
    (238, 200), // tkill
    (239, 40),  // sendfile64 (sys_sendfile64: the 64-bit loff_t offset)
    (240, 202), // futex (sys_futex_time32: its timeout, read only, a 32-bit timespec)
    (246, 207), // io_destroy
    (247, 208), // io_getevents (sys_io_getevents_time32: its timeout, read only, a 32-bit timespec)
    (249, 210), // io_cancel
    (252, 231), // exit_group
    (258, 218), // set_tid_address (sys_set_tid_address: the pointer zero-extended)
    (254, 213), // epoll_create
    (255, 233), // epoll_ctl (packed 12-byte epoll_event on both)
    (256, 232), // epoll_wait
    (270, 234), // tgkill
    (278, 241), // mq_unlink
    (279, 242), // mq_timedsend (sys_mq_timedsend_time32: its timeout, read only, a 32-bit timespec)
    (280, 243), // mq_timedreceive (sys_mq_timedreceive_time32: likewise)
    (291, 253), // inotify_init
    (292, 254), // inotify_add_watch
    (293, 255), // inotify_rm_watch
    (295, 257), // openat (compat_sys_openat: no forced O_LARGEFILE)
    (296, 258), // mkdirat
    (297, 259), // mknodat
    (298, 260), // fchownat
    (301, 263), // unlinkat
    (302, 264), // renameat
    (303, 265), // linkat
    (304, 266), // symlinkat
    (305, 267), // readlinkat
    (306, 268), // fchmodat
    (307, 269), // faccessat
    (318, 309), // getcpu
    (319, 281), // epoll_pwait (sys_epoll_pwait: the same 8-byte sigset)
    (323, 284), // eventfd
    (328, 290), // eventfd2
    (329, 291), // epoll_create1
    (330, 292), // dup3
    (331, 293), // pipe2
    (332, 294), // inotify_init1
    (340, 302), // prlimit64
    (353, 316), // renameat2
    (355, 318), // getrandom
    (359, 41),  // socket
    (360, 53),  // socketpair
    (361, 49),  // bind
    (362, 42),  // connect
    (363, 50),  // listen
    (364, 288), // accept4
    (365, 55),  // getsockopt (its value and length stored as for x86-64)
    (366, 54),  // setsockopt (only reads its value)
    (367, 51),  // getsockname
    (368, 52),  // getpeername
    (369, 44),  // sendto
    (371, 45),  // recvfrom (compat_sys_recvfrom: the same arguments)
    (373, 48),  // shutdown
    (383, 332), // statx
    (385, 333), // io_pgetevents (compat_sys_io_pgetevents: a 32-bit timespec and mask pointer, read only)
    (393, 64),  // semget
    (395, 29),  // shmget
    (397, 30),  // shmat (compat_sys_shmat: the address, below 4 GiB)
    (398, 67),  // shmdt
    (399, 68),  // msgget
    (403, 228), // clock_gettime64
    (406, 229), // clock_getres_time64
    (407, 230), // clock_nanosleep_time64 (the 64-bit timespecs)
    (412, 280), // utimensat_time64 (the 64-bit timespecs)
    (414, 271), // ppoll_time64 (compat_sys_ppoll_time64: the same layouts)
    (416, 333), // io_pgetevents_time64 (compat_sys_io_pgetevents_time64: a 32-bit mask pointer, read only)
    (418, 242), // mq_timedsend_time64 (sys_mq_timedsend)
    (419, 243), // mq_timedreceive_time64 (sys_mq_timedreceive)
    (420, 220), // semtimedop_time64 (sys_semtimedop: the same 6-byte sembufs)
    (422, 202), // futex_time64 (sys_futex)
    (439, 439), // faccessat2
];

/// i386 calls with rows of their own ([`crate::compat_rows`]: the memory
/// they read or write, or their arguments, differ from the x86-64 call's)
/// that still mean an x86-64 call: (i386 number, x86-64 number). Their
/// kernel entries: `readv` and `writev` are `sys_readv`/`sys_writev`
/// (`compat_sys_*` in older kernels), reading 8-byte `compat_iovec`s for a
/// 32-bit caller; `preadv`, `pwritev`, `preadv2`, `pwritev2` are
/// `compat_sys_*`, the same iovecs, the offset split in two registers (low
/// half first; all ones for `preadv2`'s "current position"); `pread64`,
/// `pwrite64`, `truncate64` and `ftruncate64` are the `ia32_*` wrappers of
/// the x86-64 calls, the offset or length split likewise. [`row_nr`] gives
/// the x86-64 number, so that what follows a call by its meaning follows
/// these too: a 32-bit `writev`, `pwrite64` or `pwritev` to stdout is the
/// program's output, a 32-bit write or `ftruncate64` of a file mapped
/// shared stores the file again. [`x86_64_call`] joins their split values
/// into the x86-64 call's arguments; an iovec array stays the i386 one
/// ([`read_iovec`] reads it by the trace's number). `fcntl64` is
/// `compat_sys_fcntl64`, which hands every command but the locks to the
/// kernel's `do_fcntl` as the x86-64 `fcntl` does, and its locks through
/// the 32-bit `compat_flock` and the packed `compat_flock64`: its row
/// records the commands of an int or none, the locks and the owner
/// commands, so a 32-bit `F_DUPFD` of stdout is followed as the 64-bit one
/// is. `ppoll` (309) is `compat_sys_ppoll_time32` (a 32-bit `timespec`,
/// the same pollfds and 8-byte sigset): replay finds its signal mask as
/// the x86-64 `ppoll`'s by this number. `pselect6` and `pselect6_time64`
/// (308, 413) are `compat_sys_pselect6_time32`/`_time64`: fd_sets of
/// 32-bit words, and their sixth argument points to two 32-bit values
/// (the mask's pointer and size), which the replayer reads so for a
/// 32-bit call. The old `fcntl` (55) is `compat_sys_fcntl64` in the i386
/// table (the `compat_sys_fcntl` that refuses the 64-bit locks serves
/// other architectures' 32-bit tables), so it is `fcntl64`'s row. `readahead`, `fadvise64`,
/// `fadvise64_64`, `sync_file_range` and `fallocate` are the `ia32_*`
/// wrappers of the x86-64 calls (`arch/x86/kernel/sys_ia32.c`), their
/// 64-bit offsets and lengths split in two registers, low half first
/// (`fadvise64`'s length a 32-bit one), writing no memory: a 32-bit
/// `fallocate` of a file mapped shared stores the file again. `sendfile`
/// (187) is `compat_sys_sendfile`: it reads a 32-bit `compat_off_t` and
/// stores the new one there; it means the x86-64 `sendfile`, whose output
/// descriptor is followed as the file it writes. `vmsplice` and
/// `process_vm_readv` read 32-bit iovecs (`process_vm_readv` both its
/// local and its remote ones) and fill the local ones; `process_vm_writev`
/// (348) stays refused: it writes another process's memory, which the
/// recorder follows by the x86-64 number alone. `sendmsg` and `recvmsg`
/// (370, 372) are `compat_sys_sendmsg`/`compat_sys_recvmsg`, of a 28-byte
/// `compat_msghdr` (seven 32-bit fields), 32-bit iovecs and 32-bit
/// control messages (a 12-byte `compat_cmsghdr`). `rt_sigtimedwait`
/// and `rt_sigtimedwait_time64` (177, 421) are
/// `compat_sys_rt_sigtimedwait_time32`/`_time64`: an 8-byte sigset of
/// two 32-bit words (the same bits), a 32-bit or 64-bit timespec only
/// read, and the 128-byte `compat_siginfo` of the signal taken.
/// `mq_open` (277) and `mq_notify` (281) are `compat_sys_mq_open` and
/// `compat_sys_mq_notify`: they only read their i386 structures (a
/// `compat_mq_attr`, a `compat_sigevent`), writing no memory;
/// `mq_getsetattr` (282, `compat_sys_mq_getsetattr`) reads and stores
/// 32-byte `compat_mq_attr`s of eight 32-bit longs. `semctl`, `msgsnd`,
/// `msgrcv` and `msgctl` (394, 400-402) are `compat_sys_*` entries: a
/// `compat_msgbuf` of a 32-bit `mtype`, the 64-byte
/// `compat_semid64_ds` and the 88-byte `compat_msqid64_ds` (the
/// `IPC_64` bit of a command ignored); `shmctl` (396,
/// `compat_sys_shmctl`) the 84-byte `compat_shmid64_ds`, the 36-byte
/// `compat_shminfo64` and the 24-byte `compat_shm_info`. `recvmmsg`, `recvmmsg_time64` and
/// `sendmmsg` (337, 417, 345) are `compat_sys_recvmmsg_time32`/`_time64`
/// and `compat_sys_sendmmsg`: arrays of 32-byte `compat_mmsghdr`s (a
/// `compat_msghdr` and a 32-bit `msg_len`), the receive's timeout a
/// 32-bit or 64-bit timespec it stores the time left in. `io_setup` (245,
/// `compat_sys_io_setup`) stores the ring's address as a 32-bit context,
/// the ring mapped below 4 GiB (replay maps it as a 32-bit attach at that
/// context, [`aio_ring_op`]), and `io_submit` (248,
/// `compat_sys_io_submit`) reads an array of 32-bit iocb pointers (its
/// ring's tail read at its entry, [`entry_args`], as the x86-64 call's).
/// The signal-state calls: `rt_sigprocmask` (175,
/// `compat_sys_rt_sigprocmask`: the 8-byte sigset) and `sigprocmask`
/// (126, `compat_sys_sigprocmask`: the 4-byte `compat_old_sigset_t`)
/// mean `rt_sigprocmask`, so that replay drops a mask `sigsuspend`-like
/// calls swapped in when one sets the mask, as for the x86-64 call;
/// `rt_sigaction` (174, a 20-byte `compat_sigaction`), `sigaction` (67, a
/// 16-byte `compat_old_sigaction`) and `signal` (48, `sys_signal`) mean
/// `rt_sigaction`; `sigpending` (73, 4 bytes) and `rt_sigpending` (176)
/// `rt_sigpending`; `sigaltstack` (186, a 12-byte `compat_stack_t`)
/// `sigaltstack`. The recorder reads the mask and the handlers of a
/// thread from the kernel when it decides a delivery, so it sees what
/// these set.
const MEANINGS: &[(u32, i64)] = &[
    (48, 13),   // signal (sys_signal: no memory written)
    (55, 72),   // fcntl (compat_sys_fcntl: fcntl64's commands, no 64-bit locks)
    (67, 13),   // sigaction (a 16-byte compat_old_sigaction)
    (73, 127),  // sigpending (a 4-byte compat_old_sigset_t)
    (126, 14),  // sigprocmask (a 4-byte compat_old_sigset_t)
    (145, 19),  // readv
    (146, 20),  // writev
    (174, 13),  // rt_sigaction (a 20-byte compat_sigaction)
    (175, 14),  // rt_sigprocmask (the same 8-byte sigset)
    (176, 127), // rt_sigpending (the same 8-byte sigset)
    (177, 128), // rt_sigtimedwait (a 32-bit timespec, the compat_siginfo)
    (180, 17),  // pread64
    (181, 18),  // pwrite64
    (186, 131), // sigaltstack (a 12-byte compat_stack_t)
    (187, 40),  // sendfile (a 32-bit compat_off_t offset)
    (193, 76),  // truncate64
    (194, 77),  // ftruncate64
    (221, 72),  // fcntl64 (its int, lock and owner commands are recorded)
    (225, 187), // readahead (the offset split)
    (245, 206), // io_setup (compat_sys_io_setup: a 32-bit context)
    (248, 209), // io_submit (compat_sys_io_submit: 32-bit iocb pointers)
    (250, 221), // fadvise64 (the offset split, a 32-bit length)
    (272, 221), // fadvise64_64 (the offset and the length split)
    (277, 240), // mq_open (a 32-byte compat_mq_attr, only read)
    (281, 244), // mq_notify (a 64-byte compat_sigevent, only read)
    (282, 245), // mq_getsetattr (32-byte compat_mq_attrs)
    (308, 270), // pselect6 (32-bit fd_sets and timespec: a row of its own)
    (309, 271), // ppoll (32-bit timespec: a row of its own)
    (314, 277), // sync_file_range (the offset and the length split)
    (316, 278), // vmsplice (32-bit iovecs)
    (324, 285), // fallocate (the offset and the length split)
    (333, 295), // preadv
    (334, 296), // pwritev
    (347, 310), // process_vm_readv (32-bit iovecs, local and remote)
    (370, 46),  // sendmsg (a 28-byte compat_msghdr, only read)
    (337, 299), // recvmmsg (32-byte compat_mmsghdrs, a 32-bit timespec)
    (345, 307), // sendmmsg (32-byte compat_mmsghdrs)
    (372, 47),  // recvmsg (a 28-byte compat_msghdr)
    (394, 66),  // semctl (the 64-byte compat_semid64_ds)
    (396, 31),  // shmctl (the 84-byte compat_shmid64_ds)
    (400, 69),  // msgsnd (a compat_msgbuf of a 32-bit mtype, only read)
    (401, 70),  // msgrcv (a compat_msgbuf of a 32-bit mtype)
    (402, 71),  // msgctl (the 88-byte compat_msqid64_ds)
    (378, 327), // preadv2
    (379, 328), // pwritev2
    (413, 270), // pselect6_time64 (32-bit fd_sets: a row of its own)
    (417, 299), // recvmmsg_time64 (32-byte compat_mmsghdrs)
    (421, 128), // rt_sigtimedwait_time64 (the compat_siginfo)
];

/// The x86-64 syscall whose table row describes the 32-bit call `nr` (made
/// by [`compat_nr`]), if it is one of the module's `EQUIVALENTS`.
pub fn x86_64_equivalent(nr: i64) -> Option<i64> {
    if !is_compat(nr) {
        return None;
    }
    let n = nr as u32;
    EQUIVALENTS.iter().find(|&&(k, _)| k == n).map(|&(_, x)| x)
}

/// The number whose x86-64 meaning `nr` has: its [`x86_64_equivalent`] for
/// a 32-bit call that has one, the x86-64 call one of `MEANINGS` means,
/// else `nr` itself. Code that follows a call by what it does (a write to
/// the program's output, a `close` of an output descriptor) matches on
/// this, not on the trace's number.
pub fn row_nr(nr: i64) -> i64 {
    x86_64_equivalent(nr).or_else(|| meaning(nr)).unwrap_or(nr)
}

/// The x86-64 call one of the 32-bit calls of [`MEANINGS`] means.
fn meaning(nr: i64) -> Option<i64> {
    if !is_compat(nr) {
        return None;
    }
    let n = nr as u32;
    MEANINGS.iter().find(|&&(k, _)| k == n).map(|&(_, x)| x)
}

/// The i386 `restart_syscall` (0), as the trace numbers it.
pub const COMPAT_RESTART_SYSCALL: i64 = COMPAT_32;

/// Whether `nr` (a trace number) is `restart_syscall`: the x86-64 one
/// (219) or the i386 one ([`COMPAT_RESTART_SYSCALL`]), which the kernel
/// makes a 32-bit call interrupted with `-ERESTART_RESTARTBLOCK` resume
/// with.
pub fn is_restart_syscall(nr: i64) -> bool {
    nr == libc::SYS_restart_syscall || nr == COMPAT_RESTART_SYSCALL
}

/// What the kernel puts in rax to resume the call `nr` (a trace number)
/// that returned `-ERESTART_RESTARTBLOCK` with no handler to run: the
/// `restart_syscall` of the call's own ABI, 0 for a 32-bit call (219 is
/// the i386 `madvise`).
pub fn restart_syscall_rax(nr: i64) -> u64 {
    if is_compat(nr) {
        0
    } else {
        libc::SYS_restart_syscall as u64
    }
}

/// A `struct compat_iovec`: a 32-bit base and a 32-bit length.
pub const COMPAT_IOVEC: u64 = 8;
/// A 64-bit `struct iovec`: a 64-bit base and a 64-bit length.
const IOVEC: u64 = 16;

/// Entry `i` of the iovec array at `iov` that call `nr` (the trace's
/// number) reads or fills, as (base, length): a 32-bit call's are
/// `COMPAT_IOVEC`s (the kernel reads them so for any call made in
/// compat mode), a 64-bit call's `struct iovec`s.
pub fn read_iovec(
    mem: &dyn crate::MemReader,
    nr: i64,
    iov: u64,
    i: u64,
) -> std::io::Result<(u64, u64)> {
    if is_compat(nr) {
        let at = iov + i * COMPAT_IOVEC;
        Ok((
            u64::from(mem.read_u32(at)?),
            u64::from(mem.read_u32(at + 4)?),
        ))
    } else {
        let at = iov + i * IOVEC;
        Ok((mem.read_u64(at)?, mem.read_u64(at + 8)?))
    }
}

/// A 64-bit value an i386 call passes in two registers, low half first.
fn joined(lo: u64, hi: u64) -> u64 {
    (hi << 32) | (lo & 0xffff_ffff)
}

/// The i386 `mmap2` (192): `mmap`'s arguments, the offset in 4096-byte
/// pages (the kernel's `sys_mmap_pgoff`, whatever the page size).
const MMAP2: u32 = 192;

/// The i386 `socketcall` (102): `(call, args)`, its sub-call's arguments
/// an array of 32-bit words at `args` (`compat_sys_socketcall`).
const SOCKETCALL: u32 = 102;
/// The old i386 `mmap` (90, `compat_sys_ia32_mmap`): its one argument
/// points to a `struct mmap_arg_struct32` of six 32-bit words (addr, len,
/// prot, flags, fd, offset in bytes).
const OLD_MMAP: u32 = 90;
/// The words of an old `mmap`'s `struct mmap_arg_struct32`.
pub const MMAP_ARG_WORDS: u64 = 6;
/// The i386 `ipc` multiplexer (117, `compat_sys_ipc`): `(call, first,
/// second, third, ptr, fifth)`, the System V sub-call in the low 16 bits
/// of `call` and a version in the high 16.
const IPC: u32 = 117;
/// `ipc`'s `SEMCTL` and `MSGRCV` sub-calls (`include/uapi/linux/ipc.h`),
/// the two that read memory at the entry: `SEMCTL`'s `union semun` (a
/// 32-bit word at `ptr`), `MSGRCV`'s `struct compat_ipc_kludge` (the
/// 32-bit `msgp` and `msgtyp` at `ptr`) where its version is 0.
pub const IPC_SEMCTL: u64 = 3;
/// See [`IPC_SEMCTL`].
pub const IPC_MSGRCV: u64 = 12;
/// `ipc`'s shared memory sub-calls: `SHMAT(shmid, shmflg, &raddr,
/// shmaddr)` stores the address attached at in the 32-bit word at
/// `third` and returns 0 (`EINVAL` for version 1), `SHMDT(_, _, _,
/// shmaddr)`, `SHMGET(key, size, shmflg)`, `SHMCTL(shmid, cmd, _, buf)`.
pub const IPC_SHMAT: u64 = 21;
/// See [`IPC_SHMAT`].
pub const IPC_SHMDT: u64 = 22;
/// See [`IPC_SHMAT`].
pub const IPC_SHMGET: u64 = 23;
/// See [`IPC_SHMAT`].
pub const IPC_SHMCTL: u64 = 24;
/// Set in an `ipc` call's first argument (above its 32 bits) when the
/// words its sub-call reads at the entry were read there and are in its
/// sixth ([`entry_args`]).
pub const IPC_WORDS_READ: u64 = 1 << 32;

/// How many 32-bit argument words the kernel copies for each `socketcall`
/// sub-call (`SYS_SOCKET` 1 to `SYS_SENDMMSG` 20, `include/uapi/linux/net.h`;
/// the counts of `net/compat.c`'s table); 0 is no sub-call.
pub const SOCKETCALL_WORDS: [u8; 21] = [
    0, 3, 3, 3, 2, 3, 3, 3, 4, 4, 4, 6, 6, 2, 5, 5, 3, 3, 4, 5, 4,
];

/// Up to six 32-bit words packed two to a `u64`, the first in the low half.
fn pack(words: &[u32]) -> [u64; 3] {
    let mut packed = [0u64; 3];
    for (i, &w) in words.iter().enumerate().take(6) {
        packed[i / 2] |= u64::from(w) << (32 * (i % 2));
    }
    packed
}

/// Word `i` of the words [`entry_args`] packed from argument `first` on.
fn word(args: &[u64; 6], first: usize, i: usize) -> u64 {
    (args[first + i / 2] >> (32 * (i % 2))) & 0xffff_ffff
}

/// The arguments the trace carries for the 32-bit call `nr` made with
/// argument registers `args` ([`compat_args`]), read at its entry from
/// `mem` (the caller's memory). The calls whose arguments are in memory,
/// which the kernel reads at the entry (the program, or the call itself,
/// may change that memory before the exit, where the recorder describes
/// a call), carry those words in the registers they do not use, so that
/// the exit describes the call by what the kernel read, and replay checks
/// the same words at the same entry:
/// - `socketcall(call, ptr)`: `[call, ptr, w0 | w1 << 32, w2 | w3 << 32,
///   w4 | w5 << 32, n]`, the `n` words the kernel copies for that
///   sub-call ([`SOCKETCALL_WORDS`]); `n` is 0, and the words too, when
///   the sub-call is not one (EINVAL) or the words cannot be read
///   (EFAULT);
/// - the old `mmap(ptr)`: `[ptr, addr | len << 32, prot | flags << 32,
///   fd | offset << 32, 6, 0]`, or `[ptr, 0, 0, 0, 0, 0]` when the
///   struct cannot be read (EFAULT);
/// - `ipc(call, first, second, third, ptr, fifth)` of `SEMCTL`:
///   `[call | IPC_WORDS_READ, first, second, third, ptr, semun]` (the
///   32-bit word at `ptr`), and of `MSGRCV` of version 0: `[call |
///   IPC_WORDS_READ, first, second, third, ptr, msgp | msgtyp << 32]`
///   (the `struct compat_ipc_kludge` at `ptr`), the sixth register those
///   sub-calls do not use (`IPC_WORDS_READ`); its registers as they are
///   where `ptr` is null or cannot be read (EINVAL, EFAULT), and for the
///   other sub-calls.
///
/// And `io_submit(ctx, nr, iocbpp)`, the x86-64 call and the 32-bit one
/// (248): `[ctx, nr, iocbpp, TAIL_READ | tail, ..]`, the tail of its AIO
/// ring as the call begins (`aio::io_submit_entry`: its exit checks that
/// the tail moved by one event per iocb it accepted), its registers where
/// the ring cannot be read.
///
/// Any other call's are its registers.
pub fn entry_args(mem: &dyn crate::MemReader, nr: i64, args: [u64; 6]) -> [u64; 6] {
    if row_nr(nr) == libc::SYS_io_submit {
        return crate::aio::io_submit_entry(mem, args);
    }
    if !is_compat(nr) {
        return args;
    }
    // The words in one read (a syscall of ours each, at every such call).
    let read = |at: u64, n: u64| -> Option<Vec<u32>> {
        let mut bytes = vec![0u8; 4 * n as usize];
        mem.read(at, &mut bytes).ok()?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
                .collect(),
        )
    };
    match nr as u32 {
        SOCKETCALL => {
            let n = SOCKETCALL_WORDS
                .get(args[0] as usize)
                .map_or(0, |&n| u64::from(n));
            match read(args[1], n).filter(|_| n > 0) {
                Some(words) => {
                    let [a, b, c] = pack(&words);
                    [args[0], args[1], a, b, c, n]
                }
                None => [args[0], args[1], 0, 0, 0, 0],
            }
        }
        OLD_MMAP => match read(args[0], MMAP_ARG_WORDS) {
            Some(words) => {
                let [a, b, c] = pack(&words);
                [args[0], a, b, c, MMAP_ARG_WORDS, 0]
            }
            None => [args[0], 0, 0, 0, 0, 0],
        },
        IPC => {
            let n = match (args[0] & 0xffff, args[0] >> 16) {
                (IPC_SEMCTL, _) => 1,
                (IPC_MSGRCV, 0) => 2,
                _ => return args,
            };
            match read(args[4], n).filter(|_| args[4] != 0) {
                Some(words) => {
                    let [w, ..] = pack(&words);
                    [
                        args[0] | IPC_WORDS_READ,
                        args[1],
                        args[2],
                        args[3],
                        args[4],
                        w,
                    ]
                }
                None => args,
            }
        }
        _ => args,
    }
}

/// The names of the `socketcall` sub-calls, by number.
const SOCKETCALL_NAMES: [&str; 21] = [
    "",
    "SYS_SOCKET",
    "SYS_BIND",
    "SYS_CONNECT",
    "SYS_LISTEN",
    "SYS_ACCEPT",
    "SYS_GETSOCKNAME",
    "SYS_GETPEERNAME",
    "SYS_SOCKETPAIR",
    "SYS_SEND",
    "SYS_RECV",
    "SYS_SENDTO",
    "SYS_RECVFROM",
    "SYS_SHUTDOWN",
    "SYS_SETSOCKOPT",
    "SYS_GETSOCKOPT",
    "SYS_SENDMSG",
    "SYS_RECVMSG",
    "SYS_ACCEPT4",
    "SYS_RECVMMSG",
    "SYS_SENDMMSG",
];

/// The name of `socketcall`'s sub-call `sub` (`SYS_ACCEPT4`), or its
/// number.
pub fn socketcall_name(sub: u64) -> String {
    match SOCKETCALL_NAMES.get(sub as usize) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("sub-call {sub}"),
    }
}

/// A System V shared memory attach or detach, by its meaning ([`shm_op`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmOp {
    /// `shmat` of segment `shmid`: attached at the call's result, or (the
    /// `ipc` multiplexer's `SHMAT`, which returns 0) at the 32-bit word
    /// the call stored at `stored_at`.
    Attach {
        /// The segment.
        shmid: u64,
        /// Where `ipc`'s `SHMAT` stores the address; `None` where the call
        /// returns it.
        stored_at: Option<u64>,
        /// The protection the attach gives the mapping (`PROT_*`), from
        /// its `SHM_RDONLY` and `SHM_EXEC` flags (an AIO ring's:
        /// read-write).
        prot: i32,
    },
    /// `shmdt` of the segment attached at `addr`.
    Detach {
        /// The address the segment was attached at.
        addr: u64,
    },
}

/// The AIO ring a 32-bit `io_setup` maps or `io_destroy` unmaps, as the
/// attach or detach replay makes of it (the ring is shared memory the
/// program reads in place, mapped as a 32-bit attach's segment is):
/// `io_setup(nr_events, ctx32p)` (245) an attach at the 32-bit context it
/// stores at `ctx32p` (`shmid` 0: no segment), `io_destroy(ctx)` (246) a
/// detach at `ctx`. `None` for any other call, the x86-64 `io_setup` and
/// `io_destroy` too (replay substitutes a call at their own entries).
pub fn aio_ring_op(nr: i64, args: &[u64; 6]) -> Option<ShmOp> {
    if !is_compat(nr) {
        return None;
    }
    match row_nr(nr) {
        libc::SYS_io_setup => Some(ShmOp::Attach {
            shmid: 0,
            stored_at: Some(args[1]),
            prot: libc::PROT_READ | libc::PROT_WRITE,
        }),
        libc::SYS_io_destroy => Some(ShmOp::Detach { addr: args[0] }),
        _ => None,
    }
}

/// The shared memory attach or detach the call `nr` (a trace number)
/// with arguments `args` (as recorded) makes: the x86-64 `shmat` and
/// `shmdt`, the i386 ones (397, 398) and `ipc`'s `SHMAT` (its version
/// not 1, which fails) and `SHMDT`; `None` for any other call. An
/// attach's flags are `shmat`'s third argument, `SHMAT`'s `second`.
pub fn shm_op(nr: i64, args: &[u64; 6]) -> Option<ShmOp> {
    let a = args;
    let by_meaning = match row_nr(nr) {
        libc::SYS_shmat => Some(ShmOp::Attach {
            shmid: a[0],
            stored_at: None,
            prot: crate::ipc::shm_prot(a[2]),
        }),
        libc::SYS_shmdt => Some(ShmOp::Detach { addr: a[0] }),
        _ => None,
    };
    if by_meaning.is_some() || !is_compat(nr) || nr as u32 != IPC {
        return by_meaning;
    }
    match (a[0] & 0xffff, (a[0] & 0xffff_ffff) >> 16) {
        (IPC_SHMAT, version) if version != 1 => Some(ShmOp::Attach {
            shmid: a[1],
            stored_at: Some(a[3]),
            prot: crate::ipc::shm_prot(a[2]),
        }),
        (IPC_SHMDT, _) => Some(ShmOp::Detach { addr: a[4] }),
        _ => None,
    }
}

/// The call a recorded i386 `socketcall` (`call`, its arguments as
/// [`entry_args`] gives them) made: the i386 socket call of its own
/// number (359-373) with the words the kernel read at the entry, as
/// `compat_sys_socketcall` hands them on (`SYS_ACCEPT` as `accept4` with
/// no flags, `SYS_SEND` and `SYS_RECV` as `sendto` and `recvfrom` with no
/// address; `SYS_RECVMMSG` as `recvmmsg` of a 32-bit timespec), and the
/// same result. None for any other call, and for a
/// `socketcall` whose words were not read at its entry (no sub-call, or
/// memory the kernel could not read either: it failed).
pub fn socketcall_sub(call: &crate::Call) -> Option<crate::Call> {
    if !is_compat(call.nr) || call.nr as u32 != SOCKETCALL {
        return None;
    }
    let a = &call.args;
    let n = *SOCKETCALL_WORDS.get(a[0] as usize)?;
    if n == 0 || a[5] != u64::from(n) {
        return None;
    }
    let w = |i: usize| word(a, 2, i);
    let (i386, args) = match a[0] {
        1 => (359, [w(0), w(1), w(2), 0, 0, 0]),           // socket
        2 => (361, [w(0), w(1), w(2), 0, 0, 0]),           // bind
        3 => (362, [w(0), w(1), w(2), 0, 0, 0]),           // connect
        4 => (363, [w(0), w(1), 0, 0, 0, 0]),              // listen
        5 => (364, [w(0), w(1), w(2), 0, 0, 0]),           // accept: accept4, no flags
        6 => (367, [w(0), w(1), w(2), 0, 0, 0]),           // getsockname
        7 => (368, [w(0), w(1), w(2), 0, 0, 0]),           // getpeername
        8 => (360, [w(0), w(1), w(2), w(3), 0, 0]),        // socketpair
        9 => (369, [w(0), w(1), w(2), w(3), 0, 0]),        // send: sendto, no address
        10 => (371, [w(0), w(1), w(2), w(3), 0, 0]),       // recv: recvfrom, no address
        11 => (369, [w(0), w(1), w(2), w(3), w(4), w(5)]), // sendto
        12 => (371, [w(0), w(1), w(2), w(3), w(4), w(5)]), // recvfrom
        13 => (373, [w(0), w(1), 0, 0, 0, 0]),             // shutdown
        14 => (366, [w(0), w(1), w(2), w(3), w(4), 0]),    // setsockopt
        15 => (365, [w(0), w(1), w(2), w(3), w(4), 0]),    // getsockopt
        16 => (370, [w(0), w(1), w(2), 0, 0, 0]),          // sendmsg
        17 => (372, [w(0), w(1), w(2), 0, 0, 0]),          // recvmsg
        18 => (364, [w(0), w(1), w(2), w(3), 0, 0]),       // accept4
        19 => (337, [w(0), w(1), w(2), w(3), w(4), 0]),    // recvmmsg (a 32-bit timespec)
        20 => (345, [w(0), w(1), w(2), w(3), 0, 0]),       // sendmmsg
        _ => return None,
    };
    Some(crate::Call {
        nr: COMPAT_32 | i386,
        args,
        ret: call.ret,
    })
}

/// The x86-64 call that `call` means, with the arguments the x86-64 call
/// takes: a 32-bit call with an [`x86_64_equivalent`] under that number, an
/// i386 `mmap2` as the `mmap` of the same mapping (the descriptor
/// sign-extended from 32 bits, the offset in bytes), a call of
/// `MEANINGS` under the x86-64 number with its split offset or length
/// joined (`pread64(fd, buf, count, lo, hi)` as `pread64(fd, buf, count,
/// hi << 32 | lo)`, `ftruncate64(fd, lo, hi)` as `ftruncate(fd, hi << 32 |
/// lo)`, `preadv(fd, iov, cnt, lo, hi)` as `preadv(fd, iov, cnt, hi << 32
/// | lo, 0)`; an iovec array stays the i386 one, see [`read_iovec`]); any
/// other call as it is. Code that acts on a call by its meaning with its
/// arguments (the file a mapping maps, a file opened with `O_TRUNC`, the
/// offset a `pwrite64` wrote at) reads this.
pub fn x86_64_call(call: &crate::Call) -> crate::Call {
    if !is_compat(call.nr) {
        return *call;
    }
    let a = call.args;
    let args = match call.nr as u32 {
        MMAP2 => {
            let fd = i64::from(a[4] as u32 as i32) as u64;
            return crate::Call {
                nr: libc::SYS_mmap,
                args: [a[0], a[1], a[2], a[3], fd, a[5] << 12],
                ret: call.ret,
            };
        }
        // The old mmap: the six words of its struct, read at the entry
        // ([`entry_args`]), the offset in bytes.
        OLD_MMAP if a[4] == MMAP_ARG_WORDS => {
            let w = |i| word(&a, 1, i);
            let fd = i64::from(w(4) as u32 as i32) as u64;
            return crate::Call {
                nr: libc::SYS_mmap,
                args: [w(0), w(1), w(2), w(3), fd, w(5)],
                ret: call.ret,
            };
        }
        // pread64, pwrite64: (fd, buf, count, lo, hi).
        180 | 181 => [a[0], a[1], a[2], joined(a[3], a[4]), 0, 0],
        // truncate64, ftruncate64: (path or fd, lo, hi).
        193 | 194 => [a[0], joined(a[1], a[2]), 0, 0, 0, 0],
        // preadv, pwritev: (fd, iov, cnt, lo, hi); the x86-64 calls take
        // the whole offset in their fourth argument, 0 in their fifth.
        333 | 334 => [a[0], a[1], a[2], joined(a[3], a[4]), 0, 0],
        // preadv2, pwritev2: the same, and the flags.
        378 | 379 => [a[0], a[1], a[2], joined(a[3], a[4]), 0, a[5]],
        // readahead: (fd, lo, hi, count).
        225 => [a[0], joined(a[1], a[2]), a[3], 0, 0, 0],
        // fadvise64: (fd, lo, hi, len, advice), a 32-bit length.
        250 => [a[0], joined(a[1], a[2]), a[3], a[4], 0, 0],
        // fadvise64_64: (fd, lo, hi, len lo, len hi, advice).
        272 => [a[0], joined(a[1], a[2]), joined(a[3], a[4]), a[5], 0, 0],
        // sync_file_range: (fd, lo, hi, n lo, n hi, flags).
        314 => [a[0], joined(a[1], a[2]), joined(a[3], a[4]), a[5], 0, 0],
        // fallocate: (fd, mode, lo, hi, len lo, len hi).
        324 => [a[0], a[1], joined(a[2], a[3]), joined(a[4], a[5]), 0, 0],
        _ => a,
    };
    crate::Call {
        nr: row_nr(call.nr),
        args,
        ret: call.ret,
    }
}

/// i386 names of the calls programs make through `int $0x80` most often
/// (hand-written startup code, old inline assembly); others are named by
/// number.
const I386_NAMES: &[(u32, &str)] = &[
    (0, "restart_syscall"),
    (1, "exit"),
    (3, "read"),
    (4, "write"),
    (5, "open"),
    (6, "close"),
    (8, "creat"),
    (9, "link"),
    (10, "unlink"),
    (12, "chdir"),
    (13, "time"),
    (14, "mknod"),
    (15, "chmod"),
    (18, "oldstat"),
    (19, "lseek"),
    (20, "getpid"),
    (24, "getuid"),
    (28, "oldfstat"),
    (30, "utime"),
    (33, "access"),
    (37, "kill"),
    (38, "rename"),
    (39, "mkdir"),
    (40, "rmdir"),
    (41, "dup"),
    (42, "pipe"),
    (43, "times"),
    (45, "brk"),
    (47, "getgid"),
    (48, "signal"),
    (49, "geteuid"),
    (50, "getegid"),
    (55, "fcntl"),
    (59, "oldolduname"),
    (60, "umask"),
    (63, "dup2"),
    (64, "getppid"),
    (65, "getpgrp"),
    (67, "sigaction"),
    (73, "sigpending"),
    (76, "getrlimit"),
    (77, "getrusage"),
    (78, "gettimeofday"),
    (82, "select"),
    (83, "symlink"),
    (84, "oldlstat"),
    (85, "readlink"),
    (89, "readdir"),
    (90, "mmap"),
    (91, "munmap"),
    (94, "fchmod"),
    (99, "statfs"),
    (100, "fstatfs"),
    (102, "socketcall"),
    (106, "stat"),
    (107, "lstat"),
    (108, "fstat"),
    (109, "olduname"),
    (116, "sysinfo"),
    (117, "ipc"),
    (118, "fsync"),
    (119, "sigreturn"),
    (122, "uname"),
    (125, "mprotect"),
    (126, "sigprocmask"),
    (132, "getpgid"),
    (133, "fchdir"),
    (140, "_llseek"),
    (141, "getdents"),
    (142, "_newselect"),
    (143, "flock"),
    (145, "readv"),
    (146, "writev"),
    (147, "getsid"),
    (148, "fdatasync"),
    (158, "sched_yield"),
    (162, "nanosleep"),
    (163, "mremap"),
    (173, "rt_sigreturn"),
    (174, "rt_sigaction"),
    (175, "rt_sigprocmask"),
    (176, "rt_sigpending"),
    (177, "rt_sigtimedwait"),
    (180, "pread64"),
    (181, "pwrite64"),
    (183, "getcwd"),
    (186, "sigaltstack"),
    (187, "sendfile"),
    (191, "ugetrlimit"),
    (192, "mmap2"),
    (193, "truncate64"),
    (194, "ftruncate64"),
    (195, "stat64"),
    (196, "lstat64"),
    (197, "fstat64"),
    (198, "lchown32"),
    (199, "getuid32"),
    (200, "getgid32"),
    (201, "geteuid32"),
    (202, "getegid32"),
    (207, "fchown32"),
    (212, "chown32"),
    (219, "madvise"),
    (220, "getdents64"),
    (221, "fcntl64"),
    (224, "gettid"),
    (225, "readahead"),
    (238, "tkill"),
    (239, "sendfile64"),
    (240, "futex"),
    (243, "set_thread_area"),
    (244, "get_thread_area"),
    (245, "io_setup"),
    (246, "io_destroy"),
    (247, "io_getevents"),
    (248, "io_submit"),
    (249, "io_cancel"),
    (250, "fadvise64"),
    (252, "exit_group"),
    (254, "epoll_create"),
    (255, "epoll_ctl"),
    (256, "epoll_wait"),
    (258, "set_tid_address"),
    (265, "clock_gettime"),
    (266, "clock_getres"),
    (267, "clock_nanosleep"),
    (268, "statfs64"),
    (269, "fstatfs64"),
    (270, "tgkill"),
    (271, "utimes"),
    (272, "fadvise64_64"),
    (277, "mq_open"),
    (278, "mq_unlink"),
    (279, "mq_timedsend"),
    (280, "mq_timedreceive"),
    (281, "mq_notify"),
    (282, "mq_getsetattr"),
    (291, "inotify_init"),
    (292, "inotify_add_watch"),
    (293, "inotify_rm_watch"),
    (295, "openat"),
    (296, "mkdirat"),
    (297, "mknodat"),
    (298, "fchownat"),
    (299, "futimesat"),
    (300, "fstatat64"),
    (301, "unlinkat"),
    (302, "renameat"),
    (303, "linkat"),
    (304, "symlinkat"),
    (305, "readlinkat"),
    (306, "fchmodat"),
    (307, "faccessat"),
    (308, "pselect6"),
    (309, "ppoll"),
    (314, "sync_file_range"),
    (316, "vmsplice"),
    (318, "getcpu"),
    (319, "epoll_pwait"),
    (320, "utimensat"),
    (323, "eventfd"),
    (324, "fallocate"),
    (328, "eventfd2"),
    (329, "epoll_create1"),
    (330, "dup3"),
    (331, "pipe2"),
    (332, "inotify_init1"),
    (333, "preadv"),
    (334, "pwritev"),
    (337, "recvmmsg"),
    (340, "prlimit64"),
    (345, "sendmmsg"),
    (347, "process_vm_readv"),
    (348, "process_vm_writev"),
    (353, "renameat2"),
    (355, "getrandom"),
    (359, "socket"),
    (360, "socketpair"),
    (361, "bind"),
    (362, "connect"),
    (363, "listen"),
    (364, "accept4"),
    (365, "getsockopt"),
    (366, "setsockopt"),
    (367, "getsockname"),
    (368, "getpeername"),
    (369, "sendto"),
    (370, "sendmsg"),
    (371, "recvfrom"),
    (372, "recvmsg"),
    (373, "shutdown"),
    (378, "preadv2"),
    (379, "pwritev2"),
    (383, "statx"),
    (385, "io_pgetevents"),
    (393, "semget"),
    (394, "semctl"),
    (395, "shmget"),
    (396, "shmctl"),
    (397, "shmat"),
    (398, "shmdt"),
    (399, "msgget"),
    (400, "msgsnd"),
    (401, "msgrcv"),
    (402, "msgctl"),
    (403, "clock_gettime64"),
    (406, "clock_getres_time64"),
    (407, "clock_nanosleep_time64"),
    (412, "utimensat_time64"),
    (413, "pselect6_time64"),
    (414, "ppoll_time64"),
    (416, "io_pgetevents_time64"),
    (417, "recvmmsg_time64"),
    (418, "mq_timedsend_time64"),
    (419, "mq_timedreceive_time64"),
    (420, "semtimedop_time64"),
    (421, "rt_sigtimedwait_time64"),
    (422, "futex_time64"),
    (439, "faccessat2"),
];

/// The name of a 32-bit call made by [`compat_nr`], e.g.
/// `i386 getpid (int $0x80 #20)`.
pub fn compat_name(nr: i64) -> String {
    let n = nr as u32;
    match I386_NAMES.iter().find(|&&(k, _)| k == n) {
        Some((_, name)) => format!("i386 {name} (int $0x80 #{n})"),
        None => format!("i386 syscall (int $0x80 #{n})"),
    }
}
