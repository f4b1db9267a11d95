//! Chaos trials (`--chaos`, docs/chaos.md): the chaos scheduler makes each
//! race fixture fail within 50 seeds, the failing recording verifies and
//! names its seed; the same seed makes the same decisions on the same
//! program; the flags refuse bad input; and `cargo rrtest --chaos` gives
//! every recorded attempt a seed in the report, the same seeds again for
//! the same run seed.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Run, TrialDir};

/// The most seeds a race may take (issue 15's goal).
const MAX_SEEDS: u64 = 50;

/// A C race fixture: its build, extra arguments (`DIR`: the trial's
/// directory) and what its failure says on stderr. (race_file is not here:
/// chaos does not find its race within 50 seeds reliably yet, see
/// docs/chaos.md.)
struct Race {
    build: CBuild,
    dir_arg: bool,
    failure: &'static str,
}

const RACES: &[Race] = &[
    Race {
        build: CBuild::pie("race_counter"),
        dir_arg: false,
        failure: "lost ",
    },
    Race {
        build: CBuild::pie("race_publish"),
        dir_arg: false,
        failure: "the flag was set before the data",
    },
    Race {
        build: CBuild::pie("race_timeout"),
        dir_arg: false,
        failure: "no message within",
    },
    Race {
        build: CBuild::pie("race_order"),
        dir_arg: false,
        failure: "B started before A",
    },
];

/// Tests of fixtures/races (a debug build, run as the harness runs one
/// test) that chaos finds within [`MAX_SEEDS`], and what their failure
/// says. (The others are not found reliably yet, see docs/chaos.md.)
const RUST_RACES: &[(&str, &str)] = &[
    ("lost_update", "hits were lost"),
    ("check_then_create", "both threads saw no lock file"),
    ("start_order", "B ran first"),
    ("recv_timeout", "the message came too late"),
];

pub fn trials() -> Vec<Trial> {
    let mut trials: Vec<Trial> = RACES
        .iter()
        .map(|race| {
            let name = format!("chaos::finds::{}", race.build.name);
            Trial::test(name.clone(), move || finds_race(&name, race))
        })
        .collect();
    for (test, failure) in RUST_RACES {
        let name = format!("chaos::finds::races::{test}");
        trials.push(Trial::test(name.clone(), move || {
            finds_rust_race(&name, test, failure)
        }));
    }
    trials.push(Trial::test("chaos::same_seed_same_decisions", || {
        same_seed_same_decisions()
    }));
    trials.push(Trial::test("chaos::flags_and_header", flags_and_header));
    trials.push(Trial::test("chaos::steps_keep_a_blocked_sigtrap", || {
        steps_keep_a_blocked_sigtrap()
    }));
    trials.push(Trial::test(
        "chaos::switch_after_a_syscall_that_does_not_block",
        switch_after_a_syscall_that_does_not_block,
    ));
    trials.push(Trial::test(
        "chaos::exits_before_a_point",
        exits_before_a_point,
    ));
    trials.push(Trial::test("chaos::harness_seeds_in_report", || {
        harness_seeds_in_report()
    }));
    trials.extend(minimize::trials());
    trials
}

fn record(exe: &Path, args: &[&Path], trace: &Path, flags: &[&str]) -> Result<Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("record")
        .args(flags)
        .arg("-o")
        .arg(trace)
        .arg("--")
        .arg(exe)
        .args(args);
    run::run(&mut cmd)
}

fn info(trace: &Path) -> Result<Value, Failed> {
    let out = run::info_json(trace)?;
    out.expect_code(0)?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("info --json: {e}").into())
}

/// Records the fixture under `--chaos --seed 1, 2, ...` until it fails with
/// its race's message (within [`MAX_SEEDS`]); that recording verifies (its
/// verification replay runs to the failure), replays to the failure again,
/// and names its seed.
fn finds_race(name: &str, race: &Race) -> Result<(), Failed> {
    let exe = build::c_fixture(race.build)?;
    let dir = TrialDir::new(name)?;
    let work = dir.sub("work")?;
    let args: Vec<&Path> = if race.dir_arg {
        vec![work.as_path()]
    } else {
        Vec::new()
    };
    finds(&dir, &exe, &args, 1, race.failure)?;
    dir.finish();
    Ok(())
}

