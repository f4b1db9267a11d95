//! `cargo rrtest replay --gdb-port` / `--gdb` driven by real gdb in batch
//! mode (`gdb -batch -nx`) over real recordings: the C fixture
//! `gdb_target` (a struct passed to a function that writes a global, two
//! threads, exit status 3) and the demo workspace's failing Rust test
//! `tests::checksum_matches`, recorded by `cargo-rrtest record`.
//!
//! - `gdb::c::registers_memory_and_mappings`: at the first instruction
//!   gdb reads `rip`, `fs_base`, an SSE register and memory, and `info
//!   proc mappings` shows the program's mappings;
//! - `gdb::c::continue_to_the_recorded_exit`: `continue` ends with the
//!   recorded exit status;
//! - `gdb::c::writes_are_refused`: register and memory writes get errors,
//!   and the replay still ends as recorded;
//! - `gdb::c::break_bt_print`, `info_threads`, `stepi_and_next`: a
//!   breakpoint in `area`, the backtrace to `main`, a struct field and a
//!   parameter; both threads at a breakpoint in the second; single steps;
//! - `gdb::c::break_in_a_signal_handler`: `getpid_signals` (timer
//!   signals while the main thread loops on a buffered `getpid`): a
//!   breakpoint in the handler is hit, `bt` goes through the signal frame
//!   back to `main` with no stub frame, and the replay then ends as
//!   recorded;
//! - `gdb::c::threads_in_a_buffered_syscall_show_no_stub`: in
//!   `pipe_pingpong`, at a breakpoint of the main thread while the other
//!   blocks in a buffered `read` (its site patched), `info threads` and
//!   `thread apply all bt` show the program's frames (`read` called from
//!   `echo`), never a stub as `?? ()`;
//! - `gdb::c::step_over_buffered_syscalls_and_rdtsc`: in a late round of
//!   `dbg_buffered`'s `io_round` (its `write`, `read` and `rdtsc` sites
//!   patched), `next` goes line by line over the buffered calls and the
//!   `rdtsc`, and `stepi` from the breakpoint back to `main` (through
//!   `write` and `read` in libc) never stops at an address without a
//!   symbol (a stub or the hook) and stops right after the `rdtsc`, which
//!   the disassembly shows (not the patch's jump);
//! - `gdb::rust::reverse_step_back_from_a_panic_with_a_backtrace`: the demo's
//!   failing test recorded with `RUST_BACKTRACE=1` (the panic symbolizes
//!   the backtrace, millions of instructions since the last event):
//!   `reverse-stepi` and `reverse-step` from `rust_panic` step back into
//!   its caller within the session's limit, `stepi` goes forward again,
//!   and `reverse-continue` reaches the test body;
//! - `gdb::c::reverse_watch_finds_the_write`: `watch -l watched` then
//!   `reverse-continue` stops at the last write (the worker thread's), on
//!   the line that wrote it, before the write (gdb shows the old value as
//!   the new); `reverse-stepi` and `stepi` from there, then `continue`
//!   writes it again and reaches the breakpoint again;
//! - `gdb::c::signal_stop_in_gdbs_numbering`: `gdb_signal`'s SIGUSR1s
//!   stop as SIGUSR1 (gdb's 30, not Linux's 10), before the handler runs;
//!   `continue` delivers them as recorded; `handle ... nostop` runs on;
//! - `gdb::c::breakpoint_inside_a_patched_syscall_site`: a breakpoint on
//!   glibc getpid's `syscall`, inside the patched region, is hit at all 50
//!   calls (moved to the stub's copy after the patch);
//! - `gdb::c::interrupt_in_buffered_syscalls_shows_original_code`: three
//!   Ctrl-Cs (SIGINT to gdb) during `continue` in `syscall_loop` stop in
//!   libc or the program, never in a stub or the preload;
//! - `gdb::c::interrupt_stops_a_reverse_continue`: Ctrl-C during a
//!   `reverse-continue` stops it; forward again reaches the same breakpoint;
//! - `gdb::c::same_script_same_output`: one gdb script, two sessions,
//!   identical output;
//! - `gdb::c::reverse_continue_to_a_breakpoint`: back to the previous
//!   breakpoint hit, and forward again to the same state; without
//!   breakpoints back to the start, then forward to the recorded exit;
//! - `gdb::rust::break_bt_print`, `break_on_panic`,
//!   `reverse_continue_from_the_panic_into_the_test`,
//!   `reverse_finish_out_of_the_panic`: the demo's failing test: a
//!   breakpoint in `demo_core::checksum`, Rust frames in `bt`, a slice,
//!   `finish`'s value; `rust_panic`, then back into the test body;
//! - `gdb::protocol::malformed_packets_get_errors`: raw packets over TCP:
//!   a bad checksum, a malformed command, junk between packets, an
//!   oversized packet are answered and the session goes on;
//! - `gdb::protocol::files_come_from_the_trace`: `vFile:` serves the
//!   trace's copy of a program deleted since, `/proc/PID` of the recorded
//!   pid, and refuses writes;
//! - `gdb::protocol::interrupt_and_hang_up`: Ctrl-C during `continue`,
//!   then on to the recorded exit; a hang-up during `continue` ends the
//!   replay at once;
//! - `gdb::protocol::second_connection_refused`;
//! - `gdb::protocol::killed_gdb_leaves_no_tracee`: gdb killed with
//!   SIGKILL: the server ends, and no process of the replay is left;
//! - `gdb::cli::launches_gdb`: `replay --gdb TRACE -- -batch ...` starts
//!   gdb itself, connected, with the program's symbols;
//! - `gdb::cli::bad_gdb_flags`: a port in use, gdb-only flags without
//!   `--gdb`, a gdb that cannot run: exit 2 with one line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

use crate::common;
use crate::recorder_build::{self as build, CBuild};
use crate::recorder_run::{self as run, Invocation, TrialDir};

/// The trials of this module.
pub fn trials() -> Vec<Trial> {
    let why_not = build::gcc_missing()
        .or(run::recording_unavailable())
        .or(gdb_missing());
    let ignored = why_not.is_some();
    if let Some(why) = why_not {
        eprintln!("gdb trials ignored: {why}");
    }
    let t = |name: &str, f: fn() -> Result<(), Failed>| {
        Trial::test(format!("gdb::{name}"), f).with_ignored_flag(ignored)
    };
    vec![
        t(
            "c::registers_memory_and_mappings",
            registers_memory_and_mappings,
        ),
        t(
            "c::continue_to_the_recorded_exit",
            continue_to_the_recorded_exit,
        ),
        t("c::writes_are_refused", writes_are_refused),
        t("c::same_script_same_output", same_script_same_output),
        t("c::break_bt_print", c_break_bt_print),
        t("c::info_threads", c_info_threads),
        t(
            "c::threads_in_a_buffered_syscall_show_no_stub",
            c_threads_in_buffered_syscall,
        ),
        t("c::break_in_a_signal_handler", c_break_in_signal_handler),
        t("c::stepi_and_next", c_stepi_and_next),
        t("c::reverse_continue_to_a_breakpoint", c_reverse_continue),
        t("c::signal_stop_in_gdbs_numbering", c_signal_stop),
        t("c::process_picks_the_forked_child", c_process_child),
        t(
            "c::breakpoint_inside_a_patched_syscall_site",
            c_breakpoint_in_patched_site,
        ),
        t(
            "c::interrupt_in_buffered_syscalls_shows_original_code",
            c_interrupt_not_in_buffer_code,
        ),
        t(
            "c::interrupt_stops_a_reverse_continue",
            c_interrupt_reverse_continue,
        ),
        t("rust::break_bt_print", rust_break_bt_print),
        t("rust::break_on_panic", rust_break_on_panic),
        t(
            "rust::reverse_continue_from_the_panic_into_the_test",
            rust_reverse_continue,
        ),
        t("c::reverse_watch_finds_the_write", c_reverse_watch),
        t("rust::reverse_finish_out_of_the_panic", rust_reverse_finish),
        t(
            "c::step_over_buffered_syscalls_and_rdtsc",
            c_step_over_buffered,
        ),
        t(
            "rust::reverse_step_back_from_a_panic_with_a_backtrace",
            rust_reverse_step_backtrace,
        ),
        t(
            "protocol::malformed_packets_get_errors",
            malformed_packets_get_errors,
        ),
        t("protocol::interrupt_and_hang_up", interrupt_and_hang_up),
        t(
            "protocol::files_come_from_the_trace",
            files_come_from_the_trace,
        ),
        t(
            "protocol::second_connection_refused",
            second_connection_refused,
        ),
        t(
            "protocol::killed_gdb_leaves_no_tracee",
            killed_gdb_leaves_no_tracee,
        ),
        t("cli::launches_gdb", launches_gdb),
        t("cli::bad_gdb_flags", bad_gdb_flags),
    ]
}

