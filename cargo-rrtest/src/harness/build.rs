//! Building the test binaries like `cargo test` does:
//! `cargo test --no-run --message-format json-render-diagnostics` with the
//! user's cargo flags. Cargo renders compiler diagnostics to our stderr (which
//! the user sees); its JSON messages on stdout are parsed with cargo_metadata to
//! find every test executable, the binaries integration tests may run
//! (`CARGO_BIN_EXE_<name>`) and build-script output directories (`OUT_DIR`).
//! `cargo metadata --no-deps` supplies the package fields `cargo test` exports
//! as `CARGO_PKG_*` and the target directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cargo_metadata::{Message, TargetKind};

/// Errors of the build step.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started or its output read.
    #[error("running `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `cargo metadata` failed.
    #[error("cargo metadata: {0}")]
    Metadata(#[from] cargo_metadata::Error),
    /// The build failed; cargo has printed why.
    #[error("`cargo test --no-run` failed ({0}); see the compiler output above")]
    Failed(std::process::ExitStatus),
}

impl From<BuildError> for crate::errors::Error {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Failed(_) => crate::errors::Error::Build(e.to_string()),
            other => crate::errors::Error::Other(other.to_string()),
        }
    }
}

/// The cargo flags `cargo rrtest` passes through to `cargo test --no-run`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Cargo options")]
pub struct CargoOptions {
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Test all packages in the workspace.
    #[arg(long, alias = "all")]
    pub workspace: bool,
    /// Package(s) to test.
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Exclude package(s) (with --workspace).
    #[arg(long, value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// Build in release mode.
    #[arg(short = 'r', long)]
    pub release: bool,
    /// Build with the given profile.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Space- or comma-separated features to activate.
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Directory for all generated artifacts.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Require Cargo.lock and the cache to be up to date.
    #[arg(long)]
    pub frozen: bool,
    /// Build artifacts quietly (no `Compiling ...` lines).
    #[arg(long)]
    pub cargo_quiet: bool,
}

impl CargoOptions {
    /// The flags to append to `cargo test --no-run`.
    fn build_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(p) = &self.manifest_path {
            args.extend(["--manifest-path".into(), p.into()]);
        }
        if self.workspace {
            args.push("--workspace".into());
        }
        for p in &self.packages {
            args.extend(["--package".into(), p.into()]);
        }
        for p in &self.exclude {
            args.extend(["--exclude".into(), p.into()]);
        }
        if self.release {
            args.push("--release".into());
        }
        if let Some(p) = &self.profile {
            args.extend(["--profile".into(), p.into()]);
        }
        for f in &self.features {
            args.extend(["--features".into(), f.into()]);
        }
        if self.all_features {
            args.push("--all-features".into());
        }
        if self.no_default_features {
            args.push("--no-default-features".into());
        }
        if let Some(d) = &self.target_dir {
            args.extend(["--target-dir".into(), d.into()]);
        }
        args.extend(self.lock_args().into_iter().map(OsString::from));
        if self.cargo_quiet {
            args.push("--quiet".into());
        }
        args
    }

    fn lock_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (on, flag) in [
            (self.locked, "--locked"),
            (self.offline, "--offline"),
            (self.frozen, "--frozen"),
        ] {
            if on {
                args.push(flag.to_string());
            }
        }
        args
    }
}

/// The kind of target a test binary was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A library's (or proc-macro's) unit tests.
    Lib,
    /// An integration test (`tests/*.rs`).
    Test,
    /// A binary's unit tests.
    Bin,
    /// An example's tests.
    Example,
    /// A bench target built as a test.
    Bench,
}

/// One test executable and everything needed to run it like `cargo test`.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// nextest-style id: `crate`, `crate::target`, `crate::bin/name`.
    pub binary_id: String,
    /// The executable.
    pub path: PathBuf,
    /// The target kind.
    pub kind: BinaryKind,
    /// The target's name.
    pub target_name: String,
    /// The package directory (the test's cwd and `CARGO_MANIFEST_DIR`).
    pub manifest_dir: PathBuf,
    /// The package's Cargo.toml.
    pub manifest_path: PathBuf,
    /// `CARGO_PKG_*`, `CARGO_CRATE_NAME`, `CARGO_BIN_EXE_*`, `OUT_DIR`,
    /// `CARGO_TARGET_TMPDIR`: the variables `cargo test` (and nextest) give.
    pub env: Vec<(String, OsString)>,
    /// The package name.
    pub package: String,
}

/// What the build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// Every test executable, sorted by binary id.
    pub binaries: Vec<TestBinary>,
    /// The cargo workspace root.
    pub workspace_root: PathBuf,
    /// The target directory.
    pub target_dir: PathBuf,
    /// The cargo executable (`CARGO` for tests).
    pub cargo: OsString,
}