/// [`finds_race`] for the test `test` of fixtures/races: its failure is a
/// panic (exit 101) that says `failure`.
fn finds_rust_race(name: &str, test: &str, failure: &str) -> Result<(), Failed> {
    let exe = races_test_binary()?;
    let dir = TrialDir::new(name)?;
    let args = [
        Path::new("--exact"),
        Path::new(test),
        Path::new("--nocapture"),
    ];
    finds(&dir, exe, &args, 101, failure)?;
    dir.finish();
    Ok(())
}

/// The test binary of fixtures/races (`cargo test --no-run`, a debug
/// build), built once per test run.
fn races_test_binary() -> Result<&'static Path, Failed> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args(["test", "--no-run", "--offline", "--message-format", "json"])
                .arg("--manifest-path")
                .arg(common::fixtures_dir().join("races").join("Cargo.toml"))
                .arg("--target-dir")
                .arg(common::scratch_dir("races-bin-target"))
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("running cargo: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cargo test --no-run on fixtures/races failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|m| {
                    m["reason"] == "compiler-artifact"
                        && m["target"]["name"] == "races"
                        && m["target"]["kind"]
                            .as_array()
                            .is_some_and(|k| k.iter().any(|k| k == "test"))
                })
                .and_then(|m| m["executable"].as_str().map(PathBuf::from))
                .ok_or_else(|| "cargo test --no-run named no races test binary".to_string())
        })
        .as_deref()
        .map_err(|e| Failed::from(e.clone()))
}

/// Records `exe ARGS` under `--chaos --seed 1, 2, ...` until it exits with
/// `code` and says `failure` (within [`MAX_SEEDS`]): that recording
/// verifies (its verification replay runs to the failure), replays to the
/// failure again, and names its seed.
fn finds(
    dir: &TrialDir,
    exe: &Path,
    args: &[&Path],
    code: i32,
    failure: &str,
) -> Result<(), Failed> {
    for seed in 1..=MAX_SEEDS {
        let trace = dir.path.join(format!("seed-{seed}"));
        let s = seed.to_string();
        let out = record(exe, args, &trace, &["--no-verify", "--chaos", "--seed", &s])?;
        if out.code() == 0 {
            let _ = std::fs::remove_dir_all(&trace);
            continue;
        }
        check!(
            out.code() == code && out.stderr_text().contains(failure),
            "seed {seed}: not the race's failure\n{}",
            out.describe()
        );
        let verify = run::run(
            Command::new(common::cargo_rrtest())
                .arg("verify")
                .arg(&trace),
        )?;
        check!(
            verify.code() == 0,
            "the failing chaos recording (seed {seed}) does not verify\n{}",
            verify.describe()
        );
        // A replay that uses the verification's pass counts shows it too
        // (a regression: points where the program blocked every signal
        // were found by the search, and missed by the counted breakpoint).
        let replay = run::replay_in(&trace, None)?;
        check!(
            replay.code() == code && replay.stderr_text().contains(failure),
            "the replay does not show the failure again\n{}",
            replay.describe()
        );
        let header = info(&trace)?;
        check!(
            header["chaos"]["seed"] == seed && header["chaos"]["decisions"].as_u64() > Some(0),
            "info --json does not name seed {seed}: {}",
            header["chaos"]
        );
        return Ok(());
    }
    Err(format!("no failure in {MAX_SEEDS} chaos seeds").into())
}

/// What a chaos recording of `race_counter` did: the header's chaos
/// digest (the decisions made, in order) and count, the exit status, and
/// the schedule carried out (`info --events`: each event's index, thread,
/// kind, and a syscall's error name; no thread ids, which differ between
/// runs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    digest: String,
    decisions: u64,
    code: i32,
    schedule: Vec<String>,
}

