//! `cargo rrtest --nextest-profile NAME`: the runner settings of a
//! cargo-nextest profile, read from the workspace's `.config/nextest.toml`,
//! so one file configures both tools.
//!
//! Read: `retries` (a number, or a table's `count`), `slow-timeout` (a
//! duration, or a table with `period` and `terminate-after`: only a
//! terminating slow timeout kills a test, so only that becomes
//! `--timeout`, `period * terminate-after`) and `test-threads` (a number,
//! `num-cpus`, or a negative number: the CPUs less that many). A profile
//! inherits from the one its `inherits` names, else from `default`
//! (whose unset values are nextest's defaults: no retries, no terminating
//! timeout, one thread per CPU). Anything else in the file is ignored.
//!
//! This module resolves settings only: it must not run tests or decide
//! precedence against the command line (`run.rs` does: a flag given there
//! wins).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::errors::{Error, Result};

/// The settings a profile gives (None: the profile leaves it to the
/// command line and cargo rrtest's defaults).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProfileSettings {
    /// `retries`.
    pub retries: Option<Setting<u32>>,
    /// `slow-timeout` with `terminate-after`: when a test is killed.
    pub timeout: Option<Setting<Duration>>,
    /// `test-threads`, resolved against the CPU count.
    pub jobs: Option<Setting<usize>>,
}

/// One value and where it came from, for the line printed at start
/// (`retries 2 (profile ci)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// `retries 2 (profile ci)`.
    pub shown: String,
}

impl ProfileSettings {
    /// The value of `retries`, if set.
    pub fn retries(&self) -> Option<u32> {
        self.retries.as_ref().map(|s| s.value)
    }
    /// The value of the timeout, if set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.as_ref().map(|s| s.value)
    }
    /// The number of jobs, if set.
    pub fn jobs(&self) -> Option<usize> {
        self.jobs.as_ref().map(|s| s.value)
    }
}

/// The configuration file nextest reads in the workspace at `root`.
pub fn config_path(root: &Path) -> PathBuf {
    root.join(".config").join("nextest.toml")
}

/// The workspace root of the manifest `manifest` (or of the current
/// directory), as `cargo locate-project --workspace` finds it.
pub fn workspace_root(manifest: Option<&Path>) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["locate-project", "--workspace", "--message-format", "plain"]);
    if let Some(m) = manifest {
        cmd.arg("--manifest-path").arg(m);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io("running cargo locate-project", e))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "--nextest-profile: cannot find the workspace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let manifest = PathBuf::from(text.trim());
    Ok(manifest.parent().map(Path::to_path_buf).unwrap_or(manifest))
}

/// Reads profile `name` from the nextest configuration at `path`.
pub fn load(path: &Path, name: &str, cpus: usize) -> Result<ProfileSettings> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "--nextest-profile {name}: {} does not exist; create it (docs/nextest.md) or drop the flag",
                path.display()
            )))
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "--nextest-profile {name}: cannot read {}: {e}",
                path.display()
            )))
        }
    };
    resolve(&text, name, cpus).map_err(|why| {
        Error::Usage(format!(
            "--nextest-profile {name}: {}: {why}",
            path.display()
        ))
    })
}

