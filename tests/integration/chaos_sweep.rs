//! Chaos recordings that must verify (issue 15), found by recording
//! fixtures under `--chaos` at seeds 1 to 10 (docs/chaos.md):
//!
//! - `chaos_sweep::rep_string_cuts`: threads whose hot code is `rep stosb`
//!   and `rep movsb` (`rep_string_threads`). A single step of such an
//!   instruction stops after one iteration at the same ip, and a
//!   breakpoint there fires again each time the stepped thread resumes it;
//!   replay's point search counts instruction starts. Chaos cut inside the
//!   instruction (a point between two iterations) or counted arrivals at
//!   it that replay does not see: seeds 1, 2 and 3 did not verify ("expected
//!   reaching ip <the rep stosb>, saw rt_sigprocmask(...) after 20 passes
//!   through the ip"). A cut there now lands where the instruction ends,
//!   and counted slices do not count arrivals at it; each seed verifies.
//! - `chaos_sweep::rep_string_interrupted`: not chaos, but found from the
//!   sweep (`races::relaxed_publication` at seed 5 stopped inside libc's
//!   `memset`, a `rep stosb`): a thread in `rep stosb` most of its time
//!   while SIGALRM comes every 2 ms (`rep_string_signals`), recorded plainly
//!   five times. Each held-back signal is delivered at a point the
//!   recorder interrupts the thread for, which was between two iterations
//!   of the instruction: 3 of 10 and 4 of 12 recordings did not verify
//!   (`expected reaching ip ..., saw write(...)`). The interruption now
//!   moves to the instruction's end, as a chaos cut does; 0 of 10 and 0 of
//!   12.
//! - `chaos_sweep::signal_frames`: what a handler reads in its frame
//!   (`signal_frame`: the trap fields of a signal sent while the thread
//!   computes, sent to itself, ending `ppoll` and `rt_sigsuspend`, and of a
//!   fault; the mask those calls' frames save), recorded plainly and at
//!   seeds 1 to 3; the program checks each value against the kernel's
//!   native one, and replay compares what it printed. Before, the frames
//!   held the last trap the recorder caused (`trapno 1`: the program
//!   failed) and replay's another (`trapno 3`: the output diverged), and
//!   replay's frames saved the calls' temporary masks.
//! - `chaos_sweep::masked_waits_seed_9`: the sweep's case of that
//!   (`masked_waits` at seed 9, 5 of 6 recordings unverified: an
//!   execution point whose stack window held a stale frame).

use libtest_mimic::{Failed, Trial};

use crate::chaos::{verified_at_seeds, verified_recordings};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("chaos_sweep::rep_string_cuts", rep_string_cuts),
        Trial::test(
            "chaos_sweep::rep_string_interrupted",
            rep_string_interrupted,
        ),
        Trial::test("chaos_sweep::signal_frames", signal_frames),
        Trial::test("chaos_sweep::masked_waits_seed_9", masked_waits_seed_9),
    ]
}

fn rep_string_cuts() -> Result<(), Failed> {
    verified_at_seeds(
        "chaos_sweep::rep_string_cuts",
        "rep_string_threads",
        "thread 0: 17217816742282703882\n\
         thread 1: 18167540312988539466\n\
         thread 2: 670519809984823434\n\
         EXIT-SUCCESS\n",
    )
}

fn rep_string_interrupted() -> Result<(), Failed> {
    verified_recordings(
        "chaos_sweep::rep_string_interrupted",
        "rep_string_signals",
        "checksum 16781668874064083358, signals handled: yes\nEXIT-SUCCESS\n",
        &[&[], &[], &[], &[], &[]],
    )
}

fn signal_frames() -> Result<(), Failed> {
    let seed = |s: &'static str| -> [&'static str; 3] { ["--chaos", "--seed", s] };
    verified_recordings(
        "chaos_sweep::signal_frames",
        "signal_frame",
        "sent while computing: err 0 trapno 0 cr2 0\n\
         sent to itself: err 0 trapno 0 cr2 0\n\
         ending ppoll: err 0 trapno 0 cr2 0\n\
         ending ppoll: the frame saves SIGUSR1 blocked: uc_sigmask 1, oldmask 1\n\
         ending sigsuspend: err 0 trapno 0 cr2 0\n\
         ending sigsuspend: the frame saves SIGUSR1 blocked: uc_sigmask 1, oldmask 1\n\
         a fault: trapno 14 err 6 cr2 at the address: 1\n\
         turns: some\n\
         EXIT-SUCCESS\n",
        &[&[], &seed("1"), &seed("2"), &seed("3")],
    )
}

fn masked_waits_seed_9() -> Result<(), Failed> {
    let nine: &[&str] = &["--chaos", "--seed", "9"];
    verified_recordings(
        "chaos_sweep::masked_waits_seed_9",
        "masked_waits",
        "epoll_pwait: EINTR after 3 handled, SIGUSR1 blocked again: 1\nEXIT-SUCCESS\n",
        &[nine, nine, nine],
    )
}
