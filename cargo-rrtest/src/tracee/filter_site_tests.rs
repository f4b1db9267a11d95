use super::*;
use iced_x86::Mnemonic;

const SITE: u64 = 0x5555_5555_541f;

/// Bytes of code at `base`, and a way to split them at an address into the
/// bytes before it and those from it on.
struct Code {
    base: u64,
    bytes: Vec<u8>,
}

impl Code {
    fn new(base: u64, hex: &str) -> Code {
        let bytes = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        Code { base, bytes }
    }

    fn plan(&self, point: u64) -> Result<Site, Refusal> {
        let k = (point - self.base) as usize;
        plan(&self.bytes[..k], &self.bytes[k..], point)
    }

    /// The instruction addresses from `from` to `to` (a linear sweep).
    fn ips(&self, from: u64, to: u64) -> Vec<u64> {
        let k = (from - self.base) as usize;
        let mut d = Decoder::with_ip(64, &self.bytes[k..], from, DecoderOptions::NONE);
        let mut out = Vec::new();
        while d.can_decode() {
            let i = d.decode();
            if i.ip() > to {
                break;
            }
            out.push(i.ip());
        }
        out
    }
}

/// `main`'s loop in `compute_waits_for_signal.c` (gcc -O1 -fPIE), from
/// 0x13e8: the entry test `jne 0x142d`, the loop 0x1401..=0x142b closed by
/// `je 0x1401`, then the exit at 0x142d.
fn compute_loop() -> Code {
    Code::new(
        0x13e8,
        "8b 05 66 2c 00 00 be 00 00 00 00 48 ba 44 7a bf cb 8d 40 39 01 85 c0 75 2c
         48 89 d0 48 c1 e0 0d 48 31 d0 48 89 c2 48 c1 ea 07 48 31 d0 48 89 c2 48 c1
         e2 11 48 31 c2 48 83 c6 01 8b 05 2b 2c 00 00 85 c0 74 d4 48 8d 3d 84 0c 00
         00 b8 00 00 00 00 e8 8c fe ff ff 48 8d 3d 9f 0c 00 00 b8 00 00 00 00 e8 7b
         fe ff ff b8 00 00 00 00 48 81 c4 c0 00 00 00 5b c3",
    )
}

#[test]
fn every_instruction_of_a_compute_loop_has_a_site() {
    let code = compute_loop();
    for ip in code.ips(0x1401, 0x142b) {
        let site = code
            .plan(ip)
            .unwrap_or_else(|e| panic!("no site for {ip:#x}: {e:?}"));
        assert!(site.patch_len() >= JMP_LEN);
        assert!(site.start <= ip && site.end() >= ip);
        // Nothing the loop branches to is inside the patch.
        for target in [0x1401, 0x142d] {
            assert!(
                !(site.start + 1..site.end().max(ip + 1)).contains(&target),
                "{ip:#x}: the patch {:#x}..{:#x} covers {target:#x}",
                site.start,
                site.end()
            );
        }
    }
}

#[test]
fn a_loops_closing_branch_is_reached_through_a_lead_in() {
    let code = compute_loop();
    // The `je` (two bytes) is followed by the loop's exit, which the
    // entry test jumps to: no patch at it.
    let k = (0x142b - code.base) as usize;
    let at = displaced(&code.bytes[k..], 0x142b, JMP_LEN, None).expect("displaceable alone");
    let direct = Site {
        point: 0x142b,
        start: 0x142b,
        lead_in: Vec::new(),
        moved: at,
    };
    assert!(check_region(
        &Backwards::decode(&code.bytes[..k], 0x142b),
        &code.bytes[k..],
        &direct
    )
    .is_err());
    // The lead-in: `mov eax, [rip+fired]; test eax, eax`.
    let site = code.plan(0x142b).expect("a lead-in");
    assert_eq!(site.start, 0x1423);
    let m: Vec<_> = site.lead_in.iter().map(|i| i.mnemonic()).collect();
    assert_eq!(m, [Mnemonic::Mov, Mnemonic::Test]);
    assert!(site.moved.is_empty());
    assert_eq!(site.end(), 0x142b);
    // The `test` before it: the `mov` alone is long enough.
    let site = code.plan(0x1429).expect("a lead-in");
    assert_eq!(
        (site.start, site.lead_in.len(), site.moved.len()),
        (0x1423, 1, 0)
    );
    // The loop's head (a branch target itself) is patched where it is.
    let site = code.plan(0x1401).expect("direct");
    assert_eq!((site.start, site.lead_in.len()), (0x1401, 0));
}