/// Why gdb trials cannot run here, if they cannot.
pub(crate) fn gdb_missing() -> Option<&'static str> {
    static MISSING: OnceLock<Option<&'static str>> = OnceLock::new();
    *MISSING.get_or_init(|| {
        let ok = Command::new("gdb")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!ok).then_some("gdb is not installed")
    })
}

/// How long one gdb session may take (the machine is shared and slow).
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// The C fixture's source, for line numbers.
fn c_source() -> PathBuf {
    build::c_source_dir().join("gdb_target.c")
}

/// The line of the C fixture that holds `marker`.
fn c_line(marker: &str) -> Result<usize, Failed> {
    let text = std::fs::read_to_string(c_source())?;
    text.lines()
        .position(|l| l.contains(marker))
        .map(|i| i + 1)
        .ok_or_else(|| format!("no line with {marker} in gdb_target.c").into())
}

/// The recorded C fixture: (trace, binary, trial directory).
fn recorded_c(trial: &str) -> Result<(PathBuf, PathBuf, TrialDir), Failed> {
    recorded_fixture("gdb_target", &[], 3, trial)
}

/// C fixture `name` built as a PIE and recorded with `args` in a trial
/// directory, exiting with `code`: (trace, binary, trial directory).
pub(crate) fn recorded_fixture(
    name: &'static str,
    args: &[&str],
    code: i32,
    trial: &str,
) -> Result<(PathBuf, PathBuf, TrialDir), Failed> {
    let exe = build::c_fixture(CBuild::pie(name))?;
    let dir = TrialDir::new(trial)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: args.iter().map(std::ffi::OsString::from).collect(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    check!(
        rec.code() == code && trace.join("header.json").exists(),
        "recording {name}: {}",
        rec.describe()
    );
    Ok((trace, exe, dir))
}

/// A `cargo-rrtest replay --gdb-port 0` process, once it listens.
struct Server {
    child: Child,
    addr: String,
    /// The program file the server named for `file`.
    exe: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(trace: &Path) -> Result<Server, Failed> {
        Server::start_with(trace, &[])
    }

    /// A server with more `replay` options.
    fn start_with(trace: &Path, options: &[&str]) -> Result<Server, Failed> {
        let mut child = Command::new(common::cargo_rrtest())
            .args(["replay", "--quiet", "--gdb-port", "0"])
            .args(options)
            .arg(trace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (mut addr, mut exe, mut connect) = (None, None, false);
        let deadline = Instant::now() + SESSION_LIMIT;
        // The `target` line comes last (after `file` and `set sysroot`).
        while addr.is_none() || exe.is_none() || !connect {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                let text = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(format!("the server did not start listening:\n{text}").into());
            };
            if let Some(a) = line.split("listening on ").nth(1) {
                addr = a.split(';').next().map(str::to_owned);
            }
            if let Some(f) = line.trim().strip_prefix("file ") {
                exe = Some(PathBuf::from(f));
            }
            connect |= line.trim().starts_with("target extended-remote ");
        }
        Ok(Server {
            child,
            addr: addr.unwrap_or_default(),
            exe: exe.unwrap_or_default(),
            stderr,
        })
    }

    /// The lines the server printed so far.
    fn printed(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for the server to exit (it must, once gdb is gone).
    fn finish(mut self) -> Result<(i32, String), Failed> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                // The reader thread sees the pipe close with the process.
                std::thread::sleep(Duration::from_millis(100));
                let text = self
                    .stderr
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                return Ok((status.code().unwrap_or(-1), text));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let text = self
                    .stderr
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                return Err(format!("the server did not end after gdb did:\n{text}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The processes the server started (the replay's tracees).
    fn children(&self) -> Vec<i32> {
        children_of(self.child.id() as i32)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The children of every thread of process `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

/// Runs gdb in batch mode with `file EXE`, the connection, then `cmds`;
/// returns its stdout and stderr together.
fn gdb_batch(exe: &Path, addr: &str, cmds: &[&str]) -> Result<String, Failed> {
    gdb_batch_with(exe, &[], addr, cmds)
}

/// [`gdb_batch`] with commands before the connection (`set sysroot`).
fn gdb_batch_with(exe: &Path, pre: &[&str], addr: &str, cmds: &[&str]) -> Result<String, Failed> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx", "-ex", "set width 0", "-ex", "set height 0"])
        .arg("-ex")
        .arg(format!("file {}", exe.display()));
    for c in pre {
        cmd.arg("-ex").arg(c);
    }
    cmd.arg("-ex").arg(format!("target extended-remote {addr}"));
    for c in cmds {
        cmd.arg("-ex").arg(c);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out_pipe = child.stdout.take().ok_or("no stdout")?;
    let mut err_pipe = child.stderr.take().ok_or("no stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SESSION_LIMIT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("gdb ran over {SESSION_LIMIT:?}: {cmds:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    Ok(format!("{out}{err}"))
}

/// A whole session: a server on `trace`, gdb with `cmds`, the server's end.
/// Returns (gdb's output, the server's stderr).
pub(crate) fn session(trace: &Path, exe: &Path, cmds: &[&str]) -> Result<(String, String), Failed> {
    let server = Server::start(trace)?;
    let addr = server.addr.clone();
    let out = gdb_batch(exe, &addr, cmds)?;
    let (code, err) = server.finish()?;
    check!(
        code == 0,
        "the server exited {code} after the session:\n{err}\ngdb:\n{out}"
    );
    Ok((out, err))
}

fn registers_memory_and_mappings() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-registers")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "info registers rip fs_base",
            "p/x $sp",
            "x/gx $sp",
            "p $xmm0.uint128",
            "p $ymm0.v4_int64",
            "info proc mappings",
        ],
    )?;
    // The first instruction is the dynamic loader's entry.
    check!(
        out.contains("in _start () from /lib64/ld-linux-x86-64.so.2") || out.contains("_start ()"),
        "not stopped at the loader's entry:\n{out}"
    );
    check!(out.contains("fs_base"), "no fs_base:\n{out}");
    // argc (0 arguments: 1) is at the initial stack pointer.
    check!(
        out.contains(":\t0x0000000000000001"),
        "argc is not at the stack pointer:\n{out}"
    );
    check!(out.contains("$2 = 0"), "xmm0 not read:\n{out}");
    if cpu_has_avx() {
        check!(
            out.contains("$3 = {0, 0, 0, 0}"),
            "ymm0 not shown on an AVX CPU:\n{out}"
        );
    }
    check!(
        out.contains("Mapped address spaces") && out.contains("[stack]"),
        "no mappings:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

fn continue_to_the_recorded_exit() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-exit")?;
    let (out, err) = session(&trace, &exe, &["continue"])?;
    check!(
        out.contains("exited with code 03]"),
        "no recorded exit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

fn writes_are_refused() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-writes")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "set var $rax = 12345",
            "set {long}$sp = 7",
            "x/gx $sp",
            "continue",
        ],
    )?;
    check!(
        out.contains("Could not write register"),
        "a register write was not refused:\n{out}"
    );
    check!(
        out.contains("Cannot access memory at address"),
        "a memory write was not refused:\n{out}"
    );
    check!(
        out.contains(":\t0x0000000000000001"),
        "memory changed after a refused write:\n{out}"
    );
    check!(
        out.contains("exited with code 03]"),
        "the replay did not end as recorded after refused writes:\n{out}"
    );
    check!(
        err.contains("refused a register write")
            && err.contains("refused a write to memory at 0x")
            && err.contains("(length 8)"),
        "the server did not say what it refused:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// Output of a session with what differs between sessions by design (the
/// port, the private copy's path) replaced.
fn redacted(out: &str, addr: &str) -> String {
    out.replace(addr, "ADDR")
}

fn same_script_same_output() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-twice")?;
    let script = [
        "info registers rip rsp",
        "x/4gx $sp",
        "info threads",
        "continue",
    ];
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let server = Server::start(&trace)?;
        let addr = server.addr.clone();
        let out = gdb_batch(&exe, &addr, &script)?;
        server.finish()?;
        outputs.push(redacted(&out, &addr));
    }
    check!(
        outputs[0] == outputs[1],
        "two sessions differ:\n--- first\n{}\n--- second\n{}",
        outputs[0],
        outputs[1]
    );
    check!(
        outputs[0].contains("exited with code 03]"),
        "{}",
        outputs[0]
    );
    dir.finish();
    Ok(())
}

fn c_break_bt_print() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-break")?;
    let (out, err) = session(
        &trace,
        &exe,
        &["break area", "continue", "bt", "p p->x", "p *p", "p scale"],
    )?;
    let call = c_line("long a = area(&p, 1);")?;
    check!(
        out.contains("Breakpoint 1, area (p=")
            && out.contains(&format!("in main () at {}:{call}", c_source().display())),
        "no breakpoint in area called from main:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("$1 = 6") && out.contains("$2 = {x = 6, y = 7}") && out.contains("$3 = 1"),
        "a parameter or struct field reads wrong:\n{out}"
    );
    dir.finish();
    Ok(())
}

fn c_info_threads() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-threads")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break area",
            "continue",
            "continue",
            "info threads",
            "bt",
            "p scale",
            "p *p",
        ],
    )?;
    check!(
        out.contains("Thread 2 hit Breakpoint 1, area ("),
        "the second thread did not stop at the breakpoint:\n{out}\nserver:\n{err}"
    );
    let listed = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2', '*']) && l.contains("Thread "))
        .count();
    check!(
        listed == 2,
        "`info threads` does not list both threads:\n{out}"
    );
    check!(
        out.contains("in worker (")
            && out.contains("$1 = 2")
            && out.contains("$2 = {x = 7, y = 6}"),
        "the second thread's frame reads wrong:\n{out}"
    );
    dir.finish();
    Ok(())
}

/// `getpid_signals`: SIGALRM every 200 us while the main thread calls a
/// buffered (patched) `getpid` in a loop, so many signals arrive inside
/// the syscall buffer's stub. A breakpoint in the handler stops there; the
/// backtrace runs through the kernel's signal frame to `main`, and no frame
/// is a stub's (`??`); deleting the breakpoint, the replay reaches the
/// recorded exit.
fn c_break_in_signal_handler() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("getpid_signals", &[], 0, "gdb-c-signal-handler")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break on_alarm",
            "ignore 1 20",
            "continue",
            "bt",
            "p ticks",
            "delete",
            "continue",
        ],
    )?;
    check!(
        out.contains("Breakpoint 1, on_alarm ("),
        "the handler's breakpoint was not hit:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("<signal handler called>") && out.contains(" in main ("),
        "the backtrace does not go through the signal frame to main:\n{out}"
    );
    check!(
        !out.lines().any(|l| l.starts_with('#') && l.contains("?? ")),
        "a frame without a symbol (a stub?) in the backtrace:\n{out}"
    );
    check!(
        out.contains("$1 = 20"),
        "not the 21st signal (ticks should be 20):\n{out}"
    );
    check!(
        out.contains("exited normally"),
        "the replay did not reach the recorded exit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// `pipe_pingpong 20` (two threads passing a counter over pipes): at the
/// main thread's 11th call of `compute`, the echo thread waits in a
/// buffered `read` whose site is patched; gdb shows it in `read`, called
/// from `echo`, not at a stub address.
fn c_threads_in_buffered_syscall() -> Result<(), Failed> {
    let (trace, exe, dir) =
        recorded_fixture("pipe_pingpong", &["20"], 0, "gdb-c-threads-buffered")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break compute",
            "ignore 1 10",
            "continue",
            "info threads",
            "thread apply all bt",
        ],
    )?;
    check!(
        out.contains("Thread 1 hit Breakpoint 1, compute ("),
        "the main thread did not stop in compute:\n{out}\nserver:\n{err}"
    );
    let other: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('2') && l.contains("Thread "))
        .collect();
    check!(
        other.len() == 1 && other[0].contains("read ("),
        "`info threads` does not show the echo thread in read:\n{out}\nserver:\n{err}"
    );
    check!(
        !out.contains("??") && out.contains(" in echo ("),
        "a backtrace shows an unknown frame, or not echo:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

fn c_stepi_and_next() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-step")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break area",
            "continue",
            "p/x $pc",
            "stepi",
            "p/x $pc",
            "next",
            "next",
        ],
    )?;
    let pcs: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("$1 = ").or_else(|| l.strip_prefix("$2 = ")))
        .collect();
    check!(
        pcs.len() == 2 && pcs[0] != pcs[1],
        "stepi did not move the pc ({pcs:?}):\n{out}\nserver:\n{err}"
    );
    let write = c_line("watched = result;")?;
    check!(
        out.lines().any(|l| l.starts_with(&format!("{write}\t"))),
        "`next` did not reach line {write}:\n{out}"
    );
    dir.finish();
    Ok(())
}

/// `dbg_buffered`: by its 16th round `io_round`'s `write`, `read` and
/// `rdtsc` sites are patched. `next` over each line, then (in the 17th
/// round) `stepi` until back in `main`: every stop is at an address gdb
/// names (the program, libc), never in a stub or the hook.
fn c_step_over_buffered() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("dbg_buffered", &[], 0, "gdb-c-step-buffered")?;
    let source = std::fs::read_to_string(build::c_source_dir().join("dbg_buffered.c"))?;
    let line = |marker: &str| -> Result<usize, Failed> {
        source
            .lines()
            .position(|l| l.contains(marker))
            .map(|i| i + 1)
            .ok_or_else(|| format!("no line with {marker} in dbg_buffered.c").into())
    };
    // gdb's python, one line: stepi until `main`, noting unnamed stops.
    // gdb's python, one line: stepi until `main`, noting unnamed stops,
    // and whether the disassembly shows the original code (`rdtsc`, not
    // the patch's jump) and a stop right after it.
    let sweep = concat!(
        r#"python exec("unnamed = []\nseen = set()\nn = 0\nwhile n < 2000:\n  "#,
        r#"gdb.execute('stepi', to_string=True)\n  n += 1\n  f = gdb.selected_frame()\n  "#,
        r#"seen.add(f.pc())\n  if f.name() is None: unnamed.append(hex(f.pc()))\n  "#,
        r#"if f.name() == 'main': break\n"#,
        r#"d = [l.split()[0] for l in gdb.execute('disassemble io_round', to_string=True)"#,
        r#".splitlines() if l.strip().startswith('0x')]\n"#,
        r#"t = [l for l in gdb.execute('disassemble io_round', to_string=True).splitlines()"#,
        r#" if l.strip().startswith('0x')]\n"#,
        r#"i = [k for k, l in enumerate(t) if l.endswith('rdtsc')]\n"#,
        r#"after = bool(i) and int(d[i[0] + 1], 16) in seen\n"#,
        r#"print('SWEEP', n, 'UNNAMED', len(unnamed), unnamed[:5], 'RDTSC', bool(i), 'AFTER', after)")"#
    );
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break io_round if i == 15",
            "continue",
            "next",
            "next",
            "next",
            "next",
            "next",
            "delete",
            "break io_round if i == 16",
            "continue",
            sweep,
            "continue",
        ],
    )?;
    // Each `next` printed its line, in order: the write, the read, the
    // load of what the buffered read wrote, the rdtsc.
    let printed: Vec<usize> = out
        .lines()
        .filter_map(|l| l.split_once('\t')?.0.parse().ok())
        .collect();
    let want = [
        line("CHECK(write(")?,
        line("CHECK(read(")?,
        line("long back = landed")?,
        line("__rdtsc()")?,
    ];
    let mut rest = printed.iter();
    check!(
        want.iter().all(|w| rest.any(|p| p == w)),
        "`next` did not go line by line over {want:?} (printed {printed:?}):\n{out}\nserver:\n{err}"
    );
    let sweep_line = out.lines().find(|l| l.starts_with("SWEEP "));
    let steps: Option<u64> = sweep_line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
    check!(
        sweep_line.is_some_and(|l| l.contains("UNNAMED 0 "))
            && steps.is_some_and(|n| (10..2000).contains(&n)),
        "stepi from io_round back to main stopped somewhere unnamed or never got there \
         ({sweep_line:?}):\n{out}\nserver:\n{err}"
    );
    // The patched rdtsc reads as `rdtsc` (not the patch's jump), and a
    // stepi over it stops at the next instruction (not after the one its
    // patch displaced too).
    check!(
        sweep_line.is_some_and(|l| l.contains("RDTSC True AFTER True")),
        "io_round's disassembly shows no rdtsc, or no stepi stopped right after it \
         ({sweep_line:?}):\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("exited normally"),
        "the replay did not end as recorded after the steps:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

fn c_reverse_continue() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-reverse")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break area",
            "continue",
            "continue",
            "p scale",
            "reverse-continue",
            "p scale",
            "continue",
            "p scale",
            "delete",
            "reverse-continue",
            "p/x $pc",
            "continue",
        ],
    )?;
    // Forward: main's call (scale 1), then the thread's (scale 2); back:
    // main's call again; forward again: the thread's, the same state.
    // Without breakpoints, back to the start (the loader's entry), and
    // forward to the recorded end.
    check!(
        out.contains("No more reverse-execution history.")
            && out.contains("in _start () from")
            && out.contains("exited with code 03]"),
        "reverse-continue to the start and on to the end:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("Thread 2 hit Breakpoint 1, area (")
            && out.contains("$1 = 2")
            && out.contains("Thread 1 hit Breakpoint 1, area (")
            && out.contains("$2 = 1")
            && out.contains("$3 = 2"),
        "reverse-continue did not go back to the previous breakpoint hit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// `gdb_fork`: `--process 2` debugs the forked child. The server names
/// it and prints a `set sysroot` line; with it, gdb reads the libraries
/// from the session's sysroot (links to the trace's copies); a breakpoint
/// in `child_work`, which only the child runs, is hit; `bt` shows it
/// called from `main`; `continue` ends with the child's exit status (42).
/// `--process PID` with the child's recorded pid does the same; the
/// sysroot is gone after the session; a process the recording lacks is
/// refused with the list of its processes. Reverse execution in the
/// child: from the third pass through the loop's body, `reverse-continue`
/// goes back to the second (`acc` is 27, not 28), and forward again.
fn c_process_child() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("gdb_fork", &[], 0, "gdb-c-process")?;
    let source = build::c_source_dir().join("gdb_fork.c");
    let text = std::fs::read_to_string(&source)?;
    let line = text
        .lines()
        .position(|l| l.contains("CHILD-WORK"))
        .map(|i| i + 1)
        .ok_or("no CHILD-WORK line in gdb_fork.c")?;
    let in_loop = format!("break gdb_fork.c:{line}");
    let mut child_pid = None;
    for spec in ["2".to_string(), String::new()] {
        let spec = if spec.is_empty() {
            match child_pid {
                Some(pid) => format!("{pid}"),
                None => break,
            }
        } else {
            spec
        };
        let server = Server::start_with(&trace, &["--process", &spec])?;
        let printed = server.printed();
        let sysroot = printed
            .lines()
            .find_map(|l| l.trim().strip_prefix("set sysroot "))
            .map(PathBuf::from)
            .ok_or_else(|| format!("no `set sysroot` line:\n{printed}"))?;
        let named = printed
            .lines()
            .find_map(|l| l.strip_prefix("cargo-rrtest: debugging process "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<i32>().ok());
        check!(
            named.is_some(),
            "--process {spec}: the server did not name the process:\n{printed}"
        );
        child_pid = named;
        let set_root = format!("set sysroot {}", sysroot.display());
        let out = gdb_batch_with(
            &exe,
            &[&set_root],
            &server.addr.clone(),
            &[
                "break child_work",
                "continue",
                "bt",
                "info sharedlibrary",
                &in_loop,
                "continue",
                "continue",
                "continue",
                "p acc",
                "reverse-continue",
                "p acc",
                "continue",
                "p acc",
                "delete",
                "continue",
            ],
        )?;
        let (code, err) = server.finish()?;
        check!(
            code == 0,
            "--process {spec}: server exit {code}:\n{err}\ngdb:\n{out}"
        );
        check!(
            out.contains("$1 = 28") && out.contains("$2 = 27") && out.contains("$3 = 28"),
            "--process {spec}: reverse-continue in the child did not go back one pass and forward again:\n{out}\nserver:\n{err}"
        );
        check!(
            out.contains("Breakpoint 1, child_work (seed=")
                && out.contains("27)")
                && out.contains(" in main ("),
            "--process {spec}: the child's breakpoint and backtrace:\n{out}\nserver:\n{err}"
        );
        let root = sysroot.display().to_string();
        check!(
            out.lines()
                .any(|l| l.contains(&format!("{root}/lib")) && l.contains("libc.so.6")),
            "--process {spec}: libc is not read from the sysroot {root}:\n{out}"
        );
        check!(
            out.contains("exited with code 052]"),
            "--process {spec}: not the child's exit status:\n{out}\nserver:\n{err}"
        );
        check!(
            !sysroot.exists(),
            "the sysroot {root} is still there after the session"
        );
    }
    check!(child_pid.is_some(), "no child pid to try by pid");
    let bad = Command::new(common::cargo_rrtest())
        .args(["replay", "--quiet", "--gdb-port", "0", "--process", "7"])
        .arg(&trace)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&bad.stderr);
    check!(
        bad.status.code() == Some(2) && text.contains("no process 7") && text.contains("2: pid "),
        "--process 7 of two processes: {:?}\n{text}",
        bad.status
    );
    dir.finish();
    Ok(())
}

/// `gdb_signal` raises SIGUSR1 three times: gdb (which stops at SIGUSR1
/// by default) reports the first as SIGUSR1 in its own numbering (30 on
/// the wire, not Linux's 10, which gdb would call SIGBUS), before the
/// handler ran; `continue` delivers it as recorded (the handler counts
/// it) and stops at the second; with `handle SIGUSR1 nostop noprint` the
/// replay runs on to the recorded exit.
fn c_signal_stop() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("gdb_signal", &[], 0, "gdb-c-signal-stop")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "continue",
            "p handled",
            "continue",
            "p handled",
            "handle SIGUSR1 nostop noprint",
            "continue",
        ],
    )?;
    let stops = out
        .matches("Program received signal SIGUSR1, User defined signal 1.")
        .count();
    check!(
        stops == 2 && !out.contains("SIGBUS"),
        "not two SIGUSR1 stops ({stops}):\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("$1 = 0") && out.contains("$2 = 1"),
        "the handler did not run between the stops as recorded:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("exited normally"),
        "the replay did not reach the recorded exit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// `gdb_patched_site` calls glibc's getpid 50 times; the syscall buffer
/// patches its site from the `mov` before the `syscall`, which is then
/// strictly inside the patched region (its bytes are the jump's). A
/// breakpoint on that `syscall` is moved to the stub's copy: it is hit at
/// every call, before and after the patch, shown at the original address
/// in `getpid` called from `main`.
fn c_breakpoint_in_patched_site() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_fixture("gdb_patched_site", &[], 0, "gdb-c-patched-site")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break main",
            "continue",
            "x/2i getpid_fn",
            "break *((char *) getpid_fn + 5)",
            "ignore 2 20",
            "continue",
            "x/i $pc",
            "bt",
            "ignore 2 1000",
            "continue",
            "info breakpoints",
        ],
    )?;
    check!(
        out.lines()
            .any(|l| l.contains("getpid+5>:") && l.contains("syscall")),
        "getpid+5 is not its syscall here (the trial assumes glibc's `mov eax, 39; syscall`):\n{out}"
    );
    check!(
        out.contains("Breakpoint 2, ") && out.contains(" in main ("),
        "the breakpoint in the patched getpid was not hit at its 21st call, from main:\n{out}\nserver:\n{err}"
    );
    check!(
        !out.lines().any(|l| l.starts_with('#') && l.contains("?? ")),
        "a frame without a symbol (a stub?) in the backtrace:\n{out}"
    );
    check!(
        out.contains("breakpoint already hit 50 times"),
        "the breakpoint was not hit at every one of the 50 calls:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("exited normally"),
        "the replay did not reach the recorded exit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// gdb commands that send gdb itself SIGINT (what a terminal's Ctrl-C
/// does) `secs` seconds later, from a timer thread: run them right before
/// a resume to interrupt it.
fn ctrl_c_after(secs: f64) -> String {
    format!(
        "python import threading, os, signal; \
         threading.Timer({secs}, lambda: os.kill(os.getpid(), signal.SIGINT)).start()"
    )
}

/// `syscall_loop` spends most of its replay in buffered `write` and
/// `pread` (their sites patched). Three Ctrl-Cs during `continue` each
/// stop the replay in the program's or libc's code, never in a stub or
/// the preload library: `info symbol $pc` names a symbol not of the
/// preload, `bt` has no unknown frame; then the replay runs on to the
/// recorded exit. (Here the interrupts land at the stubs' traced
/// `syscall`, which maps to the original site; one landing inside the
/// hook, which the engine steps out of first, was not seen on this host.)
fn c_interrupt_not_in_buffer_code() -> Result<(), Failed> {
    let (trace, exe, dir) =
        recorded_fixture("syscall_loop", &["2000000"], 0, "gdb-c-interrupt-buffer")?;
    // About 6 s of replay: three interrupts half a second apart fit.
    let timer = ctrl_c_after(0.5);
    // To `main` first: gdb reads the libraries over the connection at
    // their load, which under load took longer than the first timer (the
    // interrupt then fell into that and the loop ran to its end).
    let mut cmds: Vec<&str> = vec!["break main", "continue", "delete"];
    for _ in 0..3 {
        cmds.extend([timer.as_str(), "continue", "info symbol $pc", "bt"]);
    }
    cmds.push("continue");
    let (out, err) = session(&trace, &exe, &cmds)?;
    let stops = out.matches("received signal SIGINT").count();
    check!(
        stops == 3,
        "not three interrupts ({stops}):\n{out}\nserver:\n{err}"
    );
    let symbols: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" in section ") || l.starts_with("No symbol matches"))
        .collect();
    check!(
        symbols.len() == 3
            && symbols
                .iter()
                .all(|l| l.contains(" in section ") && !l.contains("preload")),
        "an interrupt stopped outside the program's code ({symbols:?}):\n{out}\nserver:\n{err}"
    );
    check!(
        !out.lines()
            .any(|l| l.starts_with('#') && (l.contains("?? ") || l.contains("preload"))),
        "a backtrace shows a stub or the preload:\n{out}"
    );
    check!(
        out.contains("exited normally"),
        "the replay did not reach the recorded exit:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// Ctrl-C during a `reverse-continue` (no breakpoint before: it would go
/// back to the start, re-running the replay to the current position
/// first) stops it where the re-run is, before the position it started
/// from; `continue` from there reaches the same breakpoint again, then the
/// recorded exit.
fn c_interrupt_reverse_continue() -> Result<(), Failed> {
    let (trace, exe, dir) =
        recorded_fixture("syscall_loop", &["600000"], 0, "gdb-c-interrupt-reverse")?;
    let timer = ctrl_c_after(1.0);
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "set breakpoint pending on",
            "break _exit",
            "continue",
            timer.as_str(),
            "reverse-continue",
            "bt",
            "continue",
            "continue",
        ],
    )?;
    let lines: Vec<&str> = out.lines().collect();
    let at = |from: usize, want: &dyn Fn(&str) -> bool| {
        lines[from.min(lines.len())..]
            .iter()
            .position(|l| want(l))
            .map(|i| from + i + 1)
    };
    let first = at(0, &|l| {
        l.starts_with("Breakpoint 1") && l.contains("_exit (")
    });
    let stopped = first.and_then(|i| at(i, &|l| l.contains("received signal SIGINT")));
    check!(
        stopped.is_some() && !out.contains("No more reverse-execution history"),
        "Ctrl-C did not stop the reverse-continue:\n{out}\nserver:\n{err}"
    );
    let again = stopped.and_then(|i| {
        let i = at(i, &|l| {
            l.starts_with("Breakpoint 1") && l.contains("_exit (")
        })?;
        at(i, &|l| l.contains("exited normally"))
    });
    check!(
        again.is_some(),
        "continue after the interrupted reverse-continue did not reach _exit again and the end:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// `watch -l watched` at the end of main, then `reverse-continue`: the
/// last write, the worker thread's, on the line that writes, before it
/// (as rr shows it: "Old value = 84 / New value = 42"); one instruction
/// back and forward again; `continue` then writes 84 again and reaches
/// the breakpoint again.
fn c_reverse_watch() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-c-reverse-watch")?;
    let end = c_line("out(\"worker")?;
    let write = c_line("watched = result;")?;
    let product = c_line("long result = p->x")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            &format!("break gdb_target.c:{end}"),
            "continue",
            "watch -l watched",
            "reverse-continue",
            "p scale",
            "reverse-stepi",
            "stepi",
            "continue",
            "p scale",
            "continue",
        ],
    )?;
    let lines: Vec<&str> = out.lines().collect();
    let at = |from: usize, want: &dyn Fn(&str) -> bool| {
        lines[from.min(lines.len())..]
            .iter()
            .position(|l| want(l))
            .map(|i| from + i + 1)
    };
    let back = at(0, &|l| l.starts_with("Thread 2 hit Hardware watchpoint 2"));
    let values = back.and_then(|i| {
        let i = at(i, &|l| l == "Old value = 84")?;
        at(i, &|l| l == "New value = 42")
    });
    let on_write = values.and_then(|i| {
        let i = at(i, &|l| {
            l.starts_with("area (") && l.contains("scale=scale@entry=2")
        })?;
        at(i, &|l| l.starts_with(&format!("{write}\t")))
    });
    let scale = on_write.and_then(|i| at(i, &|l| l == "$1 = 2"));
    check!(
        scale.is_some(),
        "reverse-continue did not stop at the worker's write, before it, on line {write}:\n{out}\nserver:\n{err}"
    );
    let stepped = scale.and_then(|i| {
        let i = at(i, &|l| {
            l.starts_with("0x") && l.contains(&format!("\t{product}\t"))
        })?;
        at(i, &|l| l.starts_with(&format!("{write}\t")))
    });
    check!(
        stepped.is_some(),
        "reverse-stepi did not go back to line {product}, or stepi not forward to {write}:\n{out}\nserver:\n{err}"
    );
    let again = stepped.and_then(|i| {
        let i = at(i, &|l| l.starts_with("Thread 2 hit Hardware watchpoint 2"))?;
        let i = at(i, &|l| l == "Old value = 42")?;
        let i = at(i, &|l| l == "New value = 84")?;
        let i = at(i, &|l| l == "$2 = 2")?;
        at(i, &|l| l.starts_with("Thread 1 hit Breakpoint 1, main ()"))
    });
    check!(
        again.is_some(),
        "continue after going back did not write 84 again and reach the breakpoint again:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// The demo's unit-test binary of demo-core (built once per run).
fn demo_core_tests() -> Result<PathBuf, Failed> {
    use std::os::unix::fs::PermissionsExt;
    let deps = crate::harness::demo_built().join("debug").join("deps");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("demo_core-") && !n.contains('.'))
        })
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            (m.is_file() && m.permissions().mode() & 0o111 != 0)
                .then(|| Some((m.modified().ok()?, p)))
                .flatten()
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("no demo_core test binary in {}", deps.display()).into())
}

/// The demo's failing `tests::checksum_matches`, recorded.
fn recorded_rust(trial: &str) -> Result<(PathBuf, PathBuf, TrialDir), Failed> {
    recorded_rust_through(trial, &[]).map(|(trace, exe, dir, _)| (trace, exe, dir))
}

/// [`recorded_rust`], the recorder started through `wrapper` (`env
/// NAME=VALUE`); also the recording's stderr.
fn recorded_rust_through(
    trial: &str,
    wrapper: &[&str],
) -> Result<(PathBuf, PathBuf, TrialDir, String), Failed> {
    let exe = demo_core_tests()?;
    let dir = TrialDir::new(trial)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: ["--exact", "tests::checksum_matches", "--nocapture"]
            .map(Into::into)
            .to_vec(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record_wrapped(wrapper, &trace, &[])?;
    check!(
        rec.code() == 101 && trace.join("header.json").exists(),
        "recording the failing demo test: {}",
        rec.describe()
    );
    let stderr = String::from_utf8_lossy(&rec.stderr).into_owned();
    Ok((trace, exe, dir, stderr))
}

fn rust_break_bt_print() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_rust("gdb-rust-break")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break demo_core::checksum",
            "continue",
            "bt 3",
            "p data",
            "p data.length",
            "info threads",
            "finish",
            "info sharedlibrary",
        ],
    )?;
    check!(
        out.contains("hit Breakpoint 1, demo_core::checksum (data=")
            && out.contains("in demo_core::tests::checksum_matches () at demo-core/src/lib.rs:"),
        "no Rust breakpoint and frames:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("$1 = &[u8] [97, 98, 99]") && out.contains("$2 = 3"),
        "the slice reads wrong:\n{out}"
    );
    // The test runs on a thread of its own: two threads.
    check!(
        out.contains("* 2    Thread "),
        "the test's thread is not the second of two:\n{out}"
    );
    // The recorded bug: the checksum is one too high.
    check!(out.contains("Value returned is $3 = 295"), "{out}");
    // The libraries, symbols read (from the trace's copies).
    check!(
        out.lines()
            .any(|l| l.contains("Yes") && l.ends_with("/libc.so.6")),
        "libc is not among the shared libraries with symbols:\n{out}"
    );
    dir.finish();
    Ok(())
}

fn rust_break_on_panic() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_rust("gdb-rust-panic")?;
    let (out, err) = session(
        &trace,
        &exe,
        &["break rust_panic", "continue", "bt", "continue"],
    )?;
    check!(
        out.contains("hit Breakpoint 1, std::panicking::rust_panic ()")
            && out.contains("in demo_core::tests::checksum_matches () at demo-core/src/lib.rs:47"),
        "no stop at the panic with the test in the backtrace:\n{out}\nserver:\n{err}"
    );
    check!(
        out.contains("exited with code 0145]"),
        "the test did not end with 101:\n{out}"
    );
    dir.finish();
    Ok(())
}

fn rust_reverse_continue() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_rust("gdb-rust-reverse")?;
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break rust_panic",
            "continue",
            "break demo_core::tests::checksum_matches",
            "reverse-continue",
            "bt 1",
        ],
    )?;
    check!(
        out.contains(
            "hit Breakpoint 2, demo_core::tests::checksum_matches () at demo-core/src/lib.rs:46"
        ),
        "reverse-continue from the panic did not reach the test body:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// From `rust_panic`, `reverse-finish` frame by frame (eight frames up,
/// as `bt` shows them) leads back into the test body, to the assertion's
/// line.
fn rust_reverse_finish() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_rust("gdb-rust-reverse-finish")?;
    let mut cmds = vec!["break rust_panic", "continue"];
    cmds.extend(["reverse-finish"; 8]);
    cmds.push("bt 1");
    let (out, err) = session(&trace, &exe, &cmds)?;
    check!(
        out.contains("#0  ")
            && out.contains("demo_core::tests::checksum_matches () at demo-core/src/lib.rs:47"),
        "reverse-finish from the panic did not reach the test body:\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// The demo's failing test recorded with `RUST_BACKTRACE=1`: between the
/// last event and `rust_panic` the panic hook symbolized a backtrace. A
/// reverse step counts single steps from an anchor before the position;
/// from the event's start that took longer than any session (the replay
/// watchdog killed it at 60 s). From the call into the function it is a
/// few steps.
fn rust_reverse_step_backtrace() -> Result<(), Failed> {
    let (trace, exe, dir, stderr) = recorded_rust_through(
        "gdb-rust-reverse-step-backtrace",
        &["env", "RUST_BACKTRACE=1"],
    )?;
    check!(
        stderr.contains("stack backtrace"),
        "the recorded panic printed no backtrace:\n{stderr}"
    );
    let (out, err) = session(
        &trace,
        &exe,
        &[
            "break rust_panic",
            "continue",
            "p/x $pc",
            "reverse-stepi",
            "p/x $pc",
            "bt 1",
            "reverse-step",
            "reverse-step",
            "bt 1",
            "stepi",
            "bt 1",
            "break demo_core::tests::checksum_matches",
            "reverse-continue",
            "bt 1",
        ],
    )?;
    let pc = |n: u32| -> Option<u64> {
        let l = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("${n} = 0x")))?;
        u64::from_str_radix(l.trim(), 16).ok()
    };
    check!(
        matches!((pc(1), pc(2)), (Some(a), Some(b)) if b < a),
        "reverse-stepi in rust_panic did not go back ({:?} then {:?}):\n{out}\nserver:\n{err}",
        pc(1),
        pc(2)
    );
    let frames: Vec<&str> = out.lines().filter(|l| l.starts_with("#0  ")).collect();
    check!(
        frames.len() == 4
            && frames[0].contains("rust_panic")
            && frames[1].contains("panic_with_hook")
            && frames[2].contains("panic_with_hook")
            && frames[3]
                .contains("demo_core::tests::checksum_matches () at demo-core/src/lib.rs:4"),
        "reverse-step from rust_panic did not go back into its caller, or reverse-continue \
         not on to the test body ({frames:?}):\n{out}\nserver:\n{err}"
    );
    dir.finish();
    Ok(())
}

/// A raw protocol client.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: &str) -> Result<Raw, Failed> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Raw { stream })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    fn packet(body: &str) -> Vec<u8> {
        let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
        format!("${body}#{sum:02x}").into_bytes()
    }

    /// Reads until a whole `$...#cc` packet arrived; returns the bytes
    /// before it (acks) and its body.
    fn reply(&mut self) -> Result<(String, String), Failed> {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = self.stream.read(&mut byte)?;
            if n == 0 {
                return Err(format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&got)
                )
                .into());
            }
            got.push(byte[0]);
            if let Some(hash) = got.iter().rposition(|b| *b == b'#') {
                if got.len() == hash + 3 {
                    let text = String::from_utf8_lossy(&got).into_owned();
                    let dollar = text.find('$').ok_or("no $")?;
                    let body = text[dollar + 1..text.len() - 3].to_owned();
                    return Ok((text[..dollar].to_owned(), body));
                }
            }
        }
    }

    /// Reads exactly one byte.
    fn byte(&mut self) -> Result<u8, Failed> {
        let mut byte = [0u8; 1];
        self.stream.read_exact(&mut byte)?;
        Ok(byte[0])
    }
}