impl Recorded {
    /// How it differs from `other`, in a line.
    fn differs(&self, other: &Recorded) -> String {
        let first = self
            .schedule
            .iter()
            .zip(&other.schedule)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("first differing event: {a:?} / {b:?}"))
            .unwrap_or_else(|| "no event differs in their common length".into());
        format!(
            "digests {} / {}, decisions {} / {}, exit {} / {}, events {} / {}; {first}",
            self.digest,
            other.digest,
            self.decisions,
            other.decisions,
            self.code,
            other.code,
            self.schedule.len(),
            other.schedule.len()
        )
    }
}

/// `race_counter` recorded under `seed` (trace `seed-SEED-N`).
fn decisions(dir: &TrialDir, exe: &Path, seed: u64, n: u32) -> Result<Recorded, Failed> {
    let name = exe.file_name().unwrap_or_default().to_string_lossy();
    let trace = dir.path.join(format!("{name}-seed-{seed}-{n}"));
    let s = seed.to_string();
    let out = record(exe, &[], &trace, &["--no-verify", "--chaos", "--seed", &s])?;
    let header = info(&trace)?;
    let digest = header["chaos"]["digest"].as_str().unwrap_or("").to_string();
    let count = header["chaos"]["decisions"].as_u64().unwrap_or(0);
    check!(
        digest.len() == 16 && count > 0,
        "seed {seed}: no decisions in the header: {}",
        header["chaos"]
    );
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("info").arg("--events").arg(&trace);
    let events = run::run(&mut cmd)?;
    events.expect_code(0)?;
    let schedule: Vec<String> = events
        .stdout_text()
        .lines()
        .filter_map(schedule_entry)
        .collect();
    check!(
        schedule.iter().any(|e| e.contains(" preempted")),
        "seed {seed}: no preemption in the events:\n{}",
        events.stdout_text()
    );
    Ok(Recorded {
        digest,
        decisions: count,
        code: out.code(),
        schedule,
    })
}

/// One line of `info --events` (`INDEX  THREAD(TID)  EVENT`) as
/// `INDEX THREAD KIND[ ERRNO][ HOW]`: a syscall by its name, a preemption with
/// its address (no ASLR: the same in every run), anything else by its
/// first word; the tid and the arguments and results (which hold tids) left
/// out, but for the name of an error result.
fn schedule_entry(line: &str) -> Option<String> {
    let mut cols = line.split_whitespace();
    let index = cols.next()?;
    let thread = cols.next()?;
    let thread = thread.split('(').next()?;
    let event: Vec<&str> = cols.collect();
    let first = *event.first()?;
    let kind = if first == "preempted" {
        event.join(" ")
    } else {
        first.split('(').next()?.to_string()
    };
    let errno = event
        .windows(3)
        .find(|w| w[0] == "=" && w[1] == "-1")
        .map(|w| format!(" {}", w[2]))
        .unwrap_or_default();
    // `(blocked)`: split, others ran while it was in the kernel;
    // `(buffered)`: from the syscall buffer.
    let how = event
        .last()
        .filter(|w| matches!(**w, "(blocked)" | "(buffered)"))
        .map(|w| format!(" {w}"))
        .unwrap_or_default();
    Some(format!("{index} {thread} {kind}{errno}{how}"))
}