/// The cargo executable: `$CARGO` when cargo ran us, else `cargo`.
pub fn cargo_path() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds the tests and collects the binaries.
pub fn build(opts: &CargoOptions) -> Result<BuildOutput, BuildError> {
    let cargo = cargo_path();
    let mut meta_cmd = cargo_metadata::MetadataCommand::new();
    meta_cmd
        .cargo_path(&cargo)
        .no_deps()
        .other_options(opts.lock_args());
    if let Some(p) = &opts.manifest_path {
        meta_cmd.manifest_path(p);
    }
    let metadata = meta_cmd.exec()?;
    let target_dir = match &opts.target_dir {
        Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
        None => metadata.target_directory.clone().into_std_path_buf(),
    };

    let mut cmd = Command::new(&cargo);
    cmd.args([
        "test",
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ])
    .args(opts.build_args())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let describe = || format!("{} test --no-run", cargo.to_string_lossy());
    let mut child = cmd.spawn().map_err(|source| BuildError::Spawn {
        command: describe(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");

    let mut tests = Vec::new();
    let mut bin_exes: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
    let mut out_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message = message.map_err(|source| BuildError::Spawn {
            command: describe(),
            source,
        })?;
        match message {
            Message::CompilerArtifact(a) => {
                let Some(exe) = a.executable.clone() else {
                    continue;
                };
                if a.profile.test {
                    tests.push(a);
                } else if a.target.kind.contains(&TargetKind::Bin) {
                    bin_exes
                        .entry(a.package_id.repr.clone())
                        .or_default()
                        .push((a.target.name.clone(), exe.into_std_path_buf()));
                }
            }
            Message::BuildScriptExecuted(s) => {
                out_dirs.insert(s.package_id.repr.clone(), s.out_dir.into_std_path_buf());
            }
            // Diagnostics are rendered by cargo to stderr already.
            _ => {}
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        command: describe(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Failed(status));
    }

    let packages: BTreeMap<&str, &cargo_metadata::Package> = metadata
        .packages
        .iter()
        .map(|p| (p.id.repr.as_str(), p))
        .collect();
    let mut binaries = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for a in tests {
        let exe = a
            .executable
            .clone()
            .expect("filtered above")
            .into_std_path_buf();
        if !seen.insert(exe.clone()) {
            continue;
        }
        let package = packages.get(a.package_id.repr.as_str()).copied();
        let package_name = package
            .map(|p| p.name.to_string())
            .unwrap_or_else(|| name_from_id(&a.package_id.repr).0);
        let kind = binary_kind(&a.target.kind);
        let binary_id = match kind {
            BinaryKind::Lib => package_name.clone(),
            BinaryKind::Test => format!("{package_name}::{}", a.target.name),
            BinaryKind::Bin => format!("{package_name}::bin/{}", a.target.name),
            BinaryKind::Example => format!("{package_name}::example/{}", a.target.name),
            BinaryKind::Bench => format!("{package_name}::bench/{}", a.target.name),
        };
        let manifest_path = a.manifest_path.clone().into_std_path_buf();
        let manifest_dir = manifest_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| metadata.workspace_root.clone().into_std_path_buf());
        let mut env = package_env(package, &a.package_id.repr, &manifest_path);
        env.push((
            "CARGO_CRATE_NAME".into(),
            a.target.name.replace('-', "_").into(),
        ));
        env.push(("CARGO".into(), cargo.clone()));
        if matches!(kind, BinaryKind::Test | BinaryKind::Bench) {
            for (name, path) in bin_exes.get(&a.package_id.repr).into_iter().flatten() {
                env.push((format!("CARGO_BIN_EXE_{name}"), path.into()));
            }
            let tmp = target_dir.join("tmp");
            let _ = std::fs::create_dir_all(&tmp);
            env.push(("CARGO_TARGET_TMPDIR".into(), tmp.into()));
        }
        if let Some(path) = library_path(&exe) {
            env.push(("LD_LIBRARY_PATH".into(), path));
        }
        if let Some(out) = out_dirs.get(&a.package_id.repr) {
            env.push(("OUT_DIR".into(), out.into()));
        }
        binaries.push(TestBinary {
            binary_id,
            path: exe,
            kind,
            target_name: a.target.name.clone(),
            manifest_dir,
            manifest_path,
            env,
            package: package_name,
        });
    }
    binaries.sort_by(|a, b| a.binary_id.cmp(&b.binary_id));
    Ok(BuildOutput {
        binaries,
        workspace_root: metadata.workspace_root.into_std_path_buf(),
        target_dir,
        cargo,
    })
}

/// `LD_LIBRARY_PATH` with the test's `deps` directory and the profile
/// directory in front (as cargo test does), so tests linking Rust dylibs of the
/// workspace find them.
fn library_path(exe: &std::path::Path) -> Option<OsString> {
    let deps = exe.parent()?;
    let mut dirs = vec![deps.to_path_buf()];
    if let Some(profile) = deps.parent() {
        dirs.push(profile.to_path_buf());
    }
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
        dirs.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(dirs).ok()
}

fn binary_kind(kinds: &[TargetKind]) -> BinaryKind {
    if kinds.contains(&TargetKind::Test) {
        BinaryKind::Test
    } else if kinds.contains(&TargetKind::Bin) {
        BinaryKind::Bin
    } else if kinds.contains(&TargetKind::Example) {
        BinaryKind::Example
    } else if kinds.contains(&TargetKind::Bench) {
        BinaryKind::Bench
    } else {
        BinaryKind::Lib
    }
}

/// `(name, version)` from a package id such as
/// `path+file:///w/demo-core#0.3.1` or `registry+...#serde@1.0.0`.
fn name_from_id(id: &str) -> (String, String) {
    let frag = id.rsplit('#').next().unwrap_or(id);
    match frag.split_once('@') {
        Some((name, version)) => (name.to_string(), version.to_string()),
        None => {
            // `path+file:///w/demo-core#0.3.1`: the name is the directory.
            let dir = id.split('#').next().unwrap_or(id);
            let name = dir.rsplit('/').next().unwrap_or(dir);
            (name.to_string(), frag.to_string())
        }
    }
}

/// The `CARGO_PKG_*` and `CARGO_MANIFEST_*` variables of a package.
fn package_env(
    package: Option<&cargo_metadata::Package>,
    id: &str,
    manifest_path: &std::path::Path,
) -> Vec<(String, OsString)> {
    let (name, version) = match package {
        Some(p) => (p.name.to_string(), p.version.to_string()),
        None => name_from_id(id),
    };
    let semver = semver_parts(&version);
    let mut env: Vec<(String, OsString)> = vec![
        ("CARGO_PKG_NAME".into(), name.into()),
        ("CARGO_PKG_VERSION".into(), version.into()),
        ("CARGO_PKG_VERSION_MAJOR".into(), semver.0.into()),
        ("CARGO_PKG_VERSION_MINOR".into(), semver.1.into()),
        ("CARGO_PKG_VERSION_PATCH".into(), semver.2.into()),
        ("CARGO_PKG_VERSION_PRE".into(), semver.3.into()),
        ("CARGO_MANIFEST_PATH".into(), manifest_path.into()),
    ];
    if let Some(dir) = manifest_path.parent() {
        env.push(("CARGO_MANIFEST_DIR".into(), dir.into()));
    }
    let field = |v: Option<&String>| v.cloned().unwrap_or_default();
    if let Some(p) = package {
        env.extend([
            ("CARGO_PKG_AUTHORS".into(), p.authors.join(":").into()),
            (
                "CARGO_PKG_DESCRIPTION".into(),
                field(p.description.as_ref()).into(),
            ),
            (
                "CARGO_PKG_HOMEPAGE".into(),
                field(p.homepage.as_ref()).into(),
            ),
            (
                "CARGO_PKG_REPOSITORY".into(),
                field(p.repository.as_ref()).into(),
            ),
            ("CARGO_PKG_LICENSE".into(), field(p.license.as_ref()).into()),
            (
                "CARGO_PKG_LICENSE_FILE".into(),
                p.license_file
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
                    .into(),
            ),
            (
                "CARGO_PKG_RUST_VERSION".into(),
                p.rust_version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
                    .into(),
            ),
            (
                "CARGO_PKG_README".into(),
                p.readme
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
                    .into(),
            ),
        ]);
    }
    env
}

/// `(major, minor, patch, pre)` of a semver string, empty strings if unparsable.
fn semver_parts(version: &str) -> (String, String, String, String) {
    let (core, pre) = match version.split_once('-') {
        Some((c, p)) => (c, p.split('+').next().unwrap_or("")),
        None => (version.split('+').next().unwrap_or(version), ""),
    };
    let mut parts = core.split('.').map(str::to_string);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        pre.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_semver() {
        assert_eq!(
            semver_parts("1.2.3-beta.1+build"),
            ("1".into(), "2".into(), "3".into(), "beta.1".into())
        );
        assert_eq!(
            semver_parts("0.3.1"),
            ("0".into(), "3".into(), "1".into(), String::new())
        );
    }

    #[test]
    fn names_from_package_ids() {
        assert_eq!(
            name_from_id("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0"),
            ("serde".into(), "1.0.0".into())
        );
        assert_eq!(
            name_from_id("path+file:///w/demo-core#0.3.1"),
            ("demo-core".into(), "0.3.1".into())
        );
    }
}
