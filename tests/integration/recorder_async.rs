//! Recorder trials about asynchronous events that were, or are, known bugs.
//!
//! A fixture whose recording does not replay or verify yet goes into
//! [`known_bugs`]: its `native` trial runs, and its `record_replay` trial is
//! ignored with the bug printed when the trials are listed, so CI stays
//! green while the bug stays in sight (`-- --ignored recorder::async` runs
//! them). None is known now.
//!
//! Fixed ones stay here as ordinary trials ([`fixed`]), some with a
//! regression trial of their own:
//! - `recorder::async::cpuid_apic_point-pie::other_cpu` records on one CPU
//!   and verifies and replays on another (`cpuid` tells the executing CPU's
//!   APIC id, which the loader keeps in memory that execution points
//!   digest);
//! - `recorder::async::compute_waits_for_signal-*::records_in_budget`: a
//!   compute loop that waits, without syscalls, for a signal the recorder
//!   holds back records promptly (`--no-verify`); its `record_replay` trial
//!   checks the verification (a point hundreds of millions of turns deep).
//!
//! The other fixtures that replay and verify are in the `C_SPECS` table of
//! `recorder.rs`.

use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder::{self, invocation, Spec};
use crate::recorder_build::{self as build, CBuild, Link};
use crate::recorder_run::{self as run, TrialDir};

/// A fixture whose recording does not replay or verify yet, and why.
struct KnownBug {
    spec: Spec,
    bug: &'static str,
}

const BLOCKED_SIGSUSPEND: CBuild = CBuild {
    name: "alarm_pause",
    link: Link::Pie,
    defines: &["BLOCKED_SIGSUSPEND"],
};
const CPUID_APIC_POINT: CBuild = CBuild::pie("cpuid_apic_point");
const WAIT_INLINE: CBuild = CBuild::pie("compute_waits_for_signal");
const WAIT_CALLS: CBuild = CBuild {
    name: "compute_waits_for_signal",
    link: Link::Pie,
    defines: &["CALLS"],
};

fn spec(name: &'static str, build: CBuild, stdout_has: &'static [&'static str]) -> Spec {
    Spec {
        name,
        source: recorder::Source::C(build),
        args: recorder::Args::None,
        code: 0,
        success_marker: true,
        stdout_has,
        stderr_has: &[],
        differs: false,
        leaves_files: false,
        sleeps: None,
    }
}

/// Scenarios that were known bugs here and are fixed: ordinary trials now.
fn fixed() -> Vec<Spec> {
    vec![
        Spec {
            // Regression: the signal that ends sigsuspend() is blocked outside
            // it; replay, which emulates sigsuspend, must swap the temporary
            // mask in itself (it diverged with `expected signal 14`).
            sleeps: Some(Duration::from_millis(1000)),
            ..spec(
                "alarm_pause-blocked_sigsuspend",
                BLOCKED_SIGSUSPEND,
                &["sigsuspend returned after SIGALRM (2 alarms)"],
            )
        },
        Spec {
            // Regression: std::process::Command children (tr with piped
            // stdin/stdout, sh -c output, a killed sleep, three threads each
            // running echo). The verification diverged at a preemption point
            // in a freshly exec'd child's loader: the point's memory digest
            // covers the loader's copy of CPUID leaf 1, whose APIC id
            // differed when replay ran on another CPU than the recording.
            source: recorder::Source::RustBin("rust_process_tree"),
            ..spec(
                "rust::rust_process_tree",
                WAIT_INLINE,
                &["sleep killed by signal Some(9)", "sh exit code Some(4)"],
            )
        },
        // The same, reduced: a preemption point whose digest covers a copy
        // of CPUID leaf 1 (see also `other_cpu`).
        spec(
            "cpuid_apic_point-pie",
            CPUID_APIC_POINT,
            &["cpuid leaf 1: family-model "],
        ),
        // Regression: a held-back signal for a loop without syscalls or
        // returns is delivered deep in the loop (after about 1 s, hundreds
        // of millions of turns); the search stopped at every turn and gave
        // up after 30 s. Replay now searches through an in-tracee filter
        // (replayer/session/point_filter.rs).
        spec(
            "compute_waits_for_signal-pie",
            WAIT_INLINE,
            &["signal arrived after "],
        ),
        // The same, delivered at the return address of a function the loop
        // calls millions of times.
        spec(
            "compute_waits_for_signal-calls",
            WAIT_CALLS,
            &["signal arrived after "],
        ),
    ]
}

/// Scenarios known not to replay or verify yet: none at the moment. The
/// list stays, so that the next one found is kept visible here, not lost.
fn known_bugs() -> Vec<KnownBug> {
    Vec::new()
}

/// How long recording the waiting compute loop may take with `--no-verify`
/// (natively it waits 50 ms; the recorder's fallback delivers after 1 s).
const RECORD_BUDGET: Duration = Duration::from_secs(10);

/// This module's trials.
pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    let gcc = build::gcc_missing();
    let cannot_record = run::recording_unavailable();
    // A fixture's native and record_replay trials; a known bug ignores the
    // second, saying why.
    let mut pair = |s: Spec, bug: Option<&str>| {
        let name = s.name;
        let native_name = format!("recorder::async::{name}::native");
        let t = native_name.clone();
        trials.push(
            Trial::test(native_name, move || recorder::native(&t, &s))
                .with_ignored_flag(gcc.is_some()),
        );
        let rr_name = format!("recorder::async::{name}::record_replay");
        if let Some(bug) = bug {
            eprintln!("recorder trials: {rr_name} is ignored, known bug: {bug}");
        }
        let t = rr_name.clone();
        trials.push(
            Trial::test(rr_name, move || recorder::record_replay(&t, &s))
                .with_ignored_flag(bug.is_some() || gcc.is_some() || cannot_record.is_some()),
        );
    };
    for s in fixed() {
        pair(s, None);
    }
    for known in known_bugs() {
        pair(known.spec, Some(known.bug));
    }
    let cpus = two_cpus();
    if let Err(why) = &cpus {
        eprintln!("recorder trials: {OTHER_CPU} is ignored: {why}");
    }
    trials.push(
        Trial::test(OTHER_CPU, move || match cpus {
            Ok(pair) => other_cpu(OTHER_CPU, pair),
            Err(why) => Err(why.into()),
        })
        .with_ignored_flag(gcc.is_some() || cannot_record.is_some() || cpus.is_err()),
    );
    for (name, build) in [
        ("compute_waits_for_signal-pie", WAIT_INLINE),
        ("compute_waits_for_signal-calls", WAIT_CALLS),
    ] {
        let trial = format!("recorder::async::{name}::records_in_budget");
        let t = trial.clone();
        trials.push(
            Trial::test(trial, move || records_in_budget(&t, build))
                .with_ignored_flag(gcc.is_some() || cannot_record.is_some()),
        );
    }
    trials
}

