//! The own vDSO's image read back as a loader reads it: the ELF header, the
//! dynamic section through `PT_DYNAMIC`, each symbol found through
//! `DT_HASH` and through `DT_GNU_HASH` with its version checked through
//! `DT_VERSYM`/`DT_VERDEF`, the code each names, the unwind table; and
//! `readelf`'s view of it where the host has one.

use super::*;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn cstr(b: &[u8], at: usize) -> &str {
    let end = b[at..].iter().position(|&c| c == 0).unwrap();
    std::str::from_utf8(&b[at..at + end]).unwrap()
}

/// What a loader takes from the image: the dynamic entries by tag.
struct Dynamic {
    entries: Vec<(u64, u64)>,
}

impl Dynamic {
    fn read(img: &[u8]) -> Dynamic {
        assert_eq!(&img[..4], b"\x7fELF");
        assert_eq!((img[4], img[5]), (2, 1), "ELF64, little-endian");
        assert_eq!(u16_at(img, 16), ET_DYN);
        assert_eq!(u16_at(img, 18), EM_X86_64);
        let (phoff, phnum) = (u64_at(img, 32) as usize, u16_at(img, 56) as usize);
        let mut dynamic = None;
        let mut loads = 0;
        for i in 0..phnum {
            let ph = phoff + i * PHDR_SIZE;
            let (kind, flags) = (u32_at(img, ph), u32_at(img, ph + 4));
            let (off, vaddr, filesz) = (
                u64_at(img, ph + 8),
                u64_at(img, ph + 16),
                u64_at(img, ph + 32),
            );
            match kind {
                PT_LOAD => {
                    loads += 1;
                    // rustix takes only a read + execute load segment.
                    assert_eq!(flags, PF_R | PF_X);
                    assert_eq!((off, vaddr, filesz), (0, 0, img.len() as u64));
                }
                PT_DYNAMIC => {
                    // Read-only: glibc then reads it without writing it.
                    assert_eq!(flags, PF_R);
                    dynamic = Some((off as usize, filesz as usize));
                }
                PT_GNU_EH_FRAME => assert_eq!(flags, PF_R),
                other => panic!("unexpected program header {other:#x}"),
            }
        }
        assert_eq!(loads, 1);
        let (off, len) = dynamic.expect("a PT_DYNAMIC");
        let entries: Vec<(u64, u64)> = (0..len / DYN_SIZE)
            .map(|i| (u64_at(img, off + i * 16), u64_at(img, off + i * 16 + 8)))
            .collect();
        assert_eq!(entries.last(), Some(&(DT_NULL, 0)));
        Dynamic { entries }
    }

    fn get(&self, tag: u64) -> usize {
        self.entries
            .iter()
            .find(|e| e.0 == tag)
            .unwrap_or_else(|| panic!("no dynamic entry {tag:#x}"))
            .1 as usize
    }
}

/// Whether symbol `idx` has version `version` (by name and hash), as a
/// loader checks it: its `DT_VERSYM` index names a `DT_VERDEF` entry.
fn has_version(img: &[u8], d: &Dynamic, idx: usize, version: &str) -> bool {
    let ndx = u16_at(img, d.get(DT_VERSYM) + idx * 2) & 0x7fff;
    let strtab = d.get(DT_STRTAB);
    let mut def = d.get(DT_VERDEF);
    for _ in 0..d.get(DT_VERDEFNUM) {
        let aux = def + u32_at(img, def + 12) as usize;
        if u16_at(img, def + 4) == ndx {
            return u16_at(img, def + 2) & VER_FLG_BASE == 0
                && u32_at(img, def + 8) == elf_hash(version.as_bytes())
                && cstr(img, strtab + u32_at(img, aux) as usize) == version;
        }
        def += u32_at(img, def + 16) as usize;
    }
    false
}