/// Resolves profile `name` in the configuration `text`.
pub fn resolve(
    text: &str,
    name: &str,
    cpus: usize,
) -> std::result::Result<ProfileSettings, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The message without the source snippet toml adds.
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                format!("not valid TOML at line {line}: {message}")
            }
            None => format!("not valid TOML: {message}"),
        }
    })?;
    let empty = toml::Table::new();
    let profiles = match doc.get("profile") {
        None => &empty,
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err("`profile` must be a table".into()),
    };
    // The chain: NAME, what it inherits, ..., default.
    let mut chain: Vec<(&str, &toml::Table)> = Vec::new();
    let mut next = Some(name.to_string());
    while let Some(current) = next.take() {
        if chain.iter().any(|(n, _)| *n == current) {
            return Err(format!(
                "profile `{current}` inherits from itself (through {})",
                chain
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ));
        }
        let (key, table) = match profiles.get_key_value(&current) {
            Some((k, toml::Value::Table(t))) => (k.as_str(), t),
            Some(_) => return Err(format!("`profile.{current}` must be a table")),
            None if current == "default" => ("default", &empty),
            None => {
                let mut known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                if !known.contains(&"default") {
                    known.push("default");
                }
                return Err(format!(
                    "there is no [profile.{current}] (profiles there: {})",
                    known.join(", ")
                ));
            }
        };
        chain.push((key, table));
        next = match table.get("inherits") {
            Some(toml::Value::String(parent)) => Some(parent.clone()),
            Some(_) => return Err(format!("`profile.{key}.inherits` must be a string")),
            None if key != "default" => Some("default".to_string()),
            None => None,
        };
    }

    let mut settings = ProfileSettings::default();
    let lookup = |key: &str| -> Option<(&str, &toml::Value)> {
        chain
            .iter()
            .find_map(|(profile, table)| table.get(key).map(|v| (*profile, v)))
    };
    if let Some((profile, value)) = lookup("retries") {
        let n = match value {
            toml::Value::Table(t) => t
                .get("count")
                .ok_or_else(|| format!("`profile.{profile}.retries` is a table without `count`"))?,
            v => v,
        };
        let n = n
            .as_integer()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                format!("`profile.{profile}.retries` must be a whole number >= 0, not {n}")
            })?;
        settings.retries = Some(Setting {
            value: n,
            shown: format!("retries {n} (profile {profile})"),
        });
    }
    if let Some((profile, value)) = lookup("slow-timeout") {
        let key = format!("profile.{profile}.slow-timeout");
        let (period, after) = match value {
            toml::Value::String(s) => (s.as_str(), None),
            toml::Value::Table(t) => {
                let period = match t.get("period") {
                    Some(toml::Value::String(s)) => s.as_str(),
                    Some(v) => return Err(format!("`{key}.period` must be a duration, not {v}")),
                    None => "60s",
                };
                let after = match t.get("terminate-after") {
                    None => None,
                    Some(v) => Some(
                        v.as_integer()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                format!(
                                    "`{key}.terminate-after` must be a whole number > 0, not {v}"
                                )
                            })?,
                    ),
                };
                (period, after)
            }
            v => return Err(format!("`{key}` must be a duration or a table, not {v}")),
        };
        let period = parse_duration(period).map_err(|why| format!("`{key}`: {why}"))?;
        if let Some(after) = after {
            let timeout = period
                .checked_mul(after)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("`{key}`: the timeout is zero or out of range"))?;
            settings.timeout = Some(Setting {
                value: timeout,
                shown: format!(
                    "timeout {}s (profile {profile}: slow-timeout {}s x terminate-after {after})",
                    timeout.as_secs_f64(),
                    period.as_secs_f64()
                ),
            });
        }
    }
    if let Some((profile, value)) = lookup("test-threads") {
        let key = format!("profile.{profile}.test-threads");
        let jobs = match value {
            toml::Value::String(s) if s == "num-cpus" => cpus,
            toml::Value::Integer(n) if *n > 0 => usize::try_from(*n).unwrap_or(usize::MAX),
            // nextest: a negative number is the CPUs less that many, at least 1.
            toml::Value::Integer(n) if *n < 0 => {
                let less = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
                cpus.saturating_sub(less).max(1)
            }
            v => {
                return Err(format!(
                    "`{key}` must be a non-zero whole number or \"num-cpus\", not {v}"
                ))
            }
        };
        settings.jobs = Some(Setting {
            value: jobs,
            shown: format!("jobs {jobs} (profile {profile}: test-threads {value})"),
        });
    }
    Ok(settings)
}

