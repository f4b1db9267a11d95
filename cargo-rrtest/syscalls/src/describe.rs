//! Renders a syscall with its arguments for humans, as strace does:
//! `openat(AT_FDCWD, 0x7ffc1000, O_RDONLY|O_CLOEXEC, 0) = 3`. Divergence
//! messages and logs use it to show both the recorded and the observed call.
//!
//! Each syscall has a signature: one letter per argument saying how to show
//! it (see [`Kind`]). Pointers are shown as addresses; rendering never reads
//! tracee memory, so it works on a trace alone.

use super::{lookup_ioctl, name, Call};
use std::fmt::Write as _;

/// How one argument is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `d`: a file descriptor (`AT_FDCWD` for -100), as a 32-bit int.
    Fd,
    /// `p`: an address, `NULL` for 0.
    Ptr,
    /// `i`: a 32-bit signed int.
    Int,
    /// `l`: a 64-bit signed value (offsets).
    Long,
    /// `u`: an unsigned count or size.
    Uint,
    /// `x`: flags or a value best read in hex.
    Hex,
    /// `o`: `open` flags.
    OpenFlags,
    /// `m`: a file mode, in C's octal notation.
    Mode,
    /// `P`: `PROT_*` flags.
    Prot,
    /// `M`: `MAP_*` flags.
    MapFlags,
    /// `C`: `CLONE_*` flags and the exit signal.
    CloneFlags,
    /// `F`: a futex operation.
    FutexOp,
    /// `K`: a clock id.
    Clock,
    /// `S`: a signal number.
    Signal,
    /// `I`: an ioctl request.
    Ioctl,
    /// `N`: an fcntl command.
    Fcntl,
}

impl Kind {
    fn from_letter(c: char) -> Self {
        match c {
            'd' => Kind::Fd,
            'p' => Kind::Ptr,
            'i' => Kind::Int,
            'l' => Kind::Long,
            'u' => Kind::Uint,
            'o' => Kind::OpenFlags,
            'm' => Kind::Mode,
            'P' => Kind::Prot,
            'M' => Kind::MapFlags,
            'C' => Kind::CloneFlags,
            'F' => Kind::FutexOp,
            'K' => Kind::Clock,
            'S' => Kind::Signal,
            'I' => Kind::Ioctl,
            'N' => Kind::Fcntl,
            _ => Kind::Hex,
        }
    }
}

