//! Fitting the tools users already have:
//!
//! - The GitHub Action (`action.yml`): its steps are read with a small
//!   reader for the YAML this file is written in, and run as the runner
//!   would (`bash -eo pipefail` per `run:` step, `${{ }}` and `if:`
//!   evaluated, `GITHUB_OUTPUT`/`GITHUB_PATH` honoured; `uses:` steps
//!   recorded, not run) against the demo workspace, as two legs of a
//!   matrix. The artifacts must be where the upload steps look, under
//!   names that differ per leg, and the uploaded folder, zipped as
//!   upload-artifact zips it, must replay.
//! - `--message-format libtest-json-plus`: every stdout line parses, and
//!   the events tell the demo's outcomes.
//! - `--nextest-profile`: retries, the terminating slow-timeout and
//!   test-threads come from `.config/nextest.toml`; the command line wins;
//!   a missing profile or file is a usage error.
//! - The release recipe (`scripts/build-release.sh`): the archive, its
//!   checksum and the names `[package.metadata.binstall]` expects; the
//!   binary runs, records and replays in the Debian 13 root (no Rust
//!   toolchain there). The chroot trial is ignored when the root is missing.
//! - `rrtest-report` packages for crates.io (`cargo package`, offline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::common;
use crate::ecosystem::write_zip;
use crate::harness::{copy_demo_target, copy_tree, demo_manifest, report_of, rrtest, tests_by_key};
use crate::product::replay;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, TrialDir};

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    let no_recording = run::recording_unavailable();
    let chroot = crate::portable::chroot_unavailable();
    if let Some(why) = &chroot {
        eprintln!("ecosystem2: the release binary's chroot trial is ignored: {why}");
    }
    vec![
        Trial::test("ecosystem2::action::yaml_reader", yaml_reader),
        Trial::test("ecosystem2::action::matrix_runs_and_uploads", action_matrix)
            .with_ignored_flag(no_recording.is_some()),
        Trial::test(
            "ecosystem2::action::installs_the_release_binary",
            action_installs_release,
        )
        .with_ignored_flag(no_recording.is_some()),
        Trial::test("ecosystem2::libtest_json_lines", libtest_json_lines)
            .with_ignored_flag(no_recording.is_some()),
        Trial::test("ecosystem2::nextest_profile", nextest_profile),
        Trial::test(
            "ecosystem2::release::archive_checksum_and_binstall_names",
            release_archive,
        ),
        Trial::test(
            "ecosystem2::release::chroot::runs_without_rust",
            release_runs_without_rust,
        )
        .with_ignored_flag(chroot.is_some() || no_recording.is_some()),
        Trial::test("ecosystem2::report_crate_packages", report_crate_packages),
    ]
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

// ---------------------------------------------------------------------------
// A reader for the YAML subset action.yml is written in: block mappings and
// sequences by indentation, plain and quoted scalars, `|` block scalars,
// comments. Anything else (flow collections, anchors, `>` folding) is an
// error, so the action cannot drift into YAML this reader gets wrong.

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Str(String),
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Yaml::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }
}

struct YamlParser {
    lines: Vec<String>,
    i: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

impl YamlParser {
    fn parse(text: &str) -> Result<Yaml, String> {
        if text.contains('\t') {
            return Err("tabs are not YAML indentation".into());
        }
        let mut p = YamlParser {
            lines: text.lines().map(str::to_owned).collect(),
            i: 0,
        };
        let Some((_, indent)) = p.next_significant() else {
            return Ok(Yaml::Map(Vec::new()));
        };
        let doc = p.block(indent)?;
        if let Some((idx, _)) = p.next_significant() {
            return Err(format!("line {}: unexpected `{}`", idx + 1, p.lines[idx]));
        }
        Ok(doc)
    }

    /// The next line that is not blank or a comment: index and indent.
    fn next_significant(&mut self) -> Option<(usize, usize)> {
        while self.i < self.lines.len() {
            let t = self.lines[self.i].trim();
            if t.is_empty() || t.starts_with('#') {
                self.i += 1;
                continue;
            }
            return Some((self.i, indent_of(&self.lines[self.i])));
        }
        None
    }

    fn block(&mut self, indent: usize) -> Result<Yaml, String> {
        let (idx, _) = self.next_significant().ok_or("a block is missing")?;
        let t = self.lines[idx].trim_start();
        if t == "-" || t.starts_with("- ") {
            self.seq(indent)
        } else {
            self.map(indent)
        }
    }

    fn seq(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut items = Vec::new();
        while let Some((idx, ind)) = self.next_significant() {
            let t = self.lines[idx].trim_start().to_owned();
            if ind != indent || !(t == "-" || t.starts_with("- ")) {
                if ind > indent {
                    return Err(format!("line {}: bad indentation", idx + 1));
                }
                break;
            }
            let rest = t[1..].trim_start();
            if rest.is_empty() {
                self.i = idx + 1;
                let (_, inner) = self.next_significant().ok_or("an empty item")?;
                items.push(self.block(inner)?);
            } else if is_map_entry(rest) {
                // `- key: value`: the item is a mapping at the key's column.
                let mut line = self.lines[idx].clone();
                line.replace_range(indent..indent + 1, " ");
                let inner = indent_of(&line);
                self.lines[idx] = line;
                items.push(self.map(inner)?);
            } else {
                items.push(Yaml::Str(scalar(rest, idx)?));
                self.i = idx + 1;
            }
        }
        Ok(Yaml::Seq(items))
    }

    fn map(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        while let Some((idx, ind)) = self.next_significant() {
            if ind < indent {
                break;
            }
            if ind > indent {
                return Err(format!("line {}: bad indentation", idx + 1));
            }
            let t = self.lines[idx].trim_start().to_owned();
            if t.starts_with("- ") {
                break;
            }
            let (key, value) = split_entry(&t)
                .ok_or_else(|| format!("line {}: not `key: value`: `{t}`", idx + 1))?;
            if entries.iter().any(|(k, _)| k == key) {
                return Err(format!("line {}: key `{key}` repeated", idx + 1));
            }
            self.i = idx + 1;
            let value = if value.is_empty() {
                match self.next_significant() {
                    Some((_, inner)) if inner > indent => self.block(inner)?,
                    _ => Yaml::Str(String::new()),
                }
            } else if value == "|" || value == "|-" {
                self.block_scalar(indent, value == "|")
            } else if value.starts_with(['{', '[', '&', '*', '>', '!']) {
                return Err(format!(
                    "line {}: `{value}`: this reader takes block YAML only",
                    idx + 1
                ));
            } else {
                Yaml::Str(scalar(value, idx)?)
            };
            entries.push((key.to_owned(), value));
        }
        Ok(Yaml::Map(entries))
    }