/// Undoes the protocol's run-length encoding: `c*n` is `c` and then
/// `n - 29` more copies of it.
fn unrle(body: &str) -> String {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '*' {
            let n = chars.next().map_or(0, |n| n as usize - 29);
            let last = out.chars().last().unwrap_or('0');
            out.extend(std::iter::repeat_n(last, n));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether this CPU has AVX (then the server shows the ymm registers).
fn cpu_has_avx() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "avx"))
    })
}

/// A `g` reply holds every register of the target description: 560
/// bytes, 816 with the AVX upper halves (docs/debugging.md), as hex.
fn check_registers(reply: &str, when: &str) -> Result<(), Failed> {
    let regs = unrle(reply);
    let bytes = if cpu_has_avx() { 816 } else { 560 };
    check!(
        regs.len() == 2 * bytes && regs.bytes().all(|b| b.is_ascii_hexdigit()),
        "registers {when}: {reply} ({} hex digits)",
        regs.len()
    );
    Ok(())
}

fn malformed_packets_get_errors() -> Result<(), Failed> {
    let (trace, _exe, dir) = recorded_c("gdb-protocol-malformed")?;
    let server = Server::start(&trace)?;
    let mut raw = Raw::connect(&server.addr)?;
    raw.send(b"+")?;
    // gdbstub cannot parse a bare `qSupported`: an error reply, and the
    // session goes on.
    raw.send(&Raw::packet("qSupported"))?;
    let (_, reply) = raw.reply()?;
    check!(reply.starts_with('E'), "bare qSupported: {reply}");
    raw.send(&Raw::packet("qSupported:multiprocess+;swbreak+"))?;
    let (_, supported) = raw.reply()?;
    check!(supported.contains("PacketSize"), "qSupported: {supported}");
    // A bad checksum: asked again.
    raw.send(b"$g#00")?;
    let nack = raw.byte()?;
    check!(
        nack == b'-',
        "bad checksum answered with {:?}",
        nack as char
    );
    // A malformed memory read: an error reply.
    raw.send(&Raw::packet("mZZZ,QQ"))?;
    let (_, reply) = raw.reply()?;
    check!(reply.starts_with('E'), "malformed `m`: {reply}");
    // Junk between packets is skipped; a register read still works.
    raw.send(b"junk\x7f")?;
    raw.send(&Raw::packet("g"))?;
    let (_, regs) = raw.reply()?;
    check_registers(&regs, "after junk")?;
    // An oversized packet: an error, and the session goes on.
    let mut big = b"$X0,1:".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"#00");
    raw.send(&big)?;
    let (_, reply) = raw.reply()?;
    check!(reply.starts_with('E'), "oversized packet: {reply}");
    // A memory write: refused.
    raw.send(&Raw::packet("M1000,1:00"))?;
    let (_, reply) = raw.reply()?;
    check!(reply.starts_with('E'), "memory write: {reply}");
    raw.send(&Raw::packet("?"))?;
    let (_, stop) = raw.reply()?;
    check!(
        stop.starts_with('T') || stop.starts_with('S'),
        "`?`: {stop}"
    );
    raw.send(&Raw::packet("D"))?;
    let _ = raw.reply();
    drop(raw);
    let (code, err) = server.finish()?;
    check!(code == 0, "server exit {code}:\n{err}");
    check!(
        err.contains("malformed packet"),
        "the server did not say what it answered:\n{err}"
    );
    dir.finish();
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ctrl-C (0x03) while `continue` runs stops the replay (a SIGINT stop
/// reply), after which it goes on to the recorded exit; a connection closed
/// while `continue` runs ends the replay at once, leaving no process.
fn interrupt_and_hang_up() -> Result<(), Failed> {
    let exe = build::c_fixture(CBuild::pie("syscall_loop"))?;
    let dir = TrialDir::new("gdb-protocol-interrupt")?;
    // About 9 s of replay on an idle machine.
    let inv = Invocation {
        exe,
        args: vec!["3000000".into()],
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record_with(&trace, &["--no-verify"])?;
    check!(rec.code() == 0, "recording: {}", rec.describe());
    let connect = |server: &Server| -> Result<Raw, Failed> {
        let mut raw = Raw::connect(&server.addr)?;
        raw.send(b"+")?;
        raw.send(&Raw::packet("qSupported:multiprocess+"))?;
        raw.reply()?;
        raw.send(&Raw::packet("QStartNoAckMode"))?;
        raw.reply()?;
        Ok(raw)
    };

    let server = Server::start(&trace)?;
    let mut raw = connect(&server)?;
    raw.send(&Raw::packet("vCont;c"))?;
    std::thread::sleep(Duration::from_millis(300));
    raw.send(&[0x03])?;
    let (_, stop) = raw.reply()?;
    check!(stop.starts_with("T02"), "Ctrl-C gave {stop}");
    raw.send(&Raw::packet("vCont;c"))?;
    let (_, end) = raw.reply()?;
    check!(end.starts_with("W00"), "after the interrupt: {end}");
    drop(raw);
    let (code, err) = server.finish()?;
    check!(code == 0, "server exit {code}:\n{err}");

    let server = Server::start(&trace)?;
    let tracees = server.children();
    let mut raw = connect(&server)?;
    raw.send(&Raw::packet("vCont;c"))?;
    std::thread::sleep(Duration::from_millis(300));
    let hung_up = Instant::now();
    drop(raw);
    let (code, err) = server.finish()?;
    let took = hung_up.elapsed();
    check!(code == 0, "server exit {code}:\n{err}");
    check!(
        took < Duration::from_secs(5),
        "the replay ran on for {took:?} after gdb hung up"
    );
    for pid in tracees {
        check!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} of the replay is still there"
        );
    }
    dir.finish();
    Ok(())
}

