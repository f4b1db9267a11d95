//! Building the programs the recorder trials record: the C fixtures
//! (fixtures/c, compiled with gcc into `scratch_dir("c-fixtures")`, reused
//! while newer than their sources) and the Rust fixture workspace
//! (fixtures/programs, built once per test run with cargo into
//! `scratch_dir("fixture-programs-target")`).
//!
//! Builds are shared by all trials of one run (a lock per C binary, a
//! `OnceLock` for cargo) and safe between concurrent test processes (a C
//! binary is written under a temporary name and renamed into place; cargo
//! locks its own target directory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use crate::common;

/// How a C fixture is compiled and linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Position-independent executable (the distribution default).
    Pie,
    /// A fixed-address executable (`-no-pie`).
    NoPie,
    /// Statically linked: no dynamic loader, syscalls straight from the binary.
    Static,
}

impl Link {
    /// The suffix in binary and trial names.
    pub fn suffix(self) -> &'static str {
        match self {
            Link::Pie => "pie",
            Link::NoPie => "nopie",
            Link::Static => "static",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Link::Pie => &["-fPIE", "-pie"],
            Link::NoPie => &["-fno-pie", "-no-pie"],
            Link::Static => &["-static"],
        }
    }
}

/// One C fixture build: a source file in fixtures/c, a link mode and extra
/// preprocessor defines (e.g. `EXTRA_SYSCALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CBuild {
    /// The fixture's name: fixtures/c/NAME.c.
    pub name: &'static str,
    /// How it is linked.
    pub link: Link,
    /// `-D` defines, also part of the binary's name.
    pub defines: &'static [&'static str],
}

impl CBuild {
    /// A PIE build of `name` without defines.
    pub const fn pie(name: &'static str) -> Self {
        CBuild {
            name,
            link: Link::Pie,
            defines: &[],
        }
    }

    /// The binary's file name in the scratch directory.
    fn binary_name(&self) -> String {
        let mut s = format!("{}-{}", self.name, self.link.suffix());
        for d in self.defines {
            s.push('-');
            s.push_str(&d.to_ascii_lowercase());
        }
        s
    }
}

/// Why C trials cannot run here, if they cannot: `None` when gcc works.
pub fn gcc_missing() -> Option<&'static str> {
    static MISSING: OnceLock<Option<&'static str>> = OnceLock::new();
    *MISSING.get_or_init(|| {
        let ok = Command::new("gcc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            None
        } else {
            Some("gcc is not installed (the C fixtures cannot be compiled)")
        }
    })
}

/// The C fixture sources.
pub fn c_source_dir() -> PathBuf {
    common::fixtures_dir().join("c")
}

type BuildSlot = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// Compiles `build` (once per test run, and only if the binary in the scratch
/// directory is older than its sources or was built with other flags) and
/// returns the binary's path, or gcc's complaint.
pub fn c_fixture(build: CBuild) -> Result<PathBuf, String> {
    static SLOTS: OnceLock<Mutex<HashMap<CBuild, BuildSlot>>> = OnceLock::new();
    let slot = {
        let mut slots = SLOTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(build).or_default())
    };
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = &*slot {
        return done.clone();
    }
    let result = compile(build);
    *slot = Some(result.clone());
    result
}

fn compile(build: CBuild) -> Result<PathBuf, String> {
    if let Some(why) = gcc_missing() {
        return Err(why.to_string());
    }
    let src_dir = c_source_dir();
    let source = src_dir.join(format!("{}.c", build.name));
    let out_dir = common::scratch_dir("c-fixtures");
    let out = out_dir.join(build.binary_name());

    let mut args: Vec<String> = ["-O1", "-g", "-pthread", "-Wall", "-Wextra"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(build.link.flags().iter().map(|s| s.to_string()));
    // No build-id note: two builds that differ in a define differ only where
    // the define does (the divergence trial relies on it).
    args.push("-Wl,--build-id=none".into());
    args.extend(build.defines.iter().map(|d| format!("-D{d}")));
    let recipe = format!("gcc {} {}\n", args.join(" "), source.display());
    let recipe_file = out_dir.join(format!("{}.cmd", build.binary_name()));

    // The headers (`fixture.h`, and those some fixtures share) are inputs
    // of every fixture.
    let mut inputs = vec![source.clone()];
    inputs.extend(
        std::fs::read_dir(&src_dir)
            .map_err(|e| format!("{}: {e}", src_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "h")),
    );
    let newest_input = inputs
        .iter()
        .map(|p| mtime(p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let up_to_date = mtime(&out).map(|t| t >= newest_input).unwrap_or(false)
        && std::fs::read_to_string(&recipe_file).ok().as_deref() == Some(recipe.as_str());
    if up_to_date {
        return Ok(out);
    }

    let tmp = out_dir.join(format!(
        ".{}.{}.tmp",
        build.binary_name(),
        std::process::id()
    ));
    let output = Command::new("gcc")
        .args(&args)
        .arg("-o")
        .arg(&tmp)
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running gcc: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{recipe}failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    std::fs::write(&recipe_file, &recipe)
        .map_err(|e| format!("writing {}: {e}", recipe_file.display()))?;
    Ok(out)
}

fn mtime(p: &Path) -> Result<SystemTime, String> {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// The built Rust fixture programs.
#[derive(Debug)]
pub struct RustPrograms {
    /// Binaries of fixtures/programs/src/bin, by target name.
    pub bins: HashMap<String, PathBuf>,
    /// The libtest binary of the fixture library's unit tests.
    pub lib_tests: PathBuf,
}

/// The Rust fixture workspace.
pub fn programs_dir() -> PathBuf {
    common::fixtures_dir().join("programs")
}

/// Builds fixtures/programs (its bins with `cargo build`, its lib's test
/// binary with `cargo test --no-run`) once per test run.
pub fn rust_programs() -> Result<&'static RustPrograms, String> {
    static BUILT: OnceLock<Result<RustPrograms, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_rust_programs)
        .as_ref()
        .map_err(Clone::clone)
}

fn build_rust_programs() -> Result<RustPrograms, String> {
    let target = common::scratch_dir("fixture-programs-target");
    let bins_json = cargo_json(&["build", "--bins"], &target)?;
    let tests_json = cargo_json(&["test", "--no-run", "--lib"], &target)?;

    let mut bins = HashMap::new();
    let mut lib_tests = None;
    for artifact in bins_json.iter().chain(&tests_json) {
        let Some(exe) = artifact["executable"].as_str() else {
            continue;
        };
        let kinds = artifact["target"]["kind"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let is = |k: &str| kinds.iter().any(|v| v == k);
        let test_profile = artifact["profile"]["test"].as_bool().unwrap_or(false);
        let name = artifact["target"]["name"].as_str().unwrap_or_default();
        if is("bin") && !test_profile {
            bins.insert(name.to_string(), PathBuf::from(exe));
        } else if is("lib") && test_profile {
            lib_tests = Some(PathBuf::from(exe));
        }
    }
    let lib_tests = lib_tests.ok_or("cargo test --no-run reported no lib test binary")?;
    Ok(RustPrograms { bins, lib_tests })
}

/// Runs cargo with `--message-format json` in the fixture workspace and
/// returns its compiler-artifact messages.
fn cargo_json(args: &[&str], target: &Path) -> Result<Vec<serde_json::Value>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(programs_dir())
        .args(args)
        .args(["--locked", "--offline", "--message-format", "json"])
        .arg("--target-dir")
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo {} in {} failed ({}):\n{}",
            args.join(" "),
            programs_dir().display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .collect())
}
