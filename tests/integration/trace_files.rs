//! Kept traces are self-contained: a trace made by `cargo-rrtest record`
//! (which keeps what it records) replays after the recorded executable is
//! rewritten in place and after it is replaced by a new file, because
//! keeping a trace gives it private copies of the files it maps, checked
//! against their content ids (docs/trace-format.md, `files/`).

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use libtest_mimic::{Failed, Trial};

use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// This area's trials.
pub fn trials() -> Vec<Trial> {
    let ignored = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    vec![Trial::test(
        "trace_files::kept_trace_survives_its_binary_changing",
        kept_trace_survives_its_binary_changing,
    )
    .with_ignored_flag(ignored)]
}

const GREETING: &str = "hello from a recorded program";

fn kept_trace_survives_its_binary_changing() -> Result<(), Failed> {
    let built = build::c_fixture(CBuild::pie("hello"))?;
    let trial = TrialDir::new("trace-files-kept-trace-survives")?;
    // Our own copy of the program, to change.
    let exe = trial.path.join("hello");
    std::fs::copy(&built, &exe)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: Vec::new(),
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    let recorded = inv.record(&trace)?;
    recorded.expect_code(0)?;
    if !recorded.stdout_text().contains(GREETING) {
        return Err(format!(
            "the recording did not print the greeting\n{}",
            recorded.describe()
        )
        .into());
    }
    let replays = |when: &str| -> Result<(), Failed> {
        let replay = inv.replay(&trace)?;
        replay
            .expect_code(0)
            .map_err(|e| format!("replay after {when}: {}", e.message().unwrap_or_default()))?;
        if !replay.stdout_text().contains(GREETING) {
            return Err(format!(
                "replay after {when} did not print the greeting\n{}",
                replay.describe()
            )
            .into());
        }
        Ok(())
    };
    let size = std::fs::metadata(&exe)?.len() as usize;
    let exe_inode = std::fs::metadata(&exe)?.ino();
    for entry in std::fs::read_dir(trace.join("files"))? {
        let meta = entry?.metadata()?;
        if meta.ino() == exe_inode || meta.nlink() != 1 {
            return Err(
                format!("the kept trace shares an inode with another file: {meta:?}").into(),
            );
        }
    }

    // Rewritten in place: the same inode, other bytes.
    let mut f = std::fs::OpenOptions::new().write(true).open(&exe)?;
    f.write_all(&vec![0xcc; size])?;
    f.sync_all()?;
    drop(f);
    replays("the binary was rewritten in place")?;

    // Replaced, as a rebuild does: a new inode under the same name.
    let tmp = trial.path.join("hello.new");
    std::fs::write(&tmp, b"not a program any more")?;
    std::fs::rename(&tmp, &exe)?;
    replays("the binary was replaced")?;

    // Gone.
    std::fs::remove_file(&exe)?;
    replays("the binary was removed")?;
    trial.finish();
    Ok(())
}