/// A `vFile` reply `F<result>[,<errno>][;<data>]`: (result, errno), hex.
fn f_reply(reply: &str) -> (i64, Option<i64>) {
    let head = reply
        .strip_prefix('F')
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("");
    let (result, errno) = match head.split_once(',') {
        Some((r, e)) => (r, i64::from_str_radix(e, 16).ok()),
        None => (head, None),
    };
    let value = match result.strip_prefix('-') {
        Some(r) => i64::from_str_radix(r, 16).map(|v| -v),
        None => i64::from_str_radix(result, 16),
    };
    (value.unwrap_or(i64::MIN), errno)
}

/// `vFile:open` of `path` read-only, then a `vFile:pread` of `len` bytes at
/// 0: the reply's body (`F<n>;<data>` or `F-1,<errno>`).
fn read_through_vfile(raw: &mut Raw, path: &str, len: usize) -> Result<String, Failed> {
    raw.send(&Raw::packet(&format!(
        "vFile:open:{},0,0",
        hex(path.as_bytes())
    )))?;
    let (_, opened) = raw.reply()?;
    let Some(fd) = opened.strip_prefix('F').filter(|f| !f.starts_with('-')) else {
        return Ok(opened);
    };
    raw.send(&Raw::packet(&format!("vFile:pread:{fd},{len:x},0")))?;
    let (_, data) = raw.reply()?;
    raw.send(&Raw::packet(&format!("vFile:close:{fd}")))?;
    raw.reply()?;
    Ok(data)
}

