//! More 32-bit syscalls (`int $0x80`) from a 64-bit program
//! (docs/breadth.md), each fixture built without PIE (its buffers and its
//! break below 4 GiB) and statically (every call traced, no syscall
//! buffer):
//!
//! - `int80_more` makes the i386 calls that mean an x86-64 call (`brk`,
//!   `mprotect`, `munmap`, a thread's `exit`, `kill`, `tkill`, `tgkill`,
//!   `getrandom`, `getcwd`, `pipe`, `pipe2`, `open`, `openat`, `dup3`,
//!   `prlimit64`, `clock_gettime64`, `clock_getres_time64`, `mkdir`,
//!   `access`, `fsync`, `fdatasync`, `getdents64`, `chdir`, `fchdir`,
//!   `unlink`, `rmdir`, `madvise`, `mremap`, `getcpu`, `eventfd2`) and those
//!   with i386 layouts of their own (`time`, `gettimeofday`,
//!   `clock_gettime`, `clock_getres`, `mmap2` anonymous and of a file at a
//!   page offset, `lseek`, `_llseek`, `getrlimit`, `ugetrlimit`,
//!   `getrusage`, `times`, `sysinfo`, `nanosleep` slept and interrupted by
//!   a signal);
//! - `int80_files` makes the i386 file calls: the `stat64` family
//!   (`stat64`, `lstat64`, `fstat64`, `fstatat64`), `statfs64`,
//!   `fstatfs64`, `statx`, the iovec calls (`readv`, `writev` into a file
//!   and to stdout, `preadv`, `pwritev`, `preadv2`, `pwritev2`), the split
//!   offsets (`pread64`, `pwrite64`, `ftruncate64`, `truncate64`, above
//!   4 GiB in a sparse file), `readlink`, `symlink`, `link`, `rename`,
//!   `chmod`, `fchmod`, `flock`, `fchown32`;
//! - `int80_at` makes a 200 ms i386 `nanosleep` in two threads that a
//!   forked child stops and continues, which the kernel resumes with the
//!   i386 `restart_syscall` (0), the `*at` calls and other file calls the
//!   kernel serves with the x86-64 entry (`creat`, `mknod`, `mkdirat`,
//!   `mknodat`, `chown32`, `lchown32`, `fchownat`, `symlinkat`,
//!   `readlinkat`, `linkat`, `renameat`, `renameat2`, `fchmodat`,
//!   `faccessat`, `faccessat2`, `unlinkat`), `eventfd` and the epoll calls
//!   (`epoll_create`, `epoll_create1`, `epoll_ctl`, `epoll_wait`, one wait
//!   blocking until a child writes), the old stat calls (`stat`, `lstat`,
//!   `fstat` of a 64-byte `compat_stat`, `statfs`, `fstatfs` of a 64-byte
//!   `compat_statfs`), `getdents` and `fcntl64`'s int commands;
//! - `int80_old` makes the file-time calls (`utime`, `utimes`, `futimesat`,
//!   `utimensat` with `UTIME_OMIT`, `UTIME_NOW` and NULL times,
//!   `utimensat_time64` past 2038), the inotify calls (`inotify_init`,
//!   `inotify_init1`, `inotify_add_watch`, `inotify_rm_watch`: the event a
//!   64-bit read gets), `epoll_pwait` (one interrupted by a child's
//!   `SIGUSR1` that only its own mask lets through, the handler run),
//!   `olduname` and `oldolduname`, the oldest stat calls (`oldstat`,
//!   `oldlstat`, `oldfstat` of a 32-byte `__old_kernel_stat`, EOVERFLOW
//!   where an inode does not fit 16 bits), `readdir` (one record a call)
//!   and `fcntl64`'s locks (`F_GETLK`, `F_SETLK`, `F_SETLKW` waiting for a
//!   child's lock, of the 32-bit `compat_flock`; `F_GETLK64`, `F_SETLK64`,
//!   `F_SETLKW64`, `F_OFD_GETLK`, `F_OFD_SETLK`, `F_OFD_SETLKW` of the
//!   packed `compat_flock64`) and owner commands (`F_SETOWN`, `F_GETOWN`,
//!   `F_SETOWN_EX`, `F_GETOWN_EX`, `F_SETSIG`, `F_GETSIG`), and the
//!   blocking calls of 32-bit timespecs `clock_nanosleep` (stopped and
//!   continued, resumed with the i386 `restart_syscall`; cut short by a
//!   handled signal; absolute) and `ppoll` (woken by a child's write;
//!   stopped and continued; interrupted by a signal only its mask lets
//!   through), `pselect6` (fd_sets of 32-bit words; a zero timeout, woken
//!   by a child's write, interrupted by a signal only its mask lets
//!   through), and their `_time64` forms; and `fcntl64`'s pipe sizes,
//!   seals and a write-hint query, as the 64-bit `fcntl`'s;
//! - `int80_io` makes the calls of split 64-bit values (`fallocate`,
//!   `fadvise64`, `fadvise64_64`, `readahead`, `sync_file_range`),
//!   `sendfile` (a 32-bit offset stored back) and `sendfile64`, `vmsplice`
//!   and `process_vm_readv` of 32-bit iovecs, the old `fcntl` (fcntl64's
//!   entry: the 32-bit and the packed 64-bit locks), and the socket calls
//!   of their own numbers (`socket`, `bind`, `listen`, `connect`,
//!   `accept4`, `getsockname`, `getpeername`, `sendto`, `recvfrom`,
//!   `shutdown`, `socketpair`, `setsockopt`/`getsockopt` of a 32-bit
//!   `SO_RCVTIMEO_OLD`, `sendmsg`/`recvmsg` of the 28-byte
//!   `compat_msghdr` with a descriptor passed in a 32-bit control message
//!   and a datagram's sender address, `sendmmsg`, `recvmmsg` and
//!   `recvmmsg_time64` of 32-byte `compat_mmsghdr`s, the time left
//!   stored), and `rt_sigtimedwait` and
//!   `rt_sigtimedwait_time64` (a signal sent by itself, a queued one:
//!   the 128-byte `compat_siginfo`; one another thread sends while it
//!   waits, a timeout, a handled signal that interrupts it);
//! - `int80_socketcall` makes `socketcall` (102) of each sub-call, its argument
//!   words an array the kernel reads at the entry (a `SYS_RECV` and a
//!   `SYS_GETSOCKOPT` that store over their own words), and the old
//!   `mmap` (90) of a `struct mmap_arg_struct32` (anonymous, of a file at
//!   4096, `MAP_FIXED` over the page that holds its own struct);
//! - `int80_mq` makes the POSIX message queue calls: `mq_open` of a
//!   32-byte `compat_mq_attr`, `mq_getsetattr` (the old attributes stored
//!   in one, `O_NONBLOCK` set through one), `mq_timedsend` (a 32-bit
//!   timespec) and `mq_timedsend_time64`, `mq_timedreceive` and
//!   `mq_timedreceive_time64` (the message and its priority; no priority
//!   pointer; EMSGSIZE; EAGAIN; a 20 ms timeout that expires; one blocked
//!   until a child's 64-bit send), `mq_notify` of a `compat_sigevent`
//!   (the signal it raises handled with its value) and `mq_unlink`;
//! - `int80_ipc` makes the System V semaphore and message calls of their
//!   own numbers (`semget`, `semctl` of the 64-byte `compat_semid64_ds`,
//!   `semtimedop_time64`, `msgget`, `msgsnd`, `msgrcv` of a 32-bit
//!   `mtype`, one blocked until a child's 64-bit send, `msgctl` of the
//!   88-byte `compat_msqid64_ds`) and through the `ipc` multiplexer
//!   (117: `SEMGET`, `SEMCTL` of a `union semun` read at the entry, with
//!   `IPC_64` and the old 44-byte `compat_semid_ds`, `SEMOP`,
//!   `SEMTIMEDOP` of a 32-bit timespec that expires, `MSGGET`, `MSGSND`,
//!   `MSGRCV` through a `struct compat_ipc_kludge` read at the entry and
//!   of version 1, `MSGCTL` with `IPC_64` and the old 56-byte
//!   `compat_msqid_ds`, no sub-call, EINVAL, EFAULT);
//! - `int80_shm` makes the System V shared memory calls of their own
//!   numbers (`shmget`; `shmat`, its address below 4 GiB and its
//!   /proc/self/maps line the segment's, the bytes a 64-bit attach wrote
//!   before seen, its own seen by a 64-bit attach after `shmdt`;
//!   `shmctl` of the 84-byte `compat_shmid64_ds`, the 36-byte
//!   `compat_shminfo64` and the 24-byte `compat_shm_info`; `shmdt`,
//!   EINVAL) and through `ipc` (`SHMGET`, `SHMAT` storing the address in
//!   a 32-bit word, version 1's EINVAL, `SHMCTL` with `IPC_64` and the
//!   old 48-byte `compat_shmid_ds` and 20-byte `shminfo`, `SHMDT`), and
//!   read-only and executable attaches (`shmat` with `SHM_RDONLY`: `r--s`,
//!   a write faults; `SHMAT` with `SHM_RDONLY|SHM_EXEC`: `r-xs`, a
//!   function there runs, a write faults; `shmat` with `SHM_EXEC`:
//!   `rwxs`, a function written there runs);
//! - `int80_aio` makes the AIO calls (`io_setup` storing a 32-bit
//!   context, its ring read in place; `io_submit` of 32-bit iocb pointers,
//!   a `PREAD` and a `PREADV` of `compat_iovec`s, a `PREAD`, a `PWRITE`;
//!   `io_getevents` of a 32-bit timespec; `io_pgetevents` with a mask, and
//!   one a child's `SIGUSR1` its mask lets through interrupts;
//!   `io_pgetevents_time64`; `io_cancel`, EINVAL; `io_destroy`, the ring
//!   unmapped);
//! - `int80_signals` makes the i386 signal-state calls (2026-12-06):
//!   `rt_sigprocmask` of the 8-byte sigset and `sigprocmask` of the old
//!   4-byte one (masks read back, the 64-bit mask the same),
//!   `sigpending` and `rt_sigpending` of a signal it sent itself while
//!   blocked (then handled when an i386 `rt_sigprocmask` unblocks it),
//!   `rt_sigaction` of a 20-byte `compat_sigaction` and `sigaction` of a
//!   16-byte `compat_old_sigaction` reading a 64-bit call's action and
//!   setting `SIG_IGN` and `SIG_DFL`, `signal` likewise, `sigaltstack` of
//!   a 12-byte `compat_stack_t` whose stack an `SA_ONSTACK` handler uses,
//!   and `set_tid_address` (the thread's id, replay's the recorded one);
//!
//! each result checked in the program against the 64-bit call's or the
//! value it must have.
//!
//! - `breadth::int80::NAME::native`: the program alone prints every check
//!   passed (`int80_more` another hash of getrandom's bytes each run);
//! - `breadth::int80::NAME::record_replay`: recorded (the same checks
//!   pass), verified, and replayed to the same output and exit [`ROUNDS`]
//!   times (the thread's exit and the child's death fall as the schedule
//!   does): replay performs the address-space calls again (a write to the
//!   page the i386 `mprotect` made read-only faults there too, the break
//!   the i386 `brk` grew is written, the page `madvise` dropped reads
//!   zero, the page `mremap` moved is there), ends the thread at its i386 `exit`,
//!   delivers the signals the i386 `kill`s sent, maps what `mmap2` mapped,
//!   writes the bytes the i386 reads read (scattered over 32-bit iovecs
//!   for `readv`/`preadv`/`preadv2`) and the structures the `stat64` calls
//!   filled, and prints the line the i386 `writev` wrote to stdout, and
//!   resumes an i386 `nanosleep` a stop interrupted with the i386
//!   `restart_syscall` (rax 0, not the x86-64 219), stores the locks
//!   `F_GETLK`/`F_GETLK64` stored, and swaps in an i386 `epoll_pwait`'s
//!   own mask when the signal that interrupted it is delivered, and
//!   writes what `sendfile`, `vmsplice`, `process_vm_readv`,
//!   `getsockopt`, `recvmsg` and `rt_sigtimedwait` stored (`recvmsg`
//!   through the `compat_msghdr`), checks a `socketcall`'s and an old
//!   `mmap`'s words at their entries as recorded, writes what each
//!   `socketcall` sub-call stored and maps what the old `mmap` mapped,
//!   and writes the messages, priorities and `compat_mq_attr`s the
//!   message queue calls stored, and the messages and structures the
//!   System V calls stored (checking `ipc`'s words at its entries), and
//!   maps each 32-bit attach's segment at its recorded address with its
//!   recorded contents, gives it the attach's protection, and unmaps it at
//!   the detach;
//! - `breadth::int80::under_chaos`: each recorded with --chaos at seeds
//!   1-3, each verified;
//! - `breadth::int80::aio_native`, `::aio_record_replay` (each build
//!   recorded, verified and replayed [`ROUNDS`] times: replay maps the
//!   ring at the 32-bit context with an injected x86-64 `mmap`, writes
//!   what each call wrote, swaps in `io_pgetevents`' mask at the signal,
//!   and unmaps the ring at `io_destroy`) and `::aio_under_chaos` (seeds
//!   1-3): `int80_aio`'s two builds, outside the tables above;
//! - `breadth::int80::signals_refused_named`: `int80_signals` with
//!   `REFUSED_HANDLER` (children that install a handler with the i386
//!   `rt_sigaction` and raise its signal, and make the i386 `sigreturn`
//!   and `rt_sigreturn` with no frame of theirs: each dies of SIGSEGV, as
//!   natively) runs to its end, the trace is unreplayable and names the
//!   handler and the two returns, and replay refuses it;
//! - `breadth::int80::shm_refused_named`: `int80_shm` with `REFUSED_SHM`
//!   (a segment attached by the i386 `shmat` while `ipc`'s `SHMAT` has
//!   it attached, and `SHMAT` of a 300 MiB segment) runs to its end, the
//!   trace is unreplayable and names both, and replay refuses it.
//!   (`fcntl64`'s pipe sizes, seals and write hints, refused before
//!   2026-12-06 (`fcntl64_refused_named`), are among `int80_old`'s
//!   recorded checks.)

