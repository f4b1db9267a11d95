//! `cargo-rrtest wrap PROGRAM [ARGS...]`: records one test as a nextest
//! wrapper script (docs/nextest.md), so nextest users keep nextest and get
//! the traces of failing tests.
//!
//! nextest runs `cargo-rrtest wrap TEST_BINARY --exact NAME --nocapture`
//! with `NEXTEST_BINARY_ID`, `NEXTEST_TEST_NAME` and `NEXTEST_ATTEMPT` set.
//! The test is recorded as `cargo rrtest record` records (credentials
//! filtered from its environment, output passed through, its exit status
//! returned), into the harness's layout,
//! `TARGET/rrtest/traces/<binary id>/<test>/attempt-N`, so that
//! `cargo rrtest replay NAME` finds it. A passing attempt writes nothing (the
//! trace stays in memory and is dropped); a failing one is kept, verified
//! (unless `--no-verify`) and packed to
//! `TARGET/rrtest/archives/<binary id>/<test>/attempt-N.tar.zst` for CI
//! artifacts. The first attempt removes the test's traces and archives of
//! earlier runs, so a test that passes now is not replayed from an old
//! failure.
//!
//! TARGET is `--target-dir`, else the nearest directory above the test
//! binary that holds cargo's `.rustc_info.json` or `CACHEDIR.TAG` (where it
//! was built), else `CARGO_TARGET_DIR`. This module
//! decides names and places only; recording is `record.rs`'s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::errors::{Error, Result};
use crate::harness::record::{create_private_dir, sanitize};
use rrtest_trace::pack;

use super::record::{self, RecordArgs};

/// Options of `cargo rrtest wrap`.
#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    /// The target directory whose `rrtest/` receives the kept traces
    /// [default: the one above the test binary, else CARGO_TARGET_DIR].
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Do not verify a kept trace by replaying it.
    #[arg(long)]
    pub no_verify: bool,
    /// Keep this variable although it looks like a credential (repeatable).
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<OsString>,
    /// The test binary and its arguments, as nextest gives them.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Runs `cargo rrtest wrap`.
pub fn exec(args: WrapArgs) -> Result<ExitCode> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("NEXTEST").is_none() && var("NEXTEST_BINARY_ID").is_none() {
        return Err(Error::Usage(
            "`wrap` runs as a nextest wrapper script (NEXTEST is not set); see docs/nextest.md, \
             or record a program with `cargo rrtest record`"
                .into(),
        ));
    }
    let (binary_id, name) = test_identity(
        &args.command,
        var("NEXTEST_BINARY_ID"),
        var("NEXTEST_TEST_NAME"),
    )?;
    let attempt: u32 = var("NEXTEST_ATTEMPT")
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let cwd = std::env::current_dir().map_err(|e| Error::io("current directory", e))?;
    let target = match &args.target_dir {
        Some(t) => cwd.join(t),
        None => target_dir_of(
            &cwd.join(&args.command[0]),
            std::env::var_os("CARGO_TARGET_DIR"),
        )?,
    };
    let rrtest = target.join("rrtest");
    let test_traces = rrtest
        .join("traces")
        .join(sanitize(&binary_id))
        .join(sanitize(&name));
    let test_archives = rrtest
        .join("archives")
        .join(sanitize(&binary_id))
        .join(sanitize(&name));
    let trace_dir = test_traces.join(format!("attempt-{attempt}"));
    let archive = test_archives.join(format!("attempt-{attempt}{}", pack::ARCHIVE_SUFFIX));
    // Earlier runs' traces of this test (all of them on a first attempt).
    let stale: Vec<&Path> = if attempt <= 1 {
        vec![&test_traces, &test_archives]
    } else {
        vec![&trace_dir, &archive]
    };
    for p in stale {
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        match gone {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", p.display()), e))
            }
            _ => {}
        }
    }
    create_private_dir(&test_traces)
        .map_err(|e| Error::io(format!("creating {}", test_traces.display()), e))?;
    let code = record::exec(RecordArgs {
        output: Some(trace_dir.clone()),
        no_verify: args.no_verify,
        no_syscallbuf: false,
        no_desched_events: false,
        cpu: None,
        disposable: false,
        keep_env: false,
        pass_env: args.pass_env,
        hide_path: Vec::new(),
        hide_credential_files: false,
        env_removed: Vec::new(),
        discard_if_passed: true,
        chaos: Default::default(),
        prescribe_seed: None,
        prescribe_keep: None,
        prescribe_log: None,
        command: args.command,
    })?;
    if trace_dir.join(rrtest_trace::HEADER_FILE).is_file() {
        create_private_dir(&test_archives)
            .map_err(|e| Error::io(format!("creating {}", test_archives.display()), e))?;
        pack::pack(&trace_dir, &archive).map_err(rrtest_trace::Error::from)?;
        eprintln!(
            "cargo-rrtest: kept the trace of {binary_id} {name} (attempt {attempt}); \
             replay it with `cargo rrtest replay {}`",
            crate::harness::shell_word(&format!("{binary_id}::{name}"))
        );
    } else {
        // A passing test leaves no directory of its own behind.
        let _ = std::fs::remove_dir(&test_traces);
    }
    Ok(code)
}