#[test]
fn a_point_after_a_branch_target_takes_no_lead_in_across_it() {
    // -DCALLS: the loop `call step; mov rdi, rax; add rbx, 1; mov eax,
    // [fired]; test; je 0x1420` whose head is the call.
    let code = Code::new(
        0x1401,
        "0f 85 a7 00 00 00 8b 05 47 2c 00 00 bb 00 00 00 00 48 bf 44 7a bf cb 8d 40
         39 01 85 c0 75 16 e8 8f fd ff ff 48 89 c7 48 83 c3 01 8b 05 22 2c 00 00 85
         c0 74 ea 48 89 fa 48 89 de 48 8d 3d 75 0c 00 00 b8 00 00 00 00 e8 9c fe ff
         ff",
    );
    // The call at the head: displaced alone, emulated in the trampoline.
    let site = code.plan(0x1420).expect("a call displaced last");
    assert_eq!((site.start, site.moved.len()), (0x1420, 1));
    assert!(site.ends_in_call());
    // The instruction after the call is a return address: patched where
    // it is, never as the end of a lead-in crossing the call.
    let site = code.plan(0x1425).expect("direct");
    assert_eq!(site.start, 0x1425);
    for ip in code.ips(0x1420, 0x1434) {
        let site = code
            .plan(ip)
            .unwrap_or_else(|e| panic!("no site for {ip:#x}: {e:?}"));
        assert!(
            site.start >= 0x1420,
            "{ip:#x}: a lead-in before the loop's head"
        );
        assert!(
            site.lead_in.iter().all(|i| i.ip() != 0x1420),
            "{ip:#x}: the call in a lead-in"
        );
    }
}

#[test]
fn a_functions_return_is_reached_through_a_lead_in() {
    // `step` (-DCALLS), after `on_alarm` (which ends in `ret`), ending in
    // `ret` and followed by the next function.
    let code = Code::new(
        0x11a9,
        "c7 05 a1 2e 00 00 01 00 00 00 c3 48 89 f8 48 c1 e0 0d 48 31 f8 48 89 c2 48
         c1 ea 07 48 31 c2 48 89 d0 48 c1 e0 11 48 31 d0 c3 41 54 55 53 48 81 ec 00
         10 00 00 41 89 fc",
    );
    for ip in code.ips(0x11b4, 0x11d2) {
        let site = code
            .plan(ip)
            .unwrap_or_else(|e| panic!("no site for {ip:#x}: {e:?}"));
        assert!(site.start >= 0x11b4, "{ip:#x}: a lead-in into on_alarm");
        assert!(
            site.end() <= 0x11d3,
            "{ip:#x}: the patch covers the next function"
        );
    }
    let site = code.plan(0x11d2).expect("a lead-in");
    assert_eq!(
        (site.start, site.lead_in.len(), site.moved.len()),
        (0x11cb, 2, 0)
    );
}

#[test]
fn displaces_whole_instructions_covering_a_jump() {
    // add rsi, 1 ; mov eax, [rip+0x2c2b] ; test eax, eax
    let code = [
        0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0,
    ];
    let moved = displaced(&code, SITE, JMP_LEN, None).expect("displaceable");
    let mnemonics: Vec<_> = moved.iter().map(|i| i.mnemonic()).collect();
    assert_eq!(mnemonics, [Mnemonic::Add, Mnemonic::Mov]);
    assert_eq!(moved[1].ip_rel_memory_address(), SITE + 10 + 0x2c2b);
}