use std::time::Duration;

use libtest_mimic::Trial;

use libtest_mimic::Failed;

use crate::breadth::{all_under_chaos, repeated, spec_trials, EXIT_BAD_TRACE};
use crate::recorder::{self, invocation, Source, Spec};
use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, TrialDir};

/// How many times each build is recorded, verified and replayed.
const ROUNDS: usize = 3;

/// Lines the program prints when its checks pass (every check prints
/// `yes` or exits 1; these name one call of each kind).
const WANT: &[&str] = &[
    "i386 brk grown by 64 KiB returned the expected value: yes\n",
    "a write after the i386 mprotect to PROT_READ faults: yes\n",
    "a write after the i386 munmap faults: yes\n",
    "a thread ended by an i386 exit was joined, its code after the exit not run: yes\n",
    "SIGUSR1 from the i386 kill was handled at the call: yes\n",
    "SIGUSR2 from the i386 tkill was handled at the call: yes\n",
    "SIGUSR1 from the i386 tgkill was handled at the call: yes\n",
    "the child died of the i386 kill's SIGTERM: yes\n",
    "i386 getrandom returned the expected value: yes\n",
    "i386 getcwd's directory is the 64-bit call's: yes\n",
    "the i386 pipe2 carries a byte, with FD_CLOEXEC: yes\n",
    "i386 openat opened /dev/null: yes\n",
    "64-bit write through an i386 dup3 of stdout\n",
    "i386 prlimit64's limits are the 64-bit call's: yes\n",
    "i386 clock_gettime64 lies between two 64-bit reads: yes\n",
    "i386 time returned the seconds it stored, between two 64-bit reads: yes\n",
    "i386 gettimeofday lies between two 64-bit reads, its timezone the 64-bit call's: yes\n",
    "i386 clock_gettime lies between two 64-bit reads: yes\n",
    "i386 clock_getres is the 64-bit call's: yes\n",
    "the i386 mmap2's memory is zero-filled then written: yes\n",
    "i386 mmap2 mapped the program's file at page 1 below 4 GiB: yes\n",
    "i386 _llseek stored the 64-bit position 200, which the 64-bit call sees: yes\n",
    "i386 ugetrlimit's soft stack limit is the 64-bit call's: yes\n",
    "i386 getrlimit's open-files limits are the 64-bit call's: yes\n",
    "i386 getrusage's max RSS lies between two 64-bit reads, its user time no later: yes\n",
    "i386 getdents64 read the 64-bit call's records (but for their d_off): yes\n",
    "the working directory after the i386 fchdir is the old one: yes\n",
    "the page is zero again after the i386 madvise: yes\n",
    "i386 mremap grew the page, its contents kept, the new end writable: yes\n",
    "the i386 eventfd2 counted 5, with FD_CLOEXEC: yes\n",
    "i386 times returned the 64-bit ticks cut to 32 bits, between two 64-bit reads: yes\n",
    "i386 times's four 32-bit times lie between two 64-bit reads: yes\n",
    "i386 sysinfo's uptime lies between two 64-bit reads, its total memory and swap the 64-bit call's: yes\n",
    "i386 nanosleep slept at least 20 ms: yes\n",
    "SIGALRM was handled, and the i386 nanosleep stored the time left, under 5 s: yes\n",
];

