//! The recorder's own vDSO under gdb (issue #20; docs/design.md, the vDSO
//! row):
//!
//! - `gdb::vdso::symbols_and_backtrace`: in a replay of `vdso_lookup`, gdb
//!   reads the vDSO the gdb server's auxiliary vector names (the
//!   recorder's, at `0x6fffc000`) from memory: a breakpoint on
//!   `__vdso_clock_gettime` is set and hit there, the address is named as
//!   in the system-supplied DSO, the backtrace from inside it reaches
//!   `main`, and `info sharedlibrary` lists the program's libraries.

use libtest_mimic::{Failed, Trial};

use crate::gdb::{gdb_missing, recorded_fixture, session};
use crate::recorder_build as build;
use crate::recorder_run as run;

/// The trials.
pub fn trials() -> Vec<Trial> {
    let skip = build::gcc_missing()
        .or(run::recording_unavailable())
        .or(gdb_missing())
        .is_some();
    vec![Trial::test("gdb::vdso::symbols_and_backtrace", || {
        symbols_and_backtrace("gdb::vdso::symbols_and_backtrace")
    })
    .with_ignored_flag(skip)]
}

fn symbols_and_backtrace(trial: &str) -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("vdso_lookup", &[], 0, trial)?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break __vdso_clock_gettime",
            "continue",
            "info symbol $pc",
            "bt",
            "info sharedlibrary",
            "kill",
        ],
    )?;
    let said = || format!("gdb:\n{out}\nserver:\n{err}");
    check!(
        out.contains("Breakpoint 1 at 0x6fffd4"),
        "no breakpoint set in the recorder's vDSO\n{}",
        said()
    );
    check!(
        out.contains("Breakpoint 1, 0x000000006fffd4"),
        "the breakpoint in the recorder's vDSO was not hit\n{}",
        said()
    );
    check!(
        out.contains("in section .text of system-supplied DSO at 0x6fffc000"),
        "gdb did not take the vDSO's symbols from memory\n{}",
        said()
    );
    let bt: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    check!(
        bt.first().is_some_and(|l| l.contains("0x000000006fffd4"))
            && bt.iter().any(|l| l.contains(" main ")),
        "the backtrace from the vDSO does not reach main: {bt:?}\n{}",
        said()
    );
    check!(
        out.contains("libc.so.6"),
        "info sharedlibrary lists no C library\n{}",
        said()
    );
    dir.finish();
    Ok(())
}
