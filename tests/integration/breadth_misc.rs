//! Breadth trials for smaller classes of program behaviour (issue #20):
//! each a C fixture recorded, verified and replayed identically (output
//! and exit status compared), or refused by name. docs/breadth.md lists
//! them.
//!
//! - `restart_calls`: poll, nanosleep and clock_nanosleep with a timeout,
//!   interrupted by a handled signal (EINTR, SA_RESTART or not), by an
//!   unhandled SIGCONT, and by SIGSTOP + SIGCONT while two threads sleep:
//!   the kernel resumes them through `restart_syscall`
//!   (`::restarts_recorded` checks the trace has those);
//! - `clone_flags`: clone and clone3 with CLONE_VM without CLONE_THREAD,
//!   CLONE_VFORK, CLONE_FILES, CLONE_SIGHAND, CLONE_CHILD_SETTID/CLEARTID,
//!   CLONE_SETTLS, CLONE_PIDFD, CLONE_PARENT, and clones the kernel
//!   refuses (`::repeated`: a few rounds, the schedule decides whether a
//!   CLONE_VM child exits before its parent's clone is written);
//!   `::set_tid_refused` (root): a clone3 whose set_tid names a free pid
//!   succeeds, and the trace is unreplayable, named;
//! - `stack_overflow`: recursion until the stack runs out, caught on a
//!   sigaltstack (the depth printed), and without a handler (death by
//!   SIGSEGV, each depth printed): the same depth in replay;
//!   `::recorded_limit`: recorded under a 4 MiB hard stack limit, the
//!   trace replays under our own (8 MiB or more) with the recorded depth,
//!   and a trace recorded with 8 MiB is refused, named, under 4 MiB;
//! - `stack_growth`: children recursing with 4 KiB frames to a stack
//!   overflow under a stack limit of their own (128 MiB, `setrlimit`),
//!   interrupted midway while their parent computes: replay emulated the
//!   `setrlimit` and overflowed at 8 MiB, before the recorded execution
//!   points (every recording, until 2026-12-06); and a point in the
//!   recursion did not depend on how far the stack mapping had grown
//!   (`tracee::stack_window_tests`, `points::tests`); `::xxh3_trace`:
//!   a trace with the digests of recorders before that day still verifies
//!   and replays alike;
//! - `loop_counter_in_arena`: two threads preempted inside loops whose
//!   registers are the same at each turn, counting in memory each
//!   allocated (its own `malloc` arena, which the points' digest does not
//!   cover): replay stopped them at the first turn in the point's
//!   registers and printed another sum (every recording until 2026-12-06);
//!   the points now hold the memory words that changed in one turn
//!   (`tracee::words`), and replay compares them (`::repeated`);
//! - `inlined_compute_loop` (`-O1`): two threads computing in a function
//!   that returns only when their work is done, preempted in turn: each
//!   point at the inner loop's exit (`::at_loop_exits` checks the
//!   counters), where the recorder used to wait 200 ms for a return and
//!   take the point inside the loop; `inlined_compute_loop_long_turns`
//!   (`LONG_TURNS`): inner loops of about 10 ms, so that a point at a
//!   loop's exit is not confirmed within 5 ms and is taken where the
//!   thread then is, with the memory words that changed since the exit;
//! - `spin_unpatchable_jmp`: two threads spinning for their turns in a
//!   loop whose instruction after its `pause` is a 2-byte `jmp` replay's
//!   filter cannot patch: the spin probes there move to the `jmp`'s target
//!   (`::probed_ahead` checks the counter), where the points were searched
//!   stop by stop;
//! - `vdso_lookup`: the vDSO's symbols looked up by hand (auxv and an ELF
//!   walk, dlopen with RTLD_NOLOAD + dlsym + dlvsym) and called; under the
//!   recorder the vDSO is the recorder's own, at its fixed address
//!   (`::exposed`: the program prints what it prints natively, also
//!   through the vDSO `/proc/self/auxv` names, sees no kernel vDSO or vvar
//!   mapping, its calls through the vDSO are buffered,
//!   and the trace verifies and replays alike); `::hidden_trace`: a trace
//!   as recorders before the own vDSO wrote it (format version 2, the
//!   vDSO hidden) still verifies and replays alike.
//! - `group_stop_kill`: SIGKILL to a child held in a group stop (stopped
//!   by itself, with three threads, stopped by its parent) and SIGTERM to
//!   a stopped child (pending until the SIGCONT): replay kills the child
//!   where the recording saw it die, instead of waiting for it for ever
//!   (`::repeated`: a few rounds).
//! - `kill_threaded_child`: a child of four threads blocked in `pause`
//!   killed by its parent's SIGTERM, SIGINT and SIGUSR1 (a shell's `kill`
//!   of a background job): replay delivers the signal where the recording
//!   did, before the other threads' deaths (it killed them one by one with
//!   SIGKILL, and then found the process gone: `PTRACE_CONT ... No such
//!   process`, until 2026-12-06) (`::repeated`: a few rounds);
//! - `fanotify_perm` (root only): a fanotify group of a permission class
//!   whose listener is the main thread, a second thread's `open`s and
//!   `read`s of the marked file each sleeping in the kernel until it
//!   answers (the first of each denied): the recording stalled (the
//!   buffered `open` could be neither unwound nor left; then a traced
//!   `pread64`, not split, kept the listener from running) until
//!   2026-12-06 (`::repeated`: a few rounds);
//! - `absent_features`: `io_uring_setup`, `userfaultfd` and `memfd_secret`,
//!   by `syscall` and by `int $0x80`, which the recorder cannot record: it
//!   answers them ENOSYS, as a kernel built without them answers, and the
//!   program falls back (its stdout the same natively and recorded);
//!   `::enosys`: the same stdout natively and recorded; recorded, each call
//!   answered ENOSYS and named once in a warning, the trace verifies and
//!   replays with the same answers.