/// gdb reads the program through `vFile:` by the path it had while
/// recording: the server serves the trace's copy, so a program deleted
/// since (or a library that differs on this machine) is still the one that
/// ran; and `/proc/PID` of the recorded pid is the replay's.
fn files_come_from_the_trace() -> Result<(), Failed> {
    let built = build::c_fixture(CBuild::pie("gdb_target"))?;
    let dir = TrialDir::new("gdb-protocol-files")?;
    let exe = dir.path.join("gone-after-recording");
    std::fs::copy(&built, &exe)?;
    let inv = Invocation {
        exe: exe.clone(),
        args: Vec::new(),
        work: dir.sub("work")?,
    };
    let trace = dir.path.join("trace");
    let rec = inv.record(&trace)?;
    check!(rec.code() == 3, "recording: {}", rec.describe());
    std::fs::remove_file(&exe)?;
    let server = Server::start(&trace)?;
    let mut raw = Raw::connect(&server.addr)?;
    raw.send(b"+")?;
    raw.send(&Raw::packet("qSupported:multiprocess+"))?;
    raw.reply()?;
    raw.send(&Raw::packet("QStartNoAckMode"))?;
    raw.reply()?;
    let exe_name = exe.to_str().ok_or("utf-8")?;
    let head = read_through_vfile(&mut raw, exe_name, 4)?;
    check!(
        f_reply(&head) == (4, None) && head.ends_with(";\x7fELF"),
        "the deleted program through vFile: {head:?}"
    );
    let missing = read_through_vfile(&mut raw, &format!("{exe_name}.not-recorded"), 4)?;
    check!(
        f_reply(&missing) == (-1, Some(2)),
        "a path never recorded: {missing:?}"
    );
    // The recorded pid, from the stop reply (`T05thread:pPID.TID;`).
    raw.send(&Raw::packet("?"))?;
    let (_, stop) = raw.reply()?;
    let pid = stop
        .split("thread:p")
        .nth(1)
        .and_then(|t| t.split('.').next())
        .and_then(|p| i64::from_str_radix(p, 16).ok())
        .ok_or_else(|| format!("no pid in {stop}"))?;
    let maps = read_through_vfile(&mut raw, &format!("/proc/{pid}/maps"), 65536)?;
    check!(
        maps.starts_with('F') && maps.contains("[stack]"),
        "/proc/{pid}/maps: {maps}"
    );
    // Files are read-only: opening for writing is refused with EROFS (30).
    raw.send(&Raw::packet(&format!(
        "vFile:open:{},1,1a4",
        hex(exe_name.as_bytes())
    )))?;
    let (_, refused) = raw.reply()?;
    check!(
        f_reply(&refused) == (-1, Some(30)),
        "open for writing: {refused}"
    );
    raw.send(&Raw::packet("D"))?;
    let _ = raw.reply();
    drop(raw);
    let (code, err) = server.finish()?;
    check!(code == 0, "server exit {code}:\n{err}");
    dir.finish();
    Ok(())
}

