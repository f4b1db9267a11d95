//! Kept traces are self-contained: a trace made by `cargo-rrtest record`
//! (which keeps what it records) replays after the recorded executable is
//! rewritten in place and after it is replaced by a new file, because
//! keeping a trace gives it private copies of the files it maps, checked
//! against their content ids (docs/trace-format.md, `files/`). Before it is
//! kept, a trace links a data file mapped read-only if nothing modified it
//! since before the recording, and copies one the program wrote.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libtest_mimic::{Failed, Trial};

use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// This area's trials.
pub fn trials() -> Vec<Trial> {
    let ignored = build::gcc_missing().is_some() || run::recording_unavailable().is_some();
    vec![
        Trial::test(
            "trace_files::kept_trace_survives_its_binary_changing",
            kept_trace_survives_its_binary_changing,
        )
        .with_ignored_flag(ignored),
        Trial::test(
            "trace_files::read_only_data_is_linked_unless_modified",
            read_only_data_is_linked_unless_modified,
        )
        .with_ignored_flag(ignored),
        Trial::test("trace_files::info_lists_events", info_lists_events).with_ignored_flag(ignored),
        Trial::test(
            "trace_files::busy_program_is_execed_again",
            busy_program_is_execed_again,
        )
        .with_ignored_flag(ignored),
    ]
}

/// Replay of an `execve` whose program file is open for writing somewhere
/// (a process another thread forked while replay wrote its copy, say):
/// the kernel's ETXTBSY, until that writer is gone. `sh -c 'exec HELLO'`
/// (a static `hello`, so that replay execs a link to the trace's own
/// copy) is recorded; a process holds that copy open for appending while
/// the trace replays. Replay makes the `execve` again until the writer is
/// gone (its log says so, and only then is the writer let go), and
/// replays to the end. Before, it stopped at the first failure:
/// `expected exec of ..., saw a syscall stop ...: execve returning -26`.
fn busy_program_is_execed_again() -> Result<(), Failed> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let hello = build::c_fixture(CBuild {
        name: "hello",
        link: build::Link::Static,
        defines: &[],
    })?;
    let trial = TrialDir::new("trace-files-busy-program")?;
    let inv = Invocation {
        exe: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), format!("exec {}", hello.display()).into()],
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    inv.record(&trace)?.expect_code(0)?;
    // The trace's copy of hello: the file of files/ with its bytes.
    let bytes = std::fs::read(&hello)?;
    let copy = std::fs::read_dir(trace.join("files"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| std::fs::read(p).is_ok_and(|b| b == bytes))
        .ok_or("the trace keeps no copy of hello")?;
    let mut writer = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec 3>>\"$1\"; echo open; exec sleep 60")
        .arg("sh")
        .arg(&copy)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut opened = String::new();
    BufReader::new(writer.stdout.take().ok_or("no stdout")?).read_line(&mut opened)?;
    if opened.trim() != "open" {
        let _ = writer.kill();
        return Err(format!("the writer did not open {}", copy.display()).into());
    }
    let mut replay = Command::new(crate::common::cargo_rrtest())
        .arg("replay")
        .arg(&trace)
        .env(
            "RRTEST_LOG",
            "cargo_rrtest::replayer::session::process=trace",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Let the writer go once replay has met the busy copy (or ended). The
    // log is read to its end on a thread of its own, so that replay never
    // blocks on it.
    let stderr = replay.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while let Ok(line) = rx.recv() {
        let busy = line.contains("the program's copy is busy");
        log.push(line);
        if busy {
            break;
        }
    }
    let _ = writer.kill();
    let _ = writer.wait();
    let out = replay.wait_with_output()?;
    let _ = reader.join();
    log.extend(rx.try_iter());
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !log.iter().any(|l| l.contains("the program's copy is busy")) {
        return Err(format!(
            "replay never found its copy of hello busy (status {}):\n{}",
            out.status,
            log.join("\n")
        )
        .into());
    }
    if !out.status.success() || !stdout.contains("EXIT-SUCCESS") {
        return Err(format!(
            "replay with the copy busy for a while: status {}, stdout {stdout:?}\n{}",
            out.status,
            log.join("\n")
        )
        .into());
    }
    trial.finish();
    Ok(())
}