/// The value of defined function symbol `name` found through `DT_HASH`.
fn lookup_sysv(img: &[u8], d: &Dynamic, name: &str) -> Option<(usize, u64)> {
    let (hash, symtab, strtab) = (d.get(DT_HASH), d.get(DT_SYMTAB), d.get(DT_STRTAB));
    let nbucket = u32_at(img, hash) as usize;
    let chain = hash + 8 + nbucket * 4;
    let mut i = u32_at(
        img,
        hash + 8 + (elf_hash(name.as_bytes()) as usize % nbucket) * 4,
    );
    while i != 0 {
        let sym = symtab + i as usize * SYM_SIZE;
        if cstr(img, strtab + u32_at(img, sym) as usize) == name {
            return Some((i as usize, u64_at(img, sym + 8)));
        }
        i = u32_at(img, chain + i as usize * 4);
    }
    None
}

/// The same through `DT_GNU_HASH`, its bloom filter first.
fn lookup_gnu(img: &[u8], d: &Dynamic, name: &str) -> Option<(usize, u64)> {
    let (table, symtab, strtab) = (d.get(DT_GNU_HASH), d.get(DT_SYMTAB), d.get(DT_STRTAB));
    let (nbucket, symoffset, words, shift) = (
        u32_at(img, table) as usize,
        u32_at(img, table + 4) as usize,
        u32_at(img, table + 8) as usize,
        u32_at(img, table + 12),
    );
    let h = gnu_hash(name.as_bytes());
    let word = u64_at(img, table + 16 + ((h / 64) as usize % words) * 8);
    if word & (1 << (h % 64)) == 0 || word & (1 << ((h >> shift) % 64)) == 0 {
        return None;
    }
    let buckets = table + 16 + words * 8;
    let chain = buckets + nbucket * 4;
    let mut i = u32_at(img, buckets + (h as usize % nbucket) * 4) as usize;
    if i == 0 {
        return None;
    }
    loop {
        let ch = u32_at(img, chain + (i - symoffset) * 4);
        let sym = symtab + i * SYM_SIZE;
        if ch | 1 == h | 1 && cstr(img, strtab + u32_at(img, sym) as usize) == name {
            return Some((i, u64_at(img, sym + 8)));
        }
        if ch & 1 != 0 {
            return None;
        }
        i += 1;
    }
}

#[test]
fn every_function_is_found_through_both_hash_tables_with_its_version() {
    let img = image();
    assert!(img.len() as u64 <= VDSO_MAX_SIZE, "{} bytes", img.len());
    let d = Dynamic::read(img);
    assert_eq!(cstr(img, d.get(DT_STRTAB) + d.get(DT_SONAME)), SONAME);
    assert_eq!(d.get(DT_SYMENT), SYM_SIZE);
    for (name, nr) in FUNCTIONS {
        let mut at = None;
        for sym in [format!("__vdso_{name}"), name.to_owned()] {
            let sysv = lookup_sysv(img, &d, &sym);
            let gnu = lookup_gnu(img, &d, &sym);
            assert!(sysv.is_some(), "{sym} not found through DT_HASH");
            assert_eq!(sysv, gnu, "{sym}: the two tables disagree");
            let (idx, value) = sysv.unwrap();
            assert!(has_version(img, &d, idx, VERSION), "{sym}: not {VERSION}");
            assert!(!has_version(img, &d, idx, "LINUX_2.5"));
            // Its code: mov eax, NR; syscall; ret.
            let code = &img[value as usize..value as usize + 8];
            assert_eq!(code[0], 0xb8);
            assert_eq!(i64::from(u32_at(code, 1)), nr, "{sym}");
            assert_eq!(&code[5..], &[0x0f, 0x05, 0xc3]);
            // The alias names the same code.
            assert_eq!(*at.get_or_insert(value), value);
        }
    }
    for absent in [
        "__vdso_getrandom",
        "__vdso_sgx_enter_enclave",
        "clock_gettim",
    ] {
        assert_eq!(lookup_sysv(img, &d, absent), None, "{absent}");
        assert_eq!(lookup_gnu(img, &d, absent), None, "{absent}");
    }
}

