//! Where a loop a stopped thread is in ends: the address its turns fall
//! out to, found by decoding the code after the thread's ip up to the
//! loop's closing branch.
//!
//! The recorder moves an interruption in a compute loop to a place passed
//! rarely, so that replay, which checks every pass through a point's ip,
//! finds it cheaply. A return address is one, but in optimised code the
//! hot loop is often inlined into a function that returns only at the end
//! of the work (a producer's `for` loop inside `thread::scope`): the
//! thread never got there in time, and the point fell where the thread was
//! after the wait, in the loop, where replay pays for every turn. The
//! loop's exit is passed once per run of the loop.
//!
//! Recognised (ip anywhere in the loop's straight run of code before its
//! closing branch, forward `jmp`s followed):
//!
//! ```text
//!   head: ...            head: jcc exit          (a forward exit, the only one
//!         ip ...               ip ...             past the closing jmp)
//!         jcc head             jmp head
//!   exit:                exit:
//! ```
//!
//! A guess, as a return address is: an exit the thread does not take (a
//! `break` out of the middle of a loop whose closing branch is
//! conditional) costs the recorder's wait, nothing else.
//!
//! Replay's in-tracee filter cannot patch every exit: one that is a short
//! `jmp` to the enclosing loop's head, with other code right after it, is
//! searched stop by stop, a stop per run of the loop (a 2,000-turn
//! multiply loop's replay took 20 s, 17 of them in the kernel). Where the
//! exit is an unconditional `jmp`, the recorder takes its target instead
//! when the filter can patch that: the thread passes it as often. An exit
//! the filter cannot patch, directly or through its jumps, is not taken:
//! a short loop's exit searched stop by stop would cost replay more than
//! the return address or the point where the thread is, which it filters.

use iced_x86::{Decoder, DecoderOptions, FlowControl};
use rrtest_sys::RemoteMem;

/// Bytes of code read after the ip.
const CODE: usize = 512;

/// The most instructions decoded on the way to the closing branch.
const MAX_INSNS: usize = 64;

/// How many unconditional `jmp`s from a loop's exit [`find`] follows to a
/// place replay's filter can patch.
const MAX_JUMPS: usize = 3;

/// The exit of the loop stopped thread `tid` is in at `ip`, if its code
/// shows one ([`exit_of`]) and replay's filter can patch it; where it
/// cannot and the exit is a `jmp`, the first place along its jumps that
/// the filter can patch, if any within [`MAX_JUMPS`].
pub fn find(tid: i32, ip: u64) -> Option<u64> {
    let mem = RemoteMem::new(tid);
    let mut at = exit_of(&read_code(&mem, ip)?, ip)?;
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    let patchable = |at: u64| super::filter_site::find(tid, at, &maps).is_ok();
    for _ in 0..=MAX_JUMPS {
        if patchable(at) {
            return Some(at);
        }
        at = read_code(&mem, at).and_then(|code| jump_target(&code, at))?;
    }
    None
}

/// The code of `mem` at `ip`: [`CODE`] bytes, or up to the end of ip's
/// page where the next is not readable.
fn read_code(mem: &RemoteMem, ip: u64) -> Option<Vec<u8>> {
    let page_end = (ip | 0xfff) + 1;
    [CODE, (page_end - ip) as usize]
        .into_iter()
        .map(|n| n.min(CODE))
        .find_map(|n| mem.read_vec(ip, n).ok())
}

/// Where the direct unconditional `jmp` at the start of `code` (at `ip`)
/// goes; `None` for any other instruction.
pub fn jump_target(code: &[u8], ip: u64) -> Option<u64> {
    let insn = Decoder::with_ip(64, code, ip, DecoderOptions::NONE).decode();
    insn.is_jmp_short_or_near()
        .then(|| insn.near_branch_target())
}