#[test]
fn refuses_calls_not_last_syscalls_and_branches_into_the_patch() {
    let site_of = |code: &[u8]| plan(&[], code, SITE);
    // A direct call is displaced last, emulated; one through a register
    // or through the stack is not.
    assert!(site_of(&[0xe8, 0, 0, 0, 0, 0x90]).is_ok_and(|s| s.ends_in_call()));
    assert!(site_of(&[0x90, 0x90, 0x90, 0xff, 0xd0, 0x90]).is_err());
    assert!(site_of(&[0x90, 0x90, 0xff, 0x14, 0x24, 0x90]).is_err());
    let syscall = [0x0f, 0x05, 0x90, 0x90, 0x90, 0x90];
    assert!(site_of(&syscall).is_err());
    // inc rax ; jne back to the site: a loop smaller than the jump.
    let tight = [0x48, 0xff, 0xc0, 0x75, 0xfb, 0x90];
    assert!(site_of(&tight).is_err());
    // nop ; je to the third instruction, also displaced.
    let inner = [0x90, 0x74, 0x01, 0x90, 0x48, 0xff, 0xc0];
    assert!(site_of(&inner).is_err());
    // A branch out of the displaced bytes is fine.
    let out = [0x48, 0xff, 0xc0, 0x75, 0x10, 0x90];
    assert!(site_of(&out).is_ok());
    assert!(site_of(&[0x48, 0x83]).is_err(), "code ends too soon");
}

#[test]
fn refuses_a_site_that_nearby_code_branches_into() {
    // crossbeam_utils::Backoff::spin (a debug build): test rax, 1 ;
    // je +4 ; pause ; jmp back (the site) ; mov rdi, [rsp+8] ;
    // call [rip+..]. The je lands on the mov, inside the patch.
    let before = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x04, 0xf3, 0x90];
    let after = [
        0xeb, 0xe7, 0x48, 0x8b, 0x7c, 0x24, 0x08, 0xff, 0x15, 0xf6, 0xa8, 0x11, 0x00,
    ];
    // The mov follows a jmp: reached only by a branch.
    assert!(displaced(&after, SITE, JMP_LEN, None).is_err());
    // And the je before the site is found.
    assert_eq!(branch_into(&before, &after, SITE, 7), Some(SITE - 4));
    // One that jumps to the site itself, or past the patch, is fine.
    let to_site = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x02, 0xf3, 0x90];
    assert_eq!(branch_into(&to_site, &after, SITE, 7), None);
    let past = [0x48, 0xa9, 0x01, 0x00, 0x00, 0x00, 0x74, 0x09, 0xf3, 0x90];
    assert_eq!(branch_into(&past, &after, SITE, 7), None);
    // A branch after the site back into it.
    let code = [
        0x48, 0x83, 0xc6, 0x01, 0x8b, 0x05, 0x2b, 0x2c, 0x00, 0x00, 0x85, 0xc0, 0x75, 0xf6,
    ];
    assert_eq!(branch_into(&[], &code, SITE, 10), Some(SITE + 12));
    // A call into it counts too.
    let call = [0x48, 0x83, 0xc6, 0x01, 0xe8, 0xf8, 0xff, 0xff, 0xff];
    assert_eq!(branch_into(&[], &call, SITE, 6), Some(SITE + 4));
    // The whole `jmp` loop: `pause` is the only lead-in, too short, and
    // the jmp cannot be displaced (it targets the lead-in).
    let mut spin = before.to_vec();
    spin.extend_from_slice(&after);
    let k = before.len();
    assert!(plan(&spin[..k], &spin[k..], SITE).is_err());
}

/// Reads `len` bytes of this process's code at `addr`.
fn own_code(addr: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem");
    f.seek(SeekFrom::Start(addr)).expect("seek");
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).expect("read own code");
    buf
}

