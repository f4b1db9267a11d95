//! `cargo rrtest stress [FILTERS] [--count N | --duration D] [--keep-going]`:
//! builds like `cargo rrtest`, then runs each chosen test again and again
//! across the workers, every run recorded (docs/stress-and-diff.md).
//!
//! It owns the options only: they are `cargo rrtest run`'s (flattened,
//! so a flag added to `run` — filters, cargo options, recording options,
//! the scheduler's — works here too) plus the repetition; the loop is the
//! harness's ([`crate::harness::runner::run_repeated`]), the report and
//! the output the same as `run`'s. It must not run tests itself.

use std::process::ExitCode;
use std::time::Duration;

use super::run::{self, RunArgs};
use crate::errors::{Error, Result};
use crate::harness::{self, runner::Repeat, KeepPolicy};

/// Runs per test when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 100;

/// Options of `cargo rrtest stress`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Each run is recorded; a passing run's trace is deleted, except one per \
test (to compare with: `cargo rrtest diff TEST`); failing runs' traces are kept, verified and \
packed like `cargo rrtest`'s. A test stops at its first failure unless --keep-going. With both \
--count and --duration, whichever comes first ends a test's runs. The report (failures and runs \
per test) is written where `cargo rrtest` writes it.\n\n\
Exit codes: 0 no run failed, 2 usage error, 100 a run failed, 101 build failed, 102 internal \
error, 130 interrupted (docs/exit-codes.md)."
)]
pub struct StressArgs {
    /// Runs per test [default: 100 without --duration].
    #[arg(long, value_name = "N", help_heading = "Stress")]
    pub count: Option<u64>,
    /// Start no run after this long (after the build): `90s`, `10m`, `1h`, or seconds.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Stress")]
    pub duration: Option<Duration>,
    /// Go on after a test's first failure, counting failures.
    #[arg(long, help_heading = "Stress")]
    pub keep_going: bool,
    /// With --keep-going: the most failing traces kept per test (later failures are counted,
    /// their traces deleted).
    #[arg(long, value_name = "N", default_value_t = 10, help_heading = "Stress")]
    pub max_failing_traces: usize,

    // The options of `cargo rrtest run`. Flags added there (the scheduler's
    // `--chaos [--seed S]`, say) reach the harness's options, so stress
    // takes them with no change here.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `cargo rrtest stress`.
pub fn exec(args: StressArgs) -> Result<ExitCode> {
    let repeat = repeat(&args)?;
    if args.run.retries.is_some_and(|n| n > 0) {
        return Err(Error::Usage(
            "--retries has no meaning under stress: every test runs again and again anyway \
             (see --count, --keep-going)"
                .into(),
        ));
    }
    if args.run.keep != KeepPolicy::Failed {
        return Err(Error::Usage(
            "--keep is fixed under stress: failing runs' traces and one passing run's per test \
             are kept"
                .into(),
        ));
    }
    let mut options = run::options(args.run)?;
    options.stress = Some(repeat);
    harness::run(&options).map(ExitCode::from)
}

/// The repetition the arguments ask for.
fn repeat(args: &StressArgs) -> Result<Repeat> {
    if args.count == Some(0) {
        return Err(Error::Usage("--count must be at least 1".into()));
    }
    if args.max_failing_traces == 0 {
        return Err(Error::Usage(
            "--max-failing-traces must be at least 1 (a failure keeps its trace)".into(),
        ));
    }
    let count = match (args.count, args.duration) {
        (None, None) => Some(DEFAULT_COUNT),
        (count, _) => count,
    };
    Ok(Repeat {
        count,
        duration: args.duration,
        keep_going: args.keep_going,
        max_failing_traces: args.max_failing_traces,
    })
}

/// `--duration`: a number with an optional unit (`s`, `m`, `h`; seconds
/// without one), more than zero.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "ms" => 0.001,
        _ => {
            return Err(format!(
                "`{s}`: expected a duration like 90s, 10m or 1h (units s, m, h, ms)"
            ))
        }
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 90s, 10m or 1h"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{s}`: the duration must be more than zero"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{s}`: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("90s, 10m or 1h"));
    }
}
