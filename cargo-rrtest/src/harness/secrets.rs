//! Keeping credentials out of tests' environments, and so out of traces.
//!
//! A trace records the program's environment (in `header.json` and in the
//! process's memory) and its command line, and traces of failing tests end
//! up in CI artifacts that anyone with read access to the repository can
//! download. So, by default, variables that look like credentials, by their
//! name or by their value, are removed from the environment before the
//! program starts (the harness's tests and `cargo rrtest record`'s program
//! alike): the recorded run sees exactly the environment the trace shows,
//! and replay agrees with it. The rules are listed in `docs/secrets.md`;
//! `--pass-env NAME` keeps one variable anyway.
//!
//! This module only decides; it never prints or stores a value, and it
//! must not: callers get names and the rule that matched.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    "JWT",
    "COOKIE",
    "BEARER",
    "WEBHOOK",
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

/// Words of a name (split at `_` and other non-alphanumerics, upper-cased)
/// that mark a variable as a credential when its value looks random
/// ([`looks_random`]): alone they are too common (`TEST_PASS_COUNT=3`).
const SECRET_WORDS: &[&str] = &[
    "KEY",
    "KEYS",
    "PASS",
    "PWD",
    "SALT",
    "HMAC",
    "SIG",
    "SIGNATURE",
    "SIGNING",
    "LICENSE",
];

/// Why a variable is removed (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Its name looks like a credential's.
    Name,
    /// Its value is a URL with a password in it (`scheme://user:PASS@host`).
    UrlPassword,
    /// Its value contains a token of a well-known format (which one).
    Token(&'static str),
    /// A name with a secret-sounding word and a value that looks random.
    RandomValue,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Name => f.write_str("its name looks like a credential's"),
            Rule::UrlPassword => f.write_str("its value is a URL with a password"),
            Rule::Token(kind) => write!(f, "its value contains {kind}"),
            Rule::RandomValue => f.write_str("its name sounds secret and its value looks random"),
        }
    }
}

/// Whether a variable named `name` looks like a credential by its name alone.
pub fn looks_secret(name: &OsStr) -> bool {
    let upper = name.to_string_lossy().to_ascii_uppercase();
    CONTAINS.iter().any(|s| upper.contains(s))
        || SUFFIXES.iter().any(|s| upper.ends_with(s))
        || PREFIXES.iter().any(|s| upper.starts_with(s))
        || EXACT.contains(&upper.as_str())
        || words(&upper).any(is_auth_word)
}

/// `AUTH`, `OAUTH2`, `AUTHORIZATION`, `AUTHTOKEN`..., but not `AUTHOR`,
/// `AUTHORS` or `AUTHORITY` (`GIT_AUTHOR_NAME`, `CARGO_PKG_AUTHORS`).
fn is_auth_word(word: &str) -> bool {
    let rest = word.strip_prefix('O').unwrap_or(word);
    rest.starts_with("AUTH") && !matches!(rest, "AUTHOR" | "AUTHORS" | "AUTHORITY")
}

