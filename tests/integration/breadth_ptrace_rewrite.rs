//! Breadth trials for a tracer that changes or skips its tracee's syscall
//! at the syscall-entry stop (issue #20), as sandboxes and fault
//! injectors do with `PTRACE_SYSCALL`: its writes of the general
//! registers (`PTRACE_POKEUSER`, `PTRACE_SETREGS`, `PTRACE_SETREGSET` of
//! `NT_PRSTATUS`) and memory (`PTRACE_POKEDATA`) there take effect, the
//! call then made being the one the registers name, and replay makes them
//! when its tracee reaches that entry (format version 7). The fixture runs
//! natively, and is recorded, verified and replayed identically (output
//! and exit status compared), once and a few times more (`::repeated`),
//! and recorded under the chaos scheduler at three seeds
//! (`breadth::ptrace_syscall_rewrite::under_chaos`).
//!
//! - `ptrace_syscall_rewrite`: getpid made getppid (`orig_rax` poked; the
//!   exit stop shows getppid), a write into a pipe whose length the
//!   tracer halves (`PTRACE_SETREGS`), a write whose buffer it rewrites
//!   (`PTRACE_POKEDATA`), a dup skipped (`orig_rax` -1 with
//!   `PTRACE_SETREGSET`; its exit stop with `rax` -ENOSYS, set to 4242
//!   there), an openat whose path pointer it moves to a buffer of the
//!   child's it wrote "/dev/null" into, a getpgid skipped with no exit
//!   write (-ENOSYS), a geteuid skipped with its result (777) written at
//!   the entry too (no exit write: a call of number -1 recorded whatever
//!   it returned), a write whose buffer it rewrites there through
//!   `/proc/PID/mem` (`pwrite`) and one through `process_vm_writev`
//!   (recorded as writes replay makes at that entry); the child checks
//!   each result (and the pipe's bytes, no descriptor made by the skipped
//!   dup, the descriptor's device, the rewritten buffers).

use libtest_mimic::Trial;

use crate::breadth::{c, variant_trials, REPEATS};
use crate::recorder::Spec;
use crate::recorder_build::CBuild;

/// The fixtures.
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "parent: getpid's entry stop: made getppid\n",
        "parent: getpid's exit stop: orig_rax getppid 1, rax my pid 1\n",
        "parent: write's entry stop: 16 bytes, halved\n",
        "parent: the second write's entry stop: the buffer lowercas, rewritten\n",
        "parent: dup's entry stop: skipped\n",
        "parent: the skipped dup's exit stop: orig_rax -1, rax -ENOSYS 1\n",
        "parent: openat's entry stop: its path moved to the spare buffer 1\n",
        "parent: getpgid's entry stop: skipped\n",
        "parent: the skipped getpgid's exit stop: orig_rax -1, rax -ENOSYS 1\n",
        "parent: geteuid's entry stop: skipped, rax 777\n",
        "parent: the skipped geteuid's exit stop: orig_rax -1, rax 777\n",
        "parent: the third write's entry stop: the buffer procmem_, rewritten through /proc/PID/mem\n",
        "parent: the fourth write's entry stop: the buffer vmwrite_, rewritten with process_vm_writev\n",
        "child: getpid returned the parent's pid 1\n",
        "child: write of 16 returned 8, the pipe holds 8 bytes: 01234567\n",
        "child: write of the buffer returned 8, the pipe holds 8 bytes: UPPERCAS, the buffer UPPERCAS\n",
        "child: dup returned 4242 (errno 0), no new descriptor 1\n",
        "child: openat of a missing path gave /dev/null 1, the spare buffer /dev/null\n",
        "child: getpgid skipped returned -1, errno ENOSYS 1\n",
        "child: geteuid skipped with its result written at the entry returned 777 (errno 0)\n",
        "child: write of the buffer rewritten through /proc/PID/mem returned 8, the pipe holds 8 bytes: PROCMEM!, the buffer PROCMEM!\n",
        "child: write of the buffer rewritten with process_vm_writev returned 8, the pipe holds 8 bytes: VMWRITE!, the buffer VMWRITE!\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_syscall_rewrite", CBuild::pie("ptrace_syscall_rewrite"))
}];

/// The trials.
pub fn trials() -> Vec<Trial> {
    variant_trials(
        SPECS,
        REPEATS,
        "breadth::ptrace_syscall_rewrite::under_chaos",
    )
}
