//! The recorder's own vDSO: a small ELF64 shared object (x86-64, `ET_DYN`)
//! that replaces the kernel's in every tracee, at [`VDSO_ADDR`], identical
//! in recording and replay on any kernel (docs/design.md, "The vDSO").
//!
//! It exports what the kernel's x86-64 vDSO exports for time and CPU reads
//! (`__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`,
//! `__vdso_getcpu`, `__vdso_clock_getres`, each also under its plain name
//! as a weak alias), all of version `LINUX_2.6`, with the tables the C
//! library and others look them up with: `DT_HASH`, `DT_GNU_HASH`,
//! `DT_VERSYM` and `DT_VERDEF`, `DT_SONAME` `linux-vdso.so.1`. Each function
//! is `mov eax, NR; syscall; ret`: an ordinary syscall, recorded (and
//! buffered once its site is patched, like any other). An `.eh_frame` (and
//! its `PT_GNU_EH_FRAME` header) says what holds at every instruction of
//! them: the return address at the stack pointer. Section headers lie
//! inside the loaded image, as in the kernel's, so a debugger that reads
//! the image from memory finds its symbols.
//!
//! The image is built here, byte by byte, and is the same on every run.

use std::sync::OnceLock;

pub use rrtest_abi::{VDSO_ADDR, VDSO_MAX_SIZE};

/// The functions: name and syscall number.
const FUNCTIONS: [(&str, i64); 5] = [
    ("clock_gettime", libc::SYS_clock_gettime),
    ("gettimeofday", libc::SYS_gettimeofday),
    ("time", libc::SYS_time),
    ("getcpu", libc::SYS_getcpu),
    ("clock_getres", libc::SYS_clock_getres),
];

/// The image's shared-object name (`DT_SONAME`): the name glibc's loader
/// gives the vDSO, which `dlopen("linux-vdso.so.1", RTLD_NOLOAD)` finds.
pub const SONAME: &str = "linux-vdso.so.1";
/// The symbols' version.
pub const VERSION: &str = "LINUX_2.6";

/// Bytes of each function's slot in `.text` (`int3` after the `ret`).
const SLOT: usize = 16;
/// Where `.text` starts: on the image's second page, after 1 KiB of
/// `int3`, which fill the rest of that page too. Every byte within 1 KiB
/// of a function is then code or `int3`: the syscall buffer's patcher
/// scans that far around a site for branches into it, and would read the
/// tables of the first page as instructions (some of which decode as
/// branches into the site).
const TEXT_AT: usize = 0x1400;
/// The image's length: two pages.
const IMAGE_LEN: usize = 0x2000;
const _: () = assert!(IMAGE_LEN as u64 <= VDSO_MAX_SIZE);

// ELF constants (from the ELF specification and the GNU extensions).
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
const PF_X: u32 = 1;
const PF_R: u32 = 4;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_HASH: u32 = 5;
const SHT_DYNAMIC: u32 = 6;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_HASH: u32 = 0x6fff_fff6;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STT_FUNC: u8 = 2;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const VER_FLG_BASE: u16 = 1;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const DYN_SIZE: usize = 16;

/// The image's bytes (built once).
pub fn image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(build)
}

/// Bytes mapped for the image: its length rounded up to whole pages.
pub fn mapped_len() -> u64 {
    (image().len() as u64).div_ceil(0x1000) * 0x1000
}

/// Bytes of the stub page mapped next to each copy of the image, in the
/// same mapping (docs/design.md, "The vDSO"): the stubs of the image's
/// patched syscall sites go there, so that patching one maps nothing. Its
/// sites are out of `rel32` reach of the stub pages the patcher maps for
/// other code (the image at [`VDSO_ADDR`] lies below 4 GiB); a stub page
/// mapped at the first patch of one of them would make the program's
/// memory map depend on which thread called first. One page holds the
/// stubs of all [`FUNCTIONS`] (a unit test checks it).
pub const STUB_PAGE_LEN: u64 = 0x1000;

