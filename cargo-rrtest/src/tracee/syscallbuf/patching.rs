//! Patching a syscall or rdtsc site: planning the stub and the `jmp`
//! ([`plan_patch`], [`plan_rdtsc`], [`plan_ahead`]), finding a stub page
//! within reach, planning again in replay from the replayed code
//! ([`replan`]) and checking it gets the recorded bytes, and applying a
//! planned patch to the tracee ([`apply_patch`], [`apply_rdtsc`],
//! [`apply_ahead`]).
//!
//! It must not decide which sites to patch or when (the sessions do), and
//! must not analyze instructions itself: `rrtest_syscalls::patch` does.

use std::io;

use rrtest_sys::ptrace::{self, Regs};
use rrtest_sys::RemoteMem;
use rrtest_syscalls::patch::{self, Anchor, PatchSite, Refusal, Stub};
use rrtest_trace::PatchEvent;

use super::handshake::replace_syscall;
use super::Space;

/// Bytes mapped at a time for stubs.
const STUB_CHUNK: u64 = 0x1_0000;
/// Bytes of code read after a syscall to analyze its site.
const WINDOW: u64 = 64;
/// Bytes of code on either side of a site scanned for branches into it
/// before it is patched ([`branch_nearby`]).
const SCAN: u64 = 1024;

/// Why a site is not patched now.
#[derive(Debug)]
pub enum NotPatched {
    /// Never: remember the syscall address.
    Refused(String),
    /// Not now: a thread's ip lies inside the region.
    Busy,
}

/// A planned patch: the event to record and the stub.
#[derive(Debug)]
pub struct Planned {
    /// What [`apply_patch`] does.
    pub event: PatchEvent,
    /// The stub, for ip mapping.
    pub stub: Stub,
}

/// Plans the patch of the syscall that thread `tid` is stopped at the
/// entry of (`regs`): analyzes the site, builds the stub (in the current
/// stub page, or a new one near the site), and the `jmp`. `busy`: other
/// threads' ips (a region containing one is not patched now).
pub fn plan_patch(
    tid: i32,
    regs: &Regs,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    let syscall_addr = regs.rip - rrtest_abi::SYSCALL_INSN_LEN;
    let nr = regs.orig_rax as i64;
    plan_site(tid, syscall_addr, Anchor::Syscall, nr, space, busy, false)
}

/// Plans the patch of the `rdtsc` at `rdtsc_addr` that thread `tid` is
/// stopped at (its trap's `SIGSEGV`): as [`plan_patch`], the event marked
/// `rdtsc` (its `nr` is 0), the thread to resume at the stub's setup.
pub fn plan_rdtsc(
    tid: i32,
    rdtsc_addr: u64,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    plan_site(tid, rdtsc_addr, Anchor::Rdtsc, 0, space, busy, false)
}

/// Plans, for thread `tid` stopped at the buffer's handshake, the patch of
/// the `syscall` at `syscall_addr` (syscall `nr` when an earlier recording
/// patched it): as [`plan_patch`], the event marked `ahead`. `busy`: the
/// ips of the process's threads.
pub fn plan_ahead(
    tid: i32,
    syscall_addr: u64,
    nr: i64,
    space: &Space,
    busy: &[u64],
) -> io::Result<Result<Planned, NotPatched>> {
    plan_site(tid, syscall_addr, Anchor::Syscall, nr, space, busy, true)
}

