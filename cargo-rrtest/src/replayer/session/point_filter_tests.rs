use super::*;
use iced_x86::{Decoder, DecoderOptions, Mnemonic};

const SITE: u64 = 0x5555_5555_541f;

fn decode_all(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        out.push(d.decode());
    }
    out
}

#[test]
fn trampoline_counts_compares_traps_and_returns() {
    let code = [
        0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0,
    ];
    let site = filter_site::plan(&[], &code, SITE).expect("displaceable");
    assert!(site.lead_in.is_empty());
    let page = (SITE & !0xfff) - (7 << 28);
    let regs: [u64; 16] = std::array::from_fn(|k| 0x1000 + k as u64);
    let t = build(page, &site, regs, &PointWords::NONE).expect("built");
    assert_eq!(t.patch_at, SITE);

    // The site jumps to the code; the rest of the displaced bytes trap.
    let patch = decode_all(&t.patch, SITE);
    assert_eq!(patch[0].mnemonic(), Mnemonic::Jmp);
    assert_eq!(patch[0].near_branch_target(), page + CODE);
    assert_eq!(t.patch.len(), 10);
    assert!(t.patch[5..].iter().all(|&b| b == 0xcc));

    // The data: the point's registers.
    for (k, v) in regs.iter().enumerate() {
        let off = (REGS + 8 * k as u64) as usize;
        assert_eq!(t.bytes[off..off + 8], v.to_le_bytes());
    }
    let insns = decode_all(&t.bytes[CODE as usize..], page + CODE);
    let m: Vec<_> = insns.iter().map(|i| i.mnemonic()).collect();
    // Save rax and the flags, count the pass.
    assert_eq!(
        m[..6],
        [
            Mnemonic::Mov,
            Mnemonic::Lahf,
            Mnemonic::Seto,
            Mnemonic::Mov,
            Mnemonic::Add,
            Mnemonic::Mov
        ]
    );
    assert_eq!(insns[0].ip_rel_memory_address(), page + SAVED_RAX);
    assert_eq!(insns[4].ip_rel_memory_address(), page + PASSES);
    // Sixteen compares, each with a branch to the miss path.
    let cmps: Vec<_> = insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Cmp)
        .collect();
    assert_eq!(cmps.len(), 16);
    for (k, c) in cmps.iter().enumerate() {
        assert_eq!(c.op0_register(), GPRS[k]);
        assert_eq!(c.ip_rel_memory_address(), page + REGS + 8 * k as u64);
    }
    let trap = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Int3)
        .expect("an int3");
    assert_eq!(trap.ip() + 1, t.trap_ip);
    let miss_target = insns
        .iter()
        .find(|i| i.mnemonic() == Mnemonic::Jne)
        .expect("a jne")
        .near_branch_target();
    assert_eq!(miss_target, t.trap_ip, "the miss path follows the int3");
    // The miss path restores the flags; then the displaced code, with
    // its rip-relative operand still reaching the same address, and
    // the jump back.
    let resume = insns
        .iter()
        .position(|i| i.ip() == t.resume_ip)
        .expect("resume ip on an instruction");
    assert_eq!(insns[resume - 2].mnemonic(), Mnemonic::Sahf);
    assert_eq!(insns[resume].mnemonic(), Mnemonic::Add);
    assert_eq!(
        insns[resume + 1].ip_rel_memory_address(),
        SITE + 10 + 0x2c2b
    );
    assert_eq!(insns[resume + 2].mnemonic(), Mnemonic::Jmp);
    assert_eq!(insns[resume + 2].near_branch_target(), SITE + 10);
}

