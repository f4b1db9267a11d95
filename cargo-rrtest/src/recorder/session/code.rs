//! Whose code a thread runs: the program's, or the system's (the C
//! library, the loader, other libraries under `/lib` and `/usr/lib`, the
//! vDSO). Chaos steps count only the program's instructions and never cut
//! a slice in the system's ([`super::steps`]): the races a user hunts are
//! in the program (its own code and what is linked into it, Rust's std
//! included), and a new thread's start-up in the C library (its malloc
//! arena, thousands of instructions) would otherwise take the few cuts a
//! short-lived thread gets.
//!
//! Also where replay's in-tracee filter can patch a process's code, asked
//! for a spin probe's address ([`CodeMaps::probe_place`]).
//!
//! Must not: decide anything about scheduling (the session's steps do),
//! or write to the tracee.

use std::collections::HashMap;

use rrtest_sys::RemoteMem;
use rrtest_trace::Tid;
use tracing::debug;

/// An executable mapping of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    start: u64,
    end: u64,
    /// The system's code (see the module comment).
    system: bool,
    /// The process's executable.
    exe: bool,
}

/// The executable mappings of each process, read from `/proc/TID/maps`
/// when an address is in none of those known (a new mapping), dropped at
/// an exec.
#[derive(Debug, Default)]
pub(super) struct CodeMaps {
    by_pid: HashMap<Tid, Vec<Region>>,
    /// Per process, how many addresses were asked about, in the
    /// program's code and in the system's (about one a stepped
    /// instruction), and how many times its maps were read: a debug log
    /// at its exec or exit and at the end says where chaos stepping
    /// spends its time.
    asked: HashMap<Tid, (u64, u64, u64)>,
    /// The entry point (`AT_ENTRY`) of each process exec'd and not yet
    /// seen in its executable's code: the loader runs before it, called
    /// from nowhere in the program, so no return address leads back.
    entries: HashMap<Tid, u64>,
    /// Per process, whether replay's in-tracee filter can patch each
    /// address asked about (`tracee::filter_site::find`: a read of the
    /// maps and a backward decoding of the code before it, costly at each
    /// spin check of a debug build's threads). A mapping replaced at the
    /// same address after an answer (a library unloaded and another
    /// loaded there) keeps its answer until an exec: a point moved ahead
    /// where the filter cannot patch is searched stop by stop, and a probe
    /// ahead that the thread does not reach gives way to one where it is.
    patchable: HashMap<Tid, HashMap<u64, bool>>,
}

impl CodeMaps {
    /// Whether `ip`, in thread `tid` of process `pid`, is the system's
    /// code. An address in no mapping (unreadable maps) counts as the
    /// program's.
    pub(super) fn is_system(&mut self, pid: Tid, tid: Tid, ip: u64) -> bool {
        let region = self.region(pid, tid, ip);
        let system = region.is_some_and(|r| r.system);
        if region.is_some_and(|r| r.exe) {
            self.entries.remove(&pid);
        }
        let asked = self.asked.entry(pid).or_default();
        if system {
            asked.1 += 1;
        } else {
            asked.0 += 1;
        }
        system
    }

    /// Where a thread in the system's code comes back to the program: the
    /// innermost return address on `tid`'s stack (from `rsp` up, at most
    /// 2 KiB) into the program's code; else, for the main thread of a
    /// process in its loader after an exec (not yet seen in its
    /// executable), the executable's entry point, where the loader jumps
    /// when it is done (single-stepping the loader cost about 10 000
    /// stops an exec'd child, 2048 after each of its syscalls).
    pub(super) fn return_into_program(&mut self, pid: Tid, tid: Tid, rsp: u64) -> Option<u64> {
        self.return_address(pid, tid, rsp).or_else(|| {
            (tid == pid)
                .then(|| self.entries.get(&pid).copied())
                .flatten()
        })
    }

    fn return_address(&mut self, pid: Tid, tid: Tid, rsp: u64) -> Option<u64> {
        let mem = RemoteMem::new(tid);
        let mut buf = [0u8; 8 * 256];
        // Not across the end of the stack's page run.
        let len = buf.len().min((4096 - (rsp % 4096) as usize) + 4096);
        mem.read_exact(rsp, &mut buf[..len]).ok()?;
        let scan = |regions: &[Region]| {
            buf[..len].chunks_exact(8).find_map(|w| {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                let r = regions.iter().find(|r| (r.start..r.end).contains(&v))?;
                if r.system || v < r.start + 7 {
                    return None;
                }
                let mut before = [0u8; 7];
                mem.read_exact(v - 7, &mut before).ok()?;
                crate::tracee::ends_with_call(&before).then_some(v)
            })
        };
        // The words are looked up in the known mappings, read again once
        // at most (most words on a stack are no code address: reading the
        // maps at each made this scan most of a chaos recording's time).
        if let Some(found) = self.by_pid.get(&pid).and_then(|rs| scan(rs)) {
            return Some(found);
        }
        scan(self.reload(pid, tid)?)
    }