/// A copy of the image in a program and its stub page, mapped together
/// (one anonymous r-x mapping) at exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The image's address.
    pub base: u64,
    /// The stub page's.
    pub stub_page: u64,
}

impl Placed {
    /// The image at [`VDSO_ADDR`], which `AT_SYSINFO_EHDR` names: its stub
    /// page right after it, in the [`VDSO_MAX_SIZE`] bytes below the fixed
    /// page, so that the mapping starts where the image does (gdb takes
    /// the vDSO's extent from the line of `/proc/PID/maps` that starts at
    /// `AT_SYSINFO_EHDR`, and finds no vDSO without one).
    pub fn main() -> Placed {
        Placed {
            base: VDSO_ADDR,
            stub_page: VDSO_ADDR + mapped_len(),
        }
    }

    /// The copy at `at`, where the kernel's vDSO was: its stub page right
    /// below it, where the kernel's vvar pages were (the dynamic loader
    /// follows the kernel's vDSO).
    pub fn copy(at: u64) -> Placed {
        Placed {
            base: at,
            stub_page: at - STUB_PAGE_LEN,
        }
    }

    /// The mapping: start and length.
    pub fn mapping(&self) -> (u64, u64) {
        (self.base.min(self.stub_page), STUB_PAGE_LEN + mapped_len())
    }

    /// The image's code: start and end.
    pub fn image(&self) -> (u64, u64) {
        (self.base, self.base + mapped_len())
    }
}

const _: () = assert!(0x2000 + STUB_PAGE_LEN <= VDSO_MAX_SIZE);

/// Whether `addr` lies in the mapping of the recorder's own vDSO at
/// [`VDSO_ADDR`], its stub page included.
pub fn contains(addr: u64) -> bool {
    let (start, len) = Placed::main().mapping();
    (start..start + len).contains(&addr)
}

/// The SysV ELF hash (`DT_HASH`, and the versions' `vd_hash`).
pub fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash (`DT_GNU_HASH`).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    })
}

/// A string table under construction.
struct Strtab(Vec<u8>);

impl Strtab {
    fn new() -> Strtab {
        Strtab(vec![0])
    }
    /// The offset of `s`, added if new.
    fn add(&mut self, s: &str) -> u32 {
        let needle: Vec<u8> = s.bytes().chain(std::iter::once(0)).collect();
        if let Some(at) = self.0.windows(needle.len()).position(|w| w == needle) {
            return at as u32;
        }
        let at = self.0.len() as u32;
        self.0.extend_from_slice(&needle);
        at
    }
}

/// Appends little-endian fields.
trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

/// One dynamic symbol: its name, binding, and the function it names.
struct Symbol {
    name: String,
    bind: u8,
    function: usize,
}

/// The exported symbols in `.dynsym` order (after the null symbol): each
/// function as `__vdso_NAME` (global), then as `NAME` (weak).
fn symbols() -> Vec<Symbol> {
    let mut out = Vec::new();
    for (i, (name, _)) in FUNCTIONS.iter().enumerate() {
        out.push(Symbol {
            name: format!("__vdso_{name}"),
            bind: STB_GLOBAL,
            function: i,
        });
        out.push(Symbol {
            name: (*name).to_owned(),
            bind: STB_WEAK,
            function: i,
        });
    }
    out
}

/// `.text`: each function in its [`SLOT`].
fn text() -> Vec<u8> {
    let mut t = Vec::new();
    for (_, nr) in FUNCTIONS {
        let nr = u32::try_from(nr).expect("a syscall number fits 32 bits");
        t.u8(0xb8); // mov eax, imm32
        t.u32(nr);
        t.extend_from_slice(&[0x0f, 0x05, 0xc3]); // syscall; ret
        t.resize(t.len().next_multiple_of(SLOT), 0xcc); // int3
    }
    t
}

