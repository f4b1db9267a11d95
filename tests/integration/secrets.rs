//! Credentials stay out of traces made by `cargo-rrtest record`
//! (docs/secrets.md): variables that look like credentials by name or by
//! value are removed before the program starts and named (never shown) in
//! the header and by `info`; `--keep-env` and `--pass-env` keep them; an
//! argument carrying a token is warned about; `--hide-path` makes a file or
//! directory read as empty for the recorded program, and the replay agrees.
//! (The harness's side, archives included: `product::no_credentials_leak`.)

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Run, TrialDir};

/// This area's trials.
pub fn trials() -> Vec<Trial> {
    let ignored = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    let not_root = !is_root();
    vec![
        Trial::test(
            "secrets::record_removes_credentials_by_name_and_value",
            record_removes_credentials_by_name_and_value,
        )
        .with_ignored_flag(ignored),
        Trial::test(
            "secrets::keep_env_and_pass_env_keep_them",
            keep_env_and_pass_env_keep_them,
        )
        .with_ignored_flag(ignored),
        Trial::test(
            "secrets::an_argument_with_a_token_is_warned_about",
            an_argument_with_a_token_is_warned_about,
        )
        .with_ignored_flag(ignored),
        Trial::test(
            "secrets::hidden_paths_read_as_empty_in_record_and_replay",
            hidden_paths_read_as_empty_in_record_and_replay,
        )
        .with_ignored_flag(ignored || not_root),
        Trial::test(
            "secrets::hide_path_is_refused_without_root",
            hide_path_is_refused_without_root,
        )
        .with_ignored_flag(not_root || which("setpriv").is_none()),
    ]
}

/// The database URL of the brief: its password must not reach a trace.
const DATABASE_URL: &str = "postgres://u:hunter2@h/db";

