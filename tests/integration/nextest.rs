//! nextest users keep nextest: `cargo nextest run` with `cargo-rrtest wrap`
//! as a wrapper script (docs/nextest.md) on a copy of the demo workspace
//! records each test, keeps the traces of the failing one only (every
//! attempt, with `--retries`), packs them, removes an earlier run's trace of
//! a test that passes now, and `cargo rrtest replay NAME` replays the
//! latest attempt. Ignored where cargo-nextest is missing or older than
//! 0.9.98 (no wrapper scripts).

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::harness::copy_tree;
use crate::product::replay;

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "nextest::wrapper_keeps_failing_traces",
        wrapper_keeps_failing_traces,
    )
    .with_ignored_flag(!nextest_has_wrapper_scripts())]
}

/// Whether `cargo nextest` is installed and at least 0.9.98.
fn nextest_has_wrapper_scripts() -> bool {
    let Ok(out) = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.split_whitespace().nth(1).map(|v| {
        v.split('.')
            .filter_map(|p| p.parse::<u32>().ok())
            .collect::<Vec<_>>()
    }) else {
        return false;
    };
    out.status.success() && version.len() == 3 && (version[0], version[1], version[2]) >= (0, 9, 98)
}

/// The configuration of docs/nextest.md, with this build's cargo-rrtest.
fn nextest_toml() -> String {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/nextest.md"))
        .expect("docs/nextest.md");
    // The first ```toml block of the document is the configuration.
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block in docs/nextest.md");
    block.replace(
        "command = 'cargo-rrtest wrap'",
        &format!("command = '{} wrap'", common::cargo_rrtest().display()),
    )
}

fn wrapper_keeps_failing_traces() -> Result<(), Failed> {
    let ws = common::scratch_dir("nextest-ws");
    let _ = std::fs::remove_dir_all(&ws);
    copy_tree(&common::fixtures_dir().join("demo"), &ws)?;
    std::fs::create_dir_all(ws.join(".config"))?;
    let config = nextest_toml();
    check!(
        config.contains(&format!("{} wrap", common::cargo_rrtest().display())),
        "the documented configuration does not run `cargo-rrtest wrap`:\n{config}"
    );
    std::fs::write(ws.join(".config/nextest.toml"), &config)?;
    let target = ws.join("target");
    // An earlier run's trace of a test that passes now: removed.
    let stale = target.join("rrtest/traces/demo-core/tests__adds_small_numbers/attempt-1");
    std::fs::create_dir_all(&stale)?;
    std::fs::write(stale.join("header.json"), "{}")?;
    let out = Command::new("cargo")
        .args(["nextest", "run", "--profile", "rrtest", "--no-fail-fast"])
        .args(["--retries", "1", "--target-dir"])
        .arg(&target)
        .args([
            "-E",
            "test(=tests::checksum_matches) | test(=tests::adds_small_numbers)",
        ])
        .current_dir(&ws)
        .env_remove("CARGO_TARGET_DIR")
        .env("RUST_BACKTRACE", "0")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check!(
        out.status.code() == Some(100),
        "cargo nextest run: {:?}\n{text}",
        out.status
    );
    check!(
        text.contains("1 passed") && text.contains("1 failed"),
        "nextest's summary:\n{text}"
    );
    let traces = target.join("rrtest/traces");
    for attempt in [1, 2] {
        let dir = traces.join(format!(
            "demo-core/tests__checksum_matches/attempt-{attempt}"
        ));
        check!(
            dir.join("header.json").is_file(),
            "no kept trace {}:\n{text}",
            dir.display()
        );
        let archive = target.join(format!(
            "rrtest/archives/demo-core/tests__checksum_matches/attempt-{attempt}.tar.zst"
        ));
        check!(archive.is_file(), "no archive {}", archive.display());
    }
    check!(
        !traces.join("demo-core/tests__adds_small_numbers").exists(),
        "a passing test's trace (or an earlier run's) is there"
    );
    check!(
        text.contains("replay it with `cargo rrtest replay demo-core::tests::checksum_matches`"),
        "the wrapper does not say how to replay:\n{text}"
    );
    // Replayed by the name as typed: the latest attempt.
    let (code, text) = replay(&ws, &["--target-dir", path(&target), "checksum_matches"]);
    check!(
        code == 101 && text.contains("left: 295") && text.contains("attempt-2"),
        "replay checksum_matches: exit {code}:\n{text}"
    );
    // And from the archives folder, as a CI artifact.
    let archives = target.join("rrtest/archives");
    let (code, text) = replay(&ws, &[path(&archives), "checksum"]);
    check!(
        code == 101 && text.contains("left: 295"),
        "replay from the archives: exit {code}:\n{text}"
    );
    let (code, text) = replay(&ws, &["--target-dir", path(&target), "adds_small_numbers"]);
    check!(
        code == 2 && text.contains("no kept trace"),
        "a passing test: exit {code}:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&ws);
    Ok(())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