/// Lines `int80_files` prints when its checks pass (every check prints
/// `yes` or exits 1; these name one call of each kind, and the line the
/// i386 `writev` writes to stdout in three pieces).
const WANT_FILES: &[&str] = &[
    "i386 stat64's device, inodes, mode, links, ids, size and blocks are the 64-bit stat's: yes\n",
    "i386 fstatat64's fields are the 64-bit stat's: yes\n",
    "i386 readlink read the link's target: yes\n",
    "i386 lstat64 saw the link itself, its fields the 64-bit lstat's: yes\n",
    "i386 statfs64's type, block size, block count and name length are the 64-bit statfs's: yes\n",
    "i386 fstatfs64's type, block size and block count are the 64-bit statfs's: yes\n",
    "i386 statfs64 with the 64-bit size returned the expected value: yes\n",
    "i386 statx's inode, mode, size and blocks are the 64-bit call's: yes\n",
    "the bytes i386 readv scattered are the 64-bit pread's, in order: yes\n",
    "i386 readv's short read filled its first iovec: yes\n",
    "the bytes i386 writev wrote are there for the 64-bit pread: yes\n",
    "i386 writev: a line in three pieces, written to stdout in order\n",
    "i386 fstat64's 64-bit size and blocks are the 64-bit fstat's: yes\n",
    "the bytes i386 pwrite64 wrote are at 4 GiB + 100 for the 64-bit pread: yes\n",
    "the bytes i386 pread64 read at 4 GiB + 50 are the 64-bit pread's: yes\n",
    "the bytes i386 pwritev wrote are at 4 GiB + 1000 for the 64-bit pread: yes\n",
    "the bytes i386 preadv scattered are the 64-bit pread's: yes\n",
    "the bytes i386 pwritev2 wrote are at 77: yes\n",
    "the bytes i386 preadv2 read are the 64-bit pread's, the position moved to 110: yes\n",
    "the size after the i386 truncate64 is 5000: yes\n",
    "the mode after the i386 chmod is 0604: yes\n",
    "the mode after the i386 fchmod is 0640: yes\n",
    "i386 fchown32 to its own owner returned the expected value: yes\n",
    "another open file's LOCK_EX|LOCK_NB fails while the i386 lock is held: yes\n",
    "the file has 2 links after the i386 link: yes\n",
    "after the i386 rename the old name is gone and the new one is the file: yes\n",
];

/// Lines `int80_at` prints when its checks pass (every check prints `yes`
/// or exits 1; these name one call of each kind).
const WANT_AT: &[&str] = &[
    "i386 nanosleep of 200 ms stopped and continued returned the expected value: yes\n",
    "the i386 nanosleep resumed by restart_syscall slept the whole 200 ms: yes\n",
    "i386 nanosleep of 200 ms in a second thread, stopped and continued returned the expected value: yes\n",
    "the second thread's i386 nanosleep slept the whole 200 ms: yes\n",
    "i386 creat made a file of 0644 (umask 022), open for writing: yes\n",
    "i386 mknod made a FIFO of 0600: yes\n",
    "i386 mkdirat made a directory of 0700: yes\n",
    "i386 mknodat made a FIFO of 0640: yes\n",
    "i386 readlinkat read the link's target, as the 64-bit readlink: yes\n",
    "i386 chown32 of a missing file returned the expected value: yes\n",
    "i386 lchown32 of the link returned the expected value: yes\n",
    "i386 fchownat without following returned the expected value: yes\n",
    "the file has 2 links after the i386 linkat: yes\n",
    "i386 renameat2 with RENAME_NOREPLACE onto a file returned the expected value: yes\n",
    "after the i386 renameat and renameat2 the link is hard3, the file's inode: yes\n",
    "the mode after the i386 fchmodat is 0600: yes\n",
    "i386 faccessat returned the expected value: yes\n",
    "i386 faccessat2 of the link without following returned the expected value: yes\n",
    "after the i386 unlinkat calls the link and the directory are gone: yes\n",
    "the i386 eventfd counts 3 for the 64-bit read: yes\n",
    "i386 epoll_create made an epoll descriptor: yes\n",
    "i386 epoll_create1 made an epoll descriptor with FD_CLOEXEC: yes\n",
    "i386 epoll_ctl of a descriptor already there returned the expected value: yes\n",
    "i386 epoll_wait's event is the 64-bit epoll_wait's, its data the 64-bit value added: yes\n",
    "i386 epoll_wait woke for the pipe, its data 7: yes\n",
    "i386 stat returned what the 64-bit values allow, its fields the 64-bit call's: yes\n",
    "i386 fstat returned what the 64-bit values allow, its fields the 64-bit call's: yes\n",
    "i386 lstat of a link returned what the 64-bit values allow, its fields the 64-bit call's: yes\n",
    "i386 stat of /dev/null saw a character device, 1:3: yes\n",
    "i386 statfs returned what the 64-bit counts allow, its fields the 64-bit call's: yes\n",
    "i386 fstatfs returned what the 64-bit counts allow, its fields the 64-bit call's: yes\n",
    "i386 getdents read the 64-bit getdents64's names (., file, link): yes\n",
    "i386 getdents at the end returned the expected value: yes\n",
    "the 64-bit F_GETFD sees the i386 F_SETFD's FD_CLOEXEC: yes\n",
    "i386 fcntl64 F_DUPFD_CLOEXEC gave 200, with FD_CLOEXEC: yes\n",
    "i386 fcntl64 F_GETFL is the 64-bit F_GETFL, with O_APPEND: yes\n",
    "i386 fcntl64 of a closed descriptor returned the expected value: yes\n",
];

