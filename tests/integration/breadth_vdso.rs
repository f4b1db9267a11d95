//! The recorder's own vDSO (issue #20; docs/design.md, "The vDSO"):
//!
//! - `breadth::vdso::first_call_maps::{libc,auxv}`: `vdso_lookup maps`
//!   (`maps-auxv`) lists `/proc/self/maps` in one thread before and after
//!   another thread's first call through the vDSO (libc's
//!   `clock_gettime`; `__vdso_clock_gettime` of the vDSO `/proc/self/auxv`
//!   names, as rustix calls it). Natively and recorded the two lists are
//!   the same (the stub page for the vDSO's sites is mapped at exec, with
//!   the image, not at the first patch); the recorded list shows the own
//!   vDSO's one mapping (stub page and image) and no kernel vDSO; the
//!   trace (format version 4) verifies and its replay prints the same
//!   lists, byte for byte.
//! - `breadth::vdso::first_call_maps::v3_trace`: the same recorded as
//!   format version 3 traces were (`RRTEST_VDSO=own-v3`: the stub page
//!   mapped at the first patch of a site in the vDSO): the lists differ
//!   (a new executable mapping appears), which is what the fixture exists
//!   to catch, and such a trace still verifies and replays alike.
//! - `breadth::vdso::copy_place_taken`: a trace whose `Exec` record puts
//!   the copy of the vDSO (for `/proc/self/auxv` readers) where replay
//!   finds the dynamic loader (as a replay kernel with another layout
//!   would): replay fails at that exec with an error naming the address,
//!   the program printing nothing; the trace as recorded replays.
//! - `gdb::vdso::symbols_and_backtrace`: in a replay of `vdso_lookup`, gdb
//!   reads the vDSO the gdb server's auxiliary vector names (the
//!   recorder's, at `0x6fffc000`) from memory: a breakpoint on
//!   `__vdso_clock_gettime` is set and hit there, the address is named as
//!   in the system-supplied DSO, the backtrace from inside it reaches
//!   `main`, and `info sharedlibrary` lists the program's libraries.

use libtest_mimic::{Failed, Trial};

use crate::breadth::c;
use crate::breadth_misc::header_json;
use crate::gdb::{gdb_missing, recorded_fixture, session};
use crate::recorder::{self, invocation, Args, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The trials.
pub fn trials() -> Vec<Trial> {
    let no_recording = build::gcc_missing().or(run::recording_unavailable());
    let skip = no_recording.or(gdb_missing()).is_some();
    let mut trials = vec![Trial::test("gdb::vdso::symbols_and_backtrace", || {
        symbols_and_backtrace("gdb::vdso::symbols_and_backtrace")
    })
    .with_ignored_flag(skip)];
    for (name, arg) in [("libc", "maps"), ("auxv", "maps-auxv")] {
        let trial = format!("breadth::vdso::first_call_maps::{name}");
        trials.push(
            Trial::test(trial.clone(), move || first_call_maps(&trial, arg))
                .with_ignored_flag(no_recording.is_some()),
        );
    }
    trials.push(
        Trial::test("breadth::vdso::copy_place_taken", || {
            copy_place_taken("breadth::vdso::copy_place_taken")
        })
        .with_ignored_flag(no_recording.is_some()),
    );
    trials.push(
        Trial::test("breadth::vdso::first_call_maps::v3_trace", || {
            first_call_maps_v3("breadth::vdso::first_call_maps::v3_trace")
        })
        .with_ignored_flag(no_recording.is_some()),
    );
    trials
}

/// `vdso_lookup` with argument `arg` (`maps` or `maps-auxv`).
fn maps_spec(arg: &'static str) -> Spec {
    let args: &'static [&'static str] = if arg == "maps" {
        &["maps"]
    } else {
        &["maps-auxv"]
    };
    Spec {
        args: Args::Fixed(args),
        ..c("vdso_lookup", CBuild::pie("vdso_lookup"))
    }
}

/// What the fixture prints when its two lists are the same.
const SAME: &str = "the maps are the same: 1\n";

/// The mapping of the recorder's own vDSO as `/proc/self/maps` shows it:
/// the two pages of the image at `rrtest_abi::VDSO_ADDR` (`0x6fffc000`),
/// then its stub page, one anonymous r-x mapping.
const OWN_VDSO_LINE: &str = "  6fffc000-6ffff000 r-xp 00000000 00:00 0";

