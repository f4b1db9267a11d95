//! Facts about a host that decide whether a trace recorded on one machine
//! replays on another: the CPU features a program can observe and choose
//! code by, the XSAVE layout, the C library, CPUID faulting; and the
//! comparison of a trace's recording host with this one ([`check`]).
//!
//! Nothing here emulates CPUID: without CPUID faulting a replayed program
//! executes the host's `cpuid`, so a difference in what it observes is
//! reported before replay (and refused unless forced), never papered over.
//! This module reads the host and the trace header only; it runs nothing.

use std::sync::OnceLock;

use rrtest_trace::{CpuidLeaf, Header, HostFacts};

/// One CPU feature: its name (as `/proc/cpuinfo` and Rust's
/// `is_x86_feature_detected!` spell it, where they agree), where CPUID
/// reports it: (leaf, subleaf, register 0-3 = eax, ebx, ecx, edx, bit).
#[derive(Debug)]
pub struct Feature {
    /// The name shown to users.
    pub name: &'static str,
    leaf: u32,
    subleaf: u32,
    reg: usize,
    bit: u32,
}

const fn f(name: &'static str, leaf: u32, subleaf: u32, reg: usize, bit: u32) -> Feature {
    Feature {
        name,
        leaf,
        subleaf,
        reg,
        bit,
    }
}

const EAX: usize = 0;
const EBX: usize = 1;
const ECX: usize = 2;
const EDX: usize = 3;

/// The features that select code at run time: glibc's ifunc resolvers
/// (string and memory functions, math), `is_x86_feature_detected!`, the
/// `memchr` crate's dispatch, and the instructions the selected code uses.
pub const FEATURES: &[Feature] = &[
    f("sse3", 1, 0, ECX, 0),
    f("pclmulqdq", 1, 0, ECX, 1),
    f("ssse3", 1, 0, ECX, 9),
    f("fma", 1, 0, ECX, 12),
    f("cmpxchg16b", 1, 0, ECX, 13),
    f("sse4.1", 1, 0, ECX, 19),
    f("sse4.2", 1, 0, ECX, 20),
    f("movbe", 1, 0, ECX, 22),
    f("popcnt", 1, 0, ECX, 23),
    f("aes", 1, 0, ECX, 25),
    f("xsave", 1, 0, ECX, 26),
    f("osxsave", 1, 0, ECX, 27),
    f("avx", 1, 0, ECX, 28),
    f("f16c", 1, 0, ECX, 29),
    f("rdrand", 1, 0, ECX, 30),
    f("fsgsbase", 7, 0, EBX, 0),
    f("bmi1", 7, 0, EBX, 3),
    f("hle", 7, 0, EBX, 4),
    f("avx2", 7, 0, EBX, 5),
    f("bmi2", 7, 0, EBX, 8),
    f("erms", 7, 0, EBX, 9),
    f("rtm", 7, 0, EBX, 11),
    f("avx512f", 7, 0, EBX, 16),
    f("avx512dq", 7, 0, EBX, 17),
    f("rdseed", 7, 0, EBX, 18),
    f("adx", 7, 0, EBX, 19),
    f("avx512ifma", 7, 0, EBX, 21),
    f("clflushopt", 7, 0, EBX, 23),
    f("clwb", 7, 0, EBX, 24),
    f("avx512pf", 7, 0, EBX, 26),
    f("avx512er", 7, 0, EBX, 27),
    f("avx512cd", 7, 0, EBX, 28),
    f("sha", 7, 0, EBX, 29),
    f("avx512bw", 7, 0, EBX, 30),
    f("avx512vl", 7, 0, EBX, 31),
    f("avx512vbmi", 7, 0, ECX, 1),
    f("waitpkg", 7, 0, ECX, 5),
    f("avx512vbmi2", 7, 0, ECX, 6),
    f("gfni", 7, 0, ECX, 8),
    f("vaes", 7, 0, ECX, 9),
    f("vpclmulqdq", 7, 0, ECX, 10),
    f("avx512vnni", 7, 0, ECX, 11),
    f("avx512bitalg", 7, 0, ECX, 12),
    f("avx512vpopcntdq", 7, 0, ECX, 14),
    f("rdpid", 7, 0, ECX, 22),
    f("movdiri", 7, 0, ECX, 27),
    f("movdir64b", 7, 0, ECX, 28),
    f("fsrm", 7, 0, EDX, 4),
    f("avx512vp2intersect", 7, 0, EDX, 8),
    f("serialize", 7, 0, EDX, 14),
    f("amx-bf16", 7, 0, EDX, 22),
    f("avx512fp16", 7, 0, EDX, 23),
    f("amx-tile", 7, 0, EDX, 24),
    f("amx-int8", 7, 0, EDX, 25),
    f("sha512", 7, 1, EAX, 0),
    f("avxvnni", 7, 1, EAX, 4),
    f("avx512bf16", 7, 1, EAX, 5),
    f("fzlrm", 7, 1, EAX, 10),
    f("fsrs", 7, 1, EAX, 11),
    f("fsrcs", 7, 1, EAX, 12),
    f("avxifma", 7, 1, EAX, 23),
    f("avxvnniint8", 7, 1, EDX, 4),
    f("avx10", 7, 1, EDX, 19),
    f("xsaveopt", 0xd, 1, EAX, 0),
    f("xsavec", 0xd, 1, EAX, 1),
    f("xsaves", 0xd, 1, EAX, 3),
    f("lahfsahf", 0x8000_0001, 0, ECX, 0),
    f("lzcnt", 0x8000_0001, 0, ECX, 5),
    f("sse4a", 0x8000_0001, 0, ECX, 6),
    f("prfchw", 0x8000_0001, 0, ECX, 8),
    f("xop", 0x8000_0001, 0, ECX, 11),
    f("fma4", 0x8000_0001, 0, ECX, 16),
    f("tbm", 0x8000_0001, 0, ECX, 21),
    f("rdtscp", 0x8000_0001, 0, EDX, 27),
];