/// Regression for decisions that depended on timing (a clone's parent and
/// child stopping in either order; time slices ending by the clock; a
/// tick's interrupt that broke a futex wait, whose early exit made the
/// waiter ready; a woken waiter counted ready or not as the kernel ran it
/// before the pick or after; a buffered syscall budget seen spent by a
/// tick): the same seed on the same program makes the same decisions and
/// the same schedule, another seed other ones. Three recordings of each
/// seed run at once (the load they make is what showed the races: before
/// the fixes, `race_counter`'s seeds 1, 2 and 9 each made two schedules
/// among 10 recordings made four at a time). Not `condvar`: its seed 1 made
/// one schedule in two batches of six by hand, but two in three once in a CI
/// run (the first difference a preemption against a futex wait): some of its
/// decisions still depend on the clock (docs/chaos.md).
fn same_seed_same_decisions() -> Result<(), Failed> {
    let exe = build::c_fixture(CBuild::pie("race_counter"))?;
    let dir = TrialDir::new("chaos::same_seed_same_decisions")?;
    for seed in [1, 2, 9] {
        let exe = &exe;
        let seen: Vec<Result<Recorded, Failed>> = std::thread::scope(|s| {
            let runs: Vec<_> = (1..=3)
                .map(|n| {
                    let dir = &dir;
                    s.spawn(move || decisions(dir, exe, seed, n))
                })
                .collect();
            runs.into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| Err("a recording thread panicked".into()))
                })
                .collect()
        });
        let seen = seen.into_iter().collect::<Result<Vec<_>, Failed>>()?;
        for (n, other) in seen.iter().enumerate().skip(1) {
            check!(
                *other == seen[0],
                "{} seed {seed}: recordings 1 and {} differ: {}",
                exe.display(),
                n + 1,
                seen[0].differs(other)
            );
        }
    }
    let five = decisions(&dir, &exe, 5, 1)?;
    let six = decisions(&dir, &exe, 6, 1)?;
    check!(
        five.digest != six.digest,
        "seeds 5 and 6 made the same decisions"
    );
    dir.finish();
    Ok(())
}

/// Regression (`rust_spawn_threads --chaos --seed 1` did not verify): a
/// chaos step's trap, or a breakpoint's, in a thread that blocks SIGTRAP
/// made the kernel unblock it, and the program saw its mask change (there:
/// posix_spawn's child wrote it into memory replay then differed in).
/// `masked_steps` computes with every signal blocked and checks its mask:
/// recorded under three seeds, it ends with status 0, says the mask held,
/// and verifies. Before the fix every seed failed (exit 1, unverified).
fn steps_keep_a_blocked_sigtrap() -> Result<(), Failed> {
    verified_at_seeds(
        "chaos::steps_keep_a_blocked_sigtrap",
        "masked_steps",
        "the mask held\nEXIT-SUCCESS\n",
    )
}

/// Regression (`rust_spawn_threads --chaos --seed 1`, once the above was
/// fixed, diverged later): a chaos switch at a syscall that does not block
/// split it, the kernel wrote its output while another thread ran and was
/// preempted (an execution point hashing that memory), and replay applies
/// the write at the syscall's exit event, after the point. `sigmask_reads`
/// reads its mask into .bss 200 times while another thread computes:
/// before the fix seeds 1 to 3 did not verify; now the switch is made at
/// the syscall's exit and each verifies.
fn switch_after_a_syscall_that_does_not_block() -> Result<(), Failed> {
    verified_at_seeds(
        "chaos::switch_after_a_syscall_that_does_not_block",
        "sigmask_reads",
        "200 mask reads\nEXIT-SUCCESS\n",
    )
}

/// Regression (a static program waiting in `sigtimedwait` for another
/// thread's signal did not verify at 3 of 8 seeds): a call that blocked
/// and ended (the kernel wrote its output) while another thread ran, and
/// whose thread was not scheduled again yet, had its `SyscallExit` written
/// only when scheduled; an execution point of the other thread in between
/// hashed the output that replay writes at the exit, after the point.
/// `blocked_wait_outputs` waits 100 times in `rt_sigtimedwait` (siginfo in
/// .bss) and in `read` from a pipe (buffer in .bss) while the main thread,
/// which ends each wait, computes on: before the fix seeds 1 to 3 did not
/// verify; now the exits due are written before each point.
fn exits_before_a_point() -> Result<(), Failed> {
    verified_at_seeds(
        "chaos::exits_before_a_point",
        "blocked_wait_outputs",
        "100 waits\nEXIT-SUCCESS\n",
    )
}

/// The C fixture `fixture` recorded with --chaos at seeds 1 to 3: each
/// ends with status 0, prints `want`, and verifies.
pub(crate) fn verified_at_seeds(
    trial: &str,
    fixture: &'static str,
    want: &str,
) -> Result<(), Failed> {
    verified_recordings(
        trial,
        fixture,
        want,
        &[
            &["--chaos", "--seed", "1"],
            &["--chaos", "--seed", "2"],
            &["--chaos", "--seed", "3"],
        ],
    )
}