/// The first list `vdso_lookup maps` printed.
fn first_list(out: &str) -> &str {
    let start = out.find("maps before").unwrap_or(0);
    let end = out.find("maps after").unwrap_or(out.len());
    &out[start..end]
}

fn first_call_maps(trial: &str, arg: &'static str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&maps_spec(arg), dir.sub("work")?)?;
    let native = inv.native()?;
    native.expect_code(0)?;
    check!(
        native.stdout_text().contains(SAME),
        "natively the maps changed at the first call through the vDSO\n{}",
        native.describe()
    );
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    let out = rec.stdout_text();
    check!(
        out.contains(SAME) && out.lines().last() == Some("EXIT-SUCCESS"),
        "recorded, the maps changed at the first call through the vDSO\n{}",
        rec.describe()
    );
    let listed = first_list(&out);
    check!(
        listed
            .lines()
            .any(|l| l.trim_end() == OWN_VDSO_LINE.trim_end())
            && !listed.contains("[vdso]")
            && !listed.contains("[vvar"),
        "the recorded maps do not show the own vDSO with its stub page alone\n{}",
        rec.describe()
    );
    let header = header_json(&trace)?;
    check!(
        header["format_version"].as_u64() >= Some(4) && header["own_vdso"] == true,
        "not a version 4 (or later) trace with the own vDSO: format_version {}, own_vdso {}",
        header["format_version"],
        header["own_vdso"]
    );
    // The call through the vDSO was buffered (its site patched, its stub
    // in the page mapped at exec): the maps stayed the same all the same.
    let json = run::info_value(&trace)?;
    check!(
        json["stats"]["patched_sites"].as_u64().unwrap_or(0) > 0,
        "no site patched: {}",
        json["stats"]
    );
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// `vdso_lookup maps-auxv` recorded, then its trace written again with
/// the first `Exec` record's copy of the vDSO moved to the page of the
/// program's entry point (the loader's code, mapped before the recorder
/// maps anything): replay must refuse to go on, naming the address.
fn copy_place_taken(trial: &str) -> Result<(), Failed> {
    use rrtest_trace::{Event, VdsoCopy};
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&maps_spec("maps-auxv"), dir.sub("work")?)?;
    let recorded = dir.path.join("recorded");
    let rec = inv.record(&recorded)?;
    rec.expect_code(0)?;
    let (header, mut events) = run::read_trace(&recorded)?;
    let Some(Event::Exec(exec)) = events.first_mut() else {
        return Err("the trace does not start with an exec".into());
    };
    check!(
        matches!(exec.vdso_copy, VdsoCopy::At(_)),
        "the recording mapped no copy of the vDSO: {:?}",
        exec.vdso_copy
    );
    let taken = exec.ip & !0xfff;
    exec.vdso_copy = VdsoCopy::At(taken);
    let trace = dir.path.join("trace");
    run::write_edited_trace(&recorded, &trace, header, &events)?;
    run::expect_edit_refused(
        &inv,
        &recorded,
        &rec,
        &trace,
        &[&format!("copy of the vDSO at {taken:#x}"), "is taken here"],
        "maps before",
        "a copy of the vDSO where the loader is",
    )?;
    dir.finish();
    Ok(())
}

/// As [`first_call_maps`] with `maps`, recorded as a format version 3
/// trace: the stub page of the vDSO's site appears at its first patch, so
/// the lists differ; the trace verifies and replays alike.
fn first_call_maps_v3(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&maps_spec("maps"), dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record_wrapped(&["env", "RRTEST_VDSO=own-v3"], &trace, &[])?;
    rec.expect_code(0)?;
    let out = rec.stdout_text();
    check!(
        out.contains("the maps are the same: 0\n"),
        "recorded as version 3 traces were, the maps did not change at the first call \
         through the vDSO (the fixture no longer sees what it is for)\n{}",
        rec.describe()
    );
    check!(
        first_list(&out)
            .lines()
            .any(|l| l.trim_end() == "  6fffc000-6fffe000 r-xp 00000000 00:00 0"),
        "the version 3 trace's program does not show the own vDSO without a stub page\n{}",
        rec.describe()
    );
    let header = header_json(&trace)?;
    check!(
        header["format_version"] == 3 && header["own_vdso"] == true,
        "not a version 3 trace: format_version {}, own_vdso {}",
        header["format_version"],
        header["own_vdso"]
    );
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
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
