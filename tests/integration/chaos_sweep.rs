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

use libtest_mimic::{Failed, Trial};

use crate::chaos::verified_at_seeds;

pub fn trials() -> Vec<Trial> {
    vec![Trial::test("chaos_sweep::rep_string_cuts", rep_string_cuts)]
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