/// Lines `int80_old` prints when its checks pass (every check prints `yes`
/// or exits 1; these name one call of each kind).
const WANT_OLD: &[&str] = &[
    "i386 utime set the 32-bit times the 64-bit stat sees: yes\n",
    "i386 utime with NULL times set the time now: yes\n",
    "i386 utimes set the seconds and microseconds the 64-bit stat sees: yes\n",
    "i386 utimes of a microsecond count out of range returned the expected value: yes\n",
    "i386 futimesat set the times the 64-bit stat sees: yes\n",
    "i386 utimensat set the access time and left the modification time: yes\n",
    "i386 utimensat set the access time now and the 32-bit modification time: yes\n",
    "i386 utimensat with NULL times set both times now: yes\n",
    "i386 utimensat of a missing file returned the expected value: yes\n",
    "i386 utimensat_time64 set a time past 2038, as the 64-bit stat sees: yes\n",
    "i386 inotify_init made a descriptor: yes\n",
    "i386 inotify_init1 made a descriptor with FD_CLOEXEC and O_NONBLOCK: yes\n",
    "i386 inotify_add_watch gave watch 1: yes\n",
    "the 64-bit read of the i386 watch got IN_CREATE of \"made\" for watch 1: yes\n",
    "i386 inotify_rm_watch returned the expected value: yes\n",
    "i386 inotify_rm_watch of a removed watch returned the expected value: yes\n",
    "i386 epoll_pwait's event is the 64-bit data added: yes\n",
    "i386 epoll_pwait with a sigset size of 4 returned the expected value: yes\n",
    "i386 epoll_pwait interrupted by the SIGUSR1 its mask lets through returned the expected value: yes\n",
    "SIGUSR1 was handled during the i386 epoll_pwait: yes\n",
    "SIGUSR1 is blocked again after the i386 epoll_pwait: yes\n",
    "i386 olduname's five strings are the 64-bit uname's: yes\n",
    "i386 oldolduname's five strings are the 64-bit uname's, cut to 8 bytes: yes\n",
    "i386 oldstat of /dev/null returned what the 64-bit inode and links allow, its fields the 64-bit call's: yes\n",
    "i386 oldstat of /dev/null saw a character device, 1:3: yes\n",
    "i386 oldstat of a file returned what the 64-bit inode and links allow, its fields the 64-bit call's: yes\n",
    "i386 oldlstat of a link returned what the 64-bit inode and links allow, its fields the 64-bit call's: yes\n",
    "i386 oldfstat of /dev/null returned what the 64-bit inode and links allow, its fields the 64-bit call's: yes\n",
    "i386 oldfstat of a closed descriptor returned the expected value: yes\n",
    "i386 readdir read one record a call, the 64-bit getdents64's four names: yes\n",
    "each i386 readdir record's length and inode are the name's: yes\n",
    "i386 readdir at the end returned the expected value: yes\n",
    "i386 F_GETLK stored the child's write lock of [0, 10) in the 32-bit compat_flock: yes\n",
    "i386 F_GETLK64 stored the child's lock in the packed compat_flock64: yes\n",
    "i386 F_OFD_GETLK stored the child's lock in the packed compat_flock64: yes\n",
    "i386 F_SETLK of a range the child holds failed with EAGAIN or EACCES: yes\n",
    "i386 fcntl64 F_SETLKW waiting for the child's lock returned the expected value: yes\n",
    "after the i386 F_SETLKW a child's 64-bit F_GETLK sees the lock, this process's: yes\n",
    "i386 F_GETLK of a range only this process holds stored F_UNLCK: yes\n",
    "after the i386 F_SETLK64 a child's 64-bit F_GETLK sees no lock: yes\n",
    "after the i386 F_SETLKW64 a child's 64-bit F_GETLK sees the lock: yes\n",
    "the 64-bit F_OFD_GETLK of another open file sees the i386 OFD lock: yes\n",
    "i386 fcntl64 F_OFD_SETLK conflicting returned the expected value: yes\n",
    "after it the 64-bit F_OFD_GETLK sees no lock: yes\n",
    "i386 F_GETOWN is this process, as the 64-bit F_GETOWN: yes\n",
    "i386 F_GETOWN_EX stored the owner the 64-bit F_GETOWN_EX reads: yes\n",
    "i386 F_GETSIG is SIGUSR2, as the 64-bit F_GETSIG: yes\n",
    "i386 fcntl64 F_GETPIPE_SZ is the size set, as the 64-bit F_GETPIPE_SZ: yes\n",
    "i386 fcntl64 F_GET_SEALS is the seals added, as the 64-bit F_GET_SEALS: yes\n",
    "after the i386 F_ADD_SEALS the memfd cannot grow: yes\n",
    "i386 F_GET_RW_HINT stored the hint the 64-bit F_SET_RW_HINT set, the word after untouched: yes\n",
    "the i386 clock_nanosleep resumed by restart_syscall slept the whole 200 ms: yes\n",
    "SIGUSR2 was handled, and the i386 clock_nanosleep stored the time left, under 5 s: yes\n",
    "the i386 absolute clock_nanosleep woke after its deadline, storing nothing: yes\n",
    "i386 clock_nanosleep of a bad clock returned the expected value: yes\n",
    "the i386 clock_nanosleep_time64 slept 20 ms: yes\n",
    "the i386 clock_nanosleep_time64 stored the 64-bit time left, under 5 s: yes\n",
    "i386 ppoll of an empty pipe with a zero timeout returned the expected value: yes\n",
    "i386 ppoll's revents is POLLIN, the time left stored as a 32-bit timespec under 10 s: yes\n",
    "the i386 ppoll stopped and continued waited the whole 200 ms, nothing ready: yes\n",
    "SIGUSR1 was handled during the i386 ppoll, and is blocked again after: yes\n",
    "i386 ppoll_time64's revents is POLLIN, the 64-bit time left under 10 s: yes\n",
    "i386 pselect6's set was cleared, one 32-bit word of it: yes\n",
    "i386 pselect6's set has the pipe, the time left stored as a 32-bit timespec under 10 s: yes\n",
    "SIGUSR1 was handled during the i386 pselect6, and is blocked again after: yes\n",
    "i386 pselect6_time64's set has the pipe, the 64-bit time left under 10 s: yes\n",
    "i386 _newselect of an empty pipe for 20 ms returned the expected value: yes\n",
    "the i386 _newselect that timed out cleared its set and left no time: yes\n",
    "i386 _newselect of a pipe with a byte returned the expected value: yes\n",
    "the i386 _newselect's sets hold the pipe's ends, the 32-bit time left under 5 s: yes\n",
    "i386 select of a pipe with a byte, its arguments in a struct returned the expected value: yes\n",
    "the i386 select's set holds the pipe, the 32-bit time left under 5 s: yes\n",
    "i386 futex wait on a word that changed returned the expected value: yes\n",
    "i386 futex wait of 20 ms that times out returned the expected value: yes\n",
    "i386 futex_time64 wait of 20 ms that times out returned the expected value: yes\n",
    "i386 futex wake with no waiter returned the expected value: yes\n",
    "futex wait woken by a second thread's i386 futex wake saw the new word: yes\n",
];