fn leaf(table: &[CpuidLeaf], leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
    table
        .iter()
        .find(|l| l.leaf == leaf && l.subleaf == subleaf)
        .map(|l| l.regs)
}

/// The names of [`FEATURES`] that `table` reports, in table order.
pub fn features_of(table: &[CpuidLeaf]) -> Vec<String> {
    FEATURES
        .iter()
        .filter(|f| leaf(table, f.leaf, f.subleaf).is_some_and(|r| r[f.reg] >> f.bit & 1 == 1))
        .map(|f| f.name.to_owned())
        .collect()
}

/// The CPU's vendor string (CPUID 0), e.g. `GenuineIntel`.
pub fn vendor_of(table: &[CpuidLeaf]) -> String {
    let Some(r) = leaf(table, 0, 0) else {
        return String::new();
    };
    let bytes: Vec<u8> = [r[1], r[3], r[2]]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\0')
        .to_owned()
}

/// The brand string (CPUID 0x80000002..4), trimmed; else the vendor.
pub fn model_of(table: &[CpuidLeaf]) -> String {
    let mut bytes = Vec::new();
    for l in 0x8000_0002..=0x8000_0004 {
        match leaf(table, l, 0) {
            Some(r) => bytes.extend(r.iter().flat_map(|x| x.to_le_bytes())),
            None => return vendor_of(table),
        }
    }
    let s = String::from_utf8_lossy(&bytes);
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        vendor_of(table)
    } else {
        s.to_owned()
    }
}