/// The argument letters of syscall `name`; `None` for a syscall without a
/// signature (all six arguments are then shown in hex).
fn signature(name: &str) -> Option<&'static str> {
    Some(match name {
        "read" | "write" | "readv" | "writev" | "getdents" | "getdents64" => "dpu",
        "open" => "pom",
        "close" | "dup" | "fsync" | "fdatasync" | "fchdir" | "syncfs" => "d",
        "stat" | "lstat" | "rename" | "link" | "symlink" | "utime" | "utimes" | "statfs"
        | "gettimeofday" | "capget" | "capset" | "sigaltstack" | "removexattr" | "lremovexattr"
        | "nanosleep" => "pp",
        "fstat" | "fstatfs" | "fremovexattr" | "timerfd_gettime" => "dp",
        "poll" => "pui",
        "lseek" => "dli",
        "mmap" => "puPMdx",
        "mprotect" => "puP",
        "munmap" | "mlock" | "munlock" | "set_robust_list" => "pu",
        "brk" | "pipe" | "uname" | "sysinfo" | "times" | "time" | "set_tid_address" | "shmdt"
        | "chdir" | "rmdir" | "unlink" => "p",
        "rt_sigaction" => "Sppu",
        "rt_sigprocmask" => "ippu",
        "ioctl" => "dIx",
        "pread64" | "pwrite64" | "preadv" | "pwritev" => "dpul",
        "preadv2" | "pwritev2" => "dpullx",
        "access" => "pi",
        "select" => "ipppp",
        "pselect6" => "ippppp",
        "mremap" => "puuxp",
        "msync" | "mlock2" | "mseal" => "pux",
        "mincore" => "pup",
        "madvise" => "pui",
        "dup2" => "dd",
        "dup3" => "ddx",
        "getitimer"
        | "getrlimit"
        | "getrusage"
        | "setrlimit"
        | "sched_getparam"
        | "sched_setparam"
        | "sched_rr_get_interval"
        | "timer_gettime" => "ip",
        "setitimer" => "ipp",
        "alarm" | "setuid" | "setgid" | "setfsuid" | "setfsgid" | "eventfd" => "u",
        "sendfile" => "ddpu",
        "socket" => "iii",
        "socketpair" => "iiip",
        "connect" | "bind" => "dpu",
        "accept" | "getsockname" | "getpeername" => "dpp",
        "accept4" => "dppx",
        "sendto" => "dpuxpu",
        "recvfrom" => "dpuxpp",
        "sendmsg" | "recvmsg" => "dpx",
        "sendmmsg" => "dpux",
        "recvmmsg" => "dpuxp",
        "shutdown" | "listen" | "inotify_rm_watch" => "di",
        "setsockopt" => "diipu",
        "getsockopt" => "diipp",
        "clone" => "Cpppx",
        "clone3" => "pu",
        "execve" => "ppp",
        "execveat" => "dpppx",
        "exit"
        | "exit_group"
        | "epoll_create"
        | "getpgid"
        | "getsid"
        | "sched_getscheduler"
        | "sched_get_priority_max"
        | "sched_get_priority_min"
        | "timer_getoverrun"
        | "timer_delete"
        | "pkey_free" => "i",
        "wait4" => "ipxp",
        "waitid" => "iipxp",
        "kill" | "tkill" => "iS",
        "tgkill" => "iiS",
        "rt_sigqueueinfo" => "iSp",
        "rt_tgsigqueueinfo" => "iiSp",
        "pidfd_send_signal" => "dSpx",
        "fcntl" => "dNx",
        "flock" => "dx",
        "truncate" => "pl",
        "ftruncate" => "dl",
        "getcwd" | "rt_sigpending" | "rt_sigsuspend" => "pu",
        "mkdir" | "creat" | "chmod" => "pm",
        "fchmod" => "dm",
        "readlink" => "ppu",
        "chown" | "lchown" => "pii",
        "fchown" => "dii",
        "umask" => "m",
        "getgroups" => "ip",
        "setgroups" => "up",
        "setpgid" | "getpriority" => "ii",
        "setpriority" => "iii",
        "setreuid" | "setregid" => "uu",
        "setresuid" | "setresgid" => "uuu",
        "getresuid" | "getresgid" | "getcpu" => "ppp",
        "rt_sigtimedwait" => "pppu",
        "mknod" => "pmx",
        "personality" | "mlockall" | "epoll_create1" | "inotify_init1" | "userfaultfd"
        | "memfd_secret" => "x",
        "sched_setscheduler" => "iip",
        "prctl" => "ixxxx",
        "arch_prctl" => "xx",
        "readahead" => "dlu",
        "setxattr" | "lsetxattr" => "pppux",
        "fsetxattr" => "dppux",
        "getxattr" | "lgetxattr" => "pppu",
        "fgetxattr" => "dppu",
        "listxattr" | "llistxattr" => "ppu",
        "flistxattr" => "dpu",
        "futex" => "pFuppu",
        "sched_setaffinity" | "sched_getaffinity" => "iup",
        "fadvise64" => "dlli",
        "timer_create" => "Kpp",
        "timer_settime" => "ixpp",
        "clock_settime" | "clock_gettime" | "clock_getres" => "Kp",
        "clock_nanosleep" => "Kxpp",
        "epoll_wait" => "dpii",
        "epoll_pwait" => "dpiipu",
        "epoll_pwait2" => "dpippu",
        "epoll_ctl" => "didp",
        "inotify_add_watch" => "dpx",
        "openat" => "dpom",
        "openat2" => "dppu",
        "mkdirat" | "fchmodat" => "dpm",
        "fchmodat2" => "dpmx",
        "mknodat" => "dpmx",
        "fchownat" => "dpiix",
        "futimesat" => "dpp",
        "newfstatat" => "dppx",
        "unlinkat" => "dpx",
        "renameat" => "dpdp",
        "renameat2" => "dpdpx",
        "linkat" => "dpdpx",
        "symlinkat" => "pdp",
        "readlinkat" => "dppu",
        "faccessat" => "dpi",
        "faccessat2" => "dpix",
        "utimensat" => "dppx",
        "statx" => "dpxxp",
        "ppoll" => "puppu",
        "get_robust_list" => "ipp",
        "splice" | "copy_file_range" => "dpdpux",
        "tee" => "ddux",
        "vmsplice" => "dpux",
        "sync_file_range" => "dllx",
        "signalfd" => "dpu",
        "signalfd4" => "dpux",
        "timerfd_create" => "Kx",
        "timerfd_settime" => "dxpp",
        "eventfd2" | "pipe2" | "memfd_create" => "ux",
        "fallocate" => "dill",
        "prlimit64" => "iipp",
        "sched_setattr" => "ipx",
        "sched_getattr" => "ipux",
        "seccomp" => "uxp",
        "getrandom" => "pux",
        "membarrier" => "ixi",
        "pkey_mprotect" => "puPi",
        "pkey_alloc" => "xx",
        "rseq" => "puxx",
        "pidfd_open" => "ix",
        "pidfd_getfd" => "ddx",
        "close_range" => "uux",
        "landlock_create_ruleset" => "pux",
        "landlock_add_rule" => "dipx",
        "landlock_restrict_self" => "dx",
        "futex_waitv" => "puxpK",
        "move_pages" => "iupppx",
        "pivot_root" => "pp",
        "chroot" => "p",
        "mount" => "pppxp",
        "umount2" => "px",
        "sethostname" | "setdomainname" => "pu",
        "unshare" => "C",
        "setns" => "dC",
        "move_mount" => "dpdpx",
        "fsopen" => "px",
        "fsconfig" => "duppi",
        "fsmount" => "dxx",
        "fspick" => "dpx",
        "mount_setattr" => "dpxpu",
        "process_madvise" => "dpuix",
        "cachestat" => "dppx",
        "statmount" | "listmount" => "ppux",
        "process_vm_readv" | "process_vm_writev" => "ipupux",
        "ptrace" => "iipp",
        "io_uring_setup" => "up",
        "shmget" => "xux",
        "semget" => "xix",
        "semop" => "ipu",
        "semtimedop" => "ipup",
        "semctl" => "iiix",
        "msgget" => "xx",
        "msgsnd" => "ipux",
        "msgrcv" => "ipulx",
        "msgctl" => "iip",
        "shmat" => "ipx",
        "shmctl" => "iip",
        "io_setup" => "up",
        "io_destroy" => "x",
        "io_getevents" => "xllpp",
        "io_pgetevents" => "xllppp",
        "io_submit" => "xlp",
        "io_cancel" => "xpp",
        "perf_event_open" => "piidx",
        "bpf" => "ipu",
        "io_uring_enter" => "duuxpu",
        "io_uring_register" => "dupu",
        "syslog" => "ipi",
        "sysfs" => "iuu",
        "modify_ldt" => "ipu",
        "adjtimex" => "p",
        "clock_adjtime" => "Kp",
        "acct" => "p",
        "iopl" => "i",
        "ioperm" => "uui",
        "quotactl" => "xpip",
        "mbind" => "puipux",
        "set_mempolicy" => "ipu",
        "get_mempolicy" => "ppupx",
        "mq_open" => "poxp",
        "mq_unlink" => "p",
        "mq_timedsend" => "dpuup",
        "mq_timedreceive" => "dpupp",
        "mq_notify" => "dp",
        "mq_getsetattr" => "dpp",
        "add_key" => "pppui",
        "request_key" => "pppi",
        "keyctl" => "ixxxx",
        "ioprio_set" => "iii",
        "ioprio_get" => "ii",
        "fanotify_init" => "xx",
        "fanotify_mark" => "dxxdp",
        "kcmp" => "iiiuu",
        "open_tree" => "dpx",
        "name_to_handle_at" => "dpppx",
        "open_by_handle_at" => "dpo",
        "sched_yield" | "pause" | "getpid" | "getppid" | "gettid" | "getuid" | "geteuid"
        | "getgid" | "getegid" | "getpgrp" | "setsid" | "fork" | "vfork" | "sync"
        | "munlockall" | "inotify_init" | "rt_sigreturn" | "restart_syscall" => "",
        _ => return None,
    })
}

