//! Helpers shared by the integration test modules: locating (and building)
//! the real `cargo-rrtest` binary, and paths of the fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("fixtures")
}

/// The cargo target directory the tests were built in.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target"),
    }
}

/// A scratch directory under the target directory, for fixtures built by the
/// tests (kept between runs so repeated runs are incremental).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = target_dir().join("rrtest-it").join(name);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The `cargo-rrtest` binary, built once per test run (in the same profile
/// as the tests: `cargo test` does not build the binaries of other packages).
pub fn cargo_rrtest() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "cargo-rrtest",
                "--bin",
                "cargo-rrtest",
            ])
            .status()
            .expect("run cargo build -p cargo-rrtest");
        assert!(status.success(), "building cargo-rrtest failed");
        let bin = target_dir().join("debug").join("cargo-rrtest");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}
