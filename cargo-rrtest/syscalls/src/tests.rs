//! Tests of the table as a whole and of the structured output functions,
//! against a fake tracee address space.

use super::*;
use std::collections::HashMap;

/// A sparse fake address space: only the bytes a test stored are readable.
#[derive(Default)]
struct FakeMem(HashMap<u64, u8>);

impl FakeMem {
    fn put(&mut self, addr: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.0.insert(addr + i as u64, b);
        }
    }
    fn put_u64(&mut self, addr: u64, v: u64) {
        self.put(addr, &v.to_le_bytes());
    }
    fn put_u32(&mut self, addr: u64, v: u32) {
        self.put(addr, &v.to_le_bytes());
    }
    /// Stores an iovec array at `at`.
    fn put_iovs(&mut self, at: u64, iovs: &[(u64, u64)]) {
        for (i, &(base, len)) in iovs.iter().enumerate() {
            self.put_u64(at + 16 * i as u64, base);
            self.put_u64(at + 16 * i as u64 + 8, len);
        }
    }
}

impl MemReader for FakeMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self
                .0
                .get(&(addr + i as u64))
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EFAULT))?;
        }
        Ok(())
    }
}

fn call(nr: i64, args: &[u64], ret: i64) -> Call {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Call { nr, args: a, ret }
}

/// Runs the table's output function for `c` and returns (addr, len) pairs.
fn regions(c: &Call, mem: &FakeMem) -> Result<Vec<(u64, usize)>, Unsupported> {
    let desc = lookup(c.nr).expect("syscall in the table");
    let mut out = Vec::new();
    (desc.outputs)(c, mem, &mut out)?;
    Ok(out.into_iter().map(|r| (r.addr, r.len)).collect())
}

fn ok(c: &Call, mem: &FakeMem) -> Vec<(u64, usize)> {
    regions(c, mem).expect("supported")
}

#[test]
fn table_is_sorted_without_duplicates() {
    for w in TABLE.windows(2) {
        assert!(w[0].nr < w[1].nr, "{} before {}", w[0].name, w[1].name);
    }
    let mut names: Vec<_> = TABLE.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), TABLE.len(), "duplicate names");
}

/// `[("SYS_read", libc::SYS_read), ...]` from a list of libc constants.
macro_rules! sys_numbers {
    ($($sys:ident),* $(,)?) => {
        &[$((stringify!($sys), libc::$sys)),*]
    };
}

#[test]
fn numbers_match_libc() {
    // Every entry, by name, with libc's number for it.
    let expected: &[(&str, i64)] = sys_numbers!(
        SYS_read,
        SYS_write,
        SYS_open,
        SYS_close,
        SYS_stat,
        SYS_fstat,
        SYS_lstat,
        SYS_poll,
        SYS_lseek,
        SYS_mmap,
        SYS_mprotect,
        SYS_munmap,
        SYS_brk,
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_ioctl,
        SYS_pread64,
        SYS_pwrite64,
        SYS_readv,
        SYS_writev,
        SYS_access,
        SYS_pipe,
        SYS_select,
        SYS_sched_yield,
        SYS_mremap,
        SYS_msync,
        SYS_mincore,
        SYS_madvise,
        SYS_shmget,
        SYS_shmat,
        SYS_shmctl,
        SYS_dup,
        SYS_dup2,
        SYS_pause,
        SYS_nanosleep,
        SYS_getitimer,
        SYS_alarm,
        SYS_setitimer,
        SYS_getpid,
        SYS_sendfile,
        SYS_socket,
        SYS_connect,
        SYS_accept,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_shutdown,
        SYS_bind,
        SYS_listen,
        SYS_getsockname,
        SYS_getpeername,
        SYS_socketpair,
        SYS_setsockopt,
        SYS_getsockopt,
        SYS_clone,
        SYS_fork,
        SYS_vfork,
        SYS_execve,
        SYS_exit,
        SYS_wait4,
        SYS_kill,
        SYS_uname,
        SYS_semget,
        SYS_semop,
        SYS_semctl,
        SYS_shmdt,
        SYS_msgget,
        SYS_msgsnd,
        SYS_msgrcv,
        SYS_msgctl,
        SYS_fcntl,
        SYS_flock,
        SYS_fsync,
        SYS_fdatasync,
        SYS_truncate,
        SYS_ftruncate,
        SYS_getdents,
        SYS_getcwd,
        SYS_chdir,
        SYS_fchdir,
        SYS_rename,
        SYS_mkdir,
        SYS_rmdir,
        SYS_creat,
        SYS_link,
        SYS_unlink,
        SYS_symlink,
        SYS_readlink,
        SYS_chmod,
        SYS_fchmod,
        SYS_chown,
        SYS_fchown,
        SYS_lchown,
        SYS_umask,
        SYS_gettimeofday,
        SYS_getrlimit,
        SYS_getrusage,
        SYS_sysinfo,
        SYS_times,
        SYS_ptrace,
        SYS_getuid,
        SYS_getgid,
        SYS_setuid,
        SYS_setgid,
        SYS_geteuid,
        SYS_getegid,
        SYS_setpgid,
        SYS_getppid,
        SYS_getpgrp,
        SYS_setsid,
        SYS_setreuid,
        SYS_setregid,
        SYS_getgroups,
        SYS_setgroups,
        SYS_setresuid,
        SYS_getresuid,
        SYS_setresgid,
        SYS_getresgid,
        SYS_getpgid,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_getsid,
        SYS_capget,
        SYS_capset,
        SYS_rt_sigpending,
        SYS_rt_sigtimedwait,
        SYS_rt_sigqueueinfo,
        SYS_rt_sigsuspend,
        SYS_sigaltstack,
        SYS_utime,
        SYS_mknod,
        SYS_personality,
        SYS_statfs,
        SYS_fstatfs,
        SYS_getpriority,
        SYS_setpriority,
        SYS_sched_setparam,
        SYS_sched_getparam,
        SYS_sched_setscheduler,
        SYS_sched_getscheduler,
        SYS_sched_get_priority_max,
        SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval,
        SYS_mlock,
        SYS_munlock,
        SYS_mlockall,
        SYS_munlockall,
        SYS_prctl,
        SYS_arch_prctl,
        SYS_setrlimit,
        SYS_sync,
        SYS_gettid,
        SYS_readahead,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_fgetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_flistxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_tkill,
        SYS_time,
        SYS_futex,
        SYS_sched_setaffinity,
        SYS_sched_getaffinity,
        SYS_io_setup,
        SYS_io_destroy,
        SYS_io_getevents,
        SYS_io_submit,
        SYS_io_cancel,
        SYS_epoll_create,
        SYS_getdents64,
        SYS_set_tid_address,
        SYS_restart_syscall,
        SYS_semtimedop,
        SYS_fadvise64,
        SYS_timer_create,
        SYS_timer_settime,
        SYS_timer_gettime,
        SYS_timer_getoverrun,
        SYS_timer_delete,
        SYS_clock_settime,
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_clock_nanosleep,
        SYS_exit_group,
        SYS_epoll_wait,
        SYS_epoll_ctl,
        SYS_tgkill,
        SYS_utimes,
        SYS_waitid,
        SYS_inotify_init,
        SYS_inotify_add_watch,
        SYS_inotify_rm_watch,
        SYS_openat,
        SYS_mkdirat,
        SYS_mknodat,
        SYS_fchownat,
        SYS_futimesat,
        SYS_newfstatat,
        SYS_unlinkat,
        SYS_renameat,
        SYS_linkat,
        SYS_symlinkat,
        SYS_readlinkat,
        SYS_fchmodat,
        SYS_faccessat,
        SYS_pselect6,
        SYS_ppoll,
        SYS_set_robust_list,
        SYS_get_robust_list,
        SYS_splice,
        SYS_tee,
        SYS_sync_file_range,
        SYS_vmsplice,
        SYS_utimensat,
        SYS_epoll_pwait,
        SYS_signalfd,
        SYS_timerfd_create,
        SYS_eventfd,
        SYS_fallocate,
        SYS_timerfd_settime,
        SYS_timerfd_gettime,
        SYS_accept4,
        SYS_signalfd4,
        SYS_eventfd2,
        SYS_epoll_create1,
        SYS_dup3,
        SYS_pipe2,
        SYS_inotify_init1,
        SYS_preadv,
        SYS_pwritev,
        SYS_rt_tgsigqueueinfo,
        SYS_perf_event_open,
        SYS_recvmmsg,
        SYS_prlimit64,
        SYS_syncfs,
        SYS_sendmmsg,
        SYS_getcpu,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_sched_setattr,
        SYS_sched_getattr,
        SYS_renameat2,
        SYS_seccomp,
        SYS_getrandom,
        SYS_memfd_create,
        SYS_bpf,
        SYS_execveat,
        SYS_userfaultfd,
        SYS_membarrier,
        SYS_mlock2,
        SYS_copy_file_range,
        SYS_preadv2,
        SYS_pwritev2,
        SYS_pkey_mprotect,
        SYS_pkey_alloc,
        SYS_pkey_free,
        SYS_statx,
        SYS_rseq,
        SYS_pidfd_send_signal,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_pidfd_open,
        SYS_clone3,
        SYS_close_range,
        SYS_openat2,
        SYS_pidfd_getfd,
        SYS_faccessat2,
        SYS_epoll_pwait2,
        SYS_landlock_create_ruleset,
        SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
        SYS_memfd_secret,
        SYS_futex_waitv,
        SYS_fchmodat2,
        SYS_mseal,
        SYS_syslog,
        SYS_sysfs,
        SYS_modify_ldt,
        SYS_adjtimex,
        SYS_acct,
        SYS_iopl,
        SYS_ioperm,
        SYS_quotactl,
        SYS_mbind,
        SYS_set_mempolicy,
        SYS_get_mempolicy,
        SYS_mq_open,
        SYS_mq_unlink,
        SYS_mq_timedsend,
        SYS_mq_timedreceive,
        SYS_mq_notify,
        SYS_mq_getsetattr,
        SYS_add_key,
        SYS_request_key,
        SYS_keyctl,
        SYS_ioprio_set,
        SYS_ioprio_get,
        SYS_fanotify_init,
        SYS_fanotify_mark,
        SYS_clock_adjtime,
        SYS_kcmp,
        SYS_open_tree,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_move_pages,
        SYS_process_madvise,
        SYS_pivot_root,
        SYS_chroot,
        SYS_mount,
        SYS_umount2,
        SYS_sethostname,
        SYS_setdomainname,
        SYS_unshare,
        SYS_setns,
        SYS_move_mount,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_mount_setattr,
    );
    // Newer than the libc crate's list (or missing from it).
    let newer: &[(&str, i64)] = &[
        ("SYS_io_pgetevents", 333),
        ("SYS_cachestat", 451),
        ("SYS_statmount", 457),
        ("SYS_listmount", 458),
    ];
    let expected: Vec<(&str, i64)> = expected.iter().chain(newer).copied().collect();
    let distinct: std::collections::HashSet<_> = expected.iter().map(|&(n, _)| n).collect();
    assert_eq!(distinct.len(), expected.len(), "a name twice in the list");
    assert_eq!(
        expected.len(),
        TABLE.len(),
        "the list below and the table differ"
    );
    for &(sys, nr) in &expected {
        let name = sys.strip_prefix("SYS_").expect("a SYS_ constant");
        let d = lookup(nr).unwrap_or_else(|| panic!("{name} ({nr}) missing"));
        assert_eq!(d.name, name, "number {nr}");
    }
}

#[test]
fn unknown_syscalls_are_not_in_the_table() {
    // 335..=423 are unallocated on x86-64.
    assert!(lookup(335).is_none());
    assert!(lookup(-1).is_none());
    assert!(lookup(100_000).is_none());
    assert_eq!(name(335), "syscall_335");
    assert_eq!(name(libc::SYS_openat), "openat");
}

#[test]
fn replay_actions_of_the_calls_replay_executes() {
    let action = |nr| lookup(nr).expect("known").replay;
    assert_eq!(action(libc::SYS_mmap), ReplayAction::Mmap);
    for nr in [
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_fork,
        libc::SYS_vfork,
    ] {
        assert_eq!(action(nr), ReplayAction::Clone, "{}", name(nr));
    }
    for nr in [libc::SYS_exit, libc::SYS_exit_group] {
        assert_eq!(action(nr), ReplayAction::Exit);
    }
    for nr in [libc::SYS_execve, libc::SYS_execveat] {
        assert_eq!(action(nr), ReplayAction::Execve);
    }
    assert_eq!(
        action(libc::SYS_rt_sigreturn),
        ReplayAction::ExecuteUnchecked
    );
    for nr in [
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_arch_prctl,
        libc::SYS_set_tid_address,
        libc::SYS_set_robust_list,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
    ] {
        assert_eq!(action(nr), ReplayAction::Execute, "{}", name(nr));
    }
    for nr in [
        libc::SYS_read,
        libc::SYS_openat,
        libc::SYS_rseq,
        libc::SYS_futex,
        libc::SYS_kill,
        libc::SYS_tgkill,
        libc::SYS_prctl,
        libc::SYS_seccomp,
        libc::SYS_clock_gettime,
        libc::SYS_getrandom,
    ] {
        assert_eq!(action(nr), ReplayAction::Emulate, "{}", name(nr));
    }
}

#[test]
fn may_block_marks_the_calls_that_wait_on_others() {
    let blocks = |nr| lookup(nr).expect("known").may_block;
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_openat,
        libc::SYS_futex,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait2,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        libc::SYS_wait4,
        libc::SYS_waitid,
        libc::SYS_accept4,
        libc::SYS_connect,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_flock,
        libc::SYS_fcntl,
        libc::SYS_pause,
        libc::SYS_rt_sigsuspend,
        libc::SYS_rt_sigtimedwait,
        libc::SYS_splice,
        libc::SYS_copy_file_range,
        libc::SYS_vfork,
        libc::SYS_clone3,
        libc::SYS_execve,
        libc::SYS_msgrcv,
        libc::SYS_msgsnd,
        libc::SYS_semop,
    ] {
        assert!(blocks(nr), "{} should be may_block", name(nr));
    }
    for nr in [
        libc::SYS_mmap,
        libc::SYS_brk,
        libc::SYS_getpid,
        libc::SYS_close,
        libc::SYS_fstat,
        libc::SYS_clock_gettime,
        libc::SYS_sched_yield,
        libc::SYS_exit_group,
    ] {
        assert!(!blocks(nr), "{} should not be may_block", name(nr));
    }
}

#[test]
fn failures_write_nothing_except_where_declared() {
    let mem = FakeMem::default();
    for d in TABLE {
        let args = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000];
        for errno in [libc::EBADF, libc::EFAULT, libc::EINTR, 512, 514, 516] {
            let c = Call {
                nr: d.nr,
                args,
                ret: -i64::from(errno),
            };
            let mut out = Vec::new();
            match (d.outputs)(&c, &mem, &mut out) {
                Ok(()) if out.is_empty() => {}
                Ok(()) => assert!(
                    writes_on_failure(d.nr),
                    "{} wrote {out:?} on errno {errno} but is not in writes_on_failure",
                    d.name
                ),
                // Only an interrupted restart_syscall may have written
                // memory we cannot describe.
                Err(Unsupported(msg)) => assert!(
                    d.nr == libc::SYS_restart_syscall
                        && errno != libc::EBADF
                        && errno != libc::EFAULT,
                    "{} failed with errno {errno}, yet: {msg}",
                    d.name
                ),
            }
        }
    }
}

#[test]
fn read_family_records_the_result_bounded_by_the_buffer() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_read, &[3, 0x1000, 100], 42), &m),
        [(0x1000, 42)]
    );
    assert!(ok(&call(libc::SYS_read, &[3, 0x1000, 100], 0), &m).is_empty());
    assert!(ok(&call(libc::SYS_read, &[3, 0x1000, 100], -11), &m).is_empty());
    // recv(MSG_TRUNC) returns the datagram's full length.
    assert_eq!(
        ok(
            &call(libc::SYS_recvfrom, &[3, 0x1000, 16, 0x20, 0, 0], 500),
            &m
        ),
        [(0x1000, 16)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getcwd, &[0x7000, 4096], 12), &m),
        [(0x7000, 12)]
    );
    assert_eq!(
        ok(&call(libc::SYS_readlinkat, &[3, 0x10, 0x2000, 64], 9), &m),
        [(0x2000, 9)]
    );
    assert_eq!(
        ok(&call(libc::SYS_sched_getaffinity, &[0, 128, 0x3000], 8), &m),
        [(0x3000, 8)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getrandom, &[0x4000, 32, 0], 32), &m),
        [(0x4000, 32)]
    );
    // getxattr with size 0 only reports the size.
    assert!(ok(&call(libc::SYS_getxattr, &[1, 2, 0x5000, 0], 30), &m).is_empty());
    assert_eq!(
        ok(&call(libc::SYS_getxattr, &[1, 2, 0x5000, 64], 30), &m),
        [(0x5000, 30)]
    );
}

#[test]
fn readv_scatters_up_to_the_result() {
    let mut m = FakeMem::default();
    m.put_iovs(0x100, &[(0x1000, 10), (0x2000, 20), (0x3000, 30)]);
    let readv = |ret| call(libc::SYS_readv, &[3, 0x100, 3], ret);
    assert_eq!(ok(&readv(25), &m), [(0x1000, 10), (0x2000, 15)]);
    assert_eq!(
        ok(&readv(60), &m),
        [(0x1000, 10), (0x2000, 20), (0x3000, 30)]
    );
    assert_eq!(ok(&readv(10), &m), [(0x1000, 10)]);
    assert!(ok(&readv(0), &m).is_empty());
    // Zero-length iovecs are skipped, the rest still filled in order.
    m.put_iovs(0x200, &[(0x1000, 0), (0x2000, 8)]);
    assert_eq!(
        ok(&call(libc::SYS_preadv2, &[3, 0x200, 2, 0, 0, 0], 8), &m),
        [(0x2000, 8)]
    );
    // An iovec array we cannot read is an error naming the call.
    let err = regions(&call(libc::SYS_readv, &[3, 0x9000, 1], 4), &m).unwrap_err();
    assert!(
        err.0
            .starts_with("readv: cannot read struct iovec at 0x9000"),
        "{err}"
    );
}

/// A msghdr at `hdr` with a 128-byte name buffer, two iovecs and a control
/// buffer, as the kernel leaves it after receiving.
fn put_msghdr(m: &mut FakeMem, hdr: u64, name: u64, namelen: u32, controllen: u64) {
    m.put_u64(hdr, name);
    m.put_u32(hdr + 8, namelen);
    m.put_u64(hdr + 16, hdr + 0x100);
    m.put_u64(hdr + 24, 2);
    m.put_u64(hdr + 32, hdr + 0x200);
    m.put_u64(hdr + 40, controllen);
    m.put_u32(hdr + 48, 0);
    m.put_iovs(hdr + 0x100, &[(hdr + 0x1000, 4), (hdr + 0x2000, 100)]);
}

#[test]
fn recvmsg_walks_the_msghdr() {
    let mut m = FakeMem::default();
    let hdr = 0x10_0000;
    put_msghdr(&mut m, hdr, 0x9000, 16, 24);
    let got = ok(&call(libc::SYS_recvmsg, &[3, hdr, 0], 10), &m);
    assert_eq!(
        got,
        [
            (hdr + 8, 4),      // msg_namelen
            (0x9000, 16),      // the address
            (hdr + 0x1000, 4), // first iovec, full
            (hdr + 0x2000, 6), // second iovec, the rest of 10 bytes
            (hdr + 0x200, 24), // ancillary data
            (hdr + 40, 8),     // msg_controllen
            (hdr + 48, 4),     // msg_flags
        ]
    );
    // No name buffer, no control data: only the data and the header fields.
    put_msghdr(&mut m, hdr, 0, 0, 0);
    m.put_u64(hdr + 32, 0);
    let got = ok(&call(libc::SYS_recvmsg, &[3, hdr, 0], 3), &m);
    assert_eq!(got, [(hdr + 0x1000, 3), (hdr + 40, 8), (hdr + 48, 4)]);
    // A returned address longer than sockaddr_storage is bounded.
    put_msghdr(&mut m, hdr, 0x9000, 4000, 0);
    let got = ok(&call(libc::SYS_recvmsg, &[3, hdr, 0], 0), &m);
    assert_eq!(got[..2], [(hdr + 8, 4), (0x9000, 128)]);
    // sendmsg writes nothing.
    assert!(ok(&call(libc::SYS_sendmsg, &[3, hdr, 0], 10), &m).is_empty());
}

#[test]
fn recvmmsg_and_sendmmsg_use_msg_len() {
    let mut m = FakeMem::default();
    let vec = 0x20_0000;
    put_msghdr(&mut m, vec, 0, 0, 0);
    m.put_u64(vec + 32, 0);
    m.put_u32(vec + 56, 7);
    put_msghdr(&mut m, vec + 64, 0, 0, 0);
    m.put_u64(vec + 64 + 32, 0);
    m.put_u32(vec + 64 + 56, 50);
    let got = ok(&call(libc::SYS_recvmmsg, &[3, vec, 4, 0, 0x5000], 2), &m);
    assert_eq!(
        got,
        [
            (vec + 0x1000, 4),
            (vec + 0x2000, 3),
            (vec + 40, 8),
            (vec + 48, 4),
            (vec + 56, 4),
            (vec + 64 + 0x1000, 4),
            (vec + 64 + 0x2000, 46),
            (vec + 64 + 40, 8),
            (vec + 64 + 48, 4),
            (vec + 64 + 56, 4),
            (0x5000, 16),
        ]
    );
    assert_eq!(
        ok(&call(libc::SYS_sendmmsg, &[3, vec, 4, 0], 2), &m),
        [(vec + 56, 4), (vec + 64 + 56, 4)]
    );
    // No message: nothing, not even the timeout.
    assert!(ok(&call(libc::SYS_recvmmsg, &[3, vec, 4, 0, 0x5000], 0), &m).is_empty());
    // More messages than the vector holds is impossible.
    assert!(regions(&call(libc::SYS_sendmmsg, &[3, vec, 1, 0], 2), &m).is_err());
}