/// Lines `int80_io` prints when its checks pass (every check prints `yes`
/// or exits 1; these name one call of each kind).
const WANT_IO: &[&str] = &[
    "i386 fallocate above 4 GiB returned the expected value: yes\n",
    "the size after the i386 fallocate is the 64-bit one's, 4 GiB + 12 KiB when it succeeds: yes\n",
    "i386 fallocate of a negative length returned the expected value: yes\n",
    "i386 fadvise64 returned the expected value: yes\n",
    "i386 fadvise64_64 of a negative length returned the expected value: yes\n",
    "i386 readahead returned the expected value: yes\n",
    "i386 sync_file_range of a negative offset returned the expected value: yes\n",
    "i386 sendfile copied the bytes at 4, stored the 32-bit offset 10, the next word untouched: yes\n",
    "i386 sendfile without an offset copied the rest and moved the input's position: yes\n",
    "i386 sendfile at a 32-bit offset of 2 GiB - 1 returned the expected value: yes\n",
    "i386 sendfile64 copied the bytes at 3 GiB + 104 and stored the 64-bit offset after them: yes\n",
    "i386 vmsplice scattered the pipe's bytes over its two 32-bit iovecs: yes\n",
    "the 64-bit read gets the bytes of the i386 vmsplice's iovecs: yes\n",
    "i386 process_vm_readv scattered the remote bytes over its two 32-bit iovecs: yes\n",
    "i386 process_vm_readv read the child's bytes: yes\n",
    "the 64-bit F_GETFL sees the i386 fcntl's O_APPEND: yes\n",
    "the i386 fcntl F_DUPFD's descriptor is the file: yes\n",
    "a child's 64-bit F_GETLK sees the i386 fcntl F_SETLK's lock: yes\n",
    "i386 fcntl F_GETLK stored the child's lock in the 32-bit compat_flock: yes\n",
    "i386 fcntl F_GETLK64 stored the child's lock in the packed compat_flock64: yes\n",
    "i386 fcntl F_OFD_GETLK stored the child's lock in the packed compat_flock64: yes\n",
    "i386 fcntl F_SETLK64 of a byte the child holds returned the expected value: yes\n",
    "i386 socket made a socket with FD_CLOEXEC: yes\n",
    "the i386 bind made the socket file: yes\n",
    "i386 listen returned the expected value: yes\n",
    "i386 connect returned the expected value: yes\n",
    "i386 accept4 gave a descriptor with FD_CLOEXEC, the unnamed client's length 2: yes\n",
    "i386 getsockname's address is the 64-bit call's: yes\n",
    "i386 getpeername of the client is the server's path: yes\n",
    "i386 recvfrom got the bytes the i386 sendto sent: yes\n",
    "the 64-bit recv after the i386 peek gets the whole message: yes\n",
    "the 64-bit SO_RCVTIMEO_OLD sees the i386 setsockopt's 3.5 s: yes\n",
    "i386 getsockopt stored the 32-bit old_timeval32 of 3.5 s and its length 8: yes\n",
    "i386 getsockopt SO_PEERCRED is the 64-bit call's: yes\n",
    "i386 getsockopt SO_PEERGROUPS stored the length the 64-bit call stores: yes\n",
    "i386 getsockopt SO_PEERGROUPS stored the 64-bit call's groups: yes\n",
    "i386 recvfrom after the i386 shutdown returned the expected value: yes\n",
    "the i386 socketpair's two descriptors carry a byte: yes\n",
    "i386 sendmsg of two iovecs and a descriptor returned the expected value: yes\n",
    "i386 recvmsg scattered the data over its two 32-bit iovecs: yes\n",
    "i386 recvmsg stored a 16-byte compat control message of SCM_RIGHTS and its length: yes\n",
    "the descriptor the i386 recvmsg received is the file sent: yes\n",
    "i386 recvmsg stored the sender's address and MSG_TRUNC, 4 bytes of the datagram: yes\n",
    "i386 recvfrom stored the sender's address: yes\n",
    "i386 sendmmsg stored msg_len 4 and 11 in the 32-byte compat_mmsghdrs: yes\n",
    "i386 recvmmsg stored the datagrams, msg_len 4 and 11 and msg_flags 0, the third untouched: yes\n",
    "i386 recvmmsg of an empty socket returned the expected value: yes\n",
    "i386 recvmmsg stored abc and the time left under 1 s as an old_timespec32: yes\n",
    "i386 recvmmsg_time64 stored defg and the time left under 1 s as a 64-bit timespec: yes\n",
    "i386 rt_sigtimedwait stored the 32-bit compat_siginfo: SIGUSR1, SI_USER, the pid at 12, the uid at 16: yes\n",
    "i386 rt_sigtimedwait stored SI_QUEUE and the value at 20: yes\n",
    "i386 rt_sigtimedwait of 20 ms with nothing pending returned the expected value: yes\n",
    "the i386 rt_sigtimedwait waited 20 ms: yes\n",
    "i386 rt_sigtimedwait with a sigset size of 4 returned the expected value: yes\n",
    "i386 rt_sigtimedwait woken by another thread's pthread_kill returned the expected value: yes\n",
    "i386 rt_sigtimedwait interrupted by a handled SIGALRM returned the expected value: yes\n",
    "SIGALRM was handled during the i386 rt_sigtimedwait: yes\n",
    "i386 rt_sigtimedwait_time64 stored SIGUSR2 of SI_TKILL in the compat_siginfo: yes\n",
    "i386 rt_sigtimedwait without a siginfo returned the expected value: yes\n",
];

/// Lines `int80_socketcall` prints when its checks pass (every check
/// prints `yes` or exits 1; these name one call of each kind).
const WANT_SC: &[&str] = &[
    "socketcall SYS_SOCKET made a socket with FD_CLOEXEC: yes\n",
    "the 64-bit SO_TYPE of the socketcall socket is SOCK_STREAM: yes\n",
    "the socketcall SYS_BIND made the socket file: yes\n",
    "i386 socketcall SYS_LISTEN returned the expected value: yes\n",
    "i386 socketcall SYS_CONNECT returned the expected value: yes\n",
    "socketcall SYS_ACCEPT gave a descriptor without FD_CLOEXEC, the unnamed client's length 2: yes\n",
    "socketcall SYS_ACCEPT4 gave a descriptor with FD_CLOEXEC, the client's length 2: yes\n",
    "socketcall SYS_GETSOCKNAME's address is the 64-bit call's: yes\n",
    "socketcall SYS_GETPEERNAME of the client is the server's path: yes\n",
    "socketcall SYS_RECV got the bytes SYS_SEND sent: yes\n",
    "i386 socketcall SYS_RECV into its own argument words returned the expected value: yes\n",
    "the SYS_RECV's bytes are over its argument words: yes\n",
    "the 64-bit recv after the socketcall peek gets the whole message: yes\n",
    "the 64-bit SO_RCVTIMEO_OLD sees the socketcall setsockopt's 2.5 s: yes\n",
    "socketcall SYS_GETSOCKOPT stored the 32-bit old_timeval32 of 2.5 s and its length 8: yes\n",
    "socketcall SYS_GETSOCKOPT SO_PEERCRED is the 64-bit call's: yes\n",
    "i386 socketcall SYS_GETSOCKOPT over its own argument words returned the expected value: yes\n",
    "socketcall SYS_GETSOCKOPT stored SO_RCVTIMEO_OLD over its words 3 and 4, its length 8: yes\n",
    "i386 socketcall SYS_SHUTDOWN returned the expected value: yes\n",
    "i386 socketcall SYS_RECV after SYS_SHUTDOWN returned the expected value: yes\n",
    "the socketcall socketpair's two descriptors carry a byte: yes\n",
    "i386 socketcall SYS_SENDMSG of two iovecs returned the expected value: yes\n",
    "socketcall SYS_RECVMSG scattered the data over its two 32-bit iovecs, msg_flags 0: yes\n",
    "socketcall SYS_RECVFROM stored the datagram and the sender's address: yes\n",
    "socketcall SYS_SENDMMSG stored msg_len 6 and 5: yes\n",
    "socketcall SYS_RECVMMSG stored the datagrams, msg_len 6 and 5, the time left under 1 s: yes\n",
    "i386 socketcall of no sub-call (0) returned the expected value: yes\n",
    "i386 socketcall SYS_SOCKET with words it cannot read returned the expected value: yes\n",
    "i386 socketcall SYS_SENDMMSG on a file returned the expected value: yes\n",
    "i386 socketcall SYS_RECVMMSG on a bad descriptor returned the expected value: yes\n",
    "the old i386 mmap mapped anonymous memory below 4 GiB: yes\n",
    "the old i386 mmap's memory is written: yes\n",
    "i386 old mmap MAP_FIXED over its own struct's page returned the expected value: yes\n",
    "the page that held the old mmap's struct is zeros now, the page before it kept: yes\n",
    "the old i386 mmap mapped the program's file at 4096 below 4 GiB: yes\n",
    "i386 old mmap of an offset not page-aligned returned the expected value: yes\n",
    "i386 old mmap of a struct it cannot read returned the expected value: yes\n",
];

