//! Shared and file mappings (fixtures/c/shared_mappings.c): two `MAP_SHARED`
//! mappings of one file, the file written with `pwrite`, `write`, `splice`
//! and an `O_TRUNC` open while mapped, `ftruncate` + `mremap` growing a
//! shared mapping, shared anonymous memory and a shared file mapping used
//! with forked children, `/proc/self/mem` reads and writes, `/dev/zero`
//! mapped private and shared. Each case prints what it saw, so a replay that
//! sees other memory is caught at the first such line (replay compares the
//! program's output bytes with the recorded ones).
//!
//! - `breadth::maps::shared_mappings::record_replay`: recorded, verified and
//!   replayed identically, three times (the fork cases' schedule varies);
//! - `breadth::maps::shared_mappings::no_syscallbuf`: the same with the
//!   syscall buffer off (every write traced from the start);
//! - `breadth::maps::other_process_mem::record_replay`: writes into a
//!   child's memory through `/proc/CHILD/mem` and with
//!   `process_vm_writev` (recorded as writes into the child, which replay
//!   makes at the same point): the child reads them, and replay is
//!   identical;
//! - `breadth::maps::outside_process_mem::refused`: a `process_vm_writev`
//!   into a process outside the recording (a `sleep` the trial starts) is
//!   refused by name;
//! - `breadth::maps::unmirrored_change::reported`: a change of a
//!   shared-mapped file the recorder does not mirror is a divergence the
//!   verification replay names, not a silent one.

use libtest_mimic::{Failed, Trial};

use crate::breadth::{c, with_defines};
use crate::recorder::{self, invocation, Args, Spec};
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

const SPEC: Spec = Spec {
    args: Args::WorkDir,
    stdout_has: &[
        "1a: b reads \"written through a\"",
        "1c: after pwrite, a reads \"written PWRITEh a\", b reads \"written PWRITEh a\"",
        "1d: after write(2), c reads \"second WRITE(2)ough b\"",
        "1g: a reads \"through the new one\"",
        "1h: a child forked before the mapping wrote \"from the older child\"",
        "1i: after splice: \"spliced in\"",
        "1j: after an open with O_TRUNC and a write: \"after O_TRUNC\", byte 300 is 0",
        "2a: grown mapping reads \"first page\" and \"written past the old end\"",
        "2b: pread of the grown part: \"written into the grown part\"",
        "2d: pread of the fifth page: \"fifth page\"",
        "2e: after shrinking and growing the file, the fifth page reads 0",
        "3a: the child wrote 42 into shared anonymous memory",
        "3b: back and forth: 21 63 147 315 651",
        "3c: the parent reads \"the child's words\" and \"CHILD\" through its mapping",
        "4b: after pwrite into /proc/self/mem: \"POKEDte data\"",
        "4c: the read-only page reads \"into read-only\"",
        "4d: pread through /proc/PID/mem: \"POKED\"",
        "5a: private /dev/zero: zeros 1, then \"private zero page\"",
        "5b: shared /dev/zero, the child wrote 42",
    ],
    ..c("maps::shared_mappings", CBuild::pie("shared_mappings"))
};

pub fn trials() -> Vec<Trial> {
    let gcc = build::gcc_missing();
    let skip = gcc.is_some() || run::recording_unavailable().is_some();
    vec![
        Trial::test("breadth::maps::shared_mappings::native", || {
            recorder::native("breadth::maps::shared_mappings::native", &SPEC)
        })
        .with_ignored_flag(gcc.is_some()),
        Trial::test("breadth::maps::shared_mappings::record_replay", || {
            for round in 1..=3 {
                recorder::record_replay(
                    &format!("breadth::maps::shared_mappings::record_replay-{round}"),
                    &SPEC,
                )
                .map_err(|e| format!("round {round}: {}", e.message().unwrap_or("")))?;
            }
            Ok(())
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::maps::shared_mappings::no_syscallbuf", || {
            no_syscallbuf("breadth::maps::shared_mappings::no_syscallbuf")
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::maps::other_process_mem::record_replay", || {
            recorder::record_replay(
                "breadth::maps::other_process_mem::record_replay",
                &OTHER_MEM,
            )
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::maps::outside_process_mem::refused", || {
            outside_mem_refused("breadth::maps::outside_process_mem::refused")
        })
        .with_ignored_flag(skip),
        Trial::test("breadth::maps::unmirrored_change::reported", || {
            unmirrored_reported("breadth::maps::unmirrored_change::reported")
        })
        .with_ignored_flag(skip),
    ]
}

