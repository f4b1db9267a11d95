//! Breadth trials for the program's own ptrace requests that modern
//! tracers and debuggers use (issue #20): `ptrace_regset` reads registers
//! with PTRACE_GETREGSET (NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE, whole and
//! cut short, and the kernel's EINVALs), the blocked mask with
//! PTRACE_GETSIGMASK, the stop with PTRACE_GET_SYSCALL_INFO (none, entry
//! with the arguments, exit with a result and an error), changes a syscall's
//! result with PTRACE_SETREGSET and PTRACE_POKEUSER (and the offsets and
//! values the kernel refuses), each checked by the fixture; run natively,
//! and recorded, verified and replayed (`::repeated`: a few more times, as
//! the other ptrace trials; `::under_chaos`: recorded with --chaos at three
//! seeds). `ptrace_fpregs` writes the child's blocked mask
//! (PTRACE_SETSIGMASK, and EINVAL for a size other than 8) and its x87/SSE
//! registers (PTRACE_SETFPREGS, PTRACE_SETREGSET of NT_PRFPREG, and the
//! kernel's EINVALs) and its extended state (PTRACE_SETREGSET of
//! NT_X86_XSTATE: xmm0 and, with AVX, ymm0's upper half; EFAULT for less
//! than the whole area), which the child reads right after its stop (xmm0,
//! xmm1, ymm0, the control words; its mask, with a signal held pending by
//! it), run as `ptrace_regset` is; `::xstate_of_another_layout`: its
//! extended-state write, edited to another XCR0, stops replay there with
//! an error naming both layouts. `ptrace_regset_refused::named_at_once`:
//! the register and mask writes not emulated (the x87/SSE registers, the
//! extended state and the mask at a syscall's entry) fail at once, named;
//! the general registers written at the entry and a debug register written
//! at the exit are accepted (emulated since 2026-12-05). docs/breadth.md
//! lists what is emulated.

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, refused_named, variant_trials};
use crate::recorder::{invocation, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The fixtures that record, verify and replay identically (and print the
/// same lines natively).
const SPECS: &[Spec] = &[Spec {
    stdout_has: &[
        "GETREGSET NT_PRSTATUS: 216 bytes, equal to GETREGS: 1\n",
        "GETREGSET NT_PRSTATUS of 16 bytes: 16 written, the rest untouched: 1\n",
        "GETREGSET NT_PRSTATUS of 0 bytes: 0, length 0\n",
        "GETREGSET NT_PRSTATUS of 12 bytes: -1, errno 22\n",
        "GETREGSET of note type 0x999: -1, errno 22\n",
        "GETREGSET NT_PRFPREG: 512 bytes, equal to GETFPREGS: 1\n",
        "GETREGSET NT_X86_XSTATE of 1 MiB - 4 bytes: -1, errno 22\n",
        "GETREGSET NT_X86_XSTATE: more than 576 bytes, its legacy area equal to GETFPREGS: 1\n",
        "GETREGSET NT_X86_XSTATE: the child's ymm0 read back (or no AVX): 1\n",
        "GETREGSET NT_X86_XSTATE of 520 bytes: 520, the first 416 equal: 1\n",
        "GETSIGMASK: SIGUSR1 and SIGUSR2 blocked, nothing else: 1\n",
        "GETSIGMASK of 4 bytes: -1, errno 22\n",
        "GET_SYSCALL_INFO at the signal stop: 24, op 0, arch, ip and sp right: 1\n",
        "GET_SYSCALL_INFO of 4 bytes: 24, only 4 written: 1\n",
        "without TRACESYSGOOD, at getppid's entry: 24, op 0, event message 1\n",
        "without TRACESYSGOOD, at getppid's exit: 24, op 0, event message 2\n",
        "GET_SYSCALL_INFO at getppid's entry: 80, op 1, nr and the six arguments right: 1\n",
        "GET_SYSCALL_INFO at getppid's exit: 33, op 2, the parent's pid, no error: 1\n",
        "SETREGSET NT_PRSTATUS at getppid's exit: 216 bytes\n",
        "SETREGSET NT_PRSTATUS of 0 bytes: 0, length 0\n",
        "SETREGSET NT_PRSTATUS of 12 bytes: -1, errno 22\n",
        "GET_SYSCALL_INFO at close's exit: op 2, rval -9, is_error 1\n",
        "POKEUSER at a misaligned offset: -1, errno 5\n",
        "POKEUSER at past the registers: -1, errno 5\n",
        "POKEUSER at past struct user: -1, errno 5\n",
        "POKEUSER at a null code segment: -1, errno 5\n",
        "after the POKEUSERs: rax 777, cs not null: 1\n",
        "child: getppid returned the parent 1, then 4242; close(-1) returned 777\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_regset", CBuild::pie("ptrace_regset"))
}, Spec {
    stdout_has: &[
        "GETSIGMASK at the first stop: SIGUSR1 alone: 1\n",
        "SETSIGMASK of 4 bytes: -1, errno 22\n",
        "SETSIGMASK of SIGUSR2, SIGTERM, SIGKILL, SIGSTOP: 0; read back SIGUSR2 and SIGTERM alone: 1\n",
        "GETFPREGS at the first stop: xmm0 and xmm1 the child's: 1\n",
        "SETFPREGS of xmm0 and the control word: 0\n",
        "SETFPREGS with a reserved MXCSR bit: -1, errno 22; nothing changed: 1\n",
        "child: after the first stop: xmm0 0123456789abcdeffedcba9876543210, xmm1 11111111111111111111111111111111, x87 control word 0x027f\n",
        "child: blocked: SIGUSR1 0, SIGUSR2 1, SIGTERM 1\n",
        "child: SIGUSR2 sent: pending 1, handled 0\n",
        "parent: the child stopped with signal 12, passed on\n",
        "child: SIGUSR2 unblocked: handled 1\n",
        "GETREGSET NT_PRFPREG at the second stop: 512 bytes, the control word still 0x027f\n",
        "SETREGSET NT_PRFPREG of 256 bytes: -1, errno 22\n",
        "SETREGSET NT_PRFPREG of 12 bytes: -1, errno 22\n",
        "SETREGSET NT_PRFPREG of 1024 bytes: 0, took 512\n",
        "child: after the second stop: xmm0 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf, xmm1 5a5a5a5a00010203040506075a5a5a5a, x87 control word 0x037f, MXCSR rounding 0x2000\n",
        "SETREGSET NT_X86_XSTATE of 512 bytes: -1, errno 14\n",
        "SETREGSET NT_X86_XSTATE of 64 KiB: 0, took the whole area: 1\n",
        "child: after the third stop: xmm0 333231302f2e2d2c2b2a292827262524, ymm0's upper half as its tracer set it (or no AVX): 1\n",
        "child: all as its tracer set them: 1\n",
        "parent: the child exited with 0\n",
    ],
    ..c("ptrace_fpregs", CBuild::pie("ptrace_fpregs"))
}];

/// How many times `::repeated` records, verifies and replays a fixture.
const REPEATS: usize = 3;

/// The trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = variant_trials(SPECS, REPEATS, "breadth::ptrace_regset::under_chaos");
    let skip = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    trials.push(
        Trial::test("breadth::ptrace_regset_refused::named_at_once", || {
            refused("breadth::ptrace_regset_refused::named_at_once")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::ptrace_fpregs::xstate_of_another_layout", || {
            xstate_of_another_layout("breadth::ptrace_fpregs::xstate_of_another_layout")
        })
        .with_ignored_flag(skip),
    );
    trials
}

/// `ptrace_fpregs` recorded, then its trace written again with the
/// extended-state write's recorded XCR0 changed (as if recorded on a CPU
/// with other states enabled): replay must stop at that write with an
/// error naming both layouts, and not run the child on past it; the
/// unedited trace replays to the recorded output.
fn xstate_of_another_layout(trial: &str) -> Result<(), Failed> {
    use rrtest_trace::{Event, WriteKind};
    let dir = TrialDir::new(trial)?;
    let spec = &SPECS[1];
    let inv = invocation(spec, dir.sub("work")?)?;
    let recorded = dir.path.join("recorded");
    let rec = inv.record(&recorded)?;
    rec.expect_code(0)?;
    let (header, mut events) = run::read_trace(&recorded)?;
    let mut edited = 0;
    for e in &mut events {
        if let Event::TraceeWrite {
            kind: WriteKind::XState,
            bytes,
            ..
        } = e
        {
            // XCR0 bit 9 (PKRU) flipped: another layout.
            bytes[1] ^= 0x02;
            edited += 1;
        }
    }
    check!(
        edited == 1,
        "{edited} extended-state writes in the trace, not 1\n{}",
        rec.describe()
    );
    let trace = dir.path.join("trace");
    run::write_edited_trace(&recorded, &trace, header, &events)?;
    run::expect_edit_refused(
        &inv,
        &recorded,
        &rec,
        &trace,
        &["NT_X86_XSTATE", "cannot be replayed here"],
        "child: after the third stop",
        "an extended-state write of another layout",
    )?;
    dir.finish();
    Ok(())
}

/// Register and mask writes the emulated ptrace does not do (the x87/SSE
/// registers, the extended state and the mask at a syscall-entry stop)
/// fail at once (a debug register written at the exit stop, and the
/// general registers at the entry stop, are emulated since 2026-12-05)
/// with EIO, each named in a warning of the recorder; the program goes on
/// to its end, and the trace verifies and replays the same output.
fn refused(trial: &str) -> Result<(), Failed> {
    refused_named(
        trial,
        &c(
            "ptrace_regset_refused",
            CBuild::pie("ptrace_regset_refused"),
        ),
        &[
            // Emulated since 2026-12-05 (before, EIO): the general
            // registers written at a syscall-entry stop (the same values
            // here: nothing to record).
            "PTRACE_POKEUSER at a syscall entry returned 0, errno 0\n",
            "PTRACE_SETREGSET(NT_PRSTATUS) at a syscall entry returned 0, errno 0\n",
            "PTRACE_SETFPREGS at a syscall entry returned -1, errno 5\n",
            "PTRACE_SETSIGMASK at a syscall entry returned -1, errno 5\n",
            "PTRACE_SETREGSET(NT_X86_XSTATE) at a syscall entry returned -1, errno 5\n",
            // Emulated since 2026-12-05 (before, EIO).
            "PTRACE_POKEUSER of DR0 returned 0, errno 0\n",
            "parent: the child exited with 0\nEXIT-SUCCESS\n",
        ],
        &[
            "PTRACE_SETFPREGS at a syscall-entry stop",
            "PTRACE_SETSIGMASK at a syscall-entry stop",
            "PTRACE_SETREGSET of NT_X86_XSTATE at a syscall-entry stop",
        ],
    )
}
