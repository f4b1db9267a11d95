//! CPU facts of the machine we run on: the CPUID table, the time stamp
//! counter and the synthesized one (for emulating the tracee's trapped
//! `rdtsc`), and binding a
//! tracee to one CPU (CPUID answers differ between CPUs).

use serde::{Deserialize, Serialize};

/// One CPUID leaf/subleaf and its answer (stored in a trace's header as is:
/// `rrtest-trace` re-exports it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpuidLeaf {
    /// eax in.
    pub leaf: u32,
    /// ecx in.
    pub subleaf: u32,
    /// eax, ebx, ecx, edx out.
    pub regs: [u32; 4],
}

/// Leaves whose subleaves (`ecx`) select different information.
const SUBLEAF_LEAVES: &[u32] = &[
    0x4, 0x7, 0xb, 0xd, 0xf, 0x10, 0x12, 0x14, 0x17, 0x18, 0x1d, 0x1e, 0x1f, 0x20, 0x24,
];

fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads the CPUID table: every basic and extended leaf, and up to 16
/// subleaves of the leaves that have them.
pub fn cpuid_table() -> Vec<CpuidLeaf> {
    let mut table = Vec::new();
    for base in [0u32, 0x8000_0000] {
        let max = cpuid(base, 0)[0];
        if max < base || max - base > 0x100 {
            continue;
        }
        for leaf in base..=max {
            let subleaves = if SUBLEAF_LEAVES.contains(&leaf) {
                16
            } else {
                1
            };
            for subleaf in 0..subleaves {
                let regs = cpuid(leaf, subleaf);
                // Enumerations end with an all-zero subleaf (cache levels,
                // topology levels, ...); leaf 0xd (XSAVE components) has
                // holes, so it is read whole. Each cpuid is a VM exit on a
                // virtual machine: this keeps a recording's start cheap.
                if subleaf > 0 && regs == [0; 4] && leaf != 0xd {
                    break;
                }
                table.push(CpuidLeaf {
                    leaf,
                    subleaf,
                    regs,
                });
            }
        }
    }
    table
}

/// `XCR0`, the register states the kernel enabled for user space; `None`
/// where the CPU or the kernel does not enable `xgetbv` (CPUID 1 ecx
/// OSXSAVE clear).
pub fn xcr0() -> Option<u64> {
    if cpuid(1, 0)[2] & (1 << 27) == 0 {
        return None;
    }
    // SAFETY: OSXSAVE is set, so `xgetbv` with ecx = 0 is allowed in user
    // mode; it only reads a register.
    Some(unsafe { core::arch::x86_64::_xgetbv(0) })
}