#[test]
fn the_image_is_the_same_every_time() {
    assert_eq!(image(), build().as_slice());
    assert_eq!(mapped_len() % 0x1000, 0);
    assert!(contains(VDSO_ADDR) && contains(VDSO_ADDR + image().len() as u64 - 1));
    assert!(!contains(VDSO_ADDR - 1) && contains(VDSO_ADDR + mapped_len()));
    const { assert!(VDSO_ADDR + VDSO_MAX_SIZE <= rrtest_abi::FIXED_PAGE_ADDR) };
}

/// Each function's `syscall` site, analyzed as the patcher analyzes it
/// (the `mov eax, NR` before it starts the region), gets a stub in the
/// stub page right below the image, one after another as the patcher puts
/// them (16-byte aligned, 32 bytes to spare each): all of them fit, the
/// jumps between site and stub reach, and the page lies inside the
/// mapping, which ends where the image does.
#[test]
fn the_stubs_of_all_sites_fit_in_the_stub_page() {
    use rrtest_syscalls::patch::{self, AnalyzeOptions, Anchor};
    let img = image();
    for placed in [Placed::main(), Placed::copy(0x7fff_f7fc_8000)] {
        let (base, page, len) = (placed.base, placed.stub_page, STUB_PAGE_LEN);
        let (start, mapped) = placed.mapping();
        assert_eq!(mapped, len + mapped_len());
        // Image and stub page fill the mapping.
        assert!(start == page.min(base) && (page + len == base || base + mapped_len() == page));
        let mut next = page;
        for (i, (name, _)) in FUNCTIONS.iter().enumerate() {
            let mov = TEXT_AT + i * SLOT;
            let options = AnalyzeOptions {
                boundary: Some(base + mov as u64),
                anchor: Anchor::Syscall,
            };
            let site = patch::analyze_with(
                &img[mov..mov + 64],
                base + mov as u64,
                base + mov as u64 + 5,
                &options,
            )
            .unwrap_or_else(|r| panic!("{name}: {r}"));
            let at = next.next_multiple_of(16);
            let stub = patch::build_stub(&site, at, rrtest_abi::FIXED_PAGE_ADDR, site.end())
                .unwrap_or_else(|r| panic!("{name}: {r}"));
            patch::patch_bytes(&site, at).unwrap_or_else(|r| panic!("{name}: {r}"));
            next = at + stub.code.len() as u64;
            assert!(
                next + 32 <= page + len,
                "{name}: the stub ends at {next:#x}, past the page ({page:#x}, {len} bytes)"
            );
        }
    }
    // The main image's mapping starts at the image (gdb looks for a line of
    // the maps that starts at AT_SYSINFO_EHDR), its stub page after it,
    // below the fixed page.
    assert_eq!(Placed::main().mapping().0, VDSO_ADDR);
    assert!(
        contains(VDSO_ADDR + mapped_len()) && !contains(VDSO_ADDR + mapped_len() + STUB_PAGE_LEN)
    );
    assert!(VDSO_ADDR + mapped_len() + STUB_PAGE_LEN <= rrtest_abi::FIXED_PAGE_ADDR);
}

#[test]
fn the_hashes_are_the_standard_ones() {
    // Values from the ELF and GNU specifications' algorithms, computed by
    // hand for short inputs, and the version hash glibc compiles in.
    assert_eq!(elf_hash(b""), 0);
    assert_eq!(elf_hash(b"a"), 0x61);
    assert_eq!(elf_hash(b"LINUX_2.6"), 0x3ae_75f6);
    assert_eq!(gnu_hash(b""), 5381);
    assert_eq!(gnu_hash(b"a"), 5381 * 33 + 0x61);
}