fn plan_site(
    tid: i32,
    syscall_addr: u64,
    anchor: Anchor,
    nr: i64,
    space: &Space,
    busy: &[u64],
    ahead: bool,
) -> io::Result<Result<Planned, NotPatched>> {
    if anchor == Anchor::Syscall {
        if let Err(r) = patch::check_syscall(nr) {
            return Ok(Err(NotPatched::Refused(r.to_string())));
        }
    }
    let site = match read_site(tid, syscall_addr, anchor, nr) {
        Ok(s) => s,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    if let Some(r) = branch_nearby(tid, &site) {
        return Ok(Err(NotPatched::Refused(r.to_string())));
    }
    if busy.iter().any(|&ip| site.contains_inside(ip)) {
        return Ok(Err(NotPatched::Busy));
    }
    // The stub's length does not depend on where it goes, except through
    // relocated branches; leave room for the difference.
    let probe = match patch::build_stub(&site, syscall_addr, space.hook_entry, site.end()) {
        Ok(s) => s,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    let need = probe.code.len() as u64 + 32;
    // A site in an image of the recorder's vDSO: its stub goes in the stub
    // page mapped with the image at exec, so that patching it maps nothing
    // (the program's memory map would otherwise depend on which thread
    // first called through the vDSO).
    let (stub_addr, new_page) = match space.vdso_page_of(syscall_addr) {
        Some(page) => match page.room_for(need) {
            Some(at) => (at, None),
            None => {
                return Ok(Err(NotPatched::Refused(
                    "no room left in the stub page of the recorder's vDSO".into(),
                )))
            }
        },
        None => match space.room_for(need) {
            Some(at) if in_range(at, syscall_addr) => (at, None),
            _ => match find_stub_page(tid, syscall_addr)? {
                Some(page) => (page, Some((page, STUB_CHUNK))),
                None => {
                    return Ok(Err(NotPatched::Refused(
                        "no free address for a stub within ±2 GiB".into(),
                    )))
                }
            },
        },
    };
    let planned = match plan_at(&site, space.hook_entry, stub_addr) {
        Ok(p) => p,
        Err(r) => return Ok(Err(NotPatched::Refused(r.to_string()))),
    };
    let (stub, site_bytes, resume) = planned;
    Ok(Ok(Planned {
        event: PatchEvent {
            tid,
            nr,
            new_page,
            stub_addr,
            stub: stub.code.clone(),
            site: site.start,
            site_bytes,
            resume,
            ahead: ahead.then_some(syscall_addr),
            rdtsc: anchor == Anchor::Rdtsc,
        },
        stub,
    }))
}

/// Replay: plans the recorded patch again, from the replayed program's code,
/// and returns the stub when the bytes match the recording's.
pub fn replan(tid: i32, space: &Space, e: &PatchEvent) -> Result<Stub, String> {
    let anchor = if e.rdtsc {
        Anchor::Rdtsc
    } else {
        Anchor::Syscall
    };
    let syscall_addr = match e.ahead {
        Some(addr) => addr,
        None => {
            let regs = ptrace::getregs(tid).map_err(|e| e.to_string())?;
            match anchor {
                // Stopped at the rdtsc's trap: rip is the rdtsc.
                Anchor::Rdtsc => regs.rip,
                Anchor::Syscall => regs.rip - rrtest_abi::SYSCALL_INSN_LEN,
            }
        }
    };
    let site = read_site(tid, syscall_addr, anchor, e.nr).map_err(|r| r.to_string())?;
    let (stub, site_bytes, resume) =
        plan_at(&site, space.hook_entry, e.stub_addr).map_err(|r| r.to_string())?;
    if site.start != e.site
        || stub.code != e.stub
        || site_bytes != e.site_bytes
        || resume != e.resume
    {
        return Err(format!(
            "the site at {syscall_addr:#x} patches differently (stub of {} bytes at {:#x}, resume {resume:#x})",
            stub.code.len(),
            e.stub_addr
        ));
    }
    Ok(stub)
}

fn read_site(tid: i32, syscall_addr: u64, anchor: Anchor, nr: i64) -> Result<PatchSite, Refusal> {
    let mem = RemoteMem::new(tid);
    // Up to WINDOW bytes, not across the end of the page run.
    let mut len = WINDOW;
    let mut code = vec![0u8; len as usize];
    while mem.read_exact(syscall_addr, &mut code).is_err() {
        len = (syscall_addr | 0xfff) + 1 - syscall_addr;
        if (code.len() as u64) == len || len < 2 {
            return Err(Refusal::OutsideWindow { addr: syscall_addr });
        }
        code.truncate(len as usize);
    }
    let options = patch::AnalyzeOptions {
        boundary: None,
        anchor,
    };
    let forward = patch::analyze_with(&code, syscall_addr, syscall_addr, &options);
    if anchor == Anchor::Rdtsc || !matches!(forward, Err(Refusal::TooShort { .. })) {
        return forward;
    }
    // `mov eax, NR; syscall; ret` (glibc's getpid and friends): the `mov`
    // that loads this very syscall's number starts the region. A branch to
    // the `syscall` itself would need eax loaded elsewhere; the analyzer
    // still refuses any branch into the region it can see.
    let mut mov = [0u8; 5];
    let loads_nr = syscall_addr >= 5
        && mem.read_exact(syscall_addr - 5, &mut mov).is_ok()
        && mov[0] == 0xb8
        && i64::from(u32::from_le_bytes([mov[1], mov[2], mov[3], mov[4]])) == nr;
    if !loads_nr {
        return forward;
    }
    let mut window = mov.to_vec();
    window.extend_from_slice(&code);
    patch::analyze_with(
        &window,
        syscall_addr - 5,
        syscall_addr,
        &patch::AnalyzeOptions {
            boundary: Some(syscall_addr - 5),
            anchor,
        },
    )
}

/// A branch into `site`'s region from the code up to [`SCAN`] bytes on
/// either side of it (only while recording: replay plans the recorded
/// patch again from the site's own window, as recorders before this scan
/// did, so their traces replay alike).
fn branch_nearby(tid: i32, site: &PatchSite) -> Option<Refusal> {
    let mem = RemoteMem::new(tid);
    // The whole span, else only the pages of the region itself (a code
    // mapping's edge), else nothing more than the site's own window.
    let spans = [
        (site.start.saturating_sub(SCAN), site.end() + SCAN),
        (site.start & !0xfff, (site.end() | 0xfff) + 1),
    ];
    spans.into_iter().find_map(|(from, to)| {
        let mut code = vec![0u8; (to - from) as usize];
        mem.read_exact(from, &mut code)
            .ok()
            .map(|()| patch::branch_into_region(&code, from, site))
    })?
}

fn plan_at(
    site: &PatchSite,
    hook_entry: u64,
    stub_addr: u64,
) -> Result<(Stub, Vec<u8>, u64), Refusal> {
    let stub = patch::build_stub(site, stub_addr, hook_entry, site.end())?;
    let bytes = patch::patch_bytes(site, stub_addr)?;
    let resume = stub
        .original_to_stub(site.syscall_addr)
        .ok_or(Refusal::NotASyscall {
            addr: site.syscall_addr,
        })?;
    Ok((stub, bytes, resume))
}

fn in_range(a: u64, b: u64) -> bool {
    const LIMIT: u64 = (1 << 31) - (1 << 20);
    a.abs_diff(b) < LIMIT
}

/// A free, page-aligned address for a stub page near `site`: the free gap
/// between mappings closest to it, within ±2 GiB.
fn find_stub_page(tid: i32, site: u64) -> io::Result<Option<u64>> {
    const LOW: u64 = 0x1_0000_0000;
    const HIGH: u64 = 0x7fff_f000_0000;
    // The recorder's own vDSO lies below LOW, out of its reach. Its sites'
    // stubs go in the stub page mapped with it; only recordings written as
    // format version 3 (`VdsoMode::OwnV3`) map none, and put them above
    // the recorder's fixed areas (mapped by now, and found in the maps).
    let low = if crate::tracee::vdso::contains(site) {
        rrtest_abi::AREA_ADDR
    } else {
        LOW
    };
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps"))?;
    let mut ranges: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?.0.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    ranges.sort_unstable();
    let mut best: Option<u64> = None;
    let mut consider = |at: u64| {
        if in_range(at, site)
            && in_range(at + STUB_CHUNK, site)
            && best.is_none_or(|b| at.abs_diff(site) < b.abs_diff(site))
        {
            best = Some(at);
        }
    };
    let mut prev_end = low;
    // A guard page on either side of the stub page.
    for &(start, end) in ranges.iter().chain(std::iter::once(&(HIGH, HIGH))) {
        let (lo, hi) = (
            prev_end.max(low) + 0x1000,
            start.min(HIGH).saturating_sub(0x1000),
        );
        if hi > lo && hi - lo >= STUB_CHUNK {
            consider(hi - STUB_CHUNK);
            consider(lo);
        }
        prev_end = prev_end.max(end);
    }
    Ok(best)
}

/// Applies a patch to thread `tid`, stopped at the seccomp entry of the
/// site's syscall (`regs`): maps the new stub page (in place of that
/// syscall), writes the stub and the site, and moves the thread to the
/// stub with `rax` = the syscall number, the syscall skipped. Returns the
/// stop the thread is left at: `true` for an exit stop, `false` for the
/// entry stop.
pub fn apply_patch(tid: i32, regs: &Regs, e: &PatchEvent) -> io::Result<bool> {
    let mem = RemoteMem::new(tid);
    let mut at_exit = false;
    if let Some((addr, len)) = e.new_page {
        stub_page_mapped(
            addr,
            replace_syscall(tid, regs, libc::SYS_mmap, stub_page_args(addr, len))?,
        )?;
        at_exit = true;
    }
    write_patch(&mem, e)?;
    let mut r = *regs;
    r.rip = e.resume;
    r.rax = e.nr as u64;
    if !at_exit {
        r.orig_rax = u64::MAX;
    }
    ptrace::setregs(tid, &r)?;
    Ok(at_exit)
}

/// Applies an rdtsc site's patch ([`plan_rdtsc`]) to thread `tid`, stopped
/// at the trap (`SIGSEGV`) of that `rdtsc` (`regs`): maps its new stub page
/// if it has one (through the fixed page's privileged entry), writes the
/// stub and the `jmp`, and moves the thread to the stub's setup, so that
/// this rdtsc goes through the hook too. The caller resumes the thread
/// without the signal.
pub fn apply_rdtsc(tid: i32, regs: &Regs, e: &PatchEvent) -> io::Result<()> {
    apply_ahead(tid, e)?;
    let mut r = *regs;
    r.rip = e.resume;
    // Not the faulting instruction any more: drop the fault's resume flag
    // (it would hide an execution breakpoint at the stub's first one).
    r.eflags &= !(1 << 16);
    ptrace::setregs(tid, &r)
}

/// Applies a patch planned `ahead` ([`plan_ahead`]) to the process of
/// `tid`, stopped at the buffer's handshake (a syscall's exit stop): maps
/// its new stub page if it has one, writes the stub and the `jmp`. The
/// thread's registers are left alone.
pub fn apply_ahead(tid: i32, e: &PatchEvent) -> io::Result<()> {
    if let Some((addr, len)) = e.new_page {
        stub_page_mapped(
            addr,
            crate::tracee::inject_via_fixed_page(tid, libc::SYS_mmap, stub_page_args(addr, len))?,
        )?;
    }
    write_patch(&RemoteMem::new(tid), e)
}

/// The `mmap` arguments of a stub page: `len` bytes at exactly `addr`, r-x.
fn stub_page_args(addr: u64, len: u64) -> [u64; 6] {
    crate::tracee::anon_mmap_args(addr, len, libc::PROT_READ | libc::PROT_EXEC)
}

/// Checks that the stub page's `mmap` returned `addr`.
fn stub_page_mapped(addr: u64, got: i64) -> io::Result<()> {
    if got as u64 != addr {
        return Err(io::Error::other(format!(
            "mapping a stub page at {addr:#x}: mmap returned {got:#x}"
        )));
    }
    Ok(())
}

/// Writes a patch's stub and the `jmp` at its site.
fn write_patch(mem: &RemoteMem, e: &PatchEvent) -> io::Result<()> {
    mem.write_code(&[(e.stub_addr, &e.stub), (e.site, &e.site_bytes)])
}

/// Records a planned patch in `space`: the next stub of its page goes
/// after its stub (a vDSO image's stub page keeps a cursor of its own, so
/// a patch there leaves the current page of the other sites' stubs as it
/// is).
pub fn note_patch(space: &mut Space, e: &PatchEvent, stub: Stub) {
    space.note_stub(e.stub_addr, e.stub.len() as u64, e.new_page);
    space.rdtsc_sites |= e.rdtsc;
    space.stubs.push(stub);
}