/// Family, model and stepping (CPUID 1 eax, with the extended fields).
fn signature(table: &[CpuidLeaf]) -> Option<(u32, u32, u32)> {
    let eax = leaf(table, 1, 0)?[0];
    let base_family = eax >> 8 & 0xf;
    let family = if base_family == 0xf {
        base_family + (eax >> 20 & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        (eax >> 16 & 0xf) << 4 | (eax >> 4 & 0xf)
    } else {
        eax >> 4 & 0xf
    };
    Some((family, model, eax & 0xf))
}

/// The XSAVE layout of the states enabled in `xcr0`: the area's size (CPUID
/// 0xd.0 ebx) and each enabled state component's (number, size, offset)
/// (CPUID 0xd.N eax, ebx) beyond the legacy x87/SSE ones.
pub fn xsave_layout(table: &[CpuidLeaf], xcr0: u64) -> (u32, Vec<(u32, u32, u32)>) {
    let size = leaf(table, 0xd, 0).map_or(0, |r| r[1]);
    let parts = (2..64u32)
        .filter(|&i| xcr0 >> i & 1 == 1)
        .map(|i| {
            let r = leaf(table, 0xd, i).unwrap_or([0; 4]);
            (i, r[0], r[1])
        })
        .collect();
    (size, parts)
}

/// The C library the running process uses, e.g. `glibc 2.36` (the
/// program's too, unless it brings its own: the recorder runs in the
/// program's root).
pub fn libc_version() -> String {
    format!("glibc {}", rrtest_sys::cpu::glibc_version())
}

/// This host's facts, read once per process (a recorder server records
/// many tests).
pub fn facts() -> HostFacts {
    static FACTS: OnceLock<HostFacts> = OnceLock::new();
    FACTS
        .get_or_init(|| {
            let table = rrtest_sys::cpu::cpuid_table();
            let xcr0 = rrtest_sys::cpu::xcr0().unwrap_or(0);
            HostFacts {
                cpu_model: model_of(&table),
                cpu_features: features_of(&table),
                xcr0,
                xsave_size: xsave_layout(&table, xcr0).0,
                libc: libc_version(),
                cpuid_faulting: rrtest_sys::cpu::cpuid_faulting().unwrap_or(false),
            }
        })
        .clone()
}

/// Whether this host can replay a trace, and what differs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Check {
    /// Differences a program can observe (CPU features, vendor, XSAVE
    /// layout): replay would take other code paths, or execute
    /// instructions this CPU lacks. Replay refuses unless forced.
    pub refusals: Vec<String>,
    /// Differences that may still make replay diverge (loudly), shown as
    /// warnings: the kernel, the CPU model, the C library of the replayer.
    pub warnings: Vec<String>,
    /// What is fine, or worth knowing, for `--check`'s report only.
    pub notes: Vec<String>,
}

impl Check {
    /// No refusal.
    pub fn can_replay(&self) -> bool {
        self.refusals.is_empty()
    }
}

/// This host, as [`compare`] needs it.
#[derive(Debug)]
pub struct ThisHost {
    /// Its CPUID table.
    pub cpuid: Vec<CpuidLeaf>,
    /// Its facts.
    pub facts: HostFacts,
    /// `uname -srm`.
    pub kernel: String,
}

impl ThisHost {
    /// The host this process runs on.
    pub fn current(kernel: String) -> ThisHost {
        ThisHost {
            cpuid: rrtest_sys::cpu::cpuid_table(),
            facts: facts(),
            kernel,
        }
    }
}

