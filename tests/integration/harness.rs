//! The harness end to end: the built `cargo-rrtest` runs the demo workspace
//! (fixtures/demo) with `--no-record`, and the trials check every outcome, the
//! attempts under `--retries`, the JSON report against docs/report.schema.json,
//! JUnit well-formedness, GitHub Actions output, partitions, merge-reports,
//! filters, exit codes, and a snapshot of the human output.
//!
//! Runs share one target directory under `target/rrtest-it/demo`; the demo is
//! built once per test run (`demo_built`), and the runs several trials inspect
//! are done once (`OnceLock`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common;

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("harness::outcomes_and_attempts", outcomes_and_attempts),
        Trial::test("harness::report_matches_schema", report_matches_schema),
        Trial::test("harness::junit_is_well_formed", junit_is_well_formed),
        Trial::test("harness::github_output", github_output),
        Trial::test("harness::github_annotation_caps", github_annotation_caps),
        Trial::test(
            "harness::hash_partitions_cover_once",
            hash_partitions_cover_once,
        ),
        Trial::test(
            "harness::count_partitions_and_merge",
            count_partitions_and_merge,
        ),
        Trial::test("harness::filters", filters),
        Trial::test("harness::exit_codes", exit_codes),
        Trial::test("harness::build_failure_exits_101", build_failure_exits_101),
        Trial::test("harness::human_output_snapshot", human_output_snapshot),
        Trial::test(
            "harness::interrupt_kills_running_tests",
            interrupt_kills_running_tests,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Running cargo-rrtest

/// What one run of cargo-rrtest produced.
pub(crate) struct RunOutput {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) report: Option<Value>,
}

pub(crate) fn demo_manifest() -> PathBuf {
    common::fixtures_dir().join("demo").join("Cargo.toml")
}

fn demo_target_dir() -> PathBuf {
    common::scratch_dir("demo")
}

/// Builds the demo's tests once, so the runs below only find them fresh.
pub(crate) fn demo_built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = demo_target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["test", "--no-run", "--quiet", "--manifest-path"])
            .arg(demo_manifest())
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo test --no-run on the demo");
        assert!(status.success(), "building the demo's tests failed");
        target
    })
}

/// Makes `target` a copy of the built demo's target directory (fresh for
/// cargo) without its `rrtest/` folder. A recorded run replaces the kept
/// traces of the tests it runs: trials that record the demo's tests do it
/// in such a copy, so the shared directory keeps what the product trials
/// check (`product::traces_kept_exactly` lost a trace so).
pub(crate) fn copy_demo_target(target: &Path) -> Result<(), Failed> {
    let _ = std::fs::remove_dir_all(target);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(demo_built())
        .arg(target)
        .status()?;
    if !copied.success() {
        return Err("copying the demo's target directory failed".into());
    }
    let _ = std::fs::remove_dir_all(target.join("rrtest"));
    Ok(())
}

/// Runs `cargo-rrtest ARGS` with a clean, deterministic environment (no
/// GitHub variables unless `env` sets them; no backtraces; no colours).
pub(crate) fn rrtest(args: &[&str], env: &[(&str, &str)], report: &Path) -> RunOutput {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.args(args)
        .arg("--report")
        .arg(report)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_WORKSPACE")
        .env("RUST_BACKTRACE", "0")
        .env("CARGO_TERM_COLOR", "never")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let _ = std::fs::remove_file(report);
    let out = cmd.output().expect("run cargo-rrtest");
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: std::fs::read_to_string(report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()),
    }
}

/// Runs cargo-rrtest on the demo with `--no-record` and the demo target dir.
fn demo_run(name: &str, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    let target = demo_built();
    let manifest = demo_manifest();
    let mut all: Vec<&str> = vec!["--no-record", "--manifest-path"];
    all.push(manifest.to_str().expect("utf-8 path"));
    all.push("--target-dir");
    all.push(target.to_str().expect("utf-8 path"));
    all.extend_from_slice(args);
    rrtest(&all, env, &out_dir().join(format!("{name}.json")))
}

/// Where the runs' reports and other files go.
pub(crate) fn out_dir() -> PathBuf {
    common::scratch_dir("harness-out")
}

