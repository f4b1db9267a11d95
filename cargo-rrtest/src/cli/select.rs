//! Picks the kept trace a user means by a test name as they type it, the
//! way nextest filters names: `replay NAME` where NAME is the test's full
//! name, `BINARY_ID::NAME`, its last `::` segments, or any part of it.
//!
//! It owns only the matching and the listing of candidates; where the
//! candidates come from (a report, the traces directory, a zip artifact, a
//! folder of archives) is the caller's (`replay.rs`, `artifact.rs`). It must
//! not touch the file system.
//!
//! Tiers, the first with a match wins: the exact name (or `BINARY_ID::NAME`),
//! then a suffix at a `::` boundary (`fails` finds `tests::fails`, not
//! `tests::never_fails`), then a substring. Several matches in the winning
//! tier are ambiguous: the caller lists them, each with a command that picks
//! it alone.

use std::path::{Path, PathBuf};

use crate::errors::{Error, Result};
use crate::harness::record::sanitize;

/// One kept trace that a name can pick.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// The binary id as shown (from file names: made file-name safe).
    pub binary_id: String,
    /// The test name as shown.
    pub name: String,
    /// A trace directory, or a `.tar.zst` archive (a file, or an entry of a zip).
    pub path: PathBuf,
    /// The arguments after `cargo rrtest replay` that pick this trace alone.
    pub replay_args: String,
    /// Whether `binary_id` and `name` are file-name-safe forms
    /// (`harness::record::sanitize`): queries are then compared in that form.
    pub sanitized: bool,
    /// Extra exact names (an entry path in a zip).
    pub aliases: Vec<String>,
}

impl Candidate {
    /// `(name, full)` keys in the candidate's form, and the separator.
    fn keys(&self) -> (String, String, &'static str) {
        if self.sanitized {
            let full = format!("{}__{}", self.binary_id, self.name);
            (self.name.clone(), full, "__")
        } else {
            let full = format!("{}::{}", self.binary_id, self.name);
            (self.name.clone(), full, "::")
        }
    }
}

/// What a name picked.
#[derive(Debug)]
pub(super) enum Pick {
    /// No candidate matches.
    None,
    /// Exactly one does.
    One(Candidate),
    /// Several do, in the first tier that matched anything.
    Many(Vec<Candidate>),
}

/// Picks the candidates `query` names (see the module comment).
pub(super) fn pick(query: &str, candidates: Vec<Candidate>) -> Pick {
    let query = query.trim();
    if query.is_empty() {
        return Pick::None;
    }
    let clean = sanitize(query);
    let q = |c: &Candidate| -> String {
        if c.sanitized {
            clean.clone()
        } else {
            query.to_string()
        }
    };
    let tiers: [&dyn Fn(&Candidate) -> bool; 3] = [
        &|c| {
            let (name, full, _) = c.keys();
            let q = q(c);
            name == q || full == q || c.aliases.iter().any(|a| a == query)
        },
        &|c| {
            let (_, full, sep) = c.keys();
            full.ends_with(&format!("{sep}{}", q(c)))
        },
        &|c| {
            let (_, full, _) = c.keys();
            full.contains(&q(c))
        },
    ];
    for tier in tiers {
        let mut hits: Vec<Candidate> = candidates.iter().filter(|c| tier(c)).cloned().collect();
        match hits.len() {
            0 => continue,
            1 => return Pick::One(hits.remove(0)),
            _ => return Pick::Many(hits),
        }
    }
    Pick::None
}