/// `.hash`: one bucket per two symbols, chains by symbol index.
fn sysv_hash(names: &[&str]) -> Vec<u8> {
    let nsyms = names.len() + 1;
    let nbucket = (names.len() / 2).max(1);
    let mut bucket = vec![0u32; nbucket];
    let mut chain = vec![0u32; nsyms];
    for (i, name) in names.iter().enumerate() {
        let idx = (i + 1) as u32;
        let b = elf_hash(name.as_bytes()) as usize % nbucket;
        // Append at the chain's end (order within a chain is free).
        if bucket[b] == 0 {
            bucket[b] = idx;
        } else {
            let mut at = bucket[b] as usize;
            while chain[at] != 0 {
                at = chain[at] as usize;
            }
            chain[at] = idx;
        }
    }
    let mut out = Vec::new();
    out.u32(nbucket as u32);
    out.u32(nsyms as u32);
    bucket.iter().for_each(|&v| out.u32(v));
    chain.iter().for_each(|&v| out.u32(v));
    out
}

/// Bloom filter shift of `.gnu.hash`.
const BLOOM_SHIFT: u32 = 6;

/// The number of `.gnu.hash` buckets for `n` symbols.
fn gnu_buckets(n: usize) -> usize {
    (n / 4).max(1)
}

/// `.gnu.hash` for symbols `names` (1.. in `.dynsym`), which must already
/// be sorted by bucket ([`gnu_buckets`]): one 64-bit bloom word.
fn gnu_hash_table(names: &[&str]) -> Vec<u8> {
    let nbucket = gnu_buckets(names.len());
    let hashes: Vec<u32> = names.iter().map(|n| gnu_hash(n.as_bytes())).collect();
    let mut bloom = 0u64;
    for &h in &hashes {
        bloom |= 1 << (h % 64);
        bloom |= 1 << ((h >> BLOOM_SHIFT) % 64);
    }
    let mut buckets = vec![0u32; nbucket];
    for (i, &h) in hashes.iter().enumerate().rev() {
        buckets[h as usize % nbucket] = (i + 1) as u32;
    }
    let chain: Vec<u32> = hashes
        .iter()
        .enumerate()
        .map(|(i, &h)| {
            let last = hashes
                .get(i + 1)
                .is_none_or(|&next| next as usize % nbucket != h as usize % nbucket);
            if last {
                h | 1
            } else {
                h & !1
            }
        })
        .collect();
    let mut out = Vec::new();
    out.u32(nbucket as u32);
    out.u32(1); // symoffset: the null symbol is not hashed
    out.u32(1); // bloom words
    out.u32(BLOOM_SHIFT);
    out.u64(bloom);
    buckets.iter().for_each(|&v| out.u32(v));
    chain.iter().for_each(|&v| out.u32(v));
    out
}

/// Where each part goes: offsets (equal to addresses relative to the
/// image's start; the image is linked at 0).
#[derive(Default)]
struct Layout {
    hash: usize,
    gnu_hash: usize,
    dynsym: usize,
    dynstr: usize,
    versym: usize,
    verdef: usize,
    text: usize,
    eh_frame_hdr: usize,
    eh_frame: usize,
    dynamic: usize,
    shstrtab: usize,
    shdrs: usize,
    end: usize,
}

/// Bytes of `.eh_frame`: a CIE and one FDE for the whole `.text`.
const EH_FRAME_LEN: usize = 24 + 24 + 4;
/// Bytes of `.eh_frame_hdr` with one table entry.
const EH_FRAME_HDR_LEN: usize = 20;

/// `.eh_frame` at `at` for code at `text` of `text_len` bytes: a CIE whose
/// rule (CFA = rsp + 8, return address at CFA - 8) holds throughout, and
/// one FDE covering all of it; then the terminator.
fn eh_frame(at: usize, text: usize, text_len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    // CIE: length, id 0, version 1, "zR", code alignment 1, data
    // alignment -8, return address column 16, augmentation data (FDE
    // pointers pc-relative sdata4), then the instructions.
    f.u32(20);
    f.u32(0);
    f.u8(1);
    f.extend_from_slice(b"zR\0");
    f.extend_from_slice(&[1, 0x78, 16, 1, 0x1b]);
    f.extend_from_slice(&[0x0c, 7, 8]); // DW_CFA_def_cfa rsp, 8
    f.extend_from_slice(&[0x90, 1]); // DW_CFA_offset r16 (rip), cfa - 8
    f.resize(24, 0); // DW_CFA_nop
                     // FDE: length, pointer back to the CIE, pc begin (pc-relative), range,
                     // no augmentation data, no instructions.
    let fde = f.len();
    f.u32(20);
    f.u32((fde + 4) as u32);
    let pc_field = at + f.len();
    f.u32((text as i64 - pc_field as i64) as i32 as u32);
    f.u32(text_len as u32);
    f.u8(0);
    f.resize(fde + 24, 0);
    f.u32(0); // terminator
    debug_assert_eq!(f.len(), EH_FRAME_LEN);
    f
}

