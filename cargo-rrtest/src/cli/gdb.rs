//! `cargo rrtest replay --gdb` / `--gdb-port PORT`: the replay under the
//! gdb server (`replayer::gdb`), and, with `--gdb`, gdb itself: `rust-gdb`
//! (Rust pretty-printers), else `gdb`, with the program's symbols and
//! connected to the server.
//!
//! Process groups: with `--gdb`, cargo-rrtest and the replayed program
//! leave the terminal's foreground process group, and gdb joins it, so a
//! Ctrl-C at the terminal reaches gdb alone (which interrupts the replay
//! through the protocol) and neither kills the replay nor reaches the
//! replayed program as a signal it never got while recorded.
//!
//! This file must not speak the protocol: it starts, waits and reports.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};

use crate::errors::{Error, Result};
use crate::harness::shell_word;
use crate::replayer::gdb::{self, End, Engine, Listener, Sysroot};
use crate::replayer::{ReplayError, ReplayOptions};

/// The hint printed when gdb starts.
pub const HINT: &str =
    "stopped at the program's first instruction; try: break rust_panic / continue / reverse-step";

/// The debugger to run: `RRTEST_GDB` if set, else `rust-gdb` when it is in
/// `PATH` (and `rustc` too: rust-gdb asks it for the pretty-printers),
/// else `gdb`.
fn debugger_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RRTEST_GDB") {
        return Some(PathBuf::from(p));
    }
    let rust_gdb = find_in_path("rust-gdb");
    if rust_gdb.is_some() && find_in_path("rustc").is_some() && find_in_path("gdb").is_some() {
        return rust_gdb;
    }
    find_in_path("gdb")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The gdb commands that connect to `addr`.
fn connect_command(addr: SocketAddr) -> String {
    format!("target extended-remote {addr}")
}

/// The gdb options of `cargo rrtest replay` (flattened into its arguments).
#[derive(Debug, Default, clap::Args)]
pub struct GdbArgs {
    /// Debug the replay in gdb: starts rust-gdb (else gdb; RRTEST_GDB
    /// overrides) with the program's symbols, connected to the replay and
    /// stopped at its first instruction. Reverse execution works.
    #[arg(long, conflicts_with = "check")]
    pub gdb: bool,
    /// Serve the gdb remote protocol on 127.0.0.1:PORT and wait for a
    /// debugger (an IDE, a script); prints the gdb commands that connect.
    /// 0 picks a free port. With --gdb: the port gdb connects to.
    #[arg(long, value_name = "PORT", conflicts_with = "check")]
    pub gdb_port: Option<u16>,
    /// With --gdb: stop at the test's panic (`break rust_panic`, `continue`).
    /// With --gdb-port: print those commands too.
    #[arg(long)]
    pub break_on_panic: bool,
    /// Debug this process of a recorded tree: its recorded pid, or N for
    /// the N-th process the recording created (1: the test process, the
    /// default). The replay runs until it exists and stops at its first
    /// instruction (for a fork, the child's return from fork).
    #[arg(long, value_name = "PID|N")]
    pub process: Option<u32>,
    /// With --gdb: more arguments for gdb, after `--` (e.g. `-batch -ex bt`).
    #[arg(last = true, value_name = "GDB_ARGS")]
    pub gdb_args: Vec<String>,
}