    /// Process `pid` exec'd (its thread `tid` now the only one): its
    /// mappings changed wholesale, and its loader runs to the new
    /// executable's entry point.
    pub(super) fn exec(&mut self, pid: Tid, tid: Tid) {
        self.forget(pid);
        if let Some(entry) = auxv_entry(tid, AT_ENTRY) {
            self.entries.insert(pid, entry);
        }
    }

    /// Process `pid` is gone (or its image is): what is known of it is
    /// moot, and its id may be reused by another process.
    pub(super) fn forget(&mut self, pid: Tid) {
        self.by_pid.remove(&pid);
        self.entries.remove(&pid);
        self.patchable.remove(&pid);
        if let Some((program, system, reads)) = self.asked.remove(&pid) {
            debug!(pid, program, system, reads, "stepped addresses");
        }
    }

    /// Where to probe thread `tid` of process `pid`, stopped at `ip`, for
    /// a spin loop, when not there: replay's filter cannot patch `ip`, and
    /// can patch a place the thread reaches from it by straight code and
    /// forward jumps ([`crate::tracee::filter_site::ahead`]). A spin point
    /// at `ip` would be searched stop by stop, a pass at a time.
    pub(super) fn probe_place(&mut self, pid: Tid, tid: Tid, ip: u64) -> Option<u64> {
        let known = self.patchable.entry(pid).or_default();
        let mut maps: Option<String> = None;
        let mut patchable = |at: u64| {
            *known.entry(at).or_insert_with(|| {
                let maps = maps.get_or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{tid}/maps")).unwrap_or_default()
                });
                crate::tracee::filter_site::find(tid, at, maps).is_ok()
            })
        };
        if patchable(ip) {
            return None;
        }
        crate::tracee::filter_site::ahead(tid, ip, patchable).filter(|&place| place != ip)
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
        find(self.reload(pid, tid)?)
    }

    /// Reads process `pid`'s executable mappings (through its thread
    /// `tid`) again.
    fn reload(&mut self, pid: Tid, tid: Tid) -> Option<&[Region]> {
        let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{tid}/exe")).ok();
        let regions = parse(
            &maps,
            exe.as_deref().and_then(|p| p.to_str()),
            auxv_entry(tid, AT_BASE),
        );
        self.asked.entry(pid).or_default().2 += 1;
        self.by_pid.insert(pid, regions);
        self.by_pid.get(&pid).map(Vec::as_slice)
    }
}

impl Drop for CodeMaps {
    fn drop(&mut self) {
        for (pid, (program, system, reads)) in &self.asked {
            debug!(pid, program, system, reads, "stepped addresses");
        }
    }
}

/// The executable mappings in `maps` (the text of `/proc/PID/maps`);
/// `exe` (the process's executable) is the program's wherever it lies, the
/// recorder's own vDSO (anonymous, at its fixed address, with the stub
/// page of its sites) is the system's as the kernel's is, and
/// the dynamic loader (the file mapped at `loader_base`, the process's
/// `AT_BASE`, or a file named like one) is the system's wherever it lies:
/// a cut in its lazy-binding resolver (`_dl_fixup` and what it calls)
/// does not replay (below).
fn parse(maps: &str, exe: Option<&str>, loader_base: Option<u64>) -> Vec<Region> {
    let lines: Vec<(u64, u64, &str, &str)> = maps
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (a, b) = parts.next()?.split_once('-')?;
            let perms = parts.next()?;
            let path = parts.nth(3).unwrap_or("");
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
                perms,
                path,
            ))
        })
        .collect();
    let loader = loader_base
        .filter(|&base| base != 0)
        .and_then(|base| {
            lines
                .iter()
                .find(|&&(start, end, _, _)| (start..end).contains(&base))
        })
        .map(|&(_, _, _, path)| path)
        .filter(|path| path.starts_with('/'));
    lines
        .into_iter()
        .filter(|&(_, _, perms, _)| perms.contains('x'))
        .map(|(start, end, _, path)| {
            let is_loader = Some(path) == loader || is_loader_name(path);
            Region {
                start,
                end,
                system: is_loader
                    || (Some(path) != exe && is_system_path(path))
                    || (path.is_empty() && crate::tracee::vdso::contains(start)),
                exe: Some(path) == exe && !is_loader,
            }
        })
        .collect()
}

