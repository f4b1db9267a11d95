//! Breadth trials from issue #20's sweep of everyday kernel features: six C
//! fixtures, one per group, each printing every call's result and the
//! bytes it got (nothing that differs between native runs), recorded,
//! verified and replayed identically. docs/breadth.md lists them.
//!
//! - `sweep_signals`: sigqueue with a value, rt_sigqueueinfo,
//!   rt_tgsigqueueinfo, real-time signals dequeued in order, one queued
//!   three times and delivered once per instance, SA_RESETHAND,
//!   SA_NODEFER, SA_SIGINFO fields, sigtimedwait, sigwaitinfo, sigsuspend,
//!   pause + alarm, signalfd, a handler interrupting a blocking read with
//!   and without SA_RESTART;
//! - `sweep_timers`: setitimer (REAL, VIRTUAL, PROF), timer_create with
//!   SIGEV_SIGNAL and SIGEV_THREAD_ID, overruns, timerfd with
//!   TFD_TIMER_ABSTIME, clock_nanosleep TIMER_ABSTIME, clock_getres,
//!   times, getrusage (SELF, CHILDREN, THREAD), wait4's rusage;
//! - `sweep_memory`: MAP_GROWSDOWN (grown by a touch below it), PROT_GROWSDOWN, MAP_FIXED_NOREPLACE,
//!   MAP_POPULATE, MAP_NORESERVE, madvise (DONTNEED, FREE, WIPEONFORK and
//!   DONTFORK with fork, REMOVE on shared memory), mincore, msync, the
//!   mlock family, mremap (MAYMOVE|FIXED, DONTUNMAP, shrink), brk shrink
//!   and grow, memfd_create with seals and a shared mapping;
//! - `sweep_files`: fallocate (punch hole, collapse, zero range),
//!   O_TMPFILE + linkat(AT_EMPTY_PATH), renameat2 (EXCHANGE, NOREPLACE),
//!   name_to_handle_at (the size query's EOVERFLOW, then the handle) and
//!   open_by_handle_at, xattrs, OFD and process locks, sync_file_range,
//!   readahead, posix_fadvise, preadv2/pwritev2 with flags, statfs and
//!   fstatfs, utimensat with UTIME_NOW/UTIME_OMIT, getdents64 of 600
//!   entries, the file ioctls (FIGETBSZ, FIBMAP, FS_IOC_GETFLAGS,
//!   FS_IOC_SETFLAGS, FS_IOC_GETVERSION, FS_IOC_FSGETXATTR, FS_IOC_FIEMAP),
//!   RNDGETENTCNT;
//! - `sweep_sockets`: SCM_RIGHTS, SCM_CREDENTIALS, SO_PEERCRED,
//!   sendmmsg/recvmmsg, MSG_PEEK, MSG_TRUNC, an abstract unix datagram
//!   name, TCP over loopback (accept4, shutdown, TCP_NODELAY, SO_LINGER,
//!   SO_RCVBUF), a netlink RTM_GETLINK dump, the interface ioctls
//!   (if_nametoindex's SIOCGIFINDEX, if_indextoname's SIOCGIFNAME,
//!   SIOCGIFFLAGS, SIOCGIFMTU, SIOCGIFADDR, SIOCGIFCONF), SIOCATMARK,
//!   SIOCOUTQNSD, SIOCGSTAMP;
//! - `sweep_process`: prctl (name, subreaper, pdeathsig, no_new_privs,
//!   dumpable, timer slack), the scheduler calls, priorities, getcpu,
//!   capget/capset, setresuid/setgroups (root), personality, sysinfo,
//!   rlimits, waitid(P_PIDFD), wait4, a zombie reaped late, vfork, clone
//!   with CLONE_PARENT_SETTID.
//!
//! Each has `::native` and `::record_replay` ([`spec_trials`]), and
//! `::recorded_as_native`: a native run and a recording print the same
//! stdout byte for byte, and the recording replays it;
//! `breadth::sweep::under_chaos` records each under the chaos scheduler.

use libtest_mimic::Trial;

use crate::breadth::{c, native_alike_trials};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

