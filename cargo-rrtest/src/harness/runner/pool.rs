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

use super::retries::run_test;
use super::{AttemptResult, RunnerConfig, TestResult, MAX_TICK};
use crate::harness::list::TestCase;
use crate::harness::record;
use crate::harness::server::ServerSlot;

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
}

enum WorkerMessage {
    Started(usize),
    Retrying(usize, Box<AttemptResult>),
    Finished(usize, TestResult),
    Checked(usize, usize, record::Checked),
}

/// A kept trace waiting for verification: test index, attempt index, dir,
/// archive, time limit.
struct VerifyJob {
    test: usize,
    attempt: usize,
    dir: PathBuf,
    archive: PathBuf,
    limit: Duration,
}

/// The work queue shared by the workers.
struct Queue {
    next_test: usize,
    running: usize,
    verify: VecDeque<VerifyJob>,
}

enum Work {
    Test(usize),
    Verify(VerifyJob),
}

/// Runs `tests` and returns their results in the same order (tests not started
/// because the run was cancelled are missing). `on_event` sees progress.
/// Returns when every test has run and every kept trace is verified and packed.
pub fn run_tests(
    tests: &[TestCase],
    config: &RunnerConfig,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(RunEvent<'_>),
) -> Vec<TestResult> {
    let total_attempts = config.retries.saturating_add(1);
    let (tx, rx) = mpsc::channel::<WorkerMessage>();
    let mut results: Vec<Option<TestResult>> = vec![None; tests.len()];
    let mut checks: Vec<(usize, usize, record::Checked)> = Vec::new();
    let queue = Mutex::new(Queue {
        next_test: 0,
        running: 0,
        verify: VecDeque::new(),
    });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        let cpus = allowed_cpus();
        for worker in 0..config.jobs.clamp(1, tests.len().max(1)) {
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
                        Work::Test(i) => {
                            let test = &tests[i];
                            let _ = tx.send(WorkerMessage::Started(i));
                            let result = run_test(
                                test,
                                config,
                                cpu,
                                &mut servers,
                                total_attempts,
                                cancel,
                                |a| {
                                    let _ =
                                        tx.send(WorkerMessage::Retrying(i, Box::new(a.clone())));
                                },
                            );
                            let jobs = verify_jobs(i, &result, config);
                            let _ = tx.send(WorkerMessage::Finished(i, result));
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
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
                WorkerMessage::Finished(i, result) => {
                    on_event(RunEvent::Finished { result: &result });
                    results[i] = Some(result);
                }
                WorkerMessage::Checked(i, a, checked) => checks.push((i, a, checked)),
            }
        }
    });
    for (i, a, checked) in checks {
        if let Some(attempt) = results[i].as_mut().and_then(|r| r.attempts.get_mut(a)) {
            attempt.checked = Some(checked);
        }
    }
    results.into_iter().flatten().collect()
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
        if q.next_test < tests {
            q.next_test += 1;
            q.running += 1;
            return Some(Work::Test(q.next_test - 1));
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
        .filter_map(|(a, attempt)| {
            let dir = attempt.trace.clone()?;
            Some(VerifyJob {
                test,
                attempt: a,
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