/// The C fixture `fixture` recorded once with each set of `record` flags
/// in `runs`: each recording ends with status 0, prints `want`, and
/// verifies.
pub(crate) fn verified_recordings(
    trial: &str,
    fixture: &'static str,
    want: &str,
    runs: &[&[&str]],
) -> Result<(), Failed> {
    let exe = build::c_fixture(CBuild::pie(fixture))?;
    let dir = TrialDir::new(trial)?;
    for (i, flags) in runs.iter().enumerate() {
        let what = format!("recording {} ({})", i + 1, flags.join(" "));
        let trace = dir.path.join(format!("trace-{}", i + 1));
        let rec = record(&exe, &[], &trace, flags)?;
        rec.expect_code(0)
            .map_err(|e| format!("{what}: {}", e.message().unwrap_or("")))?;
        check!(
            rec.stdout_text().contains(want),
            "{what}: no {want:?}\n{}",
            rec.describe()
        );
        crate::recorder::expect_verified(&trace)
            .map_err(|e| format!("{what}: {}", e.message().unwrap_or("")))?;
    }
    dir.finish();
    Ok(())
}

fn flags_and_header() -> Result<(), Failed> {
    let dir = TrialDir::new("chaos::flags_and_header")?;
    let exe = Path::new("/bin/true");
    let bad = [
        (vec!["--seed", "5"], "--chaos"),
        (vec!["--chaos", "--seed", "abc"], "is not a seed"),
        (vec!["--chaos", "--seed", "-1"], "is not a seed"),
    ];
    for (flags, says) in bad {
        let out = record(exe, &[], &dir.path.join("bad"), &flags)?;
        check!(
            out.code() == 2 && out.stderr_text().contains(says),
            "{flags:?}: expected a usage error naming {says}\n{}",
            out.describe()
        );
    }
    let no_record = run::run(
        Command::new(common::cargo_rrtest())
            .args(["--no-record", "--chaos", "--manifest-path"])
            .arg(common::fixtures_dir().join("races").join("Cargo.toml")),
    )?;
    check!(
        no_record.code() == 2 && no_record.stderr_text().contains("drop --no-record"),
        "--no-record --chaos: expected a usage error\n{}",
        no_record.describe()
    );
    // A drawn seed is written down; no chaos, no chaos field.
    let drawn = dir.path.join("drawn");
    record(exe, &[], &drawn, &["--no-verify", "--chaos"])?.expect_code(0)?;
    let seed = info(&drawn)?["chaos"]["seed"].as_u64();
    check!(seed.is_some_and(|s| s < 1 << 48), "drawn seed: {seed:?}");
    let hex = dir.path.join("hex");
    record(
        exe,
        &[],
        &hex,
        &["--no-verify", "--chaos", "--seed", "0x10"],
    )?
    .expect_code(0)?;
    check!(info(&hex)?["chaos"]["seed"] == 16, "--seed 0x10 is not 16");
    let plain = dir.path.join("plain");
    record(exe, &[], &plain, &["--no-verify"])?.expect_code(0)?;
    check!(
        info(&plain)?["chaos"].is_null(),
        "a plain recording has chaos"
    );
    let human = run::info(&hex)?.stdout_text();
    check!(
        human.contains("chaos:            seed 16 ("),
        "info does not show the seed:\n{human}"
    );
    dir.finish();
    Ok(())
}

