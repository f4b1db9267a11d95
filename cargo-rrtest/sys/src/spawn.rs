//! Starting a tracee: fork, prepare the child, seize it, exec.
//!
//! The child, between `fork` and `execve`, only makes raw syscalls on data
//! prepared before the fork (no allocation, no locks):
//! 0. with paths to hide ([`SpawnSpec::hide`]): enters a mount namespace of
//!    its own and mounts an empty read-only tmpfs (a directory) or
//!    `/dev/null` (anything else) over each;
//! 1. `personality(ADDR_NO_RANDOMIZE)`, `PR_SET_NO_NEW_PRIVS`,
//!    `PR_SET_TSC(PR_TSC_SIGSEGV)` (rdtsc traps), `RLIMIT_STACK` = 8 MiB (the
//!    stack limit decides the mmap layout, so record and replay fix it);
//! 2. leaves our process group for one of its own (so that the program's
//!    `kill(0, sig)` or `killpg(getpgrp(), sig)` does not reach us), unless
//!    our stdin is a terminal whose foreground group is ours: there it stays
//!    in it, for the terminal's Ctrl-C to reach it and its reads of the
//!    terminal not to stop it;
//! 3. waits on a pipe for the byte the parent writes once it has seized it
//!    (`PTRACE_O_EXITKILL`, so a dying recorder takes its tracees along);
//! 4. installs the seccomp filter and execs. A failed exec reports its errno
//!    through a close-on-exec pipe.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::ptrace::{self, WaitEvent};
use super::seccomp::SockFilter;

/// What to execute, and how.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Path passed to `execve` (it becomes `AT_EXECFN`).
    pub path: CString,
    /// argv.
    pub argv: Vec<CString>,
    /// envp.
    pub envp: Vec<CString>,
    /// Working directory to change to, if any.
    pub cwd: Option<CString>,
    /// The seccomp filter to install right before `execve`.
    pub filter: Vec<SockFilter>,
    /// The signal mask to start the program with (bit `n - 1` for signal
    /// `n`; the kernel ignores SIGKILL and SIGSTOP), or None: ours.
    pub sigmask: Option<u64>,
    /// The signals to start the program with ignored (the others default),
    /// or None: as we leave them (ignored ones stay ignored across execve).
    pub ignored: Option<u64>,
    /// Paths the program is to see as empty (needs `CAP_SYS_ADMIN`): each
    /// path (absolute, existing) and whether it is a directory.
    pub hide: Vec<(CString, bool)>,
    /// The stack size limit to start the program with (`RLIMIT_STACK`'s
    /// soft limit, bytes): [`program_stack_limit`] when recording, the
    /// recorded one in replay. Above our hard limit, the hard limit.
    pub stack_limit: u64,
}

/// The stack size limit a recorded program starts with: 8 MiB (the usual
/// default, whatever ours is, so that a program's stack depth does not
/// depend on the shell it was recorded from), or our hard limit if lower.
pub fn program_stack_limit() -> u64 {
    stack_hard_limit().min(8 << 20)
}

/// Our hard `RLIMIT_STACK` (bytes; `u64::MAX` when unlimited or unknown).
pub fn stack_hard_limit() -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut cur) } != 0
        || cur.rlim_max == libc::RLIM_INFINITY
    {
        return u64::MAX;
    }
    cur.rlim_max
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// How many times [`spawn`] tries an exec that fails with `ETXTBSY`, and how
/// long it waits before the first retry (doubling each time, about 0.6 s in
/// all).
const TEXT_BUSY_TRIES: u32 = 8;
const TEXT_BUSY_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Forks and prepares the tracee, seizes it, lets it exec, and returns its
/// pid once it is stopped at the exit of its `execve`.
///
/// An exec that fails with `ETXTBSY` is tried again a few times: the file
/// was open for writing somewhere when the child exec'd it. In a process
/// with several threads that is usually a passing state that is nobody's
/// fault: a file this process wrote and closed (replay's private copy of an
/// executable) is still open in a child that another thread forked before
/// the close and that has not exec'd yet, which keeps its descriptors.
pub fn spawn(spec: &SpawnSpec) -> io::Result<i32> {
    let mut wait = TEXT_BUSY_FIRST_WAIT;
    let mut tries = 1;
    loop {
        match spawn_once(spec) {
            Err(Failure::TextBusy(_)) if tries < TEXT_BUSY_TRIES => {
                std::thread::sleep(wait);
                wait *= 2;
                tries += 1;
            }
            Err(Failure::TextBusy(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{e} (tried {tries} times: the executable stayed open for writing)"),
                ))
            }
            Err(Failure::Other(e)) => return Err(e),
            Ok(pid) => return Ok(pid),
        }
    }
}