/// The binary id and test name: nextest's variables, else (older nextest
/// versions) the binary's file name without cargo's hash and the name
/// after `--exact`.
fn test_identity(
    command: &[OsString],
    binary_id: Option<String>,
    name: Option<String>,
) -> Result<(String, String)> {
    let name = name.or_else(|| {
        command
            .iter()
            .position(|a| a == "--exact")
            .and_then(|i| command.get(i + 1))
            .map(|n| n.to_string_lossy().into_owned())
    });
    let binary_id = binary_id.or_else(|| {
        let file = Path::new(command.first()?).file_name()?.to_string_lossy();
        Some(match file.rsplit_once('-') {
            Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem.into(),
            _ => file.into_owned(),
        })
    });
    match (binary_id, name) {
        (Some(b), Some(n)) => Ok((b, n)),
        _ => Err(Error::Usage(
            "`wrap` could not tell which test it runs (no NEXTEST_TEST_NAME, no `--exact NAME` \
             argument); it is meant as a nextest wrapper script: see docs/nextest.md"
                .into(),
        )),
    }
}

/// The cargo target directory a test binary was built in: the nearest
/// directory above it holding cargo's `.rustc_info.json` (written on every
/// build) or `CACHEDIR.TAG` (written only when cargo creates the
/// directory), else CARGO_TARGET_DIR.
fn target_dir_of(binary: &Path, cargo_target_dir: Option<OsString>) -> Result<PathBuf> {
    let tagged = binary
        .ancestors()
        .skip(1)
        .find(|d| d.join(".rustc_info.json").is_file() || d.join("CACHEDIR.TAG").is_file());
    if let Some(dir) = tagged {
        return Ok(dir.to_path_buf());
    }
    cargo_target_dir
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: no cargo target directory above this test binary (no .rustc_info.json or \
                 CACHEDIR.TAG); \
                 give `cargo-rrtest wrap --target-dir DIR` in the wrapper's command",
                binary.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_dir_is_found_above_the_binary() {
        let tmp = tempfile::tempdir().unwrap();
        let deps = tmp.path().join("t/debug/deps");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(tmp.path().join("t/CACHEDIR.TAG"), "x").unwrap();
        assert_eq!(
            target_dir_of(&deps.join("demo-0123"), None).unwrap(),
            tmp.path().join("t")
        );
        assert_eq!(
            target_dir_of(&deps.join("demo-0123"), Some("/elsewhere".into())).unwrap(),
            tmp.path().join("t")
        );
        assert_eq!(
            target_dir_of(&tmp.path().join("x/bin"), Some("/elsewhere".into())).unwrap(),
            PathBuf::from("/elsewhere")
        );
        // A target directory that existed before cargo built in it has no
        // CACHEDIR.TAG; .rustc_info.json marks it, nearer than an outer one.
        let inner = tmp.path().join("t/rrtest-it/ws/target");
        std::fs::create_dir_all(inner.join("debug/deps")).unwrap();
        std::fs::write(inner.join(".rustc_info.json"), "{}").unwrap();
        assert_eq!(
            target_dir_of(&inner.join("debug/deps/demo-0123"), None).unwrap(),
            inner
        );
        let err = target_dir_of(&tmp.path().join("elsewhere/bin"), None).unwrap_err();
        assert!(err.to_string().contains("--target-dir"), "{err}");
    }

    #[test]
    fn the_test_is_named_by_nextest_or_its_arguments() {
        let cmd: Vec<OsString> = [
            "/t/debug/deps/demo_core-4d4cd4adfa859c6b",
            "--exact",
            "tests::a",
            "--nocapture",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let from_env = test_identity(&cmd, Some("demo-core".into()), Some("tests::b".into()));
        assert_eq!(from_env.unwrap(), ("demo-core".into(), "tests::b".into()));
        let from_args = test_identity(&cmd, None, None).unwrap();
        assert_eq!(from_args, ("demo_core".into(), "tests::a".into()));
        let bare: Vec<OsString> = vec!["/bin/prog".into()];
        assert_eq!(test_identity(&bare, None, None).unwrap_err().exit_code(), 2);
    }
}
