//! The worker pool ([`run_tests`]): `jobs` worker threads take the next
//! test, or first a waiting verification of a kept trace, from one shared
//! queue; each worker records on its own CPU and keeps its own recorder
//! server; progress comes back to the calling thread as [`RunEvent`]s.
//!
//! It must not run attempts itself (`retries.rs` runs a test's attempts)
//! and must not print: the caller's `on_event` does.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::Duration;

use std::time::Instant;

use super::result::RunCounts;
use super::retries::{run_test, TestPlan};
use super::{AttemptResult, RunnerConfig, TestResult, MAX_TICK};
use crate::harness::list::TestCase;
use crate::harness::record;
use crate::harness::server::ServerSlot;
use rrtest_report::{AttemptOutcome, Outcome};

/// The least time a verification replay gets (more for slow tests: 20 times
/// the recorded attempt).
const VERIFY_MIN_LIMIT: Duration = Duration::from_secs(60);

/// Progress events, delivered on the thread that called [`run_tests`].
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A test started.
    Started {
        /// The test.
        test: &'a TestCase,
    },
    /// An attempt failed and the test will be retried.
    Retrying {
        /// The test.
        test: &'a TestCase,
        /// The failed attempt.
        attempt: &'a AttemptResult,
        /// Attempts allowed in all.
        total_attempts: u32,
    },
    /// A test finished (all its attempts done).
    Finished {
        /// Its result.
        result: &'a TestResult,
    },
    /// With [`Repeat`]: one run of a test ended (its result holds that
    /// run's attempts, numbered by the run).
    Ran {
        /// That run's result.
        result: &'a TestResult,
    },
}

/// Running each test again and again (`cargo rrtest stress`): every run
/// is one recorded attempt, numbered 1, 2, ... per test, spread over the
/// workers; a test stops at its first failure unless `keep_going`, and
/// every test stops at `count` runs or at `until`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// Runs per test.
    pub count: Option<u64>,
    /// No run starts this long after the first one.
    pub duration: Option<Duration>,
    /// Go on after a failure (counting failures).
    pub keep_going: bool,
    /// The most failing traces kept per test (later failing runs are
    /// counted, their traces deleted).
    pub max_failing_traces: usize,
}

enum WorkerMessage {
    Started(usize),
    Retrying(usize, Box<AttemptResult>),
    Finished(usize, Box<TestResult>),
    Checked(usize, u32, record::Checked),
}

/// A kept trace waiting for verification: test index, attempt number,
/// dir, archive, time limit.
struct VerifyJob {
    test: usize,
    attempt: u32,
    dir: PathBuf,
    archive: PathBuf,
    limit: Duration,
}

/// The work queue shared by the workers.
struct Queue {
    next_test: usize,
    running: usize,
    verify: VecDeque<VerifyJob>,
    repeat: Option<RepeatState>,
}

/// Per test, under [`Repeat`].
struct RepeatState {
    plan: Repeat,
    /// No run starts after this.
    until: Option<Instant>,
    /// Runs started.
    started: Vec<u64>,
    /// No more runs (a failure without `keep_going`).
    stopped: Vec<bool>,
    /// A run that may keep its passing trace is under way, or one was kept.
    passing_claimed: Vec<bool>,
    /// Failing traces kept.
    failing_kept: Vec<usize>,
}

enum Work {
    /// A test (with its run number, under [`Repeat`]; keeping its passing
    /// trace when true).
    Test(usize, Option<(u32, bool)>),
    Verify(VerifyJob),
}

/// Runs `tests` and returns their results in the same order (tests not started
/// because the run was cancelled are missing). `on_event` sees progress.
/// Returns when every test has run and every kept trace is verified and packed.
pub fn run_tests(
    tests: &[TestCase],
    config: &RunnerConfig,
    cancel: &AtomicBool,
    on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    run_pool(tests, config, None, cancel, on_event)
}

/// Runs `tests` again and again as `repeat` says, across the same pool
/// of workers; returns one result per test that ran, in order: its
/// failing runs' attempts and the one passing run whose trace was kept
/// (the others are only counted, in [`TestResult::runs`]). `on_event`
/// sees [`RunEvent::Started`] and [`RunEvent::Ran`] for every run.
pub fn run_repeated(
    tests: &[TestCase],
    config: &RunnerConfig,
    repeat: Repeat,
    cancel: &AtomicBool,
    on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    if let Some(rec) = &config.recording {
        // Before any run: runs of one test overlap, so none may empty the
        // test's directories.
        for t in tests {
            if let Err(e) = rec.prepare_test(&t.binary.binary_id, &t.name) {
                eprintln!(
                    "cargo-rrtest: warning: cannot empty the trace directory of {} {}: {e}",
                    t.binary.binary_id, t.name
                );
            }
        }
    }
    run_pool(tests, config, Some(repeat), cancel, on_event)
}

