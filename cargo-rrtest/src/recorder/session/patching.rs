//! Syscall- and rdtsc-site patching for the syscall buffer: patching a
//! site at its first traced syscall (or trap), patching ahead the sites
//! earlier recordings of the same executable patched, and recording each
//! patch.
//!
//! Must not: analyse or write machine code itself (`tracee::syscallbuf`
//! and `recorder::patch` do), or resume a thread it did not patch.

use std::collections::HashMap;

use tracing::{debug, trace};

use super::{ptrace_err, Error, Session, State};
use crate::tracee::syscallbuf::{self, Space};
use rrtest_sys::ptrace::{self, Regs};
use rrtest_trace::{Event, Tid};

/// An executable's identity: device, inode, size, mtime (seconds,
/// nanoseconds).
pub(super) type ExeKey = (u64, u64, u64, i64, i64);

pub(super) fn exe_key(program: &std::path::Path) -> Option<ExeKey> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(program).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The syscall sites (address of the `syscall`, its number) that recordings
/// made by this process patched in an executable's first process, by
/// executable: a recorder server records the tests of one binary one after
/// another, and the same libraries load at the same addresses (no ASLR).
/// The next recording of that executable patches them ahead, at the
/// buffer's handshake, each checked against the code it finds there, and
/// saves a stop per site.
fn known_sites() -> &'static std::sync::Mutex<KnownSites> {
    static SITES: std::sync::OnceLock<std::sync::Mutex<KnownSites>> = std::sync::OnceLock::new();
    SITES.get_or_init(Default::default)
}

/// Per executable, its patched sites: (address of the `syscall`, number).
type KnownSites = HashMap<ExeKey, Vec<(u64, i64)>>;

/// The most sites remembered per executable.
const MAX_KNOWN_SITES: usize = 256;

impl Session {
    /// Writes an applied patch's event and notes its stub in `pid`'s space.
    fn record_patch(&mut self, pid: Tid, planned: syscallbuf::Planned) -> Result<(), Error> {
        self.emit(Event::Patch(planned.event.clone()))?;
        if let Some(space) = self.spaces.get_mut(&pid) {
            syscallbuf::note_patch(space, &planned.event, planned.stub);
        }
        self.stats.patched_sites += 1;
        Ok(())
    }