fn second_connection_refused() -> Result<(), Failed> {
    let (trace, _exe, dir) = recorded_c("gdb-protocol-second")?;
    let server = Server::start(&trace)?;
    let mut first = Raw::connect(&server.addr)?;
    first.send(b"+")?;
    first.send(&Raw::packet("qSupported:multiprocess+"))?;
    first.reply()?;
    let mut second = Raw::connect(&server.addr)?;
    let (_, refusal) = second.reply()?;
    check!(
        refusal.starts_with("E.") && refusal.contains("already has a debugger attached"),
        "second connection: {refusal}"
    );
    let mut rest = Vec::new();
    let _ = second.stream.read_to_end(&mut rest);
    // The first connection still works.
    first.send(&Raw::packet("g"))?;
    let (_, regs) = first.reply()?;
    check_registers(&regs, "on the first connection after the second")?;
    first.send(&Raw::packet("k"))?;
    drop(first);
    let (code, err) = server.finish()?;
    check!(code == 0, "server exit {code}:\n{err}");
    check!(
        err.contains("refused a second debugger connection"),
        "{err}"
    );
    dir.finish();
    Ok(())
}

fn killed_gdb_leaves_no_tracee() -> Result<(), Failed> {
    let (trace, exe, dir) = recorded_c("gdb-protocol-killed")?;
    let server = Server::start(&trace)?;
    // The `file` line names the replay's copy of the program (the same
    // file but for the loader's name, rewritten to one of equal length).
    check!(
        std::fs::metadata(&server.exe)?.len() == std::fs::metadata(&exe)?.len(),
        "{} is not a copy of the recorded program",
        server.exe.display()
    );
    let tracees = server.children();
    check!(!tracees.is_empty(), "the replay has no process");
    let mut gdb = Command::new("gdb")
        .args(["-batch", "-nx"])
        .arg("-ex")
        .arg(format!("file {}", exe.display()))
        .arg("-ex")
        .arg(format!("target extended-remote {}", server.addr))
        .args(["-ex", "info registers rip", "-ex", "shell sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = BufReader::new(gdb.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    // gdb is connected once it printed the register.
    let deadline = Instant::now() + SESSION_LIMIT;
    while !line.starts_with("rip") {
        line.clear();
        if out.read_line(&mut line)? == 0 || Instant::now() > deadline {
            let _ = gdb.kill();
            return Err("gdb did not print rip".into());
        }
    }
    gdb.kill()?;
    gdb.wait()?;
    let (code, err) = server.finish()?;
    check!(code == 0, "server exit {code}:\n{err}");
    for pid in tracees {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        check!(
            stat.is_empty(),
            "process {pid} of the replay is still there: {stat}"
        );
    }
    dir.finish();
    Ok(())
}

fn launches_gdb() -> Result<(), Failed> {
    let (trace, _exe, dir) = recorded_c("gdb-cli-launch")?;
    let out = Command::new(common::cargo_rrtest())
        .args(["replay", "--quiet", "--gdb"])
        .arg(&trace)
        .args([
            "--",
            "-batch",
            "-nx",
            "-ex",
            "info registers rip",
            "-ex",
            "continue",
        ])
        .env("RRTEST_GDB", "gdb")
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(
        out.status.code() == Some(0),
        "replay --gdb exited {:?}:\n{stdout}\n{stderr}",
        out.status
    );
    check!(
        stderr.contains("is attached to the replay") && stderr.contains("break rust_panic"),
        "no hint:\n{stderr}"
    );
    check!(
        stdout.contains("rip") && stdout.contains("exited with code 03]"),
        "gdb did not run the replay:\n{stdout}\n{stderr}"
    );
    // The program's symbols are loaded: the main executable is named by
    // gdb (its mapping, with symbols, not "No symbol table").
    check!(!stdout.contains("No symbol table is loaded"), "{stdout}");
    dir.finish();
    Ok(())
}

/// Flags (gdb arguments after `--`), environment, and what stderr says.
type BadCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Bad uses of the gdb flags: exit 2 and one error line that says what
/// to do (a port in use, flags without --gdb, a process the recording
/// lacks, a gdb that cannot run).
fn bad_gdb_flags() -> Result<(), Failed> {
    let (trace, _exe, dir) = recorded_c("gdb-cli-bad")?;
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port().to_string();
    let cases: [BadCase; 6] = [
        (&["--break-on-panic"], &[], "--break-on-panic needs --gdb"),
        (&["--process", "2"], &[], "--process needs --gdb"),
        (
            &["--gdb-port", "0", "--process", "5"],
            &[],
            "--process: the recording has no process 5",
        ),
        (&["--gdb-port", &port], &[], "cannot listen on 127.0.0.1"),
        (
            &["--gdb-port", "0", "--", "-batch"],
            &[],
            "arguments after `--` are for the gdb that --gdb starts",
        ),
        (
            &["--gdb"],
            &[("RRTEST_GDB", "/nonexistent/gdb")],
            "--gdb: cannot run /nonexistent/gdb",
        ),
    ];
    for (flags, env, want) in cases {
        let out = Command::new(common::cargo_rrtest())
            .args(["replay", "--quiet"])
            .args(flags.iter().take_while(|f| **f != "--"))
            .arg(&trace)
            .args(flags.iter().skip_while(|f| **f != "--"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        check!(
            out.status.code() == Some(2) && stderr.contains(want),
            "{flags:?}: exit {:?}, want 2 and {want:?}:\n{stderr}",
            out.status
        );
        check!(
            stderr.lines().filter(|l| l.starts_with("error")).count() == 1,
            "{flags:?}: not one error line:\n{stderr}"
        );
    }
    drop(busy);
    dir.finish();
    Ok(())
}