/// Whether `path` names a dynamic loader (glibc's `ld-linux*.so*`,
/// `ld64.so*`, musl's `ld-musl-*`): the system's even where it lies
/// outside the system's directories (a private glibc, a Nix store) or is
/// run as the program (`ld.so ./prog`).
fn is_loader_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    path.starts_with('/')
        && (name.starts_with("ld-linux")
            || name.starts_with("ld64.so")
            || name.starts_with("ld-musl-"))
        && name.contains(".so")
}

const AT_BASE: u64 = 7;
const AT_ENTRY: u64 = 9;

/// The value of auxiliary vector entry `key` of thread `tid`'s process.
fn auxv_entry(tid: Tid, key: u64) -> Option<u64> {
    let auxv = std::fs::read(format!("/proc/{tid}/auxv")).ok()?;
    auxv.chunks_exact(16).find_map(|pair| {
        let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        (word(&pair[..8]) == key).then(|| word(&pair[8..]))
    })
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
6fffc000-6ffff000 r-xp 00000000 00:00 0
70000000-70001000 r-xp 00000000 00:00 0
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
        let regions = parse(MAPS, Some("/work/target/debug/deps/races-1"), None);
        let system: Vec<(u64, bool)> = regions.iter().map(|r| (r.start, r.system)).collect();
        assert_eq!(
            system,
            vec![
                // The recorder's own vDSO (the image, then its stub page)
                // is the system's; its fixed page
                // is nobody's code the program calls (anonymous).
                (0x6fff_c000, true),
                (0x7000_0000, false),
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
        let regions = parse(maps, Some("/usr/lib/git-core/git"), None);
        assert!(!regions[0].system);
        assert!(parse(maps, None, None)[0].system);
    }

    #[test]
    fn entries_are_read_from_the_auxiliary_vector() {
        let me = std::process::id() as Tid;
        const AT_PAGESZ: u64 = 6;
        assert_eq!(auxv_entry(me, AT_PAGESZ), Some(4096));
        assert!(auxv_entry(me, AT_ENTRY).is_some_and(|e| e != 0));
        assert_eq!(auxv_entry(me, 0xdead), None);
    }

    /// Regression: a program built against a loader outside the system's
    /// directories (`-Wl,--dynamic-linker=/opt/...`, a Nix store) had the
    /// loader counted as its own code, and chaos cut inside its
    /// lazy-binding resolver: those traces did not replay.
    #[test]
    fn the_loader_is_the_systems_wherever_it_lies() {
        let maps = "\
555555554000-555555555000 r--p 00000000 fd:01 1 /home/u/prog
555555555000-555555556000 r-xp 00001000 fd:01 1 /home/u/prog
7ffff7fca000-7ffff7fcb000 r--p 00000000 fd:01 2 /opt/glibc/lib/ld-2.39.so
7ffff7fcb000-7ffff7ff0000 r-xp 00001000 fd:01 2 /opt/glibc/lib/ld-2.39.so
7ffff7d00000-7ffff7e00000 r-xp 00028000 fd:01 3 /opt/glibc/lib/libc.so.6
";
        let system = |base| -> Vec<bool> {
            parse(maps, Some("/home/u/prog"), base)
                .iter()
                .map(|r| r.system)
                .collect()
        };
        // Found by AT_BASE (its first mapping), whatever its name.
        assert_eq!(system(Some(0x7fff_f7fc_a000)), vec![false, true, false]);
        assert_eq!(system(None), vec![false, false, false]);
        // By name: glibc's and musl's loaders, also run as the program.
        for name in [
            "/nix/store/x-glibc/lib/ld-linux-x86-64.so.2",
            "/opt/musl/lib/ld-musl-x86_64.so.1",
        ] {
            let maps = format!("7ffff7fcb000-7ffff7ff0000 r-xp 00001000 fd:01 2 {name}\n");
            let r = parse(&maps, Some(name), None)[0];
            assert!(r.system && !r.exe, "{name}");
        }
        assert!(!is_loader_name("/home/u/ld-linux-notes.txt"));
    }
}