/// Compares the recording host in `header` with `this`.
pub fn compare(header: &Header, this: &ThisHost) -> Check {
    let mut c = Check::default();
    let rec = &header.cpuid;
    if rec.is_empty() {
        c.warnings
            .push("the trace has no CPUID table: the CPUs cannot be compared".into());
    } else {
        let (rv, hv) = (vendor_of(rec), vendor_of(&this.cpuid));
        if rv != hv {
            c.refusals.push(format!(
                "CPU vendor: recorded on {rv}, this host is {hv} (the C library tunes its routines by vendor)"
            ));
        }
        let (rf, hf) = (features_of(rec), features_of(&this.cpuid));
        let missing: Vec<&str> = rf
            .iter()
            .filter(|f| !hf.contains(f))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = hf
            .iter()
            .filter(|f| !rf.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            c.refusals.push(format!(
                "CPU features the recording host had and this host lacks: {}",
                missing.join(" ")
            ));
        }
        if !extra.is_empty() {
            c.refusals.push(format!(
                "CPU features this host has and the recording host lacked: {}",
                extra.join(" ")
            ));
        }
        if missing.is_empty() && extra.is_empty() {
            c.notes.push(format!(
                "CPU features: the same {} that select code",
                rf.len()
            ));
        }
        // The XSAVE layout: with the recorded XCR0 when the trace has it,
        // else with this host's (the recorded table then says whether the
        // same states had the same places).
        let rec_xcr0 = header.host.as_ref().map(|h| h.xcr0);
        if let Some(x) = rec_xcr0 {
            if x != this.facts.xcr0 {
                c.refusals.push(format!(
                    "enabled register states (XCR0): recorded {x:#x}, this host {:#x}",
                    this.facts.xcr0
                ));
            }
        }
        let xcr0 = rec_xcr0.unwrap_or(this.facts.xcr0);
        let (rs, rp) = xsave_layout(rec, xcr0);
        let (hs, hp) = xsave_layout(&this.cpuid, this.facts.xcr0);
        if rs != hs || rp != hp {
            let differing: Vec<String> = rp
                .iter()
                .filter(|r| !hp.contains(r))
                .map(|(i, size, off)| format!("component {i}: {size} bytes at {off}"))
                .collect();
            c.refusals.push(format!(
                "XSAVE layout: recorded {rs} bytes, this host {hs} bytes{}{}",
                if differing.is_empty() {
                    ""
                } else {
                    "; recorded "
                },
                differing.join(", ")
            ));
        } else {
            c.notes.push(format!("XSAVE layout: the same ({hs} bytes)"));
        }
        match (signature(rec), signature(&this.cpuid)) {
            (Some(r), Some(h)) if r != h => c.warnings.push(format!(
                "CPU model: recorded on family {:#x} model {:#x} stepping {}, this host is family {:#x} model {:#x} stepping {} \
                 (the C library may tune routine choice by model; a difference shows as a divergence)",
                r.0, r.1, r.2, h.0, h.1, h.2
            )),
            _ => {}
        }
    }
    if header.kernel != this.kernel {
        c.warnings.push(format!(
            "kernel: recorded on {}, this host runs {} (the vDSO and the address-space layout come from this kernel; a difference shows as a divergence)",
            header.kernel, this.kernel
        ));
    } else {
        c.notes.push(format!("kernel: the same ({})", this.kernel));
    }
    if header.loaders.is_empty() {
        // A note, not a warning: a static program has none, and needs none.
        c.notes.push(
            "the trace keeps no dynamic loader (a static program, or recorded by an older cargo-rrtest): \
             a dynamic program gets this host's, which must lay memory out as the recording host's did"
                .into(),
        );
    } else {
        // Each once (a script's interpreter usually has the program's).
        let mut paths: Vec<&str> = Vec::new();
        for l in &header.loaders {
            if !paths.contains(&l.path.as_str()) {
                paths.push(&l.path);
            }
        }
        c.notes.push(format!(
            "dynamic loader: from the trace ({}); libraries: from the trace",
            paths.join(", ")
        ));
    }
    if !header.interpreters.is_empty() {
        let mut paths: Vec<&str> = header
            .interpreters
            .iter()
            .map(|i| i.path.as_str())
            .collect();
        paths.sort_unstable();
        paths.dedup();
        c.notes.push(format!(
            "#! script interpreters: from the trace ({})",
            paths.join(", ")
        ));
    }
    if this.facts.cpuid_faulting {
        c.notes.push(
            "this host has CPUID faulting, but replay does not use it yet: the program executes this host's cpuid".into(),
        );
    }
    c
}

/// [`compare`] with the host this process runs on.
pub fn check(header: &Header) -> Check {
    compare(header, &ThisHost::current(kernel()))
}