    /// The lines of a `|` scalar under a key at `indent`.
    fn block_scalar(&mut self, indent: usize, keep_newline: bool) -> Yaml {
        let mut body: Vec<&str> = Vec::new();
        let mut block_indent = None;
        while self.i < self.lines.len() {
            let line = &self.lines[self.i];
            if line.trim().is_empty() {
                body.push("");
                self.i += 1;
                continue;
            }
            let ind = indent_of(line);
            if ind <= indent {
                break;
            }
            let bi = *block_indent.get_or_insert(ind);
            body.push(if ind >= bi {
                &line[bi..]
            } else {
                line.trim_start()
            });
            self.i += 1;
        }
        while body.last() == Some(&"") {
            body.pop();
        }
        let mut text = body.join("\n");
        if keep_newline {
            text.push('\n');
        }
        Yaml::Str(text)
    }
}

/// Whether `s` (after `- `) is a `key: value` or `key:` entry.
fn is_map_entry(s: &str) -> bool {
    !s.starts_with(['"', '\'']) && split_entry(s).is_some()
}

/// `key: value` (or `key:`) -> (key, value); the key is plain.
fn split_entry(s: &str) -> Option<(&str, &str)> {
    let (key, value) = match s.find(": ") {
        Some(i) => (&s[..i], s[i + 2..].trim()),
        None => (s.strip_suffix(':')?, ""),
    };
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    plain.then_some((key, value))
}

/// A scalar: quoted (`'..'` with `''`, `".."` with `\"` and `\\`) or plain
/// up to a ` #` comment.
fn scalar(s: &str, idx: usize) -> Result<String, String> {
    let bad = || format!("line {}: bad scalar `{s}`", idx + 1);
    if let Some(body) = s.strip_prefix('\'') {
        let end = {
            let mut i = 0;
            let b = body.as_bytes();
            loop {
                match body[i..].find('\'') {
                    None => return Err(bad()),
                    Some(j) if b.get(i + j + 1) == Some(&b'\'') => i += j + 2,
                    Some(j) => break i + j,
                }
            }
        };
        let rest = body[end + 1..].trim();
        if !(rest.is_empty() || rest.starts_with('#')) {
            return Err(bad());
        }
        return Ok(body[..end].replace("''", "'"));
    }
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        loop {
            match chars.next() {
                None => return Err(bad()),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    _ => return Err(bad()),
                },
                Some(c) => out.push(c),
            }
        }
        let rest = chars.as_str().trim();
        if !(rest.is_empty() || rest.starts_with('#')) {
            return Err(bad());
        }
        return Ok(out);
    }
    let plain = match s.find(" #") {
        Some(i) => &s[..i],
        None => s,
    };
    Ok(plain.trim().to_owned())
}

// ---------------------------------------------------------------------------
// Expressions: `${{ a.b.c }}` lookups, string literals, `==`, `!=`, `&&`,
// `||`, parentheses. What the action uses; anything else is an error.

type Context = BTreeMap<String, String>;

fn lookup(ctx: &Context, name: &str) -> Result<String, String> {
    match ctx.get(name) {
        Some(v) => Ok(v.clone()),
        // Outputs of skipped steps, or not set: empty, as on GitHub.
        None if name.starts_with("steps.") => Ok(String::new()),
        None => Err(format!("`{name}` is not in the context this test gives")),
    }
}

fn tokens(expr: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            i += 1;
        } else if ["&&", "||", "==", "!="]
            .iter()
            .any(|op| expr[i..].starts_with(op))
        {
            out.push(expr[i..i + 2].to_owned());
            i += 2;
        } else if c == '\'' {
            let end = expr[i + 1..]
                .find('\'')
                .ok_or_else(|| format!("unterminated string in `{expr}`"))?;
            out.push(expr[i..i + end + 2].to_owned());
            i += end + 2;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let len = expr[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')))
                .unwrap_or(expr.len() - i);
            out.push(expr[i..i + len].to_owned());
            i += len;
        } else {
            return Err(format!("`{c}` in `{expr}` is not supported here"));
        }
    }
    Ok(out)
}

struct Eval<'a> {
    toks: Vec<String>,
    pos: usize,
    ctx: &'a Context,
}

impl Eval<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }
    fn or(&mut self) -> Result<String, String> {
        let mut v = self.and()?;
        while self.peek() == Some("||") {
            self.pos += 1;
            let r = self.and()?;
            v = if truthy(&v) { v } else { r };
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<String, String> {
        let mut v = self.cmp()?;
        while self.peek() == Some("&&") {
            self.pos += 1;
            let r = self.cmp()?;
            v = if truthy(&v) { r } else { v };
        }
        Ok(v)
    }
    fn cmp(&mut self) -> Result<String, String> {
        let l = self.primary()?;
        match self.peek() {
            Some(op @ ("==" | "!=")) => {
                let eq = op == "==";
                self.pos += 1;
                let r = self.primary()?;
                Ok(((l == r) == eq).to_string())
            }
            _ => Ok(l),
        }
    }
    fn primary(&mut self) -> Result<String, String> {
        let t = self.peek().ok_or("an expression ends early")?.to_owned();
        self.pos += 1;
        if t == "(" {
            let v = self.or()?;
            if self.peek() != Some(")") {
                return Err("`)` missing".into());
            }
            self.pos += 1;
            return Ok(v);
        }
        if let Some(s) = t.strip_prefix('\'') {
            return Ok(s.trim_end_matches('\'').to_owned());
        }
        if t == "true" || t == "false" {
            return Ok(t);
        }
        lookup(self.ctx, &t)
    }
}

fn truthy(v: &str) -> bool {
    !v.is_empty() && v != "false"
}

fn eval(expr: &str, ctx: &Context) -> Result<String, String> {
    let mut e = Eval {
        toks: tokens(expr)?,
        pos: 0,
        ctx,
    };
    let v = e.or()?;
    if e.pos != e.toks.len() {
        return Err(format!("`{expr}`: unexpected `{}`", e.toks[e.pos]));
    }
    Ok(v)
}

/// `s` with every `${{ expr }}` replaced by its value.
fn expand(s: &str, ctx: &Context) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("`${{{{` without `}}}}` in `{s}`"))?;
        out.push_str(&eval(&rest[start + 3..start + end], ctx)?);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Running the composite action's steps.