/// The words of an upper-cased name.
fn words(upper: &str) -> impl Iterator<Item = &str> {
    upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Why the variable `name=value` must not reach a recorded program, or None
/// when it may.
pub fn check(name: &OsStr, value: &OsStr) -> Option<Rule> {
    if looks_secret(name) {
        return Some(Rule::Name);
    }
    let value = value.as_bytes();
    if has_url_password(value) {
        return Some(Rule::UrlPassword);
    }
    if let Some(kind) = find_token(value) {
        return Some(Rule::Token(kind));
    }
    let upper = name.to_string_lossy().to_ascii_uppercase();
    let secret_word = !matches!(upper.as_str(), "PWD" | "OLDPWD")
        && words(&upper).any(|w| SECRET_WORDS.contains(&w));
    (secret_word && looks_random(value)).then_some(Rule::RandomValue)
}

/// Whether `value` holds a URL whose userinfo has a non-empty password:
/// `scheme://user:PASSWORD@host...` anywhere in it (a list of URLs too).
pub fn has_url_password(value: &[u8]) -> bool {
    let mut rest = value;
    while let Some(at) = find(rest, b"://") {
        let after = &rest[at + 3..];
        // The authority ends at the path, query, fragment, or a separator
        // of a list of URLs.
        let end = after
            .iter()
            .position(|&c| matches!(c, b'/' | b'?' | b'#' | b' ' | b',' | b';' | b'\n' | b'\t'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        if let Some(at_sign) = authority.iter().rposition(|&c| c == b'@') {
            let userinfo = &authority[..at_sign];
            if let Some(colon) = userinfo.iter().position(|&c| c == b':') {
                if colon + 1 < userinfo.len() {
                    return true;
                }
            }
        }
        rest = after;
    }
    false
}

/// A token format: a prefix, the characters of its body, the least length
/// of the body.
struct Format {
    prefix: &'static [u8],
    body: fn(u8) -> bool,
    min_body: usize,
    /// The body's length is exactly `min_body` (then followed by a
    /// non-body character or the end).
    exact: bool,
    kind: &'static str,
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
fn alnum_underscore(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
fn alnum_dash_underscore(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}
fn alnum_dash(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}
fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

/// The well-known token formats (prefix and body shape).
const FORMATS: &[Format] = &[
    Format {
        prefix: b"ghp_",
        body: alnum,
        min_body: 30,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"gho_",
        body: alnum,
        min_body: 30,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"ghs_",
        body: alnum,
        min_body: 30,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"ghu_",
        body: alnum,
        min_body: 30,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"ghr_",
        body: alnum,
        min_body: 30,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"github_pat_",
        body: alnum_underscore,
        min_body: 22,
        exact: false,
        kind: "a GitHub token",
    },
    Format {
        prefix: b"glpat-",
        body: alnum_dash_underscore,
        min_body: 20,
        exact: false,
        kind: "a GitLab token",
    },
    Format {
        prefix: b"AKIA",
        body: upper_digit,
        min_body: 16,
        exact: true,
        kind: "an AWS access key id",
    },
    Format {
        prefix: b"ASIA",
        body: upper_digit,
        min_body: 16,
        exact: true,
        kind: "an AWS access key id",
    },
    Format {
        prefix: b"xoxa-",
        body: alnum_dash,
        min_body: 10,
        exact: false,
        kind: "a Slack token",
    },
    Format {
        prefix: b"xoxb-",
        body: alnum_dash,
        min_body: 10,
        exact: false,
        kind: "a Slack token",
    },
    Format {
        prefix: b"xoxp-",
        body: alnum_dash,
        min_body: 10,
        exact: false,
        kind: "a Slack token",
    },
    Format {
        prefix: b"xoxr-",
        body: alnum_dash,
        min_body: 10,
        exact: false,
        kind: "a Slack token",
    },
    Format {
        prefix: b"xoxe-",
        body: alnum_dash,
        min_body: 10,
        exact: false,
        kind: "a Slack token",
    },
    Format {
        prefix: b"npm_",
        body: alnum,
        min_body: 36,
        exact: false,
        kind: "an npm token",
    },
    Format {
        prefix: b"pypi-",
        body: alnum_dash_underscore,
        min_body: 50,
        exact: false,
        kind: "a PyPI token",
    },
    Format {
        prefix: b"sk_live_",
        body: alnum,
        min_body: 16,
        exact: false,
        kind: "a Stripe key",
    },
    Format {
        prefix: b"rk_live_",
        body: alnum,
        min_body: 16,
        exact: false,
        kind: "a Stripe key",
    },
    Format {
        prefix: b"AIza",
        body: alnum_dash_underscore,
        min_body: 35,
        exact: true,
        kind: "a Google API key",
    },
];

/// Webhook URL hosts and paths whose URLs are themselves the credential.
const WEBHOOKS: &[(&[u8], &str)] = &[
    (b"hooks.slack.com/", "a Slack webhook URL"),
    (b"discord.com/api/webhooks/", "a Discord webhook URL"),
    (b"discordapp.com/api/webhooks/", "a Discord webhook URL"),
    (b".webhook.office.com/", "a Microsoft Teams webhook URL"),
];

/// The kind of the first well-known credential in `text` (a token format, a
/// JWT, a private key block, a webhook URL), if any. Used on values of
/// variables and on command-line arguments.
pub fn find_token(text: &[u8]) -> Option<&'static str> {
    for f in FORMATS {
        let mut from = 0;
        while let Some(i) = find(&text[from..], f.prefix).map(|i| i + from) {
            from = i + 1;
            // At a word boundary: not inside a longer identifier.
            if i > 0 && text[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let body = &text[i + f.prefix.len()..];
            let len = body.iter().take_while(|&&c| (f.body)(c)).count();
            let fits = if f.exact {
                len == f.min_body
            } else {
                len >= f.min_body
            };
            if fits {
                return Some(f.kind);
            }
        }
    }
    if has_jwt(text) {
        return Some("a JSON web token");
    }
    if find(text, b"-----BEGIN ").is_some() && find(text, b"PRIVATE KEY").is_some() {
        return Some("a private key");
    }
    WEBHOOKS
        .iter()
        .find(|(host, _)| find(text, host).is_some())
        .map(|&(_, kind)| kind)
}

/// `eyJ<base64url>.eyJ<base64url>.<at least one more character>`: the
/// shape of a JSON web token (a JSON header and a JSON payload).
fn has_jwt(text: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'=';
    let mut from = 0;
    while let Some(i) = find(&text[from..], b"eyJ").map(|i| i + from) {
        from = i + 1;
        let header = text[i..].iter().take_while(|c| b64(c)).count();
        let rest = &text[i + header..];
        let Some(rest) = rest.strip_prefix(b".eyJ") else {
            continue;
        };
        let payload = rest.iter().take_while(|c| b64(c)).count();
        if rest[payload..].len() >= 2 && rest[payload] == b'.' {
            return true;
        }
    }
    false
}

/// Whether `value` looks like a random secret: at least 16 bytes, no
/// whitespace, not a path, letters and digits mixed, and at least 3.5 bits
/// of entropy per character (a UUID or hex digest has about 3.6-4, so this
/// is only asked of names with secret-sounding words).
pub fn looks_random(value: &[u8]) -> bool {
    if value.len() < 16
        || value.iter().any(|c| c.is_ascii_whitespace())
        || matches!(value[0], b'/' | b'.' | b'~')
        || !value.iter().any(u8::is_ascii_digit)
        || !value.iter().any(u8::is_ascii_alphabetic)
    {
        return false;
    }
    let mut counts = [0u32; 256];
    for &c in value {
        counts[c as usize] += 1;
    }
    let n = value.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.5
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A variable removed from a program's environment, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its name.
    pub name: OsString,
    /// The rule that matched.
    pub rule: Rule,
}

/// The variables in `vars` to remove from a recorded program's environment:
/// those that look like credentials, except the ones in `pass` (exact,
/// case-sensitive names). Sorted by name, each once.
pub fn to_remove<'a>(
    vars: impl IntoIterator<Item = (&'a OsStr, &'a OsStr)>,
    pass: &[OsString],
) -> Vec<Removed> {
    let mut out: Vec<Removed> = vars
        .into_iter()
        .filter(|(n, _)| !pass.iter().any(|p| p == n))
        .filter_map(|(n, v)| {
            check(n, v).map(|rule| Removed {
                name: n.to_os_string(),
                rule,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// Filters an environment of `NAME=value` entries: the entries kept, in
/// order, and what was removed ([`to_remove`]).
pub fn filter_env(env: Vec<OsString>, pass: &[OsString]) -> (Vec<OsString>, Vec<Removed>) {
    let split = |kv: &OsString| -> (OsString, OsString) {
        let b = kv.as_bytes();
        let eq = b.iter().position(|&c| c == b'=').unwrap_or(b.len());
        (
            OsStr::from_bytes(&b[..eq]).to_os_string(),
            OsStr::from_bytes(b.get(eq + 1..).unwrap_or_default()).to_os_string(),
        )
    };
    let pairs: Vec<(OsString, OsString)> = env.iter().map(split).collect();
    let removed = to_remove(
        pairs.iter().map(|(n, v)| (n.as_os_str(), v.as_os_str())),
        pass,
    );
    let kept = env
        .into_iter()
        .zip(&pairs)
        .filter(|(_, (n, _))| !removed.iter().any(|r| &r.name == n))
        .map(|(kv, _)| kv)
        .collect();
    (kept, removed)
}

/// Warnings for command-line arguments that contain a well-known
/// credential: they are recorded as they are (a program's arguments are its
/// behaviour), so the user is told. One line each, naming the argument's
/// position and the kind, never the value.
pub fn argv_warnings(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let a = a.as_bytes();
            let kind = find_token(a).or_else(|| has_url_password(a).then_some("a URL with a password"))?;
            Some(format!(
                "argument {i} of the command contains {kind}: it is recorded in the trace as it is (pass it through an environment variable instead, which is filtered)"
            ))
        })
        .collect()
}

/// Whether this process runs as root (effective uid 0): the owner of its
/// `/proc/self` directory, as `preload` finds its own uid.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Well-known credential files and directories, relative to the home
/// directory: what `--hide-credential-files` hides (those that exist).
pub const CREDENTIAL_PATHS: &[&str] = &[
    ".git-credentials",
    ".config/git/credentials",
    ".netrc",
    ".pgpass",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".ssh",
    ".gnupg",
    ".docker/config.json",
    ".kube/config",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".npmrc",
    ".pypirc",
    ".config/gh",
];

/// The paths to hide from a recorded program: each of `given` (relative
/// to `cwd`) and, with `credential_files`, each of [`CREDENTIAL_PATHS`]
/// under `home`, that exists, made absolute with links resolved (a mount
/// lands on the link's target), each once. A given path that does not
/// exist is in the second list (nothing to hide; the caller says so).
/// Hiding needs root (`is_root`): without it, an error that says so.
pub fn paths_to_hide(
    given: &[PathBuf],
    credential_files: bool,
    cwd: &Path,
    home: Option<&Path>,
    is_root: bool,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), String> {
    let mut hide = Vec::new();
    let mut missing = Vec::new();
    let mut add = |p: PathBuf, report_missing: bool| match p.canonicalize() {
        Ok(real) => {
            if !hide.contains(&real) {
                hide.push(real);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if report_missing {
                missing.push(p);
            }
            Ok(())
        }
        Err(e) => Err(format!("--hide-path {}: {e}", p.display())),
    };
    for p in given {
        add(cwd.join(p), true)?;
    }
    if credential_files {
        let Some(home) = home else {
            return Err(
                "--hide-credential-files: HOME is not set; set it, or name the files with --hide-path"
                    .into(),
            );
        };
        for rel in CREDENTIAL_PATHS {
            add(home.join(rel), false)?;
        }
    }
    if !hide.is_empty() && !is_root {
        return Err("--hide-path and --hide-credential-files need root: the program is recorded in a mount namespace of its own, with the paths mounted over, which only root can set up; run as root, or leave the flags out (docs/secrets.md)".into());
    }
    Ok((hide, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, value: &str) -> Option<Rule> {
        check(OsStr::new(name), OsStr::new(value))
    }

    /// Tokens built at run time, so that this file holds no string a
    /// secret scanner would flag.
    fn token(prefix: &str, body: &str, n: usize) -> String {
        format!("{prefix}{}", body.repeat(n))
    }

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
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "SSH_AUTH_SOCK",
            "SENTRY_DSN",
        ] {
            assert!(looks_secret(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn names_with_jwt_cookie_auth_bearer_webhook_credential_private_key() {
        for name in [
            "JWT",
            "APP_JWT_SIGNING",
            "SESSION_COOKIE",
            "COOKIE_JAR",
            "AUTH",
            "BASIC_AUTH_USER",
            "OAUTH_CLIENT",
            "OAUTH2_REFRESH",
            "HTTP_AUTHORIZATION",
            "AUTHTOKEN",
            "BEARER",
            "API_BEARER_VALUE",
            "SLACK_WEBHOOK_URL",
            "DEPLOY_WEBHOOK",
            "GOOGLE_CREDENTIALS",
            "GPG_PRIVATE_KEY",
        ] {
            assert_eq!(rule(name, "x"), Some(Rule::Name), "{name}");
        }
    }

    #[test]
    fn author_and_authority_are_not_auth() {
        for name in [
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "CARGO_PKG_AUTHORS",
            "CERT_AUTHORITY_HOST",
        ] {
            assert_eq!(rule(name, "Jane Doe <jane@example.com>"), None, "{name}");
        }
    }

    #[test]
    fn url_with_password_is_removed_whatever_the_name() {
        for (name, value) in [
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("REDIS_URL", "redis://:hunter2@localhost:6379/0"),
            ("HTTPS_PROXY", "http://user:hunter2@proxy.example:3128"),
            ("all_proxy", "socks5://u:p@10.0.0.1:1080"),
            (
                "UPSTREAMS",
                "http://a.example, https://bot:hunter2@b.example/x",
            ),
            (
                "MONGO",
                "mongodb://u:p%40ss@h1:27017,h2:27017/db?replicaSet=r",
            ),
        ] {
            assert_eq!(rule(name, value), Some(Rule::UrlPassword), "{name}");
        }
        for (name, value) in [
            ("DATABASE_URL", "postgres://localhost/db"),
            ("DATABASE_URL", "postgres://u@localhost/db"),
            ("DATABASE_URL", "postgres://u:@localhost/db"),
            ("HTTP_PROXY", "http://proxy.example:3128"),
            ("DOCS", "https://example.com/a:b@c"),
            ("MAILTO", "mailto:someone@example.com"),
        ] {
            assert_eq!(rule(name, value), None, "{name}={value}");
        }
    }

    #[test]
    fn github_tokens_under_innocent_names() {
        for prefix in ["ghp_", "gho_", "ghs_", "ghu_", "ghr_"] {
            let t = token(prefix, "aB3", 12);
            assert_eq!(rule("BUILD_INFO", &t), Some(Rule::Token("a GitHub token")));
            // Inside a URL or a header value too.
            let url = format!("https://x-access-token@github.com?t={t}");
            assert_eq!(rule("REMOTE", &url), Some(Rule::Token("a GitHub token")));
        }
        let pat = token("github_pat_", "11ABCDE_x", 6);
        assert_eq!(rule("X", &pat), Some(Rule::Token("a GitHub token")));
        // Too short to be a token, or inside an identifier.
        assert_eq!(rule("X", "ghp_short"), None);
        assert_eq!(rule("X", &token("aghp_", "aB3", 12)), None);
    }

    #[test]
    fn gitlab_aws_slack_npm_pypi_stripe_google() {
        let cases = [
            (token("glpat-", "xY-9", 6), "a GitLab token"),
            (token("AKIA", "ABCD1234", 2), "an AWS access key id"),
            (token("ASIA", "ZZZZ9999", 2), "an AWS access key id"),
            (token("xoxb-", "1234-", 4), "a Slack token"),
            (token("xoxp-", "ab12-", 4), "a Slack token"),
            (token("xoxa-", "ab12-", 4), "a Slack token"),
            (token("xoxr-", "ab12-", 4), "a Slack token"),
            (token("npm_", "aB3d", 9), "an npm token"),
            (token("pypi-", "AgEIcHlwaS", 6), "a PyPI token"),
            (token("sk_live_", "aB3d", 6), "a Stripe key"),
            (token("AIza", "Sy-Ab_12345", 3) + "12", "a Google API key"),
        ];
        for (value, kind) in cases {
            assert_eq!(
                rule("SOME_SETTING", &value),
                Some(Rule::Token(kind)),
                "{value}"
            );
        }
        // AWS key ids are exactly 16 characters after the prefix.
        assert_eq!(rule("X", &token("AKIA", "ABCD1234", 3)), None);
        assert_eq!(rule("X", "AKIAPROBLEM"), None);
    }

    #[test]
    fn webhook_urls() {
        let slack = format!(
            "https://hooks.slack.com/services/T000/B000/{}",
            "x".repeat(24)
        );
        assert_eq!(
            rule("NOTIFY", &slack),
            Some(Rule::Token("a Slack webhook URL"))
        );
        let discord = "https://discord.com/api/webhooks/123/abc";
        assert_eq!(
            rule("NOTIFY", discord),
            Some(Rule::Token("a Discord webhook URL"))
        );
    }

    #[test]
    fn jwt_shape() {
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{}", "s1g-_".repeat(5));
        assert_eq!(
            rule("SESSIONDATA", &jwt),
            Some(Rule::Token("a JSON web token"))
        );
        let header = format!("Bearer {jwt}");
        assert_eq!(
            rule("EXTRA_HEADER", &header),
            Some(Rule::Token("a JSON web token"))
        );
        // Two parts only, or base64 that is not JSON: not a JWT.
        assert_eq!(rule("X", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0"), None);
        assert_eq!(rule("X", "abc.def.ghi"), None);
    }

    #[test]
    fn private_key_blocks() {
        for kind in [
            "RSA PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "PRIVATE KEY",
            "EC PRIVATE KEY",
        ] {
            let value = format!("-----BEGIN {kind}-----\nMIIB\n-----END {kind}-----\n");
            assert_eq!(rule("DEPLOY", &value), Some(Rule::Token("a private key")));
        }
        let public = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n";
        assert_eq!(rule("DEPLOY", public), None);
    }

    #[test]
    fn random_values_of_secret_sounding_names() {
        let random = "Zx81kQp0VvT4mN2rLs9aYw7c";
        for name in [
            "KEY_MATERIAL",
            "MY_PASS",
            "HMAC",
            "COOKIE_SALT_V2",
            "SIG_V4",
            "LICENSE",
        ] {
            let expect = if looks_secret(OsStr::new(name)) {
                Rule::Name
            } else {
                Rule::RandomValue
            };
            assert_eq!(rule(name, random), Some(expect), "{name}");
        }
        // The same words with ordinary values stay.
        assert_eq!(rule("TEST_PASS_COUNT", "3"), None);
        assert_eq!(
            rule("KEY_PATH", "/home/u/.ssh/id_ed25519_2024_backup"),
            None
        );
        assert_eq!(rule("LICENSE", "MIT OR Apache-2.0"), None);
        assert_eq!(rule("KEYBOARD", random), None);
        // A random value under a name without such a word stays.
        assert_eq!(rule("BUILD_ID", random), None);
        // PWD is the working directory.
        assert_eq!(rule("PWD", "/tmp/a1b2c3d4e5f6g7h8i9"), None);
    }

    #[test]
    fn no_false_positives_on_ordinary_variables() {
        let ordinary = [
            (
                "PATH",
                "/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin",
            ),
            ("HOME", "/root"),
            ("PWD", "/work/main"),
            ("OLDPWD", "/work"),
            ("CARGO_HOME", "/root/.cargo"),
            ("CARGO_MANIFEST_DIR", "/work/main/cargo-rrtest"),
            ("CARGO_PKG_AUTHORS", "Jane Doe <jane@example.com>"),
            ("CARGO_PKG_VERSION", "0.1.0"),
            ("CARGO_TARGET_DIR", "/work/main/target"),
            ("RUST_LOG", "cargo_rrtest=debug,info"),
            ("RUST_BACKTRACE", "1"),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm-256color"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_WORKSPACE", "/home/runner/work/x/x"),
            ("GITHUB_SHA", "3f786850e387550fdab836ed7e6dc881de23001b"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "owner/repo"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_TEMP", "/home/runner/work/_temp"),
            ("COMMIT", "3f786850e387550fdab836ed7e6dc881de23001b"),
            ("REQUEST_ID", "123e4567-e89b-12d3-a456-426614174000"),
            (
                "LS_COLORS",
                "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35",
            ),
            ("HTTP_PROXY", "http://proxy.example:3128"),
            ("KEYBOARD", "us"),
            ("GIT_ASKPASS", "/usr/lib/git-core/git-gui--askpass"),
            ("RRTEST_ATTEMPT", "1"),
        ];
        for (name, value) in ordinary {
            assert_eq!(rule(name, value), None, "{name}={value}");
        }
    }

    #[test]
    fn pass_env_keeps_one() {
        let vars = [
            (OsStr::new("PATH"), OsStr::new("/bin")),
            (OsStr::new("GITHUB_TOKEN"), OsStr::new("x")),
            (OsStr::new("DB_PASSWORD"), OsStr::new("x")),
            (
                OsStr::new("DATABASE_URL"),
                OsStr::new("postgres://u:p@h/db"),
            ),
        ];
        let removed = to_remove(vars, &["DB_PASSWORD".into(), "DATABASE_URL".into()]);
        assert_eq!(
            removed,
            vec![Removed {
                name: "GITHUB_TOKEN".into(),
                rule: Rule::Name
            }]
        );
    }

    #[test]
    fn filter_env_keeps_order_and_reports_names() {
        let gh = token("ghp_", "aB3", 12);
        let env: Vec<OsString> = [
            "PATH=/bin".to_string(),
            "DATABASE_URL=postgres://u:hunter2@h/db".into(),
            "LANG=C".into(),
            format!("BUILD_INFO={gh}"),
            "EMPTY=".into(),
            "NOEQUALS".into(),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let (kept, removed) = filter_env(env, &[]);
        assert_eq!(kept, ["PATH=/bin", "LANG=C", "EMPTY=", "NOEQUALS"]);
        let names: Vec<_> = removed.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["BUILD_INFO", "DATABASE_URL"]);
        assert_eq!(removed[0].rule, Rule::Token("a GitHub token"));
        assert_eq!(removed[1].rule, Rule::UrlPassword);
    }

    #[test]
    fn argv_tokens_are_warned_about_without_their_value() {
        let gh = token("ghp_", "aB3", 12);
        let argv: Vec<OsString> = [
            "prog",
            "--exact",
            &format!("--token={gh}"),
            "postgres://u:pw@h/d",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let warnings = argv_warnings(&argv);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("argument 2 ") && warnings[0].contains("a GitHub token"));
        assert!(
            warnings[1].starts_with("argument 3 ") && warnings[1].contains("a URL with a password")
        );
        assert!(warnings
            .iter()
            .all(|w| !w.contains(&gh) && !w.contains("pw@")));
        assert!(argv_warnings(&["prog".into(), "--nocapture".into()]).is_empty());
    }

    #[test]
    fn paths_to_hide_resolves_and_needs_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path();
        std::fs::write(home.join(".netrc"), "machine h login u password p").expect("write");
        std::fs::create_dir(home.join(".aws")).expect("mkdir");
        std::fs::write(home.join("real"), "x").expect("write");
        std::os::unix::fs::symlink(home.join("real"), home.join("link")).expect("symlink");
        let (hide, missing) = paths_to_hide(
            &["link".into(), "nope".into(), home.join(".netrc")],
            true,
            home,
            Some(home),
            true,
        )
        .expect("root may hide");
        let real = home.canonicalize().expect("canonical");
        assert_eq!(
            hide,
            [real.join("real"), real.join(".netrc"), real.join(".aws")]
        );
        assert_eq!(missing, [home.join("nope")]);
        // Nothing to hide needs no root; something to hide does.
        assert_eq!(
            paths_to_hide(&[], false, home, None, false),
            Ok((vec![], vec![]))
        );
        let err = paths_to_hide(&["link".into()], false, home, None, false).unwrap_err();
        assert!(err.contains("need root"), "{err}");
        let err = paths_to_hide(&[], true, home, None, true).unwrap_err();
        assert!(err.contains("HOME is not set"), "{err}");
    }
}
