//! The layers of the workspace, checked by reading the sources (test only).
//!
//! Crates enforce the direction between `rrtest-sys`, `rrtest-syscalls`,
//! `rrtest-trace`, `rrtest-report` and this crate; inside this crate the
//! modules keep it by convention, and this test keeps the convention:
//!
//! ```text
//!   cli                      (top: nothing imports it)
//!   harness
//!   errors                   (the command layer's error: wraps the two below)
//!   recorder | replayer      (mirror images: neither imports the other)
//!   tracee                   (what both do to a tracee in the same way)
//!   preload, util            (leaves)
//! ```
//!
//! A module may name (`crate::X`, outside comments) only modules of a lower
//! layer; the few exceptions are listed in [`EXCEPTIONS`] with their reason.
//! The crates' own `[dependencies]` on each other are checked against
//! [`CRATE_DEPS`], and every crate but `rrtest-sys` forbids unsafe code.

use std::path::{Path, PathBuf};

/// The main crate's top-level modules and their layer (higher may use lower).
const LAYERS: &[(&str, u8)] = &[
    ("cli", 5),
    ("harness", 4),
    ("errors", 3),
    ("recorder", 2),
    ("replayer", 2),
    ("tracee", 1),
    ("preload", 0),
    ("util", 0),
];

/// Upward edges allowed, as (file under `src/`, module it names, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "recorder/server.rs",
    "errors",
    "the recording server is a process entry point, like a cli verb: it prints the command \
     layer's error and exits with its documented codes",
)];

/// Each workspace crate under `cargo-rrtest/` and the cargo-rrtest crates it
/// may depend on.
const CRATE_DEPS: &[(&str, &[&str])] = &[
    ("sys", &["rrtest-abi"]),
    ("syscalls", &["rrtest-abi", "rrtest-sys"]),
    ("trace", &["rrtest-abi", "rrtest-sys"]),
    ("report", &["rrtest-sys"]),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level modules named as `crate::X` in `source`, with their line
/// numbers (1-based), outside `//` comments.
fn crate_refs(source: &str) -> Vec<(usize, String)> {
    let mut refs = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !preceded_by_ident && !name.is_empty() {
                refs.push((i + 1, name));
            }
        }
    }
    refs
}

/// The forbidden edges in `source`, a file of module `from`, as
/// `file:line: from -> to` lines.
fn forbidden_edges(file: &str, from: &str, source: &str) -> Vec<String> {
    let Some(from_layer) = layer(from) else {
        return Vec::new();
    };
    crate_refs(source)
        .into_iter()
        .filter(|(_, to)| to != from)
        .filter(|(_, to)| layer(to).is_some_and(|l| l >= from_layer))
        .filter(|(_, to)| !EXCEPTIONS.iter().any(|(f, m, _)| *f == file && m == to))
        .map(|(line, to)| format!("src/{file}:{line}: {from} -> {to}"))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn modules_import_only_lower_layers() {
    let src = manifest_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut checked = 0;
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let rel_str = rel.to_string_lossy().into_owned();
        let top = rel.components().next().expect("a component");
        let module = top.as_os_str().to_string_lossy();
        let module = module.strip_suffix(".rs").unwrap_or(&module);
        if layer(module).is_none() {
            continue;
        }
        let source = std::fs::read_to_string(path).expect("read a source file");
        bad.extend(forbidden_edges(&rel_str, module, &source));
        checked += 1;
    }
    // Every layered module was found (a renamed directory must update LAYERS).
    for (module, _) in LAYERS {
        assert!(
            src.join(module).is_dir() || src.join(format!("{module}.rs")).is_file(),
            "module {module} of LAYERS is not in src/"
        );
    }
    assert!(checked > 20, "only {checked} files checked");
    assert!(
        bad.is_empty(),
        "imports against the layers (see src/layers.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_finds_forbidden_edges() {
    let source = "use crate::replayer::Divergence;\n\
                  // crate::cli in a comment is no edge\n\
                  let x = rrtest_crate::harness::f(); let y = crate::tracee::f();\n\
                  fn f() { crate::harness::run(); }\n";
    assert_eq!(
        forbidden_edges("recorder/x.rs", "recorder", source),
        vec![
            "src/recorder/x.rs:1: recorder -> replayer",
            "src/recorder/x.rs:4: recorder -> harness",
        ]
    );
    // The listed exception, and only in its file.
    let source = "use crate::errors::exit_codes;\n";
    assert!(forbidden_edges("recorder/server.rs", "recorder", source).is_empty());
    assert_eq!(
        forbidden_edges("recorder/other.rs", "recorder", source),
        vec!["src/recorder/other.rs:1: recorder -> errors"]
    );
}

/// The `rrtest-*` names in the `[dependencies]` table of a Cargo.toml.
fn rrtest_dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && line.starts_with("rrtest-") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            deps.push(name);
        }
    }
    deps
}

#[test]
fn crates_depend_only_on_lower_crates() {
    let mut bad = Vec::new();
    for (dir, allowed) in CRATE_DEPS {
        let crate_dir = manifest_dir().join(dir);
        let manifest =
            std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("read a Cargo.toml");
        for dep in rrtest_dependencies(&manifest) {
            if !allowed.contains(&dep.as_str()) {
                bad.push(format!("cargo-rrtest/{dir}/Cargo.toml: depends on {dep}"));
            }
        }
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).expect("read a lib.rs");
        let forbids = lib.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]");
        if (*dir == "sys") == forbids {
            bad.push(format!(
                "cargo-rrtest/{dir}/src/lib.rs: {}",
                if forbids {
                    "the sys crate forbids unsafe code"
                } else {
                    "no #![forbid(unsafe_code)]"
                }
            ));
        }
    }
    let main_lib = std::fs::read_to_string(manifest_dir().join("src/lib.rs")).expect("lib.rs");
    if !main_lib
        .lines()
        .any(|l| l.trim() == "#![forbid(unsafe_code)]")
    {
        bad.push("cargo-rrtest/src/lib.rs: no #![forbid(unsafe_code)]".to_owned());
    }
    assert!(
        bad.is_empty(),
        "crate dependencies against the layers (see src/layers.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_dependency_reader_sees_only_the_dependencies_table() {
    let manifest = "[package]\nname = \"rrtest-x\"\n\n[dependencies]\nlibc.workspace = true\n\
                    rrtest-sys.workspace = true\nrrtest-trace = { workspace = true }\n\n\
                    [dev-dependencies]\nrrtest-report.workspace = true\n";
    assert_eq!(
        rrtest_dependencies(manifest),
        vec!["rrtest-sys", "rrtest-trace"]
    );
}