/// What a `uses:` upload step would upload.
#[derive(Debug, Clone)]
struct Upload {
    name: String,
    path: PathBuf,
}

#[derive(Debug, Default)]
struct ActionRun {
    /// Step name -> its stdout and stderr.
    logs: Vec<(String, String)>,
    uploads: Vec<Upload>,
    /// The action's outputs.
    outputs: BTreeMap<String, String>,
    /// The exit status of the step that failed the action, if one did.
    failed: Option<i32>,
}

/// A matrix leg of the job that uses the action.
struct Leg<'a> {
    inputs: &'a [(&'a str, &'a str)],
    env: &'a [(&'a str, String)],
    job_index: usize,
    job_total: usize,
    /// `github.*` values other than those of `uses: ./`.
    github: &'a [(&'a str, String)],
    /// Stop after the step with this id.
    stop_after: Option<&'a str>,
}

fn run_action(action: &Yaml, leg: &Leg<'_>, dir: &Path) -> Result<ActionRun, Failed> {
    let workspace = common::repo_root();
    let temp = dir.join("runner-temp");
    std::fs::create_dir_all(&temp)?;
    let summary = dir.join("step-summary.md");
    let github_path = dir.join("github-path");
    std::fs::write(&github_path, "")?;

    let mut ctx = Context::new();
    for (name, spec) in action.get("inputs").ok_or("no inputs")?.entries() {
        ctx.insert(
            format!("inputs.{name}"),
            spec.str("default").unwrap_or("").to_owned(),
        );
    }
    for (k, v) in leg.inputs {
        let key = format!("inputs.{k}");
        check!(ctx.contains_key(&key), "the action has no input `{k}`");
        ctx.insert(key, (*v).to_owned());
    }
    // Used as `uses: ./` after a checkout: no repository or ref of its own.
    for (k, v) in [
        ("github.action_path", utf8(workspace).to_owned()),
        ("github.action_ref", String::new()),
        ("github.action_repository", String::new()),
        ("github.server_url", "https://github.com".to_owned()),
        ("github.job", "test".to_owned()),
        ("runner.os", "Linux".to_owned()),
        ("runner.arch", "X64".to_owned()),
        ("runner.temp", utf8(&temp).to_owned()),
        ("strategy.job-index", leg.job_index.to_string()),
        ("strategy.job-total", leg.job_total.to_string()),
    ] {
        ctx.insert(k.to_owned(), v);
    }
    for (k, v) in leg.github {
        ctx.insert(format!("github.{k}"), v.clone());
    }

    let runs = action.get("runs").ok_or("no runs")?;
    check!(
        runs.str("using") == Some("composite"),
        "not a composite action"
    );
    let Some(Yaml::Seq(steps)) = runs.get("steps") else {
        return Err("no steps".into());
    };
    let mut result = ActionRun::default();
    // The job's PATH (the leg's, else this process's); GITHUB_PATH lines go
    // in front of it for the later steps.
    let base_path = leg
        .env
        .iter()
        .find(|(k, _)| *k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
    for (n, step) in steps.iter().enumerate() {
        let name = step.str("name").unwrap_or("(unnamed)").to_owned();
        if let Some(cond) = step.str("if") {
            let cond = cond
                .trim()
                .strip_prefix("${{")
                .and_then(|c| c.strip_suffix("}}"))
                .unwrap_or(cond);
            if !truthy(&eval(cond, &ctx).map_err(|e| format!("step {name}: if: {e}"))?) {
                result.logs.push((name, "(skipped)".into()));
                continue;
            }
        }
        let mut outputs: BTreeMap<String, String> = BTreeMap::new();
        if let Some(script) = step.str("run") {
            check!(
                !script.contains("${{"),
                "step {name}: `${{{{` inside a run: script (pass it through env:)"
            );
            check!(
                step.str("shell") == Some("bash"),
                "step {name}: a composite step needs `shell: bash`"
            );
            let file = temp.join(format!("step-{n}.sh"));
            std::fs::write(&file, script)?;
            let out_file = temp.join(format!("step-{n}.out"));
            std::fs::write(&out_file, "")?;
            let cwd = match step.str("working-directory") {
                Some(wd) => workspace.join(expand(wd, &ctx)?),
                None => workspace.to_path_buf(),
            };
            let added: Vec<String> = std::fs::read_to_string(&github_path)?
                .lines()
                .rev()
                .map(str::to_owned)
                .collect();
            let mut path = added.join(":");
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(&base_path);
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&file)
                .current_dir(&cwd)
                .env("PATH", path)
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_OUTPUT", &out_file)
                .env("GITHUB_PATH", &github_path)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("GITHUB_WORKSPACE", workspace)
                .env("GITHUB_JOB", "test")
                .env("GITHUB_RUN_ID", "4242")
                .env("GITHUB_REPOSITORY", "owner/app")
                .env("GITHUB_SERVER_URL", "https://github.com")
                .env("RUNNER_TEMP", &temp)
                .env("RUNNER_OS", "Linux")
                .env("RUST_BACKTRACE", "0")
                .env("NO_COLOR", "1");
            for (k, v) in leg.env.iter().filter(|(k, _)| *k != "PATH") {
                cmd.env(k, v);
            }
            if let Some(env) = step.get("env") {
                for (k, v) in env.entries() {
                    let Yaml::Str(v) = v else {
                        return Err(format!("step {name}: env {k} is not a string").into());
                    };
                    cmd.env(k, expand(v, &ctx)?);
                }
            }
            let ran = run::run(&mut cmd)?;
            result.logs.push((
                name.clone(),
                format!("{}{}", ran.stdout_text(), ran.stderr_text()),
            ));
            outputs = read_outputs(&std::fs::read_to_string(&out_file)?)?;
            if ran.code() != 0 {
                result.failed = Some(ran.code());
                break;
            }
        } else if let Some(uses) = step.str("uses") {
            let with = |key: &str| -> Result<String, Failed> {
                Ok(expand(
                    step.get("with").and_then(|w| w.str(key)).unwrap_or(""),
                    &ctx,
                )?)
            };
            check!(
                uses.contains('@') && uses.split('@').nth(1).is_some_and(|sha| sha.len() == 40),
                "step {name}: `{uses}` is not pinned to a full commit SHA"
            );
            if uses.starts_with("actions/cache@") {
                check!(
                    !with("path")?.is_empty() && !with("key")?.is_empty(),
                    "cache step without path or key"
                );
                outputs.insert("cache-hit".into(), String::new());
            } else if uses.starts_with("actions/upload-artifact@") {
                result.uploads.push(Upload {
                    name: with("name")?,
                    path: PathBuf::from(with("path")?),
                });
            } else {
                return Err(format!("step {name}: this test does not know `{uses}`").into());
            }
            result.logs.push((name.clone(), format!("uses {uses}")));
        } else {
            return Err(format!("step {name}: neither run nor uses").into());
        }
        if let Some(id) = step.str("id") {
            for (k, v) in outputs {
                ctx.insert(format!("steps.{id}.outputs.{k}"), v);
            }
            if leg.stop_after == Some(id) {
                break;
            }
        }
    }
    for (name, spec) in action.get("outputs").map(Yaml::entries).unwrap_or(&[]) {
        let value = spec.str("value").ok_or("an output without value")?;
        result.outputs.insert(name.clone(), expand(value, &ctx)?);
    }
    Ok(result)
}