#[test]
fn accept4_records_the_address_and_its_length() {
    let mut m = FakeMem::default();
    m.put_u32(0x500, 16);
    let accept4 = |addr, len| call(libc::SYS_accept4, &[3, addr, len, 0], 4);
    assert_eq!(ok(&accept4(0x400, 0x500), &m), [(0x500, 4), (0x400, 16)]);
    // A unix socket's 110-byte address; a huge length is bounded.
    m.put_u32(0x500, 110);
    assert_eq!(ok(&accept4(0x400, 0x500), &m), [(0x500, 4), (0x400, 110)]);
    m.put_u32(0x500, 1 << 20);
    assert_eq!(ok(&accept4(0x400, 0x500), &m), [(0x500, 4), (0x400, 128)]);
    // No address requested.
    assert!(ok(&accept4(0, 0), &m).is_empty());
    assert_eq!(
        ok(&call(libc::SYS_getsockname, &[3, 0x400, 0x500], 0), &m)[0],
        (0x500, 4)
    );
}

#[test]
fn getsockopt_records_optlen_bytes() {
    let mut m = FakeMem::default();
    m.put_u32(0x600, 4);
    let c = call(libc::SYS_getsockopt, &[3, 1, 4, 0x700, 0x600], 0);
    assert_eq!(ok(&c, &m), [(0x600, 4), (0x700, 4)]);
    m.put_u32(0x600, 0);
    assert_eq!(ok(&c, &m), [(0x600, 4)]);
    m.put_u32(0x600, u32::MAX);
    assert!(regions(&c, &m).is_err());
    // SO_PEERGROUPS with a short buffer: the needed length, ERANGE.
    let erange = call(libc::SYS_getsockopt, &[3, 1, 59, 0x700, 0x600], -34);
    assert_eq!(ok(&erange, &m), [(0x600, 4)]);
    // setsockopt writes nothing.
    assert!(ok(&call(libc::SYS_setsockopt, &[3, 1, 4, 0x700, 4], 0), &m).is_empty());
}

#[test]
fn clone_writes_per_flags() {
    let m = FakeMem::default();
    let vm = (libc::CLONE_VM | libc::CLONE_PARENT_SETTID | libc::CLONE_CHILD_SETTID) as u64;
    assert_eq!(
        ok(
            &call(libc::SYS_clone, &[vm, 0x8000, 0x100, 0x200, 0], 1234),
            &m
        ),
        [(0x100, 4), (0x200, 4)]
    );
    // Without CLONE_VM the child's tid goes into the child's memory only.
    let fork = (libc::CLONE_PARENT_SETTID | libc::CLONE_CHILD_SETTID) as u64;
    assert_eq!(
        ok(
            &call(libc::SYS_clone, &[fork, 0, 0x100, 0x200, 0], 1234),
            &m
        ),
        [(0x100, 4)]
    );
    // In the child (ret 0) nothing is recorded.
    assert!(ok(
        &call(libc::SYS_clone, &[vm, 0x8000, 0x100, 0x200, 0], 0),
        &m
    )
    .is_empty());
}

#[test]
fn clone3_reads_clone_args() {
    let mut m = FakeMem::default();
    let a = 0x3000;
    let flags = (libc::CLONE_VM
        | libc::CLONE_PIDFD
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    m.put_u64(a, flags);
    m.put_u64(a + 8, 0x100);
    m.put_u64(a + 16, 0x200);
    m.put_u64(a + 24, 0x300);
    let c = call(libc::SYS_clone3, &[a, 88], 77);
    assert_eq!(ok(&c, &m), [(0x100, 4), (0x300, 4), (0x200, 4)]);
    m.put_u64(a, libc::CLONE_CHILD_SETTID as u64);
    assert!(ok(&c, &m).is_empty());
    // A size the kernel would have refused.
    assert!(regions(&call(libc::SYS_clone3, &[a, 32], 77), &m).is_err());
    // clone_args we cannot read.
    let err = regions(&call(libc::SYS_clone3, &[0x7000, 88], 77), &m).unwrap_err();
    assert!(err.0.contains("clone_args.flags"), "{err}");
}

#[test]
fn select_sizes_fd_sets_in_longs() {
    let m = FakeMem::default();
    let select = |nfds, ret| call(libc::SYS_select, &[nfds, 0x100, 0, 0x300, 0x400], ret);
    assert_eq!(ok(&select(1, 1), &m), [(0x100, 8), (0x300, 8), (0x400, 16)]);
    assert_eq!(
        ok(&select(64, 0), &m),
        [(0x100, 8), (0x300, 8), (0x400, 16)]
    );
    assert_eq!(
        ok(&select(65, 2), &m),
        [(0x100, 16), (0x300, 16), (0x400, 16)]
    );
    assert_eq!(
        ok(&select(1024, 2), &m),
        [(0x100, 128), (0x300, 128), (0x400, 16)]
    );
    // Interrupted or failed: only the remaining time (the kernel stores it
    // on EBADF too), and nothing when the timeout pointer faulted.
    assert_eq!(ok(&select(5, -i64::from(libc::EINTR)), &m), [(0x400, 16)]);
    assert_eq!(ok(&select(5, -i64::from(libc::EBADF)), &m), [(0x400, 16)]);
    assert!(ok(&select(5, -i64::from(libc::EFAULT)), &m).is_empty());
    let pselect = call(libc::SYS_pselect6, &[3, 0, 0x200, 0, 0x400, 0x500], 1);
    assert_eq!(ok(&pselect, &m), [(0x200, 8), (0x400, 16)]);
}

#[test]
fn poll_family_sizes() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_poll, &[0x100, 3, 1000], 1), &m),
        [(0x100, 24)]
    );
    assert_eq!(
        ok(&call(libc::SYS_ppoll, &[0x100, 2, 0x200, 0, 8], 0), &m),
        [(0x100, 16), (0x200, 16)]
    );
    assert_eq!(
        ok(
            &call(libc::SYS_poll, &[0x100, 3, 1000], -i64::from(libc::EINTR)),
            &m
        ),
        [(0x100, 24)]
    );
    for nr in [
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
    ] {
        assert_eq!(ok(&call(nr, &[5, 0x100, 64, 0], 3), &m), [(0x100, 36)]);
        assert!(ok(&call(nr, &[5, 0x100, 64, 0], 0), &m).is_empty());
    }
}

#[test]
fn wait4_with_and_without_rusage() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_wait4, &[u64::MAX, 0x100, 0, 0x200], 42), &m),
        [(0x100, 4), (0x200, 144)]
    );
    assert_eq!(
        ok(&call(libc::SYS_wait4, &[u64::MAX, 0x100, 0, 0], 42), &m),
        [(0x100, 4)]
    );
    assert!(ok(&call(libc::SYS_wait4, &[u64::MAX, 0, 0, 0], 42), &m).is_empty());
    // WNOHANG with nothing to reap.
    assert!(ok(&call(libc::SYS_wait4, &[u64::MAX, 0x100, 1, 0x200], 0), &m).is_empty());
    assert_eq!(
        ok(&call(libc::SYS_waitid, &[0, 0, 0x300, 4, 0x400], 0), &m),
        [(0x300, 128), (0x400, 144)]
    );
    // No children: ECHILD, and the kernel still zeroes the siginfo.
    let echild = -i64::from(libc::ECHILD);
    assert_eq!(
        ok(
            &call(libc::SYS_waitid, &[0, 0, 0x300, 4, 0x400], echild),
            &m
        ),
        [(0x300, 128)]
    );
    let efault = -i64::from(libc::EFAULT);
    assert!(ok(
        &call(libc::SYS_waitid, &[0, 0, 0x300, 4, 0x400], efault),
        &m
    )
    .is_empty());
}

#[test]
fn ioctl_known_and_unknown_requests() {
    let m = FakeMem::default();
    let ioctl = |req: u64, ret| call(libc::SYS_ioctl, &[1, req, 0x100], ret);
    assert_eq!(ok(&ioctl(libc::TCGETS, 0), &m), [(0x100, 36)]);
    assert_eq!(ok(&ioctl(libc::TCGETS2, 0), &m), [(0x100, 44)]);
    assert_eq!(ok(&ioctl(libc::TIOCGWINSZ, 0), &m), [(0x100, 8)]);
    assert_eq!(ok(&ioctl(libc::FIONREAD, 0), &m), [(0x100, 4)]);
    assert_eq!(ok(&ioctl(libc::TIOCGPGRP, 0), &m), [(0x100, 4)]);
    for req in [
        libc::TCSETS,
        libc::TIOCSWINSZ,
        libc::FIONBIO,
        libc::FIOCLEX,
        libc::FIONCLEX,
        libc::TIOCSPGRP,
    ] {
        assert!(ok(&ioctl(req, 0), &m).is_empty(), "{req:#x}");
    }
    // isatty on a pipe: ENOTTY, nothing written.
    assert!(ok(&ioctl(libc::TCGETS, -i64::from(libc::ENOTTY)), &m).is_empty());
    let err = regions(&ioctl(0x1234, 0), &m).unwrap_err();
    assert_eq!(err.0, "ioctl 0x1234 (fd 1)");
    assert!(ok(&ioctl(0x1234, -i64::from(libc::ENOTTY)), &m).is_empty());
    // The request is an unsigned int: the upper half of the register is noise.
    assert_eq!(ok(&ioctl(0xffff_ffff_0000_5413, 0), &m), [(0x100, 8)]);
}

#[test]
fn ioctl_table_matches_libc() {
    for w in IOCTLS.windows(2) {
        assert!(
            w[0].request < w[1].request,
            "{} before {}",
            w[0].name,
            w[1].name
        );
    }
    let libc_values: &[(&str, u64)] = &[
        ("TCGETS", libc::TCGETS),
        ("TCSETS", libc::TCSETS),
        ("TCSETSW", libc::TCSETSW),
        ("TCSETSF", libc::TCSETSF),
        ("TCGETA", libc::TCGETA),
        ("TCSETA", libc::TCSETA),
        ("TCSETAW", libc::TCSETAW),
        ("TCSETAF", libc::TCSETAF),
        ("TCSBRK", libc::TCSBRK),
        ("TCXONC", libc::TCXONC),
        ("TCFLSH", libc::TCFLSH),
        ("TIOCEXCL", libc::TIOCEXCL),
        ("TIOCNXCL", libc::TIOCNXCL),
        ("TIOCSCTTY", libc::TIOCSCTTY),
        ("TIOCGPGRP", libc::TIOCGPGRP),
        ("TIOCSPGRP", libc::TIOCSPGRP),
        ("TIOCOUTQ", libc::TIOCOUTQ),
        ("TIOCGWINSZ", libc::TIOCGWINSZ),
        ("TIOCSWINSZ", libc::TIOCSWINSZ),
        ("FIONREAD", libc::FIONREAD),
        ("FIONBIO", libc::FIONBIO),
        ("TIOCNOTTY", libc::TIOCNOTTY),
        ("TIOCGSID", libc::TIOCGSID),
        ("FIONCLEX", libc::FIONCLEX),
        ("FIOCLEX", libc::FIOCLEX),
        ("FIOASYNC", libc::FIOASYNC),
        ("FIOQSIZE", libc::FIOQSIZE),
        ("TIOCGPTPEER", libc::TIOCGPTPEER),
        ("TIOCSPTLCK", libc::TIOCSPTLCK),
        ("TIOCGPTLCK", libc::TIOCGPTLCK),
        ("TCSETS2", libc::TCSETS2),
        ("TCSETSW2", libc::TCSETSW2),
        ("TCSETSF2", libc::TCSETSF2),
        ("TIOCGPTN", libc::TIOCGPTN),
        ("TCGETS2", libc::TCGETS2),
        // linux/perf_event.h (not in the libc crate).
        ("PERF_EVENT_IOC_ENABLE", 0x2400),
        ("PERF_EVENT_IOC_DISABLE", 0x2401),
        ("PERF_EVENT_IOC_REFRESH", 0x2402),
        ("PERF_EVENT_IOC_RESET", 0x2403),
        ("PERF_EVENT_IOC_SET_OUTPUT", 0x2405),
        ("PERF_EVENT_IOC_PERIOD", 0x4008_2404),
        ("PERF_EVENT_IOC_ID", 0x8008_2407),
        // linux/fs.h and linux/sockios.h (values checked with the C
        // headers and the kernel).
        ("SIOCATMARK", 0x8905),
        ("SIOCGSTAMP", 0x8906),
        ("SIOCGSTAMPNS", 0x8907),
        ("SIOCOUTQNSD", 0x894B),
        ("RNDGETENTCNT", 0x8004_5200),
        ("FIBMAP", 0x1),
        ("FIGETBSZ", 0x2),
        ("SIOCGIFNAME", 0x8910),
        ("SIOCGIFCONF", 0x8912),
        ("SIOCGIFFLAGS", 0x8913),
        ("SIOCGIFADDR", 0x8915),
        ("SIOCGIFDSTADDR", 0x8917),
        ("SIOCGIFBRDADDR", 0x8919),
        ("SIOCGIFNETMASK", 0x891B),
        ("SIOCGIFMETRIC", 0x891D),
        ("SIOCGIFMTU", 0x8921),
        ("SIOCGIFHWADDR", 0x8927),
        ("SIOCGIFINDEX", 0x8933),
        ("SIOCGIFTXQLEN", 0x8942),
        ("SIOCGIFMAP", 0x8970),
        ("FS_IOC_SETFLAGS", 0x4008_6602),
        ("FS_IOC_SETVERSION", 0x4008_7602),
        ("FS_IOC_FSSETXATTR", 0x401C_5820),
        ("FS_IOC_GETFLAGS", 0x8008_6601),
        ("FS_IOC_GETVERSION", 0x8008_7601),
        ("FS_IOC_GETFSUUID", 0x8011_1500),
        ("FS_IOC_FSGETXATTR", 0x801C_581F),
        ("FS_IOC_GETFSLABEL", 0x8100_9431),
        ("FS_IOC_FIEMAP", 0xC020_660B),
    ];
    assert_eq!(libc_values.len(), IOCTLS.len());
    for &(name, value) in libc_values {
        let d = lookup_ioctl(value as u32).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(d.name, name);
    }
    // Where the request encodes a size (_IOR/_IOW), it is the one recorded.
    for d in IOCTLS {
        let dir = d.request >> 30;
        let size = u64::from((d.request >> 16) & 0x3fff);
        // The inode flag and generation requests encode a long; the kernel
        // stores an int.
        let int_for_long = ["FS_IOC_GETFLAGS", "FS_IOC_GETVERSION"].contains(&d.name);
        if dir == 2 && int_for_long {
            assert_eq!((d.writes, size), (4, 8), "{}", d.name);
        } else if dir == 2 {
            assert_eq!(d.writes, size, "{}", d.name);
        } else if dir == 1 {
            assert_eq!(d.writes, 0, "{}", d.name);
        }
    }
}

#[test]
fn fcntl_lock_queries() {
    let m = FakeMem::default();
    let fcntl = |cmd: i32| call(libc::SYS_fcntl, &[3, cmd as u64, 0x100], 0);
    assert_eq!(ok(&fcntl(libc::F_GETLK), &m), [(0x100, 32)]);
    assert_eq!(ok(&fcntl(libc::F_OFD_GETLK), &m), [(0x100, 32)]);
    assert_eq!(ok(&fcntl(16 /* F_GETOWN_EX */), &m), [(0x100, 8)]);
    assert!(ok(&fcntl(libc::F_SETLKW), &m).is_empty());
    assert!(ok(&fcntl(libc::F_DUPFD_CLOEXEC), &m).is_empty());
    assert!(ok(&fcntl(libc::F_GETFL), &m).is_empty());
    assert!(regions(&fcntl(4242), &m).is_err());
}

#[test]
fn time_and_sleep() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_clock_gettime, &[1, 0x100], 0), &m),
        [(0x100, 16)]
    );
    assert_eq!(
        ok(&call(libc::SYS_gettimeofday, &[0x100, 0x200], 0), &m),
        [(0x100, 16), (0x200, 8)]
    );
    assert_eq!(
        ok(&call(libc::SYS_gettimeofday, &[0x100, 0], 0), &m),
        [(0x100, 16)]
    );
    assert!(ok(&call(libc::SYS_time, &[0], 1_700_000_000), &m).is_empty());
    assert_eq!(ok(&call(libc::SYS_time, &[0x100], 1), &m), [(0x100, 8)]);
    let eintr = -i64::from(libc::EINTR);
    assert!(ok(&call(libc::SYS_nanosleep, &[0x100, 0x200], 0), &m).is_empty());
    assert_eq!(
        ok(&call(libc::SYS_nanosleep, &[0x100, 0x200], eintr), &m),
        [(0x200, 16)]
    );
    assert_eq!(
        ok(
            &call(libc::SYS_clock_nanosleep, &[1, 0, 0x100, 0x200], -516),
            &m
        ),
        [(0x200, 16)]
    );
    assert!(ok(
        &call(libc::SYS_clock_nanosleep, &[1, 1, 0x100, 0x200], eintr),
        &m
    )
    .is_empty());
    assert_eq!(
        ok(
            &call(libc::SYS_timerfd_settime, &[5, 0, 0x100, 0x200], 0),
            &m
        ),
        [(0x200, 32)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getitimer, &[0, 0x100], 0), &m),
        [(0x100, 32)]
    );
}

#[test]
fn process_and_signal_outputs() {
    let mut m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_rt_sigaction, &[2, 0x100, 0x200, 8], 0), &m),
        [(0x200, 32)]
    );
    assert!(ok(&call(libc::SYS_rt_sigaction, &[2, 0x100, 0, 8], 0), &m).is_empty());
    assert_eq!(
        ok(
            &call(libc::SYS_rt_sigprocmask, &[0, 0x100, 0x200, 8], 0),
            &m
        ),
        [(0x200, 8)]
    );
    assert_eq!(
        ok(&call(libc::SYS_sigaltstack, &[0, 0x200], 0), &m),
        [(0x200, 24)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getresuid, &[0x100, 0x200, 0x300], 0), &m),
        [(0x100, 4), (0x200, 4), (0x300, 4)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getgroups, &[32, 0x100], 3), &m),
        [(0x100, 12)]
    );
    assert!(ok(&call(libc::SYS_getgroups, &[0, 0], 3), &m).is_empty());
    assert_eq!(
        ok(&call(libc::SYS_prlimit64, &[0, 7, 0, 0x100], 0), &m),
        [(0x100, 16)]
    );
    assert_eq!(ok(&call(libc::SYS_pipe2, &[0x100, 0], 0), &m), [(0x100, 8)]);
    assert_eq!(
        ok(&call(libc::SYS_mincore, &[0x10000, 4097, 0x100], 0), &m),
        [(0x100, 2)]
    );
    // sched_setattr with a structure newer than the kernel: its size back.
    let e2big = -i64::from(libc::E2BIG);
    assert_eq!(
        ok(&call(libc::SYS_sched_setattr, &[0, 0x100, 0], e2big), &m),
        [(0x100, 4)]
    );
    assert!(ok(&call(libc::SYS_sched_setattr, &[0, 0x100, 0], 0), &m).is_empty());
    // capget: libcap's probe with a null data pointer learns the version.
    assert_eq!(
        ok(&call(libc::SYS_capget, &[0x100, 0], 0), &m),
        [(0x100, 4)]
    );
    m.put_u32(0x100, 0x2008_0522);
    assert_eq!(
        ok(&call(libc::SYS_capget, &[0x100, 0x200], 0), &m),
        [(0x200, 24)]
    );
    m.put_u32(0x100, 0x1998_0330);
    assert_eq!(
        ok(&call(libc::SYS_capget, &[0x100, 0x200], 0), &m),
        [(0x200, 12)]
    );
}

#[test]
fn prctl_arch_prctl_futex_options() {
    let m = FakeMem::default();
    let prctl = |opt: i32, a1| call(libc::SYS_prctl, &[opt as u64, a1, 0, 0, 0], 0);
    assert_eq!(ok(&prctl(libc::PR_GET_NAME, 0x100), &m), [(0x100, 16)]);
    assert!(ok(&prctl(libc::PR_SET_NAME, 0x100), &m).is_empty());
    assert!(ok(&prctl(libc::PR_SET_NO_NEW_PRIVS, 1), &m).is_empty());
    assert!(ok(&prctl(libc::PR_SET_SECCOMP, 2), &m).is_empty());
    let err = regions(&prctl(libc::PR_SET_TSC, 1), &m).unwrap_err();
    assert!(err.0.contains("PR_SET_TSC"), "{err}");
    assert!(regions(&prctl(9999, 0), &m).is_err());

    let arch = |code: u64| call(libc::SYS_arch_prctl, &[code, 0x100], 0);
    assert_eq!(ok(&arch(0x1003), &m), [(0x100, 8)]); // ARCH_GET_FS
    assert!(ok(&arch(0x1002), &m).is_empty()); // ARCH_SET_FS
    assert!(regions(&arch(0x1012), &m).is_err()); // ARCH_SET_CPUID

    let futex = |op: i32| call(libc::SYS_futex, &[0x100, op as u64, 1, 0, 0x200, 0], 0);
    assert!(ok(
        &futex(libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG),
        &m
    )
    .is_empty());
    assert!(ok(&futex(libc::FUTEX_WAKE), &m).is_empty());
    assert_eq!(
        ok(&futex(libc::FUTEX_WAKE_OP | libc::FUTEX_PRIVATE_FLAG), &m),
        [(0x200, 4)]
    );
    assert_eq!(ok(&futex(libc::FUTEX_LOCK_PI), &m), [(0x100, 4)]);
    assert!(regions(&futex(99), &m).is_err());
}

#[test]
fn unsupported_calls_say_why() {
    let m = FakeMem::default();
    let err = regions(&call(libc::SYS_io_uring_setup, &[8, 0x100], 3), &m).unwrap_err();
    assert_eq!(err.0, "io_uring is not supported");
    let err = regions(&call(libc::SYS_bpf, &[5, 0x100, 128], 3), &m).unwrap_err();
    assert_eq!(err.0, "bpf command 5 is not supported");
    // Failed probes changed nothing and stay replayable.
    assert!(ok(&call(libc::SYS_io_uring_setup, &[8, 0x100], -38), &m).is_empty());
}

