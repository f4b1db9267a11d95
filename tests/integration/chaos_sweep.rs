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

use libtest_mimic::{Failed, Trial};

use crate::chaos::{verified_at_seeds, verified_recordings};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("chaos_sweep::rep_string_cuts", rep_string_cuts),
        Trial::test(
            "chaos_sweep::rep_string_interrupted",
            rep_string_interrupted,
        ),
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