/// A `GITHUB_OUTPUT` file: `key=value` lines and `key<<DELIM` blocks.
fn read_outputs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                match lines.next() {
                    Some(l) if l == delim => break,
                    Some(l) => value.push(l),
                    None => return Err(format!("output {k}: no closing {delim}")),
                }
            }
            out.insert(k.to_owned(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_owned(), v.to_owned());
        } else if !line.is_empty() {
            return Err(format!("GITHUB_OUTPUT line `{line}`"));
        }
    }
    Ok(out)
}

fn action_yaml() -> Result<Yaml, Failed> {
    let text = std::fs::read_to_string(common::repo_root().join("action.yml"))?;
    Ok(YamlParser::parse(&text).map_err(|e| format!("action.yml: {e}"))?)
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The action, as two legs of a matrix (`count:1/2` and `count:2/2` of
/// two demo tests, one failing), with this build's cargo-rrtest on PATH.
fn action_matrix() -> Result<(), Failed> {
    let action = action_yaml()?;
    let dir = TrialDir::new("ecosystem2::action")?;
    let target = dir.path.join("target");
    copy_demo_target(&target)?;
    let bin_dir = common::cargo_rrtest()
        .parent()
        .ok_or("cargo-rrtest has no directory")?
        .to_path_buf();
    let env = [
        ("CARGO_TARGET_DIR", utf8(&target).to_owned()),
        (
            "PATH",
            format!(
                "{}:{}",
                utf8(&bin_dir),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
    ];
    let mut names = Vec::new();
    let mut ran_tests = Vec::new();
    for (index, partition) in ["count:1/2", "count:2/2"].into_iter().enumerate() {
        let leg_dir = dir.sub(&format!("leg-{index}"))?;
        // One leg runs on one runner: nothing of the other leg's is left.
        let _ = std::fs::remove_dir_all(target.join("rrtest"));
        let inputs = [
            ("partition", partition),
            ("retries", "0"),
            ("timeout", "60"),
            ("working-directory", "fixtures/demo"),
            ("args", "--cargo-quiet checksum_matches adds_small_numbers"),
        ];
        let leg = Leg {
            inputs: &inputs,
            env: &env,
            job_index: index,
            job_total: 2,
            github: &[],
            stop_after: None,
        };
        let done = run_action(&action, &leg, &leg_dir)?;
        let logs: String = done
            .logs
            .iter()
            .map(|(n, l)| format!("--- {n}\n{l}\n"))
            .collect();
        check!(
            logs.contains("cargo-rrtest: install: present"),
            "the installed cargo-rrtest was not used:\n{logs}"
        );
        let out = |k: &str| done.outputs.get(k).cloned().unwrap_or_default();
        let traces = out("traces-artifact");
        let want = format!("rrtest-traces-test-count-{}-of-2-{index}", index + 1);
        check!(
            traces == want,
            "traces artifact `{traces}`, expected `{want}`:\n{logs}"
        );
        check!(
            out("report-artifact") == want.replace("traces", "report"),
            "report artifact `{}`",
            out("report-artifact")
        );
        names.push(traces.clone());

        // The report is where its upload step looks, and says what ran.
        let report_upload = done
            .uploads
            .iter()
            .find(|u| u.name == out("report-artifact"))
            .ok_or_else(|| format!("no report upload:\n{logs}"))?;
        let report: Value = serde_json::from_slice(&std::fs::read(&report_upload.path)?)?;
        let tests = tests_by_key(&report);
        check!(
            tests.len() == 1,
            "leg {index}: not one test: {:?}",
            tests.keys()
        );
        let (key, test) = tests.into_iter().next().ok_or("no test")?;
        ran_tests.push(key.clone());
        let failing = key.ends_with("checksum_matches");
        let code = out("exit-code");
        check!(
            code == if failing { "100" } else { "0" },
            "leg {index} ({key}): exit-code {code}:\n{logs}"
        );
        // The action fails as the run did: at its last step, with its code.
        check!(
            done.failed == failing.then_some(100),
            "leg {index}: the action ended with {:?}:\n{logs}",
            done.failed
        );
        let summary = std::fs::read_to_string(leg_dir.join("step-summary.md"))?;
        check!(
            summary.contains("cargo rrtest"),
            "leg {index}: no job summary:\n{summary}"
        );

        let archives = done
            .uploads
            .iter()
            .find(|u| u.name == traces)
            .ok_or_else(|| format!("no traces upload:\n{logs}"))?;
        if failing {
            check!(
                summary.contains(&format!("{traces}.zip")),
                "the summary does not name the artifact {traces}:\n{summary}"
            );
            // The folder the upload step takes, zipped as upload-artifact
            // zips it (paths relative to it), replays as downloaded.
            let files = files_under(&archives.path);
            check!(
                files == ["demo-core/tests__checksum_matches/attempt-1.tar.zst"],
                "uploaded archives: {files:?} in {}",
                archives.path.display()
            );
            let zip = leg_dir.join(format!("{traces}.zip"));
            let entries: Vec<(String, PathBuf)> = files
                .iter()
                .map(|f| (f.clone(), archives.path.join(f)))
                .collect();
            write_zip(&zip, &entries, false)?;
            let command = test["replay_command"].as_str().unwrap_or_default();
            check!(
                command
                    == format!(
                        "cargo rrtest replay {traces}.zip demo-core::tests::checksum_matches"
                    ),
                "replay command: {command}"
            );
            let (code, text) = replay(&leg_dir, &[&format!("{traces}.zip"), "checksum_matches"]);
            check!(
                code == 101 && text.contains("left: 295"),
                "replay from the uploaded folder's zip: exit {code}:\n{text}"
            );
        } else {
            check!(
                files_under(&archives.path).is_empty(),
                "a passing leg uploads archives: {:?}",
                files_under(&archives.path)
            );
        }
    }
    check!(names[0] != names[1], "artifact names collide: {names:?}");
    ran_tests.sort();
    check!(
        ran_tests
            == [
                "demo-core tests::adds_small_numbers",
                "demo-core tests::checksum_matches"
            ],
        "the legs did not split the two tests: {ran_tests:?}"
    );
    dir.finish();
    Ok(())
}

/// The action used at a release tag, with no cargo-rrtest on PATH:
/// it downloads the release archive (served here from a folder, by a
/// `file://` server URL), checks it against its `.sha256`, installs it and
/// runs the tests with it. With a checksum that does not match, it installs
/// nothing and says it falls back to building from source.
fn action_installs_release() -> Result<(), Failed> {
    let action = action_yaml()?;
    let archive = release_archive_path()?;
    let dir = TrialDir::new("ecosystem2::action_release")?;
    let version = env!("CARGO_PKG_VERSION");
    // The release's asset: the host build, under the musl build's names.
    let unpacked = unpack(&archive, "action")?;
    let gnu = format!("cargo-rrtest-{version}-x86_64-unknown-linux-gnu");
    let musl = format!("cargo-rrtest-{version}-x86_64-unknown-linux-musl");
    let stage = dir.sub("stage")?;
    std::fs::rename(unpacked.join(&gnu), stage.join(&musl))?;
    let server = dir.sub("server")?;
    let release = server.join(format!("owner/cargo-rrtest/releases/download/v{version}"));
    std::fs::create_dir_all(&release)?;
    let tarred = Command::new("tar")
        .arg("-czf")
        .arg(release.join(format!("{musl}.tar.gz")))
        .arg("-C")
        .arg(&stage)
        .arg(&musl)
        .status()?;
    check!(tarred.success(), "tar failed");
    let sum = Command::new("sha256sum")
        .arg(format!("{musl}.tar.gz"))
        .current_dir(&release)
        .output()?;
    std::fs::write(release.join(format!("{musl}.tar.gz.sha256")), &sum.stdout)?;

    // PATH: the toolchain and the system, none holding a cargo-rrtest.
    let cargo = match std::env::var_os("CARGO") {
        Some(c) => PathBuf::from(c),
        None => {
            let sysroot = Command::new("rustc")
                .args(["--print", "sysroot"])
                .output()?;
            PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("bin/cargo")
        }
    };
    let toolchain = cargo.parent().ok_or("cargo has no directory")?;
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", utf8(toolchain));
    for d in path.split(':') {
        check!(
            !Path::new(d).join("cargo-rrtest").exists(),
            "{d} holds a cargo-rrtest: this trial needs a PATH without one"
        );
    }
    let target = dir.path.join("target");
    copy_demo_target(&target)?;
    let env = [
        ("CARGO_TARGET_DIR", utf8(&target).to_owned()),
        ("PATH", path),
    ];
    let github = [
        ("server_url", format!("file://{}", utf8(&server))),
        ("action_repository", "owner/cargo-rrtest".to_owned()),
        ("action_ref", format!("v{version}")),
    ];
    let inputs = [
        ("working-directory", "fixtures/demo"),
        ("args", "--cargo-quiet adds_small_numbers"),
        ("upload", "false"),
    ];
    let leg = Leg {
        inputs: &inputs,
        env: &env,
        job_index: 0,
        job_total: 1,
        github: &github,
        stop_after: None,
    };
    let done = run_action(&action, &leg, &dir.sub("good")?)?;
    let logs: String = done
        .logs
        .iter()
        .map(|(n, l)| format!("--- {n}\n{l}\n"))
        .collect();
    check!(
        logs.contains(&format!(
            "cargo-rrtest: install: prebuilt (version {version})"
        )) && logs.contains(&format!("{musl}.tar.gz: OK")),
        "not installed from the release:\n{logs}"
    );
    let installed = dir
        .path
        .join("good/runner-temp/cargo-rrtest-install/bin/cargo-rrtest");
    check!(
        installed.is_file(),
        "{} missing:\n{logs}",
        installed.display()
    );
    check!(
        done.failed.is_none() && done.outputs.get("exit-code").map(String::as_str) == Some("0"),
        "the run with the installed binary: {:?}:\n{logs}",
        done.outputs
    );
    check!(
        done.uploads.is_empty(),
        "upload: false uploaded {:?}",
        done.uploads
    );
    let report: Value = serde_json::from_slice(&std::fs::read(
        done.outputs.get("report").ok_or("no report output")?,
    )?)?;
    check!(
        report["summary"]["passed"] == 1,
        "report: {}",
        report["summary"]
    );

    // A checksum that does not match: nothing installed, the fallback said.
    std::fs::write(
        release.join(format!("{musl}.tar.gz.sha256")),
        format!("{}  {musl}.tar.gz\n", "0".repeat(64)),
    )?;
    let leg = Leg {
        stop_after: Some("prebuilt"),
        ..leg
    };
    let bad = run_action(&action, &leg, &dir.sub("bad")?)?;
    let logs: String = bad
        .logs
        .iter()
        .map(|(n, l)| format!("--- {n}\n{l}\n"))
        .collect();
    check!(
        logs.contains("FAILED")
            && logs.contains("no usable prebuilt binary")
            && logs.contains("building from source"),
        "a bad checksum was not refused:\n{logs}"
    );
    check!(
        !dir.path
            .join("bad/runner-temp/cargo-rrtest-install/bin/cargo-rrtest")
            .exists(),
        "installed despite the bad checksum"
    );
    dir.finish();
    Ok(())
}

// ---------------------------------------------------------------------------

/// Every stdout line of a `--message-format libtest-json-plus` run is a
/// JSON object, in libtest's order, with the demo's outcomes.
fn libtest_json_lines() -> Result<(), Failed> {
    let target = common::scratch_dir("ecosystem2-json-target");
    copy_demo_target(&target)?;
    let report = common::scratch_dir("ecosystem2-out").join("json.json");
    let summary = common::scratch_dir("ecosystem2-out").join("json-summary.md");
    let _ = std::fs::remove_file(&summary);
    let manifest = demo_manifest();
    let out = rrtest(
        &[
            "--manifest-path",
            utf8(&manifest),
            "--target-dir",
            utf8(&target),
            "--retries",
            "1",
            "--timeout",
            "30",
            "--cargo-quiet",
            "--message-format",
            "libtest-json-plus",
            "checksum_matches",
            "flaky_first_attempt",
            "adds_small_numbers",
            "exhaustive_addition",
        ],
        // On GitHub Actions too: the annotations must not reach stdout.
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", utf8(&summary)),
        ],
        &report,
    );
    report_of(&out)?;
    check!(out.code == 100, "exit {}:\n{}", out.code, out.stderr);
    let mut lines = Vec::new();
    for line in out.stdout.lines() {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "stdout line is not JSON ({e}): `{line}`\nstdout:\n{}",
                out.stdout
            )
        })?;
        check!(v.is_object(), "not an object: {line}");
        lines.push(v);
    }
    // The human lines and the annotations went to stderr.
    check!(
        out.stderr.contains("Summary")
            && out.stderr.contains("Report")
            && out.stderr.contains("::error file=")
            && out.stderr.contains("::group::"),
        "no human summary or annotations on stderr:\n{}",
        out.stderr
    );
    let first = lines.first().ok_or("no lines")?;
    check!(
        first["type"] == "suite" && first["event"] == "started" && first["test_count"] == 4,
        "first line: {first}"
    );
    let last = lines.last().ok_or("no lines")?;
    check!(
        last["type"] == "suite"
            && last["event"] == "failed"
            && last["passed"] == 2
            && last["failed"] == 1
            && last["ignored"] == 1
            && last["measured"] == 0
            && last["filtered_out"].as_u64().is_some_and(|n| n > 0)
            && last["exec_time"].as_f64().is_some_and(|t| t > 0.0),
        "last line: {last}"
    );
    // Per test: started, then one result, nothing after it.
    let mut state: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut results: BTreeMap<String, &Value> = BTreeMap::new();
    for v in &lines[1..lines.len() - 1] {
        check!(v["type"] == "test", "not a test event: {v}");
        let name = v["name"].as_str().ok_or("no name")?.to_owned();
        let event = v["event"].as_str().ok_or("no event")?.to_owned();
        let seen = state.entry(name.clone()).or_default();
        check!(
            (event == "started") == seen.is_empty() && seen.len() < 2,
            "{name}: {event} after {seen:?}"
        );
        seen.push(event.clone());
        if event != "started" {
            results.insert(name, v);
        }
    }
    let r = |name: &str| -> Result<&Value, Failed> {
        results
            .get(name)
            .copied()
            .ok_or_else(|| format!("no result for {name}: {:?}", results.keys()).into())
    };
    let failed = r("demo-core$tests::checksum_matches")?;
    check!(
        failed["event"] == "failed"
            && failed["stdout"]
                .as_str()
                .is_some_and(|s| s.contains("left: 295"))
            && failed["exec_time"].as_f64().is_some()
            && failed["rrtest"]["outcome"] == "failed"
            && failed["rrtest"]["trace"]
                .as_str()
                .is_some_and(|t| t.contains("attempt-2")),
        "{failed}"
    );
    let flaky = r("demo-core::api$flaky_first_attempt")?;
    check!(
        flaky["event"] == "ok"
            && flaky["rrtest"]["outcome"] == "flaky"
            && flaky["rrtest"]["attempts"] == 2,
        "{flaky}"
    );
    let ok = r("demo-core$tests::adds_small_numbers")?;
    check!(ok["event"] == "ok" && ok.get("stdout").is_none(), "{ok}");
    let ignored = r("demo-core$tests::exhaustive_addition")?;
    check!(ignored["event"] == "ignored", "{ignored}");
    Ok(())
}

