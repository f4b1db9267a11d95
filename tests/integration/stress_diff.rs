//! `cargo rrtest stress` and `cargo rrtest diff` on fixtures/flaky, whose
//! `one_in_three` fails about one run in three (its roll comes from
//! getrandom) and says `roll: lose` or `roll: win` before it decides.
//!
//! Each stress run builds the fixture in a target directory of its own
//! (runs in one target directory take turns on its lock); the diff trials
//! read the traces the `--keep-going` run kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common;
use crate::harness::{report_of, rrtest, validate, RunOutput};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test(
            "stress_diff::stress_stops_at_the_first_failure",
            stress_stops_at_the_first_failure,
        ),
        Trial::test(
            "stress_diff::keep_going_counts_failures",
            keep_going_counts_failures,
        ),
        Trial::test(
            "stress_diff::duration_ends_the_runs",
            duration_ends_the_runs,
        ),
        Trial::test(
            "stress_diff::diff_names_the_differing_write",
            diff_names_the_differing_write,
        ),
        Trial::test(
            "stress_diff::diff_by_test_name_and_archive",
            diff_by_test_name_and_archive,
        ),
        Trial::test(
            "stress_diff::diff_of_a_trace_with_itself_is_identical",
            diff_of_a_trace_with_itself_is_identical,
        ),
        Trial::test("stress_diff::diff_bad_inputs", diff_bad_inputs),
        Trial::test(
            "stress_diff::diff_names_the_timed_out_wait_of_a_race",
            diff_names_the_timed_out_wait_of_a_race,
        ),
        Trial::test(
            "stress_diff::flaky_test_reports_its_first_difference",
            flaky_test_reports_its_first_difference,
        ),
    ]
}

fn manifest() -> PathBuf {
    common::fixtures_dir().join("flaky").join("Cargo.toml")
}

fn target(name: &str) -> PathBuf {
    common::scratch_dir(&format!("stress-diff-{name}"))
}

/// `cargo-rrtest VERB --manifest-path fixtures/flaky --target-dir T ARGS`.
fn on_fixture(verb: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    let t = target(name);
    let m = manifest();
    let mut all = vec![
        verb,
        "--manifest-path",
        m.to_str().expect("utf-8"),
        "--target-dir",
        t.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    rrtest(&all, env, &t.join("report.json"))
}

/// `--count 40 -j 1 one_in_three`: stops at the first failure.
fn first_failure_run() -> &'static RunOutput {
    static RUN: OnceLock<RunOutput> = OnceLock::new();
    RUN.get_or_init(|| {
        on_fixture(
            "stress",
            "first",
            &["--count", "40", "-j", "1", "one_in_three"],
            &[],
        )
    })
}

/// `--count 30 --keep-going --max-failing-traces 3 -j 2` on `one_in_three`
/// and `always_passes`.
fn keep_going_run() -> &'static RunOutput {
    static RUN: OnceLock<RunOutput> = OnceLock::new();
    RUN.get_or_init(|| {
        on_fixture(
            "stress",
            "keep-going",
            &[
                "--count",
                "30",
                "--keep-going",
                "--max-failing-traces",
                "3",
                "-j",
                "2",
                "one_in_three",
                "always_passes",
            ],
            &[],
        )
    })
}

fn test_named<'a>(report: &'a Value, name: &str) -> Result<&'a Value, Failed> {
    report["tests"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .ok_or_else(|| Failed::from(format!("{name} not in the report")))
}

