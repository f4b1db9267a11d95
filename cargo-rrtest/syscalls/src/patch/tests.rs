//! Table tests: byte sequences -> decoded site -> stub and patch, checked by
//! decoding the results again with iced-x86.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};
use rrtest_abi::stub::{BAIL_TO_RESUME, RDTSC_BAIL_TO_DONE, RESTORE, SETUP};

use super::*;

const CODE: u64 = 0x5555_5555_4000;
const STUB: u64 = CODE + 0x1000_0000;
const HOOK: u64 = 0x7f12_3456_7890;

/// What a table row expects.
#[derive(Debug)]
enum Expect {
    /// A site: region start offset, length, instructions before and after
    /// the syscall.
    Site {
        start: u64,
        len: usize,
        before: usize,
        after: usize,
    },
    /// A refusal of this kind (see [`kind`]).
    Refuse(&'static str),
}

struct Case {
    name: &'static str,
    code: Vec<u8>,
    syscall_off: u64,
    boundary: Option<u64>,
    expect: Expect,
}

fn kind(r: &Refusal) -> &'static str {
    match r {
        Refusal::OutsideWindow { .. } => "outside",
        Refusal::NotASyscall { .. } => "not-syscall",
        Refusal::NotAnRdtsc { .. } => "not-rdtsc",
        Refusal::Undecodable { .. } => "undecodable",
        Refusal::TooShort { .. } => "too-short",
        Refusal::BranchIntoRegion { .. } => "branch-into",
        Refusal::NotRelocatable { .. } => "not-relocatable",
        Refusal::UnpatchableSyscall { .. } => "unpatchable",
        Refusal::BoundaryMismatch { .. } => "boundary",
        Refusal::OutOfRange { .. } => "range",
        Refusal::Encode(_) => "encode",
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const SYSCALL: &[u8] = &[0x0f, 0x05];
const RDTSC: &[u8] = &[0x0f, 0x31];
const SHL_RDX_32: &[u8] = &[0x48, 0xc1, 0xe2, 0x20];
const OR_RAX_RDX: &[u8] = &[0x48, 0x09, 0xd0];
const RET: &[u8] = &[0xc3];
const CMP_RAX_M4095: &[u8] = &[0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff];

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        Case {
            // glibc's read(): xor eax,eax; syscall; cmp rax,-4096; ja err; ret
            name: "glibc read wrapper",
            code: cat(&[
                &[0x31, 0xc0],
                SYSCALL,
                &[0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff],
                &[0x77, 0x01],
                RET,
                &[0xf7, 0xd8],
                RET,
            ]),
            syscall_off: 2,
            boundary: None,
            expect: Site {
                start: 2,
                len: 8,
                before: 0,
                after: 1,
            },
        },
        Case {
            // glibc's syscall(): shuffle the arguments, syscall, check, ret.
            name: "glibc syscall() with jae after",
            code: cat(&[
                &[
                    0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6, 0x48, 0x89, 0xca,
                ],
                &[
                    0x4d, 0x89, 0xc2, 0x4d, 0x89, 0xc8, 0x4c, 0x8b, 0x4c, 0x24, 0x08,
                ],
                SYSCALL,
                CMP_RAX_M4095,
                &[0x73, 0x01],
                RET,
                &[0xf7, 0xd8],
                RET,
            ]),
            syscall_off: 23,
            boundary: Some(0),
            expect: Site {
                start: 23,
                len: 8,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "getpid: mov eax; syscall; ret, function start known",
            code: cat(&[&[0xb8, 0x27, 0, 0, 0], SYSCALL, RET]),
            syscall_off: 5,
            boundary: Some(0),
            expect: Site {
                start: 0,
                len: 8,
                before: 1,
                after: 1,
            },
        },
        Case {
            name: "getpid: mov eax; syscall; ret, no boundary",
            code: cat(&[&[0xb8, 0x27, 0, 0, 0], SYSCALL, RET]),
            syscall_off: 5,
            boundary: None,
            expect: Refuse("too-short"),
        },
        Case {
            name: "syscall right before ret, nothing known before",
            code: cat(&[SYSCALL, RET, &[0x90; 8]]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("too-short"),
        },
        Case {
            // Rust/rustix raw site: a rip-relative load before, a
            // rip-relative store after the syscall.
            name: "raw Rust site with rip-relative store displaced",
            code: cat(&[
                &[0x48, 0x8b, 0x05, 0xf9, 0x1f, 0, 0],
                SYSCALL,
                &[0x48, 0x89, 0x05, 0xf0, 0x0f, 0, 0],
                RET,
            ]),
            syscall_off: 7,
            boundary: None,
            expect: Site {
                start: 7,
                len: 9,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "rip-relative lea before the syscall, boundary known",
            code: cat(&[&[0x48, 0x8d, 0x3d, 0x00, 0x10, 0, 0], SYSCALL, RET]),
            syscall_off: 7,
            boundary: Some(0),
            expect: Site {
                start: 0,
                len: 10,
                before: 1,
                after: 1,
            },
        },
        Case {
            name: "displaced short jae is relocated",
            code: cat(&[SYSCALL, &[0x73, 0x20], &[0x90], RET, &[0x90; 0x30]]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 5,
                before: 0,
                after: 2,
            },
        },
        Case {
            // cmp dword [rip+0x2010], 5: the displacement precedes an imm8.
            name: "rip-relative cmp with an imm8 displaced",
            code: cat(&[SYSCALL, &[0x83, 0x3d, 0x10, 0x20, 0, 0, 0x05], RET]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 9,
                before: 0,
                after: 1,
            },
        },
        Case {
            // mov dword [rip+0x100], 0x12345678: an imm32 after the disp32.
            name: "rip-relative mov with an imm32 displaced",
            code: cat(&[
                SYSCALL,
                &[0xc7, 0x05, 0x00, 0x01, 0, 0, 0x78, 0x56, 0x34, 0x12],
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 12,
                before: 0,
                after: 1,
            },
        },
        Case {
            // vmovdqu xmm0, [rip-0x800] (two-byte VEX).
            name: "rip-relative VEX load displaced",
            code: cat(&[
                SYSCALL,
                &[0xc5, 0xfa, 0x6f, 0x05, 0x00, 0xf8, 0xff, 0xff],
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 10,
                before: 0,
                after: 1,
            },
        },
        Case {
            // vpshufd xmm0, [rip+0x40], 0x1b: VEX, disp32, then an imm8.
            name: "rip-relative VEX shuffle with an imm8 displaced",
            code: cat(&[SYSCALL, &[0xc5, 0xf9, 0x70, 0x05, 0x40, 0, 0, 0, 0x1b], RET]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 11,
                before: 0,
                after: 1,
            },
        },
        Case {
            // vmovdqu64 zmm0, [rip+0x1000] (EVEX; rip-relative is always
            // disp32, never the compressed disp8*N).
            name: "rip-relative EVEX load displaced",
            code: cat(&[
                SYSCALL,
                &[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x05, 0x00, 0x10, 0, 0],
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 12,
                before: 0,
                after: 1,
            },
        },
        Case {
            // jmp [rip+0x200]: an indirect branch through a rip-relative slot.
            name: "rip-relative indirect jmp displaced",
            code: cat(&[SYSCALL, &[0xff, 0x25, 0x00, 0x02, 0, 0], &[0x90; 4]]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 8,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "displaced short jmp becomes a near one",
            code: cat(&[SYSCALL, &[0x90], &[0xeb, 0x30], &[0x90; 0x40]]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 5,
                before: 0,
                after: 2,
            },
        },
        Case {
            name: "displaced near je keeps its target",
            code: cat(&[SYSCALL, &[0x0f, 0x84, 0x00, 0x01, 0, 0], RET]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 8,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "displaced near jmp keeps its target",
            code: cat(&[SYSCALL, &[0xe9, 0x00, 0xff, 0xff, 0xff], RET]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 7,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "short jmp back into the region",
            code: cat(&[
                SYSCALL,
                CMP_RAX_M4095,
                &[0x73, 0x02],
                &[0xeb, 0xf6],
                RET,
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("branch-into"),
        },
        Case {
            name: "short jmp back to the region start is fine",
            code: cat(&[
                SYSCALL,
                CMP_RAX_M4095,
                &[0x73, 0x02],
                &[0xeb, 0xf4],
                RET,
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 8,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "earlier jmp over the syscall into the region",
            code: cat(&[
                &[0xeb, 0x04],
                &[0x90, 0x90],
                SYSCALL,
                &[0x48, 0x85, 0xc0],
                RET,
            ]),
            syscall_off: 4,
            boundary: Some(0),
            expect: Refuse("branch-into"),
        },
        Case {
            // The jump sits before the known function start: still scanned.
            name: "jump from before the boundary into the region",
            code: cat(&[&[0xeb, 0x06], &[0xc3], &[0xb8, 0x27, 0, 0, 0], SYSCALL, RET]),
            syscall_off: 8,
            boundary: Some(3),
            expect: Refuse("branch-into"),
        },
        Case {
            name: "call in the region",
            code: cat(&[SYSCALL, &[0xe8, 0, 0, 0, 0], RET]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-relocatable"),
        },
        Case {
            name: "second syscall in the region",
            code: cat(&[SYSCALL, &[0x90], SYSCALL, &[0x90, 0x90]]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-relocatable"),
        },
        Case {
            name: "not a syscall",
            code: cat(&[&[0x90, 0x90], SYSCALL]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-syscall"),
        },
        Case {
            name: "window ends inside the next instruction",
            code: cat(&[SYSCALL, &[0x48, 0x3d, 0x01]]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("undecodable"),
        },
        Case {
            name: "syscall outside the window",
            code: cat(&[SYSCALL]),
            syscall_off: 1,
            boundary: None,
            expect: Refuse("outside"),
        },
        Case {
            name: "boundary inside an instruction",
            code: cat(&[&[0xb8, 0x27, 0, 0, 0], SYSCALL, RET]),
            syscall_off: 5,
            boundary: Some(1),
            expect: Refuse("boundary"),
        },
    ]
}

/// Sites of trapped `rdtsc`s (`Anchor::Rdtsc`); `syscall_off` is the
/// rdtsc's offset.
fn rdtsc_cases() -> Vec<Case> {
    use Expect::*;
    vec![
        Case {
            // gcc's `rdtsc` asm in a non-inlined function (the fixture's):
            // rdtsc; shl rdx,32; mov eax,eax; or rax,rdx; ret
            name: "rdtsc asm function",
            code: cat(&[RDTSC, SHL_RDX_32, &[0x89, 0xc0], OR_RAX_RDX, RET]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 6,
                before: 0,
                after: 1,
            },
        },
        Case {
            // Rust's `_rdtsc()` inlined into a loop that stores the value
            // rip-relative and loops back to the rdtsc (the region's start).
            name: "Rust _rdtsc with a rip-relative store and a loop",
            code: cat(&[
                RDTSC,
                &[0x48, 0x89, 0x15, 0x10, 0x20, 0, 0],
                SHL_RDX_32,
                OR_RAX_RDX,
                &[0xeb, 0xee],
                RET,
            ]),
            syscall_off: 0,
            boundary: None,
            expect: Site {
                start: 0,
                len: 9,
                before: 0,
                after: 1,
            },
        },
        Case {
            name: "rdtsc; ret",
            code: cat(&[RDTSC, RET, &[0x90; 8]]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("too-short"),
        },
        Case {
            name: "a branch into the rdtsc's region",
            code: cat(&[&[0xeb, 0x02], RDTSC, SHL_RDX_32, OR_RAX_RDX, RET]),
            syscall_off: 2,
            boundary: None,
            expect: Refuse("branch-into"),
        },
        Case {
            name: "a syscall right after the rdtsc",
            code: cat(&[RDTSC, SYSCALL, SHL_RDX_32, RET]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-relocatable"),
        },
        Case {
            name: "rdtscp is not an rdtsc site",
            code: cat(&[&[0x0f, 0x01, 0xf9], SHL_RDX_32, RET]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-rdtsc"),
        },
        Case {
            name: "a syscall is not an rdtsc site",
            code: cat(&[SYSCALL, CMP_RAX_M4095, RET]),
            syscall_off: 0,
            boundary: None,
            expect: Refuse("not-rdtsc"),
        },
    ]
}

fn decode_all(bytes: &[u8], addr: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert!(!i.is_invalid(), "invalid instruction at {:#x}", i.ip());
        out.push(i);
    }
    out
}

/// The relocated instruction behaves like the original: the same operation;
/// a branch reaches the same target through a near branch; a rip-relative
/// operand has the same absolute address, and every byte but its
/// displacement (immediates included) is the same; anything else has the
/// same bytes.
fn assert_equivalent(orig: &Instruction, new: &Instruction, orig_bytes: &[u8], new_bytes: &[u8]) {
    assert_eq!(orig.mnemonic(), new.mnemonic(), "{orig} vs {new}");
    if orig.flow_control() == FlowControl::ConditionalBranch
        || orig.flow_control() == FlowControl::UnconditionalBranch
    {
        assert_eq!(
            orig.near_branch_target(),
            new.near_branch_target(),
            "{orig} vs {new}"
        );
        assert_eq!(new.op0_kind(), OpKind::NearBranch64, "{new}");
        assert_eq!(
            orig.condition_code(),
            new.condition_code(),
            "{orig} vs {new}"
        );
    } else if orig.is_ip_rel_memory_operand() {
        assert!(new.is_ip_rel_memory_operand());
        assert_eq!(orig.code(), new.code(), "{orig} vs {new}");
        assert_eq!(
            orig.ip_rel_memory_address(),
            new.ip_rel_memory_address(),
            "{orig} vs {new}"
        );
        let mut d = Decoder::with_ip(64, orig_bytes, orig.ip(), DecoderOptions::NONE);
        let again = d.decode();
        let offsets = d.get_constant_offsets(&again);
        let disp = offsets.displacement_offset()..offsets.displacement_offset() + 4;
        assert_eq!(offsets.displacement_size(), 4, "{orig}");
        assert_eq!(orig_bytes.len(), new_bytes.len(), "{orig} vs {new}");
        for (i, (a, b)) in orig_bytes.iter().zip(new_bytes).enumerate() {
            assert!(disp.contains(&i) || a == b, "{orig} vs {new}: byte {i}");
        }
    } else {
        assert_eq!(orig_bytes, new_bytes, "{orig} vs {new}");
    }
}

fn bytes_at(stub: &Stub, insn: &Instruction) -> Vec<u8> {
    let at = (insn.ip() - stub.addr) as usize;
    stub.code[at..at + insn.len()].to_vec()
}

/// Decodes a built stub and its patch again and checks everything.
fn check_stub(name: &str, code: &[u8], site: &PatchSite, stub: &Stub) {
    let l = &stub.layout;
    let insns = decode_all(&stub.code[..(l.hook_slot - STUB) as usize], STUB);
    let at = |addr: u64| -> &Instruction {
        insns
            .iter()
            .find(|i| i.ip() == addr)
            .unwrap_or_else(|| panic!("{name}: no instruction at {addr:#x}"))
    };
    let orig_bytes = |i: &Instruction| {
        let o = (i.ip() - CODE) as usize;
        code[o..o + i.len()].to_vec()
    };

    // Displaced code, before and after.
    assert_eq!(l.before.len(), site.before.len(), "{name}");
    assert_eq!(l.after.len(), site.after.len(), "{name}");
    for (orig, &(o, s)) in site
        .before
        .iter()
        .chain(&site.after)
        .zip(l.before.iter().chain(&l.after))
    {
        assert_eq!(orig.ip(), o);
        let new = at(s);
        assert_equivalent(orig, new, &orig_bytes(orig), &bytes_at(stub, new));
    }

    // The fixed parts, where the layout says.
    let setup = (l.setup - STUB) as usize;
    assert_eq!(&stub.code[setup..setup + SETUP.len()], &SETUP, "{name}");
    let call = at(l.call);
    assert_eq!(call.code(), Code::Call_rm64, "{name}");
    assert_eq!(call.ip_rel_memory_address(), l.hook_slot, "{name}");
    let slot = (l.hook_slot - STUB) as usize;
    assert_eq!(&stub.code[slot..slot + 8], &HOOK.to_le_bytes());
    assert_eq!(l.hook_slot % 8, 0);
    assert_eq!(
        call.next_ip(),
        l.bail,
        "{name}: the hook returns to the bail label"
    );
    let bail = (l.bail - STUB) as usize;
    assert_eq!(&stub.code[bail..bail + RESTORE.len()], &RESTORE, "{name}");
    assert_eq!(l.syscall, l.bail + RESTORE.len() as u64, "{name}");
    match site.anchor {
        Anchor::Syscall => {
            assert_eq!(at(l.syscall).code(), Code::Syscall, "{name}");
            assert_eq!(l.done, None, "{name}");
            assert_eq!(l.resume, l.bail + BAIL_TO_RESUME, "{name}");
        }
        Anchor::Rdtsc => {
            // bail: restore; rdtsc; jmp short resume; done: restore; resume.
            assert_eq!(at(l.syscall).code(), Code::Rdtsc, "{name}");
            let skip = at(l.syscall + 2);
            assert_eq!(skip.code(), Code::Jmp_rel8_64, "{name}");
            assert_eq!(skip.near_branch_target(), l.resume, "{name}");
            let done = l.done.expect("an rdtsc stub has a done label");
            assert_eq!(done, skip.next_ip(), "{name}");
            assert_eq!(done, l.bail + RDTSC_BAIL_TO_DONE, "{name}");
            let d = (done - STUB) as usize;
            assert_eq!(&stub.code[d..d + RESTORE.len()], &RESTORE, "{name}");
            assert_eq!(l.resume, done + RESTORE.len() as u64, "{name}");
            // The done path runs on the alt stack; the jmp after the
            // emulated rdtsc is the point after the rdtsc.
            for ip in [done, done + 1] {
                assert_eq!(stub.stub_to_original(ip), StubIp::InBuffer, "{name}");
            }
            assert_eq!(
                stub.stub_to_original(skip.ip()),
                StubIp::Original(site.syscall_addr + 2),
                "{name}"
            );
        }
    }
    let back = at(l.jmp_back);
    assert_eq!(back.mnemonic(), Mnemonic::Jmp, "{name}");
    assert_eq!(back.near_branch_target(), site.end(), "{name}");
    assert_eq!(back.next_ip(), l.jmp_back + 5);
    // Nothing between the jmp back and the slot but int3 padding.
    assert!(stub.code[(back.next_ip() - STUB) as usize..slot]
        .iter()
        .all(|&b| b == 0xcc));
    assert_eq!(l.end, STUB + stub.code.len() as u64);

    // The patch: jmp stub, then nops, exactly the region.
    let patch = patch_bytes(site, STUB).unwrap();
    assert_eq!(patch.len(), site.len(), "{name}");
    let p = decode_all(&patch, site.start);
    assert_eq!(p[0].mnemonic(), Mnemonic::Jmp);
    assert_eq!(p[0].near_branch_target(), STUB);
    assert!(
        p[1..].iter().all(|i| i.mnemonic() == Mnemonic::Nop),
        "{name}"
    );

    // ip mapping, both ways.
    for insn in site.before.iter().chain(&site.after) {
        let s = stub.original_to_stub(insn.ip()).unwrap();
        assert_eq!(
            stub.stub_to_original(s),
            StubIp::Original(insn.ip()),
            "{name}"
        );
    }
    assert_eq!(stub.original_to_stub(site.syscall_addr), Some(l.setup));
    assert_eq!(
        stub.stub_to_original(l.setup),
        StubIp::Original(site.syscall_addr)
    );
    assert_eq!(
        stub.stub_to_original(l.syscall),
        StubIp::Original(site.syscall_addr)
    );
    assert_eq!(
        stub.stub_to_original(l.jmp_back),
        StubIp::Original(site.end())
    );
    if site.syscall_addr + 2 < site.end() {
        assert_eq!(stub.original_to_stub(site.syscall_addr + 2), Some(l.resume));
        assert_eq!(
            stub.stub_to_original(l.resume),
            StubIp::Original(site.syscall_addr + 2)
        );
    }
    for ip in [l.setup + 8, l.setup + 16, l.call, l.bail, l.bail + 1] {
        assert_eq!(
            stub.stub_to_original(ip),
            StubIp::InBuffer,
            "{name}: {ip:#x}"
        );
    }
    assert_eq!(stub.original_to_stub(site.end()), None);
    assert_eq!(stub.stub_to_original(l.hook_slot), StubIp::Outside);
    // Every original instruction start inside the region is mappable.
    for ip in site.start..site.end() {
        let is_start =
            site.before.iter().chain(&site.after).any(|i| i.ip() == ip) || ip == site.syscall_addr;
        assert_eq!(
            stub.original_to_stub(ip).is_some(),
            is_start,
            "{name}: {ip:#x}"
        );
    }
}

#[test]
fn table() {
    run_table(cases(), Anchor::Syscall);
}

#[test]
fn rdtsc_table() {
    run_table(rdtsc_cases(), Anchor::Rdtsc);
}

#[test]
fn an_rdtsc_is_not_a_syscall_site() {
    let code = cat(&[RDTSC, SHL_RDX_32, OR_RAX_RDX, RET]);
    assert_eq!(
        kind(&analyze(&code, CODE, CODE).unwrap_err()),
        "not-syscall"
    );
}

fn run_table(cases: Vec<Case>, anchor: Anchor) {
    for case in cases {
        let syscall_addr = CODE + case.syscall_off;
        let options = AnalyzeOptions {
            boundary: case.boundary.map(|b| CODE + b),
            anchor,
        };
        let got = analyze_with(&case.code, CODE, syscall_addr, &options);
        match (&case.expect, got) {
            (
                Expect::Site {
                    start,
                    len,
                    before,
                    after,
                },
                Ok(site),
            ) => {
                assert_eq!(site.start, CODE + start, "{}", case.name);
                assert_eq!(site.len(), *len, "{}", case.name);
                assert_eq!(
                    (site.before.len(), site.after.len()),
                    (*before, *after),
                    "{}",
                    case.name
                );
                assert_eq!(site.syscall_addr, syscall_addr);
                assert_eq!(site.anchor, anchor);
                let o = *start as usize;
                assert_eq!(site.original, case.code[o..o + len], "{}", case.name);
                assert!(site.contains_inside(syscall_addr) == (site.start != syscall_addr));
                let stub = build_stub(&site, STUB, HOOK, site.end())
                    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                check_stub(case.name, &case.code, &site, &stub);
            }
            (Expect::Refuse(want), Err(r)) => assert_eq!(kind(&r), *want, "{}: {r}", case.name),
            (want, got) => panic!("{}: expected {want:?}, got {got:?}", case.name),
        }
    }
}

/// Every table site is relocated the direct way, which writes exactly what
/// the encoder writes for it: the same bytes as before the direct way
/// existed, so replay plans the same patches for older traces too.
#[test]
fn table_sites_are_relocated_directly_as_the_encoder_would() {
    let all = cases()
        .into_iter()
        .map(|c| (c, Anchor::Syscall))
        .chain(rdtsc_cases().into_iter().map(|c| (c, Anchor::Rdtsc)));
    for (case, anchor) in all {
        if !matches!(case.expect, Expect::Site { .. }) {
            continue;
        }
        let options = AnalyzeOptions {
            boundary: case.boundary.map(|b| CODE + b),
            anchor,
        };
        let site = analyze_with(&case.code, CODE, CODE + case.syscall_off, &options).unwrap();
        for (insns, addr) in [(&site.before, STUB), (&site.after, STUB + 0x40)] {
            let (code, map, how) = stub::relocate(&site, insns, addr).unwrap();
            if insns.is_empty() {
                assert_eq!(how, stub::Relocation::Empty, "{}", case.name);
                continue;
            }
            assert_eq!(how, stub::Relocation::Direct, "{}", case.name);
            let encoded = stub::relocate_with_encoder(insns, addr).unwrap();
            assert_eq!((code, map), encoded, "{}", case.name);
        }
        // Deterministic: the replayer plans the patch again and compares.
        assert_eq!(
            build_stub(&site, STUB, HOOK, site.end()),
            build_stub(&site, STUB, HOOK, site.end()),
            "{}",
            case.name
        );
    }
}

#[test]
fn prefixed_branches_go_through_the_encoder() {
    // Branch hints (2e, 3e) and `bnd` (f2) are prefixes the direct way does
    // not carry over; the encoder keeps them on the near form.
    for (name, branch, mnemonic) in [
        ("jae hinted taken", &[0x3e, 0x73, 0x20][..], Mnemonic::Jae),
        ("je hinted not taken", &[0x2e, 0x74, 0x20][..], Mnemonic::Je),
        ("bnd jmp", &[0xf2, 0xeb, 0x20][..], Mnemonic::Jmp),
    ] {
        let code = cat(&[SYSCALL, &[0x90], branch, RET, &[0x90; 0x30]]);
        let site = analyze(&code, CODE, CODE).unwrap();
        assert_eq!(site.after.len(), 2, "{name}");
        let target = site.after[1].near_branch_target();
        let (_, _, how) = stub::relocate(&site, &site.after, STUB).unwrap();
        assert_eq!(how, stub::Relocation::Encoder, "{name}");

        let stub = build_stub(&site, STUB, HOOK, site.end()).unwrap();
        let l = &stub.layout;
        let displaced = decode_all(
            &stub.code[(l.resume - STUB) as usize..(l.jmp_back - STUB) as usize],
            l.resume,
        );
        assert_eq!(displaced.len(), 2, "{name}");
        assert_eq!(displaced[0].code(), Code::Nopd, "{name}");
        let branch = &displaced[1];
        assert_eq!(l.after[1], (site.after[1].ip(), branch.ip()), "{name}");
        assert_eq!(branch.mnemonic(), mnemonic, "{name}");
        assert_eq!(branch.near_branch_target(), target, "{name}");
        assert_eq!(
            stub.original_to_stub(site.after[1].ip()),
            Some(branch.ip()),
            "{name}"
        );
    }
}

#[test]
fn branches_the_encoder_must_rewrite_are_refused() {
    // jrcxz and loop have only a rel8 form: from the stub, the encoder
    // would make each several instructions, with no address for the
    // original one.
    for (name, branch) in [("jrcxz", &[0xe3, 0x20][..]), ("loop", &[0xe2, 0x20][..])] {
        let code = cat(&[SYSCALL, &[0x90], branch, RET, &[0x90; 0x30]]);
        let site = analyze(&code, CODE, CODE).unwrap();
        let err = build_stub(&site, STUB, HOOK, site.end()).unwrap_err();
        assert_eq!(
            err,
            Refusal::NotRelocatable {
                addr: CODE + 3,
                why: "a branch that cannot reach its target from the stub as one instruction",
            },
            "{name}"
        );
    }
    // A jae whose target is beyond a rel32 from the stub (as far below the
    // site as the patch's jmp reaches; the target 0x83 bytes up).
    let code = cat(&[SYSCALL, &[0x73, 0x7f], &[0x90], RET, &[0x90; 0x80]]);
    let site = analyze(&code, CODE, CODE).unwrap();
    let stub_addr = CODE + 5 - 0x8000_0000;
    assert!(patch_bytes(&site, stub_addr).is_ok());
    let err = build_stub(&site, stub_addr, HOOK, site.end()).unwrap_err();
    assert_eq!(kind(&err), "not-relocatable", "{err}");
}

#[test]
fn analyze_without_options_is_forward_only() {
    let code = cat(&[&[0xb8, 0x27, 0, 0, 0], SYSCALL, CMP_RAX_M4095, RET]);
    let site = analyze(&code, CODE, CODE + 5).unwrap();
    assert_eq!((site.start, site.len()), (CODE + 5, 8));
}

#[test]
fn a_displaced_short_branch_keeps_its_target() {
    let code = cat(&[SYSCALL, &[0x73, 0x20], &[0x90], RET, &[0x90; 0x30]]);
    let site = analyze(&code, CODE, CODE).unwrap();
    let stub = build_stub(&site, STUB, HOOK, site.end()).unwrap();
    let (_, s) = stub.layout.after[0];
    let jae = Decoder::with_ip(
        64,
        &stub.code[(s - STUB) as usize..],
        s,
        DecoderOptions::NONE,
    )
    .decode();
    assert_eq!(jae.mnemonic(), Mnemonic::Jae);
    // 256 MiB away: the rel8 became a rel32 reaching the same target.
    assert_eq!(jae.near_branch_target(), CODE + 4 + 0x20);
    assert_eq!(jae.len(), 6);
}

#[test]
fn stubs_out_of_range_are_refused() {
    let code = cat(&[SYSCALL, CMP_RAX_M4095, RET]);
    let site = analyze(&code, CODE, CODE).unwrap();
    let far = CODE + 5 + 0x8000_0000;
    assert_eq!(kind(&patch_bytes(&site, far).unwrap_err()), "range");
    assert_eq!(
        kind(&build_stub(&site, far, HOOK, site.end()).unwrap_err()),
        "range"
    );
    // Just within range in both directions.
    assert!(patch_bytes(&site, CODE + 5 + 0x7fff_ffff).is_ok());
    assert!(patch_bytes(&site, CODE + 5 - 0x8000_0000).is_ok());
}

#[test]
fn a_rip_relative_operand_out_of_the_stubs_reach_is_refused() {
    // mov [rip+0x7fff0000], rax after the syscall; the stub sits 2 GiB
    // below, from where that address is beyond a 32-bit displacement.
    let code = cat(&[SYSCALL, &[0x48, 0x89, 0x05, 0x00, 0x00, 0xff, 0x7f], RET]);
    let site = analyze(&code, CODE, CODE).unwrap();
    let stub_addr = CODE - 0x7fff_0000;
    let err = build_stub(&site, stub_addr, HOOK, site.end()).unwrap_err();
    assert_eq!(kind(&err), "range", "{err}");
}

#[test]
fn process_shape_syscalls_are_never_patched() {
    for nr in [56, 57, 58, 59, 15, 322, 435] {
        assert_eq!(check_syscall(nr), Err(Refusal::UnpatchableSyscall { nr }));
    }
    for nr in [0, 1, 17, 228, 318] {
        assert_eq!(check_syscall(nr), Ok(()));
    }
}

#[test]
fn refusals_explain_themselves() {
    let code = cat(&[
        SYSCALL,
        CMP_RAX_M4095,
        &[0x73, 0x02],
        &[0xeb, 0xf6],
        RET,
        RET,
    ]);
    let err = analyze(&code, CODE, CODE).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "branch at {:#x} targets {:#x}, inside the region",
            CODE + 10,
            CODE + 2
        )
    );
}

/// The fixed cost of the first patch of a recording: iced-x86 builds its
/// decoder tables at the first decode (the analysis) and its encoder
/// tables at the first `BlockEncoder::encode`. A measurement, not a check;
/// run it alone so that it is the first patch of its process:
///
/// ```text
/// cargo test --release -p rrtest-syscalls --lib -- --ignored --exact \
///     patch::tests::first_patch_cost --nocapture
/// ```
#[test]
#[ignore = "a measurement: run it alone, in its own process"]
fn first_patch_cost() {
    use std::time::Instant;
    // A Rust site: rip-relative load before, rip-relative store after.
    let common = cat(&[
        &[0x48, 0x8b, 0x05, 0xf9, 0x1f, 0, 0],
        SYSCALL,
        &[0x48, 0x89, 0x05, 0xf0, 0x0f, 0, 0],
        RET,
    ]);
    // A hinted jae: the encoder is needed.
    let rare = cat(&[SYSCALL, &[0x90], &[0x3e, 0x73, 0x10], RET, &[0x90; 0x20]]);
    let timed = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        eprintln!("{what}: {:?}", t.elapsed());
    };
    let mut site = None;
    timed("first analyze (decoder tables)", &mut || {
        site = Some(analyze(&common, CODE, CODE + 7).expect("site"));
    });
    timed("second analyze", &mut || {
        site = Some(analyze(&common, CODE, CODE + 7).expect("site"));
    });
    let site = site.expect("analyzed");
    for n in ["first", "second"] {
        timed(&format!("{n} build_stub, common site"), &mut || {
            build_stub(&site, STUB, HOOK, site.end()).expect("stub");
        });
    }
    let rare_site = analyze(&rare, CODE, CODE).expect("site");
    for n in ["first", "second"] {
        timed(
            &format!("{n} build_stub, site with a hinted jae"),
            &mut || {
                build_stub(&rare_site, STUB, HOOK, rare_site.end()).expect("stub");
            },
        );
    }
}

/// glibc 2.36's `__futex_abstimed_wait_common` in miniature: a futex
/// `syscall` whose region takes the `test`/`jg` after it, and 0x93 bytes
/// later another path's `jmp` back to that `test`. The site's own window
/// (from the syscall on) cannot see the branch; the wider scan does.
#[test]
fn a_branch_back_into_the_region_from_beyond_the_window_is_found() {
    let syscall = CODE + 0x94;
    let mut code = vec![0x90u8; 0x200];
    let at = (syscall - CODE) as usize;
    // syscall; test %eax,%eax; jg +0x13; cmp $-22,%eax
    code[at..at + 9].copy_from_slice(&[0x0f, 0x05, 0x85, 0xc0, 0x7f, 0x13, 0x83, 0xf8, 0xea]);
    // At syscall + 0x93: jmp rel32 to syscall + 2.
    let jmp_at = at + 0x93;
    let rel = (syscall + 2).wrapping_sub(CODE + jmp_at as u64 + 5) as u32;
    code[jmp_at] = 0xe9;
    code[jmp_at + 1..jmp_at + 5].copy_from_slice(&rel.to_le_bytes());

    let window = &code[at..at + 64];
    let site = analyze(window, syscall, syscall).expect("the window alone allows it");
    assert_eq!((site.start, site.end()), (syscall, syscall + 6));
    match branch_into_region(&code, CODE, &site) {
        Some(Refusal::BranchIntoRegion { from, target }) => {
            assert_eq!((from, target), (CODE + jmp_at as u64, syscall + 2));
        }
        other => panic!("the jmp back was not found: {other:?}"),
    }
    // Without that jmp the wider scan finds nothing.
    code[jmp_at..jmp_at + 5].fill(0x90);
    assert!(branch_into_region(&code, CODE, &site).is_none());
}