#[test]
fn decoding_backwards_agrees_with_a_linear_sweep_of_real_code() {
    // Functions of this binary (compiled by rustc, with its padding
    // between functions): a linear sweep from an entry point gives the
    // true instruction boundaries.
    let entries = [
        plan as *const () as u64,
        preceding as *const () as u64,
        branch_into as *const () as u64,
        displaced as *const () as u64,
        check_region as *const () as u64,
    ];
    let (mut sites, mut planned, mut lead_ins) = (0, 0, 0);
    for entry in entries {
        let code = Code::new(entry, "");
        let code = Code {
            bytes: own_code(entry, 2048),
            ..code
        };
        let ips = code.ips(entry, entry + 1900);
        // Every third instruction (a debug build decodes slowly).
        let swept = ips
            .iter()
            .filter(|&&ip| (entry + 300..entry + 1700).contains(&ip));
        for &ip in swept.step_by(3) {
            let k = (ip - entry) as usize;
            for i in preceding(&code.bytes[k - 256..k], ip) {
                assert!(
                    ips.contains(&i.ip()),
                    "{:#x}: preceding() gave an instruction at {:#x}, not a boundary",
                    ip,
                    i.ip()
                );
            }
            sites += 1;
            if let Ok(site) = plan(&code.bytes[k - 256..k], &code.bytes[k..], ip) {
                planned += 1;
                lead_ins += usize::from(!site.lead_in.is_empty());
                assert!(
                    ips.contains(&site.start) && ips.contains(&site.end()),
                    "{ip:#x} (entry {entry:#x}): {site:#x?}"
                );
            }
        }
    }
    eprintln!("{planned} of {sites} sites planned, {lead_ins} with a lead-in");
    assert!(sites > 300, "{sites} sites swept");
    // Measured when written (every site): 1290 of 1590, 109 of them with a
    // lead-in.
    assert!(planned * 4 >= sites * 3, "{planned} of {sites} planned");
    assert!(
        lead_ins * 20 >= sites,
        "{lead_ins} of {sites} with a lead-in"
    );
}

#[test]
fn a_branch_seen_only_by_a_misaligned_decoding_does_not_refuse_a_site() {
    // `register_tm_clones`' end to `step`'s start (-DCALLS): decoded from
    // 0x1151, inside `jmp rax` (ff e0), the bytes read `loopne 0x11b9`,
    // inside a patch at `step` (0x11b4), and that decoding falls into step
    // before 0x11b4. Every decoding from farther back has `jmp rax` there.
    let code = Code::new(
        0x1131,
        "48 89 f0 48 c1 ee 3f 48 c1 f8 03 48 01 c6 48 d1 fe 74 14 48 8b 05 8d 2e 00
         00 48 85 c0 74 08 ff e0 66 0f 1f 44 00 00 c3 0f 1f 80 00 00 00 00 f3 0f 1e
         fa 80 3d e5 2e 00 00 00 75 2b 55 48 83 3d 6a 2e 00 00 00 48 89 e5 74 0c 48
         8b 3d c6 2e 00 00 e8 29 ff ff ff e8 64 ff ff ff c6 05 bd 2e 00 00 01 5d c3
         0f 1f 00 c3 0f 1f 80 00 00 00 00 f3 0f 1e fa e9 77 ff ff ff c7 05 a1 2e 00
         00 01 00 00 00 c3 48 89 f8 48 c1 e0 0d 48 31 f8 48 89 c2 48 c1 ea 07 48 31
         c2 48 89 d0 48 c1 e0 11 48 31 d0 c3",
    );
    let k = (0x11b4 - code.base) as usize;
    let back = Backwards::decode(&code.bytes[..k], 0x11b4);
    assert!(
        back.starts
            .iter()
            .any(|&start| back.chain(start).any(|i| i.ip() == 0x1151)),
        "the misaligned decoding reaches the site"
    );
    assert_eq!(back.agreed(0x1151), Some(false));
    assert_eq!(back.agreed(0x1150), Some(true));
    for point in [0x11b4, 0x11b7] {
        let site = code.plan(point).expect("a site");
        assert_eq!(site.start, point);
    }
}

#[test]
fn sites_in_writable_or_unknown_memory_are_refused() {
    let maps = "555555554000-555555559000 r-xp 00000000 08:01 1 /bin/x\n\
                555555559000-55555555a000 rwxp 00000000 00:00 0 [heap]\n";
    assert!(!mapping_is_writable(maps, 0x5555_5555_5000));
    assert!(mapping_is_writable(maps, 0x5555_5555_9100));
    assert!(mapping_is_writable(maps, 0x1000));
}

