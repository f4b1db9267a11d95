//! Keeping credentials out of tests' environments, and so out of traces.
//!
//! A trace records the test's environment (in `header.json` and in the
//! process's memory), and traces of failing tests end up in CI artifacts that
//! anyone with read access to the repository can download. So, by default,
//! variables whose names look like credentials are removed from the
//! environment the harness gives each test: names (compared case-insensitively)
//! that contain `TOKEN`, `SECRET`, `PASSWORD`, `PASSWD`, `PASSPHRASE`,
//! `CREDENTIAL`, `API_KEY`/`APIKEY`, `ACCESS_KEY`, `PRIVATE_KEY`,
//! `AUTH_HEADER`, or that end in `_KEY`, `_PAT`, `_AUTH`, `_COOKIE`,
//! `_SESSION`, `_DSN`, or start with `AWS_`, `AZURE_`, `GOOGLE_APPLICATION_`,
//! `GCP_`, `ACTIONS_ID_TOKEN_`, `ACTIONS_RUNTIME_`, `ACTIONS_CACHE_`, or are
//! one of `SSH_AUTH_SOCK`, `NETRC`, `GH_ENTERPRISE_TOKEN`.
//! `--pass-env NAME` keeps a variable the rules would remove.

use std::ffi::{OsStr, OsString};

/// Substrings of a name (upper-cased) that mark it as a credential.
const CONTAINS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE_KEY",
    "AUTH_HEADER",
];

/// Suffixes of a name (upper-cased) that mark it as a credential.
const SUFFIXES: &[&str] = &["_KEY", "_PAT", "_AUTH", "_COOKIE", "_SESSION", "_DSN"];

/// Prefixes of a name (upper-cased) that mark it as a credential.
const PREFIXES: &[&str] = &[
    "AWS_",
    "AZURE_",
    "GOOGLE_APPLICATION_",
    "GCP_",
    "ACTIONS_ID_TOKEN_",
    "ACTIONS_RUNTIME_",
    "ACTIONS_CACHE_",
];

/// Whole names (upper-cased) that are credentials.
const EXACT: &[&str] = &["SSH_AUTH_SOCK", "NETRC"];

/// Whether a variable named `name` looks like a credential.
pub fn looks_secret(name: &OsStr) -> bool {
    let upper = name.to_string_lossy().to_ascii_uppercase();
    CONTAINS.iter().any(|s| upper.contains(s))
        || SUFFIXES.iter().any(|s| upper.ends_with(s))
        || PREFIXES.iter().any(|s| upper.starts_with(s))
        || EXACT.contains(&upper.as_str())
}

/// The names in `vars` to remove from tests' environments: those that look
/// like credentials, except the ones in `pass` (exact, case-sensitive names).
pub fn to_remove<'a>(
    vars: impl IntoIterator<Item = &'a OsStr>,
    pass: &[OsString],
) -> Vec<OsString> {
    let mut names: Vec<OsString> = vars
        .into_iter()
        .filter(|n| looks_secret(n) && !pass.iter().any(|p| p == n))
        .map(OsStr::to_os_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_credentials_case_insensitively() {
        for name in [
            "GITHUB_TOKEN",
            "github_token",
            "ACTIONS_RUNTIME_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "CARGO_REGISTRY_TOKEN",
            "NPM_TOKEN",
            "DB_PASSWORD",
            "My_Secret",
            "STRIPE_API_KEY",
            "SIGNING_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_REGION",
            "SSH_AUTH_SOCK",
            "SENTRY_DSN",
        ] {
            assert!(looks_secret(OsStr::new(name)), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "CARGO_MANIFEST_DIR",
            "RUST_BACKTRACE",
            "GITHUB_ACTIONS",
            "GITHUB_WORKSPACE",
            "KEYBOARD",
            "LANG",
        ] {
            assert!(!looks_secret(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn pass_env_keeps_one() {
        let vars = [
            OsStr::new("PATH"),
            OsStr::new("GITHUB_TOKEN"),
            OsStr::new("DB_PASSWORD"),
        ];
        let removed = to_remove(vars, &["DB_PASSWORD".into()]);
        assert_eq!(removed, vec![OsString::from("GITHUB_TOKEN")]);
    }
}
