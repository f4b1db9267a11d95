//! Breadth trials for a tracer that plays the kernel for its child (issue
//! #20), as user-mode kernels and syscall emulators do: the program's own
//! `PTRACE_SYSEMU` and `PTRACE_SYSEMU_SINGLESTEP`, emulated; and for the
//! segment bases and TLS descriptors such a tracer reads and sets
//! (`PTRACE_ARCH_PRCTL`, `PTRACE_GET_THREAD_AREA`), and the pending
//! signals it reads (`PTRACE_PEEKSIGINFO`). Each fixture
//! runs natively, and is recorded, verified and replayed identically
//! (output and exit status compared), once and a few times more
//! (`::repeated`), and recorded under the chaos scheduler at three seeds
//! (`breadth::ptrace_sysemu::under_chaos`).
//!
//! - `ptrace_sysemu`: resumed with `PTRACE_SYSEMU` from a `PTRACE_SYSCALL`
//!   entry stop, the child's getppid runs with no exit stop; then the
//!   child's syscalls stop at their entry and are not run; the tracer
//!   answers them: getpid 4242 (`PTRACE_SETREGS`), a write
//!   to stdout made by the tracer from the child's bytes
//!   (`PTRACE_PEEKDATA`), a number no kernel has left -ENOSYS (then
//!   `PTRACE_SYSCALL` shows the skipped call's exit stop), rt_sigprocmask 0
//!   (`PTRACE_POKEUSER`; the mask left), exit_group 0 (the child goes on),
//!   then `PTRACE_SYSEMU_SINGLESTEP` steps to the next call; the stops'
//!   registers (`orig_rax` the call, `rax` -ENOSYS), `PTRACE_PEEKUSER` and
//!   `PTRACE_GET_SYSCALL_INFO` (an entry) checked by the tracer, the
//!   results by the child;
//! - `ptrace_arch_prctl`: `ARCH_GET_FS` (the child's thread pointer, equal
//!   to `fs_base`), `ARCH_GET_GS`, EFAULT for an unwritable address;
//!   `ARCH_SET_GS` to a word of the child's, which the child reads through
//!   `%gs` after its stop; EPERM for an `ARCH_SET_FS` past user space,
//!   EINVAL for an unknown code; `PTRACE_GET_THREAD_AREA` of an unused TLS
//!   entry (the kernel's empty descriptor), EINVAL and EIO for indexes
//!   outside them;
//! - `ptrace_peeksiginfo`: the child's blocked signals, sent to the thread
//!   (tgkill) and to the process (kill, sigqueue twice), read from the
//!   thread's queue and the shared one, from an offset, a few at a time,
//!   and the kernel's EINVALs and EFAULTs; then passed on as the child
//!   unblocks them.

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, REPEATS};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

/// The fixtures.
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "PTRACE_SYSCALL: entry stop at getppid 1\n",
        "SYSEMU stop at getpid: SIGTRAP|0x80 1, orig_rax getpid 1, rax -ENOSYS 1\n",
        "PEEKUSER of orig_rax: getpid 1\n",
        "GET_SYSCALL_INFO: 80, op 1, nr getpid 1\n",
        "SYSEMU stop at write: orig_rax write 1, fd 1, 43 bytes\n",
        "child: this line was written by its tracer\n",
        "SYSEMU stop at call 999: rax -ENOSYS 1, args 1 2 3\n",
        "PTRACE_SYSCALL from it: an exit stop 1, orig_rax 999, rax -ENOSYS 1; GET_SYSCALL_INFO: 33, op 2, rval -ENOSYS 1\n",
        "SYSEMU stop at rt_sigprocmask: 1, SIG_BLOCK 1\n",
        "PEEKUSER of rax after the POKEUSER: 0 1\n",
        "SYSEMU stop at exit_group: 1, status 9\n",
        "SYSEMU_SINGLESTEP: some steps 1, then a stop at the done call 1, rax -ENOSYS 1, arg 0x5eed\n",
        "child: getppid run: the parent 1\n",
        "child: getpid 4242, write 43, unknown call -1 errno 38, rt_sigprocmask 0, SIGUSR1 blocked 0, exit_group 0, done 7\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_sysemu", CBuild::pie("ptrace_sysemu"))
}, Spec {
    stdout_has: &[
        "ARCH_GET_FS: 0, the child's thread pointer 1, equal to fs_base 1\n",
        "ARCH_GET_GS: 0, base 0, equal to gs_base 1\n",
        "ARCH_GET_FS to address 8: -1, errno 14\n",
        "ARCH_SET_GS to the marker: 0, gs_base now the marker's address 1\n",
        "ARCH_SET_FS past user space: -1, errno 1, fs_base unchanged 1\n",
        "PTRACE_ARCH_PRCTL of code 0x9999: -1, errno 22\n",
        "GET_THREAD_AREA of entry 12: 0, entry 12, base 0x0, limit 0x0, flags 0x28\n",
        "GET_THREAD_AREA of entry 11: -1, errno 22\n",
        "GET_THREAD_AREA of entry -1: -1, errno 5\n",
        "child: gs base the marker's address 1, the word through %gs 0x6d61726b6572, fs base unchanged 1\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_arch_prctl", CBuild::pie("ptrace_arch_prctl"))
}, Spec {
    stdout_has: &[
        "PEEKSIGINFO of the thread's queue: 1, SIGUSR1 SI_TKILL\n",
        "PEEKSIGINFO of the shared queue: 3, SIGUSR2 SI_USER, SIGRTMIN SI_QUEUE value 11, SIGRTMIN SI_QUEUE value 22\n",
        "from the second on: 2, SIGRTMIN SI_QUEUE value 11, SIGRTMIN SI_QUEUE value 22\n",
        "one only: 1, SIGUSR2 SI_USER\n",
        "nr 0: 0\n",
        "past the end: 0\n",
        "an unknown flag: -1, errno 22\n",
        "a negative nr: -1, errno 22\n",
        "arguments at address 8: -1, errno 14\n",
        "a buffer at address 8: -1, errno 14\n",
        "child: handlers run: 4\n",
        "parent: signals passed on: 4\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_peeksiginfo", CBuild::pie("ptrace_peeksiginfo"))
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(SPECS, REPEATS, "breadth::ptrace_sysemu::under_chaos")
}