/// How many argument registers syscall `nr` reads (6 when unknown).
pub fn arg_count(nr: i64) -> usize {
    signature(&name(nr)).map(str::len).unwrap_or(6)
}

/// Renders `call` as `name(arg, ...) = result`.
pub fn describe(call: &Call) -> String {
    let mut s = describe_entry(call.nr, &call.args);
    s.push_str(" = ");
    result(&mut s, &name(call.nr), call.ret);
    s
}

/// Renders a syscall at its entry, as `name(arg, ...)`.
pub fn describe_entry(nr: i64, args: &[u64; 6]) -> String {
    let call = Call {
        nr,
        args: *args,
        ret: 0,
    };
    let name = name(call.nr);
    if let Some(sub) = crate::socketcall_sub(&call) {
        // An i386 socketcall: its sub-call and the call that is, with the
        // words the kernel read at its entry (`crate::entry_args`).
        return format!(
            "{name}({}, {:#x}: {})",
            crate::socketcall_name(args[0]),
            args[1],
            describe_entry(sub.nr, &sub.args)
        );
    }
    let mut s = format!("{name}(");
    match signature(&name) {
        Some(sig) => {
            for (i, (letter, &v)) in sig.chars().zip(&call.args).enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                arg(&mut s, Kind::from_letter(letter), v);
            }
        }
        None => {
            for (i, v) in call.args.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{v:#x}");
            }
        }
    }
    s.push(')');
    s
}

