//! End-to-end: patch real code and run it through the real preload.
//!
//! A C harness (`testdata/stub_harness.c`, built with the system C compiler
//! as a non-PIE executable so its addresses are fixed) describes its syscall
//! sites; the patcher analyzes them and builds stubs and patches; the
//! harness then writes them into itself, loads the embedded preload
//! library, and checks that the patched sites give the same results,
//! registers and red zone as before, through the hook (records appear) and
//! through the bail path (they do not). One site is an `rdtsc`'s: through
//! the hook it returns the synthesized TSC, keeping every other register
//! and the flags; its bail path runs the rdtsc (no `PR_SET_TSC` here, so
//! it does not trap). Skipped, with a message, where there is no C
//! compiler.

use std::fmt::Write as _;
use std::process::Command;

use rrtest_syscalls::patch::*;

const HARNESS: &str = include_str!("testdata/stub_harness.c");
/// Where the stubs go: 512 MiB, within ±2 GiB of a non-PIE executable.
const STUB_BASE: u64 = 0x2000_0000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn patched_sites_run_through_the_preload() {
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("skipped: no C compiler (cc) to build the stub harness");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("stub_harness.c");
    let exe = dir.path().join("stub_harness");
    std::fs::write(&src, HARNESS).unwrap();
    let cc = Command::new("cc")
        .args(["-O1", "-no-pie", "-fno-pie", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let described = Command::new(&exe).arg("describe").output().unwrap();
    assert!(described.status.success());
    let mut plan = String::new();
    let mut count = 0;
    for (i, line) in String::from_utf8(described.stdout)
        .unwrap()
        .lines()
        .enumerate()
    {
        let f: Vec<&str> = line.split(' ').collect();
        let [name, addr, sys, bytes] = f[..] else {
            panic!("bad line {line:?}")
        };
        let addr = u64::from_str_radix(addr, 16).unwrap();
        let sys = u64::from_str_radix(sys, 16).unwrap();
        let code = unhex(bytes);
        let options = AnalyzeOptions {
            boundary: None,
            anchor: if name == "rdtsc" {
                Anchor::Rdtsc
            } else {
                Anchor::Syscall
            },
        };
        let site =
            analyze_with(&code, addr, sys, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stub_addr = STUB_BASE + 0x1000 * i as u64;
        // The harness fills the hook slot: the library's address is only
        // known once it is loaded.
        let stub = build_stub(&site, stub_addr, 0, site.end()).unwrap();
        let patch = patch_bytes(&site, stub_addr).unwrap();
        writeln!(
            plan,
            "{name} {stub_addr:x} {:x} {} {:x} {}",
            stub.layout.hook_slot - stub_addr,
            hex(&stub.code),
            site.start,
            hex(&patch)
        )
        .unwrap();
        count += 1;
    }
    assert_eq!(count, 6);
    let plan_path = dir.path().join("plan");
    std::fs::write(&plan_path, plan).unwrap();

    let so = crate::preload::preload_path().unwrap();
    let run = Command::new(&exe)
        .arg("run")
        .arg(&so)
        .arg(&plan_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "harness failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("harness: ok, 12 records"), "{stdout}");
    // The harness's timing lines (no ptrace here: the buffered path's own
    // cost against a plain syscall or rdtsc); shown with --nocapture.
    for bench in stdout.lines().filter(|l| l.starts_with("bench:")) {
        eprintln!("{bench}");
    }
}