#[test]
fn ptrace_writes_what_a_reading_request_returns() {
    // The recorder emulates ptrace: a request that reads the tracee stores
    // at `data`; a failed one, or one that changes the tracee, nothing.
    let m = FakeMem::default();
    let peek = libc::PTRACE_PEEKDATA as u64;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[peek, 7, 0x10, 0x200], 0), &m),
        vec![(0x200, 8)]
    );
    let regs = libc::PTRACE_GETREGS as u64;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[regs, 7, 0, 0x300], 0), &m),
        vec![(0x300, 216)]
    );
    let info = libc::PTRACE_GETSIGINFO as u64;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[info, 7, 0, 0x400], 0), &m),
        vec![(0x400, 128)]
    );
    let fp = libc::PTRACE_GETFPREGS as u64;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[fp, 7, 0, 0x500], 0), &m),
        vec![(0x500, 512)]
    );
    // PTRACE_GET_THREAD_AREA: a struct user_desc at `data`;
    // PTRACE_ARCH_PRCTL of ARCH_GET_FS/_GS: the base at `addr`, and
    // nothing for ARCH_SET_FS.
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[25, 7, 12, 0x600], 0), &m),
        vec![(0x600, 16)]
    );
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[30, 7, 0x700, 0x1003], 0), &m),
        vec![(0x700, 8)]
    );
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[30, 7, 0x700, 0x1004], 0), &m),
        vec![(0x700, 8)]
    );
    assert!(ok(&call(libc::SYS_ptrace, &[30, 7, 0x700, 0x1002], 0), &m).is_empty());
    // PTRACE_PEEKSIGINFO: as many siginfos as it returns, at `data`.
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[0x4209, 7, 0x800, 0x900], 3), &m),
        vec![(0x900, 3 * 128)]
    );
    assert!(ok(&call(libc::SYS_ptrace, &[0x4209, 7, 0x800, 0x900], 0), &m).is_empty());
    assert!(ok(&call(libc::SYS_ptrace, &[peek, 7, 0x10, 0x200], -1), &m).is_empty());
    let poke = libc::PTRACE_POKEDATA as u64;
    assert!(ok(&call(libc::SYS_ptrace, &[poke, 7, 0x10, 0x200], 0), &m).is_empty());
    assert_eq!(
        crate::lookup(libc::SYS_ptrace).unwrap().replay,
        ReplayAction::Emulate
    );
}

#[test]
fn ptrace_writes_what_a_regset_or_syscall_info_request_returns() {
    let mut m = FakeMem::default();
    // GETREGSET: the set where the iovec points, as long as the kernel
    // left the iovec's length, and that length.
    m.put_iovs(0x100, &[(0x1000, 216)]);
    let getregset = 0x4204;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[getregset, 7, 1, 0x100], 0), &m),
        vec![(0x1000, 216), (0x108, 8)]
    );
    m.put_iovs(0x100, &[(0x1000, 0)]);
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[getregset, 7, 1, 0x100], 0), &m),
        vec![(0x108, 8)]
    );
    // Failed (EINVAL): nothing.
    assert!(ok(&call(libc::SYS_ptrace, &[getregset, 7, 9, 0x100], -22), &m).is_empty());
    // SETREGSET: the length only.
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[0x4205, 7, 1, 0x100], 0), &m),
        vec![(0x108, 8)]
    );
    // GETSIGMASK: the 8-byte mask.
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[0x420a, 7, 8, 0x300], 0), &m),
        vec![(0x300, 8)]
    );
    // GET_SYSCALL_INFO returns the struct's size and stores at most the
    // buffer's size of it.
    let info = 0x420e;
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[info, 7, 88, 0x400], 80), &m),
        vec![(0x400, 80)]
    );
    assert_eq!(
        ok(&call(libc::SYS_ptrace, &[info, 7, 4, 0x400], 24), &m),
        vec![(0x400, 4)]
    );
    assert!(ok(&call(libc::SYS_ptrace, &[info, 7, 0, 0x400], 33), &m).is_empty());
    assert!(ok(&call(libc::SYS_ptrace, &[info, 7, 88, 0x400], -14), &m).is_empty());
}

#[test]
fn compat_numbers_are_named_and_described_by_their_equivalents_only() {
    let getpid = crate::compat_nr(20);
    assert!(crate::is_compat(getpid));
    assert_eq!(crate::name(getpid), "i386 getpid (int $0x80 #20)");
    // Described by the x86-64 row of the same call, named as i386 calls.
    assert_eq!(crate::lookup(getpid).map(|d| d.nr), Some(libc::SYS_getpid));
    let read = crate::compat_nr(3);
    assert_eq!(crate::lookup(read).map(|d| d.nr), Some(libc::SYS_read));
    assert_eq!(crate::name(read), "i386 read (int $0x80 #3)");
    let m = FakeMem::default();
    assert_eq!(ok(&call(read, &[0, 0x1000, 64], 5), &m), [(0x1000, 5)]);
    assert_eq!(
        crate::lookup(crate::compat_nr(252)).map(|d| d.replay),
        Some(ReplayAction::Exit)
    );
    // uname (newuname) fills the x86-64 structure; write, close, dup and
    // dup2 are followed by their x86-64 numbers (row_nr), not by the i386
    // ones (4 is stat there, 6 lstat).
    let uname = crate::compat_nr(122);
    assert_eq!(crate::lookup(uname).map(|d| d.nr), Some(libc::SYS_uname));
    assert_eq!(ok(&call(uname, &[0x2000], 0), &m), [(0x2000, 390)]);
    for (i386, x86_64) in [
        (4, libc::SYS_write),
        (6, libc::SYS_close),
        (41, libc::SYS_dup),
        (63, libc::SYS_dup2),
    ] {
        assert_eq!(crate::row_nr(crate::compat_nr(i386)), x86_64, "{i386}");
    }
    assert_eq!(crate::row_nr(libc::SYS_stat), libc::SYS_stat);
    assert_eq!(
        crate::name(crate::compat_nr(63)),
        "i386 dup2 (int $0x80 #63)"
    );
    // Not described: thread state the recorder does not follow
    // (get_thread_area, set_thread_area), the i386 signal returns, and
    // numbers the i386 table lacks.
    for n in [243, 244, 119, 173, 9999] {
        assert!(crate::lookup(crate::compat_nr(n)).is_none(), "{n}");
        assert_eq!(crate::row_nr(crate::compat_nr(n)), crate::compat_nr(n));
    }
    assert_eq!(crate::x86_64_equivalent(libc::SYS_getpid), None);
    assert_eq!(
        crate::name(crate::compat_nr(9999)),
        "i386 syscall (int $0x80 #9999)"
    );
    // Only the low 32 bits of orig_rax are the i386 number.
    assert_eq!(
        crate::compat_nr(0xffff_ffff_0000_0004),
        crate::COMPAT_32 | 4
    );
    // Invalid 64-bit numbers are not taken for 32-bit ones.
    for nr in [-1, 1000, 0x7fff_ffff, 0x4000_0027] {
        assert!(!crate::is_compat(nr), "{nr:#x}");
    }
}

#[test]
fn stat_family_sizes() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_fstat, &[3, 0x100], 0), &m),
        [(0x100, 144)]
    );
    assert_eq!(
        ok(&call(libc::SYS_newfstatat, &[3, 0x50, 0x100, 0], 0), &m),
        [(0x100, 144)]
    );
    assert_eq!(
        ok(&call(libc::SYS_statx, &[3, 0x50, 0, 0xfff, 0x100], 0), &m),
        [(0x100, 256)]
    );
    assert_eq!(
        ok(&call(libc::SYS_statfs, &[0x50, 0x100], 0), &m),
        [(0x100, 120)]
    );
    assert_eq!(ok(&call(libc::SYS_uname, &[0x100], 0), &m), [(0x100, 390)]);
    assert_eq!(
        ok(&call(libc::SYS_sysinfo, &[0x100], 0), &m),
        [(0x100, 112)]
    );
    assert_eq!(
        ok(&call(libc::SYS_getrusage, &[0, 0x100], 0), &m),
        [(0x100, 144)]
    );
    assert_eq!(
        ok(
            &call(libc::SYS_copy_file_range, &[3, 0x100, 4, 0, 10, 0], 10),
            &m
        ),
        [(0x100, 8)]
    );
}

#[test]
fn restart_syscall_takes_the_outputs_of_the_call_it_resumes() {
    let m = FakeMem::default();
    // Alone it cannot know them.
    assert!(regions(&call(libc::SYS_restart_syscall, &[], 0), &m).is_err());
    assert!(ok(&call(libc::SYS_restart_syscall, &[], -14), &m).is_empty());
    let restarted = |orig: &Call, ret| {
        let mut out = Vec::new();
        restarted_outputs(orig, ret, &m, &mut out)
            .map(|()| out.iter().map(|r| (r.addr, r.len)).collect::<Vec<_>>())
    };
    // A poll resumed after a ptrace stop stores its revents.
    let poll = call(libc::SYS_poll, &[0x100, 2, 5000], -516);
    assert_eq!(restarted(&poll, 1).unwrap(), [(0x100, 16)]);
    // A nanosleep that completes writes nothing; interrupted again, its rem.
    let sleep = call(libc::SYS_nanosleep, &[0x100, 0x200], -516);
    assert!(restarted(&sleep, 0).unwrap().is_empty());
    assert_eq!(restarted(&sleep, -4).unwrap(), [(0x200, 16)]);
    assert!(restarted(&call(400, &[], -516), 0).is_err());
}

#[test]
fn sysv_message_queues_and_semaphores() {
    let m = FakeMem::default();
    assert_eq!(
        ok(&call(libc::SYS_msgrcv, &[3, 0x100, 64, 0, 0], 5), &m),
        [(0x100, 13)]
    );
    assert_eq!(
        ok(
            &call(libc::SYS_msgctl, &[3, libc::IPC_STAT as u64, 0x100], 0),
            &m
        ),
        [(0x100, 120)]
    );
    assert!(ok(
        &call(libc::SYS_msgctl, &[3, libc::IPC_RMID as u64, 0], 0),
        &m
    )
    .is_empty());
    assert_eq!(
        ok(
            &call(libc::SYS_semctl, &[3, 0, libc::IPC_STAT as u64, 0x100], 0),
            &m
        ),
        [(0x100, 104)]
    );
    assert!(ok(
        &call(libc::SYS_semctl, &[3, 0, libc::GETVAL as u64, 0], 1),
        &m
    )
    .is_empty());
    // GETALL without /proc/sysvipc (another IPC namespace): refused.
    let err = regions(
        &call(libc::SYS_semctl, &[3, 0, libc::GETALL as u64, 0x100], 0),
        &m,
    )
    .unwrap_err();
    assert!(err.0.contains("IPC namespace"), "{}", err.0);
}

/// A fake tracee with a System V semaphore set 5 of 3 semaphores and
/// segments 7 (8 KiB) and 8 (300 MiB).
struct SysvTables(FakeMem);

