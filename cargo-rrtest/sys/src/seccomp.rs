//! The recorder's seccomp filter, as classic BPF written by hand (no seccomp
//! crate can match on the instruction pointer).
//!
//! ```text
//!         ld  [arch]                   arch != x86_64          -> TRACE
//!         ld  [instruction_pointer]    ip.lo != untraced.lo    -> BY_NR
//!         ld  [instruction_pointer+4]  ip.hi == untraced.hi    -> ALLOW
//!  BY_NR: ld  [nr]                     nr in UNTRACED_SYSCALLS -> ALLOW
//!                                      nr == mmap              -> MMAP
//!         ret TRACE
//!  MMAP:  ld  [args[3] low word]       flags & MAP_ANONYMOUS   -> ALLOW
//!  TRACE: ret TRACE
//!  ALLOW: ret ALLOW
//! ```
//! `untraced` is the address right after the `syscall` instruction of the
//! fixed page's untraced entry point (`rrtest_abi::entry::UNTRACED`).
//!
//! The same filter is installed while recording and while replaying, so a
//! syscall it lets through runs, unrecorded, in both. That is sound for
//! [`UNTRACED_SYSCALLS`] and anonymous `mmap`: replay executes them anyway,
//! and their effect depends only on the process's own state (its address
//! space, its signal dispositions and mask), which replay reproduces. Each
//! saves two ptrace stops; about a third of a small Rust test's syscalls.

/// `struct sock_filter`.
pub type SockFilter = libc::sock_filter;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;

// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP: u32 = 8;
const OFF_ARG3: u32 = 16 + 3 * 8;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Syscalls that run without a stop, in record and replay alike (see the
/// module doc). Each is executed by replay and deterministic given the
/// process's own state.
pub const UNTRACED_SYSCALLS: &[i64] = &[
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_mremap,
    // Not rt_sigprocmask: unblocking makes a pending signal deliverable
    // right at its return, a point the recorder must see to deliver it
    // there (the alarm_pause fixture checks this).
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_set_robust_list,
];

/// A jump target while assembling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    Trace,
    Allow,
    ByNr,
    Mmap,
}

enum Insn {
    Load(u32),
    Ret(u32),
    /// Compare the accumulator with `k`: `jeq` or `jset`.
    Jump {
        code: u16,
        k: u32,
        yes: Label,
        no: Label,
    },
    /// Marks a label at this position (emits nothing).
    At(Label),
}

fn assemble(prog: &[Insn]) -> Vec<SockFilter> {
    // Positions of labels, counting emitted instructions only.
    let mut pos = Vec::new();
    let mut n = 0usize;
    for insn in prog {
        match insn {
            Insn::At(l) => pos.push((*l, n)),
            _ => n += 1,
        }
    }
    let target = |l: Label, at: usize| -> u8 {
        if l == Label::Next {
            return 0;
        }
        let to = pos.iter().find(|(p, _)| *p == l).expect("label defined").1;
        u8::try_from(to - at - 1).expect("jump within 255 instructions")
    };
    let mut out = Vec::with_capacity(n);
    for insn in prog {
        let at = out.len();
        match *insn {
            Insn::Load(off) => out.push(SockFilter {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k: off,
            }),
            Insn::Ret(k) => out.push(SockFilter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k,
            }),
            Insn::Jump { code, k, yes, no } => out.push(SockFilter {
                code,
                jt: target(yes, at),
                jf: target(no, at),
                k,
            }),
            Insn::At(_) => {}
        }
    }
    out
}

/// The filter: allow syscalls issued from `untraced_ip`, and the
/// [`UNTRACED_SYSCALLS`] and anonymous `mmap` from anywhere; trace the rest.
pub fn filter(untraced_ip: u64) -> Vec<SockFilter> {
    use Insn::*;
    use Label::*;
    let mut prog = vec![
        Load(OFF_ARCH),
        Jump {
            code: BPF_JEQ_K,
            k: AUDIT_ARCH_X86_64,
            yes: Next,
            no: Trace,
        },
        Load(OFF_IP),
        Jump {
            code: BPF_JEQ_K,
            k: untraced_ip as u32,
            yes: Next,
            no: ByNr,
        },
        Load(OFF_IP + 4),
        Jump {
            code: BPF_JEQ_K,
            k: (untraced_ip >> 32) as u32,
            yes: Allow,
            no: ByNr,
        },
        At(ByNr),
        Load(OFF_NR),
    ];
    for &nr in UNTRACED_SYSCALLS {
        prog.push(Jump {
            code: BPF_JEQ_K,
            k: nr as u32,
            yes: Allow,
            no: Next,
        });
    }
    prog.extend([
        Jump {
            code: BPF_JEQ_K,
            k: libc::SYS_mmap as u32,
            yes: Mmap,
            no: Trace,
        },
        At(Mmap),
        Load(OFF_ARG3),
        Jump {
            code: BPF_JSET_K,
            k: libc::MAP_ANONYMOUS as u32,
            yes: Allow,
            no: Trace,
        },
        At(Trace),
        Ret(SECCOMP_RET_TRACE),
        At(Allow),
        Ret(SECCOMP_RET_ALLOW),
    ]);
    assemble(&prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on a `seccomp_data` (nr, arch, ip, args[3]).
    fn run(f: &[SockFilter], nr: i64, arch: u32, ip: u64, arg3: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[8..16].copy_from_slice(&ip.to_le_bytes());
        data[40..48].copy_from_slice(&arg3.to_le_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = f[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                BPF_JEQ_K | BPF_JSET_K => {
                    let hit = if i.code == BPF_JEQ_K {
                        acc == i.k
                    } else {
                        acc & i.k != 0
                    };
                    pc += 1 + usize::from(if hit { i.jt } else { i.jf });
                }
                BPF_RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn decisions() {
        let ip = 0x7000_0012;
        let f = filter(ip);
        let x86 = AUDIT_ARCH_X86_64;
        let anon = libc::MAP_ANONYMOUS as u64 | libc::MAP_PRIVATE as u64;
        // The untraced entry point: everything passes.
        assert_eq!(run(&f, libc::SYS_read, x86, ip, 0), SECCOMP_RET_ALLOW);
        // Elsewhere: traced, except the untraced syscalls and anonymous mmap.
        assert_eq!(
            run(&f, libc::SYS_read, x86, 0x5555_0000, 0),
            SECCOMP_RET_TRACE
        );
        assert_eq!(
            run(&f, libc::SYS_read, x86, ip | (1 << 32), 0),
            SECCOMP_RET_TRACE
        );
        for &nr in UNTRACED_SYSCALLS {
            assert_eq!(
                run(&f, nr, x86, 0x5555_0000, 0),
                SECCOMP_RET_ALLOW,
                "nr {nr}"
            );
        }
        assert_eq!(
            run(&f, libc::SYS_mmap, x86, 0x5555_0000, anon),
            SECCOMP_RET_ALLOW
        );
        let file = libc::MAP_PRIVATE as u64;
        assert_eq!(
            run(&f, libc::SYS_mmap, x86, 0x5555_0000, file),
            SECCOMP_RET_TRACE
        );
        // Another architecture is always traced.
        assert_eq!(
            run(&f, libc::SYS_munmap, 0x4000_0003, 0x5555_0000, 0),
            SECCOMP_RET_TRACE
        );
    }
}
