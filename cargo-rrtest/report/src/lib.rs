//! `rrtest-report`: the versioned JSON report ([`json`]), JUnit XML
//! ([`junit`]) and GitHub Actions output ([`github`]: annotations, fenced
//! output, step summary).
//!
//! The harness fills a [`json::Report`]; the other formats are views of it.
//!
//! Data and rendering only, so that other tools can read cargo-rrtest's
//! reports by depending on this crate alone: it depends on no other
//! cargo-rrtest crate and on no machinery (no recorder, trace, process or
//! command-line code). The command layer maps its [`Error`] to exit codes.

#![forbid(unsafe_code)]

pub mod github;
pub mod json;
pub mod junit;

pub use json::{
    Attempt, AttemptOutcome, FirstDifference, Outcome, Panic, Report, StressSettings, Summary,
    TestReport,
};

/// A size for people: `512 B`, `1.5 KiB`, `7.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(7 * 1024 * 1024 + 300 * 1024), "7.3 MiB");
    }
}

/// Errors writing or reading reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a report file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A report file is not valid JSON of the expected shape.
    #[error("{path}: not a cargo-rrtest report: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A report has a schema version this build cannot read.
    #[error(
        "{path}: report schema version {found} is not supported (this cargo-rrtest reads version {supported}); \
         merge reports written by the same cargo-rrtest version"
    )]
    Version {
        /// The file.
        path: std::path::PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Two reports being merged contain the same test.
    #[error("test `{binary_id} {name}` appears in both {first} and {second}: are the shards overlapping?")]
    Duplicate {
        /// The test's binary id.
        binary_id: String,
        /// The test's name.
        name: String,
        /// The first report containing it.
        first: std::path::PathBuf,
        /// The second report containing it.
        second: std::path::PathBuf,
    },
}