/// Lines `int80_mq` prints when its checks pass (every check prints `yes`
/// or exits 1; these name one call of each kind).
const WANT_MQ: &[&str] = &[
    "the i386 mq_open's queue holds 4 messages of 64 bytes, as the 64-bit mq_getattr sees: yes\n",
    "i386 mq_open of a compat_mq_attr of no messages returned the expected value: yes\n",
    "i386 mq_getsetattr stored flags 0, 4 messages of 64 bytes, none queued, zeroed reserved words, the next word untouched: yes\n",
    "i386 mq_getsetattr counts 2 messages queued: yes\n",
    "i386 mq_timedreceive stored hello and its priority 7: yes\n",
    "i386 mq_timedreceive_time64 stored world! and its priority 3: yes\n",
    "i386 mq_timedreceive into 32 bytes of a 64-byte queue returned the expected value: yes\n",
    "i386 mq_timedreceive without a priority pointer stored the 64-bit send's bytes: yes\n",
    "i386 mq_timedreceive of 20 ms on an empty queue returned the expected value: yes\n",
    "the i386 mq_timedreceive waited 20 ms: yes\n",
    "the 64-bit mq_getattr sees the i386 O_NONBLOCK, the old flags stored 0: yes\n",
    "i386 mq_timedreceive on an empty O_NONBLOCK queue returned the expected value: yes\n",
    "the blocked i386 mq_timedreceive stored the child's message and priority 9: yes\n",
    "i386 mq_notify while registered returned the expected value: yes\n",
    "the i386 mq_notify's SIGUSR1 was handled with SI_MESGQ and the value 4242: yes\n",
    "i386 mq_notify of NULL returned the expected value: yes\n",
    "i386 mq_unlink returned the expected value: yes\n",
    "the 64-bit mq_open after the i386 mq_unlink fails with ENOENT: yes\n",
];

/// Lines `int80_ipc` prints when its checks pass (every check prints
/// `yes` or exits 1; these name one call of each kind).
const WANT_IPC: &[&str] = &[
    "the i386 semget's set has 3 semaphores, mode 0600: yes\n",
    "the 64-bit GETVAL sees the i386 SETVAL's 5: yes\n",
    "the 64-bit GETALL sees the i386 SETALL's 1, 2, 3: yes\n",
    "i386 semctl GETALL stored 1, 2, 3 and left the next value: yes\n",
    "i386 semctl IPC_STAT stored the 64-bit call's perm, times and 3 semaphores in the compat_semid64_ds: yes\n",
    "i386 semctl IPC_INFO stored the 64-bit call's seminfo: yes\n",
    "the i386 semtimedop_time64 waited 20 ms: yes\n",
    "i386 semctl GETVAL returned the expected value: yes\n",
    "i386 semtimedop_time64 of a semaphore at 0 with IPC_NOWAIT returned the expected value: yes\n",
    "i386 msgrcv stored the 32-bit mtype 5 and hello, the next byte untouched: yes\n",
    "i386 msgrcv with MSG_NOERROR stored the 64-bit send's type 2 and 2 bytes: yes\n",
    "the blocked i386 msgrcv stored the child's type 9 and late: yes\n",
    "i386 msgctl IPC_STAT stored the 64-bit call's perm, counts, times and pids in the compat_msqid64_ds: yes\n",
    "i386 msgctl IPC_INFO stored the 64-bit call's msginfo: yes\n",
    "the 64-bit IPC_STAT sees the i386 IPC_SET's 4096 bytes: yes\n",
    "the 64-bit GETVAL sees the ipc SETVAL's 3: yes\n",
    "ipc SEMCTL GETALL stored 2, 2 and left the next value: yes\n",
    "ipc SEMCTL IPC_STAT|IPC_64 stored the compat_semid64_ds of 2 semaphores: yes\n",
    "ipc SEMCTL IPC_STAT stored the old 44-byte compat_semid_ds of 2 semaphores: yes\n",
    "the ipc SEMTIMEDOP waited 20 ms: yes\n",
    "ipc MSGRCV of version 0 stored type 4 and defg where its ipc_kludge points: yes\n",
    "ipc MSGCTL IPC_STAT|IPC_64 stored the compat_msqid64_ds of 1 message of 3 bytes: yes\n",
    "ipc MSGCTL IPC_STAT stored the old 56-byte compat_msqid_ds of 1 message of 3 bytes: yes\n",
    "ipc MSGRCV of version 1 stored type 3 and abc: yes\n",
    "i386 msgrcv into 2 bytes returned the expected value: yes\n",
    "i386 msgrcv of an empty queue with IPC_NOWAIT returned the expected value: yes\n",
    "i386 ipc SEMCTL of a pointer it cannot read returned the expected value: yes\n",
    "i386 ipc of no sub-call (99) returned the expected value: yes\n",
    "i386 ipc SEMOP returned the expected value: yes\n",
    "i386 ipc MSGSND returned the expected value: yes\n",
];

