//! The recorder's seccomp filter, as classic BPF written by hand (no seccomp
//! crate can match on the instruction pointer).
//!
//! ```text
//!   ld  [arch]                 if arch != x86_64        -> TRACE
//!   ld  [instruction_pointer]  if ip.lo != untraced.lo  -> TRACE
//!   ld  [instruction_pointer+4] if ip.hi != untraced.hi -> TRACE
//!   ret ALLOW
//!   TRACE: ret TRACE
//! ```
//! `untraced` is the address right after the `syscall` instruction of the
//! fixed page's untraced entry point (`rrtest_abi::entry::UNTRACED`).

/// `struct sock_filter`.
pub type SockFilter = libc::sock_filter;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;

// Offsets in `struct seccomp_data`.
const OFF_ARCH: u32 = 4;
const OFF_IP: u32 = 8;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The filter: allow syscalls issued from `untraced_ip`, trace all others.
pub fn filter(untraced_ip: u64) -> Vec<SockFilter> {
    let lo = untraced_ip as u32;
    let hi = (untraced_ip >> 32) as u32;
    vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 5),
        stmt(BPF_LD_W_ABS, OFF_IP),
        jump(BPF_JEQ_K, lo, 0, 3),
        stmt(BPF_LD_W_ABS, OFF_IP + 4),
        jump(BPF_JEQ_K, hi, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, SECCOMP_RET_TRACE),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_trace() {
        let f = filter(0x7000_0012);
        let trace_at = f.len() - 1;
        for (i, ins) in f.iter().enumerate() {
            if ins.code == BPF_JEQ_K {
                assert_eq!(i + 1 + ins.jf as usize, trace_at, "instruction {i}");
                assert_eq!(ins.jt, 0);
            }
        }
        assert_eq!(f[trace_at].k, SECCOMP_RET_TRACE);
        assert_eq!(f[trace_at - 1].k, SECCOMP_RET_ALLOW);
        assert_eq!(f[3].k, 0x7000_0012);
        assert_eq!(f[5].k, 0);
    }
}
