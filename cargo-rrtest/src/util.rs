//! Small helpers with no better home.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as RFC 3339 in UTC, with milliseconds
/// (`2026-11-27T04:46:16.123Z`).
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// Formats `t` as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Whether process `pid` exists (a zombie counts; one of another user's
/// too). Used to tell a temporary directory left by a dead process.
pub fn process_alive(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

/// Where the tool's own log lines (`tracing`) go instead of stderr, once set.
static LOG_FILE: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// Sends the tool's log lines to `file` from now on (a recorder server,
/// whose stderr is each recorded test's, keeps its own messages apart
/// so). Only the first call has an effect.
pub fn set_log_file(file: std::fs::File) {
    let _ = LOG_FILE.set(file);
}

/// The writer for one log line: the file set by [`set_log_file`], else stderr.
pub fn log_writer() -> Box<dyn std::io::Write> {
    match LOG_FILE.get() {
        Some(file) => Box::new(file),
        None => Box::new(std::io::stderr()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_250); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.250Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_754_776);
        assert_eq!(rfc3339(t), "2026-11-27T04:46:16.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        assert_eq!(rfc3339(t), "2026-01-02T03:04:05.678Z");
    }
}