/// `LocalKey::try_with` in a debug build of crossbeam-deque 0.8.6's `lifo`
/// test (from 0x73d90): the call to crossbeam-epoch's `with_handle` closure
/// at 0x73e6d, its result stored at 0x73e72, `jmp 0x73e8b` at 0x73e77, and
/// 0x73e79, a branch target (of the `jmp` at 0x73e9e), right after it.
fn try_with() -> Code {
    Code::new(
        0x73d90,
        "48 83 ec 28 48 89 7c 24 10 48 89 74 24 18 e8 9d 71 ff ff 48 83 c4 28 c3
         cc cc cc cc cc cc cc cc 48 81 ec 98 00 00 00 48 89 74 24 10 48 89 7c 24
         50 48 89 74 24 58 c6 44 24 4f 01 48 8b 07 31 c9 89 cf ff d0 48 89 44 24
         18 eb 20 f6 44 24 4f 01 0f 85 c4 00 00 00 e9 b5 00 00 00 48 89 c1 89 d0
         48 89 4c 24 68 89 44 24 70 eb e0 48 8b 44 24 18 48 89 44 24 78 48 83 f8
         00 75 1d 48 c7 44 24 40 00 00 00 00 48 c7 44 24 38 00 00 00 00 48 c7 44
         24 20 01 00 00 00 eb 51 48 8b 7c 24 10 48 8b 44 24 18 48 89 44 24 40 48
         8b 44 24 40 48 89 84 24 80 00 00 00 48 89 44 24 38 48 8b 44 24 38 48 89
         84 24 88 00 00 00 48 89 44 24 30 48 8b 74 24 30 48 89 b4 24 90 00 00 00
         c6 44 24 4f 00 e8 2e 30 00 00 48 89 44 24 08 eb 12 48 8b 44 24 20 48 8b
         54 24 28 48 81 c4 98 00 00 00 c3 48 8b 44 24 08 48 89 44 24 28 48 c7 44
         24 20 00 00 00 00 eb d9 48 8b 7c 24 68 e8 96 27 0e 00 eb f4 cc cc cc cc
         48 81 ec 88 00 00 00 48 89 74 24 08 48 89 7c 24 40 48 89 74 24 48 c6 44
         24 3f 01 48 8b 07 31 c9 89 cf ff d0 48 89 44 24 10 eb 20 f6 44 24 3f 01
         0f 85 aa 00 00 00 e9 9b 00 00 00 48 89 c1 89 d0 48 89 4c 24 58 89 44 24
         60 eb e0 48 8b 44 24 10 48 89 44 24 68 48 83 f8 00 75 19 48 c7 44 24 30",
    )
}

#[test]
fn an_unpatchable_point_moves_ahead_to_a_patchable_one() {
    let code = try_with();
    let code_at = |at: u64| {
        let k = (at - code.base) as usize;
        code.bytes.get(k..).map(|b| b[..b.len().min(15)].to_vec())
    };
    let patchable = |at: u64| code.plan(at).is_ok();
    // The `jmp` at 0x73e77 cannot be patched: its patch would cover the
    // branch target after it, and the code before it (a call's return
    // address) is not agreed on as a lead-in. The place it jumps to can.
    assert!(code.plan(0x73e77).is_err());
    assert_eq!(ahead_in(0x73e77, code_at, patchable), Some(0x73e8b));
    // A patchable ip is its own place.
    assert!(code.plan(0x73e72).is_ok());
    assert_eq!(ahead_in(0x73e72, code_at, patchable), Some(0x73e72));
    // Straight code and forward jumps are followed: `mov; movb; call` from
    // 0x73e60 to the call.
    assert_eq!(
        ahead_in(0x73e60, code_at, |at| at == 0x73e6d),
        Some(0x73e6d)
    );
    // A call is not (its callee is called from elsewhere too), nor a
    // conditional branch (`test; jne` at 0x73ddb, the `jmp` after the
    // `jne` patchable), nor a backward jump (`mov; movq; jmp 0x73e79`
    // from 0x73e90: a loop's head is passed on other ways).
    assert_eq!(ahead_in(0x73e6d, code_at, |at| at == 0x76ea0), None);
    assert_eq!(ahead_in(0x73ddb, code_at, |at| at == 0x73de6), None);
    assert_eq!(ahead_in(0x73e90, code_at, |at| at == 0x73e79), None);
    assert_eq!(
        ahead_in(0x73e90, code_at, |at| at == 0x73e9e),
        Some(0x73e9e)
    );
}