    /// At the buffer's handshake in the program's first process: patches
    /// the sites earlier recordings of this executable patched
    /// ([`known_sites`]) that the code here still allows, each recorded as
    /// a `Patch` event marked `ahead`. `regs`: the thread's, at the
    /// handshake's entry (its ip is the one busy address).
    pub(super) fn patch_ahead(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<(), Error> {
        let Some(key) = self.exe else {
            return Ok(());
        };
        let sites = known_sites()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
            .unwrap_or_default();
        for (syscall_addr, nr) in sites {
            let Some(space) = self.spaces.get(&pid) else {
                return Ok(());
            };
            if space.stub_at(syscall_addr).is_some() {
                continue;
            }
            let planned = syscallbuf::plan_ahead(tid, syscall_addr, nr, space, &[regs.rip])
                .map_err(ptrace_err("planning a syscall-site patch", tid))?;
            let Ok(planned) = planned else {
                continue;
            };
            syscallbuf::apply_ahead(tid, &planned.event)
                .map_err(ptrace_err("patching a syscall site ahead", tid))?;
            trace!(tid, nr, site = planned.event.site, "patched ahead");
            self.record_patch(pid, planned)?;
            self.stats.patched_ahead += 1;
        }
        Ok(())
    }

    /// Patches the site of the syscall `tid` is stopped at the entry of
    /// (`regs`), if it is one the buffer takes and the site can be patched:
    /// the thread then goes through the stub (this syscall included), and
    /// the function returns true.
    pub(super) fn try_patch(&mut self, tid: Tid, pid: Tid, regs: &Regs) -> Result<bool, Error> {
        let nr = regs.orig_rax as i64;
        let syscall_addr = regs.rip.wrapping_sub(rrtest_abi::SYSCALL_INSN_LEN);
        let buffered = u64::try_from(nr)
            .ok()
            .and_then(rrtest_abi::buffered::plan_for)
            .is_some();
        if !buffered {
            return Ok(false);
        }
        let Some(planned) = self.plan_site(tid, pid, syscall_addr, |space, busy| {
            syscallbuf::plan_patch(tid, regs, space, busy)
                .map_err(ptrace_err("planning a syscall-site patch", tid))
        })?
        else {
            return Ok(false);
        };
        syscallbuf::apply_patch(tid, regs, &planned.event)
            .map_err(ptrace_err("patching a syscall site", tid))?;
        trace!(
            tid,
            nr,
            site = planned.event.site,
            stub = planned.event.stub_addr,
            "patched"
        );
        self.record_patch(pid, planned)?;
        if let (Some(key), true) = (self.exe, pid == self.leader) {
            let mut known = known_sites().lock().unwrap_or_else(|e| e.into_inner());
            let sites = known.entry(key).or_default();
            if sites.len() < MAX_KNOWN_SITES && !sites.iter().any(|&(a, _)| a == syscall_addr) {
                sites.push((syscall_addr, nr));
            }
        }
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.state = State::Running;
        task.resumed_at = None;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
        Ok(true)
    }

    /// Plans the patch of the site at `addr` (a `syscall` or `rdtsc`) in
    /// `tid`'s process `pid` with `plan`, given the space and where the
    /// process's other threads are. `None`: not now (no buffer, a vfork
    /// child, a thread inside the region) or never (a site in a stub or
    /// the fixed pages, or one the analysis refused, remembered).
    fn plan_site(
        &mut self,
        tid: Tid,
        pid: Tid,
        addr: u64,
        plan: impl FnOnce(
            &Space,
            &[u64],
        ) -> Result<Result<syscallbuf::Planned, syscallbuf::NotPatched>, Error>,
    ) -> Result<Option<syscallbuf::Planned>, Error> {
        let Some(space) = self.spaces.get(&pid) else {
            return Ok(None);
        };
        if space.borrowed
            || space.refused.contains(&addr)
            || space.stub_at(addr).is_some()
            || (rrtest_abi::FIXED_PAGE_ADDR..rrtest_abi::AREA_ADDR).contains(&addr)
        {
            return Ok(None);
        }
        let busy = self.busy_ips(tid, pid);
        match plan(space, &busy)? {
            Ok(p) => Ok(Some(p)),
            Err(syscallbuf::NotPatched::Busy) => Ok(None),
            Err(syscallbuf::NotPatched::Refused(why)) => {
                debug!(tid, addr, %why, "site not patched");
                if let Some(space) = self.spaces.get_mut(&pid) {
                    space.refused.insert(addr);
                }
                Ok(None)
            }
        }
    }

    /// Where the other threads of process `pid` than `tid` are, or will
    /// return to (a region holding one of them is not patched now).
    fn busy_ips(&self, tid: Tid, pid: Tid) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|&(&t, task)| t != tid && task.pid == pid)
            .filter_map(|(&t, task)| match task.state {
                State::InSyscall { entered, .. } => Some(entered.ip),
                State::Ready(_) | State::JobStopped => ptrace::getregs(t).ok().map(|r| r.rip),
                _ => None,
            })
            .collect()
    }

    /// Patches the site of the `rdtsc` whose trap `tid` is stopped at
    /// (`regs`), in a process with a syscall buffer, when the site can be
    /// patched (the safety rules of syscall sites): the thread then goes
    /// through the stub, this rdtsc included, the trap's signal discarded,
    /// and the function returns true. Sites in stubs (a bailed stub's own
    /// `rdtsc`) and in the fixed pages are never patched; nor are rdtsc
    /// sites patched ahead.
    pub(super) fn try_patch_rdtsc(&mut self, tid: Tid, regs: &Regs) -> Result<bool, Error> {
        let ip = regs.rip;
        let Some(pid) = self.tasks.get(&tid).map(|t| t.pid) else {
            return Ok(false);
        };
        let Some(planned) = self.plan_site(tid, pid, ip, |space, busy| {
            syscallbuf::plan_rdtsc(tid, ip, space, busy)
                .map_err(ptrace_err("planning an rdtsc-site patch", tid))
        })?
        else {
            return Ok(false);
        };
        syscallbuf::apply_rdtsc(tid, regs, &planned.event)
            .map_err(ptrace_err("patching an rdtsc site", tid))?;
        trace!(
            tid,
            site = planned.event.site,
            stub = planned.event.stub_addr,
            "patched rdtsc"
        );
        self.record_patch(pid, planned)?;
        let task = self.tasks.get_mut(&tid).expect("task exists");
        task.resumed_at = None;
        ptrace::cont(tid, 0).map_err(ptrace_err("PTRACE_CONT", tid))?;
        Ok(true)
    }
}