/// `cargo rrtest info --events`: the greeting's `write` with its result,
/// the program's exit last; `--around` keeps only the events near one;
/// `--json` is an array of the same; `--around` without `--events` is a
/// usage error.
fn info_lists_events() -> Result<(), Failed> {
    let built = build::c_fixture(CBuild::pie("hello"))?;
    let trial = TrialDir::new("trace-files-info-events")?;
    let inv = Invocation {
        exe: built,
        args: Vec::new(),
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    inv.record(&trace)?.expect_code(0)?;
    let info = |args: &[&str]| -> Result<(i32, String), Failed> {
        let out = std::process::Command::new(crate::common::cargo_rrtest())
            .arg("info")
            .args(args)
            .arg(&trace)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (code, all) = info(&["--events"])?;
    let lines: Vec<&str> = all.lines().collect();
    let index = |l: &str| l.split_whitespace().next()?.parse::<u64>().ok();
    let greeting = lines
        .iter()
        .position(|l| l.contains("write(") && l.contains(&format!("= {}", GREETING.len() + 1)));
    check!(
        code == 0
            && lines.len() > 10
            && lines.iter().all(|l| index(l).is_some())
            && greeting.is_some()
            && lines.last().is_some_and(|l| l.contains("process exit 0")),
        "info --events (exit {code}) lacks the greeting's write or the exit:\n{all}"
    );
    let at = greeting.and_then(|g| index(lines[g])).unwrap_or(0);
    let (code, near) = info(&["--events", "--around", &at.to_string(), "--context", "2"])?;
    let near_idx: Vec<u64> = near.lines().filter_map(index).collect();
    check!(
        code == 0
            && near_idx.contains(&at)
            && near_idx.iter().all(|&i| i + 2 >= at && i <= at + 2)
            && near.lines().count() < lines.len(),
        "info --events --around {at} --context 2 (exit {code}):\n{near}"
    );
    let (code, json) = info(&["--events", "--json"])?;
    let parsed: serde_json::Value = serde_json::from_str(&json)?;
    check!(
        code == 0 && parsed.as_array().is_some_and(|a| a.len() == lines.len()),
        "info --events --json (exit {code}) is not an array of {} actions:\n{json}",
        lines.len()
    );
    let (code, _) = info(&["--around", "3"])?;
    check!(
        code == 2,
        "info --around without --events exited {code}, not 2"
    );
    trial.finish();
    Ok(())
}

const GREETING: &str = "hello from a recorded program";

fn kept_trace_survives_its_binary_changing() -> Result<(), Failed> {
    let built = build::c_fixture(CBuild::pie("hello"))?;
    let trial = TrialDir::new("trace-files-kept-trace-survives")?;
    // Our own copy of the program, to change.
    let exe = trial.path.join("hello");
    std::fs::copy(&built, &exe)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: Vec::new(),
        work: trial.sub("work")?,
    };
    let trace = trial.path.join("trace");
    let recorded = inv.record(&trace)?;
    recorded.expect_code(0)?;
    if !recorded.stdout_text().contains(GREETING) {
        return Err(format!(
            "the recording did not print the greeting\n{}",
            recorded.describe()
        )
        .into());
    }
    let replays = |when: &str| -> Result<(), Failed> {
        let replay = inv.replay(&trace)?;
        replay
            .expect_code(0)
            .map_err(|e| format!("replay after {when}: {}", e.message().unwrap_or_default()))?;
        if !replay.stdout_text().contains(GREETING) {
            return Err(format!(
                "replay after {when} did not print the greeting\n{}",
                replay.describe()
            )
            .into());
        }
        Ok(())
    };
    let size = std::fs::metadata(&exe)?.len() as usize;
    let exe_inode = std::fs::metadata(&exe)?.ino();
    for entry in std::fs::read_dir(trace.join("files"))? {
        let meta = entry?.metadata()?;
        if meta.ino() == exe_inode || meta.nlink() != 1 {
            return Err(
                format!("the kept trace shares an inode with another file: {meta:?}").into(),
            );
        }
    }

    // Rewritten in place: the same inode, other bytes.
    let mut f = std::fs::OpenOptions::new().write(true).open(&exe)?;
    f.write_all(&vec![0xcc; size])?;
    f.sync_all()?;
    drop(f);
    replays("the binary was rewritten in place")?;

    // Replaced, as a rebuild does: a new inode under the same name.
    let tmp = trial.path.join("hello.new");
    std::fs::write(&tmp, b"not a program any more")?;
    std::fs::rename(&tmp, &exe)?;
    replays("the binary was replaced")?;

    // Gone.
    std::fs::remove_file(&exe)?;
    replays("the binary was removed")?;
    trial.finish();
    Ok(())
}

/// The bytes the test leaves in `old-data` and the fixture writes to
/// `new-data` (fixtures/c/mmap_readonly_data.c).
const OLD_DATA: &str = "old bytes";
const NEW_DATA: &str = "written during the recording";

fn read_only_data_is_linked_unless_modified() -> Result<(), Failed> {
    let exe = build::c_fixture(CBuild::pie("mmap_readonly_data"))?;
    let trial = TrialDir::new("trace-files-read-only-data")?;
    let work = trial.sub("work")?;
    let old = work.join("old-data");
    std::fs::write(&old, OLD_DATA)?;
    // Unchanged since well before the recording, like an installed library.
    std::fs::File::options()
        .write(true)
        .open(&old)?
        .set_modified(SystemTime::now() - Duration::from_secs(3600))?;
    let inv = Invocation {
        exe,
        args: Vec::new(),
        work: work.clone(),
    };
    let trace = trial.path.join("trace");
    // Disposable: not kept, so files/ still shows how each entry was stored.
    let recorded = inv.record_with(&trace, &["--disposable", "--no-verify"])?;
    recorded.expect_code(0)?;
    let stdout = recorded.stdout_text();
    for want in [
        format!("old-data: {OLD_DATA}"),
        format!("new-data: {NEW_DATA}"),
    ] {
        if !stdout.contains(&want) {
            return Err(format!("no `{want}` in the output\n{}", recorded.describe()).into());
        }
    }

    let mut entries: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
    for entry in std::fs::read_dir(trace.join("files"))? {
        let entry = entry?;
        entries.push((entry.path(), entry.metadata()?));
    }
    let listing = || {
        entries
            .iter()
            .map(|(p, m)| format!("{} (inode {}, {} links)", p.display(), m.ino(), m.nlink()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let links_to = |path: &std::path::Path| -> Result<bool, Failed> {
        let m = std::fs::metadata(path)?;
        Ok(entries
            .iter()
            .any(|(_, e)| e.dev() == m.dev() && e.ino() == m.ino()))
    };
    if !links_to(&old)? {
        return Err(format!(
            "old-data, mapped read-only and unchanged since before the recording, \
             is not a hard link in files/:\n{}",
            listing()
        )
        .into());
    }
    if links_to(&work.join("new-data"))? {
        return Err(format!(
            "new-data, written during the recording, is a hard link in files/:\n{}",
            listing()
        )
        .into());
    }
    let mut private_copy = false;
    for (path, meta) in &entries {
        if meta.nlink() == 1 && std::fs::read(path)? == NEW_DATA.as_bytes() {
            private_copy = true;
        }
    }
    if !private_copy {
        return Err(format!("no private copy of new-data in files/:\n{}", listing()).into());
    }
    // The loader maps its cache the same way (0644, read-only): linked too,
    // where files/ can link it (the same file system).
    let cache = std::path::Path::new("/etc/ld.so.cache");
    if let Ok(m) = std::fs::metadata(cache) {
        let same_fs = std::fs::metadata(trace.join("files"))?.dev() == m.dev();
        let settled = m
            .modified()
            .is_ok_and(|t| t < SystemTime::now() - Duration::from_secs(60));
        if same_fs && settled && !links_to(cache)? {
            return Err(format!(
                "/etc/ld.so.cache is not a hard link in files/:\n{}",
                listing()
            )
            .into());
        }
    }

    let replay = inv.replay(&trace)?;
    replay.expect_code(0)?;
    run::expect_same_bytes("stdout", &recorded.stdout, &replay.stdout)?;
    trial.finish();
    Ok(())
}