#[test]
fn free_pages_are_far_from_every_mapping_and_within_reach() {
    let maps = "555555554000-555555559000 r-xp 00000000 08:01 1 /bin/x\n\
                7ffff7dd0000-7ffff7ff0000 r-xp 00000000 08:01 2 /lib/libc.so.6\n";
    let pages = free_pages_near(maps, SITE);
    assert_eq!(pages[0], (SITE & !0xfff) - (1 << 30), "1 GiB below first");
    for &page in &pages {
        assert_eq!(page % PAGE, 0);
        assert!(
            page.abs_diff(SITE) < (1 << 31) - PAGE,
            "reachable with rel32"
        );
        assert!(page + PAGE + (16 << 20) <= 0x5555_5555_4000 || page >= 0x5555_5655_9000);
    }
    // A mapping where the first choice would be: not offered.
    let blocked = format!(
        "{:x}-{:x} rw-p 00000000 00:00 0\n{maps}",
        pages[0] - PAGE,
        pages[0] + 2 * PAGE
    );
    let others = free_pages_near(&blocked, SITE);
    assert!(!others.is_empty() && !others.contains(&pages[0]));
    // Nowhere in reach.
    assert!(free_pages_near("0-7ffffffff000 rw-p 0 0:0 0\n", SITE).is_empty());
    // A site in a shared library: below the libraries, above the program.
    let lib_site = 0x7fff_f7de_1234;
    let pages = free_pages_near(maps, lib_site);
    assert_eq!(pages[0], 0x7fff_b7de_1000);
    assert!(pages.iter().all(|p| p.abs_diff(lib_site) < (1 << 31)));
}

/// `main`'s compute loop in `compute_waits_for_signal.c` (gcc -O1 -fPIE)
/// from 0x13e8: the entry test `jne 0x142d`, the loop 0x1401..=0x142b
/// closed by `add rsi, 1; mov eax, [rip+fired]; test eax, eax; je 0x1401`,
/// then the loop's exit at 0x142d.
const LOOP: [u8; 76] = [
    0x8b, 0x05, 0x66, 0x2c, 0x00, 0x00, 0xbe, 0x00, 0x00, 0x00, 0x00, 0x48, 0xba, 0x44, 0x7a, 0xbf,
    0xcb, 0x8d, 0x40, 0x39, 0x01, 0x85, 0xc0, 0x75, 0x2c, 0x48, 0x89, 0xd0, 0x48, 0xc1, 0xe0, 0x0d,
    0x48, 0x31, 0xd0, 0x48, 0x89, 0xc2, 0x48, 0xc1, 0xea, 0x07, 0x48, 0x31, 0xd0, 0x48, 0x89, 0xc2,
    0x48, 0xc1, 0xe2, 0x11, 0x48, 0x31, 0xc2, 0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00,
    0x00, 0x85, 0xc0, 0x74, 0xd4, 0x48, 0x8d, 0x3d, 0x84, 0x0c, 0x00, 0x00,
];

#[test]
fn a_lead_in_runs_before_the_comparison_and_jumps_back_to_the_point() {
    let base = 0x5555_5555_53e8_u64;
    let point = base + 0x43;
    let k = (point - base) as usize;
    let site = filter_site::plan(&LOOP[..k], &LOOP[k..], point).expect("a lead-in");
    // `mov eax, [rip+fired]; test eax, eax`, then the point.
    assert_eq!((site.start, site.lead_in.len()), (base + 0x3b, 2));
    assert!(site.moved.is_empty());
    let page = (site.start & !0xfff) - (4 << 28);
    let regs: [u64; 16] = std::array::from_fn(|k| 0x2000 + k as u64);
    let t = build(page, &site, regs, &PointWords::NONE).expect("built");
    assert_eq!(t.patch_at, site.start);
    assert_eq!(t.patch.len() as u64, point - site.start);
    assert_eq!(
        t.resume_ip, point,
        "a thread stopped at the point goes on in place"
    );
    let insns = decode_all(&t.bytes[CODE as usize..], page + CODE);
    // The lead-in first, its rip-relative load still reading `fired`.
    for (i, lead) in insns.iter().zip(&site.lead_in) {
        assert_eq!(i.mnemonic(), lead.mnemonic());
        if lead.is_ip_rel_memory_operand() {
            assert_eq!(i.ip_rel_memory_address(), base + 0x2c6c, "`fired`");
        }
    }
    // Then the count and the comparison; after the miss path, the jump
    // back to the point (nothing of it displaced).
    let n = site.lead_in.len();
    assert_eq!(insns[n].ip_rel_memory_address(), page + SAVED_RAX);
    let cmps = insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Cmp)
        .count();
    assert_eq!(cmps, 16);
    let sahf = insns
        .iter()
        .rposition(|i| i.mnemonic() == Mnemonic::Sahf)
        .expect("sahf");
    let back = &insns[sahf + 2];
    assert_eq!(back.mnemonic(), Mnemonic::Jmp);
    assert_eq!(back.near_branch_target(), point);
}