/// Why [`spawn_once`] failed: `execve` said `ETXTBSY` (worth another try),
/// or anything else.
enum Failure {
    TextBusy(io::Error),
    Other(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Other(e)
    }
}

fn spawn_once(spec: &SpawnSpec) -> Result<i32, Failure> {
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: spec.filter.len() as u16,
        filter: spec.filter.as_ptr() as *mut SockFilter,
    };
    let cwd = spec.cwd.as_ref().map(|c| c.as_ptr());
    let stack_limit = spec.stack_limit;

    // SAFETY: plain queries of our own process and descriptor 0 (-1 when
    // it is not a terminal).
    let own_group = unsafe { libc::tcgetpgrp(0) != libc::getpgrp() };

    // SAFETY: the process may have other threads (a replay's watchdog, a
    // trace's compression or keeping thread), which the child does not
    // have: it therefore takes no lock and allocates nothing, and only makes
    // async-signal-safe raw syscalls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error().into());
    }
    if pid == 0 {
        // SAFETY: child side of fork; see the module docs. Every pointer
        // refers to memory prepared above, alive until execve or _exit.
        unsafe {
            libc::close(sync_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            if !spec.hide.is_empty() {
                let fail = |tag: u8| -> ! {
                    let errno = *libc::__errno_location();
                    let tagged = [tag, errno as u8, (errno >> 8) as u8, 0];
                    libc::write(err_w.as_raw_fd(), tagged.as_ptr() as *const libc::c_void, 4);
                    libc::_exit(127)
                };
                // Our mounts must not propagate back to the recorder's namespace.
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                {
                    fail(b'N');
                }
                for (path, dir) in &spec.hide {
                    let r = if *dir {
                        libc::mount(
                            c"rrtest-hidden".as_ptr(),
                            path.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                            c"mode=0555,size=4k".as_ptr() as *const libc::c_void,
                        )
                    } else {
                        libc::mount(
                            c"/dev/null".as_ptr(),
                            path.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        )
                    };
                    if r != 0 {
                        fail(b'H');
                    }
                }
            }
            let persona = libc::personality(0xffff_ffff);
            if persona != -1 {
                libc::personality((persona | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong);
            }
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            libc::prctl(libc::PR_SET_TSC, libc::PR_TSC_SIGSEGV, 0, 0, 0);
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_STACK, &mut cur) == 0 {
                let lim = libc::rlimit {
                    rlim_cur: stack_limit.min(cur.rlim_max),
                    rlim_max: cur.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_STACK, &lim);
            }
            if let Some(dir) = cwd {
                libc::chdir(dir);
            }
            if let Some(ignored) = spec.ignored {
                // `struct kernel_sigaction`: handler, flags, restorer, mask.
                for sig in 1..=64i64 {
                    if sig == libc::SIGKILL as i64 || sig == libc::SIGSTOP as i64 {
                        continue;
                    }
                    let handler = if ignored & (1 << (sig - 1)) != 0 {
                        libc::SIG_IGN
                    } else {
                        libc::SIG_DFL
                    };
                    let act: [u64; 4] = [handler as u64, 0, 0, 0];
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        act.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                }
            }
            if let Some(mask) = spec.sigmask {
                // The raw syscall takes the kernel's 8-byte mask as it is.
                libc::syscall(
                    libc::SYS_rt_sigprocmask,
                    libc::SIG_SETMASK,
                    &mask as *const u64,
                    std::ptr::null_mut::<u64>(),
                    8usize,
                );
            }
            if own_group {
                libc::setpgid(0, 0);
            }
            // The parent writes a byte once it has seized us. Not the end
            // of file at its close: a child another thread of the parent
            // forked meanwhile holds a copy of our pipe's write end until
            // it execs, and we one of its, and each would wait for the
            // other (two replays started at once in one process hung so).
            // Nothing read (the parent died before seizing us): exit.
            let mut b = 0u8;
            let n = loop {
                let n = libc::read(
                    sync_r.as_raw_fd(),
                    &mut b as *mut u8 as *mut libc::c_void,
                    1,
                );
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n != 1 {
                libc::_exit(127);
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
                0,
                0,
            ) != 0
            {
                let errno = *libc::__errno_location();
                let tagged = [b'S', errno as u8, (errno >> 8) as u8, 0];
                libc::write(err_w.as_raw_fd(), tagged.as_ptr() as *const libc::c_void, 4);
                libc::_exit(127);
            }
            libc::execve(spec.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let errno = *libc::__errno_location();
            let tagged = [b'E', errno as u8, (errno >> 8) as u8, 0];
            libc::write(err_w.as_raw_fd(), tagged.as_ptr() as *const libc::c_void, 4);
            libc::_exit(127);
        }
    }
    drop(sync_r);
    drop(err_w);
    let seized = ptrace::seize(pid);
    if seized.is_ok() {
        // The go-ahead (see the child's side). A failed write leaves the
        // child reading nothing: it exits, and the wait below says so.
        let _ = io::Write::write_all(&mut &std::fs::File::from(sync_w), &[1]);
    } else {
        drop(sync_w);
    }
    if let Err(e) = seized {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(io::Error::new(e.kind(), format!("ptrace(PTRACE_SEIZE) failed: {e} (is ptrace allowed here? see /proc/sys/kernel/yama/ptrace_scope)")).into());
    }
    loop {
        match ptrace::wait_tid(pid)? {
            WaitEvent::Event { event, .. } if event == libc::PTRACE_EVENT_EXEC => {
                // Let execve itself return (it would overwrite rax), so the
                // caller gets the thread at a plain syscall-exit stop.
                ptrace::syscall(pid, 0)?;
                return match ptrace::wait_tid(pid)? {
                    WaitEvent::SyscallStop { .. } => Ok(pid),
                    ev => {
                        Err(io::Error::other(format!("unexpected stop after exec: {ev:?}")).into())
                    }
                };
            }
            WaitEvent::Event { .. } | WaitEvent::SyscallStop { .. } => ptrace::cont(pid, 0)?,
            WaitEvent::Signal { signo, .. } => ptrace::cont(pid, signo)?,
            WaitEvent::Exited { .. } | WaitEvent::Signaled { .. } => {
                let mut buf = [0u8; 4];
                let f = std::fs::File::from(err_r);
                let n = io::Read::read(&mut &f, &mut buf).unwrap_or(0);
                let errno = i32::from(buf[1]) | (i32::from(buf[2]) << 8);
                let what = match buf[0] {
                    b'S' if n == 4 => "installing the seccomp filter failed",
                    b'E' if n == 4 => "execve failed",
                    b'N' if n == 4 => "entering a mount namespace of its own to hide paths failed (--hide-path needs root)",
                    b'H' if n == 4 => "mounting over a path to hide failed",
                    _ => "the child exited before exec",
                };
                let e = io::Error::new(
                    io::Error::from_raw_os_error(errno).kind(),
                    format!("{what}: {}", io::Error::from_raw_os_error(errno)),
                );
                return Err(if buf[0] == b'E' && n == 4 && errno == libc::ETXTBSY {
                    Failure::TextBusy(e)
                } else {
                    Failure::Other(e)
                });
            }
        }
    }
}

/// Makes `cmd`'s child start with no signal blocked, whatever the spawning
/// thread blocks (the harness blocks SIGINT, SIGTERM and SIGHUP in every
/// thread so that one thread can take them with sigwait; tests and the
/// recorder must start with the usual, empty mask).
pub fn with_empty_signal_mask(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls on a local sigset.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn spec(path: &std::path::Path) -> SpawnSpec {
        let path = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        SpawnSpec {
            argv: vec![path.clone()],
            path,
            envp: Vec::new(),
            cwd: None,
            filter: crate::seccomp::filter(0),
            sigmask: None,
            ignored: None,
            hide: Vec::new(),
            stack_limit: program_stack_limit(),
        }
    }

    fn kill_and_reap(pid: i32) {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
        }
    }

    /// Regression: a verification replay failed at random under load with
    /// "execve failed: Text file busy": the replay's private copy of the
    /// executable, written and closed by one thread, was still open in a
    /// child another thread had forked. The exec is now tried again.
    #[test]
    fn exec_of_a_file_briefly_open_for_writing_is_retried() {
        let dir = std::env::temp_dir().join(format!("rrtest-sys-txtbsy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("true-copy");
        std::fs::copy("/bin/true", &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
        let started = Instant::now();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            drop(writer);
        });
        let pid = spawn(&spec(&exe)).expect("the exec succeeds once the writer is gone");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "the first exec met the writer"
        );
        kill_and_reap(pid);
        closer.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exec_of_a_file_kept_open_for_writing_fails_naming_the_tries() {
        let dir = std::env::temp_dir().join(format!("rrtest-sys-txtbsy2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("true-copy");
        std::fs::copy("/bin/true", &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&exe).unwrap();
        let err = spawn(&spec(&exe)).expect_err("the file stays open for writing");
        let text = err.to_string();
        assert!(text.contains("Text file busy"), "{text}");
        assert!(
            text.contains(&format!("tried {TEXT_BUSY_TRIES} times")),
            "{text}"
        );
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