fn attempts(t: &Value) -> Vec<&Value> {
    t["attempts"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The trace directories on disk under a test's traces directory.
fn trace_dirs(target: &Path, test: &str) -> Vec<PathBuf> {
    let dir = target
        .join("rrtest/traces/rrtest-fixture-flaky")
        .join(test.replace("::", "__"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Replays a trace quietly; its exit code.
fn replay_code(trace: &str) -> i32 {
    Command::new(common::cargo_rrtest())
        .args(["replay", "--quiet", trace])
        .output()
        .map(|o| o.status.code().unwrap_or(-1))
        .unwrap_or(-1)
}

fn stress_stops_at_the_first_failure() -> Result<(), Failed> {
    let run = first_failure_run();
    let report = report_of(run)?;
    check!(
        run.code == 100,
        "exit {} (want 100):\n{}",
        run.code,
        run.stderr
    );
    let t = test_named(report, "tests::one_in_three")?;
    let runs = t["runs"].as_u64().unwrap_or(0);
    check!(t["failures"] == 1, "failures {} (want 1)", t["failures"]);
    check!((1..=40).contains(&runs), "runs {runs}");
    let kept = attempts(t);
    let failing: Vec<&&Value> = kept.iter().filter(|a| a["outcome"] == "failed").collect();
    check!(failing.len() == 1, "failing attempts {kept:#?}");
    // The failure is the last run: nothing started after it (one worker).
    check!(
        failing[0]["attempt"] == runs,
        "failure at run {} but {runs} runs",
        failing[0]["attempt"]
    );
    check!(
        failing[0]["verified"] == true,
        "failing trace not verified: {}",
        failing[0]["verification_failure"]
    );
    let trace = failing[0]["trace"].as_str().unwrap_or_default();
    check!(
        replay_code(trace) == 101,
        "the failing trace does not replay to the failure"
    );
    check!(
        t["replay_command"]
            .as_str()
            .is_some_and(|c| c.starts_with("cargo rrtest replay ")),
        "replay command {}",
        t["replay_command"]
    );
    // One passing trace, exactly when a run passed before the failure.
    let passing: Vec<&&Value> = kept
        .iter()
        .filter(|a| a["outcome"] == "passed" && a["trace"].is_string())
        .collect();
    check!(
        passing.len() == usize::from(runs > 1),
        "passing traces {passing:#?} after {runs} runs"
    );
    let on_disk = trace_dirs(&target("first"), "tests::one_in_three");
    check!(
        on_disk.len() == 1 + usize::from(runs > 1),
        "trace dirs on disk: {on_disk:#?}"
    );
    check!(
        run.stdout.contains(&format!("1/{runs}")) && run.stdout.contains("cargo rrtest replay"),
        "stdout lacks failures/runs or the replay command:\n{}",
        run.stdout
    );
    Ok(())
}

fn keep_going_counts_failures() -> Result<(), Failed> {
    let run = keep_going_run();
    let report = report_of(run)?;
    check!(
        run.code == 100,
        "exit {} (want 100):\n{}",
        run.code,
        run.stderr
    );
    check!(
        report["stress"]["count"] == 30 && report["stress"]["keep_going"] == true,
        "stress settings {}",
        report["stress"]
    );
    let schema_path = common::repo_root().join("docs").join("report.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path)?)?;
    let mut errors = Vec::new();
    validate(&schema, &schema, report, "$", &mut errors);
    check!(errors.is_empty(), "schema: {}", errors.join("\n"));

    let t = test_named(report, "tests::one_in_three")?;
    check!(t["runs"] == 30, "runs {} (want 30)", t["runs"]);
    let failures = t["failures"].as_u64().unwrap_or(0);
    check!(
        (1..30).contains(&failures),
        "failures {failures} of 30 (a third expected)"
    );
    let kept = attempts(t);
    let failing = kept.iter().filter(|a| a["outcome"] == "failed").count() as u64;
    check!(
        failing == failures,
        "{failing} failing attempts listed, {failures} counted"
    );
    let with_trace = kept
        .iter()
        .filter(|a| a["outcome"] == "failed" && a["trace"].is_string())
        .count() as u64;
    check!(
        with_trace == failures.min(3),
        "{with_trace} failing traces kept (want min({failures}, 3))"
    );
    let passing = kept
        .iter()
        .filter(|a| a["outcome"] == "passed" && a["trace"].is_string())
        .count();
    check!(passing == 1, "{passing} passing traces kept (want 1)");
    let on_disk = trace_dirs(&target("keep-going"), "tests::one_in_three");
    check!(
        on_disk.len() as u64 == failures.min(3) + 1,
        "trace dirs on disk: {on_disk:#?}"
    );
    check!(
        kept.iter()
            .filter(|a| a["trace"].is_string())
            .all(|a| a["verified"] == true && a["archive"].is_string()),
        "a kept trace is not verified or packed: {kept:#?}"
    );
    // The first difference between a failing and the passing run.
    let d = &t["first_difference"];
    check!(
        d["thread"] == "main.1" && d["what"] == "output",
        "first difference {d}"
    );
    check!(
        d["failing"].as_str().is_some_and(|s| s.contains("lose"))
            && d["passing"].as_str().is_some_and(|s| s.contains("win")),
        "first difference {d}"
    );
    check!(
        d["diff_command"]
            .as_str()
            .is_some_and(|c| c.starts_with("cargo rrtest diff ")),
        "diff command {}",
        d["diff_command"]
    );
    let p = test_named(report, "tests::always_passes")?;
    check!(
        p["runs"] == 30 && p["failures"] == 0 && p["outcome"] == "passed",
        "always_passes: runs {} failures {} outcome {}",
        p["runs"],
        p["failures"],
        p["outcome"]
    );
    check!(
        trace_dirs(&target("keep-going"), "tests::always_passes").len() == 1,
        "always_passes keeps one passing trace"
    );
    check!(
        run.stdout.contains(&format!("{failures}/30")) && run.stdout.contains("0/30"),
        "stdout lacks failures/runs:\n{}",
        run.stdout
    );
    Ok(())
}

fn duration_ends_the_runs() -> Result<(), Failed> {
    let started = std::time::Instant::now();
    let run = on_fixture(
        "stress",
        "duration",
        &["--duration", "2s", "always_passes"],
        &[],
    );
    let report = report_of(&run)?;
    check!(run.code == 0, "exit {}:\n{}", run.code, run.stderr);
    check!(
        report["stress"]["duration_ms"] == 2000 && report["stress"]["count"].is_null(),
        "stress settings {}",
        report["stress"]
    );
    let t = test_named(report, "tests::always_passes")?;
    let runs = t["runs"].as_u64().unwrap_or(0);
    check!(runs >= 2, "only {runs} runs in 2 s");
    // The build, 2 s of runs, the last runs and one verification: well
    // under a minute unless the duration is ignored.
    check!(
        started.elapsed().as_secs() < 120,
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The kept failing and passing trace of `one_in_three` in the
/// `--keep-going` run.
fn pair() -> Result<(String, String), Failed> {
    let report = report_of(keep_going_run())?;
    let t = test_named(report, "tests::one_in_three")?;
    let kept = attempts(t);
    let find = |outcome: &str| {
        kept.iter()
            .find(|a| a["outcome"] == outcome && a["trace"].is_string())
            .and_then(|a| a["trace"].as_str())
            .map(str::to_string)
            .ok_or_else(|| Failed::from(format!("no {outcome} trace kept")))
    };
    Ok((find("failed")?, find("passed")?))
}

fn diff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::cargo_rrtest())
        .arg("diff")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cargo-rrtest diff");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn diff_names_the_differing_write() -> Result<(), Failed> {
    let (failing, passing) = pair()?;
    let (code, text, err) = diff(&[&failing, &passing]);
    check!(code == 0, "exit {code}: {err}");
    check!(
        text.contains("First difference: thread main.1 differs in output"),
        "{text}"
    );
    check!(
        text.contains("[stderr \"lose\"]") && text.contains("[stderr \"win\"]"),
        "{text}"
    );
    let (code, json, err) = diff(&["--json", &failing, &passing]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    let f = &v["first_difference"];
    check!(
        f["thread"] == "main.1" && f["what"] == "output",
        "first difference {f}"
    );
    check!(
        f["a"]["action"]["kind"] == "syscall"
            && f["a"]["action"]["nr"] == 1
            && f["a"]["action"]["output"]["text"] == "lose"
            && f["b"]["action"]["output"]["text"] == "win",
        "the differing events: {} / {}",
        f["a"],
        f["b"]
    );
    check!(
        v["identical"] == false && v["a"]["outcome"] == "exit 101" && v["b"]["outcome"] == "exit 0",
        "{v}"
    );
    // The thread's ids differ between the runs, and are aligned.
    let threads = v["threads"].as_array().cloned().unwrap_or_default();
    check!(
        threads
            .iter()
            .any(|t| t["thread"] == "main.1" && t["tid_a"] != t["tid_b"]),
        "threads {threads:?}"
    );
    check!(
        v["ignored"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["what"] == "random")),
        "the roll's random bytes are named as ignored: {}",
        v["ignored"]
    );
    Ok(())
}

fn diff_by_test_name_and_archive() -> Result<(), Failed> {
    keep_going_run();
    let t = target("keep-going");
    let report_path = t.join("report.json");
    let (code, json, err) = diff(&[
        "one_in_three",
        "--json",
        "--target-dir",
        t.to_str().unwrap_or_default(),
        "--report",
        report_path.to_str().unwrap_or_default(),
    ]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    check!(
        v["first_difference"]["thread"] == "main.1",
        "by name: {}",
        v["first_difference"]
    );
    // A packed archive against a directory.
    let report = report_of(keep_going_run())?;
    let one = test_named(report, "tests::one_in_three")?;
    let archive = attempts(one)
        .into_iter()
        .find(|a| a["outcome"] == "failed" && a["archive"].is_string())
        .and_then(|a| a["archive"].as_str())
        .ok_or("no failing archive")?
        .to_string();
    let (_, passing) = pair()?;
    let (code, json, err) = diff(&["--json", &archive, &passing]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    check!(
        v["first_difference"]["what"] == "output",
        "archive: {}",
        v["first_difference"]
    );
    Ok(())
}

fn diff_of_a_trace_with_itself_is_identical() -> Result<(), Failed> {
    let (failing, _) = pair()?;
    let (code, json, err) = diff(&["--json", &failing, &failing]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    check!(
        v["identical"] == true
            && v["first_difference"].is_null()
            && v["schedule"].is_null()
            && v["ignored"].as_array().is_some_and(|i| i.is_empty()),
        "{v}"
    );
    let (_, text, _) = diff(&[&failing, &failing]);
    check!(
        text.contains("do not differ meaningfully") && text.contains("Schedule: the same."),
        "{text}"
    );
    Ok(())
}

fn diff_bad_inputs() -> Result<(), Failed> {
    let (failing, _) = pair()?;
    let (code, _, err) = diff(&[&failing, "/nonexistent/trace"]);
    check!(
        code == 2 && err.contains("/nonexistent/trace: no such trace directory or archive"),
        "missing path: exit {code}: {err}"
    );
    let other = trace_dirs(&target("keep-going"), "tests::always_passes");
    let other = other.first().ok_or("no always_passes trace")?;
    let (code, _, err) = diff(&[&failing, other.to_str().unwrap_or_default()]);
    check!(
        code == 2
            && err.contains("diff compares two recordings of the same test")
            && err.contains("one_in_three")
            && err.contains("always_passes"),
        "two tests: exit {code}: {err}"
    );
    let t = target("keep-going");
    let (code, _, err) = diff(&[
        "no_such_test",
        "--target-dir",
        t.to_str().unwrap_or_default(),
    ]);
    check!(
        code == 2 && err.contains("no kept traces of a test named `no_such_test`"),
        "unknown test: exit {code}: {err}"
    );
    let (code, _, err) = diff(&[&failing]);
    check!(
        code == 2 && err.contains("give a second trace"),
        "one trace: exit {code}: {err}"
    );
    Ok(())
}

fn flaky_test_reports_its_first_difference() -> Result<(), Failed> {
    let summary = target("flaky").join("summary.md");
    let _ = std::fs::remove_file(&summary);
    let run = on_fixture(
        "run",
        "flaky",
        &["--retries", "2", "fails_first_attempt"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap_or_default()),
        ],
    );
    let report = report_of(&run)?;
    check!(run.code == 0, "exit {}:\n{}", run.code, run.stderr);
    let t = test_named(report, "tests::fails_first_attempt")?;
    check!(t["outcome"] == "flaky", "outcome {}", t["outcome"]);
    let d = &t["first_difference"];
    check!(
        d["failing_attempt"] == 1
            && d["passing_attempt"] == 2
            && d["thread"] == "main.1"
            && d["what"] == "output"
            && d["diff_command"].is_null(),
        "first difference {d}"
    );
    // The passing retry was recorded to compare, not kept.
    let on_disk = trace_dirs(&target("flaky"), "tests::fails_first_attempt");
    check!(
        on_disk.len() == 1 && on_disk[0].ends_with("attempt-1"),
        "trace dirs {on_disk:#?}"
    );
    let text = std::fs::read_to_string(&summary)?;
    check!(
        text.contains("first differ") && text.contains("thread main.1 first differs in output"),
        "step summary:\n{text}"
    );
    // With --keep all both traces stay: the command that compares them,
    // and `diff TEST` finds them in the report.
    let run = on_fixture(
        "run",
        "flaky-all",
        &["--retries", "2", "--keep", "all", "fails_first_attempt"],
        &[],
    );
    let report = report_of(&run)?;
    let t = test_named(report, "tests::fails_first_attempt")?;
    let command = t["first_difference"]["diff_command"]
        .as_str()
        .unwrap_or_default();
    check!(
        command.starts_with("cargo rrtest diff ") && command.contains("attempt-2"),
        "diff command {command:?}"
    );
    let all = target("flaky-all");
    let report_path = all.join("report.json");
    let (code, json, err) = diff(&[
        "fails_first_attempt",
        "--json",
        "--target-dir",
        all.to_str().unwrap_or_default(),
        "--report",
        report_path.to_str().unwrap_or_default(),
    ]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    check!(
        v["first_difference"]["what"] == "output" && v["a"]["outcome"] == "exit 101",
        "by name after --keep all: {v}"
    );
    Ok(())
}

/// `reply_within_the_timeout` races a worker's sleep (0, 15 or 30 ms)
/// against a 20 ms receive timeout: the failing recording's test thread
/// timed out in its futex wait where the passing one's was woken.
fn diff_names_the_timed_out_wait_of_a_race() -> Result<(), Failed> {
    let run = on_fixture(
        "stress",
        "race",
        &[
            "--count",
            "30",
            "--keep-going",
            "--max-failing-traces",
            "2",
            "reply_within_the_timeout",
        ],
        &[],
    );
    let report = report_of(&run)?;
    let t = test_named(report, "tests::reply_within_the_timeout")?;
    check!(
        t["failures"].as_u64().is_some_and(|f| f > 0),
        "no failure in {} runs",
        t["runs"]
    );
    let tr = target("race");
    let report_path = tr.join("report.json");
    let (code, json, err) = diff(&[
        "reply_within_the_timeout",
        "--json",
        "--target-dir",
        tr.to_str().unwrap_or_default(),
        "--report",
        report_path.to_str().unwrap_or_default(),
    ]);
    check!(code == 0, "exit {code}: {err}");
    let v: Value = serde_json::from_str(&json)?;
    let f = &v["first_difference"];
    check!(f["thread"] == "main.1", "first difference {f}");
    let failing = f["a"]["text"].as_str().unwrap_or_default();
    check!(
        f["a"]["action"]["nr"] == 202 && failing.contains("ETIMEDOUT"),
        "the failing side is not the timed-out futex wait: {failing}"
    );
    // The worker is aligned as the test thread's first thread.
    check!(
        v["threads"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["thread"] == "main.1.1")),
        "threads {}",
        v["threads"]
    );
    Ok(())
}