impl MemReader for SysvTables {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read(addr, buf)
    }
    fn sysv_ipc(&self, kind: &str) -> Option<String> {
        match kind {
            "sem" => Some(
                "       key      semid perms      nsems   uid\n         0          5   600          3     0\n"
                    .into(),
            ),
            "shm" => Some(
                "       key      shmid perms                  size  cpid\n         0          7   600                  8192   10\n         0          8   600             314572800   10\n"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[test]
fn sysv_sizes_come_from_proc_sysvipc() {
    let m = SysvTables(FakeMem::default());
    let got = |c: &Call| {
        let mut out = Vec::new();
        (lookup(c.nr).expect("in the table").outputs)(c, &m, &mut out)
            .map(|()| out.into_iter().map(|r| (r.addr, r.len)).collect::<Vec<_>>())
    };
    let getall = call(libc::SYS_semctl, &[5, 0, libc::GETALL as u64, 0x100], 0);
    assert_eq!(got(&getall), Ok(vec![(0x100, 6)]));
    let setall = call(libc::SYS_semctl, &[5, 0, libc::SETALL as u64, 0x100], 0);
    assert_eq!(got(&setall), Ok(vec![]));
    // shmat: the segment's contents at the address returned.
    assert_eq!(
        got(&call(libc::SYS_shmat, &[7, 0, 0], 0x7000_0000)),
        Ok(vec![(0x7000_0000, 8192)])
    );
    let big = got(&call(libc::SYS_shmat, &[8, 0, 0], 0x7000_0000)).unwrap_err();
    assert!(big.0.contains("300 MiB"), "{}", big.0);
    // A read-only or executable attach: the same (replay writes the
    // contents, then gives the mapping the attach's protection).
    for flags in [
        libc::SHM_RDONLY,
        libc::SHM_EXEC,
        libc::SHM_RDONLY | libc::SHM_EXEC,
    ] {
        assert_eq!(
            got(&call(libc::SYS_shmat, &[7, 0, flags as u64], 0x7000_0000)),
            Ok(vec![(0x7000_0000, 8192)]),
            "{flags:#o}"
        );
    }
    let big_ro = got(&call(
        libc::SYS_shmat,
        &[8, 0, libc::SHM_RDONLY as u64],
        0x7000_0000,
    ));
    assert!(big_ro.unwrap_err().0.contains("300 MiB"));
    let unknown = got(&call(libc::SYS_shmat, &[9, 0, 0], 0x7000_0000)).unwrap_err();
    assert!(unknown.0.contains("no shm object 9"), "{}", unknown.0);
    assert_eq!(
        got(&call(
            libc::SYS_shmctl,
            &[7, libc::IPC_STAT as u64, 0x200],
            0
        )),
        Ok(vec![(0x200, 112)])
    );
}

/// A fake AIO ring at `ctx` of `nr` events with its tail at `tail`, and
/// `events` (slot, iocb address, res) in it.
fn aio_ring(m: &mut FakeMem, ctx: u64, nr: u32, tail: u32, events: &[(u32, u64, i64)]) {
    m.put(ctx, &[0; 32]);
    m.put_u32(ctx + 4, nr);
    m.put_u32(ctx + 12, tail);
    m.put_u32(ctx + 16, 0xa10a_10a1);
    m.put_u32(ctx + 28, 32);
    m.put(ctx + 32, &vec![0; nr as usize * 32]);
    for &(slot, obj, res) in events {
        let e = ctx + 32 + 32 * u64::from(slot);
        m.put_u64(e + 8, obj);
        m.put_u64(e + 16, res as u64);
    }
}

/// A fake `struct iocb` at `at`.
fn aio_iocb(m: &mut FakeMem, at: u64, opcode: u16, buf: u64, nbytes: u64, flags: u32) {
    m.put(at, &[0; 64]);
    m.put(at + 16, &opcode.to_le_bytes());
    m.put_u64(at + 24, buf);
    m.put_u64(at + 32, nbytes);
    m.put_u32(at + 56, flags);
}

#[test]
fn aio_setup_records_ctx_and_the_whole_ring() {
    let mut m = FakeMem::default();
    let ctx = 0x7000_0000;
    m.put_u64(0x100, ctx);
    aio_ring(&mut m, ctx, 127, 0, &[]);
    // *ctxp, then the ring: 32 + 127 * 32 bytes, exactly one page.
    assert_eq!(
        ok(&call(libc::SYS_io_setup, &[8, 0x100], 0), &m),
        vec![(0x100, 8), (ctx, 4096)]
    );
    assert!(ok(&call(libc::SYS_io_setup, &[8, 0x100], -22), &m).is_empty());
    // Something that is not a ring at *ctxp: named, not guessed at.
    m.put_u32(ctx + 16, 0);
    let err = regions(&call(libc::SYS_io_setup, &[8, 0x100], 0), &m).unwrap_err();
    assert!(err.0.contains("magic"), "{}", err.0);
}

#[test]
fn aio_submit_records_completed_reads_and_the_new_events() {
    let mut m = FakeMem::default();
    let ctx = 0x7000_0000;
    // A PREAD of up to 64 bytes (16 read), a PREADV of two iovecs (10 + 6
    // of 10 + 20 read), a PWRITE: their events in slots 126, 0 and 1 of a
    // ring of 127, whose tail moved from 126 to 2 (wrapping).
    aio_iocb(&mut m, 0x1000, 0, 0x5000, 64, 0);
    aio_iocb(&mut m, 0x1040, 7, 0x2000, 2, 0);
    m.put_iovs(0x2000, &[(0x6000, 10), (0x7000, 20)]);
    aio_iocb(&mut m, 0x1080, 1, 0x8000, 8, 0);
    for (i, iocb) in [0x1000u64, 0x1040, 0x1080].into_iter().enumerate() {
        m.put_u64(0x3000 + 8 * i as u64, iocb);
    }
    aio_ring(
        &mut m,
        ctx,
        127,
        2,
        &[(126, 0x1000, 16), (0, 0x1040, 16), (1, 0x1080, 8)],
    );
    assert_eq!(
        ok(&call(libc::SYS_io_submit, &[ctx, 3, 0x3000], 3), &m),
        vec![
            (ctx, 32),
            (ctx + 32 + 126 * 32, 32),
            (ctx + 32, 64),
            (0x1008, 4),
            (0x1048, 4),
            (0x1088, 4),
            (0x5000, 16),
            (0x6000, 10),
            (0x7000, 6),
        ]
    );
    // Only the first two accepted (the third iocb's fd was bad): their
    // events end at the tail.
    aio_ring(&mut m, ctx, 127, 1, &[(126, 0x1000, 16), (0, 0x1040, 16)]);
    assert_eq!(
        ok(&call(libc::SYS_io_submit, &[ctx, 3, 0x3000], 2), &m),
        vec![
            (ctx, 32),
            (ctx + 32 + 126 * 32, 32),
            (ctx + 32, 32),
            (0x1008, 4),
            (0x1048, 4),
            (0x5000, 16),
            (0x6000, 10),
            (0x7000, 6),
        ]
    );
    // A failed read's event (negative res) fills no buffer.
    aio_ring(&mut m, ctx, 127, 1, &[(0, 0x1000, -5)]);
    assert_eq!(
        ok(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m),
        vec![(ctx, 32), (ctx + 32, 32), (0x1008, 4)]
    );
    // Nothing accepted, or the call failed: nothing written.
    assert!(ok(&call(libc::SYS_io_submit, &[ctx, 3, 0x3000], 0), &m).is_empty());
    assert!(ok(&call(libc::SYS_io_submit, &[ctx, 3, 0x3000], -11), &m).is_empty());
}

#[test]
fn aio_submit_refuses_what_completes_later() {
    let mut m = FakeMem::default();
    let ctx = 0x7000_0000;
    aio_iocb(&mut m, 0x1000, 0, 0x5000, 64, 0);
    aio_iocb(&mut m, 0x1040, 0, 0x5100, 64, 0);
    m.put_u64(0x3000, 0x1000);
    m.put_u64(0x3008, 0x1040);
    // Two accepted, the tail moved by one (the second still in flight):
    // the slot before the first one's is not the first iocb's event.
    aio_ring(&mut m, ctx, 127, 1, &[(0, 0x1000, 64)]);
    let err = regions(&call(libc::SYS_io_submit, &[ctx, 2, 0x3000], 2), &m).unwrap_err();
    assert!(
        err.0.contains("io_submit: iocb 0 of 2")
            && err
                .0
                .contains("asynchronous AIO completions are not recorded"),
        "{}",
        err.0
    );
    // The tail did not move at all (an O_DIRECT read, a poll).
    aio_ring(&mut m, ctx, 127, 0, &[]);
    let err = regions(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m).unwrap_err();
    assert!(err.0.contains("had not completed"), "{}", err.0);
    // The iocb's previous event (another aio_data) where its new one
    // would be: not taken for it.
    m.put_u64(0x1000, 9);
    aio_ring(&mut m, ctx, 127, 1, &[(0, 0x1000, 64)]);
    let err = regions(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m).unwrap_err();
    assert!(err.0.contains("had not completed"), "{}", err.0);
    // An eventfd notified at completion.
    aio_iocb(&mut m, 0x1000, 0, 0x5000, 64, 1);
    aio_ring(&mut m, ctx, 127, 1, &[(0, 0x1000, 64)]);
    let err = regions(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m).unwrap_err();
    assert!(err.0.contains("IOCB_FLAG_RESFD"), "{}", err.0);
    // A poll that happened to be ready: its opcode is not described.
    aio_iocb(&mut m, 0x1000, 5, 1, 0, 0);
    let err = regions(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m).unwrap_err();
    assert!(err.0.contains("opcode 5"), "{}", err.0);
}

#[test]
fn aio_submit_checks_the_tail_read_at_its_entry() {
    let mut m = FakeMem::default();
    let ctx = 0x7000_0000;
    aio_iocb(&mut m, 0x1000, 0, 0x5000, 64, 0);
    m.put_u64(0x3000, 0x1000);
    // The tail read at the entry, as the recorder does.
    aio_ring(&mut m, ctx, 127, 5, &[]);
    let entry = crate::entry_args(&m, libc::SYS_io_submit, [ctx, 1, 0x3000, 0, 0, 0]);
    assert_eq!(entry, [ctx, 1, 0x3000, crate::aio::TAIL_READ | 5, 0, 0]);
    // One iocb accepted, its event at 5, the tail at 6: recorded.
    aio_ring(&mut m, ctx, 127, 6, &[(5, 0x1000, 64)]);
    assert_eq!(
        ok(&call(libc::SYS_io_submit, &entry, 1), &m),
        vec![
            (ctx, 32),
            (ctx + 32 + 5 * 32, 32),
            (0x1008, 4),
            (0x5000, 64)
        ]
    );
    // The iocb resubmitted with its earlier event (same aio_data) just
    // before the tail, the new one still in flight: without the entry's
    // tail the event at 5 is taken for this call's; with it, slot 6 is
    // looked at, and is empty.
    aio_ring(&mut m, ctx, 127, 6, &[(5, 0x1000, 64)]);
    let again = crate::entry_args(&m, libc::SYS_io_submit, [ctx, 1, 0x3000, 0, 0, 0]);
    assert!(ok(&call(libc::SYS_io_submit, &[ctx, 1, 0x3000], 1), &m).len() == 4);
    let err = regions(&call(libc::SYS_io_submit, &again, 1), &m).unwrap_err();
    assert!(
        err.0.contains("iocb 0 of 1 (opcode 0) had not completed"),
        "{}",
        err.0
    );
    // Its event in place, and an earlier submission's after it: the tail
    // moved by two.
    aio_ring(&mut m, ctx, 127, 8, &[(6, 0x1000, 64), (7, 0x1040, 64)]);
    let err = regions(&call(libc::SYS_io_submit, &again, 1), &m).unwrap_err();
    assert!(
        err.0.contains("the AIO ring's tail went from 6 to 8"),
        "{}",
        err.0
    );
    // A ring that cannot be read at the entry: the registers as they are.
    assert_eq!(
        crate::entry_args(&m, libc::SYS_io_submit, [0x10, 1, 0x3000, 0, 0, 0]),
        [0x10, 1, 0x3000, 0, 0, 0]
    );
}

#[test]
fn aio_getevents_cancel_and_destroy() {
    let m = FakeMem::default();
    let ctx = 0x7000_0000;
    // The events copied out and the ring's header (its head moved).
    assert_eq!(
        ok(&call(libc::SYS_io_getevents, &[ctx, 1, 4, 0x400, 0], 3), &m),
        vec![(0x400, 96), (ctx, 32)]
    );
    assert_eq!(
        ok(
            &call(libc::SYS_io_getevents, &[ctx, 0, 4, 0x400, 0x500], 0),
            &m
        ),
        vec![(ctx, 32)]
    );
    assert!(ok(
        &call(libc::SYS_io_getevents, &[ctx, 1, 4, 0x400, 0], -22),
        &m
    )
    .is_empty());
    // io_cancel's `result` is not written (its event goes to the ring);
    // io_destroy writes nothing (replay unmaps the ring).
    assert!(ok(&call(libc::SYS_io_cancel, &[ctx, 0x1000, 0x400], 0), &m).is_empty());
    assert!(ok(&call(libc::SYS_io_destroy, &[ctx], 0), &m).is_empty());
}

#[test]
fn aio_pgetevents_writes_what_io_getevents_writes() {
    let m = FakeMem::default();
    let ctx = 0x7000_0000;
    let pget = crate::SYS_IO_PGETEVENTS;
    assert_eq!(crate::name(pget), "io_pgetevents");
    assert_eq!(crate::arg_count(pget), 6);
    // The events and the ring's header; its mask (the sixth argument) is
    // only read.
    assert_eq!(
        ok(&call(pget, &[ctx, 1, 4, 0x400, 0x500, 0x600], 2), &m),
        vec![(0x400, 64), (ctx, 32)]
    );
    // Interrupted with no event (-ERESTARTNOHAND), or failed: nothing.
    assert!(ok(&call(pget, &[ctx, 1, 4, 0x400, 0, 0x600], -514), &m).is_empty());
    assert!(ok(&call(pget, &[ctx, 1, 4, 0x400, 0, 0x600], -22), &m).is_empty());
    // The 32-bit io_getevents (247), io_pgetevents (385) and
    // io_pgetevents_time64 (416): the same events (their timespecs and
    // mask pointers only read), followed as the x86-64 calls.
    for (i386, x86_64) in [(247, libc::SYS_io_getevents), (385, pget), (416, pget)] {
        let nr = COMPAT_32 | i386;
        assert_eq!(crate::row_nr(nr), x86_64, "i386 {i386}");
        assert_eq!(
            ok(&call(nr, &[ctx, 1, 4, 0x400, 0x500, 0x600], 3), &m),
            vec![(0x400, 96), (ctx, 32)],
            "i386 {i386}"
        );
    }
    // The 32-bit io_destroy and io_cancel write nothing, as the x86-64 ones.
    assert!(ok(&call(COMPAT_32 | 246, &[ctx], 0), &m).is_empty());
    assert!(ok(&call(COMPAT_32 | 249, &[ctx, 0x1000, 0x400], 0), &m).is_empty());
    assert!(crate::name(COMPAT_32 | 385).starts_with("i386 io_pgetevents (int $0x80 #385)"));
}

#[test]
fn aio_compat_setup_stores_a_32_bit_context() {
    let mut m = FakeMem::default();
    let ctx = 0xf7f0_0000;
    // A 32-bit context, and bytes after it the call does not write.
    m.put_u32(0x100, ctx as u32);
    m.put_u32(0x104, 0x5a5a_5a5a);
    aio_ring(&mut m, ctx, 127, 0, &[]);
    let setup = COMPAT_32 | 245;
    assert_eq!(
        ok(&call(setup, &[8, 0x100], 0), &m),
        vec![(0x100, 4), (ctx, 4096)]
    );
    assert!(ok(&call(setup, &[8, 0x100], -22), &m).is_empty());
    assert_eq!(crate::row_nr(setup), libc::SYS_io_setup);
    // Replay maps the ring as a 32-bit attach at the stored context, and
    // unmaps it at the 32-bit io_destroy; the x86-64 calls are not these.
    assert_eq!(
        crate::aio_ring_op(setup, &[8, 0x100, 0, 0, 0, 0]),
        Some(crate::ShmOp::Attach {
            shmid: 0,
            stored_at: Some(0x100),
            prot: libc::PROT_READ | libc::PROT_WRITE,
        })
    );
    assert_eq!(
        crate::aio_ring_op(COMPAT_32 | 246, &[ctx, 0, 0, 0, 0, 0]),
        Some(crate::ShmOp::Detach { addr: ctx })
    );
    assert_eq!(
        crate::aio_ring_op(libc::SYS_io_setup, &[8, 0x100, 0, 0, 0, 0]),
        None
    );
    assert_eq!(crate::shm_op(setup, &[8, 0x100, 0, 0, 0, 0]), None);
}

#[test]
fn aio_compat_submit_reads_32_bit_iocb_pointers() {
    let mut m = FakeMem::default();
    let ctx = 0xf7f0_0000;
    let submit = COMPAT_32 | 248;
    // A PREAD of up to 64 bytes (16 read) and a PREADV of two 8-byte
    // compat_iovecs (10 + 6 of 10 + 20 read), pointed to by an array of
    // 32-bit pointers at 0x3000 (read as 64-bit, its first entry would
    // be 0x1040_0000_1000).
    aio_iocb(&mut m, 0x1000, 0, 0x5000, 64, 0);
    aio_iocb(&mut m, 0x1040, 7, 0x2000, 2, 0);
    for (i, (base, len)) in [(0x6000u32, 10u32), (0x7000, 20)].into_iter().enumerate() {
        m.put_u32(0x2000 + 8 * i as u64, base);
        m.put_u32(0x2004 + 8 * i as u64, len);
    }
    m.put_u32(0x3000, 0x1000);
    m.put_u32(0x3004, 0x1040);
    // The tail read at its entry, as for the x86-64 call.
    aio_ring(&mut m, ctx, 127, 3, &[]);
    let entry = crate::entry_args(&m, submit, [ctx, 2, 0x3000, 0, 0, 0]);
    assert_eq!(entry, [ctx, 2, 0x3000, crate::aio::TAIL_READ | 3, 0, 0]);
    aio_ring(&mut m, ctx, 127, 5, &[(3, 0x1000, 16), (4, 0x1040, 16)]);
    assert_eq!(
        ok(&call(submit, &entry, 2), &m),
        vec![
            (ctx, 32),
            (ctx + 32 + 3 * 32, 64),
            (0x1008, 4),
            (0x1048, 4),
            (0x5000, 16),
            (0x6000, 10),
            (0x7000, 6),
        ]
    );
    // What completes later is refused, named as the 32-bit call.
    aio_ring(&mut m, ctx, 127, 4, &[(3, 0x1000, 16)]);
    let err = regions(&call(submit, &entry, 2), &m).unwrap_err();
    assert!(
        err.0
            .contains("i386 io_submit (int $0x80 #248): iocb 1 of 2 (opcode 7) had not completed"),
        "{}",
        err.0
    );
    assert!(ok(&call(submit, &entry, -22), &m).is_empty());
}

#[test]
fn administration_calls_write_what_their_man_pages_say() {
    let mut m = FakeMem::default();
    // syslog: only the read actions write, as many bytes as they return.
    assert_eq!(
        ok(&call(libc::SYS_syslog, &[3, 0x100, 4096], 77), &m),
        [(0x100, 77)]
    );
    assert!(ok(&call(libc::SYS_syslog, &[10, 0, 0], 4096), &m).is_empty());
    // sysfs(2, index, buf): the name up to its NUL.
    m.put(0x200, b"ext4\0garbage");
    assert_eq!(
        ok(&call(libc::SYS_sysfs, &[2, 3, 0x200], 0), &m),
        [(0x200, 5)]
    );
    assert!(ok(&call(libc::SYS_sysfs, &[1, 0x300], 5), &m).is_empty());
    // modify_ldt: reads write; it runs again in replay.
    assert_eq!(
        ok(&call(libc::SYS_modify_ldt, &[0, 0x400, 64], 16), &m),
        [(0x400, 16)]
    );
    assert!(ok(&call(libc::SYS_modify_ldt, &[1, 0x400, 16], 0), &m).is_empty());
    assert_eq!(
        crate::lookup(libc::SYS_modify_ldt).unwrap().replay,
        ReplayAction::Execute
    );
    // adjtimex / clock_adjtime: a struct timex.
    assert_eq!(
        ok(&call(libc::SYS_adjtimex, &[0x500], 0), &m),
        [(0x500, 208)]
    );
    assert_eq!(
        ok(&call(libc::SYS_clock_adjtime, &[0, 0x500], 5), &m),
        [(0x500, 208)]
    );
    // keyctl(READ, key, buf, buflen): no more than the buffer holds.
    assert_eq!(
        ok(&call(libc::SYS_keyctl, &[11, 5, 0x600, 8], 20), &m),
        [(0x600, 8)]
    );
    assert_eq!(
        ok(&call(libc::SYS_keyctl, &[6, 5, 0x600, 64], 20), &m),
        [(0x600, 20)]
    );
    assert!(ok(&call(libc::SYS_keyctl, &[0, 5], 3), &m).is_empty()); // GET_KEYRING_ID
    assert!(regions(&call(libc::SYS_keyctl, &[26, 0, 0, 0, 0], 0), &m).is_err());
    // mq_timedreceive: the message and its priority; mq_getsetattr: mq_attr.
    assert_eq!(
        ok(
            &call(libc::SYS_mq_timedreceive, &[3, 0x700, 8192, 0x800, 0], 12),
            &m
        ),
        [(0x700, 12), (0x800, 4)]
    );
    assert_eq!(
        ok(&call(libc::SYS_mq_getsetattr, &[3, 0, 0x900], 0), &m),
        [(0x900, 64)]
    );
    // get_mempolicy: the mode and maxnode bits in whole longs.
    assert_eq!(
        ok(
            &call(libc::SYS_get_mempolicy, &[0xa00, 0xb00, 65, 0, 0], 0),
            &m
        ),
        [(0xa00, 4), (0xb00, 16)]
    );
    // quotactl: Q_GETQUOTA of user quotas writes an if_dqblk; XFS refused.
    assert_eq!(
        ok(
            &call(libc::SYS_quotactl, &[0x80_0007 << 8, 0, 1000, 0xc00], 0),
            &m
        ),
        [(0xc00, 72)]
    );
    assert!(regions(
        &call(libc::SYS_quotactl, &[0x5803 << 8, 0, 0, 0xc00], 0),
        &m
    )
    .is_err());
    // Failures write nothing.
    assert!(ok(&call(libc::SYS_keyctl, &[11, 5, 0x600, 8], -126), &m).is_empty());
}

#[test]
fn newer_calls_describe_their_outputs() {
    let mut mem = FakeMem::default();
    // cachestat: five counters at its third argument.
    assert_eq!(
        ok(&call(451, &[3, 0x1000, 0x2000, 0], 0), &mem),
        vec![(0x2000, 40)]
    );
    // move_pages: one int per page in `status`.
    assert_eq!(
        ok(
            &call(libc::SYS_move_pages, &[0, 3, 0x1000, 0, 0x3000, 0], 0),
            &mem
        ),
        vec![(0x3000, 12)]
    );
    // listmount: the ids it returned.
    assert_eq!(
        ok(&call(458, &[0x1000, 0x4000, 64, 0], 5), &mem),
        vec![(0x4000, 40)]
    );
    // statmount: the size the kernel stored, at most the buffer's.
    mem.put_u32(0x5000, 300);
    assert_eq!(
        ok(&call(457, &[0x1000, 0x5000, 4096, 0], 0), &mem),
        vec![(0x5000, 300)]
    );
    assert_eq!(
        ok(&call(457, &[0x1000, 0x5000, 100, 0], 0), &mem),
        vec![(0x5000, 100)]
    );
    // process_madvise: MADV_COLD writes nothing; MADV_DONTNEED is refused.
    assert!(ok(
        &call(libc::SYS_process_madvise, &[3, 0x1000, 1, 20, 0], 4096),
        &mem
    )
    .is_empty());
    let err = regions(
        &call(libc::SYS_process_madvise, &[3, 0x1000, 1, 4, 0], 4096),
        &mem,
    )
    .unwrap_err();
    assert!(err.0.contains("advice 4"), "{}", err.0);
    // ... unless it advised nothing (no iovec: 0 bytes).
    assert!(ok(
        &call(libc::SYS_process_madvise, &[3, 0x1000, 0, 4, 0], 0),
        &mem
    )
    .is_empty());
}

/// A fake tracee whose descriptor 7 is a bpf hash map (4-byte keys,
/// 12-byte values) and 8 a per-CPU array.
struct MapFds(FakeMem);

impl MemReader for MapFds {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read(addr, buf)
    }
    fn fd_info(&self, fd: i32) -> Option<String> {
        match fd {
            7 => Some("pos:\t0\nmap_type:\t1\nkey_size:\t4\nvalue_size:\t12\n".into()),
            8 => Some("map_type:\t6\nkey_size:\t4\nvalue_size:\t8\n".into()),
            _ => None,
        }
    }
}

#[test]
fn observing_calls_describe_their_outputs() {
    let mut m = MapFds(FakeMem::default());
    // bpf lookup: the value, of the map's value size, at attr->value.
    m.0.put_u32(0x100, 7);
    m.0.put_u64(0x110, 0x2000);
    let bpf = |cmd: u64| call(libc::SYS_bpf, &[cmd, 0x100, 32], 0);
    let got = |c: &Call, m: &MapFds| {
        let mut out = Vec::new();
        (lookup(c.nr).expect("in the table").outputs)(c, m, &mut out)
            .map(|()| out.into_iter().map(|r| (r.addr, r.len)).collect::<Vec<_>>())
    };
    assert_eq!(got(&bpf(1), &m), Ok(vec![(0x2000, 12)]));
    assert_eq!(got(&bpf(4), &m), Ok(vec![(0x2000, 4)]));
    assert_eq!(got(&bpf(2), &m), Ok(vec![]));
    m.0.put_u32(0x100, 8);
    assert!(got(&bpf(1), &m).unwrap_err().0.contains("per-CPU"));
    m.0.put_u32(0x100, 9);
    assert!(got(&bpf(1), &m).unwrap_err().0.contains("no bpf map"));
    // process_vm_readv: over the local iovecs; _writev: the remote ones.
    m.0.put_iovs(0x300, &[(0x3000, 4), (0x4000, 100)]);
    m.0.put_iovs(0x400, &[(0x5000, 10)]);
    let readv = call(libc::SYS_process_vm_readv, &[9, 0x300, 2, 0x400, 1, 0], 10);
    assert_eq!(got(&readv, &m), Ok(vec![(0x3000, 4), (0x4000, 6)]));
    let writev = call(libc::SYS_process_vm_writev, &[9, 0x300, 2, 0x400, 1, 0], 10);
    assert_eq!(got(&writev, &m), Ok(vec![(0x5000, 10)]));
    // perf_event_open: the size the kernel knows, on E2BIG only.
    let e2big = call(
        libc::SYS_perf_event_open,
        &[0x600, 0, u64::MAX, u64::MAX, 0],
        -7,
    );
    assert_eq!(ok(&e2big, &m.0), vec![(0x604, 4)]);
}

#[test]
fn compat_equivalents_are_the_x86_64_calls_the_kernel_serves() {
    // i386 numbers and the x86-64 calls the kernel's i386 table serves
    // them with (the same sys_* entry, or a compat one that writes no
    // memory: open, openat).
    for (i386, x86_64) in [
        (1, libc::SYS_exit),
        (5, libc::SYS_open),
        (37, libc::SYS_kill),
        (42, libc::SYS_pipe),
        (45, libc::SYS_brk),
        (91, libc::SYS_munmap),
        (125, libc::SYS_mprotect),
        (183, libc::SYS_getcwd),
        (238, libc::SYS_tkill),
        (270, libc::SYS_tgkill),
        (295, libc::SYS_openat),
        (330, libc::SYS_dup3),
        (331, libc::SYS_pipe2),
        (340, libc::SYS_prlimit64),
        (355, libc::SYS_getrandom),
        (403, libc::SYS_clock_gettime),
        (406, libc::SYS_clock_getres),
        (10, libc::SYS_unlink),
        (12, libc::SYS_chdir),
        (33, libc::SYS_access),
        (39, libc::SYS_mkdir),
        (40, libc::SYS_rmdir),
        (118, libc::SYS_fsync),
        (133, libc::SYS_fchdir),
        (148, libc::SYS_fdatasync),
        (163, libc::SYS_mremap),
        (219, libc::SYS_madvise),
        (220, libc::SYS_getdents64),
        (318, libc::SYS_getcpu),
        (328, libc::SYS_eventfd2),
        (9, libc::SYS_link),
        (15, libc::SYS_chmod),
        (38, libc::SYS_rename),
        (83, libc::SYS_symlink),
        (85, libc::SYS_readlink),
        (94, libc::SYS_fchmod),
        (143, libc::SYS_flock),
        (207, libc::SYS_fchown),
        (383, libc::SYS_statx),
        (8, libc::SYS_creat),
        (14, libc::SYS_mknod),
        (198, libc::SYS_lchown),
        (212, libc::SYS_chown),
        (254, libc::SYS_epoll_create),
        (255, libc::SYS_epoll_ctl),
        (256, libc::SYS_epoll_wait),
        (296, libc::SYS_mkdirat),
        (297, libc::SYS_mknodat),
        (298, libc::SYS_fchownat),
        (301, libc::SYS_unlinkat),
        (302, libc::SYS_renameat),
        (303, libc::SYS_linkat),
        (304, libc::SYS_symlinkat),
        (305, libc::SYS_readlinkat),
        (306, libc::SYS_fchmodat),
        (307, libc::SYS_faccessat),
        (323, libc::SYS_eventfd),
        (329, libc::SYS_epoll_create1),
        (353, libc::SYS_renameat2),
        (439, libc::SYS_faccessat2),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), Some(x86_64), "{i386}");
        assert_eq!(crate::row_nr(nr), x86_64, "{i386}");
        assert_eq!(lookup(nr).map(|d| d.nr), Some(x86_64), "{i386}");
        assert!(
            crate::name(nr).starts_with("i386 ") && !crate::name(nr).contains("i386 syscall"),
            "{i386} is named: {}",
            crate::name(nr)
        );
    }
    // The address space calls are executed in replay, a thread's exit
    // ends it there, the signal calls are skipped (the signal is replayed).
    let action = |n: u64| lookup(crate::compat_nr(n)).map(|d| d.replay);
    for n in [45, 91, 125, 163, 219] {
        assert_eq!(action(n), Some(ReplayAction::Execute), "{n}");
    }
    assert_eq!(action(1), Some(ReplayAction::Exit));
    for n in [37, 238, 270] {
        assert_eq!(action(n), Some(ReplayAction::Emulate), "{n}");
    }
    let m = FakeMem::default();
    // pipe's two ints; getrandom's and getcwd's bytes; clock_gettime64's
    // 16-byte timespec; prlimit64's old limits.
    assert_eq!(
        ok(&call(crate::compat_nr(42), &[0x1000], 0), &m),
        [(0x1000, 8)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(331), &[0x1000, 0], 0), &m),
        [(0x1000, 8)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(355), &[0x1000, 32, 0], 16), &m),
        [(0x1000, 16)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(183), &[0x1000, 256], 9), &m),
        [(0x1000, 9)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(403), &[1, 0x1000], 0), &m),
        [(0x1000, 16)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(340), &[0, 7, 0, 0x1000], 0), &m),
        [(0x1000, 16)]
    );
    assert!(ok(&call(crate::compat_nr(403), &[1, 0x1000], -14), &m).is_empty());
    // readlink's bytes (as many as it returns), statx's struct statx at
    // its fifth argument; link, rename, chmod, flock, fchown32 write none.
    assert_eq!(
        ok(&call(crate::compat_nr(85), &[0x2000, 0x1000, 256], 7), &m),
        [(0x1000, 7)]
    );
    assert_eq!(
        ok(
            &call(
                crate::compat_nr(383),
                &[0xffff_ff9c, 0x2000, 0, 0x7ff, 0x1000],
                0
            ),
            &m
        ),
        [(0x1000, 256)]
    );
    for n in [9, 15, 38, 83, 94, 143, 207] {
        assert!(
            ok(&call(crate::compat_nr(n), &[0x1000, 0x2000, 0], 0), &m).is_empty(),
            "{n}"
        );
    }
    // getdents64's records, getcpu's two unsigned ints.
    assert_eq!(
        ok(&call(crate::compat_nr(220), &[3, 0x1000, 4096], 48), &m),
        [(0x1000, 48)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(318), &[0x1000, 0x2000, 0], 0), &m),
        [(0x1000, 4), (0x2000, 4)]
    );
}