// ---------------------------------------------------------------------------

/// `--nextest-profile` on a copy of the demo with a `.config/nextest.toml`.
fn nextest_profile() -> Result<(), Failed> {
    let ws = common::scratch_dir("ecosystem2-profile-ws");
    copy_tree(&common::fixtures_dir().join("demo"), &ws)?;
    std::fs::create_dir_all(ws.join(".config"))?;
    std::fs::write(
        ws.join(".config/nextest.toml"),
        "[profile.default]\ntest-threads = 3\n\n\
         [profile.ci]\nretries = { backoff = \"fixed\", count = 1 }\n\
         slow-timeout = { period = \"1s\", terminate-after = 2 }\n",
    )?;
    let manifest = ws.join("Cargo.toml");
    let target = common::scratch_dir("ecosystem2-profile-target");
    let report = common::scratch_dir("ecosystem2-out").join("profile.json");
    let run_with = |extra: &[&str]| {
        let mut args = vec![
            "--no-record",
            "--cargo-quiet",
            "--manifest-path",
            utf8(&manifest),
            "--target-dir",
            utf8(&target),
            "flaky_first_attempt",
            "hangs_forever",
        ];
        args.extend_from_slice(extra);
        rrtest(&args, &[], &report)
    };

    let out = run_with(&["--nextest-profile", "ci"]);
    let tests = tests_by_key(report_of(&out)?);
    let flaky = tests
        .get("demo-core::api flaky_first_attempt")
        .ok_or("no flaky test")?;
    let hang = tests
        .get("demo-core::api hangs_forever")
        .ok_or("no hanging test")?;
    check!(
        flaky["outcome"] == "flaky",
        "retries from the profile: {}\n{}",
        flaky["outcome"],
        out.stderr
    );
    let hang_ms: Vec<u64> = hang["attempts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["duration_ms"].as_u64()).collect())
        .unwrap_or_default();
    check!(
        hang["outcome"] == "timed_out"
            && hang_ms.len() == 2
            && hang_ms.iter().all(|ms| (1900..15_000).contains(ms)),
        "timeout 1s x 2 from the profile: {} {hang_ms:?}",
        hang["outcome"]
    );
    let config_line = out
        .stderr
        .lines()
        .find(|l| l.contains("nextest profile ci"))
        .unwrap_or_default();
    check!(
        config_line.contains("retries 1 (profile ci)")
            && config_line.contains("timeout 2s (profile ci: slow-timeout 1s x terminate-after 2)")
            && config_line.contains("jobs 3 (profile default: test-threads 3)"),
        "the settings line: `{config_line}`\n{}",
        out.stderr
    );

    // The command line wins over the profile.
    let out = run_with(&[
        "--nextest-profile",
        "ci",
        "--retries",
        "0",
        "--timeout",
        "1",
    ]);
    let tests = tests_by_key(report_of(&out)?);
    let flaky = tests
        .get("demo-core::api flaky_first_attempt")
        .ok_or("no flaky test")?;
    let hang = tests
        .get("demo-core::api hangs_forever")
        .ok_or("no hanging test")?;
    check!(
        flaky["outcome"] == "failed" && hang["attempts"].as_array().map(Vec::len) == Some(1),
        "--retries 0 did not win: {} {}",
        flaky["outcome"],
        hang["attempts"]
    );
    check!(
        out.stderr.contains("nextest profile ci")
            && out.stderr.contains("jobs 3")
            && !out.stderr.contains("retries 1 (profile"),
        "the settings line lists what the command line set:\n{}",
        out.stderr
    );

    // Usage errors: an unknown profile (the known ones listed), no file.
    let out = run_with(&["--nextest-profile", "nightly"]);
    check!(
        out.code == 2
            && out.stderr.contains("--nextest-profile nightly")
            && out.stderr.contains("no [profile.nightly]")
            && out.stderr.contains("profiles there: ci, default"),
        "unknown profile: exit {}:\n{}",
        out.code,
        out.stderr
    );
    std::fs::remove_file(ws.join(".config/nextest.toml"))?;
    let out = run_with(&["--nextest-profile", "ci"]);
    check!(
        out.code == 2 && out.stderr.contains("nextest.toml does not exist"),
        "no config file: exit {}:\n{}",
        out.code,
        out.stderr
    );
    Ok(())
}

// ---------------------------------------------------------------------------

/// The archive `scripts/build-release.sh` makes for the host target, built
/// once per test run.
fn release_archive_path() -> Result<PathBuf, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out_dir = common::scratch_dir("ecosystem2-dist");
        let _ = std::fs::remove_dir_all(&out_dir);
        let out = Command::new(common::repo_root().join("scripts/build-release.sh"))
            .arg("")
            .arg(&out_dir)
            .env("CARGO_TARGET_DIR", common::target_dir())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("running scripts/build-release.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "scripts/build-release.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        stdout
            .lines()
            .last()
            .map(PathBuf::from)
            .ok_or_else(|| "scripts/build-release.sh printed no path".to_string())
    });
    built.clone().map_err(Failed::from)
}