/// Whether this host can make `cpuid` fault for a thread
/// (`arch_prctl(ARCH_SET_CPUID, 0)`, which needs CPU and kernel support).
/// Probed on a short-lived thread of its own: the setting is per thread, and
/// the probe turns faulting back off before that thread ends.
pub fn cpuid_faulting() -> std::io::Result<bool> {
    const ARCH_GET_CPUID: libc::c_long = 0x1011;
    const ARCH_SET_CPUID: libc::c_long = 0x1012;
    std::thread::spawn(|| {
        // SAFETY: arch_prctl with these codes takes and returns integers
        // only; it touches no memory of ours.
        let arch_prctl = |code: libc::c_long, arg: libc::c_long| unsafe {
            libc::syscall(libc::SYS_arch_prctl, code, arg)
        };
        if arch_prctl(ARCH_GET_CPUID, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if arch_prctl(ARCH_SET_CPUID, 0) < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENODEV) => Ok(false),
                _ => Err(e),
            };
        }
        if arch_prctl(ARCH_SET_CPUID, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the CPUID faulting probe panicked")))
}

/// The version of the GNU C library this process runs with, e.g. `2.36`
/// (the host's userland: a recorder in a chroot reports the root's).
pub fn glibc_version() -> String {
    // SAFETY: gnu_get_libc_version takes nothing and returns a pointer to a
    // static NUL-terminated string in libc, valid for the process's life.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    v.to_string_lossy().into_owned()
}

/// Reads the time stamp counter (and, for `rdtscp`, `IA32_TSC_AUX`).
pub fn rdtsc(with_aux: bool) -> (u64, Option<u32>) {
    if with_aux {
        let mut aux = 0u32;
        // SAFETY: rdtscp is unprivileged (we are not under PR_TSC_SIGSEGV) and
        // writes only `aux`, a valid local.
        let tsc = unsafe { core::arch::x86_64::__rdtscp(&mut aux) };
        (tsc, Some(aux))
    } else {
        // SAFETY: rdtsc is unprivileged and has no memory effects.
        (unsafe { core::arch::x86_64::_rdtsc() }, None)
    }
}

/// The synthesized TSC the tracee's `rdtsc`/`rdtscp` read
/// (`rrtest_abi::tsc`): `CLOCK_MONOTONIC_RAW` in nanoseconds, the clock the
/// preload reads for a patched rdtsc site, so that both agree.
pub fn synthetic_tsc() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_RAW
    // always exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    rrtest_abi::tsc::from_timespec(ts.tv_sec, ts.tv_nsec)
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> std::io::Result<usize> {
    nix::sched::sched_getcpu().map_err(std::io::Error::from)
}

/// The CPUs the process could run on before [`bind_to_cpu`] first bound one
/// of its own threads (None: unknown).
static BEFORE_BINDING: std::sync::OnceLock<Option<nix::sched::CpuSet>> = std::sync::OnceLock::new();

/// Binds thread `tid` (0: the calling thread; and so every thread and
/// process it creates later, which inherit the mask) to `cpu` alone.
///
/// `cpuid` answers per CPU: leaf 1 `EBX[31:24]` (and leaves 0xb, 0x1f and
/// 0x8000_001e) hold the executing CPU's APIC id, and the loader stores
/// leaf 1 in `_rtld_global_ro`. Recording and replay bind the program to the
/// same CPU so that these bytes, which an execution point's memory digest
/// covers, are the same in both.
pub fn bind_to_cpu(tid: i32, cpu: usize) -> std::io::Result<()> {
    let target = nix::unistd::Pid::from_raw(tid);
    if tid == 0 {
        BEFORE_BINDING.get_or_init(|| nix::sched::sched_getaffinity(target).ok());
    }
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(std::io::Error::from)?;
    nix::sched::sched_setaffinity(target, &set).map_err(std::io::Error::from)
}

/// If the calling thread may run on one CPU only (a helper thread that
/// inherited [`bind_to_cpu`]'s mask from the recorder's or replayer's
/// thread), lets it run on the other CPUs the process had before binding
/// (all CPUs, if that is unknown) instead, if there are any: its work then
/// overlaps the program's instead of taking turns with it. Only a matter
/// of speed: where it fails, nothing changes.
pub fn leave_bound_cpu() -> std::io::Result<()> {
    use nix::sched::CpuSet;
    let me = nix::unistd::Pid::from_raw(0);
    let cpus = |set: &CpuSet| -> Vec<usize> {
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect()
    };
    let now = nix::sched::sched_getaffinity(me).map_err(std::io::Error::from)?;
    let [bound] = cpus(&now)[..] else {
        return Ok(());
    };
    let before = BEFORE_BINDING.get().copied().flatten();
    let mut others = CpuSet::new();
    for c in (0..CpuSet::count()).filter(|&c| c != bound) {
        if before.is_none_or(|b| b.is_set(c).unwrap_or(false)) {
            others.set(c).map_err(std::io::Error::from)?;
        }
    }
    if cpus(&others).is_empty() {
        return Ok(());
    }
    nix::sched::sched_setaffinity(me, &others).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread bound to one CPU leaves it for the process's others.
    #[test]
    fn a_bound_thread_leaves_its_cpu_for_the_others() {
        std::thread::spawn(|| {
            let cpus = |set: nix::sched::CpuSet| {
                (0..nix::sched::CpuSet::count())
                    .filter(|&c| set.is_set(c).unwrap_or(false))
                    .collect::<Vec<_>>()
            };
            let me = nix::unistd::Pid::from_raw(0);
            let allowed = cpus(nix::sched::sched_getaffinity(me).expect("affinity"));
            bind_to_cpu(0, allowed[0]).expect("bind");
            assert_eq!(
                cpus(nix::sched::sched_getaffinity(me).expect("affinity")),
                [allowed[0]]
            );
            leave_bound_cpu().expect("leave");
            let now = cpus(nix::sched::sched_getaffinity(me).expect("affinity"));
            if allowed.len() > 1 {
                assert_eq!(now, allowed[1..], "the others the process had");
            } else {
                assert_eq!(now, allowed, "the only CPU stays");
            }
        })
        .join()
        .expect("thread");
    }
}