/// The fixtures, each recording, verifying and replaying identically.
const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[
            "dequeued: RTMIN+0/16/SI_QUEUE RTMIN+0/13/SI_QUEUE RTMIN+0/15/SI_QUEUE RTMIN+1/11/SI_QUEUE RTMIN+1/14/SI_QUEUE RTMIN+2/10/SI_QUEUE RTMIN+2/12/SI_QUEUE\n",
            "delivered 3: RTMIN+1/20/SI_QUEUE RTMIN+1/21/SI_QUEUE RTMIN+1/22/SI_QUEUE\n",
            "SA_RESETHAND: handler ran 1, now default 1\n",
            "SA_NODEFER: max depth 3 calls 3\n",
            "SA_SIGINFO fields right: 1\n",
            "sigtimedwait: RTMIN+3 value 99 code -1\n",
            "sigsuspend: -1 errno 4 handler 1, mask back 1\n",
            "pause: -1 errno 4 handler 1\n",
            "signalfd read 256: sig USR1 code 0 int 0 self 1; sig RTMIN+4 code -1 int 123 self 1;\n",
            "read without SA_RESTART: returned -1 errno 4 handler 1\n  read again: 4 'late'\n",
            "read with SA_RESTART: returned 4 errno 0 handler 1\n  bytes 'late'\n",
        ],
        ..c("sweep_signals", CBuild::pie("sweep_signals"))
    },
    Spec {
        stdout_has: &[
            "ITIMER_REAL fired 1, now disarmed 1\n",
            "ITIMER_VIRTUAL fired 1\n",
            "ITIMER_PROF fired 1\n",
            "SIGEV_SIGNAL: fired 1 value 4242 SI_TIMER 1 overrun 0\n",
            "overrun: sig RTMIN 1, si_overrun > 10 1, getoverrun > 10 1\n",
            "SIGEV_THREAD_ID: fired 1 value 777\n",
            "timerfd expirations 1, at or after the deadline 1\n",
            "clock_nanosleep abs: 0, reached 1\n",
            "wait4 rusage: exit 3, maxrss > 0 1\n",
            "getrusage bad who: -1 errno 22\n",
        ],
        ..c("sweep_timers", CBuild::pie("sweep_timers"))
    },
    Spec {
        stdout_has: &[
            "MAP_GROWSDOWN grew below: 11, mincore there 0\n",
            "MAP_FIXED_NOREPLACE over a mapping: failed errno 17\n",
            "MAP_POPULATE: mincore 0 resident 8 of 8\n",
            "MADV_DONTNEED: 0, bytes now 0 97\n",
            "WIPEONFORK: child sum 0\n",
            "DONTFORK: child killed by signal 11\n",
            "MADV_REMOVE on shmem: 0, bytes z 0 z\n",
            "MREMAP_DONTUNMAP: data mremap-data q, old range now 0 0\n",
            "brk grow again: 16 pages, byte in the old part 7, in the regrown part 0\n",
            "memfd read after a write through the mapping: Memfd-bytes\n",
            "seals added: 0, now 0xe\n",
        ],
        ..c("sweep_memory", CBuild::pie("sweep_memory"))
    },
    Spec {
        leaves_files: true,
        stdout_has: &[
            "punch hole: 0\n  bytes in the hole 0 0, size 16384\n",
            "RENAME_EXCHANGE: 0\n  one has 2, two has 1\n",
            "name_to_handle_at size query: -1 errno 75, size > 0 1\nname_to_handle_at: 0\n",
            "open_by_handle_at: opened, reads 1\n",
            "F_OFD_SETLK conflicting: -1 errno 11\n",
            "preadv2 RWF_HIPRI: 8 'AAAA' 'BBBB'\n",
            "UTIME_OMIT/UTIME_NOW: 0 atime kept 1 mtime now 1\n",
            "getdents64: 600 entries, names sum 179700, more than one call 1\n",
            "FIGETBSZ: 0, the block size stat gives 1\n",
            "RNDGETENTCNT: 0, stored 1\n",
            "FS_IOC_FIEMAP: 0, same count 1, extents cover the file 1, last flagged 1\n",
        ],
        ..c("sweep_files", CBuild::pie("sweep_files"))
    },
    Spec {
        stdout_has: &[
            "recvmsg: 1 'R', SCM_RIGHTS fd reads 6 'via-fd', cloexec 1\n",
            "recvmsg: 1 'C', credentials ours 1\n",
            "recvmmsg: 3: 'first'/5 'seco'/4 truncated 1 'third'/5\n",
            "MSG_TRUNC: returned 10, got '0123'\n",
            "getsockname abstract: len right 1 name right 1\n",
            "server read 'hello tcp' then EOF 0\n",
            "RTM_GETLINK dump: links >= 1 1, loopback 1, sequence kept 1\n",
            "if_nametoindex(lo) > 0 1, if_indextoname gives back lo\n",
            "SIOCGIFCONF: 0, same length 1, lo 127.0.0.1 listed 1\n",
            "SIOCGSTAMP: 0, 'udp' stamped after the send began 1\n",
        ],
        ..c("sweep_sockets", CBuild::pie("sweep_sockets"))
    },
    Spec {
        stdout_has: &[
            "PR_GET_NAME: 'sweep-proc-name'\n",
            "orphan reaped by us (subreaper): code CLD_KILLED signal 15\n",
            "PR_SET_NO_NEW_PRIVS in a child: set\n",
            "waitid P_PIDFD: 0 code CLD_EXITED 1 status 21 pid right 1\n",
            "vfork: child wrote our memory 31, exit 24\n",
            "CLONE_PARENT_SETTID: tid stored 1, exit 5\n",
        ],
        ..c("sweep_process", CBuild::pie("sweep_process"))
    },
];

/// The trials.
pub fn trials() -> Vec<Trial> {
    native_alike_trials("breadth::sweep", SPECS)
}