/// Lines `int80_shm` prints when its checks pass (every check prints
/// `yes` or exits 1).
const WANT_SHM: &[&str] = &[
    "the i386 shmget made a segment: yes\n",
    "the i386 shmget's segment has 8192 bytes, mode 0600: yes\n",
    "the i386 shmat returned an address below 4 GiB: yes\n",
    "the /proc/self/maps line at the i386 shmat's address is the 8 KiB segment: yes\n",
    "the i386 attach sees what the 64-bit attach wrote: yes\n",
    "the i386 attach reads back what it wrote: yes\n",
    "i386 shmctl IPC_STAT stored the 64-bit call's perm, size, times, pids and 1 attach in the compat_shmid64_ds: yes\n",
    "i386 shmctl IPC_INFO stored the 64-bit call's shminfo in the compat_shminfo64: yes\n",
    "i386 shmctl SHM_INFO stored a compat_shm_info of at least 1 segment: yes\n",
    "i386 shmdt returned the expected value: yes\n",
    "after the i386 shmdt no mapping is at its address: yes\n",
    "a 64-bit attach sees what the i386 attach wrote: yes\n",
    "i386 shmdt of an address with no segment returned the expected value: yes\n",
    "the segment is gone after the i386 IPC_RMID: yes\n",
    "the ipc SHMGET made a segment: yes\n",
    "i386 ipc SHMAT of version 1 returned the expected value: yes\n",
    "ipc SHMAT stored a 32-bit address, the next byte untouched: yes\n",
    "the /proc/self/maps line at ipc SHMAT's address is the 4 KiB segment: yes\n",
    "the ipc attach sees what the 64-bit attach wrote: yes\n",
    "ipc SHMCTL IPC_STAT|IPC_64 stored the compat_shmid64_ds of 4096 bytes and 1 attach: yes\n",
    "ipc SHMCTL IPC_STAT stored the old 48-byte compat_shmid_ds of 4096 bytes and 1 attach: yes\n",
    "ipc SHMCTL IPC_INFO stored the old 20-byte shminfo: yes\n",
    "i386 ipc SHMDT returned the expected value: yes\n",
    "after the ipc SHMDT no mapping is at its address: yes\n",
    "a 64-bit attach sees what the ipc attach wrote: yes\n",
    "i386 ipc SHMDT of an address with no segment returned the expected value: yes\n",
    "i386 ipc SHMCTL IPC_RMID returned the expected value: yes\n",
    "the i386 shmat with SHM_RDONLY returned an address below 4 GiB: yes\n",
    "its /proc/self/maps line is the 8 KiB segment, r--s: yes\n",
    "the read-only i386 attach sees what the 64-bit attach wrote: yes\n",
    "a write to the read-only i386 attach faults: yes\n",
    "i386 shmdt of the read-only attach returned the expected value: yes\n",
    "i386 ipc SHMAT with SHM_RDONLY|SHM_EXEC returned the expected value: yes\n",
    "its /proc/self/maps line is the 8 KiB segment, r-xs: yes\n",
    "the function in the r-xs attach returns 42: yes\n",
    "a write to the r-xs attach faults: yes\n",
    "i386 ipc SHMDT of the r-xs attach returned the expected value: yes\n",
    "the i386 shmat with SHM_EXEC: its /proc/self/maps line is the 8 KiB segment, rwxs: yes\n",
    "a function written into the rwxs attach returns 7, the one before 42: yes\n",
    "i386 shmdt of the rwxs attach returned the expected value: yes\n",
    "after it no mapping is at its address: yes\n",
    "i386 shmctl IPC_RMID of the segment attached read-only returned the expected value: yes\n",
];

/// Lines `int80_aio` prints when its checks pass (every check prints
/// `yes` or exits 1).
/// `int80_signals`' lines (one of each call's checks).
const WANT_SIGNALS: &[&str] = &[
    "the i386 rt_sigprocmask's old mask is the 64-bit mask before it: yes\n",
    "the 64-bit mask has SIGUSR1 blocked after the i386 rt_sigprocmask: yes\n",
    "the i386 sigprocmask's old mask is the 64-bit mask's low word: yes\n",
    "the 64-bit mask has SIGUSR2 unblocked after the i386 sigprocmask: yes\n",
    "the i386 sigpending sees the pending SIGUSR1, as the 64-bit call: yes\n",
    "the i386 rt_sigpending sees the pending SIGUSR1, as the 64-bit call: yes\n",
    "SIGUSR1 was handled when the i386 rt_sigprocmask unblocked it: yes\n",
    "the i386 rt_sigaction's action is the 64-bit call's (handler, flags, restorer, mask): yes\n",
    "the i386 rt_sigaction's old action of SIGUSR2 is SIG_IGN: yes\n",
    "the i386 sigaction's old action is the 64-bit call's (handler, mask, flags, restorer): yes\n",
    "the 64-bit call sees SIGWINCH ignored after the i386 sigaction: yes\n",
    "the 64-bit call sees SIGWINCH's action before again: yes\n",
    "i386 signal SIG_DFL (the old handler, SIG_IGN) returned the expected value: yes\n",
    "the 64-bit sigaltstack sees the i386 call's stack: yes\n",
    "the i386 sigaltstack reads its stack back: yes\n",
    "the SA_ONSTACK handler ran on the i386 sigaltstack's stack: yes\n",
    "the 64-bit sigaltstack sees the stack disabled: yes\n",
    "i386 set_tid_address (the thread's id) returned the expected value: yes\n",
];

const WANT_AIO: &[&str] = &[
    "i386 io_setup returned the expected value: yes\n",
    "the i386 io_setup stored a 32-bit context, the next word untouched: yes\n",
    "the ring at the i386 context has the AIO magic, 8 events or more, head 0, tail 0: yes\n",
    "i386 io_submit of a PREAD and a PREADV of 32-bit iovecs returned the expected value: yes\n",
    "the ring's tail is 2 after the i386 io_submit: yes\n",
    "the i386 io_submit's reads filled the buffers (the PREADV through 32-bit iovecs): yes\n",
    "the i386 io_submit zeroed each iocb's aio_key: yes\n",
    "i386 io_getevents without a timeout returned the expected value: yes\n",
    "the i386 io_getevents took the PREAD's event (data, res, iocb): yes\n",
    "i386 io_getevents with a 32-bit 1 s timeout returned the expected value: yes\n",
    "the i386 io_getevents took the PREADV's event (data, res, iocb): yes\n",
    "the ring's head is 2 after the i386 io_getevents: yes\n",
    "i386 io_submit of a PREAD returned the expected value: yes\n",
    "i386 io_pgetevents with a mask and a 32-bit timeout returned the expected value: yes\n",
    "the i386 io_pgetevents took the PREAD's event and its bytes: yes\n",
    "i386 io_pgetevents_time64 with nothing left and a zero timeout returned the expected value: yes\n",
    "i386 io_submit of a PWRITE returned the expected value: yes\n",
    "i386 io_pgetevents_time64 with a mask and a 64-bit timeout returned the expected value: yes\n",
    "the i386 io_pgetevents_time64 took the PWRITE's event, the file holds its bytes: yes\n",
    "i386 io_pgetevents interrupted by the SIGUSR1 its mask lets through returned the expected value: yes\n",
    "SIGUSR1 was handled during the i386 io_pgetevents: yes\n",
    "SIGUSR1 is blocked again after the i386 io_pgetevents: yes\n",
    "i386 io_cancel of a completed iocb returned the expected value: yes\n",
    "i386 io_destroy returned the expected value: yes\n",
    "no mapping is at the ring's address after the i386 io_destroy: yes\n",
    "i386 io_getevents after the io_destroy returned the expected value: yes\n",
];

const fn aio(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_AIO,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_aio",
                link,
                defines: &[],
            }),
        )
    }
}

/// `int80_aio`'s builds: trials of their own (`breadth::int80::aio_*`).
const AIO_SPECS: &[Spec] = &[
    aio("int80_aio-nopie", Link::NoPie),
    aio("int80_aio-static", Link::Static),
];

const fn signals(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_SIGNALS,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_signals",
                link,
                defines: &[],
            }),
        )
    }
}

const fn shm(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_SHM,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_shm",
                link,
                defines: &[],
            }),
        )
    }
}

const fn ipc(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_IPC,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_ipc",
                link,
                defines: &[],
            }),
        )
    }
}

