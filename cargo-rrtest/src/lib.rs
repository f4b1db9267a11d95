//! `cargo rrtest`: run a workspace's tests under a record-and-replay recorder,
//! keep the recordings of the tests that failed or were flaky, and replay them.
//!
//! Subsystems (DESIGN.md §3):
//! - [`cli`]: one file per verb, clap derive, exit codes;
//! - [`harness`]: build, list, partition, schedule, run, retry;
//! - [`recorder`] and [`replayer`]: mirror images, file for file;
//! - [`preload`]: the embedded syscall-buffer library and its cache copy.
//!
//! Below it, in their own crates (`cargo-rrtest/*/`, docs/design.md
//! "Layout"):
//! - `rrtest-sys`: the only crate with `unsafe` code (ptrace, tracee memory,
//!   spawning, seccomp, perf, CPU);
//! - `rrtest-syscalls`: the typed syscall table and the syscall-site patcher,
//!   shared by the recorder, the replayer and [`tracee`];
//! - `rrtest-trace`: the on-disk trace format;
//! - `rrtest-report`: the versioned JSON report, JUnit and GitHub Actions
//!   output (data only).

#![forbid(unsafe_code)]

pub mod cli;
pub mod errors;
pub mod harness;
#[cfg(test)]
mod layers;
pub mod preload;
pub mod recorder;
pub mod replayer;
pub mod tracee;
pub mod util;