#[test]
fn compat_rows_describe_the_i386_layouts() {
    for w in crate::COMPAT_ROWS.windows(2) {
        assert!(w[0].nr < w[1].nr, "{} before {}", w[0].name, w[1].name);
    }
    for d in crate::COMPAT_ROWS {
        assert!(crate::is_compat(d.nr), "{}", d.name);
        assert_eq!(crate::x86_64_equivalent(d.nr), None, "{}", d.name);
        assert_eq!(
            crate::name(d.nr),
            format!("i386 {} (int $0x80 #{})", d.name, d.nr as u32)
        );
    }
    let m = FakeMem::default();
    // time: a 32-bit time_t at its pointer, when not null.
    let time = crate::compat_nr(13);
    assert_eq!(ok(&call(time, &[0x1000], 1_796_454_460), &m), [(0x1000, 4)]);
    assert!(ok(&call(time, &[0], 1_796_454_460), &m).is_empty());
    assert!(ok(&call(time, &[0x1000], -14), &m).is_empty());
    // gettimeofday: an 8-byte old_timeval32 and the 8-byte timezone.
    let gtod = crate::compat_nr(78);
    assert_eq!(
        ok(&call(gtod, &[0x1000, 0x2000], 0), &m),
        [(0x1000, 8), (0x2000, 8)]
    );
    assert_eq!(ok(&call(gtod, &[0x1000, 0], 0), &m), [(0x1000, 8)]);
    assert_eq!(ok(&call(gtod, &[0, 0x2000], 0), &m), [(0x2000, 8)]);
    // clock_gettime and clock_getres: an 8-byte old_timespec32.
    for n in [265, 266] {
        let nr = crate::compat_nr(n);
        assert_eq!(ok(&call(nr, &[1, 0x1000], 0), &m), [(0x1000, 8)], "{n}");
        assert!(ok(&call(nr, &[99, 0x1000], -22), &m).is_empty(), "{n}");
    }
    assert!(ok(&call(crate::compat_nr(266), &[1, 0], 0), &m).is_empty());
    // mmap2 writes nothing, is replayed as mmap, and means the mmap of
    // the same mapping: the descriptor sign-extended, the offset in bytes.
    let mmap2 = crate::compat_nr(192);
    assert!(ok(
        &call(mmap2, &[0, 4096, 3, 0x22, 0xffff_ffff, 0], 0x1000_0000),
        &m
    )
    .is_empty());
    assert_eq!(lookup(mmap2).map(|d| d.replay), Some(ReplayAction::Mmap));
    let anon = crate::x86_64_call(&call(
        mmap2,
        &[0, 4096, 3, 0x22, 0xffff_ffff, 0],
        0x1000_0000,
    ));
    assert_eq!(
        anon,
        call(
            libc::SYS_mmap,
            &[0, 4096, 3, 0x22, u64::MAX, 0],
            0x1000_0000
        )
    );
    let file = crate::x86_64_call(&call(mmap2, &[0, 8192, 1, 2, 5, 3], 0x1000_0000));
    assert_eq!(file.args, [0, 8192, 1, 2, 5, 3 * 4096]);
    // The others keep their arguments, under the x86-64 number if they
    // have one.
    let read = call(crate::compat_nr(3), &[4, 0x1000, 64], 5);
    assert_eq!(
        crate::x86_64_call(&read),
        call(libc::SYS_read, &[4, 0x1000, 64], 5)
    );
    assert_eq!(
        crate::x86_64_call(&call(time, &[0], 5)),
        call(time, &[0], 5)
    );
    let native = call(libc::SYS_mmap, &[0, 4096, 3, 0x22, u64::MAX, 0], 0x1000);
    assert_eq!(crate::x86_64_call(&native), native);
    // lseek writes nothing; _llseek the 64-bit position at its fourth
    // argument; getrlimit and ugetrlimit two 32-bit limits.
    assert!(ok(&call(crate::compat_nr(19), &[3, 100, 0], 100), &m).is_empty());
    assert_eq!(
        ok(&call(crate::compat_nr(140), &[3, 0, 200, 0x1000, 0], 0), &m),
        [(0x1000, 8)]
    );
    assert!(ok(
        &call(crate::compat_nr(140), &[3, 0, 200, 0x1000, 9], -22),
        &m
    )
    .is_empty());
    for n in [76, 191] {
        assert_eq!(
            ok(&call(crate::compat_nr(n), &[7, 0x1000], 0), &m),
            [(0x1000, 8)],
            "{n}"
        );
    }
    // Their sizes are the i386 kernel's: two 32-bit fields.
    assert_eq!(
        ok(&call(crate::compat_nr(77), &[0, 0x1000], 0), &m),
        [(0x1000, 72)]
    );
    assert_eq!(crate::compat_rows::COMPAT_RLIMIT, 2 * 4);
    assert_eq!(crate::compat_rows::COMPAT_RUSAGE, 72);
    assert_eq!(crate::compat_rows::LOFF_T, 8);
    assert_eq!(crate::compat_rows::OLD_TIMESPEC32, 2 * 4);
    assert_eq!(crate::compat_rows::OLD_TIMEVAL32, 2 * 4);
    assert_eq!(crate::compat_rows::OLD_TIME32, 4);
}

#[test]
fn compat_rows_describe_stat64_statfs64_iovecs_and_split_offsets() {
    let m = FakeMem::default();
    // The i386 struct stat64: 96 packed bytes at the second argument
    // (fstatat64's third), on success only.
    assert_eq!(crate::compat_rows::STAT64, 96);
    assert_eq!(crate::compat_rows::stat64::MODE, 16);
    assert_eq!(crate::compat_rows::stat64::SIZE, 44);
    assert_eq!(crate::compat_rows::stat64::BLOCKS, 56);
    assert_eq!(crate::compat_rows::stat64::INO, 88);
    for n in [195, 196, 197] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &[0x2000, 0x1000], 0), &m),
            [(0x1000, 96)],
            "{n}"
        );
        assert!(ok(&call(nr, &[0x2000, 0x1000], -2), &m).is_empty(), "{n}");
    }
    let fstatat64 = crate::compat_nr(300);
    assert_eq!(
        ok(
            &call(fstatat64, &[0xffff_ff9c, 0x2000, 0x1000, 0x100], 0),
            &m
        ),
        [(0x1000, 96)]
    );
    // compat_statfs64: 84 packed bytes at the third argument; the kernel
    // takes no other size (EINVAL, nothing written).
    assert_eq!(crate::compat_rows::COMPAT_STATFS64, 84);
    for n in [268, 269] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &[0x2000, 84, 0x1000], 0), &m),
            [(0x1000, 84)],
            "{n}"
        );
        assert!(
            ok(&call(nr, &[0x2000, 88, 0x1000], -22), &m).is_empty(),
            "{n}"
        );
    }
    // readv, preadv, preadv2: the bytes read scattered over 8-byte
    // compat_iovecs (a 32-bit base and length), in order.
    let mut iov = FakeMem::default();
    for (i, (base, len)) in [(0x5000u32, 100u32), (0x6000, 3000), (0x7000, 500)]
        .into_iter()
        .enumerate()
    {
        iov.put_u32(0x400 + 8 * i as u64, base);
        iov.put_u32(0x404 + 8 * i as u64, len);
    }
    for (n, args) in [
        (145, [3, 0x400, 3, 0, 0, 0]),
        (333, [3, 0x400, 3, 990, 1, 0]),
        (
            378,
            [3, 0x400, 3, u64::from(u32::MAX), u64::from(u32::MAX), 0],
        ),
    ] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &args, 3600), &iov),
            [(0x5000, 100), (0x6000, 3000), (0x7000, 500)],
            "{n}"
        );
        // A short read fills the first iovecs only; a failure none.
        assert_eq!(
            ok(&call(nr, &args, 400), &iov),
            [(0x5000, 100), (0x6000, 300)],
            "{n}"
        );
        assert!(ok(&call(nr, &args, -9), &iov).is_empty(), "{n}");
        // More iovecs than the kernel takes (UIO_MAXIOV) are named.
        let mut args = args;
        args[2] = 1025;
        assert!(regions(&call(nr, &args, 10), &iov).is_err(), "{n}");
    }
    // An iovec array the recorder cannot read is named.
    let unreadable = regions(&call(crate::compat_nr(145), &[3, 0x900, 1], 5), &iov);
    assert!(unreadable.unwrap_err().0.contains("compat_iovec"));
    // crate::read_iovec, by the trace's number: 8-byte entries for a
    // 32-bit call, 16-byte ones for a 64-bit call.
    assert_eq!(
        crate::read_iovec(&iov, crate::compat_nr(146), 0x400, 1).unwrap(),
        (0x6000, 3000)
    );
    let mut iov64 = FakeMem::default();
    iov64.put_iovs(0x400, &[(0x5000, 1), (0x6000_0000_0000, 2)]);
    assert_eq!(
        crate::read_iovec(&iov64, libc::SYS_writev, 0x400, 1).unwrap(),
        (0x6000_0000_0000, 2)
    );
    // The writes write nothing; pread64 fills its buffer with its result.
    for n in [146, 181, 193, 194, 334, 379] {
        assert!(
            ok(&call(crate::compat_nr(n), &[3, 0x400, 3, 0, 1, 0], 7), &iov).is_empty(),
            "{n}"
        );
    }
    assert_eq!(
        ok(
            &call(crate::compat_nr(180), &[3, 0x1000, 400, 50, 1], 10),
            &m
        ),
        [(0x1000, 10)]
    );
    // They block where the x86-64 calls do, and are emulated in replay.
    for (n, x86_64) in [
        (145, libc::SYS_readv),
        (146, libc::SYS_writev),
        (180, libc::SYS_pread64),
        (181, libc::SYS_pwrite64),
        (193, libc::SYS_truncate),
        (194, libc::SYS_ftruncate),
        (333, libc::SYS_preadv),
        (334, libc::SYS_pwritev),
        (378, libc::SYS_preadv2),
        (379, libc::SYS_pwritev2),
    ] {
        let nr = crate::compat_nr(n);
        let row = lookup(nr).expect("a row");
        assert_eq!(row.nr, nr, "{n}: a row of its own");
        assert_eq!(
            row.may_block,
            lookup(x86_64).unwrap().may_block,
            "{n} blocks as the x86-64 call"
        );
        assert_eq!(row.replay, ReplayAction::Emulate, "{n}");
        // Followed by the x86-64 call's number (a 32-bit writev to
        // stdout is output), though not described by its row.
        assert_eq!(crate::row_nr(nr), x86_64, "{n}");
        assert_eq!(crate::x86_64_equivalent(nr), None, "{n}");
    }
    // Their split offsets and lengths joined, low half first.
    let x = |n: u64, args: &[u64]| crate::x86_64_call(&call(crate::compat_nr(n), args, 0));
    assert_eq!(
        x(181, &[3, 0x1000, 300, 100, 1]),
        call(libc::SYS_pwrite64, &[3, 0x1000, 300, (1 << 32) + 100], 0)
    );
    assert_eq!(
        x(180, &[3, 0x1000, 400, 0xffff_fff0, 2]).args,
        [3, 0x1000, 400, 0x2_ffff_fff0, 0, 0]
    );
    assert_eq!(
        x(194, &[3, 8192, 1]),
        call(libc::SYS_ftruncate, &[3, (1 << 32) + 8192], 0)
    );
    assert_eq!(
        x(193, &[0x2000, 5000, 0]),
        call(libc::SYS_truncate, &[0x2000, 5000], 0)
    );
    assert_eq!(
        x(334, &[3, 0x400, 2, 1000, 1]),
        call(libc::SYS_pwritev, &[3, 0x400, 2, (1 << 32) + 1000, 0], 0)
    );
    // preadv2/pwritev2: all ones in both halves is -1, the current
    // position; the flags stay in the sixth argument.
    assert_eq!(
        x(379, &[3, 0x400, 1, 0xffff_ffff, 0xffff_ffff, 8]),
        call(libc::SYS_pwritev2, &[3, 0x400, 1, u64::MAX, 0, 8], 0)
    );
    assert_eq!(x(378, &[3, 0x400, 1, 7, 0, 0]).args[3], 7);
    // The stat calls mean no x86-64 call of their own layout, and keep
    // their number.
    assert_eq!(crate::row_nr(crate::compat_nr(195)), crate::compat_nr(195));
}

#[test]
fn compat_rows_describe_times_sysinfo_and_nanosleep() {
    let m = FakeMem::default();
    // times: a 16-byte compat_tms (four 32-bit ticks) whatever the result
    // but EFAULT, the ticks since boot cut to 32 bits looking negative at
    // times; nothing for a null pointer.
    assert_eq!(crate::compat_rows::COMPAT_TMS, 16);
    let times = crate::compat_nr(43);
    assert!(crate::writes_on_failure(times));
    assert!(!crate::writes_on_failure(libc::SYS_times));
    assert_eq!(ok(&call(times, &[0x1000], 429_496_729), &m), [(0x1000, 16)]);
    assert_eq!(
        ok(&call(times, &[0x1000], -2_000_000_000), &m),
        [(0x1000, 16)]
    );
    assert!(ok(&call(times, &[0x1000], -14), &m).is_empty());
    assert!(ok(&call(times, &[0], 12345), &m).is_empty());
    // sysinfo: a 64-byte compat_sysinfo.
    assert_eq!(crate::compat_rows::COMPAT_SYSINFO, 64);
    assert_eq!(
        ok(&call(crate::compat_nr(116), &[0x1000], 0), &m),
        [(0x1000, 64)]
    );
    assert!(ok(&call(crate::compat_nr(116), &[0x1000], -14), &m).is_empty());
    // nanosleep: blocks; the time left, an 8-byte old_timespec32 at its
    // second pointer, only when a signal interrupted it.
    let nanosleep = crate::compat_nr(162);
    let row = lookup(nanosleep).expect("a row");
    assert!(row.may_block && row.replay == ReplayAction::Emulate);
    assert!(crate::writes_on_failure(nanosleep));
    assert!(ok(&call(nanosleep, &[0x2000, 0x1000], 0), &m).is_empty());
    for ret in [-4, -516] {
        assert_eq!(
            ok(&call(nanosleep, &[0x2000, 0x1000], ret), &m),
            [(0x1000, 8)],
            "{ret}"
        );
    }
    assert!(ok(&call(nanosleep, &[0x2000, 0], -4), &m).is_empty());
    assert!(ok(&call(nanosleep, &[0x2000, 0x1000], -22), &m).is_empty());
    // The i386 restart_syscall that resumes one interrupted without a
    // handler: a row that blocks, described as the call it resumes (its
    // own outputs refuse), 0 in rax to resume a 32-bit call, 219 (the
    // i386 madvise) only for a 64-bit one.
    let restart = crate::compat_nr(0);
    assert_eq!(restart, crate::COMPAT_RESTART_SYSCALL);
    let row = lookup(restart).expect("a row");
    assert!(row.may_block && row.replay == ReplayAction::Emulate);
    assert!(crate::is_restart_syscall(restart));
    assert!(crate::is_restart_syscall(libc::SYS_restart_syscall));
    assert!(!crate::is_restart_syscall(crate::compat_nr(219)));
    assert_eq!(crate::restart_syscall_rax(nanosleep), 0);
    assert_eq!(crate::restart_syscall_rax(libc::SYS_nanosleep), 219);
    assert!((row.outputs)(&call(restart, &[], 0), &m, &mut Vec::new()).is_err());
    let mut out = Vec::new();
    crate::restarted_outputs(&call(nanosleep, &[0x2000, 0x1000], -516), -4, &m, &mut out)
        .expect("described");
    assert_eq!((out.len(), out[0].addr, out[0].len), (1, 0x1000, 8));
    assert_eq!(crate::name(restart), "i386 restart_syscall (int $0x80 #0)");
    // Other 32-bit calls are not recorded on failure.
    assert!(!crate::writes_on_failure(crate::compat_nr(195)));
}

#[test]
fn compat_at_and_epoll_calls_are_described_by_the_x86_64_rows() {
    let m = FakeMem::default();
    // The *at calls and epoll calls described by the x86-64 rows: an i386
    // epoll_wait fills `ret` packed 12-byte epoll_events (the layout of
    // both ABIs) and may block; readlinkat the bytes it returns.
    assert_eq!(std::mem::size_of::<libc::epoll_event>(), 12);
    let epoll_wait = crate::compat_nr(256);
    assert!(lookup(epoll_wait).expect("a row").may_block);
    assert_eq!(
        ok(&call(epoll_wait, &[4, 0x1000, 4, 0], 2), &m),
        [(0x1000, 24)]
    );
    assert_eq!(
        ok(
            &call(crate::compat_nr(305), &[3, 0x2000, 0x1000, 64], 4),
            &m
        ),
        [(0x1000, 4)]
    );
    assert!(ok(&call(crate::compat_nr(255), &[4, 1, 5, 0x1000], 0), &m).is_empty());
}

#[test]
fn compat_rows_describe_old_stat_statfs_getdents_and_fcntl64() {
    let m = FakeMem::default();
    // The i386 struct compat_stat, laid out as the kernel's compat.h says.
    #[repr(C)]
    #[allow(dead_code)]
    struct CompatStat {
        dev: u16,
        pad1: u16,
        ino: u32,
        mode: u16,
        nlink: u16,
        uid: u16,
        gid: u16,
        rdev: u16,
        pad2: u16,
        size: u32,
        blksize: u32,
        blocks: u32,
        times: [u32; 6],
        unused: [u32; 2],
    }
    use crate::compat_rows::{compat_stat, COMPAT_STAT, COMPAT_STATFS};
    assert_eq!(COMPAT_STAT, 64);
    assert_eq!(std::mem::size_of::<CompatStat>() as u64, COMPAT_STAT);
    assert_eq!(
        std::mem::offset_of!(CompatStat, ino) as u64,
        compat_stat::INO
    );
    assert_eq!(
        std::mem::offset_of!(CompatStat, mode) as u64,
        compat_stat::MODE
    );
    assert_eq!(
        std::mem::offset_of!(CompatStat, size) as u64,
        compat_stat::SIZE
    );
    assert_eq!(
        std::mem::offset_of!(CompatStat, times) as u64 + 8,
        compat_stat::MTIME
    );
    // stat, lstat, fstat: the 64 bytes at the second argument on success
    // (EOVERFLOW, where a value does not fit, writes nothing).
    for n in [106, 107, 108] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &[0x2000, 0x1000], 0), &m),
            [(0x1000, 64)],
            "{n}"
        );
        assert!(crate::name(nr).starts_with("i386 "));
        assert_eq!(crate::row_nr(nr), nr, "{n} means no x86-64 call");
    }
    assert!(!crate::writes_on_failure(crate::compat_nr(106)));
    // statfs, fstatfs: a 64-byte compat_statfs of 32-bit counts.
    assert_eq!(COMPAT_STATFS, 64);
    for n in [99, 100] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &[0x2000, 0x1000], 0), &m),
            [(0x1000, 64)],
            "{n}"
        );
    }
    // getdents: compat_linux_dirent records, as many bytes as it returns.
    let getdents = crate::compat_nr(141);
    assert_eq!(
        ok(&call(getdents, &[3, 0x1000, 4096], 72), &m),
        [(0x1000, 72)]
    );
    assert!(ok(&call(getdents, &[3, 0x1000, 4096], 0), &m).is_empty());
    // fcntl64: means fcntl; its int commands write nothing, the lock
    // queries store their lock (compat_rows_describe_old_structures_and_fcntl64_locks),
    // the others are the x86-64 row's.
    let fcntl64 = crate::compat_nr(221);
    assert_eq!(crate::row_nr(fcntl64), libc::SYS_fcntl);
    assert!(lookup(fcntl64).expect("a row").may_block);
    for cmd in [
        libc::F_DUPFD,
        libc::F_GETFD,
        libc::F_SETFD,
        libc::F_GETFL,
        libc::F_SETFL,
        libc::F_DUPFD_CLOEXEC,
    ] {
        assert!(
            ok(&call(fcntl64, &[3, cmd as u64, 1], 0), &m).is_empty(),
            "{cmd}"
        );
    }
    // Pipe sizes, seals, leases and notifications: ints, as for the
    // x86-64 call; a write-hint query stores a u64 at its 32-bit pointer.
    for cmd in [1032, 1031, 1033, 1034, libc::F_GETLEASE, libc::F_NOTIFY] {
        assert!(
            ok(&call(fcntl64, &[3, cmd as u64, 0x1000], 0), &m).is_empty(),
            "{cmd}"
        );
    }
    assert_eq!(ok(&call(fcntl64, &[3, 1035, 0x1000], 0), &m), [(0x1000, 8)]);
    // A command neither the i386 row nor the x86-64 one knows: named.
    let err = regions(&call(fcntl64, &[3, 4242, 0x1000], 0), &m).unwrap_err();
    assert!(
        err.0.contains("command 4242 is not described")
            && err.0.contains("i386 fcntl64 (int $0x80 #221)"),
        "{}",
        err.0
    );
    // A command that failed wrote nothing and is not refused.
    assert!(ok(&call(fcntl64, &[3, 1032, 0x1000], -22), &m).is_empty());
    let call64 = crate::x86_64_call(&call(fcntl64, &[3, 1, 0], 0));
    assert_eq!(
        (call64.nr, call64.args[..3].to_vec()),
        (libc::SYS_fcntl, vec![3, 1, 0])
    );
}