/// `.eh_frame_hdr` at `at` for the `.eh_frame` at `eh_frame` whose one FDE
/// (24 bytes in) covers code from `text`.
fn eh_frame_hdr(at: usize, eh_frame: usize, text: usize) -> Vec<u8> {
    let mut h = Vec::new();
    // Version 1; eh_frame_ptr pc-relative sdata4; count udata4; table
    // relative to the header, sdata4.
    h.extend_from_slice(&[1, 0x1b, 0x03, 0x3b]);
    h.u32((eh_frame as i64 - (at + 4) as i64) as i32 as u32);
    h.u32(1);
    h.u32((text as i64 - at as i64) as i32 as u32);
    h.u32((eh_frame + 24 - at) as u32);
    debug_assert_eq!(h.len(), EH_FRAME_HDR_LEN);
    h
}

/// A section header's fields.
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    addr: usize,
    size: usize,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

fn build() -> Vec<u8> {
    let mut syms = symbols();
    // `.gnu.hash` needs the symbols grouped by bucket.
    let nbucket = gnu_buckets(syms.len());
    syms.sort_by_key(|s| gnu_hash(s.name.as_bytes()) as usize % nbucket);
    let names: Vec<&str> = syms.iter().map(|s| s.name.as_str()).collect();

    let mut dynstr = Strtab::new();
    let soname = dynstr.add(SONAME);
    let version = dynstr.add(VERSION);
    let sym_names: Vec<u32> = names.iter().map(|n| dynstr.add(n)).collect();

    let hash = sysv_hash(&names);
    let gnu = gnu_hash_table(&names);
    let text = text();
    let nsyms = syms.len() + 1;
    let verdef_len = 2 * (20 + 8);
    let dyn_count = 11;

    let mut shstr = Strtab::new();
    let section_names = [
        ".hash",
        ".gnu.hash",
        ".dynsym",
        ".dynstr",
        ".gnu.version",
        ".gnu.version_d",
        ".text",
        ".eh_frame_hdr",
        ".eh_frame",
        ".dynamic",
        ".shstrtab",
    ];
    let sh_names: Vec<u32> = section_names.iter().map(|n| shstr.add(n)).collect();

    let phnum = 3;
    let mut l = Layout::default();
    let mut at = EHDR_SIZE + phnum * PHDR_SIZE;
    let mut place = |len: usize, align: usize| {
        let start = at.next_multiple_of(align);
        at = start + len;
        start
    };
    l.hash = place(hash.len(), 8);
    l.gnu_hash = place(gnu.len(), 8);
    l.dynsym = place(nsyms * SYM_SIZE, 8);
    l.dynstr = place(dynstr.0.len(), 1);
    l.versym = place(nsyms * 2, 2);
    l.verdef = place(verdef_len, 4);
    l.eh_frame_hdr = place(EH_FRAME_HDR_LEN, 4);
    l.eh_frame = place(EH_FRAME_LEN, 8);
    l.dynamic = place(dyn_count * DYN_SIZE, 8);
    l.shstrtab = place(shstr.0.len(), 1);
    l.shdrs = place((section_names.len() + 1) * SHDR_SIZE, 8);
    assert!(
        at <= 0x1000,
        "the vDSO's tables take {at} bytes, more than a page"
    );
    l.text = TEXT_AT;
    l.end = IMAGE_LEN;
    let text_index = 7u16; // .text's section index (1-based after null)

    let mut img = Vec::with_capacity(l.end);
    // ELF header.
    img.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    img.resize(16, 0);
    img.u16(ET_DYN);
    img.u16(EM_X86_64);
    img.u32(1); // EV_CURRENT
    img.u64(0); // no entry point
    img.u64(EHDR_SIZE as u64); // phoff
    img.u64(l.shdrs as u64);
    img.u32(0); // flags
    img.u16(EHDR_SIZE as u16);
    img.u16(PHDR_SIZE as u16);
    img.u16(phnum as u16);
    img.u16(SHDR_SIZE as u16);
    img.u16((section_names.len() + 1) as u16);
    img.u16(section_names.len() as u16); // .shstrtab is the last
                                         // Program headers.
    let phdr = |img: &mut Vec<u8>, kind: u32, flags: u32, off: usize, len: usize, align: u64| {
        img.u32(kind);
        img.u32(flags);
        img.u64(off as u64);
        img.u64(off as u64); // vaddr
        img.u64(off as u64); // paddr
        img.u64(len as u64);
        img.u64(len as u64);
        img.u64(align);
    };
    phdr(&mut img, PT_LOAD, PF_R | PF_X, 0, l.end, 0x1000);
    phdr(
        &mut img,
        PT_DYNAMIC,
        PF_R,
        l.dynamic,
        dyn_count * DYN_SIZE,
        8,
    );
    phdr(
        &mut img,
        PT_GNU_EH_FRAME,
        PF_R,
        l.eh_frame_hdr,
        EH_FRAME_HDR_LEN,
        4,
    );
    let pad_to = |img: &mut Vec<u8>, at: usize| {
        debug_assert!(img.len() <= at);
        img.resize(at, 0);
    };
    pad_to(&mut img, l.hash);
    img.extend_from_slice(&hash);
    pad_to(&mut img, l.gnu_hash);
    img.extend_from_slice(&gnu);
    // .dynsym: the null symbol, then the functions' names.
    pad_to(&mut img, l.dynsym);
    img.resize(l.dynsym + SYM_SIZE, 0);
    for (s, &name) in syms.iter().zip(&sym_names) {
        img.u32(name);
        img.u8((s.bind << 4) | STT_FUNC);
        img.u8(0); // STV_DEFAULT
        img.u16(text_index);
        img.u64((l.text + s.function * SLOT) as u64);
        img.u64(8); // mov, syscall, ret
    }
    pad_to(&mut img, l.dynstr);
    img.extend_from_slice(&dynstr.0);
    // .gnu.version: the null symbol local (0), the others version 2.
    pad_to(&mut img, l.versym);
    img.u16(0);
    (1..nsyms).for_each(|_| img.u16(2));
    // .gnu.version_d: the base version (the object's name), then LINUX_2.6.
    pad_to(&mut img, l.verdef);
    for (i, (flags, name, name_at)) in [(VER_FLG_BASE, SONAME, soname), (0, VERSION, version)]
        .into_iter()
        .enumerate()
    {
        img.u16(1); // vd_version
        img.u16(flags);
        img.u16((i + 1) as u16); // vd_ndx
        img.u16(1); // vd_cnt
        img.u32(elf_hash(name.as_bytes()));
        img.u32(20); // vd_aux
        img.u32(if i == 0 { 28 } else { 0 }); // vd_next
        img.u32(name_at); // vda_name
        img.u32(0); // vda_next
    }
    pad_to(&mut img, l.eh_frame_hdr);
    img.extend_from_slice(&eh_frame_hdr(l.eh_frame_hdr, l.eh_frame, l.text));
    pad_to(&mut img, l.eh_frame);
    img.extend_from_slice(&eh_frame(l.eh_frame, l.text, text.len()));
    pad_to(&mut img, l.dynamic);
    for (tag, val) in [
        (DT_HASH, l.hash),
        (DT_GNU_HASH, l.gnu_hash),
        (DT_STRTAB, l.dynstr),
        (DT_SYMTAB, l.dynsym),
        (DT_STRSZ, dynstr.0.len()),
        (DT_SYMENT, SYM_SIZE),
        (DT_SONAME, soname as usize),
        (DT_VERSYM, l.versym),
        (DT_VERDEF, l.verdef),
        (DT_VERDEFNUM, 2),
        (DT_NULL, 0),
    ] {
        img.u64(tag);
        img.u64(val as u64);
    }
    pad_to(&mut img, l.shstrtab);
    img.extend_from_slice(&shstr.0);
    pad_to(&mut img, l.shdrs);
    let alloc = SHF_ALLOC;
    let sections = [
        Shdr {
            name: sh_names[0],
            kind: SHT_HASH,
            flags: alloc,
            addr: l.hash,
            size: hash.len(),
            link: 3,
            info: 0,
            align: 8,
            entsize: 4,
        },
        Shdr {
            name: sh_names[1],
            kind: SHT_GNU_HASH,
            flags: alloc,
            addr: l.gnu_hash,
            size: gnu.len(),
            link: 3,
            info: 0,
            align: 8,
            entsize: 0,
        },
        Shdr {
            name: sh_names[2],
            kind: SHT_DYNSYM,
            flags: alloc,
            addr: l.dynsym,
            size: nsyms * SYM_SIZE,
            link: 4,
            info: 1, // one local symbol: the null one
            align: 8,
            entsize: SYM_SIZE as u64,
        },
        Shdr {
            name: sh_names[3],
            kind: SHT_STRTAB,
            flags: alloc,
            addr: l.dynstr,
            size: dynstr.0.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
        Shdr {
            name: sh_names[4],
            kind: SHT_GNU_VERSYM,
            flags: alloc,
            addr: l.versym,
            size: nsyms * 2,
            link: 3,
            info: 0,
            align: 2,
            entsize: 2,
        },
        Shdr {
            name: sh_names[5],
            kind: SHT_GNU_VERDEF,
            flags: alloc,
            addr: l.verdef,
            size: verdef_len,
            link: 4,
            info: 2,
            align: 4,
            entsize: 0,
        },
        Shdr {
            name: sh_names[6],
            kind: SHT_PROGBITS,
            flags: alloc | SHF_EXECINSTR,
            addr: l.text,
            size: text.len(),
            link: 0,
            info: 0,
            align: 16,
            entsize: 0,
        },
        Shdr {
            name: sh_names[7],
            kind: SHT_PROGBITS,
            flags: alloc,
            addr: l.eh_frame_hdr,
            size: EH_FRAME_HDR_LEN,
            link: 0,
            info: 0,
            align: 4,
            entsize: 0,
        },
        Shdr {
            name: sh_names[8],
            kind: SHT_PROGBITS,
            flags: alloc,
            addr: l.eh_frame,
            size: EH_FRAME_LEN,
            link: 0,
            info: 0,
            align: 8,
            entsize: 0,
        },
        Shdr {
            name: sh_names[9],
            kind: SHT_DYNAMIC,
            flags: alloc,
            addr: l.dynamic,
            size: dyn_count * DYN_SIZE,
            link: 4,
            info: 0,
            align: 8,
            entsize: DYN_SIZE as u64,
        },
        Shdr {
            name: sh_names[10],
            kind: SHT_STRTAB,
            flags: 0,
            addr: l.shstrtab,
            size: shstr.0.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
    ];
    img.resize(img.len() + SHDR_SIZE, 0); // the null section
    for s in &sections {
        img.u32(s.name);
        img.u32(s.kind);
        img.u64(s.flags);
        // A section outside the loaded image (.shstrtab) has no address.
        img.u64(if s.flags & SHF_ALLOC != 0 {
            s.addr as u64
        } else {
            0
        });
        img.u64(s.addr as u64); // offset
        img.u64(s.size as u64);
        img.u32(s.link);
        img.u32(s.info);
        img.u64(s.align);
        img.u64(s.entsize);
    }
    img.resize(l.text, 0xcc);
    img.extend_from_slice(&text);
    img.resize(l.end, 0xcc);
    img
}

#[cfg(test)]
#[path = "vdso_tests.rs"]
mod tests;
