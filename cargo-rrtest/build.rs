//! Builds the preload library (`preload/`) as a `#![no_std]` cdylib with
//! `panic=abort` and leaves it in `OUT_DIR` for `src/preload.rs` to embed.
//!
//! The workspace builds with unwinding, so the library cannot come from an
//! ordinary cargo dependency: this script runs `$RUSTC` directly, first on
//! the ABI crate (`preload/abi`, as an rlib) and then on the preload crate.
//! Nothing from the environment's RUSTFLAGS reaches these invocations (an
//! instrumentation flag would add imports); `-nostartfiles` keeps the C
//! runtime's start files, and their weak libc references, out.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file name `src/preload.rs` includes from `OUT_DIR`.
const OUTPUT: &str = "librrtest_preload.so";

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by exiting non-zero; its stderr is
        // shown by cargo.
        eprintln!("error: building the preload library failed: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let target = var("TARGET")?
        .into_string()
        .map_err(|t| format!("TARGET is not UTF-8: {t:?}"))?;
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));

    let preload = manifest_dir
        .parent()
        .ok_or("cargo-rrtest has no parent directory")?
        .join("preload");
    for dir in [preload.join("src"), preload.join("abi").join("src")] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let output = out_dir.join(OUTPUT);
    if !(target.starts_with("x86_64-") && target.contains("-linux-")) {
        // The recorder itself only exists on x86-64 Linux; elsewhere the
        // crate still builds (docs, cross-checks) with an empty library.
        println!("cargo:warning=preload library not built for target {target}: x86_64 Linux only");
        return std::fs::write(&output, []).map_err(|e| format!("{}: {e}", output.display()));
    }

    // The library uses no libc (it has no DT_NEEDED entries) and is loaded
    // into the tests' processes, whatever their libc; a static musl
    // cargo-rrtest (the release build) embeds the same gnu-target build:
    // musl targets link statically by default and make no cdylibs.
    let preload_target = if target.ends_with("-linux-musl") {
        "x86_64-unknown-linux-gnu"
    } else {
        target.as_str()
    };
    let common = |crate_type: &str, name: &str| {
        let mut cmd = Command::new(&rustc);
        cmd.args([
            "--edition",
            "2021",
            "--crate-type",
            crate_type,
            "--crate-name",
            name,
        ])
        .args(["--target", preload_target])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "debuginfo=0", "-C", "strip=debuginfo"])
        .arg("--out-dir")
        .arg(&out_dir)
        // Keep cargo's flags for the main build out of these invocations.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
        cmd
    };

    let mut abi = common("rlib", "rrtest_abi");
    abi.arg(preload.join("abi").join("src").join("lib.rs"));
    run_rustc(abi)?;

    let mut lib = common("cdylib", "rrtest_preload");
    lib.args([
        "-C",
        "link-arg=-nostartfiles",
        "-C",
        "link-arg=-Wl,--gc-sections",
    ])
    .arg("--extern")
    .arg(extern_arg(&out_dir.join("librrtest_abi.rlib")))
    .arg(preload.join("src").join("lib.rs"));
    run_rustc(lib)?;

    if !output.is_file() {
        return Err(format!(
            "rustc succeeded but {} is missing",
            output.display()
        ));
    }
    Ok(())
}

fn var(name: &str) -> Result<OsString, String> {
    env::var_os(name).ok_or_else(|| format!("{name} is not set"))
}

fn extern_arg(rlib: &Path) -> OsString {
    let mut arg = OsString::from("rrtest_abi=");
    arg.push(rlib);
    arg
}

fn run_rustc(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{shown} failed ({}):\n{stderr}", out.status));
    }
    for line in stderr.lines().filter(|l| l.starts_with("warning")) {
        println!("cargo:warning=preload: {line}");
    }
    Ok(())
}