/// `{ key }` placeholders of binstall's templates.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in vars {
        s = s.replace(&format!("{{ {k} }}"), v);
    }
    s
}

fn release_archive() -> Result<(), Failed> {
    let archive = release_archive_path()?;
    let file_name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("archive name")?
        .to_owned();
    let dir = archive.parent().ok_or("archive dir")?;
    // The checksum file checks.
    let sum = Command::new("sha256sum")
        .arg("-c")
        .arg(format!("{file_name}.sha256"))
        .current_dir(dir)
        .output()?;
    check!(
        sum.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&sum.stdout)
    );

    // The names binstall would look for, on this (gnu) target.
    let meta = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(common::repo_root())
        .output()?;
    let meta: Value = serde_json::from_slice(&meta.stdout)?;
    let pkg = meta["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "cargo-rrtest"))
        .ok_or("no cargo-rrtest package")?;
    let version = pkg["version"].as_str().ok_or("version")?;
    let binstall = &pkg["metadata"]["binstall"];
    let host = "x86_64-unknown-linux-gnu";
    let vars = [
        ("repo", "https://example.invalid/cargo-rrtest"),
        ("name", "cargo-rrtest"),
        ("version", version),
        ("target", host),
        ("bin", "cargo-rrtest"),
        ("binary-ext", ""),
    ];
    let url = fill(binstall["pkg-url"].as_str().ok_or("no pkg-url")?, &vars);
    check!(
        url.ends_with(&format!("/v{version}/{file_name}")),
        "binstall's pkg-url {url} does not end in the archive's name {file_name}"
    );
    check!(
        binstall["pkg-fmt"] == "tgz",
        "pkg-fmt {}",
        binstall["pkg-fmt"]
    );
    let bin_dir = fill(binstall["bin-dir"].as_str().ok_or("no bin-dir")?, &vars);
    let listing = Command::new("tar").arg("-tzvf").arg(&archive).output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    check!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(&format!(" {bin_dir}"))),
        "no executable {bin_dir} in the archive:\n{listing}"
    );
    // The workflow and the action name the musl build the same way.
    let workflow =
        std::fs::read_to_string(common::repo_root().join(".github/workflows/release.yml"))?;
    check!(
        workflow.contains("scripts/build-release.sh x86_64-unknown-linux-musl"),
        "release.yml does not run the script for musl"
    );
    let musl = file_name.replace(host, "x86_64-unknown-linux-musl");
    let action = std::fs::read_to_string(common::repo_root().join("action.yml"))?;
    check!(
        action.contains("name=\"cargo-rrtest-$VERSION-x86_64-unknown-linux-musl\"")
            && musl == format!("cargo-rrtest-{version}-x86_64-unknown-linux-musl.tar.gz"),
        "action.yml's asset name differs from {musl}"
    );

    // It runs here.
    let extracted = unpack(&archive, "archive")?;
    let bin = extracted.join(&bin_dir);
    let out = Command::new(&bin).arg("--version").output()?;
    check!(
        String::from_utf8_lossy(&out.stdout).trim() == format!("cargo-rrtest {version}"),
        "--version: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// Unpacks `archive` into a fresh directory next to it, named after `into`.
fn unpack(archive: &Path, into: &str) -> Result<PathBuf, Failed> {
    // One directory per trial: the trials that unpack the archive run at
    // the same time, and one's removal under another's `tar` failed it.
    let dir = archive.with_extension(format!("unpacked-{into}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status()?
        .success();
    check!(ok, "tar -xzf {} failed", archive.display());
    Ok(dir)
}

/// The release binary in the Debian 13 root, which has no Rust toolchain:
/// `--version`, then a C program compiled here recorded and replayed there.
fn release_runs_without_rust() -> Result<(), Failed> {
    let archive = release_archive_path()?;
    let extracted = unpack(&archive, "chroot")?;
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .ok_or("archive name")?;
    let dir = TrialDir::new("ecosystem2::release::chroot")?;
    std::fs::copy(
        extracted.join(name).join("cargo-rrtest"),
        dir.path.join("cargo-rrtest"),
    )?;
    let prog = build::c_fixture(CBuild::pie("hello"))?;
    std::fs::copy(&prog, dir.path.join("prog"))?;

    let none = crate::portable::in_other_root(
        &dir.path,
        &[
            "/bin/sh",
            "-c",
            "command -v cargo rustc rustup; ls -d /root/.cargo /root/.rustup 2>/dev/null; true",
        ],
    )?;
    check!(
        none.stdout_text().trim().is_empty(),
        "the other root has a Rust toolchain: {}",
        none.stdout_text()
    );
    let version = crate::portable::in_other_root(&dir.path, &["/mnt/cargo-rrtest", "--version"])?;
    check!(
        version.code() == 0 && version.stdout_text().starts_with("cargo-rrtest "),
        "--version there:\n{}",
        version.describe()
    );
    let native = run::run(&mut Command::new(dir.path.join("prog")))?;
    let rec = crate::portable::in_other_root(
        &dir.path,
        &[
            "/mnt/cargo-rrtest",
            "record",
            "-o",
            "/mnt/trace",
            "--",
            "/mnt/prog",
        ],
    )?;
    check!(
        rec.code() == native.code() && rec.stdout == native.stdout,
        "recording there differs from the program run here:\n{}\nnative:\n{}",
        rec.describe(),
        native.describe()
    );
    let rep =
        crate::portable::in_other_root(&dir.path, &["/mnt/cargo-rrtest", "replay", "/mnt/trace"])?;
    check!(
        rep.code() == native.code() && rep.stdout == native.stdout,
        "replay there:\n{}",
        rep.describe()
    );
    dir.finish();
    Ok(())
}

// ---------------------------------------------------------------------------

/// `cargo package -p rrtest-report` (offline, not verified: that would
/// build it again) makes a crate whose manifest has no path dependencies
/// and which holds the README it names.
fn report_crate_packages() -> Result<(), Failed> {
    let target = common::scratch_dir("ecosystem2-package");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "package",
            "-p",
            "rrtest-report",
            "--allow-dirty",
            "--no-verify",
            "--offline",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(common::repo_root())
        .output()?;
    check!(
        out.status.success(),
        "cargo package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = env!("CARGO_PKG_VERSION");
    let krate = target
        .join("package")
        .join(format!("rrtest-report-{version}.crate"));
    let listing = Command::new("tar").arg("-tzf").arg(&krate).output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in ["Cargo.toml", "README.md", "src/lib.rs", "src/json.rs"] {
        check!(
            listing
                .lines()
                .any(|l| l == format!("rrtest-report-{version}/{file}")),
            "{file} missing from the crate:\n{listing}"
        );
    }
    let manifest = Command::new("tar")
        .arg("-xzOf")
        .arg(&krate)
        .arg(format!("rrtest-report-{version}/Cargo.toml"))
        .output()?;
    let manifest = String::from_utf8_lossy(&manifest.stdout);
    // No dependency by path (cargo package refuses one without a version;
    // this one is not published).
    let mut section = "";
    for line in manifest.lines() {
        if line.starts_with('[') {
            section = line;
        } else if section.contains("dependencies") && line.starts_with("path = ") {
            return Err(format!("{section} is a path dependency:\n{manifest}").into());
        }
    }
    check!(
        !manifest.contains("rrtest-sys"),
        "the packaged crate depends on rrtest-sys:\n{manifest}"
    );
    for field in ["description = ", "license = ", "repository = ", "readme = "] {
        check!(manifest.contains(field), "no {field} in:\n{manifest}");
    }
    Ok(())
}

/// The YAML reader on what action.yml uses, and its refusals.
fn yaml_reader() -> Result<(), Failed> {
    let text = "\
# a comment
a: plain # comment
b: 'it''s # not a comment'
c: \"say \\\"hi\\\"\"
list:
  - name: one
    run: |
      echo 1

      echo 2 # kept
    env:
      K: ${{ inputs.x }}
  - two
empty: ''
";
    let y = YamlParser::parse(text)?;
    check!(y.str("a") == Some("plain"), "a: {:?}", y.get("a"));
    check!(
        y.str("b") == Some("it's # not a comment"),
        "b: {:?}",
        y.get("b")
    );
    check!(y.str("c") == Some("say \"hi\""), "c: {:?}", y.get("c"));
    check!(y.str("empty") == Some(""), "empty: {:?}", y.get("empty"));
    let Some(Yaml::Seq(items)) = y.get("list") else {
        return Err("no list".into());
    };
    check!(items.len() == 2, "items: {items:?}");
    check!(
        items[0].str("run") == Some("echo 1\n\necho 2 # kept\n"),
        "run: {:?}",
        items[0].str("run")
    );
    check!(
        items[0].get("env").and_then(|e| e.str("K")) == Some("${{ inputs.x }}"),
        "env: {:?}",
        items[0].get("env")
    );
    check!(
        items[1] == Yaml::Str("two".into()),
        "item 2: {:?}",
        items[1]
    );
    for bad in [
        "a: {x: 1}\n",
        "a: [1]\n",
        "a: >\n  folded\n",
        "a: 1\na: 2\n",
        "a:\n\tb: 1\n",
    ] {
        check!(YamlParser::parse(bad).is_err(), "accepted {bad:?}");
    }
    let mut ctx = Context::new();
    ctx.insert("inputs.upload".into(), "true".into());
    ctx.insert("steps.plan.outputs.method".into(), "source".into());
    for (expr, want) in [
        (
            "inputs.upload == 'true' && steps.plan.outputs.method != ''",
            "true",
        ),
        (
            "(steps.plan.outputs.method == 'prebuilt' || steps.x.outputs.ok == 'false')",
            "false",
        ),
        (
            "steps.plan.outputs.method == 'source' || steps.x.outputs.ok == 'false'",
            "true",
        ),
    ] {
        let got = eval(expr, &ctx)?;
        check!(got == want, "{expr} = {got}, expected {want}");
    }
    check!(
        eval("github.nope", &ctx).is_err(),
        "an unknown context value was accepted"
    );
    check!(
        expand("a-${{ inputs.upload }}-b", &ctx)? == "a-true-b",
        "expand"
    );
    Ok(())
}