/// `cargo rrtest --chaos --seed 7` on fixtures/races: each recorded attempt
/// has a seed in the report, different per test, the same in a second run;
/// the publication race (found by every seed so far) fails with a kept,
/// verified trace whose header has its attempt's seed.
fn harness_seeds_in_report() -> Result<(), Failed> {
    let dir = TrialDir::new("chaos::harness_seeds_in_report")?;
    let manifest = common::fixtures_dir().join("races").join("Cargo.toml");
    let target = common::scratch_dir("races-target");
    let seeds_of = |n: u32| -> Result<(Vec<(String, u64)>, Value), Failed> {
        let report = dir.path.join(format!("report-{n}.json"));
        let out = crate::harness::rrtest(
            &[
                "--chaos",
                "--seed",
                "7",
                "--manifest-path",
                manifest.to_str().expect("utf-8 path"),
                "--target-dir",
                target.to_str().expect("utf-8 path"),
                "--jobs",
                "2",
                "relaxed_publication",
                "start_order",
            ],
            &[],
            &report,
        );
        let report = out.report.ok_or_else(|| {
            Failed::from(format!(
                "no report (exit {}):\n{}\n{}",
                out.code, out.stdout, out.stderr
            ))
        })?;
        let mut seeds = Vec::new();
        for t in report["tests"].as_array().into_iter().flatten() {
            for a in t["attempts"].as_array().into_iter().flatten() {
                let seed = a["chaos_seed"]
                    .as_u64()
                    .ok_or_else(|| Failed::from(format!("an attempt without chaos_seed: {a}")))?;
                seeds.push((t["name"].as_str().unwrap_or("").to_string(), seed));
            }
        }
        seeds.sort();
        Ok((seeds, report))
    };
    let (first, report) = seeds_of(1)?;
    check!(first.len() == 2, "expected two attempts: {first:?}");
    check!(first[0].1 != first[1].1, "two tests, one seed: {first:?}");
    let (again, _) = seeds_of(2)?;
    check!(again == first, "seed 7 gave {again:?}, then {first:?}");
    let publication = report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "relaxed_publication")
        .ok_or("no relaxed_publication in the report")?;
    check!(
        publication["outcome"] == "failed" && publication["verified"] == true,
        "relaxed_publication under chaos: {publication}"
    );
    let trace = publication["trace"].as_str().ok_or("no kept trace")?;
    let header = info(Path::new(trace))?;
    let seed = publication["attempts"][0]["chaos_seed"].clone();
    check!(
        header["chaos"]["seed"] == seed,
        "the trace has seed {}, the report {seed}",
        header["chaos"]["seed"]
    );
    dir.finish();
    Ok(())
}

/// `cargo rrtest diff --minimize` (docs/stress-and-diff.md): narrows a
/// failing chaos recording's decisions to the fewest that still make the
/// test fail live, and names the racing source line.
mod minimize {
    use super::*;

    pub fn trials() -> Vec<Trial> {
        vec![
            Trial::test("chaos::minimize::race_counter", || {
                names_the_line("race_counter", "race_counter.c:20")
            }),
            Trial::test("chaos::minimize::race_publish", || {
                names_the_line("race_publish", "race_publish.c:30")
            }),
            Trial::test("chaos::minimize::bad_inputs", bad_inputs),
            Trial::test("chaos::minimize::by_test_name", by_test_name),
        ]
    }