/// `uname -srm`, as the recorder writes it in the header.
pub fn kernel() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_from(table: Vec<CpuidLeaf>, facts: Option<HostFacts>, kernel: &str) -> Header {
        let mut h = rrtest_trace::test_support::header();
        h.cpuid = table;
        h.host = facts;
        h.kernel = kernel.into();
        h
    }

    fn this() -> ThisHost {
        ThisHost::current("Linux test x86_64".into())
    }

    fn clear(table: &mut [CpuidLeaf], name: &str) {
        let f = FEATURES.iter().find(|f| f.name == name).unwrap();
        for l in table.iter_mut() {
            if l.leaf == f.leaf && l.subleaf == f.subleaf {
                l.regs[f.reg] &= !(1 << f.bit);
            }
        }
    }

    fn set(table: &mut [CpuidLeaf], name: &str) {
        let f = FEATURES.iter().find(|f| f.name == name).unwrap();
        for l in table.iter_mut() {
            if l.leaf == f.leaf && l.subleaf == f.subleaf {
                l.regs[f.reg] |= 1 << f.bit;
            }
        }
    }

    #[test]
    fn the_same_host_can_replay() {
        let host = this();
        let h = header_from(host.cpuid.clone(), Some(host.facts.clone()), &host.kernel);
        let c = compare(&h, &host);
        assert!(c.can_replay(), "{c:?}");
        // Nothing printed before a replay on the recording host.
        assert!(c.warnings.is_empty(), "{c:?}");
    }

    /// Every table difference in a feature is named, in both directions.
    #[test]
    fn differing_features_are_named_and_refused() {
        let host = this();
        let mut rec = host.cpuid.clone();
        // One the host has (every x86-64 host since 2008 has sse4.2's
        // neighbour sse3; popcnt likewise), one it lacks (set it).
        let has = features_of(&host.cpuid);
        let present = ["sse3", "popcnt"]
            .into_iter()
            .find(|n| has.iter().any(|h| h == n))
            .unwrap();
        let absent = FEATURES
            .iter()
            .map(|f| f.name)
            .find(|n| !has.iter().any(|h| h == n));
        clear(&mut rec, present);
        if let Some(a) = absent {
            set(&mut rec, a);
        }
        let h = header_from(rec, Some(host.facts.clone()), &host.kernel);
        let c = compare(&h, &host);
        assert!(!c.can_replay());
        let text = c.refusals.join("\n");
        assert!(
            text.contains(&format!(
                "this host has and the recording host lacked: {present}"
            )),
            "{text}"
        );
        if let Some(a) = absent {
            assert!(text.contains(&format!("this host lacks: {a}")), "{text}");
        }
    }

    #[test]
    fn another_vendor_and_xsave_layout_are_refused() {
        let host = this();
        let mut rec = host.cpuid.clone();
        for l in rec.iter_mut() {
            if l.leaf == 0 {
                // "CyrixInstead".
                l.regs[1] = u32::from_le_bytes(*b"Cyri");
                l.regs[3] = u32::from_le_bytes(*b"xIns");
                l.regs[2] = u32::from_le_bytes(*b"tead");
            }
            if l.leaf == 0xd && l.subleaf == 0 {
                l.regs[1] += 64;
            }
        }
        let mut facts = host.facts.clone();
        facts.xcr0 ^= 1 << 9;
        let c = compare(&header_from(rec, Some(facts), &host.kernel), &host);
        let text = c.refusals.join("\n");
        assert!(text.contains("recorded on CyrixInstead"), "{text}");
        assert!(text.contains("XSAVE layout: recorded"), "{text}");
        assert!(text.contains("XCR0"), "{text}");
    }

    #[test]
    fn another_kernel_is_a_warning_not_a_refusal() {
        let host = this();
        let h = header_from(host.cpuid.clone(), None, "Linux 2.6.32 x86_64");
        let c = compare(&h, &host);
        assert!(c.can_replay(), "{c:?}");
        assert!(
            c.warnings.iter().any(|w| w.contains("Linux 2.6.32")),
            "{c:?}"
        );
    }

    #[test]
    fn this_hosts_facts_are_plausible() {
        let f = facts();
        assert!(f.cpu_features.iter().any(|n| n == "sse3"), "{f:?}");
        // x87 and SSE state are always enabled where xgetbv exists.
        assert_eq!(f.xcr0 & 3, 3, "{f:?}");
        assert!(f.xsave_size >= 576, "{f:?}");
        assert!(f.libc.starts_with("glibc 2."), "{f:?}");
        assert!(!f.cpu_model.is_empty());
    }

    #[test]
    fn feature_names_are_unique() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