fn run_pool(
    tests: &[TestCase],
    config: &RunnerConfig,
    repeat: Option<Repeat>,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    let total_attempts = config.retries.saturating_add(1);
    let (tx, rx) = mpsc::channel::<WorkerMessage>();
    let mut results: Vec<Option<TestResult>> = vec![None; tests.len()];
    let mut checks: Vec<(usize, u32, record::Checked)> = Vec::new();
    let queue = Mutex::new(Queue {
        next_test: 0,
        running: 0,
        verify: VecDeque::new(),
        repeat: repeat.map(|plan| RepeatState {
            plan,
            until: plan.duration.map(|d| Instant::now() + d),
            started: vec![0; tests.len()],
            stopped: vec![false; tests.len()],
            passing_claimed: vec![false; tests.len()],
            failing_kept: vec![0; tests.len()],
        }),
    });
    let workers = if repeat.is_some() {
        config.jobs.max(1)
    } else {
        config.jobs.clamp(1, tests.len().max(1))
    };
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        let cpus = allowed_cpus();
        for worker in 0..workers {
            // Each worker records on its own CPU (round robin): a recording
            // runs on one CPU, and two on one CPU would take turns.
            let cpu = (!cpus.is_empty()).then(|| cpus[worker % cpus.len()]);
            let tx = tx.clone();
            let (queue, wake) = (&queue, &wake);
            scope.spawn(move || {
                let mut servers = ServerSlot::default();
                loop {
                    let Some(work) = next_work(queue, wake, tests.len(), cancel) else {
                        return;
                    };
                    match work {
                        Work::Verify(job) => {
                            let Some(rec) = &config.recording else {
                                continue;
                            };
                            let checked = record::verify_and_pack(
                                &rec.verifier,
                                &job.dir,
                                &job.archive,
                                job.limit,
                                cancel,
                            );
                            let _ = tx.send(WorkerMessage::Checked(job.test, job.attempt, checked));
                        }
                        Work::Test(i, run) => {
                            let test = &tests[i];
                            let _ = tx.send(WorkerMessage::Started(i));
                            let plan = match run {
                                None => TestPlan::retries(total_attempts),
                                Some((n, keep_passing)) => TestPlan {
                                    first: n,
                                    last: n,
                                    own_dirs: false,
                                    keep_passing,
                                },
                            };
                            let mut result =
                                run_test(test, config, cpu, &mut servers, plan, cancel, |a| {
                                    let _ =
                                        tx.send(WorkerMessage::Retrying(i, Box::new(a.clone())));
                                });
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(state) = q.repeat.as_mut() {
                                state.ran(i, &mut result, run.is_some_and(|r| r.1));
                            }
                            let jobs = verify_jobs(i, &result, config);
                            let _ = tx.send(WorkerMessage::Finished(i, Box::new(result)));
                            q.running -= 1;
                            q.verify.extend(jobs);
                            wake.notify_all();
                        }
                    }
                }
            });
        }
        drop(tx);
        for message in rx {
            match message {
                WorkerMessage::Started(i) => on_event(RunEvent::Started { test: &tests[i] }),
                WorkerMessage::Retrying(i, attempt) => on_event(RunEvent::Retrying {
                    test: &tests[i],
                    attempt: &attempt,
                    total_attempts,
                }),
                WorkerMessage::Finished(i, result) if repeat.is_some() => {
                    on_event(RunEvent::Ran { result: &result });
                    merge_run(&mut results[i], *result);
                }
                WorkerMessage::Finished(i, result) => {
                    on_event(RunEvent::Finished { result: &result });
                    results[i] = Some(*result);
                }
                WorkerMessage::Checked(i, a, checked) => checks.push((i, a, checked)),
            }
        }
    });
    for (i, a, checked) in checks {
        let attempt = results[i].as_mut().and_then(|r| {
            r.attempts
                .iter_mut()
                .find(|x| x.attempt == a && x.trace.is_some())
        });
        if let Some(attempt) = attempt {
            attempt.checked = Some(checked);
        }
    }
    results.into_iter().flatten().collect()
}