/// A GitHub token of the real shape (built here so the source holds none).
fn github_token() -> String {
    format!("ghp_{}", "rrTEST0fake9".repeat(3))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// `cargo-rrtest record FLAGS -o TRACE -- PROGRAM ARGS` in `work`, with
/// `env` added to ours.
fn record(
    work: &Path,
    flags: &[&str],
    trace: &Path,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Run, Failed> {
    let mut cmd = Command::new(common::cargo_rrtest());
    cmd.arg("record")
        .args(flags)
        .arg("-o")
        .arg(trace)
        .arg("--")
        .arg(program)
        .args(args)
        .current_dir(work)
        .env("TMPDIR", work)
        .envs(env.iter().copied());
    run::run(&mut cmd)
}

/// Every file under `dir`, and the decompressed form of each `.zst`.
fn blobs(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Failed> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let raw = std::fs::read(&path)?;
            let name = path.display().to_string();
            if name.ends_with(".zst") {
                let mut plain = Vec::new();
                zstd::stream::read::Decoder::new(&raw[..])?.read_to_end(&mut plain)?;
                out.push((format!("{name} (decompressed)"), plain));
            }
            out.push((name, raw));
        }
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `info --json TRACE` as JSON, and `info TRACE` as text.
fn info(trace: &Path) -> Result<(serde_json::Value, String), Failed> {
    let json = run::info_json(trace)?;
    json.expect_code(0)?;
    let value = serde_json::from_slice(&json.stdout)
        .map_err(|e| format!("info --json printed no JSON ({e})\n{}", json.describe()))?;
    let text = run::run(Command::new(common::cargo_rrtest()).arg("info").arg(trace))?;
    text.expect_code(0)?;
    Ok((value, text.stdout_text()))
}

fn header_env(trace: &Path) -> Result<Vec<String>, Failed> {
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trace.join("header.json"))?)?;
    Ok(header["env"]
        .as_array()
        .ok_or("header has no env")?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect())
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn record_removes_credentials_by_name_and_value() -> Result<(), Failed> {
    let hello = build::c_fixture(CBuild::pie("hello"))?;
    let dir = TrialDir::new("secrets-record-removes")?;
    let work = dir.sub("work")?;
    let trace = dir.path.join("trace");
    let token = github_token();
    let env = [
        ("DATABASE_URL", DATABASE_URL),
        // An innocent name: only the value gives it away.
        ("BUILD_LABEL", token.as_str()),
        ("RRTEST_PLAIN_SETTING", "kept-as-is"),
    ];
    let rec = record(&work, &[], &trace, &hello, &[], &env)?;
    rec.expect_code(0)?;
    check!(
        rec.stdout_text().contains("hello from a recorded program"),
        "{}",
        rec.describe()
    );
    let all = blobs(&trace)?;
    check!(
        all.iter().any(|(n, _)| n.ends_with("header.json"))
            && all
                .iter()
                .any(|(n, _)| n.ends_with("events.zst (decompressed)")),
        "nothing to check: {:?}",
        all.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &all {
        for secret in [DATABASE_URL, "hunter2", token.as_str()] {
            check!(
                !contains(bytes, secret.as_bytes()),
                "{secret:?} found in {name}"
            );
        }
    }
    // The ordinary variable reached the program; the verification replay passed.
    check!(
        header_env(&trace)?
            .iter()
            .any(|kv| kv == "RRTEST_PLAIN_SETTING=kept-as-is"),
        "the ordinary variable is missing from the header"
    );
    crate::recorder::expect_verified(&trace)?;
    let (json, text) = info(&trace)?;
    let removed = names(&json["env_removed"]);
    for name in ["BUILD_LABEL", "DATABASE_URL"] {
        check!(
            removed.iter().any(|n| n == name),
            "info --json env_removed lacks {name}: {removed:?}"
        );
    }
    check!(
        !removed.iter().any(|n| n == "RRTEST_PLAIN_SETTING"),
        "{removed:?}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("env removed:"))
        .ok_or_else(|| format!("info prints no `env removed:` line:\n{text}"))?;
    check!(
        line.contains("BUILD_LABEL") && line.contains("DATABASE_URL"),
        "{line}"
    );
    dir.finish();
    Ok(())
}

fn keep_env_and_pass_env_keep_them() -> Result<(), Failed> {
    let hello = build::c_fixture(CBuild::pie("hello"))?;
    let dir = TrialDir::new("secrets-keep-env")?;
    let work = dir.sub("work")?;
    let token = github_token();
    let env = [
        ("DATABASE_URL", DATABASE_URL),
        ("BUILD_LABEL", token.as_str()),
    ];
    let url_kv = format!("DATABASE_URL={DATABASE_URL}");
    let token_kv = format!("BUILD_LABEL={token}");

    let kept = dir.path.join("kept");
    record(&work, &["--keep-env"], &kept, &hello, &[], &env)?.expect_code(0)?;
    let header = header_env(&kept)?;
    check!(
        header.contains(&url_kv) && header.contains(&token_kv),
        "--keep-env dropped a variable"
    );
    let (json, _) = info(&kept)?;
    check!(
        names(&json["env_removed"]).is_empty(),
        "--keep-env removed {}",
        json["env_removed"]
    );

    // As the harness records (it removed variables itself): the names it
    // gives reach the header although nothing is removed here.
    let told = dir.path.join("told");
    record(
        &work,
        &["--keep-env", "--env-removed", "RRTEST_REMOVED_BY_CALLER"],
        &told,
        &hello,
        &[],
        &env,
    )?
    .expect_code(0)?;
    let (json, _) = info(&told)?;
    check!(
        names(&json["env_removed"]) == ["RRTEST_REMOVED_BY_CALLER"],
        "{}",
        json["env_removed"]
    );

    let passed = dir.path.join("passed");
    record(
        &work,
        &["--pass-env", "DATABASE_URL"],
        &passed,
        &hello,
        &[],
        &env,
    )?
    .expect_code(0)?;
    let header = header_env(&passed)?;
    check!(
        header.contains(&url_kv),
        "--pass-env DATABASE_URL dropped it"
    );
    check!(
        !header.iter().any(|kv| kv.starts_with("BUILD_LABEL=")),
        "BUILD_LABEL kept without --pass-env"
    );
    let (json, _) = info(&passed)?;
    let removed = names(&json["env_removed"]);
    check!(
        removed.iter().any(|n| n == "BUILD_LABEL") && !removed.iter().any(|n| n == "DATABASE_URL"),
        "{removed:?}"
    );
    dir.finish();
    Ok(())
}

fn an_argument_with_a_token_is_warned_about() -> Result<(), Failed> {
    let hello = build::c_fixture(CBuild::pie("hello"))?;
    let dir = TrialDir::new("secrets-argv-warning")?;
    let work = dir.sub("work")?;
    let token = github_token();
    let arg = format!("--token={token}");
    let rec = record(
        &work,
        &[],
        &dir.path.join("trace"),
        &hello,
        &["--plain", &arg],
        &[],
    )?;
    rec.expect_code(0)?;
    let stderr = rec.stderr_text();
    check!(
        stderr.contains("warning: argument 2 of the command contains a GitHub token")
            && !stderr.contains("argument 1 "),
        "{}",
        rec.describe()
    );
    check!(!stderr.contains(&token), "the warning shows the token");
    dir.finish();
    Ok(())
}

fn hidden_paths_read_as_empty_in_record_and_replay() -> Result<(), Failed> {
    let cat = which("cat").ok_or("no cat in PATH")?;
    let dir = TrialDir::new("secrets-hide-path")?;
    let work = dir.sub("work")?;
    let secret = "rrtest-hidden-file-content-0001";
    let file = work.join("netrc");
    std::fs::write(&file, format!("machine h login u password {secret}\n"))?;
    let sub = work.join("aws");
    std::fs::create_dir(&sub)?;
    std::fs::write(sub.join("credentials"), secret)?;

    // Unhidden, the program reads the file (the check can fail).
    let plain = record(&work, &[], &dir.path.join("plain"), &cat, &["netrc"], &[])?;
    plain.expect_code(0)?;
    check!(plain.stdout_text().contains(secret), "{}", plain.describe());

    let trace = dir.path.join("hidden");
    let hidden = record(
        &work,
        &["--hide-path", "netrc", "--hide-path", "aws"],
        &trace,
        &cat,
        &["netrc", "aws/credentials"],
        &[],
    )?;
    // The file reads as empty; the directory is empty.
    hidden.expect_code(1)?;
    check!(hidden.stdout.is_empty(), "{}", hidden.describe());
    check!(
        hidden
            .stderr_text()
            .contains("aws/credentials: No such file or directory"),
        "{}",
        hidden.describe()
    );
    // Only for the program: the files are still there for everyone else.
    check!(
        std::fs::read_to_string(&file)?.contains(secret),
        "file changed"
    );
    for (name, bytes) in blobs(&trace)? {
        check!(
            !contains(&bytes, secret.as_bytes()),
            "the hidden content is in {name}"
        );
    }
    let replay = run::replay_in(&trace, None)?;
    replay.expect_code(1)?;
    check!(
        replay.stdout.is_empty() && replay.stderr == hidden.stderr,
        "replay differs from the recording\n{}",
        replay.describe()
    );
    let (json, text) = info(&trace)?;
    let want: Vec<String> = [file.canonicalize()?, sub.canonicalize()?]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    check!(
        names(&json["hidden_paths"]) == want,
        "hidden_paths {} (want {want:?})",
        json["hidden_paths"]
    );
    check!(
        text.lines()
            .any(|l| l.starts_with("hidden paths:") && l.contains(&want[0])),
        "{text}"
    );
    dir.finish();
    Ok(())
}

fn hide_path_is_refused_without_root() -> Result<(), Failed> {
    let setpriv = which("setpriv").ok_or("no setpriv")?;
    let dir = TrialDir::new("secrets-hide-path-not-root")?;
    let mut cmd = Command::new(setpriv);
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(common::cargo_rrtest())
    .args(["record", "--hide-path", "/etc/hostname", "-o"])
    .arg(dir.path.join("trace"))
    .args(["--", "/bin/true"])
    .current_dir("/");
    let r = run::run(&mut cmd)?;
    r.expect_code(2)?;
    check!(
        r.stderr_text().contains("need root") && !dir.path.join("trace").exists(),
        "{}",
        r.describe()
    );
    dir.finish();
    Ok(())
}