fn arg(s: &mut String, kind: Kind, v: u64) {
    let int = v as i32;
    match kind {
        Kind::Fd if int == libc::AT_FDCWD => s.push_str("AT_FDCWD"),
        Kind::Fd | Kind::Int => {
            let _ = write!(s, "{int}");
        }
        Kind::Ptr if v == 0 => s.push_str("NULL"),
        Kind::Ptr | Kind::Hex => {
            let _ = write!(s, "{v:#x}");
        }
        Kind::Long => {
            let _ = write!(s, "{}", v as i64);
        }
        Kind::Uint => {
            let _ = write!(s, "{v}");
        }
        // C's octal notation, as in the man pages: 0644.
        Kind::Mode if v as u32 == 0 => s.push('0'),
        Kind::Mode => {
            let _ = write!(s, "0{:o}", v as u32);
        }
        Kind::OpenFlags => open_flags(s, v as u32),
        Kind::Prot if v == 0 => s.push_str("PROT_NONE"),
        Kind::Prot => flags(s, v, PROT),
        Kind::MapFlags => map_flags(s, v as u32),
        Kind::CloneFlags => clone_flags(s, v),
        Kind::FutexOp => futex_op(s, v as u32),
        Kind::Clock => match named(CLOCKS, v) {
            Some(n) => s.push_str(n),
            None => {
                let _ = write!(s, "{int}");
            }
        },
        Kind::Signal => signal(s, int),
        Kind::Ioctl => match lookup_ioctl(v as u32) {
            Some(d) => s.push_str(d.name),
            None => {
                let _ = write!(s, "{:#x}", v as u32);
            }
        },
        Kind::Fcntl => match named(FCNTL, u64::from(v as u32)) {
            Some(n) => s.push_str(n),
            None => {
                let _ = write!(s, "{int}");
            }
        },
    }
}

fn result(s: &mut String, name: &str, ret: i64) {
    if (-4095..0).contains(&ret) {
        let errno = -ret;
        let _ = match errno_name(errno) {
            Some(n) => write!(s, "-1 {n}"),
            None => write!(s, "-1 errno {errno}"),
        };
    } else if matches!(name, "mmap" | "mremap" | "brk" | "shmat") {
        let _ = write!(s, "{ret:#x}");
    } else {
        let _ = write!(s, "{ret}");
    }
}