/// The exit of the loop whose code at `ip` begins with `code`: the fall
/// through of a conditional branch back to `ip` or before it, or, where
/// the loop closes with a `jmp` back, the one target of a forward
/// conditional branch on the way that lies outside the code decoded and
/// before `ip`. `None` where the way to the closing branch leaves the
/// code read, returns, branches indirectly or traps, or is longer than
/// [`MAX_INSNS`] instructions.
pub fn exit_of(code: &[u8], ip: u64) -> Option<u64> {
    let end = ip + code.len() as u64;
    let mut at = ip;
    // The runs of code decoded, and the forward conditional targets seen.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut run_start = ip;
    let mut forward = Vec::new();
    for _ in 0..MAX_INSNS {
        let offset = (at - ip) as usize;
        let mut decoder = Decoder::with_ip(64, &code[offset..], at, DecoderOptions::NONE);
        let insn = decoder.decode();
        // An instruction cut at the end of the code read decodes invalid.
        if insn.is_invalid() {
            return None;
        }
        match insn.flow_control() {
            FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall => {}
            FlowControl::ConditionalBranch => {
                let target = insn.near_branch_target();
                if target <= ip {
                    return Some(insn.next_ip());
                }
                forward.push(target);
            }
            FlowControl::UnconditionalBranch if insn.is_jmp_short_or_near() => {
                let target = insn.near_branch_target();
                runs.push((run_start, insn.next_ip()));
                if target <= ip {
                    let outside = |&t: &u64| {
                        !(target..ip).contains(&t)
                            && !runs.iter().any(|&(a, b)| (a..b).contains(&t))
                    };
                    let mut exits: Vec<u64> = forward.iter().copied().filter(outside).collect();
                    exits.sort_unstable();
                    exits.dedup();
                    return match exits[..] {
                        [exit] => Some(exit),
                        _ => None,
                    };
                }
                if target >= end || runs.iter().any(|&(a, b)| (a..b).contains(&target)) {
                    return None;
                }
                run_start = target;
                at = target;
                continue;
            }
            _ => return None,
        }
        at = insn.next_ip();
        if at >= end {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{exit_of, jump_target};

    /// A release build's inlined multiply loop (fixtures/threads' `busy`
    /// in `stealers_all_served`'s producer), from 0x4f7e0:
    /// `mov 0x10(%rsp),%r9; imul %rcx,%r9; inc %r9; mov %r9,0x10(%rsp);
    /// dec %r8d; jne 0x4f7e0; jmp 0x4f7c0`.
    const MULTIPLY_LOOP: [u8; 22] = [
        0x4c, 0x8b, 0x4c, 0x24, 0x10, // mov 0x10(%rsp),%r9
        0x4c, 0x0f, 0xaf, 0xc9, // imul %rcx,%r9
        0x49, 0xff, 0xc1, // inc %r9
        0x4c, 0x89, 0x4c, 0x24, 0x10, // mov %r9,0x10(%rsp)
        0x41, 0xff, 0xc8, // dec %r8d
        0x75, 0xea, // jne 0x4f7e0
    ];

    #[test]
    fn a_conditional_closing_branch_exits_to_its_fall_through() {
        let base = 0x4f7e0;
        // From the loop's head, and from each instruction inside it.
        for start in [0usize, 5, 9, 12, 17, 20] {
            let ip = base + start as u64;
            let mut code = MULTIPLY_LOOP[start..].to_vec();
            code.extend_from_slice(&[0xeb, 0xc8]); // jmp 0x4f7c0
            assert_eq!(exit_of(&code, ip), Some(0x4f7f6), "from {ip:#x}");
        }
    }

    #[test]
    fn a_jmp_exit_leads_to_its_target() {
        // 0x4f7f6: jmp 0x4f7c0 (the multiply loop's exit, to the loop
        // around it).
        assert_eq!(jump_target(&[0xeb, 0xc8], 0x4f7f6), Some(0x4f7c0));
        // jmp rel32
        assert_eq!(
            jump_target(&[0xe9, 0x00, 0x01, 0x00, 0x00], 0x1000),
            Some(0x1105)
        );
        // jne, jmp *%rax, nop
        assert_eq!(jump_target(&[0x75, 0xea], 0x4f7f4), None);
        assert_eq!(jump_target(&[0xff, 0xe0], 0x1000), None);
        assert_eq!(jump_target(&[0x90], 0x1000), None);
    }

    #[test]
    fn a_loop_closed_by_a_jmp_exits_where_its_one_forward_test_goes() {
        // 0x1000: cmp %rsi,%rdi; je 0x1010; inc %rdi; nop; nop; jmp 0x1000;
        // (0x100e: two bytes of padding); 0x1010: ret
        let base = 0x1000;
        let code = [
            0x48, 0x39, 0xf7, // cmp %rsi,%rdi
            0x74, 0x0b, // je 0x1010
            0x48, 0xff, 0xc7, // inc %rdi
            0x90, 0x90, // nop; nop
            0xeb, 0xf4, // jmp 0x1000
            0x90, 0x90, 0x90, 0x90, // padding
            0xc3, // ret
        ];
        assert_eq!(exit_of(&code, base), Some(0x1010));
        // From inside the body, the test is behind the ip: not seen.
        assert_eq!(exit_of(&code[5..], base + 5), None);
    }

    #[test]
    fn a_forward_jmp_into_the_loop_is_followed() {
        // 0x2000: jmp 0x2005; (0x2002: 3 bytes of padding)
        // 0x2005: dec %ecx; jne 0x2000; ret
        let code = [0xeb, 0x03, 0xcc, 0xcc, 0xcc, 0xff, 0xc9, 0x75, 0xf7, 0xc3];
        assert_eq!(exit_of(&code, 0x2000), Some(0x2009));
    }

    #[test]
    fn no_exit_where_the_code_returns_or_branches_indirectly_first() {
        // add %rdi,%rax; ret
        assert_eq!(exit_of(&[0x48, 0x01, 0xf8, 0xc3], 0x3000), None);
        // add %rdi,%rax; jmp *%rax
        assert_eq!(exit_of(&[0x48, 0x01, 0xf8, 0xff, 0xe0], 0x3000), None);
        // Code cut before any branch.
        assert_eq!(exit_of(&[0x48, 0x01, 0xf8, 0x48], 0x3000), None);
    }

    #[test]
    fn two_forward_exits_past_a_closing_jmp_are_not_guessed_between() {
        // 0x4000: je 0x4010; jne 0x4011; jmp 0x4000; padding; 0x4010: ret; ret
        let code = [
            0x74, 0x0e, // je 0x4010
            0x75, 0x0d, // jne 0x4011
            0xeb, 0xfa, // jmp 0x4000
            0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, // padding
            0xc3, 0xc3,
        ];
        assert_eq!(exit_of(&code, 0x4000), None);
    }
}
