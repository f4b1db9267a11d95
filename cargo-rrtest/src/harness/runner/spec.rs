//! An attempt as a value ([`AttemptSpec`]: program, args, cwd, env,
//! attempt number, and the [`RecordSpec`] when recorded), and the single
//! place where it becomes a process ([`AttemptSpec::to_command`]).
//!
//! It must not run anything: `attempt.rs` spawns the command.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::harness::list::TestCase;

/// Where and with what a recorded attempt is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// The executable with the `record` verb.
    pub recorder: PathBuf,
    /// The trace directory to write.
    pub trace_dir: PathBuf,
    /// Record with the syscall buffer.
    pub syscallbuf: bool,
    /// The CPU to record on.
    pub cpu: Option<usize>,
    /// Send the attempt to the worker's recorder server (`super::server`)
    /// rather than start `record` for it.
    pub serve: bool,
    /// Ask the server to write no trace if the test passes (its trace
    /// would be deleted anyway).
    pub discard_if_passed: bool,
    /// Paths the test is to see as empty (`--hide-path`).
    pub hide_paths: Vec<PathBuf>,
    /// The chaos scheduler's seed for this attempt (`--chaos`).
    pub chaos: Option<u64>,
}

/// One attempt of one test, as a value: what to execute, where, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSpec {
    /// The test binary.
    pub program: PathBuf,
    /// `--exact NAME --nocapture` (and `--include-ignored` for ignored tests).
    pub args: Vec<OsString>,
    /// The package directory.
    pub cwd: PathBuf,
    /// Variables set on top of the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Attempts allowed in all (retries + 1).
    pub total_attempts: u32,
    /// Inherited variables to remove from the environment.
    pub env_remove: Vec<OsString>,
    /// Record the attempt, or None to run it natively.
    pub record: Option<RecordSpec>,
}

impl AttemptSpec {
    /// The spec of attempt `attempt` of `total_attempts` of `test`.
    pub fn new(test: &TestCase, attempt: u32, total_attempts: u32) -> Self {
        let mut args: Vec<OsString> = vec![
            "--exact".into(),
            test.name.clone().into(),
            "--nocapture".into(),
        ];
        if test.ignored {
            args.push("--include-ignored".into());
        }
        let mut env: Vec<(OsString, OsString)> = test
            .binary
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.clone()))
            .collect();
        env.push(("RRTEST_ATTEMPT".into(), attempt.to_string().into()));
        env.push((
            "RRTEST_TOTAL_ATTEMPTS".into(),
            total_attempts.to_string().into(),
        ));
        AttemptSpec {
            program: test.binary.path.clone(),
            args,
            cwd: test.binary.manifest_dir.clone(),
            env,
            attempt,
            total_attempts,
            env_remove: Vec::new(),
            record: None,
        }
    }

    /// The process for this attempt: the single place where an attempt becomes a
    /// command, recorded (`<recorder> record --no-verify --disposable -o TRACE
    /// -- <bin> <args>`) or not.
    pub fn to_command(&self) -> Command {
        let mut cmd = match &self.record {
            None => {
                let mut cmd = Command::new(&self.program);
                cmd.args(&self.args);
                cmd
            }
            Some(r) => {
                let mut cmd = Command::new(&r.recorder);
                // The environment is filtered here already (`env_remove`);
                // the recorder writes down what was removed.
                cmd.args(["record", "--no-verify", "--disposable", "--keep-env"])
                    .args(
                        self.env_remove
                            .iter()
                            .flat_map(|n| ["--env-removed".into(), n.clone()]),
                    )
                    .args(
                        r.hide_paths
                            .iter()
                            .flat_map(|p| ["--hide-path".into(), p.clone().into_os_string()]),
                    )
                    .args((!r.syscallbuf).then_some("--no-syscallbuf"))
                    .args(r.cpu.map(|c| format!("--cpu={c}")))
                    .args(
                        r.chaos
                            .into_iter()
                            .flat_map(|s| ["--chaos".to_string(), format!("--seed={s}")]),
                    )
                    .arg("-o")
                    .arg(&r.trace_dir)
                    .arg("--")
                    .arg(&self.program)
                    .args(&self.args);
                cmd
            }
        };
        for name in &self.env_remove {
            cmd.env_remove(name);
        }
        cmd.current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }
}