fn named(table: &[(u64, &'static str)], v: u64) -> Option<&'static str> {
    table.iter().find(|&&(k, _)| k == v).map(|&(_, n)| n)
}

/// `A|B|0x..`: each table entry whose bits are all set, in table order
/// (composite flags first), then what is left in hex; `0` when empty.
fn flags(s: &mut String, v: u64, table: &[(u64, &str)]) {
    let start = s.len();
    let mut left = v;
    for &(bits, n) in table {
        if bits != 0 && left & bits == bits {
            if s.len() > start {
                s.push('|');
            }
            s.push_str(n);
            left &= !bits;
        }
    }
    if left != 0 || s.len() == start {
        if s.len() > start {
            s.push('|');
        }
        let _ = write!(s, "{left:#x}");
    }
}

fn open_flags(s: &mut String, v: u32) {
    s.push_str(match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    let rest = u64::from(v & !3);
    if rest != 0 {
        s.push('|');
        flags(s, rest, OPEN);
    }
}

fn map_flags(s: &mut String, v: u32) {
    s.push_str(match v & 0xf {
        1 => "MAP_SHARED",
        2 => "MAP_PRIVATE",
        3 => "MAP_SHARED_VALIDATE",
        _ => "MAP_TYPE?",
    });
    let rest = u64::from(v & !0xf);
    if rest != 0 {
        s.push('|');
        flags(s, rest, MAP);
    }
}

fn clone_flags(s: &mut String, v: u64) {
    let sig = (v & 0xff) as i32;
    let rest = v & !0xff;
    if rest != 0 || sig == 0 {
        flags(s, rest, CLONE);
    }
    if sig != 0 {
        if rest != 0 {
            s.push('|');
        }
        signal(s, sig);
    }
}

fn futex_op(s: &mut String, v: u32) {
    let cmd = v & !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u32);
    match named(FUTEX, u64::from(cmd)) {
        Some(n) => s.push_str(n),
        None => {
            let _ = write!(s, "{cmd}");
        }
    }
    if v & libc::FUTEX_PRIVATE_FLAG as u32 != 0 {
        s.push_str("|FUTEX_PRIVATE_FLAG");
    }
    if v & libc::FUTEX_CLOCK_REALTIME as u32 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
}

fn signal(s: &mut String, sig: i32) {
    match SIGNALS.get(sig as usize) {
        Some(n) if sig > 0 => s.push_str(n),
        _ if (32..=64).contains(&sig) => {
            let _ = write!(s, "SIGRT_{}", sig - 32);
        }
        _ => {
            let _ = write!(s, "{sig}");
        }
    }
}

fn errno_name(errno: i64) -> Option<&'static str> {
    Some(match errno {
        512 => "ERESTARTSYS",
        513 => "ERESTARTNOINTR",
        514 => "ERESTARTNOHAND",
        516 => "ERESTART_RESTARTBLOCK",
        e => {
            return ERRNOS
                .get(usize::try_from(e).ok()?)
                .copied()
                .filter(|n| !n.is_empty())
        }
    })
}

/// Index = errno (x86-64 Linux numbering, `asm-generic/errno-base.h` and
/// `errno.h`, up to `ETIMEDOUT`'s neighbourhood; the rest print as numbers).
const ERRNOS: &[&str] = &[
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "",
    "",
    "",
    "ENOLINK",
    "",
    "",
    "",
    "EPROTO",
    "",
    "",
    "",
    "EOVERFLOW",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "EILSEQ",
    "",
    "",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
];

/// Index = signal number.
const SIGNALS: &[&str] = &[
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

const OPEN: &[(u64, &str)] = &[
    (libc::O_TMPFILE as u64, "O_TMPFILE"),
    (libc::O_SYNC as u64, "O_SYNC"),
    (libc::O_CREAT as u64, "O_CREAT"),
    (libc::O_EXCL as u64, "O_EXCL"),
    (libc::O_NOCTTY as u64, "O_NOCTTY"),
    (libc::O_TRUNC as u64, "O_TRUNC"),
    (libc::O_APPEND as u64, "O_APPEND"),
    (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
    (libc::O_DSYNC as u64, "O_DSYNC"),
    (libc::O_ASYNC as u64, "O_ASYNC"),
    (libc::O_DIRECT as u64, "O_DIRECT"),
    (libc::O_LARGEFILE as u64, "O_LARGEFILE"),
    (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
    (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
    (libc::O_NOATIME as u64, "O_NOATIME"),
    (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
    (libc::O_PATH as u64, "O_PATH"),
];

const PROT: &[(u64, &str)] = &[
    (libc::PROT_READ as u64, "PROT_READ"),
    (libc::PROT_WRITE as u64, "PROT_WRITE"),
    (libc::PROT_EXEC as u64, "PROT_EXEC"),
    (libc::PROT_GROWSDOWN as u64, "PROT_GROWSDOWN"),
    (libc::PROT_GROWSUP as u64, "PROT_GROWSUP"),
];

const MAP: &[(u64, &str)] = &[
    (libc::MAP_FIXED_NOREPLACE as u64, "MAP_FIXED_NOREPLACE"),
    (libc::MAP_FIXED as u64, "MAP_FIXED"),
    (libc::MAP_ANONYMOUS as u64, "MAP_ANONYMOUS"),
    (libc::MAP_32BIT as u64, "MAP_32BIT"),
    (libc::MAP_GROWSDOWN as u64, "MAP_GROWSDOWN"),
    (libc::MAP_DENYWRITE as u64, "MAP_DENYWRITE"),
    (libc::MAP_EXECUTABLE as u64, "MAP_EXECUTABLE"),
    (libc::MAP_LOCKED as u64, "MAP_LOCKED"),
    (libc::MAP_NORESERVE as u64, "MAP_NORESERVE"),
    (libc::MAP_POPULATE as u64, "MAP_POPULATE"),
    (libc::MAP_NONBLOCK as u64, "MAP_NONBLOCK"),
    (libc::MAP_STACK as u64, "MAP_STACK"),
    (libc::MAP_HUGETLB as u64, "MAP_HUGETLB"),
    (libc::MAP_SYNC as u64, "MAP_SYNC"),
];

const CLONE: &[(u64, &str)] = &[
    (libc::CLONE_VM as u64, "CLONE_VM"),
    (libc::CLONE_FS as u64, "CLONE_FS"),
    (libc::CLONE_FILES as u64, "CLONE_FILES"),
    (libc::CLONE_SIGHAND as u64, "CLONE_SIGHAND"),
    (libc::CLONE_PIDFD as u64, "CLONE_PIDFD"),
    (libc::CLONE_PTRACE as u64, "CLONE_PTRACE"),
    (libc::CLONE_VFORK as u64, "CLONE_VFORK"),
    (libc::CLONE_PARENT as u64, "CLONE_PARENT"),
    (libc::CLONE_THREAD as u64, "CLONE_THREAD"),
    (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
    (libc::CLONE_SYSVSEM as u64, "CLONE_SYSVSEM"),
    (libc::CLONE_SETTLS as u64, "CLONE_SETTLS"),
    (libc::CLONE_PARENT_SETTID as u64, "CLONE_PARENT_SETTID"),
    (libc::CLONE_CHILD_CLEARTID as u64, "CLONE_CHILD_CLEARTID"),
    (libc::CLONE_DETACHED as u64, "CLONE_DETACHED"),
    (libc::CLONE_UNTRACED as u64, "CLONE_UNTRACED"),
    (libc::CLONE_CHILD_SETTID as u64, "CLONE_CHILD_SETTID"),
    (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
    (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
    (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
    (libc::CLONE_NEWUSER as u64, "CLONE_NEWUSER"),
    (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
    (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
    (libc::CLONE_IO as u64, "CLONE_IO"),
];

const FUTEX: &[(u64, &str)] = &[
    (libc::FUTEX_WAIT as u64, "FUTEX_WAIT"),
    (libc::FUTEX_WAKE as u64, "FUTEX_WAKE"),
    (libc::FUTEX_FD as u64, "FUTEX_FD"),
    (libc::FUTEX_REQUEUE as u64, "FUTEX_REQUEUE"),
    (libc::FUTEX_CMP_REQUEUE as u64, "FUTEX_CMP_REQUEUE"),
    (libc::FUTEX_WAKE_OP as u64, "FUTEX_WAKE_OP"),
    (libc::FUTEX_LOCK_PI as u64, "FUTEX_LOCK_PI"),
    (libc::FUTEX_UNLOCK_PI as u64, "FUTEX_UNLOCK_PI"),
    (libc::FUTEX_TRYLOCK_PI as u64, "FUTEX_TRYLOCK_PI"),
    (libc::FUTEX_WAIT_BITSET as u64, "FUTEX_WAIT_BITSET"),
    (libc::FUTEX_WAKE_BITSET as u64, "FUTEX_WAKE_BITSET"),
    (libc::FUTEX_WAIT_REQUEUE_PI as u64, "FUTEX_WAIT_REQUEUE_PI"),
    (libc::FUTEX_CMP_REQUEUE_PI as u64, "FUTEX_CMP_REQUEUE_PI"),
    (13, "FUTEX_LOCK_PI2"),
];

const CLOCKS: &[(u64, &str)] = &[
    (libc::CLOCK_REALTIME as u64, "CLOCK_REALTIME"),
    (libc::CLOCK_MONOTONIC as u64, "CLOCK_MONOTONIC"),
    (
        libc::CLOCK_PROCESS_CPUTIME_ID as u64,
        "CLOCK_PROCESS_CPUTIME_ID",
    ),
    (
        libc::CLOCK_THREAD_CPUTIME_ID as u64,
        "CLOCK_THREAD_CPUTIME_ID",
    ),
    (libc::CLOCK_MONOTONIC_RAW as u64, "CLOCK_MONOTONIC_RAW"),
    (libc::CLOCK_REALTIME_COARSE as u64, "CLOCK_REALTIME_COARSE"),
    (
        libc::CLOCK_MONOTONIC_COARSE as u64,
        "CLOCK_MONOTONIC_COARSE",
    ),
    (libc::CLOCK_BOOTTIME as u64, "CLOCK_BOOTTIME"),
    (libc::CLOCK_REALTIME_ALARM as u64, "CLOCK_REALTIME_ALARM"),
    (libc::CLOCK_BOOTTIME_ALARM as u64, "CLOCK_BOOTTIME_ALARM"),
    (libc::CLOCK_TAI as u64, "CLOCK_TAI"),
];

const FCNTL: &[(u64, &str)] = &[
    (libc::F_DUPFD as u64, "F_DUPFD"),
    (libc::F_GETFD as u64, "F_GETFD"),
    (libc::F_SETFD as u64, "F_SETFD"),
    (libc::F_GETFL as u64, "F_GETFL"),
    (libc::F_SETFL as u64, "F_SETFL"),
    (libc::F_GETLK as u64, "F_GETLK"),
    (libc::F_SETLK as u64, "F_SETLK"),
    (libc::F_SETLKW as u64, "F_SETLKW"),
    (libc::F_SETOWN as u64, "F_SETOWN"),
    (libc::F_GETOWN as u64, "F_GETOWN"),
    (libc::F_OFD_GETLK as u64, "F_OFD_GETLK"),
    (libc::F_OFD_SETLK as u64, "F_OFD_SETLK"),
    (libc::F_OFD_SETLKW as u64, "F_OFD_SETLKW"),
    (libc::F_DUPFD_CLOEXEC as u64, "F_DUPFD_CLOEXEC"),
    (libc::F_SETPIPE_SZ as u64, "F_SETPIPE_SZ"),
    (libc::F_GETPIPE_SZ as u64, "F_GETPIPE_SZ"),
    (libc::F_ADD_SEALS as u64, "F_ADD_SEALS"),
    (libc::F_GET_SEALS as u64, "F_GET_SEALS"),
];

#[cfg(test)]
mod tests {
    use super::super::TABLE;
    use super::*;

    fn call(nr: i64, args: &[u64], ret: i64) -> Call {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        Call { nr, args: a, ret }
    }

    #[test]
    fn openat_reads_like_strace() {
        let c = call(
            libc::SYS_openat,
            &[
                (-100i64) as u64,
                0x7ffc_1000,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
                0,
            ],
            3,
        );
        assert_eq!(
            describe(&c),
            "openat(AT_FDCWD, 0x7ffc1000, O_RDONLY|O_CLOEXEC, 0) = 3"
        );
        let c = call(
            libc::SYS_openat,
            &[
                5,
                0x10,
                (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64,
                0o644,
            ],
            -2,
        );
        assert_eq!(
            describe(&c),
            "openat(5, 0x10, O_WRONLY|O_CREAT|O_TRUNC, 0644) = -1 ENOENT"
        );
    }

    #[test]
    fn memory_and_threads() {
        let c = call(
            libc::SYS_mmap,
            &[
                0,
                4096,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
            0x7fff_f7ff_0000,
        );
        assert_eq!(
            describe(&c),
            "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0) = 0x7ffff7ff0000"
        );
        let c = call(libc::SYS_mprotect, &[0x1000, 4096, 0], 0);
        assert_eq!(describe(&c), "mprotect(0x1000, 4096, PROT_NONE) = 0");
        let flags = (libc::CLONE_VM | libc::CLONE_SETTLS | libc::SIGCHLD) as u64;
        let c = call(libc::SYS_clone, &[flags, 0x2000, 0, 0, 0x3000], 42);
        assert_eq!(
            describe(&c),
            "clone(CLONE_VM|CLONE_SETTLS|SIGCHLD, 0x2000, NULL, NULL, 0x3000) = 42"
        );
        let op = (libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG) as u64;
        let c = call(
            libc::SYS_futex,
            &[0x5000, op, 0, 0, 0, u64::from(u32::MAX)],
            -11,
        );
        assert_eq!(
            describe(&c),
            "futex(0x5000, FUTEX_WAIT_BITSET|FUTEX_PRIVATE_FLAG, 0, NULL, NULL, 4294967295) = -1 EAGAIN"
        );
    }

    #[test]
    fn requests_signals_clocks_and_unknowns() {
        let c = call(libc::SYS_ioctl, &[1, libc::TCGETS, 0x10], -25);
        assert_eq!(describe(&c), "ioctl(1, TCGETS, 0x10) = -1 ENOTTY");
        let c = call(libc::SYS_ioctl, &[1, 0xdead, 0x10], 0);
        assert_eq!(describe(&c), "ioctl(1, 0xdead, 0x10) = 0");
        let c = call(libc::SYS_tgkill, &[7, 8, libc::SIGUSR1 as u64], 0);
        assert_eq!(describe(&c), "tgkill(7, 8, SIGUSR1) = 0");
        let c = call(libc::SYS_kill, &[7, 34], 0);
        assert_eq!(describe(&c), "kill(7, SIGRT_2) = 0");
        let c = call(libc::SYS_clock_gettime, &[1, 0x10], 0);
        assert_eq!(describe(&c), "clock_gettime(CLOCK_MONOTONIC, 0x10) = 0");
        let c = call(libc::SYS_fcntl, &[3, libc::F_DUPFD_CLOEXEC as u64, 3], 4);
        assert_eq!(describe(&c), "fcntl(3, F_DUPFD_CLOEXEC, 0x3) = 4");
        let c = call(libc::SYS_nanosleep, &[0x10, 0x20], -516);
        assert_eq!(
            describe(&c),
            "nanosleep(0x10, 0x20) = -1 ERESTART_RESTARTBLOCK"
        );
        let c = call(libc::SYS_getpid, &[9, 9, 9], 1234);
        assert_eq!(describe(&c), "getpid() = 1234");
        let c = call(400, &[1, 2, 3, 4, 5, 6], -38);
        assert_eq!(
            describe(&c),
            "syscall_400(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 ENOSYS"
        );
        let c = call(libc::SYS_read, &[3, 0x10, 5], -4000);
        assert_eq!(describe(&c), "read(3, 0x10, 5) = -1 errno 4000");
    }

    #[test]
    fn every_table_entry_has_a_signature() {
        for d in TABLE {
            let sig = signature(d.name).unwrap_or_else(|| panic!("{} has no signature", d.name));
            assert!(sig.len() <= 6, "{}", d.name);
            assert!(
                sig.chars().all(|c| "dpiluxomPMCFKSIN".contains(c)),
                "{}: {sig}",
                d.name
            );
        }
    }

    #[test]
    fn tables_are_indexed_by_number() {
        assert_eq!(ERRNOS[libc::ENOENT as usize], "ENOENT");
        assert_eq!(ERRNOS[libc::ENOTTY as usize], "ENOTTY");
        assert_eq!(ERRNOS[libc::ENOSYS as usize], "ENOSYS");
        assert_eq!(ERRNOS[libc::EOVERFLOW as usize], "EOVERFLOW");
        assert_eq!(ERRNOS[libc::EILSEQ as usize], "EILSEQ");
        assert_eq!(ERRNOS[libc::ENOTSOCK as usize], "ENOTSOCK");
        assert_eq!(ERRNOS[libc::ETIMEDOUT as usize], "ETIMEDOUT");
        assert_eq!(ERRNOS[libc::ESTALE as usize], "ESTALE");
        assert_eq!(SIGNALS[libc::SIGSYS as usize], "SIGSYS");
        assert_eq!(SIGNALS[libc::SIGCHLD as usize], "SIGCHLD");
        assert_eq!(SIGNALS[libc::SIGSTKFLT as usize], "SIGSTKFLT");
    }
}