    /// `cargo rrtest diff --minimize TEST` (the form whose report holds
    /// both): `stress --chaos --keep-going` on fixtures/races's
    /// `lost_update` keeps failing chaos traces and a passing one; the
    /// minimized schedule of the report's pair is a proper subset of the
    /// failing seed's decisions, told as source places.
    fn by_test_name() -> Result<(), Failed> {
        let dir = TrialDir::new("chaos::minimize::by_test_name")?;
        let manifest = common::fixtures_dir().join("races").join("Cargo.toml");
        let target = common::scratch_dir("races-minimize-target");
        let report_path = dir.path.join("report.json");
        let (m, t, r) = (
            manifest.to_str().expect("utf-8 path"),
            target.to_str().expect("utf-8 path"),
            report_path.to_str().expect("utf-8 path"),
        );
        let stress = crate::harness::rrtest(
            &[
                "stress",
                "--chaos",
                "--seed",
                "3",
                "--count",
                "6",
                "--keep-going",
                "-j",
                "2",
                "--manifest-path",
                m,
                "--target-dir",
                t,
                "lost_update",
            ],
            &[],
            &report_path,
        );
        let report = stress.report.ok_or_else(|| {
            Failed::from(format!(
                "no report (exit {}):\n{}\n{}",
                stress.code, stress.stdout, stress.stderr
            ))
        })?;
        let test = report["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == "lost_update")
            .ok_or("no lost_update in the report")?;
        let kept = |outcome: &str| -> Vec<String> {
            test["attempts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["outcome"] == outcome)
                .filter_map(|a| a["trace"].as_str().map(String::from))
                .collect()
        };
        let (failed, passed) = (kept("failed"), kept("passed"));
        check!(
            !failed.is_empty() && !passed.is_empty(),
            "stress kept no failing and passing pair: {test}"
        );
        // Each re-run records the 4 threads' 1200 hits under chaos (2 to
        // 10 s here): 31 re-runs, 137 s alone for seed 3's pair.
        let mut diff = Command::new(common::cargo_rrtest());
        diff.args([
            "diff",
            "--minimize",
            "lost_update",
            "--json",
            "--budget",
            "4m",
            "--manifest-path",
            m,
            "--target-dir",
            t,
            "--report",
            r,
        ]);
        let out = run::run_within(&mut diff, std::time::Duration::from_secs(360))?;
        out.expect_code(0)?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("diff --minimize --json: {e}\n{}", out.describe()))?;
        let path = |side: &str| v[side]["path"].as_str().unwrap_or("").to_string();
        check!(
            failed.contains(&path("failing")) && passed.contains(&path("passing")),
            "not the report's pair: {} / {}; kept {failed:?} / {passed:?}",
            path("failing"),
            path("passing")
        );
        let kept = v["kept"].as_array().map_or(0, |k| k.len());
        let decisions = v["decisions"].as_u64().unwrap_or(0);
        check!(
            kept >= 1 && (kept as u64) < decisions,
            "not a proper subset: {kept} of {decisions}\n{v:#}"
        );
        // The kept decisions are told as source places (one inside
        // std's start-up code may be only an address). Which decisions a
        // minimization keeps can differ under load (a re-run's outcome is
        // the program's, racing): it named the counter's store (lib.rs:16)
        // in 2 of 3 runs alone, a thread's start-up in a full run here.
        // The C fixtures' trials assert the racing lines.
        let cuts = v["cuts"].as_array().cloned().unwrap_or_default();
        check!(
            cuts.iter().any(|c| c["text"]
                .as_str()
                .is_some_and(|t| t.contains(".rs:") || t.contains(".c:"))),
            "no kept decision is told as a source place\n{v:#}"
        );
        dir.finish();
        Ok(())
    }

    /// `diff --minimize` with `flags` on `args`. Its re-runs are live chaos
    /// runs: 23 s alone here for race_publish's seed 1 (30 re-runs), past
    /// the usual 60 s a command in a loaded CI run (it failed so once), so
    /// a hang is caught at 180 s instead.
    fn diff(args: &[&Path], flags: &[&str]) -> Result<Run, Failed> {
        run::run_within(
            Command::new(common::cargo_rrtest())
                .arg("diff")
                .arg("--minimize")
                .args(flags)
                .args(args),
            std::time::Duration::from_secs(180),
        )
    }

    /// The first failing chaos recording of `exe` (seeds 1, 2, ...), and
    /// a passing plain one.
    fn pair(dir: &TrialDir, exe: &Path) -> Result<(PathBuf, PathBuf), Failed> {
        let passing = dir.path.join("passing");
        record(exe, &[], &passing, &["--no-verify"])?.expect_code(0)?;
        for seed in 1..=MAX_SEEDS {
            let trace = dir.path.join(format!("seed-{seed}"));
            let s = seed.to_string();
            let out = record(exe, &[], &trace, &["--no-verify", "--chaos", "--seed", &s])?;
            if out.code() == 1 {
                return Ok((trace, passing));
            }
            let _ = std::fs::remove_dir_all(&trace);
        }
        Err(format!("no failure in {MAX_SEEDS} chaos seeds").into())
    }

    /// The minimized schedule of the fixture's first failing seed is
    /// smaller than the seed's, 1-minimal, and one of its decisions
    /// switches a thread out at `line` (file:line, from addr2line).
    fn names_the_line(fixture: &'static str, line: &str) -> Result<(), Failed> {
        let exe = build::c_fixture(CBuild::pie(fixture))?;
        let dir = TrialDir::new(&format!("chaos::minimize::{fixture}"))?;
        let (failing, passing) = pair(&dir, &exe)?;
        let out = diff(&[&failing, &passing], &["--json"])?;
        out.expect_code(0)?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("diff --minimize --json: {e}\n{}", out.describe()))?;
        let kept = v["kept"].as_array().map_or(0, |k| k.len());
        let decisions = v["decisions"].as_u64().unwrap_or(0);
        check!(
            v["minimal"] == true && kept >= 1 && (kept as u64) < decisions,
            "not a 1-minimal proper subset: {kept} of {decisions}\n{v:#}"
        );
        let cuts = v["cuts"].as_array().cloned().unwrap_or_default();
        let names = cuts.iter().any(|c| {
            let at = &c["switched_out_at"];
            let mut places = vec![at["source"].as_str().unwrap_or("").to_string()];
            places.extend(
                at["inlined_in"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.as_str().map(String::from)),
            );
            places.iter().any(|p| p.ends_with(line))
                && c["text"].as_str().is_some_and(|t| t.contains(line))
        });
        check!(
            names,
            "no kept decision switches a thread out at {line}\n{v:#}"
        );
        // The human output says it too.
        let human = diff(&[&failing, &passing], &[])?;
        human.expect_code(0)?;
        let text = human.stdout_text();
        check!(
            text.contains(line) && text.contains("was switched out at"),
            "the human output does not name {line}:\n{text}"
        );
        dir.finish();
        Ok(())
    }

