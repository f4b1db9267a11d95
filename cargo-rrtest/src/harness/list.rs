//! Discovering the tests of each binary with libtest's stable listing:
//! `<bin> --list --format terse` (every test) and `--ignored` added (the
//! ignored ones), run for all binaries in parallel, in the package directory
//! with the same environment the tests get.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::build::TestBinary;

/// Errors listing tests.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The binary could not be run.
    #[error("listing the tests of {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The binary exited with an error.
    #[error("`{path} --list` failed ({status}): {stderr}")]
    Failed {
        /// The binary.
        path: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr.
        stderr: String,
    },
}

impl From<ListError> for crate::errors::Error {
    fn from(e: ListError) -> Self {
        crate::errors::Error::Other(e.to_string())
    }
}

/// One test as listed.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The binary it lives in.
    pub binary: Arc<TestBinary>,
    /// The name libtest lists.
    pub name: String,
    /// Whether it is `#[ignore]`d.
    pub ignored: bool,
}

/// Lists the tests of all binaries, using up to `jobs` threads. The result is
/// sorted by binary id, then name.
pub fn list_all(binaries: Vec<TestBinary>, jobs: usize) -> Result<Vec<TestCase>, ListError> {
    let binaries: Vec<Arc<TestBinary>> = binaries.into_iter().map(Arc::new).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<TestCase>, ListError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.clamp(1, binaries.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(binary) = binaries.get(i) else {
                            return out;
                        };
                        out.push((i, list_one(binary)));
                    }
                })
            })
            .collect();
        let mut all: Vec<(usize, Result<Vec<TestCase>, ListError>)> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("list worker does not panic"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let mut tests = Vec::new();
    for r in results {
        tests.extend(r?);
    }
    tests.sort_by(|a, b| (&a.binary.binary_id, &a.name).cmp(&(&b.binary.binary_id, &b.name)));
    Ok(tests)
}

fn list_one(binary: &Arc<TestBinary>) -> Result<Vec<TestCase>, ListError> {
    let all = run_list(binary, false)?;
    let ignored: std::collections::BTreeSet<String> = run_list(binary, true)?.into_iter().collect();
    Ok(all
        .into_iter()
        .map(|name| TestCase {
            binary: Arc::clone(binary),
            ignored: ignored.contains(&name),
            name,
        })
        .collect())
}

fn run_list(binary: &TestBinary, ignored: bool) -> Result<Vec<String>, ListError> {
    let mut cmd = Command::new(&binary.path);
    cmd.args(["--list", "--format", "terse"]);
    if ignored {
        cmd.arg("--ignored");
    }
    cmd.current_dir(&binary.manifest_dir)
        .envs(binary.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let out = cmd.output().map_err(|source| ListError::Spawn {
        path: binary.path.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(ListError::Failed {
            path: binary.path.clone(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_terse(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `name: test` lines (benchmarks, `name: bench`, are not tests).
pub fn parse_terse(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terse_listing() {
        let text = "tests::a: test\ntests::b: bench\nweird: name: test\n\n2 tests, 0 benchmarks\n";
        assert_eq!(parse_terse(text), vec!["tests::a", "weird: name"]);
    }
}