#[test]
fn compat_rows_describe_old_structures_and_fcntl64_locks() {
    use crate::compat_rows::{
        COMPAT_FLOCK, COMPAT_FLOCK64, COMPAT_OLD_DIRENT, F_OWNER_EX, OLDOLD_UTSNAME,
        OLD_KERNEL_STAT, OLD_UTSNAME,
    };
    let mut m = FakeMem::default();
    // The i386 struct __old_kernel_stat as the 64-bit kernel fills it.
    #[repr(C)]
    #[allow(dead_code)]
    struct OldKernelStat {
        shorts: [u16; 7],
        pad: u16,
        size: u32,
        times: [u32; 3],
    }
    assert_eq!(OLD_KERNEL_STAT, 32);
    assert_eq!(std::mem::size_of::<OldKernelStat>() as u64, OLD_KERNEL_STAT);
    assert_eq!(std::mem::offset_of!(OldKernelStat, size), 16);
    // oldstat, oldfstat, oldlstat: 32 bytes at the second argument on
    // success, nothing for EOVERFLOW.
    for n in [18, 28, 84] {
        let nr = crate::compat_nr(n);
        assert_eq!(
            ok(&call(nr, &[0x2000, 0x1000], 0), &m),
            [(0x1000, 32)],
            "{n}"
        );
        assert!(ok(&call(nr, &[0x2000, 0x1000], -75), &m).is_empty());
        assert!(!crate::name(nr).contains("i386 syscall"), "{n} is named");
    }
    // olduname (109, sys_uname): struct old_utsname; oldolduname (59,
    // sys_olduname): struct oldold_utsname.
    assert_eq!(OLD_UTSNAME, 325);
    assert_eq!(OLDOLD_UTSNAME, 45);
    assert_eq!(
        ok(&call(crate::compat_nr(109), &[0x1000], 0), &m),
        [(0x1000, 325)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(59), &[0x1000], 0), &m),
        [(0x1000, 45)]
    );
    // readdir: one compat_old_linux_dirent of d_namlen's name and its zero
    // when it returns 1; nothing at the end.
    assert_eq!(COMPAT_OLD_DIRENT, 10);
    // d_namlen 4, and the bytes after it the name's.
    m.put_u32(0x3008, 0x6f66_0004);
    let readdir = crate::compat_nr(89);
    assert_eq!(
        ok(&call(readdir, &[3, 0x3000, 1], 1), &m),
        [(0x3000, 10 + 4 + 1)]
    );
    assert!(ok(&call(readdir, &[3, 0x3000, 1], 0), &m).is_empty());
    assert!(ok(&call(readdir, &[3, 0x3000, 1], -9), &m).is_empty());
    // The file-time calls only read their 32-bit times.
    for n in [30, 271, 299, 320] {
        let nr = crate::compat_nr(n);
        assert!(
            ok(&call(nr, &[0x2000, 0x1000, 0x3000], 0), &m).is_empty(),
            "{n}"
        );
        assert_eq!(crate::row_nr(nr), nr, "{n} has a row of its own");
    }
    // Served by the x86-64 call's sys_* entry: the inotify calls,
    // epoll_pwait (the same 12-byte events, an 8-byte sigset),
    // utimensat_time64.
    for (i386, x86_64) in [
        (291, libc::SYS_inotify_init),
        (292, libc::SYS_inotify_add_watch),
        (293, libc::SYS_inotify_rm_watch),
        (319, libc::SYS_epoll_pwait),
        (332, libc::SYS_inotify_init1),
        (412, libc::SYS_utimensat),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), Some(x86_64), "{i386}");
        assert_eq!(crate::row_nr(nr), x86_64, "{i386}");
        assert!(!crate::name(nr).contains("i386 syscall"), "{i386} is named");
    }
    let epoll_pwait = crate::compat_nr(319);
    assert!(lookup(epoll_pwait).expect("a row").may_block);
    assert_eq!(
        ok(&call(epoll_pwait, &[4, 0x1000, 4, 100, 0x2000, 8], 2), &m),
        [(0x1000, 24)]
    );
    // fcntl64's locks: the 16-byte compat_flock, the packed 24-byte
    // compat_flock64 (l_start at 4, l_len at 12, l_pid at 20).
    #[repr(C)]
    #[allow(dead_code)]
    struct CompatFlock {
        l_type: i16,
        l_whence: i16,
        l_start: i32,
        l_len: i32,
        l_pid: i32,
    }
    #[repr(C, packed(4))]
    #[allow(dead_code)]
    struct CompatFlock64 {
        l_type: i16,
        l_whence: i16,
        l_start: i64,
        l_len: i64,
        l_pid: i32,
    }
    assert_eq!(std::mem::size_of::<CompatFlock>() as u64, COMPAT_FLOCK);
    assert_eq!(COMPAT_FLOCK, 16);
    assert_eq!(std::mem::size_of::<CompatFlock64>() as u64, COMPAT_FLOCK64);
    assert_eq!(COMPAT_FLOCK64, 24);
    assert_eq!(std::mem::offset_of!(CompatFlock64, l_len), 12);
    assert_eq!(std::mem::offset_of!(CompatFlock64, l_pid), 20);
    assert_eq!(F_OWNER_EX, 8);
    assert_eq!(F_OWNER_EX, crate::layout::F_OWNER_EX);
    let fcntl64 = crate::compat_nr(221);
    let stored = |cmd: i32, ret: i64| ok(&call(fcntl64, &[3, cmd as u64, 0x1000], ret), &m);
    assert_eq!(stored(libc::F_GETLK, 0), [(0x1000, 16)]);
    assert_eq!(stored(12, 0), [(0x1000, 24)]);
    assert_eq!(stored(libc::F_OFD_GETLK, 0), [(0x1000, 24)]);
    assert_eq!(stored(16, 0), [(0x1000, 8)]);
    // EOVERFLOW (a lock that does not fit compat_flock) stores nothing.
    assert!(stored(libc::F_GETLK, -75).is_empty());
    for cmd in [
        libc::F_SETLK,
        libc::F_SETLKW,
        13,
        14,
        libc::F_OFD_SETLK,
        libc::F_OFD_SETLKW,
        libc::F_GETOWN,
        libc::F_SETOWN,
        15,
        11,
        10,
    ] {
        assert!(stored(cmd, 0).is_empty(), "{cmd}");
    }
}

#[test]
fn compat_rows_describe_clock_nanosleep_and_ppoll() {
    let m = FakeMem::default();
    // clock_nanosleep (267): blocks; the time left, an 8-byte
    // old_timespec32 at its fourth argument, when a signal interrupted a
    // relative sleep (EINTR, or a restart code at the exit stop), kept
    // though the call failed; none for TIMER_ABSTIME.
    let cn = crate::compat_nr(267);
    assert!(lookup(cn).expect("a row").may_block);
    assert!(crate::writes_on_failure(cn));
    assert!(ok(&call(cn, &[1, 0, 0x1000, 0x2000], 0), &m).is_empty());
    for ret in [-4, -516] {
        assert_eq!(
            ok(&call(cn, &[1, 0, 0x1000, 0x2000], ret), &m),
            [(0x2000, 8)],
            "{ret}"
        );
    }
    assert!(ok(&call(cn, &[1, 1, 0x1000, 0x2000], -4), &m).is_empty());
    // Resumed by the i386 restart_syscall: described as the call it
    // resumes.
    let original = call(cn, &[1, 0, 0x1000, 0x2000], -516);
    let mut out = Vec::new();
    crate::restarted_outputs(&original, -4, &m, &mut out).expect("described");
    assert_eq!(
        out.iter().map(|r| (r.addr, r.len)).collect::<Vec<_>>(),
        [(0x2000, 8)]
    );
    // ppoll (309): means ppoll (the replayer finds its mask so); the
    // 8-byte pollfds on success or interruption, the old_timespec32 time
    // left whatever the result but EFAULT.
    let pp = crate::compat_nr(309);
    assert_eq!(crate::row_nr(pp), libc::SYS_ppoll);
    assert!(lookup(pp).expect("a row").may_block);
    assert!(crate::writes_on_failure(pp));
    assert_eq!(
        ok(&call(pp, &[0x1000, 2, 0x2000, 0x3000, 8], 1), &m),
        [(0x1000, 16), (0x2000, 8)]
    );
    assert_eq!(
        ok(&call(pp, &[0x1000, 2, 0x2000, 0x3000, 8], -4), &m),
        [(0x1000, 16), (0x2000, 8)]
    );
    assert_eq!(
        ok(&call(pp, &[0x1000, 2, 0x2000, 0, 0], -22), &m),
        [(0x2000, 8)]
    );
    assert!(ok(&call(pp, &[0x1000, 2, 0x2000, 0, 0], -14), &m).is_empty());
    // Their time64 forms are the x86-64 calls (16-byte timespecs), kept
    // on failure by their trace numbers.
    for (i386, x86_64) in [(407, libc::SYS_clock_nanosleep), (414, libc::SYS_ppoll)] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), Some(x86_64), "{i386}");
        assert!(crate::writes_on_failure(nr), "{i386}");
    }
    assert_eq!(
        ok(
            &call(crate::compat_nr(407), &[1, 0, 0x1000, 0x2000], -4),
            &m
        ),
        [(0x2000, 16)]
    );
    // pselect6 (308) and pselect6_time64 (413): mean pselect6 (the
    // replayer finds the mask through their pair of 32-bit values); fd_sets
    // of 32-bit words (4 bytes for up to 32 descriptors, where the x86-64
    // call's are 8) on success, the time left (an old_timespec32, or a
    // 16-byte timespec) whatever the result but EFAULT.
    use crate::compat_rows::compat_fd_set_bytes;
    assert_eq!(compat_fd_set_bytes(1), 4);
    assert_eq!(compat_fd_set_bytes(32), 4);
    assert_eq!(compat_fd_set_bytes(33), 8);
    assert_eq!(compat_fd_set_bytes(0), 0);
    for (n, ts) in [(308, 8), (413, 16)] {
        let nr = crate::compat_nr(n);
        assert_eq!(crate::row_nr(nr), libc::SYS_pselect6, "{n}");
        assert!(lookup(nr).expect("a row").may_block, "{n}");
        assert!(crate::writes_on_failure(nr), "{n}");
        assert_eq!(
            ok(&call(nr, &[5, 0x1000, 0, 0x2000, 0x3000, 0x4000], 1), &m),
            [(0x1000, 4), (0x2000, 4), (0x3000, ts)],
            "{n}"
        );
        assert_eq!(
            ok(&call(nr, &[40, 0x1000, 0, 0, 0x3000, 0], -4), &m),
            [(0x3000, ts)],
            "{n}"
        );
        assert!(ok(&call(nr, &[40, 0x1000, 0, 0, 0x3000, 0], -14), &m).is_empty());
    }
    // futex and futex_time64 mean the x86-64 futex (the 32-bit timespec of
    // the first is read, never written). The recorder holds no 32-bit
    // wait at its entry (`futex.rs` leaves compat calls to the kernel).
    for nr in [240, 422] {
        assert_eq!(crate::row_nr(crate::compat_nr(nr)), libc::SYS_futex, "{nr}");
        assert!(lookup(crate::compat_nr(nr)).is_some(), "{nr}");
    }
}

#[test]
fn compat_rows_describe_the_32_bit_selects() {
    let mut m = FakeMem(HashMap::new());
    // _newselect (142): three fd_sets of 32-bit words for 40 descriptors
    // (8 bytes each) on success, the 8-byte old_timeval32 always but for
    // EFAULT; a null set is not written.
    let args = [40, 0x1000, 0x2000, 0, 0x3000];
    assert_eq!(
        ok(&call(crate::compat_nr(142), &args, 1), &m),
        [(0x1000, 8), (0x2000, 8), (0x3000, 8)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(142), &args, -4), &m),
        [(0x3000, 8)]
    );
    assert!(ok(&call(crate::compat_nr(142), &args, -14), &m).is_empty());
    // The old select (82): the same, its arguments read from the
    // struct compat_sel_arg_struct it points to.
    for (i, v) in [3u32, 0x1000, 0, 0x2000, 0x3000].into_iter().enumerate() {
        m.put_u32(0x5000 + 4 * i as u64, v);
    }
    assert_eq!(
        ok(&call(crate::compat_nr(82), &[0x5000], 0), &m),
        [(0x1000, 4), (0x2000, 4), (0x3000, 8)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(82), &[0x5000], -4), &m),
        [(0x3000, 8)]
    );
    // An unreadable struct is named.
    assert!(regions(&call(crate::compat_nr(82), &[0x9000], 0), &m).is_err());
    assert!(crate::writes_on_failure(crate::compat_nr(82)));
    assert!(crate::writes_on_failure(crate::compat_nr(142)));
}

#[test]
fn compat_rows_describe_split_values_sendfile_vmsplice_and_fcntl() {
    let m = FakeMem::default();
    // The split values (low half first) joined into the x86-64 call's
    // arguments (arch/x86/kernel/sys_ia32.c's argument order).
    let hi = |h: u64, l: u64| (h << 32) | l;
    for (i386, args, x86_64, want) in [
        // readahead(fd, lo, hi, count)
        (
            225,
            [3, 0x10, 1, 4096, 0, 0],
            libc::SYS_readahead,
            [3, hi(1, 0x10), 4096, 0, 0, 0],
        ),
        // fadvise64(fd, lo, hi, len, advice)
        (
            250,
            [3, 0x20, 2, 8192, 3, 0],
            libc::SYS_fadvise64,
            [3, hi(2, 0x20), 8192, 3, 0, 0],
        ),
        // fadvise64_64(fd, lo, hi, len lo, len hi, advice)
        (
            272,
            [3, 0x30, 3, 0x40, 0x8000_0000, 4],
            libc::SYS_fadvise64,
            [3, hi(3, 0x30), hi(0x8000_0000, 0x40), 4, 0, 0],
        ),
        // sync_file_range(fd, lo, hi, n lo, n hi, flags)
        (
            314,
            [3, 0x50, 1, 0x60, 0, 2],
            libc::SYS_sync_file_range,
            [3, hi(1, 0x50), 0x60, 2, 0, 0],
        ),
        // fallocate(fd, mode, lo, hi, len lo, len hi)
        (
            324,
            [3, 1, 0x1000, 1, 0x2000, 0],
            libc::SYS_fallocate,
            [3, 1, hi(1, 0x1000), 0x2000, 0, 0],
        ),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::row_nr(nr), x86_64, "{i386}");
        let c = crate::x86_64_call(&call(nr, &args, 0));
        assert_eq!((c.nr, c.args), (x86_64, want), "{i386}");
        // They write no memory.
        assert!(ok(&call(nr, &args, 0), &m).is_empty(), "{i386}");
        assert!(!crate::name(nr).contains("i386 syscall"), "{i386} is named");
    }
    // sendfile (187, compat_sys_sendfile): a 4-byte compat_off_t at its
    // third argument, stored back; the x86-64 sendfile's meaning (the
    // output descriptor, first, is the file it writes). sendfile64 (239)
    // is the x86-64 call, an 8-byte loff_t.
    assert_eq!(crate::compat_rows::COMPAT_OFF_T, 4);
    let sendfile = crate::compat_nr(187);
    assert_eq!(crate::row_nr(sendfile), libc::SYS_sendfile);
    assert_eq!(
        ok(&call(sendfile, &[4, 3, 0x1000, 100], 100), &m),
        [(0x1000, 4)]
    );
    assert!(ok(&call(sendfile, &[4, 3, 0x1000, 100], -75), &m).is_empty());
    let c = crate::x86_64_call(&call(sendfile, &[4, 3, 0x1000, 100], 100));
    assert_eq!((c.nr, c.args[0]), (libc::SYS_sendfile, 4));
    let sendfile64 = crate::compat_nr(239);
    assert_eq!(
        crate::x86_64_equivalent(sendfile64),
        Some(libc::SYS_sendfile)
    );
    assert_eq!(
        ok(&call(sendfile64, &[4, 3, 0x1000, 100], 100), &m),
        [(0x1000, 8)]
    );
    // vmsplice (316) and process_vm_readv (347): the bytes read scattered
    // over 8-byte compat_iovecs (process_vm_readv's local ones, its
    // second and third arguments); process_vm_writev (348) stays refused
    // (it writes another process's memory, which the recorder follows by
    // the x86-64 number only).
    let mut iov = FakeMem::default();
    for (i, (base, len)) in [(0x5000u32, 10u32), (0x6000, 20)].into_iter().enumerate() {
        iov.put_u32(0x400 + 8 * i as u64, base);
        iov.put_u32(0x404 + 8 * i as u64, len);
    }
    let vmsplice = crate::compat_nr(316);
    assert_eq!(crate::row_nr(vmsplice), libc::SYS_vmsplice);
    assert_eq!(
        ok(&call(vmsplice, &[3, 0x400, 2, 0], 25), &iov),
        [(0x5000, 10), (0x6000, 15)]
    );
    assert!(ok(&call(vmsplice, &[3, 0x400, 2, 0], -11), &iov).is_empty());
    let readv = crate::compat_nr(347);
    assert_eq!(crate::row_nr(readv), libc::SYS_process_vm_readv);
    assert_eq!(
        ok(&call(readv, &[77, 0x400, 2, 0x900, 1, 0], 30), &iov),
        [(0x5000, 10), (0x6000, 20)]
    );
    assert!(crate::lookup(crate::compat_nr(348)).is_none());
    assert_eq!(
        crate::name(crate::compat_nr(348)),
        "i386 process_vm_writev (int $0x80 #348)"
    );
    // The old fcntl (55): the i386 table serves it with compat_sys_fcntl64
    // (not compat_sys_fcntl, which fails the 64-bit locks with EINVAL):
    // F_GETLK stores the 16-byte compat_flock, F_GETLK64 and F_OFD_GETLK
    // the packed 24-byte compat_flock64; other commands are refused, named.
    let fcntl = crate::compat_nr(55);
    assert_eq!(crate::row_nr(fcntl), libc::SYS_fcntl);
    assert_eq!(
        ok(&call(fcntl, &[3, libc::F_GETLK as u64, 0x1000], 0), &m),
        [(0x1000, 16)]
    );
    for cmd in [12, libc::F_OFD_GETLK] {
        assert_eq!(
            ok(&call(fcntl, &[3, cmd as u64, 0x1000], 0), &m),
            [(0x1000, 24)],
            "{cmd}"
        );
    }
    for cmd in [13, 14, libc::F_OFD_SETLK, libc::F_OFD_SETLKW] {
        assert!(
            ok(&call(fcntl, &[3, cmd as u64, 0x1000], 0), &m).is_empty(),
            "{cmd}"
        );
    }
    assert!(ok(&call(fcntl, &[3, libc::F_DUPFD as u64, 10], 10), &m).is_empty());
    // The others are do_fcntl's, as for the x86-64 call: pipe sizes, seals,
    // leases and notifications write nothing, F_GETOWN_EX its f_owner_ex,
    // the write-hint queries a u64.
    for cmd in [1031, 1032, 1033, 1034, 1024, 1025, 1026, 1036] {
        assert!(
            ok(&call(fcntl, &[3, cmd, 0x1000], 0), &m).is_empty(),
            "{cmd}"
        );
    }
    assert_eq!(ok(&call(fcntl, &[3, 16, 0x1000], 0), &m), [(0x1000, 8)]);
    assert_eq!(ok(&call(fcntl, &[3, 1035, 0x1000], 0), &m), [(0x1000, 8)]);
    let e = regions(&call(fcntl, &[3, 4242, 0], 1), &m).unwrap_err();
    assert!(
        e.0.contains("i386 fcntl (int $0x80 #55): command 4242 is not described"),
        "{e}"
    );
    // socketcall (102: its arguments an array the kernel reads at the
    // entry) has a row of its own (see
    // compat_socketcall_is_described_by_the_words_read_at_its_entry).
    assert!(crate::lookup(crate::compat_nr(102)).is_some());
    assert_eq!(
        crate::name(crate::compat_nr(102)),
        "i386 socketcall (int $0x80 #102)"
    );
}

#[test]
fn compat_rows_describe_rt_sigtimedwait() {
    let m = FakeMem::default();
    // rt_sigtimedwait (177, a 32-bit timespec) and rt_sigtimedwait_time64
    // (421): the 128-byte compat_siginfo at the second argument when a
    // signal was taken; nothing on EAGAIN, EINTR or EINVAL, nor for a
    // null siginfo. They mean the x86-64 rt_sigtimedwait and may block.
    assert_eq!(crate::compat_rows::COMPAT_SIGINFO, 128);
    for n in [177, 421] {
        let nr = crate::compat_nr(n);
        assert_eq!(crate::row_nr(nr), libc::SYS_rt_sigtimedwait, "{n}");
        assert!(crate::lookup(nr).is_some_and(|d| d.may_block), "{n}");
        assert!(crate::name(nr).contains("rt_sigtimedwait"), "{n}");
        assert_eq!(
            ok(&call(nr, &[0x1000, 0x2000, 0x3000, 8], 10), &m),
            [(0x2000, 128)],
            "{n}"
        );
        assert!(ok(&call(nr, &[0x1000, 0, 0x3000, 8], 10), &m).is_empty());
        for err in [-11, -4, -22] {
            assert!(
                ok(&call(nr, &[0x1000, 0x2000, 0x3000, 8], err), &m).is_empty(),
                "{n} {err}"
            );
        }
    }
}

#[test]
fn compat_socket_calls_are_the_x86_64_ones_but_sendmsg_and_recvmsg() {
    use crate::compat_rows::{compat_msghdr as h, COMPAT_MSGHDR};
    let mut m = FakeMem::default();
    // The calls of their own numbers the i386 table serves with the
    // x86-64 sys_* entries (recvfrom: compat_sys_recvfrom, the same
    // arguments; getsockopt and setsockopt: the kernel's own compat
    // handling stores the length of what it wrote at *optlen).
    for (i386, x86_64) in [
        (359, libc::SYS_socket),
        (360, libc::SYS_socketpair),
        (361, libc::SYS_bind),
        (362, libc::SYS_connect),
        (363, libc::SYS_listen),
        (364, libc::SYS_accept4),
        (365, libc::SYS_getsockopt),
        (366, libc::SYS_setsockopt),
        (367, libc::SYS_getsockname),
        (368, libc::SYS_getpeername),
        (369, libc::SYS_sendto),
        (371, libc::SYS_recvfrom),
        (373, libc::SYS_shutdown),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), Some(x86_64), "{i386}");
        assert_eq!(crate::lookup(nr).map(|d| d.nr), Some(x86_64), "{i386}");
    }
    // socketpair: two ints; accept4: the address and its length.
    m.put_u32(0x1100, 19);
    assert_eq!(
        ok(&call(crate::compat_nr(360), &[1, 1, 0, 0x1000], 0), &m),
        [(0x1000, 8)]
    );
    assert_eq!(
        ok(&call(crate::compat_nr(364), &[3, 0x1200, 0x1100, 0], 5), &m),
        [(0x1100, 4), (0x1200, 19)]
    );
    // getsockopt: *optlen and that many bytes (an 8-byte old_timeval32 of
    // SO_RCVTIMEO_OLD for a 32-bit caller), and the length needed on
    // ERANGE, kept on failure.
    m.put_u32(0x1300, 8);
    let getsockopt = crate::compat_nr(365);
    assert_eq!(
        ok(&call(getsockopt, &[3, 1, 20, 0x1400, 0x1300], 0), &m),
        [(0x1300, 4), (0x1400, 8)]
    );
    assert!(crate::writes_on_failure(getsockopt));
    assert_eq!(
        ok(&call(getsockopt, &[3, 1, 59, 0x1400, 0x1300], -34), &m),
        [(0x1300, 4)]
    );
    // sendmsg reads its compat_msghdr only; recvmsg (compat_sys_recvmsg)
    // stores through it.
    assert_eq!(COMPAT_MSGHDR, 28);
    assert_eq!(
        (
            h::NAME,
            h::NAMELEN,
            h::IOV,
            h::IOVLEN,
            h::CONTROL,
            h::CONTROLLEN,
            h::FLAGS
        ),
        (0, 4, 8, 12, 16, 20, 24)
    );
    assert!(ok(&call(crate::compat_nr(370), &[3, 0x2000, 0], 30), &m).is_empty());
    assert_eq!(crate::row_nr(crate::compat_nr(370)), libc::SYS_sendmsg);
    let recvmsg = crate::compat_nr(372);
    assert_eq!(crate::row_nr(recvmsg), libc::SYS_recvmsg);
    let hdr = 0x2000;
    for (off, v) in [
        (h::NAME, 0x3000u32),
        (h::NAMELEN, 20),
        (h::IOV, 0x400),
        (h::IOVLEN, 2),
        (h::CONTROL, 0x3800),
        (h::CONTROLLEN, 16),
        (h::FLAGS, 0),
    ] {
        m.put_u32(hdr + off, v);
    }
    for (i, (base, len)) in [(0x5000u32, 10u32), (0x6000, 20)].into_iter().enumerate() {
        m.put_u32(0x400 + 8 * i as u64, base);
        m.put_u32(0x404 + 8 * i as u64, len);
    }
    assert_eq!(
        ok(&call(recvmsg, &[3, hdr, 0], 25), &m),
        [
            (hdr + 4, 4),
            (0x3000, 20),
            (0x5000, 10),
            (0x6000, 15),
            (0x3800, 16),
            (hdr + 20, 4),
            (hdr + 24, 4)
        ]
    );
    // No name, no control: the data and the two stored fields.
    m.put_u32(hdr + h::NAME, 0);
    m.put_u32(hdr + h::CONTROL, 0);
    assert_eq!(
        ok(&call(recvmsg, &[3, hdr, 0], 5), &m),
        [(0x5000, 5), (hdr + 20, 4), (hdr + 24, 4)]
    );
    assert!(ok(&call(recvmsg, &[3, hdr, 0], -11), &m).is_empty());
}