/// The full run: every test, `--timeout 1 --retries 1`, JUnit on.
fn full_run() -> &'static RunOutput {
    static RUN: OnceLock<RunOutput> = OnceLock::new();
    RUN.get_or_init(|| {
        let junit = out_dir().join("full.xml");
        let _ = std::fs::remove_file(&junit);
        demo_run(
            "full",
            &[
                "--timeout",
                "1",
                "--retries",
                "1",
                "--junit",
                junit.to_str().unwrap(),
            ],
            &[],
        )
    })
}

pub(crate) fn report_of(run: &RunOutput) -> Result<&Value, Failed> {
    run.report.as_ref().ok_or_else(|| {
        Failed::from(format!(
            "no report (exit {}):\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        ))
    })
}

/// `binary_id name` -> test object.
pub(crate) fn tests_by_key(report: &Value) -> BTreeMap<String, &Value> {
    report["tests"]
        .as_array()
        .map(|tests| {
            tests
                .iter()
                .map(|t| {
                    (
                        format!(
                            "{} {}",
                            t["binary_id"].as_str().unwrap_or(""),
                            t["name"].as_str().unwrap_or("")
                        ),
                        t,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every test in the demo and its outcome in the full run.
pub(crate) const DEMO_OUTCOMES: &[(&str, &str)] = &[
    ("demo-app tests::parses_list", "passed"),
    ("demo-app tests::rejects_garbage", "passed"),
    ("demo-app tests::sums_in_worker", "passed"),
    ("demo-app tests::worker_panics_on_empty_input", "failed"),
    ("demo-app::cli binary_sums_arguments", "passed"),
    ("demo-app::cli runs_with_cargo_test_environment", "passed"),
    ("demo-app::cli stdin_is_empty", "passed"),
    ("demo-core tests::adds_small_numbers", "passed"),
    ("demo-core tests::checksum_matches", "failed"),
    ("demo-core tests::divides_evenly", "passed"),
    ("demo-core tests::exhaustive_addition", "ignored"),
    ("demo-core tests::rejects_zero_divisor", "passed"),
    ("demo-core::api add_is_commutative", "passed"),
    ("demo-core::api flaky_first_attempt", "flaky"),
    ("demo-core::api hangs_forever", "timed_out"),
    ("demo-core::api ignored_integration", "ignored"),
];

// ---------------------------------------------------------------------------
// Trials

fn outcomes_and_attempts() -> Result<(), Failed> {
    let run = full_run();
    check!(
        run.code == 100,
        "exit code {} (want 100)\n{}",
        run.code,
        run.stderr
    );
    let report = report_of(run)?;
    let tests = tests_by_key(report);
    let want: BTreeMap<String, &str> = DEMO_OUTCOMES
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let got: BTreeMap<String, &str> = tests
        .iter()
        .map(|(k, t)| (k.clone(), t["outcome"].as_str().unwrap_or("?")))
        .collect();
    check!(
        got == want,
        "outcomes differ:\n got {got:#?}\nwant {want:#?}"
    );

    let attempts = |key: &str| -> Vec<&Value> {
        tests[key]["attempts"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let outcomes = |key: &str| -> Vec<String> {
        attempts(key)
            .iter()
            .map(|a| a["outcome"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    // --retries 1: a failing test runs twice; a passing one once; flaky = fail, pass.
    check!(
        outcomes("demo-core tests::checksum_matches") == ["failed", "failed"],
        "checksum attempts"
    );
    check!(
        outcomes("demo-core tests::adds_small_numbers") == ["passed"],
        "passing attempts"
    );
    check!(
        outcomes("demo-core::api flaky_first_attempt") == ["failed", "passed"],
        "flaky attempts"
    );
    check!(
        outcomes("demo-core::api hangs_forever") == ["timed_out", "timed_out"],
        "timeout attempts"
    );
    check!(
        attempts("demo-core tests::exhaustive_addition").is_empty(),
        "ignored test ran"
    );

    for (i, a) in attempts("demo-core::api flaky_first_attempt")
        .iter()
        .enumerate()
    {
        check!(a["attempt"] == (i + 1) as u64, "attempt numbers: {a}");
    }
    for a in attempts("demo-core::api hangs_forever") {
        check!(
            a["signal"] == "SIGKILL" && a["exit_code"].is_null(),
            "timeout status: {a}"
        );
        let ms = a["duration_ms"].as_u64().unwrap_or(0);
        check!((1000..5000).contains(&ms), "timeout duration {ms} ms");
        check!(
            a["stdout"].as_str().unwrap_or("").contains("about to hang"),
            "timeout stdout: {a}"
        );
    }
    let failed = &attempts("demo-core tests::checksum_matches")[0];
    check!(
        failed["exit_code"] == 101 && failed["signal"].is_null(),
        "failed status: {failed}"
    );
    let panic = &failed["panic"];
    check!(
        panic["file"] == "demo-core/src/lib.rs"
            && panic["line"].as_u64().is_some()
            && panic["message"]
                .as_str()
                .unwrap_or("")
                .contains("assertion `left == right` failed"),
        "assert_eq panic: {panic}"
    );
    // The spawned thread's panic is the one reported, not the join's.
    let worker = &attempts("demo-app tests::worker_panics_on_empty_input")[0]["panic"];
    check!(
        worker["message"] == "worker got an empty list" && worker["thread"] == "<unnamed>",
        "thread panic: {worker}"
    );
    check!(
        report["summary"]["flaky"] == 1 && report["summary"]["total"] == 16,
        "summary {}",
        report["summary"]
    );
    check!(
        report["tests"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["trace"].is_null())),
        "trace not null"
    );
    check!(report["recording"] == false, "recording should be off");
    Ok(())
}

fn report_matches_schema() -> Result<(), Failed> {
    let schema_path = common::repo_root().join("docs").join("report.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path)?)?;
    let report = report_of(full_run())?;
    let mut errors = Vec::new();
    validate(&schema, &schema, report, "$", &mut errors);
    check!(
        errors.is_empty(),
        "report does not match docs/report.schema.json:\n{}",
        errors.join("\n")
    );
    // The validator itself must reject drift: an unknown field and a bad enum.
    let mut drifted = report.clone();
    drifted["tests"][0]["surprise"] = Value::Bool(true);
    drifted["tests"][1]["outcome"] = Value::from("exploded");
    let mut errors = Vec::new();
    validate(&schema, &schema, &drifted, "$", &mut errors);
    check!(errors.len() == 2, "validator missed drift: {errors:?}");
    Ok(())
}

fn junit_is_well_formed() -> Result<(), Failed> {
    let run = full_run();
    let xml = std::fs::read_to_string(out_dir().join("full.xml"))?;
    let cases = parse_junit(&xml).map_err(|e| format!("JUnit not well-formed: {e}"))?;
    let want: BTreeSet<String> = DEMO_OUTCOMES.iter().map(|(k, _)| k.to_string()).collect();
    let got: BTreeSet<String> = cases.keys().cloned().collect();
    check!(
        got == want,
        "JUnit test cases:\n got {got:?}\nwant {want:?}"
    );
    let children = |key: &str| cases[key].join(",");
    check!(
        children("demo-core tests::checksum_matches") == "rerunFailure,failure",
        "{}",
        children("demo-core tests::checksum_matches")
    );
    check!(
        children("demo-core::api flaky_first_attempt") == "flakyFailure",
        "{}",
        children("demo-core::api flaky_first_attempt")
    );
    check!(
        children("demo-core tests::exhaustive_addition") == "skipped",
        "{}",
        children("demo-core tests::exhaustive_addition")
    );
    check!(
        children("demo-core tests::adds_small_numbers").is_empty(),
        "passing test has failures"
    );
    check!(
        children("demo-core::api hangs_forever") == "rerunFailure,failure",
        "timeout children"
    );
    check!(
        xml.contains("type=\"timeout\""),
        "timeout failure type missing"
    );
    check!(run.code == 100, "exit code {}", run.code);
    Ok(())
}

fn github_output() -> Result<(), Failed> {
    let summary = out_dir().join("github-summary.md");
    let _ = std::fs::remove_file(&summary);
    let workspace = common::repo_root().to_str().unwrap().to_string();
    let run = demo_run(
        "github",
        &["--skip", "hangs", "--retries", "1"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ("GITHUB_WORKSPACE", &workspace),
        ],
    );
    check!(run.code == 100, "exit code {}\n{}", run.code, run.stderr);
    // Our annotations only (the fenced test output contains an `::error` line too).
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error ") && !l.contains("evil.rs"))
        .collect();
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning "))
        .collect();
    check!(
        errors.len() == 2,
        "want 2 error annotations, got {errors:#?}"
    );
    check!(
        errors
            .iter()
            .any(|l| l.contains("file=fixtures/demo/demo-core/src/lib.rs,line=")),
        "annotation paths not relative to GITHUB_WORKSPACE: {errors:#?}"
    );
    check!(
        warnings.len() == 1 && warnings[0].contains("flaky_first_attempt"),
        "flaky warning: {warnings:#?}"
    );
    // Test output is fenced: the line the failing test prints sits between a
    // `::stop-commands::TOKEN` and the matching `::TOKEN::`.
    let mut token: Option<String> = None;
    let mut injected_seen = 0;
    let mut groups = 0;
    for line in run.stdout.lines() {
        if let Some(t) = line.strip_prefix("::stop-commands::") {
            check!(token.is_none(), "nested fence");
            check!(t.len() >= 16, "token too short: {t}");
            token = Some(t.to_string());
        } else if token.as_deref().is_some_and(|t| line == format!("::{t}::")) {
            token = None;
        } else if line.starts_with("::error file=evil.rs") {
            check!(token.is_some(), "test output not fenced: {line}");
            injected_seen += 1;
        } else if line.starts_with("::group::") {
            groups += 1;
        }
    }
    check!(token.is_none(), "fence not closed");
    check!(
        injected_seen >= 1,
        "the injection line is missing from the output"
    );
    check!(
        groups == 2,
        "want one ::group:: per failing test, got {groups}"
    );
    let text =
        std::fs::read_to_string(&summary).map_err(|e| format!("step summary not written: {e}"))?;
    check!(
        text.contains("| outcome | test |")
            && text.contains("`tests::checksum_matches`")
            && text.contains("| flaky |"),
        "step summary:\n{text}"
    );
    Ok(())
}

fn github_annotation_caps() -> Result<(), Failed> {
    // A scratch crate with 12 failing and 12 flaky tests.
    let dir = common::scratch_dir("many");
    let mut lib = String::new();
    for i in 0..12 {
        lib.push_str(&format!(
            "#[test]\nfn fails_{i:02}() {{ assert_eq!(1 + 1, 3); }}\n"
        ));
        lib.push_str(&format!(
            "#[test]\nfn flaky_{i:02}() {{ assert_ne!(std::env::var(\"RRTEST_ATTEMPT\").as_deref(), Ok(\"1\")); }}\n"
        ));
    }
    write_crate(&dir, "many", &lib)?;
    let summary = dir.join("summary.md");
    let _ = std::fs::remove_file(&summary);
    let manifest = dir.join("Cargo.toml");
    let run = rrtest(
        &[
            "--no-record",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--retries",
            "1",
        ],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
        &dir.join("report.json"),
    );
    check!(run.code == 100, "exit code {}\n{}", run.code, run.stderr);
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning "))
        .collect();
    check!(
        errors.len() == 10 && warnings.len() == 10,
        "caps: {} errors, {} warnings",
        errors.len(),
        warnings.len()
    );
    check!(
        errors[9].contains("3 more failing tests") && errors[9].contains("fails_11"),
        "summary error: {}",
        errors[9]
    );
    check!(
        warnings[9].contains("3 more flaky tests"),
        "summary warning: {}",
        warnings[9]
    );
    check!(
        std::fs::metadata(&summary).is_ok_and(|m| m.len() > 0),
        "no step summary"
    );
    Ok(())
}

fn hash_partitions_cover_once() -> Result<(), Failed> {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for shard in ["hash:1/2", "hash:2/2"] {
        let name = shard.replace([':', '/'], "-");
        let run = demo_run(
            &name,
            &["--skip", "hangs", "--retries", "1", "--partition", shard],
            &[],
        );
        let report = report_of(&run)?;
        check!(
            report["partition"] == shard,
            "partition field {}",
            report["partition"]
        );
        let tests = tests_by_key(report);
        check!(!tests.is_empty(), "shard {shard} is empty");
        for key in tests.keys() {
            *seen.entry(key.clone()).or_default() += 1;
        }
    }
    let want: BTreeMap<String, u32> = DEMO_OUTCOMES
        .iter()
        .filter(|(k, _)| !k.contains("hangs"))
        .map(|(k, _)| (k.to_string(), 1))
        .collect();
    check!(
        seen == want,
        "hash shards do not cover every test exactly once:\n{seen:#?}"
    );
    // Merging the two shards gives the whole run back.
    let merged = out_dir().join("merged-hash.json");
    let out = Command::new(common::cargo_rrtest())
        .arg("merge-reports")
        .arg(out_dir().join("hash-1-2.json"))
        .arg(out_dir().join("hash-2-2.json"))
        .arg("-o")
        .arg(&merged)
        .output()?;
    check!(
        out.status.code() == Some(0),
        "merge-reports: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&merged)?)?;
    check!(
        merged["summary"]["total"] == 15 && merged["summary"]["flaky"] == 1,
        "merged summary {}",
        merged["summary"]
    );
    check!(merged["partition"].is_null(), "merged partition");
    // Overlapping shards are refused.
    let shard = out_dir().join("hash-1-2.json");
    let out = Command::new(common::cargo_rrtest())
        .arg("merge-reports")
        .arg(&shard)
        .arg(&shard)
        .arg("-o")
        .arg(out_dir().join("merged-dup.json"))
        .output()?;
    check!(
        out.status.code() == Some(2),
        "duplicate merge exit {:?}",
        out.status.code()
    );
    check!(
        String::from_utf8_lossy(&out.stderr).contains("appears in both"),
        "duplicate message"
    );
    Ok(())
}

fn count_partitions_and_merge() -> Result<(), Failed> {
    let mut paths = Vec::new();
    let mut sizes = Vec::new();
    for m in 1..=3 {
        let shard = format!("count:{m}/3");
        let name = format!("count-{m}-3");
        let run = demo_run(&name, &["--skip", "hangs", "--partition", &shard], &[]);
        sizes.push(tests_by_key(report_of(&run)?).len());
        paths.push(out_dir().join(format!("{name}.json")));
    }
    // 15 tests dealt round-robin over 3 shards.
    check!(sizes == [5, 5, 5], "count shard sizes {sizes:?}");
    let merged = out_dir().join("merged-count.json");
    let out = Command::new(common::cargo_rrtest())
        .arg("merge-reports")
        .args(&paths)
        .arg("-o")
        .arg(&merged)
        .output()?;
    check!(
        out.status.success(),
        "merge-reports: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&merged)?)?;
    let keys: BTreeSet<String> = tests_by_key(&merged).into_keys().collect();
    let want: BTreeSet<String> = DEMO_OUTCOMES
        .iter()
        .filter(|(k, _)| !k.contains("hangs"))
        .map(|(k, _)| k.to_string())
        .collect();
    check!(keys == want, "merged count shards: {keys:?}");
    Ok(())
}

fn filters() -> Result<(), Failed> {
    let keys = |run: &RunOutput| -> Result<BTreeMap<String, String>, Failed> {
        Ok(tests_by_key(report_of(run)?)
            .into_iter()
            .map(|(k, t)| (k, t["outcome"].as_str().unwrap_or("?").to_string()))
            .collect())
    };
    let set = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let run = demo_run("exact", &["--exact", "tests::divides_evenly"], &[]);
    check!(run.code == 0, "exact exit {}", run.code);
    check!(
        keys(&run)? == set(&[("demo-core tests::divides_evenly", "passed")]),
        "exact: {:?}",
        keys(&run)?
    );

    // Substring filter `divid` matches divides_evenly and rejects_zero_divisor.
    let run = demo_run("substring", &["divi"], &[]);
    check!(
        keys(&run)?
            == set(&[
                ("demo-core tests::divides_evenly", "passed"),
                ("demo-core tests::rejects_zero_divisor", "passed")
            ]),
        "substring: {:?}",
        keys(&run)?
    );

    let run = demo_run(
        "skip",
        &["tests::", "--skip", "worker", "--skip", "checksum"],
        &[],
    );
    check!(run.code == 0, "skip exit {}: {:?}", run.code, keys(&run)?);
    let got = keys(&run)?;
    check!(
        got.len() == 6
            && got
                .keys()
                .all(|k| k.contains("tests::") && !k.contains("worker")),
        "skip: {got:?}"
    );

    let run = demo_run("ignored", &["--ignored"], &[]);
    check!(run.code == 0, "ignored exit {}", run.code);
    check!(
        keys(&run)?
            == set(&[
                ("demo-core tests::exhaustive_addition", "passed"),
                ("demo-core::api ignored_integration", "passed")
            ]),
        "--ignored: {:?}",
        keys(&run)?
    );

    let run = demo_run(
        "include-ignored",
        &["--include-ignored", "--skip", "hangs", "--retries", "1"],
        &[],
    );
    let got = keys(&run)?;
    check!(
        got.len() == 15
            && got["demo-core tests::exhaustive_addition"] == "passed"
            && !got.values().any(|v| v == "ignored"),
        "--include-ignored: {got:?}"
    );
    Ok(())
}

fn exit_codes() -> Result<(), Failed> {
    let run = demo_run(
        "exit-pass",
        &[
            "--skip",
            "hangs",
            "--skip",
            "worker",
            "--skip",
            "checksum",
            "--retries",
            "1",
        ],
        &[],
    );
    check!(
        run.code == 0,
        "flaky-but-passing run exit {} (want 0)",
        run.code
    );
    let run = demo_run(
        "exit-flaky-fail",
        &["flaky", "--retries", "1", "--flaky-result", "fail"],
        &[],
    );
    check!(
        run.code == 100,
        "--flaky-result fail exit {} (want 100)",
        run.code
    );
    let run = demo_run("exit-fail", &["checksum"], &[]);
    check!(run.code == 100, "failing run exit {} (want 100)", run.code);
    let run = demo_run(
        "exit-none",
        &["no_such_test_anywhere", "--no-tests", "fail"],
        &[],
    );
    check!(run.code == 4, "no tests exit {} (want 4)", run.code);
    let run = demo_run("exit-none-warn", &["no_such_test_anywhere"], &[]);
    check!(run.code == 0, "no tests (warn) exit {} (want 0)", run.code);
    let run = demo_run("exit-usage", &["--partition", "hash:3/2"], &[]);
    check!(run.code == 2, "bad partition exit {} (want 2)", run.code);
    let run = demo_run("exit-usage-timeout", &["--timeout", "-1"], &[]);
    check!(run.code == 2, "bad timeout exit {} (want 2)", run.code);
    Ok(())
}

fn build_failure_exits_101() -> Result<(), Failed> {
    // A scratch copy of the demo with a type error in demo-core.
    let dir = common::scratch_dir("broken-demo");
    copy_tree(&common::fixtures_dir().join("demo"), &dir)?;
    let lib = dir.join("demo-core/src/lib.rs");
    let mut text = std::fs::read_to_string(&lib)?;
    text.push_str("\npub fn broken() -> u32 { \"not a number\" }\n");
    std::fs::write(&lib, text)?;
    let manifest = dir.join("Cargo.toml");
    let target = common::scratch_dir("broken-demo-target");
    let run = rrtest(
        &[
            "--no-record",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--target-dir",
            target.to_str().unwrap(),
        ],
        &[],
        &dir.join("report.json"),
    );
    check!(
        run.code == 101,
        "broken build exit {} (want 101)\n{}",
        run.code,
        run.stderr
    );
    check!(
        run.stderr.contains("error[E0308]") && run.stderr.contains("mismatched types"),
        "rendered compiler error missing from stderr:\n{}",
        run.stderr
    );
    check!(
        run.report.is_none(),
        "a report was written for a failed build"
    );
    Ok(())
}

fn human_output_snapshot() -> Result<(), Failed> {
    let run = demo_run(
        "snapshot",
        &[
            "-j",
            "1",
            "--timeout",
            "1",
            "--retries",
            "1",
            "--color",
            "never",
        ],
        &[],
    );
    check!(run.code == 100, "exit code {}", run.code);
    let got = redact(&run.stdout);
    let path = common::repo_root().join("tests/integration/snapshots/harness_human_output.txt");
    if std::env::var_os("RRTEST_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, &got)?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (run with RRTEST_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    })?;
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        return Err(format!(
            "human output differs from {} at line {} (RRTEST_UPDATE_SNAPSHOTS=1 regenerates it):\n got: {:?}\nwant: {:?}\n--- full output ---\n{got}",
            path.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        )
        .into());
    }
    Ok(())
}

fn interrupt_kills_running_tests() -> Result<(), Failed> {
    let target = demo_built();
    let manifest = demo_manifest();
    let mut child = Command::new(common::cargo_rrtest())
        .args(["--no-record", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target)
        .arg("--report")
        .arg(out_dir().join("interrupt.json"))
        .args(["--exact", "hangs_forever"])
        .env_remove("GITHUB_ACTIONS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let rrtest_pid = child.id();
    // Wait for the hanging test to start (a child of cargo-rrtest).
    let started = std::time::Instant::now();
    let test_pid = loop {
        if let Some(pid) = child_running(rrtest_pid, "hangs_forever") {
            break pid;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            return Err("the hanging test never started".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let status = Command::new("kill")
        .args(["-INT", &rrtest_pid.to_string()])
        .status()?;
    check!(status.success(), "kill -INT failed");
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            return Err("cargo-rrtest did not stop on SIGINT".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output()?;
    check!(
        code == Some(130),
        "exit {code:?} (want 130)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test process is gone, not orphaned (allow init a moment to reap).
    let gone = (0..100).any(|_| {
        let alive = std::fs::read(format!("/proc/{test_pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("hangs_forever"));
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !alive
    });
    check!(gone, "test process {test_pid} survived the interrupt");
    Ok(())
}

/// The pid of a child of `parent` whose command line contains `needle`.
fn child_running(parent: u32, needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces and parens.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            return Some(pid);
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Helpers: redaction, scratch crates, JUnit checker, JSON Schema subset

/// Replaces what varies between runs: durations (`[   0.123s]`, `finished in
/// 0.01s`), thread ids in panic lines, and the report path.
fn redact(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = redact_bracketed_durations(line);
        if let Some(i) = line.find("finished in ") {
            line = format!("{}finished in [TIME]", &line[..i]);
        }
        if line.starts_with("thread '") {
            line = redact_thread_id(&line);
        }
        if line.trim_start().starts_with("Report ") {
            line = "      Report [PATH]".to_string();
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn redact_bracketed_durations(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('[') {
        let Some(len) = rest[start..].find("s]") else {
            break;
        };
        let inner = rest[start + 1..start + len].trim();
        let is_duration =
            !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == '.');
        out.push_str(&rest[..start]);
        if is_duration {
            out.push_str("[DURATION]");
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn redact_thread_id(line: &str) -> String {
    // thread 'NAME' (1234) panicked at ...
    if let Some(open) = line.find("' (") {
        if let Some(close) = line[open + 3..].find(')') {
            let digits = &line[open + 3..open + 3 + close];
            if digits.chars().all(|c| c.is_ascii_digit()) {
                return format!("{}' (TID){}", &line[..open], &line[open + 4 + close..]);
            }
        }
    }
    line.to_string()
}

/// Writes a one-package workspace with `lib` as its library.
pub(crate) fn write_crate(dir: &Path, name: &str, lib: &str) -> Result<(), Failed> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )?;
    write_if_changed(&dir.join("src/lib.rs"), lib)?;
    Ok(())
}

/// Leaves the file (and its mtime) alone when unchanged, so rebuilds stay fresh.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text)
}

/// Copies a fixture's sources (not its target directory).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            write_if_changed(&dest, &std::fs::read_to_string(entry.path())?)?;
        }
    }
    Ok(())
}

/// A small, strict checker for the XML we write: well-formed nesting, quoted
/// attributes, only the five named entities and numeric references, no raw
/// control characters. Returns `binary_id name` -> the element names inside
/// each `<testcase>` (other than system-out/err), in order.
pub(crate) fn parse_junit(xml: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut cases = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .ok_or("missing XML declaration")?;
    let mut rest = body;
    let mut roots = 0;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            check_text(rest)?;
            if !rest.trim().is_empty() {
                return Err("text after the root element".into());
            }
            break;
        };
        check_text(&rest[..lt])?;
        if stack.is_empty() && !rest[..lt].trim().is_empty() {
            return Err("text outside the root element".into());
        }
        let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name {
                return Err(format!("</{name}> closes <{open}>"));
            }
            if name == "testcase" {
                current = None;
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad element name {name:?}"));
        }
        let attrs = parse_attrs(attrs)?;
        if stack.is_empty() {
            roots += 1;
            if roots > 1 || name != "testsuites" {
                return Err(format!("unexpected root <{name}>"));
            }
        }
        if name == "testcase" {
            let key = format!(
                "{} {}",
                attrs.get("classname").ok_or("testcase without classname")?,
                attrs.get("name").ok_or("testcase without name")?
            );
            if cases.insert(key.clone(), Vec::new()).is_some() {
                return Err(format!("duplicate testcase {key}"));
            }
            current = Some(key);
        } else if let Some(key) = &current {
            if stack.last().is_some_and(|p| p == "testcase")
                && name != "system-out"
                && name != "system-err"
            {
                cases.get_mut(key).expect("inserted").push(name.to_string());
            }
        }
        if !self_closing {
            stack.push(name.to_string());
        } else if name == "testcase" {
            current = None;
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements {stack:?}"));
    }
    Ok(cases)
}

fn parse_attrs(mut s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut attrs = BTreeMap::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(attrs);
        }
        let eq = s.find('=').ok_or("attribute without value")?;
        let name = s[..eq].trim();
        let after = s[eq + 1..].strip_prefix('"').ok_or("unquoted attribute")?;
        let end = after.find('"').ok_or("unterminated attribute")?;
        let value = &after[..end];
        if value.contains('<') {
            return Err(format!("raw < in attribute {name}"));
        }
        check_text(value)?;
        if attrs.insert(name.to_string(), unescape(value)).is_some() {
            return Err(format!("duplicate attribute {name}"));
        }
        s = &after[end + 1..];
    }
}

fn check_text(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|&c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("raw control character U+{:04X}", c as u32));
    }
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        let semi = rest[amp..].find(';').ok_or("unterminated entity")? + amp;
        let entity = &rest[amp + 1..semi];
        let ok = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16).is_ok())
                .or_else(|| entity.strip_prefix('#').map(|d| d.parse::<u32>().is_ok()))
                .unwrap_or(false);
        if !ok {
            return Err(format!("bad entity &{entity};"));
        }
        rest = &rest[semi + 1..];
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Validates `value` against the JSON Schema subset the report schema uses:
/// `type` (one or a list), `enum`, `minimum`, `properties`, `required`,
/// `additionalProperties: false`, `items`, `oneOf`, and `$ref` to `#/$defs/...`.
pub(crate) fn validate(
    root: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        match r
            .strip_prefix("#/$defs/")
            .and_then(|name| root["$defs"].get(name))
        {
            Some(target) => validate(root, target, value, path, errors),
            None => errors.push(format!("{path}: unresolvable $ref {r}")),
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        if !ok {
            errors.push(format!("{path}: type {actual}, want {allowed:?}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            errors.push(format!("{path}: {value} not in {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            errors.push(format!("{path}: {n} < minimum {min}"));
        }
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                validate(root, o, value, path, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{path}: matches {matching} of oneOf"));
        }
    }
    if let Value::Object(map) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = req.as_str() {
                if !map.contains_key(k) {
                    errors.push(format!("{path}: missing required field {k}"));
                }
            }
        }
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(root, s, v, &format!("{path}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: field {k} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(root, s, item, &format!("{path}[{i}]"), errors);
        }
    }
}
