//! Finding the first panic a test printed on stderr.
//!
//! libtest's panic hook prints, in current Rust,
//! `thread 'NAME' (TID) panicked at FILE:LINE:COL:` then the message lines;
//! Rust 1.73 to 1.91 print the same without ` (TID)`; older versions print
//! `thread 'NAME' panicked at 'MESSAGE', FILE:LINE:COL`. The message ends at a
//! `note:` line, a `stack backtrace:` line, another panic line, or a blank line.

use rrtest_report::Panic;

/// The first panic in `stderr`, if any.
pub fn parse_first_panic(stderr: &str) -> Option<Panic> {
    let lines: Vec<&str> = stderr.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((thread, rest)) = panic_line(line) else {
            continue;
        };
        // Old form: `panicked at 'message', file:line:col`.
        if let Some(old) = rest.strip_prefix('\'') {
            let (message, loc) = old.rsplit_once("', ")?;
            let (file, line, column) = location(loc)?;
            return Some(Panic {
                thread,
                message: message.to_string(),
                file,
                line,
                column,
            });
        }
        let loc = rest.strip_suffix(':').unwrap_or(rest);
        let Some((file, line, column)) = location(loc) else {
            continue;
        };
        let message: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| {
                !l.is_empty()
                    && !l.starts_with("note: ")
                    && !l.starts_with("stack backtrace:")
                    && panic_line(l).is_none()
            })
            .copied()
            .collect();
        return Some(Panic {
            thread,
            message: message.join("\n"),
            file,
            line,
            column,
        });
    }
    None
}

/// `(thread name, text after "panicked at ")` of a panic line.
fn panic_line(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix("thread '")?;
    let (name, rest) = rest.split_once('\'')?;
    let rest = rest.trim_start();
    // Optional ` (TID)`.
    let rest = match rest.strip_prefix('(') {
        Some(r) => {
            let (tid, r) = r.split_once(')')?;
            if !tid.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            r.trim_start()
        }
        None => rest,
    };
    let rest = rest.strip_prefix("panicked at ")?;
    Some((name.to_string(), rest))
}

/// `FILE:LINE:COL` (the file may itself contain colons).
fn location(s: &str) -> Option<(String, u32, u32)> {
    let (rest, col) = s.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    Some((file.to_string(), line.parse().ok()?, col.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_current_form_with_thread_id() {
        let err = "\nthread 'tests::checksum' (4242) panicked at demo-core/src/lib.rs:47:9:\n\
                   assertion `left == right` failed\n  left: 295\n right: 294\n\
                   note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        let p = parse_first_panic(err).unwrap();
        assert_eq!(p.thread, "tests::checksum");
        assert_eq!(
            (p.file.as_str(), p.line, p.column),
            ("demo-core/src/lib.rs", 47, 9)
        );
        assert_eq!(
            p.message,
            "assertion `left == right` failed\n  left: 295\n right: 294"
        );
    }

    #[test]
    fn parses_form_without_thread_id_and_takes_the_first() {
        let err = "thread '<unnamed>' panicked at src/lib.rs:11:9:\nworker got an empty list\n\
                   thread 'main' panicked at src/lib.rs:15:6:\njoin failed\n";
        let p = parse_first_panic(err).unwrap();
        assert_eq!(p.thread, "<unnamed>");
        assert_eq!(p.message, "worker got an empty list");
        assert_eq!(p.line, 11);
    }

    #[test]
    fn parses_old_quoted_form() {
        let p = parse_first_panic("thread 'x' panicked at 'boom, really', src/a.rs:1:2\n").unwrap();
        assert_eq!(p.message, "boom, really");
        assert_eq!((p.line, p.column), (1, 2));
    }

    #[test]
    fn ignores_other_lines() {
        assert!(parse_first_panic("thread 'x' said hello\nnothing here\n").is_none());
    }
}
