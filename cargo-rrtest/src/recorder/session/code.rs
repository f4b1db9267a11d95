//! Whose code a thread runs: the program's, or the system's (the C
//! library, the loader, other libraries under `/lib` and `/usr/lib`, the
//! vDSO). Chaos steps count only the program's instructions and never cut
//! a slice in the system's ([`super::steps`]): the races a user hunts are
//! in the program (its own code and what is linked into it, Rust's std
//! included), and a new thread's start-up in the C library (its malloc
//! arena, thousands of instructions) would otherwise take the few cuts a
//! short-lived thread gets.
//!
//! Must not: decide anything about scheduling (the session's steps do),
//! or write to the tracee.

use std::collections::HashMap;

use rrtest_sys::RemoteMem;
use rrtest_trace::Tid;

/// An executable mapping of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: u64,
    end: u64,
    /// The system's code (see the module comment).
    system: bool,
}

/// The executable mappings of each process, read from `/proc/TID/maps`
/// when an address is in none of those known (a new mapping), dropped at
/// an exec.
#[derive(Debug, Default)]
pub(super) struct CodeMaps {
    by_pid: HashMap<Tid, Vec<Region>>,
}

impl CodeMaps {
    /// Whether `ip`, in thread `tid` of process `pid`, is the system's
    /// code. An address in no mapping (unreadable maps) counts as the
    /// program's.
    pub(super) fn is_system(&mut self, pid: Tid, tid: Tid, ip: u64) -> bool {
        self.region(pid, tid, ip).is_some_and(|r| r.system)
    }

    /// The innermost return address on `tid`'s stack (from `rsp` up, at
    /// most 2 KiB) into the program's code: where a thread in the
    /// system's code comes back to the program.
    pub(super) fn return_into_program(&mut self, pid: Tid, tid: Tid, rsp: u64) -> Option<u64> {
        let mem = RemoteMem::new(tid);
        let mut buf = [0u8; 8 * 256];
        // Not across the end of the stack's page run.
        let len = buf.len().min((4096 - (rsp % 4096) as usize) + 4096);
        mem.read_exact(rsp, &mut buf[..len]).ok()?;
        buf[..len].chunks_exact(8).find_map(|w| {
            let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            let r = self.region(pid, tid, v)?;
            if r.system || v < r.start + 7 {
                return None;
            }
            let mut before = [0u8; 7];
            mem.read_exact(v - 7, &mut before).ok()?;
            crate::tracee::ends_with_call(&before).then_some(v)
        })
    }

    /// The process's mappings changed wholesale (an exec).
    pub(super) fn forget(&mut self, pid: Tid) {
        self.by_pid.remove(&pid);
    }

    fn region(&mut self, pid: Tid, tid: Tid, ip: u64) -> Option<Region> {
        let find = |regions: &[Region]| {
            regions
                .iter()
                .find(|r| (r.start..r.end).contains(&ip))
                .copied()
        };
        if let Some(r) = self.by_pid.get(&pid).and_then(|rs| find(rs)) {
            return Some(r);
        }
        let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{tid}/exe")).ok();
        let regions = parse(&maps, exe.as_deref().and_then(|p| p.to_str()));
        let found = find(&regions);
        self.by_pid.insert(pid, regions);
        found
    }
}

/// The executable mappings in `maps` (the text of `/proc/PID/maps`);
/// `exe` (the process's executable) is the program's wherever it lies.
fn parse(maps: &str, exe: Option<&str>) -> Vec<Region> {
    maps.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (a, b) = parts.next()?.split_once('-')?;
            let perms = parts.next()?;
            if !perms.contains('x') {
                return None;
            }
            let path = parts.nth(3).unwrap_or("");
            Some(Region {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                system: Some(path) != exe && is_system_path(path),
            })
        })
        .collect()
}

/// Whether a mapping of `path` is the system's code.
fn is_system_path(path: &str) -> bool {
    ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"]
        .iter()
        .any(|dir| path.starts_with(dir))
        || path == "[vdso]"
        || path == "[vsyscall]"
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
555555554000-555555560000 r--p 00000000 fd:01 123 /work/target/debug/deps/races-1
555555560000-5555556a0000 r-xp 0000c000 fd:01 123 /work/target/debug/deps/races-1
7ffff7c28000-7ffff7dbd000 r-xp 00028000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffff7fc3000-7ffff7fc5000 r-xp 00000000 00:00 0 [vdso]
7ffff7fc5000-7ffff7fef000 r-xp 00001000 fd:01 789 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7ffff7e00000-7ffff7e01000 r-xp 00000000 00:00 0
7ffff7f00000-7ffff7f80000 r-xp 00000000 fd:01 999 /home/u/.rustup/toolchains/x/lib/libstd-1.so
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";

    #[test]
    fn the_c_library_loader_and_vdso_are_the_systems_the_program_and_its_libraries_not() {
        let regions = parse(MAPS, Some("/work/target/debug/deps/races-1"));
        let system: Vec<(u64, bool)> = regions.iter().map(|r| (r.start, r.system)).collect();
        assert_eq!(
            system,
            vec![
                (0x5555_5556_0000, false),
                (0x7fff_f7c2_8000, true),
                (0x7fff_f7fc_3000, true),
                (0x7fff_f7fc_5000, true),
                // Anonymous code (stubs, a JIT): the program's.
                (0x7fff_f7e0_0000, false),
                (0x7fff_f7f0_0000, false),
                (0xffff_ffff_ff60_0000, true),
            ]
        );
    }

    #[test]
    fn an_executable_under_usr_lib_is_the_programs() {
        let maps = "00400000-00500000 r-xp 00000000 fd:01 1 /usr/lib/git-core/git\n";
        let regions = parse(maps, Some("/usr/lib/git-core/git"));
        assert!(!regions[0].system);
        assert!(parse(maps, None)[0].system);
    }
}