#[test]
fn compat_socketcall_is_described_by_the_words_read_at_its_entry() {
    let socketcall = crate::compat_nr(102);
    // The kernel's table of words per sub-call (net/compat.c), SYS_SOCKET
    // 1 to SYS_SENDMMSG 20.
    assert_eq!(
        crate::compat::SOCKETCALL_WORDS,
        [0, 3, 3, 3, 2, 3, 3, 3, 4, 4, 4, 6, 6, 2, 5, 5, 3, 3, 4, 5, 4]
    );
    let mut m = FakeMem::default();
    // SYS_RECVFROM (12): six words at 0x100, packed two to an argument,
    // the count last; the registers past the pointer are not kept.
    for (i, w) in [3u32, 0x2000, 64, 0, 0x3000, 0x3100]
        .into_iter()
        .enumerate()
    {
        m.put_u32(0x100 + 4 * i as u64, w);
    }
    let args = crate::entry_args(&m, socketcall, [12, 0x100, 7, 7, 7, 7]);
    assert_eq!(
        args,
        [12, 0x100, 0x2000 << 32 | 3, 64, 0x3100 << 32 | 0x3000, 6]
    );
    // Described as the i386 recvfrom (371) of those words: the address's
    // length and address, the bytes received.
    m.put_u32(0x3100, 20);
    let c = Call {
        nr: socketcall,
        args,
        ret: 10,
    };
    let sub = crate::socketcall_sub(&c).expect("a sub-call");
    assert_eq!(
        (sub.nr, sub.args, sub.ret),
        (
            crate::compat_nr(371),
            [3, 0x2000, 64, 0, 0x3000, 0x3100],
            10
        )
    );
    let mut want = ok(&sub, &m);
    want.sort_unstable();
    let mut got = ok(&c, &m);
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(got, [(0x2000, 10), (0x3000, 20), (0x3100, 4)]);
    // Words read at the entry, not at the exit: memory changed after the
    // entry (the call's own output over its words) does not change it.
    m.put_u32(0x104, 0x4141_4141);
    assert_eq!(ok(&c, &m).len(), 3);
    assert!(ok(&c, &m).iter().any(|&(a, _)| a == 0x2000));

    // Described (info --events, replay's divergences) as its sub-call.
    assert_eq!(
        crate::describe(&c),
        "i386 socketcall (int $0x80 #102)(SYS_RECVFROM, 0x100: i386 recvfrom (int $0x80 #371)(0x3, 0x2000, 0x40, 0x0, 0x3000, 0x3100)) = 10"
    );
    // Each sub-call as the call of its own number, with its words.
    let words = |sub: u64, n: usize| {
        let mut mm = FakeMem::default();
        for i in 0..n {
            mm.put_u32(0x100 + 4 * i as u64, 10 + i as u32);
        }
        let c = Call {
            nr: socketcall,
            args: crate::entry_args(&mm, socketcall, [sub, 0x100, 0, 0, 0, 0]),
            ret: 0,
        };
        crate::socketcall_sub(&c).map(|s| (s.nr as u32, s.args))
    };
    assert_eq!(words(1, 3), Some((359, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(2, 3), Some((361, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(3, 3), Some((362, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(4, 2), Some((363, [10, 11, 0, 0, 0, 0])));
    // SYS_ACCEPT: accept4 with no flags.
    assert_eq!(words(5, 3), Some((364, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(6, 3), Some((367, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(7, 3), Some((368, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(8, 4), Some((360, [10, 11, 12, 13, 0, 0])));
    // SYS_SEND, SYS_RECV: sendto and recvfrom with no address.
    assert_eq!(words(9, 4), Some((369, [10, 11, 12, 13, 0, 0])));
    assert_eq!(words(10, 4), Some((371, [10, 11, 12, 13, 0, 0])));
    assert_eq!(words(11, 6), Some((369, [10, 11, 12, 13, 14, 15])));
    assert_eq!(words(12, 6), Some((371, [10, 11, 12, 13, 14, 15])));
    assert_eq!(words(13, 2), Some((373, [10, 11, 0, 0, 0, 0])));
    assert_eq!(words(14, 5), Some((366, [10, 11, 12, 13, 14, 0])));
    assert_eq!(words(15, 5), Some((365, [10, 11, 12, 13, 14, 0])));
    assert_eq!(words(16, 3), Some((370, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(17, 3), Some((372, [10, 11, 12, 0, 0, 0])));
    assert_eq!(words(18, 4), Some((364, [10, 11, 12, 13, 0, 0])));
    // recvmmsg (a 32-bit timespec), sendmmsg; no sub-call; words not
    // there.
    assert_eq!(words(19, 5), Some((337, [10, 11, 12, 13, 14, 0])));
    assert_eq!(words(20, 4), Some((345, [10, 11, 12, 13, 0, 0])));
    assert_eq!(words(0, 6), None);
    assert_eq!(words(21, 6), None);
    assert_eq!(words(11, 5), None);
    assert_eq!(
        crate::entry_args(&FakeMem::default(), socketcall, [1, 0x100, 5, 5, 5, 5]),
        [1, 0x100, 0, 0, 0, 0]
    );
    // Kept on failure as the sub-call's row keeps it: getsockopt's length
    // on ERANGE; a failed recv wrote nothing; a failed call of no words
    // wrote nothing; one that succeeded is refused, named.
    assert!(crate::writes_on_failure(socketcall));
    let mut g = FakeMem::default();
    for (i, w) in [3u32, 1, 59, 0x1400, 0x1300].into_iter().enumerate() {
        g.put_u32(0x100 + 4 * i as u64, w);
    }
    let getsockopt = |ret| Call {
        nr: socketcall,
        args: crate::entry_args(&g, socketcall, [15, 0x100, 0, 0, 0, 0]),
        ret,
    };
    assert_eq!(ok(&getsockopt(-34), &g), [(0x1300, 4)]);
    assert!(ok(&call(socketcall, &[12, 0x100, 0, 0, 0, 6], -11), &m).is_empty());
    assert!(ok(&call(socketcall, &[0, 0x100], -22), &m).is_empty());
    let e = regions(&call(socketcall, &[19, 0x100, 0, 0, 0, 0], 1), &m).unwrap_err();
    assert!(e.0.contains("SYS_RECVMMSG succeeded"), "{}", e.0);
    // A 64-bit call's arguments are its registers.
    assert_eq!(
        crate::entry_args(&m, libc::SYS_socket, [1, 0x100, 7, 7, 7, 7]),
        [1, 0x100, 7, 7, 7, 7]
    );
}

#[test]
fn compat_old_mmap_is_the_mmap_its_struct_read_at_the_entry_means() {
    let old_mmap = crate::compat_nr(90);
    assert_eq!(
        crate::lookup(old_mmap).map(|d| d.replay),
        Some(ReplayAction::Mmap)
    );
    let mut m = FakeMem::default();
    // struct mmap_arg_struct32: addr, len, prot, flags, fd, offset (bytes).
    for (i, w) in [0x5000_0000u32, 8192, 3, 2, u32::MAX, 4096]
        .into_iter()
        .enumerate()
    {
        m.put_u32(0x100 + 4 * i as u64, w);
    }
    let args = crate::entry_args(&m, old_mmap, [0x100, 9, 9, 9, 9, 9]);
    assert_eq!(
        args,
        [
            0x100,
            8192 << 32 | 0x5000_0000,
            2 << 32 | 3,
            4096 << 32 | 0xffff_ffff,
            6,
            0
        ]
    );
    let c = Call {
        nr: old_mmap,
        args,
        ret: 0x5000_0000,
    };
    let x = crate::x86_64_call(&c);
    assert_eq!(
        (x.nr, x.args, x.ret),
        (
            libc::SYS_mmap,
            [0x5000_0000, 8192, 3, 2, u64::MAX, 4096],
            0x5000_0000
        )
    );
    // No memory written; one that succeeded with no struct read is refused.
    assert!(ok(&c, &m).is_empty());
    let unread = crate::entry_args(&FakeMem::default(), old_mmap, [0x100, 9, 9, 9, 9, 9]);
    assert_eq!(unread, [0x100, 0, 0, 0, 0, 0]);
    assert!(ok(&call(old_mmap, &unread, -14), &m).is_empty());
    assert!(regions(&call(old_mmap, &unread, 0x5000_0000), &m).is_err());
    assert_eq!(
        crate::x86_64_call(&call(old_mmap, &unread, -14)).nr,
        old_mmap
    );
}

#[test]
fn compat_message_queue_calls_are_the_x86_64_ones_but_their_structures() {
    let m = FakeMem::default();
    // mq_unlink and the _time64 send and receive are the x86-64 sys_*
    // entries; the send and receive of 32-bit timespecs only read them.
    for (i386, x86_64) in [
        (278, libc::SYS_mq_unlink),
        (279, libc::SYS_mq_timedsend),
        (280, libc::SYS_mq_timedreceive),
        (418, libc::SYS_mq_timedsend),
        (419, libc::SYS_mq_timedreceive),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), Some(x86_64), "{i386}");
        assert_eq!(crate::lookup(nr).map(|d| d.nr), Some(x86_64), "{i386}");
        assert!(crate::name(nr).starts_with("i386 mq_"), "{i386}");
    }
    // The receives: the message (as many bytes as returned) and the
    // 4-byte priority; nothing on ETIMEDOUT; they may block.
    for n in [280, 419] {
        let nr = crate::compat_nr(n);
        assert!(crate::lookup(nr).is_some_and(|d| d.may_block), "{n}");
        assert_eq!(
            ok(&call(nr, &[3, 0x1000, 64, 0x2000, 0x3000], 5), &m),
            [(0x1000, 5), (0x2000, 4)],
            "{n}"
        );
        assert_eq!(
            ok(&call(nr, &[3, 0x1000, 64, 0, 0x3000], 4), &m),
            [(0x1000, 4)]
        );
        assert!(ok(&call(nr, &[3, 0x1000, 64, 0x2000, 0x3000], -110), &m).is_empty());
    }
    // mq_open and mq_notify only read their i386 structures; mq_getsetattr
    // stores a 32-byte compat_mq_attr of eight 32-bit longs on success.
    assert_eq!(crate::compat_rows::COMPAT_MQ_ATTR, 32);
    for (i386, x86_64) in [
        (277, libc::SYS_mq_open),
        (281, libc::SYS_mq_notify),
        (282, libc::SYS_mq_getsetattr),
    ] {
        let nr = crate::compat_nr(i386);
        assert_eq!(crate::x86_64_equivalent(nr), None, "{i386}");
        assert_eq!(crate::row_nr(nr), x86_64, "{i386}");
        assert_eq!(crate::lookup(nr).map(|d| d.nr), Some(nr), "{i386}");
    }
    let open = crate::compat_nr(277);
    assert!(ok(&call(open, &[0x1000, 0o102, 0o600, 0x2000], 3), &m).is_empty());
    let notify = crate::compat_nr(281);
    assert!(ok(&call(notify, &[3, 0x2000], 0), &m).is_empty());
    let getsetattr = crate::compat_nr(282);
    assert_eq!(
        ok(&call(getsetattr, &[3, 0x1000, 0x2000], 0), &m),
        [(0x2000, 32)]
    );
    assert!(ok(&call(getsetattr, &[3, 0x1000, 0], 0), &m).is_empty());
    assert!(ok(&call(getsetattr, &[3, 0x1000, 0x2000], -9), &m).is_empty());
    assert_eq!(
        crate::name(getsetattr),
        "i386 mq_getsetattr (int $0x80 #282)"
    );
}

#[test]
fn compat_sysv_semaphores_and_messages_have_the_i386_layouts() {
    use crate::compat_rows::{
        COMPAT_IPC64_PERM, COMPAT_IPC_PERM, COMPAT_MSQID64_DS, COMPAT_MSQID_DS, COMPAT_SEMID64_DS,
        COMPAT_SEMID_DS,
    };
    assert_eq!(COMPAT_IPC64_PERM, 36);
    assert_eq!(COMPAT_SEMID64_DS, 64);
    assert_eq!(COMPAT_MSQID64_DS, 88);
    assert_eq!(COMPAT_IPC_PERM, 16);
    assert_eq!(COMPAT_SEMID_DS, 44);
    assert_eq!(COMPAT_MSQID_DS, 56);
    let m = SysvTables(FakeMem::default());
    let nr = crate::compat_nr;
    let regions = |c: &Call| -> Result<Vec<(u64, usize)>, Unsupported> {
        let mut out = Vec::new();
        (crate::lookup(c.nr).expect("described").outputs)(c, &m, &mut out)?;
        Ok(out.into_iter().map(|r| (r.addr, r.len)).collect())
    };
    let ok = |c: &Call| regions(c).expect("supported");
    // semget, msgget and semtimedop_time64 are the x86-64 calls.
    for (i386, x86_64) in [
        (393, libc::SYS_semget),
        (399, libc::SYS_msgget),
        (420, libc::SYS_semtimedop),
    ] {
        assert_eq!(crate::x86_64_equivalent(nr(i386)), Some(x86_64), "{i386}");
    }
    // semctl, msgsnd, msgrcv, msgctl: rows of their own meaning the
    // x86-64 calls.
    for (i386, x86_64) in [
        (394, libc::SYS_semctl),
        (400, libc::SYS_msgsnd),
        (401, libc::SYS_msgrcv),
        (402, libc::SYS_msgctl),
    ] {
        assert_eq!(crate::x86_64_equivalent(nr(i386)), None, "{i386}");
        assert_eq!(crate::row_nr(nr(i386)), x86_64, "{i386}");
        assert_eq!(crate::lookup(nr(i386)).map(|d| d.nr), Some(nr(i386)));
    }
    let semctl = |cmd: i32, ret| call(nr(394), &[5, 0, cmd as u64, 0x1000], ret);
    assert_eq!(ok(&semctl(libc::IPC_STAT, 0)), [(0x1000, 64)]);
    // The call of its own number: the 64-bit layout, IPC_64 or not.
    assert_eq!(ok(&semctl(libc::IPC_STAT | 0x100, 5)), [(0x1000, 64)]);
    assert_eq!(ok(&semctl(libc::SEM_INFO, 3)), [(0x1000, 40)]);
    assert_eq!(ok(&semctl(libc::GETALL, 0)), [(0x1000, 6)]);
    assert!(ok(&semctl(libc::SETALL, 0)).is_empty());
    assert!(ok(&semctl(libc::IPC_STAT, -22)).is_empty());
    assert!(regions(&semctl(99, 0))
        .unwrap_err()
        .0
        .contains("semctl command 99"));
    assert!(ok(&call(nr(400), &[5, 0x1000, 5, 0], 0)).is_empty());
    // msgrcv: the 32-bit mtype and the text returned.
    assert_eq!(
        ok(&call(nr(401), &[5, 0x1000, 28, 0, 0], 5)),
        [(0x1000, 4 + 5)]
    );
    assert!(ok(&call(nr(401), &[5, 0x1000, 2, 0, 0], -7)).is_empty());
    assert_eq!(
        ok(&call(nr(402), &[5, libc::IPC_STAT as u64, 0x1000], 0)),
        [(0x1000, 88)]
    );
    assert_eq!(
        ok(&call(nr(402), &[0, libc::MSG_INFO as u64, 0x1000], 3)),
        [(0x1000, 32)]
    );
    assert!(ok(&call(nr(402), &[5, libc::IPC_SET as u64, 0x1000], 0)).is_empty());
    // The 32-bit shared memory calls are named by their i386 numbers
    // (their rows: compat_sysv_shared_memory_has_the_i386_layouts).
    for (n, name) in [
        (395, "shmget"),
        (396, "shmctl"),
        (397, "shmat"),
        (398, "shmdt"),
    ] {
        assert_eq!(crate::name(nr(n)), format!("i386 {name} (int $0x80 #{n})"));
    }
}

/// The protection replay gives an attach's mapping, by its meaning for
/// the x86-64 `shmat`, the i386 one (397) and `ipc`'s `SHMAT`.
#[test]
fn shm_attach_protection_follows_its_flags() {
    use crate::ShmOp;
    let nr = crate::compat_nr;
    let ipc = nr(117);
    let (r, w, x) = (libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC);
    // The protection of a read-only or executable attach (the kernel's
    // do_shmat: SHM_RDONLY reads only, SHM_EXEC adds PROT_EXEC), from
    // shmat's third argument and SHMAT's second; SHM_RND does not count.
    let (ro, ex) = (libc::SHM_RDONLY as u64, libc::SHM_EXEC as u64);
    for (flags, prot) in [
        (ro, r),
        (ex, r | w | x),
        (ro | ex, r | x),
        (libc::SHM_RND as u64, r | w),
    ] {
        let want = |stored_at| {
            Some(ShmOp::Attach {
                shmid: 7,
                stored_at,
                prot,
            })
        };
        assert_eq!(
            crate::shm_op(libc::SYS_shmat, &[7, 0, flags, 0, 0, 0]),
            want(None),
            "{flags:#o}"
        );
        assert_eq!(
            crate::shm_op(nr(397), &[7, 0, flags, 0, 0, 0]),
            want(None),
            "{flags:#o}"
        );
        assert_eq!(
            crate::shm_op(ipc, &[21, 7, flags, 0x100, 0, 0]),
            want(Some(0x100)),
            "{flags:#o}"
        );
    }
}

#[test]
fn compat_sysv_shared_memory_has_the_i386_layouts() {
    use crate::compat_rows::{
        COMPAT_SHMID64_DS, COMPAT_SHMID_DS, COMPAT_SHMINFO, COMPAT_SHMINFO64, COMPAT_SHM_INFO,
    };
    use crate::ShmOp;
    assert_eq!(COMPAT_SHMID64_DS, 84);
    assert_eq!(COMPAT_SHMID_DS, 48);
    assert_eq!(COMPAT_SHMINFO64, 36);
    assert_eq!(COMPAT_SHMINFO, 20);
    assert_eq!(COMPAT_SHM_INFO, 24);
    let mut fm = FakeMem::default();
    fm.put_u32(0x100, 0x5000_0000); // where ipc's SHMAT stored the address
    let m = SysvTables(fm);
    let nr = crate::compat_nr;
    let ipc = nr(117);
    let regions = |c: &Call| -> Result<Vec<(u64, usize)>, Unsupported> {
        let mut out = Vec::new();
        (crate::lookup(c.nr).expect("described").outputs)(c, &m, &mut out)?;
        Ok(out.into_iter().map(|r| (r.addr, r.len)).collect())
    };
    let ok = |c: &Call| regions(c).expect("supported");
    // shmget, shmat and shmdt are the x86-64 calls; shmctl a row of its
    // own meaning the x86-64 one.
    for (i386, x86_64) in [
        (395, libc::SYS_shmget),
        (397, libc::SYS_shmat),
        (398, libc::SYS_shmdt),
    ] {
        assert_eq!(crate::x86_64_equivalent(nr(i386)), Some(x86_64), "{i386}");
    }
    assert_eq!(crate::x86_64_equivalent(nr(396)), None);
    assert_eq!(crate::row_nr(nr(396)), libc::SYS_shmctl);
    assert_eq!(crate::lookup(nr(396)).map(|d| d.nr), Some(nr(396)));
    // shmat: segment 7's 8 KiB at the address returned, below 4 GiB.
    assert_eq!(
        ok(&call(nr(397), &[7, 0, 0], 0x4000_0000)),
        [(0x4000_0000, 8192)]
    );
    // Read-only and executable attaches alike.
    for flags in [libc::SHM_RDONLY, libc::SHM_RDONLY | libc::SHM_EXEC] {
        assert_eq!(
            ok(&call(nr(397), &[7, 0, flags as u64], 0x4000_0000)),
            [(0x4000_0000, 8192)]
        );
    }
    assert!(ok(&call(nr(398), &[0x4000_0000], 0)).is_empty());
    // shmctl of its own number: the 64-bit structures, IPC_64 or not.
    let shmctl = |cmd: i32, ret| call(nr(396), &[7, cmd as u64, 0x1000], ret);
    assert_eq!(ok(&shmctl(libc::IPC_STAT, 0)), [(0x1000, 84)]);
    assert_eq!(ok(&shmctl(libc::IPC_STAT | 0x100, 0)), [(0x1000, 84)]);
    assert_eq!(ok(&shmctl(13 /* SHM_STAT */, 7)), [(0x1000, 84)]);
    assert_eq!(ok(&shmctl(libc::IPC_INFO, 1)), [(0x1000, 36)]);
    assert_eq!(ok(&shmctl(14 /* SHM_INFO */, 1)), [(0x1000, 24)]);
    assert!(ok(&shmctl(libc::IPC_RMID, 0)).is_empty());
    assert!(ok(&shmctl(libc::IPC_STAT, -22)).is_empty());
    assert!(regions(&shmctl(99, 0))
        .unwrap_err()
        .0
        .contains("shmctl command 99"));
    // ipc's SHMAT: the 32-bit word at third and the segment it names;
    // refused when that word cannot be read back; nothing when it failed.
    assert_eq!(
        ok(&call(ipc, &[21, 7, 0, 0x100, 0, 0], 0)),
        [(0x100, 4), (0x5000_0000, 8192)]
    );
    assert!(regions(&call(ipc, &[21, 7, 0, 0x9000, 0, 0], 0))
        .unwrap_err()
        .0
        .contains("SHMAT"));
    assert!(ok(&call(ipc, &[21 | 1 << 16, 7, 0, 0x100, 0, 0], -22)).is_empty());
    assert_eq!(
        ok(&call(
            ipc,
            &[21, 7, libc::SHM_RDONLY as u64, 0x100, 0, 0],
            0
        )),
        [(0x100, 4), (0x5000_0000, 8192)]
    );
    // SHMDT and SHMGET: nothing; SHMCTL: the old structures without
    // IPC_64.
    assert!(ok(&call(ipc, &[22, 0, 0, 0, 0x5000_0000, 0], 0)).is_empty());
    assert!(ok(&call(ipc, &[23, 0, 4096, 0o1600, 0, 0], 7)).is_empty());
    let shmctl = |cmd: i32| call(ipc, &[24, 7, cmd as u64, 0, 0x2000, 0], 0);
    assert_eq!(ok(&shmctl(libc::IPC_STAT | 0x100)), [(0x2000, 84)]);
    assert_eq!(ok(&shmctl(libc::IPC_STAT)), [(0x2000, 48)]);
    assert_eq!(ok(&shmctl(libc::IPC_INFO | 0x100)), [(0x2000, 36)]);
    assert_eq!(ok(&shmctl(libc::IPC_INFO)), [(0x2000, 20)]);
    assert_eq!(ok(&shmctl(14 /* SHM_INFO */)), [(0x2000, 24)]);
    assert!(ok(&shmctl(libc::IPC_RMID)).is_empty());
    // The attaches and detaches by their meaning.
    let (r, w) = (libc::PROT_READ, libc::PROT_WRITE);
    let attach = |shmid, stored_at| {
        Some(ShmOp::Attach {
            shmid,
            stored_at,
            prot: r | w,
        })
    };
    assert_eq!(
        crate::shm_op(libc::SYS_shmat, &[7, 0, 0, 0, 0, 0]),
        attach(7, None)
    );
    assert_eq!(crate::shm_op(nr(397), &[7, 0, 0, 0, 0, 0]), attach(7, None));
    assert_eq!(
        crate::shm_op(ipc, &[21, 7, 0, 0x100, 0, 0]),
        attach(7, Some(0x100))
    );
    assert_eq!(
        crate::shm_op(ipc, &[21 | 2 << 16, 7, 0, 0x100, 0, 0]),
        attach(7, Some(0x100))
    );
    assert_eq!(crate::shm_op(ipc, &[21 | 1 << 16, 7, 0, 0x100, 0, 0]), None);
    let detach = |addr| Some(ShmOp::Detach { addr });
    assert_eq!(
        crate::shm_op(libc::SYS_shmdt, &[0x7000, 0, 0, 0, 0, 0]),
        detach(0x7000)
    );
    assert_eq!(
        crate::shm_op(nr(398), &[0x7000, 0, 0, 0, 0, 0]),
        detach(0x7000)
    );
    assert_eq!(
        crate::shm_op(ipc, &[22, 0, 0, 0, 0x7000, 0]),
        detach(0x7000)
    );
    for (n, args) in [
        (ipc, [23, 0, 4096, 0, 0, 0]),
        (ipc, [3, 7, 0, 0, 0x100, 0]),
        (nr(396), [7, 0, 0, 0, 0, 0]),
        (libc::SYS_shmctl, [7, 0, 0, 0, 0, 0]),
        // 30 and 67 are not the i386 shmat and shmdt.
        (nr(30), [7, 0, 0, 0, 0, 0]),
        (nr(67), [7, 0, 0, 0, 0, 0]),
    ] {
        assert_eq!(crate::shm_op(n, &args), None, "{n:#x} {args:?}");
    }
}

#[test]
fn compat_ipc_is_described_by_its_sub_call_and_the_words_read_at_its_entry() {
    let ipc = crate::compat_nr(117);
    assert_eq!(crate::name(ipc), "i386 ipc (int $0x80 #117)");
    let mut fm = FakeMem::default();
    fm.put_u32(0x100, 0x2000); // a union semun: the pointer
    fm.put_u32(0x200, 0x3000); // a compat_ipc_kludge: msgp
    fm.put_u32(0x204, 7); //     and msgtyp
    let m = SysvTables(fm);
    let read = crate::compat::IPC_WORDS_READ;
    // SEMCTL: the semun word in the sixth argument; MSGRCV of version 0:
    // the kludge's msgp and msgtyp; other sub-calls and versions as they
    // are; nothing read from a null or unreadable pointer.
    let semctl = crate::entry_args(&m, ipc, [3, 5, 0, 2, 0x100, 9]);
    assert_eq!(semctl, [3 | read, 5, 0, 2, 0x100, 0x2000]);
    let rcv = crate::entry_args(&m, ipc, [12, 5, 28, 0, 0x200, 9]);
    assert_eq!(rcv, [12 | read, 5, 28, 0, 0x200, 7 << 32 | 0x3000]);
    let rcv1 = [12 | 1 << 16, 5, 28, 0, 0x3000, 0];
    assert_eq!(crate::entry_args(&m, ipc, rcv1), rcv1);
    for args in [
        [3, 5, 0, 2, 0, 9],
        [3, 5, 0, 2, 0x9000, 9],
        [14, 5, 2, 0, 0x100, 9],
    ] {
        assert_eq!(crate::entry_args(&m, ipc, args), args);
    }
    let regions = |c: &Call| -> Result<Vec<(u64, usize)>, Unsupported> {
        let mut out = Vec::new();
        (crate::lookup(c.nr).expect("described").outputs)(c, &m, &mut out)?;
        Ok(out.into_iter().map(|r| (r.addr, r.len)).collect())
    };
    let ok = |c: &Call| regions(c).expect("supported");
    assert!(crate::lookup(ipc).is_some_and(|d| d.may_block));
    // SEMCTL IPC_STAT with IPC_64: the compat_semid64_ds at the semun's
    // pointer; without: the old compat_semid_ds; GETALL of set 5.
    let stat64 = [
        3 | read,
        5,
        0,
        (libc::IPC_STAT | 0x100) as u64,
        0x100,
        0x2000,
    ];
    assert_eq!(ok(&call(ipc, &stat64, 0)), [(0x2000, 64)]);
    let stat = [3 | read, 5, 0, libc::IPC_STAT as u64, 0x100, 0x2000];
    assert_eq!(ok(&call(ipc, &stat, 0)), [(0x2000, 44)]);
    let getall = [3 | read, 5, 0, libc::GETALL as u64, 0x100, 0x2000];
    assert_eq!(ok(&call(ipc, &getall, 0)), [(0x2000, 6)]);
    // One that succeeded with no word read is refused; failures write
    // nothing.
    let unread = [3, 5, 0, libc::IPC_STAT as u64, 0x100, 0];
    assert!(regions(&call(ipc, &unread, 0))
        .unwrap_err()
        .0
        .contains("SEMCTL"));
    assert!(ok(&call(ipc, &unread, -14)).is_empty());
    // MSGRCV: version 0 at the kludge's msgp, version 1 at ptr.
    assert_eq!(ok(&call(ipc, &rcv, 4)), [(0x3000, 8)]);
    assert_eq!(ok(&call(ipc, &rcv1, 3)), [(0x3000, 7)]);
    assert!(ok(&call(ipc, &rcv, -42)).is_empty());
    // MSGCTL: the 64-bit layout with IPC_64, the old one without.
    let msgctl = |cmd: i32| call(ipc, &[14, 5, cmd as u64, 0, 0x4000, 0], 0);
    assert_eq!(ok(&msgctl(libc::IPC_STAT | 0x100)), [(0x4000, 88)]);
    assert_eq!(ok(&msgctl(libc::IPC_STAT)), [(0x4000, 56)]);
    assert!(ok(&msgctl(libc::IPC_RMID)).is_empty());
    // SEMOP, SEMTIMEDOP, SEMGET, MSGSND, MSGGET write nothing.
    for sub in [1, 2, 4, 11, 13] {
        assert!(
            ok(&call(ipc, &[sub, 5, 1, 0, 0x100, 0], 0)).is_empty(),
            "{sub}"
        );
    }
    // A sub-call not described that succeeded is refused, named.
    let err = regions(&call(ipc, &[99, 5, 0, 0, 0x100, 0], 0)).unwrap_err();
    assert!(err.0.contains("sub-call 99"), "{}", err.0);
    assert!(ok(&call(ipc, &[99, 5, 0, 0, 0x100, 0], -38)).is_empty());
}

#[test]
fn compat_mmsg_calls_have_32_byte_compat_mmsghdrs() {
    use crate::compat_rows::{compat_msghdr as h, COMPAT_MMSGHDR, COMPAT_MSGHDR};
    assert_eq!(COMPAT_MMSGHDR, 32);
    let mut m = FakeMem::default();
    // Two compat_mmsghdrs at 0x1000: no name, one 8-byte compat_iovec
    // each, no control; msg_len 4 and 11.
    for (i, (buf, cap, len)) in [(0x3000u32, 16u32, 4u32), (0x4000, 16, 11)]
        .into_iter()
        .enumerate()
    {
        let hdr = 0x1000 + i as u64 * COMPAT_MMSGHDR;
        let iov = 0x2000 + 8 * i as u64;
        for f in [h::NAME, h::NAMELEN, h::CONTROL, h::CONTROLLEN, h::FLAGS] {
            m.put_u32(hdr + f, 0);
        }
        m.put_u32(hdr + h::IOV, iov as u32);
        m.put_u32(hdr + h::IOVLEN, 1);
        m.put_u32(hdr + COMPAT_MSGHDR, len);
        m.put_u32(iov, buf);
        m.put_u32(iov + 4, cap);
    }
    for (n, ts) in [(337, 8), (417, 16)] {
        let nr = crate::compat_nr(n);
        assert_eq!(crate::row_nr(nr), libc::SYS_recvmmsg, "{n}");
        assert!(crate::lookup(nr).is_some_and(|d| d.may_block));
        let got = ok(&call(nr, &[3, 0x1000, 3, 0, 0x5000], 2), &m);
        assert_eq!(
            got,
            [
                (0x3000, 4),
                (0x1000 + h::CONTROLLEN, 4),
                (0x1000 + h::FLAGS, 4),
                (0x1000 + 28, 4),
                (0x4000, 11),
                (0x1020 + h::CONTROLLEN, 4),
                (0x1020 + h::FLAGS, 4),
                (0x1020 + 28, 4),
                (0x5000, ts),
            ],
            "{n}"
        );
        // None received, a failure: nothing; more than the vector: refused.
        assert!(ok(&call(nr, &[3, 0x1000, 3, 0, 0x5000], 0), &m).is_empty());
        assert!(ok(&call(nr, &[3, 0x1000, 3, 0, 0x5000], -11), &m).is_empty());
        assert!(regions(&call(nr, &[3, 0x1000, 1, 0, 0], 2), &m).is_err());
    }
    let send = crate::compat_nr(345);
    assert_eq!(crate::row_nr(send), libc::SYS_sendmmsg);
    assert_eq!(
        ok(&call(send, &[3, 0x1000, 3, 0], 2), &m),
        [(0x1000 + 28, 4), (0x1020 + 28, 4)]
    );
    assert!(ok(&call(send, &[3, 0x1000, 3, 0], -9), &m).is_empty());
}

#[test]
fn compat_signal_calls_have_the_i386_layouts() {
    use crate::compat_rows::{
        COMPAT_OLD_SIGACTION, COMPAT_OLD_SIGSET, COMPAT_SIGACTION, COMPAT_STACK_T,
    };
    // The kernel's compat structures: compat_sigaction (three 32-bit
    // pointers and flags, then the 8-byte sigset), compat_old_sigaction
    // (four 32-bit fields), compat_old_sigset_t, compat_stack_t.
    assert_eq!(COMPAT_SIGACTION, 20);
    assert_eq!(COMPAT_OLD_SIGACTION, 16);
    assert_eq!(COMPAT_OLD_SIGSET, 4);
    assert_eq!(COMPAT_STACK_T, 12);
    let mut m = FakeMem::default();
    // Each means the x86-64 call (row_nr) and is executed by replay as
    // the x86-64 one is, but the pending queries, emulated as theirs are.
    for (n, x86_64, replay) in [
        (48, libc::SYS_rt_sigaction, ReplayAction::Execute),
        (67, libc::SYS_rt_sigaction, ReplayAction::Execute),
        (174, libc::SYS_rt_sigaction, ReplayAction::Execute),
        (126, libc::SYS_rt_sigprocmask, ReplayAction::Execute),
        (175, libc::SYS_rt_sigprocmask, ReplayAction::Execute),
        (73, libc::SYS_rt_sigpending, ReplayAction::Emulate),
        (176, libc::SYS_rt_sigpending, ReplayAction::Emulate),
        (186, libc::SYS_sigaltstack, ReplayAction::Execute),
        (258, libc::SYS_set_tid_address, ReplayAction::Execute),
    ] {
        let nr = crate::compat_nr(n);
        assert_eq!(crate::row_nr(nr), x86_64, "{n}");
        let d = crate::lookup(nr).expect("described");
        assert_eq!(d.replay, replay, "{n}");
        assert!(!d.may_block, "{n}");
        assert!(crate::name(nr).starts_with("i386 "), "{n}");
        assert!(!crate::name(nr).contains("syscall ("), "{n}");
    }
    let nr = crate::compat_nr;
    // rt_sigprocmask (175): the old 8-byte set at oset; nothing on EINVAL
    // (a sigsetsize other than 8) or with no oset.
    assert_eq!(
        ok(&call(nr(175), &[0, 0x1000, 0x2000, 8], 0), &m),
        [(0x2000, 8)]
    );
    assert!(ok(&call(nr(175), &[0, 0x1000, 0x2000, 4], -22), &m).is_empty());
    assert!(ok(&call(nr(175), &[0, 0x1000, 0, 8], 0), &m).is_empty());
    // sigprocmask (126): the old 4-byte set.
    assert_eq!(
        ok(&call(nr(126), &[0, 0x1000, 0x2000], 0), &m),
        [(0x2000, 4)]
    );
    assert!(ok(&call(nr(126), &[9, 0x1000, 0x2000], -22), &m).is_empty());
    // sigpending (73) 4 bytes, rt_sigpending (176) sigsetsize bytes.
    assert_eq!(ok(&call(nr(73), &[0x3000], 0), &m), [(0x3000, 4)]);
    assert_eq!(ok(&call(nr(176), &[0x3000, 8], 0), &m), [(0x3000, 8)]);
    assert!(ok(&call(nr(176), &[0x3000, 16], -22), &m).is_empty());
    // sigaltstack (186): the old 12-byte compat_stack_t at uoss.
    assert_eq!(ok(&call(nr(186), &[0x1000, 0x2000], 0), &m), [(0x2000, 12)]);
    assert!(ok(&call(nr(186), &[0x1000, 0x2000], -12), &m).is_empty());
    assert!(ok(&call(nr(186), &[0x1000, 0], 0), &m).is_empty());
    // set_tid_address (258) writes nothing.
    assert!(ok(&call(nr(258), &[0x1000], 1234), &m).is_empty());
    // rt_sigaction (174): a query stores the old 20-byte action; SIG_DFL
    // and SIG_IGN at act (its handler, the first 32-bit word) too.
    assert_eq!(
        ok(&call(nr(174), &[10, 0, 0x2000, 8], 0), &m),
        [(0x2000, 20)]
    );
    for handler in [0, 1] {
        m.put_u32(0x1000, handler);
        assert_eq!(
            ok(&call(nr(174), &[10, 0x1000, 0x2000, 8], 0), &m),
            [(0x2000, 20)],
            "{handler}"
        );
        assert!(ok(&call(nr(174), &[10, 0x1000, 0, 8], 0), &m).is_empty());
        // sigaction (67): the old 16-byte action.
        m.put_u32(0x1100, handler);
        assert_eq!(
            ok(&call(nr(67), &[10, 0x1100, 0x2000], 0), &m),
            [(0x2000, 16)],
            "{handler}"
        );
        // signal (48): nothing written, the old handler returned.
        assert!(ok(&call(nr(48), &[10, u64::from(handler)], 0), &m).is_empty());
    }
    assert!(ok(&call(nr(174), &[10, 0x1000, 0x2000, 4], -22), &m).is_empty());
    // A handler installed (the kernel would deliver an i386 frame): refused,
    // named; not when the call failed (nothing installed).
    m.put_u32(0x1000, 0x40_1234);
    m.put_u32(0x1100, 0x40_1234);
    for c in [
        call(nr(174), &[10, 0x1000, 0x2000, 8], 0),
        call(nr(67), &[10, 0x1100, 0], 0),
        call(nr(48), &[10, 0x40_1234], 0),
    ] {
        let e = regions(&c, &m).expect_err("a handler installed");
        assert!(
            e.0.contains("installed a handler (0x401234) for signal 10")
                && e.0.contains("i386 frame"),
            "{}",
            e.0
        );
        assert!(ok(&Call { ret: -22, ..c }, &m).is_empty());
    }
    // An act the kernel read is readable: one that is not is named.
    let e = regions(&call(nr(174), &[10, 0x9000, 0, 8], 0), &m).expect_err("unreadable");
    assert!(e.0.contains("sa_handler"), "{}", e.0);
}

/// `name_to_handle_at` (issue 20's sweep: it was missing from the table, and
/// a program that asked for a file handle made the trace unreplayable,
/// "unknown syscall 303 returned -75"): the handle's header and bytes on
/// success, the header alone on `EOVERFLOW` (the size query), the mount id
/// in both (8 bytes with `AT_HANDLE_MNT_ID_UNIQUE`); `open_by_handle_at`
/// writes nothing and may block (it opens the file, maybe a FIFO).
#[test]
fn name_to_handle_at_writes_the_handle_and_the_mount_id() {
    let nr = libc::SYS_name_to_handle_at;
    let mut m = FakeMem::default();
    // A 12-byte handle (ext4's): handle_bytes 12 after the call.
    m.put_u32(0x3000, 12);
    assert_eq!(
        ok(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 0], 0), &m),
        vec![(0x3000, 8 + 12), (0x4000, 4)]
    );
    assert_eq!(
        ok(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 1], 0), &m),
        vec![(0x3000, 8 + 12), (0x4000, 8)]
    );
    // The size query: EOVERFLOW, the header (holding the size) and the id.
    let overflow = -i64::from(libc::EOVERFLOW);
    assert_eq!(
        ok(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 0], overflow), &m),
        vec![(0x3000, 8), (0x4000, 4)]
    );
    assert!(crate::writes_on_failure(nr));
    // Other failures write nothing; a handle size past MAX_HANDLE_SZ is
    // bounded by it.
    assert!(ok(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 0], -2), &m).is_empty());
    m.put_u32(0x3000, 4096);
    assert_eq!(
        ok(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 0], 0), &m),
        vec![(0x3000, 8 + 128), (0x4000, 4)]
    );
    let open = lookup(libc::SYS_open_by_handle_at).expect("in the table");
    assert_eq!(open.name, "open_by_handle_at");
    assert!(open.may_block);
    assert!(ok(&call(libc::SYS_open_by_handle_at, &[3, 0x3000, 0], 5), &m).is_empty());
    assert_eq!(
        describe(&call(nr, &[3, 0x2000, 0x3000, 0x4000, 0], 0))
            .split('(')
            .next(),
        Some("name_to_handle_at")
    );
}

/// The file and network interface ioctls (issue 20's sweep: each made the
/// trace unreplayable, "ioctl 0x8933 (fd 3)", `if_nametoindex`'s
/// `SIOCGIFINDEX` among them): a `struct ifreq` for the `SIOCGIF*`
/// queries, an int for `FIBMAP`, `FIGETBSZ`, `FS_IOC_GETFLAGS` and
/// `FS_IOC_GETVERSION`, `FS_IOC_FIEMAP`'s header and its mapped extents,
/// `SIOCGIFCONF`'s `struct ifconf` and its records; an int for
/// `SIOCATMARK`, `SIOCOUTQNSD` and `RNDGETENTCNT`, a time for
/// `SIOCGSTAMP`.
#[test]
fn file_and_interface_ioctls_describe_their_outputs() {
    let ioctl = |request: u64, arg: u64| call(libc::SYS_ioctl, &[3, request, arg], 0);
    let mut m = FakeMem::default();
    assert_eq!(ok(&ioctl(0x8933, 0x1000), &m), [(0x1000, 40)]);
    assert_eq!(ok(&ioctl(0x8910, 0x1000), &m), [(0x1000, 40)]);
    assert_eq!(ok(&ioctl(0x8927, 0x1000), &m), [(0x1000, 40)]);
    assert_eq!(ok(&ioctl(0x2, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x1, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x8008_6601, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x8008_7601, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x801C_581F, 0x1000), &m), [(0x1000, 28)]);
    assert_eq!(ok(&ioctl(0x8011_1500, 0x1000), &m), [(0x1000, 17)]);
    assert!(ok(&ioctl(0x4008_6602, 0x1000), &m).is_empty());
    // FIEMAP: 3 extents mapped of 4 room; a count query (room 0) stores
    // the header alone, whatever the count it reports.
    m.put_u32(0x2000 + 20, 3);
    m.put_u32(0x2000 + 24, 4);
    assert_eq!(
        ok(&ioctl(0xC020_660B, 0x2000), &m),
        [(0x2000, 32), (0x2020, 3 * 56)]
    );
    m.put_u32(0x2000 + 24, 0);
    assert_eq!(ok(&ioctl(0xC020_660B, 0x2000), &m), [(0x2000, 32)]);
    // SIOCGIFCONF: 80 bytes of records at ifc_buf; a null buffer (the
    // length query) stores the struct alone.
    m.put_u32(0x3000, 80);
    m.put_u64(0x3008, 0x4000);
    assert_eq!(ok(&ioctl(0x8912, 0x3000), &m), [(0x3000, 16), (0x4000, 80)]);
    m.put_u64(0x3008, 0);
    assert_eq!(ok(&ioctl(0x8912, 0x3000), &m), [(0x3000, 16)]);
    // The socket queries and the entropy count: an int, or a time.
    assert_eq!(ok(&ioctl(0x8905, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x894B, 0x1000), &m), [(0x1000, 4)]);
    assert_eq!(ok(&ioctl(0x8906, 0x1000), &m), [(0x1000, 16)]);
    assert_eq!(ok(&ioctl(0x8004_5200, 0x1000), &m), [(0x1000, 4)]);
    // A failed one writes nothing.
    let failed = call(libc::SYS_ioctl, &[3, 0x8933, 0x1000], -19);
    assert!(ok(&failed, &m).is_empty());
}