/// A change of a shared-mapped file that the recorder does not mirror (a
/// buffered pwrite while the file's only mapping is a read-only one of a
/// file older than the recording) is reported by the verification replay
/// as a divergence, named, when a later shared mapping finds the copy
/// different while the first still maps it; replay refuses to go past it.
fn unmirrored_reported(trial: &str) -> Result<(), Failed> {
    let (dir, inv, trace) = recorded_variant(
        trial,
        "maps_unmirrored",
        &["UNMIRRORED"],
        "7b: new new",
        "the second mapping did not show the change while recording",
    )?;
    let info = run::info_json(&trace)?;
    let json: serde_json::Value = serde_json::from_slice(&info.stdout)
        .map_err(|e| format!("info --json printed no JSON ({e})\n{}", info.describe()))?;
    let failure = json["verification_failure"].to_string();
    check!(
        json["verified"] == false
            && failure.contains("a file mapped MAP_SHARED")
            && failure.contains("did not mirror"),
        "the verification did not report the unmirrored change: verified = {}, {failure}",
        json["verified"]
    );
    let rep = inv.replay(&trace)?;
    check!(
        rep.code() != 0 && rep.stderr_text().contains("did not mirror"),
        "replay did not report the divergence\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}

/// Recorded with `--no-syscallbuf`: verified, and replayed with the same
/// output and status.
fn no_syscallbuf(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let inv = invocation(&SPEC, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record_with(&trace, &["--no-syscallbuf"])?;
    rec.expect_code(0)?;
    let text = rec.stdout_text();
    for want in SPEC.stdout_has {
        check!(
            text.contains(want),
            "recorded without the buffer, stdout lacks {want:?}\n{}",
            rec.describe()
        );
    }
    recorder::expect_replays_alike(&inv, &trace, &rec)?;
    dir.finish();
    Ok(())
}

/// The refusal's reason says that the write went into another process
/// (the child's pid in it), and the program's own output shows the write
/// happened while recording.
fn outside_mem_refused(trial: &str) -> Result<(), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = c(
        "maps_outside_mem",
        with_defines("shared_mappings", &["OUTSIDE_MEM"]),
    );
    let mut inv = invocation(&spec, dir.sub("work")?)?;
    // A process outside the recording, killed when the trial ends.
    struct Outside(std::process::Child);
    impl Drop for Outside {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let outside = Outside(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .map_err(|e| format!("starting sleep: {e}"))?,
    );
    inv.args = vec![
        inv.work.clone().into_os_string(),
        outside.0.id().to_string().into(),
    ];
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text()
            .contains("6b: wrote a byte of an outside process back onto itself")
            && rec.stdout_text().lines().last() == Some("EXIT-SUCCESS"),
        "the program did not run to its end\n{}",
        rec.describe()
    );
    let info = run::info_json(&trace)?;
    let json: serde_json::Value = serde_json::from_slice(&info.stdout)
        .map_err(|e| format!("info --json printed no JSON ({e})\n{}", info.describe()))?;
    let reasons = json["unreplayable"].to_string();
    let want = format!(
        "process_vm_writev into process {}, which is not one of the recording, is not recorded",
        outside.0.id()
    );
    check!(
        reasons.contains(&want),
        "the unreplayable reasons do not name the outside process: {reasons}"
    );
    check!(
        !reasons.contains("cannot read its output"),
        "the remote iovecs were taken for the writer's own memory: {reasons}"
    );
    dir.finish();
    Ok(())
}

/// The shared mappings with writes into a child's memory (`OTHER_MEM`).
const OTHER_MEM: Spec = Spec {
    args: Args::WorkDir,
    stdout_has: &["6: the child reads \"POKEDchVM\""],
    ..c(
        "maps_other_mem",
        with_defines("shared_mappings", &["OTHER_MEM"]),
    )
};

/// Records shared_mappings built with `defines` (exit 0) and checks that its
/// output has `line` (else fails with `missing`); the trial's directory,
/// the invocation and the trace.
fn recorded_variant(
    trial: &str,
    name: &'static str,
    defines: &'static [&'static str],
    line: &str,
    missing: &str,
) -> Result<(TrialDir, run::Invocation, std::path::PathBuf), Failed> {
    let dir = TrialDir::new(trial)?;
    let spec = Spec {
        args: Args::WorkDir,
        ..c(name, with_defines("shared_mappings", defines))
    };
    let inv = invocation(&spec, dir.sub("work")?)?;
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text().contains(line),
        "{missing}\n{}",
        rec.describe()
    );
    Ok((dir, inv, trace))
}