    /// Each bad input is a usage error (exit 2) that says what is wrong.
    fn bad_inputs() -> Result<(), Failed> {
        let dir = TrialDir::new("chaos::minimize::bad_inputs")?;
        let counter = build::c_fixture(CBuild::pie("race_counter"))?;
        let publish = build::c_fixture(CBuild::pie("race_publish"))?;
        let (failing, passing) = pair(&dir, &counter)?;
        let other = dir.path.join("other");
        record(&publish, &[], &other, &["--no-verify"])?.expect_code(0)?;
        let plain_fail = dir.path.join("plain-false");
        record(Path::new("/bin/false"), &[], &plain_fail, &["--no-verify"])?.expect_code(1)?;
        let chaos_true = dir.path.join("chaos-true");
        record(
            Path::new("/bin/true"),
            &[],
            &chaos_true,
            &["--no-verify", "--chaos", "--seed", "3"],
        )?
        .expect_code(0)?;
        let missing = dir.path.join("missing");
        let cases: [(&[&Path], &[&str], &str); 6] = [
            (&[&missing, &passing], &[], "no such trace"),
            (
                &[&failing, &other],
                &[],
                "diff compares two recordings of the same test",
            ),
            (&[&passing, &failing], &[], "passed (exit 0)"),
            (&[&failing, &failing], &[], "did not pass"),
            (
                &[&plain_fail, &plain_fail],
                &[],
                "not recorded under the chaos scheduler",
            ),
            (
                &[&failing, &passing],
                &["--check-runs", "0"],
                "--check-runs",
            ),
        ];
        for (args, flags, says) in cases {
            let out = diff(args, flags)?;
            check!(
                out.code() == 2 && out.stderr_text().contains(says),
                "{args:?} {flags:?}: expected a usage error saying {says:?}\n{}",
                out.describe()
            );
        }
        // A chaos recording that passed, given as the failing one.
        let out = diff(&[&chaos_true, &chaos_true], &[])?;
        check!(
            out.code() == 2 && out.stderr_text().contains("passed (exit 0)"),
            "a passing chaos recording as the failing one\n{}",
            out.describe()
        );
        dir.finish();
        Ok(())
    }
}