/// A duration as nextest writes them (humantime): `60s`, `1m 30s`,
/// `500ms`, `2h`; a sum of numbers each with a unit.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration (write it like 30s, 2m, 1m 30s, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ns" | "nsec" => Duration::from_nanos(n),
            "us" | "usec" => Duration::from_micros(n),
            "ms" | "msec" => Duration::from_millis(n),
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(n),
            "m" | "min" | "mins" | "minute" | "minutes" => {
                Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?)
            }
            "h" | "hr" | "hrs" | "hour" | "hours" => {
                Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?)
            }
            "d" | "day" | "days" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
experimental = ["wrapper-scripts"]

[profile.default]
retries = 1
test-threads = 3

[profile.ci]
retries = { backoff = "exponential", count = 4, delay = "1s" }
slow-timeout = { period = "30s", terminate-after = 3 }

[profile.ci-slow]
inherits = "ci"
slow-timeout = "5m"
test-threads = "num-cpus"

[profile.few]
test-threads = -6
"#;

    #[test]
    fn a_profile_overrides_default_and_inherits_the_rest() {
        let ci = resolve(CONFIG, "ci", 8).unwrap();
        assert_eq!(ci.retries(), Some(4));
        assert_eq!(ci.timeout(), Some(Duration::from_secs(90)));
        // Not in ci: from default.
        assert_eq!(ci.jobs(), Some(3));
        assert_eq!(
            ci.jobs.map(|j| j.shown).as_deref(),
            Some("jobs 3 (profile default: test-threads 3)")
        );

        // ci-slow inherits ci's retries; its slow-timeout does not terminate.
        let slow = resolve(CONFIG, "ci-slow", 8).unwrap();
        assert_eq!(slow.retries(), Some(4));
        assert_eq!(slow.timeout(), None);
        assert_eq!(slow.jobs(), Some(8));

        let default = resolve(CONFIG, "default", 8).unwrap();
        assert_eq!(
            (default.retries(), default.timeout(), default.jobs()),
            (Some(1), None, Some(3))
        );
    }

    #[test]
    fn negative_test_threads_leave_cpus_free_but_at_least_one() {
        assert_eq!(resolve(CONFIG, "few", 8).unwrap().jobs(), Some(2));
        assert_eq!(resolve(CONFIG, "few", 4).unwrap().jobs(), Some(1));
    }

    #[test]
    fn default_exists_even_when_not_written() {
        let s = resolve("[profile.x]\nretries = 2\n", "default", 4).unwrap();
        assert_eq!(s, ProfileSettings::default());
        let s = resolve("", "default", 4).unwrap();
        assert_eq!(s.retries(), None);
    }

    #[test]
    fn bad_profiles_are_refused_with_what_is_wrong() {
        let err = resolve(CONFIG, "nope", 4).unwrap_err();
        assert!(
            err.contains("no [profile.nope]") && err.contains("ci-slow"),
            "{err}"
        );
        let err = resolve("[profile.a]\nretries = -1\n", "a", 4).unwrap_err();
        assert!(err.contains("profile.a.retries"), "{err}");
        let err = resolve(
            "[profile.a]\ninherits = \"b\"\n[profile.b]\ninherits = \"a\"\n",
            "a",
            4,
        )
        .unwrap_err();
        assert!(err.contains("inherits from itself"), "{err}");
        let err = resolve("[profile.a]\nslow-timeout = \"soon\"\n", "a", 4).unwrap_err();
        assert!(err.contains("not a duration"), "{err}");
        let err = resolve("[profile.a\n", "a", 4).unwrap_err();
        assert!(err.starts_with("not valid TOML at line 1"), "{err}");
        let err = resolve("[profile.a]\ntest-threads = 0\n", "a", 4).unwrap_err();
        assert!(err.contains("test-threads"), "{err}");
    }

    #[test]
    fn durations_as_nextest_writes_them() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