/// Runs the replay under the gdb server.
pub(super) fn exec(args: &GdbArgs, opts: ReplayOptions) -> Result<ExitCode> {
    let program = if args.gdb {
        Some(debugger_program().ok_or_else(|| {
            Error::Usage(
                "--gdb: neither rust-gdb nor gdb is in PATH; install gdb (e.g. `apt-get install gdb`), \
                 or use --gdb-port PORT and connect a debugger of your choice"
                    .into(),
            )
        })?)
    } else {
        None
    };
    let port = args.gdb_port.unwrap_or(0);
    let listener = Listener::bind(port).map_err(|e| {
        Error::Usage(format!(
            "--gdb-port {port}: cannot listen on 127.0.0.1:{port}: {e}; choose another port \
             (0 picks a free one)"
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the gdb server's address", e))?;
    let procs;
    let process = match args.process {
        Some(spec) => {
            procs = gdb::processes(&opts.trace_dir);
            Some(gdb::pick(&procs, spec).map_err(|e| Error::Usage(format!("--process: {e}")))?)
        }
        None => None,
    };
    if program.is_some() {
        leave_foreground_group();
    }
    // The replay starts (and refuses a trace it cannot replay) before gdb does.
    let engine = gdb::start(&opts, process).map_err(replay_error)?;
    let exe = engine.exe();
    // gdb reads the recorded files locally; they live as long as the session.
    super::tempdirs::sweep_stale(&std::env::temp_dir());
    let sysroot = match Sysroot::build(engine.files()) {
        Ok(root) => Some(root),
        Err(e) => {
            eprintln!(
                "cargo-rrtest: warning: no sysroot for gdb ({e}); it reads the recorded files \
                 through the connection instead"
            );
            None
        }
    };
    let sysroot_path = sysroot.as_ref().map(|s| s.path().to_path_buf());
    let forked = process.filter(|p| p.parent.is_some());
    if let Some(p) = forked {
        eprintln!(
            "cargo-rrtest: debugging process {} (created by {}), stopped at its first instruction",
            p.pid,
            p.parent.unwrap_or_default()
        );
    }
    let mut child = match program {
        Some(program) => {
            let child = launch(&program, &exe, sysroot_path.as_deref(), addr, args)?;
            let name = program.file_name().unwrap_or_default().to_string_lossy();
            match forked {
                Some(p) => eprintln!(
                    "cargo-rrtest: {name} is attached to process {} of the replay; try: break FUNCTION / continue / reverse-continue",
                    p.pid
                ),
                None => eprintln!("cargo-rrtest: {name} is attached to the replay; {HINT}"),
            }
            Some(child)
        }
        None => {
            eprintln!("cargo-rrtest: gdb server listening on {addr}; in gdb:");
            eprintln!("  file {}", shell_word(&exe.to_string_lossy()));
            if let Some(root) = &sysroot_path {
                eprintln!("  set sysroot {}", shell_word(&root.to_string_lossy()));
            }
            eprintln!("  {}", connect_command(addr));
            if args.break_on_panic {
                eprintln!("  break rust_panic");
                eprintln!("  continue");
            }
            None
        }
    };
    let mut log = |line: &str| eprintln!("{line}");
    let end = serve_until(engine, listener, &mut child, &mut log);
    let gdb_status = child.as_mut().map(Child::wait);
    drop(sysroot);
    match end? {
        End::Failed(e) => Err(replay_error(e)),
        End::Detached | End::Killed | End::Closed => match gdb_status {
            Some(Ok(status)) if !status.success() && status.code().is_none() => {
                eprintln!("cargo-rrtest: the debugger ended with {status}; the replay was ended");
                Ok(ExitCode::SUCCESS)
            }
            _ => Ok(ExitCode::SUCCESS),
        },
    }
}

/// Serves until the session ends; with a gdb child, also stops waiting for
/// its connection when it exits without connecting.
fn serve_until<E: Engine>(
    engine: E,
    listener: Listener,
    child: &mut Option<Child>,
    log: &mut dyn FnMut(&str),
) -> Result<End> {
    let mut gave_up = || -> bool {
        match child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => false,
        }
    };
    match gdb::serve_with(engine, listener, &mut gave_up, log) {
        Ok(Some(end)) => Ok(end),
        Ok(None) => Err(Error::Other(
            "the debugger exited before it connected to the replay (its messages are above); \
             the replay was ended"
                .into(),
        )),
        Err(e) => Err(Error::io("serving the gdb remote protocol", e)),
    }
}

/// Starts gdb on `exe`, with `sysroot`, connected to `addr`.
fn launch(
    program: &Path,
    exe: &Path,
    sysroot: Option<&Path>,
    addr: SocketAddr,
    args: &GdbArgs,
) -> Result<Child> {
    let mut cmd = Command::new(program);
    cmd.arg("-q").arg(exe);
    if let Some(root) = sysroot {
        cmd.arg("-ex")
            .arg(format!("set sysroot {}", root.display()));
    }
    cmd.arg("-ex").arg(connect_command(addr));
    if args.break_on_panic {
        cmd.args(["-ex", "break rust_panic", "-ex", "continue"]);
    }
    cmd.args(&args.gdb_args);
    // gdb joins the terminal's foreground group (see the module doc).
    if let Some(pgid) = foreground_group() {
        use std::os::unix::process::CommandExt;
        cmd.process_group(pgid);
    }
    rrtest_sys::spawn::with_empty_signal_mask(&mut cmd);
    cmd.spawn().map_err(|e| {
        Error::Usage(format!(
            "--gdb: cannot run {}: {e}; set RRTEST_GDB to a gdb, or use --gdb-port",
            program.display()
        ))
    })
}

static FOREGROUND: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();

fn foreground_group() -> Option<i32> {
    FOREGROUND.get().copied().flatten()
}

/// Moves cargo-rrtest (and so the replay it starts) into a process group
/// of its own when stdin is the terminal, remembering the group gdb joins.
/// A process that leads its group (run directly, not through cargo) cannot
/// leave it: then everything stays in one group, and a Ctrl-C at the
/// terminal ends the replay (and so the session) as in a plain replay.
fn leave_foreground_group() {
    use nix::unistd::{getpgrp, getpid, setpgid, Pid};
    let original = getpgrp();
    let movable = std::io::stdin().is_terminal() && original != getpid();
    let moved = movable && setpgid(Pid::from_raw(0), Pid::from_raw(0)).is_ok();
    let _ = FOREGROUND.set(moved.then_some(original.as_raw()));
}

fn replay_error(e: ReplayError) -> Error {
    match e {
        ReplayError::Divergence(d) => Error::Divergence(d),
        ReplayError::Other(crate::replayer::Error::Trace(e)) => Error::Trace(e),
        ReplayError::Other(e) => Error::Replayer(e),
    }
}