const fn mq(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_MQ,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_mq",
                link,
                defines: &[],
            }),
        )
    }
}

const fn sc(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_SC,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_socketcall",
                link,
                defines: &[],
            }),
        )
    }
}

const fn io(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_IO,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_io",
                link,
                defines: &[],
            }),
        )
    }
}

const fn old(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_OLD,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_old",
                link,
                defines: &[],
            }),
        )
    }
}

const fn at(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_AT,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_at",
                link,
                defines: &[],
            }),
        )
    }
}

const fn files(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT_FILES,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_files",
                link,
                defines: &[],
            }),
        )
    }
}

const fn more(name: &'static str, link: Link) -> Spec {
    Spec {
        stdout_has: WANT,
        // getrandom's bytes, hashed.
        differs: true,
        ..Spec::new(
            name,
            Source::C(CBuild {
                name: "int80_more",
                link,
                defines: &[],
            }),
        )
    }
}

const SPECS: &[Spec] = &[
    more("int80_more-nopie", Link::NoPie),
    more("int80_more-static", Link::Static),
    files("int80_files-nopie", Link::NoPie),
    files("int80_files-static", Link::Static),
    at("int80_at-nopie", Link::NoPie),
    at("int80_at-static", Link::Static),
    old("int80_old-nopie", Link::NoPie),
    old("int80_old-static", Link::Static),
    io("int80_io-nopie", Link::NoPie),
    io("int80_io-static", Link::Static),
    sc("int80_socketcall-nopie", Link::NoPie),
    sc("int80_socketcall-static", Link::Static),
    mq("int80_mq-nopie", Link::NoPie),
    mq("int80_mq-static", Link::Static),
    ipc("int80_ipc-nopie", Link::NoPie),
    ipc("int80_ipc-static", Link::Static),
    shm("int80_shm-nopie", Link::NoPie),
    shm("int80_shm-static", Link::Static),
    signals("int80_signals-nopie", Link::NoPie),
    signals("int80_signals-static", Link::Static),
];

/// The trials (see the module's comment).
pub fn trials() -> Vec<Trial> {
    let skip = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    let mut trials = spec_trials("breadth::int80", SPECS, |t, s| repeated(t, s, ROUNDS));
    trials.push(
        Trial::test("breadth::int80::under_chaos", || {
            all_under_chaos(
                "breadth::int80::under_chaos",
                SPECS,
                Duration::from_secs(60),
            )
        })
        .with_ignored_flag(skip),
    );
    let gcc = build::gcc_missing().is_some();
    trials.push(
        Trial::test("breadth::int80::aio_native", || {
            for spec in AIO_SPECS {
                recorder::native(&format!("breadth::int80::aio_native-{}", spec.name), spec)
                    .map_err(|e| format!("{}: {}", spec.name, e.message().unwrap_or("")))?;
            }
            Ok(())
        })
        .with_ignored_flag(gcc),
    );
    trials.push(
        Trial::test("breadth::int80::aio_record_replay", || {
            for spec in AIO_SPECS {
                repeated(
                    &format!("breadth::int80::aio_record_replay-{}", spec.name),
                    spec,
                    ROUNDS,
                )
                .map_err(|e| format!("{}: {}", spec.name, e.message().unwrap_or("")))?;
            }
            Ok(())
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::int80::aio_under_chaos", || {
            all_under_chaos(
                "breadth::int80::aio_under_chaos",
                AIO_SPECS,
                Duration::from_secs(60),
            )
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::int80::signals_refused_named", || {
            signals_refused("breadth::int80::signals_refused_named")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::int80::shm_refused_named", || {
            shm_refused("breadth::int80::shm_refused_named")
        })
        .with_ignored_flag(skip),
    );
    trials
}

/// `int80_shm` with `REFUSED_SHM`: what the recorder still refuses of
/// the 32-bit attaches, after the recorded calls (the read-only and
/// executable attaches among them): a segment attached by the i386
/// `shmat` (397) while `ipc`'s `SHMAT` has it attached (replay would map
/// two memories), and `ipc`'s `SHMAT` (read-only) of a 300 MiB segment
/// (not copied). The program runs to its end, the trace is unreplayable
/// and names both (and no recorded call), and replay refuses it.
fn shm_refused(trial: &str) -> Result<(), Failed> {
    refused_run(
        trial,
        Spec::new(
            "int80_shm-refused-shm",
            Source::C(CBuild {
                name: "int80_shm",
                link: Link::NoPie,
                defines: &["REFUSED_SHM"],
            }),
        ),
        &["the second attach of a segment and the attach of 300 MiB attached: yes"],
        WANT_SHM,
        &["attached again", "300 MiB"],
        &["SHM_RDONLY"],
    )
}

/// `int80_signals` with `REFUSED_HANDLER`: what stays refused of the i386
/// signal calls, after the recorded ones. Children install a handler
/// with the i386 `rt_sigaction` (the kernel would run it with an i386
/// frame, in 32-bit mode) and raise its signal, and make the i386
/// `sigreturn` and `rt_sigreturn` with no frame of theirs; each dies of
/// SIGSEGV as natively, the program runs to its end, the trace is
/// unreplayable and names the three (and no recorded call), and replay
/// refuses it.
fn signals_refused(trial: &str) -> Result<(), Failed> {
    refused_run(
        trial,
        Spec::new(
            "int80_signals-refused-handler",
            Source::C(CBuild {
                name: "int80_signals",
                link: Link::NoPie,
                defines: &["REFUSED_HANDLER"],
            }),
        ),
        &[
            "a handler installed by the i386 rt_sigaction, its signal raised: the child died of SIGSEGV: yes",
            "the i386 sigreturn with no frame: the child died of SIGSEGV: yes",
            "the i386 rt_sigreturn with no frame: the child died of SIGSEGV: yes",
        ],
        WANT_SIGNALS,
        &[
            "i386 rt_sigaction (int $0x80 #174) installed a handler",
            "i386 sigreturn (int $0x80 #119)",
            "i386 rt_sigreturn (int $0x80 #173)",
        ],
        &[],
    )
}

/// A refused build of an int80 fixture (`spec`) recorded for `trial`: the
/// program runs to its end (`EXIT-SUCCESS` last) and prints each of `ran`
/// and of `wanted` (its recorded calls' checks); the trace is unreplayable
/// for exactly `reasons` (each named, none of `not_named`: a recorded call
/// made none), and replay refuses it with the first reason before running.
fn refused_run(
    trial: &str,
    spec: Spec,
    ran: &[&str],
    wanted: &[&str],
    reasons: &[&str],
    not_named: &[&str],
) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    let out = rec.stdout_text();
    check!(
        out.lines().last() == Some("EXIT-SUCCESS")
            && ran.iter().chain(wanted).all(|w| out.contains(w)),
        "the recorded program did not run to its end with its checks passed\n{}",
        rec.describe()
    );
    let json = run::info_value(&trace)?;
    let named = json["unreplayable"].to_string();
    check!(
        reasons.iter().all(|r| named.contains(r)) && !not_named.iter().any(|r| named.contains(r)),
        "the unreplayable reasons are not {reasons:?}: {named}"
    );
    check!(
        json["unreplayable"].as_array().map_or(0, Vec::len) == reasons.len(),
        "a recorded 32-bit call made the trace unreplayable too: {named}"
    );
    let rep = inv.replay(&trace)?;
    rep.expect_code(EXIT_BAD_TRACE)?;
    check!(
        rep.stderr_text().contains(reasons[0]) && rep.stdout.is_empty(),
        "replay did not refuse with the reason before running\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}