/// The listing of several candidates: binary id, name, and the command
/// that replays each alone.
pub(super) fn listing(candidates: &[Candidate]) -> String {
    let width = candidates
        .iter()
        .map(|c| c.binary_id.len() + c.name.len() + 1)
        .max()
        .unwrap_or(0);
    candidates
        .iter()
        .map(|c| {
            let id = format!("{} {}", c.binary_id, c.name);
            format!("  {id:width$}   cargo rrtest replay {}", c.replay_args)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The target directory the tests ran in, to look a test name up in:
/// `target_dir` when given, else the one of the workspace around the
/// current directory (or of `manifest_path`). `what` is the argument that
/// was not a trace, for the error.
pub(super) fn target_dir(
    target_dir: Option<&Path>,
    manifest_path: Option<&Path>,
    what: &str,
) -> Result<PathBuf> {
    if let Some(dir) = target_dir {
        return Ok(dir.to_path_buf());
    }
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.cargo_path(crate::harness::build::cargo_path())
        .no_deps();
    if let Some(p) = manifest_path {
        cmd.manifest_path(p);
    }
    let meta = cmd.exec().map_err(|e| {
        Error::Usage(format!(
            "`{what}` is not a trace directory or archive, and looking it up as a test name needs a \
             cargo workspace (run this in one, or pass --manifest-path / --target-dir): {e}"
        ))
    })?;
    Ok(meta.target_directory.into_std_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(bin: &str, name: &str) -> Candidate {
        Candidate {
            binary_id: bin.into(),
            name: name.into(),
            path: PathBuf::from(format!("/t/{bin}/{name}")),
            replay_args: format!("{bin}::{name}"),
            sanitized: false,
            aliases: Vec::new(),
        }
    }

    fn names(p: &Pick) -> Vec<String> {
        match p {
            Pick::None => Vec::new(),
            Pick::One(c) => vec![format!("{}::{}", c.binary_id, c.name)],
            Pick::Many(cs) => cs
                .iter()
                .map(|c| format!("{}::{}", c.binary_id, c.name))
                .collect(),
        }
    }

    fn demo() -> Vec<Candidate> {
        vec![
            real("demo-core", "tests::fails_assert"),
            real("demo-core", "tests::never_fails_assert"),
            real("demo-app", "tests::worker_panics"),
            real("demo-app", "tests::fails"),
            real("demo-core", "tests::fails"),
        ]
    }

    #[test]
    fn exact_names_win_over_suffixes_and_substrings() {
        let p = pick("demo-core::tests::fails_assert", demo());
        assert_eq!(names(&p), ["demo-core::tests::fails_assert"]);
        let p = pick("tests::fails_assert", demo());
        assert_eq!(names(&p), ["demo-core::tests::fails_assert"]);
    }

    #[test]
    fn a_suffix_matches_at_a_path_boundary_only() {
        // `never_fails_assert` ends with `fails_assert` but not at `::`.
        let p = pick("fails_assert", demo());
        assert!(matches!(p, Pick::One(_)), "{p:?}");
        assert_eq!(names(&p), ["demo-core::tests::fails_assert"]);
    }

    #[test]
    fn a_substring_matches_when_nothing_else_does() {
        let p = pick("worker", demo());
        assert_eq!(names(&p), ["demo-app::tests::worker_panics"]);
        let p = pick("nope", demo());
        assert!(matches!(p, Pick::None));
    }

    #[test]
    fn several_matches_are_listed_with_their_commands() {
        let p = pick("fails", demo());
        let Pick::Many(cs) = p else {
            panic!("not ambiguous: {p:?}")
        };
        assert_eq!(cs.len(), 2);
        let text = listing(&cs);
        assert!(
            text.contains("demo-app tests::fails")
                && text.contains("cargo rrtest replay demo-core::tests::fails"),
            "{text}"
        );
    }

    #[test]
    fn file_name_forms_match_typed_names() {
        let c = Candidate {
            binary_id: "demo-core__api".into(),
            name: "flaky_first_attempt".into(),
            path: "x".into(),
            replay_args: "x".into(),
            sanitized: true,
            aliases: vec!["demo-core__api/flaky_first_attempt/attempt-1.tar.zst".into()],
        };
        for q in [
            "demo-core::api::flaky_first_attempt",
            "flaky_first_attempt",
            "api::flaky_first_attempt",
            "flaky",
            "demo-core__api/flaky_first_attempt/attempt-1.tar.zst",
        ] {
            assert!(matches!(pick(q, vec![c.clone()]), Pick::One(_)), "{q}");
        }
        assert!(matches!(pick("api::other", vec![c]), Pick::None));
    }
}