#[test]
fn a_displaced_call_pushes_the_original_return_address() {
    // call rel32 to 0x11b4 at 0x1420 (`-DCALLS`: the loop's head).
    let at = 0x5555_5555_5420_u64;
    let callee = 0x5555_5555_51b4_u64;
    let rel = (callee as i64 - (at as i64 + 5)) as i32;
    let mut code = vec![0xe8];
    code.extend_from_slice(&rel.to_le_bytes());
    code.extend_from_slice(&[0x48, 0x89, 0xc7]);
    let site = filter_site::plan(&[], &code, at).expect("a call displaced last");
    assert!(site.ends_in_call());
    let page = (at & !0xfff) - (4 << 28);
    let t = build(page, &site, [0; 16], &PointWords::NONE).expect("built");
    assert_eq!(t.patch.len(), 5);
    let insns = decode_all(&t.bytes[CODE as usize..], page + CODE);
    let resume = insns
        .iter()
        .position(|i| i.ip() == t.resume_ip)
        .expect("resume ip on an instruction");
    // lea rsp, [rsp-8]; mov dword [rsp], lo; mov dword [rsp+4], hi; jmp callee
    let ret = at + 5;
    let tail = &insns[resume..resume + 4];
    assert_eq!(tail[0].mnemonic(), Mnemonic::Lea);
    assert_eq!(tail[0].memory_displacement64() as i64, -8);
    assert_eq!(tail[1].immediate32(), ret as u32);
    assert_eq!(tail[2].memory_displacement64(), 4);
    assert_eq!(tail[2].immediate32(), (ret >> 32) as u32);
    assert_eq!(tail[3].mnemonic(), Mnemonic::Jmp);
    assert_eq!(tail[3].near_branch_target(), callee);
    assert_eq!(insns.len(), resume + 4, "no jump back after the call");
}

/// A point's memory words: after the sixteen register compares, each word
/// is loaded through rax from its address, compared with its value in the
/// page, and rax reloaded before the branch to the miss path.
#[test]
fn the_trampoline_compares_the_points_words_after_the_registers() {
    let code = [
        0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0,
    ];
    let site = filter_site::plan(&[], &code, SITE).expect("displaceable");
    let page = (SITE & !0xfff) - (7 << 28);
    let mut words = PointWords::NONE;
    words.push(0x7fff_e000_1b00, 0x458);
    words.push(0x7fff_e000_24a8, 0x1_15bf);
    let t = build(page, &site, [0; 16], &words).expect("built");
    for (k, (_, v)) in words.as_slice().iter().enumerate() {
        let off = (WORDS + 8 * k as u64) as usize;
        assert_eq!(t.bytes[off..off + 8], v.to_le_bytes());
    }
    let insns = decode_all(&t.bytes[CODE as usize..], page + CODE);
    let cmps: Vec<usize> = insns
        .iter()
        .enumerate()
        .filter(|(_, i)| i.mnemonic() == Mnemonic::Cmp)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(cmps.len(), 18);
    let miss = insns[cmps[0] + 1].near_branch_target();
    for (k, &(addr, _)) in words.as_slice().iter().enumerate() {
        let c = cmps[16 + k];
        let (load, deref, cmp, reload, branch) = (
            &insns[c - 2],
            &insns[c - 1],
            &insns[c],
            &insns[c + 1],
            &insns[c + 2],
        );
        assert_eq!((load.mnemonic(), load.immediate64()), (Mnemonic::Mov, addr));
        assert_eq!(deref.memory_base(), Register::RAX);
        // The tracer knows the load, to take its fault for a miss.
        assert_eq!(t.word_loads[k], deref.ip());
        assert_eq!(cmp.ip_rel_memory_address(), page + WORDS + 8 * k as u64);
        assert_eq!(reload.ip_rel_memory_address(), page + SAVED_RAX);
        assert_eq!(reload.op0_register(), Register::RAX);
        assert_eq!(branch.mnemonic(), Mnemonic::Jne);
        assert_eq!(branch.near_branch_target(), miss);
    }
    assert_eq!(t.word_loads.len(), 2);
    assert_eq!(t.miss_ip, miss);
    // Then the trap path restores rax and the flags and traps.
    let int3 = insns
        .iter()
        .position(|i| i.mnemonic() == Mnemonic::Int3)
        .expect("int3");
    assert!(int3 > cmps[17] + 2);
}
