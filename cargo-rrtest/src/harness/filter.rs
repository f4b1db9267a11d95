//! Selecting tests like libtest does: name filters (substring, or whole name
//! with `--exact`), `--skip` patterns, and which ignored tests to run.

use super::list::TestCase;

/// Which `#[ignore]`d tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunIgnored {
    /// Only tests that are not ignored run; ignored ones are reported `ignored`.
    #[default]
    Default,
    /// Only ignored tests (`--ignored`).
    Only,
    /// Both (`--include-ignored`).
    All,
}

/// A test filter.
#[derive(Debug, Clone, Default)]
pub struct TestFilter {
    /// Names (or substrings of names) to run; empty = all.
    pub patterns: Vec<String>,
    /// Patterns and skips match whole names.
    pub exact: bool,
    /// Tests matching any of these are left out.
    pub skip: Vec<String>,
    /// Which ignored tests run.
    pub run_ignored: RunIgnored,
}

/// What to do with a listed test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Run it.
    Run,
    /// Report it as ignored without running it.
    Ignore,
    /// Leave it out of the run and the report.
    Exclude,
}

impl TestFilter {
    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    /// Decides what happens to `test`.
    pub fn select(&self, test: &TestCase) -> Selection {
        let named =
            self.patterns.is_empty() || self.patterns.iter().any(|p| self.matches(p, &test.name));
        let skipped = self.skip.iter().any(|p| self.matches(p, &test.name));
        if !named || skipped {
            return Selection::Exclude;
        }
        match (self.run_ignored, test.ignored) {
            (RunIgnored::Default, true) => Selection::Ignore,
            (RunIgnored::Only, false) => Selection::Exclude,
            _ => Selection::Run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::build::{BinaryKind, TestBinary};
    use std::sync::Arc;

    fn case(name: &str, ignored: bool) -> TestCase {
        TestCase {
            binary: Arc::new(TestBinary {
                binary_id: "b".into(),
                path: "/b".into(),
                kind: BinaryKind::Lib,
                target_name: "b".into(),
                manifest_dir: "/".into(),
                manifest_path: "/Cargo.toml".into(),
                env: vec![],
                package: "b".into(),
            }),
            name: name.into(),
            ignored,
        }
    }

    #[test]
    fn filters_like_libtest() {
        let f = TestFilter {
            patterns: vec!["add".into()],
            skip: vec!["slow".into()],
            ..Default::default()
        };
        assert_eq!(f.select(&case("tests::adds", false)), Selection::Run);
        assert_eq!(
            f.select(&case("tests::adds_slow", false)),
            Selection::Exclude
        );
        assert_eq!(f.select(&case("tests::sub", false)), Selection::Exclude);
        assert_eq!(f.select(&case("tests::add_big", true)), Selection::Ignore);
        let exact = TestFilter {
            patterns: vec!["tests::adds".into()],
            exact: true,
            ..Default::default()
        };
        assert_eq!(exact.select(&case("tests::adds", false)), Selection::Run);
        assert_eq!(
            exact.select(&case("tests::adds2", false)),
            Selection::Exclude
        );
        let only = TestFilter {
            run_ignored: RunIgnored::Only,
            ..Default::default()
        };
        assert_eq!(only.select(&case("a", false)), Selection::Exclude);
        assert_eq!(only.select(&case("a", true)), Selection::Run);
    }
}