/// The unwind table: `.eh_frame_hdr` names one FDE, which covers `.text`.
#[test]
fn the_unwind_table_covers_the_code() {
    let img = image();
    let phoff = u64_at(img, 32) as usize;
    let hdr = (0..u16_at(img, 56) as usize)
        .map(|i| phoff + i * PHDR_SIZE)
        .find(|&ph| u32_at(img, ph) == PT_GNU_EH_FRAME)
        .map(|ph| u64_at(img, ph + 8) as usize)
        .expect("a PT_GNU_EH_FRAME");
    assert_eq!(&img[hdr..hdr + 4], &[1, 0x1b, 0x03, 0x3b]);
    let eh_frame = (hdr as i64 + 4 + i64::from(u32_at(img, hdr + 4) as i32)) as usize;
    assert_eq!(u32_at(img, hdr + 8), 1);
    let start = (hdr as i64 + i64::from(u32_at(img, hdr + 12) as i32)) as usize;
    let fde = (hdr as i64 + i64::from(u32_at(img, hdr + 16) as i32)) as usize;
    // The CIE at the start of .eh_frame, the FDE pointing back at it.
    assert_eq!(u32_at(img, eh_frame + 4), 0, "a CIE");
    assert_eq!(fde + 4 - u32_at(img, fde + 4) as usize, eh_frame);
    let pc_begin = (fde as i64 + 8 + i64::from(u32_at(img, fde + 8) as i32)) as usize;
    assert_eq!(pc_begin, start);
    let d = Dynamic::read(img);
    let (_, first) = lookup_sysv(img, &d, "__vdso_clock_gettime").unwrap();
    assert_eq!(start as u64, first);
    assert_eq!(u32_at(img, fde + 12) as usize, FUNCTIONS.len() * SLOT);
}

/// `readelf`, where the host has one, reads the same symbols and versions,
/// and finds nothing to warn about.
#[test]
fn readelf_reads_it() {
    let path = std::env::temp_dir().join(format!("rrtest-vdso-{}.so", std::process::id()));
    std::fs::write(&path, image()).unwrap();
    let out = std::process::Command::new("readelf")
        .args(["-W", "--dyn-syms", "-V", "-d", "-S", "--debug-dump=frames"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let Ok(out) = out else {
        eprintln!("skipped: no readelf");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{err}\n{text}"
    );
    for (name, _) in FUNCTIONS {
        assert!(
            text.contains(&format!("__vdso_{name}@@LINUX_2.6")),
            "{name}\n{text}"
        );
        assert!(
            text.contains(&format!(" {name}@@LINUX_2.6")),
            "{name}\n{text}"
        );
    }
    assert!(text.contains("Library soname: [linux-vdso.so.1]"), "{text}");
    assert!(text.contains("DW_CFA_def_cfa: r7 (rsp) ofs 8"), "{text}");
}

#[test]
fn the_kernels_vdso_and_vvar_lines_are_found() {
    let maps = "\
555555554000-555555556000 r--p 00000000 fd:01 123 /bin/x
7ffff7fbd000-7ffff7fc1000 r--p 00000000 00:00 0 [vvar]
7ffff7fc1000-7ffff7fc3000 r--p 00000000 00:00 0 [vvar_vclock]
7ffff7fc3000-7ffff7fc5000 r-xp 00000000 00:00 0 [vdso]
7ffff7fc5000-7ffff7fc6000 r--p 00000000 fd:01 9 /tmp/[vdso]
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
";
    assert_eq!(
        crate::tracee::kernel_vdso_ranges(maps),
        [
            (0x7fff_f7fb_d000, 0x7fff_f7fc_1000),
            (0x7fff_f7fc_1000, 0x7fff_f7fc_3000),
            (0x7fff_f7fc_3000, 0x7fff_f7fc_5000),
        ]
    );
    assert_eq!(
        crate::tracee::kernel_vdso_start(maps),
        Some(0x7fff_f7fc_3000)
    );
    assert_eq!(
        crate::tracee::kernel_vdso_start("1000-2000 r-xp 0 0:0 0 /x\n"),
        None
    );
}