/// Adds one run's result to a test's result under [`Repeat`]: counted;
/// its attempts kept only when one failed or kept a trace.
fn merge_run(into: &mut Option<TestResult>, run: TestResult) {
    let failed = run
        .attempts
        .last()
        .is_some_and(|a| matches!(a.outcome, AttemptOutcome::Failed | AttemptOutcome::TimedOut));
    let ended = !run.cancelled();
    let total = into.get_or_insert_with(|| TestResult {
        test: run.test.clone(),
        outcome: Outcome::Passed,
        attempts: Vec::new(),
        runs: Some(RunCounts::default()),
        first_difference: None,
    });
    let counts = total.runs.get_or_insert_with(RunCounts::default);
    if ended {
        counts.runs += 1;
        counts.failures += u64::from(failed);
    }
    let (runs, failures) = (counts.runs, counts.failures);
    let keep = failed
        || !ended
        || run.outcome == Outcome::RecorderError
        || run.attempts.iter().any(|a| a.trace.is_some());
    if keep {
        total.attempts.extend(run.attempts);
        total.attempts.sort_by_key(|a| a.attempt);
    }
    total.outcome = if total.cancelled() && runs == 0 {
        Outcome::Interrupted
    } else if failures == 0 {
        if total
            .attempts
            .iter()
            .any(|a| a.outcome == AttemptOutcome::RecorderError)
        {
            Outcome::RecorderError
        } else {
            Outcome::Passed
        }
    } else if failures == runs {
        match total.attempts.iter().rev().find(|a| !a.outcome.is_pass()) {
            Some(a) if a.outcome == AttemptOutcome::TimedOut => Outcome::TimedOut,
            _ => Outcome::Failed,
        }
    } else {
        Outcome::Flaky
    };
}

impl RepeatState {
    /// The next run to start: the test with the fewest runs started among
    /// those that may run more, and whether it is to keep a passing trace.
    fn next(&mut self) -> Option<(usize, u32, bool)> {
        if self.until.is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        let i = (0..self.started.len())
            .filter(|&i| !self.stopped[i])
            .filter(|&i| self.plan.count.is_none_or(|c| self.started[i] < c))
            .min_by_key(|&i| self.started[i])?;
        self.started[i] += 1;
        let keep_passing = !self.passing_claimed[i];
        self.passing_claimed[i] = true;
        Some((
            i,
            u32::try_from(self.started[i]).unwrap_or(u32::MAX),
            keep_passing,
        ))
    }

    /// Takes note of a run of test `i` that ended (`claimed`: it was to
    /// keep its passing trace): a failure stops the test (without
    /// `keep_going`); failing traces past the limit are deleted.
    fn ran(&mut self, i: usize, result: &mut TestResult, claimed: bool) {
        let failed = result.attempts.last().is_some_and(|a| {
            matches!(a.outcome, AttemptOutcome::Failed | AttemptOutcome::TimedOut)
        });
        if failed && !self.plan.keep_going {
            self.stopped[i] = true;
        }
        if claimed
            && !result
                .attempts
                .iter()
                .any(|a| a.outcome.is_pass() && a.trace.is_some())
        {
            // Its passing trace was not kept: another run may.
            self.passing_claimed[i] = false;
        }
        for a in result.attempts.iter_mut() {
            if a.outcome.is_pass() || a.checked.is_some() {
                continue;
            }
            if let Some(dir) = &a.trace {
                if self.failing_kept[i] >= self.plan.max_failing_traces {
                    let _ = record::remove_if_present(dir);
                    a.trace = None;
                } else {
                    self.failing_kept[i] += 1;
                }
            }
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// The next piece of work: a verification if one waits, else the next test;
/// None when all is done (or cancelled).
fn next_work(
    queue: &Mutex<Queue>,
    wake: &Condvar,
    tests: usize,
    cancel: &AtomicBool,
) -> Option<Work> {
    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if cancel.load(Ordering::Relaxed) {
            wake.notify_all();
            return None;
        }
        if let Some(job) = q.verify.pop_front() {
            return Some(Work::Verify(job));
        }
        if let Some(state) = q.repeat.as_mut() {
            if let Some((i, n, keep_passing)) = state.next() {
                q.running += 1;
                return Some(Work::Test(i, Some((n, keep_passing))));
            }
        } else if q.next_test < tests {
            q.next_test += 1;
            q.running += 1;
            return Some(Work::Test(q.next_test - 1, None));
        }
        if q.running == 0 {
            wake.notify_all();
            return None;
        }
        // Tests still running may queue verifications; the timeout rechecks
        // the cancel flag.
        q = wake
            .wait_timeout(q, MAX_TICK)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The verification jobs for a finished test's kept traces.
fn verify_jobs(test: usize, result: &TestResult, config: &RunnerConfig) -> Vec<VerifyJob> {
    let Some(rec) = &config.recording else {
        return Vec::new();
    };
    if result.cancelled() {
        return Vec::new();
    }
    result
        .attempts
        .iter()
        .enumerate()
        .filter(|(_, attempt)| attempt.checked.is_none())
        .filter_map(|(_, attempt)| {
            let dir = attempt.trace.clone()?;
            Some(VerifyJob {
                test,
                attempt: attempt.attempt,
                dir,
                archive: rec.attempt_archive(
                    &result.test.binary.binary_id,
                    &result.test.name,
                    attempt.attempt,
                ),
                limit: VERIFY_MIN_LIMIT.max(attempt.duration * 20),
            })
        })
        .collect()
}