use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, refused_cases, repeated, spec_trials, with_defines};
use crate::recorder::{self, invocation, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The fixtures that record, verify and replay identically.
const SPECS: &[Spec] = &[
    Spec {
        stdout_has: &[
        "step 1: nanosleep interrupted by SIGUSR1 (SA_RESTART): handler ran 1 time(s)",
        "step 2: clock_nanosleep with a SIGCONT sent returned 0, full time slept: 1",
        "step 3: second thread's clock_nanosleep returned 0 (error 0), full time slept: 1",
        "step 3: main thread's poll returned 0, full time slept: 1",
    ],
        ..c("restart_calls", CBuild::pie("restart_calls"))
    },
    Spec {
        stdout_has: &[
            "CLONE_VM: the child's write seen: 42",
            "CLONE_CHILD_SETTID: the child saw its tid: 1; CLEARTID cleared it: 1",
            "CLONE_SETTLS: the child ran on its own thread pointer: 1",
            "CLONE_PIDFD: readable at the child's exit, waitid(P_PIDFD) says exit 9, pid matches: 1",
            "CLONE_PARENT: the sibling ran, its parent not us: 1; not our child: 1 (errno 10)",
            "CLONE_THREAD without CLONE_SIGHAND: -1, errno 22",
            "clone3 with nonzero bytes past the struct: -1, errno 7",
        ],
        ..c("clone_flags", CBuild::pie("clone_flags"))
    },
    Spec {
        stdout_has: &["stack limit 8192 KiB\n", "overflow caught at depth "],
        ..c("stack_overflow", CBuild::pie("stack_overflow"))
    },
    Spec {
        code: 128 + 11, // SIGSEGV
        success_marker: false,
        stdout_has: &["stack limit 8192 KiB\n1\n2\n3\n"],
        ..c(
            "stack_overflow_no_handler",
            with_defines("stack_overflow", &["NO_HANDLER"]),
        )
    },
    // The children's own stack limit (128 MiB) is set in replay too, and
    // execution points in their recursions are found however far the
    // stack mapping had grown.
    Spec {
        stdout_has: &[
            "round 0: child killed by signal 11; sum 1799999970000000\n",
            "round 5: child killed by signal 11; sum 10799999820000000\n",
        ],
        ..c("stack_growth", CBuild::pie("stack_growth"))
    },
    // Threads preempted inside loops whose registers are the same at each
    // turn, their counts in their own malloc arenas: replay stops each at
    // the recorded turn (the points' memory words), and prints the sum.
    Spec {
        stdout_has: &["both threads counted; sum "],
        differs: true,
        ..c("loop_counter_in_arena", CBuild::pie("loop_counter_in_arena"))
    },
    // Two threads computing in a function that returns only at the end:
    // preempted, each at its inner loop's exit (`::at_loop_exits`).
    Spec {
        stdout_has: &[
            "main de5e4a257b38a401, thread 13355e4794f9402, items 120000 and 120000\n",
        ],
        ..c("inlined_compute_loop", CBuild::pie("inlined_compute_loop"))
    },
    // The same with inner loops of about 10 ms: a point at a loop's exit
    // is not confirmed at the next exit within 5 ms, and is taken where
    // the thread then is, with the words changed since the exit (7-12
    // such points in each of 3 recordings while this was written).
    Spec {
        stdout_has: &["main 8d0396628314801, thread cd581732455f2802, items 60 and 60\n"],
        ..c(
            "inlined_compute_loop_long_turns",
            with_defines("inlined_compute_loop", &["LONG_TURNS"]),
        )
    },
    // Two threads spinning for their turns at a `jmp` replay's filter
    // cannot patch: each spin probe there moves to the `jmp`'s target
    // (`::probed_ahead` checks the counter).
    Spec {
        stdout_has: &["turns taken: 30 and 30\n"],
        ..c("spin_unpatchable_jmp", CBuild::pie("spin_unpatchable_jmp"))
    },
    Spec {
        stdout_has: &["1000 more calls of clock_gettime(CLOCK_REALTIME)\n"],
        ..c("vdso_lookup", CBuild::pie("vdso_lookup"))
    },
    // glibc's futex wait jumps back into a patched syscall site's region
    // from 0x93 bytes past it: the main thread's pthread_join returned into
    // the middle of the jmp (SIGSEGV) until sites were scanned wider.
    Spec {
        stdout_has: &[
            "torn reads 0\n",
            "timedwrlock while read-locked: ETIMEDOUT\n",
            "second timedrdlock: 0\n",
        ],
        ..c("rwlock_threads", CBuild::pie("rwlock_threads"))
    },
    // The recorder holds a group-stopped child; its parent's kill() of it
    // is emulated in replay, which kills it at its recorded death.
    Spec {
        stdout_has: &[
            "case 1: SIGKILL to a child that stopped itself\n  wait (WUNTRACED): stopped by signal 19\n  wait after SIGKILL: killed by signal 9\n",
            "case 2: SIGKILL to a stopped child of three threads\n  wait (WUNTRACED): stopped by signal 19\n  wait after SIGKILL: killed by signal 9\n",
            "case 3: SIGKILL to a child stopped by its parent\n  wait (WUNTRACED): stopped by signal 19\n  wait after SIGKILL: killed by signal 9\n",
            "  the stopped child took SIGTERM before SIGCONT: no\n  wait after SIGCONT: killed by signal 15\n",
        ],
        ..c("group_stop_kill", CBuild::pie("group_stop_kill"))
    },
    // Replay delivers the fatal signal where it was recorded delivered,
    // before the threads' deaths.
    Spec {
        stdout_has: &[
            "a child of four threads sent signal 15: killed by signal 15\n",
            "a child of four threads sent signal 2: killed by signal 2\n",
            "a child of four threads sent signal 10: killed by signal 10\n",
        ],
        ..c("kill_threaded_child", CBuild::pie("kill_threaded_child"))
    },
];

/// Calls answered ENOSYS under the recorder; the fallbacks print the same
/// stdout natively and recorded. Not in [`SPECS`]: the recorder's warnings
/// make its stderr differ from replay's, which `record_replay` compares.
const ABSENT: Spec = Spec {
    stdout_has: &[
        "read /proc/self/stat without io_uring: yes\n",
        "page filled without userfaultfd: filled by hand\n",
        "secret kept in plain memory: a plain secret\n",
    ],
    ..c("absent_features", CBuild::pie("absent_features"))
};

/// What `absent_features` prints on stderr under the recorder: each call
/// answered ENOSYS, by both ABIs.
const ABSENT_ANSWERS: &[&str] = &[
    "x86-64 io_uring_setup: ENOSYS\n",
    "i386 io_uring_setup: ENOSYS\n",
    "x86-64 userfaultfd: ENOSYS\n",
    "i386 userfaultfd: ENOSYS\n",
    "x86-64 memfd_secret: ENOSYS\n",
    "i386 memfd_secret: ENOSYS\n",
];

/// A fanotify group of a permission class whose listener is a thread of
/// the program (root only: `CAP_SYS_ADMIN`).
const FANOTIFY: &[Spec] = &[Spec {
    stdout_has: &[
        "open of the marked file: denied\nopen of the marked file: allowed\n\
         access of the marked file: denied\naccess of the marked file: allowed\n\
         open 1: Operation not permitted\nopen 2: opened\n\
         read 1: Operation not permitted\nread 2: marked\n",
    ],
    ..c("fanotify_perm", CBuild::pie("fanotify_perm"))
}];

/// How many more times `::repeated` records, verifies and replays.
const REPEATS: usize = 4;

/// The trials.
pub fn trials() -> Vec<Trial> {
    let gcc = build::gcc_missing();
    let skip = gcc.is_some() || run::recording_unavailable().is_some();
    let mut trials = spec_trials("breadth::misc", SPECS, recorder::record_replay);
    // A CLONE_VM child runs and exits before or after its parent's clone
    // is written, as the schedule falls; a killed child's threads reach
    // their group stop (and their death) in either order: a few rounds.
    // The counting threads' points fall where the schedule puts them.
    for name in [
        "clone_flags",
        "group_stop_kill",
        "kill_threaded_child",
        "loop_counter_in_arena",
    ] {
        trials.push(
            Trial::test(format!("breadth::misc::{name}::repeated"), move || {
                let spec = SPECS.iter().find(|s| s.name == name).expect("listed");
                repeated(&format!("breadth::misc::{name}::repeated"), spec, REPEATS)
            })
            .with_ignored_flag(skip),
        );
    }
    // A clone3 that chose its child's pid (set_tid) succeeds only with
    // privilege: refused by name.
    let not_root = (!crate::portable::is_root()).then_some("not root");
    // fanotify_init needs CAP_SYS_ADMIN.
    trials.extend(
        spec_trials("breadth::misc", FANOTIFY, recorder::record_replay)
            .into_iter()
            .map(|t| {
                let ignored = t.has_ignored_flag() || not_root.is_some();
                t.with_ignored_flag(ignored)
            }),
    );
    trials.push(
        Trial::test("breadth::misc::fanotify_perm::repeated", || {
            repeated(
                "breadth::misc::fanotify_perm::repeated",
                &FANOTIFY[0],
                REPEATS,
            )
        })
        .with_ignored_flag(skip || not_root.is_some()),
    );
    trials.push(
        Trial::test("breadth::misc::clone_flags::set_tid_refused", || {
            let cases: [(&'static str, &'static [&'static str], &str); 1] = [(
                "clone_set_tid",
                &["SET_TID_FREE"],
                "clone3 with set_tid (1 chosen id(s); the child got",
            )];
            refused_cases(
                "breadth::misc::clone_flags::set_tid_refused",
                "clone_flags",
                &cases,
            )
        })
        .with_ignored_flag(skip || not_root.is_some()),
    );
    trials.push(
        Trial::test("breadth::misc::vdso_lookup::exposed", || {
            vdso_exposed("breadth::misc::vdso_lookup::exposed")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::spin_unpatchable_jmp::probed_ahead", || {
            spin_unpatchable_jmp_probed_ahead("breadth::misc::spin_unpatchable_jmp::probed_ahead")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::inlined_compute_loop::at_loop_exits", || {
            inlined_compute_loop_at_loop_exits("breadth::misc::inlined_compute_loop::at_loop_exits")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::stack_growth::xxh3_trace", || {
            stack_growth_xxh3_trace("breadth::misc::stack_growth::xxh3_trace")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::vdso_lookup::hidden_trace", || {
            vdso_hidden_trace("breadth::misc::vdso_lookup::hidden_trace")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::stack_overflow::recorded_limit", || {
            stack_limit_recorded("breadth::misc::stack_overflow::recorded_limit")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::absent_features::enosys", || {
            absent_features_enosys("breadth::misc::absent_features::enosys")
        })
        .with_ignored_flag(skip),
    );
    trials.push(
        Trial::test("breadth::misc::restart_calls::restarts_recorded", || {
            restarts_recorded("breadth::misc::restart_calls::restarts_recorded")
        })
        .with_ignored_flag(skip),
    );
    trials
}

/// `absent_features` natively and recorded: the same stdout (the
/// fallbacks); recorded, each of its six calls answered ENOSYS (the
/// program's stderr), each feature named once in the recorder's warning,
/// the trace verified, and replay answering the same (stdout and the
/// program's stderr lines).
fn absent_features_enosys(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&ABSENT, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = recorder::recorded_as_native(&inv, &trace)?;
    for line in ABSENT.stdout_has {
        check!(
            rec.stdout_text().contains(line),
            "the recorded program did not print {line:?}\n{}",
            rec.describe()
        );
    }
    let stderr = rec.stderr_text();
    for line in ABSENT_ANSWERS {
        check!(
            stderr.contains(line),
            "the recorded program did not print {line:?}\n{}",
            rec.describe()
        );
    }
    for call in ["io_uring_setup", "userfaultfd", "memfd_secret"] {
        let warning = format!("{call}: answered ENOSYS under the recorder");
        check!(
            stderr.matches(&warning).count() == 1,
            "the recorder did not warn of {call} once\n{}",
            rec.describe()
        );
    }
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    let rep = inv.replay(&trace)?;
    for line in ABSENT_ANSWERS {
        check!(
            rep.stderr_text().contains(line),
            "the replayed program did not print {line:?}\n{}",
            rep.describe()
        );
    }
    dir.finish();
    Ok(())
}

/// `info --events` of `trace`, as text.
fn events(trace: &std::path::Path) -> Result<String, Failed> {
    let mut cmd = Command::new(crate::common::cargo_rrtest());
    cmd.arg("info").arg("--events").arg(trace);
    let info = run::run(&mut cmd)?;
    info.expect_code(0)?;
    Ok(info.stdout_text())
}

/// `restart_calls` records sleeps that the kernel resumed through
/// `restart_syscall` (one for each sleep of steps 2 and 3: five; a
/// `restart_syscall` interrupted again by step 3's `SIGCONT` is resumed by
/// one more), and the
/// trace verifies: the path the record_replay trial means to cover is
/// taken, not only a program whose output happens to match.
fn restarts_recorded(trial: &str) -> Result<(), Failed> {
    let (dir, _, trace, _) = record_listed(trial, "restart_calls")?;
    recorder::expect_verified(&trace)?;
    let text = events(&trace)?;
    let restarts = text
        .lines()
        .filter(|l| l.contains("restart_syscall() = 0"))
        .count();
    let interrupted = text
        .lines()
        .filter(|l| l.contains("= -1 ERESTART_RESTARTBLOCK"))
        .count();
    check!(
        restarts >= 5 && interrupted >= restarts,
        "expected at least 5 sleeps resumed by restart_syscall (and as many interrupted), saw {restarts} resumed, {interrupted} interrupted\n{text}"
    );
    dir.finish();
    Ok(())
}

/// Runs `script` with `sh -c`, its `$1` the `cargo-rrtest` binary and `$@`
/// the rest of `args`.
fn sh(script: &str, args: &[&std::ffi::OsStr]) -> Result<run::Run, Failed> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .arg(crate::common::cargo_rrtest())
        .args(args);
    run::run(&mut cmd)
}

/// How deep `stack_overflow` got, from its output.
fn depth_of(stdout: &str) -> Option<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("overflow caught at depth "))?;
    line["overflow caught at depth ".len()..]
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// The stack size limit a program is recorded with is in the trace and
/// replay starts it with that one: recorded under a 4 MiB hard limit (the
/// program gets 4 MiB), a replay under ours reaches the recorded depth
/// (with ours, 8 MiB, it went about twice as deep, and diverged at the
/// handler's output). A trace recorded with 8 MiB, replayed under a 4 MiB
/// hard limit, is refused before the program starts, naming the limits.
fn stack_limit_recorded(trial: &str) -> Result<(), Failed> {
    let exe = build::c_fixture(CBuild::pie("stack_overflow"))?;
    let dir = TrialDir::new(trial)?;
    let small = dir.path.join("small");
    let rec = sh(
        "ulimit -s 4096 && exec \"$1\" record -o \"$2\" -- \"$3\"",
        &[small.as_os_str(), exe.as_os_str()],
    )?;
    rec.expect_code(0)?;
    let recorded = depth_of(&rec.stdout_text());
    check!(
        rec.stdout_text().contains("stack limit 4096 KiB") && recorded.is_some(),
        "recorded under a 4 MiB limit:\n{}",
        rec.describe()
    );
    recorder::expect_verified(&small)?;
    let rep = run::replay_in(&small, None)?;
    rep.expect_code(0)?;
    let replayed = depth_of(&rep.stdout_text());
    check!(
        replayed == recorded,
        "replay reached depth {replayed:?}, the recording {recorded:?}\n{}",
        rep.describe()
    );
    let big = dir.path.join("big");
    let rec = inv_record(&big, &exe)?;
    rec.expect_code(0)?;
    let deeper = depth_of(&rec.stdout_text());
    check!(
        deeper.zip(recorded).is_some_and(|(d, r)| d > r + r / 2),
        "with 8 MiB the recursion got to {deeper:?}, with 4 MiB to {recorded:?}"
    );
    let rep = sh(
        "ulimit -s 4096 && exec \"$1\" replay \"$2\"",
        &[big.as_os_str()],
    )?;
    check!(
        rep.code() != 0
            && rep.stderr_text().contains(
                "recorded with a stack size limit of 8192 KiB, above this host's hard limit of 4096 KiB"
            )
            && !rep.stdout_text().contains("overflow caught"),
        "replay under a lower hard limit was not refused up front\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}

/// `cargo-rrtest record -o TRACE -- EXE` with our own limits.
fn inv_record(trace: &std::path::Path, exe: &std::path::Path) -> Result<run::Run, Failed> {
    let mut cmd = Command::new(crate::common::cargo_rrtest());
    cmd.arg("record").arg("-o").arg(trace).arg("--").arg(exe);
    run::run(&mut cmd)
}

/// What `vdso_lookup` says on stderr under the recorder: the vDSO at the
/// recorder's fixed address (`rrtest_abi::VDSO_ADDR`), and no mapping
/// named `[vdso]` or `[vvar]` (the kernel's are gone).
const OWN_VDSO_SEEN: &str = "AT_SYSINFO_EHDR 0x6fffc000; maps name [vdso]: 0, [vvar]: 0\n";

/// Under the recorder `vdso_lookup` finds the recorder's own vDSO and
/// everything in it it finds natively: its stdout is the native run's,
/// byte for byte, with all five functions found by the ELF walk, dlsym
/// and dlvsym (version LINUX_2.6) agreeing, and a vDSO with the same
/// symbols where `/proc/self/auxv` says (rustix reads it there). The
/// kernel's vDSO and vvar pages are gone; its 1000 calls through `__vdso_clock_gettime` are
/// buffered (the site in the vDSO patched); the trace verifies and the
/// replay prints the same, on stdout and stderr.
fn vdso_exposed(trial: &str) -> Result<(), Failed> {
    let (dir, inv, trace, rec) = record_listed(trial, "vdso_lookup")?;
    let native = inv.native()?;
    native.expect_code(0)?;
    check!(
        native.stdout_text().contains(
            "found by an ELF walk: clock_gettime 1, gettimeofday 1, time 1, getcpu 1, clock_getres 1\n"
        ),
        "the program found no vDSO natively (a kernel without one?)\n{}",
        native.describe()
    );
    run::expect_same_bytes("stdout (native, recorded)", &native.stdout, &rec.stdout)?;
    for line in [
        "dlsym agrees with the walk: 1\n",
        "dlvsym(LINUX_2.6) agrees: 1; another version: 0\n",
        "__vdso_clock_getres(CLOCK_MONOTONIC) is libc's: 1\n",
        // The kernel's copy of the auxv names the kernel's vDSO's place,
        // where the recorder maps a copy of its own (rustix looks there).
        "PR_GET_AUXV agrees with /proc/self/auxv: 1\n/proc/self/auxv's vDSO has __vdso_clock_gettime: 1\nand it reads the clock: 1\n",
    ] {
        check!(
            rec.stdout_text().contains(line),
            "no {line:?}\n{}",
            rec.describe()
        );
    }
    check!(
        rec.stderr_text().contains(OWN_VDSO_SEEN),
        "the recorded program did not see the recorder's vDSO alone\n{}",
        rec.describe()
    );
    let json = run::info_value(&trace)?;
    let buffered = json["stats"]["buffered_syscalls"].as_u64().unwrap_or(0);
    check!(
        buffered >= 1000,
        "the calls through the vDSO were not buffered: {}",
        json["stats"]
    );
    let header = header_json(&trace)?;
    check!(
        header["format_version"].as_u64() >= Some(4) && header["own_vdso"] == true,
        "the header does not say the vDSO was the recorder's: format_version {}, own_vdso {}",
        header["format_version"],
        header["own_vdso"]
    );
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    let rep = inv.replay(&trace)?;
    check!(
        rep.stderr_text().contains(OWN_VDSO_SEEN),
        "the replayed program did not see the recorder's vDSO alone\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}

/// A trace as recorders before the own vDSO wrote it (`RRTEST_VDSO=hidden`:
/// format version 2, no `own_vdso`): the program found no vDSO (the
/// kernel's stays mapped, hidden), and replay does the same again: the
/// trace verifies and replays alike.
fn vdso_hidden_trace(trial: &str) -> Result<(), Failed> {
    let (dir, inv) = listed_invocation(trial, "vdso_lookup")?;
    let trace = dir.path.join("trace");
    let rec = inv.record_wrapped(&["env", "RRTEST_VDSO=hidden"], &trace, &[])?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text()
            .contains("no vDSO: AT_SYSINFO_EHDR is 0; dlopen(linux-vdso.so.1, RTLD_NOLOAD): 0\n")
            && rec.stderr_text().contains("maps name [vdso]: 1"),
        "the program did not find the kernel's vDSO mapped and hidden\n{}",
        rec.describe()
    );
    let header = header_json(&trace)?;
    check!(
        header["format_version"] == 2 && header.get("own_vdso").is_none(),
        "not a version 2 trace: format_version {}, own_vdso {}",
        header["format_version"],
        header["own_vdso"]
    );
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// A trace with the execution-point digests of recorders before
/// 2026-12-06 (`RRTEST_POINT_DIGEST=xxh3-64`: the stack window cut at the
/// `[stack]` mapping's start) of `stack_growth`, whose points lie in deep
/// recursions: it is written so, and verifies and replays alike with them
/// (the recorder no longer grows the stack mapping itself, so even these
/// digests agree).
fn stack_growth_xxh3_trace(trial: &str) -> Result<(), Failed> {
    let (dir, inv) = listed_invocation(trial, "stack_growth")?;
    // The children's recursions may run without an interruption that
    // makes a point (no point in the trace: one recording of five on a
    // quiet machine; under two busy loops 4 of 12, with the recorders of
    // 8f7862d and 0d06b96 alike; CI once had four recordings without;
    // with the 50 ms slice of d56202a and a 64 MiB recursion, 8 of 8 in
    // two runs of six, whence the 128 MiB): recorded again, up to eight
    // times, for one that has points.
    const ATTEMPTS: usize = 8;
    let mut recorded = None;
    for attempt in 1..=ATTEMPTS {
        let trace = dir.path.join(format!("trace-{attempt}"));
        let rec = inv.record_wrapped(&["env", "RRTEST_POINT_DIGEST=xxh3-64"], &trace, &[])?;
        rec.expect_code(0)?;
        let header = header_json(&trace)?;
        check!(
            header["point_digest"] == "xxh3-64",
            "not a trace of xxh3-64 digests: point_digest {}",
            header["point_digest"]
        );
        let points = header["stats"]["async_events"].as_u64().unwrap_or(0);
        recorded = Some((trace, rec, header["stats"].clone()));
        if points > 0 {
            break;
        }
    }
    let (trace, rec, stats) = recorded.ok_or("nothing recorded")?;
    check!(
        stats["async_events"].as_u64().unwrap_or(0) > 0,
        "no execution point recorded in {ATTEMPTS} recordings: {stats}"
    );
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// `inlined_compute_loop`'s preemptions are at its inner loops' exits
/// (`tracee::loop_exit`): the first return address on the computing
/// threads' stacks comes only at the end, where the recorder used to wait
/// 200 ms at each preemption and then take the point in the loop
/// (`points_loop_exit` 0 then). The trace verifies.
fn inlined_compute_loop_at_loop_exits(trial: &str) -> Result<(), Failed> {
    let (dir, inv) = listed_invocation(trial, "inlined_compute_loop")?;
    // The two threads' slices expired 4 to 6 times in each recording
    // while this was written (the recorder before took 2 or 3 points
    // where its search ran out, none at a loop's exit); recorded again,
    // up to four times, for one with a preemption.
    const ATTEMPTS: usize = 4;
    let schedule = record_until(&dir, &inv, ATTEMPTS, "slices_expired")?;
    let count = |k: &str| schedule[k].as_u64().unwrap_or(0);
    check!(
        count("slices_expired") > 0,
        "no slice expired in {ATTEMPTS} recordings: {schedule}"
    );
    // An interruption between two runs of the inner loop (a few
    // instructions in 10,000) takes the outer loop's exit, which comes
    // only at the end: then the return address, then where the thread is.
    check!(
        count("points_loop_exit") > 0 && count("points_loop_exit") > count("points_anywhere"),
        "the preemptions were not at loop exits: {schedule}"
    );
    dir.finish();
    Ok(())
}

/// `spin_unpatchable_jmp`'s spin probes at the `jmp` after its `pause`,
/// which replay's filter cannot patch, move to the `jmp`'s target
/// (`probes_ahead`), and the trace verifies. 2 such probes in each of 4
/// recordings by hand while this was written (one per thread: the
/// thread's next probes are armed at its last spin point, the target).
fn spin_unpatchable_jmp_probed_ahead(trial: &str) -> Result<(), Failed> {
    let (dir, inv) = listed_invocation(trial, "spin_unpatchable_jmp")?;
    // A spin check may find a thread at another instruction of its loop,
    // which the filter can patch: recorded again, up to four times.
    const ATTEMPTS: usize = 4;
    let schedule = record_until(&dir, &inv, ATTEMPTS, "probes_ahead")?;
    check!(
        schedule["probes_ahead"].as_u64().unwrap_or(0) > 0
            && schedule["points_spin"].as_u64().unwrap_or(0) > 0,
        "no spin probe moved ahead in {ATTEMPTS} recordings: {schedule}"
    );
    dir.finish();
    Ok(())
}

/// Records `inv` in `dir` (exit 0, each trace verified) up to `attempts`
/// times, until a trace's schedule counter `counter` is not 0: that
/// trace's schedule counters, or the last one's.
fn record_until(
    dir: &TrialDir,
    inv: &run::Invocation,
    attempts: usize,
    counter: &str,
) -> Result<serde_json::Value, Failed> {
    let mut schedule = serde_json::Value::Null;
    for attempt in 1..=attempts {
        let trace = dir.path.join(format!("trace-{attempt}"));
        inv.record_with(&trace, &[])?.expect_code(0)?;
        recorder::expect_verified(&trace)?;
        schedule = header_json(&trace)?["stats"]["schedule"].clone();
        if schedule[counter].as_u64().unwrap_or(0) > 0 {
            break;
        }
    }
    Ok(schedule)
}

/// The trace's `header.json`.
pub(crate) fn header_json(trace: &std::path::Path) -> Result<serde_json::Value, Failed> {
    let bytes =
        std::fs::read(trace.join("header.json")).map_err(|e| format!("header.json: {e}"))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("header.json is no JSON: {e}"))?)
}

/// The directory of `trial` and an invocation of the fixture of `SPECS`
/// named `name` (built, with its work directory in the trial's).
fn listed_invocation(trial: &str, name: &str) -> Result<(TrialDir, run::Invocation), Failed> {
    let spec = SPECS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("{name} is not in SPECS"))?;
    let dir = TrialDir::new(trial)?;
    let inv = invocation(spec, dir.sub("work")?)?;
    Ok((dir, inv))
}

/// Records the fixture of `SPECS` named `name` (exit 0) for `trial`: its
/// directory, the invocation, the trace and the recording.
fn record_listed(
    trial: &str,
    name: &str,
) -> Result<(TrialDir, run::Invocation, std::path::PathBuf, run::Run), Failed> {
    let (dir, inv) = listed_invocation(trial, name)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    Ok((dir, inv, trace, rec))
}