/// `record --no-verify` of a loop that waits for a held-back signal ends, with
/// the program's output, within [`RECORD_BUDGET`].
fn records_in_budget(trial: &str, build: CBuild) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let work = dir.sub("work")?;
    let trace = dir.path.join("trace");
    let inv = invocation(&spec("budget", build, &[]), work.clone())?;
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("record")
        .arg("--no-verify")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&inv.exe)
        .current_dir(&work)
        .env("TMPDIR", &work);
    let rec = run::run(&mut cmd)?;
    rec.expect_code(0)?;
    if rec.stdout_text().lines().last() != Some("EXIT-SUCCESS") {
        return Err(format!("stdout's last line is not EXIT-SUCCESS\n{}", rec.describe()).into());
    }
    if rec.elapsed > RECORD_BUDGET {
        return Err(format!(
            "recording took {:?}, over the budget of {RECORD_BUDGET:?}",
            rec.elapsed
        )
        .into());
    }
    dir.finish();
    Ok(())
}

const OTHER_CPU: &str = "recorder::async::cpuid_apic_point-pie::other_cpu";

/// Two CPUs this process may run on (the first two of
/// `Cpus_allowed_list`), when there are two and `taskset` is installed.
fn two_cpus() -> Result<(u32, u32), &'static str> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|_| "/proc/self/status is unreadable")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .ok_or("no Cpus_allowed_list in /proc/self/status")?;
    let mut cpus = list
        .trim()
        .split(',')
        .filter_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            Some(a.trim().parse::<u32>().ok()?..=b.trim().parse::<u32>().ok()?)
        })
        .flatten();
    let (Some(a), Some(b)) = (cpus.next(), cpus.next()) else {
        return Err("it needs two CPUs to run on");
    };
    let taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !taskset {
        return Err("taskset (util-linux) is not installed");
    }
    Ok((a, b))
}

/// `cargo-rrtest ARGS` bound to `cpu` with `taskset` (the recorded program
/// inherits the binding unless the recorder binds it elsewhere).
fn on_cpu(cpu: u32, work: &std::path::Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(cpu.to_string())
        .arg(common::cargo_rrtest())
        .current_dir(work)
        .env("TMPDIR", work);
    cmd
}

/// Records `cpuid_apic_point` on CPU `rec_cpu`, then verifies and replays it
/// from CPU `rep_cpu`: the trace must name `rec_cpu`, hold a preemption
/// point, verify, and replay with the recorded output and status. Without
/// the binding, replay ran the program on `rep_cpu`, whose APIC id in the
/// program's (and the loader's) copy of CPUID leaf 1 made the point's
/// memory digest differ, and the search gave up after 30 s.
fn other_cpu(trial: &str, (rec_cpu, rep_cpu): (u32, u32)) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let work = dir.sub("work")?;
    let trace = dir.path.join("trace");
    let inv = invocation(&spec("other_cpu", CPUID_APIC_POINT, &[]), work.clone())?;

    let mut cmd = on_cpu(rec_cpu, &work);
    cmd.arg("record")
        .arg("--no-verify")
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(&inv.exe);
    let rec = run::run(&mut cmd)?;
    rec.expect_code(0)?;
    if rec.stdout_text().lines().last() != Some("EXIT-SUCCESS") {
        return Err(format!("stdout's last line is not EXIT-SUCCESS\n{}", rec.describe()).into());
    }
    let header: serde_json::Value = std::fs::read(trace.join("header.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the trace has no readable header.json")?;
    if header["stats"]["async_events"].as_u64().unwrap_or(0) == 0 {
        return Err("the recording has no execution point: the trial tests nothing".into());
    }

    let mut cmd = on_cpu(rep_cpu, &work);
    cmd.arg("verify").arg(&trace);
    run::run(&mut cmd)?.expect_code(0)?;
    recorder::expect_verified(&trace)?;
    if header["tracee_cpu"] != rec_cpu {
        return Err(format!(
            "header.json's tracee_cpu is {}, not the recording's CPU {rec_cpu}",
            header["tracee_cpu"]
        )
        .into());
    }

    let mut cmd = on_cpu(rep_cpu, &work);
    cmd.arg("replay").arg(&trace);
    let rep = run::run(&mut cmd)?;
    rep.expect_code(rec.code())?;
    run::expect_same_bytes("stdout", &rec.stdout, &rep.stdout)?;
    run::expect_same_bytes("stderr", &rec.stderr, &rep.stderr)?;
    dir.finish();
    Ok(())
}
